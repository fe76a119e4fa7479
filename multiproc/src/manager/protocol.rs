//! The manager's wire format: the requests a proxy sends and the responses the server
//! gives, as serde enums over a [`Connection`](crate::Connection) (the binary codec).
//!
//! Values travel as the bytes the proxy encoded: the server never needs the Rust types of
//! keys and values. It decodes a stored value only for the numeric read-modify-write
//! operations, where the request says which number type the bytes hold ([`NumKind`]).
#![forbid(unsafe_code)]

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::{Binary, Codec};
use crate::error::{Error, Result};

/// An encoded value.
pub(crate) type Bytes = Vec<u8>;

/// The id of a shared object in its server.
pub(crate) type ObjectId = u64;

/// Encodes one value the way proxies and the server agree on (the binary codec).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
    let mut out = Vec::new();
    Binary::encode(value, &mut out)?;
    Ok(out)
}

/// Decodes one value encoded by [`encode`].
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Binary::decode(bytes)
}

/// What kind of object a proxy refers to; checked when a published name is looked up.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dict,
    List,
    Namespace,
    Value,
    Array,
    Queue,
    Lock,
    RLock,
    Semaphore,
    Condition,
    Event,
    Barrier,
    Custom,
    SharedMemory,
    Set,
}

/// How long a server-side wait may take.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// As long as it takes.
    Forever,
    /// Not at all: a `try_` form.
    Try,
    /// At most this long: a `_timeout` or `_deadline` form.
    For(Duration),
}

/// A request on one connection; the server answers each with one [`Response`].
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Request {
    /// Creates a shared object and answers its id.
    Create(Create),
    /// Calls an operation on an object.
    Call(ObjectId, Op),
    /// Names an object so that other users of the server can look it up.
    Publish(String, ObjectId, Kind),
    /// Looks a published name up: answers [`Response::Object`].
    Lookup(String),
    /// Stops the server after answering.
    Shutdown,
    /// From now on, this connection's requests and responses go through this mailbox (a
    /// client on the server's machine); answered on the socket.
    Attach(super::mailbox::Mailbox),
}

/// What to create.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Create {
    Dict(Vec<(Bytes, Bytes)>),
    /// A set: a map whose values are empty.
    Set(Vec<Bytes>),
    List(Vec<Bytes>),
    Namespace,
    Value(Bytes),
    Array(Vec<Bytes>),
    Queue(Option<usize>),
    Lock,
    RLock,
    Semaphore {
        value: u64,
        bound: Option<u64>,
    },
    Condition,
    Event,
    Barrier(usize),
    /// A registered custom type, by its name, with its encoded init value.
    Custom(String, Bytes),
    SharedMemoryTracker,
}

/// The number type a stored value holds, for the numeric operations.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumKind {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

/// An operation on one object.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Op {
    // Maps (dict, namespace, value: a map with one entry under the empty key).
    Insert(Bytes, Bytes),
    Get(Bytes),
    Remove(Bytes),
    ContainsKey(Bytes),
    Len,
    Keys,
    Values,
    Items,
    Update(Vec<(Bytes, Bytes)>),
    Clear,
    /// Removes the entry inserted last (Python's `popitem`); answers it, or nothing.
    PopLast,
    /// `value += delta` (`-=` when the flag is set), answering the old and the new value.
    Add(Bytes, NumKind, Bytes, bool),
    /// Replaces `current` (absent: `None`) with `new`; answers whether it did and the value
    /// found.
    CompareAndSwap(Bytes, Option<Bytes>, Bytes),
    /// Inserts the value if the key is absent; answers the value now stored.
    SetDefault(Bytes, Bytes),
    // Lists and arrays (indices are checked by the server).
    Push(Bytes),
    Pop,
    At(u64),
    SetAt(u64, Bytes),
    InsertAt(u64, Bytes),
    RemoveAt(u64),
    Extend(Vec<Bytes>),
    Slice(u64, u64),
    AddAt(u64, NumKind, Bytes, bool),
    // Queues.
    Put(Bytes, Wait),
    Take(Wait),
    QSize,
    MaxSize,
    /// One item taken earlier is finished (`task_done`).
    TaskDone,
    /// Waits until every item put has been marked finished.
    JoinTasks(Wait),
    // Locks, semaphores, conditions.
    Acquire(Wait),
    Release,
    /// A reentrant acquire or release by the owner with this token (process and thread).
    OwnedAcquire(u64, Wait),
    OwnedRelease(u64),
    IsLocked,
    SemValue,
    CondWait(Wait),
    Notify(u64),
    NotifyAll,
    // Events.
    Set,
    Unset,
    IsSet,
    EventWait(Wait),
    // Barriers.
    BarrierWait(Wait),
    Abort,
    Reset,
    Parties,
    NWaiting,
    IsBroken,
    // Custom types.
    Custom(Bytes),
    // The shared-memory tracker: a segment name to unlink at shutdown.
    Track(String),
    Untrack(String),
}

