//! Two unrelated programs exchange jobs through a named queue and share a named semaphore:
//! seed 003's message queues and semaphore sets, by name instead of by inheritance.
//!
//! - `named_queue consumer NAME`: opens (or creates) the queue `NAME-jobs` and the semaphore
//!   `NAME-done`, squares each job it gets, and releases `NAME-done` once per job, until it
//!   gets the stop job.
//! - `named_queue producer NAME N`: opens (or creates) the same two objects, puts the jobs
//!   `0..N`, waits on `NAME-done` for all of them, sends the stop job, and removes both names.
//!
//! Either may start first: both use `open_or_create`, and creation is atomic, so the two
//! programs never see half a queue. With no arguments, the example runs a consumer and a
//! producer as two processes that share nothing but the name.
//!
//! Run: `cargo run --example named_queue`. Prints `job 0 -> 0` ... `job 9 -> 81` (the
//! consumer), `10 jobs done` (the producer), then `结束`.

use std::time::Duration;

use multiproc::{Process, Queue, Semaphore};
use serde::{Deserialize, Serialize};

/// What travels through the queue.
#[derive(Debug, Serialize, Deserialize)]
enum Job {
    Square(u64),
    Stop,
}

/// How long the producer waits for one job to be done before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

fn objects(name: &str) -> multiproc::Result<(Queue<Job>, Semaphore)> {
    let jobs = Queue::<Job>::open_or_create(&format!("{name}-jobs"), None)?;
    let done = Semaphore::open_or_create(&format!("{name}-done"), 0)?;
    Ok((jobs, done))
}

fn consumer(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (jobs, done) = objects(name)?;
    while let Job::Square(n) = jobs.get()? {
        println!("job {n} -> {}", n * n);
        done.release()?;
    }
    Ok(())
}

fn producer(name: &str, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let (jobs, done) = objects(name)?;
    for i in 0..n {
        jobs.put(Job::Square(i)).map_err(|e| e.to_string())?;
    }
    for _ in 0..n {
        done.acquire_timeout(PATIENCE)?;
    }
    println!("{n} jobs done");
    jobs.put(Job::Stop).map_err(|e| e.to_string())?;
    Queue::<Job>::unlink(&format!("{name}-jobs"))?;
    Semaphore::unlink(&format!("{name}-done"))?;
    Ok(())
}

fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("named_queue-{}", std::process::id());
    // Two processes that capture nothing but the name.
    let n1 = name.clone();
    let mut consumer_proc =
        Process::new(move || consumer(&n1).map_err(|e| e.to_string())).start()?;
    // The consumer finishes its lines before the producer hears that the jobs are done.
    let mut producer_proc =
        Process::new(move || producer(&name, 10).map_err(|e| e.to_string())).start()?;
    producer_proc.join()??;
    consumer_proc.join()??;
    println!("结束");
    Ok(())
}

/// Runs the example; `tour` calls it too (with no arguments: the demo).
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["consumer", name] => consumer(name),
        ["producer", name, n] => producer(name, n.parse()?),
        _ => demo(),
    }
}
