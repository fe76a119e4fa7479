//! What the participants of a run send and what they write down, so that the supervisor can
//! tell after the kills what was fully sent, what was delivered, and how often.
//!
//! Every message carries its producer's id, a sequence number and a checksum of the whole.
//! A producer marks a message `SENDING` before it hands it over and `SENT` once the call
//! returned; a consumer counts each delivery. The ledger is one named shared-memory block
//! of single bytes, so forked children and separate programs (which open it by name)
//! write it alike, and a process killed at any instant leaves whole bytes behind.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use multiproc::SharedMemory;
use serde::{Deserialize, Serialize};

/// Producer incarnations per run (a replacement producer takes a fresh id).
pub(crate) const IDS: usize = 192;
/// Messages per producer incarnation.
pub(crate) const SEQS: usize = 1 << 15;

const FLAGS: usize = 64;
const PHASE: usize = 0;
const MARKS: usize = FLAGS;
const COUNTS: usize = MARKS + IDS * SEQS;
const SIZE: usize = COUNTS + IDS * SEQS;

/// A producer's mark for one message.
const SENDING: u8 = 2;
const SENT: u8 = 1;

/// Where a run stands: participants poll it to know when to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Kills happen; everybody works.
    Chaos = 0,
    /// Producers stop (consumers go on draining).
    StopProducers = 1,
    /// Everybody stops once there is nothing left to take.
    StopAll = 2,
}

/// One message of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Msg {
    pub(crate) id: u32,
    pub(crate) seq: u32,
    pub(crate) body: Vec<u8>,
    pub(crate) check: u64,
}

impl Msg {
    /// Message `seq` of producer `id`, with a body of `len` bytes that depend on both.
    pub(crate) fn new(id: u32, seq: u32, len: usize) -> Msg {
        let mut word = mix(u64::from(id) << 32 | u64::from(seq));
        let body = (0..len)
            .map(|i| {
                if i % 8 == 0 {
                    word = mix(word);
                }
                (word >> (8 * (i % 8))) as u8
            })
            .collect::<Vec<u8>>();
        let check = checksum(id, seq, &body);
        Msg {
            id,
            seq,
            body,
            check,
        }
    }

    /// A body length for message `seq`: mostly small, now and then up to 64 KiB, so kills
    /// land inside long copies and ring growth too.
    pub(crate) fn len_for(rng: &mut fastrand::Rng) -> usize {
        if rng.u8(..) < 8 {
            rng.usize(..64 * 1024)
        } else {
            rng.usize(..300)
        }
    }

    /// `Err` naming what is wrong when the message is not what its producer made.
    pub(crate) fn verify(&self) -> Result<(), String> {
        if (self.id as usize) >= IDS || (self.seq as usize) >= SEQS {
            return Err(format!("message ({}, {}) out of range", self.id, self.seq));
        }
        if checksum(self.id, self.seq, &self.body) != self.check {
            return Err(format!(
                "message ({}, {}) of {} bytes is corrupted (checksum mismatch)",
                self.id,
                self.seq,
                self.body.len()
            ));
        }
        Ok(())
    }
}

/// A 64-bit mixer (splitmix64's finaliser).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a over the header and the body.
fn checksum(id: u32, seq: u32, body: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in id
        .to_le_bytes()
        .iter()
        .chain(&seq.to_le_bytes())
        .chain(&(body.len() as u64).to_le_bytes())
        .chain(body)
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The shared record of one run.
#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    shm: Arc<SharedMemory>,
}

/// What an audit found.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    /// Deliveries looked at.
    pub(crate) checked: u64,
    /// Fully sent messages never delivered (a consumer killed after taking one loses it).
    pub(crate) missing: u64,
    /// Broken promises: duplicates, deliveries of messages never sent, too many missing.
    pub(crate) failures: Vec<String>,
}

impl Ledger {
    /// Creates the ledger under `name` (in `/dev/shm`; the caller unlinks it).
    pub(crate) fn create(name: &str) -> multiproc::Result<Ledger> {
        Ok(Ledger {
            shm: Arc::new(SharedMemory::create(name, SIZE)?),
        })
    }

    /// Opens the ledger another process created.
    pub(crate) fn open(name: &str) -> multiproc::Result<Ledger> {
        Ok(Ledger {
            shm: Arc::new(SharedMemory::open(name)?),
        })
    }

    /// Removes the name; mappings (and forked children's) stay valid.
    pub(crate) fn unlink(&self) -> multiproc::Result<()> {
        self.shm.unlink()
    }

    /// The name separate programs open it by.
    pub(crate) fn name(&self) -> &str {
        self.shm.name()
    }

    fn byte(&self, at: usize) -> &AtomicU8 {
        &self.shm.as_atomic_bytes()[at]
    }

