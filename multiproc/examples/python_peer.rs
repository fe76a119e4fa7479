//! A Rust process and a Python process talk through `multiprocessing.connection`: Python's
//! own wire protocol (frames, authkey handshake, pickle).
//!
//! - `python_peer serve ADDRESS`: a Rust [`Listener`] answers Python's stdlib `Client`.
//!   Requests are tuples: `("add", a, b)`, `("upper", text)`, `("stats", [floats])`,
//!   `("bye",)`; each gets one answer.
//! - `python_peer call ADDRESS`: a Rust [`Client`] asks Python's stdlib `Listener` for
//!   `{"op": "mul", "args": [6, 7]}` and prints the answer.
//! - no arguments: both, with `python3` started here as the other side (skipped with a note
//!   when `python3` is missing).
//!
//! The authkey is `python-peer-demo` on both sides. ADDRESS is `unix:/path` or
//! `tcp:host:port`. Run: `cargo run --example python_peer`. Prints what each side served,
//! then `结束`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use multiproc::codec::Pickle;
use multiproc::connection::{Address, Client, Listener};
use serde_pickle::Value;

const AUTHKEY: &[u8] = b"python-peer-demo";

/// Python's side of `serve`: the stdlib `Client`.
const PY_CLIENT: &str = r##"
import sys, time
from multiprocessing.connection import Client
address = sys.argv[1]
address = address[5:] if address.startswith("unix:") else (
    address[4:].rsplit(":", 1)[0], int(address.rsplit(":", 1)[1]))
for _ in range(600):  # the listener may not be up yet
    try:
        c = Client(address, authkey=b"python-peer-demo")
        break
    except (FileNotFoundError, ConnectionRefusedError):
        time.sleep(0.05)
for request in [("add", 10, 20), ("upper", "héllo"), ("stats", [1.5, 2.5, 3.0]), ("bye",)]:
    c.send(request)
    print("python got", repr(c.recv()), flush=True)
"##;

/// Python's side of `call`: the stdlib `Listener`.
const PY_LISTENER: &str = r##"
import sys
from multiprocessing.connection import Listener
with Listener(sys.argv[1][5:], authkey=b"python-peer-demo") as l:
    print("listening", flush=True)
    with l.accept() as c:
        request = c.recv()
        assert request["op"] == "mul", request
        a, b = request["args"]
        c.send(a * b)
"##;

/// Serves one Python client at `address` until it says `bye`; returns the lines to print.
fn serve(address: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let listener = Listener::bind(address, Some(AUTHKEY))?;
    let mut conn = listener.accept()?;
    let mut log = Vec::new();
    loop {
        // A request of unknown shape is a dynamic pickle value; match on it.
        let request: Value = conn.recv_with::<Pickle, _>()?;
        // Decoded without a schema, a tuple reads as a list.
        let (Value::Tuple(parts) | Value::List(parts)) = request else {
            return Err(format!("not a request: {request:?}").into());
        };
        match parts.as_slice() {
            [Value::String(op), Value::I64(a), Value::I64(b)] if op == "add" => {
                log.push(format!("served add({a}, {b}) = {}", a + b));
                conn.send_with::<Pickle, _>(&(a + b))?;
            }
            [Value::String(op), Value::String(text)] if op == "upper" => {
                log.push(format!("served upper({text:?})"));
                conn.send_with::<Pickle, _>(&text.to_uppercase())?;
            }
            [Value::String(op), Value::List(xs)] if op == "stats" => {
                let xs: Vec<f64> = xs
                    .iter()
                    .filter_map(|x| match x {
                        Value::F64(f) => Some(*f),
                        _ => None,
                    })
                    .collect();
                let sum: f64 = xs.iter().sum();
                log.push(format!("served stats of {} numbers", xs.len()));
                // A BTreeMap becomes a Python dict.
                let stats = BTreeMap::from([("n", xs.len() as f64), ("sum", sum)]);
                conn.send_with::<Pickle, _>(&stats)?;
            }
            [Value::String(op)] if op == "bye" => {
                conn.send_with::<Pickle, _>("bye")?;
                log.push("python said bye".to_string());
                return Ok(log);
            }
            other => return Err(format!("unknown request {other:?}").into()),
        }
    }
}

#[derive(serde::Serialize)]
struct Request {
    op: &'static str,
    args: Vec<i64>,
}

/// Asks the Python listener at `address` to multiply 6 by 7.
fn call(address: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut conn = Client::connect(address, Some(AUTHKEY))?;
    // A struct becomes a dict keyed by its field names.
    let request = Request {
        op: "mul",
        args: vec![6, 7],
    };
    conn.send_with::<Pickle, _>(&request)?;
    let product: i64 = conn.recv_with::<Pickle, _>()?;
    Ok(format!("python answered mul(6, 7) = {product}"))
}

/// Both directions, with `python3` started here as the peer.
fn demo() -> Result<(), Box<dyn std::error::Error>> {
    if Command::new("python3").arg("--version").output().is_err() {
        println!("python3 not found: nothing to talk to");
        println!("结束");
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("python_peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let address = Address::Unix(dir.join("rust.sock")).to_string();
        let py = Command::new("python3")
            .args(["-c", PY_CLIENT, &address])
            .stdout(Stdio::piped())
            .spawn()?;
        for line in serve(&address)? {
            println!("{line}");
        }
        let out = py.wait_with_output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));

        let address = Address::Unix(dir.join("python.sock")).to_string();
        let mut py = Command::new("python3")
            .args(["-c", PY_LISTENER, &address])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut ready = String::new();
        BufReader::new(py.stdout.take().ok_or("no stdout")?).read_line(&mut ready)?;
        println!("{}", call(&address)?);
        py.wait()?;
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
        ["serve", address] => {
            for line in serve(address)? {
                println!("{line}");
            }
        }
        ["call", address] => println!("{}", call(address)?),
        _ => demo()?,
    }
    Ok(())
}
