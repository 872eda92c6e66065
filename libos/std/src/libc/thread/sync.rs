//! POSIX mutexes, condition variables and one-time initialisation, for C
//! code linked into a program (SQLite, libgcc's unwinder registering
//! frames) and crates that call them: `pthread_mutex_*`,
//! `pthread_mutexattr_*`, `pthread_cond_*`, `pthread_condattr_*`,
//! `pthread_once`. std itself does not use them (its locks are futexes).
//!
//! Each is built on the emulated futex, in glibc's layout where a static
//! initializer fills it in: a `pthread_mutex_t` is all zeroes for
//! `PTHREAD_MUTEX_INITIALIZER`, with the kind in its fifth `int` (1 for
//! `PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP`); a `pthread_cond_t` and a
//! `pthread_once_t` are zeroes. The mutex's first word is the futex (0
//! free, 1 held, 2 held with waiters), the second its recursion count, the
//! third the owner's thread number. Normal, error-checking and recursive
//! mutexes behave as Linux documents (a normal mutex locked twice by its
//! owner waits for ever, as glibc's does). Robust and priority-protocol
//! mutexes are not defined: a program that uses them does not link.
//! Read-write locks are in [`super::rwlock`].

use core::sync::atomic::{AtomicU32, Ordering};

use super::super::c_int;
use super::futex::guest::futex;

pub(super) const WAIT: c_int = ::libc::FUTEX_WAIT_BITSET | ::libc::FUTEX_PRIVATE_FLAG;
const WAKE: c_int = ::libc::FUTEX_WAKE | ::libc::FUTEX_PRIVATE_FLAG;

/// The `u32` at word `i` of the object at `p`.
///
/// # Safety
///
/// `p` points to a live object of more than `i + 1` aligned words.
pub(super) unsafe fn word<'a, T>(p: *mut T, i: usize) -> &'a AtomicU32 {
    // SAFETY: the caller guarantees the object and its size.
    unsafe { AtomicU32::from_ptr(p.cast::<u32>().add(i)) }
}

/// The calling thread's number (never 0).
pub(super) fn me() -> u32 {
    super::current_id()
}

/// Sleeps while `w` holds `value`, until `deadline` (absolute, on the
/// clock `op` names; NULL: for ever). `ETIMEDOUT` when it passed.
///
/// # Safety
///
/// `deadline` is NULL or readable.
pub(super) unsafe fn sleep(
    w: &AtomicU32,
    value: u32,
    op: c_int,
    deadline: *const ::libc::timespec,
) -> c_int {
    // SAFETY: w is a live u32; deadline NULL or readable (the caller's).
    match unsafe { futex(w.as_ptr(), op, value, deadline, !0) } {
        Err(::libc::ETIMEDOUT) => ::libc::ETIMEDOUT,
        Err(::libc::EINVAL) => ::libc::EINVAL,
        _ => 0,
    }
}

/// Wakes up to `n` threads sleeping on `w`.
pub(super) fn wake(w: &AtomicU32, n: u32) {
    // SAFETY: a wake only compares the address.
    let _ = unsafe { futex(w.as_ptr(), WAKE, n, core::ptr::null(), 0) };
}

// ---------------------------------------------------------------------
// Mutexes.

const LOCK: usize = 0;
const COUNT: usize = 1;
const OWNER: usize = 2;
const KIND: usize = 4;

/// Takes `m`'s lock word, sleeping while another holds it; `deadline` as
/// for [`sleep`] on `CLOCK_REALTIME`. 0 or `ETIMEDOUT`.
///
/// # Safety
///
/// `m` is a live mutex; `deadline` NULL or readable.
unsafe fn acquire(m: *mut ::libc::pthread_mutex_t, deadline: *const ::libc::timespec) -> c_int {
    // SAFETY: the caller guarantees a live mutex.
    let lock = unsafe { word(m, LOCK) };
    if lock.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
        return 0;
    }
    let op = if deadline.is_null() { WAIT } else { WAIT | ::libc::FUTEX_CLOCK_REALTIME };
    // Mark it contended, and sleep while it stays held.
    while lock.swap(2, Ordering::Acquire) != 0 {
        // SAFETY: deadline NULL or readable (the caller's).
        let r = unsafe { sleep(lock, 2, op, deadline) };
        if r != 0 {
            return r;
        }
    }
    0
}

