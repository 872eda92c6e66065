//! The string functions std, the unwinder and C code call, and the error
//! messages of `strerror_r` (glibc's wording, which `io::Error`'s display
//! shows).

use super::{c_char, c_int, c_void, size_t};

/// `strlen(s)`.
///
/// # Safety
///
/// `s` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strlen(s: *const c_char) -> size_t {
    let mut n = 0;
    // SAFETY: the caller guarantees a NUL within the string.
    while unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

/// `strnlen(s, max)`.
///
/// # Safety
///
/// `s` is readable up to its NUL or `max` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strnlen(s: *const c_char, max: size_t) -> size_t {
    let mut n = 0;
    // SAFETY: the caller guarantees n < max bytes are readable up to a NUL.
    while n < max && unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

/// `strcmp(a, b)`.
///
/// # Safety
///
/// `a` and `b` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strcmp(a: *const c_char, b: *const c_char) -> c_int {
    // SAFETY: the caller guarantees both strings end with a NUL, where
    // strncmp stops.
    unsafe { strncmp(a, b, usize::MAX) }
}

/// `strncmp(a, b, n)`.
///
/// # Safety
///
/// `a` and `b` are readable up to their NUL or `n` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strncmp(a: *const c_char, b: *const c_char, n: size_t) -> c_int {
    for i in 0..n {
        // SAFETY: the caller guarantees bytes up to a NUL or n are readable.
        let (x, y) = unsafe { (*a.add(i) as u8, *b.add(i) as u8) };
        if x != y || x == 0 {
            return c_int::from(x) - c_int::from(y);
        }
    }
    0
}

/// `strncpy(dst, src, n)`: copies `src` up to its NUL, then pads `dst`
/// with NULs to `n` bytes (no NUL is added when `src` is `n` bytes or
/// longer), as C says.
///
/// # Safety
///
/// `src` is readable up to its NUL or `n` bytes, `dst` writable for `n`
/// bytes, and they do not overlap.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strncpy(dst: *mut c_char, src: *const c_char, n: size_t) -> *mut c_char {
    let mut i = 0;
    // SAFETY: the caller guarantees src readable up to its NUL or n bytes
    // and dst writable for n bytes.
    unsafe {
        while i < n && *src.add(i) != 0 {
            *dst.add(i) = *src.add(i);
            i += 1;
        }
        core::ptr::write_bytes(dst.add(i), 0, n - i);
    }
    dst
}

/// `strchr(s, c)`.
///
/// # Safety
///
/// `s` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strchr(s: *const c_char, c: c_int) -> *mut c_char {
    let mut p = s;
    loop {
        // SAFETY: p stays within the string, up to and including its NUL.
        let b = unsafe { *p };
        if b as u8 == c as u8 {
            return p.cast_mut();
        }
        if b == 0 {
            return core::ptr::null_mut();
        }
        // SAFETY: b was not the NUL, so the next byte is in the string.
        p = unsafe { p.add(1) };
    }
}

/// The length of the longest prefix of `s` whose bytes are (`inside`) or
/// are not in `set`, both NUL-terminated strings.
///
/// # Safety
///
/// `s` and `set` are NUL-terminated strings.
unsafe fn span(s: *const c_char, set: *const c_char, inside: bool) -> size_t {
    // SAFETY: the caller guarantees NUL-terminated strings.
    let (s, set) = unsafe { (super::c_str(s), super::c_str(set)) };
    let mut member = [false; 256];
    for &b in set {
        member[usize::from(b)] = true;
    }
    s.iter().position(|&b| member[usize::from(b)] != inside).unwrap_or(s.len())
}

/// `strspn(s, accept)`: the length of the prefix of `s` made of bytes of
/// `accept`.
///
/// # Safety
///
/// `s` and `accept` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strspn(s: *const c_char, accept: *const c_char) -> size_t {
    // SAFETY: the same contract.
    unsafe { span(s, accept, true) }
}

/// `strcspn(s, reject)`: the length of the prefix of `s` with no byte of
/// `reject`.
///
/// # Safety
///
/// `s` and `reject` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strcspn(s: *const c_char, reject: *const c_char) -> size_t {
    // SAFETY: the same contract.
    unsafe { span(s, reject, false) }
}

/// `strrchr(s, c)`.
///
/// # Safety
///
/// `s` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strrchr(s: *const c_char, c: c_int) -> *mut c_char {
    // SAFETY: the caller guarantees a NUL-terminated string.
    let len = unsafe { strlen(s) };
    for i in (0..=len).rev() {
        // SAFETY: i <= len, within the string and its NUL.
        if unsafe { *s.add(i) } as u8 == c as u8 {
            // SAFETY: as above.
            return unsafe { s.add(i) }.cast_mut();
        }
    }
    core::ptr::null_mut()
}

/// `memchr(s, c, n)`.
///
/// # Safety
///
/// `s` is readable for `n` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn memchr(s: *const c_void, c: c_int, n: size_t) -> *mut c_void {
    // SAFETY: the caller guarantees n readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(s.cast::<u8>(), n) };
    match bytes.iter().position(|&b| b == c as u8) {
        // SAFETY: i < n.
        Some(i) => unsafe { s.cast::<u8>().add(i) }.cast_mut().cast(),
        None => core::ptr::null_mut(),
    }
}

