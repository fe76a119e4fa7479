//! How busy a pool of 2 keeps the 2 cores on CPU-bound 1 ms tasks, measured from the
//! kernel's accounting rather than from throughput, beside 2 threads doing the same tasks.
//!
//! For each run it prints, per system: the wall time; `busy`, the CPU time of the workers
//! (processes or threads) over `wall x 2`; `waiting`, their time runnable but not running
//! (another process had the core: the machine's load, not the pool) over `wall x 2`; and
//! `idle`, the rest: time a worker had nothing to run, which is what a pool itself loses.
//! The parent's own CPU time over the same wall time is shown too (`parent`: the whole
//! process for the pool, its result thread included; the feeding thread for the threads).
//!
//! `cargo run --release -p multiproc-bench --bin pool_busy -- [tasks] [runs]`

use std::time::{Duration, Instant};

/// Workers, and cores of the machine this is meant for.
const WORKERS: usize = 2;

#[path = "../spin.rs"]
mod spin;

use spin::spin_1ms;

/// (time on a CPU, time runnable but waiting for one), in ns, from a schedstat file.
fn schedstat(path: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut f = text
        .split_whitespace()
        .map(|x| x.parse::<u64>().unwrap_or(0));
    (f.next().unwrap_or(0), f.next().unwrap_or(0))
}

fn sum_schedstat(paths: &[String]) -> (u64, u64) {
    paths
        .iter()
        .map(|p| schedstat(p))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

struct Figures {
    wall: Duration,
    cpu_ns: u64,
    wait_ns: u64,
    parent_ns: u64,
}

impl Figures {
    fn print(&self, name: &str, n: u64) {
        let capacity = self.wall.as_nanos() as f64 * WORKERS as f64;
        let busy = self.cpu_ns as f64 / capacity * 100.0;
        let waiting = self.wait_ns as f64 / capacity * 100.0;
        println!(
            "{name:8} {n} tasks: wall {:7.1} ms  busy {busy:5.1} %  waiting {waiting:5.1} %  \
             idle {:5.1} %  parent {:5.1} % of one core  tasks/s/20 {:5.1}",
            self.wall.as_secs_f64() * 1e3,
            100.0 - busy - waiting,
            self.parent_ns as f64 / self.wall.as_nanos() as f64 * 100.0,
            n as f64 / self.wall.as_secs_f64() / 20.0,
        );
    }
}

fn pool_run(pool: &multiproc::Pool, n: u64) -> Figures {
    let paths: Vec<String> = pool
        .pids()
        .iter()
        .map(|p| format!("/proc/{p}/schedstat"))
        .collect();
    let before = sum_schedstat(&paths);
    let parent_before = process_cpu_ns();
    let start = Instant::now();
    let out = pool.map_chunked(spin_1ms, 0..n, 1).unwrap();
    let wall = start.elapsed();
    let after = sum_schedstat(&paths);
    assert_eq!(out.len() as u64, n);
    assert_eq!(pool.pids().len(), WORKERS);
    Figures {
        wall,
        cpu_ns: after.0 - before.0,
        wait_ns: after.1 - before.1,
        parent_ns: process_cpu_ns() - parent_before,
    }
}

/// CPU time of this process, every thread (ended ones too), from the kernel (ns).
fn process_cpu_ns() -> u64 {
    // SAFETY: a zeroed rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is live for getrusage to write.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(usage.ru_utime) + us(usage.ru_stime)) * 1_000
}

fn threads_run(n: u64) -> Figures {
    let (task_tx, task_rx) = crossbeam_channel::unbounded::<u64>();
    let (result_tx, result_rx) = crossbeam_channel::unbounded::<u64>();
    let (tid_tx, tid_rx) = crossbeam_channel::unbounded::<i32>();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            let (tasks, results, tids) = (task_rx.clone(), result_tx.clone(), tid_tx.clone());
            scope.spawn(move || {
                tids.send(gettid()).unwrap();
                for x in tasks {
                    if results.send(spin_1ms(x)).is_err() {
                        break;
                    }
                }
            });
        }
        let paths: Vec<String> = (0..WORKERS)
            .map(|_| format!("/proc/self/task/{}/schedstat", tid_rx.recv().unwrap()))
            .collect();
        let before = sum_schedstat(&paths);
        let me = format!("/proc/self/task/{}/schedstat", gettid());
        let parent_before = schedstat(&me).0;
        let start = Instant::now();
        (0..n).for_each(|_| task_tx.send(1).unwrap());
        assert_eq!(result_rx.iter().take(n as usize).count() as u64, n);
        let wall = start.elapsed();
        let after = sum_schedstat(&paths);
        let parent_ns = schedstat(&me).0 - parent_before;
        drop(task_tx);
        Figures {
            wall,
            cpu_ns: after.0 - before.0,
            wait_ns: after.1 - before.1,
            parent_ns,
        }
    })
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(2000, |a| a.parse().expect("tasks"));
    let runs: usize = args.next().map_or(5, |a| a.parse().expect("runs"));
    let pool = multiproc::Pool::new(WORKERS).unwrap();
    pool.map(spin_1ms, [1, 1]).unwrap();
    println!(
        "load before: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap().trim()
    );
    for run in 0..runs {
        // Interleaved, each run starting with the other system.
        if run % 2 == 0 {
            pool_run(&pool, n).print("pool", n);
            threads_run(n).print("threads", n);
        } else {
            threads_run(n).print("threads", n);
            pool_run(&pool, n).print("pool", n);
        }
    }
    pool.close();
    pool.join().unwrap();
}