/// `pthread_mutex_lock`, `_trylock` (`deadline` ignored, `try`) and
/// `_timedlock`: the checks of the mutex's kind, then the lock.
///
/// # Safety
///
/// `m` is a live mutex; `deadline` NULL or readable.
unsafe fn lock(
    m: *mut ::libc::pthread_mutex_t,
    try_only: bool,
    deadline: *const ::libc::timespec,
) -> c_int {
    // SAFETY: the caller guarantees a live mutex.
    let (l, count, owner, kind) =
        unsafe { (word(m, LOCK), word(m, COUNT), word(m, OWNER), word(m, KIND)) };
    let kind = kind.load(Ordering::Relaxed) as c_int;
    let me = me();
    if owner.load(Ordering::Relaxed) == me && l.load(Ordering::Relaxed) != 0 {
        match kind {
            ::libc::PTHREAD_MUTEX_RECURSIVE => {
                let c = count.load(Ordering::Relaxed);
                if c == u32::MAX {
                    return ::libc::EAGAIN;
                }
                count.store(c + 1, Ordering::Relaxed);
                return 0;
            }
            ::libc::PTHREAD_MUTEX_ERRORCHECK => return ::libc::EDEADLK,
            _ if try_only => return ::libc::EBUSY,
            _ => {}
        }
    }
    if try_only {
        if l.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return ::libc::EBUSY;
        }
    } else {
        // SAFETY: the same contract.
        let r = unsafe { acquire(m, deadline) };
        if r != 0 {
            return r;
        }
    }
    owner.store(me, Ordering::Relaxed);
    count.store(1, Ordering::Relaxed);
    0
}

/// `pthread_mutex_init(m, attr)`: the kind from `attr` (or normal).
///
/// # Safety
///
/// `m` is writable; `attr` NULL or an initialised attribute.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutex_init(
    m: *mut ::libc::pthread_mutex_t,
    attr: *const ::libc::pthread_mutexattr_t,
) -> c_int {
    // SAFETY: the caller guarantees attr NULL or initialised.
    let kind = if attr.is_null() { 0 } else { unsafe { *attr.cast::<u32>() } };
    // SAFETY: the caller guarantees m writable; zeroes are a free mutex.
    unsafe {
        m.write(core::mem::zeroed());
        word(m, KIND).store(kind, Ordering::Relaxed);
    }
    0
}

/// `pthread_mutex_destroy(m)`: `EBUSY` while held.
///
/// # Safety
///
/// `m` is a live mutex.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutex_destroy(m: *mut ::libc::pthread_mutex_t) -> c_int {
    // SAFETY: the caller guarantees a live mutex.
    if unsafe { word(m, LOCK) }.load(Ordering::Relaxed) != 0 { ::libc::EBUSY } else { 0 }
}

/// `pthread_mutex_lock(m)`.
///
/// # Safety
///
/// `m` is a live mutex.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutex_lock(m: *mut ::libc::pthread_mutex_t) -> c_int {
    // SAFETY: the same contract.
    unsafe { lock(m, false, core::ptr::null()) }
}

/// `pthread_mutex_trylock(m)`: `EBUSY` when held.
///
/// # Safety
///
/// `m` is a live mutex.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutex_trylock(m: *mut ::libc::pthread_mutex_t) -> c_int {
    // SAFETY: the same contract.
    unsafe { lock(m, true, core::ptr::null()) }
}

