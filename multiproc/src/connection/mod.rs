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
//! # EOF and inherited ends
//!
//! [`Error::Eof`] comes once every copy of the peer end is closed, in every process. Ends
//! follow Rust ownership across [`Process::start`](crate::Process::start): an end moved
//! into the child's closure is closed in the parent, and an end the parent kept is closed
//! in the child, so the classic pitfall of Python's pipes (a child keeps the writer it
//! inherited, and its reader never sees EOF) cannot happen. See the crate docs.
#![forbid(unsafe_code)]

mod frame;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::handle;
use crate::process::inherit;
use crate::sync::park;
use crate::sys;

pub use self::direction::{Duplex, Readable, RecvOnly, SendOnly, Writable};

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

/// Messages up to this size are copied behind their header and sent with one `send`;
/// larger ones go out as two iovecs, without the copy.
const SMALL_FRAME: usize = 1024;

/// Size of the read buffer: small messages arrive with one `read` call.
const READ_BUF: usize = 64 * 1024;

/// Socket buffer size asked of the kernel, so large messages move in fewer wake-ups.
const SOCKET_BUF: usize = 4 * 1024 * 1024;

/// Large payloads are read straight into their destination, growing it by at most this
/// much beyond what has arrived, so a peer that announces a huge length cannot make us
/// allocate memory it never sends.
const GROW_STEP: usize = 8 * 1024 * 1024;

/// The descriptors one read brought (or the error of a read that lost some), and where that
/// read's bytes went in the read buffer: `buf[from..to]`, shifted when the buffer moves
/// (negative once consumed).
///
/// The kernel delivers a sender's descriptors with the first bytes of the `sendmsg` that
/// carried them and ends that read within those bytes, so they belong to the frame that
/// starts in this read and runs to (or past) its end: the last frame starting in it.
#[derive(Debug)]
struct Batch {
    from: i64,
    to: i64,
    fds: io::Result<Vec<OwnedFd>>,
}

/// One end of a pipe: sends and receives whole messages.
///
/// `D` is [`Duplex`] for both ends of [`pipe`]; [`pipe_oneway`] gives a
/// `Connection<RecvOnly>` and a `Connection<SendOnly>`, and calling `send` on the first or
/// `recv` on the second does not compile.
///
/// Dropping a connection closes this process's copy of its descriptor.
pub struct Connection<D = Duplex> {
    fd: OwnedFd,
    /// Bytes read from the socket but not yet returned: `buf[start..]`. Its capacity is
    /// never zero-filled, so a process that reads little touches (and, after `fork`, copies)
    /// few pages.
    buf: Vec<u8>,
    start: usize,
    /// Descriptors that arrived and no frame claimed yet, one entry per read that brought
    /// some, oldest first.
    fds: VecDeque<Batch>,
    /// Reused for encoding `send`, so steady-state sends allocate nothing.
    scratch: Vec<u8>,
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
            .field("buffered", &(self.buf.len() - self.start))
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
    let (a, b) = sys::fd::socketpair()?;
    Ok((Connection::from_fd(a), Connection::from_fd(b)))
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
    let (r, w) = sys::fd::socketpair()?;
    // Shut the unused directions so even a raw-fd user cannot send the wrong way.
    sys::fd::shutdown(r.as_fd(), sys::fd::Shutdown::Write)?;
    sys::fd::shutdown(w.as_fd(), sys::fd::Shutdown::Read)?;
    Ok((Connection::from_fd(r), Connection::from_fd(w)))
}

