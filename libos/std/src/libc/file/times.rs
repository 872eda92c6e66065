//! File times: `utimensat`, `futimens`, over libos's FAT
//! (`FileSystem::set_modified`).
//!
//! FAT keeps one time that matters, the modification time, at 2 s
//! resolution (rounded down, as Linux's vfat does); the access date is not
//! set here. So only the second `timespec` (the modification time) is
//! used: a time, `UTIME_NOW`, or `UTIME_OMIT` (nothing is changed); both
//! `UTIME_OMIT` is a success that looks at nothing, as on Linux. A
//! nanosecond count out of range is `EINVAL`; a time before the epoch is
//! stored as the epoch (which FAT clamps to 1980, as Linux's vfat does).
//! The root directory of a disk has no directory entry to keep a time in:
//! setting it succeeds and changes nothing (Linux's vfat keeps it in
//! memory only).

use super::node::{Directory, FatFile, errno, now};
use super::{mounts, stat_path, target_at};
use crate::libc::fd::{self, Res, ret_int};
use crate::libc::{c_char, c_int, c_str};

/// Whether `nsec` is a valid `tv_nsec` for `utimensat`.
fn nsec_valid(nsec: i64) -> bool {
    (0..1_000_000_000).contains(&nsec) || nsec == ::libc::UTIME_NOW || nsec == ::libc::UTIME_OMIT
}

/// The modification time `times` asks for (`None`: leave it), given the
/// time `now`.
fn mtime_of(times: Option<[::libc::timespec; 2]>, now: u64) -> Res<Option<u64>> {
    let Some([atime, mtime]) = times else { return Ok(Some(now)) };
    if !nsec_valid(atime.tv_nsec) || !nsec_valid(mtime.tv_nsec) {
        return Err(::libc::EINVAL);
    }
    Ok(match mtime.tv_nsec {
        ::libc::UTIME_OMIT => None,
        ::libc::UTIME_NOW => Some(now),
        _ => Some(u64::try_from(mtime.tv_sec).unwrap_or(0)),
    })
}

/// Both times are `UTIME_OMIT`: Linux returns at once.
fn both_omitted(times: Option<[::libc::timespec; 2]>) -> bool {
    times.is_some_and(|[a, m]| a.tv_nsec == ::libc::UTIME_OMIT && m.tv_nsec == ::libc::UTIME_OMIT)
}

/// Sets the time of what the descriptor `fd` has open.
fn set_fd(fd: c_int, times: Option<[::libc::timespec; 2]>) -> Res<c_int> {
    let open = fd::get(fd)?;
    let Some(secs) = mtime_of(times, now())? else {
        return Ok(0);
    };
    let any = open.file.as_any();
    if let Some(f) = any.downcast_ref::<FatFile>() {
        f.node.set_modified(secs)?;
    } else if let Some(d) = any.downcast_ref::<Directory>() {
        set_place(&d.place(), secs)?;
    }
    // Anything else (the console, a pipe, a socket) has no time kept
    // anywhere: Linux changes its in-memory inode; nothing to do here.
    Ok(0)
}

/// Sets the time of the entry at `place`, through its open node if it
/// has one.
fn set_place(place: &mounts::Place, secs: u64) -> Res<()> {
    let Some(disk) = place.disk else { return Err(::libc::EROFS) };
    let fs = mounts::fs(disk)?;
    if fs.read_only() {
        return Err(::libc::EROFS);
    }
    if place.inner == "/" {
        return Ok(());
    }
    let m = fs.metadata(&place.inner).map_err(errno)?;
    if let Some(node) = mounts::node(disk, m.id) {
        return node.set_modified(secs);
    }
    fs.set_modified(&place.inner, secs).map_err(errno)
}

/// Reads the two `timespec`s at `times`, if it is not null.
///
/// # Safety
///
/// `times` is null or points to two readable `timespec`s.
unsafe fn read_times(times: *const ::libc::timespec) -> Option<[::libc::timespec; 2]> {
    if times.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees two readable timespecs.
    Some(unsafe { [times.read(), times.add(1).read()] })
}

/// `futimens(fd, times)`: what `File::set_modified` and `set_times` call.
///
/// # Safety
///
/// `times` is null or points to two `timespec`s.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn futimens(fd: c_int, times: *const ::libc::timespec) -> c_int {
    // SAFETY: the same contract.
    unsafe { utimensat(fd, core::ptr::null(), times, 0) }
}

