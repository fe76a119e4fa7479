//! Fault injection for multiproc.
//!
//! `multiproc-chaos [--seed S] [--budget SECS] [--scenario NAME]` runs the scenarios in
//! turn until the budget is spent. Each run happens in a supervisor process of its own
//! (a pool's threads then never meet a later fork), which starts the participants, SIGKILLs
//! one at a random instant again and again, replaces it, and checks what the survivors saw.
//! It prints one count line, `runs=.. kills=.. messages_checked=.. failures=.. seed=..`,
//! and exits with status 1 when anything failed; the same seed replays the same choices.
//!
//! `multiproc-chaos soak --minutes N` runs every component under load and samples memory
//! each second (see `soak`).

mod crew;
mod ledger;
mod scenario;
mod soak;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use multiproc::{Error, Process};

use crate::crew::{Run, Tally};

/// The most one run may take before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(180);

struct Options {
    seed: u64,
    budget: Duration,
    scenario: Option<String>,
}

fn main() -> ExitCode {
    multiproc::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("peer") => scenario::named::peer(&args[1..]).map(|()| ExitCode::SUCCESS),
        Some("soak") => soak::main(&args[1..]),
        _ => options(&args).and_then(chaos),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("multiproc-chaos: {e}");
        ExitCode::from(2)
    })
}

fn options(args: &[String]) -> Result<Options, String> {
    use lexopt::prelude::*;
    let mut opts = Options {
        seed: fastrand::u64(..),
        budget: Duration::from_secs(60),
        scenario: None,
    };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let value = |p: &mut lexopt::Parser| -> Result<String, String> {
            p.value()
                .map_err(|e| e.to_string())?
                .into_string()
                .map_err(|_| "not UTF-8".to_string())
        };
        match arg {
            Long("seed") => {
                opts.seed = value(&mut parser)?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            Long("budget") => {
                opts.budget = Duration::from_secs_f64(
                    value(&mut parser)?
                        .parse()
                        .map_err(|e| format!("--budget: {e}"))?,
                )
            }
            Long("scenario") => {
                let name = value(&mut parser)?;
                if !scenario::ALL.iter().any(|(n, _)| *n == name) {
                    let names: Vec<_> = scenario::ALL.iter().map(|(n, _)| *n).collect();
                    return Err(format!("no scenario {name:?}; there are {names:?}"));
                }
                opts.scenario = Some(name);
            }
            Long("help") | Short('h') => {
                println!(
                    "usage: multiproc-chaos [--seed S] [--budget SECS] [--scenario NAME]\n       \
                     multiproc-chaos soak --minutes N"
                );
                std::process::exit(0);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(opts)
}

/// The prefix of every name a run of this process puts in `/dev/shm` or the temp dir.
fn prefix() -> String {
    format!("mpchaos-{}-", std::process::id())
}

fn chaos(opts: Options) -> Result<ExitCode, String> {
    let scenarios: Vec<_> = scenario::ALL
        .iter()
        .filter(|(n, _)| opts.scenario.as_deref().map_or(true, |s| s == *n))
        .collect();
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let mut total = Tally::default();
    let end = Instant::now() + opts.budget;
    let mut turn = 0;
    while turn == 0 || Instant::now() < end {
        let &(name, body) = scenarios[turn % scenarios.len()];
        turn += 1;
        let run_seed = rng.u64(..);
        let tally = supervise(name, body, run_seed, format!("{}{turn}-", prefix()));
        if !tally.failures.is_empty() {
            for f in &tally.failures {
                eprintln!("FAILURE scenario={name} run={turn} run_seed={run_seed}: {f}");
            }
        }
        total.add(tally);
    }
    for leak in leftovers() {
        total.failures.push(leak);
    }
    println!(
        "runs={} kills={} messages_checked={} failures={} seed={}",
        total.runs,
        total.kills,
        total.checked,
        total.failures.len(),
        opts.seed
    );
    Ok(if total.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one scenario in a supervisor process and brings its tally back.
fn supervise(name: &str, body: scenario::Body, seed: u64, prefix: String) -> Tally {
    let started = Process::new(move || {
        let mut run = Run::new(seed, prefix);
        if let Err(e) = body(&mut run) {
            run.fail(format!("error: {e}"));
        }
        run.tally
    })
    .name(format!("chaos-{name}"))
    .start();
    let mut supervisor = match started {
        Ok(s) => s,
        Err(e) => return failed(format!("cannot start the supervisor: {e}")),
    };
    match supervisor.join_timeout(RUN_LIMIT) {
        Ok(tally) => tally,
        Err(Error::Timeout) => {
            let _ = supervisor.kill();
            let _ = supervisor.join();
            failed(format!("the run hung for {RUN_LIMIT:?} and was killed"))
        }
        Err(e) => failed(format!("the supervisor died: {e}")),
    }
}

fn failed(why: String) -> Tally {
    Tally {
        runs: 1,
        failures: vec![why],
        ..Tally::default()
    }
}

/// What the runs left behind (a failure each, and cleaned up): children, `/dev/shm`
/// entries and socket files under this process's prefix.
fn leftovers() -> Vec<String> {
    let mut found = Vec::new();
    for child in multiproc::active_children() {
        found.push(format!("left a child running: pid {}", child.pid()));
        let _ = multiproc::process::send_signal(child.pid(), multiproc::Signal::KILL);
    }
    let prefix = prefix();
    for dir in [std::path::PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(format!("left {}", e.path().display()));
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    found
}
