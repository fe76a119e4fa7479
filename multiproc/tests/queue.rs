//! Queues between real processes (contract sections QU, SQ, JQ; crash safety DD-03).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{test, TestResult};
use multiproc::queue::fault::{self, Point};
use multiproc::{Child, Error, JoinableQueue, Process, PutError, Queue, Signal, SimpleQueue};
use serde_bytes::ByteBuf;

// Every child here is a `run_fn` function that gets its queues as its argument, so the
// start-method matrix of `.ci/run` runs each test under fork, forkserver and spawn.

fn main() {
    common::run(vec![
        test("qu_01_04_22_new_bounded_and_full", qu_01_04_22_bounded),
        test("qu_02_03_07_put_forms_and_full", qu_02_03_07_put_forms),
        test("qu_05_06_07_get_forms_and_empty", qu_05_06_07_get_forms),
        test("qu_08_parent_then_child_puts_in_order", qu_08_fork_order),
        test("qu_09_qsize_follows_puts_and_gets", qu_09_qsize),
        test(
            "qu_11_four_producers_two_consumers_exactly_once_in_order",
            qu_11_mpmc_exactly_once,
        ),
        test(
            "qu_12_w4_unencodable_put_returns_the_error",
            qu_12_encode_error,
        ),
        test(
            "qu_14_16_shutdown_refuses_puts_drains_then_closed",
            qu_16_shutdown,
        ),
        test(
            "qu_14_close_is_this_handles_no_more_puts_others_go_on",
            qu_14_close_is_this_handles_no_more_puts_others_go_on,
        ),
        test("qu_21_grandchild_puts_reach_the_parent", qu_21_nested),
        test("qu_64_mib_message_round_trip", qu_64_mib_round_trip),
        test(
            "qu_bytes_put_bytes_get_bytes_get_with_cross_processes_and_mix_with_values",
            qu_bytes_path,
        ),
        test(
            "qu_12_large_value_that_encodes_differently_the_second_time_is_an_error",
            qu_12_large_value_changing_encoding,
        ),
        test("qu_messages_of_every_size_cross_processes", qu_sizes),
        test(
            "dd_03_sigkilled_producer_100_runs_no_hang_no_duplicate",
            dd_03_killed_producer,
        ),
        test(
            "dd_03_sigkilled_consumer_100_runs_at_most_one_lost",
            dd_03_killed_consumer,
        ),
        test(
            "dd_03_consumer_killed_between_its_stores_a_waiting_get_gets_the_message",
            dd_03_consumer_killed_between_stores,
        ),
        test(
            "dd_03_producer_killed_after_its_commit_a_waiting_get_gets_the_message",
            dd_03_producer_killed_after_commit,
        ),
        test(
            "qu_06_try_get_and_try_put_never_block_on_a_stopped_holder",
            qu_06_try_forms_never_block_on_a_stopped_holder,
        ),
        test(
            "dd_03_short_timed_get_after_a_consumer_died_in_the_lock",
            dd_03_short_timed_get_after_dead_consumer,
        ),
        test(
            "dd_03_short_timed_put_on_unbounded_after_a_producer_died_in_the_lock",
            dd_03_short_timed_put_after_dead_producer,
        ),
        test("sq_01_03_04_simple_queue", sq_01_04_simple_queue),
        test("jq_01_workers_task_done_then_join_returns", jq_01_task_done),
        test("jq_02_03_04_05_task_accounting", jq_02_05_accounting),
        test(
            "jq_join_forms_and_immediate_shutdown_releases_join",
            jq_join_forms_and_shutdown,
        ),
    ])
}

/// A small deterministic generator for random kill points and sizes.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let seed = now.map_or(0, |d| d.as_nanos() as u64) ^ u64::from(std::process::id());
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A payload whose length and bytes derive from `seq` (its number, then a fill byte), so a
/// torn or mixed-up copy is detected. Cheap to make even in debug builds.
fn payload(seq: u64, max: u64) -> ByteBuf {
    let len = (seq.wrapping_mul(2_654_435_761) % max) as usize;
    let mut body = vec![(seq % 251) as u8; len.max(8)];
    body[..8].copy_from_slice(&seq.to_le_bytes());
    ByteBuf::from(body)
}

fn qu_01_04_22_bounded() -> TestResult {
    // Handles move between threads (they are `Sync` too: every method takes `&self`).
    common::assert_send::<Queue<String>>();
    common::assert_send::<SimpleQueue<String>>();
    common::assert_send::<JoinableQueue<String>>();
    common::assert_send::<&Queue<String>>();
    let q: Queue<u32> = Queue::bounded(6)?;
    assert!(q.is_empty() && !q.is_full());
    assert_eq!(q.maxsize(), Some(6));
    for i in 0..6 {
        q.put(i)?;
    }
    assert!(q.is_full() && !q.is_empty());
    for _ in 0..6 {
        q.get()?;
    }
    assert!(q.is_empty() && !q.is_full());
    // QU-22: Python's maxsize <= 0 is unbounded; here that is Queue::new(), and a bound of
    // 0 is refused rather than silently meaning "unbounded".
    assert!(matches!(
        Queue::<u32>::bounded(0),
        Err(Error::InvalidArgument(_))
    ));
    let unbounded: Queue<u32> = Queue::new()?;
    for i in 0..10_000 {
        unbounded.put(i)?;
    }
    assert!(!unbounded.is_full());
    assert_eq!(unbounded.maxsize(), None);
    Ok(())
}

