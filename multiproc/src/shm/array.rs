//! [`Array`] and [`RawArray`]: a fixed number of `T`s in shared memory, with and without a
//! lock.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::{Bound, Deref, DerefMut, Range, RangeBounds};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::value::{lock_cells, repaired, DATA};
use crate::deadline::Deadline;
use crate::error::{Error, LockResult, Result};
use crate::mem::cell;
use crate::mem::named::{self, Layout};
use crate::mem::pod::ShmSafe;
use crate::mem::segment::{Kind, Segment, Shared};
use crate::raw::{lock_result, RawLock};

const KIND: Kind = Kind(*b"ARRY");
const RAW_KIND: Kind = Kind(*b"RARR");

/// Payload bytes for `len` elements after `offset`, or `InvalidArgument` if too many.
fn payload_size<T>(offset: usize, len: usize) -> Result<usize> {
    size_of::<T>()
        .checked_mul(len)
        .and_then(|b| b.checked_add(offset))
        .filter(|&b| b <= isize::MAX as usize / 2)
        .ok_or_else(|| Error::InvalidArgument(format!("an array of {len} elements is too large")))
}

/// The index range `range` selects in a sequence of `len`, checked (VA-10).
fn checked_range(range: impl RangeBounds<usize>, len: usize) -> Result<Range<usize>> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    if start > end || end > len {
        return Err(Error::InvalidArgument(format!(
            "range {start}..{end} out of range for length {len}"
        )));
    }
    Ok(start..end)
}

fn index_error(index: usize, len: usize) -> Error {
    Error::InvalidArgument(format!("index {index} out of range for length {len}"))
}

/// A fixed-length array in shared memory with its own lock: Python's
/// `multiprocessing.Array`.
///
/// Created in the parent, it is the same array in forked children (and clones). The
/// guard of [`lock`](Array::lock) dereferences to `[T]`; [`get`](Array::get),
/// [`set`](Array::set), [`to_vec`](Array::to_vec), [`slice`](Array::slice) and
/// [`set_slice`](Array::set_slice) take the lock for one copy. The lock is robust and not
/// recursive, as [`Value`](super::Value)'s.
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let a = multiproc::Array::from_slice(&[1.0f64, 2.0, 3.0])?;
/// a.lock()?[1] = 20.0;
/// a.set(2, 30.0)?;
/// assert_eq!(a.to_vec(), [1.0, 20.0, 30.0]);
/// assert_eq!(a.slice(1..)?, [20.0, 30.0]);
/// # Ok(())
/// # }
/// ```
pub struct Array<T: ShmSafe> {
    /// The array's lock, at payload offset 0; the elements follow at `DATA`.
    lock: Shared<RawLock>,
    len: usize,
    _t: PhantomData<T>,
}

/// The lock of an [`Array`], held; dereferences to the elements.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: ShmSafe> {
    array: &'a Array<T>,
    /// The lock belongs to this thread: the guard must not move to another.
    _not_send: PhantomData<*const ()>,
}

impl<T: ShmSafe> Array<T> {
    /// The segment of an array of `len` elements: the lock, then the elements at `DATA`.
    fn layout(len: usize) -> Result<Layout> {
        Ok(Layout {
            what: "array",
            kind: KIND,
            size: payload_size::<T>(DATA, len)?,
            align: align_of::<T>().max(8),
        })
    }

    /// The array in `seg` (of [`Array::layout`]), as its creator left it.
    fn in_segment(seg: Segment) -> Array<T> {
        Array {
            len: len_for::<T>(seg.payload_size(), DATA).unwrap_or(0),
            lock: Shared::new(seg, 0),
            _t: PhantomData,
        }
    }
}

impl<T: ShmSafe + Copy> Array<T> {
    /// Creates an array of `len` zeroed elements (every `ShmSafe` type is valid zeroed).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when it would be too large; [`Error::Io`] when the system
    /// refuses the memory.
    pub fn new(len: usize) -> Result<Array<T>> {
        let layout = Array::<T>::layout(len)?;
        let seg = Segment::create(KIND, layout.size, layout.align)?;
        Ok(Array::in_segment(seg))
    }

    /// Creates the array `name` of `len` zeroed elements, for processes that are not parent
    /// and child (see [`Lock::create`](crate::Lock::create) for how names behave). Every
    /// process must use the same `T`: the name records the length in bytes and `T`'s
    /// alignment, not the type.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when it would be too large; otherwise as
    /// [`Lock::create`](crate::Lock::create).
    pub fn create(name: &str, len: usize) -> Result<Array<T>> {
        named::create(name, Array::<T>::layout(len)?, |seg| {
            Ok(Array::in_segment(seg))
        })
    }

