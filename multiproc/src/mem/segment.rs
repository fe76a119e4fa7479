//! Anonymous shared segments: a `memfd` mapped `MAP_SHARED`, reference-counted in this
//! process and shared with forked children (and, through its fd, with any process).
//!
//! A segment dies with its last user: once every process has dropped its mapping and closed
//! its fd, the kernel frees the memory, so a crash leaks nothing.
//!
//! # Layout
//!
//! ```text
//! offset 0    Header (64 bytes): magic, version, kind, payload size, payload alignment,
//!             the async waiters' word (see `mem::wake`), reserved
//! offset 64   payload: the shared objects, reached by offset with `get` / `ptr`
//! ```
//!
//! Internal links between shared objects are offsets, never addresses: every process maps
//! the segment at its own address.

use std::fmt;
use std::io;
use std::mem::{align_of, size_of};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::pod::{ShmSafe, ShmSync};
use super::wake::AsyncWake;
use crate::sys::mman::{self, Mapping};

/// `b"MPROCSHM"`, first in every segment this crate makes.
const MAGIC: u64 = u64::from_le_bytes(*b"MPROCSHM");

/// Bumped whenever the layout of any shared object changes, so an old binary cannot attach
/// to a new one's segment (an fd passed between different builds).
const VERSION: u32 = 1;

/// Size of the header, and the offset of the payload. Also the largest payload alignment.
pub(crate) const HEADER_SIZE: usize = 64;

/// What a segment holds: a tag chosen by the owning type (`Kind(*b"LOCK")`), checked when
/// an fd is attached so a lock's fd cannot be opened as a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind(pub(crate) [u8; 4]);

/// The segment header, at offset 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Header {
    magic: u64,
    version: u32,
    kind: [u8; 4],
    payload_size: u64,
    payload_align: u64,
    /// Async waiters announced on the object (`mem::wake`); an atomic after creation, and
    /// not compared by `attach` (it changes while the segment is in use).
    async_waiters: u32,
    reserved: [u32; 7],
}

const _: () = assert!(size_of::<Header>() == HEADER_SIZE);

impl Header {
    /// The header of a segment of this crate's build holding `kind` with this layout.
    fn new(kind: Kind, payload_size: usize, payload_align: usize) -> Header {
        Header {
            magic: MAGIC,
            version: VERSION,
            kind: kind.0,
            payload_size: payload_size as u64,
            payload_align: payload_align as u64,
            async_waiters: 0,
            reserved: [0; 7],
        }
    }
}

/// An anonymous shared segment. Cloning it is cheap and shares the same mapping; a forked
/// child inherits the mapping, so a clone captured by a child's closure reaches the same
/// memory.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // Field order matters only for readability: unmapping and closing are independent.
    map: Mapping,
    /// Kept so the segment can travel to another process (its `Serialize` impl) or be named.
    fd: OwnedFd,
    payload_size: usize,
    /// Wakes the async waiters of the object in the segment; travels with `fd`.
    wake: AsyncWake,
}

impl Segment {
    /// Creates a zero-filled segment of `kind` with `payload_size` bytes of payload aligned
    /// to at most [`HEADER_SIZE`] bytes.
    pub(crate) fn create(
        kind: Kind,
        payload_size: usize,
        payload_align: usize,
    ) -> io::Result<Segment> {
        let len = total_len(payload_size, payload_align)?;
        Segment::create_in(
            mman::memfd(c"multiproc", len)?,
            kind,
            payload_size,
            payload_align,
        )
    }

    /// Like [`Segment::create`], in the memory file `fd` (an unnamed file that gets a name
    /// once the object in it is ready: `mem::named`). The file is sized here.
    pub(crate) fn create_in(
        fd: OwnedFd,
        kind: Kind,
        payload_size: usize,
        payload_align: usize,
    ) -> io::Result<Segment> {
        let len = total_len(payload_size, payload_align)?;
        if mman::file_len(fd.as_fd())? != len {
            mman::set_len(fd.as_fd(), len)?;
        }
        let map = Mapping::new(fd.as_fd(), len)?;
        let header = Header::new(kind, payload_size, payload_align);
        // SAFETY: the mapping is at least HEADER_SIZE bytes and page aligned, so it holds an
        // aligned `Header`; nobody else can see this brand-new file yet (a memfd, or an
        // unnamed file not yet published).
        unsafe { map.as_ptr().cast::<Header>().write(header) };
        Ok(Segment {
            inner: Arc::new(Inner {
                map,
                fd,
                payload_size,
                wake: AsyncWake::new(),
            }),
        })
    }

