//! Async forms of the waiting calls of [`Lock`], [`Semaphore`], [`BoundedSemaphore`] and
//! [`Event`] (feature `tokio`): they wait on the object's eventfd, holding no thread (see
//! `mem::wake`). A time limit is `tokio::time::timeout` around them; dropping one mid-wait
//! takes nothing and leaves nothing held.
#![forbid(unsafe_code)]

use std::time::Instant;

use super::barrier::Arrival;
use super::{Barrier, BoundedSemaphore, Event, Lock, LockGuard, Semaphore, SemaphoreGuard};
use crate::error::{Error, LockError, LockResult, Result};
use crate::raw::wake::{until, Attempt};
use crate::raw::LIVENESS_PERIOD;

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

impl Barrier {
    /// Awaits the other parties without holding a thread: the async [`Barrier::wait`],
    /// with the barrier's default timeout if it has one. Returns this party's index.
    ///
    /// A party that stops waiting breaks the barrier, as a party whose time runs out does
    /// (Python's rule): dropping the future before the round ends breaks it, and every
    /// other waiter gets [`Error::BrokenBarrier`].
    ///
    /// # Errors
    /// As [`Barrier::wait`]; [`Error::InvalidState`] outside a tokio runtime (the barrier
    /// is then broken).
    pub async fn wait_async(&self) -> Result<u32> {
        let (generation, index) = match self.arrive()? {
            Arrival::Last(index) => return Ok(index),
            Arrival::Waiting { generation, index } => (generation, index),
        };
        let mut leave = BreakIfLeft {
            barrier: self,
            generation,
            armed: true,
        };
        let mut checked = Instant::now();
        let segment = self.segment();
        let round = until(segment.async_wake(), segment.async_waiters(), || {
            if let Some(outcome) = self.outcome(generation) {
                return Attempt::Done(outcome);
            }
            // A party killed while waiting wakes nobody: look for one every liveness
            // period, as a sync waiter does.
            if checked.elapsed() >= LIVENESS_PERIOD {
                checked = Instant::now();
                if let Some(outcome) = self.check_waiting(generation, false) {
                    return Attempt::Done(outcome);
                }
            }
            Attempt::Wait
        });
        let outcome = match self.timeout {
            None => round.await?,
            Some(timeout) => match tokio::time::timeout(timeout, round).await {
                Ok(outcome) => outcome?,
                Err(_) => self
                    .check_waiting(generation, true)
                    .unwrap_or(Err(Error::Timeout)),
            },
        };
        leave.armed = false;
        outcome.map(|()| index)
    }
}

/// Breaks the barrier when an async wait is dropped (or fails) before its round ended.
struct BreakIfLeft<'a> {
    barrier: &'a Barrier,
    generation: u32,
    armed: bool,
}

impl Drop for BreakIfLeft<'_> {
    fn drop(&mut self) {
        if self.armed {
            // As a sync wait whose time ran out: breaks unless the round ended meanwhile.
            let _ = self.barrier.check_waiting(self.generation, true);
        }
    }
}
