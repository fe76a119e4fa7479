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
//! | `put(x)` / `put(x, False)`, `put_nowait(x)` / `put(x, timeout=t)` | [`Queue::put`] / [`Queue::try_put`] / [`Queue::put_timeout`] |
//! | `get()` / `get(False)`, `get_nowait()` / `get(timeout=t)` | [`Queue::get`] / [`Queue::try_get`] / [`Queue::get_timeout`] |
//! | `queue.Full` / `queue.Empty` | [`PutError::Full`] (with the value) from `try_put`, [`PutError::Timeout`] from `put_timeout` / [`Error::Empty`] from `try_get`, [`Error::Timeout`] from `get_timeout` |
//! | `qsize()`, `empty()`, `full()` | [`Queue::qsize`], [`Queue::is_empty`], [`Queue::is_full`] |
//! | `close()`: this process puts no more | [`Queue::close`]: this handle puts no more; other handles and processes go on |
//! | `join_thread()`, `cancel_join_thread()` | not needed: there is no feeder thread, nothing is buffered in the process |
//! | 3.13's `shutdown(immediate=False)` | [`Queue::shutdown`]: for every process; puts fail, gets drain then fail ([`Error::Closed`]) |
//! | `SimpleQueue()`, `JoinableQueue()` | [`SimpleQueue::new`], [`JoinableQueue::new`] |
//! | `task_done()`, `join()` | [`JoinableQueue::task_done`], [`JoinableQueue::join`] (and `try_join`, `join_timeout`) |
//!
//! What each form says when it cannot go on (the crate's outcome rule):
//!
//! | call | would block (`try_`) | timed out (`_timeout`, `_deadline`) | shut down |
//! |---|---|---|---|
//! | put | [`PutError::Full`]`(v)` | [`PutError::Timeout`]`(v)` | [`PutError::Closed`]`(v)` (also after this handle's `close`) |
//! | get | [`Error::Empty`] | [`Error::Timeout`] | [`Error::Closed`] once drained (at once if immediate) |
//! | [`JoinableQueue`] join | [`Error::WouldBlock`] | [`Error::Timeout`] | [`Error::Closed`] if an immediate shutdown left tasks unfinished |
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault;
#[cfg(not(loom))]
mod named;
mod ring;

/// The ring's fuzzing entry point (feature `fuzzing`), for `crate::fuzzing`.
#[cfg(all(feature = "fuzzing", not(loom)))]
pub(crate) fn ring_fuzz(bytes: &[u8]) {
    ring::fuzz::repair(bytes);
}
#[cfg(feature = "tokio")]
mod tokio;

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use self::ring::{GetFail, JoinFail, Payload, PutFail, Ring, MAX_MESSAGE};
use crate::codec::{Binary, Codec};
use crate::deadline::Deadline;
use crate::error::{Error, PutError, Result};

/// How long a call may wait, and so how it reports "not now" (the outcome rule).
#[derive(Clone, Copy)]
enum Wait {
    /// A `try_` form: never waits; says "would block" (`Full`, `Empty`, `WouldBlock`).
    Try,
    /// A `_timeout` / `_deadline` form, or a plain one (`Deadline::NEVER`); says `Timeout`.
    Until(Deadline),
}

impl Wait {
    fn deadline(self) -> Deadline {
        match self {
            Wait::Try => Deadline::now(),
            Wait::Until(d) => d,
        }
    }
}

/// The ring's bound for a `maxsize`: 0 for unbounded.
fn ring_bound(maxsize: Option<usize>) -> Result<u64> {
    match maxsize {
        None => Ok(0),
        Some(0) => Err(Error::InvalidArgument(
            "a bounded queue needs room for at least 1 message; Queue::new() is unbounded".into(),
        )),
        Some(n) => Ok(n as u64),
    }
}

/// A first-in first-out queue for any number of producer and consumer processes.
///
/// Messages from one producer arrive in the order they were put; messages of different
/// producers interleave in the order their puts took the ring. A message may hold 0 bytes to
/// 1 GiB once encoded.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use multiproc::{Error, PutError, Queue};
/// use std::time::Duration;
///
/// let q: Queue<String> = Queue::bounded(1)?;
/// q.put("hello".to_string())?;
/// assert!(matches!(q.try_put("world".to_string()), Err(PutError::Full(s)) if s == "world"));
/// assert_eq!(q.get()?, "hello");
/// assert!(matches!(q.try_get(), Err(Error::Empty)));
/// assert!(matches!(q.get_timeout(Duration::from_millis(1)), Err(Error::Timeout)));
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
    /// Set by [`Queue::close`]: this handle puts no more.
    closed: AtomicBool,
    _types: PhantomData<fn(T, C) -> T>,
}

