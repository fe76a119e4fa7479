//! Descriptor passing over `AF_UNIX` stream sockets: [`sendmsg(2)`] and [`recvmsg(2)`] with
//! `SCM_RIGHTS` control messages ([`unix(7)`]).
//!
//! On a stream socket the kernel attaches the descriptors to the first bytes of the
//! `sendmsg` that carried them, and hands them to the read that takes the first of those
//! bytes (a read that reaches them stops there), never to a later one. A plain `read`
//! reaching them makes the kernel close them, so a reader that may receive descriptors
//! reads the first bytes of each message with [`recv_with_fds`]. On a `SOCK_SEQPACKET`
//! socket each `sendmsg` is one record, and one receive takes at most one record
//! ([`recv_record_to_spare`]), with the descriptors sent beside it.
//!
//! [`sendmsg(2)`]: https://man7.org/linux/man-pages/man2/sendmsg.2.html
//! [`recvmsg(2)`]: https://man7.org/linux/man-pages/man2/recvmsg.2.html
//! [`unix(7)`]: https://man7.org/linux/man-pages/man7/unix.7.html

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::cvt_r;
use super::fd::{end_of_file_confirmed, read, write_all_vectored};

/// The most descriptors one message may carry: Linux's `SCM_MAX_FD`. A sender that attaches
/// more gets `EINVAL` from the kernel, so we refuse earlier with a clear message.
pub(crate) const MAX_FDS: usize = 253;

/// Bytes of control data for [`MAX_FDS`] descriptors.
// SAFETY: CMSG_SPACE is pure arithmetic on its argument (it is `unsafe` only because libc
// declares every CMSG_ helper so).
const CMSG_BUF_LEN: usize =
    unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<RawFd>()) as u32) } as usize;

/// Control-message storage, aligned for `cmsghdr` (whose first field is a `size_t`).
#[repr(C, align(8))]
struct CmsgBuf([MaybeUninit<u8>; CMSG_BUF_LEN]);

const _: () = assert!(std::mem::align_of::<CmsgBuf>() >= std::mem::align_of::<libc::cmsghdr>());

impl CmsgBuf {
    fn new() -> CmsgBuf {
        CmsgBuf([MaybeUninit::uninit(); CMSG_BUF_LEN])
    }
}

/// Sends every byte of `bufs`, in order, with `fds` attached to the first of them; the
/// caller keeps its descriptors (the receiver gets new ones to the same open files).
/// `MSG_NOSIGNAL`: a closed peer gives `BrokenPipe`, not `SIGPIPE`.
///
/// # Errors
/// `InvalidInput` for more than [`MAX_FDS`] descriptors or no bytes to carry them (a stream
/// socket cannot deliver descriptors without data); `ENOTSOCK` when `sock` is not a socket
/// (a pipe cannot carry descriptors); otherwise what `sendmsg` reports.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "one message can carry at most {MAX_FDS} descriptors, not {}",
                fds.len()
            ),
        ));
    }
    let iov: Vec<libc::iovec> = bufs
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    if iov.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors need at least one byte of data to travel with",
        ));
    }
    if iov.len() > libc::UIO_MAXIOV as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many slices for one message",
        ));
    }
    let mut control = CmsgBuf::new();
    // SAFETY: a zeroed msghdr is a valid "no address, no iovecs, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    if !fds.is_empty() {
        let data_len = (fds.len() * size_of::<RawFd>()) as u32;
        msg.msg_control = control.0.as_mut_ptr().cast();
        // SAFETY: pure arithmetic; `data_len` is at most MAX_FDS descriptors, so the space
        // fits in `control` (CMSG_BUF_LEN was computed for MAX_FDS).
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(data_len) } as _;
        // SAFETY: `msg_control` points at `msg_controllen >= size_of::<cmsghdr>()` bytes, so
        // CMSG_FIRSTHDR returns that (suitably aligned) pointer, not null.
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        // SAFETY: `cmsg` points at the start of `control`, aligned and large enough for a
        // header followed by `data_len` bytes (CMSG_SPACE(data_len) <= CMSG_BUF_LEN);
        // the descriptors are copied unaligned because CMSG_DATA only promises byte
        // alignment.
        unsafe {
            cmsg.write(libc::cmsghdr {
                cmsg_len: libc::CMSG_LEN(data_len) as _,
                cmsg_level: libc::SOL_SOCKET,
                cmsg_type: libc::SCM_RIGHTS,
            });
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: `msg` points at live iovecs over readable slices and at initialised control
    // data naming descriptors that stay open (borrowed) for the call. EINTR means nothing
    // was sent (a stream socket reports a partial send as a count), so retrying with the
    // descriptors again sends them once.
    let sent =
        cvt_r(|| unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) })? as usize;
    // The descriptors went with the first byte; the rest, if the buffer was full, goes as
    // plain data.
    let mut skip = sent;
    let rest: Vec<&[u8]> = bufs
        .iter()
        .filter_map(|b| {
            let take = skip.min(b.len());
            skip -= take;
            Some(&b[take..]).filter(|r| !r.is_empty())
        })
        .collect();
    write_all_vectored(sock, &rest)
}

