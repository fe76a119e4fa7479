//! Entry points for the fuzz targets and the corpus tests (feature `fuzzing`): the frame
//! decoder, a connection's receive path and both sides of the authkey handshake, each fed
//! bytes a peer could send.
#![forbid(unsafe_code)]

use std::os::fd::AsFd;
use std::time::Duration;

use super::{auth, frame};
use crate::deadline::Deadline;
use crate::error::Error;
use crate::sys;

/// The limit the fuzzed connections run under, well below the default, so a length the
/// decoder should have refused shows up as memory the fuzzer can see.
const FUZZ_MAX_MESSAGE: u64 = 1 << 20;

/// The frame decoder on `bytes`: a parsed header fits in what was read and encodes back to
/// the same bytes.
pub(crate) fn frame_header(bytes: &[u8]) {
    match frame::decode_fds_prefix(bytes) {
        Ok(Some((Some(count), at))) => {
            assert!(count > 0 && at == frame::FDS_PREFIX && at <= bytes.len());
            assert_eq!(frame::encode_fds_prefix(count), bytes[..at]);
        }
        Ok(Some((None, 0))) | Ok(None) | Err(Error::Protocol(_)) => {}
        other => panic!("unexpected prefix verdict {other:?}"),
    }
    match frame::decode_header(bytes) {
        Ok(Some((len, used))) => {
            assert!(used <= bytes.len());
            let mut scratch = [0; frame::MAX_HEADER];
            assert_eq!(frame::header(len, &mut scratch), &bytes[..used]);
        }
        Ok(None) => assert!(bytes.len() < frame::MAX_HEADER),
        Err(Error::Protocol(_)) => {}
        Err(e) => panic!("unexpected header error {e}"),
    }
}

/// A peer that wrote `bytes` and closed: receives until EOF or a broken connection, with
/// the receive form chosen by the first byte. Never more than one receive per byte, so a
/// loop that does not consume shows up as a failure, not a hang.
pub(crate) fn receive(bytes: &[u8]) {
    let Some((&how, stream)) = bytes.split_first() else {
        return;
    };
    let (mut conn, peer) = super::pipe().expect("a socket pair");
    conn.set_max_message(FUZZ_MAX_MESSAGE);
    // The socket buffer holds the whole input (fuzz inputs are far below it).
    sys::fd::write_all_vectored(peer.as_fd(), &[stream]).expect("write to the pair");
    drop(peer);
    for _ in 0..=stream.len() {
        let outcome = match how % 4 {
            0 => conn.recv_bytes().map(drop),
            1 => conn.recv_bytes_max(64).map(drop),
            2 => conn.recv_bytes_into(&mut [0; 64]).map(drop),
            _ => conn.recv::<(u8, String, Vec<u16>)>().map(drop),
        };
        match outcome {
            Ok(()) | Err(Error::Codec(_)) | Err(Error::BufferTooShort { .. }) => {}
            Err(Error::MessageTooLong { len, max: 64 }) => assert!(len > 64),
            Err(Error::Eof) => return,
            Err(Error::MessageTooLong { len, max }) => {
                assert!(max == FUZZ_MAX_MESSAGE && len > max);
                assert!(matches!(conn.recv_bytes(), Err(Error::Protocol(_))));
                return;
            }
            Err(Error::Protocol(_)) => {
                assert!(
                    conn.poll(Some(Duration::ZERO)).unwrap(),
                    "broken polls ready"
                );
                return;
            }
            Err(e) => panic!("unexpected receive error {e}"),
        }
    }
    panic!(
        "{} receives did not consume {} bytes",
        stream.len() + 1,
        stream.len()
    );
}

/// Which side of the handshake a fuzzed peer talks to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    /// A listener (`deliver_challenge`, then `answer_challenge`), talking to a garbage client.
    Listener,
    /// A client (`answer_challenge`, then `deliver_challenge`), talking to a garbage server.
    Client,
}

/// One side of the handshake against a peer that sent `bytes` and then went quiet: it must
/// end with an authentication error (or `Timeout` for a peer that stays silent), within
/// its deadline, and never succeed without the key.
pub(crate) fn handshake(side: Side, bytes: &[u8]) {
    let (ours, theirs) = sys::fd::socketpair().expect("a socket pair");
    sys::fd::write_all_vectored(theirs.as_fd(), &[bytes]).expect("write to the pair");
    sys::fd::shutdown(theirs.as_fd(), sys::fd::Shutdown::Write).expect("shutdown");
    let deadline = Deadline::after(Duration::from_secs(5));
    let key = b"the fuzzer does not know this key";
    // Whether the challenge offers the move to a record socket: either way, by the input.
    let offer = bytes.first().is_some_and(|b| b & 1 == 1);
    let result = match side {
        Side::Listener => auth::deliver_challenge(ours.as_fd(), key, deadline, offer)
            .and_then(|()| auth::answer_challenge(ours.as_fd(), key, deadline).map(drop)),
        Side::Client => auth::answer_challenge(ours.as_fd(), key, deadline)
            .and_then(|_| auth::deliver_challenge(ours.as_fd(), key, deadline, offer)),
    };
    match result {
        Err(Error::Authentication(_)) => {}
        Ok(()) => panic!("a peer without the key passed the handshake"),
        Err(e) => panic!("unexpected handshake error {e}"),
    }
    assert!(!deadline.has_passed(), "the handshake ran to its deadline");
    drop(theirs);
}

/// A connection's limit check, for the unit tests below and the integration tests.
#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_entry_points_take_empty_and_short_input() {
        for bytes in [
            &[][..],
            &[0],
            &[1, 0, 0, 0, 1, 7],
            &[3, 0xff, 0xff, 0xff, 0xff],
        ] {
            super::frame_header(bytes);
            super::receive(bytes);
            super::handshake(super::Side::Listener, bytes);
            super::handshake(super::Side::Client, bytes);
        }
    }
}
