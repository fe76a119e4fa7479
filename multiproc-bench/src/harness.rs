//! Scenarios, systems, samples, and the interleaved runner.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::affinity;
use crate::child;
use crate::python::Python;

/// Errors of a run: a failed sanity check, a failed setup, an I/O error.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result of a run.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// How much work each sample does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// One run with tiny counts: proves every scenario still works.
    Tiny,
    /// Small counts: the whole bench in well under a minute.
    Quick,
    /// The counts behind the README figures.
    Full,
}

/// Operations per sample at each scale.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) tiny: u64,
    pub(crate) quick: u64,
    pub(crate) full: u64,
}

impl Counts {
    pub(crate) const fn new(tiny: u64, quick: u64, full: u64) -> Self {
        Counts { tiny, quick, full }
    }

    fn at(self, scale: Scale) -> u64 {
        match scale {
            Scale::Tiny => self.tiny,
            Scale::Quick => self.quick,
            Scale::Full => self.full,
        }
    }
}

/// How a scenario's figure is shown. Every sample is kept as seconds per operation; the
/// unit only converts for display, so ratios are always "time per operation".
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unit {
    /// Time per operation, `per_second` units in a second (1e6 for microseconds).
    Time {
        label: &'static str,
        per_second: f64,
    },
    /// Operations per second, divided by `scale` (1e6 for "M msg/s").
    Rate { label: &'static str, scale: f64 },
}

impl Unit {
    /// Gigabytes per second, for the 1 MiB scenarios.
    pub(crate) const GB_PER_S: Unit = Unit::rate("GB/s", 1e9);

    pub(crate) const fn time(label: &'static str, per_second: f64) -> Unit {
        Unit::Time { label, per_second }
    }

    pub(crate) const fn rate(label: &'static str, scale: f64) -> Unit {
        Unit::Rate { label, scale }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Unit::Time { label, .. } | Unit::Rate { label, .. } => label,
        }
    }

    /// Converts seconds per operation to this unit.
    pub(crate) fn show(self, seconds_per_op: f64) -> f64 {
        match self {
            Unit::Time { per_second, .. } => seconds_per_op * per_second,
            Unit::Rate { scale, .. } => 1.0 / seconds_per_op / scale,
        }
    }
}

/// One timed run: `ops` operations (round trips, messages, bytes...) in `elapsed`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
}

impl Sample {
    /// Times `f`, which performs `ops` operations.
    pub(crate) fn time(ops: u64, f: impl FnOnce() -> Result<()>) -> Result<Sample> {
        let start = Instant::now();
        f()?;
        Ok(Sample {
            ops,
            elapsed: start.elapsed(),
        })
    }

    fn seconds_per_op(self) -> f64 {
        self.elapsed.as_secs_f64() / self.ops as f64
    }
}

/// What one run of one system produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    Sample(Sample),
    /// The peer cannot run here (for example `python3` is absent).
    Skipped(String),
}

/// Runs one sample of a system with `n` operations.
pub(crate) type RunFn = Box<dyn Fn(&mut Ctx, u64) -> Result<Outcome>>;

/// One contender in a scenario.
pub(crate) struct System {
    pub(crate) name: &'static str,
    pub(crate) run: RunFn,
}

impl System {
    pub(crate) fn new(
        name: &'static str,
        run: impl Fn(&mut Ctx, u64) -> Result<Outcome> + 'static,
    ) -> Self {
        System {
            name,
            run: Box::new(run),
        }
    }
}

/// Name of the system every ratio is relative to.
pub(crate) const MULTIPROC: &str = "multiproc";

/// One comparison: the same work done by every system.
pub(crate) struct Scenario {
    /// Stable identifier, used by `--filter` and in the JSON.
    pub(crate) id: String,
    title: String,
    unit: Unit,
    counts: Counts,
    /// Run with this process, the Python driver and their children on one CPU.
    pinned: bool,
    systems: Vec<System>,
}

impl Scenario {
    pub(crate) fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        unit: Unit,
        counts: Counts,
        systems: Vec<System>,
    ) -> Self {
        Scenario {
            id: id.into(),
            title: title.into(),
            unit,
            counts,
            pinned: false,
            systems,
        }
    }

    /// Runs this scenario with both processes on one CPU.
    /// Adds a system to compare (after those given to `new`).
    pub(crate) fn with(mut self, system: System) -> Self {
        self.systems.push(system);
        self
    }

    pub(crate) fn pinned(mut self, pinned: bool) -> Self {
        self.pinned = pinned;
        self
    }
}

