//! The main-thread test harness for tests that fork.
//!
//! The libtest harness always runs a second thread, and forking from a multi-threaded
//! process is refused (see the crate docs), so every integration test file is
//! `harness = false` and calls [`run`]. Each test runs on the main thread, under a
//! watchdog process that kills the whole test binary if the test hangs; afterwards the
//! harness kills any child the test left running and checks that it left no `/dev/shm`
//! entry behind (such leftovers are removed and fail the test).
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One test: a name (with the contract item it covers) and its body.
pub(crate) struct Test {
    name: &'static str,
    body: fn() -> TestResult,
}

/// Declares a test.
pub(crate) fn test(name: &'static str, body: fn() -> TestResult) -> Test {
    Test { name, body }
}

/// How long one test may take before the watchdog kills the binary.
const WATCHDOG: Duration = Duration::from_secs(120);

static HARNESS_PID: OnceLock<u32> = OnceLock::new();

/// Runs the tests one by one on the main thread and exits with libtest's status.
pub(crate) fn run(tests: Vec<Test>) -> ! {
    HARNESS_PID.get_or_init(std::process::id);
    start_method_from_env();
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    let trials = tests
        .into_iter()
        .map(|t| libtest_mimic::Trial::test(t.name, move || guarded(t.body).map_err(Into::into)))
        .collect();
    let fds = open_fds();
    let conclusion = libtest_mimic::run(&args, trials);
    // Issue 15: no descriptor of the test process outlives the suite. A server child that
    // lives as long as this process (the forkserver) keeps one socket to it, by design; the
    // harness killed every other child, so each live child left stands for one socket.
    let servers = live_children();
    let left: Vec<_> = open_fds()
        .into_iter()
        .filter(|fd| !fds.contains(fd))
        .collect();
    let sockets = left.iter().filter(|fd| fd.contains("socket:")).count();
    let left: Vec<_> = if sockets == left.len() && sockets <= servers {
        Vec::new()
    } else {
        left
    };
    if !left.is_empty() {
        eprintln!("error: the tests left descriptors open: {left:?}");
        std::process::exit(101);
    }
    conclusion.exit()
}

/// How many processes whose parent is this one are alive (not zombies).
fn live_children() -> usize {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // After the command name: state, then the parent's pid.
            let mut rest = stat.rsplit(')').next().unwrap_or("").split_whitespace();
            let state = rest.next().unwrap_or("Z");
            rest.next() == Some(me.as_str()) && state != "Z" && state != "X"
        })
        .count()
}

/// This process's open descriptors, each as `number -> target`.
fn open_fds() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let target = std::fs::read_link(e.path()).ok()?;
        Some(format!(
            "{} -> {}",
            e.file_name().to_string_lossy(),
            target.display()
        ))
    })
    // The directory handle that read_dir itself holds.
    .filter(|fd| !fd.ends_with(&format!("/proc/{}/fd", std::process::id())))
    .collect()
}

/// `MULTIPROC_START_METHOD=fork|forkserver|spawn` pins the start method of every
/// `Process::run_fn` child of the suite (CI runs the suites under each); closures are always
/// forked, so the few tests whose children stay closures (see "Test matrix" in
/// docs/decisions.md) run under fork only.
fn start_method_from_env() {
    if let Ok(name) = std::env::var("MULTIPROC_START_METHOD") {
        let method = name
            .parse::<multiproc::StartMethod>()
            .unwrap_or_else(|e| panic!("MULTIPROC_START_METHOD: {e}"));
        multiproc::set_start_method(Some(method));
    }
}

