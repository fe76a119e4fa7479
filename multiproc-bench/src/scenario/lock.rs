//! Locks and shared values: uncontended acquire+release, 2 processes contending, and
//! `Value` increments under its lock.

use std::sync::Mutex;

use serde_json::json;

use super::{check, not_yet, python};
use crate::harness::{Counts, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

/// The in-process ceiling for locks: there is no channel in these scenarios.
const STD_MUTEX: &str = "std Mutex (threads)";

pub(super) fn scenarios() -> Vec<Scenario> {
    let ns = Unit::time("ns/op", 1e9);
    vec![
        Scenario::new(
            "lock_uncontended",
            "lock acquire+release, uncontended",
            ns,
            Counts::new(1_000, 2_000_000, 10_000_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_lock_uncontended(n)),
                python(|n| json!({"scenario": "lock_uncontended", "n": n})),
                System::new(STD_MUTEX, |_, n| std_mutex_uncontended(n)),
            ],
        ),
        Scenario::new(
            "lock_contended",
            "lock hand-off, 2 processes x n",
            ns,
            Counts::new(100, 50_000, 200_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_lock_contended(n)),
                python(|n| json!({"scenario": "lock_contended", "n": n})),
                System::new(STD_MUTEX, |_, n| std_mutex_two_threads(n)),
            ],
        ),
        Scenario::new(
            "value_increment",
            "Value += 1 under its lock, 2 processes x n",
            ns,
            Counts::new(100, 50_000, 200_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_value_increment(n)),
                python(|n| json!({"scenario": "value_increment", "n": n})),
                System::new(STD_MUTEX, |_, n| std_mutex_two_threads(n)),
            ],
        ),
    ]
}

fn multiproc_lock_uncontended(_n: u64) -> Result<Outcome> {
    not_yet()
}

fn multiproc_lock_contended(_n: u64) -> Result<Outcome> {
    not_yet()
}

fn multiproc_value_increment(_n: u64) -> Result<Outcome> {
    not_yet()
}

fn std_mutex_uncontended(n: u64) -> Result<Outcome> {
    let lock = Mutex::new(0u64);
    let sample = Sample::time(n, || {
        for _ in 0..n {
            *std::hint::black_box(&lock).lock().map_err(|_| "poisoned")? += 1;
        }
        check("count", *lock.lock().map_err(|_| "poisoned")?, n)
    })?;
    Ok(Outcome::Sample(sample))
}

/// Two threads each increment a counter under one mutex `n` times: the ceiling for both
/// the contended lock and the `Value` scenario, which do the same work across processes.
fn std_mutex_two_threads(n: u64) -> Result<Outcome> {
    let counter = Mutex::new(0u64);
    let sample = Sample::time(2 * n, || {
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..n {
                        if let Ok(mut count) = counter.lock() {
                            *count += 1;
                        }
                    }
                });
            }
        });
        check("count", *counter.lock().map_err(|_| "poisoned")?, 2 * n)
    })?;
    Ok(Outcome::Sample(sample))
}
