//! Every example runs and prints what its seed prints.

fn main() {}
