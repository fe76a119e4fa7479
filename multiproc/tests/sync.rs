//! Process-shared synchronisation with real processes: Lock, RLock, Semaphore, Condition,
//! Event, Barrier (contract sections LK, RL, SM, CD, EV, BR; weakness W5, item DD-02).

mod common;

use std::time::{Duration, Instant};

use common::{test, TestResult};
use multiproc::process::send_signal;
use multiproc::shm::RawValue;
use multiproc::Acquired;
use multiproc::{
    current_process, Barrier, BoundedSemaphore, Condition, Error, Event, Lock, Process, RLock,
    Semaphore, Signal, Value,
};
use multiproc::{LockError, WaitError};

fn main() {
    common::run(vec![
        test("lk_03_lock_taken_in_a_child_is_locked_in_the_parent", lk_03),
        test("lk_04_a_child_may_release_the_parents_lock", lk_04),
        test(
            "lk_05_child_waits_at_least_its_timeout_for_the_parents_lock",
            lk_05,
        ),
        test(
            "dd_02_w5_lock_holder_sigkilled_next_locker_gets_owner_died_within_1s",
            lock_owner_died,
        ),
        test(
            "dd_02_w5_rlock_holder_sigkilled_next_locker_gets_owner_died",
            rlock_owner_died,
        ),
        test(
            "rlock_owner_thread_exits_holding_it_next_locker_gets_owner_died",
            rlock_owner_thread_exited,
        ),
        test(
            "dd_02_w5_condition_lock_holder_sigkilled_waiter_gets_owner_died",
            condition_owner_died,
        ),
        test(
            "dd_02_w5_waiters_all_blocked_on_a_dead_holder_exactly_one_takes_over",
            one_takes_over,
        ),
        test(
            "rl_03_rl_05_child_holds_rlock_parent_sees_it_and_cannot_release",
            rl_05,
        ),
        test(
            "sm_semaphore_limits_five_processes_to_two_at_a_time",
            semaphore_limits,
        ),
        test("sm_03_bounded_semaphore_over_release_from_a_child", sm_03),
        test(
            "cd_condition_producer_consumer_with_timeouts",
            condition_producer_consumer,
        ),
        test("cd_02_notify_all_wakes_every_process", cd_02),
        test("cd_03_notify_n_wakes_exactly_n_processes", cd_03),
        test("ev_03_child_sets_event_parent_wakes", ev_03),
        test(
            "br_01_br_02_three_processes_pass_a_barrier_ten_times",
            barrier_3,
        ),
        test(
            "br_barrier_breaks_when_a_waiting_party_is_sigkilled",
            barrier_broken_by_kill,
        ),
        test("br_10_lockstep_passes_never_get_ahead", br_10),
        test(
            "dd_02_review_bug3_lock_timeout_50ms_and_try_find_a_sigkilled_holder_at_once",
            lock_short_waits_find_dead_holder,
        ),
        test(
            "dd_02_review_bug3_rlock_timeout_50ms_and_try_find_a_sigkilled_holder_at_once",
            rlock_short_waits_find_dead_holder,
        ),
        test(
            "lk_05_timed_lock_succeeds_when_the_holder_releases_after_100ms",
            lk_05_success,
        ),
        test(
            "cd_01_cd_03_review_bug4_notify_goes_to_the_present_waiter_not_to_the_notifier",
            cd_notify_goes_to_present_waiter,
        ),
        test(
            "cd_review_bug4_two_process_ping_pong_200_rounds_on_one_condition",
            cd_ping_pong,
        ),
        test(
            "sm_05_a_released_unit_wakes_a_sleeping_process_within_a_bound",
            sm_05_wake_bound,
        ),
        test(
            "br_04_br_06_parent_abort_breaks_a_waiting_child_and_reset_repairs",
            br_abort_reset_processes,
        ),
        test(
            "br_05_parent_reset_breaks_two_waiting_children",
            br_reset_processes,
        ),
        test(
            "br_07_a_timeout_in_the_parent_breaks_the_barrier_for_a_waiting_child",
            br_timeout_processes,
        ),
        test(
            "br_03_an_action_capturing_a_shared_value_runs_once_per_round",
            br_action_processes,
        ),
    ])
}

