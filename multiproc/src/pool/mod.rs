//! A pool of worker processes: [`Pool`], Python's `multiprocessing.Pool`, that never hangs.
//!
//! ```
//! use multiproc::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! # fn main() -> multiproc::Result<()> {
//! let pool = Pool::new(2)?;
//! assert_eq!(pool.map(square, 0..5)?, vec![0, 1, 4, 9, 16]);
//! let r = pool.apply_async(square, 7)?;
//! assert_eq!(r.get()?, 49);
//! pool.close();
//! pool.join()?;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! Tasks are plain functions, `fn(A) -> R` (a closure that captures nothing coerces to
//! one); arguments and results travel through serde. The pool's workers run the same
//! executable file as the process that built the pool, so a function travels as its place
//! in that file.
//!
//! Building a pool starts one single-threaded helper process: forked while the caller is
//! single-threaded, else started by the forkserver (or as [`PoolBuilder::start_method`]
//! says), so a pool can be built from a `#[test]`, a tokio program or any threaded
//! program. The helper forks the workers, and replaces any worker that dies or retires
//! ([`PoolBuilder::max_tasks_per_child`]); the caller's process never forks again. The pool
//! has one thread of its own: the result thread, where callbacks run in completion order.
//!
//! Tasks go to the workers through one shared-memory queue; a worker records, in shared
//! memory, which task it took before the task leaves the queue. When a worker dies, the
//! helper reports it and the pool fails exactly that task with [`Error::WorkerDied`]
//! (naming the signal or exit code); every other task runs, and `join` returns.
// `call.rs` holds the one unsafe part (calling a task function by address); every other file
// forbids it.
#![deny(unsafe_code)]

pub(crate) mod call;
pub(crate) mod imap;
#[cfg(feature = "progress")]
mod progress;
pub(crate) mod result;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::call::TaskOutput;
pub use self::imap::IMap;
pub use self::result::AsyncResult;

use self::call::{CodeNames, Init, Marking, Report, TaskMsg};
use self::result::Slot;
use self::worker::{HelperArgs, Order, WorkerKit};
use crate::codec::{Binary, Codec};
use crate::connection::{pipe, Connection};
use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::process::{Child, Process, Signal, StartMethod};
use crate::queue::Queue;
use crate::shm::RawArray;
use crate::sys;

/// What the result thread does with a finished chunk: its encoded values, or its error.
pub(crate) type Sink = Box<dyn FnOnce(Result<Vec<u8>>) + Send>;

/// A success callback, run on the result thread.
pub(crate) type OnOk<V> = Option<Box<dyn FnOnce(&V) + Send>>;
/// An error callback, run on the result thread.
pub(crate) type OnErr = Option<Box<dyn FnOnce(&Error) + Send>>;
/// Told how many items each finished chunk had (the progress bar).
pub(crate) type Progress = Option<Arc<dyn Fn(usize) + Send + Sync>>;
/// What a map does once every chunk has ended.
type MapDone<V> = Box<dyn FnOnce(Result<Vec<V>>) + Send>;

/// The value a task function `fn(A) -> R` hands back to the caller.
pub type Output<R> = <R as TaskOutput>::Value;

/// The largest default chunk, in items. Measured with 1,000,000 trivial items on 2 workers
/// (2 cores): chunks of 125,000 (Python's rule) 14-18 M items/s, 32,000 25-29, 8,000 36,
/// 2,000 30-33.
const MAX_DEFAULT_CHUNK: usize = 8192;

/// Chunks in flight per worker for `imap`: the window that keeps memory flat.
const IMAP_WINDOW_PER_WORKER: usize = 32;

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// See the [module documentation](self) for how it works. Dropping a pool terminates it.
pub struct Pool {
    shared: Arc<Shared>,
    processes: usize,
    ctl: Mutex<Option<Connection>>,
    handler: Mutex<Option<JoinHandle<()>>>,
}

