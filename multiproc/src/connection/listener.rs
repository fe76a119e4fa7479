//! Named endpoints for processes that are not parent and child: [`Listener`] and
//! [`Client`], Python's `multiprocessing.connection.Listener` / `Client`, wire-compatible
//! with them (frames and authkey handshake).
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::address::{Address, ToAddress};
use super::{auth, Connection};
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::fd::{registry, wait_readable};
use crate::sys;

/// How long an accepted client may take over the authkey handshake, unless
/// [`Listener::set_handshake_timeout`] says otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A socket file is created readable and writable by its owner only.
const SOCKET_FILE_MODE: u32 = 0o600;

/// A listening endpoint that unrelated processes connect to with [`Client::connect`],
/// Python's `multiprocessing.connection.Listener`.
///
/// With an authkey, every accepted connection has passed Python's HMAC challenge in both
/// directions before [`accept`](Self::accept) returns it; Python's own `Client` (3.11's
/// HMAC-MD5 and 3.12's `{sha256}` forms) connects to it, and [`Client::connect`] connects to
/// Python's `Listener`.
///
/// ```
/// use multiproc::connection::{Client, Listener};
/// # fn main() -> multiproc::Result<()> {
/// let key: &[u8] = b"secret";
/// let listener = Listener::bind("tcp:127.0.0.1:0", Some(key))?;
/// let address = listener.local_addr().clone();
/// let client = std::thread::spawn(move || -> multiproc::Result<i32> {
///     let mut conn = Client::connect(&address, Some(key))?;
///     conn.send(&(10, 20))?;
///     conn.recv()
/// });
/// let mut conn = listener.accept()?;
/// let (a, b): (i32, i32) = conn.recv()?;
/// conn.send(&(a + b))?;
/// assert_eq!(client.join().unwrap()?, 30);
/// # Ok(()) }
/// ```
///
/// A unix socket file is created with mode 0600 and removed when the listener is dropped
/// (by the process that owns the listener: a listener moved into a child belongs to the
/// child). A socket file left behind by a listener that crashed does not block the address:
/// `bind` finds that nobody answers on it and replaces it.
pub struct Listener {
    socket: Socket,
    address: Address,
    authkey: Option<Vec<u8>>,
    handshake_timeout: Duration,
    /// The socket file this listener created, to remove on drop.
    file: Option<SocketFile>,
    last_accepted: Mutex<Option<Address>>,
}

