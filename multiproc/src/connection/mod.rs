//! Pipes between processes: [`pipe`], [`pipe_oneway`] and their [`Connection`] ends.
//!
//! A connection carries whole messages. [`Connection::send`] / [`Connection::recv`] move
//! serde values through the default [`Binary`](crate::codec::Binary) codec;
//! [`send_bytes`](Connection::send_bytes) / [`recv_bytes`](Connection::recv_bytes) move
//! raw bytes. Each message is framed exactly as Python's `multiprocessing.connection`
//! frames it (see `frame.rs`), so raw bytes interoperate with Python. A value that holds
//! handles (a connection end, a queue, a lock; see [`handle`]) carries their
//! descriptors beside its bytes, in a frame shape of its own.
//!
//! Processes that are not parent and child meet at an address: a [`Listener`] accepts
//! connections from [`Client::connect`], with Python's authkey handshake, and Python's own
//! `Listener`/`Client` are peers (values cross with
//! [`send_with`](Connection::send_with)`::<`[`Pickle`](crate::codec::Pickle)`, _>`).
//! [`wait`] tells which of several connections, listeners and children are ready.
//!
//! Several processes may read one end (each holding a copy, for example from
//! [`Connection::try_clone`]), taking turns under a [`Lock`](crate::Lock) as in Python:
//! a receive takes exactly one message and never reads past it.
//!
//! The ends of [`pipe`] and [`pipe_oneway`] are `SOCK_SEQPACKET` sockets: a message of up
//! to 64 KiB travels as one record, which one receive takes whole, so a small message
//! costs one system call on each side. The bytes are Python's frames either way, but a
//! Python process reading such an end would cut the records: give Python a
//! [`Listener`]'s connection (a stream socket) instead.
//!
//! # EOF and inherited ends
//!
//! [`Error::Eof`] comes once every copy of the peer end is closed, in every process. Ends
//! follow Rust ownership across [`Process::start`](crate::Process::start): an end moved
//! into the child's closure is closed in the parent, and an end the parent kept is closed
//! in the child, so the classic pitfall of Python's pipes (a child keeps the writer it
//! inherited, and its reader never sees EOF) cannot happen. See the crate docs.
#![forbid(unsafe_code)]

mod address;
mod auth;
mod frame;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod listener;
#[cfg(feature = "tokio")]
mod tokio;
mod wait;
mod with_codec;

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::fd::{registry, wait_readable};
use crate::handle;
use crate::limit::DEFAULT_MAX_MESSAGE;
use crate::raw::park;
use crate::sys;
use crate::sys::fd::RecordsRead;

pub use self::address::{Address, ToAddress};
pub use self::direction::{Duplex, Readable, RecvOnly, SendOnly, Writable};
pub use self::listener::{Client, Listener, DEFAULT_HANDSHAKE_TIMEOUT};
pub use self::wait::{wait, Waitable};

/// Which way a connection may carry messages, checked at compile time.
mod direction {
    /// Both ends send and receive ([`pipe`](super::pipe)).
    #[derive(Debug)]
    pub enum Duplex {}
    /// The receiving end of [`pipe_oneway`](super::pipe_oneway).
    #[derive(Debug)]
    pub enum RecvOnly {}
    /// The sending end of [`pipe_oneway`](super::pipe_oneway).
    #[derive(Debug)]
    pub enum SendOnly {}

    mod sealed {
        pub trait Sealed {}
        impl Sealed for super::Duplex {}
        impl Sealed for super::RecvOnly {}
        impl Sealed for super::SendOnly {}
    }

    /// Directions that can receive.
    pub trait Readable: sealed::Sealed {}
    impl Readable for Duplex {}
    impl Readable for RecvOnly {}

    /// Directions that can send.
    pub trait Writable: sealed::Sealed {}
    impl Writable for Duplex {}
    impl Writable for SendOnly {}
}

/// How the frames of a connection sit on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// One byte stream (a stream socket, a pipe; what Python's peers use): a receive reads
    /// the header, then exactly the payload, so it never takes a byte of the next frame.
    Stream,
    /// Records (`SOCK_SEQPACKET`, what [`pipe`] makes): a frame is one record, or several
    /// for a long one (see `frame.rs`), so a receive takes a whole small frame in one call
    /// and, as a record never spans two frames, still never a byte of the next one.
    Records,
}

impl Framing {
    /// What the kernel says `fd` is.
    fn of(fd: BorrowedFd<'_>) -> Framing {
        if sys::socket::is_seqpacket(fd) {
            Framing::Records
        } else {
            Framing::Stream
        }
    }
}

/// Messages up to this size are copied behind their header and sent with one `send`;
/// larger ones go out as two iovecs, without the copy.
const SMALL_FRAME: usize = 1024;

/// Scratch buffers up to this size are kept for the next message; larger ones go back.
const KEEP_SCRATCH: usize = 64 * 1024;

/// The rest of a long message on records is received this much at a time (64 records per
/// `recvmmsg`), so a peer that announces a huge length makes us allocate at most this
/// beyond what has arrived.
const RECORDS_BATCH: usize = 64 * frame::RECORD_MAX;

/// Socket buffer size asked of the kernel, so large messages move in fewer wake-ups.
const SOCKET_BUF: usize = 4 * 1024 * 1024;

/// Large payloads are read straight into their destination, growing it by at most this
/// much beyond what has arrived, so a peer that announces a huge length cannot make us
/// allocate memory it never sends.
const GROW_STEP: usize = 8 * 1024 * 1024;

/// One end of a pipe: sends and receives whole messages.
///
/// `D` is [`Duplex`] for both ends of [`pipe`]; [`pipe_oneway`] gives a
/// `Connection<RecvOnly>` and a `Connection<SendOnly>`, and calling `send` on the first or
/// `recv` on the second does not compile.
///
/// Dropping a connection closes this process's copy of its descriptor.
pub struct Connection<D = Duplex> {
    fd: OwnedFd,
    framing: Framing,
    /// Why the framing was lost, once it was: every later receive reports it.
    broken: Option<String>,
    /// Longer announced messages are refused before anything is allocated.
    max_message: u64,
    /// Reused for encoding `send` and decoding `recv`, so steady-state messages allocate
    /// nothing. Its capacity is never zero-filled, so a process that moves little touches
    /// (and, after `fork`, copies) few pages.
    scratch: Vec<u8>,
    /// With [`Framing::Records`]: the first record of the frame being received, whose
    /// payload bytes from `inbox_at` on are not consumed yet. Never holds a byte of another
    /// frame. Empty with [`Framing::Stream`].
    inbox: Vec<u8>,
    inbox_at: usize,
    /// Set by a send, taken by the next receive: an answer to what was just sent cannot be
    /// there yet, so that receive lets the peer run before its first look.
    answer_pending: bool,
    _dir: PhantomData<D>,
}

impl<D> fmt::Debug for Connection<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_raw_fd())
            .field(
                "direction",
                &std::any::type_name::<D>().rsplit("::").next().unwrap_or(""),
            )
            .field("broken", &self.broken.is_some())
            .finish()
    }
}

