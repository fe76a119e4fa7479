//! The fuzz targets' entry points (`multiproc::fuzzing`, feature `fuzzing`) on stable: every
//! file of the committed corpus (`tests/fuzz_corpus/TARGET/`, minimized from the
//! cargo-fuzz runs of `fuzz/`) is replayed, and a property test per target feeds it
//! corpus files with random edits and plain random bytes. Bad input must give an error:
//! never a panic, a hang, an unbounded allocation, a leaked descriptor, or (handshakes) a
//! pass without the key.
//!
//! The property tests run proptest's default case count (256) per target; the long run:
//! `PROPTEST_CASES=1000000 cargo test --release -p multiproc --test fuzz -- --test-threads=2`.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The corpus files of `target`, sorted by name; a missing or empty corpus fails the test.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a corpus file");
            (path, bytes)
        })
        .collect()
}

/// Replays every corpus file of `target`, naming the file that failed.
fn replay(target: &str, entry: fn(&[u8])) {
    for (path, bytes) in corpus(target) {
        let outcome = std::panic::catch_unwind(|| entry(&bytes));
        assert!(
            outcome.is_ok(),
            "{target}: corpus file {} failed",
            path.display()
        );
    }
}

/// Inputs for `target`: a corpus file with bytes overwritten, cut short or extended, or
/// plain random bytes.
fn inputs(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, b)| b).collect();
    let mutated = (
        0..seeds.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(move |(seed, edits, cut, tail)| {
            let mut bytes = seeds[seed].clone();
            if !bytes.is_empty() {
                for (at, byte) in edits {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes.extend(tail);
            bytes
        });
    prop_oneof![3 => mutated, 1 => prop::collection::vec(any::<u8>(), 0..512)]
}

/// The property test of `target`: `entry` never fails on any input.
fn property(target: &str, entry: fn(&[u8])) {
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&inputs(target), |bytes| {
            entry(&bytes);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{target}: {e}"));
}

macro_rules! targets {
    ($($target:ident),* $(,)?) => {
        mod replay_corpus {
            $(
                #[test]
                fn $target() {
                    super::replay(stringify!($target), multiproc::fuzzing::$target);
                }
            )*
        }
        mod property {
            $(
                #[test]
                fn $target() {
                    super::property(stringify!($target), multiproc::fuzzing::$target);
                }
            )*
        }
    };
}

targets!(
    frame,
    connection,
    handshake_listener,
    handshake_client,
    pickle,
    binary,
    json,
    manager,
    handles,
    ring,
);
