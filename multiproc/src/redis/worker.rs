//! [`Worker`]: a process that runs a distributed pool's tasks.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::link::Link;
use super::queue::{DEFAULT_MAX_DELIVERIES, DEFAULT_VISIBILITY};
use super::stream::{unique_consumer_name, Consumer, Entry, Settings};
use super::task::{Done, Registry, Task};
use crate::codec::{Binary, Codec};
use crate::error::{Error, Result};
use crate::pool::call::Fail;
use crate::process::SignalFlag;
use crate::signal::Signal;

/// The environment variable that makes a program a worker:
/// `MULTIPROC_REDIS_WORKER=redis://host:6379/0` (see [`Registry::work_if_asked`]).
pub const WORKER_ENV: &str = "MULTIPROC_REDIS_WORKER";

/// The pool a worker serves (default `multiproc`).
pub const POOL_ENV: &str = "MULTIPROC_REDIS_POOL";

/// Optional: the visibility timeout of a worker started from the environment, in ms.
pub const VISIBILITY_ENV: &str = "MULTIPROC_REDIS_VISIBILITY_MS";

/// Optional: the delivery limit of a worker started from the environment.
pub const MAX_DELIVERIES_ENV: &str = "MULTIPROC_REDIS_MAX_DELIVERIES";

/// The pool name when none is given.
pub const DEFAULT_POOL: &str = "multiproc";

/// The most task-stream entries a worker reads per round trip. It reads fewer while its
/// batches take long (see [`Prefetch`]).
const DEFAULT_BATCH: usize = 256;

/// A batch that took less than this was quick: the next one may be twice as large.
const QUICK_BATCH: Duration = Duration::from_millis(2);

/// A worker sends the results it has at least this often, even in the middle of a batch.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// How long a result list lives after its last result: a caller that died does not leave
/// it behind for ever.
const REPLY_TTL_S: u64 = 24 * 3600;

/// The longest pause between two attempts while the server is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Settings for a [`Worker`]: [`Registry::worker`].
#[derive(Debug, Clone)]
pub struct WorkerBuilder {
    registry: Registry,
    url: String,
    pool: String,
    settings: Settings,
}

impl WorkerBuilder {
    /// How long a task may run before another worker takes it over (default 30 s). Set it
    /// above your longest task: a task that runs longer runs twice (its second result is
    /// dropped by the caller).
    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.settings.visibility = d;
        self
    }

    /// Deliveries after which a task fails with [`Error::WorkerDied`] instead of running
    /// again (default 5).
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.settings.max_deliveries = n.max(1);
        self
    }

    /// The most tasks (chunks) taken per round trip (default 256). A worker takes that many
    /// only while its tasks are quick (a batch under 2 ms); while they are slow it takes
    /// fewer, down to one, so that slow tasks spread over the workers.
    pub fn batch(mut self, n: usize) -> Self {
        self.settings.batch = n.max(1);
        self
    }

    /// Makes the worker; nothing is sent to the server before [`Worker::run`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a URL that is not a Redis URL.
    pub fn build(self) -> Result<Worker> {
        let link = Link::open(&self.url)?;
        let key = tasks_key(&self.pool);
        Ok(Worker {
            consumer: Consumer::new(&key, unique_consumer_name("worker"), self.settings),
            registry: self.registry,
            link,
        })
    }
}

/// A process that takes a distributed [`Pool`](super::Pool)'s tasks from Redis, runs them
/// with the functions of its [`Registry`], and sends the results back.
///
/// Run any number of them, on any machine that reaches the server. A worker that dies
/// leaves its tasks to the others after the visibility timeout.
pub struct Worker {
    registry: Registry,
    link: Link,
    consumer: Consumer,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("server", &self.link.url())
            .field("consumer", &self.consumer)
            .finish()
    }
}

/// The task stream of the pool `pool`.
pub(crate) fn tasks_key(pool: &str) -> String {
    format!("{pool}:tasks")
}

