//! Named POSIX shared memory, by intent rather than by `O_*` flags, so callers outside
//! `sys` need no libc constants.

use std::ffi::CStr;
use std::io;
use std::os::fd::OwnedFd;

use super::mman::shm_open;

/// Creates the named object `name` (a leading `/` included), failing with `AlreadyExists`
/// if it exists.
pub(crate) fn create_named(name: &CStr) -> io::Result<OwnedFd> {
    shm_open(name, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR)
}

/// Opens the existing named object `name` read-write, failing with `NotFound` if absent.
pub(crate) fn open_named(name: &CStr) -> io::Result<OwnedFd> {
    shm_open(name, libc::O_RDWR)
}
