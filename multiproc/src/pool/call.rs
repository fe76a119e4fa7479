//! What travels between the pool and its workers, and how a worker calls a task function
//! it knows only by address.
//!
//! A task is a plain `fn(A) -> R`. The parent names it, and a monomorphised [`run_chunk`]
//! that knows `A` and `R`, by their offsets from a fixed function of this crate (see
//! `process/entry.rs`); the worker adds its own address of that function and calls. The
//! workers run this same executable file: forked (through the pool's helper) from the
//! parent, or from a helper started by exec of it (Spawn, Forkserver), where only the
//! offsets, not the addresses, are the same; [`CodeNames`] checks that such a pool's code
//! lies in the executable. This is the one file of `pool/` with `unsafe`: turning offsets
//! back into function pointers.
#![allow(unsafe_code)]

use std::any::Any;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt::Display;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{Binary, Codec};
use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::process::{code_at, code_offset_here, offset_in_executable};
use crate::shm::RawArray;

/// What a task function may return: a value, or a `Result` whose `Err` becomes the task's
/// error ([`Error::TaskFailed`] with the error's `Display` text).
///
/// Implemented for `Result<T, E: Display>` and for the usual value types (numbers, `bool`,
/// `char`, `String`, `()`, `Vec`, `Option`, `Box`, arrays, tuples up to 6, maps and sets).
/// For a type of your own, implement it with the [`task_output!`](crate::task_output) macro:
/// `multiproc::task_output!(MyType);`.
pub trait TaskOutput {
    /// What the caller receives.
    type Value: Serialize + DeserializeOwned + Send + 'static;

    /// The value, or the text of the task's error.
    fn into_outcome(self) -> std::result::Result<Self::Value, String>;
}

impl<T: Serialize + DeserializeOwned + Send + 'static, E: Display> TaskOutput for Result<T, E> {
    type Value = T;

    fn into_outcome(self) -> std::result::Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Makes types of your own returnable from pool tasks as plain values (see [`TaskOutput`]).
///
/// ```
/// use multiproc::Pool;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
/// multiproc::task_output!(Point);
///
/// fn diagonal(i: i32) -> Point {
///     Point { x: i, y: i }
/// }
/// # fn main() -> multiproc::Result<()> {
/// let pool = Pool::new(1)?;
/// assert_eq!(pool.apply(diagonal, 3)?, Point { x: 3, y: 3 });
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! task_output {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::pool::TaskOutput for $t {
            type Value = $t;
            fn into_outcome(self) -> ::std::result::Result<$t, ::std::string::String> {
                ::std::result::Result::Ok(self)
            }
        }
    )*};
}

task_output!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String
);

macro_rules! generic_output {
    ($([$($g:ident),*] $t:ty;)*) => {$(
        impl<$($g: Serialize + DeserializeOwned + Send + 'static),*> TaskOutput for $t {
            type Value = $t;
            fn into_outcome(self) -> std::result::Result<$t, String> {
                Ok(self)
            }
        }
    )*};
}

generic_output! {
    [T] Vec<T>;
    [T] Option<T>;
    [T] Box<T>;
    [T] std::collections::VecDeque<T>;
    [A, B] (A, B);
    [A, B, C] (A, B, C);
    [A, B, C, D] (A, B, C, D);
    [A, B, C, D, E] (A, B, C, D, E);
    [A, B, C, D, E, F] (A, B, C, D, E, F);
}

impl<T: Serialize + DeserializeOwned + Send + 'static, const N: usize> TaskOutput for [T; N]
where
    [T; N]: Serialize + DeserializeOwned,
{
    type Value = [T; N];
    fn into_outcome(self) -> std::result::Result<[T; N], String> {
        Ok(self)
    }
}

impl<K, V, S> TaskOutput for std::collections::HashMap<K, V, S>
where
    Self: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = Self;
    fn into_outcome(self) -> std::result::Result<Self, String> {
        Ok(self)
    }
}

impl<K, V> TaskOutput for std::collections::BTreeMap<K, V>
where
    Self: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = Self;
    fn into_outcome(self) -> std::result::Result<Self, String> {
        Ok(self)
    }
}

impl<T, S> TaskOutput for std::collections::HashSet<T, S>
where
    Self: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = Self;
    fn into_outcome(self) -> std::result::Result<Self, String> {
        Ok(self)
    }
}

impl<T> TaskOutput for std::collections::BTreeSet<T>
where
    Self: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = Self;
    fn into_outcome(self) -> std::result::Result<Self, String> {
        Ok(self)
    }
}

/// One message on the task queue: a chunk of encoded arguments and what to call on them.
///
/// `id` must stay the first field: [`Marking`] reads it from the front of the encoding.
#[derive(Serialize, Deserialize)]
pub(crate) struct TaskMsg {
    pub(crate) id: u64,
    /// Offset of a `run_chunk::<A, R>` (see [`CodeNames`]).
    pub(crate) call: usize,
    /// Offset of the user's `fn(A) -> R`.
    pub(crate) func: usize,
    /// The chunk's arguments, an encoded `Vec<A>`.
    #[serde(with = "serde_bytes")]
    pub(crate) args: Vec<u8>,
}

