//! Who holds a process-shared lock, and whether that holder is still alive.
//!
//! An owner is named by a [`Token`]: its kernel id (a pid for a process, a tid for a
//! thread; Linux draws both from one number space) and its start time in clock ticks since
//! boot, from field 22 of [`proc_pid_stat(5)`]. Pids are recycled; the pair is not, so a
//! waiter never mistakes a newcomer that got a dead owner's pid for that owner.
//!
//! Both tokens are cached: the process's in a static that a [`pthread_atfork(3)`] child
//! handler clears (a forked child is a new owner), the thread's in a thread-local checked
//! against the process's. Asking costs one atomic load (and a thread-local access).
//!
//! [`proc_pid_stat(5)`]: https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
//! [`pthread_atfork(3)`]: https://man7.org/linux/man-pages/man3/pthread_atfork.3.html

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Bits of a token that hold the start time; the id sits above them.
const START_BITS: u32 = 40;

/// The largest id a token (and a lock word) can carry. Linux caps pids at 2^22.
pub(crate) const MAX_ID: u32 = (1 << 30) - 1;

/// An owner's identity: `id << 40 | start_time`. Never 0 for a real owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) u64);

impl Token {
    /// The pid or tid.
    #[inline]
    pub(crate) fn id(self) -> u32 {
        (self.0 >> START_BITS) as u32
    }

    /// A token that names `id` without a start time (matches any owner with that id).
    pub(crate) fn from_id(id: u32) -> Token {
        Token::new(id, 0)
    }

    fn new(id: u32, start: u64) -> Token {
        Token(u64::from(id) << START_BITS | (start & ((1 << START_BITS) - 1)))
    }

    fn start(self) -> u64 {
        self.0 & ((1 << START_BITS) - 1)
    }
}

/// This process's token, 0 until first computed and again in a freshly forked child.
static PROCESS: AtomicU64 = AtomicU64::new(0);
static REGISTER_FORK_HANDLER: Once = Once::new();

extern "C" fn forget_process_after_fork() {
    // An atomic store is async-signal-safe, as a pthread_atfork child handler must be.
    PROCESS.store(0, Ordering::Relaxed);
}

/// The calling process's token.
#[inline]
pub(crate) fn process() -> Token {
    let cached = PROCESS.load(Ordering::Relaxed);
    if cached != 0 {
        return Token(cached);
    }
    process_slow()
}

#[cold]
fn process_slow() -> Token {
    REGISTER_FORK_HANDLER.call_once(|| {
        // SAFETY: registers a handler that only does an atomic store; no prepare/parent
        // handlers. Failure (ENOMEM) would only leave the cache stale after a fork, so it
        // is checked: without the handler we cannot cache at all.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_process_after_fork)) };
        assert_eq!(rc, 0, "pthread_atfork failed");
    });
    // SAFETY: getpid(2) always succeeds.
    let pid = unsafe { libc::getpid() } as u32;
    let start = stat(&format!("/proc/{pid}/stat")).map_or(0, |s| s.start);
    let token = Token::new(pid, start);
    PROCESS.store(token.0, Ordering::Relaxed);
    token
}

thread_local! {
    /// (process token it was computed under, thread token).
    static THREAD: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The calling thread's token.
#[inline]
pub(crate) fn thread() -> Token {
    let process = process().0;
    let (under, token) = THREAD.with(Cell::get);
    if under == process {
        return Token(token);
    }
    thread_slow(process)
}

#[cold]
fn thread_slow(process: u64) -> Token {
    // SAFETY: gettid(2) always succeeds.
    let tid = unsafe { libc::gettid() } as u32;
    let start = stat("/proc/thread-self/stat").map_or(0, |s| s.start);
    let token = Token::new(tid, start);
    THREAD.with(|c| c.set((process, token.0)));
    token
}

/// Whether the owner `token` names still runs. `false` only when that is certain: the id
/// is gone, is a zombie, or now belongs to a process that started at another time.
pub(crate) fn is_alive(token: Token) -> bool {
    let id = token.id();
    if id == 0 || id > MAX_ID {
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
    let rc = unsafe { libc::kill(id as libc::pid_t, 0) };
    if rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    match stat(&format!("/proc/{id}/stat")) {
        Ok(s) => !(s.dead || (token.start() != 0 && s.start != token.start())),
        // Hidden by `hidepid` or exiting right now: kill(2) said it exists, check again later.
        Err(_) => true,
    }
}

/// The fields of `/proc/<id>/stat` a liveness check needs.
struct Stat {
    dead: bool,
    start: u64,
}

fn stat(path: &str) -> io::Result<Stat> {
    let text = std::fs::read_to_string(path)?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad stat"))
}

/// Parses `pid (comm) state ppid ... starttime ...`; comm may hold spaces and parentheses,
/// so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    // State is field 3 and starttime field 22: 18 fields lie between them.
    let start = fields.nth(18)?.parse().ok()?;
    Some(Stat {
        dead: matches!(state, "Z" | "X" | "x"),
        start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_comm() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 \
                    1000 10 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert!(!s.dead);
        assert_eq!(s.start, 123456);
        assert!(
            parse_stat("7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99")
                .unwrap()
                .dead
        );
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn this_process_and_thread_are_alive_and_distinct_threads_differ() {
        let p = process();
        assert_eq!(p.id() as i32, std::process::id() as i32);
        assert!(is_alive(p));
        assert!(is_alive(thread()));
        let other = std::thread::spawn(thread).join().unwrap();
        assert_ne!(other, thread());
    }

    #[test]
    fn a_recycled_id_with_another_start_time_is_dead() {
        let p = process();
        assert!(!is_alive(Token::new(p.id(), p.start() + 1)));
    }

    #[test]
    fn a_zombie_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let token = Token::from_id(child.id());
        let t = std::time::Instant::now();
        while is_alive(token) {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "child never exited"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        child.wait().unwrap();
    }

    #[test]
    fn a_reaped_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let token = Token::new(child.id(), 0);
        child.wait().unwrap();
        assert!(!is_alive(token));
    }
}
