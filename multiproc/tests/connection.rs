//! Connections between real processes (contract section CN).

mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{test, TestResult};
use multiproc::process::send_signal;
use multiproc::{pipe, pipe_oneway, Connection, Error, Lock, Pid, Process, Signal};

fn main() {
    common::run(vec![
        test(
            "cn_01_duplex_values_through_an_echo_child",
            cn_01_duplex_echo,
        ),
        test("cn_02_w8_sizes_0_1_16mib_64mib_round_trip", cn_02_sizes),
        test(
            "w8_a_message_past_2_gib_crosses_a_pipe_between_processes",
            w8_past_2_gib,
        ),
        test(
            "cn_03_04_recv_into_and_buffer_too_short_across_processes",
            cn_03_04_into,
        ),
        test("cn_06_poll_zero_timeout_and_pending_data", cn_06_poll),
        test("cn_07_poll_none_waits_for_data", cn_07_poll_none),
        test(
            "cn_09_poll_in_a_child_consumes_nothing",
            cn_09_poll_in_child,
        ),
        test(
            "cn_10_eof_only_when_every_copy_is_closed",
            cn_10_eof_every_copy,
        ),
        test(
            "cn_10_eof_after_the_peer_process_exits_without_closing",
            cn_10_eof_on_exit,
        ),
        test("cn_11_oneway_pipe_carries_one_way", cn_11_oneway),
        test("cn_14_recv_bytes_max_over_the_limit", cn_14_max),
        test(
            "seed_000_child_sees_eof_without_closing_inherited_ends",
            cn_18_seed_pitfall,
        ),
        test(
            "cn_18_parent_closes_its_copy_right_after_start",
            cn_18_close_after_start,
        ),
        test(
            "cn_19_send_with_no_reader_is_broken_pipe",
            cn_19_broken_pipe,
        ),
        test(
            "cn_23_recv_and_send_survive_eintr_without_sa_restart",
            cn_23_eintr,
        ),
        test(
            "bug_1_1_two_readers_of_one_end_under_a_lock_lose_nothing",
            two_readers_one_end,
        ),
        test(
            "bug_1_5_codec_refuses_trailing_bytes_and_deep_nesting_across_processes",
            codec_errors_across_processes,
        ),
        test(
            "bug_1_5_a_framing_error_breaks_the_connection_for_good",
            framing_error_breaks,
        ),
        test(
            "outcome_rule_try_recv_recv_timeout_recv_deadline",
            recv_outcomes,
        ),
        test(
            "peer_dies_mid_message_gives_protocol_error",
            peer_dies_mid_message,
        ),
        test(
            "peer_killed_while_sending_64mib_gives_an_error",
            peer_killed_mid_send,
        ),
        test(
            "cn_20_raw_frames_interoperate_with_python",
            cn_20_python_interop,
        ),
        test(
            "cn_21_ends_sent_to_a_running_child_work_there_and_keep_eof_rules",
            cn_21_ends_to_running_child,
        ),
        test(
            "cn_22_a_file_descriptor_above_256_reaches_a_running_child",
            cn_22_fd_transfer,
        ),
        test(
            "cn_22_receiving_a_handle_from_a_message_without_one_is_an_error",
            cn_22_missing_fd,
        ),
        test(
            "handles_lost_to_the_receivers_fd_limit_are_an_error_and_leak_nothing",
            handles_over_fd_limit,
        ),
    ])
}

// Every child here is a `run_fn` function that gets its connection ends (and lock) as its
// argument, so the start-method matrix of `.ci/run` runs each test under fork, forkserver
// and spawn.

fn nothing(_: ()) {}

