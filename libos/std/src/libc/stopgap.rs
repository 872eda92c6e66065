//! Symbols that belong to other families, defined here until their own
//! files provide them (delete each when its family lands):
//!
//! * `chdir` (paths, `file`): std's `Command` references it (a child's
//!   working directory); the guest's only directory is `/`, so changing to
//!   `/` succeeds and anything else is `ENOENT`.

use super::{c_char, c_int, fail};

/// `chdir(path)`: `/` only (see the module's documentation).
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn chdir(path: *const c_char) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    if unsafe { super::c_str(path) } == b"/" { 0 } else { fail(::libc::ENOENT) }
}
