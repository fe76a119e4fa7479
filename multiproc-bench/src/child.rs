//! Forked child processes for the Rust peers and the floors, and a start gate.
//!
//! The bench forks only while it has exactly one thread (threads of the in-process
//! scenarios are joined first, procspawn's pool threads are waited out), so the child may
//! allocate and run ordinary Rust code. A child ends with `_exit`: it never returns into
//! the parent's stack, never runs its destructors or atexit handlers.

use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::harness::Result;

/// A forked child; killed and reaped on drop unless [`Forked::wait`] reaped it.
#[derive(Debug)]
pub(crate) struct Forked {
    pid: libc::pid_t,
    reaped: bool,
}

/// Proof that the process had one thread when it was made; it cannot leave the thread
/// that made it. The fork floor forks many times on one proof, to keep the check out of
/// its timing.
#[derive(Debug)]
pub(crate) struct SingleThreaded(PhantomData<*const ()>);

/// Forks a child that runs `body` and exits 0 on `Ok`, 1 (after printing the error) on
/// `Err` or a panic.
pub(crate) fn fork(body: impl FnOnce() -> Result<()>) -> Result<Forked> {
    fork_with(&single_threaded()?, body)
}

/// [`fork`] on an earlier proof that the process has one thread.
pub(crate) fn fork_with(
    _proof: &SingleThreaded,
    body: impl FnOnce() -> Result<()>,
) -> Result<Forked> {
    // SAFETY: the process has exactly one thread (`_proof`, and the bench starts threads
    // only inside scenarios that join them before returning), so no lock can be held by
    // a thread that does not exist in the child, and the child may run ordinary code.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error().into()),
        0 => {
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    eprintln!("multiproc-bench child: {e}");
                    1
                }
                Err(_) => 1,
            };
            // SAFETY: `_exit` ends the child at once, which is what we want: no unwinding
            // into the parent's frames, no destructors of state copied from the parent.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(Forked { pid, reaped: false }),
    }
}

impl Forked {
    /// Waits for the child; an error unless it exited with status 0.
    pub(crate) fn wait(mut self) -> Result<()> {
        let status = self.reap()?;
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else {
            Err(format!("child {} ended with wait status {status:#x}", self.pid).into())
        }
    }

    fn reap(&mut self) -> io::Result<libc::c_int> {
        let mut status = 0;
        loop {
            // SAFETY: `pid` is our unreaped child; `status` is a valid out-pointer.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc == self.pid {
                self.reaped = true;
                return Ok(status);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: `pid` is our child and not reaped yet, so the pid is still ours
            // (an unreaped zombie keeps it from being reused).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.reap();
        }
    }
}

/// Waits all children; the first error wins, and every child is reaped either way.
pub(crate) fn wait_all(children: Vec<Forked>) -> Result<()> {
    children
        .into_iter()
        .map(Forked::wait)
        .fold(Ok(()), Result::and)
}

/// Returns freed heap memory to the system (glibc keeps it by default), so that a fork
/// copies the page tables of what is in use, not of everything ever allocated.
pub(crate) fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Checks that the process has one thread. Threads that are exiting (procspawn's pool
/// monitors after a kill) take a moment to disappear, so it waits a little for the count
/// to reach one before refusing.
pub(crate) fn single_threaded() -> Result<SingleThreaded> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let threads = thread_count()?;
        if threads == 1 {
            return Ok(SingleThreaded(PhantomData));
        }
        if Instant::now() > deadline {
            return Err(format!("cannot fork: the bench has {threads} threads").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads line in /proc/self/status"))
}

/// Holds forked children until the parent opens it, so that the timed part starts with
/// every child already running.
#[derive(Debug)]
pub(crate) struct Gate {
    reader: io::PipeReader,
    writer: io::PipeWriter,
}

impl Gate {
    pub(crate) fn new() -> io::Result<Self> {
        let (reader, writer) = io::pipe()?;
        Ok(Gate { reader, writer })
    }

    /// In a child: blocks until the parent opens the gate.
    pub(crate) fn wait(&mut self) -> io::Result<()> {
        self.reader.read_exact(&mut [0])
    }

    /// In the parent: lets `children` waiters through.
    pub(crate) fn open(&mut self, children: usize) -> io::Result<()> {
        self.writer.write_all(&vec![0; children])
    }
}
