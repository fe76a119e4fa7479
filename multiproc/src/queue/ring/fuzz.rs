//! Entry point for the fuzz target and the corpus tests (feature `fuzzing`): a ring whose
//! control page and record headers hold arbitrary values, as a crashed process, a stray
//! writer to a named queue's file or a hostile process sharing the segment could leave
//! them, then driven by puts, gets and the repairs a dead lock holder triggers.
//!
//! Every call must return (they all run with a passed deadline), never panic and never
//! touch memory outside the mapping.

use std::mem::offset_of;

use super::{Control, GetFail, PutFail, Ring, HEADER, INITIAL_CAP, MAX_CAP};
use crate::deadline::Deadline;
use crate::loom::{AtomicU64, Ordering};

/// Words of the control page the fuzzer may overwrite (the whole page, locks included).
const CONTROL_WORDS: usize = std::mem::size_of::<Control>() / 8;

/// Caps above this are skipped: a valid ring that large is allowed to use that much memory,
/// which would only measure the machine, not the decoder.
const FUZZ_MAX_CAP: u64 = 4 << 20;

/// Runs `bytes` as a program against a fresh ring: a few real puts to start from, then
/// patches (`0x00..=0x7f`: a control-page word, `0x80..=0xbf`: a header word near `head`
/// or `tail`) and operations (`0xc0..`).
pub(crate) fn repair(bytes: &[u8]) {
    let Some((&setup, mut program)) = bytes.split_first() else {
        return;
    };
    let ring = Ring::create(u64::from(setup & 3)).expect("a ring");
    for n in 0..(setup >> 2) % 8 {
        let _ = ring.put(&vec![n; usize::from(n) * 9], Deadline::now());
    }
    let words = ring
        .memory
        .segment()
        .get_slice::<AtomicU64>(0, CONTROL_WORDS);
    while let Some((&op, rest)) = program.split_first() {
        program = rest;
        if op < 0xc0 {
            let (value, rest) = take_u64(program);
            program = rest;
            if op < 0x80 {
                patch_control(words, usize::from(op), value);
            } else {
                patch_header(&ring, op, value);
            }
            continue;
        }
        run(&ring, op, &mut program);
    }
    // Whatever state is left, the queue still answers.
    let _ = ring.len();
    let _ = ring.unfinished();
}

fn take_u64(bytes: &[u8]) -> (u64, &[u8]) {
    let n = bytes.len().min(8);
    let mut word = [0; 8];
    word[..n].copy_from_slice(&bytes[..n]);
    (u64::from_le_bytes(word), &bytes[n..])
}

/// Overwrites control word `index` (modulo the page) with `value`, or moves it by a small
/// signed step when `value`'s top byte is `0xff`, so the fuzzer can reach off-by-a-record
/// states as easily as wild ones.
fn patch_control(words: &[AtomicU64], index: usize, value: u64) {
    let index = index % CONTROL_WORDS;
    let word = &words[index];
    let new = if value >> 56 == 0xff {
        let step = (value as i8 as i64) * 8;
        word.load(Ordering::Relaxed).wrapping_add(step as u64)
    } else {
        value
    };
    if index == offset_of!(Control, cap) / 8
        && new.is_power_of_two()
        && new > FUZZ_MAX_CAP
        && new <= MAX_CAP
    {
        return;
    }
    word.store(new, Ordering::Relaxed);
}

/// Overwrites header word `op & 3` (`state`, `len`, `idx`, or the next record's `state`) of
/// the record at `tail` (`op & 4`) or at `head`.
fn patch_header(ring: &Ring, op: u8, value: u64) {
    let c = ring.ctl();
    let pos = if op & 4 != 0 {
        c.producer.0.tail.load(Ordering::Relaxed)
    } else {
        c.consumer.0.head.load(Ordering::Relaxed)
    };
    let word = u64::from(op & 3);
    let at = if word == 3 {
        pos.wrapping_add(HEADER)
    } else {
        pos.wrapping_add(word * 8)
    };
    // A `state` word may hold `pos | COMMITTED` exactly (the fuzzer could hardly guess it).
    let value = if op & 8 != 0 { pos | 1 } else { value };
    // A position the fuzzer made misaligned still patches an aligned word.
    let off = at & (INITIAL_CAP - 1) & !7;
    // SAFETY: the offset is 8-aligned and below `INITIAL_CAP <= MAX_CAP`, inside the
    // mapping; this thread is the only user of the ring, so no plain access races.
    unsafe { ring.memory.word(off) }.store(value, Ordering::Relaxed);
}

/// One operation; every wait has a passed deadline.
fn run(ring: &Ring, op: u8, program: &mut &[u8]) {
    let now = Deadline::now();
    match op % 8 {
        0 | 1 => {
            let len = program.first().map_or(0, |&b| usize::from(b) * 61);
            *program = program.get(1..).unwrap_or_default();
            match ring.put(&vec![op; len], now) {
                Ok(()) | Err(PutFail::NotNow | PutFail::Closed | PutFail::Corrupt(_)) => {}
                Err(PutFail::TooLong | PutFail::Unfilled) => {
                    panic!("a {len}-byte put of bytes is neither too long nor unfilled")
                }
            }
        }
        2 | 3 => match ring.get(now, |bytes| bytes.len()) {
            Ok(len) => assert!(len <= super::MAX_MESSAGE),
            Err(GetFail::NotNow | GetFail::Closed | GetFail::Corrupt(_)) => {}
        },
        4 => {
            let _ = ring.task_done();
        }
        5 => {
            let _ = ring.join(now);
        }
        6 => ring.shutdown(false),
        _ => {
            let _ = (
                ring.len(),
                ring.bound(),
                ring.is_shutdown(),
                ring.unfinished(),
            );
        }
    }
}
