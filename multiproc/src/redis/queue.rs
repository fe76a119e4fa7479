//! [`Queue`]: a queue between processes on any machine, on a Redis stream.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::link::{array, bytes, Link};
use super::stream::{self, unique_consumer_name, Consumer, Entry, Settings};
use crate::codec::{Binary, Codec};
use crate::deadline::Deadline;
use crate::error::{Error, PutError, Result};

/// How long an entry may stay unacknowledged before another consumer takes it over, by
/// default.
pub(crate) const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);

/// Deliveries after which an entry goes to the dead-letter stream, by default.
pub(crate) const DEFAULT_MAX_DELIVERIES: u64 = 5;

/// Entries a consumer reads per round trip, by default.
const DEFAULT_BATCH: usize = 100;

/// Messages per pipelined `XADD` round trip in [`Queue::put_many`].
const PUT_BATCH: usize = 1000;

/// A queue on a Redis stream: any process that can reach the server puts and gets, on
/// this machine or another. The method families and outcomes are those of
/// [`crate::Queue`].
///
/// Delivery is at least once. A message stays in the stream's consumer group until the
/// consumer that read it has handed it out from [`get`](Self::get) (it is acknowledged
/// with the next read, or when the handle is dropped). A consumer that dies before that
/// leaves its messages pending; after the visibility timeout another consumer takes them
/// over. A message delivered more often than the limit goes to the dead-letter stream
/// (`NAME:dead`) instead. Acknowledged messages are trimmed from the stream.
///
/// Each handle is one consumer and reads up to `batch` messages per round trip: those
/// messages wait in the handle until it hands them out (dropping the handle gives them
/// back). Use a `batch` of 1 for strict fairness between slow consumers.
///
/// ```no_run
/// use multiproc::redis::Queue;
///
/// # fn main() -> multiproc::Result<()> {
/// let q: Queue<String> = Queue::open("redis://127.0.0.1:6379/0", "jobs")?;
/// q.put("hello".to_string())?;
/// assert_eq!(q.get()?, "hello");
/// # Ok(()) }
/// ```
pub struct Queue<T, C = Binary> {
    key: String,
    dead_key: String,
    state: Mutex<State>,
    _marker: PhantomData<fn(T) -> C>,
}

struct State {
    link: Link,
    consumer: Consumer,
    /// Read, not handed out yet.
    buffer: VecDeque<Entry>,
    /// Handed out, not acknowledged yet.
    acks: Vec<String>,
}

impl<T, C> fmt::Debug for Queue<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("stream", &self.key).finish()
    }
}

/// Settings for a [`Queue`]: [`Queue::builder`].
#[derive(Debug, Clone)]
pub struct QueueBuilder<T, C = Binary> {
    url: String,
    name: String,
    settings: Settings,
    consumer: Option<String>,
    _marker: PhantomData<fn(T) -> C>,
}

impl<T, C: Codec> QueueBuilder<T, C> {
    /// How long a message may stay unacknowledged before another consumer takes it over
    /// (default 30 s). A consumer that takes longer than this between reading a message and
    /// its next read may see that message delivered elsewhere too.
    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.settings.visibility = d;
        self
    }

    /// Deliveries after which a message goes to the dead-letter stream (default 5).
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.settings.max_deliveries = n.max(1);
        self
    }

    /// Messages read per round trip (default 100).
    pub fn batch(mut self, n: usize) -> Self {
        self.settings.batch = n.max(1);
        self
    }

    /// This consumer's name in the group (default: host, process id and a counter).
    /// Two live handles must not share a name.
    pub fn consumer(mut self, name: &str) -> Self {
        self.consumer = Some(name.to_string());
        self
    }

    /// Opens the queue. Nothing is sent to the server until the first call.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a URL that is not a Redis URL or an empty name.
    pub fn build(self) -> Result<Queue<T, C>> {
        if self.name.is_empty() {
            return Err(Error::InvalidArgument("a queue needs a name".into()));
        }
        let link = Link::open(&self.url)?;
        let consumer = self
            .consumer
            .unwrap_or_else(|| unique_consumer_name("queue"));
        Ok(Queue {
            key: self.name.clone(),
            dead_key: format!("{}:dead", self.name),
            state: Mutex::new(State {
                link,
                consumer: Consumer::new(&self.name, consumer, self.settings),
                buffer: VecDeque::new(),
                acks: Vec::new(),
            }),
            _marker: PhantomData,
        })
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// The queue `name` on the server at `url`, with the default settings.
    ///
    /// # Errors
    /// As [`QueueBuilder::build`].
    pub fn open(url: &str, name: &str) -> Result<Queue<T>> {
        Queue::builder(url, name).build()
    }
}

