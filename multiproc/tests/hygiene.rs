//! Resource hygiene (issue 15, part 3): creating and dropping every object type 10,000
//! times leaves the descriptor count, the mapping count and the resident memory flat;
//! and what a killed creator leaves behind, without a resource tracker (DD-05, DD-06,
//! DD-09, W7).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{test, unique_name, TestResult};
use multiproc::connection::{Client, Listener};
use multiproc::{
    pipe, Array, Barrier, BoundedSemaphore, Condition, Error, Event, JoinableQueue, Lock, Manager,
    Pool, Process, Queue, RLock, Semaphore, SharedMemory, SimpleQueue, StartMethod, Value,
};

const CYCLES: usize = 10_000;
const PATIENCE: Duration = Duration::from_secs(20);

fn main() {
    common::run(vec![
        test(
            "hygiene_10000_create_drop_cycles_of_every_anonymous_object_stay_flat",
            anonymous_objects,
        ),
        test(
            "hygiene_10000_create_unlink_drop_cycles_of_every_named_object_stay_flat",
            named_objects,
        ),
        test(
            "hygiene_10000_listener_client_cycles_stay_flat",
            listener_client,
        ),
        test(
            "hygiene_manager_proxies_and_pools_create_drop_cycles_stay_flat",
            manager_and_pool,
        ),
        test(
            "dd_05_w7_creator_sigkilled_anonymous_objects_leave_nothing_named_ones_stay_usable",
            creator_killed,
        ),
        test(
            "dd_06_no_cleanup_helper_process_exists_to_die",
            no_helper_process,
        ),
        test(
            "dd_09_spawned_child_recreates_none_of_its_parents_named_objects",
            spawn_reimports_nothing,
        ),
    ])
}

/// Open descriptors (by number), mappings and resident KiB of this process.
#[derive(Debug)]
struct Usage {
    fds: BTreeSet<String>,
    maps: usize,
    rss_kib: u64,
}

fn usage() -> Usage {
    let fds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count();
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    Usage { fds, maps, rss_kib }
}

/// Runs `cycle` `n` times after a warm-up (allocator pools, caches) and asserts that no
/// descriptor was left open, no mapping left behind and resident memory grew by less than
/// 2 MiB: a leak of 200 bytes a cycle would show.
fn flat(what: &str, n: usize, mut cycle: impl FnMut(usize) -> multiproc::Result<()>) -> TestResult {
    for i in 0..(n / 20).max(2) {
        cycle(i)?;
    }
    let before = usage();
    for i in 0..n {
        cycle(i)?;
    }
    let after = usage();
    let opened: Vec<_> = after.fds.difference(&before.fds).collect();
    assert!(
        opened.is_empty(),
        "{what}: {n} cycles left descriptors open: {opened:?}"
    );
    assert!(
        after.maps <= before.maps + 2,
        "{what}: {n} cycles left mappings: {} -> {}",
        before.maps,
        after.maps
    );
    assert!(
        after.rss_kib <= before.rss_kib + 2048,
        "{what}: {n} cycles grew resident memory {} -> {} KiB",
        before.rss_kib,
        after.rss_kib
    );
    Ok(())
}

fn anonymous_objects() -> TestResult {
    flat("pipe", CYCLES, |i| {
        let (mut a, mut b) = pipe()?;
        a.send(&i)?;
        assert_eq!(b.recv::<usize>()?, i);
        Ok(())
    })?;
    flat("Queue", CYCLES, |i| {
        let q = Queue::<usize>::new()?;
        q.put(i).map_err(Error::from)?;
        assert_eq!(q.get()?, i);
        Ok(())
    })?;
    flat("JoinableQueue", CYCLES, |i| {
        let q = JoinableQueue::<usize>::bounded(4)?;
        q.put(i).map_err(Error::from)?;
        q.get()?;
        q.task_done()
    })?;
    flat("SimpleQueue", CYCLES, |i| {
        let q = SimpleQueue::<usize>::new()?;
        q.put(i).map_err(Error::from)?;
        q.get().map(drop)
    })?;
    flat("Lock", CYCLES, |_| {
        Lock::new()?.lock().map(drop).map_err(Error::from)
    })?;
    flat("RLock", CYCLES, |_| {
        RLock::new()?.lock().map(drop).map_err(Error::from)
    })?;
    flat("Semaphore", CYCLES, |_| {
        let s = Semaphore::new(1)?;
        s.acquire();
        s.release()
    })?;
    flat("BoundedSemaphore", CYCLES, |_| {
        let s = BoundedSemaphore::new(1)?;
        s.acquire();
        s.release()
    })?;
    flat("Condition", CYCLES, |_| {
        let c = Condition::new()?;
        let _g = c.lock().map_err(Error::from)?;
        c.notify_all()
    })?;
    flat("Event", CYCLES, |_| {
        let e = Event::new()?;
        e.set();
        assert!(e.is_set());
        Ok(())
    })?;
    flat("Barrier", CYCLES, |_| Barrier::new(1)?.wait().map(drop))?;
    flat("Value", CYCLES, |i| {
        let v = Value::<u64>::new(i as u64)?;
        v.fetch_add(1);
        Ok(())
    })?;
    flat("Array", CYCLES, |i| {
        let a = Array::<u64>::new(64)?;
        a.set(i % 64, 1)
    })?;
    Ok(())
}

