//! The typed proxies of the built-in shared objects.
//!
//! A proxy is a cheap handle (see [`client`](super::client)): cloning one, sending one
//! through a connection or storing one in another managed container refers to the same
//! server-side object. Values are stored in the server as their encoded bytes, so every
//! read returns an owned copy: changing it changes nothing shared until it is written back.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client::{owner_token, unexpected, Handle};
use super::protocol::{decode, encode, Bytes, Failure, Kind, Number, Op, Response, Wait};
use crate::error::{Error, PutError, Result};

/// What every proxy type shares: its kind and its handle.
pub trait Proxied: Serialize + DeserializeOwned {
    #[doc(hidden)]
    const KIND: Kind;
    #[doc(hidden)]
    fn from_handle(handle: Handle) -> Self;
    #[doc(hidden)]
    fn handle(&self) -> &Handle;
}

macro_rules! proxy {
    ($(#[$doc:meta])* $name:ident <$($t:ident),*>, $kind:ident) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize)]
        #[serde(bound = "")]
        pub struct $name<$($t = ()),*> {
            handle: Handle,
            #[serde(skip)]
            _type: PhantomData<fn() -> ($($t,)*)>,
        }

        impl<$($t),*> fmt::Debug for $name<$($t),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("object", &self.handle).finish()
            }
        }

        impl<$($t),*> Clone for $name<$($t),*> {
            fn clone(&self) -> Self {
                $name { handle: self.handle.clone(), _type: PhantomData }
            }
        }

        impl<$($t),*> Proxied for $name<$($t),*> {
            const KIND: Kind = Kind::$kind;
            fn from_handle(handle: Handle) -> Self {
                $name { handle, _type: PhantomData }
            }
            fn handle(&self) -> &Handle {
                &self.handle
            }
        }
    };
}

fn value<T: DeserializeOwned>(r: Response) -> Result<Option<T>> {
    match r {
        Response::Value(v) => v.map(|b| decode(&b)).transpose(),
        other => Err(unexpected(other)),
    }
}

fn some<T: DeserializeOwned>(r: Response) -> Result<T> {
    value(r)?.ok_or_else(|| Error::protocol("the manager answered no value"))
}

fn values<T: DeserializeOwned>(r: Response) -> Result<Vec<T>> {
    match r {
        Response::Values(vs) => vs.iter().map(|b| decode(b)).collect(),
        other => Err(unexpected(other)),
    }
}

fn count(r: Response) -> Result<usize> {
    match r {
        Response::Count(n) => usize::try_from(n).map_err(|_| Error::protocol("count too large")),
        other => Err(unexpected(other)),
    }
}

fn boolean(r: Response) -> Result<bool> {
    match r {
        Response::Bool(b) => Ok(b),
        other => Err(unexpected(other)),
    }
}

fn unit(r: Response) -> Result<()> {
    match r {
        Response::Unit => Ok(()),
        other => Err(unexpected(other)),
    }
}

fn added<T: DeserializeOwned>(r: Response) -> Result<(T, T)> {
    match r {
        Response::Added(old, new) => Ok((decode(&old)?, decode(&new)?)),
        other => Err(unexpected(other)),
    }
}

fn wait_for(timeout: Duration) -> Wait {
    Wait::For(timeout)
}

fn wait_until(deadline: Instant) -> Wait {
    Wait::For(deadline.saturating_duration_since(Instant::now()))
}

