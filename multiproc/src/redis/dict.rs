//! [`Dict`]: a dictionary shared by processes on any machine, on a Redis hash.
#![forbid(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::link::{array, bytes, int, Link};
use crate::codec::{Codec, Json};
use crate::error::{Error, Result};

/// A dictionary on a Redis hash, with the calls of the manager's
/// [`DictProxy`](crate::manager::DictProxy): every call is one round trip to the server
/// and sees the other processes' changes at once.
///
/// Keys and values are encoded with the codec `C`, JSON by default, so the hash is readable
/// from `redis-cli` and other languages, and integer values can be incremented atomically
/// by the server ([`increment`](Self::increment), `HINCRBY`).
///
/// ```no_run
/// use multiproc::redis::Dict;
///
/// # fn main() -> multiproc::Result<()> {
/// let d: Dict<String, i64> = Dict::open("redis://127.0.0.1:6379/0", "scores")?;
/// d.insert(&"alice".into(), &1)?;
/// assert_eq!(d.increment(&"alice".into(), 2)?, 3);
/// # Ok(()) }
/// ```
pub struct Dict<K, V, C = Json> {
    key: String,
    link: Mutex<Link>,
    _marker: PhantomData<fn(K, V) -> C>,
}

impl<K, V, C> fmt::Debug for Dict<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dict").field("hash", &self.key).finish()
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> Dict<K, V> {
    /// The hash `name` on the server at `url`, keys and values in JSON. Nothing is sent
    /// until the first call.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a URL that is not a Redis URL or an empty name.
    pub fn open(url: &str, name: &str) -> Result<Dict<K, V>> {
        Dict::with_codec(url, name)
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned, C: Codec> Dict<K, V, C> {
    /// As [`open`](Dict::open), with keys and values encoded by `C`.
    ///
    /// # Errors
    /// As [`open`](Dict::open).
    pub fn with_codec(url: &str, name: &str) -> Result<Dict<K, V, C>> {
        if name.is_empty() {
            return Err(Error::InvalidArgument("a dict needs a name".into()));
        }
        Ok(Dict {
            key: name.to_string(),
            link: Mutex::new(Link::open(url)?),
            _marker: PhantomData,
        })
    }

    fn link(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn field(key: &K) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        C::encode(key, &mut out)?;
        Ok(out)
    }

    fn value(value: &V) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        C::encode(value, &mut out)?;
        Ok(out)
    }

    fn decode_opt(v: redis::Value) -> Result<Option<V>> {
        match v {
            redis::Value::Nil => Ok(None),
            v => Ok(Some(C::decode(&bytes(v)?)?)),
        }
    }

    /// The hash's name.
    pub fn name(&self) -> &str {
        &self.key
    }

    /// Sets `key` to `value`; the value it had, if any (read and set atomically).
    ///
    /// # Errors
    /// [`Error::Codec`] when the key or value cannot be encoded or the old value cannot be
    /// decoded; [`Error::Io`] while the server is unreachable; [`Error::Remote`] when the
    /// name holds something other than a hash.
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>> {
        let (field, value) = (Self::field(key)?, Self::value(value)?);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HGET")
            .arg(&self.key)
            .arg(&field)
            .cmd("HSET")
            .arg(&self.key)
            .arg(&field)
            .arg(&value)
            .ignore();
        let (old,): (redis::Value,) = self.link().call(|c| pipe.query(c))?;
        Self::decode_opt(old)
    }

    /// The value of `key`, if any.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let field = Self::field(key)?;
        let v: redis::Value = self
            .link()
            .call(|c| redis::cmd("HGET").arg(&self.key).arg(&field).query(c))?;
        Self::decode_opt(v)
    }

    /// Removes `key`; the value it had, if any (read and removed atomically).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        let field = Self::field(key)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HGET")
            .arg(&self.key)
            .arg(&field)
            .cmd("HDEL")
            .arg(&self.key)
            .arg(&field)
            .ignore();
        let (old,): (redis::Value,) = self.link().call(|c| pipe.query(c))?;
        Self::decode_opt(old)
    }

    /// Whether `key` is in the dictionary.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        let field = Self::field(key)?;
        let n: i64 = self
            .link()
            .call(|c| redis::cmd("HEXISTS").arg(&self.key).arg(&field).query(c))?;
        Ok(n == 1)
    }

    /// The number of entries.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn len(&self) -> Result<usize> {
        let n: i64 = self
            .link()
            .call(|c| redis::cmd("HLEN").arg(&self.key).query(c))?;
        Ok(n as usize)
    }

    /// Whether the dictionary is empty.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every key (in the server's order).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn keys(&self) -> Result<Vec<K>> {
        let v: redis::Value = self
            .link()
            .call(|c| redis::cmd("HKEYS").arg(&self.key).query(c))?;
        array(v)?
            .into_iter()
            .map(|k| C::decode(&bytes(k)?))
            .collect()
    }

    /// Every value (in the server's order).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn values(&self) -> Result<Vec<V>> {
        let v: redis::Value = self
            .link()
            .call(|c| redis::cmd("HVALS").arg(&self.key).query(c))?;
        array(v)?
            .into_iter()
            .map(|v| C::decode(&bytes(v)?))
            .collect()
    }

    /// Every entry, read in one consistent snapshot (`HGETALL`).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        let v: redis::Value = self
            .link()
            .call(|c| redis::cmd("HGETALL").arg(&self.key).query(c))?;
        let mut flat = array(v)?.into_iter();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
            out.push((C::decode(&bytes(k)?)?, C::decode(&bytes(v)?)?));
        }
        Ok(out)
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn clear(&self) -> Result<()> {
        self.link()
            .call(|c| redis::cmd("DEL").arg(&self.key).query::<()>(c))
    }
}

impl<K, V> Dict<K, V, Json>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned + Copy + Into<i64> + TryFrom<i64>,
{
    /// Adds `delta` to the integer at `key` (a missing key counts as 0) and returns the new
    /// value, atomically on the server (`HINCRBY`): concurrent increments from any number
    /// of processes all count.
    ///
    /// # Errors
    /// [`Error::Remote`] when the value at `key` is not an integer or the sum leaves
    /// `i64`; [`Error::InvalidState`] when it leaves `V`; otherwise as
    /// [`insert`](Self::insert).
    pub fn increment(&self, key: &K, delta: V) -> Result<V> {
        let field = Self::field(key)?;
        let delta: i64 = delta.into();
        // Never sent twice: a second `HINCRBY` would count twice.
        let v: redis::Value = self.link().call_once(|c| {
            redis::cmd("HINCRBY")
                .arg(&self.key)
                .arg(&field)
                .arg(delta)
                .query(c)
        })?;
        let n = int(&v)?;
        V::try_from(n).map_err(|_| {
            Error::InvalidState(format!(
                "the value {n} does not fit in {}",
                std::any::type_name::<V>()
            ))
        })
    }
}
