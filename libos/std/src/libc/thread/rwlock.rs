//! POSIX read-write locks, for C code linked into a program:
//! `pthread_rwlock_*` (`init`, `destroy`, `rdlock`, `tryrdlock`,
//! `timedrdlock`, `clockrdlock`, `wrlock`, `trywrlock`, `timedwrlock`,
//! `clockwrlock`, `unlock`) and `pthread_rwlockattr_*` (`init`,
//! `destroy`, `setkind_np`, `getkind_np`, `setpshared`, `getpshared`).
//!
//! Built as the mutexes beside them ([`super::sync`]) on the emulated
//! futex, in `pthread_rwlock_t`'s 56 bytes: `PTHREAD_RWLOCK_INITIALIZER`
//! is all zeroes, and glibc's writer-preferring initializer puts its kind
//! (2) in the thirteenth `int`, where this lock reads it too. Word 0 is
//! the state (the number of readers, or [`WRITER`]), word 1 the number of
//! writers waiting, word 2 a sequence number that each unlock advances and
//! that waiters sleep on, word 6 the writer's thread number.
//!
//! As glibc: readers are preferred by default (a reader gets the lock
//! while other readers hold it, even with writers waiting), writers with
//! `PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP` (a reader then waits
//! behind a waiting writer); a thread that holds the write lock gets
//! `EDEADLK` for either lock (`EBUSY` from the `try` forms); `EAGAIN` beyond `u32::MAX - 1` readers;
//! `EBUSY` from the `try` forms; `ETIMEDOUT` at an absolute deadline
//! (`CLOCK_REALTIME` for the `timed` forms, the clock given for the
//! `clock` forms: `CLOCK_REALTIME` or `CLOCK_MONOTONIC`, else `EINVAL`).
//! An unlock by a thread holding nothing is `EPERM`.

use core::sync::atomic::Ordering;

use super::super::c_int;
use super::sync::{WAIT, me, sleep, wake, word};

/// The state of a lock held for writing.
const WRITER: u32 = u32::MAX;

const STATE: usize = 0;
const WRITERS_WAITING: usize = 1;
const SEQ: usize = 2;
const OWNER: usize = 6;
const KIND: usize = 12;

/// glibc's kinds (`pthread_rwlockattr_setkind_np`).
const PREFER_READER: c_int = 0;
const PREFER_WRITER_NONRECURSIVE: c_int = 2;

/// How a call waits: not at all, until a deadline on a clock (`op` is the
/// futex operation for that clock), or for ever.
#[derive(Clone, Copy)]
enum Wait {
    Try,
    Until(c_int, *const ::libc::timespec),
}

/// The futex operation for an absolute deadline on `clock`.
fn op_for(clock: ::libc::clockid_t) -> Option<c_int> {
    match clock {
        ::libc::CLOCK_REALTIME => Some(WAIT | ::libc::FUTEX_CLOCK_REALTIME),
        ::libc::CLOCK_MONOTONIC => Some(WAIT),
        _ => None,
    }
}

/// Takes `l` for reading.
///
/// # Safety
///
/// `l` is a live lock; a deadline is NULL or readable.
unsafe fn read_lock(l: *mut ::libc::pthread_rwlock_t, how: Wait) -> c_int {
    // SAFETY: a live lock of 14 words (the caller's contract).
    let (state, waiting, seq, owner, kind) = unsafe {
        (word(l, STATE), word(l, WRITERS_WAITING), word(l, SEQ), word(l, OWNER), word(l, KIND))
    };
    let me = me();
    loop {
        let s = state.load(Ordering::Acquire);
        let writers_first = kind.load(Ordering::Relaxed) as c_int == PREFER_WRITER_NONRECURSIVE
            && waiting.load(Ordering::Relaxed) > 0;
        if s != WRITER && !writers_first {
            if s == WRITER - 1 {
                return ::libc::EAGAIN;
            }
            state.store(s + 1, Ordering::Release);
            return 0;
        }
        // The try forms report EBUSY even to the writer itself (glibc's).
        let Wait::Until(op, deadline) = how else { return ::libc::EBUSY };
        if s == WRITER && owner.load(Ordering::Relaxed) == me {
            return ::libc::EDEADLK;
        }
        let v = seq.load(Ordering::Acquire);
        // SAFETY: seq is a live word; deadline NULL or readable.
        let r = unsafe { sleep(seq, v, op, deadline) };
        if r != 0 {
            return r;
        }
    }
}

