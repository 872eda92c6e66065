//! The environment (`environ`, `getenv`, `setenv`, `unsetenv`) and what a
//! program asks about its host (`sysconf`, `getauxval`, the C library's
//! version).
//!
//! `environ` starts as the tender's `--env` entries (the last definition of
//! a name wins, as libos's `env::var`) and changes with `setenv` as on
//! glibc; strings once handed out stay valid (glibc leaks them too).

use alloc::vec::Vec;

use super::start::Lock;
use super::{c_char, c_int, c_long, c_str, c_ulong, fail};

/// The C `environ`: a NULL-terminated array of `KEY=VALUE` strings. std
/// reads it directly for `env::vars()`.
#[cfg_attr(not(test), unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static mut environ: *mut *mut c_char = core::ptr::null_mut();

/// The entries behind `environ`, with their terminating NULL.
static ENTRIES: Lock<Vec<*mut c_char>> = Lock::new(Vec::new());

fn leak_entry(key: &[u8], value: &[u8]) -> Option<*mut c_char> {
    let mut s = Vec::new();
    s.try_reserve_exact(key.len() + value.len() + 2).ok()?;
    s.extend_from_slice(key);
    s.push(b'=');
    s.extend_from_slice(value);
    s.push(0);
    Some(s.leak().as_mut_ptr().cast())
}

/// The name of the entry at `e` (up to its `=`).
///
/// # Safety
///
/// `e` points to a live NUL-terminated `KEY=VALUE` string.
unsafe fn key_of<'a>(e: *mut c_char) -> &'a [u8] {
    // SAFETY: the caller guarantees a live NUL-terminated string.
    let s = unsafe { c_str(e) };
    s.split(|&b| b == b'=').next().unwrap_or(s)
}

fn publish(entries: &mut Vec<*mut c_char>) {
    // SAFETY: environ is only written here, under the ENTRIES lock, and
    // points at the vector's buffer, which lives until the next change.
    unsafe { environ = entries.as_mut_ptr() };
}

/// Builds `environ` from `vars`; returns it, for `main`'s third argument.
pub fn init_environ<'a>(vars: impl Iterator<Item = (&'a str, &'a str)>) -> *const *const c_char {
    ENTRIES.with(|entries| {
        for (k, v) in vars {
            set(entries, k.as_bytes(), v.as_bytes(), true);
        }
        if entries.last().is_some_and(|e| !e.is_null()) || entries.is_empty() {
            entries.push(core::ptr::null_mut());
        }
        publish(entries);
        entries.as_ptr().cast()
    })
}

/// Sets `key` in `entries` (which end with NULL, or are empty); false
/// without memory.
fn set(entries: &mut Vec<*mut c_char>, key: &[u8], value: &[u8], overwrite: bool) -> bool {
    if entries.last().is_some_and(|e| e.is_null()) {
        entries.pop();
    }
    // SAFETY: every non-null entry is a leaked, NUL-terminated string.
    let at = entries.iter().position(|&e| unsafe { key_of(e) } == key);
    let ok = match at {
        Some(_) if !overwrite => true,
        _ => match leak_entry(key, value) {
            Some(e) => match at {
                Some(i) => {
                    entries[i] = e;
                    true
                }
                None => {
                    entries.try_reserve(2).is_ok() && {
                        entries.push(e);
                        true
                    }
                }
            },
            None => false,
        },
    };
    entries.push(core::ptr::null_mut());
    ok
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && !name.contains(&b'=')
}

/// `secure_getenv(name)`: as [`getenv`]: a guest never runs with more
/// privileges than it was started with (no set-user-ID), glibc's reason
/// to return NULL.
///
/// # Safety
///
/// `name` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn secure_getenv(name: *const c_char) -> *mut c_char {
    // SAFETY: the same contract.
    unsafe { getenv(name) }
}

/// `getenv(name)`: the value of `name`, or NULL.
///
/// # Safety
///
/// `name` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getenv(name: *const c_char) -> *mut c_char {
    // SAFETY: the caller guarantees a NUL-terminated name.
    let name = unsafe { c_str(name) };
    ENTRIES.with(|entries| {
        for &e in entries.iter().filter(|e| !e.is_null()) {
            // SAFETY: entries are leaked NUL-terminated strings.
            if unsafe { key_of(e) } == name {
                // SAFETY: the value starts after the name and its '='.
                return unsafe { e.add(name.len() + 1) };
            }
        }
        core::ptr::null_mut()
    })
}

