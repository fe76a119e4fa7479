//! Listener / Client between unrelated processes, the authkey handshake, `wait`, and Python
//! on the other end of the wire (contract sections LC and WT).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::{Child as OsChild, Command, Stdio};
use std::time::{Duration, Instant};

use common::{test, TempDir, TestResult};
use multiproc::codec::Pickle;
use multiproc::connection::{wait, Address, Client, Listener, Waitable};
use multiproc::process::send_signal;
use multiproc::{pipe, Error, Process, Signal};
use serde_bytes::ByteBuf;

const KEY: &[u8] = b"the right key";
const WRONG: &[u8] = b"the wrong key";
/// Generous bound for a peer that should connect at once, on a loaded 2-CPU machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    common::run(vec![
        test(
            "lc_01_every_family_round_trips_with_a_child",
            lc_01_families,
        ),
        test("lc_02_second_bind_is_addr_in_use", lc_02_in_use),
        test(
            "lc_unix_socket_file_is_0600_and_removed_on_drop",
            socket_file_mode_and_removal,
        ),
        test(
            "lc_stale_socket_file_of_a_sigkilled_listener_is_replaced",
            stale_socket_replaced,
        ),
        test(
            "lc_listener_moved_into_a_child_belongs_to_the_child",
            listener_moved_into_child,
        ),
        test(
            "lc_04_data_sent_before_accept_is_received",
            lc_04_early_data,
        ),
        test("lc_05_06_poll_after_send_and_empty_authkey", lc_05_06),
        test(
            "lc_10_11_wrong_key_is_refused_on_both_sides",
            lc_11_wrong_key_rust,
        ),
        test(
            "lc_12_keyless_client_sees_the_challenge_and_is_refused",
            lc_12_keyless,
        ),
        test(
            "lc_13_15_garbage_oversized_silent_and_closing_peers_then_a_good_client",
            handshake_garbage,
        ),
        test(
            "lc_outcome_rule_try_accept_accept_timeout_connect_timeout",
            accept_outcomes,
        ),
        test(
            "lc_ten_clients_at_once_right_and_wrong_keys",
            many_clients_at_once,
        ),
        test("lc_17_last_accepted_is_the_tcp_peer", lc_17_last_accepted),
        test(
            "wt_01_four_children_forty_messages_exactly_once",
            wt_01_collect_all,
        ),
        test(
            "wt_02_03_three_connections_only_the_ready_one_and_the_timeout",
            wt_03_timeout,
        ),
        test(
            "wt_05_sentinel_mixed_with_connections_and_a_listener",
            wt_05_sentinel,
        ),
        test(
            "lc_14_sha256_handshake_with_a_python_3_12_peer_both_ways",
            sha256_with_python_312_side,
        ),
        test(
            "lc_python_stdlib_client_and_listener_exchange_every_value_type",
            python_stdlib_values,
        ),
        test(
            "lc_11_python_stdlib_wrong_key_both_ways",
            python_stdlib_wrong_keys,
        ),
    ])
}

fn has_python() -> bool {
    let found = Command::new("python3").arg("--version").output().is_ok();
    if !found {
        eprintln!("python3 not found: the Python side is not checked");
    }
    found
}