impl<T: Serialize + DeserializeOwned, C: Codec> Queue<T, C> {
    /// A builder for the queue `name` on the server at `url`, with settings.
    pub fn builder(url: &str, name: &str) -> QueueBuilder<T, C> {
        QueueBuilder {
            url: url.to_string(),
            name: name.to_string(),
            settings: Settings {
                visibility: DEFAULT_VISIBILITY,
                max_deliveries: DEFAULT_MAX_DELIVERIES,
                batch: DEFAULT_BATCH,
            },
            consumer: None,
            _marker: PhantomData,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `value` to the stream. The queue has no bound: this never waits for room.
    ///
    /// # Errors
    /// [`PutError::Failed`] with the value and [`Error::Codec`] when it cannot be encoded,
    /// or the server's error ([`Error::Io`] while it is unreachable).
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        let mut payload = Vec::new();
        if let Err(e) = C::encode(&value, &mut payload) {
            return Err(PutError::Failed(value, e));
        }
        let mut pipe = redis::pipe();
        stream::add_in(&mut pipe, &self.key, &payload);
        match self.state().link.call(|c| pipe.query::<()>(c)) {
            Ok(()) => Ok(()),
            Err(e) => Err(PutError::Failed(value, e)),
        }
    }

    /// Appends every value, a thousand per round trip (pipelined `XADD`).
    ///
    /// # Errors
    /// [`Error::Codec`] for a value that cannot be encoded (nothing of its round trip was
    /// sent), or the server's error; the values of earlier round trips are in the queue.
    pub fn put_many(&self, values: impl IntoIterator<Item = T>) -> Result<()> {
        let mut values = values.into_iter().peekable();
        let mut payload = Vec::new();
        while values.peek().is_some() {
            let mut pipe = redis::pipe();
            for value in values.by_ref().take(PUT_BATCH) {
                payload.clear();
                C::encode(&value, &mut payload)?;
                stream::add_in(&mut pipe, &self.key, &payload);
            }
            self.state().link.call(|c| pipe.query::<()>(c))?;
        }
        Ok(())
    }

    /// Takes the next message, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::Codec`] for a message that does not decode as a `T` (it goes to the
    /// dead-letter stream), or the server's error ([`Error::Io`] while it is unreachable).
    pub fn get(&self) -> Result<T> {
        self.get_until(Deadline::NEVER)
    }

    /// Takes the next message if one is there now.
    ///
    /// # Errors
    /// [`Error::Empty`] when none is; otherwise as [`get`](Self::get).
    pub fn try_get(&self) -> Result<T> {
        match self.get_until(Deadline::now()) {
            Err(Error::Timeout) => Err(Error::Empty),
            other => other,
        }
    }

    /// Takes the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none came in time; otherwise as [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(Deadline::after(timeout))
    }

    /// Takes the next message, waiting until the instant `deadline`.
    ///
    /// # Errors
    /// As [`get_timeout`](Self::get_timeout).
    pub fn get_deadline(&self, deadline: Instant) -> Result<T> {
        self.get_until(Deadline::at(deadline))
    }

    fn get_until(&self, deadline: Deadline) -> Result<T> {
        let mut guard = self.state();
        let state = &mut *guard;
        loop {
            if let Some(entry) = state.buffer.pop_front() {
                state.acks.push(entry.id.clone());
                return match C::decode(&entry.payload) {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        bury(state, &self.dead_key, vec![entry])?;
                        Err(e)
                    }
                };
            }
            let block = match deadline.remaining() {
                None => Some(Duration::MAX),
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
            };
            let count = state.consumer.settings().batch;
            let batch = state
                .consumer
                .read(&mut state.link, &mut state.acks, block, count)?;
            if !batch.exhausted.is_empty() {
                bury(state, &self.dead_key, batch.exhausted)?;
            }
            let got = !batch.fresh.is_empty();
            state.buffer.extend(batch.fresh);
            if !got && (block.is_none() || deadline.has_passed()) {
                return Err(Error::Timeout);
            }
        }
    }

    /// The messages in the dead-letter stream (`NAME:dead`), oldest first, each decoded;
    /// they stay there.
    ///
    /// # Errors
    /// The server's error.
    pub fn dead_letters(&self) -> Result<Vec<Result<T>>> {
        let key = self.dead_key.clone();
        let reply: Vec<redis::Value> = self
            .state()
            .link
            .call(|c| redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query(c))?;
        let mut out = Vec::new();
        for e in reply {
            let mut parts = array(e)?.into_iter();
            let _id = parts.next();
            let fields = array(parts.next().unwrap_or(redis::Value::Nil))?;
            let mut fields = fields.into_iter();
            while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
                if bytes(name)? == b"m" {
                    out.push(C::decode(&bytes(value)?));
                }
            }
        }
        Ok(out)
    }

    /// The number of entries in the stream: messages not yet delivered, and delivered ones
    /// not yet acknowledged or not yet trimmed (trimming runs every thousand or so
    /// acknowledgements and removes whole blocks of entries).
    ///
    /// # Errors
    /// The server's error.
    pub fn stream_len(&self) -> Result<usize> {
        let n: i64 = self
            .state()
            .link
            .call(|c| redis::cmd("XLEN").arg(&self.key).query(c))?;
        Ok(n as usize)
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.key
    }

    /// The dead-letter stream's name (`NAME:dead`).
    pub fn dead_letter_name(&self) -> &str {
        &self.dead_key
    }
}

/// Moves `entries` to the dead-letter stream (with where they came from and how often they
/// were delivered) and acknowledges them, in one round trip.
fn bury(state: &mut State, dead_key: &str, entries: Vec<Entry>) -> Result<()> {
    let mut pipe = redis::pipe();
    let mut ids = Vec::with_capacity(entries.len());
    for e in &entries {
        pipe.cmd("XADD")
            .arg(dead_key)
            .arg("*")
            .arg("m")
            .arg(&e.payload)
            .arg("id")
            .arg(&e.id)
            .arg("deliveries")
            .arg(e.deliveries)
            .ignore();
        ids.push(e.id.clone());
    }
    state.consumer.ack_in(&mut pipe, &ids);
    state.link.call(|c| pipe.query::<()>(c))?;
    state.acks.retain(|a| !ids.contains(a));
    state.consumer.acked(&mut ids);
    Ok(())
}

impl<T, C> Drop for Queue<T, C> {
    fn drop(&mut self) {
        // Acknowledge what was handed out, and give back what was read but not handed
        // out, so other consumers need not wait for the visibility timeout. Best effort:
        // with the server gone, the timeout does it.
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let State {
            link,
            consumer,
            buffer,
            acks,
        } = state;
        let _ = consumer.ack(link, acks);
        let unread: Vec<String> = buffer.drain(..).map(|e| e.id).collect();
        let _ = consumer.release(link, &unread);
    }
}