/// What one [`recv_with_fds`] brought.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes read into the buffer; 0 at end of file.
    pub(crate) len: usize,
    /// The descriptors that came with them (close-on-exec), or, when the kernel had to drop
    /// some (more than [`MAX_FDS`], or this process is out of descriptors), the error; the
    /// ones that did arrive are closed then, never leaked. The bytes are good either way.
    pub(crate) fds: io::Result<Vec<OwnedFd>>,
    /// The message was longer than the buffer and the kernel dropped its rest
    /// (`MSG_TRUNC`; only a record-preserving socket, `SOCK_SEQPACKET`, does that).
    pub(crate) truncated: bool,
}

/// Reads into `buf` with [`recvmsg(2)`], taking the descriptors that ride with the bytes;
/// blocks until something arrives (`len` 0: end of file). Retries on `EINTR`. On a
/// descriptor that is not a socket (a pipe, which cannot carry descriptors) it reads plainly.
///
/// [`recvmsg(2)`]: https://man7.org/linux/man-pages/man2/recvmsg.2.html
pub(crate) fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    match recv_with_control(sock, as_uninit(buf), 0, CMSG_BUF_LEN) {
        Ok(r) => Ok(r.unwrap_or(Received {
            len: 0,
            fds: Ok(Vec::new()),
            truncated: false,
        })),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => Ok(Received {
            len: read(sock, buf)?,
            fds: Ok(Vec::new()),
            truncated: false,
        }),
        Err(e) => Err(e),
    }
}

/// Like [`recv_with_fds`] without waiting (`MSG_DONTWAIT`): `Ok(None)` when nothing is
/// there yet.
///
/// # Errors
/// `ENOTSOCK` when `sock` is not a socket; otherwise what `recvmsg` reports.
pub(crate) fn try_recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<Received>> {
    recv_with_control(sock, as_uninit(buf), libc::MSG_DONTWAIT, CMSG_BUF_LEN)
}

/// Receives one message of a record-preserving socket (`SOCK_SEQPACKET`) into the spare
/// capacity of `vec`, at most `max` bytes of it, and extends `vec` by what arrived; with
/// `wait` false, `Ok(None)` when nothing is there yet. A record longer than the room is cut
/// (the kernel drops its rest) and says so in [`Received::truncated`]. Spares the zeroing a
/// `resize` would cost, so a reader touches only the pages its messages fill.
///
/// # Errors
/// `ENOTSOCK` when `sock` is not a socket; otherwise what `recvmsg` reports.
pub(crate) fn recv_record_to_spare(
    sock: BorrowedFd<'_>,
    vec: &mut Vec<u8>,
    max: usize,
    wait: bool,
) -> io::Result<Option<Received>> {
    let spare = vec.spare_capacity_mut();
    let room = max.min(spare.len());
    let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
    let received = recv_with_control(sock, &mut spare[..room], flags, CMSG_BUF_LEN)?;
    if let Some(r) = &received {
        // SAFETY: recvmsg initialised the first `r.len` bytes of the spare capacity, and
        // `r.len <= room <= spare.len()` (a cut record reports the bytes it wrote, as
        // MSG_TRUNC is not among the flags we pass), so the new length stays within the
        // capacity.
        unsafe { vec.set_len(vec.len() + r.len) };
    }
    Ok(received)
}