/// Creates a duplex pipe: two connected ends that both send and receive, like Python's
/// `Pipe()`.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let (mut a, mut b) = multiproc::pipe()?;
/// a.send(&(10, 20))?;
/// let (x, y): (i32, i32) = b.recv()?;
/// b.send(&(x + y))?;
/// assert_eq!(a.recv::<i32>()?, 30);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Io`] when the system is out of descriptors.
pub fn pipe() -> Result<(Connection<Duplex>, Connection<Duplex>)> {
    let (a, b) = sys::fd::seqpacket_pair()?;
    Ok((
        Connection::with_framing(a, Framing::Records),
        Connection::with_framing(b, Framing::Records),
    ))
}

/// Creates a one-way pipe, like Python's `Pipe(duplex=False)`: the first end receives, the
/// second sends.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let (mut rx, mut tx) = multiproc::pipe_oneway()?;
/// tx.send_bytes(b"hello")?;
/// assert_eq!(rx.recv_bytes()?, b"hello");
/// # Ok(()) }
/// ```
///
/// Sending on the receiving end (CN-11) does not compile:
///
/// ```compile_fail
/// let (mut rx, _tx) = multiproc::pipe_oneway().unwrap();
/// rx.send(&1).unwrap();
/// ```
///
/// nor does receiving on the sending end:
///
/// ```compile_fail
/// let (_rx, mut tx) = multiproc::pipe_oneway().unwrap();
/// let _: i32 = tx.recv().unwrap();
/// ```
///
/// # Errors
/// [`Error::Io`] when the system is out of descriptors.
pub fn pipe_oneway() -> Result<(Connection<RecvOnly>, Connection<SendOnly>)> {
    let (r, w) = sys::fd::seqpacket_pair()?;
    // Shut the unused directions so even a raw-fd user cannot send the wrong way.
    sys::fd::shutdown(r.as_fd(), sys::fd::Shutdown::Write)?;
    sys::fd::shutdown(w.as_fd(), sys::fd::Shutdown::Read)?;
    Ok((
        Connection::with_framing(r, Framing::Records),
        Connection::with_framing(w, Framing::Records),
    ))
}

impl<D> Connection<D> {
    /// Wraps `fd`, framed as the kernel says its socket type asks.
    fn from_fd(fd: OwnedFd) -> Self {
        let framing = Framing::of(fd.as_fd());
        Connection::with_framing(fd, framing)
    }

    fn with_framing(fd: OwnedFd, framing: Framing) -> Self {
        // Best effort: a kernel that clamps the size still gives a working connection.
        let _ = sys::fd::set_buffer_sizes(fd.as_fd(), SOCKET_BUF);
        registry::track(fd.as_raw_fd());
        Connection {
            fd,
            framing,
            broken: None,
            max_message: DEFAULT_MAX_MESSAGE,
            scratch: Vec::new(),
            inbox: Vec::new(),
            inbox_at: 0,
            answer_pending: false,
            _dir: PhantomData,
        }
    }

    /// Closes this end now. Dropping the connection closes it too; `close` makes the
    /// moment explicit, as Python's `Connection.close()` does.
    pub fn close(self) {
        drop(self);
    }

    /// Duplicates this end: the copy is an independent handle on the same pipe end (a new
    /// descriptor), for example to move into a child while keeping this one.
    ///
    /// # Errors
    /// [`Error::Io`] when the system is out of descriptors.
    pub fn try_clone(&self) -> Result<Self> {
        let mut copy = Connection::with_framing(sys::fd::dup(self.fd.as_fd())?, self.framing);
        copy.max_message = self.max_message;
        Ok(copy)
    }

    /// The longest message this end accepts (default [`DEFAULT_MAX_MESSAGE`], 1 GiB).
    pub fn max_message(&self) -> u64 {
        self.max_message
    }

    /// Sets the longest message this end accepts. A frame that announces more is refused
    /// with [`Error::MessageTooLong`] before any of it is read or allocated, and the
    /// connection is broken, since skipping an announced length of up to 2^63 bytes could
    /// take forever: a peer cannot make this process allocate more than `max` bytes, nor
    /// wait for bytes that never come. Raise it to receive larger messages.
    pub fn set_max_message(&mut self, max: u64) {
        self.max_message = max;
    }
}