/// Takes `l` for writing.
///
/// # Safety
///
/// As [`read_lock`].
unsafe fn write_lock(l: *mut ::libc::pthread_rwlock_t, how: Wait) -> c_int {
    // SAFETY: a live lock (the caller's contract).
    let (state, waiting, seq, owner) =
        unsafe { (word(l, STATE), word(l, WRITERS_WAITING), word(l, SEQ), word(l, OWNER)) };
    let me = me();
    loop {
        let s = state.load(Ordering::Acquire);
        if s == 0 {
            state.store(WRITER, Ordering::Release);
            owner.store(me, Ordering::Relaxed);
            return 0;
        }
        // The try forms report EBUSY even to the writer itself (glibc's).
        let Wait::Until(op, deadline) = how else { return ::libc::EBUSY };
        if s == WRITER && owner.load(Ordering::Relaxed) == me {
            return ::libc::EDEADLK;
        }
        let v = seq.load(Ordering::Acquire);
        waiting.fetch_add(1, Ordering::Relaxed);
        // SAFETY: seq is a live word; deadline NULL or readable.
        let r = unsafe { sleep(seq, v, op, deadline) };
        waiting.fetch_sub(1, Ordering::Relaxed);
        if r != 0 {
            // Readers held back behind this writer may go now.
            seq.fetch_add(1, Ordering::Release);
            wake(seq, u32::MAX);
            return r;
        }
    }
}

/// `pthread_rwlock_init(l, attr)`: unlocked, of `attr`'s kind.
///
/// # Safety
///
/// `l` is writable; `attr` NULL or an initialised attribute.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_init(
    l: *mut ::libc::pthread_rwlock_t,
    attr: *const ::libc::pthread_rwlockattr_t,
) -> c_int {
    // SAFETY: attr NULL or initialised: its first int is the kind.
    let kind = if attr.is_null() { 0 } else { unsafe { *attr.cast::<u32>() } };
    // SAFETY: l is writable; zeroes are an unlocked lock.
    unsafe {
        l.write(core::mem::zeroed());
        word(l, KIND).store(kind, Ordering::Relaxed);
    }
    0
}

/// `pthread_rwlock_destroy(l)`: `EBUSY` while held.
///
/// # Safety
///
/// `l` is a live lock.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_destroy(l: *mut ::libc::pthread_rwlock_t) -> c_int {
    // SAFETY: a live lock.
    if unsafe { word(l, STATE) }.load(Ordering::Relaxed) != 0 { ::libc::EBUSY } else { 0 }
}

/// `pthread_rwlock_rdlock(l)`.
///
/// # Safety
///
/// `l` is a live lock.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_rdlock(l: *mut ::libc::pthread_rwlock_t) -> c_int {
    // SAFETY: the same contract.
    unsafe { read_lock(l, Wait::Until(WAIT, core::ptr::null())) }
}

/// `pthread_rwlock_tryrdlock(l)`: `EBUSY` instead of waiting.
///
/// # Safety
///
/// `l` is a live lock.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_tryrdlock(l: *mut ::libc::pthread_rwlock_t) -> c_int {
    // SAFETY: the same contract.
    unsafe { read_lock(l, Wait::Try) }
}

/// `pthread_rwlock_timedrdlock(l, abstime)`: until `abstime` on
/// `CLOCK_REALTIME`.
///
/// # Safety
///
/// `l` is a live lock; `abstime` readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_timedrdlock(
    l: *mut ::libc::pthread_rwlock_t,
    abstime: *const ::libc::timespec,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { pthread_rwlock_clockrdlock(l, ::libc::CLOCK_REALTIME, abstime) }
}

/// `pthread_rwlock_clockrdlock(l, clock, abstime)`.
///
/// # Safety
///
/// `l` is a live lock; `abstime` readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_clockrdlock(
    l: *mut ::libc::pthread_rwlock_t,
    clock: ::libc::clockid_t,
    abstime: *const ::libc::timespec,
) -> c_int {
    let Some(op) = op_for(clock).filter(|_| !abstime.is_null()) else { return ::libc::EINVAL };
    // SAFETY: the same contract.
    unsafe { read_lock(l, Wait::Until(op, abstime)) }
}

/// `pthread_rwlock_wrlock(l)`.
///
/// # Safety
///
/// `l` is a live lock.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_wrlock(l: *mut ::libc::pthread_rwlock_t) -> c_int {
    // SAFETY: the same contract.
    unsafe { write_lock(l, Wait::Until(WAIT, core::ptr::null())) }
}

