//! Locks: uncontended acquire+release, and a cross-process hand-off ping-pong beside a bare
//! futex ping-pong (the floor for a blocking hand-off).
//!
//! Run unpinned: `cargo bench --bench sync`; both processes on one CPU:
//! `taskset -c 0 cargo bench --bench sync` (children inherit the affinity).
//! Python's `multiprocessing.Lock` side by side with ours, the same run and machine
//! (uncontended, and the two-lock ping-pong unpinned and on one CPU):
//! `cargo run --release -p multiproc-bench -- --filter lock`.

mod common;

use std::time::{Duration, Instant};

use criterion::Criterion;
use multiproc::{Lock, Process, RLock, Semaphore};

use common::FutexPingPong;

fn uncontended(c: &mut Criterion) {
    let lock = Lock::new().unwrap();
    c.bench_function("lock/uncontended_lock_unlock", |b| {
        b.iter(|| drop(lock.lock().unwrap()))
    });
    c.bench_function("lock/uncontended_acquire_release", |b| {
        b.iter(|| {
            let _ = lock.acquire().unwrap();
            lock.release().unwrap();
        })
    });
    let rlock = RLock::new().unwrap();
    c.bench_function("rlock/uncontended_lock_unlock", |b| {
        b.iter(|| drop(rlock.lock().unwrap()))
    });
    let sem = Semaphore::new(1).unwrap();
    c.bench_function("semaphore/uncontended_acquire_release", |b| {
        b.iter(|| drop(sem.lock()))
    });
}

/// `iters` round trips between this process and a child through two locks used as
/// binary semaphores (any process may release a `Lock`): the parent releases `ping`, the
/// child takes it and releases `pong`, the parent takes `pong`.
fn lock_ping_pong(iters: u64) -> Duration {
    let (ping, pong) = (Lock::new().unwrap(), Lock::new().unwrap());
    let _ = ping.acquire().unwrap();
    let _ = pong.acquire().unwrap();
    let (p, q) = (ping.clone(), pong.clone());
    let mut child = Process::new(move || {
        for _ in 0..iters {
            let _ = p.acquire().unwrap();
            q.release().unwrap();
        }
    })
    .start()
    .unwrap();
    let start = Instant::now();
    for _ in 0..iters {
        ping.release().unwrap();
        let _ = pong.acquire().unwrap();
    }
    let elapsed = start.elapsed();
    child.join().unwrap();
    elapsed
}

fn cross_process(c: &mut Criterion, futex: &FutexPingPong) {
    let mut g = c.benchmark_group("handoff");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("lock_ping_pong_round_trip", |b| {
        b.iter_custom(lock_ping_pong)
    });
    g.bench_function("bare_futex_ping_pong_round_trip", |b| {
        b.iter(|| futex.round_trip())
    });
    g.finish();
}

fn main() -> multiproc::Result<()> {
    // The futex child first: criterion may start threads, and forking after that is refused.
    let futex = FutexPingPong::start()?;
    let mut c = Criterion::default().configure_from_args();
    uncontended(&mut c);
    cross_process(&mut c, &futex);
    c.final_summary();
    futex.stop()
}
