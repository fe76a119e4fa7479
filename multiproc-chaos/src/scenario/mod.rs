//! The scenarios: each sets up one component, lets its participants work while the crew
//! kills them at random instants (`crew`), then checks what the survivors saw.

pub(crate) mod handoff;
pub(crate) mod listener;
pub(crate) mod manager;
pub(crate) mod named;
pub(crate) mod pipe;
pub(crate) mod pool;
pub(crate) mod queue;

use crate::crew::Run;

/// A scenario: its name on the command line, and its body (run in a supervisor process).
pub(crate) type Body = fn(&mut Run) -> multiproc::Result<()>;

pub(crate) const ALL: &[(&str, Body)] = &[
    ("queue", queue::run),
    ("handoff", handoff::run),
    ("pool", pool::run),
    ("manager", manager::run),
    ("pipe", pipe::run),
    ("named", named::run),
    ("listener", listener::run),
];
