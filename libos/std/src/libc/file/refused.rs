//! What FAT cannot do: hard and symbolic links, permissions beyond the
//! read-only attribute, owners, special files. Each call checks its path
//! (`ENOENT` for nothing there, `EROFS` on a read-only disk) and then
//! fails with `EOPNOTSUPP`, which std reports as
//! `io::ErrorKind::Unsupported`: an error the program can handle, never an
//! abort.
//!
//! `chmod` that keeps a file as it is (writable stays writable) succeeds,
//! so that `fs::copy`, which copies the permissions, works.

use super::mounts;
use super::path::Normal;
use crate::libc::fd::{self, Res, ret_int};
use crate::libc::{c_char, c_int, size_t, ssize_t};

/// `EOPNOTSUPP` for what exists at `path` (relative to `dirfd`).
///
/// # Safety
///
/// `path` is a NUL-terminated string.
unsafe fn refuse_at(dirfd: c_int, path: *const c_char) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    ret_int(unsafe { super::normal_at(dirfd, path) }.and_then(|n| refuse(&n)))
}

fn refuse(n: &Normal) -> Res<c_int> {
    super::stat_path(n)?;
    let place = mounts::place(n);
    match place.disk {
        Some(d) if !mounts::fs(d)?.read_only() => Err(::libc::EOPNOTSUPP),
        _ => Err(::libc::EROFS),
    }
}

/// `linkat(olddirfd, old, newdirfd, new, flags)`: no hard links on FAT.
///
/// # Safety
///
/// `old` and `new` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn linkat(
    olddirfd: c_int,
    old: *const c_char,
    _newdirfd: c_int,
    _new: *const c_char,
    _flags: c_int,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { refuse_at(olddirfd, old) }
}

/// `symlink(target, path)`: no symbolic links on FAT.
///
/// # Safety
///
/// `target` and `path` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn symlink(_target: *const c_char, _path: *const c_char) -> c_int {
    crate::libc::fail(::libc::EOPNOTSUPP)
}

/// `mkfifo(path, mode)`: no special files on FAT.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn mkfifo(_path: *const c_char, _mode: ::libc::mode_t) -> c_int {
    crate::libc::fail(::libc::EOPNOTSUPP)
}

/// A mode change that leaves `st` as it is succeeds; any other is refused.
fn chmod_st(st: &::libc::stat64, mode: ::libc::mode_t) -> Res<c_int> {
    let writable = st.st_mode & 0o200 != 0;
    if writable == (mode & 0o200 != 0) { Ok(0) } else { Err(::libc::EOPNOTSUPP) }
}

/// `chmod(path, mode)`: only what keeps the file as it is.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn chmod(path: *const c_char, mode: ::libc::mode_t) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    let r = unsafe { super::normal_at(::libc::AT_FDCWD, path) }
        .and_then(|n| super::stat_path(&n))
        .and_then(|st| chmod_st(&st, mode));
    ret_int(r)
}

/// `fchmod(fd, mode)`: only what keeps the file as it is.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn fchmod(fd: c_int, mode: ::libc::mode_t) -> c_int {
    ret_int(fd::get(fd).and_then(|o| o.file.stat()).and_then(|st| chmod_st(&st, mode)))
}

/// `chown(path, uid, gid)`: FAT has no owners.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn chown(path: *const c_char, _uid: u32, _gid: u32) -> c_int {
    // SAFETY: the same contract.
    unsafe { refuse_at(::libc::AT_FDCWD, path) }
}

/// `lchown(path, uid, gid)`: FAT has no owners.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn lchown(path: *const c_char, _uid: u32, _gid: u32) -> c_int {
    // SAFETY: the same contract.
    unsafe { refuse_at(::libc::AT_FDCWD, path) }
}

/// `fchown(fd, uid, gid)`: FAT has no owners.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn fchown(fd: c_int, _uid: u32, _gid: u32) -> c_int {
    ret_int(fd::get(fd).and(Err(::libc::EOPNOTSUPP)))
}

/// `chroot(path)`: the guest is its own root already.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn chroot(_path: *const c_char) -> c_int {
    crate::libc::fail(::libc::EPERM)
}

/// `splice(...)`: `ENOSYS`, so that std's copy falls back to reading and
/// writing.
///
/// # Safety
///
/// No pointer is read.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn splice(
    _in: c_int,
    _off_in: *mut i64,
    _out: c_int,
    _off_out: *mut i64,
    _len: size_t,
    _flags: ::libc::c_uint,
) -> ssize_t {
    crate::libc::fail_size(::libc::ENOSYS)
}
