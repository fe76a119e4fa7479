//! Named POSIX shared memory, by intent rather than by `O_*` flags, so callers outside
//! `sys` need no libc constants.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt_r;
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

/// Where named objects live (glibc's `shm_open` directory).
const SHM_DIR: &CStr = c"/dev/shm";

/// An unnamed file in the shared-memory file system ([`open(2)`] with `O_TMPFILE`), mode
/// 0600, close-on-exec: filled in first, then given its name by [`publish`], so no process
/// ever opens a half-made object, and one whose creator dies before `publish` vanishes with
/// its last descriptor.
///
/// [`open(2)`]: https://man7.org/linux/man-pages/man2/open.2.html
pub(crate) fn create_unnamed() -> io::Result<OwnedFd> {
    let dir = open_dir()?;
    // SAFETY: "." is NUL-terminated; `dir` is a directory descriptor we own.
    let fd = cvt_r(|| unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    })?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Gives the unnamed file `file` (from [`create_unnamed`]) the name `name` (with its leading
/// `/`, as for `shm_open`), atomically: [`linkat(2)`] fails with `AlreadyExists` when the
/// name is taken, and never replaces what is there.
///
/// [`linkat(2)`]: https://man7.org/linux/man-pages/man2/linkat.2.html
pub(crate) fn publish(file: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let bare = name
        .to_bytes()
        .strip_prefix(b"/")
        .unwrap_or(name.to_bytes());
    let bare = CString::new(bare).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let source = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Link relative to a descriptor of the directory: the file and its name must be on the
    // same mount, and an absolute path may resolve through another mount stacked there.
    let dir = open_dir()?;
    // SAFETY: both paths are NUL-terminated; `dir` is a directory descriptor we own.
    cvt_r(|| unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            source.as_ptr(),
            dir.as_raw_fd(),
            bare.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })?;
    Ok(())
}

fn open_dir() -> io::Result<OwnedFd> {
    // SAFETY: `SHM_DIR` is NUL-terminated.
    let fd = cvt_r(|| unsafe {
        libc::open(
            SHM_DIR.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: open just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
