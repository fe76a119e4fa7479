//! [`Condition`]: a process-shared condition variable over an [`RLock`].
#![forbid(unsafe_code)]

use std::fmt;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::rlock::{self, RLock, RLockGuard};
use crate::deadline::Deadline;
use crate::error::{Error, LockResult, Result, WaitError, WaitResult};
use crate::mem::named::Layout;
use crate::mem::segment::{Kind, Segment, Shared};
use crate::raw::park::Parked;
use crate::raw::{Acquired, RawCondition, RawRLock, Settled};
use crate::sys::identity;

const KIND: Kind = Kind(*b"COND");

/// Where a named condition's own state sits: a named condition is one segment (one name,
/// made at once), its lock's, with the condition after the lock.
const NAMED_AT: usize =
    std::mem::size_of::<RawRLock>().next_multiple_of(std::mem::align_of::<RawCondition>());

/// The segment of a named condition: an rlock's kind, so its lock travels as an `RLock`.
pub(super) const NAMED_LAYOUT: Layout = Layout {
    what: "condition",
    kind: rlock::KIND,
    size: NAMED_AT + std::mem::size_of::<RawCondition>(),
    align: if std::mem::align_of::<RawRLock>() > std::mem::align_of::<RawCondition>() {
        std::mem::align_of::<RawRLock>()
    } else {
        std::mem::align_of::<RawCondition>()
    },
};

/// A condition variable shared by processes: Python's `multiprocessing.Condition`.
///
/// Its lock is an [`RLock`] (Python's default), its own or one given to
/// [`Condition::with_lock`]. Waiting releases every level the caller holds and restores
/// them before returning. `notify(n)` wakes `n` of the waiters waiting at that moment, or
/// all of them if fewer: a process that starts waiting afterwards (the notifier itself,
/// say) cannot take a notification meant for the others. A waiter that times out takes no
/// wake-up from the others.
///
/// A timed wait that runs out hands the relocked guard back inside
/// [`WaitError::Timeout`].
///
/// A process killed while it waits stays counted among the waiters: a later `notify` may
/// spend a wake-up on it.
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use std::time::Duration;
/// let cond = multiproc::Condition::new()?;
/// let guard = cond.lock()?;
/// let timed_out = cond.wait_timeout(guard, Duration::from_millis(10)).unwrap_err();
/// let guard = timed_out.into_inner(); // the lock is held again
/// cond.notify_all()?; // wakes nobody, but the lock is held as it must be
/// drop(guard);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Condition {
    lock: RLock,
    shared: Shared<RawCondition>,
}

impl Condition {
    /// Creates a condition with its own new [`RLock`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the system refuses the memory.
    pub fn new() -> Result<Condition> {
        Condition::with_lock(RLock::new()?)
    }

    /// Creates a condition over `lock` (a clone of the caller's: the same lock).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the system refuses the memory.
    pub fn with_lock(lock: RLock) -> Result<Condition> {
        Ok(Condition {
            lock,
            shared: Shared::new(Segment::create_for::<RawCondition>(KIND)?, 0),
        })
    }

    /// The named condition in `segment` (of [`NAMED_LAYOUT`]): its lock first, then its
    /// state. A zeroed segment is an unlocked lock and a condition nobody waits on.
    pub(super) fn in_named_segment(segment: Segment) -> Condition {
        Condition {
            lock: RLock::in_segment(segment.clone()),
            shared: Shared::new(segment, NAMED_AT),
        }
    }

    /// Whether the condition lives in its lock's segment (a named condition).
    fn in_lock_segment(&self) -> bool {
        self.shared.segment().fd().as_raw_fd() == self.lock.segment().fd().as_raw_fd()
    }

    fn raw(&self) -> &RawCondition {
        &self.shared
    }