/// The server's answer to one request.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Response {
    Unit,
    Id(ObjectId),
    Object(ObjectId, Kind),
    Bool(bool),
    Count(u64),
    Value(Option<Bytes>),
    Values(Vec<Bytes>),
    Pairs(Vec<(Bytes, Bytes)>),
    /// Old and new value of an `Add`.
    Added(Bytes, Bytes),
    /// Whether a compare-and-swap swapped, and the value it found.
    Swapped(bool, Option<Bytes>),
    Failed(Failure),
}

/// Why the server refused or could not finish an operation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// A `Wait::Try` found the object not ready.
    WouldBlock,
    /// A `Wait::For` ran out of time.
    Timeout,
    /// The barrier is broken.
    BrokenBarrier,
    /// Bad argument (an index out of range, a missing key, an overflow).
    InvalidArgument(String),
    /// Not allowed now (releasing an unlocked lock).
    InvalidState(String),
    /// A custom type's method failed with this message.
    Remote(String),
    /// The server knows no object with this id, or the operation does not fit it.
    NoSuchObject(String),
}

impl Failure {
    /// The [`Error`] a caller sees; `would_block` is the family's would-block variant.
    pub(crate) fn into_error(self, would_block: Error) -> Error {
        match self {
            Failure::WouldBlock => would_block,
            Failure::Timeout => Error::Timeout,
            Failure::BrokenBarrier => Error::BrokenBarrier,
            Failure::InvalidArgument(m) => Error::InvalidArgument(m),
            Failure::InvalidState(m) => Error::InvalidState(m),
            Failure::Remote(m) => Error::Remote(m),
            Failure::NoSuchObject(m) => Error::InvalidState(m),
        }
    }
}

/// Adds `delta` to `stored` (subtracts with `sub`), both encodings of the number type
/// `kind`; answers the new encoding. Overflow is refused rather than wrapped, as Python's
/// ints never wrap.
pub(crate) fn add(stored: &[u8], kind: NumKind, delta: &[u8], sub: bool) -> Result<Bytes, Failure> {
    macro_rules! go {
        ($t:ty) => {
            if sub {
                int::<$t>(stored, delta, <$t>::checked_sub)
            } else {
                int::<$t>(stored, delta, <$t>::checked_add)
            }
        };
    }
    fn int<T>(stored: &[u8], delta: &[u8], f: fn(T, T) -> Option<T>) -> Result<Bytes, Failure>
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let bad = |e: Error| Failure::InvalidArgument(format!("not a number of this type: {e}"));
        let a: T = decode(stored).map_err(bad)?;
        let b: T = decode(delta).map_err(bad)?;
        let sum =
            f(a, b).ok_or_else(|| Failure::InvalidArgument("the addition overflows".into()))?;
        encode(&sum).map_err(|e| Failure::InvalidArgument(e.to_string()))
    }
    match kind {
        NumKind::I8 => go!(i8),
        NumKind::I16 => go!(i16),
        NumKind::I32 => go!(i32),
        NumKind::I64 => go!(i64),
        NumKind::U8 => go!(u8),
        NumKind::U16 => go!(u16),
        NumKind::U32 => go!(u32),
        NumKind::U64 => go!(u64),
        NumKind::F32 if sub => int::<f32>(stored, delta, |a, b| Some(a - b)),
        NumKind::F32 => int::<f32>(stored, delta, |a, b| Some(a + b)),
        NumKind::F64 if sub => int::<f64>(stored, delta, |a, b| Some(a - b)),
        NumKind::F64 => int::<f64>(stored, delta, |a, b| Some(a + b)),
    }
}

/// A number type the server can add to in place (`increment`, `fetch_add`).
///
/// Integer overflow is an error ([`Error::InvalidArgument`]), never a wrap.
pub trait Number: Serialize + serde::de::DeserializeOwned + Copy + Send + 'static {
    /// Which number type this is, for the server.
    #[doc(hidden)]
    const KIND: NumKind;
}

macro_rules! number {
    ($($t:ty => $k:ident),*) => {$(
        impl Number for $t {
            const KIND: NumKind = NumKind::$k;
        }
    )*};
}
number!(i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8, u16 => U16, u32 => U32,
        u64 => U64, f32 => F32, f64 => F64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_decrements_and_refuses_overflow() {
        let v = encode(&1000i32).unwrap();
        let out = add(&v, NumKind::I32, &encode(&1i32).unwrap(), true).unwrap();
        assert_eq!(decode::<i32>(&out).unwrap(), 999);
        let max = encode(&u8::MAX).unwrap();
        assert!(add(&max, NumKind::U8, &encode(&1u8).unwrap(), false).is_err());
        let f = add(
            &encode(&0.5f64).unwrap(),
            NumKind::F64,
            &encode(&1.0f64).unwrap(),
            false,
        )
        .unwrap();
        assert_eq!(decode::<f64>(&f).unwrap(), 1.5);
    }

    #[test]
    fn garbage_requests_are_codec_errors() {
        assert!(decode::<Request>(&[0xff, 0xff, 0xff]).is_err());
        let r = encode(&Request::Call(7, Op::Len)).unwrap();
        assert!(matches!(
            decode::<Request>(&r).unwrap(),
            Request::Call(7, Op::Len)
        ));
    }
}