/// `memrchr(s, c, n)`.
///
/// # Safety
///
/// `s` is readable for `n` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn memrchr(s: *const c_void, c: c_int, n: size_t) -> *mut c_void {
    // SAFETY: the caller guarantees n readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(s.cast::<u8>(), n) };
    match bytes.iter().rposition(|&b| b == c as u8) {
        // SAFETY: i < n.
        Some(i) => unsafe { s.cast::<u8>().add(i) }.cast_mut().cast(),
        None => core::ptr::null_mut(),
    }
}

/// glibc's messages (2.36), indexed by error number: 0 ("Success") to
/// `EHWPOISON` (133), the last Linux defines.
const MESSAGES: [&str; 134] = [
    "Success",
    "Operation not permitted",
    "No such file or directory",
    "No such process",
    "Interrupted system call",
    "Input/output error",
    "No such device or address",
    "Argument list too long",
    "Exec format error",
    "Bad file descriptor",
    "No child processes",
    "Resource temporarily unavailable",
    "Cannot allocate memory",
    "Permission denied",
    "Bad address",
    "Block device required",
    "Device or resource busy",
    "File exists",
    "Invalid cross-device link",
    "No such device",
    "Not a directory",
    "Is a directory",
    "Invalid argument",
    "Too many open files in system",
    "Too many open files",
    "Inappropriate ioctl for device",
    "Text file busy",
    "File too large",
    "No space left on device",
    "Illegal seek",
    "Read-only file system",
    "Too many links",
    "Broken pipe",
    "Numerical argument out of domain",
    "Numerical result out of range",
    "Resource deadlock avoided",
    "File name too long",
    "No locks available",
    "Function not implemented",
    "Directory not empty",
    "Too many levels of symbolic links",
    "Unknown error 41",
    "No message of desired type",
    "Identifier removed",
    "Channel number out of range",
    "Level 2 not synchronized",
    "Level 3 halted",
    "Level 3 reset",
    "Link number out of range",
    "Protocol driver not attached",
    "No CSI structure available",
    "Level 2 halted",
    "Invalid exchange",
    "Invalid request descriptor",
    "Exchange full",
    "No anode",
    "Invalid request code",
    "Invalid slot",
    "Unknown error 58",
    "Bad font file format",
    "Device not a stream",
    "No data available",
    "Timer expired",
    "Out of streams resources",
    "Machine is not on the network",
    "Package not installed",
    "Object is remote",
    "Link has been severed",
    "Advertise error",
    "Srmount error",
    "Communication error on send",
    "Protocol error",
    "Multihop attempted",
    "RFS specific error",
    "Bad message",
    "Value too large for defined data type",
    "Name not unique on network",
    "File descriptor in bad state",
    "Remote address changed",
    "Can not access a needed shared library",
    "Accessing a corrupted shared library",
    ".lib section in a.out corrupted",
    "Attempting to link in too many shared libraries",
    "Cannot exec a shared library directly",
    "Invalid or incomplete multibyte or wide character",
    "Interrupted system call should be restarted",
    "Streams pipe error",
    "Too many users",
    "Socket operation on non-socket",
    "Destination address required",
    "Message too long",
    "Protocol wrong type for socket",
    "Protocol not available",
    "Protocol not supported",
    "Socket type not supported",
    "Operation not supported",
    "Protocol family not supported",
    "Address family not supported by protocol",
    "Address already in use",
    "Cannot assign requested address",
    "Network is down",
    "Network is unreachable",
    "Network dropped connection on reset",
    "Software caused connection abort",
    "Connection reset by peer",
    "No buffer space available",
    "Transport endpoint is already connected",
    "Transport endpoint is not connected",
    "Cannot send after transport endpoint shutdown",
    "Too many references: cannot splice",
    "Connection timed out",
    "Connection refused",
    "Host is down",
    "No route to host",
    "Operation already in progress",
    "Operation now in progress",
    "Stale file handle",
    "Structure needs cleaning",
    "Not a XENIX named type file",
    "No XENIX semaphores available",
    "Is a named type file",
    "Remote I/O error",
    "Disk quota exceeded",
    "No medium found",
    "Wrong medium type",
    "Operation canceled",
    "Required key not available",
    "Key has expired",
    "Key has been revoked",
    "Key was rejected by service",
    "Owner died",
    "State not recoverable",
    "Operation not possible due to RF-kill",
    "Memory page has hardware error",
];

/// glibc's message for error number `e`.
pub fn message(e: c_int) -> Option<&'static str> {
    usize::try_from(e).ok().and_then(|i| MESSAGES.get(i)).copied()
}