fn qu_02_03_07_put_forms() -> TestResult {
    let q: Queue<String> = Queue::bounded(3)?;
    q.put("a".into())?;
    q.try_put("b".into())?;
    q.put_timeout("c".into(), Duration::from_secs(1))?;
    match q.try_put("d".into()) {
        Err(PutError::Full(v)) => assert_eq!(v, "d", "the value comes back"),
        other => panic!("expected Full, got {other:?}"),
    }
    // QU-07: a zero timeout is an immediate Timeout (the outcome rule: timed forms say
    // Timeout, try forms say Full).
    assert!(matches!(
        q.put_timeout("d".into(), Duration::ZERO),
        Err(PutError::Timeout(v)) if v == "d"
    ));
    let t = Instant::now();
    let timeout = Duration::from_millis(200);
    assert!(q.put_timeout("d".into(), timeout).unwrap_err().is_timeout());
    let deadline = Instant::now() + Duration::from_millis(50);
    assert!(q
        .put_deadline("d".into(), deadline)
        .unwrap_err()
        .is_timeout());
    assert!(Instant::now() >= deadline);
    assert!(t.elapsed() >= timeout, "timed put returned early");
    // A blocking put waits until a consumer in another process makes room.
    fn get_late(q: Queue<String>) -> String {
        std::thread::sleep(Duration::from_millis(50));
        q.get().unwrap()
    }
    let mut child = Process::run_fn(get_late, q.clone()).start()?;
    q.put("d".into())?;
    assert_eq!(child.join()?, "a");
    Ok(())
}

fn qu_05_06_07_get_forms() -> TestResult {
    let q: Queue<u32> = Queue::bounded(4)?;
    for i in 0..4 {
        q.put(i)?;
    }
    assert_eq!(q.get()?, 0);
    assert_eq!(q.try_get()?, 1);
    assert_eq!(q.get_timeout(Duration::from_secs(1))?, 2);
    assert_eq!(q.get_timeout(Duration::ZERO)?, 3);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    assert!(matches!(q.get_timeout(Duration::ZERO), Err(Error::Timeout)));
    let t = Instant::now();
    let timeout = Duration::from_millis(200);
    assert!(matches!(q.get_timeout(timeout), Err(Error::Timeout)));
    assert!(t.elapsed() >= timeout, "timed get returned early");
    let deadline = Instant::now() + Duration::from_millis(50);
    assert!(matches!(q.get_deadline(deadline), Err(Error::Timeout)));
    assert!(Instant::now() >= deadline);
    q.put(7)?;
    assert_eq!(q.get_deadline(Instant::now() + Duration::from_secs(1))?, 7);
    // Duration::MAX is forever, never a panic.
    q.put(8)?;
    assert_eq!(q.get_timeout(Duration::MAX)?, 8);
    q.put_timeout(9, Duration::MAX)?;
    assert_eq!(q.try_get()?, 9);
    // A blocking get waits for a producer in another process.
    fn put_42_late(q: Queue<u32>) {
        std::thread::sleep(Duration::from_millis(50));
        q.put(42).unwrap();
    }
    let mut child = Process::run_fn(put_42_late, q.clone()).start()?;
    assert_eq!(q.get()?, 42);
    child.join()?;
    Ok(())
}

fn qu_08_fork_order() -> TestResult {
    let q: Queue<u32> = Queue::new()?;
    for i in 0..10 {
        q.put(i)?;
    }
    fn put_10_to_19(q: Queue<u32>) {
        for i in 10..20 {
            q.put(i).unwrap();
        }
    }
    let mut child = Process::run_fn(put_10_to_19, q.clone()).start()?;
    child.join()?;
    let got: Vec<u32> = (0..20).map(|_| q.get()).collect::<Result<_, _>>()?;
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    Ok(())
}

fn qu_09_qsize() -> TestResult {
    let q: Queue<u8> = Queue::new()?;
    assert_eq!(q.qsize(), 0);
    q.put(1)?;
    assert_eq!(q.qsize(), 1);
    fn put_2(q: Queue<u8>) {
        q.put(2).unwrap();
    }
    Process::run_fn(put_2, q.clone()).start()?.join()?;
    assert_eq!(q.qsize(), 2);
    q.get()?;
    assert_eq!(q.qsize(), 1);
    q.get()?;
    assert_eq!(q.qsize(), 0);
    Ok(())
}

fn qu_11_mpmc_exactly_once() -> TestResult {
    const PRODUCERS: u8 = 4;
    const EACH: u32 = 250_000;
    const CONSUMERS: usize = 2;
    let q: Queue<Option<(u8, u32)>> = Queue::bounded(10_000)?;
    type Q = Queue<Option<(u8, u32)>>;
    /// Per producer: what arrived, in the order it arrived.
    fn consume(q: Q) -> Vec<Vec<u32>> {
        let mut seen = vec![Vec::new(); PRODUCERS as usize];
        while let Some((p, n)) = q.get().unwrap() {
            seen[p as usize].push(n);
        }
        seen
    }
    fn produce((q, p): (Q, u8)) {
        for n in 0..EACH {
            q.put(Some((p, n))).unwrap();
        }
    }
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        consumers.push(Process::run_fn(consume, q.clone()).start()?);
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        producers.push(Process::run_fn(produce, (q.clone(), p)).start()?);
    }
    for mut p in producers {
        p.join()?;
    }
    for _ in 0..CONSUMERS {
        q.put(None)?;
    }
    let mut all = vec![Vec::new(); PRODUCERS as usize];
    for mut c in consumers {
        let seen = c.join()?;
        for (p, ns) in seen.into_iter().enumerate() {
            assert!(
                ns.windows(2).all(|w| w[0] < w[1]),
                "producer {p}'s messages out of order in one consumer"
            );
            all[p].extend(ns);
        }
    }
    for (p, mut ns) in all.into_iter().enumerate() {
        ns.sort_unstable();
        assert_eq!(ns.len(), EACH as usize, "producer {p}: lost or duplicated");
        assert!(ns.iter().copied().eq(0..EACH), "producer {p}: wrong set");
    }
    assert!(q.is_empty());
    Ok(())
}

