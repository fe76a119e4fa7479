//! Seed 004: a sender process writes ten URLs into a pipe with random pauses; a receiver
//! loops forever printing what it reads. The parent joins the sender, then ends the
//! receiver with `terminate`, whatever it has not read yet.
//!
//! Run: `cargo run --example pipe_terminate`. Prints `Process is send :url_0` ...
//! `url_9`, interleaved with `Process rev:url_0` ... for as many as the receiver got to
//! (the race of the seed's program), then `p2.exitcode --> -15`. The seed pauses up to a
//! second; this one up to 50 ms.

use std::time::Duration;

use multiproc::{pipe, Connection, Process};

/// Python's `time.sleep(random.random())`, scaled to at most 50 ms.
fn random_pause(state: &mut u64) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    std::thread::sleep(Duration::from_millis(*state % 50));
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    t ^ u64::from(std::process::id()) | 1
}

/// The sender: `proc_send(pipe, urls)`.
fn proc_send(mut pipe: Connection, urls: Vec<String>) {
    let mut state = seed();
    for url in urls {
        println!("Process is send :{url}");
        pipe.send(&url).expect("send");
        random_pause(&mut state);
    }
}

/// The receiver: `proc_recv(pipe)`, which never returns on its own.
fn proc_recv(mut pipe: Connection) {
    let mut state = seed().rotate_left(17);
    loop {
        let url: String = pipe.recv().expect("recv");
        println!("Process rev:{url}");
        random_pause(&mut state);
    }
}

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (pipe0, pipe1) = pipe()?;
    // The parent keeps a copy of the sending end, as the seed's parent keeps both ends: the
    // receiver never sees EOF and waits in `recv` until it is terminated.
    let _keep = pipe0.try_clone()?;
    let urls: Vec<String> = (0..10).map(|i| format!("url_{i}")).collect();
    let mut p1 = Process::new(move || proc_send(pipe0, urls)).start()?;
    let mut p2 = Process::new(move || proc_recv(pipe1)).start()?;
    p1.join()?;
    p2.terminate()?;
    let _ = p2.join(); // Err(Signaled(SIGTERM)): the receiver was ended, as intended
    match p2.exit_code() {
        Some(code) => println!("p2.exitcode --> {code}"),
        None => println!("p2.exitcode --> None"),
    }
    Ok(())
}
