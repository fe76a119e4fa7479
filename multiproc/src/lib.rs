//! Python's `multiprocessing`, natively in Rust: processes that run closures, pipes
//! between them, and signals, with the speed of the raw system calls underneath.
//!
//! # Hello, world
//!
//! ```
//! use multiproc::{pipe, Process};
//! # fn main() -> multiproc::Result<()> {
//! # if std::fs::read_dir("/proc/self/task")?.count() > 1 { return Ok(()) } // doctests run threaded
//! let (mut parent_end, mut child_end) = pipe()?;
//! let mut child = Process::new(move || {
//!     let (a, b): (i32, i32) = child_end.recv().unwrap();
//!     child_end.send(&(a + b)).unwrap();
//!     String::from("done")
//! })
//! .name("adder")
//! .start()?;
//! parent_end.send(&(10, 20))?;
//! assert_eq!(parent_end.recv::<i32>()?, 30);
//! assert_eq!(child.join()?, "done");   // the closure's return value comes back
//! assert_eq!(child.exit_code(), Some(0));
//! # Ok(()) }
//! ```
//!
//! # A tour
//!
//! - **Processes.** [`Process::new`] takes a closure (or any [`Run`] type, the way Python
//!   code subclasses `Process`), [`start`](Process::start) forks, and [`Child::join`] hands
//!   back the closure's return value. A panic in the child arrives as
//!   [`Error::Panicked`] with its message; death by a signal as [`Error::Signaled`].
//!   [`Child::exit_code`] follows Python's `exitcode` (0, 1 after a panic, `-N` for signal
//!   `N`). Daemon children ([`Process::daemon`]) die with their parent, even when the parent
//!   is killed with `SIGKILL`. Every child is reaped: a dropped [`Child`] leaves no zombie.
//!   [`Process::run_fn`] runs a plain function under every start method, from threaded
//!   programs too (see below).
//! - **Pipes.** [`pipe`] gives two duplex [`Connection`]s, [`pipe_oneway`] a receiving and a
//!   sending end (the wrong direction does not compile). Values go through serde
//!   ([`Connection::send`], [`Connection::recv`]); bytes go raw and are framed exactly as
//!   Python frames them, so a Python peer can read them.
//! - **Queues.** [`Queue`] (unbounded or [`Queue::bounded`]), [`SimpleQueue`] and
//!   [`JoinableQueue`] live on a ring in shared memory: no feeder thread, `put` encodes in
//!   the caller and a full queue hands the value back ([`PutError::Full`]); a producer or
//!   consumer killed at any instant neither corrupts the ring nor blocks the others.
//! - **Shared memory.** [`Value`] and [`Array`] (with their lock, and lock-free atomics such
//!   as `fetch_add` for integers), `RawValue`/`RawArray` without one, and named
//!   [`SharedMemory`] for unrelated processes. See [`shm`].
//! - **Synchronisation across processes.** [`Lock`], [`RLock`], [`Semaphore`],
//!   [`BoundedSemaphore`], [`Condition`], [`Event`], [`Barrier`], all in shared memory on
//!   futexes; an uncontended lock makes no system call, and a process that dies holding a
//!   lock does not deadlock the others: the next locker is told the owner died
//!   ([`LockError::OwnerDied`]) and gets the guard to repair the data. See [`sync`].
//! - **Managers.** [`Manager`] starts a server process that owns shared dicts, lists,
//!   namespaces, values, queues, locks and your own types; typed proxies reach them from
//!   any process, thread-safely, with atomic server-side updates
//!   ([`manager::DictProxy::decrement`]) and a clear [`Error::ManagerGone`] once the server
//!   is gone. [`Manager::serve`] / [`Manager::connect`] share one over unix or TCP. See
//!   [`manager`].
//! - **Unrelated processes.** [`connection::Listener`] / [`connection::Client`] at
//!   `unix:/path`, `unix:@name` or `tcp:host:port`, with Python's authkey handshake and
//!   [`codec::Pickle`], so Python's own `Listener`/`Client` are peers;
//!   [`connection::wait`] over connections, listeners and children; and [`Queue`],
//!   [`Lock`], [`Semaphore`], [`Event`], [`Value`] under a name (`create`, `open`,
//!   `open_or_create`, `unlink`), created atomically so a crashed creator leaves nothing
//!   half-made.
//! - **Pools.** [`Pool`] runs `fn(A) -> R` tasks on worker processes: `apply`,
//!   `apply_async` (an [`AsyncResult`]) with callbacks, `map`, `starmap`, lazy `imap`. A
//!   worker that dies fails only the task it held ([`Error::WorkerDied`]) and is replaced;
//!   a panicking task is [`Error::Panicked`]; `terminate` is bounded. See [`pool`].
//! - **Handles travel.** A [`Connection`] end, a queue, a lock, an event, a barrier, a
//!   `Value`/`Array` or a [`SharedMemory`] can be sent with [`Connection::send`] to a process
//!   that is already running: its descriptors ride beside the message, and the receiver
//!   holds one more handle on the same object. See [`handle`].
//! - **Signals.** [`Signal`] knows every name `kill -l` prints;
//!   [`process::send_signal`] signals any pid, [`Child::signal`] a child (through a pidfd,
//!   so never a recycled pid), and [`process::SignalFlag`] is the safe way to react to one.
//!
//! # Python's names, and ours
//!
//! | Python `multiprocessing` | `multiproc` |
//! |---|---|
//! | `Process(target=f, args=(x,)).start()` | `Process::new(move \|\| f(x)).start()?`, or `Process::run_fn(f, x).start()?` under any start method |
//! | `set_start_method(m)`, `get_start_method()`, `get_context(m)` | [`set_start_method`]`(Some(m))`, [`get_start_method`], [`get_context`] |
//! | subclass `Process`, override `run` | `impl Run for MyType`, `Process::new(my_value)` |
//! | `p.join()`, `p.join(timeout)` | [`Child::join`] (returns the value), [`Child::join_timeout`] (`Err(Timeout)` while it runs) |
//! | `p.is_alive()`, `p.exitcode`, `p.pid`, `p.name` | [`Child::is_alive`], [`Child::exit_code`], [`Child::pid`], [`Child::name`] |
//! | `p.terminate()`, `p.kill()`, `os.kill(pid, sig)` | [`Child::terminate`], [`Child::kill`], [`process::send_signal`] |
//! | `p.daemon = True` | [`Process::daemon`]`(true)` |
//! | `current_process()`, `parent_process()`, `active_children()` | [`current_process`], [`parent_process`], [`active_children`] |
//! | `Pipe()`, `Pipe(duplex=False)` | [`pipe`], [`pipe_oneway`] |
//! | `conn.send(obj)`, `conn.recv()` | [`Connection::send`], [`Connection::recv`] ([`Connection::try_recv`], [`Connection::recv_timeout`]: `Err(Empty)`, `Err(Timeout)`) |
//! | `send_bytes(buf, off, n)`, `recv_bytes(maxlength)` | `send_bytes(&buf[off..off + n])`, [`Connection::recv_bytes_max`] |
//! | `recv_bytes_into(buf, off)` | `recv_bytes_into(&mut buf[off..])` |
//! | `conn.poll(timeout)` | [`Connection::poll`] (`Some(Duration::ZERO)` looks, `None` waits) |
//! | `conn.send(queue)` to a running process, `reduction.send_handle(conn, fd, pid)` | [`Connection::send`] of the handle itself (`&queue`, `&lock`, `&other_conn`, [`handle::Fd`]) |
//! | `EOFError`, `BufferTooShort`, `OSError("bad message length")` | [`Error::Eof`], [`Error::BufferTooShort`], [`Error::MessageTooLong`] |
//! | `Queue(maxsize)`, `put`, `get(timeout=t)`, `put_nowait`, `get_nowait` | [`Queue::bounded`], [`Queue::put`], [`Queue::get_timeout`], [`Queue::try_put`], [`Queue::try_get`] |
//! | `queue.Full`, `queue.Empty` | `try_put`: [`PutError::Full`] (with the value), `try_get`: [`Error::Empty`]; the timed forms: [`PutError::Timeout`], [`Error::Timeout`] |
//! | `q.close()` (this process puts no more) | [`Queue::close`] (this handle puts no more; other handles and processes go on) |
//! | `q.join_thread()`, `q.cancel_join_thread()` | not needed: no feeder thread, a message is in the queue when `put` returns |
//! | 3.13's `q.shutdown(immediate)` (`queue.Queue`) | [`Queue::shutdown`] (for every process; `true` also releases [`JoinableQueue::join`]) |
//! | `SimpleQueue`, `JoinableQueue.task_done()/join()` | [`SimpleQueue`], [`JoinableQueue::task_done`], [`JoinableQueue::join`] |
//! | `Value('i', 0)`, `with v.get_lock(): v.value += 1` | `Value::<i32>::new(0)?`, `*v.lock()? += 1` |
//! | `Array('d', [1, 2])`, `RawValue`, `RawArray` | `Array::<f64>::from_slice(&[1.0, 2.0])?`, [`shm::RawValue`], [`shm::RawArray`] |
//! | `shared_memory.SharedMemory(name, create=True, size=n)` | [`SharedMemory::create`] |
//! | `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore` | [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`] (RAII guards; `acquire`/`release` too) |
//! | `Condition`, `Event`, `Barrier` | [`Condition`], [`Event`], [`Barrier`] |
//! | `Manager()`, `manager.dict()`, `manager.list([...])` | [`Manager::start`], [`Manager::dict`], [`Manager::list_from`] |
//! | `d['count'] -= 1` (racy) | [`manager::DictProxy::decrement`] (atomic in the server) |
//! | `BaseManager(address, authkey).connect()`, `register(...)` | [`Manager::connect`], [`manager::Shared`] |
//! | `connection.Listener(address, authkey=k)`, `accept()` | [`connection::Listener::bind`]`("unix:/p", Some(k))`, [`connection::Listener::accept`] |
//! | `connection.Client(address, authkey=k)` | [`connection::Client::connect`] |
//! | `connection.wait(objs, timeout)`, `p.sentinel` | [`connection::wait`] (indices of the ready ones), [`Child::sentinel`] |
//! | `AuthenticationError` | [`Error::Authentication`] |
//! | `conn.send(obj)` to / from a Python peer | `conn.send_with::<`[`codec::Pickle`]`, _>(&v)`, `conn.recv_with::<Pickle, T>()` |
//! | `Pool(4)`, `pool.apply(f, (x,))`, `pool.map(f, xs, chunksize)` | [`Pool::new`]`(4)?`, [`Pool::apply`]`(f, x)`, [`Pool::map`], [`Pool::map_chunked`] |
//! | `apply_async(f, (x,), callback=c, error_callback=e)` | [`Pool::apply_async_with`]`(f, x, c, e)` |
//! | `imap`, `imap_unordered`, `starmap`, `close()`, `join()`, `terminate()` | [`Pool::imap`], [`Pool::imap_unordered`], [`Pool::starmap`], [`Pool::close`], [`Pool::join`], [`Pool::terminate`] |
//! | `AsyncResult.get(timeout)`, `ready()`, `successful()` | [`AsyncResult::get_timeout`], [`AsyncResult::ready`], [`AsyncResult::successful`] |
//!
//! # Waiting: one outcome shape
//!
//! Every call that can wait comes in the same forms: `x()` waits as long as it takes,
//! `try_x()` never waits, `x_timeout(d)` waits at most `d` (`Duration::MAX` is forever),
//! `x_deadline(t)` waits until the instant `t`. Not being able to go on is always an `Err`,
//! in the same place of the type: a `try_` form says it *would block*, a timed form says
//! [`Error::Timeout`]. Where the failure hands something back (the value of a put, the
//! guard of a lock whose previous owner died), the error carries it and converts into
//! [`Error`] with `?`, variant for same-named variant.
//!
//! | call | `try_` would block | `_timeout` / `_deadline` ran out |
//! |---|---|---|
//! | [`Connection::recv`] | [`Error::Empty`] | [`Error::Timeout`] |
//! | [`Queue::get`], [`SimpleQueue::get`] | [`Error::Empty`] | [`Error::Timeout`] |
//! | [`Queue::put`] | [`PutError::Full`]`(value)` | [`PutError::Timeout`]`(value)` |
//! | [`JoinableQueue::join`] | [`Error::WouldBlock`] | [`Error::Timeout`] |
//! | [`connection::Listener::accept`] | [`Error::WouldBlock`] | [`Error::Timeout`] |
//! | [`connection::Client::connect`] | — | [`Error::Timeout`] |
//! | [`Child::join`], [`process::ParentProcess::wait`] | [`Error::WouldBlock`] | [`Error::Timeout`] |
//! | `lock` of [`Lock`], [`RLock`], [`Value`], [`Array`], [`Condition`] | [`LockError::WouldBlock`] | [`LockError::Timeout`] |
//! | `acquire` of [`Lock`], [`RLock`] | [`Error::WouldBlock`] | [`Error::Timeout`] |
//! | `lock` / `acquire` of [`Semaphore`], [`BoundedSemaphore`] | [`Error::WouldBlock`] | [`Error::Timeout`] |
//! | [`Condition::wait`] | — | [`WaitError::Timeout`]`(guard)` |
//! | [`Event::wait`] | — | [`Error::Timeout`] |
//! | [`Barrier::wait`] | — | [`Error::Timeout`] (the others: [`Error::BrokenBarrier`]) |
//! | [`manager::QueueProxy::get`] | [`Error::Empty`] | [`Error::Timeout`] |
//! | [`manager::QueueProxy::put`] | [`PutError::Full`]`(value)` | [`PutError::Timeout`]`(value)` |
//! | `acquire` of the manager's lock, rlock, semaphore, condition proxies | [`Error::WouldBlock`] | [`Error::Timeout`] |
//! | [`AsyncResult::get`], [`AsyncResult::wait`] | [`Error::WouldBlock`] | [`Error::Timeout`] |
//! | [`pool::IMap::next_timeout`] (`None` at the end) | — | `Some(Err(`[`Error::Timeout`]`))` |
//!
//! A lock whose holder died is *acquired*: the guard forms return
//! [`LockError::OwnerDied`]`(guard)`, the guard-less `acquire` forms return
//! `Ok(`[`Acquired::OwnerDied`]`)`, which must be looked at. Questions such as
//! [`Connection::poll`], [`Event::is_set`] or [`Child::is_alive`] answer with a `bool`.
//!
//! # Pipe ends follow ownership: EOF without closing by hand
//!
//! With Python, `fork` leaves a copy of every pipe end in the child, so a consumer that
//! reads until EOF hangs forever unless both processes remember to close the ends they do
//! not use. Here the ends follow Rust ownership:
//!
//! - an end the child's closure **captured** (moved in) belongs to the child: the parent
//!   closes its copy as soon as the child has started;
//! - an end the parent **kept** belongs to the parent: the child closes its copy before its
//!   closure runs.
//!
//! So dropping the producer's end is all it takes for the consumer to see [`Error::Eof`]:
//!
//! ```
//! use multiproc::{pipe, Error, Process};
//! # fn main() -> multiproc::Result<()> {
//! # if std::fs::read_dir("/proc/self/task")?.count() > 1 { return Ok(()) }
//! let (mut producer, mut consumer) = pipe()?;
//! let mut child = Process::new(move || {
//!     let mut got = Vec::new();
//!     loop {
//!         match consumer.recv::<i32>() {
//!             Ok(i) => got.push(i),
//!             Err(Error::Eof) => return got, // the parent dropped `producer`
//!             Err(e) => panic!("{e}"),
//!         }
//!     }
//! })
//! .start()?;
//! for i in 1..=5 {
//!     producer.send(&i)?;
//! }
//! drop(producer);
//! assert_eq!(child.join()?, vec![1, 2, 3, 4, 5]);
//! # Ok(()) }
//! ```
//!
//! To keep an end *and* give one to a child, move a [`Connection::try_clone`] into the
//! closure. An end reachable only through an `Arc` shared with the parent, or a `static`, is
//! not captured and is closed in the child.
//!
//! # Threads, `fork`, and the other start methods
//!
//! After `fork` only the forking thread exists in the child; a lock another thread held
//! (the allocator's, stdout's) would stay locked there forever. So forking a closure from a
//! process with more than one thread is refused, with [`Error::InvalidState`].
//!
//! A plain function runs from anywhere: [`Process::run_fn`]`(f, args)` takes an
//! `fn(A) -> R` and a serde argument, and can be started by every [`StartMethod`]: `Fork`,
//! `Spawn` (a fresh execution of this program that runs `f` before `main`'s own code) or
//! `Forkserver` (a single-threaded server, started the Spawn way, forks it). With no method
//! chosen it is forked while this process has one thread, and made by the forkserver once
//! it has more. So a `#[test]` under the default harness, a `#[tokio::main]` program or any
//! threaded program starts children with no setup at all:
//!
//! ```
//! use multiproc::Process;
//!
//! fn count_words(text: String) -> usize {
//!     text.split_whitespace().count()
//! }
//!
//! # fn main() -> multiproc::Result<()> {
//! // In a `#[test]` fn, under `#[tokio::main]`, with or without threads:
//! let mut child = Process::run_fn(count_words, "a b c".to_string()).start()?;
//! assert_eq!(child.join()?, 3);
//! # Ok(()) }
//! ```
//!
//! The re-executed child is taken over before `main` by a constructor of this crate, so no
//! line of setup is needed; where constructors do not run, `start` says so and
//! [`init`]`()` as the first line of `main` does the same. Choose a method per process
//! ([`Process::start_method`]), for the program ([`set_start_method`]), or through a
//! [`Context`]. The `unsafe` [`Process::start_unchecked`] still forks a closure from a
//! threaded process when you know the other threads hold no lock the child needs.
//!
//! # Features
//!
//! - Linux (x86_64 and aarch64). The platform layer (`sys`) is one module, so other Unix
//!   systems can follow.
//! - `progress` (off by default): [`Pool::map_progress`](pool::Pool), a progress bar for
//!   long maps (`indicatif`).
//! - `tokio` (off by default): async forms of the waiting calls, for tokio programs:
//!   `Queue::get_async` / `put_async`, `JoinableQueue::join_async`, `lock_async` /
//!   `acquire_async` of `Lock` and the semaphores, `Event::wait_async`,
//!   `Barrier::wait_async`, `Connection::recv_async` / `recv_bytes_async` / `poll_async` /
//!   `send_async`, `Listener::accept_async`, `Child::join_async`; awaiting a pool's
//!   [`AsyncResult`], and `IMap` as a `Stream` (`next_async`). None holds
//!   a thread while it waits, and
//!   each is cancel-safe; a time limit is `tokio::time::timeout` around it. A process that
//!   waits only synchronously pays one load per wake-up-able call (see
//!   `docs/decisions.md`, "Async").
//! - `redis` (off by default): `multiproc::redis`, a `Queue`, a `Pool` with workers on
//!   other machines and a dict, on a Redis server (the `redis` crate).

