//! The global allocator: talc over the heap region, with a cache of small
//! freed blocks in front of it.
//!
//! The tender maps the heap (`MAP_NORESERVE`: pages cost memory only once
//! touched) between the end of the image and the guard below the stack, and
//! reports it in the boot info.
//!
//! **Small blocks.** Most allocations of a server's request are small and
//! short-lived, and come back in the same sizes on the next request (tokio's
//! tasks and wakers, hyper's headers, a `Vec` of a path). A block of at most
//! [`SMALL_MAX`] bytes with an alignment of at most 16 is rounded up to a
//! multiple of 16 (its class); freed, it goes on its class's free list (a
//! pointer stored in the block itself) instead of back to talc, and the next
//! allocation of that class takes it from there: a pop and a push instead
//! of talc's bin search, split and coalescing, as glibc's tcache does. The
//! lists are bounded ([`CLASS_BLOCKS`] blocks a class, [`CACHE_BYTES`] in
//! all), so a burst of frees returns to talc what does not fit; and when
//! talc cannot serve an allocation, the lists go back to talc first and the
//! allocation is tried again, so that the cache never makes an allocation
//! fail that would have succeeded without it. [`heap_stats`] counts cached
//! blocks as free.
//!
//! **No lock.** A guest is one host thread: the tender's filter has no
//! `clone`, libos-std's threads are green threads switched only where they
//! would block (never inside the allocator), and no signal handler runs
//! asynchronously (signals arrive as fds, [`crate::signal`]). The allocator's
//! state is therefore behind a flag that only detects re-entry, made of a
//! plain load and store, instead of an atomic read-modify-write on every
//! allocation and free (which cost as much as talc's own work here). In host
//! test builds, where tests run on several threads, the flag is a real
//! (spinning) lock.
//!
//! When the heap is exhausted `alloc` returns null like any allocator, so
//! that `try_reserve` works; an infallible allocation then ends in the panic
//! handler, which names the exhausted heap and `--mem`.
//!
//! # Safety
//!
//! `init` claims the heap region once, at boot, before any allocation; the
//! tender guarantees the region is mapped read-write, belongs to nothing
//! else and stays mapped for the life of the process. The state is only
//! reached through [`Heap::enter`], which hands out at most one `&mut` at a
//! time (see "No lock" for why its flag suffices in a guest). A cached block
//! is a live talc allocation of its class's layout that nothing else points
//! to; the free list's link is stored in its first 8 bytes.

#![allow(unsafe_code)]

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicBool, Ordering};

use talc::DefaultBinning;
use talc::base::Talc;
use talc::source::Manual;

/// The largest block the cache keeps (bytes, after rounding).
pub const SMALL_MAX: usize = 2048;
/// The granularity of the classes: also the largest alignment they serve.
const GRAIN: usize = 16;
/// How many classes: 16, 32, ..., [`SMALL_MAX`] bytes.
const CLASSES: usize = SMALL_MAX / GRAIN;
/// Most blocks a class keeps.
pub const CLASS_BLOCKS: u16 = 64;
/// Most bytes all classes keep together.
pub const CACHE_BYTES: usize = 256 * 1024;

/// The class of a layout, if the cache serves it.
fn class_of(l: Layout) -> Option<usize> {
    (l.size() <= SMALL_MAX && l.align() <= GRAIN).then(|| l.size().max(1).div_ceil(GRAIN) - 1)
}

/// The layout talc gives a block of class `c`.
fn class_layout(c: usize) -> Layout {
    // (c + 1) * GRAIN <= SMALL_MAX, a power-of-two alignment: always valid.
    Layout::from_size_align((c + 1) * GRAIN, GRAIN).unwrap_or(Layout::new::<u8>())
}

/// The free lists of small blocks, one a class, bounded.
#[derive(Debug)]
struct Cache {
    heads: [Option<NonNull<u8>>; CLASSES],
    counts: [u16; CLASSES],
    /// Bytes and blocks on all lists.
    bytes: usize,
    blocks: usize,
}

impl Cache {
    const fn new() -> Self {
        Self { heads: [None; CLASSES], counts: [0; CLASSES], bytes: 0, blocks: 0 }
    }

    /// Takes a block of class `c`, if one is cached.
    fn pop(&mut self, c: usize) -> Option<NonNull<u8>> {
        let p = self.heads[c]?;
        // SAFETY: a cached block holds its successor's address in its first
        // 8 bytes (written by `push`, 16-aligned, at least 16 bytes long).
        self.heads[c] = unsafe { p.cast::<Option<NonNull<u8>>>().read() };
        self.counts[c] -= 1;
        self.blocks -= 1;
        self.bytes -= (c + 1) * GRAIN;
        Some(p)
    }