/// The `MaybeUninit` view of an initialised buffer, for the calls that also fill
/// uninitialised memory.
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has `u8`'s layout, and the callees only write bytes
    // (never uninitialised ones) into the view, so `buf` stays initialised.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// [`recv_with_fds`] with room for `control_len <= CMSG_BUF_LEN` bytes of control data
/// (the tests use less to make the kernel truncate). `Ok(None)` only with `MSG_DONTWAIT` in
/// `flags`, when nothing is there.
fn recv_with_control(
    sock: BorrowedFd<'_>,
    buf: &mut [MaybeUninit<u8>],
    flags: libc::c_int,
    control_len: usize,
) -> io::Result<Option<Received>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = CmsgBuf::new();
    // SAFETY: a zeroed msghdr is a valid "no address, no iovecs, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control_len.min(CMSG_BUF_LEN) as _;
    let flags = flags | libc::MSG_CMSG_CLOEXEC;
    let n = loop {
        // SAFETY: the iovec describes `buf`, writable for its length, and the control
        // pointer `msg_controllen <= CMSG_BUF_LEN` writable bytes; recvmsg writes within both
        // and updates `msg_controllen` and `msg_flags`.
        let n = match cvt_r(|| unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) }) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        // An empty receive into room for bytes is the end only if a second look agrees
        // (a record socket can miss a record queued just before its peer closed). An
        // empty record that carried descriptors is taken as it is: they must be owned.
        if n > 0 || msg.msg_controllen > 0 || buf.is_empty() || end_of_file_confirmed(sock)? {
            break n;
        }
        msg.msg_controllen = control_len.min(CMSG_BUF_LEN) as _;
        msg.msg_flags = 0;
    };
    // Take ownership of every descriptor first, so none leaks whatever happens next.
    // SAFETY: `msg` was filled by a successful recvmsg: its control data is
    // `msg_controllen` initialised bytes of `control`.
    let fds = unsafe { take_rights(&msg) };
    let fds = if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        drop(fds);
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptors were lost in transit: the message carried more than this process \
             could take (its descriptor limit, or more than 253 in one message)",
        ))
    } else {
        Ok(fds)
    };
    Ok(Some(Received {
        len: n,
        fds,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    }))
}

