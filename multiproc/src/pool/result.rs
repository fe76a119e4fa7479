//! [`AsyncResult`]: a result that a pool fills in later.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::{Error, Result};

/// The result of [`Pool::apply_async`](super::Pool::apply_async) and the other `_async`
/// calls, which the pool fills in when the task ends: Python's `AsyncResult`.
///
/// The value is handed out once (the first successful `get` moves it out); an error is
/// handed out by every `get`.
pub struct AsyncResult<T> {
    slot: Arc<Slot<T>>,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

/// Where the pool's result thread puts the outcome and the caller waits for it.
pub(crate) struct Slot<T> {
    state: Mutex<Inner<T>>,
    done: Condvar,
}

/// The outcome, and how many threads wait for it: a `Condvar` notification is a system
/// call even with no waiter, and most results are filled before anyone waits.
struct Inner<T> {
    state: State<T>,
    waiters: usize,
    /// The tasks awaiting the result as a `Future` (feature `tokio`).
    #[cfg(feature = "tokio")]
    wakers: Vec<std::task::Waker>,
}

enum State<T> {
    Pending,
    Value(T),
    Failed(Error),
    Taken,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Arc<Slot<T>> {
        Arc::new(Slot {
            state: Mutex::new(Inner {
                state: State::Pending,
                waiters: 0,
                #[cfg(feature = "tokio")]
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fills the slot (once; a later outcome is ignored) and wakes every waiter.
    pub(crate) fn set(&self, outcome: Result<T>) {
        let mut inner = self.lock();
        if matches!(inner.state, State::Pending) {
            inner.state = match outcome {
                Ok(v) => State::Value(v),
                Err(e) => State::Failed(e),
            };
            if inner.waiters > 0 {
                self.done.notify_all();
            }
            #[cfg(feature = "tokio")]
            {
                let wakers = std::mem::take(&mut inner.wakers);
                drop(inner);
                wakers.into_iter().for_each(std::task::Waker::wake);
            }
        }
    }

    /// Waits until the slot is filled or `deadline` passes; `false` on time out.
    fn wait_until(&self, deadline: Option<Instant>) -> (MutexGuard<'_, Inner<T>>, bool) {
        let mut inner = self.lock();
        let mut done = true;
        inner.waiters += 1;
        while matches!(inner.state, State::Pending) {
            match deadline {
                None => inner = self.done.wait(inner).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        done = false;
                        break;
                    }
                    inner = self
                        .done
                        .wait_timeout(inner, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        inner.waiters -= 1;
        (inner, done)
    }
}

impl<T> AsyncResult<T> {
    pub(crate) fn new(slot: Arc<Slot<T>>) -> AsyncResult<T> {
        AsyncResult { slot }
    }

    /// Waits for the task and returns its value.
    ///
    /// # Errors
    /// The task's error: [`Error::Panicked`] (the task panicked), [`Error::TaskFailed`] (it
    /// returned `Err`), [`Error::WorkerDied`] (its worker died while running it, with the
    /// signal or exit code), [`Error::Codec`] (its arguments or result could not travel),
    /// [`Error::Closed`] (the pool was terminated first). The same error comes back from
    /// every call; after the value was taken by an earlier `get`, [`Error::InvalidState`].
    pub fn get(&self) -> Result<T> {
        self.get_until(None)
    }

    /// Waits at most `timeout` for the task and returns its value.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the task has not ended in time (the result stays usable);
    /// otherwise as [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(Deadline::after(timeout).instant())
    }

    /// Waits until the instant `deadline` for the task and returns its value (one limit
    /// across several calls).
    ///
    /// # Errors
    /// As [`get_timeout`](Self::get_timeout).
    pub fn get_deadline(&self, deadline: Instant) -> Result<T> {
        self.get_until(Some(deadline))
    }

    /// Returns the task's value if it has ended, without waiting.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] while the task runs; otherwise as [`get`](Self::get).
    pub fn try_get(&self) -> Result<T> {
        match self.ready() {
            true => self.get(),
            false => Err(Error::WouldBlock),
        }
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<T> {
        let (mut inner, done) = self.slot.wait_until(deadline);
        if !done {
            return Err(Error::Timeout);
        }
        take(&mut inner)
    }

    /// Waits until the task has ended (its callbacks have run by then).
    pub fn wait(&self) {
        let _ = self.slot.wait_until(None);
    }

    /// Waits at most `timeout` for the task to end.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it has not ended in time.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        match self.slot.wait_until(Deadline::after(timeout).instant()).1 {
            true => Ok(()),
            false => Err(Error::Timeout),
        }
    }

    /// Waits until the instant `deadline` for the task to end.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it has not ended by then.
    pub fn wait_deadline(&self, deadline: Instant) -> Result<()> {
        match self.slot.wait_until(Some(deadline)).1 {
            true => Ok(()),
            false => Err(Error::Timeout),
        }
    }

    /// Whether the task has ended.
    pub fn ready(&self) -> bool {
        !matches!(self.slot.lock().state, State::Pending)
    }

    /// Whether the task ended with a value.
    ///
    /// # Errors
    /// [`Error::InvalidState`] while the task has not ended, as Python's `ValueError`.
    pub fn successful(&self) -> Result<bool> {
        match self.slot.lock().state {
            State::Pending => Err(Error::InvalidState("the result is not ready".into())),
            State::Value(_) | State::Taken => Ok(true),
            State::Failed(_) => Ok(false),
        }
    }
}

/// Hands out the outcome of an ended task: the value once, the error every time.
fn take<T>(inner: &mut Inner<T>) -> Result<T> {
    match std::mem::replace(&mut inner.state, State::Taken) {
        State::Value(v) => Ok(v),
        State::Failed(e) => {
            let again = copy_error(&e);
            inner.state = State::Failed(e);
            Err(again)
        }
        State::Taken => Err(Error::InvalidState(
            "the value was already taken by an earlier get".into(),
        )),
        State::Pending => unreachable!("the task has ended"),
    }
}

/// Awaiting an `AsyncResult` (feature `tokio`) waits for the task without holding a thread
/// and hands out what [`AsyncResult::get`] would: the pool's result thread wakes the
/// awaiting task when it fills the result. The result is consumed; dropping the future
/// first leaves the task running, and its outcome unread.
///
/// ```
/// # fn double(x: u32) -> u32 { x * 2 }
/// # fn main() -> multiproc::Result<()> {
/// let pool = multiproc::Pool::new(2)?;
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// let doubled = rt.block_on(async { pool.apply_async(double, 21)?.await })?;
/// assert_eq!(doubled, 42);
/// # Ok(()) }
/// ```
#[cfg(feature = "tokio")]
impl<T> std::future::Future for AsyncResult<T> {
    type Output = Result<T>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<T>> {
        let mut inner = self.slot.lock();
        if matches!(inner.state, State::Pending) {
            if !inner.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                inner.wakers.push(cx.waker().clone());
            }
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(take(&mut inner))
    }
}

/// A copy of a task error, so every `get` can report it (`Error` itself is not `Clone`:
/// it may hold an `io::Error` or a boxed source, which are kept as their text here).
pub(crate) fn copy_error(e: &Error) -> Error {
    match e {
        Error::Panicked { message, location } => Error::Panicked {
            message: message.clone(),
            location: location.clone(),
        },
        Error::TaskFailed(m) => Error::TaskFailed(m.clone()),
        Error::WorkerDied(m) => Error::WorkerDied(m.clone()),
        Error::InvalidState(m) => Error::InvalidState(m.clone()),
        Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        Error::Closed => Error::Closed,
        Error::Timeout => Error::Timeout,
        Error::Codec(source) => Error::codec(source.to_string()),
        Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => Error::protocol(other.to_string()),
    }
}
