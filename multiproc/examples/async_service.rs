//! A tokio service fed by worker processes: 4 workers put jobs on a shared-memory `Queue`;
//! the server, one tokio runtime on one thread, awaits them (`get_async`), has a process
//! `Pool` weigh each job and awaits the results (an `AsyncResult` is a `Future`), and
//! answers 2 client processes that connect to its `Listener` (`accept_async`, `recv_async`,
//! `send_async`); it awaits every child's end (`join_async`). No task holds a thread while
//! it waits, so the one runtime thread serves them all.
//!
//! Run: `cargo run --features tokio --example async_service`. Prints what each client
//! asked and was told, then the totals.
//!
//! Children and the pool are started before the runtime exists: forking a process that has
//! threads is refused (see the crate docs), and the pool's own result thread is started
//! last.

use multiproc::connection::{Client, Listener};
use multiproc::{Pool, Process, Queue};
use serde::{Deserialize, Serialize};

/// A job a worker hands to the server.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    worker: u32,
    n: u64,
}

const WORKERS: u32 = 4;
const JOBS_PER_WORKER: u64 = 5;
const AUTHKEY: &[u8] = b"async-service";

/// The pool's work on one job.
fn weigh(n: u64) -> u64 {
    n * n
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs: Queue<Job> = Queue::bounded(4)?;
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let jobs = jobs.clone();
        workers.push(
            Process::new(move || {
                for i in 0..JOBS_PER_WORKER {
                    jobs.put(Job {
                        worker,
                        n: u64::from(worker) * 100 + i,
                    })
                    .unwrap();
                }
                JOBS_PER_WORKER
            })
            .name(format!("worker-{worker}"))
            .start()?,
        );
    }

    // An abstract unix address: no socket file to clean up, gone with the listener.
    let address = format!("unix:@multiproc-async-service-{}", std::process::id());
    let listener = Listener::bind(address.as_str(), Some(AUTHKEY))?;
    let mut clients = Vec::new();
    for client in 0..2u32 {
        let address = address.clone();
        clients.push(
            Process::new(move || {
                // Client `c` asks for the totals of workers `c` and `c + 2`.
                let mut server = Client::connect(address.as_str(), Some(AUTHKEY)).unwrap();
                let mut answers = Vec::new();
                for worker in [client, client + 2] {
                    server.send(&worker).unwrap();
                    answers.push(server.recv::<(u32, u64)>().unwrap());
                }
                answers
            })
            .start()?,
        );
    }
    let pool = Pool::new(2)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Each client's server task waits until the totals are published.
        let (totals_tx, totals_rx) = tokio::sync::watch::channel(None::<Vec<u64>>);
        let acceptor = tokio::spawn(async move {
            let mut servers = Vec::new();
            for _ in 0..2 {
                let mut conn = listener.accept_async().await.expect("a client");
                let mut totals_rx = totals_rx.clone();
                servers.push(tokio::spawn(async move {
                    while let Ok(worker) = conn.recv_async::<u32>().await {
                        let totals = totals_rx
                            .wait_for(Option::is_some)
                            .await
                            .expect("the totals are published")
                            .clone()
                            .expect("published");
                        conn.send_async(&(worker, totals[worker as usize]))
                            .await
                            .expect("the client listens");
                    }
                }));
            }
            for server in servers {
                server.await.expect("server task");
            }
        });

        // Every job goes to the pool as it arrives; then the results are awaited.
        let mut weighing = Vec::new();
        for _ in 0..u64::from(WORKERS) * JOBS_PER_WORKER {
            let job = jobs.get_async().await.expect("a job");
            weighing.push((
                job.worker,
                pool.apply_async(weigh, job.n).expect("submitted"),
            ));
        }
        let mut totals = vec![0u64; WORKERS as usize];
        for (worker, weight) in weighing {
            totals[worker as usize] += weight.await.expect("weighed");
        }
        totals_tx.send_replace(Some(totals.clone()));

        for (i, client) in clients.iter_mut().enumerate() {
            for (worker, total) in client.join_async().await.expect("client") {
                println!("client {i}: worker {worker} total {total}");
            }
        }
        let mut jobs_done = 0;
        for worker in &mut workers {
            jobs_done += worker.join_async().await.expect("worker");
        }
        acceptor.await.expect("acceptor");
        println!("{jobs_done} jobs from {WORKERS} workers, totals {totals:?}");
    });
    pool.close();
    pool.join()?;
    Ok(())
}
