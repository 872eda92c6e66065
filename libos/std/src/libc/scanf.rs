//! `sscanf`, `vsscanf`, `fscanf`, `vfscanf`, `scanf`, `vscanf` (and
//! glibc's `__isoc99_` names, which its headers call), for C code that
//! parses strings and streams (a stream a byte at a time, as glibc's:
//! see [`Input`]): the variadic entry
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

use alloc::vec::Vec;

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

/// What is scanned: a string, or a stream (locked by the caller).
enum Src<'a> {
    Str(&'a [u8]),
    Stream(&'a mut super::stdio::File),
}

/// The input and how far it has been read.
///
/// A stream is read as glibc's `vfscanf` reads it: a byte at a time,
/// each one that can continue the field taken, the first that cannot
/// left in the stream (glibc's one `ungetc`); what a conversion took and
/// could not use is gone (`%x` of `0xg` takes `0x`).
struct Input<'a> {
    src: Src<'a>,
    /// Bytes taken so far (`%n`).
    at: usize,
    /// A stream's field, as read.
    field: Vec<u8>,
}

impl Input<'_> {
    fn peek(&mut self) -> Option<u8> {
        match &mut self.src {
            Src::Str(s) => s.get(self.at).copied(),
            Src::Stream(f) => f.peek_byte(),
        }
    }

    /// Takes the byte `peek` returned.
    fn bump(&mut self) {
        if let Src::Stream(f) = &mut self.src {
            f.take_byte();
        }
        self.at += 1;
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.bump();
        }
    }

    /// The next at most `width` bytes: of a string, all of them (the
    /// conversion takes what it uses, [`Input::consume`]); of a stream,
    /// those `accept` takes one by one (given the field so far), taken
    /// from the stream.
    fn field(&mut self, width: usize, accept: &dyn Fn(&[u8], u8) -> bool) -> &[u8] {
        match &mut self.src {
            Src::Str(s) => {
                let rest = &s[self.at..];
                &rest[..rest.len().min(width)]
            }
            Src::Stream(f) => {
                self.field.clear();
                while self.field.len() < width {
                    let Some(b) = f.peek_byte() else { break };
                    if !accept(&self.field, b) || self.field.try_reserve(1).is_err() {
                        break;
                    }
                    f.take_byte();
                    self.field.push(b);
                }
                self.at += self.field.len();
                &self.field
            }
        }
    }

    /// A conversion used `used` of its field's bytes: a string moves on
    /// by as many; a stream has taken the field already, and a rest
    /// other than an unfinished exponent (`1e+`) or hexadecimal prefix
    /// (`0x`) is a matching failure (glibc's `infin`): false then.
    fn consume(&mut self, used: usize) -> bool {
        match self.src {
            Src::Str(_) => {
                self.at += used;
                true
            }
            Src::Stream(_) => matches!(
                &self.field[used.min(self.field.len())..],
                b"" | b"x" | b"X" | b"e" | b"E" | b"e+" | b"e-" | b"E+" | b"E-"
            ),
        }
    }
}

/// Whether `c` can continue `p` as an integer in `base` (0: by its
/// prefix) for a stream's field.
fn int_continues(p: &[u8], base: u32, c: u8) -> bool {
    if p.is_empty() && (c == b'+' || c == b'-') {
        return true;
    }
    let body = if matches!(p.first(), Some(b'+' | b'-')) { &p[1..] } else { p };
    if (base == 16 || base == 0) && body == b"0" && (c == b'x' || c == b'X') {
        return true;
    }
    let hex = body.len() >= 2 && matches!(body[1], b'x' | b'X');
    let base = match base {
        0 if hex => 16,
        0 if body.first() == Some(&b'0') => 8,
        0 => 10,
        b => b,
    };
    digit(c, base).is_some()
}