/// `pthread_mutex_timedlock(m, abstime)`: until `abstime` on
/// `CLOCK_REALTIME` (`ETIMEDOUT`).
///
/// # Safety
///
/// `m` is a live mutex; `abstime` readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutex_timedlock(
    m: *mut ::libc::pthread_mutex_t,
    abstime: *const ::libc::timespec,
) -> c_int {
    if abstime.is_null() {
        return ::libc::EINVAL;
    }
    // SAFETY: the same contract.
    unsafe { lock(m, false, abstime) }
}

/// `pthread_mutex_unlock(m)`: `EPERM` from a thread that does not hold an
/// error-checking or recursive mutex, as Linux.
///
/// # Safety
///
/// `m` is a live mutex.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutex_unlock(m: *mut ::libc::pthread_mutex_t) -> c_int {
    // SAFETY: the caller guarantees a live mutex.
    let (l, count, owner, kind) =
        unsafe { (word(m, LOCK), word(m, COUNT), word(m, OWNER), word(m, KIND)) };
    let kind = kind.load(Ordering::Relaxed) as c_int;
    let held = l.load(Ordering::Relaxed) != 0 && owner.load(Ordering::Relaxed) == me();
    if kind != ::libc::PTHREAD_MUTEX_NORMAL && !held {
        return ::libc::EPERM;
    }
    if kind == ::libc::PTHREAD_MUTEX_RECURSIVE && count.load(Ordering::Relaxed) > 1 {
        count.fetch_sub(1, Ordering::Relaxed);
        return 0;
    }
    owner.store(0, Ordering::Relaxed);
    count.store(0, Ordering::Relaxed);
    if l.swap(0, Ordering::Release) == 2 {
        wake(l, 1);
    }
    0
}

/// `pthread_mutexattr_init(attr)`: a normal mutex.
///
/// # Safety
///
/// `attr` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutexattr_init(attr: *mut ::libc::pthread_mutexattr_t) -> c_int {
    // SAFETY: the caller guarantees attr writable; the kind is its first word.
    unsafe { attr.write(core::mem::zeroed()) };
    0
}

/// `pthread_mutexattr_destroy(attr)`.
///
/// # Safety
///
/// None: `attr` is not read.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutexattr_destroy(
    _attr: *mut ::libc::pthread_mutexattr_t,
) -> c_int {
    0
}

/// `pthread_mutexattr_settype(attr, kind)`: normal, recursive or
/// error-checking (`PTHREAD_MUTEX_DEFAULT` is normal); else `EINVAL`.
///
/// # Safety
///
/// `attr` is an initialised attribute.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutexattr_settype(
    attr: *mut ::libc::pthread_mutexattr_t,
    kind: c_int,
) -> c_int {
    match kind {
        ::libc::PTHREAD_MUTEX_NORMAL
        | ::libc::PTHREAD_MUTEX_RECURSIVE
        | ::libc::PTHREAD_MUTEX_ERRORCHECK => {
            // SAFETY: the caller guarantees attr; the kind is its first word.
            unsafe { attr.cast::<u32>().write(kind as u32) };
            0
        }
        _ => ::libc::EINVAL,
    }
}

/// `pthread_mutexattr_gettype(attr, kind)`.
///
/// # Safety
///
/// `attr` is an initialised attribute; `kind` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_mutexattr_gettype(
    attr: *const ::libc::pthread_mutexattr_t,
    kind: *mut c_int,
) -> c_int {
    // SAFETY: the caller guarantees both pointers.
    unsafe { kind.write(*attr.cast::<u32>() as c_int) };
    0
}

// ---------------------------------------------------------------------
// Condition variables.

const SEQ: usize = 0;
/// The clock of timed waits: 0 `CLOCK_REALTIME` (the initializer's), 1
/// `CLOCK_MONOTONIC`.
const CLOCK: usize = 1;

