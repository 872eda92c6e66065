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

#[cfg_attr(not(any(test, fuzzing)), global_allocator)]
static HEAP: Heap = Heap::new(Manual);

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