proxy! {
    /// A dict in the manager's server: Python's `Manager().dict()`, with typed keys and
    /// values. Keys keep their insertion order.
    ///
    /// Keys are compared by their encoding, so two keys are the same when they encode the
    /// same (true for every usual key type; not for a `HashMap` inside a key).
    ///
    /// Read-modify-write from several processes (`d['count'] -= 1` in Python, which reads,
    /// then writes, and loses updates when two processes interleave) has atomic forms here:
    /// [`increment`](Self::increment), [`fetch_add`](Self::fetch_add),
    /// [`compare_and_swap`](Self::compare_and_swap) and [`set_default`](Self::set_default)
    /// run whole inside the server.
    DictProxy<K, V>, Dict
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// Inserts a value; returns the value it replaced.
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>> {
        value_of(self.handle.call(Op::Insert(encode(key)?, encode(value)?))?)
    }

    /// A copy of the value under `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        value_of(self.handle.call(Op::Get(encode(key)?))?)
    }

    /// Removes the key; returns its value.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        value_of(self.handle.call(Op::Remove(encode(key)?))?)
    }

    /// Whether the key is present.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        boolean(self.handle.call(Op::ContainsKey(encode(key)?))?)
    }

    /// The number of entries.
    pub fn len(&self) -> Result<usize> {
        count(self.handle.call(Op::Len)?)
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The keys, in insertion order (one round trip).
    pub fn keys(&self) -> Result<Vec<K>> {
        values(self.handle.call(Op::Keys)?)
    }

    /// The values, in insertion order (one round trip).
    pub fn values(&self) -> Result<Vec<V>> {
        values(self.handle.call(Op::Values)?)
    }

    /// The entries, in insertion order (one round trip): Python's `d.items()` / `d.copy()`.
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        match self.handle.call(Op::Items)? {
            Response::Pairs(ps) => ps
                .iter()
                .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
                .collect(),
            other => Err(unexpected(other)),
        }
    }

    /// A copy of the whole dict (one round trip).
    pub fn to_map(&self) -> Result<HashMap<K, V>>
    where
        K: Eq + Hash,
    {
        Ok(self.items()?.into_iter().collect())
    }

    /// Inserts every entry, atomically and in one round trip.
    pub fn update<'a>(&self, entries: impl IntoIterator<Item = (&'a K, &'a V)>) -> Result<()>
    where
        K: 'a,
        V: 'a,
    {
        let pairs = entries
            .into_iter()
            .map(|(k, v)| Ok((encode(k)?, encode(v)?)))
            .collect::<Result<Vec<_>>>()?;
        unit(self.handle.call(Op::Update(pairs))?)
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<()> {
        unit(self.handle.call(Op::Clear)?)
    }

    /// Removes and returns the entry inserted last (Python's `popitem`); `None` when the
    /// dict is empty.
    pub fn pop_item(&self) -> Result<Option<(K, V)>> {
        match self.handle.call(Op::PopLast)? {
            Response::Pairs(ps) => match ps.first() {
                Some((k, v)) => Ok(Some((decode(k)?, decode(v)?))),
                None => Ok(None),
            },
            other => Err(unexpected(other)),
        }
    }

    /// Inserts `value` if `key` is absent; returns the value now stored (Python's
    /// `setdefault`, Rust's `entry(key).or_insert(value)`), atomically.
    pub fn set_default(&self, key: &K, value: &V) -> Result<V> {
        some(
            self.handle
                .call(Op::SetDefault(encode(key)?, encode(value)?))?,
        )
    }

    /// Replaces the value under `key` with `new` if it is `current` (`None`: if the key is
    /// absent), atomically. `Ok(())` when it swapped; otherwise `Err` with the value found.
    pub fn compare_and_swap(
        &self,
        key: &K,
        current: Option<&V>,
        new: &V,
    ) -> Result<std::result::Result<(), Option<V>>> {
        let current = current.map(encode).transpose()?;
        match self
            .handle
            .call(Op::CompareAndSwap(encode(key)?, current, encode(new)?))?
        {
            Response::Swapped(true, _) => Ok(Ok(())),
            Response::Swapped(false, found) => Ok(Err(found.map(|b| decode(&b)).transpose()?)),
            other => Err(unexpected(other)),
        }
    }
}

fn value_of<V: DeserializeOwned>(r: Response) -> Result<Option<V>> {
    value(r)
}

impl<K: Serialize + DeserializeOwned, V: Number> DictProxy<K, V> {
    /// Adds `delta` to the value under `key` inside the server and returns the new value:
    /// the atomic `d[key] += delta`. No update is lost however many processes do it at once.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the key is absent or the sum overflows.
    pub fn increment(&self, key: &K, delta: V) -> Result<V> {
        Ok(self.add(key, delta, false)?.1)
    }

    /// Subtracts `delta` inside the server and returns the new value: the atomic
    /// `d[key] -= delta`.
    ///
    /// # Errors
    /// As [`increment`](Self::increment).
    pub fn decrement(&self, key: &K, delta: V) -> Result<V> {
        Ok(self.add(key, delta, true)?.1)
    }

    /// Adds `delta` inside the server and returns the value before.
    ///
    /// # Errors
    /// As [`increment`](Self::increment).
    pub fn fetch_add(&self, key: &K, delta: V) -> Result<V> {
        Ok(self.add(key, delta, false)?.0)
    }

