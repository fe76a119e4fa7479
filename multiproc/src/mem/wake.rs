//! Waking async waiters of a shared object: the announcement word and the eventfd.
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

    #[cfg(feature = "tokio")]
    #[cold]
    fn write(&self) {
        use std::os::fd::AsFd;
        if let Some(fd) = &self.fd {
            crate::sys::fd::eventfd_add(fd.as_fd());
        }
    }
}

#[cfg(feature = "tokio")]
mod wait {
    use std::os::fd::AsFd;
    use std::sync::atomic::{fence, AtomicU32, Ordering};

    use tokio::io::Interest;

    use super::AsyncWake;
    use crate::error::Result;
    use crate::reactor::{in_runtime, no_runtime, register};

    /// What one attempt of an async wait found.
    pub(crate) enum Attempt<T> {
        /// Finished (or failed for good): the wait returns this.
        Done(T),
        /// Not possible yet: await the next wake-up.
        Wait,
        /// Possible but momentarily blocked (another process holds a side lock for an
        /// instant): try again soon without awaiting a wake-up, since the holder's release
        /// announces nothing.
        Busy,
    }

    /// Counts one async waiter in the word while it lives (a dropped future uncounts too).
    struct Announced<'a>(&'a AtomicU32);

    impl<'a> Announced<'a> {
        fn new(word: &'a AtomicU32) -> Announced<'a> {
            word.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            Announced(word)
        }
    }

    impl Drop for Announced<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// How often an async wait on a shared object re-tries without a wake-up: the lock
    /// liveness period, so a dead holder is found as soon as by a sync waiter.
    const RECHECK: std::time::Duration = crate::raw::LIVENESS_PERIOD;

    /// `Busy` attempts answered by `yield_now` before the wait sleeps a millisecond between
    /// them.
    const BUSY_YIELDS: u32 = 64;

    impl AsyncWake {
        /// Runs `attempt` until it is done, announced in `waiters` and awaiting the eventfd
        /// between attempts: no thread is held while it waits. Dropping the future mid-wait
        /// is safe: every attempt runs whole, and the announcement is withdrawn.
        pub(crate) async fn until<T>(
            &self,
            waiters: &AtomicU32,
            mut attempt: impl FnMut() -> Attempt<T>,
        ) -> Result<T> {
            let mut busy = 0u32;
            let mut announced = None;
            let mut registered = None;
            loop {
                match attempt() {
                    Attempt::Done(v) => return Ok(v),
                    Attempt::Busy => {
                        if !in_runtime() {
                            return Err(no_runtime());
                        }
                        busy += 1;
                        if busy < BUSY_YIELDS {
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        continue;
                    }
                    Attempt::Wait => busy = 0,
                }
                if announced.is_none() {
                    // Announce, then try once more before the first await (the fence in
                    // `Announced::new` orders the two).
                    announced = Some(Announced::new(waiters));
                    continue;
                }
                if registered.is_none() {
                    registered = Some(match &self.fd {
                        Some(own) => Some(register(
                            crate::sys::fd::dup(own.as_fd())?,
                            Interest::READABLE,
                        )?),
                        None if in_runtime() => None,
                        None => return Err(no_runtime()),
                    });
                }
                // Re-check at least every `RECHECK`: a lock holder that dies wakes nobody
                // (the re-try finds it dead), nor does a waker without our eventfd (an
                // object opened by name, see `AsyncWake`).
                match registered.as_ref().and_then(Option::as_ref) {
                    Some(afd) => {
                        if let Ok(ready) = tokio::time::timeout(RECHECK, afd.readable()).await {
                            ready?.clear_ready();
                        }
                    }
                    None => tokio::time::sleep(RECHECK).await,
                }
            }
        }
    }
}

#[cfg(feature = "tokio")]
pub(crate) use self::wait::Attempt;