/// How many descriptors this process has open (exact here: the harness has one thread),
/// after the registry let go of the children that were joined and dropped. A `run_fn` child
/// is started first, so a forkserver (its socket) is up before and after a test counts.
fn open_fds() -> usize {
    if let Ok(mut warm) = Process::run_fn(nothing, ()).start() {
        let _ = warm.join();
    }
    let _ = multiproc::active_children();
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn cn_21_ends_to_running_child() -> TestResult {
    let before = open_fds();
    let (mut ctl, ctl_child) = pipe()?;
    /// Writes on one received end and drops it; reads the other until EOF.
    fn write_one_read_other(mut ctl: Connection) -> Vec<u32> {
        let mut writer: Connection = ctl.recv().unwrap();
        let mut reader: Connection = ctl.recv().unwrap();
        writer.send(&"hello from the child").unwrap();
        drop(writer);
        ctl.send(&"writer dropped").unwrap();
        let mut got = Vec::new();
        loop {
            match reader.recv::<u32>() {
                Ok(v) => got.push(v),
                Err(Error::Eof) => break,
                Err(e) => panic!("{e}"),
            }
        }
        got
    }
    let mut child = Process::run_fn(write_one_read_other, ctl_child).start()?;
    // The child is running; only now are the pipes made.
    let (mut from_child, to_parent) = pipe()?;
    let (mut to_child, from_parent) = pipe()?;
    ctl.send(&to_parent)?;
    ctl.send(&from_parent)?;
    drop(to_parent);
    drop(from_parent);
    assert_eq!(ctl.recv::<String>()?, "writer dropped");
    assert_eq!(from_child.recv::<String>()?, "hello from the child");
    assert!(
        matches!(from_child.recv::<String>(), Err(Error::Eof)),
        "both copies of the writer are dropped (the child still runs): EOF"
    );
    for i in 1..=3u32 {
        to_child.send(&i)?;
    }
    assert!(
        matches!(
            child.join_timeout(Duration::from_millis(200)),
            Err(Error::Timeout)
        ),
        "the parent still holds the reader's peer: the child must not see EOF"
    );
    drop(to_child);
    assert_eq!(child.join()?, vec![1, 2, 3]);
    drop((child, ctl, from_child));
    assert_eq!(open_fds(), before, "no descriptor leaked");
    Ok(())
}

fn cn_22_fd_transfer() -> TestResult {
    use multiproc::handle::Fd;
    use std::io::{Read, Seek};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    let before = open_fds();
    let (mut ctl, ctl_child) = pipe()?;
    fn write_to_received_file(mut ctl: Connection) {
        let fd: Fd = ctl.recv().unwrap();
        let mut file = std::fs::File::from(fd.into_inner());
        file.write_all(b"written by the child").unwrap();
    }
    let mut child = Process::run_fn(write_to_received_file, ctl_child).start()?;
    let dir = std::env::temp_dir().join(format!("mp-cn22-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&dir)?;
    std::fs::remove_file(&dir)?;
    // A descriptor number above 256 (Python's test_large_fd_transfer).
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor, which we own at once.
    let high = unsafe {
        let raw = libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 300);
        assert!(raw >= 300, "F_DUPFD_CLOEXEC failed");
        OwnedFd::from_raw_fd(raw)
    };
    ctl.send(&Fd::from(high))?;
    child.join()?;
    file.rewind()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    assert_eq!(text, "written by the child");
    drop((child, file, ctl));
    assert_eq!(open_fds(), before, "no descriptor leaked");
    Ok(())
}

fn cn_22_missing_fd() -> TestResult {
    let (a, mut b) = pipe()?;
    /// A message that holds an index but carries no descriptor (what a peer that only
    /// sends plain values would write where a handle is expected).
    fn send_index_without_fd(mut a: Connection) {
        a.send(&0u32).unwrap();
        a.send(&"still in step").unwrap();
    }
    let mut child = Process::run_fn(send_index_without_fd, a).start()?;
    let err = b.recv::<multiproc::handle::Fd>().unwrap_err();
    assert!(
        matches!(&err, Error::Codec(e) if e.to_string().contains("carries 0 descriptors")),
        "{err}"
    );
    assert_eq!(b.recv::<String>()?, "still in step");
    child.join()?;
    Ok(())
}

fn handles_over_fd_limit() -> TestResult {
    use multiproc::handle::Fd;
    use std::os::fd::AsRawFd;

    let before = open_fds();
    let (mut ctl, ctl_child) = pipe()?;
    fn limit_fds_then_take_ten(mut ctl_child: Connection) -> String {
        // Leave room for two more descriptors only (the limit caps descriptor numbers, and
        // a new one takes the lowest free number); ten arrive: the kernel installs what fits
        // and reports the rest lost.
        let lowest_free = std::fs::File::open("/dev/null").unwrap().as_raw_fd() as u64;
        let low = libc::rlimit {
            rlim_cur: lowest_free + 2,
            rlim_max: libc::RLIM_INFINITY,
        };
        let mut old = low;
        // SAFETY: getrlimit/setrlimit read and write one rlimit each.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
            let low = libc::rlimit {
                rlim_max: old.rlim_max,
                ..low
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &low), 0);
        }
        ctl_child.send(&"limited").unwrap();
        let got = ctl_child.recv::<Vec<Fd>>();
        let after_error: String = ctl_child.recv().unwrap();
        match got {
            Err(Error::Protocol(e)) => format!("{e} / {after_error}"),
            other => format!("unexpected: {other:?}"),
        }
    }
    let mut child = Process::run_fn(limit_fds_then_take_ten, ctl_child).start()?;
    assert_eq!(ctl.recv::<String>()?, "limited");
    let (probe_end, mut probe) = pipe()?;
    let ten: Vec<Fd> = (0..10)
        .map(|_| probe_end.as_fd().try_clone_to_owned().map(Fd::from))
        .collect::<Result<_, _>>()?;
    ctl.send(&ten)?;
    ctl.send(&"next message")?;
    drop(ten);
    let report = child.join()?;
    assert!(report.contains("lost in transit"), "{report}");
    assert!(report.ends_with("/ next message"), "{report}");
    drop(probe_end);
    assert!(
        matches!(probe.recv_bytes(), Err(Error::Eof)),
        "the child closed the descriptors that did arrive"
    );
    drop((child, probe, ctl));
    assert_eq!(open_fds(), before, "no descriptor leaked");
    Ok(())
}