/// Why a task produced no value, as the worker reports it (always decodable).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) enum Fail {
    Panicked {
        message: String,
        location: Option<String>,
    },
    /// The function returned `Err`; its `Display` text.
    Failed(String),
    /// The arguments did not decode or the results did not encode in the worker.
    Codec(String),
    /// The task was handed to workers too often without an answer (the Redis pool).
    WorkerDied(String),
}

impl From<Fail> for Error {
    fn from(f: Fail) -> Error {
        match f {
            Fail::Panicked { message, location } => Error::Panicked { message, location },
            Fail::Failed(message) => Error::TaskFailed(message),
            Fail::Codec(message) => Error::codec(message),
            Fail::WorkerDied(message) => Error::WorkerDied(message),
        }
    }
}

/// Everything that reaches the parent's result thread, from workers and from the helper.
#[derive(Serialize, Deserialize)]
pub(crate) enum Report {
    /// A chunk finished: its encoded `Vec<R::Value>`, or why not.
    Done {
        id: u64,
        #[serde(with = "serde_bytes")]
        values: Vec<u8>,
        fail: Option<Fail>,
    },
    /// The worker in `slot` has started and run the initializer: `init` says why the
    /// initializer failed (the worker then exits).
    Started {
        slot: usize,
        pid: Pid,
        init: Option<Fail>,
    },
    /// The worker in `slot` ended; `holding` is the id of the last task it took (0: none)
    /// and `how` its exit, in words.
    Exited {
        slot: usize,
        pid: Pid,
        holding: u64,
        how: String,
    },
    /// The helper has no worker left and the queue is closed and drained: nothing more comes.
    HelperDone,
    /// Sent by the parent itself to stop its result thread.
    Stop,
}

/// The signature every `run_chunk::<A, R>` shares once its types are erased.
type Call = fn(usize, &[u8], &mut Vec<u8>) -> std::result::Result<(), Fail>;

/// The addresses to put in a [`TaskMsg`] for `f`.
pub(crate) fn addresses<A, R>(f: fn(A) -> R) -> (usize, usize)
where
    A: DeserializeOwned,
    R: TaskOutput,
{
    let call: Call = run_chunk::<A, R>;
    (call as usize, f as usize)
}

/// How a pool names code for its workers: as offsets from the process module's anchor,
/// which name the same code in a worker forked from this process (every address kept) and
/// in one forked from a helper started by exec of this program (only the distances kept).
pub(crate) struct CodeNames {
    /// Whether the workers run another execution of this file (a Spawn or Forkserver
    /// helper): then only code of the executable, not of a shared library, may be named.
    fresh: bool,
    /// Addresses found in the executable so far (the check reads the loader's tables, far
    /// slower than a task round trip).
    checked: Mutex<HashSet<usize>>,
}

impl CodeNames {
    pub(crate) fn new(fresh: bool) -> CodeNames {
        CodeNames {
            fresh,
            checked: Mutex::new(HashSet::new()),
        }
    }

    /// The offsets to send for the addresses `(call, func)`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for code outside the executable in a fresh-execution pool.
    pub(crate) fn name(&self, (call, func): (usize, usize)) -> Result<(usize, usize)> {
        if self.fresh {
            let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            for addr in [call, func] {
                if !checked.contains(&addr) {
                    offset_in_executable(addr)?;
                    checked.insert(addr);
                }
            }
        }
        Ok((code_offset_here(call), code_offset_here(func)))
    }
}

/// Runs `msg` in this worker: the values encoded into `out`, or why not.
pub(crate) fn run(msg: &TaskMsg, out: &mut Vec<u8>) -> std::result::Result<(), Fail> {
    // SAFETY: `msg` came from this pool's task queue, which only `Pool` writes, and `call`
    // is the offset, named by `CodeNames`, of a `Call` made by `addresses` in the process
    // that built the pool. This worker runs the same executable file (forked from that
    // process, or from a helper that `run_fn` started only after checking the file's
    // identity), so the offset from this execution's anchor is that function here.
    let call = unsafe { std::mem::transmute::<usize, Call>(code_at(msg.call)) };
    call(code_at(msg.func), &msg.args, out)
}

/// The pool's initializer, as it travels to the helper: its code (offsets, as for tasks)
/// and its encoded argument.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct Init {
    call: usize,
    func: usize,
    #[serde(with = "serde_bytes")]
    args: Vec<u8>,
}

/// The signature every `run_init::<A>` shares once its types are erased.
type InitCall = fn(usize, &[u8]) -> std::result::Result<(), Fail>;

/// The addresses of an initializer `f` and of the `run_init` that knows its argument type.
pub(crate) fn init_addresses<A: DeserializeOwned>(f: fn(A)) -> (usize, usize) {
    let call: InitCall = run_init::<A>;
    (call as usize, f as usize)
}

