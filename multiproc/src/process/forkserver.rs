//! The forkserver: one single-threaded process, started the Spawn way by the first
//! forkserver child, that forks every later one on request.
//!
//! - **Who may use it.** Its only way in is a `SOCK_SEQPACKET` socket pair made by its
//!   owner and handed over at exec: the socket has no name, so nobody else can connect,
//!   and only the owner holds the other end (forked children of the owner close their
//!   copy). Authentication by construction, no key to check.
//! - **A request** is one message: the daemon flag, with the child's control socket
//!   attached (`SCM_RIGHTS`). The server forks; the child closes the server's descriptors
//!   and reads its task from the control socket like a spawned child. The server answers
//!   with the pid and a pidfd of the child (so the owner never signals a recycled pid),
//!   and later with the child's exit status, which only the server can reap.
//! - **Death and restart.** A server that died is replaced by the next start; children it
//!   made run on, their exit status is lost (it was the server's to read) and reads as
//!   code 255, as in Python. The server exits when its owner does: it watches a pidfd of
//!   the owner and the end of its socket.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::spawn::{self, BOOT_VAR};
use super::start;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::sys;
use crate::sys::process::{Exit, Forked};

const REQUEST_START: u8 = 1;
const STARTED: u8 = 1;
const EXITED: u8 = 2;
const FAILED: u8 = 3;

/// How long the owner waits for the server's report of an exit it already saw happen.
const REPORT_WAIT: Duration = Duration::from_secs(10);

/// The owner's side of a running server.
#[derive(Debug)]
struct Server {
    pid: i32,
    sock: OwnedFd,
    generation: u64,
}

#[derive(Debug)]
struct State {
    server: Option<Server>,
    /// Servers started so far: a child remembers which one made it.
    generation: u64,
    /// Exit statuses the server reported before anyone asked: (generation, pid) -> exit.
    exited: BTreeMap<(u64, i32), Exit>,
}