impl<T, C> Clone for Queue<T, C> {
    /// Another handle to the same queue; a clone of a closed handle is closed too.
    fn clone(&self) -> Self {
        Queue {
            ring: Arc::clone(&self.ring),
            closed: AtomicBool::new(self.is_closed()),
            _types: PhantomData,
        }
    }
}

impl<T, C> fmt::Debug for Queue<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.ring.len())
            .field("bound", &self.ring.bound())
            .field("closed", &self.is_closed())
            .field("shutdown", &self.ring.is_shutdown())
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
        let bound = ring_bound(maxsize)?;
        Ok(Queue {
            ring: Arc::new(Ring::create(bound)?),
            closed: AtomicBool::new(false),
            _types: PhantomData,
        })
    }

    /// Puts `value`, waiting as long as the queue is full.
    ///
    /// # Errors
    /// [`PutError::Closed`] after [`close`](Queue::close) on this handle or
    /// [`shutdown`](Queue::shutdown) anywhere; [`PutError::Failed`] with [`Error::Codec`] or
    /// [`Error::MessageTooLong`] when the value cannot be encoded or is longer than 1 GiB
    /// encoded. The value comes back in every case.
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_waiting(value, Wait::Until(Deadline::NEVER))
    }

    /// Puts `value` only if that needs no waiting: the queue has room and no other producer
    /// holds it at this instant (Python's `put_nowait`).
    ///
    /// # Errors
    /// [`PutError::Full`] when it would have to wait; otherwise as [`put`](Queue::put).
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_waiting(value, Wait::Try)
    }

    /// Puts `value`, waiting at most `timeout` for room (`Duration::MAX`: forever).
    ///
    /// # Errors
    /// [`PutError::Timeout`] when there was no room within `timeout`; otherwise as
    /// [`put`](Queue::put).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_waiting(value, Wait::Until(Deadline::after(timeout)))
    }

    /// Puts `value`, waiting until `deadline` at the latest for room.
    ///
    /// # Errors
    /// As [`put_timeout`](Queue::put_timeout).
    pub fn put_deadline(&self, value: T, deadline: Instant) -> Result<(), PutError<T>> {
        self.put_waiting(value, Wait::Until(Deadline::at(deadline)))
    }

    fn put_waiting(&self, value: T, wait: Wait) -> Result<(), PutError<T>> {
        if self.is_closed() {
            return Err(PutError::Closed(value));
        }
        match self.encode_and_put(&value, wait.deadline()) {
            Ok(()) => Ok(()),
            Err(Refused::NotNow) => match wait {
                Wait::Try => Err(PutError::Full(value)),
                Wait::Until(_) => Err(PutError::Timeout(value)),
            },
            Err(Refused::Closed) => Err(PutError::Closed(value)),
            Err(Refused::Failed(e)) => Err(PutError::Failed(value, e)),
        }
    }

    /// Encodes `value` into the ring. A codec that can encode into a slice
    /// ([`Codec::encode_into`]) encodes a small value into the stack and copies it; a large
    /// one, whose length it can tell ([`Codec::encoded_len`]), straight into its record (no
    /// buffer, no copy). Values in between, and every value of other codecs, go through
    /// this thread's buffer, so the producers' lock is held only for a copy.
    fn encode_and_put(&self, value: &T, deadline: Deadline) -> Result<(), Refused> {
        /// From this encoded size on, encoding in place beats a buffer and a copy.
        const IN_PLACE: usize = 16 << 10;
        // Most messages are small: one pass into the stack spares them the size pass.
        let mut small = [0u8; 256];
        if let Some(used) = C::encode_into(value, &mut small).map_err(Refused::Failed)? {
            let outcome = self.ring.put(&small[..used], deadline);
            return outcome.map_err(|fail| Refused::from_ring(fail, used, None));
        }
        match C::encoded_len(value).map_err(Refused::Failed)? {
            Some(len) if len >= IN_PLACE => {
                let mut failed = None;
                let mut fill = |dst: &mut [u8]| match C::encode_into(value, dst) {
                    Ok(used) => used,
                    Err(e) => {
                        failed = Some(e);
                        None
                    }
                };
                let outcome = self
                    .ring
                    .put_payload(&mut Payload::Fill(len, &mut fill), deadline);
                outcome.map_err(|fail| Refused::from_ring(fail, len, failed))
            }
            _ => with_scratch(|buf| {
                C::encode(value, buf).map_err(Refused::Failed)?;
                let outcome = self.ring.put(buf, deadline);
                outcome.map_err(|fail| Refused::from_ring(fail, buf.len(), None))
            }),
        }
    }

    /// Puts `bytes` as one message, as they are, waiting as long as the queue is full. They
    /// are copied once, into the queue. A get of a `T` decodes them with the codec `C`, so
    /// on a queue of values they must be an encoding of a `T`; [`get_bytes`](Queue::get_bytes)
    /// and [`get_with`](Queue::get_with) take any message as its bytes.
    ///
    /// # Errors
    /// [`Error::Closed`] after [`close`](Queue::close) on this handle or
    /// [`shutdown`](Queue::shutdown) anywhere; [`Error::MessageTooLong`] beyond 1 GiB.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        match self.ring.put(bytes, Deadline::NEVER) {
            Ok(()) => Ok(()),
            Err(fail) => Err(match Refused::from_ring(fail, bytes.len(), None) {
                Refused::NotNow => Error::Timeout,
                Refused::Closed => Error::Closed,
                Refused::Failed(e) => e,
            }),
        }
    }

    /// Takes the oldest message, waiting as long as the queue is empty.
    ///
    /// # Errors
    /// [`Error::Closed`] once the queue is shut down and drained; [`Error::Codec`] when the
    /// message does not decode as a `T` (it is consumed).
    pub fn get(&self) -> Result<T> {
        self.get_waiting(Wait::Until(Deadline::NEVER))
    }

    /// Takes the oldest message if that needs no waiting: there is one and no other consumer
    /// holds the queue at this instant (Python's `get_nowait`).
    ///
    /// # Errors
    /// [`Error::Empty`] when it would have to wait; otherwise as [`get`](Queue::get).
    pub fn try_get(&self) -> Result<T> {
        self.get_waiting(Wait::Try)
    }

    /// Takes the oldest message, waiting at most `timeout` for one (`Duration::MAX`:
    /// forever).
    ///
    /// # Errors
    /// [`Error::Timeout`] when none came within `timeout`; otherwise as [`get`](Queue::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_waiting(Wait::Until(Deadline::after(timeout)))
    }

    /// Takes the oldest message, waiting until `deadline` at the latest.
    ///
    /// # Errors
    /// As [`get_timeout`](Queue::get_timeout).
    pub fn get_deadline(&self, deadline: Instant) -> Result<T> {
        self.get_waiting(Wait::Until(Deadline::at(deadline)))
    }

    fn get_waiting(&self, wait: Wait) -> Result<T> {
        self.take(wait, C::decode::<T>)?
    }

    /// Takes the oldest message, waiting as long as the queue is empty, and returns its
    /// bytes as they are (no codec): one copy, out of the queue.
    ///
    /// # Errors
    /// [`Error::Closed`] once the queue is shut down and drained.
    pub fn get_bytes(&self) -> Result<Vec<u8>> {
        self.ring
            .get_split(Deadline::NEVER, |first, second| [first, second].concat())
            .map_err(get_failure(Wait::Until(Deadline::NEVER)))
    }

    /// Takes the oldest message, waiting as long as the queue is empty, and hands its bytes
    /// (no codec) to `read` where they lie in the queue, without copying them unless the
    /// message wraps around the end of the ring. Other consumers wait while `read` runs:
    /// keep it short.
    ///
    /// # Errors
    /// [`Error::Closed`] once the queue is shut down and drained.
    pub fn get_with<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.take(Wait::Until(Deadline::NEVER), read)
    }

    /// Takes the oldest message by `wait`'s deadline and hands its bytes to `read`.
    fn take<R>(&self, wait: Wait, read: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.ring
            .get(wait.deadline(), read)
            .map_err(get_failure(wait))
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

    /// Says that this handle puts no more, like Python's `close()`: later puts through it
    /// fail with [`PutError::Closed`]. Other handles (clones made before, other processes)
    /// put and get as before, and this handle can still get. Every message put before is
    /// already in the queue (there is no feeder thread to flush, so there is no
    /// `join_thread`). Closing twice is harmless. To stop the queue for everyone, use
    /// [`shutdown`](Queue::shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// `true` once [`close`](Queue::close) was called on this handle (or the handle it was
    /// cloned from).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Shuts the queue down for every process, like Python 3.13's `Queue.shutdown`: later
    /// puts fail with [`PutError::Closed`] and waiting puts and gets wake up. Gets take what
    /// is left, then fail with [`Error::Closed`]; with `immediate`, they fail at once, and
    /// the messages left are discarded and counted as done, so a
    /// [`JoinableQueue::join`] waiting for them returns. Shutting down twice is harmless
    /// (`immediate` wins).
    pub fn shutdown(&self, immediate: bool) {
        self.ring.shutdown(immediate);
    }

    /// `true` once any process shut the queue down.
    pub fn is_shutdown(&self) -> bool {
        self.ring.is_shutdown()
    }
}

