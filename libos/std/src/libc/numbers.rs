//! Numbers from text for C code: `strtol`, `strtoul`, `strtoll`,
//! `strtoull`, `atoi`, `atol`, `atoll`, as glibc parses them: leading
//! white space, a sign, base 2 to 36 or 0 (`0x` hexadecimal, `0` octal,
//! else decimal; a `0x` prefix also in base 16), `*end` at the first byte
//! not used (the start when there is no number), `ERANGE` and the limit on
//! overflow. The unsigned forms negate a negative number, as C says.

use super::{c_char, c_int, c_long, c_ulong, set_errno};

/// What [`parse`] found: the number's sign and magnitude (saturated at
/// `u64::MAX`, with `overflow`), and how many bytes it took (0: none).
struct Parsed {
    negative: bool,
    magnitude: u64,
    overflow: bool,
    used: usize,
}

fn parse(s: &[u8], base: c_int) -> Option<Parsed> {
    if base != 0 && !(2..=36).contains(&base) {
        return None;
    }
    let mut i = s.iter().take_while(|&&b| b == b' ' || (b'\t'..=b'\r').contains(&b)).count();
    let mut negative = false;
    if let Some(&sign @ (b'+' | b'-')) = s.get(i) {
        negative = sign == b'-';
        i += 1;
    }
    let hex_prefix = |i: usize| {
        s.get(i) == Some(&b'0')
            && matches!(s.get(i + 1), Some(b'x' | b'X'))
            && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    };
    let base = match base {
        0 if hex_prefix(i) => {
            i += 2;
            16
        }
        0 if s.get(i) == Some(&b'0') => 8,
        0 => 10,
        16 if hex_prefix(i) => {
            i += 2;
            16
        }
        b => b as u32,
    };
    let start = i;
    let (mut magnitude, mut overflow) = (0u64, false);
    while let Some(d) = s.get(i).and_then(|&b| (b as char).to_digit(base)) {
        match magnitude.checked_mul(u64::from(base)).and_then(|m| m.checked_add(u64::from(d))) {
            Some(m) => magnitude = m,
            None => {
                overflow = true;
                magnitude = u64::MAX;
            }
        }
        i += 1;
    }
    (i > start).then_some(Parsed { negative, magnitude, overflow, used: i })
}

/// Parses the string at `s`, sets `*end`, and gives what was found.
///
/// # Safety
///
/// `s` is a NUL-terminated string; `end` NULL or writable.
unsafe fn scan(s: *const c_char, end: *mut *mut c_char, base: c_int) -> Option<Parsed> {
    // SAFETY: the caller guarantees a NUL-terminated string.
    let bytes = unsafe { super::c_str(s) };
    let p = parse(bytes, base);
    if base != 0 && !(2..=36).contains(&base) {
        set_errno(::libc::EINVAL);
    }
    if !end.is_null() {
        let used = p.as_ref().map_or(0, |p| p.used);
        // SAFETY: used <= the string's length; end is writable.
        unsafe { *end = s.add(used).cast_mut() };
    }
    p
}

/// A signed result: the value, or the limit on its side with `ERANGE`.
fn signed(p: Option<Parsed>) -> i64 {
    let Some(p) = p else { return 0 };
    let limit = if p.negative { i64::MIN.unsigned_abs() } else { i64::MAX as u64 };
    if p.overflow || p.magnitude > limit {
        set_errno(::libc::ERANGE);
        return if p.negative { i64::MIN } else { i64::MAX };
    }
    if p.negative { (p.magnitude as i64).wrapping_neg() } else { p.magnitude as i64 }
}

/// An unsigned result: the value (negated if negative), or the maximum
/// with `ERANGE`.
fn unsigned(p: Option<Parsed>) -> u64 {
    let Some(p) = p else { return 0 };
    if p.overflow {
        set_errno(::libc::ERANGE);
        return u64::MAX;
    }
    if p.negative { p.magnitude.wrapping_neg() } else { p.magnitude }
}

/// `strtol(s, end, base)`.
///
/// # Safety
///
/// `s` is a NUL-terminated string; `end` NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strtol(s: *const c_char, end: *mut *mut c_char, base: c_int) -> c_long {
    // SAFETY: the same contract.
    signed(unsafe { scan(s, end, base) })
}

