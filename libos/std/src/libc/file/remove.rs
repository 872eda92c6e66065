//! Removing names: `unlink`, `rmdir`, `unlinkat`, and C's `remove`, over libos's FAT
//! (`FileSystem::remove_file`, which frees the file's whole cluster chain,
//! and `remove_dir`, for empty directories).
//!
//! The checks are Linux's, in its order: the parent directory first
//! (`ENOENT`, `ENOTDIR`), then what the last component is (`.`, `..`, `/`
//! have errors of their own), then a read-only disk (`EROFS`, even for a
//! name that does not exist), then the name itself. A disk mounted under
//! the root (`/data`) is busy (`EBUSY`) for `rmdir`.
//!
//! A file still open when it is removed keeps its descriptors; its node is
//! forgotten (a new file may reuse its directory entry), and what the open
//! descriptors can still do with it is up to libos's FAT (see
//! `docs/std.md`, "Files").

use super::path::Last;
use super::{Target, mounts, node::errno, target_at};
use crate::libc::fd::{Res, ret_int};
use crate::libc::{c_char, c_int};

/// What `unlink` decides, before touching the disk.
fn unlink_check(t: &Target) -> Res<()> {
    if t.last != Last::Name {
        return Err(::libc::EISDIR);
    }
    if t.read_only {
        return Err(::libc::EROFS);
    }
    match t.is_dir() {
        None => Err(::libc::ENOENT),
        Some(true) => Err(::libc::EISDIR),
        Some(false) if t.slash() => Err(::libc::ENOTDIR),
        Some(false) => Ok(()),
    }
}

/// What `rmdir` decides, before touching the disk.
fn rmdir_check(t: &Target) -> Res<()> {
    match t.last {
        Last::DotDot => return Err(::libc::ENOTEMPTY),
        Last::Dot => return Err(::libc::EINVAL),
        Last::Root => return Err(::libc::EBUSY),
        Last::Name => {}
    }
    if t.read_only {
        return Err(::libc::EROFS);
    }
    match t.is_dir() {
        None => Err(::libc::ENOENT),
        Some(false) => Err(::libc::ENOTDIR),
        Some(true) if t.mount_point => Err(::libc::EBUSY),
        Some(true) => Ok(()),
    }
}

fn unlink_target(t: &Target) -> Res<c_int> {
    unlink_check(t)?;
    t.fs()?.remove_file(&t.place.inner).map_err(errno)?;
    if let (Some(d), Some(m)) = (t.place.disk, &t.found) {
        mounts::forget_node(d, m.id);
    }
    Ok(0)
}

fn rmdir_target(t: &Target) -> Res<c_int> {
    rmdir_check(t)?;
    t.fs()?.remove_dir(&t.place.inner).map_err(errno)?;
    Ok(0)
}

/// `unlink(path)`: removes a file (`EISDIR` for a directory).
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    // SAFETY: the same contract.
    unsafe { unlinkat(::libc::AT_FDCWD, path, 0) }
}

/// `rmdir(path)`: removes an empty directory (`ENOTEMPTY` otherwise).
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn rmdir(path: *const c_char) -> c_int {
    // SAFETY: the same contract.
    unsafe { unlinkat(::libc::AT_FDCWD, path, ::libc::AT_REMOVEDIR) }
}

/// C's `remove(path)`: as glibc's, `unlink`, and `rmdir` when that says
/// the name is a directory (`EISDIR`); the error is the last call's.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn remove(path: *const c_char) -> c_int {
    // SAFETY: the same contract.
    if unsafe { unlink(path) } == 0 {
        return 0;
    }
    if crate::libc::errno() != ::libc::EISDIR {
        return -1;
    }
    // SAFETY: the same contract.
    unsafe { rmdir(path) }
}

/// `unlinkat(dirfd, path, flags)`: `unlink`, or `rmdir` with
/// `AT_REMOVEDIR`, a relative path starting at the directory open as
/// `dirfd` (how std's `remove_dir_all` removes a tree). Other flags are
/// `EINVAL`.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    if flags & !::libc::AT_REMOVEDIR != 0 {
        return crate::libc::fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let t = unsafe { target_at(dirfd, path) };
    ret_int(t.and_then(|t| {
        if flags & ::libc::AT_REMOVEDIR != 0 { rmdir_target(&t) } else { unlink_target(&t) }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raw: &str, found: Option<bool>, read_only: bool) -> Target {
        super::super::test_target(raw, found, read_only)
    }

    #[test]
    fn unlink_fails_as_linux_does() {
        assert_eq!(unlink_check(&t("/a", Some(false), false)), Ok(()));
        assert_eq!(unlink_check(&t("/a", None, false)), Err(::libc::ENOENT));
        assert_eq!(unlink_check(&t("/d", Some(true), false)), Err(::libc::EISDIR));
        assert_eq!(unlink_check(&t("/a/", Some(false), false)), Err(::libc::ENOTDIR));
        assert_eq!(unlink_check(&t("/d/", Some(true), false)), Err(::libc::EISDIR));
        // `.`, `..` and `/` come before the read-only disk, which comes
        // before whether the name exists.
        assert_eq!(unlink_check(&t("/d/.", Some(true), true)), Err(::libc::EISDIR));
        assert_eq!(unlink_check(&t("/", Some(true), true)), Err(::libc::EISDIR));
        assert_eq!(unlink_check(&t("/nope", None, true)), Err(::libc::EROFS));
        assert_eq!(unlink_check(&t("/a", Some(false), true)), Err(::libc::EROFS));
    }

    #[test]
    fn rmdir_fails_as_linux_does() {
        assert_eq!(rmdir_check(&t("/d", Some(true), false)), Ok(()));
        assert_eq!(rmdir_check(&t("/d/", Some(true), false)), Ok(()));
        assert_eq!(rmdir_check(&t("/d", None, false)), Err(::libc::ENOENT));
        assert_eq!(rmdir_check(&t("/a", Some(false), false)), Err(::libc::ENOTDIR));
        assert_eq!(rmdir_check(&t("/d/.", Some(true), false)), Err(::libc::EINVAL));
        assert_eq!(rmdir_check(&t("/d/..", Some(true), false)), Err(::libc::ENOTEMPTY));
        assert_eq!(rmdir_check(&t("/", Some(true), false)), Err(::libc::EBUSY));
        assert_eq!(rmdir_check(&t("/d", Some(true), true)), Err(::libc::EROFS));
        assert_eq!(rmdir_check(&t("/nope", None, true)), Err(::libc::EROFS));
        let mut m = t("/data", Some(true), false);
        m.mount_point = true;
        assert_eq!(rmdir_check(&m), Err(::libc::EBUSY));
    }
}
