//! The futex word protocols under every lock and semaphore: [`RawLock`] (robust: a holder
//! that dies is detected) and [`RawSemaphore`].
//!
//! Both are `#[repr(C)]` structs of atomics that live in shared memory and are reached by
//! reference from every process mapping them. They protect no memory themselves; the typed
//! wrappers (`Lock`, `Value`, ...) decide what the lock guards.
#![allow(unsafe_code)] // `RawLock::unlock` is an `unsafe fn`: only the holder may call it.

use std::time::{Duration, Instant};

use super::park::{self, Parked};
use crate::error::{Error, Result};
use crate::loom::{AtomicU32, AtomicU64, Ordering};
use crate::sys::identity::{self, Token};

/// How often a sleeping locker checks that the holder is still alive. A holder killed
/// inside the lock is noticed after at most about this long.
pub(crate) const LIVENESS_PERIOD: Duration = Duration::from_millis(100);

/// A lock acquisition that did not time out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The lock was free or handed over by an unlock.
    Normally,
    /// The holder died inside the lock; the caller now holds it, and the data it guards may
    /// be half-updated.
    OwnerDied,
}

/// The deadline passed before the lock or semaphore could be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

/// A robust, process-shared mutual-exclusion lock on one futex word.
///
/// # The lock word
///
/// | `word`               | meaning                                                    |
/// |----------------------|------------------------------------------------------------|
/// | `0`                  | unlocked                                                   |
/// | `id`                 | locked by the owner `id` (pid or tid), nobody asleep         |
/// | `id \| CONTENDED`    | locked, and some locker may be asleep on the word            |
///
/// `owner` holds the holder's full [`Token`] (id and start time), written just after the
/// acquiring CAS; a waiter uses it only when its id matches the word's, so a stale token is
/// never trusted.
///
/// - Lock, uncontended: one CAS `0 -> id`, then a relaxed store of the token. No syscall.
/// - Unlock: one swap to `0`; a futex wake only if the old word had `CONTENDED`.
/// - Lock, contended: spin (no announcement) while the word stays the same; then set
///   `CONTENDED` and sleep on the word for at most [`LIVENESS_PERIOD`]; on each expiry, ask
///   whether the owner still runs. If it does not, take the lock over with one CAS from the
///   dead owner's word (so exactly one waiter wins) and report [`Acquired::OwnerDied`].
/// - A locker that slept sets `CONTENDED` when it takes the lock, since others may sleep too.
///   Stray `CONTENDED` bits (a sleeper that was killed) cost one extra wake and are cleared by
///   the next unlock.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct RawLock {
    word: AtomicU32,
    _pad: u32,
    owner: AtomicU64,
}

const CONTENDED: u32 = 1 << 31;
const ID_MASK: u32 = !CONTENDED;

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawLock>() == 16);

// SAFETY: repr(C) of two atomics and a u32: fixed layout, no pointers, every bit pattern is a
// state (an unknown owner id is treated as a live owner until its liveness check), no Drop.
// (Under `--cfg loom` the atomics are loom's heap models; loom builds run only the loom
// models, which keep these types on the heap, never in a segment.)
unsafe impl crate::shm::pod::ShmSafe for RawLock {}
// SAFETY: `word` and `owner` are only written atomically; `_pad` is never written.
unsafe impl crate::shm::pod::ShmSync for RawLock {}

