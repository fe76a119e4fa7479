//! Descriptors passed over a unix socket: [`sendmsg(2)`]/[`recvmsg(2)`] with `SCM_RIGHTS`,
//! received close-on-exec (`MSG_CMSG_CLOEXEC`).
//!
//! The signatures are those of the handles work (issue 9), whose version of this file
//! replaces this one when it lands; the forkserver uses it on `SOCK_SEQPACKET` pairs, where
//! one call is one whole message.
//!
//! [`sendmsg(2)`]: https://man7.org/linux/man-pages/man2/sendmsg.2.html
//! [`recvmsg(2)`]: https://man7.org/linux/man-pages/man2/recvmsg.2.html

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::cvt_r;

/// Room for `n` descriptors in a control buffer, in `u64`s (so the buffer is aligned for
/// `cmsghdr`).
fn control_words(n: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let bytes = unsafe { libc::CMSG_SPACE((n * size_of::<RawFd>()) as u32) } as usize;
    bytes.div_ceil(size_of::<u64>())
}

/// Sends the bytes of `bufs` as one message with `fds` attached (`MSG_NOSIGNAL`: a closed
/// peer gives `BrokenPipe`). The descriptors stay open here; the peer gets its own copies.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let bytes = bufs.concat();
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut control = vec![0u64; control_words(fds.len())];
    // SAFETY: a zeroed msghdr is a valid "no address, no control data" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = (control.len() * size_of::<u64>()) as _;
        // SAFETY: msg_control points at a live, aligned buffer of CMSG_SPACE(n fds) bytes,
        // so CMSG_FIRSTHDR returns a header inside it with room for the n descriptors
        // that CMSG_DATA then addresses.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN((fds.len() * size_of::<RawFd>()) as u32) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: `msg` points at one iovec over `bytes` and at `control`, both live.
    let sent = cvt_r(|| unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) })?;
    if sent as usize != bytes.len() {
        return Err(io::Error::other("short send of a whole message"));
    }
    Ok(())
}

/// What one [`recv_with_fds`] brought.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes appended to the vector; 0 at end of file.
    pub(crate) len: usize,
    /// The descriptors that came with them (close-on-exec), or the error when the kernel
    /// had to drop some (the ones that did arrive are closed then).
    pub(crate) fds: io::Result<Vec<OwnedFd>>,
}

/// Appends one message (at most `max` bytes) to `vec` with [`recvmsg(2)`], taking the
/// descriptors that ride with it; blocks until something arrives (`len` 0: end of file).
///
/// [`recvmsg(2)`]: https://man7.org/linux/man-pages/man2/recvmsg.2.html
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    vec: &mut Vec<u8>,
    max: usize,
) -> io::Result<Received> {
    const MAX_FDS: usize = 4;
    vec.reserve(max);
    let mut buf = vec![0u8; max];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = vec![0u64; control_words(MAX_FDS)];
    // SAFETY: a zeroed msghdr is a valid "no address, no control data" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = (control.len() * size_of::<u64>()) as _;
    // SAFETY: `msg` points at one iovec over `buf` and at `control`, both live and writable.
    let n = cvt_r(|| unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) })?
        as usize;
    vec.extend_from_slice(&buf[..n]);
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg_controllen` bytes of `control` with well-formed control
    // messages; CMSG_FIRSTHDR/NXTHDR walk them, and each SCM_RIGHTS payload holds
    // `(cmsg_len - CMSG_LEN(0)) / sizeof(int)` fresh descriptors that we now own.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..payload / size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let fds = if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptors were lost in transit",
        ))
    } else {
        Ok(fds)
    };
    Ok(Received { len: n, fds })
}
