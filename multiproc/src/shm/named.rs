//! [`SharedMemory`]: a named block of shared memory that unrelated processes open by name.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::mem::named::{named_error, os_name};
use crate::sys::mman::{self, Mapping};
use crate::sys::shm;

/// What errors call it.
const WHAT: &str = "shared memory";

/// A named block of shared memory: Python's `multiprocessing.shared_memory.SharedMemory`.
///
/// Unlike everything else in [`shm`](crate::shm), it outlives its users: the name stays
/// until some process calls [`unlink`](SharedMemory::unlink), as in Python.
/// Dropping a handle only unmaps it.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let name = format!("doc-example-{}", std::process::id());
/// let a = multiproc::SharedMemory::create(&name, 512)?;
/// a.write(0, b"hello")?;
/// let b = multiproc::SharedMemory::open(&name)?;
/// let mut buf = [0; 5];
/// b.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// a.unlink()?;
/// # Ok(())
/// # }
/// ```
pub struct SharedMemory {
    name: String,
    map: Mapping,
}

impl SharedMemory {
    /// Creates the block `name` of `size` bytes, zero-filled.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a size of 0 or a name that is empty, too long, or holds
    /// `/` or NUL; [`Error::Io`] of kind `AlreadyExists` when the name is taken.
    pub fn create(name: &str, size: usize) -> Result<SharedMemory> {
        if size == 0 {
            return Err(Error::InvalidArgument(
                "shared memory size must be positive".into(),
            ));
        }
        let cname = os_name(name)?;
        let fd = shm::create_named(&cname).map_err(|e| named_error(e, WHAT, name))?;
        let map = mman::set_len(fd.as_fd(), size)
            .and_then(|()| Mapping::new(fd.as_fd(), size))
            .inspect_err(|_| {
                let _ = mman::shm_unlink(&cname);
            })?;
        Ok(SharedMemory {
            name: name.to_owned(),
            map,
        })
    }

