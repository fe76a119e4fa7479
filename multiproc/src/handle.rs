//! Handles that travel: values whose file descriptors ride beside the message.
//!
//! A [`Connection`](crate::Connection) end, a queue, a lock, a `Value` or a `SharedMemory`
//! is, underneath, a file descriptor (a socket or a shared-memory file). Such a value can be
//! sent with [`Connection::send`](crate::Connection::send) (and given to a child as its
//! argument): its descriptors go beside the message's bytes (`SCM_RIGHTS`), and the bytes
//! only say *which* of them each handle is. The receiver gets new descriptors to the same
//! open files.
//!
//! # What a received handle owns
//!
//! The sender keeps its own handle; the receiver's is **one more owner** of the same object,
//! exactly like a [`try_clone`](crate::Connection::try_clone) in another process:
//!
//! - a received `Connection` end is one more copy of that end: the peer sees end of file once
//!   every copy, in every process, is dropped, the sender's and the receiver's included;
//! - a received queue, lock or `Value` maps the same shared memory, which lives as long as
//!   any process holds a handle to it.
//!
//! # Your own types
//!
//! [`Fd`] is a descriptor that travels; `#[serde(with = "multiproc::handle")]` does the same
//! for an `OwnedFd` field (or any [`AsFd`] field when only sending):
//!
//! ```
//! use std::os::fd::OwnedFd;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Job {
//!     id: u32,
//!     #[serde(with = "multiproc::handle")]
//!     output: OwnedFd,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (mut a, mut b) = multiproc::pipe()?;
//! let file = std::fs::File::open("/dev/null")?;
//! a.send(&Job { id: 7, output: file.into() })?;
//! let job: Job = b.recv()?;
//! assert_eq!(job.id, 7);
//! # drop(job.output);
//! # Ok(()) }
//! ```
//!
//! Outside a `Connection` or a process argument (with `serde_json`, say) a handle does not
//! serialise: it is an error, not a panic, since a descriptor number means nothing in
//! another process.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::thread::LocalKey;

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{Binary, Codec};
use crate::error::{Error, Result};
use crate::sys;

/// Why a handle refuses to serialise outside [`encode`] / [`decode`].
const OUTSIDE: &str =
    "this handle can only travel through a multiproc Connection or as a process argument";

thread_local! {
    /// While [`encode`] runs on this thread: the descriptors of the handles serialised so
    /// far (duplicates, owned by the message), in index order.
    static SENDING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// While [`decode`] runs on this thread: the message's descriptors; a handle that takes
    /// one leaves `None`.
    static RECEIVING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    /// Why a handle refused to serialise, kept because `postcard` reports every custom
    /// serialisation error as the same fixed text. (Decoding keeps custom messages by
    /// itself: see `codec/bounded.rs`.)
    static FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A serialisation error with `message`, remembered for [`explain`] (`custom` is the
/// format's `ser::Error::custom`). Handle types' own `Serialize` impls use it for their
/// refusals too.
pub(crate) fn failure<E>(message: String, custom: impl FnOnce(String) -> E) -> E {
    FAILURE.with(|f| *f.borrow_mut() = Some(message.clone()));
    custom(message)
}

/// Runs an encode, replacing its error by the handle failure it hides, if any (for the
/// binary codec, whose format loses the message).
pub(crate) fn explain<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    FAILURE.with(|f| f.borrow_mut().take());
    f().map_err(|e| match (e, FAILURE.with(|f| f.borrow_mut().take())) {
        (Error::Codec(_), Some(message)) => Error::Codec(message.into()),
        (e, _) => e,
    })
}

/// Runs `f` with `table` installed in `key`, and hands back what `f` left there. The previous
/// table (an encode inside a handle's own `Serialize`) is restored afterwards, also when `f`
/// panics.
fn with_table<V: 'static, R>(
    key: &'static LocalKey<RefCell<Option<V>>>,
    table: V,
    f: impl FnOnce() -> R,
) -> (R, Option<V>) {
    struct Restore<V: 'static> {
        key: &'static LocalKey<RefCell<Option<V>>>,
        previous: Option<V>,
    }
    impl<V: 'static> Drop for Restore<V> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            // Dropping what the interrupted call left (on a panic) closes its descriptors.
            drop(self.key.with(|t| t.replace(previous)));
        }
    }
    let mut restore = Restore {
        key,
        previous: key.with(|t| t.replace(Some(table))),
    };
    let result = f();
    let left = key.with(|t| t.replace(restore.previous.take()));
    drop(restore);
    (result, left)
}

