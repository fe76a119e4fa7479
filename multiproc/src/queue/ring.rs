//! The shared-memory ring under every queue: variable-length byte messages, many producers
//! and many consumers in any processes, and no corruption or deadlock when one of them is
//! killed at any instant.
//!
//! # Layout
//!
//! One anonymous shared segment (`shm::segment`): a control page ([`Control`], each group of
//! fields on its own cache line) and a data area of [`MAX_CAP`] bytes of address space, of
//! which only the first `cap` bytes (a power of two, starting at [`INITIAL_CAP`]) are in
//! use. Pages the ring never reached are never touched, so they cost no memory.
//!
//! A message is a record at a byte position `pos` (monotonic `u64`, offset `pos % cap`,
//! 8-aligned): three 8-byte header words `state`, `len`, `idx`, then the payload, padded to
//! 8 bytes. A record may wrap around the end of the data area; its header words never
//! straddle it (cap is a multiple of 8). `state == pos | COMMITTED` marks a committed record
//! at exactly this position: a stale header of an earlier lap holds another position, and
//! the producer zeroes the `state` word where the *next* record will start before it commits,
//! so payload bytes can never pose as a header either. `idx` is the message's number.
//!
//! # Claim and commit
//!
//! Producers serialise on `plock`, consumers on `clock`: two robust process-shared locks
//! (`sync::raw::RawLock`), held only for a copy, never while sleeping. Between the two
//! sides the ring is single-producer single-consumer, synchronised by the `state` word:
//!
//! | step | producer (holds `plock`) | consumer (holds `clock`) |
//! |---|---|---|
//! | 1 | room: `tail + size + 8 - head <= cap`, else grow or wait | `state(head) == head \| COMMITTED` (Acquire), else empty |
//! | 2 | write payload, `len`, `idx` | copy or decode the payload in place |
//! | 3 | `state(tail + size) = 0` | `gets = idx + 1` (Release) |
//! | 4 | `state(tail) = tail \| COMMITTED` (Release): **the commit** | `head += size` (Release): **the release of the bytes** |
//! | 5 | `tail_idx = idx + 1`, `tail += size`, `puts = idx + 1` | |
//!
//! # Crash safety
//!
//! When a process dies holding `plock` or `clock`, the next locker finds the holder dead
//! (`RawLock` checks its liveness while it waits), takes the lock over and repairs:
//! - producer side: every step before the commit only wrote free space, so an uncommitted
//!   record is simply overwritten. If the commit happened but step 5 did not finish,
//!   `state(tail)` is committed at `tail`: the repair advances `tail`/`tail_idx` past it and
//!   sets `puts = tail_idx`. Nothing is lost or doubled.
//! - consumer side: nothing to repair. If the dead consumer did not release the bytes
//!   (step 4), the record is still at `head` and the next consumer delivers it: the message
//!   the dead consumer was reading is not lost but delivered once, to someone else. Once step
//!   4 is done the message is gone: if the consumer dies between step 4 and handing the value
//!   to its caller, that one message is lost. This is the only loss the design allows.
//!
//! `puts`, `gets` (message counts) feed `qsize`, the bound and the producers' wait; the
//! producer's `head_cache`/`gets_cache` spare it a cache miss on the consumers' line for
//! most puts.
//!
//! # Growth
//!
//! A producer that finds no room and may grow (the ring is below [`MAX_CAP`]) also takes
//! `clock` (lock order is always `plock` then `clock`; consumers never take `plock`),
//! copies the live bytes `[head, tail)` to their offsets under the doubled capacity, zeroes
//! `state(tail)` there and then stores the new `cap`. Doubling maps every position either to
//! its old offset or into the upper half, which holds nothing live (at most the leftovers
//! of a grower killed mid-copy, whose stale `state` words name old positions), so the copy
//! overwrites nothing live: a grower killed mid-copy leaves the old ring intact. Messages larger than the current ring
//! therefore just grow it; the limit is [`MAX_CAP`] of encoded messages at once.
//!
//! Below [`GROW_FREELY`] (4 MiB) a full ring grows at once. Above it, and when the message
//! would fit in half the ring, a put that finds no room first spins (`raw::park::spin`,
//! at most ~50 us) for a consumer to make room, and grows only if none does: an active
//! consumer keeps the ring small (cache- and page-friendly: every byte of growth is a fresh
//! page to fault in), while a stalled or absent one costs one spin per doubling. So an
//! unbounded put never waits for longer than one spin, and only while a consumer keeps up.
//!
//! # Waiting
//!
//! Each direction has a [`Signal`]: a `seq` word that every put (for `not_empty`) or every
//! get (for `not_full`) bumps, and a count of sleepers. A get that finds nothing, or a put
//! that finds no room, follows `sync::park`'s rule: it spins on `seq` for a short while
//! (waking a process on another CPU costs ~40 us here, so most hand-offs are caught by the
//! spin), then counts itself in `waiters` and sleeps on `seq`. The other side wakes only when
//! `waiters` is non-zero, so a put with no sleeping consumer makes no system call.
#![allow(unsafe_code)]

use std::io;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::loom::{fence, AtomicU32, AtomicU64, Ordering};
use crate::raw::park::{self, Parked};
#[cfg(not(loom))]
use crate::raw::{Acquired, RawLock};
use crate::sys::identity::Token;

/// Size of a record header: `state`, `len`, `idx`.
const HEADER: u64 = 24;
/// Set in `state` when the record at that position is committed.
const COMMITTED: u64 = 1;
/// The largest message, in bytes (the header's `len` is checked against it on read, too).
pub(crate) const MAX_MESSAGE: usize = 1 << 30;

