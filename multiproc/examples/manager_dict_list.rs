//! Seed 002's manager: a dict, a list and a value served by a `Manager`, changed and read by
//! a child, printed by the parent.
//!
//! The Python program it mirrors:
//!
//! ```python
//! from multiprocessing import Process, Manager
//!
//! def fn(dic, li, a):
//!     dic['count'] -= 1                      # a read, then a write: racy with two children
//!     print("子进程-->a", a.value)
//!     print("子进程-->li", li)
//!
//! if __name__ == '__main__':
//!     with Manager() as manager:
//!         dic = manager.dict({'count': 1000})
//!         li = manager.list([1, 2, 3, 4])
//!         a = manager.Value("int", 100)
//!         p = Process(target=fn, args=(dic, li, a))
//!         p.start()
//!         p.join()
//!         print("主进程-->dic", dic)
//! ```
//!
//! Here the child takes `count` from 1000 down to 0 with the atomic `decrement`, which runs
//! whole inside the server (Python's `-=` is a get and a set, and loses updates when two
//! processes interleave them).
//!
//! Run: `cargo run --example manager_dict_list`. Prints:
//!
//! ```text
//! 子进程-->a 100
//! 子进程-->li [1, 2, 3, 4]
//! 主进程-->dic {'count': 0}
//! 主进程-->li [1, 2, 3, 4]
//! ```

use multiproc::{Manager, Process};

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::start()?;
    let dic = manager.dict_from([(&"count".to_string(), &1000i64)])?;
    let li = manager.list_from(&[1, 2, 3, 4])?;
    let a = manager.value(&100i32)?;
    let (d, l) = (dic.clone(), li.clone());
    // The child's errors come back as text: `Error` does not cross processes.
    let mut child = Process::new(move || -> Result<(), String> {
        let count = "count".to_string();
        while d.decrement(&count, 1).map_err(|e| e.to_string())? > 0 {}
        let a = a.get().map_err(|e| e.to_string())?;
        let l = l.to_vec().map_err(|e| e.to_string())?;
        println!("子进程-->a {a}");
        println!("子进程-->li {}", python_list(&l));
        Ok(())
    })
    .start()?;
    child.join()??;
    let entries: Vec<String> = dic
        .items()?
        .iter()
        .map(|(k, v)| format!("'{k}': {v}"))
        .collect();
    println!("主进程-->dic {{{}}}", entries.join(", "));
    println!("主进程-->li {}", python_list(&li.to_vec()?));
    Ok(())
}

/// A list of ints as Python prints it: `[1, 2, 3, 4]`.
fn python_list(items: &[i32]) -> String {
    format!("{items:?}")
}