impl<D> Connection<D> {
    fn from_fd(fd: OwnedFd) -> Self {
        // Best effort: a kernel that clamps the size still gives a working connection.
        let _ = sys::fd::set_buffer_sizes(fd.as_fd(), SOCKET_BUF);
        inherit::track(fd.as_raw_fd());
        Connection {
            fd,
            buf: Vec::new(),
            start: 0,
            fds: VecDeque::new(),
            scratch: Vec::new(),
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
        Ok(Connection::from_fd(sys::fd::dup(self.fd.as_fd())?))
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl<D: Readable> Connection<D> {
    /// Whether a message (or EOF) can be received without blocking, waiting at most
    /// `timeout` for one: `Some(Duration::ZERO)` answers at once, `None` waits forever.
    /// Polling consumes nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if the descriptor is unusable.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.start < self.buf.len() {
            return Ok(true);
        }
        Ok(wait_readable(&[self.fd.as_raw_fd()], timeout)?[0])
    }

    /// Receives one message and decodes it as a `T`.
    ///
    /// # Errors
    /// [`Error::Eof`] when every copy of the peer end is closed and nothing is left;
    /// [`Error::Protocol`] when the peer died mid-message or sent a malformed frame;
    /// [`Error::Codec`] when the bytes are not a `T`.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        let (len, fds) = self.read_header()?;
        if len <= (self.buf.len() - self.start) as u64 {
            let bytes = self.start..self.start + len as usize;
            self.start = bytes.end;
            return handle::decode(&self.buf[bytes], fds?);
        }
        let bytes = self.read_payload(len)?;
        handle::decode(&bytes, fds?)
    }

