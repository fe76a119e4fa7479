//! Seed 001: signals between processes, like `os.kill(pid, sig)` and `kill -l`.
//!
//! Run: `cargo run --example signals`. A child catches `SIGUSR1` through a flag; `SIGTERM`
//! and `SIGKILL` end children with exit codes `-15` and `-9`.

use std::time::Duration;

use multiproc::process::{send_signal, SignalFlag};
use multiproc::{pipe, Process, Signal};

#[path = "support/py.rs"]
mod py;

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let names: Vec<String> = Signal::all().iter().take(9).map(|s| s.name()).collect();
    println!("kill -l: {} ...", names.join(" "));

    let (mut ready, mut ready_tx) = pipe()?;
    // A closure that never returns has type `!`; say `-> ()` so its output type is known.
    let mut child = Process::new(move || -> () {
        let usr1 = SignalFlag::register(Signal::USR1).expect("install the handler");
        ready_tx.send(&()).expect("tell the parent");
        loop {
            if usr1.take() {
                println!("child got SIGUSR1");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .start()?;
    ready.recv::<()>()?;
    send_signal(child.pid(), Signal::USR1)?; // os.kill(pid, signal.SIGUSR1)
    std::thread::sleep(Duration::from_millis(200));
    child.terminate()?; // SIGTERM
    let _ = child.join();
    println!(
        "exit code after SIGTERM: {}",
        py::exitcode(child.exit_code())
    );

    let mut child = Process::new(|| std::thread::sleep(Duration::from_secs(60))).start()?;
    child.signal(Signal::KILL)?;
    let _ = child.join();
    println!(
        "exit code after SIGKILL: {}",
        py::exitcode(child.exit_code())
    );
    Ok(())
}
