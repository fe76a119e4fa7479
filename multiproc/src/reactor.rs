//! Registering descriptors with the tokio reactor of the running task (feature `tokio`):
//! the one place the async forms of pipes, listeners, children and shared objects turn a
//! descriptor into something a task can await.
#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::{Error, Result};

/// The error of an async form polled outside a tokio runtime (where tokio would panic).
pub(crate) fn no_runtime() -> Error {
    Error::InvalidState("an async form of multiproc was polled outside a tokio runtime".into())
}

/// Whether the calling task runs under a tokio runtime.
pub(crate) fn in_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Registers `fd` (a duplicate owned for the wait) with the reactor of the tokio runtime
/// this task runs under; a clear error outside one, never tokio's panic.
///
/// # Errors
/// [`Error::InvalidState`] outside a tokio runtime; [`Error::Io`] when the reactor refuses
/// the descriptor.
pub(crate) fn register(fd: OwnedFd, interest: Interest) -> Result<AsyncFd<OwnedFd>> {
    if !in_runtime() {
        return Err(no_runtime());
    }
    Ok(crate::sys::fd::register_async(fd, interest)?)
}