/// What the caller's threads and the result thread share.
struct Shared {
    tasks: Queue<TaskMsg, Marking>,
    results: Queue<Report>,
    book: Mutex<Book>,
    pids: Mutex<Vec<Pid>>,
    /// The helper process, until `join` or `terminate` takes it to wait for it.
    helper: Mutex<Option<Child<()>>>,
    code: CodeNames,
}

/// How often an idle result thread checks that the helper process is alive.
const HELPER_CHECK: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Running,
    Closed,
    Terminated,
}

/// The tasks sent and not yet finished, and the pool's state.
struct Book {
    state: State,
    next_id: u64,
    pending: HashMap<u64, Sink, BuildHasherDefault<IdHasher>>,
}

/// Task ids are consecutive integers: a multiplicative hash spreads them at the cost of one
/// multiplication (the default SipHash was 5 % of an `apply_async` round).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes)
            .field("state", &self.shared.book().state)
            .finish()
    }
}

/// The addresses of an initializer's code, and its encoded argument (or why it would not
/// encode, reported by `build`).
type PendingInit = ((usize, usize), Result<Vec<u8>>);

/// Settings for a [`Pool`]; [`build`](PoolBuilder::build) starts it.
pub struct PoolBuilder {
    processes: Option<usize>,
    initializer: Option<PendingInit>,
    max_tasks: Option<usize>,
    method: Option<StartMethod>,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.initializer.is_some())
            .field("max_tasks_per_child", &self.max_tasks)
            .field("start_method", &self.method)
            .finish()
    }
}

impl PoolBuilder {
    /// The number of workers (default: [`cpu_count`](crate::cpu_count)).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Runs `f(args)` once in every worker when it starts (Python's `initializer` and
    /// `initargs`); `args` travels encoded, as a task's argument does. A worker whose
    /// initializer panics exits; while the pool is being built, that fails
    /// [`build`](Self::build).
    pub fn initializer<A>(mut self, f: fn(A), args: A) -> Self
    where
        A: Serialize + DeserializeOwned,
    {
        self.initializer = Some((call::init_addresses(f), encode(&args)));
        self
    }