enum Socket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A socket file and the identity it had at creation, so drop removes only our own file,
/// never one a later listener put at the same path.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Listener {
    /// Listens at `address` (see [`Address`] for the forms). With `authkey`, each client
    /// must prove it holds the same key (an empty key is a key too); with `None`, clients
    /// are not authenticated, as in Python.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad address; [`Error::Io`] with `AddrInUse` when a
    /// live listener serves the address (or a file that is not a socket sits at the path),
    /// and other `Io` errors from the system.
    pub fn bind(address: impl ToAddress, authkey: Option<&[u8]>) -> Result<Listener> {
        let address = address.to_address()?;
        let (socket, address, file) = match address {
            Address::Unix(path) => {
                let (socket, file) = bind_path(&path)?;
                (Socket::Unix(socket), Address::Unix(path), Some(file))
            }
            Address::Abstract(name) => {
                let addr = UnixAddr::from_abstract_name(&name)?;
                let socket = UnixListener::bind_addr(&addr)
                    .map_err(|e| in_use(e, &Address::Abstract(name.clone())))?;
                socket.set_nonblocking(true)?;
                (Socket::Unix(socket), Address::Abstract(name), None)
            }
            Address::Tcp(addr) => {
                let socket = TcpListener::bind(addr).map_err(|e| in_use(e, &Address::Tcp(addr)))?;
                socket.set_nonblocking(true)?;
                let actual = socket.local_addr()?;
                (Socket::Tcp(socket), Address::Tcp(actual), None)
            }
        };
        let listener = Listener {
            socket,
            address,
            authkey: authkey.map(<[u8]>::to_vec),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            file,
            last_accepted: Mutex::new(None),
        };
        registry::track(listener.as_raw_fd());
        Ok(listener)
    }

    /// The address this listener is bound to, with the port the system chose for
    /// `tcp:...:0`.
    pub fn local_addr(&self) -> &Address {
        &self.address
    }

    /// The address of the last accepted client, when it has one (a TCP client always has;
    /// a unix client usually has none).
    pub fn last_accepted(&self) -> Option<Address> {
        self.last_accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Bounds the authkey handshake of each accepted client (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]): a client that does not finish it in time is refused,
    /// so a silent or slow peer holds `accept` up for at most this long.
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// Waits for a client and returns the connection to it, authenticated when the
    /// listener has an authkey.
    ///
    /// A client that fails the handshake is refused with an error here, and the listener
    /// goes on serving: the next `accept` takes the next client.
    ///
    /// # Errors
    /// [`Error::Authentication`] when the client failed the handshake (wrong key, no key,
    /// garbage, closed, reset, or silent past the handshake timeout): that client is gone
    /// and the listener serves on; [`Error::Io`] when the listener itself failed.
    pub fn accept(&self) -> Result<Connection> {
        self.accept_until(Deadline::NEVER, Error::Timeout)
    }

    /// Accepts a client that is already waiting, without waiting for one.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when no client is waiting; otherwise as [`accept`](Self::accept).
    pub fn try_accept(&self) -> Result<Connection> {
        self.accept_until(Deadline::now(), Error::WouldBlock)
    }

    /// Like [`accept`](Self::accept), waiting at most `timeout` for a client to connect
    /// (its handshake then has its own limit). `Duration::MAX` waits forever.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no client connected in time; otherwise as
    /// [`accept`](Self::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection> {
        self.accept_until(Deadline::after(timeout), Error::Timeout)
    }

    /// Like [`accept_timeout`](Self::accept_timeout), with the limit given as an instant.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no client connected by `deadline`; otherwise as
    /// [`accept`](Self::accept).
    pub fn accept_deadline(&self, deadline: Instant) -> Result<Connection> {
        self.accept_until(Deadline::at(deadline), Error::Timeout)
    }

    /// Closes the listener now (dropping it does too): no client can connect any more, and
    /// a socket file is removed.
    pub fn close(self) {
        drop(self);
    }

    fn accept_until(&self, deadline: Deadline, not_ready: Error) -> Result<Connection> {
        let (fd, peer) = loop {
            match self.socket.accept() {
                Ok(accepted) => break accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A client that gave up while queued; the next one may be fine.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(e.into()),
            }
            if deadline.has_passed() || !wait_readable(&[self.as_raw_fd()], deadline)?[0] {
                return Err(not_ready);
            }
        };
        *self.last_accepted.lock().unwrap_or_else(|p| p.into_inner()) = peer;
        let mut conn = Connection::from(fd);
        if let Some(key) = &self.authkey {
            let limit = Deadline::after(self.handshake_timeout);
            let offer = matches!(self.socket, Socket::Unix(_));
            let records = auth::deliver_challenge(conn.as_fd(), key, limit, offer)
                .and_then(|()| auth::answer_challenge(conn.as_fd(), key, limit))
                .and_then(|offered| match offer && offered {
                    true => take_records_end(&mut conn, limit).map(Some),
                    false => Ok(None),
                })
                .map_err(|e| match e {
                    Error::Timeout => Error::Authentication(format!(
                        "the client did not finish the handshake within {:?}",
                        self.handshake_timeout
                    )),
                    // This client's socket failed (reset, ...): a failed handshake too, so
                    // `Io` from `accept` always means the listener itself.
                    Error::Io(e) => Error::Authentication(format!(
                        "the client's connection failed during the handshake: {e}"
                    )),
                    other => other,
                })?;
            if let Some(records) = records {
                conn = records;
            }
        }
        Ok(conn)
    }
}

/// Between two peers of this library on a unix socket that both offered it, the client
/// sends, right after the handshake, one end of a record socket pair (what [`pipe`]
/// makes), and both sides go on over that pair: a small message then costs one receive
/// call instead of two (see `docs/decisions.md`). Python peers never offer, and keep the
/// stream.
///
/// [`pipe`]: super::pipe
fn take_records_end(conn: &mut Connection, limit: Deadline) -> Result<Connection> {
    let refused =
        |why: String| Error::Authentication(format!("the move to a record socket failed: {why}"));
    let end: Connection = conn
        .recv_until(limit, Error::Timeout)
        .map_err(|e| match e {
            Error::Timeout => e,
            other => refused(other.to_string()),
        })?;
    if end.framing != super::Framing::Records {
        return Err(refused(
            "the client sent a socket that is not a record socket".into(),
        ));
    }
    Ok(end)
}

impl Socket {
    /// Accepts one queued connection as a blocking descriptor; `WouldBlock` when none is.
    fn accept(&self) -> io::Result<(OwnedFd, Option<Address>)> {
        match self {
            Socket::Unix(l) => {
                let (stream, peer) = l.accept()?;
                stream.set_nonblocking(false)?;
                let peer = peer
                    .as_pathname()
                    .map(|p| Address::Unix(p.to_path_buf()))
                    .or_else(|| {
                        peer.as_abstract_name()
                            .map(|n| Address::Abstract(n.to_vec()))
                    });
                Ok((stream.into(), peer))
            }
            Socket::Tcp(l) => {
                let (stream, peer) = l.accept()?;
                stream.set_nonblocking(false)?;
                // Messages go out in one write each; never hold one back for the next.
                stream.set_nodelay(true)?;
                Ok((stream.into(), Some(Address::Tcp(peer))))
            }
        }
    }
}