// Receiving reads exactly one frame and never a byte past it. Several processes may read one
// end (taking turns under a lock, as Python requires), and bytes read ahead into one
// process's memory would be lost to the others. On a stream a receive reads the header,
// then exactly the payload: two calls for a small message (one for an empty one). On
// records (`pipe`) it takes the frame's first record whole, which holds a small frame
// entirely: one call.
impl<D: Readable> Connection<D> {
    /// Whether a message (or EOF) can be received without blocking, waiting at most
    /// `timeout` for one: `Some(Duration::ZERO)` answers at once, `None` waits forever.
    /// Polling consumes nothing. On a broken connection (see [`recv`](Self::recv)) it is
    /// `true`: a receive answers at once, with the error.
    ///
    /// # Errors
    /// [`Error::Io`] if the descriptor is unusable.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.broken.is_some() {
            return Ok(true);
        }
        Ok(wait_readable(&[self.fd.as_raw_fd()], Deadline::from(timeout))?[0])
    }

    /// Receives one message and decodes it as a `T`, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::Eof`] when every copy of the peer end is closed and nothing is left;
    /// [`Error::Protocol`] when the peer died mid-message or sent a malformed frame (the
    /// connection is then broken: every later receive reports it, as a `Protocol` error,
    /// even after the peer has closed); [`Error::Codec`] when the bytes are not a `T` (the
    /// message is consumed and the connection goes on).
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.recv_until(Deadline::NEVER, Error::Timeout)
    }

    /// Receives one message if one has arrived, without waiting for one.
    ///
    /// A message whose first bytes are here is read to its end (its sender is writing it,
    /// or died doing so, which is a [`Error::Protocol`]).
    ///
    /// # Errors
    /// [`Error::Empty`] when no message has arrived; otherwise as [`recv`](Self::recv).
    pub fn try_recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.recv_until(Deadline::now(), Error::Empty)
    }

    /// Like [`recv`](Self::recv), but waits at most `timeout` for the message to start.
    /// Once its first bytes are here, the rest is read without a time limit (a peer that dies
    /// mid-message still ends the wait with an error). `Duration::MAX` waits forever.
    ///
    /// # Errors
    /// [`Error::Timeout`] when nothing arrived in time; otherwise as [`recv`](Self::recv).
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        self.recv_until(Deadline::after(timeout), Error::Timeout)
    }

    /// Like [`recv_timeout`](Self::recv_timeout), with the limit given as an instant, so one
    /// limit can span several calls.
    ///
    /// # Errors
    /// [`Error::Timeout`] when nothing arrived by `deadline`; otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_deadline<T: DeserializeOwned>(&mut self, deadline: Instant) -> Result<T> {
        self.recv_until(Deadline::at(deadline), Error::Timeout)
    }

    /// Receives one message as raw bytes.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), without the codec error.
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.recv_bytes_until(Deadline::NEVER, Error::Timeout)
    }

    /// Receives one message as raw bytes if it starts by `deadline`, else `not_ready`.
    pub(crate) fn recv_bytes_until(
        &mut self,
        deadline: Deadline,
        not_ready: Error,
    ) -> Result<Vec<u8>> {
        let (len, fds) = self.next_frame(deadline, not_ready)?;
        let mut out = Vec::new();
        self.read_payload(len, &mut out)?;
        bytes_only(fds)?;
        Ok(out)
    }

    /// Receives one message as raw bytes if it is at most `max` bytes long.
    ///
    /// A longer message is read and discarded, and the connection stays usable for the next
    /// message (Python instead marks the connection unreadable; see `docs/decisions.md`).
    ///
    /// # Errors
    /// [`Error::MessageTooLong`] for a longer message; otherwise as
    /// [`recv_bytes`](Self::recv_bytes).
    pub fn recv_bytes_max(&mut self, max: usize) -> Result<Vec<u8>> {
        let (len, fds) = self.next_frame(Deadline::NEVER, Error::Timeout)?;
        if len > max as u64 {
            self.discard(len)?;
            return Err(Error::MessageTooLong {
                len,
                max: max as u64,
            });
        }
        let mut out = Vec::new();
        self.read_payload(len, &mut out)?;
        bytes_only(fds)?;
        Ok(out)
    }

    /// Receives one message into `buf` (from its start) and returns its length. Bytes of
    /// `buf` past the message are left as they were; for an offset, pass `&mut buf[off..]`.
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] carrying the whole message when it does not fit (the message
    /// is consumed); otherwise as [`recv_bytes`](Self::recv_bytes).
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let (len, fds) = self.next_frame(Deadline::NEVER, Error::Timeout)?;
        if len > buf.len() as u64 {
            let mut message = Vec::new();
            self.read_payload(len, &mut message)?;
            bytes_only(fds)?;
            return Err(Error::BufferTooShort { message });
        }
        let len = len as usize;
        self.read_exact(&mut buf[..len])?;
        bytes_only(fds)?;
        Ok(len)
    }

    /// Receives and decodes one message, waiting for its start until `deadline`; `not_ready`
    /// is the answer when none started by then.
    fn recv_until<T: DeserializeOwned>(
        &mut self,
        deadline: Deadline,
        not_ready: Error,
    ) -> Result<T> {
        let (len, fds) = self.next_frame(deadline, not_ready)?;
        if self.inbox_left() as u64 == len {
            // The whole payload came with the first record (or it is empty): decode it
            // where it lies.
            let value = fds.and_then(|fds| handle::decode(&self.inbox[self.inbox_at..], fds));
            self.inbox_at = self.inbox.len();
            return value;
        }
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        let value = self
            .read_payload(len, &mut payload)
            .and_then(|()| handle::decode(&payload, fds?));
        if payload.capacity() <= KEEP_SCRATCH {
            self.scratch = payload;
        }
        value
    }

    /// Reads the next frame header, waiting for its first byte until `deadline`, and returns
    /// the payload length and the frame's descriptors; `not_ready` when nothing arrived by
    /// then. A problem with the descriptors alone (lost in transit, a count that does not
    /// match) is the inner error, so the caller still consumes the payload and the
    /// connection stays in step.
    fn next_frame(
        &mut self,
        deadline: Deadline,
        not_ready: Error,
    ) -> Result<(u64, Result<Vec<OwnedFd>>)> {
        if let Some(cause) = &self.broken {
            return Err(Error::protocol(format!(
                "the connection is broken ({cause}): no message can be received from it"
            )));
        }
        let (len, fds) = match self.framing {
            Framing::Stream => self.next_stream_header(deadline, not_ready)?,
            Framing::Records => self.next_record(deadline, not_ready)?,
        };
        // Refused from the header alone, whichever framing read it (issue 15).
        if len > self.max_message {
            let max = self.max_message;
            return Err(self.broken_by(Error::MessageTooLong { len, max }));
        }
        Ok((len, fds))
    }

    /// [`next_frame`](Self::next_frame) on a stream: reads exactly the header.
    fn next_stream_header(
        &mut self,
        deadline: Deadline,
        not_ready: Error,
    ) -> Result<(u64, Result<Vec<OwnedFd>>)> {
        let mut head = [0u8; frame::FDS_PREFIX + frame::MAX_HEADER];
        // Never ask for more than the header: the payload's bytes are read by exact count.
        // A sender's descriptors ride on the first bytes of its frame, so they come with
        // this first read, or not at all.
        let fd = self.fd.as_fd();
        let first = first_bytes(
            fd,
            deadline,
            std::mem::take(&mut self.answer_pending),
            |wait| {
                if wait {
                    sys::scm::recv_with_fds(fd, &mut head[..4]).map(Some)
                } else {
                    sys::scm::try_recv_with_fds(fd, &mut head[..4])
                }
            },
        )?;
        let (mut got, fds) = match first {
            None => return Err(not_ready),
            Some(r) if r.len == 0 => return Err(Error::Eof),
            Some(r) => (r.len, r.fds),
        };
        loop {
            if got >= 4 {
                let parsed = frame::decode_fds_prefix(&head[..got]).and_then(|prefix| {
                    let Some((count, at)) = prefix else {
                        return Ok(None);
                    };
                    Ok(frame::decode_header(&head[at..got])?.map(|(len, _)| (len, count)))
                });
                match parsed {
                    Ok(Some((len, count))) => return Ok((len, claim(count, fds))),
                    Ok(None) => {}
                    Err(e) => return Err(self.broken_by(e)),
                }
            }
            // Read on, never past the header: the descriptor prefix (8 bytes) if the first
            // 4 announce it, then the header's first 4, then the rest of a long header.
            let want = if got < 4 {
                4
            } else {
                let at = match frame::decode_fds_prefix(&head[..got]) {
                    Ok(Some((_, at))) => at,
                    _ => frame::FDS_PREFIX,
                };
                if got < at + 4 {
                    at + 4
                } else {
                    at + frame::MAX_HEADER
                }
            };
            match sys::fd::read(self.fd.as_fd(), &mut head[got..want]) {
                Ok(0) => {
                    let e = format!("peer closed the connection after {got} header bytes");
                    return Err(self.broken_by(Error::protocol(e)));
                }
                Ok(n) => got += n,
                Err(e) => return Err(self.broken_by(e.into())),
            }
        }
    }

    /// [`next_frame`](Self::next_frame) on records: takes the frame's first record whole
    /// into the inbox (a small frame is all there) and checks that it starts a frame and
    /// holds nothing past it.
    fn next_record(
        &mut self,
        deadline: Deadline,
        not_ready: Error,
    ) -> Result<(u64, Result<Vec<OwnedFd>>)> {
        let fd = self.fd.as_fd();
        let inbox = &mut self.inbox;
        inbox.clear();
        inbox.reserve_exact(frame::RECORD_MAX);
        self.inbox_at = 0;
        let first = first_bytes(
            fd,
            deadline,
            std::mem::take(&mut self.answer_pending),
            |wait| sys::scm::recv_record_to_spare(fd, inbox, frame::RECORD_MAX, wait),
        )?;
        let received = match first {
            None => return Err(not_ready),
            // Records are never empty: a frame has at least its 4-byte header.
            Some(r) if r.len == 0 => return Err(Error::Eof),
            Some(r) => r,
        };
        if received.truncated {
            let e = format!(
                "a record longer than {} bytes arrived, which this library never sends",
                frame::RECORD_MAX
            );
            return Err(self.broken_by(Error::protocol(e)));
        }
        let parsed = frame::decode_fds_prefix(&self.inbox).and_then(|prefix| {
            let Some((count, at)) = prefix else {
                return Ok(None);
            };
            Ok(frame::decode_header(&self.inbox[at..])?
                .map(|(len, header_len)| (len, count, at + header_len)))
        });
        let (len, count, start) = match parsed {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let e = format!(
                    "a record of {} bytes ends inside its frame header",
                    self.inbox.len()
                );
                return Err(self.broken_by(Error::protocol(e)));
            }
            Err(e) => return Err(self.broken_by(e)),
        };
        let here = self.inbox.len() - start;
        if here as u64 > len {
            let e = format!("a record holds {here} payload bytes of a {len}-byte message");
            return Err(self.broken_by(Error::protocol(e)));
        }
        self.inbox_at = start;
        Ok((len, claim(count, received.fds)))
    }

    /// How many payload bytes of the frame being received wait in the inbox.
    fn inbox_left(&self) -> usize {
        self.inbox.len() - self.inbox_at
    }

    /// Takes up to `max` payload bytes from the inbox.
    fn take_inbox(&mut self, max: usize) -> &[u8] {
        let take = self.inbox_left().min(max);
        let at = self.inbox_at;
        self.inbox_at += take;
        &self.inbox[at..at + take]
    }

    /// Reads more payload of the current frame into the spare capacity of `out`, at most
    /// `max` bytes; `Ok(0)` at end of file. On records, the spare capacity must hold the
    /// next record: `min(max, RECORD_MAX)` bytes at least, as the sender cuts them.
    fn read_more(&self, out: &mut Vec<u8>, max: usize) -> Result<usize> {
        let fd = self.fd.as_fd();
        match self.framing {
            Framing::Stream => Ok(sys::fd::read_to_spare(fd, out, max)?),
            Framing::Records => {
                let received = sys::scm::recv_record_to_spare(fd, out, max, true)?
                    .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
                record_rest(&received)?;
                Ok(received.len)
            }
        }
    }

    /// Appends exactly `len` payload bytes to `out`.
    fn read_payload(&mut self, len: u64, out: &mut Vec<u8>) -> Result<()> {
        let Ok(len) = usize::try_from(len) else {
            let e = format!("message of {len} bytes cannot be held here");
            return Err(self.broken_by(Error::protocol(e)));
        };
        // Grow with what arrives, so a peer that announces a huge length cannot make us
        // allocate memory it never sends.
        out.reserve_exact(len.min(GROW_STEP));
        let end = out.len() + len;
        out.extend_from_slice(self.take_inbox(len));
        while out.len() < end {
            let want = end - out.len();
            if self.framing == Framing::Records {
                // The rest of a long message: whole records, as many per call as fit the
                // batch (the sender cut them at RECORD_MAX, the last one shorter).
                let batch = want.min(RECORDS_BATCH);
                if out.capacity() - out.len() < batch {
                    out.reserve_exact(batch);
                }
                let sizes: Vec<usize> = (0..batch.div_ceil(frame::RECORD_MAX))
                    .map(|i| (batch - i * frame::RECORD_MAX).min(frame::RECORD_MAX))
                    .collect();
                match sys::fd::recv_records_to_spare(self.fd.as_fd(), out, &sizes) {
                    Ok(RecordsRead::Complete | RecordsRead::Short) => continue,
                    Ok(RecordsRead::Eof) => {
                        let got = out.len() - (end - len);
                        return Err(self.broken_by(truncated(got, len)));
                    }
                    Ok(RecordsRead::Cut) => {
                        return Err(self.broken_by(Error::protocol(RECORDS_NOT_OURS)));
                    }
                    Err(e) => return Err(self.broken_by(e.into())),
                }
            }
            // Room for the next bytes.
            if out.capacity() == out.len() {
                out.reserve_exact(want.min(GROW_STEP));
            }
            match self.read_more(out, want) {
                Ok(0) => return Err(self.broken_by(truncated(len - (end - out.len()), len))),
                Ok(_) => {}
                Err(e) => return Err(self.broken_by(e)),
            }
        }
        Ok(())
    }

    /// Fills `dst`, the rest of the payload, with exactly its length of payload bytes.
    fn read_exact(&mut self, dst: &mut [u8]) -> Result<()> {
        let total = dst.len();
        let here = self.take_inbox(total);
        let mut got = here.len();
        dst[..got].copy_from_slice(here);
        while got < total {
            let fd = self.fd.as_fd();
            let read = match self.framing {
                Framing::Stream => sys::fd::read(fd, &mut dst[got..]).map_err(Error::from),
                Framing::Records => sys::scm::recv_with_fds(fd, &mut dst[got..])
                    .map_err(Error::from)
                    .and_then(|r| record_rest(&r).map(|()| r.len)),
            };
            match read {
                Ok(0) => return Err(self.broken_by(truncated(got, total))),
                Ok(n) => got += n,
                Err(e) => return Err(self.broken_by(e)),
            }
        }
        Ok(())
    }

    /// Reads and drops a payload of `len` bytes.
    fn discard(&mut self, len: u64) -> Result<()> {
        let mut left = len
            - self
                .take_inbox(usize::try_from(len).unwrap_or(usize::MAX))
                .len() as u64;
        let mut chunk = std::mem::take(&mut self.scratch);
        let mut result = Ok(());
        while left > 0 {
            chunk.clear();
            // A record at most: on records, the next one is that long or ends the frame.
            let want = left.min(frame::RECORD_MAX as u64) as usize;
            chunk.reserve(want);
            match self.read_more(&mut chunk, want) {
                Ok(0) => {
                    let e = truncated((len - left) as usize, len as usize);
                    result = Err(self.broken_by(e));
                    break;
                }
                Ok(n) => left -= n as u64,
                Err(e) => {
                    result = Err(self.broken_by(e));
                    break;
                }
            }
        }
        if chunk.capacity() <= KEEP_SCRATCH {
            self.scratch = chunk;
        }
        result
    }

    /// Marks the connection broken by `e` (its framing is lost) and returns `e`.
    fn broken_by(&mut self, e: Error) -> Error {
        self.broken = Some(e.to_string());
        e
    }
}