fn echo_child() -> Result<(Connection, multiproc::Child<u32>), multiproc::Error> {
    let (parent, child_end) = pipe()?;
    fn echo(mut end: Connection) -> u32 {
        let mut n = 0;
        while let Ok(bytes) = end.recv_bytes() {
            end.send_bytes(&bytes).unwrap();
            n += 1;
        }
        n
    }
    let child = Process::run_fn(echo, child_end).start()?;
    Ok((parent, child))
}

fn cn_01_duplex_echo() -> TestResult {
    let (mut a, b) = pipe()?;
    fn echo_then_send_123(mut b: Connection) {
        let v: (i32, f64, Option<String>) = b.recv().unwrap();
        b.send(&v).unwrap();
        b.send(&vec![1u8, 2, 3]).unwrap();
    }
    let mut child = Process::run_fn(echo_then_send_123, b).start()?;
    a.send(&(1, 2.25, None::<String>))?;
    assert_eq!(a.recv::<(i32, f64, Option<String>)>()?, (1, 2.25, None));
    assert_eq!(a.recv::<Vec<u8>>()?, vec![1, 2, 3]);
    child.join()?;
    Ok(())
}

fn cn_02_sizes() -> TestResult {
    let (mut conn, mut child) = echo_child()?;
    let sizes = [0usize, 1, 255, 65_536, 16 << 20, 64 << 20];
    for &size in &sizes {
        let msg: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        conn.send_bytes(&msg)?;
        let back = conn.recv_bytes()?;
        assert_eq!(back.len(), size);
        assert!(back == msg, "payload of {size} bytes changed in transit");
    }
    drop(conn);
    assert_eq!(child.join()?, sizes.len() as u32);
    Ok(())
}

/// W8: Python's 32-bit length header capped messages at 2 GiB. A message of 2 GiB + 16 MiB
/// (the long header: -1, then 8 bytes) goes from a child to its parent whole; every MiB
/// carries its index, so a lost or repeated block shows.
fn w8_past_2_gib() -> TestResult {
    const MIB: usize = 1 << 20;
    const SIZE: usize = (2 << 30) + 16 * MIB;
    let (mut near, far) = pipe()?;
    fn send_numbered_blocks(mut far: Connection) {
        let mut m = vec![0u8; SIZE];
        for (i, block) in m.chunks_mut(MIB).enumerate() {
            block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        }
        m[SIZE - 1] = 0xee;
        far.send_bytes(&m).unwrap();
    }
    let mut child = Process::run_fn(send_numbered_blocks, far).start()?;
    // Past the default 1 GiB cap on announced lengths: the receiver raises it on purpose.
    near.set_max_message(3 << 30);
    let m = near.recv_bytes_max(3 << 30)?;
    child.join()?;
    assert_eq!(m.len(), SIZE);
    for (i, block) in m.chunks(MIB).enumerate() {
        assert_eq!(block[..8], (i as u64).to_le_bytes(), "block {i}");
    }
    assert_eq!(m[SIZE - 1], 0xee);
    Ok(())
}

