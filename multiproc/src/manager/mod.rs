//! Managers: a server process that owns shared objects (dicts, lists, namespaces, queues,
//! locks, your own types) and typed proxies that reach them from any process.
//!
//! Python's `multiprocessing.Manager()`, with these differences:
//!
//! - **Typed proxies** ([`DictProxy<K, V>`](DictProxy), [`ListProxy<T>`](ListProxy), ...).
//!   Every call is one round trip; bulk forms ([`DictProxy::items`], [`DictProxy::update`],
//!   [`ListProxy::to_vec`], [`ListProxy::extend`]) move many items in one.
//! - **Atomic read-modify-write.** Python's `d['count'] -= 1` reads, then writes: two
//!   processes doing it at once lose updates. [`DictProxy::decrement`],
//!   [`DictProxy::increment`], [`DictProxy::compare_and_swap`] and
//!   [`DictProxy::set_default`] run whole inside the server.
//! - **Reads are copies, proxies are live.** A value read from a managed container is an
//!   owned copy: mutating it changes nothing until it is written back (the type says so:
//!   `get` returns `V`, not a reference). To share a nested container, store a *proxy*
//!   (`DictProxy<String, ListProxy<i32>>`): the proxy read back refers to the same list.
//! - **Thread-safe proxies**: each call takes a pooled connection, so threads share proxies
//!   freely.
//! - **A gone server is an error, never a hang**: after [`Manager::shutdown`], or when the
//!   server died, every call fails at once with [`Error::ManagerGone`].
//!
//! ```
//! use multiproc::{Manager, Process};
//! # fn main() -> multiproc::Result<()> {
//! # if std::fs::read_dir("/proc/self/task")?.count() > 1 { return Ok(()) } // doctests run threaded
//! let manager = Manager::start()?;
//! let d = manager.dict::<String, i64>()?;
//! d.insert(&"count".into(), &1000)?;
//! let child_d = d.clone();
//! let mut child = Process::new(move || {
//!     for _ in 0..10 {
//!         child_d.decrement(&"count".into(), 1).unwrap();
//!     }
//! })
//! .start()?;
//! child.join()?;
//! assert_eq!(d.get(&"count".into())?, Some(990));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
// `Proxied` and `Number` are sealed: their hidden items name crate-private types (the
// handle, the number kind), so no type outside the crate can implement them.
#![allow(private_interfaces)]

mod client;
mod custom;
mod mailbox;
mod protocol;
mod proxy;
mod server;
mod shared_memory;

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::custom::{CustomProxy, Shared};
pub use self::protocol::Number;
pub use self::proxy::{
    ArrayProxy, BarrierProxy, ConditionProxy, DictProxy, EventProxy, ListIter, ListProxy,
    LockProxy, NamespaceProxy, Proxied, QueueProxy, RLockProxy, SemaphoreProxy, SetProxy,
    ValueProxy,
};
pub use self::shared_memory::SharedMemoryManager;

use self::client::{unexpected, Client, Handle};
use self::custom::Factory;
use self::protocol::{encode, Create, Request, Response};
use self::proxy::encode_all;
use self::server::Server;
use crate::connection::{Address, Connection, Listener, ToAddress};
use crate::error::{Error, Result};
use crate::process::{Child, FnRef, Process};
use std::sync::Arc;

/// How long `shutdown` waits for the server to exit before killing it.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A manager: the handle of a server that owns shared objects, and the factory of their
/// proxies. See the [module docs](self).
///
/// The manager that started a server owns it: dropping that manager (or calling
/// [`shutdown`](Self::shutdown)) stops the server, and the server dies with its owner's
/// process even when that process is killed. Give children proxies, not the manager: a
/// manager moved into a child no longer stops the server when dropped (the child is not
/// the server's parent); the server then stops on [`shutdown`](Self::shutdown) or with the
/// owner's process. A manager from [`Manager::connect`] uses a
/// server somebody else owns.
pub struct Manager {
    client: Arc<Client>,
    server: Mutex<Option<Child<()>>>,
    /// The process that started the server: only that process's drop stops it (a forked
    /// child that inherited a copy must not).
    owner: u32,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", self.client.address())
            .field("owner", &self.owns_server())
            .finish()
    }
}