/// `pthread_cond_init(c, attr)`: the clock from `attr`.
///
/// # Safety
///
/// `c` is writable; `attr` NULL or an initialised attribute.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_cond_init(
    c: *mut ::libc::pthread_cond_t,
    attr: *const ::libc::pthread_condattr_t,
) -> c_int {
    // SAFETY: the caller guarantees attr NULL or initialised.
    let clock = if attr.is_null() { 0 } else { unsafe { *attr.cast::<u32>() } };
    // SAFETY: the caller guarantees c writable.
    unsafe {
        c.write(core::mem::zeroed());
        word(c, CLOCK).store(clock, Ordering::Relaxed);
    }
    0
}

/// `pthread_cond_destroy(c)`.
///
/// # Safety
///
/// None: `c` is not read.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_cond_destroy(_c: *mut ::libc::pthread_cond_t) -> c_int {
    0
}

/// `pthread_cond_signal(c)`: wakes one waiter.
///
/// # Safety
///
/// `c` is a live condition variable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_cond_signal(c: *mut ::libc::pthread_cond_t) -> c_int {
    // SAFETY: the caller guarantees a live condition variable.
    let seq = unsafe { word(c, SEQ) };
    seq.fetch_add(1, Ordering::Release);
    wake(seq, 1);
    0
}

/// `pthread_cond_broadcast(c)`: wakes every waiter.
///
/// # Safety
///
/// `c` is a live condition variable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_cond_broadcast(c: *mut ::libc::pthread_cond_t) -> c_int {
    // SAFETY: the caller guarantees a live condition variable.
    let seq = unsafe { word(c, SEQ) };
    seq.fetch_add(1, Ordering::Release);
    wake(seq, u32::MAX);
    0
}

/// Releases `m`, sleeps until `c` is signalled (or `deadline`, on `c`'s
/// clock), takes `m` again. 0 or `ETIMEDOUT` (`m` held again either way).
///
/// # Safety
///
/// `c` and `m` are live; `m` is held by the caller; `deadline` NULL or
/// readable.
unsafe fn cond_wait(
    c: *mut ::libc::pthread_cond_t,
    m: *mut ::libc::pthread_mutex_t,
    deadline: *const ::libc::timespec,
) -> c_int {
    // SAFETY: the caller guarantees a live condition variable.
    let (seq, clock) = unsafe { (word(c, SEQ), word(c, CLOCK)) };
    let value = seq.load(Ordering::Acquire);
    // The wait releases the mutex whole, however many times a recursive
    // one was taken, and the count comes back with it, as glibc does.
    // SAFETY: the caller guarantees a live mutex.
    let depth = unsafe { word(m, COUNT) }.swap(1, Ordering::Relaxed);
    // SAFETY: m is held by the caller.
    let r = unsafe { pthread_mutex_unlock(m) };
    if r != 0 {
        return r;
    }
    let op = match clock.load(Ordering::Relaxed) {
        0 if !deadline.is_null() => WAIT | ::libc::FUTEX_CLOCK_REALTIME,
        _ => WAIT,
    };
    // SAFETY: deadline NULL or readable.
    let slept = unsafe { sleep(seq, value, op, deadline) };
    // SAFETY: the same mutex, taken again with no deadline.
    unsafe { lock(m, false, core::ptr::null()) };
    // SAFETY: m is held again.
    unsafe { word(m, COUNT) }.store(depth.max(1), Ordering::Relaxed);
    slept
}

/// `pthread_cond_wait(c, m)`.
///
/// # Safety
///
/// `c` and `m` are live, `m` held by the caller.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_cond_wait(
    c: *mut ::libc::pthread_cond_t,
    m: *mut ::libc::pthread_mutex_t,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { cond_wait(c, m, core::ptr::null()) }
}

/// `pthread_cond_timedwait(c, m, abstime)`: until `abstime` on the
/// condition variable's clock (`ETIMEDOUT`).
///
/// # Safety
///
/// `c` and `m` are live, `m` held by the caller; `abstime` readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_cond_timedwait(
    c: *mut ::libc::pthread_cond_t,
    m: *mut ::libc::pthread_mutex_t,
    abstime: *const ::libc::timespec,
) -> c_int {
    if abstime.is_null() {
        return ::libc::EINVAL;
    }
    // SAFETY: the same contract.
    unsafe { cond_wait(c, m, abstime) }
}

