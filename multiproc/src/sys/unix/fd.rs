//! File-descriptor calls: [`socketpair(2)`], [`poll(2)`], reads and vectored writes.
//!
//! [`socketpair(2)`]: https://man7.org/linux/man-pages/man2/socketpair.2.html
//! [`poll(2)`]: https://man7.org/linux/man-pages/man2/poll.2.html

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{cvt, cvt_r};

/// A connected pair of `AF_UNIX` stream sockets, both close-on-exec.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is valid for writes of two ints, which socketpair fills on success.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair returned two fresh fds that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connected pair of `AF_UNIX` `SOCK_SEQPACKET` sockets, both close-on-exec.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is valid for writes of two ints, which socketpair fills on success.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair returned two fresh fds that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Which directions of a socket to shut down.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shutdown {
    Read,
    Write,
}

/// Wrapper around [`shutdown(2)`](https://man7.org/linux/man-pages/man2/shutdown.2.html).
pub(crate) fn shutdown(fd: BorrowedFd<'_>, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
    };
    // SAFETY: shutdown on a valid fd has no memory-safety preconditions.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) })?;
    Ok(())
}

/// Sets the socket's send and receive buffer sizes (the kernel may clamp them).
pub(crate) fn set_buffer_sizes(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: `v` is a live c_int and its exact size is passed.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

/// Duplicates `fd` as a new close-on-exec descriptor.
pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

/// Reads into `buf`, retrying on `EINTR`. `Ok(0)` means end of file.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `&mut [u8]` is valid for writes of its length, and any byte pattern is valid
    // for the `MaybeUninit<u8>` view we pass on.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    read_uninit(fd, uninit)
}

/// Reads into possibly uninitialised memory, retrying on `EINTR`. Returns how many bytes
/// at the start of `buf` are now initialised; `Ok(0)` means end of file.
pub(crate) fn read_uninit(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; read(2) writes at most that.
    let n = cvt_r(|| unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// Writes every byte of every slice, in order, with as few system calls as the kernel allows
/// (one `sendmsg` when the socket buffer has room). Uses `MSG_NOSIGNAL` on sockets so a
/// closed reader gives `BrokenPipe` instead of `SIGPIPE`; falls back to `writev` on
/// descriptors that are not sockets.
pub(crate) fn write_all_vectored(fd: BorrowedFd<'_>, bufs: &[&[u8]]) -> io::Result<()> {
    let mut iov: Vec<libc::iovec> = bufs
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let mut start = 0;
    while start < iov.len() {
        let n = write_iov(fd, &iov[start..])?;
        let mut left = n;
        while left > 0 {
            let first = &mut iov[start];
            if left >= first.iov_len {
                left -= first.iov_len;
                start += 1;
            } else {
                // SAFETY: `left < iov_len`, so the advanced pointer stays inside the slice
                // this iovec was built from.
                first.iov_base = unsafe { first.iov_base.cast::<u8>().add(left).cast() };
                first.iov_len -= left;
                left = 0;
            }
        }
    }
    Ok(())
}

fn write_iov(fd: BorrowedFd<'_>, iov: &[libc::iovec]) -> io::Result<usize> {
    let count = iov.len().min(libc::UIO_MAXIOV as usize);
    // SAFETY: a zeroed msghdr is a valid "no address, no control data" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = count as _;
    // SAFETY: `msg` points at `count` iovecs that each describe a live, readable slice.
    let sent = cvt_r(|| unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) });
    match sent {
        Ok(n) => Ok(n as usize),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            // SAFETY: as above, `count` readable iovecs.
            let n = cvt_r(|| unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), count as i32) })?;
            Ok(n as usize)
        }
        Err(e) => Err(e),
    }
}

/// The most records one [`send_records`] or [`recv_records_to_spare`] call hands the kernel.
const RECORDS_PER_CALL: usize = 64;