/// The `Value<u32>` a child sets to say where it is.
fn flag() -> Result<Value<u32>, Error> {
    Value::new(0u32)
}

fn wait_for(v: &Value<u32>, want: u32) -> TestResult {
    if common::eventually(Duration::from_secs(10), || v.load() == want) {
        Ok(())
    } else {
        Err(format!("the child never reached step {want}").into())
    }
}

// The children of these tests are `run_fn` functions, so the start-method matrix of
// `.ci/run` runs them under fork, forkserver and spawn: the lock, value, semaphore,
// condition, event or barrier travels as the argument. One child stays a closure: BR-03's
// (`br_action_processes`), whose barrier carries an action, a closure of this process
// that cannot travel (`Barrier` refuses to serialize it).

/// A holder (see `common::start_holder`) that takes the lock and forgets the guard.
fn hold_lock((l, holding): (Lock, common::Holding)) {
    std::mem::forget(l.lock().unwrap());
    holding.keep();
}

/// A holder that takes the RLock `depth` times and forgets the guards.
fn hold_rlock(((r, depth), holding): ((RLock, u32), common::Holding)) {
    for _ in 0..depth {
        std::mem::forget(r.lock().unwrap());
    }
    holding.keep();
}

/// Takes the lock, says so with step 1, holds it until step 2.
fn hold_until_step_2((l, s): (Lock, Value<u32>)) {
    let g = l.lock().unwrap();
    s.store(1);
    while s.load() != 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(g);
}

fn lk_03() -> TestResult {
    let lock = Lock::new()?;
    let step = flag()?;
    let mut child = Process::run_fn(hold_until_step_2, (lock.clone(), step.clone())).start()?;
    wait_for(&step, 1)?;
    assert!(lock.is_locked());
    assert_eq!(lock.owner_pid(), Some(child.pid()));
    assert!(lock.try_lock().is_err());
    step.store(2);
    child.join()?;
    assert!(!lock.is_locked());
    Ok(())
}

fn lk_04() -> TestResult {
    let lock = Lock::new()?;
    let _ = lock.acquire()?;
    fn release(l: Lock) -> bool {
        l.release().is_ok()
    }
    assert!(Process::run_fn(release, lock.clone()).start()?.join()?);
    assert!(!lock.is_locked());
    let second = !Process::run_fn(release, lock.clone()).start()?.join()?;
    assert!(second, "LK-01: releasing an unlocked lock is an error");
    Ok(())
}

fn lk_05() -> TestResult {
    let lock = Lock::new()?;
    let _g = lock.lock().map_err(Error::from)?;
    fn acquire_200_ms(l: Lock) -> (bool, Duration) {
        let t = Instant::now();
        let timed_out = matches!(
            l.acquire_timeout(Duration::from_millis(200)),
            Err(Error::Timeout)
        );
        (timed_out, t.elapsed())
    }
    let waited = Process::run_fn(acquire_200_ms, lock.clone())
        .start()?
        .join()?;
    assert!(waited.0);
    assert!(waited.1 >= Duration::from_millis(200));
    Ok(())
}

fn lock_owner_died() -> TestResult {
    let lock = Lock::new()?;
    let mut holder = common::start_holder(hold_lock, lock.clone())?;
    holder.kill()?;
    let killed = Instant::now();
    // A forked holder is a zombie until joined (a forkserver one is reaped by the server):
    // the lock must see it as dead all the same.
    let guard = match lock.lock_timeout(Duration::from_secs(1)) {
        Err(LockError::OwnerDied(g)) => g,
        Err(e) => return Err(format!("no OwnerDied within 1 s of the kill: {e}").into()),
        Ok(_) => return Err("the dead holder's lock was taken as if free".into()),
    };
    eprintln!("OwnerDied after {:?}", killed.elapsed());
    assert_eq!(lock.owner_pid(), Some(current_process().pid()));
    drop(guard);
    assert!(!lock.is_locked());
    // Only the first locker after the death is told.
    drop(lock.lock().map_err(|_| "the lock stayed poisoned")?);
    assert!(matches!(holder.join(), Err(Error::Signaled(_))));
    Ok(())
}

