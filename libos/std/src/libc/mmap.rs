//! Anonymous memory mappings: `mmap`, `munmap`, `mremap`, `mprotect`,
//! `madvise`, over libos's heap (talc).
//!
//! What std and C programs map anonymously (std's signal stack, C code's
//! large allocations, and whole allocators: mimalloc, jemalloc) gets
//! page-aligned, zeroed blocks of the heap, 64 KiB-aligned from 64 KiB on
//! (what allocators ask for, so that they need not trim; Linux is free to
//! place a mapping at any page). A table records the mapped ranges, so
//! that they behave as Linux's do where programs rely on it:
//!
//! * `munmap` of any page range: whole mappings, their heads and tails (an
//!   allocator that over-allocates to align trims both), holes in them
//!   (the mapping splits in two), and ranges with nothing mapped
//!   (success, as on Linux). A block goes back to the heap when none of
//!   its pages is mapped any more; the pages unmapped before that stay
//!   reserved in it (the heap cannot take back part of a block).
//! * `madvise(MADV_DONTNEED)` zeroes the mapped anonymous pages of the range (a file's
//!   pages: file/map.rs): Linux
//!   gives a private anonymous page back and the next touch reads zeros,
//!   which allocators count on for memory they hand out as zeroed.
//!   `MADV_FREE` and the other advice change nothing (Linux may or may not
//!   free `MADV_FREE` pages, so their contents are either).
//! * The table holds [`MAX_MAPPINGS`] ranges; a call that would need more
//!   fails with `ENOMEM`, as Linux's does past `vm.max_map_count`.
//!
//! The guest cannot change page protections (no `mprotect` behind the
//! filter): `mprotect` accepts read-write (and read-only and execute
//! requests as read-write: nothing is enforced), and `PROT_NONE` as a
//! no-op (a guard that is not enforced; std asks for one under its
//! signal stack, which no signal ever uses here). A `PROT_NONE`
//! reservation is memory like any other: address space is the heap.
//! Files of a FAT disk are mapped into such memory, kept coherent with
//! the file by file/map.rs; `/proc/self/exe` read-only and in place
//! ([`map_file`]); other files are `ENODEV`. Fixed addresses are `EINVAL`
//! except over pages mapped already (new zeroed pages in their place:
//! how jemalloc commits and decommits what it reserved).

use core::alloc::{GlobalAlloc, Layout};

// The guest's heap; in host unit tests, the host's allocator.
#[cfg(test)]
use ::std::alloc::System as Backend;
#[cfg(not(test))]
use libos::rt_private::Allocator as Backend;

use super::start::Lock;
use super::{c_int, c_void, fail, set_errno, size_t};

const PAGE: usize = 4096;

/// Mappings of at least this size are aligned to it.
const BIG_ALIGN: usize = 64 * 1024;

/// How many mapped ranges may exist at once.
pub const MAX_MAPPINGS: usize = 1024;

/// A mapped range `[start, end)` and the heap block it lies in (several
/// ranges share a block once a `munmap` split it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: usize,
    end: usize,
    block: usize,
    layout: Layout,
}

/// The mapped ranges, sorted by address, in a table that never allocates
/// (mimalloc calls `mmap` from inside its own allocations).
#[derive(Debug)]
struct Table {
    ranges: [Option<Range>; MAX_MAPPINGS],
    len: usize,
}

impl Table {
    const fn new() -> Self {
        Self { ranges: [None; MAX_MAPPINGS], len: 0 }
    }

    fn get(&self, i: usize) -> Range {
        self.ranges[i].expect("ranges below len are present")
    }

    fn insert(&mut self, r: Range) -> bool {
        if self.len == MAX_MAPPINGS {
            return false;
        }
        let at = (0..self.len).find(|&i| self.get(i).start > r.start).unwrap_or(self.len);
        self.ranges.copy_within(at..self.len, at + 1);
        self.ranges[at] = Some(r);
        self.len += 1;
        true
    }

