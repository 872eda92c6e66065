//! `sscanf` and `vsscanf` (and glibc's `__isoc99_` names, which its
//! headers call), for C code that parses strings: the variadic entry
//! points are [`super::printf`]'s assembly stubs, the arguments the
//! pointers the `va_list` holds.
//!
//! Conversions as glibc's in the C locale: `d i u o x X p` (with `i`'s
//! base prefixes and `x`'s optional `0x`; lengths `hh h l ll q j z t`),
//! `f e g E G a` (decimal, `inf`, `infinity`, `nan`; stored as `float`,
//! `double` with `l`, `long double` with `L`), `c` (exactly the width,
//! default 1, no NUL), `s`, `[` scan sets (`^`, ranges, a leading `]`),
//! `n`, `%`; `*` suppresses the assignment; a width bounds each field.
//! White space in the format matches any amount of white space in the
//! input. The result is the number of fields assigned, or `EOF` when the
//! input ended before the first conversion. Integers beyond their range
//! saturate as `strtol` does, then are cut to the argument's size (glibc's
//! behaviour; C leaves it undefined). Not supported: positional arguments
//! (`%1$d`), hexadecimal floating-point input, `%m` allocation, wide
//! characters (`%lc`, `%ls`, `%l[`): each an error (-1, `EINVAL`).

use super::printf::{Args, Len, VaList, variadic};
use super::{c_char, c_int};

/// Why scanning stopped early.
enum Stop {
    /// The input ended (`EOF` if nothing was assigned yet).
    Input,
    /// The input did not match.
    Matching,
    /// A conversion this implementation refuses (`EINVAL`).
    Unsupported,
}

/// The input and how far it has been read.
struct Input<'a> {
    s: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// The next at most `width` bytes.
    fn field(&self, width: usize) -> &[u8] {
        let rest = &self.s[self.at..];
        &rest[..rest.len().min(width)]
    }
}

/// The value of digit `b` in `base`, if it is one.
fn digit(b: u8, base: u32) -> Option<u32> {
    (b as char).to_digit(base)
}

/// An integer at the start of `f` (`base` 0: by its prefix): its value
/// (saturated, as `strtol`'s), whether it is negative, and the bytes
/// used; `None` if no digit.
fn integer(f: &[u8], mut base: u32, signed: bool) -> Option<(u64, bool, usize)> {
    let mut i = 0;
    let neg = match f.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let hex_prefix = f.get(i) == Some(&b'0')
        && matches!(f.get(i + 1), Some(b'x' | b'X'))
        && f.get(i + 2).and_then(|&b| digit(b, 16)).is_some();
    if (base == 16 || base == 0) && hex_prefix {
        i += 2;
        base = 16;
    } else if base == 0 {
        base = if f.get(i) == Some(&b'0') { 8 } else { 10 };
    }
    let start = i;
    let mut v: u64 = 0;
    let mut over = false;
    while let Some(d) = f.get(i).and_then(|&b| digit(b, base)) {
        match v.checked_mul(u64::from(base)).and_then(|v| v.checked_add(u64::from(d))) {
            Some(n) => v = n,
            None => over = true,
        }
        i += 1;
    }
    if i == start {
        return None;
    }
    if signed {
        let limit = if neg { 1u64 << 63 } else { i64::MAX as u64 };
        if over || v > limit {
            v = limit;
        }
    } else if over {
        v = u64::MAX;
    }
    Some((v, neg, i))
}

