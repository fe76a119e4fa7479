//! Values printed the way Python prints them, so an example's output reads like its seed's.
// Each example includes this file and uses what it needs.
#![allow(dead_code)]

/// A bool as Python prints it: `True`, `False`.
pub(crate) fn bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// An exit code as Python prints `p.exitcode`: `None` while running, else the number
/// (`-15` after `SIGTERM`).
pub(crate) fn exitcode(code: Option<i32>) -> String {
    code.map_or_else(|| "None".to_string(), |c| c.to_string())
}