    fn remove(&mut self, at: usize) {
        self.ranges.copy_within(at + 1..self.len, at);
        self.len -= 1;
        self.ranges[self.len] = None;
    }

    /// Whether some range still lies in `block`.
    fn uses(&self, block: usize) -> bool {
        (0..self.len).any(|i| self.get(i).block == block)
    }

    /// The index of the range holding `addr`.
    fn find(&self, addr: usize) -> Option<usize> {
        (0..self.len).find(|&i| {
            let r = self.get(i);
            r.start <= addr && addr < r.end
        })
    }

    /// Whether every page of `[start, end)` is mapped.
    fn covers(&self, start: usize, end: usize) -> bool {
        let mut at = start;
        for i in 0..self.len {
            let r = self.get(i);
            if r.start <= at && at < r.end {
                at = r.end;
            }
            if at >= end {
                return true;
            }
        }
        at >= end
    }

    /// Unmaps `[start, end)` from the ranges and gives the blocks that
    /// no range uses any more back to the heap; false (nothing changed)
    /// when a split would need a range more than the table holds.
    fn unmap(&mut self, start: usize, end: usize) -> bool {
        let split = (0..self.len).any(|i| {
            let r = self.get(i);
            r.start < start && end < r.end
        });
        if split && self.len == MAX_MAPPINGS {
            return false;
        }
        let mut i = 0;
        while i < self.len {
            let r = self.get(i);
            if r.end <= start || end <= r.start {
                i += 1;
            } else if r.start < start && end < r.end {
                // A hole: the range splits in two (and no other range
                // overlaps, since ranges do not overlap).
                self.ranges[i] = Some(Range { end: start, ..r });
                self.insert(Range { start: end, ..r });
                return true;
            } else if r.start < start {
                self.ranges[i] = Some(Range { end: start, ..r });
                i += 1;
            } else if end < r.end {
                self.ranges[i] = Some(Range { start: end, ..r });
                i += 1;
            } else {
                self.remove(i);
                if !self.uses(r.block) {
                    // SAFETY: the block came from Backend with this
                    // layout and no range lies in it any more.
                    unsafe { Backend.dealloc(r.block as *mut u8, r.layout) };
                }
            }
        }
        true
    }
}

static TABLE: Lock<Table> = Lock::new(Table::new());

fn pages(len: usize) -> Option<usize> {
    len.checked_next_multiple_of(PAGE)
}

/// A new mapping of `len` bytes (a multiple of the page), zeroed; null
/// without memory or room in the table.
fn map(len: usize) -> *mut c_void {
    let align = if len >= BIG_ALIGN { BIG_ALIGN } else { PAGE };
    let Ok(layout) = Layout::from_size_align(len, align) else {
        return core::ptr::null_mut();
    };
    // SAFETY: len > 0.
    let p = unsafe { Backend.alloc_zeroed(layout) };
    if p.is_null() {
        return p.cast();
    }
    let r = Range { start: p as usize, end: p as usize + len, block: p as usize, layout };
    if !TABLE.with(|t| t.insert(r)) {
        // SAFETY: allocated just above with this layout.
        unsafe { Backend.dealloc(p, layout) };
        return core::ptr::null_mut();
    }
    p.cast()
}

/// A new zeroed mapping of `len` bytes (a multiple of the page), for a
/// file's mapping (file/map.rs); `None` without memory.
pub fn map_pages(len: usize) -> Option<*mut c_void> {
    let p = map(len);
    (!p.is_null()).then_some(p)
}

/// Whether every page of `[start, end)` is mapped.
pub fn is_mapped(start: usize, end: usize) -> bool {
    TABLE.with(|t| t.covers(start, end))
}

