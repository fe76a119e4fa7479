//! Connections between real processes (contract section CN).

fn main() {}
