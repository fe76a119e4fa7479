//! Named objects for processes that are not parent and child: created under a name by one
//! process, opened by name by others. The children here open every object by its name and
//! capture no handle, as separately started programs would.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{test, TestResult};
use multiproc::{
    Array, Barrier, BoundedSemaphore, Condition, Error, Event, JoinableQueue, Lock, LockError,
    Process, Queue, RLock, Semaphore, SimpleQueue, StartMethod, Value, WaitError,
};

const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    common::run(vec![
        test(
            "named_create_open_unlink_errors_and_mode_0600",
            create_open_unlink,
        ),
        test(
            "named_lock_semaphore_event_across_processes_by_name",
            across_processes,
        ),
        test(
            "named_lock_holder_sigkilled_next_opener_gets_owner_died",
            holder_killed,
        ),
        test(
            "named_creator_sigkilled_mid_create_never_leaves_half_an_object",
            creator_killed_mid_create,
        ),
        test(
            "named_open_or_create_race_makes_exactly_one",
            open_or_create_race,
        ),
        test(
            "named_value_fetch_add_by_name_across_processes",
            value_by_name,
        ),
        test("named_queue_between_processes_by_name", queue_by_name),
        test(
            "named_joinable_queue_join_across_processes",
            joinable_by_name,
        ),
        test(
            "named_queue_survives_its_creator_sigkilled_mid_put",
            queue_creator_killed,
        ),
        test(
            "named_rlock_bounded_semaphore_condition_barrier_array_in_a_spawned_program",
            five_more_in_a_spawned_program,
        ),
        test(
            "named_five_more_create_open_unlink_errors_mode_0600_and_no_leftovers",
            five_more_create_open_unlink,
        ),
        test(
            "named_condition_travels_with_its_lock_through_a_pipe",
            named_condition_travels,
        ),
    ])
}

/// Unlinks the names however the test ends.
struct Names(Vec<String>);

impl Drop for Names {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(format!("/dev/shm/{n}"));
        }
    }
}

fn io_kind(r: Result<impl std::fmt::Debug, Error>) -> std::io::ErrorKind {
    match r {
        Err(Error::Io(e)) => e.kind(),
        other => panic!("expected an i/o error, got {other:?}"),
    }
}

fn create_open_unlink() -> TestResult {
    let name = common::unique_name("lock");
    let _names = Names(vec![name.clone()]);
    assert_eq!(io_kind(Lock::open(&name)), std::io::ErrorKind::NotFound);
    let lock = Lock::create(&name)?;
    let mode = std::fs::metadata(format!("/dev/shm/{name}"))?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        io_kind(Lock::create(&name)),
        std::io::ErrorKind::AlreadyExists
    );
    // Another kind under the name: refused by the header check, not misread.
    assert_eq!(
        io_kind(Semaphore::open(&name)),
        std::io::ErrorKind::InvalidData
    );
    assert_eq!(io_kind(Event::open(&name)), std::io::ErrorKind::InvalidData);
    // A file that is not ours at all.
    let foreign = common::unique_name("foreign");
    let _more = Names(vec![foreign.clone()]);
    std::fs::write(format!("/dev/shm/{foreign}"), b"not a lock")?;
    assert_eq!(
        io_kind(Lock::open(&foreign)),
        std::io::ErrorKind::InvalidData
    );
    for bad in ["", "a/b", "nul\0", &"x".repeat(300)] {
        assert!(
            matches!(Lock::create(bad), Err(Error::InvalidArgument(_))),
            "{bad:?}"
        );
    }
    let again = Lock::open_or_create(&name)?;
    drop(lock.lock().map_err(Error::from)?);
    assert!(!again.is_locked());
    Lock::unlink(&name)?;
    assert_eq!(io_kind(Lock::unlink(&name)), std::io::ErrorKind::NotFound);
    // The handles outlive the name.
    let _g = again.lock().map_err(Error::from)?;
    assert!(lock.is_locked());
    Ok(())
}

