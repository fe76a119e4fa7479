//! Runs the chaos suite with a bounded budget (issue 15: at least 500 kills, no failure).
//! That its checks catch what they look for is tested in `src/ledger.rs`.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary with `args` in a process group of its own, killing the whole group if
/// it overruns `limit` (so nothing it started outlives the test).
fn chaos(args: &[&str], limit: Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_multiproc-chaos"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start multiproc-chaos");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(200));
            // Gone (or a zombie awaiting wait_with_output): nothing to do.
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Ok(s) if !s.contains(") Z") => {}
                _ => return false,
            }
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        true
    });
    let out = child.wait_with_output().expect("wait for multiproc-chaos");
    assert!(
        !watchdog.join().unwrap(),
        "multiproc-chaos overran {limit:?}"
    );
    out
}

/// The count line's fields.
fn counts(out: &Output) -> Vec<(String, u64)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("runs="))
        .unwrap_or_else(|| panic!("no count line in {stdout:?}"));
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn field(counts: &[(String, u64)], name: &str) -> u64 {
    counts.iter().find(|(k, _)| k == name).unwrap().1
}

// Issue 15 part 1, and DD-01 (pool), DD-02 (lock holder killed), DD-03 (pipe and queue
// peers killed mid-message), W7 (named queue's creator killed): every scenario in turn for
// 80 seconds.
#[test]
fn chaos_suite_500_kills_no_failure() {
    let out = chaos(&["--budget", "80"], Duration::from_secs(400));
    let c = counts(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(field(&c, "failures"), 0, "{c:?}\n{stderr}");
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(field(&c, "kills") >= 500, "{c:?}");
    assert!(field(&c, "runs") >= 7, "every scenario ran: {c:?}");
    assert!(field(&c, "messages_checked") > 10_000, "{c:?}");
}

#[test]
fn chaos_bad_arguments_are_refused() {
    let out = chaos(&["--scenario", "nope"], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario"));
    let out = chaos(&["--budget", "soon"], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2));
}
