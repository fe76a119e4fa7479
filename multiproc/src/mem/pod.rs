//! Which types may live in shared memory: [`ShmSafe`], and [`ShmSync`] for those that may
//! be shared by reference while other processes change them.

use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
    AtomicU8, AtomicUsize,
};

/// A type whose values may be stored in memory shared between processes.
///
/// Implemented for the integer and floating-point primitives, the integer atomics and
/// arrays of such types. For a struct of your own, derive [`bytemuck::Pod`] and
/// [`bytemuck::Zeroable`] on it and use [`shm_safe!`](crate::shm_safe), which checks that
/// and implements this trait.
///
/// # Safety
///
/// Implementing it promises that the type:
/// - is `#[repr(C)]` or `#[repr(transparent)]` (or a primitive), so its layout is the same in
///   every process built from the same source;
/// - holds no pointer, reference, file descriptor or other process-local handle (another
///   process would see a meaningless address);
/// - is valid for every bit pattern, in particular for all zeroes (new segments are zeroed,
///   and a process killed mid-write may leave any bytes behind);
/// - has no `Drop` that matters: the memory is reclaimed by the kernel without running it.
pub unsafe trait ShmSafe: Sized + 'static {}

/// A [`ShmSafe`] type that may be shared *by reference* (`&T`) while other processes change
/// it: every byte of it is only ever written through atomics.
///
/// # Safety
///
/// On top of [`ShmSafe`]: no part of the type is written except through atomic operations
/// (or through raw pointers under a process-shared protocol that excludes every reader, for
/// bytes no `&T` reader looks at), so handing out `&T` while another process writes cannot
/// create a data race.
pub(crate) unsafe trait ShmSync: ShmSafe + Sync {}

macro_rules! impl_shm_safe {
    ($($t:ty)*) => {$(
        // SAFETY: a primitive: fixed layout, no pointers, every bit pattern valid, no Drop.
        unsafe impl ShmSafe for $t {}
    )*};
}
impl_shm_safe! { u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize f32 f64 }

macro_rules! impl_shm_sync_atomic {
    ($($t:ty)*) => {$(
        // SAFETY: an integer atomic has the layout of its integer (repr(C, align)), holds no
        // pointer, is valid for every bit pattern and has no Drop.
        unsafe impl ShmSafe for $t {}
        // SAFETY: an atomic is only ever written atomically.
        unsafe impl ShmSync for $t {}
    )*};
}
impl_shm_sync_atomic! {
    AtomicU8 AtomicU16 AtomicU32 AtomicU64 AtomicUsize
    AtomicI8 AtomicI16 AtomicI32 AtomicI64 AtomicIsize
}

// SAFETY: an array of `ShmSafe` elements has no padding between them, and inherits every
// property from its element type.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}
// SAFETY: every element is only written atomically, so the whole array is.
unsafe impl<T: ShmSync, const N: usize> ShmSync for [T; N] {}

/// Implements [`ShmSafe`](crate::shm::ShmSafe) for your own types after checking that each
/// is [`bytemuck::Pod`] (which a derive verifies: `#[repr(C)]`, no padding, no pointers,
/// every bit pattern valid).
///
/// # Examples
///
/// ```
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
/// multiproc::shm_safe!(Point);
///
/// fn lives_in_shared_memory<T: multiproc::shm::ShmSafe>() {}
/// lives_in_shared_memory::<Point>();
/// ```
#[macro_export]
macro_rules! shm_safe {
    ($($t:ty),+ $(,)?) => {$(
        const _: fn() = {
            fn must_be_pod<T: $crate::shm::__private::Pod>() {}
            must_be_pod::<$t>
        };
        // SAFETY: `bytemuck::Pod`, checked just above, implies every property `ShmSafe`
        // asks for: a fixed C layout without padding or pointers, valid for any bits.
        unsafe impl $crate::shm::ShmSafe for $t {}
    )+};
}

/// What [`shm_safe!`](crate::shm_safe) expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use bytemuck::Pod;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_shm_safe<T: ShmSafe>() {}
    fn is_shm_sync<T: ShmSync>() {}

    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Pair {
        a: u32,
        b: f32,
    }
    crate::shm_safe!(Pair);

    #[test]
    fn primitives_atomics_arrays_and_checked_structs_are_shm_safe() {
        is_shm_safe::<u64>();
        is_shm_safe::<[f64; 4]>();
        is_shm_safe::<Pair>();
        is_shm_sync::<AtomicU32>();
        is_shm_sync::<[AtomicU64; 2]>();
    }
}
