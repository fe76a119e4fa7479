//! [`Value`] and [`RawValue`]: one `T` in shared memory, with and without a lock.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::{LockError, LockResult, Result};
use crate::mem::cell::{self, AtomicInt};
use crate::mem::named::{self, Layout};
use crate::mem::pod::ShmSafe;
use crate::mem::segment::{Kind, Segment, Shared};
use crate::raw::{lock_result, Acquired, RawLock, TimedOut};
use crate::sys::identity;

const KIND: Kind = Kind(*b"VALU");
const RAW_KIND: Kind = Kind(*b"RVAL");

/// Payload offset of the data in `Value`/`Array` segments: past the lock, aligned for any
/// `ShmSafe` type (at most 64).
pub(crate) const DATA: usize = 64;

/// Takes the lock of a `Value` or `Array` (at payload offset 0) for the calling thread,
/// waiting until `deadline` (a passed one: a `try_`, which checks a holder's life once and
/// does not wait).
///
/// # Panics
///
/// If the calling thread holds it already.
pub(crate) fn lock_cells(
    raw: &RawLock,
    deadline: Deadline,
) -> std::result::Result<Acquired, TimedOut> {
    let me = identity::thread();
    assert!(
        !raw.is_held_by(me),
        "this thread already holds the lock of this Value or Array (it is not recursive)"
    );
    raw.lock(me, deadline, identity::is_alive)
}

/// The lock-free integer operations of `Value` and `RawValue`, on their cell.
macro_rules! atomic_int_methods {
    ($ty:ident) => {
        impl<T: AtomicInt> $ty<T> {
            /// Adds `v` atomically, without any lock (wrapping); returns the previous value.
            pub fn fetch_add(&self, v: T) -> T {
                // SAFETY: the cell is in our live segment, aligned, and the integer cells of a
                // `Value`/`RawValue` are only accessed atomically (`cell::load`/`store` and these).
                unsafe { T::fetch_add(self.cell(), v) }
            }

            /// Subtracts `v` atomically, without any lock (wrapping); returns the previous value.
            pub fn fetch_sub(&self, v: T) -> T {
                // SAFETY: as in `fetch_add`.
                unsafe { T::fetch_sub(self.cell(), v) }
            }

            /// Stores `v` atomically, without any lock; returns the previous value.
            pub fn swap(&self, v: T) -> T {
                // SAFETY: as in `fetch_add`.
                unsafe { T::swap(self.cell(), v) }
            }

            /// Stores `new` if the value is `current`, atomically and without any lock;
            /// returns the previous value.
            ///
            /// # Errors
            ///
            /// `Err(actual)` when the value was not `current`.
            pub fn compare_exchange(&self, current: T, new: T) -> std::result::Result<T, T> {
                // SAFETY: as in `fetch_add`.
                unsafe { T::compare_exchange(self.cell(), current, new) }
            }
        }
    };
}

/// One `T` in shared memory with its own lock: Python's `multiprocessing.Value`.
///
/// Created in the parent, it is the same value in forked children (and clones). Access it
/// under the lock with [`lock`](Value::lock), whose guard dereferences to `T`, or with
/// [`load`](Value::load)/[`store`](Value::store), which take the lock for the copy. Integer
/// values also have lock-free atomic operations ([`fetch_add`](Value::fetch_add) ...).
///
/// The lock is robust: if a process dies holding it, the next [`lock`](Value::lock) gets
/// [`LockError::OwnerDied`] (`load`/`store` go on: any bits are a valid `T`). It is not
/// recursive (Python's default is an `RLock`): taking it twice in one thread panics instead
/// of deadlocking.
///
/// A guard works on a copy that is written back when it drops, so a `fetch_add` from
/// another process while a guard is held is lost: use the lock or the atomics for a given
/// value, not both.
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let v = multiproc::Value::new(0u64)?;
/// *v.lock()? += 10;
/// v.fetch_add(5);
/// assert_eq!(v.load(), 15);
/// # Ok(())
/// # }
/// ```
pub struct Value<T: ShmSafe> {
    lock: Shared<RawLock>,
    /// The value's cell in `lock`'s segment, at `DATA`.
    cell: NonNull<T>,
}

// SAFETY: a `Value` is a handle to shared memory; the `T` in it is only reached through the
// lock or atomics (never by reference shared between threads without them), and `T:
// ShmSafe` holds no pointers, so moving or sharing the handle between threads is sound.
unsafe impl<T: ShmSafe> Send for Value<T> {}
// SAFETY: as above.
unsafe impl<T: ShmSafe> Sync for Value<T> {}

/// The lock of a [`Value`], held; dereferences to (a copy of) the value, which is written
/// back when the guard drops.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: ShmSafe> {
    value: &'a Value<T>,
    copy: T,
    /// The lock belongs to this thread: the guard must not move to another.
    _not_send: PhantomData<*const ()>,
}

