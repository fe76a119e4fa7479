//! Waiting for descriptors to become readable: what `Connection::poll` and `Child::join`
//! (the child's pidfd beside its control connection) both wait with.
#![forbid(unsafe_code)]

use std::os::fd::RawFd;
use std::time::Duration;

use crate::deadline::Deadline;
use crate::error::Result;
use crate::raw::park;
use crate::sys;

/// Waits until `deadline` for some of `fds` to become readable, with a short yield-polling
/// spin first (see [`park::spin_until`]); one flag per descriptor. A deadline already passed
/// only looks.
pub(crate) fn wait_readable(fds: &[RawFd], deadline: Deadline) -> Result<Vec<bool>> {
    if deadline.has_passed() {
        return Ok(sys::fd::poll_readable(fds, Some(Duration::ZERO))?);
    }
    let mut ready = Vec::new();
    let mut failed = None;
    let spun = park::spin_until(
        || match sys::fd::poll_readable(fds, Some(Duration::ZERO)) {
            Ok(flags) => {
                let any = flags.iter().any(|&f| f);
                ready = flags;
                any
            }
            Err(e) => {
                failed = Some(e);
                true
            }
        },
        deadline,
    );
    if let Some(e) = failed {
        return Err(e.into());
    }
    if spun {
        return Ok(ready);
    }
    Ok(sys::fd::poll_readable(fds, deadline.remaining())?)
}
