//! `soak --minutes N`: every component under load for N minutes (a fraction is allowed),
//! with memory and descriptors sampled each second; prints whether they stayed flat after
//! the warm-up, and exits with status 1 when they did not or a check failed.
//!
//! One hub process (this one) talks to a daemon child per component: a queue echo, a pipe
//! echo, a lock + barrier partner, a named-queue echo that opens its queues by name, a
//! Listener echo server that the hub connects to and leaves again; then a manager and a
//! pool (the pool's threads come last, as forks must come before threads). Each round also
//! creates and drops one of every object. Sampled: the hub's RSS and open descriptors, and
//! the RSS of the hub with every child (the pool's workers and the manager's server too).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use multiproc::connection::{Client, Listener};
use multiproc::{
    pipe, Array, Barrier, BoundedSemaphore, Condition, Connection, Event, JoinableQueue, Lock,
    Manager, Pid, Pool, Process, Queue, RLock, Semaphore, SharedMemory, SimpleQueue, Value,
};

use crate::ledger::{mix, Msg};

const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) fn main(args: &[String]) -> Result<ExitCode, String> {
    let minutes: f64 = match args {
        [flag, n] if flag == "--minutes" => n.parse().map_err(|e| format!("--minutes: {e}"))?,
        _ => return Err("usage: multiproc-chaos soak --minutes N".into()),
    };
    let length = Duration::from_secs_f64(minutes * 60.0);
    soak(length).map_err(|e| format!("soak: {e}"))
}

fn work(x: u64) -> u64 {
    mix(x)
}

