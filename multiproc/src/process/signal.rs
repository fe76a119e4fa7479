//! Sending signals, and a safe way to catch them.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::signal::Signal;
use crate::sys;

/// Sends `sig` to the process `pid` (any process this one may signal), like `os.kill`.
///
/// # Errors
/// [`Error::Io`] with `NotFound`-like `ESRCH` when no such process exists, or
/// `PermissionDenied` when it may not be signalled.
pub fn send_signal(pid: Pid, sig: Signal) -> Result<()> {
    let raw = pid
        .to_sys()
        .ok_or_else(|| Error::InvalidArgument(format!("{pid} is not a process id")))?;
    sys::signal::kill(raw, sig.as_raw())?;
    Ok(())
}

/// A flag that a signal sets: the safe way to react to a signal.
///
/// The handler only stores `true`; the program looks at the flag when it likes, so no
/// arbitrary code runs inside a signal handler.
///
/// ```
/// use multiproc::process::SignalFlag;
/// use multiproc::Signal;
/// # fn main() -> multiproc::Result<()> {
/// let flag = SignalFlag::register(Signal::USR2)?;
/// assert!(!flag.is_raised());
/// multiproc::process::send_signal(multiproc::current_process().pid(), Signal::USR2)?;
/// assert!(flag.take());      // true once, then cleared
/// assert!(!flag.is_raised());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SignalFlag {
    signal: Signal,
    raised: Arc<AtomicBool>,
}

impl SignalFlag {
    /// Installs a handler for `sig` that sets the returned flag. Other handlers registered
    /// the same way for the same signal keep working.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `SIGKILL`, `SIGSTOP` and the signals whose default
    /// action is a fault (`SIGSEGV`, `SIGILL`, `SIGFPE`, `SIGBUS`): catching those with a flag
    /// would leave the program spinning on the faulting instruction.
    pub fn register(sig: Signal) -> Result<SignalFlag> {
        const UNCATCHABLE: [Signal; 6] = [
            Signal::KILL,
            Signal::STOP,
            Signal::SEGV,
            Signal::ILL,
            Signal::FPE,
            Signal::BUS,
        ];
        if UNCATCHABLE.contains(&sig) {
            return Err(Error::InvalidArgument(format!(
                "{sig} cannot be caught with a flag"
            )));
        }
        let raised = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(sig.as_raw(), Arc::clone(&raised))
            .map_err(|e| Error::InvalidArgument(format!("cannot catch {sig}: {e}")))?;
        Ok(SignalFlag {
            signal: sig,
            raised,
        })
    }

    /// The signal this flag watches.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// Whether the signal arrived since the last [`take`](Self::take).
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Returns whether the signal arrived, and clears the flag.
    pub fn take(&self) -> bool {
        self.raised.swap(false, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_cannot_be_caught() {
        assert!(matches!(
            SignalFlag::register(Signal::KILL),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn signalling_pid_zero_is_refused() {
        assert!(matches!(
            send_signal(Pid::from(0), Signal::TERM),
            Err(Error::InvalidArgument(_))
        ));
    }
}
