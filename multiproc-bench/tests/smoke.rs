//! Runs the real bench binary once over every scenario with tiny counts, so that no
//! scenario can rot: every row must be measured (or, for a peer, be
//! skipped for a missing python3), and every measured row has passed its own sanity check
//! (counts received equal counts sent, sums and echoes match) or the binary fails.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Systems that run anywhere Linux does, so their rows must always be measured.
const ALWAYS_MEASURED: &[&str] = &[
    "ipc-channel",
    "procspawn",
    "crossbeam-channel (threads)",
    "std Mutex (threads)",
    "std AtomicU64 (threads)",
    "std::thread spawn+join",
    "floor: socketpair",
    "floor: futex wake (no data)",
    "floor: pipe (1 MiB buffer)",
    "floor: socketpair (4 MiB buffers)",
    "floor: fork+waitpid",
    "floor: exec of this binary",
];

/// Removes the output file even when an assertion fails.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn python3_present() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn every_scenario_runs_once_with_tiny_counts() {
    let out = |ext: &str| {
        let name = format!("multiproc-bench-smoke-{}.{ext}", std::process::id());
        TempFile(std::env::temp_dir().join(name))
    };
    let (json, svg) = (out("json"), out("svg"));
    // The scaling chart lands beside the bar chart.
    let scaling = TempFile(std::env::temp_dir().join(format!(
        "multiproc-bench-smoke-{}-scaling.svg",
        std::process::id()
    )));
    let mut bench = Command::new(env!("CARGO_BIN_EXE_multiproc-bench"))
        .arg("--tiny")
        .arg("--json")
        .arg(&json.0)
        .arg("--svg")
        .arg(&svg.0)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the bench binary");
    // Read stdout while waiting, so a full pipe cannot stall the bench.
    let mut stdout = bench.stdout.take().expect("stdout pipe");
    let reader = std::thread::spawn(move || {
        let mut table = String::new();
        stdout.read_to_string(&mut table).map(|_| table)
    });
    // A hung scenario must fail the test, not hang it.
    let deadline = Instant::now() + Duration::from_secs(300);
    while bench.try_wait().expect("poll the bench").is_none() {
        if Instant::now() > deadline {
            let _ = bench.kill();
            let _ = bench.wait();
            panic!("the bench did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = bench.id();
    let status = bench.wait().expect("reap the bench");
    let table = reader
        .join()
        .expect("reader thread")
        .expect("read the table");
    let scripts = std::env::temp_dir().join(format!("multiproc-bench-{pid}"));
    assert!(!scripts.exists(), "{} left behind", scripts.display());
    assert!(status.success(), "the bench failed:\n{table}");
    assert!(table.contains("| scenario "), "no table printed:\n{table}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json.0).expect("read the JSON"))
            .expect("the JSON parses");
    for key in ["date", "machine", "command"] {
        assert!(
            report[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} missing"
        );
    }
    let chart = std::fs::read_to_string(&svg.0).expect("read the chart");
    assert!(chart.starts_with("<svg") && chart.contains("relative to multiproc"));
    let chart = std::fs::read_to_string(&scaling.0).expect("read the scaling chart");
    assert!(chart.starts_with("<svg") && chart.contains("N producers x N consumers"));
    let rows = report["rows"].as_array().expect("rows");
    let scenarios: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["scenario_id"].as_str().expect("id"))
        .collect();
    // The scaling rows: N = 1, 2, 4, ... up to twice the CPUs.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let counts = std::iter::successors(Some(1u64), |n| Some(n * 2)).take_while(|&n| n <= 2 * cpus);
    let scaling: Vec<String> = counts
        .flat_map(|n| [format!("queue_scale_{n}x{n}"), format!("value_scale_{n}")])
        .collect();
    let expected = [
        "pipe_rt_8",
        "pipe_rt_64",
        "pipe_rt_8_pinned",
        "pipe_1mib",
        "pipe_1mib_pinned",
        "queue_1to1",
        "queue_4to1",
        "queue_1mib",
        "queue_rt",
        "queue_rt_pinned",
        "lock_uncontended",
        "lock_contended",
        "lock_rt",
        "lock_rt_pinned",
        "value_increment",
        "value_fetch_add",
        "pool_map",
        "pool_apply_async",
        "pool_map_chunk1",
        "pool_cpu_1ms",
        "process_fork",
        "process_forkserver",
        "process_spawn",
        "manager_dict",
        "manager_dict_child",
        "listener_rt",
    ];
    assert_eq!(
        scenarios,
        expected
            .into_iter()
            .chain(scaling.iter().map(String::as_str))
            .collect(),
        "scenario list changed"
    );

    let python = python3_present();
    for row in rows {
        let (scenario, system) = (
            row["scenario_id"].as_str().unwrap(),
            row["system"].as_str().unwrap(),
        );
        let status = row["status"].as_str().unwrap();
        let what = format!("{scenario} / {system}: {row}");
        match system {
            "multiproc" => assert_eq!(status, "ok", "{what}"),
            s if s.starts_with("python") && !python => assert_eq!(status, "skipped", "{what}"),
            _ => assert_eq!(status, "ok", "{what}"),
        }
        if ALWAYS_MEASURED.contains(&system) {
            assert_eq!(status, "ok", "{what}");
        }
        if status == "ok" {
            let (median, min, max) = (
                row["median"].as_f64().unwrap(),
                row["min"].as_f64().unwrap(),
                row["max"].as_f64().unwrap(),
            );
            assert!(median.is_finite() && median > 0.0, "{what}");
            assert!(min <= median && median <= max, "{what}");
            assert_eq!(row["samples"].as_array().unwrap().len(), 1, "{what}");
            assert!(row["ops"].as_u64().unwrap() > 0, "{what}");
        }
    }
    // Every peer listed above appears somewhere, so a renamed system cannot slip by.
    for system in ALWAYS_MEASURED {
        assert!(
            rows.iter().any(|r| r["system"] == *system),
            "{system} missing"
        );
    }
}
