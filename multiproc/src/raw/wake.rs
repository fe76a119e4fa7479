//! Waking async waiters of a shared object: the announcement word and the eventfd.
//!
//! Locks, semaphores, events, barriers and queues wait on futexes in shared memory, which a
//! reactor cannot poll. An async waiter (feature `tokio`) therefore does not sleep on the
//! futex: it *announces* itself in a shared word of the object (the segment header's
//! `async_waiters` word, or a queue signal's `async_waiters`), re-tries the operation, and
//! awaits the object's eventfd. Every waker, right after the state change that may let a
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
//! One per object, made with it and inherited by forked children like the segment's memfd.
//! It is never read (drained): a drain by one process could hide the readiness from another
//! process whose reactor has not looked yet. Each waiting task registers its own duplicate
//! of it with tokio (edge-triggered: every write is one event for every registration) and
//! re-tries on each event. Its count grows by one per write that found a waiter announced;
//! it would take 2^64 of them to fill it.

use std::sync::atomic::AtomicU32;
#[cfg(feature = "tokio")]
use std::sync::Arc;
#[cfg(feature = "tokio")]
use std::{os::fd::OwnedFd, sync::atomic::Ordering};

/// The eventfd of one shared object (empty without feature `tokio`). Clones share it.
///
/// `None` when the system refused an eventfd: async waits then only re-check every
/// [`RECHECK`](self) period. An object opened by name in an unrelated process has an
/// eventfd of its own, which the other processes' wakers do not write: its async waiters
/// see their changes at that re-check, ours at once.
#[derive(Debug, Clone)]
pub(crate) struct AsyncWake {
    #[cfg(feature = "tokio")]
    fd: Option<Arc<OwnedFd>>,
}

impl AsyncWake {
    /// A new eventfd for a new object (or a handle opened by name).
    pub(crate) fn new() -> AsyncWake {
        AsyncWake {
            #[cfg(feature = "tokio")]
            fd: crate::sys::fd::eventfd().ok().map(Arc::new),
        }
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
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::atomic::{fence, AtomicU32, Ordering};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    use super::AsyncWake;
    use crate::error::{Error, Result};

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

    fn no_runtime() -> Error {
        Error::InvalidState("an async form of multiproc was polled outside a tokio runtime".into())
    }

    /// Registers `fd` (a duplicate owned for the wait) with the reactor of the tokio
    /// runtime this task runs under; a clear error outside one, never tokio's panic.
    pub(crate) fn register(fd: OwnedFd, interest: Interest) -> Result<AsyncFd<OwnedFd>> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(no_runtime());
        }
        // SAFETY: the `AsyncFd` owns `fd`, which stays open and the same file until the
        // `AsyncFd` is dropped (an `OwnedFd` is closed only by its drop).
        unsafe { AsyncFd::register_with_interest(fd, interest) }
            .map_err(|e| Error::Io(io::Error::from(e)))
    }

    impl AsyncWake {
        /// Runs `attempt` until it is done, announced in `waiters` and awaiting the eventfd
        /// between attempts: no thread is held while it waits. Dropping the future mid-wait
        /// is safe: every attempt runs whole, and the announcement is withdrawn.
        pub(crate) async fn until<T>(
            &self,
            waiters: &AtomicU32,
            mut attempt: impl FnMut() -> Attempt<T>,
        ) -> Result<T> {
            {
                let mut busy = 0u32;
                let mut announced = None;
                let mut fd = None;
                loop {
                    match attempt() {
                        Attempt::Done(v) => return Ok(v),
                        Attempt::Busy => {
                            busy += 1;
                            if busy >= 64 && tokio::runtime::Handle::try_current().is_err() {
                                return Err(no_runtime());
                            }
                            if busy < 64 {
                                tokio::task::yield_now().await;
                            } else {
                                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                            }
                            continue;
                        }
                        Attempt::Wait => busy = 0,
                    }
                    if announced.is_none() {
                        // Announce, then try once more before the first await (the fence
                        // in `Announced::new` orders the two).
                        announced = Some(Announced::new(waiters));
                        continue;
                    }
                    if fd.is_none() {
                        if tokio::runtime::Handle::try_current().is_err() {
                            return Err(no_runtime());
                        }
                        fd = Some(match &self.fd {
                            Some(own) => Some(register(
                                crate::sys::fd::dup(own.as_fd())?,
                                Interest::READABLE,
                            )?),
                            None => None,
                        });
                    }
                    // Re-check at least every `RECHECK`: a lock holder that dies wakes
                    // nobody (the re-try finds it dead), nor does a waker without our
                    // eventfd (see `AsyncWake`).
                    match fd.as_ref().and_then(Option::as_ref) {
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
}

#[cfg(feature = "tokio")]
pub(crate) use self::wait::{register, Attempt};
