//! Shared memory: [`Value`] and [`Array`] (with a lock), [`RawValue`] and [`RawArray`]
//! (without), named [`SharedMemory`], and the rule for what may live there ([`ShmSafe`]).
//!
//! Anonymous objects (everything but `SharedMemory`) live in `memfd` segments that die
//! with their last user: a crash leaks nothing.

mod array;
mod cell;
mod named;
pub(crate) mod pod;
pub(crate) mod segment;
mod value;

pub use self::array::{Array, ArrayGuard, RawArray};
pub use self::cell::AtomicInt;
pub use self::named::SharedMemory;
#[doc(hidden)]
pub use self::pod::__private;
pub use self::pod::ShmSafe;
pub use self::value::{RawValue, Value, ValueGuard};