/// The error of a get that `fail`ed, in the terms of its `wait` (the outcome rule).
fn get_failure(wait: Wait) -> impl Fn(GetFail) -> Error {
    move |fail| match fail {
        GetFail::NotNow => match wait {
            Wait::Try => Error::Empty,
            Wait::Until(_) => Error::Timeout,
        },
        GetFail::Closed => Error::Closed,
        GetFail::Corrupt(why) => Error::protocol(why),
    }
}

/// Why a put did not happen, before it is told in the caller's terms.
enum Refused {
    /// No room by the deadline (or the producers' lock was busy for a try).
    NotNow,
    /// Closed handle or shut-down queue.
    Closed,
    /// The value did not encode or is too long.
    Failed(Error),
}

impl Refused {
    /// The ring's refusal of a `len`-byte message whose fill failed with `failed`, if it did.
    fn from_ring(fail: PutFail, len: usize, failed: Option<Error>) -> Refused {
        match fail {
            PutFail::NotNow => Refused::NotNow,
            PutFail::Closed => Refused::Closed,
            PutFail::TooLong => Refused::Failed(Error::MessageTooLong {
                len: len as u64,
                max: MAX_MESSAGE as u64,
            }),
            PutFail::Corrupt(why) => Refused::Failed(Error::protocol(why)),
            PutFail::Unfilled => Refused::Failed(failed.unwrap_or_else(|| {
                Error::codec("the value's encoding did not fit the size it announced")
            })),
        }
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

    /// This handle puts no more (see [`Queue::close`]); other handles are unaffected.
    pub fn close(&self) {
        self.queue.close();
    }

    /// Shuts the queue down for every process (see [`Queue::shutdown`]).
    pub fn shutdown(&self, immediate: bool) {
        self.queue.shutdown(immediate);
    }
}

/// A [`Queue`] that also counts unfinished tasks: every put adds one, every
/// [`task_done`](JoinableQueue::task_done) removes one, and [`join`](JoinableQueue::join)
/// waits for zero. Every [`Queue`] method is here too, with the same meaning.
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

