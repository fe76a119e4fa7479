//! The security review's checks (issue 15, item 5; see "Security" in docs/decisions.md),
//! with real processes: managers get a random 32-byte key, clients without it are refused,
//! sockets and named objects are 0600 whatever the umask, nothing listens on an inet
//! address by default, the forkserver has no address at all, and another user's process
//! cannot open a named object.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{test, unique_name, TestResult};
use multiproc::connection::{Address, Client, Listener};
use multiproc::manager::Manager;
use multiproc::{Error, Lock, Process, Queue, Semaphore, SharedMemory, StartMethod};

fn main() {
    common::run(vec![
        test(
            "sec_managers_get_a_random_32_byte_authkey_by_default",
            default_authkey,
        ),
        test(
            "sec_a_manager_refuses_clients_without_the_key_from_other_processes",
            manager_refuses_keyless_clients,
        ),
        test(
            "sec_socket_files_are_0600_whatever_the_umask",
            socket_files_are_private,
        ),
        test(
            "sec_named_objects_are_0600_whatever_the_umask",
            named_objects_are_private,
        ),
        test(
            "sec_nothing_listens_on_an_inet_address_by_default",
            no_inet_listener_by_default,
        ),
        test(
            "sec_the_forkserver_has_no_address_to_connect_to",
            forkserver_has_no_address,
        ),
        test(
            "sec_another_users_process_cannot_reach_a_named_object",
            other_user_is_refused,
        ),
        test(
            "sec_a_manager_refuses_an_oversize_frame_before_allocating",
            manager_refuses_oversize_frames,
        ),
    ])
}

/// The permission bits of `path`.
fn mode(path: impl AsRef<Path>) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Socket inodes among the descriptors of process `pid`.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list descriptors")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect()
}

/// The lines of `/proc/<pid>/net/<table>` (tcp, tcp6, udp, udp6, unix) whose inode is one
/// of `inodes`. The inode is the 10th column of the inet tables and the 7th of unix.
fn table_entries(pid: u32, table: &str, inodes: &[String]) -> Vec<String> {
    let column = if table == "unix" { 6 } else { 9 };
    std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|line| {
            line.split_whitespace()
                .nth(column)
                .is_some_and(|inode| inodes.iter().any(|i| i == inode))
        })
        .map(str::to_owned)
        .collect()
}

/// Every inet socket process `pid` holds.
fn inet_sockets(pid: u32) -> Vec<String> {
    let inodes = socket_inodes(pid);
    ["tcp", "tcp6", "udp", "udp6"]
        .iter()
        .flat_map(|t| table_entries(pid, t, &inodes))
        .collect()
}

fn default_authkey() -> TestResult {
    let a = Manager::start()?;
    let b = Manager::start()?;
    assert_eq!(a.authkey().len(), 32);
    assert_eq!(b.authkey().len(), 32);
    assert_ne!(a.authkey(), b.authkey(), "two managers drew the same key");
    assert!(a.authkey().iter().any(|&x| x != 0));
    a.shutdown()?;
    b.shutdown()?;
    Ok(())
}

fn manager_refuses_keyless_clients() -> TestResult {
    let manager = Manager::start()?;
    let dict = manager.dict::<String, u32>()?;
    dict.insert(&"secret".to_string(), &7)?;
    let address = manager.address().clone();
    // Another process, with a wrong key, with no key, and with garbage for an answer.
    let child = Process::new(move || -> Vec<String> {
        let mut seen = Vec::new();
        match Manager::connect(&address, b"not the key") {
            Err(e) => seen.push(format!("wrong key: {e}")),
            Ok(_) => seen.push("wrong key: CONNECTED".into()),
        }
        match Client::connect_timeout(&address, Some(b"guess"), Duration::from_secs(5)) {
            Err(Error::Authentication(e)) => seen.push(format!("client wrong key: {e}")),
            other => seen.push(format!("client wrong key: UNEXPECTED {other:?}")),
        }
        // No key: the server's challenge arrives where a response was expected, and our
        // bytes are taken as a (wrong) answer: the server says #FAILURE# and hangs up.
        let mut conn = Client::connect(&address, None).expect("connect");
        conn.send_bytes(b"let me in").expect("send");
        let challenge = conn.recv_bytes().expect("the challenge");
        assert!(challenge.starts_with(b"#CHALLENGE#"));
        let verdict = conn.recv_bytes().expect("the verdict");
        seen.push(format!("no key: {}", String::from_utf8_lossy(&verdict)));
        seen.push(format!("then: {:?}", conn.recv_bytes().map(|b| b.len())));
        seen
    })
    .start()?
    .join()?;
    assert!(
        child[0].starts_with("wrong key: ") && !child[0].contains("CONNECTED"),
        "{child:?}"
    );
    assert!(child[1].starts_with("client wrong key: "), "{child:?}");
    assert!(!child[1].contains("UNEXPECTED"), "{child:?}");
    assert_eq!(child[2], "no key: #FAILURE#", "{child:?}");
    assert!(
        child[3].contains("Err"),
        "the server kept talking: {child:?}"
    );
    // The manager serves the holder of the key as before.
    assert_eq!(dict.get(&"secret".to_string())?, Some(7));
    manager.shutdown()?;
    Ok(())
}

