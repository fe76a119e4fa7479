//! Start methods from an ordinary `#[test]`: the default libtest harness runs threads, so
//! these children come from a threaded process (contract sections CX, DD-07, DD-08, W6).

use std::time::Duration;

use multiproc::{Error, Process, Signal, StartMethod};

fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn run_fn_from_a_threaded_test_uses_the_forkserver() {
    let mut child = Process::run_fn(double, 21).start().unwrap();
    assert_eq!(child.join().unwrap(), 42);
    assert_eq!(child.exit_code(), Some(0));
}

#[test]
fn run_fn_under_spawn() {
    let mut child = Process::run_fn(double, 5)
        .start_method(StartMethod::Spawn)
        .start()
        .unwrap();
    assert_eq!(child.join().unwrap(), 10);
    assert_eq!(child.exit_code(), Some(0));
}

fn sleepy(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn terminate_under_both() {
    for m in [StartMethod::Spawn, StartMethod::Forkserver] {
        let mut child = Process::run_fn(sleepy, 60_000)
            .start_method(m)
            .start()
            .unwrap();
        assert!(child
            .join_timeout(Duration::from_millis(100))
            .unwrap()
            .is_none());
        child.terminate().unwrap();
        match child.join() {
            Err(Error::Signaled(s)) => assert_eq!(s, Signal::TERM),
            other => panic!("{m:?}: {other:?}"),
        }
        assert_eq!(child.exit_code(), Some(-15));
    }
}
