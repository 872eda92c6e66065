//! Broken-down time: `gmtime_r`, `localtime_r`, `timegm`, `mktime` and
//! their non-reentrant forms, over libos's calendar (the proleptic
//! Gregorian calendar, exact for every `time_t` whose year fits a `tm`).
//!
//! A guest's local time is UTC: it has no time-zone database and no
//! `/etc/localtime` (a container's `TZ` names a file it cannot read), so
//! `localtime_r` is `gmtime_r` with the zone named `UTC`, as glibc does
//! when it finds no zone, and `tzset` has nothing to load. Programs that
//! carry their own zone data (chrono-tz, jiff's bundled database) convert
//! as anywhere else.

use libos::calendar::{civil_from_days, days_from_civil};

use super::{c_int, fail};

const DAY: i64 = 86_400;

/// `t` in UTC as a `tm` named `zone`; None if its year does not fit.
fn broken_down(t: i64, zone: &'static core::ffi::CStr) -> Option<::libc::tm> {
    let days = t.div_euclid(DAY);
    let secs = t.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let year = c_int::try_from(y - 1900).ok()?;
    Some(::libc::tm {
        tm_sec: (secs % 60) as c_int,
        tm_min: (secs / 60 % 60) as c_int,
        tm_hour: (secs / 3600) as c_int,
        tm_mday: d as c_int,
        tm_mon: m as c_int - 1,
        tm_year: year,
        // 1970-01-01 was a Thursday.
        tm_wday: (days + 4).rem_euclid(7) as c_int,
        tm_yday: (days - days_from_civil(y, 1, 1)) as c_int,
        tm_isdst: 0,
        tm_gmtoff: 0,
        tm_zone: zone.as_ptr(),
    })
}

/// The time of `tm`'s fields as UTC, each field allowed out of its range
/// (a 13th month is January of the next year, second 60 the next minute).
fn seconds_of(tm: &::libc::tm) -> i64 {
    let months = i64::from(tm.tm_mon);
    let year = i64::from(tm.tm_year) + 1900 + months.div_euclid(12);
    let month = months.rem_euclid(12) as u32 + 1;
    let days = days_from_civil(year, month, 1) + i64::from(tm.tm_mday) - 1;
    days * DAY + i64::from(tm.tm_hour) * 3600 + i64::from(tm.tm_min) * 60 + i64::from(tm.tm_sec)
}

/// Writes `t` broken down into `out`, or fails with `EOVERFLOW`.
///
/// # Safety
///
/// `t` is readable, `out` writable.
unsafe fn fill(
    t: *const ::libc::time_t,
    out: *mut ::libc::tm,
    zone: &'static core::ffi::CStr,
) -> *mut ::libc::tm {
    // SAFETY: the caller guarantees t is readable.
    match broken_down(unsafe { *t }, zone) {
        Some(tm) => {
            // SAFETY: the caller guarantees out is writable.
            unsafe { out.write(tm) };
            out
        }
        None => {
            fail(::libc::EOVERFLOW);
            core::ptr::null_mut()
        }
    }
}

/// `gmtime_r(t, out)`.
///
/// # Safety
///
/// `t` is readable, `out` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn gmtime_r(
    t: *const ::libc::time_t,
    out: *mut ::libc::tm,
) -> *mut ::libc::tm {
    // SAFETY: the same contract.
    unsafe { fill(t, out, c"GMT") }
}

/// `localtime_r(t, out)`: UTC (see the module's documentation).
///
/// # Safety
///
/// `t` is readable, `out` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn localtime_r(
    t: *const ::libc::time_t,
    out: *mut ::libc::tm,
) -> *mut ::libc::tm {
    // SAFETY: the same contract.
    unsafe { fill(t, out, c"UTC") }
}

/// The one `tm` that `gmtime` and `localtime` return, as glibc's (each
/// call overwrites it; threads switch only when they block, so a caller
/// reads what it asked for).
static mut SHARED: ::libc::tm = ::libc::tm {
    tm_sec: 0,
    tm_min: 0,
    tm_hour: 0,
    tm_mday: 0,
    tm_mon: 0,
    tm_year: 0,
    tm_wday: 0,
    tm_yday: 0,
    tm_isdst: 0,
    tm_gmtoff: 0,
    tm_zone: core::ptr::null(),
};

/// `gmtime(t)`: as `gmtime_r`, into a buffer shared by every call.
///
/// # Safety
///
/// `t` is readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn gmtime(t: *const ::libc::time_t) -> *mut ::libc::tm {
    // SAFETY: t is readable (the caller's contract); SHARED is only
    // written here and in localtime, never while a reference is held.
    unsafe { gmtime_r(t, &raw mut SHARED) }
}

