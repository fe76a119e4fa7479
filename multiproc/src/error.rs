//! Every error type of the crate: [`Error`], and the typed errors of the calls whose failure
//! hands something back ([`PutError`] gives the value back, [`LockError`] the guard of a
//! lock whose owner died). Each converts into [`Error`] variant for same-named variant, so
//! `?` keeps the meaning.
//!
//! The outcome rule (see `docs/decisions.md`): a call that cannot go on is always an `Err`;
//! a `try_` form that would block says so with the family's "would block" variant
//! ([`Error::Empty`], [`Error::Full`], [`Error::WouldBlock`]), a `_timeout` or `_deadline`
//! form that ran out of time says [`Error::Timeout`].
#![forbid(unsafe_code)]

use std::fmt;
use std::io;

use crate::signal::Signal;

/// A specialised `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The result of acquiring a lock: the guard, or why not ([`LockError`]).
pub type LockResult<G> = std::result::Result<G, LockError<G>>;

/// The result of a condition wait: the relocked guard, or why the wait ended otherwise
/// ([`WaitError`], which carries the relocked guard too).
pub type WaitResult<G> = std::result::Result<G, WaitError<G>>;

/// The source error that [`Error::Codec`] and [`Error::Protocol`] keep: the codec's own
/// error, or a message (a `String` converts with `.into()`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `multiproc`, one variant per case a caller can act on.
///
/// Display texts are lowercase and carry no trailing period.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every copy of the peer end of a connection is closed and no message is left.
    #[error("end of file: every copy of the peer end is closed")]
    Eof,
    /// A `_timeout` or `_deadline` call ran out of time.
    #[error("timed out")]
    Timeout,
    /// A `try_` get or receive found nothing to take.
    #[error("empty")]
    Empty,
    /// A `try_` put found no room.
    #[error("full")]
    Full,
    /// A `try_` call (lock, acquire, join, wait) would have had to wait.
    #[error("operation would block")]
    WouldBlock,
    /// A barrier was aborted, reset while waited on, timed out for another party, or lost a
    /// party that died inside it (Python's `BrokenBarrierError`).
    #[error("the barrier is broken")]
    BrokenBarrier,
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
    Protocol(#[source] BoxError),
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
    /// A pool task's function returned `Err`; this is that error's text.
    #[error("task failed: {0}")]
    TaskFailed(String),
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
    /// A manager's server is gone: it was shut down, or it died. Every later call through
    /// its proxies fails the same way, at once.
    #[error("{0}")]
    ManagerGone(String),
    /// An object served by a manager failed (a custom type's method returned an error).
    #[error("the shared object failed: {0}")]
    Remote(String),
    /// The codec could not encode or decode a value.
    #[error("codec error: {0}")]
    Codec(#[source] BoxError),
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

    /// `true` for the "would block" answers of the `try_` forms: [`Error::Empty`],
    /// [`Error::Full`], [`Error::WouldBlock`].
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::Empty | Error::Full | Error::WouldBlock)
    }

    /// [`Error::Codec`] with `source` kept as the error's source.
    pub(crate) fn codec(source: impl Into<BoxError>) -> Error {
        Error::Codec(source.into())
    }

    /// [`Error::Protocol`] with `source` (often just a message) kept as the error's source.
    pub(crate) fn protocol(source: impl Into<BoxError>) -> Error {
        Error::Protocol(source.into())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io(inner) => inner.kind(),
            Error::Eof => io::ErrorKind::UnexpectedEof,
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::Empty | Error::Full | Error::WouldBlock => io::ErrorKind::WouldBlock,
            Error::Closed | Error::ManagerGone(_) => io::ErrorKind::BrokenPipe,
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
    /// A `try_put` found the queue full.
    Full(T),
    /// A `put_timeout` or `put_deadline` found the queue full until its time ran out.
    Timeout(T),
    /// The queue was closed.
    Closed(T),
    /// The value could not be encoded, or the system refused; the value is given back.
    Failed(T, Error),
}

impl<T> PutError<T> {
    /// The value that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v)
            | PutError::Timeout(v)
            | PutError::Closed(v)
            | PutError::Failed(v, _) => v,
        }
    }

    /// `true` when the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, PutError::Full(_))
    }

    /// `true` when a timed put ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, PutError::Timeout(_))
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
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Failed(_, e) => write!(f, "Failed(.., {e:?})"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("putting on a full queue"),
            PutError::Timeout(_) => f.write_str("timed out putting on a full queue"),
            PutError::Closed(_) => f.write_str("putting on a closed queue"),
            PutError::Failed(_, e) => write!(f, "put failed: {e}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PutError::Failed(_, e) => Some(e),
            _ => None,
        }
    }
}

