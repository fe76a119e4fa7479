//! [`Event`]: a process-shared flag that processes can wait for.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::mem::named::Layout;
use crate::mem::segment::{Kind, Segment, Shared};
use crate::raw::RawEvent;

const KIND: Kind = Kind(*b"EVNT");

/// A named event's segment (`sync::named`).
pub(super) const LAYOUT: Layout = Layout {
    what: "event",
    kind: KIND,
    size: std::mem::size_of::<RawEvent>(),
    align: std::mem::align_of::<RawEvent>(),
};

/// A flag shared by processes: Python's `multiprocessing.Event`.
///
/// Python's `wait(timeout)` returns the flag as a `bool`; here a wait that runs out is
/// `Err(Timeout)`, as every timed call of the crate says it.
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use std::time::Duration;
/// let ev = multiproc::Event::new()?;
/// assert!(ev.wait_timeout(Duration::ZERO).unwrap_err().is_timeout());
/// ev.set();
/// assert!(ev.is_set());
/// ev.wait();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Event {
    pub(super) shared: Shared<RawEvent>,
}

impl Event {
    /// Creates an unset event.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the system refuses the memory.
    pub fn new() -> Result<Event> {
        Ok(Event::in_segment(Segment::create_for::<RawEvent>(KIND)?))
    }

    /// The event in `segment` (zeroed: unset), new or opened by name.
    pub(super) fn in_segment(segment: Segment) -> Event {
        Event {
            shared: Shared::new(segment, 0),
        }
    }

    fn raw(&self) -> &RawEvent {
        &self.shared
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.raw().set();
        self.shared.segment().wake_async_waiters();
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.raw().clear();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.raw().is_set()
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        let set = self.raw().wait(Deadline::NEVER);
        debug_assert!(set);
    }

    /// Waits at most `timeout` for the flag (Python's `wait(timeout)`).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the flag stayed unset for at least `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(Deadline::after(timeout))
    }

    /// Waits until `deadline` at the latest for the flag.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the flag stayed unset until `deadline`.
    pub fn wait_deadline(&self, deadline: Instant) -> Result<()> {
        self.wait_until(Deadline::at(deadline))
    }

    fn wait_until(&self, deadline: Deadline) -> Result<()> {
        if self.raw().wait(deadline) {
            Ok(())
        } else {
            Err(Error::Timeout)
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}

crate::mem::segment::travels_as_shared!(Event, shared, KIND);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ev_01_ev_02_unset_times_out_set_returns_at_once() {
        let e = Event::new().unwrap();
        assert!(!e.is_set());
        assert!(e.wait_timeout(Duration::ZERO).unwrap_err().is_timeout());
        let t = Instant::now();
        assert!(e.wait_timeout(Duration::from_millis(50)).is_err());
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(e.wait_deadline(Instant::now()).is_err());
        e.set();
        assert!(e.is_set());
        e.wait_timeout(Duration::from_millis(50)).unwrap();
        e.wait();
        e.clear();
        assert!(!e.is_set());
    }

    #[test]
    fn ev_03_set_from_another_thread_wakes_the_waiter() {
        let e = Event::new().unwrap();
        let e2 = e.clone();
        let t = std::thread::spawn(move || e2.wait_timeout(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(100));
        e.set();
        t.join().unwrap().unwrap();
    }
}
