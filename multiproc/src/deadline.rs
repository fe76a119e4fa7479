//! [`Deadline`]: the one way the crate says how long a call may wait.
//!
//! Every blocking family has three forms (blocking, `try_`, `_timeout`), and each turns its
//! argument into a `Deadline` once, at the top, so a loop that sleeps several times keeps
//! one limit. A timeout too far away to represent (`Duration::MAX`) is forever, never a
//! panic.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// When a wait must give up: never, or at an instant (which may already have passed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// Waits forever.
    pub(crate) const NEVER: Deadline = Deadline(None);

    /// `timeout` from now; forever when that instant cannot be represented.
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// At `instant`.
    pub(crate) fn at(instant: Instant) -> Deadline {
        Deadline(Some(instant))
    }

    /// Already passed: the deadline of a `try_` form, which must not wait.
    pub(crate) fn now() -> Deadline {
        Deadline(Some(Instant::now()))
    }

    /// The instant, or `None` for forever.
    pub(crate) fn instant(self) -> Option<Instant> {
        self.0
    }

    /// `true` when this deadline is forever.
    pub(crate) fn is_never(self) -> bool {
        self.0.is_none()
    }

    /// `true` once the instant has passed (never for [`Deadline::NEVER`]).
    pub(crate) fn has_passed(self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }

    /// Time left: `None` for forever, `Some(ZERO)` once passed.
    pub(crate) fn remaining(self) -> Option<Duration> {
        self.0.map(|d| {
            d.checked_duration_since(Instant::now())
                .unwrap_or(Duration::ZERO)
        })
    }

    /// The earlier of `self` and `other`.
    pub(crate) fn min(self, other: Deadline) -> Deadline {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Deadline(Some(a.min(b))),
            (Some(a), None) | (None, Some(a)) => Deadline(Some(a)),
            (None, None) => Deadline::NEVER,
        }
    }
}

impl From<Option<Duration>> for Deadline {
    /// `None` is forever, as in `poll(None)`.
    fn from(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::NEVER, Deadline::after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_far_is_forever() {
        assert_eq!(Deadline::after(Duration::MAX), Deadline::NEVER);
        assert_eq!(Deadline::after(Duration::MAX).remaining(), None);
        assert!(!Deadline::NEVER.has_passed());
    }

    #[test]
    fn now_has_passed_and_has_nothing_left() {
        let d = Deadline::now();
        assert!(d.has_passed());
        assert_eq!(d.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn min_prefers_the_earlier_and_forever_loses() {
        let soon = Deadline::after(Duration::from_millis(1));
        let later = Deadline::after(Duration::from_secs(60));
        assert_eq!(soon.min(later), soon);
        assert_eq!(Deadline::NEVER.min(later), later);
        assert_eq!(Deadline::NEVER.min(Deadline::NEVER), Deadline::NEVER);
    }
}
