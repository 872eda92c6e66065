//! Calls about the machine that fit no other family: CPU affinity and
//! the host name.
//!
//! A guest's threads all run on the one host thread, so it has one CPU:
//! `sched_getaffinity` reports CPU 0 alone, and std's
//! `thread::available_parallelism` is 1, agreeing with `sysconf`.
//!
//! A guest has no UTS namespace of its own to ask: its host name is the
//! `HOSTNAME` variable of its environment when set (as container runtimes
//! set it), else `localhost`.

use super::{c_char, c_int, fail, size_t};

/// `gethostname(name, len)`: see the module's documentation. Like glibc,
/// `ENAMETOOLONG` when the name and its NUL do not fit.
///
/// # Safety
///
/// `name` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn gethostname(name: *mut c_char, len: size_t) -> c_int {
    // SAFETY: a NUL-terminated literal.
    let var = unsafe { super::env::getenv(c"HOSTNAME".as_ptr()) };
    let host: &[u8] = if var.is_null() {
        b"localhost"
    } else {
        // SAFETY: getenv returns a NUL-terminated string.
        unsafe { super::c_str(var) }
    };
    if host.len() >= len {
        return fail(::libc::ENAMETOOLONG);
    }
    // SAFETY: host.len() + 1 <= len writable bytes at name.
    unsafe {
        core::ptr::copy_nonoverlapping(host.as_ptr(), name.cast::<u8>(), host.len());
        *name.add(host.len()) = 0;
    }
    0
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
    fn the_host_name_fits_or_is_too_long() {
        let mut buf = [1 as c_char; 16];
        // SAFETY: buf is writable for its length (and for 3).
        unsafe {
            assert_eq!(gethostname(buf.as_mut_ptr(), buf.len()), 0);
            assert!(!super::super::c_str(buf.as_ptr()).is_empty());
            assert_eq!(gethostname(buf.as_mut_ptr(), 0), -1);
        }
    }

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
