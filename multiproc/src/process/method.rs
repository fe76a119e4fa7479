//! The default start method, and contexts: Python's `set_start_method`,
//! `get_start_method` and `get_context`.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::run_fn::RunFn;
use super::{Process, Run, StartMethod};
use crate::error::Error;
use crate::sys;

static DEFAULT: Mutex<Option<StartMethod>> = Mutex::new(None);

/// Pins the start method of every [`Process::run_fn`] process that does not choose its
/// own, or (`None`) goes back to the automatic choice: fork while this process has one
/// thread, the forkserver once it has more. Like Python's
/// `set_start_method(method, force=True)`; it may be called at any time.
///
/// Closures are always forked (only `fork` can carry what they capture), whatever the
/// default.
///
/// ```
/// use multiproc::{get_start_method, set_start_method, StartMethod};
///
/// set_start_method(Some(StartMethod::Spawn));
/// assert_eq!(get_start_method(), Some(StartMethod::Spawn));
/// set_start_method(None);
/// assert_eq!(get_start_method(), None);
/// ```
pub fn set_start_method(method: Option<StartMethod>) {
    *DEFAULT.lock().unwrap_or_else(|p| p.into_inner()) = method;
}

/// The start method pinned by [`set_start_method`], or `None` when the choice is automatic.
pub fn get_start_method() -> Option<StartMethod> {
    *DEFAULT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which method starts a process: its own choice, else (for a `run_fn` process) the pinned
/// default, else fork while this process has one thread and the forkserver once it has
/// more. A closure is forked unless it chose otherwise (and then `start` refuses it).
pub(super) fn resolve(own: Option<StartMethod>, portable: bool) -> StartMethod {
    if let Some(method) = own {
        return method;
    }
    if !portable {
        return StartMethod::Fork;
    }
    if let Some(method) = get_start_method() {
        return method;
    }
    match sys::process::thread_count() {
        Ok(1) => StartMethod::Fork,
        _ => StartMethod::Forkserver,
    }
}

/// The method a [`Process::run_fn`] process that chooses none gets now.
pub(crate) fn default_method() -> StartMethod {
    resolve(None, true)
}

/// A start method to make processes with, like Python's `get_context(method)`: every
/// process it makes uses that method, whatever the default.
///
/// Queues, locks, pipes and shared values do not depend on the method (they are shared
/// memory and sockets, not objects of a context), so a context only makes processes.
///
/// ```
/// use multiproc::{get_context, StartMethod};
///
/// fn square(x: i32) -> i32 {
///     x * x
/// }
/// # fn main() -> multiproc::Result<()> {
/// let ctx = get_context(StartMethod::Spawn);
/// assert_eq!(ctx.start_method(), StartMethod::Spawn);
/// let mut child = ctx.run_fn(square, 7).start()?;
/// assert_eq!(child.join()?, 49);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// The context of `method`.
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

impl Context {
    /// The method this context's processes use.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// [`Process::new`] with this context's method (so only a `Fork` context can start it).
    pub fn process<T: Run>(&self, task: T) -> Process<T> {
        Process::new(task).start_method(self.method)
    }

    /// [`Process::run_fn`] with this context's method.
    pub fn run_fn<A, R>(&self, f: fn(A) -> R, args: A) -> Process<RunFn<A, R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        Process::run_fn(f, args).start_method(self.method)
    }
}

impl StartMethod {
    /// Python's name of the method: `"fork"`, `"forkserver"` or `"spawn"`.
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Forkserver => "forkserver",
            StartMethod::Spawn => "spawn",
        }
    }

    /// Every method, the default-for-threads one first, as Python's
    /// `get_all_start_methods()` lists them (all three exist on Linux).
    pub const ALL: [StartMethod; 3] = [
        StartMethod::Forkserver,
        StartMethod::Spawn,
        StartMethod::Fork,
    ];
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StartMethod {
    type Err = Error;

    /// Parses Python's names.
    ///
    /// ```
    /// use multiproc::StartMethod;
    /// assert_eq!("spawn".parse::<StartMethod>().unwrap(), StartMethod::Spawn);
    /// assert!("vfork".parse::<StartMethod>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<StartMethod, Error> {
        StartMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown start method {s:?}: expected fork, forkserver or spawn"
                ))
            })
    }
}