fn rlock_owner_died() -> TestResult {
    let rlock = RLock::new()?;
    let mut holder = common::start_holder(hold_rlock, (rlock.clone(), 2))?;
    holder.kill()?;
    let g = rlock
        .lock_timeout(Duration::from_secs(1))
        .err()
        .and_then(LockError::into_inner)
        .ok_or("no OwnerDied within 1 s")?;
    assert_eq!(rlock.depth(), 1, "the dead owner's depth is not inherited");
    drop(g);
    assert!(!rlock.is_locked());
    let _ = holder.join();
    Ok(())
}

fn rlock_owner_thread_exited() -> TestResult {
    let rlock = RLock::new()?;
    // In a child (the harness process must stay single-threaded): a thread takes the RLock
    // and ends without releasing it; the process lives on, the owner (a thread) is gone.
    fn lock_after_the_owner_thread_ended(r: RLock) -> bool {
        let r2 = r.clone();
        std::thread::spawn(move || std::mem::forget(r2.lock().unwrap()))
            .join()
            .unwrap();
        matches!(
            r.lock_timeout(Duration::from_secs(5)),
            Err(LockError::OwnerDied(_))
        )
    }
    let died = Process::run_fn(lock_after_the_owner_thread_ended, rlock.clone())
        .start()?
        .join()?;
    assert!(died, "the exited owner thread was not detected");
    Ok(())
}

fn condition_owner_died() -> TestResult {
    let cond = Condition::new()?;
    let step = flag()?;
    // The waiter is the parent: it waits; the child takes the lock, notifies, and is
    // SIGKILLed (by itself) while holding it, so the waiter's relock finds a dead holder.
    fn notify_and_die_holding((c, s): (Condition, Value<u32>)) {
        while s.load() != 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let g = c.lock().unwrap();
        c.notify_all().unwrap();
        std::mem::forget(g);
        std::thread::sleep(Duration::from_millis(50));
        send_signal(current_process().pid(), Signal::KILL).unwrap();
    }
    let mut child =
        Process::run_fn(notify_and_die_holding, (cond.clone(), step.clone())).start()?;
    let g = cond.lock().map_err(Error::from)?;
    step.store(1);
    let t = Instant::now();
    let outcome = cond.wait_timeout(g, Duration::from_secs(30));
    match outcome {
        Err(WaitError::OwnerDied(g)) => drop(g),
        Ok(_) => {
            // The notify came before the child died; the next lock must report the death.
            assert!(cond.lock().is_err_and(|e| e.is_owner_died()));
        }
        Err(e) => return Err(format!("wait failed: {e}").into()),
    }
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "waited out the whole timeout"
    );
    assert!(matches!(child.join(), Err(Error::Signaled(Signal::KILL))));
    Ok(())
}

fn one_takes_over() -> TestResult {
    let lock = Lock::new()?;
    let count = Value::new(0u32)?;
    let mut holder = common::start_holder(hold_lock, lock.clone())?;
    /// Waits for the lock and counts the death if it is told of it.
    fn lock_and_count_owner_died((l, count): (Lock, Value<u32>)) {
        let died = match l.lock() {
            Ok(_) => false,
            Err(e) => e.is_owner_died(),
        };
        if died {
            count.fetch_add(1);
        }
    }
    let waiters: Vec<_> = (0..3)
        .map(|_| Process::run_fn(lock_and_count_owner_died, (lock.clone(), count.clone())).start())
        .collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_millis(50));
    holder.kill()?;
    for mut w in waiters {
        w.join()?;
    }
    assert_eq!(count.load(), 1, "exactly one waiter learns of the death");
    let _ = holder.join();
    Ok(())
}

