//! An allocator workout, the same in a guest (std-mimalloc, under
//! mimalloc) and natively in the suite (under the host's malloc): blocks
//! of many sizes made, grown and freed, on one thread, across threads
//! and on several at once, and zeroed blocks checked after frees. It
//! returns its report's lines: checksums, equal wherever the allocator
//! works.

/// A small deterministic generator (xorshift).
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Allocates, frees and grows blocks of many sizes (small, page-sized,
/// and large ones that allocators map directly) and returns a checksum
/// of their contents.
fn churn(seed: u64, rounds: usize) -> u64 {
    let mut s = seed;
    let mut live: Vec<Vec<u8>> = Vec::new();
    let mut sum = 0u64;
    for i in 0..rounds {
        let r = next(&mut s);
        let size = match r % 200 {
            0 => (r >> 8) as usize % (3 << 20) + (1 << 20),
            1..=20 => (r >> 8) as usize % 65536,
            _ => (r >> 8) as usize % 512,
        };
        let mut v = vec![(i % 251) as u8; size];
        if let Some(last) = v.last_mut() {
            *last = 7;
        }
        live.push(v);
        if live.len() > 48 || r.is_multiple_of(3) {
            let k = (r >> 16) as usize % live.len();
            let v = live.swap_remove(k);
            sum = sum.wrapping_add(v.iter().map(|&b| u64::from(b)).sum::<u64>());
        }
        if r.is_multiple_of(7)
            && let Some(v) = live.last_mut()
        {
            let grow = v.len() + (r >> 24) as usize % 100_000;
            v.resize(grow, 3);
        }
    }
    sum.wrapping_add(live.iter().flatten().map(|&b| u64::from(b)).sum::<u64>())
}

/// The workout's report, one line per part.
pub fn report(rounds: usize) -> Vec<String> {
    let mut out = vec![format!("main: {}", churn(1, rounds))];
    // Blocks made on one thread and freed on another.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u64>>();
    let producer = std::thread::spawn(move || {
        for i in 0..2000u64 {
            tx.send(vec![i; (i as usize % 300) + 1]).unwrap();
        }
    });
    let total: u64 = rx.iter().map(|v| v.iter().sum::<u64>()).sum();
    producer.join().unwrap();
    out.push(format!("cross-thread: {total}"));
    let workers: Vec<_> =
        (0..4u64).map(|t| std::thread::spawn(move || churn(t + 2, rounds / 4))).collect();
    for (t, w) in workers.into_iter().enumerate() {
        out.push(format!("thread {t}: {}", w.join().unwrap()));
    }
    // Zeroed blocks where dirty ones were just freed: memory an allocator
    // reuses or gave back (madvise) and hands out as zeroed must be zero.
    let mut dirty = 0;
    for size in [100usize, 5000, 70_000, 300_000, 2 << 20] {
        for _ in 0..20 {
            drop(vec![0xa5u8; size]);
            let z = vec![0u8; size];
            dirty += z.iter().filter(|&&b| b != 0).count();
        }
    }
    out.push(format!("dirty zeroed bytes: {dirty}"));
    out
}