/// Waits until `deadline` for the first bytes of a frame, received by `recv` (`recv(false)`
/// must not block, `recv(true)` may): `None` when nothing arrived by then, a length of 0
/// at EOF.
fn first_bytes(
    fd: BorrowedFd<'_>,
    deadline: Deadline,
    answer_pending: bool,
    mut recv: impl FnMut(bool) -> io::Result<Option<sys::scm::Received>>,
) -> Result<Option<sys::scm::Received>> {
    // The peer needs the CPU to answer, and on a shared CPU a look now only fails: yield
    // first (it returns at once when no one else waits for this CPU).
    if answer_pending && !deadline.has_passed() {
        std::thread::yield_now();
    }
    loop {
        // Data that arrives within the spin budget is taken without sleeping: a sleeping
        // reader costs the writer a cross-CPU wake-up (tens of microseconds here).
        let mut got = None;
        let mut socket = true;
        park::spin_until(
            || match recv(false) {
                Ok(Some(received)) => {
                    got = Some(received);
                    true
                }
                Ok(None) => false,
                // Not a socket (a wrapped pipe), or a real error: a blocking receive decides.
                Err(_) => {
                    socket = false;
                    true
                }
            },
            deadline,
        );
        if got.is_some() {
            return Ok(got);
        }
        if !deadline.is_never() {
            let left = deadline.remaining().unwrap_or(Duration::ZERO);
            // A socket was just looked at; anything else must be asked.
            let ask = !socket || !left.is_zero();
            if !ask || !sys::fd::poll_readable(&[fd.as_raw_fd()], Some(left))?[0] {
                return Ok(None);
            }
            if socket {
                // Readable; look again without blocking (another reader may be faster).
                continue;
            }
        }
        return Ok(recv(true)?);
    }
}

