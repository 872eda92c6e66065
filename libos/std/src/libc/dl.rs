//! The dynamic linker's lookups, for a static image that has no dynamic
//! symbols: std resolves optional glibc functions with `dlsym` (its
//! `weak!` macro; the first met is `__pthread_get_minstack`, when a
//! thread is spawned) and takes its fallback when none is found.

use super::{c_char, c_void};

/// `dlsym(handle, name)`: NULL, always (nothing is dynamically linked).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn dlsym(_handle: *mut c_void, _name: *const c_char) -> *mut c_void {
    core::ptr::null_mut()
}
