//! A manager dict with 4 writers; writers are SIGKILLed at random instants, possibly in
//! the middle of a request. The server must go on serving the others, and the dict must
//! hold every entry whose `insert` returned, with its value, and no entry never sent.
//! Every other run then kills the server: the next proxy call must fail, not hang.

use std::time::{Duration, Instant};

use multiproc::manager::DictProxy;
use multiproc::process::send_signal;
use multiproc::{Error, Manager, Process, Signal};

use crate::crew::{Crew, Member, Run, PATIENCE};
use crate::ledger::{mix, Ledger, Phase, IDS, SEQS};

const WRITERS: usize = 4;

fn value(id: u32, seq: u32) -> u64 {
    mix(u64::from(id) << 32 | u64::from(seq))
}

pub(crate) fn run(run: &mut Run) -> multiproc::Result<()> {
    let ledger = Ledger::create(&run.name("ledger"))?;
    ledger.unlink()?;
    let manager = Manager::start()?;
    let dict = manager.dict::<(u32, u32), u64>()?;
    let mut ids = 0u32;
    let mut start = |_: &mut Run, _: usize| -> multiproc::Result<Member> {
        if ids as usize >= IDS {
            return Err(Error::InvalidState("out of writer ids".into()));
        }
        ids += 1;
        let (id, dict, ledger) = (ids - 1, dict.clone(), ledger.clone());
        Ok(Member::Forked(
            Process::new(move || write(&dict, &ledger, id))
                .daemon(true)
                .start()?,
        ))
    };
    let mut crew = Crew::default();
    for slot in 0..WRITERS {
        crew.push(start(run, slot)?);
    }
    let length = run.millis(300..1500);
    crew.chaos(run, length, 5..60, &mut start);
    ledger.set_phase(Phase::StopAll);
    crew.finish(run, 0..WRITERS);
    for ((id, seq), v) in dict.items()? {
        if v != value(id, seq) || id as usize >= IDS || seq as usize >= SEQS {
            run.fail(format!("entry ({id}, {seq}) holds {v:#x}, not its value"));
            continue;
        }
        if ledger.delivered(id, seq) > 0 {
            run.fail(format!("entry ({id}, {seq}) listed twice"));
        }
    }
    let audit = ledger.audit(ids, 0);
    run.tally.checked += audit.checked;
    for f in audit.failures {
        run.fail(f);
    }
    if run.rng.bool() {
        return manager.shutdown();
    }
    // The server itself killed: a proxy call fails with an error, at once, not a hang.
    let Some(server) = manager.server_pid() else {
        return Err(Error::InvalidState("the manager has no server pid".into()));
    };
    send_signal(server, Signal::KILL)?;
    run.tally.kills += 1;
    let dead_by = Instant::now() + PATIENCE;
    while !gone(server.as_raw()) && Instant::now() < dead_by {
        std::thread::sleep(Duration::from_millis(1));
    }
    let asked = Instant::now();
    if let Ok(n) = dict.len() {
        run.fail(format!("a proxy call answered ({n}) after its server died"));
    }
    if asked.elapsed() > PATIENCE {
        run.fail(format!(
            "a proxy call took {:?} to see its server dead",
            asked.elapsed()
        ));
    }
    let _ = manager.shutdown();
    Ok(())
}

fn write(dict: &DictProxy<(u32, u32), u64>, ledger: &Ledger, id: u32) {
    for seq in 0..SEQS as u32 {
        if ledger.phase() != Phase::Chaos {
            return;
        }
        ledger.sending(id, seq);
        match dict.insert(&(id, seq), &value(id, seq)) {
            Ok(None) => ledger.sent(id, seq),
            Ok(Some(old)) => panic!("writer {id}: entry {seq} already there ({old:#x})"),
            Err(e) => panic!("writer {id}: insert {seq}: {e}"),
        }
    }
    while ledger.phase() == Phase::Chaos {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether `pid` has ended (a zombie not yet reaped, or gone).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}
