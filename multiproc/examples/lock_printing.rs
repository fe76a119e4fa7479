//! Seed 002: three processes print `12`, wait 5 ms, then print `34`, three times each.
//! With the `Lock` each process prints its three lines alone, so every line is `1234`.
//!
//! Run: `cargo run --example lock_printing` (nine lines `1234`), or
//! `cargo run --example lock_printing -- --no-lock` to see the pieces interleave
//! (`121234`, a lone `34`, ...), as in the seed's first version. Every piece is written
//! at once, as with `python -u`, so the output is the same on a terminal, in a pipe or in
//! a file.

use std::io::Write;
use std::time::Duration;

use multiproc::{Lock, Process};

fn print_three_lines() {
    let mut out = std::io::stdout();
    for _ in 0..3 {
        // Flushed at once, as `python -u` does (a plain `python` flushes at once only to a
        // terminal: redirected to a file, its pieces would not interleave), so the pieces
        // can interleave without the lock, wherever the output goes.
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
