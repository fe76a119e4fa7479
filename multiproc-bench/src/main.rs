//! Side-by-side benchmark of `multiproc` against what a user would pick instead.
//!
//! `cargo run --release -p multiproc-bench [-- --quick] [--json out.json] [--svg chart.svg]`
//! runs every scenario for multiproc and each peer (Python `multiprocessing`, ipc-channel,
//! procspawn, crossbeam-channel between threads, raw OS floors), alternating the systems
//! run by run so that machine noise hits them all alike, and prints one Markdown table:
//! scenario, system, median, spread (min-max), unit, and the cost relative to multiproc.
//!
//! Child processes of the Rust peers are forked while the bench has exactly one thread
//! (checked before every fork, see `child.rs`); the exec floor re-executes this binary
//! with [`EXEC_FLOOR_MARKER`] as its only argument.

mod affinity;
mod chart;
mod child;
mod cli;
mod floor;
mod harness;
mod python;
mod report;
mod scenario;
mod spin;

use std::process::ExitCode;

/// Argument that makes this binary exit at once: the child of the exec floor.
const EXEC_FLOOR_MARKER: &str = "__multiproc_bench_exit_at_once";

fn main() -> ExitCode {
    // procspawn re-executes this binary for its children; `init` takes over in them and
    // never returns there, so it must run before anything else.
    procspawn::init();
    // Run as a distributed pool's worker (the Redis rows start this binary so).
    #[cfg(feature = "redis")]
    match scenario::redis::registry().work_if_asked() {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(e) => {
            eprintln!("multiproc-bench worker: {e}");
            return ExitCode::FAILURE;
        }
    }
    if std::env::args().nth(1).as_deref() == Some(EXEC_FLOOR_MARKER) {
        return ExitCode::SUCCESS;
    }
    let options = match cli::Options::parse() {
        Ok(cli::Parsed::Run(options)) => options,
        Ok(cli::Parsed::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("multiproc-bench: {e}\n\n{}", cli::HELP);
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("multiproc-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected scenarios and writes every requested output; `Ok(false)` when a
/// row failed (its sanity check or its setup), so that scripts and the smoke test notice.
fn run(options: &cli::Options) -> harness::Result<bool> {
    let scenarios: Vec<_> = scenario::all()
        .into_iter()
        .filter(|s| {
            options
                .filter
                .as_ref()
                .is_none_or(|f| f.split(',').any(|part| s.id.contains(part)))
        })
        .collect();
    if scenarios.is_empty() {
        return Err("no scenario matches the filter".into());
    }
    let mut ctx = harness::Ctx::new(options.scale);
    let results = harness::run_all(&scenarios, &mut ctx, options.runs());
    let meta = report::Meta::collect(options);
    print!("{}", report::table(&meta, &results));
    if let Some(version) = ctx.python_version() {
        println!("\npython peer: {version}");
    }
    if let Some(path) = &options.json {
        report::write_json(path, &meta, &results)?;
    }
    if let Some(path) = &options.svg {
        chart::write_svg(path, &meta, &results)?;
        chart::write_scaling_svg(&chart::scaling_path(path), &meta, &results)?;
    }
    Ok(!results.iter().any(harness::RowResult::failed))
}
