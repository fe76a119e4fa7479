//! Test-only fault injection (cargo feature `fault-injection`, which the crate's own tests
//! turn on): a process arms one point inside the queue protocol and `SIGKILL`s or
//! `SIGSTOP`s itself when it gets there, so a test can kill or freeze a producer or consumer
//! at an exact instant rather than hoping a random kill lands between two stores. Without the feature none of this exists
//! and the points compile to nothing.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// An instant inside a queue operation where a process can be made to die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Point {
    /// A consumer that has counted the message taken (`gets`) but not yet released its
    /// bytes (`head`), holding the consumers' lock.
    ConsumerBetweenStores = 1,
    /// A producer that has committed a message but not yet advanced `tail` and `puts`,
    /// holding the producers' lock.
    ProducerAfterCommit = 2,
}

static ARMED: AtomicU8 = AtomicU8::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

/// Makes this process `SIGKILL` itself the next time any of its threads reaches `point`.
/// Call it in a child, before its queue operation.
pub fn kill_at(point: Point) {
    STOP.store(false, Ordering::SeqCst);
    ARMED.store(point as u8, Ordering::SeqCst);
}

/// Makes this process `SIGSTOP` itself the next time one of its threads reaches `point`
/// (once: the point is disarmed, so after `SIGCONT` it goes on).
pub fn stop_at(point: Point) {
    STOP.store(true, Ordering::SeqCst);
    ARMED.store(point as u8, Ordering::SeqCst);
}

/// Called by the protocol at `point`: dies or stops here if this process armed it.
pub(crate) fn reached(point: Point) {
    if ARMED.load(Ordering::Relaxed) != point as u8 {
        return;
    }
    let me = std::process::id() as i32;
    if STOP.load(Ordering::SeqCst) {
        ARMED.store(0, Ordering::SeqCst);
        let _ = crate::sys::signal::kill(me, libc::SIGSTOP);
    } else {
        let _ = crate::sys::signal::kill(me, libc::SIGKILL);
        // SIGKILL cannot be caught; should the kill have failed, do not go on as if alive.
        std::process::abort();
    }
}