fn named_objects() -> TestResult {
    let name = unique_name("hyg");
    let _gone = Unlink(vec![name.clone()]);
    flat("SharedMemory", CYCLES, |_| {
        let shm = SharedMemory::create(&name, 4096)?;
        shm.write(0, b"x")?;
        shm.unlink()
    })?;
    flat("named Queue", CYCLES, |i| {
        let q = Queue::<usize>::create(&name, Some(4))?;
        q.put(i).map_err(Error::from)?;
        Queue::<usize>::unlink(&name)
    })?;
    flat("named JoinableQueue", CYCLES, |_| {
        drop(JoinableQueue::<usize>::create(&name, None)?);
        JoinableQueue::<usize>::unlink(&name)
    })?;
    flat("named Lock", CYCLES, |_| {
        let l = Lock::create(&name)?;
        let again = Lock::open(&name)?;
        drop(l.lock().map_err(Error::from)?);
        drop(again);
        Lock::unlink(&name)
    })?;
    flat("named Semaphore", CYCLES, |_| {
        drop(Semaphore::create(&name, 2)?);
        Semaphore::unlink(&name)
    })?;
    flat("named Event", CYCLES, |_| {
        Event::open_or_create(&name)?.set();
        Event::unlink(&name)
    })?;
    flat("named Value", CYCLES, |_| {
        drop(Value::<u64>::create(&name, 1)?);
        Value::<u64>::unlink(&name)
    })?;
    Ok(())
}

/// Unlinks the names however the test ends.
struct Unlink(Vec<String>);

impl Drop for Unlink {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(format!("/dev/shm/{n}"));
        }
    }
}

fn listener_client() -> TestResult {
    let path = std::env::temp_dir().join(format!("{}.sock", unique_name("hyg")));
    let address = format!("unix:{}", path.display());
    // Without a key the client is connected once the server's socket has it queued, so
    // one thread plays both sides.
    flat("Listener/Client", CYCLES, |i| {
        let listener = Listener::bind(address.as_str(), None)?;
        let mut client = Client::connect(address.as_str(), None)?;
        let mut server = listener.accept()?;
        client.send(&i)?;
        assert_eq!(server.recv::<usize>()?, i);
        Ok(())
    })?;
    assert!(!path.exists(), "the socket file outlived its Listener");
    // With a key the handshake needs the server's side: a child connects, a listener
    // lives across the cycles and accepts each time.
    let key = b"hygiene key";
    let listener = Listener::bind(address.as_str(), Some(key))?;
    let addr2 = address.clone();
    let mut clients = Process::new(move || {
        // `flat`'s warm-up (a twentieth) and its cycles.
        for i in 0..1050usize {
            let mut c = Client::connect_timeout(addr2.as_str(), Some(key), PATIENCE).unwrap();
            c.send(&i).unwrap();
            assert_eq!(c.recv::<usize>().unwrap(), i);
        }
    })
    .start()?;
    flat("authenticated accept", 1000, |i| {
        let mut conn = listener.accept_timeout(PATIENCE)?;
        let got: usize = conn.recv()?;
        assert!(got >= i);
        conn.send(&got)
    })?;
    clients.join()?;
    drop(listener);
    assert!(!path.exists(), "the socket file outlived its Listener");
    Ok(())
}

fn manager_and_pool() -> TestResult {
    // The manager's server is forked, so it comes before the pool's threads.
    let m = Manager::start()?;
    flat("manager proxies", 2000, |i| {
        let d = m.dict::<usize, usize>()?;
        d.insert(&i, &i)?;
        let l = m.list::<usize>()?;
        l.push(&i)?;
        drop(m.value(&i)?);
        drop(m.lock()?);
        Ok(())
    })?;
    m.shutdown()?;
    drop(m);
    // Each pool forks its workers: fewer cycles.
    flat("Pool", 40, |i| {
        let pool = Pool::new(2)?;
        assert_eq!(pool.apply(square, i as u64)?, (i * i) as u64);
        pool.close();
        pool.join()
    })?;
    Ok(())
}

