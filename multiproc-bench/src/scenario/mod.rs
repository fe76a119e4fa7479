//! Every scenario, one module per family. Each family module holds one `multiproc_*`
//! function per scenario next to the peers that do the same work. What several families share lives here: system names,
//! the forked ping-pong and its futex floor, and the hand-off round-trip scenario.

use serde_json::json;

use crate::child;
use crate::floor::SharedWord;
use crate::harness::{Counts, Ctx, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

mod listener;
mod lock;
mod manager;
mod pipe;
mod pool;
mod process;
mod queue;
#[cfg(feature = "redis")]
pub(crate) mod redis;

/// All scenarios, in table order.
pub(crate) fn all() -> Vec<Scenario> {
    [
        pipe::scenarios(),
        queue::scenarios(),
        lock::scenarios(),
        pool::scenarios(),
        process::scenarios(),
        manager::scenarios(),
        listener::scenarios(),
        #[cfg(feature = "redis")]
        redis::scenarios(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The process counts of the scaling rows: 1, 2, 4, ... up to the CPUs present, and one
/// or two more doublings past them, up to twice the CPUs (oversubscribed).
fn scaling_counts() -> Vec<u64> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    std::iter::successors(Some(1u64), |n| Some(n * 2))
        .take_while(|&n| n <= 2 * cpus)
        .collect()
}

/// Size of a message in the 1 MiB scenarios.
const BIG: usize = 1 << 20;

/// System names shared by several families.
const PYTHON: &str = "python multiprocessing";
const IPC_CHANNEL: &str = "ipc-channel";
const PROCSPAWN: &str = "procspawn";
const THREADS: &str = "crossbeam-channel (threads)";
const FUTEX_FLOOR: &str = "floor: futex wake (no data)";

/// The Python peer of a scenario: `request` builds the driver request for `n` operations.
fn python(request: impl Fn(u64) -> serde_json::Value + 'static) -> System {
    python_named(PYTHON, request)
}

fn python_named(
    name: &'static str,
    request: impl Fn(u64) -> serde_json::Value + 'static,
) -> System {
    System::new(name, move |ctx: &mut Ctx, n| ctx.python(request(n)))
}

/// The id and title suffixes of a scenario run with both processes on one CPU.
fn pinned_suffix(pinned: bool) -> (&'static str, &'static str) {
    if pinned {
        ("_pinned", ", both on CPU 0")
    } else {
        ("", "")
    }
}

/// A round-trip scenario of a primitive used as a hand-off between two processes: `multiproc`
/// and the Python driver's scenario of the same `id`, beside the futex wake that any
/// blocking hand-off costs at least; `pinned` puts both processes on one CPU.
fn hand_off(
    id: &'static str,
    title: &str,
    pinned: bool,
    multiproc: fn(u64) -> Result<Outcome>,
) -> Scenario {
    let (id_suffix, title_suffix) = pinned_suffix(pinned);
    Scenario::new(
        format!("{id}{id_suffix}"),
        format!("{title}{title_suffix}"),
        Unit::time("us/RT", 1e6),
        Counts::new(20, 5_000, 50_000),
        vec![
            System::new(MULTIPROC, move |_, n| multiproc(n)),
            python(move |n| json!({"scenario": id, "n": n, "warmup": warmup(n)})),
            System::new(FUTEX_FLOOR, |_, n| futex_round_trip(n)),
        ],
    )
    .pinned(pinned)
}

/// Untimed operations before the timed ones, so that caches, page tables and the
/// scheduler's view of both processes are warm.
fn warmup(n: u64) -> u64 {
    (n / 10).max(1)
}

/// An error unless `got == want`: every scenario checks that the work really happened.
fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}").into())
    }
}

/// Forks `echo` (which must answer `warmup(n) + n` round trips), does the warm-up, then
/// times `n` calls of `round_trip`.
fn ping_pong(
    n: u64,
    echo: impl FnOnce(u64) -> Result<()>,
    mut round_trip: impl FnMut() -> Result<()>,
) -> Result<Outcome> {
    let warm = warmup(n);
    let child = child::fork(move || echo(warm + n))?;
    for _ in 0..warm {
        round_trip()?;
    }
    let sample = Sample::time(n, || (0..n).try_for_each(|_| round_trip()))?;
    child.wait()?;
    Ok(Outcome::Sample(sample))
}

/// The floor of any blocking hand-off: one shared word, each side waits on a futex for
/// its turn. Turns are numbered: the parent's round trip `i` moves the word from `2i` to
/// `2i + 1`, the child answers with `2i + 2`.
fn futex_round_trip(n: u64) -> Result<Outcome> {
    let word = SharedWord::new()?;
    let mut turn = 0u32;
    ping_pong(
        n,
        |count| {
            for i in 0..u32::try_from(count)? {
                word.wait_while(2 * i);
                word.set_and_wake(2 * i + 2);
            }
            Ok(())
        },
        || {
            word.set_and_wake(turn + 1);
            word.wait_while(turn + 1);
            turn += 2;
            check(
                "turn",
                word.get().load(std::sync::atomic::Ordering::Acquire),
                turn,
            )
        },
    )
}
