//! Listener / Client: round trips of small messages between two processes that met by
//! address, an authenticated unix socket (authkey handshake done before the clock starts),
//! beside Python's `multiprocessing.connection` Listener/Client and a raw unix socket.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use serde_json::json;

use multiproc::connection::{Client, Listener};

use super::{check, python, warmup};
use crate::child;
use crate::harness::{Counts, Outcome, Result, Sample, Scenario, System, Unit, MULTIPROC};

/// Bytes per message, as in the small pipe round trip.
const SIZE: usize = 8;
const AUTHKEY: &[u8] = b"multiproc-bench";

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![Scenario::new(
        "listener_rt",
        format!("Listener/Client round trip {SIZE} B (unix socket, authkey)"),
        Unit::time("us/RT", 1e6),
        Counts::new(20, 5_000, 50_000),
        vec![
            System::new(MULTIPROC, |_, n| multiproc_round_trip(n)),
            python(
                |n| json!({"scenario": "listener_rt", "n": n, "size": SIZE, "warmup": warmup(n)}),
            ),
            System::new("floor: unix socket (listen/connect)", |_, n| {
                unix_socket_round_trip(n)
            }),
        ],
    )]
}

/// A socket path of this run, in a fresh private directory removed by [`Dir`]'s drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Result<Dir> {
        let path = std::env::temp_dir().join(format!(
            "multiproc-bench-listener-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .subsec_nanos()
        ));
        std::fs::create_dir(&path)?;
        Ok(Dir(path))
    }

    fn socket(&self) -> PathBuf {
        self.0.join("s")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn multiproc_round_trip(n: u64) -> Result<Outcome> {
    let dir = Dir::new()?;
    let address = format!("unix:{}", dir.socket().display());
    let listener = Listener::bind(address.as_str(), Some(AUTHKEY))?;
    let warm = warmup(n);
    let echo = child::fork(move || {
        let mut conn = Client::connect(address.as_str(), Some(AUTHKEY))?;
        for _ in 0..warm + n {
            let message = conn.recv_bytes()?;
            conn.send_bytes(&message)?;
        }
        Ok(())
    })?;
    let mut conn = listener.accept()?;
    let message = [7u8; SIZE];
    let mut round_trip = || -> Result<()> {
        conn.send_bytes(&message)?;
        check(
            "echoed message",
            conn.recv_bytes()?.as_slice(),
            &message[..],
        )
    };
    (0..warm).try_for_each(|_| round_trip())?;
    let sample = Sample::time(n, || (0..n).try_for_each(|_| round_trip()))?;
    echo.wait()?;
    Ok(Outcome::Sample(sample))
}

fn unix_socket_round_trip(n: u64) -> Result<Outcome> {
    let dir = Dir::new()?;
    let path = dir.socket();
    let listener = UnixListener::bind(&path)?;
    let warm = warmup(n);
    let echo = child::fork(move || {
        let mut stream = UnixStream::connect(&path)?;
        let mut buf = [0u8; SIZE];
        for _ in 0..warm + n {
            stream.read_exact(&mut buf)?;
            stream.write_all(&buf)?;
        }
        Ok(())
    })?;
    let (mut stream, _) = listener.accept()?;
    let message = [7u8; SIZE];
    let mut reply = [0u8; SIZE];
    let mut round_trip = || -> Result<()> {
        stream.write_all(&message)?;
        stream.read_exact(&mut reply)?;
        check("echoed message", &reply, &message)
    };
    (0..warm).try_for_each(|_| round_trip())?;
    let sample = Sample::time(n, || (0..n).try_for_each(|_| round_trip()))?;
    echo.wait()?;
    Ok(Outcome::Sample(sample))
}