/// State shared by all runs: the scale and the Python driver.
pub(crate) struct Ctx {
    pub(crate) scale: Scale,
    python: PythonState,
    python_version: Option<String>,
}

enum PythonState {
    Running(Python),
    Unavailable(String),
}

impl Ctx {
    pub(crate) fn new(scale: Scale) -> Self {
        Ctx {
            scale,
            python: PythonState::Unavailable("not started".into()),
            python_version: None,
        }
    }

    /// Gives the next scenario a fresh start: a new Python driver, and the bench's freed
    /// heap handed back to the system. A process that has moved gigabytes keeps a larger
    /// heap, and forking it (Python's start+join, every forked peer) then costs more: 4.6
    /// instead of 1.7 ms for Python's fork in one measurement.
    fn fresh_start(&mut self) {
        // The old driver goes first, so that two never run at once.
        self.python = PythonState::Unavailable("restarting".into());
        self.python = match Python::start() {
            Ok(p) => {
                self.python_version = Some(p.version().to_owned());
                PythonState::Running(p)
            }
            Err(e) => PythonState::Unavailable(e.to_string()),
        };
        child::release_free_memory();
    }

    /// Runs one Python scenario in the driver; `Skipped` when Python cannot run here.
    pub(crate) fn python(&mut self, request: serde_json::Value) -> Result<Outcome> {
        match &mut self.python {
            PythonState::Running(p) => p.run(request).map(Outcome::Sample),
            PythonState::Unavailable(why) => Ok(Outcome::Skipped(why.clone())),
        }
    }

    /// The folder of the Python scripts, while the driver runs.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn python_dir(&self) -> Option<&std::path::Path> {
        match &self.python {
            PythonState::Running(p) => Some(p.dir()),
            PythonState::Unavailable(_) => None,
        }
    }

    /// The Python version the peer ran on, for the line under the table.
    pub(crate) fn python_version(&self) -> Option<&str> {
        self.python_version.as_deref()
    }

    fn python_pid(&self) -> Option<u32> {
        match &self.python {
            PythonState::Running(p) => Some(p.pid()),
            PythonState::Unavailable(_) => None,
        }
    }
}

/// How a row ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Status {
    Ok,
    Skipped(String),
    Failed(String),
}

/// The result of one system in one scenario.
#[derive(Debug, Clone)]
pub(crate) struct RowResult {
    pub(crate) scenario_id: String,
    pub(crate) scenario: String,
    pub(crate) unit: Unit,
    pub(crate) system: &'static str,
    pub(crate) status: Status,
    /// Seconds per operation, one per run, in run order.
    pub(crate) costs: Vec<f64>,
    /// Operations per sample.
    pub(crate) ops: u64,
    /// Median cost relative to multiproc's median cost in the same scenario.
    pub(crate) ratio: Option<f64>,
}

impl RowResult {
    pub(crate) fn failed(&self) -> bool {
        matches!(self.status, Status::Failed(_))
    }

    /// Median, minimum and maximum seconds per operation.
    pub(crate) fn stats(&self) -> Option<(f64, f64, f64)> {
        let mut sorted = self.costs.clone();
        sorted.sort_by(f64::total_cmp);
        let (first, last) = (sorted.first()?, sorted.last()?);
        Some((median(&sorted), *first, *last))
    }

    /// Median, smallest and largest figure in the scenario's unit. (For a rate the
    /// smallest time per operation is the largest figure, hence the reordering.)
    pub(crate) fn shown(&self) -> Option<(f64, f64, f64)> {
        let (median, lo, hi) = self.stats()?;
        let (a, b) = (self.unit.show(lo), self.unit.show(hi));
        Some((self.unit.show(median), a.min(b), a.max(b)))
    }
}