/// Binds a unix socket file at `path`, replacing a stale one (a socket file nobody listens
/// on, left by a listener that crashed).
fn bind_path(path: &Path) -> Result<(UnixListener, SocketFile)> {
    match sys::socket::listen_unix_path(path, SOCKET_FILE_MODE) {
        Ok(fd) => return Ok(adopt(fd, path)?),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
        Err(e) => return Err(e.into()),
    }
    // Something is at `path`. Judge it under an exclusive lock on the directory, so two
    // processes that both find the same stale file cannot remove each other's fresh socket.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = fs::File::open(dir)?;
    sys::socket::lock_exclusive(dir.as_fd())?;
    loop {
        match sys::socket::listen_unix_path(path, SOCKET_FILE_MODE) {
            Ok(fd) => return Ok(adopt(fd, path)?),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(e.into()),
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            // Gone meanwhile: bind again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        if !meta.file_type().is_socket() {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} exists and is not a socket", path.display()),
            )));
        }
        // A datagram socket cannot connect to a stream listener, but the kernel says why:
        // EPROTOTYPE when a listener is bound there, ECONNREFUSED when nobody is. Unlike a
        // stream connect, the probe never shows up in a live listener's accept queue.
        let probe = UnixDatagram::unbound()?;
        match probe.connect(path) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                // Nobody listens: the file outlived its listener.
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) if sys::socket::is_wrong_socket_type(&e) => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("unix:{} is in use: a listener serves it", path.display()),
                )))
            }
            outcome => {
                let why = match outcome {
                    Ok(()) => "a datagram socket is bound there".to_string(),
                    Err(e) => e.to_string(),
                };
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("unix:{} is in use ({why})", path.display()),
                )));
            }
        }
    }
}