fn cn_03_04_into() -> TestResult {
    let (mut conn, mut child) = echo_child()?;
    conn.send_bytes(b"hello")?;
    let mut buf = [b'.'; 12];
    assert_eq!(conn.recv_bytes_into(&mut buf[4..])?, 5);
    assert_eq!(&buf, b"....hello...");
    conn.send_bytes(&[9u8; 100])?;
    match conn.recv_bytes_into(&mut buf) {
        Err(Error::BufferTooShort { message }) => assert_eq!(message, vec![9u8; 100]),
        other => panic!("expected BufferTooShort, got {other:?}"),
    }
    conn.send_bytes(b"after")?;
    assert_eq!(
        conn.recv_bytes()?,
        b"after",
        "the connection goes on after BufferTooShort"
    );
    drop(conn);
    child.join()?;
    Ok(())
}

fn cn_06_poll() -> TestResult {
    let (mut a, b) = pipe()?;
    let t = Instant::now();
    assert!(!a.poll(Some(Duration::ZERO))?, "poll(0) on an empty pipe");
    let t2 = Instant::now();
    assert!(!a.poll(Some(Duration::from_millis(150)))?);
    assert!(
        t2.elapsed() >= Duration::from_millis(150),
        "poll(t) waits at least t"
    );
    let _ = t;
    fn send_x(mut b: Connection) {
        b.send_bytes(b"x").unwrap();
    }
    let mut child = Process::run_fn(send_x, b).start()?;
    child.join()?;
    for _ in 0..3 {
        assert!(
            a.poll(Some(Duration::ZERO))?,
            "pending data: poll stays true"
        );
    }
    assert_eq!(a.recv_bytes()?, b"x");
    assert!(
        a.poll(Some(Duration::ZERO))?,
        "the child's end is closed: EOF is readable"
    );
    assert!(matches!(a.recv_bytes(), Err(Error::Eof)));
    Ok(())
}

