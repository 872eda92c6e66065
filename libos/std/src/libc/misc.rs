//! Calls about the machine that fit no other family: the host name and
//! `uname`.
//!
//! A guest has no UTS namespace of its own to ask: its host name is the
//! `HOSTNAME` variable of its environment when set (as container runtimes
//! set it), else `localhost`. `uname` names the system `Linux` (the ABI a
//! guest is built for), the release [`RELEASE`] (libos's, not the host
//! kernel's, which a guest cannot ask: programs that test a kernel
//! version see a recent one, whose calls libos answers as documented in
//! docs/std.md), and the machine `x86_64`.

use super::{c_char, c_int, fail, size_t};

/// `gethostname(name, len)`: see the module's documentation. Like glibc,
/// `ENAMETOOLONG` when the name and its NUL do not fit.
///
/// # Safety
///
/// `name` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn gethostname(name: *mut c_char, len: size_t) -> c_int {
    // SAFETY: a NUL-terminated literal.
    let var = unsafe { super::env::getenv(c"HOSTNAME".as_ptr()) };
    let host: &[u8] = if var.is_null() {
        b"localhost"
    } else {
        // SAFETY: getenv returns a NUL-terminated string.
        unsafe { super::c_str(var) }
    };
    if host.len() >= len {
        return fail(::libc::ENAMETOOLONG);
    }
    // SAFETY: host.len() + 1 <= len writable bytes at name.
    unsafe {
        core::ptr::copy_nonoverlapping(host.as_ptr(), name.cast::<u8>(), host.len());
        *name.add(host.len()) = 0;
    }
    0
}

/// The release `uname` reports.
pub const RELEASE: &str = "6.1.0-nabla";

/// Copies `s` and a NUL into `field`, cut to fit.
fn put(field: &mut [c_char; 65], s: &[u8]) {
    let n = s.len().min(field.len() - 1);
    for (d, &b) in field.iter_mut().zip(&s[..n]) {
        *d = b as c_char;
    }
    field[n] = 0;
}

/// `uname(buf)`: see the module's documentation.
///
/// # Safety
///
/// `buf` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn uname(buf: *mut ::libc::utsname) -> c_int {
    // SAFETY: utsname is plain data; all zeroes is a valid value.
    let mut u: ::libc::utsname = unsafe { core::mem::zeroed() };
    put(&mut u.sysname, b"Linux");
    // SAFETY: the field is writable for its 65 bytes.
    if unsafe { gethostname(u.nodename.as_mut_ptr(), u.nodename.len()) } != 0 {
        put(&mut u.nodename, b"localhost");
    }
    put(&mut u.release, RELEASE.as_bytes());
    put(&mut u.version, b"#1 SMP libos");
    put(&mut u.machine, b"x86_64");
    put(&mut u.domainname, b"(none)");
    // SAFETY: the caller guarantees buf is writable.
    unsafe { buf.write(u) };
    0
}

/// `sysinfo(info)`: the guest's view: its uptime, its memory as the
/// total (`--mem`) and the heap's free bytes as free, one process, no
/// swap, loads 0.
///
/// # Safety
///
/// `info` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sysinfo(info: *mut ::libc::sysinfo) -> c_int {
    // SAFETY: sysinfo is plain data; all zeroes is a valid value.
    let mut s: ::libc::sysinfo = unsafe { core::mem::zeroed() };
    let heap = libos::heap_stats();
    s.uptime = libos::time::since_boot().as_secs() as ::libc::c_long;
    s.totalram = libos::rt_private::boot_info().map_or(heap.size as u64, |i| i.mem_size);
    s.freeram = heap.size.saturating_sub(heap.in_use) as u64;
    s.procs = 1;
    s.mem_unit = 1;
    // SAFETY: the caller guarantees info is writable.
    unsafe { info.write(s) };
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uname_names_linux_and_this_machine() {
        // SAFETY: utsname is plain data; u is a live local.
        let u = unsafe {
            let mut u: ::libc::utsname = core::mem::zeroed();
            assert_eq!(uname(&mut u), 0);
            u
        };
        // SAFETY: each field is NUL-terminated by uname.
        let s = |f: &[c_char; 65]| unsafe { super::super::c_str(f.as_ptr()) }.to_vec();
        assert_eq!(s(&u.sysname), b"Linux");
        assert_eq!(s(&u.release), RELEASE.as_bytes());
        assert_eq!(s(&u.machine), b"x86_64");
        assert!(!s(&u.nodename).is_empty());
        let mut f = [1 as c_char; 65];
        put(&mut f, &[b'a'; 100]);
        assert_eq!(f[64], 0, "cut to fit");
    }

    #[test]
    fn the_host_name_fits_or_is_too_long() {
        let mut buf = [1 as c_char; 16];
        // SAFETY: buf is writable for its length (and for 3).
        unsafe {
            assert_eq!(gethostname(buf.as_mut_ptr(), buf.len()), 0);
            assert!(!super::super::c_str(buf.as_ptr()).is_empty());
            assert_eq!(gethostname(buf.as_mut_ptr(), 0), -1);
        }
    }
}