/// Address space reserved for the data area; the ring grows up to this.
#[cfg(not(loom))]
const MAX_CAP: u64 = 8 << 30;
/// Capacity of a new ring.
#[cfg(not(loom))]
const INITIAL_CAP: u64 = 128 << 10;
/// Below this capacity a full ring grows at once; above, a put first gives consumers a
/// moment to make room (see "Growth").
#[cfg(not(loom))]
const GROW_FREELY: u64 = 4 << 20;
/// Small rings in loom models, so wrap-around and growth happen within a few messages.
#[cfg(loom)]
const MAX_CAP: u64 = 256;
#[cfg(loom)]
const INITIAL_CAP: u64 = 64;
#[cfg(loom)]
const GROW_FREELY: u64 = 128;

/// Where the data area starts in the segment's payload: the rest of the first page.
#[cfg(not(loom))]
const DATA_OFFSET: usize = 4096 - crate::mem::segment::HEADER_SIZE;
/// The segment kind of a queue.
#[cfg(not(loom))]
const KIND: crate::mem::segment::Kind = crate::mem::segment::Kind(*b"QUEU");

/// How long a put or get may wait for room or for a message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all.
    No,
    /// Until this instant.
    Until(Instant),
    /// As long as it takes.
    Forever,
}

impl Wait {
    /// `Until(now + d)`, or `Forever` when that instant cannot be represented.
    pub(crate) fn for_duration(d: Duration) -> Wait {
        Instant::now()
            .checked_add(d)
            .map_or(Wait::Forever, Wait::Until)
    }

    /// The deadline for a call that is allowed to wait (`No` is handled before).
    fn deadline(self) -> Deadline {
        match self {
            Wait::Until(d) => Deadline::at(d),
            Wait::No | Wait::Forever => Deadline::NEVER,
        }
    }
}

/// Why a put did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PutFail {
    /// No room (bound reached, or the ring is at its largest) within the wait.
    Full,
    /// The queue is closed.
    Closed,
    /// The message is longer than [`MAX_MESSAGE`].
    TooLong,
}

/// What one locked put attempt did.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// The message is in the ring.
    Put,
    /// No room: the bound is reached, or the ring is as large as it may get.
    Full,
    /// No room without growing a ring that is already large; not allowed this time.
    WouldGrow,
}

/// Why a get returned no message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GetFail {
    /// Nothing arrived within the wait.
    Empty,
    /// The queue is closed and drained.
    Closed,
    /// A header made no sense (memory written by something that is not a queue).
    Corrupt(String),
}

/// A cache line for one group of fields that one side writes.
#[repr(C, align(64))]
#[derive(Debug)]
struct Line<T>(T);

/// A futex word bumped on every event of one kind, with its sleeper count.
#[repr(C)]
#[derive(Debug)]
struct Signal {
    /// Bumped by every put (`not_empty`), get (`not_full`) or last `task_done` (`all_done`).
    seq: AtomicU32,
    /// Processes asleep (or about to sleep) on `seq`.
    waiters: AtomicU32,
}

/// The fields only producers write, under `plock`.
#[repr(C)]
#[derive(Debug)]
struct ProducerSide {
    /// Where the next record starts.
    tail: AtomicU64,
    /// The next message's number.
    tail_idx: AtomicU64,
    /// A recent `head` (never ahead of the real one).
    head_cache: AtomicU64,
    /// A recent `gets` (never ahead of the real one).
    gets_cache: AtomicU64,
}

/// The fields only consumers write, under `clock`.
#[repr(C)]
#[derive(Debug)]
struct ConsumerSide {
    /// Where the oldest unread record starts.
    head: AtomicU64,
    /// Messages taken so far (the number of the next one to take).
    gets: AtomicU64,
}

/// The control page at the start of the segment.
#[repr(C)]
#[derive(Debug)]
struct Control {
    /// Written once by the creator before anyone else can see the segment.
    ident: Line<Ident>,
    plock: Line<RawLock>,
    producer: Line<ProducerSide>,
    /// Messages committed so far (producers write it, everyone reads it).
    puts: Line<AtomicU64>,
    clock: Line<RawLock>,
    consumer: Line<ConsumerSide>,
    /// The data area's capacity in use; changes only with both locks held.
    cap: Line<AtomicU64>,
    /// Non-zero once `close` was called.
    closed: Line<AtomicU32>,
    not_empty: Line<Signal>,
    not_full: Line<Signal>,
    /// `task_done` calls so far (JoinableQueue).
    task_dones: Line<AtomicU64>,
    all_done: Line<Signal>,
}

/// The creator's fixed parameters.
#[repr(C)]
#[derive(Debug)]
struct Ident {
    /// At most this many messages at once; 0 for unbounded.
    bound: AtomicU64,
    /// The largest capacity the data area may grow to.
    max_cap: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Control>() <= DATA_OFFSET);

// SAFETY: `Control` is repr(C) of atomics and `RawLock`s (themselves ShmSafe): fixed
// layout, no pointers, and all zero bytes are its initial state (unlocked, empty ring, cap
// set right after creation).
#[cfg(not(loom))]
unsafe impl crate::mem::pod::ShmSafe for Control {}
// SAFETY: every field is written only through atomics (the locks included).
#[cfg(not(loom))]
unsafe impl crate::mem::pod::ShmSync for Control {}

/// Holds one side's lock; unlocks on drop.
struct SideGuard<'a>(&'a RawLock);

impl Drop for SideGuard<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

/// Who this thread is for the side locks, and how to tell a dead holder.
#[cfg(not(loom))]
fn me() -> Token {
    crate::sys::identity::thread()
}

#[cfg(not(loom))]
fn is_alive(token: Token) -> bool {
    crate::sys::identity::is_alive(token)
}

/// Under loom a yielding spin lock stands in for `RawLock`, whose own loom model covers
/// it: threads in a model do not die, and a yield per failed attempt is what loom needs to
/// explore a lock wait without an unbounded number of branches.
#[cfg(loom)]
#[derive(Debug, Default)]
struct RawLock(AtomicU32);

#[cfg(loom)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acquired {
    Normally,
    #[allow(dead_code)]
    OwnerDied,
}

