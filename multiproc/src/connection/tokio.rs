//! Async forms of [`Connection`]'s calls (feature `tokio`): the socket is registered with
//! the task's tokio reactor (a duplicate of it, for the call), so a task awaiting a message
//! holds no thread. Framing stays exact: each attempt is the non-waiting receive, which
//! takes a whole frame or nothing, so a receive dropped while it awaits loses no message.
//! Once a frame's first bytes are here, the rest is read as the sync forms read it (its
//! sender is writing it); a send awaits room in the socket, then writes its frame whole.
#![forbid(unsafe_code)]

use std::os::fd::AsFd;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{Connection, Listener, Readable, Writable};
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::reactor::register;
use crate::sys;

impl<D> Connection<D> {
    /// This end's socket, registered with the current task's reactor for `interest`.
    fn registered(&self, interest: Interest) -> Result<AsyncFd<std::os::fd::OwnedFd>> {
        register(sys::fd::dup(self.fd.as_fd())?, interest)
    }
}

impl<D: Readable> Connection<D> {
    /// Runs the non-waiting `attempt` until it finds a message, awaiting readability in
    /// between.
    async fn until_received<T>(&mut self, attempt: fn(&mut Self) -> Result<T>) -> Result<T> {
        match attempt(self) {
            Err(Error::Empty) => {}
            done => return done,
        }
        let afd = self.registered(Interest::READABLE)?;
        loop {
            match attempt(self) {
                Err(Error::Empty) => {}
                done => return done,
            }
            afd.readable().await?.clear_ready();
        }
    }

    /// Receives one message and decodes it as a `T`, awaiting it without holding a thread:
    /// the async [`Connection::recv`]. Cancel-safe: dropped before it returns, it has
    /// consumed nothing.
    ///
    /// # Errors
    /// As [`Connection::recv`]; [`Error::InvalidState`] outside a tokio runtime.
    pub async fn recv_async<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.until_received(|c| c.try_recv()).await
    }

    /// Receives one message as raw bytes, awaiting it: the async
    /// [`Connection::recv_bytes`]. Cancel-safe as [`recv_async`](Self::recv_async).
    ///
    /// # Errors
    /// As [`Connection::recv_bytes`]; [`Error::InvalidState`] outside a tokio runtime.
    pub async fn recv_bytes_async(&mut self) -> Result<Vec<u8>> {
        self.until_received(|c| c.recv_bytes_until(Deadline::now(), Error::Empty))
            .await
    }

    /// Awaits a message (or EOF, or a broken connection) being ready to receive, consuming
    /// nothing: the async `poll(None)`.
    ///
    /// # Errors
    /// [`Error::InvalidState`] outside a tokio runtime; [`Error::Io`] if the descriptor is
    /// unusable.
    pub async fn poll_async(&self) -> Result<()> {
        if self.poll(Some(std::time::Duration::ZERO))? {
            return Ok(());
        }
        let afd = self.registered(Interest::READABLE)?;
        loop {
            if self.poll(Some(std::time::Duration::ZERO))? {
                return Ok(());
            }
            afd.readable().await?.clear_ready();
        }
    }
}

impl<D: Writable> Connection<D> {
    /// Awaits room in the socket, then sends `value` as one message: the async
    /// [`Connection::send`]. A message larger than the room left is written whole, as the
    /// sync form writes it (the call then blocks until the peer reads the rest). Dropped
    /// before it returns, it has sent nothing.
    ///
    /// # Errors
    /// As [`Connection::send`]; [`Error::InvalidState`] outside a tokio runtime.
    pub async fn send_async<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.writable().await?;
        self.send(value)
    }

    /// The async [`Connection::send_bytes`] (see [`send_async`](Self::send_async)).
    ///
    /// # Errors
    /// As [`Connection::send_bytes`]; [`Error::InvalidState`] outside a tokio runtime.
    pub async fn send_bytes_async(&mut self, bytes: &[u8]) -> Result<()> {
        self.writable().await?;
        self.send_bytes(bytes)
    }

    async fn writable(&self) -> Result<()> {
        let afd = self.registered(Interest::WRITABLE)?;
        let _ready = afd.writable().await?;
        Ok(())
    }
}

impl Listener {
    /// Accepts the next client, awaiting one without holding a thread: the async
    /// [`Listener::accept`]. Once a client is there, its authkey handshake runs as in the
    /// sync form (bounded by the handshake timeout). Dropped while it awaits, it has
    /// accepted nothing.
    ///
    /// # Errors
    /// As [`Listener::accept`]; [`Error::InvalidState`] outside a tokio runtime.
    pub async fn accept_async(&self) -> Result<Connection> {
        match self.try_accept() {
            Err(Error::WouldBlock) => {}
            done => return done,
        }
        let afd = register(sys::fd::dup(self.as_fd())?, Interest::READABLE)?;
        loop {
            match self.try_accept() {
                Err(Error::WouldBlock) => {}
                done => return done,
            }
            afd.readable().await?.clear_ready();
        }
    }
}
