//! The authkey handshake of Python's `multiprocessing.connection`, byte for byte.
//!
//! Each side proves it knows the key by answering the other's random challenge with an
//! HMAC of it. The listener challenges first, then answers the client's challenge; the
//! client does the reverse. Every message is one frame (see `frame.rs`):
//!
//! - challenge: `#CHALLENGE#` + `{sha256}` + 40 random bytes (Python 3.12 and later);
//!   Python 3.11 and older send `#CHALLENGE#` + 20 random bytes;
//! - response: `{sha256}` + HMAC-SHA256(key, challenge with its `{sha256}` prefix), or,
//!   answering a 20-byte legacy challenge, the bare 16-byte HMAC-MD5 of it;
//! - verdict: `#WELCOME#` or `#FAILURE#`.
//!
//! On a unix socket our challenge's random bytes start with [`RECORDS_OFFER`]: the offer,
//! to a peer of this library, to carry the connection on a record socket once the
//! handshake is done (see `listener.rs`). Python ignores it (to Python they are challenge
//! bytes like any others), and Python's random bytes make the offer with a chance of
//! 2^-64.
//!
//! A response's length tells its form: 16 bytes is a legacy HMAC-MD5 (what 3.11 answers to
//! any challenge, ours included), anything else must carry a `{digest}` prefix. Because
//! the MAC covers the challenge's own `{digest}` prefix, a peer cannot talk us down to a
//! weaker digest. Every handshake message is at most 256 bytes (Python's limit), and the
//! whole handshake runs under one deadline, so neither a garbage-sending nor a silent peer
//! can hold the other side longer than that.
#![forbid(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use hmac::{Hmac, Mac};

use super::frame;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::fd::wait_readable;
use crate::sys;

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";

/// Random bytes in our challenge, after its `{sha256}` prefix (Python's `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 40;
/// A challenge of exactly this length comes from a legacy (HMAC-MD5 only) peer.
const MD5ONLY_MESSAGE_LENGTH: usize = 20;
/// A response of exactly this length is a legacy bare HMAC-MD5.
const MD5_DIGEST_LEN: usize = 16;
/// The first random bytes of a challenge that offers the move to a record socket: 8 of the
/// 40, so 32 random bytes (256 bits) remain.
const RECORDS_OFFER: &[u8; 8] = b"mp:recs1";
/// Handshake messages longer than this are refused before they are read.
const MAX_MESSAGE: u64 = 256;
/// Digest names Python may put in braces; the longest decides how far `}` is looked for.
const PYTHON_DIGESTS: [&[u8]; 5] = [b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"];
const MAX_DIGEST_NAME: usize = 8;

/// The digests this side computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Digest {
    Md5,
    Sha256,
    Sha384,
}

impl Digest {
    fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
        }
    }

    fn from_name(name: &[u8]) -> Option<Digest> {
        [Digest::Md5, Digest::Sha256, Digest::Sha384]
            .into_iter()
            .find(|d| d.name().as_bytes() == name)
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes keys of any length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message),
        }
    }

    /// Checks `tag` against the MAC of `message` in constant time (of the tag's length).
    fn verify(self, key: &[u8], message: &[u8], tag: &[u8]) -> bool {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes keys of any length");
            mac.update(message);
            mac.verify_slice(tag).is_ok()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message, tag),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message, tag),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message, tag),
        }
    }

    fn len(self) -> usize {
        match self {
            Digest::Md5 => 16,
            Digest::Sha256 => 32,
            Digest::Sha384 => 48,
        }
    }
}

/// Splits a challenge or response into its digest and payload: `None` for the legacy
/// forms (a 20-byte challenge, a 16-byte response), which mean bare HMAC-MD5.
fn digest_and_payload(message: &[u8]) -> Result<(Option<Digest>, &[u8])> {
    if message.len() == MD5ONLY_MESSAGE_LENGTH || message.len() == MD5_DIGEST_LEN {
        return Ok((None, message));
    }
    let end = message.len().min(MAX_DIGEST_NAME + 2);
    let curly = (message.first() == Some(&b'{'))
        .then(|| message[1..end].iter().position(|&b| b == b'}'))
        .flatten()
        .map(|i| i + 1);
    let Some(curly) = curly else {
        return Err(Error::Authentication(format!(
            "a {}-byte handshake message has neither a legacy length nor a {{digest}} prefix",
            message.len()
        )));
    };
    let name = &message[1..curly];
    match Digest::from_name(name) {
        Some(d) => Ok((Some(d), &message[curly + 1..])),
        None if PYTHON_DIGESTS.contains(&name) => Err(Error::Authentication(format!(
            "the peer asks for the {} digest, which this side does not support",
            String::from_utf8_lossy(name)
        ))),
        None => Err(Error::Authentication(format!(
            "unknown digest {:?} in a handshake message",
            String::from_utf8_lossy(name)
        ))),
    }
}

