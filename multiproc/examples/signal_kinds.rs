//! Seed 001's signal list, three of its signals between processes: `SIGALRM 时钟信号`,
//! `SIGCHLD 子进程状态改变时给父进程发出`, `SIGINT CTRL+C`, each sent with `os.kill(pid, sig)`
//! ([`send_signal`]) and caught with a flag, the safe form of a Python handler.
//!
//! Run: `cargo run --example signal_kinds [alarm|chld|int]` (all three without an argument).
//! Exit codes print like Python's `p.exitcode`: a signal `N` that nobody catches ends the
//! child with `-N`. (Python's own default `SIGINT` handler raises `KeyboardInterrupt`, so an
//! uncaught Ctrl-C gives 1 there; a Rust child has no such handler and gives `-2`, as a
//! Python child that restored the default action does.)

use std::time::{Duration, Instant};

use multiproc::process::{send_signal, SignalFlag};
use multiproc::{pipe, Process, Signal};

#[path = "support/py.rs"]
mod py;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;
type Variant = fn() -> Result;

/// Waits for `flag` (at most 10 s, so a lost signal cannot hang the example).
fn wait_for(flag: &SignalFlag) -> bool {
    let t = Instant::now();
    while !flag.take() {
        if t.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Starts a child that waits for `sig` with a flag, prints `text` when it comes and returns.
fn catcher(sig: Signal, text: &'static str) -> Result<multiproc::Child<()>> {
    let (mut ready, mut ready_tx) = pipe()?;
    let child = Process::new(move || {
        let flag = SignalFlag::register(sig).expect("install the handler");
        ready_tx.send(&()).expect("tell the parent");
        if wait_for(&flag) {
            println!("{text}");
        }
    })
    .start()?;
    ready.recv::<()>()?; // the handler is in place before the signal is sent
    Ok(child)
}

/// A child that catches nothing: the signal's default action ends it.
fn uncaught(sig: Signal) -> Result {
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(60))).start()?;
    send_signal(p.pid(), sig)?;
    let _ = p.join();
    println!(
        "没有处理 {sig} 的子进程 p.exitcode --> {}",
        py::exitcode(p.exit_code())
    );
    Ok(())
}

/// SIGALRM, the clock signal: the parent is the clock and rings after one second.
fn alarm() -> Result {
    println!("SIGALRM 时钟信号");
    let mut p = catcher(Signal::ALRM, "子进程收到 SIGALRM")?;
    std::thread::sleep(Duration::from_secs(1));
    send_signal(p.pid(), Signal::ALRM)?; // os.kill(pid, signal.SIGALRM)
    p.join()?;
    println!("p.exitcode --> {}", py::exitcode(p.exit_code()));
    uncaught(Signal::ALRM)
}

/// SIGCHLD: the parent hears of every change of its child's state: stopped, continued,
/// ended.
fn chld() -> Result {
    println!("SIGCHLD 子进程状态改变时给父进程发出");
    let flag = SignalFlag::register(Signal::CHLD)?;
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(60))).start()?;
    for (sig, what) in [
        (Signal::STOP, "子进程暂停"),
        (Signal::CONT, "子进程继续"),
        (Signal::TERM, "子进程结束"),
    ] {
        send_signal(p.pid(), sig)?;
        let heard = wait_for(&flag);
        println!("{what} ({sig}): 父进程收到 SIGCHLD --> {}", py::bool(heard));
    }
    let _ = p.join();
    println!("p.exitcode --> {}", py::exitcode(p.exit_code()));
    Ok(())
}

/// SIGINT, what CTRL+C sends.
fn int() -> Result {
    println!("SIGINT CTRL+C");
    let mut p = catcher(Signal::INT, "子进程收到 SIGINT, 正常退出")?;
    send_signal(p.pid(), Signal::INT)?; // os.kill(pid, signal.SIGINT)
    p.join()?;
    println!("p.exitcode --> {}", py::exitcode(p.exit_code()));
    uncaught(Signal::INT)
}

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result {
    let which = std::env::args().nth(1);
    let all: [(&str, Variant); 3] = [("alarm", alarm), ("chld", chld), ("int", int)];
    let mut ran = false;
    for (name, run) in all {
        if which.as_deref().map_or(true, |w| w == name) {
            run()?;
            ran = true;
        }
    }
    if !ran {
        let which = which.unwrap_or_default();
        return Err(format!("unknown variant {which:?}: say alarm, chld or int").into());
    }
    Ok(())
}