fn rl_05() -> TestResult {
    let rlock = RLock::new()?;
    let step = flag()?;
    fn hold_twice_until_step_2((r, s): (RLock, Value<u32>)) {
        let _a = r.lock().unwrap();
        let _b = r.lock().unwrap();
        s.store(1);
        while s.load() != 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut child =
        Process::run_fn(hold_twice_until_step_2, (rlock.clone(), step.clone())).start()?;
    wait_for(&step, 1)?;
    assert!(rlock.is_locked());
    assert!(!rlock.is_owned());
    assert_eq!(rlock.depth(), 2);
    assert!(rlock.release().is_err(), "RL-03: not the owner");
    assert!(rlock.try_lock().is_err(), "RL-04");
    step.store(2);
    child.join()?;
    assert!(!rlock.is_locked());
    Ok(())
}

fn semaphore_limits() -> TestResult {
    let sem = Semaphore::new(2)?;
    let inside = Value::new(0u32)?;
    let max_inside = Value::new(0u32)?;
    fn enter_20_times((sem, inside, max_inside): (Semaphore, Value<u32>, Value<u32>)) {
        for _ in 0..20 {
            let _unit = sem.lock();
            let now = inside.fetch_add(1) + 1;
            let mut seen = max_inside.load();
            while now > seen {
                match max_inside.compare_exchange(seen, now) {
                    Ok(_) => break,
                    Err(actual) => seen = actual,
                }
            }
            std::thread::sleep(Duration::from_millis(1));
            inside.fetch_sub(1);
        }
    }
    let children: Vec<_> = (0..5)
        .map(|_| {
            let args = (sem.clone(), inside.clone(), max_inside.clone());
            Process::run_fn(enter_20_times, args).start()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        c.join()?;
    }
    assert_eq!(
        max_inside.load(),
        2,
        "never more than 2 inside, and 2 at some point"
    );
    assert_eq!(sem.value(), 2);
    Ok(())
}

fn sm_03() -> TestResult {
    let sem = BoundedSemaphore::new(1)?;
    sem.acquire();
    fn release_twice(s: BoundedSemaphore) -> (bool, bool) {
        (s.release().is_ok(), s.release().is_err())
    }
    let results = Process::run_fn(release_twice, sem.clone())
        .start()?
        .join()?;
    assert_eq!(results, (true, true));
    assert_eq!(sem.value(), 1);
    Ok(())
}

fn condition_producer_consumer() -> TestResult {
    let cond = Condition::new()?;
    let items = Value::new(0u32)?;
    fn take_5((c, it): (Condition, Value<u32>)) -> (u32, u32) {
        let mut taken = 0;
        let mut timeouts = 0;
        while taken < 5 {
            let g = c.lock().unwrap();
            match c.wait_while_timeout(g, Duration::from_millis(50), || it.load() == 0) {
                Ok(_g) => {
                    it.fetch_sub(1);
                    taken += 1;
                }
                Err(WaitError::Timeout(_g)) => timeouts += 1,
                Err(e) => panic!("{e}"),
            }
        }
        (taken, timeouts)
    }
    let mut consumer = Process::run_fn(take_5, (cond.clone(), items.clone())).start()?;
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(120));
        let g = cond.lock().map_err(Error::from)?;
        items.fetch_add(1);
        cond.notify_one()?;
        drop(g);
    }
    let (taken, timeouts): (u32, u32) = consumer.join()?;
    assert_eq!(taken, 5);
    assert!(
        timeouts >= 5,
        "the consumer timed out between items: {timeouts}"
    );
    assert_eq!(cond.n_waiting(), 0, "CD-11: no phantom sleepers");
    Ok(())
}

fn start_waiters(
    cond: &Condition,
    woken: &Value<u32>,
    n: usize,
) -> Result<Vec<multiproc::Child<()>>, Error> {
    fn wait_once((c, w): (Condition, Value<u32>)) {
        let g = c.lock().unwrap();
        let _g = c.wait(g).unwrap();
        w.fetch_add(1);
    }
    (0..n)
        .map(|_| Process::run_fn(wait_once, (cond.clone(), woken.clone())).start())
        .collect()
}

fn wait_waiting(cond: &Condition, n: u32) -> TestResult {
    if common::eventually(Duration::from_secs(10), || cond.n_waiting() == n) {
        Ok(())
    } else {
        Err(format!("expected {n} waiters, have {}", cond.n_waiting()).into())
    }
}

