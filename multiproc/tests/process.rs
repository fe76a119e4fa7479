//! Processes: start, join, exit codes, signals, names, daemons, reaping (contract section PR).

mod common;

use std::time::{Duration, Instant};

use common::{eventually, is_zombie, process_running, test, TestResult};
use multiproc::process::{send_signal, SignalFlag};
use multiproc::{
    active_children, cpu_count, current_process, parent_process, pipe, Connection, Error, Pid,
    Process, Run, Signal,
};

fn main() {
    common::run(vec![
        test(
            "pr_01_02_main_process_identity",
            pr_01_02_main_process_identity,
        ),
        test(
            "pr_02_09_child_knows_its_name_pid_and_parent",
            pr_02_09_child_identity,
        ),
        test(
            "pr_07_08_16_lifecycle_and_active_children",
            pr_07_08_16_lifecycle,
        ),
        test(
            "pr_10_join_timeout_returns_before_the_child_ends",
            pr_10_join_timeout,
        ),
        test(
            "pr_10_join_timeout_max_waits_forever_not_panics",
            pr_10_join_timeout_max,
        ),
        test("parent_wait_forms_and_a_max_timeout", parent_wait_forms),
        test("pr_11_terminate_gives_minus_sigterm", pr_11_terminate),
        test(
            "pr_11_kill_gives_minus_sigkill_and_join_says_signaled",
            pr_11_kill,
        ),
        test(
            "pr_13_panic_message_and_location_reach_the_parent",
            pr_13_panic,
        ),
        test("pr_14_exit_code_without_a_value", pr_14_exit_code),
        test("pr_15_cpu_count_is_at_least_one", pr_15_cpu_count),
        test("pr_17_recursion_depth_first_order", pr_17_recursion),
        test("pr_20_many_processes", pr_20_many_processes),
        test("pr_25_run_trait_like_subclassing", pr_25_run_trait),
        test(
            "pr_27_daemons_may_not_have_children",
            pr_27_daemon_no_children,
        ),
        test("pr_28_default_names_count_per_creator", pr_28_default_names),
        test(
            "pr_03_dd_04_grandchild_sees_its_parent_die",
            pr_03_parent_death,
        ),
        test(
            "daemon_dies_when_its_parent_is_sigkilled",
            daemon_dies_with_sigkilled_parent,
        ),
        test(
            "pr_29_child_return_terminates_daemons_and_waits_for_children",
            pr_29_child_return_finishes_children,
        ),
        test(
            "pr_29_exit_terminates_daemons_and_waits_for_children",
            pr_29_exit_finishes_children,
        ),
        test("pr_32_join_not_aborted_by_a_signal", pr_32_join_eintr),
        test("pr_34_dropped_handle_leaves_no_zombie", pr_34_no_zombie),
        test("join_twice_is_an_error_not_a_hang", join_twice),
        test("large_return_value_round_trips", large_return_value),
        test(
            "fork_refused_with_a_second_thread",
            fork_refused_with_threads,
        ),
        test(
            "start_unchecked_forks_with_a_second_thread",
            start_unchecked_with_threads,
        ),
        test("signal_flag_in_a_child", signal_flag_in_child),
        test("unhandled_signal_ends_the_child", unhandled_signal),
        test(
            "undecodable_return_value_is_a_codec_error",
            undecodable_value,
        ),
    ])
}

fn pr_01_02_main_process_identity() -> TestResult {
    let me = current_process();
    assert_eq!(me.name(), "MainProcess");
    assert_eq!(me.pid(), Pid::from(std::process::id()));
    assert!(!me.is_daemon());
    assert!(
        parent_process().is_none(),
        "PR-02: no parent in the main process"
    );
    Ok(())
}

