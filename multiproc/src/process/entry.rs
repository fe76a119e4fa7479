//! Finding a function again in a fresh execution of this program: the constructor that takes
//! over a re-executed child before `main`, and code identities that survive ASLR.
//!
//! A `fn(A) -> R` is sent to a child as two offsets from [`anchor`], a function of this
//! crate: the offset of the function itself and that of [`trampoline::<A, R>`], which knows
//! the types. ASLR moves the whole executable, never the distance between two of its
//! functions, so the offsets name the same code in every execution of the same file. The
//! child checks that it runs the same file ([`ExeId`]) before it turns an offset back into a
//! function, and the parent checks that both functions live in the executable that holds the
//! anchor (not in a shared library, which could load elsewhere).
//!
//! This file holds the crate's one conversion from an address to a function, and the
//! constructor (`ctor`), so it allows `unsafe`; every other file of `process/` but
//! `start.rs` forbids it.
#![allow(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::start;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::sys;

/// Set by the constructor (or [`init`](super::init)) in every process of a program that
/// links this crate: a re-executed child of this program will be taken over too.
static BOOT_RAN: AtomicBool = AtomicBool::new(false);

/// Runs before `main` (and before the test harness, or a tokio runtime, starts a thread):
/// in a process started as a Spawn child or a forkserver, becomes that and never returns;
/// elsewhere, only notes that it ran.
#[ctor::ctor(unsafe)]
fn boot_before_main() {
    boot();
}

/// The constructor's work, also reachable through [`init`](super::init).
pub(super) fn boot() {
    BOOT_RAN.store(true, Ordering::Relaxed);
    super::spawn::take_over_if_asked();
}

/// Whether a re-executed child of this program would be taken over before `main`.
pub(super) fn boot_ran() -> bool {
    BOOT_RAN.load(Ordering::Relaxed)
}

/// The fixed point the code offsets are measured from. Never inlined, so it has one address.
#[inline(never)]
fn anchor() {}

fn anchor_address() -> usize {
    anchor as fn() as usize
}

/// The offset of `addr` from the anchor, unchecked: valid only in this execution and in
/// processes forked from it (which keep every address), where [`code_at`] undoes it.
pub(crate) fn code_offset_here(addr: usize) -> usize {
    addr.wrapping_sub(anchor_address())
}

/// The address, in this execution, of the code whose offset is `offset` (from
/// [`offset_in_executable`] in any execution of this file, or [`code_offset_here`] in this one or
/// a process it was forked from). Using it as a function is the caller's `unsafe`.
pub(crate) fn code_at(offset: usize) -> usize {
    anchor_address().wrapping_add(offset)
}

/// The erased signature every [`trampoline`] has: the function's address and the child's
/// control connection, on which the argument comes next.
type Trampoline = fn(usize, Connection) -> !;

/// Receives the argument, runs `f` (found at `func`) on it, and reports like a forked
/// child.
fn trampoline<A: DeserializeOwned, R: Serialize>(func: usize, mut ctl: Connection) -> ! {
    // SAFETY: `func` was computed by `Code::of::<A, R>` from an `fn(A) -> R` of this same
    // executable file (the child checked the file's identity in `Code::run`), and the
    // offset was applied to this execution's anchor, so it is that function here.
    let f: fn(A) -> R = unsafe { sys::exec::function_at(func) };
    match ctl.recv::<A>() {
        Ok(a) => start::run_and_report(move || f(a), ctl),
        Err(Error::Codec(e)) => {
            start::refuse(ctl, format!("cannot decode the function's argument: {e}"))
        }
        // The parent gave up before sending it: nothing to run.
        Err(_) => sys::process::exit_now(1),
    }
}

/// The offset of the code at `addr` from the anchor.
///
/// # Errors
/// [`Error::InvalidArgument`] when `addr` does not lie in the executable that holds this
/// crate (a shared library may load at another distance in another execution).
pub(crate) fn offset_in_executable(addr: usize) -> Result<usize> {
    let anchor = anchor_address();
    let base = sys::exec::object_base(anchor);
    if base.is_none() || sys::exec::object_base(addr) != base {
        return Err(Error::InvalidArgument(
            "the function does not live in this program's executable (a shared library?); \
             only functions of the executable can run in a spawned or forkserver child"
                .into(),
        ));
    }
    Ok(addr.wrapping_sub(anchor))
}

