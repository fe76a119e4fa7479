//! The pool's helper process and its workers.
//!
//! The parent of a pool runs a result thread, and forking a process that has threads is
//! unsound. So the workers come from a single-threaded helper, started when the pool is
//! built as a `run_fn` process: forked while the parent is still single-threaded, else
//! started by exec of this program (Spawn) or by the forkserver. The helper forks every
//! worker and replaces those that die or retire; each worker reports its start, the helper
//! each end, on the result queue. It never runs a task.
#![forbid(unsafe_code)]

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::call::{self, Fail, Init, Marking, Report, TaskMsg, LAST_PANIC, MARK};
use crate::connection::Connection;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::process::{Child, Process, Signal};
use crate::queue::Queue;
use crate::shm::RawArray;
use crate::sys;

/// What the parent asks of the helper.
#[derive(Serialize, Deserialize)]
pub(crate) enum Order {
    /// Stop at once: SIGTERM every worker, SIGKILL those still alive after a moment, exit.
    Terminate,
}

/// How long terminated workers get to exit on SIGTERM before SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_millis(200);

/// Everything a worker needs; cloned into each one by `fork`.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct WorkerKit {
    pub(crate) tasks: Queue<TaskMsg, Marking>,
    pub(crate) results: Queue<Report>,
    pub(crate) marks: RawArray<u64>,
    pub(crate) initializer: Option<Init>,
    pub(crate) max_tasks: Option<usize>,
}

/// The helper's argument (it travels encoded, with its handles, to a helper started by exec
/// or by the forkserver).
#[derive(Serialize, Deserialize)]
pub(crate) struct HelperArgs {
    pub(crate) kit: WorkerKit,
    pub(crate) processes: usize,
    /// Orders from the parent; end of file once the parent is gone.
    pub(crate) ctl: Connection,
    /// The pool's process, and whether the helper was forked from it.
    pub(crate) parent: i32,
    pub(crate) forked: bool,
}

/// The helper's life. It first reports on `ctl` that the first workers exist (or why they
/// could not be created), then serves until the pool ends.
pub(crate) fn helper_main(args: HelperArgs) {
    let HelperArgs {
        kit,
        processes,
        mut ctl,
        parent,
        forked,
    } = args;
    // The helper dies with the pool's process (its workers die with it). A forked helper
    // holds a copy of the parent's end of `ctl`, so it would see no end of file: it takes
    // the parent-death signal, which is sound there because the parent was
    // single-threaded (the signal follows the *thread* that forked). A helper made by exec
    // or by the forkserver sees end of file on `ctl` when the pool's process is gone; a
    // parent-death signal would kill it when the thread that built the pool ends.
    if forked
        && (sys::process::set_parent_death_signal(Signal::KILL.as_raw()).is_err()
            || sys::process::getppid() != parent)
    {
        sys::process::exit_now(1);
    }
    let mut workers: Vec<Option<Child<()>>> = Vec::with_capacity(processes);
    for slot in 0..processes {
        match start_worker(&kit, slot) {
            Ok(child) => workers.push(Some(child)),
            Err(e) => {
                // PL-36: the workers already started go, and the error reaches `build`.
                kill_all(&mut workers);
                let _ = ctl.send(&Err::<(), String>(e.to_string()));
                return;
            }
        }
    }
    // Each worker reports its own pid once its initializer has run.
    if ctl.send(&Ok::<(), String>(())).is_err() {
        kill_all(&mut workers);
        return;
    }
    // A slot whose worker could not be restarted is retried after this long.
    let mut retry = None;
    loop {
        let mut fds = vec![ctl.as_raw_fd()];
        fds.extend(workers.iter().flatten().map(Child::pidfd));
        let ready =
            match crate::fd::wait_readable(&fds, retry.map_or(Deadline::NEVER, Deadline::after)) {
                Ok(r) => r,
                Err(_) => continue,
            };
        if ready[0] {
            // An order, or the parent's end closed (the pool was dropped without a word).
            let _ = ctl.recv::<Order>();
            kill_all(&mut workers);
            return;
        }
        for (slot, entry) in workers.iter_mut().enumerate() {
            let Some(child) = entry else { continue };
            if child.is_alive() {
                continue;
            }
            let pid = child.pid();
            let how = match child.join() {
                Ok(()) => "exited".to_string(),
                Err(Error::Signaled(sig)) => format!("was killed by signal {sig}"),
                Err(Error::Exited(code)) => format!("exited with code {code}"),
                Err(e) => format!("ended: {e}"),
            };
            // Read after the worker is gone and before a new one uses the slot.
            let holding = kit.marks.get(slot).unwrap_or(0);
            let _ = kit.results.put(Report::Exited {
                slot,
                pid,
                holding,
                how,
            });
            *entry = None;
        }
        // Once the queue is closed and drained there is nothing left for a new worker.
        let finished = kit.tasks.is_shutdown() && kit.tasks.is_empty();
        retry = None;
        for (slot, entry) in workers.iter_mut().enumerate() {
            if entry.is_some() || finished {
                continue;
            }
            match start_worker(&kit, slot) {
                Ok(child) => *entry = Some(child),
                Err(_) => retry = Some(Duration::from_millis(100)),
            }
        }
        if workers.iter().all(Option::is_none) && finished {
            let _ = kit.results.put(Report::HelperDone);
            return;
        }
    }
}

