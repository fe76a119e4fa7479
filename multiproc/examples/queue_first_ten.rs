//! Seed 004: 50 buyers race for 10 wristbands; each tries once, without waiting, to put its
//! pid into a queue of 10. Exactly the first ten get in.
//!
//! Run: `cargo run --example queue_first_ten`. Prints `排名1号的,用户<pid>` to `排名10号
//! 的,用户<pid>`, then how many buyers found the queue full, then `结束`.

use multiproc::{Process, Queue};

/// Runs the example; `tour` may call it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q: Queue<u32> = Queue::bounded(10)?;
    let mut buyers = Vec::new();
    for _ in 0..50 {
        let q = q.clone();
        buyers.push(Process::new(move || q.try_put(std::process::id()).is_ok()).start()?);
    }
    let mut full = 0;
    for mut b in buyers {
        if !b.join()? {
            full += 1;
        }
    }
    for i in 1..=10 {
        println!("排名{i}号的,用户{}", q.get()?);
    }
    println!("{full} buyers found the queue full");
    println!("结束");
    Ok(())
}
