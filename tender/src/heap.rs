//! The tender's heap when it is linked against musl: one reserved region,
//! so that `launch` can release all of it before the jump.
//!
//! glibc's malloc takes the tender's heap from `brk`, one contiguous range
//! that `launch::dead_ranges` releases. musl's malloc keeps only its
//! bookkeeping there and maps the blocks it hands out with `mmap`, wherever
//! the kernel puts them: pages `launch` cannot find without reading
//! `/proc/self/maps`, which would stay private to every idle instance (two
//! for `hello`). So Rust's allocations (all of the tender's but those of C
//! code: libseccomp's, when it runs) come from here instead: a region of
//! [`RESERVE`] bytes of address space mapped once, at the first allocation,
//! with `MAP_NORESERVE` (pages cost memory only once touched), handed out
//! from the bottom up. [`used`] is how far: `launch` releases
//! `[start, start + used)`.
//!
//! The allocator is deliberately simple, for a process that parses its
//! input, maps the guest and jumps: blocks of up to [`SMALL_MAX`] bytes in
//! power-of-two classes, each with a free list; larger ones in whole pages,
//! on one free list searched first-fit and split; no coalescing. What a
//! free returns is reused by later allocations of its size, so a loop of
//! allocations and frees does not grow the heap; the most the heap holds
//! is bounded by what the tender's input limits allow it to read. What the
//! region cannot give (it is full, or the kernel refused to map it, under
//! `vm.overcommit_memory=2` or an address-space limit) comes from musl's
//! malloc instead: the tender works the same, and only those blocks stay.
//!
//! One spin lock serialises the heap: the tender is single-threaded, but
//! its unit tests' harness is not.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};

/// Address space reserved for the heap. Not memory: only what is touched.
pub const RESERVE: usize = 64 << 30;
/// The largest block served from a size class.
pub const SMALL_MAX: usize = 2048;
const PAGE: usize = 4096;
/// Size classes 16, 32, ... 2048.
const CLASSES: usize = 8;
const MIN_CLASS_SHIFT: u32 = 4;

/// A free run of pages, written at its start.
struct Run {
    next: *mut Run,
    len: usize,
}

struct State {
    /// The region's start (0: not mapped yet; usize::MAX: mapping failed).
    start: usize,
    /// The bottom of the untouched part: `start + used`.
    top: usize,
    /// Free blocks of each class, linked through their first word.
    small: [*mut u8; CLASSES],
    /// Free runs of pages.
    runs: *mut Run,
}

/// The tender's global allocator under musl (see the module's doc).
pub struct Heap {
    lock: AtomicBool,
    state: std::cell::UnsafeCell<State>,
}

// SAFETY: `state` is only touched with `lock` held.
unsafe impl Sync for Heap {}

impl Heap {
    /// An empty heap; the region is mapped at the first allocation.
    pub const fn new() -> Self {
        Heap {
            lock: AtomicBool::new(false),
            state: std::cell::UnsafeCell::new(State {
                start: 0,
                top: 0,
                small: [null_mut(); CLASSES],
                runs: null_mut(),
            }),
        }
    }

    /// Runs `f` with the state, the lock held.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held: no other reference to the state exists.
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        r
    }

    /// The region's start and how many bytes of it were ever handed out
    /// (rounded up to pages: what `launch` releases), or None if nothing
    /// was allocated here.
    pub fn used(&self) -> Option<(u64, u64)> {
        self.with(|s| {
            (s.start != 0 && s.start != usize::MAX)
                .then(|| (s.start as u64, (s.top - s.start).next_multiple_of(PAGE) as u64))
        })
    }
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

/// The class of a block of `size` bytes aligned to `align`, if small.
fn class_of(size: usize, align: usize) -> Option<usize> {
    let size = size.max(align).max(1 << MIN_CLASS_SHIFT);
    (size <= SMALL_MAX)
        .then(|| (size.next_power_of_two().trailing_zeros() - MIN_CLASS_SHIFT) as usize)
}

/// The bytes of class `class`.
fn class_size(class: usize) -> usize {
    1 << (class as u32 + MIN_CLASS_SHIFT)
}

