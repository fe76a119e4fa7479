//! The process pool with real worker processes (contract sections PL, AR, item DD-01;
//! weaknesses W1, W2, W3, W9, W12).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, process_running, test, TestResult};
use multiproc::process::send_signal;
use multiproc::{Error, Pool, Signal, StartMethod, Value};

fn main() {
    if std::env::var_os(LEAK_MODE).is_some() {
        return leak_a_pool();
    }
    #[cfg_attr(not(feature = "progress"), allow(unused_mut))]
    let mut tests = vec![
        test("pl_01_pl_09_apply_and_apply_async", apply_and_apply_async),
        test(
            "pl_02_pl_04_pl_37_pl_39_map_in_input_order_every_chunk_size",
            map_in_order,
        ),
        test("pl_03_starmap_and_starmap_async", starmap),
        test(
            "pl_05_map_async_callbacks_run_once_on_the_result_thread",
            map_async_callbacks,
        ),
        test(
            "pl_06_an_unencodable_argument_is_a_codec_error",
            unencodable_argument,
        ),
        test("pl_07_pl_18_empty_inputs_give_empty_results", empty_inputs),
        test(
            "pl_10_ar_01_ar_05_get_timeout_on_a_sleeping_task",
            get_timeout_sleeping,
        ),
        test(
            "ar_02_successful_before_ready_is_an_error",
            successful_before_ready,
        ),
        test(
            "ar_03_get_reports_the_error_every_time",
            get_error_every_time,
        ),
        test("ar_04_imap_next_timeout_then_the_value", imap_next_timeout),
        test("pl_11_pl_13_imap_in_order_and_unordered", imap_orders),
        test(
            "w12_pl_15_chunksize_zero_is_an_error_for_every_map",
            chunksize_zero,
        ),
        test(
            "pl_16_pl_31_zero_processes_or_zero_max_tasks_is_an_error",
            bad_sizes,
        ),
        test(
            "w3_pl_17_terminate_during_a_long_task_returns_within_1s",
            terminate_long_task,
        ),
        test(
            "pl_20_a_panicking_task_is_panicked_and_the_worker_goes_on",
            panicking_task,
        ),
        test(
            "pl_27_an_err_result_reaches_get_and_the_error_callback",
            err_result_callback,
        ),
        test(
            "w2_pl_28_unencodable_or_undecodable_result_is_a_codec_error",
            codec_results,
        ),
        test(
            "pl_23_map_runs_every_chunk_before_reporting_an_error",
            map_no_failfast,
        ),
        test(
            "pl_29_pl_30_max_tasks_per_child_1_replaces_workers",
            max_tasks_per_child,
        ),
        test(
            "pl_32_the_initializer_runs_once_per_worker",
            initializer_once,
        ),
        test(
            "pl_36_a_worker_failing_to_start_stops_the_others",
            failing_initializer,
        ),
        test("pl_33_join_before_close_is_an_error", join_before_close),
        test(
            "pl_24_map_async_keeps_the_first_error_and_calls_back_after_every_chunk",
            first_error_after_every_chunk,
        ),
        test(
            "pl_25_arguments_and_results_are_not_retained",
            nothing_retained,
        ),
        test(
            "pl_34_pl_35_calls_after_close_or_terminate_are_refused",
            after_close,
        ),
        test(
            "w1_dd_01_worker_sigkilled_mid_task_fails_only_that_task",
            worker_killed,
        ),
        test(
            "w1_dd_01_worker_exiting_mid_task_reports_its_exit_code",
            worker_exits,
        ),
        test(
            "w9_imap_over_an_endless_iterator_keeps_memory_flat",
            imap_endless,
        ),
        test(
            "callbacks_run_in_completion_order_on_one_thread",
            callbacks_order,
        ),
        test(
            "threaded_parent_replaces_a_killed_worker_without_forking",
            threaded_parent,
        ),
        test(
            "building_a_pool_with_fork_chosen_from_a_threaded_process_is_refused",
            threaded_build,
        ),
        test("pl_38_a_pool_inside_a_child_process_works", pool_in_child),
        test(
            "a_slow_task_does_not_hold_up_the_tasks_behind_it",
            no_head_of_line,
        ),
        test(
            "w1_helper_killed_fails_pending_tasks_and_stops_the_pool",
            helper_killed,
        ),
        test(
            "pl_08_pl_14_pl_21_an_input_iterator_that_panics_leaves_the_pool_usable",
            panicking_input,
        ),
        test(
            "pl_19_dropping_a_running_pool_terminates_it",
            drop_terminates,
        ),
        test(
            "pl_38_a_pool_never_dropped_does_not_hang_the_exit",
            leaked_pool_exit,
        ),
    ];
    #[cfg(feature = "progress")]
    tests.push(test("map_progress_gives_the_map", map_progress));
    common::run(tests)
}

