//! A nabla application: an ordinary no_std crate with a `main`.
//!
//! ```text
//! cargo build --release
//! tender target/release/myapp hello there
//! ```

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use libos::{env, println, time};

libos::app!(main);

fn main() -> Result<(), &'static str> {
    let words: Vec<&str> = env::args().skip(1).collect();
    if words.is_empty() {
        return Err("give me some words");
    }
    let started = time::Instant::now();
    let mut sorted = words.clone();
    sorted.sort_unstable();
    println!("myapp: {} words, sorted: {}", words.len(), sorted.join(" "));
    println!("myapp: took {} µs", started.elapsed().as_micros());
    Ok(())
}
