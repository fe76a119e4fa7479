//! A two-party hand-off in shared memory: one side posts a message, the other waits for it,
//! then they swap roles. The signalling under the manager's request/response mailbox.
//!
//! Each direction is a [`Turn`]: a sequence word the poster bumps after writing its message
//! (release), and a count of sleepers so that a post with nobody asleep makes no system
//! call (the rule of [`park`]). Since the parties strictly alternate (a request, then its
//! response), one message area serves both directions; [`RawMailbox::len`] says how long
//! the message there is. What the message area holds and who may write it when is the
//! owner's protocol; this file only orders "written" before "seen".

use super::park::{self, Parked};
use crate::deadline::Deadline;
use crate::loom::{AtomicU32, AtomicU64, Ordering};

shared_state! {
    /// One direction of a mailbox.
    pub(crate) struct Turn {
        /// Bumped once per message posted in this direction.
        pub(crate) seq: AtomicU32,
        /// Waiters asleep (or about to sleep) on `seq`.
        pub(crate) sleepers: AtomicU32,
    }

    /// Both directions and the length of the message in flight.
    pub(crate) struct RawMailbox {
        /// Requests: the client posts, the server waits.
        pub(crate) request: Turn,
        /// Responses: the server posts, the client waits.
        pub(crate) response: Turn,
        /// The length of the message last posted (its meaning is the owner's).
        pub(crate) len: AtomicU64,
        /// The CPU the client ran on when it last posted, plus one (0: not known), so the
        /// server can tell when the two share a CPU (see `manager/mailbox.rs`).
        pub(crate) client_cpu: AtomicU32,
    }
}

impl Turn {
    /// The sequence number now: what a later [`wait`](Self::wait) compares against.
    pub(crate) fn current(&self) -> u32 {
        self.seq.load(Ordering::Acquire)
    }

    /// Announces one message: everything written before is seen by the waiter that sees
    /// the new sequence number.
    pub(crate) fn post(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        park::announce_fence();
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            park::wake(&self.seq, u32::MAX);
        }
    }

    /// Waits until a message after `seen` is posted, or `deadline`. Returns the new
    /// sequence number, or `None` when the deadline passed first.
    pub(crate) fn wait(&self, seen: u32, deadline: Deadline) -> Option<u32> {
        let posted = |now: u32| (now != seen).then_some(now);
        if let Some(now) = posted(self.current()) {
            return Some(now);
        }
        if park::spin(&self.seq, seen, deadline) {
            return Some(self.current());
        }
        loop {
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            park::announce_fence();
            let parked = if self.seq.load(Ordering::SeqCst) == seen {
                park::sleep(&self.seq, seen, deadline)
            } else {
                Parked::Woken
            };
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            if let Some(now) = posted(self.current()) {
                return Some(now);
            }
            if parked == Parked::TimedOut {
                return None;
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Two round trips: every request reaches the server and every response the client,
    /// with the length written before the post seen after the wait (no lost wake-up, no
    /// stale message).
    #[test]
    fn loom_mailbox_round_trips_never_lose_a_post() {
        loom::model(|| {
            let m = Arc::new(RawMailbox::default());
            let server = {
                let m = Arc::clone(&m);
                thread::spawn(move || {
                    let mut seen = 0;
                    for _ in 0..2 {
                        seen = m.request.wait(seen, Deadline::NEVER).unwrap();
                        let asked = m.len.load(Ordering::Relaxed);
                        m.len.store(asked * 10, Ordering::Relaxed);
                        m.response.post();
                    }
                })
            };
            let mut seen = 0;
            for asked in 1..=2 {
                m.len.store(asked, Ordering::Relaxed);
                m.request.post();
                seen = m.response.wait(seen, Deadline::NEVER).unwrap();
                assert_eq!(m.len.load(Ordering::Relaxed), asked * 10);
            }
            server.join().unwrap();
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_wait_times_out_without_a_post_and_sees_one_made_before() {
        let m = RawMailbox::default();
        let seen = m.request.current();
        let t = std::time::Instant::now();
        assert_eq!(
            m.request
                .wait(seen, Deadline::after(Duration::from_millis(20))),
            None
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        m.request.post();
        assert_eq!(m.request.wait(seen, Deadline::NEVER), Some(seen + 1));
    }

    #[test]
    fn a_sleeping_waiter_is_woken_by_a_post_from_another_thread() {
        let m = std::sync::Arc::new(RawMailbox::default());
        let m2 = std::sync::Arc::clone(&m);
        let waiter = std::thread::spawn(move || m2.response.wait(0, Deadline::NEVER));
        // Long enough for the waiter to pass its spin and sleep.
        std::thread::sleep(Duration::from_millis(50));
        m.response.post();
        assert_eq!(waiter.join().unwrap(), Some(1));
    }
}
