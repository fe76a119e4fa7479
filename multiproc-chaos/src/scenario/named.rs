//! A named queue opened by unrelated processes: 3 producers and 2 consumers that are
//! separate programs (this binary's `peer` subcommand), which find the queue and the ledger
//! by name; whichever comes first creates the queue. Any of them is SIGKILLed at a random
//! instant, the creator included; the checks are the queue scenario's.

use std::process::{Command, Stdio};

use multiproc::Queue;

use crate::crew::{Crew, Member, Run};
use crate::ledger::{Ledger, Msg, Phase, IDS};
use crate::scenario::queue::{consume, drain, produce};

const PRODUCERS: usize = 3;
const CONSUMERS: usize = 2;
const BOUND: usize = 128;

pub(crate) fn run(run: &mut Run) -> multiproc::Result<()> {
    let ledger = Ledger::create(&run.name("ledger"))?;
    let queue = run.name("queue");
    let outcome = with_names(run, &ledger, &queue);
    let _ = Queue::<Msg>::unlink(&queue);
    ledger.unlink()?;
    outcome
}

fn with_names(run: &mut Run, ledger: &Ledger, queue: &str) -> multiproc::Result<()> {
    let exe = std::env::current_exe()?;
    let mut ids = 0u32;
    let mut start = |run: &mut Run, slot: usize| -> multiproc::Result<Member> {
        let mut cmd = Command::new(&exe);
        cmd.args(["peer", queue, ledger.name()])
            .stdin(Stdio::null());
        if slot < PRODUCERS {
            if ids as usize >= IDS {
                return Err(multiproc::Error::InvalidState("out of producer ids".into()));
            }
            cmd.args([ids.to_string(), run.rng.u64(..).to_string()]);
            ids += 1;
        }
        Ok(Member::Program(cmd.spawn()?))
    };
    let mut crew = Crew::default();
    for slot in 0..PRODUCERS + CONSUMERS {
        crew.push(start(run, slot)?);
    }
    let length = run.millis(300..1500);
    // Programs start slower than forks: kills come less often.
    crew.chaos(run, length, 10..80, &mut start);
    ledger.set_phase(Phase::StopProducers);
    crew.finish(run, 0..PRODUCERS);
    ledger.set_phase(Phase::StopAll);
    crew.finish(run, PRODUCERS..PRODUCERS + CONSUMERS);
    // Every peer may have died before one created it; then nothing was sent either (the
    // audit tells).
    if let Ok(q) = Queue::<Msg>::open(queue) {
        drain(run, &q, ledger);
    }
    let audit = ledger.audit(ids, crew.kills_of(PRODUCERS..PRODUCERS + CONSUMERS));
    run.tally.checked += audit.checked;
    for f in audit.failures {
        run.fail(f);
    }
    Ok(())
}

/// The `peer QUEUE LEDGER [ID SEED]` subcommand: a producer with that id, or a consumer.
pub(crate) fn peer(args: &[String]) -> Result<(), String> {
    let parent = std::os::unix::process::parent_id();
    // An orphan (its supervisor was killed) leaves rather than run on.
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
    });
    let [queue, ledger, rest @ ..] = args else {
        return Err("usage: peer QUEUE LEDGER [ID SEED]".into());
    };
    let ledger = Ledger::open(ledger).map_err(|e| format!("ledger {ledger}: {e}"))?;
    let q =
        Queue::<Msg>::open_or_create(queue, Some(BOUND)).map_err(|e| format!("{queue}: {e}"))?;
    match rest {
        [] => consume(&q, &ledger),
        [id, seed] => produce(
            &q,
            &ledger,
            id.parse().map_err(|e| format!("id: {e}"))?,
            seed.parse().map_err(|e| format!("seed: {e}"))?,
        ),
        _ => return Err("usage: peer QUEUE LEDGER [ID SEED]".into()),
    }
    Ok(())
}
