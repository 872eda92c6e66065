//! The global allocator: talc over the heap region, behind a spin lock.
//!
//! The tender maps the heap (`MAP_NORESERVE`: pages cost memory only once
//! touched) between the end of the image and the guard below the stack, and
//! reports it in the boot info. The guest is single-threaded; the lock makes
//! the allocator `Sync`, as `GlobalAlloc` requires, and never contends.
//!
//! When the heap is exhausted `alloc` returns null like any allocator, so
//! that `try_reserve` works; an infallible allocation then ends in the panic
//! handler, which names the exhausted heap and `--mem`.
//!
//! # Safety
//!
//! `init` claims the heap region once, at boot, before any allocation; the
//! tender guarantees the region is mapped read-write, belongs to nothing
//! else and stays mapped for the life of the process.

#![allow(unsafe_code)]

use talc::source::Manual;

type Heap = talc::TalcLock<spin::Mutex<()>, Manual>;

static HEAP: Heap = Heap::new(Manual);

/// The allocator over libos's heap. A `no_std` guest's `app!` makes it the
/// global allocator; a std guest's `malloc` uses it, and std's `System`
/// allocator calls `malloc`.
#[derive(Debug, Clone, Copy)]
pub struct Allocator;

// SAFETY: every method forwards to talc's lock, which implements
// GlobalAlloc's contract over the heap region.
unsafe impl core::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller upholds GlobalAlloc::alloc's contract.
        unsafe { HEAP.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: the caller upholds GlobalAlloc::dealloc's contract.
        unsafe { HEAP.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller upholds GlobalAlloc::alloc_zeroed's contract.
        unsafe { HEAP.alloc_zeroed(layout) }
    }

    unsafe fn realloc(
        &self,
        ptr: *mut u8,
        layout: core::alloc::Layout,
        new_size: usize,
    ) -> *mut u8 {
        // SAFETY: the caller upholds GlobalAlloc::realloc's contract.
        unsafe { HEAP.realloc(ptr, layout, new_size) }
    }
}

/// Gives the allocator the heap region `[start, end)`.
#[cfg(not(any(test, fuzzing)))]
pub(crate) fn init(start: u64, end: u64) {
    let Some(size) = end.checked_sub(start) else { return };
    // SAFETY: the boot info (checked by the runtime) says [start, end) is the
    // heap the tender mapped read-write for this guest; nothing else uses it
    // and it is never unmapped. This runs once, before any allocation.
    unsafe {
        HEAP.lock().claim(start as *mut u8, size as usize);
    }
}

/// How much of the heap is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes the allocator manages (the heap region, less its metadata).
    pub size: usize,
    /// Bytes in live allocations.
    pub in_use: usize,
    /// Number of live allocations.
    pub allocations: usize,
}

/// Current heap usage.
pub fn heap_stats() -> HeapStats {
    let heap = HEAP.lock();
    let c = heap.counters();
    HeapStats { size: c.claimed_bytes, in_use: c.allocated_bytes, allocations: c.allocation_count }
}