    /// Creates a block of `size` bytes under a fresh generated name (`mp_<pid>_<n>_<salt>`;
    /// see [`name`](SharedMemory::name)), trying the next candidate when one is taken
    /// (Python's `SharedMemory(create=True, size=...)`).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::create`]; `AlreadyExists` only if 100 candidates were all taken.
    pub fn create_unique(size: usize) -> Result<SharedMemory> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut last = None;
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("mp_{}_{n}_{salt:08x}", std::process::id());
            match SharedMemory::create(&name, size) {
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                other => return other,
            }
        }
        Err(Error::Io(
            last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()),
        ))
    }

    /// Opens the existing block `name`, whatever its size.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad name; [`Error::Io`] of kind `NotFound` when no
    /// block has that name.
    pub fn open(name: &str) -> Result<SharedMemory> {
        let cname = os_name(name)?;
        let fd = shm::open_named(&cname).map_err(|e| named_error(e, WHAT, name))?;
        let size = mman::file_len(fd.as_fd())?;
        let map = Mapping::new(fd.as_fd(), size)?;
        Ok(SharedMemory {
            name: name.to_owned(),
            map,
        })
    }

    /// Removes the name; the memory lives on until every handle is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] of kind `NotFound` when the name is already gone.
    pub fn unlink(&self) -> Result<()> {
        mman::shm_unlink(&os_name(&self.name)?).map_err(|e| named_error(e, WHAT, &self.name))?;
        Ok(())
    }

    /// The name it was created or opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.map.len()
    }

    /// The first byte, for zero-copy access. Other processes may write the memory at any
    /// time: reading or writing through it needs a protocol of your own (a [`Lock`]).
    ///
    /// [`Lock`]: crate::Lock
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// Every byte, in place (Python's `buf`): a safe zero-copy view that stays sound while
    /// other processes write the memory, since each byte is an atomic. Relaxed loads and
    /// stores see no torn byte; ordering between bytes, or a consistent view of several,
    /// needs a protocol of your own (a [`Lock`](crate::Lock), or a `Release` store of a flag
    /// byte read with `Acquire`).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// use std::sync::atomic::Ordering;
    /// let shm = multiproc::SharedMemory::create_unique(16)?;
    /// let buf = shm.as_atomic_bytes();
    /// buf[0].store(42, Ordering::Relaxed);
    /// buf[1].fetch_add(1, Ordering::Relaxed);
    /// let mut two = [0; 2];
    /// shm.read(0, &mut two)?;
    /// assert_eq!(two, [42, 1]);
    /// shm.unlink()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn as_atomic_bytes(&self) -> &[AtomicU8] {
        // SAFETY: the whole mapping, which lives as long as `self`; `AtomicU8` has the
        // layout of `u8`, is valid for any byte, and every access through this crate's safe
        // API to the memory is atomic (other processes must keep to that too).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast(), self.size()) }
    }

    fn bytes(&self, offset: usize, len: usize) -> Result<&[AtomicU8]> {
        if offset
            .checked_add(len)
            .map_or(true, |end| end > self.size())
        {
            return Err(Error::InvalidArgument(format!(
                "{len} bytes at offset {offset} do not fit in {} bytes",
                self.size()
            )));
        }
        Ok(&self.as_atomic_bytes()[offset..offset + len])
    }

    /// Copies bytes from `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the range does not fit.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let cells = self.bytes(offset, buf.len())?;
        for (b, cell) in buf.iter_mut().zip(cells) {
            *b = cell.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `data` to `offset`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the range does not fit.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        for (b, cell) in data.iter().zip(self.bytes(offset, data.len())?) {
            cell.store(*b, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// `name` as the OS wants it: `/name`, checked (SHM-03, SHM-06).
impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unlinks the test's name however the test ends.
    struct Unlink(String);
    impl Drop for Unlink {
        fn drop(&mut self) {
            if let Ok(n) = os_name(&self.0) {
                let _ = mman::shm_unlink(&n);
            }
        }
    }

    fn unique(tag: &str) -> (String, Unlink) {
        let name = format!("multiproc-test-{tag}-{}", std::process::id());
        (name.clone(), Unlink(name))
    }

    fn io_kind(e: Error) -> io::ErrorKind {
        match e {
            Error::Io(e) => e.kind(),
            other => panic!("not an io error: {other}"),
        }
    }

    #[test]
    fn shm_01_shm_02_shm_04_create_open_write_and_unlink() {
        let (name, _guard) = unique("basics");
        let a = SharedMemory::create(&name, 512).unwrap();
        assert_eq!(a.name(), name);
        assert!(a.size() >= 512);
        a.write(10, b"abc").unwrap();
        let b = SharedMemory::open(&name).unwrap();
        assert_eq!(b.size(), a.size());
        let mut buf = [0; 3];
        b.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"abc");
        let err = SharedMemory::create(&name, 512).unwrap_err();
        assert_eq!(io_kind(err), io::ErrorKind::AlreadyExists);
        a.unlink().unwrap();
        assert_eq!(io_kind(b.unlink().unwrap_err()), io::ErrorKind::NotFound);
        assert_eq!(
            io_kind(SharedMemory::open(&name).unwrap_err()),
            io::ErrorKind::NotFound
        );
        // SHM-09: the memory outlives the name while handles remain.
        b.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"abc");
    }

    #[test]
    fn shm_03_shm_06_bad_sizes_and_names_are_refused() {
        let (name, _guard) = unique("bad");
        assert!(matches!(
            SharedMemory::create(&name, 0),
            Err(Error::InvalidArgument(_))
        ));
        for bad in ["", "a/b", "nul\0here", &"x".repeat(300)] {
            assert!(matches!(
                SharedMemory::create(bad, 16),
                Err(Error::InvalidArgument(_))
            ));
            assert!(matches!(
                SharedMemory::open(bad),
                Err(Error::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn shm_05_generated_names_are_fresh() {
        let a = SharedMemory::create_unique(64).unwrap();
        let _guard_a = Unlink(a.name().to_owned());
        let b = SharedMemory::create_unique(64).unwrap();
        let _guard_b = Unlink(b.name().to_owned());
        assert_ne!(a.name(), b.name());
        assert_eq!(SharedMemory::open(a.name()).unwrap().size(), a.size());
    }

    #[test]
    fn out_of_range_access_is_refused() {
        let (name, _guard) = unique("range");
        let a = SharedMemory::create(&name, 16).unwrap();
        assert!(a.write(10, &[0; 7]).is_err());
        assert!(a.read(usize::MAX, &mut [0; 2]).is_err());
        a.unlink().unwrap();
    }
}
