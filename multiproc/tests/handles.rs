//! Handles sent through a `Connection` to a process that is already running (contract items
//! SHM-07, CN-21, QU-20 and the lock families): queues, locks, events, barriers, shared
//! values and shared memory arrive as more handles on the same objects, and leave no
//! descriptor behind.

mod common;

use std::time::Duration;

use common::{test, unique_name, TestResult};
use multiproc::shm::{RawArray, RawValue};
use multiproc::{
    pipe, Array, Barrier, BoundedSemaphore, Condition, Connection, Error, Event, JoinableQueue,
    Lock, LockError, Process, Queue, RLock, Semaphore, SharedMemory, SimpleQueue, StartMethod,
    Value,
};

fn main() {
    common::run(vec![
        test(
            "qu_20_queues_sent_to_a_running_worker_carry_work_both_ways",
            qu_20_queues_to_running_worker,
        ),
        test(
            "lk_03_locks_and_events_sent_to_a_running_child_are_the_same_objects",
            locks_to_running_child,
        ),
        test(
            "shm_07_values_arrays_and_shared_memory_sent_and_written_both_ways",
            shm_07_values_to_running_child,
        ),
        test(
            "a_handle_received_as_another_kind_or_layout_is_refused",
            wrong_kind_refused,
        ),
        test(
            "a_barrier_with_an_action_does_not_travel",
            barrier_action_refused,
        ),
        test(
            "a_handle_put_on_a_queue_is_refused_with_a_clear_error",
            handle_on_queue_refused,
        ),
        test(
            "handles_reach_run_fn_children_under_every_start_method",
            handles_as_run_fn_arguments,
        ),
    ])
}

/// How many descriptors this process has open (exact here: the harness has one thread),
/// after the registry let go of the children that were joined and dropped.
fn open_fds() -> usize {
    let _ = multiproc::active_children();
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Starts a child that receives its handles over a connection, after it is running.
fn running_child<R>(body: fn(Connection) -> R) -> Result<(Connection, multiproc::Child<R>), Error>
where
    R: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let (ctl, ctl_child) = pipe()?;
    let child = Process::new(move || body(ctl_child)).start()?;
    Ok((ctl, child))
}

fn qu_20_queues_to_running_worker() -> TestResult {
    let before = open_fds();
    let (mut ctl, mut child) = running_child(|mut ctl| {
        let jobs: Queue<u32> = ctl.recv().unwrap();
        let results: Queue<u32> = ctl.recv().unwrap();
        let tasks: JoinableQueue<String> = ctl.recv().unwrap();
        let done: SimpleQueue<String> = ctl.recv().unwrap();
        let mut n = 0;
        loop {
            match jobs.get().unwrap() {
                0 => break,
                x => results.put(x * 2).unwrap(),
            }
            n += 1;
        }
        for _ in 0..3 {
            let task = tasks.get().unwrap();
            assert!(task.starts_with("task"));
            tasks.task_done().unwrap();
        }
        done.put(String::from("worker done")).unwrap();
        n
    })?;
    // The queues exist only after the worker started.
    let jobs = Queue::<u32>::new()?;
    let results = Queue::<u32>::new()?;
    let tasks = JoinableQueue::<String>::new()?;
    let done = SimpleQueue::<String>::new()?;
    ctl.send(&jobs)?;
    ctl.send(&results)?;
    ctl.send(&tasks)?;
    ctl.send(&done)?;
    for x in 1..=5 {
        jobs.put(x)?;
    }
    jobs.put(0)?;
    let mut got: Vec<u32> = (0..5)
        .map(|_| results.get_timeout(Duration::from_secs(10)))
        .collect::<Result<_, _>>()?;
    got.sort();
    assert_eq!(got, [2, 4, 6, 8, 10]);
    for i in 0..3 {
        tasks.put(format!("task {i}"))?;
    }
    tasks.join_timeout(Duration::from_secs(10))?;
    assert_eq!(done.get()?, "worker done");
    assert_eq!(child.join()?, 5);
    drop((child, ctl, jobs, results, tasks, done));
    assert_eq!(open_fds(), before, "no descriptor leaked");
    Ok(())
}

