//! Process-shared robust mutexes: a `pthread_mutex_t` in shared memory that the kernel
//! hands on when its owner dies, see [`pthread_mutexattr_setrobust(3)`].
//!
//! glibc registers every thread's robust list with the kernel (and again in a forked
//! child); when a thread that holds such a mutex ends, even by `SIGKILL`, the kernel marks the
//! mutex `FUTEX_OWNER_DIED` and wakes one waiter, whose lock call then returns
//! `EOWNERDEAD`: it owns the mutex and must repair the data and call [`make_consistent`]
//! before it unlocks. Detection is immediate and immune to pid reuse, which a pid-in-a-word
//! lock with liveness polling is not.
//!
//! [`pthread_mutexattr_setrobust(3)`]: https://man7.org/linux/man-pages/man3/pthread_mutexattr_setrobust.3.html

use std::cell::UnsafeCell;
use std::io;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a lock call got the mutex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous owner unlocked it.
    Clean,
    /// The previous owner died holding it: repair, then [`make_consistent`].
    OwnerDied,
}

/// Turns a pthread return code into `Ok(())` or the `io::Error` it stands for.
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// A `pthread_mutex_t` that is process-shared and robust. It only ever exists in place,
/// inside shared memory, initialised by [`RobustMutex::init`].
#[repr(transparent)]
pub(crate) struct RobustMutex(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a pthread mutex is made to be used from many threads (and processes) at once; all
// access goes through the pthread calls, which synchronise.
unsafe impl Sync for RobustMutex {}
// SAFETY: as above; the mutex holds no thread-local state of the caller.
unsafe impl Send for RobustMutex {}

impl std::fmt::Debug for RobustMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RobustMutex")
    }
}

impl RobustMutex {
    /// Initialises a process-shared, robust mutex in place.
    ///
    /// # Safety
    /// - `this` is valid for writes of a `RobustMutex` and suitably aligned.
    /// - No thread or process uses the mutex yet (it is being created).
    pub(crate) unsafe fn init(this: *mut RobustMutex) -> io::Result<()> {
        let m = this.cast::<libc::pthread_mutex_t>();
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is valid for writes; init fills it.
        check(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
        // SAFETY: `attr` was initialised above and is destroyed once below; `m` is valid per
        // the caller's contract (`RobustMutex` is a transparent `pthread_mutex_t`).
        let result = unsafe {
            check(libc::pthread_mutexattr_setpshared(
                attr.as_mut_ptr(),
                libc::PTHREAD_PROCESS_SHARED,
            ))
            .and_then(|()| {
                check(libc::pthread_mutexattr_setrobust(
                    attr.as_mut_ptr(),
                    libc::PTHREAD_MUTEX_ROBUST,
                ))
            })
            .and_then(|()| check(libc::pthread_mutex_init(m, attr.as_ptr())))
        };
        // SAFETY: `attr` is initialised and not used after this.
        unsafe { libc::pthread_mutexattr_destroy(attr.as_mut_ptr()) };
        result
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.0.get()
    }

    /// Takes the mutex, waiting at most until `deadline` (forever with `None`).
    ///
    /// Tries briefly with `trylock` (spinning, then yielding the CPU) before it sleeps in the
    /// kernel: holders keep it for a short copy, and a sleep/wake pair costs tens of
    /// microseconds across CPUs. An error of kind `TimedOut` means the deadline passed.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> io::Result<Acquired> {
        let m = self.raw();
        for round in 0..SPIN_ROUNDS {
            // SAFETY: a `RobustMutex` only exists initialised (see `init`).
            if let Some(got) = outcome(unsafe { libc::pthread_mutex_trylock(m) })? {
                return Ok(got);
            }
            if round < SPIN_ROUNDS / 2 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        loop {
            let ret = match deadline {
                // SAFETY: as above.
                None => unsafe { libc::pthread_mutex_lock(m) },
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    let abs = realtime_after(left);
                    // SAFETY: as above; `abs` is a live timespec.
                    unsafe { libc::pthread_mutex_timedlock(m, &abs) }
                }
            };
            match ret {
                libc::ETIMEDOUT => return Err(io::ErrorKind::TimedOut.into()),
                libc::EINTR | libc::EAGAIN => continue,
                other => {
                    return outcome(other)?
                        .ok_or_else(|| io::Error::other("pthread_mutex_lock returned EBUSY"))
                }
            }
        }
    }

    /// Marks the state a dead owner left as repaired, so the mutex keeps working after
    /// unlock.
    ///
    /// # Safety
    /// - The calling thread holds the mutex after a lock returned [`Acquired::OwnerDied`].
    pub(crate) unsafe fn make_consistent(&self) {
        // SAFETY: per the contract the caller holds the inconsistent mutex.
        unsafe { libc::pthread_mutex_consistent(self.raw()) };
    }

    /// Releases the mutex.
    ///
    /// # Safety
    /// - The calling thread holds the mutex.
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: per the contract the caller holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.raw()) };
    }
}

/// Maps a lock or trylock return code to the outcome; `Ok(None)` for `EBUSY`.
fn outcome(ret: libc::c_int) -> io::Result<Option<Acquired>> {
    match ret {
        0 => Ok(Some(Acquired::Clean)),
        libc::EOWNERDEAD => Ok(Some(Acquired::OwnerDied)),
        libc::EBUSY => Ok(None),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Trylock attempts before sleeping: half spin, half `sched_yield`.
const SPIN_ROUNDS: u32 = 64;

/// `CLOCK_REALTIME` now plus `d`, the absolute time `pthread_mutex_timedlock` wants.
fn realtime_after(d: Duration) -> libc::timespec {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(d);
    libc::timespec {
        tv_sec: at.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: at.subsec_nanos() as libc::c_long,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_unlock_and_timeout() {
        let mut slot = Box::new(MaybeUninit::<RobustMutex>::zeroed());
        // SAFETY: the box is live, aligned and unused by anyone else.
        unsafe { RobustMutex::init(slot.as_mut_ptr()).unwrap() };
        // SAFETY: initialised just above.
        let m: &RobustMutex = unsafe { slot.assume_init_ref() };
        assert_eq!(m.lock(None).unwrap(), Acquired::Clean);
        let t = Instant::now();
        let waited = std::thread::scope(|s| {
            s.spawn(|| {
                m.lock(Some(Instant::now() + Duration::from_millis(30)))
                    .map(|_| ())
            })
            .join()
            .unwrap()
        });
        assert_eq!(waited.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(30));
        // SAFETY: this thread took the lock above.
        unsafe { m.unlock() };
    }

    #[test]
    fn a_dead_owner_is_reported_once() {
        let mut slot = Box::new(MaybeUninit::<RobustMutex>::zeroed());
        // SAFETY: the box is live, aligned and unused by anyone else.
        unsafe { RobustMutex::init(slot.as_mut_ptr()).unwrap() };
        // SAFETY: initialised just above.
        let m: &RobustMutex = unsafe { slot.assume_init_ref() };
        std::thread::scope(|s| {
            s.spawn(|| m.lock(None).unwrap());
        });
        assert_eq!(m.lock(None).unwrap(), Acquired::OwnerDied);
        // SAFETY: held after OwnerDied; then released.
        unsafe {
            m.make_consistent();
            m.unlock();
        }
        assert_eq!(m.lock(None).unwrap(), Acquired::Clean);
        // SAFETY: held.
        unsafe { m.unlock() };
    }
}
