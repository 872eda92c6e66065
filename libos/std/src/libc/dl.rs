//! The dynamic linker's lookups, for a static image that has no dynamic
//! symbols. Programs look up with `dlsym` the glibc functions that older
//! glibcs lack, and take a fallback when none is found: std's `weak!`
//! macro (`__pthread_get_minstack`, ...), the getrandom crate
//! (`getrandom`, else `/dev/urandom`, which a guest does not have), and
//! others alike. `dlsym` finds those of them that libos-std defines
//! ([`PROBED`]), under any handle (`RTLD_DEFAULT`, `RTLD_NEXT`); any
//! other name is NULL, as for a function this C library does not have.

use super::{c_char, c_void};

/// The functions of libos-std that programs probe for with `dlsym`: those
/// glibc added after 2.17 (the oldest glibc Rust supports) and the
/// Linux-only ones.
const PROBED: &[(&[u8], *const ())] = &[
    (b"getrandom", super::random::getrandom as *const ()),
    (b"getentropy", super::random::getentropy as *const ()),
    (b"renameat2", super::file::rename::renameat2 as *const ()),
    (b"clock_nanosleep", super::time::clock_nanosleep as *const ()),
    (b"accept4", super::socket::accept4 as *const ()),
    (b"pipe2", super::pipe::pipe2 as *const ()),
    (b"dup3", super::fd::dup3 as *const ()),
    (b"eventfd", super::eventfd::eventfd as *const ()),
    (b"epoll_pwait", super::epoll::epoll_pwait as *const ()),
    (b"sched_getaffinity", super::thread::sched_getaffinity as *const ()),
    (b"getauxval", super::env::getauxval as *const ()),
    (b"pthread_getattr_np", super::thread::pthread_getattr_np as *const ()),
];

/// `dlsym(handle, name)`: see the module's documentation.
///
/// # Safety
///
/// `name` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn dlsym(_handle: *mut c_void, name: *const c_char) -> *mut c_void {
    if name.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let name = unsafe { super::c_str(name) };
    PROBED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(core::ptr::null_mut(), |&(_, f)| f.cast_mut().cast())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probed_functions_are_found_and_others_are_not() {
        // SAFETY: NUL-terminated literals.
        unsafe {
            assert_eq!(
                dlsym(core::ptr::null_mut(), c"getrandom".as_ptr()),
                super::super::random::getrandom as *mut c_void
            );
            assert!(dlsym(core::ptr::null_mut(), c"__pthread_get_minstack".as_ptr()).is_null());
            assert!(dlsym(core::ptr::null_mut(), c"getrandom2".as_ptr()).is_null());
            assert!(dlsym(core::ptr::null_mut(), core::ptr::null()).is_null());
        }
    }
}
