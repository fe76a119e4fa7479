//! Runs every example in turn: the quickest way to see what multiproc does.
//!
//! Run: `cargo run --release --example tour`.

// Each example, built alone, includes `support/py.rs` as its own module; the tour includes
// every example, so it loads that file once per example that uses it.
#![allow(clippy::duplicate_mod)]

#[path = "fifo_named_pipe.rs"]
mod fifo_named_pipe;
#[path = "lock_printing.rs"]
mod lock_printing;
#[path = "manager_dict_list.rs"]
mod manager_dict_list;
#[path = "manager_remote.rs"]
mod manager_remote;
#[path = "named_queue.rs"]
mod named_queue;
#[path = "pipe_adder_server.rs"]
mod pipe_adder_server;
#[path = "pipe_bytes_poll.rs"]
mod pipe_bytes_poll;
#[path = "pipe_producer_consumer.rs"]
mod pipe_producer_consumer;
#[path = "pipe_terminate.rs"]
mod pipe_terminate;
#[path = "pool_callbacks.rs"]
mod pool_callbacks;
#[path = "process_basics.rs"]
mod process_basics;
#[path = "python_peer.rs"]
mod python_peer;
#[path = "queue_first_ten.rs"]
mod queue_first_ten;
#[path = "queue_json_work.rs"]
mod queue_json_work;
#[path = "queue_producer_consumer.rs"]
mod queue_producer_consumer;
#[path = "queue_subclassed_pair.rs"]
mod queue_subclassed_pair;
#[path = "semaphore_limit.rs"]
mod semaphore_limit;
#[path = "shared_value_array.rs"]
mod shared_value_array;
#[path = "signal_kinds.rs"]
mod signal_kinds;
#[path = "signals.rs"]
mod signals;
#[path = "ticket_file_lock.rs"]
mod ticket_file_lock;
#[path = "tokio_workers.rs"]
mod tokio_workers;

type Example = fn() -> Result<(), Box<dyn std::error::Error>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let examples: &[(&str, Example)] = &[
        ("pipe_producer_consumer", pipe_producer_consumer::main),
        ("pipe_adder_server", pipe_adder_server::main),
        ("pipe_bytes_poll", pipe_bytes_poll::main),
        ("pipe_terminate", pipe_terminate::main),
        ("process_basics", process_basics::main),
        ("signals", signals::main),
        ("signal_kinds", signal_kinds::main),
        ("shared_value_array", shared_value_array::main),
        ("lock_printing", lock_printing::main),
        ("semaphore_limit", semaphore_limit::main),
        ("ticket_file_lock", ticket_file_lock::main),
        ("queue_producer_consumer", queue_producer_consumer::main),
        ("queue_subclassed_pair", queue_subclassed_pair::main),
        ("queue_json_work", queue_json_work::main),
        ("queue_first_ten", queue_first_ten::main),
        ("manager_dict_list", manager_dict_list::main),
        ("manager_remote", manager_remote::main),
        ("fifo_named_pipe", fifo_named_pipe::main),
        ("python_peer", python_peer::main),
        ("named_queue", named_queue::main),
        ("pool_callbacks", pool_callbacks::main),
        // Last: its runtime's threads make this process multi-threaded, and the examples
        // before it fork closures, which needs a single-threaded process.
        ("tokio_workers", tokio_workers::main),
    ];
    for (name, run) in examples {
        println!("=== {name}");
        run()?;
    }
    println!("=== tour done: {} examples", examples.len());
    Ok(())
}
