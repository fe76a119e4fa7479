//! What several criterion benches share: the bare futex ping-pong that a blocking
//! cross-process hand-off is compared with.

use std::sync::atomic::{AtomicU32, Ordering};

use multiproc::{Child, Process};

/// States of the shared word: the parent pings, the child answers, or the child stops.
const PING: u32 = 1;
const PONG: u32 = 2;
const STOP: u32 = 3;

/// A ping-pong between this process and a forked child on one shared word with a bare
/// futex wait/wake and no spinning: the floor for a blocking hand-off between processes.
pub(crate) struct FutexPingPong {
    word: &'static AtomicU32,
    child: Child<()>,
}

impl FutexPingPong {
    /// Maps the shared word and forks the echoing child. Call it before criterion starts
    /// any thread (a process with threads may not fork).
    pub(crate) fn start() -> multiproc::Result<FutexPingPong> {
        let word = shared_word()?;
        let child = Process::new(move || loop {
            match word.load(Ordering::Acquire) {
                PING => {
                    word.store(PONG, Ordering::Release);
                    futex_wake(word);
                }
                STOP => break,
                now => futex_wait(word, now),
            }
        })
        // A daemon dies with the bench, even if the bench panics before `stop`.
        .daemon(true)
        .start()?;
        Ok(FutexPingPong { word, child })
    }

    /// One round trip: wakes the child with a ping and sleeps until it answers.
    pub(crate) fn round_trip(&self) {
        self.word.store(PING, Ordering::Release);
        futex_wake(self.word);
        while self.word.load(Ordering::Acquire) == PING {
            futex_wait(self.word, PING);
        }
    }

    /// Tells the child to stop and joins it.
    pub(crate) fn stop(mut self) -> multiproc::Result<()> {
        self.word.store(STOP, Ordering::Release);
        futex_wake(self.word);
        self.child.join()
    }
}

/// A zeroed word in a fresh anonymous shared page, so that a forked child shares it. It is
/// never unmapped (one page for the life of the bench), hence `'static`.
fn shared_word() -> std::io::Result<&'static AtomicU32> {
    // SAFETY: a fresh anonymous shared mapping with no address hint aliases nothing; the
    // result is checked below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the page is mapped read-write, zero-filled (a valid AtomicU32), page-aligned,
    // only ever accessed atomically, and never unmapped.
    Ok(unsafe { &*page.cast::<AtomicU32>() })
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: the word is a live, aligned u32 in shared memory; FUTEX_WAIT (not PRIVATE, so
    // that the other process's wake matches) reads only it; a null timeout waits without
    // limit. EAGAIN and EINTR are handled by the callers' loops.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE of one waiter dereferences nothing else.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}