    /// Replaces each worker after it has run `n` tasks (a chunk of a map counts as one), to
    /// give back resources a long-lived worker would keep (default: never).
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks = Some(n);
        self
    }

    /// How the pool's helper process, which forks the workers, is made (default: as a
    /// [`Process::run_fn`] process that chooses none, so forked while this process has one
    /// thread and made by the forkserver once it has more). The workers are always forked
    /// by the helper; under [`StartMethod::Spawn`] and [`StartMethod::Forkserver`] they run
    /// a fresh execution of this program, so task functions must live in its executable,
    /// and statics set in this process before the pool are not seen by the tasks.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Starts the helper process and the workers, and returns once every worker has run
    /// the initializer.
    ///
    /// # Errors
    /// - [`Error::InvalidArgument`] for 0 processes or `max_tasks_per_child(0)`, or, under
    ///   Spawn or Forkserver, an initializer that does not live in this program's
    ///   executable;
    /// - [`Error::InvalidState`] for [`StartMethod::Fork`] chosen in a process that has
    ///   other threads (and as [`Process::start`](crate::Process::start) says);
    /// - [`Error::Codec`] when the initializer's argument cannot be encoded;
    /// - the initializer's failure ([`Error::Panicked`], or [`Error::WorkerDied`] when a
    ///   worker ended before it was ready), or [`Error::Io`] when a process or the shared
    ///   memory cannot be created: the workers already started are stopped and reaped
    ///   first (PL-36).
    pub fn build(self) -> Result<Pool> {
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        if processes == 0 {
            return Err(Error::InvalidArgument(
                "number of processes must be at least 1".into(),
            ));
        }
        if self.max_tasks == Some(0) {
            return Err(Error::InvalidArgument(
                "max_tasks_per_child must be at least 1".into(),
            ));
        }
        let method = self.method.unwrap_or_else(crate::process::default_method);
        let code = CodeNames::new(method != StartMethod::Fork);
        let initializer = match self.initializer {
            Some((addresses, args)) => Some(Init::new(code.name(addresses)?, args?)),
            None => None,
        };
        let kit = WorkerKit {
            tasks: Queue::with_codec(None)?,
            results: Queue::new()?,
            marks: RawArray::new(processes)?,
            initializer,
            max_tasks: self.max_tasks,
        };
        let shared = Arc::new(Shared {
            tasks: kit.tasks.clone(),
            results: kit.results.clone(),
            book: Mutex::new(Book {
                state: State::Running,
                next_id: 1,
                pending: HashMap::default(),
            }),
            pids: Mutex::new(vec![Pid::from(0); processes]),
            helper: Mutex::new(None),
            code,
        });
        let (mut ctl, helper_ctl) = pipe()?;
        let args = HelperArgs {
            kit,
            processes,
            ctl: helper_ctl,
            parent: sys::process::getpid(),
            forked: method == StartMethod::Fork,
        };
        let mut helper = Process::run_fn(worker::helper_main, args)
            .name("PoolHelper")
            .start_method(method)
            .start()?;
        if let Err(e) = shared.await_workers(&mut ctl, &helper, processes) {
            // PL-36: the helper stops (SIGTERM, then SIGKILL) and reaps the workers it
            // started, then exits; it is reaped here.
            let _ = ctl.send(&Order::Terminate);
            if helper
                .join_timeout(worker::TERM_GRACE + Duration::from_secs(2))
                .is_err()
                && helper.is_alive()
            {
                let _ = helper.kill();
            }
            let _ = helper.join();
            return Err(e);
        }
        track_helper(helper.pid());
        *lock(&shared.helper) = Some(helper);
        let for_thread = shared.clone();
        let handler = std::thread::Builder::new()
            .name("pool-results".into())
            .spawn(move || for_thread.handle_results());
        let handler = match handler {
            Ok(h) => h,
            Err(e) => {
                let _ = ctl.send(&Order::Terminate);
                if let Some(mut helper) = lock(&shared.helper).take() {
                    untrack_helper(helper.pid());
                    let _ = helper.join();
                }
                return Err(e.into());
            }
        };
        Ok(Pool {
            shared,
            processes,
            ctl: Mutex::new(Some(ctl)),
            handler: Mutex::new(Some(handler)),
        })
    }
}

/// The helpers of the pools of this process that are not joined yet.
static LIVE_HELPERS: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

/// Remembers a new pool's helper; the first call also arranges for the exit-time cleanup.
fn track_helper(pid: Pid) {
    static AT_EXIT: Once = Once::new();
    // Registered after the exit handler of `process` (which waits for every child), so it
    // runs before it.
    AT_EXIT.call_once(|| sys::process::at_exit(kill_helpers_at_exit));
    lock(&LIVE_HELPERS).push(pid);
}

fn untrack_helper(pid: Pid) {
    lock(&LIVE_HELPERS).retain(|&p| p != pid);
}

