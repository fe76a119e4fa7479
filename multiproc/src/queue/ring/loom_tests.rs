//! Loom models of the ring protocol (`--cfg loom`, see `.ci/run`).

use super::*;
use loom::sync::Arc;
use loom::thread;

/// A 12-byte message naming its producer and number: records of 40 bytes, so the
/// second one does not fit the 64-byte initial ring and must wrap or grow.
fn message(producer: u8, n: u8) -> Vec<u8> {
    let mut m = vec![0xA5; 12];
    m[0] = producer;
    m[1] = n;
    m
}

fn take(ring: &Ring) -> Vec<u8> {
    ring.get(Deadline::NEVER, <[u8]>::to_vec).unwrap()
}

/// Starts producers 0 and 1, each putting its message 0.
fn two_producers(ring: &Arc<Ring>) -> Vec<thread::JoinHandle<()>> {
    (0..2u8)
        .map(|p| {
            let ring = Arc::clone(ring);
            thread::spawn(move || ring.put(&message(p, 0), Deadline::NEVER).unwrap())
        })
        .collect()
}

/// Checks that `got` holds the two producers' messages once each, in any order.
fn assert_both(mut got: Vec<Vec<u8>>) {
    got.sort();
    assert_eq!(got, vec![message(0, 0), message(1, 0)]);
}

/// Two producers race for the claim (`plock`); the second put finds the 64-byte ring
/// too small and grows it. Both messages arrive once and intact.
#[test]
fn loom_two_producers_claim_and_grow() {
    loom::model(|| {
        let ring = Arc::new(Ring::create(0).unwrap());
        for p in two_producers(&ring) {
            p.join().unwrap();
        }
        assert_both(vec![take(&ring), take(&ring)]);
    });
}

/// A producer commits, then grows the ring (taking `clock`) while a consumer is reading
/// or waiting: the consumer sees every commit, in order, across the growth.
#[test]
fn loom_commit_and_growth_against_a_consumer() {
    loom::model(|| {
        let ring = Arc::new(Ring::create(0).unwrap());
        let r = Arc::clone(&ring);
        let producer = thread::spawn(move || {
            r.put(&message(0, 0), Deadline::NEVER).unwrap();
            r.put(&message(0, 1), Deadline::NEVER).unwrap();
        });
        assert_eq!(take(&ring), message(0, 0));
        assert_eq!(take(&ring), message(0, 1));
        producer.join().unwrap();
    });
}

/// All three at once: two producers and a consumer. Waiting loops (yielding spin locks
/// and polls) make executions long, so this model is bounded to one preemption.
#[test]
fn loom_two_producers_one_consumer() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(1);
    model.max_branches = 10_000;
    model.check(|| {
        let ring = Arc::new(Ring::create(0).unwrap());
        let producers = two_producers(&ring);
        let got = vec![take(&ring), take(&ring)];
        for p in producers {
            p.join().unwrap();
        }
        assert_both(got);
        assert_eq!(ring.len(), 0);
    });
}

/// One producer and one consumer on a ring bounded to one message: the producer waits
/// for room (`not_full`), the consumer for messages (`not_empty`); the records wrap
/// around the 64-byte ring. Order is kept and no wake-up is lost (loom would report the
/// model as deadlocked).
#[test]
fn loom_bounded_hand_off_keeps_order_and_wakes() {
    loom::model(|| {
        let ring = Arc::new(Ring::create(1).unwrap());
        let r = Arc::clone(&ring);
        let producer = thread::spawn(move || {
            for n in 0..3 {
                r.put(&message(0, n), Deadline::NEVER).unwrap();
            }
        });
        for n in 0..3 {
            assert_eq!(take(&ring), message(0, n));
        }
        producer.join().unwrap();
    });
}

/// `close` races with a consumer: the message put before it is still delivered, then
/// the consumer sees `Closed` instead of sleeping forever.
#[test]
fn loom_close_drains_then_closes() {
    loom::model(|| {
        let ring = Arc::new(Ring::create(0).unwrap());
        let r = Arc::clone(&ring);
        let closer = thread::spawn(move || {
            r.put(&message(0, 0), Deadline::NEVER).unwrap();
            r.shutdown(false);
        });
        assert_eq!(take(&ring), message(0, 0));
        assert_eq!(
            ring.get(Deadline::NEVER, <[u8]>::to_vec),
            Err(GetFail::Closed)
        );
        closer.join().unwrap();
    });
}

/// A put that encodes in place (`Payload::Fill`) writes only the room it claimed, before
/// its commit, exactly as a copy does; a fill that uses less than it claimed ends the
/// record early, and a fill that gives up commits nothing. The consumer sees the filled
/// message once and intact, and nothing of the abandoned one.
#[test]
fn loom_in_place_fill_against_a_consumer() {
    loom::model(|| {
        let ring = Arc::new(Ring::create(0).unwrap());
        let r = Arc::clone(&ring);
        let producer = thread::spawn(move || {
            let mut give_up = |_: &mut [u8]| None;
            let abandoned = r.put_payload(&mut Payload::Fill(12, &mut give_up), Deadline::NEVER);
            assert_eq!(abandoned, Err(PutFail::Unfilled));
            let want = message(0, 1);
            let mut fill = |dst: &mut [u8]| {
                dst[..want.len()].copy_from_slice(&want);
                Some(want.len())
            };
            r.put_payload(&mut Payload::Fill(20, &mut fill), Deadline::NEVER)
                .unwrap();
        });
        assert_eq!(take(&ring), message(0, 1));
        producer.join().unwrap();
        assert_eq!(ring.len(), 0);
    });
}
