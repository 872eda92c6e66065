//! Record locks: `fcntl`'s `F_GETLK`, `F_SETLK`, `F_SETLKW` (glibc's
//! `fcntl64` names are the same numbers on x86_64), and `lockf`.
//!
//! **Decision: a guest is one process, so its POSIX record locks are all
//! granted.** On Linux a process's own record locks never conflict with
//! each other (a new lock replaces, splits or merges what the process held
//! on the range), and only another process's lock can refuse one. A
//! guest is one process, and the tender holds its disks against every
//! other writer (docs/storage.md), so no other process can hold a lock on
//! its files: `F_SETLK` and `F_SETLKW` succeed once the request is valid,
//! and `F_GETLK` answers `F_UNLCK` (nothing would block it), as Linux
//! answers a process alone with its files. Nothing needs recording: no
//! answer would depend on it. This is what SQLite's unix VFS asks (its
//! own table of locks per file takes care of the threads of the process,
//! as on Linux, where record locks cannot).
//!
//! The request is still checked as Linux checks it, in its order: the
//! pointer (`EFAULT`), the type (`EINVAL`), `l_whence` and the range
//! (`EINVAL` for a start before the file's beginning, `EOVERFLOW` past
//! the largest offset), the access mode (`EBADF`: a read lock needs a
//! descriptor open for reading, a write lock one open for writing).
//!
//! Open-file-description locks (`F_OFD_*`) do conflict within a process
//! on Linux; they are not provided: `EINVAL`, as on a kernel before 3.15
//! (docs/std.md, "Files").

use super::super::{c_int, fail};
use crate::libc::fd::{self, Open, Res};

/// The range `[start, end]` a lock request covers (inclusive; `end`
/// `i64::MAX` for "to the end of the file, whatever it becomes"), from
/// the offset `l_whence` names (`base`), as Linux's
/// `flock64_to_posix_lock` computes it.
pub fn range(base: i64, l_start: i64, l_len: i64) -> Res<(i64, i64)> {
    let start = base.checked_add(l_start).ok_or(::libc::EOVERFLOW)?;
    if start < 0 {
        return Err(::libc::EINVAL);
    }
    match l_len {
        0 => Ok((start, i64::MAX)),
        len if len > 0 => Ok((start, start.checked_add(len - 1).ok_or(::libc::EOVERFLOW)?)),
        len => {
            // A negative length covers the bytes before the start.
            let from = start + len;
            if from < 0 {
                return Err(::libc::EINVAL);
            }
            Ok((from, start - 1))
        }
    }
}

/// The offset `l_whence` names for the description `open`.
fn base(open: &Open, whence: i16) -> Res<i64> {
    match c_int::from(whence) {
        ::libc::SEEK_SET => Ok(0),
        ::libc::SEEK_CUR => Ok(open.offset.get() as i64),
        ::libc::SEEK_END => Ok(open.file.stat()?.st_size),
        _ => Err(::libc::EINVAL),
    }
}

/// What a valid request of type `l_type` does (`F_GETLK` when `get`) on
/// a description with access mode `mode` (`O_RDONLY`, ...): `Ok` with the
/// answer (`F_UNLCK` for a query), or the error Linux gives.
pub fn decide(get: bool, l_type: i16, mode: c_int, range: Res<(i64, i64)>) -> Res<i16> {
    let t = c_int::from(l_type);
    let valid = if get {
        t == ::libc::F_RDLCK || t == ::libc::F_WRLCK
    } else {
        t == ::libc::F_RDLCK || t == ::libc::F_WRLCK || t == ::libc::F_UNLCK
    };
    if !valid {
        return Err(::libc::EINVAL);
    }
    range?;
    if get {
        // Only another process's lock could conflict: none exists.
        return Ok(::libc::F_UNLCK as i16);
    }
    let mode = mode & ::libc::O_ACCMODE;
    if t == ::libc::F_RDLCK && mode == ::libc::O_WRONLY
        || t == ::libc::F_WRLCK && mode == ::libc::O_RDONLY
    {
        return Err(::libc::EBADF);
    }
    Ok(l_type)
}

/// `fcntl(fd, F_GETLK | F_SETLK | F_SETLKW, lock)`, for the descriptor
/// layer's `fcntl`.
///
/// # Safety
///
/// `lock` is null or points to a readable and writable `struct flock`.
pub unsafe fn fcntl_lock(open: &Open, cmd: c_int, lock: *mut ::libc::flock64) -> c_int {
    if lock.is_null() {
        return fail(::libc::EFAULT);
    }
    // SAFETY: the caller guarantees a valid struct flock.
    let l = unsafe { &mut *lock };
    let get = cmd == ::libc::F_GETLK;
    let r = base(open, l.l_whence).and_then(|b| range(b, l.l_start, l.l_len));
    match decide(get, l.l_type, open.flags.get(), r) {
        Ok(answer) => {
            if get {
                // Linux writes back only the type when nothing conflicts.
                l.l_type = answer;
            }
            0
        }
        Err(e) => fail(e),
    }
}

