//! The shared-memory ring under every queue: variable-length byte messages, many producers
//! and many consumers in any processes, and no corruption or deadlock when one of them is
//! killed at any instant.
//!
//! This file is the protocol. The memory it runs on is [`Memory`], with two backends: a
//! shared segment (`shm_memory.rs`) and, under `--cfg loom`, heap atomics that loom can see
//! (`loom_memory.rs`). Tests: `ring/tests.rs`, loom models: `ring/loom_tests.rs`.
//!
//! # Layout
//!
//! One anonymous shared segment: a control page ([`Control`], each group of fields on its
//! own cache line) and a data area of `MAX_CAP` bytes of address space, of which only the
//! first `cap` bytes (a power of two, starting at `INITIAL_CAP`) are in use. Pages the ring
//! never reached are never touched, so they cost no memory.
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
//! (`raw::RawLock`), held only for a copy, never while sleeping. Between the two
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
//! # Who owns which bytes
//!
//! The [`Memory`] accessors that touch data bytes are `unsafe fn`s whose contract is this
//! ownership rule; every call site says which case it is in.
//!
//! - **Free space** `[tail, head + cap)` belongs to the holder of `plock`, for plain writes.
//!   The consumer hands bytes back with its Release store of `head` (step 4); the producer
//!   takes them with an Acquire load of `head` (step 1).
//! - **A committed record** `[head, tail)` belongs to the holder of `clock`, for reading;
//!   nobody writes it. The producer hands it over with its Release store of `state` (step 4);
//!   the consumer takes it with an Acquire load of `state` (step 1).
//! - **Growth** holds both locks, so the grower owns everything; the half that the doubling
//!   adds holds nothing live.
//! - The `state` word at `head` and at `tail` is only ever accessed atomically (the
//!   producer's payload starts after it, step 3 zeroes the next one atomically), so either
//!   side may load it under its own lock.
//!
//! # Crash safety
//!
//! When a process dies holding `plock` or `clock`, the next locker finds the holder dead
//! (`RawLock` checks its liveness), takes the lock over and repairs:
//! - producer side: every step before the commit only wrote free space, so an uncommitted
//!   record is simply overwritten. If the commit happened but step 5 did not finish,
//!   `state(tail)` is committed at `tail`: the repair advances `tail`/`tail_idx` past it and
//!   sets `puts = tail_idx`. Nothing is lost or doubled.
//! - consumer side: if the dead consumer did not release the bytes (step 4), the record is
//!   still committed at `head` and the next consumer delivers it: the message the dead
//!   consumer was reading is not lost but delivered once, to someone else. If it died
//!   between steps 3 and 4, `gets` already counts that message as taken: the repair sets
//!   `gets` back to the record's `idx` and wakes the waiting consumers. Once step 4 is done
//!   the message is gone: if the consumer dies between step 4 and handing the value to its
//!   caller, that one message is lost. This is the only loss the design allows.
//!
//! A consumer that goes to sleep while a side lock is held may be waiting on a dead holder
//! that left the counts saying "empty" while a message is committed at `head` (a consumer
//! between steps 3 and 4, a producer between steps 4 and 5), and nobody will wake it: so it
//! sleeps at most `LIVENESS_PERIOD` at a time, and when it wakes to find a side lock held,
//! looks again through `clock`, which delivers a committed record whatever the counts say
//! and detects a dead holder. (With no side lock held, nobody is half-way through a step,
//! and the counts are right.)
//!
//! `puts`, `gets` (message counts) feed `qsize`, the bound and the producers' wait; the
//! producer's `head_cache`/`gets_cache` spare it a cache miss on the consumers' line for
//! most puts.
//!
//! # Growth
//!
//! A producer that finds no room and may grow (the ring is below `MAX_CAP`) also takes
//! `clock` (lock order is always `plock` then `clock`; consumers never take `plock`),
//! copies the live bytes `[head, tail)` to their offsets under the doubled capacity, zeroes
//! `state(tail)` there and then stores the new `cap`. Doubling maps every position either to
//! its old offset or into the upper half, which holds nothing live (at most the leftovers
//! of a grower killed mid-copy, whose stale `state` words name old positions), so the copy
//! overwrites nothing live: a grower killed mid-copy leaves the old ring intact. Messages
//! larger than the current ring therefore just grow it; the limit is `MAX_CAP` of encoded
//! messages at once.
//!
//! Below `GROW_FREELY` (4 MiB) a full ring grows at once. Above it, and when the message
//! would fit in half the ring, a put that finds no room first waits for a get
//! (`grow_patience`: what a consumer needs to copy out a record of that size at 1 GB/s,
//! at least one spin of ~50 us, 1 ms for 1 MiB), and grows only if none comes: an active
//! consumer keeps the ring small (cache- and page-friendly: every byte of growth is a
//! fresh page to fault in), while a stalled or absent one costs one patience per doubling.
//! So an unbounded put waits for longer than that only while a consumer keeps up.
//!
//! Each process faults in the pages of the first 16 MiB of the data area in one call as
//! the ring grows into them (`Memory::prefault`), rather than one page fault per page on
//! first touch: a fresh queue carrying 1 MiB messages touches a 4 MiB ring, 1,024 pages,
//! in each process.
//!
//! # Waiting
//!
//! Each direction has a [`Signal`]: a `seq` word that every put (for `not_empty`) or every
//! get (for `not_full`) bumps, and a count of sleepers. A get that finds nothing, or a put
//! that finds no room, follows `raw::park`'s rule: it spins on `seq` for a short while
//! (waking a process on another CPU costs ~40 us here, so most hand-offs are caught by the
//! spin), then counts itself in `waiters` and sleeps on `seq`. The other side wakes only when
//! `waiters` is non-zero, so a put with no sleeping consumer makes no system call.
//!
//! A call that may not wait (`try_`) takes a side lock only if it is free now: a stopped
//! process holding it must not block it (Python's `get_nowait` says `Empty` then too).
//!
//! # Shutdown
//!
//! `closed` is 0 while open, [`DRAIN`] after a shutdown (puts fail, gets take what is left),
//! [`IMMEDIATE`] after an immediate one (gets fail at once; the messages left were counted
//! as done, so `join` returns).
#![allow(unsafe_code)]