fn median(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Runs every scenario `runs` times per system. Within a scenario the systems alternate,
/// and each run starts with a different system, so that drifting machine load spreads
/// over all of them instead of biasing the ones that run last.
pub(crate) fn run_all(scenarios: &[Scenario], ctx: &mut Ctx, runs: usize) -> Vec<RowResult> {
    let total: usize = scenarios.iter().map(|s| s.systems.len() * runs).sum();
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .expect("the template is valid"),
    );
    let mut results = Vec::new();
    for scenario in scenarios {
        ctx.fresh_start();
        let n = scenario.counts.at(ctx.scale);
        let mut rows: Vec<RowResult> = scenario
            .systems
            .iter()
            .map(|system| RowResult {
                scenario_id: scenario.id.clone(),
                scenario: scenario.title.clone(),
                unit: scenario.unit,
                system: system.name,
                status: Status::Ok,
                costs: Vec::new(),
                ops: n,
                ratio: None,
            })
            .collect();
        for run in 0..runs {
            for k in 0..scenario.systems.len() {
                let index = (k + run) % scenario.systems.len();
                let (system, row) = (&scenario.systems[index], &mut rows[index]);
                bar.set_message(format!("{} / {}", scenario.title, system.name));
                if row.status == Status::Ok {
                    row.status = run_once(scenario, system, ctx, n, &mut row.costs);
                }
                bar.inc(1);
            }
        }
        fill_ratios(&mut rows);
        results.extend(rows);
    }
    bar.finish_and_clear();
    results
}

fn run_once(
    scenario: &Scenario,
    system: &System,
    ctx: &mut Ctx,
    n: u64,
    costs: &mut Vec<f64>,
) -> Status {
    let pin = if scenario.pinned {
        let pids = std::iter::once(std::process::id()).chain(ctx.python_pid());
        match affinity::pin_to_first_cpu(pids) {
            Ok(pin) => Some(pin),
            Err(e) => return Status::Failed(format!("cannot pin to one CPU: {e}")),
        }
    } else {
        None
    };
    // Every system starts in a single-threaded process, so that it may fork: threads of
    // the previous system (joined, or procspawn's exiting monitors) must be gone.
    let outcome = child::single_threaded().and_then(|_| {
        // A peer library that panics (procspawn unwraps its errors) fails its row, not the bench.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (system.run)(ctx, n)))
            .unwrap_or_else(|panic| Err(panic_message(&*panic).into()))
    });
    drop(pin);
    match outcome {
        Ok(Outcome::Sample(s)) if s.ops > 0 && !s.elapsed.is_zero() => {
            costs.push(s.seconds_per_op());
            Status::Ok
        }
        Ok(Outcome::Sample(s)) => Status::Failed(format!("empty sample: {s:?}")),
        Ok(Outcome::Skipped(why)) => Status::Skipped(why),
        Err(e) => Status::Failed(e.to_string()),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("panicked: {text}")
}

fn fill_ratios(rows: &mut [RowResult]) {
    let reference = rows
        .iter()
        .find(|r| r.system == MULTIPROC && r.status == Status::Ok)
        .and_then(RowResult::stats)
        .map(|(median, _, _)| median);
    for row in rows.iter_mut().filter(|r| r.status == Status::Ok) {
        row.ratio = reference
            .zip(row.stats())
            .map(|(m, (median, _, _))| median / m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &'static str, costs: &[f64]) -> RowResult {
        RowResult {
            scenario_id: "s".into(),
            scenario: "s".into(),
            unit: Unit::Time {
                label: "us",
                per_second: 1e6,
            },
            system,
            status: Status::Ok,
            costs: costs.to_vec(),
            ops: 1,
            ratio: None,
        }
    }

    #[test]
    fn stats_are_median_min_max_of_unsorted_costs() {
        assert_eq!(row("a", &[3.0, 1.0, 2.0]).stats(), Some((2.0, 1.0, 3.0)));
        assert_eq!(
            row("a", &[4.0, 1.0, 2.0, 3.0]).stats(),
            Some((2.5, 1.0, 4.0))
        );
        assert_eq!(row("a", &[]).stats(), None);
    }

    #[test]
    fn ratios_are_relative_to_multiproc_and_absent_without_it() {
        let mut rows = vec![row("peer", &[6.0]), row(MULTIPROC, &[2.0])];
        fill_ratios(&mut rows);
        assert_eq!(rows[0].ratio, Some(3.0));
        assert_eq!(rows[1].ratio, Some(1.0));

        let mut rows = vec![row("peer", &[6.0]), row(MULTIPROC, &[])];
        rows[1].status = Status::Skipped("absent".into());
        fill_ratios(&mut rows);
        assert_eq!(rows[0].ratio, None);
    }

    #[test]
    fn units_convert_seconds_per_op() {
        let us = Unit::Time {
            label: "us",
            per_second: 1e6,
        };
        let gbs = Unit::Rate {
            label: "GB/s",
            scale: 1e9,
        };
        assert!((us.show(2e-6) - 2.0).abs() < 1e-9);
        assert!((gbs.show(1e-9) - 1.0).abs() < 1e-9);
    }
}
