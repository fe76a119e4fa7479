//! [`IMap`]: the lazy iterator of `imap` and `imap_unordered`.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
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

/// Chunks that came back and were not handed out yet, by chunk index.
struct Arrived<V> {
    chunks: Mutex<VecDeque<(u64, Result<Vec<V>>)>>,
    signal: Condvar,
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
            });
            (self.submit)(args, sink)?;
            self.sent += 1;
            self.in_flight += 1;
        }
        Ok(())
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Option<Result<V>> {
        loop {
            if let Some(v) = self.current.next() {
                return Some(Ok(v));
            }
            if let Err(e) = self.top_up() {
                // The input cannot be sent (an unencodable item, a closed pool): report it
                // once and end.
                self.input_done = true;
                return Some(Err(e));
            }
            if self.in_flight == 0 {
                return None;
            }
            let mut chunks = lock(&self.arrived.chunks);
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
                match deadline {
                    None => {
                        chunks = self
                            .arrived
                            .signal
                            .wait(chunks)
                            .unwrap_or_else(|p| p.into_inner())
                    }
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            return Some(Err(Error::Timeout));
                        }
                        chunks = self
                            .arrived
                            .signal
                            .wait_timeout(chunks, d - now)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                }
            };
            drop(chunks);
            let (_, values) = found?;
            self.in_flight -= 1;
            self.next_index += 1;
            match values {
                Ok(values) => self.current = values.into_iter(),
                Err(e) => return Some(Err(e)),
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