/// A name no other test run uses, for named resources (`/dev/shm`, sockets). The harness
/// checks that nothing with this prefix survives a test.
pub(crate) fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}{}-{tag}",
        shm_prefix(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn shm_prefix() -> String {
    format!(
        "mpt-{}-",
        HARNESS_PID.get().copied().unwrap_or_else(std::process::id)
    )
}

fn our_shm_entries() -> Vec<String> {
    let prefix = shm_prefix();
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn guarded(body: fn() -> TestResult) -> Result<(), String> {
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "sleep {}; echo 'watchdog: test hung, killing the test binary' >&2; kill -9 {}",
            WATCHDOG.as_secs(),
            std::process::id()
        ))
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the watchdog: {e}"))?;

    let outcome = panic::catch_unwind(AssertUnwindSafe(body));

    // The watchdog and its `sleep` share a process group: end both.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", watchdog.id())])
        .stderr(Stdio::null())
        .status();
    let mut watchdog = watchdog;
    let _ = watchdog.wait();

    let mut problems = Vec::new();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("test returned an error: {e}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            problems.push(format!("test panicked: {msg}"));
        }
    }
    let leftovers = kill_leftover_children();
    if !leftovers.is_empty() {
        problems.push(format!("test left children running: {leftovers:?}"));
    }
    let shm = our_shm_entries();
    for name in &shm {
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    }
    if !shm.is_empty() {
        problems.push(format!("test left /dev/shm entries: {shm:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Kills every child still running and waits until they are reaped; returns their names.
fn kill_leftover_children() -> Vec<String> {
    let left = multiproc::active_children();
    for c in &left {
        let _ = multiproc::process::send_signal(c.pid(), multiproc::Signal::KILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !multiproc::active_children().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    left.iter()
        .map(|c| format!("{} (pid {})", c.name(), c.pid()))
        .collect()
}

/// Runs `f` until it returns true or `timeout` passes; returns whether it did.
pub(crate) fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The state letter of process `pid` (`R`, `S`, `T`, `Z`, ...): the field after the
/// parenthesised command name in `/proc/<pid>/stat`; `None` once it is gone.
pub(crate) fn process_state(pid: impl Into<u32>) -> Option<char> {
    let pid: u32 = pid.into();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Whether a process with this pid exists and is not a zombie.
pub(crate) fn process_running(pid: impl Into<u32>) -> bool {
    !matches!(process_state(pid), Some('Z' | 'X') | None)
}

/// Whether `pid` is a zombie (ended, not reaped).
pub(crate) fn is_zombie(pid: impl Into<u32>) -> bool {
    process_state(pid) == Some('Z')
}

/// Whether `pid` is stopped (by SIGSTOP or a tracer).
#[allow(dead_code)] // not every test file that includes this module stops processes
pub(crate) fn is_stopped(pid: impl Into<u32>) -> bool {
    matches!(process_state(pid), Some('T' | 't'))
}

/// What a holder child (see [`start_holder`]) gets besides its handles.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Holding(multiproc::shm::RawValue<u32>);

impl Holding {
    /// Tells the parent that what the child holds is taken, then sleeps until the child is
    /// killed.
    pub(crate) fn keep(self) {
        self.0.store(1);
        std::thread::sleep(Duration::from_secs(600));
    }
}

/// Starts a child that runs `hold` on `args` and returns once it has taken what it holds:
/// `hold` takes it (a lock whose guard it forgets, say), then calls [`Holding::keep`]. The
/// child is a `run_fn` child, so the owner-death tests run under every start method; the
/// handles to hold travel in `args`.
pub(crate) fn start_holder<A>(
    hold: fn((A, Holding)),
    args: A,
) -> Result<multiproc::Child<()>, Box<dyn std::error::Error>>
where
    A: serde::Serialize + serde::de::DeserializeOwned,
{
    let step = multiproc::shm::RawValue::new(0u32)?;
    let child = multiproc::Process::run_fn(hold, (args, Holding(step.clone()))).start()?;
    if !eventually(Duration::from_secs(10), || step.load() == 1) {
        return Err("the child never finished taking what it holds".into());
    }
    Ok(child)
}

/// [`start_holder`], then [`kill_dead`].
pub(crate) fn dead_holder<A>(
    hold: fn((A, Holding)),
    args: A,
) -> Result<multiproc::Child<()>, Box<dyn std::error::Error>>
where
    A: serde::Serialize + serde::de::DeserializeOwned,
{
    let child = start_holder(hold, args)?;
    kill_dead(&child)?;
    Ok(child)
}

/// SIGKILLs `child` and waits until it is dead (`kill` only sends the signal): a zombie
/// until joined if it was forked, gone if the forkserver made it (the server reaps its
/// children).
pub(crate) fn kill_dead<R>(child: &multiproc::Child<R>) -> Result<(), Box<dyn std::error::Error>> {
    child.kill()?;
    let pid = child.pid();
    if eventually(Duration::from_secs(10), || !process_running(pid)) {
        Ok(())
    } else {
        Err(format!("child {pid} did not die").into())
    }
}

/// Runs the built example `target/<profile>/examples/<name>` with `args`, as a user would,
/// and returns its stdout lines; a failed run is an error carrying its stderr.
/// (`cargo test` builds the examples; `cargo test --test X` alone does not.)
pub(crate) fn run_example(
    name: &str,
    args: &[&str],
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .ok_or("no target dir")?;
    let path: PathBuf = profile_dir.join("examples").join(name);
    if !path.exists() {
        return Err(format!(
            "{} is missing: build the examples (a plain `cargo test` does)",
            path.display()
        )
        .into());
    }
    let out = Command::new(&path).args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "{name} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}

/// A private directory for a test's files (sockets, JSON), removed on drop, so a failing
/// test leaves nothing behind either.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> std::io::Result<TempDir> {
        let path = std::env::temp_dir().join(unique_name(tag));
        std::fs::create_dir(&path)?;
        Ok(TempDir(path))
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Checks at compile time that `T` can move to another thread.
pub(crate) fn assert_send<T: Send>() {}
