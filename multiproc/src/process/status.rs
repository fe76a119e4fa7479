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
            // A number the platform does not name still deserves a status; keep it raw.
            Exit::Signal(n) => ExitStatus::Signaled(Signal::from_raw(n).unwrap_or(Signal::KILL)),
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
