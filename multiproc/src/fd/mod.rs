//! Descriptors below both `connection/` and `process/`: which library handles a child keeps
//! ([`registry`]) and waiting for descriptors to become readable ([`wait_readable`]).
#![forbid(unsafe_code)]

pub(crate) mod registry;
mod wait;

pub(crate) use self::wait::wait_readable;
