//! The futex-word protocols under every lock and synchronisation object: [`RawLock`]
//! (robust: a holder that dies is detected), [`RawRLock`], [`RawSemaphore`], [`RawEvent`],
//! [`RawCondition`] and [`RawBarrier`], the two-party hand-off of a [`mailbox`], and [`park`],
//! the one way this crate waits on a word.
//!
//! Each is a `#[repr(C)]` struct of atomics that lives in shared memory and is reached by
//! reference from every process mapping it. They protect no memory themselves; the typed
//! wrappers (`Lock`, `Value`, `Condition`, ...) decide what a lock guards. The only `unsafe`
//! here is the `ShmSafe`/`ShmSync` promise each struct makes: every field is an atomic.

pub(crate) mod park;
#[cfg(feature = "tokio")]
pub(crate) mod wake;

use std::time::Duration;

use self::park::Parked;
use crate::deadline::Deadline;
pub(crate) use crate::error::Acquired;
use crate::error::{Error, LockError, LockResult, Result};
use crate::loom::{AtomicU32, AtomicU64, Ordering};
use crate::sys::identity::{self, Token};

/// How often a sleeping locker checks that the holder is still alive. A holder killed
/// inside the lock is noticed after at most about this long by a waiter that waits that
/// long, and at once by one whose time runs out first (it checks before giving up).
pub(crate) const LIVENESS_PERIOD: Duration = Duration::from_millis(100);

/// How long a `try_` form trusts this thread's own last finding that a holder is alive.
/// The finding costs a `kill(2)` and a read of `/proc/<id>/stat` (some microseconds), too
/// much for every `try_lock` of a loop that polls a lock a live process holds; so a `try_`
/// that found the same holder alive less than this ago says "held" at once. A holder that
/// died is still found by the first `try_` after this period, and by every timed form
/// that waited (they ask afresh).
const TRY_TRUSTS_ALIVE: Duration = Duration::from_millis(10);

#[cfg(not(loom))]
std::thread_local! {
    /// The holder token this thread last found alive, and when.
    static LAST_FOUND_ALIVE: std::cell::Cell<(u64, Option<std::time::Instant>)> =
        const { std::cell::Cell::new((0, None)) };
}

/// The lock or semaphore could not be taken before the deadline (at once, for a deadline
/// already passed: the `try_` forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

/// Turns a raw acquisition into the public result of a guard form, building the guard once
/// the lock is held: a lock not taken is `WouldBlock` for a `try_` form (`tried`) and
/// `Timeout` for the others (the outcome rule).
#[inline]
pub(crate) fn lock_result<G>(
    acquired: Result<Acquired, TimedOut>,
    tried: bool,
    guard: impl FnOnce() -> G,
) -> LockResult<G> {
    match acquired {
        Ok(Acquired::Clean) => Ok(guard()),
        Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(guard())),
        Err(TimedOut) if tried => Err(LockError::WouldBlock),
        Err(TimedOut) => Err(LockError::Timeout),
    }
}

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
/// - Giving up: a locker whose deadline has passed (a `try_` form at once, a timed one at
///   its deadline) asks once whether the holder still runs before it reports [`TimedOut`],
///   so a dead holder is found by every form, whatever its timeout.
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
unsafe impl crate::mem::pod::ShmSafe for RawLock {}
// SAFETY: `word` and `owner` are only written atomically; `_pad` is never written.
unsafe impl crate::mem::pod::ShmSync for RawLock {}

