//! Queues between processes: [`Queue`], [`SimpleQueue`] and [`JoinableQueue`].
//!
//! All three are handles to one ring in shared memory (see `ring.rs` for the protocol):
//! cloning a handle, or capturing it in a child's closure, shares the same queue. Values are
//! encoded with a [`Codec`] inside `put`, in the caller's thread: there is no feeder thread,
//! an encoding error comes back to the caller with the value, and once `put` returns the
//! message is in the queue (Python's weakness W4 does not exist here).
//!
//! | Python | here |
//! |---|---|
//! | `Queue(maxsize=0)` / `Queue(n)` | [`Queue::new`] / [`Queue::bounded`] |
//! | `put(x)` / `put(x, False)` / `put(x, timeout=t)` | [`Queue::put`] / [`Queue::try_put`] / [`Queue::put_timeout`] |
//! | `get()` / `get_nowait()` / `get(timeout=t)` | [`Queue::get`] / [`Queue::try_get`] / [`Queue::get_timeout`] |
//! | `queue.Full` / `queue.Empty` | [`PutError::Full`] (with the value) / [`Error::Empty`] |
//! | `qsize()`, `empty()`, `full()` | [`Queue::qsize`], [`Queue::is_empty`], [`Queue::is_full`] |
//! | `close()`; 3.13's `shutdown()` | [`Queue::close`]: for every process, like `shutdown()` |
//! | `join_thread()`, `cancel_join_thread()` | not needed: nothing is buffered in the process |
//! | `SimpleQueue()`, `JoinableQueue()` | [`SimpleQueue::new`], [`JoinableQueue::new`] |
mod ring;

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use self::ring::{GetFail, PutFail, Ring, Wait, MAX_MESSAGE};
use crate::codec::{Binary, Codec};
use crate::error::{Error, PutError, Result};

/// A first-in first-out queue for any number of producer and consumer processes.
///
/// Messages from one producer arrive in the order they were put; messages of different
/// producers interleave in the order their puts took the ring. A message may hold 0 bytes to
/// 1 GiB once encoded.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use multiproc::{PutError, Queue};
///
/// let q: Queue<String> = Queue::bounded(1)?;
/// q.put("hello".to_string())?;
/// assert!(matches!(q.try_put("world".to_string()), Err(PutError::Full(s)) if s == "world"));
/// assert_eq!(q.get()?, "hello");
/// assert!(q.try_get().unwrap_err().to_string().contains("empty"));
/// # Ok(())
/// # }
/// ```
///
/// # Crash safety
///
/// A producer or consumer killed at any instant (even `SIGKILL` mid-copy) neither corrupts
/// the queue nor blocks the other processes. Every message whose `put` returned is delivered
/// exactly once, with one exception: a consumer killed inside `get`, after it removed the
/// message from the ring and before `get` returned it, loses that one message.
pub struct Queue<T, C = Binary> {
    ring: Arc<Ring>,
    _types: PhantomData<fn(T, C) -> T>,
}

impl<T, C> Clone for Queue<T, C> {
    fn clone(&self) -> Self {
        Queue {
            ring: Arc::clone(&self.ring),
            _types: PhantomData,
        }
    }
}

impl<T, C> fmt::Debug for Queue<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.ring.len())
            .field("bound", &self.ring.bound())
            .field("closed", &self.ring.is_closed())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue (Python's `maxsize=0`): puts never wait for room until the queue
    /// holds 8 GiB of encoded messages.
    ///
    /// # Errors
    /// [`Error::Io`] when the shared memory cannot be created.
    pub fn new() -> Result<Queue<T>> {
        Queue::with_codec(None)
    }

    /// A queue that holds at most `maxsize` messages.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `maxsize` is 0 (use [`Queue::new`] for an unbounded
    /// queue); [`Error::Io`] when the shared memory cannot be created.
    pub fn bounded(maxsize: usize) -> Result<Queue<T>> {
        Queue::with_codec(Some(maxsize))
    }
}

impl<T: Serialize + DeserializeOwned, C: Codec> Queue<T, C> {
    /// A queue whose messages are encoded with codec `C`, holding at most `maxsize` messages
    /// (`None`: unbounded).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use multiproc::{codec::Json, Queue};
    ///
    /// let q = Queue::<serde_json::Value, Json>::with_codec(None)?;
    /// q.put(serde_json::json!({"message": "hi"}))?;
    /// assert_eq!(q.get()?["message"], "hi");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Queue::bounded`].
    pub fn with_codec(maxsize: Option<usize>) -> Result<Queue<T, C>> {
        let bound =
            match maxsize {
                None => 0,
                Some(0) => return Err(Error::InvalidArgument(
                    "a bounded queue needs room for at least 1 message; Queue::new() is unbounded"
                        .into(),
                )),
                Some(n) => n as u64,
            };
        Ok(Queue {
            ring: Arc::new(Ring::create(bound)?),
            _types: PhantomData,
        })
    }