/// Why the records of a long message are refused: one longer than the rest of its message,
/// or (received in a batch) a short one followed by more.
const RECORDS_NOT_OURS: &str = "a record is longer than the rest of its message, or a short \
                                one is followed by more: the sender does not cut records as \
                                this library does";

/// Checks a record that continues a frame: whole (not cut), and without descriptors (they
/// ride on a frame's first record only; any here are closed).
fn record_rest(received: &sys::scm::Received) -> Result<()> {
    if received.truncated {
        return Err(Error::protocol(RECORDS_NOT_OURS));
    }
    match &received.fds {
        Ok(fds) if fds.is_empty() => Ok(()),
        _ => Err(Error::protocol(
            "descriptors came in the middle of a message",
        )),
    }
}

/// The descriptors of a frame that announced `count` of them (`None`: a plain frame), from
/// what came with its first bytes. Descriptors no frame announced (a misbehaving peer) are
/// closed, and the frame refused.
fn claim(count: Option<u32>, fds: io::Result<Vec<OwnedFd>>) -> Result<Vec<OwnedFd>> {
    let fds = fds.map_err(Error::protocol)?;
    match count {
        None if fds.is_empty() => Ok(fds),
        None => Err(Error::protocol(format!(
            "{} descriptors came with a message that announces none",
            fds.len()
        ))),
        Some(count) if fds.len() == count as usize => Ok(fds),
        Some(count) if fds.is_empty() => Err(Error::protocol(format!(
            "the message announces {count} descriptors but none came with it"
        ))),
        Some(count) => Err(Error::protocol(format!(
            "the message announces {count} descriptors but {} came with it",
            fds.len()
        ))),
    }
}

/// For the raw-bytes receives: a message with descriptors is a value with handles, which only
/// [`Connection::recv`] can rebuild (its descriptors are closed here).
fn bytes_only(fds: Result<Vec<OwnedFd>>) -> Result<()> {
    match fds?.len() {
        0 => Ok(()),
        n => Err(Error::protocol(format!(
            "the message carries {n} descriptors (a value with handles): receive it with recv"
        ))),
    }
}

fn truncated(got: usize, len: usize) -> Error {
    Error::protocol(format!(
        "peer closed the connection mid-message: got {got} of {len} bytes"
    ))
}

impl<D: Writable> Connection<D> {
    /// Encodes `value` with the default codec and sends it as one message. The descriptors
    /// of the handles in `value` (connection ends, queues, locks, ...) go with it; this
    /// process keeps its own handles.
    ///
    /// # Errors
    /// [`Error::Codec`] when the value cannot be encoded; [`Error::Io`] with
    /// `BrokenPipe` when every copy of the peer end is closed.
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.resize(frame::MAX_HEADER, 0);
        let result = handle::encode_into(value, &mut scratch).and_then(|fds| {
            let len = (scratch.len() - frame::MAX_HEADER) as u64;
            let head: &mut [u8; frame::MAX_HEADER] = (&mut scratch[..frame::MAX_HEADER])
                .try_into()
                .expect("header room");
            let header_len = frame::encode_header(len, head);
            let frame = &scratch[frame::MAX_HEADER - header_len..];
            if fds.is_empty() {
                return Ok(self.send_frame(&[frame], &[])?);
            }
            // The count fits: `encode_into` refused more than `MAX_FDS`.
            let prefix = frame::encode_fds_prefix(fds.len() as u32);
            let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
            Ok(self.send_frame(&[&prefix, frame], &fds)?)
        });
        // Keep small scratch buffers for the next send; give large ones back.
        if scratch.capacity() <= KEEP_SCRATCH {
            self.scratch = scratch;
        }
        result
    }

    /// Sends `bytes` as one message. For Python's `send_bytes(buf, offset, size)`, pass
    /// `&buf[offset..offset + size]`: slicing checks the bounds.
    ///
    /// # Errors
    /// [`Error::Io`] with `BrokenPipe` when every copy of the peer end is closed.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let mut scratch = [0; frame::MAX_HEADER];
        let header = frame::header(bytes.len() as u64, &mut scratch);
        if bytes.len() <= SMALL_FRAME {
            // One contiguous `send` is the cheapest call for a small message.
            let mut frame = [0u8; frame::MAX_HEADER + SMALL_FRAME];
            let total = header.len() + bytes.len();
            frame[..header.len()].copy_from_slice(header);
            frame[header.len()..total].copy_from_slice(bytes);
            self.send_frame(&[&frame[..total]], &[])?;
        } else {
            self.send_frame(&[header, bytes], &[])?;
        }
        Ok(())
    }

    /// Sends one frame, `parts` in order, with `fds` on its first byte: on records, as one
    /// record when it fits and cut into records when it does not (see `frame.rs`).
    fn send_frame(&mut self, parts: &[&[u8]], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        self.answer_pending = true;
        let fd = self.fd.as_fd();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.framing == Framing::Records && len > frame::RECORD_MAX {
            let records = frame::records(parts);
            let mut rest = &records[..];
            if !fds.is_empty() {
                // The descriptors go with the first record.
                sys::scm::send_with_fds(fd, &rest[0], fds)?;
                rest = &rest[1..];
            }
            return sys::fd::send_records(fd, rest);
        }
        match parts {
            [one] if fds.is_empty() => sys::fd::send_all(fd, one),
            _ if fds.is_empty() => sys::fd::write_all_vectored(fd, parts),
            _ => sys::scm::send_with_fds(fd, parts, fds),
        }
    }
}

impl<D> Drop for Connection<D> {
    fn drop(&mut self) {
        registry::release(self.fd.as_raw_fd());
    }
}

impl<D> AsFd for Connection<D> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<D> AsRawFd for Connection<D> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<OwnedFd> for Connection<Duplex> {
    /// Wraps a connected stream socket (or any descriptor that reads and writes a byte
    /// stream framed as Python frames it), or a `SOCK_SEQPACKET` socket whose peer frames
    /// as [`pipe`]'s ends do (one record per message of up to 64 KiB).
    fn from(fd: OwnedFd) -> Self {
        Connection::from_fd(fd)
    }
}

