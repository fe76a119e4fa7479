//! Seed 002: three processes print `12`, wait 5 ms, then print `34`, three times each.
//! With the `Lock` each process prints its three lines alone, so every line is `1234`.
//!
//! Run: `cargo run --example lock_printing` (nine lines `1234`), or
//! `cargo run --example lock_printing -- --no-lock` to see the pieces interleave
//! (`121234`, a lone `34`, ...), as in the seed's first version.

use std::io::Write;
use std::time::Duration;

use multiproc::{Lock, Process};

fn print_three_lines() {
    let mut out = std::io::stdout();
    for _ in 0..3 {
        // Flushed at once, like Python's print to a terminal, so the pieces can interleave.
        print!("12");
        out.flush().expect("flush stdout");
        std::thread::sleep(Duration::from_millis(5));
        println!("34");
    }
}

/// Runs the example.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let use_lock = !std::env::args().any(|a| a == "--no-lock");
    let lock = Lock::new()?;
    let children: Vec<_> = (0..3)
        .map(|_| {
            let lock = lock.clone();
            Process::new(move || {
                if use_lock {
                    // lock.acquire() ... lock.release(), as a guard.
                    let _guard = lock.lock().expect("lock");
                    print_three_lines();
                } else {
                    print_three_lines();
                }
            })
            .start()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        c.join()?;
    }
    Ok(())
}
