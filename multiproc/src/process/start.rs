//! Start methods, and starting a child by `fork`.
//!
//! This is the one file of `process/` with `unsafe`: [`Process::start_unchecked`] lets a
//! caller that knows its other threads hold no lock fork anyway.
#![allow(unsafe_code)]

use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::children::{self, ChildRecord};
use super::{current, forkserver, method, spawn, Child, Process, Run};
use crate::connection::{pipe, Connection};
use crate::error::{Error, Result};
use crate::fd::registry;
use crate::signal::Signal;
use crate::sys;
use crate::sys::process::Forked;

/// How a child process is made.
///
/// Chosen per process with [`Process::start_method`], or for every [`Process::run_fn`]
/// process with [`set_start_method`](super::set_start_method). With neither, a closure is
/// forked and a `run_fn` process is forked while this process has one thread and made by
/// the forkserver once it has more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StartMethod {
    /// `fork(2)`: the child is a copy of the parent and runs the closure directly. The
    /// fastest, and the only method that runs a closure with captured state; sound only
    /// from a single-threaded parent.
    Fork,
    /// A single-threaded server process, started the `Spawn` way by the first such child,
    /// forks children on request; for [`Process::run_fn`] from a threaded program.
    Forkserver,
    /// The child is a fresh execution of this program that runs the function before
    /// `main`'s own code; for [`Process::run_fn`].
    Spawn,
}

/// What the child sends back over its control connection when its closure ends.
#[derive(Serialize, Deserialize)]
pub(crate) enum Outcome<R> {
    Returned(R),
    Panicked {
        message: String,
        location: Option<String>,
    },
    /// The closure returned, but its value could not be encoded.
    Unencodable(String),
    /// The child could not run the task at all (the message says why).
    Refused(String),
}

impl<T> Process<T>
where
    T: Run,
    T::Output: Serialize + DeserializeOwned,
{
    /// Starts the child and returns its handle.
    ///
    /// With [`StartMethod::Fork`] (a closure's only method) the process must have exactly
    /// one thread: after `fork` only the calling thread exists in the child, and a lock that
    /// another thread held (the allocator's, stdout's) would never be released there. A
    /// [`Process::run_fn`] process has no such limit (see [`StartMethod`]).
    ///
    /// # Errors
    /// - [`Error::InvalidState`] if a closure would be forked from a process with more than
    ///   one thread (the message names the alternatives: [`Process::run_fn`], starting
    ///   children before threads, or [`start_unchecked`](Self::start_unchecked)), if a
    ///   closure is given another start method than `Fork`, if this process is a daemon
    ///   (daemons may not have children, as in Python), or if this program cannot take
    ///   over a re-executed child before `main` (then call [`init`](super::init) first in
    ///   `main`).
    /// - [`Error::InvalidArgument`] if the function of a `run_fn` process does not live in
    ///   this program's executable.
    /// - [`Error::Codec`] if the argument of a `run_fn` process cannot be encoded.
    /// - [`Error::Io`] if the system cannot create the process.
    pub fn start(self) -> Result<Child<T::Output>> {
        self.start_with(|| match sys::process::fork_single_threaded()? {
            Ok(forked) => Ok(forked),
            Err(threads) => Err(Error::InvalidState(format!(
                "cannot fork: this process has {threads} threads, and after fork only the \
                 calling one would exist, possibly holding no lock another thread held; run a \
                 plain function instead, `Process::run_fn(f, args)`, which starts from any \
                 process (through the forkserver), start children before starting threads, or \
                 use the unsafe `start_unchecked` if no other thread can hold a lock the child \
                 needs"
            ))),
        })
    }

    /// Starts the child with `fork` even though this process may have other threads.
    ///
    /// # Safety
    /// No thread other than the caller may hold, at the moment of the fork, a lock that
    /// the child will take: the allocator's, stdout's, or any `Mutex` the closure or the code
    /// it calls uses. Such a lock would stay locked forever in the child.
    pub unsafe fn start_unchecked(self) -> Result<Child<T::Output>> {
        // SAFETY: the caller vouches for the other threads, as this function's contract says.
        self.start_with(|| Ok(unsafe { sys::process::fork() }?))
    }

    fn start_with(self, fork: impl FnOnce() -> Result<Forked>) -> Result<Child<T::Output>> {
        if current::is_daemon() {
            return Err(Error::InvalidState(
                "daemonic processes are not allowed to have children".into(),
            ));
        }
        let method = method::resolve(self.method, self.portable.is_some());
        if method != StartMethod::Fork {
            let Some(portable) = self.portable else {
                return Err(Error::InvalidState(format!(
                    "a closure (or other `Run` value) can only be started with \
                     StartMethod::Fork, not {method:?}: a fresh process cannot find what it \
                     holds; run a plain function with `Process::run_fn(f, args)` instead"
                )));
            };
            return spawn::start(method, self.task, portable, self.name, self.daemon);
        }
        children::reap_finished();
        // Every child counts toward the default names, named or not, as in Python.
        let default_name = current::next_child_name();
        let name = self.name.unwrap_or(default_name);
        let daemon = self.daemon;
        let (mut ctl_parent, ctl_child) = pipe()?;
        let parent_pid = sys::process::getpid();
        // What the parent buffered would otherwise be written twice, once by each process.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();

        let (forked, hand_over) = {
            let registry = registry::lock_for_fork();
            // With no library descriptor but the control pair, the child has nothing to
            // detach: it runs at once instead of waiting for the list of what it keeps.
            let hand_over = !registry.holds_only(&[ctl_parent.as_raw_fd(), ctl_child.as_raw_fd()]);
            let _identity = current::lock_for_fork();
            let _children = children::lock_for_fork();
            let _server = forkserver::lock_for_fork();
            (fork()?, hand_over)
        };
        match forked {
            Forked::Child => {
                drop(ctl_parent);
                child_main(self.task, ctl_child, &name, daemon, parent_pid, hand_over)
            }
            Forked::Parent(pid) => {
                drop(ctl_child);
                // The parent drops the task it moved into the child: the connections it owned
                // report themselves, and only those stay open in the child.
                let captured = registry::drop_recording(self.task);
                let record = match ChildRecord::new(pid, name, daemon) {
                    Ok(record) => record,
                    Err(e) => {
                        // A child that does not wait for a hand-over already runs: stop it,
                        // since `start` fails. It is ours and unreaped, so its pid is too.
                        let _ = sys::signal::kill(pid, Signal::KILL.as_raw());
                        let _ = sys::process::wait_exit(pid, true);
                        return Err(e);
                    }
                };
                children::register(record.clone());
                if hand_over {
                    ctl_parent.send(&captured)?;
                }
                Ok(Child::new(record, ctl_parent))
            }
        }
    }
}