    /// Opens the array `name`, with the length it was created with.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open); `InvalidData` too when its bytes are not a
    /// whole number of `T`s, or its alignment is not `T`'s.
    pub fn open(name: &str) -> Result<Array<T>> {
        let seg = named::open_sized(name, "array", KIND, |size| {
            let layout = Array::<T>::layout(len_for::<T>(size, DATA)?).ok()?;
            Some((layout.size, layout.align))
        })?;
        Ok(Array::in_segment(seg))
    }

    /// Opens the array `name`, creating it with `len` zeroed elements if it does not
    /// exist.
    ///
    /// # Errors
    /// As [`Array::create`] and [`Lock::open_or_create`](crate::Lock::open_or_create);
    /// `InvalidData` when the existing array has another length.
    pub fn open_or_create(name: &str, len: usize) -> Result<Array<T>> {
        named::open_or_create(name, Array::<T>::layout(len)?, Array::in_segment, |seg| {
            Ok(Array::in_segment(seg))
        })
    }

    /// Removes the name `name`; processes that have the array open keep using it.
    ///
    /// # Errors
    /// As [`Lock::unlink`](crate::Lock::unlink).
    pub fn unlink(name: &str) -> Result<()> {
        named::unlink(name, "array")
    }

    /// Creates an array holding a copy of `items`.
    ///
    /// # Errors
    ///
    /// As [`Array::new`].
    pub fn from_slice(items: &[T]) -> Result<Array<T>> {
        let a = Array::new(items.len())?;
        a.lock().unwrap_or_else(repaired).copy_from_slice(items);
        Ok(a)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`](crate::LockError::OwnerDied), holding the guard, when the holder
    /// died inside the lock.
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_until(Deadline::NEVER, false)
    }

    /// Takes the lock if it is free now, or if its holder died (checked at once, no wait).
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`](crate::LockError::WouldBlock) when a live thread holds it;
    /// [`LockError::OwnerDied`](crate::LockError::OwnerDied) as for [`Array::lock`].
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn try_lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_until(Deadline::now(), true)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`](crate::LockError::Timeout) after at least `timeout`;
    /// [`LockError::OwnerDied`](crate::LockError::OwnerDied) as for [`Array::lock`] (a dead holder
    /// is found before giving up, however short `timeout`).
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_until(Deadline::after(timeout), false)
    }

    /// Takes the lock, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`Array::lock_timeout`].
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn lock_deadline(&self, deadline: Instant) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_until(Deadline::at(deadline), false)
    }

    fn lock_until(&self, deadline: Deadline, tried: bool) -> LockResult<ArrayGuard<'_, T>> {
        lock_result(lock_cells(&self.lock, deadline), tried, || ArrayGuard {
            array: self,
            _not_send: PhantomData,
        })
    }

    /// A new, independent shared array holding a copy of this one (Python's
    /// `sharedctypes.copy`).
    ///
    /// # Errors
    ///
    /// As [`Array::new`].
    pub fn duplicate(&self) -> Result<Array<T>> {
        Array::from_slice(&self.to_vec())
    }

    /// The element at `index`, read under the lock.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `index` is out of range (Python's `IndexError`).
    pub fn get(&self, index: usize) -> Result<T> {
        if index >= self.len {
            return Err(index_error(index, self.len));
        }
        Ok(self.lock().unwrap_or_else(repaired)[index])
    }

    /// Replaces the element at `index`, under the lock.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `index` is out of range.
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        let mut g = self.lock().unwrap_or_else(repaired);
        let len = g.len();
        *g.get_mut(index).ok_or_else(|| index_error(index, len))? = value;
        Ok(())
    }

    /// A copy of every element, read under the lock.
    pub fn to_vec(&self) -> Vec<T> {
        self.lock().unwrap_or_else(repaired).to_vec()
    }

    /// A copy of the elements in `range`, read under the lock (Python's `arr[a:b]`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `range` is out of range.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>> {
        let range = checked_range(range, self.len)?;
        Ok(self.lock().unwrap_or_else(repaired)[range].to_vec())
    }

    /// Replaces the elements in `range` with `items`, under the lock (Python's
    /// `arr[a:b] = items`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `range` is out of range or `items` has another
    /// length (Python's "can only assign sequence of same size").
    pub fn set_slice(&self, range: impl RangeBounds<usize>, items: &[T]) -> Result<()> {
        let range = checked_range(range, self.len)?;
        if range.len() != items.len() {
            return Err(Error::InvalidArgument(format!(
                "can only assign a sequence of the same size ({} into {})",
                items.len(),
                range.len()
            )));
        }
        self.lock().unwrap_or_else(repaired)[range].copy_from_slice(items);
        Ok(())
    }
}

/// A byte array used as a C string, like Python's `Array('c', ...)`.
impl Array<u8> {
    /// The bytes up to the first NUL (all of them if there is none): Python's `.value`.
    pub fn value(&self) -> Vec<u8> {
        let g = self.lock().unwrap_or_else(repaired);
        let end = g.iter().position(|&b| b == 0).unwrap_or(g.len());
        g[..end].to_vec()
    }

    /// Stores `bytes` followed by a NUL if there is room (Python's `.value = bytes`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `bytes` is longer than the array.
    pub fn set_value(&self, bytes: &[u8]) -> Result<()> {
        let mut g = self.lock().unwrap_or_else(repaired);
        if bytes.len() > g.len() {
            return Err(Error::InvalidArgument(format!(
                "{} bytes do not fit in an array of {}",
                bytes.len(),
                g.len()
            )));
        }
        g[..bytes.len()].copy_from_slice(bytes);
        if let Some(nul) = g.get_mut(bytes.len()) {
            *nul = 0;
        }
        Ok(())
    }
}

impl<T: ShmSafe> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            lock: self.lock.clone(),
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T: ShmSafe> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T: ShmSafe> Deref for ArrayGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        let a = self.array;
        // SAFETY: the elements are in `a`'s live segment (bounds and alignment checked by
        // `slice_ptr`), valid for any bits, and this thread holds the array's lock, which
        // every access to them takes: nobody writes them while this borrow lives.
        unsafe { a.lock.segment().slice_ptr::<T>(DATA, a.len).as_ref() }
    }
}

impl<T: ShmSafe> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let a = self.array;
        // SAFETY: as in `deref`; the lock makes this borrow the only access, and `&mut self`
        // makes it the only one through this guard.
        unsafe { a.lock.segment().slice_ptr::<T>(DATA, a.len).as_mut() }
    }
}

impl<T: ShmSafe> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        self.array.lock.unlock();
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

/// A fixed-length array in shared memory without a lock: Python's
/// `multiprocessing.RawArray`. Each element is read and written atomically per machine word.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let a = multiproc::shm::RawArray::<i32>::new(10)?;
/// a.set(3, 7)?;
/// assert_eq!(a.get(3)?, 7);
/// assert!(a.get(10).is_err());
/// # Ok(())
/// # }
/// ```
pub struct RawArray<T: ShmSafe> {
    seg: Segment,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: ShmSafe + Copy> RawArray<T> {
    /// Creates an array of `len` zeroed elements.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when it would be too large; [`Error::Io`] when the system
    /// refuses the memory.
    pub fn new(len: usize) -> Result<RawArray<T>> {
        let seg = Segment::create(RAW_KIND, payload_size::<T>(0, len)?, align_of::<T>())?;
        Ok(RawArray {
            seg,
            len,
            _t: PhantomData,
        })
    }

    /// Creates an array holding a copy of `items`.
    ///
    /// # Errors
    ///
    /// As [`RawArray::new`].
    pub fn from_slice(items: &[T]) -> Result<RawArray<T>> {
        let a = RawArray::new(items.len())?;
        for (i, &item) in items.iter().enumerate() {
            a.set(i, item)?;
        }
        Ok(a)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn cell(&self, index: usize) -> NonNull<T> {
        self.seg.ptr(index * size_of::<T>())
    }

    /// The element at `index`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `index` is out of range (Python's `IndexError`).
    pub fn get(&self, index: usize) -> Result<T> {
        if index >= self.len {
            return Err(index_error(index, self.len));
        }
        // SAFETY: in range, so the cell is in our live segment, aligned; access is atomic.
        Ok(unsafe { cell::load(self.cell(index)) })
    }

    /// Replaces the element at `index`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `index` is out of range.
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        if index >= self.len {
            return Err(index_error(index, self.len));
        }
        // SAFETY: as in `get`.
        unsafe { cell::store(self.cell(index), value) };
        Ok(())
    }

    /// A copy of every element.
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len)
            // SAFETY: as in `get`; every index is in range.
            .map(|i| unsafe { cell::load(self.cell(i)) })
            .collect()
    }
}