/// `__xpg_strerror_r(e, buf, len)`: the POSIX `strerror_r`, which std
/// calls: copies the message (cut to fit, NUL-terminated).
///
/// # Safety
///
/// `buf` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __xpg_strerror_r(e: c_int, buf: *mut c_char, len: size_t) -> c_int {
    if len == 0 {
        return ::libc::ERANGE;
    }
    let mut unknown = [0u8; 32];
    let text = match message(e) {
        Some(m) => m.as_bytes(),
        None => {
            let mut w = Cursor { buf: &mut unknown, at: 0 };
            let _ = core::fmt::write(&mut w, format_args!("Unknown error {e}"));
            let at = w.at;
            &unknown[..at]
        }
    };
    let n = text.len().min(len - 1);
    // SAFETY: n + 1 <= len bytes of buf are written.
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    if n < text.len() { ::libc::ERANGE } else { 0 }
}

/// `strerror_r(e, buf, len)` under its plain name is glibc's GNU version
/// (what C code built with `_GNU_SOURCE`, and all C++, calls; the POSIX
/// one is `__xpg_strerror_r`, which the libc crate binds): the message in
/// `buf` (cut to fit), and `buf`.
///
/// # Safety
///
/// `buf` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strerror_r(e: c_int, buf: *mut c_char, len: size_t) -> *mut c_char {
    // SAFETY: the same contract; ERANGE only says it was cut.
    unsafe { __xpg_strerror_r(e, buf, len) };
    buf
}

/// Where `strerror` leaves its message.
struct Static(core::cell::UnsafeCell<[c_char; 64]>);

// SAFETY: one host thread; as glibc's, the string is valid until the next
// call (POSIX lets strerror return a buffer that later calls overwrite).
unsafe impl Sync for Static {}

static STRERROR: Static = Static(core::cell::UnsafeCell::new([0; 64]));

/// `strerror(e)`: glibc's message for `e` ("Unknown error N" for others).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn strerror(e: c_int) -> *mut c_char {
    let buf = STRERROR.0.get().cast::<c_char>();
    // SAFETY: the static has 64 bytes; the longest message is shorter.
    unsafe { __xpg_strerror_r(e, buf, 64) };
    buf
}

struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl core::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.at);
        self.buf[self.at..self.at + n].copy_from_slice(&s.as_bytes()[..n]);
        self.at += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strncpy_pads_with_nuls_and_cuts_without_one() {
        let mut d = [7 as c_char; 6];
        // SAFETY: d is writable for 6 bytes; the sources are C strings.
        unsafe {
            strncpy(d.as_mut_ptr(), c"ab".as_ptr(), 5);
            assert_eq!(d, [97, 98, 0, 0, 0, 7]);
            strncpy(d.as_mut_ptr(), c"abcdefgh".as_ptr(), 3);
            assert_eq!(d[..4], [97, 98, 99, 0]);
        }
    }

    #[test]
    fn spans_count_the_prefix_in_or_out_of_the_set() {
        // SAFETY: NUL-terminated literals.
        unsafe {
            assert_eq!(strspn(c"  \tword".as_ptr(), c" \t".as_ptr()), 3);
            assert_eq!(strspn(c"abc".as_ptr(), c"".as_ptr()), 0);
            assert_eq!(strspn(c"aaa".as_ptr(), c"a".as_ptr()), 3);
            assert_eq!(strcspn(c"key=value".as_ptr(), c"=;".as_ptr()), 3);
            assert_eq!(strcspn(c"plain".as_ptr(), c"=".as_ptr()), 5);
            assert_eq!(strcspn(c"".as_ptr(), c"x".as_ptr()), 0);
        }
    }

    #[test]
    fn strings_and_messages_as_glibc() {
        // SAFETY: C string literals and a buffer of the length given.
        unsafe {
            assert_eq!(strlen(c"abc".as_ptr()), 3);
            assert!(strcmp(c"abc".as_ptr(), c"abd".as_ptr()) < 0);
            assert_eq!(strncmp(c"abc".as_ptr(), c"abd".as_ptr(), 2), 0);
            let s = c"a/b".as_ptr();
            assert_eq!(strchr(s, i32::from(b'/')), s.add(1).cast_mut());
            assert_eq!(strrchr(s, 0), s.add(3).cast_mut());
            let mut buf = [0 as c_char; 64];
            assert_eq!(__xpg_strerror_r(::libc::ENOENT, buf.as_mut_ptr(), 64), 0);
            assert_eq!(super::super::c_str(buf.as_ptr()), b"No such file or directory");
            assert_eq!(__xpg_strerror_r(9999, buf.as_mut_ptr(), 64), 0);
            assert_eq!(super::super::c_str(buf.as_ptr()), b"Unknown error 9999");
            assert_eq!(__xpg_strerror_r(::libc::ENOENT, buf.as_mut_ptr(), 3), ::libc::ERANGE);
            assert_eq!(super::super::c_str(buf.as_ptr()), b"No");
            assert_eq!(strerror_r(::libc::EPERM, buf.as_mut_ptr(), 64), buf.as_mut_ptr());
            assert_eq!(super::super::c_str(buf.as_ptr()), b"Operation not permitted");
            assert_eq!(super::super::c_str(strerror(::libc::EINTR)), b"Interrupted system call");
            assert_eq!(super::super::c_str(strerror(-3)), b"Unknown error -3");
        }
    }
}