    /// The condition's lock.
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }

    /// Takes the condition's lock (see [`RLock::lock`]).
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`](crate::LockError::OwnerDied) when the holder died inside
    /// the lock.
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        self.lock.lock()
    }

    /// Takes the condition's lock if it is free (see [`RLock::try_lock`]).
    ///
    /// # Errors
    ///
    /// As [`RLock::try_lock`].
    pub fn try_lock(&self) -> LockResult<RLockGuard<'_>> {
        self.lock.try_lock()
    }

    /// Takes the condition's lock, waiting at most `timeout` (see [`RLock::lock_timeout`]).
    ///
    /// # Errors
    ///
    /// As [`RLock::lock_timeout`].
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<RLockGuard<'_>> {
        self.lock.lock_timeout(timeout)
    }

    /// Takes the condition's lock, waiting until `deadline` at the latest (see
    /// [`RLock::lock_deadline`]).
    ///
    /// # Errors
    ///
    /// As [`RLock::lock_deadline`].
    pub fn lock_deadline(&self, deadline: Instant) -> LockResult<RLockGuard<'_>> {
        self.lock.lock_deadline(deadline)
    }

    /// Releases the lock, waits for a notification, and takes the lock back.
    ///
    /// # Errors
    ///
    /// [`WaitError::OwnerDied`], holding the guard, when a holder died inside the lock
    /// while this process waited.
    ///
    /// # Panics
    ///
    /// If `guard` is not a guard of this condition's lock.
    pub fn wait<'a>(&'a self, guard: RLockGuard<'a>) -> WaitResult<RLockGuard<'a>> {
        self.wait_until(guard, Deadline::NEVER)
    }

    /// Like [`Condition::wait`], for at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`WaitError::Timeout`], holding the relocked guard, when no notification came for
    /// at least `timeout`; [`WaitError::OwnerDied`] as for [`Condition::wait`].
    ///
    /// # Panics
    ///
    /// As [`Condition::wait`].
    pub fn wait_timeout<'a>(
        &'a self,
        guard: RLockGuard<'a>,
        timeout: Duration,
    ) -> WaitResult<RLockGuard<'a>> {
        self.wait_until(guard, Deadline::after(timeout))
    }

    /// Like [`Condition::wait`], until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`Condition::wait_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Condition::wait`].
    pub fn wait_deadline<'a>(
        &'a self,
        guard: RLockGuard<'a>,
        deadline: Instant,
    ) -> WaitResult<RLockGuard<'a>> {
        self.wait_until(guard, Deadline::at(deadline))
    }

    /// Waits while `condition()` is true (Python's `wait_for(not condition)`), checking it
    /// with the lock held; returns at once if it is already false.
    ///
    /// # Errors
    ///
    /// As [`Condition::wait`].
    ///
    /// # Panics
    ///
    /// As [`Condition::wait`].
    pub fn wait_while<'a>(
        &'a self,
        guard: RLockGuard<'a>,
        condition: impl FnMut() -> bool,
    ) -> WaitResult<RLockGuard<'a>> {
        self.wait_while_until(guard, Deadline::NEVER, condition)
    }

    /// Like [`Condition::wait_while`], for at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`WaitError::Timeout`], holding the relocked guard, when it gave up with
    /// `condition()` still true; [`WaitError::OwnerDied`] as for [`Condition::wait`].
    ///
    /// # Panics
    ///
    /// As [`Condition::wait`].
    pub fn wait_while_timeout<'a>(
        &'a self,
        guard: RLockGuard<'a>,
        timeout: Duration,
        condition: impl FnMut() -> bool,
    ) -> WaitResult<RLockGuard<'a>> {
        self.wait_while_until(guard, Deadline::after(timeout), condition)
    }

    /// Like [`Condition::wait_while`], until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`Condition::wait_while_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Condition::wait`].
    pub fn wait_while_deadline<'a>(
        &'a self,
        guard: RLockGuard<'a>,
        deadline: Instant,
        condition: impl FnMut() -> bool,
    ) -> WaitResult<RLockGuard<'a>> {
        self.wait_while_until(guard, Deadline::at(deadline), condition)
    }

    fn wait_while_until<'a>(
        &'a self,
        mut guard: RLockGuard<'a>,
        deadline: Deadline,
        mut condition: impl FnMut() -> bool,
    ) -> WaitResult<RLockGuard<'a>> {
        while condition() {
            if deadline.has_passed() {
                return Err(WaitError::Timeout(guard));
            }
            guard = match self.wait_until(guard, deadline) {
                Ok(g) | Err(WaitError::Timeout(g)) => g,
                Err(died) => return Err(died),
            };
        }
        Ok(guard)
    }

    fn wait_until<'a>(
        &'a self,
        guard: RLockGuard<'a>,
        deadline: Deadline,
    ) -> WaitResult<RLockGuard<'a>> {
        let me = identity::thread();
        let lock = self.lock.raw();
        assert!(
            lock.is_mine(me),
            "Condition::wait needs a guard of the condition's own lock"
        );
        // Registered with the lock held, so a notify from the next holder counts us.
        let ticket = self.raw().register();
        let mut owner_died = false;
        let settled = loop {
            let depth = lock.unlock_all();
            let parked = self.raw().wait(ticket, deadline);
            owner_died |= lock.relock(me, depth) == Acquired::OwnerDied;
            let timed_out = parked == Parked::TimedOut || deadline.has_passed();
            match self.raw().settle(ticket, timed_out) {
                // Another present waiter took the notification first: wait on.
                Settled::Again => continue,
                settled => break settled,
            }
        };
        match settled {
            _ if owner_died => Err(WaitError::OwnerDied(guard)),
            Settled::Notified => Ok(guard),
            Settled::TimedOut | Settled::Again => Err(WaitError::Timeout(guard)),
        }
    }

    /// Wakes up to `n` waiters. The caller must hold the lock.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the calling thread does not hold the lock.
    pub fn notify(&self, n: u32) -> Result<()> {
        if !self.lock.is_owned() {
            return Err(Error::InvalidState("lock is not owned".into()));
        }
        self.raw().notify(n);
        Ok(())
    }

    /// Wakes one waiter (Python's `notify()`).
    ///
    /// # Errors
    ///
    /// As [`Condition::notify`].
    pub fn notify_one(&self) -> Result<()> {
        self.notify(1)
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    ///
    /// As [`Condition::notify`].
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }

    /// How many processes or threads wait and have not been notified (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.raw().waiting()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .field("n_waiting", &self.n_waiting())
            .finish()
    }
}

/// Sent through a [`Connection`](crate::Connection) (or as a process argument), it arrives as
/// another handle on the same condition and its lock.
impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A named condition's state travels with its lock's segment.
        let own = (!self.in_lock_segment()).then(|| self.shared.segment());
        serde::Serialize::serialize(&(&self.lock, own), serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Raw(Shared<RawCondition>);
        impl<'de> serde::Deserialize<'de> for Raw {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Shared::deserialize_as(d, KIND).map(Raw)
            }
        }
        let (lock, own): (RLock, Option<Raw>) = serde::Deserialize::deserialize(deserializer)?;
        match own {
            Some(Raw(shared)) => Ok(Condition { lock, shared }),
            None if lock.segment().payload_size() == NAMED_LAYOUT.size => {
                Ok(Condition::in_named_segment(lock.segment().clone()))
            }
            None => Err(<D::Error as serde::de::Error>::custom(
                "a condition without a segment of its own must live in its lock's",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn cd_04_wait_times_out_after_at_least_the_timeout() {
        let c = Condition::new().unwrap();
        let g = c.lock().unwrap();
        let g = c.wait_timeout(g, Duration::ZERO).unwrap_err().into_inner();
        let t = Instant::now();
        let e = c.wait_timeout(g, Duration::from_millis(50)).unwrap_err();
        assert!(e.is_timeout());
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(
            c.get_lock().is_owned(),
            "the guard comes back with the error"
        );
        drop(e);
        assert_eq!(c.n_waiting(), 0);
        assert!(!c.get_lock().is_locked());
    }

    #[test]
    fn cd_08_notify_without_the_lock_is_an_error() {
        let c = Condition::new().unwrap();
        assert!(c.notify(1).unwrap_err().to_string().contains("not owned"));
    }

    #[test]
    fn cd_09_wait_releases_every_level_and_restores_them() {
        let c = Condition::new().unwrap();
        let outer = c.lock().unwrap();
        let inner = c.lock().unwrap();
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            let g = c2.lock().unwrap();
            c2.notify_one().unwrap();
            drop(g);
        });
        let inner = c.wait(inner).unwrap();
        assert_eq!(c.get_lock().depth(), 2);
        drop(inner);
        drop(outer);
        t.join().unwrap();
        assert!(!c.get_lock().is_locked());
    }

    #[test]
    fn cd_01_cd_03_notify_n_wakes_exactly_n() {
        let c = Condition::new().unwrap();
        let woken = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (c, woken) = (c.clone(), Arc::clone(&woken));
                std::thread::spawn(move || {
                    let g = c.lock().unwrap();
                    let _g = c.wait(g).unwrap();
                    woken.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        while c.n_waiting() < 6 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let g = c.lock().unwrap();
        c.notify(2).unwrap();
        drop(g);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(woken.load(Ordering::SeqCst), 2);
        assert_eq!(c.n_waiting(), 4);
        let g = c.lock().unwrap();
        c.notify(4).unwrap();
        c.notify(3).unwrap(); // nobody left to wake: a no-op
        drop(g);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 6);
        assert_eq!(c.n_waiting(), 0);
    }

    #[test]
    fn cd_05_wait_while_returns_at_once_when_already_false_and_times_out_when_true() {
        let c = Condition::new().unwrap();
        let g = c.lock().unwrap();
        let g = c
            .wait_while_timeout(g, Duration::from_secs(60), || false)
            .unwrap();
        let e = c
            .wait_while_timeout(g, Duration::from_millis(20), || true)
            .unwrap_err();
        assert!(e.is_timeout());
        let g = e.into_inner();
        let past = Instant::now();
        assert!(c.wait_deadline(g, past).unwrap_err().is_timeout());
    }
}
