//! [`Queue`], [`JoinableQueue`] and [`SimpleQueue`] under a name, for processes that are
//! not parent and child: the seed's message
//! queues, done with the same ring as the anonymous queue (same code path, same speed).
//!
//! The name lives in `/dev/shm`, mode 0600, until some process calls [`Queue::unlink`];
//! the queue lives on while any process has it open. Creation is atomic (see
//! `mem::named`): a creator killed midway leaves nothing under the name. A producer or
//! consumer killed mid-`put`/`get` is repaired by the next one, as for every queue (see
//! "Crash safety" on [`Queue`]).
//!
//! The name carries no type: every process must use the same `T` and codec, as every
//! Python process must unpickle what the others put. A message of another type is a
//! codec error at `get`, never undefined behaviour.
#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ring::Ring;
use super::{ring_bound, JoinableQueue, Queue, SimpleQueue};
use crate::codec::Codec;
use crate::error::Result;

impl<T: Serialize + DeserializeOwned, C: Codec> Queue<T, C> {
    /// Creates the queue `name`, holding at most `maxsize` messages (`None`: unbounded).
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// use multiproc::Queue;
    /// let name = format!("doc-queue-{}", std::process::id());
    /// let jobs = Queue::<String>::create(&name, None)?;
    /// // In any process of this user:
    /// let same = Queue::<String>::open(&name)?;
    /// jobs.put("job 1".to_string())?;
    /// assert_eq!(same.get()?, "job 1");
    /// Queue::<String>::unlink(&name)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) of kind `AlreadyExists` when the name is taken;
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for `Some(0)` or a name
    /// that is empty, over 250 bytes, or holds `/` or NUL.
    pub fn create(name: &str, maxsize: Option<usize>) -> Result<Queue<T, C>> {
        let bound = ring_bound(maxsize)?;
        Ok(Queue::with_ring(Ring::create_named(name, bound)?))
    }

    /// Opens the queue `name`, with the bound it was created with.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) of kind `NotFound` when nothing has the name, of kind
    /// `InvalidData` when what has it is not a queue; a bad name as in
    /// [`create`](Queue::create).
    pub fn open(name: &str) -> Result<Queue<T, C>> {
        Ok(Queue::with_ring(Ring::open_named(name)?))
    }

    /// Opens the queue `name`, creating it with `maxsize` if it does not exist (an existing
    /// queue keeps its bound). Of several processes racing to create it, one does and the
    /// others open it.
    ///
    /// # Errors
    /// As [`open`](Queue::open) and [`create`](Queue::create).
    pub fn open_or_create(name: &str, maxsize: Option<usize>) -> Result<Queue<T, C>> {
        let bound = ring_bound(maxsize)?;
        Ok(Queue::with_ring(Ring::open_or_create_named(name, bound)?))
    }

    /// Removes the name `name`; processes that have the queue open keep using it.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) of kind `NotFound` when nothing has the name.
    pub fn unlink(name: &str) -> Result<()> {
        Ring::unlink_named(name)
    }

    fn with_ring(ring: Ring) -> Queue<T, C> {
        Queue {
            ring: Arc::new(ring),
            closed: AtomicBool::new(false),
            _types: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned, C: Codec> JoinableQueue<T, C> {
    /// Creates the joinable queue `name` (see [`Queue::create`]): `task_done` and `join`
    /// work across every process that opens it.
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(name: &str, maxsize: Option<usize>) -> Result<JoinableQueue<T, C>> {
        Ok(JoinableQueue {
            queue: Queue::create(name, maxsize)?,
        })
    }

    /// Opens the joinable queue `name`.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open(name: &str) -> Result<JoinableQueue<T, C>> {
        Ok(JoinableQueue {
            queue: Queue::open(name)?,
        })
    }

    /// Opens the joinable queue `name`, creating it with `maxsize` if it does not exist.
    ///
    /// # Errors
    /// As [`Queue::open_or_create`].
    pub fn open_or_create(name: &str, maxsize: Option<usize>) -> Result<JoinableQueue<T, C>> {
        Ok(JoinableQueue {
            queue: Queue::open_or_create(name, maxsize)?,
        })
    }

    /// Removes the name `name` (see [`Queue::unlink`]).
    ///
    /// # Errors
    /// As [`Queue::unlink`].
    pub fn unlink(name: &str) -> Result<()> {
        Ring::unlink_named(name)
    }
}

impl<T: Serialize + DeserializeOwned, C: Codec> SimpleQueue<T, C> {
    /// Creates the (unbounded) simple queue `name` (see [`Queue::create`]).
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(name: &str) -> Result<SimpleQueue<T, C>> {
        Ok(SimpleQueue {
            queue: Queue::create(name, None)?,
        })
    }

    /// Opens the simple queue `name`.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open(name: &str) -> Result<SimpleQueue<T, C>> {
        Ok(SimpleQueue {
            queue: Queue::open(name)?,
        })
    }

    /// Opens the simple queue `name`, creating it if it does not exist.
    ///
    /// # Errors
    /// As [`Queue::open_or_create`].
    pub fn open_or_create(name: &str) -> Result<SimpleQueue<T, C>> {
        Ok(SimpleQueue {
            queue: Queue::open_or_create(name, None)?,
        })
    }

    /// Removes the name `name` (see [`Queue::unlink`]).
    ///
    /// # Errors
    /// As [`Queue::unlink`].
    pub fn unlink(name: &str) -> Result<()> {
        Ring::unlink_named(name)
    }
}
