//! Waiting on a process-shared word: the one blocking primitive under every lock, semaphore,
//! condition, event, barrier and queue of this crate.
//!
//! A waiter calls [`wait`] (or [`spin`] then [`sleep`]) while a shared [`AtomicU32`] holds a
//! value it cannot proceed on; whoever changes the word calls [`wake`].
//!
//! # Why a spin first, and why it yields
//!
//! On the machines this crate is tuned for (see DESIGN.md, "Performance"), waking a process
//! that sleeps in `futex(2)` on the other CPU costs about 40 us, whatever the mechanism.
//! Most hand-offs between two processes happen much sooner than that, so [`spin`] first
//! polls the word for up to [`SPIN_BUDGET`] (about 50 us): plain loads for an adaptive
//! while (long when the other side evidently runs on another CPU, short when it does not),
//! then a few dozen loads between [`std::thread::yield_now`] calls (`sched_yield(2)`). Yielding is what keeps the spin
//! cheap when both processes share one CPU: the process that will change the word gets the
//! CPU at once instead of waiting for this one's time slice to run out. There is no
//! `spin_loop` (`pause`) hint: in a virtual machine a run of them makes the hypervisor
//! deschedule the virtual CPU (pause-loop exiting), which measured 35 us a round trip with
//! both processes on one CPU instead of 2.5 us. Only when the budget is spent does the
//! waiter sleep in the kernel.
//!
//! # Who counts the sleepers
//!
//! [`wake`] always makes a `futex(2)` call (about 0.3 us with nobody asleep). Keeping that
//! call off the fast path is the *caller's* job, because only the caller's protocol knows
//! how to announce a sleeper atomically with its own state: a lock sets a "contended" bit
//! in its word before [`sleep`], a semaphore or queue keeps a waiter count beside its word.
//! The rule every caller follows:
//!
//! 1. [`spin`] without announcing anything (a hand-off that arrives during the spin costs the
//!    waker no syscall);
//! 2. announce (set the bit / increment the count) with the same atomic operation that
//!    re-checks the condition;
//! 3. [`sleep`] on the word with the value it had after the announcement, in a loop that
//!    re-checks the condition, since sleeps return spuriously;
//! 4. the waker changes the word first, then calls [`wake`] only if a sleeper was announced.
//!
//! [`wait`] is steps 1 and 3 for callers whose word changes on every event anyway (an event
//! flag, a generation counter) and whose wakers therefore always call [`wake`].
//!
//! # Deadlines
//!
//! Deadlines are absolute ([`Deadline`]) so a loop that sleeps several times keeps one
//! limit.
//!
//! Under `--cfg loom` the word is loom's model atomic and waiting is a model yield, so the
//! protocols above can be checked by `loom` with threads standing in for processes.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::loom::{AtomicU32, Ordering};

/// How long [`spin`] polls before giving up, about what a cross-CPU futex wake costs here.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const SPIN_BUDGET: Duration = Duration::from_micros(50);

/// Plain loads of the word between two yields (some tens of nanoseconds; no `pause`, see
/// the module docs).
#[cfg(not(loom))]
const LOOKS_PER_YIELD: u32 = 64;

/// The bounds of the adaptive polling phase before the first yield, in loads.
#[cfg(not(loom))]
const POLL_MIN: u32 = 64;
#[cfg(not(loom))]
const POLL_MAX: u32 = 1 << 14;

/// How many loads [`spin`] makes before its first yield, learnt per process: it doubles
/// when a change arrived during the polling (the other side runs on another CPU, so
/// polling longer catches the hand-off without a `sched_yield` round), and halves when the
/// change only came after yielding (both share a CPU: polling only delays the other side).
#[cfg(not(loom))]
static POLL_BEFORE_YIELD: std::sync::atomic::AtomicU32 =
    std::sync::atomic::AtomicU32::new(POLL_MIN);

