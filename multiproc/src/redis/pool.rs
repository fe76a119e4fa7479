//! [`Pool`]: [`crate::Pool`]'s calls, with the tasks run by [`Worker`](super::Worker)s on
//! any machine that reaches the Redis server.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::link::{array, bytes, Link};
use super::stream;
use super::task::{Done, Registry, Task};
use super::worker::tasks_key;
use crate::codec::{Binary, Codec};
use crate::error::{Error, Result};
use crate::pool::imap::IMap;
use crate::pool::result::{copy_error, Slot};
use crate::pool::{
    check_chunksize, decode_one, encode, finish, lock, map_chunks, run_sink, AsyncResult, OnErr,
    OnOk, Output, Sink, TaskOutput,
};

/// Task messages per pipelined `XADD` round trip.
const SEND_BATCH: usize = 1024;

/// Results taken from the result list per round trip.
const RECEIVE_BATCH: usize = 1024;

/// How long the result thread blocks on the result list before it looks at its stop flag.
const RECEIVE_BLOCK_S: f64 = 0.1;

/// The largest default chunk of a map, in items.
const MAX_DEFAULT_CHUNK: usize = 1024;

/// Chunks in flight for `imap`.
const IMAP_WINDOW: usize = 256;

/// A distributed pool: [`crate::Pool`]'s `apply`, `apply_async`, `map`, `imap` and
/// `imap_unordered`, with the tasks run by [`Worker`](super::Worker) processes on any
/// machine that reaches the Redis server.
///
/// A task is a chunk of arguments and the registered name of the function to apply (see
/// [`Registry`]). Tasks go to the pool's stream (`NAME:tasks`); workers take them through a
/// consumer group and push results to this caller's own list. Both directions are
/// batched: one thread of the pool sends every task submitted meanwhile in one pipelined
/// round trip, workers read several tasks per round trip and send their results together,
/// and one thread here takes up to a thousand results per round trip.
///
/// A worker that dies mid-task leaves the task pending; after the workers' visibility
/// timeout another worker runs it again, and after too many deliveries it fails with
/// [`Error::WorkerDied`]. A task that ran twice (its first worker was only slow) reports
/// once: the second result is dropped here, by task id.
///
/// Without workers, tasks wait in the stream. While the server is unreachable, new tasks
/// fail with [`Error::Io`] naming it; tasks sent before it went down get their results if
/// it comes back with its data, and fail with [`Error::Io`] if it comes back restarted
/// (empty).
pub struct Pool {
    shared: Arc<Shared>,
    registry: Registry,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    /// The URL as given (with its password, if any).
    url: String,
    /// The URL without its password, for messages.
    shown: String,
    tasks_key: String,
    reply_key: String,
    book: Mutex<Book>,
    /// Signalled when `pending` becomes empty.
    idle: Condvar,
    outbox: Mutex<Vec<(u64, Vec<u8>)>>,
    wake: Condvar,
    stop: AtomicBool,
    duplicates: AtomicU64,
}

struct Book {
    next_id: u64,
    pending: HashMap<u64, Sink>,
    closed: bool,
    /// Tasks with ids below this were sent before the server was last seen unreachable.
    sent_before_outage: u64,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.shared.shown)
            .field("tasks", &self.shared.tasks_key)
            .finish()
    }
}

