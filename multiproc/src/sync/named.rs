//! [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Condition`] and
//! [`Barrier`] under a name, for processes that are not parent and child: one process
//! creates the object, any process of the same user opens it by name.
//!
//! The names live in `/dev/shm` (as [`SharedMemory`](crate::SharedMemory)'s do), mode 0600.
//! A name stays until some process calls `unlink`, and the object lives on while any
//! process has it open. Creation is atomic (see `mem::named`): a creator killed midway
//! leaves nothing under the name, so the next `open_or_create` simply creates it. A
//! process killed while *holding* a named lock is handled like any lock's owner death
//! (the next locker gets `OwnerDied`).
#![forbid(unsafe_code)]

use std::io;

use super::{barrier, condition, event, lock, rlock, semaphore};
use super::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use crate::error::{Error, Result};
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

impl BoundedSemaphore {
    /// Creates a bounded semaphore of `value` units (also its bound) under `name`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a `value` of `u32::MAX`; otherwise as
    /// [`Lock::create`].
    pub fn create(name: &str, value: u32) -> Result<BoundedSemaphore> {
        no_bound_at_max(value)?;
        let sem = named::create(name, semaphore::LAYOUT, |s| {
            Ok(Semaphore::init_in(s, value, value))
        })?;
        bounded(name, sem)
    }

    /// Opens the bounded semaphore `name`, with the bound it was created with.
    ///
    /// # Errors
    /// As [`Lock::open`]; `InvalidData` too when `name` is a [`Semaphore`] without a bound.
    pub fn open(name: &str) -> Result<BoundedSemaphore> {
        bounded(
            name,
            Semaphore::in_segment(named::open(name, semaphore::LAYOUT)?),
        )
    }

    /// Opens the bounded semaphore `name`, creating it with `value` units (and that bound)
    /// if it does not exist (an existing one keeps its count and bound).
    ///
    /// # Errors
    /// As [`BoundedSemaphore::open`] and [`Lock::open_or_create`].
    pub fn open_or_create(name: &str, value: u32) -> Result<BoundedSemaphore> {
        no_bound_at_max(value)?;
        let sem = named::open_or_create(name, semaphore::LAYOUT, Semaphore::in_segment, |s| {
            Ok(Semaphore::init_in(s, value, value))
        })?;
        bounded(name, sem)
    }

    /// Removes the name `name`; processes that have the semaphore open keep using it.
    ///
    /// # Errors
    /// As [`Lock::unlink`].
    pub fn unlink(name: &str) -> Result<()> {
        named::unlink(name, semaphore::LAYOUT.what)
    }
}

/// A named semaphore's bound of `u32::MAX` is no bound: such a name could not be opened as
/// a bounded semaphore, so it is refused before it is made.
fn no_bound_at_max(value: u32) -> Result<()> {
    if value == u32::MAX {
        return Err(Error::InvalidArgument(
            "a named bounded semaphore holds at most u32::MAX - 1 units".into(),
        ));
    }
    Ok(())
}

/// `sem`, opened as `name`, as a bounded semaphore: refused when it has no bound (made as a
/// [`Semaphore`]), which would make every release allowed.
fn bounded(name: &str, sem: Semaphore) -> Result<BoundedSemaphore> {
    BoundedSemaphore::from_semaphore(sem).ok_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name:?} is a semaphore without a bound, not a bounded semaphore"),
        ))
    })
}

impl RLock {
    /// Creates an unlocked recursive lock under `name`.
    ///
    /// # Errors
    /// As [`Lock::create`].
    pub fn create(name: &str) -> Result<RLock> {
        named::create(name, rlock::LAYOUT, |s| Ok(RLock::in_segment(s)))
    }

    /// Opens the recursive lock `name`.
    ///
    /// # Errors
    /// As [`Lock::open`].
    pub fn open(name: &str) -> Result<RLock> {
        Ok(RLock::in_segment(named::open(name, rlock::LAYOUT)?))
    }

    /// Opens the recursive lock `name`, creating it (unlocked) if it does not exist.
    ///
    /// # Errors
    /// As [`Lock::open_or_create`].
    pub fn open_or_create(name: &str) -> Result<RLock> {
        named::open_or_create(name, rlock::LAYOUT, RLock::in_segment, |s| {
            Ok(RLock::in_segment(s))
        })
    }

    /// Removes the name `name`; processes that have the lock open keep using it.
    ///
    /// # Errors
    /// As [`Lock::unlink`].
    pub fn unlink(name: &str) -> Result<()> {
        named::unlink(name, rlock::LAYOUT.what)
    }
}

impl Condition {
    /// Creates a condition under `name`, with a recursive lock of its own that lives under
    /// the same name ([`get_lock`](Condition::get_lock) reaches it).
    ///
    /// # Errors
    /// As [`Lock::create`].
    pub fn create(name: &str) -> Result<Condition> {
        named::create(name, condition::NAMED_LAYOUT, |s| {
            Ok(Condition::in_named_segment(s))
        })
    }

    /// Opens the condition `name` and its lock.
    ///
    /// # Errors
    /// As [`Lock::open`].
    pub fn open(name: &str) -> Result<Condition> {
        Ok(Condition::in_named_segment(named::open(
            name,
            condition::NAMED_LAYOUT,
        )?))
    }

    /// Opens the condition `name`, creating it if it does not exist.
    ///
    /// # Errors
    /// As [`Lock::open_or_create`].
    pub fn open_or_create(name: &str) -> Result<Condition> {
        named::open_or_create(
            name,
            condition::NAMED_LAYOUT,
            Condition::in_named_segment,
            |s| Ok(Condition::in_named_segment(s)),
        )
    }

    /// Removes the name `name`; processes that have the condition open keep using it.
    ///
    /// # Errors
    /// As [`Lock::unlink`].
    pub fn unlink(name: &str) -> Result<()> {
        named::unlink(name, condition::NAMED_LAYOUT.what)
    }
}

impl Barrier {
    /// Creates a barrier for `parties` parties under `name`. A named barrier has no action
    /// (an action is a function of one process); [`default_timeout`](Barrier::default_timeout)
    /// applies to each handle.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `parties` is 0; otherwise as [`Lock::create`].
    pub fn create(name: &str, parties: u32) -> Result<Barrier> {
        barrier::check_parties(parties)?;
        named::create(name, Barrier::layout(parties), |s| {
            Ok(Barrier::init_in(s, parties))
        })
    }

    /// Opens the barrier `name`, for the number of parties it was created with.
    ///
    /// # Errors
    /// As [`Lock::open`].
    pub fn open(name: &str) -> Result<Barrier> {
        let segment = named::open_sized(name, "barrier", barrier::KIND, |size| {
            let layout = Barrier::layout(Barrier::parties_for(size)?);
            Some((layout.size, layout.align))
        })?;
        Ok(Barrier::in_segment(segment))
    }

    /// Opens the barrier `name`, creating it for `parties` if it does not exist.
    ///
    /// # Errors
    /// As [`Barrier::create`] and [`Lock::open_or_create`]; `InvalidData` when the existing
    /// barrier is for another number of parties.
    pub fn open_or_create(name: &str, parties: u32) -> Result<Barrier> {
        barrier::check_parties(parties)?;
        named::open_or_create(name, Barrier::layout(parties), Barrier::in_segment, |s| {
            Ok(Barrier::init_in(s, parties))
        })
    }

    /// Removes the name `name`; processes that have the barrier open keep using it.
    ///
    /// # Errors
    /// As [`Lock::unlink`].
    pub fn unlink(name: &str) -> Result<()> {
        named::unlink(name, "barrier")
    }
}