/// Memory and descriptors at one instant.
#[derive(Clone, Copy, Debug)]
struct Sample {
    hub_rss_kib: u64,
    all_rss_kib: u64,
    fds: u64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn fd_count() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn soak(length: Duration) -> multiproc::Result<ExitCode> {
    let prefix = format!("mpchaos-{}-soak-", std::process::id());
    let (req_name, resp_name) = (format!("{prefix}req"), format!("{prefix}resp"));
    let sock = std::env::temp_dir().join(format!("{prefix}listener.sock"));
    let address = format!("unix:{}", sock.display());
    let key = b"soak key of 32 bytes, not secret".to_vec();
    let outcome = (|| {
        // Forks first.
        let (q_in, q_out) = (Queue::<Msg>::new()?, Queue::<Msg>::new()?);
        let (qi, qo) = (q_in.clone(), q_out.clone());
        let mut children = vec![Process::new(move || loop {
            let m = qi.get().unwrap();
            qo.put(m).unwrap();
        })
        .daemon(true)
        .start()?];
        let (mut near, mut far) = pipe()?;
        children.push(
            Process::new(move || {
                while let Ok(b) = far.recv_bytes() {
                    far.send_bytes(&b).unwrap();
                }
            })
            .daemon(true)
            .start()?,
        );
        let (lock, barrier, counter) = (Lock::new()?, Barrier::new(2)?, Value::<u64>::new(0)?);
        let (l2, b2, c2) = (lock.clone(), barrier.clone(), counter.clone());
        children.push(
            Process::new(move || loop {
                for _ in 0..100 {
                    let _g = l2.lock().unwrap();
                    c2.store(c2.load() + 1);
                }
                // Both done; then the hub checks the sum before the next round.
                b2.wait().unwrap();
                b2.wait().unwrap();
            })
            .daemon(true)
            .start()?,
        );
        let req = Queue::<Msg>::create(&req_name, None)?;
        let resp = Queue::<Msg>::create(&resp_name, None)?;
        let (rq, rs) = (req_name.clone(), resp_name.clone());
        children.push(
            Process::new(move || {
                let (req, resp) = (
                    Queue::<Msg>::open(&rq).unwrap(),
                    Queue::<Msg>::open(&rs).unwrap(),
                );
                loop {
                    resp.put(req.get().unwrap()).unwrap();
                }
            })
            .daemon(true)
            .start()?,
        );
        let listener = Listener::bind(address.as_str(), Some(&key))?;
        children.push(
            Process::new(move || loop {
                let Ok(mut conn) = listener.accept() else {
                    continue;
                };
                while let Ok(m) = conn.recv::<Msg>() {
                    if conn.send(&m).is_err() {
                        break;
                    }
                }
            })
            .daemon(true)
            .start()?,
        );
        let manager = Manager::start()?;
        let (dict, list) = (manager.dict::<u64, u64>()?, manager.list::<u64>()?);
        // Threads from here on.
        let pool = Pool::new(2)?;

        let mut pids: Vec<Pid> = children.iter().map(|c| c.pid()).collect();
        pids.extend(manager.server_pid());
        let mut samples: Vec<Sample> = Vec::new();
        let (start, mut next_sample) = (Instant::now(), Instant::now());
        let mut round = 0u64;
        let mut rng = fastrand::Rng::with_seed(7);
        while start.elapsed() < length {
            round += 1;
            // Queue, anonymous and named.
            for (put, get) in [(&q_in, &q_out), (&req, &resp)] {
                for seq in 0..200 {
                    put.put(Msg::new(0, seq, Msg::len_for(&mut rng)))
                        .map_err(multiproc::Error::from)?;
                }
                for seq in 0..200 {
                    let m = get.get_timeout(PATIENCE)?;
                    if m.verify().is_err() || m.seq != seq {
                        return Err(multiproc::Error::InvalidState(format!(
                            "queue echo: message {seq} came back wrong"
                        )));
                    }
                }
            }
            // Pipe, up to 1 MiB.
            for _ in 0..10 {
                let b = vec![round as u8; rng.usize(..1 << 20)];
                near.send_bytes(&b)?;
                if near.recv_bytes()? != b {
                    return Err(multiproc::Error::InvalidState("pipe echo differs".into()));
                }
            }
            // Lock + barrier.
            for _ in 0..100 {
                let _g = lock.lock().map_err(multiproc::Error::from)?;
                counter.store(counter.load() + 1);
            }
            barrier.wait_timeout(PATIENCE)?;
            if counter.load() != round * 200 {
                return Err(multiproc::Error::InvalidState(format!(
                    "counter {} after round {round}",
                    counter.load()
                )));
            }
            barrier.wait_timeout(PATIENCE)?;
            // Listener: a client comes and goes.
            let mut conn: Connection =
                Client::connect_timeout(address.as_str(), Some(&key), PATIENCE)?;
            for seq in 0..10 {
                conn.send(&Msg::new(1, seq, 100))?;
                let m: Msg = conn.recv_timeout(PATIENCE)?;
                if m.verify().is_err() || m.seq != seq {
                    return Err(multiproc::Error::InvalidState(
                        "listener echo differs".into(),
                    ));
                }
            }
            drop(conn);
            // Pool.
            if pool.map(work, 0..2000u64)? != (0..2000u64).map(work).collect::<Vec<_>>() {
                return Err(multiproc::Error::InvalidState("pool map differs".into()));
            }
            let r = pool.apply_async(work, round)?;
            if r.get_timeout(PATIENCE)? != work(round) {
                return Err(multiproc::Error::InvalidState("pool apply differs".into()));
            }
            // Manager.
            for k in 0..50 {
                dict.insert(&k, &(k + round))?;
            }
            for k in 0..50 {
                if dict.remove(&k)? != Some(k + round) {
                    return Err(multiproc::Error::InvalidState(
                        "manager dict differs".into(),
                    ));
                }
            }
            list.push(&round)?;
            if list.pop()? != Some(round) {
                return Err(multiproc::Error::InvalidState(
                    "manager list differs".into(),
                ));
            }
            // One of every object, created and dropped.
            churn(&prefix)?;

            if Instant::now() >= next_sample {
                next_sample += Duration::from_secs(1);
                let mut all = pids.clone();
                all.extend(pool.pids());
                samples.push(Sample {
                    hub_rss_kib: rss_kib(std::process::id()),
                    all_rss_kib: rss_kib(std::process::id())
                        + all.iter().map(|p| rss_kib(p.as_raw())).sum::<u64>(),
                    fds: fd_count(),
                });
            }
        }
        pool.terminate();
        manager.shutdown()?;
        for c in &children {
            let _ = c.kill();
        }
        for mut c in children {
            let _ = c.join();
        }
        Ok((round, samples))
    })();
    let _ = Queue::<Msg>::unlink(&req_name);
    let _ = Queue::<Msg>::unlink(&resp_name);
    let _ = std::fs::remove_file(&sock);
    let (rounds, samples) = outcome?;
    Ok(report(rounds, &samples))
}

/// Creates and drops one of every object type.
fn churn(prefix: &str) -> multiproc::Result<()> {
    drop(Queue::<u64>::new()?);
    drop(JoinableQueue::<u64>::new()?);
    drop(SimpleQueue::<u64>::new()?);
    drop((
        Lock::new()?,
        RLock::new()?,
        Semaphore::new(1)?,
        BoundedSemaphore::new(1)?,
    ));
    drop((Condition::new()?, Event::new()?, Barrier::new(2)?));
    drop((Value::<u64>::new(1)?, Array::<u64>::new(16)?));
    drop(pipe()?);
    let shm = SharedMemory::create(&format!("{prefix}churn"), 4096)?;
    shm.unlink()?;
    Ok(())
}

/// Prints the figures; `FAILURE` when memory or descriptors grew after the warm-up.
fn report(rounds: u64, samples: &[Sample]) -> ExitCode {
    // The first fifth of the run (at least 5 samples) is warm-up.
    let warm = (samples.len() / 5)
        .max(5)
        .min(samples.len().saturating_sub(2));
    let after = &samples[warm..];
    if after.len() < 2 {
        println!("soak: too short to judge ({} samples)", samples.len());
        return ExitCode::FAILURE;
    }
    let half = &after[after.len() / 2..];
    let mut flat = true;
    let mut line = format!(
        "soak: rounds={rounds} samples={} warmup={warm}s",
        samples.len()
    );
    for (what, pick) in [
        (
            "hub_rss_kib",
            (|s: &Sample| s.hub_rss_kib) as fn(&Sample) -> u64,
        ),
        ("all_rss_kib", |s: &Sample| s.all_rss_kib),
        ("fds", |s: &Sample| s.fds),
    ] {
        let first = pick(&after[0]);
        let max_late = half.iter().map(pick).max().unwrap_or(0);
        // Allocator noise: 10% and 4 MiB of RSS; descriptors must not grow at all.
        let allowed = if what == "fds" {
            first
        } else {
            first + first / 10 + 4096
        };
        flat &= max_late <= allowed;
        line += &format!(" {what}: first={first} max_last_half={max_late}");
    }
    line += if flat { " flat=yes" } else { " flat=no" };
    println!("{line}");
    if flat {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