/// Encodes `value` with the default codec after `out`'s current bytes, and returns the
/// descriptors its handles put in the side table (new descriptors: the caller's handles
/// keep theirs).
///
/// # Errors
/// [`Error::Codec`] when the value cannot be encoded (a descriptor that cannot be
/// duplicated included); [`Error::InvalidArgument`] for more than
/// [`MAX_FDS`](crate::sys::scm::MAX_FDS) descriptors in one message.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>> {
    let (result, fds) = with_table(&SENDING, Vec::new(), || Binary::encode(value, out));
    result?;
    let fds = fds.unwrap_or_default();
    if fds.len() > sys::scm::MAX_FDS {
        return Err(Error::InvalidArgument(format!(
            "one message can carry at most {} handles' descriptors, this one has {}",
            sys::scm::MAX_FDS,
            fds.len()
        )));
    }
    Ok(fds)
}

/// Encodes `value` into its bytes and the descriptors that travel beside them.
///
/// # Errors
/// As [`encode_into`].
// Process arguments under Spawn and Forkserver travel through this; until that lands only
// the tests call it.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut bytes = Vec::new();
    let fds = encode_into(value, &mut bytes)?;
    Ok((bytes, fds))
}

/// Decodes a `T` from `bytes` whose handles take their descriptors from `fds` by index.
/// Descriptors no handle took are closed.
///
/// # Errors
/// [`Error::Codec`] when the bytes are not a `T`, or a handle's index is out of range or
/// used twice (what the handles took so far is closed then).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    let table = fds.into_iter().map(Some).collect();
    with_table(&RECEIVING, table, || Binary::decode(bytes)).0
}

/// What a handle writes into the bytes: its descriptor's index in the side table. Named so a
/// self-describing format shows what it is.
#[derive(Serialize, Deserialize)]
#[serde(rename = "multiproc::handle::Fd")]
struct Index(u32);

/// Serialises a descriptor as a handle: it travels beside the message, and only its index
/// goes into the bytes. For `#[serde(with = "multiproc::handle")]` and handle types' own
/// `Serialize` impls.
///
/// # Errors
/// A serde error outside a [`Connection`](crate::Connection) send or a process argument, or
/// when the descriptor cannot be duplicated (the process is out of descriptors).
pub fn serialize<F: AsFd, S: Serializer>(fd: &F, serializer: S) -> Result<S::Ok, S::Error> {
    let index = SENDING.with(|t| {
        let mut t = t.borrow_mut();
        let fds = t
            .as_mut()
            .ok_or_else(|| failure(OUTSIDE.into(), S::Error::custom))?;
        let copy = sys::fd::dup(fd.as_fd()).map_err(|e| {
            failure(
                format!("cannot duplicate a handle's descriptor: {e}"),
                S::Error::custom,
            )
        })?;
        let index = u32::try_from(fds.len())
            .map_err(|_| failure("too many handles in one message".into(), S::Error::custom))?;
        fds.push(copy);
        Ok(index)
    })?;
    Index(index).serialize(serializer)
}

/// Deserialises a handle written by [`serialize`]: takes its descriptor out of the message's
/// side table.
///
/// # Errors
/// A serde error outside a [`Connection`](crate::Connection) receive or a process argument,
/// or when the index is out of range or was already taken (a malformed message).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OwnedFd, D::Error> {
    let Index(index) = Index::deserialize(deserializer)?;
    RECEIVING.with(|t| {
        let mut t = t.borrow_mut();
        let fds = t.as_mut().ok_or_else(|| D::Error::custom(OUTSIDE))?;
        let count = fds.len();
        let slot = fds.get_mut(index as usize).ok_or_else(|| {
            D::Error::custom(format!(
                "handle index {index} is out of range: the message carries {count} descriptors"
            ))
        })?;
        slot.take().ok_or_else(|| {
            D::Error::custom(format!("handle index {index} is used twice in one message"))
        })
    })
}

