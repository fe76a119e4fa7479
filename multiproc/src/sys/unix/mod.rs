//! The Linux backend.

pub(crate) mod exec;
pub(crate) mod fd;
pub(crate) mod futex;
pub(crate) mod identity;
pub(crate) mod mman;
pub(crate) mod process;
pub(crate) mod scm;
pub(crate) mod shm;
pub(crate) mod signal;
pub(crate) mod socket;

use std::io;

/// Turns a libc return value of `-1` plus `errno` into an `io::Error`.
pub(crate) fn cvt<T: IsMinusOne>(ret: T) -> io::Result<T> {
    if ret.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], retrying while the call fails with `EINTR`.
pub(crate) fn cvt_r<T: IsMinusOne>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Integer return types whose `-1` means failure.
pub(crate) trait IsMinusOne: Copy {
    fn is_minus_one(self) -> bool;
}

macro_rules! impl_is_minus_one {
    ($($t:ty)*) => {$(
        impl IsMinusOne for $t {
            fn is_minus_one(self) -> bool {
                self == -1
            }
        }
    )*};
}
impl_is_minus_one! { i32 i64 isize }
