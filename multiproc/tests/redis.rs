//! The distributed forms on a real `redis-server` (issue 16): each test starts its own
//! server (loopback or a Unix socket in a temporary folder, no persistence) and kills it by
//! pid at the end, and runs worker and consumer processes that it kills mid-work. Several
//! processes on this machine stand for several machines.
//!
//! This binary is also the pool's worker: with `MULTIPROC_REDIS_WORKER` set, `main` serves
//! tasks instead of running the tests (the documented command line of a worker).

mod common;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, test, TestResult};
use multiproc::process::send_signal;
use multiproc::redis::{Dict, Pool, Queue, Registry, Server};
use multiproc::{Error, Pid, Process, Signal, Value};

fn square(x: u64) -> u64 {
    x * x
}

/// A task that takes about `micros` microseconds, so that a kill lands mid-run; returns
/// its argument and the worker's pid.
fn spin(x: (u64, u64)) -> (u64, u32) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(x.1) {
        std::hint::spin_loop();
    }
    (x.0, std::process::id())
}

fn fails(x: u32) -> Result<u32, String> {
    Err(format!("refused {x}"))
}

fn panics(_: u32) -> u32 {
    panic!("task panicked on purpose")
}

/// Kills the worker that runs it, every time (a task that crashes its process).
fn kills_its_worker(_: u32) -> u32 {
    std::process::abort()
}

fn registry() -> Registry {
    Registry::new()
        .register("square", square)
        .register("spin", spin)
        .register("fails", fails)
        .register("panics", panics)
        .register("kills_its_worker", kills_its_worker)
}

fn main() {
    match registry().work_if_asked() {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => {
            eprintln!("worker: {e}");
            std::process::exit(2)
        }
    }
    if !Server::is_installed() {
        println!("redis-server is not installed: every redis test is skipped");
    }
    common::run(vec![
        test("issue16_url_tcp_and_unix_socket", url_tcp_and_unix),
        test("issue16_queue_outcomes_follow_the_rule", queue_outcomes),
        test(
            "issue16_queue_consumer_sigkilled_before_ack_messages_reach_another",
            consumer_killed_before_ack,
        ),
        test(
            "issue16_queue_dead_letter_after_max_deliveries",
            queue_dead_letter,
        ),
        test("issue16_queue_trims_acknowledged_entries", queue_trims),
        test("issue16_dict_calls_and_atomic_increments", dict_calls),
        test("issue16_pool_calls_match_the_local_pool", pool_calls),
        test(
            "issue16_pool_3_workers_10k_tasks_one_sigkilled_every_result_once",
            pool_worker_killed,
        ),
        test(
            "issue16_pool_slow_worker_runs_twice_reports_once",
            pool_slow_worker,
        ),
        test(
            "issue16_pool_task_killing_its_workers_fails_with_worker_died",
            pool_worker_died,
        ),
        test(
            "issue16_server_killed_and_restarted_mid_run",
            server_restarted,
        ),
        test(
            "issue16_workers_in_separate_network_namespaces",
            netns_workers,
        ),
    ])
}

/// Starts a server, or `None` (with a note) where `redis-server` is missing.
fn server() -> Result<Option<Server>, Error> {
    if !Server::is_installed() {
        println!("skipped: redis-server is not installed");
        return Ok(None);
    }
    Server::start().map(Some)
}

fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Worker processes of this binary, killed by pid when dropped.
struct Workers(Vec<Child>);

impl Workers {
    fn start(
        n: usize,
        url: &str,
        pool: &str,
        visibility_ms: u64,
        max_deliveries: u64,
    ) -> io::Result<Workers> {
        let mut workers = Workers(Vec::new());
        for _ in 0..n {
            workers.0.push(
                Command::new(std::env::current_exe()?)
                    .env(multiproc::redis::WORKER_ENV, url)
                    .env(multiproc::redis::POOL_ENV, pool)
                    .env(multiproc::redis::VISIBILITY_ENV, visibility_ms.to_string())
                    .env(
                        multiproc::redis::MAX_DELIVERIES_ENV,
                        max_deliveries.to_string(),
                    )
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()?,
            );
        }
        Ok(workers)
    }

