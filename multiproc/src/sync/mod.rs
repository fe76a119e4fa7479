//! Process-shared synchronisation: [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Condition`], [`Event`], [`Barrier`].
//!
//! Every object lives in an anonymous shared segment, so clones and copies inherited by
//! forked children are the same object. Uncontended operations make no system call;
//! waiting spins briefly and then sleeps on a futex. Locks are robust: a holder that dies
//! inside one is detected and the next locker told ([`LockError::OwnerDied`](crate::LockError::OwnerDied)).

mod barrier;
mod condition;
mod event;
mod lock;
mod rlock;
mod semaphore;

pub use self::barrier::Barrier;
pub use self::condition::Condition;
pub use self::event::Event;
pub use self::lock::{Lock, LockGuard};
pub use self::rlock::{RLock, RLockGuard};
pub use self::semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::{Array, RawArray, RawValue, SharedMemory, Value};

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_move_and_share_between_threads() {
        send_sync::<Lock>();
        send_sync::<RLock>();
        send_sync::<Semaphore>();
        send_sync::<BoundedSemaphore>();
        send_sync::<Condition>();
        send_sync::<Event>();
        send_sync::<Barrier>();
        send_sync::<Value<u64>>();
        send_sync::<Array<f64>>();
        send_sync::<RawValue<i32>>();
        send_sync::<RawArray<u8>>();
        send_sync::<SharedMemory>();
        send_sync::<LockGuard<'static>>();
    }
}
