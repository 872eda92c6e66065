//! A std guest that says it is up, then sleeps for the number of seconds
//! its first argument gives (`sleep 120` as guest-basics takes it):
//! the idle instance of `nabla bench memory --std-guest`.

libos_std::app!();

use std::time::Duration;

fn main() {
    let secs: u64 = std::env::args().next_back().and_then(|s| s.parse().ok()).unwrap_or(120);
    println!("std-sleep: up, sleeping {secs} s");
    std::thread::sleep(Duration::from_secs(secs));
}
