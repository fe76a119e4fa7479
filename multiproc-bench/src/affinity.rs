//! Pinning processes to one CPU, for the "pinned" rows: with both ends of a hand-off on
//! the same CPU a wake-up is a context switch instead of a cross-CPU interrupt, and the
//! targets in DESIGN.md compare both.

use std::io;
use std::mem::MaybeUninit;

/// Restores the saved CPU masks when dropped.
#[derive(Debug)]
pub(crate) struct Pinned {
    saved: Vec<(libc::pid_t, libc::cpu_set_t)>,
}

/// Pins each process in `pids` (and the children it forks from now on) to the first
/// CPU it may run on; the guard puts the old masks back.
pub(crate) fn pin_to_first_cpu(pids: impl IntoIterator<Item = u32>) -> io::Result<Pinned> {
    let mut pinned = Pinned { saved: Vec::new() };
    for pid in pids {
        let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        let old = get(pid)?;
        let first = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE, the number of CPUs a `cpu_set_t` holds.
            .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &old) })
            .ok_or_else(|| io::Error::other("empty CPU mask"))?;
        // SAFETY: all-zero bytes are a valid empty `cpu_set_t` (a plain bit array).
        let mut one: libc::cpu_set_t = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: `first` is below CPU_SETSIZE (found above).
        unsafe { libc::CPU_SET(first, &mut one) };
        set(pid, &one)?;
        pinned.saved.push((pid, old));
    }
    Ok(pinned)
}

impl Drop for Pinned {
    fn drop(&mut self) {
        for (pid, mask) in &self.saved {
            // Best effort: a process that exited meanwhile has nothing left to restore.
            let _ = set(*pid, mask);
        }
    }
}

fn get(pid: libc::pid_t) -> io::Result<libc::cpu_set_t> {
    let mut mask = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `mask` is a writable `cpu_set_t` of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(pid, size_of::<libc::cpu_set_t>(), mask.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised above and filled by the kernel; any bit pattern is valid.
    Ok(unsafe { mask.assume_init() })
}

fn set(pid: libc::pid_t, mask: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `mask` points to a valid `cpu_set_t` of the size passed.
    let rc = unsafe { libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), mask) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
