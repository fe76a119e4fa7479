//! A remote manager: one program serves a dict and a queue at an address, another program
//! that knows only the address and the key uses them (Python's `BaseManager(address,
//! authkey)` with `serve_forever()` and `connect()`).
//!
//! - `manager_remote serve ADDRESS KEY`: serves at `ADDRESS` (`tcp:127.0.0.1:0` picks a
//!   port), prints `serving at <address>`, then waits for `done` in the shared dict and
//!   prints the dict's entries.
//! - `manager_remote use ADDRESS KEY`: connects, takes three words from the queue, writes
//!   their lengths into the dict, then `done`. A wrong key is refused.
//!
//! With no arguments the example runs both, the user as a child process that receives
//! only the address and the key.
//!
//! Run: `cargo run --example manager_remote`. Prints `serving at tcp:127.0.0.1:<port>`,
//! then `alpha 5`, `beta 4`, `gamma 5`.

use std::io::Write;
use std::time::{Duration, Instant};

use multiproc::manager::{DictProxy, QueueProxy};
use multiproc::{Manager, Process};

/// How long the server waits for its user.
const PATIENCE: Duration = Duration::from_secs(60);

fn serve(address: &str, key: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::serve(address, key)?;
    let words = manager.queue::<String>()?;
    let lengths = manager.dict::<String, usize>()?;
    manager.publish("words", &words)?;
    manager.publish("lengths", &lengths)?;
    for w in ["alpha", "beta", "gamma"] {
        words.put(w.to_string())?;
    }
    println!("serving at {}", manager.address());
    std::io::stdout().flush()?;
    let start = Instant::now();
    while !lengths.contains_key(&"done".to_string())? {
        if start.elapsed() > PATIENCE {
            return Err("nobody used the manager".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for (word, len) in lengths.items()? {
        if word != "done" {
            println!("{word} {len}");
        }
    }
    Ok(())
}

fn use_it(address: &str, key: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::connect(address, key)?;
    let words: QueueProxy<String> = manager.lookup("words")?;
    let lengths: DictProxy<String, usize> = manager.lookup("lengths")?;
    for _ in 0..3 {
        let w = words.get_timeout(PATIENCE)?;
        lengths.insert(&w, &w.len())?;
    }
    lengths.insert(&"done".to_string(), &0)?;
    Ok(())
}

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", address, key] => serve(address, key.as_bytes()),
        ["use", address, key] => use_it(address, key.as_bytes()),
        [] => {
            let key = b"a key both programs know";
            let manager = Manager::serve("tcp:127.0.0.1:0", key)?;
            let address = manager.address().to_string();
            let words = manager.queue::<String>()?;
            let lengths = manager.dict::<String, usize>()?;
            manager.publish("words", &words)?;
            manager.publish("lengths", &lengths)?;
            for w in ["alpha", "beta", "gamma"] {
                words.put(w.to_string())?;
            }
            println!("serving at {address}");
            let mut user =
                Process::new(move || use_it(&address, key).map_err(|e| e.to_string())).start()?;
            user.join()??;
            for (word, len) in lengths.items()? {
                if word != "done" {
                    println!("{word} {len}");
                }
            }
            Ok(())
        }
        _ => Err("usage: manager_remote [serve|use ADDRESS KEY]".into()),
    }
}
