//! The wire framing of a connection, byte-compatible with Python's
//! `multiprocessing.connection`: a 4-byte big-endian signed length, then the payload; a
//! payload longer than `0x7fff_ffff` bytes is announced by a length of `-1` followed by an
//! 8-byte big-endian unsigned length.
//!
//! A message that carries file descriptors (handles, see `handle.rs`) is one more frame
//! shape, which Python never writes: the prefix `-2` (4 bytes, big-endian) and the number of
//! descriptors (4 bytes, big-endian unsigned), then the ordinary header and payload. The
//! descriptors ride on the prefix's bytes (`SCM_RIGHTS`). A message without descriptors is
//! framed exactly as Python frames it.
//!
//! On a record-preserving socket (`SOCK_SEQPACKET`, what [`pipe`](super::pipe) makes) the
//! same bytes travel as records of at most [`RECORD_MAX`] bytes: a frame that fits is one
//! record; a longer one is cut into records of `RECORD_MAX` bytes and a last, shorter one
//! ([`records`]). A record never holds bytes of two frames, so a receive that takes one
//! record never takes a byte of the next frame.
//!
//! Pure functions over bytes: no I/O, so they are unit-tested and fuzzed on their own.
#![forbid(unsafe_code)]

use crate::error::{Error, Result};

/// The longest header: the `-1` marker and an 8-byte length.
pub(crate) const MAX_HEADER: usize = 12;

/// Lengths up to this use the short 4-byte header.
const SHORT_MAX: u64 = 0x7fff_ffff;

/// The length of the prefix of a frame with descriptors.
pub(crate) const FDS_PREFIX: usize = 8;

/// The first four bytes of a frame with descriptors.
const FDS_MARKER: i32 = -2;

/// The longest record on a record-preserving socket, and the room a receiver gives the
/// first record of each frame. Well under the kernel's limit for one `AF_UNIX` record
/// (the send buffer, at least 208 KiB), and within what it builds from single pages.
pub(crate) const RECORD_MAX: usize = 64 * 1024;

/// Cuts the frame `parts` (concatenated) into the records it travels as: slices of
/// `parts`, [`RECORD_MAX`] bytes per record and the rest in the last one.
pub(crate) fn records<'a>(parts: &[&'a [u8]]) -> Vec<Vec<&'a [u8]>> {
    let mut out = Vec::new();
    let mut record: Vec<&'a [u8]> = Vec::new();
    let mut room = RECORD_MAX;
    for &part in parts {
        let mut part = part;
        while !part.is_empty() {
            let (now, later) = part.split_at(part.len().min(room));
            record.push(now);
            room -= now.len();
            part = later;
            if room == 0 {
                out.push(std::mem::take(&mut record));
                room = RECORD_MAX;
            }
        }
    }
    if !record.is_empty() {
        out.push(record);
    }
    out
}

/// The prefix announcing `count` descriptors.
pub(crate) fn encode_fds_prefix(count: u32) -> [u8; FDS_PREFIX] {
    let mut out = [0; FDS_PREFIX];
    out[..4].copy_from_slice(&FDS_MARKER.to_be_bytes());
    out[4..].copy_from_slice(&count.to_be_bytes());
    out
}

/// Parses the descriptor prefix a frame may start with.
///
/// Returns `Ok(None)` when `buf` is too short to tell yet; `Ok(Some((None, 0)))` for a frame
/// without descriptors; `Ok(Some((Some(count), FDS_PREFIX)))` for one with `count`.
///
/// # Errors
/// [`Error::Protocol`] for a prefix announcing no descriptors (never written).
pub(crate) fn decode_fds_prefix(buf: &[u8]) -> Result<Option<(Option<u32>, usize)>> {
    let Some(marker) = buf.get(..4) else {
        return Ok(None);
    };
    if marker != FDS_MARKER.to_be_bytes() {
        return Ok(Some((None, 0)));
    }
    let Some(count) = buf.get(4..FDS_PREFIX) else {
        return Ok(None);
    };
    match u32::from_be_bytes(count.try_into().expect("4 bytes")) {
        0 => Err(Error::protocol(
            "frame prefix announces zero descriptors, which is never sent",
        )),
        count => Ok(Some((Some(count), FDS_PREFIX))),
    }
}

/// Writes the header for a payload of `len` bytes at the end of `out` and returns how many
/// bytes it took (4 or 12). Writing at the end lets a caller that reserved
/// [`MAX_HEADER`] bytes in front of an encoded payload send one contiguous buffer.
pub(crate) fn encode_header(len: u64, out: &mut [u8; MAX_HEADER]) -> usize {
    if len <= SHORT_MAX {
        out[8..].copy_from_slice(&(len as u32).to_be_bytes());
        4
    } else {
        out[..4].copy_from_slice(&(-1i32).to_be_bytes());
        out[4..].copy_from_slice(&len.to_be_bytes());
        12
    }
}

/// The header bytes for a payload of `len` bytes, as a slice of `scratch`.
pub(crate) fn header(len: u64, scratch: &mut [u8; MAX_HEADER]) -> &[u8] {
    let n = encode_header(len, scratch);
    &scratch[MAX_HEADER - n..]
}