/// The longest prefix of `f` that is a decimal floating-point number,
/// `inf`, `infinity` or `nan`: its value and length.
fn float(f: &[u8]) -> Option<(f64, usize)> {
    let mut i = usize::from(matches!(f.first(), Some(b'+' | b'-')));
    let lower = |k: usize, word: &[u8]| {
        f.len() >= k + word.len() && f[k..k + word.len()].eq_ignore_ascii_case(word)
    };
    let special = if lower(i, b"infinity") {
        Some((f64::INFINITY, i + 8))
    } else if lower(i, b"inf") {
        Some((f64::INFINITY, i + 3))
    } else if lower(i, b"nan") {
        Some((f64::NAN, i + 3))
    } else {
        None
    };
    if let Some((v, n)) = special {
        return Some((if f[0] == b'-' { -v } else { v }, n));
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while f.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - s
    };
    let mut n = digits(&mut i);
    if f.get(i) == Some(&b'.') {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return None;
    }
    // An exponent mark (and sign) without digits is still consumed, as
    // glibc does (it cannot push back more than one byte), and adds
    // nothing to the value.
    let mut used = i;
    if matches!(f.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(f.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        used = j;
        if digits(&mut j) > 0 {
            i = j;
            used = j;
        }
    }
    let text = core::str::from_utf8(&f[..i]).ok()?;
    text.parse().ok().map(|v| (v, used))
}

/// A `double` in x87's 80-bit format (mantissa with its integer bit,
/// sign and 15-bit exponent), for `%Lf`.
fn f64_to_x87(v: f64) -> (u64, u16) {
    let bits = v.to_bits();
    let sign = if bits >> 63 == 1 { 0x8000u16 } else { 0 };
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    match exp {
        0 if frac == 0 => (0, sign),
        0 => {
            // A denormal double is a normal long double.
            let shift = frac.leading_zeros() - 11;
            let m = frac << (shift + 11);
            (m, sign | (16383 - 1022 - shift as i32) as u16)
        }
        0x7ff => ((1 << 63) | (frac << 11), sign | 0x7fff),
        _ => ((1 << 63) | (frac << 11), sign | (exp - 1023 + 16383) as u16),
    }
}

/// Scans `input` by `fmt` into the pointers in `args`: the number of
/// assignments, or -1 with `errno`.
///
/// # Safety
///
/// `input` and `fmt` are NUL-terminated strings; `args` holds a pointer of
/// the right type for each assigning conversion.
pub unsafe fn scan(input: *const c_char, fmt: *const c_char, args: &mut Args) -> c_int {
    // SAFETY: the caller's contract.
    let (s, fmt) = unsafe { (super::c_str(input), super::c_str(fmt)) };
    let mut inp = Input { s, at: 0 };
    let mut assigned: c_int = 0;
    let mut converted = false;
    let mut i = 0;
    let stop = 'scan: {
        while i < fmt.len() {
            let c = fmt[i];
            if c.is_ascii_whitespace() {
                inp.skip_space();
                i += 1;
                continue;
            }
            if c != b'%' {
                if inp.peek().is_none() {
                    break 'scan Stop::Input;
                }
                if inp.peek() != Some(c) {
                    break 'scan Stop::Matching;
                }
                inp.at += 1;
                i += 1;
                continue;
            }
            i += 1;
            let suppress = fmt.get(i) == Some(&b'*');
            if suppress {
                i += 1;
            }
            let wstart = i;
            while fmt.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if fmt.get(i) == Some(&b'$') {
                break 'scan Stop::Unsupported;
            }
            let width = core::str::from_utf8(&fmt[wstart..i]).ok().and_then(|w| w.parse().ok());
            if width == Some(0) {
                break 'scan Stop::Unsupported;
            }
            let mut len = Len::Int;
            loop {
                match fmt.get(i) {
                    Some(b'h') if len == Len::Short => len = Len::Char,
                    Some(b'h') => len = Len::Short,
                    Some(b'l') if len == Len::Long => len = Len::Long,
                    Some(b'l' | b'q' | b'j' | b'z' | b't') => len = Len::Long,
                    Some(b'L') => len = Len::LongDouble,
                    Some(b'm') => break 'scan Stop::Unsupported,
                    _ => break,
                }
                i += 1;
            }
            let Some(&conv) = fmt.get(i) else { break 'scan Stop::Unsupported };
            i += 1;
            if !matches!(conv, b'c' | b'[' | b'n') {
                inp.skip_space();
            }
            let width = width.unwrap_or(usize::MAX);
            match conv {
                b'%' => {
                    match inp.peek() {
                        None => break 'scan Stop::Input,
                        Some(b'%') => inp.at += 1,
                        Some(_) => break 'scan Stop::Matching,
                    }
                    continue;
                }
                b'n' => {
                    if !suppress {
                        // SAFETY: a pointer to the integer len names.
                        let p = unsafe { args.int() } as usize;
                        // SAFETY: the caller's contract.
                        unsafe { store_int(p, len, inp.at as u64) };
                    }
                    continue;
                }
                _ => {}
            }
            if inp.peek().is_none() {
                break 'scan Stop::Input;
            }
            match conv {
                b'd' | b'i' | b'u' | b'o' | b'x' | b'X' | b'p' => {
                    let (base, signed) = match conv {
                        b'd' => (10, true),
                        b'i' => (0, true),
                        b'u' => (10, false),
                        b'o' => (8, false),
                        _ => (16, false),
                    };
                    let Some((v, neg, used)) = integer(inp.field(width), base, signed) else {
                        break 'scan Stop::Matching;
                    };
                    inp.at += used;
                    converted = true;
                    if !suppress {
                        let v = if neg { v.wrapping_neg() } else { v };
                        let len = if conv == b'p' { Len::Long } else { len };
                        // SAFETY: a pointer to the integer len names.
                        let p = unsafe { args.int() } as usize;
                        // SAFETY: the caller's contract.
                        unsafe { store_int(p, len, v) };
                        assigned += 1;
                    }
                }
                b'f' | b'F' | b'e' | b'E' | b'g' | b'G' | b'a' | b'A' => {
                    let Some((v, used)) = float(inp.field(width)) else {
                        break 'scan Stop::Matching;
                    };
                    inp.at += used;
                    converted = true;
                    if !suppress {
                        // SAFETY: a pointer to the float type len names.
                        let p = unsafe { args.int() } as usize;
                        // SAFETY: the caller's contract.
                        unsafe {
                            match len {
                                Len::Long => (p as *mut f64).write_unaligned(v),
                                Len::LongDouble => {
                                    let (m, se) = f64_to_x87(v);
                                    (p as *mut u64).write_unaligned(m);
                                    ((p + 8) as *mut u16).write_unaligned(se);
                                }
                                _ => (p as *mut f32).write_unaligned(v as f32),
                            }
                        }
                        assigned += 1;
                    }
                }
                b'c' | b's' | b'[' => {
                    if len == Len::Long {
                        break 'scan Stop::Unsupported;
                    }
                    let field =
                        inp.field(if conv == b'c' && width == usize::MAX { 1 } else { width });
                    let n = match conv {
                        b'c' => field.len(),
                        b's' => field.iter().take_while(|b| !b.is_ascii_whitespace()).count(),
                        _ => {
                            let Some((set, end)) = scan_set(&fmt[i..]) else {
                                break 'scan Stop::Unsupported;
                            };
                            i += end;
                            field.iter().take_while(|&&b| set[usize::from(b)]).count()
                        }
                    };
                    // A %c short of its width at the end of the input
                    // takes what there is (glibc's).
                    if n == 0 {
                        break 'scan if n == 0 && conv == b'[' {
                            Stop::Matching
                        } else {
                            Stop::Input
                        };
                    }
                    let start = inp.at;
                    inp.at += n;
                    let bytes = &s[start..start + n];
                    converted = true;
                    if !suppress {
                        // SAFETY: a pointer to a buffer large enough (the
                        // caller's contract: the width bounds it).
                        let p = unsafe { args.int() } as *mut u8;
                        // SAFETY: as above.
                        unsafe {
                            core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n);
                            if conv != b'c' {
                                *p.add(n) = 0;
                            }
                        }
                        assigned += 1;
                    }
                }
                _ => break 'scan Stop::Unsupported,
            }
        }
        Stop::Matching
    };
    match stop {
        Stop::Input if !converted && assigned == 0 => ::libc::EOF,
        Stop::Unsupported => super::fail(::libc::EINVAL),
        _ => assigned,
    }
}

