//! Shared memory with real processes: Value, Array, RawValue, RawArray, SharedMemory
//! (contract sections VA and SHM), and the seed examples that use them with locks.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{test, unique_name, TestResult};
use multiproc::shm::{RawArray, RawValue};
use multiproc::{Array, Error, Process, SharedMemory, Value};

fn main() {
    common::run(vec![
        test(
            "va_four_processes_x_100000_locked_increments_end_at_400000",
            locked_increments,
        ),
        test(
            "va_14_four_processes_x_100000_fetch_add_end_at_400000",
            fetch_add_increments,
        ),
        test("va_01_child_writes_are_seen_by_the_parent", va_01),
        test("va_07_child_prefix_sum_in_place_is_seen", va_07),
        test("va_12_struct_values_shared_and_doubled", va_12),
        test(
            "va_raw_value_and_array_are_shared_without_a_lock",
            raw_shared,
        ),
        test(
            "va_owner_died_inside_a_value_lock_is_reported",
            value_owner_died,
        ),
        test(
            "dd_02_review_bug3_value_and_array_short_timeout_and_try_find_a_sigkilled_holder",
            value_array_short_waits_find_dead_holder,
        ),
        test(
            "va_10_array_get_out_of_range_is_an_error_in_a_child_too",
            array_get_out_of_range,
        ),
        test("shm_08_child_opens_by_name_and_writes", shm_08),
        test(
            "shm_buf_child_writes_through_atomic_bytes_parent_reads_in_place",
            shm_atomic_bytes,
        ),
        test("shm_03_04_06_bad_arguments_get_clear_errors", shm_errors),
        test(
            "seed_001_shared_value_array_example",
            example_shared_value_array,
        ),
        test(
            "seed_002_lock_printing_example_never_interleaves",
            example_lock_printing,
        ),
        test(
            "seed_004_ticket_file_lock_sells_exactly_once",
            example_ticket_file_lock,
        ),
    ])
}

fn start_n<F>(n: usize, f: impl Fn() -> F) -> Result<Vec<multiproc::Child<()>>, Error>
where
    F: FnOnce() + Send + 'static,
{
    (0..n).map(|_| Process::new(f()).start()).collect()
}

fn join_all(children: Vec<multiproc::Child<()>>) -> TestResult {
    for mut c in children {
        c.join()?;
    }
    Ok(())
}

fn locked_increments() -> TestResult {
    let v = Value::new(0u64)?;
    let children = start_n(4, || {
        let v = v.clone();
        move || {
            for _ in 0..100_000 {
                *v.lock().unwrap() += 1;
            }
        }
    })?;
    join_all(children)?;
    assert_eq!(v.load(), 400_000);
    Ok(())
}

fn fetch_add_increments() -> TestResult {
    let v = Value::new(0u64)?;
    let children = start_n(4, || {
        let v = v.clone();
        move || {
            for _ in 0..100_000 {
                v.fetch_add(1);
            }
        }
    })?;
    join_all(children)?;
    assert_eq!(v.load(), 400_000);
    Ok(())
}

fn va_01() -> TestResult {
    let i = Value::new(4343i32)?;
    let d = Value::new(3.625f64)?;
    let h = Value::new(-232i16)?;
    let q = Value::new(1i64 << 33)?;
    let c = Value::new(b'x')?;
    let (i2, d2, h2, q2, c2) = (i.clone(), d.clone(), h.clone(), q.clone(), c.clone());
    Process::new(move || {
        i2.store(24234);
        d2.store(-4.25);
        h2.store(234);
        q2.store(1 << 34);
        c2.store(b'y');
    })
    .start()?
    .join()?;
    assert_eq!(
        (i.load(), d.load(), h.load(), q.load(), c.load()),
        (24234, -4.25, 234, 1 << 34, b'y')
    );
    Ok(())
}

fn va_07() -> TestResult {
    let seq = [6i32, 4, 8, 2, 9, 3, 7, 1, 5, 0];
    let arr = Array::from_slice(&seq)?;
    assert_eq!(arr.len(), seq.len());
    assert_eq!(arr.slice(2..7)?, &seq[2..7]);
    let a = arr.clone();
    Process::new(move || {
        let mut g = a.lock().unwrap();
        for i in 1..g.len() {
            g[i] += g[i - 1];
        }
    })
    .start()?
    .join()?;
    let mut expected = seq;
    for i in 1..expected.len() {
        expected[i] += expected[i - 1];
    }
    assert_eq!(arr.to_vec(), expected);
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}
multiproc::shm_safe!(Point);

