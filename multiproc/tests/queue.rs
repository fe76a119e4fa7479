//! Queues between real processes (contract sections QU, SQ, JQ; crash safety DD-03).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{test, TestResult};
use multiproc::{Error, JoinableQueue, Process, PutError, Queue, SimpleQueue};
use serde_bytes::ByteBuf;

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
            "qu_14_16_close_refuses_puts_drains_then_closed",
            qu_16_close,
        ),
        test("qu_21_grandchild_puts_reach_the_parent", qu_21_nested),
        test("qu_64_mib_message_round_trip", qu_64_mib_round_trip),
        test("qu_messages_of_every_size_cross_processes", qu_sizes),
        test(
            "dd_03_sigkilled_producer_100_runs_no_hang_no_duplicate",
            dd_03_killed_producer,
        ),
        test(
            "dd_03_sigkilled_consumer_100_runs_at_most_one_lost",
            dd_03_killed_consumer,
        ),
        test("sq_01_03_04_simple_queue", sq_01_04_simple_queue),
        test("jq_01_workers_task_done_then_join_returns", jq_01_task_done),
        test("jq_02_03_04_05_task_accounting", jq_02_05_accounting),
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
    // QU-07: a zero timeout is an immediate Full.
    assert!(q
        .put_timeout("d".into(), Duration::ZERO)
        .unwrap_err()
        .is_full());
    let t = Instant::now();
    let timeout = Duration::from_millis(200);
    assert!(q.put_timeout("d".into(), timeout).unwrap_err().is_full());
    assert!(t.elapsed() >= timeout, "timed put returned early");
    // A blocking put waits until a consumer in another process makes room.
    let q2 = q.clone();
    let mut child = Process::new(move || {
        std::thread::sleep(Duration::from_millis(50));
        q2.get().unwrap()
    })
    .start()?;
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
    assert!(matches!(q.get_timeout(Duration::ZERO), Err(Error::Empty)));
    let t = Instant::now();
    let timeout = Duration::from_millis(200);
    assert!(matches!(q.get_timeout(timeout), Err(Error::Empty)));
    assert!(t.elapsed() >= timeout, "timed get returned early");
    // A blocking get waits for a producer in another process.
    let q2 = q.clone();
    let mut child = Process::new(move || {
        std::thread::sleep(Duration::from_millis(50));
        q2.put(42).unwrap();
    })
    .start()?;
    assert_eq!(q.get()?, 42);
    child.join()?;
    Ok(())
}