    fn add(&self, key: &K, delta: V, sub: bool) -> Result<(V, V)> {
        added(
            self.handle
                .call(Op::Add(encode(key)?, V::KIND, encode(&delta)?, sub))?,
        )
    }
}

proxy! {
    /// A list in the manager's server: Python's `Manager().list()`, with typed items.
    ListProxy<T>, List
}

fn range_of(range: impl RangeBounds<usize>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s as u64,
        Bound::Excluded(&s) => s as u64 + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e as u64 + 1,
        Bound::Excluded(&e) => e as u64,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Appends an item (Python's `append`).
    pub fn push(&self, item: &T) -> Result<()> {
        unit(self.handle.call(Op::Push(encode(item)?))?)
    }

    /// Removes and returns the last item; `None` when the list is empty.
    pub fn pop(&self) -> Result<Option<T>> {
        value(self.handle.call(Op::Pop)?)
    }

    /// A copy of the item at `index`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `index` is out of range (Python's `IndexError`).
    pub fn get(&self, index: usize) -> Result<T> {
        some(self.handle.call(Op::At(index as u64))?)
    }

    /// Replaces the item at `index`; returns the old one.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn set(&self, index: usize, item: &T) -> Result<T> {
        some(self.handle.call(Op::SetAt(index as u64, encode(item)?))?)
    }

    /// Inserts an item before `index` (`index == len` appends).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `index > len`.
    pub fn insert(&self, index: usize, item: &T) -> Result<()> {
        unit(
            self.handle
                .call(Op::InsertAt(index as u64, encode(item)?))?,
        )
    }

    /// Removes and returns the item at `index`.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn remove(&self, index: usize) -> Result<T> {
        some(self.handle.call(Op::RemoveAt(index as u64))?)
    }

    /// The number of items.
    pub fn len(&self) -> Result<usize> {
        count(self.handle.call(Op::Len)?)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Appends every item, atomically and in one round trip.
    pub fn extend<'a>(&self, items: impl IntoIterator<Item = &'a T>) -> Result<()>
    where
        T: 'a,
    {
        let items = items.into_iter().map(encode).collect::<Result<Vec<_>>>()?;
        unit(self.handle.call(Op::Extend(items))?)
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<()> {
        unit(self.handle.call(Op::Clear)?)
    }

    /// A copy of the whole list (one round trip): Python's `l[:]`.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.slice(..)
    }

    /// A copy of the items in `range`, clipped to the list as Python's `l[2:10]` is.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>> {
        let (start, end) = range_of(range);
        values(self.handle.call(Op::Slice(start, end))?)
    }

    /// Iterates the list by index, one round trip per item, as Python's iteration of a list
    /// proxy does: a write made during the iteration is seen by the items not yet reached,
    /// and the iteration ends at the list's end at that moment. For a snapshot in one round
    /// trip, take [`to_vec`](Self::to_vec).
    pub fn iter(&self) -> ListIter<'_, T> {
        ListIter {
            list: self,
            next: 0,
            done: false,
        }
    }
}

/// The iterator of [`ListProxy::iter`]: `Ok` items until the list's end, then `None`; an
/// error (the server gone) is given once and ends the iteration.
#[derive(Debug)]
pub struct ListIter<'a, T> {
    list: &'a ListProxy<T>,
    next: u64,
    done: bool,
}

impl<T: Serialize + DeserializeOwned> Iterator for ListIter<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        // A one-item slice is empty past the end, where `At` would be an index error.
        let item = (self.list.handle)
            .call(Op::Slice(self.next, self.next + 1))
            .and_then(values::<T>);
        match item {
            Ok(mut one) => match one.pop() {
                Some(v) => {
                    self.next += 1;
                    Some(Ok(v))
                }
                None => {
                    self.done = true;
                    None
                }
            },
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<T: Number> ListProxy<T> {
    /// Adds `delta` to the item at `index` inside the server; returns the new value.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an index out of range or an overflow.
    pub fn increment(&self, index: usize, delta: T) -> Result<T> {
        Ok(added::<T>(self.handle.call(Op::AddAt(
            index as u64,
            T::KIND,
            encode(&delta)?,
            false,
        ))?)?
        .1)
    }
}

proxy! {
    /// A fixed-length array in the manager's server: Python's `Manager().Array(...)`.
    ArrayProxy<T>, Array
}

impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    /// A copy of the item at `index`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `index` is out of range.
    pub fn get(&self, index: usize) -> Result<T> {
        some(self.handle.call(Op::At(index as u64))?)
    }

    /// Replaces the item at `index`; returns the old one.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn set(&self, index: usize, item: &T) -> Result<T> {
        some(self.handle.call(Op::SetAt(index as u64, encode(item)?))?)
    }

    /// The length.
    pub fn len(&self) -> Result<usize> {
        count(self.handle.call(Op::Len)?)
    }

    /// Whether the array has no items.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A copy of the whole array (one round trip).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        values(self.handle.call(Op::Slice(0, u64::MAX))?)
    }
}

