//! Which library handles a child keeps: the answer to "recv never sees EOF because a child
//! still holds a copy of the other end".
//!
//! `fork` copies every descriptor. With Python, a child that inherited the end its parent
//! writes on keeps that end open, so the reader in the child never sees EOF unless the user
//! remembers to close the copy by hand. Here ownership decides instead:
//!
//! - every `Connection` registers its descriptor in this process's registry;
//! - after `fork`, the parent drops the closure it moved into the child with recording on,
//!   so each connection the closure owned reports itself as *captured*;
//! - the parent sends that list to the child before the child runs any user code (unless
//!   the registry held nothing but the child's own control pair at the fork: then there is
//!   nothing to detach, and the child does not wait for a list); the child then detaches
//!   every other registered descriptor (it points the number at a dead socket
//!   with `dup3`, so the number is never reused and a stray use gets `Eof` or
//!   `BrokenPipe`, never another file).
//!
//! So the ends moved into the closure belong to the child (and are closed in the parent),
//! the ends the parent kept belong to the parent (and are closed in the child). Handles
//! reachable only through an `Arc` shared with the parent, or through a `static`, are not
//! captured; move them (or a `try_clone`) into the closure instead.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, RawFd};
use std::sync::{Mutex, MutexGuard};

use crate::sys;

static LIVE: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

thread_local! {
    /// While the parent drops a child's closure: the descriptors dropped so far.
    static CAPTURED: RefCell<Option<Vec<RawFd>>> = const { RefCell::new(None) };
}

fn live() -> MutexGuard<'static, Option<HashSet<RawFd>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records that a library handle owns `fd`.
pub(crate) fn track(fd: RawFd) {
    live().get_or_insert_with(HashSet::new).insert(fd);
}

/// Records that the handle owning `fd` is being dropped (or closed) in this process.
pub(crate) fn release(fd: RawFd) {
    if let Some(set) = live().as_mut() {
        set.remove(&fd);
    }
    CAPTURED.with(|c| {
        if let Some(list) = c.borrow_mut().as_mut() {
            list.push(fd);
        }
    });
}

/// Whether a child's closure is being dropped in the parent right now: a handle dropped
/// now has moved into the child and must leave shared state (a socket file) alone.
pub(crate) fn is_recording() -> bool {
    CAPTURED.with(|c| c.borrow().is_some())
}

/// Drops `value` and returns the descriptors of the library handles it owned.
pub(crate) fn drop_recording<T>(value: T) -> Vec<RawFd> {
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    drop(value);
    CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default()
}

/// The registry, locked across `fork` so the child never inherits it locked by another
/// thread.
pub(crate) struct ForkLock(MutexGuard<'static, Option<HashSet<RawFd>>>);

impl ForkLock {
    /// Whether every registered descriptor is one of `fds`: then a child forked now has no
    /// other library descriptor to detach, and needs no list from its parent.
    pub(crate) fn holds_only(&self, fds: &[RawFd]) -> bool {
        self.0
            .as_ref()
            .map_or(true, |set| set.iter().all(|fd| fds.contains(fd)))
    }
}

/// Locks the registry for a `fork`.
pub(crate) fn lock_for_fork() -> ForkLock {
    ForkLock(live())
}

/// In a new child: detaches every registered descriptor not in `keep`.
pub(crate) fn keep_only(keep: &[RawFd]) -> io::Result<()> {
    let mut guard = live();
    let Some(set) = guard.as_mut() else {
        return Ok(());
    };
    let drop_these: Vec<RawFd> = set
        .iter()
        .copied()
        .filter(|fd| !keep.contains(fd))
        .collect();
    if drop_these.is_empty() {
        return Ok(());
    }
    let (dead, peer) = sys::fd::socketpair()?;
    drop(peer);
    for fd in drop_these {
        sys::fd::replace(dead.as_fd(), fd)?;
        set.remove(&fd);
    }
    Ok(())
}