/// What a connection end writes when it travels: its socket (a handle) and its direction, so
/// it cannot arrive as an end of another direction.
#[derive(Serialize)]
struct EndRef<'a> {
    #[serde(with = "handle")]
    fd: BorrowedFd<'a>,
    direction: &'a str,
}

#[derive(Deserialize)]
struct End {
    #[serde(with = "handle")]
    fd: OwnedFd,
    direction: String,
}

macro_rules! travel {
    ($($dir:ident)*) => {$(
        /// Sent through a connection (or given to a child as an argument), an end arrives as
        /// one more copy of the same end: the peer sees end of file once every copy, in every
        /// process, is dropped. A broken end (see [`Connection::recv`]) refuses to travel.
        impl Serialize for Connection<$dir> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if let Some(cause) = &self.broken {
                    return Err(handle::failure(
                        format!("a broken connection end ({cause}) cannot be sent"),
                        S::Error::custom,
                    ));
                }
                EndRef {
                    fd: self.fd.as_fd(),
                    direction: stringify!($dir),
                }
                .serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for Connection<$dir> {
            fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
                let end = End::deserialize(deserializer)?;
                if end.direction != stringify!($dir) {
                    return Err(De::Error::custom(format!(
                        "expected a {} connection end, got a {} one",
                        stringify!($dir),
                        end.direction
                    )));
                }
                Ok(Connection::from_fd(end.fd))
            }
        }
    )*};
}
travel! { Duplex RecvOnly SendOnly }

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn connection_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Connection<Duplex>>();
        assert_send::<Connection<RecvOnly>>();
        assert_send::<Connection<SendOnly>>();
    }

    #[test]
    fn cn_08_boundaries_and_empty_messages_survive() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        for m in [&b"a"[..], b"b", b"", b"cd"] {
            a.send_bytes(m)?;
        }
        assert!(b.poll(Some(Duration::ZERO))?);
        assert_eq!(b.recv_bytes()?, b"a");
        assert_eq!(b.recv_bytes()?, b"b");
        assert!(
            b.poll(Some(Duration::ZERO))?,
            "an empty message is a message"
        );
        assert_eq!(b.recv_bytes()?, b"");
        assert_eq!(b.recv_bytes()?, b"cd");
        assert!(!b.poll(Some(Duration::ZERO))?);
        Ok(())
    }

    #[test]
    fn cn_14_too_long_is_discarded_and_the_connection_goes_on() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        a.send_bytes(&[7; 100])?;
        a.send_bytes(b"next")?;
        assert!(matches!(
            b.recv_bytes_max(99),
            Err(Error::MessageTooLong { len: 100, max: 99 })
        ));
        assert_eq!(b.recv_bytes_max(4)?, b"next");
        // Larger than the discard chunk: dropped in pieces, the framing kept.
        a.send_bytes(&vec![9; 200_000])?;
        a.send(&"after")?;
        assert!(matches!(
            b.recv_bytes_max(10),
            Err(Error::MessageTooLong { len: 200_000, .. })
        ));
        assert_eq!(b.recv::<String>()?, "after");
        Ok(())
    }

    /// Writes a bare frame header announcing `len` bytes, and no payload.
    fn announce(to: &Connection, len: u64) {
        let mut scratch = [0; frame::MAX_HEADER];
        sys::fd::write_all_vectored(to.fd.as_fd(), &[frame::header(len, &mut scratch)]).unwrap();
    }

    /// Issue 15: an announced length above the limit is refused at once, before a byte of
    /// payload is read or allocated (the peer never sends one, and the peer end stays
    /// open, so a receive that tried to read it would hang), and the connection is broken.
    #[test]
    fn an_announced_length_above_the_limit_is_refused_before_reading() -> Result<()> {
        let (a, mut b) = pipe()?;
        assert_eq!(b.max_message(), DEFAULT_MAX_MESSAGE);
        assert_eq!(DEFAULT_MAX_MESSAGE, 1 << 30);
        for len in [DEFAULT_MAX_MESSAGE + 1, 0x8000_0000, u64::MAX] {
            let (a, mut b) = pipe()?;
            announce(&a, len);
            match b.recv_timeout::<u8>(Duration::from_secs(5)) {
                Err(Error::MessageTooLong { len: got, max }) => {
                    assert_eq!((got, max), (len, DEFAULT_MAX_MESSAGE));
                }
                other => panic!("expected MessageTooLong, got {other:?}"),
            }
            assert!(matches!(b.recv_bytes(), Err(Error::Protocol(_))), "broken");
        }
        // A lower limit: at the limit passes, one over is refused with both numbers.
        b.set_max_message(100);
        let mut clone = b.try_clone()?;
        assert_eq!(clone.max_message(), 100, "a clone keeps the limit");
        let mut a = a;
        a.send_bytes(&[1; 100])?;
        assert_eq!(b.recv_bytes()?.len(), 100);
        a.send_bytes(&[1; 101])?;
        let e = clone.recv_bytes().unwrap_err();
        assert!(
            matches!(e, Error::MessageTooLong { len: 101, max: 100 }),
            "{e}"
        );
        assert!(
            e.to_string().contains("101") && e.to_string().contains("100"),
            "{e}"
        );
        Ok(())
    }

    /// Below the limit, a length the peer announces but does not send costs memory only as
    /// its bytes arrive: the receive waits for them (and reports the peer's death).
    #[test]
    fn an_announced_length_below_the_limit_allocates_as_bytes_arrive() -> Result<()> {
        let (a, mut b) = pipe()?;
        announce(&a, DEFAULT_MAX_MESSAGE);
        sys::fd::write_all_vectored(a.fd.as_fd(), &[&[5; 1000]])?;
        drop(a);
        let mut out = Vec::new();
        let (len, _) = b.next_frame(Deadline::NEVER, Error::Timeout)?;
        assert_eq!(len, DEFAULT_MAX_MESSAGE);
        assert!(matches!(
            b.read_payload(len, &mut out),
            Err(Error::Protocol(_))
        ));
        assert!(
            out.capacity() <= GROW_STEP,
            "reserved {} bytes",
            out.capacity()
        );
        Ok(())
    }

    #[test]
    fn cn_04_buffer_too_short_carries_the_message() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        a.send_bytes(b"0123456789")?;
        a.send_bytes(b"xy")?;
        let mut small = [0u8; 4];
        match b.recv_bytes_into(&mut small) {
            Err(Error::BufferTooShort { message }) => assert_eq!(message, b"0123456789"),
            other => panic!("expected BufferTooShort, got {other:?}"),
        }
        let mut buf = *b"........";
        assert_eq!(b.recv_bytes_into(&mut buf[3..])?, 2);
        assert_eq!(
            &buf, b"...xy...",
            "CN-03: written at the offset, the rest untouched"
        );
        Ok(())
    }

    #[test]
    fn cn_10_eof_after_peer_closes_and_poll_reports_it() -> Result<()> {
        let (mut a, b) = pipe()?;
        b.close();
        assert!(a.poll(Some(Duration::ZERO))?, "EOF counts as readable");
        assert!(matches!(a.recv_bytes(), Err(Error::Eof)));
        assert!(
            matches!(a.send_bytes(b"x"), Err(Error::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe)
        );
        Ok(())
    }

    #[test]
    fn truncated_frames_are_protocol_errors() -> Result<()> {
        let (raw, b) = sys::fd::socketpair()?;
        let mut b = Connection::<Duplex>::from(b);
        sys::fd::write_all_vectored(raw.as_fd(), &[&[0, 0, 0, 10], b"abc"])?;
        drop(raw);
        assert!(matches!(b.recv_bytes(), Err(Error::Protocol(_))));

        let (raw, b) = sys::fd::socketpair()?;
        let mut b = Connection::<Duplex>::from(b);
        sys::fd::write_all_vectored(raw.as_fd(), &[&[0, 0]])?;
        drop(raw);
        assert!(matches!(b.recv_bytes(), Err(Error::Protocol(_))));
        Ok(())
    }

    /// A raw record-socket peer and our end of it.
    fn raw_records() -> Result<(OwnedFd, Connection<Duplex>)> {
        let (raw, ours) = sys::fd::seqpacket_pair()?;
        let ours = Connection::<Duplex>::from(ours);
        assert_eq!(ours.framing, Framing::Records);
        Ok((raw, ours))
    }

    /// Records that do not frame as ours are refused, and the connection is broken: one
    /// too long to take whole, one with bytes past its frame, one ending in its header, a
    /// continuation longer than the rest of its message.
    #[test]
    fn records_that_break_the_framing_are_protocol_errors() -> Result<()> {
        let mut long = vec![0, 1, 0, 0];
        long.resize(frame::RECORD_MAX + 4, 9);
        let mut past = vec![0, 0, 0, 2];
        past.extend_from_slice(b"abc");
        let mut first = 70_000u32.to_be_bytes().to_vec();
        first.extend_from_slice(&[1; 10]);
        let cases: [(&[&[u8]], &str); 5] = [
            (&[&long], "longer than"),
            (&[&past], "payload bytes of a 2-byte message"),
            (&[&[0xff, 0xff]], "ends inside its frame header"),
            (&[&[0, 0, 0, 5, b'a'], b"bcdef"], "longer than the rest"),
            // A long message whose rest comes as a short record and then more.
            (&[&first, &[2; 5], &[3; 100]], "does not cut records"),
        ];
        for (records, why) in cases {
            let (raw, mut ours) = raw_records()?;
            for record in records {
                sys::fd::send_all(raw.as_fd(), record)?;
            }
            let err = ours.recv_bytes().unwrap_err();
            assert!(
                matches!(&err, Error::Protocol(e) if e.to_string().contains(why)),
                "{why}: {err}"
            );
            assert!(
                matches!(ours.try_recv::<u8>(), Err(Error::Protocol(e)) if e.to_string().contains("broken"))
            );
        }
        Ok(())
    }

    /// A message cut into records by its sender arrives whole, into every receive form,
    /// and a record socket's messages of every size keep their boundaries.
    #[test]
    fn long_messages_cross_a_record_socket_in_pieces() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        let sizes = [
            0,
            1,
            frame::RECORD_MAX - 4,
            frame::RECORD_MAX - 3,
            3 * frame::RECORD_MAX + 5,
        ];
        let sender = std::thread::spawn(move || -> Result<()> {
            for (i, &n) in sizes.iter().enumerate() {
                a.send_bytes(&vec![i as u8; n])?;
                a.send(&serde_bytes::ByteBuf::from(vec![i as u8; n]))?;
                a.send_bytes(&vec![i as u8; n])?;
                a.send_bytes(&vec![i as u8; n])?;
            }
            Ok(())
        });
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(b.recv_bytes()?, vec![i as u8; n]);
            assert_eq!(
                b.recv::<serde_bytes::ByteBuf>()?.into_vec(),
                vec![i as u8; n]
            );
            let mut into = vec![0u8; n];
            assert_eq!(b.recv_bytes_into(&mut into)?, n);
            assert!(into.iter().all(|&x| x == i as u8));
            match b.recv_bytes_max(n.saturating_sub(1)) {
                Err(Error::MessageTooLong { len, .. }) if n > 0 => assert_eq!(len, n as u64),
                Ok(m) if n == 0 => assert!(m.is_empty()),
                other => panic!("size {n}: {other:?}"),
            }
        }
        sender.join().unwrap()?;
        assert!(
            matches!(b.try_recv::<u8>(), Err(Error::Eof)),
            "nothing left over once the sender is gone"
        );
        Ok(())
    }

    #[test]
    fn a_lying_length_does_not_allocate_it() -> Result<()> {
        let (raw, b) = sys::fd::socketpair()?;
        let mut b = Connection::<Duplex>::from(b);
        let mut head = vec![0xff; 4];
        head.extend_from_slice(&(1u64 << 60).to_be_bytes());
        sys::fd::write_all_vectored(raw.as_fd(), &[&head, b"tiny"])?;
        drop(raw);
        // Above the connection's limit: refused from the header alone (issue 15).
        assert!(matches!(
            b.recv_bytes(),
            Err(Error::MessageTooLong { len, .. }) if len == 1 << 60
        ));
        assert!(matches!(b.recv_bytes(), Err(Error::Protocol(_))), "broken");
        // Below it: memory follows what arrives, and the short payload is a truncation.
        let (raw, b) = sys::fd::socketpair()?;
        let mut b = Connection::<Duplex>::from(b);
        let head = ((DEFAULT_MAX_MESSAGE - 1) as u32).to_be_bytes();
        sys::fd::write_all_vectored(raw.as_fd(), &[&head, b"tiny"])?;
        drop(raw);
        assert!(matches!(b.recv_bytes(), Err(Error::Protocol(_))));
        Ok(())
    }

    #[test]
    fn values_round_trip_and_timeouts_wait() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        a.send(&(1i64, 2.25f64, None::<u8>))?;
        assert_eq!(b.recv::<(i64, f64, Option<u8>)>()?, (1, 2.25, None));
        let t = std::time::Instant::now();
        assert!(matches!(
            b.recv_timeout::<u8>(Duration::from_millis(30)),
            Err(Error::Timeout)
        ));
        assert!(t.elapsed() >= Duration::from_millis(30));
        Ok(())
    }

    /// Whether every copy of `conn`'s peer is closed: it reads end of file. (Within a few
    /// seconds: a test thread that forks meanwhile gives its child a copy of every
    /// descriptor until the child exits.)
    fn peer_gone(conn: &mut Connection<Duplex>) -> bool {
        conn.poll(Some(Duration::from_secs(10))).unwrap()
            && matches!(conn.recv_bytes(), Err(Error::Eof))
    }

    #[test]
    fn cn_21_an_end_sent_through_a_connection_works_there() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        let (x, mut y) = pipe()?;
        a.send(&("here", &x))?;
        let (tag, mut x2): (String, Connection) = b.recv()?;
        assert_eq!(tag, "here");
        x2.send(&7u8)?;
        assert_eq!(y.recv::<u8>()?, 7);
        y.send(&8u8)?;
        assert_eq!(x2.recv::<u8>()?, 8);
        drop(x);
        assert!(
            !y.poll(Some(Duration::ZERO))?,
            "the receiver's copy is still open"
        );
        drop(x2);
        assert!(peer_gone(&mut y), "EOF once both copies are dropped");
        Ok(())
    }

    #[test]
    fn cn_21_every_direction_travels_and_keeps_its_direction() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        let (rx, tx) = pipe_oneway()?;
        a.send(&tx)?;
        a.send(&rx)?;
        let mut tx2: Connection<SendOnly> = b.recv()?;
        let mut rx2: Connection<RecvOnly> = b.recv()?;
        tx2.send(&"one way")?;
        assert_eq!(rx2.recv::<String>()?, "one way");
        a.send(&tx)?;
        let err = b.recv::<Connection<RecvOnly>>().unwrap_err();
        assert!(
            matches!(&err, Error::Codec(e) if e.to_string().contains("expected a RecvOnly")),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn messages_with_and_without_descriptors_interleave() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        let mut ends = Vec::new();
        for i in 0..40u32 {
            if i % 3 == 0 {
                let (x, y) = pipe()?;
                a.send(&(i, Some(x)))?;
                ends.push(y);
            } else {
                a.send(&(i, None::<Connection>))?;
            }
        }
        a.send_bytes(b"plain bytes too")?;
        for i in 0..40u32 {
            let (j, end): (u32, Option<Connection>) = b.recv()?;
            assert_eq!(j, i);
            if let Some(mut end) = end {
                end.send(&i)?;
            }
        }
        assert_eq!(b.recv_bytes()?, b"plain bytes too");
        for (k, mut y) in ends.into_iter().enumerate() {
            assert_eq!(y.recv::<u32>()?, 3 * k as u32);
            assert!(peer_gone(&mut y), "the received copy was dropped after use");
        }
        Ok(())
    }

    #[test]
    fn a_large_message_carries_its_descriptors() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        let (x, mut y) = pipe()?;
        let big = vec![0x5au8; (1 << 20) + 17];
        let sender = std::thread::spawn(move || -> Result<()> {
            a.send(&(serde_bytes::ByteBuf::from(big), x))?;
            a.send(&1u8)
        });
        let (bytes, mut x2): (serde_bytes::ByteBuf, Connection) = b.recv()?;
        assert_eq!(bytes.len(), (1 << 20) + 17);
        assert!(bytes.iter().all(|&v| v == 0x5a));
        assert_eq!(b.recv::<u8>()?, 1);
        sender.join().unwrap()?;
        x2.send(&2u8)?;
        assert_eq!(y.recv::<u8>()?, 2);
        drop(x2);
        assert!(peer_gone(&mut y));
        Ok(())
    }

    #[test]
    fn raw_bytes_calls_refuse_a_message_with_handles_and_close_them() -> Result<()> {
        let (mut a, mut b) = pipe()?;
        let (x, mut y) = pipe()?;
        a.send(&x)?;
        drop(x);
        a.send_bytes(b"after")?;
        let err = b.recv_bytes().unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(e) if e.to_string().contains("recv")),
            "{err}"
        );
        assert!(
            peer_gone(&mut y),
            "the refused message's descriptor was closed"
        );
        assert_eq!(b.recv_bytes()?, b"after", "the connection stays in step");
        Ok(())
    }

    #[test]
    fn cn_22_a_frame_announcing_missing_descriptors_is_a_protocol_error() -> Result<()> {
        // A raw peer writes the descriptor prefix without sending any, then one descriptor
        // where it announces two; each message is refused and the next one is read.
        let (raw, b) = sys::fd::socketpair()?;
        let mut b = Connection::<Duplex>::from(b);
        let mut payload = Vec::new();
        <crate::codec::Binary as crate::codec::Codec>::encode(&9u8, &mut payload)?;
        let mut scratch = [0; frame::MAX_HEADER];
        let header = frame::header(payload.len() as u64, &mut scratch).to_vec();
        sys::fd::write_all_vectored(
            raw.as_fd(),
            &[&frame::encode_fds_prefix(1), &header, &payload],
        )?;
        let (x, y) = sys::fd::socketpair()?;
        sys::scm::send_with_fds(
            raw.as_fd(),
            &[&frame::encode_fds_prefix(2), &header, &payload],
            &[x.as_fd()],
        )?;
        drop(x);
        sys::fd::write_all_vectored(raw.as_fd(), &[&header, &payload])?;
        let err = b.recv::<u8>().unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(e) if e.to_string().contains("none came")),
            "{err}"
        );
        let err = b.recv::<u8>().unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(e) if e.to_string().contains("1 came")),
            "{err}"
        );
        let mut probe = Connection::<Duplex>::from(y);
        assert!(
            peer_gone(&mut probe),
            "the mismatched descriptor was closed"
        );
        assert_eq!(b.recv::<u8>()?, 9);
        Ok(())
    }

    #[test]
    fn a_broken_end_refuses_to_travel() -> Result<()> {
        let (mut a, _b) = pipe()?;
        let (raw, x) = sys::fd::socketpair()?;
        let mut x = Connection::<Duplex>::from(x);
        sys::fd::write_all_vectored(raw.as_fd(), &[&[0x80, 0, 0, 0]])?;
        assert!(matches!(x.recv_bytes(), Err(Error::Protocol(_))));
        let err = a.send(&x).unwrap_err();
        assert!(
            matches!(&err, Error::Codec(e) if e.to_string().contains("broken")),
            "{err}"
        );
        Ok(())
    }

    /// Garbage streams end in `Eof` (they happened to be whole frames) or in one framing
    /// error followed by the same "broken" answer on every later receive; never a panic.
    #[test]
    fn garbage_streams_end_cleanly_or_break_for_good() -> Result<()> {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..600 {
            // Streams, then records (each garbage write one record).
            let (raw, b) = if round % 2 == 0 {
                sys::fd::socketpair()?
            } else {
                sys::fd::seqpacket_pair()?
            };
            let mut b = Connection::<Duplex>::from(b);
            let len = (next() % 40) as usize;
            // Mostly small lengths, so some streams hold whole frames.
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    if i % 4 < 3 && next() % 2 == 0 {
                        0
                    } else {
                        next() as u8
                    }
                })
                .collect();
            sys::fd::write_all_vectored(raw.as_fd(), &[&bytes])?;
            drop(raw);
            let first = loop {
                match b.recv_bytes() {
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            };
            match first {
                Error::Eof => assert!(matches!(b.try_recv::<u8>(), Err(Error::Eof))),
                // An announced length above the limit breaks the connection too.
                Error::Protocol(_) | Error::MessageTooLong { .. } => {
                    for _ in 0..3 {
                        match b.try_recv::<u8>() {
                            Err(Error::Protocol(e)) => {
                                assert!(e.to_string().contains("broken"), "{e}")
                            }
                            other => panic!("expected broken, got {other:?}"),
                        }
                    }
                }
                other => panic!("unexpected {other:?} for {bytes:?}"),
            }
        }
        Ok(())
    }
}
