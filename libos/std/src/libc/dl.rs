//! The dynamic linker's lookups, for a static image that has no dynamic
//! symbols. Programs look up with `dlsym` the glibc functions that older
//! glibcs lack, and take a fallback when none is found: std's `weak!`
//! macro (`__pthread_get_minstack`, ...), the getrandom crate
//! (`getrandom`, else `/dev/urandom`, which a guest does not have), and
//! others alike. `dlsym` finds those of them that libos-std defines
//! ([`PROBED`]), under any handle (`RTLD_DEFAULT`, `RTLD_NEXT`, the
//! program's own from `dlopen(NULL)`); any other name is NULL, as for a
//! function this C library does not have.
//!
//! A guest cannot load code: its image is all it runs (the tender maps
//! nothing else, and the filter allows no `mmap`). `dlopen` of a file
//! fails, with glibc's message for a library that is not there, which
//! programs with optional plug-ins (SQLite's extensions) report and go on
//! without.

use super::{c_char, c_void};

/// The functions of libos-std that programs probe for with `dlsym`: those
/// glibc added after 2.17 (the oldest glibc Rust supports) and the
/// Linux-only ones.
const PROBED: &[(&[u8], *const ())] = &[
    (b"getrandom", super::random::getrandom as *const ()),
    (b"getentropy", super::random::getentropy as *const ()),
    (b"renameat2", super::file::rename::renameat2 as *const ()),
    (b"statx", super::file::statx::statx as *const ()),
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

/// The handle `dlopen(NULL)` returns: the program itself.
static PROGRAM: u8 = 0;

/// The error `dlerror` reports next, if any (one message: what the last
/// failing `dlopen` asked for is not kept).
static PENDING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// `dlopen(file, flags)`: the program itself for NULL; NULL for any file
/// (see the module's documentation), with the error for `dlerror`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn dlopen(file: *const c_char, _flags: super::c_int) -> *mut c_void {
    if file.is_null() {
        return (&raw const PROGRAM).cast_mut().cast();
    }
    PENDING.store(true, core::sync::atomic::Ordering::Relaxed);
    core::ptr::null_mut()
}

/// `dlerror()`: the last error's message, once, then NULL.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn dlerror() -> *mut c_char {
    if PENDING.swap(false, core::sync::atomic::Ordering::Relaxed) {
        c"cannot open shared object file: No such file or directory".as_ptr().cast_mut()
    } else {
        core::ptr::null_mut()
    }
}

/// `dlclose(handle)`: nothing was loaded; 0.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn dlclose(_handle: *mut c_void) -> super::c_int {
    0
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
            let me = dlopen(core::ptr::null(), ::libc::RTLD_NOW);
            assert!(!me.is_null());
            assert!(!dlsym(me, c"getrandom".as_ptr()).is_null());
        }
        assert!(dlerror().is_null());
        assert!(dlopen(c"libfoo.so".as_ptr(), ::libc::RTLD_NOW).is_null());
        assert!(!dlerror().is_null());
        assert!(dlerror().is_null(), "reported once");
        assert_eq!(dlclose(core::ptr::null_mut()), 0);
    }
}
