//! Managers: the server process, typed proxies in real child processes, atomic updates,
//! nested proxies, shutdown and server death (W11), custom types (RM), remote managers over
//! unix and TCP, and SharedMemoryManager (SHM-12).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{eventually, process_running, test, unique_name, TestResult};
use multiproc::manager::{DictProxy, ListProxy, NamespaceProxy, QueueProxy, SetProxy, Shared};
use multiproc::{pipe, Error, Manager, Process, SharedMemory, SharedMemoryManager, Signal};
use serde::{Deserialize, Serialize};

fn main() {
    common::run(vec![
        test(
            "mg_06_07_dict_operations_keep_insertion_order",
            dict_operations,
        ),
        test(
            "mg_02_15_list_operations_and_clipped_slices",
            list_operations,
        ),
        test("mg_11_namespace_attributes", namespace_attributes),
        test("mg_17_value_and_array", value_and_array),
        test(
            "mg_12_proxies_passed_to_a_child_work_there",
            proxies_in_child,
        ),
        test(
            "mg_13_lock_acquired_in_child_released_by_parent",
            lock_across_processes,
        ),
        test("mg_14_bounded_queue_full_empty_timeout", bounded_queue),
        test(
            "seed_002_ten_processes_x_1000_atomic_decrements_end_exactly_at_zero",
            atomic_decrements,
        ),
        test("atomic_compare_and_swap_and_set_default", compare_and_swap),
        test("mg_03_08_10_nested_proxies_stay_live", nested_proxies_live),
        test(
            "w11_mg_09_plain_nested_values_are_copies",
            nested_plain_copies,
        ),
        test(
            "w11_proxies_are_send_and_sync_across_threads",
            proxies_threads,
        ),
        test(
            "w11_mg_22_call_after_shutdown_is_manager_gone_at_once",
            call_after_shutdown,
        ),
        test(
            "w11_call_after_server_killed_is_manager_gone_never_a_hang",
            call_after_server_killed,
        ),
        test("mg_01_shutdown_twice_is_fine", shutdown_twice),
        test(
            "rm_04_dropping_the_owner_stops_the_server",
            drop_stops_server,
        ),
        test(
            "rm_09_restart_on_the_same_address_after_shutdown",
            restart_same_address,
        ),
        test(
            "server_is_gone_after_its_owner_is_sigkilled",
            owner_sigkilled,
        ),
        test(
            "proxy_sent_through_a_connection_to_a_running_process",
            proxy_through_pipe,
        ),
        test("rm_01_custom_type_served_with_typed_requests", custom_type),
        test(
            "rm_05_remote_manager_over_tcp_used_by_another_process",
            remote_tcp,
        ),
        test(
            "rm_07_remote_manager_over_unix_wrong_authkey_rejected",
            remote_unix_wrong_key,
        ),
        test(
            "garbage_on_the_socket_does_not_stop_the_server",
            garbage_on_socket,
        ),
        test("rm_11_server_ignores_sigint", server_ignores_sigint),
        test(
            "sync_proxies_rlock_semaphore_condition_event_barrier",
            sync_proxies,
        ),
        test(
            "shm_12_shared_memory_manager_unlinks_at_shutdown",
            shared_memory_manager,
        ),
        test("mg_24_set_proxy_shared_with_a_child", set_proxy),
        test(
            "mg_04_list_iteration_is_by_index_and_sees_writes",
            list_iteration,
        ),
        test(
            "joinable_queue_task_done_and_join_across_processes",
            joinable_queue,
        ),
        test("mg_06_dict_pop_item_takes_the_last_entry", dict_pop_item),
    ])
}

fn key(s: &str) -> String {
    s.to_string()
}

fn dict_operations() -> TestResult {
    let m = Manager::start()?;
    let d = m.dict::<String, i32>()?;
    assert!(d.is_empty()?);
    for (i, k) in ["z", "a", "m"].iter().enumerate() {
        assert_eq!(d.insert(&key(k), &(i as i32))?, None);
    }
    assert_eq!(d.insert(&key("a"), &10)?, Some(1));
    assert_eq!(d.keys()?, vec![key("z"), key("a"), key("m")]);
    assert_eq!(d.values()?, vec![0, 10, 2]);
    assert_eq!(d.get(&key("a"))?, Some(10));
    assert_eq!(d.get(&key("nope"))?, None);
    assert!(d.contains_key(&key("m"))?);
    assert_eq!(d.remove(&key("z"))?, Some(0));
    assert_eq!(d.len()?, 2);
    d.update([(&key("q"), &7), (&key("a"), &11)])?;
    assert_eq!(
        d.items()?,
        vec![(key("a"), 11), (key("m"), 2), (key("q"), 7)]
    );
    assert_eq!(d.to_map()?.len(), 3);
    d.clear()?;
    assert_eq!(d.len()?, 0);
    let from = m.dict_from([(&key("count"), &1000)])?;
    assert_eq!(from.get(&key("count"))?, Some(1000));
    Ok(())
}