/// What a [`sleep`] or [`wait`] ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parked {
    /// The word may have changed (or the sleep ended spuriously): re-check the condition.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// Polls `word` while it equals `expected`, for at most [`SPIN_BUDGET`] and never past
/// `deadline`. Returns `true` as soon as the word differs, `false` when the budget or the
/// deadline ran out first. Makes no system call other than `sched_yield`.
#[cfg(not(loom))]
pub(crate) fn spin(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
    let poll = POLL_BEFORE_YIELD.load(Ordering::Relaxed);
    for _ in 0..poll {
        if word.load(Ordering::Acquire) != expected {
            POLL_BEFORE_YIELD.store((poll * 2).min(POLL_MAX), Ordering::Relaxed);
            return true;
        }
    }
    POLL_BEFORE_YIELD.store((poll / 2).max(POLL_MIN), Ordering::Relaxed);
    let start = Instant::now();
    let limit = deadline
        .instant()
        .map_or(start + SPIN_BUDGET, |d| d.min(start + SPIN_BUDGET));
    loop {
        for _ in 0..LOOKS_PER_YIELD {
            if word.load(Ordering::Acquire) != expected {
                return true;
            }
        }
        if Instant::now() >= limit {
            return false;
        }
        std::thread::yield_now();
    }
}

/// [`spin`] for conditions that are not a shared word (a descriptor becoming readable, a
/// child's exit): calls `ready` between yields for at most [`SPIN_BUDGET`], never past
/// `deadline`, and returns whether it said `true`. Each call of `ready` may cost a
/// system call, so there is no plain-load phase.
pub(crate) fn spin_until(ready: impl FnMut() -> bool, deadline: Deadline) -> bool {
    spin_within(ready, SPIN_BUDGET, deadline)
}

/// [`spin_until`] with a budget of `budget` instead of [`SPIN_BUDGET`] (an async waiter's
/// shorter spin).
pub(crate) fn spin_within(
    mut ready: impl FnMut() -> bool,
    budget: Duration,
    deadline: Deadline,
) -> bool {
    let start = Instant::now();
    let limit = deadline
        .instant()
        .map_or(start + budget, |d| d.min(start + budget));
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= limit {
            return false;
        }
        std::thread::yield_now();
    }
}

/// Under loom a spin is one look, with no yield (a model yield would let the other threads
/// run first, so the model would never sleep while the word is still held): loom explores
/// the interleavings a real spin meets without multiplying them by the spin's length.
#[cfg(loom)]
pub(crate) fn spin(word: &AtomicU32, expected: u32, _deadline: Deadline) -> bool {
    word.load(Ordering::Acquire) != expected
}

/// Sleeps in the kernel while `word` equals `expected`, until woken by [`wake`], a signal,
/// or `deadline`. Makes no spin. May return [`Parked::Woken`] spuriously: callers loop.
#[cfg(not(loom))]
pub(crate) fn sleep(word: &AtomicU32, expected: u32, deadline: Deadline) -> Parked {
    let timeout = match deadline.remaining() {
        Some(Duration::ZERO) => return Parked::TimedOut,
        left => left,
    };
    futex_wait(word, expected, timeout)
}

/// [`spin`], then [`sleep`] once: the whole wait for callers whose wakers always [`wake`].
/// Returns [`Parked::Woken`] when the word differs (or may differ) from `expected`.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> Parked {
    if spin(word, expected, deadline) {
        return Parked::Woken;
    }
    sleep(word, expected, deadline)
}

/// Orders an announcement against the check that follows it (the "store then load"
/// pairs of sleeper counts). The `SeqCst` read-modify-write and `SeqCst` load the callers
/// use already give that order, so this is nothing in production; under loom, which models
/// `SeqCst` accesses as merely acquire/release, it is the `SeqCst` fence that restores the
/// real semantics in the model.
#[inline]
pub(crate) fn announce_fence() {
    #[cfg(loom)]
    crate::loom::fence(Ordering::SeqCst);
}

