//! Locks and shared values: uncontended acquire+release, 2 processes contending, a
//! hand-off ping-pong through two locks, `Value` increments under its lock and with
//! `fetch_add`, and the scaling rows: N processes incrementing one `Value` under its lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use multiproc::shm::RawValue;
use multiproc::{Event, Lock, Process, Value};
use serde_json::json;

use super::{check, hand_off, ping_pong, python, python_named, scaling_counts};
use crate::harness::{Counts, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

/// The in-process ceiling for locks: there is no channel in these scenarios.
const STD_MUTEX: &str = "std Mutex (threads)";
/// The in-process ceiling for lock-free increments.
const STD_ATOMIC: &str = "std AtomicU64 (threads)";

pub(super) fn scenarios() -> Vec<Scenario> {
    let ns = Unit::time("ns/op", 1e9);
    // Two locks used as binary semaphores (any process may release a `Lock`, as in
    // Python): this process releases `ping`, the child takes it and releases `pong`, this
    // process takes `pong`.
    let round_trip = |pinned| {
        hand_off(
            "lock_rt",
            "lock ping-pong round trip (two locks)",
            pinned,
            multiproc_round_trip,
        )
    };
    vec![
        Scenario::new(
            "lock_uncontended",
            "lock acquire+release, uncontended",
            ns,
            Counts::new(1_000, 2_000_000, 10_000_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_lock_uncontended(n)),
                python(|n| json!({"scenario": "lock_uncontended", "n": n})),
                System::new(STD_MUTEX, |_, n| std_mutex_uncontended(n)),
            ],
        ),
        Scenario::new(
            "lock_contended",
            "lock hand-off, 2 processes x n",
            ns,
            Counts::new(100, 50_000, 200_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_lock_contended(n)),
                python(|n| json!({"scenario": "lock_contended", "n": n})),
                System::new(STD_MUTEX, |_, n| std_mutex_two_threads(n)),
            ],
        ),
        round_trip(false),
        round_trip(true),
        Scenario::new(
            "value_increment",
            "Value += 1 under its lock, 2 processes x n",
            ns,
            Counts::new(100, 50_000, 200_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_value_increment(n)),
                python(|n| json!({"scenario": "value_increment", "n": n})),
                System::new(STD_MUTEX, |_, n| std_mutex_two_threads(n)),
            ],
        ),
        // Python has no atomic add: what a Python user writes is the locked increment, so
        // its row is the same measurement as in `value_increment`. More increments than
        // there: waking and joining the two children costs about 0.1 ms, which must stay
        // small beside 2n increments of a few ns each.
        Scenario::new(
            "value_fetch_add",
            "Value fetch_add, 2 processes x n",
            ns,
            Counts::new(100, 500_000, 1_000_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_value_fetch_add(n)),
                python_named(
                    "python multiprocessing (get_lock)",
                    |n| json!({"scenario": "value_increment", "n": n}),
                ),
                System::new(STD_ATOMIC, |_, n| std_atomic_two_threads(n)),
            ],
        ),
    ]
    .into_iter()
    .chain(scaling_counts().into_iter().map(value_scale))
    .collect()
}

/// `processes` processes add 1 to one `Value` under its lock at once: how a contended
/// lock holds up as processes are added, up to the CPUs and beyond.
fn value_scale(processes: u64) -> Scenario {
    Scenario::new(
        format!("value_scale_{processes}"),
        format!("Value += 1 under its lock, N = {processes} processes x n"),
        Unit::time("ns/op", 1e9),
        Counts::new(100, 20_000, 100_000),
        vec![
            System::new(MULTIPROC, move |_, n| {
                multiproc_value_increment_by(processes, n)
            }),
            python(move |n| json!({"scenario": "value_increment", "n": n, "processes": processes})),
            System::new(STD_MUTEX, move |_, n| std_mutex_threads(processes, n)),
        ],
    )
}

fn multiproc_lock_uncontended(n: u64) -> Result<Outcome> {
    let lock = Lock::new()?;
    let mut count = 0u64;
    let sample = Sample::time(n, || {
        for _ in 0..n {
            let _ = std::hint::black_box(&lock).acquire()?;
            count += 1;
            lock.release()?;
        }
        check("count", count, n)
    })?;
    check("locked at the end", lock.is_locked(), false)?;
    Ok(Outcome::Sample(sample))
}