    /// See [`Queue::put`]; each put adds one unfinished task.
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.queue.put(value)
    }

    /// See [`Queue::try_put`].
    ///
    /// # Errors
    /// As [`Queue::try_put`].
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        self.queue.try_put(value)
    }

    /// See [`Queue::put_timeout`].
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.queue.put_timeout(value, timeout)
    }

    /// See [`Queue::put_deadline`].
    ///
    /// # Errors
    /// As [`Queue::put_deadline`].
    pub fn put_deadline(&self, value: T, deadline: Instant) -> Result<(), PutError<T>> {
        self.queue.put_deadline(value, deadline)
    }

    /// See [`Queue::get`].
    ///
    /// # Errors
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T> {
        self.queue.get()
    }

    /// See [`Queue::try_get`].
    ///
    /// # Errors
    /// As [`Queue::try_get`].
    pub fn try_get(&self) -> Result<T> {
        self.queue.try_get()
    }

    /// See [`Queue::get_timeout`].
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.queue.get_timeout(timeout)
    }

    /// See [`Queue::get_deadline`].
    ///
    /// # Errors
    /// As [`Queue::get_deadline`].
    pub fn get_deadline(&self, deadline: Instant) -> Result<T> {
        self.queue.get_deadline(deadline)
    }
}

impl<T, C> JoinableQueue<T, C> {
    /// See [`Queue::qsize`].
    pub fn qsize(&self) -> usize {
        self.queue.qsize()
    }

