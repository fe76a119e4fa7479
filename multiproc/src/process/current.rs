//! Who this process is: [`current_process`] and [`parent_process`].
#![forbid(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::sys;

/// This process as the library sees it.
struct Identity {
    name: String,
    daemon: bool,
    /// Python's `_identity`: `[2]` for "Process-2", `[2, 1]` for its first child.
    path: Vec<u32>,
    children_started: u32,
    parent: Option<ParentProcess>,
}

static IDENTITY: Mutex<Option<Identity>> = Mutex::new(None);

fn identity() -> MutexGuard<'static, Option<Identity>> {
    IDENTITY.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_identity<T>(f: impl FnOnce(&mut Identity) -> T) -> T {
    let mut guard = identity();
    let id = guard.get_or_insert_with(|| Identity {
        name: "MainProcess".to_string(),
        daemon: false,
        path: Vec::new(),
        children_started: 0,
        parent: None,
    });
    f(id)
}

/// The name, pid and daemon flag of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    name: String,
    pid: Pid,
    daemon: bool,
}

impl ProcessInfo {
    pub(crate) fn new(name: String, pid: Pid, daemon: bool) -> ProcessInfo {
        ProcessInfo { name, pid, daemon }
    }

    /// The process's name: `"MainProcess"`, `"Process-1"`, `"Process-1:2"` or the name given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operating system's process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether the process is a daemon (it dies with its parent).
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }
}

/// The process this code runs in, like Python's `multiprocessing.current_process()`.
///
/// ```
/// let me = multiproc::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), multiproc::Pid::from(std::process::id()));
/// assert!(!me.is_daemon());
/// ```
pub fn current_process() -> ProcessInfo {
    with_identity(|id| ProcessInfo {
        name: id.name.clone(),
        pid: Pid::from_sys(sys::process::getpid()),
        daemon: id.daemon,
    })
}

/// The process that started this one, or `None` in a process not started by this
/// library, like Python's `multiprocessing.parent_process()`.
pub fn parent_process() -> Option<ParentProcess> {
    with_identity(|id| id.parent.clone())
}

/// The parent of this process, as seen from the child. It can tell whether the parent is
/// still alive, even if the parent was killed.
#[derive(Debug, Clone)]
pub struct ParentProcess {
    name: String,
    pid: Pid,
    /// Readable once the parent has exited; `None` if it was already gone when we looked.
    pidfd: Option<Arc<OwnedFd>>,
}

impl ParentProcess {
    /// The parent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parent's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether the parent is still running.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the system cannot be asked.
    pub fn is_alive(&self) -> Result<bool> {
        match self.wait_until(Deadline::now()) {
            Ok(()) => Ok(false),
            Err(Error::Timeout) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Waits for the parent to end.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the system cannot be asked.
    pub fn wait(&self) -> Result<()> {
        self.wait_until(Deadline::NEVER)
    }

    /// Returns `Ok` if the parent has ended, without waiting.
    ///
    /// # Errors
    /// [`Error::WouldBlock`](crate::Error::WouldBlock) while the parent runs;
    /// [`Error::Io`](crate::Error::Io) if the system cannot be asked.
    pub fn try_wait(&self) -> Result<()> {
        self.wait_until(Deadline::now()).map_err(|e| match e {
            Error::Timeout => Error::WouldBlock,
            other => other,
        })
    }

    /// Waits at most `timeout` for the parent to end. A timeout too large to represent
    /// waits forever.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout) when the parent still runs at the end;
    /// [`Error::Io`](crate::Error::Io) if the system cannot be asked.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(Deadline::after(timeout))
    }

    /// Waits until `deadline` for the parent to end.
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline(&self, deadline: Instant) -> Result<()> {
        self.wait_until(Deadline::at(deadline))
    }

    fn wait_until(&self, deadline: Deadline) -> Result<()> {
        let Some(fd) = &self.pidfd else {
            return Ok(());
        };
        if sys::fd::poll_readable(&[fd.as_raw_fd()], deadline.remaining())?[0] {
            Ok(())
        } else {
            Err(Error::Timeout)
        }
    }
}

/// Whether this process is a daemon (daemons may not start children).
pub(crate) fn is_daemon() -> bool {
    with_identity(|id| id.daemon)
}

/// Counts a new child of this process and returns its default name, `Process-N[:M...]`.
pub(crate) fn next_child_name() -> String {
    with_identity(|id| {
        id.children_started += 1;
        let mut path = id.path.clone();
        path.push(id.children_started);
        let parts: Vec<String> = path.iter().map(u32::to_string).collect();
        format!("Process-{}", parts.join(":"))
    })
}

/// In a new child, right after `fork`: becomes the named child of `parent_pid`.
pub(crate) fn become_child(name: &str, daemon: bool, parent_pid: i32) {
    let (parent_name, path) = last_child_lineage();
    become_started_child(name, daemon, parent_pid, parent_name, path);
}

/// In the parent, right after [`next_child_name`]: this process's name and the identity
/// path of the child just counted, for a child that does not inherit this memory.
pub(crate) fn last_child_lineage() -> (String, Vec<u32>) {
    with_identity(|id| {
        let mut path = id.path.clone();
        path.push(id.children_started);
        (id.name.clone(), path)
    })
}

/// In a new child (forked, re-executed or made by the forkserver): becomes the named child
/// of `parent_pid`, with the lineage its parent gave.
pub(crate) fn become_started_child(
    name: &str,
    daemon: bool,
    parent_pid: i32,
    parent_name: String,
    path: Vec<u32>,
) {
    let pidfd = sys::process::pidfd_open(parent_pid).ok().map(Arc::new);
    *identity() = Some(Identity {
        name: name.to_string(),
        daemon,
        path,
        children_started: 0,
        parent: Some(ParentProcess {
            name: parent_name,
            pid: Pid::from_sys(parent_pid),
            pidfd,
        }),
    });
}

/// Held across `fork` so the child never inherits this lock held by another thread.
pub(crate) fn lock_for_fork() -> MutexGuard<'static, impl Sized> {
    identity()
}