/// Wakes at most `n` processes (or threads) sleeping on `word`; `u32::MAX` wakes them all.
/// Returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    futex_wake(word, n)
}

#[cfg(not(loom))]
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Parked {
    match crate::sys::futex::wait(word, expected, timeout) {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Parked::TimedOut,
        // Any other error (there is none for a valid, aligned word) is treated as a spurious
        // wake-up: the caller re-checks its condition and its deadline.
        _ => Parked::Woken,
    }
}

#[cfg(not(loom))]
fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    crate::sys::futex::wake(word, n)
}

/// Under loom a sleep blocks until a [`wake`] on the same word, and deadlines never expire:
/// a wake-up the protocol forgets then leaves the model with every thread blocked, which
/// loom reports as a deadlock, instead of being papered over by a timeout.
#[cfg(loom)]
pub(crate) fn sleep(word: &AtomicU32, expected: u32, _deadline: Deadline) -> Parked {
    model::wait(word, expected)
}

#[cfg(loom)]
fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    model::wake(word, n)
}

/// A futex for loom models: a table of sleepers behind a model mutex. The word is checked
/// under the table's lock and wakers take that lock after changing the word, which is the
/// atomicity `futex(2)` gives.
#[cfg(loom)]
mod model {
    use super::{AtomicU32, Ordering, Parked};
    use loom::sync::{Condvar, Mutex};

    struct Sleeper {
        word: usize,
        id: usize,
        woken: bool,
    }

    #[derive(Default)]
    struct Table {
        sleepers: Vec<Sleeper>,
        next_id: usize,
    }

    loom::lazy_static! {
        static ref TABLE: Mutex<Table> = Mutex::new(Table::default());
        static ref CHANGED: Condvar = Condvar::new();
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32) -> Parked {
        let mut table = TABLE.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return Parked::Woken;
        }
        let id = table.next_id;
        table.next_id += 1;
        let addr = word as *const AtomicU32 as usize;
        table.sleepers.push(Sleeper {
            word: addr,
            id,
            woken: false,
        });
        loop {
            table = CHANGED.wait(table).unwrap();
            if let Some(i) = table.sleepers.iter().position(|s| s.id == id && s.woken) {
                table.sleepers.remove(i);
                return Parked::Woken;
            }
        }
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) -> usize {
        let mut table = TABLE.lock().unwrap();
        let addr = word as *const AtomicU32 as usize;
        let mut woken = 0;
        for s in table
            .sleepers
            .iter_mut()
            .filter(|s| s.word == addr && !s.woken)
        {
            if woken == n as usize {
                break;
            }
            s.woken = true;
            woken += 1;
        }
        CHANGED.notify_all();
        woken
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn spin_returns_at_once_when_the_word_differs() {
        let w = AtomicU32::new(1);
        assert!(spin(&w, 0, Deadline::NEVER));
    }

    #[test]
    fn spin_gives_up_after_its_budget() {
        let w = AtomicU32::new(0);
        let t = Instant::now();
        assert!(!spin(&w, 0, Deadline::NEVER));
        assert!(t.elapsed() >= SPIN_BUDGET);
    }

    #[test]
    fn sleep_with_a_past_deadline_times_out_without_sleeping() {
        let w = AtomicU32::new(0);
        assert_eq!(sleep(&w, 0, Deadline::now()), Parked::TimedOut);
    }

    #[test]
    fn wait_times_out_after_at_least_the_deadline() {
        let w = AtomicU32::new(0);
        let t = Instant::now();
        let deadline = Deadline::after(Duration::from_millis(30));
        loop {
            if wait(&w, 0, deadline) == Parked::TimedOut {
                break;
            }
        }
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn wake_ends_a_sleep() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                sleep(&w2, 0, Deadline::NEVER);
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        w.store(1, Ordering::Release);
        wake(&w, u32::MAX);
        t.join().unwrap();
    }
}