#[cfg(feature = "progress")]
fn map_progress() -> TestResult {
    let pool = Pool::new(2)?;
    let serial: Vec<u64> = (0..10_000).map(square).collect();
    assert_eq!(pool.map_progress(square, 0..10_000)?, serial);
    Ok(())
}

/// Set when this binary is run to leak a pool and exit (see `leaked_pool_exit`).
const LEAK_MODE: &str = "MULTIPROC_TEST_LEAK_A_POOL";

/// Builds a pool, uses it, forgets it, and returns from `main`.
fn leak_a_pool() {
    let pool = Pool::new(2).expect("pool");
    assert_eq!(pool.map(square, 0..10).expect("map").len(), 10);
    std::mem::forget(pool);
    println!("leaked");
}

fn leaked_pool_exit() -> TestResult {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env(LEAK_MODE, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let exited = eventually(Duration::from_secs(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output()?;
    assert!(exited, "the program hung at exit");
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "leaked");
    Ok(())
}

fn no_head_of_line() -> TestResult {
    let pool = Pool::new(2)?;
    let slow = pool.apply_async(sleep_ms, 3_000)?;
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let quick = pool.map_chunked(sleep_ms, vec![10; 20], 1)?;
    assert_eq!(quick.len(), 20);
    // 20 x 10 ms on the free worker: about 0.2 s, while the slow task holds the other.
    assert!(
        start.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        start.elapsed()
    );
    assert!(!slow.ready());
    Ok(())
}

fn helper_killed() -> TestResult {
    let pool = Pool::new(2)?;
    let long = pool.apply_async(sleep_ms, 10_000)?;
    let helpers = multiproc::active_children();
    assert_eq!(helpers.len(), 1, "the helper is this process's only child");
    send_signal(helpers[0].pid(), Signal::KILL)?;
    match long.get_timeout(Duration::from_secs(20)) {
        Err(Error::WorkerDied(m)) => assert!(m.contains("helper"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(pool.apply(square, 2), Err(Error::InvalidState(_))));
    let start = Instant::now();
    pool.terminate();
    pool.join()?;
    assert!(start.elapsed() < Duration::from_secs(2));
    Ok(())
}

/// An input that panics at `at` (Rust's iterators panic where Python's raise).
fn input_panicking_at(at: u64) -> impl Iterator<Item = u64> + Send {
    (0..10).inspect(move |&i| {
        if i == at {
            panic!("the input failed at {i}");
        }
    })
}

fn panicking_input() -> TestResult {
    let pool = Pool::new(2)?;
    for at in [0, 5] {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.map(square, input_panicking_at(at))
        }));
        assert!(caught.is_err(), "the input's panic reaches the caller");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.imap(square, input_panicking_at(at))
                .map(|it| it.count())
        }));
        assert!(caught.is_err());
        // PL-14: the unordered form too; every value before the panic is right.
        let seen = Mutex::new(Vec::new());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for v in pool.imap_unordered(square, input_panicking_at(at)).unwrap() {
                seen.lock().unwrap().push(v.unwrap());
            }
        }));
        assert!(caught.is_err());
        let seen = seen.into_inner().unwrap();
        assert!(
            seen.iter().all(|v| (0..at).any(|i| square(i) == *v)),
            "{seen:?}"
        );
        // The pool is still usable, and the call can be repeated.
        assert_eq!(pool.map(square, 0..10)?.len(), 10);
    }
    Ok(())
}

