//! The async forms (feature `tokio`) with real processes. Children are forked before a
//! runtime's threads exist (a current-thread runtime adds none), so this file runs on the
//! main-thread harness like the others.

mod common;

use std::time::{Duration, Instant};

use common::{test, TestResult};
use multiproc::{
    pipe, Barrier, Connection, Error, Event, JoinableQueue, Lock, Pool, Process, Queue, Semaphore,
    StartMethod,
};

fn main() {
    common::run(vec![
        test(
            "async_queue_sync_producer_feeds_async_consumer",
            sync_to_async,
        ),
        test(
            "async_queue_async_producer_feeds_sync_consumer",
            async_to_sync,
        ),
        test(
            "async_queue_select_with_a_timeout_loses_no_message",
            select_loses_nothing,
        ),
        test(
            "async_lock_wait_dropped_mid_wait_leaves_no_lock_held",
            lock_cancel,
        ),
        test("async_semaphore_and_event_woken_by_a_child", sem_event),
        test("async_pipe_and_child_join_with_a_child", pipe_and_join),
        test("async_joinable_queue_join_waits_for_task_done", joinable),
        test("async_forms_outside_a_runtime_are_errors", no_runtime),
        test(
            "async_lock_holder_sigkilled_async_locker_gets_owner_died",
            lock_owner_died,
        ),
        test("async_listener_accepts_a_child_client", listener_accept),
        test(
            "async_wake_ups_come_from_the_waker_not_the_periodic_recheck",
            prompt_wake,
        ),
        test(
            "async_one_worker_thread_serves_100_waiting_tasks",
            hundred_tasks,
        ),
        test(
            "async_wake_ups_travel_with_handles_under_every_start_method",
            handles_travel_with_their_wake_ups,
        ),
        test(
            "async_barrier_wait_with_child_parties_and_cancel_breaks_it",
            barrier_async,
        ),
        test(
            "async_pool_result_future_and_imap_stream_hold_no_thread",
            pool_async,
        ),
    ]);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn sync_to_async() -> TestResult {
    let q: Queue<u32> = Queue::bounded(4)?;
    let producer = q.clone();
    let mut child = Process::new(move || {
        for i in 0..500 {
            producer.put(i).unwrap();
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
    .start()?;
    let got = rt().block_on(async {
        let mut got = Vec::new();
        for _ in 0..500 {
            got.push(q.get_async().await.unwrap());
        }
        got
    });
    assert_eq!(got, (0..500).collect::<Vec<_>>());
    child.join()?;
    Ok(())
}

fn async_to_sync() -> TestResult {
    let q: Queue<u32> = Queue::bounded(2)?;
    let consumer = q.clone();
    let mut child = Process::new(move || {
        let mut sum = 0u64;
        for n in 0..300 {
            sum += u64::from(consumer.get().unwrap());
            if n % 100 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        sum
    })
    .start()?;
    rt().block_on(async {
        for i in 0..300 {
            q.put_async(i).await.unwrap();
        }
    });
    assert_eq!(child.join()?, (0..300u64).sum::<u64>());
    Ok(())
}

// Cancellation: a get dropped by `select!` when the timer wins has taken nothing.
fn select_loses_nothing() -> TestResult {
    let q: Queue<u32> = Queue::new()?;
    let producer = q.clone();
    let mut child = Process::new(move || {
        for i in 0..200 {
            producer.put(i).unwrap();
            if i % 7 == 0 {
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    })
    .start()?;
    let (got, timeouts) = rt().block_on(async {
        let (mut got, mut timeouts) = (Vec::new(), 0);
        while got.len() < 200 {
            tokio::select! {
                v = q.get_async() => got.push(v.unwrap()),
                () = tokio::time::sleep(Duration::from_millis(1)) => timeouts += 1,
            }
        }
        (got, timeouts)
    });
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    assert!(timeouts > 0, "the timer never won: the test proves nothing");
    assert!(matches!(q.try_get(), Err(multiproc::Error::Empty)));
    child.join()?;

    // A put cancelled while it waits for room has put nothing: a child that drains the
    // full queue later finds only what was there.
    let full: Queue<u32> = Queue::bounded(2)?;
    full.put(1)?;
    full.put(2)?;
    rt().block_on(async {
        tokio::select! {
            r = full.put_async(3) => panic!("the queue is full: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    });
    let drain = full.clone();
    let mut drainer = Process::new(move || {
        let mut seen = Vec::new();
        while let Ok(v) = drain.get_timeout(Duration::from_millis(200)) {
            seen.push(v);
        }
        seen
    })
    .start()?;
    assert_eq!(
        drainer.join()?,
        [1, 2],
        "the cancelled put left nothing behind"
    );
    Ok(())
}

fn lock_cancel() -> TestResult {
    let lock = Lock::new()?;
    let held = Event::new()?;
    let (l2, h2) = (lock.clone(), held.clone());
    let mut child = Process::new(move || {
        let _g = l2.lock().unwrap();
        h2.set();
        std::thread::sleep(Duration::from_millis(300));
    })
    .start()?;
    rt().block_on(async {
        held.wait_async().await.unwrap();
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_millis(50), lock.lock_async()).await;
        assert!(r.is_err(), "the child holds the lock");
        assert!(t.elapsed() >= Duration::from_millis(50));
        let g = lock.lock_async().await.unwrap();
        assert_eq!(lock.owner_pid(), Some(multiproc::current_process().pid()));
        drop(g);
    });
    assert!(!lock.is_locked(), "no lock is left held");
    child.join()?;
    Ok(())
}

fn sem_event() -> TestResult {
    let sem = Semaphore::new(0)?;
    let ev = Event::new()?;
    let (s2, e2) = (sem.clone(), ev.clone());
    let mut child = Process::new(move || {
        std::thread::sleep(Duration::from_millis(50));
        s2.release().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        e2.set();
    })
    .start()?;
    rt().block_on(async {
        let r = tokio::time::timeout(Duration::from_millis(10), sem.acquire_async()).await;
        assert!(r.is_err());
        sem.acquire_async().await.unwrap();
        ev.wait_async().await.unwrap();
    });
    assert_eq!(sem.value(), 0);
    child.join()?;
    Ok(())
}

fn pipe_and_join() -> TestResult {
    let (mut here, mut there) = pipe()?;
    let mut child = Process::new(move || {
        let (a, b): (i32, i32) = there.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        there.send(&(a + b)).unwrap();
        there.send_bytes(b"raw").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        String::from("done")
    })
    .start()?;
    rt().block_on(async {
        here.send_async(&(10, 20)).await.unwrap();
        // A receive cancelled while it waits consumes nothing.
        let early = tokio::time::timeout(Duration::from_millis(5), here.recv_async::<i32>()).await;
        assert!(early.is_err());
        here.poll_async().await.unwrap();
        assert_eq!(here.recv_async::<i32>().await.unwrap(), 30);
        assert_eq!(here.recv_bytes_async().await.unwrap(), b"raw");
        let early = tokio::time::timeout(Duration::from_millis(5), child.join_async()).await;
        assert!(early.is_err());
        assert_eq!(child.join_async().await.unwrap(), "done");
        assert!(here.recv_async::<i32>().await.unwrap_err().is_eof());
    });
    Ok(())
}

fn joinable() -> TestResult {
    let q: JoinableQueue<u32> = JoinableQueue::new()?;
    for i in 0..10 {
        q.put(i)?;
    }
    let worker = q.clone();
    let mut child = Process::new(move || {
        for _ in 0..10 {
            worker.get().unwrap();
            std::thread::sleep(Duration::from_millis(5));
            worker.task_done().unwrap();
        }
    })
    .start()?;
    rt().block_on(async { q.join_async().await.unwrap() });
    assert!(q.try_join().is_ok());
    child.join()?;
    Ok(())
}

fn no_runtime() -> TestResult {
    let q: Queue<u32> = Queue::new()?;
    // A future polled by hand outside tokio: a clear error, no panic.
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(q.get_async());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(e)) => assert!(e.to_string().contains("tokio runtime")),
        other => panic!("expected an error, got {other:?}"),
    }
    Ok(())
}

use std::future::Future;

// No async form holds a thread: one worker thread serves 100 tasks waiting at once on
// queues, locks, semaphores, events, pipes, a barrier, a listener and a child; the child
// releases them all.
fn hundred_tasks() -> TestResult {
    let q: Queue<u32> = Queue::new()?;
    let lock = Lock::new()?;
    let sem = Semaphore::new(0)?;
    let ev = Event::new()?;
    let start = Event::new()?;
    // The child is the barrier's sixth party, and the listener's one client.
    let barrier = Barrier::new(6)?;
    let address = format!("unix:@multiproc-async-100-{}", std::process::id());
    let listener = multiproc::connection::Listener::bind(address.as_str(), Some(b"key"))?;
    let mut ends = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..14 {
        let (a, b) = pipe()?;
        ends.push(a);
        theirs.push(b);
    }
    let (q2, l2, s2, e2, st2) = (
        q.clone(),
        lock.clone(),
        sem.clone(),
        ev.clone(),
        start.clone(),
    );
    let b2 = barrier.clone();
    let guard = l2.lock().unwrap();
    let mut child = Process::new(move || {
        let mut theirs = theirs;
        st2.wait();
        for i in 0..20 {
            q2.put(i).unwrap();
            s2.release().unwrap();
        }
        for end in &mut theirs {
            end.send(&1u8).unwrap();
        }
        e2.set();
        b2.wait_timeout(Duration::from_secs(10)).unwrap();
        let mut c = multiproc::connection::Client::connect(address.as_str(), Some(b"key")).unwrap();
        c.send(&2u8).unwrap();
    })
    .start()?;
    let mut sleeper = Process::new(|| std::thread::sleep(Duration::from_millis(300))).start()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let done = rt.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let q = q.clone();
            tasks.spawn(async move { q.get_async().await.map(|_| ()) });
            let sem = sem.clone();
            tasks.spawn(async move { sem.acquire_async().await });
            let ev = ev.clone();
            tasks.spawn(async move { ev.wait_async().await });
            let lock = lock.clone();
            tasks.spawn(async move { lock.lock_async().await.map(drop).map_err(Into::into) });
        }
        for mut end in ends {
            tasks.spawn(async move { end.recv_async::<u8>().await.map(drop) });
        }
        for _ in 0..5 {
            let barrier = barrier.clone();
            tasks.spawn(async move { barrier.wait_async().await.map(drop) });
        }
        tasks.spawn(async move {
            let mut conn = listener.accept_async().await?;
            assert_eq!(conn.recv_async::<u8>().await?, 2);
            Ok(())
        });
        let sleeper = tokio::spawn(async move { sleeper.join_async().await });
        // Let every task reach its wait, then release them.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(tasks.len(), 100);
        start.set();
        drop(guard);
        let mut done = 0;
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
            done += 1;
        }
        sleeper.await.unwrap().unwrap();
        done
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    assert_eq!(done, 100);
    child.join()?;
    Ok(())
}

// DD-02 for the async form: a holder killed inside the lock wakes nobody; the async
// locker's periodic re-check finds it dead and takes the lock.
fn lock_owner_died() -> TestResult {
    let lock = Lock::new()?;
    let held = Event::new()?;
    let (l2, h2) = (lock.clone(), held.clone());
    let child = Process::new(move || {
        let _g = l2.lock().unwrap();
        h2.set();
        std::thread::sleep(Duration::from_secs(60));
    })
    .start()?;
    held.wait();
    rt().block_on(async {
        let waiting = tokio::spawn({
            let lock = lock.clone();
            async move {
                matches!(
                    lock.lock_async().await,
                    Err(multiproc::LockError::OwnerDied(_))
                )
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        child.kill().unwrap();
        let died = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(died.expect("found within the liveness period").unwrap());
    });
    assert!(!lock.is_locked(), "the guard was dropped");
    Ok(())
}

fn listener_accept() -> TestResult {
    let dir = common::TempDir::new("async-listener")?;
    let path = dir.path().join("s.sock");
    let address = format!("unix:{}", path.display());
    let listener = multiproc::connection::Listener::bind(address.as_str(), Some(b"key"))?;
    let to = address.clone();
    let mut child = Process::new(move || {
        std::thread::sleep(Duration::from_millis(30));
        let mut c = multiproc::connection::Client::connect(to.as_str(), Some(b"key")).unwrap();
        c.send(&7u32).unwrap();
    })
    .start()?;
    let got = rt().block_on(async {
        let mut conn = listener.accept_async().await.unwrap();
        conn.recv_async::<u32>().await.unwrap()
    });
    assert_eq!(got, 7);
    child.join()?;
    Ok(())
}

// The wakers write the eventfd: 40 hand-offs each awaited by an async get and an async
// event wait take far less than the 100 ms periodic re-check would make them take (about
// 4 s without the wake-ups).
fn prompt_wake() -> TestResult {
    let ping: Queue<u32> = Queue::new()?;
    let pong: Queue<u32> = Queue::new()?;
    let ev = Event::new()?;
    let (ping2, pong2, ev2) = (ping.clone(), pong.clone(), ev.clone());
    let mut child = Process::new(move || {
        for i in 0..40 {
            std::thread::sleep(Duration::from_millis(1));
            ping2.put(i).unwrap();
            assert_eq!(pong2.get().unwrap(), i);
        }
        std::thread::sleep(Duration::from_millis(1));
        ev2.set();
    })
    .start()?;
    let t = Instant::now();
    rt().block_on(async {
        for i in 0..40 {
            assert_eq!(ping.get_async().await.unwrap(), i);
            pong.put_async(i).await.unwrap();
        }
        ev.wait_async().await.unwrap();
    });
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "40 hand-offs took {took:?}"
    );
    child.join()?;
    Ok(())
}

/// Hand-offs in each direction of [`handles_travel_with_their_wake_ups`].
const TRAVEL_HAND_OFFS: u32 = 30;

/// The child of [`handles_travel_with_their_wake_ups`]: its event and lock came as its
/// argument, its queues through the connection; it awaits each of them.
fn await_received_handles((mut conn, ev, lock): (Connection, Event, Lock)) -> u32 {
    let (ping, pong): (Queue<u32>, Queue<u32>) = conn.recv().unwrap();
    let rt = rt();
    rt.block_on(async {
        conn.send_async(&"ready").await.unwrap();
        for _ in 0..TRAVEL_HAND_OFFS {
            let v = ping.get_async().await.unwrap();
            pong.put(v).unwrap();
        }
        ev.wait_async().await.unwrap();
        drop(lock.lock_async().await.unwrap());
    });
    TRAVEL_HAND_OFFS
}

// Handles travel (the start-methods issue, item 4) with the eventfd of their async waiters:
// under every start method a child that got a queue, an event and a lock (as its argument
// or through a Connection) is woken at once by the parent's sync calls, and the parent's
// async get at once by the child's sync put. Each hand-off waits 5 ms first, so both sides
// sleep in their reactors; a side that did not share the other's eventfd would only see
// the change at its 100 ms re-check (3 s for the 30 hand-offs instead of about 0.2 s).
fn handles_travel_with_their_wake_ups() -> TestResult {
    for method in StartMethod::ALL {
        let (mut mine, theirs) = pipe()?;
        let (ping, pong): (Queue<u32>, Queue<u32>) = (Queue::new()?, Queue::new()?);
        let (ev, lock) = (Event::new()?, Lock::new()?);
        let held = lock.lock().unwrap();
        let mut child = Process::run_fn(await_received_handles, (theirs, ev.clone(), lock.clone()))
            .start_method(method)
            .start()?;
        mine.send(&(ping.clone(), pong.clone()))?;
        let took = rt().block_on(async {
            assert_eq!(mine.recv_async::<String>().await.unwrap(), "ready");
            let t = Instant::now();
            for i in 0..TRAVEL_HAND_OFFS {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ping.put(i).unwrap();
                assert_eq!(pong.get_async().await.unwrap(), i, "{method:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            ev.set();
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(held);
            (child.join_async().await, t.elapsed())
        });
        assert_eq!(took.0?, TRAVEL_HAND_OFFS, "{method:?}");
        assert!(
            took.1 < Duration::from_millis(1500),
            "{method:?}: {} hand-offs, an event and a lock took {:?}: a wake-up did not travel",
            TRAVEL_HAND_OFFS,
            took.1
        );
        assert!(
            !lock.is_locked(),
            "{method:?}: the child's guard was dropped"
        );
    }
    Ok(())
}

// BA items for the async form: two child parties wait synchronously, the parent awaits;
// all three pass one round with distinct indices. Then the parent's wait is cancelled
// (a `select!` timer wins): the barrier breaks, as for a sync wait whose time ran out, and
// the child waiting in the next round gets BrokenBarrier.
fn barrier_async() -> TestResult {
    let barrier = Barrier::new(3)?;
    let mut children = Vec::new();
    for _ in 0..2 {
        let b = barrier.clone();
        children.push(Process::new(move || b.wait().unwrap()).start()?);
    }
    let mine = rt().block_on(async { barrier.wait_async().await })?;
    let mut indices = vec![mine];
    for mut child in children {
        indices.push(child.join()?);
    }
    indices.sort_unstable();
    assert_eq!(indices, [0, 1, 2]);

    let b = barrier.clone();
    let mut late = Process::new(move || {
        std::thread::sleep(Duration::from_millis(50));
        matches!(
            b.wait_timeout(Duration::from_secs(5)),
            Err(Error::BrokenBarrier)
        )
    })
    .start()?;
    rt().block_on(async {
        tokio::select! {
            r = barrier.wait_async() => panic!("the round cannot pass with two parties: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    });
    assert!(barrier.is_broken(), "the dropped wait broke the barrier");
    assert!(late.join()?, "the next party saw the barrier broken");
    barrier.reset();
    assert_eq!(barrier.n_waiting(), 0);
    Ok(())
}

fn slow_double(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x * 2
}

fn square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x * x
}

// Pool results awaited from a runtime with one worker thread: an `AsyncResult` is a Future
// and `imap` a Stream, and while they wait a ticker task on the same thread keeps running
// (a form that blocked its thread would stop it). The pool's workers are real processes.
fn pool_async() -> TestResult {
    let pool = Pool::new(2)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (doubled, squares, ticks) = rt.block_on(async {
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        let results = (0..4u64)
            .map(|x| pool.apply_async(slow_double, x))
            .collect::<multiproc::Result<Vec<_>>>()
            .unwrap();
        let mut doubled = Vec::new();
        for r in results {
            doubled.push(r.await.unwrap());
        }
        let mut stream = pool.imap(square, 0..20u64).unwrap();
        let mut squares = Vec::new();
        while let Some(v) = stream.next_async().await {
            squares.push(v.unwrap());
        }
        ticker.abort();
        (
            doubled,
            squares,
            ticks.load(std::sync::atomic::Ordering::Relaxed),
        )
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    assert_eq!(doubled, [0, 2, 4, 6]);
    assert_eq!(squares, (0..20u64).map(|x| x * x).collect::<Vec<_>>());
    // Two rounds of 100 ms tasks on two workers: about 40 ticks of 5 ms while waiting.
    assert!(
        ticks >= 10,
        "the ticker ran {ticks} times: a wait held the thread"
    );
    pool.close();
    pool.join()?;
    Ok(())
}