fn cd_02() -> TestResult {
    let cond = Condition::new()?;
    let woken = Value::new(0u32)?;
    let children = start_waiters(&cond, &woken, 4)?;
    wait_waiting(&cond, 4)?;
    let g = cond.lock().map_err(Error::from)?;
    cond.notify_all()?;
    drop(g);
    for mut c in children {
        c.join()?;
    }
    assert_eq!(woken.load(), 4);
    Ok(())
}

fn cd_03() -> TestResult {
    let cond = Condition::new()?;
    let woken = Value::new(0u32)?;
    let children = start_waiters(&cond, &woken, 6)?;
    wait_waiting(&cond, 6)?;
    let g = cond.lock().map_err(Error::from)?;
    cond.notify(2)?;
    drop(g);
    if !common::eventually(Duration::from_secs(10), || woken.load() == 2) {
        return Err("notify(2) did not wake 2".into());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(woken.load(), 2, "notify(2) woke more than 2");
    assert_eq!(cond.n_waiting(), 4);
    let g = cond.lock().map_err(Error::from)?;
    cond.notify(4)?;
    drop(g);
    for mut c in children {
        c.join()?;
    }
    assert_eq!(woken.load(), 6);
    Ok(())
}

fn ev_03() -> TestResult {
    let ev = Event::new()?;
    fn set_after_100_ms(e: Event) {
        std::thread::sleep(Duration::from_millis(100));
        e.set();
    }
    let mut child = Process::run_fn(set_after_100_ms, ev.clone()).start()?;
    let t = Instant::now();
    ev.wait_timeout(Duration::from_secs(30))?;
    assert!(t.elapsed() >= Duration::from_millis(50));
    child.join()?;
    Ok(())
}

fn barrier_3() -> TestResult {
    let barrier = Barrier::new(3)?;
    let children: Vec<_> = (0..2)
        .map(|_| {
            fn pass_10_times(b: Barrier) -> Vec<u32> {
                (0..10).map(|_| b.wait().unwrap()).collect()
            }
            Process::run_fn(pass_10_times, barrier.clone()).start()
        })
        .collect::<Result<_, _>>()?;
    let mine: Vec<u32> = (0..10).map(|_| barrier.wait()).collect::<Result<_, _>>()?;
    let mut all = vec![mine];
    for mut c in children {
        all.push(c.join()?);
    }
    for pass in 0..10 {
        let mut idx: Vec<u32> = all.iter().map(|v| v[pass]).collect();
        idx.sort_unstable();
        assert_eq!(idx, [0, 1, 2], "pass {pass}: one index each");
    }
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.is_broken());
    Ok(())
}

fn barrier_broken_by_kill() -> TestResult {
    let barrier = Barrier::new(3)?;
    fn wait_at(b: Barrier) {
        let _ = b.wait();
    }
    let mut victim = Process::run_fn(wait_at, barrier.clone()).start()?;
    if !common::eventually(Duration::from_secs(10), || barrier.n_waiting() == 1) {
        return Err("the victim never reached the barrier".into());
    }
    common::kill_dead(&victim)?;
    fn wait_is_err(b: Barrier) -> bool {
        b.wait().is_err()
    }
    let mut other = Process::run_fn(wait_is_err, barrier.clone()).start()?;
    // Bounded so a hang fails the test instead of the watchdog.
    let t = Instant::now();
    assert!(barrier.wait_timeout(Duration::from_secs(30)).is_err());
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "broken only by the timeout"
    );
    assert!(other.join()?, "the other waiter saw the barrier break");
    assert!(barrier.is_broken());
    let _ = victim.join();
    Ok(())
}