/// Configures a manager before its server starts: [`Manager::builder`].
pub struct ManagerBuilder {
    address: Option<Address>,
    authkey: Option<Vec<u8>>,
    factories: HashMap<String, Factory>,
    initializer: Option<Result<Initializer>>,
}

/// An initializer and its encoded argument, for the server process.
type Initializer = (
    FnRef<protocol::Bytes, std::result::Result<(), String>>,
    protocol::Bytes,
);

/// Runs an initializer in the server: `payload` holds the function's reference and its
/// argument (so one monomorphic entry serves every argument type).
fn run_initializer<A: DeserializeOwned>(
    payload: protocol::Bytes,
) -> std::result::Result<(), String> {
    let (f, arg): (FnRef<A, ()>, A) =
        protocol::decode(&payload).map_err(|e| format!("cannot decode the initializer: {e}"))?;
    let f = f.get().map_err(|e| e.to_string())?;
    f(arg);
    Ok(())
}

impl fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("address", &self.address)
            .field("types", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut out = vec![0; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ManagerBuilder {
    /// Where the server listens (`unix:/path`, `unix:@name`, `tcp:host:port`; see
    /// [`Address`]). By default: a fresh name in the abstract namespace, which leaves no
    /// file behind.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an address that does not parse.
    pub fn address(mut self, address: impl ToAddress) -> Result<Self> {
        self.address = Some(address.to_address()?);
        Ok(self)
    }

    /// The key every client must prove it holds. By default: 32 random bytes.
    pub fn authkey(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// Runs `f(args)` in the server process before it serves anyone (Python's
    /// `start(initializer, initargs)`): to set up logging, signal handling or state of your
    /// own. `f` is a plain function, found again in the server whatever the start method.
    ///
    /// A panic in `f` makes [`start`](Self::start) fail with its message.
    pub fn initializer<A: Serialize + DeserializeOwned>(mut self, f: fn(A), args: A) -> Self {
        let prepared = (|| {
            let payload = encode(&(FnRef::of(f)?, args))?;
            Ok((
                FnRef::of(run_initializer::<A> as fn(protocol::Bytes) -> _)?,
                payload,
            ))
        })();
        self.initializer = Some(prepared);
        self
    }

    /// Lets the server hold objects of the custom type `T` ([`Manager::custom`]), Python's
    /// `BaseManager.register`.
    pub fn register<T: Shared>(mut self) -> Self {
        self.factories
            .insert(T::NAME.to_string(), custom::factory::<T>());
        self
    }

    /// Binds the address and starts the server process.
    ///
    /// Works from any process: the server is started like a [`Process::run_fn`] child, so
    /// it is forked while this process has one thread and comes from the forkserver (or a
    /// spawn, as [`set_start_method`](crate::set_start_method) says) once it has more.
    ///
    /// # Errors
    /// [`Error::Io`] when the address is taken or the server cannot start.
    pub fn start(self) -> Result<Manager> {
        let address = match self.address {
            Some(a) => a,
            None => Address::Abstract(
                format!(
                    "multiproc-manager-{}-{}",
                    std::process::id(),
                    hex(&random_bytes(8)?)
                )
                .into_bytes(),
            ),
        };
        let authkey = match self.authkey {
            Some(k) => k,
            None => random_bytes(32)?,
        };
        let types = self
            .factories
            .into_iter()
            .map(|(name, factory)| Ok((name, FnRef::of(factory)?)))
            .collect::<Result<Vec<_>>>()?;
        let initializer = self.initializer.transpose()?;
        let (ready_tx, mut ready_rx) = crate::connection::pipe()?;
        let args = ServerArgs {
            address: address.to_string(),
            authkey: authkey.clone(),
            types,
            initializer,
            ready: ready_tx,
        };
        let mut child = Process::run_fn(run_server, args)
            .name("manager")
            .daemon(true)
            .start()?;
        // The server reports the address it bound (a TCP port 0 becomes a real port), or
        // why it could not; end of file means it died first.
        let bound =
            match ready_rx.recv_timeout::<std::result::Result<String, NotStarted>>(START_LIMIT) {
                Ok(Ok(bound)) => Address::parse(&bound),
                Ok(Err(NotStarted::Io(why))) => Err(Error::Io(std::io::Error::other(why))),
                Ok(Err(NotStarted::Other(why))) => Err(Error::InvalidArgument(why)),
                Err(e) => Err(Error::Io(std::io::Error::other(format!(
                    "the manager's server did not start: {e}"
                )))),
            };
        let address = match bound {
            Ok(address) => address,
            Err(e) => {
                let _ = child.kill();
                let _ = child.join();
                return Err(e);
            }
        };
        Ok(Manager {
            client: Client::get(&address, &authkey),
            server: Mutex::new(Some(child)),
            owner: std::process::id(),
        })
    }
}

/// Why a server could not start, as it reports it: binding failed, or something else (a
/// custom type or the initializer).
#[derive(serde::Serialize, serde::Deserialize)]
enum NotStarted {
    Io(String),
    Other(String),
}

/// How long [`ManagerBuilder::start`] waits for its server to bind.
const START_LIMIT: Duration = Duration::from_secs(30);

/// What a manager's server process starts from.
#[derive(serde::Serialize, serde::Deserialize)]
struct ServerArgs {
    address: String,
    authkey: Vec<u8>,
    /// The registered custom types and their constructors.
    types: Vec<(String, FnRef<protocol::Bytes, custom::Built>)>,
    initializer: Option<Initializer>,
    /// Where the server reports the address it bound, or why it could not.
    ready: Connection,
}

/// The server process: binds, reports, serves until shutdown.
fn run_server(args: ServerArgs) {
    crate::process::ignore_interrupts();
    let ServerArgs {
        address,
        authkey,
        types,
        initializer,
        mut ready,
    } = args;
    let bound = (|| -> Result<(Listener, HashMap<String, Factory>)> {
        let factories = types
            .into_iter()
            .map(|(name, f)| Ok((name, f.get()?)))
            .collect::<Result<HashMap<_, _>>>()?;
        if let Some((run, payload)) = initializer {
            let run = run.get()?;
            std::panic::catch_unwind(move || run(payload))
                .map_err(|panic| {
                    Error::InvalidArgument(format!(
                        "the manager's initializer panicked: {}",
                        crate::error::panic_message(&*panic)
                    ))
                })?
                .map_err(Error::InvalidArgument)?;
        }
        let mut listener = Listener::bind(Address::parse(&address)?, Some(&authkey))?;
        // A client that never finishes its handshake holds the accept loop up for at most
        // this long.
        listener.set_handshake_timeout(Duration::from_secs(2));
        Ok((listener, factories))
    })();
    match bound {
        Ok((listener, factories)) => {
            let reported = ready.send(&Ok::<String, NotStarted>(listener.local_addr().to_string()));
            drop(ready);
            if reported.is_ok() {
                Server::new(factories).serve(listener);
            }
        }
        Err(e) => {
            let why = match e {
                Error::Io(_) => NotStarted::Io(e.to_string()),
                Error::InvalidArgument(why) => NotStarted::Other(why),
                other => NotStarted::Other(other.to_string()),
            };
            let _ = ready.send(&Err::<String, NotStarted>(why));
        }
    }
}

impl Manager {
    /// Starts a manager with a fresh private address and a random authkey.
    ///
    /// # Errors
    /// As [`ManagerBuilder::start`].
    pub fn start() -> Result<Manager> {
        Manager::builder().start()
    }

    /// A builder for a manager with an address, an authkey or custom types.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder {
            address: None,
            authkey: None,
            factories: HashMap::new(),
            initializer: None,
        }
    }

    /// Starts a server that listens at `address` for clients that hold `authkey` (other
    /// programs reach it with [`Manager::connect`]).
    ///
    /// # Errors
    /// As [`ManagerBuilder::start`].
    pub fn serve(address: impl ToAddress, authkey: &[u8]) -> Result<Manager> {
        Manager::builder()
            .address(address)?
            .authkey(authkey)
            .start()
    }

    /// Connects to a server started elsewhere (by [`Manager::serve`] in another program).
    ///
    /// # Errors
    /// [`Error::Authentication`] for a wrong key; [`Error::ManagerGone`] when nobody
    /// listens at `address`.
    pub fn connect(address: impl ToAddress, authkey: &[u8]) -> Result<Manager> {
        let client = Client::get(&address.to_address()?, authkey);
        // Connect now so that a wrong key or address is reported here.
        let conn = client.connect()?;
        client.give_back(conn);
        Ok(Manager {
            client,
            server: Mutex::new(None),
            owner: std::process::id(),
        })
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        self.client.address()
    }

    /// The key clients must hold.
    pub fn authkey(&self) -> &[u8] {
        self.client.authkey()
    }

    /// The pid of the server process, for the manager that started it.
    pub fn server_pid(&self) -> Option<crate::Pid> {
        self.server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Child::pid)
    }

    fn owns_server(&self) -> bool {
        self.owner == std::process::id()
            && self
                .server
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
    }

    /// Stops the server: every proxy's next call fails with [`Error::ManagerGone`]. A
    /// second call does nothing. On a manager from [`connect`](Self::connect) this asks
    /// the remote server to stop.
    ///
    /// # Errors
    /// [`Error::ManagerGone`] when the server of a connected manager is already gone.
    pub fn shutdown(&self) -> Result<()> {
        let mut server = self.server.lock().unwrap_or_else(|p| p.into_inner());
        if self.client.is_shut_down() {
            return Ok(());
        }
        let asked = self.client.request(&Request::Shutdown);
        self.client.mark_shut_down();
        match server.as_mut() {
            Some(child) => {
                if child.join_timeout(EXIT_GRACE).is_err() && child.is_alive() {
                    let _ = child.kill();
                    let _ = child.join();
                }
                Ok(())
            }
            None => asked.map(drop),
        }
    }

    fn create<P: Proxied>(&self, create: Create) -> Result<P> {
        match self.client.request(&Request::Create(create))? {
            Response::Id(id) => Ok(P::from_handle(Handle {
                client: Arc::clone(&self.client),
                id,
            })),
            Response::Failed(f) => Err(f.into_error(Error::WouldBlock)),
            other => Err(unexpected(other)),
        }
    }

    /// A new empty dict.
    pub fn dict<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned>(
        &self,
    ) -> Result<DictProxy<K, V>> {
        self.create(Create::Dict(Vec::new()))
    }

    /// A new empty set (Python's `manager.set()`).
    pub fn set<T: Serialize + DeserializeOwned>(&self) -> Result<SetProxy<T>> {
        self.create(Create::Set(Vec::new()))
    }

    /// A new set holding `items` (Python's `manager.set(iterable)`); duplicates count once.
    pub fn set_from<'a, T: Serialize + DeserializeOwned + 'a>(
        &self,
        items: impl IntoIterator<Item = &'a T>,
    ) -> Result<SetProxy<T>> {
        self.create(Create::Set(encode_all(items)?))
    }

    /// A new dict holding `entries` (Python's `manager.dict({...})`).
    pub fn dict_from<'a, K, V>(
        &self,
        entries: impl IntoIterator<Item = (&'a K, &'a V)>,
    ) -> Result<DictProxy<K, V>>
    where
        K: Serialize + DeserializeOwned + 'a,
        V: Serialize + DeserializeOwned + 'a,
    {
        let pairs = entries
            .into_iter()
            .map(|(k, v)| Ok((encode(k)?, encode(v)?)))
            .collect::<Result<Vec<_>>>()?;
        self.create(Create::Dict(pairs))
    }

    /// A new empty list.
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>> {
        self.create(Create::List(Vec::new()))
    }

    /// A new list holding `items` (Python's `manager.list([...])`).
    pub fn list_from<'a, T: Serialize + DeserializeOwned + 'a>(
        &self,
        items: impl IntoIterator<Item = &'a T>,
    ) -> Result<ListProxy<T>> {
        self.create(Create::List(encode_all(items)?))
    }

    /// A new namespace.
    pub fn namespace(&self) -> Result<NamespaceProxy> {
        self.create(Create::Namespace)
    }

    /// A new shared value.
    pub fn value<T: Serialize + DeserializeOwned>(&self, value: &T) -> Result<ValueProxy<T>> {
        self.create(Create::Value(encode(value)?))
    }

    /// A new fixed-length array holding `items`.
    pub fn array<'a, T: Serialize + DeserializeOwned + 'a>(
        &self,
        items: impl IntoIterator<Item = &'a T>,
    ) -> Result<ArrayProxy<T>> {
        self.create(Create::Array(encode_all(items)?))
    }

    /// A new unbounded queue.
    pub fn queue<T: Serialize + DeserializeOwned>(&self) -> Result<QueueProxy<T>> {
        self.create(Create::Queue(None))
    }

    /// A new unbounded queue, for `task_done`/`join` (Python's
    /// `manager.JoinableQueue()`): the same as [`queue`](Self::queue), since every managed
    /// queue counts its unfinished items.
    pub fn joinable_queue<T: Serialize + DeserializeOwned>(&self) -> Result<QueueProxy<T>> {
        self.queue()
    }

    /// A new queue that holds at most `max` items.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `max == 0`.
    pub fn bounded_queue<T: Serialize + DeserializeOwned>(
        &self,
        max: usize,
    ) -> Result<QueueProxy<T>> {
        self.create(Create::Queue(Some(max)))
    }

    /// A new lock.
    pub fn lock(&self) -> Result<LockProxy> {
        self.create(Create::Lock)
    }

    /// A new reentrant lock.
    pub fn rlock(&self) -> Result<RLockProxy> {
        self.create(Create::RLock)
    }

    /// A new semaphore with `value` units.
    pub fn semaphore(&self, value: usize) -> Result<SemaphoreProxy> {
        self.create(Create::Semaphore {
            value: value as u64,
            bound: None,
        })
    }

    /// A new semaphore that may never hold more than its initial `value` units.
    pub fn bounded_semaphore(&self, value: usize) -> Result<SemaphoreProxy> {
        self.create(Create::Semaphore {
            value: value as u64,
            bound: Some(value as u64),
        })
    }

    /// A new condition, with its own lock.
    pub fn condition(&self) -> Result<ConditionProxy> {
        self.create(Create::Condition)
    }

    /// A new event.
    pub fn event(&self) -> Result<EventProxy> {
        self.create(Create::Event)
    }

    /// A new barrier for `parties` parties.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `parties == 0`.
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy> {
        self.create(Create::Barrier(parties))
    }

    /// A new object of a custom type registered with
    /// [`ManagerBuilder::register`] (on the server's side).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the server knows no type of that name;
    /// [`Error::Remote`] when its `new` failed.
    pub fn custom<T: Shared>(&self, init: &T::Init) -> Result<CustomProxy<T>> {
        self.create(Create::Custom(T::NAME.to_string(), encode(init)?))
    }

    /// Names an object, so that other programs connected to this server can
    /// [`lookup`](Self::lookup) it.
    pub fn publish<P: Proxied>(&self, name: &str, proxy: &P) -> Result<()> {
        let handle = proxy.handle();
        match self
            .client
            .request(&Request::Publish(name.into(), handle.id, P::KIND))?
        {
            Response::Unit => Ok(()),
            Response::Failed(f) => Err(f.into_error(Error::WouldBlock)),
            other => Err(unexpected(other)),
        }
    }

    /// The object published under `name`, as a proxy of type `P`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when nothing is published under that name, or it is of
    /// another kind (a list looked up as a dict). Type parameters are not checked: a
    /// `DictProxy<String, i64>` looked up as `DictProxy<String, String>` fails at its
    /// first read with [`Error::Codec`].
    pub fn lookup<P: Proxied>(&self, name: &str) -> Result<P> {
        match self.client.request(&Request::Lookup(name.into()))? {
            Response::Object(id, kind) if kind == P::KIND => Ok(P::from_handle(Handle {
                client: Arc::clone(&self.client),
                id,
            })),
            Response::Object(_, kind) => Err(Error::InvalidArgument(format!(
                "{name:?} is a {kind:?}, not a {:?}",
                P::KIND
            ))),
            Response::Failed(f) => Err(f.into_error(Error::WouldBlock)),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) fn client(&self) -> &Arc<Client> {
        &self.client
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        // A manager moved into a child is dropped in the parent as the child starts: that
        // drop must not stop the server the child goes on using. Such a server then stops
        // on an explicit `shutdown` or with the owner's process.
        if self.owns_server() && !crate::fd::registry::is_recording() {
            let _ = self.shutdown();
        }
    }
}
