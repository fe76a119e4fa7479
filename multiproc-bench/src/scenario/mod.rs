//! Every scenario, one module per family. Each family module holds one `multiproc_*`
//! function per scenario (returning `Outcome::NotYet` until the component lands) next to
//! the peers that do the same work.

use crate::harness::{Ctx, Outcome, Result, Scenario, System};

mod lock;
mod manager;
mod pipe;
mod pool;
mod process;
mod queue;

/// All scenarios, in table order.
pub(crate) fn all() -> Vec<Scenario> {
    [
        pipe::scenarios(),
        queue::scenarios(),
        lock::scenarios(),
        pool::scenarios(),
        process::scenarios(),
        manager::scenarios(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Size of a message in the 1 MiB scenarios.
const BIG: usize = 1 << 20;

/// System names shared by several families.
const PYTHON: &str = "python multiprocessing";
const IPC_CHANNEL: &str = "ipc-channel";
const PROCSPAWN: &str = "procspawn";
const THREADS: &str = "crossbeam-channel (threads)";

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

/// For the multiproc side of a component that has not landed yet.
fn not_yet() -> Result<Outcome> {
    Ok(Outcome::NotYet)
}
