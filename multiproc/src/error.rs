//! The crate's one error type, and the typed error of a failed put.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;

use crate::process::Signal;

/// A specialised `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `multiproc`, one variant per case a caller can act on.
///
/// Display texts are lowercase and carry no trailing period.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every copy of the peer end of a connection is closed and no message is left.
    #[error("end of file: every copy of the peer end is closed")]
    Eof,
    /// A blocking call with a time limit ran out of time.
    #[error("timed out")]
    Timeout,
    /// A non-blocking or timed get found nothing to take.
    #[error("empty")]
    Empty,
    /// The object was closed (a queue after `close`, a pool after `close`).
    #[error("closed")]
    Closed,
    /// `recv_bytes_max` met a message longer than its limit. The message was discarded and
    /// the connection stays usable.
    #[error("message of {len} bytes is longer than the limit of {max} bytes")]
    MessageTooLong {
        /// Length of the message that was refused.
        len: u64,
        /// The limit the caller gave.
        max: u64,
    },
    /// `recv_bytes_into` got a message longer than the buffer; the whole message is here.
    #[error("buffer too short: the message has {} bytes", message.len())]
    BufferTooShort {
        /// The complete message, consumed from the connection.
        message: Vec<u8>,
    },
    /// The peer sent bytes that are not a valid frame or message (a truncated frame when it
    /// died mid-message, an impossible length, ...).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An authkey handshake failed.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The child's closure panicked.
    #[error("child panicked: {message}")]
    Panicked {
        /// The panic message (the payload when it was a string).
        message: String,
        /// Where the panic happened, `file:line:column`, when known.
        location: Option<String>,
    },
    /// The child was killed by a signal.
    #[error("child killed by signal {0}")]
    Signaled(Signal),
    /// The child exited with this code without handing back a value (it called `exit`).
    #[error("child exited with code {0} before returning a value")]
    Exited(i32),
    /// A pool worker died while it held this task.
    #[error("worker died: {0}")]
    WorkerDied(String),
    /// A process died while it held a lock; the guard lets the caller repair the data.
    #[error("the previous owner died while holding the lock")]
    OwnerDied,
    /// The call is not allowed in the object's current state (the message says which).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// An argument is out of its domain (the message says which).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The codec could not encode or decode a value.
    #[error("codec error: {0}")]
    Codec(String),
    /// The operating system refused a call.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// `true` for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }

    /// `true` for [`Error::Eof`].
    pub fn is_eof(&self) -> bool {
        matches!(self, Error::Eof)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io(inner) => inner.kind(),
            Error::Eof => io::ErrorKind::UnexpectedEof,
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::Empty | Error::Closed => io::ErrorKind::WouldBlock,
            Error::Protocol(_) | Error::Codec(_) | Error::MessageTooLong { .. } => {
                io::ErrorKind::InvalidData
            }
            Error::InvalidArgument(_) => io::ErrorKind::InvalidInput,
            Error::Authentication(_) => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        };
        match e {
            Error::Io(inner) => inner,
            other => io::Error::new(kind, other),
        }
    }
}

/// A put that did not happen; the value comes back so nothing is lost.
pub enum PutError<T> {
    /// The queue was full (a `try_put`, or a `put_timeout` that ran out of time).
    Full(T),
    /// The queue was closed.
    Closed(T),
    /// The value could not be encoded, or the system refused; the value is given back.
    Failed(T, Error),
}

impl<T> PutError<T> {
    /// The value that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v) | PutError::Closed(v) | PutError::Failed(v, _) => v,
        }
    }

    /// `true` when the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, PutError::Full(_))
    }

    /// `true` when the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, PutError::Closed(_))
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Failed(_, e) => write!(f, "Failed(.., {e:?})"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("putting on a full queue"),
            PutError::Closed(_) => f.write_str("putting on a closed queue"),
            PutError::Failed(_, e) => write!(f, "put failed: {e}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

impl<T> From<PutError<T>> for Error {
    fn from(e: PutError<T>) -> Error {
        match e {
            PutError::Full(_) => Error::Timeout,
            PutError::Closed(_) => Error::Closed,
            PutError::Failed(_, e) => e,
        }
    }
}