impl<T: ShmSafe> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            seg: self.seg.clone(),
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T: ShmSafe> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The length of an array of `T`s whose elements take `size - offset` bytes, if exactly so.
fn len_for<T>(size: usize, offset: usize) -> Option<usize> {
    let bytes = size.checked_sub(offset)?;
    let len = bytes.checked_div(size_of::<T>())?;
    (len * size_of::<T>() == bytes).then_some(len)
}

/// Sent through a [`Connection`](crate::Connection) (or as a process argument), it arrives as
/// another handle on the same elements and lock; its length comes with it.
impl<T: ShmSafe> serde::Serialize for Array<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(self.lock.segment(), serializer)
    }
}

impl<'de, T: ShmSafe> serde::Deserialize<'de> for Array<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seg = Segment::deserialize_as(deserializer, KIND, |size| {
            let layout = Array::<T>::layout(len_for::<T>(size, DATA)?).ok()?;
            Some((layout.size, layout.align))
        })?;
        Ok(Array::in_segment(seg))
    }
}

/// Sent through a [`Connection`](crate::Connection) (or as a process argument), it arrives as
/// another handle on the same elements; its length comes with it.
impl<T: ShmSafe> serde::Serialize for RawArray<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.seg, serializer)
    }
}

impl<'de, T: ShmSafe> serde::Deserialize<'de> for RawArray<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seg = Segment::deserialize_as(deserializer, RAW_KIND, |size| {
            let len = len_for::<T>(size, 0)?;
            Some((payload_size::<T>(0, len).ok()?, align_of::<T>()))
        })?;
        let len = len_for::<T>(seg.payload_size(), 0).unwrap_or(0);
        Ok(RawArray {
            seg,
            len,
            _t: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn va_07_va_10_len_index_slices_and_their_errors() {
        let seq: Vec<i32> = (0..10).collect();
        let a = Array::from_slice(&seq).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(a.get(3).unwrap(), 3);
        assert!(a.get(10).unwrap_err().to_string().contains("out of range"));
        assert_eq!(a.slice(2..7).unwrap(), [2, 3, 4, 5, 6]);
        a.set_slice(4..8, &[40, 50, 60, 70]).unwrap();
        assert_eq!(a.to_vec(), [0, 1, 2, 3, 40, 50, 60, 70, 8, 9]);
        assert!(a
            .set(10, 0)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        assert!(a
            .set_slice(0..2, &[1])
            .unwrap_err()
            .to_string()
            .contains("same size"));
        assert!(a.slice(5..11).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = a.slice(5..4);
        assert!(reversed.is_err());
    }

    #[test]
    fn va_08_new_arrays_are_zeroed() {
        for _ in 0..3 {
            let a = Array::<i32>::new(10).unwrap();
            assert_eq!(a.to_vec(), [0; 10]);
            a.set_slice(.., &(0..10).collect::<Vec<_>>()).unwrap();
            let r = RawArray::<u64>::new(10).unwrap();
            assert_eq!(r.to_vec(), [0; 10]);
        }
        assert!(Array::<u8>::new(0).unwrap().is_empty());
    }

    #[test]
    fn va_13_a_duplicate_is_independent() {
        let a = Array::from_slice(&[1u8, 2]).unwrap();
        let d = a.duplicate().unwrap();
        a.set(0, 9).unwrap();
        assert_eq!((a.to_vec(), d.to_vec()), (vec![9, 2], vec![1, 2]));
    }

    #[test]
    fn va_11_byte_arrays_hold_c_strings() {
        let s = Array::<u8>::new(12).unwrap();
        s.set_value(b"hello").unwrap();
        let doubled = [s.value(), s.value()].concat();
        s.set_value(&doubled).unwrap();
        assert_eq!(s.value(), b"hellohello");
        assert!(s.set_value(&[b'x'; 13]).is_err());
        s.set_value(&[b'y'; 12]).unwrap();
        assert_eq!(s.value(), [b'y'; 12]);
    }

    #[test]
    fn raw_array_reads_and_writes() {
        let r = RawArray::from_slice(&[1.5f64, 2.5]).unwrap();
        r.set(1, 4.0).unwrap();
        assert_eq!(r.to_vec(), [1.5, 4.0]);
        assert!(r.set(2, 0.0).is_err());
    }

    #[test]
    fn a_huge_array_is_refused() {
        assert!(matches!(
            Array::<u64>::new(usize::MAX / 4),
            Err(Error::InvalidArgument(_))
        ));
    }
}