fn drop_terminates() -> TestResult {
    let pids;
    let long;
    let start = Instant::now();
    {
        let pool = Pool::new(2)?;
        pids = pool.pids();
        long = pool.apply_async(sleep_ms, 60_000)?;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(matches!(long.get(), Err(Error::Closed)));
    assert!(eventually(Duration::from_secs(2), || pids
        .iter()
        .all(|&p| !process_running(p))));
    assert!(multiproc::active_children().is_empty());
    Ok(())
}

fn pool_in_child() -> TestResult {
    let mut child = multiproc::Process::new(|| {
        let pool = Pool::new(2).expect("pool in a child");
        let sum: u64 = pool.map(square, 0..1000).expect("map").iter().sum();
        pool.close();
        pool.join().expect("join");
        sum
    })
    .start()?;
    assert_eq!(child.join()?, 332_833_500);
    Ok(())
}

fn square(x: u64) -> u64 {
    x * x
}

fn mul(a: i64, b: i64) -> i64 {
    a * b
}

/// Sleeps `ms` milliseconds, returns `ms`.
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn my_pid(_: u32) -> u32 {
    std::process::id()
}

fn panics(x: u32) -> u32 {
    if x == 3 {
        panic!("task {x} panicked on purpose");
    }
    x
}

fn fails(x: i32) -> Result<i32, String> {
    if x < 0 {
        Err(format!("negative input {x}"))
    } else {
        Ok(x * 2)
    }
}

/// Dies by SIGKILL when given 0; else sleeps `x` ms.
fn die_on_zero(x: u64) -> u64 {
    if x == 0 {
        let _ = send_signal(std::process::id().into(), Signal::KILL);
        std::thread::sleep(Duration::from_secs(10));
    }
    sleep_ms(x)
}

/// Exits with code 7 when given 0.
fn exit_on_zero(x: u64) -> u64 {
    if x == 0 {
        std::process::exit(7);
    }
    x
}

/// Encodes fine, never decodes.
#[derive(serde::Serialize)]
struct Undecodable(u32);
impl<'de> serde::Deserialize<'de> for Undecodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("this type never decodes"))
    }
}
multiproc::task_output!(Undecodable);

fn undecodable(x: u32) -> Undecodable {
    Undecodable(x)
}

/// Never encodes.
#[derive(serde::Deserialize)]
struct Unencodable;
impl serde::Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this type never encodes"))
    }
}
multiproc::task_output!(Unencodable);

fn unencodable(_: u32) -> Unencodable {
    Unencodable
}

fn apply_and_apply_async() -> TestResult {
    let pool = Pool::new(2)?;
    assert_eq!(pool.apply(square, 5)?, 25);
    let start = Instant::now();
    let r = pool.apply_async(
        |(x, ms): (u64, u64)| {
            sleep_ms(ms);
            x * x
        },
        (7, 100),
    )?;
    assert_eq!(r.get()?, 49);
    assert!(start.elapsed() >= Duration::from_millis(100));
    pool.close();
    pool.join()?;
    Ok(())
}

fn map_in_order() -> TestResult {
    let pool = Pool::new(3)?;
    let serial: Vec<u64> = (0..100).map(square).collect();
    assert_eq!(pool.map(square, 0..10)?, serial[..10]);
    assert_eq!(pool.map_chunked(square, 0..100, 20)?, serial);
    assert_eq!(pool.map_chunked(square, 0..100, 1)?, serial);
    assert_eq!(pool.map_chunked(square, 0..100, 1000)?, serial);
    assert_eq!(pool.map_async(square, 0..100)?.get()?, serial);
    pool.close();
    pool.join()?;
    // PL-37: a large pool.
    let pool = Pool::new(100)?;
    assert_eq!(pool.processes(), 100);
    assert_eq!(pool.pids().len(), 100);
    assert_eq!(pool.map(square, 0..1000)?.iter().sum::<u64>(), 332_833_500);
    pool.close();
    pool.join()?;
    Ok(())
}

fn starmap() -> TestResult {
    let pool = Pool::new(2)?;
    let pairs: Vec<(i64, i64)> = (0..10).map(|i| (i, i + 1)).collect();
    let serial: Vec<i64> = pairs.iter().map(|&(a, b)| a * b).collect();
    assert_eq!(pool.starmap(mul, pairs.clone())?, serial);
    assert_eq!(pool.starmap_async(mul, pairs)?.get()?, serial);
    Ok(())
}

fn map_async_callbacks() -> TestResult {
    let pool = Pool::new(2)?;
    let got = Arc::new(Mutex::new(Vec::new()));
    let me = std::thread::current().id();
    let (g, e) = (got.clone(), got.clone());
    let r = pool.map_async_with(
        square,
        0..10,
        None,
        move |v: &Vec<u64>| {
            assert_ne!(std::thread::current().id(), me);
            g.lock().unwrap().push(format!("ok {}", v.len()));
        },
        move |err: &Error| e.lock().unwrap().push(format!("err {err}")),
    )?;
    r.wait();
    assert_eq!(*got.lock().unwrap(), vec!["ok 10".to_string()]);
    // The error callback runs once, with the error.
    let got = Arc::new(Mutex::new(Vec::new()));
    let (g, e) = (got.clone(), got.clone());
    let r = pool.map_async_with(
        fails,
        vec![1, -1, 2, -2],
        Some(1),
        move |_: &Vec<i32>| g.lock().unwrap().push("ok".to_string()),
        move |err: &Error| e.lock().unwrap().push(format!("{err}")),
    )?;
    r.wait();
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("task failed: negative input"), "{got:?}");
    Ok(())
}

