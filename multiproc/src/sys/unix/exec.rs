//! Running this program again: an exec of `/proc/self/exe` ([`posix_spawn(3)`] through
//! `std::process::Command`), the descriptor it is handed as its standard input, and finding a
//! function of this program by its place in the executable ([`dladdr(3)`]).
//!
//! [`posix_spawn(3)`]: https://man7.org/linux/man-pages/man3/posix_spawn.3.html
//! [`dladdr(3)`]: https://man7.org/linux/man-pages/man3/dladdr.3.html

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::cvt_r;

/// Starts a fresh execution of this program's executable file (`argv[0]` kept) with
/// `stdin` as its standard input and `var=value` added to its environment; returns its pid.
///
/// The new process is a child of the caller, to be reaped with `wait_exit`. Only the three
/// standard descriptors reach it: every other descriptor of ours is close-on-exec. `std`
/// uses `posix_spawn` (a `vfork`-style clone) here, which is sound from a process with
/// many threads.
pub(crate) fn spawn_self(stdin: OwnedFd, var: &str, value: &str) -> io::Result<i32> {
    let mut cmd = Command::new("/proc/self/exe");
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    let child = cmd.stdin(Stdio::from(stdin)).env(var, value).spawn()?;
    // Dropping `std::process::Child` neither waits nor kills; the caller reaps by pid.
    Ok(child.id() as i32)
}

/// Takes this process's standard input as an owned, close-on-exec descriptor and puts
/// `/dev/null` in its place (descriptor 0 stays open, so no later `open` lands on it).
pub(crate) fn take_stdin() -> io::Result<OwnedFd> {
    let taken = io::stdin().as_fd().try_clone_to_owned()?;
    let null = File::open("/dev/null")?;
    // SAFETY: dup2 only changes this process's descriptor table; descriptor 0 is owned by
    // `Stdin`, which keeps using the number (now /dev/null), so no owner is invalidated.
    cvt_r(|| unsafe { libc::dup2(null.as_raw_fd(), 0) })?;
    Ok(taken)
}

/// Ignores `SIGPIPE`, as Rust's runtime does before `main`: a write to a closed pipe then
/// fails with `BrokenPipe` instead of killing the process. Code that runs before `main`
/// (a re-executed child) calls this itself.
pub(crate) fn ignore_sigpipe() -> io::Result<()> {
    // SAFETY: installing SIG_IGN runs no code of ours in a signal handler.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if old == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The load address of the executable or shared object that contains the code address
/// `addr`, or `None` if no loaded object contains it.
pub(crate) fn object_base(addr: usize) -> Option<usize> {
    // SAFETY: a zeroed Dl_info is a valid value for dladdr to overwrite.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr reads no memory at `addr`; it looks the address up in the loader's
    // tables and writes `info`, which is live.
    let found = unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) };
    (found != 0 && !info.dli_fbase.is_null()).then_some(info.dli_fbase as usize)
}

/// The function of type `F` at code address `addr`.
///
/// # Safety
/// `F` must be a function-pointer type (`fn(..) -> ..`), and `addr` the address, in this
/// process, of a function of exactly that type.
pub(crate) unsafe fn function_at<F: Copy>(addr: usize) -> F {
    assert_eq!(
        std::mem::size_of::<F>(),
        std::mem::size_of::<usize>(),
        "function_at needs a function-pointer type"
    );
    // SAFETY: the caller guarantees `addr` is a function of type `F`, and a function
    // pointer has the size (checked above) and representation of its address.
    unsafe { std::mem::transmute_copy(&addr) }
}
