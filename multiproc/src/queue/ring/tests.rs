//! Unit tests of the ring protocol, on the shared-memory backend, between threads.

use super::*;
use crate::sys::identity::Token;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn take(ring: &Ring, deadline: Deadline) -> Result<Vec<u8>, GetFail> {
    ring.get(deadline, <[u8]>::to_vec)
}

/// A message whose bytes encode its producer, number and length.
fn message(producer: u8, n: u32, len: usize) -> Vec<u8> {
    let mut m = vec![producer; len.max(5)];
    m[1..5].copy_from_slice(&n.to_le_bytes());
    m
}

#[test]
fn fifo_across_wrap_and_growth_with_every_size() {
    let ring = Ring::create(0).unwrap();
    let sizes = [0usize, 1, 7, 8, 9, 23, 24, 100, 4096, 70_000, 300_000, 3];
    for round in 0..40u32 {
        for (i, &len) in sizes.iter().enumerate() {
            let m = vec![(round as usize * 31 + i) as u8; len];
            ring.put(&m, Deadline::now()).unwrap();
        }
        for (i, &len) in sizes.iter().enumerate() {
            let m = take(&ring, Deadline::now()).unwrap();
            assert_eq!(m, vec![(round as usize * 31 + i) as u8; len]);
        }
    }
    assert_eq!(take(&ring, Deadline::now()), Err(GetFail::NotNow));
    assert!(ring.ctl().cap.0.load(Ordering::Relaxed) > INITIAL_CAP);
}

#[test]
fn an_unbounded_put_without_consumers_grows_past_the_free_growth_size() {
    let ring = Ring::create(0).unwrap();
    let m = vec![9u8; 100 << 10];
    for _ in 0..100 {
        ring.put(&m, Deadline::NEVER).unwrap();
    }
    assert!(ring.ctl().cap.0.load(Ordering::Relaxed) > GROW_FREELY);
    for _ in 0..100 {
        assert_eq!(take(&ring, Deadline::now()).unwrap(), m);
    }
}

#[test]
fn growth_keeps_messages_queued_across_the_old_end() {
    let ring = Ring::create(0).unwrap();
    // Fill to just below the initial capacity with a few messages, drain some so the
    // live range wraps, then force growth with a large message.
    for n in 0..30 {
        ring.put(&message(1, n, 4000), Deadline::now()).unwrap();
    }
    for n in 0..20 {
        assert_eq!(take(&ring, Deadline::now()).unwrap(), message(1, n, 4000));
    }
    for n in 30..50 {
        ring.put(&message(1, n, 4000), Deadline::now()).unwrap();
    }
    ring.put(&message(2, 0, 1 << 20), Deadline::now()).unwrap();
    for n in 20..50 {
        assert_eq!(take(&ring, Deadline::now()).unwrap(), message(1, n, 4000));
    }
    assert_eq!(
        take(&ring, Deadline::now()).unwrap(),
        message(2, 0, 1 << 20)
    );
}

#[test]
fn bound_counts_messages_and_timeouts_wait_at_least_the_timeout() {
    let ring = Ring::create(2).unwrap();
    ring.put(b"a", Deadline::now()).unwrap();
    ring.put(b"", Deadline::now()).unwrap();
    assert_eq!(ring.len(), 2);
    assert_eq!(ring.put(b"c", Deadline::now()), Err(PutFail::NotNow));
    let t = Instant::now();
    let d = Duration::from_millis(30);
    assert_eq!(ring.put(b"c", Deadline::after(d)), Err(PutFail::NotNow));
    assert!(t.elapsed() >= d);
    assert_eq!(take(&ring, Deadline::now()).unwrap(), b"a");
    ring.put(b"c", Deadline::now()).unwrap();
    assert_eq!(take(&ring, Deadline::now()).unwrap(), b"");
    assert_eq!(take(&ring, Deadline::now()).unwrap(), b"c");
    let t = Instant::now();
    assert_eq!(take(&ring, Deadline::after(d)), Err(GetFail::NotNow));
    assert!(t.elapsed() >= d);
}

#[test]
fn close_refuses_puts_drains_then_reports_closed() {
    let ring = Arc::new(Ring::create(0).unwrap());
    ring.put(b"last", Deadline::now()).unwrap();
    ring.shutdown(false);
    ring.shutdown(false);
    assert_eq!(ring.put(b"x", Deadline::now()), Err(PutFail::Closed));
    assert_eq!(take(&ring, Deadline::NEVER).unwrap(), b"last");
    assert_eq!(take(&ring, Deadline::NEVER), Err(GetFail::Closed));
    // A sleeping get wakes up on close.
    let ring = Arc::new(Ring::create(0).unwrap());
    let r = Arc::clone(&ring);
    let sleeper = std::thread::spawn(move || take(&r, Deadline::NEVER));
    std::thread::sleep(Duration::from_millis(20));
    ring.shutdown(false);
    assert_eq!(sleeper.join().unwrap(), Err(GetFail::Closed));
}

