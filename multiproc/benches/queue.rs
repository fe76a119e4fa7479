//! Queue throughput and latency between processes.
//!
//! Run: `cargo bench -p multiproc --bench queue` (unpinned) and
//! `taskset -c 0 cargo bench -p multiproc --bench queue -- pingpong` (both processes on one
//! CPU). Python's `multiprocessing.Queue` side by side with ours, the same run and machine
//! (throughput 1:1, 4:1, 1 MiB, and the ping-pong unpinned and on one CPU):
//! `cargo run --release -p multiproc-bench -- --filter queue`.
//!
//! Every child process is forked at the start of `main`, before criterion starts threads,
//! and serves commands (how many messages to move) over a control queue until told to stop.

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use multiproc::{Process, Queue};
use serde_bytes::ByteBuf;

use common::FutexPingPong;

/// Bytes in a "big" message.
const BIG: usize = 1 << 20;
/// Producers in the many-to-one benchmark.
const PRODUCERS: u64 = 4;

/// A consumer child: for each command `n`, takes `n` messages from `data` and reports their
/// count on `done`. Command 0 ends it.
fn consumer<T>(ctl: Queue<u64>, data: Queue<T>, done: Queue<u64>) -> impl FnOnce()
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    move || {
        while let Ok(n) = ctl.get() {
            if n == 0 {
                break;
            }
            for _ in 0..n {
                data.get().unwrap();
            }
            done.put(n).unwrap();
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every process first: criterion starts threads, and forking after that is refused.
    let done: Queue<u64> = Queue::new()?;
    let mut children = Vec::new();
    // Unbounded (Python's default, `Queue()`) and bounded variants; each has its consumer.
    let mut one_to_one = |small: Queue<i64>, big: Queue<ByteBuf>| {
        let (small_ctl, big_ctl): (Queue<u64>, Queue<u64>) = (Queue::new()?, Queue::new()?);
        children
            .push(Process::new(consumer(small_ctl.clone(), small.clone(), done.clone())).start()?);
        children.push(Process::new(consumer(big_ctl.clone(), big.clone(), done.clone())).start()?);
        Ok::<_, multiproc::Error>((small_ctl, small, big_ctl, big))
    };
    let unbounded = one_to_one(Queue::new()?, Queue::new()?)?;
    let bounded = one_to_one(Queue::bounded(4096)?, Queue::bounded(8)?)?;
    let many: Queue<i64> = Queue::bounded(4096)?;
    let mut producer_ctl = Vec::new();
    for _ in 0..PRODUCERS {
        let (c, q): (Queue<u64>, _) = (Queue::new()?, many.clone());
        producer_ctl.push(c.clone());
        children.push(
            Process::new(move || {
                while let Ok(n) = c.get() {
                    if n == 0 {
                        break;
                    }
                    for i in 0..n {
                        q.put(i as i64).unwrap();
                    }
                }
            })
            .start()?,
        );
    }
    let (ping, pong): (Queue<i64>, Queue<i64>) = (Queue::new()?, Queue::new()?);
    let (ping2, pong2) = (ping.clone(), pong.clone());
    children.push(
        Process::new(move || {
            while let Ok(x) = ping2.get() {
                if x < 0 {
                    break;
                }
                pong2.put(x).unwrap();
            }
        })
        .start()?,
    );
    let futex = FutexPingPong::start()?;

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(1));
    for (name, (small_ctl, small, _, _)) in [("unbounded", &unbounded), ("bounded", &bounded)] {
        g.bench_function(format!("1p1c_i64_{name}"), |b| {
            b.iter_custom(|iters| {
                small_ctl.put(iters).unwrap();
                let t = Instant::now();
                for i in 0..iters {
                    small.put(i as i64).unwrap();
                }
                assert_eq!(done.get().unwrap(), iters);
                t.elapsed()
            })
        });
    }
    g.bench_function("4p1c_i64", |b| {
        b.iter_custom(|iters| {
            let share = iters.div_ceil(PRODUCERS);
            let t = Instant::now();
            for p in &producer_ctl {
                p.put(share).unwrap();
            }
            for _ in 0..share * PRODUCERS {
                many.get().unwrap();
            }
            t.elapsed() * iters as u32 / (share * PRODUCERS) as u32
        })
    });
    g.throughput(Throughput::Bytes(BIG as u64));
    for (name, (_, _, big_ctl, big)) in [("unbounded", &unbounded), ("bounded", &bounded)] {
        g.bench_function(format!("1p1c_1MiB_{name}"), |b| {
            let message = ByteBuf::from(vec![7u8; BIG]);
            b.iter_custom(|iters| {
                big_ctl.put(iters).unwrap();
                let t = Instant::now();
                for _ in 0..iters {
                    big.put(message.clone()).unwrap();
                }
                assert_eq!(done.get().unwrap(), iters);
                t.elapsed()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("pingpong");
    g.bench_function("queue_round_trip", |b| {
        b.iter(|| {
            ping.put(1).unwrap();
            pong.get().unwrap()
        })
    });
    g.bench_function("bare_futex_round_trip", |b| b.iter(|| futex.round_trip()));
    g.finish();

    c.final_summary();
    futex.stop()?;
    ping.put(-1)?;
    for p in &producer_ctl {
        p.put(0)?;
    }
    for (small_ctl, _, big_ctl, _) in [&unbounded, &bounded] {
        small_ctl.put(0)?;
        big_ctl.put(0)?;
    }
    for mut child in children {
        child.join()?;
    }
    Ok(())
}