impl Registry {
    /// A builder for a worker of the pool `pool` on the server at `url`.
    pub fn worker(&self, url: &str, pool: &str) -> WorkerBuilder {
        WorkerBuilder {
            registry: self.clone(),
            url: url.to_string(),
            pool: pool.to_string(),
            settings: Settings {
                visibility: DEFAULT_VISIBILITY,
                max_deliveries: DEFAULT_MAX_DELIVERIES,
                batch: DEFAULT_BATCH,
            },
        }
    }

    /// Runs this process as a worker when the environment asks for it, and returns
    /// `Ok(true)` once the worker stopped (`SIGTERM` or `SIGINT`); `Ok(false)` at once when
    /// it does not. Call it first thing in `main`, so that one program is both the caller
    /// and the worker:
    ///
    /// ```text
    /// MULTIPROC_REDIS_WORKER=redis://10.0.0.5:6379/0 MULTIPROC_REDIS_POOL=jobs ./my-program
    /// ```
    ///
    /// [`WORKER_ENV`] gives the server, [`POOL_ENV`] the pool (default `multiproc`),
    /// [`VISIBILITY_ENV`] and [`MAX_DELIVERIES_ENV`] the settings of
    /// [`WorkerBuilder`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad URL or setting; otherwise as [`Worker::run`].
    pub fn work_if_asked(&self) -> Result<bool> {
        let Ok(url) = std::env::var(WORKER_ENV) else {
            return Ok(false);
        };
        let pool = std::env::var(POOL_ENV).unwrap_or_else(|_| DEFAULT_POOL.into());
        let mut builder = self.worker(&url, &pool);
        if let Ok(ms) = std::env::var(VISIBILITY_ENV) {
            let ms: u64 = ms.parse().map_err(|_| {
                Error::InvalidArgument(format!("{VISIBILITY_ENV}={ms}: not a number of ms"))
            })?;
            builder = builder.visibility_timeout(Duration::from_millis(ms));
        }
        if let Ok(n) = std::env::var(MAX_DELIVERIES_ENV) {
            let n: u64 = n.parse().map_err(|_| {
                Error::InvalidArgument(format!("{MAX_DELIVERIES_ENV}={n}: not a number"))
            })?;
            builder = builder.max_deliveries(n);
        }
        builder.build()?.run()?;
        Ok(true)
    }
}