/// `mmap(addr, len, prot, flags, fd, off)`: anonymous mappings from the
/// heap (see the module's documentation), and files (file/map.rs); a hint
/// address is ignored; `MAP_FIXED` only over pages mapped already
/// ([`remap_fixed`]).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn mmap64(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    if len == 0 {
        set_errno(::libc::EINVAL);
        return ::libc::MAP_FAILED;
    }
    if flags & ::libc::MAP_ANONYMOUS == 0 {
        return map_file(len, prot, flags, fd, off);
    }
    if flags & ::libc::MAP_FIXED != 0 {
        return remap_fixed(addr, len);
    }
    let p = pages(len).map_or(core::ptr::null_mut(), map);
    if p.is_null() {
        set_errno(::libc::ENOMEM);
        return ::libc::MAP_FAILED;
    }
    p
}

/// A mapping of a file: a FAT disk's file (file/map.rs), or
/// `/proc/self/exe`, the image file, which the
/// tender mapped read-only: its pages are handed out in place, for
/// reading (std's backtraces map it to read its symbols). Any other
/// object is `ENODEV`, a writable or
/// shared-writable mapping of the image `EACCES`, an unaligned offset
/// `EINVAL`. `munmap` of it changes nothing (its pages are in no range of
/// the table: "nothing mapped").
fn map_file(len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) -> *mut c_void {
    let open = match super::fd::get(fd) {
        Ok(o) => o,
        Err(e) => {
            set_errno(e);
            return ::libc::MAP_FAILED;
        }
    };
    if let Some(r) = super::file::map::map(&open, len, prot, flags, off) {
        return r.unwrap_or_else(|e| {
            set_errno(e);
            ::libc::MAP_FAILED
        });
    }
    let image = super::file::proc::image_of(&*open.file);
    let r = match image {
        None => Err(::libc::ENODEV),
        Some(_) if prot & ::libc::PROT_WRITE != 0 || flags & ::libc::MAP_FIXED != 0 => {
            Err(::libc::EACCES)
        }
        Some(_) if off < 0 || !(off as usize).is_multiple_of(PAGE) => Err(::libc::EINVAL),
        Some(image) => {
            let off = off as usize;
            // Past the end of the file, Linux maps pages that fault when
            // touched; here the offset must start inside the file.
            if off >= image.len() || len > image.len().next_multiple_of(PAGE) - off {
                Err(::libc::ENXIO)
            } else {
                Ok(image[off..].as_ptr().cast_mut().cast::<c_void>())
            }
        }
    };
    r.unwrap_or_else(|e| {
        set_errno(e);
        ::libc::MAP_FAILED
    })
}

/// `mmap(addr, len, ..., MAP_FIXED | MAP_ANONYMOUS, ...)`: new zeroed
/// pages in place of pages this library mapped: what allocators do to
/// commit or decommit memory they reserved (jemalloc, when the system
/// does not overcommit). The range must be mapped already (`EINVAL`
/// otherwise: new memory cannot be placed at a chosen address); its pages
/// read as zeros afterwards, as on Linux, and stay in their mappings.
fn remap_fixed(addr: *mut c_void, len: usize) -> *mut c_void {
    let start = addr as usize;
    let end = pages(len).and_then(|l| start.checked_add(l));
    let ok =
        start.is_multiple_of(PAGE) && end.is_some_and(|end| TABLE.with(|t| t.covers(start, end)));
    let Some(end) = end.filter(|_| ok) else {
        set_errno(::libc::EINVAL);
        return ::libc::MAP_FAILED;
    };
    // SAFETY: every page of [start, end) is mapped (checked above), and
    // the caller replaces what was there.
    unsafe { core::ptr::write_bytes(addr.cast::<u8>(), 0, end - start) };
    addr
}

/// `mmap`: the same as [`mmap64`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    mmap64(addr, len, prot, flags, fd, off)
}

