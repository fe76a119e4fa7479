//! The ring's memory under loom: the control block on the heap and the data area as one
//! loom atomic per 8-byte word, so loom sees every access to shared memory, payload bytes
//! included. Small capacities make wrap-around and growth happen within a few messages.
//!
//! A yielding spin lock stands in for `RawLock`, whose own loom model covers it: threads in
//! a model do not die, and a yield per failed attempt is what loom needs to explore a lock
//! wait without an unbounded number of branches.

use crate::deadline::Deadline;
use std::io;

use super::{ConsumerSide, Control, Ident, Line, ProducerSide, Signal};
use crate::loom::{AtomicU32, AtomicU64, Ordering};
use crate::sys::identity::Token;

pub(super) const MAX_CAP: u64 = 256;
pub(super) const INITIAL_CAP: u64 = 64;
pub(super) const GROW_FREELY: u64 = 128;

/// In loom models every thread is the same live owner: mutual exclusion needs no ids.
pub(super) fn me() -> Token {
    Token::from_id(1)
}

pub(super) fn is_alive(_: Token) -> bool {
    true
}

/// The stand-in for `raw::RawLock`.
#[derive(Debug, Default)]
pub(super) struct RawLock(AtomicU32);

/// As `Acquired` of the real lock; a model's holders never die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Acquired {
    Normally,
    #[allow(dead_code)]
    OwnerDied,
}

impl RawLock {
    pub(super) fn lock(&self, _: Token, _: Deadline, _: fn(Token) -> bool) -> Result<Acquired, ()> {
        while self
            .0
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            loom::thread::yield_now();
        }
        Ok(Acquired::Normally)
    }

    pub(super) fn unlock(&self) -> bool {
        self.0.swap(0, Ordering::Release) != 0
    }

    /// A model's holders never die, so no waiter needs to watch them.
    pub(super) fn owner_id(&self) -> Option<u32> {
        None
    }
}

/// The heap control block and the data words.
#[derive(Debug)]
pub(super) struct Memory {
    control: Box<Control>,
    words: Vec<AtomicU64>,
}

impl Memory {
    /// A zeroed control block (loom atomics have no all-zero constructor) and data area.
    pub(super) fn create() -> io::Result<Memory> {
        let signal = || {
            Line(Signal {
                seq: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
                async_waiters: AtomicU32::new(0),
            })
        };
        let control = Box::new(Control {
            ident: Line(Ident {
                bound: AtomicU64::new(0),
                max_cap: AtomicU64::new(0),
            }),
            plock: Line(RawLock::default()),
            producer: Line(ProducerSide {
                tail: AtomicU64::new(0),
                tail_idx: AtomicU64::new(0),
                head_cache: AtomicU64::new(0),
                gets_cache: AtomicU64::new(0),
            }),
            puts: Line(AtomicU64::new(0)),
            clock: Line(RawLock::default()),
            consumer: Line(ConsumerSide {
                head: AtomicU64::new(0),
                gets: AtomicU64::new(0),
            }),
            cap: Line(AtomicU64::new(0)),
            closed: Line(AtomicU32::new(0)),
            not_empty: signal(),
            not_full: signal(),
            task_dones: Line(AtomicU64::new(0)),
            all_done: signal(),
        });
        let words = (0..MAX_CAP / 8).map(|_| AtomicU64::new(0)).collect();
        Ok(Memory { control, words })
    }

    pub(super) fn control(&self) -> &Control {
        &self.control
    }

    /// As the shm backend's `word`.
    ///
    /// # Safety
    /// As the shm backend's: here a bad offset panics, but the models keep the contract.
    pub(super) unsafe fn word(&self, off: u64) -> &AtomicU64 {
        &self.words[(off / 8) as usize]
    }

    /// One load and one store per word touched (the owner of the range is the only writer).
    ///
    /// # Safety
    /// As the shm backend's `write_at`.
    pub(super) unsafe fn write_at(&self, off: u64, src: &[u8]) {
        let mut at = off;
        let mut rest = src;
        while !rest.is_empty() {
            let w = &self.words[(at / 8) as usize];
            let first = (at & 7) as usize;
            let n = (8 - first).min(rest.len());
            let mut bytes = w.load(Ordering::Relaxed).to_le_bytes();
            bytes[first..first + n].copy_from_slice(&rest[..n]);
            w.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
            at += n as u64;
            rest = &rest[n..];
        }
    }

    /// Nothing to fault in: the model's memory is on the heap.
    pub(super) fn prefault(&self, cap: u64, write: bool) {
        let _ = (cap, write);
    }

    /// Hands `write` a zeroed buffer, then stores it word by word.
    ///
    /// # Safety
    /// As the shm backend's `write_with`.
    pub(super) unsafe fn write_with<R>(
        &self,
        off: u64,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        let mut buf = vec![0; len];
        let out = write(&mut buf);
        // SAFETY: the same contract, passed on.
        unsafe { self.write_at(off, &buf) };
        out
    }

    /// Copies the bytes out word by word, then hands them to `read`.
    ///
    /// # Safety
    /// As the shm backend's `read_at`.
    pub(super) unsafe fn read_at<R>(
        &self,
        off: u64,
        len: usize,
        read: impl FnOnce(&[u8]) -> R,
    ) -> R {
        let bytes: Vec<u8> = (off..off + len as u64)
            .map(|at| {
                (self.words[(at / 8) as usize].load(Ordering::Relaxed) >> ((at & 7) * 8)) as u8
            })
            .collect();
        read(&bytes)
    }

    /// # Safety
    /// As the shm backend's `move_within`.
    pub(super) unsafe fn move_within(&self, from: u64, to: u64, len: u64) {
        // SAFETY: the same contract, passed on.
        let bytes = unsafe { self.read_at(from, len as usize, <[u8]>::to_vec) };
        // SAFETY: the same contract, passed on.
        unsafe { self.write_at(to, &bytes) }
    }
}
