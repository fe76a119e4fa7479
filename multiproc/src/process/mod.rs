//! Processes that run closures: [`Process`], [`Child`], [`Run`], signals, and who is who.
//!
//! ```
//! use multiproc::Process;
//! # fn main() -> multiproc::Result<()> {
//! # if std::fs::read_dir("/proc/self/task")?.count() > 1 { return Ok(()) } // doctest threads
//! let data = vec![1, 2, 3];
//! let mut child = Process::new(move || data.iter().sum::<i32>()).name("summer").start()?;
//! assert_eq!(child.join()?, 6);
//! assert_eq!(child.exit_code(), Some(0));
//! # Ok(()) }
//! ```
// `start.rs` holds the one unsafe item (`start_unchecked`); every other file forbids it.
#![deny(unsafe_code)]

mod children;
mod current;
mod entry;
mod forkserver;
mod method;
mod run_fn;
mod signal;
mod spawn;
mod start;
mod status;
#[cfg(feature = "tokio")]
mod tokio;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

pub use self::children::active_children;
pub use self::current::{current_process, parent_process, ParentProcess, ProcessInfo};
pub(crate) use self::entry::FnRef;
pub use self::method::{get_context, get_start_method, set_start_method, Context};
pub use self::run_fn::RunFn;
pub use self::signal::{send_signal, SignalFlag};
pub use self::start::StartMethod;
pub use self::status::ExitStatus;
pub use crate::pid::Pid;
pub use crate::signal::Signal;

pub(crate) use self::entry::{code_at, code_offset_here, offset_in_executable};
pub(crate) use self::method::default_method;

use self::children::ChildRecord;
use self::run_fn::Portable;
use self::start::Outcome;
use crate::connection::Connection;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::fd::wait_readable;

/// The code a child runs: what Python's `Process.run` is.
///
/// Every closure `FnOnce() -> R` is a `Run`; a type of your own can implement it the way
/// the seeds subclass `Process` and override `run`.
///
/// ```
/// use multiproc::{Process, Run};
///
/// struct Greeter { name: String }
///
/// impl Run for Greeter {
///     type Output = String;
///     fn run(self) -> String {
///         format!("hello from {} in {}", self.name, multiproc::current_process().name())
///     }
/// }
/// # fn main() -> multiproc::Result<()> {
/// # if std::fs::read_dir("/proc/self/task")?.count() > 1 { return Ok(()) }
/// let mut child = Process::new(Greeter { name: "haha".into() }).name("greeter").start()?;
/// assert_eq!(child.join()?, "hello from haha in greeter");
/// # Ok(()) }
/// ```
pub trait Run {
    /// What `run` returns; it travels back to the parent's [`Child::join`].
    type Output;

    /// The child's work.
    fn run(self) -> Self::Output;
}

impl<F: FnOnce() -> R, R> Run for F {
    type Output = R;

    fn run(self) -> R {
        self()
    }
}

/// A process to start: the code it runs and its settings. [`start`](Process::start) makes
/// it real.
pub struct Process<T> {
    task: T,
    name: Option<String>,
    daemon: bool,
    /// `None`: the default (see [`StartMethod`]).
    method: Option<StartMethod>,
    /// How to make the task travel to a fresh process; `None` for a closure, which only
    /// `fork` can run.
    portable: Option<Portable<T>>,
}

impl<T> fmt::Debug for Process<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl<T: Run> Process<T> {
    /// A process that will run `task` (a closure, or any [`Run`] type).
    ///
    /// What the closure captures goes with it: a [`Connection`] moved in
    /// belongs to the child and is closed in the parent once the child starts; one the
    /// parent keeps is closed in the child.
    pub fn new(task: T) -> Process<T> {
        Process {
            task,
            name: None,
            daemon: false,
            method: None,
            portable: None,
        }
    }

    /// Names the process (default: `Process-N`, or `Process-N:M` in a child).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the process a daemon: it is killed when its parent dies, even when the parent
    /// is killed with `SIGKILL`, and it gets `SIGTERM` when the parent exits normally.
    /// Daemons may not start children of their own.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Chooses how the child is made (default: see [`StartMethod`]). A closure can only be
    /// forked; [`Process::run_fn`] processes can use every method.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }
}