#[cfg(loom)]
mod loom_memory;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(not(loom))]
mod shm_memory;
#[cfg(all(test, not(loom)))]
mod tests;

use std::io;

use self::backend::{is_alive, me, Acquired, Memory, RawLock, GROW_FREELY, INITIAL_CAP, MAX_CAP};
#[cfg(loom)]
use self::loom_memory as backend;
#[cfg(not(loom))]
use self::shm_memory as backend;
use crate::deadline::Deadline;
use crate::loom::{AtomicU32, AtomicU64, Ordering};
#[cfg(all(feature = "tokio", not(loom)))]
use crate::mem::wake::AsyncWake;
use crate::raw::park::{self, Parked};
use crate::raw::LIVENESS_PERIOD;

/// Kills the process here when a test armed this point (feature `fault-injection`).
macro_rules! fault_point {
    ($point:ident) => {
        #[cfg(feature = "fault-injection")]
        super::fault::reached(super::fault::Point::$point);
    };
}

/// Size of a record header: `state`, `len`, `idx`.
const HEADER: u64 = 24;
/// Set in `state` when the record at that position is committed.
const COMMITTED: u64 = 1;
/// The largest message, in bytes (the header's `len` is checked against it on read, too).
pub(crate) const MAX_MESSAGE: usize = 1 << 30;

/// `closed` after `shutdown(false)`: puts fail, gets drain.
const DRAIN: u32 = 1;
/// `closed` after `shutdown(true)`: puts and gets fail.
const IMMEDIATE: u32 = 2;

/// Why a put did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PutFail {
    /// No room (bound reached, ring at its largest, or the producers' lock busy) by the
    /// deadline.
    NotNow,
    /// The queue was shut down.
    Closed,
    /// The message is longer than [`MAX_MESSAGE`].
    TooLong,
    /// The payload's `fill` gave up (an encoding error, which it keeps); nothing was put.
    Unfilled,
}

/// What a put writes into its record.
pub(crate) enum Payload<'a> {
    /// These bytes, copied in.
    Bytes(&'a [u8]),
    /// At most `len` bytes, written by `fill` straight into the record: it gets a slice of
    /// exactly `len` bytes and says how many it used, or `None` to give the put up. It runs
    /// with the producers' lock held, and only once.
    Fill(usize, &'a mut dyn FnMut(&mut [u8]) -> Option<usize>),
}

impl Payload<'_> {
    /// The most bytes the payload may take.
    fn len(&self) -> usize {
        match self {
            Payload::Bytes(bytes) => bytes.len(),
            Payload::Fill(len, _) => *len,
        }
    }
}

