//! The CPU-bound task of the pool rows, shared with `src/bin/pool_busy.rs`.

/// A CPU-bound task: spins until its thread has used 1 ms of CPU time. (Not 1 ms of wall
/// time: a task preempted by another process of a busy machine would then do less work and
/// flatter the row.) `src/bin/pool_busy.rs` measures the same pool by the kernel's
/// accounting, which tells the pool's own idle time from the machine's load.
pub(crate) fn spin_1ms(x: u64) -> u64 {
    let start = thread_cpu();
    let mut acc = x;
    while thread_cpu() - start < std::time::Duration::from_millis(1) {
        for _ in 0..64 {
            acc = std::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    acc
}

/// The CPU time this thread has used.
pub(crate) fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec for clock_gettime to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
