//! A progress bar for long maps (feature `progress`).
#![forbid(unsafe_code)]

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Output, Pool, TaskOutput};
use crate::error::Result;

impl Pool {
    /// [`map`](Pool::map) with a progress bar on the terminal (stderr), advanced as chunks
    /// finish. With feature `progress`.
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    pub fn map_progress<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<Output<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: TaskOutput,
    {
        let items: Vec<A> = items.into_iter().collect();
        let bar = indicatif::ProgressBar::new(items.len() as u64);
        let advance = bar.clone();
        let result = self
            .map_inner(
                f,
                items,
                None,
                None,
                None,
                Some(Arc::new(move |n| advance.inc(n as u64))),
            )?
            .get();
        bar.finish();
        result
    }
}