impl Init {
    /// `offsets` from [`CodeNames::name`] of [`init_addresses`], and the encoded argument.
    pub(crate) fn new((call, func): (usize, usize), args: Vec<u8>) -> Init {
        Init { call, func, args }
    }

    /// Runs the initializer in this worker; a panic is caught and is the `Fail`.
    pub(crate) fn run(&self) -> std::result::Result<(), Fail> {
        // SAFETY: as in `run`: `call` is the offset of an `InitCall` made by
        // `init_addresses` in the process that built the pool, named by `CodeNames`.
        let call = unsafe { std::mem::transmute::<usize, InitCall>(code_at(self.call)) };
        call(code_at(self.func), &self.args)
    }
}

/// Decodes the initializer's argument and runs it.
fn run_init<A: DeserializeOwned>(func: usize, args: &[u8]) -> std::result::Result<(), Fail> {
    // SAFETY: `func` was made by `init_addresses::<A>` from an `fn(A)` together with this
    // very instance of `run_init`, and turned back into an address as in `run`.
    let f = unsafe { std::mem::transmute::<usize, fn(A)>(func) };
    let arg: A = Binary::decode(args).map_err(|e| Fail::Codec(e.to_string()))?;
    panic::catch_unwind(AssertUnwindSafe(|| f(arg))).map_err(panicked)
}

/// The addresses to put in a [`TaskMsg`] for a two-argument `f` (starmap).
pub(crate) fn pair_addresses<A, B, R>(f: fn(A, B) -> R) -> (usize, usize)
where
    A: DeserializeOwned,
    B: DeserializeOwned,
    R: TaskOutput,
{
    let call: Call = run_pairs::<A, B, R>;
    (call as usize, f as usize)
}

/// Decodes a chunk of `A`s, applies `f` to each, encodes the values.
fn run_chunk<A, R>(func: usize, args: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), Fail>
where
    A: DeserializeOwned,
    R: TaskOutput,
{
    // SAFETY: `func` was made by `addresses::<A, R>` from an `fn(A) -> R` together with the
    // address of this very instance of `run_chunk` (same `A` and `R`), and turned back into
    // an address of this execution by `run`.
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    apply_all(args, &f, out)
}

/// Decodes a chunk of `(A, B)`s, applies `f` to each pair, encodes the values.
fn run_pairs<A, B, R>(func: usize, args: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), Fail>
where
    A: DeserializeOwned,
    B: DeserializeOwned,
    R: TaskOutput,
{
    // SAFETY: as in `run_chunk`, from `pair_addresses::<A, B, R>` and an `fn(A, B) -> R`.
    let f = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(func) };
    apply_all(args, &|(a, b)| f(a, b), out)
}

/// The worker's side of a chunk: decode, call for each item (a panic is caught and ends the
/// chunk, as an exception ends Python's), encode.
pub(crate) fn apply_all<T, R>(
    args: &[u8],
    f: &impl Fn(T) -> R,
    out: &mut Vec<u8>,
) -> std::result::Result<(), Fail>
where
    T: DeserializeOwned,
    R: TaskOutput,
{
    let items: Vec<T> = Binary::decode(args).map_err(|e| Fail::Codec(e.to_string()))?;
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        match panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
            Ok(r) => values.push(r.into_outcome().map_err(Fail::Failed)?),
            Err(payload) => return Err(panicked(payload)),
        }
    }
    Binary::encode(&values, out)
        .map_err(|e| Fail::Codec(format!("the result cannot be encoded: {e}")))
}

/// The `Fail` of a caught panic: its message, and where it happened.
fn panicked(payload: Box<dyn Any + Send>) -> Fail {
    Fail::Panicked {
        message: crate::error::panic_message(&*payload),
        location: LAST_PANIC.with(Cell::take),
    }
}

thread_local! {
    /// Where the last panic of this worker happened, set by the worker's panic hook.
    pub(crate) static LAST_PANIC: Cell<Option<String>> = const { Cell::new(None) };
}

/// This worker's mark: the shared array of "last task taken" ids and its slot in it.
pub(crate) static MARK: OnceLock<(RawArray<u64>, usize)> = OnceLock::new();

/// The codec of the task queue: `Binary`, and when a worker decodes a task it first records
/// the task's id in its slot of the shared marks.
///
/// The queue decodes while the message is still in the ring (before its bytes are released),
/// so a worker killed before the mark leaves the message to another worker, and one killed
/// after it has its mark name the task: no task is ever lost without the parent knowing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Marking;

impl Codec for Marking {
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        Binary::encode(value, out)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        if let Some((marks, slot)) = MARK.get() {
            if let Ok((id, _)) = postcard::take_from_bytes::<u64>(bytes) {
                let _ = marks.set(*slot, id);
            }
        }
        Binary::decode(bytes)
    }
}