impl State {
    /// Maps the region if it is not yet; false if it cannot be.
    fn mapped(&mut self) -> bool {
        if self.start == 0 {
            // SAFETY: a new anonymous mapping; it overlaps nothing.
            let p = unsafe {
                libc::mmap(
                    null_mut(),
                    RESERVE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            self.start = if p == libc::MAP_FAILED { usize::MAX } else { p as usize };
            self.top = self.start;
        }
        self.start != usize::MAX
    }

    /// `len` bytes from the untouched part, aligned to `align`.
    fn carve(&mut self, len: usize, align: usize) -> *mut u8 {
        if !self.mapped() {
            return null_mut();
        }
        let at = self.top.next_multiple_of(align);
        match at.checked_add(len) {
            Some(end) if end <= self.start + RESERVE => {
                self.top = end;
                at as *mut u8
            }
            _ => null_mut(),
        }
    }

    /// A block for `layout` (null if the region is full or unmapped), and
    /// whether it is fresh from the untouched part (so still zero).
    fn alloc(&mut self, layout: Layout) -> (*mut u8, bool) {
        if let Some(class) = class_of(layout.size(), layout.align()) {
            let head = self.small[class];
            if !head.is_null() {
                // SAFETY: a free block of this class holds the next one.
                self.small[class] = unsafe { *head.cast::<*mut u8>() };
                return (head, false);
            }
            // A class's blocks are aligned to their size (a power of two).
            let size = class_size(class);
            return (self.carve(size, size), true);
        }
        let len = layout.size().next_multiple_of(PAGE);
        // First fit among the free runs (at the alignment asked: runs are
        // page-aligned, some more); the rest of a longer one stays free.
        let mut link: *mut *mut Run = &mut self.runs;
        // SAFETY: the runs list links free runs this heap wrote.
        unsafe {
            while !(*link).is_null() {
                let run = *link;
                if (*run).len >= len && (run as usize).is_multiple_of(layout.align()) {
                    if (*run).len > len {
                        let rest = run.cast::<u8>().add(len).cast::<Run>();
                        rest.write(Run { next: (*run).next, len: (*run).len - len });
                        *link = rest;
                    } else {
                        *link = (*run).next;
                    }
                    return (run.cast(), false);
                }
                link = &mut (*run).next;
            }
        }
        (self.carve(len, layout.align().max(PAGE)), true)
    }

    /// Whether `ptr` lies in the region (else it came from the fallback).
    fn owns(&self, ptr: *mut u8) -> bool {
        self.start != 0
            && self.start != usize::MAX
            && (self.start..self.top).contains(&(ptr as usize))
    }

    /// # Safety
    ///
    /// `ptr` was returned by `alloc` with `layout` and is not used again.
    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        if let Some(class) = class_of(layout.size(), layout.align()) {
            // SAFETY: the block is at least 16 bytes, aligned, and free.
            unsafe { ptr.cast::<*mut u8>().write(self.small[class]) };
            self.small[class] = ptr;
            return;
        }
        let len = layout.size().next_multiple_of(PAGE);
        // SAFETY: the run is at least a page, page-aligned, and free.
        unsafe { ptr.cast::<Run>().write(Run { next: self.runs, len }) };
        self.runs = ptr.cast();
    }
}

/// How many bytes a block of `layout` really has (its class or its pages).
fn capacity(layout: Layout) -> usize {
    match class_of(layout.size(), layout.align()) {
        Some(class) => class_size(class),
        None => layout.size().next_multiple_of(PAGE),
    }
}

// SAFETY: blocks never overlap (each is carved once from the untouched part,
// or reused whole, or split, after a free); each is aligned as asked (class
// blocks to their power-of-two size, at least the alignment; runs to pages,
// larger alignments carved as asked); a freed block goes back to the list
// of its class or to the runs, keyed by the layout it was allocated with.
// What the region cannot hold comes from musl's malloc (`System`), and goes
// back there: a block is the region's if and only if it lies in it.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (p, _) = self.with(|s| s.alloc(layout));
        if p.is_null() {
            // SAFETY: the caller's contract is the same.
            return unsafe { System.alloc(layout) };
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let ours = self.with(|s| {
            let ours = s.owns(ptr);
            if ours {
                // SAFETY: the caller's contract is the same.
                unsafe { s.dealloc(ptr, layout) };
            }
            ours
        });
        if !ours {
            // SAFETY: a block not in the region came from System.
            unsafe { System.dealloc(ptr, layout) };
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (p, fresh) = self.with(|s| s.alloc(layout));
        if p.is_null() {
            // SAFETY: the caller's contract is the same.
            return unsafe { System.alloc_zeroed(layout) };
        }
        if !fresh {
            // SAFETY: p has layout.size() bytes; a reused block may hold
            // old bytes (a fresh one is untouched memory: zero).
            unsafe { p.write_bytes(0, layout.size()) };
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as GlobalAlloc::realloc requires of the caller.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let small = |l: Layout| class_of(l.size(), l.align()).is_some();
        if small(new) == small(layout)
            && capacity(new) == capacity(layout)
            && self.with(|s| s.owns(ptr))
        {
            return ptr;
        }
        // SAFETY: as above.
        let p = unsafe { self.alloc(new) };
        if !p.is_null() {
            // SAFETY: both blocks hold at least the smaller size; they are
            // distinct (ptr is still allocated).
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_distinct_and_reused() {
        let heap = Heap::new();
        let mut blocks = Vec::new();
        for (size, align) in
            [(1, 1), (16, 8), (17, 8), (100, 64), (2048, 8), (2049, 8), (5000, 4096), (3, 8192)]
        {
            let l = layout(size, align);
            // SAFETY: a non-zero size.
            let p = unsafe { heap.alloc(l) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "{size} {align}");
            // SAFETY: the block has `size` bytes.
            unsafe { p.write_bytes(0xa5, size) };
            blocks.push((p as usize, capacity(l), l));
        }
        let mut sorted = blocks.clone();
        sorted.sort_by_key(|b| b.0);
        for w in sorted.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "{w:?}");
        }
        let (start, used) = heap.used().unwrap();
        assert!(sorted.iter().all(|b| b.0 as u64 >= start && (b.0 + b.1) as u64 <= start + used));
        // Freed blocks come back for the same layouts: the heap does not grow.
        for &(p, _, l) in &blocks {
            // SAFETY: allocated above with l.
            unsafe { heap.dealloc(p as *mut u8, l) };
        }
        // (In the reverse order: the free lists are LIFO, so each layout
        // finds its own block, the 8 KiB-aligned one included.)
        for &(_, _, l) in blocks.iter().rev() {
            // SAFETY: a non-zero size.
            assert!(!unsafe { heap.alloc(l) }.is_null());
        }
        assert_eq!(heap.used().unwrap().1, used);
    }

    #[test]
    fn a_long_run_is_split_and_realloc_keeps_the_bytes() {
        let heap = Heap::new();
        let big = layout(10 * PAGE, 8);
        // SAFETY: a non-zero size.
        let p = unsafe { heap.alloc(big) };
        // SAFETY: allocated above.
        unsafe { heap.dealloc(p, big) };
        let used = heap.used().unwrap().1;
        // SAFETY: non-zero sizes.
        let (a, b) = unsafe { (heap.alloc(layout(3 * PAGE, 8)), heap.alloc(layout(7 * PAGE, 8))) };
        assert_eq!(heap.used().unwrap().1, used, "both from the freed run");
        assert_ne!(a, b);
        let l = layout(10, 1);
        // SAFETY: as GlobalAlloc requires.
        unsafe {
            let q = heap.alloc(l);
            q.copy_from(b"0123456789".as_ptr(), 10);
            let r = heap.realloc(q, l, 5000);
            assert_eq!(std::slice::from_raw_parts(r, 10), b"0123456789");
            let s = heap.realloc(r, layout(5000, 1), 3);
            assert_eq!(std::slice::from_raw_parts(s, 3), b"012");
        }
    }

    #[test]
    fn what_the_region_cannot_hold_comes_from_malloc() {
        let heap = Heap::new();
        // SAFETY: a non-zero size.
        let small = unsafe { heap.alloc(layout(8, 8)) };
        let (start, _) = heap.used().unwrap();
        assert_eq!(small as u64, start);
        // More than the whole region: musl's malloc gives it (address space
        // only, MAP_NORESERVE as mmap of malloc's own), outside the region.
        let huge = layout(RESERVE + PAGE, 8);
        // SAFETY: a non-zero size.
        let p = unsafe { heap.alloc(huge) };
        if !p.is_null() {
            assert!(!(start..start + RESERVE as u64).contains(&(p as u64)));
            // SAFETY: allocated above with huge.
            unsafe { heap.dealloc(p, huge) };
        }
        assert_eq!(heap.used().unwrap().1, PAGE as u64, "the region did not grow");
    }
}