    /// Creates a segment holding one `T`, zero-filled (every `ShmSafe` type is valid zeroed).
    pub(crate) fn create_for<T: ShmSafe>(kind: Kind) -> io::Result<Segment> {
        Segment::create(kind, size_of::<T>(), align_of::<T>())
    }

    /// Attaches to a segment made by [`Segment::create`] from its fd (received from another
    /// process), checking that it is one of ours, of `kind`, and of the expected layout.
    ///
    /// # Errors
    ///
    /// `InvalidData` when the file is too short, or its header's magic, version, kind, size
    /// or alignment differ from what is expected.
    pub(crate) fn attach(
        fd: OwnedFd,
        kind: Kind,
        payload_size: usize,
        payload_align: usize,
    ) -> io::Result<Segment> {
        Segment::attach_waking(fd, AsyncWake::new(), kind, payload_size, payload_align)
    }

    /// [`Segment::attach`] with the async waiters' eventfd `wake` (the one that came with a
    /// received segment).
    fn attach_waking(
        fd: OwnedFd,
        wake: AsyncWake,
        kind: Kind,
        payload_size: usize,
        payload_align: usize,
    ) -> io::Result<Segment> {
        let len = total_len(payload_size, payload_align)?;
        if mman::file_len(fd.as_fd())? < len {
            return Err(invalid("shared segment is shorter than its layout"));
        }
        let map = Mapping::new(fd.as_fd(), len)?;
        // SAFETY: the mapping is at least HEADER_SIZE bytes and page aligned; `Header` is
        // plain integers, valid for any bits, and written once before the fd was shared.
        let header = unsafe { map.as_ptr().cast::<Header>().read() };
        if header.magic != MAGIC {
            return Err(invalid("not a multiproc shared segment (bad magic)"));
        }
        if header.version != VERSION {
            return Err(invalid(
                "shared segment from an incompatible multiproc version",
            ));
        }
        if header.kind != kind.0 {
            return Err(invalid("shared segment holds a different kind of object"));
        }
        if header.payload_size != payload_size as u64
            || header.payload_align != payload_align as u64
        {
            return Err(invalid(
                "shared segment layout differs (another build of the type?)",
            ));
        }
        Ok(Segment {
            inner: Arc::new(Inner {
                map,
                fd,
                payload_size,
                wake,
            }),
        })
    }

    /// Attaches to a segment of `kind` whose payload size its creator chose (an object
    /// opened by name: an array, a barrier), with the size and alignment `layout` gives for
    /// the payload size its header records (`None`: no such object has that size).
    ///
    /// # Errors
    ///
    /// `InvalidData` as for [`Segment::attach`], or when `layout` refuses the size.
    pub(crate) fn attach_sized(
        fd: OwnedFd,
        kind: Kind,
        layout: impl FnOnce(usize) -> Option<(usize, usize)>,
    ) -> io::Result<Segment> {
        if mman::file_len(fd.as_fd())? < HEADER_SIZE {
            return Err(invalid("shared segment is shorter than its header"));
        }
        let head = Mapping::new(fd.as_fd(), HEADER_SIZE)?;
        // SAFETY: the mapping is HEADER_SIZE bytes and page aligned, so it holds an aligned
        // `Header`, plain integers valid for any bits, written before the file got its name.
        let header = unsafe { head.as_ptr().cast::<Header>().read() };
        drop(head);
        // Judge what the file is before trusting the size it records: for a file that is
        // not a `kind` segment of this build, `attach` refuses with the reason.
        if header.magic != MAGIC || header.version != VERSION || header.kind != kind.0 {
            return Segment::attach(fd, kind, 0, 1);
        }
        let (size, align) = usize::try_from(header.payload_size)
            .ok()
            .and_then(layout)
            .ok_or_else(|| invalid("shared segment's size fits no such object"))?;
        Segment::attach(fd, kind, size, align)
    }

    /// The payload size it was made with.
    pub(crate) fn payload_size(&self) -> usize {
        self.inner.payload_size
    }

    /// The memfd behind the segment (named segments are linked from it).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }

