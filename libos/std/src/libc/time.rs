//! Clocks and sleeping: `clock_gettime`, `gettimeofday` and `time` over
//! libos's two clocks (`CLOCK_MONOTONIC` and `CLOCK_REALTIME`, read through
//! the host's vDSO without a system call when the tender found one, else
//! with the `clock_gettime` system call the filter allows for them), the
//! other clocks read from those, and sleeps that park the calling thread
//! (other threads run meanwhile; the guest idles in the one `ppoll` when
//! none can). Only the vDSO's `clock_gettime` is ever called, and only
//! for those two clocks: its fallback is a system call the filter allows,
//! while the vDSO's `gettimeofday` and `time` would fall back to system
//! calls it does not.

use core::time::Duration;

use libos::hypercall::{Clock, clock_gettime as host_clock};

use super::{c_int, fail};

/// The host clock behind C clock `id`, or None for an unknown clock.
/// `CLOCK_BOOTTIME`, the coarse and raw clocks read the monotonic clock;
/// the CPU-time clocks count time since boot (one guest is one process,
/// and it does not know how much of its time the host gave it).
fn read(id: ::libc::clockid_t) -> Option<Duration> {
    use ::libc::*;
    Some(match id {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => host_clock(Clock::Realtime),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => {
            host_clock(Clock::Monotonic)
        }
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => libos::time::since_boot(),
        _ => return None,
    })
}

/// `d` as a C `timespec`.
pub fn timespec(d: Duration) -> ::libc::timespec {
    ::libc::timespec { tv_sec: d.as_secs() as i64, tv_nsec: i64::from(d.subsec_nanos()) }
}

/// A valid `timespec` as a duration; None if negative or out of range.
pub fn duration(ts: &::libc::timespec) -> Option<Duration> {
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok().filter(|&n| n < 1_000_000_000)?;
    Some(Duration::new(secs, nanos))
}

/// `clock_gettime(id, ts)`.
///
/// # Safety
///
/// `ts` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn clock_gettime(id: ::libc::clockid_t, ts: *mut ::libc::timespec) -> c_int {
    match read(id) {
        Some(d) => {
            // SAFETY: the caller guarantees ts is writable.
            unsafe { ts.write(timespec(d)) };
            0
        }
        None => fail(::libc::EINVAL),
    }
}

/// `clock_getres(id, res)`: one nanosecond.
///
/// # Safety
///
/// `res` is NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn clock_getres(id: ::libc::clockid_t, res: *mut ::libc::timespec) -> c_int {
    if read(id).is_none() {
        return fail(::libc::EINVAL);
    }
    if !res.is_null() {
        // SAFETY: the caller guarantees res is writable.
        unsafe { res.write(::libc::timespec { tv_sec: 0, tv_nsec: 1 }) };
    }
    0
}

/// `gettimeofday(tv, tz)`.
///
/// # Safety
///
/// `tv` is NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn gettimeofday(tv: *mut ::libc::timeval, _tz: *mut ::libc::c_void) -> c_int {
    if !tv.is_null() {
        let d = host_clock(Clock::Realtime);
        // SAFETY: the caller guarantees tv is writable.
        unsafe {
            tv.write(::libc::timeval {
                tv_sec: d.as_secs() as i64,
                tv_usec: i64::from(d.subsec_micros()),
            })
        };
    }
    0
}

/// `time(t)`.
///
/// # Safety
///
/// `t` is NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn time(t: *mut ::libc::time_t) -> ::libc::time_t {
    let now = host_clock(Clock::Realtime).as_secs() as ::libc::time_t;
    if !t.is_null() {
        // SAFETY: the caller guarantees t is writable.
        unsafe { t.write(now) };
    }
    now
}

/// `nanosleep(req, rem)`: parks the calling thread for `req`; never
/// interrupted (no signals), so `rem` is left alone.
///
/// # Safety
///
/// `req` is readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn nanosleep(
    req: *const ::libc::timespec,
    _rem: *mut ::libc::timespec,
) -> c_int {
    // SAFETY: the caller guarantees req is readable.
    let Some(d) = duration(unsafe { &*req }) else { return fail(::libc::EINVAL) };
    super::thread::sleep_until(libos::time::Instant::now() + d);
    0
}

/// `sleep(secs)`: parks the calling thread; never interrupted, so 0.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn sleep(secs: ::libc::c_uint) -> ::libc::c_uint {
    super::thread::sleep_until(libos::time::Instant::now() + Duration::from_secs(secs.into()));
    0
}

/// `usleep(us)`: parks the calling thread for `us` microseconds.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn usleep(us: ::libc::useconds_t) -> c_int {
    super::thread::sleep_until(libos::time::Instant::now() + Duration::from_micros(us.into()));
    0
}

/// `clock_nanosleep(id, flags, req, rem)`: relative, or absolute with
/// `TIMER_ABSTIME`, on the realtime or monotonic clock. Returns the error
/// number, as POSIX says.
///
/// # Safety
///
/// `req` is readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn clock_nanosleep(
    id: ::libc::clockid_t,
    flags: c_int,
    req: *const ::libc::timespec,
    _rem: *mut ::libc::timespec,
) -> c_int {
    // SAFETY: the caller guarantees req is readable.
    let Some(d) = duration(unsafe { &*req }) else { return ::libc::EINVAL };
    let Some(now) = read(id) else { return ::libc::EINVAL };
    let wait = if flags & ::libc::TIMER_ABSTIME != 0 { d.saturating_sub(now) } else { d };
    super::thread::sleep_until(libos::time::Instant::now() + wait);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespecs_are_checked() {
        assert_eq!(
            duration(&::libc::timespec { tv_sec: 1, tv_nsec: 5 }),
            Some(Duration::new(1, 5))
        );
        assert_eq!(duration(&::libc::timespec { tv_sec: -1, tv_nsec: 0 }), None);
        assert_eq!(duration(&::libc::timespec { tv_sec: 0, tv_nsec: 1_000_000_000 }), None);
        assert!(read(99).is_none());
    }
}
