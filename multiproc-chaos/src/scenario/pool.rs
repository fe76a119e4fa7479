//! A pool of 4 running 10,000 tasks; workers are SIGKILLed at random instants. Every task
//! must end done (with the right value) or failed with `WorkerDied`, at most one per kill,
//! and `close` + `join` must return.

use std::time::{Duration, Instant};

use multiproc::process::send_signal;
use multiproc::{Error, Pid, Pool, Signal};

use crate::crew::{Run, PATIENCE};
use crate::ledger::mix;

const TASKS: u64 = 10_000;

fn work(x: u64) -> u64 {
    (0..50).fold(x, |acc, _| mix(acc))
}

pub(crate) fn run(run: &mut Run) -> multiproc::Result<()> {
    let pool = Pool::new(4)?;
    let results = (0..TASKS)
        .map(|x| pool.apply_async(work, x))
        .collect::<multiproc::Result<Vec<_>>>()?;
    let mut kills = 0u64;
    for _ in 0..run.rng.u64(1..8) {
        std::thread::sleep(run.millis(0..25));
        let pids: Vec<Pid> = pool.pids();
        if pids.is_empty() || results.iter().all(|r| r.ready()) {
            break;
        }
        let victim = pids[run.rng.usize(..pids.len())];
        if send_signal(victim, Signal::KILL).is_ok() {
            kills += 1;
        }
    }
    run.tally.kills += kills;
    let deadline = Instant::now() + PATIENCE * 4;
    let mut died = 0u64;
    for (x, r) in results.iter().enumerate() {
        match r.get_deadline(deadline) {
            Ok(v) if v == work(x as u64) => run.tally.checked += 1,
            Ok(v) => run.fail(format!("task {x} returned {v}, not {}", work(x as u64))),
            Err(Error::WorkerDied(_)) => {
                died += 1;
                run.tally.checked += 1;
            }
            Err(e) => run.fail(format!("task {x}: {e}")),
        }
    }
    if died > kills {
        run.fail(format!(
            "{died} tasks failed with WorkerDied after {kills} kills"
        ));
    }
    // The pool goes on after the kills: a last batch runs whole.
    let after = pool.map(work, 0..100u64)?;
    if after != (0..100).map(work).collect::<Vec<_>>() {
        run.fail("a map after the kills returned wrong values");
    }
    pool.close();
    let joined = Instant::now();
    pool.join()?;
    if joined.elapsed() > Duration::from_secs(10) {
        run.fail(format!("pool join took {:?}", joined.elapsed()));
    }
    Ok(())
}