fn unencodable_argument() -> TestResult {
    let pool = Pool::new(1)?;
    fn takes(_: Vec<Unencodable>) -> u32 {
        0
    }
    let err = pool.apply(takes, vec![Unencodable]).unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err:?}");
    let err = pool.map(takes, vec![vec![Unencodable]]).unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err:?}");
    assert_eq!(pool.apply(square, 3)?, 9, "the pool is still usable");
    Ok(())
}

fn empty_inputs() -> TestResult {
    let pool = Pool::new(2)?;
    let none: Vec<u64> = Vec::new();
    assert_eq!(pool.map(square, none.clone())?, Vec::<u64>::new());
    let r = pool.map_async_with(square, none.clone(), Some(1), |_| {}, |_| {})?;
    assert_eq!(
        r.get_timeout(Duration::from_millis(100))?,
        Vec::<u64>::new()
    );
    assert_eq!(pool.imap(square, none.clone())?.count(), 0);
    assert_eq!(pool.imap_unordered(square, none.clone())?.count(), 0);
    assert_eq!(pool.starmap(mul, Vec::new())?, Vec::<i64>::new());
    Ok(())
}

fn get_timeout_sleeping() -> TestResult {
    let pool = Pool::new(1)?;
    let r = pool.apply_async(sleep_ms, 1000)?;
    let start = Instant::now();
    assert!(!r.ready());
    assert!(matches!(
        r.get_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(matches!(
        r.wait_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(matches!(r.try_get(), Err(Error::WouldBlock)));
    let deadline = Instant::now() + Duration::from_millis(50);
    assert!(matches!(r.get_deadline(deadline), Err(Error::Timeout)));
    assert!(matches!(r.wait_deadline(deadline), Err(Error::Timeout)));
    assert!(Instant::now() >= deadline);
    assert!(!r.ready());
    // PL-10: the pool can still be terminated and joined.
    pool.terminate();
    pool.join()?;
    assert!(r.ready());
    assert!(matches!(r.get(), Err(Error::Closed)));
    Ok(())
}

fn successful_before_ready() -> TestResult {
    let pool = Pool::new(1)?;
    let r = pool.apply_async(sleep_ms, 200)?;
    assert!(matches!(r.successful(), Err(Error::InvalidState(_))));
    r.wait();
    assert!(r.successful()?);
    let bad = pool.apply_async(fails, -1)?;
    bad.wait();
    assert!(!bad.successful()?);
    Ok(())
}

fn get_error_every_time() -> TestResult {
    let pool = Pool::new(1)?;
    let r = pool.apply_async(fails, -5)?;
    for _ in 0..3 {
        match r.get() {
            Err(Error::TaskFailed(m)) => assert_eq!(m, "negative input -5"),
            other => panic!("{other:?}"),
        }
    }
    let ok = pool.apply_async(square, 4)?;
    assert_eq!(ok.get()?, 16);
    assert!(
        matches!(ok.get(), Err(Error::InvalidState(_))),
        "the value is moved out once"
    );
    Ok(())
}

fn imap_next_timeout() -> TestResult {
    let pool = Pool::new(1)?;
    let mut it = pool.imap(sleep_ms, vec![300, 1])?;
    assert!(matches!(
        it.next_timeout(Duration::from_millis(50)),
        Some(Err(Error::Timeout))
    ));
    assert_eq!(
        it.next_timeout(Duration::from_secs(10)).transpose()?,
        Some(300)
    );
    assert_eq!(it.next().transpose()?, Some(1));
    assert!(it.next().is_none());
    assert!(it.next_timeout(Duration::from_millis(10)).is_none());
    assert!(it.next_deadline(Instant::now()).is_none());
    Ok(())
}

fn imap_orders() -> TestResult {
    let pool = Pool::new(2)?;
    let serial: Vec<u64> = (0..1000).map(square).collect();
    let got: Vec<u64> = pool.imap(square, 0..10)?.collect::<Result<_, _>>()?;
    assert_eq!(got, serial[..10]);
    let got: Vec<u64> = pool
        .imap_chunked(square, 0..1000, 100)?
        .collect::<Result<_, _>>()?;
    assert_eq!(got, serial);
    let mut got: Vec<u64> = pool
        .imap_unordered_chunked(square, 0..1000, 100)?
        .collect::<Result<_, _>>()?;
    got.sort();
    assert_eq!(got, serial);
    drop(pool);
    // With one worker, unordered is input order.
    let pool = Pool::new(1)?;
    let got: Vec<u64> = pool
        .imap_unordered(square, 0..50)?
        .collect::<Result<_, _>>()?;
    assert_eq!(got, serial[..50]);
    // A failing task is an Err item and the iteration goes on (PL-12's shape).
    let got: Vec<Result<i32, Error>> = pool.imap(fails, vec![1, -1, 2])?.collect();
    assert!(
        matches!(got[..], [Ok(2), Err(Error::TaskFailed(_)), Ok(4)]),
        "{got:?}"
    );
    Ok(())
}

fn chunksize_zero() -> TestResult {
    let pool = Pool::new(1)?;
    let is_bad = |e: Error| matches!(e, Error::InvalidArgument(_));
    assert!(is_bad(pool.map_chunked(square, 0..2, 0).unwrap_err()));
    assert!(is_bad(pool.imap_chunked(square, 0..2, 0).unwrap_err()));
    assert!(is_bad(
        pool.imap_unordered_chunked(square, 0..2, 0).unwrap_err()
    ));
    assert!(is_bad(
        pool.map_async_with(square, 0..2, Some(0), |_| {}, |_| {})
            .unwrap_err()
    ));
    Ok(())
}

fn bad_sizes() -> TestResult {
    assert!(matches!(Pool::new(0), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        Pool::builder().processes(1).max_tasks_per_child(0).build(),
        Err(Error::InvalidArgument(_))
    ));
    let pool = Pool::new(3)?;
    assert_eq!(pool.pids().len(), 3);
    Ok(())
}

/// Survives SIGTERM (a flag catches it), then sleeps `ms`.
fn deaf_to_term(ms: u64) -> u64 {
    let flag = multiproc::process::SignalFlag::register(Signal::TERM).expect("flag");
    sleep_ms(ms);
    drop(flag);
    ms
}

fn terminate_long_task() -> TestResult {
    let pool = Pool::new(2)?;
    let long = pool.apply_async(sleep_ms, 60_000)?;
    // The other worker ignores SIGTERM: terminate falls back to SIGKILL in time.
    let deaf = pool.apply_async(deaf_to_term, 60_000)?;
    let queued = pool.map_async(sleep_ms, vec![60_000; 10_000])?;
    std::thread::sleep(Duration::from_millis(100));
    let pids = pool.pids();
    let start = Instant::now();
    pool.terminate();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "terminate took {took:?}");
    pool.join()?;
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(long.get().is_err());
    assert!(deaf.get().is_err());
    assert!(queued.get().is_err());
    assert!(
        eventually(Duration::from_secs(2), || pids
            .iter()
            .all(|&p| !process_running(p))),
        "workers survived terminate"
    );
    Ok(())
}

fn panicking_task() -> TestResult {
    let pool = Pool::new(1)?;
    let pid = pool.pids()[0];
    match pool.apply(panics, 3) {
        Err(Error::Panicked { message, location }) => {
            assert_eq!(message, "task 3 panicked on purpose");
            assert!(location.is_some_and(|l| l.contains("pool.rs")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.apply(panics, 4)?, 4);
    assert_eq!(pool.pids(), vec![pid], "the worker survived");
    assert!(matches!(
        pool.map(panics, 0..10),
        Err(Error::Panicked { .. })
    ));
    Ok(())
}

fn err_result_callback() -> TestResult {
    let pool = Pool::new(2)?;
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let r = pool.apply_async_with(
        fails,
        -3,
        |_| panic!("not a success"),
        move |e: &Error| *s.lock().unwrap() = Some(e.to_string()),
    )?;
    assert!(matches!(r.get(), Err(Error::TaskFailed(m)) if m == "negative input -3"));
    assert_eq!(
        seen.lock().unwrap().as_deref(),
        Some("task failed: negative input -3")
    );
    assert_eq!(pool.apply(fails, 4)?, 8);
    Ok(())
}

fn codec_results() -> TestResult {
    let pool = Pool::new(2)?;
    let pids = pool.pids();
    for i in 0..20 {
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let r = pool.apply_async_with(
            unencodable,
            i,
            |_| {},
            move |e: &Error| *s.lock().unwrap() = Some(matches!(e, Error::Codec(_))),
        )?;
        assert!(matches!(r.get(), Err(Error::Codec(_))));
        assert_eq!(*seen.lock().unwrap(), Some(true));
        // W2: a value the parent cannot decode fails that task only, never hangs.
        let r = pool.apply_async(undecodable, i)?;
        assert!(matches!(
            r.get_timeout(Duration::from_secs(10)),
            Err(Error::Codec(_))
        ));
    }
    assert_eq!(pool.pids(), pids, "the workers survived");
    assert_eq!(pool.apply(square, 9)?, 81);
    Ok(())
}

fn map_no_failfast() -> TestResult {
    let pool = Pool::new(2)?;
    let start = Instant::now();
    // The failing item comes first; the 300 ms ones still run before the map reports.
    let r = pool.map_chunked(fails_or_sleeps, vec![-1, 300, 300, -2], 1);
    assert!(matches!(r, Err(Error::TaskFailed(_))));
    assert!(start.elapsed() >= Duration::from_millis(300));
    pool.close();
    pool.join()?;
    Ok(())
}

fn fails_or_sleeps(x: i32) -> Result<i32, String> {
    if x < 0 {
        return Err(format!("bad {x}"));
    }
    std::thread::sleep(Duration::from_millis(x as u64));
    Ok(x)
}

fn max_tasks_per_child() -> TestResult {
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(1)
        .build()?;
    let first = pool.pids();
    let pids: Vec<u32> = pool.map_chunked(my_pid, 0..6, 1)?;
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        6,
        "each task ran in a fresh worker: {pids:?}"
    );
    assert!(pids.iter().all(|&p| p != 0));
    assert!(eventually(Duration::from_secs(5), || pool
        .pids()
        .iter()
        .all(|p| !first.contains(p))));
    // PL-30: close with pending tasks, then join: no hang, every result right.
    let r = pool.map_async(sleep_ms, vec![300; 6])?;
    pool.close();
    pool.join()?;
    assert_eq!(r.get()?, vec![300; 6]);
    // PL-29: 100 tasks on 3 workers retired every 10 tasks.
    let pool = Pool::builder()
        .processes(3)
        .max_tasks_per_child(10)
        .build()?;
    let results: Vec<u64> = (0..100)
        .map(|i| pool.apply_async(square, i))
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .map(|r| r.get())
        .collect::<Result<_, _>>()?;
    assert_eq!(results, (0..100).map(square).collect::<Vec<_>>());
    Ok(())
}

/// The workers' counter: a static, as the initializer is a plain `fn`. Emptied when the
/// test ends, so its memory descriptor does not outlive the test (the harness checks).
static INIT_COUNT: std::sync::Mutex<Option<Value<u32>>> = std::sync::Mutex::new(None);

fn init_counter() -> Value<u32> {
    let slot = INIT_COUNT.lock().unwrap_or_else(|p| p.into_inner());
    slot.clone().expect("the test set the counter")
}

struct EmptyInitCount;

impl Drop for EmptyInitCount {
    fn drop(&mut self) {
        INIT_COUNT.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

fn count_start(add: u32) {
    init_counter().fetch_add(add);
}

fn init_count(_: u32) -> u32 {
    init_counter().load()
}

fn initializer_once() -> TestResult {
    let counter = Value::new(0)?;
    *INIT_COUNT.lock().unwrap() = Some(counter.clone());
    let _empty = EmptyInitCount;
    let pool = Pool::builder()
        .processes(1)
        .initializer(count_start, 1)
        .build()?;
    assert_eq!(pool.map(init_count, 0..20)?, vec![1; 20]);
    drop(pool);
    counter.store(0);
    let pool = Pool::builder()
        .processes(3)
        .initializer(count_start, 1)
        .build()?;
    pool.map_chunked(sleep_ms, vec![10; 30], 1)?;
    pool.close();
    pool.join()?;
    assert_eq!(counter.load(), 3, "once per worker");
    Ok(())
}

/// PL-36: the initializer marks its worker (`<pid>-<helper pid>`) and fails in the second
/// worker, after a pause that lets the others start.
fn mark_or_fail(dir: String) {
    let me = std::process::id();
    let parent = std::os::unix::process::parent_id();
    std::fs::write(format!("{dir}/{me}-{parent}"), b"").expect("mark");
    if multiproc::current_process().name() == "PoolWorker-2" {
        std::thread::sleep(Duration::from_millis(1000));
        panic!("the initializer fails on purpose");
    }
}

/// PL-36 under Fork (tests/start_methods.rs has Spawn and Forkserver): `build` fails with
/// the initializer's panic, and the workers already started and the helper are reaped.
fn failing_initializer() -> TestResult {
    let dir = common::TempDir::new("pl36")?;
    let err = Pool::builder()
        .processes(3)
        .initializer(mark_or_fail, dir.path().to_str().unwrap().to_string())
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Panicked { message, .. } if message.contains("on purpose")),
        "{err:?}"
    );
    let mut started = 0;
    for entry in std::fs::read_dir(dir.path())? {
        let name = entry?.file_name().into_string().unwrap();
        let (pid, helper) = name.split_once('-').unwrap();
        let (pid, helper): (u32, u32) = (pid.parse()?, helper.parse()?);
        assert_ne!(helper, std::process::id());
        assert_eq!(common::process_state(pid), None, "worker {pid} is left");
        assert_eq!(
            common::process_state(helper),
            None,
            "helper {helper} is left"
        );
        started += 1;
    }
    assert!(started >= 2, "{started} workers started");
    Ok(())
}

/// Sleeps `|ms|` ms, then fails when `ms` is negative.
fn fail_after(ms: i64) -> Result<i64, String> {
    std::thread::sleep(Duration::from_millis(ms.unsigned_abs()));
    if ms < 0 {
        return Err(format!("failed after {}", -ms));
    }
    Ok(ms)
}

/// PL-24: chunks of 1 on 2 workers; the first fails at once, a later one after 150 ms, and
/// one runs 400 ms: `on_err` runs once, with the first error received, after all of them.
fn first_error_after_every_chunk() -> TestResult {
    let pool = Pool::new(2)?;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (g, e) = (calls.clone(), calls.clone());
    let start = Instant::now();
    let r = pool.map_async_with(
        fail_after,
        vec![-1, 400, -150],
        Some(1),
        move |_: &Vec<i64>| g.lock().unwrap().push(("ok".to_string(), start.elapsed())),
        move |err: &Error| e.lock().unwrap().push((err.to_string(), start.elapsed())),
    )?;
    match r.get_timeout(Duration::from_secs(20)) {
        Err(Error::TaskFailed(m)) => assert_eq!(m, "failed after 1"),
        other => panic!("{other:?}"),
    }
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].0.contains("failed after 1"), "{calls:?}");
    assert!(
        calls[0].1 >= Duration::from_millis(400),
        "{calls:?}: before every chunk ended"
    );
    Ok(())
}

/// 1 MiB of text in, the same back (a `String` travels as one run of bytes).
fn echo_mib(v: String) -> String {
    v
}

/// PL-25: 200 round trips of 1 MiB arguments and results (200 MiB through the pool) leave
/// the parent's memory where 20 of them left it: nothing is kept once a call completes.
fn nothing_retained() -> TestResult {
    let pool = Pool::new(2)?;
    let round = |n: usize| -> TestResult {
        for _ in 0..n {
            let rs = (0..2)
                .map(|i| pool.apply_async(echo_mib, i.to_string().repeat(1 << 20)))
                .collect::<Result<Vec<_>, _>>()?;
            for r in rs {
                assert_eq!(r.get()?.len(), 1 << 20);
            }
        }
        Ok(())
    };
    round(10)?;
    let rss = rss_kib();
    round(100)?;
    let grown = rss_kib().saturating_sub(rss);
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB over 200 MiB of round trips"
    );
    Ok(())
}

fn join_before_close() -> TestResult {
    let pool = Pool::new(1)?;
    assert!(matches!(pool.join(), Err(Error::InvalidState(m)) if m.contains("still running")));
    pool.close();
    pool.join()?;
    pool.join()?;
    pool.terminate(); // harmless after close + join (PL-35)
    Ok(())
}

fn after_close() -> TestResult {
    let pool = Pool::new(1)?;
    let r = pool.apply_async(sleep_ms, 200)?;
    pool.close();
    let refused = |e: Error| matches!(e, Error::InvalidState(ref m) if m == "pool not running");
    assert!(refused(pool.apply(square, 1).unwrap_err()));
    assert!(refused(pool.apply_async(square, 1).unwrap_err()));
    assert!(refused(pool.map(square, 0..3).unwrap_err()));
    assert!(refused(pool.imap(square, 0..3).unwrap_err()));
    assert!(refused(pool.starmap(mul, vec![(1, 2)]).unwrap_err()));
    pool.join()?;
    assert_eq!(r.get()?, 200, "close lets queued tasks finish");
    let pool = Pool::new(1)?;
    pool.terminate();
    assert!(refused(pool.map_async(square, 0..3).unwrap_err()));
    pool.join()?;
    Ok(())
}

fn worker_killed() -> TestResult {
    let pool = Pool::new(2)?;
    let before = pool.pids();
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let doomed = pool.apply_async_with(
        die_on_zero,
        0,
        |_| {},
        move |e: &Error| *s.lock().unwrap() = Some(e.to_string()),
    )?;
    let others: Vec<_> = (1..=20)
        .map(|i| pool.apply_async(die_on_zero, i))
        .collect::<Result<_, _>>()?;
    match doomed.get_timeout(Duration::from_secs(20)) {
        Err(Error::WorkerDied(m)) => assert!(m.contains("signal"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(seen
        .lock()
        .unwrap()
        .as_deref()
        .unwrap()
        .contains("worker died"));
    for (i, r) in (1..=20).zip(&others) {
        assert_eq!(r.get_timeout(Duration::from_secs(20))?, i);
    }
    assert!(eventually(Duration::from_secs(5), || pool.pids() != before));
    assert_eq!(pool.apply(square, 6)?, 36, "the pool stays usable");
    // Killed from outside, mid-task.
    let long = pool.apply_async(sleep_ms, 5_000)?;
    std::thread::sleep(Duration::from_millis(200));
    let busy = pool.pids();
    for pid in &busy {
        let _ = send_signal(*pid, Signal::KILL);
    }
    assert!(matches!(
        long.get_timeout(Duration::from_secs(20)),
        Err(Error::WorkerDied(_))
    ));
    assert_eq!(pool.map(square, 0..10)?.len(), 10);
    pool.close();
    let start = Instant::now();
    pool.join()?;
    assert!(start.elapsed() < Duration::from_secs(10));
    Ok(())
}

fn worker_exits() -> TestResult {
    let pool = Pool::new(1)?;
    let r = pool.apply_async(exit_on_zero, 0)?;
    let after = pool.apply_async(exit_on_zero, 5)?;
    match r.get_timeout(Duration::from_secs(20)) {
        Err(Error::WorkerDied(m)) => assert!(m.contains("code 7"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(after.get_timeout(Duration::from_secs(20))?, 5);
    pool.close();
    pool.join()?;
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn imap_endless() -> TestResult {
    let pool = Pool::new(2)?;
    let mut it = pool.imap(square, 0u64..)?;
    for i in 0..200 {
        assert_eq!(it.next().transpose()?, Some(i * i));
    }
    let rss = rss_kib();
    let mut taken = 200;
    for v in it.by_ref().take(800) {
        v?;
        taken += 1;
    }
    assert_eq!(taken, 1000);
    let grown = rss_kib().saturating_sub(rss);
    assert!(grown < 4096, "RSS grew by {grown} KiB over 800 items");
    drop(it);
    // The endless unordered form too.
    let n = pool.imap_unordered(square, 0u64..)?.take(1000).count();
    assert_eq!(n, 1000);
    Ok(())
}

fn callbacks_order() -> TestResult {
    let pool = Pool::new(2)?;
    let order = Arc::new(Mutex::new(Vec::new()));
    let threads = Arc::new(Mutex::new(Vec::new()));
    let mut results = Vec::new();
    for ms in [400u64, 50, 250] {
        let (o, t) = (order.clone(), threads.clone());
        results.push(pool.apply_async_with(
            sleep_ms,
            ms,
            move |v: &u64| {
                o.lock().unwrap().push(*v);
                t.lock().unwrap().push(std::thread::current().id());
            },
            |_| {},
        )?);
    }
    for r in &results {
        r.wait();
    }
    // Two workers: 400 and 50 start at once; 250 starts at 50 and ends at 300.
    assert_eq!(*order.lock().unwrap(), vec![50, 250, 400]);
    let t = threads.lock().unwrap();
    assert!(t.iter().all(|id| *id == t[0]) && t[0] != std::thread::current().id());
    Ok(())
}

fn threaded_parent() -> TestResult {
    let pool = Pool::new(2)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let children_before = multiproc::active_children().len();
    let before = pool.pids();
    let long = pool.apply_async(sleep_ms, 5_000)?;
    std::thread::sleep(Duration::from_millis(200));
    for pid in &before {
        let _ = send_signal(*pid, Signal::KILL);
    }
    assert!(matches!(
        long.get_timeout(Duration::from_secs(20)),
        Err(Error::WorkerDied(_))
    ));
    assert!(eventually(Duration::from_secs(5), || pool
        .pids()
        .iter()
        .all(|p| !before.contains(p))));
    assert_eq!(pool.map(square, 0..100)?.len(), 100);
    // The replacements are not children of this (threaded) process.
    assert_eq!(multiproc::active_children().len(), children_before);
    for pid in pool.pids() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let ppid: u32 = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()?;
        assert_ne!(ppid, std::process::id());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().unwrap();
    pool.close();
    pool.join()?;
    Ok(())
}

fn threaded_build() -> TestResult {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let err = Pool::builder()
        .processes(1)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap_err();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().unwrap();
    match err {
        Error::InvalidState(m) => assert!(m.contains("threads"), "{m}"),
        other => panic!("{other:?}"),
    }
    Ok(())
}