/// `pthread_condattr_init(attr)`: `CLOCK_REALTIME`.
///
/// # Safety
///
/// `attr` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_condattr_init(attr: *mut ::libc::pthread_condattr_t) -> c_int {
    // SAFETY: the caller guarantees attr writable.
    unsafe { attr.write(core::mem::zeroed()) };
    0
}

/// `pthread_condattr_destroy(attr)`.
///
/// # Safety
///
/// None: `attr` is not read.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_condattr_destroy(_attr: *mut ::libc::pthread_condattr_t) -> c_int {
    0
}

/// `pthread_condattr_setclock(attr, clock)`: `CLOCK_REALTIME` or
/// `CLOCK_MONOTONIC`, else `EINVAL`.
///
/// # Safety
///
/// `attr` is an initialised attribute.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_condattr_setclock(
    attr: *mut ::libc::pthread_condattr_t,
    clock: ::libc::clockid_t,
) -> c_int {
    let v = match clock {
        ::libc::CLOCK_REALTIME => 0,
        ::libc::CLOCK_MONOTONIC => 1,
        _ => return ::libc::EINVAL,
    };
    // SAFETY: the caller guarantees attr; the clock is its first word.
    unsafe { attr.cast::<u32>().write(v) };
    0
}

// ---------------------------------------------------------------------
// One-time initialisation.

