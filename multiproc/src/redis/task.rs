//! What travels between a distributed pool and its workers, and the [`Registry`] that
//! turns a function's registered name back into the function.
#![forbid(unsafe_code)]

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pool::call::{apply_all, Fail};
use crate::pool::TaskOutput;

/// One entry of the task stream: a chunk of encoded arguments, the name of the function to
/// apply, and where the caller waits for the answer.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Task {
    /// The caller's id for the chunk (unique within its `reply` list).
    pub(crate) id: u64,
    /// The caller's result list.
    pub(crate) reply: String,
    pub(crate) func: String,
    /// [`fingerprint`] of the function's types, as the caller knows them.
    pub(crate) types: u64,
    /// An encoded `Vec<A>`.
    #[serde(with = "serde_bytes")]
    pub(crate) args: Vec<u8>,
}

/// One entry of a caller's result list.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Done {
    pub(crate) id: u64,
    /// The encoded `Vec<R::Value>`, when `fail` is `None`.
    #[serde(with = "serde_bytes")]
    pub(crate) values: Vec<u8>,
    pub(crate) fail: Option<Fail>,
}

type Runner = Arc<dyn Fn(&[u8], &mut Vec<u8>) -> std::result::Result<(), Fail> + Send + Sync>;

/// The task functions a program offers by name, for a distributed
/// [`Pool`](super::Pool) and its [`Worker`](super::Worker)s.
///
/// Functions travel between machines by name, never by address. The caller and the
/// workers build the same registry (they are normally the same program: one `fn` that
/// returns it, called by `main` in either role). A worker that does not know a name, or
/// knows it with other argument or result types, fails that task with a clear error.
///
/// ```
/// use multiproc::redis::Registry;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let registry = Registry::new().register("square", square);
/// assert!(registry.contains("square"));
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    by_name: HashMap<String, (Runner, u64)>,
    /// Every function item (and closure) has a type of its own: the caller finds the name
    /// by the type. Addresses would not do: one function may have several in one
    /// program (one copy per codegen unit).
    by_type: HashMap<TypeId, (String, u64)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Registry")
            .field("functions", &names)
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds `f`, a function item (`square`, not a `fn` pointer variable) or a closure,
    /// under `name`.
    ///
    /// # Panics
    /// When `name` is already registered (two functions under one name would make the
    /// workers' choice depend on who registered last), or when another function of the
    /// same type is: two `fn` pointers of one signature cannot be told apart; register the
    /// functions by their own names.
    pub fn register<A, R, F>(mut self, name: &str, f: F) -> Registry
    where
        A: Serialize + DeserializeOwned + 'static,
        R: TaskOutput + 'static,
        F: Fn(A) -> R + Send + Sync + 'static,
    {
        assert!(
            !self.by_name.contains_key(name),
            "a task function named {name:?} is already registered"
        );
        let types = fingerprint::<A, R>();
        let previous = self
            .by_type
            .insert(TypeId::of::<F>(), (name.to_string(), types));
        if let Some((other, _)) = previous {
            panic!(
                "{name:?} has the same type as {other:?} ({}): register function items, \
                 not fn pointers",
                std::any::type_name::<F>()
            );
        }
        let run: Runner = Arc::new(move |args, out| apply_all(args, &f, out));
        self.by_name.insert(name.to_string(), (run, types));
        self
    }

    /// Whether a function is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The registered name of `f` (found by its type), and its types' fingerprint.
    pub(crate) fn name_of<A, R, F>(&self, _f: &F) -> Result<(String, u64)>
    where
        F: Fn(A) -> R + 'static,
    {
        self.by_type
            .get(&TypeId::of::<F>())
            .cloned()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "the task function {} is not in the pool's registry: add it with \
                     Registry::register(name, f), in the caller and in the workers",
                    std::any::type_name::<F>()
                ))
            })
    }

    /// Runs `task` here: its values encoded into `out`, or why not.
    pub(crate) fn run(&self, task: &Task, out: &mut Vec<u8>) -> std::result::Result<(), Fail> {
        let Some((run, types)) = self.by_name.get(&task.func) else {
            return Err(Fail::Failed(format!(
                "no task function named {:?} is registered in this worker",
                task.func
            )));
        };
        if *types != task.types {
            return Err(Fail::Codec(format!(
                "the task function {:?} has other argument or result types in this worker \
                 than in the caller (build both from the same source)",
                task.func
            )));
        }
        run(&task.args, out)
    }
}

/// A stable hash of `fn(A) -> R`'s type names (FNV-1a), the same in every build of the
/// same source with the same compiler.
fn fingerprint<A, R>() -> u64 {
    let text = format!(
        "{} -> {}",
        std::any::type_name::<A>(),
        std::any::type_name::<R>()
    );
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Binary, Codec};

    fn double(x: u32) -> u32 {
        x * 2
    }

    fn negate(x: i64) -> i64 {
        -x
    }

    #[test]
    fn a_name_finds_its_function_and_types_are_checked() {
        let reg = Registry::new()
            .register("double", double)
            .register("negate", negate);
        assert_eq!(reg.name_of(&double).unwrap().0, "double");
        assert!(matches!(
            reg.name_of(&(|x: u8| x)),
            Err(Error::InvalidArgument(_))
        ));
        let mut args = Vec::new();
        Binary::encode(&vec![1u32, 2, 3], &mut args).unwrap();
        let (_, types) = reg.name_of(&double).unwrap();
        let mut task = Task {
            id: 1,
            reply: String::new(),
            func: "double".into(),
            types,
            args,
        };
        let mut out = Vec::new();
        reg.run(&task, &mut out).unwrap();
        assert_eq!(Binary::decode::<Vec<u32>>(&out).unwrap(), vec![2, 4, 6]);
        task.types ^= 1;
        assert!(matches!(reg.run(&task, &mut out), Err(Fail::Codec(_))));
        task.func = "missing".into();
        assert!(matches!(reg.run(&task, &mut out), Err(Fail::Failed(_))));
    }

    #[test]
    #[should_panic(expected = "not fn pointers")]
    fn two_fn_pointers_of_one_type_panic() {
        let a: fn(u32) -> u32 = double;
        let b: fn(u32) -> u32 = |x| x;
        let _ = Registry::new().register("a", a).register("b", b);
    }

    #[test]
    #[should_panic(expected = "already registered")]
    fn a_name_twice_panics() {
        let _ = Registry::new().register("f", double).register("f", double);
    }
}
