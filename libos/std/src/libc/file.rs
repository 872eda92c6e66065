//! Paths and files, over libos's FAT file system. (To come: the disk's
//! files; until then every path is absent, `ENOENT`, as in an empty file
//! system.)

use super::{c_char, c_int, fail, fail_size, size_t, ssize_t};

/// `open64(path, flags, mode)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn open64(_path: *const c_char, _flags: c_int, _mode: c_int) -> c_int {
    fail(::libc::ENOENT)
}

/// `stat64(path, st)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string, `st` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn stat64(_path: *const c_char, _st: *mut ::libc::stat64) -> c_int {
    fail(::libc::ENOENT)
}

/// `lstat64(path, st)`: there are no links, so as `stat64`.
///
/// # Safety
///
/// `path` is a NUL-terminated string, `st` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn lstat64(path: *const c_char, st: *mut ::libc::stat64) -> c_int {
    // SAFETY: the same contract.
    unsafe { stat64(path, st) }
}

/// `getcwd(buf, size)`: the working directory, `/`.
///
/// # Safety
///
/// `buf` is writable for `size` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getcwd(buf: *mut c_char, size: size_t) -> *mut c_char {
    if buf.is_null() || size < 2 {
        super::set_errno(if buf.is_null() { ::libc::EINVAL } else { ::libc::ERANGE });
        return core::ptr::null_mut();
    }
    // SAFETY: the caller guarantees size >= 2 writable bytes.
    unsafe {
        *buf = b'/' as c_char;
        *buf.add(1) = 0;
    }
    buf
}

/// `readlink(path, buf, size)`: there are no symbolic links (`EINVAL` for
/// a file, `ENOENT` for nothing).
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn readlink(
    _path: *const c_char,
    _buf: *mut c_char,
    _size: size_t,
) -> ssize_t {
    fail_size(::libc::ENOENT)
}

/// `realpath(path, resolved)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn realpath(_path: *const c_char, _resolved: *mut c_char) -> *mut c_char {
    super::set_errno(::libc::ENOENT);
    core::ptr::null_mut()
}
