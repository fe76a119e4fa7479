//! Where a [`Listener`](super::Listener) listens: [`Address`] and its text forms
//! `unix:/path`, `unix:@name` (Linux abstract namespace) and `tcp:host:port`.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// The longest unix socket path, or abstract name, the kernel accepts (`sun_path` holds
/// 108 bytes, one of which is the terminating NUL or the abstract marker).
const MAX_UNIX_NAME: usize = 107;

/// A listening address.
///
/// Its text form names the family first, so one string says everything:
///
/// | text | address |
/// |---|---|
/// | `unix:/run/app.sock` | a unix socket file (created 0600) |
/// | `unix:@app` | a name in Linux's abstract namespace: no file, gone with its listener |
/// | `tcp:127.0.0.1:6000`, `tcp:[::1]:6000`, `tcp:localhost:0` | a TCP address (port 0 picks a free port) |
///
/// ```
/// use multiproc::connection::Address;
/// # fn main() -> multiproc::Result<()> {
/// let a: Address = "tcp:[::1]:6000".parse()?;
/// assert_eq!(a.to_string(), "tcp:[::1]:6000");
/// assert_eq!("unix:@app".parse::<Address>()?, Address::Abstract(b"app".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A unix socket file at this path.
    Unix(PathBuf),
    /// A unix socket in the Linux abstract namespace, under this name (without the leading
    /// NUL byte).
    Abstract(Vec<u8>),
    /// A TCP address, IPv4 or IPv6.
    Tcp(SocketAddr),
}

impl Address {
    /// Parses the text form (see [`Address`]). A TCP host name is resolved here, to its
    /// first IPv4 address if it has one (as Python resolves `("localhost", port)`), else its
    /// first address.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a text that names no family, an empty or too long
    /// unix path or name, or a bad port; [`Error::Io`] when a host name does not resolve.
    pub fn parse(text: &str) -> Result<Address> {
        let bad = |why: &str| Error::InvalidArgument(format!("address {text:?}: {why}"));
        if let Some(rest) = text.strip_prefix("unix:") {
            let address = match rest.strip_prefix('@') {
                Some(name) => Address::Abstract(name.as_bytes().to_vec()),
                None => Address::Unix(PathBuf::from(rest)),
            };
            let len = match &address {
                Address::Abstract(name) => name.len(),
                _ => rest.len(),
            };
            if len == 0 || len > MAX_UNIX_NAME || rest.contains('\0') {
                return Err(bad(&format!(
                    "a unix path or name must be 1 to {MAX_UNIX_NAME} bytes without NUL"
                )));
            }
            return Ok(address);
        }
        if let Some(rest) = text.strip_prefix("tcp:") {
            if let Ok(addr) = rest.parse::<SocketAddr>() {
                return Ok(Address::Tcp(addr));
            }
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("expected tcp:host:port"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(bad("the host is empty"));
            }
            // IPv4 first, as Python's AF_INET listener and client resolve a host name.
            let all: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
            let pick = all.iter().find(|a| a.is_ipv4()).or(all.first());
            return pick
                .map(|a| Address::Tcp(*a))
                .ok_or_else(|| bad("the host name resolves to no address"));
        }
        Err(bad("expected unix:/path, unix:@name or tcp:host:port"))
    }

    /// The socket file's path, for a [`Address::Unix`] address.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Address::Unix(p) => Some(p),
            _ => None,
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(text: &str) -> Result<Address> {
        Address::parse(text)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Abstract(name) => write!(f, "unix:@{}", String::from_utf8_lossy(name)),
            Address::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// What [`Listener::bind`](super::Listener::bind) and [`Client::connect`](super::Client::connect)
/// accept as an address: an [`Address`] or its text form.
pub trait ToAddress {
    /// The address this names.
    ///
    /// # Errors
    /// As [`Address::parse`].
    fn to_address(&self) -> Result<Address>;
}

impl ToAddress for Address {
    fn to_address(&self) -> Result<Address> {
        Ok(self.clone())
    }
}

impl ToAddress for str {
    fn to_address(&self) -> Result<Address> {
        Address::parse(self)
    }
}

impl ToAddress for String {
    fn to_address(&self) -> Result<Address> {
        Address::parse(self)
    }
}

impl<T: ToAddress + ?Sized> ToAddress for &T {
    fn to_address(&self) -> Result<Address> {
        (**self).to_address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_round_trip_through_text() {
        for text in [
            "unix:/tmp/a.sock",
            "unix:@name",
            "tcp:127.0.0.1:6000",
            "tcp:[::1]:0",
        ] {
            assert_eq!(Address::parse(text).unwrap().to_string(), text);
        }
        assert!(matches!(
            Address::parse("tcp:localhost:7").unwrap(),
            Address::Tcp(a) if a.port() == 7 && a.ip().is_loopback() && a.is_ipv4()
        ));
    }

    #[test]
    fn lc_08_bad_addresses_are_invalid_arguments() {
        let long = format!("unix:/{}", "x".repeat(200));
        for text in [
            "",
            "/tmp/a.sock",
            "pipe:x",
            r"\\.\pipe\x",
            "unix:",
            "unix:@",
            &long,
            "tcp:127.0.0.1",
            "tcp:127.0.0.1:99999",
            "tcp::80",
        ] {
            assert!(
                matches!(Address::parse(text), Err(Error::InvalidArgument(_))),
                "{text:?}"
            );
        }
    }
}
