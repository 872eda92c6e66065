//! The host side of a disk: the few system calls `block` needs that std
//! does not wrap. `block` decides what to do with the answers.
//!
//! * clearing `O_NONBLOCK`, with which a disk file is opened (so that
//!   opening a FIFO given by mistake cannot hang the tender) once it is
//!   known to be a regular file;
//! * locking the disk (`flock`), one writer or any number of readers;
//! * reading and setting `RLIMIT_FSIZE`, the file size limit the tender
//!   sets just before sealing (defence in depth behind the filter's
//!   bounds, see `docs/seccomp.md`);
//! * asking whether an fd (the console) is a regular file, to which that
//!   limit would apply as well.
//!
//! # Safety
//!
//! The unsafe blocks pass the kernel integers and pointers to local,
//! initialised structures (`rlimit`, `stat`) that outlive the call; no
//! pointer is kept after a call returns. `fcntl`, `flock` and `fstat` on a
//! descriptor that is not open fail harmlessly with `EBADF`.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// Clears `O_NONBLOCK` on `fd`.
pub fn set_blocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL on an integer fd touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFL with integer flags touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes a shared (`shared`) or exclusive `flock` on `fd`, without waiting:
/// `EWOULDBLOCK` if another open file holds a lock that excludes it.
pub fn lock(fd: RawFd, shared: bool) -> io::Result<()> {
    let kind = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
    loop {
        // SAFETY: flock on an integer fd touches no memory.
        if unsafe { libc::flock(fd, kind | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The soft and hard `RLIMIT_FSIZE` of this process, in bytes (`u64::MAX`
/// for unlimited): the limit in force and the highest it may be set to.
pub fn file_size_limits() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets the soft and hard `RLIMIT_FSIZE`: from then on a write that starts
/// at or beyond `soft` in any file fails (`SIGXFSZ`, or `EFBIG` if that
/// signal is ignored), and one that would cross it is cut short. `soft`
/// must not exceed `hard`, nor `hard` the current hard limit.
pub fn set_file_size_limits(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: lim is a valid rlimit the kernel only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` is open on a regular file (including a memfd or a file on
/// tmpfs): the kind of file `RLIMIT_FSIZE` applies to.
pub fn is_regular_file(fd: RawFd) -> io::Result<bool> {
    // SAFETY: stat is plain data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn regular_files_are_told_from_others() {
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(is_regular_file(file.as_raw_fd()).unwrap());
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_regular_file(null.as_raw_fd()).unwrap());
        assert!(is_regular_file(1 << 30).is_err());
    }

    #[test]
    fn the_limits_are_readable() {
        let (soft, hard) = file_size_limits().unwrap();
        assert!(soft > 0 && soft <= hard);
    }
}
