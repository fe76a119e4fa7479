//! The Python `multiprocessing` peer: one long-lived `python3 driver.py` that takes one
//! JSON request per line on stdin and answers one JSON line on stdout, so that neither
//! interpreter start-up nor imports land inside a sample.
//!
//! The scripts are compiled into the binary and written to a private temporary
//! directory (removed on drop): the spawn and forkserver start methods re-import the
//! main module from a file, so they cannot be fed through `python3 -c`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::harness::{Result, Sample};

const SCRIPTS: &[(&str, &str)] = &[
    ("driver.py", include_str!("../python/driver.py")),
    ("bench_common.py", include_str!("../python/bench_common.py")),
    ("bench_pipe.py", include_str!("../python/bench_pipe.py")),
    ("bench_queue.py", include_str!("../python/bench_queue.py")),
    ("bench_sync.py", include_str!("../python/bench_sync.py")),
    ("bench_pool.py", include_str!("../python/bench_pool.py")),
    (
        "bench_process.py",
        include_str!("../python/bench_process.py"),
    ),
    (
        "bench_manager.py",
        include_str!("../python/bench_manager.py"),
    ),
    (
        "bench_listener.py",
        include_str!("../python/bench_listener.py"),
    ),
    ("bench_broker.py", include_str!("../python/bench_broker.py")),
    ("broker_tasks.py", include_str!("../python/broker_tasks.py")),
];

/// The running driver.
#[derive(Debug)]
pub(crate) struct Python {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
    version: String,
}

#[derive(Deserialize)]
struct Reply {
    ops: Option<u64>,
    seconds: Option<f64>,
    error: Option<String>,
}

impl Python {
    /// Writes the scripts and starts the driver; an error (shown as the reason the
    /// Python rows are skipped) when `python3` is absent.
    pub(crate) fn start() -> Result<Self> {
        let version = Command::new("python3")
            .arg("--version")
            .output()
            .map_err(|e| format!("python3 not found ({e})"))?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        let dir = std::env::temp_dir().join(format!("multiproc-bench-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        for (name, text) in SCRIPTS {
            fs::write(dir.join(name), text)?;
        }
        let spawned = Command::new("python3")
            .arg("-u")
            .arg("driver.py")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(dir.join("stderr.txt"))?)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        };
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
        Ok(Python {
            child,
            stdin,
            stdout,
            dir,
            version,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The folder that holds the scripts (the Celery and RQ peers run from it).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// Runs one request (`{"scenario": ..., "n": ..., ...}`) and returns its sample.
    pub(crate) fn run(&mut self, request: serde_json::Value) -> Result<Sample> {
        writeln!(self.stdin, "{request}")?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(
                format!("the python driver died; its stderr: {}", self.stderr_tail()).into(),
            );
        }
        let reply: Reply = serde_json::from_str(&line)?;
        match reply {
            Reply {
                ops: Some(ops),
                seconds: Some(seconds),
                error: None,
            } if seconds > 0.0 => Ok(Sample {
                ops,
                elapsed: Duration::from_secs_f64(seconds),
            }),
            Reply { error: Some(e), .. } => Err(format!("python: {e}").into()),
            _ => Err(format!("python: bad reply {line:?}").into()),
        }
    }

    fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default();
        let start = text.len().saturating_sub(2000);
        text.get(start..).unwrap_or(&text).to_owned()
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        // Closing stdin ends the driver's loop; kill it if it does not leave promptly.
        let _ = writeln!(self.stdin, "{{\"scenario\": \"exit\"}}");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