fn adopt(fd: OwnedFd, path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    let meta = fs::symlink_metadata(path)?;
    let file = SocketFile {
        // Absolute, so drop removes the right file even after the process changed directory.
        path: std::env::current_dir()?.join(path),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Ok((UnixListener::from(fd), file))
}

/// `AddrInUse` errors say which address.
fn in_use(e: io::Error, address: &Address) -> Error {
    if e.kind() == io::ErrorKind::AddrInUse {
        Error::Io(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{address} is in use: a listener serves it"),
        ))
    } else {
        e.into()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Dropped because it moved into a child's closure: the child owns the file now.
        let moved_to_child = registry::is_recording();
        registry::release(self.as_raw_fd());
        if moved_to_child {
            return;
        }
        if let Some(file) = &self.file {
            let ours = fs::symlink_metadata(&file.path)
                .is_ok_and(|m| m.dev() == file.dev && m.ino() == file.ino);
            if ours {
                let _ = fs::remove_file(&file.path);
            }
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address.to_string())
            .field("fd", &self.as_raw_fd())
            .field("authenticated", &self.authkey.is_some())
            .finish()
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Socket::Unix(l) => l.as_fd(),
            Socket::Tcp(l) => l.as_fd(),
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// Connects to a [`Listener`] (or to Python's `multiprocessing.connection.Listener`), as
/// Python's `Client()` does. Its constructors return the [`Connection`].
#[derive(Debug)]
pub enum Client {}

impl Client {
    /// Connects to `address` and, with `authkey`, runs the handshake: answers the
    /// listener's challenge, then challenges it. Waits as long as the listener takes to
    /// accept (Python's listener runs the handshake only when its owner calls `accept`).
    ///
    /// # Errors
    /// [`Error::Authentication`] when the keys differ (or the peer speaks no handshake);
    /// [`Error::Io`] when nobody listens there (`ConnectionRefused`, `NotFound`).
    pub fn connect(address: impl ToAddress, authkey: Option<&[u8]>) -> Result<Connection> {
        connect_until(&address.to_address()?, authkey, Deadline::NEVER)
    }

    /// Like [`connect`](Self::connect), but gives up when connecting and the handshake
    /// together take longer than `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when time ran out; otherwise as [`connect`](Self::connect).
    pub fn connect_timeout(
        address: impl ToAddress,
        authkey: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Connection> {
        connect_until(&address.to_address()?, authkey, Deadline::after(timeout))
    }
}

fn connect_until(
    address: &Address,
    authkey: Option<&[u8]>,
    deadline: Deadline,
) -> Result<Connection> {
    let fd: OwnedFd = match address {
        Address::Unix(path) => UnixStream::connect(path)?.into(),
        Address::Abstract(name) => {
            UnixStream::connect_addr(&UnixAddr::from_abstract_name(name)?)?.into()
        }
        Address::Tcp(addr) => {
            let stream = match deadline.remaining() {
                None => TcpStream::connect(addr)?,
                Some(left) => TcpStream::connect_timeout(addr, left.max(Duration::from_millis(1)))
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::TimedOut => Error::Timeout,
                        _ => e.into(),
                    })?,
            };
            stream.set_nodelay(true)?;
            stream.into()
        }
    };
    let conn = Connection::from(fd);
    if let Some(key) = authkey {
        let offer = !matches!(address, Address::Tcp(_));
        let offered = auth::answer_challenge(conn.as_fd(), key, deadline)?;
        auth::deliver_challenge(conn.as_fd(), key, deadline, offer)?;
        if offer && offered {
            // See `take_records_end`: the listener waits for this end.
            let (mine, theirs) = super::pipe()?;
            let mut conn = conn;
            conn.send(&theirs)?;
            return Ok(mine);
        }
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unix socket path in a fresh directory of its own, removed with its file on drop.
    struct SocketDir(PathBuf);

    impl SocketDir {
        fn new(tag: &str) -> SocketDir {
            let dir =
                std::env::temp_dir().join(format!("mp-listener-unit-{tag}-{}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            SocketDir(dir)
        }

        fn address(&self) -> String {
            format!("unix:{}", self.0.join("s").display())
        }
    }

    impl Drop for SocketDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Issue 11, the Listener's speed: two peers of this library on a unix socket with a
    /// key go on over a record socket; over TCP, or without a key, they keep the stream.
    #[test]
    fn rust_peers_with_a_key_on_unix_move_to_a_record_socket() -> Result<()> {
        let dir = SocketDir::new("records");
        for (address, key, framing) in [
            (
                dir.address(),
                Some(&b"k"[..]),
                super::super::Framing::Records,
            ),
            (
                "tcp:127.0.0.1:0".to_string(),
                Some(&b"k"[..]),
                super::super::Framing::Stream,
            ),
            (
                "unix:@mp-unit-nokey".to_string(),
                None,
                super::super::Framing::Stream,
            ),
        ] {
            let listener = Listener::bind(address.as_str(), key)?;
            let at = listener.local_addr().clone();
            let client = std::thread::spawn(move || -> Result<(bool, u32)> {
                let mut conn = Client::connect(&at, key)?;
                conn.send(&41u32)?;
                Ok((conn.framing == framing, conn.recv::<u32>()?))
            });
            let mut conn = listener.accept()?;
            assert_eq!(conn.framing, framing, "{address}");
            let n: u32 = conn.recv()?;
            conn.send(&(n + 1))?;
            assert_eq!(client.join().unwrap()?, (true, 42), "{address}");
        }
        Ok(())
    }

    /// A client that offers the record socket but then sends something else is refused,
    /// like any failed handshake, and the listener serves the next client.
    #[test]
    fn a_client_that_offers_but_sends_no_record_end_is_refused() -> Result<()> {
        let dir = SocketDir::new("norecords");
        let listener = Listener::bind(dir.address().as_str(), Some(b"k"))?;
        let Address::Unix(path) = listener.local_addr().clone() else {
            unreachable!()
        };
        let liar = std::thread::spawn(move || -> Result<()> {
            let stream = UnixStream::connect(&path)?;
            let d = Deadline::after(Duration::from_secs(10));
            assert!(
                auth::answer_challenge(stream.as_fd(), b"k", d)?,
                "the listener offers"
            );
            auth::deliver_challenge(stream.as_fd(), b"k", d, true)?;
            let mut conn = Connection::from(OwnedFd::from(stream));
            conn.send_bytes(b"not a socket")?;
            // Hold the stream open until the listener has judged.
            let _ = conn.poll(Some(Duration::from_secs(10)));
            Ok(())
        });
        let err = listener.accept().unwrap_err();
        assert!(
            matches!(&err, Error::Authentication(e) if e.contains("record socket")),
            "{err}"
        );
        liar.join().unwrap()?;
        let at = listener.local_addr().clone();
        let good = std::thread::spawn(move || Client::connect(&at, Some(b"k"))?.send(&7u8));
        assert_eq!(listener.accept()?.recv::<u8>()?, 7);
        good.join().unwrap()?;
        Ok(())
    }

    #[test]
    fn listener_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Listener>();
        assert_send_sync::<Address>();
    }
}
