//! Seed 000: a producer sends 1..5 over a pipe; the consumer prints each until EOF.
//!
//! Run: `cargo run --example pipe_producer_consumer`. Prints `1` to `5`, one a line, then `结束`.
//!
//! Unlike the Python original, nobody closes the unused ends by hand: the end moved into
//! the consumer's closure belongs to the consumer, the end kept here belongs to the
//! producer, and each process holds only its own. Dropping `left` is the EOF.

use multiproc::{pipe, Error, Process};

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut left, mut right) = pipe()?;
    let mut consumer = Process::new(move || loop {
        match right.recv::<i32>() {
            Ok(msg) => println!("{msg}"),
            Err(Error::Eof) => break,
            Err(e) => panic!("consumer: {e}"),
        }
    })
    .start()?;
    for i in 1..6 {
        left.send(&i)?;
    }
    drop(left);
    consumer.join()?;
    println!("结束");
    Ok(())
}
