//! A pool whose workers could be on other machines: a Redis server is the broker, two
//! worker processes serve the pool, and the caller maps 10,000 tasks over them.
//!
//! One program plays every role. Run as a worker when `MULTIPROC_REDIS_WORKER` is set
//! (what another machine runs):
//!
//! ```text
//! MULTIPROC_REDIS_WORKER=redis://10.0.0.5:6379/0 MULTIPROC_REDIS_POOL=example \
//!     ./distributed_pool
//! ```
//!
//! Without it, the example is the caller: it uses the server named by `REDIS_URL` if set
//! (and then starts no worker of its own unless `--workers N` says so), or else starts a
//! throw-away `redis-server` on loopback and two workers (this same program with the
//! variable set), maps `square` over 0..10,000 and stops the workers with `SIGTERM`.
//!
//! Run: `cargo run --features redis --example distributed_pool` (needs `redis-server`).
//! Prints `workers: 2`, then `results: 10000`, then `sum of squares: 333283335000`.

use std::process::{Child, Command};
use std::time::Duration;

use multiproc::process::send_signal;
use multiproc::redis::{Pool, Registry, Server, POOL_ENV, WORKER_ENV};
use multiproc::{Pid, Signal};

/// The pool's name: workers and caller meet on it.
const POOL: &str = "example";

fn square(x: u64) -> u64 {
    x * x
}

/// The functions this program offers; the caller and the workers build the same one.
fn registry() -> Registry {
    Registry::new().register("square", square)
}

/// Worker processes started here, stopped with `SIGTERM` (and reaped) on drop.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = send_signal(Pid::from(child.id()), Signal::TERM);
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = registry();
    if registry.work_if_asked()? {
        return Ok(()); // a worker that was told to stop
    }

    // The broker: yours, or a throw-away one on loopback.
    let (_server, url, default_workers) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url, 0),
        Err(_) => {
            let server = Server::start()?;
            let url = server.url().to_string();
            (Some(server), url, 2)
        }
    };
    let args: Vec<String> = std::env::args().collect();
    let n_workers = match args.iter().position(|a| a == "--workers") {
        Some(i) => args.get(i + 1).ok_or("--workers needs a number")?.parse()?,
        None => default_workers,
    };

    // The workers: this same program, told by the environment to serve the pool.
    let mut workers = Workers(Vec::new());
    for _ in 0..n_workers {
        workers.0.push(
            Command::new(std::env::current_exe()?)
                .env(WORKER_ENV, &url)
                .env(POOL_ENV, POOL)
                .spawn()?,
        );
    }
    println!("workers: {n_workers}");

    let pool = Pool::connect(&url, POOL, &registry)?;
    let results = pool.map(square, 0..10_000u64)?;
    println!("results: {}", results.len());
    println!("sum of squares: {}", results.iter().sum::<u64>());

    // Nothing should be left in flight; stop the workers (the drop of `workers`), then
    // the server (the drop of `_server`).
    assert_eq!(pool.pending(), 0);
    drop(pool);
    drop(workers);
    std::thread::sleep(Duration::from_millis(10));
    Ok(())
}
