//! A nabla application written as an ordinary Rust program: `fn main()`,
//! std, `?` on errors. One line more than on Linux: `libos_std::app!()`,
//! which also declares the devices the program needs (none here).
//!
//! ```text
//! cargo build --release
//! tender target/release/mystdapp pear apple
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

libos_std::app!();

fn main() -> Result<(), String> {
    let words: Vec<String> = std::env::args().skip(1).collect();
    if words.is_empty() {
        return Err("give me some words".into());
    }
    let started = Instant::now();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for w in &words {
        *counts.entry(w).or_default() += 1;
    }
    let sorted: Vec<String> = counts.iter().map(|(w, n)| format!("{w}x{n}")).collect();
    println!("mystdapp: {} words, sorted: {}", words.len(), sorted.join(" "));
    println!("mystdapp: took {} µs", started.elapsed().as_micros());
    Ok(())
}
