//! Pipe round-trip latency (8 B and 64 B) and 1 MiB throughput between two processes,
//! beside the floor: a raw socketpair ping-pong with the same payloads.
//!
//! `cargo bench --bench pipe`; pinned to one CPU: `taskset -c 0 cargo bench --bench pipe`.
//! Python's `multiprocessing.Pipe` side by side, same run: `cargo run --release -p multiproc-bench`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use multiproc::{pipe, Connection, Process};

const MIB: usize = 1 << 20;

/// A child that echoes every message until EOF.
fn echo_server() -> (Connection, multiproc::Child<()>) {
    let (parent, mut child_end) = pipe().unwrap();
    let child = Process::new(move || {
        let mut buf = vec![0u8; 256];
        while let Ok(n) = child_end.recv_bytes_into(&mut buf) {
            child_end.send_bytes(&buf[..n]).unwrap();
        }
    })
    .start()
    .unwrap();
    (parent, child)
}

/// A child that takes 1 MiB messages and answers each with one byte.
fn sink_server() -> (Connection, multiproc::Child<()>) {
    let (parent, mut child_end) = pipe().unwrap();
    let child = Process::new(move || {
        let mut buf = vec![0u8; MIB];
        while child_end.recv_bytes_into(&mut buf).is_ok() {
            child_end.send_bytes(b"k").unwrap();
        }
    })
    .start()
    .unwrap();
    (parent, child)
}

/// The floor: a raw socketpair whose child echoes fixed-size chunks.
fn raw_echo(size: usize) -> (UnixStream, multiproc::Child<()>) {
    let (a, b) = UnixStream::pair().unwrap();
    let child = Process::new(move || {
        let mut b = b;
        let mut buf = vec![0u8; size];
        while b.read_exact(&mut buf).is_ok() {
            if b.write_all(&buf[..size.min(64)]).is_err() {
                break;
            }
        }
    })
    .start()
    .unwrap();
    (a, child)
}

fn main() {
    // Fork every child first, while this process has one thread.
    let (mut echo, mut echo_child) = echo_server();
    let (mut sink, mut sink_child) = sink_server();
    let mut raw: Vec<(usize, UnixStream, multiproc::Child<()>)> = [8, 64, MIB]
        .into_iter()
        .map(|s| {
            let (a, c) = raw_echo(s);
            (s, a, c)
        })
        .collect();

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let mut group = c.benchmark_group("pipe_roundtrip");
    for size in [8usize, 64] {
        let msg = vec![7u8; size];
        let mut buf = [0u8; 256];
        group.bench_with_input(BenchmarkId::new("multiproc", size), &size, |b, _| {
            b.iter(|| {
                echo.send_bytes(&msg).unwrap();
                echo.recv_bytes_into(&mut buf).unwrap()
            })
        });
        let (_, stream, _) = raw.iter_mut().find(|(s, _, _)| *s == size).unwrap();
        group.bench_with_input(BenchmarkId::new("raw_socketpair", size), &size, |b, _| {
            b.iter(|| {
                stream.write_all(&msg).unwrap();
                stream.read_exact(&mut buf[..size]).unwrap();
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("pipe_throughput_1MiB");
    group.throughput(Throughput::Bytes(MIB as u64));
    let big = vec![1u8; MIB];
    group.bench_function("multiproc", |b| {
        let mut ack = [0u8; 1];
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                sink.send_bytes(&big).unwrap();
                sink.recv_bytes_into(&mut ack).unwrap();
            }
            t.elapsed()
        })
    });
    let (_, stream, _) = raw.iter_mut().find(|(s, _, _)| *s == MIB).unwrap();
    group.bench_function("raw_socketpair", |b| {
        let mut ack = [0u8; 64];
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                stream.write_all(&big).unwrap();
                stream.read_exact(&mut ack).unwrap();
            }
            t.elapsed()
        })
    });
    group.finish();

    drop(echo);
    drop(sink);
    echo_child.join().unwrap();
    sink_child.join().unwrap();
    // The floor's raw sockets are not library connections, so each raw child inherited
    // every raw end created before it, its own peer's included: EOF never reaches them.
    for (_, _, mut child) in raw {
        child.kill().unwrap();
        let _ = child.join();
    }
    c.final_summary();
}