    /// Receives a segment sent by its `Serialize` impl and attaches it as `kind`, with the
    /// payload size and alignment `layout` gives for the payload size the sender announced
    /// (`None`: the type has no such layout). [`Segment::attach`] then checks them against
    /// the segment's own header, so a lying peer cannot make a handle reach past its memory.
    ///
    /// # Errors
    /// A serde error when the message holds no segment or the segment is not of `kind` and
    /// that layout.
    pub(crate) fn deserialize_as<'de, D: Deserializer<'de>>(
        deserializer: D,
        kind: Kind,
        layout: impl FnOnce(usize) -> Option<(usize, usize)>,
    ) -> Result<Segment, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let refuse = |why: String| {
            let kind = String::from_utf8_lossy(&kind.0).into_owned();
            D::Error::custom(format!(
                "cannot attach the received shared object ({kind}): {why}"
            ))
        };
        let announced = usize::try_from(wire.payload_size)
            .map_err(|_| refuse("its size does not fit this process".into()))?;
        let (size, align) =
            layout(announced).ok_or_else(|| refuse("its size fits no such object".into()))?;
        let wake = AsyncWake::received(wire.wake.map(crate::handle::Fd::into_inner));
        Segment::attach_waking(wire.fd, wake, kind, size, align).map_err(|e| refuse(e.to_string()))
    }

    /// The eventfd that wakes the async waiters of the object in this segment (a queue's
    /// wakers use it; under loom the queue has no segment).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn async_wake(&self) -> &AsyncWake {
        &self.inner.wake
    }

    /// Tells the async waiters announced in the header's word, if any (see `mem::wake`):
    /// the waker's step of a lock, semaphore or event after its state change.
    #[inline]
    pub(crate) fn wake_async_waiters(&self) {
        self.inner.wake.wake(self.async_waiters());
    }

    /// The header's async waiters word: how many async tasks (of any process) wait on the
    /// object this segment holds (see `mem::wake`).
    pub(crate) fn async_waiters(&self) -> &std::sync::atomic::AtomicU32 {
        let offset = std::mem::offset_of!(Header, async_waiters);
        // SAFETY: the header is the first HEADER_SIZE bytes of the live mapping and the
        // field is 4-aligned within it (the mapping is page aligned); after creation it is
        // only ever accessed through this atomic, in every process (`attach` reads the
        // header but not this field's value); an `AtomicU32` is valid for any bits.
        unsafe {
            &*self
                .inner
                .map
                .as_ptr()
                .add(offset)
                .cast::<std::sync::atomic::AtomicU32>()
        }
    }

    /// A pointer to the `T` at payload `offset`, for types that are read and written under a
    /// protocol of the caller's (a lock), not only through atomics.
    ///
    /// # Panics
    ///
    /// If `T` at `offset` does not fit in the payload or is misaligned: offsets come from the
    /// owning type's layout, so that is a bug in this crate, not bad input.
    pub(crate) fn ptr<T: ShmSafe>(&self, offset: usize) -> NonNull<T> {
        self.slice_ptr::<T>(offset, 1).cast()
    }

    /// Faults in the pages of payload bytes `offset..offset + len` for this process (see
    /// `Mapping::populate`); `offset` is page aligned in the payload's terms, that is
    /// `HEADER_SIZE + offset` is a multiple of the page size. Best effort: an error only
    /// means the pages fault in when touched.
    #[cfg_attr(loom, allow(dead_code))] // only the ring's shm backend prefaults
    pub(crate) fn populate(&self, offset: usize, len: usize, write: bool) -> io::Result<()> {
        if !matches!(offset.checked_add(len), Some(end) if end <= self.inner.payload_size) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        self.inner.map.populate(HEADER_SIZE + offset, len, write)
    }

    /// A pointer to `len` consecutive `T`s at payload `offset` (see [`Segment::ptr`]).
    ///
    /// # Panics
    ///
    /// As [`Segment::ptr`].
    pub(crate) fn slice_ptr<T: ShmSafe>(&self, offset: usize, len: usize) -> NonNull<[T]> {
        let bytes = size_of::<T>()
            .checked_mul(len)
            .and_then(|b| b.checked_add(offset))
            .expect("shared object layout overflows");
        assert!(
            bytes <= self.inner.payload_size,
            "shared object out of its segment"
        );
        assert!(
            offset % align_of::<T>() == 0 && align_of::<T>() <= HEADER_SIZE,
            "shared object misaligned"
        );
        // SAFETY: `HEADER_SIZE + offset + len * size_of::<T>()` is within the mapping (checked
        // above against the payload size, and the mapping is HEADER_SIZE + payload bytes).
        let first = unsafe { self.inner.map.as_ptr().add(HEADER_SIZE + offset) };
        let slice = std::ptr::slice_from_raw_parts_mut(first.cast::<T>(), len);
        // SAFETY: derived from the mapping's non-null base by an in-bounds offset.
        unsafe { NonNull::new_unchecked(slice) }
    }

    /// A shared reference to the `T` at payload `offset`, valid as long as this handle.
    /// `T: ShmSync` is written only through atomics, so other processes may change it while
    /// the reference lives.
    ///
    /// # Panics
    ///
    /// As [`Segment::ptr`].
    pub(crate) fn get<T: ShmSync>(&self, offset: usize) -> &T {
        // SAFETY: `ptr` checked bounds and alignment; the memory is mapped for as long as
        // `self` (the `Arc` keeps the mapping); every bit pattern is a valid `T` (`ShmSafe`);
        // and `ShmSync` means all writers use atomics, so a shared reference races with none.
        unsafe { self.ptr::<T>(offset).as_ref() }
    }

    /// A shared reference to `len` consecutive `T`s at payload `offset` (see [`Segment::get`]).
    ///
    /// # Panics
    ///
    /// As [`Segment::ptr`].
    pub(crate) fn get_slice<T: ShmSync>(&self, offset: usize, len: usize) -> &[T] {
        // SAFETY: as in `get`, for each of the `len` elements `slice_ptr` checked.
        unsafe { self.slice_ptr::<T>(offset, len).as_ref() }
    }
}