/// `strtoll(s, end, base)`: `strtol` (both 64 bits).
///
/// # Safety
///
/// `s` is a NUL-terminated string; `end` NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strtoll(s: *const c_char, end: *mut *mut c_char, base: c_int) -> i64 {
    // SAFETY: the same contract.
    signed(unsafe { scan(s, end, base) })
}

/// `strtoul(s, end, base)`.
///
/// # Safety
///
/// `s` is a NUL-terminated string; `end` NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strtoul(s: *const c_char, end: *mut *mut c_char, base: c_int) -> c_ulong {
    // SAFETY: the same contract.
    unsigned(unsafe { scan(s, end, base) })
}

/// `strtoull(s, end, base)`: `strtoul`.
///
/// # Safety
///
/// `s` is a NUL-terminated string; `end` NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strtoull(s: *const c_char, end: *mut *mut c_char, base: c_int) -> u64 {
    // SAFETY: the same contract.
    unsigned(unsafe { scan(s, end, base) })
}

/// `atoi(s)`: `strtol` in base 10, cut to an `int`.
///
/// # Safety
///
/// `s` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn atoi(s: *const c_char) -> c_int {
    // SAFETY: the same contract.
    unsafe { strtol(s, core::ptr::null_mut(), 10) as c_int }
}

/// `atol(s)`.
///
/// # Safety
///
/// `s` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn atol(s: *const c_char) -> c_long {
    // SAFETY: the same contract.
    unsafe { strtol(s, core::ptr::null_mut(), 10) }
}

/// `atoll(s)`.
///
/// # Safety
///
/// `s` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn atoll(s: *const c_char) -> i64 {
    // SAFETY: the same contract.
    unsafe { strtol(s, core::ptr::null_mut(), 10) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &core::ffi::CStr, base: c_int) -> (i64, usize, c_int) {
        super::super::set_errno(0);
        let mut end = core::ptr::null_mut();
        // SAFETY: a NUL-terminated literal; end is a live local.
        let v = unsafe { strtol(s.as_ptr(), &mut end, base) };
        (v, end as usize - s.as_ptr() as usize, super::super::errno())
    }

    #[test]
    fn strtol_parses_as_glibc() {
        assert_eq!(l(c"  42abc", 10), (42, 4, 0));
        assert_eq!(l(c"-17", 10), (-17, 3, 0));
        assert_eq!(l(c"0x1F", 0), (31, 4, 0));
        assert_eq!(l(c"0x1F", 16), (31, 4, 0));
        assert_eq!(l(c"0xg", 0), (0, 1, 0), "the 0 alone, x not used");
        assert_eq!(l(c"017", 0), (15, 3, 0));
        assert_eq!(l(c"z", 36), (35, 1, 0));
        assert_eq!(l(c"  +", 10), (0, 0, 0), "no number: end at the start");
        assert_eq!(l(c"9223372036854775807", 10), (i64::MAX, 19, 0));
        assert_eq!(l(c"9223372036854775808", 10), (i64::MAX, 19, ::libc::ERANGE));
        assert_eq!(l(c"-9223372036854775808", 10), (i64::MIN, 20, 0));
        assert_eq!(l(c"-99999999999999999999999", 10), (i64::MIN, 24, ::libc::ERANGE));
        assert_eq!(l(c"12", 1).2, ::libc::EINVAL);
    }

    #[test]
    fn the_unsigned_forms_negate_and_saturate() {
        // SAFETY: NUL-terminated literals.
        unsafe {
            assert_eq!(strtoul(c"-1".as_ptr(), core::ptr::null_mut(), 10), u64::MAX);
            assert_eq!(
                strtoull(c"18446744073709551615".as_ptr(), core::ptr::null_mut(), 0),
                u64::MAX
            );
            super::super::set_errno(0);
            assert_eq!(
                strtoul(c"18446744073709551616".as_ptr(), core::ptr::null_mut(), 10),
                u64::MAX
            );
            assert_eq!(super::super::errno(), ::libc::ERANGE);
            assert_eq!(atoi(c" 123 ".as_ptr()), 123);
            assert_eq!(atoll(c"-5x".as_ptr()), -5);
        }
    }
}