/// Whether `c` can continue `p` as a decimal floating-point number,
/// `inf`, `infinity` or `nan`, for a stream's field.
fn float_continues(p: &[u8], c: u8) -> bool {
    if p.is_empty() && (c == b'+' || c == b'-') {
        return true;
    }
    let body = if matches!(p.first(), Some(b'+' | b'-')) { &p[1..] } else { p };
    for word in [&b"infinity"[..], b"nan"] {
        if body.len() < word.len()
            && body.eq_ignore_ascii_case(&word[..body.len()])
            && c.eq_ignore_ascii_case(&word[body.len()])
        {
            return true;
        }
    }
    if body.first().is_some_and(u8::is_ascii_alphabetic) {
        // Inside `nan`, `inf` or `infinity` glibc takes the byte that
        // does not match (no pushback: the field fails with it taken);
        // after a whole `inf` a byte other than `i` stays.
        let within =
            |word: &[u8]| body.len() < word.len() && body.eq_ignore_ascii_case(&word[..body.len()]);
        return (matches!(body.len(), 1 | 2) && (within(b"nan") || within(b"inf")))
            || ((4..8).contains(&body.len()) && within(b"infinity"));
    }
    if body == b"0" && (c == b'x' || c == b'X') {
        // A hexadecimal number: taken, then refused (not supported).
        return true;
    }
    match body.iter().position(|&b| b == b'e' || b == b'E') {
        None => {
            c.is_ascii_digit()
                || (c == b'.' && !body.contains(&b'.'))
                || ((c == b'e' || c == b'E') && body.iter().any(u8::is_ascii_digit))
        }
        Some(k) => c.is_ascii_digit() || (k + 1 == body.len() && (c == b'+' || c == b'-')),
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
    let s = unsafe { super::c_str(input) };
    // SAFETY: the caller's contract.
    unsafe { scan_from(Input { src: Src::Str(s), at: 0, field: Vec::new() }, fmt, args) }
}

/// Scans a stream as `vfscanf`: see [`scan`].
///
/// # Safety
///
/// `fmt` is a NUL-terminated string; `args` as `scan`'s.
pub unsafe fn scan_stream(
    f: &mut super::stdio::File,
    fmt: *const c_char,
    args: &mut Args,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { scan_from(Input { src: Src::Stream(f), at: 0, field: Vec::new() }, fmt, args) }
}

/// [`scan`] of any input.
///
/// # Safety
///
/// As `scan`'s.
unsafe fn scan_from(mut inp: Input<'_>, fmt: *const c_char, args: &mut Args) -> c_int {
    // SAFETY: the caller's contract.
    let fmt = unsafe { super::c_str(fmt) };
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
                inp.bump();
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
                        Some(b'%') => inp.bump(),
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
                    let f = inp.field(width, &|p, c| int_continues(p, base, c));
                    let Some((v, neg, used)) = integer(f, base, signed) else {
                        break 'scan Stop::Matching;
                    };
                    if !inp.consume(used) {
                        break 'scan Stop::Matching;
                    }
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
                    let stream = matches!(inp.src, Src::Stream(_));
                    let f = inp.field(width, &float_continues);
                    let body = if matches!(f.first(), Some(b'+' | b'-')) { &f[1..] } else { f };
                    if stream && body.len() > 1 && body[0] == b'0' && body[1] | 0x20 == b'x' {
                        break 'scan Stop::Unsupported;
                    }
                    let Some((v, used)) = float(f) else {
                        break 'scan Stop::Matching;
                    };
                    if !inp.consume(used) {
                        break 'scan Stop::Matching;
                    }
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
                    let mut set = [true; 256];
                    if conv == b'[' {
                        let Some((s, end)) = scan_set(&fmt[i..]) else {
                            break 'scan Stop::Unsupported;
                        };
                        i += end;
                        set = s;
                    }
                    let width = if conv == b'c' && width == usize::MAX { 1 } else { width };
                    let accept = |_: &[u8], b: u8| match conv {
                        b'c' => true,
                        b's' => !b.is_ascii_whitespace(),
                        _ => set[usize::from(b)],
                    };
                    let field = inp.field(width, &accept);
                    let n = field.iter().take_while(|&&b| accept(&[], b)).count();
                    // A %c short of its width at the end of the input
                    // takes what there is (glibc's).
                    if n == 0 {
                        break 'scan if n == 0 && conv == b'[' {
                            Stop::Matching
                        } else {
                            Stop::Input
                        };
                    }
                    let bytes = &field[..n];
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
                    inp.consume(n);
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

/// `vfscanf(f, fmt, ap)`: as `vsscanf`, reading `f` as glibc's does (a
/// byte at a time; the byte that ends a field stays in the stream, the
/// bytes a failed field took are gone; see [`Input`]); `EOF` when the
/// stream ends or fails before the first conversion.
///
/// # Safety
///
/// `f` is an open stream; `fmt` and `ap` as `vsscanf`'s.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn vfscanf(
    f: *mut super::stdio::File,
    fmt: *const c_char,
    ap: VaList,
) -> c_int {
    // SAFETY: the caller's contract; the stream is locked meanwhile.
    let r = unsafe { super::stdio::with_locked(f, |s| scan_stream(s, fmt, &mut Args::new(ap))) };
    r.unwrap_or(::libc::EOF)
}

/// `__isoc99_vfscanf`: glibc headers' name for `vfscanf`.
///
/// # Safety
///
/// As `vfscanf`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __isoc99_vfscanf(
    f: *mut super::stdio::File,
    fmt: *const c_char,
    ap: VaList,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { vfscanf(f, fmt, ap) }
}