    /// Keeps `p`, a block of class `c`, if there is room; false if not.
    ///
    /// # Safety
    ///
    /// `p` is a live block of class `c`'s layout that nothing else uses.
    unsafe fn push(&mut self, c: usize, p: NonNull<u8>) -> bool {
        let size = (c + 1) * GRAIN;
        if self.counts[c] >= CLASS_BLOCKS || self.bytes + size > CACHE_BYTES {
            return false;
        }
        // SAFETY: the caller gives the block (16-aligned, at least 16
        // bytes) to the cache; its first 8 bytes become the link.
        unsafe { p.cast::<Option<NonNull<u8>>>().write(self.heads[c]) };
        self.heads[c] = Some(p);
        self.counts[c] += 1;
        self.blocks += 1;
        self.bytes += size;
        true
    }

    /// Takes every cached block, with its class.
    fn drain(&mut self, mut f: impl FnMut(NonNull<u8>, usize)) {
        for c in 0..CLASSES {
            while let Some(p) = self.pop(c) {
                f(p, c);
            }
        }
    }
}

/// The allocator's state: talc and the cache.
#[derive(Debug)]
struct Inner {
    talc: Talc<Manual, DefaultBinning>,
    cache: Cache,
}

impl Inner {
    /// talc's allocation of `l`; if talc has no room, the cache goes back
    /// to it first, and it tries again.
    ///
    /// # Safety
    ///
    /// `l` has a non-zero size.
    unsafe fn talc_alloc(&mut self, l: Layout) -> *mut u8 {
        // SAFETY: the caller guarantees a non-zero size.
        if let Some(p) = unsafe { self.talc.allocate(l) } {
            return p.as_ptr();
        }
        if self.cache.blocks == 0 {
            return null_mut();
        }
        self.flush();
        // SAFETY: as above.
        unsafe { self.talc.allocate(l) }.map_or(null_mut(), NonNull::as_ptr)
    }

    /// Gives every cached block back to talc.
    fn flush(&mut self) {
        let talc = &mut self.talc;
        self.cache.drain(|p, c| {
            // SAFETY: a cached block is a live talc allocation of its
            // class's layout.
            unsafe { talc.deallocate(p.as_ptr(), class_layout(c)) }
        });
    }

    /// # Safety
    ///
    /// `GlobalAlloc::alloc`'s contract.
    unsafe fn alloc(&mut self, l: Layout) -> *mut u8 {
        match class_of(l) {
            Some(c) => match self.cache.pop(c) {
                Some(p) => p.as_ptr(),
                // SAFETY: a class's layout is at least 16 bytes.
                None => unsafe { self.talc_alloc(class_layout(c)) },
            },
            // SAFETY: the caller guarantees a non-zero size.
            None => unsafe { self.talc_alloc(l) },
        }
    }

    /// # Safety
    ///
    /// `GlobalAlloc::dealloc`'s contract.
    unsafe fn dealloc(&mut self, p: *mut u8, l: Layout) {
        let Some(nn) = NonNull::new(p) else { return };
        match class_of(l) {
            Some(c) => {
                // SAFETY: the caller frees a live block allocated with `l`,
                // that is with class c's layout (`alloc` above).
                if !unsafe { self.cache.push(c, nn) } {
                    // SAFETY: as above.
                    unsafe { self.talc.deallocate(p, class_layout(c)) }
                }
            }
            // SAFETY: the caller frees a live block allocated with `l`.
            None => unsafe { self.talc.deallocate(p, l) },
        }
    }

    /// # Safety
    ///
    /// `GlobalAlloc::realloc`'s contract.
    unsafe fn realloc(&mut self, p: *mut u8, old: Layout, new_size: usize) -> *mut u8 {
        let Ok(new) = Layout::from_size_align(new_size, old.align()) else { return null_mut() };
        let (oc, nc) = (class_of(old), class_of(new));
        if oc.is_some() && oc == nc {
            // The block is its class's size: it already fits.
            return p;
        }
        if oc.is_none() && nc.is_none() {
            // SAFETY: outside the classes talc holds the block with `old`,
            // as allocated; new_size is non-zero (the caller's contract).
            if unsafe { self.talc.try_realloc_in_place(p, old, new_size) } {
                return p;
            }
        }
        // SAFETY: `new` has a non-zero size.
        let q = unsafe { self.alloc(new) };
        if !q.is_null() {
            // SAFETY: both blocks are live, distinct, and hold at least
            // the bytes copied; then the old one is freed as allocated.
            unsafe {
                core::ptr::copy_nonoverlapping(p, q, old.size().min(new_size));
                self.dealloc(p, old);
            }
        }
        q
    }
}