fn br_10() -> TestResult {
    const PASSES: u32 = 200;
    let barrier = Barrier::new(3)?;
    let passes = multiproc::Array::<u32>::new(3)?;
    /// Party `me`: says which pass it is at, then waits at the barrier, `PASSES` times.
    fn pass_in_lockstep((me, b, p): (usize, Barrier, multiproc::Array<u32>)) {
        for pass in 0..PASSES {
            p.set(me, pass + 1).unwrap();
            b.wait().unwrap();
        }
    }
    let children: Vec<_> = (1..3)
        .map(|me| Process::run_fn(pass_in_lockstep, (me, barrier.clone(), passes.clone())).start())
        .collect::<Result<_, _>>()?;
    for pass in 0..PASSES {
        passes.set(0, pass + 1)?;
        barrier.wait()?;
        // After the barrier of pass p, nobody is past pass p + 1.
        let seen = passes.to_vec();
        assert!(
            seen.iter().all(|&s| s == pass + 1 || s == pass + 2),
            "pass {pass}: {seen:?}"
        );
    }
    for mut c in children {
        c.join()?;
    }
    Ok(())
}

/// Review bug 3: after the holder is SIGKILLed, a `lock_timeout` shorter than the
/// liveness period must report `OwnerDied` at its first call (it used to say `Timeout`
/// forever), and so must a `try_` form, without waiting.
fn lock_short_waits_find_dead_holder() -> TestResult {
    let lock = Lock::new()?;
    let mut holder = common::start_holder(hold_lock, lock.clone())?;
    common::kill_dead(&holder)?;
    // Forked, still a zombie (not joined): as dead as a reaped holder (what a forkserver
    // child is by now).
    let t = Instant::now();
    match lock.lock_timeout(Duration::from_millis(50)) {
        Err(LockError::OwnerDied(g)) => drop(g),
        Err(e) => return Err(format!("lock_timeout(50 ms) on a dead holder: {e}").into()),
        Ok(_) => return Err("the dead holder's lock was taken as if free".into()),
    }
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(matches!(holder.join(), Err(Error::Signaled(_))));

    // A try, and a guard-less acquire, find the next dead holder at once.
    for form in ["try_lock", "try_acquire", "acquire_timeout"] {
        let mut holder = common::start_holder(hold_lock, lock.clone())?;
        common::kill_dead(&holder)?;
        let t = Instant::now();
        let died = match form {
            "try_lock" => lock.try_lock().is_err_and(|e| e.is_owner_died()),
            "try_acquire" => lock.try_acquire()? == Acquired::OwnerDied,
            _ => lock.acquire_timeout(Duration::from_millis(50))? == Acquired::OwnerDied,
        };
        assert!(died, "{form} did not report the dead holder");
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{form} waited {:?}",
            t.elapsed()
        );
        if form != "try_lock" {
            lock.release()?;
        }
        assert!(!lock.is_locked());
        let _ = holder.join();
    }
    Ok(())
}

/// Review bug 3 for the `RLock` (owned by a thread of the killed process).
fn rlock_short_waits_find_dead_holder() -> TestResult {
    let rlock = RLock::new()?;
    for form in ["lock_timeout", "try_lock", "try_acquire"] {
        let mut holder = common::start_holder(hold_rlock, (rlock.clone(), 1))?;
        common::kill_dead(&holder)?;
        let t = Instant::now();
        let died = match form {
            "lock_timeout" => rlock
                .lock_timeout(Duration::from_millis(50))
                .is_err_and(|e| e.is_owner_died()),
            "try_lock" => rlock.try_lock().is_err_and(|e| e.is_owner_died()),
            _ => {
                let got = rlock.try_acquire()?;
                rlock.release()?;
                got == Acquired::OwnerDied
            }
        };
        assert!(died, "{form} did not report the dead owner");
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{form} waited {:?}",
            t.elapsed()
        );
        assert!(!rlock.is_locked());
        let _ = holder.join();
    }
    Ok(())
}

