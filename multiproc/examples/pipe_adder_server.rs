//! Seed 000: request and response over a duplex pipe. The server adds the pairs it
//! receives; the client sends `(10, 20)` and prints the answer.
//!
//! Run: `cargo run --example pipe_adder_server`. Prints `30`, `server done`, then `结束`.

use multiproc::{pipe, Process};

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut server, mut client) = pipe()?;
    let mut adder = Process::new(move || {
        // EOF (the client closed its end) ends the loop.
        while let Ok((x, y)) = server.recv::<(i32, i32)>() {
            server.send(&(x + y)).expect("client went away");
        }
        println!("server done");
    })
    .start()?;
    client.send(&(10, 20))?;
    println!("{}", client.recv::<i32>()?);
    drop(client);
    adder.join()?;
    println!("结束");
    Ok(())
}