    fn pid(&self, i: usize) -> Pid {
        Pid::from(self.0[i].id())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn url_tcp_and_unix() -> TestResult {
    let Some(tcp) = server()? else { return Ok(()) };
    let unix = Server::start_unix()?;
    assert!(unix.url().starts_with("redis+unix:///"), "{}", unix.url());
    for url in [tcp.url(), unix.url()] {
        let q: Queue<String> = Queue::open(url, &unique("q"))?;
        q.put(format!("via {url}"))?;
        assert_eq!(q.get_timeout(Duration::from_secs(5))?, format!("via {url}"));
    }
    // A URL that is not one is refused before any connection.
    assert!(matches!(
        Queue::<u8>::open("http://x", "q"),
        Err(Error::InvalidArgument(_))
    ));
    // A server that is down: a clear error naming it, quickly.
    let dir = unix.dir().to_path_buf();
    let gone = format!("redis+unix://{}/nothing.sock", dir.display());
    let q: Queue<u8> = Queue::open(&gone, "q")?;
    match q.try_get() {
        Err(Error::Io(e)) => assert!(e.to_string().contains("nothing.sock"), "{e}"),
        other => panic!("expected an i/o error, got {other:?}"),
    }
    Ok(())
}

fn queue_outcomes() -> TestResult {
    let Some(srv) = server()? else { return Ok(()) };
    let name = unique("q");
    let q: Queue<u32> = Queue::open(srv.url(), &name)?;
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    let start = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(300)),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(matches!(q.get_timeout(Duration::ZERO), Err(Error::Timeout)));
    q.put_many(0..1000)?;
    q.put(1000).map_err(Error::from)?;
    let got: Vec<u32> = (0..1001).map(|_| q.get()).collect::<Result<_, _>>()?;
    assert_eq!(got, (0..1001).collect::<Vec<_>>(), "one producer: FIFO");
    // A message of another type: a codec error, and it goes to the dead letters rather
    // than coming back for ever.
    let other: Queue<String> = Queue::open(srv.url(), &name)?;
    other.put("not a number, and far too long for a u32".into())?;
    assert!(matches!(q.get(), Err(Error::Codec(_))));
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    assert_eq!(q.dead_letters()?.len(), 1);
    Ok(())
}

fn consumer_killed_before_ack() -> TestResult {
    let Some(srv) = server()? else { return Ok(()) };
    let name = unique("q");
    let visibility = Duration::from_millis(500);
    let producer: Queue<u32> = Queue::open(srv.url(), &name)?;
    producer.put_many(0..50)?;
    let read = Value::new(u32::MAX)?;
    let url = srv.url().to_string();
    let (read2, name2) = (read.clone(), name.clone());
    let mut child = Process::new(move || {
        let q: Queue<u32> = Queue::builder(&url, &name2)
            .batch(10)
            .visibility_timeout(visibility)
            .build()
            .unwrap();
        let first = q.get().unwrap();
        read2.store(first);
        // Read (ten in its batch, one handed out), never acknowledged: killed here.
        std::thread::sleep(Duration::from_secs(60));
    })
    .start()?;
    assert!(eventually(Duration::from_secs(10), || read.load() != u32::MAX));
    let read_at = Instant::now();
    child.kill()?;
    let _ = child.join();
    let b: Queue<u32> = Queue::builder(srv.url(), &name)
        .visibility_timeout(visibility)
        .build()?;
    let mut seen = Vec::new();
    let mut last_at = Instant::now();
    while seen.len() < 50 {
        seen.push(b.get_timeout(Duration::from_secs(10))?);
        last_at = Instant::now();
    }
    assert!(matches!(b.try_get(), Err(Error::Empty)), "no duplicates");
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>(), "every message, once");
    // The killed consumer's messages came only after the visibility timeout.
    assert!(last_at - read_at >= visibility, "{:?}", last_at - read_at);
    Ok(())
}