/// Sends each of `records` (each given as its slices, in order) as one message of a
/// record socket (`SOCK_SEQPACKET`), with one [`sendmmsg(2)`] per up to 64 records.
/// `MSG_NOSIGNAL`: a closed peer gives `BrokenPipe`, not `SIGPIPE`.
///
/// [`sendmmsg(2)`]: https://man7.org/linux/man-pages/man2/sendmmsg.2.html
pub(crate) fn send_records(fd: BorrowedFd<'_>, records: &[Vec<&[u8]>]) -> io::Result<()> {
    let iovs: Vec<Vec<libc::iovec>> = records
        .iter()
        .map(|record| {
            record
                .iter()
                .map(|b| libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                })
                .collect()
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter()
        .map(|iov| {
            // SAFETY: a zeroed mmsghdr is a valid "no address, no iovecs, no control" entry.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov.as_ptr() as *mut libc::iovec;
            m.msg_hdr.msg_iovlen = iov.len() as _;
            m
        })
        .collect();
    let mut sent = 0;
    while sent < msgs.len() {
        let batch = (msgs.len() - sent).min(RECORDS_PER_CALL);
        // SAFETY: `msgs[sent..]` holds at least `batch` entries whose iovecs describe live,
        // readable slices of `records`. A record socket sends each message whole or not at
        // all, so the count returned is of whole records; EINTR means none was sent.
        let n = cvt_r(|| unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                msgs[sent..].as_mut_ptr(),
                batch as libc::c_uint,
                libc::MSG_NOSIGNAL,
            )
        })?;
        sent += n as usize;
    }
    Ok(())
}

/// Whether an empty receive on `fd` really was the end of the stream: asks once more,
/// peeking without waiting. A record socket can report end of file while a record is
/// queued: Linux's datagram receive looks at the queue, finds it empty, and then finds the
/// peer closed, and a record the peer queued before closing, between those two looks, is
/// missed (the stream receive makes both looks under one lock; the datagram one does not).
/// Once the close has been seen, every record sent before it is queued, so a second look
/// finds it: `false` here means "a record is there, receive again".
pub(crate) fn end_of_file_confirmed(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut byte = 0u8;
    // SAFETY: `byte` is one writable byte; MSG_PEEK leaves the record queued.
    match cvt_r(|| unsafe {
        libc::recv(
            fd.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    }) {
        Ok(n) => Ok(n == 0),
        // Nothing queued after all (another reader took it): the end it was.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(e) => Err(e),
    }
}

/// How [`recv_records_to_spare`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordsRead {
    /// Every record filled its room.
    Complete,
    /// The last record received was shorter than its room (its bytes are kept): ask again
    /// for the rest.
    Short,
    /// End of file (the bytes before it are kept).
    Eof,
    /// A record was longer than its room (the kernel cut it), came with descriptors (the
    /// kernel closed them), or a short record was followed by more: the records are not
    /// cut as the caller expects.
    Cut,
}

/// Receives `sizes.len()` records of a record socket into the spare capacity of `vec`,
/// record `i` into the next `sizes[i]` bytes, with one [`recvmmsg(2)`] per up to 64
/// records (waiting for each), and extends `vec` by what arrived, record by record, up to
/// the first that did not fill its room exactly.
///
/// # Errors
/// `InvalidInput` when the sizes do not fit the spare capacity; what `recvmmsg` reports.
///
/// [`recvmmsg(2)`]: https://man7.org/linux/man-pages/man2/recvmmsg.2.html
pub(crate) fn recv_records_to_spare(
    fd: BorrowedFd<'_>,
    vec: &mut Vec<u8>,
    sizes: &[usize],
) -> io::Result<RecordsRead> {
    let spare = vec.spare_capacity_mut();
    if sizes.iter().sum::<usize>() > spare.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "records larger than the room given",
        ));
    }
    let mut at = 0;
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(sizes.len());
    for &size in sizes {
        iovs.push(libc::iovec {
            iov_base: spare[at..at + size].as_mut_ptr().cast(),
            iov_len: size,
        });
        at += size;
    }
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: a zeroed mmsghdr is a valid "no address, no iovecs, no control" entry.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let mut done = 0;
    while done < msgs.len() {
        let batch = (msgs.len() - done).min(RECORDS_PER_CALL);
        // SAFETY: `msgs[done..]` holds at least `batch` entries, each with one iovec over a
        // distinct part of `vec`'s spare capacity, writable for its length; recvmmsg writes
        // within them and fills `msg_len` and `msg_hdr.msg_flags`. No timeout is passed.
        let n = cvt_r(|| unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                msgs[done..].as_mut_ptr(),
                batch as libc::c_uint,
                0,
                std::ptr::null_mut(),
            )
        })? as usize;
        let received = &msgs[done..done + n];
        let mut counted = 0;
        for (i, (m, &size)) in received.iter().zip(&sizes[done..]).enumerate() {
            let got = m.msg_len as usize;
            if m.msg_hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
                return Ok(RecordsRead::Cut);
            }
            if got == 0 {
                // Records before it are counted; the end is checked by the next call, which
                // starts with this one.
                if i > 0 {
                    return Ok(RecordsRead::Short);
                }
                if end_of_file_confirmed(fd)? {
                    return Ok(RecordsRead::Eof);
                }
                break;
            }
            // SAFETY: recvmmsg wrote `got <= size` bytes at the start of this record's room,
            // which starts right at `vec.len()` (the rooms are consecutive and every earlier
            // one was filled and counted) and lies within the spare capacity checked above.
            unsafe { vec.set_len(vec.len() + got) };
            if got < size {
                // A short record followed by more is not how the sender cuts; followed by
                // nothing, or by an empty one (the end, confirmed by the next call), it is
                // the last of what arrived.
                return Ok(match received.get(i + 1) {
                    Some(next) if next.msg_len != 0 => RecordsRead::Cut,
                    _ => RecordsRead::Short,
                });
            }
            counted += 1;
        }
        done += counted;
    }
    Ok(RecordsRead::Complete)
}

