//! The entry points the fuzz targets (`fuzz/`) and the corpus and property tests
//! (`tests/fuzz_corpus.rs`) share, behind the feature `fuzzing`. Not a public API: each
//! function feeds bytes a peer could send to one decoder, and panics only when the decoder
//! broke a promise (a panic of its own, an unbounded loop or allocation, a leaked
//! descriptor, a handshake passed without the key).
#![forbid(unsafe_code)]
#![allow(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::codec::{Binary, Codec, Json, Pickle};
use crate::connection::fuzz::Side;
use crate::error::Error;

/// The connection frame decoder on `bytes`.
pub fn frame(bytes: &[u8]) {
    crate::connection::fuzz::frame_header(bytes);
}

/// A connection's receive path on a stream of `bytes` from a peer that then closed.
pub fn connection(bytes: &[u8]) {
    crate::connection::fuzz::receive(bytes);
}

/// A listener's side of the authkey handshake, talking to a client that sent `bytes`.
pub fn handshake_listener(bytes: &[u8]) {
    crate::connection::fuzz::handshake(Side::Listener, bytes);
}

/// A client's side of the authkey handshake, talking to a server that sent `bytes`.
pub fn handshake_client(bytes: &[u8]) {
    crate::connection::fuzz::handshake(Side::Client, bytes);
}

/// A value with every serde shape a decoder meets: nesting, maps, enums, borrowed and owned
/// strings and bytes, wide integers.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Unit,
    Int(i64),
    Wide(u128),
    Float(f64),
    Char(char),
    Text(String),
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    List(Vec<Shape>),
    Map(BTreeMap<String, Shape>),
    Pair(Box<Shape>, Option<Box<Shape>>),
    Record {
        flag: bool,
        small: u8,
        numbers: Vec<i32>,
        keyed: HashMap<u16, String>,
    },
}

/// Decodes `bytes` as several types with codec `C`; a value that decodes re-encodes.
fn decode_as<C: Codec>(bytes: &[u8]) {
    if let Ok(shape) = C::decode::<Shape>(bytes) {
        let mut out = Vec::new();
        C::encode(&shape, &mut out).expect("a decoded value encodes");
    }
    let _ = C::decode::<String>(bytes);
    let _ = C::decode::<Vec<u64>>(bytes);
    let _ = C::decode::<(u8, Option<Vec<String>>, HashMap<String, f64>)>(bytes);
}

/// The binary (postcard) codec on `bytes`.
pub fn binary(bytes: &[u8]) {
    decode_as::<Binary>(bytes);
}

/// The JSON codec on `bytes`.
pub fn json(bytes: &[u8]) {
    decode_as::<Json>(bytes);
    let _ = Json::decode::<serde_json::Value>(bytes);
}

/// The pickle codec on `bytes`.
pub fn pickle(bytes: &[u8]) {
    decode_as::<Pickle>(bytes);
    if let Ok(value) = Pickle::decode::<serde_pickle::Value>(bytes) {
        serde_pickle::value_to_vec(&value, serde_pickle::SerOptions::new())
            .expect("a decoded pickle encodes");
    }
}

/// The manager's request decoder, and a server handling what decodes.
pub fn manager(bytes: &[u8]) {
    crate::manager::fuzz::requests(bytes);
}

/// Values with handles (connection ends, descriptors, queues, locks, shared memory),
/// decoded from `bytes[1..]` with `bytes[0] % 4` descriptors beside them: every descriptor
/// is either taken by a handle or closed, whatever the bytes say.
pub fn handles(bytes: &[u8]) {
    let Some((&count, rest)) = bytes.split_first() else {
        return;
    };
    // The descriptors are copies of one unlinked file with a name of its own, so a leak is
    // told apart from the descriptors of other threads (tests run in parallel).
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "multiproc-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = std::env::temp_dir().join(&name);
    let file = std::fs::File::create(&path).expect("create a scratch file");
    std::fs::remove_file(&path).expect("unlink the scratch file");
    let fds = || -> Vec<OwnedFd> {
        (0..count % 4)
            .map(|_| file.try_clone().expect("dup").into())
            .collect()
    };
    let _ = crate::handle::decode::<Vec<crate::handle::Fd>>(rest, fds());
    let _ = crate::handle::decode::<(Option<crate::Connection>, u8)>(rest, fds());
    let _ = crate::handle::decode::<crate::Queue<u32>>(rest, fds());
    let _ = crate::handle::decode::<(crate::Lock, crate::Value<u64>)>(rest, fds());
    match crate::handle::decode::<crate::SharedMemory>(rest, fds()) {
        Ok(_) | Err(Error::Codec(_)) => {}
        Err(e) => panic!("unexpected handle decode error {e}"),
    }
    drop(file);
    let leaked = std::fs::read_dir("/proc/self/fd")
        .expect("list descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains(&name))
        .count();
    assert_eq!(leaked, 0, "a decode leaked a descriptor");
}

/// A queue ring with arbitrary control-page states, driven by the program in `bytes`.
pub fn ring(bytes: &[u8]) {
    crate::queue::ring_fuzz(bytes);
}
