//! One connection to a Redis server, opened from a URL and opened again after a failure,
//! and the reading of the server's replies.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::time::Duration;

use redis::{RedisError, Value};

use crate::error::{Error, Result};

/// How long a connection attempt may take: a server on another machine that does not
/// answer in this time counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one reply may take. Blocking reads block for less (see `stream.rs`), so only a
/// server that stopped answering (stopped, partitioned) runs into it.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one Redis server, by URL.
///
/// Nothing is connected until the first call. A call that fails on the connection (server
/// down, connection dropped, no answer in time) drops it and reports the failure; the next
/// call connects again, so a server that comes back is used again without the caller
/// doing anything.
pub(crate) struct Link {
    client: redis::Client,
    /// The URL without its password, for error messages.
    shown: String,
    conn: Option<redis::Connection>,
    /// The server's `run_id` at the last connection.
    run_id: Option<String>,
    /// How many times a reconnection found a different `run_id`: the server restarted
    /// (and, without persistence, forgot everything).
    restarts: u64,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.shown)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl Link {
    /// A link to the server at `url` (`redis://host:port/db`, `rediss://...`,
    /// `redis+unix:///path/to/socket?db=N`, `unix:///path`); nothing is connected yet.
    pub(crate) fn open(url: &str) -> Result<Link> {
        let shown = hide_password(url);
        let client = redis::Client::open(url)
            .map_err(|e| Error::InvalidArgument(format!("not a redis URL: {shown}: {e}")))?;
        Ok(Link {
            client,
            shown,
            conn: None,
            run_id: None,
            restarts: 0,
        })
    }

    /// The URL, without its password.
    pub(crate) fn url(&self) -> &str {
        &self.shown
    }

    /// How many times the server was found restarted on reconnection.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Runs `f` on the connection, connecting first if needed. When a connection kept
    /// from an earlier call turns out to be dead (the server restarted or dropped idle
    /// clients), `f` runs once more on a fresh one: so use `call` only for commands that
    /// may run twice (reads, idempotent writes, and writes whose duplicates the caller
    /// removes); use [`call_once`](Self::call_once) for the others.
    ///
    /// # Errors
    /// [`Error::Io`] naming the server when it cannot be reached or the connection fails
    /// ([`io::ErrorKind::ConnectionRefused`] while it is down); [`Error::Remote`] for an
    /// error reply; [`Error::Protocol`] for a reply of an unexpected shape.
    pub(crate) fn call<T>(
        &mut self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let reused = self.conn.is_some();
        match self.attempt(&mut f) {
            Err(e) if reused && is_dropped(&e) => self.attempt(&mut f),
            other => other,
        }
        .map_err(|e| self.error(e))
    }

    /// As [`call`](Self::call), and never runs `f` twice: a dead kept connection is
    /// reported as the failure.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub(crate) fn call_once<T>(
        &mut self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        self.attempt(&mut f).map_err(|e| self.error(e))
    }

    fn attempt<T>(
        &mut self,
        f: &mut impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.connect()?,
        };
        f(conn).inspect_err(|e| {
            if e.code().is_none() {
                // Not an error reply: the connection may be out of step; drop it.
                self.conn = None;
            }
        })
    }

    fn connect(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        let mut conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(READ_TIMEOUT))?;
        conn.set_write_timeout(Some(READ_TIMEOUT))?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
        let run_id = info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|s| s.trim().to_string());
        if self.run_id.is_some() && run_id != self.run_id {
            self.restarts += 1;
        }
        self.run_id = run_id;
        Ok(self.conn.insert(conn))
    }

    /// The crate's error for a failed call, naming the server.
    pub(crate) fn error(&self, e: RedisError) -> Error {
        let url = &self.shown;
        if e.code().is_some() {
            return Error::Remote(format!("redis server {url}: {e}"));
        }
        if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
            let kind = if e.is_connection_refusal() {
                io::ErrorKind::ConnectionRefused
            } else if e.is_timeout() {
                io::ErrorKind::TimedOut
            } else if e.is_connection_dropped() {
                io::ErrorKind::ConnectionReset
            } else {
                io::ErrorKind::NotConnected
            };
            return Error::Io(io::Error::new(
                kind,
                format!("redis server {url} is unreachable: {e}"),
            ));
        }
        Error::protocol(format!("redis server {url}: {e}"))
    }
}

/// Whether `e` says the connection is gone (rather than slow, or an error reply).
fn is_dropped(e: &RedisError) -> bool {
    e.code().is_none() && !e.is_timeout() && (e.is_io_error() || e.is_connection_dropped())
}

/// `redis://user:secret@host/0` shown as `redis://user:***@host/0`.
fn hide_password(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[start..];
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}{}:***{}", &url[..start], &rest[..colon], &rest[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Whether `e` is the server's "no such consumer group" (the stream or the group is gone,
/// for instance after a restart without persistence).
pub(crate) fn is_no_group(e: &Error) -> bool {
    matches!(e, Error::Remote(m) if m.contains("NOGROUP"))
}

/// A reply read as a byte string.
pub(crate) fn bytes(v: Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(shape("a string", &other)),
    }
}

/// A reply read as text.
pub(crate) fn text(v: Value) -> Result<String> {
    String::from_utf8(bytes(v)?).map_err(|e| Error::protocol(format!("redis reply: {e}")))
}

/// A reply read as an integer.
pub(crate) fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| shape("an integer", v)),
        other => Err(shape("an integer", other)),
    }
}

/// A reply read as an array; a nil reply is an empty one.
pub(crate) fn array(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        Value::Map(pairs) => Ok(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        other => Err(shape("an array", &other)),
    }
}

fn shape(wanted: &str, got: &Value) -> Error {
    Error::protocol(format!("redis reply: expected {wanted}, got {got:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            hide_password("redis://u:secret@h:1/0"),
            "redis://u:***@h:1/0"
        );
        assert_eq!(hide_password("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(
            hide_password("redis+unix:///tmp/x.sock"),
            "redis+unix:///tmp/x.sock"
        );
    }

    #[test]
    fn a_bad_url_is_invalid_argument() {
        assert!(matches!(
            Link::open("http://example.org"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_server_that_is_down_is_a_refused_connection_naming_it() {
        // Port 1 on loopback: nothing listens there.
        let mut link = Link::open("redis://127.0.0.1:1/0").unwrap();
        let e = link
            .call(|c| redis::cmd("PING").query::<String>(c))
            .unwrap_err();
        let Error::Io(io) = &e else { panic!("{e:?}") };
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        assert!(e.to_string().contains("redis://127.0.0.1:1/0"), "{e}");
    }
}
