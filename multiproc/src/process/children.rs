//! The children this process started and has not reaped yet: [`active_children`], reaping
//! of dropped handles, and what happens to children when this process exits.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use super::current::ProcessInfo;
use super::forkserver;
use super::status::ExitStatus;
use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::signal::Signal;
use crate::sys;

/// What a [`Child`](super::Child) handle and the registry share about one child.
#[derive(Debug)]
pub(crate) struct ChildRecord {
    pub(crate) pid: i32,
    pub(crate) name: String,
    pub(crate) daemon: bool,
    /// Readable once the child has exited; signals sent through it never reach a recycled pid.
    pidfd: OwnedFd,
    /// The generation of the forkserver that made (and reaps) the child; `None` for a child
    /// of this process.
    server: Option<u64>,
    status: Mutex<Option<ExitStatus>>,
}

impl ChildRecord {
    pub(crate) fn new(pid: i32, name: String, daemon: bool) -> Result<Arc<ChildRecord>> {
        let pidfd = sys::process::pidfd_open(pid)?;
        Ok(Arc::new(ChildRecord {
            pid,
            name,
            daemon,
            pidfd,
            server: None,
            status: Mutex::new(None),
        }))
    }

    /// The pidfd, to duplicate for an async wait.
    #[cfg(feature = "tokio")]
    pub(crate) fn pidfd_borrowed(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// A child made by the forkserver of generation `server`, which reports its exit.
    pub(crate) fn served(
        pid: i32,
        pidfd: OwnedFd,
        server: u64,
        name: String,
        daemon: bool,
    ) -> Arc<ChildRecord> {
        Arc::new(ChildRecord {
            pid,
            name,
            daemon,
            pidfd,
            server: Some(server),
            status: Mutex::new(None),
        })
    }

    pub(crate) fn pidfd(&self) -> std::os::fd::RawFd {
        self.pidfd.as_raw_fd()
    }

    pub(crate) fn sentinel(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Reaps the child if it has exited; `None` while it runs.
    pub(crate) fn try_reap(&self) -> Result<Option<ExitStatus>> {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if status.is_none() {
            let exit = match self.server {
                None => sys::process::wait_exit(self.pid, false).map_err(|e| {
                    Error::InvalidState(format!(
                        "cannot reap child {}: {e} (did other code wait for it?)",
                        self.pid
                    ))
                })?,
                Some(server) => forkserver::exit_status(self.pid, self.pidfd.as_fd(), server)?,
            };
            *status = exit.map(ExitStatus::from_sys);
        }
        Ok(*status)
    }

    /// Waits for the child to exit and reaps it.
    pub(crate) fn wait(&self) -> Result<Option<ExitStatus>> {
        if let Some(done) = self.try_reap()? {
            return Ok(Some(done));
        }
        if sys::fd::poll_readable(&[self.pidfd()], None)?[0] {
            return self.try_reap();
        }
        Ok(None)
    }

    /// Sends `sig`; a child that already exited is not an error (there is nothing to stop).
    pub(crate) fn signal(&self, sig: Signal) -> Result<()> {
        match sys::process::pidfd_send_signal(self.pidfd.as_fd(), sig.as_raw()) {
            Err(e) if sys::process::is_gone(&e) => Ok(()),
            other => Ok(other?),
        }
    }

    fn info(&self) -> ProcessInfo {
        ProcessInfo::new(self.name.clone(), Pid::from_sys(self.pid), self.daemon)
    }
}

static CHILDREN: Mutex<Vec<Arc<ChildRecord>>> = Mutex::new(Vec::new());

fn children() -> MutexGuard<'static, Vec<Arc<ChildRecord>>> {
    CHILDREN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Adds a started child; the first call also arranges the exit-time cleanup.
pub(crate) fn register(record: Arc<ChildRecord>) {
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| sys::process::at_exit(finish_children_at_exit));
    children().push(record);
}

/// Reaps every child that has exited and forgets it; children whose handle is gone are
/// reaped here, so no zombie outlives the next call.
pub(crate) fn reap_finished() {
    children().retain(|c| matches!(c.try_reap(), Ok(None)));
}

/// In a new child: the parent's children are not ours.
pub(crate) fn forget_all() {
    children().clear();
}

/// Held across `fork` so the child never inherits this lock held by another thread.
pub(crate) fn lock_for_fork() -> MutexGuard<'static, impl Sized> {
    children()
}

/// The children of this process that are still running, like Python's
/// `multiprocessing.active_children()`. Calling it reaps the children that have ended.
///
/// ```
/// assert!(multiproc::active_children().is_empty());
/// ```
pub fn active_children() -> Vec<ProcessInfo> {
    reap_finished();
    children().iter().map(|c| c.info()).collect()
}

/// Runs when the process exits normally (`exit`, or returning from `main`).
extern "C" fn finish_children_at_exit() {
    finish_children();
}

/// What a process does with its children when it ends normally, as Python's
/// `multiprocessing` does: daemon children get `SIGTERM`, then every child is waited for.
/// The parent runs it at exit; a child runs it when its closure has returned or panicked,
/// before it reports to its own parent.
pub(crate) fn finish_children() {
    let list: Vec<Arc<ChildRecord>> = std::mem::take(&mut *children());
    for child in list.iter().filter(|c| c.daemon) {
        let _ = child.signal(Signal::TERM);
    }
    for child in &list {
        let _ = child.wait();
    }
}
