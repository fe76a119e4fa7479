//! A tokio service fed by worker processes: 4 workers put jobs on a shared-memory `Queue`;
//! the server, one tokio runtime, awaits them (`get_async`) while it answers 2 client
//! processes over pipes (`recv_async`, `send_async`) and awaits every child's end
//! (`join_async`). No task holds a thread while it waits, so one runtime thread serves all.
//!
//! Run: `cargo run --features tokio --example async_service`. Prints what each client
//! asked and was told, then the totals.
//!
//! Children are started before the runtime exists: forking a process that has threads is
//! refused (see the crate docs).

use multiproc::{pipe, Process, Queue};
use serde::{Deserialize, Serialize};

/// A job a worker hands to the server.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    worker: u32,
    n: u64,
}

const WORKERS: u32 = 4;
const JOBS_PER_WORKER: u64 = 5;

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
    let mut clients = Vec::new();
    let mut server_ends = Vec::new();
    for client in 0..2u32 {
        let (server_end, mut mine) = pipe()?;
        server_ends.push(server_end);
        clients.push(
            Process::new(move || {
                // Client `c` asks for the total of workers `c` and `c + 2`.
                let mut answers = Vec::new();
                for worker in [client, client + 2] {
                    mine.send(&worker).unwrap();
                    answers.push(mine.recv::<(u32, u64)>().unwrap());
                }
                answers
            })
            .start()?,
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Collect every job, then publish the totals per worker.
        let (totals_tx, totals_rx) = tokio::sync::watch::channel(None::<Vec<u64>>);
        let collector = tokio::spawn(async move {
            let mut totals = vec![0u64; WORKERS as usize];
            for _ in 0..u64::from(WORKERS) * JOBS_PER_WORKER {
                let job = jobs.get_async().await.expect("a job");
                totals[job.worker as usize] += job.n;
            }
            totals_tx.send_replace(Some(totals.clone()));
            totals
        });
        let mut servers = Vec::new();
        for mut conn in server_ends {
            let mut totals_rx = totals_rx.clone();
            servers.push(tokio::spawn(async move {
                while let Ok(worker) = conn.recv_async::<u32>().await {
                    let totals = totals_rx
                        .wait_for(Option::is_some)
                        .await
                        .expect("the collector publishes")
                        .clone()
                        .expect("published");
                    conn.send_async(&(worker, totals[worker as usize]))
                        .await
                        .expect("the client listens");
                }
            }));
        }
        for (i, client) in clients.iter_mut().enumerate() {
            for (worker, total) in client.join_async().await.expect("client") {
                println!("client {i}: worker {worker} total {total}");
            }
        }
        let mut jobs_done = 0;
        for worker in &mut workers {
            jobs_done += worker.join_async().await.expect("worker");
        }
        for server in servers {
            server.await.expect("server task");
        }
        let totals = collector.await.expect("collector");
        println!("{jobs_done} jobs from {WORKERS} workers, totals {totals:?}");
    });
    Ok(())
}
