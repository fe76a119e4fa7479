//! Process-shared synchronisation: [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Condition`], [`Event`], [`Barrier`].
//!
//! Every object lives in an anonymous shared segment, so clones and copies inherited by
//! forked children are the same object. Uncontended operations make no system call;
//! waiting spins briefly and then sleeps on a futex. Locks are robust: a holder that dies
//! inside one is detected and the next locker told
//! ([`LockError::OwnerDied`](crate::LockError::OwnerDied)), by every form of the call.
//!
//! # What a call that cannot go on returns
//!
//! Each family has four forms: `x()` waits as long as it takes, `try_x()` never waits,
//! `x_timeout(d)` waits at most `d`, `x_deadline(t)` until the instant `t`.
//!
//! | call (and its forms) | `try_`: would block | `_timeout` / `_deadline`: ran out | previous owner died |
//! |---|---|---|---|
//! | `lock` of [`Lock`], [`RLock`], [`Condition`], [`Value`](crate::Value), [`Array`](crate::Array) | `Err(LockError::WouldBlock)` | `Err(LockError::Timeout)` | `Err(LockError::OwnerDied(guard))`, lock held |
//! | `acquire` of [`Lock`], [`RLock`] | `Err(Error::WouldBlock)` | `Err(Error::Timeout)` | `Ok(Acquired::OwnerDied)`, lock held |
//! | `lock`, `acquire` of [`Semaphore`], [`BoundedSemaphore`] | `Err(Error::WouldBlock)` | `Err(Error::Timeout)` | (no owner) |
//! | `wait`, `wait_while` of [`Condition`] | | `Err(WaitError::Timeout(guard))`, lock held | `Err(WaitError::OwnerDied(guard))` |
//! | `wait` of [`Event`] | ([`Event::is_set`]) | `Err(Error::Timeout)` | |
//! | `wait` of [`Barrier`] | | `Err(Error::Timeout)` for this party, `Err(Error::BrokenBarrier)` for the others | `Err(Error::BrokenBarrier)` |
//!
//! `LockError`, `WaitError` and `Acquired` are at the crate root; each error converts into
//! [`Error`](crate::Error) variant for same-named variant, so `?` keeps the meaning.

mod barrier;
mod condition;
mod event;
mod lock;
mod named;
mod rlock;
mod semaphore;
#[cfg(feature = "tokio")]
mod tokio;

pub use self::barrier::Barrier;
pub use self::condition::Condition;
pub use self::event::Event;
pub use self::lock::{Lock, LockGuard};
pub use self::rlock::{RLock, RLockGuard};
pub use self::semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};

#[cfg(test)]
mod tests {
    use super::*;

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
        send_sync::<LockGuard<'static>>();
    }
}
