//! Unnamed POSIX semaphores: `sem_init`, `sem_post`, `sem_wait`,
//! `sem_trywait`, `sem_timedwait`, `sem_clockwait`, `sem_getvalue`,
//! `sem_destroy`, over the emulated futex (what glibc builds them on too).
//!
//! The count is the first 32-bit word of the 32-byte `sem_t`, and the
//! futex word that waiters sleep on. Threads switch only when they block,
//! so "take one if the count is above 0, else sleep while it is 0" needs no
//! atomic loop; the atomics keep the code right should that change.
//! Named semaphores (`sem_open`) would live in `/dev/shm`, which a guest
//! does not have: they are not defined, and a program that uses them does
//! not link.

use core::sync::atomic::{AtomicU32, Ordering};

use super::super::{c_int, c_uint, fail};
use super::futex::guest::futex;

/// The largest count (glibc's `SEM_VALUE_MAX`).
const VALUE_MAX: u32 = i32::MAX as u32;

/// The count inside a `sem_t`.
///
/// # Safety
///
/// `sem` points to a live `sem_t`, which is 32 bytes aligned to 8.
unsafe fn count<'a>(sem: *mut ::libc::sem_t) -> &'a AtomicU32 {
    // SAFETY: the caller guarantees a live sem_t, large and aligned enough.
    unsafe { AtomicU32::from_ptr(sem.cast::<u32>()) }
}

/// Takes one from `count` if it is above 0.
fn try_take(count: &AtomicU32) -> bool {
    count.fetch_update(Ordering::Acquire, Ordering::Relaxed, |c| c.checked_sub(1)).is_ok()
}

/// Adds one to `count`; false at [`VALUE_MAX`].
fn give(count: &AtomicU32) -> bool {
    count
        .fetch_update(Ordering::Release, Ordering::Relaxed, |c| (c < VALUE_MAX).then_some(c + 1))
        .is_ok()
}

/// Takes one, sleeping while the count is 0 until `deadline` (a futex
/// timeout: `op` says which clock, absolute), or forever for NULL.
///
/// # Safety
///
/// `sem` is a live `sem_t`; `deadline` NULL or readable.
unsafe fn wait(sem: *mut ::libc::sem_t, op: c_int, deadline: *const ::libc::timespec) -> c_int {
    // SAFETY: the caller guarantees a live sem_t.
    let c = unsafe { count(sem) };
    loop {
        if try_take(c) {
            return 0;
        }
        // SAFETY: the count is a live u32; deadline NULL or readable.
        match unsafe { futex(c.as_ptr(), op, 0, deadline, !0) } {
            Ok(_) | Err(::libc::EAGAIN) => {}
            Err(e) => return fail(e),
        }
    }
}

/// `sem_init(sem, pshared, value)`: `pshared` changes nothing (one
/// process); `EINVAL` above `SEM_VALUE_MAX`.
///
/// # Safety
///
/// `sem` points to a writable `sem_t`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sem_init(
    sem: *mut ::libc::sem_t,
    _pshared: c_int,
    value: c_uint,
) -> c_int {
    if value > VALUE_MAX {
        return fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees a writable sem_t.
    unsafe { sem.write(core::mem::zeroed()) };
    // SAFETY: just initialised.
    unsafe { count(sem) }.store(value, Ordering::Release);
    0
}

/// `sem_destroy(sem)`: nothing to free.
///
/// # Safety
///
/// None: `sem` is not read.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sem_destroy(_sem: *mut ::libc::sem_t) -> c_int {
    0
}

/// `sem_post(sem)`: one more, and one waiter woken; `EOVERFLOW` at
/// `SEM_VALUE_MAX`.
///
/// # Safety
///
/// `sem` is a live `sem_t`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sem_post(sem: *mut ::libc::sem_t) -> c_int {
    // SAFETY: the caller guarantees a live sem_t.
    let c = unsafe { count(sem) };
    if !give(c) {
        return fail(::libc::EOVERFLOW);
    }
    // SAFETY: a wake only compares the address.
    let _ = unsafe {
        futex(c.as_ptr(), ::libc::FUTEX_WAKE | ::libc::FUTEX_PRIVATE_FLAG, 1, core::ptr::null(), 0)
    };
    0
}