/// `pthread_rwlock_trywrlock(l)`: `EBUSY` instead of waiting.
///
/// # Safety
///
/// `l` is a live lock.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_trywrlock(l: *mut ::libc::pthread_rwlock_t) -> c_int {
    // SAFETY: the same contract.
    unsafe { write_lock(l, Wait::Try) }
}

/// `pthread_rwlock_timedwrlock(l, abstime)`: until `abstime` on
/// `CLOCK_REALTIME`.
///
/// # Safety
///
/// `l` is a live lock; `abstime` readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_timedwrlock(
    l: *mut ::libc::pthread_rwlock_t,
    abstime: *const ::libc::timespec,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { pthread_rwlock_clockwrlock(l, ::libc::CLOCK_REALTIME, abstime) }
}

/// `pthread_rwlock_clockwrlock(l, clock, abstime)`.
///
/// # Safety
///
/// `l` is a live lock; `abstime` readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_clockwrlock(
    l: *mut ::libc::pthread_rwlock_t,
    clock: ::libc::clockid_t,
    abstime: *const ::libc::timespec,
) -> c_int {
    let Some(op) = op_for(clock).filter(|_| !abstime.is_null()) else { return ::libc::EINVAL };
    // SAFETY: the same contract.
    unsafe { write_lock(l, Wait::Until(op, abstime)) }
}

/// `pthread_rwlock_unlock(l)`: releases the write lock, or one read lock;
/// when the lock becomes free, every waiter looks again.
///
/// # Safety
///
/// `l` is a live lock.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlock_unlock(l: *mut ::libc::pthread_rwlock_t) -> c_int {
    // SAFETY: a live lock.
    let (state, seq, owner) = unsafe { (word(l, STATE), word(l, SEQ), word(l, OWNER)) };
    match state.load(Ordering::Acquire) {
        0 => return ::libc::EPERM,
        WRITER => {
            if owner.load(Ordering::Relaxed) != me() {
                return ::libc::EPERM;
            }
            owner.store(0, Ordering::Relaxed);
            state.store(0, Ordering::Release);
        }
        n => {
            state.store(n - 1, Ordering::Release);
            if n > 1 {
                return 0;
            }
        }
    }
    seq.fetch_add(1, Ordering::Release);
    wake(seq, u32::MAX);
    0
}

/// `pthread_rwlockattr_init(attr)`: prefer readers, process-private.
///
/// # Safety
///
/// `attr` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlockattr_init(attr: *mut ::libc::pthread_rwlockattr_t) -> c_int {
    // SAFETY: attr is writable; zeroes are the defaults.
    unsafe { attr.write(core::mem::zeroed()) };
    0
}

/// `pthread_rwlockattr_destroy(attr)`.
///
/// # Safety
///
/// `attr` is an initialised attribute.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlockattr_destroy(
    _attr: *mut ::libc::pthread_rwlockattr_t,
) -> c_int {
    0
}

/// `pthread_rwlockattr_setkind_np(attr, kind)`: glibc's three kinds
/// (the two reader-preferring ones behave alike), else `EINVAL`.
///
/// # Safety
///
/// `attr` is an initialised attribute.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlockattr_setkind_np(
    attr: *mut ::libc::pthread_rwlockattr_t,
    kind: c_int,
) -> c_int {
    if !(PREFER_READER..=PREFER_WRITER_NONRECURSIVE).contains(&kind) {
        return ::libc::EINVAL;
    }
    // SAFETY: the attribute's first int is the kind.
    unsafe { *attr.cast::<c_int>() = kind };
    0
}

/// `pthread_rwlockattr_getkind_np(attr, kind)`.
///
/// # Safety
///
/// `attr` is an initialised attribute; `kind` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlockattr_getkind_np(
    attr: *const ::libc::pthread_rwlockattr_t,
    kind: *mut c_int,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { *kind = *attr.cast::<c_int>() };
    0
}

/// `pthread_rwlockattr_setpshared(attr, pshared)`: private, or shared
/// (accepted: a guest is one process, so the two are the same).
///
/// # Safety
///
/// `attr` is an initialised attribute.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlockattr_setpshared(
    attr: *mut ::libc::pthread_rwlockattr_t,
    pshared: c_int,
) -> c_int {
    if pshared != ::libc::PTHREAD_PROCESS_PRIVATE && pshared != ::libc::PTHREAD_PROCESS_SHARED {
        return ::libc::EINVAL;
    }
    // SAFETY: the attribute's second int is the sharing.
    unsafe { *attr.cast::<c_int>().add(1) = pshared };
    0
}

