//! [`RLock`]: a recursive lock owned by one thread of one process.
#![forbid(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::lock::keep_acquired;
use crate::deadline::Deadline;
use crate::error::{Acquired, LockResult, Result};
use crate::mem::named::Layout;
use crate::mem::segment::{Kind, Segment, Shared};
use crate::raw::{lock_result, RawRLock};
use crate::sys::identity;

pub(super) const KIND: Kind = Kind(*b"RLCK");

pub(super) const LAYOUT: Layout = Layout {
    what: "rlock",
    kind: KIND,
    size: std::mem::size_of::<RawRLock>(),
    align: std::mem::align_of::<RawRLock>(),
};

/// A recursive lock shared by processes: Python's `multiprocessing.RLock`.
///
/// The owner is one thread of one process: it may take the lock again (each take needs its
/// own release), and nobody else may release it. Robust like [`Lock`](super::Lock): if the
/// owning thread's process dies inside the lock, the next locker gets
/// [`LockError::OwnerDied`](crate::LockError::OwnerDied).
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let rlock = multiproc::RLock::new()?;
/// let outer = rlock.lock()?;
/// let inner = rlock.lock()?; // the owner may take it again
/// assert_eq!(rlock.depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert!(!rlock.is_locked());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RLock {
    shared: Shared<RawRLock>,
}

/// Holds one level of an [`RLock`]; gives it up when dropped.
#[must_use = "the lock level is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    rlock: &'a RLock,
    /// The level belongs to this thread: the guard must not move to another.
    _not_send: PhantomData<*const ()>,
}

impl RLock {
    /// Creates an unlocked recursive lock in a new shared segment.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the system refuses the memory.
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            shared: Shared::new(Segment::create_for::<RawRLock>(KIND)?, 0),
        })
    }

    /// The lock at the start of `segment` (an rlock's, or a named condition's).
    pub(super) fn in_segment(segment: Segment) -> RLock {
        RLock {
            shared: Shared::new(segment, 0),
        }
    }

    /// The segment the lock lives in.
    pub(super) fn segment(&self) -> &Segment {
        self.shared.segment()
    }

    pub(crate) fn raw(&self) -> &RawRLock {
        &self.shared
    }

    /// Takes the lock (again, if the calling thread holds it), waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`](crate::LockError::OwnerDied), holding the guard, when the owner
    /// died inside the lock.
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        self.lock_until(Deadline::NEVER, false)
    }

    /// Takes the lock if it is free, already the calling thread's, or its owner died
    /// (checked at once, no wait).
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`](crate::LockError::WouldBlock) when another live thread or process
    /// holds it; [`LockError::OwnerDied`](crate::LockError::OwnerDied) as for [`RLock::lock`].
    pub fn try_lock(&self) -> LockResult<RLockGuard<'_>> {
        self.lock_until(Deadline::now(), true)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`](crate::LockError::Timeout) after at least `timeout`;
    /// [`LockError::OwnerDied`](crate::LockError::OwnerDied) as for [`RLock::lock`] (a dead owner
    /// is found before giving up, however short `timeout`).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<RLockGuard<'_>> {
        self.lock_until(Deadline::after(timeout), false)
    }

    /// Takes the lock, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`RLock::lock_timeout`].
    pub fn lock_deadline(&self, deadline: Instant) -> LockResult<RLockGuard<'_>> {
        self.lock_until(Deadline::at(deadline), false)
    }

    fn lock_until(&self, deadline: Deadline, tried: bool) -> LockResult<RLockGuard<'_>> {
        let acquired = self.raw().lock(identity::thread(), deadline);
        lock_result(acquired, tried, || RLockGuard {
            rlock: self,
            _not_send: PhantomData,
        })
    }

    /// Python's `acquire()`: one more level, no guard; pair it with [`RLock::release`].
    /// [`Acquired::OwnerDied`] says the previous owner died inside the lock (it is held
    /// either way).
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps the shape of the other forms.
    pub fn acquire(&self) -> Result<Acquired> {
        keep_acquired(self.lock())
    }

    /// Python's `acquire(False)`: one more level if the lock is free or already the
    /// calling thread's (or its owner dead).
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`](crate::Error::WouldBlock) when another live thread holds it.
    pub fn try_acquire(&self) -> Result<Acquired> {
        keep_acquired(self.try_lock())
    }

    /// Python's `acquire(timeout=t)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) after at least `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Acquired> {
        keep_acquired(self.lock_timeout(timeout))
    }

    /// One more level with no guard, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) when `deadline` passed first.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<Acquired> {
        keep_acquired(self.lock_deadline(deadline))
    }

    /// Python's `release()`: gives up one level.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`](crate::Error::InvalidState) when the calling thread does not hold
    /// the lock (Python's `AssertionError`), including when nobody does.
    pub fn release(&self) -> Result<()> {
        self.raw().unlock(identity::thread())
    }

    /// Whether any thread holds the lock now.
    pub fn is_locked(&self) -> bool {
        self.raw().owner_id().is_some()
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.raw().is_mine(identity::thread())
    }

    /// How many levels the owner holds (0 when free).
    pub fn depth(&self) -> u32 {
        if self.is_locked() {
            self.raw().depth()
        } else {
            0
        }
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // The guard was made by this thread and guards cannot cross threads (not Send), so
        // this thread still owns the level: unlock cannot fail.
        let _ = self.rlock.raw().unlock(identity::thread());
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner_tid", &self.raw().owner_id())
            .field("depth", &self.depth())
            .finish()
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}

/// Sent through a [`Connection`](crate::Connection) (or as a process argument), it arrives as
/// another handle on the same lock (see [`handle`](crate::handle)).
impl serde::Serialize for RLock {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(self.shared.segment(), serializer)
    }
}

impl<'de> serde::Deserialize<'de> for RLock {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Alone in its segment, or first in a named condition's.
        let named = super::condition::NAMED_LAYOUT;
        let seg = Segment::deserialize_as(deserializer, KIND, |size| {
            if size == LAYOUT.size {
                Some((LAYOUT.size, LAYOUT.align))
            } else {
                (size == named.size).then_some((named.size, named.align))
            }
        })?;
        Ok(RLock::in_segment(seg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rl_01_owner_takes_three_levels_and_a_fourth_release_fails() {
        let r = RLock::new().unwrap();
        for _ in 0..3 {
            assert_eq!(r.acquire().unwrap(), Acquired::Clean);
        }
        assert_eq!(r.depth(), 3);
        for _ in 0..3 {
            assert!(r.is_locked());
            r.release().unwrap();
        }
        assert!(!r.is_locked());
        assert!(r.release().is_err());
    }

    #[test]
    fn rl_03_rl_04_another_thread_can_neither_release_nor_take_it() {
        let r = RLock::new().unwrap();
        let _g = r.lock().unwrap();
        let r2 = r.clone();
        std::thread::spawn(move || {
            assert!(r2.release().unwrap_err().to_string().contains("not owned"));
            assert!(r2.try_lock().unwrap_err().is_would_block());
            assert!(r2.try_acquire().unwrap_err().is_would_block());
            assert!(r2.acquire_timeout(Duration::ZERO).unwrap_err().is_timeout());
            assert!(!r2.is_owned());
        })
        .join()
        .unwrap();
        assert_eq!(r.depth(), 1);
        assert!(r.is_owned());
    }
}
