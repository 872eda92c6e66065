//! `malloc` and friends over libos's heap (talc), and anonymous `mmap`.
//!
//! C's `free` does not say how large a block is, and talc needs the layout
//! back: every block carries a 16-byte header just below the pointer
//! handed out, with the size asked for and the padding in front of it
//! (16, or the alignment for `posix_memalign` and `aligned_alloc`), so
//! that the block's start and layout can be found again. `realloc` grows
//! or shrinks in place when talc can.
//!
//! `mmap` serves what std and C programs map anonymously (std's signal
//! stack, large allocations of C code): page-aligned, zeroed blocks of the
//! heap. The guest cannot change page protections (no `mprotect` behind
//! the filter): `mprotect` accepts read-write, and `PROT_NONE` on mapped
//! blocks as a no-op (a guard that is not enforced; std asks for one under
//! its signal stack, which no signal ever uses here), and fails otherwise.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

// The guest's heap; in host unit tests, the host's allocator.
#[cfg(test)]
use ::std::alloc::System as Backend;
#[cfg(not(test))]
use libos::rt_private::Allocator as Backend;

use super::{c_int, c_void, fail, set_errno, size_t};

const HEADER: usize = 16;

/// The header below every block: the size asked for and the padding (and
/// alignment) of the allocation the block sits in.
#[repr(C)]
struct Header {
    size: usize,
    pad: usize,
}

fn layout(size: usize, pad: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(pad)?, pad).ok()
}

/// Allocates `size` bytes aligned to `align` (a power of two), zeroed if
/// asked; null without memory.
fn allocate(size: usize, align: usize, zeroed: bool) -> *mut c_void {
    let pad = align.max(HEADER);
    let Some(l) = layout(size, pad) else { return null_mut() };
    // SAFETY: the layout's size is at least pad > 0.
    let base = unsafe { if zeroed { Backend.alloc_zeroed(l) } else { Backend.alloc(l) } };
    if base.is_null() {
        return null_mut();
    }
    // SAFETY: base..base+pad+size is ours; the header fits in the pad
    // (pad >= 16) right below the returned pointer, which is aligned.
    unsafe {
        let p = base.add(pad);
        p.cast::<Header>().sub(1).write(Header { size, pad });
        p.cast()
    }
}

/// The header of a block from [`allocate`].
///
/// # Safety
///
/// `p` was returned by this module's allocation functions and not freed.
unsafe fn header(p: *mut c_void) -> Header {
    // SAFETY: the caller guarantees p is a live block with its header.
    unsafe { p.cast::<Header>().sub(1).read() }
}

/// `malloc(size)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn malloc(size: size_t) -> *mut c_void {
    let p = allocate(size, HEADER, false);
    if p.is_null() {
        set_errno(::libc::ENOMEM);
    }
    p
}

/// `calloc(n, size)`: zeroed; NULL (`ENOMEM`) if `n * size` overflows.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    let p = n.checked_mul(size).map_or(null_mut(), |total| allocate(total, HEADER, true));
    if p.is_null() {
        set_errno(::libc::ENOMEM);
    }
    p
}

/// `free(p)`.
///
/// # Safety
///
/// `p` is NULL or a live block from this allocator.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: the caller guarantees a live block; its header gives back
    // the allocation's start and layout.
    unsafe {
        let h = header(p);
        let l = layout(h.size, h.pad).expect("a block's header describes a valid layout");
        Backend.dealloc(p.cast::<u8>().sub(h.pad), l);
    }
}

/// `realloc(p, size)`: in place when talc can; NULL (`ENOMEM`, `p`
/// untouched) without memory.
///
/// # Safety
///
/// `p` is NULL or a live block from this allocator.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: size_t) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    // SAFETY: the caller guarantees a live block.
    let h = unsafe { header(p) };
    let (Some(old), Some(new_total)) = (layout(h.size, h.pad), size.checked_add(h.pad)) else {
        set_errno(::libc::ENOMEM);
        return null_mut();
    };
    if Layout::from_size_align(new_total, h.pad).is_err() {
        set_errno(::libc::ENOMEM);
        return null_mut();
    }
    // SAFETY: base and old describe the live allocation; new_total is a
    // valid size for its alignment (checked above).
    unsafe {
        let base = Backend.realloc(p.cast::<u8>().sub(h.pad), old, new_total);
        if base.is_null() {
            set_errno(::libc::ENOMEM);
            return null_mut();
        }
        let q = base.add(h.pad);
        q.cast::<Header>().sub(1).write(Header { size, pad: h.pad });
        q.cast()
    }
}