/// `pthread_rwlockattr_getpshared(attr, pshared)`.
///
/// # Safety
///
/// `attr` is an initialised attribute; `pshared` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_rwlockattr_getpshared(
    attr: *const ::libc::pthread_rwlockattr_t,
    pshared: *mut c_int,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { *pshared = *attr.cast::<c_int>().add(1) };
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_and_write_locks_exclude_as_glibc() {
        // SAFETY: the objects are live locals; no other thread uses them,
        // and nothing here waits (the try forms, or a free lock).
        unsafe {
            let mut l: ::libc::pthread_rwlock_t = ::libc::PTHREAD_RWLOCK_INITIALIZER;
            assert_eq!(pthread_rwlock_unlock(&mut l), ::libc::EPERM);
            assert_eq!(pthread_rwlock_rdlock(&mut l), 0);
            assert_eq!(pthread_rwlock_tryrdlock(&mut l), 0, "readers share");
            assert_eq!(pthread_rwlock_trywrlock(&mut l), ::libc::EBUSY);
            assert_eq!(pthread_rwlock_destroy(&mut l), ::libc::EBUSY);
            assert_eq!(pthread_rwlock_unlock(&mut l), 0);
            assert_eq!(pthread_rwlock_trywrlock(&mut l), ::libc::EBUSY, "one reader left");
            assert_eq!(pthread_rwlock_unlock(&mut l), 0);
            assert_eq!(pthread_rwlock_wrlock(&mut l), 0);
            assert_eq!(pthread_rwlock_tryrdlock(&mut l), ::libc::EBUSY);
            assert_eq!(pthread_rwlock_rdlock(&mut l), ::libc::EDEADLK);
            assert_eq!(pthread_rwlock_wrlock(&mut l), ::libc::EDEADLK);
            assert_eq!(pthread_rwlock_trywrlock(&mut l), ::libc::EBUSY);
            assert_eq!(pthread_rwlock_unlock(&mut l), 0);
            assert_eq!(pthread_rwlock_destroy(&mut l), 0);
            let past = ::libc::timespec { tv_sec: 0, tv_nsec: 0 };
            assert_eq!(pthread_rwlock_clockwrlock(&mut l, 42, &past), ::libc::EINVAL);
            assert_eq!(pthread_rwlock_timedwrlock(&mut l, &past), 0, "free: no wait");
            assert_eq!(pthread_rwlock_unlock(&mut l), 0);
        }
    }

    #[test]
    fn a_writer_preferring_lock_holds_new_readers_back() {
        // SAFETY: as above.
        unsafe {
            let mut attr: ::libc::pthread_rwlockattr_t = core::mem::zeroed();
            assert_eq!(pthread_rwlockattr_init(&mut attr), 0);
            assert_eq!(pthread_rwlockattr_setkind_np(&mut attr, 7), ::libc::EINVAL);
            assert_eq!(pthread_rwlockattr_setkind_np(&mut attr, PREFER_WRITER_NONRECURSIVE), 0);
            let mut kind = 0;
            assert_eq!(pthread_rwlockattr_getkind_np(&attr, &mut kind), 0);
            assert_eq!(kind, PREFER_WRITER_NONRECURSIVE);
            assert_eq!(pthread_rwlockattr_setpshared(&mut attr, 9), ::libc::EINVAL);
            assert_eq!(pthread_rwlockattr_setpshared(&mut attr, ::libc::PTHREAD_PROCESS_SHARED), 0);
            let mut l: ::libc::pthread_rwlock_t = core::mem::zeroed();
            assert_eq!(pthread_rwlock_init(&mut l, &attr), 0);
            assert_eq!(pthread_rwlock_tryrdlock(&mut l), 0);
            // A writer waiting (as a sleeping one would be counted).
            word(&mut l, WRITERS_WAITING).store(1, Ordering::Relaxed);
            assert_eq!(pthread_rwlock_tryrdlock(&mut l), ::libc::EBUSY);
            word(&mut l, WRITERS_WAITING).store(0, Ordering::Relaxed);
            assert_eq!(pthread_rwlock_tryrdlock(&mut l), 0);
            // The default kind lets readers in past a waiting writer.
            let mut r: ::libc::pthread_rwlock_t = ::libc::PTHREAD_RWLOCK_INITIALIZER;
            word(&mut r, WRITERS_WAITING).store(1, Ordering::Relaxed);
            assert_eq!(pthread_rwlock_tryrdlock(&mut r), 0);
            assert_eq!(pthread_rwlockattr_destroy(&mut attr), 0);
        }
    }
}