impl<T: Number> ArrayProxy<T> {
    /// Adds `delta` to the item at `index` inside the server; returns the new value.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an index out of range or an overflow.
    pub fn increment(&self, index: usize, delta: T) -> Result<T> {
        Ok(added::<T>(self.handle.call(Op::AddAt(
            index as u64,
            T::KIND,
            encode(&delta)?,
            false,
        ))?)?
        .1)
    }
}

proxy! {
    /// A namespace in the manager's server: named attributes of any serde type (Python's
    /// `Manager().Namespace()`; `ns.x = 1` is `ns.set("x", &1)`).
    NamespaceProxy<>, Namespace
}

impl NamespaceProxy {
    /// Sets an attribute.
    pub fn set<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        self.handle
            .call(Op::Insert(encode(name)?, encode(value)?))
            .map(drop)
    }

    /// A copy of an attribute; `None` when it is not set (Python's `AttributeError`).
    ///
    /// # Errors
    /// [`Error::Codec`] when the attribute holds a value of another type.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        value(self.handle.call(Op::Get(encode(name)?))?)
    }

    /// Deletes an attribute; `true` if it was set.
    pub fn remove(&self, name: &str) -> Result<bool> {
        match self.handle.call(Op::Remove(encode(name)?))? {
            Response::Value(v) => Ok(v.is_some()),
            other => Err(unexpected(other)),
        }
    }

    /// Whether an attribute is set (Python's `hasattr`).
    pub fn contains(&self, name: &str) -> Result<bool> {
        boolean(self.handle.call(Op::ContainsKey(encode(name)?))?)
    }

    /// The names of the attributes that are set, in the order they were first set.
    pub fn names(&self) -> Result<Vec<String>> {
        values(self.handle.call(Op::Keys)?)
    }
}

proxy! {
    /// One value in the manager's server: Python's `Manager().Value(typecode, v)`.
    ValueProxy<T>, Value
}

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// A copy of the value (Python's `.value` / `get()`).
    pub fn get(&self) -> Result<T> {
        some(self.handle.call(Op::Get(Vec::new()))?)
    }

    /// Replaces the value; returns the old one.
    pub fn set(&self, value: &T) -> Result<T> {
        some(self.handle.call(Op::Insert(Vec::new(), encode(value)?))?)
    }

    /// Replaces the value with `new` if it is `current`, atomically; otherwise `Err` with
    /// the value found.
    pub fn compare_and_swap(&self, current: &T, new: &T) -> Result<std::result::Result<(), T>> {
        match self.handle.call(Op::CompareAndSwap(
            Vec::new(),
            Some(encode(current)?),
            encode(new)?,
        ))? {
            Response::Swapped(true, _) => Ok(Ok(())),
            Response::Swapped(false, Some(found)) => Ok(Err(decode(&found)?)),
            other => Err(unexpected(other)),
        }
    }
}

impl<T: Number> ValueProxy<T> {
    /// Adds `delta` inside the server; returns the value before (atomic).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on overflow.
    pub fn fetch_add(&self, delta: T) -> Result<T> {
        Ok(added::<T>(
            self.handle
                .call(Op::Add(Vec::new(), T::KIND, encode(&delta)?, false))?,
        )?
        .0)
    }

    /// Subtracts `delta` inside the server; returns the value before (atomic).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on overflow.
    pub fn fetch_sub(&self, delta: T) -> Result<T> {
        Ok(added::<T>(
            self.handle
                .call(Op::Add(Vec::new(), T::KIND, encode(&delta)?, true))?,
        )?
        .0)
    }
}