/// `munmap(addr, len)`: unmaps the pages of `[addr, addr + len)` that
/// `mmap` mapped, whole mappings or parts (see the module's
/// documentation); pages not mapped are left alone, as on Linux.
/// `EINVAL` for an unaligned address or an empty length, `ENOMEM` when a
/// split would need more ranges than the table holds.
///
/// # Safety
///
/// Nothing uses the unmapped pages again.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: size_t) -> c_int {
    let start = addr as usize;
    if len == 0 || !start.is_multiple_of(PAGE) {
        return fail(::libc::EINVAL);
    }
    let Some(end) = pages(len).and_then(|l| start.checked_add(l)) else {
        return fail(::libc::EINVAL);
    };
    // A file's shared pages go back to the file first.
    super::file::map::unmapping(start, end);
    if !TABLE.with(|t| t.unmap(start, end)) {
        return fail(::libc::ENOMEM);
    }
    0
}

/// `mremap(addr, old_len, new_len, flags)`: resizes the mapping at
/// `addr`, whose first `old_len` bytes must be mapped as one range
/// (`EFAULT` otherwise). Shrinking unmaps the tail, in place; the same
/// pages succeed in place; growing moves with `MREMAP_MAYMOVE` (the
/// contents kept, the growth zeroed, the old pages unmapped) and is
/// `ENOMEM` without, as Linux answers when it cannot grow in place.
/// `MREMAP_FIXED` and `MREMAP_DONTUNMAP` are `EINVAL`.
///
/// # Safety
///
/// Nothing uses the old pages again when the mapping moves or shrinks.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn mremap(
    addr: *mut c_void,
    old_len: size_t,
    new_len: size_t,
    flags: c_int,
) -> *mut c_void {
    let refuse = |e| {
        set_errno(e);
        ::libc::MAP_FAILED
    };
    let start = addr as usize;
    if flags & !::libc::MREMAP_MAYMOVE != 0 || new_len == 0 || !start.is_multiple_of(PAGE) {
        return refuse(::libc::EINVAL);
    }
    let (Some(old), Some(new)) = (pages(old_len.max(1)), pages(new_len)) else {
        return refuse(::libc::ENOMEM);
    };
    let mapped = TABLE.with(|t| t.find(start).map(|i| t.get(i)));
    if mapped.is_none_or(|r| r.end - start < old) {
        return refuse(::libc::EFAULT);
    }
    if new <= old {
        // SAFETY: the caller gives up the tail.
        if new < old && unsafe { munmap((start + new) as *mut c_void, old - new) } != 0 {
            return ::libc::MAP_FAILED;
        }
        return addr;
    }
    if flags & ::libc::MREMAP_MAYMOVE == 0 {
        return refuse(::libc::ENOMEM);
    }
    let p = map(new);
    if p.is_null() {
        return refuse(::libc::ENOMEM);
    }
    // SAFETY: both ranges are mapped, distinct, and hold the bytes
    // copied; the caller gives up the old pages.
    unsafe {
        core::ptr::copy_nonoverlapping(addr.cast::<u8>(), p.cast::<u8>(), old);
        // A file's mapping moves along, its growth read from the file.
        super::file::map::moved(start, old, p as usize, new);
        munmap(addr, old);
    }
    p
}

/// `mprotect(addr, len, prot)`: see the module's documentation.
///
/// # Safety
///
/// None beyond C's contract: nothing changes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn mprotect(addr: *mut c_void, _len: size_t, prot: c_int) -> c_int {
    if !(addr as usize).is_multiple_of(PAGE) {
        return fail(::libc::EINVAL);
    }
    let known = ::libc::PROT_READ | ::libc::PROT_WRITE | ::libc::PROT_EXEC;
    if prot & !known != 0 {
        return fail(::libc::EINVAL);
    }
    0
}

