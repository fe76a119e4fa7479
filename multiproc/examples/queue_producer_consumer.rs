//! Seed 002 (and 003): a bounded queue between processes; blocking, non-blocking and timed
//! put and get; `Full` hands the value back, `Empty` says there was nothing.
//!
//! Run: `cargo run --example queue_producer_consumer`. Prints the puts and gets of a queue
//! of 3, then what two producers and two consumers exchanged, then `结束`.
//!
//! Python's `put` on a full queue without a timeout blocks forever (the seed's cursor "hangs
//! there"); here a blocked put waits for a consumer in another process, shown at the end.

use std::time::Duration;

use multiproc::{Error, Process, PutError, Queue};
use serde::{Deserialize, Serialize};

/// The values the seed puts: a string, a list, a dict, a number.
#[derive(Debug, Serialize, Deserialize)]
enum Item {
    Text(String),
    List(Vec<i32>),
    Dict(Vec<(String, i32)>),
    Number(i64),
}

/// Prints an item as Python's `print` would: `haha`, `[1, 2]`, `{'a': 1}`, `5`.
impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Text(s) => write!(f, "{s}"),
            Item::List(v) => write!(f, "{v:?}"),
            Item::Dict(pairs) => {
                let body: Vec<String> = pairs.iter().map(|(k, v)| format!("'{k}': {v}")).collect();
                write!(f, "{{{}}}", body.join(", "))
            }
            Item::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Runs the example; `tour` may call it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q: Queue<Item> = Queue::bounded(3)?;
    for item in [
        Item::Text("haha".into()),
        Item::List(vec![1, 2]),
        Item::Dict(vec![("a".into(), 1)]),
    ] {
        println!("put {item}");
        q.put(item)?;
    }
    println!("qsize {}, full {}", q.qsize(), q.is_full());
    match q.try_put(Item::Number(5)) {
        Err(PutError::Full(back)) => println!("try_put: Full, {back} came back"),
        other => return Err(format!("expected Full, got {other:?}").into()),
    }
    // Python raises `queue.Full` / `queue.Empty` for timed calls too; here a timed call
    // says Timeout, a try says Full / Empty. The lines keep Python's names.
    match q.put_timeout(Item::Number(5), Duration::from_millis(100)) {
        Err(PutError::Timeout(_)) => println!("put_timeout 0.1 s: Full"),
        other => return Err(format!("expected Timeout, got {other:?}").into()),
    }
    for _ in 0..3 {
        println!("get {}", q.get()?);
    }
    match q.try_get() {
        Err(Error::Empty) => println!("try_get: Empty"),
        other => return Err(format!("expected Empty, got {other:?}").into()),
    }
    match q.get_timeout(Duration::from_millis(100)) {
        Err(Error::Timeout) => println!("get_timeout 0.1 s: Empty"),
        other => return Err(format!("expected Timeout, got {other:?}").into()),
    }

    // Two producers and two consumers share one queue of 3: producers block while it is
    // full, consumers while it is empty; one `None` per consumer tells it to stop.
    let work: Queue<Option<u32>> = Queue::bounded(3)?;
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let work = work.clone();
        consumers.push(
            Process::new(move || {
                let mut got = Vec::new();
                while let Some(n) = work.get().unwrap() {
                    got.push(n);
                }
                got
            })
            .start()?,
        );
    }
    let mut producers = Vec::new();
    for p in 0..2 {
        let work = work.clone();
        producers.push(
            Process::new(move || {
                for i in 0..5 {
                    work.put(Some(p * 100 + i)).unwrap();
                }
            })
            .start()?,
        );
    }
    for mut p in producers {
        p.join()?;
    }
    for _ in 0..2 {
        work.put(None)?;
    }
    let mut all = Vec::new();
    for mut c in consumers {
        all.extend(c.join()?);
    }
    all.sort_unstable();
    println!("2 producers, 2 consumers: {all:?}");
    println!("结束");
    Ok(())
}
