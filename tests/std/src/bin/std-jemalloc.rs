//! jemalloc (crate `tikv-jemallocator`, unmodified, its C built by its
//! own `configure` and `make` with the host's cc) as the global allocator
//! of a std guest. While it initialises, inside the first allocation
//! (libos's own start-up's), it reads `/etc/malloc.conf` as a link, reads
//! `/proc/sys/vm/overcommit_memory` and
//! `/sys/kernel/mm/transparent_hugepage/enabled`, asks for the number of
//! CPUs and makes a pthread key: none of which may allocate (the disk is
//! not mounted yet then). The workout ([`churn::report`]) prints the lines
//! the suite computes natively; then a file goes to the disk and back.

use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

#[path = "../churn.rs"]
mod churn;

libos_std::app!(devices: ["storage": Block]);

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    for line in churn::report(rounds) {
        println!("{line}");
    }
    std::fs::write("/jemalloc.txt", "after the allocator").unwrap();
    println!("disk: {}", std::fs::read_to_string("/jemalloc.txt").unwrap());
}
