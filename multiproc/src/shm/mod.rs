//! Shared memory: anonymous segments that die with their last user, and the types that may
//! live in them.

pub(crate) mod pod;
// Used by the shared objects built on it (sync, queue) as they land.
#[allow(dead_code)]
pub(crate) mod segment;

#[doc(hidden)]
pub use self::pod::__private;
pub use self::pod::ShmSafe;
