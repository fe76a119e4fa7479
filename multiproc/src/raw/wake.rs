//! The async waiter's side of a shared object (feature `tokio`): the twin of [`park`] for a
//! task that must not hold its thread. The waker's side, and why no wake-up is lost, are in
//! `mem::wake`.
//!
//! A wait first re-tries for a short spin ([`ASYNC_SPIN_BUDGET`], as a sync waiter spins
//! before it sleeps): most hand-offs between two processes arrive within microseconds,
//! and one caught in the spin costs the waker no eventfd write and the waiter no reactor
//! round. Only then does the task announce itself and await the segment's eventfd.
//!
//! [`park`]: super::park
#![forbid(unsafe_code)]

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

use crate::deadline::Deadline;
use crate::error::Result;
use crate::mem::wake::AsyncWake;
use crate::reactor::{in_runtime, no_runtime};

use super::park;

/// What one attempt of an async wait found.
pub(crate) enum Attempt<T> {
    /// Finished (or failed for good): the wait returns this.
    Done(T),
    /// Not possible yet: await the next wake-up.
    Wait,
    /// Possible but momentarily blocked (another process holds a side lock for an instant):
    /// try again soon without awaiting a wake-up, since the holder's release announces
    /// nothing.
    Busy,
}

/// How long an async wait re-tries before it announces itself and awaits: the runtime's
/// thread is held that long at most, once per call (tokio asks tasks to reach an `.await`
/// within 10 to 100 us). Shorter than the sync [`park::SPIN_BUDGET`], which costs no other
/// task anything.
const ASYNC_SPIN_BUDGET: Duration = Duration::from_micros(20);

/// How often an async wait re-tries without a wake-up: the lock liveness period, so a dead
/// holder is found as soon as by a sync waiter, and a waker that writes another eventfd (an
/// object opened by name, see `mem::wake`) is seen that late at worst.
const RECHECK: Duration = super::LIVENESS_PERIOD;

/// `Busy` attempts answered by `yield_now` before the wait sleeps a millisecond between
/// them.
const BUSY_YIELDS: u32 = 64;

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

/// Runs `attempt` until it is done: a short spin, then announced in `waiters` and awaiting
/// `wake`'s eventfd between attempts, so no thread is held while it waits. Dropping the
/// future mid-wait is safe: every attempt runs whole, and the announcement is withdrawn.
///
/// # Errors
/// [`crate::Error::InvalidState`] outside a tokio runtime (once it would have to wait);
/// [`crate::Error::Io`] when no descriptor is left to wait with.
pub(crate) async fn until<T>(
    wake: &AsyncWake,
    waiters: &AtomicU32,
    mut attempt: impl FnMut() -> Attempt<T>,
) -> Result<T> {
    let mut done = None;
    let mut once = |done: &mut Option<T>| match attempt() {
        Attempt::Done(v) => {
            *done = Some(v);
            true
        }
        Attempt::Wait => false,
        Attempt::Busy => false,
    };
    if once(&mut done) || park::spin_within(|| once(&mut done), ASYNC_SPIN_BUDGET, Deadline::NEVER)
    {
        return Ok(done.expect("a finished attempt left its value"));
    }
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
                    tokio::time::sleep(Duration::from_millis(1)).await;
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
            registered = Some(wake.register()?);
        }
        // Re-check at least every `RECHECK`: a lock holder that dies wakes nobody (the
        // re-try finds it dead), nor does a waker without our eventfd.
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
