//! The fast path between a proxy's connection and its server thread on the same machine: a
//! mailbox in shared memory that carries each request and its response, so a round trip
//! costs two hand-offs through memory instead of two socket messages and two scheduler
//! wake-ups.
//!
//! The client makes the mailbox and sends it over the (unix socket) connection it has just
//! opened; from then on both ends exchange messages through it and the socket carries only
//! what does not fit (a message longer than [`CAPACITY`]: the mailbox then says "on the
//! socket" and the message follows there) and tells each side whether the other is still
//! there: a waiter that has slept [`LIVENESS_PERIOD`] without a message looks at the
//! socket, where end of file means the peer is gone (a process killed mid-call included).
//!
//! Both sides wait by spinning first, which pays only while they run on different CPUs:
//! sharing one, each hand-off waits for the other to be scheduled (4.1 us an operation
//! here, against 1.2 us on two CPUs). The scheduler places a new server thread beside its
//! client and, as neither ever sleeps, keeps them there, with another CPU idle. So the
//! client notes its CPU with each request, and a server thread that finds itself on the
//! same one (looked at every [`SHARE_CHECK`] requests) moves itself to another CPU its
//! affinity allows. Only the server's own thread moves; the user's never do.
//!
//! Either side may be hostile (a client that scribbles on the mailbox): every access is
//! atomic, so the worst a scribbler gets is a message that does not decode, which ends its
//! own connection as a malformed socket message would.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::protocol::{decode, encode};
use crate::connection::Connection;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::mem::segment::{Kind, Segment};
use crate::raw::mailbox::{RawMailbox, Turn};
use crate::raw::LIVENESS_PERIOD;
use crate::sys;

const KIND: Kind = Kind(*b"MBOX");

/// The longest message the mailbox itself carries; longer ones go on the socket.
pub(crate) const CAPACITY: usize = 64 * 1024;

/// How many requests a server thread serves between two looks at whether it shares its
/// client's CPU (a look is a `sched_getcpu`, which costs no system call).
const SHARE_CHECK: u32 = 128;

/// Where the message area starts: after the signalling words, on a cache line of its own.
const DATA: usize = 64;

const PAYLOAD: usize = DATA + CAPACITY;

/// The length that says "the message follows on the socket".
const ON_SOCKET: u64 = u64::MAX;

const _: () = assert!(std::mem::size_of::<RawMailbox>() <= DATA);

/// A mailbox: one shared segment. It travels (as its segment) through the connection it
/// serves.
#[derive(Clone)]
pub(crate) struct Mailbox {
    seg: Segment,
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox").finish_non_exhaustive()
    }
}

impl Mailbox {
    /// A new, empty mailbox.
    pub(crate) fn create() -> Result<Mailbox> {
        Ok(Mailbox {
            seg: Segment::create(KIND, PAYLOAD, 8)?,
        })
    }

    fn state(&self) -> &RawMailbox {
        self.seg.get::<RawMailbox>(0)
    }

    fn words(&self) -> &[AtomicU64] {
        self.seg.get_slice::<AtomicU64>(DATA, CAPACITY / 8)
    }

    /// Copies `bytes` into the message area (the caller checked they fit).
    fn write(&self, bytes: &[u8]) {
        for (word, chunk) in self.words().iter().zip(bytes.chunks(8)) {
            let mut le = [0u8; 8];
            le[..chunk.len()].copy_from_slice(chunk);
            word.store(u64::from_le_bytes(le), Ordering::Relaxed);
        }
        self.state()
            .len
            .store(bytes.len() as u64, Ordering::Relaxed);
    }

    /// The message in the area: its bytes, or `None` when it follows on the socket.
    fn read(&self) -> Result<Option<Vec<u8>>> {
        let len = self.state().len.load(Ordering::Relaxed);
        if len == ON_SOCKET {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= CAPACITY)
            .ok_or_else(|| Error::protocol("the mailbox announces a message longer than it"))?;
        let mut out = Vec::with_capacity(len + 8);
        for word in &self.words()[..len.div_ceil(8)] {
            out.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        out.truncate(len);
        Ok(Some(out))
    }
}

impl Serialize for Mailbox {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.seg.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Mailbox {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Mailbox, D::Error> {
        let seg =
            Segment::deserialize_as(d, KIND, |size| (size == PAYLOAD).then_some((PAYLOAD, 8)))
                .map_err(D::Error::custom)?;
        Ok(Mailbox { seg })
    }
}

/// Which end of the mailbox this process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Sends requests, receives responses.
    Client,
    /// Receives requests, sends responses.
    Server,
}

/// One end of a mailbox and the connection beside it.
#[derive(Debug)]
pub(crate) struct MailboxEnd {
    mailbox: Mailbox,
    side: Side,
    /// The sequence number of the last message received.
    seen: u32,
    /// Requests received (a server end's count, for [`SHARE_CHECK`]).
    served: u32,
}

impl MailboxEnd {
    /// Takes `side` of `mailbox`, which has carried no message yet in the direction this
    /// end receives.
    pub(crate) fn new(mailbox: Mailbox, side: Side) -> MailboxEnd {
        let mut end = MailboxEnd {
            mailbox,
            side,
            seen: 0,
            served: 0,
        };
        end.seen = end.incoming().current();
        end
    }

