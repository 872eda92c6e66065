//! Sorting and searching arrays for C code: `qsort`, `qsort_r` (GNU's
//! argument order) and `bsearch`.
//!
//! `qsort` is a heap sort: in place, no allocation (so it works, and
//! cannot fail, with the heap full), O(n log n) comparisons whatever the
//! input, and not stable, which `qsort` never promised (glibc's is not
//! either since 2.37).

use super::{c_int, c_void, size_t};

type Cmp<'a> = &'a mut dyn FnMut(*const c_void, *const c_void) -> c_int;

/// Swaps elements `i` and `j` (of `size` bytes) of `base`.
///
/// # Safety
///
/// `i` and `j` are elements of the array at `base`.
unsafe fn swap(base: *mut u8, size: usize, i: usize, j: usize) {
    if i != j {
        // SAFETY: two distinct elements of the array: disjoint.
        unsafe { core::ptr::swap_nonoverlapping(base.add(i * size), base.add(j * size), size) };
    }
}

/// Sifts element `root` down the heap of the first `end` elements.
///
/// # Safety
///
/// `base` holds at least `end` elements of `size` bytes.
unsafe fn sift(base: *mut u8, size: usize, mut root: usize, end: usize, cmp: Cmp) {
    let at = |i: usize| -> *const c_void {
        // SAFETY: i < end (checked by every caller below).
        unsafe { base.add(i * size) }.cast()
    };
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && cmp(at(child), at(child + 1)) < 0 {
            child += 1;
        }
        if cmp(at(root), at(child)) >= 0 {
            return;
        }
        // SAFETY: root and child are below end.
        unsafe { swap(base, size, root, child) };
        root = child;
    }
}

/// Sorts the `n` elements of `size` bytes at `base` with `cmp`.
///
/// # Safety
///
/// `base` holds `n` writable elements of `size` bytes.
unsafe fn heap_sort(base: *mut u8, n: usize, size: usize, cmp: Cmp) {
    if n < 2 || size == 0 {
        return;
    }
    for root in (0..n / 2).rev() {
        // SAFETY: the array's contract.
        unsafe { sift(base, size, root, n, cmp) };
    }
    for end in (1..n).rev() {
        // SAFETY: end < n.
        unsafe {
            swap(base, size, 0, end);
            sift(base, size, 0, end, cmp);
        }
    }
}

/// `qsort(base, n, size, cmp)`.
///
/// # Safety
///
/// `base` holds `n` writable elements of `size` bytes; `cmp` is callable
/// on any two of them.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn qsort(
    base: *mut c_void,
    n: size_t,
    size: size_t,
    cmp: unsafe extern "C" fn(*const c_void, *const c_void) -> c_int,
) {
    // SAFETY: the caller guarantees cmp on elements of the array.
    let mut f = |a: *const c_void, b: *const c_void| unsafe { cmp(a, b) };
    // SAFETY: the same contract.
    unsafe { heap_sort(base.cast(), n, size, &mut f) }
}

/// `qsort_r(base, n, size, cmp, arg)`: as `qsort`, `arg` passed to `cmp`
/// last (GNU's order).
///
/// # Safety
///
/// As `qsort`; `cmp` takes `arg`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn qsort_r(
    base: *mut c_void,
    n: size_t,
    size: size_t,
    cmp: unsafe extern "C" fn(*const c_void, *const c_void, *mut c_void) -> c_int,
    arg: *mut c_void,
) {
    // SAFETY: the caller guarantees cmp on elements of the array and arg.
    let mut f = |a: *const c_void, b: *const c_void| unsafe { cmp(a, b, arg) };
    // SAFETY: the same contract.
    unsafe { heap_sort(base.cast(), n, size, &mut f) }
}

/// `bsearch(key, base, n, size, cmp)`: an element of the sorted array equal
/// to `key`, or NULL.
///
/// # Safety
///
/// `base` holds `n` elements of `size` bytes sorted by `cmp`, which is
/// callable with `key` first.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn bsearch(
    key: *const c_void,
    base: *const c_void,
    n: size_t,
    size: size_t,
    cmp: unsafe extern "C" fn(*const c_void, *const c_void) -> c_int,
) -> *mut c_void {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        // SAFETY: mid < n: an element of the array.
        let at = unsafe { base.cast::<u8>().add(mid * size) }.cast::<c_void>();
        // SAFETY: the caller guarantees cmp on key and the elements.
        match unsafe { cmp(key, at) } {
            0 => return at.cast_mut(),
            r if r < 0 => hi = mid,
            _ => lo = mid + 1,
        }
    }
    core::ptr::null_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn by_value(a: *const c_void, b: *const c_void) -> c_int {
        // SAFETY: the tests sort arrays of u32.
        let (a, b) = unsafe { (*a.cast::<u32>(), *b.cast::<u32>()) };
        a.cmp(&b) as c_int
    }

    unsafe extern "C" fn by_key(a: *const c_void, b: *const c_void, flip: *mut c_void) -> c_int {
        // SAFETY: the tests sort arrays of [u8; 3] by their first byte.
        let (a, b) = unsafe { (*a.cast::<u8>(), *b.cast::<u8>()) };
        let o = a.cmp(&b) as c_int;
        if flip.is_null() { o } else { -o }
    }

    #[test]
    fn sorts_any_input_and_finds_what_is_there() {
        let mut seed = 0x2545_f491u32;
        for n in [0usize, 1, 2, 3, 7, 100, 1000] {
            let mut v: std::vec::Vec<u32> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed % 50
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable();
            // SAFETY: v holds n u32s.
            unsafe { qsort(v.as_mut_ptr().cast(), n, 4, by_value) };
            assert_eq!(v, want, "{n} elements");
            for k in [0u32, 25, 49, 77] {
                // SAFETY: v is sorted by by_value.
                let hit =
                    unsafe { bsearch((&raw const k).cast(), v.as_ptr().cast(), n, 4, by_value) };
                assert_eq!(hit.is_null(), !v.contains(&k));
                if !hit.is_null() {
                    // SAFETY: an element of v.
                    assert_eq!(unsafe { *hit.cast::<u32>() }, k);
                }
            }
        }
    }

    #[test]
    fn qsort_r_passes_its_argument_and_moves_whole_elements() {
        let mut v = [[3u8, 30, 31], [1, 10, 11], [2, 20, 21]];
        // SAFETY: v holds 3 elements of 3 bytes.
        unsafe { qsort_r(v.as_mut_ptr().cast(), 3, 3, by_key, core::ptr::null_mut()) };
        assert_eq!(v, [[1, 10, 11], [2, 20, 21], [3, 30, 31]]);
        // SAFETY: as above; a non-null argument flips the order.
        unsafe { qsort_r(v.as_mut_ptr().cast(), 3, 3, by_key, core::ptr::dangling_mut()) };
        assert_eq!(v, [[3, 30, 31], [2, 20, 21], [1, 10, 11]]);
    }
}
