//! The ring's memory in production: one anonymous shared segment holding the control page
//! and the data area, reached through raw pointers by every process that maps it. The side
//! locks are the real robust `RawLock`.

use std::io;
use std::ptr::NonNull;

use super::Control;
use crate::loom::{AtomicU64, Ordering};
use crate::mem::named::Layout;
use crate::mem::segment::{Kind, Segment, HEADER_SIZE};
use crate::sys::identity::Token;

pub(super) use crate::raw::{Acquired, RawLock};

/// Address space reserved for the data area; the ring grows up to this.
pub(super) const MAX_CAP: u64 = 8 << 30;
/// Capacity of a new ring.
pub(super) const INITIAL_CAP: u64 = 128 << 10;
/// Below this capacity a full ring grows at once; above, a put first gives consumers a
/// moment to make room (see "Growth" in the ring's docs).
pub(super) const GROW_FREELY: u64 = 4 << 20;

/// The part of the data area that `Memory::prefault` faults in ahead of use.
const PREFAULT_UP_TO: u64 = 4 * GROW_FREELY;

/// Where the data area starts in the segment's payload: the rest of the first page, so the
/// data area is page-aligned (and 8-aligned, as the header words need).
const DATA_OFFSET: usize = 4096 - HEADER_SIZE;
/// The segment kind of a queue.
const KIND: Kind = Kind(*b"QUEU");

/// A named queue's segment (`queue::named`).
pub(super) const LAYOUT: Layout = Layout {
    what: "queue",
    kind: KIND,
    size: DATA_OFFSET + MAX_CAP as usize,
    align: 64,
};

const _: () = assert!(std::mem::size_of::<Control>() <= DATA_OFFSET);

// SAFETY: `Control` is repr(C) of atomics and `RawLock`s (themselves ShmSafe): fixed
// layout, no pointers, and all zero bytes are its initial state (unlocked, empty ring, cap
// set right after creation).
unsafe impl crate::mem::pod::ShmSafe for Control {}
// SAFETY: every field is written only through atomics (the locks included).
unsafe impl crate::mem::pod::ShmSync for Control {}

/// Who this thread is for the side locks.
pub(super) fn me() -> Token {
    crate::sys::identity::thread()
}

/// Whether the holder `token` of a side lock still runs.
pub(super) fn is_alive(token: Token) -> bool {
    crate::sys::identity::is_alive(token)
}

/// The segment and a pointer to its data area.
#[derive(Debug)]
pub(super) struct Memory {
    segment: Segment,
    data: NonNull<u8>,
    /// How much of the data area this mapping has faulted in for reading, and for writing
    /// (`prefault`). Process-local: a forked child inherits the figures but not the page
    /// tables of a shared mapping, so it faults in the pages below them one by one, as
    /// before; above them it prefaults as the ring grows.
    readable: AtomicU64,
    writable: AtomicU64,
}

impl Memory {
    /// A fresh segment: a zeroed control page and [`MAX_CAP`] bytes of (untouched) data area.
    pub(super) fn create() -> io::Result<Memory> {
        Ok(Memory::in_segment(Segment::create(
            LAYOUT.kind,
            LAYOUT.size,
            LAYOUT.align,
        )?))
    }

    /// The ring memory in `segment` (of [`LAYOUT`]), new or opened by name.
    pub(super) fn in_segment(segment: Segment) -> Memory {
        let data = segment
            .slice_ptr::<u8>(DATA_OFFSET, MAX_CAP as usize)
            .cast::<u8>();
        Memory::mapped(segment, data)
    }

    /// Receives the memory of a ring sent as its segment (see `Ring`'s `Serialize`).
    ///
    /// # Errors
    /// A serde error when the message holds no queue segment of this layout.
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Memory, D::Error> {
        let segment = Segment::deserialize_as(deserializer, KIND, |_| {
            Some((DATA_OFFSET + MAX_CAP as usize, 64))
        })?;
        let data = segment
            .slice_ptr::<u8>(DATA_OFFSET, MAX_CAP as usize)
            .cast::<u8>();
        Ok(Memory::mapped(segment, data))
    }

    fn mapped(segment: Segment, data: NonNull<u8>) -> Memory {
        Memory {
            segment,
            data,
            readable: AtomicU64::new(0),
            writable: AtomicU64::new(0),
        }
    }