fn va_12() -> TestResult {
    let p = Value::new(Point { x: 1.0, y: -3.0 })?;
    let arr = Array::from_slice(&[1.25f64, 2.5])?;
    let (p2, a2) = (p.clone(), arr.clone());
    Process::new(move || {
        let mut g = p2.lock().unwrap();
        g.x *= 2.0;
        g.y *= 2.0;
        drop(g);
        for x in a2.lock().unwrap().iter_mut() {
            *x *= 2.0;
        }
    })
    .start()?
    .join()?;
    assert_eq!(p.load(), Point { x: 2.0, y: -6.0 });
    assert_eq!(arr.to_vec(), [2.5, 5.0]);
    Ok(())
}

fn raw_shared() -> TestResult {
    let v = RawValue::new(0u32)?;
    let a = RawArray::<u16>::new(4)?;
    let children = start_n(2, || {
        let (v, a) = (v.clone(), a.clone());
        move || {
            for _ in 0..10_000 {
                v.fetch_add(1);
            }
            a.set(3, 77).unwrap();
        }
    })?;
    join_all(children)?;
    assert_eq!(v.load(), 20_000);
    assert_eq!(a.to_vec(), [0, 0, 0, 77]);
    Ok(())
}

fn value_owner_died() -> TestResult {
    let v = Value::new(0u32)?;
    let step = Value::new(0u32)?;
    let (v2, s2) = (v.clone(), step.clone());
    let mut child = Process::new(move || {
        let mut g = v2.lock().unwrap();
        *g = 5; // a half-done update: the guard's copy is never written back
        std::mem::forget(g);
        s2.store(1);
        std::thread::sleep(std::time::Duration::from_secs(600));
    })
    .start()?;
    if !common::eventually(std::time::Duration::from_secs(10), || step.load() == 1) {
        return Err("the child never took the lock".into());
    }
    child.kill()?;
    let mut g = v
        .lock()
        .err()
        .and_then(multiproc::LockError::into_inner)
        .ok_or("no OwnerDied")?;
    assert_eq!(*g, 0, "the dead holder's unfinished update never landed");
    *g = 1;
    drop(g);
    assert_eq!(v.load(), 1);
    let _ = child.join();
    Ok(())
}

/// Unlinks a named segment however the test ends.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        if let Ok(s) = SharedMemory::open(&self.0) {
            let _ = s.unlink();
        }
    }
}

fn shm_08() -> TestResult {
    let name = unique_name("shm08");
    let _unlink = Unlink(name.clone());
    let shm = SharedMemory::create(&name, 4096)?;
    let n = name.clone();
    Process::new(move || {
        let other = SharedMemory::open(&n).unwrap();
        other.write(100, b"from the child").unwrap();
    })
    .start()?
    .join()?;
    let mut buf = [0; 14];
    shm.read(100, &mut buf)?;
    assert_eq!(&buf, b"from the child");
    shm.unlink()?;
    Ok(())
}

fn io_kind(r: Result<SharedMemory, Error>) -> Option<std::io::ErrorKind> {
    match r {
        Err(Error::Io(e)) => Some(e.kind()),
        _ => None,
    }
}

fn shm_errors() -> TestResult {
    let name = unique_name("shmerr");
    let _unlink = Unlink(name.clone());
    assert!(matches!(
        SharedMemory::create(&name, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        SharedMemory::create("a/b", 16),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        SharedMemory::open("nul\0"),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        io_kind(SharedMemory::open(&name)),
        Some(std::io::ErrorKind::NotFound)
    );
    let shm = SharedMemory::create(&name, 16)?;
    assert_eq!(
        io_kind(SharedMemory::create(&name, 16)),
        Some(std::io::ErrorKind::AlreadyExists)
    );
    shm.unlink()?;
    assert!(shm.unlink().is_err(), "SHM-04: a second unlink fails");
    Ok(())
}

/// Runs the built example `name` with `args` and returns its stdout lines. (The same
/// approach as `tests/examples.rs`: `cargo test` builds the examples.)
fn example_shared_value_array() -> TestResult {
    let lines = common::run_example("shared_value_array", &[])?;
    let tail: Vec<&str> = lines
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "value after: 200",
            "array after: [10, 20, 30, 40, 50]",
            "zeroed after: [0, 1, 4, 9, 16]",
            "hits after: 4000"
        ]
    );
    assert!(lines.contains(&"array[1] == 2".to_string()));
    Ok(())
}

fn example_lock_printing() -> TestResult {
    for _ in 0..3 {
        let lines = common::run_example("lock_printing", &[])?;
        assert_eq!(lines, vec!["1234"; 9]);
    }
    Ok(())
}

