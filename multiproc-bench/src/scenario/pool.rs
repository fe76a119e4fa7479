//! Pools of 2 workers: `apply_async` and `map` of a trivial function, and CPU-bound tasks.

use serde_json::json;

use super::{check, python, PROCSPAWN, THREADS};
use crate::harness::{Counts, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};
use crate::spin::spin_1ms;

/// Workers in every pool: one per core of the 2-core machines this runs on.
const WORKERS: usize = 2;

pub(super) fn scenarios() -> Vec<Scenario> {
    let rate = Unit::rate("k tasks/s", 1e3);
    vec![
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
        Scenario::new(
            "pool_map_chunk1",
            "pool map, trivial function, chunk size 1",
            rate,
            Counts::new(20, 50_000, 200_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_map(n, Some(1))),
                python(|n| json!({"scenario": "pool_map", "n": n, "chunksize": 1})),
                System::new(THREADS, |_, n| threads_pool(n)),
            ],
        ),
        Scenario::new(
            "pool_map",
            "pool map, trivial function, default chunk size",
            Unit::rate("M items/s", 1e6),
            Counts::new(20, 200_000, 1_000_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_map(n, None)),
                python(|n| json!({"scenario": "pool_map", "n": n})),
                System::new(THREADS, |_, n| threads_pool(n)),
            ],
        ),
        Scenario::new(
            "pool_cpu_1ms",
            "pool of 2, CPU-bound 1 ms tasks: both cores busy",
            // One task is 1 ms of one core, so `tasks/s / 20` is the percentage of the 2
            // cores kept busy.
            Unit::rate("% busy", 20.0),
            Counts::new(10, 1_000, 4_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_cpu(n)),
                python(|n| json!({"scenario": "pool_cpu_1ms", "n": n})),
                System::new(THREADS, |_, n| threads_cpu(n)),
            ],
        ),
    ]
}

/// A pool of [`WORKERS`] whose workers are up before the clock starts.
fn multiproc_pool() -> Result<multiproc::Pool> {
    let pool = multiproc::Pool::new(WORKERS)?;
    pool.map(square, 0..4)?;
    Ok(pool)
}

fn multiproc_map(n: u64, chunksize: Option<usize>) -> Result<Outcome> {
    let pool = multiproc_pool()?;
    let sample = Sample::time(n, || {
        let out = match chunksize {
            Some(c) => pool.map_chunked(square, 0..n, c)?,
            None => pool.map(square, 0..n)?,
        };
        check("sum of results", out.iter().sum(), sum_of_squares(n))
    })?;
    pool.terminate();
    Ok(Outcome::Sample(sample))
}

fn multiproc_apply_async(n: u64) -> Result<Outcome> {
    let pool = multiproc_pool()?;
    let sample = Sample::time(n, || {
        let pending = (0..n)
            .map(|i| pool.apply_async(square, i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sum = 0;
        for r in pending {
            sum += r.get()?;
        }
        check("sum of results", sum, sum_of_squares(n))
    })?;
    pool.terminate();
    Ok(Outcome::Sample(sample))
}

fn multiproc_cpu(n: u64) -> Result<Outcome> {
    let pool = multiproc_pool()?;
    let sample = Sample::time(n, || {
        let out = pool.map_chunked(spin_1ms, 0..n, 1)?;
        check("results", out.len() as u64, n)
    })?;
    pool.terminate();
    Ok(Outcome::Sample(sample))
}

/// The ceiling: 2 threads spinning, fed by a channel.
fn threads_cpu(n: u64) -> Result<Outcome> {
    threads_run(n, spin_1ms, |results| {
        check("results", results.count() as u64, n)
    })
}

/// `n` tasks `task(0..n)` to [`WORKERS`] threads over one channel, their results back over
/// another; `verify` checks the `n` results. The in-process ceiling of the pool rows.
fn threads_run(
    n: u64,
    task: fn(u64) -> u64,
    verify: impl FnOnce(&mut dyn Iterator<Item = u64>) -> Result<()>,
) -> Result<Outcome> {
    let (task_tx, task_rx) = crossbeam_channel::unbounded::<u64>();
    let (result_tx, result_rx) = crossbeam_channel::unbounded::<u64>();
    std::thread::scope(move |scope| {
        for _ in 0..WORKERS {
            let (tasks, results) = (task_rx.clone(), result_tx.clone());
            scope.spawn(move || {
                for x in tasks {
                    if results.send(task(x)).is_err() {
                        break;
                    }
                }
            });
        }
        let sample = Sample::time(n, || {
            (0..n).try_for_each(|i| task_tx.send(i))?;
            verify(&mut result_rx.iter().take(n as usize))
        })?;
        Ok(Outcome::Sample(sample))
    })
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
    threads_run(n, square, |results| {
        check("sum of results", results.sum(), sum_of_squares(n))
    })
}
