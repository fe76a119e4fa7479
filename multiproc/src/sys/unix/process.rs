//! Process calls: [`fork(2)`], [`_exit(2)`], [`pidfd_open(2)`], [`waitid(2)`], [`prctl(2)`].
//!
//! [`fork(2)`]: https://man7.org/linux/man-pages/man2/fork.2.html
//! [`_exit(2)`]: https://man7.org/linux/man-pages/man2/_exit.2.html
//! [`pidfd_open(2)`]: https://man7.org/linux/man-pages/man2/pidfd_open.2.html
//! [`waitid(2)`]: https://man7.org/linux/man-pages/man2/waitid.2.html
//! [`prctl(2)`]: https://man7.org/linux/man-pages/man2/prctl.2.html

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{cvt, cvt_r};

/// What [`fork`] returns in each of the two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    /// In the parent, with the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// Wrapper around `fork(2)`.
///
/// # Safety
/// - The calling process must have exactly one thread, or the caller must vouch that no
///   other thread holds a lock (the allocator's, stdout's, a `Mutex` of its own) that the
///   child will take: only the calling thread exists in the child, so such a lock would
///   never be released there.
/// - In the child, only async-signal-safe work is sound until that condition is known to
///   hold; the child must leave through [`exit_now`], never by unwinding out of the caller.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the single-thread contract above.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// Ends the process at once with `code`, running no exit handlers and flushing nothing.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) is always sound; it does not return.
    unsafe { libc::_exit(code) }
}

/// A pidfd for `pid`: readable once the process has exited; signals sent through it cannot
/// reach a recycled pid.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and touches no memory of ours.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel returned a fresh fd (close-on-exec by definition) we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `sig` to the process behind `pidfd`.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a null siginfo asks the kernel to fill in the usual kill(2) fields.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal with this number killed it.
    Signal(i32),
}

/// Reaps the child `pid`. With `block == false`, returns `Ok(None)` if it is still running.
pub(crate) fn wait_exit(pid: i32, block: bool) -> io::Result<Option<Exit>> {
    let mut status: libc::c_int = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: `status` is a live c_int that waitpid may write.
    let ret = cvt_r(|| unsafe { libc::waitpid(pid, &mut status, flags) })?;
    if ret == 0 {
        return Ok(None);
    }
    if libc::WIFEXITED(status) {
        Ok(Some(Exit::Code(libc::WEXITSTATUS(status))))
    } else if libc::WIFSIGNALED(status) {
        Ok(Some(Exit::Signal(libc::WTERMSIG(status))))
    } else {
        Err(io::Error::other(format!(
            "unexpected wait status {status:#x}"
        )))
    }
}

/// Asks the kernel to send `sig` to this process when the thread that forked it exits.
pub(crate) fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes an integer and touches no memory of ours.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// How many threads this process has now.
///
/// Asked of the link count of `/proc/self/task`, which Linux gives as 2 plus the number of
/// threads (`proc_task_getattr`): one `statx`, about 4x cheaper than formatting and reading
/// `/proc/self/stat`, and `start` asks on every fork. A kernel that does not count threads
/// there (the count stays 2) is asked through `/proc/self/stat` instead.
pub(crate) fn thread_count() -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let links = std::fs::metadata("/proc/self/task")?.nlink();
    match links.checked_sub(2) {
        Some(threads) if threads >= 1 => Ok(threads as usize),
        _ => thread_count_from_stat(),
    }
}

/// The thread count from field 20 of `/proc/self/stat`, read into a stack buffer (no
/// allocation, so a fork right after touches no fresh heap page).
fn thread_count_from_stat() -> io::Result<usize> {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let n = std::fs::File::open("/proc/self/stat")?.read(&mut buf)?;
    let stat = &buf[..n];
    // The command name (field 2) is in parentheses and may contain spaces: count fields
    // after the last ')'. Field 3 is the first one after it, so field 20 is the 18th.
    let after = stat
        .iter()
        .rposition(|&b| b == b')')
        .map_or(stat, |i| &stat[i + 1..]);
    let field = after
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(17)
        .and_then(|f| std::str::from_utf8(f).ok()?.parse().ok());
    field.ok_or_else(|| io::Error::other("cannot read the thread count from /proc/self/stat"))
}

/// This process's id.
pub(crate) fn getpid() -> i32 {
    // SAFETY: getpid(2) always succeeds and touches no memory.
    unsafe { libc::getpid() }
}

/// The parent's id (the reaper's, if the parent died).
pub(crate) fn getppid() -> i32 {
    // SAFETY: getppid(2) always succeeds and touches no memory.
    unsafe { libc::getppid() }
}

/// The number of online CPUs (at least 1).
pub(crate) fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU the calling thread runs on now (a hint: it may be moved at once), or `None`
/// where the kernel does not say.
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments and only reads the thread's state.
    u32::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// Moves the calling thread off `cpu` when its affinity allows another CPU, then gives it
