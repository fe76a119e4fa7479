//! The shared-memory substrate under every process-shared object: anonymous [`segment`]s,
//! the rule for what may live in them ([`pod`]), and the atomic copies in and out of them
//! ([`cell`]), and the eventfd that wakes async waiters of a segment's object ([`wake`]).
//! It knows nothing of locks; the protocols of `raw` and the user types of
//! `shm`, `sync` and `queue` sit on it.

pub(crate) mod cell;
pub(crate) mod named;
pub(crate) mod pod;
pub(crate) mod segment;
pub(crate) mod wake;
