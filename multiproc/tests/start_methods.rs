//! Start methods from ordinary `#[test]`s: the default libtest harness runs the tests on
//! threads of its own, so every child here comes from a threaded process (W6). Contract
//! items: CX-01, CX-02, DD-07, DD-08, PR-22, and the PR items of a child's life under
//! Spawn and Forkserver.
//!
//! Tests run in parallel in one process and share its forkserver. A scenario that needs a
//! quiet process of its own (counting descriptors, killing the forkserver) runs inside a
//! spawned child, which is such a process, and reports back what it saw.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multiproc::process::send_signal;
use multiproc::{
    current_process, get_context, get_start_method, parent_process, set_start_method, Child, Error,
    Pid, Process, Signal, StartMethod,
};

const METHODS: [StartMethod; 2] = [StartMethod::Spawn, StartMethod::Forkserver];

/// A bound for a child that should end at once, with room for a loaded 2-core machine.
const PROMPTLY: Duration = Duration::from_secs(30);

fn double(x: u64) -> u64 {
    x * 2
}

fn describe(tag: String) -> (String, String, Pid, Option<String>, Option<Pid>) {
    let me = current_process();
    let parent = parent_process();
    (
        tag,
        me.name().to_string(),
        me.pid(),
        parent.as_ref().map(|p| p.name().to_string()),
        parent.as_ref().map(|p| p.pid()),
    )
}

fn panic_with(msg: String) -> u8 {
    panic!("{msg}")
}

fn exit_with(code: i32) {
    std::process::exit(code)
}

