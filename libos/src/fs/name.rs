//! Names: what FAT can hold, VFAT long-name slots and their checksum, 8.3
//! names and the aliases made for long names, case-insensitive matching.
//!
//! As Linux vfat (`shortname=mixed`, its default) does: a name that is a
//! valid 8.3 name whose base and extension are each all upper or all lower
//! case is stored as a short entry alone (lower case kept in the entry's
//! case bits, as Windows NT and Linux do); any other name gets long-name
//! slots and a short alias: upper case, invalid characters as `_`, spaces
//! and extra dots dropped, and when that loses anything, a `~N` tail
//! (`~1` to `~4`, then a tail made of a hash of the name, as Linux does
//! past four).

use alloc::string::String;
use alloc::vec::Vec;

use super::FsError;

/// Longest long name, in UTF-16 units.
pub(crate) const MAX_LFN: usize = 255;

/// Case bits of a short entry (byte 12): base / extension in lower case.
pub(crate) const CASE_LOWER_BASE: u8 = 0x08;
pub(crate) const CASE_LOWER_EXT: u8 = 0x10;

/// Checks a name for a new entry and returns it as stored: trailing dots
/// (and spaces) dropped, as Linux vfat does. `InvalidName` for a name FAT
/// cannot hold at all.
pub(crate) fn check(name: &str) -> Result<&str, FsError> {
    let trimmed = name.trim_end_matches(['.', ' ']);
    if trimmed.is_empty()
        || name == "."
        || name == ".."
        || trimmed.encode_utf16().count() > MAX_LFN
        || trimmed.chars().any(|c| {
            (c as u32) < 0x20
                || c == '\u{7f}'
                || matches!(c, '"' | '*' | '/' | ':' | '<' | '>' | '?' | '\\' | '|')
        })
    {
        return Err(FsError::InvalidName);
    }
    Ok(trimmed)
}

/// Characters allowed in a short name besides letters and digits.
fn short_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'()-@^_`{}~".contains(c)
}

/// The short entry for `name` when it needs no long name: the 11 bytes and
/// the case bits.
pub(crate) fn exact_short(name: &str) -> Option<([u8; 11], u8)> {
    let (base, ext) = match name.rfind('.') {
        Some(0) => return None,
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (name, ""),
    };
    if base.is_empty()
        || base.len() > 8
        || ext.len() > 3
        || (name.contains('.') && ext.is_empty())
        || !base.chars().chain(ext.chars()).all(short_char)
    {
        return None;
    }
    let mut case = 0;
    for (part, bit) in [(base, CASE_LOWER_BASE), (ext, CASE_LOWER_EXT)] {
        let lower = part.chars().any(|c| c.is_ascii_lowercase());
        let upper = part.chars().any(|c| c.is_ascii_uppercase());
        if lower && upper {
            return None;
        }
        if lower {
            case |= bit;
        }
    }
    let mut out = [b' '; 11];
    for (i, b) in base.bytes().enumerate() {
        out[i] = b.to_ascii_uppercase();
    }
    for (i, b) in ext.bytes().enumerate() {
        out[8 + i] = b.to_ascii_uppercase();
    }
    if out[0] == 0xe5 {
        out[0] = 0x05;
    }
    Some((out, case))
}

/// The short alias of a long name, before any `~N` tail: base and extension
/// and whether making them lost anything (then a tail is needed).
fn alias_parts(name: &str) -> (Vec<u8>, Vec<u8>, bool) {
    let (base, ext) = match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    };
    let mut lossy = false;
    let mut conv = |part: &str, max: usize| {
        let mut out = Vec::new();
        for c in part.chars() {
            if c == ' ' || c == '.' {
                lossy = true;
                continue;
            }
            let b = if short_char(c) {
                c.to_ascii_uppercase() as u8
            } else {
                lossy = true;
                b'_'
            };
            if out.len() == max {
                lossy = true;
                break;
            }
            out.push(b);
        }
        out
    };
    let mut b = conv(base, 8);
    let e = conv(ext, 3);
    if b.is_empty() {
        b.push(b'_');
        lossy = true;
    }
    (b, e, lossy)
}

