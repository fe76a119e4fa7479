//! [`Lock`]: a process-shared, robust mutual-exclusion lock.


#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, Instant};

use super::park::deadline_after;
use super::raw::{Acquired, RawLock, TimedOut};
use crate::error::{Error, LockError, Result};
use crate::shm::segment::{Kind, Segment, Shared};
use crate::sys::identity;


/// Turns a raw acquisition into the public result, building the guard once acquired.
#[inline]
pub(crate) fn outcome<G>(
    acquired: std::result::Result<Acquired, TimedOut>,
    guard: impl FnOnce() -> G,
) -> std::result::Result<G, LockError<G>> {
    match acquired {
        Ok(Acquired::Normally) => Ok(guard()),
        Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(guard())),
        Err(TimedOut) => Err(LockError::Timeout),
    }
}

/// Python's `acquire`: keeps an acquired lock taken with no guard (the caller releases it).
/// `Ok(true)` when acquired, `Ok(false)` on timeout, `Err(OwnerDied)` when acquired after
/// the previous holder died.
#[inline]
pub(crate) fn keep_acquired<G>(r: std::result::Result<G, LockError<G>>) -> Result<bool> {
    match r {
        Ok(g) => {
            std::mem::forget(g);
            Ok(true)
        }
        Err(LockError::Timeout | LockError::WouldBlock) => Ok(false),
        Err(LockError::OwnerDied(g)) => {
            std::mem::forget(g);
            Err(Error::OwnerDied)
        }
    }
}

const KIND: Kind = Kind(*b"LOCK");

/// A lock shared by processes: Python's `multiprocessing.Lock`.
///
/// It lives in an anonymous shared segment; clones, and copies inherited by forked
/// children, are the same lock. Taking a free lock and releasing it make no system call;
/// a waiter spins briefly, then sleeps on a futex.
///
/// The lock belongs to no thread: any thread or process may [`release`](Lock::release) it
/// (Python's LK-04). It remembers the *process* that took it, so that when that process
/// dies inside the lock, the next locker gets [`LockError::OwnerDied`] with the lock held
/// (within about 0.1 s) instead of waiting forever.
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let lock = multiproc::Lock::new()?;
/// {
///     let _guard = lock.lock()?;
///     assert!(lock.is_locked());
///     assert!(lock.try_lock().is_err());
/// }
/// assert!(!lock.is_locked());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Lock {
    shared: Shared<RawLock>,
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
        Ok(Lock {
            shared: Shared::new(Segment::create_for::<RawLock>(KIND)?, 0),
        })
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
    pub fn lock(&self) -> std::result::Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.lock_until(None)
    }

    /// Takes the lock if it is free now.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when it is held (even by a process that died: only the
    /// blocking forms check the holder's life).
    #[inline]
    pub fn try_lock(&self) -> std::result::Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        if self.raw().try_lock(identity::process()) {
            Ok(LockGuard { lock: self })
        } else {
            Err(LockError::Timeout)
        }
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] after at least `timeout`; [`LockError::OwnerDied`] as for
    /// [`Lock::lock`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.lock_until(deadline_after(timeout))
    }

    #[inline]
    fn lock_until(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        let acquired = self
            .raw()
            .lock(identity::process(), deadline, identity::is_alive);
        outcome(acquired, || LockGuard { lock: self })
    }

    /// Python's `acquire()`: takes the lock with no guard; pair it with [`Lock::release`].
    ///
    /// # Errors
    ///
    /// [`Error::OwnerDied`] when the holder died inside the lock: the lock **is** acquired
    /// then, and must still be released.
    #[inline]
    pub fn acquire(&self) -> Result<()> {
        keep_acquired(self.lock()).map(drop)
    }

    /// Python's `acquire(timeout=t)`: `Ok(true)` when acquired, `Ok(false)` on timeout.
    ///
    /// # Errors
    ///
    /// [`Error::OwnerDied`] as for [`Lock::acquire`] (the lock is then held).
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        keep_acquired(self.lock_timeout(timeout))
    }

    /// Python's `acquire(False)`: takes the lock if it is free, and says whether it did.
    pub fn try_acquire(&self) -> bool {
        matches!(keep_acquired(self.try_lock()), Ok(true))
    }

    /// Python's `release()`: releases the lock, whoever took it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the lock is not locked, as Python's `ValueError`.
    #[inline]
    pub fn release(&self) -> Result<()> {
        if self.raw().unlock() {
            Ok(())
        } else {
            Err(released_too_many_times())
        }
    }

    /// Whether some process holds the lock now (Python's `locked()`).
    pub fn is_locked(&self) -> bool {
        self.raw().owner_id().is_some()
    }

    /// The pid of the process that took the lock, if it is held.
    pub fn owner_pid(&self) -> Option<u32> {
        self.raw().owner_id()
    }
}

pub(crate) fn released_too_many_times() -> Error {
    Error::InvalidState("semaphore or lock released too many times".into())
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw().unlock();
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

crate::shm::segment::travels_as_shared!(Lock, shared, KIND);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lk_01_acquire_release_and_double_release_is_an_error() {
        let l = Lock::new().unwrap();
        l.acquire().unwrap();
        assert!(!l.try_acquire());
        l.release().unwrap();
        let err = l.release().unwrap_err();
        assert!(err.to_string().contains("released too many times"));
    }

    #[test]
    fn lk_02_locked_while_held() {
        let l = Lock::new().unwrap();
        let g = l.lock().unwrap();
        assert!(l.is_locked());
        assert_eq!(l.owner_pid(), Some(std::process::id()));
        drop(g);
        assert!(!l.is_locked());
    }

    #[test]
    fn lk_04_another_thread_may_release() {
        let l = Lock::new().unwrap();
        l.acquire().unwrap();
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
        assert!(!l.acquire_timeout(Duration::from_millis(50)).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(l.lock_timeout(Duration::ZERO).unwrap_err().is_timeout());
    }

    #[test]
    fn lock_error_converts_to_error() {
        let e: Error = LockError::<()>::OwnerDied(()).into();
        assert!(matches!(e, Error::OwnerDied));
        let e: Error = LockError::<()>::Timeout.into();
        assert!(e.is_timeout());
    }
}