/// A started child process: wait for it, signal it, and get its closure's return value.
///
/// Dropping the handle does not stop the child; a dropped child that ends is reaped by the
/// next [`Process::start`] or [`active_children`] call, or at exit, so no zombie lingers.
pub struct Child<R> {
    record: Arc<ChildRecord>,
    ctl: Connection,
    received: Received<R>,
}

/// What came back from the child so far.
enum Received<R> {
    Nothing,
    Outcome(Outcome<R>),
    /// The child closed its end without sending a value (it exited or was killed).
    Closed,
    /// The value was handed out by an earlier `join`.
    Taken,
}

impl<R> fmt::Debug for Child<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.record.pid)
            .field("name", &self.record.name)
            .field("daemon", &self.record.daemon)
            .field("exit_code", &self.exit_code())
            .finish()
    }
}

impl<R> Child<R> {
    /// The child's process id.
    pub fn pid(&self) -> Pid {
        Pid::from_sys(self.record.pid)
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The child's sentinel, Python's `Process.sentinel`: a descriptor (the child's pidfd)
    /// that becomes readable when the child ends. [`connection::wait`](crate::connection::wait)
    /// takes the child itself.
    pub fn sentinel(&self) -> std::os::fd::BorrowedFd<'_> {
        self.record.sentinel()
    }

    /// Whether the child is a daemon.
    pub fn is_daemon(&self) -> bool {
        self.record.daemon
    }

    /// The child's pidfd, readable once it has ended (for the pool's helper, which waits
    /// for its workers and its orders at once).
    pub(crate) fn pidfd(&self) -> std::os::fd::RawFd {
        self.record.pidfd()
    }

    /// Whether the child is still running. A child that has ended is reaped by this call.
    pub fn is_alive(&self) -> bool {
        matches!(self.record.try_reap(), Ok(None))
    }

    /// How the child ended, in Python's `exitcode` convention: `None` while it runs, 0 after
    /// its closure returned, 1 after a panic, `-N` when signal `N` killed it.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_status().map(ExitStatus::code)
    }

    /// How the child ended, or `None` while it runs.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.record.try_reap().ok().flatten()
    }

    /// Asks the child to stop with `SIGTERM`, like Python's `terminate()`. The child's
    /// cleanup code does not run unless it handles the signal. A child that already ended
    /// is left as it is.
    ///
    /// # Errors
    /// [`Error::Io`] if the signal cannot be sent.
    pub fn terminate(&self) -> Result<()> {
        self.record.signal(Signal::TERM)
    }

    /// Kills the child with `SIGKILL`.
    ///
    /// # Errors
    /// [`Error::Io`] if the signal cannot be sent.
    pub fn kill(&self) -> Result<()> {
        self.record.signal(Signal::KILL)
    }

    /// Sends `sig` to the child (never to another process that reused its pid).
    ///
    /// # Errors
    /// [`Error::Io`] if the signal cannot be sent.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        self.record.signal(sig)
    }
}

impl<R: DeserializeOwned> Child<R> {
    fn new(record: Arc<ChildRecord>, ctl: Connection) -> Child<R> {
        Child {
            record,
            ctl,
            received: Received::Nothing,
        }
    }

    /// Waits for the child to end and returns what its closure returned.
    ///
    /// # Errors
    /// - [`Error::Panicked`] with the panic's message when the closure panicked;
    /// - [`Error::Signaled`] when a signal killed the child;
    /// - [`Error::Exited`] when it exited (`std::process::exit`) without returning;
    /// - [`Error::Codec`] when the returned value could not be encoded in the child or
    ///   decoded here;
    /// - [`Error::InvalidState`] when an earlier `join` already took the value.
    pub fn join(&mut self) -> Result<R> {
        match self.join_until(Deadline::NEVER)? {
            Some(r) => Ok(r),
            None => unreachable!("an unlimited join returns only when the child has ended"),
        }
    }

    /// Returns the closure's value if the child has ended, without waiting.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] while the child runs (the value, when it comes, is kept for a
    /// later join); otherwise as [`join`](Self::join).
    pub fn try_join(&mut self) -> Result<R> {
        self.join_until(Deadline::now())?.ok_or(Error::WouldBlock)
    }

