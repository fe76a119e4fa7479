//! A pipe carrying 64 MiB messages; the sender or the receiver is SIGKILLed at a random
//! instant, usually in the middle of a message. The survivor must get an error within a
//! bound (never a hang, never a truncated or corrupted message passed off as whole), and
//! every message that does arrive must be exact.

use std::time::Instant;

use multiproc::{pipe, Process};

use crate::crew::{Exit, Member, Run, PATIENCE};
use crate::ledger::mix;

const SIZE: usize = 64 << 20;

/// A 64 MiB message whose every 8-byte word depends on `seed` and its place.
fn message(seed: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIZE);
    for i in 0..(SIZE / 8) as u64 {
        m.extend_from_slice(&mix(seed ^ i).to_le_bytes());
    }
    m
}

fn verify(seed: u64, m: &[u8]) -> Result<(), String> {
    if m.len() != SIZE {
        return Err(format!("a message of {} bytes, not {SIZE}", m.len()));
    }
    match m
        .chunks_exact(8)
        .zip(0u64..)
        .find(|(w, i)| u64::from_le_bytes((*w).try_into().unwrap()) != mix(seed ^ i))
    {
        Some((_, i)) => Err(format!("message corrupted at byte {}", i * 8)),
        None => Ok(()),
    }
}

pub(crate) fn run(run: &mut Run) -> multiproc::Result<()> {
    for _ in 0..run.rng.u32(2..5) {
        let seed = run.rng.u64(..);
        let (mut near, mut far) = pipe()?;
        let kill_after = run.millis(0..300);
        if run.rng.bool() {
            // The sender dies.
            let sender = Process::new(move || {
                let m = message(seed);
                loop {
                    if far.send_bytes(&m).is_err() {
                        return;
                    }
                }
            })
            .daemon(true)
            .start()?;
            let mut sender = Member::Forked(sender);
            // The clock starts with the first bytes (making the message takes a while).
            if !near.poll(Some(PATIENCE))? {
                run.fail("receiver: the sender sent nothing");
            }
            let kill_at = Instant::now() + kill_after;
            let mut killed = false;
            loop {
                if !killed && Instant::now() >= kill_at {
                    if let Err(why) = sender.kill() {
                        run.fail(format!("pipe sender: {why}"));
                    }
                    run.tally.kills += 1;
                    killed = true;
                }
                let wait = if killed {
                    PATIENCE
                } else {
                    kill_at.saturating_duration_since(Instant::now())
                };
                if !near.poll(Some(wait))? {
                    if killed {
                        run.fail("receiver: nothing (not even end of file) after the sender died");
                        break;
                    }
                    continue;
                }
                match near.recv_bytes() {
                    Ok(m) => match verify(seed, &m) {
                        Ok(()) => run.tally.checked += 1,
                        Err(e) => {
                            run.fail(format!("receiver: {e}"));
                            break;
                        }
                    },
                    Err(_) if killed => break,
                    Err(e) => {
                        run.fail(format!("receiver: {e} while the sender lived"));
                        break;
                    }
                }
            }
            if !killed {
                let _ = sender.kill();
            }
        } else {
            // The receiver dies: it kills itself from a second thread, so the kill lands
            // while this process is inside `send_bytes`.
            let m = message(seed);
            let receiver = Process::new(move || {
                std::thread::spawn(move || {
                    std::thread::sleep(kill_after);
                    let me = multiproc::Pid::from(std::process::id());
                    let _ = multiproc::process::send_signal(me, multiproc::Signal::KILL);
                });
                loop {
                    match far.recv_bytes() {
                        Ok(m) => verify(seed, &m).unwrap_or_else(|e| panic!("receiver: {e}")),
                        Err(e) => panic!("receiver: {e} while the sender lived"),
                    }
                }
            })
            .daemon(true)
            .start()?;
            let mut receiver = Member::Forked(receiver);
            let mut sends = 0u32;
            let failed_at = loop {
                let began = Instant::now();
                match near.send_bytes(&m) {
                    Ok(()) => sends += 1,
                    Err(_) => break began,
                }
            };
            if failed_at.elapsed() > PATIENCE {
                run.fail(format!(
                    "sender: took {:?} to see the receiver dead",
                    failed_at.elapsed()
                ));
            }
            match receiver.wait_until(Instant::now() + PATIENCE) {
                Exit::Killed => run.tally.kills += 1,
                other => run.fail(format!("pipe receiver: {other:?}")),
            }
            run.tally.checked += u64::from(sends);
        }
    }
    Ok(())
}
