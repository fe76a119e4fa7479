//! Python's `multiprocessing`, natively in Rust.
//!
//! (The tour is written as the components land; see the README.)

#![doc(test(attr(deny(warnings))))]

mod error;
mod loom;
mod sys;

pub mod codec;
pub mod connection;
pub mod process;
pub mod queue;

pub use crate::error::{Error, PutError, Result};
pub use crate::process::Signal;
pub use crate::queue::{JoinableQueue, Queue, SimpleQueue};