fn across_processes() -> TestResult {
    let (l, s, e) = (
        common::unique_name("l"),
        common::unique_name("s"),
        common::unique_name("e"),
    );
    let _names = Names(vec![l.clone(), s.clone(), e.clone()]);
    let lock = Lock::create(&l)?;
    let sem = Semaphore::create(&s, 0)?;
    let event = Event::create(&e)?;
    let guard = lock.lock().map_err(Error::from)?;
    let (l2, s2, e2) = (l.clone(), s.clone(), e.clone());
    let mut child = Process::new(move || {
        let sem = Semaphore::open(&s2).unwrap();
        let event = Event::open(&e2).unwrap();
        let lock = Lock::open(&l2).unwrap();
        sem.release().unwrap();
        sem.release().unwrap();
        event.wait();
        // The parent released the lock after setting the event.
        drop(lock.lock().unwrap());
        sem.value()
    })
    .start()?;
    sem.acquire_timeout(PATIENCE)?;
    sem.acquire_timeout(PATIENCE)?;
    event.set();
    drop(guard);
    assert_eq!(child.join()?, 0);
    Ok(())
}

fn holder_killed() -> TestResult {
    let (name, ready_name) = (common::unique_name("held"), common::unique_name("ready"));
    let _names = Names(vec![name.clone(), ready_name.clone()]);
    let ready = Event::create(&ready_name)?;
    let n2 = name.clone();
    let r2 = ready.clone();
    let mut holder = Process::new(move || {
        // An unrelated program would do exactly this: open by name and lock.
        let lock = Lock::open_or_create(&n2).unwrap();
        std::mem::forget(lock.lock().unwrap());
        r2.set();
        std::thread::sleep(Duration::from_secs(600));
    })
    .start()?;
    ready.wait_timeout(PATIENCE)?;
    holder.kill()?;
    let lock = Lock::open(&name)?;
    match lock.lock_timeout(Duration::from_secs(5)) {
        Err(LockError::OwnerDied(g)) => drop(g),
        other => return Err(format!("expected OwnerDied, got {:?}", other.map(|_| ())).into()),
    }
    drop(lock.lock().map_err(|_| "still poisoned")?);
    assert!(holder.join().is_err());
    Ok(())
}

/// A creator killed at random instants inside `create`: whoever comes next finds either
/// nothing (and creates) or a complete object, never a half-made one.
fn creator_killed_mid_create() -> TestResult {
    let name = common::unique_name("midcreate");
    let _names = Names(vec![name.clone()]);
    for round in 0..30u64 {
        let n2 = name.clone();
        let mut creator = Process::new(move || {
            // Create, check, unlink, again: a kill lands anywhere in the cycle.
            for _ in 0..u64::MAX {
                if let Ok(s) = Semaphore::create(&n2, 7) {
                    assert_eq!(s.value(), 7);
                    let _ = Semaphore::unlink(&n2);
                }
            }
        })
        .start()?;
        std::thread::sleep(Duration::from_micros(200 + round * 337 % 3000));
        creator.kill()?;
        assert!(creator.join().is_err());
        let sem = Semaphore::open_or_create(&name, 7)?;
        assert_eq!(sem.value(), 7, "round {round}: a half-made semaphore");
        Semaphore::unlink(&name)?;
    }
    // The harness fails the test if any file with our prefix is left in /dev/shm; an
    // unnamed file of a killed creator has no name to leave.
    Ok(())
}

fn open_or_create_race() -> TestResult {
    let (name, go_name) = (common::unique_name("race"), common::unique_name("go"));
    let _names = Names(vec![name.clone(), go_name.clone()]);
    let go = Event::create(&go_name)?;
    let mut racers = Vec::new();
    for _ in 0..4 {
        let (n2, g2) = (name.clone(), go.clone());
        racers.push(
            Process::new(move || {
                g2.wait();
                let sem = Semaphore::open_or_create(&n2, 0).unwrap();
                sem.release().unwrap();
            })
            .start()?,
        );
    }
    go.set();
    for mut r in racers {
        r.join()?;
    }
    // One semaphore, created once (value 0), released by each racer.
    let start = Instant::now();
    assert_eq!(Semaphore::open(&name)?.value(), 4, "{:?}", start.elapsed());
    Ok(())
}