fn queue_dead_letter() -> TestResult {
    let Some(srv) = server()? else { return Ok(()) };
    let name = unique("q");
    let vis = Duration::from_millis(200);
    let q: Queue<u32> = Queue::builder(srv.url(), &name)
        .visibility_timeout(vis)
        .max_deliveries(2)
        .batch(1)
        .build()?;
    q.put(7).map_err(Error::from)?;
    // Two consumers take the message and die before acknowledging it.
    for _ in 0..2 {
        let url = srv.url().to_string();
        let name = name.clone();
        let took = Value::new(0u32)?;
        let took2 = took.clone();
        let mut child = Process::new(move || {
            let c: Queue<u32> = Queue::builder(&url, &name)
                .visibility_timeout(vis)
                .max_deliveries(2)
                .batch(1)
                .build()
                .unwrap();
            took2.store(c.get().unwrap());
            std::thread::sleep(Duration::from_secs(60));
        })
        .start()?;
        assert!(eventually(Duration::from_secs(10), || took.load() == 7));
        child.kill()?;
        let _ = child.join();
    }
    // The third delivery would exceed the limit: the message is buried instead.
    assert!(matches!(
        q.get_timeout(Duration::from_secs(1)),
        Err(Error::Timeout)
    ));
    let dead = q.dead_letters()?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].as_ref().ok(), Some(&7));
    Ok(())
}

fn queue_trims() -> TestResult {
    let Some(srv) = server()? else { return Ok(()) };
    let name = unique("q");
    let q: Queue<u64> = Queue::open(srv.url(), &name)?;
    q.put_many(0..20_000)?;
    assert_eq!(q.stream_len()?, 20_000);
    for i in 0..20_000 {
        assert_eq!(q.get()?, i);
    }
    // Acknowledged entries leave the stream (trimming is by whole nodes of ~100 entries).
    assert!(q.stream_len()? < 2_000, "{}", q.stream_len()?);
    Ok(())
}