fn pr_02_09_child_identity() -> TestResult {
    // run_fn (no captures), so the suite runs it under MULTIPROC_START_METHOD too.
    let mut child = Process::run_fn(
        |()| {
            let me = current_process();
            let parent = parent_process().expect("a child has a parent");
            (
                me.name().to_string(),
                me.pid(),
                parent.pid(),
                parent.name().to_string(),
            )
        },
        (),
    )
    .name("worker-7")
    .start()?;
    let (name, pid, ppid, pname) = child.join()?;
    assert_eq!(name, "worker-7");
    assert_eq!(name, child.name());
    assert_eq!(pid, child.pid());
    assert_eq!(ppid, current_process().pid());
    assert_eq!(pname, "MainProcess");
    Ok(())
}

// The tests below whose children are `run_fn` functions run under fork, forkserver and
// spawn in the start-method matrix of `.ci/run`; what a child needs (a connection end)
// travels as its argument.

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn recv_u8(mut wait: Connection) -> u8 {
    wait.recv().unwrap()
}

fn pr_07_08_16_lifecycle() -> TestResult {
    let (mut go, wait) = pipe()?;
    let mut child = Process::run_fn(recv_u8, wait).start()?;
    assert!(child.is_alive());
    assert_eq!(child.exit_code(), None);
    assert!(active_children().iter().any(|c| c.pid() == child.pid()));
    go.send(&5u8)?;
    assert_eq!(child.join()?, 5);
    assert!(!child.is_alive());
    assert_eq!(child.exit_code(), Some(0));
    assert!(!active_children().iter().any(|c| c.pid() == child.pid()));
    Ok(())
}

fn pr_10_join_timeout() -> TestResult {
    let mut child = Process::run_fn(sleep_ms, 2000).start()?;
    let t = Instant::now();
    assert!(
        matches!(child.join_timeout(Duration::ZERO), Err(Error::Timeout)),
        "join(0) only looks"
    );
    assert!(matches!(child.try_join(), Err(Error::WouldBlock)));
    let t1 = Instant::now();
    assert!(matches!(
        child.join_timeout(Duration::from_millis(300)),
        Err(Error::Timeout)
    ));
    assert!(t1.elapsed() >= Duration::from_millis(300));
    let t2 = Instant::now();
    let deadline = t2 + Duration::from_millis(100);
    assert!(matches!(child.join_deadline(deadline), Err(Error::Timeout)));
    assert!(Instant::now() >= deadline);
    assert!(
        child.is_alive(),
        "a timed-out join leaves the child running"
    );
    child.join()?;
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert_eq!(child.exit_code(), Some(0));
    Ok(())
}

/// A timeout too large for an `Instant` is forever, not an overflow panic.
fn pr_10_join_timeout_max() -> TestResult {
    fn five_after_200_ms(_: ()) -> u8 {
        sleep_ms(200);
        5
    }
    let mut child = Process::run_fn(five_after_200_ms, ()).start()?;
    assert_eq!(child.join_timeout(Duration::MAX)?, 5);
    let mut child = Process::run_fn(|n: u8| n, 6).start()?;
    assert_eq!(
        child.join_deadline(Instant::now() + Duration::from_secs(30))?,
        6
    );
    let mut child = Process::run_fn(|n: u8| n, 7).start()?;
    let value = loop {
        match child.try_join() {
            Err(Error::WouldBlock) => std::thread::sleep(Duration::from_millis(5)),
            other => break other?,
        }
    };
    assert_eq!(value, 7);
    Ok(())
}