    fn slot(id: u32, seq: u32) -> usize {
        id as usize * SEQS + seq as usize
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.byte(PHASE).load(Ordering::Acquire) {
            0 => Phase::Chaos,
            1 => Phase::StopProducers,
            _ => Phase::StopAll,
        }
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.byte(PHASE).store(phase as u8, Ordering::Release);
    }

    /// Before the hand-over: the message may or may not arrive.
    pub(crate) fn sending(&self, id: u32, seq: u32) {
        self.byte(MARKS + Self::slot(id, seq))
            .store(SENDING, Ordering::Release);
    }

    /// After the call that hands it over returned: it must arrive exactly once.
    pub(crate) fn sent(&self, id: u32, seq: u32) {
        self.byte(MARKS + Self::slot(id, seq))
            .store(SENT, Ordering::Release);
    }

    /// Counts one delivery of message `seq` of `id`; returns how many there were before.
    pub(crate) fn delivered(&self, id: u32, seq: u32) -> u8 {
        self.byte(COUNTS + Self::slot(id, seq))
            .fetch_add(1, Ordering::AcqRel)
    }

    /// Checks every message of producers `0..ids`: each one fully sent was delivered once,
    /// one being sent at most once, none that was never sent. Up to `allowed_losses` fully
    /// sent messages may be missing (one per consumer killed after taking a message).
    pub(crate) fn audit(&self, ids: u32, allowed_losses: u64) -> Audit {
        let mut audit = Audit::default();
        let note = |failures: &mut Vec<String>, what: String| {
            if failures.len() < 10 {
                failures.push(what);
            }
        };
        for id in 0..ids.min(IDS as u32) {
            for seq in 0..SEQS as u32 {
                let slot = Self::slot(id, seq);
                let mark = self.byte(MARKS + slot).load(Ordering::Acquire);
                let count = self.byte(COUNTS + slot).load(Ordering::Acquire);
                audit.checked += u64::from(count);
                match (mark, count) {
                    (_, 2..) => note(
                        &mut audit.failures,
                        format!("message ({id}, {seq}) delivered {count} times"),
                    ),
                    (0, 1) => note(
                        &mut audit.failures,
                        format!("message ({id}, {seq}) delivered but never sent"),
                    ),
                    (SENT, 0) => audit.missing += 1,
                    _ => {}
                }
            }
        }
        if audit.missing > allowed_losses {
            audit.failures.push(format!(
                "{} fully sent messages never delivered (at most {allowed_losses} may be lost \
                 with killed consumers)",
                audit.missing
            ));
        }
        audit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh ledger per call: the tests run on several threads of one process, so the
    /// name carries a counter besides the pid.
    fn ledger() -> Ledger {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let l = Ledger::create(&format!("mpchaos-{}-unit-{n}", std::process::id())).unwrap();
        l.unlink().unwrap();
        l
    }

    #[test]
    fn verify_catches_a_changed_byte_header_or_length() {
        let m = Msg::new(3, 9, 100);
        m.verify().unwrap();
        let mut bad = m.clone();
        bad.body[57] ^= 1;
        assert!(bad.verify().is_err());
        let mut bad = m.clone();
        bad.seq = 10;
        assert!(bad.verify().is_err());
        let mut bad = m;
        bad.body.pop();
        assert!(bad.verify().is_err());
        assert!(Msg::new(IDS as u32, 0, 0).verify().is_err());
    }

    #[test]
    fn audit_passes_exactly_once_and_in_flight_messages() {
        let l = ledger();
        for seq in 0..5 {
            l.sending(0, seq);
            l.sent(0, seq);
            assert_eq!(l.delivered(0, seq), 0);
        }
        l.sending(0, 5); // in flight when its producer died: delivered
        l.delivered(0, 5);
        l.sending(1, 0); // in flight, not delivered
        let a = l.audit(2, 0);
        assert!(a.failures.is_empty(), "{:?}", a.failures);
        assert_eq!((a.checked, a.missing), (6, 0));
    }

    #[test]
    fn audit_catches_duplicates_phantoms_and_losses() {
        let l = ledger();
        l.sent(0, 0);
        l.delivered(0, 0);
        l.delivered(0, 0);
        assert!(l.audit(1, 0).failures[0].contains("2 times"));

        let l = ledger();
        l.delivered(0, 3);
        assert!(l.audit(1, 0).failures[0].contains("never sent"));

        let l = ledger();
        l.sent(0, 0);
        l.sent(0, 1);
        let a = l.audit(1, 1);
        assert_eq!(a.missing, 2);
        assert!(a.failures[0].contains("never delivered"));
        assert!(l.audit(1, 2).failures.is_empty());
    }
}
