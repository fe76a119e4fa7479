//! Processes that run closures.
pub use self::signal::{send_signal, Signal, SignalFlag};
mod signal;