fn pack(base: &[u8], ext: &[u8]) -> [u8; 11] {
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base);
    out[8..8 + ext.len()].copy_from_slice(ext);
    out
}

/// Candidate short aliases for `name`, in the order Linux tries them: the
/// plain alias if nothing was lost, `BASE~1` to `BASE~4`, then hashed
/// tails. `taken` says whether a short name exists in the directory.
pub(crate) fn alias(name: &str, taken: impl Fn(&[u8; 11]) -> bool) -> Result<[u8; 11], FsError> {
    let (base, ext, lossy) = alias_parts(name);
    if !lossy {
        let s = pack(&base, &ext);
        if !taken(&s) {
            return Ok(s);
        }
    }
    let with_tail = |stem: &[u8], tail: &[u8]| {
        let keep = stem.len().min(8 - tail.len());
        let mut b = stem[..keep].to_vec();
        b.extend_from_slice(tail);
        pack(&b, &ext)
    };
    for n in 1..=4u32 {
        let tail = alloc::format!("~{n}");
        let s = with_tail(&base, tail.as_bytes());
        if !taken(&s) {
            return Ok(s);
        }
    }
    // Past four, Linux keeps two characters of the base and puts a 16-bit
    // hash of the name before the tail.
    let mut h: u16 = 0;
    for u in name.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(u).rotate_left(3);
    }
    for n in 1..=999_999u32 {
        let hx = h.wrapping_add(((n - 1) / 9) as u16);
        let tail = alloc::format!("{hx:04X}~{}", (n - 1) % 9 + 1);
        let s = with_tail(&base[..base.len().min(2)], tail.as_bytes());
        if !taken(&s) {
            return Ok(s);
        }
    }
    Err(FsError::NoSpace)
}

/// The checksum of a short name that its long-name slots carry.
pub(crate) fn checksum(short: &[u8; 11]) -> u8 {
    short.iter().fold(0u8, |sum, &b| ((sum & 1) << 7).wrapping_add(sum >> 1).wrapping_add(b))
}

/// The long-name slots for `name` over `short`, in disk order (the last
/// part first, with the 0x40 flag).
pub(crate) fn lfn_slots(name: &str, short: &[u8; 11]) -> Vec<[u8; 32]> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let n = units.len().div_ceil(13);
    let sum = checksum(short);
    let mut slots = Vec::with_capacity(n);
    for k in (0..n).rev() {
        let mut s = [0u8; 32];
        s[0] = (k + 1) as u8 | if k + 1 == n { 0x40 } else { 0 };
        s[11] = 0x0f;
        s[13] = sum;
        for (j, &at) in LFN_OFFSETS.iter().enumerate() {
            let i = k * 13 + j;
            let u = match i.cmp(&units.len()) {
                core::cmp::Ordering::Less => units[i],
                core::cmp::Ordering::Equal => 0,
                core::cmp::Ordering::Greater => 0xffff,
            };
            s[at..at + 2].copy_from_slice(&u.to_le_bytes());
        }
        slots.push(s);
    }
    slots
}

/// Where the 13 UTF-16 units of a long-name slot are.
pub(crate) const LFN_OFFSETS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// The short name as listed: `BASE.EXT`, lower case where the case bits
/// say so; bytes above 0x7f as Latin-1.
pub(crate) fn short_display(short: &[u8; 11], case: u8) -> String {
    let mut s = String::new();
    let push = |s: &mut String, bytes: &[u8], lower: bool| {
        let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        for (i, &b) in bytes[..end].iter().enumerate() {
            let b = if i == 0 && b == 0x05 && bytes.len() == 8 { 0xe5 } else { b };
            let c = char::from(b);
            s.push(if lower { c.to_ascii_lowercase() } else { c });
        }
    };
    push(&mut s, &short[..8], case & CASE_LOWER_BASE != 0);
    if short[8..].iter().any(|&b| b != b' ') {
        s.push('.');
        push(&mut s, &short[8..], case & CASE_LOWER_EXT != 0);
    }
    s
}

