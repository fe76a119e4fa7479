//! [`Pid`]: a process id, one type across the crate.
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// A process id, as `os.getpid()` or `Process.pid` gives it in Python.
///
/// `Display` prints the bare number. Converts from and into the `u32` of
/// [`std::process::id`] and [`std::process::Child::id`].
///
/// ```
/// use multiproc::Pid;
/// let me = multiproc::current_process().pid();
/// assert_eq!(me, Pid::from(std::process::id()));
/// assert_eq!(u32::from(me), std::process::id());
/// assert_eq!(me.to_string(), std::process::id().to_string());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pid(u32);

impl Pid {
    /// The number.
    pub fn as_raw(self) -> u32 {
        self.0
    }

    /// From a `pid_t` the system returned (always positive).
    pub(crate) fn from_sys(pid: i32) -> Pid {
        Pid(pid.unsigned_abs())
    }

    /// As a `pid_t` naming one process: `None` for 0 and for numbers past `i32::MAX`,
    /// which `kill(2)` would read as a process group or as "every process".
    pub(crate) fn to_sys(self) -> Option<i32> {
        i32::try_from(self.0).ok().filter(|&p| p > 0)
    }
}

impl From<u32> for Pid {
    fn from(pid: u32) -> Pid {
        Pid(pid)
    }
}

impl From<Pid> for u32 {
    fn from(pid: Pid) -> u32 {
        pid.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_processes_convert_to_pid_t() {
        assert_eq!(Pid::from(0).to_sys(), None);
        assert_eq!(Pid::from(u32::MAX).to_sys(), None);
        assert_eq!(Pid::from(42).to_sys(), Some(42));
        assert_eq!(Pid::from_sys(42), Pid::from(42));
    }
}
