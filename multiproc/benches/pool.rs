//! Pool task overhead: one `apply` round trip, and the throughput of `apply_async` and of
//! `map` with chunk size 1, on a pool of 2 workers.
//!
//! Run: `cargo bench -p multiproc --bench pool`. Python's `Pool` side by side with ours,
//! the same run and machine: `cargo run --release -p multiproc-bench -- --filter pool`.
//!
//! The pool is built at the start of `main`, before criterion starts threads; from then on
//! its workers are forked by its helper process, never by this one.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use multiproc::Pool;

/// Tasks per iteration of the throughput benchmarks.
const TASKS: u64 = 1000;

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::new(2)?;
    pool.map(square, 0..4)?; // the workers are up before the clock starts
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));

    c.bench_function("pool/apply_round_trip", |b| {
        b.iter(|| pool.apply(square, 7).expect("apply"))
    });
    let mut g = c.benchmark_group("pool");
    g.throughput(Throughput::Elements(TASKS));
    g.bench_function("apply_async", |b| {
        b.iter(|| {
            let pending: Vec<_> = (0..TASKS)
                .map(|i| pool.apply_async(square, i).expect("apply_async"))
                .collect();
            pending.iter().map(|r| r.get().expect("get")).sum::<u64>()
        })
    });
    g.bench_function("map_chunksize_1", |b| {
        b.iter(|| pool.map_chunked(square, 0..TASKS, 1).expect("map"))
    });
    g.finish();
    c.final_summary();
    pool.close();
    pool.join()?;
    Ok(())
}