/// Starts `python3 -c script args...` with its stdout captured.
fn python(script: &str, args: &[&str]) -> std::io::Result<OsChild> {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Waits for a Python child and returns its stdout; kills it if it outlives `PATIENCE`.
fn finish(mut py: OsChild) -> Result<(bool, String, String), Box<dyn std::error::Error>> {
    let start = Instant::now();
    while py.try_wait()?.is_none() {
        if start.elapsed() > PATIENCE {
            let _ = py.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = py.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

/// A child that connects to `address`, adds the pair it receives and sends the sum back.
fn adder_client(
    address: Address,
    key: Option<Vec<u8>>,
) -> multiproc::Result<multiproc::Child<i32>> {
    Process::new(move || {
        let mut conn = Client::connect(&address, key.as_deref()).unwrap();
        let (a, b): (i32, i32) = conn.recv().unwrap();
        conn.send(&(a + b)).unwrap();
        a + b
    })
    .start()
}

fn lc_01_families() -> TestResult {
    let dir = TempDir::new("families")?;
    let mut addresses = vec![
        format!("unix:{}", dir.path().join("s").display()),
        format!("unix:@{}", common::unique_name("abstract")),
        "tcp:127.0.0.1:0".to_string(),
        "tcp:localhost:0".to_string(),
    ];
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        addresses.push("tcp:[::1]:0".to_string());
    } else {
        eprintln!("no IPv6 loopback here: tcp:[::1] not checked");
    }
    for text in &addresses {
        for key in [None, Some(KEY)] {
            let listener = Listener::bind(text.as_str(), key)?;
            let mut child = adder_client(listener.local_addr().clone(), key.map(<[u8]>::to_vec))?;
            let mut conn = listener.accept_timeout(PATIENCE)?;
            conn.send(&(10, 20))?;
            assert_eq!(conn.recv_timeout::<i32>(PATIENCE)?, 30, "{text}");
            assert_eq!(child.join()?, 30);
        }
    }
    Ok(())
}

fn lc_02_in_use() -> TestResult {
    let dir = TempDir::new("inuse")?;
    let path = format!("unix:{}", dir.path().join("s").display());
    let abs = format!("unix:@{}", common::unique_name("inuse"));
    let tcp = Listener::bind("tcp:127.0.0.1:0", None)?;
    let taken = tcp.local_addr().to_string();
    for text in [path.as_str(), abs.as_str()] {
        let first = Listener::bind(text, None)?;
        match Listener::bind(text, None) {
            Err(Error::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{text}: {e}");
                assert!(e.to_string().contains("in use"), "{e}");
            }
            other => panic!("{text}: expected AddrInUse, got {other:?}"),
        }
        // The first listener still serves.
        let mut child = adder_client(first.local_addr().clone(), None)?;
        let mut conn = first.accept_timeout(PATIENCE)?;
        conn.send(&(1, 2))?;
        assert_eq!(conn.recv::<i32>()?, 3);
        child.join()?;
    }
    match Listener::bind(taken.as_str(), None) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse),
        other => panic!("tcp: expected AddrInUse, got {other:?}"),
    }
    Ok(())
}

fn socket_file_mode_and_removal() -> TestResult {
    let dir = TempDir::new("mode")?;
    let path = dir.path().join("s");
    let listener = Listener::bind(format!("unix:{}", path.display()), Some(KEY))?;
    let meta = std::fs::symlink_metadata(&path)?;
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(listener.local_addr().as_path(), Some(path.as_path()));
    listener.close();
    assert!(!path.exists(), "the socket file outlived its listener");
    Ok(())
}

fn stale_socket_replaced() -> TestResult {
    let dir = TempDir::new("stale")?;
    let path = dir.path().join("s");
    let text = format!("unix:{}", path.display());
    let (mut ready_rx, mut ready_tx) = pipe()?;
    let t2 = text.clone();
    let child = Process::new(move || {
        let _listener = Listener::bind(t2.as_str(), Some(KEY)).unwrap();
        ready_tx.send(&()).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    })
    .start()?;
    ready_rx.recv_timeout::<()>(PATIENCE)?;
    // A live listener keeps its address.
    assert!(matches!(
        Listener::bind(text.as_str(), Some(KEY)),
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AddrInUse
    ));
    child.kill()?;
    let mut child = child;
    assert!(matches!(child.join(), Err(Error::Signaled(_))));
    assert!(
        std::fs::symlink_metadata(&path)?.file_type().is_socket(),
        "SIGKILL leaves the file behind"
    );
    // interprocess#40: the stale file does not block the address.
    let listener = Listener::bind(text.as_str(), Some(KEY))?;
    let mut child = adder_client(listener.local_addr().clone(), Some(KEY.to_vec()))?;
    let mut conn = listener.accept_timeout(PATIENCE)?;
    conn.send(&(2, 3))?;
    assert_eq!(conn.recv::<i32>()?, 5);
    child.join()?;
    drop(listener);
    // A file that is not a socket is never removed.
    std::fs::write(&path, b"precious")?;
    assert!(matches!(
        Listener::bind(text.as_str(), None),
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AddrInUse
    ));
    assert_eq!(std::fs::read(&path)?, b"precious");
    Ok(())
}

fn listener_moved_into_child() -> TestResult {
    let dir = TempDir::new("moved")?;
    let path = dir.path().join("s");
    let listener = Listener::bind(format!("unix:{}", path.display()), Some(KEY))?;
    let address = listener.local_addr().clone();
    let mut server = Process::new(move || {
        let mut conn = listener.accept().unwrap();
        let (a, b): (i32, i32) = conn.recv().unwrap();
        conn.send(&(a * b)).unwrap();
    })
    .start()?;
    // The parent dropped its moved listener at start; the file must still be there.
    assert!(path.exists(), "the parent removed the child's socket file");
    let mut conn = Client::connect_timeout(&address, Some(KEY), PATIENCE)?;
    conn.send(&(6, 7))?;
    assert_eq!(conn.recv::<i32>()?, 42);
    server.join()?;
    assert!(!path.exists(), "the child's drop removes the file");
    Ok(())
}

fn lc_04_early_data() -> TestResult {
    let listener = Listener::bind(format!("unix:@{}", common::unique_name("early")), None)?;
    let address = listener.local_addr().clone();
    let mut child = Process::new(move || {
        let mut conn = Client::connect(&address, None).unwrap();
        conn.send(&"sent before accept").unwrap();
    })
    .start()?;
    child.join()?;
    let mut conn = listener.accept_timeout(PATIENCE)?;
    assert_eq!(conn.recv::<String>()?, "sent before accept");
    assert!(matches!(conn.recv::<String>(), Err(Error::Eof)));
    Ok(())
}

fn lc_05_06() -> TestResult {
    let empty: &[u8] = b"";
    let listener = Listener::bind("tcp:127.0.0.1:0", Some(empty))?;
    let address = listener.local_addr().clone();
    let mut child = Process::new(move || {
        let conn = Client::connect(&address, Some(b"")).unwrap();
        conn.poll(Some(Duration::from_secs(30))).unwrap()
    })
    .start()?;
    let mut conn = listener.accept_timeout(PATIENCE)?;
    conn.send(&1u8)?;
    assert!(child.join()?, "LC-05: the client's poll sees the message");
    // LC-06: an empty key is a key: a keyless client is refused.
    let address = listener.local_addr().clone();
    let mut child = Process::new(move || {
        let mut conn = Client::connect(&address, None).unwrap();
        let _ = conn.send_bytes(b"not a digest");
    })
    .start()?;
    assert!(matches!(
        listener.accept_timeout(PATIENCE),
        Err(Error::Authentication(_))
    ));
    child.join()?;
    Ok(())
}

fn lc_11_wrong_key_rust() -> TestResult {
    let listener = Listener::bind(format!("unix:@{}", common::unique_name("wrong")), Some(KEY))?;
    let address = listener.local_addr().clone();
    let mut child = Process::new(move || match Client::connect(&address, Some(WRONG)) {
        Err(Error::Authentication(m)) => m,
        other => format!("unexpected: {other:?}"),
    })
    .start()?;
    match listener.accept_timeout(PATIENCE) {
        Err(Error::Authentication(m)) => assert_eq!(m, "digest received was wrong"),
        other => panic!("expected Authentication, got {other:?}"),
    }
    assert_eq!(child.join()?, "digest sent was rejected");
    // The listener serves the next, rightful client.
    let mut child = adder_client(listener.local_addr().clone(), Some(KEY.to_vec()))?;
    let mut conn = listener.accept_timeout(PATIENCE)?;
    conn.send(&(4, 5))?;
    assert_eq!(conn.recv::<i32>()?, 9);
    child.join()?;
    Ok(())
}

fn lc_12_keyless() -> TestResult {
    let listener = Listener::bind(
        format!("unix:@{}", common::unique_name("keyless")),
        Some(KEY),
    )?;
    let address = listener.local_addr().clone();
    let mut child = Process::new(move || {
        let mut conn = Client::connect(&address, None).unwrap();
        let first = conn.recv_bytes().unwrap();
        conn.send_bytes(b"some data").unwrap();
        first.starts_with(b"#CHALLENGE#{sha256}") && first.len() == 11 + 8 + 40
    })
    .start()?;
    assert!(matches!(
        listener.accept_timeout(PATIENCE),
        Err(Error::Authentication(_))
    ));
    assert!(
        child.join()?,
        "the key-less client received the raw challenge"
    );
    Ok(())
}

/// Raw bytes to a keyed listener: each bad peer gets a clear error in bounded time, and the
/// listener then serves a good client.
fn handshake_garbage() -> TestResult {
    let dir = TempDir::new("garbage")?;
    let path = dir.path().join("s");
    let mut listener = Listener::bind(format!("unix:{}", path.display()), Some(KEY))?;
    listener.set_handshake_timeout(Duration::from_millis(300));
    let frame = |payload: &[u8]| {
        let mut f = (payload.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    };
    let huge_header = (1u32 << 30).to_be_bytes().to_vec();
    let negative = (-5i32).to_be_bytes().to_vec();
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "garbage digest",
            frame(b"0123456789abcdefghijklmnopqrstuvwxyz"),
            false,
        ),
        ("oversized message", frame(&[b'x'; 300]), false),
        ("huge length", huge_header, true),
        ("negative length", negative, false),
        ("closes mid-header", vec![0, 0], false),
        ("closes mid-payload", vec![0, 0, 0, 40, b'{', b's'], false),
        ("silent", Vec::new(), true),
    ];
    for (what, bytes, keep_open) in cases {
        let mut raw = UnixStream::connect(&path)?;
        raw.write_all(&bytes)?;
        if !keep_open {
            raw.shutdown(std::net::Shutdown::Write)?;
        }
        let start = Instant::now();
        match listener.accept_timeout(PATIENCE) {
            Err(Error::Authentication(m)) => eprintln!("{what}: {m}"),
            other => panic!("{what}: expected Authentication, got {other:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: the handshake bound did not hold"
        );
        // The raw peer got our challenge, and then the verdict or nothing.
        let mut got = Vec::new();
        raw.set_read_timeout(Some(Duration::from_secs(5)))?;
        let _ = raw.read_to_end(&mut got);
        assert!(
            got.len() > 4 && got[4..].starts_with(b"#CHALLENGE#"),
            "{what}"
        );
    }
    let mut child = adder_client(listener.local_addr().clone(), Some(KEY.to_vec()))?;
    let mut conn = listener.accept_timeout(PATIENCE)?;
    conn.send(&(20, 22))?;
    assert_eq!(conn.recv::<i32>()?, 42);
    child.join()?;

    // Without an authkey, a malformed frame after accept is that connection's protocol
    // error; the listener serves the next client.
    let open = Listener::bind(format!("unix:@{}", common::unique_name("frames")), None)?;
    let abstract_name = match open.local_addr() {
        Address::Abstract(n) => n.clone(),
        other => return Err(format!("{other}").into()),
    };
    let raw_addr = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name)?;
    let mut raw = UnixStream::connect_addr(&raw_addr)?;
    raw.write_all(&(-7i32).to_be_bytes())?;
    let mut bad = open.accept_timeout(PATIENCE)?;
    assert!(matches!(bad.recv_bytes(), Err(Error::Protocol(_))));
    let mut child = adder_client(open.local_addr().clone(), None)?;
    let mut conn = open.accept_timeout(PATIENCE)?;
    conn.send(&(1, 1))?;
    assert_eq!(conn.recv::<i32>()?, 2);
    child.join()?;

    // The client side: a listener that sends garbage instead of a challenge.
    let raw = std::os::unix::net::UnixListener::bind(dir.path().join("raw"))?;
    let raw_path = format!("unix:{}", dir.path().join("raw").display());
    let mut server = Process::new(move || {
        let (mut s, _) = raw.accept().unwrap();
        s.write_all(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'])
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    })
    .start()?;
    match Client::connect_timeout(raw_path.as_str(), Some(KEY), PATIENCE) {
        Err(Error::Authentication(m)) => assert!(m.contains("expected a challenge"), "{m}"),
        other => panic!("expected Authentication, got {other:?}"),
    }
    server.join()?;
    Ok(())
}

fn accept_outcomes() -> TestResult {
    let listener = Listener::bind(format!("unix:@{}", common::unique_name("outcome")), None)?;
    assert!(matches!(listener.try_accept(), Err(Error::WouldBlock)));
    let start = Instant::now();
    assert!(matches!(
        listener.accept_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(matches!(
        listener.accept_deadline(Instant::now() + Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    let _client = Client::connect(listener.local_addr(), None)?;
    assert!(common::eventually(PATIENCE, || listener
        .try_accept()
        .is_ok()));
    // A keyed client whose listener never accepts: connect_timeout says Timeout.
    let keyed = Listener::bind(format!("unix:@{}", common::unique_name("slow")), Some(KEY))?;
    let start = Instant::now();
    assert!(matches!(
        Client::connect_timeout(keyed.local_addr(), Some(KEY), Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(100));
    // Nobody listening: a clear refusal.
    let dir = TempDir::new("nobody")?;
    let nobody = format!("unix:{}", dir.path().join("none").display());
    assert!(matches!(
        Client::connect(nobody.as_str(), None),
        Err(Error::Io(_))
    ));
    Ok(())
}

/// Ten clients connect at once, every third with the wrong key: each rightful one is served,
/// each wrong one refused on both sides, in whatever order they arrive.
fn many_clients_at_once() -> TestResult {
    let listener = Listener::bind("tcp:127.0.0.1:0", Some(KEY))?;
    let mut children = Vec::new();
    for i in 0..10i32 {
        let address = listener.local_addr().clone();
        let key: &'static [u8] = if i % 3 == 2 { WRONG } else { KEY };
        children.push(
            Process::new(move || match Client::connect(&address, Some(key)) {
                Ok(mut conn) => {
                    conn.send(&i).unwrap();
                    conn.recv::<i32>().unwrap() == i * 10
                }
                Err(Error::Authentication(_)) => key == WRONG,
                Err(e) => panic!("client {i}: {e}"),
            })
            .start()?,
        );
    }
    let (mut served, mut refused) = (Vec::new(), 0);
    while served.len() + refused < 10 {
        match listener.accept_timeout(PATIENCE) {
            Ok(mut conn) => {
                let i: i32 = conn.recv()?;
                conn.send(&(i * 10))?;
                served.push(i);
            }
            Err(Error::Authentication(_)) => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    served.sort_unstable();
    assert_eq!(served, [0, 1, 3, 4, 6, 7, 9]);
    assert_eq!(refused, 3);
    for mut c in children {
        assert!(c.join()?);
    }
    Ok(())
}

fn lc_17_last_accepted() -> TestResult {
    let listener = Listener::bind("tcp:127.0.0.1:0", None)?;
    assert_eq!(listener.last_accepted(), None);
    let client = std::net::TcpStream::connect(match listener.local_addr() {
        Address::Tcp(a) => *a,
        other => panic!("{other}"),
    })?;
    let _conn = listener.accept_timeout(PATIENCE)?;
    assert_eq!(
        listener.last_accepted(),
        Some(Address::Tcp(client.local_addr()?))
    );
    Ok(())
}

fn wt_01_collect_all() -> TestResult {
    let mut readers = Vec::new();
    let mut children = Vec::new();
    for id in 0..4u32 {
        let (r, mut w) = pipe()?;
        readers.push(r);
        children.push(
            Process::new(move || {
                for i in 0..10u32 {
                    w.send(&(id, i)).unwrap();
                    std::thread::sleep(Duration::from_millis(u64::from(i % 3)));
                }
            })
            .start()?,
        );
    }
    let mut got = Vec::new();
    while !readers.is_empty() {
        let ready = {
            let objs: Vec<&dyn Waitable> = readers.iter().map(|r| r as &dyn Waitable).collect();
            wait(&objs, None)?
        };
        assert!(!ready.is_empty());
        let mut closed = Vec::new();
        for i in ready {
            match readers[i].recv::<(u32, u32)>() {
                Ok(m) => got.push(m),
                Err(Error::Eof) => closed.push(i),
                Err(e) => return Err(e.into()),
            }
        }
        for i in closed.into_iter().rev() {
            readers.remove(i);
        }
    }
    got.sort_unstable();
    let want: Vec<(u32, u32)> = (0..4).flat_map(|c| (0..10).map(move |i| (c, i))).collect();
    assert_eq!(got, want);
    for mut c in children {
        c.join()?;
    }
    Ok(())
}

fn wt_03_timeout() -> TestResult {
    let (mut a1, b1) = pipe()?;
    let (_a2, b2) = pipe()?;
    let (raw1, raw2) = UnixStream::pair()?;
    let objs: [&dyn Waitable; 3] = [&b1, &b2, &raw2];
    let start = Instant::now();
    assert!(wait(&objs, Some(Duration::from_millis(200)))?.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(wait(&objs, Some(Duration::ZERO))?.is_empty());
    a1.send(&1)?;
    assert_eq!(wait(&objs, Some(PATIENCE))?, [0]);
    // WT-02: a plain socket is ready on data, and on its peer's close.
    (&raw1).write_all(b"x")?;
    assert_eq!(wait(&objs, Some(PATIENCE))?, [0, 2]);
    let mut one = [0u8; 1];
    (&raw2).read_exact(&mut one)?;
    assert_eq!(wait(&objs, Some(Duration::ZERO))?, [0]);
    drop(raw1);
    assert_eq!(wait(&objs, Some(PATIENCE))?, [0, 2]);
    Ok(())
}

fn wt_05_sentinel() -> TestResult {
    let (rx, _tx) = pipe()?;
    let listener = Listener::bind(format!("unix:@{}", common::unique_name("wt05")), None)?;
    let mut child = Process::new(|| std::thread::sleep(Duration::from_millis(1500))).start()?;
    let start = Instant::now();
    let ready = wait(&[&rx, &listener, &child], Some(PATIENCE))?;
    let took = start.elapsed();
    assert_eq!(ready, [2], "only the sentinel");
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    // Several ready at once come back together.
    let _client = Client::connect(listener.local_addr(), None)?;
    let objs: [&dyn Waitable; 3] = [&rx, &listener, &child];
    assert_eq!(wait(&objs, Some(PATIENCE))?, [1, 2]);
    child.join()?;
    // A killed child's sentinel is ready too.
    let mut sleeper = Process::new(|| std::thread::sleep(Duration::from_secs(60))).start()?;
    send_signal(sleeper.pid(), Signal::KILL)?;
    assert_eq!(wait(&[&sleeper], Some(PATIENCE))?, [0]);
    assert!(sleeper.join().is_err());
    Ok(())
}

/// Python 3.12's handshake written out by hand (this machine's Python may be older, whose
/// stdlib speaks only HMAC-MD5): it demands the `{sha256}` forms from us in both
/// directions.
const PY312_SIDE: &str = r##"
import hmac, os, socket, sys
from multiprocessing.connection import Connection
mode, address, key = sys.argv[1], sys.argv[2], sys.argv[3].encode()
s = socket.socket(socket.AF_UNIX)
if mode == "server":
    s.bind(address); s.listen(); print("listening", flush=True)
    s, _ = s.accept()
else:
    s.connect(address)
c = Connection(s.detach())

def deliver():
    msg = b"{sha256}" + os.urandom(40)
    c.send_bytes(b"#CHALLENGE#" + msg)
    resp = c.recv_bytes(256)
    ok = resp.startswith(b"{sha256}") and hmac.compare_digest(
        resp[8:], hmac.new(key, msg, "sha256").digest())
    c.send_bytes(b"#WELCOME#" if ok else b"#FAILURE#")
    if not ok:
        print("py: digest received was wrong", flush=True); sys.exit(3)

def answer():
    m = c.recv_bytes(256)
    assert m.startswith(b"#CHALLENGE#{sha256}"), m
    m = m[len(b"#CHALLENGE#"):]
    c.send_bytes(b"{sha256}" + hmac.new(key, m, "sha256").digest())
    if c.recv_bytes(256) != b"#WELCOME#":
        print("py: digest sent was rejected", flush=True); sys.exit(3)

if mode == "server":
    deliver(); answer()
else:
    answer(); deliver()
c.send_bytes(b"hello from 3.12")
assert c.recv_bytes() == b"hello from rust"
print("py: ok", flush=True)
"##;

fn sha256_with_python_312_side() -> TestResult {
    if !has_python() {
        return Ok(());
    }
    let dir = TempDir::new("py312")?;
    // Rust Listener, hand-written 3.12 client: right key, then wrong key.
    let path = dir.path().join("rust");
    let listener = Listener::bind(format!("unix:{}", path.display()), Some(KEY))?;
    let p = path.to_str().unwrap();
    let py = python(PY312_SIDE, &["client", p, std::str::from_utf8(KEY)?])?;
    let mut conn = listener.accept_timeout(PATIENCE)?;
    assert_eq!(conn.recv_bytes()?, b"hello from 3.12");
    conn.send_bytes(b"hello from rust")?;
    let (ok, out, err) = finish(py)?;
    assert!(ok && out == "py: ok", "{out} {err}");
    let py = python(PY312_SIDE, &["client", p, std::str::from_utf8(WRONG)?])?;
    match listener.accept_timeout(PATIENCE) {
        Err(Error::Authentication(m)) => assert_eq!(m, "digest received was wrong"),
        other => panic!("expected Authentication, got {other:?}"),
    }
    let (ok, out, _) = finish(py)?;
    assert!(!ok && out.contains("digest sent was rejected"), "{out}");
    drop(listener);

    // Hand-written 3.12 listener, Rust Client: right key, then wrong key.
    for (key, good) in [(KEY, true), (WRONG, false)] {
        let path = dir.path().join(if good { "py-good" } else { "py-bad" });
        let p = path.to_str().unwrap();
        let mut py = python(PY312_SIDE, &["server", p, std::str::from_utf8(KEY)?])?;
        let mut line = [0u8; 10];
        py.stdout
            .as_mut()
            .ok_or("no stdout")?
            .read_exact(&mut line)?;
        assert_eq!(&line, b"listening\n");
        let result = Client::connect_timeout(format!("unix:{p}"), Some(key), PATIENCE);
        if good {
            let mut conn = result?;
            assert_eq!(conn.recv_bytes()?, b"hello from 3.12");
            conn.send_bytes(b"hello from rust")?;
            let (ok, out, err) = finish(py)?;
            assert!(ok && out == "py: ok", "{out} {err}");
        } else {
            match result {
                Err(Error::Authentication(m)) => assert_eq!(m, "digest sent was rejected"),
                other => panic!("expected Authentication, got {other:?}"),
            }
            let (ok, out, _) = finish(py)?;
            assert!(!ok && out.contains("digest received was wrong"), "{out}");
        }
    }
    Ok(())
}

/// The values Python sends, in order; the Rust side reads each as its Rust type and sends
/// the same Rust values back, which Python compares with the originals.
const PY_VALUES: &str = r##"
VALUES = [42, -7, 2**62, 3.5, "héllo 结束", b"\x00\xff", [1, 2, 3], (1, "a"),
          {"a": 1, "b": 2}, None, {"k": [(1, 2.5, None, b"x")]}, [], ""]
"##;

type Nested = BTreeMap<String, Vec<(i64, f64, Option<i64>, ByteBuf)>>;

/// Receives the `VALUES` of `PY_VALUES` as Rust types, checks them, and sends them back.
fn rust_side_of_values(conn: &mut multiproc::Connection) -> TestResult {
    assert_eq!(conn.recv_with::<Pickle, i64>()?, 42);
    assert_eq!(conn.recv_with::<Pickle, i32>()?, -7);
    assert_eq!(conn.recv_with::<Pickle, u64>()?, 1 << 62);
    assert_eq!(conn.recv_with::<Pickle, f64>()?, 3.5);
    assert_eq!(conn.recv_with::<Pickle, String>()?, "héllo 结束");
    assert_eq!(&conn.recv_with::<Pickle, ByteBuf>()?[..], b"\x00\xff");
    assert_eq!(conn.recv_with::<Pickle, Vec<i64>>()?, [1, 2, 3]);
    assert_eq!(
        conn.recv_with::<Pickle, (i64, String)>()?,
        (1, "a".to_string())
    );
    let dict = conn.recv_with::<Pickle, BTreeMap<String, i64>>()?;
    assert_eq!(dict, BTreeMap::from([("a".into(), 1), ("b".into(), 2)]));
    assert_eq!(conn.recv_with::<Pickle, Option<i64>>()?, None);
    let nested = conn.recv_with::<Pickle, Nested>()?;
    assert_eq!(nested["k"][0].0, 1);
    assert_eq!(nested["k"][0].1, 2.5);
    assert_eq!(nested["k"][0].2, None);
    assert_eq!(&nested["k"][0].3[..], b"x");
    assert!(conn.recv_with::<Pickle, Vec<String>>()?.is_empty());
    assert_eq!(conn.recv_with::<Pickle, String>()?, "");

    conn.send_with::<Pickle, _>(&42i64)?;
    conn.send_with::<Pickle, _>(&-7i32)?;
    conn.send_with::<Pickle, _>(&(1u64 << 62))?;
    conn.send_with::<Pickle, _>(&3.5f64)?;
    conn.send_with::<Pickle, _>("héllo 结束")?;
    conn.send_with::<Pickle, _>(&ByteBuf::from(b"\x00\xff".to_vec()))?;
    conn.send_with::<Pickle, _>(&vec![1i64, 2, 3])?;
    conn.send_with::<Pickle, _>(&(1i64, "a"))?;
    conn.send_with::<Pickle, _>(&dict)?;
    conn.send_with::<Pickle, _>(&None::<i64>)?;
    conn.send_with::<Pickle, _>(&nested)?;
    conn.send_with::<Pickle, _>(&Vec::<String>::new())?;
    conn.send_with::<Pickle, _>("")?;
    Ok(())
}

fn python_stdlib_values() -> TestResult {
    if !has_python() {
        return Ok(());
    }
    // Python's Client against a Rust Listener (unix and tcp).
    let client_script = format!(
        r##"{PY_VALUES}
import sys
from multiprocessing.connection import Client
address = sys.argv[1]
if address.startswith("tcp:"):
    host, port = address[4:].rsplit(":", 1)
    address = (host, int(port))
else:
    address = address[5:]
c = Client(address, authkey=sys.argv[2].encode())
for v in VALUES:
    c.send(v)
for v in VALUES:
    r = c.recv()
    assert r == v and type(r) is type(v), (r, v)
# A value the Rust side cannot read as its type is its codec error, not a crash.
c.send({{"not": "an int"}})
assert c.recv() == "codec error seen"
print("py: ok")
"##
    );
    let dir = TempDir::new("pyvalues")?;
    for text in [
        format!("unix:{}", dir.path().join("s").display()),
        "tcp:127.0.0.1:0".to_string(),
    ] {
        let listener = Listener::bind(text.as_str(), Some(KEY))?;
        let addr = listener.local_addr().to_string();
        let py = python(&client_script, &[&addr, std::str::from_utf8(KEY)?])?;
        let mut conn = listener.accept_timeout(PATIENCE)?;
        let ours = rust_side_of_values(&mut conn).and_then(|()| {
            assert!(matches!(
                conn.recv_with::<Pickle, i64>(),
                Err(Error::Codec(_))
            ));
            Ok(conn.send_with::<Pickle, _>("codec error seen")?)
        });
        let (ok, out, err) = finish(py)?;
        ours.map_err(|e| format!("{e}; python said: {out} {err}"))?;
        assert!(ok && out == "py: ok", "{text}: {out} {err}");
    }

    // A Rust Client against Python's Listener: Python echoes what it receives.
    let listener_script = format!(
        r##"{PY_VALUES}
import sys
from multiprocessing.connection import Listener
l = Listener(sys.argv[1], authkey=sys.argv[2].encode())
print("listening", flush=True)
c = l.accept()
for v in VALUES:
    r = c.recv()
    assert r == v and type(r) is type(v), (r, v)
for v in VALUES:
    c.send(v)
print("py: ok")
"##
    );
    let path = dir.path().join("py");
    let p = path.to_str().unwrap();
    let mut py = python(&listener_script, &[p, std::str::from_utf8(KEY)?])?;
    let mut line = [0u8; 10];
    py.stdout
        .as_mut()
        .ok_or("no stdout")?
        .read_exact(&mut line)?;
    let ours = (|| -> TestResult {
        let mut conn = Client::connect_timeout(format!("unix:{p}"), Some(KEY), PATIENCE)?;
        conn.send_with::<Pickle, _>(&42i64)?;
        conn.send_with::<Pickle, _>(&-7i64)?;
        conn.send_with::<Pickle, _>(&(1i64 << 62))?;
        conn.send_with::<Pickle, _>(&3.5)?;
        conn.send_with::<Pickle, _>("héllo 结束")?;
        conn.send_with::<Pickle, _>(&ByteBuf::from(b"\x00\xff".to_vec()))?;
        conn.send_with::<Pickle, _>(&vec![1, 2, 3])?;
        conn.send_with::<Pickle, _>(&(1, "a"))?;
        conn.send_with::<Pickle, _>(&BTreeMap::from([("a", 1), ("b", 2)]))?;
        conn.send_with::<Pickle, _>(&())?;
        let nested: Nested = BTreeMap::from([(
            "k".to_string(),
            vec![(1, 2.5, None, ByteBuf::from(b"x".to_vec()))],
        )]);
        conn.send_with::<Pickle, _>(&nested)?;
        conn.send_with::<Pickle, _>(&Vec::<i64>::new())?;
        conn.send_with::<Pickle, _>("")?;
        // Python sends them back; read them as Rust types.
        assert_eq!(conn.recv_with::<Pickle, i64>()?, 42);
        assert_eq!(conn.recv_with::<Pickle, i64>()?, -7);
        assert_eq!(conn.recv_with::<Pickle, i64>()?, 1 << 62);
        assert_eq!(conn.recv_with::<Pickle, f64>()?, 3.5);
        assert_eq!(conn.recv_with::<Pickle, String>()?, "héllo 结束");
        assert_eq!(&conn.recv_with::<Pickle, ByteBuf>()?[..], b"\x00\xff");
        assert_eq!(conn.recv_with::<Pickle, Vec<i64>>()?, [1, 2, 3]);
        assert_eq!(
            conn.recv_with::<Pickle, (i64, String)>()?,
            (1, "a".to_string())
        );
        assert_eq!(conn.recv_with::<Pickle, BTreeMap<String, i64>>()?.len(), 2);
        assert_eq!(conn.recv_with::<Pickle, Option<String>>()?, None);
        assert_eq!(conn.recv_with::<Pickle, Nested>()?, nested);
        assert!(conn.recv_with::<Pickle, Vec<i64>>()?.is_empty());
        assert_eq!(conn.recv_with::<Pickle, String>()?, "");
        Ok(())
    })();
    let (ok, out, err) = finish(py)?;
    ours.map_err(|e| format!("{e}; python said: {out} {err}"))?;
    assert!(ok && out == "py: ok", "{out} {err}");
    Ok(())
}

fn python_stdlib_wrong_keys() -> TestResult {
    if !has_python() {
        return Ok(());
    }
    let dir = TempDir::new("pywrong")?;
    // Python's Client with the wrong key against a Rust Listener.
    let client_script = r##"
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
try:
    Client(sys.argv[1], authkey=sys.argv[2].encode())
except AuthenticationError as e:
    print("py:", e)
"##;
    let path = dir.path().join("rust");
    let listener = Listener::bind(format!("unix:{}", path.display()), Some(KEY))?;
    let py = python(
        client_script,
        &[path.to_str().unwrap(), std::str::from_utf8(WRONG)?],
    )?;
    match listener.accept_timeout(PATIENCE) {
        Err(Error::Authentication(m)) => assert_eq!(m, "digest received was wrong"),
        other => panic!("expected Authentication, got {other:?}"),
    }
    let (_, out, err) = finish(py)?;
    assert_eq!(out, "py: digest sent was rejected", "{err}");

    // A Rust Client with the wrong key against Python's Listener.
    let listener_script = r##"
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Listener
l = Listener(sys.argv[1], authkey=sys.argv[2].encode())
print("listening", flush=True)
try:
    l.accept()
except AuthenticationError as e:
    print("py:", e)
"##;
    let path = dir.path().join("py");
    let p = path.to_str().unwrap();
    let mut py = python(listener_script, &[p, std::str::from_utf8(KEY)?])?;
    let mut line = [0u8; 10];
    py.stdout
        .as_mut()
        .ok_or("no stdout")?
        .read_exact(&mut line)?;
    match Client::connect_timeout(format!("unix:{p}"), Some(WRONG), PATIENCE) {
        Err(Error::Authentication(m)) => assert_eq!(m, "digest sent was rejected"),
        other => panic!("expected Authentication, got {other:?}"),
    }
    let (_, out, err) = finish(py)?;
    assert_eq!(out, "py: digest received was wrong", "{err}");
    Ok(())
}
