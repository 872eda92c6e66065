//! mimalloc (crate `mimalloc`, unmodified, its C compiled by the host's
//! cc) as the global allocator of a std guest. It keeps a heap per thread
//! in TLS (and libos's own start-up allocates through it), takes
//! pthread mutexes and a key while it initialises, maps memory with
//! `mmap`, aligns it by unmapping heads and tails, and gives pages back
//! with `madvise`. The workout ([`churn::report`]) prints the lines the
//! suite computes natively.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[path = "../churn.rs"]
mod churn;

libos_std::app!();

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    for line in churn::report(rounds) {
        println!("{line}");
    }
}
