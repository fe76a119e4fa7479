//! Queues: small messages from 1 or 4 producers to one consumer, N producers to N
//! consumers for N = 1, 2, 4, ... (the scaling rows), 1 MiB messages, and a put/get
//! ping-pong through two queues.

use ipc_channel::ipc;
use serde_bytes::ByteBuf;
use serde_json::json;

use multiproc::shm::RawValue;
use multiproc::Queue;

use super::{
    check, hand_off, ping_pong, python, scaling_counts, warmup, BIG, IPC_CHANNEL, THREADS,
};
use crate::child::{self, Gate};
use crate::harness::{Counts, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

pub(super) fn scenarios() -> Vec<Scenario> {
    // A put into one queue, answered by an echoing child through another.
    let round_trip = |pinned| {
        hand_off(
            "queue_rt",
            "queue put/get round trip",
            pinned,
            multiproc_round_trip,
        )
        .with(System::new("multiproc (tokio task, async)", |_, n| {
            multiproc_async_round_trip(n)
        }))
        .with(System::new("tokio mpsc between tasks", |_, n| {
            tokio_mpsc_round_trip(n)
        }))
    };
    // A tokio task consuming what a worker process puts, beside tokio's own mpsc between
    // two tasks of one process (the in-process ceiling).
    let small_async = small(1)
        .with(System::new(
            "multiproc (tokio task consumer, async)",
            |_, n| multiproc_async_small(n),
        ))
        .with(System::new("tokio mpsc between tasks", |_, n| {
            tokio_mpsc_small(n)
        }));
    let mut all = vec![small_async, small(4)];
    all.extend(scaling_counts().into_iter().map(scale));
    all.extend([big(), round_trip(false), round_trip(true)]);
    all
}

/// `workers` producers and `workers` consumers of small messages at once: how throughput
/// holds up as processes are added, up to the CPUs and beyond (see `scaling_counts`).
fn scale(workers: u64) -> Scenario {
    Scenario::new(
        format!("queue_scale_{workers}x{workers}"),
        format!("queue {workers}:{workers} small messages (N producers x N consumers)"),
        Unit::rate("M msg/s", 1e6),
        Counts::new(100 * workers, 50_000, 200_000),
        vec![
            System::new(MULTIPROC, move |_, n| multiproc_scale(workers, n)),
            python(move |n| json!({"scenario": "queue_scale", "n": n, "workers": workers})),
            System::new(IPC_CHANNEL, move |_, n| ipc_channel_scale(workers, n)),
            System::new(THREADS, move |_, n| threads_scale(workers, n)),
        ],
    )
}

fn small(producers: u64) -> Scenario {
    Scenario::new(
        format!("queue_{producers}to1"),
        format!("queue {producers}:1 small messages"),
        Unit::rate("M msg/s", 1e6),
        Counts::new(100, 50_000, 200_000),
        vec![
            System::new(MULTIPROC, move |_, n| multiproc_small(producers, n)),
            System::new("multiproc (named queue)", move |_, n| {
                multiproc_named_small(producers, n)
            }),
            python(move |n| json!({"scenario": "queue_small", "n": n, "producers": producers})),
            System::new(IPC_CHANNEL, move |_, n| ipc_channel_small(producers, n)),
            System::new(THREADS, move |_, n| threads_small(producers, n)),
        ],
    )
}

fn big() -> Scenario {
    Scenario::new(
        "queue_1mib",
        "queue 1 MiB messages",
        Unit::GB_PER_S,
        Counts::new(4, 100, 500),
        vec![
            System::new(MULTIPROC, |_, n| multiproc_big(n)),
            python(|n| json!({"scenario": "queue_big", "n": n, "size": BIG})),
            System::new(IPC_CHANNEL, |_, n| ipc_channel_big(n)),
            System::new(THREADS, |_, n| threads_big(n)),
        ],
    )
}

fn multiproc_small(producers: u64, n: u64) -> Result<Outcome> {
    let q: Queue<u64> = Queue::new()?;
    fan_in(producers, n, |i| Ok(q.put(i)?), || Ok(q.get()?))
}

/// The same fan-in through a queue created under a name (`Queue::create`): the same ring in
/// a named `/dev/shm` file instead of a memfd, which should cost nothing extra.
fn multiproc_named_small(producers: u64, n: u64) -> Result<Outcome> {
    let name = format!(
        "multiproc-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos()
    );
    let q: Queue<u64> = Queue::create(&name, None)?;
    let outcome = fan_in(producers, n, |i| Ok(q.put(i)?), || Ok(q.get()?));
    Queue::<u64>::unlink(&name)?;
    outcome
}

/// The bytes path, as ipc-channel's `bytes_channel`: a slice in, a fresh `Vec` out; one
/// copy each way.
fn multiproc_scale(workers: u64, n: u64) -> Result<Outcome> {
    let q: Queue<Option<u64>> = Queue::new()?;
    fan_out_in(workers, n, |item| Ok(q.put(item)?), || Ok(q.get()?))
}

fn multiproc_big(n: u64) -> Result<Outcome> {
    let q: Queue<ByteBuf> = Queue::new()?;
    let message = vec![7u8; BIG];
    stream_big(
        n,
        || Ok(q.put_bytes(&message)?),
        || Ok(q.get_bytes()?.len()),
    )
}

fn multiproc_round_trip(n: u64) -> Result<Outcome> {
    let (ping, pong): (Queue<u64>, Queue<u64>) = (Queue::new()?, Queue::new()?);
    let mut sent = 0;
    ping_pong(
        n,
        |count| {
            for _ in 0..count {
                pong.put(ping.get()?)?;
            }
            Ok(())
        },
        || {
            ping.put(sent)?;
            check("echoed message", pong.get()?, sent)?;
            sent += 1;
            Ok(())
        },
    )
}

/// A current-thread tokio runtime (no threads of its own, so children may still be forked).
fn current_thread_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The round trip awaited by a tokio task (`put_async`, `get_async`) against the same
/// sync echoing child as the sync row; the warm-up and the timed round trips each run in
/// one `block_on`.
fn multiproc_async_round_trip(n: u64) -> Result<Outcome> {
    let (ping, pong): (Queue<u64>, Queue<u64>) = (Queue::new()?, Queue::new()?);
    let warm = warmup(n);
    let child = child::fork(|| {
        for _ in 0..warm + n {
            pong.put(ping.get()?)?;
        }
        Ok(())
    })?;
    let rt = current_thread_runtime()?;
    let round_trips = |from: u64, count: u64| -> Result<()> {
        rt.block_on(async {
            for sent in from..from + count {
                ping.put_async(sent).await?;
                check("echoed message", pong.get_async().await?, sent)?;
            }
            Ok(())
        })
    };
    round_trips(0, warm)?;
    let sample = Sample::time(n, || round_trips(warm, n))?;
    child.wait()?;
    Ok(Outcome::Sample(sample))
}

/// The in-process ceiling: a round trip between two tokio tasks over tokio's mpsc.
fn tokio_mpsc_round_trip(n: u64) -> Result<Outcome> {
    let rt = current_thread_runtime()?;
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(16);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(16);
    rt.spawn(async move {
        while let Some(v) = ping_rx.recv().await {
            if pong_tx.send(v).await.is_err() {
                break;
            }
        }
    });
    let sample = Sample::time(n, || {
        rt.block_on(async {
            for sent in 0..n {
                ping_tx.send(sent).await.map_err(|_| "echo task gone")?;
                let got = pong_rx.recv().await.ok_or("echo task gone")?;
                check("echoed message", got, sent)?;
            }
            Ok(())
        })
    })?;
    Ok(Outcome::Sample(sample))
}

/// Small messages from one worker process to a tokio task that awaits each with
/// `get_async` (the 1:1 row's producer, sync).
fn multiproc_async_small(n: u64) -> Result<Outcome> {
    let q: Queue<u64> = Queue::new()?;
    let mut gate = Gate::new()?;
    let producer = child::fork(|| {
        gate.wait()?;
        (0..n).try_for_each(|i| Ok(q.put(i)?))
    })?;
    let rt = current_thread_runtime()?;
    let sample = Sample::time(n, || {
        gate.open(1)?;
        let sum = rt.block_on(async {
            let mut sum = 0;
            for _ in 0..n {
                sum += q.get_async().await?;
            }
            Ok::<u64, crate::harness::Error>(sum)
        })?;
        check("sum of received messages", sum, expected_sum(1, n))
    })?;
    producer.wait()?;
    Ok(Outcome::Sample(sample))
}

/// The in-process ceiling of the async 1:1 row: one tokio task sends `n` messages to
/// another over tokio's unbounded mpsc.
fn tokio_mpsc_small(n: u64) -> Result<Outcome> {
    let rt = current_thread_runtime()?;
    let sample = Sample::time(n, || {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        rt.block_on(async move {
            let producer = tokio::spawn(async move {
                for i in 0..n {
                    if tx.send(i).is_err() {
                        break;
                    }
                }
            });
            let mut sum = 0;
            for _ in 0..n {
                sum += rx.recv().await.ok_or("producer task gone")?;
            }
            producer.await?;
            check("sum of received messages", sum, expected_sum(1, n))
        })
    })?;
    Ok(Outcome::Sample(sample))
}

/// The sum a consumer must see from `producers` producers that each send `0..share`.
fn expected_sum(producers: u64, share: u64) -> u64 {
    producers * share * share.saturating_sub(1) / 2
}

/// Every consumer child reads the one receiving socket (forked copies of its descriptor):
/// each small message is one datagram, taken whole by one reader.
fn ipc_channel_scale(workers: u64, n: u64) -> Result<Outcome> {
    let (tx, rx) = ipc::channel::<Option<u64>>()?;
    fan_out_in(workers, n, |item| Ok(tx.send(item)?), || Ok(rx.recv()?))
}

/// Forks `workers` producers that each `send` the numbers `0..n / workers` and then one
/// `None`, and `workers` consumers that each `recv` until their first `None` (so each of
/// them stops at exactly one of the `workers` ends, after every number of that producer)
/// and add what they took to a shared total. Times from opening the gate until every
/// consumer has exited, then checks the total.
fn fan_out_in(
    workers: u64,
    n: u64,
    send: impl Fn(Option<u64>) -> Result<()>,
    recv: impl Fn() -> Result<Option<u64>>,
) -> Result<Outcome> {
    let share = n / workers;
    let total = RawValue::new(0u64)?;
    let mut gate = Gate::new()?;
    let producers = (0..workers)
        .map(|_| {
            child::fork(|| {
                gate.wait()?;
                (0..share).try_for_each(|i| send(Some(i)))?;
                send(None)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let consumers = (0..workers)
        .map(|_| {
            child::fork(|| {
                gate.wait()?;
                let mut mine = 0;
                while let Some(item) = recv()? {
                    mine += item;
                }
                total.fetch_add(mine);
                Ok(())
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let sample = Sample::time(share * workers, || {
        gate.open(producers.len() + consumers.len())?;
        child::wait_all(consumers)
    })?;
    child::wait_all(producers)?;
    check(
        "sum of received messages",
        total.load(),
        expected_sum(workers, share),
    )?;
    Ok(Outcome::Sample(sample))
}

fn threads_scale(workers: u64, n: u64) -> Result<Outcome> {
    let share = n / workers;
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    std::thread::scope(move |scope| {
        let sample = Sample::time(share * workers, || {
            for _ in 0..workers {
                let tx = tx.clone();
                scope.spawn(move || (0..share).try_for_each(|i| tx.send(i)));
            }
            drop(tx);
            let consumers: Vec<_> = (0..workers)
                .map(|_| {
                    let rx = rx.clone();
                    scope.spawn(move || rx.iter().sum::<u64>())
                })
                .collect();
            let sum = consumers
                .into_iter()
                .map(|c| c.join().map_err(|_| "consumer panicked"))
                .sum::<Result<u64, _>>()?;
            check(
                "sum of received messages",
                sum,
                expected_sum(workers, share),
            )
        })?;
        Ok(Outcome::Sample(sample))
    })
}

fn ipc_channel_small(producers: u64, n: u64) -> Result<Outcome> {
    let (tx, rx) = ipc::channel::<u64>()?;
    fan_in(producers, n, |i| Ok(tx.send(i)?), || Ok(rx.recv()?))
}

/// Forks `producers` children that each `send` the numbers `0..n / producers` once the
/// gate opens, then times receiving all of them with `recv` and checks their sum.
fn fan_in(
    producers: u64,
    n: u64,
    send: impl Fn(u64) -> Result<()>,
    mut recv: impl FnMut() -> Result<u64>,
) -> Result<Outcome> {
    let share = n / producers;
    let mut gate = Gate::new()?;
    let children = (0..producers)
        .map(|_| {
            child::fork(|| {
                gate.wait()?;
                (0..share).try_for_each(&send)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let sample = Sample::time(share * producers, || {
        gate.open(children.len())?;
        let mut sum = 0;
        for _ in 0..share * producers {
            sum += recv()?;
        }
        check(
            "sum of received messages",
            sum,
            expected_sum(producers, share),
        )
    })?;
    child::wait_all(children)?;
    Ok(Outcome::Sample(sample))
}

fn threads_small(producers: u64, n: u64) -> Result<Outcome> {
    let share = n / producers;
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    std::thread::scope(move |scope| {
        let sample = Sample::time(share * producers, || {
            for _ in 0..producers {
                let tx = tx.clone();
                scope.spawn(move || (0..share).try_for_each(|i| tx.send(i)));
            }
            drop(tx);
            let sum: u64 = rx.iter().sum();
            check(
                "sum of received messages",
                sum,
                expected_sum(producers, share),
            )
        })?;
        Ok(Outcome::Sample(sample))
    })
}

fn ipc_channel_big(n: u64) -> Result<Outcome> {
    let (tx, rx) = ipc::bytes_channel()?;
    let message = vec![7u8; BIG];
    stream_big(n, || Ok(tx.send(&message)?), || Ok(rx.recv()?.len()))
}

/// Forks a child that calls `send` (one message of [`BIG`] bytes) `n` times once the gate
/// opens, then times receiving them with `recv` (which returns a message's length) and
/// checks the byte count.
fn stream_big(
    n: u64,
    mut send: impl FnMut() -> Result<()>,
    mut recv: impl FnMut() -> Result<usize>,
) -> Result<Outcome> {
    let mut gate = Gate::new()?;
    let producer = child::fork(|| {
        gate.wait()?;
        (0..n).try_for_each(|_| send())
    })?;
    let bytes = n * BIG as u64;
    let sample = Sample::time(bytes, || {
        gate.open(1)?;
        let mut received = 0;
        for _ in 0..n {
            received += recv()? as u64;
        }
        check("bytes received", received, bytes)
    })?;
    producer.wait()?;
    Ok(Outcome::Sample(sample))
}

/// In-process ceiling: each message is one copy of the buffer.
fn threads_big(n: u64) -> Result<Outcome> {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(16);
    let bytes = n * BIG as u64;
    std::thread::scope(move |scope| {
        let sample = Sample::time(bytes, || {
            scope.spawn(move || {
                let message = vec![7u8; BIG];
                (0..n).try_for_each(|_| tx.send(message.clone()))
            });
            let received: u64 = rx.iter().map(|m| m.len() as u64).sum();
            check("bytes received", received, bytes)
        })?;
        Ok(Outcome::Sample(sample))
    })
}
