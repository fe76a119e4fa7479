//! Beyond one machine, on one Redis server started for each run: the distributed pool
//! (2 worker processes, this binary run as workers) beside Celery and RQ on the same kind of
//! server, and the distributed queue beside raw `XADD` / `XREADGROUP` from Rust.

use std::process::{Child, Command};
use std::thread;

use multiproc::redis::{Pool, Queue, Registry, Server, POOL_ENV, WORKER_ENV};
use serde::Deserialize;

use super::check;
use crate::harness::{Counts, Ctx, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

/// Workers in every distributed pool, as in the local pool rows.
const WORKERS: usize = 2;

/// The pool's name on the server.
const POOL: &str = "bench";

const CELERY: &str = "celery (redis broker+backend)";
const RQ: &str = "rq (redis)";
const RAW: &str = "floor: raw XADD/XREADGROUP (redis crate)";

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "redis_pool_apply_async",
            "distributed pool apply_async via Redis, trivial function, 2 workers, with results",
            Unit::rate("k tasks/s", 1e3),
            Counts::new(10, 20_000, 50_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_apply_async(n)),
                System::new(CELERY, |ctx, n| broker_peer(ctx, "celery", n)),
                System::new(RQ, |ctx, n| broker_peer(ctx, "rq", n)),
            ],
        ),
        Scenario::new(
            "redis_pool_map",
            "distributed pool map via Redis, trivial function, 2 workers",
            Unit::rate("k items/s", 1e3),
            Counts::new(10, 200_000, 1_000_000),
            vec![System::new(MULTIPROC, |_, n| multiproc_map(n))],
        ),
        Scenario::new(
            "redis_queue",
            "queue via Redis, 1 producer + 1 consumer, u64 messages",
            Unit::rate("k msg/s", 1e3),
            Counts::new(10, 200_000, 1_000_000),
            vec![
                System::new(MULTIPROC, |_, n| multiproc_queue(n)),
                System::new(RAW, |_, n| raw_streams(n)),
            ],
        ),
    ]
}

/// The task every pool runs.
fn square(x: u64) -> u64 {
    x * x
}

/// The functions this binary offers when run as a worker (see `main`).
pub(crate) fn registry() -> Registry {
    Registry::new().register("square", square)
}

fn sum_of_squares(n: u64) -> u64 {
    (0..n).map(square).sum()
}

/// A server and [`WORKERS`] worker processes (this binary), killed on drop.
struct Cluster {
    server: Server,
    workers: Vec<Child>,
}

impl Cluster {
    fn start() -> Result<Cluster> {
        let server = Server::start()?;
        let mut cluster = Cluster {
            server,
            workers: Vec::new(),
        };
        for _ in 0..WORKERS {
            cluster.workers.push(
                Command::new(std::env::current_exe()?)
                    .env(WORKER_ENV, cluster.server.url())
                    .env(POOL_ENV, POOL)
                    .spawn()?,
            );
        }
        Ok(cluster)
    }

