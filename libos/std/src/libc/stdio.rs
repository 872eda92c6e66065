//! The C standard streams, for C code that reports through them
//! (mimalloc's warnings, a library's diagnostics): `stdin`, `stdout`,
//! `stderr` as `FILE *`, and the calls that write a string or bytes to
//! one: `fputs`, `puts`, `fputc`, `putc`, `putchar`, `fwrite`, `fflush`,
//! `fileno`.
//!
//! A `FILE` here is its descriptor, unbuffered: each call is one `write`
//! to the console (Rust's `print!` buffers by line in std, as glibc's
//! `stdout` does; the two never shared a buffer on Linux either).
//! `fopen`, the `printf` family (C-variadic functions, which stable Rust
//! cannot define) and reading are not defined: a program that uses them
//! does not link, naming the function.

use super::{c_char, c_int, c_void, size_t};

/// A C stream: the descriptor it writes to.
#[repr(C)]
#[derive(Debug)]
pub struct File {
    fd: c_int,
}

static STDIN: File = File { fd: 0 };
static STDOUT: File = File { fd: 1 };
static STDERR: File = File { fd: 2 };

/// `stdin`.
#[cfg_attr(not(test), unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static mut stdin: *mut File = (&raw const STDIN).cast_mut();

/// `stdout`.
#[cfg_attr(not(test), unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static mut stdout: *mut File = (&raw const STDOUT).cast_mut();

/// `stderr`.
#[cfg_attr(not(test), unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static mut stderr: *mut File = (&raw const STDERR).cast_mut();

/// Writes all of `bytes` to `f`'s descriptor; false on an error.
///
/// # Safety
///
/// `f` is one of the streams above.
unsafe fn put(f: *mut File, bytes: &[u8]) -> bool {
    // SAFETY: the caller guarantees a stream.
    let fd = unsafe { (*f).fd };
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: rest is readable for its length.
        let n = unsafe { super::fd::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return false;
        }
        rest = &rest[n as usize..];
    }
    true
}

/// `fputs(s, f)`: a non-negative number, or `EOF`.
///
/// # Safety
///
/// `s` is a NUL-terminated string; `f` a stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fputs(s: *const c_char, f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    if unsafe { put(f, super::c_str(s)) } { 1 } else { ::libc::EOF }
}

/// `puts(s)`: `s` and a newline on `stdout`.
///
/// # Safety
///
/// `s` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn puts(s: *const c_char) -> c_int {
    // SAFETY: s is a NUL-terminated string; STDOUT is a stream.
    let ok = unsafe {
        let out = (&raw const STDOUT).cast_mut();
        put(out, super::c_str(s)) && put(out, b"\n")
    };
    if ok { 1 } else { ::libc::EOF }
}

/// `fputc(c, f)`: the byte written, or `EOF`.
///
/// # Safety
///
/// `f` is a stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fputc(c: c_int, f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    if unsafe { put(f, &[c as u8]) } { c_int::from(c as u8) } else { ::libc::EOF }
}

/// `putc(c, f)`: as `fputc`.
///
/// # Safety
///
/// `f` is a stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn putc(c: c_int, f: *mut File) -> c_int {
    // SAFETY: the same contract.
    unsafe { fputc(c, f) }
}

/// `putchar(c)`: `fputc` on `stdout`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn putchar(c: c_int) -> c_int {
    // SAFETY: STDOUT is a stream.
    unsafe { fputc(c, (&raw const STDOUT).cast_mut()) }
}

/// `fwrite(p, size, n, f)`: the number of whole items written.
///
/// # Safety
///
/// `p` is readable for `size * n` bytes; `f` is a stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fwrite(p: *const c_void, size: size_t, n: size_t, f: *mut File) -> size_t {
    let Some(len) = size.checked_mul(n).filter(|&l| l > 0) else { return 0 };
    // SAFETY: the caller guarantees len readable bytes at p.
    let bytes = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) };
    // SAFETY: the caller guarantees a stream.
    if unsafe { put(f, bytes) } { n } else { 0 }
}

/// `fflush(f)`: nothing is buffered; 0.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn fflush(_f: *mut File) -> c_int {
    0
}

/// `fileno(f)`: the stream's descriptor.
///
/// # Safety
///
/// `f` is a stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fileno(f: *mut File) -> c_int {
    // SAFETY: the caller guarantees a stream.
    unsafe { (*f).fd }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_their_descriptors() {
        // SAFETY: the streams are the statics above; fwrite of nothing
        // writes nothing.
        unsafe {
            assert_eq!(fileno(stdin), 0);
            assert_eq!(fileno(stdout), 1);
            assert_eq!(fileno(stderr), 2);
            assert_eq!(fwrite(b"x".as_ptr().cast(), 0, 5, stderr), 0);
            assert_eq!(fflush(core::ptr::null_mut()), 0);
            let mut bad = File { fd: -1 };
            assert_eq!(fputs(c"lost".as_ptr(), &mut bad), ::libc::EOF);
            assert_eq!(fputc(i32::from(b'a'), &mut bad), ::libc::EOF);
        }
    }
}