    /// Puts `value`, waiting as long as the queue is full.
    ///
    /// # Errors
    /// [`PutError::Closed`] after [`close`](Queue::close); [`PutError::Failed`] with
    /// [`Error::Codec`] or [`Error::MessageTooLong`] when the value cannot be encoded or is
    /// longer than 1 GiB encoded. The value comes back in every case.
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Wait::Forever)
    }

    /// Puts `value` only if there is room now.
    ///
    /// # Errors
    /// [`PutError::Full`] when the queue is full; otherwise as [`put`](Queue::put).
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Wait::No)
    }

    /// Puts `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`PutError::Full`] when there was no room within `timeout`; otherwise as
    /// [`put`](Queue::put).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_with(value, Wait::for_duration(timeout))
    }

    fn put_with(&self, value: T, wait: Wait) -> Result<(), PutError<T>> {
        let outcome = with_scratch(|buf| {
            C::encode(&value, buf)?;
            Ok(self.ring.put(buf, wait).map_err(|fail| (fail, buf.len())))
        });
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err((PutFail::Full, _))) => Err(PutError::Full(value)),
            Ok(Err((PutFail::Closed, _))) => Err(PutError::Closed(value)),
            Ok(Err((PutFail::TooLong, len))) => Err(PutError::Failed(
                value,
                Error::MessageTooLong {
                    len: len as u64,
                    max: MAX_MESSAGE as u64,
                },
            )),
            Err(e) => Err(PutError::Failed(value, e)),
        }
    }

    /// Takes the oldest message, waiting as long as the queue is empty.
    ///
    /// # Errors
    /// [`Error::Closed`] once the queue is closed and drained; [`Error::Codec`] when the
    /// message does not decode as a `T` (it is consumed).
    pub fn get(&self) -> Result<T> {
        self.get_with(Wait::Forever)
    }

    /// Takes the oldest message if there is one now.
    ///
    /// # Errors
    /// [`Error::Empty`] when there is none; otherwise as [`get`](Queue::get).
    pub fn try_get(&self) -> Result<T> {
        self.get_with(Wait::No)
    }

    /// Takes the oldest message, waiting at most `timeout` for one.
    ///
    /// # Errors
    /// [`Error::Empty`] when none came within `timeout`; otherwise as [`get`](Queue::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_with(Wait::for_duration(timeout))
    }

    fn get_with(&self, wait: Wait) -> Result<T> {
        match self.ring.get(wait, C::decode::<T>) {
            Ok(decoded) => decoded,
            Err(GetFail::Empty) => Err(Error::Empty),
            Err(GetFail::Closed) => Err(Error::Closed),
            Err(GetFail::Corrupt(why)) => Err(Error::protocol(why)),
        }
    }
}

impl<T, C> Queue<T, C> {
    /// The number of messages in the queue now.
    pub fn qsize(&self) -> usize {
        self.ring.len() as usize
    }

    /// `true` when the queue holds no message now.
    pub fn is_empty(&self) -> bool {
        self.ring.len() == 0
    }

    /// `true` when a bounded queue holds its maximum now (never for an unbounded one).
    pub fn is_full(&self) -> bool {
        let bound = self.ring.bound();
        bound != 0 && self.ring.len() >= bound
    }

    /// The bound given at creation; `None` for an unbounded queue.
    pub fn maxsize(&self) -> Option<usize> {
        match self.ring.bound() {
            0 => None,
            n => Some(n as usize),
        }
    }

    /// Closes the queue for every process: later puts fail with [`PutError::Closed`], gets
    /// return what is left and then [`Error::Closed`]; waiting puts and gets wake up.
    /// Closing twice is harmless.
    pub fn close(&self) {
        self.ring.close();
    }

    /// `true` once any process closed the queue.
    pub fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }
}