proxy! {
    /// A FIFO queue in the manager's server: Python's `Manager().Queue(maxsize)`.
    ///
    /// Every managed queue is also joinable, as Python's `queue.Queue` (and so
    /// `Manager().JoinableQueue()`) is: each item put counts as unfinished until a consumer
    /// calls [`task_done`](Self::task_done), and [`join`](Self::join) waits for none to be
    /// left.
    QueueProxy<T>, Queue
}

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    fn put_with(&self, item: T, wait: Wait) -> std::result::Result<(), PutError<T>> {
        let bytes = match encode(&item) {
            Ok(b) => b,
            Err(e) => return Err(PutError::Failed(item, e)),
        };
        match self.handle.call_raw(Op::Put(bytes, wait)) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(Failure::WouldBlock)) => Err(PutError::Full(item)),
            Ok(Err(Failure::Timeout)) => Err(PutError::Timeout(item)),
            Ok(Err(f)) => Err(PutError::Failed(item, f.into_error(Error::Full))),
            Err(e) => Err(PutError::Failed(item, e)),
        }
    }

    /// Puts an item, waiting for room in a bounded queue.
    ///
    /// # Errors
    /// [`PutError::Failed`] (with the item) when the server is gone.
    pub fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.put_with(item, Wait::Forever)
    }

    /// Puts an item if there is room now; [`PutError::Full`] otherwise.
    ///
    /// # Errors
    /// [`PutError::Full`] with the item; as [`put`](Self::put).
    pub fn try_put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.put_with(item, Wait::Try)
    }

    /// Puts an item, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`PutError::Timeout`] with the item; as [`put`](Self::put).
    pub fn put_timeout(&self, item: T, timeout: Duration) -> std::result::Result<(), PutError<T>> {
        self.put_with(item, wait_for(timeout))
    }

    /// Puts an item, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`put_timeout`](Self::put_timeout).
    pub fn put_deadline(&self, item: T, deadline: Instant) -> std::result::Result<(), PutError<T>> {
        self.put_with(item, wait_until(deadline))
    }

    fn get_with(&self, wait: Wait) -> Result<T> {
        some(self.handle.call_or(Op::Take(wait), Error::Empty)?)
    }

    /// Takes the oldest item, waiting for one.
    pub fn get(&self) -> Result<T> {
        self.get_with(Wait::Forever)
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    /// [`Error::Empty`] when there is none.
    pub fn try_get(&self) -> Result<T> {
        self.get_with(Wait::Try)
    }

    /// Takes the oldest item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none came in time.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_with(wait_for(timeout))
    }

    /// Takes the oldest item, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`get_timeout`](Self::get_timeout).
    pub fn get_deadline(&self, deadline: Instant) -> Result<T> {
        self.get_with(wait_until(deadline))
    }

    /// The number of items in the queue.
    pub fn qsize(&self) -> Result<usize> {
        count(self.handle.call(Op::QSize)?)
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.qsize()? == 0)
    }

    /// Whether a bounded queue is full.
    pub fn is_full(&self) -> Result<bool> {
        let max = count(self.handle.call(Op::MaxSize)?)?;
        Ok(max != 0 && self.qsize()? >= max)
    }

    /// Marks one item taken earlier as finished.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when called more times than items were put (Python's
    /// `ValueError`).
    pub fn task_done(&self) -> Result<()> {
        unit(self.handle.call(Op::TaskDone)?)
    }

    /// Waits until every item put has been marked finished.
    pub fn join(&self) -> Result<()> {
        unit(self.handle.call(Op::JoinTasks(Wait::Forever))?)
    }

    /// Whether every item put has been marked finished, without waiting.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] while some are unfinished.
    pub fn try_join(&self) -> Result<()> {
        unit(self.handle.call(Op::JoinTasks(Wait::Try))?)
    }

    /// Waits at most `timeout` for every item put to be marked finished.
    ///
    /// # Errors
    /// [`Error::Timeout`] when some are still unfinished then.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        unit(self.handle.call(Op::JoinTasks(wait_for(timeout)))?)
    }

    /// Waits until `deadline` at most for every item put to be marked finished.
    ///
    /// # Errors
    /// As [`join_timeout`](Self::join_timeout).
    pub fn join_deadline(&self, deadline: Instant) -> Result<()> {
        unit(self.handle.call(Op::JoinTasks(wait_until(deadline)))?)
    }
}

proxy! {
    /// A set in the manager's server: Python's `Manager().set()`. Items are compared by
    /// their encoding, like a managed dict's keys, and keep their insertion order.
    ///
    /// Set algebra (union, intersection, ...) is done on a copy:
    /// [`to_vec`](Self::to_vec) in one round trip, then `HashSet`/`BTreeSet`.
    SetProxy<T>, Set
}

