//! The backend for platforms not supported yet: every call fails with `Unsupported`.
//!
//! It exists so the crate type-checks on other targets; nothing here works.

#![allow(dead_code, unreachable_pub)]
compile_error!("multiproc supports Linux only for now; see DESIGN.md for the macOS plan");
