//! [`IMap`]: the lazy iterator of `imap` and `imap_unordered`.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::{decode_values, lock, Sink};
use crate::deadline::Deadline;
use crate::error::{Error, Result};

/// Pulls the next chunk of input and encodes it; `None` at the end of the input.
type NextChunk<'p> = Box<dyn FnMut() -> Option<Result<Vec<u8>>> + Send + 'p>;

/// Sends one encoded chunk to the pool's workers (the local pool's or the Redis pool's);
/// the sink gets its outcome.
pub(crate) type SubmitChunk<'p> = Box<dyn FnMut(Vec<u8>, Sink) -> Result<()> + Send + 'p>;

/// The values of a pool's (local or Redis) `imap` or `imap_unordered`, computed lazily: input is read and
/// sent only while fewer than 32 chunks per worker are in flight.
///
/// Each item is a `Result`: a failing task is an `Err` item and the iteration goes on.
pub struct IMap<'p, V> {
    submit: SubmitChunk<'p>,
    next_chunk: NextChunk<'p>,
    ordered: bool,
    window: usize,
    input_done: bool,
    sent: u64,
    /// The index of the next chunk to hand out (ordered).
    next_index: u64,
    in_flight: usize,
    arrived: Arc<Arrived<V>>,
    current: std::vec::IntoIter<V>,
}

/// A chunk's index and its decoded values.
type Chunk<V> = (u64, Result<Vec<V>>);

/// Chunks that came back and were not handed out yet, by chunk index.
struct Arrived<V> {
    chunks: Mutex<VecDeque<Chunk<V>>>,
    signal: Condvar,
    /// The task awaiting the next chunk as a `Stream` (feature `tokio`); registered while
    /// `chunks` is locked, so a chunk pushed after the look is not missed.
    #[cfg(feature = "tokio")]
    waker: Mutex<Option<std::task::Waker>>,
}

/// What waiting for a chunk ended with.
enum Waited<'a, V> {
    /// Look again (a chunk may have arrived).
    Again(MutexGuard<'a, VecDeque<Chunk<V>>>),
    /// The caller's deadline passed.
    TimedOut,
    /// A stream's turn ended; the waker is registered.
    #[cfg(feature = "tokio")]
    Pending,
}

impl<V> fmt::Debug for IMap<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("ordered", &self.ordered)
            .field("in_flight", &self.in_flight)
            .field("input_done", &self.input_done)
            .finish()
    }
}