impl<T: Serialize + DeserializeOwned> SetProxy<T> {
    /// Adds an item; returns whether it was absent (as `HashSet::insert`).
    pub fn insert(&self, item: &T) -> Result<bool> {
        Ok(value::<()>(self.handle.call(Op::Insert(encode(item)?, Vec::new()))?)?.is_none())
    }

    /// Removes an item; returns whether it was present (Python's `discard`; its `remove`
    /// is `remove(..)` with an error for `false`).
    pub fn remove(&self, item: &T) -> Result<bool> {
        Ok(value::<()>(self.handle.call(Op::Remove(encode(item)?))?)?.is_some())
    }

    /// Whether the item is in the set.
    pub fn contains(&self, item: &T) -> Result<bool> {
        boolean(self.handle.call(Op::ContainsKey(encode(item)?))?)
    }

    /// The number of items.
    pub fn len(&self) -> Result<usize> {
        count(self.handle.call(Op::Len)?)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes and returns the item added last; `None` when the set is empty.
    pub fn pop(&self) -> Result<Option<T>> {
        match self.handle.call(Op::PopLast)? {
            Response::Pairs(ps) => ps.first().map(|(k, _)| decode(k)).transpose(),
            other => Err(unexpected(other)),
        }
    }

    /// Adds every item, atomically and in one round trip (Python's `update`, `|=`).
    pub fn extend<'a>(&self, items: impl IntoIterator<Item = &'a T>) -> Result<()>
    where
        T: 'a,
    {
        let pairs = items
            .into_iter()
            .map(|i| Ok((encode(i)?, Vec::new())))
            .collect::<Result<Vec<_>>>()?;
        unit(self.handle.call(Op::Update(pairs))?)
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<()> {
        unit(self.handle.call(Op::Clear)?)
    }

    /// A copy of the items, in insertion order (one round trip).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        values(self.handle.call(Op::Keys)?)
    }
}

macro_rules! acquire_family {
    ($op:expr) => {
        /// Acquires, waiting as long as it takes.
        pub fn acquire(&self) -> Result<()> {
            unit(self.handle.call(($op)(Wait::Forever))?)
        }

        /// Acquires if that is possible now.
        ///
        /// # Errors
        /// [`Error::WouldBlock`] when it is not.
        pub fn try_acquire(&self) -> Result<()> {
            unit(self.handle.call(($op)(Wait::Try))?)
        }

        /// Acquires, waiting at most `timeout`.
        ///
        /// # Errors
        /// [`Error::Timeout`] when the time ran out.
        pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
            unit(self.handle.call(($op)(wait_for(timeout)))?)
        }

        /// Acquires, waiting until `deadline` at most.
        ///
        /// # Errors
        /// [`Error::Timeout`] when the time ran out.
        pub fn acquire_deadline(&self, deadline: Instant) -> Result<()> {
            unit(self.handle.call(($op)(wait_until(deadline)))?)
        }
    };
}

proxy! {
    /// A lock in the manager's server: Python's `Manager().Lock()`. As in Python it has no
    /// owner: a process may release a lock another one acquired (releasing an unlocked lock
    /// is [`Error::InvalidState`]).
    LockProxy<>, Lock
}

impl LockProxy {
    acquire_family!(Op::Acquire);

    /// Releases the lock.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when it is not locked.
    pub fn release(&self) -> Result<()> {
        unit(self.handle.call(Op::Release)?)
    }

    /// Whether the lock is held by someone.
    pub fn is_locked(&self) -> Result<bool> {
        boolean(self.handle.call(Op::IsLocked)?)
    }
}

proxy! {
    /// A reentrant lock in the manager's server: Python's `Manager().RLock()`. Its owner is
    /// the calling thread of the calling process.
    RLockProxy<>, RLock
}

impl RLockProxy {
    acquire_family!(|w| Op::OwnedAcquire(owner_token(), w));

    /// Releases one level of this thread's hold.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when this thread does not hold it.
    pub fn release(&self) -> Result<()> {
        unit(self.handle.call(Op::OwnedRelease(owner_token()))?)
    }
}

proxy! {
    /// A semaphore in the manager's server: Python's `Manager().Semaphore(n)` and
    /// `BoundedSemaphore(n)`.
    SemaphoreProxy<>, Semaphore
}

impl SemaphoreProxy {
    acquire_family!(Op::Acquire);

