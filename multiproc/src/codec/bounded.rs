//! A serde `Deserializer` adapter that bounds how deeply values nest and keeps the messages
//! of `Error::custom`.
//!
//! `postcard` recurses once per nesting level and has no limit of its own, so ~1 MB of
//! crafted bytes read as a recursive type (`enum Tree { Leaf, Node(Box<Tree>) }`) would
//! overflow the receiver's stack. And it maps every `Error::custom(msg)` of a `Deserialize`
//! impl to one fixed variant, dropping `msg`. The adapter wraps the format's deserializer
//! at every level: it counts compound values (sequences, maps, enums, `Some`, newtypes) and
//! refuses past [`MAX_DEPTH`], and its own error type keeps custom messages.
//!
//! Errors cross the format in both directions: the format's errors come up as
//! [`DecodeError::Format`]; an error of ours that must travel down through the format (a
//! visitor or seed of the wrapped type failed) is parked in a thread-local slot, handed to
//! the format as a plain `custom` error, and taken back out when it surfaces again.
//! (No maintained crate does this: `serde_stacker` grows the stack instead of bounding it.)
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

/// How deeply compound values may nest: the limit `serde_json` applies to JSON by default,
/// so both codecs accept the same shapes.
pub(crate) const MAX_DEPTH: usize = 128;

/// Why a value could not be decoded.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The format refused the bytes (its message).
    Format(String),
    /// A `Deserialize` impl refused the value with `Error::custom` (its message).
    Custom(String),
    /// The value nests deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The value ended before its frame did.
    Trailing(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Format(m) | DecodeError::Custom(m) => f.write_str(m),
            DecodeError::TooDeep => {
                write!(f, "the value nests more than {MAX_DEPTH} levels deep")
            }
            DecodeError::Trailing(n) => {
                write!(
                    f,
                    "{n} bytes left after the value: the message is not this type"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError::Custom(msg.to_string())
    }
}

thread_local! {
    /// An error of ours on its way through the format (see the module docs).
    static PARKED: RefCell<Option<DecodeError>> = const { RefCell::new(None) };
}

/// Parks `e` and gives the format an error to carry up in its place.
fn park<E: de::Error>(e: DecodeError) -> E {
    let text = e.to_string();
    PARKED.with(|p| *p.borrow_mut() = Some(e));
    E::custom(text)
}

/// Turns an error that came up through the format back into ours: the parked one when
/// there is one (it caused this error), else the format's own message.
fn unpark<E: fmt::Display>(e: E) -> DecodeError {
    PARKED
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| DecodeError::Format(e.to_string()))
}

/// Decodes one `T` from `de`, nesting at most [`MAX_DEPTH`] levels deep.
pub(crate) fn deserialize<'de, T, D>(de: D) -> Result<T, DecodeError>
where
    T: de::Deserialize<'de>,
    D: Deserializer<'de>,
{
    PARKED.with(|p| *p.borrow_mut() = None);
    T::deserialize(Bounded {
        inner: de,
        depth: 0,
    })
}

/// A deserializer (or visitor, seed, access) at nesting depth `depth`.
struct Bounded<T> {
    inner: T,
    depth: usize,
}

impl<T> Bounded<T> {
    fn wrap<U>(&self, inner: U) -> Bounded<U> {
        Bounded {
            inner,
            depth: self.depth,
        }
    }

    /// One level down, or [`DecodeError::TooDeep`].
    fn deeper<U>(&self, inner: U) -> Result<Bounded<U>, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        Ok(Bounded {
            inner,
            depth: self.depth + 1,
        })
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, DecodeError> {
            let visitor = self.wrap(visitor);
            self.inner.$method($($arg,)* visitor).map_err(unpark)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Bounded<D> {
    type Error = DecodeError;

    forward_deserialize! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf();
        deserialize_option(); deserialize_unit(); deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize); deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method::<DecodeError>(v).map_err(park)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Bounded<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
        visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
        visit_u128(u128); visit_f32(f32); visit_f64(f64); visit_char(char);
        visit_str(&str); visit_borrowed_str(&'de str); visit_string(String);
        visit_bytes(&[u8]); visit_borrowed_bytes(&'de [u8]); visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none::<DecodeError>().map_err(park)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit::<DecodeError>().map_err(park)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let d = self.deeper(d).map_err(park::<D::Error>)?;
        self.inner.visit_some(d).map_err(park)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let d = self.deeper(d).map_err(park::<D::Error>)?;
        self.inner.visit_newtype_struct(d).map_err(park)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let seq = self.deeper(seq).map_err(park::<A::Error>)?;
        self.inner.visit_seq(seq).map_err(park)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let map = self.deeper(map).map_err(park::<A::Error>)?;
        self.inner.visit_map(map).map_err(park)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let data = self.deeper(data).map_err(park::<A::Error>)?;
        self.inner.visit_enum(data).map_err(park)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Bounded<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let d = self.wrap(d);
        self.inner.deserialize(d).map_err(park)
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Bounded<A> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let seed = self.wrap(seed);
        self.inner.next_element_seed(seed).map_err(unpark)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Bounded<A> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let seed = self.wrap(seed);
        self.inner.next_key_seed(seed).map_err(unpark)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let seed = self.wrap(seed);
        self.inner.next_value_seed(seed).map_err(unpark)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Bounded<A> {
    type Error = DecodeError;
    type Variant = Bounded<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DecodeError> {
        let depth = self.depth;
        let seed = self.wrap(seed);
        let (value, variant) = self.inner.variant_seed(seed).map_err(unpark)?;
        Ok((
            value,
            Bounded {
                inner: variant,
                depth,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Bounded<A> {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<(), DecodeError> {
        self.inner.unit_variant().map_err(unpark)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        let seed = self.wrap(seed);
        self.inner.newtype_variant_seed(seed).map_err(unpark)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let visitor = self.wrap(visitor);
        self.inner.tuple_variant(len, visitor).map_err(unpark)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let visitor = self.wrap(visitor);
        self.inner.struct_variant(fields, visitor).map_err(unpark)
    }
}