    /// A pool whose workers have answered before the clock starts.
    fn pool(&self) -> Result<Pool> {
        let pool = Pool::connect(self.server.url(), POOL, &registry())?;
        pool.map(square, 0..1000)?;
        Ok(pool)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn multiproc_apply_async(n: u64) -> Result<Outcome> {
    let cluster = Cluster::start()?;
    let pool = cluster.pool()?;
    let sample = Sample::time(n, || {
        let pending = (0..n)
            .map(|i| pool.apply_async(square, i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sum = 0;
        for r in pending {
            sum += r.get()?;
        }
        check("sum of results", sum, sum_of_squares(n))
    })?;
    Ok(Outcome::Sample(sample))
}

fn multiproc_map(n: u64) -> Result<Outcome> {
    let cluster = Cluster::start()?;
    let pool = cluster.pool()?;
    let sample = Sample::time(n, || {
        let out = pool.map(square, 0..n)?;
        check("sum of results", out.iter().sum(), sum_of_squares(n))
    })?;
    Ok(Outcome::Sample(sample))
}

/// One producer thread puts `n` values (pipelined), this thread gets them.
fn multiproc_queue(n: u64) -> Result<Outcome> {
    let server = Server::start()?;
    let url = server.url().to_string();
    let consumer: Queue<u64> = Queue::open(&url, "q")?;
    let producer: Queue<u64> = Queue::open(&url, "q")?;
    assert!(matches!(consumer.try_get(), Err(multiproc::Error::Empty)));
    let sample = Sample::time(n, || {
        thread::scope(|s| {
            let p = s.spawn(|| producer.put_many(0..n));
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.wrapping_add(consumer.get()?);
            }
            p.join().map_err(|_| "producer panicked")??;
            check("sum", sum, (0..n).fold(0u64, u64::wrapping_add))
        })
    })?;
    Ok(Outcome::Sample(sample))
}

/// The floor: the same messages through `XADD` pipelined by the thousand and
/// `XREADGROUP COUNT 100` with the previous batch's `XACK` in the same round trip, with
/// the `redis` crate directly, nothing else.
fn raw_streams(n: u64) -> Result<Outcome> {
    let server = Server::start()?;
    let client = redis::Client::open(server.url())?;
    let mut admin = client.get_connection()?;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("raw")
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query::<()>(&mut admin)?;
    let sample = Sample::time(n, || {
        thread::scope(|s| {
            let p = s.spawn(|| -> Result<()> {
                let mut conn = client.get_connection()?;
                let mut i = 0u64;
                while i < n {
                    let mut pipe = redis::pipe();
                    for v in i..n.min(i + 1000) {
                        pipe.cmd("XADD")
                            .arg("raw")
                            .arg("*")
                            .arg("m")
                            .arg(&v.to_le_bytes()[..])
                            .ignore();
                    }
                    pipe.query::<()>(&mut conn)?;
                    i += 1000;
                }
                Ok(())
            });
            let mut conn = client.get_connection()?;
            let (mut got, mut sum) = (0u64, 0u64);
            let mut acks: Vec<String> = Vec::new();
            while got < n {
                let mut pipe = redis::pipe();
                if !acks.is_empty() {
                    pipe.cmd("XACK").arg("raw").arg("g").arg(&acks[..]).ignore();
                }
                pipe.cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("g")
                    .arg("c")
                    .arg("COUNT")
                    .arg(100)
                    .arg("BLOCK")
                    .arg(1000)
                    .arg("STREAMS")
                    .arg("raw")
                    .arg(">");
                let (reply,): (Option<Vec<StreamReply>>,) = pipe.query(&mut conn)?;
                acks.clear();
                for (_, entries) in reply.into_iter().flatten() {
                    for (id, fields) in entries {
                        for (_, value) in fields {
                            let v = u64::from_le_bytes(value[..8].try_into()?);
                            sum = sum.wrapping_add(v);
                            got += 1;
                        }
                        acks.push(id);
                    }
                }
            }
            p.join().map_err(|_| "producer panicked")??;
            check("sum", sum, (0..n).fold(0u64, u64::wrapping_add))
        })
    })?;
    Ok(Outcome::Sample(sample))
}

/// One stream of an `XREADGROUP` reply: its key and its entries (id, field-value pairs).
type StreamReply = (String, Vec<(String, Vec<(String, Vec<u8>)>)>);

#[derive(Deserialize)]
struct PeerReply {
    ops: Option<u64>,
    seconds: Option<f64>,
    skip: Option<String>,
    error: Option<String>,
}

/// Celery or RQ with 2 workers on a server started for the run (`python/bench_broker.py`).
fn broker_peer(ctx: &mut Ctx, kind: &str, n: u64) -> Result<Outcome> {
    let Some(dir) = ctx.python_dir() else {
        return Ok(Outcome::Skipped("python3 is not available".into()));
    };
    let server = Server::start()?;
    let out = Command::new("python3")
        .arg("bench_broker.py")
        .arg(kind)
        .arg(server.url())
        .arg(n.to_string())
        .current_dir(dir)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let reply: PeerReply = serde_json::from_str(line).map_err(|e| {
        format!(
            "{kind}: bad reply {line:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    match reply {
        PeerReply {
            skip: Some(why), ..
        } => Ok(Outcome::Skipped(why)),
        PeerReply { error: Some(e), .. } => Err(e.into()),
        PeerReply {
            ops: Some(ops),
            seconds: Some(seconds),
            ..
        } if seconds > 0.0 => Ok(Outcome::Sample(Sample {
            ops,
            elapsed: std::time::Duration::from_secs_f64(seconds),
        })),
        _ => Err(format!("{kind}: bad reply {line:?}").into()),
    }
}