fn square(x: u64) -> u64 {
    x * x
}

fn our_shm_entries() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// DD-05 (Python: the tracker unlinks a killed creator's named objects and warns) and W7
/// (Python's tracker unlinks what others still use). Here a child creates anonymous
/// objects (queue, lock, value, array) and one named queue and shared memory block, sends
/// the anonymous queue to the parent, and is SIGKILLed: the anonymous ones never had a
/// name (nothing new in `/dev/shm`), the queue it sent stays usable with its messages
/// (the kernel frees it with its last user, not with its creator), and the named ones are
/// neither removed nor damaged: they live until someone unlinks them (explicit ownership).
fn creator_killed() -> TestResult {
    let (qname, sname) = (unique_name("dd05q"), unique_name("dd05s"));
    let _gone = Unlink(vec![qname.clone(), sname.clone()]);
    let before = our_shm_entries();
    let (mut near, mut far) = pipe()?;
    let (q2, s2) = (qname.clone(), sname.clone());
    let mut creator = Process::new(move || -> () {
        let q = Queue::<String>::new().unwrap();
        let (_l, _v, _a) = (
            Lock::new().unwrap(),
            Value::<u64>::new(5).unwrap(),
            Array::<u8>::new(4096).unwrap(),
        );
        q.put("kept".into()).unwrap();
        Queue::<String>::create(&q2, None)
            .unwrap()
            .put("named".into())
            .unwrap();
        SharedMemory::create(&s2, 4096)
            .unwrap()
            .write(0, b"block")
            .unwrap();
        far.send(&q).unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .start()?;
    let q: Queue<String> = near.recv_timeout(PATIENCE)?;
    creator.kill()?;
    assert!(matches!(creator.join(), Err(Error::Signaled(_))));
    let after = our_shm_entries();
    let new: BTreeSet<_> = after.difference(&before).cloned().collect();
    assert_eq!(
        new,
        BTreeSet::from([qname.clone(), sname.clone()]),
        "only the named ones"
    );
    assert_eq!(q.get_timeout(PATIENCE)?, "kept");
    assert_eq!(
        Queue::<String>::open(&qname)?.get_timeout(PATIENCE)?,
        "named"
    );
    let mut buf = [0u8; 5];
    SharedMemory::open(&sname)?.read(0, &mut buf)?;
    assert_eq!(&buf, b"block");
    Queue::<String>::unlink(&qname)?;
    SharedMemory::open(&sname)?.unlink()?;
    assert_eq!(our_shm_entries(), before);
    Ok(())
}

/// DD-06 (Python's tracker process can be killed and is restarted): there is no helper.
/// Creating named and anonymous objects starts no process, so none can die.
fn no_helper_process() -> TestResult {
    let name = unique_name("dd06");
    let _gone = Unlink(vec![name.clone()]);
    assert!(multiproc::active_children().is_empty());
    let tasks_before = std::fs::read_dir("/proc/self/task")?.count();
    let _objects = (
        SharedMemory::create(&name, 4096)?,
        Queue::<u8>::new()?,
        Lock::new()?,
        Semaphore::new(2)?,
    );
    assert!(
        multiproc::active_children().is_empty(),
        "creating objects started a process"
    );
    assert_eq!(
        std::fs::read_dir("/proc/self/task")?.count(),
        tasks_before,
        "or a thread"
    );
    SharedMemory::open(&name)?.unlink()?;
    Ok(())
}

fn count_entries(prefix: String) -> usize {
    our_shm_entries()
        .iter()
        .filter(|n| n.starts_with(&prefix))
        .count()
}

/// DD-09 (Python: spawn re-imports the main module, which re-creates its module-level
/// named objects). A spawned child re-executes this program, but runs only its function,
/// never the parent's setup: the parent's named object exists once, before and after.
fn spawn_reimports_nothing() -> TestResult {
    let name = unique_name("dd09");
    let _gone = Unlink(vec![name.clone()]);
    let prefix = name.clone();
    let _sem = Semaphore::create(&name, 1)?;
    let mut child = Process::run_fn(count_entries, prefix.clone())
        .start_method(StartMethod::Spawn)
        .start()?;
    assert_eq!(child.join_timeout(PATIENCE)?, 1, "the child saw one entry");
    assert_eq!(count_entries(prefix), 1);
    Semaphore::unlink(&name)?;
    Ok(())
}
