//! Shared mappings: [`memfd_create(2)`], [`mmap(2)`], [`shm_open(3)`].
//!
//! [`memfd_create(2)`]: https://man7.org/linux/man-pages/man2/memfd_create.2.html
//! [`mmap(2)`]: https://man7.org/linux/man-pages/man2/mmap.2.html
//! [`shm_open(3)`]: https://man7.org/linux/man-pages/man3/shm_open.3.html

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use super::{cvt, cvt_r};

/// Creates an anonymous memory file of `len` bytes (zero-filled), close-on-exec.
pub(crate) fn memfd(name: &CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: memfd_create just returned this fd and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_len(fd.as_fd_borrow(), len)?;
    Ok(fd)
}

/// Sets the size of a memory file.
pub(crate) fn set_len(fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: ftruncate on a valid fd has no memory-safety preconditions.
    cvt_r(|| unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    Ok(())
}

/// The size of the file behind `fd`.
pub(crate) fn file_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of one `stat`; fstat fills it on success.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.st_size as usize)
}

/// Opens (or creates, with `O_CREAT | O_EXCL` in `flags`) a named POSIX shared memory object.
pub(crate) fn shm_open(name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the mode is a plain integer.
    let fd = cvt_r(|| unsafe { libc::shm_open(name.as_ptr(), flags | libc::O_CLOEXEC, 0o600) })?;
    // SAFETY: shm_open just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes a named POSIX shared memory object.
pub(crate) fn shm_unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::shm_unlink(name.as_ptr()) })?;
    Ok(())
}

/// A `MAP_SHARED` read-write mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; what is stored in it decides thread safety, and the
// types built on it (in shm/, sync/, queue/) only hand out atomics or lock-guarded access.
unsafe impl Send for Mapping {}
// SAFETY: as above: `Mapping` itself gives out only a raw pointer.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0, shared and read-write.
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map 0 bytes",
            ));
        }
        // SAFETY: a fresh mapping chosen by the kernel (addr null) aliases no Rust object;
        // the fd is valid for the call.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The first byte of the mapping (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapping's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Faults in the pages of `offset..offset + len` (page aligned, inside the mapping) in
    /// one call, for writing (`write`) or reading: [`madvise(2)`]'s `MADV_POPULATE_WRITE` /
    /// `MADV_POPULATE_READ` (Linux 5.14). Cheaper than one page fault per page, and
    /// changes no byte. An error (an older kernel) only means the pages fault in on touch.
    ///
    /// [`madvise(2)`]: https://man7.org/linux/man-pages/man2/madvise.2.html
    #[cfg_attr(loom, allow(dead_code))] // only the ring's shm backend prefaults
    pub(crate) fn populate(&self, offset: usize, len: usize, write: bool) -> io::Result<()> {
        if !matches!(offset.checked_add(len), Some(end) if end <= self.len) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let advice = if write {
            libc::MADV_POPULATE_WRITE
        } else {
            libc::MADV_POPULATE_READ
        };
        // SAFETY: the range lies inside this mapping (checked above); populating only
        // creates page table entries for the file's pages as a touch would, it never
        // changes their contents, so no Rust reference into the mapping is affected.
        cvt(unsafe { libc::madvise(self.ptr.as_ptr().add(offset).cast(), len, advice) })?;
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped once, here; every
        // reference into the mapping borrows `self`, so none outlives this call.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// `OwnedFd::as_fd` without importing the trait at every call site.
trait AsFdBorrow {
    fn as_fd_borrow(&self) -> BorrowedFd<'_>;
}

impl AsFdBorrow for OwnedFd {
    fn as_fd_borrow(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn memfd_maps_zeroed_and_shares_writes_between_mappings() {
        let fd = memfd(c"test", 4096).unwrap();
        assert_eq!(file_len(fd.as_fd()).unwrap(), 4096);
        let a = Mapping::new(fd.as_fd(), 4096).unwrap();
        let b = Mapping::new(fd.as_fd(), 4096).unwrap();
        // SAFETY: both mappings are 4096 bytes long and live for the whole test.
        unsafe {
            assert_eq!(*a.as_ptr().add(100), 0);
            *a.as_ptr().add(100) = 7;
            assert_eq!(*b.as_ptr().add(100), 7);
        }
    }

    #[test]
    fn populate_changes_no_byte_and_refuses_a_range_outside_the_mapping() {
        let fd = memfd(c"test", 4 * 4096).unwrap();
        let a = Mapping::new(fd.as_fd(), 4 * 4096).unwrap();
        let b = Mapping::new(fd.as_fd(), 4 * 4096).unwrap();
        // SAFETY: the mappings are 4 pages long and live for the whole test.
        unsafe { *a.as_ptr().add(4096 + 5) = 9 };
        a.populate(0, 4 * 4096, true).unwrap();
        b.populate(4096, 2 * 4096, false).unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(*b.as_ptr().add(4096 + 5), 9);
            assert_eq!(*b.as_ptr().add(2 * 4096), 0);
            *b.as_ptr().add(3 * 4096) = 4;
            assert_eq!(*a.as_ptr().add(3 * 4096), 4);
        }
        for (offset, len) in [(4096, 4 * 4096), (usize::MAX - 4095, 8192)] {
            assert_eq!(
                a.populate(offset, len, true).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn zero_length_mapping_is_refused() {
        let fd = memfd(c"test", 0).unwrap();
        assert_eq!(
            Mapping::new(fd.as_fd(), 0).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