/// Where the location of a panic in the child is kept for the parent.
static PANIC_LOCATION: Mutex<Option<String>> = Mutex::new(None);

/// The child's life: adopt the captured connections (when the parent hands them over),
/// run the task, finish its own children, report, exit.
fn child_main<T>(
    task: T,
    mut ctl: Connection,
    name: &str,
    daemon: bool,
    parent_pid: i32,
    hand_over: bool,
) -> !
where
    T: Run,
    T::Output: Serialize,
{
    if daemon {
        die_with_parent(parent_pid);
    }
    children::forget_all();
    forkserver::forget_in_child();
    current::become_child(name, daemon, parent_pid);
    if hand_over {
        let mut keep: Vec<RawFd> = match ctl.recv() {
            Ok(keep) => keep,
            // The parent died or failed between fork and hand-over: nothing to run for.
            Err(_) => sys::process::exit_now(1),
        };
        keep.push(ctl.as_raw_fd());
        if registry::keep_only(&keep).is_err() {
            sys::process::exit_now(1);
        }
    }

    run_and_report(task, ctl)
}

/// Arranges for this child to be killed when its parent (`parent_pid`) dies, even by
/// `SIGKILL`; exits at once if the parent already died.
pub(super) fn die_with_parent(parent_pid: i32) {
    if sys::process::set_parent_death_signal(Signal::KILL.as_raw()).is_err()
        || sys::process::getppid() != parent_pid
    {
        sys::process::exit_now(1);
    }
}

/// Tells the parent that the task cannot run (its `join` gets `InvalidState` with `why`),
/// and exits with code 1.
pub(super) fn refuse(mut ctl: Connection, why: String) -> ! {
    let _ = ctl.send(&Outcome::<()>::Refused(why));
    sys::process::exit_now(1)
}

/// Runs the task, sends its outcome (value or panic) to the parent, and exits: 0 after a
/// return, 1 after a panic.
pub(super) fn run_and_report<T>(task: T, mut ctl: Connection) -> !
where
    T: Run,
    T::Output: Serialize,
{
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if let Some(loc) = info.location() {
            *PANIC_LOCATION.lock().unwrap_or_else(|p| p.into_inner()) = Some(loc.to_string());
        }
        previous_hook(info);
    }));

    let (outcome, code) = match panic::catch_unwind(AssertUnwindSafe(|| task.run())) {
        Ok(value) => (Outcome::Returned(value), 0),
        Err(payload) => {
            let message = crate::error::panic_message(&*payload);
            let location = PANIC_LOCATION
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            (Outcome::Panicked { message, location }, 1)
        }
    };
    // The same end as the parent's normal exit: terminate the daemons, wait for the others.
    children::finish_children();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let sent = match ctl.send(&outcome) {
        Err(Error::Codec(msg)) => ctl
            .send(&Outcome::<()>::Unencodable(msg.to_string()))
            .map(|()| 1),
        other => other.map(|()| code),
    };
    sys::process::exit_now(sent.unwrap_or(1))
}