/// `setenv(name, value, overwrite)`.
///
/// # Safety
///
/// `name` and `value` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn setenv(
    name: *const c_char,
    value: *const c_char,
    overwrite: c_int,
) -> c_int {
    if name.is_null() || value.is_null() {
        return fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees NUL-terminated strings.
    let (name, value) = unsafe { (c_str(name), c_str(value)) };
    if !valid_name(name) {
        return fail(::libc::EINVAL);
    }
    ENTRIES.with(|entries| {
        let ok = set(entries, name, value, overwrite != 0);
        publish(entries);
        if ok { 0 } else { fail(::libc::ENOMEM) }
    })
}

/// `unsetenv(name)`.
///
/// # Safety
///
/// `name` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn unsetenv(name: *const c_char) -> c_int {
    if name.is_null() {
        return fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let name = unsafe { c_str(name) };
    if !valid_name(name) {
        return fail(::libc::EINVAL);
    }
    ENTRIES.with(|entries| {
        // SAFETY: entries are null or leaked NUL-terminated strings.
        entries.retain(|&e| e.is_null() || unsafe { key_of(e) } != name);
        publish(entries);
        0
    })
}

/// `sysconf(name)`: the page size, one processor, the limits std asks for.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn sysconf(name: c_int) -> c_long {
    match name {
        ::libc::_SC_PAGESIZE => 4096,
        ::libc::_SC_NPROCESSORS_ONLN | ::libc::_SC_NPROCESSORS_CONF => 1,
        ::libc::_SC_CLK_TCK => 100,
        ::libc::_SC_OPEN_MAX => super::rlimit::open_max() as c_long,
        ::libc::_SC_GETPW_R_SIZE_MAX | ::libc::_SC_GETGR_R_SIZE_MAX => 1024,
        ::libc::_SC_NGROUPS_MAX => 65536,
        ::libc::_SC_HOST_NAME_MAX => 64,
        ::libc::_SC_PHYS_PAGES => libos::process::memory().size.div_ceil(4096).max(1) as c_long,
        ::libc::_SC_THREAD_STACK_MIN => 16384,
        _ => fail(::libc::EINVAL) as c_long,
    }
}

/// `getpagesize()`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getpagesize() -> c_int {
    4096
}

/// `getauxval(type)`: the values a static program may ask for; 0 and
/// `ENOENT` for the rest, as glibc does for an absent entry.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getauxval(kind: c_ulong) -> c_ulong {
    match kind {
        ::libc::AT_PAGESZ => 4096,
        ::libc::AT_HWCAP2 => libos::rt_private::boot_info().map_or(0, |i| i.hwcap2),
        ::libc::AT_SECURE => 0,
        ::libc::AT_MINSIGSTKSZ => 2048,
        _ => {
            super::set_errno(::libc::ENOENT);
            0
        }
    }
}

/// `gnu_get_libc_version()`: std checks it for glibc-specific paths; this
/// C library has glibc 2.36's ABI.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn gnu_get_libc_version() -> *const c_char {
    c"2.36".as_ptr()
}

/// `__res_init()`: re-reads the resolver's configuration; there is none.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn __res_init() -> c_int {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setenv_getenv_unsetenv_as_glibc() {
        // SAFETY: the arguments are NUL-terminated strings.
        unsafe {
            init_environ([("A", "1"), ("B", "2"), ("A", "3")].into_iter());
            assert_eq!(c_str(getenv(c"A".as_ptr())), b"3");
            assert_eq!(setenv(c"A".as_ptr(), c"4".as_ptr(), 0), 0);
            assert_eq!(c_str(getenv(c"A".as_ptr())), b"3");
            assert_eq!(setenv(c"C".as_ptr(), c"x=y".as_ptr(), 1), 0);
            assert_eq!(c_str(getenv(c"C".as_ptr())), b"x=y");
            assert_eq!(setenv(c"C=".as_ptr(), c"v".as_ptr(), 1), -1);
            assert_eq!(super::super::errno(), ::libc::EINVAL);
            assert_eq!(unsetenv(c"A".as_ptr()), 0);
            assert!(getenv(c"A".as_ptr()).is_null());
            let mut seen = alloc::vec::Vec::new();
            let mut p = environ;
            while !(*p).is_null() {
                seen.push(c_str(*p).to_vec());
                p = p.add(1);
            }
            assert_eq!(seen, [b"B=2".to_vec(), b"C=x=y".to_vec()]);
        }
    }
}