fn queue_by_name() -> TestResult {
    let name = common::unique_name("q");
    let _names = Names(vec![name.clone()]);
    assert_eq!(
        io_kind(Queue::<u32>::open(&name)),
        std::io::ErrorKind::NotFound
    );
    let q = Queue::<(u32, String)>::create(&name, Some(4))?;
    assert_eq!(
        io_kind(Queue::<u32>::create(&name, None)),
        std::io::ErrorKind::AlreadyExists
    );
    assert!(matches!(
        Queue::<u32>::create(&common::unique_name("zero"), Some(0)),
        Err(Error::InvalidArgument(_))
    ));
    // Not a queue under a queue's name and vice versa.
    assert_eq!(io_kind(Lock::open(&name)), std::io::ErrorKind::InvalidData);
    let n2 = name.clone();
    let mut producer = Process::new(move || {
        let q = Queue::<(u32, String)>::open(&n2).unwrap();
        for i in 0..100 {
            q.put((i, format!("job {i}"))).unwrap();
        }
    })
    .start()?;
    for i in 0..100 {
        let (n, text) = q.get_timeout(PATIENCE)?;
        assert_eq!((n, text.as_str()), (i, format!("job {i}").as_str()));
    }
    producer.join()?;
    // The bound it was created with holds for every opener.
    let other = Queue::<(u32, String)>::open_or_create(&name, None)?;
    for i in 0..4 {
        other.put((i, String::new()))?;
    }
    assert!(other
        .try_put((9, String::new()))
        .is_err_and(|e| e.is_full()));
    Queue::<u32>::unlink(&name)?;
    Ok(())
}

/// The creator puts numbered messages as fast as it can and is SIGKILLed at a random
/// instant, possibly inside a `put`; the next process opens the queue by name, finds every
/// message whose `put` could have returned, in order and intact, and the queue still works.
fn queue_creator_killed() -> TestResult {
    let name = common::unique_name("qkill");
    let _names = Names(vec![name.clone()]);
    for round in 0..5u64 {
        let (n2, started) = (name.clone(), common::unique_name("started"));
        let _more = Names(vec![started.clone()]);
        let up = Event::create(&started)?;
        let mut creator = Process::new(move || {
            let q = Queue::<Vec<u64>>::open_or_create(&n2, None).unwrap();
            Event::open(&started).unwrap().set();
            for i in 0..u64::MAX {
                // Messages of varied sizes, so a kill lands mid-copy too.
                q.put(vec![i; (i % 300) as usize + 1]).unwrap();
            }
        })
        .start()?;
        up.wait_timeout(PATIENCE)?;
        std::thread::sleep(Duration::from_millis(5 + round * 7));
        creator.kill()?;
        assert!(creator.join().is_err());

        let q = Queue::<Vec<u64>>::open(&name)?;
        let mut next = 0u64;
        while let Ok(m) = q.try_get() {
            assert_eq!(m, vec![next; (next % 300) as usize + 1], "round {round}");
            next += 1;
        }
        assert!(next > 0, "round {round}: the creator put nothing in time");
        // The dead producer's side lock is taken over; the queue works for the next ones.
        q.put_timeout(vec![7], PATIENCE)
            .map_err(|e| e.to_string())?;
        let again = Queue::<Vec<u64>>::open(&name)?;
        assert_eq!(again.get_timeout(PATIENCE)?, vec![7]);
        Queue::<Vec<u64>>::unlink(&name)?;
    }
    Ok(())
}