impl<T: ShmSafe + Copy> Value<T> {
    /// Creates a value holding `init`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the system refuses the memory (or `T` needs an
    /// alignment above 64).
    pub fn new(init: T) -> Result<Value<T>> {
        let layout = Value::<T>::layout();
        let seg = Segment::create(layout.kind, layout.size, layout.align)?;
        Ok(Value::init_in(seg, init))
    }

    /// The segment of a `Value<T>`: the lock, then the cell at `DATA`.
    fn layout() -> Layout {
        Layout {
            what: "value",
            kind: KIND,
            size: DATA + std::mem::size_of::<T>(),
            align: std::mem::align_of::<T>().max(8),
        }
    }

    /// The value in `seg` (of [`Value::layout`]), as its creator left it.
    fn in_segment(seg: Segment) -> Value<T> {
        Value {
            cell: seg.ptr(DATA),
            lock: Shared::new(seg, 0),
        }
    }

    /// A new value holding `init` in the fresh `seg`, which no other process sees yet.
    fn init_in(seg: Segment, init: T) -> Value<T> {
        let v = Value::in_segment(seg);
        // SAFETY: the cell is in this fresh segment (a memfd, or a named file not yet
        // published), aligned, and nobody else sees it yet.
        unsafe { cell::store(v.cell(), init) };
        v
    }

    /// Creates the value `name` holding `init`, for processes that are not parent and child
    /// (see [`Lock::create`](crate::Lock::create) for how names behave). Every process
    /// must use the same `T`: the name records `T`'s size and alignment, not the type.
    ///
    /// # Errors
    /// As [`Lock::create`](crate::Lock::create).
    pub fn create(name: &str, init: T) -> Result<Value<T>> {
        named::create(name, Value::<T>::layout(), |seg| {
            Ok(Value::init_in(seg, init))
        })
    }

    /// Opens the value `name`.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open); `InvalidData` too when the value there has
    /// another size or alignment than `T`.
    pub fn open(name: &str) -> Result<Value<T>> {
        Ok(Value::in_segment(named::open(name, Value::<T>::layout())?))
    }

    /// Opens the value `name`, creating it with `init` if it does not exist.
    ///
    /// # Errors
    /// As [`Lock::open_or_create`](crate::Lock::open_or_create).
    pub fn open_or_create(name: &str, init: T) -> Result<Value<T>> {
        named::open_or_create(name, Value::<T>::layout(), Value::in_segment, |seg| {
            Ok(Value::init_in(seg, init))
        })
    }

    /// Removes the name `name`; processes that have the value open keep using it.
    ///
    /// # Errors
    /// As [`Lock::unlink`](crate::Lock::unlink).
    pub fn unlink(name: &str) -> Result<()> {
        named::unlink(name, Value::<T>::layout().what)
    }

    fn cell(&self) -> NonNull<T> {
        self.cell
    }

    /// Takes the lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`], holding the guard, when the holder died inside the lock.
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        self.lock_until(Deadline::NEVER, false)
    }

    /// Takes the lock if it is free now, or if its holder died (checked at once, no wait).
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when a live thread holds it; [`LockError::OwnerDied`] as
    /// for [`Value::lock`].
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn try_lock(&self) -> LockResult<ValueGuard<'_, T>> {
        self.lock_until(Deadline::now(), true)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] after at least `timeout`; [`LockError::OwnerDied`] as for
    /// [`Value::lock`] (a dead holder is found before giving up, however short `timeout`).
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<ValueGuard<'_, T>> {
        self.lock_until(Deadline::after(timeout), false)
    }

    /// Takes the lock, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`Value::lock_timeout`].
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn lock_deadline(&self, deadline: Instant) -> LockResult<ValueGuard<'_, T>> {
        self.lock_until(Deadline::at(deadline), false)
    }

    fn lock_until(&self, deadline: Deadline, tried: bool) -> LockResult<ValueGuard<'_, T>> {
        lock_result(lock_cells(&self.lock, deadline), tried, || ValueGuard {
            value: self,
            // SAFETY: the cell is in our live segment, aligned; all access is atomic.
            copy: unsafe { cell::load(self.cell()) },
            _not_send: PhantomData,
        })
    }

    /// A copy of the value, read under the lock.
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn load(&self) -> T {
        *self.lock().unwrap_or_else(repaired)
    }

    /// A new, independent shared value holding a copy of this one (Python's
    /// `sharedctypes.copy`).
    ///
    /// # Errors
    ///
    /// As [`Value::new`].
    pub fn duplicate(&self) -> Result<Value<T>> {
        Value::new(self.load())
    }

    /// Replaces the value, under the lock.
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn store(&self, value: T) {
        *self.lock().unwrap_or_else(repaired) = value;
    }
}

/// The guard of a lock whose previous holder died: the copying methods (`load`, `store`,
/// `get`, `set`, ...) go on regardless, since any bits are a valid `T`.
pub(crate) fn repaired<G>(e: LockError<G>) -> G {
    e.into_inner()
        .expect("a blocking lock without timeout only fails with OwnerDied")
}

atomic_int_methods!(Value);