/// What a segment writes when it travels: its memfd (a handle, see `handle.rs`), its
/// payload size, from which the receiver's type works out its layout (an array its length),
/// and the eventfd of its async waiters (see `mem::wake`; `None` from a build without
/// feature `tokio`, so builds with and without it understand each other).
#[derive(Serialize)]
struct WireRef<'a> {
    #[serde(with = "crate::handle")]
    fd: BorrowedFd<'a>,
    payload_size: u64,
    wake: Option<Borrowed<'a>>,
}

/// A borrowed descriptor sent as a handle.
#[derive(Serialize)]
struct Borrowed<'a>(#[serde(with = "crate::handle")] BorrowedFd<'a>);

#[derive(Deserialize)]
struct Wire {
    #[serde(with = "crate::handle")]
    fd: OwnedFd,
    payload_size: u64,
    wake: Option<crate::handle::Fd>,
}

/// Sent through a `Connection` (or as a process argument), a segment arrives as one more
/// mapping of the same memory; the typed handle that owns it re-checks its header on
/// arrival ([`Segment::deserialize_as`]).
impl Serialize for Segment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireRef {
            fd: self.inner.fd.as_fd(),
            payload_size: self.inner.payload_size as u64,
            wake: self.inner.wake.fd().map(Borrowed),
        }
        .serialize(serializer)
    }
}

/// A typed handle to one shared object: the segment (kept alive) and the object's address,
/// checked once when made, so reaching the object is one pointer load (the lock fast paths
/// need that). Clones share the segment.
pub(crate) struct Shared<T: ShmSync> {
    seg: Segment,
    ptr: NonNull<T>,
}

// SAFETY: `T: ShmSync` is `Sync` and only written atomically; the pointer stays valid in any
// thread as long as `seg` (moved along) keeps the mapping.
unsafe impl<T: ShmSync> Send for Shared<T> {}
// SAFETY: as above: sharing `&Shared<T>` hands out only `&T`, and `T: Sync`.
unsafe impl<T: ShmSync> Sync for Shared<T> {}

impl<T: ShmSync> Shared<T> {
    /// The `T` at payload `offset` of `seg`.
    ///
    /// # Panics
    ///
    /// As [`Segment::ptr`].
    pub(crate) fn new(seg: Segment, offset: usize) -> Shared<T> {
        let ptr = seg.ptr(offset);
        Shared { seg, ptr }
    }

