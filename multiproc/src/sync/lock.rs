//! [`Lock`]: a process-shared, robust mutual-exclusion lock.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::{Acquired, Error, LockError, LockResult, Result};
use crate::mem::named::Layout;
use crate::mem::segment::{Kind, Segment, Shared};
use crate::pid::Pid;
use crate::raw::{lock_result, RawLock};
use crate::sys::identity;

/// Python's `acquire`: keeps an acquired lock taken with no guard (the caller releases it).
/// A lock not taken is `Err(WouldBlock)` or `Err(Timeout)`; a lock taken, whatever its
/// previous owner's fate, is `Ok`, so `?` never hides a held lock.
#[inline]
pub(crate) fn keep_acquired<G>(r: LockResult<G>) -> Result<Acquired> {
    match r {
        Ok(g) => {
            std::mem::forget(g);
            Ok(Acquired::Clean)
        }
        Err(LockError::OwnerDied(g)) => {
            std::mem::forget(g);
            Ok(Acquired::OwnerDied)
        }
        Err(e) => Err(e.into()),
    }
}

const KIND: Kind = Kind(*b"LOCK");

/// A named lock's segment (`sync::named`).
pub(super) const LAYOUT: Layout = Layout {
    what: "lock",
    kind: KIND,
    size: std::mem::size_of::<RawLock>(),
    align: std::mem::align_of::<RawLock>(),
};

/// A lock shared by processes: Python's `multiprocessing.Lock`.
///
/// It lives in an anonymous shared segment; clones, and copies inherited by forked
/// children, are the same lock. Taking a free lock and releasing it make no system call;
/// a waiter spins briefly, then sleeps on a futex.
///
/// The lock belongs to no thread: any thread or process may [`release`](Lock::release) it,
/// as in Python. It remembers the *process* that took it, so that when that process dies
/// inside the lock, the next locker gets [`LockError::OwnerDied`] with the lock held instead
/// of waiting forever: at once for a [`try_lock`](Lock::try_lock) and for a wait whose
/// time runs out, within about 0.1 s for a longer wait.
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let lock = multiproc::Lock::new()?;
/// {
///     let _guard = lock.lock()?;
///     assert!(lock.is_locked());
///     assert!(lock.try_lock().unwrap_err().is_would_block());
/// }
/// assert!(!lock.is_locked());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Lock {
    pub(super) shared: Shared<RawLock>,
}

