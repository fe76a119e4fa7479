//! [`Signal`]: every signal number and name `kill -l` knows.
//!
//! A leaf of the crate: it needs only `sys`, so `error.rs` can name a [`Signal`] without
//! reaching up into `process/`. Sending and catching signals is `process/signal.rs`.
#![forbid(unsafe_code)]

use std::fmt;

use crate::sys::signal as sys;

/// A signal number, with the names `kill -l` prints.
///
/// The standard signals are associated constants (`Signal::USR1`); real-time signals are
/// `Signal::rt(n)` (`RTMIN+n`). `Display` prints the `SIG`-prefixed name.
///
/// ```
/// use multiproc::Signal;
/// assert_eq!(Signal::from_name("SIGUSR1"), Some(Signal::USR1));
/// assert_eq!(Signal::from_name("term"), Some(Signal::TERM));
/// assert_eq!(Signal::KILL.to_string(), "SIGKILL");
/// assert_eq!(Signal::KILL.as_raw(), 9);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

macro_rules! signal_consts {
    ($($name:ident = $num:expr, $doc:literal;)*) => {
        impl Signal {
            $(#[doc = $doc] pub const $name: Signal = Signal($num);)*
        }
    };
}
sys::standard_signals!(signal_consts);

impl Signal {
    /// The signal with this number, if the platform has it.
    pub fn from_raw(num: i32) -> Option<Signal> {
        Signal(num).is_named().then_some(Signal(num))
    }

    /// The signal a wait status reported, named or not: the kernel can end a process with a
    /// number the platform does not name (32 and 33, which the C library keeps for itself),
    /// and a status must say which one rather than pretend it was another.
    pub(crate) fn from_status(num: i32) -> Signal {
        Signal(num)
    }

    /// Whether the platform names this number (a standard or real-time signal).
    fn is_named(self) -> bool {
        sys::STANDARD.iter().any(|&(n, _)| n == self.0)
            || (sys::rt_min()..=sys::rt_max()).contains(&self.0)
    }

    /// The real-time signal `RTMIN+n`, if `n` is in range.
    pub fn rt(n: i32) -> Option<Signal> {
        let num = sys::rt_min().checked_add(n)?;
        (n >= 0 && num <= sys::rt_max()).then_some(Signal(num))
    }

    /// The signal number.
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// The name as `kill -l` prints it, without `SIG`: `"USR1"`, `"RTMIN+3"`, `"RTMAX"`.
    pub fn name(self) -> String {
        if let Some(&(_, name)) = sys::STANDARD.iter().find(|&&(n, _)| n == self.0) {
            return name.to_string();
        }
        let (min, max) = (sys::rt_min(), sys::rt_max());
        let mid = (min + max) / 2;
        match self.0 {
            n if n == min => "RTMIN".to_string(),
            n if n == max => "RTMAX".to_string(),
            n if n > min && n <= mid => format!("RTMIN+{}", n - min),
            n if n > mid && n < max => format!("RTMAX-{}", max - n),
            n => format!("{n}"),
        }
    }

    /// Parses a name with or without `SIG`, in any case (`"SIGUSR1"`, `"usr1"`, `"RTMIN+2"`),
    /// or a number (`"9"`).
    pub fn from_name(name: &str) -> Option<Signal> {
        if let Ok(num) = name.parse::<i32>() {
            return Signal::from_raw(num);
        }
        let upper = name.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        Signal::all().into_iter().find(|s| s.name() == bare)
    }

    /// Every signal of the platform, in `kill -l` order.
    pub fn all() -> Vec<Signal> {
        let mut all: Vec<Signal> = sys::STANDARD.iter().map(|&(n, _)| Signal(n)).collect();
        all.extend((sys::rt_min()..=sys::rt_max()).map(Signal));
        all
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Signal {
    /// `SIGUSR1`, `SIGRTMIN+2`; a number the platform does not name prints as `signal 32`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_named() {
            write!(f, "SIG{}", self.name())
        } else {
            write!(f, "signal {}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_signal() {
        let all = Signal::all();
        assert!(
            all.len() >= 31 + 30,
            "standard and real-time signals: {}",
            all.len()
        );
        for s in all {
            assert_eq!(Signal::from_name(&s.name()), Some(s), "{s:?}");
            assert_eq!(Signal::from_raw(s.as_raw()), Some(s));
        }
    }

    #[test]
    fn kill_l_spellings() {
        assert_eq!(Signal::rt(0).unwrap().name(), "RTMIN");
        assert_eq!(Signal::rt(1).unwrap().name(), "RTMIN+1");
        assert_eq!(Signal::from_name("RTMAX").unwrap().as_raw(), sys::rt_max());
        assert_eq!(
            Signal::from_name("RTMAX-1").unwrap().as_raw(),
            sys::rt_max() - 1
        );
        assert_eq!(Signal::from_name("sigterm"), Some(Signal::TERM));
        assert_eq!(Signal::from_name("NOPE"), None);
        assert_eq!(Signal::from_raw(0), None);
        assert_eq!(Signal::rt(1000), None);
    }

    #[test]
    fn an_unnamed_number_stays_itself() {
        let s = Signal::from_status(32);
        assert_eq!(s.as_raw(), 32);
        assert_eq!(Signal::from_raw(32), None);
        assert_eq!(s.to_string(), "signal 32");
        assert_eq!(Signal::KILL.to_string(), "SIGKILL");
    }

    #[test]
    fn constants_match_the_platform() {
        for &(num, name) in sys::STANDARD {
            assert_eq!(Signal::from_name(name).unwrap().as_raw(), num);
        }
    }
}
