//! `malloc` and friends over libos's heap (talc); anonymous `mmap` is in
//! [`super::mmap`].
//!
//! C's `free` does not say how large a block is, and talc needs the layout
//! back: every block carries a 16-byte header just below the pointer
//! handed out, with the size asked for and the padding in front of it
//! (16, or the alignment for `posix_memalign` and `aligned_alloc`), so
//! that the block's start and layout can be found again. `realloc` grows
//! or shrinks in place when talc can.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

// The guest's heap; in host unit tests, the host's allocator.
#[cfg(test)]
use ::std::alloc::System as Backend;
#[cfg(not(test))]
use libos::rt_private::Allocator as Backend;

use super::{c_int, c_void, set_errno, size_t};

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
}
