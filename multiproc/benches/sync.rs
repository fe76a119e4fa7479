//! Locks: uncontended acquire+release, and a cross-process hand-off ping-pong beside a bare
//! futex ping-pong (the floor for a blocking hand-off).
//!
//! Run unpinned: `cargo bench --bench sync`; both processes on one CPU:
//! `taskset -c 0 cargo bench --bench sync` (children inherit the affinity).
//! Compare with `python3 benches/python/sync_bench.py` (the same figures for Python).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use multiproc::{Lock, Process, RLock, Semaphore};

fn uncontended(c: &mut Criterion) {
    let lock = Lock::new().unwrap();
    c.bench_function("lock/uncontended_lock_unlock", |b| {
        b.iter(|| drop(lock.lock().unwrap()))
    });
    c.bench_function("lock/uncontended_acquire_release", |b| {
        b.iter(|| {
            lock.acquire().unwrap();
            lock.release().unwrap();
        })
    });
    let rlock = RLock::new().unwrap();
    c.bench_function("rlock/uncontended_lock_unlock", |b| {
        b.iter(|| drop(rlock.lock().unwrap()))
    });
    let sem = Semaphore::new(1).unwrap();
    c.bench_function("semaphore/uncontended_acquire_release", |b| {
        b.iter(|| drop(sem.lock()))
    });
}

/// `iters` round trips between this process and a child through two locks used as
/// binary semaphores (any process may release a `Lock`): the parent releases `ping`, the
/// child takes it and releases `pong`, the parent takes `pong`.
fn lock_ping_pong(iters: u64) -> Duration {
    let (ping, pong) = (Lock::new().unwrap(), Lock::new().unwrap());
    ping.acquire().unwrap();
    pong.acquire().unwrap();
    let (p, q) = (ping.clone(), pong.clone());
    let mut child = Process::new(move || {
        for _ in 0..iters {
            p.acquire().unwrap();
            q.release().unwrap();
        }
    })
    .start()
    .unwrap();
    let start = Instant::now();
    for _ in 0..iters {
        ping.release().unwrap();
        pong.acquire().unwrap();
    }
    let elapsed = start.elapsed();
    child.join().unwrap();
    elapsed
}

/// A shared page for the bare futex word, mapped before the fork so the child shares it.
struct SharedWord(*mut AtomicU32);

impl SharedWord {
    fn new() -> SharedWord {
        // SAFETY: a fresh anonymous shared mapping aliases nothing; it is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        SharedWord(p.cast())
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: the page is mapped, zeroed and aligned for as long as `self` lives.
        unsafe { &*self.0 }
    }

    /// The word's address, for the child (which inherits the mapping and never unmaps it).
    fn child_handle(&self) -> ChildWord {
        ChildWord(self.0)
    }
}

/// The child's view of a `SharedWord`: no `Drop`, so dropping the closure in the parent
/// (as `Process::start` does) unmaps nothing.
#[derive(Clone, Copy)]
struct ChildWord(*mut AtomicU32);

// SAFETY: the word is only used through atomics, and the pointer is valid in the child,
// which inherits the mapping.
unsafe impl Send for ChildWord {}

impl ChildWord {
    fn word(&self) -> &AtomicU32 {
        // SAFETY: the child inherited the mapping and never unmaps it.
        unsafe { &*self.0 }
    }
}

impl Drop for SharedWord {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `new` and no reference outlives `self`.
        unsafe { libc::munmap(self.0.cast(), 4096) };
    }
}

fn futex_wait(w: &AtomicU32, expected: u32) {
    // SAFETY: `w` is a live aligned word; a null timeout waits without limit.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake(w: &AtomicU32) {
    // SAFETY: `w` is a live aligned word.
    unsafe { libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// `iters` round trips on one shared word with a bare futex wait/wake, no spinning: the
/// parent sets 1 and wakes, the child waits for 1, sets 2 and wakes, the parent waits for 2.
fn bare_futex_ping_pong(iters: u64) -> Duration {
    let shared = SharedWord::new();
    let child_word = shared.child_handle();
    let mut child = Process::new(move || {
        let w = child_word.word();
        for _ in 0..iters {
            loop {
                let now = w.load(Ordering::Acquire);
                if now == 1 {
                    break;
                }
                futex_wait(w, now);
            }
            w.store(2, Ordering::Release);
            futex_wake(w);
        }
    })
    .start()
    .unwrap();
    let w = shared.word();
    let start = Instant::now();
    for _ in 0..iters {
        w.store(1, Ordering::Release);
        futex_wake(w);
        while w.load(Ordering::Acquire) != 2 {
            futex_wait(w, 1);
        }
    }
    let elapsed = start.elapsed();
    child.join().unwrap();
    elapsed
}

fn cross_process(c: &mut Criterion) {
    let mut g = c.benchmark_group("handoff");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("lock_ping_pong_round_trip", |b| {
        b.iter_custom(lock_ping_pong)
    });
    g.bench_function("bare_futex_ping_pong_round_trip", |b| {
        b.iter_custom(bare_futex_ping_pong)
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    uncontended(&mut c);
    cross_process(&mut c);
    c.final_summary();
}
