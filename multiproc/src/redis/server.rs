//! [`Server`]: a throw-away `redis-server` child for tests, examples and benchmarks.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::link::Link;
use crate::error::{Error, Result};
use crate::pid::Pid;

/// How long a fresh server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` started by this process: loopback only, no persistence, its files in
/// a temporary folder. Dropping it kills the server (by its process id) and removes the
/// folder, so a test that fails leaves nothing behind.
///
/// It is for tests, examples and benchmarks; a real deployment runs its own server.
pub struct Server {
    child: Option<Child>,
    dir: PathBuf,
    url: String,
    port: Option<u16>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url)
            .field("pid", &self.child.as_ref().map(Child::id))
            .finish()
    }
}

/// Where a server listens.
enum Listen {
    Tcp(Vec<IpAddr>, u16),
    Unix,
}

impl Server {
    /// Starts a server on `127.0.0.1` at a free port.
    ///
    /// # Errors
    /// [`Error::Io`] ([`io::ErrorKind::NotFound`]) when `redis-server` is not installed;
    /// [`Error::Io`] when it does not start, with the end of its log.
    pub fn start() -> Result<Server> {
        let mut last = None;
        // Another process may take the free port between our probe and the server's bind.
        for _ in 0..3 {
            match Server::spawn(Listen::Tcp(vec![LOOPBACK], free_port()?)) {
                Ok(s) => return Ok(s),
                Err(e) if not_installed(&e) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("three attempts"))
    }

    /// Starts a server on `port` of each address of `bind` (the URL names the first):
    /// to restart one on the port of a killed one, or to serve other network namespaces.
    /// Protected mode is off when an address is not loopback (the server has no password:
    /// bind only addresses of private test networks).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty `bind`; otherwise as [`start`](Self::start).
    pub fn start_on(bind: &[IpAddr], port: u16) -> Result<Server> {
        if bind.is_empty() {
            return Err(Error::InvalidArgument("no address to bind".into()));
        }
        Server::spawn(Listen::Tcp(bind.to_vec(), port))
    }

    /// Starts a server that listens on a Unix socket only, in its temporary folder.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_unix() -> Result<Server> {
        Server::spawn(Listen::Unix)
    }

    /// Whether `redis-server` can be run here.
    pub fn is_installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn spawn(listen: Listen) -> Result<Server> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "multiproc-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut server = Server {
            child: None,
            dir,
            url: String::new(),
            port: None,
        };
        let mut cmd = Command::new("redis-server");
        cmd.arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(&server.dir)
            .arg("--logfile")
            .arg(server.dir.join("log"))
            .arg("--daemonize")
            .arg("no");
        match listen {
            Listen::Tcp(bind, port) => {
                let protected = bind.iter().all(IpAddr::is_loopback);
                cmd.arg("--protected-mode")
                    .arg(if protected { "yes" } else { "no" })
                    .arg("--bind")
                    .args(bind.iter().map(IpAddr::to_string))
                    .arg("--port")
                    .arg(port.to_string());
                server.url = format!("redis://{}/0", SocketAddr::new(bind[0], port));
                server.port = Some(port);
            }
            Listen::Unix => {
                let socket = server.dir.join("redis.sock");
                cmd.arg("--protected-mode")
                    .arg("yes")
                    .arg("--port")
                    .arg("0")
                    .arg("--unixsocket")
                    .arg(&socket)
                    .arg("--unixsocketperm")
                    .arg("700");
                server.url = format!("redis+unix://{}", socket.display());
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Error::Io(io::Error::new(
                        io::ErrorKind::NotFound,
                        "redis-server is not installed (apt-get install redis-server)",
                    ))
                } else {
                    Error::Io(e)
                }
            })?;
        server.child = Some(child);
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let mut link = Link::open(&self.url)?;
        let start = Instant::now();
        loop {
            if link.call(|c| redis::cmd("PING").query::<String>(c)).is_ok() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || start.elapsed() > READY_TIMEOUT {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(Error::Io(io::Error::other(format!(
                    "redis-server at {} did not start ({}): {}",
                    self.url,
                    exited.map_or("no answer".into(), |s| s.to_string()),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ))));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The URL to connect to: `redis://127.0.0.1:PORT/0` or `redis+unix:///...`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TCP port, for a server started on one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from(c.id()))
    }

    /// The folder that holds the server's files (its log, its socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server with `SIGKILL` and waits for it; the folder stays until drop.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn not_installed(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == io::ErrorKind::NotFound)
}
