//! A `#[tokio::main]` program (a multi-threaded runtime) starts 4 worker processes and
//! exchanges 10,000 jobs and 10,000 results with them over two queues.
//!
//! Run: `cargo run --example tokio_workers`. Prints how many threads the program has, what
//! each worker did, and that every result came back right.
//!
//! A process with threads cannot fork a closure safely (another thread may hold a lock the
//! child would inherit held), so the workers are `Process::run_fn(worker, queues)`: a plain
//! function and an argument that travels. With no start method chosen, multiproc sees the
//! runtime's threads and starts them from its forkserver; the queues go along as arguments
//! (their descriptors ride beside the message). The parent's queue calls block, so they run
//! on tokio's blocking pool (`spawn_blocking`), never on a runtime worker.

use multiproc::{Process, Queue};

const WORKERS: usize = 4;
const JOBS: u64 = 10_000;

/// What a worker gets: jobs to read (`None` means stop) and where to put the results.
type WorkerQueues = (Queue<Option<u64>>, Queue<(u64, u64)>);

/// A worker process: squares every job and says how many it did.
fn worker((jobs, results): WorkerQueues) -> u64 {
    let mut done = 0;
    while let Some(n) = jobs.get().expect("a job") {
        results.put((n, n * n)).expect("room for a result");
        done += 1;
    }
    done
}

/// The threads of this process, from `/proc/self/status`.
fn threads() -> Result<usize, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .ok_or("no Threads line")?;
    Ok(line.trim().parse()?)
}

/// An error a blocking task can hand back to the runtime.
type TaskError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the example; `tour` may call it too.
#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("threads in this program: more than one: {}", threads()? > 1);
    let jobs: Queue<Option<u64>> = Queue::new()?;
    let results: Queue<(u64, u64)> = Queue::new()?;

    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let queues = (jobs.clone(), results.clone());
        workers.push(
            Process::run_fn(worker, queues)
                .name(format!("worker-{i}"))
                .start()?,
        );
    }

    // Feed the jobs and collect the results at the same time: a blocking task each.
    let feeder = tokio::task::spawn_blocking(move || -> Result<(), TaskError> {
        for n in (0..JOBS).map(Some).chain((0..WORKERS).map(|_| None)) {
            jobs.put(n)?;
        }
        Ok(())
    });
    let collector = tokio::task::spawn_blocking(move || -> Result<usize, TaskError> {
        let mut seen = vec![false; JOBS as usize];
        for _ in 0..JOBS {
            let (n, square) = results.get()?;
            if square != n * n || std::mem::replace(&mut seen[n as usize], true) {
                return Err(format!("job {n}: wrong or repeated result {square}").into());
            }
        }
        Ok(seen.iter().filter(|&&s| s).count())
    });
    let (fed, answered) = tokio::try_join!(feeder, collector)?;
    fed.map_err(|e| e.to_string())?;
    let answered = answered.map_err(|e| e.to_string())?;

    let done = tokio::task::spawn_blocking(move || -> multiproc::Result<Vec<u64>> {
        workers.iter_mut().map(|w| w.join()).collect()
    })
    .await??;
    println!("jobs done per worker: {done:?}");
    println!(
        "{WORKERS} workers, {JOBS} jobs sent, {answered} results back and right, {} done",
        done.iter().sum::<u64>()
    );
    Ok(())
}
