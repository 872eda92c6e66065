//! Calls about the machine that fit no other family: the host name.
//!
//! A guest has no UTS namespace of its own to ask: its host name is the
//! `HOSTNAME` variable of its environment when set (as container runtimes
//! set it), else `localhost`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