/// A value whose encoding always fails.
struct Unencodable;

impl serde::Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

impl<'de> serde::Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unencodable)
    }
}

fn qu_12_encode_error() -> TestResult {
    let q: Queue<Result<u8, Unencodable>> = Queue::bounded(1)?;
    match q.put(Err(Unencodable)) {
        Err(PutError::Failed(Err(Unencodable), Error::Codec(_))) => {}
        other => panic!("expected Failed(Codec), got {:?}", other.map(|_| ())),
    }
    // The failed put took no room: the next put fits, and the queue works as before.
    q.put(Ok(5))?;
    assert_eq!(q.qsize(), 1);
    assert!(matches!(q.get()?, Ok(5)));
    assert!(q.is_empty());
    Ok(())
}

/// A large value whose encoding grows each time it is encoded: the size pass and the
/// in-place encoding disagree.
struct Growing(std::cell::Cell<usize>);

impl serde::Serialize for Growing {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = self.0.get();
        self.0.set(len + 1000);
        s.serialize_bytes(&vec![1u8; len])
    }
}

impl<'de> serde::Deserialize<'de> for Growing {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = <ByteBuf as serde::Deserialize>::deserialize(d)?;
        Ok(Growing(std::cell::Cell::new(bytes.len())))
    }
}

fn qu_12_large_value_changing_encoding() -> TestResult {
    let q: Queue<Growing> = Queue::new()?;
    match q.put(Growing(std::cell::Cell::new(1 << 20))) {
        Err(PutError::Failed(_, Error::Codec(_))) => {}
        other => panic!("expected Failed(Codec), got {:?}", other.map(|_| ())),
    }
    // Nothing was put, and the queue works as before; a large unencodable value fails in
    // the size pass, before any room is taken.
    assert!(q.is_empty());
    let big: Queue<(ByteBuf, Result<u8, Unencodable>)> = Queue::new()?;
    match big.put((ByteBuf::from(vec![0; 1 << 20]), Err(Unencodable))) {
        Err(PutError::Failed(_, Error::Codec(_))) => {}
        other => panic!("expected Failed(Codec), got {:?}", other.map(|_| ())),
    }
    big.put((ByteBuf::from(vec![3; 1 << 20]), Ok(1)))?;
    let (body, tag) = big.get()?;
    assert!(body.len() == 1 << 20 && body.iter().all(|&b| b == 3) && matches!(tag, Ok(1)));
    assert!(big.is_empty());
    Ok(())
}

fn qu_bytes_path() -> TestResult {
    // Sizes that wrap around the 128 KiB initial ring and grow it.
    let sizes = [0usize, 1, 9, 4096, 100_000, 131_072, 300_000, 1 << 20, 5];
    fn body(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 7 + j) as u8).collect()
    }
    fn put_4_rounds((q, sizes): (Queue<u64>, [usize; 9])) {
        for round in 0..4 {
            for (i, &len) in sizes.iter().enumerate() {
                q.put_bytes(&body(round * 10 + i, len)).unwrap();
            }
        }
    }
    let q: Queue<u64> = Queue::new()?;
    let mut child = Process::run_fn(put_4_rounds, (q.clone(), sizes)).start()?;
    for round in 0..4 {
        for (i, &len) in sizes.iter().enumerate() {
            let want = body(round * 10 + i, len);
            if i % 2 == 0 {
                assert_eq!(q.get_bytes()?, want);
            } else {
                assert!(q.get_with(|got| got == want.as_slice())?);
            }
        }
    }
    child.join()?;
    // Bytes and values mix: raw bytes of a valid encoding decode, a value reads as its
    // encoding, and bytes that are no `u64` fail as a codec error (consumed).
    q.put_bytes(&[42])?;
    assert_eq!(q.get()?, 42);
    q.put(300)?;
    assert_eq!(q.get_bytes()?, vec![0xac, 0x02]);
    q.put_bytes(&[0xff; 11])?;
    assert!(matches!(q.get(), Err(Error::Codec(_))));
    assert!(q.is_empty());
    q.close();
    assert!(matches!(q.put_bytes(b"x"), Err(Error::Closed)));
    q.shutdown(false);
    assert!(matches!(q.get_bytes(), Err(Error::Closed)));
    assert!(matches!(q.get_with(|b| b.len()), Err(Error::Closed)));
    Ok(())
}

