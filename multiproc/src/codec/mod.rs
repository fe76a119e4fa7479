//! How values become bytes: a fast binary default and JSON.
//!
//! Pipes, queues and a child's return value all carry values through a [`Codec`]. The default,
//! [`Binary`], is `postcard`: compact, no schema, fast for small messages. [`Json`] is for
//! readable messages and for talking to programs in other languages.
#![forbid(unsafe_code)]

mod bounded;

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
        let taken = std::mem::take(out);
        *out = postcard::to_extend(value, taken).map_err(Error::codec)?;
        Ok(())
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

/// Python's pickle, through `serde-pickle`: what Python's `Connection.send` / `recv` use, so a
/// Rust process and a Python process exchange values over a
/// [`Listener`](crate::connection::Listener) / [`Client`](crate::connection::Client) or a
/// pipe with [`send_with`](crate::Connection::send_with) /
/// [`recv_with`](crate::Connection::recv_with).
///
/// | Python | Rust |
/// |---|---|
/// | `int` | `i64` (any integer type that fits) |
/// | `float` | `f64` |
/// | `str` | `String` |
/// | `bytes` | `serde_bytes::ByteBuf` (a plain `Vec<u8>` is a list of ints) |
/// | `list`, `tuple` | `Vec<T>`, tuples |
/// | `dict` | `HashMap` / `BTreeMap` |
/// | `None` | `Option::None`, `()` |
///
/// `serde_pickle::Value` decodes anything pickle-able without a fixed type. Values are
/// encoded with pickle protocol 3, which every Python 3 reads. Decoding never runs code
/// (unlike Python's `pickle.loads`): a class instance or other global is a codec error. A
/// value that does not fit the Rust type, trailing bytes, or nesting deeper than 128
/// levels is [`Error::Codec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Pickle;

impl Codec for Pickle {
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        // `to_writer` wants a sized value; a `&T` is one, and serialises as the `T`.
        serde_pickle::to_writer(out, &value, serde_pickle::SerOptions::new()).map_err(Error::codec)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        let mut de = serde_pickle::Deserializer::new(bytes, serde_pickle::DeOptions::new());
        let value = bounded::deserialize(&mut de).map_err(Error::codec)?;
        de.end().map_err(Error::codec)?;
        Ok(value)
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

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn pickle_reads_python_protocol_4() {
        // pickle.dumps([1, 'x', b'y', None, (2.5, {'a': 1})], protocol=4)
        let bytes = unhex(concat!(
            "80049524000000000000005d94284b018c017894430179944e47400400000000",
            "00007d948c0161944b01738694652e"
        ));
        type Item = (
            i64,
            String,
            serde_bytes::ByteBuf,
            Option<u8>,
            (f64, std::collections::BTreeMap<String, i64>),
        );
        let v: Item = Pickle::decode(&bytes).unwrap();
        assert_eq!(v.0, 1);
        assert_eq!(v.1, "x");
        assert_eq!(&v.2[..], b"y");
        assert_eq!(v.3, None);
        assert_eq!(v.4 .0, 2.5);
        assert_eq!(v.4 .1["a"], 1);
        round_trip::<Pickle>();
    }

    #[test]
    fn pickle_misfits_and_garbage_are_codec_errors() {
        let mut out = Vec::new();
        Pickle::encode(&(1i64 << 40), &mut out).unwrap();
        assert!(matches!(Pickle::decode::<u8>(&out), Err(Error::Codec(_))));
        assert!(matches!(
            Pickle::decode::<String>(&out),
            Err(Error::Codec(_))
        ));
        out.push(b'.');
        assert!(matches!(Pickle::decode::<i64>(&out), Err(Error::Codec(_))));
        for garbage in [&b""[..], b"\x80", b"\xff\xff", b"cos\nsystem\n."] {
            assert!(matches!(
                Pickle::decode::<serde_pickle::Value>(garbage),
                Err(Error::Codec(_))
            ));
        }
    }
}