fn value_by_name() -> TestResult {
    let name = common::unique_name("v");
    let _names = Names(vec![name.clone()]);
    let v = Value::<u64>::create(&name, 5)?;
    // Another size under the name is refused, not reinterpreted.
    assert_eq!(
        io_kind(Value::<u8>::open(&name)),
        std::io::ErrorKind::InvalidData
    );
    let mut children = Vec::new();
    for _ in 0..3 {
        let n2 = name.clone();
        children.push(
            Process::new(move || {
                let v = Value::<u64>::open(&n2).unwrap();
                for _ in 0..1000 {
                    v.fetch_add(1);
                }
            })
            .start()?,
        );
    }
    for mut c in children {
        c.join()?;
    }
    assert_eq!(v.load(), 3005);
    assert_eq!(Value::<u64>::open_or_create(&name, 0)?.load(), 3005);
    Value::<u64>::unlink(&name)?;
    Ok(())
}

fn joinable_by_name() -> TestResult {
    let name = common::unique_name("jq");
    let _names = Names(vec![name.clone()]);
    let jobs = JoinableQueue::<u32>::create(&name, None)?;
    for i in 0..20 {
        jobs.put(i).map_err(|e| e.to_string())?;
    }
    let n2 = name.clone();
    let mut worker = Process::new(move || {
        let jobs = JoinableQueue::<u32>::open(&n2).unwrap();
        let mut sum = 0;
        for _ in 0..20 {
            sum += jobs.get().unwrap();
            jobs.task_done().unwrap();
        }
        sum
    })
    .start()?;
    jobs.join_timeout(PATIENCE)?;
    assert_eq!(worker.join()?, (0..20).sum::<u32>());
    // The same ring opened as a SimpleQueue by another program: one queue.
    let simple = SimpleQueue::<u32>::open(&name)?;
    simple.put(99)?;
    assert_eq!(jobs.get()?, 99);
    JoinableQueue::<u32>::unlink(&name)?;
    Ok(())
}

/// The names of [`five_more_in_a_spawned_program`]'s objects: all a spawned program gets.
type FiveNames = (String, String, String, String, String);

/// A program of its own (started by exec under `Spawn`, so it shares no memory and no
/// handle with the test): it opens each object by name and reports what it saw.
fn five_more_peer((r, b, c, bar, a): FiveNames) -> Result<(bool, bool, bool, u32, u64), String> {
    let fail = |e: Error| e.to_string();
    let rlock = RLock::open(&r).map_err(fail)?;
    let bounded = BoundedSemaphore::open(&b).map_err(fail)?;
    let cond = Condition::open(&c).map_err(fail)?;
    let barrier = Barrier::open(&bar).map_err(fail)?;
    let array = Array::<u64>::open(&a).map_err(fail)?;
    // RL: the test holds the rlock (two levels): another process may not take it.
    let rlock_was_held = matches!(rlock.try_lock(), Err(LockError::WouldBlock));
    // The bound is the creator's: one release fits (the test holds the unit), a second not.
    bounded.release().map_err(fail)?;
    let second_release_refused = matches!(bounded.release(), Err(Error::InvalidState(_)));
    for i in 0..array.len() {
        array.set(i, 10 + i as u64).map_err(fail)?;
    }
    barrier.wait_timeout(PATIENCE).map_err(fail)?;
    // The test sets the array's first element under the condition's lock and notifies.
    let guard = cond.lock().map_err(|e| e.to_string())?;
    let notified = match cond.wait_while_timeout(guard, PATIENCE, || array.get(0).ok() != Some(99))
    {
        Ok(g) => {
            drop(g);
            true
        }
        Err(WaitError::Timeout(_)) => false,
        Err(e) => return Err(format!("{e:?}")),
    };
    // The test released the rlock before notifying.
    let level = rlock.lock_timeout(PATIENCE).map_err(|e| e.to_string())?;
    drop(level);
    Ok((
        rlock_was_held,
        second_release_refused,
        notified,
        barrier.parties(),
        array.get(array.len() - 1).map_err(fail)?,
    ))
}

