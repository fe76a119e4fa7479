//! Pipes: round trips of small messages, and 1 MiB messages one way.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use ipc_channel::ipc;
use serde_json::json;

use multiproc::Process;

use super::{
    check, futex_round_trip, ping_pong, pinned_suffix, python, warmup, BIG, FUTEX_FLOOR,
    IPC_CHANNEL, THREADS,
};
use crate::child;
use crate::floor;
use crate::harness::{Counts, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        round_trip(8, false),
        round_trip(64, false),
        round_trip(8, true),
        throughput(false),
        throughput(true),
    ]
}

fn round_trip(size: usize, pinned: bool) -> Scenario {
    let (id, title) = pinned_suffix(pinned);
    let mut systems = vec![
        System::new(MULTIPROC, move |_, n| multiproc_round_trip(size, n)),
        python(move |n| json!({"scenario": "pipe_rt", "n": n, "size": size, "warmup": warmup(n)})),
        System::new(IPC_CHANNEL, move |_, n| ipc_channel_round_trip(size, n)),
        System::new("floor: socketpair", move |_, n| {
            socketpair_round_trip(size, n)
        }),
        System::new(FUTEX_FLOOR, |_, n| futex_round_trip(n)),
    ];
    if !pinned {
        systems.push(System::new(THREADS, move |_, n| {
            threads_round_trip(size, n)
        }));
    }
    Scenario::new(
        format!("pipe_rt_{size}{id}"),
        format!("pipe round trip {size} B{title}"),
        Unit::time("us/RT", 1e6),
        Counts::new(20, 5_000, 50_000),
        systems,
    )
    .pinned(pinned)
}

fn throughput(pinned: bool) -> Scenario {
    let (id, title) = pinned_suffix(pinned);
    let mut systems = vec![
        System::new(MULTIPROC, |_, n| multiproc_throughput(n)),
        python(|n| json!({"scenario": "pipe_throughput", "n": n, "size": BIG})),
        System::new("floor: pipe (1 MiB buffer)", |_, n| pipe_throughput(n)),
        System::new("floor: socketpair (4 MiB buffers)", |_, n| {
            socketpair_throughput(n)
        }),
    ];
    if !pinned {
        systems.push(System::new(IPC_CHANNEL, |_, n| ipc_channel_throughput(n)));
        systems.push(System::new(THREADS, |_, n| threads_throughput(n)));
    }
    Scenario::new(
        format!("pipe_1mib{id}"),
        format!("pipe 1 MiB messages{title}"),
        Unit::GB_PER_S,
        Counts::new(4, 200, 1_000),
        systems,
    )
    .pinned(pinned)
}

fn multiproc_round_trip(size: usize, n: u64) -> Result<Outcome> {
    let (mut parent, mut child_end) = multiproc::pipe()?;
    // The child owns `child_end`, so it sees EOF once the parent drops `parent`.
    let mut echo = Process::new(move || {
        let mut echoed = 0u64;
        while let Ok(message) = child_end.recv_bytes() {
            if child_end.send_bytes(&message).is_err() {
                break;
            }
            echoed += 1;
        }
        echoed
    })
    .start()?;
    let message = vec![7u8; size];
    let mut round_trip = || -> Result<()> {
        parent.send_bytes(&message)?;
        check(
            "echoed message",
            parent.recv_bytes()?.as_slice(),
            message.as_slice(),
        )
    };
    let warm = warmup(n);
    (0..warm).try_for_each(|_| round_trip())?;
    let sample = Sample::time(n, || (0..n).try_for_each(|_| round_trip()))?;
    drop(parent);
    check("round trips echoed", echo.join()?, warm + n)?;
    Ok(Outcome::Sample(sample))
}

fn multiproc_throughput(n: u64) -> Result<Outcome> {
    let (mut parent, mut child_end) = multiproc::pipe()?;
    let mut sink = Process::new(move || -> Result<(), String> {
        let mut bytes = 0u64;
        for _ in 0..n {
            bytes += child_end.recv_bytes().map_err(|e| e.to_string())?.len() as u64;
        }
        child_end.send(&bytes).map_err(|e| e.to_string())
    })
    .start()?;
    let message = vec![7u8; BIG];
    let bytes = n * BIG as u64;
    let sample = Sample::time(bytes, || {
        (0..n).try_for_each(|_| parent.send_bytes(&message))?;
        check("bytes received", parent.recv::<u64>()?, bytes)
    })?;
    sink.join()??;
    Ok(Outcome::Sample(sample))
}

fn ipc_channel_round_trip(size: usize, n: u64) -> Result<Outcome> {
    let (to_child, from_parent) = ipc::bytes_channel()?;
    let (to_parent, from_child) = ipc::bytes_channel()?;
    let message = vec![7u8; size];
    ping_pong(
        n,
        |count| {
            for _ in 0..count {
                to_parent.send(&from_parent.recv()?)?;
            }
            Ok(())
        },
        || {
            to_child.send(&message)?;
            check(
                "echoed message",
                from_child.recv()?.as_slice(),
                message.as_slice(),
            )
        },
    )
}

