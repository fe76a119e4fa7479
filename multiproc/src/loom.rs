//! Switches atomics and `UnsafeCell` to loom's models under `--cfg loom`.
//!
//! Lock-free code (`raw/`, `queue/ring.rs`) imports its atomics from here so its
//! loom models exercise the very code that runs in production.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
