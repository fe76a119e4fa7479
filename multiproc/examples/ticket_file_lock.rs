//! Seed 004: buyers race for the last ticket in a JSON file. Looking is concurrent; buying
//! (read, decrement, write) happens under one `Lock`, so the ticket is sold exactly once
//! and the count never goes below zero.
//!
//! Run: `cargo run --example ticket_file_lock -- [buyers]` (4 to 50, default 10). Each buyer
//! prints the seed's lines: `<pid>查看了票数剩余1` (it looked: one ticket left), then
//! `用户<pid>购买成功` (bought it: exactly one buyer) or `用户<pid>购买失败` (found none);
//! the parent ends with `sold: 1` and `tickets left: 0`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use multiproc::{Lock, Process};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Tickets {
    count: i64,
}

fn read(path: &Path) -> Result<Tickets, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// Replaces the file atomically (write a temporary file, then rename it over): buyers who
/// only look read without the lock, and must see the old file or the new one, never a
/// half-written one.
fn write(path: &Path, t: &Tickets) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string(t)?)?;
    Ok(std::fs::rename(&tmp, path)?)
}

/// A short pseudo-random pause (the seed sleeps 1 to 3 s; milliseconds show the same race).
fn pause(salt: u32) {
    let ms = (std::process::id().wrapping_mul(2_654_435_761) ^ salt) % 20;
    std::thread::sleep(Duration::from_millis(u64::from(ms) + 1));
}

fn search(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    pause(1);
    // print(f'{os.getpid()}查看了票数剩余{dic["count"]}')
    println!("{}查看了票数剩余{}", std::process::id(), read(path)?.count);
    Ok(())
}

fn paid(path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let mut t = read(path)?;
    if t.count > 0 {
        t.count -= 1;
        pause(2); // between reading and writing: without the lock, others would buy too
        write(path, &t)?;
        println!("用户{}购买成功", std::process::id());
        Ok(true)
    } else {
        println!("用户{}购买失败", std::process::id());
        Ok(false)
    }
}

/// Removes the ticket directory however the example ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the example.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let buyers: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 10,
    };
    if !(4..=50).contains(&buyers) {
        return Err(format!("buyers must be 4 to 50, not {buyers}").into());
    }
    let dir =
        TempDir(std::env::temp_dir().join(format!("ticket_file_lock-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let path = dir.0.join("ticket.json");
    write(&path, &Tickets { count: 1 })?;

    let lock = Lock::new()?;
    let children: Vec<_> = (0..buyers)
        .map(|_| {
            let (lock, path) = (lock.clone(), path.clone());
            Process::new(move || -> bool {
                search(&path).expect("search");
                let _guard = lock.lock().expect("lock");
                paid(&path).expect("pay")
            })
            .start()
        })
        .collect::<Result<_, _>>()?;
    let mut sold = 0;
    for mut c in children {
        if c.join()? {
            sold += 1;
        }
    }
    let left = read(&path)?.count;
    println!("sold: {sold}");
    println!("tickets left: {left}");
    Ok(())
}