fn dict_calls() -> TestResult {
    let Some(srv) = server()? else { return Ok(()) };
    let name = unique("d");
    let d: Dict<String, i64> = Dict::open(srv.url(), &name)?;
    assert_eq!(d.insert(&"a".into(), &1)?, None);
    assert_eq!(d.insert(&"a".into(), &2)?, Some(1));
    assert_eq!(d.get(&"a".into())?, Some(2));
    assert_eq!(d.get(&"b".into())?, None);
    assert!(d.contains_key(&"a".into())?);
    d.insert(&"b".into(), &5)?;
    assert_eq!(d.len()?, 2);
    let mut keys = d.keys()?;
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    let mut items = d.items()?;
    items.sort();
    assert_eq!(items, [("a".to_string(), 2), ("b".to_string(), 5)]);
    assert_eq!(d.remove(&"b".into())?, Some(5));
    assert_eq!(d.remove(&"b".into())?, None);
    // Increments from four processes at once all count.
    let children: Vec<_> = (0..4)
        .map(|_| {
            let (url, name) = (srv.url().to_string(), name.clone());
            Process::new(move || {
                let d: Dict<String, i64> = Dict::open(&url, &name).unwrap();
                for _ in 0..500 {
                    d.increment(&"n".into(), 1).unwrap();
                }
            })
            .start()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        c.join()?;
    }
    assert_eq!(d.get(&"n".into())?, Some(2000));
    // A value that is not an integer: the server's error, not a panic.
    let s: Dict<String, String> = Dict::open(srv.url(), &name)?;
    s.insert(&"text".into(), &"x".into())?;
    assert!(matches!(
        d.increment(&"text".into(), 1),
        Err(Error::Remote(_))
    ));
    assert!(matches!(d.get(&"text".into()), Err(Error::Codec(_))));
    d.clear()?;
    assert!(d.is_empty()?);
    Ok(())
}

fn pool_calls() -> TestResult {
    let Some(srv) = server()? else { return Ok(()) };
    let pool_name = unique("p");
    let _workers = Workers::start(2, srv.url(), &pool_name, 30_000, 5)?;
    let pool = Pool::connect(srv.url(), &pool_name, &registry())?;
    assert_eq!(pool.apply(square, 7)?, 49);
    let r = pool.apply_async(square, 8)?;
    assert_eq!(r.get_timeout(Duration::from_secs(10))?, 64);
    assert_eq!(
        pool.map(square, 0..10_000u64)?,
        (0..10_000u64).map(|x| x * x).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.map_chunked(square, 0..10u64, 3)?,
        [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    );
    let ordered: Vec<u64> = pool.imap(square, 0..500u64)?.collect::<Result<_, _>>()?;
    assert_eq!(ordered, (0..500u64).map(|x| x * x).collect::<Vec<_>>());
    let mut unordered: Vec<u64> = pool
        .imap_unordered_chunked(square, 0..2000u64, 7)?
        .collect::<Result<_, _>>()?;
    unordered.sort_unstable();
    assert_eq!(unordered, (0..2000u64).map(|x| x * x).collect::<Vec<_>>());
    assert!(matches!(pool.apply(fails, 3), Err(Error::TaskFailed(m)) if m == "refused 3"));
    assert!(matches!(pool.apply(panics, 3), Err(Error::Panicked { .. })));
    // A function the registry does not know never leaves the caller.
    fn unknown(x: u32) -> u32 {
        x
    }
    assert!(matches!(
        pool.apply(unknown, 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        pool.map_chunked(square, 0..3u64, 0),
        Err(Error::InvalidArgument(_))
    ));
    pool.close();
    assert!(matches!(pool.apply(square, 1), Err(Error::InvalidState(_))));
    pool.join();
    Ok(())
}

/// Waits until each of `workers` has answered a task, so that none is still starting.
fn all_serving(pool: &Pool, workers: &Workers) -> Result<(), Error> {
    let mut seen = HashSet::new();
    let until = Instant::now() + Duration::from_secs(30);
    while seen.len() < workers.0.len() && Instant::now() < until {
        let batch: Vec<_> = (0..64)
            .map(|i| pool.apply_async(spin, (i, 1000)))
            .collect::<Result<_, _>>()?;
        for r in batch {
            seen.insert(r.get()?.1);
        }
    }
    assert_eq!(seen.len(), workers.0.len(), "every worker answers");
    Ok(())
}

/// `n` tasks, each counted by its callback (every count must end at exactly one); the
/// number of results each worker sent.
fn run_counted(pool: &Pool, n: u64, micros: u64) -> Result<(Vec<u32>, HashMap<u32, usize>), Error> {
    let counts = Arc::new(Mutex::new(vec![0u32; n as usize]));
    let mut results = Vec::new();
    for i in 0..n {
        let c = counts.clone();
        results.push(pool.apply_async_with(
            spin,
            (i, micros),
            move |v: &(u64, u32)| c.lock().unwrap()[v.0 as usize] += 1,
            |e| panic!("task failed: {e}"),
        )?);
    }
    let mut by_worker = HashMap::new();
    for (i, r) in results.into_iter().enumerate() {
        let (v, pid) = r.get_timeout(Duration::from_secs(60))?;
        assert_eq!(v, i as u64);
        *by_worker.entry(pid).or_default() += 1;
    }
    let counts = counts.lock().unwrap().clone();
    Ok((counts, by_worker))
}

fn pool_worker_killed() -> TestResult {
    let Some(srv) = server()? else { return Ok(()) };
    let pool_name = unique("p");
    let workers = Workers::start(3, srv.url(), &pool_name, 1000, 5)?;
    let pool = Pool::connect(srv.url(), &pool_name, &registry())?;
    all_serving(&pool, &workers)?;
    let victim = workers.pid(1);
    let start = Instant::now();
    let (counts, by_worker) = std::thread::scope(|s| {
        // Kill one worker mid-run, while tasks are still pending.
        let killer = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            let pending = pool.pending();
            send_signal(victim, Signal::KILL).map(|()| pending)
        });
        let run = run_counted(&pool, 10_000, 100);
        let pending_at_kill = killer.join().unwrap()?;
        assert!(pending_at_kill > 0, "the kill came after the run");
        run
    })?;
    let wrong: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] != 1).collect();
    assert!(
        wrong.is_empty(),
        "results not reported exactly once: {:?}",
        &wrong[..wrong.len().min(10)]
    );
    assert!(
        by_worker.contains_key(&u32::from(victim)),
        "the victim worked before it died"
    );
    assert_eq!(by_worker.values().sum::<usize>(), 10_000);
    println!(
        "10,000 tasks on 3 workers, one killed: {:?}, {} late duplicates dropped",
        start.elapsed(),
        pool.duplicates_dropped()
    );
    Ok(())
}

