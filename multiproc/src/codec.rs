//! How values become bytes: a fast binary default and JSON.
//!
//! Pipes, queues and a child's return value all carry values through a [`Codec`]. The default,
//! [`Binary`], is `postcard`: compact, no schema, fast for small messages. [`Json`] is for
//! readable messages and for talking to programs in other languages.
#![forbid(unsafe_code)]

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
#[derive(Debug, Clone, Copy, Default)]
pub struct Binary;

impl Codec for Binary {
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        let taken = std::mem::take(out);
        *out = postcard::to_extend(value, taken).map_err(Error::codec)?;
        Ok(())
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        postcard::from_bytes(bytes).map_err(Error::codec)
    }
}

/// JSON through `serde_json`.
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
}