/// Leaves the state of a producer killed right after its commit: `msg` committed, step
/// 5 (`tail_idx`, `tail`, `puts`) not done.
fn commit_without_step_5(ring: &Ring, msg: &[u8]) {
    let p = &ring.ctl().producer.0;
    let tail = p.tail.load(Ordering::Relaxed);
    let idx = p.tail_idx.load(Ordering::Relaxed);
    let size = record_size(msg.len() as u64);
    assert_eq!(
        ring.put_locked(&mut Payload::Bytes(msg), size, true, Deadline::NEVER),
        Attempt::Put
    );
    p.tail.store(tail, Ordering::Relaxed);
    p.tail_idx.store(idx, Ordering::Relaxed);
    ring.ctl().puts.0.store(idx, Ordering::Relaxed);
}

#[test]
fn repair_finishes_a_commit_whose_producer_died_before_step_5() {
    let ring = Ring::create(0).unwrap();
    ring.put(b"first", Deadline::now()).unwrap();
    commit_without_step_5(&ring, b"second");
    ring.repair_producers();
    assert_eq!(ring.len(), 2);
    ring.put(b"third", Deadline::now()).unwrap();
    for m in [&b"first"[..], b"second", b"third"] {
        assert_eq!(take(&ring, Deadline::now()).unwrap(), m);
    }
}

#[test]
fn repair_drops_an_uncommitted_record() {
    let ring = Ring::create(0).unwrap();
    let p = &ring.ctl().producer.0;
    // A producer killed mid-copy: payload and header words written, no commit.
    let cap = INITIAL_CAP;
    // SAFETY: this thread is the only user of the ring; the bytes are free space.
    unsafe {
        ring.write_wrapping(cap, HEADER, b"torn");
        ring.word(cap, 8).store(4, Ordering::Relaxed);
    }
    ring.repair_producers();
    assert_eq!(p.tail.load(Ordering::Relaxed), 0);
    assert_eq!(ring.len(), 0);
    ring.put(b"whole", Deadline::now()).unwrap();
    assert_eq!(take(&ring, Deadline::now()).unwrap(), b"whole");
}

/// A pid that certainly names no process: a child that has exited and been reaped.
fn dead_token() -> Token {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Token::from_id(pid)
}

#[test]
fn a_producer_that_died_holding_the_lock_is_taken_over_and_repaired() {
    let ring = Ring::create(0).unwrap();
    ring.put(b"before", Deadline::now()).unwrap();
    // A producer got the lock and committed a record, then died before step 5.
    assert!(ring.ctl().plock.0.try_lock_free(dead_token()));
    commit_without_step_5(&ring, b"committed");
    ring.put(b"after", Deadline::NEVER).unwrap();
    for m in [&b"before"[..], b"committed", b"after"] {
        assert_eq!(take(&ring, Deadline::now()).unwrap(), m);
    }
    assert_eq!(ring.len(), 0);
}

#[test]
fn a_consumer_that_died_holding_the_lock_loses_nothing_it_had_not_released() {
    let ring = Ring::create(0).unwrap();
    ring.put(b"one", Deadline::now()).unwrap();
    ring.put(b"two", Deadline::now()).unwrap();
    // A consumer took the lock and read "one" but died before moving `head`.
    assert!(ring.ctl().clock.0.try_lock_free(dead_token()));
    assert_eq!(take(&ring, Deadline::NEVER).unwrap(), b"one");
    assert_eq!(take(&ring, Deadline::now()).unwrap(), b"two");
}

#[test]
fn task_accounting() {
    let ring = Ring::create(0).unwrap();
    assert!(ring.join(Deadline::now()).is_ok());
    assert!(!ring.task_done());
    ring.put(b"1", Deadline::now()).unwrap();
    ring.put(b"2", Deadline::now()).unwrap();
    assert_eq!(ring.unfinished(), 2);
    assert_eq!(
        ring.join(Deadline::after(Duration::from_millis(5))),
        Err(JoinFail::NotNow)
    );
    assert!(ring.task_done());
    assert!(ring.task_done());
    assert!(!ring.task_done());
    assert!(ring.join(Deadline::now()).is_ok());
}

