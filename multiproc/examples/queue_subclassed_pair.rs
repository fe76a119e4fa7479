//! Seed 002, "通过队列的多进程间通讯--run方法": the queue pair written as two `Process`
//! subclasses. `WriteProcess` puts 0 to 4 into a queue of 5; `ReadProcess` waits a second
//! (so the writer is done), then takes values while the queue is not empty.
//!
//! Run: `cargo run --example queue_subclassed_pair`. Prints `子进程WriteProcess-->`,
//! `put 0` to `put 4`, then, a second later, `子进程ReadProcess-->` and `get 0` to `get 4`.
//!
//! Python's subclass with `__init__(self, q)` and `run(self)` is a struct holding the queue
//! and `impl Run` for it; `Process::new(value)` starts it like `Process(target=...)`.

use std::time::Duration;

use multiproc::{Process, Queue, Run};

/// The seed's `WriteProcess(Process)`: its `__init__` keeps the queue, its `run` fills it.
struct WriteProcess {
    q: Queue<i64>,
}

impl Run for WriteProcess {
    type Output = ();

    fn run(self) {
        println!("子进程WriteProcess-->");
        for i in 0..5 {
            self.q.put(i).expect("the queue has room for 5");
            println!("put {i}");
        }
    }
}

/// The seed's `ReadProcess(Process)`.
struct ReadProcess {
    q: Queue<i64>,
}

impl Run for ReadProcess {
    type Output = ();

    fn run(self) {
        // 确保write_queue中队列已经有值 (make sure the writer has filled the queue)
        std::thread::sleep(Duration::from_secs(1));
        println!("子进程ReadProcess-->");
        while !self.q.is_empty() {
            let s = self.q.get().expect("a value was there");
            println!("get {s}");
        }
    }
}

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::bounded(5)?;
    let mut p1 = Process::new(WriteProcess { q: q.clone() }).start()?; // 创建并开启子进程
    let mut p2 = Process::new(ReadProcess { q }).start()?;
    // Python joins its non-daemon children when the main module ends; here we say so.
    p1.join()?;
    p2.join()?;
    Ok(())
}
