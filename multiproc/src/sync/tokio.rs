//! Async forms of the waiting calls of [`Lock`], [`Semaphore`], [`BoundedSemaphore`] and
//! [`Event`] (feature `tokio`): they wait on the object's eventfd, holding no thread (see
//! `mem::wake`). A time limit is `tokio::time::timeout` around them; dropping one mid-wait
//! takes nothing and leaves nothing held.
#![forbid(unsafe_code)]

use super::{BoundedSemaphore, Event, Lock, LockGuard, Semaphore, SemaphoreGuard};
use crate::error::{Error, LockError, LockResult, Result};
use crate::raw::wake::{until, Attempt};

impl Lock {
    /// Takes the lock, awaiting it as long as it takes without holding a thread: the async
    /// [`Lock::lock`]. The guard releases it when dropped, as for `lock`.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`], holding the guard, when the holder died inside the lock;
    /// [`LockError::WouldBlock`] when the lock cannot be awaited at all: outside a tokio
    /// runtime, or with no descriptor left ([`Lock::acquire_async`] says which).
    pub async fn lock_async(&self) -> LockResult<LockGuard<'_>> {
        let segment = self.shared.segment();
        let r = until(
            segment.async_wake(),
            segment.async_waiters(),
            || match self.try_lock() {
                Err(LockError::WouldBlock) => Attempt::Wait,
                done => Attempt::Done(done),
            },
        )
        .await;
        match r {
            Ok(done) => done,
            // No runtime or no descriptor: say "not taken" in the family's shape.
            Err(_) => Err(LockError::WouldBlock),
        }
    }

    /// Python's `acquire()`, awaited: takes the lock with no guard (pair it with
    /// [`Lock::release`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] outside a tokio runtime; [`Error::Io`] when no descriptor is
    /// left to wait with.
    pub async fn acquire_async(&self) -> Result<crate::Acquired> {
        let segment = self.shared.segment();
        let r =
            until(
                segment.async_wake(),
                segment.async_waiters(),
                || match super::lock::keep_acquired(self.try_lock()) {
                    Err(Error::WouldBlock) => Attempt::Wait,
                    done => Attempt::Done(done),
                },
            )
            .await;
        r?
    }
}

impl Semaphore {
    /// Takes a unit, awaiting one without holding a thread; the guard gives it back.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] outside a tokio runtime; [`Error::Io`] when no descriptor is
    /// left to wait with.
    pub async fn lock_async(&self) -> Result<SemaphoreGuard<'_>> {
        self.acquire_async().await?;
        Ok(SemaphoreGuard { sem: self })
    }

    /// Python's `acquire()`, awaited: takes a unit with no guard.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::lock_async`].
    pub async fn acquire_async(&self) -> Result<()> {
        let segment = self.shared.segment();
        until(
            segment.async_wake(),
            segment.async_waiters(),
            || match self.try_acquire() {
                Ok(()) => Attempt::Done(()),
                Err(_) => Attempt::Wait,
            },
        )
        .await
    }
}

impl BoundedSemaphore {
    /// As [`Semaphore::lock_async`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::lock_async`].
    pub async fn lock_async(&self) -> Result<SemaphoreGuard<'_>> {
        self.sem.lock_async().await
    }

    /// As [`Semaphore::acquire_async`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::lock_async`].
    pub async fn acquire_async(&self) -> Result<()> {
        self.sem.acquire_async().await
    }
}

impl Event {
    /// Awaits the flag without holding a thread: the async [`Event::wait`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] outside a tokio runtime; [`Error::Io`] when no descriptor is
    /// left to wait with.
    pub async fn wait_async(&self) -> Result<()> {
        let segment = self.shared.segment();
        until(segment.async_wake(), segment.async_waiters(), || {
            if self.is_set() {
                Attempt::Done(())
            } else {
                Attempt::Wait
            }
        })
        .await
    }
}
