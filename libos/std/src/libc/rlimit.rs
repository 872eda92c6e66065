//! Resource limits: `getrlimit`, `setrlimit`, `prlimit64`, for the one
//! process a guest is.
//!
//! What they report is what the guest has: `RLIMIT_NOFILE` the descriptor
//! table's [`MAX_FDS`] (`EMFILE` past the soft limit, as on Linux),
//! `RLIMIT_STACK` the main thread's stack, `RLIMIT_DATA` the heap and
//! `RLIMIT_AS` the guest's memory (both fixed by the tender's `--mem`),
//! `RLIMIT_CORE` 0 (a guest never dumps core), `RLIMIT_RTPRIO` and
//! `RLIMIT_NICE` 0; the rest are unlimited. A program may lower a limit
//! and raise a soft one up to its hard one; raising a hard limit is
//! `EPERM` (it would not give the guest more: as on Linux past
//! `fs.nr_open`). Only `RLIMIT_NOFILE` changes what later calls do; the
//! others are kept and reported (the guest has no processes to count, and
//! its memory cannot grow).

use core::sync::atomic::{AtomicUsize, Ordering};

use super::fd::MAX_FDS;
use super::start::Lock;
use super::{c_int, fail};

const INFINITY: u64 = ::libc::RLIM_INFINITY;

/// Resources `0..COUNT` exist (`RLIMIT_NLIMITS`).
const COUNT: usize = 16;

/// The soft `RLIMIT_NOFILE`, which the descriptor layer reads.
static NOFILE: AtomicUsize = AtomicUsize::new(MAX_FDS);

/// The limits a program set, by resource; `None` for the defaults.
static SET: Lock<[Option<(u64, u64)>; COUNT]> = Lock::new([None; COUNT]);

/// The highest descriptor number plus one that a new descriptor may get.
pub fn open_max() -> usize {
    NOFILE.load(Ordering::Relaxed)
}

/// The limit (soft, hard) of `resource` at start.
fn default(resource: usize) -> (u64, u64) {
    let info = libos::rt_private::boot_info();
    let fixed = |v: Option<u64>| {
        let v = v.unwrap_or(INFINITY);
        (v, v)
    };
    match resource as u32 {
        ::libc::RLIMIT_NOFILE => fixed(Some(MAX_FDS as u64)),
        ::libc::RLIMIT_STACK => fixed(info.map(|i| i.stack_top - i.stack_bottom)),
        ::libc::RLIMIT_DATA => fixed(info.map(|i| i.heap_end - i.heap_start)),
        ::libc::RLIMIT_AS => fixed(info.map(|i| i.mem_size)),
        ::libc::RLIMIT_CORE | ::libc::RLIMIT_RTPRIO | ::libc::RLIMIT_NICE => (0, 0),
        _ => (INFINITY, INFINITY),
    }
}

/// The limit of `resource` now.
fn get(resource: usize) -> (u64, u64) {
    SET.with(|s| s[resource]).unwrap_or_else(|| default(resource))
}

/// Sets `resource` to (soft, hard) under the rules of the module's
/// documentation.
fn set(resource: usize, soft: u64, hard: u64) -> Result<(), c_int> {
    let (_, old_hard) = get(resource);
    if soft > hard {
        return Err(::libc::EINVAL);
    }
    if hard > old_hard {
        return Err(::libc::EPERM);
    }
    if resource == ::libc::RLIMIT_NOFILE as usize {
        NOFILE.store(soft.min(MAX_FDS as u64) as usize, Ordering::Relaxed);
    }
    SET.with(|s| s[resource] = Some((soft, hard)));
    Ok(())
}

/// `resource` as an index, or `EINVAL`.
fn index(resource: c_int) -> Result<usize, c_int> {
    usize::try_from(resource).ok().filter(|&r| r < COUNT).ok_or(::libc::EINVAL)
}

