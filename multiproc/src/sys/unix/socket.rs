//! Listening sockets the standard library cannot make: a unix socket whose file is created
//! with chosen permissions ([`bind(2)`] after `fchmod`), and [`flock(2)`] on a directory.
//!
//! [`bind(2)`]: https://man7.org/linux/man-pages/man2/bind.2.html
//! [`flock(2)`]: https://man7.org/linux/man-pages/man2/flock.2.html

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{cvt, cvt_r};

/// A listening, close-on-exec, non-blocking `AF_UNIX` stream socket bound at `path`, whose
/// file is created with permission bits `mode`.
///
/// On Linux the socket file takes its permissions from the socket's inode (less the umask),
/// so `fchmod` before `bind` creates the file with `mode` from the first instant: there is
/// no window in which another user could connect.
pub(crate) fn listen_unix_path(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: a zeroed sockaddr_un is a valid value (family 0, empty path), filled below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.contains(&0) || bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a unix socket path must be 1 to {} bytes without NUL: {}",
                addr.sun_path.len() - 1,
                path.display()
            ),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;

    // SAFETY: socket(2) has no memory-safety preconditions.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: socket returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fchmod on a descriptor we own has no memory-safety preconditions.
    cvt_r(|| unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    // SAFETY: `addr` is a live sockaddr_un and `len` covers its family and the path with
    // its terminating NUL, within the struct.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    })?;
    // SAFETY: listen(2) on a descriptor we own has no memory-safety preconditions.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), libc::SOMAXCONN) })?;
    Ok(fd)
}

/// Whether `fd` is a `SOCK_SEQPACKET` socket (each send one record, each receive at most
/// one), asked of the kernel with `getsockopt(SO_TYPE)`; `false` for any other socket or
/// a descriptor that is not a socket.
pub(crate) fn is_seqpacket(fd: BorrowedFd<'_>) -> bool {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `kind` and `len` are live and `len` holds `kind`'s exact size, so the kernel
    // writes at most that many bytes.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    ret == 0 && kind == libc::SOCK_SEQPACKET
}

/// Takes an exclusive [`flock(2)`] on `fd` (a directory or file), waiting for it; the lock
/// goes with the descriptor's last close.
///
/// [`flock(2)`]: https://man7.org/linux/man-pages/man2/flock.2.html
pub(crate) fn lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: flock on a valid descriptor has no memory-safety preconditions.
    cvt_r(|| unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) })?;
    Ok(())
}

/// Whether `e`, from connecting a datagram socket to a unix socket path, says that a
/// stream socket is bound there (`EPROTOTYPE`): the kernel found a live socket of another
/// type. A path with no socket behind it gives `ECONNREFUSED` instead.
pub(crate) fn is_wrong_socket_type(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EPROTOTYPE)
}
