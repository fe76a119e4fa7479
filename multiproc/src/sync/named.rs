//! [`Lock`], [`Semaphore`] and [`Event`] under a name, for processes that are not parent and
//! child: one process creates the object, any process of the same user opens it by name.
//!
//! The names live in `/dev/shm` (as [`SharedMemory`](crate::SharedMemory)'s do), mode 0600.
//! A name stays until some process calls `unlink`, and the object lives on while any
//! process has it open. Creation is atomic (see `mem::named`): a creator killed midway
//! leaves nothing under the name, so the next `open_or_create` simply creates it. A
//! process killed while *holding* a named lock is handled like any lock's owner death
//! (the next locker gets `OwnerDied`).
#![forbid(unsafe_code)]

use super::{event, lock, semaphore, Event, Lock, Semaphore};
use crate::error::Result;
use crate::mem::named;

impl Lock {
    /// Creates an unlocked lock under `name`.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// use multiproc::Lock;
    /// let name = format!("doc-lock-{}", std::process::id());
    /// let a = Lock::create(&name)?;
    /// let b = Lock::open(&name)?; // in any process of this user
    /// let _held = a.lock()?;
    /// assert!(b.try_lock().unwrap_err().is_would_block());
    /// Lock::unlink(&name)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) of kind `AlreadyExists` when the name is taken;
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a name that is empty,
    /// over 250 bytes, or holds `/` or NUL.
    pub fn create(name: &str) -> Result<Lock> {
        named::create(name, lock::LAYOUT, |s| Ok(Lock::in_segment(s)))
    }

    /// Opens the lock `name`.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) of kind `NotFound` when nothing has the name, of kind
    /// `InvalidData` when what has it is not a lock; a bad name as in
    /// [`create`](Lock::create).
    pub fn open(name: &str) -> Result<Lock> {
        Ok(Lock::in_segment(named::open(name, lock::LAYOUT)?))
    }

    /// Opens the lock `name`, creating it (unlocked) if it does not exist. Of several
    /// processes racing to create it, one does and the others open it.
    ///
    /// # Errors
    /// As [`open`](Lock::open) and [`create`](Lock::create).
    pub fn open_or_create(name: &str) -> Result<Lock> {
        named::open_or_create(name, lock::LAYOUT, Lock::in_segment, |s| {
            Ok(Lock::in_segment(s))
        })
    }

    /// Removes the name `name`; processes that have the lock open keep using it.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) of kind `NotFound` when nothing has the name.
    pub fn unlink(name: &str) -> Result<()> {
        named::unlink(name, lock::LAYOUT.what)
    }
}

impl Semaphore {
    /// Creates a semaphore of `value` units under `name`.
    ///
    /// # Errors
    /// As [`Lock::create`].
    pub fn create(name: &str, value: u32) -> Result<Semaphore> {
        named::create(name, semaphore::LAYOUT, |s| {
            Ok(Semaphore::init_in(s, value, u32::MAX))
        })
    }

    /// Opens the semaphore `name`.
    ///
    /// # Errors
    /// As [`Lock::open`].
    pub fn open(name: &str) -> Result<Semaphore> {
        Ok(Semaphore::in_segment(named::open(name, semaphore::LAYOUT)?))
    }

    /// Opens the semaphore `name`, creating it with `value` units if it does not exist
    /// (an existing one keeps its count).
    ///
    /// # Errors
    /// As [`Lock::open_or_create`].
    pub fn open_or_create(name: &str, value: u32) -> Result<Semaphore> {
        named::open_or_create(name, semaphore::LAYOUT, Semaphore::in_segment, |s| {
            Ok(Semaphore::init_in(s, value, u32::MAX))
        })
    }

    /// Removes the name `name`; processes that have the semaphore open keep using it.
    ///
    /// # Errors
    /// As [`Lock::unlink`].
    pub fn unlink(name: &str) -> Result<()> {
        named::unlink(name, semaphore::LAYOUT.what)
    }
}

impl Event {
    /// Creates an unset event under `name`.
    ///
    /// # Errors
    /// As [`Lock::create`].
    pub fn create(name: &str) -> Result<Event> {
        named::create(name, event::LAYOUT, |s| Ok(Event::in_segment(s)))
    }

    /// Opens the event `name`.
    ///
    /// # Errors
    /// As [`Lock::open`].
    pub fn open(name: &str) -> Result<Event> {
        Ok(Event::in_segment(named::open(name, event::LAYOUT)?))
    }

    /// Opens the event `name`, creating it (unset) if it does not exist.
    ///
    /// # Errors
    /// As [`Lock::open_or_create`].
    pub fn open_or_create(name: &str) -> Result<Event> {
        named::open_or_create(name, event::LAYOUT, Event::in_segment, |s| {
            Ok(Event::in_segment(s))
        })
    }

    /// Removes the name `name`; processes that have the event open keep using it.
    ///
    /// # Errors
    /// As [`Lock::unlink`].
    pub fn unlink(name: &str) -> Result<()> {
        named::unlink(name, event::LAYOUT.what)
    }
}