fn cn_07_poll_none() -> TestResult {
    let (a, mut b) = pipe()?;
    fn send_7_late(mut a: Connection) {
        std::thread::sleep(Duration::from_millis(200));
        a.send(&7u8).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut child = Process::run_fn(send_7_late, a).start()?;
    let t = Instant::now();
    assert!(b.poll(None)?);
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(b.recv::<u8>()?, 7);
    child.join()?;
    Ok(())
}

/// CN-09: a child polls a copy of the reading end and exits; the parent then reads the
/// whole message from its own copy of the same end.
fn cn_09_poll_in_child() -> TestResult {
    let (mut a, mut b) = pipe()?;
    a.send_bytes(b"whole message")?;
    fn poll_5_s(poller: Connection) -> bool {
        poller.poll(Some(Duration::from_secs(5))).unwrap()
    }
    let mut child = Process::run_fn(poll_5_s, b.try_clone()?).start()?;
    assert!(child.join()?, "the child saw the message");
    assert!(b.poll(Some(Duration::ZERO))?, "and left it there");
    assert_eq!(b.recv_bytes()?, b"whole message");
    assert!(!b.poll(Some(Duration::ZERO))?, "one message, read once");
    Ok(())
}

fn cn_10_eof_every_copy() -> TestResult {
    let (mut a, b) = pipe()?;
    let b_copy = b.try_clone()?;
    let (mut release, hold) = pipe()?;
    fn keep_until_released((_keep, mut hold): (Connection, Connection)) {
        let _ = hold.recv::<u8>();
    }
    let mut holder = Process::run_fn(keep_until_released, (b_copy, hold)).start()?;
    drop(b);
    assert!(
        !a.poll(Some(Duration::from_millis(100)))?,
        "a live child still holds a copy"
    );
    release.send(&1u8)?;
    holder.join()?;
    assert!(a.poll(Some(Duration::from_secs(5)))?);
    assert!(matches!(a.recv::<u8>(), Err(Error::Eof)));
    Ok(())
}

fn cn_10_eof_on_exit() -> TestResult {
    let (mut rx, tx) = pipe()?;
    fn send_and_exit(mut tx: Connection) {
        tx.send(&"last words").unwrap();
        std::mem::forget(tx); // exit without closing: the kernel closes it
        std::process::exit(0)
    }
    let mut child = Process::run_fn(send_and_exit, tx).start()?;
    assert_eq!(rx.recv::<String>()?, "last words");
    assert!(matches!(rx.recv::<String>(), Err(Error::Eof)));
    assert!(matches!(child.join(), Err(Error::Exited(0))));
    Ok(())
}

fn cn_11_oneway() -> TestResult {
    let (mut rx, tx) = pipe_oneway()?;
    fn send_0_1_2(mut tx: Connection<multiproc::connection::SendOnly>) {
        for i in 0..3u8 {
            tx.send(&i).unwrap();
        }
    }
    let mut child = Process::run_fn(send_0_1_2, tx).start()?;
    for i in 0..3u8 {
        assert_eq!(rx.recv::<u8>()?, i);
    }
    assert!(matches!(rx.recv::<u8>(), Err(Error::Eof)));
    child.join()?;
    // A raw write on the receiving end is refused by the socket itself.
    let raw = UnixStream::from(rx.as_fd().try_clone_to_owned()?);
    assert!((&raw).write_all(b"x").is_err());
    Ok(())
}

fn cn_14_max() -> TestResult {
    let (mut conn, mut child) = echo_child()?;
    conn.send_bytes(&[1u8; 1000])?;
    match conn.recv_bytes_max(999) {
        Err(Error::MessageTooLong { len, max }) => assert_eq!((len, max), (1000, 999)),
        other => panic!("expected MessageTooLong, got {other:?}"),
    }
    conn.send_bytes(b"still usable")?;
    assert_eq!(conn.recv_bytes_max(12)?, b"still usable");
    drop(conn);
    child.join()?;
    Ok(())
}

/// Seed 000: the consumer must see EOF although nobody closes inherited copies by hand.
fn cn_18_seed_pitfall() -> TestResult {
    let (mut left, right) = pipe()?;
    fn take_until_eof(mut right: Connection) -> Vec<i32> {
        let mut got = Vec::new();
        while let Ok(i) = right.recv::<i32>() {
            got.push(i);
        }
        got
    }
    let mut consumer = Process::run_fn(take_until_eof, right).start()?;
    for i in 1..=5 {
        left.send(&i)?;
    }
    drop(left);
    let mut got = None;
    for _ in 0..50 {
        match consumer.join_timeout(Duration::from_millis(100)) {
            Ok(v) => {
                got = Some(v);
                break;
            }
            Err(Error::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(got, Some(vec![1, 2, 3, 4, 5]), "the consumer saw EOF");
    Ok(())
}

/// CN-18: the parent closes its copy of the child's end right after `start`; the child
/// keeps working with its own.
fn cn_18_close_after_start() -> TestResult {
    let (mut parent, child_end) = pipe()?;
    fn double(mut end: Connection) {
        let n: i32 = end.recv().unwrap();
        end.send(&(n * 2)).unwrap();
    }
    let mut child = Process::run_fn(double, child_end.try_clone()?).start()?;
    child_end.close();
    parent.send(&21)?;
    assert_eq!(parent.recv::<i32>()?, 42);
    child.join()?;
    assert!(matches!(parent.recv::<i32>(), Err(Error::Eof)));
    Ok(())
}

fn cn_19_broken_pipe() -> TestResult {
    let (mut a, b) = pipe()?;
    fn close(b: Connection) {
        drop(b);
    }
    let mut child = Process::run_fn(close, b).start()?;
    child.join()?;
    match a.send_bytes(&vec![0u8; 1 << 20]) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
        other => panic!("expected BrokenPipe, got {other:?}"),
    }
    Ok(())
}

static USR2_SEEN: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_usr2(_: libc::c_int) {
    USR2_SEEN.fetch_add(1, Ordering::Relaxed);
}

/// Installs `count_usr2` for SIGUSR2 *without* `SA_RESTART`, so a blocked `read`, `poll` or
/// `sendmsg` really fails with `EINTR`; returns the old action to restore.
fn install_usr2_without_restart() -> std::io::Result<libc::sigaction> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only
    // touches an atomic, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = count_usr2 as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGUSR2, &action, &mut old) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(old)
    }
}

/// CN-23: a blocking `recv`, a `recv_timeout` and a `send_bytes` that fills the socket are
/// interrupted by a signal whose handler does not restart calls, and still complete.
fn cn_23_eintr() -> TestResult {
    let old = install_usr2_without_restart()?;
    let result = cn_23_body();
    // SAFETY: puts back the action saved above.
    unsafe { libc::sigaction(libc::SIGUSR2, &old, std::ptr::null_mut()) };
    result
}

fn cn_23_body() -> TestResult {
    let parent = multiproc::current_process().pid();
    let (mut conn, child_end) = pipe()?;
    fn nag_the_parent((mut end, parent): (Connection, Pid)) -> usize {
        let nag = |n: u32| {
            for _ in 0..n {
                std::thread::sleep(Duration::from_millis(50));
                send_signal(parent, Signal::USR2).unwrap();
            }
        };
        // 1. The parent is blocked in `recv`.
        nag(3);
        end.send(&"after the signals").unwrap();
        // 2. The parent is blocked in `recv_timeout`.
        nag(3);
        end.send(&"before the deadline").unwrap();
        // 3. The parent is blocked in a 32 MiB `send_bytes` (the socket holds 4 MiB).
        let _: () = end.recv().unwrap();
        nag(3);
        end.recv_bytes().unwrap().len()
    }
    let mut child = Process::run_fn(nag_the_parent, (child_end, parent)).start()?;
    let t = Instant::now();
    assert_eq!(conn.recv::<String>()?, "after the signals");
    assert!(t.elapsed() >= Duration::from_millis(100));
    let seen = USR2_SEEN.load(Ordering::Relaxed);
    assert!(seen >= 3, "the handler ran while recv was blocked ({seen})");
    assert_eq!(
        conn.recv_timeout::<String>(Duration::from_secs(30))?,
        "before the deadline"
    );
    assert!(USR2_SEEN.load(Ordering::Relaxed) >= seen + 3);
    conn.send(&())?;
    conn.send_bytes(&vec![5u8; 32 << 20])?;
    assert_eq!(child.join()?, 32 << 20);
    assert!(USR2_SEEN.load(Ordering::Relaxed) >= seen + 6);
    Ok(())
}

/// The frame a writer sends as number `i`: its number, then a size that varies from empty
/// to larger than 64 KiB, filled with a pattern that depends on `i`.
fn numbered_frame(i: u32) -> Vec<u8> {
    let size = match i % 10 {
        0 => 70_000 + (i as usize % 5_000),
        1 => 0,
        _ => (i as usize * 7_919) % 3_000,
    };
    let mut frame = i.to_le_bytes().to_vec();
    frame.extend((0..size).map(|k| (k as u32).wrapping_mul(31).wrapping_add(i) as u8));
    frame
}

/// Bug 1.1: two processes read one end, each `recv` under a shared lock (as Python
/// requires); a writer sends 4,000 frames of mixed sizes. Every frame arrives once, intact.
fn two_readers_one_end() -> TestResult {
    const N: u32 = 4_000;
    let (mut tx, rx) = pipe()?;
    let lock = Lock::new()?;
    let mut readers = Vec::new();
    /// Receives under the lock until EOF; returns the frame numbers in arrival order.
    fn read_under_lock((mut end, lock): (Connection, Lock)) -> Result<Vec<u32>, String> {
        let mut seen = Vec::new();
        loop {
            let message = {
                let _held = lock.lock().map_err(|e| e.to_string())?;
                end.recv_bytes()
            };
            match message {
                Ok(m) if m.len() >= 4 => {
                    let i = u32::from_le_bytes(m[..4].try_into().unwrap());
                    if m != numbered_frame(i) {
                        return Err(format!("frame {i} arrived corrupted"));
                    }
                    seen.push(i);
                }
                Ok(m) => return Err(format!("a frame of {} bytes", m.len())),
                Err(Error::Eof) => return Ok(seen),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    for _ in 0..2 {
        readers.push(Process::run_fn(read_under_lock, (rx.try_clone()?, lock.clone())).start()?);
    }
    drop(rx);
    for i in 0..N {
        tx.send_bytes(&numbered_frame(i))?;
    }
    drop(tx);
    let mut all = Vec::new();
    for reader in &mut readers {
        let seen = reader
            .join()?
            .map_err(|e| format!("a reader failed: {e}"))?;
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "each reader in order");
        all.extend(seen);
    }
    all.sort_unstable();
    assert_eq!(all.len(), N as usize, "every frame arrived once");
    assert!(all.iter().copied().eq(0..N));
    Ok(())
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

/// Bug 1.5: a value must use its whole frame, and deep nesting is an error, not a dead
/// receiver; the connection goes on after both.
fn codec_errors_across_processes() -> TestResult {
    let (mut rx, tx) = pipe()?;
    fn send_misfits(mut tx: Connection) {
        tx.send(&vec![300u16, 2, 3]).unwrap();
        tx.send_bytes(&vec![1u8; 1 << 20]).unwrap();
        tx.send(&7u8).unwrap();
    }
    let mut child = Process::run_fn(send_misfits, tx).start()?;
    match rx.recv::<(u8, u8)>() {
        Err(Error::Codec(e)) => assert!(e.to_string().contains("left after"), "{e}"),
        other => panic!("expected a codec error, got {other:?}"),
    }
    match rx.recv::<Tree>() {
        Err(Error::Codec(e)) => assert!(e.to_string().contains("levels deep"), "{e}"),
        other => panic!("expected a codec error, got {other:?}"),
    }
    assert_eq!(rx.recv::<u8>()?, 7, "the connection goes on");
    child.join()?;
    Ok(())
}

/// Bug 1.5: after a malformed frame the connection is broken, and says so on every later
/// receive, also once the peer has closed (not a loop of the first error, not `Eof`).
fn framing_error_breaks() -> TestResult {
    let (mut rx, tx) = pipe()?;
    let (go_rx, go_tx) = pipe()?;
    fn write_a_negative_length((tx, mut go): (Connection, Connection)) {
        let raw = UnixStream::from(tx.as_fd().try_clone_to_owned().unwrap());
        // -3: negative and not a marker (-1 announces a long header, -2 a message with
        // descriptors).
        (&raw).write_all(&[0xff, 0xff, 0xff, 0xfd]).unwrap();
        (&raw).write_all(&[0, 0, 0, 2, b'o', b'k']).unwrap();
        let _ = go.recv::<()>();
    }
    let mut child = Process::run_fn(write_a_negative_length, (tx, go_rx)).start()?;
    let mut go_tx = go_tx;
    match rx.recv_bytes() {
        Err(Error::Protocol(e)) => assert!(e.to_string().contains("negative frame length")),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    let broken = |r: Result<Vec<u8>, Error>| {
        matches!(r, Err(Error::Protocol(e)) if e.to_string().contains("broken")
            && e.to_string().contains("negative frame length"))
    };
    assert!(rx.poll(Some(Duration::ZERO))?, "a receive answers at once");
    assert!(broken(rx.recv_bytes()));
    assert!(broken(rx.try_recv::<Vec<u8>>()));
    assert!(broken(rx.recv_timeout(Duration::from_secs(5))));
    go_tx.send(&())?;
    child.join()?;
    assert!(
        broken(rx.recv_bytes()),
        "still broken after the peer closed"
    );
    assert!(broken(rx.recv::<Vec<u8>>()));
    Ok(())
}

/// The outcome rule for the recv family: `try_recv` says `Empty` at once, the timed forms
/// say `Timeout` after their limit, `Duration::MAX` is forever.
fn recv_outcomes() -> TestResult {
    let (mut rx, tx) = pipe()?;
    let t = Instant::now();
    assert!(matches!(rx.try_recv::<u8>(), Err(Error::Empty)));
    assert!(matches!(
        rx.recv_timeout::<u8>(Duration::ZERO),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() < Duration::from_millis(50), "neither waited");
    let t = Instant::now();
    assert!(matches!(
        rx.recv_timeout::<u8>(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    let t = Instant::now();
    assert!(matches!(
        rx.recv_deadline::<u8>(t + Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    fn send_1_2_late(mut tx: Connection) {
        std::thread::sleep(Duration::from_millis(100));
        tx.send(&1u8).unwrap();
        tx.send(&2u8).unwrap();
    }
    let mut child = Process::run_fn(send_1_2_late, tx).start()?;
    assert!(
        rx.poll(Some(Duration::MAX))?,
        "Duration::MAX waits, never panics"
    );
    assert_eq!(rx.recv_timeout::<u8>(Duration::MAX)?, 1);
    child.join()?;
    assert_eq!(rx.try_recv::<u8>()?, 2, "a message that is here is taken");
    assert!(matches!(rx.try_recv::<u8>(), Err(Error::Eof)));
    assert!(matches!(
        rx.recv_deadline::<u8>(Instant::now() + Duration::from_secs(5)),
        Err(Error::Eof)
    ));
    Ok(())
}

fn peer_dies_mid_message() -> TestResult {
    let (mut rx, tx) = pipe()?;
    fn die_mid_message(tx: Connection) {
        let raw = UnixStream::from(tx.as_fd().try_clone_to_owned().unwrap());
        (&raw).write_all(&[0, 0, 3, 232]).unwrap(); // announces 1000 bytes
        (&raw).write_all(&[7; 10]).unwrap(); // sends 10, then dies
        std::process::exit(0)
    }
    let mut child = Process::run_fn(die_mid_message, tx).start()?;
    match rx.recv_bytes() {
        Err(Error::Protocol(msg)) => assert!(msg.to_string().contains("10 of 1000"), "{msg}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    let _ = child.join();
    Ok(())
}

fn peer_killed_mid_send() -> TestResult {
    let (mut rx, tx) = pipe()?;
    let (mut ready_rx, ready_tx) = pipe()?;
    fn send_64_mib((mut tx, mut ready): (Connection, Connection)) {
        ready.send(&()).unwrap();
        tx.send_bytes(&vec![1u8; 64 << 20]).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    }
    let mut child = Process::run_fn(send_64_mib, (tx, ready_tx)).start()?;
    ready_rx.recv::<()>()?;
    // Take part of the message, then kill the sender while it is blocked mid-write.
    let mut head = [0u8; 4];
    let raw = UnixStream::from(rx.as_fd().try_clone_to_owned()?);
    std::io::Read::read_exact(&mut &raw, &mut head)?;
    child.kill()?;
    let _ = child.join();
    let mut buf = [0u8; 1 << 16];
    let mut total = 0usize;
    loop {
        match std::io::Read::read(&mut &raw, &mut buf)? {
            0 => break,
            n => total += n,
        }
    }
    assert!(total < 64 << 20, "the sender died before finishing");
    assert!(
        matches!(rx.recv_bytes(), Err(Error::Eof)),
        "nothing left, and no hang"
    );
    Ok(())
}

/// CN-20: our frames are Python's. Python's `multiprocessing.connection.Client` connects to
/// a Unix socket we listen on, sends bytes, and checks what we send back.
fn cn_20_python_interop() -> TestResult {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("python3 not found: interop not checked");
        return Ok(());
    }
    let dir = common::TempDir::new("interop")?;
    let path = dir.path().join("sock");
    let listener = UnixListener::bind(&path)?;
    let script = r#"
import sys
from multiprocessing.connection import Client
c = Client(sys.argv[1])
c.send_bytes(b"from python")
c.send_bytes(b"")
c.send_bytes(b"x" * 100000)
echo = c.recv_bytes()
assert echo == b"from rust" * 3, echo
big = c.recv_bytes()
assert big == bytes(range(256)) * 4096, len(big)
print("python ok")
"#;
    let py = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()?;
    let (stream, _) = listener.accept()?;
    let mut conn = Connection::from(std::os::fd::OwnedFd::from(stream));
    assert_eq!(conn.recv_bytes()?, b"from python");
    assert_eq!(conn.recv_bytes()?, b"");
    assert_eq!(conn.recv_bytes()?, vec![b'x'; 100_000]);
    conn.send_bytes(&b"from rust".repeat(3))?;
    let big: Vec<u8> = (0..=255u8).cycle().take(256 * 4096).collect();
    conn.send_bytes(&big)?;
    let out = py.wait_with_output()?;
    assert!(out.status.success(), "python failed: {:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "python ok");
    Ok(())
}
