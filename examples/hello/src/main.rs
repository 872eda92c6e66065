//! hello: prints `Hello, world!`, then each argument on a line of its own,
//! then a greeting for `$NAME` if the variable is set.
//!
//! ```text
//! tender --env NAME=nabla target/release/hello one two
//! ```

#![no_std]
#![no_main]

use libos::{env, println};

libos::app!(main);

fn main() {
    println!("Hello, world!");
    for arg in env::args().skip(1) {
        println!("{arg}");
    }
    if let Some(name) = env::var("NAME") {
        println!("Hello, {name}!");
    }
}