/// What one locked put attempt did.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// The message is in the ring.
    Put,
    /// No room: the bound is reached, the ring is as large as it may get, or the
    /// consumers' lock could not be taken to grow it by the deadline.
    Full,
    /// No room without growing a ring that is already large; not allowed this time. Holds
    /// `not_full.seq` as read before the look at `head` that found no room, so a get after
    /// that look changes it.
    WouldGrow(u32),
    /// The payload's `fill` gave up; nothing was committed.
    Unfilled,
}

/// Why a get returned no message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GetFail {
    /// Nothing arrived (or the consumers' lock was busy) by the deadline.
    NotNow,
    /// The queue was shut down and drained (or shut down immediately).
    Closed,
    /// A header made no sense (memory written by something that is not a queue).
    Corrupt(String),
}

/// Why a join returned before every task was done.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinFail {
    /// Tasks were still unfinished at the deadline.
    NotNow,
    /// The queue was shut down immediately while tasks were unfinished.
    Closed,
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
    /// Async tasks (of any process) awaiting this event on the queue's eventfd (feature
    /// `tokio`, see `mem::wake`). In the padding of the signal's cache line, so the control
    /// page's layout is otherwise unchanged.
    async_waiters: AtomicU32,
}

/// Which event an async waiter awaits (see [`Ring::async_waiters`]).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    NotEmpty,
    NotFull,
    AllDone,
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
    /// 0, [`DRAIN`] or [`IMMEDIATE`] (see "Shutdown").
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

/// Holds one side's lock; unlocks on drop.
struct SideGuard<'a>(&'a RawLock);

impl Drop for SideGuard<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

/// A queue's ring in shared memory; see the module docs for the protocol.
#[derive(Debug)]
pub(crate) struct Ring {
    memory: Memory,
}

// SAFETY: every field of the shared memory is an atomic or a process-shared lock, and the
// payload bytes are only touched under the ownership rule above; the mapping itself is
// plain memory.
unsafe impl Sync for Ring {}
// SAFETY: as above; nothing in `Ring` is tied to the creating thread.
unsafe impl Send for Ring {}

/// Rings under a name (`queue::named`): the segment is a named file of `/dev/shm`.
#[cfg(not(loom))]
impl Ring {
    /// Creates the ring `name`, holding at most `bound` messages (0: unbounded).
    pub(crate) fn create_named(name: &str, bound: u64) -> crate::error::Result<Ring> {
        crate::mem::named::create(name, backend::LAYOUT, |segment| {
            Ok(Ring::init(Memory::in_segment(segment), bound))
        })
    }

    /// Opens the ring `name`.
    pub(crate) fn open_named(name: &str) -> crate::error::Result<Ring> {
        let segment = crate::mem::named::open(name, backend::LAYOUT)?;
        Ok(Ring {
            memory: Memory::in_segment(segment),
        })
    }

    /// Opens the ring `name`, creating it with `bound` if it does not exist.
    pub(crate) fn open_or_create_named(name: &str, bound: u64) -> crate::error::Result<Ring> {
        crate::mem::named::open_or_create(
            name,
            backend::LAYOUT,
            |segment| Ring {
                memory: Memory::in_segment(segment),
            },
            |segment| Ok(Ring::init(Memory::in_segment(segment), bound)),
        )
    }

    /// Removes the name `name`.
    pub(crate) fn unlink_named(name: &str) -> crate::error::Result<()> {
        crate::mem::named::unlink(name, backend::LAYOUT.what)
    }
}

/// How long a put that could only go on by growing a large ring waits for a get first
/// (see "Growth"): what a consumer takes to copy out a record of `size` bytes at 1 GB/s,
/// and at least one spin. A 1 MiB message waits up to 1 ms.
fn grow_patience(size: u64) -> std::time::Duration {
    std::time::Duration::from_nanos(size).max(park::SPIN_BUDGET)
}

/// The size of a record with a `len`-byte payload, header and padding included.
fn record_size(len: u64) -> u64 {
    (HEADER + len + 7) & !7
}