/// LK-05, the other half: a timed acquire that succeeds. The holder releases 100 ms after
/// it took the lock; `lock_timeout(2 s)` returns the guard soon after.
fn lk_05_success() -> TestResult {
    let lock = Lock::new()?;
    let step = flag()?;
    fn hold_100_ms((l, s): (Lock, Value<u32>)) {
        let g = l.lock().unwrap();
        s.store(1);
        std::thread::sleep(Duration::from_millis(100));
        drop(g);
    }
    let mut child = Process::run_fn(hold_100_ms, (lock.clone(), step.clone())).start()?;
    wait_for(&step, 1)?;
    let t = Instant::now();
    let guard = lock
        .lock_timeout(Duration::from_secs(2))
        .map_err(|e| format!("lock_timeout(2 s) failed: {e}"))?;
    let waited = t.elapsed();
    drop(guard);
    eprintln!("acquired after {waited:?}");
    assert!(waited < Duration::from_secs(1), "took {waited:?}");
    child.join()?;
    Ok(())
}

/// Review bug 4 (CD-01, CD-03): a child waits; the parent notifies once and then waits
/// itself for 300 ms. The notification is the child's; the parent times out.
fn cd_notify_goes_to_present_waiter() -> TestResult {
    for run in 0..5 {
        let cond = Condition::new()?;
        fn wait_10_s(c: Condition) -> String {
            let g = c.lock().unwrap();
            match c.wait_timeout(g, Duration::from_secs(10)) {
                Ok(_) => "notified".to_string(),
                Err(e) => e.to_string(),
            }
        }
        let mut child = Process::run_fn(wait_10_s, cond.clone()).start()?;
        if !common::eventually(Duration::from_secs(10), || cond.n_waiting() == 1) {
            return Err("the child never waited".into());
        }
        let g = cond.lock().map_err(Error::from)?;
        cond.notify(1)?;
        let t = Instant::now();
        match cond.wait_timeout(g, Duration::from_millis(300)) {
            Err(WaitError::Timeout(g)) => drop(g),
            Ok(_) => {
                return Err(format!("run {run}: the notifier took its own notification").into())
            }
            Err(e) => return Err(e.to_string().into()),
        }
        assert!(t.elapsed() >= Duration::from_millis(300));
        let child_saw = child.join()?;
        assert_eq!(child_saw, "notified", "run {run}");
        assert_eq!(cond.n_waiting(), 0);
    }
    Ok(())
}

/// Review bug 4: two processes hand a turn back and forth 200 times on one Condition; a
/// notification taken by the notifier's own next wait stalls it (it used to, within 16).
fn cd_ping_pong() -> TestResult {
    const ROUNDS: u32 = 200;
    let cond = Condition::new()?;
    let turn = RawValue::new(0u32)?;
    fn play(me: u32, cond: &Condition, turn: &RawValue<u32>) -> Result<(), String> {
        for round in 0..ROUNDS {
            let g = cond.lock().map_err(|e| e.to_string())?;
            let g = cond
                .wait_while_timeout(g, Duration::from_secs(5), || turn.load() != me)
                .map_err(|e| format!("player {me}, round {round}: {e}"))?;
            turn.store(1 - me);
            cond.notify(1).map_err(|e| e.to_string())?;
            drop(g);
        }
        Ok(())
    }
    fn play_1((c, t): (Condition, RawValue<u32>)) -> Result<(), String> {
        play(1, &c, &t)
    }
    let mut child = Process::run_fn(play_1, (cond.clone(), turn.clone())).start()?;
    let mine = play(0, &cond, &turn);
    let theirs = child.join()?;
    mine?;
    theirs?;
    Ok(())
}

/// SM-05: a process asleep on an empty semaphore wakes soon after another releases it.
fn sm_05_wake_bound() -> TestResult {
    let sem = Semaphore::new(0)?;
    let step = RawValue::new(0u32)?;
    fn acquire_between_steps((s, st): (Semaphore, RawValue<u32>)) -> bool {
        st.store(1);
        let got = s.acquire_timeout(Duration::from_secs(10)).is_ok();
        st.store(2);
        got
    }
    let mut child = Process::run_fn(acquire_between_steps, (sem.clone(), step.clone())).start()?;
    if !common::eventually(Duration::from_secs(10), || step.load() == 1) {
        return Err("the child never started".into());
    }
    // Long enough for the child to be asleep in the kernel, past its spin.
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    sem.release()?;
    while step.load() != 2 && t.elapsed() < Duration::from_secs(10) {
        std::hint::spin_loop();
    }
    let woke = t.elapsed();
    eprintln!("woken after {woke:?}");
    assert!(child.join()?, "the child's acquire timed out");
    assert!(woke < Duration::from_millis(200), "woke after {woke:?}");
    Ok(())
}

