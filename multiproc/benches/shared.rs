//! Shared values: lock-free `fetch_add`, locked increments, and the issue's
//! "2 processes x 100,000 increments" race, locked and with `fetch_add`.
//!
//! Run: `cargo bench --bench shared`. Python's `Value` with `get_lock()` side by side with
//! ours (locked and `fetch_add`, 2 processes x n), the same run and machine:
//! `cargo run --release -p multiproc-bench -- --filter value`.

use std::time::{Duration, Instant};

use criterion::Criterion;
use multiproc::{Array, Process, Value};

fn single_process(c: &mut Criterion) {
    let v = Value::new(0u64).unwrap();
    c.bench_function("value/fetch_add", |b| b.iter(|| v.fetch_add(1)));
    c.bench_function("value/locked_increment", |b| {
        b.iter(|| *v.lock().unwrap() += 1)
    });
    c.bench_function("value/load", |b| b.iter(|| v.load()));
    let a = Array::<f64>::new(1024).unwrap();
    c.bench_function("array/lock_and_sum_1024", |b| {
        b.iter(|| a.lock().unwrap().iter().sum::<f64>())
    });
    c.bench_function("array/set", |b| b.iter(|| a.set(7, 1.0).unwrap()));
}

/// How two processes add to the shared value.
#[derive(Clone, Copy)]
enum Increments {
    /// 100,000 each, under the value's lock.
    Locked,
    /// 100,000 each, with `fetch_add`.
    FetchAdd,
    /// None: the cost of starting and joining the two processes alone.
    None,
}

/// Two processes each add 1 to one shared `Value<u64>` 100,000 times (or not at all);
/// returns the time from start to both joined.
fn two_processes(how: Increments) -> Duration {
    let v = Value::new(0u64).unwrap();
    let start = Instant::now();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let v = v.clone();
            Process::new(move || match how {
                Increments::Locked => (0..100_000).for_each(|_| *v.lock().unwrap() += 1),
                Increments::FetchAdd => (0..100_000).for_each(|_| {
                    v.fetch_add(1);
                }),
                Increments::None => {}
            })
            .start()
            .unwrap()
        })
        .collect();
    for mut c in children {
        c.join().unwrap();
    }
    let elapsed = start.elapsed();
    let expected = if matches!(how, Increments::None) {
        0
    } else {
        200_000
    };
    assert_eq!(v.load(), expected);
    elapsed
}

fn cross_process(c: &mut Criterion) {
    let mut g = c.benchmark_group("value_2proc_x100k");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("locked_increments", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| two_processes(Increments::Locked)).sum())
    });
    g.bench_function("fetch_add_increments", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| two_processes(Increments::FetchAdd))
                .sum()
        })
    });
    g.bench_function("start_and_join_only", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| two_processes(Increments::None)).sum())
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    single_process(&mut c);
    cross_process(&mut c);
    c.final_summary();
}
