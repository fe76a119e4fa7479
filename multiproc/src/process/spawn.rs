//! Starting a [`Process::run_fn`](super::Process::run_fn) child without `fork` in this
//! process: by exec of this program ([`StartMethod::Spawn`]) or through the forkserver, and
//! what such a child does before `main`.
//!
//! The child gets one end of a socket pair as its standard input, and an environment
//! variable that says what it is. Before `main` (see `entry.rs`), it takes that socket (and
//! puts `/dev/null` in place of its standard input, as Python does for its children),
//! receives a [`Boot`] message, becomes the named child, receives the argument (a second
//! message, which only the function's trampoline can decode) and runs the function. The same
//! socket then carries the outcome back, exactly as for a forked child. A forkserver child
//! reads the same `Boot` message from the socket its parent handed the server.
#![forbid(unsafe_code)]

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::children::{self, ChildRecord};
use super::entry::{self, Code, ExeId};
use super::run_fn::Portable;
use super::{current, forkserver, start, Child, Run, Signal, StartMethod};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::sys;

/// The environment variable that marks a re-executed process: `spawn` for a child,
/// `forkserver` for the server.
pub(super) const BOOT_VAR: &str = "__MULTIPROC_BOOT";

/// Everything a child that does not share its parent's memory needs to run its task.
#[derive(Serialize, Deserialize)]
struct Boot {
    exe: ExeId,
    code: Code,
    name: String,
    daemon: bool,
    parent_pid: i32,
    parent_name: String,
    path: Vec<u32>,
}

/// Starts `task` with `method` (`Spawn` or `Forkserver`) and returns its handle.
pub(super) fn start<T: Run>(
    method: StartMethod,
    task: T,
    portable: Portable<T>,
    name: Option<String>,
    daemon: bool,
) -> Result<Child<T::Output>>
where
    T::Output: DeserializeOwned,
{
    if !entry::boot_ran() {
        return Err(Error::InvalidState(
            "this program's constructors did not run, so a re-executed child could not find \
             its function; call `multiproc::init()` as the first line of `main`"
                .into(),
        ));
    }
    let exe = ExeId::current()?.clone();
    let code = (portable.code)(&task)?;
    children::reap_finished();
    // Every child counts toward the default names, as with fork.
    let default_name = current::next_child_name();
    let name = name.unwrap_or(default_name);
    let (parent_name, path) = current::last_child_lineage();
    let (record, ctl) = match method {
        StartMethod::Spawn => {
            let (ctl, theirs) = sys::fd::socketpair()?;
            let pid = sys::exec::spawn_self(theirs, BOOT_VAR, "spawn")?;
            (ChildRecord::new(pid, name.clone(), daemon)?, ctl)
        }
        StartMethod::Forkserver => {
            let started = forkserver::start_child(daemon)?;
            let record = ChildRecord::served(
                started.pid,
                started.pidfd,
                started.server,
                name.clone(),
                daemon,
            );
            (record, started.ctl)
        }
        StartMethod::Fork => unreachable!("forked children start in start.rs"),
    };
    children::register(record.clone());
    let mut ctl = Connection::from(ctl);
    let sent = ctl
        .send(&Boot {
            exe,
            code,
            name,
            daemon,
            parent_pid: sys::process::getpid(),
            parent_name,
            path,
        })
        .and_then(|()| (portable.send_args)(task, &mut ctl));
    if let Err(e) = sent {
        // The child waits for its argument and would never run: end it (it is reaped like
        // any other) and say why.
        let _ = record.signal(Signal::KILL);
        return Err(e);
    }
    Ok(Child::new(record, ctl))
}

/// Before `main`: becomes the spawned child or the forkserver this process was started as;
/// returns at once in any other process.
pub(super) fn take_over_if_asked() {
    let Some(role) = std::env::var_os(BOOT_VAR) else {
        return;
    };
    // Our own children must not see it; nothing else runs yet (no other thread exists).
    std::env::remove_var(BOOT_VAR);
    // What Rust's runtime would have done before `main`, which this process never reaches.
    let _ = sys::exec::ignore_sigpipe();
    let Ok(socket) = sys::exec::take_stdin() else {
        sys::process::exit_now(1)
    };
    match role.to_str() {
        Some("spawn") => run_boot(Connection::from(socket), true),
        Some("forkserver") => forkserver::serve(socket),
        _ => {
            eprintln!("multiproc: unknown {BOOT_VAR}={role:?}");
            sys::process::exit_now(1)
        }
    }
}

/// In a new child: receives its [`Boot`] on `ctl`, becomes that child and runs its task.
/// `direct` says whether the process that asked for it is its real parent (a spawned child)
/// or not (a forkserver child, whose parent is the server).
pub(super) fn run_boot(mut ctl: Connection, direct: bool) -> ! {
    let Ok(boot) = ctl.recv::<Boot>() else {
        // The parent died or gave up before handing over the task: nothing to run.
        sys::process::exit_now(1)
    };
    if boot.daemon && direct {
        start::die_with_parent(boot.parent_pid);
    }
    current::become_started_child(
        &boot.name,
        boot.daemon,
        boot.parent_pid,
        boot.parent_name,
        boot.path,
    );
    boot.code.run(&boot.exe, ctl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::start::Outcome;
    use crate::sys::process::Exit;

    fn never(_: ()) {
        unreachable!("a refused child runs nothing")
    }

    /// A child that finds another executable file than its parent's refuses to turn the
    /// offsets into functions, and says why.
    #[test]
    fn a_child_of_another_executable_refuses() {
        let (ctl, theirs) = sys::fd::socketpair().unwrap();
        let pid = sys::exec::spawn_self(theirs, BOOT_VAR, "spawn").unwrap();
        let mut ctl = Connection::from(ctl);
        ctl.send(&Boot {
            exe: ExeId::current().unwrap().other(),
            code: Code::of(never).unwrap(),
            name: "refuser".into(),
            daemon: false,
            parent_pid: sys::process::getpid(),
            parent_name: "MainProcess".into(),
            path: vec![1],
        })
        .unwrap();
        // The argument, so that a child that did not refuse would run (and fail loudly).
        ctl.send(&()).unwrap();
        match ctl.recv::<Outcome<()>>().unwrap() {
            Outcome::Refused(why) => assert!(why.contains("different executable"), "{why}"),
            _ => panic!("the child did not refuse"),
        }
        assert_eq!(
            sys::process::wait_exit(pid, true).unwrap(),
            Some(Exit::Code(1))
        );
    }
}