    /// The segment the object lives in.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Receives a `T` that is alone in its segment of `kind` (as made by
    /// [`Segment::create_for`]), sent as its segment.
    ///
    /// # Errors
    /// As [`Segment::deserialize_as`].
    pub(crate) fn deserialize_as<'de, D: Deserializer<'de>>(
        deserializer: D,
        kind: Kind,
    ) -> Result<Shared<T>, D::Error> {
        let seg = Segment::deserialize_as(deserializer, kind, |_| {
            Some((size_of::<T>(), align_of::<T>()))
        })?;
        // The header matched `T`'s layout, so `T` at offset 0 is in bounds.
        Ok(Shared::new(seg, 0))
    }
}

/// `Serialize` and `Deserialize` for a handle type whose state is one `Shared<$raw>` (field
/// `$field`) alone in its segment of `$kind`: it travels as its segment.
macro_rules! travels_as_shared {
    ($ty:ident, $field:ident, $kind:expr) => {
        /// Sent through a [`Connection`](crate::Connection) (or as a process argument), it
        /// arrives as another handle on the same object (see [`handle`](crate::handle)).
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serde::Serialize::serialize(self.$field.segment(), serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                Ok($ty {
                    $field: $crate::mem::segment::Shared::deserialize_as(deserializer, $kind)?,
                })
            }
        }
    };
}
pub(crate) use travels_as_shared;

impl<T: ShmSync> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            seg: self.seg.clone(),
            ptr: self.ptr,
        }
    }
}

impl<T: ShmSync> std::ops::Deref for Shared<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: as in `Segment::get`: checked in `new`, kept mapped by `self.seg`, valid
        // for any bits, written only atomically.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ShmSync> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("seg", &self.seg)
            .finish_non_exhaustive()
    }
}

fn check_align(align: usize) -> io::Result<()> {
    if align.is_power_of_two() && align <= HEADER_SIZE {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "shared payload alignment must be a power of two of at most 64",
        ))
    }
}

/// The mapping length for this payload (header included), after checking its alignment.
fn total_len(payload_size: usize, payload_align: usize) -> io::Result<usize> {
    check_align(payload_align)?;
    payload_size
        .checked_add(HEADER_SIZE)
        .filter(|&len| isize::try_from(len).is_ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "shared segment too large"))
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fd::dup;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    const TEST: Kind = Kind(*b"TEST");

    #[test]
    fn new_segment_is_zeroed_and_clones_share_it() {
        let a = Segment::create(TEST, 128, 8).unwrap();
        let b = a.clone();
        let w: &AtomicU64 = a.get(8);
        assert_eq!(w.load(Ordering::Relaxed), 0);
        w.store(7, Ordering::Relaxed);
        assert_eq!(b.get::<AtomicU64>(8).load(Ordering::Relaxed), 7);
    }

    #[test]
    fn attach_by_fd_sees_the_same_memory() {
        let a = Segment::create_for::<[AtomicU32; 4]>(TEST).unwrap();
        a.get::<[AtomicU32; 4]>(0)[3].store(9, Ordering::Relaxed);
        let b = Segment::attach(dup(a.fd()).unwrap(), TEST, 16, 4).unwrap();
        assert_eq!(b.get::<[AtomicU32; 4]>(0)[3].load(Ordering::Relaxed), 9);
    }

    #[test]
    fn attach_checks_kind_and_layout() {
        let a = Segment::create(TEST, 16, 4).unwrap();
        let wrong_kind = Segment::attach(dup(a.fd()).unwrap(), Kind(*b"LOCK"), 16, 4);
        assert_eq!(wrong_kind.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let wrong_size = Segment::attach(dup(a.fd()).unwrap(), TEST, 8, 4);
        assert_eq!(wrong_size.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let too_long = Segment::attach(dup(a.fd()).unwrap(), TEST, 1 << 20, 4);
        assert_eq!(too_long.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn attach_refuses_a_foreign_file() {
        let fd = mman::memfd(c"other", 4096).unwrap();
        let err = Segment::attach(fd, TEST, 16, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn bad_alignment_is_refused() {
        assert!(Segment::create(TEST, 16, 3).is_err());
        assert!(Segment::create(TEST, 16, 128).is_err());
    }

    #[test]
    #[should_panic(expected = "out of its segment")]
    fn out_of_bounds_offset_is_a_bug() {
        let a = Segment::create(TEST, 16, 8).unwrap();
        let _ = a.get::<AtomicU64>(16);
    }
}