fn locks_to_running_child() -> TestResult {
    let before = open_fds();
    let (mut ctl, mut child) = running_child(|mut ctl| {
        let lock: Lock = ctl.recv().unwrap();
        let rlock: RLock = ctl.recv().unwrap();
        let sem: Semaphore = ctl.recv().unwrap();
        let bounded: BoundedSemaphore = ctl.recv().unwrap();
        let cond: Condition = ctl.recv().unwrap();
        let event: Event = ctl.recv().unwrap();
        let barrier: Barrier = ctl.recv().unwrap();
        assert_eq!(bounded.max_value(), 2, "the bound travels");
        let held = lock.lock().unwrap();
        let outer = rlock.lock().unwrap();
        let inner = rlock.lock().unwrap();
        sem.acquire();
        bounded.acquire();
        bounded.acquire();
        let cond_held = cond.lock().unwrap();
        event.set();
        // The parent checks that every one of them is held, then lets go.
        let _: String = ctl.recv().unwrap();
        drop((held, inner, outer, cond_held));
        sem.release().unwrap();
        bounded.release().unwrap();
        barrier.wait().unwrap()
    })?;
    let lock = Lock::new()?;
    let rlock = RLock::new()?;
    let sem = Semaphore::new(1)?;
    let bounded = BoundedSemaphore::new(2)?;
    let cond = Condition::new()?;
    let event = Event::new()?;
    let barrier = Barrier::new(2)?;
    ctl.send(&lock)?;
    ctl.send(&rlock)?;
    ctl.send(&sem)?;
    ctl.send(&bounded)?;
    ctl.send(&cond)?;
    ctl.send(&event)?;
    ctl.send(&barrier)?;
    event.wait_timeout(Duration::from_secs(10))?;
    // LK-03: what the child acquired is held here too.
    assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock)));
    assert!(lock.is_locked());
    assert!(matches!(rlock.try_lock(), Err(LockError::WouldBlock)));
    assert!(matches!(sem.try_acquire(), Err(Error::WouldBlock)));
    assert!(matches!(bounded.try_acquire(), Err(Error::WouldBlock)));
    assert!(matches!(cond.try_lock(), Err(LockError::WouldBlock)));
    ctl.send(&"let go")?;
    let at_barrier = barrier.wait_timeout(Duration::from_secs(10))?;
    assert!(lock.lock_timeout(Duration::from_secs(10)).is_ok());
    assert!(rlock.lock_timeout(Duration::from_secs(10)).is_ok());
    sem.acquire_timeout(Duration::from_secs(10))?;
    assert_eq!(bounded.value(), 1, "the child released one of its two");
    let theirs = child.join()?;
    assert_eq!(at_barrier + theirs, 1, "one party of two is 0, the other 1");
    drop((child, ctl, lock, rlock, sem, bounded, cond, event, barrier));
    assert_eq!(open_fds(), before, "no descriptor leaked");
    Ok(())
}

/// Removes the named block however the test ends.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        if let Ok(shm) = SharedMemory::open(&self.0) {
            let _ = shm.unlink();
        }
    }
}

fn shm_07_values_to_running_child() -> TestResult {
    let before = open_fds();
    let (mut ctl, mut child) = running_child(|mut ctl| {
        let value: Value<u64> = ctl.recv().unwrap();
        let array: Array<i32> = ctl.recv().unwrap();
        let raw_value: RawValue<u32> = ctl.recv().unwrap();
        let raw_array: RawArray<u8> = ctl.recv().unwrap();
        let shm: SharedMemory = ctl.recv().unwrap();
        // What the parent wrote after sending is here.
        let _: String = ctl.recv().unwrap();
        let seen = (
            value.load(),
            array.to_vec(),
            raw_value.load(),
            shm.name().to_owned(),
        );
        *value.lock().unwrap() += 5;
        array.set(1, -42).unwrap();
        raw_value.store(9);
        raw_array.set(3, 7).unwrap();
        shm.write(0, b"from the child").unwrap();
        seen
    })?;
    let name = unique_name("shm07");
    let _unlink = Unlink(name.clone());
    let value = Value::new(1u64)?;
    let array = Array::from_slice(&[1i32, 2, 3])?;
    let raw_value = RawValue::new(0u32)?;
    let raw_array = RawArray::<u8>::new(4)?;
    let shm = SharedMemory::create(&name, 64)?;
    ctl.send(&value)?;
    ctl.send(&array)?;
    ctl.send(&raw_value)?;
    ctl.send(&raw_array)?;
    // The descriptor travels, not just the name: the memory is reached after the unlink.
    shm.unlink()?;
    ctl.send(&shm)?;
    value.store(10);
    array.set(2, 30)?;
    raw_value.store(4);
    ctl.send(&"written")?;
    let (v, a, r, n) = child.join()?;
    assert_eq!((v, a, r, n), (10, vec![1, 2, 30], 4, name.clone()));
    assert_eq!(value.load(), 15);
    assert_eq!(array.to_vec(), [1, -42, 30]);
    assert_eq!(raw_value.load(), 9);
    assert_eq!(raw_array.to_vec(), [0, 0, 0, 7]);
    let mut buf = [0u8; 14];
    shm.read(0, &mut buf)?;
    assert_eq!(&buf, b"from the child");
    drop((child, ctl, value, array, raw_value, raw_array, shm));
    assert_eq!(open_fds(), before, "no descriptor leaked");
    Ok(())
}

