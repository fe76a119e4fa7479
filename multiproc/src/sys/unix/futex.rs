//! Process-shared futex wait and wake, wrappers around [`futex(2)`].
//!
//! These never pass `FUTEX_PRIVATE_FLAG`: the word lives in memory mapped by several
//! processes, and a private futex would key on this process's address space only.
//!
//! [`futex(2)`]: https://man7.org/linux/man-pages/man2/futex.2.html

use std::io;
use std::ptr;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout` (forever with `None`).
///
/// Returns `Ok(())` when woken, when the word did not hold `expected` (`EAGAIN`), or on a
/// signal (`EINTR`): callers re-check their condition in a loop, as with any futex.
/// Returns an error of kind `TimedOut` when the timeout expired.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<()> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned `u32` for the duration of the call (it is borrowed);
    // `ts_ptr` is null or points to a live `timespec`; FUTEX_WAIT reads only those.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            ptr::null::<u32>(),
            0u32,
        )
    };
    if ret == -1 {
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(()),
            Some(libc::ETIMEDOUT) => Err(io::Error::from(io::ErrorKind::TimedOut)),
            _ => Err(err),
        }
    } else {
        Ok(())
    }
}

/// Wakes at most `n` processes sleeping on `word`; returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32) as i32;
    // SAFETY: `word` is a valid, aligned `u32`; FUTEX_WAKE does not dereference any other
    // pointer argument.
    let ret = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    ret.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn wait_on_a_changed_word_returns_at_once() {
        let w = AtomicU32::new(1);
        let t = Instant::now();
        wait(&w, 0, Some(Duration::from_secs(5))).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn wait_times_out_after_at_least_the_timeout() {
        let w = AtomicU32::new(0);
        let t = Instant::now();
        let err = wait(&w, 0, Some(Duration::from_millis(50))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn wake_with_no_sleeper_wakes_none() {
        let w = AtomicU32::new(0);
        assert_eq!(wake(&w, 1), 0);
    }
}