/// Runs `f` in a forked child under umask 0, so a mode that is right only thanks to the
/// umask shows.
fn under_umask_0<R>(f: fn(String) -> R, name: String) -> multiproc::Result<R>
where
    R: serde::Serialize + serde::de::DeserializeOwned,
{
    Process::new(move || {
        // SAFETY: umask only sets the process's file mode mask.
        unsafe { libc::umask(0) };
        f(name)
    })
    .start()?
    .join()
}

fn socket_files_are_private() -> TestResult {
    let dir = std::env::temp_dir().join(unique_name("sock"));
    std::fs::create_dir(&dir)?;
    let path = dir.join("listener");
    let mode = under_umask_0(
        |path| {
            let _listener = Listener::bind(format!("unix:{path}"), Some(b"k")).expect("bind");
            mode(&path)
        },
        path.to_string_lossy().into_owned(),
    );
    let leftover = path.exists();
    std::fs::remove_dir_all(&dir)?;
    assert_eq!(mode?, 0o600, "socket file mode");
    assert!(!leftover, "the listener's socket file outlived it");
    Ok(())
}

fn named_objects_are_private() -> TestResult {
    let name = unique_name("modes");
    let modes = under_umask_0(
        |name| -> Vec<(String, u32)> {
            let q = format!("{name}-q");
            let l = format!("{name}-l");
            let s = format!("{name}-s");
            let m = format!("{name}-m");
            let _queue = Queue::<u8>::create(&q, None).expect("queue");
            let _lock = Lock::create(&l).expect("lock");
            let _sem = Semaphore::create(&s, 1).expect("semaphore");
            let _shm = SharedMemory::create(&m, 64).expect("shared memory");
            let out = [&q, &l, &s, &m]
                .iter()
                .map(|n| (n.to_string(), mode(format!("/dev/shm/{n}"))))
                .collect();
            Queue::<u8>::unlink(&q).expect("unlink");
            Lock::unlink(&l).expect("unlink");
            Semaphore::unlink(&s).expect("unlink");
            _shm.unlink().expect("unlink");
            out
        },
        name,
    )?;
    assert_eq!(modes.len(), 4);
    for (name, mode) in modes {
        assert_eq!(mode, 0o600, "{name}");
    }
    Ok(())
}

fn no_inet_listener_by_default() -> TestResult {
    let manager = Manager::start()?;
    assert!(
        !matches!(manager.address(), Address::Tcp(_)),
        "the default manager address is {:?}",
        manager.address()
    );
    let server = manager.server_pid().expect("our own manager's server");
    let server = u32::from(server);
    assert!(
        !socket_inodes(server).is_empty(),
        "the server holds its listener"
    );
    assert_eq!(inet_sockets(server), Vec::<String>::new());
    // A pool and a queue hold no inet socket either.
    let pool = multiproc::Pool::new(2)?;
    assert_eq!(pool.map(|x: u32| x * 2, 0..4)?.len(), 4);
    assert_eq!(inet_sockets(std::process::id()), Vec::<String>::new());
    drop(pool);
    // A TCP listener given a loopback address by name listens there only.
    let listener = Listener::bind("tcp:127.0.0.1:0", Some(b"k"))?;
    match listener.local_addr() {
        Address::Tcp(a) => assert!(a.ip().is_loopback(), "{a}"),
        other => panic!("{other:?}"),
    }
    manager.shutdown()?;
    Ok(())
}

/// The forkserver of the process that runs this: its sockets have no name in any table.
fn forkserver_sockets(_: ()) -> (usize, Vec<String>, Vec<String>) {
    let mut child = Process::run_fn(|()| 1u8, ())
        .start_method(StartMethod::Forkserver)
        .start()
        .expect("a forkserver child");
    assert_eq!(child.join().expect("join"), 1);
    let me = std::process::id().to_string();
    let server = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse::<u32>().ok())
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1));
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            ppid == Some(me.as_str())
                && env
                    .split(|&b| b == 0)
                    .any(|kv| kv == b"__MULTIPROC_BOOT=forkserver")
        })
        .expect("the forkserver among our children");
    let inodes = socket_inodes(server);
    let named: Vec<String> = table_entries(server, "unix", &inodes)
        .into_iter()
        .filter(|line| line.split_whitespace().count() > 7)
        .collect();
    (inodes.len(), named, inet_sockets(server))
}

