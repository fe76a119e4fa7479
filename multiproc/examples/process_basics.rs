//! Seed 002: creating processes two ways, `is_alive`, `join` with a timeout, daemons.
//!
//! Run: `cargo run --example process_basics`. Prints pids, then `p.start前--> False`,
//! `p.start后--> True`, `子进程结束后--> False` (Python's spelling); `p.join后` comes one
//! second after `p.join前` and before the child's `子进程中`; the daemon's `----------` never
//! appears. Times print as `time.time()` does, seconds since the epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use multiproc::{current_process, parent_process, Child, Error, Process, Run};

#[path = "support/py.rs"]
mod py;

/// The seed's `MyProcess(Process)` with its `run` method.
struct MyProcess {
    name: String,
}

impl Run for MyProcess {
    type Output = ();
    fn run(self) {
        println!(
            "父进程 {}",
            parent_process().map_or(0, |p| p.pid().as_raw())
        );
        println!("子进程 {}", current_process().pid());
        println!("子进程的名字 {}", self.name);
    }
}

fn now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", t.as_secs(), t.subsec_millis())
}

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A closure with an argument.
    let word = "haha";
    let mut p = Process::new(move || {
        println!(
            "父进程 {}",
            parent_process().map_or(0, |p| p.pid().as_raw())
        );
        println!("子进程 {}", current_process().pid());
        println!("传入的参数: {word}");
    })
    .start()?;
    println!("主进程 {}", current_process().pid());
    p.join()?;

    // 2. A type that implements `Run`, the seed's subclass.
    Process::new(MyProcess {
        name: "haha".into(),
    })
    .name("haha")
    .start()?
    .join()?;

    // 3. is_alive before start, after start, after the end.
    let mut p: Option<Child<()>> = None;
    println!(
        "p.start前--> {}",
        py::bool(p.as_ref().is_some_and(|c| c.is_alive()))
    );
    p = Some(Process::new(|| std::thread::sleep(Duration::from_secs(1))).start()?);
    println!(
        "p.start后--> {}",
        py::bool(p.as_ref().is_some_and(|c| c.is_alive()))
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "子进程结束后--> {}",
        py::bool(p.as_ref().is_some_and(|c| c.is_alive()))
    );

    // 4. join with a timeout returns before the child ends.
    let mut p = Process::new(|| {
        std::thread::sleep(Duration::from_secs(2));
        println!("子进程中--> {}", now());
    })
    .start()?;
    println!("p.join前--> {}", now());
    match p.join_timeout(Duration::from_secs(1)) {
        Err(Error::Timeout) => {} // p.join(1): the child is still running
        other => other?,
    }
    println!("p.join后--> {}", now());
    p.join()?;

    // 5. A daemon dies with its parent: this parent returns at once, so `----------` is
    //    never printed.
    let mut parent = Process::new(|| {
        let _daemon = Process::new(|| {
            std::thread::sleep(Duration::from_secs(2));
            println!("----------");
        })
        .daemon(true)
        .start()
        .expect("start the daemon");
        println!("++++++++++");
    })
    .start()?;
    parent.join()?;
    Ok(())
}