/// The allocator's state behind a re-entry flag (see "No lock").
struct Heap {
    busy: AtomicBool,
    inner: UnsafeCell<Inner>,
}

// SAFETY: `enter` gives out the state to one caller at a time: in a guest,
// which is one host thread that never enters the allocator from within
// itself (no asynchronous signal handlers, no preemption of green
// threads), its flag sees every use; in host builds it is a real lock.
unsafe impl Sync for Heap {}

impl Heap {
    /// Runs `f` on the state; `None` if it is in use already (re-entry,
    /// which libos never does: an allocation then fails instead of
    /// corrupting the heap).
    fn enter<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> Option<R> {
        #[cfg(not(any(test, fuzzing)))]
        {
            if self.busy.load(Ordering::Relaxed) {
                return None;
            }
            self.busy.store(true, Ordering::Relaxed);
        }
        #[cfg(any(test, fuzzing))]
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: the flag is ours until the store below: no other
        // reference to the state exists meanwhile.
        let r = f(unsafe { &mut *self.inner.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }
}

static HEAP: Heap = Heap {
    busy: AtomicBool::new(false),
    inner: UnsafeCell::new(Inner { talc: Talc::new(Manual), cache: Cache::new() }),
};

/// The allocator over libos's heap. A `no_std` guest's `app!` makes it the
/// global allocator; a std guest's `malloc` uses it, and std's `System`
/// allocator calls `malloc`.
#[derive(Debug, Clone, Copy)]
pub struct Allocator;

// SAFETY: every method forwards to the state's methods, which keep
// GlobalAlloc's contract over the heap region: a block is handed out once
// until freed (from talc, or popped off a list it was the only user of).
unsafe impl core::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds GlobalAlloc::alloc's contract.
        HEAP.enter(|h| unsafe { h.alloc(layout) }).unwrap_or(null_mut())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds GlobalAlloc::dealloc's contract.
        HEAP.enter(|h| unsafe { h.dealloc(ptr, layout) });
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds GlobalAlloc::realloc's contract.
        HEAP.enter(|h| unsafe { h.realloc(ptr, layout, new_size) }).unwrap_or(null_mut())
    }
}

/// Gives the allocator the heap region `[start, end)`.
#[cfg(not(any(test, fuzzing)))]
pub(crate) fn init(start: u64, end: u64) {
    let Some(size) = end.checked_sub(start) else { return };
    // SAFETY: the boot info (checked by the runtime) says [start, end) is the
    // heap the tender mapped read-write for this guest; nothing else uses it
    // and it is never unmapped. This runs once, before any allocation.
    HEAP.enter(|h| unsafe { h.talc.claim(start as *mut u8, size as usize) });
}

/// How much of the heap is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes the allocator manages (the heap region, less its metadata).
    pub size: usize,
    /// Bytes in live allocations (small ones counted at their class's size).
    pub in_use: usize,
    /// Number of live allocations.
    pub allocations: usize,
}

