//! Seed 003's named pipe ("canal nommé": processes that are not parent and child talk
//! through a name in the file system), done with `mkfifo`, then the same exchange over a
//! [`Listener`], which is what multiproc offers for it.
//!
//! - `fifo_named_pipe writer PATH` / `fifo_named_pipe reader PATH`: the two sides as two
//!   programs started separately; they share nothing but the FIFO's path.
//! - no arguments: makes the FIFO (`mkfifo -m 600`) in a private temp dir, runs the reader
//!   and the writer as two processes that each open it by name, then repeats the exchange
//!   over a `Listener` bound at `unix:@name`.
//!
//! Run: `cargo run --example fifo_named_pipe`. Prints the seed's lines
//! `接收到的信息为:第 0 次循环,发送的消息为:0` ... and `接收到的信息为:{"message":"这是一条测试的消息"}`
//! for each transport, then `结束`.
//!
//! # What the Listener does better than a FIFO
//!
//! - **Messages, not bytes.** A FIFO is a byte stream: the reader must invent framing (here:
//!   one line per message, so no message may contain a newline), and writes over
//!   `PIPE_BUF` (4 KiB) from two writers interleave. A `Connection` carries whole messages
//!   of any size, typed through serde.
//! - **One conversation per client, both ways.** A FIFO is one-way and shared by every
//!   writer, so replies need a second FIFO and nobody knows who wrote what. `accept` gives
//!   each client its own duplex connection.
//! - **Who may talk.** A FIFO trusts every process that can open the file. A `Listener`
//!   can demand an authkey (Python's HMAC handshake), and its socket file is 0600.
//! - **No hangs at open, clear ends.** Opening a FIFO blocks until the other side opens
//!   it; a reader whose writers all left sees EOF only then. `Client::connect` fails at once
//!   when nobody listens, and `recv` reports `Eof` when the peer is gone.
//! - **Nothing left behind.** A FIFO file stays until someone removes it; a `unix:@name`
//!   listener has no file at all, and a `unix:/path` one removes its file when dropped and
//!   replaces a stale one left by a crash.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;

use multiproc::connection::{Client, Listener};
use multiproc::Process;

/// The seed's messages: twenty numbered ones from `send_all`, then `send`'s JSON.
fn messages() -> Vec<String> {
    let mut out: Vec<String> = (0..20)
        .map(|i| format!("第 {i} 次循环,发送的消息为:{i}"))
        .collect();
    out.push(serde_json::json!({"message": "这是一条测试的消息"}).to_string());
    out
}

/// Opens the FIFO for writing (which waits for a reader) and writes one line per message.
fn writer(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut fifo = OpenOptions::new().write(true).open(path)?;
    for m in messages() {
        // One write per line, under PIPE_BUF, so a line is never torn by another writer.
        fifo.write_all(format!("{m}\n").as_bytes())?;
    }
    Ok(())
}

/// Opens the FIFO for reading (which waits for a writer) and prints each line until every
/// writer has closed it.
fn reader(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let fifo = OpenOptions::new().read(true).open(path)?;
    for line in BufReader::new(fifo).lines() {
        println!("接收到的信息为:{}", line?);
    }
    Ok(())
}

fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("fifo_named_pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let path = dir.join("fifo");
        let made = Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(&path)
            .status()?;
        if !made.success() {
            return Err(format!("mkfifo failed: {made}").into());
        }
        // Each side opens the FIFO by its name: they could as well be separate programs
        // (`fifo_named_pipe reader PATH`), as the tests run them.
        let (p1, p2) = (path.clone(), path.clone());
        let mut reader_proc =
            Process::new(move || reader(&p1).map_err(|e| e.to_string())).start()?;
        let mut writer_proc =
            Process::new(move || writer(&p2).map_err(|e| e.to_string())).start()?;
        writer_proc.join()??;
        reader_proc.join()??;
        std::fs::remove_file(&path)?;

        // The same exchange over a Listener: typed messages, no framing of our own.
        let address = format!("unix:@fifo_named_pipe-{}", std::process::id());
        let listener = Listener::bind(address.as_str(), Some(b"seed 003".as_slice()))?;
        let mut sender = Process::new(move || -> Result<(), String> {
            let mut conn = Client::connect(address.as_str(), Some(b"seed 003".as_slice()))
                .map_err(|e| e.to_string())?;
            for m in messages() {
                conn.send(&m).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .start()?;
        let mut conn = listener.accept()?;
        while let Ok(m) = conn.recv::<String>() {
            println!("接收到的信息为:{m}");
        }
        sender.join()??;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    println!("结束");
    Ok(())
}

/// Runs the example; `tour` calls it too (with no arguments: the demo).
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["writer", path] => writer(Path::new(path)),
        ["reader", path] => reader(Path::new(path)),
        _ => demo(),
    }
}
