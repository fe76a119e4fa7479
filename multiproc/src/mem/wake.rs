//! Waking async waiters of a shared object: the eventfd of a segment, and the waker's step.
//! The waiter's side (announce, re-try, await) is `raw::wake`.
//!
//! Locks, semaphores, events, barriers and queues wait on futexes in shared memory, which a
//! reactor cannot poll. An async waiter (feature `tokio`) therefore does not sleep on the
//! futex: it *announces* itself in a shared word of the object (the segment header's
//! `async_waiters` word, or a queue signal's `async_waiters`), re-tries the operation, and
//! awaits the segment's eventfd. Every waker, right after the state change that may let a
//! waiter go on (an unlock, a release, a set, a put, a get), calls [`AsyncWake::wake`]: one
//! load of that word, and an eventfd write only when it is not zero. So a process that never
//! waits asynchronously pays one load per wake-up-able call, and nothing at all without the
//! feature (the type is then empty and `wake` does nothing).
//!
//! # Why no wake-up is lost
//!
//! The waiter increments the word (`SeqCst`), issues a `SeqCst` fence, then re-tries; the
//! waker changes the state with a `SeqCst` read-modify-write (or issues a `SeqCst` fence
//! after its change), then loads the word (`SeqCst`: a plain load on x86_64). By the
//! `SeqCst` total order either the waiter's re-try sees the change, or the waker sees the
//! announcement and writes the eventfd, which makes it readable in every process's reactor.
//!
//! # The eventfd
//!
//! One per segment, made with it, inherited by forked children with the segment's memfd,
//! and sent beside the memfd whenever the segment travels (a handle given to a child under
//! any start method, or sent through a `Connection`): every process that holds the object
//! by any of these ways writes and awaits the same eventfd. Only a segment opened *by name*
//! gets an eventfd of its own (a name cannot carry a descriptor); its async waiters then see
//! the other processes' changes at the re-check every [`LIVENESS_PERIOD`].
//!
//! It is never read (drained): a drain by one process could hide the readiness from another
//! process whose reactor has not looked yet (epoll re-checks the level before it reports an
//! edge-triggered event). Each waiting task registers its own duplicate of it with tokio
//! (edge-triggered: every write is one event for every registration) and re-tries on each
//! event. Its count grows by one per write that found a waiter announced; it would take
//! 2^64 of them to fill it.
//!
//! [`LIVENESS_PERIOD`]: crate::raw::LIVENESS_PERIOD

use std::sync::atomic::AtomicU32;
#[cfg(feature = "tokio")]
use std::{os::fd::OwnedFd, sync::atomic::Ordering};

/// The eventfd of one segment (empty without feature `tokio`).
///
/// `None` when the system refused an eventfd: async waits then only re-check every
/// [`LIVENESS_PERIOD`](crate::raw::LIVENESS_PERIOD).
#[derive(Debug)]
pub(crate) struct AsyncWake {
    #[cfg(feature = "tokio")]
    fd: Option<OwnedFd>,
}

impl AsyncWake {
    /// A new eventfd for a new segment (or one opened by name).
    pub(crate) fn new() -> AsyncWake {
        AsyncWake {
            #[cfg(feature = "tokio")]
            fd: crate::sys::fd::eventfd().ok(),
        }
    }

    /// The eventfd that came with a received segment (`None`: the sender had none, or was
    /// built without feature `tokio`: a new one is made). Without the feature the
    /// descriptor is closed.
    pub(crate) fn received(fd: Option<std::os::fd::OwnedFd>) -> AsyncWake {
        #[cfg(feature = "tokio")]
        if let Some(fd) = fd {
            return AsyncWake { fd: Some(fd) };
        }
        #[cfg(not(feature = "tokio"))]
        drop(fd);
        AsyncWake::new()
    }

    /// The eventfd, to send beside the segment.
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        #[cfg(feature = "tokio")]
        return self.fd.as_ref().map(std::os::fd::AsFd::as_fd);
        #[cfg(not(feature = "tokio"))]
        None
    }

    /// The waker's step: after a state change that may let a waiter go on, tells the async
    /// waiters announced in `waiters`, if any. One `SeqCst` load when there are none.
    #[inline]
    pub(crate) fn wake(&self, waiters: &AtomicU32) {
        #[cfg(feature = "tokio")]
        if waiters.load(Ordering::SeqCst) != 0 {
            self.write();
        }
        #[cfg(not(feature = "tokio"))]
        let _ = waiters;
    }

    /// A duplicate of the eventfd registered with the task's tokio reactor, for one wait
    /// (`None` when the segment has no eventfd).
    ///
    /// # Errors
    /// As [`crate::reactor::register`], and [`crate::error::Error::Io`] when no descriptor
    /// is left for the duplicate.
    #[cfg(feature = "tokio")]
    pub(crate) fn register(
        &self,
    ) -> crate::error::Result<Option<tokio::io::unix::AsyncFd<OwnedFd>>> {
        use std::os::fd::AsFd;
        let Some(own) = &self.fd else {
            return if crate::reactor::in_runtime() {
                Ok(None)
            } else {
                Err(crate::reactor::no_runtime())
            };
        };
        let copy = crate::sys::fd::dup(own.as_fd())?;
        crate::reactor::register(copy, tokio::io::Interest::READABLE).map(Some)
    }

    #[cfg(feature = "tokio")]
    #[cold]
    fn write(&self) {
        use std::os::fd::AsFd;
        if let Some(fd) = &self.fd {
            crate::sys::fd::eventfd_add(fd.as_fd());
        }
    }
}