fn socketpair_round_trip(size: usize, n: u64) -> Result<Outcome> {
    let (mut parent, mut child_end) = UnixStream::pair()?;
    let message = vec![7u8; size];
    let mut reply = vec![0u8; size];
    ping_pong(
        n,
        |count| {
            let mut buf = vec![0u8; size];
            for _ in 0..count {
                child_end.read_exact(&mut buf)?;
                child_end.write_all(&buf)?;
            }
            Ok(())
        },
        || {
            parent.write_all(&message)?;
            parent.read_exact(&mut reply)?;
            check("echoed message", &reply, &message)
        },
    )
}

fn threads_round_trip(size: usize, n: u64) -> Result<Outcome> {
    let (to_echo, echo_in) = crossbeam_channel::bounded::<Vec<u8>>(1);
    let (echo_out, from_echo) = crossbeam_channel::bounded::<Vec<u8>>(1);
    let total = warmup(n) + n;
    std::thread::scope(move |scope| {
        scope.spawn(move || {
            for message in echo_in.iter().take(total as usize) {
                if echo_out.send(message).is_err() {
                    break;
                }
            }
        });
        let mut message = vec![7u8; size];
        let mut round_trip = || -> Result<()> {
            to_echo.send(std::mem::take(&mut message))?;
            message = from_echo.recv()?;
            check("echoed length", message.len(), size)
        };
        for _ in 0..warmup(n) {
            round_trip()?;
        }
        let sample = Sample::time(n, || (0..n).try_for_each(|_| round_trip()))?;
        Ok(Outcome::Sample(sample))
    })
}

/// Forks `sink` (which must receive `n` messages of [`BIG`] bytes and answer with the
/// byte count), then times sending them with `send` until `ack` returns that count.
fn one_way(
    n: u64,
    sink: impl FnOnce() -> Result<()>,
    mut send: impl FnMut() -> Result<()>,
    ack: impl FnOnce() -> Result<u64>,
) -> Result<Outcome> {
    let child = child::fork(sink)?;
    let bytes = n * BIG as u64;
    let sample = Sample::time(bytes, || {
        (0..n).try_for_each(|_| send())?;
        check("bytes received", ack()?, bytes)
    })?;
    child.wait()?;
    Ok(Outcome::Sample(sample))
}

fn pipe_throughput(n: u64) -> Result<Outcome> {
    let (data_in, data_out) = std::io::pipe()?;
    floor::grow_pipe(&data_out, BIG)?;
    let (ack_in, ack_out) = std::io::pipe()?;
    stream_throughput(n, data_in, data_out, ack_in, ack_out)
}

fn socketpair_throughput(n: u64) -> Result<Outcome> {
    let (parent, child_end) = UnixStream::pair()?;
    floor::grow_socket(&parent, 4 * BIG)?;
    floor::grow_socket(&child_end, 4 * BIG)?;
    let (ack_in, ack_out) = (parent.try_clone()?, child_end.try_clone()?);
    stream_throughput(n, child_end, parent, ack_in, ack_out)
}

/// `n` messages of [`BIG`] bytes from `data_out` to a child reading `data_in`, which then
/// answers the byte count on `ack_out`.
fn stream_throughput(
    n: u64,
    mut data_in: impl Read,
    mut data_out: impl Write,
    mut ack_in: impl Read,
    mut ack_out: impl Write,
) -> Result<Outcome> {
    let message = vec![7u8; BIG];
    one_way(
        n,
        || {
            let mut buf = vec![0u8; BIG];
            for _ in 0..n {
                data_in.read_exact(&mut buf)?;
            }
            Ok(ack_out.write_all(&(n * BIG as u64).to_le_bytes())?)
        },
        || Ok(data_out.write_all(&message)?),
        || {
            let mut count = [0u8; 8];
            ack_in.read_exact(&mut count)?;
            Ok(u64::from_le_bytes(count))
        },
    )
}

fn ipc_channel_throughput(n: u64) -> Result<Outcome> {
    let (data_out, data_in) = ipc::bytes_channel()?;
    let (ack_out, ack_in) = ipc::channel::<u64>()?;
    let message = vec![7u8; BIG];
    one_way(
        n,
        || {
            let mut bytes = 0;
            for _ in 0..n {
                bytes += data_in.recv()?.len() as u64;
            }
            Ok(ack_out.send(bytes)?)
        },
        || Ok(data_out.send(&message)?),
        || Ok(ack_in.recv()?),
    )
}

/// In-process ceiling: each message is one copy of the buffer, as each pipe write is.
fn threads_throughput(n: u64) -> Result<Outcome> {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(4);
    let message = vec![7u8; BIG];
    std::thread::scope(move |scope| {
        let sink = scope.spawn(move || rx.iter().map(|m| m.len() as u64).sum::<u64>());
        let bytes = n * BIG as u64;
        let sample = Sample::time(bytes, || {
            for _ in 0..n {
                tx.send(message.clone())?;
            }
            drop(tx);
            let received = sink.join().map_err(|_| "sink thread panicked")?;
            check("bytes received", received, bytes)
        })?;
        Ok(Outcome::Sample(sample))
    })
}
