//! Manager: item assignments on a shared dict through its proxy, from the process that
//! started the manager and from a child (set, then get, of one key per step).

use std::time::{Duration, Instant};

use multiproc::{Manager, Process};
use serde_json::json;

use super::{check, python};
use crate::harness::{Counts, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

/// Python's scenario writes 64 keys round-robin; so do we.
const KEYS: u64 = 64;

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "manager_dict",
            "manager dict item assignment",
            Unit::rate("k ops/s", 1e3),
            Counts::new(20, 5_000, 20_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_dict_set(n)),
                python(|n| json!({"scenario": "manager_dict", "n": n})),
            ],
        ),
        Scenario::new(
            "manager_dict_child",
            "manager dict set + get from a child",
            Unit::rate("k ops/s", 1e3),
            Counts::new(20, 5_000, 20_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_dict_child(n)),
                python(|n| json!({"scenario": "manager_dict_child", "n": n})),
            ],
        ),
    ]
}

fn multiproc_dict_set(n: u64) -> Result<Outcome> {
    let manager = Manager::start()?;
    let shared = manager.dict::<u64, u64>()?;
    // The first call connects (and authenticates); Python's proxy does that on creation.
    shared.len()?;
    let sample = Sample::time(n, || {
        for i in 0..n {
            shared.insert(&(i % KEYS), &i)?;
        }
        Ok(())
    })?;
    check("entries", shared.len()? as u64, n.min(KEYS))?;
    check("last", shared.get(&((n - 1) % KEYS))?, Some(n - 1))?;
    Ok(Outcome::Sample(sample))
}

/// The child times its own loop (process start-up is not a dict operation) and hands the
/// time back; each step is one set and one get, two operations.
fn multiproc_dict_child(n: u64) -> Result<Outcome> {
    let manager = Manager::start()?;
    let shared = manager.dict::<u64, u64>()?;
    let child_dict = shared.clone();
    let mut child = Process::new(move || -> std::result::Result<Duration, String> {
        let run = || -> multiproc::Result<Duration> {
            child_dict.len()?;
            let start = Instant::now();
            for i in 0..n {
                child_dict.insert(&(i % KEYS), &i)?;
                if child_dict.get(&(i % KEYS))? != Some(i) {
                    return Err(multiproc::Error::InvalidState("lost a write".into()));
                }
            }
            Ok(start.elapsed())
        };
        run().map_err(|e| e.to_string())
    })
    .start()?;
    let elapsed = child.join()??;
    check("entries", shared.len()? as u64, n.min(KEYS))?;
    Ok(Outcome::Sample(Sample {
        ops: 2 * n,
        elapsed,
    }))
}