/// Holds a [`Lock`]; releases it when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Lock {
    /// Creates an unlocked lock in a new shared segment.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the system refuses the memory (`memfd_create`, `mmap`).
    pub fn new() -> Result<Lock> {
        Ok(Lock::in_segment(Segment::create_for::<RawLock>(KIND)?))
    }

    /// The lock in `segment` (zeroed: unlocked), new or opened by name.
    pub(super) fn in_segment(segment: Segment) -> Lock {
        Lock {
            shared: Shared::new(segment, 0),
        }
    }

    #[inline]
    fn raw(&self) -> &RawLock {
        &self.shared
    }

    /// Takes the lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`], holding the guard, when the holder died inside the lock.
    #[inline]
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        self.lock_until(Deadline::NEVER, false)
    }

    /// Takes the lock if it is free now, or if its holder died (checked at once, no wait).
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when a live process holds it; [`LockError::OwnerDied`] as
    /// for [`Lock::lock`].
    #[inline]
    pub fn try_lock(&self) -> LockResult<LockGuard<'_>> {
        self.lock_until(Deadline::now(), true)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] after at least `timeout`; [`LockError::OwnerDied`] as for
    /// [`Lock::lock`] (a dead holder is found before giving up, however short `timeout`).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<LockGuard<'_>> {
        self.lock_until(Deadline::after(timeout), false)
    }

    /// Takes the lock, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`Lock::lock_timeout`].
    pub fn lock_deadline(&self, deadline: Instant) -> LockResult<LockGuard<'_>> {
        self.lock_until(Deadline::at(deadline), false)
    }

    #[inline]
    fn lock_until(&self, deadline: Deadline, tried: bool) -> LockResult<LockGuard<'_>> {
        let acquired = self
            .raw()
            .lock(identity::process(), deadline, identity::is_alive);
        lock_result(acquired, tried, || LockGuard { lock: self })
    }

    /// Python's `acquire()`: takes the lock with no guard; pair it with [`Lock::release`].
    /// [`Acquired::OwnerDied`] says the previous holder died inside the lock (it is held
    /// either way).
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps the shape of the other forms.
    #[inline]
    pub fn acquire(&self) -> Result<Acquired> {
        keep_acquired(self.lock())
    }

    /// Python's `acquire(False)`: takes the lock if it is free (or its holder dead).
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when a live process holds it.
    pub fn try_acquire(&self) -> Result<Acquired> {
        keep_acquired(self.try_lock())
    }

    /// Python's `acquire(timeout=t)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after at least `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Acquired> {
        keep_acquired(self.lock_timeout(timeout))
    }

    /// Takes the lock with no guard, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when `deadline` passed first.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<Acquired> {
        keep_acquired(self.lock_deadline(deadline))
    }

    /// Python's `release()`: releases the lock, whoever took it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the lock is not locked, as Python's `ValueError`.
    #[inline]
    pub fn release(&self) -> Result<()> {
        if self.unlock() {
            Ok(())
        } else {
            Err(released_too_many_times())
        }
    }

    /// Releases the raw lock and tells async waiters; whether it was locked.
    #[inline]
    fn unlock(&self) -> bool {
        let was_locked = self.raw().unlock();
        self.shared.segment().wake_async_waiters();
        was_locked
    }

    /// Whether some process holds the lock now (Python's `locked()`).
    pub fn is_locked(&self) -> bool {
        self.raw().owner_id().is_some()
    }

    /// The pid of the process that took the lock, if it is held.
    pub fn owner_pid(&self) -> Option<Pid> {
        self.raw().owner_id().map(Pid::from)
    }
}

pub(crate) fn released_too_many_times() -> Error {
    Error::InvalidState("semaphore or lock released too many times".into())
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("owner_pid", &self.owner_pid())
            .finish()
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

crate::mem::segment::travels_as_shared!(Lock, shared, KIND);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lk_01_acquire_release_and_double_release_is_an_error() {
        let l = Lock::new().unwrap();
        assert_eq!(l.acquire().unwrap(), Acquired::Clean);
        assert!(matches!(l.try_acquire(), Err(Error::WouldBlock)));
        l.release().unwrap();
        let err = l.release().unwrap_err();
        assert!(err.to_string().contains("released too many times"));
    }

    #[test]
    fn lk_02_locked_while_held() {
        let l = Lock::new().unwrap();
        let g = l.lock().unwrap();
        assert!(l.is_locked());
        assert_eq!(l.owner_pid(), Some(Pid::from(std::process::id())));
        drop(g);
        assert!(!l.is_locked());
    }

    #[test]
    fn lk_04_another_thread_may_release() {
        let l = Lock::new().unwrap();
        let _ = l.acquire().unwrap();
        let l2 = l.clone();
        std::thread::spawn(move || l2.release().unwrap())
            .join()
            .unwrap();
        assert!(!l.is_locked());
    }

    #[test]
    fn lk_05_timeout_waits_at_least_the_timeout() {
        let l = Lock::new().unwrap();
        let _g = l.lock().unwrap();
        let t = Instant::now();
        assert!(matches!(
            l.acquire_timeout(Duration::from_millis(50)),
            Err(Error::Timeout)
        ));
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(l.lock_timeout(Duration::ZERO).unwrap_err().is_timeout());
        assert!(l.try_lock().unwrap_err().is_would_block());
        let past = Instant::now();
        assert!(l.lock_deadline(past).unwrap_err().is_timeout());
    }

    #[test]
    fn lock_error_converts_to_error() {
        let e: Error = LockError::<()>::OwnerDied(()).into();
        assert!(matches!(e, Error::OwnerDied));
        let e: Error = LockError::<()>::Timeout.into();
        assert!(e.is_timeout());
        let e: Error = LockError::<()>::WouldBlock.into();
        assert!(e.is_would_block());
    }
}