#[test]
fn threads_mpmc_exactly_once_in_producer_order() {
    const PRODUCERS: u8 = 3;
    const EACH: u32 = 20_000;
    let ring = Arc::new(Ring::create(64).unwrap());
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(m) = take(&ring, Deadline::NEVER) {
                    got.push((m[0], u32::from_le_bytes(m[1..5].try_into().unwrap())));
                }
                got
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                for n in 0..EACH {
                    ring.put(&message(p, n, 5 + (n as usize % 40)), Deadline::NEVER)
                        .unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    ring.shutdown(false);
    let mut seen = vec![Vec::new(); PRODUCERS as usize];
    for c in consumers {
        let got = c.join().unwrap();
        let mut last = vec![None; PRODUCERS as usize];
        for (p, n) in got {
            assert!(last[p as usize] < Some(n), "order within one consumer");
            last[p as usize] = Some(n);
            seen[p as usize].push(n);
        }
    }
    for s in &mut seen {
        s.sort_unstable();
        assert_eq!(*s, (0..EACH).collect::<Vec<_>>());
    }
}

/// Leaves the state of a consumer killed between its two stores: the oldest message counted
/// as taken (`gets`), its bytes not released (`head`).
fn take_without_step_4(ring: &Ring) {
    let s = &ring.ctl().consumer.0;
    let head = s.head.load(Ordering::Relaxed);
    assert_eq!(take(ring, Deadline::now()).unwrap().len(), 3);
    s.head.store(head, Ordering::Relaxed);
}

#[test]
fn a_consumer_that_died_between_its_stores_is_repaired_and_the_message_delivered() {
    let ring = Ring::create(0).unwrap();
    ring.put(b"one", Deadline::now()).unwrap();
    ring.put(b"two", Deadline::now()).unwrap();
    take_without_step_4(&ring);
    assert!(ring.ctl().clock.0.try_lock_free(dead_token()));
    assert_eq!(ring.len(), 1, "the counts say one message was taken");
    // The next taker of the lock finds the holder dead and repairs the count.
    assert_eq!(take(&ring, Deadline::NEVER).unwrap(), b"one");
    assert_eq!(ring.len(), 1);
    assert_eq!(take(&ring, Deadline::now()).unwrap(), b"two");
    assert_eq!(ring.len(), 0);
}

#[test]
fn a_sleeping_consumer_finds_the_message_a_dead_consumer_left_counted_as_taken() {
    let ring = Arc::new(Ring::create(0).unwrap());
    let r = Arc::clone(&ring);
    let sleeper = std::thread::spawn(move || take(&r, Deadline::after(Duration::from_secs(3))));
    std::thread::sleep(Duration::from_millis(20));
    // Another consumer takes the lock, is counted as taking the message, and dies.
    assert!(ring.ctl().clock.0.try_lock_free(dead_token()));
    ring.put(b"one", Deadline::now()).unwrap();
    let s = &ring.ctl().consumer.0;
    s.gets.store(1, Ordering::Release);
    assert_eq!(ring.len(), 0);
    let t = Instant::now();
    assert_eq!(sleeper.join().unwrap().unwrap(), b"one");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn a_try_never_waits_for_a_side_lock_held_by_a_live_process() {
    let ring = Ring::create(0).unwrap();
    ring.put(b"one", Deadline::now()).unwrap();
    let live = crate::sys::identity::thread();
    // Held by a live holder that never lets go (a stopped process).
    assert!(ring
        .ctl()
        .clock
        .0
        .try_lock_free(Token::from_id(std::process::id())));
    let t = Instant::now();
    assert_eq!(take(&ring, Deadline::now()), Err(GetFail::NotNow));
    assert!(ring.ctl().plock.0.try_lock_free(live));
    assert_eq!(ring.put(b"two", Deadline::now()), Err(PutFail::NotNow));
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
}

#[test]
fn immediate_shutdown_fails_gets_at_once_and_releases_join() {
    let ring = Ring::create(0).unwrap();
    ring.put(b"one", Deadline::now()).unwrap();
    ring.put(b"two", Deadline::now()).unwrap();
    assert_eq!(take(&ring, Deadline::now()).unwrap(), b"one");
    ring.shutdown(true);
    assert_eq!(take(&ring, Deadline::NEVER), Err(GetFail::Closed));
    assert_eq!(ring.put(b"x", Deadline::now()), Err(PutFail::Closed));
    // "one" was taken and not done: join is released, but says so.
    assert_eq!(ring.join(Deadline::NEVER), Err(JoinFail::Closed));
    assert!(ring.task_done());
    assert_eq!(ring.join(Deadline::NEVER), Ok(()));
}

#[test]
fn a_sleeping_consumer_finds_the_message_of_a_producer_that_died_before_step_5() {
    let ring = Arc::new(Ring::create(0).unwrap());
    let r = Arc::clone(&ring);
    let sleeper = std::thread::spawn(move || take(&r, Deadline::after(Duration::from_secs(3))));
    std::thread::sleep(Duration::from_millis(20));
    // A producer takes the lock, commits, and dies before counting the message.
    assert!(ring.ctl().plock.0.try_lock_free(dead_token()));
    commit_without_step_5(&ring, b"one");
    assert_eq!(ring.len(), 0);
    let t = Instant::now();
    assert_eq!(sleeper.join().unwrap().unwrap(), b"one");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}