/// `madvise(addr, len, advice)`: `MADV_DONTNEED` zeroes the mapped pages
/// of the range; other advice changes nothing (see the module's
/// documentation). `EINVAL` for an unaligned address.
///
/// # Safety
///
/// With `MADV_DONTNEED`, the caller expects the range's mapped pages to
/// read as zeros afterwards (nothing else holds data there).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn madvise(addr: *mut c_void, len: size_t, advice: c_int) -> c_int {
    let start = addr as usize;
    if !start.is_multiple_of(PAGE) {
        return fail(::libc::EINVAL);
    }
    let Some(end) = pages(len).and_then(|l| start.checked_add(l)) else {
        return fail(::libc::EINVAL);
    };
    if advice == ::libc::MADV_DONTNEED {
        // Files' pages keep (shared) or read again (private) their bytes.
        let mut files = super::file::map::dontneed(start, end);
        files.sort_unstable();
        TABLE.with(|t| {
            for i in 0..t.len {
                let r = t.get(i);
                let (mut a, b) = (r.start.max(start), r.end.min(end));
                if a >= b {
                    continue;
                }
                for &(fa, fb) in files.iter().chain(core::iter::once(&(b, b))) {
                    let to = fa.clamp(a, b);
                    if a < to {
                        // SAFETY: [a, to) is mapped (inside the range r)
                        // and holds no file's pages.
                        unsafe { core::ptr::write_bytes(a as *mut u8, 0, to - a) };
                    }
                    a = a.max(fb.min(b));
                }
            }
        });
    }
    0
}

/// `posix_madvise(addr, len, advice)`: the same, returning the error.
///
/// # Safety
///
/// As [`madvise`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn posix_madvise(addr: *mut c_void, len: size_t, advice: c_int) -> c_int {
    // POSIX_MADV_DONTNEED (4) is only advice: it does not discard.
    let advice = if advice == ::libc::MADV_DONTNEED { ::libc::MADV_NORMAL } else { advice };
    // SAFETY: as the caller guarantees.
    if unsafe { madvise(addr, len, advice) } == 0 { 0 } else { super::errno() }
}