fn list_operations() -> TestResult {
    let m = Manager::start()?;
    let empty = m.list::<i32>()?;
    assert_eq!(empty.to_vec()?, Vec::<i32>::new());
    let l = m.list_from(&[0, 1, 2, 3, 4])?;
    assert_eq!(l.slice(2..10)?, vec![2, 3, 4]); // clipped, as b[2:10]
    assert_eq!(l.slice(7..)?, Vec::<i32>::new());
    assert_eq!(l.get(2)?, 2);
    assert!(matches!(l.get(5), Err(Error::InvalidArgument(_)))); // IndexError
    l.push(&5)?;
    l.extend(&[6, 7])?;
    assert_eq!(l.set(0, &100)?, 0);
    l.insert(1, &50)?;
    assert_eq!(l.remove(1)?, 50);
    assert_eq!(l.pop()?, Some(7));
    assert_eq!(l.len()?, 7);
    assert_eq!(l.to_vec()?, vec![100, 1, 2, 3, 4, 5, 6]);
    assert_eq!(l.increment(0, 5)?, 105);
    l.clear()?;
    assert_eq!(l.pop()?, None);
    Ok(())
}

fn namespace_attributes() -> TestResult {
    let m = Manager::start()?;
    let ns = m.namespace()?;
    ns.set("name", &"Bob")?;
    ns.set("age", &42u32)?;
    assert_eq!(ns.get::<String>("name")?.as_deref(), Some("Bob"));
    assert_eq!(ns.get::<u32>("age")?, Some(42));
    assert_eq!(ns.get::<u32>("missing")?, None); // AttributeError
    assert!(ns.contains("age")?);
    assert!(ns.remove("age")?);
    assert!(!ns.contains("age")?); // hasattr reflects deletions
    assert_eq!(ns.names()?, vec![key("name")]);
    Ok(())
}

fn value_and_array() -> TestResult {
    let m = Manager::start()?;
    let v = m.value(&100i64)?;
    assert_eq!(v.get()?, 100);
    assert_eq!(v.set(&5)?, 100);
    assert_eq!(v.fetch_add(3)?, 5);
    assert_eq!(v.fetch_sub(1)?, 8);
    assert_eq!(v.compare_and_swap(&7, &70)?, Ok(()));
    assert_eq!(v.compare_and_swap(&7, &71)?, Err(70));
    let a = m.array(&[1.5f64, 2.5, 3.5])?;
    assert_eq!(a.len()?, 3);
    assert_eq!(a.get(1)?, 2.5);
    a.set(1, &4.0)?;
    assert_eq!(a.increment(2, 0.5)?, 4.0);
    assert_eq!(a.to_vec()?, vec![1.5, 4.0, 4.0]);
    assert!(a.get(3).is_err());
    Ok(())
}

fn proxies_in_child() -> TestResult {
    let m = Manager::start()?;
    let d = m.dict::<String, i32>()?;
    let l = m.list_from(&[1, 2, 3, 4])?;
    let ns = m.namespace()?;
    let q = m.queue::<String>()?;
    let ev = m.event()?;
    let v = m.value(&1u8)?;
    let (d2, l2, ns2, q2, ev2, v2) = (
        d.clone(),
        l.clone(),
        ns.clone(),
        q.clone(),
        ev.clone(),
        v.clone(),
    );
    let mut child = Process::new(move || {
        d2.insert(&key("child"), &7).unwrap();
        l2.push(&5).unwrap();
        ns2.set("x", &"from child").unwrap();
        q2.put(key("hello")).unwrap();
        v2.set(&9).unwrap();
        ev2.set().unwrap();
        l2.to_vec().unwrap()
    })
    .start()?;
    ev.wait_timeout(Duration::from_secs(10))?;
    assert_eq!(child.join()?, vec![1, 2, 3, 4, 5]);
    assert_eq!(d.get(&key("child"))?, Some(7));
    assert_eq!(ns.get::<String>("x")?.as_deref(), Some("from child"));
    assert_eq!(q.get_timeout(Duration::from_secs(5))?, "hello");
    assert_eq!(v.get()?, 9);
    Ok(())
}

