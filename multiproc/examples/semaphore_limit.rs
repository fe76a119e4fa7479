//! Seed 001 lists 信号量 (the semaphore) among the ways processes communicate: here five
//! processes share a `Semaphore(2)`, so at most two are inside at any moment.
//!
//! The Python program it mirrors:
//!
//! ```python
//! from multiprocessing import Process, Semaphore
//! import os, time
//!
//! def fn(sem):
//!     sem.acquire()
//!     print(f'{os.getpid()}获得信号量')
//!     time.sleep(0.1)
//!     print(f'{os.getpid()}释放信号量')
//!     sem.release()
//!
//! if __name__ == '__main__':
//!     sem = Semaphore(2)
//!     ps = [Process(target=fn, args=(sem,)) for i in range(5)]
//!     for p in ps: p.start()
//!     for p in ps: p.join()
//!     print('信号量剩余', sem.get_value())
//! ```
//!
//! Run: `cargo run --example semaphore_limit`. Prints `<pid>获得信号量` and
//! `<pid>释放信号量` for each of the five processes, never more than two acquired and not
//! yet released, then `信号量剩余 2`.

use std::time::Duration;

use multiproc::{Process, Semaphore};

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sem = Semaphore::new(2)?;
    let children: Vec<_> = (0..5)
        .map(|_| {
            let sem = sem.clone();
            Process::new(move || {
                sem.acquire();
                println!("{}获得信号量", std::process::id());
                std::thread::sleep(Duration::from_millis(100));
                println!("{}释放信号量", std::process::id());
                sem.release().expect("release the unit taken above");
            })
            .start()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        c.join()?;
    }
    println!("信号量剩余 {}", sem.value());
    Ok(())
}