/// `ParentProcess`'s waits follow the outcome rule, and `wait_timeout(Duration::MAX)` waits
/// for the parent's death instead of panicking.
fn parent_wait_forms() -> TestResult {
    let (mut rx, tx) = pipe()?;
    let mut middle = Process::new(move || {
        let report = tx;
        let _grandchild = Process::new(move || {
            let mut report = report;
            let parent = parent_process().unwrap();
            let forms = (
                matches!(parent.try_wait(), Err(Error::WouldBlock)),
                matches!(parent.wait_timeout(Duration::ZERO), Err(Error::Timeout)),
                matches!(
                    parent.wait_deadline(Instant::now() + Duration::from_millis(50)),
                    Err(Error::Timeout)
                ),
                parent.is_alive().unwrap(),
            );
            report.send(&forms).unwrap();
            let ended = parent.wait_timeout(Duration::MAX).is_ok();
            report
                .send(&(ended, parent.try_wait().is_ok(), parent.wait().is_ok()))
                .unwrap();
        })
        .start()
        .unwrap();
        std::thread::sleep(Duration::from_secs(60));
    })
    .start()?;
    assert_eq!(
        rx.recv::<(bool, bool, bool, bool)>()?,
        (true, true, true, true)
    );
    middle.kill()?;
    assert!(rx.poll(Some(Duration::from_secs(20)))?);
    assert_eq!(
        rx.recv::<(bool, bool, bool)>()?,
        (true, true, true),
        "the grandchild saw its parent's death"
    );
    assert!(middle.join().is_err());
    Ok(())
}

fn pr_11_terminate() -> TestResult {
    let mut child =
        Process::run_fn(|()| std::thread::sleep(Duration::from_secs(60)), ()).start()?;
    child.terminate()?;
    assert!(matches!(child.join(), Err(Error::Signaled(Signal::TERM))));
    assert_eq!(child.exit_code(), Some(-15));
    child.terminate()?; // an ended child: nothing to do, no error
    Ok(())
}

fn pr_11_kill() -> TestResult {
    let mut child =
        Process::run_fn(|()| std::thread::sleep(Duration::from_secs(60)), ()).start()?;
    child.kill()?;
    match child.join() {
        Err(Error::Signaled(sig)) => assert_eq!(sig, Signal::KILL),
        other => panic!("expected Signaled(SIGKILL), got {other:?}"),
    }
    assert_eq!(child.exit_code(), Some(-9));
    Ok(())
}