/// `vscanf(fmt, ap)`: `vfscanf` on `stdin`.
///
/// # Safety
///
/// As `vfscanf`'s `fmt` and `ap`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn vscanf(fmt: *const c_char, ap: VaList) -> c_int {
    // SAFETY: stdin is an open stream; the rest is the caller's.
    unsafe { vfscanf(super::stdio::stdin, fmt, ap) }
}

/// `__isoc99_vscanf`: glibc headers' name for `vscanf`.
///
/// # Safety
///
/// As `vscanf`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __isoc99_vscanf(fmt: *const c_char, ap: VaList) -> c_int {
    // SAFETY: the same contract.
    unsafe { vscanf(fmt, ap) }
}

variadic!("sscanf", vsscanf, 2, "rdx");
variadic!("__isoc99_sscanf", vsscanf, 2, "rdx");
variadic!("fscanf", vfscanf, 2, "rdx");
variadic!("__isoc99_fscanf", vfscanf, 2, "rdx");
variadic!("scanf", vscanf, 1, "rsi");
variadic!("__isoc99_scanf", vscanf, 1, "rsi");

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    unsafe extern "C" {
        fn libos_std_test_sscanf(s: *const c_char, fmt: *const c_char, ...) -> c_int;
        #[allow(improper_ctypes)]
        fn libos_std_test_fscanf(
            f: *mut super::super::stdio::File,
            fmt: *const c_char,
            ...
        ) -> c_int;
        // The host C library's, to compare with.
        #[link_name = "__isoc99_fscanf"]
        fn host_fscanf(f: *mut ::libc::FILE, fmt: *const c_char, ...) -> c_int;
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

    /// Random inputs as streams (fmemopen), scanned several times over
    /// with formats of each kind, against glibc's fscanf on glibc's
    /// fmemopen: the same counts, values, `%n`, and the same bytes left
    /// in the stream after (glibc's one pushed-back byte).
    #[test]
    fn random_streams_scan_as_glibc() {
        use super::super::stdio;
        let alphabet = b" \t\n-+0x19aeEfF.ninfyz%[]";
        let formats: [&core::ffi::CStr; 8] = [
            c"%d%x %lf%n",
            c"%i %31s%n",
            c"%lf%lf%n",
            c"%3c%2d%n",
            c"%31[-+0-9a-f]%n%%",
            c" %o%*s%lf%n",
            c"in%lf%n",
            c"%5lf%u%n",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..4000 {
            let len = (next() % 30) as usize;
            let mut input = [0u8; 32];
            for b in &mut input[..len] {
                *b = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            let fmt = formats[(next() % formats.len() as u64) as usize];
            if input.windows(2).any(|w| w[0] == b'0' && w[1] | 0x20 == b'x')
                && fmt.to_bytes().contains(&b'f')
            {
                // Hexadecimal floating-point input: not supported.
                continue;
            }
            // SAFETY: the streams read input's len bytes; the outputs
            // match every format (a string or chars in the [u8; 32], its
            // width at most 31), the same pointers in every position.
            let (ours, host) = unsafe {
                let a = stdio::fmemopen(input.as_mut_ptr().cast(), len, c"r".as_ptr());
                let b = ::libc::fmemopen(input.as_mut_ptr().cast(), len, c"r".as_ptr());
                let mut log = [std::vec::Vec::new(), std::vec::Vec::new()];
                for _ in 0..3 {
                    let mut o = (0i64, 0i64, 0f64, [0u8; 32], -1i32);
                    let mut h = o;
                    let x = libos_std_test_fscanf(
                        a,
                        fmt.as_ptr(),
                        &mut o.0,
                        &mut o.1,
                        &mut o.2,
                        &mut o.3,
                        &mut o.4,
                    );
                    let y = host_fscanf(
                        b,
                        fmt.as_ptr(),
                        &mut h.0,
                        &mut h.1,
                        &mut h.2,
                        &mut h.3,
                        &mut h.4,
                    );
                    log[0].push(format!(
                        "{x} {:?} {:?} {:?} {:?} {}",
                        o.0,
                        o.1,
                        o.2.to_bits(),
                        o.3,
                        o.4
                    ));
                    log[1].push(format!(
                        "{y} {:?} {:?} {:?} {:?} {}",
                        h.0,
                        h.1,
                        h.2.to_bits(),
                        h.3,
                        h.4
                    ));
                    // The byte the conversion left, then go on.
                    log[0].push(format!("{}", stdio::fgetc(a)));
                    log[1].push(format!("{}", ::libc::fgetc(b)));
                }
                stdio::fclose(a);
                ::libc::fclose(b);
                let [o, h] = log;
                (o, h)
            };
            assert_eq!(
                ours,
                host,
                "round {round} input {:?} format {fmt:?}",
                std::string::String::from_utf8_lossy(&input[..len])
            );
        }
    }
}