/// A file descriptor that travels in a message: sent through a
/// [`Connection`](crate::Connection) (or as a process argument), the receiver gets a new
/// descriptor to the same open file; the sender keeps its own.
///
/// ```
/// use multiproc::handle::Fd;
/// use std::io::{Read, Seek, Write};
/// use std::os::fd::OwnedFd;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (mut a, mut b) = multiproc::pipe()?;
/// let mut file = tempfile_like()?;
/// file.write_all(b"shared")?;
/// a.send(&Fd::from(OwnedFd::from(file.try_clone()?)))?;
/// let mut again = std::fs::File::from(b.recv::<Fd>()?.into_inner());
/// again.rewind()?;
/// let mut text = String::new();
/// again.read_to_string(&mut text)?;
/// assert_eq!(text, "shared");
/// # Ok(()) }
/// # fn tempfile_like() -> std::io::Result<std::fs::File> {
/// #     let path = std::env::temp_dir().join(format!("mp-fd-doc-{}", std::process::id()));
/// #     let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
/// #     std::fs::remove_file(&path)?;
/// #     Ok(f)
/// # }
/// ```
pub struct Fd(OwnedFd);

impl Fd {
    /// The descriptor.
    pub fn into_inner(self) -> OwnedFd {
        self.0
    }
}

impl fmt::Debug for Fd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fd").field(&self.0.as_raw_fd()).finish()
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Fd {
        Fd(fd)
    }
}