#[cfg(loom)]
impl RawLock {
    fn lock(&self, _: Token, _: Deadline, _: fn(Token) -> bool) -> Result<Acquired, ()> {
        while self
            .0
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            loom::thread::yield_now();
        }
        Ok(Acquired::Normally)
    }

    fn unlock(&self) -> bool {
        self.0.swap(0, Ordering::Release) != 0
    }
}

/// In loom models every thread is the same live owner: mutual exclusion needs no ids.
#[cfg(loom)]
fn me() -> Token {
    Token::from_id(1)
}

#[cfg(loom)]
fn is_alive(_: Token) -> bool {
    true
}

/// The memory the ring lives in.
#[cfg(not(loom))]
#[derive(Debug)]
struct Memory {
    segment: crate::mem::segment::Segment,
    data: std::ptr::NonNull<u8>,
}

/// Under loom: the control block and the data area as loom atomics (one per 8-byte word),
/// so that loom sees every access to shared memory, payload bytes included.
#[cfg(loom)]
#[derive(Debug)]
struct Memory {
    control: Box<Control>,
    words: Vec<AtomicU64>,
}

/// A queue's ring in shared memory; see the module docs for the protocol.
#[derive(Debug)]
pub(crate) struct Ring {
    memory: Memory,
}

// SAFETY: every field of the shared memory is an atomic or a process-shared mutex, and the
// payload bytes are only touched under the protocol above; the mapping itself is plain memory.
unsafe impl Sync for Ring {}
// SAFETY: as above; nothing in `Ring` is tied to the creating thread.
unsafe impl Send for Ring {}

#[cfg(not(loom))]
impl Ring {
    /// A new ring holding at most `bound` messages (0: unbounded), in a fresh segment.
    pub(crate) fn create(bound: u64) -> io::Result<Ring> {
        let segment =
            crate::mem::segment::Segment::create(KIND, DATA_OFFSET + MAX_CAP as usize, 64)?;
        let data = segment
            .slice_ptr::<u8>(DATA_OFFSET, MAX_CAP as usize)
            .cast::<u8>();
        let ring = Ring {
            memory: Memory { segment, data },
        };
        let c = ring.ctl();
        c.ident.0.bound.store(bound, Ordering::Relaxed);
        c.ident.0.max_cap.store(MAX_CAP, Ordering::Relaxed);
        c.cap.0.store(INITIAL_CAP, Ordering::Release);
        Ok(ring)
    }

    fn ctl(&self) -> &Control {
        self.memory.segment.get::<Control>(0)
    }

    fn data(&self) -> *mut u8 {
        self.memory.data.as_ptr()
    }

    /// The header word at `pos` under capacity `cap`.
    fn word(&self, cap: u64, pos: u64) -> &AtomicU64 {
        debug_assert!(pos % 8 == 0 && cap <= MAX_CAP);
        // SAFETY: the offset is below `cap <= MAX_CAP`, 8-aligned (the data area starts at
        // a page boundary), inside the mapping; the memory is only ever accessed as `u64`
        // words or bytes, and `AtomicU64` has the layout of a `u64`.
        unsafe {
            &*self
                .data()
                .add((pos & (cap - 1)) as usize)
                .cast::<AtomicU64>()
        }
    }

    /// Copies `src` into the data area at `off..off + src.len()` (no wrap).
    fn write_at(&self, off: u64, src: &[u8]) {
        // SAFETY: callers pass ranges inside `[0, cap)` that the protocol gives this side
        // alone (free space for a producer, the upper half during growth).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data().add(off as usize), src.len())
        }
    }

    /// The data area bytes `off..off + len` (no wrap), which the caller owns for reading.
    fn bytes_at(&self, off: u64, len: usize) -> &[u8] {
        // SAFETY: callers pass a committed record's range under `clock` (or both locks):
        // no producer writes it until the consumer releases it by moving `head`.
        unsafe { std::slice::from_raw_parts(self.data().add(off as usize), len) }
    }

    /// Copies `len` bytes inside the data area from `from` to `to` (disjoint ranges).
    fn move_within(&self, from: u64, to: u64, len: u64) {
        // SAFETY: growth holds both locks; `from` is live data under the old capacity and
        // `to` is in the upper half, which holds nothing live, so the ranges are disjoint;
        // both lie below the new capacity, inside the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.data().add(from as usize),
                self.data().add(to as usize),
                len as usize,
            )
        }
    }
}

#[cfg(loom)]
impl Ring {
    /// A ring on the heap for loom models.
    pub(crate) fn create(bound: u64) -> io::Result<Ring> {
        let signal = || {
            Line(Signal {
                seq: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
            })
        };
        let control = Box::new(Control {
            ident: Line(Ident {
                bound: AtomicU64::new(bound),
                max_cap: AtomicU64::new(MAX_CAP),
            }),
            plock: Line(RawLock::default()),
            producer: Line(ProducerSide {
                tail: AtomicU64::new(0),
                tail_idx: AtomicU64::new(0),
                head_cache: AtomicU64::new(0),
                gets_cache: AtomicU64::new(0),
            }),
            puts: Line(AtomicU64::new(0)),
            clock: Line(RawLock::default()),
            consumer: Line(ConsumerSide {
                head: AtomicU64::new(0),
                gets: AtomicU64::new(0),
            }),
            cap: Line(AtomicU64::new(INITIAL_CAP)),
            closed: Line(AtomicU32::new(0)),
            not_empty: signal(),
            not_full: signal(),
            task_dones: Line(AtomicU64::new(0)),
            all_done: signal(),
        });
        let words = (0..MAX_CAP / 8).map(|_| AtomicU64::new(0)).collect();
        Ok(Ring {
            memory: Memory { control, words },
        })
    }

    fn ctl(&self) -> &Control {
        &self.memory.control
    }

    fn word(&self, cap: u64, pos: u64) -> &AtomicU64 {
        &self.memory.words[((pos & (cap - 1)) / 8) as usize]
    }

    fn raw_word(&self, off: u64) -> &AtomicU64 {
        &self.memory.words[(off / 8) as usize]
    }

