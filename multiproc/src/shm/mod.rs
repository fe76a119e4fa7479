//! Shared memory: [`Value`] and [`Array`] (with a lock), [`RawValue`] and [`RawArray`]
//! (without), named [`SharedMemory`], and the rule for what may live there ([`ShmSafe`]).
//!
//! Anonymous objects (everything but `SharedMemory`) live in `memfd` segments that die
//! with their last user: a crash leaks nothing.

mod array;
mod named;
mod value;

pub use self::array::{Array, ArrayGuard, RawArray};
pub use self::named::SharedMemory;
pub use self::value::{RawValue, Value, ValueGuard};
pub use crate::mem::cell::AtomicInt;
#[doc(hidden)]
pub use crate::mem::pod::__private;
pub use crate::mem::pod::ShmSafe;

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_move_and_share_between_threads() {
        send_sync::<Value<u64>>();
        send_sync::<Array<f64>>();
        send_sync::<RawValue<i32>>();
        send_sync::<RawArray<u8>>();
        send_sync::<SharedMemory>();
    }
}
