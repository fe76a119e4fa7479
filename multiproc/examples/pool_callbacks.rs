//! Seed 002: a process pool. `apply_async` farms 12 tasks out to `Pool(4)`; `apply` runs them
//! one at a time; `Pool(2)` calls a callback for each value and an error callback for the
//! task that fails; the workers fill a manager's list.
//!
//! Run: `cargo run --example pool_callbacks`. Prints, in this order of sections:
//! - 12 lines `进程pid--> PID,参数--> I` (apply_async, any order, at most 4 pids);
//! - 12 lines of the same shape in order 0..11 (apply, one task at a time);
//! - `主进程pid: PID`, then for tasks 0..3 `子进程pid--> ...` and a `callback--> pid: PID`
//!   line (the parent's pid: callbacks run in the parent), except task 2, whose
//!   `error_callback--> ... args:出错` line reports its error;
//! - 4 lines `子进程中--> N` and finally `主进程--> [10, 11, 12, 13]`.
//!
//! The seed sleeps 1 s per task in the `apply` section; this one sleeps 10 ms.

use std::time::Duration;

use multiproc::manager::ListProxy;
use multiproc::{Error, Manager, Pool};

/// fn(i): prints who runs it, then works a little.
fn fn_(i: i32) {
    println!("进程pid--> {:5},参数--> {:2}", std::process::id(), i);
    std::thread::sleep(Duration::from_millis(10));
}

/// The task with a callback: task 2 fails (Python's `raise ValueError("出错")`).
fn fn_fails(i: i32) -> Result<i32, String> {
    std::thread::sleep(Duration::from_millis(100));
    println!("子进程pid--> {:5},参数--> {:2}", std::process::id(), i);
    if i == 2 {
        return Err("出错".to_string());
    }
    Ok(i)
}

/// fn(i, li): li[i] = i + 10, on the manager's list the task was given.
fn fill((i, li): (usize, ListProxy<i64>)) -> Result<(), Error> {
    li.set(i, &(i as i64 + 10))?;
    println!("子进程中--> {}", li.get(i)?);
    Ok(())
}

/// Runs the example.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Asynchronously: 12 tasks on 4 workers.
    let pool = Pool::new(4)?;
    for i in 0..12 {
        pool.apply_async(fn_, i)?;
    }
    pool.close();
    pool.join()?;
    drop(pool);

    // Synchronously: apply waits for each task.
    let pool = Pool::new(4)?;
    for i in 0..12 {
        pool.apply(fn_, i)?;
    }
    pool.close();
    pool.join()?;
    drop(pool);

    // Callbacks run in the parent.
    println!("主进程pid: {}", std::process::id());
    let pool = Pool::new(2)?;
    for i in 0..4 {
        pool.apply_async_with(
            fn_fails,
            i,
            |args: &i32| {
                println!(
                    "callback--> pid:{:5}, type(args)i32, args:{}",
                    std::process::id(),
                    args
                )
            },
            |err: &Error| {
                let args = match err {
                    Error::TaskFailed(message) => message.clone(),
                    other => other.to_string(),
                };
                println!(
                    "error_callback--> pid:{:5}, type(args)Error::TaskFailed, args:{}",
                    std::process::id(),
                    args
                )
            },
        )?;
    }
    pool.close();
    pool.join()?;
    drop(pool);

    // The workers fill a manager's list: the proxy travels with each task.
    let manager = Manager::start()?;
    let li = manager.list_from(&[1i64, 2, 3, 4])?;
    let pool = Pool::new(2)?;
    for i in 0..4 {
        pool.apply_async(fill, (i, li.clone()))?;
    }
    pool.close();
    pool.join()?;
    println!("主进程--> {:?}", li.to_vec()?);
    Ok(())
}