/// The short name as listed, into `out`; returns its length.
pub(crate) fn short_bytes(short: &[u8; 11], case: u8, out: &mut [u8; 12]) -> usize {
    fn push(out: &mut [u8; 12], n: &mut usize, bytes: &[u8], lower: bool, first: bool) {
        let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        for (i, &b) in bytes[..end].iter().enumerate() {
            let b = if first && i == 0 && b == 0x05 { 0xe5 } else { b };
            out[*n] = if lower { b.to_ascii_lowercase() } else { b };
            *n += 1;
        }
    }
    let mut n = 0;
    push(out, &mut n, &short[..8], case & CASE_LOWER_BASE != 0, true);
    if short[8..].iter().any(|&b| b != b' ') {
        out[n] = b'.';
        n += 1;
        push(out, &mut n, &short[8..], case & CASE_LOWER_EXT != 0, false);
    }
    n
}

/// Whether two names are equal ignoring case (as vfat compares names).
pub(crate) fn same(a: &str, b: &str) -> bool {
    if a.len() == b.len() && a.eq_ignore_ascii_case(b) {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return false;
    }
    a.chars().flat_map(char::to_uppercase).eq(b.chars().flat_map(char::to_uppercase))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_and_case_bits() {
        assert_eq!(exact_short("README.TXT"), Some((*b"README  TXT", 0)));
        assert_eq!(exact_short("readme.txt"), Some((*b"README  TXT", 0x18)));
        assert_eq!(exact_short("README.txt"), Some((*b"README  TXT", 0x10)));
        assert_eq!(exact_short("ReadMe.txt"), None);
        assert_eq!(exact_short("longername.txt"), None);
        assert_eq!(exact_short(".bashrc"), None);
        assert_eq!(exact_short("a.b.c"), None);
        assert_eq!(exact_short("a b"), None);
        assert_eq!(exact_short("x+y"), None);
    }

    #[test]
    fn aliases_follow_linux() {
        let none = |_: &[u8; 11]| false;
        assert_eq!(&alias("ReadMe.txt", none).unwrap(), b"README  TXT");
        assert_eq!(&alias("longfilename.text", none).unwrap(), b"LONGFI~1TEX");
        assert_eq!(&alias("a b.c", none).unwrap(), b"AB~1    C  ");
        assert_eq!(&alias(".bashrc", none).unwrap(), b"BASHRC~1   ");
        let taken = |s: &[u8; 11]| s == b"LONGFI~1TEX" || s == b"LONGFI~2TEX";
        assert_eq!(&alias("longfilename.text", taken).unwrap(), b"LONGFI~3TEX");
        let all = |s: &[u8; 11]| s[..6] == *b"LONGFI";
        let s = alias("longfilename.text", all).unwrap();
        assert_eq!(&s[..2], b"LO");
        assert!(s[2..6].iter().all(u8::is_ascii_hexdigit));
        assert_eq!(&s[6..], b"~1TEX");
    }

    #[test]
    fn names_fat_cannot_hold() {
        assert_eq!(check("a.txt"), Ok("a.txt"));
        assert_eq!(check("trailing..."), Ok("trailing"));
        for bad in ["", ".", "..", "a/b", "a:b", "a*", "a\u{1}", "...", &"x".repeat(256)] {
            assert_eq!(check(bad), Err(FsError::InvalidName), "{bad:?}");
        }
        assert!(check(&"é".repeat(255)).is_ok());
    }

    #[test]
    fn slots_carry_the_name_and_checksum() {
        let short = *b"LONGFI~1TEX";
        let slots = lfn_slots("longfilename.text", &short);
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0][0], 0x42);
        assert_eq!(slots[1][0], 0x01);
        assert!(slots.iter().all(|s| s[13] == checksum(&short) && s[11] == 0x0f));
        assert_eq!(short_display(b"README  TXT", 0x08), "readme.TXT");
        assert_eq!(short_display(b"\x05BC     TXT", 0), "\u{e5}BC.TXT");
        assert!(!same("a.txt", "b.txt"));
        assert!(same("ÉTÉ.txt", "été.TXT"));
    }
}