/// Current heap usage (all zero if asked from inside the allocator, as
/// a panic there would).
pub fn heap_stats() -> HeapStats {
    HEAP.enter(|h| {
        let c = h.talc.counters();
        HeapStats {
            size: c.claimed_bytes,
            in_use: c.allocated_bytes.saturating_sub(h.cache.bytes),
            allocations: c.allocation_count.saturating_sub(h.cache.blocks),
        }
    })
    .unwrap_or(HeapStats { size: 0, in_use: 0, allocations: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state over a heap of `size` bytes of the host's (the buffer must
    /// outlive it).
    fn state(buf: &mut [u64]) -> Inner {
        let mut h = Inner { talc: Talc::new(Manual), cache: Cache::new() };
        // SAFETY: the buffer is ours, writable, and outlives the state in
        // every test.
        unsafe { h.talc.claim(buf.as_mut_ptr().cast(), buf.len() * 8) };
        h
    }

    fn l(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_round_to_sixteen_and_stop_at_the_limit() {
        assert_eq!(class_of(l(1, 1)), Some(0));
        assert_eq!(class_of(l(16, 8)), Some(0));
        assert_eq!(class_of(l(17, 16)), Some(1));
        assert_eq!(class_of(l(SMALL_MAX, 16)), Some(CLASSES - 1));
        assert_eq!(class_of(l(SMALL_MAX + 1, 16)), None);
        assert_eq!(class_of(l(64, 32)), None);
        assert_eq!(class_layout(CLASSES - 1), l(SMALL_MAX, 16));
    }

    #[test]
    fn a_freed_small_block_serves_the_next_of_its_class() {
        let mut buf = vec![0u64; 1 << 16];
        let mut h = state(&mut buf);
        // SAFETY: blocks are used within their layouts and freed once.
        unsafe {
            let a = h.alloc(l(40, 8));
            a.write_bytes(0xaa, 40);
            h.dealloc(a, l(40, 8));
            assert_eq!(h.cache.blocks, 1);
            // 33..48 bytes are one class: the same block comes back.
            assert_eq!(h.alloc(l(48, 16)), a);
            assert_eq!(h.cache.blocks, 0);
            // Another class does not take it.
            h.dealloc(a, l(48, 16));
            let b = h.alloc(l(64, 8));
            assert_ne!(b, a);
            assert_eq!(b as usize % 16, 0);
            // Large blocks go straight back to talc.
            let big = h.alloc(l(SMALL_MAX + 1, 8));
            h.dealloc(big, l(SMALL_MAX + 1, 8));
            assert_eq!(h.cache.blocks, 1);
            assert_eq!(h.talc.counters().allocation_count, 2);
        }
    }

    #[test]
    fn the_cache_is_bounded_per_class_and_in_all() {
        let mut buf = vec![0u64; 1 << 18];
        let mut h = state(&mut buf);
        // SAFETY: blocks are used within their layouts and freed once.
        unsafe {
            let n = usize::from(CLASS_BLOCKS) + 10;
            let blocks: Vec<_> = (0..n).map(|_| h.alloc(l(100, 8))).collect();
            for &b in &blocks {
                h.dealloc(b, l(100, 8));
            }
            assert_eq!(h.cache.blocks, usize::from(CLASS_BLOCKS));
            assert_eq!(h.talc.counters().allocation_count, usize::from(CLASS_BLOCKS));
            // The byte bound: three classes of about 2 KiB fill it before
            // their counts do.
            for size in [SMALL_MAX, SMALL_MAX - 16, SMALL_MAX - 32] {
                let big: Vec<_> = (0..64).map(|_| h.alloc(l(size, 16))).collect();
                for &b in &big {
                    h.dealloc(b, l(size, 16));
                }
            }
            assert!(h.cache.bytes <= CACHE_BYTES);
            let mut counted = 0;
            h.cache.drain(|_, c| counted += (c + 1) * GRAIN);
            assert!(counted <= CACHE_BYTES && counted > CACHE_BYTES - SMALL_MAX);
        }
    }

    #[test]
    fn an_exhausted_heap_takes_its_cache_back_before_failing() {
        let mut buf = vec![0u64; 8192]; // 64 KiB
        let mut h = state(&mut buf);
        // SAFETY: blocks are used within their layouts and freed once.
        unsafe {
            // Fill the heap with small blocks, free them into the cache.
            let mut small = Vec::new();
            loop {
                let p = h.alloc(l(1000, 8));
                if p.is_null() {
                    break;
                }
                small.push(p);
            }
            assert!(small.len() > 40);
            for &p in &small {
                h.dealloc(p, l(1000, 8));
            }
            assert!(h.cache.blocks > 0);
            // A large block fits only once the cache went back to talc.
            let big = h.alloc(l(40 * 1024, 8));
            assert!(!big.is_null());
            assert_eq!(h.cache.blocks, 0);
            h.dealloc(big, l(40 * 1024, 8));
            // Failing for real still fails.
            assert!(h.alloc(l(1 << 20, 8)).is_null());
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_across_classes_and_talc() {
        let mut buf = vec![0u64; 1 << 16];
        let mut h = state(&mut buf);
        // SAFETY: blocks are used within their layouts and freed once.
        unsafe {
            let p = h.alloc(l(20, 8));
            for i in 0..20 {
                p.add(i).write(i as u8);
            }
            // Within its class: in place.
            assert_eq!(h.realloc(p, l(20, 8), 30), p);
            // To another class, then to talc, then back to a class.
            let q = h.realloc(p, l(30, 8), 500);
            let r = h.realloc(q, l(500, 8), 10_000);
            let r2 = h.realloc(r, l(10_000, 8), 20_000);
            let s = h.realloc(r2, l(20_000, 8), 24);
            for i in 0..20 {
                assert_eq!(s.add(i).read(), i as u8);
            }
            h.dealloc(s, l(24, 8));
            h.flush();
            assert_eq!(h.talc.counters().allocation_count, 0);
        }
    }
}