/// `lockf(fd, cmd, len)`: glibc's wrapper over `fcntl` with a range from
/// the current offset: `F_LOCK`, `F_TLOCK` (write locks), `F_ULOCK`, and
/// `F_TEST` (0: nothing of another process's is in the way). `EBADF` for a
/// lock on a descriptor not open for writing, as glibc's.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn lockf(fd: c_int, cmd: c_int, len: i64) -> c_int {
    let open = match fd::get(fd) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let r = range(open.offset.get() as i64, 0, len);
    let r = match cmd {
        ::libc::F_TEST => decide(true, ::libc::F_WRLCK as i16, open.flags.get(), r).map(|_| ()),
        ::libc::F_LOCK | ::libc::F_TLOCK => {
            decide(false, ::libc::F_WRLCK as i16, open.flags.get(), r).map(|_| ())
        }
        ::libc::F_ULOCK => decide(false, ::libc::F_UNLCK as i16, open.flags.get(), r).map(|_| ()),
        _ => Err(::libc::EINVAL),
    };
    fd::ret_int(r.map(|()| 0))
}

/// glibc's `lockf64`, the same call.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn lockf64(fd: c_int, cmd: c_int, len: i64) -> c_int {
    lockf(fd, cmd, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_linuxs() {
        assert_eq!(range(0, 0, 0), Ok((0, i64::MAX)));
        assert_eq!(range(0, 10, 5), Ok((10, 14)));
        assert_eq!(range(100, -10, 1), Ok((90, 90)));
        // A negative length: the bytes before the start.
        assert_eq!(range(0, 10, -4), Ok((6, 9)));
        assert_eq!(range(0, 10, -10), Ok((0, 9)));
        assert_eq!(range(0, 10, -11), Err(::libc::EINVAL));
        assert_eq!(range(0, -1, 1), Err(::libc::EINVAL));
        assert_eq!(range(5, -6, 0), Err(::libc::EINVAL));
        assert_eq!(range(i64::MAX, 1, 1), Err(::libc::EOVERFLOW));
        assert_eq!(range(0, i64::MAX, 2), Err(::libc::EOVERFLOW));
        assert_eq!(range(0, i64::MAX, 1), Ok((i64::MAX, i64::MAX)));
    }

    #[test]
    fn every_valid_lock_is_granted_and_nothing_blocks_a_query() {
        let ok = Ok((0, 9));
        let (rd, wr, un) = (::libc::F_RDLCK as i16, ::libc::F_WRLCK as i16, ::libc::F_UNLCK as i16);
        assert_eq!(decide(false, rd, ::libc::O_RDWR, ok), Ok(rd));
        assert_eq!(decide(false, wr, ::libc::O_RDWR, ok), Ok(wr));
        assert_eq!(decide(false, un, ::libc::O_RDONLY, ok), Ok(un));
        assert_eq!(decide(false, rd, ::libc::O_RDONLY, ok), Ok(rd));
        assert_eq!(decide(false, wr, ::libc::O_WRONLY | ::libc::O_APPEND, ok), Ok(wr));
        assert_eq!(decide(true, wr, ::libc::O_RDONLY, ok), Ok(un));
        assert_eq!(decide(true, rd, ::libc::O_WRONLY, ok), Ok(un));
    }

    #[test]
    fn invalid_requests_fail_as_on_linux_in_its_order() {
        let (rd, wr, un) = (::libc::F_RDLCK as i16, ::libc::F_WRLCK as i16, ::libc::F_UNLCK as i16);
        // The access mode must allow the lock's type.
        assert_eq!(decide(false, wr, ::libc::O_RDONLY, Ok((0, 0))), Err(::libc::EBADF));
        assert_eq!(decide(false, rd, ::libc::O_WRONLY, Ok((0, 0))), Err(::libc::EBADF));
        // A bad range before the access mode; a bad type before both.
        assert_eq!(decide(false, wr, ::libc::O_RDONLY, Err(::libc::EINVAL)), Err(::libc::EINVAL));
        assert_eq!(decide(false, 7, ::libc::O_RDONLY, Err(::libc::EOVERFLOW)), Err(::libc::EINVAL));
        assert_eq!(
            decide(false, rd, ::libc::O_RDWR, Err(::libc::EOVERFLOW)),
            Err(::libc::EOVERFLOW)
        );
        // F_GETLK does not take F_UNLCK.
        assert_eq!(decide(true, un, ::libc::O_RDWR, Ok((0, 0))), Err(::libc::EINVAL));
        assert_eq!(decide(true, -1, ::libc::O_RDWR, Ok((0, 0))), Err(::libc::EINVAL));
    }
}