impl RawLock {
    /// Takes the lock for `me` if it is free. One CAS, no syscall, no liveness check.
    #[inline]
    pub(crate) fn try_lock_free(&self, me: Token) -> bool {
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

    /// Takes the lock for `me` if it is free, or if its holder is dead (then
    /// [`Acquired::OwnerDied`]). Never waits: a held lock costs one liveness check
    /// (`alive`), no sleep. (The typed wrappers reach this through `lock` with a passed
    /// deadline, which also tells them it was a `try_`.)
    #[cfg(test)]
    pub(crate) fn try_lock(
        &self,
        me: Token,
        alive: fn(Token) -> bool,
    ) -> Result<Acquired, TimedOut> {
        self.lock(me, Deadline::now(), alive)
    }

    /// Takes the lock for `me`, waiting until `deadline`. `alive` tells whether a holder
    /// still runs (`sys::identity::is_alive`; tests pass their own).
    #[inline]
    pub(crate) fn lock(
        &self,
        me: Token,
        deadline: Deadline,
        alive: fn(Token) -> bool,
    ) -> Result<Acquired, TimedOut> {
        if self.try_lock_free(me) {
            return Ok(Acquired::Clean);
        }
        self.lock_contended(me, deadline, alive)
    }

    #[cold]
    fn lock_contended(
        &self,
        me: Token,
        deadline: Deadline,
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
                    return Ok(Acquired::Clean);
                }
                continue;
            }
            if deadline.has_passed() {
                // The last look: a dead holder is taken over even by a caller out of time.
                // A caller that never waited (a `try_`) may trust its own recent finding
                // that this holder lives; one that waited out its time asks afresh.
                let waited = spun || slept;
                return self
                    .take_over_if_dead(word, me, alive, !waited)
                    .ok_or(TimedOut);
            }
            if !spun {
                spun = true;
                park::spin(&self.word, word, deadline);
                continue;
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
            let check_at = Deadline::after(LIVENESS_PERIOD).min(deadline);
            if park::sleep(&self.word, sleeping_on, check_at) == Parked::Woken {
                continue;
            }
            if let Some(acquired) = self.take_over_if_dead(sleeping_on, me, alive, false) {
                return Ok(acquired);
            }
        }
    }

    /// Takes the lock over from the holder named by `word` if that holder is certainly
    /// dead: one CAS from `word`, so of several waiters exactly one wins. `None` when the
    /// holder lives, or the word changed meanwhile. `trusting`: see [`TRY_TRUSTS_ALIVE`].
    fn take_over_if_dead(
        &self,
        word: u32,
        me: Token,
        alive: fn(Token) -> bool,
        trusting: bool,
    ) -> Option<Acquired> {
        if !self.holder_died(word, alive, trusting) {
            return None;
        }
        // Sleepers may wait on the dead holder's word: keep its `CONTENDED`.
        let new = me.id() & ID_MASK | word & CONTENDED;
        self.word
            .compare_exchange(word, new, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.owner.store(me.0, Ordering::Relaxed);
        Some(Acquired::OwnerDied)
    }

    /// Whether the holder named by `word` is certainly dead. `trusting`: a finding of this
    /// thread that the same holder was alive, less than [`TRY_TRUSTS_ALIVE`] ago, stands.
    fn holder_died(&self, word: u32, alive: fn(Token) -> bool, trusting: bool) -> bool {
        let id = word & ID_MASK;
        let token = Token(self.owner.load(Ordering::Relaxed));
        // A token of another id is stale (the holder died, or has not yet written its own,
        // between its CAS and its store): judge by the id alone then.
        let token = if token.id() == id {
            token
        } else {
            Token::from_id(id)
        };
        #[cfg(not(loom))]
        {
            let now = std::time::Instant::now();
            let (seen, at) = LAST_FOUND_ALIVE.get();
            if trusting && seen == token.0 && at.is_some_and(|at| now - at < TRY_TRUSTS_ALIVE) {
                return false;
            }
            let died = !alive(token);
            if !died {
                LAST_FOUND_ALIVE.set((token.0, Some(now)));
            }
            died
        }
        #[cfg(loom)]
        {
            let _ = trusting;
            !alive(token)
        }
    }

    /// Releases the lock, whoever holds it. Returns `false` (and changes nothing) if it was
    /// not locked. Safe to call from any process: `RawLock` guards no memory itself, and
    /// `Lock` may be released by a process other than its acquirer, as in Python.
    #[inline]
    pub(crate) fn unlock(&self) -> bool {
        // SeqCst: an async waiter's announcement is read after this (see `wake`).
        let old = self.word.swap(0, Ordering::SeqCst);
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
unsafe impl crate::mem::pod::ShmSafe for RawRLock {}
// SAFETY: both parts are written only atomically.
unsafe impl crate::mem::pod::ShmSync for RawRLock {}

impl RawRLock {
    /// Whether the calling thread holds it.
    pub(crate) fn is_mine(&self, me: Token) -> bool {
        self.lock.is_held_by(me)
    }

    /// Takes it (again) for the calling thread, waiting until `deadline` (a passed one is
    /// a `try_`: no wait, one liveness check of a holder).
    pub(crate) fn lock(&self, me: Token, deadline: Deadline) -> Result<Acquired, TimedOut> {
        if self.is_mine(me) {
            self.depth.fetch_add(1, Ordering::Relaxed);
            return Ok(Acquired::Clean);
        }
        let acquired = self.lock.lock(me, deadline, identity::is_alive)?;
        self.depth.store(1, Ordering::Relaxed);
        Ok(acquired)
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
            .lock(me, Deadline::NEVER, identity::is_alive)
            .unwrap_or(Acquired::Clean);
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
unsafe impl crate::mem::pod::ShmSafe for RawSemaphore {}
// SAFETY: both fields are only written atomically.
unsafe impl crate::mem::pod::ShmSync for RawSemaphore {}

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

    /// Takes a unit, waiting until `deadline`.
    pub(crate) fn acquire(&self, deadline: Deadline) -> Result<(), TimedOut> {
        if self.try_acquire() {
            return Ok(());
        }
        self.acquire_contended(deadline)
    }

    #[cold]
    fn acquire_contended(&self, deadline: Deadline) -> Result<(), TimedOut> {
        let mut spun = false;
        loop {
            if self.try_acquire() {
                return Ok(());
            }
            if deadline.has_passed() {
                return Err(TimedOut);
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
        unsafe impl crate::mem::pod::ShmSafe for $name {}
        // SAFETY: every field is written only atomically.
        unsafe impl crate::mem::pod::ShmSync for $name {}
    )*};
}

// Declared after `shared_state!`, which it uses.
pub(crate) mod mailbox;

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

    /// A condition variable's own state (its lock lives apart, in an `RLock`). Everything
    /// but `seq` is written only under that lock.
    ///
    /// A notification belongs to the waiters present when it is made (Python's
    /// `notify(n)` wakes `n` of the waiters waiting *then*): waiters that registered since
    /// the last notify are `fresh` and cannot take one; each notify makes them `old` (bumping
    /// `epoch`, so a waiter knows which it is) and hands `tokens` to up to `n` old waiters
    /// that have none (`tokens <= old`). A waiter sleeps on `seq` (bumped by every notify
    /// that hands out tokens) until it is old and a token is there, or its time runs out;
    /// then, with the lock taken back, it takes a token if there is one (a notification
    /// made while it was getting the lock back is still its own), or leaves. Tokens are
    /// taken only under the lock, so a later waiter can never take one meant for the
    /// present ones.
    pub(crate) struct RawCondition {
        pub(crate) seq: AtomicU32,
        pub(crate) epoch: AtomicU32,
        pub(crate) fresh: AtomicU32,
        pub(crate) old: AtomicU32,
        pub(crate) tokens: AtomicU32,
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
    pub(crate) fn wait(&self, deadline: Deadline) -> bool {
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

/// A waiter of a [`RawCondition`]: the epoch it registered in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u32);

/// How a condition wait ends, decided under the lock by [`RawCondition::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// It took a notification.
    Notified,
    /// Its time ran out with no notification for it; it has left.
    TimedOut,
    /// Woken, but the notification went to another present waiter: wait again.
    Again,
}

impl RawCondition {
    /// Registers a waiter; the caller holds the condition's lock.
    pub(crate) fn register(&self) -> Ticket {
        self.fresh.fetch_add(1, Ordering::Relaxed);
        Ticket(self.epoch.load(Ordering::Relaxed))
    }

    /// Whether a notification may be there for `ticket` (a hint, read without the lock).
    fn may_take(&self, ticket: Ticket) -> bool {
        self.epoch.load(Ordering::Acquire) != ticket.0 && self.tokens.load(Ordering::Acquire) > 0
    }

    /// Waits without the lock until a notification may be there for `ticket`, or
    /// `deadline`. Returns [`Parked::TimedOut`] only when the deadline has passed.
    pub(crate) fn wait(&self, ticket: Ticket, deadline: Deadline) -> Parked {
        loop {
            // `seq` first: a notify after this load changes it, so the sleep returns.
            let seq = self.seq.load(Ordering::Acquire);
            if self.may_take(ticket) {
                return Parked::Woken;
            }
            if park::wait(&self.seq, seq, deadline) == Parked::TimedOut {
                return Parked::TimedOut;
            }
        }
    }

    /// Ends (or not) a wait of `ticket`; the caller holds the lock again. `timed_out`: its
    /// deadline has passed. A notification there for it is taken even then.
    pub(crate) fn settle(&self, ticket: Ticket, timed_out: bool) -> Settled {
        let old = self.epoch.load(Ordering::Relaxed) != ticket.0;
        if old && self.tokens.load(Ordering::Relaxed) > 0 {
            self.tokens.fetch_sub(1, Ordering::Relaxed);
            self.old.fetch_sub(1, Ordering::Relaxed);
            return Settled::Notified;
        }
        if !timed_out {
            return Settled::Again;
        }
        let count = if old { &self.old } else { &self.fresh };
        count.fetch_sub(1, Ordering::Relaxed);
        Settled::TimedOut
    }

    /// Hands notifications to up to `n` of the waiters present now that have none; the
    /// caller holds the lock. Returns how many.
    pub(crate) fn notify(&self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let fresh = self.fresh.swap(0, Ordering::Relaxed);
        let old = self.old.load(Ordering::Relaxed) + fresh;
        if fresh > 0 {
            self.old.store(old, Ordering::Relaxed);
            // Every waiter of the ending epoch is old now.
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
        let tokens = self.tokens.load(Ordering::Relaxed);
        let given = old.saturating_sub(tokens).min(n);
        if given == 0 {
            return 0;
        }
        self.tokens.store(tokens + given, Ordering::Relaxed);
        // Releases `epoch` and `tokens`: a waiter that sees the new `seq` sees both.
        self.seq.fetch_add(1, Ordering::Release);
        park::wake(&self.seq, given);
        given
    }

    /// Waiters registered and not yet notified or gone (a snapshot).
    pub(crate) fn waiting(&self) -> u32 {
        let waiting = self.fresh.load(Ordering::Relaxed) + self.old.load(Ordering::Relaxed);
        waiting.saturating_sub(self.tokens.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

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
        assert_eq!(l.try_lock(token(5), alive), Ok(Acquired::Clean));
        assert_eq!(l.owner_id(), Some(5));
        assert_eq!(l.try_lock(token(6), alive), Err(TimedOut));
        assert!(l.unlock());
        assert!(!l.unlock(), "unlocking an unlocked lock reports it");
        assert_eq!(l.owner_id(), None);
    }

    #[test]
    fn lock_times_out_after_at_least_the_deadline() {
        let l = RawLock::default();
        assert!(l.try_lock(token(5), alive).is_ok());
        let t = Instant::now();
        let d = Deadline::after(Duration::from_millis(30));
        assert_eq!(l.lock(token(6), d, alive), Err(TimedOut));
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(l.owner_id(), Some(5));
    }

    #[test]
    fn a_dead_holder_is_taken_over_once() {
        let l = RawLock::default();
        assert!(l.try_lock(token(5), alive).is_ok());
        assert_eq!(
            l.lock(token(6), Deadline::NEVER, dead),
            Ok(Acquired::OwnerDied)
        );
        assert_eq!(l.owner_id(), Some(6));
        assert!(l.unlock());
        assert_eq!(l.lock(token(7), Deadline::NEVER, dead), Ok(Acquired::Clean));
    }

    // DD-02, review bug 3: a try, or a wait shorter than the liveness period, still finds
    // the dead holder, at once.
    #[test]
    fn a_try_and_a_short_wait_find_a_dead_holder_without_waiting() {
        let l = RawLock::default();
        assert!(l.try_lock(token(5), alive).is_ok());
        let t = Instant::now();
        assert_eq!(l.try_lock(token(6), dead), Ok(Acquired::OwnerDied));
        assert!(t.elapsed() < LIVENESS_PERIOD);
        assert_eq!(l.owner_id(), Some(6));
        let short = Deadline::after(Duration::from_millis(20));
        assert_eq!(l.lock(token(7), short, dead), Ok(Acquired::OwnerDied));
        assert_eq!(l.owner_id(), Some(7));
    }

    #[test]
    fn a_try_trusts_its_recent_finding_that_the_holder_lives_for_a_short_while() {
        let l = RawLock::default();
        assert!(l.try_lock(token(5), alive).is_ok());
        assert_eq!(l.try_lock(token(6), alive), Err(TimedOut));
        // Found alive just now: a try does not ask again (no syscalls in a polling loop)...
        assert_eq!(l.try_lock(token(6), dead), Err(TimedOut));
        // ...but a timed form that waited does,
        let short = Deadline::after(Duration::from_millis(1));
        assert_eq!(l.lock(token(6), short, dead), Ok(Acquired::OwnerDied));
        assert!(l.unlock());
        // and so does a try once the finding is older than `TRY_TRUSTS_ALIVE`.
        assert!(l.try_lock(token(5), alive).is_ok());
        assert_eq!(l.try_lock(token(6), alive), Err(TimedOut));
        std::thread::sleep(TRY_TRUSTS_ALIVE + Duration::from_millis(1));
        assert_eq!(l.try_lock(token(6), dead), Ok(Acquired::OwnerDied));
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
                        let _ = l.lock(token(i), Deadline::NEVER, alive).unwrap();
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
        s.init(0);
        assert_eq!(
            s.acquire(Deadline::after(Duration::from_millis(10))),
            Err(TimedOut)
        );
        assert_eq!(s.acquire(Deadline::now()), Err(TimedOut));
    }

    #[test]
    fn semaphore_release_wakes_a_sleeper() {
        let s = Arc::new(RawSemaphore::default());
        let s2 = Arc::clone(&s);
        let t = std::thread::spawn(move || s2.acquire(Deadline::NEVER));
        std::thread::sleep(Duration::from_millis(20));
        s.release(u32::MAX).unwrap();
        assert_eq!(t.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
    }

    // CD-01, CD-03, review bug 4: a waiter that registers after a notify cannot take it.
    #[test]
    fn a_notification_belongs_to_the_waiters_present() {
        let c = RawCondition::default();
        let a = c.register();
        assert_eq!(c.notify(1), 1);
        let late = c.register();
        assert_eq!(c.settle(late, true), Settled::TimedOut);
        assert_eq!(c.settle(a, false), Settled::Notified);
        assert_eq!(c.waiting(), 0);
        assert_eq!(c.notify(0), 0);
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
                    let _ = l.lock(Token::from_id(1), Deadline::NEVER, alive).unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                    inside.fetch_sub(1, Ordering::Relaxed);
                    assert!(l.unlock());
                })
            };
            let _ = l.lock(Token::from_id(2), Deadline::NEVER, alive).unwrap();
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
            let waiter = thread::spawn(move || e2.wait(Deadline::NEVER));
            e.set();
            assert!(waiter.join().unwrap());
        });
    }

    /// `Condition::wait` on the raw parts: register under the lock, wait without it, settle
    /// with it again (waiting once more on `Again`). `give_up` settles as a timed-out wait
    /// at once (loom deadlines never expire).
    fn cond_wait(c: &RawCondition, l: &RawLock, me: Token, give_up: bool) -> Settled {
        let ticket = c.register();
        loop {
            assert!(l.unlock());
            if !give_up {
                c.wait(ticket, Deadline::NEVER);
            }
            let _ = l.lock(me, Deadline::NEVER, alive).unwrap();
            match c.settle(ticket, give_up) {
                Settled::Again => continue,
                done => return done,
            }
        }
    }

    // CD-01, CD-03, review bug 4: A waits; the notifier notifies once and then waits
    // itself (giving up at once). The notification is A's in every interleaving: A always
    // wakes (else loom reports a deadlock) and the notifier never takes it.
    #[test]
    fn loom_condition_notify_goes_to_the_waiter_present_not_a_later_one() {
        loom::model(|| {
            let c = Arc::new(RawCondition::default());
            let l = Arc::new(RawLock::default());
            let a_waits = Arc::new(AtomicU32::new(0));
            let a = {
                let (c, l, a_waits) = (Arc::clone(&c), Arc::clone(&l), Arc::clone(&a_waits));
                thread::spawn(move || {
                    let me = Token::from_id(1);
                    let _ = l.lock(me, Deadline::NEVER, alive).unwrap();
                    a_waits.store(1, Ordering::Relaxed);
                    let got = cond_wait(&c, &l, me, false);
                    assert!(l.unlock());
                    got
                })
            };
            let me = Token::from_id(2);
            loop {
                let _ = l.lock(me, Deadline::NEVER, alive).unwrap();
                if a_waits.load(Ordering::Relaxed) == 1 {
                    break;
                }
                assert!(l.unlock());
                thread::yield_now();
            }
            assert_eq!(c.notify(1), 1);
            assert_eq!(cond_wait(&c, &l, me, true), Settled::TimedOut);
            assert!(l.unlock());
            assert_eq!(a.join().unwrap(), Settled::Notified);
            assert_eq!(c.waiting(), 0);
        });
    }

    #[test]
    fn loom_condition_notify_wakes_exactly_the_registered() {
        loom::model(|| {
            let c = Arc::new(RawCondition::default());
            // Both register "under the lock" (before anyone notifies), as Condition::wait
            // does; settling needs the lock too, so the model uses one.
            let l = Arc::new(RawLock::default());
            let t1 = c.register();
            let t2 = c.register();
            let waiter = {
                let (c, l) = (Arc::clone(&c), Arc::clone(&l));
                thread::spawn(move || loop {
                    c.wait(t1, Deadline::NEVER);
                    let _ = l.lock(Token::from_id(1), Deadline::NEVER, alive).unwrap();
                    let s = c.settle(t1, false);
                    assert!(l.unlock());
                    if s == Settled::Notified {
                        break;
                    }
                })
            };
            let _ = l.lock(Token::from_id(2), Deadline::NEVER, alive).unwrap();
            assert_eq!(c.notify(1), 1);
            assert_eq!(
                c.notify(5),
                1,
                "only one waiter is left without a notification"
            );
            assert!(l.unlock());
            loop {
                c.wait(t2, Deadline::NEVER);
                let _ = l.lock(Token::from_id(2), Deadline::NEVER, alive).unwrap();
                let s = c.settle(t2, false);
                assert!(l.unlock());
                if s == Settled::Notified {
                    break;
                }
            }
            waiter.join().unwrap();
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
                        s.acquire(Deadline::NEVER).unwrap();
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
