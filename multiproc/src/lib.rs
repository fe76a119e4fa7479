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
pub mod shm;
pub mod sync;

pub use crate::connection::{pipe, pipe_oneway, Connection};
pub use crate::error::{Error, PutError, Result};
pub use crate::process::{
    active_children, cpu_count, current_process, parent_process, Child, ExitStatus, Process, Run,
    Signal, StartMethod,
};
pub use crate::queue::{JoinableQueue, Queue, SimpleQueue};
pub use crate::shm::{Array, SharedMemory, Value};
pub use crate::sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