fn wrong_kind_refused() -> TestResult {
    let before = open_fds();
    let (mut a, mut b) = pipe()?;
    let refused =
        |e: Error, why: &str| matches!(&e, Error::Codec(c) if c.to_string().contains(why));

    a.send(&Lock::new()?)?;
    let err = b.recv::<Queue<u8>>().unwrap_err();
    assert!(refused(err, "cannot attach"), "a lock is not a queue");
    a.send(&Lock::new()?)?;
    let err = b.recv::<Event>().unwrap_err();
    assert!(refused(err, "different kind"), "a lock is not an event");

    a.send(&Array::<u32>::new(3)?)?;
    let err = b.recv::<Array<u64>>().unwrap_err();
    assert!(
        refused(err, "fits no such object"),
        "12 bytes are no u64 array"
    );

    a.send(&Value::new(1u32)?)?;
    let err = b.recv::<Value<u64>>().unwrap_err();
    let text = err.to_string();
    assert!(refused(err, "cannot attach"), "{text}");
    a.send(&Value::new(1u64)?)?;
    let err = b.recv::<Value<u32>>().unwrap_err();
    let text = err.to_string();
    assert!(refused(err, "layout differs"), "{text}");

    // A plain value where a handle is expected: no descriptor came with it.
    a.send(&(0u32, 0u64))?;
    assert!(b.recv::<Lock>().is_err());

    a.send(&Value::new(2u32)?)?;
    assert_eq!(b.recv::<Value<u32>>()?.load(), 2, "the connection goes on");
    drop((a, b));
    assert_eq!(open_fds(), before, "refused handles leave no descriptor");
    Ok(())
}

fn barrier_action_refused() -> TestResult {
    fn action() {}
    let (mut a, mut b) = pipe()?;
    let err = a.send(&Barrier::with_action(2, action)?).unwrap_err();
    assert!(
        matches!(&err, Error::Codec(e) if e.to_string().contains("action")),
        "{err}"
    );
    let barrier = Barrier::new(3)?.default_timeout(Duration::from_secs(4));
    a.send(&barrier)?;
    let got: Barrier = b.recv()?;
    assert_eq!(got.parties(), 3);
    Ok(())
}

/// A queue's ring carries bytes only: a value holding a handle is refused, and says where
/// handles can go.
fn handle_on_queue_refused() -> TestResult {
    let before = open_fds();
    let queue = Queue::<(u8, Lock)>::new()?;
    match queue.put((1, Lock::new()?)) {
        Err(multiproc::PutError::Failed(_, Error::Codec(e))) => {
            assert!(e.to_string().contains("only travel through"), "{e}")
        }
        other => panic!("expected a codec error, got {other:?}"),
    }
    assert!(queue.is_empty());
    drop(queue);
    assert_eq!(
        open_fds(),
        before,
        "the duplicate taken for the message was closed"
    );
    Ok(())
}

/// What a `run_fn` child gets: a pipe end, a queue, a lock and a shared value, as its
/// argument.
type Kit = (Connection, Queue<u32>, Lock, Value<u64>);

fn noop(_: ()) {}

fn use_kit((mut conn, queue, lock, value): Kit) -> u64 {
    let held = lock.lock().unwrap();
    conn.send(&"holding").unwrap();
    let _: String = conn.recv().unwrap();
    drop(held);
    let mut sum = 0;
    while let Ok(x) = queue.get_timeout(Duration::from_secs(10)) {
        if x == 0 {
            break;
        }
        sum += u64::from(x);
    }
    value.fetch_add(sum);
    sum
}

/// Item 4 of the start-methods issue: handles reach a child as its argument under every
/// start method, and the child keeps only the handles it was given (its end's peer sees EOF
/// once the child is done, whatever the method).
fn handles_as_run_fn_arguments() -> TestResult {
    for method in StartMethod::ALL {
        // The forkserver's own socket stays open once it runs: count from there.
        Process::run_fn(noop, ())
            .start_method(method)
            .start()?
            .join()?;
        let before = open_fds();
        let (mine, theirs) = pipe()?;
        let queue = Queue::<u32>::new()?;
        let lock = Lock::new()?;
        let value = Value::new(100u64)?;
        let mut child = Process::run_fn(
            use_kit,
            (theirs, queue.clone(), lock.clone(), value.clone()),
        )
        .start_method(method)
        .start()?;
        let mut mine = mine;
        assert_eq!(mine.recv::<String>()?, "holding", "{method:?}");
        assert!(
            matches!(lock.try_lock(), Err(LockError::WouldBlock)),
            "{method:?}: the child holds the same lock"
        );
        mine.send(&"go on")?;
        for x in [1, 2, 3, 0] {
            queue.put(x)?;
        }
        assert_eq!(child.join()?, 6, "{method:?}");
        assert_eq!(value.load(), 106, "{method:?}");
        assert!(
            matches!(mine.recv::<String>(), Err(Error::Eof)),
            "{method:?}: the child's end is closed"
        );
        drop((child, mine, queue, lock, value));
        assert_eq!(open_fds(), before, "{method:?}: no descriptor leaked");
    }
    Ok(())
}