/// The set of a `%[` conversion, whose text (after the `[`) starts `f`:
/// the bytes it accepts, and the length of its text through the `]`.
fn scan_set(f: &[u8]) -> Option<([bool; 256], usize)> {
    let mut i = 0;
    let negate = f.first() == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut set = [false; 256];
    let mut first = true;
    loop {
        let &b = f.get(i)?;
        if b == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        if f.get(i + 1) == Some(&b'-') && f.get(i + 2).is_some_and(|&e| e != b']') {
            let e = f[i + 2];
            for x in b..=e {
                set[usize::from(x)] = true;
            }
            i += 3;
        } else {
            set[usize::from(b)] = true;
            i += 1;
        }
    }
    if negate {
        for x in &mut set {
            *x = !*x;
        }
    }
    set[0] = false;
    Some((set, i))
}

/// Stores `v` at `p` as the integer type `len` names.
///
/// # Safety
///
/// `p` points to a writable integer of that type.
unsafe fn store_int(p: usize, len: Len, v: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        match len {
            Len::Char => (p as *mut u8).write(v as u8),
            Len::Short => (p as *mut u16).write_unaligned(v as u16),
            Len::Int => (p as *mut u32).write_unaligned(v as u32),
            _ => (p as *mut u64).write_unaligned(v),
        }
    }
}

/// `vsscanf(s, fmt, ap)`.
///
/// # Safety
///
/// `s` and `fmt` are NUL-terminated strings; `ap` holds a pointer of the
/// right type for each assigning conversion.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn vsscanf(s: *const c_char, fmt: *const c_char, ap: VaList) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { scan(s, fmt, &mut Args::new(ap)) }
}

