//! Custom shared types: Python's `BaseManager.register`, as a trait the served type
//! implements. Requests and responses are serde types of the user's choosing (usually
//! enums), so the proxy is typed and the server needs no reflection.
#![forbid(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client::Handle;
use super::protocol::{decode, encode, Bytes, Failure, Kind, Op, Response};
use super::proxy::Proxied;
use crate::error::{Error, Result};

/// A type a manager's server can hold and serve, registered with
/// [`ManagerBuilder::register`](super::ManagerBuilder::register).
///
/// The server makes the object from an [`Init`](Self::Init) value
/// ([`Manager::custom`](super::Manager::custom)) and answers each [`Request`](Self::Request)
/// through [`handle`](Self::handle), one request at a time per object. What the proxy can
/// ask is exactly what the request type can say: there is no way to reach a method the
/// type does not expose.
///
/// ```
/// use multiproc::manager::Shared;
/// use serde::{Deserialize, Serialize};
///
/// struct Counter(i64);
///
/// #[derive(Serialize, Deserialize)]
/// enum Req { Add(i64), Get }
///
/// impl Shared for Counter {
///     const NAME: &'static str = "Counter";
///     type Init = i64;
///     type Request = Req;
///     type Response = i64;
///     fn new(start: i64) -> Result<Self, String> { Ok(Counter(start)) }
///     fn handle(&mut self, req: Req) -> Result<i64, String> {
///         match req {
///             Req::Add(n) => { self.0 += n; Ok(self.0) }
///             Req::Get => Ok(self.0),
///         }
///     }
/// }
///
/// # fn main() -> multiproc::Result<()> {
/// # if std::fs::read_dir("/proc/self/task")?.count() > 1 { return Ok(()) } // doctests run threaded
/// let manager = multiproc::Manager::builder().register::<Counter>().start()?;
/// let counter = manager.custom::<Counter>(&10)?;
/// assert_eq!(counter.call(&Req::Add(5))?, 15);
/// assert_eq!(counter.call(&Req::Get)?, 15);
/// # Ok(()) }
/// ```
pub trait Shared: Send + 'static {
    /// The name the type is registered under; a remote client names the type by it.
    const NAME: &'static str;
    /// What the server builds an object from.
    type Init: Serialize + DeserializeOwned;
    /// What a proxy may ask.
    type Request: Serialize + DeserializeOwned;
    /// What the object answers.
    type Response: Serialize + DeserializeOwned;

    /// Builds the object in the server; an `Err` reaches the caller as [`Error::Remote`].
    fn new(init: Self::Init) -> std::result::Result<Self, String>
    where
        Self: Sized;

    /// Answers one request; an `Err` reaches the caller as [`Error::Remote`].
    fn handle(&mut self, request: Self::Request) -> std::result::Result<Self::Response, String>;
}

/// A served object with its types erased, as the server holds it.
pub(crate) trait Served: Send {
    fn call(&mut self, request: &[u8]) -> std::result::Result<Bytes, Failure>;
}

impl<T: Shared> Served for T {
    fn call(&mut self, request: &[u8]) -> std::result::Result<Bytes, Failure> {
        let request = decode(request).map_err(|e| Failure::InvalidArgument(e.to_string()))?;
        let response = self.handle(request).map_err(Failure::Remote)?;
        encode(&response).map_err(|e| Failure::Remote(e.to_string()))
    }
}

/// Builds a served object from its encoded init value.
pub(crate) type Factory = fn(Bytes) -> Built;

/// What a [`Factory`] gives.
pub(crate) type Built = std::result::Result<Box<dyn Served>, Failure>;

/// The factory of `T`.
pub(crate) fn factory<T: Shared>() -> Factory {
    |init| {
        let init = decode(&init).map_err(|e| Failure::InvalidArgument(e.to_string()))?;
        Ok(Box::new(T::new(init).map_err(Failure::Remote)?))
    }
}

/// A proxy for a custom [`Shared`] object.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct CustomProxy<T> {
    handle: Handle,
    #[serde(skip)]
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for CustomProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomProxy")
            .field("object", &self.handle)
            .finish()
    }
}

impl<T> Clone for CustomProxy<T> {
    fn clone(&self) -> Self {
        CustomProxy {
            handle: self.handle.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: Shared> CustomProxy<T> {
    /// Sends one request to the object and returns its answer.
    ///
    /// # Errors
    /// [`Error::Remote`] when the object's `handle` (or `new`) failed;
    /// [`Error::ManagerGone`] when the server is gone.
    pub fn call(&self, request: &T::Request) -> Result<T::Response> {
        match self.handle.call(Op::Custom(encode(request)?))? {
            Response::Value(Some(bytes)) => decode(&bytes),
            other => Err(Error::protocol(format!("unexpected response {other:?}"))),
        }
    }
}

impl<T> Proxied for CustomProxy<T> {
    const KIND: Kind = Kind::Custom;
    fn from_handle(handle: Handle) -> Self {
        CustomProxy {
            handle,
            _type: PhantomData,
        }
    }
    fn handle(&self) -> &Handle {
        &self.handle
    }
}