/// Issue 11, item 5: RLock, BoundedSemaphore, Condition, Barrier and Array by name, between
/// this test and a program started by exec that knows only the names.
fn five_more_in_a_spawned_program() -> TestResult {
    let names: FiveNames = (
        common::unique_name("rlock"),
        common::unique_name("bsem"),
        common::unique_name("cond"),
        common::unique_name("barrier"),
        common::unique_name("array"),
    );
    let _names = Names(vec![
        names.0.clone(),
        names.1.clone(),
        names.2.clone(),
        names.3.clone(),
        names.4.clone(),
    ]);
    let rlock = RLock::create(&names.0)?;
    let bounded = BoundedSemaphore::create(&names.1, 1)?;
    let cond = Condition::create(&names.2)?;
    let barrier = Barrier::create(&names.3, 2)?;
    let array = Array::<u64>::create(&names.4, 4)?;
    let outer = rlock.lock().map_err(Error::from)?;
    let inner = rlock.lock().map_err(Error::from)?;
    bounded.acquire_timeout(PATIENCE)?;
    let mut peer = Process::run_fn(five_more_peer, names.clone())
        .start_method(StartMethod::Spawn)
        .start()?;
    barrier.wait_timeout(PATIENCE)?;
    // What the other program did before the barrier is seen here.
    assert_eq!(bounded.value(), 1, "its release reached this process");
    assert_eq!(array.to_vec(), [10, 11, 12, 13]);
    drop(inner);
    drop(outer);
    {
        let _held = cond.lock().map_err(Error::from)?;
        array.set(0, 99)?;
        cond.notify_all()?;
    }
    let (held, refused, notified, parties, last) = peer.join()??;
    assert!(held, "the rlock held here was held there");
    assert!(refused, "the bound was the creator's");
    assert!(notified, "the notify reached the other program's wait");
    assert_eq!((parties, last), (2, 13));
    Ok(())
}