fn qu_08_fork_order() -> TestResult {
    let q: Queue<u32> = Queue::new()?;
    for i in 0..10 {
        q.put(i)?;
    }
    let q2 = q.clone();
    let mut child = Process::new(move || {
        for i in 10..20 {
            q2.put(i).unwrap();
        }
    })
    .start()?;
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
    let q2 = q.clone();
    Process::new(move || q2.put(2).unwrap()).start()?.join()?;
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
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let q = q.clone();
        consumers.push(
            Process::new(move || {
                // Per producer: how many arrived, and whether they arrived in order.
                let mut seen = vec![Vec::new(); PRODUCERS as usize];
                while let Some((p, n)) = q.get().unwrap() {
                    seen[p as usize].push(n);
                }
                seen
            })
            .start()?,
        );
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let q = q.clone();
        producers.push(
            Process::new(move || {
                for n in 0..EACH {
                    q.put(Some((p, n))).unwrap();
                }
            })
            .start()?,
        );
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

fn qu_16_close() -> TestResult {
    // QU-14: closing an unused queue is harmless and it stays empty.
    let unused: Queue<u8> = Queue::new()?;
    unused.close();
    assert!(unused.is_empty() && unused.is_closed());

    // A get blocked in another process wakes up with Closed.
    let q: Queue<u8> = Queue::new()?;
    let q2 = q.clone();
    let mut child = Process::new(move || match q2.get() {
        Err(Error::Closed) => "closed".to_string(),
        other => format!("{other:?}"),
    })
    .start()?;
    std::thread::sleep(Duration::from_millis(100));
    q.close();
    assert_eq!(child.join()?, "closed");

    // Puts are refused with the value; gets drain, then report Closed. Close is for every
    // process, not only the caller (a decision that differs from Python, see the docs).
    let q: Queue<u8> = Queue::new()?;
    q.put(1)?;
    q.put(2)?;
    let q2 = q.clone();
    Process::new(move || q2.close()).start()?.join()?;
    assert!(matches!(q.put(3), Err(PutError::Closed(3))));
    assert_eq!(q.get()?, 1);
    assert_eq!(q.try_get()?, 2);
    assert!(matches!(q.get(), Err(Error::Closed)));
    assert!(matches!(q.try_get(), Err(Error::Closed)));
    q.close();
    Ok(())
}

fn qu_21_nested() -> TestResult {
    let q: Queue<String> = Queue::new()?;
    let q2 = q.clone();
    let mut child = Process::new(move || {
        q2.put("child".into()).unwrap();
        let q3 = q2.clone();
        Process::new(move || q3.put("grandchild".into()).unwrap())
            .start()
            .unwrap()
            .join()
            .unwrap();
    })
    .start()?;
    child.join()?;
    assert_eq!(q.get()?, "child");
    assert_eq!(q.get()?, "grandchild");
    Ok(())
}

fn qu_64_mib_round_trip() -> TestResult {
    const LEN: usize = 64 << 20;
    let pattern = |i: usize| (i.wrapping_mul(31) >> 3) as u8;
    let there: Queue<ByteBuf> = Queue::bounded(1)?;
    let back: Queue<ByteBuf> = Queue::bounded(1)?;
    let (t2, b2) = (there.clone(), back.clone());
    let mut child = Process::new(move || {
        let m = t2.get().unwrap();
        let ok = m.len() == LEN && m.iter().enumerate().all(|(i, &b)| b == pattern(i));
        b2.put(m).unwrap();
        ok
    })
    .start()?;
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
    let q2 = q.clone();
    let sizes2 = sizes.clone();
    let mut child = Process::new(move || {
        for round in 0..5u64 {
            for (i, &len) in sizes2.iter().enumerate() {
                let seq = round * 100 + i as u64;
                let body = (0..len).map(|j| (seq + j) as u8).collect::<Vec<u8>>();
                q2.put((seq, ByteBuf::from(body))).unwrap();
            }
        }
    })
    .start()?;
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

fn dd_03_killed_producer() -> TestResult {
    let mut rng = Rng::new();
    // One queue for all runs: whatever a killed producer leaves must not hurt the next.
    let q: Queue<(u32, u64, ByteBuf)> = Queue::bounded(64)?;
    let mut takeovers = 0;
    for run in 0..100u32 {
        let q2 = q.clone();
        let child = Process::new(move || {
            for seq in 0.. {
                q2.put((run, seq, payload(seq, BIG_PAYLOAD))).unwrap();
            }
        })
        .start()?;
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
                Err(Error::Empty) => {}
                Err(e) => return Err(e.into()),
            }
        }
        child.kill()?;
        let mut child = child;
        assert!(matches!(child.join(), Err(Error::Signaled(_))));
        loop {
            match q.try_get() {
                Ok(m) => check(&mut next, m),
                Err(Error::Empty) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // The queue still works both ways: a put takes the producers' lock even if the
        // dead child held it, and the message comes out.
        let t = Instant::now();
        q.put((run, next, payload(next, BIG_PAYLOAD)))?;
        // Taking over a dead holder's lock waits for its liveness check (100 ms).
        if t.elapsed() > Duration::from_millis(50) {
            takeovers += 1;
        }
        check(&mut next, q.get_timeout(Duration::from_secs(10))?);
        assert!(matches!(q.try_get(), Err(Error::Empty)));
    }
    eprintln!("{takeovers} of 100 producers were killed holding the producers' lock");
    Ok(())
}

fn dd_03_killed_consumer() -> TestResult {
    const N: u64 = 300;
    let mut rng = Rng::new();
    let q: Queue<(u32, u64, ByteBuf)> = Queue::new()?;
    let acks: Queue<u64> = Queue::new()?;
    let mut takeovers = 0;
    for run in 0..100u32 {
        for seq in 0..N {
            q.put((run, seq, payload(seq, BIG_PAYLOAD)))?;
        }
        let (q2, acks2) = (q.clone(), acks.clone());
        let child = Process::new(move || {
            while let Ok((r, seq, body)) = q2.get() {
                assert!(r == run && body == payload(seq, BIG_PAYLOAD));
                acks2.put(seq).unwrap();
            }
        })
        .start()?;
        std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        child.kill()?;
        let mut child = child;
        assert!(matches!(child.join(), Err(Error::Signaled(_))));
        let mut acked = Vec::new();
        while let Ok(seq) = acks.try_get() {
            acked.push(seq);
        }
        let mut left = Vec::new();
        let t = Instant::now();
        let first = q.try_get();
        if t.elapsed() > Duration::from_millis(50) {
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
    eprintln!("{takeovers} of 100 consumers were killed holding the consumers' lock");
    Ok(())
}

fn sq_01_04_simple_queue() -> TestResult {
    let q: SimpleQueue<u32> = SimpleQueue::new()?;
    assert!(q.is_empty());
    let q2 = q.clone();
    // SQ-04: put is synchronous; once the child returns, its items are in the queue.
    Process::new(move || {
        q2.put(1).unwrap();
        q2.put(2).unwrap();
    })
    .start()?
    .join()?;
    assert!(!q.is_empty());
    assert_eq!(q.get()?, 1);
    assert_eq!(q.get()?, 2);
    assert!(q.is_empty());
    // SQ-03: close twice is fine; SQ-02 differs: is_empty stays a plain answer.
    q.close();
    q.close();
    assert!(q.is_empty());
    assert!(matches!(q.put(3), Err(PutError::Closed(3))));
    assert!(matches!(q.get(), Err(Error::Closed)));
    Ok(())
}

fn jq_01_task_done() -> TestResult {
    let q: JoinableQueue<Option<u32>> = JoinableQueue::new()?;
    let done: Queue<u32> = Queue::new()?;
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (q, done) = (q.clone(), done.clone());
        workers.push(
            Process::new(move || {
                while let Some(item) = q.get().unwrap() {
                    std::thread::sleep(Duration::from_millis(20));
                    done.put(item).unwrap();
                    q.task_done().unwrap();
                }
                q.task_done().unwrap();
            })
            .start()?,
        );
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
    let q2 = q.clone();
    Process::new(move || {
        q2.get().unwrap();
        q2.task_done().unwrap();
    })
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