impl From<Fd> for OwnedFd {
    fn from(fd: Fd) -> OwnedFd {
        fd.0
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl IntoRawFd for Fd {
    fn into_raw_fd(self) -> RawFd {
        self.0.into_raw_fd()
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fd, D::Error> {
        deserialize(deserializer).map(Fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::scm::probe::{all_copies_closed, still_open, traced};
    use std::panic::{self, AssertUnwindSafe};

    #[derive(Debug, Serialize, Deserialize)]
    struct Job {
        name: String,
        input: Fd,
        #[serde(with = "super")]
        output: OwnedFd,
        extra: Vec<Fd>,
    }

    /// Sends `bytes` and `fds` over a real socket pair and receives them, as a connection does.
    fn through_socket(bytes: &[u8], fds: Vec<OwnedFd>) -> (Vec<u8>, Vec<OwnedFd>) {
        let (a, b) = sys::fd::socketpair().unwrap();
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        sys::scm::send_with_fds(a.as_fd(), &[bytes], &borrowed).unwrap();
        drop(borrowed);
        drop(fds);
        let mut got = vec![0; bytes.len()];
        let mut n = 0;
        let mut received = Vec::new();
        while n < bytes.len() {
            let r = sys::scm::recv_with_fds(b.as_fd(), &mut got[n..]).unwrap();
            n += r.len;
            received.extend(r.fds.unwrap());
        }
        (got, received)
    }

    #[test]
    fn handles_round_trip_through_a_socket() {
        let (input, input_peer) = traced();
        let (output, output_peer) = traced();
        let (extra, extra_peer) = traced();
        let job = Job {
            name: "j".into(),
            input: Fd::from(input),
            output,
            extra: vec![Fd::from(extra)],
        };
        let (bytes, fds) = encode(&job).unwrap();
        assert_eq!(fds.len(), 3);
        let (bytes, fds) = through_socket(&bytes, fds);
        let got: Job = decode(&bytes, fds).unwrap();
        assert_eq!(got.name, "j");
        // Each received descriptor reaches the same socket as the one it was made from.
        for (mine, peer) in [
            (got.input.as_fd(), &input_peer),
            (got.output.as_fd(), &output_peer),
            (got.extra[0].as_fd(), &extra_peer),
        ] {
            sys::fd::send_all(mine, b"!").unwrap();
            let mut buf = [0u8; 1];
            assert_eq!(sys::fd::read(peer.as_fd(), &mut buf).unwrap(), 1);
        }
        // The sender kept its own: only after both are dropped does the peer see EOF.
        drop(got);
        assert!(still_open(&input_peer));
        drop(job);
        assert!(all_copies_closed(&input_peer));
        assert!(all_copies_closed(&output_peer));
        assert!(all_copies_closed(&extra_peer));
    }

    #[test]
    fn a_value_without_handles_encodes_as_the_plain_codec_does() {
        let value = (1u8, String::from("x"), vec![2.5f64]);
        let (bytes, fds) = encode(&value).unwrap();
        assert!(fds.is_empty());
        let mut plain = Vec::new();
        Binary::encode(&value, &mut plain).unwrap();
        assert_eq!(bytes, plain);
        assert_eq!(
            decode::<(u8, String, Vec<f64>)>(&bytes, Vec::new()).unwrap(),
            value
        );
    }

    #[test]
    fn outside_a_connection_a_handle_is_a_serde_error_not_a_panic() {
        let (fd, _peer) = traced();
        let err = serde_json::to_string(&Fd::from(fd)).unwrap_err();
        assert!(err.to_string().contains("only travel through"), "{err}");
        let err = serde_json::from_str::<Fd>("0").unwrap_err();
        assert!(err.to_string().contains("only travel through"), "{err}");
        let mut out = Vec::new();
        let (fd, _peer) = traced();
        let err = Binary::encode(&Fd::from(fd), &mut out).unwrap_err();
        assert!(
            matches!(&err, Error::Codec(e) if e.to_string().contains("only travel through")),
            "the binary codec keeps the message too: {err}"
        );
    }

    #[test]
    fn bad_indices_are_errors_and_close_what_was_taken() {
        let (a, a_peer) = traced();
        let (b, b_peer) = traced();
        // [0, 0]: the second use of index 0 is refused.
        let bytes = postcard::to_allocvec(&[0u32, 0]).unwrap();
        let err = decode::<[Fd; 2]>(&bytes, vec![a, b]).unwrap_err();
        assert!(err.to_string().contains("used twice"), "{err}");
        assert!(
            all_copies_closed(&a_peer),
            "the first taker dropped its descriptor"
        );
        assert!(
            all_copies_closed(&b_peer),
            "the unused descriptor is closed"
        );

        let (c, c_peer) = traced();
        let bytes = postcard::to_allocvec(&5u32).unwrap();
        let err = decode::<Fd>(&bytes, vec![c]).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        assert!(all_copies_closed(&c_peer));
        assert!(decode::<Fd>(&bytes, Vec::new()).is_err());
    }

    #[test]
    fn descriptors_no_handle_takes_are_closed() {
        let (a, a_peer) = traced();
        assert_eq!(decode::<u8>(&[9], vec![a]).unwrap(), 9);
        assert!(all_copies_closed(&a_peer));
    }

    #[test]
    fn too_many_descriptors_for_one_message_are_refused() {
        let (a, _peer) = traced();
        let many: Vec<Fd> = (0..=sys::scm::MAX_FDS)
            .map(|_| Fd::from(sys::fd::dup(a.as_fd()).unwrap()))
            .collect();
        assert!(matches!(encode(&many), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn a_panic_while_encoding_leaves_no_table_and_no_descriptor() {
        struct Bomb(Fd);
        impl Serialize for Bomb {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let _ = self.0.serialize(s);
                panic!("boom");
            }
        }
        let (a, a_peer) = traced();
        let bomb = Bomb(Fd::from(a));
        let caught = panic::catch_unwind(AssertUnwindSafe(|| encode(&bomb)));
        assert!(caught.is_err());
        drop(bomb);
        assert!(all_copies_closed(&a_peer), "the duplicate was closed");
        let (b, _b_peer) = traced();
        assert!(
            serde_json::to_string(&Fd::from(b)).is_err(),
            "no table left behind"
        );
    }
}
