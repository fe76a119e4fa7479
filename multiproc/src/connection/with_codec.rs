//! Sending and receiving through a codec other than the default, for example
//! [`Pickle`](crate::codec::Pickle) to talk to Python.
#![forbid(unsafe_code)]

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Connection, Readable, Writable};
use crate::codec::Codec;
use crate::error::Result;

impl<D: Writable> Connection<D> {
    /// Encodes `value` with the codec `C` and sends it as one message.
    ///
    /// ```
    /// use multiproc::codec::Pickle;
    /// # fn main() -> multiproc::Result<()> {
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// a.send_with::<Pickle, _>(&("hello", 3))?;
    /// assert_eq!(b.recv_with::<Pickle, (String, i64)>()?, ("hello".to_string(), 3));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_with<C: Codec, T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let mut bytes = Vec::new();
        C::encode(value, &mut bytes)?;
        self.send_bytes(&bytes)
    }
}

impl<D: Readable> Connection<D> {
    /// Receives one message and decodes it with the codec `C`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_with<C: Codec, T: DeserializeOwned>(&mut self) -> Result<T> {
        C::decode(&self.recv_bytes()?)
    }
}