    /// Like [`recv`](Self::recv), but waits at most `timeout` for the message to start.
    /// Once its first bytes are here, the rest is read without a time limit (a peer that dies
    /// mid-message still ends the wait with an error).
    ///
    /// # Errors
    /// [`Error::Timeout`] when nothing arrived in time; otherwise as [`recv`](Self::recv).
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        if !self.poll(Some(timeout))? {
            return Err(Error::Timeout);
        }
        self.recv()
    }

    /// Receives one message as raw bytes.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), without the codec error.
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let (len, fds) = self.read_header()?;
        let bytes = self.read_payload(len)?;
        bytes_only(fds)?;
        Ok(bytes)
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
        let (len, fds) = self.read_header()?;
        if len > max as u64 {
            self.discard(len)?;
            return Err(Error::MessageTooLong {
                len,
                max: max as u64,
            });
        }
        let bytes = self.read_payload(len)?;
        bytes_only(fds)?;
        Ok(bytes)
    }

    /// Receives one message into `buf` (from its start) and returns its length. Bytes of
    /// `buf` past the message are left as they were; for an offset, pass `&mut buf[off..]`.
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] carrying the whole message when it does not fit (the message
    /// is consumed); otherwise as [`recv_bytes`](Self::recv_bytes).
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let (len, fds) = self.read_header()?;
        if len > buf.len() as u64 {
            let message = self.read_payload(len)?;
            return Err(Error::BufferTooShort { message });
        }
        let len = len as usize;
        let from_buf = len.min(self.buf.len() - self.start);
        buf[..from_buf].copy_from_slice(&self.buf[self.start..self.start + from_buf]);
        self.start += from_buf;
        self.read_exact_direct(&mut buf[from_buf..len])?;
        bytes_only(fds)?;
        Ok(len)
    }

    /// Reads more bytes into the read buffer; `Ok(0)` at EOF.
    fn fill(&mut self) -> Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf = Vec::with_capacity(READ_BUF);
        }
        if self.start == self.buf.len() {
            self.shift_batches(self.buf.len());
            self.start = 0;
            self.buf.clear();
        } else if self.buf.len() == self.buf.capacity() {
            self.shift_batches(self.start);
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let from = self.buf.len() as i64;
        // Data that arrives within the spin budget is taken without sleeping: a sleeping
        // reader costs the writer a cross-CPU wake-up (tens of microseconds here).
        // Every read takes the descriptors that may ride with the bytes: a plain read would
        // let the kernel drop them.
        let (fd, buf) = (self.fd.as_fd(), &mut self.buf);
        let mut got = None;
        park::spin_until(
            || match sys::scm::try_recv_with_fds(fd, buf, usize::MAX) {
                Ok(Some(received)) => {
                    got = Some(received);
                    true
                }
                Ok(None) => false,
                // Not a socket (a wrapped pipe), or a real error: the blocking read decides.
                Err(_) => true,
            },
            None,
        );
        let received = match got {
            Some(received) => received,
            None => sys::scm::recv_with_fds(fd, buf, usize::MAX)?,
        };
        if !matches!(&received.fds, Ok(fds) if fds.is_empty()) {
            self.fds.push_back(Batch {
                from,
                to: from + received.len as i64,
                fds: received.fds,
            });
        }
        Ok(received.len)
    }

    /// Moves the recorded read positions when the first `by` bytes of the buffer go.
    fn shift_batches(&mut self, by: usize) {
        for batch in &mut self.fds {
            batch.from -= by as i64;
            batch.to -= by as i64;
        }
    }

    /// The descriptors of the frame at `buf[at..end]` (`end` may lie beyond the buffer),
    /// which announced `count` of them (`None`: a plain frame, which claims none). Batches
    /// from reads that ended before the frame came with no frame that announced them (a
    /// misbehaving peer): they are closed.
    fn claim_fds(&mut self, count: Option<u32>, at: usize, end: u64) -> Result<Vec<OwnedFd>> {
        let at = at as i64;
        while self.fds.front().is_some_and(|b| b.to <= at) {
            self.fds.pop_front();
        }
        let Some(count) = count else {
            return Ok(Vec::new());
        };
        let ours = self
            .fds
            .front()
            .is_some_and(|b| b.from <= at && end >= b.to as u64);
        let batch = if ours { self.fds.pop_front() } else { None };
        match batch {
            Some(Batch { fds: Ok(fds), .. }) if fds.len() == count as usize => Ok(fds),
            Some(Batch { fds: Ok(fds), .. }) => Err(Error::protocol(format!(
                "the message announces {count} descriptors but {} came with it",
                fds.len()
            ))),
            Some(Batch { fds: Err(e), .. }) => Err(Error::protocol(e)),
            None => Err(Error::protocol(format!(
                "the message announces {count} descriptors but none came with it"
            ))),
        }
    }

    /// Reads the next frame header and returns the payload length and the frame's
    /// descriptors. A problem with the descriptors alone (lost in transit, a count that does
    /// not match) comes as the inner error, so the caller still consumes the payload and the
    /// connection stays in step.
    fn read_header(&mut self) -> Result<(u64, Result<Vec<OwnedFd>>)> {
        loop {
            let buffered = self.buffered();
            if let Some((count, prefix_len)) = frame::decode_fds_prefix(buffered)? {
                if let Some((len, header_len)) = frame::decode_header(&buffered[prefix_len..])? {
                    let at = self.start;
                    self.start += prefix_len + header_len;
                    let fds = if count.is_none() && self.fds.is_empty() {
                        Ok(Vec::new()) // the common case, kept cheap
                    } else {
                        let end = (self.start as u64).saturating_add(len);
                        self.claim_fds(count, at, end)
                    };
                    return Ok((len, fds));
                }
            }
            let had = self.buf.len() - self.start;
            if self.fill()? == 0 {
                return Err(if had == 0 {
                    Error::Eof
                } else {
                    Error::protocol(format!(
                        "peer closed the connection after {had} header bytes"
                    ))
                });
            }
        }
    }

    /// Reads a payload of `len` bytes into a new vector.
    fn read_payload(&mut self, len: u64) -> Result<Vec<u8>> {
        let len = usize::try_from(len)
            .map_err(|_| Error::protocol(format!("message of {len} bytes cannot be held here")))?;
        let from_buf = len.min(self.buf.len() - self.start);
        let mut out = Vec::with_capacity(len.min(from_buf + GROW_STEP));
        out.extend_from_slice(&self.buf[self.start..self.start + from_buf]);
        self.start += from_buf;
        while out.len() < len {
            if out.len() == out.capacity() {
                out.reserve_exact((len - out.len()).min(GROW_STEP));
            }
            let want = (len - out.len()).min(out.capacity() - out.len());
            if sys::fd::read_to_spare(self.fd.as_fd(), &mut out, want)? == 0 {
                return Err(truncated(out.len(), len));
            }
        }
        Ok(out)
    }

    /// Fills `dst` straight from the socket (after the buffer was drained).
    fn read_exact_direct(&mut self, dst: &mut [u8]) -> Result<()> {
        let total = dst.len();
        let mut got = 0;
        while got < total {
            let n = sys::fd::read(self.fd.as_fd(), &mut dst[got..])?;
            if n == 0 {
                return Err(truncated(got, total));
            }
            got += n;
        }
        Ok(())
    }

    /// Reads and drops a payload of `len` bytes.
    fn discard(&mut self, len: u64) -> Result<()> {
        let mut left = len;
        loop {
            let take = left.min((self.buf.len() - self.start) as u64) as usize;
            self.start += take;
            left -= take as u64;
            if left == 0 {
                return Ok(());
            }
            if self.fill()? == 0 {
                return Err(truncated((len - left) as usize, len as usize));
            }
        }
    }
}

