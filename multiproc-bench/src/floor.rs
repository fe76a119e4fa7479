//! The raw primitives the OS floors need beyond std: a word in shared memory that
//! processes can wait on with a futex, and larger pipe and socket buffers. (The sockets
//! and pipes themselves come from std.)

use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// An `AtomicU32` in an anonymous `MAP_SHARED` mapping: a fork shares it with the child.
#[derive(Debug)]
pub(crate) struct SharedWord {
    word: NonNull<AtomicU32>,
}

impl SharedWord {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: an anonymous shared mapping of one page, no fd and no address hint; the
        // result is checked for MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let word =
            NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(SharedWord { word })
    }

    pub(crate) fn get(&self) -> &AtomicU32 {
        // SAFETY: the page is mapped read-write until `drop`, zero-filled (a valid
        // AtomicU32), page-aligned, and only ever accessed atomically.
        unsafe { self.word.as_ref() }
    }

    /// Blocks until the word is no longer `current` (returns at once if it already is not).
    pub(crate) fn wait_while(&self, current: u32) {
        while self.get().load(Ordering::Acquire) == current {
            // SAFETY: the address is a live, aligned u32; FUTEX_WAIT without the PRIVATE
            // flag so that it matches wakes from the other process sharing the page.
            // EAGAIN (value changed) and EINTR are handled by the loop.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.word.as_ptr(),
                    libc::FUTEX_WAIT,
                    current,
                    std::ptr::null::<libc::timespec>(),
                )
            };
        }
    }

    /// Stores `value` and wakes a waiter.
    pub(crate) fn set_and_wake(&self, value: u32) {
        self.get().store(value, Ordering::Release);
        // SAFETY: the address is a live, aligned u32; FUTEX_WAKE of one waiter, shared.
        unsafe { libc::syscall(libc::SYS_futex, self.word.as_ptr(), libc::FUTEX_WAKE, 1) };
    }
}

impl Drop for SharedWord {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `new` with this address and length, and the
        // reference handed out by `get` cannot outlive `self`.
        unsafe { libc::munmap(self.word.as_ptr().cast(), page_size()) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Grows a pipe's buffer (`F_SETPIPE_SZ`) to `bytes`, capped at what an unprivileged
/// process may ask for (`/proc/sys/fs/pipe-max-size`), so that a large message moves with
/// as few wake-ups as the kernel allows.
pub(crate) fn grow_pipe(pipe: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(bytes);
    let size = libc::c_int::try_from(bytes.min(max)).map_err(io::Error::other)?;
    // SAFETY: F_SETPIPE_SZ takes an int and only resizes the buffer of a descriptor that
    // `pipe` keeps open for the duration of the call.
    let rc = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks for `bytes` of send and receive buffer on a socket (`SO_SNDBUF`/`SO_RCVBUF`; the
/// kernel caps it at `net.core.wmem_max`/`rmem_max`), as multiproc's own pipes do.
pub(crate) fn grow_socket(socket: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    let size = libc::c_int::try_from(bytes).map_err(io::Error::other)?;
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: the option value is a live c_int of the length passed, and `socket`
        // keeps the descriptor open for the duration of the call.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw const size).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