static STATE: Mutex<State> = Mutex::new(State {
    server: None,
    generation: 0,
    exited: BTreeMap::new(),
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held across `fork` so the child never inherits this lock held by another thread.
pub(super) fn lock_for_fork() -> MutexGuard<'static, impl Sized> {
    state()
}

/// In a new forked child: the parent's server is not ours; close our copy of its socket.
pub(super) fn forget_in_child() {
    let mut st = state();
    st.server = None;
    st.exited.clear();
}

/// A child the server made, as the owner sees it.
pub(super) struct Started {
    pub(super) pid: i32,
    pub(super) pidfd: OwnedFd,
    pub(super) server: u64,
    /// The parent's end of the child's control socket.
    pub(super) ctl: OwnedFd,
}

/// Asks the server (started or restarted as needed) for a new child.
pub(super) fn start_child(daemon: bool) -> Result<Started> {
    let mut st = state();
    let mut retried = false;
    loop {
        if st.server.as_ref().is_some_and(|s| has_exited(s.pid)) {
            retire(&mut st, false);
        }
        if st.server.is_none() {
            st.generation += 1;
            st.server = Some(launch(st.generation)?);
        }
        // A fresh control socket for each try: a child made by a server that died before
        // answering holds the old one, and only sees it close.
        let (ctl, theirs) = sys::fd::socketpair()?;
        let State { server, exited, .. } = &mut *st;
        let Some(server) = server.as_ref() else {
            unreachable!("a server was just launched")
        };
        match request(server, theirs.as_fd(), daemon, exited) {
            Ok((pid, pidfd)) => {
                return Ok(Started {
                    pid,
                    pidfd,
                    server: server.generation,
                    ctl,
                })
            }
            Err(Error::Io(e)) if is_hangup(&e) && !retried => {
                retire(&mut st, true);
                retried = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The exit of forkserver child `pid` (made by server `generation`), or `None` while it
/// runs.
pub(super) fn exit_status(
    pid: i32,
    pidfd: BorrowedFd<'_>,
    generation: u64,
) -> Result<Option<Exit>> {
    if !sys::fd::poll_readable(&[pidfd.as_raw_fd()], Some(Duration::ZERO))?[0] {
        return Ok(None);
    }
    let mut st = state();
    loop {
        if let Some(exit) = st.exited.remove(&(generation, pid)) {
            return Ok(Some(exit));
        }
        let State { server, exited, .. } = &mut *st;
        let Some(server) = server.as_ref().filter(|s| s.generation == generation) else {
            // Its server died: the status was the server's to read, and is lost.
            return Ok(Some(Exit::Code(255)));
        };
        if !sys::fd::poll_readable(&[server.sock.as_raw_fd()], Some(REPORT_WAIT))?[0] {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the forkserver did not report the exit of child {pid}"),
            )));
        }
        match receive(server.sock.as_fd()) {
            Ok(Reply::Exited(p, exit)) => {
                exited.insert((generation, p), exit);
            }
            Ok(_) => {}
            Err(e) if is_hangup(&e) => retire(&mut st, true),
            Err(e) => return Err(e.into()),
        }
    }
}

fn has_exited(pid: i32) -> bool {
    // An error means it is not our child any more (reaped elsewhere): as good as gone.
    !matches!(sys::process::wait_exit(pid, false), Ok(None))
}

fn is_hangup(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
    )
}

fn launch(generation: u64) -> Result<Server> {
    let (sock, theirs) = sys::fd::seqpacket_pair()?;
    let pid = sys::exec::spawn_self(theirs, BOOT_VAR, "forkserver")?;
    Ok(Server {
        pid,
        sock,
        generation,
    })
}

/// Forgets a server that died or stopped answering: keeps the exits it reported before it
/// went, and ends and reaps it (`reap`: it is not reaped yet).
fn retire(st: &mut State, reap: bool) {
    let Some(server) = st.server.take() else {
        return;
    };
    if reap {
        // Still our child (alive or a zombie), so the pid cannot have been reused.
        let _ = sys::signal::kill(server.pid, super::Signal::KILL.as_raw());
    }
    while let Ok(true) = sys::fd::poll_readable(&[server.sock.as_raw_fd()], Some(Duration::ZERO))
        .map(|ready| ready[0])
    {
        match receive(server.sock.as_fd()) {
            Ok(Reply::Exited(pid, exit)) => {
                st.exited.insert((server.generation, pid), exit);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(server.sock);
    if reap {
        let _ = sys::process::wait_exit(server.pid, true);
    }
}

/// What the server says.
enum Reply {
    Started(i32, OwnedFd),
    Exited(i32, Exit),
    Failed(i32),
}

fn receive(sock: BorrowedFd<'_>) -> io::Result<Reply> {
    let (buf, mut fds) = receive_raw(sock)?;
    let int = |at: usize| i32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    match (buf.len(), buf.first().copied().unwrap_or(0), fds.pop()) {
        (0, _, _) => Err(io::ErrorKind::UnexpectedEof.into()),
        (5, STARTED, Some(pidfd)) => Ok(Reply::Started(int(1), pidfd)),
        (10, EXITED, None) => {
            let exit = if buf[5] == 0 {
                Exit::Code(int(6))
            } else {
                Exit::Signal(int(6))
            };
            Ok(Reply::Exited(int(1), exit))
        }
        (5, FAILED, None) => Ok(Reply::Failed(int(1))),
        _ => Err(io::Error::other("malformed message from the forkserver")),
    }
}

/// One message of the server protocol (each fits in 16 bytes) and the descriptors with it.
fn receive_raw(sock: BorrowedFd<'_>) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = Vec::with_capacity(16);
    let got = sys::scm::recv_with_fds(sock, &mut buf, 16)?;
    buf.truncate(got.len);
    Ok((buf, got.fds?))
}

/// Sends one request and waits for its answer, keeping the exits reported meanwhile.
fn request(
    server: &Server,
    ctl: BorrowedFd<'_>,
    daemon: bool,
    exited: &mut BTreeMap<(u64, i32), Exit>,
) -> Result<(i32, OwnedFd)> {
    sys::scm::send_with_fds(
        server.sock.as_fd(),
        &[&[REQUEST_START, daemon as u8]],
        &[ctl],
    )?;
    loop {
        match receive(server.sock.as_fd())? {
            Reply::Started(pid, pidfd) => return Ok((pid, pidfd)),
            Reply::Exited(pid, exit) => {
                exited.insert((server.generation, pid), exit);
            }
            Reply::Failed(0) => {
                return Err(Error::Io(io::Error::other("the forkserver could not fork")))
            }
            Reply::Failed(errno) => return Err(io::Error::from_raw_os_error(errno).into()),
        }
    }
}

/// The server's life (before `main`, in a process started by [`launch`]): fork a child
/// per request, report each child's exit, and leave when the owner is gone.
pub(super) fn serve(sock: OwnedFd) -> ! {
    let me = sys::process::getpid();
    // Our parent is the owner. If it already died, its pidfd is the reaper's: the socket's
    // end of file still tells us to go.
    let Ok(owner) = sys::process::pidfd_open(sys::process::getppid()) else {
        sys::process::exit_now(0)
    };
    let mut kids: Vec<(i32, OwnedFd)> = Vec::new();
    loop {
        let mut fds = vec![sock.as_raw_fd(), owner.as_raw_fd()];
        fds.extend(kids.iter().map(|(_, fd)| fd.as_raw_fd()));
        let Ok(ready) = sys::fd::poll_readable(&fds, None) else {
            sys::process::exit_now(1)
        };
        if ready[1] {
            sys::process::exit_now(0);
        }
        let mut i = 0;
        kids.retain(|(pid, _)| {
            i += 1;
            if !ready[1 + i] {
                return true;
            }
            match sys::process::wait_exit(*pid, false) {
                Ok(None) => true,
                Ok(Some(exit)) => {
                    let (kind, value) = match exit {
                        Exit::Code(c) => (0u8, c),
                        Exit::Signal(s) => (1u8, s),
                    };
                    let mut msg = [EXITED, 0, 0, 0, 0, kind, 0, 0, 0, 0];
                    msg[1..5].copy_from_slice(&pid.to_le_bytes());
                    msg[6..10].copy_from_slice(&value.to_le_bytes());
                    reply(&sock, &msg, None);
                    false
                }
                Err(_) => false,
            }
        });
        if ready[0] {
            match receive_raw(sock.as_fd()) {
                Ok((buf, _)) if buf.is_empty() => sys::process::exit_now(0),
                Err(_) => sys::process::exit_now(0),
                Ok((buf, mut got)) if buf == [REQUEST_START, 0] || buf == [REQUEST_START, 1] => {
                    let Some(ctl) = got.pop().filter(|_| got.is_empty()) else {
                        continue;
                    };
                    let daemon = buf[1] != 0;
                    match sys::process::fork_single_threaded() {
                        Ok(Ok(Forked::Child)) => {
                            // The child keeps only its control socket.
                            drop(sock);
                            drop(owner);
                            drop(kids);
                            if daemon {
                                start::die_with_parent(me);
                            }
                            spawn::run_boot(Connection::from(ctl), false)
                        }
                        Ok(Ok(Forked::Parent(pid))) => match sys::process::pidfd_open(pid) {
                            Ok(pidfd) => {
                                let mut msg = [STARTED, 0, 0, 0, 0];
                                msg[1..5].copy_from_slice(&pid.to_le_bytes());
                                reply(&sock, &msg, Some(pidfd.as_fd()));
                                kids.push((pid, pidfd));
                            }
                            Err(e) => failed(&sock, &e),
                        },
                        // The server runs no thread but this one, so fork is never refused.
                        Ok(Err(_threads)) => failed(&sock, &io::Error::other("threads")),
                        Err(e) => failed(&sock, &e),
                    }
                }
                // A request this server does not understand: ignore it.
                Ok(_) => {}
            }
        }
    }
}

fn reply(sock: &OwnedFd, msg: &[u8], fd: Option<BorrowedFd<'_>>) {
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    if sys::scm::send_with_fds(sock.as_fd(), &[msg], &fds).is_err() {
        // The owner is gone.
        sys::process::exit_now(0);
    }
}

fn failed(sock: &OwnedFd, e: &io::Error) {
    // 0: no errno to give (the owner says "could not fork").
    let errno = e.raw_os_error().unwrap_or(0);
    let mut msg = [FAILED, 0, 0, 0, 0];
    msg[1..5].copy_from_slice(&errno.to_le_bytes());
    reply(sock, &msg, None);
}
