//! The results as a Markdown table (the README takes it verbatim) and as JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::cli::Options;
use crate::harness::{Result, RowResult, Status};

/// When, where and how the figures were made.
#[derive(Debug, Serialize)]
pub(crate) struct Meta {
    pub(crate) date: String,
    pub(crate) machine: String,
    pub(crate) command: String,
    pub(crate) runs: usize,
}

impl Meta {
    pub(crate) fn collect(options: &Options) -> Self {
        let mut command = String::from("cargo run --release -p multiproc-bench");
        if !options.args.is_empty() {
            command.push_str(" -- ");
            command.push_str(&options.args.join(" "));
        }
        Meta {
            date: utc_now(),
            machine: machine(),
            command,
            runs: options.runs(),
        }
    }
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown date".into())
}

/// CPU model, CPU count, whether it is a VM, and the kernel.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim());
    let vm = cpuinfo.lines().any(|line| {
        line.starts_with("flags") && line.split_whitespace().any(|f| f == "hypervisor")
    });
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} x {model}{}, Linux {}",
        if vm { " (VM)" } else { "" },
        kernel.trim()
    )
}

/// Three significant digits, without exponent notation.
pub(crate) fn number(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let decimals = (2 - x.abs().log10().floor() as i32).clamp(0, 9) as usize;
    format!("{x:.decimals$}")
}

fn ratio(r: f64) -> String {
    format!("{}x", number(r))
}

/// The table, with a header saying when, where and how, and notes for failed or skipped rows.
pub(crate) fn table(meta: &Meta, rows: &[RowResult]) -> String {
    let mut lines = vec![[
        "scenario".to_owned(),
        "system".into(),
        "median".into(),
        "spread (min-max)".into(),
        "unit".into(),
        "vs multiproc".into(),
    ]];
    let mut notes = Vec::new();
    for row in rows {
        let (median, spread, vs) = match (&row.status, row.shown()) {
            (Status::Ok, Some((median, lo, hi))) => (
                number(median),
                format!("{}-{}", number(lo), number(hi)),
                row.ratio.map_or("-".into(), ratio),
            ),
            (Status::Skipped(why), _) => {
                // A peer that cannot run here is skipped for the same reason everywhere.
                let note = format!("{}: skipped: {why}", row.system);
                if !notes.contains(&note) {
                    notes.push(note);
                }
                ("skipped".into(), "-".into(), "-".into())
            }
            (status, _) => {
                let why = match status {
                    Status::Failed(why) => why.as_str(),
                    _ => "no sample",
                };
                notes.push(format!("{} / {}: FAILED: {why}", row.scenario, row.system));
                ("FAILED".into(), "-".into(), "-".into())
            }
        };
        lines.push([
            row.scenario.clone(),
            row.system.to_owned(),
            median,
            spread,
            row.unit.label().to_owned(),
            vs,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on {}, `{}`, median of {} interleaved runs; \"vs multiproc\" is the time per \
         operation relative to multiproc (2x = takes twice as long).\n",
        meta.date, meta.machine, meta.command, meta.runs
    );
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                // Text columns align left, figures right.
                if c < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if i == 0 {
            let rules: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, &w)| {
                    if c < 2 {
                        "-".repeat(w)
                    } else {
                        format!("{}:", "-".repeat(w - 1))
                    }
                })
                .collect();
            let _ = writeln!(out, "| {} |", rules.join(" | "));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    meta: &'a Meta,
    rows: Vec<JsonRow<'a>>,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    scenario_id: &'a str,
    scenario: &'a str,
    system: &'a str,
    /// "ok", "skipped" or "failed".
    status: &'static str,
    /// Why a row was skipped or failed.
    reason: Option<&'a str>,
    unit: &'static str,
    /// Operations per sample.
    ops: u64,
    median: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    /// Each run's figure, in `unit`, in run order.
    samples: Vec<f64>,
    ratio_to_multiproc: Option<f64>,
}

pub(crate) fn write_json(path: &Path, meta: &Meta, rows: &[RowResult]) -> Result<()> {
    let rows = rows
        .iter()
        .map(|row| {
            let (status, reason) = match &row.status {
                Status::Ok => ("ok", None),
                Status::Skipped(why) => ("skipped", Some(why.as_str())),
                Status::Failed(why) => ("failed", Some(why.as_str())),
            };
            let shown = row.shown();
            JsonRow {
                scenario_id: &row.scenario_id,
                scenario: &row.scenario,
                system: row.system,
                status,
                reason,
                unit: row.unit.label(),
                ops: row.ops,
                median: shown.map(|(median, _, _)| median),
                min: shown.map(|(_, min, _)| min),
                max: shown.map(|(_, _, max)| max),
                samples: row.costs.iter().map(|&c| row.unit.show(c)).collect(),
                ratio_to_multiproc: row.ratio,
            }
        })
        .collect();
    let json = serde_json::to_string_pretty(&JsonReport { meta, rows })?;
    std::fs::write(path, json + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_have_three_significant_digits() {
        assert_eq!(number(41.234), "41.2");
        assert_eq!(number(1234.5), "1234");
        assert_eq!(number(0.0123), "0.0123");
        assert_eq!(number(3.0), "3.00");
    }
}