/// Waits until some of `fds` are readable (or hung up), at most `timeout` (`None`: forever).
/// Returns one flag per fd; all `false` means the timeout expired. Retries on `EINTR` with
/// the time that is left.
pub(crate) fn poll_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // A timeout too far away to represent is forever.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so a 0.5 ms wait does not become a busy 0 ms poll.
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
            }
        };
        // SAFETY: `pfds` is a live array of `pfds.len()` pollfd structs.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if ret == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ret == 0 && deadline.is_some_and(|d| Instant::now() < d) {
            continue;
        }
        let bad = pfds.iter().find(|p| p.revents & libc::POLLNVAL != 0);
        if let Some(p) = bad {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {} is not an open file descriptor", p.fd),
            ));
        }
        return Ok(pfds.iter().map(|p| p.revents != 0).collect());
    }
}

/// Makes the descriptor number `target` refer to what `src` refers to, close-on-exec
/// ([`dup3(2)`](https://man7.org/linux/man-pages/man2/dup3.2.html)). Whatever `target`
/// referred to before loses this process's reference.
///
/// The caller must own `target` in the sense of `OwnedFd`: after this call the number stays
/// open (now naming `src`'s file), so whoever closes it later closes the new file.
pub(crate) fn replace(src: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup3 only manipulates this process's descriptor table; `target` remains a
    // valid open descriptor afterwards, so no owner of that number is invalidated.
    cvt_r(|| unsafe { libc::dup3(src.as_raw_fd(), target, libc::O_CLOEXEC) })?;
    Ok(())
}

/// Reads at most `max` bytes into the spare capacity of `vec` and extends its length by what
/// arrived; `Ok(0)` means end of file. Spares the zeroing a `resize` would cost on every
/// large message.
pub(crate) fn read_to_spare(
    fd: BorrowedFd<'_>,
    vec: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    let spare = vec.spare_capacity_mut();
    let want = max.min(spare.len());
    let n = read_uninit(fd, &mut spare[..want])?;
    // SAFETY: read_uninit initialised the first `n` bytes of the spare capacity, and
    // `n <= want <= spare.len()`, so the new length stays within the capacity.
    unsafe { vec.set_len(vec.len() + n) };
    Ok(n)
}

/// Writes all of `buf` with [`send(2)`](https://man7.org/linux/man-pages/man2/send.2.html)
/// and `MSG_NOSIGNAL` (`write` on descriptors that are not sockets). One contiguous buffer
/// costs the kernel less than an iovec array, which matters for small messages.
pub(crate) fn send_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live slice, readable for `buf.len()` bytes.
        let sent = cvt_r(|| unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        });
        let n = match sent {
            Ok(n) => n as usize,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
                // SAFETY: as above.
                cvt_r(|| unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })?
                    as usize
            }
            Err(e) => return Err(e),
        };
        buf = &buf[n..];
    }
    Ok(())
}

/// A new close-on-exec, non-blocking `eventfd(2)` with a zero count: the descriptor an
/// async waiter of a shared object is woken through (feature `tokio`).
#[cfg(feature = "tokio")]
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes two integers and returns a new fd or -1.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: eventfd returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's count, making it readable. A count at its maximum (after
/// 2^64 - 2 writes) refuses the write with `EAGAIN`, which is ignored: the descriptor is
/// readable anyway.
#[cfg(feature = "tokio")]
pub(crate) fn eventfd_add(fd: BorrowedFd<'_>) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is 8 readable bytes, the size an eventfd write takes.
    let _ = cvt_r(|| unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), one.len()) });
}

/// Registers `fd` with the reactor of the current tokio runtime for `interest` (feature
/// `tokio`). The caller checks that a runtime is there (tokio panics otherwise).
#[cfg(feature = "tokio")]
pub(crate) fn register_async(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the `AsyncFd` owns `fd`, which stays open and the same file until the
    // `AsyncFd` is dropped (an `OwnedFd` is closed only by its drop, and nothing else has
    // its number to close).
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }
        .map_err(io::Error::from)
}
