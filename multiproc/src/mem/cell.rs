//! Copying values in and out of shared memory with atomic loads and stores, so a reader
//! racing a writer (in this process or another) sees torn data at worst, never undefined
//! behaviour. Also the integer atomics that `Value` and `RawValue` offer without a lock.

use std::mem::{align_of, size_of, MaybeUninit};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use super::pod::ShmSafe;

/// The widest atomic that tiles `T` exactly: its alignment, at most 8 bytes.
fn chunk<T>() -> usize {
    align_of::<T>().min(8)
}

/// Reads the `T` at `src` chunk by chunk with relaxed atomic loads.
///
/// # Safety
///
/// - `src` points to a `T` in a live shared mapping, aligned for `T`;
/// - every access to that memory, in every process, is atomic or excluded by a lock.
pub(crate) unsafe fn load<T: ShmSafe>(src: NonNull<T>) -> T {
    let mut out = MaybeUninit::<T>::uninit();
    let (src, dst) = (src.as_ptr().cast::<u8>(), out.as_mut_ptr().cast::<u8>());
    let step = chunk::<T>();
    for at in (0..size_of::<T>()).step_by(step) {
        // SAFETY: `at + step <= size_of::<T>()` (the size is a multiple of the alignment, and
        // `step` divides it), `src + at` is aligned to `step` and only accessed atomically
        // (the caller's promise); `dst` is a local `T`, valid for unaligned writes.
        unsafe {
            let (s, d) = (src.add(at), dst.add(at));
            match step {
                8 => d
                    .cast::<u64>()
                    .write_unaligned(AtomicU64::from_ptr(s.cast()).load(Ordering::Relaxed)),
                4 => d
                    .cast::<u32>()
                    .write_unaligned(AtomicU32::from_ptr(s.cast()).load(Ordering::Relaxed)),
                2 => d
                    .cast::<u16>()
                    .write_unaligned(AtomicU16::from_ptr(s.cast()).load(Ordering::Relaxed)),
                _ => d.write(AtomicU8::from_ptr(s).load(Ordering::Relaxed)),
            }
        }
    }
    // SAFETY: every byte was written above, and any bit pattern is a valid `T` (`ShmSafe`).
    unsafe { out.assume_init() }
}

/// Writes `value` to `dst` chunk by chunk with relaxed atomic stores.
///
/// # Safety
///
/// As [`load`], for `dst`.
pub(crate) unsafe fn store<T: ShmSafe>(dst: NonNull<T>, value: T) {
    let (src, dst) = (
        std::ptr::addr_of!(value).cast::<u8>(),
        dst.as_ptr().cast::<u8>(),
    );
    let step = chunk::<T>();
    for at in (0..size_of::<T>()).step_by(step) {
        // SAFETY: as in `load`, with the roles of the two pointers swapped; `src` is a live
        // local `T` valid for unaligned reads.
        unsafe {
            let (s, d) = (src.add(at), dst.add(at));
            match step {
                8 => AtomicU64::from_ptr(d.cast())
                    .store(s.cast::<u64>().read_unaligned(), Ordering::Relaxed),
                4 => AtomicU32::from_ptr(d.cast())
                    .store(s.cast::<u32>().read_unaligned(), Ordering::Relaxed),
                2 => AtomicU16::from_ptr(d.cast())
                    .store(s.cast::<u16>().read_unaligned(), Ordering::Relaxed),
                _ => AtomicU8::from_ptr(d).store(s.read(), Ordering::Relaxed),
            }
        }
    }
}

/// An integer type with a same-sized atomic: the types whose `Value` and `RawValue` offer
/// `fetch_add` and friends without a lock. Sealed.
pub trait AtomicInt: ShmSafe + Copy + sealed::Sealed {}

mod sealed {
    use std::ptr::NonNull;

    /// The operations, on a cell in shared memory.
    ///
    /// # Safety
    ///
    /// Every method needs a `cell` in a live shared mapping, aligned for `Self`, that is only
    /// ever accessed atomically.
    pub trait Sealed: Sized {
        unsafe fn fetch_add(cell: NonNull<Self>, v: Self) -> Self;
        unsafe fn fetch_sub(cell: NonNull<Self>, v: Self) -> Self;
        unsafe fn swap(cell: NonNull<Self>, v: Self) -> Self;
        unsafe fn compare_exchange(
            cell: NonNull<Self>,
            current: Self,
            new: Self,
        ) -> Result<Self, Self>;
    }
}

macro_rules! impl_atomic_int {
    ($($t:ty => $a:ident),*) => {$(
        impl AtomicInt for $t {}
        impl sealed::Sealed for $t {
            unsafe fn fetch_add(cell: NonNull<Self>, v: Self) -> Self {
                // SAFETY: the caller's promise (see `Sealed`); `$t` is aligned like its atomic.
                unsafe { std::sync::atomic::$a::from_ptr(cell.as_ptr()) }.fetch_add(v, Ordering::SeqCst)
            }
            unsafe fn fetch_sub(cell: NonNull<Self>, v: Self) -> Self {
                // SAFETY: as in `fetch_add`.
                unsafe { std::sync::atomic::$a::from_ptr(cell.as_ptr()) }.fetch_sub(v, Ordering::SeqCst)
            }
            unsafe fn swap(cell: NonNull<Self>, v: Self) -> Self {
                // SAFETY: as in `fetch_add`.
                unsafe { std::sync::atomic::$a::from_ptr(cell.as_ptr()) }.swap(v, Ordering::SeqCst)
            }
            unsafe fn compare_exchange(cell: NonNull<Self>, current: Self, new: Self) -> Result<Self, Self> {
                // SAFETY: as in `fetch_add`.
                unsafe { std::sync::atomic::$a::from_ptr(cell.as_ptr()) }
                    .compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
            }
        }
        const _: () = assert!(align_of::<$t>() == align_of::<std::sync::atomic::$a>());
    )*};
}
impl_atomic_int! {
    u8 => AtomicU8, u16 => AtomicU16, u32 => AtomicU32, u64 => AtomicU64, usize => AtomicUsize,
    i8 => AtomicI8, i16 => AtomicI16, i32 => AtomicI32, i64 => AtomicI64, isize => AtomicIsize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Mixed {
        a: u16,
        b: u8,
        c: u8,
        d: f32,
    }
    crate::shm_safe!(Mixed);

    #[test]
    fn load_and_store_round_trip_every_chunk_width() {
        let mut x = 0u64;
        let mut m = Mixed {
            a: 0,
            b: 0,
            c: 0,
            d: 0.0,
        };
        let mut bytes = [0u8; 3];
        let v = Mixed {
            a: 7,
            b: 8,
            c: 9,
            d: 1.5,
        };
        // SAFETY: local, aligned values that only this thread touches.
        unsafe {
            store(NonNull::from(&mut x), 0xdead_beef_u64);
            assert_eq!(load(NonNull::from(&mut x)), 0xdead_beef_u64);
            store(NonNull::from(&mut m), v);
            assert_eq!(load(NonNull::from(&mut m)), v);
            store(NonNull::from(&mut bytes), [1, 2, 3]);
            assert_eq!(load(NonNull::from(&mut bytes)), [1, 2, 3]);
        }
    }
}