fn pool_slow_worker() -> TestResult {
    let Some(srv) = server()? else { return Ok(()) };
    let pool_name = unique("p");
    // The victim starts alone, so it takes every task of the run.
    let victim = Workers::start(1, srv.url(), &pool_name, 500, 5)?;
    let pool = Pool::connect(srv.url(), &pool_name, &registry())?;
    all_serving(&pool, &victim)?;
    let counts = Arc::new(Mutex::new(vec![0u32; 4]));
    let results: Vec<_> = (0..4u64)
        .map(|i| {
            let c = counts.clone();
            pool.apply_async_with(
                spin,
                (i, 300_000),
                move |v: &(u64, u32)| c.lock().unwrap()[v.0 as usize] += 1,
                |e| panic!("task failed: {e}"),
            )
        })
        .collect::<Result<_, _>>()?;
    // Stopped mid-task, for longer than the visibility timeout: a second worker takes the
    // tasks over and answers; the victim, resumed, answers too, and the caller drops that.
    std::thread::sleep(Duration::from_millis(100));
    send_signal(victim.pid(0), Signal::STOP)?;
    let other = Workers::start(1, srv.url(), &pool_name, 500, 5)?;
    for (i, r) in results.iter().enumerate() {
        let (v, pid) = r.get_timeout(Duration::from_secs(30))?;
        assert_eq!(v, i as u64);
        assert_eq!(
            pid,
            u32::from(other.pid(0)),
            "the stopped worker cannot answer"
        );
    }
    send_signal(victim.pid(0), Signal::CONT)?;
    assert!(eventually(Duration::from_secs(10), || pool
        .duplicates_dropped()
        > 0));
    assert!(
        counts.lock().unwrap().iter().all(|&c| c == 1),
        "a result was reported twice or never"
    );
    Ok(())
}

fn pool_worker_died() -> TestResult {
    let Some(srv) = server()? else { return Ok(()) };
    let pool_name = unique("p");
    // Each delivery kills a worker; the third delivery exceeds the limit of two.
    let workers = Workers::start(3, srv.url(), &pool_name, 300, 2)?;
    let pool = Pool::connect(srv.url(), &pool_name, &registry())?;
    match pool.apply(kills_its_worker, 1) {
        Err(Error::WorkerDied(m)) => assert!(m.contains("2 times") || m.contains("3 times"), "{m}"),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    let alive = (0..3)
        .filter(|&i| common::process_running(workers.pid(i)) && !common::is_zombie(workers.pid(i)))
        .count();
    assert_eq!(alive, 1, "two workers died running the task");
    // The survivor still serves.
    assert_eq!(pool.apply(square, 5)?, 25);
    Ok(())
}

fn server_restarted() -> TestResult {
    let Some(mut srv) = server()? else {
        return Ok(());
    };
    let port = srv.port().expect("tcp");
    let url = srv.url().to_string();
    let pool_name = unique("p");
    let _workers = Workers::start(2, &url, &pool_name, 30_000, 5)?;
    let pool = Pool::connect(&url, &pool_name, &registry())?;
    let q: Queue<u32> = Queue::open(&url, &unique("q"))?;
    let d: Dict<String, i64> = Dict::open(&url, &unique("d"))?;
    assert_eq!(pool.apply(square, 3)?, 9);
    q.put(1).map_err(Error::from)?;
    assert_eq!(q.get()?, 1);
    d.insert(&"k".into(), &1)?;

    srv.kill();
    let refused = |e: &Error| {
        matches!(e, Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused)
            && e.to_string().contains(&url)
    };
    let start = Instant::now();
    let e = pool.apply(square, 4).unwrap_err();
    assert!(refused(&e), "{e}");
    let e: Error = q.put(2).unwrap_err().into();
    assert!(refused(&e), "{e}");
    assert!(refused(&q.try_get().unwrap_err()));
    assert!(refused(&d.get(&"k".into()).unwrap_err()));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "failing took {:?}",
        start.elapsed()
    );

    let _srv2 = Server::start_on(&[Ipv4Addr::LOCALHOST.into()], port)?;
    // The same handles work again; the workers found the server back by themselves.
    let mut ok = false;
    let until = Instant::now() + Duration::from_secs(20);
    while !ok && Instant::now() < until {
        ok = pool
            .apply_async(square, 6)?
            .get_timeout(Duration::from_secs(2))
            .is_ok_and(|v| v == 36);
    }
    assert!(ok, "the pool did not work again after the restart");
    q.put(3).map_err(Error::from)?;
    assert_eq!(q.get_timeout(Duration::from_secs(5))?, 3);
    assert_eq!(
        d.get(&"k".into())?,
        None,
        "a server without persistence starts empty"
    );
    d.insert(&"k".into(), &2)?;
    assert_eq!(d.increment(&"k".into(), 1)?, 3);
    assert_eq!(pool.map(square, 0..100u64)?.len(), 100);
    Ok(())
}

