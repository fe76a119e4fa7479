//! Process-shared synchronisation: [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Condition`], [`Event`], [`Barrier`].
//!
//! Every object lives in an anonymous shared segment, so clones and copies inherited by
//! forked children are the same object. Uncontended operations make no system call;
//! waiting spins briefly and then sleeps on a futex. Locks are robust: a holder that dies
//! inside one is detected and the next locker told ([`LockError::OwnerDied`]).

pub(crate) mod park;
pub(crate) mod raw;

mod barrier;
mod condition;
mod event;
mod lock;
mod rlock;
mod semaphore;

pub(crate) use self::lock::outcome as lock_outcome;

pub use self::barrier::{Barrier, BrokenBarrier};
pub use self::condition::Condition;
pub use self::event::Event;
pub use self::lock::{Lock, LockError, LockGuard};
pub use self::rlock::{RLock, RLockGuard};
pub use self::semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};