/// Parses a header at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` is too short to hold the whole header yet, and
/// `Ok(Some((payload_len, header_len)))` once it does.
///
/// # Errors
/// [`Error::Protocol`] for a negative length other than the `-1` marker, or a long header
/// whose length would fit a short one (Python never writes that; a peer that does is not
/// speaking this protocol).
pub(crate) fn decode_header(buf: &[u8]) -> Result<Option<(u64, usize)>> {
    let Some(short) = buf.get(..4) else {
        return Ok(None);
    };
    let short = i32::from_be_bytes(short.try_into().expect("4 bytes"));
    match short {
        0.. => Ok(Some((short as u64, 4))),
        -1 => {
            let Some(long) = buf.get(4..12) else {
                return Ok(None);
            };
            let long = u64::from_be_bytes(long.try_into().expect("8 bytes"));
            if long <= SHORT_MAX {
                return Err(Error::protocol(format!(
                    "long frame header announces {long} bytes, which needs no long header"
                )));
            }
            Ok(Some((long, 12)))
        }
        negative => Err(Error::protocol(format!("negative frame length {negative}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(len: u64) -> Vec<u8> {
        let mut scratch = [0; MAX_HEADER];
        header(len, &mut scratch).to_vec()
    }

    #[test]
    fn cn_20_short_header_is_4_byte_big_endian() {
        assert_eq!(encoded(0), [0, 0, 0, 0]);
        assert_eq!(encoded(1), [0, 0, 0, 1]);
        assert_eq!(encoded(0x0102_0304), [1, 2, 3, 4]);
        assert_eq!(encoded(SHORT_MAX), [0x7f, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn cn_20_long_header_is_minus_one_then_8_bytes() {
        let h = encoded(SHORT_MAX + 1);
        assert_eq!(h.len(), 12);
        assert_eq!(&h[..4], &[0xff; 4]);
        assert_eq!(&h[4..], &(SHORT_MAX + 1).to_be_bytes());
    }

    #[test]
    fn decode_inverts_encode_at_the_edges() {
        for len in [0, 1, 255, 65_536, SHORT_MAX, SHORT_MAX + 1, u64::MAX] {
            let h = encoded(len);
            assert_eq!(
                decode_header(&h).unwrap(),
                Some((len, h.len())),
                "len {len}"
            );
            let mut with_payload = h.clone();
            with_payload.extend_from_slice(b"payload");
            assert_eq!(decode_header(&with_payload).unwrap(), Some((len, h.len())));
        }
    }

    #[test]
    fn partial_headers_ask_for_more() {
        assert_eq!(decode_header(&[]).unwrap(), None);
        assert_eq!(decode_header(&[0, 0, 0]).unwrap(), None);
        assert_eq!(
            decode_header(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0]).unwrap(),
            None
        );
    }

    #[test]
    fn malformed_headers_are_protocol_errors() {
        assert!(matches!(
            decode_header(&[0xff, 0xff, 0xff, 0xfe]),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            decode_header(&[0x80, 0, 0, 0]),
            Err(Error::Protocol(_))
        ));
        let mut long_but_small = vec![0xff; 4];
        long_but_small.extend_from_slice(&5u64.to_be_bytes());
        assert!(matches!(
            decode_header(&long_but_small),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn fds_prefix_round_trips_and_leaves_plain_frames_alone() {
        let prefix = encode_fds_prefix(3);
        assert_eq!(prefix, [0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 3]);
        assert_eq!(
            decode_fds_prefix(&prefix).unwrap(),
            Some((Some(3), FDS_PREFIX))
        );
        assert_eq!(decode_fds_prefix(&prefix[..5]).unwrap(), None);
        assert_eq!(decode_fds_prefix(&[0, 0]).unwrap(), None);
        assert_eq!(decode_fds_prefix(&encoded(5)).unwrap(), Some((None, 0)));
        assert_eq!(
            decode_fds_prefix(&encoded(SHORT_MAX + 1)).unwrap(),
            Some((None, 0)),
            "the long-header marker is not the descriptor marker"
        );
        assert!(matches!(
            decode_fds_prefix(&encode_fds_prefix(0)),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn records_cut_at_record_max_and_keep_every_byte_in_order() {
        let head = [1u8, 2, 3, 4];
        for len in [
            0,
            1,
            RECORD_MAX - 4,
            RECORD_MAX - 3,
            RECORD_MAX,
            3 * RECORD_MAX + 7,
        ] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let cut = records(&[&head, &payload]);
            let sizes: Vec<usize> = cut
                .iter()
                .map(|r| r.iter().map(|p| p.len()).sum())
                .collect();
            let total = 4 + len;
            assert_eq!(sizes.len(), total.div_ceil(RECORD_MAX), "len {len}");
            assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == RECORD_MAX));
            assert!(sizes.iter().all(|&s| s > 0));
            let joined: Vec<u8> = cut.concat().concat();
            assert_eq!(&joined[..4], &head);
            assert_eq!(&joined[4..], &payload[..]);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small exhaustive sweep over the first byte and a pseudo-random rest.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for first in 0..=255u8 {
            for len in 0..=13 {
                let mut buf = vec![first];
                for _ in 1..len {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    buf.push(x as u8);
                }
                let _ = decode_header(&buf[..len.min(buf.len())]);
                let _ = decode_fds_prefix(&buf[..len.min(buf.len())]);
            }
        }
    }
}
