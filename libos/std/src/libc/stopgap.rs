//! Symbols that belong to other families, defined here only until those
//! families land (issue 12's threads and files work): each is a simple,
//! correct version, so that the guests of this branch link. When the
//! branches merge, the other family's definition is the one to keep:
//! delete this file (the duplicate symbols would not link).
//!
//! * `chdir`, `chroot` (paths, `file`): std's `Command` refers to both (a
//!   child's working directory and root); the guest's only directory is
//!   `/`, so changing to `/` succeeds, anything else is `ENOENT`, and
//!   `chroot` is `ENOSYS`;
//! * `sched_getaffinity` (`thread`): a guest's threads all run on the one
//!   host thread, so it reports CPU 0 alone, and std's
//!   `thread::available_parallelism` is 1, agreeing with `sysconf`;
//! * `dlsym` (the dynamic linker): NULL, as for a symbol no loaded object
//!   defines (a static image exports none); std looks optional functions
//!   up with it and falls back when they are absent.

use super::{c_char, c_int, c_void, fail, size_t};

/// `chdir(path)`: `/` only (see the module's documentation).
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn chdir(path: *const c_char) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    if unsafe { super::c_str(path) } == b"/" { 0 } else { fail(::libc::ENOENT) }
}

/// `chroot(path)`: `ENOSYS` (std's `Command::chroot` and
/// `os::unix::fs::chroot` report `Unsupported`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn chroot(_path: *const c_char) -> c_int {
    fail(::libc::ENOSYS)
}

/// `dlsym(handle, name)`: NULL.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn dlsym(_handle: *mut c_void, _name: *const c_char) -> *mut c_void {
    core::ptr::null_mut()
}

/// `sched_getaffinity(pid, size, mask)`: CPU 0 only, for the guest
/// itself (pid 0 or 1); `ESRCH` for any other process.
///
/// # Safety
///
/// `mask` is writable for `size` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sched_getaffinity(
    pid: ::libc::pid_t,
    size: size_t,
    mask: *mut ::libc::cpu_set_t,
) -> c_int {
    if pid != 0 && pid != 1 {
        return fail(::libc::ESRCH);
    }
    if size == 0 {
        return fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees size writable bytes at mask.
    unsafe {
        core::ptr::write_bytes(mask.cast::<u8>(), 0, size);
        *mask.cast::<u8>() = 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cpu() {
        // SAFETY: set is a writable cpu_set_t.
        unsafe {
            let mut set: ::libc::cpu_set_t = core::mem::zeroed();
            assert_eq!(sched_getaffinity(0, size_of::<::libc::cpu_set_t>(), &mut set), 0);
            assert_eq!(::libc::CPU_COUNT(&set), 1);
            assert!(::libc::CPU_ISSET(0, &set));
        }
    }
}