/// Starts `count` children that each run `work` (`n` operations) once the `go` event is
/// set, and times from `go.set()` until all are joined, as Python's `_processes` does; then
/// checks that `total` reads `count * n`.
fn processes(
    count: u64,
    n: u64,
    work: impl Fn() -> Result<(), String> + Clone,
    total: impl FnOnce() -> u64,
) -> Result<Outcome> {
    let go = Event::new()?;
    let children = (0..count)
        .map(|_| {
            let (go, work) = (go.clone(), work.clone());
            Process::new(move || {
                go.wait();
                work()
            })
            .start()
        })
        .collect::<Result<Vec<_>, _>>()
        .inspect_err(|_| go.set())?; // so that a child already started does not wait forever
    let sample = Sample::time(count * n, || {
        go.set();
        for mut child in children {
            child.join()??;
        }
        Ok(())
    })?;
    check("total of all processes", total(), count * n)?;
    Ok(Outcome::Sample(sample))
}

/// Two processes take one lock `n` times each to add 1 to a counter that has no lock of
/// its own (a `RawValue`): a lost update means the lock let both in.
fn multiproc_lock_contended(n: u64) -> Result<Outcome> {
    let lock = Lock::new()?;
    let counter = RawValue::new(0u64)?;
    let shared = counter.clone();
    processes(
        2,
        n,
        move || {
            for _ in 0..n {
                let _held = lock.lock().map_err(|e| e.to_string())?;
                shared.store(shared.load() + 1);
            }
            Ok(())
        },
        || counter.load(),
    )
}

fn multiproc_value_increment(n: u64) -> Result<Outcome> {
    multiproc_value_increment_by(2, n)
}

/// `count` processes each take one `Value`'s lock `n` times to add 1.
fn multiproc_value_increment_by(count: u64, n: u64) -> Result<Outcome> {
    value_race(count, n, |value| {
        *value.lock().map_err(|e| e.to_string())? += 1;
        Ok(())
    })
}

fn multiproc_value_fetch_add(n: u64) -> Result<Outcome> {
    value_race(2, n, |value| {
        value.fetch_add(1);
        Ok(())
    })
}

/// `count` processes each add 1 to one `Value` `n` times with `add`.
fn value_race(count: u64, n: u64, add: fn(&Value<u64>) -> Result<(), String>) -> Result<Outcome> {
    let value = Value::new(0u64)?;
    let shared = value.clone();
    processes(
        count,
        n,
        move || (0..n).try_for_each(|_| add(&shared)),
        || value.load(),
    )
}

/// The child counts the hand-offs in shared memory, so each round trip checks that the
/// child really took its turn.
fn multiproc_round_trip(n: u64) -> Result<Outcome> {
    let (ping, pong) = (Lock::new()?, Lock::new()?);
    let _ = ping.acquire()?;
    let _ = pong.acquire()?;
    let turns = RawValue::new(0u64)?;
    let mut expected = 0;
    ping_pong(
        n,
        |count| {
            for _ in 0..count {
                let _ = ping.acquire()?;
                turns.fetch_add(1);
                pong.release()?;
            }
            Ok(())
        },
        || {
            ping.release()?;
            let _ = pong.acquire()?;
            expected += 1;
            check("hand-offs", turns.load(), expected)
        },
    )
}

fn std_mutex_uncontended(n: u64) -> Result<Outcome> {
    let lock = Mutex::new(0u64);
    let sample = Sample::time(n, || {
        for _ in 0..n {
            *std::hint::black_box(&lock).lock().map_err(|_| "poisoned")? += 1;
        }
        check("count", *lock.lock().map_err(|_| "poisoned")?, n)
    })?;
    Ok(Outcome::Sample(sample))
}

/// Two threads each increment a counter under one mutex `n` times: the ceiling for both
/// the contended lock and the `Value` scenario, which do the same work across processes.
fn std_mutex_two_threads(n: u64) -> Result<Outcome> {
    std_mutex_threads(2, n)
}

/// `count` threads each increment a counter under one mutex `n` times.
fn std_mutex_threads(count: u64, n: u64) -> Result<Outcome> {
    let counter = Mutex::new(0u64);
    let sample = Sample::time(count * n, || {
        std::thread::scope(|scope| {
            for _ in 0..count {
                scope.spawn(|| {
                    for _ in 0..n {
                        if let Ok(mut count) = counter.lock() {
                            *count += 1;
                        }
                    }
                });
            }
        });
        check("count", *counter.lock().map_err(|_| "poisoned")?, count * n)
    })?;
    Ok(Outcome::Sample(sample))
}

/// Two threads each add 1 to one atomic `n` times.
fn std_atomic_two_threads(n: u64) -> Result<Outcome> {
    let counter = AtomicU64::new(0);
    let sample = Sample::time(2 * n, || {
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..n {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        check("count", counter.load(Ordering::Relaxed), 2 * n)
    })?;
    Ok(Outcome::Sample(sample))
}