fn forkserver_has_no_address() -> TestResult {
    // In a child of its own, so the forkserver ends with it.
    let (sockets, named, inet) = Process::new(|| forkserver_sockets(())).start()?.join()?;
    assert!(sockets > 0, "the forkserver holds its socket pair");
    assert_eq!(
        named,
        Vec::<String>::new(),
        "a forkserver socket with a name"
    );
    assert_eq!(inet, Vec::<String>::new(), "a forkserver inet socket");
    Ok(())
}

/// What a process running as `nobody` gets when it opens each object.
fn open_as_nobody(name: String) -> Vec<String> {
    // SAFETY: setgid/setuid change this (forked, single-threaded) process's credentials.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(65534) == 0
            && libc::setuid(65534) == 0
    };
    assert!(
        dropped,
        "cannot become nobody: {}",
        std::io::Error::last_os_error()
    );
    let kind = |r: Result<(), Error>| match r {
        Ok(()) => "OPENED".to_string(),
        Err(Error::Io(e)) => format!("{:?}", e.kind()),
        Err(e) => format!("{e}"),
    };
    vec![
        kind(Queue::<u8>::open(&format!("{name}-q")).map(drop)),
        kind(Lock::open(&format!("{name}-l")).map(drop)),
        kind(SharedMemory::open(&format!("{name}-m")).map(drop)),
        kind(
            Client::connect_timeout(
                format!("unix:/tmp/{name}-sock"),
                Some(b"k"),
                Duration::from_secs(5),
            )
            .map(drop),
        ),
    ]
}

fn other_user_is_refused() -> TestResult {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Only root can become another user; the 0600 modes above are what protects then.
        eprintln!("not root: the other-user check needs root, skipped");
        return Ok(());
    }
    let name = unique_name("other");
    let (q, l, m) = (
        format!("{name}-q"),
        format!("{name}-l"),
        format!("{name}-m"),
    );
    let queue = Queue::<u8>::create(&q, None)?;
    queue.put(1).map_err(Error::from)?;
    let _lock = Lock::create(&l)?;
    let shm = SharedMemory::create(&m, 64)?;
    let listener = Listener::bind(format!("unix:/tmp/{name}-sock"), Some(b"k"))?;
    let seen = Process::new(move || open_as_nobody(name.clone()))
        .start()?
        .join();
    Queue::<u8>::unlink(&q)?;
    Lock::unlink(&l)?;
    shm.unlink()?;
    drop(listener);
    let seen = seen?;
    assert_eq!(seen.len(), 4, "{seen:?}");
    for outcome in &seen {
        assert_eq!(outcome, "PermissionDenied", "{seen:?}");
    }
    // The owner still uses the queue: nothing reached it.
    assert_eq!(queue.try_get()?, 1);
    Ok(())
}

/// The peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Sends a bare frame header announcing `len` bytes on `conn`, and no payload.
fn announce(conn: &multiproc::Connection, len: u64) {
    use std::io::Write;
    use std::os::fd::AsFd;
    let mut header = Vec::new();
    if len <= 0x7fff_ffff {
        header.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        header.extend_from_slice(&(-1i32).to_be_bytes());
        header.extend_from_slice(&len.to_be_bytes());
    }
    let fd = conn.as_fd().try_clone_to_owned().expect("dup");
    std::os::unix::net::UnixStream::from(fd)
        .write_all(&header)
        .expect("write the header");
}

/// A client holding the key announces messages of 2 GiB and of just under the 1 GiB limit
/// and sends nothing more: the server process refuses the first at once (closing the
/// connection while ours is still open) and, for the second, holds no more memory than
/// what arrived plus one growth step. Seen from the server's own peak RSS.
fn manager_refuses_oversize_frames() -> TestResult {
    let manager = Manager::start()?;
    let server = u32::from(manager.server_pid().expect("our manager's server"));
    let key = manager.authkey().to_vec();
    let list = manager.list::<u8>()?;
    let before = peak_rss_kib(server);
    let mut conn = Client::connect(manager.address(), Some(&key))?;
    announce(&conn, 2 << 30);
    match conn.recv_timeout::<u8>(Duration::from_secs(10)) {
        Err(Error::Eof) => {}
        other => panic!("the server kept an oversize frame's connection: {other:?}"),
    }
    let mut conn = Client::connect(manager.address(), Some(&key))?;
    announce(&conn, multiproc::DEFAULT_MAX_MESSAGE - 1);
    conn.send_bytes(&[0; 1000])?;
    std::thread::sleep(Duration::from_millis(200));
    drop(conn);
    list.push(&1)?;
    let grown = peak_rss_kib(server).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "the server's peak RSS grew by {grown} KiB"
    );
    assert_eq!(list.len()?, 1, "the manager serves on");
    manager.shutdown()?;
    Ok(())
}