/// A ring travels as its segment: the receiver maps the same ring.
#[cfg(not(loom))]
impl serde::Serialize for Ring {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(self.memory.segment(), serializer)
    }
}

#[cfg(not(loom))]
impl<'de> serde::Deserialize<'de> for Ring {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Ring {
            memory: Memory::deserialize(deserializer)?,
        })
    }
}

impl Ring {
    /// A new ring holding at most `bound` messages (0: unbounded).
    pub(crate) fn create(bound: u64) -> io::Result<Ring> {
        Ok(Ring::init(Memory::create()?, bound))
    }

    /// A new ring in the fresh (zeroed) `memory`.
    fn init(memory: Memory, bound: u64) -> Ring {
        let ring = Ring { memory };
        let c = ring.ctl();
        c.ident.0.bound.store(bound, Ordering::Relaxed);
        c.ident.0.max_cap.store(MAX_CAP, Ordering::Relaxed);
        c.cap.0.store(INITIAL_CAP, Ordering::Release);
        ring
    }

    fn ctl(&self) -> &Control {
        self.memory.control()
    }

    /// The queue's eventfd and the announcement word of `event`, for an async waiter.
    #[cfg(all(feature = "tokio", not(loom)))]
    pub(crate) fn async_waiters(&self, event: Event) -> (&AsyncWake, &AtomicU32) {
        let c = self.ctl();
        let signal = match event {
            Event::NotEmpty => &c.not_empty.0,
            Event::NotFull => &c.not_full.0,
            Event::AllDone => &c.all_done.0,
        };
        (self.memory.segment().async_wake(), &signal.async_waiters)
    }

    /// The header word at position `pos` under capacity `cap`.
    ///
    /// # Safety
    /// `pos` is 8-aligned, `cap` is the ring's capacity as the caller's lock lets it see it,
    /// and the word is one the caller may access atomically under the ownership rule (see
    /// "Who owns which bytes"): a header word of a record its side owns, or the `state` word
    /// at `head` or `tail`.
    unsafe fn word(&self, cap: u64, pos: u64) -> &AtomicU64 {
        debug_assert!(pos % 8 == 0 && cap.is_power_of_two() && cap <= MAX_CAP);
        // SAFETY: `pos & (cap - 1)` is 8-aligned (cap is a multiple of 8) and below
        // `cap <= MAX_CAP`; the access rule is the caller's contract, passed on.
        unsafe { self.memory.word(pos & (cap - 1)) }
    }

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

    fn closed(&self) -> u32 {
        self.ctl().closed.0.load(Ordering::Acquire)
    }

    /// `true` once any process shut the queue down.
    pub(crate) fn is_shutdown(&self) -> bool {
        self.closed() != 0
    }

    /// Refuses further puts everywhere and wakes every waiter. Gets drain what is left, then
    /// fail with `Closed`; with `immediate` they fail at once, and the messages left are
    /// discarded and counted as done (so `join` returns).
    pub(crate) fn shutdown(&self, immediate: bool) {
        let c = self.ctl();
        let level = if immediate { IMMEDIATE } else { DRAIN };
        c.closed.0.fetch_max(level, Ordering::SeqCst);
        if immediate {
            self.discard();
        }
        self.notify(&c.not_empty.0);
        self.notify(&c.not_full.0);
        self.notify(&c.all_done.0);
    }

    /// Takes every committed message out unread, counting each as done.
    fn discard(&self) {
        let c = self.ctl();
        let Some(_guard) = self.lock_consumers(Deadline::NEVER) else {
            return;
        };
        let mut discarded = 0;
        while let Ok(Some(())) = self.get_locked(&mut Some(|_: &[u8], _: &[u8]| ())) {
            discarded += 1;
        }
        if discarded > 0 {
            c.task_dones.0.fetch_add(discarded, Ordering::AcqRel);
        }
    }