/// SIGTERM every worker, then SIGKILL those that are still alive after [`TERM_GRACE`];
/// every one is reaped.
fn kill_all(workers: &mut [Option<Child<()>>]) {
    for child in workers.iter().flatten() {
        let _ = child.terminate();
    }
    let until = Instant::now() + TERM_GRACE;
    for child in workers.iter_mut().flatten() {
        let left = until.saturating_duration_since(Instant::now());
        if child.join_timeout(left).is_err() || child.is_alive() {
            let _ = child.kill();
            let _ = child.join();
        }
    }
}

fn start_worker(kit: &WorkerKit, slot: usize) -> Result<Child<()>> {
    let kit = kit.clone();
    let helper = sys::process::getpid();
    let _ = kit.marks.set(slot, 0);
    Process::new(move || worker_main(kit, slot, helper))
        .name(format!("PoolWorker-{}", slot + 1))
        .start()
}

/// A worker's life: take tasks until the queue is closed and drained, or until it has run
/// `max_tasks` of them.
fn worker_main(kit: WorkerKit, slot: usize, helper: i32) {
    if sys::process::set_parent_death_signal(Signal::KILL.as_raw()).is_err()
        || sys::process::getppid() != helper
    {
        sys::process::exit_now(1);
    }
    let _ = MARK.set((kit.marks.clone(), slot));
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        LAST_PANIC.with(|l| l.set(info.location().map(|l| l.to_string())));
        previous_hook(info);
    }));
    // The parent learns the new pid here, and, while it builds the pool, whether every
    // worker could start (PL-36).
    let init = kit.initializer.as_ref().and_then(|i| i.run().err());
    let failed = init.is_some();
    let started = Report::Started {
        slot,
        pid: Pid::from_sys(sys::process::getpid()),
        init,
    };
    if kit.results.put(started).is_err() || failed {
        return;
    }
    let mut ran = 0;
    let mut out = Vec::new();
    while !matches!(kit.max_tasks, Some(max) if ran >= max) {
        let (id, fail) = match kit.tasks.get() {
            Ok(msg) => {
                out.clear();
                (msg.id, call::run(&msg, &mut out).err())
            }
            // A task message that does not decode (never written by this crate's pool):
            // the mark names it, so it fails rather than hangs.
            Err(Error::Codec(e)) => (
                kit.marks.get(slot).unwrap_or(0),
                Some(Fail::Codec(format!("the task does not decode: {e}"))),
            ),
            Err(_) => break, // shut down and drained
        };
        let values = match fail {
            None => std::mem::take(&mut out),
            Some(_) => Vec::new(),
        };
        if let Err(e) = kit.results.put(Report::Done { id, values, fail }) {
            // A result too large for the queue: the task fails with the reason instead.
            let fail = Fail::Codec(format!("the result cannot be sent: {e}"));
            let report = Report::Done {
                id,
                values: Vec::new(),
                fail: Some(fail),
            };
            if kit.results.put(report).is_err() {
                break;
            }
        }
        ran += 1;
    }
}