/// its affinity back, so the scheduler stays free to place it anywhere later. Returns
/// whether there was somewhere else to go.
pub(crate) fn move_off_cpu(cpu: u32) -> io::Result<bool> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: all-zero bytes are a valid empty `cpu_set_t` (a plain bit array).
    let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `mask` is a writable `cpu_set_t` of `size` bytes; pid 0 is this thread.
    cvt(unsafe { libc::sched_getaffinity(0, size, &mut mask) })?;
    let cpu = cpu as usize;
    if cpu >= libc::CPU_SETSIZE as usize {
        return Ok(false);
    }
    // SAFETY: `mask` is a valid `cpu_set_t` and `cpu` is below CPU_SETSIZE.
    let allowed_here = unsafe { libc::CPU_ISSET(cpu, &mask) };
    // SAFETY: `mask` is a valid `cpu_set_t`.
    let allowed = unsafe { libc::CPU_COUNT(&mask) };
    if !allowed_here || allowed < 2 {
        return Ok(false);
    }
    let mut elsewhere = mask;
    // SAFETY: `elsewhere` is a valid `cpu_set_t` and `cpu` is below CPU_SETSIZE.
    unsafe { libc::CPU_CLR(cpu, &mut elsewhere) };
    // A mask without the current CPU migrates the thread before the call returns.
    // SAFETY: `elsewhere` is a valid `cpu_set_t` of `size` bytes; pid 0 is this thread.
    cvt(unsafe { libc::sched_setaffinity(0, size, &elsewhere) })?;
    // Restoring the caller's choice does not move the thread back.
    // SAFETY: `mask` is a valid `cpu_set_t` of `size` bytes; pid 0 is this thread.
    cvt(unsafe { libc::sched_setaffinity(0, size, &mask) })?;
    Ok(true)
}

/// Whether `e` says the process no longer exists (`ESRCH`).
pub(crate) fn is_gone(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ESRCH)
}

/// Registers `f` to run at normal process exit ([`atexit(3)`]).
///
/// [`atexit(3)`]: https://man7.org/linux/man-pages/man3/atexit.3.html
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function with no captured state, valid for the whole program.
    // atexit can only fail for lack of memory, and then the cleanup simply does not run.
    unsafe {
        libc::atexit(f);
    }
}

/// Registers `f` to run in the child after every `fork` ([`pthread_atfork(3)`]), however
/// the fork was made.
///
/// [`pthread_atfork(3)`]: https://man7.org/linux/man-pages/man3/pthread_atfork.3.html
pub(crate) fn at_fork_child(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function with no captured state, valid for the whole program;
    // the prepare and parent hooks are null. It fails only for lack of memory, and then
    // the hook simply does not run.
    unsafe {
        libc::pthread_atfork(None, None, Some(f));
    }
}

/// Forks if this process has exactly one thread; otherwise returns the thread count and
/// does not fork.
///
/// With one thread there is no other thread that could hold a lock at the moment of the
/// fork, and none can appear between the count and the fork because only this thread could
/// create it. So the child may run any code, which makes this function safe.
pub(crate) fn fork_single_threaded() -> io::Result<Result<Forked, usize>> {
    let threads = thread_count()?;
    if threads != 1 {
        return Ok(Err(threads));
    }
    // SAFETY: the process has one thread (checked just above, and only this thread could
    // start another), so the child inherits no lock held by a vanished thread.
    unsafe { fork() }.map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moving off a CPU lands the thread elsewhere and leaves its affinity as it was; a
    /// thread allowed one CPU stays.
    #[test]
    fn move_off_cpu_moves_this_thread_and_restores_its_affinity() {
        std::thread::spawn(|| {
            let size = std::mem::size_of::<libc::cpu_set_t>();
            // The allowed CPUs, as a list (`cpu_set_t` has no `==`).
            let affinity = || {
                // SAFETY: all-zero bytes are a valid empty `cpu_set_t`.
                let mut m: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                // SAFETY: `m` is a writable `cpu_set_t` of `size` bytes; pid 0 is this thread.
                assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut m) }, 0);
                (0..libc::CPU_SETSIZE as usize)
                    // SAFETY: `cpu` is below CPU_SETSIZE and `m` a valid `cpu_set_t`.
                    .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &m) })
                    .collect::<Vec<_>>()
            };
            let before = affinity();
            let here = current_cpu().unwrap();
            if cpu_count() < 2 {
                assert!(!move_off_cpu(here).unwrap());
                return;
            }
            assert!(move_off_cpu(here).unwrap());
            assert_ne!(current_cpu(), Some(here), "still on CPU {here}");
            assert!(affinity() == before, "the affinity was not restored");
            // Allowed only where it is now: nowhere else to go.
            let now = current_cpu().unwrap();
            // SAFETY: all-zero bytes are a valid empty `cpu_set_t`.
            let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            // SAFETY: `now` is a CPU number the kernel gave, below CPU_SETSIZE.
            unsafe { libc::CPU_SET(now as usize, &mut one) };
            // SAFETY: `one` is a valid `cpu_set_t` of `size` bytes; pid 0 is this thread.
            assert_eq!(unsafe { libc::sched_setaffinity(0, size, &one) }, 0);
            assert!(!move_off_cpu(now).unwrap());
            assert_eq!(current_cpu(), Some(now));
        })
        .join()
        .unwrap();
    }

    /// The link count of `/proc/self/task` and field 20 of `/proc/self/stat` agree, with a
    /// thread of ours running. Other tests start and end threads meanwhile, so the two are
    /// compared between two equal readings of the first.
    #[test]
    fn the_task_link_count_is_the_thread_count() {
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let extra = std::thread::spawn(move || parked.recv());
        let agreed = (0..1000).any(|_| {
            let before = thread_count().unwrap();
            let stat = thread_count_from_stat().unwrap();
            let after = thread_count().unwrap();
            before == after && stat == before && before >= 2
        });
        drop(stop);
        let _ = extra.join();
        assert!(agreed, "the two thread counts never agreed");
    }
}
