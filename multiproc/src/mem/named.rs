//! Segments under a name, for processes that are not parent and child: the name rules, and
//! a create that is atomic, so a creator killed at any instant leaves either nothing or a
//! complete object behind.
//!
//! `create` fills an unnamed file (`O_TMPFILE` in `/dev/shm`, mode 0600) with the header
//! and the object's initial state, and only then links it under the name (`linkat`, which
//! fails rather than replaces when the name is taken). A creator that dies before the link
//! leaves no file at all: the kernel frees the unnamed file with its last descriptor. So
//! `open` never meets a half-initialised object, and `open_or_create` never needs to
//! guess whether a file is still being made (the stale-state trap of iceoryx2#601 and
//! #1578). `open` checks the header (magic, version, kind, layout) before any use.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;

use super::segment::{Kind, Segment};
use crate::error::{Error, Result};
use crate::sys;

/// The `shm_open` form of a user's name: a leading `/`.
///
/// # Errors
/// [`Error::InvalidArgument`] for a name that is empty, over 250 bytes, or holds `/` or NUL.
pub(crate) fn os_name(name: &str) -> Result<CString> {
    if name.is_empty() || name.len() > 250 || name.contains('/') || name.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "bad name {name:?}: it must be 1 to 250 bytes, without '/' or NUL"
        )));
    }
    CString::new(format!("/{name}")).map_err(|_| Error::InvalidArgument("name holds NUL".into()))
}

/// `AlreadyExists` and `NotFound` errors that say which object (`what`: "lock", "queue",
/// "shared memory") under which name.
pub(crate) fn named_error(e: io::Error, what: &str, name: &str) -> Error {
    let state = match e.kind() {
        io::ErrorKind::AlreadyExists => "already exists",
        io::ErrorKind::NotFound => "does not exist",
        io::ErrorKind::InvalidData => {
            return Error::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name:?} is not a {what} of this multiproc build: {e}"),
            ))
        }
        _ => return Error::Io(e),
    };
    Error::Io(io::Error::new(e.kind(), format!("{what} {name:?} {state}")))
}

/// The shape of a named object: its segment kind and payload layout, and what it is called
/// in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) what: &'static str,
    pub(crate) kind: Kind,
    pub(crate) size: usize,
    pub(crate) align: usize,
}

/// Creates the object `name`: a zeroed segment of `layout`, handed to `init` (which sets
/// the initial state and returns the handle), then published under the name.
///
/// # Errors
/// `AlreadyExists` when the name is taken (nothing is changed then); a bad name; what the
/// system or `init` refuses.
pub(crate) fn create<T>(
    name: &str,
    layout: Layout,
    init: impl FnOnce(Segment) -> Result<T>,
) -> Result<T> {
    let cname = os_name(name)?;
    let fd = sys::shm::create_unnamed()?;
    let segment = Segment::create_in(fd, layout.kind, layout.size, layout.align)?;
    let file = segment.fd().try_clone_to_owned()?;
    let handle = init(segment)?;
    sys::shm::publish(file.as_fd(), &cname).map_err(|e| named_error(e, layout.what, name))?;
    Ok(handle)
}

/// Opens the existing object `name`, checking that it is a `layout` object.
///
/// # Errors
/// `NotFound` when no object has the name; `InvalidData` when the file under the name is
/// not such an object; a bad name.
pub(crate) fn open(name: &str, layout: Layout) -> Result<Segment> {
    let cname = os_name(name)?;
    let fd = sys::shm::open_named(&cname).map_err(|e| named_error(e, layout.what, name))?;
    Segment::attach(fd, layout.kind, layout.size, layout.align)
        .map_err(|e| named_error(e, layout.what, name))
}

/// Opens the existing object `name` of `kind`, whose size its creator chose: `layout` gives
/// the payload size and alignment for the size the object records (`None`: no such object
/// has that size).
///
/// # Errors
/// As [`open`].
pub(crate) fn open_sized(
    name: &str,
    what: &str,
    kind: Kind,
    layout: impl FnOnce(usize) -> Option<(usize, usize)>,
) -> Result<Segment> {
    let cname = os_name(name)?;
    let fd = sys::shm::open_named(&cname).map_err(|e| named_error(e, what, name))?;
    Segment::attach_sized(fd, kind, layout).map_err(|e| named_error(e, what, name))
}

/// Opens `name`, or creates it with `init` when it does not exist; a race with another
/// creator is settled by the atomic publish (the loser opens the winner's object).
///
/// # Errors
/// As [`open`] and [`create`].
pub(crate) fn open_or_create<T>(
    name: &str,
    layout: Layout,
    attach: impl Fn(Segment) -> T,
    init: impl Fn(Segment) -> Result<T>,
) -> Result<T> {
    // Each turn either opens, creates, or sees the name appear or vanish meanwhile; a name
    // that flickers a thousand times is someone else's bug.
    for _ in 0..1000 {
        match open(name, layout) {
            Ok(segment) => return Ok(attach(segment)),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match create(name, layout, &init) {
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => return other,
        }
    }
    Err(Error::InvalidState(format!(
        "{} {name:?} keeps appearing and vanishing",
        layout.what
    )))
}

/// Removes the name; processes that have the object open keep using it.
///
/// # Errors
/// `NotFound` when no object has the name; a bad name.
pub(crate) fn unlink(name: &str, what: &str) -> Result<()> {
    sys::mman::shm_unlink(&os_name(name)?).map_err(|e| named_error(e, what, name))
}
