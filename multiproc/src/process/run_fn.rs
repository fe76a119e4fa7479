//! [`Process::run_fn`]: a child that runs a plain function on a serde argument, which every
//! start method can run because the function can be found again in a fresh process.
#![forbid(unsafe_code)]

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::entry::Code;
use super::{Process, Run};
use crate::connection::Connection;
use crate::error::Result;

/// A function and its argument: the task [`Process::run_fn`] builds.
///
/// Under [`StartMethod::Fork`](super::StartMethod::Fork) the child calls the function on
/// the argument it inherited; under the other methods the argument travels encoded and the
/// function is found again by its place in the executable.
pub struct RunFn<A, R> {
    f: fn(A) -> R,
    args: A,
}

impl<A, R> fmt::Debug for RunFn<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunFn")
            .field("f", &std::any::type_name::<fn(A) -> R>())
            .finish_non_exhaustive()
    }
}

impl<A, R> Run for RunFn<A, R> {
    type Output = R;

    fn run(self) -> R {
        (self.f)(self.args)
    }
}

/// How a task reaches a child started by exec or by the forkserver: its code's identity,
/// and how to send its argument over the child's control connection.
pub(super) struct Portable<T> {
    pub(super) code: fn(&T) -> Result<Code>,
    pub(super) send_args: fn(T, &mut Connection) -> Result<()>,
}

impl<T> Clone for Portable<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Portable<T> {}

impl<A, R> RunFn<A, R>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    const PORTABLE: Portable<RunFn<A, R>> = Portable {
        code: |task| Code::of(task.f),
        // The argument goes as its own message, after the task's identity; the child's
        // trampoline, which knows `A`, receives it. Handles in it (a Connection, Queue,
        // Lock ...) travel with their descriptors; the parent's copies go with `task`.
        send_args: |task, ctl| ctl.send(&task.args),
    };
}

impl<A, R> Process<RunFn<A, R>>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    /// A process that will run `f(args)`, under any start method.
    ///
    /// `f` is a plain function (or a closure that captures nothing); what it needs comes in
    /// `args`, which travels to the child through serde, and what it returns comes back
    /// through [`Child::join`](super::Child::join). With no start method chosen, the child
    /// is forked while this process has one thread and made by the forkserver once it has
    /// more, so `run_fn` works from a `#[test]`, a tokio program or any threaded program.
    ///
    /// ```
    /// use multiproc::Process;
    ///
    /// fn double(x: u64) -> u64 {
    ///     x * 2
    /// }
    /// # fn main() -> multiproc::Result<()> {
    /// let mut child = Process::run_fn(double, 21).name("doubler").start()?;
    /// assert_eq!(child.join()?, 42);
    /// # Ok(()) }
    /// ```
    ///
    /// A closure that captures a variable is not a `fn` (a fresh process could not find
    /// what it captured), so it does not compile; pass the value as the argument instead:
    ///
    /// ```compile_fail,E0308
    /// let factor = 3;
    /// let child = multiproc::Process::run_fn(|x: u64| x * factor, 14);
    /// ```
    pub fn run_fn(f: fn(A) -> R, args: A) -> Process<RunFn<A, R>> {
        let mut process = Process::new(RunFn { f, args });
        process.portable = Some(RunFn::PORTABLE);
        process
    }
}