#![doc(test(attr(deny(warnings))))]
// `unsafe` is allowed only where STYLE.md puts it: `sys/` (system calls), `mem/` (the
// shared-memory substrate), `raw/` (the futex-word protocols that live there), `shm/` (the
// types that map shared memory), `queue/ring.rs` and its `ring/` backends,
// `Process::start_unchecked`, `process/entry.rs` (the constructor, and an offset turned
// back into a function), and `pool/call.rs` (calling a task function by its address in a
// forked worker).
#![deny(unsafe_code)]

// The layers, each importing only from those earlier in this list (see docs/decisions.md,
// "Layers"): sys; loom, deadline, pid, signal; error; reactor (feature tokio); mem; raw;
// shm and sync beside each other; then fd, codec, connection, process, queue, manager,
// pool, and redis (the distributed forms, on top of pool and codec).
mod deadline;
mod error;
mod fd;
mod limit;
mod loom;
#[allow(unsafe_code)]
mod mem;
mod pid;
#[allow(unsafe_code)]
mod raw;
#[cfg(feature = "tokio")]
mod reactor;
mod signal;
#[allow(unsafe_code)]
mod sys;

pub mod codec;
pub mod connection;
// Not under `--cfg loom`: the ring it fuzzes is built on loom's model memory there.
#[cfg(all(feature = "fuzzing", not(loom)))]
#[doc(hidden)]
pub mod fuzzing;
pub mod handle;
pub mod manager;
pub mod pool;
pub mod process;
pub mod queue;
#[cfg(feature = "redis")]
pub mod redis;
#[allow(unsafe_code)]
pub mod shm;
pub mod sync;

pub use crate::connection::{pipe, pipe_oneway, Connection};
pub use crate::error::{
    Acquired, BoxError, Error, LockError, LockResult, PutError, Result, WaitError, WaitResult,
};
pub use crate::limit::DEFAULT_MAX_MESSAGE;
pub use crate::manager::{Manager, SharedMemoryManager};
pub use crate::pid::Pid;
pub use crate::pool::{AsyncResult, Pool};
pub use crate::process::{
    active_children, cpu_count, current_process, get_context, get_start_method, init,
    parent_process, set_start_method, Child, Context, ExitStatus, Process, Run, RunFn, Signal,
    StartMethod,
};
pub use crate::queue::{JoinableQueue, Queue, SimpleQueue};
pub use crate::shm::{Array, SharedMemory, Value};
pub use crate::sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
