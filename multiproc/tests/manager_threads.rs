//! Managers from threaded programs: ordinary `#[test]`s (the libtest harness runs them on
//! threads of its own) and a tokio runtime start a manager, whose server then comes from
//! the forkserver or a spawn rather than a fork of the threaded test process (W6). The
//! proxies reach `run_fn` children under every start method (MG-12), the custom types
//! registered with the builder are served (RM-01), and the server is gone once its owner
//! is (RM-04, the owner-death rule).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use multiproc::manager::{DictProxy, Shared};
use multiproc::{Error, Manager, Process, StartMethod};
use serde::{Deserialize, Serialize};

/// A bound for what should end at once, with room for a loaded 2-core machine.
const PROMPTLY: Duration = Duration::from_secs(30);

/// Threads that keep allocating and locking while the test starts processes.
struct Busy {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Busy {
    fn start(n: usize) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
        let threads = (0..n)
            .map(|_| {
                let stop = Arc::clone(&stop);
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let mut v = shared.lock().unwrap();
                        v.push(1);
                        if v.len() > 1000 {
                            v.clear();
                        }
                    }
                })
            })
            .collect();
        Busy { stop, threads }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn decrement_times((d, n): (DictProxy<String, i64>, u32)) -> u32 {
    for _ in 0..n {
        d.decrement(&"count".to_string(), 1).unwrap();
    }
    n
}

/// Whether `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            != Some("Z")
    })
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn gone_within(pid: u32, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The seed-002 count from a threaded test: the server and the children come from the
/// forkserver or a spawn; 4 children x 250 atomic decrements end exactly at 0.
#[test]
fn w6_mg_12_manager_from_a_threaded_test_serves_run_fn_children() {
    let _busy = Busy::start(4);
    for method in [StartMethod::Forkserver, StartMethod::Spawn] {
        let manager = Manager::start().unwrap();
        let server = manager
            .server_pid()
            .expect("the owner knows its server")
            .as_raw();
        assert_ne!(
            parent_of(server),
            Some(std::process::id()),
            "the server must not be a fork of this threaded process"
        );
        let d = manager.dict::<String, i64>().unwrap();
        d.insert(&"count".into(), &1000).unwrap();
        let mut children: Vec<_> = (0..4)
            .map(|_| {
                Process::run_fn(decrement_times, (d.clone(), 250))
                    .start_method(method)
                    .start()
                    .unwrap()
            })
            .collect();
        for child in &mut children {
            assert_eq!(child.join_timeout(PROMPTLY).unwrap(), 250);
        }
        assert_eq!(d.get(&"count".into()).unwrap(), Some(0), "{method:?}");
        drop(manager);
        assert!(
            gone_within(server, PROMPTLY),
            "the server outlived its manager"
        );
        assert!(matches!(d.get(&"count".into()), Err(Error::ManagerGone(_))));
    }
}

#[derive(Debug)]
struct Tally {
    total: u64,
}

#[derive(Serialize, Deserialize)]
enum TallyReq {
    Add(u64),
    Total,
}

impl Shared for Tally {
    const NAME: &'static str = "Tally";
    type Init = u64;
    type Request = TallyReq;
    type Response = u64;

    fn new(start: u64) -> Result<Self, String> {
        Ok(Tally { total: start })
    }

    fn handle(&mut self, req: TallyReq) -> Result<u64, String> {
        if let TallyReq::Add(n) = req {
            self.total = self
                .total
                .checked_add(n)
                .ok_or_else(|| "the tally overflows".to_string())?;
        }
        Ok(self.total)
    }
}

/// RM-01 from a threaded process: the registered type's constructor reaches the server,
/// which is not a fork of this process, by its identity in the executable.
#[test]
fn rm_01_custom_types_are_served_by_a_server_started_from_threads() {
    let _busy = Busy::start(2);
    let manager = Manager::builder().register::<Tally>().start().unwrap();
    let tally = manager.custom::<Tally>(&5).unwrap();
    assert_eq!(tally.call(&TallyReq::Add(10)).unwrap(), 15);
    assert_eq!(tally.call(&TallyReq::Total).unwrap(), 15);
    assert!(matches!(
        tally.call(&TallyReq::Add(u64::MAX)),
        Err(Error::Remote(m)) if m.contains("overflows")
    ));
    // An unregistered type is refused by the server, not a crash.
    let other = Manager::start().unwrap();
    assert!(matches!(
        other.custom::<Tally>(&1),
        Err(Error::InvalidArgument(_))
    ));
}

/// Runs in a spawned child (a process of its own): starts threads and a manager, reports
/// the server's pid, then waits to be killed.
fn owner_with_threads(mut report: multiproc::Connection) {
    let _busy = Busy::start(2);
    let manager = Manager::start().unwrap();
    let d = manager.dict::<u32, u32>().unwrap();
    d.insert(&1, &2).unwrap();
    report
        .send(&(manager.server_pid().unwrap().as_raw()))
        .unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// The owner-death rule from a threaded owner: SIGKILL the owner, the server goes too.
#[test]
fn server_started_from_threads_dies_with_its_sigkilled_owner() {
    let (mut mine, theirs) = multiproc::pipe().unwrap();
    let mut owner = Process::run_fn(owner_with_threads, theirs)
        .start_method(StartMethod::Spawn)
        .start()
        .unwrap();
    let server: u32 = mine.recv_timeout(PROMPTLY).unwrap();
    assert!(running(server));
    owner.kill().unwrap();
    let _ = owner.join_timeout(PROMPTLY);
    assert!(
        gone_within(server, PROMPTLY),
        "the server {server} outlived its SIGKILLed owner"
    );
}

/// A manager inside a multi-threaded tokio runtime, used from a blocking task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manager_from_a_tokio_runtime() {
    let total = tokio::task::spawn_blocking(|| {
        let manager = Manager::start().unwrap();
        let d = manager.dict::<String, i64>().unwrap();
        d.insert(&"count".into(), &100).unwrap();
        let mut child = Process::run_fn(decrement_times, (d.clone(), 40))
            .start()
            .unwrap();
        child.join_timeout(PROMPTLY).unwrap();
        d.get(&"count".into()).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(total, Some(60));
}

/// Writes the initializing process's pid to `path`.
fn note_pid(path: String) {
    std::fs::write(path, std::process::id().to_string()).unwrap();
}

fn refuse_to_start(why: String) {
    panic!("{why}")
}

/// MG-20: the initializer runs in the server process, before it serves; one that panics
/// makes `start` fail with its message.
#[test]
fn mg_20_initializer_runs_in_the_server() {
    let dir = std::env::temp_dir().join(format!("multiproc-mg20-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pid");
    let manager = Manager::builder()
        .initializer(note_pid, path.to_string_lossy().into_owned())
        .start()
        .unwrap();
    let noted: u32 = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(noted, manager.server_pid().unwrap().as_raw());
    drop(manager);

    match Manager::builder()
        .initializer(refuse_to_start, "no config".to_string())
        .start()
    {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("no config"), "{why}"),
        other => panic!("expected the initializer's panic, got {other:?}"),
    }
}
