//! Async forms of the waiting calls of [`Queue`], [`SimpleQueue`] and [`JoinableQueue`]
//! (feature `tokio`). They wait on the queue's eventfd, holding no thread (see
//! `mem::wake`); each attempt is the `try_` form, so a dropped future loses no message: a
//! get either took its message and returned it, or took nothing. A time limit is
//! `tokio::time::timeout` (or `select!`) around them.
#![forbid(unsafe_code)]

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ring::Event;
use super::{JoinableQueue, Queue, SimpleQueue};
use crate::codec::Codec;
use crate::error::{Error, PutError, Result};
use crate::raw::wake::{until, Attempt};

impl<T: Serialize + DeserializeOwned, C: Codec> Queue<T, C> {
    /// Takes the oldest message, awaiting one as long as the queue is empty, without
    /// holding a thread: the async [`Queue::get`]. Cancel-safe: dropped before it returns,
    /// it has taken nothing.
    ///
    /// # Errors
    /// As [`Queue::get`]; [`Error::InvalidState`] outside a tokio runtime; [`Error::Io`]
    /// when no descriptor is left to wait with.
    pub async fn get_async(&self) -> Result<T> {
        let (wake, waiters) = self.ring.async_waiters(Event::NotEmpty);
        until(wake, waiters, || match self.try_get() {
            // `try_get` also says `Empty` when another consumer holds the queue for an
            // instant while messages are there; its release wakes nobody, so look again.
            Err(Error::Empty) if self.ring.len() > 0 => Attempt::Busy,
            Err(Error::Empty) => Attempt::Wait,
            done => Attempt::Done(done),
        })
        .await?
    }

    /// Puts `value`, awaiting room as long as the queue is full, without holding a thread:
    /// the async [`Queue::put`]. Dropped before it returns, it has put nothing (the value
    /// is dropped with the future).
    ///
    /// # Errors
    /// As [`Queue::put`] (the value comes back); [`PutError::Failed`] with
    /// [`Error::InvalidState`] outside a tokio runtime.
    pub async fn put_async(&self, value: T) -> Result<(), PutError<T>> {
        let (wake, waiters) = self.ring.async_waiters(Event::NotFull);
        let mut value = Some(value);
        let waited = until(wake, waiters, || {
            let v = value.take().expect("the value is back after each attempt");
            match self.try_put(v) {
                Err(PutError::Full(v)) => {
                    value = Some(v);
                    // Full also when another producer holds the queue for an instant.
                    if self.is_full() {
                        Attempt::Wait
                    } else {
                        Attempt::Busy
                    }
                }
                done => Attempt::Done(done),
            }
        })
        .await;
        match waited {
            Ok(done) => done,
            Err(e) => Err(PutError::Failed(
                value.take().expect("the value is back after each attempt"),
                e,
            )),
        }
    }
}

impl<T: Serialize + DeserializeOwned, C: Codec> SimpleQueue<T, C> {
    /// The async [`SimpleQueue::get`] (see [`Queue::get_async`]).
    ///
    /// # Errors
    /// As [`Queue::get_async`].
    pub async fn get_async(&self) -> Result<T> {
        self.queue.get_async().await
    }

    /// The async [`SimpleQueue::put`] (see [`Queue::put_async`]).
    ///
    /// # Errors
    /// As [`Queue::put_async`].
    pub async fn put_async(&self, value: T) -> Result<(), PutError<T>> {
        self.queue.put_async(value).await
    }
}

impl<T: Serialize + DeserializeOwned, C: Codec> JoinableQueue<T, C> {
    /// The async [`JoinableQueue::get`] (see [`Queue::get_async`]).
    ///
    /// # Errors
    /// As [`Queue::get_async`].
    pub async fn get_async(&self) -> Result<T> {
        self.queue.get_async().await
    }

    /// The async [`JoinableQueue::put`] (see [`Queue::put_async`]).
    ///
    /// # Errors
    /// As [`Queue::put_async`].
    pub async fn put_async(&self, value: T) -> Result<(), PutError<T>> {
        self.queue.put_async(value).await
    }

    /// Awaits every message put so far being marked done, without holding a thread: the
    /// async [`JoinableQueue::join`].
    ///
    /// # Errors
    /// As [`JoinableQueue::join`]; [`Error::InvalidState`] outside a tokio runtime.
    pub async fn join_async(&self) -> Result<()> {
        let (wake, waiters) = self.queue.ring.async_waiters(Event::AllDone);
        until(wake, waiters, || match self.try_join() {
            Err(Error::WouldBlock) => Attempt::Wait,
            done => Attempt::Done(done),
        })
        .await?
    }
}