/// `sbrk(increment)`: there is no data segment to grow (the heap is
/// libos's): -1 and `ENOMEM`, which allocators that try it first
/// (jemalloc's `dss`) take as "use `mmap`".
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn sbrk(_increment: isize) -> *mut c_void {
    set_errno(::libc::ENOMEM);
    usize::MAX as *mut c_void
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ptr::null_mut;

    const RW: c_int = ::libc::PROT_READ | ::libc::PROT_WRITE;
    const ANON: c_int = ::libc::MAP_PRIVATE | ::libc::MAP_ANONYMOUS;

    fn mapped(p: *mut c_void, len: usize) -> bool {
        TABLE.with(|t| {
            let s = p as usize;
            (s..s + len).step_by(PAGE).all(|a| t.find(a).is_some())
        })
    }

    fn unmapped(p: *mut c_void, len: usize) -> bool {
        TABLE.with(|t| {
            let s = p as usize;
            (s..s + len).step_by(PAGE).all(|a| t.find(a).is_none())
        })
    }

    #[test]
    fn anonymous_mappings_come_from_the_heap() {
        let m = mmap64(null_mut(), 5000, RW, ANON, -1, 0);
        assert!(m != ::libc::MAP_FAILED && (m as usize).is_multiple_of(PAGE));
        let big = mmap64(null_mut(), 100_000, RW, ANON, -1, 0);
        assert!((big as usize).is_multiple_of(BIG_ALIGN), "big mappings are 64 KiB-aligned");
        // SAFETY: fresh mappings of 8 KiB and 100,000 bytes.
        unsafe {
            assert_eq!(*m.cast::<u8>().add(8191), 0);
            assert_eq!(mprotect(m, 4096, ::libc::PROT_NONE), 0);
            assert_eq!(mprotect(m.cast::<u8>().add(1).cast(), 4096, RW), -1);
            assert_eq!(munmap(m, 5000), 0);
            assert_eq!(munmap(big, 100_000), 0);
            assert_eq!(munmap(m.cast::<u8>().add(1).cast(), 4096), -1);
            assert_eq!(munmap(m, 0), -1);
        }
        assert!(unmapped(m, 8192));
        let file = mmap64(null_mut(), 4096, ::libc::PROT_READ, ::libc::MAP_PRIVATE, 3, 0);
        assert_eq!(file, ::libc::MAP_FAILED);
        let fixed = mmap64(m, 4096, RW, ANON | ::libc::MAP_FIXED, -1, 0);
        assert_eq!(fixed, ::libc::MAP_FAILED);
    }

    #[test]
    fn a_fixed_mapping_replaces_mapped_pages_with_zeros() {
        // jemalloc commits and decommits reserved pages this way.
        let m = mmap64(null_mut(), 4 * PAGE, RW, ANON, -1, 0).cast::<u8>();
        assert!(m.cast::<c_void>() != ::libc::MAP_FAILED);
        // SAFETY: m is a fresh 4-page mapping.
        unsafe {
            core::ptr::write_bytes(m, 0xaa, 4 * PAGE);
            let mid = m.add(PAGE).cast::<c_void>();
            let fixed = mmap64(mid, 2 * PAGE, ::libc::PROT_NONE, ANON | ::libc::MAP_FIXED, -1, 0);
            assert_eq!(fixed, mid);
            assert_eq!(*m.add(PAGE - 1), 0xaa);
            assert!((PAGE..3 * PAGE).all(|i| *m.add(i) == 0));
            assert_eq!(*m.add(3 * PAGE), 0xaa);
            assert!(mapped(m.cast(), 4 * PAGE));
            // Not all mapped (the last page is past the mapping), or not
            // page-aligned: refused, nothing changed.
            let past = m.add(3 * PAGE).cast::<c_void>();
            assert_eq!(
                mmap64(past, 2 * PAGE, RW, ANON | ::libc::MAP_FIXED, -1, 0),
                ::libc::MAP_FAILED
            );
            assert_eq!(*m.add(3 * PAGE), 0xaa);
            let odd = m.add(1).cast::<c_void>();
            assert_eq!(mmap64(odd, PAGE, RW, ANON | ::libc::MAP_FIXED, -1, 0), ::libc::MAP_FAILED);
            assert_eq!(munmap(m.cast(), 4 * PAGE), 0);
        }
    }

    #[test]
    fn parts_of_a_mapping_unmap_as_on_linux() {
        // An allocator's alignment by over-allocation: map 16 pages, keep
        // the middle 8, unmap the head and the tail.
        let m = mmap64(null_mut(), 16 * PAGE, RW, ANON, -1, 0).cast::<u8>();
        assert!(m.cast::<c_void>() != ::libc::MAP_FAILED);
        // SAFETY: each range lies in the mapping, used only while mapped.
        unsafe {
            assert_eq!(munmap(m.cast(), 3 * PAGE), 0, "the head");
            assert_eq!(munmap(m.add(11 * PAGE).cast(), 5 * PAGE), 0, "the tail");
            assert!(unmapped(m.cast(), 3 * PAGE) && unmapped(m.add(11 * PAGE).cast(), 5 * PAGE));
            assert!(mapped(m.add(3 * PAGE).cast(), 8 * PAGE));
            m.add(3 * PAGE).write_bytes(9, 8 * PAGE);
            // A hole splits the rest in two.
            assert_eq!(munmap(m.add(5 * PAGE).cast(), PAGE), 0, "a hole");
            assert!(
                mapped(m.add(3 * PAGE).cast(), 2 * PAGE) && mapped(m.add(6 * PAGE).cast(), PAGE)
            );
            assert!(unmapped(m.add(5 * PAGE).cast(), PAGE));
            assert_eq!(*m.add(6 * PAGE), 9, "what stays mapped keeps its contents");
            // Unmapping again, or where nothing is mapped, succeeds.
            assert_eq!(munmap(m.cast(), 3 * PAGE), 0);
            // One call over both pieces and the hole gives the block back.
            assert_eq!(munmap(m.add(3 * PAGE).cast(), 8 * PAGE), 0);
            assert!(unmapped(m.cast(), 16 * PAGE));
        }
    }

    #[test]
    fn dontneed_reads_back_zeros_and_free_keeps_or_zeroes() {
        let m = mmap64(null_mut(), 4 * PAGE, RW, ANON, -1, 0).cast::<u8>();
        // SAFETY: within the fresh mapping.
        unsafe {
            m.write_bytes(0xa5, 4 * PAGE);
            assert_eq!(madvise(m.add(PAGE).cast(), 2 * PAGE, ::libc::MADV_DONTNEED), 0);
            assert_eq!(*m.add(PAGE - 1), 0xa5);
            assert!((PAGE..3 * PAGE).all(|i| *m.add(i) == 0), "zero on the next touch");
            assert_eq!(*m.add(3 * PAGE), 0xa5);
            assert_eq!(madvise(m.cast(), PAGE, ::libc::MADV_FREE), 0);
            assert!(matches!(*m, 0 | 0xa5));
            assert_eq!(madvise(m.add(1).cast(), PAGE, ::libc::MADV_DONTNEED), -1);
            assert_eq!(posix_madvise(m.add(1).cast(), PAGE, 0), ::libc::EINVAL);
            assert_eq!(munmap(m.cast(), 4 * PAGE), 0);
        }
    }

    #[test]
    fn mappings_resize_by_moving_with_their_contents() {
        let m = mmap64(null_mut(), 4096, RW, ANON, -1, 0);
        // SAFETY: m is a fresh 4 KiB mapping; each result is checked.
        unsafe {
            m.cast::<u8>().write(7);
            assert_eq!(mremap(m, 4096, 100, 0), m, "the same pages: in place");
            assert_eq!(mremap(m, 4096, 8192, 0), ::libc::MAP_FAILED, "no room to grow in place");
            assert_eq!(mremap(m, 4000, 8192, ::libc::MREMAP_FIXED), ::libc::MAP_FAILED);
            let g = mremap(m, 4096, 3 * 4096, ::libc::MREMAP_MAYMOVE);
            assert!(g != ::libc::MAP_FAILED && (g as usize).is_multiple_of(4096));
            assert_eq!(*g.cast::<u8>(), 7, "contents kept");
            assert_eq!(*g.cast::<u8>().add(3 * 4096 - 1), 0, "growth zeroed");
            assert!(unmapped(m, 4096), "the old pages are unmapped");
            let s = mremap(g, 3 * 4096, 4096, ::libc::MREMAP_MAYMOVE);
            assert_eq!(s, g, "shrinking stays in place");
            assert_eq!(*s.cast::<u8>(), 7);
            assert!(unmapped(g.cast::<u8>().add(4096).cast(), 2 * 4096));
            assert_eq!(mremap(s, 8192, 4096, ::libc::MREMAP_MAYMOVE), ::libc::MAP_FAILED);
            assert_eq!(munmap(s, 4096), 0);
        }
    }

    #[test]
    fn there_is_no_break_to_move() {
        assert_eq!(sbrk(0) as usize, usize::MAX);
        assert_eq!(sbrk(4096) as usize, usize::MAX);
    }

    #[test]
    fn a_full_table_refuses_with_enomem() {
        let mut t = Table::new();
        let l = Layout::from_size_align(PAGE, PAGE).unwrap();
        for i in 0..MAX_MAPPINGS {
            let start = (i + 1) * 0x10_0000;
            assert!(t.insert(Range { start, end: start + 3 * PAGE, block: start, layout: l }));
        }
        assert!(!t.insert(Range { start: 1, end: 2, block: 1, layout: l }));
        // A hole in a range would need one more.
        assert!(!t.unmap(0x10_0000 + PAGE, 0x10_0000 + 2 * PAGE));
        assert_eq!(t.get(0).end, 0x10_0000 + 3 * PAGE, "nothing changed");
        // Trimming a tail needs none (and frees nothing: the block is
        // still used).
        assert!(t.unmap(0x10_0000 + 2 * PAGE, 0x10_0000 + 3 * PAGE));
        assert_eq!(t.get(0).end, 0x10_0000 + 2 * PAGE);
    }
}