fn five_more_create_open_unlink() -> TestResult {
    let (r, b, c, bar, a) = (
        common::unique_name("r"),
        common::unique_name("b"),
        common::unique_name("c"),
        common::unique_name("bar"),
        common::unique_name("a"),
    );
    let _names = Names(vec![
        r.clone(),
        b.clone(),
        c.clone(),
        bar.clone(),
        a.clone(),
    ]);
    let plain = common::unique_name("plain");
    let _plain = Names(vec![plain.clone()]);
    assert_eq!(io_kind(RLock::open(&r)), std::io::ErrorKind::NotFound);
    assert_eq!(io_kind(Barrier::open(&bar)), std::io::ErrorKind::NotFound);
    assert_eq!(
        io_kind(Array::<u32>::open(&a)),
        std::io::ErrorKind::NotFound
    );
    let rlock = RLock::create(&r)?;
    let bounded = BoundedSemaphore::create(&b, 3)?;
    let _cond = Condition::create(&c)?;
    let _barrier = Barrier::create(&bar, 3)?;
    let array = Array::<u32>::create(&a, 5)?;
    for n in [&r, &b, &c, &bar, &a] {
        let mode = std::fs::metadata(format!("/dev/shm/{n}"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{n}");
    }
    assert_eq!(
        io_kind(RLock::create(&r)),
        std::io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        io_kind(Array::<u32>::create(&a, 5)),
        std::io::ErrorKind::AlreadyExists
    );
    // Other kinds, other sizes, other types: refused, never misread.
    assert_eq!(
        io_kind(Condition::open(&r)),
        std::io::ErrorKind::InvalidData
    );
    assert_eq!(io_kind(RLock::open(&c)), std::io::ErrorKind::InvalidData);
    assert_eq!(io_kind(Lock::open(&r)), std::io::ErrorKind::InvalidData);
    assert_eq!(io_kind(Barrier::open(&a)), std::io::ErrorKind::InvalidData);
    assert_eq!(
        io_kind(Barrier::open_or_create(&bar, 4)),
        std::io::ErrorKind::InvalidData
    );
    assert_eq!(
        io_kind(Array::<u32>::open_or_create(&a, 6)),
        std::io::ErrorKind::InvalidData
    );
    assert_eq!(
        io_kind(Array::<[u8; 3]>::open(&a)),
        std::io::ErrorKind::InvalidData
    );
    assert_eq!(
        io_kind(Array::<u64>::open(&bar)),
        std::io::ErrorKind::InvalidData
    );
    // A semaphore made without a bound is not a bounded semaphore; a bounded one opens
    // with its bound.
    Semaphore::create(&plain, 1)?;
    assert_eq!(
        io_kind(BoundedSemaphore::open(&plain)),
        std::io::ErrorKind::InvalidData
    );
    assert_eq!(BoundedSemaphore::open(&b)?.max_value(), 3);
    assert_eq!(BoundedSemaphore::open_or_create(&b, 9)?.max_value(), 3);
    assert!(matches!(
        BoundedSemaphore::create(&common::unique_name("max"), u32::MAX),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Barrier::create(&common::unique_name("zero"), 0),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(Barrier::open(&bar)?.parties(), 3);
    let same = Array::<u32>::open(&a)?;
    assert_eq!(same.len(), 5);
    array.set(4, 7)?;
    assert_eq!(same.get(4)?, 7);
    let other = RLock::open_or_create(&r)?;
    let held = other.lock().map_err(Error::from)?;
    assert!(
        rlock.is_locked() && rlock.is_owned(),
        "the same lock, by name"
    );
    drop(held);
    for bad in ["", "a/b"] {
        assert!(matches!(RLock::create(bad), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            Array::<u8>::create(bad, 1),
            Err(Error::InvalidArgument(_))
        ));
    }
    RLock::unlink(&r)?;
    BoundedSemaphore::unlink(&b)?;
    Condition::unlink(&c)?;
    Barrier::unlink(&bar)?;
    Array::<u32>::unlink(&a)?;
    Semaphore::unlink(&plain)?;
    for n in [&r, &b, &c, &bar, &a, &plain] {
        assert!(
            !std::path::Path::new(&format!("/dev/shm/{n}")).exists(),
            "{n} is gone from /dev/shm"
        );
    }
    assert_eq!(io_kind(Condition::unlink(&c)), std::io::ErrorKind::NotFound);
    // The handles outlive the names.
    bounded.acquire_timeout(PATIENCE)?;
    assert_eq!(same.get(4)?, 7);
    Ok(())
}

/// A named condition is one segment holding its lock and its state: sent through a pipe
/// to a running child, it arrives whole (the child waits on it; the lock is the same).
fn named_condition_travels() -> TestResult {
    let name = common::unique_name("tcond");
    let _names = Names(vec![name.clone()]);
    let cond = Condition::create(&name)?;
    let flag = Value::new(0u32)?;
    let (mut tx, rx) = multiproc::pipe()?;
    let f2 = flag.clone();
    let mut child = Process::new(move || -> Result<bool, String> {
        let mut rx = rx;
        let cond: Condition = rx.recv().map_err(|e| e.to_string())?;
        let lock_too: RLock = rx.recv().map_err(|e| e.to_string())?;
        let guard = cond.lock().map_err(|e| e.to_string())?;
        // The lock that came alone is the condition's: held by this process now.
        let same_lock = lock_too.is_owned();
        f2.store(1);
        let waited = cond
            .wait_while_timeout(guard, PATIENCE, || f2.load() != 2)
            .is_ok();
        Ok(same_lock && waited)
    })
    .start()?;
    tx.send(&cond)?;
    tx.send(cond.get_lock())?;
    let deadline = Instant::now() + PATIENCE;
    while flag.load() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    {
        let _held = cond.lock().map_err(Error::from)?;
        flag.store(2);
        cond.notify_all()?;
    }
    assert!(
        child.join()??,
        "the child waited on the same condition and lock"
    );
    Ok(())
}