/// `pthread_once(once, init)`: runs `init` once; a thread that comes while
/// another runs it waits until it is done (it may block in between).
///
/// # Safety
///
/// `once` is a live `pthread_once_t`; `init` is callable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_once(
    once: *mut ::libc::pthread_once_t,
    init: Option<unsafe extern "C" fn()>,
) -> c_int {
    const NEW: u32 = 0;
    const RUNNING: u32 = 1;
    const DONE: u32 = 2;
    // SAFETY: the caller guarantees a live pthread_once_t (an int).
    let state = unsafe { AtomicU32::from_ptr(once.cast::<u32>()) };
    loop {
        match state.compare_exchange(NEW, RUNNING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                if let Some(f) = init {
                    // SAFETY: the caller guarantees init is callable.
                    unsafe { f() };
                }
                state.store(DONE, Ordering::Release);
                wake(state, u32::MAX);
                return 0;
            }
            Err(DONE) => return 0,
            // SAFETY: a live u32; no deadline.
            Err(_) => unsafe {
                sleep(state, RUNNING, WAIT, core::ptr::null());
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutexes_of_each_kind_lock_as_linux_documents() {
        // SAFETY: the objects are live locals; no other thread runs.
        unsafe {
            let mut attr: ::libc::pthread_mutexattr_t = core::mem::zeroed();
            assert_eq!(pthread_mutexattr_init(&mut attr), 0);
            assert_eq!(pthread_mutexattr_settype(&mut attr, 42), ::libc::EINVAL);
            let mut normal: ::libc::pthread_mutex_t = ::libc::PTHREAD_MUTEX_INITIALIZER;
            assert_eq!(pthread_mutex_lock(&mut normal), 0);
            assert_eq!(pthread_mutex_trylock(&mut normal), ::libc::EBUSY);
            assert_eq!(pthread_mutex_destroy(&mut normal), ::libc::EBUSY);
            assert_eq!(pthread_mutex_unlock(&mut normal), 0);
            assert_eq!(pthread_mutex_trylock(&mut normal), 0);
            assert_eq!(pthread_mutex_unlock(&mut normal), 0);
            assert_eq!(pthread_mutex_destroy(&mut normal), 0);

            let mut rec: ::libc::pthread_mutex_t = ::libc::PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
            for _ in 0..3 {
                assert_eq!(pthread_mutex_lock(&mut rec), 0);
            }
            assert_eq!(pthread_mutex_trylock(&mut rec), 0, "its owner may take it again");
            for _ in 0..4 {
                assert_eq!(pthread_mutex_unlock(&mut rec), 0);
            }
            assert_eq!(pthread_mutex_unlock(&mut rec), ::libc::EPERM, "not held");

            assert_eq!(pthread_mutexattr_settype(&mut attr, ::libc::PTHREAD_MUTEX_ERRORCHECK), 0);
            let mut kind = -1;
            assert_eq!(pthread_mutexattr_gettype(&attr, &mut kind), 0);
            assert_eq!(kind, ::libc::PTHREAD_MUTEX_ERRORCHECK);
            let mut check: ::libc::pthread_mutex_t = core::mem::zeroed();
            assert_eq!(pthread_mutex_init(&mut check, &attr), 0);
            assert_eq!(pthread_mutex_unlock(&mut check), ::libc::EPERM);
            assert_eq!(pthread_mutex_lock(&mut check), 0);
            assert_eq!(pthread_mutex_lock(&mut check), ::libc::EDEADLK);
            assert_eq!(pthread_mutex_unlock(&mut check), 0);
        }
    }

    #[test]
    fn a_timed_wait_with_no_signal_times_out_holding_the_mutex() {
        // SAFETY: the objects are live locals; no other thread runs.
        unsafe {
            let mut m: ::libc::pthread_mutex_t = ::libc::PTHREAD_MUTEX_INITIALIZER;
            let mut c: ::libc::pthread_cond_t = ::libc::PTHREAD_COND_INITIALIZER;
            let mut attr: ::libc::pthread_condattr_t = core::mem::zeroed();
            assert_eq!(pthread_condattr_init(&mut attr), 0);
            assert_eq!(
                pthread_condattr_setclock(&mut attr, ::libc::CLOCK_BOOTTIME),
                ::libc::EINVAL
            );
            assert_eq!(pthread_cond_timedwait(&mut c, &mut m, core::ptr::null()), ::libc::EINVAL);
            assert_eq!(pthread_cond_signal(&mut c), 0);
            assert_eq!(pthread_cond_broadcast(&mut c), 0);
            assert_eq!(pthread_mutex_lock(&mut m), 0);
            // A deadline in the past: no sleep at all.
            let past = ::libc::timespec { tv_sec: 1, tv_nsec: 0 };
            assert_eq!(pthread_cond_timedwait(&mut c, &mut m, &past), ::libc::ETIMEDOUT);
            assert_eq!(pthread_mutex_trylock(&mut m), ::libc::EBUSY, "held again");
            assert_eq!(pthread_mutex_unlock(&mut m), 0);

            // A recursive mutex taken twice: released whole for the wait,
            // taken twice again after it.
            let mut rec: ::libc::pthread_mutex_t = ::libc::PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
            assert_eq!(pthread_mutex_lock(&mut rec), 0);
            assert_eq!(pthread_mutex_lock(&mut rec), 0);
            assert_eq!(pthread_cond_timedwait(&mut c, &mut rec, &past), ::libc::ETIMEDOUT);
            assert_eq!(word(&mut rec, COUNT).load(Ordering::Relaxed), 2);
            assert_eq!(pthread_mutex_unlock(&mut rec), 0);
            assert_eq!(pthread_mutex_unlock(&mut rec), 0);
            assert_eq!(pthread_mutex_unlock(&mut rec), ::libc::EPERM);
        }
    }

    #[test]
    fn once_runs_its_routine_once() {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        unsafe extern "C" fn init() {
            RUNS.fetch_add(1, Ordering::Relaxed);
        }
        let mut once: ::libc::pthread_once_t = ::libc::PTHREAD_ONCE_INIT;
        // SAFETY: once is a live local; init is callable.
        unsafe {
            assert_eq!(pthread_once(&mut once, Some(init)), 0);
            assert_eq!(pthread_once(&mut once, Some(init)), 0);
        }
        assert_eq!(RUNS.load(Ordering::Relaxed), 1);
    }
}