/// `posix_memalign(out, align, size)`.
///
/// # Safety
///
/// `out` is valid for writing a pointer.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn posix_memalign(
    out: *mut *mut c_void,
    align: size_t,
    size: size_t,
) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(size_of::<usize>()) {
        return ::libc::EINVAL;
    }
    let p = allocate(size, align, false);
    if p.is_null() {
        return ::libc::ENOMEM;
    }
    // SAFETY: the caller guarantees out is writable.
    unsafe { out.write(p) };
    0
}

/// `aligned_alloc(align, size)` (and `memalign`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(::libc::EINVAL);
        return null_mut();
    }
    let p = allocate(size, align, false);
    if p.is_null() {
        set_errno(::libc::ENOMEM);
    }
    p
}

/// `memalign(align, size)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
    aligned_alloc(align, size)
}

/// `malloc_usable_size(p)`.
///
/// # Safety
///
/// `p` is NULL or a live block from this allocator.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> size_t {
    // SAFETY: the caller guarantees a live block.
    if p.is_null() { 0 } else { unsafe { header(p) }.size }
}

/// `mmap(addr, len, prot, flags, fd, off)`: anonymous private mappings
/// only, from the heap, page-aligned and zeroed; a hint address is
/// ignored, `MAP_FIXED` and files are refused (`ENODEV`, `EINVAL`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn mmap64(
    _addr: *mut c_void,
    len: size_t,
    _prot: c_int,
    flags: c_int,
    fd: c_int,
    _off: i64,
) -> *mut c_void {
    if len == 0 || flags & ::libc::MAP_FIXED != 0 {
        set_errno(::libc::EINVAL);
        return ::libc::MAP_FAILED;
    }
    if flags & ::libc::MAP_ANONYMOUS == 0 {
        // Files cannot be mapped: there is no mmap behind the filter.
        let _ = fd;
        set_errno(::libc::ENODEV);
        return ::libc::MAP_FAILED;
    }
    let Some(len) = len.checked_next_multiple_of(4096) else {
        set_errno(::libc::ENOMEM);
        return ::libc::MAP_FAILED;
    };
    let p = allocate(len, 4096, true);
    if p.is_null() {
        set_errno(::libc::ENOMEM);
        return ::libc::MAP_FAILED;
    }
    p
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

/// Whether `[addr, addr + len)` is exactly a block that [`mmap64`] made.
///
/// # Safety
///
/// `addr` is page-aligned and was returned by [`mmap64`] if it is a
/// mapping at all (anything else is refused before this is called).
unsafe fn is_mapping(addr: *mut c_void, len: size_t) -> bool {
    // SAFETY: see the caller's guarantee.
    let h = unsafe { header(addr) };
    h.pad == 4096 && len.checked_next_multiple_of(4096) == Some(h.size)
}

/// `munmap(addr, len)`: gives back a whole mapping made by `mmap`; parts
/// of one cannot be returned (`EINVAL`).
///
/// # Safety
///
/// `addr` is a mapping returned by `mmap` and not yet unmapped.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: size_t) -> c_int {
    if addr.is_null() || !(addr as usize).is_multiple_of(4096) {
        return fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees addr is a live mapping.
    if !unsafe { is_mapping(addr, len) } {
        return fail(::libc::EINVAL);
    }
    // SAFETY: a live block from allocate, freed once.
    unsafe { free(addr) };
    0
}

/// `mremap(addr, old_len, new_len, flags)`: a mapping made by `mmap`,
/// resized. With `MREMAP_MAYMOVE` it moves to a new block of the heap
/// (the contents kept, the growth zeroed, the old block given back);
/// without, only a size that rounds to the same pages succeeds, and any
/// other is `ENOMEM`, as Linux answers when it cannot resize in place.
/// `MREMAP_FIXED` and `MREMAP_DONTUNMAP` are `EINVAL`.
///
/// # Safety
///
/// `addr` is a mapping returned by `mmap` and not yet unmapped.
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
    if flags & !::libc::MREMAP_MAYMOVE != 0 || new_len == 0 {
        return refuse(::libc::EINVAL);
    }
    if addr.is_null() || !(addr as usize).is_multiple_of(4096) {
        return refuse(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees addr is a live mapping.
    if !unsafe { is_mapping(addr, old_len) } {
        return refuse(::libc::EFAULT);
    }
    let Some(new_pages) = new_len.checked_next_multiple_of(4096) else {
        return refuse(::libc::ENOMEM);
    };
    // SAFETY: as above.
    let old_pages = unsafe { header(addr) }.size;
    if new_pages == old_pages {
        return addr;
    }
    if flags & ::libc::MREMAP_MAYMOVE == 0 {
        return refuse(::libc::ENOMEM);
    }
    let p = allocate(new_pages, 4096, true);
    if p.is_null() {
        return refuse(::libc::ENOMEM);
    }
    // SAFETY: both blocks are live, distinct, and hold the bytes copied;
    // the old one is freed once.
    unsafe {
        core::ptr::copy_nonoverlapping(addr.cast::<u8>(), p.cast::<u8>(), old_pages.min(new_pages));
        free(addr);
    }
    p
}

/// `mprotect(addr, len, prot)`: see the module's documentation.
///
/// # Safety
///
/// `addr` is a mapping returned by `mmap` when `prot` is `PROT_NONE`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn mprotect(addr: *mut c_void, len: size_t, prot: c_int) -> c_int {
    if !(addr as usize).is_multiple_of(4096) {
        return fail(::libc::EINVAL);
    }
    match prot {
        p if p == ::libc::PROT_READ | ::libc::PROT_WRITE => 0,
        ::libc::PROT_NONE if len > 0 => 0,
        _ => fail(::libc::EACCES),
    }
}

/// `madvise(addr, len, advice)`: advice is only advice.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn madvise(_addr: *mut c_void, _len: size_t, _advice: c_int) -> c_int {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_size_alignment_and_contents() {
        // SAFETY: blocks are used within their sizes and freed once.
        unsafe {
            let p = malloc(10).cast::<u8>();
            assert!(!p.is_null() && (p as usize).is_multiple_of(16));
            p.write_bytes(7, 10);
            let q = realloc(p.cast(), 1000).cast::<u8>();
            assert_eq!(*q.add(9), 7);
            assert_eq!(malloc_usable_size(q.cast()), 1000);
            free(q.cast());
            let mut a = null_mut();
            assert_eq!(posix_memalign(&mut a, 256, 3), 0);
            assert!((a as usize).is_multiple_of(256));
            free(a);
            assert_eq!(posix_memalign(&mut a, 24, 3), ::libc::EINVAL);
            assert!(calloc(usize::MAX, 2).is_null());
            let z = calloc(4, 4).cast::<u32>();
            assert_eq!(*z.add(3), 0);
            free(z.cast());
        }
    }

    #[test]
    fn anonymous_mappings_come_from_the_heap() {
        let flags = ::libc::MAP_PRIVATE | ::libc::MAP_ANONYMOUS;
        let m = mmap64(null_mut(), 5000, ::libc::PROT_READ | ::libc::PROT_WRITE, flags, -1, 0);
        assert!(m != ::libc::MAP_FAILED && (m as usize).is_multiple_of(4096));
        // SAFETY: m is a fresh 8 KiB mapping.
        unsafe {
            assert_eq!(*m.cast::<u8>().add(8191), 0);
            assert_eq!(mprotect(m, 4096, ::libc::PROT_NONE), 0);
            assert_eq!(munmap(m, 5000), 0);
        }
        let file = mmap64(null_mut(), 4096, ::libc::PROT_READ, ::libc::MAP_PRIVATE, 3, 0);
        assert_eq!(file, ::libc::MAP_FAILED);
    }

    #[test]
    fn mappings_resize_by_moving_with_their_contents() {
        let flags = ::libc::MAP_PRIVATE | ::libc::MAP_ANONYMOUS;
        let m = mmap64(null_mut(), 4096, ::libc::PROT_READ | ::libc::PROT_WRITE, flags, -1, 0);
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
            let s = mremap(g, 3 * 4096, 4096, ::libc::MREMAP_MAYMOVE);
            assert_eq!(*s.cast::<u8>(), 7);
            assert_eq!(mremap(s, 8192, 4096, ::libc::MREMAP_MAYMOVE), ::libc::MAP_FAILED);
            assert_eq!(munmap(s, 4096), 0);
        }
    }
}
