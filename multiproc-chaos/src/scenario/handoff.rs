//! A lock and condition hand-off among 4 processes: each waits for its turn, takes a step
//! and notifies the others; any of them is SIGKILLed at a random instant (in the wait,
//! holding the lock, mid-update) and a replacement takes its turn.
//!
//! The state under the lock is `turn`, `writer` (who took the last step), `check` (a hash
//! of both) and the time of the last step. A step writes them in that order, so a holder
//! killed mid-step leaves them inconsistent: the next holder must be told `OwnerDied` then,
//! and repairs them. Inconsistent state without `OwnerDied` means two holders at once.
//! A participant whose turn came and who was not woken within the wait's bound is a lost
//! wake-up.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use multiproc::shm::RawArray;
use multiproc::{Condition, LockError, Process, WaitError};

use crate::crew::{Crew, Member, Run, PATIENCE};
use crate::ledger::{mix, Ledger, Phase};

const PARTIES: u64 = 4;
const TURN: usize = 0;
const WRITER: usize = 1;
const CHECK: usize = 2;
const STAMP: usize = 3;
/// How long a participant waits for its turn before it looks whether it was forgotten.
const WAIT: Duration = Duration::from_millis(1500);

pub(crate) fn run(run: &mut Run) -> multiproc::Result<()> {
    let ledger = Ledger::create(&run.name("ledger"))?;
    ledger.unlink()?;
    let cond = Condition::new()?;
    let state = RawArray::<u64>::new(4)?;
    state.set(WRITER, PARTIES - 1)?;
    state.set(CHECK, mix(PARTIES - 1))?;
    let start = |_: &mut Run, slot: usize| -> multiproc::Result<Member> {
        let (cond, state, ledger) = (cond.clone(), state.clone(), ledger.clone());
        let me = slot as u64;
        Ok(Member::Forked(
            Process::new(move || take_turns(&cond, &state, &ledger, me))
                .daemon(true)
                .start()?,
        ))
    };
    let mut crew = Crew::default();
    for slot in 0..PARTIES as usize {
        crew.push(start(run, slot)?);
    }
    let length = run.millis(300..1500);
    state.set(STAMP, now_ms())?;
    crew.chaos(run, length, 3..40, start);
    ledger.set_phase(Phase::StopAll);
    crew.finish(run, 0..PARTIES as usize);
    let turn = state.get(TURN)?;
    if turn == 0 {
        run.fail("the hand-off made no progress during the whole run");
    }
    // Every step taken was checked by the next holder.
    run.tally.checked += turn;
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn consistent(state: &RawArray<u64>) -> bool {
    let (turn, writer) = (state.get(TURN).unwrap(), state.get(WRITER).unwrap());
    state.get(CHECK).unwrap() == mix(turn << 8 | writer) && writer == (turn + PARTIES - 1) % PARTIES
}

fn repair(state: &RawArray<u64>) {
    let turn = state.get(TURN).unwrap();
    let writer = (turn + PARTIES - 1) % PARTIES;
    state.set(WRITER, writer).unwrap();
    state.set(CHECK, mix(turn << 8 | writer)).unwrap();
    state.set(STAMP, now_ms()).unwrap();
}

fn take_turns(cond: &Condition, state: &RawArray<u64>, ledger: &Ledger, me: u64) {
    let mine = || state.get(TURN).unwrap() % PARTIES == me;
    while ledger.phase() == Phase::Chaos {
        let (guard, died) = match cond.lock_timeout(PATIENCE) {
            Ok(g) => (g, false),
            Err(LockError::OwnerDied(g)) => (g, true),
            Err(e) => panic!("participant {me}: lock: {e:?}"),
        };
        if died {
            repair(state);
        } else if !consistent(state) {
            panic!("participant {me}: state torn without a dead owner (two holders?)");
        }
        let waited = Instant::now();
        let guard = match cond
            .wait_while_timeout(guard, WAIT, || !mine() && ledger.phase() == Phase::Chaos)
        {
            Ok(g) => g,
            Err(WaitError::OwnerDied(g)) => {
                repair(state);
                g
            }
            Err(WaitError::Timeout(g)) => {
                // Not our turn for all that time: fine while the one whose turn it is was
                // dead (its replacement comes); a lost wake-up if it has been ours for long.
                if mine() && now_ms().saturating_sub(state.get(STAMP).unwrap()) > 1000 {
                    panic!(
                        "participant {me}: its turn came {} ms ago and it was not woken \
                         (waited {:?})",
                        now_ms() - state.get(STAMP).unwrap(),
                        waited.elapsed()
                    );
                }
                g
            }
        };
        if mine() && ledger.phase() == Phase::Chaos {
            if !consistent(state) {
                panic!("participant {me}: state torn at its turn");
            }
            let turn = state.get(TURN).unwrap() + 1;
            state.set(TURN, turn).unwrap();
            state.set(WRITER, me).unwrap();
            state.set(CHECK, mix(turn << 8 | me)).unwrap();
            state.set(STAMP, now_ms()).unwrap();
            cond.notify_all().unwrap();
        }
        drop(guard);
    }
}
