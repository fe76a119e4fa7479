//! [`wait`]: which of several connections, listeners, children or sockets are ready,
//! Python's `multiprocessing.connection.wait`.
#![forbid(unsafe_code)]

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use super::{Connection, Listener, Readable};
use crate::deadline::Deadline;
use crate::error::Result;
use crate::fd::wait_readable;
use crate::process::Child;

/// Something [`wait`] can wait for: it is ready when its descriptor is readable.
pub trait Waitable {
    /// The descriptor that becomes readable when this object is ready.
    fn ready_fd(&self) -> BorrowedFd<'_>;

    /// Ready whatever the descriptor says (a broken connection answers at once).
    fn is_ready_now(&self) -> bool {
        false
    }
}

/// Waits until some of `objects` are ready, at most `timeout` (`None` waits as long as it
/// takes), and returns the indices of the ready ones, in input order; an empty list when
/// the time ran out.
///
/// Ready means: a connection has a message or its peer closed it (a receive will not
/// block); a listener has a client waiting; a child has ended; a socket is readable. Like
/// [`Connection::poll`], this is a question, not an attempt, so running out of time is an
/// empty answer rather than an error.
///
/// ```
/// use std::time::Duration;
/// use multiproc::connection::wait;
/// # fn main() -> multiproc::Result<()> {
/// let (mut a, b) = multiproc::pipe()?;
/// let (c, _d) = multiproc::pipe()?;
/// assert!(wait(&[&b, &c], Some(Duration::ZERO))?.is_empty());
/// a.send(&1)?;
/// assert_eq!(wait(&[&b, &c], None)?, [0]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) when a descriptor is unusable.
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let fds: Vec<RawFd> = objects.iter().map(|o| o.ready_fd().as_raw_fd()).collect();
    let now: Vec<bool> = objects.iter().map(|o| o.is_ready_now()).collect();
    let deadline = if now.contains(&true) {
        Deadline::now()
    } else {
        Deadline::from(timeout)
    };
    let readable = wait_readable(&fds, deadline)?;
    Ok((0..objects.len())
        .filter(|&i| readable[i] || now[i])
        .collect())
}

impl<D: Readable> Waitable for Connection<D> {
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }

    fn is_ready_now(&self) -> bool {
        self.broken.is_some()
    }
}

impl Waitable for Listener {
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

impl<R> Waitable for Child<R> {
    /// The child's sentinel (its pidfd), readable once it has ended.
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.sentinel()
    }
}

macro_rules! waitable_by_fd {
    ($($t:ty),*) => {$(
        impl Waitable for $t {
            fn ready_fd(&self) -> BorrowedFd<'_> {
                self.as_fd()
            }
        }
    )*};
}
waitable_by_fd!(UnixStream, UnixListener, TcpStream, TcpListener, OwnedFd);

impl Waitable for BorrowedFd<'_> {
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}
