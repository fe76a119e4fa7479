//! Runs every example in turn: the quickest way to see what multiproc does.
//!
//! Run: `cargo run --release --example tour`.

#[path = "pipe_adder_server.rs"]
mod pipe_adder_server;
#[path = "pipe_producer_consumer.rs"]
mod pipe_producer_consumer;
#[path = "process_basics.rs"]
mod process_basics;
#[path = "signals.rs"]
mod signals;

type Example = fn() -> Result<(), Box<dyn std::error::Error>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let examples: &[(&str, Example)] = &[
        ("pipe_producer_consumer", pipe_producer_consumer::main),
        ("pipe_adder_server", pipe_adder_server::main),
        ("process_basics", process_basics::main),
        ("signals", signals::main),
    ];
    for (name, run) in examples {
        println!("=== {name}");
        run()?;
    }
    println!("=== tour done: {} examples", examples.len());
    Ok(())
}