fn pr_13_panic() -> TestResult {
    let mut child = Process::run_fn(|()| -> u32 { panic!("boom {}", 42) }, ()).start()?;
    match child.join() {
        Err(Error::Panicked { message, location }) => {
            assert_eq!(message, "boom 42");
            assert!(location.unwrap_or_default().contains("process.rs"));
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(child.exit_code(), Some(1));
    Ok(())
}

fn pr_14_exit_code() -> TestResult {
    let mut child = Process::run_fn(|()| -> () { std::process::exit(7) }, ()).start()?;
    assert!(matches!(child.join(), Err(Error::Exited(7))));
    assert_eq!(child.exit_code(), Some(7));
    Ok(())
}

fn pr_15_cpu_count() -> TestResult {
    let n = cpu_count();
    assert!(n >= 1);
    assert_eq!(n, std::thread::available_parallelism()?.get());
    let mut child = Process::run_fn(|()| cpu_count(), ()).start()?;
    assert_eq!(child.join()?, n, "a child counts the same CPUs");
    Ok(())
}

/// Each process sends its path, then starts and joins two children (PR-17).
fn pr_17_recursion() -> TestResult {
    fn node(tx: multiproc::Connection, path: Vec<u8>) {
        let mut tx = tx;
        tx.send(&path).unwrap();
        if path.len() < 2 {
            for i in 0..2u8 {
                let sub = tx.try_clone().unwrap();
                let mut next = path.clone();
                next.push(i);
                Process::new(move || node(sub, next))
                    .start()
                    .unwrap()
                    .join()
                    .unwrap();
            }
        }
    }
    let (mut rx, tx) = pipe()?;
    let mut root = Process::new(move || node(tx, Vec::new())).start()?;
    let mut got = Vec::new();
    loop {
        match rx.recv::<Vec<u8>>() {
            Ok(path) => got.push(path),
            Err(Error::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    root.join()?;
    let want: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0, 0],
        vec![0, 1],
        vec![1],
        vec![1, 0],
        vec![1, 1],
    ];
    assert_eq!(got, want);
    Ok(())
}

fn pr_20_many_processes() -> TestResult {
    let mut quick: Vec<_> = (0..100)
        .map(|i| Process::run_fn(|i: usize| i * 2, i).start())
        .collect::<Result<_, _>>()?;
    for (i, c) in quick.iter_mut().enumerate() {
        assert_eq!(c.join()?, i * 2);
        assert_eq!(c.exit_code(), Some(0));
    }
    let mut sleepers: Vec<_> = (0..100)
        .map(|_| Process::run_fn(sleep_ms, 60_000).start())
        .collect::<Result<_, _>>()?;
    for c in &sleepers {
        c.terminate()?;
    }
    for c in &mut sleepers {
        assert!(c.join().is_err());
        assert_eq!(c.exit_code(), Some(-15));
    }
    Ok(())
}

struct MyProcess {
    word: String,
}

impl Run for MyProcess {
    type Output = (String, Pid);
    fn run(self) -> (String, Pid) {
        (
            format!("{} from {}", self.word, current_process().name()),
            parent_process().unwrap().pid(),
        )
    }
}

fn pr_25_run_trait() -> TestResult {
    let mut child = Process::new(MyProcess {
        word: "haha".into(),
    })
    .name("MyProcess")
    .start()?;
    assert_eq!(
        child.join()?,
        ("haha from MyProcess".to_string(), current_process().pid())
    );
    Ok(())
}

fn pr_27_daemon_no_children() -> TestResult {
    let mut child = Process::new(|| match Process::new(|| ()).start() {
        Err(Error::InvalidState(msg)) => msg,
        other => format!("unexpected: {other:?}"),
    })
    .daemon(true)
    .start()?;
    assert_eq!(
        child.join()?,
        "daemonic processes are not allowed to have children"
    );
    Ok(())
}

fn pr_28_default_names() -> TestResult {
    let mut a = Process::new(|| current_process().name().to_string()).start()?;
    let mut b = Process::new(|| {
        let mut grandchild = Process::new(|| current_process().name().to_string())
            .start()
            .unwrap();
        (
            current_process().name().to_string(),
            grandchild.join().unwrap(),
        )
    })
    .start()?;
    let a_name = a.join()?;
    let (b_name, g_name) = b.join()?;
    let n: u32 = a_name
        .strip_prefix("Process-")
        .expect("Process-N")
        .parse()?;
    assert_eq!(b_name, format!("Process-{}", n + 1));
    assert_eq!(g_name, format!("Process-{}:1", n + 1));
    assert_eq!(a.name(), a_name);
    Ok(())
}

fn pr_03_parent_death() -> TestResult {
    let (mut rx, tx) = pipe()?;
    let mut middle = Process::new(move || {
        let mut tx = tx;
        let report = tx.try_clone().unwrap();
        let _grandchild = Process::new(move || {
            let mut report = report;
            let parent = parent_process().unwrap();
            let alive_before = parent.is_alive().unwrap();
            report.send(&("ready", alive_before)).unwrap();
            let ended = parent.wait_timeout(Duration::from_secs(20)).is_ok();
            report
                .send(&("parent gone", !parent.is_alive().unwrap() && ended))
                .unwrap();
        })
        .start()
        .unwrap();
        tx.send(&("middle", true)).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    })
    .start()?;
    let mut msgs = vec![rx.recv::<(String, bool)>()?, rx.recv::<(String, bool)>()?];
    msgs.sort();
    assert_eq!(msgs, vec![("middle".into(), true), ("ready".into(), true)]);
    middle.kill()?;
    assert_eq!(rx.recv::<(String, bool)>()?, ("parent gone".into(), true));
    assert!(
        matches!(rx.recv::<(String, bool)>(), Err(Error::Eof)),
        "grandchild exited"
    );
    assert!(middle.join().is_err());
    Ok(())
}

fn daemon_dies_with_sigkilled_parent() -> TestResult {
    let (mut rx, tx) = pipe()?;
    let mut parent = Process::new(move || {
        let mut tx = tx;
        let daemon = Process::new(|| std::thread::sleep(Duration::from_secs(60)))
            .daemon(true)
            .start()
            .unwrap();
        tx.send(&daemon.pid()).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    })
    .start()?;
    let daemon_pid: Pid = rx.recv()?;
    assert!(process_running(daemon_pid));
    parent.kill()?;
    assert!(parent.join().is_err());
    assert!(
        eventually(Duration::from_secs(10), || !process_running(daemon_pid)),
        "the daemon outlived its SIGKILLed parent"
    );
    Ok(())
}

/// In a child: starts a daemon grandchild that reports on `term` whether a SIGTERM reached it
/// (a SIGKILL leaves `term` with EOF), and a non-daemon one that sleeps 1 s and then reports
/// on `done`. Returns once the daemon's flag is registered.
fn start_grandchildren(done: Connection, term: Connection) {
    let (mut ready_rx, ready_tx) = pipe().unwrap();
    Process::new(move || {
        let (mut ready_tx, mut term) = (ready_tx, term);
        let flag = SignalFlag::register(Signal::TERM).unwrap();
        ready_tx.send(&()).unwrap();
        let t = Instant::now();
        while !flag.is_raised() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        term.send(&flag.is_raised()).unwrap();
    })
    .daemon(true)
    .start()
    .unwrap();
    ready_rx.recv::<()>().unwrap();
    Process::new(move || {
        let mut done = done;
        std::thread::sleep(Duration::from_secs(1));
        done.send(&"finished").unwrap();
    })
    .start()
    .unwrap();
}

/// After the child ended (`started` is when the parent began to join it): the non-daemon
/// grandchild had finished, and the daemon got SIGTERM, not SIGKILL (PR-29).
fn grandchildren_were_finished(
    started: Instant,
    done: &mut Connection,
    term: &mut Connection,
) -> TestResult {
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "the child ended after {took:?}, before its 1 s grandchild"
    );
    assert!(
        done.poll(Some(Duration::ZERO))?,
        "the grandchild had reported before the child ended"
    );
    assert_eq!(done.recv::<String>()?, "finished");
    assert!(term.poll(Some(Duration::from_secs(10)))?);
    match term.recv::<bool>() {
        Ok(got_term) => assert!(got_term, "the daemon waited 20 s without a SIGTERM"),
        Err(Error::Eof) => panic!("the daemon grandchild was killed without a SIGTERM"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn pr_29_child_return_finishes_children() -> TestResult {
    let (mut done_rx, done_tx) = pipe()?;
    let (mut term_rx, term_tx) = pipe()?;
    let mut child = Process::new(move || start_grandchildren(done_tx, term_tx)).start()?;
    let t = Instant::now();
    child.join()?;
    grandchildren_were_finished(t, &mut done_rx, &mut term_rx)
}

/// The parent's normal exit (`exit`, or returning from `main`) runs the same end.
fn pr_29_exit_finishes_children() -> TestResult {
    let (mut done_rx, done_tx) = pipe()?;
    let (mut term_rx, term_tx) = pipe()?;
    let mut child = Process::new(move || -> () {
        start_grandchildren(done_tx, term_tx);
        std::process::exit(0)
    })
    .start()?;
    let t = Instant::now();
    assert!(matches!(child.join(), Err(Error::Exited(0))));
    grandchildren_were_finished(t, &mut done_rx, &mut term_rx)
}

fn pr_32_join_eintr() -> TestResult {
    let flag = SignalFlag::register(Signal::USR1)?;
    let parent = current_process().pid();
    let mut child = Process::new(move || {
        std::thread::sleep(Duration::from_millis(100));
        send_signal(parent, Signal::USR1).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        17
    })
    .start()?;
    assert_eq!(child.join()?, 17);
    assert!(flag.take(), "the signal did arrive during join");
    assert_eq!(child.exit_code(), Some(0));
    Ok(())
}

fn pr_34_no_zombie() -> TestResult {
    let child = Process::run_fn(|()| (), ()).start()?;
    let pid = child.pid();
    drop(child);
    assert!(eventually(Duration::from_secs(10), || {
        let _ = active_children();
        !is_zombie(pid) && !process_running(pid)
    }));
    Ok(())
}

fn join_twice() -> TestResult {
    let mut child = Process::run_fn(|n: u8| n, 1).start()?;
    assert_eq!(child.join()?, 1);
    assert!(matches!(child.join(), Err(Error::InvalidState(_))));
    assert_eq!(child.exit_code(), Some(0));
    Ok(())
}

fn large_return_value() -> TestResult {
    let mut child = Process::run_fn(|()| vec![0xA5u8; 16 << 20], ()).start()?;
    let v = child.join()?;
    assert_eq!(v.len(), 16 << 20);
    assert!(v.iter().all(|&b| b == 0xA5));
    Ok(())
}

fn fork_refused_with_threads() -> TestResult {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || rx.recv());
    let err = Process::new(|| ())
        .start()
        .expect_err("fork with two threads must be refused");
    tx.send(())?;
    helper.join().unwrap()?;
    match err {
        Error::InvalidState(msg) => {
            assert!(msg.contains("2 threads"), "{msg}");
            assert!(
                msg.contains("start_unchecked"),
                "names the alternative: {msg}"
            );
        }
        other => panic!("expected InvalidState, got {other:?}"),
    }
    assert!(common::eventually(Duration::from_secs(5), || {
        std::fs::read_dir("/proc/self/task")
            .map(|d| d.count() == 1)
            .unwrap_or(false)
    }));
    let mut child = Process::new(|| 3u8).start()?;
    assert_eq!(child.join()?, 3, "with one thread again, fork works");
    Ok(())
}

fn start_unchecked_with_threads() -> TestResult {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || rx.recv());
    // SAFETY: the helper thread only blocks in `recv` on a channel the child never touches;
    // it holds no lock the child's closure (which only adds numbers) needs.
    let mut child = unsafe { Process::new(|| 20 + 22).start_unchecked()? };
    assert_eq!(child.join()?, 42);
    tx.send(())?;
    helper.join().unwrap()?;
    Ok(())
}

fn signal_flag_in_child() -> TestResult {
    let (mut rx, tx) = pipe()?;
    fn wait_for_usr1(mut tx: Connection) -> bool {
        let flag = SignalFlag::register(Signal::USR1).unwrap();
        tx.send(&"ready").unwrap();
        let t = Instant::now();
        while !flag.is_raised() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(1));
        }
        flag.take()
    }
    let mut child = Process::run_fn(wait_for_usr1, tx).start()?;
    assert_eq!(rx.recv::<String>()?, "ready");
    child.signal(Signal::USR1)?;
    assert!(child.join()?, "the child saw its flag raised");
    Ok(())
}

fn unhandled_signal() -> TestResult {
    let mut child = Process::run_fn(sleep_ms, 60_000).start()?;
    child.signal(Signal::HUP)?;
    assert!(matches!(child.join(), Err(Error::Signaled(Signal::HUP))));
    assert_eq!(child.exit_code(), Some(-1));
    Ok(())
}

/// postcard encodes a `serde_json::Value` but cannot decode one: the parent must say so,
/// not report a plain exit.
fn undecodable_value() -> TestResult {
    let mut child = Process::run_fn(|()| serde_json::json!({"tickets": 1}), ()).start()?;
    match child.join() {
        Err(Error::Codec(msg)) => assert!(msg.to_string().contains("cannot be decoded"), "{msg}"),
        other => panic!("expected a codec error, got {other:?}"),
    }
    assert_eq!(child.exit_code(), Some(0), "the child itself did fine");
    Ok(())
}