impl<T: ShmSafe> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            lock: self.lock.clone(),
            cell: self.cell,
        }
    }
}

impl<T: ShmSafe + Copy + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Reading without the lock: a debug print must not block or panic.
        // SAFETY: the cell is in our live segment, aligned; all access is atomic.
        let now = unsafe { cell::load(self.cell()) };
        f.debug_struct("Value").field("value", &now).finish()
    }
}

impl<T: ShmSafe> Deref for ValueGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.copy
    }
}

impl<T: ShmSafe> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.copy
    }
}

impl<T: ShmSafe> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the cell is in a live segment, aligned; all access is atomic. `T` has no
        // meaningful Drop (`ShmSafe`), so a bitwise copy out of `self.copy` is fine.
        unsafe { cell::store(self.value.cell, std::ptr::read(&self.copy)) };
        self.value.lock.unlock();
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&self.copy).finish()
    }
}

/// One `T` in shared memory without a lock: Python's `multiprocessing.RawValue`.
///
/// Loads and stores are atomic per machine word, so a value wider than 8 bytes may be
/// read half-written; integers have the same lock-free atomics as [`Value`].
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hits = multiproc::shm::RawValue::new(0u32)?;
/// hits.fetch_add(1);
/// assert_eq!(hits.load(), 1);
/// # Ok(())
/// # }
/// ```
pub struct RawValue<T: ShmSafe> {
    seg: Segment,
    /// The value's cell, at payload offset 0 of `seg`.
    cell: NonNull<T>,
}

// SAFETY: as for `Value`: the `T` is reached only through atomics, and holds no pointers.
unsafe impl<T: ShmSafe> Send for RawValue<T> {}
// SAFETY: as above.
unsafe impl<T: ShmSafe> Sync for RawValue<T> {}

impl<T: ShmSafe + Copy> RawValue<T> {
    /// Creates a value holding `init`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the system refuses the memory.
    pub fn new(init: T) -> Result<RawValue<T>> {
        let seg = Segment::create(
            RAW_KIND,
            std::mem::size_of::<T>(),
            std::mem::align_of::<T>(),
        )?;
        let v = RawValue {
            cell: seg.ptr(0),
            seg,
        };
        v.store(init);
        Ok(v)
    }

    fn cell(&self) -> NonNull<T> {
        self.cell
    }

    /// A copy of the value (atomic per word).
    pub fn load(&self) -> T {
        // SAFETY: the cell is in our live segment, aligned; all access is atomic.
        unsafe { cell::load(self.cell()) }
    }

    /// Replaces the value (atomic per word).
    pub fn store(&self, value: T) {
        // SAFETY: as in `load`.
        unsafe { cell::store(self.cell(), value) }
    }
}

atomic_int_methods!(RawValue);

impl<T: ShmSafe> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            seg: self.seg.clone(),
            cell: self.cell,
        }
    }
}

impl<T: ShmSafe + Copy + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawValue")
            .field("value", &self.load())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn va_01_value_holds_and_changes() {
        let v = Value::new(4343i32).unwrap();
        assert_eq!(v.load(), 4343);
        v.store(24234);
        assert_eq!(v.load(), 24234);
        let d = Value::new(3.625f64).unwrap();
        *d.lock().unwrap() = -4.25;
        assert_eq!(d.load(), -4.25);
        let r = RawValue::new(1i64 << 33).unwrap();
        r.store(1 << 34);
        assert_eq!(r.load(), 1 << 34);
    }

    #[test]
    fn va_13_a_duplicate_is_independent() {
        let v = Value::new(7u16).unwrap();
        let d = v.duplicate().unwrap();
        v.store(8);
        assert_eq!((v.load(), d.load()), (8, 7));
    }

    #[test]
    fn va_14_atomics_need_no_lock_and_lose_nothing() {
        let v = Value::new(0u64).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let v = v.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        v.fetch_add(1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(v.load(), 40_000);
        assert_eq!(v.compare_exchange(40_000, 1), Ok(40_000));
        assert_eq!(v.compare_exchange(40_000, 2), Err(1));
        assert_eq!(v.swap(9), 1);
        assert_eq!(v.fetch_sub(10), 9);
        assert_eq!(v.load(), u64::MAX);
    }

    #[test]
    fn locked_increments_from_threads_lose_nothing() {
        let v = Value::new(0u64).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let v = v.clone();
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        *v.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(v.load(), 20_000);
    }

    #[test]
    #[should_panic(expected = "not recursive")]
    fn relocking_in_one_thread_panics_instead_of_deadlocking() {
        let v = Value::new(0u8).unwrap();
        let _g = v.lock().unwrap();
        let _ = v.load();
    }

    #[test]
    fn try_lock_fails_while_held_elsewhere() {
        let v = Value::new(0u8).unwrap();
        let _g = v.lock().unwrap();
        let v2 = v.clone();
        let held = std::thread::spawn(move || v2.try_lock().unwrap_err().is_would_block())
            .join()
            .unwrap();
        assert!(held);
    }
}