/// `__isoc99_vsscanf`: glibc headers' name for `vsscanf`.
///
/// # Safety
///
/// As `vsscanf`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __isoc99_vsscanf(
    s: *const c_char,
    fmt: *const c_char,
    ap: VaList,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { vsscanf(s, fmt, ap) }
}

variadic!("sscanf", vsscanf, 2, "rdx");
variadic!("__isoc99_sscanf", vsscanf, 2, "rdx");

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    unsafe extern "C" {
        fn libos_std_test_sscanf(s: *const c_char, fmt: *const c_char, ...) -> c_int;
        // The host C library's, to compare with.
        #[link_name = "__isoc99_sscanf"]
        fn host_sscanf(s: *const c_char, fmt: *const c_char, ...) -> c_int;
    }

    /// Runs both with fresh outputs of the given types; asserts the same
    /// count and values.
    macro_rules! same {
        ($input:literal, $fmt:literal; $($ty:ty),*) => {{
            #[allow(unused_mut)]
            let mut ours = ($(<$ty>::default(),)*);
            #[allow(unused_mut)]
            let mut host = ($(<$ty>::default(),)*);
            same!(@call ours host $input $fmt; $($ty),*);
        }};
        (@call $o:ident $h:ident $input:literal $fmt:literal; $t0:ty) => {{
            // SAFETY: the outputs match the format.
            let (a, b) = unsafe {
                (libos_std_test_sscanf($input.as_ptr(), $fmt.as_ptr(), &mut $o.0),
                 host_sscanf($input.as_ptr(), $fmt.as_ptr(), &mut $h.0))
            };
            assert_eq!((a, format!("{:?}", $o)), (b, format!("{:?}", $h)), "{:?} by {:?}", $input, $fmt);
        }};
        (@call $o:ident $h:ident $input:literal $fmt:literal; $t0:ty, $t1:ty) => {{
            // SAFETY: the outputs match the format.
            let (a, b) = unsafe {
                (libos_std_test_sscanf($input.as_ptr(), $fmt.as_ptr(), &mut $o.0, &mut $o.1),
                 host_sscanf($input.as_ptr(), $fmt.as_ptr(), &mut $h.0, &mut $h.1))
            };
            assert_eq!((a, format!("{:?}", $o)), (b, format!("{:?}", $h)), "{:?} by {:?}", $input, $fmt);
        }};
        (@call $o:ident $h:ident $input:literal $fmt:literal; $t0:ty, $t1:ty, $t2:ty) => {{
            // SAFETY: the outputs match the format.
            let (a, b) = unsafe {
                (libos_std_test_sscanf($input.as_ptr(), $fmt.as_ptr(), &mut $o.0, &mut $o.1, &mut $o.2),
                 host_sscanf($input.as_ptr(), $fmt.as_ptr(), &mut $h.0, &mut $h.1, &mut $h.2))
            };
            assert_eq!((a, format!("{:?}", $o)), (b, format!("{:?}", $h)), "{:?} by {:?}", $input, $fmt);
        }};
    }

    #[test]
    fn integers_scan_as_glibc() {
        same!(c"42 -17 0x1f", c"%d %d %x"; i32, i32, u32);
        same!(c"  +12abc", c"%d%x"; i32, u32);
        same!(c"0x1A 017 99", c"%i %i %i"; i32, i32, i32);
        same!(c"123456", c"%2d%3d%d"; i32, i32, i32);
        same!(c"-1 300 70000", c"%hhd %hhu %hd"; i8, u8, i16);
        same!(c"99999999999999999999 -99999999999999999999", c"%ld %ld"; i64, i64);
        same!(c"18446744073709551615 4294967296", c"%lu %u"; u64, u32);
        same!(c"777 0X", c"%o %x"; u32, u32);
        same!(c"abc", c"%d"; i32);
        same!(c"", c"%d"; i32);
        same!(c"   ", c"%d"; i32);
        same!(c"5 x", c"%d %d"; i32, i32);
        same!(c"5", c"%d %d"; i32, i32);
        same!(c"7 8", c"%*d %d"; i32);
        same!(c"val=12;", c"val=%d;%n"; i32, i32);
        same!(c"50%", c"%d%%"; i32);
        same!(c"50", c"%d%%"; i32);
        same!(c"0x10 0x", c"%p %i"; usize, i32);
    }

    #[test]
    fn floats_scan_as_glibc() {
        same!(c"3.25 -1e3 .5", c"%f %lf %lf"; f32, f64, f64);
        same!(c"1e400 -inf NaN", c"%lf %lf %f"; f64, f64, f32);
        same!(c"infinity 2.5e-3x", c"%lf %lg"; f64, f64);
        same!(c"1.5e+ 7", c"%lf %d"; f64, i32);
        same!(c"12.345", c"%4lf%lf"; f64, f64);
        same!(c". 5", c"%lf"; f64);
        let mut ld = [0u8; 16];
        // SAFETY: 16 bytes for a long double.
        let n =
            unsafe { libos_std_test_sscanf(c"-2.5".as_ptr(), c"%Lf".as_ptr(), ld.as_mut_ptr()) };
        assert_eq!(n, 1);
        let m = u64::from_le_bytes(ld[..8].try_into().unwrap());
        let se = u16::from_le_bytes([ld[8], ld[9]]);
        assert_eq!(super::super::printf::x87_to_f64(m, se), -2.5);
        for v in [1.0, 5e-324, -0.0, f64::MAX, f64::INFINITY] {
            let (m, se) = f64_to_x87(v);
            assert_eq!(super::super::printf::x87_to_f64(m, se).to_bits(), v.to_bits(), "{v}");
        }
    }

    #[test]
    fn strings_characters_and_sets_scan_as_glibc() {
        same!(c"hello world", c"%s %3c"; [u8; 16], [u8; 4]);
        same!(c"  key=value;rest", c"%[^=]=%[a-z]%c"; [u8; 16], [u8; 16], [u8; 1]);
        same!(c"]]ab", c"%[]a]%s"; [u8; 8], [u8; 8]);
        same!(c"abcdef", c"%3s%s"; [u8; 8], [u8; 8]);
        same!(c"x", c"%3c"; [u8; 4]);
        same!(c"123abc", c"%[0-9]%[0-9]"; [u8; 8], [u8; 8]);
        same!(c"a-b", c"%[a-]%s"; [u8; 8], [u8; 8]);
        same!(c" a", c"%c"; [u8; 1]);
    }

    #[test]
    fn random_inputs_scan_as_glibc() {
        // Inputs made of the bytes the conversions care about, against a
        // format with one of each: the same counts and values as glibc.
        let alphabet = b" \t-+0x19aeEf.ninf%z";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut counts = std::collections::BTreeSet::new();
        for _ in 0..3000 {
            let mut input = [0u8; 24];
            let len = (seed % 23) as usize;
            for b in &mut input[..len] {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = alphabet[(seed % alphabet.len() as u64) as usize];
            }
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut ours = (0i32, 0u32, 0f64, [0u8; 32], 0i32);
            let mut host = ours;
            // SAFETY: the input is NUL-terminated (len < 24); the outputs
            // match the format, the string's width bounded by 31.
            let (a, b) = unsafe {
                (
                    libos_std_test_sscanf(
                        input.as_ptr().cast(),
                        c"%d%x %lf%31[^%]%%%n".as_ptr(),
                        &mut ours.0,
                        &mut ours.1,
                        &mut ours.2,
                        &mut ours.3,
                        &mut ours.4,
                    ),
                    host_sscanf(
                        input.as_ptr().cast(),
                        c"%d%x %lf%31[^%]%%%n".as_ptr(),
                        &mut host.0,
                        &mut host.1,
                        &mut host.2,
                        &mut host.3,
                        &mut host.4,
                    ),
                )
            };
            let show = |v: &(i32, u32, f64, [u8; 32], i32)| {
                format!("{} {} {:?} {:?} {}", v.0, v.1, v.2.to_bits(), v.3, v.4)
            };
            assert_eq!(
                (a, show(&ours)),
                (b, show(&host)),
                "input {:?}",
                std::string::String::from_utf8_lossy(&input[..len])
            );
            counts.insert(a);
        }
        // The inputs reach the outcomes: end of input, and 0 to 4 fields.
        for n in [-1, 0, 1, 2, 4] {
            assert!(counts.contains(&n), "no input gave {n}: {counts:?}");
        }
    }

    #[test]
    fn unsupported_conversions_are_errors() {
        let mut x = 0i32;
        // SAFETY: one int pointer.
        let n = unsafe { libos_std_test_sscanf(c"1".as_ptr(), c"%1$d".as_ptr(), &mut x) };
        assert_eq!((n, super::super::errno()), (-1, ::libc::EINVAL));
    }
}