/// At exit, a pool that was never dropped (in a `static`, or forgotten) would keep its helper
/// waiting for orders, and the exit would wait for the helper: kill the helpers (their
/// workers die with them). A helper is an unreaped child here, so its pid is still its own.
extern "C" fn kill_helpers_at_exit() {
    for pid in std::mem::take(&mut *lock(&LIVE_HELPERS)) {
        let _ = crate::process::send_signal(pid, Signal::KILL);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.book)
    }

    /// Sends one chunk; `sink` gets its outcome on the result thread.
    fn submit(&self, call: (usize, usize), args: Vec<u8>, sink: Sink) -> Result<()> {
        let call = self.code.name(call)?;
        let id = {
            let mut book = self.book();
            if book.state != State::Running {
                return Err(not_running());
            }
            let id = book.next_id;
            book.next_id += 1;
            book.pending.insert(id, sink);
            id
        };
        let msg = TaskMsg {
            id,
            call: call.0,
            func: call.1,
            args,
        };
        if let Err(e) = self.tasks.put(msg) {
            self.book().pending.remove(&id);
            return Err(match e {
                crate::error::PutError::Closed(_) => not_running(),
                other => other.into(),
            });
        }
        Ok(())
    }

    /// The result thread: hands every finished chunk to its sink, in completion order.
    fn handle_results(&self) {
        loop {
            let report = match self.results.get_timeout(HELPER_CHECK) {
                Ok(r) => r,
                Err(Error::Timeout) => {
                    self.check_helper();
                    continue;
                }
                Err(_) => break,
            };
            match report {
                Report::Done { id, values, fail } => {
                    let sink = self.book().pending.remove(&id);
                    if let Some(sink) = sink {
                        let outcome = match fail {
                            None => Ok(values),
                            Some(f) => Err(f.into()),
                        };
                        run_sink(sink, outcome);
                    }
                }
                Report::Started {
                    slot,
                    pid,
                    init: None,
                } => {
                    if let Some(p) = lock(&self.pids).get_mut(slot) {
                        *p = pid;
                    }
                }
                // A replacement whose initializer failed exits; the helper replaces it.
                Report::Started { .. } => {}
                Report::Exited {
                    pid, holding, how, ..
                } => {
                    let sink = self.book().pending.remove(&holding);
                    if let Some(sink) = sink {
                        run_sink(
                            sink,
                            Err(Error::WorkerDied(format!(
                                "worker {pid} {how} while it held the task"
                            ))),
                        );
                    }
                }
                Report::HelperDone => {}
                Report::Stop => break,
            }
        }
    }

    /// While the pool is built: waits until the helper has created the first workers and
    /// every one has run the initializer; the first failure is the error.
    fn await_workers(&self, ctl: &mut Connection, helper: &Child<()>, n: usize) -> Result<()> {
        match ctl.recv::<std::result::Result<(), String>>()? {
            Ok(()) => {}
            Err(why) => {
                return Err(Error::Io(std::io::Error::other(format!(
                    "a pool worker could not be created: {why}"
                ))))
            }
        }
        let mut ready = 0;
        while ready < n {
            let report = match self.results.get_timeout(HELPER_CHECK) {
                Err(Error::Timeout) => match helper.exit_status() {
                    None => continue,
                    Some(status) => {
                        return Err(Error::WorkerDied(format!(
                            "the pool's helper process ended ({status}) while the pool \
                             was built"
                        )))
                    }
                },
                other => other?,
            };
            match report {
                Report::Started {
                    slot,
                    pid,
                    init: None,
                } => {
                    if let Some(p) = lock(&self.pids).get_mut(slot) {
                        *p = pid;
                    }
                    ready += 1;
                }
                Report::Started {
                    init: Some(fail), ..
                } => return Err(fail.into()),
                Report::Exited { pid, how, .. } => {
                    return Err(Error::WorkerDied(format!(
                        "worker {pid} {how} before it was ready"
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// If the helper process died (killed from outside), its workers died with it and
    /// nothing will report: the pool stops, and every pending task fails.
    fn check_helper(&self) {
        let how = match &*lock(&self.helper) {
            Some(helper) => match helper.exit_status() {
                None => return,
                Some(status) => status.to_string(),
            },
            None => return,
        };
        self.book().state = State::Terminated;
        self.tasks.shutdown(true);
        self.fail_pending(|| {
            Error::WorkerDied(format!(
                "the pool's helper process ended ({how}), and its workers with it"
            ))
        });
    }

    /// Fails every task still pending with `why` (after the result thread has stopped).
    fn fail_pending(&self, why: impl Fn() -> Error) {
        let pending: Vec<Sink> = self.book().pending.drain().map(|(_, s)| s).collect();
        for sink in pending {
            run_sink(sink, Err(why()));
        }
    }
}

/// Runs a sink; a panicking callback must not take the result thread down with it.
pub(crate) fn run_sink(sink: Sink, outcome: Result<Vec<u8>>) {
    let _ = panic::catch_unwind(AssertUnwindSafe(|| sink(outcome)));
}

fn not_running() -> Error {
    Error::InvalidState("pool not running".into())
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    Binary::encode(value, &mut out)?;
    Ok(out)
}

/// Decodes a chunk's values: the codec error of a result the parent cannot decode is that
/// task's error.
pub(crate) fn decode_values<V: DeserializeOwned>(bytes: Result<Vec<u8>>) -> Result<Vec<V>> {
    Binary::decode::<Vec<V>>(&bytes?)
        .map_err(|e| Error::codec(format!("the task's result cannot be decoded here: {e}")))
}

pub(crate) fn decode_one<V: DeserializeOwned>(bytes: Result<Vec<u8>>) -> Result<V> {
    let mut values = decode_values::<V>(bytes)?;
    match values.len() {
        1 => Ok(values.remove(0)),
        n => Err(Error::codec(format!("expected one result, got {n}"))),
    }
}

pub(crate) fn check_chunksize(chunksize: usize) -> Result<()> {
    match chunksize {
        0 => Err(Error::InvalidArgument(
            "chunksize must be at least 1".into(),
        )),
        _ => Ok(()),
    }
}

/// A map in progress: the chunks' values in input order, and the first error received.
struct MapState<V> {
    parts: Vec<Option<Vec<V>>>,
    remaining: usize,
    error: Option<Error>,
    done: Option<MapDone<V>>,
    progress: Progress,
}

impl<V> MapState<V> {
    fn chunk_done(&mut self, index: usize, len: usize, outcome: Result<Vec<V>>) {
        match outcome {
            Ok(values) => self.parts[index] = Some(values),
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
            }
        }
        if let Some(p) = &self.progress {
            p(len);
        }
        self.remaining -= 1;
        if self.remaining == 0 {
            let outcome = match self.error.take() {
                Some(e) => Err(e),
                None => Ok(self.parts.drain(..).flatten().flatten().collect()),
            };
            if let Some(done) = self.done.take() {
                done(outcome);
            }
        }
    }
}

/// A map's chunks sent through `submit` (the local pool's or the Redis pool's), and the
/// result that collects their values in input order.
pub(crate) fn map_chunks<A, V>(
    items: &[A],
    chunksize: usize,
    on_ok: OnOk<Vec<V>>,
    on_err: OnErr,
    progress: Progress,
    mut submit: impl FnMut(Vec<u8>, Sink) -> Result<()>,
) -> Result<AsyncResult<Vec<V>>>
where
    A: Serialize,
    V: DeserializeOwned + Send + 'static,
{
    let slot = Slot::new();
    if items.is_empty() {
        finish(&slot, Ok(Vec::new()), on_ok, on_err);
        return Ok(AsyncResult::new(slot));
    }
    let count = items.len().div_ceil(chunksize);
    let filled = slot.clone();
    let state = Arc::new(Mutex::new(MapState::<V> {
        parts: (0..count).map(|_| None).collect(),
        remaining: count,
        error: None,
        done: Some(Box::new(move |outcome| {
            finish(&filled, outcome, on_ok, on_err)
        })),
        progress,
    }));
    // Each chunk goes as soon as it is encoded, so the workers start while the rest is
    // being encoded. An argument that cannot be encoded fails the call; the chunks
    // already sent run, and their values are dropped.
    for (index, chunk) in items.chunks(chunksize).enumerate() {
        let args = encode(chunk)?;
        let len = chunk.len();
        let state = state.clone();
        let sink: Sink = Box::new(move |bytes| {
            lock(&state).chunk_done(index, len, decode_values::<V>(bytes));
        });
        submit(args, sink)?;
    }
    Ok(AsyncResult::new(slot))
}

/// Completes `slot` with `outcome` after running the matching callback (Python runs the
/// callback first, so `wait` returns only after it ran).
pub(crate) fn finish<V>(slot: &Slot<V>, outcome: Result<V>, on_ok: OnOk<V>, on_err: OnErr) {
    match (&outcome, on_ok, on_err) {
        (Ok(v), Some(cb), _) => {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| cb(v)));
        }
        (Err(e), _, Some(cb)) => {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| cb(e)));
        }
        _ => {}
    }
    slot.set(outcome);
}

impl Pool {
    /// A pool of `processes` workers.
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// A builder for a pool with settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            initializer: None,
            max_tasks: None,
            method: None,
        }
    }

    /// The number of workers.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// The process ids of the current workers (replaced workers have new ones).
    pub fn pids(&self) -> Vec<Pid> {
        lock(&self.shared.pids).clone()
    }

    /// Runs `f(arg)` in a worker and waits for its value.
    ///
    /// # Errors
    /// [`Error::InvalidState`] ("pool not running") after [`close`](Self::close) or
    /// [`terminate`](Self::terminate); [`Error::Codec`] when `arg` cannot be encoded;
    /// otherwise the task's error, as [`AsyncResult::get`].
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<Output<R>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Sends `f(arg)` to a worker; the [`AsyncResult`] gets its value.
    ///
    /// # Errors
    /// As [`apply`](Self::apply), for sending only.
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        self.apply_inner(f, arg, None, None)
    }

    /// Like [`apply_async`](Self::apply_async), and runs `on_ok` with the value or `on_err`
    /// with the error when the task ends, in this process, on the pool's result thread (one
    /// thread for all callbacks, in completion order, as in Python). The result is ready
    /// once the callback has returned. A callback must not block for long: it delays every
    /// other result.
    ///
    /// # Errors
    /// As [`apply_async`](Self::apply_async).
    pub fn apply_async_with<A, R, S, E>(
        &self,
        f: fn(A) -> R,
        arg: A,
        on_ok: S,
        on_err: E,
    ) -> Result<AsyncResult<Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
        S: FnOnce(&Output<R>) + Send + 'static,
        E: FnOnce(&Error) + Send + 'static,
    {
        self.apply_inner(f, arg, Some(Box::new(on_ok)), Some(Box::new(on_err)))
    }

    fn apply_inner<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        on_ok: OnOk<Output<R>>,
        on_err: OnErr,
    ) -> Result<AsyncResult<Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        let args = encode(std::slice::from_ref(&arg))?;
        let slot = Slot::new();
        let filled = slot.clone();
        let sink: Sink = Box::new(move |bytes| {
            finish(&filled, decode_one::<Output<R>>(bytes), on_ok, on_err);
        });
        self.shared.submit(call::addresses(f), args, sink)?;
        Ok(AsyncResult::new(slot))
    }

    /// `f` applied to every item, in input order (Python's `map`), with the default chunk
    /// size: the input is collected first, then cut into about four chunks per worker.
    ///
    /// Every chunk runs even when one fails; the error is the first one received.
    ///
    /// # Errors
    /// As [`apply`](Self::apply), for the first failing chunk.
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        self.map_async(f, items)?.get()
    }

    /// [`map`](Self::map) with `chunksize` items per task.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `chunksize` is 0; otherwise as [`map`](Self::map).
    pub fn map_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        check_chunksize(chunksize)?;
        self.map_inner(
            f,
            items.into_iter().collect(),
            Some(chunksize),
            None,
            None,
            None,
        )?
        .get()
    }

    /// [`map`](Self::map) without waiting: the [`AsyncResult`] gets the whole list.
    ///
    /// # Errors
    /// As [`apply_async`](Self::apply_async).
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<Output<R>>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        self.map_inner(f, items.into_iter().collect(), None, None, None, None)
    }

    /// [`map_async`](Self::map_async) with a chunk size (`None`: the default) and callbacks,
    /// run on the result thread once every chunk has ended: `on_ok` with the whole list, or
    /// `on_err` once with the first error received.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `chunksize` is `Some(0)`; otherwise as
    /// [`apply_async`](Self::apply_async).
    pub fn map_async_with<A, R, S, E>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        on_ok: S,
        on_err: E,
    ) -> Result<AsyncResult<Vec<Output<R>>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
        S: FnOnce(&Vec<Output<R>>) + Send + 'static,
        E: FnOnce(&Error) + Send + 'static,
    {
        if let Some(c) = chunksize {
            check_chunksize(c)?;
        }
        self.map_inner(
            f,
            items.into_iter().collect(),
            chunksize,
            Some(Box::new(on_ok)),
            Some(Box::new(on_err)),
            None,
        )
    }

    /// Python's `starmap`: `f(a, b)` for every pair, in input order. (A function of more
    /// arguments takes them as one tuple through [`map`](Self::map).)
    ///
    /// # Errors
    /// As [`map`](Self::map).
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        pairs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        self.starmap_async(f, pairs)?.get()
    }

    /// [`starmap`](Self::starmap) without waiting.
    ///
    /// # Errors
    /// As [`map_async`](Self::map_async).
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        pairs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<AsyncResult<Vec<Output<R>>>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        let items: Vec<(A, B)> = pairs.into_iter().collect();
        self.map_calls(call::pair_addresses(f), items, None, None, None, None)
    }

    /// The default chunk size for `len` items: about four chunks per worker (Python's
    /// `ceil(len / (4 * processes))`), but at most [`MAX_DEFAULT_CHUNK`] items, so that the
    /// workers start early and the parent decodes while they work.
    fn default_chunksize(&self, len: usize) -> usize {
        len.div_ceil(4 * self.processes).clamp(1, MAX_DEFAULT_CHUNK)
    }

    fn map_inner<A, R>(
        &self,
        f: fn(A) -> R,
        items: Vec<A>,
        chunksize: Option<usize>,
        on_ok: OnOk<Vec<Output<R>>>,
        on_err: OnErr,
        progress: Progress,
    ) -> Result<AsyncResult<Vec<Output<R>>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        self.map_calls(
            call::addresses(f),
            items,
            chunksize,
            on_ok,
            on_err,
            progress,
        )
    }

    fn map_calls<A, V>(
        &self,
        calls: (usize, usize),
        items: Vec<A>,
        chunksize: Option<usize>,
        on_ok: OnOk<Vec<V>>,
        on_err: OnErr,
        progress: Progress,
    ) -> Result<AsyncResult<Vec<V>>>
    where
        A: Serialize,
        V: DeserializeOwned + Send + 'static,
    {
        if self.shared.book().state != State::Running {
            return Err(not_running());
        }
        let chunksize = chunksize.unwrap_or_else(|| self.default_chunksize(items.len()));
        map_chunks(&items, chunksize, on_ok, on_err, progress, |args, sink| {
            self.shared.submit(calls, args, sink)
        })
    }

    /// Python's `imap`: the values of `f` over `items`, in input order, lazily. At most
    /// 32 chunks per worker are in flight, so an endless iterator works and memory stays
    /// flat. Chunk size 1.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when the pool is not running. A failing task is an `Err`
    /// item; the iteration goes on after it.
    pub fn imap<'p, A, R, I>(&'p self, f: fn(A) -> R, items: I) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        self.imap_chunked(f, items, 1)
    }

    /// [`imap`](Self::imap) with `chunksize` items per task.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `chunksize` is 0; otherwise as [`imap`](Self::imap).
    pub fn imap_chunked<'p, A, R, I>(
        &'p self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        self.imap_inner(f, items, chunksize, true)
    }

    /// Python's `imap_unordered`: as [`imap`](Self::imap), in completion order.
    ///
    /// # Errors
    /// As [`imap`](Self::imap).
    pub fn imap_unordered<'p, A, R, I>(
        &'p self,
        f: fn(A) -> R,
        items: I,
    ) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        self.imap_unordered_chunked(f, items, 1)
    }

    /// [`imap_unordered`](Self::imap_unordered) with `chunksize` items per task.
    ///
    /// # Errors
    /// As [`imap_chunked`](Self::imap_chunked).
    pub fn imap_unordered_chunked<'p, A, R, I>(
        &'p self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        self.imap_inner(f, items, chunksize, false)
    }

    fn imap_inner<'p, A, R, I>(
        &'p self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> Result<IMap<'p, Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        check_chunksize(chunksize)?;
        if self.shared.book().state != State::Running {
            return Err(not_running());
        }
        let mut items = items.into_iter();
        let next_chunk = Box::new(move || {
            let chunk: Vec<A> = items.by_ref().take(chunksize).collect();
            (!chunk.is_empty()).then(|| encode(&chunk))
        });
        let calls = call::addresses(f);
        Ok(IMap::new(
            Box::new(move |args, sink| self.shared.submit(calls, args, sink)),
            next_chunk,
            ordered,
            IMAP_WINDOW_PER_WORKER * self.processes,
        ))
    }

    /// Stops taking tasks: those already sent run to the end, then the workers exit.
    /// Calling it again, or after [`terminate`](Self::terminate), does nothing.
    pub fn close(&self) {
        let mut book = self.shared.book();
        if book.state == State::Running {
            book.state = State::Closed;
            drop(book);
            // Workers take what is queued, then see the queue shut down and exit.
            self.shared.tasks.shutdown(false);
        }
    }

    /// Stops the workers now (SIGTERM, then SIGKILL for any still alive after a moment);
    /// every task not finished gets [`Error::Closed`]. Returns within about half a second
    /// even when workers ignore SIGTERM. Calling it again, or after `close` and `join`, does
    /// nothing.
    pub fn terminate(&self) {
        {
            let mut book = self.shared.book();
            if book.state == State::Terminated {
                return;
            }
            book.state = State::Terminated;
        }
        self.shared.tasks.shutdown(true);
        if let Some(mut ctl) = lock(&self.ctl).take() {
            let _ = ctl.send(&Order::Terminate);
        }
        let helper = lock(&self.shared.helper).take();
        if let Some(mut helper) = helper {
            untrack_helper(helper.pid());
            let _ = helper.join_timeout(worker::TERM_GRACE + Duration::from_millis(200));
            if helper.is_alive() {
                // Its workers die with it (parent-death signal).
                let _ = helper.kill();
            }
            let _ = helper.join();
        }
        self.stop_results();
        self.shared.fail_pending(|| Error::Closed);
    }

    /// Waits for the workers to exit, after [`close`](Self::close) or
    /// [`terminate`](Self::terminate). When it returns, every task has its outcome.
    ///
    /// # Errors
    /// [`Error::InvalidState`] while the pool is running (Python's `ValueError`).
    pub fn join(&self) -> Result<()> {
        if self.shared.book().state == State::Running {
            return Err(Error::InvalidState(
                "pool is still running: close() or terminate() it first".into(),
            ));
        }
        let helper = lock(&self.shared.helper).take();
        if let Some(mut helper) = helper {
            let _ = helper.join();
            untrack_helper(helper.pid());
        }
        lock(&self.ctl).take();
        self.stop_results();
        self.shared.fail_pending(|| {
            Error::WorkerDied("the pool's helper process ended before the task ran".into())
        });
        Ok(())
    }

    /// Stops the result thread once it has handled every report before the stop.
    fn stop_results(&self) {
        if let Some(handler) = lock(&self.handler).take() {
            if handler.thread().id() == std::thread::current().id() {
                return; // a callback dropping the pool: the thread ends by itself
            }
            let _ = self.shared.results.put(Report::Stop);
            let _ = handler.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pool>();
    assert_send_sync::<AsyncResult<u8>>();
};