fn qu_16_shutdown() -> TestResult {
    // QU-14: shutting down an unused queue is harmless and it stays empty.
    let unused: Queue<u8> = Queue::new()?;
    unused.shutdown(false);
    assert!(unused.is_empty() && unused.is_shutdown() && !unused.is_closed());

    // A get blocked in another process wakes up with Closed.
    let q: Queue<u8> = Queue::new()?;
    fn get_closed(q: Queue<u8>) -> String {
        match q.get() {
            Err(Error::Closed) => "closed".to_string(),
            other => format!("{other:?}"),
        }
    }
    let mut child = Process::run_fn(get_closed, q.clone()).start()?;
    std::thread::sleep(Duration::from_millis(100));
    q.shutdown(false);
    assert_eq!(child.join()?, "closed");

    // Puts are refused with the value; gets drain, then report Closed, in every process.
    let q: Queue<u8> = Queue::new()?;
    q.put(1)?;
    q.put(2)?;
    fn shut_down((q, immediate): (Queue<u8>, bool)) {
        q.shutdown(immediate);
    }
    Process::run_fn(shut_down, (q.clone(), false))
        .start()?
        .join()?;
    assert!(q.is_shutdown());
    assert!(matches!(q.put(3), Err(PutError::Closed(3))));
    assert!(matches!(q.try_put(3), Err(PutError::Closed(3))));
    assert_eq!(q.get()?, 1);
    assert_eq!(q.try_get()?, 2);
    assert!(matches!(q.get(), Err(Error::Closed)));
    assert!(matches!(q.try_get(), Err(Error::Closed)));
    assert!(matches!(
        q.get_timeout(Duration::from_secs(1)),
        Err(Error::Closed)
    ));
    q.shutdown(false);

    // Immediate: gets fail at once although messages are left.
    let q: Queue<u8> = Queue::new()?;
    q.put(1)?;
    Process::run_fn(shut_down, (q.clone(), true))
        .start()?
        .join()?;
    assert!(matches!(q.get(), Err(Error::Closed)));
    assert!(q.is_empty(), "an immediate shutdown discards what is left");
    Ok(())
}

/// Python's `q.close()` is "this process puts no more": the usual ending of a producer
/// (`q.close(); q.join_thread()`) must not stop the other producers (the porting trap of
/// the review).
fn qu_14_close_is_this_handles_no_more_puts_others_go_on() -> TestResult {
    let q: Queue<u32> = Queue::new()?;
    fn put_then_close((q, p): (Queue<u32>, u32)) {
        q.put(p).unwrap();
        q.close();
        assert!(matches!(q.put(99), Err(PutError::Closed(99))));
        assert!(q.is_closed() && !q.is_shutdown());
    }
    let mut producers = Vec::new();
    for p in 0..3u32 {
        producers.push(Process::run_fn(put_then_close, (q.clone(), p)).start()?);
    }
    for mut p in producers {
        p.join()?;
    }
    // The parent's handle is not closed: it puts and gets as before.
    assert!(!q.is_closed());
    q.put(3)?;
    let mut got: Vec<u32> = (0..4).map(|_| q.get()).collect::<Result<_, _>>()?;
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 3]);
    // A closed handle still gets; its clones are closed too, earlier clones are not.
    let before = q.clone();
    q.close();
    let after = q.clone();
    before.put(5)?;
    assert!(matches!(after.put(6), Err(PutError::Closed(6))));
    assert_eq!(q.get()?, 5);
    Ok(())
}

fn qu_21_nested() -> TestResult {
    let q: Queue<String> = Queue::new()?;
    fn put_and_start_a_grandchild(q: Queue<String>) {
        fn put_grandchild(q: Queue<String>) {
            q.put("grandchild".into()).unwrap();
        }
        q.put("child".into()).unwrap();
        Process::run_fn(put_grandchild, q)
            .start()
            .unwrap()
            .join()
            .unwrap();
    }
    let mut child = Process::run_fn(put_and_start_a_grandchild, q.clone()).start()?;
    child.join()?;
    assert_eq!(q.get()?, "child");
    assert_eq!(q.get()?, "grandchild");
    Ok(())
}

fn qu_64_mib_round_trip() -> TestResult {
    const LEN: usize = 64 << 20;
    fn pattern(i: usize) -> u8 {
        (i.wrapping_mul(31) >> 3) as u8
    }
    let there: Queue<ByteBuf> = Queue::bounded(1)?;
    let back: Queue<ByteBuf> = Queue::bounded(1)?;
    fn echo((there, back): (Queue<ByteBuf>, Queue<ByteBuf>)) -> bool {
        let m = there.get().unwrap();
        let ok = m.len() == LEN && m.iter().enumerate().all(|(i, &b)| b == pattern(i));
        back.put(m).unwrap();
        ok
    }
    let mut child = Process::run_fn(echo, (there.clone(), back.clone())).start()?;
    let big = ByteBuf::from((0..LEN).map(pattern).collect::<Vec<u8>>());
    there.put(big)?;
    let returned = back.get()?;
    assert!(child.join()?, "the child saw a different message");
    assert_eq!(returned.len(), LEN);
    assert!(returned.iter().enumerate().all(|(i, &b)| b == pattern(i)));
    Ok(())
}