impl<'p, V: DeserializeOwned + Send + 'static> IMap<'p, V> {
    pub(crate) fn new(
        submit: SubmitChunk<'p>,
        next_chunk: NextChunk<'p>,
        ordered: bool,
        window: usize,
    ) -> IMap<'p, V> {
        IMap {
            submit,
            next_chunk,
            ordered,
            window: window.max(1),
            input_done: false,
            sent: 0,
            next_index: 0,
            in_flight: 0,
            arrived: Arc::new(Arrived {
                chunks: Mutex::new(VecDeque::new()),
                signal: Condvar::new(),
                #[cfg(feature = "tokio")]
                waker: Mutex::new(None),
            }),
            current: Vec::new().into_iter(),
        }
    }

    /// The next value, waiting at most `timeout` for it: `None` at the end,
    /// `Some(Err(Error::Timeout))` when none came in time (the iterator stays usable).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<V>> {
        self.next_until(Deadline::after(timeout).instant())
    }

    /// The next value, waiting until the instant `deadline` for it; as
    /// [`next_timeout`](Self::next_timeout).
    pub fn next_deadline(&mut self, deadline: Instant) -> Option<Result<V>> {
        self.next_until(Some(deadline))
    }

    /// Sends chunks until the window is full or the input ends.
    fn top_up(&mut self) -> Result<()> {
        while !self.input_done && self.in_flight < self.window {
            let Some(args) = (self.next_chunk)() else {
                self.input_done = true;
                break;
            };
            let args = args?;
            let index = self.sent;
            let arrived = self.arrived.clone();
            let sink: Sink = Box::new(move |bytes| {
                let values = decode_values::<V>(bytes);
                lock(&arrived.chunks).push_back((index, values));
                arrived.signal.notify_all();
                #[cfg(feature = "tokio")]
                if let Some(waker) = lock(&arrived.waker).take() {
                    waker.wake();
                }
            });
            (self.submit)(args, sink)?;
            self.sent += 1;
            self.in_flight += 1;
        }
        Ok(())
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Option<Result<V>> {
        let next = self.next_with(|arrived, chunks| match deadline {
            None => Waited::Again(
                arrived
                    .signal
                    .wait(chunks)
                    .unwrap_or_else(|p| p.into_inner()),
            ),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Waited::TimedOut;
                }
                Waited::Again(
                    arrived
                        .signal
                        .wait_timeout(chunks, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0,
                )
            }
        });
        match next {
            std::task::Poll::Ready(next) => next,
            std::task::Poll::Pending => unreachable!("a thread's wait never says Pending"),
        }
    }

    /// The next value, with `wait` called whenever the chunk due is not there yet (a
    /// thread's condition-variable wait, or a stream's waker registration).
    fn next_with(
        &mut self,
        mut wait: impl for<'a> FnMut(
            &'a Arrived<V>,
            MutexGuard<'a, VecDeque<Chunk<V>>>,
        ) -> Waited<'a, V>,
    ) -> std::task::Poll<Option<Result<V>>> {
        use std::task::Poll;
        loop {
            if let Some(v) = self.current.next() {
                return Poll::Ready(Some(Ok(v)));
            }
            if let Err(e) = self.top_up() {
                // The input cannot be sent (an unencodable item, a closed pool): report it
                // once and end.
                self.input_done = true;
                return Poll::Ready(Some(Err(e)));
            }
            if self.in_flight == 0 {
                return Poll::Ready(None);
            }
            let arrived = self.arrived.clone();
            let mut chunks = lock(&arrived.chunks);
            let found = loop {
                let pos = if self.ordered {
                    chunks.iter().position(|(i, _)| *i == self.next_index)
                } else if chunks.is_empty() {
                    None
                } else {
                    Some(0)
                };
                if let Some(pos) = pos {
                    break chunks.remove(pos);
                }
                chunks = match wait(&arrived, chunks) {
                    Waited::Again(chunks) => chunks,
                    Waited::TimedOut => return Poll::Ready(Some(Err(Error::Timeout))),
                    #[cfg(feature = "tokio")]
                    Waited::Pending => return Poll::Pending,
                };
            };
            drop(chunks);
            let Some((_, values)) = found else {
                return Poll::Ready(None);
            };
            self.in_flight -= 1;
            self.next_index += 1;
            match values {
                Ok(values) => self.current = values.into_iter(),
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

impl<V: DeserializeOwned + Send + 'static> Iterator for IMap<'_, V> {
    type Item = Result<V>;

    fn next(&mut self) -> Option<Result<V>> {
        self.next_until(None)
    }
}

/// The values as a `Stream` (feature `tokio`): a task awaits each without holding a thread;
/// the pool's result thread wakes it when a chunk comes back. Items, order and the lazy
/// sending of input are those of the iterator. [`IMap::next_async`] awaits one value
/// without a stream library.
// Nothing in an `IMap` points into itself (its values are owned, its state is behind
// `Arc`s and boxes), so it may move while pinned, whatever `V` is.
#[cfg(feature = "tokio")]
impl<V> Unpin for IMap<'_, V> {}

#[cfg(feature = "tokio")]
impl<V: DeserializeOwned + Send + 'static> futures_core::Stream for IMap<'_, V> {
    type Item = Result<V>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<V>>> {
        self.get_mut().next_with(|arrived, chunks| {
            *lock(&arrived.waker) = Some(cx.waker().clone());
            drop(chunks);
            Waited::Pending
        })
    }
}

#[cfg(feature = "tokio")]
impl<V: DeserializeOwned + Send + 'static> IMap<'_, V> {
    /// The next value, awaited without holding a thread (`None` at the end): the async
    /// [`Iterator::next`], as the `Stream` gives it. Dropped before it returns, it has
    /// taken nothing.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # fn main() -> multiproc::Result<()> {
    /// let pool = multiproc::Pool::new(2)?;
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let mut squares = pool.imap(square, 0..5u64)?;
    /// let got = rt.block_on(async {
    ///     let mut got = Vec::new();
    ///     while let Some(v) = squares.next_async().await {
    ///         got.push(v?);
    ///     }
    ///     Ok::<_, multiproc::Error>(got)
    /// })?;
    /// assert_eq!(got, [0, 1, 4, 9, 16]);
    /// # Ok(()) }
    /// ```
    pub async fn next_async(&mut self) -> Option<Result<V>> {
        std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut *self), cx)
        })
        .await
    }
}