/// `sem_wait(sem)`: takes one, sleeping while there is none.
///
/// # Safety
///
/// `sem` is a live `sem_t`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sem_wait(sem: *mut ::libc::sem_t) -> c_int {
    let op = ::libc::FUTEX_WAIT_BITSET | ::libc::FUTEX_PRIVATE_FLAG;
    // SAFETY: the same contract; no deadline.
    unsafe { wait(sem, op, core::ptr::null()) }
}

/// `sem_trywait(sem)`: takes one, or `EAGAIN`.
///
/// # Safety
///
/// `sem` is a live `sem_t`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sem_trywait(sem: *mut ::libc::sem_t) -> c_int {
    // SAFETY: the caller guarantees a live sem_t.
    if try_take(unsafe { count(sem) }) { 0 } else { fail(::libc::EAGAIN) }
}

/// `sem_timedwait(sem, abstime)`: as `sem_wait`, until `abstime` on
/// `CLOCK_REALTIME` (`ETIMEDOUT`; `EINVAL` for a bad `abstime` when it
/// would wait).
///
/// # Safety
///
/// `sem` is a live `sem_t`; `abstime` readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sem_timedwait(
    sem: *mut ::libc::sem_t,
    abstime: *const ::libc::timespec,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { sem_clockwait(sem, ::libc::CLOCK_REALTIME, abstime) }
}

/// `sem_clockwait(sem, clock, abstime)`: as `sem_timedwait` on `clock`
/// (`CLOCK_REALTIME` or `CLOCK_MONOTONIC`, else `EINVAL`).
///
/// # Safety
///
/// `sem` is a live `sem_t`; `abstime` readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sem_clockwait(
    sem: *mut ::libc::sem_t,
    clock: ::libc::clockid_t,
    abstime: *const ::libc::timespec,
) -> c_int {
    let base = ::libc::FUTEX_WAIT_BITSET | ::libc::FUTEX_PRIVATE_FLAG;
    let op = match clock {
        ::libc::CLOCK_REALTIME => base | ::libc::FUTEX_CLOCK_REALTIME,
        ::libc::CLOCK_MONOTONIC => base,
        _ => return fail(::libc::EINVAL),
    };
    if abstime.is_null() {
        return fail(::libc::EINVAL);
    }
    // SAFETY: the same contract.
    unsafe { wait(sem, op, abstime) }
}

/// `sem_getvalue(sem, value)`: the count.
///
/// # Safety
///
/// `sem` is a live `sem_t`; `value` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sem_getvalue(sem: *mut ::libc::sem_t, value: *mut c_int) -> c_int {
    // SAFETY: the caller guarantees both pointers.
    unsafe { value.write(count(sem).load(Ordering::Acquire) as c_int) };
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_down_to_zero_and_up_to_the_maximum() {
        let c = AtomicU32::new(1);
        assert!(try_take(&c));
        assert!(!try_take(&c), "none left");
        assert_eq!(c.load(Ordering::Relaxed), 0);
        assert!(give(&c));
        assert_eq!(c.load(Ordering::Relaxed), 1);
        let full = AtomicU32::new(VALUE_MAX);
        assert!(!give(&full));
        assert_eq!(full.load(Ordering::Relaxed), VALUE_MAX);
    }

    #[test]
    fn the_c_calls_keep_the_count_in_the_sem_t() {
        // SAFETY: sem_t is plain data; the pointers are to live locals.
        unsafe {
            let mut sem: ::libc::sem_t = core::mem::zeroed();
            assert_eq!(sem_init(&mut sem, 0, 2), 0);
            assert_eq!(sem_wait(&mut sem), 0, "one was there: no sleep");
            assert_eq!(sem_trywait(&mut sem), 0);
            assert_eq!(sem_trywait(&mut sem), -1);
            assert_eq!(sem_post(&mut sem), 0);
            let mut v = -1;
            assert_eq!(sem_getvalue(&mut sem, &mut v), 0);
            assert_eq!(v, 1);
            assert_eq!(sem_init(&mut sem, 0, u32::MAX), -1);
            assert_eq!(sem_clockwait(&mut sem, ::libc::CLOCK_BOOTTIME, core::ptr::null()), -1);
        }
    }
}