    /// One load and one store per word touched (the owner of the range is the only writer).
    fn write_at(&self, off: u64, src: &[u8]) {
        let mut at = off;
        let mut rest = src;
        while !rest.is_empty() {
            let w = self.raw_word(at & !7);
            let first = (at & 7) as usize;
            let n = (8 - first).min(rest.len());
            let mut bytes = w.load(Ordering::Relaxed).to_le_bytes();
            bytes[first..first + n].copy_from_slice(&rest[..n]);
            w.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
            at += n as u64;
            rest = &rest[n..];
        }
    }

    fn read_into(&self, off: u64, out: &mut Vec<u8>, len: usize) {
        for i in 0..len as u64 {
            let at = off + i;
            let w = self.raw_word(at & !7).load(Ordering::Relaxed);
            out.push((w >> ((at & 7) * 8)) as u8);
        }
    }

    fn move_within(&self, from: u64, to: u64, len: u64) {
        let mut buf = Vec::with_capacity(len as usize);
        self.read_into(from, &mut buf, len as usize);
        self.write_at(to, &buf);
    }
}

/// The size of a record with a `len`-byte payload, header and padding included.
fn record_size(len: u64) -> u64 {
    (HEADER + len + 7) & !7
}

impl Ring {
    /// The bound given at creation (0: unbounded).
    pub(crate) fn bound(&self) -> u64 {
        self.ctl().ident.0.bound.load(Ordering::Relaxed)
    }

    /// Messages in the queue now (committed and not yet taken).
    pub(crate) fn len(&self) -> u64 {
        let c = self.ctl();
        let gets = c.consumer.0.gets.load(Ordering::Acquire);
        c.puts.0.load(Ordering::Acquire).saturating_sub(gets)
    }

    /// `true` once [`Ring::close`] was called by any process.
    pub(crate) fn is_closed(&self) -> bool {
        self.ctl().closed.0.load(Ordering::Acquire) != 0
    }

    /// Refuses further puts everywhere; gets drain what is left, then fail with `Closed`.
    pub(crate) fn close(&self) {
        let c = self.ctl();
        c.closed.0.store(1, Ordering::SeqCst);
        self.notify(&c.not_empty.0);
        self.notify(&c.not_full.0);
    }

