//! Seed 001: shared memory with `Value` and `Array`, changed by children and seen by the
//! parent.
//!
//! Run: `cargo run --example shared_value_array`. Prints the values before, what each child
//! does, and the values after: `value after: 200`, `array after: [10, 20, 30, 40, 50]`,
//! `zeroed after: [0, 1, 4, 9, 16]`, then `hits after: 4000` (4 children x 1000 lock-free
//! increments).

use multiproc::{Array, Process, Value};

/// Runs the example.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    // obj = Value(ctype, obj): one value, initialised.
    let value = Value::new(100i32)?;
    // obj = Array(ctype, [1, 2, 3, 4, 5]): initialised from a list; obj[1] == 2.
    let array = Array::from_slice(&[1i32, 2, 3, 4, 5])?;
    // obj = Array(ctype, 5): an integer means "this many elements", all zero.
    let zeroed = Array::<i64>::new(5)?;
    println!("value before: {}", value.load());
    println!("array before: {:?}", array.to_vec());
    println!("array[1] == {}", array.get(1)?);
    println!("zeroed before: {:?}", zeroed.to_vec());

    let (v, a, z) = (value.clone(), array.clone(), zeroed.clone());
    Process::new(move || {
        // Writing overwrites what was there, as the seed says of shared memory.
        let mut guard = v.lock().expect("lock the value");
        println!("child: value {} -> {}", *guard, *guard * 2);
        *guard *= 2;
        drop(guard);
        for x in a.lock().expect("lock the array").iter_mut() {
            *x *= 10;
        }
        println!("child: array multiplied by 10");
        for i in 0..z.len() {
            z.set(i, (i * i) as i64).expect("index in range");
        }
        println!("child: squares written");
    })
    .start()?
    .join()?;

    // Lock-free atomic increments from several children at once lose nothing.
    let hits = Value::new(0u64)?;
    let children: Vec<_> = (0..4)
        .map(|_| {
            let h = hits.clone();
            Process::new(move || {
                for _ in 0..1000 {
                    h.fetch_add(1);
                }
            })
            .start()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        c.join()?;
    }

    println!("value after: {}", value.load());
    println!("array after: {:?}", array.to_vec());
    println!("zeroed after: {:?}", zeroed.to_vec());
    println!("hits after: {}", hits.load());
    Ok(())
}