/// Network namespaces, each joined to this one by a veth pair only; removed on drop.
struct Namespaces {
    names: Vec<String>,
    host_links: Vec<String>,
    host_ips: Vec<std::net::IpAddr>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Namespaces {
    fn create(n: usize) -> Result<Namespaces, String> {
        let tag = format!("m16{}", std::process::id() % 100_000);
        let mut nets = Namespaces {
            names: Vec::new(),
            host_links: Vec::new(),
            host_ips: Vec::new(),
        };
        for i in 0..n {
            let (ns, host, peer) = (
                format!("{tag}n{i}"),
                format!("{tag}h{i}"),
                format!("{tag}p{i}"),
            );
            let subnet = format!("10.216.{}", (std::process::id() % 60) * 4 + i as u32);
            ip(&["netns", "add", &ns])?;
            nets.names.push(ns.clone());
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
            nets.host_links.push(host.clone());
            ip(&["link", "set", &peer, "netns", &ns])?;
            ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &host])?;
            ip(&["link", "set", &host, "up"])?;
            let inner = format!("{subnet}.2/24");
            for cmd in [
                ["addr", "add", inner.as_str(), "dev", peer.as_str()],
                ["link", "set", peer.as_str(), "up", ""],
                ["link", "set", "lo", "up", ""],
            ] {
                let mut args = vec!["netns", "exec", ns.as_str(), "ip"];
                args.extend(cmd.iter().copied().filter(|a| !a.is_empty()));
                ip(&args)?;
            }
            nets.host_ips
                .push(format!("{subnet}.1").parse().map_err(|e| format!("{e}"))?);
        }
        Ok(nets)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for link in &self.host_links {
            let _ = ip(&["link", "del", link]);
        }
        for ns in &self.names {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Item 6: two workers, each in a network namespace of its own that reaches the broker
/// only through a veth pair (no shared loopback): the pool works across them.
fn netns_workers() -> TestResult {
    if !Server::is_installed() {
        println!("skipped: redis-server is not installed");
        return Ok(());
    }
    let nets = match Namespaces::create(2) {
        Ok(n) => n,
        Err(e) => {
            println!("skipped: network namespaces are not available here: {e}");
            return Ok(());
        }
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let srv = Server::start_on(&nets.host_ips, port)?;
    let pool_name = unique("p");
    let mut workers = Workers(Vec::new());
    for (ns, host_ip) in nets.names.iter().zip(&nets.host_ips) {
        workers.0.push(
            Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(std::env::current_exe()?)
                .env(
                    multiproc::redis::WORKER_ENV,
                    format!("redis://{host_ip}:{port}/0"),
                )
                .env(multiproc::redis::POOL_ENV, &pool_name)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()?,
        );
    }
    let pool = Pool::connect(srv.url(), &pool_name, &registry())?;
    all_serving(&pool, &workers)?;
    let ours = std::fs::read_link("/proc/self/ns/net")?;
    for i in 0..2 {
        let theirs = std::fs::read_link(format!("/proc/{}/ns/net", workers.pid(i)))?;
        assert_ne!(theirs, ours, "worker {i} runs in a namespace of its own");
    }
    let (counts, by_worker) = run_counted(&pool, 2_000, 10)?;
    assert!(counts.iter().all(|&c| c == 1));
    assert_eq!(by_worker.len(), 2, "both namespaces served: {by_worker:?}");
    drop(workers);
    drop(srv);
    drop(nets);
    Ok(())
}