impl Pool {
    /// A pool on the server at `url`, named `pool` (the workers serve the same name), that
    /// calls the functions of `registry`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a URL that is not a Redis URL.
    pub fn connect(url: &str, pool: &str, registry: &Registry) -> Result<Pool> {
        // Checks the URL now rather than on the first task.
        let link = Link::open(url)?;
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id).map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
        let shared = Arc::new(Shared {
            url: url.to_string(),
            shown: link.url().to_string(),
            tasks_key: tasks_key(pool),
            reply_key: format!("{pool}:results:{:016x}", u64::from_le_bytes(id)),
            book: Mutex::new(Book {
                next_id: 1,
                pending: HashMap::new(),
                closed: false,
                sent_before_outage: 0,
            }),
            idle: Condvar::new(),
            outbox: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            duplicates: AtomicU64::new(0),
        });
        let mut threads = Vec::new();
        for (name, role) in [
            ("redis-pool-send", send as fn(&Shared, Link)),
            ("redis-pool-results", receive),
        ] {
            let s = shared.clone();
            let link = Link::open(url)?;
            threads.push(
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || role(&s, link))?,
            );
        }
        Ok(Pool {
            shared,
            registry: registry.clone(),
            threads: Mutex::new(threads),
        })
    }

    /// Runs `f(arg)` on a worker and waits for its value.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `f` is not registered; [`Error::InvalidState`] after
    /// [`close`](Self::close); [`Error::Codec`] when `arg` cannot be encoded; otherwise the
    /// task's error, as [`AsyncResult::get`], or [`Error::Io`] when the server is
    /// unreachable.
    pub fn apply<A, R, F>(&self, f: F, arg: A) -> Result<Output<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Sends `f(arg)` to the workers; the [`AsyncResult`] gets its value.
    ///
    /// # Errors
    /// As [`apply`](Self::apply), for sending only.
    pub fn apply_async<A, R, F>(&self, f: F, arg: A) -> Result<AsyncResult<Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
    {
        self.apply_inner(f, arg, None, None)
    }

    /// Like [`apply_async`](Self::apply_async), and runs `on_ok` with the value or `on_err`
    /// with the error when the task ends, in this process, on the pool's result thread.
    ///
    /// # Errors
    /// As [`apply_async`](Self::apply_async).
    pub fn apply_async_with<A, R, F, S, E>(
        &self,
        f: F,
        arg: A,
        on_ok: S,
        on_err: E,
    ) -> Result<AsyncResult<Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
        S: FnOnce(&Output<R>) + Send + 'static,
        E: FnOnce(&Error) + Send + 'static,
    {
        self.apply_inner(f, arg, Some(Box::new(on_ok)), Some(Box::new(on_err)))
    }

    fn apply_inner<A, R, F>(
        &self,
        f: F,
        arg: A,
        on_ok: OnOk<Output<R>>,
        on_err: OnErr,
    ) -> Result<AsyncResult<Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
    {
        let func = self.registry.name_of(&f)?;
        let args = encode(std::slice::from_ref(&arg))?;
        let slot = Slot::new();
        let filled = slot.clone();
        let sink: Sink = Box::new(move |bytes| {
            finish(&filled, decode_one::<Output<R>>(bytes), on_ok, on_err);
        });
        self.shared.submit(&func, args, sink)?;
        Ok(AsyncResult::new(slot))
    }

    /// `f` applied to every item, in input order, in chunks of at most 1,024 items (about
    /// 64 chunks for the whole input).
    ///
    /// # Errors
    /// As [`apply`](Self::apply), for the first failing chunk.
    pub fn map<A, R, F>(&self, f: F, items: impl IntoIterator<Item = A>) -> Result<Vec<Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
    {
        self.map_async(f, items)?.get()
    }

    /// [`map`](Self::map) with `chunksize` items per task.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `chunksize` is 0; otherwise as [`map`](Self::map).
    pub fn map_chunked<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
    {
        check_chunksize(chunksize)?;
        self.map_inner(f, items.into_iter().collect(), Some(chunksize))?
            .get()
    }

    /// [`map`](Self::map) without waiting: the [`AsyncResult`] gets every value.
    ///
    /// # Errors
    /// As [`apply_async`](Self::apply_async).
    pub fn map_async<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<Output<R>>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
    {
        self.map_inner(f, items.into_iter().collect(), None)
    }

    fn map_inner<A, R, F>(
        &self,
        f: F,
        items: Vec<A>,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<Output<R>>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
    {
        let func = self.registry.name_of(&f)?;
        self.shared.check_open()?;
        let chunksize =
            chunksize.unwrap_or_else(|| items.len().div_ceil(64).clamp(1, MAX_DEFAULT_CHUNK));
        map_chunks(&items, chunksize, None, None, None, |args, sink| {
            self.shared.submit(&func, args, sink)
        })
    }

    /// Python's `imap`: the values of `f` over `items`, in input order, lazily, with at
    /// most 256 tasks in flight. Chunk size 1.
    ///
    /// # Errors
    /// As [`apply_async`](Self::apply_async). A failing task is an `Err` item.
    pub fn imap<'p, A, R, F, I>(&'p self, f: F, items: I) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        self.imap_inner(f, items, 1, true)
    }

    /// [`imap`](Self::imap) with `chunksize` items per task.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `chunksize` is 0; otherwise as [`imap`](Self::imap).
    pub fn imap_chunked<'p, A, R, F, I>(
        &'p self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        self.imap_inner(f, items, chunksize, true)
    }

    /// Python's `imap_unordered`: as [`imap`](Self::imap), in completion order.
    ///
    /// # Errors
    /// As [`imap`](Self::imap).
    pub fn imap_unordered<'p, A, R, F, I>(&'p self, f: F, items: I) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        self.imap_inner(f, items, 1, false)
    }

    /// [`imap_unordered`](Self::imap_unordered) with `chunksize` items per task.
    ///
    /// # Errors
    /// As [`imap_chunked`](Self::imap_chunked).
    pub fn imap_unordered_chunked<'p, A, R, F, I>(
        &'p self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        self.imap_inner(f, items, chunksize, false)
    }

    fn imap_inner<'p, A, R, F, I>(
        &'p self,
        f: F,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        check_chunksize(chunksize)?;
        let func = self.registry.name_of(&f)?;
        self.shared.check_open()?;
        let mut items = items.into_iter();
        let next_chunk = Box::new(move || {
            let chunk: Vec<A> = items.by_ref().take(chunksize).collect();
            (!chunk.is_empty()).then(|| encode(&chunk))
        });
        Ok(IMap::new(
            Box::new(move |args, sink| self.shared.submit(&func, args, sink)),
            next_chunk,
            ordered,
            IMAP_WINDOW,
        ))
    }

    /// Stops taking tasks; those already sent still complete.
    pub fn close(&self) {
        lock(&self.shared.book).closed = true;
    }

    /// Waits until every task sent so far has its outcome (call [`close`](Self::close)
    /// first to be sure no other thread adds more).
    pub fn join(&self) {
        let mut book = lock(&self.shared.book);
        while !book.pending.is_empty() {
            book = self
                .shared
                .idle
                .wait(book)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Results that arrived for a task that had already reported, and were dropped: a
    /// task runs twice when its worker took longer than the visibility timeout.
    pub fn duplicates_dropped(&self) -> u64 {
        self.shared.duplicates.load(Ordering::Relaxed)
    }

    /// The number of tasks sent and not answered yet.
    pub fn pending(&self) -> usize {
        lock(&self.shared.book).pending.len()
    }
}

impl Shared {
    fn check_open(&self) -> Result<()> {
        if lock(&self.book).closed {
            return Err(Error::InvalidState("pool not running".into()));
        }
        Ok(())
    }

    /// Queues one task for the sending thread; `sink` gets its outcome.
    fn submit(&self, func: &(String, u64), args: Vec<u8>, sink: Sink) -> Result<()> {
        let id = {
            let mut book = lock(&self.book);
            if book.closed {
                return Err(Error::InvalidState("pool not running".into()));
            }
            let id = book.next_id;
            book.next_id += 1;
            book.pending.insert(id, sink);
            id
        };
        let task = Task {
            id,
            reply: self.reply_key.clone(),
            func: func.0.clone(),
            types: func.1,
            args,
        };
        let mut payload = Vec::new();
        if let Err(e) = Binary::encode(&task, &mut payload) {
            self.settle(id, Err(copy_error(&e)));
            return Err(e);
        }
        let mut outbox = lock(&self.outbox);
        outbox.push((id, payload));
        if outbox.len() == 1 {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Hands `outcome` to the task's sink, unless the task already had one.
    fn settle(&self, id: u64, outcome: Result<Vec<u8>>) {
        let sink = {
            let mut book = lock(&self.book);
            let sink = book.pending.remove(&id);
            if book.pending.is_empty() {
                self.idle.notify_all();
            }
            sink
        };
        match sink {
            Some(sink) => run_sink(sink, outcome),
            None => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Fails every pending task below `before` with `why`.
    fn fail_pending(&self, before: u64, why: &Error) {
        let ids: Vec<u64> = lock(&self.book)
            .pending
            .keys()
            .copied()
            .filter(|&id| id < before)
            .collect();
        for id in ids {
            self.settle(id, Err(copy_error(why)));
        }
    }
}

/// The sending thread: every task queued meanwhile goes in one pipelined round trip.
fn send(shared: &Shared, mut link: Link) {
    loop {
        let batch: Vec<(u64, Vec<u8>)> = {
            let mut outbox = lock(&shared.outbox);
            while outbox.is_empty() {
                if shared.stop.load(Ordering::Acquire) {
                    return;
                }
                outbox = shared
                    .wake
                    .wait_timeout(outbox, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let n = outbox.len().min(SEND_BATCH);
            outbox.drain(..n).collect()
        };
        let mut pipe = redis::pipe();
        for (_, payload) in &batch {
            stream::add_in(&mut pipe, &shared.tasks_key, payload);
        }
        if let Err(e) = link.call(|c| pipe.query::<()>(c)) {
            for (id, _) in batch {
                shared.settle(id, Err(copy_error(&e)));
            }
        }
    }
}

/// The result thread: takes results from this caller's list, a batch per round trip, and
/// hands each to its task's sink (a task's second result is dropped).
fn receive(shared: &Shared, mut link: Link) {
    let mut restarts = 0;
    while !shared.stop.load(Ordering::Acquire) {
        let reply = link.call(|c| {
            redis::cmd("BLMPOP")
                .arg(RECEIVE_BLOCK_S)
                .arg(1)
                .arg(&shared.reply_key)
                .arg("LEFT")
                .arg("COUNT")
                .arg(RECEIVE_BATCH)
                .query::<redis::Value>(c)
        });
        if link.restarts() != restarts {
            restarts = link.restarts();
            let before = lock(&shared.book).sent_before_outage;
            shared.fail_pending(
                before,
                &Error::Io(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!(
                        "redis server {} restarted while the task was in flight: the task \
                         was lost with its data",
                        shared.shown
                    ),
                )),
            );
        }
        let reply = match reply {
            Ok(r) => r,
            Err(_) => {
                {
                    let mut book = lock(&shared.book);
                    book.sent_before_outage = book.next_id;
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // [key, [result, ...]] or nil.
        let values = array(reply).and_then(|parts| match parts.into_iter().nth(1) {
            Some(list) => array(list),
            None => Ok(Vec::new()),
        });
        for v in values.unwrap_or_default() {
            let Ok(raw) = bytes(v) else { continue };
            // A result that does not decode cannot be matched to a task; drop it.
            let Ok(done) = Binary::decode::<Done>(&raw) else {
                continue;
            };
            let outcome = match done.fail {
                None => Ok(done.values),
                Some(f) => Err(f.into()),
            };
            shared.settle(done.id, outcome);
        }
    }
}

impl Drop for Pool {
    /// Stops the pool's threads; tasks still pending fail with [`Error::Closed`]; the
    /// result list is deleted (results that arrive later expire with it).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        for t in lock(&self.threads).drain(..) {
            let _ = t.join();
        }
        self.shared.fail_pending(u64::MAX, &Error::Closed);
        if let Ok(mut link) = Link::open(&self.shared.url) {
            let key = self.shared.reply_key.clone();
            let _ = link.call(|c| redis::cmd("DEL").arg(&key).query::<()>(c));
        }
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pool>();
};
