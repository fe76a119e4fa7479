//! How a child ended.
#![forbid(unsafe_code)]

use std::fmt;

use crate::signal::Signal;
use crate::sys::process::Exit;

/// How a child process ended: an exit code or a signal.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The process exited with this code (0 after the closure returned, 1 after a panic).
    Exited(i32),
    /// A signal killed the process.
    Signaled(Signal),
}

impl ExitStatus {
    /// The code in Python's `exitcode` convention: the exit code, or `-N` for signal `N`.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => -s.as_raw(),
        }
    }

    /// `true` for an exit code of 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    pub(crate) fn from_sys(exit: Exit) -> ExitStatus {
        match exit {
            Exit::Code(c) => ExitStatus::Exited(c),
            // A number the platform does not name is kept as it is, never taken for another.
            Exit::Signal(n) => ExitStatus::Signaled(Signal::from_status(n)),
        }
    }
}

impl fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(c) => write!(f, "exit code {c}"),
            ExitStatus::Signaled(s) => write!(f, "killed by {s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signal 32 has no name (the C library keeps it for itself). A process it ended
    /// reports -32, not -9 (PR-11). An integration test cannot make a child die of it: the
    /// C library handles it in a Rust program, and `cargo test` starts tests with it ignored.
    #[test]
    fn an_unnamed_signal_is_kept_raw() {
        let status = ExitStatus::from_sys(Exit::Signal(32));
        assert_eq!(status.code(), -32);
        assert_eq!(status.to_string(), "killed by signal 32");
        assert_eq!(
            ExitStatus::from_sys(Exit::Signal(9)),
            ExitStatus::Signaled(Signal::KILL)
        );
    }
}