    fn outgoing(&self) -> &Turn {
        match self.side {
            Side::Client => &self.mailbox.state().request,
            Side::Server => &self.mailbox.state().response,
        }
    }

    fn incoming(&self) -> &Turn {
        match self.side {
            Side::Client => &self.mailbox.state().response,
            Side::Server => &self.mailbox.state().request,
        }
    }

    /// Sends one message: in the mailbox, or on `conn` when it is too long.
    pub(crate) fn send<T: Serialize>(&mut self, conn: &mut Connection, msg: &T) -> Result<()> {
        let bytes = encode(msg)?;
        if self.side == Side::Client {
            let cpu = sys::process::current_cpu().map_or(0, |c| c.wrapping_add(1));
            self.mailbox
                .state()
                .client_cpu
                .store(cpu, Ordering::Relaxed);
        }
        if bytes.len() <= CAPACITY {
            self.mailbox.write(&bytes);
            self.outgoing().post();
            return Ok(());
        }
        // Posted before the bytes are written to the socket, so a waiter that finds the
        // socket readable always sees the post first (see `recv`).
        self.mailbox.state().len.store(ON_SOCKET, Ordering::Relaxed);
        self.outgoing().post();
        conn.send(msg)
    }

    /// Receives one message, waiting as long as it takes while the peer lives.
    ///
    /// # Errors
    /// [`Error::Eof`] once the peer closed its end of `conn` (it exited or was killed)
    /// without posting; [`Error::Protocol`] or [`Error::Codec`] for a message that does not
    /// decode.
    pub(crate) fn recv<T: DeserializeOwned>(&mut self, conn: &mut Connection) -> Result<T> {
        loop {
            if let Some(now) = self
                .incoming()
                .wait(self.seen, Deadline::after(LIVENESS_PERIOD))
            {
                self.seen = now;
                break;
            }
            // Nothing travels on the socket unannounced, so a readable socket with no
            // post is a closed one (or a peer breaking the protocol).
            if conn.poll(Some(Duration::ZERO))? {
                let now = self.incoming().current();
                if now != self.seen {
                    self.seen = now;
                    break;
                }
                return Err(Error::Eof);
            }
        }
        if self.side == Side::Server {
            self.served = self.served.wrapping_add(1);
            if self.served % SHARE_CHECK == 0 {
                self.leave_a_shared_cpu();
            }
        }
        match self.mailbox.read()? {
            Some(bytes) => decode(&bytes),
            None => conn.recv(),
        }
    }

    /// Moves this (server) thread to another CPU when it runs on its client's: see the
    /// module's documentation. Best effort: an affinity that cannot be read or set leaves
    /// the thread where it is.
    fn leave_a_shared_cpu(&self) {
        let client = self.mailbox.state().client_cpu.load(Ordering::Relaxed);
        if let Some(here) = sys::process::current_cpu() {
            if client == here.wrapping_add(1) {
                let _ = sys::process::move_off_cpu(here);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_the_mailbox_and_long_ones_through_the_socket() {
        let (mut a, mut b) = crate::connection::pipe().unwrap();
        let mailbox = Mailbox::create().unwrap();
        a.send(&mailbox).unwrap();
        let theirs: Mailbox = b.recv().unwrap();
        let mut client = MailboxEnd::new(mailbox, Side::Client);
        let mut server = MailboxEnd::new(theirs, Side::Server);
        for msg in [vec![1u8, 2, 3], vec![], vec![7; CAPACITY * 2]] {
            let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
            let echo = std::thread::spawn(move || {
                let got: Vec<u8> = server.recv(&mut b2).unwrap();
                server.send(&mut b2, &got).unwrap();
                server
            });
            client.send(&mut a2, &msg).unwrap();
            let back: Vec<u8> = client.recv(&mut a2).unwrap();
            assert_eq!(back, msg);
            server = echo.join().unwrap();
        }
    }

    #[test]
    fn a_waiter_sees_the_peer_close_its_socket() {
        let (mut a, b) = crate::connection::pipe().unwrap();
        let mut client = MailboxEnd::new(Mailbox::create().unwrap(), Side::Client);
        drop(b);
        let t = std::time::Instant::now();
        assert!(matches!(client.recv::<u8>(&mut a), Err(Error::Eof)));
        assert!(t.elapsed() < LIVENESS_PERIOD * 3);
    }

    #[test]
    fn a_scribbled_length_is_an_error_not_a_panic() {
        let (mut a, _b) = crate::connection::pipe().unwrap();
        let mailbox = Mailbox::create().unwrap();
        mailbox
            .state()
            .len
            .store(CAPACITY as u64 + 1, Ordering::Relaxed);
        mailbox.state().response.post();
        let mut client = MailboxEnd {
            mailbox,
            side: Side::Client,
            seen: 0,
            served: 0,
        };
        assert!(matches!(client.recv::<u8>(&mut a), Err(Error::Protocol(_))));
    }
}
