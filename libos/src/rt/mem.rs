//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp`.
//!
//! On `x86_64-unknown-linux-gnu` these come from the C library, which a
//! guest does not link, and `compiler_builtins` does not export them. Copies
//! and fills use `rep movsb`/`rep stosb` (fast on CPUs with ERMS, and LLVM
//! cannot turn them back into a call to the function being defined); the
//! comparisons are plain loops, which LLVM does not turn into calls.
//!
//! # Safety
//!
//! These are the C functions: callers (the compiler) guarantee the C
//! preconditions, that each pointer is valid for `n` bytes (and, for
//! `memcpy`, that the regions do not overlap).

#![allow(unsafe_code)]

use core::arch::asm;

/// # Safety
///
/// `dst` valid for `n` byte writes, `src` for `n` byte reads, no overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid; the direction
    // flag is clear per the ABI, so rep movsb copies forwards.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
///
/// `dst` valid for `n` byte writes, `src` for `n` byte reads; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst is below src or the ranges do not overlap: a forward copy is safe.
        // SAFETY: as for memcpy; overlap with dst below src is fine forwards.
        unsafe {
            asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
                 options(nostack, preserves_flags));
        }
    } else {
        // dst overlaps the tail of src: copy backwards, from the last byte.
        // SAFETY: the caller guarantees both ranges are valid; std sets the
        // direction flag for the copy and cld restores the ABI's state.
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rcx") n => _,
                 inout("rdi") dst.add(n - 1) => _,
                 inout("rsi") src.add(n - 1) => _,
                 options(nostack));
        }
    }
    dst
}

/// # Safety
///
/// `dst` valid for `n` byte writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees dst is valid for n bytes; the direction
    // flag is clear per the ABI.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
///
/// `a` and `b` valid for `n` byte reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and the caller guarantees n readable bytes at each.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
///
/// `a` and `b` valid for `n` byte reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}