fn qu_sizes() -> TestResult {
    // Sizes around the header and word boundaries, the initial ring (128 KiB) and above,
    // so records wrap and the ring grows while another process reads.
    let sizes: Vec<u64> = vec![
        0,
        1,
        7,
        8,
        9,
        15,
        16,
        17,
        23,
        24,
        25,
        4095,
        4096,
        65_536,
        131_000,
        131_072,
        140_000,
        1 << 20,
        3,
    ];
    let q: Queue<(u64, ByteBuf)> = Queue::new()?;
    fn put_5_rounds((q, sizes): (Queue<(u64, ByteBuf)>, Vec<u64>)) {
        for round in 0..5u64 {
            for (i, &len) in sizes.iter().enumerate() {
                let seq = round * 100 + i as u64;
                let body = (0..len).map(|j| (seq + j) as u8).collect::<Vec<u8>>();
                q.put((seq, ByteBuf::from(body))).unwrap();
            }
        }
    }
    let mut child = Process::run_fn(put_5_rounds, (q.clone(), sizes.clone())).start()?;
    for round in 0..5u64 {
        for (i, &len) in sizes.iter().enumerate() {
            let (seq, body) = q.get()?;
            assert_eq!(seq, round * 100 + i as u64);
            assert_eq!(body.len() as u64, len);
            assert!(body
                .iter()
                .enumerate()
                .all(|(j, &b)| b == (seq + j as u64) as u8));
        }
    }
    child.join()?;
    Ok(())
}

/// Payloads in the kill tests reach 256 KiB, so copies inside the side locks take long
/// enough for random kills to land inside them.
const BIG_PAYLOAD: u64 = 256 << 10;

/// The queue of the random kill tests: run, sequence number, payload.
type KillQueue = Queue<(u32, u64, ByteBuf)>;