impl RawLock {
    /// Takes the lock for `me` if it is free. One CAS, no syscall.
    #[inline]
    pub(crate) fn try_lock(&self, me: Token) -> bool {
        let id = me.id() & ID_MASK;
        if self
            .word
            .compare_exchange(0, id, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.owner.store(me.0, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Takes the lock for `me`, waiting until `deadline` (forever with `None`). `alive` tells
    /// whether a holder still runs (`sys::identity::is_alive`; tests pass their own).
    #[inline]
    pub(crate) fn lock(
        &self,
        me: Token,
        deadline: Option<Instant>,
        alive: fn(Token) -> bool,
    ) -> Result<Acquired, TimedOut> {
        if self.try_lock(me) {
            return Ok(Acquired::Normally);
        }
        self.lock_contended(me, deadline, alive)
    }

    #[cold]
    fn lock_contended(
        &self,
        me: Token,
        deadline: Option<Instant>,
        alive: fn(Token) -> bool,
    ) -> Result<Acquired, TimedOut> {
        let id = me.id() & ID_MASK;
        let mut spun = false;
        let mut slept = false;
        loop {
            let word = self.word.load(Ordering::Relaxed);
            if word == 0 {
                let new = if slept { id | CONTENDED } else { id };
                if self
                    .word
                    .compare_exchange(0, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.owner.store(me.0, Ordering::Relaxed);
                    return Ok(Acquired::Normally);
                }
                continue;
            }
            if !spun {
                spun = true;
                park::spin(&self.word, word, deadline);
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(TimedOut);
            }
            let sleeping_on = word | CONTENDED;
            if word & CONTENDED == 0
                && self
                    .word
                    .compare_exchange(word, sleeping_on, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            slept = true;
            let check_at = Instant::now() + LIVENESS_PERIOD;
            let wake_at = deadline.map_or(check_at, |d| d.min(check_at));
            if park::sleep(&self.word, sleeping_on, Some(wake_at)) == Parked::Woken {
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(TimedOut);
            }
            if self.holder_died(sleeping_on, alive)
                && self
                    .word
                    .compare_exchange(
                        sleeping_on,
                        id | CONTENDED,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                self.owner.store(me.0, Ordering::Relaxed);
                return Ok(Acquired::OwnerDied);
            }
        }
    }

    /// Whether the holder named by `word` is certainly dead.
    fn holder_died(&self, word: u32, alive: fn(Token) -> bool) -> bool {
        let id = word & ID_MASK;
        let token = Token(self.owner.load(Ordering::Relaxed));
        // A token of another id is stale (the holder died, or has not yet written its own,
        // between its CAS and its store): judge by the id alone then.
        let token = if token.id() == id {
            token
        } else {
            Token::from_id(id)
        };
        !alive(token)
    }

    /// Releases the lock, whoever holds it. Returns `false` (and changes nothing) if it was
    /// not locked. Safe to call from any process: `RawLock` guards no memory itself, and
    /// `Lock` may be released by a process other than its acquirer, as in Python.
    #[inline]
    pub(crate) fn unlock(&self) -> bool {
        let old = self.word.swap(0, Ordering::Release);
        if old & CONTENDED != 0 {
            self.wake_one();
        }
        old != 0
    }

    #[cold]
    fn wake_one(&self) {
        park::wake(&self.word, 1);
    }

    /// Whether `me` holds the lock: the word names its id and the token is its own (a dead
    /// holder whose id was recycled to `me` does not count).
    pub(crate) fn is_held_by(&self, me: Token) -> bool {
        self.word.load(Ordering::Relaxed) & ID_MASK == me.id() & ID_MASK
            && self.owner.load(Ordering::Relaxed) == me.0
    }

    /// The holder's id (pid or tid), `None` when unlocked. A snapshot.
    pub(crate) fn owner_id(&self) -> Option<u32> {
        match self.word.load(Ordering::Relaxed) & ID_MASK {
            0 => None,
            id => Some(id),
        }
    }
}

/// The shared state of an [`RLock`]: the lock, owned by a thread, and its depth.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct RawRLock {
    lock: RawLock,
    /// How many times the owner has taken it; written only by the owner.
    depth: AtomicU32,
}

// SAFETY: repr(C) of a `RawLock` and an atomic counter, both valid for any bits, no pointers.
unsafe impl crate::shm::pod::ShmSafe for RawRLock {}
// SAFETY: both parts are written only atomically.
unsafe impl crate::shm::pod::ShmSync for RawRLock {}

impl RawRLock {
    /// Whether the calling thread holds it.
    pub(crate) fn is_mine(&self, me: Token) -> bool {
        self.lock.is_held_by(me)
    }

    /// Takes it (again) for the calling thread.
    pub(crate) fn lock(
        &self,
        me: Token,
        deadline: Option<Instant>,
    ) -> std::result::Result<Acquired, TimedOut> {
        if self.is_mine(me) {
            self.depth.fetch_add(1, Ordering::Relaxed);
            return Ok(Acquired::Normally);
        }
        let acquired = self.lock.lock(me, deadline, identity::is_alive)?;
        self.depth.store(1, Ordering::Relaxed);
        Ok(acquired)
    }

    /// Takes it if free or already the caller's.
    pub(crate) fn try_lock(&self, me: Token) -> bool {
        if self.is_mine(me) {
            self.depth.fetch_add(1, Ordering::Relaxed);
            true
        } else if self.lock.try_lock(me) {
            self.depth.store(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Gives up one level; the lock is released with the last.
    pub(crate) fn unlock(&self, me: Token) -> Result<()> {
        if !self.is_mine(me) {
            return Err(Error::InvalidState(
                "attempt to release recursive lock not owned by thread".into(),
            ));
        }
        if self.depth.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.lock.unlock();
        }
        Ok(())
    }

    /// Releases every level the caller holds (it must hold the lock: see `is_mine`) and
    /// returns how many (for `Condition::wait`).
    pub(crate) fn unlock_all(&self) -> u32 {
        let depth = self.depth.swap(0, Ordering::Relaxed);
        self.lock.unlock();
        depth
    }

    /// Takes the lock back after [`RawRLock::unlock_all`], restoring `depth` levels.
    pub(crate) fn relock(&self, me: Token, depth: u32) -> Acquired {
        let acquired = self
            .lock
            .lock(me, None, identity::is_alive)
            .unwrap_or(Acquired::Normally);
        self.depth.store(depth, Ordering::Relaxed);
        acquired
    }

    /// The depth, as seen by anyone (a snapshot).
    pub(crate) fn depth(&self) -> u32 {
        self.depth.load(Ordering::Relaxed)
    }

    /// The owning thread's id, if held.
    pub(crate) fn owner_id(&self) -> Option<u32> {
        self.lock.owner_id()
    }
}

/// A process-shared counting semaphore.
///
/// `value` is the count and the futex word (sleepers wait while it is 0); `sleepers` counts
/// waiters that announced themselves, so a release with nobody asleep makes no syscall.
/// Waiter: `sleepers += 1`, re-check `value`, sleep while 0, `sleepers -= 1`. Releaser:
/// `value += 1`, then wake one if `sleepers > 0`. Both pairs are `SeqCst`, so at least one
/// side sees the other's write (the futex also re-checks `value == 0` atomically).
///
/// A semaphore has no owner, so a process killed while it holds a unit keeps that unit,
/// as in Python; a killed sleeper leaves `sleepers` one too high, which costs releasers a
/// needless wake and nothing else.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct RawSemaphore {
    value: AtomicU32,
    sleepers: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawSemaphore>() == 8);

// SAFETY: repr(C) of two atomic counters: any bits are a count, no pointers, no Drop.
unsafe impl crate::shm::pod::ShmSafe for RawSemaphore {}
// SAFETY: both fields are only written atomically.
unsafe impl crate::shm::pod::ShmSync for RawSemaphore {}

/// A release that would take the count above its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

impl RawSemaphore {
    /// Sets the initial count (on a fresh, unshared semaphore).
    pub(crate) fn init(&self, value: u32) {
        self.value.store(value, Ordering::Relaxed);
    }

    /// Takes a unit if one is there. One CAS, no syscall.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        while v > 0 {
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Takes a unit, waiting until `deadline` (forever with `None`).
    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> Result<(), TimedOut> {
        if self.try_acquire() {
            return Ok(());
        }
        self.acquire_contended(deadline)
    }

    #[cold]
    fn acquire_contended(&self, deadline: Option<Instant>) -> Result<(), TimedOut> {
        let mut spun = false;
        loop {
            if self.try_acquire() {
                return Ok(());
            }
            if !spun {
                spun = true;
                park::spin(&self.value, 0, deadline);
                continue;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            park::announce_fence();
            let parked = if self.value.load(Ordering::SeqCst) == 0 {
                park::sleep(&self.value, 0, deadline)
            } else {
                Parked::Woken
            };
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            if parked == Parked::TimedOut {
                // A unit that came with the timeout is still ours to take.
                return if self.try_acquire() {
                    Ok(())
                } else {
                    Err(TimedOut)
                };
            }
        }
    }

    /// Returns a unit; fails with [`Overflow`] (changing nothing) if the count is `max`.
    #[inline]
    pub(crate) fn release(&self, max: u32) -> Result<(), Overflow> {
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            if v >= max {
                return Err(Overflow);
            }
            match self
                .value
                .compare_exchange_weak(v, v + 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        park::announce_fence();
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            park::wake(&self.value, 1);
        }
        Ok(())
    }

    /// The count now (a snapshot).
    pub(crate) fn value(&self) -> u32 {
        self.value.load(Ordering::Relaxed)
    }
}

/// Declares `#[repr(C)]` structs of atomics that live in shared memory, with the
/// `ShmSafe`/`ShmSync` promises they all keep for the same reason.
macro_rules! shared_state {
    ($($(#[$meta:meta])* pub(crate) struct $name:ident { $($(#[$fmeta:meta])* pub(crate) $field:ident: $ty:ty,)* })*) => {$(
        $(#[$meta])*
        #[derive(Debug, Default)]
        #[repr(C)]
        pub(crate) struct $name {
            $($(#[$fmeta])* pub(crate) $field: $ty,)*
        }
        // SAFETY: repr(C) of atomics and shared-state structs, all valid for any bits (every
        // value is a state the protocols handle), holding no pointers, with no Drop.
        unsafe impl crate::shm::pod::ShmSafe for $name {}
        // SAFETY: every field is written only atomically.
        unsafe impl crate::shm::pod::ShmSync for $name {}
    )*};
}

shared_state! {
    /// A semaphore and its bound (`u32::MAX` when unbounded).
    pub(crate) struct SemaphoreState {
        pub(crate) sem: RawSemaphore,
        pub(crate) max: AtomicU32,
    }

    /// An event: `flag` (0 unset, 1 set) is the futex word; `sleepers` counts waiters that
    /// announced themselves, so `set` with nobody asleep makes no syscall.
    pub(crate) struct RawEvent {
        pub(crate) flag: AtomicU32,
        pub(crate) sleepers: AtomicU32,
    }

    /// A condition variable's own state (its lock lives apart, in an `RLock`).
    ///
    /// `counts` packs `waiters << 32 | tokens`: waiters registered (under the lock) and not
    /// yet gone, and wake-up tokens `notify` handed out and nobody took yet; always
    /// `tokens <= waiters`. One atomic word, so taking a token (both counts down by one) is
    /// one CAS and `notify` never sees the pair half-updated. `seq`, the futex word, is
    /// bumped by every notify that hands out tokens.
    pub(crate) struct RawCondition {
        pub(crate) counts: AtomicU64,
        pub(crate) seq: AtomicU32,
    }

    /// A barrier's state, all guarded by `lock` except `seq` (the futex word, bumped at every
    /// pass, break and reset). `cancelled` is the last generation a reset cancelled. The
    /// waiting parties' tokens follow the struct in the segment, one `AtomicU64` per party.
    pub(crate) struct RawBarrier {
        pub(crate) lock: RawLock,
        pub(crate) seq: AtomicU32,
        pub(crate) generation: AtomicU32,
        pub(crate) cancelled: AtomicU32,
        pub(crate) broken: AtomicU32,
        pub(crate) waiting: AtomicU32,
        pub(crate) parties: AtomicU32,
    }
}

const ONE_WAITER: u64 = 1 << 32;
const TOKENS: u64 = ONE_WAITER - 1;

impl RawEvent {
    /// Sets the flag and wakes every waiter.
    pub(crate) fn set(&self) {
        let was_set = self.flag.swap(1, Ordering::SeqCst) == 1;
        park::announce_fence();
        if !was_set && self.sleepers.load(Ordering::SeqCst) > 0 {
            park::wake(&self.flag, u32::MAX);
        }
    }

    /// Clears the flag.
    pub(crate) fn clear(&self) {
        self.flag.store(0, Ordering::Release);
    }

    /// Whether the flag is set.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire) == 1
    }

    /// Waits until the flag is set or `deadline`; returns whether it is set.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        if self.is_set() || park::spin(&self.flag, 0, deadline) && self.is_set() {
            return true;
        }
        loop {
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            park::announce_fence();
            let parked = if self.flag.load(Ordering::SeqCst) == 0 {
                park::sleep(&self.flag, 0, deadline)
            } else {
                Parked::Woken
            };
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            if self.is_set() {
                return true;
            }
            if parked == Parked::TimedOut {
                return false;
            }
        }
    }
}

impl RawCondition {
    /// Registers a waiter; the caller holds the condition's lock. Returns the `seq` to wait on.
    pub(crate) fn register(&self) -> u32 {
        self.counts.fetch_add(ONE_WAITER, Ordering::Relaxed);
        self.seq.load(Ordering::Acquire)
    }

    /// Takes a wake-up token if one is there (leaving the waiters).
    pub(crate) fn try_take(&self) -> bool {
        let mut c = self.counts.load(Ordering::Acquire);
        while c & TOKENS > 0 {
            match self.counts.compare_exchange_weak(
                c,
                c - ONE_WAITER - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Waits (without the lock) for a token until `deadline`; `seq` comes from `register`.
    /// Returns whether a token was taken.
    pub(crate) fn wait(&self, mut seq: u32, deadline: Option<Instant>) -> bool {
        loop {
            if self.try_take() {
                return true;
            }
            if park::wait(&self.seq, seq, deadline) == Parked::TimedOut {
                return false;
            }
            seq = self.seq.load(Ordering::Acquire);
        }
    }

    /// Leaves after a timeout; the caller holds the lock again. A token handed out in the
    /// meantime is taken (and reported) rather than left for a waiter that never comes.
    pub(crate) fn leave(&self) -> bool {
        if self.try_take() {
            return true;
        }
        self.counts.fetch_sub(ONE_WAITER, Ordering::AcqRel);
        false
    }

    /// Hands out up to `n` tokens to waiters that have none; the caller holds the lock.
    /// Returns how many.
    pub(crate) fn notify(&self, n: u32) -> u32 {
        let mut c = self.counts.load(Ordering::Acquire);
        let given = loop {
            let (waiters, tokens) = (c >> 32, c & TOKENS);
            let k = (waiters - tokens).min(u64::from(n));
            if k == 0 {
                return 0;
            }
            match self
                .counts
                .compare_exchange_weak(c, c + k, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break k as u32,
                Err(now) => c = now,
            }
        };
        self.seq.fetch_add(1, Ordering::Release);
        park::wake(&self.seq, given);
        given
    }

    /// Waiters registered and not yet woken or gone.
    pub(crate) fn waiting(&self) -> u32 {
        let c = self.counts.load(Ordering::Acquire);
        ((c >> 32) - (c & TOKENS)) as u32
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn alive(_: Token) -> bool {
        true
    }
    fn dead(_: Token) -> bool {
        false
    }

    fn token(id: u32) -> Token {
        Token::from_id(id)
    }

    #[test]
    fn lock_states_follow_the_table() {
        let l = RawLock::default();
        assert_eq!(l.owner_id(), None);
        assert!(l.try_lock(token(5)));
        assert_eq!(l.owner_id(), Some(5));
        assert!(!l.try_lock(token(6)));
        assert!(l.unlock());
        assert!(!l.unlock(), "unlocking an unlocked lock reports it");
        assert_eq!(l.owner_id(), None);
    }

    #[test]
    fn lock_times_out_after_at_least_the_deadline() {
        let l = RawLock::default();
        assert!(l.try_lock(token(5)));
        let t = Instant::now();
        let d = park::deadline_after(Duration::from_millis(30));
        assert_eq!(l.lock(token(6), d, alive), Err(TimedOut));
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(l.owner_id(), Some(5));
    }

    #[test]
    fn a_dead_holder_is_taken_over_once() {
        let l = RawLock::default();
        assert!(l.try_lock(token(5)));
        assert_eq!(l.lock(token(6), None, dead), Ok(Acquired::OwnerDied));
        assert_eq!(l.owner_id(), Some(6));
        assert!(l.unlock());
        assert_eq!(l.lock(token(7), None, dead), Ok(Acquired::Normally));
    }

    #[test]
    fn threads_exclude_each_other() {
        let l = Arc::new(RawLock::default());
        let count = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (1..=4u32)
            .map(|i| {
                let (l, count) = (Arc::clone(&l), Arc::clone(&count));
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        l.lock(token(i), None, alive).unwrap();
                        // A non-atomic read-modify-write: lost updates show a broken lock.
                        let v = count.load(Ordering::Relaxed);
                        count.store(v + 1, Ordering::Relaxed);
                        l.unlock();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(count.load(Ordering::Relaxed), 8000);
    }

    #[test]
    fn semaphore_counts_and_bounds() {
        let s = RawSemaphore::default();
        s.init(2);
        assert!(s.try_acquire());
        assert!(s.try_acquire());
        assert!(!s.try_acquire());
        assert_eq!(s.release(2), Ok(()));
        assert_eq!(s.release(2), Ok(()));
        assert_eq!(s.release(2), Err(Overflow));
        assert_eq!(s.value(), 2);
        let d = park::deadline_after(Duration::from_millis(10));
        s.init(0);
        assert_eq!(s.acquire(d), Err(TimedOut));
    }

    #[test]
    fn semaphore_release_wakes_a_sleeper() {
        let s = Arc::new(RawSemaphore::default());
        let s2 = Arc::clone(&s);
        let t = std::thread::spawn(move || s2.acquire(None));
        std::thread::sleep(Duration::from_millis(20));
        s.release(u32::MAX).unwrap();
        assert_eq!(t.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn alive(_: Token) -> bool {
        true
    }

    #[test]
    fn loom_lock_excludes_and_never_loses_a_wakeup() {
        loom::model(|| {
            let l = Arc::new(RawLock::default());
            let inside = Arc::new(AtomicU32::new(0));
            let other = {
                let (l, inside) = (Arc::clone(&l), Arc::clone(&inside));
                thread::spawn(move || {
                    l.lock(Token::from_id(1), None, alive).unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                    inside.fetch_sub(1, Ordering::Relaxed);
                    assert!(l.unlock());
                })
            };
            l.lock(Token::from_id(2), None, alive).unwrap();
            assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
            inside.fetch_sub(1, Ordering::Relaxed);
            assert!(l.unlock());
            other.join().unwrap();
            assert_eq!(l.owner_id(), None);
        });
    }

    #[test]
    fn loom_event_set_always_reaches_a_waiter() {
        loom::model(|| {
            let e = Arc::new(RawEvent::default());
            let e2 = Arc::clone(&e);
            let waiter = thread::spawn(move || e2.wait(None));
            e.set();
            assert!(waiter.join().unwrap());
        });
    }

    #[test]
    fn loom_condition_notify_wakes_exactly_the_registered() {
        loom::model(|| {
            let c = Arc::new(RawCondition::default());
            // Both register "under the lock" (before anyone notifies), as Condition::wait does.
            let seq = c.register();
            let seq2 = c.register();
            let c2 = Arc::clone(&c);
            let waiter = thread::spawn(move || c2.wait(seq, None));
            assert_eq!(c.notify(1), 1);
            assert_eq!(c.notify(5), 1, "only one waiter is left without a token");
            assert!(c.wait(seq2, None));
            assert!(waiter.join().unwrap());
            assert_eq!(c.waiting(), 0);
        });
    }

    #[test]
    fn loom_semaphore_never_overdraws() {
        loom::model(|| {
            let s = Arc::new(RawSemaphore::default());
            s.init(1);
            let inside = Arc::new(AtomicU32::new(0));
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (s, inside) = (Arc::clone(&s), Arc::clone(&inside));
                    thread::spawn(move || {
                        s.acquire(None).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                        inside.fetch_sub(1, Ordering::Relaxed);
                        s.release(1).unwrap();
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(s.value(), 1);
        });
    }
}
