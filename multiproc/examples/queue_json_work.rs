//! Seed 003: JSON messages through a queue between a sender, a batch sender and a receiver
//! that loops forever and is terminated at the end.
//!
//! Run: `cargo run --example queue_json_work`. Prints 21 `接收到的信息为:` lines (one
//! JSON object, 20 batch strings; the object's line may come anywhere among them), then the
//! receiver's exit code and `结束`.
//!
//! The seed terminates the receiver right after the batch sender joins, which can cut off
//! messages still in the queue. Here the queue is a `JoinableQueue`: the receiver marks each
//! message done after printing it, and the parent waits for that before terminating it, so
//! every message is printed exactly once.

use std::time::Duration;

use multiproc::codec::Json;
use multiproc::{JoinableQueue, Process};
use serde_json::{json, Value};

/// The seed's `Work`: a queue with `send`, `send_all` and `receive`.
#[derive(Clone)]
struct Work {
    queue: JoinableQueue<Value, Json>,
}

impl Work {
    fn send(&self, message: Value) {
        self.queue.put(message).expect("put");
    }

    fn send_all(&self) {
        for i in 0..20 {
            self.send(Value::String(format!("第 {i} 次循环,发送的消息为:{i}")));
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn receive(&self) {
        loop {
            let message = self.queue.get().expect("get");
            match message {
                Value::String(text) => println!("接收到的信息为:{text}"),
                other => println!("接收到的信息为:{other}"),
            }
            self.queue.task_done().expect("task_done");
        }
    }
}

/// Runs the example; `tour` may call it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = Work {
        queue: JoinableQueue::with_codec(None)?,
    };
    let (w1, w2, w3) = (work.clone(), work.clone(), work.clone());
    let mut send_all = Process::new(move || w1.send_all())
        .name("send_all")
        .start()?;
    let mut send =
        Process::new(move || w2.send(json!({"message": "这是一条测试的消息"}))).start()?;
    let mut receive = Process::new(move || w3.receive()).name("receive").start()?;

    send_all.join()?;
    send.join()?;
    work.queue.join()?;
    receive.terminate()?;
    let _ = receive.join();
    // Python's `p.exitcode`: -15 after SIGTERM.
    let code = receive
        .exit_code()
        .map_or("None".to_string(), |c| c.to_string());
    println!("receiver terminated, exit code {code}");
    println!("结束");
    Ok(())
}