fn dd_03_killed_producer() -> TestResult {
    let mut rng = Rng::new();
    // One queue for all runs: whatever a killed producer leaves must not hurt the next.
    let q: KillQueue = Queue::bounded(64)?;
    /// Puts this run's messages until it is killed.
    fn produce((q, run): (KillQueue, u32)) {
        for seq in 0.. {
            q.put((run, seq, payload(seq, BIG_PAYLOAD))).unwrap();
        }
    }
    let mut takeovers = 0;
    for run in 0..100u32 {
        let child = Process::run_fn(produce, (q.clone(), run)).start()?;
        let kill_at = Instant::now() + Duration::from_micros(rng.below(3_000));
        let mut next = 0u64;
        let check = |next: &mut u64, (r, seq, body): (u32, u64, ByteBuf)| {
            assert_eq!(r, run, "a message of an earlier run appeared");
            assert_eq!(seq, *next, "run {run}: gap or duplicate");
            assert_eq!(
                body,
                payload(seq, BIG_PAYLOAD),
                "run {run}: torn message {seq}"
            );
            *next += 1;
        };
        while Instant::now() < kill_at {
            match q.get_timeout(Duration::from_micros(200)) {
                Ok(m) => check(&mut next, m),
                Err(Error::Timeout) => {}
                Err(e) => return Err(e.into()),
            }
        }
        child.kill()?;
        let mut child = child;
        assert!(matches!(child.join(), Err(Error::Signaled(_))));
        // Drain with a timed get, not `try_get`: a producer killed after its commit but
        // before counting its message leaves it for the next lock taker to repair, which a
        // timed get does (it looks through the held lock after a liveness period) and a
        // `try_get`, which never waits, does not (docs/decisions.md, Queues).
        loop {
            match q.get_timeout(Duration::from_millis(150)) {
                Ok(m) => check(&mut next, m),
                Err(Error::Timeout) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // The queue still works both ways: a put takes the producers' lock even if the
        // dead child held it, and the message comes out.
        let t = Instant::now();
        q.put((run, next, payload(next, BIG_PAYLOAD)))?;
        // A slow put here means it waited to find the dead holder of the lock (the count
        // says how often that was noticed by time, not how often the child held the lock).
        if t.elapsed() > Duration::from_millis(50) {
            takeovers += 1;
        }
        check(&mut next, q.get_timeout(Duration::from_secs(10))?);
        assert!(matches!(q.try_get(), Err(Error::Empty)));
    }
    eprintln!("{takeovers} of 100 puts after the kill took over 50 ms (a lock taken over)");
    Ok(())
}

fn dd_03_killed_consumer() -> TestResult {
    const N: u64 = 300;
    let mut rng = Rng::new();
    let q: KillQueue = Queue::new()?;
    let acks: Queue<u64> = Queue::new()?;
    /// Takes this run's messages and acknowledges each, until it is killed.
    fn consume((q, acks, run): (KillQueue, Queue<u64>, u32)) {
        while let Ok((r, seq, body)) = q.get() {
            assert!(r == run && body == payload(seq, BIG_PAYLOAD));
            acks.put(seq).unwrap();
        }
    }
    let mut takeovers = 0;
    for run in 0..100u32 {
        for seq in 0..N {
            q.put((run, seq, payload(seq, BIG_PAYLOAD)))?;
        }
        let child = Process::run_fn(consume, (q.clone(), acks.clone(), run)).start()?;
        std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        child.kill()?;
        let mut child = child;
        assert!(matches!(child.join(), Err(Error::Signaled(_))));
        let mut acked = Vec::new();
        while let Ok(seq) = acks.try_get() {
            acked.push(seq);
        }
        let mut left = Vec::new();
        // A timed get (not a try): if the child died holding the consumers' lock, taking it
        // over may take a liveness period.
        let t = Instant::now();
        let first = match q.get_timeout(Duration::from_millis(300)) {
            Err(Error::Timeout) => Err(Error::Empty),
            other => other,
        };
        if t.elapsed() > Duration::from_millis(50) && first.is_ok() {
            takeovers += 1;
        }
        let mut next = Some(first);
        loop {
            match next.take().unwrap_or_else(|| q.try_get()) {
                Ok((r, seq, body)) => {
                    assert_eq!(r, run);
                    assert_eq!(body, payload(seq, BIG_PAYLOAD), "torn message {seq}");
                    left.push(seq);
                }
                Err(Error::Empty) => break,
                Err(e) => return Err(e.into()),
            }
        }
        assert!(acked.windows(2).all(|w| w[0] < w[1]), "acks out of order");
        assert!(left.windows(2).all(|w| w[0] < w[1]), "queue out of order");
        let all: HashSet<u64> = acked.iter().chain(&left).copied().collect();
        assert_eq!(
            all.len(),
            acked.len() + left.len(),
            "run {run}: a message was delivered twice"
        );
        assert!(all.iter().all(|&s| s < N));
        let lost = N as usize - all.len();
        assert!(lost <= 1, "run {run}: {lost} messages lost");
    }
    eprintln!("{takeovers} of 100 gets after the kill took over 50 ms (a lock taken over)");
    Ok(())
}

fn sq_01_04_simple_queue() -> TestResult {
    let q: SimpleQueue<u32> = SimpleQueue::new()?;
    assert!(q.is_empty());
    // SQ-04: put is synchronous; once the child returns, its items are in the queue.
    fn put_1_2(q: SimpleQueue<u32>) {
        q.put(1).unwrap();
        q.put(2).unwrap();
    }
    Process::run_fn(put_1_2, q.clone()).start()?.join()?;
    assert!(!q.is_empty());
    assert_eq!(q.get()?, 1);
    assert_eq!(q.get()?, 2);
    assert!(q.is_empty());
    // SQ-03: close twice is fine; SQ-02 differs: is_empty stays a plain answer. close is
    // this handle's "I put no more"; shutdown stops the queue for every process.
    q.close();
    q.close();
    assert!(q.is_empty());
    assert!(matches!(q.put(3), Err(PutError::Closed(3))));
    let other = SimpleQueue::<u32>::new()?;
    let other2 = other.clone();
    other.close();
    other2.put(4)?;
    assert_eq!(other.get()?, 4);
    other2.shutdown(false);
    assert!(matches!(other.get(), Err(Error::Closed)));
    Ok(())
}

fn jq_01_task_done() -> TestResult {
    let q: JoinableQueue<Option<u32>> = JoinableQueue::new()?;
    let done: Queue<u32> = Queue::new()?;
    let mut workers = Vec::new();
    fn work((q, done): (JoinableQueue<Option<u32>>, Queue<u32>)) {
        while let Some(item) = q.get().unwrap() {
            std::thread::sleep(Duration::from_millis(20));
            done.put(item).unwrap();
            q.task_done().unwrap();
        }
        q.task_done().unwrap();
    }
    for _ in 0..4 {
        workers.push(Process::run_fn(work, (q.clone(), done.clone())).start()?);
    }
    for i in 0..10 {
        q.put(Some(i))?;
    }
    q.join()?;
    // join returned: all 10 were done (each worker reports before its task_done).
    let mut finished: Vec<u32> = (0..10).map(|_| done.try_get()).collect::<Result<_, _>>()?;
    finished.sort_unstable();
    assert_eq!(finished, (0..10).collect::<Vec<_>>());
    for _ in 0..4 {
        q.put(None)?;
    }
    for mut w in workers {
        w.join()?;
    }
    q.join()?;
    Ok(())
}

fn jq_02_05_accounting() -> TestResult {
    let q: JoinableQueue<u8> = JoinableQueue::bounded(2)?;
    // JQ-03: nothing unfinished, join returns at once.
    q.join()?;
    // JQ-02: more task_done calls than puts is an error.
    assert!(matches!(q.task_done(), Err(Error::InvalidState(m)) if m.contains("too many")));
    // JQ-04: the count rises at put.
    q.put(1)?;
    assert!(matches!(
        q.join_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    fn get_and_mark_done(q: JoinableQueue<u8>) {
        q.get().unwrap();
        q.task_done().unwrap();
    }
    Process::run_fn(get_and_mark_done, q.clone())
        .start()?
        .join()?;
    q.join()?;
    // JQ-05: Queue behaviour applies (bounded, Full, Empty, close).
    q.put(1)?;
    q.put(2)?;
    assert!(q.try_put(3).unwrap_err().is_full());
    assert_eq!(q.get()?, 1);
    assert_eq!(q.get()?, 2);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    q.close();
    assert!(matches!(q.put(3), Err(PutError::Closed(3))));
    Ok(())
}

// The children of the fault-point tests: each arms its point in itself, then works on the
// queue it got.

/// A consumer asleep in `get_timeout(3 s)`.
fn get_within_3_s(q: Queue<u32>) -> Option<u32> {
    q.get_timeout(Duration::from_secs(3)).ok()
}

/// A consumer that dies between its two stores.
fn die_getting(q: Queue<u32>) -> Option<u32> {
    fault::kill_at(Point::ConsumerBetweenStores);
    q.get().ok()
}

/// A producer that dies after committing `v`, before counting it.
fn die_putting((q, v): (Queue<u32>, u32)) {
    fault::kill_at(Point::ProducerAfterCommit);
    q.put(v).unwrap();
}

/// Waits (at most 10 s) until `child` has ended, then reaps it and returns how.
fn reap<R: serde::Serialize + serde::de::DeserializeOwned>(
    mut child: Child<R>,
) -> multiproc::Result<R> {
    common::eventually(Duration::from_secs(10), || !child.is_alive());
    child.join()
}

/// A consumer killed between its two stores (`gets` counted, `head` not moved) leaves the
/// counts saying "empty" while the message is still in the ring, and nobody wakes the
/// consumers already asleep. A consumer asleep in `get_timeout(3 s)` must still get the
/// message (review issue, 1.5; the old code returned Empty after 3 s).
fn dd_03_consumer_killed_between_stores() -> TestResult {
    let mut hits = 0;
    for round in 0..8u32 {
        let q: Queue<u32> = Queue::new()?;
        // A consumer asleep in the kernel before anything happens.
        let sleeper = Process::run_fn(get_within_3_s, q.clone()).start()?;
        // The victim polls without sleeping, so it usually takes the message before the
        // sleeper is even awake, and dies between the stores.
        fn die_polling(q: Queue<u32>) -> u32 {
            fault::kill_at(Point::ConsumerBetweenStores);
            loop {
                if let Ok(v) = q.try_get() {
                    return v;
                }
            }
        }
        let victim = Process::run_fn(die_polling, q.clone()).start()?;
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        q.put(round)?;
        let got = reap(sleeper)?;
        let elapsed = t.elapsed();
        if victim.is_alive() {
            // The sleeper was first: nothing to check this round.
            assert_eq!(got, Some(round));
            victim.kill()?;
            let _ = reap(victim);
            continue;
        }
        assert!(matches!(reap(victim), Err(Error::Signaled(_))));
        hits += 1;
        assert_eq!(
            got,
            Some(round),
            "the sleeping get_timeout(3 s) missed the message ({elapsed:?})"
        );
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert_eq!(q.qsize(), 0);
        assert!(matches!(q.try_get(), Err(Error::Empty)));
    }
    assert!(
        hits > 0,
        "the victim never took the message first in 8 rounds"
    );
    // Deterministic variant: the victim dies while the queue holds one message, and a get
    // that starts afterwards with a long timeout must find it (the old code saw qsize 0 and
    // slept until its deadline).
    let q: Queue<u32> = Queue::new()?;
    q.put(7)?;
    let victim = Process::run_fn(die_getting, q.clone()).start()?;
    assert!(matches!(reap(victim), Err(Error::Signaled(_))));
    assert_eq!(
        q.qsize(),
        0,
        "the dead consumer counted the message as taken"
    );
    let t = Instant::now();
    assert_eq!(q.get_timeout(Duration::from_secs(3))?, 7);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(q.qsize(), 0);
    Ok(())
}

/// The producer-side twin: a producer killed after its commit and before it counted the
/// message (`puts`) leaves the counts saying "empty", and its `put` never woke anyone. A
/// consumer asleep in `get_timeout(3 s)` must still get the message.
fn dd_03_producer_killed_after_commit() -> TestResult {
    let q: Queue<u32> = Queue::new()?;
    let sleeper = Process::run_fn(get_within_3_s, q.clone()).start()?;
    std::thread::sleep(Duration::from_millis(100));
    let victim = Process::run_fn(die_putting, (q.clone(), 7)).start()?;
    let t = Instant::now();
    assert!(matches!(reap(victim), Err(Error::Signaled(_))));
    let got = reap(sleeper)?;
    assert_eq!(
        got,
        Some(7),
        "the sleeping get_timeout(3 s) missed the message ({:?})",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The next put repairs the count; nothing is delivered twice.
    q.put(8)?;
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.try_get()?, 8);
    Ok(())
}

/// Runs `f` and returns how long it took, with what it returned: the body of the children
/// of [`time_in_child`].
fn time_it(f: impl FnOnce() -> String) -> (Duration, String) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

/// Runs `f(args)` in a child (`f` times its call with [`time_it`]) and returns how long the
/// call took there; fails if the child takes longer than `limit` (it is then killed), so a
/// call that blocks fails the test instead of hanging it.
fn time_in_child<A>(
    limit: Duration,
    f: fn(A) -> (Duration, String),
    args: A,
) -> Result<(Duration, String), Box<dyn std::error::Error>>
where
    A: serde::Serialize + serde::de::DeserializeOwned,
{
    let child = Process::run_fn(f, args).start()?;
    if !common::eventually(limit, || !child.is_alive()) {
        child.kill()?;
        let _ = reap(child);
        return Err(format!("still blocked after {limit:?}").into());
    }
    Ok(reap(child)?)
}

/// `try_get` and `try_put` never wait: while a stopped (SIGSTOP) process holds the
/// consumers' or the producers' lock, they say Empty / Full at once, as Python's
/// `get_nowait` does when its read lock is taken (review issue, 1.5).
fn qu_06_try_forms_never_block_on_a_stopped_holder() -> TestResult {
    // A consumer stopped inside the consumers' lock.
    let q: Queue<u32> = Queue::new()?;
    q.put(1)?;
    q.put(2)?;
    fn stop_getting(q: Queue<u32>) -> u32 {
        fault::stop_at(Point::ConsumerBetweenStores);
        q.get().unwrap()
    }
    let stopped = Process::run_fn(stop_getting, q.clone()).start()?;
    assert!(common::eventually(Duration::from_secs(10), || {
        common::is_stopped(stopped.pid())
    }));
    fn time_try_get(q: Queue<u32>) -> (Duration, String) {
        time_it(|| format!("{:?}", q.try_get().map_err(|e| e.to_string())))
    }
    let timed = time_in_child(Duration::from_secs(5), time_try_get, q.clone());
    let (took, out) = match timed {
        Ok(done) => done,
        Err(e) => {
            stopped.kill()?;
            let _ = reap(stopped);
            return Err(e);
        }
    };
    assert_eq!(
        out,
        format!("{:?}", Err::<u32, _>(Error::Empty.to_string()))
    );
    assert!(took < Duration::from_millis(50), "try_get took {took:?}");
    stopped.signal(Signal::CONT)?;
    assert_eq!(reap(stopped)?, 1);
    assert_eq!(q.try_get()?, 2);

    // A producer stopped inside the producers' lock.
    let q: Queue<u32> = Queue::new()?;
    fn stop_putting(q: Queue<u32>) {
        fault::stop_at(Point::ProducerAfterCommit);
        q.put(1).unwrap();
    }
    let stopped = Process::run_fn(stop_putting, q.clone()).start()?;
    assert!(common::eventually(Duration::from_secs(10), || {
        common::is_stopped(stopped.pid())
    }));
    fn time_try_put(q: Queue<u32>) -> (Duration, String) {
        time_it(|| match q.try_put(2) {
            Err(PutError::Full(2)) => "Full(2)".to_string(),
            other => format!("{:?}", other),
        })
    }
    let timed = time_in_child(Duration::from_secs(5), time_try_put, q.clone());
    let (took, out) = match timed {
        Ok(done) => done,
        Err(e) => {
            stopped.kill()?;
            let _ = reap(stopped);
            return Err(e);
        }
    };
    assert_eq!(out, "Full(2)");
    assert!(took < Duration::from_millis(50), "try_put took {took:?}");
    stopped.kill()?;
    assert!(matches!(reap(stopped), Err(Error::Signaled(_))));
    // The killed producer had committed its message: it is delivered, then the next put.
    q.put(3)?;
    assert_eq!(q.get_timeout(Duration::from_secs(3))?, 1);
    assert_eq!(q.get_timeout(Duration::from_secs(3))?, 3);
    Ok(())
}

/// After a consumer died inside the consumers' lock, a consumer polling with a short
/// timeout still gets the queued messages: its first call already takes the lock over
/// (review issue, 1.3; the liveness check before giving up is in the raw lock).
fn dd_03_short_timed_get_after_dead_consumer() -> TestResult {
    let q: Queue<u32> = Queue::new()?;
    for i in 0..3 {
        q.put(i)?;
    }
    let victim = Process::run_fn(die_getting, q.clone()).start()?;
    assert!(matches!(reap(victim), Err(Error::Signaled(_))));
    let t = Instant::now();
    let first = q.get_timeout(Duration::from_millis(50));
    assert!(
        matches!(first, Ok(0)),
        "get_timeout(50 ms) gave {first:?} with 3 messages queued ({:?})",
        t.elapsed()
    );
    assert_eq!(q.get_timeout(Duration::from_millis(50))?, 1);
    assert_eq!(q.get_timeout(Duration::from_millis(50))?, 2);
    assert!(matches!(
        q.get_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    Ok(())
}

/// After a producer died inside the producers' lock, `put_timeout` on an unbounded queue
/// succeeds at its first call (review issue, 1.3), and the dead producer's committed
/// message is delivered once.
fn dd_03_short_timed_put_after_dead_producer() -> TestResult {
    let q: Queue<u32> = Queue::new()?;
    let victim = Process::run_fn(die_putting, (q.clone(), 1)).start()?;
    assert!(matches!(reap(victim), Err(Error::Signaled(_))));
    let t = Instant::now();
    let put = q.put_timeout(2, Duration::from_millis(50));
    assert!(
        put.is_ok(),
        "put_timeout(50 ms) on an unbounded queue gave {put:?} ({:?})",
        t.elapsed()
    );
    assert_eq!(q.get_timeout(Duration::from_secs(1))?, 1);
    assert_eq!(q.get_timeout(Duration::from_secs(1))?, 2);
    assert_eq!(q.qsize(), 0);
    Ok(())
}

/// `join` / `try_join` / `join_timeout` / `join_deadline` follow the outcome rule, and an
/// immediate shutdown releases a `join` that would otherwise wait forever.
fn jq_join_forms_and_shutdown() -> TestResult {
    let q: JoinableQueue<u8> = JoinableQueue::new()?;
    q.try_join()?;
    q.put(1)?;
    q.put(2)?;
    assert!(matches!(q.try_join(), Err(Error::WouldBlock)));
    assert!(matches!(
        q.join_timeout(Duration::ZERO),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        q.join_deadline(Instant::now() + Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert_eq!(q.qsize(), 2);
    // One message taken and never marked done; a joiner in another process would wait
    // forever.
    assert_eq!(q.get()?, 1);
    fn join_until_released(q: JoinableQueue<u8>) -> String {
        match q.join() {
            Err(Error::Closed) => "released".to_string(),
            other => format!("{other:?}"),
        }
    }
    let joiner = Process::run_fn(join_until_released, q.clone()).start()?;
    std::thread::sleep(Duration::from_millis(100));
    assert!(joiner.is_alive());
    q.shutdown(true);
    let t = Instant::now();
    assert_eq!(reap(joiner)?, "released");
    assert!(t.elapsed() < Duration::from_secs(2));
    // The message left was discarded and counted as done; the one taken still counts until
    // its task_done.
    assert!(matches!(q.join(), Err(Error::Closed)));
    q.task_done()?;
    q.join()?;
    assert!(matches!(q.get(), Err(Error::Closed)));
    assert!(matches!(q.put(3), Err(PutError::Closed(3))));
    Ok(())
}