fn example_ticket_file_lock() -> TestResult {
    for buyers in ["4", "50"] {
        let lines = common::run_example("ticket_file_lock", &[buyers])?;
        let bought = lines
            .iter()
            .filter(|l| l.starts_with("用户") && l.ends_with("购买成功"))
            .count();
        let failed = lines
            .iter()
            .filter(|l| l.starts_with("用户") && l.ends_with("购买失败"))
            .count();
        assert_eq!(bought, 1, "{lines:?}");
        assert_eq!(bought + failed, buyers.parse::<usize>()?);
        let looked = lines
            .iter()
            .filter(|l| l.contains("查看了票数剩余"))
            .count();
        assert_eq!(looked, buyers.parse::<usize>()?, "{lines:?}");
        assert_eq!(lines.last().map(String::as_str), Some("tickets left: 0"));
    }
    let refused = common::run_example("ticket_file_lock", &["3"]);
    assert!(refused.is_err(), "3 buyers are out of range");
    Ok(())
}

/// Review bug 3 for `Value` and `Array`: `lock_timeout(50 ms)` and `try_lock` on a lock
/// whose holder was SIGKILLed report `OwnerDied` at once (they used to say `Timeout`).
fn value_array_short_waits_find_dead_holder() -> TestResult {
    let v = Value::new(7u64)?;
    let a = Array::<u8>::new(4)?;
    for form in [
        "value lock_timeout",
        "value try_lock",
        "array lock_timeout",
        "array try_lock",
    ] {
        /// Takes the value's lock (or the array's) and forgets the guard.
        fn hold(((v, a, on_value), holding): ((Value<u64>, Array<u8>, bool), common::Holding)) {
            if on_value {
                std::mem::forget(v.lock().unwrap());
            } else {
                std::mem::forget(a.lock().unwrap());
            }
            holding.keep();
        }
        let on_value = form.starts_with("value");
        let mut child = common::dead_holder(hold, (v.clone(), a.clone(), on_value))?;
        let t = Instant::now();
        let died = match form {
            "value lock_timeout" => v
                .lock_timeout(Duration::from_millis(50))
                .is_err_and(|e| e.is_owner_died()),
            "value try_lock" => v.try_lock().is_err_and(|e| e.is_owner_died()),
            "array lock_timeout" => a
                .lock_timeout(Duration::from_millis(50))
                .is_err_and(|e| e.is_owner_died()),
            _ => a.try_lock().is_err_and(|e| e.is_owner_died()),
        };
        assert!(died, "{form} did not report the dead holder");
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{form} waited {:?}",
            t.elapsed()
        );
        assert_eq!(v.load(), 7);
        assert!(a.try_lock().is_ok(), "{form}: the lock was left held");
        let _ = child.join();
    }
    Ok(())
}

/// `Array::get` says out of range with an error, like `set` (Python's `IndexError`).
fn array_get_out_of_range() -> TestResult {
    let a = Array::from_slice(&[1i32, 2, 3])?;
    let a2 = a.clone();
    let seen: (i32, bool) = Process::new(move || {
        let last = a2.get(2).unwrap();
        let past = matches!(a2.get(3), Err(Error::InvalidArgument(_)));
        (last, past)
    })
    .start()?
    .join()?;
    assert_eq!(seen, (3, true));
    assert!(matches!(a.get(usize::MAX), Err(Error::InvalidArgument(_))));
    Ok(())
}

/// Python's `shm.buf`: a child writes through the zero-copy view, the parent reads the
/// same bytes in place.
fn shm_atomic_bytes() -> TestResult {
    let name = unique_name("shmbuf");
    let _unlink = Unlink(name.clone());
    let shm = SharedMemory::create(&name, 64)?;
    let n = name.clone();
    Process::new(move || {
        let other = SharedMemory::open(&n).unwrap();
        let buf = other.as_atomic_bytes();
        for (i, b) in b"in place".iter().enumerate() {
            buf[i].store(*b, Ordering::Relaxed);
        }
        buf[63].fetch_add(3, Ordering::Relaxed);
    })
    .start()?
    .join()?;
    let buf = shm.as_atomic_bytes();
    assert_eq!(buf.len(), shm.size());
    let got: Vec<u8> = buf[..8].iter().map(|b| b.load(Ordering::Relaxed)).collect();
    assert_eq!(got, b"in place");
    assert_eq!(buf[63].load(Ordering::Relaxed), 3);
    shm.unlink()?;
    Ok(())
}