/// `utimensat(dirfd, path, times, flags)`: a path relative to `dirfd`, or
/// the descriptor itself with a null path (glibc's `futimens`) or an empty
/// one and `AT_EMPTY_PATH`. `AT_SYMLINK_NOFOLLOW` changes nothing (there
/// are no links).
///
/// # Safety
///
/// `path` is null or a NUL-terminated string; `times` is null or points to
/// two `timespec`s.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn utimensat(
    dirfd: c_int,
    path: *const c_char,
    times: *const ::libc::timespec,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's contract.
    let times = unsafe { read_times(times) };
    if both_omitted(times) {
        return 0;
    }
    if let Err(e) = mtime_of(times, 0) {
        return crate::libc::fail(e);
    }
    if flags & !(::libc::AT_SYMLINK_NOFOLLOW | ::libc::AT_EMPTY_PATH) != 0 {
        return crate::libc::fail(::libc::EINVAL);
    }
    if path.is_null() {
        if dirfd == ::libc::AT_FDCWD {
            return crate::libc::fail(::libc::EFAULT);
        }
        return ret_int(set_fd(dirfd, times));
    }
    // SAFETY: not null; the caller guarantees a NUL-terminated string.
    if unsafe { c_str(path) }.is_empty() && flags & ::libc::AT_EMPTY_PATH != 0 {
        if dirfd == ::libc::AT_FDCWD {
            let cwd = super::path::normalise("/", mounts::cwd().as_bytes());
            return ret_int(cwd.and_then(|n| {
                stat_path(&n)?;
                let place = mounts::place(&n);
                match mtime_of(times, now())? {
                    Some(secs) => set_place(&place, secs).map(|()| 0),
                    None => Ok(0),
                }
            }));
        }
        return ret_int(set_fd(dirfd, times));
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let r = unsafe { target_at(dirfd, path) }.and_then(|t| {
        let m = t.found.as_ref().ok_or(::libc::ENOENT)?;
        if t.n.dir && !m.is_dir {
            return Err(::libc::ENOTDIR);
        }
        if t.read_only {
            return Err(::libc::EROFS);
        }
        match mtime_of(times, now())? {
            Some(secs) => set_place(&t.place, secs).map(|()| 0),
            None => Ok(0),
        }
    });
    ret_int(r)
}

/// `utimes(path, times)`: `utimensat` with the two `timeval`s (NULL: now).
/// A `tv_usec` outside 0..1,000,000 is `EINVAL`, as Linux.
///
/// # Safety
///
/// `path` is a NUL-terminated string; `times` is null or points to two
/// `timeval`s.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn utimes(path: *const c_char, times: *const ::libc::timeval) -> c_int {
    if path.is_null() {
        return crate::libc::fail(::libc::EFAULT);
    }
    let mut ts = [::libc::timespec { tv_sec: 0, tv_nsec: 0 }; 2];
    let spec = if times.is_null() {
        core::ptr::null()
    } else {
        for (i, t) in ts.iter_mut().enumerate() {
            // SAFETY: the caller guarantees two readable timevals.
            let tv = unsafe { *times.add(i) };
            if !(0..1_000_000).contains(&tv.tv_usec) {
                return crate::libc::fail(::libc::EINVAL);
            }
            *t = ::libc::timespec { tv_sec: tv.tv_sec, tv_nsec: tv.tv_usec * 1000 };
        }
        ts.as_ptr()
    };
    // SAFETY: path is a NUL-terminated string; spec null or two timespecs.
    unsafe { utimensat(::libc::AT_FDCWD, path, spec, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(sec: i64, nsec: i64) -> ::libc::timespec {
        ::libc::timespec { tv_sec: sec, tv_nsec: nsec }
    }

    #[test]
    fn the_modification_time_is_taken_as_linux_reads_it() {
        assert_eq!(mtime_of(None, 1000), Ok(Some(1000)));
        assert_eq!(mtime_of(Some([ts(1, 0), ts(5000, 999_999_999)]), 1000), Ok(Some(5000)));
        assert_eq!(mtime_of(Some([ts(1, 0), ts(0, ::libc::UTIME_NOW)]), 1000), Ok(Some(1000)));
        assert_eq!(mtime_of(Some([ts(1, 0), ts(7, ::libc::UTIME_OMIT)]), 1000), Ok(None));
        // Before the epoch: the epoch (FAT clamps to 1980).
        assert_eq!(mtime_of(Some([ts(1, 0), ts(-50, 0)]), 1000), Ok(Some(0)));
        assert_eq!(mtime_of(Some([ts(1, 0), ts(5, 1_000_000_000)]), 9), Err(::libc::EINVAL));
        assert_eq!(mtime_of(Some([ts(1, -1), ts(5, 0)]), 9), Err(::libc::EINVAL));
        let omit = ts(0, ::libc::UTIME_OMIT);
        assert!(both_omitted(Some([omit, omit])));
        assert!(!both_omitted(Some([omit, ts(0, 0)])));
        assert!(!both_omitted(None));
    }
}
