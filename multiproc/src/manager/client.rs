//! The proxies' side of the wire: one [`Client`] per server address in each process, with
//! a pool of connections, and the [`Handle`] every proxy is (a client and an object id).
//!
//! A call takes an idle connection from the pool (or connects), sends one request, reads
//! one response and gives the connection back. So proxies are `Send + Sync`, threads never
//! wait for each other's round trips, and a proxy blocked in a server-side wait (a queue
//! `get`, a lock `acquire`) holds only its own connection.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::mailbox::{Mailbox, MailboxEnd, Side};
use super::protocol::{Failure, ObjectId, Op, Request, Response};
use crate::connection::{Address, Client as Connect, Connection};
use crate::error::{Error, Result};

/// The connections of one process to one server.
pub(crate) struct Client {
    address: Address,
    authkey: Vec<u8>,
    /// Idle connections, with the fork generation of the process that made them: after
    /// `fork` a child must not use its parent's connections (their replies would
    /// interleave), so it makes its own.
    idle: Mutex<Vec<(u64, Channel)>>,
    /// Set once this process shut the server down: calls fail at once.
    shut_down: AtomicBool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// One connection to the server and, for a server on this machine, the mailbox that
/// carries its requests and responses (`mailbox.rs`).
#[derive(Debug)]
pub(crate) struct Channel {
    conn: Connection,
    mailbox: Option<MailboxEnd>,
}

impl Channel {
    /// One round trip.
    fn call(&mut self, request: &Request) -> Result<Response> {
        match &mut self.mailbox {
            Some(mb) => {
                mb.send(&mut self.conn, request)?;
                mb.recv(&mut self.conn)
            }
            None => {
                self.conn.send(request)?;
                self.conn.recv()
            }
        }
    }
}

/// The clients of this process, so that every proxy for one server shares one pool.
static CLIENTS: Mutex<Vec<Weak<Client>>> = Mutex::new(Vec::new());

/// How many forks lie between the first process and this one: a cheaper test than
/// `getpid` (a system call) on every round trip.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn forked() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

fn fork_generation() -> u64 {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| crate::sys::process::at_fork_child(forked));
    FORKS.load(Ordering::Relaxed)
}

impl Client {
    /// The client of this process for the server at `address` with `authkey`.
    pub(crate) fn get(address: &Address, authkey: &[u8]) -> Arc<Client> {
        let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain(|c| c.strong_count() > 0);
        if let Some(c) = clients
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| c.address == *address && c.authkey == authkey && !c.is_shut_down())
        {
            return c;
        }
        let client = Arc::new(Client {
            address: address.clone(),
            authkey: authkey.to_vec(),
            idle: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
        });
        clients.push(Arc::downgrade(&client));
        client
    }

    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    pub(crate) fn authkey(&self) -> &[u8] {
        &self.authkey
    }

    pub(crate) fn mark_shut_down(&self) {
        self.shut_down.store(true, Ordering::Release);
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    fn gone(&self, why: impl fmt::Display) -> Error {
        Error::ManagerGone(format!("the manager at {} is gone: {why}", self.address))
    }

    /// Makes a new connection (the handshake included), with a mailbox when the server is
    /// on this machine (a unix socket address).
    pub(crate) fn connect(&self) -> Result<Channel> {
        let mut conn =
            Connect::connect(&self.address, Some(&self.authkey)).map_err(|e| match e {
                Error::Io(io) if refused(&io) => self.gone("nobody listens there any more"),
                other => other,
            })?;
        let mailbox = match self.address {
            Address::Tcp(_) => None,
            _ => {
                let mailbox = Mailbox::create()?;
                conn.send(&Request::Attach(mailbox.clone()))
                    .map_err(|e| self.lost(e))?;
                match conn.recv::<Response>().map_err(|e| self.lost(e))? {
                    Response::Unit => Some(MailboxEnd::new(mailbox, Side::Client)),
                    other => return Err(unexpected(other)),
                }
            }
        };
        Ok(Channel { conn, mailbox })
    }

    /// Gives a channel made by [`connect`](Self::connect) to the pool.
    pub(crate) fn give_back(&self, channel: Channel) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((fork_generation(), channel));
    }

    /// The error a call sees when its connection broke: the server is gone.
    fn lost(&self, e: Error) -> Error {
        match e {
            Error::Eof => self.gone("the server closed the connection"),
            Error::Io(io) if refused(&io) => self.gone(io),
            other => other,
        }
    }

    /// One round trip.
    pub(crate) fn request(&self, request: &Request) -> Result<Response> {
        if self.is_shut_down() {
            return Err(self.gone("it was shut down"));
        }
        let me = fork_generation();
        let pooled = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            // Connections inherited from a parent are useless here: forget them.
            idle.retain(|(pid, _)| *pid == me);
            idle.pop()
        };
        let mut channel = match pooled {
            Some((_, channel)) => channel,
            None => self.connect()?,
        };
        let response = channel.call(request).map_err(|e| self.lost(e))?;
        self.give_back(channel);
        Ok(response)
    }
}

fn refused(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotFound
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// What every proxy is: the server's client and the object's id. It serialises as the
/// server's address, its authkey and the id, so a proxy can go to any process (through a
/// connection, a queue, a child's arguments, or stored inside another managed container)
/// and connects from there.
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) client: Arc<Client>,
    pub(crate) id: ObjectId,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.client.address, self.id)
    }
}

impl Handle {
    /// Calls `op` on the object; a try form that found the object not ready is
    /// [`Error::WouldBlock`].
    pub(crate) fn call(&self, op: Op) -> Result<Response> {
        self.call_or(op, Error::WouldBlock)
    }

    /// Calls `op`; `would_block` is the error a try form that would block gives.
    pub(crate) fn call_or(&self, op: Op, would_block: Error) -> Result<Response> {
        match self.client.request(&Request::Call(self.id, op))? {
            Response::Failed(f) => Err(f.into_error(would_block)),
            other => Ok(other),
        }
    }

    /// Calls `op`; the raw failure comes back for the caller to map.
    pub(crate) fn call_raw(&self, op: Op) -> Result<std::result::Result<Response, Failure>> {
        match self.client.request(&Request::Call(self.id, op))? {
            Response::Failed(f) => Ok(Err(f)),
            other => Ok(Ok(other)),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct WireHandle {
    address: String,
    authkey: Vec<u8>,
    id: ObjectId,
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        WireHandle {
            address: self.client.address.to_string(),
            authkey: self.client.authkey.clone(),
            id: self.id,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Handle, D::Error> {
        let wire = WireHandle::deserialize(d)?;
        let address = Address::parse(&wire.address).map_err(serde::de::Error::custom)?;
        Ok(Handle {
            client: Client::get(&address, &wire.authkey),
            id: wire.id,
        })
    }
}

/// The owner token of the calling thread for reentrant locks: its process and thread.
pub(crate) fn owner_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ME: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    (u64::from(std::process::id()) << 32) | ME.with(|m| *m)
}

/// The unexpected-answer error (a server of another version, a corrupted stream).
pub(crate) fn unexpected(r: Response) -> Error {
    Error::protocol(format!("unexpected answer from the manager: {r:?}"))
}