    /// Faults in the data bytes below `cap` (at most the first 16 MiB) for this process in
    /// one call per growth, for
    /// writing (`write`: a producer or grower) or reading (a consumer), instead of one page
    /// fault per 4 KiB page as the ring is first used: a fresh 4 MiB ring is 1,024 faults
    /// in each process. After that, one relaxed load per call. Best effort (a kernel older
    /// than 5.14 faults the pages in on touch, as before).
    pub(super) fn prefault(&self, cap: u64, write: bool) {
        // A larger ring holds a backlog; its pages are faulted in as they are used, so
        // that a ring grown for a backlog never costs more memory than the backlog.
        let cap = cap.min(PREFAULT_UP_TO);
        let done = if write {
            &self.writable
        } else {
            &self.readable
        };
        let from = done.load(Ordering::Relaxed);
        if cap <= from {
            return;
        }
        // `from` and `cap` are multiples of the page size (powers of two from
        // `INITIAL_CAP`), and the data area starts on a page.
        let _ = self
            .segment
            .populate(DATA_OFFSET + from as usize, (cap - from) as usize, write);
        done.fetch_max(cap, Ordering::Relaxed);
        if write {
            self.readable.fetch_max(cap, Ordering::Relaxed);
        }
    }

    /// The segment, to send.
    pub(super) fn segment(&self) -> &Segment {
        &self.segment
    }

    /// The control page.
    pub(super) fn control(&self) -> &Control {
        self.segment.get::<Control>(0)
    }

    /// The 8-byte word at data offset `off`, as an atomic.
    ///
    /// # Safety
    /// `off` is 8-aligned and below [`MAX_CAP`]. No [`write_at`](Memory::write_at) or
    /// [`move_within`](Memory::move_within) may cover these 8 bytes while the reference is
    /// used: the word is a header word of a record the caller's side owns (see "Who owns
    /// which bytes" in the ring's docs), or the `state` word at `head`/`tail`, which is only
    /// ever accessed atomically.
    pub(super) unsafe fn word(&self, off: u64) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off < MAX_CAP);
        // SAFETY: the offset is inside the mapping and 8-aligned (the caller's contract; the
        // data area starts on a page); the bytes are plain memory valid for any value,
        // `AtomicU64` has the layout of a `u64`, and no plain write races with atomic
        // accesses to them (the caller's contract).
        unsafe { &*self.data.as_ptr().add(off as usize).cast::<AtomicU64>() }
    }

    /// Copies `src` to the data bytes `off..off + src.len()`.
    ///
    /// # Safety
    /// The range lies below [`MAX_CAP`] and the caller's side owns it for writing: it is free
    /// space and the caller holds `plock`, or the caller is growing the ring with both locks
    /// held. No other process or thread reads or writes it until the caller publishes it
    /// with a Release store (the commit, or the new `cap`).
    pub(super) unsafe fn write_at(&self, off: u64, src: &[u8]) {
        debug_assert!(off + src.len() as u64 <= MAX_CAP);
        // SAFETY: the range is inside the mapping and nobody else accesses it (the caller's
        // contract); `src` is a distinct allocation of this process.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.data.as_ptr().add(off as usize),
                src.len(),
            );
        }
    }

    /// Hands the data bytes `off..off + len` to `write`, in place, to fill as it likes.
    ///
    /// # Safety
    /// As [`write_at`](Memory::write_at) for the range `off..off + len`.
    pub(super) unsafe fn write_with<R>(
        &self,
        off: u64,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        debug_assert!(off + len as u64 <= MAX_CAP);
        // SAFETY: inside the mapping, plain memory valid for any byte (the pages are zeroed
        // or were written before), and nobody else reads or writes the range while the slice
        // lives (the caller's contract), so a unique borrow of it is sound.
        write(unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr().add(off as usize), len) })
    }

    /// Hands the data bytes `off..off + len` to `read`, in place.
    ///
    /// # Safety
    /// The range lies below [`MAX_CAP`] and belongs to a committed record the caller owns
    /// for reading: it holds `clock` (or both locks), saw the record's commit with an Acquire
    /// load, and has not yet released it by moving `head`. No producer writes these bytes
    /// until then.
    pub(super) unsafe fn read_at<R>(
        &self,
        off: u64,
        len: usize,
        read: impl FnOnce(&[u8]) -> R,
    ) -> R {
        debug_assert!(off + len as u64 <= MAX_CAP);
        // SAFETY: inside the mapping, initialised (written by the committing producer, or
        // zero pages), and not written while the slice lives (the caller's contract).
        read(unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(off as usize), len) })
    }

    /// Copies `len` bytes inside the data area from `from` to `to`.
    ///
    /// # Safety
    /// Both ranges lie below [`MAX_CAP`] and do not overlap; the caller holds both locks
    /// while growing the ring: `from` is live data it owns for reading, `to` lies in the
    /// half that the doubling added, which holds nothing live.
    pub(super) unsafe fn move_within(&self, from: u64, to: u64, len: u64) {
        debug_assert!(from.max(to) + len <= MAX_CAP);
        // SAFETY: both ranges are inside the mapping, disjoint, and nobody else accesses
        // them while both locks are held (the caller's contract).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.data.as_ptr().add(from as usize),
                self.data.as_ptr().add(to as usize),
                len as usize,
            );
        }
    }
}