fn raise(sig: i32) {
    let sig = Signal::from_raw(sig).expect("a signal");
    send_signal(Pid::from(std::process::id()), sig).expect("signal myself");
    std::thread::sleep(Duration::from_secs(30));
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Whether `join_timeout` said "still running".
fn still_running<R: std::fmt::Debug>(r: multiproc::Result<R>) -> bool {
    match r {
        Err(Error::Timeout) => true,
        other => panic!("expected a running child, got {other:?}"),
    }
}

fn join_promptly<R: serde::de::DeserializeOwned + std::fmt::Debug>(
    child: &mut Child<R>,
) -> multiproc::Result<R> {
    match child.join_timeout(PROMPTLY) {
        Err(Error::Timeout) => {
            let _ = child.kill();
            panic!("child {} did not end in {PROMPTLY:?}", child.pid())
        }
        other => other,
    }
}

#[test]
fn w6_run_fn_from_a_threaded_test_needs_no_setup() {
    // No method chosen: this process has threads (libtest's), so the forkserver runs it.
    let mut child = Process::run_fn(double, 21).start().unwrap();
    assert_eq!(join_promptly(&mut child).unwrap(), 42);
    assert_eq!(child.exit_code(), Some(0));
}

#[test]
fn return_values_names_and_parents_under_each_method() {
    for m in METHODS {
        let mut child = Process::run_fn(describe, format!("{m:?}"))
            .name("describer")
            .start_method(m)
            .start()
            .unwrap();
        let pid = child.pid();
        let (tag, name, child_pid, parent_name, parent_pid) = join_promptly(&mut child).unwrap();
        assert_eq!(tag, format!("{m:?}"));
        assert_eq!(name, "describer");
        assert_eq!(child_pid, pid, "{m:?}");
        assert_eq!(parent_name.as_deref(), Some("MainProcess"), "{m:?}");
        assert_eq!(parent_pid, Some(Pid::from(std::process::id())), "{m:?}");
        assert_eq!(child.exit_code(), Some(0));
    }
}

#[test]
fn pr_13_panics_arrive_with_message_and_location() {
    for m in METHODS {
        let mut child = Process::run_fn(panic_with, format!("boom under {m:?}"))
            .start_method(m)
            .start()
            .unwrap();
        match join_promptly(&mut child) {
            Err(Error::Panicked { message, location }) => {
                assert_eq!(message, format!("boom under {m:?}"));
                assert!(location.unwrap_or_default().contains("start_methods.rs"));
            }
            other => panic!("{m:?}: {other:?}"),
        }
        assert_eq!(child.exit_code(), Some(1));
    }
}

#[test]
fn pr_14_exit_codes_and_signals() {
    for m in METHODS {
        let mut child = Process::run_fn(exit_with, 7)
            .start_method(m)
            .start()
            .unwrap();
        assert!(
            matches!(join_promptly(&mut child), Err(Error::Exited(7))),
            "{m:?}"
        );
        assert_eq!(child.exit_code(), Some(7));

        let usr1 = Signal::USR1.as_raw();
        let mut child = Process::run_fn(raise, usr1)
            .start_method(m)
            .start()
            .unwrap();
        match join_promptly(&mut child) {
            Err(Error::Signaled(s)) => assert_eq!(s, Signal::USR1, "{m:?}"),
            other => panic!("{m:?}: {other:?}"),
        }
        assert_eq!(child.exit_code(), Some(-usr1));
    }
}

#[test]
fn pr_10_11_join_timeout_terminate_and_kill() {
    for m in METHODS {
        let mut child = Process::run_fn(sleep_ms, 60_000)
            .start_method(m)
            .start()
            .unwrap();
        let t = Instant::now();
        assert!(still_running(
            child.join_timeout(Duration::from_millis(100))
        ));
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert!(child.is_alive());
        assert_eq!(child.exit_code(), None);
        child.terminate().unwrap();
        match join_promptly(&mut child) {
            Err(Error::Signaled(s)) => assert_eq!(s, Signal::TERM, "{m:?}"),
            other => panic!("{m:?}: {other:?}"),
        }
        assert_eq!(child.exit_code(), Some(-15));
        assert!(!child.is_alive());

        let mut child = Process::run_fn(sleep_ms, 60_000)
            .start_method(m)
            .start()
            .unwrap();
        child.kill().unwrap();
        assert!(matches!(
            join_promptly(&mut child),
            Err(Error::Signaled(Signal::KILL))
        ));
        assert_eq!(child.exit_code(), Some(-9));
        // Signalling a child that ended is not an error.
        child.terminate().unwrap();
    }
}

/// A middle process (started by `outer`) that starts one child by `inner` with `daemon`,
/// writes the child's pid to `path` and waits to be killed.
#[derive(serde::Serialize, serde::Deserialize)]
struct Middle {
    inner: StartMethod,
    daemon: bool,
    path: String,
}

fn middle(m: Middle) {
    /// A daemon sleeps (only its death signal ends it); an orphan ends by itself once it
    /// sees its parent die.
    fn grandchild(daemon: bool) {
        if daemon {
            std::thread::sleep(Duration::from_secs(60));
        } else {
            parent_process()
                .expect("a parent")
                .wait()
                .expect("wait for the parent");
        }
    }
    let child = Process::run_fn(grandchild, m.daemon)
        .daemon(m.daemon)
        .start_method(m.inner)
        .start()
        .expect("start the grandchild");
    std::fs::write(&m.path, child.pid().to_string()).expect("write the pid");
    std::thread::sleep(Duration::from_secs(60));
}

/// Runs `middle` under `outer`, SIGKILLs it once it has started its child, and returns the
/// child's pid.
fn grandchild_of_killed_parent(outer: StartMethod, inner: StartMethod, daemon: bool) -> u32 {
    let dir = std::env::temp_dir().join(format!(
        "mp-middle-{}-{outer}-{inner}-{daemon}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("pid");
    let mut parent = Process::run_fn(
        middle,
        Middle {
            inner,
            daemon,
            path: path.to_string_lossy().to_string(),
        },
    )
    .start_method(outer)
    .start()
    .unwrap();
    let mut text = String::new();
    let wrote = eventually(PROMPTLY, || {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        !text.is_empty()
    });
    let _ = std::fs::remove_dir_all(&dir);
    parent.kill().unwrap();
    assert!(matches!(
        join_promptly(&mut parent),
        Err(Error::Signaled(Signal::KILL))
    ));
    assert!(
        wrote,
        "{outer}/{inner}: the middle process never started its child"
    );
    text.trim().parse().unwrap()
}

#[test]
fn pr_29_daemons_die_with_a_sigkilled_parent_under_each_method() {
    for outer in METHODS {
        for inner in [
            StartMethod::Fork,
            StartMethod::Spawn,
            StartMethod::Forkserver,
        ] {
            let daemon = grandchild_of_killed_parent(outer, inner, true);
            assert!(
                eventually(PROMPTLY, || !running(daemon)),
                "{outer}/{inner}: daemon {daemon} outlived its parent"
            );
        }
    }
}

#[test]
fn pr_27_daemon_may_not_start_children() {
    fn nested(_: ()) -> String {
        match Process::run_fn(double, 1).start() {
            Err(e) => e.to_string(),
            Ok(_) => "started".into(),
        }
    }
    for m in METHODS {
        let mut child = Process::run_fn(nested, ())
            .daemon(true)
            .start_method(m)
            .start()
            .unwrap();
        let msg = join_promptly(&mut child).unwrap();
        assert!(msg.contains("daemonic"), "{m:?}: {msg}");
    }
}

#[test]
fn pr_03_dd_04_child_sees_its_parent_die() {
    for outer in METHODS {
        for inner in [
            StartMethod::Fork,
            StartMethod::Spawn,
            StartMethod::Forkserver,
        ] {
            // The orphan ends by itself once `parent_process().wait()` sees the death.
            let orphan = grandchild_of_killed_parent(outer, inner, false);
            assert!(
                eventually(PROMPTLY, || !running(orphan)),
                "{outer}/{inner}: the orphan {orphan} never saw its parent die"
            );
        }
    }
}

#[test]
fn closures_from_a_threaded_process_point_to_run_fn() {
    let data = String::from("captured");
    let err = Process::new(move || data.len()).start().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidState(_)), "{msg}");
    assert!(msg.contains("Process::run_fn(f, args)"), "{msg}");

    for m in METHODS {
        let err = Process::new(|| 1).start_method(m).start().unwrap_err();
        assert!(err.to_string().contains("run_fn"), "{m:?}: {err}");
    }
}

#[test]
fn cx_01_02_contexts_and_the_default() {
    // The default is process-wide; no other test of this file changes it.
    assert_eq!(get_start_method(), None);
    for m in METHODS {
        let ctx = get_context(m);
        assert_eq!(ctx.start_method(), m);
        let mut child = ctx.run_fn(double, 4).start().unwrap();
        assert_eq!(join_promptly(&mut child).unwrap(), 8);
    }
    // A Fork context refuses to fork a threaded process, with the same clear error.
    let err = get_context(StartMethod::Fork)
        .run_fn(double, 1)
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("threads"), "{err}");

    fn pinned(m: StartMethod) -> (Option<StartMethod>, u64) {
        set_start_method(Some(m));
        let got = get_start_method();
        // This process has one thread, so unpinned it would fork.
        let mut child = Process::run_fn(double, 50).start().expect("start");
        (got, child.join().expect("join"))
    }
    for m in METHODS {
        let mut child = Process::run_fn(pinned, m).start_method(m).start().unwrap();
        assert_eq!(join_promptly(&mut child).unwrap(), (Some(m), 100));
    }
}