    /// Takes one side's lock, repairing what a dead owner left; `None` on timeout.
    fn lock<'a>(
        &'a self,
        lock: &'a RawLock,
        wait: Wait,
        repair: impl FnOnce(&Ring),
    ) -> Option<SideGuard<'a>> {
        // A holder never sleeps and holds the lock for one copy: even a non-blocking call
        // waits for it, so `try_put` on a queue with room never fails spuriously.
        let got = lock.lock(me(), wait.deadline(), is_alive).ok()?;
        let guard = SideGuard(lock);
        if got == Acquired::OwnerDied {
            repair(self);
        }
        Some(guard)
    }

    /// Producer-side repair after a producer died holding `plock` (see "Crash safety").
    fn repair_producers(&self) {
        let c = self.ctl();
        let p = &c.producer.0;
        let cap = c.cap.0.load(Ordering::Acquire);
        let tail = p.tail.load(Ordering::Relaxed);
        if self.word(cap, tail).load(Ordering::Acquire) == tail | COMMITTED {
            let len = self.word(cap, tail + 8).load(Ordering::Relaxed);
            let idx = self.word(cap, tail + 16).load(Ordering::Relaxed);
            p.tail_idx.store(idx + 1, Ordering::Release);
            p.tail.store(tail + record_size(len), Ordering::Release);
        }
        c.puts
            .0
            .store(p.tail_idx.load(Ordering::Relaxed), Ordering::Release);
    }

    /// Puts one encoded message.
    pub(crate) fn put(&self, msg: &[u8], wait: Wait) -> Result<(), PutFail> {
        if msg.len() > MAX_MESSAGE {
            return Err(PutFail::TooLong);
        }
        let size = record_size(msg.len() as u64);
        let c = self.ctl();
        let mut may_grow = matches!(wait, Wait::No);
        loop {
            if self.is_closed() {
                return Err(PutFail::Closed);
            }
            let (attempt, gets_seen) = {
                let _guard = self
                    .lock(&c.plock.0, wait, Ring::repair_producers)
                    .ok_or(PutFail::Full)?;
                // Read before looking for room, so a get after the look changes it.
                let gets_seen = c.not_full.0.seq.load(Ordering::Acquire);
                (self.put_locked(msg, size, may_grow), gets_seen)
            };
            match attempt {
                Attempt::Put => {
                    self.notify(&c.not_empty.0);
                    return Ok(());
                }
                Attempt::WouldGrow => {
                    // See "Growth": give an active consumer one spin's time to make room.
                    may_grow = !park::spin(&c.not_full.0.seq, gets_seen, wait.deadline());
                }
                Attempt::Full => {
                    let room = || self.is_closed() || self.has_room(size);
                    if !self.wait_for(&c.not_full.0, wait, room) {
                        return Err(PutFail::Full);
                    }
                }
            }
        }
    }

    /// A hint, without locks: could a record of `size` bytes be put now?
    fn has_room(&self, size: u64) -> bool {
        let c = self.ctl();
        let bound = self.bound();
        if bound != 0 && self.len() >= bound {
            return false;
        }
        let cap = c.cap.0.load(Ordering::Acquire);
        let head = c.consumer.0.head.load(Ordering::Acquire);
        let used = c
            .producer
            .0
            .tail
            .load(Ordering::Acquire)
            .saturating_sub(head);
        cap < c.ident.0.max_cap.load(Ordering::Relaxed) || used.saturating_add(size + 8) <= cap
    }

    /// The producer's steps 1-5 under `plock`, growing the ring if it must and `may_grow`
    /// (or the ring is still small).
    fn put_locked(&self, msg: &[u8], size: u64, may_grow: bool) -> Attempt {
        let c = self.ctl();
        let p = &c.producer.0;
        let bound = self.bound();
        let tail = p.tail.load(Ordering::Relaxed);
        let idx = p.tail_idx.load(Ordering::Relaxed);
        if bound != 0 {
            let mut gets = p.gets_cache.load(Ordering::Relaxed);
            if idx.saturating_sub(gets) >= bound {
                gets = c.consumer.0.gets.load(Ordering::Acquire);
                p.gets_cache.store(gets, Ordering::Relaxed);
                if idx.saturating_sub(gets) >= bound {
                    return Attempt::Full;
                }
            }
        }
        let need = size + 8;
        let mut cap = c.cap.0.load(Ordering::Relaxed);
        let mut head = p.head_cache.load(Ordering::Relaxed);
        if tail + need - head > cap {
            head = c.consumer.0.head.load(Ordering::Acquire);
            p.head_cache.store(head, Ordering::Relaxed);
            if tail + need - head > cap {
                if cap >= c.ident.0.max_cap.load(Ordering::Relaxed) {
                    return Attempt::Full;
                }
                if !may_grow && cap >= GROW_FREELY && need <= cap / 2 {
                    return Attempt::WouldGrow;
                }
                match self.grow(tail, need) {
                    Some(grown) => cap = grown,
                    None => return Attempt::Full,
                }
            }
        }
        // Step 2: payload, then the other header words.
        self.write_wrapping(cap, tail + HEADER, msg);
        self.word(cap, tail + 8)
            .store(msg.len() as u64, Ordering::Relaxed);
        self.word(cap, tail + 16).store(idx, Ordering::Relaxed);
        // Step 3: the next record's state word reads "not committed".
        self.word(cap, tail + size).store(0, Ordering::Relaxed);
        // Step 4: the commit.
        self.word(cap, tail)
            .store(tail | COMMITTED, Ordering::Release);
        // Step 5 (order matters for the repair: `tail_idx` before `tail`).
        p.tail_idx.store(idx + 1, Ordering::Release);
        p.tail.store(tail + size, Ordering::Release);
        c.puts.0.store(idx + 1, Ordering::Release);
        Attempt::Put
    }

    /// Copies `src` to position `pos` onwards, wrapping at `cap`.
    fn write_wrapping(&self, cap: u64, pos: u64, src: &[u8]) {
        let off = pos & (cap - 1);
        let first = ((cap - off) as usize).min(src.len());
        self.write_at(off, &src[..first]);
        if first < src.len() {
            self.write_at(0, &src[first..]);
        }
    }

    /// Doubles the capacity until `need` more bytes fit after `tail`; holds `plock` and takes
    /// `clock`. `None` when the ring is already as large as it may get.
    fn grow(&self, tail: u64, need: u64) -> Option<u64> {
        let c = self.ctl();
        let cap = c.cap.0.load(Ordering::Relaxed);
        let max_cap = c.ident.0.max_cap.load(Ordering::Relaxed);
        let _consumers = self.lock(&c.clock.0, Wait::Forever, |_| {})?;
        let head = c.consumer.0.head.load(Ordering::Acquire);
        c.producer.0.head_cache.store(head, Ordering::Relaxed);
        let used = tail - head;
        if used + need <= cap {
            return Some(cap);
        }
        let mut new_cap = cap * 2;
        while used + need > new_cap {
            new_cap *= 2;
        }
        if new_cap > max_cap {
            return None;
        }
        let mut pos = head;
        while pos < tail {
            let old = pos & (cap - 1);
            let new = pos & (new_cap - 1);
            let run = (tail - pos).min(cap - old).min(new_cap - new);
            if old != new {
                self.move_within(old, new, run);
            }
            pos += run;
        }
        self.word(new_cap, tail).store(0, Ordering::Relaxed);
        c.cap.0.store(new_cap, Ordering::Release);
        Some(new_cap)
    }

    /// Takes the oldest message and hands its bytes to `read`.
    pub(crate) fn get<R>(&self, wait: Wait, read: impl FnOnce(&[u8]) -> R) -> Result<R, GetFail> {
        let c = self.ctl();
        let mut read = Some(read);
        loop {
            let closed = self.is_closed();
            {
                let _guard = self.lock(&c.clock.0, wait, |_| {}).ok_or(GetFail::Empty)?;
                if let Some(out) = self.get_locked(&mut read)? {
                    drop(_guard);
                    self.notify(&c.not_full.0);
                    return Ok(out);
                }
            }
            if closed {
                return Err(GetFail::Closed);
            }
            let ready = || self.is_closed() || self.len() > 0;
            if !self.wait_for(&c.not_empty.0, wait, ready) {
                return Err(GetFail::Empty);
            }
        }
    }

    /// The consumer's steps 1-4 under `clock`; `Ok(None)` when nothing is committed.
    fn get_locked<R>(
        &self,
        read: &mut Option<impl FnOnce(&[u8]) -> R>,
    ) -> Result<Option<R>, GetFail> {
        let c = self.ctl();
        let s = &c.consumer.0;
        let cap = c.cap.0.load(Ordering::Acquire);
        let head = s.head.load(Ordering::Relaxed);
        if self.word(cap, head).load(Ordering::Acquire) != head | COMMITTED {
            return Ok(None);
        }
        let len = self.word(cap, head + 8).load(Ordering::Relaxed);
        let idx = self.word(cap, head + 16).load(Ordering::Relaxed);
        if len > MAX_MESSAGE as u64 || record_size(len) + 8 > cap {
            return Err(GetFail::Corrupt(format!(
                "record at {head} claims {len} bytes in a ring of {cap}"
            )));
        }
        let Some(read) = read.take() else {
            return Ok(None);
        };
        let out = self.read_wrapping(cap, head + HEADER, len as usize, read);
        s.gets.store(idx + 1, Ordering::Release);
        s.head.store(head + record_size(len), Ordering::Release);
        Ok(Some(out))
    }

    /// Hands the `len` bytes at `pos` to `read`: in place when contiguous, else from a copy.
    #[cfg(not(loom))]
    fn read_wrapping<R>(&self, cap: u64, pos: u64, len: usize, read: impl FnOnce(&[u8]) -> R) -> R {
        let off = pos & (cap - 1);
        let first = ((cap - off) as usize).min(len);
        if first == len {
            return read(self.bytes_at(off, len));
        }
        let mut joined = Vec::with_capacity(len);
        joined.extend_from_slice(self.bytes_at(off, first));
        joined.extend_from_slice(self.bytes_at(0, len - first));
        read(&joined)
    }

    #[cfg(loom)]
    fn read_wrapping<R>(&self, cap: u64, pos: u64, len: usize, read: impl FnOnce(&[u8]) -> R) -> R {
        let off = pos & (cap - 1);
        let first = ((cap - off) as usize).min(len);
        let mut out = Vec::with_capacity(len);
        self.read_into(off, &mut out, first);
        self.read_into(0, &mut out, len - first);
        read(&out)
    }

    /// Counts one `task_done`; `false` (and no change) when every put is already done.
    pub(crate) fn task_done(&self) -> bool {
        let c = self.ctl();
        let mut done = c.task_dones.0.load(Ordering::Acquire);
        loop {
            let limit = self.tasks_put();
            if done >= limit {
                return false;
            }
            match c.task_dones.0.compare_exchange_weak(
                done,
                done + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if done + 1 >= limit {
                        self.notify(&c.all_done.0);
                    }
                    return true;
                }
                Err(now) => done = now,
            }
        }
    }

    /// Messages ever put, as far as task accounting is concerned (a consumer may have taken
    /// a message a moment before its producer bumped `puts`).
    fn tasks_put(&self) -> u64 {
        let c = self.ctl();
        let gets = c.consumer.0.gets.load(Ordering::Acquire);
        c.puts.0.load(Ordering::Acquire).max(gets)
    }

    /// Puts not yet matched by a `task_done`.
    pub(crate) fn unfinished(&self) -> u64 {
        let done = self.ctl().task_dones.0.load(Ordering::Acquire);
        self.tasks_put().saturating_sub(done)
    }

    /// Waits until every put message was `task_done`; `false` on timeout.
    pub(crate) fn join(&self, wait: Wait) -> bool {
        let all_done = || self.unfinished() == 0;
        all_done() || self.wait_for(&self.ctl().all_done.0, wait, all_done)
    }

    /// Announces one event of `signal`'s kind: bumps `seq` (spinners see it) and wakes the
    /// sleepers, if there are any. The fence pairs with the one in `wait_for`: either the
    /// sleeper's re-check sees our change, or we see its count.
    fn notify(&self, signal: &Signal) {
        signal.seq.fetch_add(1, Ordering::Release);
        fence(Ordering::SeqCst);
        if signal.waiters.load(Ordering::Relaxed) != 0 {
            park::wake(&signal.seq, u32::MAX);
        }
    }

    /// Waits until `ready()` or the wait runs out; `false` on timeout. Follows the rule of
    /// `sync::park`: spin unannounced, then count itself in `waiters` and sleep.
    fn wait_for(&self, signal: &Signal, wait: Wait, ready: impl Fn() -> bool) -> bool {
        if matches!(wait, Wait::No) {
            return ready();
        }
        let deadline = wait.deadline();
        loop {
            let seen = signal.seq.load(Ordering::Acquire);
            if ready() {
                return true;
            }
            if deadline.has_passed() {
                return false;
            }
            if park::spin(&signal.seq, seen, deadline) {
                continue;
            }
            signal.waiters.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let seen = signal.seq.load(Ordering::SeqCst);
            let parked = (!ready()).then(|| park::sleep(&signal.seq, seen, deadline));
            signal.waiters.fetch_sub(1, Ordering::SeqCst);
            match parked {
                None => return true,
                Some(Parked::TimedOut) => return ready(),
                Some(Parked::Woken) => {}
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn take(ring: &Ring, wait: Wait) -> Result<Vec<u8>, GetFail> {
        ring.get(wait, <[u8]>::to_vec)
    }

    /// A message whose bytes encode its producer, number and length.
    fn message(producer: u8, n: u32, len: usize) -> Vec<u8> {
        let mut m = vec![producer; len.max(5)];
        m[1..5].copy_from_slice(&n.to_le_bytes());
        m
    }

    #[test]
    fn fifo_across_wrap_and_growth_with_every_size() {
        let ring = Ring::create(0).unwrap();
        let sizes = [0usize, 1, 7, 8, 9, 23, 24, 100, 4096, 70_000, 300_000, 3];
        for round in 0..40u32 {
            for (i, &len) in sizes.iter().enumerate() {
                let m = vec![(round as usize * 31 + i) as u8; len];
                ring.put(&m, Wait::No).unwrap();
            }
            for (i, &len) in sizes.iter().enumerate() {
                let m = take(&ring, Wait::No).unwrap();
                assert_eq!(m, vec![(round as usize * 31 + i) as u8; len]);
            }
        }
        assert_eq!(take(&ring, Wait::No), Err(GetFail::Empty));
        assert!(ring.ctl().cap.0.load(Ordering::Relaxed) > INITIAL_CAP);
    }

    #[test]
    fn an_unbounded_put_without_consumers_grows_past_the_free_growth_size() {
        let ring = Ring::create(0).unwrap();
        let m = vec![9u8; 100 << 10];
        for _ in 0..100 {
            ring.put(&m, Wait::Forever).unwrap();
        }
        assert!(ring.ctl().cap.0.load(Ordering::Relaxed) > GROW_FREELY);
        for _ in 0..100 {
            assert_eq!(take(&ring, Wait::No).unwrap(), m);
        }
    }

    #[test]
    fn growth_keeps_messages_queued_across_the_old_end() {
        let ring = Ring::create(0).unwrap();
        // Fill to just below the initial capacity with a few messages, drain some so the
        // live range wraps, then force growth with a large message.
        for n in 0..30 {
            ring.put(&message(1, n, 4000), Wait::No).unwrap();
        }
        for n in 0..20 {
            assert_eq!(take(&ring, Wait::No).unwrap(), message(1, n, 4000));
        }
        for n in 30..50 {
            ring.put(&message(1, n, 4000), Wait::No).unwrap();
        }
        ring.put(&message(2, 0, 1 << 20), Wait::No).unwrap();
        for n in 20..50 {
            assert_eq!(take(&ring, Wait::No).unwrap(), message(1, n, 4000));
        }
        assert_eq!(take(&ring, Wait::No).unwrap(), message(2, 0, 1 << 20));
    }

    #[test]
    fn bound_counts_messages_and_timeouts_wait_at_least_the_timeout() {
        let ring = Ring::create(2).unwrap();
        ring.put(b"a", Wait::No).unwrap();
        ring.put(b"", Wait::No).unwrap();
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.put(b"c", Wait::No), Err(PutFail::Full));
        let t = Instant::now();
        let d = Duration::from_millis(30);
        assert_eq!(ring.put(b"c", Wait::for_duration(d)), Err(PutFail::Full));
        assert!(t.elapsed() >= d);
        assert_eq!(take(&ring, Wait::No).unwrap(), b"a");
        ring.put(b"c", Wait::No).unwrap();
        assert_eq!(take(&ring, Wait::No).unwrap(), b"");
        assert_eq!(take(&ring, Wait::No).unwrap(), b"c");
        let t = Instant::now();
        assert_eq!(take(&ring, Wait::for_duration(d)), Err(GetFail::Empty));
        assert!(t.elapsed() >= d);
    }

    #[test]
    fn close_refuses_puts_drains_then_reports_closed() {
        let ring = Arc::new(Ring::create(0).unwrap());
        ring.put(b"last", Wait::No).unwrap();
        ring.close();
        ring.close();
        assert_eq!(ring.put(b"x", Wait::No), Err(PutFail::Closed));
        assert_eq!(take(&ring, Wait::Forever).unwrap(), b"last");
        assert_eq!(take(&ring, Wait::Forever), Err(GetFail::Closed));
        // A sleeping get wakes up on close.
        let ring = Arc::new(Ring::create(0).unwrap());
        let r = Arc::clone(&ring);
        let sleeper = std::thread::spawn(move || take(&r, Wait::Forever));
        std::thread::sleep(Duration::from_millis(20));
        ring.close();
        assert_eq!(sleeper.join().unwrap(), Err(GetFail::Closed));
    }

    /// Leaves the state of a producer killed right after its commit: `msg` committed, step
    /// 5 (`tail_idx`, `tail`, `puts`) not done.
    fn commit_without_step_5(ring: &Ring, msg: &[u8]) {
        let p = &ring.ctl().producer.0;
        let tail = p.tail.load(Ordering::Relaxed);
        let idx = p.tail_idx.load(Ordering::Relaxed);
        let size = record_size(msg.len() as u64);
        assert_eq!(ring.put_locked(msg, size, true), Attempt::Put);
        p.tail.store(tail, Ordering::Relaxed);
        p.tail_idx.store(idx, Ordering::Relaxed);
        ring.ctl().puts.0.store(idx, Ordering::Relaxed);
    }

    #[test]
    fn repair_finishes_a_commit_whose_producer_died_before_step_5() {
        let ring = Ring::create(0).unwrap();
        ring.put(b"first", Wait::No).unwrap();
        commit_without_step_5(&ring, b"second");
        ring.repair_producers();
        assert_eq!(ring.len(), 2);
        ring.put(b"third", Wait::No).unwrap();
        for m in [&b"first"[..], b"second", b"third"] {
            assert_eq!(take(&ring, Wait::No).unwrap(), m);
        }
    }

    #[test]
    fn repair_drops_an_uncommitted_record() {
        let ring = Ring::create(0).unwrap();
        let p = &ring.ctl().producer.0;
        // A producer killed mid-copy: payload and header words written, no commit.
        let cap = INITIAL_CAP;
        ring.write_wrapping(cap, HEADER, b"torn");
        ring.word(cap, 8).store(4, Ordering::Relaxed);
        ring.repair_producers();
        assert_eq!(p.tail.load(Ordering::Relaxed), 0);
        assert_eq!(ring.len(), 0);
        ring.put(b"whole", Wait::No).unwrap();
        assert_eq!(take(&ring, Wait::No).unwrap(), b"whole");
    }

    /// A pid that certainly names no process: a child that has exited and been reaped.
    fn dead_token() -> Token {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        Token::from_id(pid)
    }

    #[test]
    fn a_producer_that_died_holding_the_lock_is_taken_over_and_repaired() {
        let ring = Ring::create(0).unwrap();
        ring.put(b"before", Wait::No).unwrap();
        // A producer got the lock and committed a record, then died before step 5.
        assert!(ring.ctl().plock.0.try_lock(dead_token(), |_| true).is_ok());
        commit_without_step_5(&ring, b"committed");
        ring.put(b"after", Wait::Forever).unwrap();
        for m in [&b"before"[..], b"committed", b"after"] {
            assert_eq!(take(&ring, Wait::No).unwrap(), m);
        }
        assert_eq!(ring.len(), 0);
    }

    #[test]
    fn a_consumer_that_died_holding_the_lock_loses_nothing_it_had_not_released() {
        let ring = Ring::create(0).unwrap();
        ring.put(b"one", Wait::No).unwrap();
        ring.put(b"two", Wait::No).unwrap();
        // A consumer took the lock and read "one" but died before moving `head`.
        assert!(ring.ctl().clock.0.try_lock(dead_token(), |_| true).is_ok());
        assert_eq!(take(&ring, Wait::Forever).unwrap(), b"one");
        assert_eq!(take(&ring, Wait::No).unwrap(), b"two");
    }

    #[test]
    fn task_accounting() {
        let ring = Ring::create(0).unwrap();
        assert!(ring.join(Wait::No));
        assert!(!ring.task_done());
        ring.put(b"1", Wait::No).unwrap();
        ring.put(b"2", Wait::No).unwrap();
        assert_eq!(ring.unfinished(), 2);
        assert!(!ring.join(Wait::for_duration(Duration::from_millis(5))));
        assert!(ring.task_done());
        assert!(ring.task_done());
        assert!(!ring.task_done());
        assert!(ring.join(Wait::No));
    }

    #[test]
    fn threads_mpmc_exactly_once_in_producer_order() {
        const PRODUCERS: u8 = 3;
        const EACH: u32 = 20_000;
        let ring = Arc::new(Ring::create(64).unwrap());
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let ring = Arc::clone(&ring);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(m) = take(&ring, Wait::Forever) {
                        got.push((m[0], u32::from_le_bytes(m[1..5].try_into().unwrap())));
                    }
                    got
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let ring = Arc::clone(&ring);
                std::thread::spawn(move || {
                    for n in 0..EACH {
                        ring.put(&message(p, n, 5 + (n as usize % 40)), Wait::Forever)
                            .unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        ring.close();
        let mut seen = vec![Vec::new(); PRODUCERS as usize];
        for c in consumers {
            let got = c.join().unwrap();
            let mut last = vec![None; PRODUCERS as usize];
            for (p, n) in got {
                assert!(last[p as usize] < Some(n), "order within one consumer");
                last[p as usize] = Some(n);
                seen[p as usize].push(n);
            }
        }
        for s in &mut seen {
            s.sort_unstable();
            assert_eq!(*s, (0..EACH).collect::<Vec<_>>());
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A 12-byte message naming its producer and number: records of 40 bytes, so the
    /// second one does not fit the 64-byte initial ring and must wrap or grow.
    fn message(producer: u8, n: u8) -> Vec<u8> {
        let mut m = vec![0xA5; 12];
        m[0] = producer;
        m[1] = n;
        m
    }

    fn take(ring: &Ring) -> Vec<u8> {
        ring.get(Wait::Forever, <[u8]>::to_vec).unwrap()
    }

    /// Starts producers 0 and 1, each putting its message 0.
    fn two_producers(ring: &Arc<Ring>) -> Vec<thread::JoinHandle<()>> {
        (0..2u8)
            .map(|p| {
                let ring = Arc::clone(ring);
                thread::spawn(move || ring.put(&message(p, 0), Wait::Forever).unwrap())
            })
            .collect()
    }

    /// Checks that `got` holds the two producers' messages once each, in any order.
    fn assert_both(mut got: Vec<Vec<u8>>) {
        got.sort();
        assert_eq!(got, vec![message(0, 0), message(1, 0)]);
    }

    /// Two producers race for the claim (`plock`); the second put finds the 64-byte ring
    /// too small and grows it. Both messages arrive once and intact.
    #[test]
    fn loom_two_producers_claim_and_grow() {
        loom::model(|| {
            let ring = Arc::new(Ring::create(0).unwrap());
            for p in two_producers(&ring) {
                p.join().unwrap();
            }
            assert_both(vec![take(&ring), take(&ring)]);
        });
    }

    /// A producer commits, then grows the ring (taking `clock`) while a consumer is reading
    /// or waiting: the consumer sees every commit, in order, across the growth.
    #[test]
    fn loom_commit_and_growth_against_a_consumer() {
        loom::model(|| {
            let ring = Arc::new(Ring::create(0).unwrap());
            let r = Arc::clone(&ring);
            let producer = thread::spawn(move || {
                r.put(&message(0, 0), Wait::Forever).unwrap();
                r.put(&message(0, 1), Wait::Forever).unwrap();
            });
            assert_eq!(take(&ring), message(0, 0));
            assert_eq!(take(&ring), message(0, 1));
            producer.join().unwrap();
        });
    }

    /// All three at once: two producers and a consumer. Waiting loops (yielding spin locks
    /// and polls) make executions long, so this model is bounded to one preemption.
    #[test]
    fn loom_two_producers_one_consumer() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(1);
        model.max_branches = 10_000;
        model.check(|| {
            let ring = Arc::new(Ring::create(0).unwrap());
            let producers = two_producers(&ring);
            let got = vec![take(&ring), take(&ring)];
            for p in producers {
                p.join().unwrap();
            }
            assert_both(got);
            assert_eq!(ring.len(), 0);
        });
    }

    /// One producer and one consumer on a ring bounded to one message: the producer waits
    /// for room (`not_full`), the consumer for messages (`not_empty`); the records wrap
    /// around the 64-byte ring. Order is kept and no wake-up is lost (loom would report the
    /// model as deadlocked).
    #[test]
    fn loom_bounded_hand_off_keeps_order_and_wakes() {
        loom::model(|| {
            let ring = Arc::new(Ring::create(1).unwrap());
            let r = Arc::clone(&ring);
            let producer = thread::spawn(move || {
                for n in 0..3 {
                    r.put(&message(0, n), Wait::Forever).unwrap();
                }
            });
            for n in 0..3 {
                assert_eq!(take(&ring), message(0, n));
            }
            producer.join().unwrap();
        });
    }

    /// `close` races with a consumer: the message put before it is still delivered, then
    /// the consumer sees `Closed` instead of sleeping forever.
    #[test]
    fn loom_close_drains_then_closes() {
        loom::model(|| {
            let ring = Arc::new(Ring::create(0).unwrap());
            let r = Arc::clone(&ring);
            let closer = thread::spawn(move || {
                r.put(&message(0, 0), Wait::Forever).unwrap();
                r.close();
            });
            assert_eq!(take(&ring), message(0, 0));
            assert_eq!(
                ring.get(Wait::Forever, <[u8]>::to_vec),
                Err(GetFail::Closed)
            );
            closer.join().unwrap();
        });
    }
}