/// `prlimit64(pid, resource, new, old)`: the guest's own limits (`pid` 0
/// or 1, the guest's own number; else `ESRCH`): writes the old limit to
/// `old` if not NULL, then sets `new` if not NULL.
///
/// # Safety
///
/// `new` is NULL or readable, `old` NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn prlimit64(
    pid: ::libc::pid_t,
    resource: c_int,
    new: *const ::libc::rlimit64,
    old: *mut ::libc::rlimit64,
) -> c_int {
    if pid != 0 && pid != 1 {
        return fail(::libc::ESRCH);
    }
    let r = match index(resource) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let (soft, hard) = get(r);
    // SAFETY: the caller guarantees new is NULL or readable.
    if let Some(n) = unsafe { new.as_ref() }
        && let Err(e) = set(r, n.rlim_cur, n.rlim_max)
    {
        return fail(e);
    }
    // SAFETY: the caller guarantees old is NULL or writable.
    if let Some(o) = unsafe { old.as_mut() } {
        *o = ::libc::rlimit64 { rlim_cur: soft, rlim_max: hard };
    }
    0
}

/// `getrlimit(resource, out)` (and `getrlimit64`: one layout on x86_64).
///
/// # Safety
///
/// `out` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getrlimit(resource: c_int, out: *mut ::libc::rlimit64) -> c_int {
    if out.is_null() {
        return fail(::libc::EFAULT);
    }
    // SAFETY: out is writable (the caller's contract).
    unsafe { prlimit64(0, resource, core::ptr::null(), out) }
}

/// `setrlimit(resource, new)` (and `setrlimit64`).
///
/// # Safety
///
/// `new` is readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn setrlimit(resource: c_int, new: *const ::libc::rlimit64) -> c_int {
    if new.is_null() {
        return fail(::libc::EFAULT);
    }
    // SAFETY: new is readable (the caller's contract).
    unsafe { prlimit64(0, resource, new, core::ptr::null_mut()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(resource: u32) -> (u64, u64) {
        let mut l = ::libc::rlimit64 { rlim_cur: 7, rlim_max: 7 };
        // SAFETY: l is a live local.
        assert_eq!(unsafe { getrlimit(resource as c_int, &mut l) }, 0);
        (l.rlim_cur, l.rlim_max)
    }

    #[test]
    fn limits_are_what_the_guest_has_and_only_go_down() {
        assert_eq!(limit(::libc::RLIMIT_NOFILE), (MAX_FDS as u64, MAX_FDS as u64));
        assert_eq!(limit(::libc::RLIMIT_CORE), (0, 0));
        assert_eq!(limit(::libc::RLIMIT_CPU), (INFINITY, INFINITY));
        let set = |r: u32, soft, hard| {
            let l = ::libc::rlimit64 { rlim_cur: soft, rlim_max: hard };
            // SAFETY: l is a live local.
            unsafe { setrlimit(r as c_int, &l) }
        };
        assert_eq!(set(::libc::RLIMIT_FSIZE, 10, 5), -1, "soft above hard: EINVAL");
        assert_eq!(set(::libc::RLIMIT_CORE, 0, 1), -1, "a higher hard limit: EPERM");
        assert_eq!(set(::libc::RLIMIT_FSIZE, 1 << 20, 1 << 30), 0);
        assert_eq!(limit(::libc::RLIMIT_FSIZE), (1 << 20, 1 << 30));
        assert_eq!(set(::libc::RLIMIT_FSIZE, 1 << 30, 1 << 30), 0, "soft up to hard");
        assert_eq!(set(::libc::RLIMIT_FSIZE, 1 << 30, INFINITY), -1);
        let mut l = ::libc::rlimit64 { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: l is a live local.
        unsafe {
            assert_eq!(getrlimit(99, &mut l), -1);
            assert_eq!(prlimit64(2, ::libc::RLIMIT_CPU as c_int, core::ptr::null(), &mut l), -1);
        }
    }
}