    /// See [`Queue::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// See [`Queue::is_full`].
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }

    /// See [`Queue::maxsize`].
    pub fn maxsize(&self) -> Option<usize> {
        self.queue.maxsize()
    }

    /// This handle puts no more (see [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close();
    }

    /// See [`Queue::is_closed`].
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Shuts the queue down for every process (see [`Queue::shutdown`]); `immediate` also
    /// releases [`join`](JoinableQueue::join).
    pub fn shutdown(&self, immediate: bool) {
        self.queue.shutdown(immediate);
    }

    /// See [`Queue::is_shutdown`].
    pub fn is_shutdown(&self) -> bool {
        self.queue.is_shutdown()
    }

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
    /// [`Error::Closed`] when an immediate [`shutdown`](JoinableQueue::shutdown) released
    /// the wait while tasks taken before it were still unfinished.
    pub fn join(&self) -> Result<()> {
        self.join_with(Wait::Until(Deadline::NEVER))
    }

    /// Returns at once: `Ok` when every task is done.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] while tasks are unfinished; otherwise as
    /// [`join`](JoinableQueue::join).
    pub fn try_join(&self) -> Result<()> {
        self.join_with(Wait::Try)
    }

    /// Waits at most `timeout` for every task to be done (`Duration::MAX`: forever).
    ///
    /// # Errors
    /// [`Error::Timeout`] when tasks are still unfinished after `timeout`; otherwise as
    /// [`join`](JoinableQueue::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.join_with(Wait::Until(Deadline::after(timeout)))
    }

    /// Waits until `deadline` at the latest for every task to be done.
    ///
    /// # Errors
    /// As [`join_timeout`](JoinableQueue::join_timeout).
    pub fn join_deadline(&self, deadline: Instant) -> Result<()> {
        self.join_with(Wait::Until(Deadline::at(deadline)))
    }

    fn join_with(&self, wait: Wait) -> Result<()> {
        match self.queue.ring.join(wait.deadline()) {
            Ok(()) => Ok(()),
            Err(JoinFail::NotNow) => match wait {
                Wait::Try => Err(Error::WouldBlock),
                Wait::Until(_) => Err(Error::Timeout),
            },
            Err(JoinFail::Closed) => Err(Error::Closed),
        }
    }
}

/// Sent through a [`Connection`](crate::Connection) (or as a process argument), a queue
/// arrives as another handle on the same queue (closed if this handle is, as a clone is).
#[cfg(not(loom))]
impl<T, C> Serialize for Queue<T, C> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Serialize::serialize(&(&*self.ring, self.is_closed()), serializer)
    }
}

#[cfg(not(loom))]
impl<'de, T, C> serde::Deserialize<'de> for Queue<T, C> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (ring, closed): (Ring, bool) = serde::Deserialize::deserialize(deserializer)?;
        Ok(Queue {
            ring: Arc::new(ring),
            closed: AtomicBool::new(closed),
            _types: PhantomData,
        })
    }
}

/// Under `--cfg loom` a queue's ring is loom's model memory, which cannot leave the
/// process: the loom build (which runs only the models) refuses to send one.
#[cfg(loom)]
impl<T, C> Serialize for Queue<T, C> {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "a queue cannot travel in a loom model",
        ))
    }
}

#[cfg(loom)]
impl<'de, T, C> serde::Deserialize<'de> for Queue<T, C> {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "a queue cannot travel in a loom model",
        ))
    }
}

/// Sent through a [`Connection`](crate::Connection) (or as a process argument), it arrives as
/// another handle on the same queue.
#[cfg(not(loom))]
impl<T, C> Serialize for SimpleQueue<T, C> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(serializer)
    }
}

#[cfg(not(loom))]
impl<'de, T, C> serde::Deserialize<'de> for SimpleQueue<T, C> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(SimpleQueue {
            queue: serde::Deserialize::deserialize(deserializer)?,
        })
    }
}

/// Sent through a [`Connection`](crate::Connection) (or as a process argument), it arrives as
/// another handle on the same queue, unfinished-task count included.
#[cfg(not(loom))]
impl<T, C> Serialize for JoinableQueue<T, C> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(serializer)
    }
}

#[cfg(not(loom))]
impl<'de, T, C> serde::Deserialize<'de> for JoinableQueue<T, C> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(JoinableQueue {
            queue: serde::Deserialize::deserialize(deserializer)?,
        })
    }
}
