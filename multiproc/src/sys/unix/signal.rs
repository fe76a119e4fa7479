//! Signal numbers and names of Linux, and [`kill(2)`].
//!
//! [`kill(2)`]: https://man7.org/linux/man-pages/man2/kill.2.html

use std::io;

use super::cvt;

/// The one table of the standard signals: the name `kill -l` prints (without `SIG`), the
/// platform's number, and one line of documentation. It hands the list to `$callback`, a
/// macro taking `$(NAME = number_expr, "doc";)*`: [`STANDARD`] is built from it here and
/// the `Signal` constants in `crate::signal`.
macro_rules! standard_signals {
    ($callback:ident) => {
        $callback! {
            HUP = libc::SIGHUP, "Hangup: the controlling terminal or connection went away.";
            INT = libc::SIGINT, "Interrupt from the keyboard (Ctrl-C).";
            QUIT = libc::SIGQUIT, "Quit from the keyboard (Ctrl-\\).";
            ILL = libc::SIGILL, "Illegal instruction.";
            TRAP = libc::SIGTRAP, "Trace or breakpoint trap.";
            ABRT = libc::SIGABRT, "Abort, as from `abort(3)`.";
            BUS = libc::SIGBUS, "Bus error (bad memory access).";
            FPE = libc::SIGFPE, "Floating-point exception.";
            KILL = libc::SIGKILL, "Kill: cannot be caught or ignored.";
            USR1 = libc::SIGUSR1, "User-defined signal 1.";
            SEGV = libc::SIGSEGV, "Invalid memory reference.";
            USR2 = libc::SIGUSR2, "User-defined signal 2.";
            PIPE = libc::SIGPIPE, "Broken pipe: write with no reader.";
            ALRM = libc::SIGALRM, "Timer signal from `alarm(2)`.";
            TERM = libc::SIGTERM, "Termination request; what `terminate()` sends.";
            STKFLT = libc::SIGSTKFLT, "Stack fault on coprocessor (unused).";
            CHLD = libc::SIGCHLD, "A child stopped or ended.";
            CONT = libc::SIGCONT, "Continue if stopped.";
            STOP = libc::SIGSTOP, "Stop the process: cannot be caught or ignored.";
            TSTP = libc::SIGTSTP, "Stop typed at the terminal (Ctrl-Z).";
            TTIN = libc::SIGTTIN, "Terminal input for a background process.";
            TTOU = libc::SIGTTOU, "Terminal output for a background process.";
            URG = libc::SIGURG, "Urgent condition on a socket.";
            XCPU = libc::SIGXCPU, "CPU time limit exceeded.";
            XFSZ = libc::SIGXFSZ, "File size limit exceeded.";
            VTALRM = libc::SIGVTALRM, "Virtual alarm clock.";
            PROF = libc::SIGPROF, "Profiling timer expired.";
            WINCH = libc::SIGWINCH, "Window resize.";
            IO = libc::SIGIO, "I/O now possible.";
            PWR = libc::SIGPWR, "Power failure.";
            SYS = libc::SIGSYS, "Bad system call.";
        }
    };
}
pub(crate) use standard_signals;

macro_rules! name_table {
    ($($name:ident = $num:expr, $doc:literal;)*) => {
        /// The standard signals as `kill -l` names them, without the `SIG` prefix, in
        /// `kill -l` order.
        pub(crate) const STANDARD: &[(i32, &str)] = &[$(($num, stringify!($name)),)*];
    };
}
standard_signals!(name_table);

/// The first real-time signal number available to applications.
pub(crate) fn rt_min() -> i32 {
    libc::SIGRTMIN()
}

/// The last real-time signal number.
pub(crate) fn rt_max() -> i32 {
    libc::SIGRTMAX()
}

/// Sends `sig` to `pid` (0 checks only that the process exists and may be signalled).
pub(crate) fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    cvt(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// Ignores `sig` in this process from now on (`SIG_IGN`).
pub(crate) fn ignore(sig: i32) -> io::Result<()> {
    // SAFETY: installing SIG_IGN runs no code of ours in a signal context.
    if unsafe { libc::signal(sig, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