/// CX-02: every method is listed, spawn among them, and the first (the default of a
/// threaded process like this one) is never fork; names are Python's, both ways. The
/// automatic choice here is that first method: a forkserver child's real parent is the
/// server, not this process.
#[test]
fn cx_02_every_method_listed_the_threaded_default_first_never_fork() {
    assert!(StartMethod::ALL.contains(&StartMethod::Spawn));
    assert_ne!(StartMethod::ALL[0], StartMethod::Fork);
    for m in StartMethod::ALL {
        assert_eq!(m.to_string().parse::<StartMethod>().unwrap(), m);
    }
    assert_eq!(
        StartMethod::ALL.map(|m| m.name()),
        ["forkserver", "spawn", "fork"]
    );
    fn real_parent(_: ()) -> Pid {
        Pid::from(std::os::unix::process::parent_id())
    }
    assert_eq!(get_start_method(), None, "no test of this file pins one");
    let mut child = Process::run_fn(real_parent, ()).start().unwrap();
    let real = join_promptly(&mut child).unwrap();
    assert_eq!(StartMethod::ALL[0], StartMethod::Forkserver);
    assert_ne!(
        real,
        current_process().pid(),
        "a threaded process's run_fn child comes from the forkserver"
    );
}

/// CX-03 differs on purpose: a lock made here, in a process that forks, reaches spawn and
/// forkserver children as an argument and is the same lock there (Python refuses a
/// fork-context lock in such children). The child sees the parent's hold, and the parent
/// sees the child's.
#[test]
fn cx_03_a_lock_made_before_reaches_spawn_and_forkserver_children() {
    fn held_elsewhere(lock: multiproc::Lock) -> bool {
        matches!(lock.try_lock(), Err(multiproc::LockError::WouldBlock))
    }
    fn hold_until_told((lock, mut ctl): (multiproc::Lock, multiproc::Connection)) {
        let guard = lock.lock().unwrap();
        ctl.send(&"holding").unwrap();
        let _: String = ctl.recv().unwrap();
        drop(guard);
    }
    for m in METHODS {
        let lock = multiproc::Lock::new().unwrap();
        let guard = lock.lock().unwrap();
        let mut probe = Process::run_fn(held_elsewhere, lock.clone())
            .start_method(m)
            .start()
            .unwrap();
        assert!(
            join_promptly(&mut probe).unwrap(),
            "{m:?}: the child saw the lock free"
        );
        drop(guard);

        let (mut ctl, theirs) = multiproc::pipe().unwrap();
        let mut holder = Process::run_fn(hold_until_told, (lock.clone(), theirs))
            .start_method(m)
            .start()
            .unwrap();
        assert_eq!(ctl.recv::<String>().unwrap(), "holding");
        assert!(lock.is_locked(), "{m:?}");
        assert_eq!(lock.owner_pid(), Some(holder.pid()), "{m:?}");
        ctl.send(&"release").unwrap();
        join_promptly(&mut holder).unwrap();
        assert!(!lock.is_locked(), "{m:?}");
    }
}