/// The answer to `challenge` (without `#CHALLENGE#`).
fn response(key: &[u8], challenge: &[u8]) -> Result<Vec<u8>> {
    match digest_and_payload(challenge)? {
        (None, _) => Ok(Digest::Md5.mac(key, challenge)),
        (Some(d), _) => {
            let mut out = format!("{{{}}}", d.name()).into_bytes();
            out.extend_from_slice(&d.mac(key, challenge));
            Ok(out)
        }
    }
}

/// Checks a peer's `answer` to our `challenge`.
fn verify(key: &[u8], challenge: &[u8], answer: &[u8]) -> Result<()> {
    let (digest, tag) = digest_and_payload(answer)?;
    let digest = digest.unwrap_or(Digest::Md5);
    if tag.len() != digest.len() {
        return Err(Error::Authentication(format!(
            "expected a {} digest of {} bytes, got {}",
            digest.name(),
            digest.len(),
            tag.len()
        )));
    }
    if !digest.verify(key, challenge, tag) {
        return Err(Error::Authentication("digest received was wrong".into()));
    }
    Ok(())
}

/// Challenges the peer and checks its answer (Python's `deliver_challenge`); the peer is
/// told `#WELCOME#` or `#FAILURE#`. With `offer_records`, the challenge offers the move to
/// a record socket. `Error::Timeout` when `deadline` passes first.
pub(crate) fn deliver_challenge(
    fd: BorrowedFd<'_>,
    key: &[u8],
    deadline: Deadline,
    offer_records: bool,
) -> Result<()> {
    let mut random = [0u8; MESSAGE_LENGTH];
    getrandom::getrandom(&mut random)
        .map_err(|e| Error::Io(std::io::Error::other(format!("no random bytes: {e}"))))?;
    if offer_records {
        random[..RECORDS_OFFER.len()].copy_from_slice(RECORDS_OFFER);
    }
    let mut challenge = b"{sha256}".to_vec();
    challenge.extend_from_slice(&random);
    send(fd, &[CHALLENGE, &challenge].concat())?;
    let answer = recv(fd, deadline)?;
    match verify(key, &challenge, &answer) {
        Ok(()) => send(fd, WELCOME),
        Err(e) => {
            // The verdict is a courtesy; the error is ours to report either way.
            let _ = send(fd, FAILURE);
            Err(e)
        }
    }
}

/// Answers the peer's challenge and reads its verdict (Python's `answer_challenge`), and
/// says whether the challenge offered the move to a record socket. `Error::Timeout` when
/// `deadline` passes first.
pub(crate) fn answer_challenge(fd: BorrowedFd<'_>, key: &[u8], deadline: Deadline) -> Result<bool> {
    let message = recv(fd, deadline)?;
    let Some(challenge) = message.strip_prefix(CHALLENGE) else {
        return Err(Error::Authentication(format!(
            "expected a challenge, got {} bytes starting {:?}",
            message.len(),
            String::from_utf8_lossy(&message[..message.len().min(16)])
        )));
    };
    if challenge.len() < MD5ONLY_MESSAGE_LENGTH {
        return Err(Error::Authentication(format!(
            "challenge too short: {} bytes",
            challenge.len()
        )));
    }
    send(fd, &response(key, challenge)?)?;
    if recv(fd, deadline)? != WELCOME {
        return Err(Error::Authentication("digest sent was rejected".into()));
    }
    let offers = matches!(
        digest_and_payload(challenge)?,
        (Some(_), random) if random.starts_with(RECORDS_OFFER)
    );
    Ok(offers)
}

fn send(fd: BorrowedFd<'_>, message: &[u8]) -> Result<()> {
    let mut scratch = [0; frame::MAX_HEADER];
    let header = frame::header(message.len() as u64, &mut scratch);
    sys::fd::write_all_vectored(fd, &[header, message])?;
    Ok(())
}

