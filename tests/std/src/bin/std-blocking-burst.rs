//! A burst of `spawn_blocking` calls on tokio's default multi-thread
//! runtime (what `tokio::fs` does for every call): `BURST` tasks (default
//! 1,000) each run one blocking closure that reads and sums 4 KiB, all
//! spawned at once and awaited together. Prints how many threads tokio
//! started (its workers and its blocking pool, counted by
//! `on_thread_start`), how many lived at once at most, and, in a guest, the
//! most heap in use while a closure ran (every pool thread's stack comes
//! from the heap). On green threads the pool used to grow to a thread per
//! call, until `--mem` ran out (tests/suite/std_threads.rs; docs/std.md).
//! The same source builds natively with `--cfg native`
//! (scripts/bench-std-threads.sh), which prints 0 for the heap.

#![cfg_attr(native, allow(unused))]

#[cfg(not(native))]
libos_std::app!();

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of the guest's heap in live allocations (libos's allocator).
#[cfg(not(native))]
fn heap_in_use() -> usize {
    libos_std::__private::libos::heap_stats().in_use
}

/// No guest heap natively.
#[cfg(native)]
fn heap_in_use() -> usize {
    0
}

fn main() {
    let burst: u64 = std::env::var("BURST").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let started = Arc::new(AtomicUsize::new(0));
    let alive = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (s, a, p) = (started.clone(), alive.clone(), peak.clone());
    let a2 = alive.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            s.fetch_add(1, Ordering::Relaxed);
            let now = a.fetch_add(1, Ordering::Relaxed) + 1;
            p.fetch_max(now, Ordering::Relaxed);
        })
        .on_thread_stop(move || {
            a2.fetch_sub(1, Ordering::Relaxed);
        })
        .build()
        .expect("the runtime builds");
    let workers = rt.metrics().num_workers();
    let heap_peak = Arc::new(AtomicUsize::new(0));
    let hp = heap_peak.clone();
    let sum = rt.block_on(async move {
        let tasks: Vec<_> = (0..burst)
            .map(|i| {
                let hp = hp.clone();
                tokio::spawn(async move {
                    tokio::task::spawn_blocking(move || {
                        let page: Vec<u8> = (0..4096u64).map(|b| (b ^ i) as u8).collect();
                        hp.fetch_max(heap_in_use(), Ordering::Relaxed);
                        page.iter().map(|&b| u64::from(b)).sum::<u64>() + i
                    })
                    .await
                    .expect("a blocking closure returns")
                })
            })
            .collect();
        let mut sum = 0u64;
        for t in tasks {
            sum += t.await.expect("a task returns");
        }
        sum
    });
    let expected: u64 =
        (0..burst).map(|i| (0..4096u64).map(|b| u64::from((b ^ i) as u8)).sum::<u64>() + i).sum();
    println!("burst {burst}: sum {}", if sum == expected { "right" } else { "WRONG" });
    println!("workers {workers}");
    println!("threads_started {}", started.load(Ordering::Relaxed));
    println!("threads_peak {}", peak.load(Ordering::Relaxed));
    println!("heap_peak_kib {}", heap_peak.load(Ordering::Relaxed) / 1024);
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
}