    /// Releases one unit.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a bounded semaphore would go above its bound.
    pub fn release(&self) -> Result<()> {
        unit(self.handle.call(Op::Release)?)
    }

    /// The current value.
    pub fn value(&self) -> Result<usize> {
        count(self.handle.call(Op::SemValue)?)
    }
}

proxy! {
    /// A condition in the manager's server, with its own lock: Python's
    /// `Manager().Condition()`.
    ConditionProxy<>, Condition
}

impl ConditionProxy {
    acquire_family!(Op::Acquire);

    /// Releases the condition's lock.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when it is not locked.
    pub fn release(&self) -> Result<()> {
        unit(self.handle.call(Op::Release)?)
    }

    /// Releases the lock, waits for a notification, takes the lock back.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when the lock is not held.
    pub fn wait(&self) -> Result<()> {
        unit(self.handle.call(Op::CondWait(Wait::Forever))?)
    }

    /// As [`wait`](Self::wait), for at most `timeout`. The lock is held again either way.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no notification came in time.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        unit(self.handle.call(Op::CondWait(wait_for(timeout)))?)
    }

    /// As [`wait_timeout`](Self::wait_timeout), until `deadline`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no notification came in time.
    pub fn wait_deadline(&self, deadline: Instant) -> Result<()> {
        unit(self.handle.call(Op::CondWait(wait_until(deadline)))?)
    }

    /// Wakes up to `n` waiters.
    pub fn notify(&self, n: usize) -> Result<()> {
        unit(self.handle.call(Op::Notify(n as u64))?)
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) -> Result<()> {
        unit(self.handle.call(Op::NotifyAll)?)
    }
}

proxy! {
    /// An event in the manager's server: Python's `Manager().Event()`.
    EventProxy<>, Event
}

impl EventProxy {
    /// Sets the flag and wakes every waiter.
    pub fn set(&self) -> Result<()> {
        unit(self.handle.call(Op::Set)?)
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<()> {
        unit(self.handle.call(Op::Unset)?)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool> {
        boolean(self.handle.call(Op::IsSet)?)
    }

    /// Waits until the flag is set.
    pub fn wait(&self) -> Result<()> {
        unit(self.handle.call(Op::EventWait(Wait::Forever))?)
    }

    /// Waits at most `timeout` for the flag.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it was not set in time.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        unit(self.handle.call(Op::EventWait(wait_for(timeout)))?)
    }

    /// Waits until `deadline` at most for the flag.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it was not set in time.
    pub fn wait_deadline(&self, deadline: Instant) -> Result<()> {
        unit(self.handle.call(Op::EventWait(wait_until(deadline)))?)
    }
}

proxy! {
    /// A barrier in the manager's server: Python's `Manager().Barrier(parties)`.
    BarrierProxy<>, Barrier
}

impl BarrierProxy {
    /// Waits for every party; returns this party's arrival index (0 to parties - 1).
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken.
    pub fn wait(&self) -> Result<usize> {
        count(self.handle.call(Op::BarrierWait(Wait::Forever))?)
    }

    /// As [`wait`](Self::wait), for at most `timeout`; giving up breaks the barrier for
    /// the others, as in Python.
    ///
    /// # Errors
    /// [`Error::Timeout`]; [`Error::BrokenBarrier`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        count(self.handle.call(Op::BarrierWait(wait_for(timeout)))?)
    }

    /// Breaks the barrier: present and future waiters get [`Error::BrokenBarrier`].
    pub fn abort(&self) -> Result<()> {
        unit(self.handle.call(Op::Abort)?)
    }

    /// Back to the initial state; present waiters get [`Error::BrokenBarrier`].
    pub fn reset(&self) -> Result<()> {
        unit(self.handle.call(Op::Reset)?)
    }

    /// The number of parties.
    pub fn parties(&self) -> Result<usize> {
        count(self.handle.call(Op::Parties)?)
    }

    /// How many parties wait now.
    pub fn n_waiting(&self) -> Result<usize> {
        count(self.handle.call(Op::NWaiting)?)
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> Result<bool> {
        boolean(self.handle.call(Op::IsBroken)?)
    }
}

/// Encodes a list of items (helper of the constructors).
pub(crate) fn encode_all<'a, T: Serialize + 'a>(
    items: impl IntoIterator<Item = &'a T>,
) -> Result<Vec<Bytes>> {
    items.into_iter().map(encode).collect()
}