/// `localtime(t)`: as `localtime_r`, into the buffer `gmtime` shares.
///
/// # Safety
///
/// `t` is readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn localtime(t: *const ::libc::time_t) -> *mut ::libc::tm {
    // SAFETY: as in gmtime.
    unsafe { localtime_r(t, &raw mut SHARED) }
}

/// Normalises `tm` in place and returns its time, for `timegm` and
/// `mktime` (-1 and `EOVERFLOW` when the result does not fit).
///
/// # Safety
///
/// `tm` is readable and writable.
unsafe fn normalise(tm: *mut ::libc::tm, zone: &'static core::ffi::CStr) -> ::libc::time_t {
    // SAFETY: the caller guarantees tm is readable.
    let t = seconds_of(unsafe { &*tm });
    match broken_down(t, zone) {
        Some(n) => {
            // SAFETY: the caller guarantees tm is writable.
            unsafe { tm.write(n) };
            t
        }
        None => fail(::libc::EOVERFLOW) as ::libc::time_t,
    }
}

/// `timegm(tm)`: the time of `tm` taken as UTC; normalises its fields.
///
/// # Safety
///
/// `tm` is readable and writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn timegm(tm: *mut ::libc::tm) -> ::libc::time_t {
    // SAFETY: the same contract.
    unsafe { normalise(tm, c"GMT") }
}

/// `mktime(tm)`: the time of `tm` taken as local time, which is UTC
/// (`tm_isdst` is ignored: UTC has no daylight saving); normalises it.
///
/// # Safety
///
/// `tm` is readable and writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn mktime(tm: *mut ::libc::tm) -> ::libc::time_t {
    // SAFETY: the same contract.
    unsafe { normalise(tm, c"UTC") }
}

/// `tzset()`: the zone is always UTC; nothing to load.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn tzset() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm_of(t: i64) -> ::libc::tm {
        broken_down(t, c"GMT").unwrap()
    }

    #[test]
    fn times_break_down_as_glibc_does() {
        // 2026-12-04 22:21:04 UTC, a Friday, day 337 of the year.
        let tm = tm_of(1_796_422_864);
        assert_eq!((tm.tm_year, tm.tm_mon, tm.tm_mday), (126, 11, 4));
        assert_eq!((tm.tm_hour, tm.tm_min, tm.tm_sec), (22, 21, 4));
        assert_eq!((tm.tm_wday, tm.tm_yday), (5, 337));
        // Before 1970: 1969-12-31 23:59:59, a Wednesday.
        let tm = tm_of(-1);
        assert_eq!((tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour), (69, 11, 31, 23));
        assert_eq!((tm.tm_wday, tm.tm_yday), (3, 364));
        // A leap day.
        let tm = tm_of(951_782_400);
        assert_eq!((tm.tm_mon, tm.tm_mday, tm.tm_yday), (1, 29, 59));
        assert!(broken_down(i64::MAX, c"GMT").is_none(), "its year does not fit an int");
    }

    #[test]
    fn timegm_round_trips_and_normalises_fields_out_of_range() {
        for t in [0, -1, 951_782_400, 1_796_422_864, -2_208_988_800, 253_402_300_799] {
            let mut tm = tm_of(t);
            // SAFETY: tm is a live local.
            assert_eq!(unsafe { timegm(&mut tm) }, t);
        }
        // 2026, month 13, day 0, 25:61:60 -> 2027-02-01 02:02:00 (month 13
        // is February 2027; its day 0 is January 31; 25 h is the next day).
        let mut tm = tm_of(0);
        (tm.tm_year, tm.tm_mon, tm.tm_mday) = (126, 13, 0);
        (tm.tm_hour, tm.tm_min, tm.tm_sec) = (25, 61, 60);
        // SAFETY: tm is a live local.
        let t = unsafe { mktime(&mut tm) };
        assert_eq!((tm.tm_year, tm.tm_mon, tm.tm_mday), (127, 1, 1));
        assert_eq!((tm.tm_hour, tm.tm_min, tm.tm_sec), (2, 2, 0));
        assert_eq!(t, days_from_civil(2027, 2, 1) * DAY + 2 * 3600 + 2 * 60);
        let mut tm = tm_of(0);
        tm.tm_mon = -1;
        // SAFETY: tm is a live local.
        assert_eq!(unsafe { timegm(&mut tm) }, -31 * DAY, "month -1 is December 1969");
    }
}