impl Worker {
    /// Takes and runs tasks until the process gets `SIGTERM` or `SIGINT` (the task at hand
    /// is finished and its result sent first). While the server is unreachable the worker
    /// says so on stderr, once, and tries again (at most a second apart).
    ///
    /// # Errors
    /// An error reply from the server other than a missing stream (for instance a key of
    /// the pool's name that holds something else), or a signal flag that cannot be set.
    pub fn run(mut self) -> Result<()> {
        let stop = [
            SignalFlag::register(Signal::TERM)?,
            SignalFlag::register(Signal::INT)?,
        ];
        let mut acks = Vec::new();
        let mut backoff = Duration::from_millis(10);
        let mut down = false;
        let mut prefetch = Prefetch::new(self.consumer.settings().batch);
        while !stop.iter().any(SignalFlag::is_raised) {
            let batch = match self.consumer.read(
                &mut self.link,
                &mut acks,
                Some(Duration::from_millis(250)),
                prefetch.count,
            ) {
                Ok(b) => b,
                Err(e @ Error::Io(_)) => {
                    if !down {
                        eprintln!("multiproc worker {}: {e}; retrying", std::process::id());
                        down = true;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if down {
                eprintln!(
                    "multiproc worker {}: redis server {} is back",
                    std::process::id(),
                    self.link.url()
                );
                down = false;
            }
            backoff = Duration::from_millis(10);
            let (taken, started) = (batch.fresh.len(), Instant::now());
            let processed = self.process(batch.exhausted, batch.fresh);
            prefetch.learn(taken, started.elapsed());
            if let Err(e) = processed {
                // The results are lost with the connection; the tasks stay pending and run
                // again after the visibility timeout.
                if !matches!(e, Error::Io(_)) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Fails the exhausted entries, runs the fresh ones, and sends the results followed by
    /// the acknowledgements, at least every [`FLUSH_EVERY`].
    fn process(&mut self, exhausted: Vec<Entry>, fresh: Vec<Entry>) -> Result<()> {
        let mut replies: Vec<(String, Vec<u8>)> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        let limit = self.consumer.settings().max_deliveries;
        let visibility = self.consumer.settings().visibility;
        for e in exhausted {
            if let Ok(task) = Binary::decode::<Task>(&e.payload) {
                let fail = Fail::WorkerDied(format!(
                    "the task was handed to workers {} times (the limit is {limit}) and none \
                     answered within the visibility timeout of {visibility:?}: they died or \
                     were too slow",
                    e.deliveries
                ));
                replies.push((task.reply, encode_done(task.id, Vec::new(), Some(fail))?));
            }
            ids.push(e.id);
        }
        let mut since = Instant::now();
        let mut out = Vec::new();
        for e in fresh {
            // An entry that is not a task (written by something else) is dropped: no
            // caller can be told.
            if let Ok(task) = Binary::decode::<Task>(&e.payload) {
                out.clear();
                let done = match self.registry.run(&task, &mut out) {
                    Ok(()) => encode_done(task.id, std::mem::take(&mut out), None)?,
                    Err(fail) => encode_done(task.id, Vec::new(), Some(fail))?,
                };
                replies.push((task.reply, done));
            }
            ids.push(e.id);
            if since.elapsed() >= FLUSH_EVERY {
                self.flush(&mut replies, &mut ids)?;
                since = Instant::now();
            }
        }
        self.flush(&mut replies, &mut ids)
    }

    /// Sends the results (one `RPUSH` per caller) and then acknowledges their tasks, in
    /// one round trip: a worker killed before it leaves the tasks pending, never a task
    /// acknowledged without its result.
    fn flush(&mut self, replies: &mut Vec<(String, Vec<u8>)>, ids: &mut Vec<String>) -> Result<()> {
        if replies.is_empty() && ids.is_empty() {
            return Ok(());
        }
        let mut by_reply: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (reply, done) in replies.drain(..) {
            by_reply.entry(reply).or_default().push(done);
        }
        let mut pipe = redis::pipe();
        for (reply, dones) in &by_reply {
            pipe.cmd("RPUSH").arg(reply).arg(dones).ignore();
            pipe.cmd("EXPIRE").arg(reply).arg(REPLY_TTL_S).ignore();
        }
        self.consumer.ack_in(&mut pipe, ids);
        let sent = self.link.call(|c| pipe.query::<()>(c));
        if sent.is_err() {
            ids.clear();
        }
        sent?;
        self.consumer.acked(ids);
        self.consumer.maybe_trim(&mut self.link)
    }
}

/// How many tasks a worker takes per read: doubled after a full batch that was quick
/// (trivial tasks: fewer round trips), halved after one that took longer than
/// [`FLUSH_EVERY`] (slow tasks: what one worker holds, the others cannot run).
#[derive(Debug)]
struct Prefetch {
    count: usize,
    max: usize,
}

impl Prefetch {
    fn new(max: usize) -> Prefetch {
        Prefetch {
            count: max.clamp(1, 16),
            max: max.max(1),
        }
    }

    fn learn(&mut self, taken: usize, took: Duration) {
        if took > FLUSH_EVERY {
            self.count = (self.count / 2).max(1);
        } else if taken >= self.count && took < QUICK_BATCH {
            self.count = (self.count * 2).min(self.max);
        }
    }
}

fn encode_done(id: u64, values: Vec<u8>, fail: Option<Fail>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    Binary::encode(&Done { id, values, fail }, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_grows_on_quick_full_batches_and_shrinks_on_slow_ones() {
        let mut p = Prefetch::new(256);
        assert_eq!(p.count, 16);
        p.learn(16, Duration::from_micros(100));
        assert_eq!(p.count, 32);
        p.learn(5, Duration::from_micros(100)); // not full: the stream ran dry
        assert_eq!(p.count, 32);
        for _ in 0..10 {
            p.learn(p.count, Duration::ZERO);
        }
        assert_eq!(p.count, 256);
        for _ in 0..20 {
            p.learn(p.count, Duration::from_millis(50));
        }
        assert_eq!(p.count, 1);
    }
}
