//! C code inside a program, over the C library as C programs use it:
//!
//! * `c/clib.c` (built with cc by build.rs, as a `-sys` crate builds its
//!   C): the printf family, buffered streams on files of the disk and on a
//!   pipe, read-write locks between threads; the suite compares its lines
//!   with the same file built natively against glibc;
//! * zlib from libz-sys (static, its C source unmodified): `gzopen` on the
//!   disk (`snprintf` of the path), `gzprintf` (C's `va_start`, then
//!   `vsnprintf`), `gzgets`, and `gzerror`'s message for a corrupt file
//!   (`snprintf` of "path: message").
//!
//! The C part leaves its last line in `stdout`'s buffer: `exit` writes it,
//! after Rust's own lines.

use std::ffi::{CStr, c_char, c_int};

libos_std::app!(devices: ["storage": Block]);

unsafe extern "C" {
    fn clib_run(dir: *const c_char) -> c_int;
    // zlib's own variadic function (libz-sys does not declare it).
    fn gzprintf(file: libz_sys::gzFile, format: *const c_char, ...) -> c_int;
}

fn main() {
    // SAFETY: a NUL-terminated directory name ("" is the disk's root).
    let failures = unsafe { clib_run(c"".as_ptr()) };
    let zlib = zlib();
    println!("rust: zlib {zlib}");
    println!("rust: done");
    std::process::exit(i32::from(failures != 0 || !zlib.starts_with("ok")));
}

fn zlib() -> String {
    use libz_sys::*;
    // SAFETY: zlib's C API, used as documented: NUL-terminated strings,
    // handles closed once, buffers of the sizes given.
    unsafe {
        let gz = gzopen(c"/z.gz".as_ptr(), c"wb9".as_ptr());
        if gz.is_null() {
            return "gzopen for writing failed".into();
        }
        for i in 0..200 {
            gzprintf(
                gz,
                c"record %03d: %s %.2f\n".as_ptr(),
                i,
                c"payload".as_ptr(),
                f64::from(i) / 8.0,
            );
        }
        if gzclose(gz) != Z_OK {
            return "gzclose failed".into();
        }
        let compressed = std::fs::metadata("/z.gz").map(|m| m.len()).unwrap_or(0);
        let gz = gzopen(c"/z.gz".as_ptr(), c"rb".as_ptr());
        let mut buf = [0 as c_char; 128];
        let mut lines = 0;
        let mut last = String::new();
        while !gzgets(gz, buf.as_mut_ptr(), 128).is_null() {
            lines += 1;
            last = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
        }
        gzclose(gz);
        // A gzip header followed by garbage: zlib reports the path.
        std::fs::write("/bad.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage, not deflate")
            .expect("write /bad.gz");
        let gz = gzopen(c"/bad.gz".as_ptr(), c"rb".as_ptr());
        let n = gzread(gz, buf.as_mut_ptr().cast(), 128);
        let mut err = 0;
        let msg = CStr::from_ptr(gzerror(gz, &mut err)).to_string_lossy().into_owned();
        gzclose(gz);
        let missing = gzopen(c"/missing/z.gz".as_ptr(), c"rb".as_ptr()).is_null();
        format!(
            "ok: {lines} lines, compressed to {} of 5600+ bytes, last {:?}; corrupt: {n} {err} {msg:?}; missing: {missing}",
            if compressed > 0 && compressed < 2000 { "less than 2000" } else { "too many" },
            last.trim_end()
        )
    }
}
