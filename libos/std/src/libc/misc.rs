//! Calls about the machine that fit no other family: CPU affinity.
//!
//! A guest's threads all run on the one host thread, so it has one CPU:
//! `sched_getaffinity` reports CPU 0 alone, and std's
//! `thread::available_parallelism` is 1, agreeing with `sysconf`.

use super::{c_int, fail, size_t};

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
