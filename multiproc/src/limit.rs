//! How much a peer may make this process allocate with one announced length.
//!
//! Every decoder that reads a length from bytes it did not write (a connection frame, a
//! queue record, a manager message) refuses a length above its limit before it allocates,
//! with [`Error::MessageTooLong`](crate::Error::MessageTooLong). The limit of a connection
//! is configurable ([`Connection::set_max_message`](crate::Connection::set_max_message),
//! [`Listener::set_max_message`](crate::connection::Listener::set_max_message)); queues use
//! the default.
#![forbid(unsafe_code)]

/// The longest message a connection or queue accepts unless told otherwise: 1 GiB.
pub const DEFAULT_MAX_MESSAGE: u64 = 1 << 30;
