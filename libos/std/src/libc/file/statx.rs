//! `statx`: `stat`'s fields, and the birth time FAT keeps for every entry
//! (its creation time), which `stat` has no field for. std calls it for
//! every `metadata` (a weak symbol: defined here, std uses it instead of
//! falling back to `stat64`), and `Metadata::created` reads the birth
//! time from it, as on Linux's vfat.
//!
//! What it reports: `STATX_BASIC_STATS`, the same values as `fstatat64`;
//! `STATX_BTIME` as well for an entry of a FAT disk that has a creation
//! time (not the root directory, which has no entry, nor `/proc` or
//! descriptors that are not files). The mask the caller asks for only
//! says what it needs, as on Linux: what is known is reported either way.

use super::node::{Directory, FatFile};
use super::{mounts, normal_at, stat_path};
use crate::libc::fd::{self, Open, Res};
use crate::libc::{c_char, c_int, c_uint, fail};

/// The flags `statx` takes: Linux's.
const FLAGS: c_int = ::libc::AT_SYMLINK_NOFOLLOW
    | ::libc::AT_NO_AUTOMOUNT
    | ::libc::AT_EMPTY_PATH
    | ::libc::AT_STATX_SYNC_TYPE;

/// `statx(dirfd, path, flags, mask, buf)`: the file `fstatat64(dirfd,
/// path, flags)` names (or the descriptor `dirfd`, with `AT_EMPTY_PATH`
/// and an empty path), in a `struct statx`. `EINVAL` for an unknown flag,
/// both `AT_STATX_FORCE_SYNC` and `AT_STATX_DONT_SYNC`, or a mask with
/// `STATX__RESERVED`; `EFAULT` for a null path or buffer, as Linux (std
/// probes for `statx` with both null and takes `EFAULT` as "present").
///
/// # Safety
///
/// `path` is null or a NUL-terminated string; `buf` is null or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut ::libc::statx,
) -> c_int {
    if flags & !FLAGS != 0
        || flags & ::libc::AT_STATX_SYNC_TYPE == ::libc::AT_STATX_SYNC_TYPE
        || mask & ::libc::STATX__RESERVED as c_uint != 0
    {
        return fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees path is null or a NUL-terminated
    // string (the null case is EFAULT, from normal_at or here).
    let r = unsafe { lookup(dirfd, path, flags) };
    let (st, birth) = match r {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    if buf.is_null() {
        return fail(::libc::EFAULT);
    }
    // SAFETY: the caller guarantees buf is writable (checked for null).
    unsafe { buf.write(from_stat(&st, birth)) };
    0
}

/// The `stat` and the birth time (seconds) of what `statx` names.
///
/// # Safety
///
/// `path` is null or a NUL-terminated string.
unsafe fn lookup(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
) -> Res<(::libc::stat64, Option<u64>)> {
    // SAFETY: the caller guarantees a NUL-terminated string (checked for null).
    if flags & ::libc::AT_EMPTY_PATH != 0 && !path.is_null() && unsafe { *path } == 0 {
        if dirfd != ::libc::AT_FDCWD {
            let open = fd::get(dirfd)?;
            return Ok((open.file.stat()?, birth_of_open(&open)));
        }
        let n = super::path::normalise("/", mounts::cwd().as_bytes())?;
        return Ok((stat_path(&n)?, birth_at(&mounts::place(&n))));
    }
    // SAFETY: the caller guarantees a NUL-terminated string (null is EFAULT).
    let n = unsafe { normal_at(dirfd, path) }?;
    let st = stat_path(&n)?;
    let birth = if super::proc::stat(&n).is_some() { None } else { birth_at(&mounts::place(&n)) };
    Ok((st, birth))
}

/// The creation time of the entry at `place`, if it is on a disk and FAT
/// keeps one for it (0 is "none": the root directory, or an entry written
/// by a tool that left the field empty).
fn birth_at(place: &mounts::Place) -> Option<u64> {
    let disk = place.disk?;
    let times = mounts::fs(disk).ok()?.times(&place.inner).ok()?;
    (times.created != 0).then_some(times.created)
}

/// The creation time of an open file or directory of a FAT disk.
fn birth_of_open(open: &Open) -> Option<u64> {
    let any = open.file.as_any();
    if let Some(f) = any.downcast_ref::<FatFile>() {
        let disk = f.node.disk();
        let times = mounts::fs(disk).ok()?.times(&f.node.path()).ok()?;
        return (times.created != 0).then_some(times.created);
    }
    birth_at(&any.downcast_ref::<Directory>()?.place())
}

/// A `statx` timestamp.
fn stamp(sec: i64, nsec: i64) -> ::libc::statx_timestamp {
    // SAFETY: statx_timestamp is plain data; all zeroes is a valid value
    // (and its padding must be zero).
    let mut t: ::libc::statx_timestamp = unsafe { core::mem::zeroed() };
    t.tv_sec = sec;
    t.tv_nsec = nsec.clamp(0, 999_999_999) as u32;
    t
}

/// `st` and `birth` as a `struct statx`.
fn from_stat(st: &::libc::stat64, birth: Option<u64>) -> ::libc::statx {
    // SAFETY: statx is plain data; all zeroes is a valid value (and its
    // reserved fields must be zero).
    let mut x: ::libc::statx = unsafe { core::mem::zeroed() };
    x.stx_mask = ::libc::STATX_BASIC_STATS;
    x.stx_blksize = st.st_blksize as u32;
    x.stx_nlink = st.st_nlink as u32;
    x.stx_uid = st.st_uid;
    x.stx_gid = st.st_gid;
    x.stx_mode = st.st_mode as u16;
    x.stx_ino = st.st_ino;
    x.stx_size = st.st_size as u64;
    x.stx_blocks = st.st_blocks as u64;
    x.stx_atime = stamp(st.st_atime, st.st_atime_nsec);
    x.stx_mtime = stamp(st.st_mtime, st.st_mtime_nsec);
    x.stx_ctime = stamp(st.st_ctime, st.st_ctime_nsec);
    if let Some(b) = birth {
        x.stx_mask |= ::libc::STATX_BTIME;
        x.stx_btime = stamp(b as i64, 0);
    }
    x.stx_dev_major = ::libc::major(st.st_dev);
    x.stx_dev_minor = ::libc::minor(st.st_dev);
    x.stx_rdev_major = ::libc::major(st.st_rdev);
    x.stx_rdev_minor = ::libc::minor(st.st_rdev);
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ::libc::stat64 {
        // SAFETY: stat64 is plain data; all zeroes is a valid value.
        let mut st: ::libc::stat64 = unsafe { core::mem::zeroed() };
        st.st_dev = ::libc::makedev(8, 17);
        st.st_ino = 42;
        st.st_nlink = 1;
        st.st_mode = ::libc::S_IFREG | 0o644;
        st.st_size = 5000;
        st.st_blksize = 4096;
        st.st_blocks = 10;
        (st.st_mtime, st.st_atime, st.st_ctime) = (1_600_000_000, 1_599_955_200, 1_600_000_000);
        st
    }

    #[test]
    fn carries_stat_and_the_birth_time_when_known() {
        let st = sample();
        let x = from_stat(&st, Some(1_500_000_001));
        assert_eq!(x.stx_mask, ::libc::STATX_BASIC_STATS | ::libc::STATX_BTIME);
        assert_eq!((x.stx_ino, x.stx_size, x.stx_blocks, x.stx_blksize), (42, 5000, 10, 4096));
        assert_eq!(u32::from(x.stx_mode), ::libc::S_IFREG | 0o644);
        assert_eq!((x.stx_dev_major, x.stx_dev_minor), (8, 17));
        assert_eq!(x.stx_mtime.tv_sec, 1_600_000_000);
        assert_eq!(x.stx_atime.tv_sec, 1_599_955_200);
        assert_eq!(x.stx_btime.tv_sec, 1_500_000_001);
        let none = from_stat(&st, None);
        assert_eq!(none.stx_mask, ::libc::STATX_BASIC_STATS, "no birth time: no STATX_BTIME");
        assert_eq!(none.stx_btime.tv_sec, 0);
    }

    #[test]
    fn rejects_what_linux_rejects() {
        let mut x = core::mem::MaybeUninit::<::libc::statx>::uninit();
        let p = c"/x".as_ptr();
        let cases = [
            (0x8000_0000_u32 as c_int, 0_u32, ::libc::EINVAL),
            (::libc::AT_STATX_SYNC_TYPE, 0, ::libc::EINVAL),
            (0, ::libc::STATX__RESERVED as c_uint, ::libc::EINVAL),
        ];
        for (flags, mask, want) in cases {
            crate::libc::set_errno(0);
            // SAFETY: p is a NUL-terminated string; x is writable.
            let r = unsafe { statx(::libc::AT_FDCWD, p, flags, mask, x.as_mut_ptr()) };
            assert_eq!((r, crate::libc::errno()), (-1, want), "flags {flags:#x} mask {mask:#x}");
        }
        // std's probe: both null is EFAULT.
        // SAFETY: null pointers are what is being tested.
        let r = unsafe {
            statx(
                0,
                core::ptr::null(),
                0,
                ::libc::STATX_BASIC_STATS | ::libc::STATX_BTIME,
                core::ptr::null_mut(),
            )
        };
        assert_eq!((r, crate::libc::errno()), (-1, ::libc::EFAULT));
    }
}
