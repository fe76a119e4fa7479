//! How values become bytes: a fast binary default and JSON.
//!
//! Pipes, queues and a child's return value all carry values through a [`Codec`]. The default,
//! [`Binary`], is `postcard`: compact, no schema, fast for small messages. [`Json`] is for
//! readable messages and for talking to programs in other languages.
#![forbid(unsafe_code)]

mod bounded;
mod pickle;

pub use self::pickle::Pickle;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Turns values into bytes and back.
pub trait Codec {
    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    /// [`Error::Codec`] when the value cannot be encoded.
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()>;

    /// Decodes one value from exactly `bytes`.
    ///
    /// # Errors
    /// [`Error::Codec`] when the bytes are not a valid encoding of a `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T>;

    /// The length of `value`'s encoding, if the codec can tell it cheaply without writing
    /// the encoding anywhere; `None` (the default) when it cannot. A codec that returns
    /// `Some` and implements [`encode_into`](Codec::encode_into) lets a queue encode large
    /// values straight into shared memory instead of encoding into a buffer and copying.
    ///
    /// # Errors
    /// [`Error::Codec`] when the value cannot be encoded.
    fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<Option<usize>> {
        let _ = value;
        Ok(None)
    }

    /// Encodes `value` into the start of `out` and returns how many bytes it wrote, or
    /// `None` when the encoding does not fit `out`. The default says `None` at once: the
    /// codec can only [`encode`](Codec::encode) into a `Vec`.
    ///
    /// # Errors
    /// [`Error::Codec`] when the value cannot be encoded.
    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut [u8]) -> Result<Option<usize>> {
        let _ = (value, out);
        Ok(None)
    }
}

/// The default codec: `postcard`, a compact binary serde format.
///
/// Decoding is strict: a value must use its whole frame (bytes left over mean the message
/// is some other type), values may nest at most 128 levels deep (as JSON's default), and a
/// `Deserialize` impl's `Error::custom` message is kept in the error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Binary;

impl Codec for Binary {
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        // `postcard` reports every custom serialisation error with one fixed text; a
        // handle's refusal ("only through a Connection") is kept aside and put back.
        crate::handle::explain(|| {
            let taken = std::mem::take(out);
            *out = postcard::to_extend(value, taken).map_err(Error::codec)?;
            Ok(())
        })
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        let mut de = postcard::Deserializer::from_bytes(bytes);
        let value = bounded::deserialize(&mut de).map_err(Error::codec)?;
        let rest = de.finalize().map_err(Error::codec)?;
        if !rest.is_empty() {
            return Err(Error::codec(bounded::DecodeError::Trailing(rest.len())));
        }
        Ok(value)
    }

    fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<Option<usize>> {
        crate::handle::explain(|| {
            postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
                .map(Some)
                .map_err(Error::codec)
        })
    }

    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut [u8]) -> Result<Option<usize>> {
        crate::handle::explain(|| match postcard::to_slice(value, out) {
            Ok(used) => Ok(Some(used.len())),
            Err(postcard::Error::SerializeBufferFull) => Ok(None),
            Err(e) => Err(Error::codec(e)),
        })
    }
}