/// Reads one handshake frame of at most [`MAX_MESSAGE`] bytes, by exact counts (the bytes
/// after it belong to the connection), before `deadline`.
fn recv(fd: BorrowedFd<'_>, deadline: Deadline) -> Result<Vec<u8>> {
    let mut head = [0u8; frame::MAX_HEADER];
    let mut got = 0;
    let len = loop {
        if let Some((len, _)) = frame::decode_header(&head[..got])
            .map_err(|e| Error::Authentication(format!("bad handshake frame: {e}")))?
        {
            break len;
        }
        let want = if got < 4 { 4 } else { frame::MAX_HEADER };
        got += read_some(fd, &mut head[got..want], deadline)?;
    };
    if len > MAX_MESSAGE {
        return Err(Error::Authentication(format!(
            "handshake message of {len} bytes is over the {MAX_MESSAGE}-byte limit"
        )));
    }
    let mut message = vec![0; len as usize];
    let mut filled = 0;
    while filled < message.len() {
        filled += read_some(fd, &mut message[filled..], deadline)?;
    }
    Ok(message)
}

fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
    if !wait_readable(&[fd.as_raw_fd()], deadline)?[0] {
        // The caller says what running out of time means for it.
        return Err(Error::Timeout);
    }
    match sys::fd::read(fd, buf)? {
        0 => Err(Error::Authentication(
            "the peer closed the connection during the handshake".into(),
        )),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Python 3.12's `_create_response` for the challenge `{sha256}` + 40 * b'a' and the
    /// key `b'key'` (the expected MAC computed with Python's own `hmac`).
    #[test]
    fn lc_14_sha256_response_matches_python() {
        let challenge = [&b"{sha256}"[..], &[b'a'; 40]].concat();
        let r = response(b"key", &challenge).unwrap();
        assert_eq!(&r[..8], b"{sha256}");
        assert_eq!(
            hex(&r[8..]),
            "e939dfd97575ac93b74e585079fd9a3df52211598de55b47dad2acb212b298b4"
        );
        verify(b"key", &challenge, &r).unwrap();
        assert!(verify(b"other", &challenge, &r).is_err());
    }

    #[test]
    fn lc_14_legacy_forms() {
        // A legacy 20-byte challenge is answered with a bare HMAC-MD5 ...
        let challenge = [7u8; 20];
        let r = response(b"k", &challenge).unwrap();
        assert_eq!(hex(&r), "6d5cca6646793217129b4439afb17dad");
        // ... and a bare 16-byte answer to our prefixed challenge is accepted as MD5.
        let ours = [&b"{sha256}"[..], &[1; 40]].concat();
        let legacy = Digest::Md5.mac(b"k", &ours);
        verify(b"k", &ours, &legacy).unwrap();
        assert!(verify(b"j", &ours, &legacy).is_err());
    }

    #[test]
    fn lc_14_wrong_length_or_digest_is_refused() {
        let ours = [&b"{sha256}"[..], &[1; 40]].concat();
        for answer in [
            &b"{sha256}short"[..],
            b"{sha3_256}0123456789012345678901234567890",
            b"{nope}0123456789012345678901234567890",
            b"no prefix at all, just bytes",
            b"",
        ] {
            assert!(
                matches!(verify(b"k", &ours, answer), Err(Error::Authentication(_))),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn lc_10_both_directions_over_a_socketpair() {
        let (a, b) = sys::fd::socketpair().unwrap();
        let t = std::thread::spawn(move || {
            let d = Deadline::after(std::time::Duration::from_secs(5));
            let offered = answer_challenge(b.as_fd(), b"k", d)?;
            deliver_challenge(b.as_fd(), b"k", d, false)?;
            Ok::<_, Error>(offered)
        });
        let d = Deadline::after(std::time::Duration::from_secs(5));
        deliver_challenge(a.as_fd(), b"k", d, true).unwrap();
        assert!(
            !answer_challenge(a.as_fd(), b"k", d).unwrap(),
            "no offer made"
        );
        assert!(t.join().unwrap().unwrap(), "the offer was seen");
    }

    #[test]
    fn lc_13_oversized_message_is_refused_unread() {
        let (a, b) = sys::fd::socketpair().unwrap();
        send(a.as_fd(), &[0; 300]).unwrap();
        let e = recv(b.as_fd(), Deadline::now()).unwrap_err();
        assert!(e.to_string().contains("256"), "{e}");
    }

    proptest::proptest! {
        /// Any answer to our challenge: refused or accepted, never a panic.
        #[test]
        fn any_answer_is_judged_without_panic(answer in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let ours = [&b"{sha256}"[..], &[1; 40]].concat();
            let _ = verify(b"k", &ours, &answer);
            let _ = response(b"k", &answer);
        }
    }
}