impl<T> From<PutError<T>> for Error {
    fn from(e: PutError<T>) -> Error {
        match e {
            PutError::Full(_) => Error::Full,
            PutError::Timeout(_) => Error::Timeout,
            PutError::Closed(_) => Error::Closed,
            PutError::Failed(_, e) => e,
        }
    }
}

/// Why a lock acquisition did not simply succeed.
///
/// `OwnerDied` carries the guard: the lock *is* held, but the process (or thread) that held
/// it before died inside it, so the data it guards may be half-updated. Repair it, then go on
/// with [`LockError::into_inner`], as with [`std::sync::PoisonError`]. Only the first
/// locker after the death is told; the lock is not poisoned for later ones.
///
/// `?` turns it into [`Error::OwnerDied`], [`Error::WouldBlock`] or [`Error::Timeout`]
/// (dropping the guard, which releases the lock).
pub enum LockError<G> {
    /// The previous holder died holding the lock; the caller holds it now.
    OwnerDied(G),
    /// A `try_` form found the lock held.
    WouldBlock,
    /// A `_timeout` or `_deadline` form found the lock held until its time ran out.
    Timeout,
}

impl<G> LockError<G> {
    /// The guard, if the lock was acquired (after an owner's death).
    pub fn into_inner(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            LockError::WouldBlock | LockError::Timeout => None,
        }
    }

    /// `true` for [`LockError::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }

    /// `true` for [`LockError::WouldBlock`].
    pub fn is_would_block(&self) -> bool {
        matches!(self, LockError::WouldBlock)
    }

    /// `true` for [`LockError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, LockError::Timeout)
    }

    /// The same outcome with the guard mapped by `f`.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::WouldBlock => LockError::WouldBlock,
            LockError::Timeout => LockError::Timeout,
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
            LockError::Timeout => f.write_str("Timeout"),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => {
                f.write_str("the previous owner died while holding the lock")
            }
            LockError::WouldBlock => f.write_str("the lock is held"),
            LockError::Timeout => f.write_str("timed out waiting for the lock"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

impl<G> From<LockError<G>> for Error {
    fn from(e: LockError<G>) -> Error {
        match e {
            LockError::OwnerDied(_) => Error::OwnerDied,
            LockError::WouldBlock => Error::WouldBlock,
            LockError::Timeout => Error::Timeout,
        }
    }
}

/// How a guard-less `acquire` took its lock (`Lock::acquire`, `RLock::acquire` and their
/// `try_` / `_timeout` / `_deadline` forms, Python's `acquire()`).
///
/// Either way the caller **holds** the lock and releases it by hand. `#[must_use]`, so a
/// previous owner's death cannot go unnoticed, and being an `Ok` value, `?` cannot leave a
/// held lock behind an `Err`.
#[must_use = "the lock is held either way; `OwnerDied` means the data it guards may be half-updated"]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acquired {
    /// The lock was free, or handed over by a release.
    Clean,
    /// The previous holder died holding the lock; the caller holds it now, and the data it
    /// guards may be half-updated.
    OwnerDied,
}

impl Acquired {
    /// `true` for [`Acquired::OwnerDied`].
    pub fn is_owner_died(self) -> bool {
        self == Acquired::OwnerDied
    }
}

/// Why a condition wait did not end with a notification. Either way the condition's lock
/// has been taken back and its guard is here: the caller holds the lock.
pub enum WaitError<G> {
    /// A `_timeout` or `_deadline` wait ran out of time (a `wait_while` form: with the
    /// condition still true).
    Timeout(G),
    /// A process or thread died holding the lock while this one waited; the data it guards
    /// may be half-updated. Reported even when the time also ran out.
    OwnerDied(G),
}

impl<G> WaitError<G> {
    /// The guard of the relocked lock.
    pub fn into_inner(self) -> G {
        match self {
            WaitError::Timeout(g) | WaitError::OwnerDied(g) => g,
        }
    }

    /// `true` for [`WaitError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, WaitError::Timeout(_))
    }

    /// `true` for [`WaitError::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, WaitError::OwnerDied(_))
    }
}

impl<G> fmt::Debug for WaitError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Timeout(_) => f.write_str("Timeout(..)"),
            WaitError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
        }
    }
}

impl<G> fmt::Display for WaitError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Timeout(_) => f.write_str("timed out waiting for a notification"),
            WaitError::OwnerDied(_) => {
                f.write_str("the previous owner died while holding the lock")
            }
        }
    }
}

impl<G> std::error::Error for WaitError<G> {}

impl<G> From<WaitError<G>> for Error {
    fn from(e: WaitError<G>) -> Error {
        match e {
            WaitError::Timeout(_) => Error::Timeout,
            WaitError::OwnerDied(_) => Error::OwnerDied,
        }
    }
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic payload that is not a string".into())
}