/// Waits at most `timeout` (`None`: forever) for some of `fds` to become readable, with a
/// short yield-polling spin first (see [`park::spin_until`]); one flag per descriptor.
pub(crate) fn wait_readable(fds: &[RawFd], timeout: Option<Duration>) -> Result<Vec<bool>> {
    if timeout == Some(Duration::ZERO) {
        return Ok(sys::fd::poll_readable(fds, timeout)?);
    }
    let deadline = timeout.and_then(park::deadline_after);
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
    let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
    Ok(sys::fd::poll_readable(fds, left)?)
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
                return Ok(sys::fd::send_all(self.fd.as_fd(), frame)?);
            }
            // The count fits: `encode_into` refused more than `MAX_FDS`.
            let prefix = frame::encode_fds_prefix(fds.len() as u32);
            let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
            Ok(sys::scm::send_with_fds(
                self.fd.as_fd(),
                &[&prefix, frame],
                &fds,
            )?)
        });
        // Keep small scratch buffers for the next send; give large ones back.
        if scratch.capacity() <= READ_BUF {
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
            sys::fd::send_all(self.fd.as_fd(), &frame[..total])?;
        } else {
            sys::fd::write_all_vectored(self.fd.as_fd(), &[header, bytes])?;
        }
        Ok(())
    }
}

impl<D> Drop for Connection<D> {
    fn drop(&mut self) {
        inherit::release(self.fd.as_raw_fd());
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
    /// stream framed as Python frames it).
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
        /// process, is dropped. An end holding received bytes that were not read yet refuses
        /// to travel (they would be lost).
        impl Serialize for Connection<$dir> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if self.start < self.buf.len() || !self.fds.is_empty() {
                    return Err(handle::failure(
                        "a connection end holding received data not read yet cannot be sent"
                            .into(),
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
                    return Err(handle::failure(
                        format!(
                            "expected a {} connection end, got a {} one",
                            stringify!($dir),
                            end.direction
                        ),
                        De::Error::custom,
                    ));
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

    #[test]
    fn a_lying_length_does_not_allocate_it() -> Result<()> {
        let (raw, b) = sys::fd::socketpair()?;
        let mut b = Connection::<Duplex>::from(b);
        let mut head = vec![0xff; 4];
        head.extend_from_slice(&(1u64 << 60).to_be_bytes());
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

    /// Whether every copy of `conn`'s peer is closed: it reads end of file at once.
    fn peer_gone(conn: &mut Connection<Duplex>) -> bool {
        conn.poll(Some(Duration::ZERO)).unwrap() && matches!(conn.recv_bytes(), Err(Error::Eof))
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
        let big = vec![0x5au8; 3 * READ_BUF + 17];
        let sender = std::thread::spawn(move || -> Result<()> {
            a.send(&(serde_bytes::ByteBuf::from(big), x))?;
            a.send(&1u8)
        });
        let (bytes, mut x2): (serde_bytes::ByteBuf, Connection) = b.recv()?;
        assert_eq!(bytes.len(), 3 * READ_BUF + 17);
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
    fn an_end_with_unread_data_refuses_to_travel() -> Result<()> {
        let (mut a, _b) = pipe()?;
        let (mut x, mut y) = pipe()?;
        y.send_bytes(b"1")?;
        y.send_bytes(b"2")?;
        assert_eq!(x.recv_bytes()?, b"1"); // "2" may now sit in x's buffer
        if x.buffered().is_empty() {
            return Ok(()); // the kernel delivered them separately: nothing to check
        }
        let err = a.send(&x).unwrap_err();
        assert!(
            matches!(&err, Error::Codec(e) if e.to_string().contains("not read yet")),
            "{err}"
        );
        Ok(())
    }
}