/// CX-04: a spawned child is taken over before `main`, so this test binary's `main` (the
/// libtest harness, which starts threads and would run every test again) never runs in it:
/// the child has one thread, and the variable that marked it is gone.
#[test]
fn cx_04_a_spawned_child_never_runs_main() {
    fn inside(_: ()) -> (usize, bool) {
        let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
        (threads, std::env::var_os("__MULTIPROC_BOOT").is_some())
    }
    let mut child = Process::run_fn(inside, ())
        .start_method(StartMethod::Spawn)
        .start()
        .unwrap();
    assert_eq!(join_promptly(&mut child).unwrap(), (1, false));
}

#[test]
fn large_arguments_and_results_round_trip() {
    fn reverse(v: Vec<u8>) -> Vec<u8> {
        v.into_iter().rev().collect()
    }
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected: Vec<u8> = data.iter().rev().copied().collect();
    for m in METHODS {
        let mut child = Process::run_fn(reverse, data.clone())
            .start_method(m)
            .start()
            .unwrap();
        assert_eq!(join_promptly(&mut child).unwrap(), expected, "{m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_fn_from_a_tokio_runtime() {
    let handles: Vec<_> = (0..4u64)
        .map(|i| {
            tokio::task::spawn_blocking(move || {
                let mut child = Process::run_fn(double, i).start().unwrap();
                join_promptly(&mut child).unwrap()
            })
        })
        .collect();
    let mut got = Vec::new();
    for h in handles {
        got.push(h.await.unwrap());
    }
    assert_eq!(got, vec![0, 2, 4, 6]);
}

// ---- scenarios that run in a quiet process of their own -------------------------------

/// Runs `scenario(arg)` in a spawned child (a process of its own, with no other test
/// running in it) and returns what it returned.
fn isolated<A, R>(scenario: fn(A) -> R, arg: A, limit: Duration) -> R
where
    A: serde::Serialize + serde::de::DeserializeOwned,
    R: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut child = Process::run_fn(scenario, arg)
        .start_method(StartMethod::Spawn)
        .start()
        .unwrap();
    match child.join_timeout(limit) {
        Ok(v) => v,
        Err(Error::Timeout) => {
            let _ = child.kill();
            panic!("the scenario did not end within {limit:?}")
        }
        Err(e) => panic!("the scenario failed: {e}"),
    }
}

/// The pids of this process's own children that are forkservers.
fn my_forkservers() -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if parent_of(pid) != Some(me) {
            continue;
        }
        // The environment of its exec still shows what it was started as.
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env
            .split(|&b| b == 0)
            .any(|var| var == b"__MULTIPROC_BOOT=forkserver")
        {
            found.push(pid);
        }
    }
    found
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit(')').next()?;
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Whether `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().map(String::as_str) != Some("Z"))
}

/// Children of this process that are zombies.
fn my_zombies() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| {
            stat_fields(pid).is_some_and(|f| {
                f.first().map(String::as_str) == Some("Z") && f.get(1) == Some(&me.to_string())
            })
        })
        .collect()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

#[test]
fn dd_07_a_killed_forkserver_is_replaced_and_its_child_finishes() {
    fn scenario(_: ()) -> (usize, u64, Option<i32>, u64, usize) {
        // One child runs while its server is killed.
        let mut first = Process::run_fn(sleep_ms, 300)
            .start_method(StartMethod::Forkserver)
            .start()
            .expect("first start");
        let servers = my_forkservers();
        for &pid in &servers {
            send_signal(Pid::from(pid), Signal::KILL).expect("kill the server");
        }
        first.join().expect("the in-flight child finishes");
        // Its status died with the server: 255, as in Python.
        let code = first.exit_code();
        // The next start launches a new server, transparently.
        let mut next = Process::run_fn(double, 21)
            .start_method(StartMethod::Forkserver)
            .start()
            .expect("start after the kill");
        let value = next.join().expect("join after the kill");
        let mut third = Process::run_fn(double, 50)
            .start_method(StartMethod::Forkserver)
            .start()
            .expect("third start");
        let third = third.join().expect("third join");
        (servers.len(), value, code, third, my_zombies().len())
    }
    let (killed, value, code, third, zombies) = isolated(scenario, (), PROMPTLY);
    assert_eq!(killed, 1, "one forkserver to kill");
    assert_eq!(value, 42);
    assert!(matches!(code, Some(0) | Some(255)), "{code:?}");
    assert_eq!(third, 100);
    assert_eq!(zombies, 0, "the dead server was reaped");
}

#[test]
fn dd_08_the_forkserver_has_no_named_or_listening_socket() {
    fn scenario(_: ()) -> Vec<String> {
        let mut child = Process::run_fn(double, 1)
            .start_method(StartMethod::Forkserver)
            .start()
            .expect("start");
        child.join().expect("join");
        let server = my_forkservers()[0];
        let unix = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
        let mut problems = Vec::new();
        for fd in std::fs::read_dir(format!("/proc/{server}/fd"))
            .unwrap()
            .flatten()
        {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            let target = target.to_string_lossy().to_string();
            let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            else {
                continue;
            };
            // Num RefCount Protocol Flags Type St Inode [Path]
            let line = unix
                .lines()
                .find(|l| l.split_whitespace().nth(6) == Some(inode))
                .unwrap_or_default()
                .to_string();
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3).is_some_and(|f| *f == "00010000");
            if fields.len() > 7 || listening {
                problems.push(line);
            }
        }
        problems
    }
    let problems = isolated(scenario, (), PROMPTLY);
    assert!(
        problems.is_empty(),
        "named or listening sockets: {problems:?}"
    );
}

#[test]
fn the_forkserver_is_gone_when_its_owner_is_gone() {
    fn owner(_: ()) -> u32 {
        let mut child = Process::run_fn(double, 1)
            .start_method(StartMethod::Forkserver)
            .start()
            .expect("start");
        child.join().expect("join");
        my_forkservers()[0]
    }
    // The owner returns (and exits with `_exit`, no cleanup of its own).
    let server = isolated(owner, (), PROMPTLY);
    assert!(
        eventually(PROMPTLY, || !running(server)),
        "forkserver {server} outlived its owner"
    );

    // Killed: the server sees its owner's pidfd and leaves too. The owner tells us the
    // server's pid through a file, since it never returns.
    let dir = std::env::temp_dir().join(format!("mp-owner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    fn killed_owner_to(path: String) {
        let mut child = Process::run_fn(double, 1)
            .start_method(StartMethod::Forkserver)
            .start()
            .expect("start");
        child.join().expect("join");
        std::fs::write(&path, my_forkservers()[0].to_string()).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    }
    let path = dir.join("server");
    let mut owner = Process::run_fn(killed_owner_to, path.to_string_lossy().to_string())
        .start_method(StartMethod::Spawn)
        .start()
        .unwrap();
    let server: u32 = {
        assert!(
            eventually(PROMPTLY, || path.exists()),
            "the owner never wrote"
        );
        let mut text = String::new();
        assert!(eventually(PROMPTLY, || {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            !text.is_empty()
        }));
        text.trim().parse().unwrap()
    };
    let _ = std::fs::remove_dir_all(&dir);
    owner.kill().unwrap();
    let _ = owner.join_timeout(PROMPTLY);
    assert!(
        eventually(PROMPTLY, || !running(server)),
        "forkserver {server} outlived its killed owner"
    );
}

#[test]
fn pr_22_a_child_gets_no_descriptor_but_its_own() {
    fn fd_targets(_: ()) -> Vec<String> {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|t| t.to_string_lossy().to_string())
            .collect()
    }
    // Sockets of the parent that a child must not get.
    let (a, b) = multiproc::pipe().unwrap();
    let theirs: Vec<String> = [a.as_raw_fd(), b.as_raw_fd()]
        .iter()
        .map(|fd| {
            let t = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
            t.to_string_lossy().to_string()
        })
        .collect();
    for m in METHODS {
        let mut child = Process::run_fn(fd_targets, ())
            .start_method(m)
            .start()
            .unwrap();
        let fds = join_promptly(&mut child).unwrap();
        assert!(!fds.iter().any(|t| theirs.contains(t)), "{m:?}: {fds:?}");
        // Its one socket is its control connection.
        let sockets = fds.iter().filter(|t| t.starts_with("socket:")).count();
        assert_eq!(sockets, 1, "{m:?}: {fds:?}");
    }
}

/// 8 threads that allocate, print and take locks while children start.
fn busy_threads(stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let lock = Arc::new(Mutex::new(Vec::<u64>::new()));
    (0..8)
        .map(|i| {
            let stop = stop.clone();
            let lock = lock.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let v: Vec<u64> = (0..256).map(|k| k * i).collect();
                    let _ = write!(std::io::stdout().lock(), "");
                    let _ = write!(std::io::stderr().lock(), "");
                    let mut g = lock.lock().unwrap();
                    g.push(v.iter().sum());
                    if g.len() > 1024 {
                        g.clear();
                    }
                    drop(g);
                    n += 1;
                    if n % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect()
}

#[test]
fn w6_a_thousand_children_per_method_beside_eight_busy_threads() {
    fn scenario(m: StartMethod) -> (u64, usize, usize, Vec<u32>, f64) {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = busy_threads(stop.clone());
        // Warm up: the forkserver (started once) keeps its socket open.
        Process::run_fn(double, 0)
            .start_method(m)
            .start()
            .and_then(|mut c| c.join())
            .expect("warm-up");
        let before = open_fds();
        let t = Instant::now();
        let mut sum = 0;
        for i in 0..1000u64 {
            let mut child = Process::run_fn(double, i)
                .start_method(m)
                .start()
                .expect("start");
            sum += child.join().expect("join");
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / 1000.0;
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("busy thread");
        }
        let after = open_fds();
        (sum, before, after, my_zombies(), ms)
    }
    for m in METHODS {
        let (sum, before, after, zombies, ms) = isolated(scenario, m, Duration::from_secs(240));
        assert_eq!(sum, 999 * 1000, "{m:?}");
        assert_eq!(before, after, "{m:?}: descriptors leaked");
        assert!(zombies.is_empty(), "{m:?}: zombies {zombies:?}");
        eprintln!("{m:?}: {ms:.2} ms per start+join beside 8 busy threads");
    }
}

#[test]
fn arguments_that_cannot_travel_are_clear_errors() {
    fn keys(v: serde_json::Value) -> usize {
        v.as_object().map_or(0, |o| o.len())
    }
    struct Unencodable;
    impl serde::Serialize for Unencodable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom(
                "this value refuses to be encoded",
            ))
        }
    }
    impl<'de> serde::Deserialize<'de> for Unencodable {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Ok(Unencodable)
        }
    }
    fn unit(_: Unencodable) {}
    for m in METHODS {
        // Encodes in the parent, cannot be decoded in the child: the child says why.
        let arg = serde_json::json!({"a": 1});
        let mut child = Process::run_fn(keys, arg).start_method(m).start().unwrap();
        match join_promptly(&mut child) {
            Err(Error::InvalidState(msg)) => assert!(msg.contains("argument"), "{m:?}: {msg}"),
            other => panic!("{m:?}: {other:?}"),
        }
        // Cannot be encoded: `start` fails, and the waiting child is ended, not left behind.
        let err = Process::run_fn(unit, Unencodable)
            .start_method(m)
            .start()
            .unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{m:?}: {err}");
    }
}

// ---- pools built from threaded processes (issue 10) ------------------------------------

/// Writes a file named `<pid>-<ms>` in `dir` (so the test knows which worker runs which
/// task), then sleeps `ms`, and returns the pid.
fn mark_and_sleep((dir, ms): (String, u64)) -> u32 {
    let me = std::process::id();
    std::fs::write(format!("{dir}/{me}-{ms}"), b"").expect("mark");
    std::thread::sleep(Duration::from_millis(ms));
    me
}

/// A private directory for a test's marks, removed on drop (even when the test fails).
struct MarkDir(std::path::PathBuf);

impl MarkDir {
    fn new(tag: &str) -> MarkDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("multiproc-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir(&path).expect("mark dir");
        MarkDir(path)
    }

    fn path(&self) -> String {
        self.0.to_str().expect("utf-8 temp dir").to_string()
    }

    /// The marks so far: (pid, ms).
    fn marks(&self) -> Vec<(u32, u64)> {
        std::fs::read_dir(&self.0)
            .expect("read marks")
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (pid, ms) = name.split_once('-')?;
                Some((pid.parse().ok()?, ms.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for MarkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Issue 10, W1, DD-01 from a threaded process: a pool of 2 built while threads run (the
/// harness's and 8 busy ones); a worker SIGKILLed mid-task fails only that task with
/// `WorkerDied`, the other task and later ones complete, and the replacement worker is a
/// child of the pool's single-threaded helper, never of this threaded process.
fn pool_from_threads_survives_a_killed_worker(method: Option<StartMethod>) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = busy_threads(stop.clone());
    let me = std::process::id();
    let mut builder = multiproc::Pool::builder().processes(2);
    if let Some(m) = method {
        builder = builder.start_method(m);
    }
    let pool = builder.build().expect("a pool from a threaded process");
    let first = pool.pids();
    let helper = parent_of(u32::from(first[0])).expect("worker's parent");
    assert_ne!(
        helper, me,
        "{method:?}: a worker is a child of the threaded process"
    );
    assert_eq!(parent_of(u32::from(first[1])), Some(helper), "{method:?}");
    assert_eq!(
        thread_count(helper),
        1,
        "{method:?}: the helper is single-threaded"
    );

    let marks = MarkDir::new("pool-kill");
    let long = pool
        .apply_async(mark_and_sleep, (marks.path(), 60_000))
        .unwrap();
    let short = pool
        .apply_async(mark_and_sleep, (marks.path(), 1_000))
        .unwrap();
    assert!(
        eventually(PROMPTLY, || marks.marks().len() == 2),
        "{method:?}: both tasks should be running"
    );
    let victim = marks.marks().into_iter().find(|m| m.1 == 60_000).unwrap().0;
    let other = marks.marks().into_iter().find(|m| m.1 == 1_000).unwrap().0;
    assert_ne!(victim, other);
    send_signal(Pid::from(victim), Signal::KILL).unwrap();
    match long.get_timeout(PROMPTLY) {
        Err(Error::WorkerDied(m)) => {
            assert!(
                m.contains("signal 9") || m.contains("KILL"),
                "{method:?}: {m}"
            )
        }
        other => panic!("{method:?}: the killed worker's task gave {other:?}"),
    }
    assert_eq!(short.get_timeout(PROMPTLY).unwrap(), other, "{method:?}");
    // The pool replaces the worker and stays usable.
    assert!(
        eventually(PROMPTLY, || !pool.pids().contains(&Pid::from(victim))
            && pool.pids().iter().all(|p| u32::from(*p) != 0)),
        "{method:?}: no replacement for {victim}: {:?}",
        pool.pids()
    );
    let results = pool.map_chunked(double, 0..50u64, 1).unwrap();
    assert_eq!(results, (0..50).map(|x| x * 2).collect::<Vec<_>>());
    for pid in pool.pids() {
        assert_eq!(
            parent_of(u32::from(pid)),
            Some(helper),
            "{method:?}: worker {pid} was not forked by the helper"
        );
    }
    pool.close();
    pool.join().unwrap();
    assert!(!running(helper), "{method:?}: the helper outlived join");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn w1_dd_01_pool_from_a_threaded_test_replaces_a_killed_worker_under_each_method() {
    for method in [
        None,
        Some(StartMethod::Forkserver),
        Some(StartMethod::Spawn),
    ] {
        pool_from_threads_survives_a_killed_worker(method);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_dd_01_pool_from_a_tokio_runtime_replaces_a_killed_worker() {
    tokio::task::spawn_blocking(|| pool_from_threads_survives_a_killed_worker(None))
        .await
        .unwrap();
}

/// PL-36: the initializer marks its worker (`<pid>-<helper pid>`) and fails in the second
/// worker, after a pause that lets the others start.
fn mark_or_fail(dir: String) {
    let me = std::process::id();
    let parent = std::os::unix::process::parent_id();
    std::fs::write(format!("{dir}/{me}-{parent}"), b"").expect("mark");
    if current_process().name() == "PoolWorker-2" {
        std::thread::sleep(Duration::from_millis(1000));
        panic!("the initializer fails on purpose");
    }
}

/// PL-36: a worker that fails to start while the pool is built (its initializer panics)
/// fails `build` with that panic, and every worker already started, and the helper, are
/// gone (stopped and reaped) when `build` returns.
#[test]
fn pl_36_a_worker_failing_to_start_stops_the_others_under_each_method() {
    for method in [StartMethod::Forkserver, StartMethod::Spawn] {
        let marks = MarkDir::new("pl36");
        let err = multiproc::Pool::builder()
            .processes(3)
            .start_method(method)
            .initializer(mark_or_fail, marks.path())
            .build()
            .unwrap_err();
        match &err {
            Error::Panicked { message, .. } => {
                assert!(message.contains("on purpose"), "{method:?}: {message}")
            }
            other => panic!("{method:?}: {other:?}"),
        }
        // (pid, helper pid), read back from the file names.
        let started = marks.marks();
        assert!(started.len() >= 2, "{method:?}: {started:?}");
        for (pid, helper) in started {
            assert_ne!(helper as u32, std::process::id(), "{method:?}");
            assert!(
                stat_fields(pid).is_none(),
                "{method:?}: worker {pid} is left"
            );
            assert!(
                stat_fields(helper as u32).is_none(),
                "{method:?}: helper {helper} is left"
            );
        }
    }
}

/// A pool built on a thread that then ends keeps working from another thread under every
/// method a threaded process may use (a parent-death signal on the helper would follow the
/// building thread, and kill the pool with it).
#[test]
fn pool_outlives_the_thread_that_built_it() {
    for method in [
        None,
        Some(StartMethod::Forkserver),
        Some(StartMethod::Spawn),
    ] {
        let pool = std::thread::spawn(move || {
            let mut builder = multiproc::Pool::builder().processes(1);
            if let Some(m) = method {
                builder = builder.start_method(m);
            }
            builder.build().unwrap()
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(pool.map(double, 0..10u64).unwrap().len(), 10, "{method:?}");
        pool.close();
        pool.join().unwrap();
    }
}
