//! Thread costs, in the same source for a std guest and a native Linux
//! build (scripts/bench-std-threads.sh strips the `app!` line): spawning
//! and joining a thread, and handing a token back and forth between two
//! threads through a Mutex and a Condvar. Prints nanoseconds per
//! operation, one `name value` line each.

libos_std::app!();

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

fn spawn_join(n: u32) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        let h = thread::spawn(move || i);
        assert_eq!(h.join().unwrap(), i);
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

/// `n` handoffs: each side waits until the token is its own, then passes
/// it to the other.
fn ping_pong(n: u32) -> f64 {
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let p2 = pair.clone();
    let start = Instant::now();
    let other = thread::spawn(move || {
        let (m, cv) = &*p2;
        let mut g = m.lock().unwrap();
        loop {
            while *g % 2 == 0 && *g < n {
                g = cv.wait(g).unwrap();
            }
            if *g >= n {
                return;
            }
            *g += 1;
            cv.notify_one();
        }
    });
    {
        let (m, cv) = &*pair;
        let mut g = m.lock().unwrap();
        while *g < n {
            while *g % 2 == 1 {
                g = cv.wait(g).unwrap();
            }
            *g += 1;
            cv.notify_one();
        }
    }
    other.join().unwrap();
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let spawns = std::env::var("SPAWNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let handoffs = std::env::var("HANDOFFS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    println!("spawn_join_ns {:.0}", spawn_join(spawns));
    println!("pingpong_ns {:.0}", ping_pong(handoffs));
}