/// Runs `f` with this thread's scratch buffer, emptied; a fresh one if `f` re-enters.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    /// Buffers larger than this are freed after use rather than kept per thread.
    const KEEP: usize = 4 << 20;
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let out = f(&mut buf);
            if buf.capacity() > KEEP {
                *buf = Vec::new();
            }
            out
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// An unbounded queue with only `put`, `get`, `is_empty` and `close`, like Python's
/// `SimpleQueue`.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let q = multiproc::SimpleQueue::new()?;
/// q.put(7u8)?;
/// assert_eq!(q.get()?, 7);
/// assert!(q.is_empty());
/// # Ok(())
/// # }
/// ```
pub struct SimpleQueue<T, C = Binary> {
    queue: Queue<T, C>,
}

impl<T, C> Clone for SimpleQueue<T, C> {
    fn clone(&self) -> Self {
        SimpleQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T, C> fmt::Debug for SimpleQueue<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimpleQueue").field(&self.queue).finish()
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new, empty queue.
    ///
    /// # Errors
    /// [`Error::Io`] when the shared memory cannot be created.
    pub fn new() -> Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            queue: Queue::new()?,
        })
    }
}

impl<T: Serialize + DeserializeOwned, C: Codec> SimpleQueue<T, C> {
    /// A new, empty queue whose messages are encoded with codec `C` (see
    /// [`Queue::with_codec`]).
    ///
    /// # Errors
    /// As [`SimpleQueue::new`].
    pub fn with_codec() -> Result<SimpleQueue<T, C>> {
        Ok(SimpleQueue {
            queue: Queue::with_codec(None)?,
        })
    }

    /// Puts `value`; the message is in the queue when this returns.
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.queue.put(value)
    }

    /// Takes the oldest message, waiting as long as the queue is empty.
    ///
    /// # Errors
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T> {
        self.queue.get()
    }
}

impl<T, C> SimpleQueue<T, C> {
    /// `true` when the queue holds no message now.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Closes the queue for every process (see [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close();
    }
}

/// A [`Queue`] that also counts unfinished tasks: every put adds one, every
/// [`task_done`](JoinableQueue::task_done) removes one, and [`join`](JoinableQueue::join)
/// waits for zero.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let q = multiproc::JoinableQueue::new()?;
/// q.put("job".to_string())?;
/// assert_eq!(q.get()?, "job");
/// q.task_done()?;
/// q.join()?;
/// assert!(q.task_done().is_err(), "more task_done calls than puts");
/// # Ok(())
/// # }
/// ```
pub struct JoinableQueue<T, C = Binary> {
    queue: Queue<T, C>,
}

impl<T, C> Clone for JoinableQueue<T, C> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T, C> fmt::Debug for JoinableQueue<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field("unfinished", &self.queue.ring.unfinished())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new() -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::new()?,
        })
    }

    /// A joinable queue that holds at most `maxsize` messages.
    ///
    /// # Errors
    /// As [`Queue::bounded`].
    pub fn bounded(maxsize: usize) -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::bounded(maxsize)?,
        })
    }
}

impl<T: Serialize + DeserializeOwned, C: Codec> JoinableQueue<T, C> {
    /// A joinable queue whose messages are encoded with codec `C` (see
    /// [`Queue::with_codec`]).
    ///
    /// # Errors
    /// As [`Queue::bounded`].
    pub fn with_codec(maxsize: Option<usize>) -> Result<JoinableQueue<T, C>> {
        Ok(JoinableQueue {
            queue: Queue::with_codec(maxsize)?,
        })
    }
}

impl<T, C> JoinableQueue<T, C> {
    /// Marks one task as done.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when there are more `task_done` calls than puts.
    pub fn task_done(&self) -> Result<()> {
        if self.queue.ring.task_done() {
            Ok(())
        } else {
            Err(Error::InvalidState(
                "task_done() called too many times".into(),
            ))
        }
    }

    /// Waits until every message put so far has been marked done.
    ///
    /// # Errors
    /// None today; the `Result` keeps the door open for a broken queue.
    pub fn join(&self) -> Result<()> {
        self.queue.ring.join(Wait::Forever);
        Ok(())
    }

    /// Waits at most `timeout` for every task to be done.
    ///
    /// # Errors
    /// [`Error::Timeout`] when tasks are still unfinished after `timeout`.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        if self.queue.ring.join(Wait::for_duration(timeout)) {
            Ok(())
        } else {
            Err(Error::Timeout)
        }
    }
}

impl<T, C> std::ops::Deref for JoinableQueue<T, C> {
    type Target = Queue<T, C>;

    fn deref(&self) -> &Queue<T, C> {
        &self.queue
    }
}