    /// Waits at most `timeout` for the child to end, like Python's `join(timeout)`. A
    /// timeout too large to represent waits forever.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the child still runs at the end (the value, when it comes,
    /// is kept for a later join); otherwise as [`join`](Self::join).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R> {
        self.join_until(Deadline::after(timeout))?
            .ok_or(Error::Timeout)
    }

    /// Waits until `deadline` for the child to end: one limit across several calls.
    ///
    /// # Errors
    /// As [`join_timeout`](Self::join_timeout).
    pub fn join_deadline(&mut self, deadline: Instant) -> Result<R> {
        self.join_until(Deadline::at(deadline))?
            .ok_or(Error::Timeout)
    }

    /// Joins with `deadline`; `Ok(None)` when the child still runs when it passes.
    fn join_until(&mut self, deadline: Deadline) -> Result<Option<R>> {
        let status = loop {
            if let Some(status) = self.record.try_reap()? {
                break status;
            }
            let watch_ctl = matches!(self.received, Received::Nothing);
            let mut fds = vec![self.record.pidfd()];
            if watch_ctl {
                fds.push(std::os::fd::AsRawFd::as_raw_fd(&self.ctl));
            }
            let ready = wait_readable(&fds, deadline)?;
            if watch_ctl && ready[1] {
                self.receive();
            }
            if !ready.iter().any(|&r| r) && deadline.has_passed() {
                return Ok(None);
            }
        };
        if matches!(self.received, Received::Nothing) && self.ctl.poll(Some(Duration::ZERO))? {
            self.receive();
        }
        match std::mem::replace(&mut self.received, Received::Taken) {
            Received::Outcome(Outcome::Returned(r)) => Ok(Some(r)),
            Received::Outcome(Outcome::Panicked { message, location }) => {
                Err(Error::Panicked { message, location })
            }
            Received::Outcome(Outcome::Unencodable(msg)) => Err(Error::codec(msg)),
            Received::Outcome(Outcome::Refused(why)) => Err(Error::InvalidState(why)),
            Received::Taken => Err(Error::InvalidState(
                "the child's value was already taken by an earlier join".into(),
            )),
            Received::Nothing | Received::Closed => Err(match status {
                ExitStatus::Signaled(sig) => Error::Signaled(sig),
                ExitStatus::Exited(code) => Error::Exited(code),
            }),
        }
    }

    /// Reads the child's report (its whole message, or the end of its connection).
    fn receive(&mut self) {
        self.received = match self.ctl.recv::<Outcome<R>>() {
            Ok(outcome) => Received::Outcome(outcome),
            // The whole report arrived but is not an `Outcome<R>` here (a type the codec
            // can encode but not decode, such as `serde_json::Value` under postcard).
            Err(Error::Codec(msg)) => Received::Outcome(Outcome::Unencodable(format!(
                "the child's value arrived but cannot be decoded: {msg}"
            ))),
            // EOF, or a child killed mid-report: no value; the exit status tells why.
            Err(_) => Received::Closed,
        };
    }
}

impl<R> Drop for Child<R> {
    fn drop(&mut self) {
        // A child that has ended is reaped now; one still running stays in the registry and
        // is reaped later (see the type's docs).
        let _ = self.record.try_reap();
    }
}

/// Takes over this process if it was started as a child of this program by
/// [`StartMethod::Spawn`] or as its forkserver, and never returns then; does nothing in any
/// other process.
///
/// Not needed where a program links this crate normally: the same code runs before `main`
/// by itself (a constructor), which is what lets a plain `#[test]` or a `#[tokio::main]`
/// program start `run_fn` children with no setup. Call it as the first line of `main`
/// only where constructors do not run; `start` says so when that is the case.
pub fn init() {
    entry::boot();
}

/// The number of CPUs this process may use, like Python's `multiprocessing.cpu_count()`
/// (at least 1).
///
/// ```
/// assert!(multiproc::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    crate::sys::process::cpu_count()
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Child<u8>>();
    assert_send::<Process<fn() -> u8>>();
};

/// Makes this process ignore `SIGINT` (a manager's server: Ctrl-C in the terminal goes to
/// the whole process group, and the server must outlive its owner's handling of it).
pub(crate) fn ignore_interrupts() {
    let _ = crate::sys::signal::ignore(Signal::INT.as_raw());
}
