//! [`Semaphore`] and [`BoundedSemaphore`]: process-shared counting semaphores.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, Instant};

use super::lock::released_too_many_times;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::mem::named::Layout;
use crate::mem::segment::{Kind, Segment, Shared};
use crate::raw::{SemaphoreState, TimedOut};

const KIND: Kind = Kind(*b"SEMA");

/// A named semaphore's segment (`sync::named`).
pub(super) const LAYOUT: Layout = Layout {
    what: "semaphore",
    kind: KIND,
    size: std::mem::size_of::<SemaphoreState>(),
    align: std::mem::align_of::<SemaphoreState>(),
};

/// A counting semaphore shared by processes: Python's `multiprocessing.Semaphore`.
///
/// `acquire` takes a unit, waiting while there is none; `release` gives one back (any
/// process may). The count lives in shared memory, so [`Semaphore::value`] works
/// everywhere (Python's `get_value`). A process that dies holding units keeps them: a
/// semaphore has no owner to check.
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let sem = multiproc::Semaphore::new(2)?;
/// let a = sem.lock();
/// let b = sem.lock();
/// assert!(sem.try_lock().unwrap_err().is_would_block());
/// drop(a);
/// assert_eq!(sem.value(), 1);
/// # drop(b);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    pub(super) shared: Shared<SemaphoreState>,
}

/// Holds one unit of a [`Semaphore`] (or [`BoundedSemaphore`]); gives it back when
/// dropped.
#[must_use = "the unit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    pub(super) sem: &'a Semaphore,
}

impl Semaphore {
    /// Creates a semaphore holding `value` units, with no upper bound.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the system refuses the memory.
    pub fn new(value: u32) -> Result<Semaphore> {
        Semaphore::with_bound(value, u32::MAX)
    }

    fn with_bound(value: u32, max: u32) -> Result<Semaphore> {
        let segment = Segment::create_for::<SemaphoreState>(KIND)?;
        Ok(Semaphore::init_in(segment, value, max))
    }

    /// A new semaphore of `value` units (at most `max`) in the fresh `segment`.
    pub(super) fn init_in(segment: Segment, value: u32, max: u32) -> Semaphore {
        let sem = Semaphore::in_segment(segment);
        sem.shared.sem.init(value);
        sem.shared.max.store(max, Ordering::Relaxed);
        sem
    }

    /// The semaphore in `segment`, as its creator left it.
    pub(super) fn in_segment(segment: Segment) -> Semaphore {
        Semaphore {
            shared: Shared::new(segment, 0),
        }
    }

    fn state(&self) -> &SemaphoreState {
        &self.shared
    }

    /// Takes a unit, waiting as long as it takes; gives it back when the guard drops.
    pub fn lock(&self) -> SemaphoreGuard<'_> {
        self.acquire();
        SemaphoreGuard { sem: self }
    }

    /// Takes a unit if one is there now.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when there is none.
    pub fn try_lock(&self) -> Result<SemaphoreGuard<'_>> {
        self.try_acquire()?;
        Ok(SemaphoreGuard { sem: self })
    }

    /// Takes a unit, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when none came within `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>> {
        self.acquire_timeout(timeout)?;
        Ok(SemaphoreGuard { sem: self })
    }

    /// Takes a unit, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when none came before `deadline`.
    pub fn lock_deadline(&self, deadline: Instant) -> Result<SemaphoreGuard<'_>> {
        self.acquire_deadline(deadline)?;
        Ok(SemaphoreGuard { sem: self })
    }

    /// Python's `acquire()`: takes a unit, waiting as long as it takes.
    pub fn acquire(&self) {
        let forever = self.state().sem.acquire(Deadline::NEVER);
        debug_assert!(forever.is_ok());
    }

    /// Python's `acquire(False)`: takes a unit if one is there now.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when there is none.
    pub fn try_acquire(&self) -> Result<()> {
        if self.state().sem.try_acquire() {
            Ok(())
        } else {
            Err(Error::WouldBlock)
        }
    }

    /// Python's `acquire(timeout=t)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no unit came within `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
        self.acquire_until(Deadline::after(timeout))
    }

    /// Takes a unit, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no unit came before `deadline`.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<()> {
        self.acquire_until(Deadline::at(deadline))
    }

    fn acquire_until(&self, deadline: Deadline) -> Result<()> {
        self.state()
            .sem
            .acquire(deadline)
            .map_err(|TimedOut| Error::Timeout)
    }

    /// Python's `release()`: gives a unit back.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when that would exceed the bound of a [`BoundedSemaphore`]
    /// (or `u32::MAX`); the count is unchanged.
    pub fn release(&self) -> Result<()> {
        let state = self.state();
        state
            .sem
            .release(state.max.load(Ordering::Relaxed))
            .map_err(|_| released_too_many_times())?;
        self.shared.segment().wake_async_waiters();
        Ok(())
    }

    /// The number of units now (Python's `get_value`); a snapshot.
    pub fn value(&self) -> u32 {
        self.state().sem.value()
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // The guard's own unit goes back; only a stray `release` elsewhere could have made
        // the count reach the bound, and then the unit is simply not added twice.
        let _ = self.sem.release();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .finish()
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

/// A semaphore whose count may never exceed its initial value: Python's
/// `multiprocessing.BoundedSemaphore`. Releasing one unit too many is an error. Every
/// other method is [`Semaphore`]'s.
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let sem = multiproc::BoundedSemaphore::new(1)?;
/// assert!(sem.release().is_err());
/// sem.acquire();
/// sem.release()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    pub(super) sem: Semaphore,
}

