//! Process start + join of a no-op, per start method.

use std::process::Command;

use multiproc::{Process, StartMethod};
use serde_json::json;

use super::{check, python, PROCSPAWN};
use crate::child;
use crate::harness::{Counts, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        start_join(
            "fork",
            Counts::new(2, 50, 200),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_fork(n)),
                System::new("floor: fork+waitpid", |_, n| bare_fork(n)),
                System::new("std::thread spawn+join", |_, n| thread_spawn(n)),
            ],
        ),
        start_join(
            "forkserver",
            Counts::new(2, 20, 100),
            vec![System::new(MULTIPROC, |_, n| multiproc_forkserver(n))],
        ),
        start_join(
            "spawn",
            Counts::new(1, 8, 30),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_spawn(n)),
                System::new(PROCSPAWN, |_, n| procspawn_spawn(n)),
                System::new("floor: exec of this binary", |_, n| exec_self(n)),
            ],
        ),
    ]
}

/// `systems` plus the Python peer of the same start method.
fn start_join(method: &'static str, counts: Counts, mut systems: Vec<System>) -> Scenario {
    systems.insert(
        1,
        python(move |n| json!({"scenario": "process_start_join", "n": n, "method": method})),
    );
    Scenario::new(
        format!("process_{method}"),
        format!("process start+join ({method})"),
        Unit::time("ms", 1e3),
        counts,
        systems,
    )
}

fn multiproc_fork(n: u64) -> Result<Outcome> {
    let sample = Sample::time(n, || {
        (0..n).try_for_each(|_| Ok(Process::new(|| ()).start()?.join()?))
    })?;
    Ok(Outcome::Sample(sample))
}

fn multiproc_forkserver(n: u64) -> Result<Outcome> {
    run_fn_start_join(StartMethod::Forkserver, n)
}

fn multiproc_spawn(n: u64) -> Result<Outcome> {
    run_fn_start_join(StartMethod::Spawn, n)
}

/// Start+join of `run_fn(noop, ())` by `method` (the forkserver, started by the warm-up
/// runs, stays up between samples, as Python's does).
fn run_fn_start_join(method: StartMethod, n: u64) -> Result<Outcome> {
    let sample = Sample::time(n, || {
        (0..n).try_for_each(|_| {
            Ok(Process::run_fn(noop, ())
                .start_method(method)
                .start()?
                .join()?)
        })
    })?;
    Ok(Outcome::Sample(sample))
}

fn bare_fork(n: u64) -> Result<Outcome> {
    let proof = child::single_threaded()?;
    let sample = Sample::time(n, || {
        (0..n).try_for_each(|_| child::fork_with(&proof, || Ok(()))?.wait())
    })?;
    Ok(Outcome::Sample(sample))
}

fn thread_spawn(n: u64) -> Result<Outcome> {
    let sample = Sample::time(n, || {
        (0..n).try_for_each(|_| {
            std::thread::spawn(|| ())
                .join()
                .map_err(|_| "thread panicked".into())
        })
    })?;
    Ok(Outcome::Sample(sample))
}

fn noop(_: ()) {}

fn procspawn_spawn(n: u64) -> Result<Outcome> {
    let sample = Sample::time(n, || {
        (0..n).try_for_each(|_| Ok(procspawn::spawn((), noop).join()?))
    })?;
    Ok(Outcome::Sample(sample))
}

fn exec_self(n: u64) -> Result<Outcome> {
    let exe = std::env::current_exe()?;
    let sample = Sample::time(n, || {
        (0..n).try_for_each(|_| {
            let status = Command::new(&exe).arg(crate::EXEC_FLOOR_MARKER).status()?;
            check("exec child success", status.success(), true)
        })
    })?;
    Ok(Outcome::Sample(sample))
}