fn lock_across_processes() -> TestResult {
    let m = Manager::start()?;
    let lock = m.lock()?;
    let l2 = lock.clone();
    let mut child = Process::new(move || l2.acquire().unwrap()).start()?;
    child.join()?;
    assert!(lock.is_locked()?);
    assert!(matches!(lock.try_acquire(), Err(Error::WouldBlock)));
    assert!(matches!(
        lock.acquire_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    lock.release()?; // the parent releases what the child acquired
    assert!(matches!(lock.release(), Err(Error::InvalidState(_)))); // "release unlocked lock"
    lock.try_acquire()?;
    lock.release()?;
    Ok(())
}

fn bounded_queue() -> TestResult {
    let m = Manager::start()?;
    let q: QueueProxy<i32> = m.bounded_queue(2)?;
    q.put(5)?;
    q.put(6)?;
    assert_eq!(q.qsize()?, 2);
    assert!(q.is_full()?);
    assert!(!q.is_empty()?);
    let full = q.try_put(7).unwrap_err();
    assert!(full.is_full());
    assert_eq!(full.into_inner(), 7);
    let timed = q.put_timeout(8, Duration::from_millis(20)).unwrap_err();
    assert!(timed.is_timeout());
    assert_eq!(q.get()?, 5);
    assert_eq!(q.get()?, 6);
    assert!(q.is_empty()?);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(matches!(
        m.bounded_queue::<i32>(0),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

fn atomic_decrements() -> TestResult {
    let m = Manager::start()?;
    let d = m.dict_from([(&key("count"), &10_000i64)])?;
    let mut children = Vec::new();
    for _ in 0..10 {
        let d = d.clone();
        children.push(
            Process::new(move || {
                for _ in 0..1_000 {
                    d.decrement(&key("count"), 1).unwrap();
                }
            })
            .start()?,
        );
    }
    for mut c in children {
        c.join()?;
    }
    // `d['count'] -= 1` in Python reads and writes in two round trips; interleaved, updates
    // are lost. The server-side decrement loses none.
    assert_eq!(d.get(&key("count"))?, Some(0));
    // Overflow is an error, not a wrap; a missing key too.
    let small = m.dict_from([(&key("u"), &0u8)])?;
    assert!(matches!(
        small.decrement(&key("u"), 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        small.increment(&key("none"), 1),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

fn compare_and_swap() -> TestResult {
    let m = Manager::start()?;
    let d = m.dict::<String, String>()?;
    assert_eq!(d.compare_and_swap(&key("k"), None, &key("a"))?, Ok(()));
    assert_eq!(
        d.compare_and_swap(&key("k"), None, &key("b"))?,
        Err(Some(key("a")))
    );
    assert_eq!(
        d.compare_and_swap(&key("k"), Some(&key("a")), &key("c"))?,
        Ok(())
    );
    assert_eq!(d.set_default(&key("k"), &key("zzz"))?, "c");
    assert_eq!(d.set_default(&key("new"), &key("dflt"))?, "dflt");
    // Eight processes race to claim slots with compare_and_swap: each slot goes to one.
    let claims = m.dict::<u32, u32>()?;
    let mut children = Vec::new();
    for who in 0..8u32 {
        let claims = claims.clone();
        children.push(
            Process::new(move || {
                (0..50u32)
                    .filter(|slot| claims.compare_and_swap(slot, None, &who).unwrap().is_ok())
                    .count()
            })
            .start()?,
        );
    }
    let mut won = 0;
    for mut c in children {
        won += c.join()?;
    }
    assert_eq!(won, 50);
    assert_eq!(claims.len()?, 50);
    Ok(())
}

fn nested_proxies_live() -> TestResult {
    let m = Manager::start()?;
    // MG-03: a list of list proxies holds live references.
    let a = m.list::<i32>()?;
    let f = m.list::<ListProxy<i32>>()?;
    f.push(&a)?;
    a.push(&1)?;
    assert_eq!(f.get(0)?.to_vec()?, vec![1]);
    // MG-08: a write through d['supplies'] is visible through `supplies`, and it survives
    // the outer dict's clear().
    let supplies = m.dict::<String, i32>()?;
    let d = m.dict::<String, DictProxy<String, i32>>()?;
    d.insert(&key("supplies"), &supplies)?;
    d.get(&key("supplies"))?
        .unwrap()
        .insert(&key("blankets"), &5)?;
    assert_eq!(supplies.get(&key("blankets"))?, Some(5));
    let inner = d.get(&key("supplies"))?.unwrap();
    d.clear()?;
    inner.insert(&key("cans"), &2)?;
    assert_eq!(supplies.len()?, 2);
    // MG-10: queue proxies stored in a list and a dict work, from a child too.
    let q = m.queue::<String>()?;
    let holder = m.dict::<String, QueueProxy<String>>()?;
    holder.insert(&key("q"), &q)?;
    let h2 = holder.clone();
    let mut child = Process::new(move || {
        h2.get(&key("q"))
            .unwrap()
            .unwrap()
            .put(key("via dict"))
            .unwrap();
    })
    .start()?;
    child.join()?;
    assert_eq!(q.get_timeout(Duration::from_secs(5))?, "via dict");
    Ok(())
}

fn nested_plain_copies() -> TestResult {
    let m = Manager::start()?;
    let d = m.dict::<String, Vec<i32>>()?;
    d.insert(&key("xs"), &vec![1])?;
    // `get` hands back an owned copy: pushing onto it changes nothing shared...
    let mut copy = d.get(&key("xs"))?.unwrap();
    copy.push(2);
    assert_eq!(d.get(&key("xs"))?, Some(vec![1]));
    // ...until it is written back (MG-09's reassignment).
    d.insert(&key("xs"), &copy)?;
    assert_eq!(d.get(&key("xs"))?, Some(vec![1, 2]));
    Ok(())
}

fn proxies_threads() -> TestResult {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DictProxy<String, i64>>();
    assert_send_sync::<ListProxy<String>>();
    assert_send_sync::<QueueProxy<String>>();
    assert_send_sync::<NamespaceProxy>();
    assert_send_sync::<Manager>();
    let m = Manager::start()?;
    let d = m.dict_from([(&key("n"), &0i64)])?;
    let l = m.list::<u32>()?;
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let (d, l) = (&d, &l);
            s.spawn(move || {
                for _ in 0..200 {
                    d.increment(&key("n"), 1).unwrap();
                }
                l.push(&t).unwrap();
            });
        }
    });
    assert_eq!(d.get(&key("n"))?, Some(1600));
    assert_eq!(l.len()?, 8);
    Ok(())
}

fn call_after_shutdown() -> TestResult {
    let m = Manager::start()?;
    let d = m.dict::<String, i32>()?;
    let q = m.queue::<i32>()?;
    d.insert(&key("a"), &1)?;
    let server = m.server_pid().expect("an owned manager knows its server");
    m.shutdown()?;
    assert!(!process_running(server));
    let t = Instant::now();
    let err = d.get(&key("a")).unwrap_err();
    assert!(matches!(err, Error::ManagerGone(_)), "{err:?}");
    assert!(err.to_string().contains("gone"), "{err}");
    assert!(matches!(q.get(), Err(Error::ManagerGone(_))));
    assert!(matches!(m.list::<i32>(), Err(Error::ManagerGone(_))));
    assert!(t.elapsed() < Duration::from_secs(1));
    // A proxy deserialised after shutdown (in a child) fails the same way.
    let mut child = Process::new(move || matches!(d.len(), Err(Error::ManagerGone(_)))).start()?;
    assert!(child.join()?);
    Ok(())
}

fn call_after_server_killed() -> TestResult {
    let m = Manager::start()?;
    let q = m.queue::<i32>()?;
    let d = m.dict::<i32, i32>()?;
    d.insert(&1, &1)?;
    let server = m.server_pid().unwrap();
    let t = Instant::now();
    std::thread::scope(|s| -> TestResult {
        // A call blocked in the server when it dies returns an error, not a hang.
        let blocked = s.spawn(|| q.get());
        std::thread::sleep(Duration::from_millis(100));
        multiproc::process::send_signal(server, Signal::KILL)?;
        let got = blocked.join().unwrap();
        assert!(matches!(got, Err(Error::ManagerGone(_))), "{got:?}");
        Ok(())
    })?;
    assert!(matches!(d.get(&1), Err(Error::ManagerGone(_))));
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(m); // the owner's drop finds the server dead and does not hang either
    Ok(())
}

fn shutdown_twice() -> TestResult {
    let m = Manager::start()?;
    m.shutdown()?;
    m.shutdown()?;
    Ok(())
}

fn drop_stops_server() -> TestResult {
    let m = Manager::start()?;
    let d = m.dict::<i32, i32>()?;
    let server = m.server_pid().unwrap();
    // A manager moved into a child stops the server neither when the parent drops its
    // copy at the child's start nor when the child drops it.
    let mut holder = Process::new(move || m.dict::<i32, i32>().map(drop).is_ok()).start()?;
    assert!(
        holder.join()?,
        "the child could not use the manager moved into it"
    );
    assert!(
        process_running(server),
        "a child's copy of the manager stopped the server"
    );
    d.insert(&1, &1)?;
    multiproc::process::send_signal(server, Signal::KILL)?;
    assert!(eventually(Duration::from_secs(5), || !process_running(
        server
    )));
    let m = Manager::start()?;
    let server = m.server_pid().unwrap();
    drop(m);
    assert!(
        !process_running(server),
        "the server outlived its owner's drop"
    );
    Ok(())
}

fn restart_same_address() -> TestResult {
    let dir = std::env::temp_dir().join(unique_name("mgr"));
    std::fs::create_dir_all(&dir)?;
    let address = format!("unix:{}", dir.join("m.sock").display());
    let outcome = (|| -> TestResult {
        for round in 0..3 {
            let m = Manager::serve(address.as_str(), b"k")?;
            let l = m.list_from(&[round])?;
            assert_eq!(l.to_vec()?, vec![round]);
            m.shutdown()?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn owner_sigkilled() -> TestResult {
    let (mut rx, mut tx) = pipe()?;
    let mut owner = Process::new(move || {
        let m = Manager::start().unwrap();
        let pid: u32 = m.server_pid().unwrap().into();
        tx.send(&pid).unwrap();
        std::thread::sleep(Duration::from_secs(60));
        drop(m);
    })
    .start()?;
    let server: u32 = rx.recv_timeout(Duration::from_secs(10))?;
    assert!(process_running(server));
    owner.kill()?;
    let _ = owner.join();
    assert!(
        eventually(Duration::from_secs(5), || !process_running(server)),
        "the server outlived its SIGKILLed owner"
    );
    Ok(())
}

fn proxy_through_pipe() -> TestResult {
    let (mut parent_end, mut child_end) = pipe()?;
    let mut child = Process::new(move || {
        let d: DictProxy<String, i32> = child_end.recv().unwrap();
        d.increment(&key("seen"), 1).unwrap()
    })
    .start()?;
    // The manager is started after the child: the proxy reaches it only through the pipe.
    let m = Manager::start()?;
    let d = m.dict_from([(&key("seen"), &41)])?;
    parent_end.send(&d)?;
    assert_eq!(child.join()?, 42);
    assert_eq!(d.get(&key("seen"))?, Some(42));
    Ok(())
}

struct Account {
    balance: i64,
}

#[derive(Serialize, Deserialize)]
enum AccountReq {
    Deposit(i64),
    Withdraw(i64),
    Balance,
}

impl Shared for Account {
    const NAME: &'static str = "Account";
    type Init = i64;
    type Request = AccountReq;
    type Response = i64;

    fn new(balance: i64) -> Result<Self, String> {
        if balance < 0 {
            return Err("a negative opening balance".into());
        }
        Ok(Account { balance })
    }

    fn handle(&mut self, req: AccountReq) -> Result<i64, String> {
        match req {
            AccountReq::Deposit(n) => self.balance += n,
            AccountReq::Withdraw(n) if n > self.balance => {
                return Err(format!("cannot withdraw {n} from {}", self.balance))
            }
            AccountReq::Withdraw(n) => self.balance -= n,
            AccountReq::Balance => {}
        }
        Ok(self.balance)
    }
}

fn custom_type() -> TestResult {
    let m = Manager::builder().register::<Account>().start()?;
    let acct = m.custom::<Account>(&100)?;
    let a2 = acct.clone();
    let mut child = Process::new(move || {
        for _ in 0..10 {
            a2.call(&AccountReq::Deposit(5)).unwrap();
        }
    })
    .start()?;
    child.join()?;
    assert_eq!(acct.call(&AccountReq::Balance)?, 150);
    // The method's error comes back with its message (RM-01's re-raised ValueError).
    let err = acct.call(&AccountReq::Withdraw(1000)).unwrap_err();
    assert!(
        matches!(&err, Error::Remote(m) if m.contains("cannot withdraw 1000")),
        "{err}"
    );
    assert!(matches!(m.custom::<Account>(&-1), Err(Error::Remote(_))));
    // A type the server does not know is refused.
    let plain = Manager::start()?;
    assert!(matches!(
        plain.custom::<Account>(&1),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

fn remote_tcp() -> TestResult {
    let authkey = b"0123456789abcdef0123456789abcdef";
    let server = Manager::serve("tcp:127.0.0.1:0", authkey)?;
    let address = server.address().to_string();
    assert!(address.starts_with("tcp:127.0.0.1:"), "{address}");
    let jobs = server.queue::<String>()?;
    server.publish("jobs", &jobs)?;
    let results = server.dict::<String, String>()?;
    server.publish("results", &results)?;
    // Another process, knowing only the address and the key, connects and uses them.
    let mut client = Process::new(move || -> Result<(), String> {
        let m = Manager::connect(address.as_str(), authkey).map_err(|e| e.to_string())?;
        let jobs: QueueProxy<String> = m.lookup("jobs").map_err(|e| e.to_string())?;
        let results: DictProxy<String, String> = m.lookup("results").map_err(|e| e.to_string())?;
        let wrong = m.lookup::<ListProxy<i32>>("jobs");
        if !matches!(wrong, Err(Error::InvalidArgument(_))) {
            return Err(format!("a queue looked up as a list: {wrong:?}"));
        }
        while let Ok(job) = jobs.get_timeout(Duration::from_secs(5)) {
            if job == "stop" {
                return Ok(());
            }
            let answer = format!("done: {job} ✓");
            results.insert(&job, &answer).map_err(|e| e.to_string())?;
        }
        Err("no stop".into())
    })
    .start()?;
    for j in ["a", "b", "é"] {
        jobs.put(j.to_string())?;
    }
    jobs.put(key("stop"))?;
    client.join()?.map_err(|e| format!("client: {e}"))?;
    assert_eq!(results.get(&key("é"))?.as_deref(), Some("done: é ✓"));
    assert_eq!(results.len()?, 3);
    Ok(())
}

fn remote_unix_wrong_key() -> TestResult {
    let dir = std::env::temp_dir().join(unique_name("mgr"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("manager.sock");
    let address = format!("unix:{}", path.display());
    let outcome = (|| -> TestResult {
        let server = Manager::serve(address.as_str(), b"right key")?;
        let l = server.list::<i32>()?;
        server.publish("l", &l)?;
        let a2 = address.clone();
        let mut child = Process::new(move || {
            let wrong = Manager::connect(a2.as_str(), b"wrong key");
            let refused = matches!(wrong, Err(Error::Authentication(_)));
            let m = Manager::connect(a2.as_str(), b"right key").unwrap();
            m.lookup::<ListProxy<i32>>("l").unwrap().push(&1).unwrap();
            refused
        })
        .start()?;
        assert!(child.join()?, "a wrong authkey was not rejected");
        assert_eq!(l.to_vec()?, vec![1]);
        drop(server);
        assert!(!path.exists(), "the socket file outlived the server");
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn garbage_on_socket() -> TestResult {
    let m = Manager::serve("tcp:127.0.0.1:0", b"key")?;
    let d = m.dict_from([(&key("k"), &1)])?;
    let multiproc::connection::Address::Tcp(addr) = m.address().clone() else {
        panic!("not tcp");
    };
    // Garbage instead of a handshake, then a client that connects and says nothing.
    let mut garbage = std::net::TcpStream::connect(addr)?;
    garbage.write_all(&[0xff; 64])?;
    let _silent = std::net::TcpStream::connect(addr)?;
    // An authenticated client that then sends garbage frames.
    let mut authed = multiproc::connection::Client::connect(m.address(), Some(b"key"))?;
    authed.send_bytes(&[0xde, 0xad, 0xbe, 0xef])?;
    authed.send_bytes(&[])?;
    let t = Instant::now();
    assert_eq!(d.increment(&key("k"), 1)?, 2);
    let m2 = Manager::connect(m.address(), b"key")?;
    let l = m2.list::<i32>()?;
    l.push(&3)?;
    assert_eq!(l.to_vec()?, vec![3]);
    assert!(t.elapsed() < Duration::from_secs(10));
    Ok(())
}

fn server_ignores_sigint() -> TestResult {
    let m = Manager::start()?;
    let d = m.dict::<i32, i32>()?;
    let server = m.server_pid().unwrap();
    multiproc::process::send_signal(server, Signal::INT)?;
    std::thread::sleep(Duration::from_millis(50));
    assert!(process_running(server));
    d.insert(&1, &2)?;
    assert_eq!(d.get(&1)?, Some(2));
    Ok(())
}

fn sync_proxies() -> TestResult {
    let m = Manager::start()?;
    // RLock: reentrant for its owner thread, refused to others.
    let r = m.rlock()?;
    r.acquire()?;
    r.acquire()?;
    let r2 = r.clone();
    let mut other =
        Process::new(move || matches!(r2.try_acquire(), Err(Error::WouldBlock))).start()?;
    assert!(other.join()?);
    r.release()?;
    r.release()?;
    assert!(matches!(r.release(), Err(Error::InvalidState(_))));
    // Semaphore and BoundedSemaphore.
    let s = m.semaphore(2)?;
    s.acquire()?;
    s.try_acquire()?;
    assert!(matches!(s.try_acquire(), Err(Error::WouldBlock)));
    assert_eq!(s.value()?, 0);
    s.release()?;
    let b = m.bounded_semaphore(1)?;
    assert!(matches!(b.release(), Err(Error::InvalidArgument(_))));
    // Condition: a child waits, the parent notifies.
    let c = m.condition()?;
    let flag = m.value(&false)?;
    let (c2, f2) = (c.clone(), flag.clone());
    let mut waiter = Process::new(move || {
        c2.acquire().unwrap();
        while !f2.get().unwrap() {
            c2.wait_timeout(Duration::from_secs(10)).unwrap();
        }
        c2.release().unwrap();
        true
    })
    .start()?;
    std::thread::sleep(Duration::from_millis(50));
    c.acquire()?;
    flag.set(&true)?;
    c.notify_all()?;
    c.release()?;
    assert!(waiter.join()?);
    c.acquire()?;
    assert!(matches!(
        c.wait_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    c.release()?;
    assert!(matches!(c.wait(), Err(Error::InvalidState(_))));
    // Event.
    let e = m.event()?;
    assert!(matches!(
        e.wait_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    e.set()?;
    assert!(e.is_set()?);
    e.wait()?;
    e.clear()?;
    assert!(!e.is_set()?);
    // Barrier of three: two children and the parent.
    let bar = m.barrier(3)?;
    assert_eq!(bar.parties()?, 3);
    let mut kids = Vec::new();
    for _ in 0..2 {
        let b = bar.clone();
        kids.push(Process::new(move || b.wait_timeout(Duration::from_secs(10)).unwrap()).start()?);
    }
    let mine = bar.wait_timeout(Duration::from_secs(10))?;
    let mut seen = vec![mine];
    for mut k in kids {
        seen.push(k.join()?);
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![0, 1, 2]);
    assert!(matches!(
        bar.wait_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert!(bar.is_broken()?);
    assert!(matches!(bar.wait(), Err(Error::BrokenBarrier)));
    bar.reset()?;
    assert!(!bar.is_broken()?);
    Ok(())
}

fn shared_memory_manager() -> TestResult {
    let smm = SharedMemoryManager::start()?;
    let a = smm.shared_memory(64)?;
    let b = smm.shared_memory(16)?;
    let names = [a.name().to_string(), b.name().to_string()];
    a.write(0, b"hello")?;
    let name = names[0].clone();
    let mut child = Process::new(move || {
        let shm = SharedMemory::open(&name).unwrap();
        let mut buf = [0u8; 5];
        shm.read(0, &mut buf).unwrap();
        shm.write(5, b"!").unwrap();
        buf
    })
    .start()?;
    assert_eq!(&child.join()?, b"hello");
    let mut bang = [0u8; 1];
    a.read(5, &mut bang)?;
    assert_eq!(&bang, b"!");
    smm.shutdown()?;
    for n in &names {
        let gone = SharedMemory::open(n);
        assert!(
            matches!(&gone, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound),
            "{n} survived shutdown: {gone:?}"
        );
    }
    assert!(matches!(smm.shared_memory(8), Err(Error::ManagerGone(_))));
    Ok(())
}

fn set_proxy() -> TestResult {
    let m = Manager::start()?;
    let s: SetProxy<i32> = m.set_from(&[3, 1, 3, 2])?;
    assert_eq!(s.len()?, 3, "duplicates count once");
    assert_eq!(s.to_vec()?, vec![3, 1, 2], "insertion order");
    assert!(s.insert(&7)?);
    assert!(!s.insert(&7)?, "a second insert finds it present");
    assert!(s.contains(&7)?);
    assert!(s.remove(&1)?);
    assert!(!s.remove(&1)?, "discard of an absent item");
    // A child adds and removes; the parent sees its view.
    let child_s = s.clone();
    let mut child = Process::new(move || {
        child_s.extend(&[10, 11, 3]).unwrap();
        child_s.remove(&2).unwrap()
    })
    .start()?;
    assert!(child.join()?, "the child saw 2 in the set");
    assert_eq!(s.to_vec()?, vec![3, 7, 10, 11]);
    assert_eq!(s.pop()?, Some(11), "pop takes the item added last");
    s.clear()?;
    assert!(s.is_empty()?);
    assert_eq!(s.pop()?, None);
    Ok(())
}

fn list_iteration() -> TestResult {
    let m = Manager::start()?;
    let l: ListProxy<i32> = m.list_from(&[1, 2, 3])?;
    let mut it = l.iter();
    assert_eq!(it.next().transpose()?, Some(1));
    // Another process writes ahead of the iteration: the iteration sees it.
    let child_l = l.clone();
    let mut child = Process::new(move || {
        child_l.set(1, &100).unwrap();
        child_l.push(&4).unwrap();
    })
    .start()?;
    child.join()?;
    assert_eq!(it.next().transpose()?, Some(100));
    assert_eq!(it.next().transpose()?, Some(3));
    assert_eq!(it.next().transpose()?, Some(4));
    assert!(
        it.next().is_none(),
        "the end of the list ends the iteration"
    );
    assert!(it.next().is_none(), "an exhausted iterator stays exhausted");
    let all: Vec<i32> = l.iter().collect::<Result<_, _>>()?;
    assert_eq!(all, vec![1, 100, 3, 4]);
    // The server gone: the iteration gives the error once, then ends.
    let mut it = l.iter();
    m.shutdown()?;
    assert!(matches!(it.next(), Some(Err(Error::ManagerGone(_)))));
    assert!(it.next().is_none());
    Ok(())
}

fn joinable_queue() -> TestResult {
    let m = Manager::start()?;
    let q: QueueProxy<u32> = m.joinable_queue()?;
    assert!(q.try_join().is_ok(), "nothing put: nothing unfinished");
    for i in 0..20 {
        q.put(i).map_err(Error::from)?;
    }
    assert!(matches!(q.try_join(), Err(Error::WouldBlock)));
    let t = Instant::now();
    assert!(matches!(
        q.join_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    let mut workers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            Process::new(move || {
                let mut sum = 0;
                while let Ok(v) = q.get_timeout(Duration::from_millis(200)) {
                    sum += v;
                    // Slow enough that the parent's join really waits.
                    std::thread::sleep(Duration::from_millis(5));
                    q.task_done().unwrap();
                }
                sum
            })
            .start()
        })
        .collect::<Result<_, _>>()?;
    q.join_timeout(Duration::from_secs(30))?;
    assert!(
        q.is_empty()?,
        "join returned only once every item was taken"
    );
    let total: u32 = workers
        .iter_mut()
        .map(|w| w.join())
        .sum::<Result<u32, _>>()?;
    assert_eq!(total, (0..20).sum::<u32>());
    assert!(matches!(q.task_done(), Err(Error::InvalidState(_))));
    Ok(())
}

fn dict_pop_item() -> TestResult {
    let m = Manager::start()?;
    let d: DictProxy<String, i32> = m.dict_from([(&key("a"), &1), (&key("b"), &2)])?;
    assert_eq!(d.pop_item()?, Some((key("b"), 2)));
    assert_eq!(d.pop_item()?, Some((key("a"), 1)));
    assert_eq!(d.pop_item()?, None);
    Ok(())
}