impl BoundedSemaphore {
    /// Creates a semaphore holding `value` units, which is also its bound.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the system refuses the memory.
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore {
            sem: Semaphore::with_bound(value, value)?,
        })
    }

    /// `sem` as a bounded semaphore, if it has a bound (`u32::MAX` is none).
    pub(super) fn from_semaphore(sem: Semaphore) -> Option<BoundedSemaphore> {
        (sem.state().max.load(Ordering::Relaxed) != u32::MAX).then_some(BoundedSemaphore { sem })
    }

    /// The bound (the initial value).
    pub fn max_value(&self) -> u32 {
        self.sem.state().max.load(Ordering::Relaxed)
    }

    /// As [`Semaphore::lock`].
    pub fn lock(&self) -> SemaphoreGuard<'_> {
        self.sem.lock()
    }

    /// As [`Semaphore::try_lock`].
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when there is no unit.
    pub fn try_lock(&self) -> Result<SemaphoreGuard<'_>> {
        self.sem.try_lock()
    }

    /// As [`Semaphore::lock_timeout`].
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when none came within `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>> {
        self.sem.lock_timeout(timeout)
    }

    /// As [`Semaphore::lock_deadline`].
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when none came before `deadline`.
    pub fn lock_deadline(&self, deadline: Instant) -> Result<SemaphoreGuard<'_>> {
        self.sem.lock_deadline(deadline)
    }

    /// As [`Semaphore::acquire`].
    pub fn acquire(&self) {
        self.sem.acquire();
    }

    /// As [`Semaphore::try_acquire`].
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when there is no unit.
    pub fn try_acquire(&self) -> Result<()> {
        self.sem.try_acquire()
    }

    /// As [`Semaphore::acquire_timeout`].
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no unit came within `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
        self.sem.acquire_timeout(timeout)
    }

    /// As [`Semaphore::acquire_deadline`].
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no unit came before `deadline`.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<()> {
        self.sem.acquire_deadline(deadline)
    }

    /// Python's `release()`: gives a unit back.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the count is already at the bound (Python's
    /// `ValueError`); the count is unchanged.
    pub fn release(&self) -> Result<()> {
        self.sem.release()
    }

    /// The number of units now (Python's `get_value`); a snapshot.
    pub fn value(&self) -> u32 {
        self.sem.value()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.value())
            .field("max_value", &self.max_value())
            .finish()
    }
}

crate::mem::segment::travels_as_shared!(Semaphore, shared, KIND);

/// Sent through a [`Connection`](crate::Connection) (or as a process argument), it arrives as
/// another handle on the same semaphore, bound included.
impl serde::Serialize for BoundedSemaphore {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.sem.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for BoundedSemaphore {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(BoundedSemaphore {
            sem: serde::Deserialize::deserialize(deserializer)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm_01_value_steps_and_may_exceed_the_initial_value() {
        let s = Semaphore::new(2).unwrap();
        assert_eq!(s.value(), 2);
        s.acquire();
        assert_eq!(s.value(), 1);
        s.acquire();
        assert_eq!(s.value(), 0);
        assert!(matches!(s.try_acquire(), Err(Error::WouldBlock)));
        assert_eq!(s.value(), 0);
        for v in 1..=4 {
            s.release().unwrap();
            assert_eq!(s.value(), v);
        }
    }

    #[test]
    fn sm_02_sm_03_bounded_follows_the_same_steps_and_refuses_over_release() {
        let s = BoundedSemaphore::new(2).unwrap();
        s.acquire();
        s.acquire();
        assert!(matches!(s.try_acquire(), Err(Error::WouldBlock)));
        s.release().unwrap();
        s.release().unwrap();
        let err = s.release().unwrap_err();
        assert!(err.to_string().contains("released too many times"));
        assert_eq!(s.value(), 2);
        assert_eq!(s.max_value(), 2);
    }

    #[test]
    fn sm_04_zero_semaphore_times_out_after_at_least_the_timeout() {
        let s = Semaphore::new(0).unwrap();
        assert!(s.try_acquire().unwrap_err().is_would_block());
        assert!(s.acquire_timeout(Duration::ZERO).unwrap_err().is_timeout());
        let t = Instant::now();
        assert!(s
            .lock_timeout(Duration::from_millis(50))
            .unwrap_err()
            .is_timeout());
        assert!(t.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn failed_try_lock_and_lock_timeout_give_nothing_back() {
        let s = Semaphore::new(0).unwrap();
        assert!(s.try_lock().unwrap_err().is_would_block());
        assert!(s.lock_timeout(Duration::ZERO).unwrap_err().is_timeout());
        assert!(s.lock_deadline(Instant::now()).unwrap_err().is_timeout());
        assert_eq!(s.value(), 0);
    }

    #[test]
    fn sm_05_timed_acquire_returns_when_released() {
        let s = Semaphore::new(0).unwrap();
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.acquire_timeout(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        s.release().unwrap();
        t.join().unwrap().unwrap();
    }
}
