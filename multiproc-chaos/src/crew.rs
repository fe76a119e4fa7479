//! The participants of a run, the supervisor's loop that kills one at a random instant
//! and puts a fresh one in its place, and the tally a run sends back to the driver.

use std::fmt::Display;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use multiproc::{Child, Error, Signal};
use serde::{Deserialize, Serialize};

/// How long any participant may take for one step before it counts as hung.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

/// The counts of one run (or of many, added up).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Tally {
    pub(crate) runs: u64,
    pub(crate) kills: u64,
    pub(crate) checked: u64,
    pub(crate) failures: Vec<String>,
}

impl Tally {
    pub(crate) fn add(&mut self, other: Tally) {
        self.runs += other.runs;
        self.kills += other.kills;
        self.checked += other.checked;
        self.failures.extend(other.failures);
    }
}

/// One run of one scenario, inside its supervisor process.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) rng: fastrand::Rng,
    pub(crate) tally: Tally,
    /// Prefix of every name this run puts in `/dev/shm` or the file system.
    prefix: String,
    names: u32,
}

impl Run {
    pub(crate) fn new(seed: u64, prefix: String) -> Run {
        Run {
            rng: fastrand::Rng::with_seed(seed),
            tally: Tally {
                runs: 1,
                ..Tally::default()
            },
            prefix,
            names: 0,
        }
    }

    /// A fresh name under the run's prefix.
    pub(crate) fn name(&mut self, tag: &str) -> String {
        self.names += 1;
        format!("{}{}-{tag}", self.prefix, self.names)
    }

    pub(crate) fn fail(&mut self, what: impl Display) {
        self.tally.failures.push(what.to_string());
    }

    /// A random duration in `range` milliseconds.
    pub(crate) fn millis(&mut self, range: std::ops::Range<u64>) -> Duration {
        Duration::from_millis(self.rng.u64(range))
    }
}

/// A participant: a forked child, or a separate program (for "unrelated processes").
#[derive(Debug)]
pub(crate) enum Member {
    Forked(Child<()>),
    Program(std::process::Child),
}

/// How a participant ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Running,
    Clean,
    Killed,
    /// It found a broken promise (it panics with the reason) or died of something else.
    Failed(String),
}

impl Member {
    pub(crate) fn pid(&self) -> u32 {
        match self {
            Member::Forked(c) => c.pid().as_raw(),
            Member::Program(c) => c.id(),
        }
    }

    /// How it stands, without waiting.
    pub(crate) fn poll(&mut self) -> Exit {
        match self {
            Member::Forked(c) => match c.try_join() {
                Err(Error::WouldBlock) => Exit::Running,
                Ok(()) => Exit::Clean,
                Err(Error::Signaled(Signal::KILL)) => Exit::Killed,
                Err(e) => Exit::Failed(format!("pid {}: {e}", c.pid())),
            },
            Member::Program(c) => match c.try_wait() {
                Ok(None) => Exit::Running,
                Ok(Some(s)) if s.success() => Exit::Clean,
                Ok(Some(s)) if s.signal() == Some(Signal::KILL.as_raw()) => Exit::Killed,
                Ok(Some(s)) => Exit::Failed(format!("program pid {}: {s}", c.id())),
                Err(e) => Exit::Failed(format!("program pid {}: {e}", c.id())),
            },
        }
    }

    /// Waits until it ends or `deadline` passes (then `Running`).
    pub(crate) fn wait_until(&mut self, deadline: Instant) -> Exit {
        loop {
            let exit = self.poll();
            if exit != Exit::Running || Instant::now() >= deadline {
                return exit;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILLs it and reaps it. `Err` when it had already ended otherwise, or did not die.
    pub(crate) fn kill(&mut self) -> Result<(), String> {
        match self.poll() {
            Exit::Running => {}
            Exit::Killed => return Ok(()),
            Exit::Clean => return Err(format!("pid {} ended before its time", self.pid())),
            Exit::Failed(why) => return Err(why),
        }
        match self {
            Member::Forked(c) => {
                let _ = c.kill();
            }
            Member::Program(c) => {
                let _ = c.kill();
            }
        }
        match self.wait_until(Instant::now() + PATIENCE) {
            Exit::Killed => Ok(()),
            Exit::Running => Err(format!("pid {} survived SIGKILL", self.pid())),
            Exit::Clean => Err(format!("pid {} ended before its time", self.pid())),
            Exit::Failed(why) => Err(why),
        }
    }
}

/// The members of a run, one per slot; a slot's replacement takes its role.
#[derive(Debug, Default)]
pub(crate) struct Crew {
    pub(crate) members: Vec<Member>,
    /// Kills per slot.
    pub(crate) kills: Vec<u64>,
}

impl Crew {
    pub(crate) fn push(&mut self, member: Member) {
        self.members.push(member);
        self.kills.push(0);
    }

    /// For `length`, at random instants (every `gap` ms), SIGKILLs a random member and
    /// starts a replacement with `respawn(run, slot)`. A member that ends by itself
    /// meanwhile is a failure (it panics with the reason) and is replaced too.
    pub(crate) fn chaos(
        &mut self,
        run: &mut Run,
        length: Duration,
        gap: std::ops::Range<u64>,
        mut respawn: impl FnMut(&mut Run, usize) -> multiproc::Result<Member>,
    ) {
        let end = Instant::now() + length;
        while Instant::now() < end {
            std::thread::sleep(run.millis(gap.clone()));
            for slot in 0..self.members.len() {
                match self.members[slot].poll() {
                    Exit::Running => continue,
                    Exit::Failed(why) => run.fail(format!("participant {slot} failed: {why}")),
                    other => run.fail(format!("participant {slot} ended early: {other:?}")),
                }
                self.replace(run, slot, &mut respawn);
            }
            let slot = run.rng.usize(..self.members.len());
            match self.members[slot].kill() {
                Ok(()) => {
                    run.tally.kills += 1;
                    self.kills[slot] += 1;
                }
                Err(why) => run.fail(format!("participant {slot}: {why}")),
            }
            self.replace(run, slot, &mut respawn);
        }
    }

    fn replace(
        &mut self,
        run: &mut Run,
        slot: usize,
        respawn: &mut impl FnMut(&mut Run, usize) -> multiproc::Result<Member>,
    ) {
        match respawn(run, slot) {
            Ok(m) => self.members[slot] = m,
            Err(e) => run.fail(format!("cannot start a replacement for slot {slot}: {e}")),
        }
    }

    /// Waits for the members of `slots` to end by themselves, within `PATIENCE`; a member
    /// still running then hangs (a failure), and is killed.
    pub(crate) fn finish(&mut self, run: &mut Run, slots: impl Iterator<Item = usize>) {
        let deadline = Instant::now() + PATIENCE;
        for slot in slots {
            let m = &mut self.members[slot];
            match m.wait_until(deadline) {
                Exit::Clean | Exit::Killed => {}
                Exit::Running => {
                    run.fail(format!(
                        "participant {slot} (pid {}) hangs after the stop",
                        m.pid()
                    ));
                    let _ = m.kill();
                }
                Exit::Failed(why) => run.fail(format!("participant {slot} failed: {why}")),
            }
        }
    }

    /// Kills whoever is still running (after a failure), so nothing outlives the run.
    pub(crate) fn kill_all(&mut self) {
        for m in &mut self.members {
            if m.poll() == Exit::Running {
                let _ = m.kill();
            }
        }
    }

    /// Kills of the slots in `range` together.
    pub(crate) fn kills_of(&self, range: std::ops::Range<usize>) -> u64 {
        self.kills[range].iter().sum()
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        self.kill_all();
    }
}