/// What a child's barrier wait ended with, in words the parent can compare.
fn barrier_outcome(r: Result<u32, Error>) -> String {
    match r {
        Ok(_) => "passed".into(),
        Err(Error::BrokenBarrier) => "broken".into(),
        Err(Error::Timeout) => "timeout".into(),
        Err(e) => e.to_string(),
    }
}

/// A child that waits at the barrier once and says how that ended.
fn wait_outcome(b: Barrier) -> String {
    barrier_outcome(b.wait())
}

fn wait_n_waiting(b: &Barrier, n: u32) -> TestResult {
    if common::eventually(Duration::from_secs(10), || b.n_waiting() == n) {
        Ok(())
    } else {
        Err(format!("{} parties waiting, not {n}", b.n_waiting()).into())
    }
}

/// BR-04, BR-06 between processes.
fn br_abort_reset_processes() -> TestResult {
    let barrier = Barrier::new(2)?;
    let mut child = Process::run_fn(wait_outcome, barrier.clone()).start()?;
    wait_n_waiting(&barrier, 1)?;
    barrier.abort();
    assert_eq!(child.join()?, "broken");
    assert!(barrier.is_broken());
    assert_eq!(barrier_outcome(barrier.wait()), "broken");
    barrier.reset();
    assert!(!barrier.is_broken());
    let mut child = Process::run_fn(wait_outcome, barrier.clone()).start()?;
    assert_eq!(barrier_outcome(barrier.wait()), "passed");
    assert_eq!(child.join()?, "passed");
    Ok(())
}

/// BR-05 between processes: a reset breaks the waiting children; the barrier is whole
/// again afterwards.
fn br_reset_processes() -> TestResult {
    let barrier = Barrier::new(3)?;
    let mut children = Vec::new();
    for _ in 0..2 {
        children.push(Process::run_fn(wait_outcome, barrier.clone()).start()?);
    }
    wait_n_waiting(&barrier, 2)?;
    barrier.reset();
    for mut c in children.drain(..) {
        assert_eq!(c.join()?, "broken");
    }
    assert!(!barrier.is_broken());
    for _ in 0..2 {
        children.push(Process::run_fn(wait_outcome, barrier.clone()).start()?);
    }
    assert_eq!(barrier_outcome(barrier.wait()), "passed");
    for mut c in children {
        assert_eq!(c.join()?, "passed");
    }
    Ok(())
}

/// BR-07 between processes: the party whose time runs out gets `Timeout`, the waiting
/// child `BrokenBarrier`, as Python's parties all get `BrokenBarrierError`.
fn br_timeout_processes() -> TestResult {
    let barrier = Barrier::new(3)?;
    let mut child = Process::run_fn(wait_outcome, barrier.clone()).start()?;
    wait_n_waiting(&barrier, 1)?;
    let t = Instant::now();
    assert_eq!(
        barrier_outcome(barrier.wait_timeout(Duration::from_millis(100))),
        "timeout"
    );
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(child.join()?, "broken");
    assert!(barrier.is_broken());
    Ok(())
}

/// BR-03 with a capturing action: it runs once per round, in whichever process completes
/// the round, on a shared counter it captured.
fn br_action_processes() -> TestResult {
    let rounds = Value::new(0u32)?;
    let r = rounds.clone();
    let barrier = Barrier::with_action(3, move || {
        r.fetch_add(1);
    })?;
    let mut children = Vec::new();
    for _ in 0..2 {
        let b = barrier.clone();
        children.push(
            Process::new(move || {
                for _ in 0..5 {
                    b.wait().unwrap();
                }
            })
            .start()?,
        );
    }
    for _ in 0..5 {
        barrier.wait()?;
    }
    for mut c in children {
        c.join()?;
    }
    assert_eq!(rounds.load(), 5);
    Ok(())
}
