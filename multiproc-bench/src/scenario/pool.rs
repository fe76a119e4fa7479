//! Pools of 2 workers: `map` and `apply_async` of a trivial function.

use serde_json::json;

use super::{check, not_yet, python, python_named, PROCSPAWN, THREADS};
use crate::harness::{Counts, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

/// Workers in every pool: one per core of the 2-core machines this runs on.
const WORKERS: usize = 2;

pub(super) fn scenarios() -> Vec<Scenario> {
    let rate = Unit::rate("k tasks/s", 1e3);
    vec![
        Scenario::new(
            "pool_map",
            "pool map, trivial function",
            rate,
            Counts::new(20, 50_000, 200_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_map(n)),
                python(|n| json!({"scenario": "pool_map", "n": n})),
                python_named(
                    "python multiprocessing (chunksize 1)",
                    |n| json!({"scenario": "pool_map", "n": n, "chunksize": 1}),
                ),
                System::new(THREADS, |_, n| threads_pool(n)),
            ],
        ),
        Scenario::new(
            "pool_apply_async",
            "pool apply_async, trivial function",
            rate,
            Counts::new(10, 5_000, 20_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_apply_async(n)),
                python(|n| json!({"scenario": "pool_apply_async", "n": n})),
                System::new(PROCSPAWN, |_, n| procspawn_pool(n)),
                System::new(THREADS, |_, n| threads_pool(n)),
            ],
        ),
    ]
}

fn multiproc_map(_n: u64) -> Result<Outcome> {
    not_yet()
}

fn multiproc_apply_async(_n: u64) -> Result<Outcome> {
    not_yet()
}

/// Tasks submitted to procspawn's pool before waiting for their results.
const PROCSPAWN_IN_FLIGHT: usize = 256;

/// The trivial task every pool runs.
fn square(x: u64) -> u64 {
    x * x
}

fn sum_of_squares(n: u64) -> u64 {
    (0..n).map(square).sum()
}

fn procspawn_pool(n: u64) -> Result<Outcome> {
    let pool = procspawn::Pool::new(WORKERS)?;
    pool.spawn(0, square).join()?; // the workers are up before the clock starts
    let sample = Sample::time(n, || {
        let mut sum = 0;
        // Each pending task holds 4 descriptors (two ipc channels) and procspawn panics
        // when it runs out, so at most `PROCSPAWN_IN_FLIGHT` tasks are pending at once.
        for start in (0..n).step_by(PROCSPAWN_IN_FLIGHT) {
            let end = n.min(start + PROCSPAWN_IN_FLIGHT as u64);
            let handles: Vec<_> = (start..end).map(|i| pool.spawn(i, square)).collect();
            for handle in handles {
                sum += handle.join()?;
            }
        }
        check("sum of results", sum, sum_of_squares(n))
    });
    pool.shutdown();
    Ok(Outcome::Sample(sample?))
}

/// In-process ceiling: tasks to 2 worker threads over one channel, results back over another.
fn threads_pool(n: u64) -> Result<Outcome> {
    let (task_tx, task_rx) = crossbeam_channel::unbounded::<u64>();
    let (result_tx, result_rx) = crossbeam_channel::unbounded::<u64>();
    std::thread::scope(move |scope| {
        for _ in 0..WORKERS {
            let (tasks, results) = (task_rx.clone(), result_tx.clone());
            scope.spawn(move || {
                for x in tasks {
                    if results.send(square(x)).is_err() {
                        break;
                    }
                }
            });
        }
        let sample = Sample::time(n, || {
            (0..n).try_for_each(|i| task_tx.send(i))?;
            let sum: u64 = result_rx.iter().take(n as usize).sum();
            check("sum of results", sum, sum_of_squares(n))
        })?;
        Ok(Outcome::Sample(sample))
    })
}