    /// Takes one side's lock by `deadline`, repairing what a dead owner left; `None` when
    /// the deadline passed first. A deadline that has passed takes the lock only if it is
    /// free now (or its holder is dead): a try never waits for a holder, even a stopped one.
    fn lock<'a>(
        &'a self,
        lock: &'a RawLock,
        deadline: Deadline,
        repair: impl FnOnce(&Ring),
    ) -> Option<SideGuard<'a>> {
        let got = lock.lock(me(), deadline, is_alive).ok()?;
        let guard = SideGuard(lock);
        if got == Acquired::OwnerDied {
            repair(self);
        }
        Some(guard)
    }

    fn lock_consumers(&self, deadline: Deadline) -> Option<SideGuard<'_>> {
        self.lock(&self.ctl().clock.0, deadline, Ring::repair_consumers)
    }

    /// Producer-side repair after a producer died holding `plock` (see "Crash safety").
    fn repair_producers(&self) {
        let c = self.ctl();
        let p = &c.producer.0;
        let cap = c.cap.0.load(Ordering::Acquire);
        let tail = p.tail.load(Ordering::Relaxed);
        // SAFETY: we hold `plock`; `state(tail)` is only accessed atomically, and a record
        // committed there is ours to read until step 5 publishes it to the count.
        let (state, len, idx) = unsafe {
            (
                self.word(cap, tail).load(Ordering::Acquire),
                self.word(cap, tail + 8).load(Ordering::Relaxed),
                self.word(cap, tail + 16).load(Ordering::Relaxed),
            )
        };
        if state == tail | COMMITTED {
            p.tail_idx.store(idx + 1, Ordering::Release);
            p.tail.store(tail + record_size(len), Ordering::Release);
        }
        c.puts
            .0
            .store(p.tail_idx.load(Ordering::Relaxed), Ordering::Release);
        self.notify(&c.not_empty.0);
    }

    /// Consumer-side repair after a consumer died holding `clock`: a record still committed
    /// at `head` is not taken, whatever `gets` says (see "Crash safety").
    fn repair_consumers(&self) {
        let c = self.ctl();
        let s = &c.consumer.0;
        let cap = c.cap.0.load(Ordering::Acquire);
        let head = s.head.load(Ordering::Relaxed);
        // SAFETY: we hold `clock`; `state(head)` is only accessed atomically, and a record
        // committed there belongs to the consumers, so its `idx` word is ours to read.
        let idx = unsafe {
            (self.word(cap, head).load(Ordering::Acquire) == head | COMMITTED)
                .then(|| self.word(cap, head + 16).load(Ordering::Relaxed))
        };
        if let Some(idx) = idx {
            if s.gets.load(Ordering::Relaxed) != idx {
                s.gets.store(idx, Ordering::Release);
                self.notify(&c.not_empty.0);
            }
        }
    }

    /// Puts one encoded message, waiting for room until `deadline`.
    pub(crate) fn put(&self, msg: &[u8], deadline: Deadline) -> Result<(), PutFail> {
        self.put_payload(&mut Payload::Bytes(msg), deadline)
    }

    /// Puts one message that `payload` writes, waiting for room until `deadline`.
    pub(crate) fn put_payload(
        &self,
        payload: &mut Payload<'_>,
        deadline: Deadline,
    ) -> Result<(), PutFail> {
        if payload.len() > MAX_MESSAGE {
            return Err(PutFail::TooLong);
        }
        let size = record_size(payload.len() as u64);
        let c = self.ctl();
        // A call that may not wait grows at once rather than giving a consumer time.
        let mut may_grow = deadline.has_passed();
        loop {
            if self.is_shutdown() {
                return Err(PutFail::Closed);
            }
            let attempt = {
                let _guard = self
                    .lock(&c.plock.0, deadline, Ring::repair_producers)
                    .ok_or(PutFail::NotNow)?;
                self.put_locked(payload, size, may_grow, deadline)
            };
            match attempt {
                Attempt::Put => {
                    self.notify(&c.not_empty.0);
                    return Ok(());
                }
                Attempt::Unfilled => return Err(PutFail::Unfilled),
                Attempt::WouldGrow(gets_seen) => {
                    // See "Growth": give an active consumer the time it takes to make
                    // room for this record, and grow only if no get came meanwhile.
                    let patience = Deadline::after(grow_patience(size)).min(deadline);
                    let got = || c.not_full.0.seq.load(Ordering::Acquire) != gets_seen;
                    may_grow = !self.wait_for(&c.not_full.0, patience, got, &[]);
                }
                Attempt::Full => {
                    let room = || self.is_shutdown() || self.has_room(size);
                    if !self.wait_for(&c.not_full.0, deadline, room, &[]) {
                        return Err(PutFail::NotNow);
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
    /// (or the ring is still small). `size` is the record size of `payload.len()`: room is
    /// claimed for that, and the record takes what the payload used.
    fn put_locked(
        &self,
        payload: &mut Payload<'_>,
        size: u64,
        may_grow: bool,
        deadline: Deadline,
    ) -> Attempt {
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
            // Only a put that finds no room reads the line every get writes.
            let gets_seen = c.not_full.0.seq.load(Ordering::Acquire);
            head = c.consumer.0.head.load(Ordering::Acquire);
            p.head_cache.store(head, Ordering::Relaxed);
            if tail + need - head > cap {
                if cap >= c.ident.0.max_cap.load(Ordering::Relaxed) {
                    return Attempt::Full;
                }
                if !may_grow && cap >= GROW_FREELY && need <= cap / 2 {
                    return Attempt::WouldGrow(gets_seen);
                }
                match self.grow(tail, need, deadline) {
                    Some(grown) => cap = grown,
                    None => return Attempt::Full,
                }
            }
        }
        self.memory.prefault(cap, true);
        // Steps 2-4.
        // SAFETY: we hold `plock` and `[tail, tail + size + 8)` is free space
        // (`tail + need - head <= cap` with a `head` loaded with Acquire, or just grown):
        // the payload, `len` and `idx` are ours to write, and the `state` words at `tail`
        // and `tail + size` are only accessed atomically. Nobody reads the record before
        // the Release store of the commit. A record shorter than claimed (a `fill` that
        // used less) ends earlier, still inside the claimed free space.
        let size = unsafe {
            // Step 2: payload, then the other header words.
            let len = match payload {
                Payload::Bytes(msg) => {
                    self.write_wrapping(cap, tail + HEADER, msg);
                    msg.len()
                }
                Payload::Fill(len, fill) => {
                    match self.fill_wrapping(cap, tail + HEADER, *len, &mut **fill) {
                        Some(used) => used,
                        None => return Attempt::Unfilled,
                    }
                }
            };
            let size = record_size(len as u64);
            self.word(cap, tail + 8)
                .store(len as u64, Ordering::Relaxed);
            self.word(cap, tail + 16).store(idx, Ordering::Relaxed);
            // Step 3: the next record's state word reads "not committed".
            self.word(cap, tail + size).store(0, Ordering::Relaxed);
            // Step 4: the commit.
            self.word(cap, tail)
                .store(tail | COMMITTED, Ordering::Release);
            size
        };
        fault_point!(ProducerAfterCommit);
        // Step 5 (order matters for the repair: `tail_idx` before `tail`).
        p.tail_idx.store(idx + 1, Ordering::Release);
        p.tail.store(tail + size, Ordering::Release);
        c.puts.0.store(idx + 1, Ordering::Release);
        Attempt::Put
    }

    /// Copies `src` to position `pos` onwards, wrapping at `cap`.
    ///
    /// # Safety
    /// The bytes `[pos, pos + src.len())` (modulo `cap`) are free space and the caller holds
    /// `plock`, or it is growing with both locks held (see "Who owns which bytes").
    unsafe fn write_wrapping(&self, cap: u64, pos: u64, src: &[u8]) {
        let off = pos & (cap - 1);
        let first = ((cap - off) as usize).min(src.len());
        // SAFETY: both pieces lie below `cap` and are the caller's free space.
        unsafe {
            self.memory.write_at(off, &src[..first]);
            if first < src.len() {
                self.memory.write_at(0, &src[first..]);
            }
        }
    }

    /// Lets `fill` write at most `len` bytes at position `pos` onwards, wrapping at `cap`: in
    /// place when they do not wrap, else through a buffer. Returns what `fill` returned
    /// (the bytes it used, at most `len`; `None` gives the put up).
    ///
    /// # Safety
    /// As [`write_wrapping`](Ring::write_wrapping) for `[pos, pos + len)`.
    unsafe fn fill_wrapping(
        &self,
        cap: u64,
        pos: u64,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Option<usize> {
        let off = pos & (cap - 1);
        let used = if (cap - off) as usize >= len {
            // SAFETY: the range lies below `cap` and is the caller's free space.
            unsafe { self.memory.write_with(off, len, fill) }
        } else {
            let mut buf = vec![0; len];
            let used = fill(&mut buf).filter(|&used| used <= len)?;
            // SAFETY: the caller's free space, as above.
            unsafe { self.write_wrapping(cap, pos, &buf[..used]) };
            Some(used)
        };
        used.filter(|&used| used <= len)
    }

    /// Hands the `len` bytes at position `pos` to `read` in place, as the piece up to the end
    /// of the ring and the piece wrapped to its start (empty unless the bytes wrap).
    ///
    /// # Safety
    /// The bytes belong to a committed record the caller owns for reading: it holds `clock`
    /// and saw the commit with an Acquire load (see "Who owns which bytes").
    unsafe fn read_wrapping<R>(
        &self,
        cap: u64,
        pos: u64,
        len: usize,
        read: impl FnOnce(&[u8], &[u8]) -> R,
    ) -> R {
        let off = pos & (cap - 1);
        let first = ((cap - off) as usize).min(len);
        // SAFETY: both pieces lie below `cap`, in the record the caller owns.
        unsafe {
            self.memory.read_at(off, first, |a| {
                self.memory.read_at(0, len - first, |b| read(a, b))
            })
        }
    }

    /// Doubles the capacity until `need` more bytes fit after `tail`; holds `plock` and takes
    /// `clock` by `deadline`. `None` when the ring is already as large as it may get or the
    /// consumers' lock stayed busy.
    fn grow(&self, tail: u64, need: u64, deadline: Deadline) -> Option<u64> {
        let c = self.ctl();
        let cap = c.cap.0.load(Ordering::Relaxed);
        let max_cap = c.ident.0.max_cap.load(Ordering::Relaxed);
        let _consumers = self.lock_consumers(deadline)?;
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
        self.memory.prefault(new_cap, true);
        let mut pos = head;
        while pos < tail {
            let old = pos & (cap - 1);
            let new = pos & (new_cap - 1);
            let run = (tail - pos).min(cap - old).min(new_cap - new);
            if old != new {
                // SAFETY: we hold both locks; `old..old + run` is live data below `cap`,
                // `new..new + run` lies in `[cap, new_cap)`, the added half, which holds
                // nothing live, so the ranges are disjoint and below `new_cap <= MAX_CAP`.
                unsafe { self.memory.move_within(old, new, run) };
            }
            pos += run;
        }
        // SAFETY: both locks held; `tail` is the `state` word of the next record.
        unsafe { self.word(new_cap, tail).store(0, Ordering::Relaxed) };
        c.cap.0.store(new_cap, Ordering::Release);
        Some(new_cap)
    }

    /// Takes the oldest message by `deadline` and hands its bytes to `read`, in place unless
    /// the record wraps around the end of the ring.
    pub(crate) fn get<R>(
        &self,
        deadline: Deadline,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, GetFail> {
        self.get_split(deadline, |first, second| {
            if second.is_empty() {
                read(first)
            } else {
                read(&[first, second].concat())
            }
        })
    }

    /// Takes the oldest message by `deadline` and hands its bytes to `read` in place, as
    /// two pieces: the second is empty unless the record wraps around the end of the ring.
    pub(crate) fn get_split<R>(
        &self,
        deadline: Deadline,
        read: impl FnOnce(&[u8], &[u8]) -> R,
    ) -> Result<R, GetFail> {
        let c = self.ctl();
        let mut read = Some(read);
        loop {
            let closed = self.closed();
            if closed == IMMEDIATE {
                return Err(GetFail::Closed);
            }
            {
                let _guard = self.lock_consumers(deadline).ok_or(GetFail::NotNow)?;
                if let Some(out) = self.get_locked(&mut read)? {
                    drop(_guard);
                    self.notify(&c.not_full.0);
                    return Ok(out);
                }
            }
            if closed != 0 {
                return Err(GetFail::Closed);
            }
            let ready = || self.is_shutdown() || self.len() > 0;
            let watch = [&c.clock.0, &c.plock.0];
            if !self.wait_for(&c.not_empty.0, deadline, ready, &watch) {
                return Err(GetFail::NotNow);
            }
        }
    }

    /// The consumer's steps 1-4 under `clock`; `Ok(None)` when nothing is committed.
    fn get_locked<R>(
        &self,
        read: &mut Option<impl FnOnce(&[u8], &[u8]) -> R>,
    ) -> Result<Option<R>, GetFail> {
        let c = self.ctl();
        let s = &c.consumer.0;
        let cap = c.cap.0.load(Ordering::Acquire);
        self.memory.prefault(cap, false);
        let head = s.head.load(Ordering::Relaxed);
        // SAFETY: we hold `clock`; `state(head)` is only accessed atomically.
        if unsafe { self.word(cap, head).load(Ordering::Acquire) } != head | COMMITTED {
            return Ok(None);
        }
        // SAFETY: the record at `head` is committed (Acquire above) and we hold `clock`:
        // it is ours to read until we move `head`.
        let (len, idx) = unsafe {
            (
                self.word(cap, head + 8).load(Ordering::Relaxed),
                self.word(cap, head + 16).load(Ordering::Relaxed),
            )
        };
        if len > MAX_MESSAGE as u64 || record_size(len) + 8 > cap {
            return Err(GetFail::Corrupt(format!(
                "record at {head} claims {len} bytes in a ring of {cap}"
            )));
        }
        let Some(read) = read.take() else {
            return Ok(None);
        };
        // SAFETY: as above: the committed record's payload, ours until `head` moves.
        let out = unsafe { self.read_wrapping(cap, head + HEADER, len as usize, read) };
        // Step 3, then step 4: a consumer killed between them leaves `gets` one ahead, which
        // `repair_consumers` undoes.
        s.gets.store(idx + 1, Ordering::Release);
        fault_point!(ConsumerBetweenStores);
        s.head.store(head + record_size(len), Ordering::Release);
        Ok(Some(out))
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

    /// Waits by `deadline` until every put message was `task_done`.
    pub(crate) fn join(&self, deadline: Deadline) -> Result<(), JoinFail> {
        let settled = || self.unfinished() == 0 || self.closed() == IMMEDIATE;
        if !(settled() || self.wait_for(&self.ctl().all_done.0, deadline, settled, &[])) {
            return Err(JoinFail::NotNow);
        }
        if self.unfinished() == 0 {
            Ok(())
        } else {
            Err(JoinFail::Closed)
        }
    }

    /// Announces one event of `signal`'s kind: bumps `seq` (spinners see it) and wakes the
    /// sleepers, if there are any. The `SeqCst` bump and load pair with the `SeqCst` count
    /// and load in `wait_for`: either the sleeper's load of `seq` sees our bump (and so,
    /// through it, our change), or our load sees its count. Both are one total order
    /// already, so no fence is needed beyond `announce_fence` (which is one only under loom):
    /// a `fence(SeqCst)` here was an `mfence` on every put and every get.
    fn notify(&self, signal: &Signal) {
        signal.seq.fetch_add(1, Ordering::SeqCst);
        park::announce_fence();
        if signal.waiters.load(Ordering::SeqCst) != 0 {
            park::wake(&signal.seq, u32::MAX);
        }
        #[cfg(not(loom))]
        self.memory
            .segment()
            .async_wake()
            .wake(&signal.async_waiters);
    }

    /// Waits until `ready()` or `deadline`; `false` on timeout. Follows the rule of
    /// `raw::park`: spin unannounced, then count itself in `waiters` and sleep.
    ///
    /// `watch`: side locks whose holder may die leaving the counts wrong with nobody to wake
    /// us (see "Crash safety"). Then sleep at most `LIVENESS_PERIOD` at a time; on waking,
    /// if one of them is held, return `true`, so the caller looks again through the lock,
    /// which finds a committed record whatever the counts say, detects a dead holder and
    /// repairs. With no lock held the counts are consistent, and the sleep goes on.
    fn wait_for(
        &self,
        signal: &Signal,
        deadline: Deadline,
        ready: impl Fn() -> bool,
        watch: &[&RawLock],
    ) -> bool {
        let watched = || watch.iter().any(|lock| lock.owner_id().is_some());
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
            park::announce_fence();
            let seen = signal.seq.load(Ordering::SeqCst);
            let nap = if watch.is_empty() {
                Deadline::NEVER
            } else {
                Deadline::after(LIVENESS_PERIOD)
            };
            let until = deadline.min(nap);
            let parked = (!ready()).then(|| park::sleep(&signal.seq, seen, until));
            signal.waiters.fetch_sub(1, Ordering::SeqCst);
            match parked {
                None => return true,
                Some(Parked::TimedOut) if until != deadline => {
                    if watched() {
                        return true;
                    }
                }
                Some(Parked::TimedOut) => return ready(),
                Some(Parked::Woken) => {}
            }
        }
    }
}
