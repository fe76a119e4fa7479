//! Beyond one machine: [`Queue`], [`Pool`] and [`Dict`] on a Redis server (or Valkey,
//! same protocol), behind the `redis` feature.
//!
//! When one machine is not enough, the same calls work across machines through an
//! existing broker rather than a protocol of this crate's own: every process that reaches
//! the server takes part.
//!
//! | Python / this crate on one machine | here |
//! |---|---|
//! | [`crate::Queue`] | [`Queue`] on a Redis stream and consumer group |
//! | [`crate::Pool`] | [`Pool`] on a task stream, with [`Worker`] processes anywhere |
//! | `Manager().dict()`, [`DictProxy`](crate::manager::DictProxy) | [`Dict`] on a Redis hash |
//!
//! # Connecting
//!
//! Every type takes a URL: `redis://HOST:PORT/DB`, `redis://user:password@HOST:PORT/DB`,
//! `rediss://...` (not built in this crate's default feature set), or
//! `redis+unix:///path/to/redis.sock?db=N` (also `unix://`). Nothing connects until the
//! first call. While the server is unreachable, calls fail with [`Error::Io`] naming it
//! ([`std::io::ErrorKind::ConnectionRefused`] while it is down); the next call connects
//! again, so nothing needs to be rebuilt when the server comes back.
//!
//! # Delivery
//!
//! Queues and pools deliver at least once: a message or task stays pending in the stream's
//! consumer group until its consumer acknowledges it, and one left pending longer than the
//! visibility timeout (its consumer died) goes to another consumer (`XAUTOCLAIM`). After
//! too many deliveries a queue message goes to a dead-letter stream and a pool task fails
//! with [`Error::WorkerDied`]. A pool's caller drops a task's second result, so each
//! result is reported once.
//!
//! What Redis does not promise is not promised here either: a server that restarts
//! without persistence (or fails over to a replica that had not caught up) loses what it
//! held. A pool fails the tasks it had in flight with [`Error::Io`] when it sees the
//! server came back restarted.
//!
//! # No distributed lock
//!
//! There is no lock here, on purpose. A Redis lock (`SET key token NX PX ttl`) expires
//! while its holder may still believe it holds it (a pause, a slow network); only a
//! fencing token checked by the protected resource makes that safe, and the token (`INCR`)
//! must never go backwards. On a server without persistence, which is how these tests and
//! most caches run, a restart resets the counter and hands out old tokens again; with
//! replication, a failover can lose the latest increments and the lock key alike. A lock
//! that is honest only under conditions the crate cannot check would be a trap, so
//! coordinate through the queue (one consumer per message) or through
//! [`Dict::increment`], whose atomicity Redis does guarantee while the server keeps its
//! data.
//!
//! [`Error::Io`]: crate::Error::Io
//! [`Error::WorkerDied`]: crate::Error::WorkerDied
#![forbid(unsafe_code)]

mod dict;
mod link;
mod pool;
mod queue;
mod server;
mod stream;
mod task;
mod worker;

pub use self::dict::Dict;
pub use self::pool::Pool;
pub use self::queue::{Queue, QueueBuilder};
pub use self::server::Server;
pub use self::task::Registry;
pub use self::worker::{
    Worker, WorkerBuilder, DEFAULT_POOL, MAX_DELIVERIES_ENV, POOL_ENV, VISIBILITY_ENV, WORKER_ENV,
};