/// A `fn(A) -> R` that another process of this program can call: a function given *inside*
/// a child's argument (a table of constructors, say), where [`Process::run_fn`]'s own
/// function is given beside it.
///
/// It travels as its offset from the anchor and the identity of the executable file; the
/// receiving process gets the function back only if it runs that same file.
///
/// [`Process::run_fn`]: super::Process::run_fn
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct FnRef<A, R> {
    offset: usize,
    exe: ExeId,
    #[serde(skip)]
    _type: std::marker::PhantomData<fn(A) -> R>,
}

impl<A, R> std::fmt::Debug for FnRef<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnRef")
            .field("offset", &self.offset)
            .finish()
    }
}

impl<A, R> FnRef<A, R> {
    /// The reference of `f`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `f` does not live in this program's executable.
    pub(crate) fn of(f: fn(A) -> R) -> Result<FnRef<A, R>> {
        Ok(FnRef {
            offset: offset_in_executable(f as usize)?,
            exe: ExeId::current()?.clone(),
            _type: std::marker::PhantomData,
        })
    }

    /// The function, in this process.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when this process runs another executable file than the one
    /// the reference was made in.
    pub(crate) fn get(&self) -> Result<fn(A) -> R> {
        if ExeId::current()? != &self.exe {
            return Err(Error::InvalidState(
                "a function reference from another executable file (was the program rebuilt \
                 or replaced?)"
                    .into(),
            ));
        }
        let addr = code_at(self.offset);
        // SAFETY: `offset` was computed by `FnRef::of` from an `fn(A) -> R` (the type
        // parameters are part of this value's type, and no other constructor exists; the
        // value reaches a child only over the crate's own control connection) in a process
        // running the same executable file as this one (checked just above), so the same
        // offset from this execution's anchor is that function here.
        Ok(unsafe { sys::exec::function_at::<fn(A) -> R>(addr) })
    }
}

/// A function and its trampoline, as offsets from the anchor.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Code {
    trampoline: usize,
    func: usize,
}

impl Code {
    /// The identity of `f` (with the trampoline for its types).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `f` does not live in the executable that holds this
    /// crate (a shared library may load at another distance in another execution).
    pub(super) fn of<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> Result<Code> {
        let tramp = trampoline::<A, R> as Trampoline as usize;
        Ok(Code {
            trampoline: offset_in_executable(tramp)?,
            func: offset_in_executable(f as usize)?,
        })
    }

    /// Runs the function in this (child) process and exits; refuses (tells the parent, and
    /// exits) when this process does not run the same executable file as the parent.
    pub(super) fn run(self, exe: &ExeId, ctl: Connection) -> ! {
        match ExeId::current() {
            Ok(mine) if mine == exe => {}
            Ok(_) => start::refuse(
                ctl,
                "the child runs a different executable file than its parent (was the \
                 program rebuilt or replaced?)"
                    .into(),
            ),
            Err(e) => start::refuse(ctl, format!("cannot identify the executable: {e}")),
        }
        // SAFETY: the offsets came from `Code::of` in a process running this same file
        // (checked just above), where the trampoline offset named a `Trampoline`; the same
        // offset from this execution's anchor names the same function here.
        let tramp: Trampoline = unsafe { sys::exec::function_at(code_at(self.trampoline)) };
        tramp(code_at(self.func), ctl)
    }
}

/// Which executable file a process runs: device, inode, size and modification time of
/// `/proc/self/exe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ExeId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl ExeId {
    /// Another file than this one (for the tests of the refusal).
    #[cfg(test)]
    pub(super) fn other(&self) -> ExeId {
        ExeId {
            ino: self.ino.wrapping_add(1),
            ..self.clone()
        }
    }

    /// This process's executable, looked up once.
    pub(super) fn current() -> Result<&'static ExeId> {
        static ID: OnceLock<ExeId> = OnceLock::new();
        if let Some(id) = ID.get() {
            return Ok(id);
        }
        let m = std::fs::metadata("/proc/self/exe")?;
        Ok(ID.get_or_init(|| ExeId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }))
    }
}
