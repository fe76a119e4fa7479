//! [`Child::join_async`] (feature `tokio`): awaits the child's pidfd (readable once it has
//! ended) and its report connection (a report too large for the socket buffer must be read
//! before the child can end), registered with the task's tokio reactor, so a task awaiting
//! a child holds no thread.
#![forbid(unsafe_code)]

use std::os::fd::AsFd;

use serde::de::DeserializeOwned;
use tokio::io::Interest;

use super::{Child, Received};
use crate::error::{Error, Result};
use crate::reactor::register;
use crate::sys;

impl<R: DeserializeOwned> Child<R> {
    /// Awaits the child's end and returns what its closure returned: the async
    /// [`Child::join`]. Dropped before it returns, it leaves the child joinable (a report
    /// read meanwhile is kept for the next join).
    ///
    /// # Errors
    /// As [`Child::join`]; [`Error::InvalidState`] outside a tokio runtime.
    pub async fn join_async(&mut self) -> Result<R> {
        let pidfd = register(
            sys::fd::dup(self.record.pidfd_borrowed())?,
            Interest::READABLE,
        )?;
        let mut ctl = None;
        loop {
            match self.try_join() {
                Err(Error::WouldBlock) => {}
                done => return done,
            }
            if matches!(self.received, Received::Nothing) {
                if ctl.is_none() {
                    ctl = Some(register(
                        sys::fd::dup(self.ctl.as_fd())?,
                        Interest::READABLE,
                    )?);
                    continue;
                }
            } else {
                ctl = None;
            }
            // Look again at least every liveness period: a child of the forkserver has
            // its end reported by the server, which may come after the pidfd's event.
            let wait = async {
                match &ctl {
                    Some(ctl) => tokio::select! {
                        ready = pidfd.readable() => ready?.clear_ready(),
                        ready = ctl.readable() => ready?.clear_ready(),
                    },
                    None => pidfd.readable().await?.clear_ready(),
                }
                Ok::<(), Error>(())
            };
            if let Ok(waited) = tokio::time::timeout(crate::raw::LIVENESS_PERIOD, wait).await {
                waited?;
            }
        }
    }
}
