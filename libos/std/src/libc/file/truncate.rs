//! Setting a file's length by path: `truncate`, `truncate64`, and
//! `ftruncate` (glibc's name without `64`, which C code calls;
//! `ftruncate64` is in the descriptor layer). Longer fills with zeros,
//! shorter frees the clusters past the new end (libos's `File::set_len`).
//!
//! Linux's checks, in its order: a negative length (`EINVAL`); the path
//! (`ENOENT`, `ENOTDIR`); a directory (`EISDIR`); a read-only disk
//! (`EROFS`); the read-only attribute (`EACCES`); a length FAT cannot hold
//! (`EFBIG`, past 4 GiB - 1). A file open in this program is changed
//! through its node, so that its descriptors see the new length.

use super::node::Node;
use super::{mounts, target_at};
use crate::libc::c_char;
use crate::libc::c_int;
use crate::libc::fd::{self, Res, ret_int};

/// What `truncate` decides before touching the file.
fn truncate_check(
    len: i64,
    is_dir: Option<bool>,
    read_only_disk: bool,
    read_only: bool,
) -> Res<()> {
    if len < 0 {
        return Err(::libc::EINVAL);
    }
    match is_dir {
        None => Err(::libc::ENOENT),
        Some(true) => Err(::libc::EISDIR),
        Some(false) if read_only_disk => Err(::libc::EROFS),
        Some(false) if read_only => Err(::libc::EACCES),
        Some(false) if len as u64 > u64::from(u32::MAX) => Err(::libc::EFBIG),
        Some(false) => Ok(()),
    }
}

/// `truncate64(path, len)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn truncate64(path: *const c_char, len: i64) -> c_int {
    if len < 0 {
        return crate::libc::fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let r = unsafe { target_at(::libc::AT_FDCWD, path) }.and_then(|t| {
        if t.slash() && t.is_dir() == Some(false) {
            return Err(::libc::ENOTDIR);
        }
        let ro = t.found.as_ref().is_some_and(|m| m.read_only);
        truncate_check(len, t.is_dir(), t.read_only, ro)?;
        let (Some(disk), Some(m)) = (t.place.disk, t.found.clone()) else {
            return Err(::libc::ENOENT);
        };
        let node = Node::open(mounts::fs(disk)?, disk, &t.place.inner, m)?;
        node.truncate(len as u64)?;
        node.flush()?;
        Ok(0)
    });
    ret_int(r)
}

/// `truncate(path, len)`: as `truncate64` (`off_t` is 64 bits on x86_64).
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn truncate(path: *const c_char, len: i64) -> c_int {
    // SAFETY: the same contract.
    unsafe { truncate64(path, len) }
}

/// `ftruncate(fd, len)`: as `ftruncate64`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn ftruncate(fd: c_int, len: i64) -> c_int {
    fd::ftruncate64(fd, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_fails_as_linux_does_in_its_order() {
        assert_eq!(truncate_check(5, Some(false), false, false), Ok(()));
        assert_eq!(truncate_check(-1, None, true, true), Err(::libc::EINVAL));
        assert_eq!(truncate_check(5, None, true, false), Err(::libc::ENOENT));
        assert_eq!(truncate_check(5, Some(true), true, false), Err(::libc::EISDIR));
        assert_eq!(truncate_check(5, Some(false), true, true), Err(::libc::EROFS));
        assert_eq!(truncate_check(5, Some(false), false, true), Err(::libc::EACCES));
        assert_eq!(truncate_check(1 << 32, Some(false), false, false), Err(::libc::EFBIG));
        assert_eq!(truncate_check((1 << 32) - 1, Some(false), false, false), Ok(()));
    }
}
