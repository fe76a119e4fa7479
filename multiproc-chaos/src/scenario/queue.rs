//! A queue with 3 producers and 2 consumers; any of them is SIGKILLed at a random instant.

use std::time::Duration;

use multiproc::{Error, Process, Queue};

use crate::crew::{Crew, Member, Run, PATIENCE};
use crate::ledger::{Ledger, Msg, Phase, IDS, SEQS};

const PRODUCERS: usize = 3;
const CONSUMERS: usize = 2;

pub(crate) fn run(run: &mut Run) -> multiproc::Result<()> {
    let ledger = Ledger::create(&run.name("ledger"))?;
    ledger.unlink()?;
    let q = Queue::<Msg>::bounded(128)?;
    let mut ids = 0u32;
    let mut start = |run: &mut Run, slot: usize| -> multiproc::Result<Member> {
        let (q, ledger, seed) = (q.clone(), ledger.clone(), run.rng.u64(..));
        let child = if slot < PRODUCERS {
            if ids as usize >= IDS {
                return Err(Error::InvalidState("out of producer ids".into()));
            }
            ids += 1;
            let id = ids - 1;
            Process::new(move || produce(&q, &ledger, id, seed))
                .daemon(true)
                .start()?
        } else {
            Process::new(move || consume(&q, &ledger))
                .daemon(true)
                .start()?
        };
        Ok(Member::Forked(child))
    };
    let mut crew = Crew::default();
    for slot in 0..PRODUCERS + CONSUMERS {
        crew.push(start(run, slot)?);
    }
    let length = run.millis(300..1500);
    crew.chaos(run, length, 3..40, &mut start);
    ledger.set_phase(Phase::StopProducers);
    crew.finish(run, 0..PRODUCERS);
    ledger.set_phase(Phase::StopAll);
    crew.finish(run, PRODUCERS..PRODUCERS + CONSUMERS);
    // Whatever the consumers left (they stop after a quiet spell) is delivered here.
    drain(run, &q, &ledger);
    let audit = ledger.audit(ids, crew.kills_of(PRODUCERS..PRODUCERS + CONSUMERS));
    run.tally.checked += audit.checked;
    for f in audit.failures {
        run.fail(f);
    }
    Ok(())
}

/// Puts numbered messages until told to stop; marks each before and after its `put`.
pub(crate) fn produce(q: &Queue<Msg>, ledger: &Ledger, id: u32, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for seq in 0..SEQS as u32 {
        if ledger.phase() >= Phase::StopProducers {
            return;
        }
        let msg = Msg::new(id, seq, Msg::len_for(&mut rng));
        ledger.sending(id, seq);
        if let Err(e) = q.put_timeout(msg, PATIENCE) {
            panic!("producer {id}: put of message {seq}: {e}");
        }
        ledger.sent(id, seq);
    }
    while ledger.phase() < Phase::StopProducers {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Takes messages, checks each and counts its delivery, until told to stop and the queue
/// stayed empty for a while.
pub(crate) fn consume(q: &Queue<Msg>, ledger: &Ledger) {
    loop {
        match q.get_timeout(Duration::from_millis(300)) {
            Ok(msg) => take(&msg, ledger).unwrap_or_else(|e| panic!("consumer: {e}")),
            Err(Error::Timeout) if ledger.phase() == Phase::StopAll => return,
            Err(Error::Timeout) => {}
            Err(e) => panic!("consumer: get: {e}"),
        }
    }
}

/// Checks one delivered message and counts it.
pub(crate) fn take(msg: &Msg, ledger: &Ledger) -> Result<(), String> {
    msg.verify()?;
    match ledger.delivered(msg.id, msg.seq) {
        0 => Ok(()),
        n => Err(format!(
            "message ({}, {}) delivered again ({} before)",
            msg.id, msg.seq, n
        )),
    }
}

/// The supervisor takes what is left (a timed get sees a dead producer's last commit).
pub(crate) fn drain(run: &mut Run, q: &Queue<Msg>, ledger: &Ledger) {
    loop {
        match q.get_timeout(Duration::from_millis(300)) {
            Ok(msg) => {
                if let Err(e) = take(&msg, ledger) {
                    run.fail(format!("drain: {e}"));
                }
            }
            Err(Error::Timeout) => return,
            Err(e) => return run.fail(format!("drain: get: {e}")),
        }
    }
}