/// JSON through `serde_json`, with its default limit of 128 nesting levels.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        serde_json::to_writer(out, value).map_err(Error::codec)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(Error::codec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<C: Codec>() {
        let value = (10i32, String::from("结束"), vec![1.5f64, -2.0], None::<u8>);
        let mut out = vec![0xAA];
        C::encode(&value, &mut out).unwrap();
        assert_eq!(out[0], 0xAA, "encode appends, it does not overwrite");
        let back: (i32, String, Vec<f64>, Option<u8>) = C::decode(&out[1..]).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn binary_round_trips() {
        round_trip::<Binary>();
    }

    #[test]
    fn json_round_trips() {
        round_trip::<Json>();
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            Binary::decode::<String>(&[0xff, 0xff, 0xff]),
            Err(Error::Codec(_))
        ));
        assert!(matches!(Json::decode::<u32>(b"{"), Err(Error::Codec(_))));
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Tree {
        Leaf,
        Node(Box<Tree>),
    }

    fn tree(depth: usize) -> Tree {
        (0..depth).fold(Tree::Leaf, |t, _| Tree::Node(Box::new(t)))
    }

    #[test]
    fn binary_refuses_trailing_bytes() {
        let mut out = Vec::new();
        Binary::encode(&vec![300u16, 2, 3], &mut out).unwrap();
        match Binary::decode::<(u8, u8)>(&out) {
            Err(Error::Codec(e)) => assert!(e.to_string().contains("left after"), "{e}"),
            other => panic!("expected a codec error, got {other:?}"),
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = vec![1u8; 1 << 20];
        match Binary::decode::<Tree>(&deep) {
            Err(Error::Codec(e)) => assert!(e.to_string().contains("128 levels"), "{e}"),
            other => panic!("expected a codec error, got {other:?}"),
        }
        let json = format!(
            "{}\"Leaf\"{}",
            "{\"Node\":".repeat(100_000),
            "}".repeat(100_000)
        );
        assert!(matches!(
            Json::decode::<Tree>(json.as_bytes()),
            Err(Error::Codec(_))
        ));
        // Up to the limit both codecs decode; one level deeper both refuse.
        for depth in [0, 1, 127] {
            let mut out = Vec::new();
            Binary::encode(&tree(depth), &mut out).unwrap();
            assert_eq!(
                Binary::decode::<Tree>(&out).unwrap(),
                tree(depth),
                "{depth}"
            );
            let mut out = Vec::new();
            Json::encode(&tree(depth), &mut out).unwrap();
            assert_eq!(Json::decode::<Tree>(&out).unwrap(), tree(depth), "{depth}");
        }
        let mut out = Vec::new();
        Binary::encode(&tree(128), &mut out).unwrap();
        assert!(matches!(Binary::decode::<Tree>(&out), Err(Error::Codec(_))));
        let mut out = Vec::new();
        Json::encode(&tree(128), &mut out).unwrap();
        assert!(matches!(Json::decode::<Tree>(&out), Err(Error::Codec(_))));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Checked {
        #[serde(deserialize_with = "odd")]
        _n: u32,
        _rest: Vec<(u8, Option<String>)>,
    }

    fn odd<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u32, D::Error> {
        let n = <u32 as serde::Deserialize>::deserialize(d)?;
        if n % 2 == 0 {
            return Err(serde::de::Error::custom(format!("my message: {n} is even")));
        }
        Ok(n)
    }

    /// A visitor-level custom error travels down through postcard and back.
    #[derive(Debug)]
    struct Shouty;

    impl<'de> serde::Deserialize<'de> for Shouty {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Shouty;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a shout")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Shouty, E> {
                    Err(E::custom(format!("not a shout: {v}")))
                }
            }
            d.deserialize_str(V)
        }
    }

    #[test]
    fn custom_messages_survive_the_binary_codec() {
        let mut out = Vec::new();
        Binary::encode(&(4u32, vec![(1u8, Some("x"))]), &mut out).unwrap();
        let e = Binary::decode::<Checked>(&out).unwrap_err();
        assert!(e.to_string().contains("my message: 4 is even"), "{e}");
        assert!(std::error::Error::source(&e).is_some());

        let mut out = Vec::new();
        Binary::encode(&vec!["quiet"], &mut out).unwrap();
        let e = Binary::decode::<Vec<Shouty>>(&out).unwrap_err();
        assert!(e.to_string().contains("not a shout: quiet"), "{e}");

        // A plain format error still says what the format said.
        let e = Binary::decode::<String>(&[5, b'a']).unwrap_err();
        assert!(e.to_string().contains("end of buffer"), "{e}");
    }
}