/// The descriptors of every `SCM_RIGHTS` message in `msg`'s control data, owned. Other
/// control messages (credentials) are skipped.
///
/// # Safety
/// `msg.msg_control` must point at `msg.msg_controllen` initialised bytes of control data
/// written by a successful `recvmsg`, whose `SCM_RIGHTS` descriptors nothing owns yet.
unsafe fn take_rights(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    // SAFETY: per this function's contract the control data is the kernel's, so FIRSTHDR
    // and NXTHDR walk well-formed headers and stop (null) at its end.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: a non-null header from CMSG_FIRSTHDR/NXTHDR lies within the control data,
        // aligned for `cmsghdr`.
        let hdr = unsafe { cmsg.read() };
        if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: pure arithmetic.
            let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = (hdr.cmsg_len as usize).saturating_sub(header_len) / size_of::<RawFd>();
            // SAFETY: the kernel wrote `cmsg_len` bytes for this message, so `count`
            // descriptors follow its header (read unaligned: CMSG_DATA promises bytes).
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
            for i in 0..count {
                // SAFETY: `i < count`, within this message's data, as above.
                let raw = unsafe { data.add(i).read_unaligned() };
                // SAFETY: the kernel installed this descriptor in our table for this
                // message; nothing else knows its number yet (caller's contract).
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: `cmsg` is a header of `msg`'s control data, as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    fds
}

/// For tests: a socket end to send as a descriptor, and a probe that tells whether every copy
/// of it is closed (the probe then reads end of file). Unlike counting `/proc/self/fd`, this
/// is exact while other test threads open and close descriptors.
#[cfg(test)]
pub(crate) mod probe {
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::time::Duration;

    /// The end to send, and its probe.
    pub(crate) fn traced() -> (OwnedFd, OwnedFd) {
        super::super::fd::socketpair().unwrap()
    }

    /// Whether every copy of the probe's peer is closed. Another test thread may fork
    /// meanwhile, and its child holds a copy of every descriptor until it exits: give
    /// such copies a few seconds to go.
    pub(crate) fn all_copies_closed(probe: &OwnedFd) -> bool {
        let ready =
            super::super::fd::poll_readable(&[probe.as_raw_fd()], Some(Duration::from_secs(10)));
        ready.unwrap()[0]
            && super::try_recv_with_fds(probe.as_fd(), &mut [0u8; 1])
                .unwrap()
                .is_some_and(|r| r.len == 0)
    }

    /// Whether some copy of the probe's peer is still open, now.
    pub(crate) fn still_open(probe: &OwnedFd) -> bool {
        super::try_recv_with_fds(probe.as_fd(), &mut [0u8; 1])
            .unwrap()
            .is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fd::{read, socketpair};
    use super::super::mman::{file_len, memfd};
    use super::probe::{all_copies_closed, still_open, traced};
    use super::*;
    use std::os::fd::AsFd;

    /// A record sent just before its sender closes is received, never a false end of file,
    /// however the receiver's look at the queue and the close interleave (a receiver
    /// polling without waiting met the kernel's race within a few thousand rounds).
    #[test]
    fn a_record_sent_right_before_the_close_is_never_lost_to_end_of_file() {
        for round in 0..20_000u32 {
            let (mine, theirs) = super::super::fd::seqpacket_pair().unwrap();
            let sender = std::thread::spawn(move || {
                super::super::fd::write_all_vectored(theirs.as_fd(), &[&round.to_le_bytes()])
                    .unwrap();
            });
            let mut inbox = Vec::with_capacity(16);
            let got = loop {
                if let Some(r) = recv_record_to_spare(mine.as_fd(), &mut inbox, 16, false).unwrap()
                {
                    break r;
                }
            };
            sender.join().unwrap();
            assert_eq!(got.len, 4, "round {round}: end of file before the record");
            assert_eq!(inbox, round.to_le_bytes());
        }
    }

    fn recv_all(sock: BorrowedFd<'_>, len: usize) -> (Vec<u8>, Vec<OwnedFd>) {
        let mut bytes = vec![0; len];
        let mut got = 0;
        let mut fds = Vec::new();
        while got < len {
            let r = recv_with_fds(sock, &mut bytes[got..]).unwrap();
            assert!(r.len > 0, "unexpected end of file");
            got += r.len;
            fds.extend(r.fds.unwrap());
        }
        (bytes, fds)
    }

    #[test]
    fn descriptors_travel_beside_the_bytes() {
        let (a, b) = socketpair().unwrap();
        let file = memfd(c"scm-test", 4096).unwrap();
        send_with_fds(a.as_fd(), &[b"he", b"llo"], &[file.as_fd(), file.as_fd()]).unwrap();
        let (bytes, fds) = recv_all(b.as_fd(), 5);
        assert_eq!(bytes, b"hello");
        assert_eq!(fds.len(), 2);
        for fd in &fds {
            assert_ne!(fd.as_raw_fd(), file.as_raw_fd(), "a new descriptor");
            assert_eq!(file_len(fd.as_fd()).unwrap(), 4096, "to the same file");
            // SAFETY: F_GETFD on an open descriptor only reads its flags.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC, "close-on-exec");
        }
    }

    #[test]
    fn plain_bytes_arrive_without_descriptors() {
        let (a, b) = socketpair().unwrap();
        send_with_fds(a.as_fd(), &[b"abc"], &[]).unwrap();
        let (bytes, fds) = recv_all(b.as_fd(), 3);
        assert_eq!((bytes.as_slice(), fds.len()), (&b"abc"[..], 0));
    }

    #[test]
    fn nowait_says_when_nothing_is_there_and_eof_is_zero() {
        let (a, b) = socketpair().unwrap();
        let mut v = [0u8; 8];
        assert!(try_recv_with_fds(b.as_fd(), &mut v).unwrap().is_none());
        drop(a);
        let got = try_recv_with_fds(b.as_fd(), &mut v).unwrap().unwrap();
        assert_eq!(got.len, 0);
        assert!(got.fds.unwrap().is_empty());
    }

    #[test]
    fn a_large_message_keeps_its_descriptors_with_its_first_bytes() {
        let (a, b) = socketpair().unwrap();
        let file = memfd(c"scm-big", 64).unwrap();
        let big = vec![7u8; 1 << 20];
        let sender = std::thread::spawn(move || {
            send_with_fds(a.as_fd(), &[&big], &[file.as_fd()]).unwrap();
        });
        let mut bytes = vec![0u8; 16];
        let first = recv_with_fds(b.as_fd(), &mut bytes).unwrap();
        assert_eq!(first.fds.unwrap().len(), 1, "with the first read");
        let (rest, later) = recv_all(b.as_fd(), (1 << 20) - first.len);
        assert!(later.is_empty(), "and only with it");
        assert!(rest.iter().all(|&b| b == 7));
        sender.join().unwrap();
    }

    #[test]
    fn too_many_or_no_bytes_are_refused() {
        let (a, _b) = socketpair().unwrap();
        let many: Vec<BorrowedFd<'_>> = (0..=MAX_FDS).map(|_| a.as_fd()).collect();
        let err = send_with_fds(a.as_fd(), &[b"x"], &many).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = send_with_fds(a.as_fd(), &[b""], &[a.as_fd()]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_pipe_cannot_carry_descriptors_but_reads_plainly() {
        let (r, w) = std::io::pipe().unwrap();
        let w = OwnedFd::from(w);
        let r = OwnedFd::from(r);
        let err = send_with_fds(w.as_fd(), &[b"x"], &[w.as_fd()]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
        let mut v = [0u8; 4];
        let err = try_recv_with_fds(r.as_fd(), &mut v).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
        super::super::fd::send_all(w.as_fd(), b"ab").unwrap();
        let got = recv_with_fds(r.as_fd(), &mut v).unwrap();
        assert_eq!((got.len, &v[..2]), (2, &b"ab"[..]));
        assert!(got.fds.unwrap().is_empty());
    }

    #[test]
    fn a_plain_read_drops_descriptors_and_leaks_none() {
        // What a peer that does not expect descriptors sees: the bytes, and the kernel
        // closes the descriptors it could not deliver.
        let (a, b) = socketpair().unwrap();
        let (sent, probe) = traced();
        send_with_fds(a.as_fd(), &[b"x"], &[sent.as_fd()]).unwrap();
        drop(sent);
        let mut buf = [0u8; 1];
        assert_eq!(read(b.as_fd(), &mut buf).unwrap(), 1);
        assert!(all_copies_closed(&probe));
    }

    #[test]
    fn truncated_control_data_is_an_error_and_closes_what_arrived() {
        let (a, b) = socketpair().unwrap();
        let (sent, probe) = traced();
        let ten: Vec<BorrowedFd<'_>> = (0..10).map(|_| sent.as_fd()).collect();
        send_with_fds(a.as_fd(), &[b"x"], &ten).unwrap();
        drop(ten);
        drop(sent);
        // Room for two descriptors: the kernel installs two, drops eight, says MSG_CTRUNC.
        // SAFETY: pure arithmetic.
        let room = unsafe { libc::CMSG_SPACE(2 * size_of::<RawFd>() as u32) } as usize;
        let mut v = [0u8; 4];
        let got = recv_with_control(b.as_fd(), as_uninit(&mut v), 0, room)
            .unwrap()
            .unwrap();
        assert_eq!((got.len, &v[..1]), (1, &b"x"[..]), "the bytes are good");
        let err = got.fds.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(all_copies_closed(&probe), "what did arrive was closed");
    }

    #[test]
    fn received_descriptors_are_owned_once() {
        let (a, b) = socketpair().unwrap();
        let (sent, probe) = traced();
        send_with_fds(a.as_fd(), &[b"x"], &[sent.as_fd(), sent.as_fd()]).unwrap();
        drop(sent);
        let (_, fds) = recv_all(b.as_fd(), 1);
        assert_eq!(fds.len(), 2);
        assert!(still_open(&probe));
        drop(fds);
        assert!(all_copies_closed(&probe));
    }
}
