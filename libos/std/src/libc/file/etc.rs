//! `/etc/NAME` for the files the host gave (`tender --etc NAME=PATH`,
//! which nabla-runc passes for the `/etc/hosts`, `/etc/resolv.conf` and
//! `/etc/hostname` that container engines bind into every container).
//!
//! Each is a read-only regular file (mode 0444, its length as the host's
//! file had it when the tender started; opening it for writing is
//! `EROFS`, as a read-only bind mount). Everything else under `/etc`,
//! `/etc` itself included, is the disks' as without: a file given hides a
//! file of that name on the root disk.

use alloc::rc::Rc;

use super::path::{Flat, Normal};
use crate::libc::c_int;
use crate::libc::fd::{self, Events, File, Open, Res};

/// The bytes of the file given as `/etc/name`.
fn given(name: &str) -> Option<&'static [u8]> {
    #[cfg(not(test))]
    return libos::env::etc_file(name);
    #[cfg(test)]
    return TEST_FILES.iter().find(|(n, _)| *n == name).map(|(_, d)| *d);
}

#[cfg(test)]
static TEST_FILES: &[(&str, &[u8])] = &[("hosts", b"10.1.2.3 db db.svc\n"), ("empty", b"")];

/// The file given at the path `n`, if it is `/etc/NAME` and NAME was given.
fn file(n: &Normal) -> Option<&'static [u8]> {
    match n.parts.as_slice() {
        [etc, name] if etc == "etc" => given(name),
        _ => None,
    }
}

/// Whether the path `f` is a file given for `/etc`, decided without
/// allocating (what a global allocator may ask while it initialises).
pub fn exists_flat(f: &Flat) -> bool {
    let Some(name) = f.text().strip_prefix(b"/etc/") else { return false };
    core::str::from_utf8(name).ok().and_then(given).is_some()
}

fn stat_of(data: &[u8]) -> ::libc::stat64 {
    // SAFETY: stat64 is plain data; all zeroes is a valid value.
    let mut st: ::libc::stat64 = unsafe { core::mem::zeroed() };
    st.st_dev = 0x17;
    st.st_ino = 2 + data.as_ptr() as u64 % 4096;
    st.st_mode = ::libc::S_IFREG | 0o444;
    st.st_nlink = 1;
    st.st_blksize = 4096;
    st.st_size = data.len() as i64;
    st.st_blocks = data.len().div_ceil(512) as i64;
    st
}

/// `stat` of a given `/etc` file; `None` for any other path.
pub fn stat(n: &Normal) -> Option<Res<::libc::stat64>> {
    let data = file(n)?;
    Some(if n.dir { Err(::libc::ENOTDIR) } else { Ok(stat_of(data)) })
}

/// `open` of a given `/etc` file; `None` for any other path.
pub fn open(n: &Normal, flags: c_int) -> Option<Res<c_int>> {
    let data = file(n)?;
    let creat_excl = ::libc::O_CREAT | ::libc::O_EXCL;
    let r = if flags & creat_excl == creat_excl {
        Err(::libc::EEXIST)
    } else if n.dir || flags & ::libc::O_DIRECTORY != 0 {
        Err(::libc::ENOTDIR)
    } else if flags & ::libc::O_ACCMODE != ::libc::O_RDONLY || flags & ::libc::O_TRUNC != 0 {
        Err(::libc::EROFS)
    } else {
        let status = flags & (::libc::O_ACCMODE | ::libc::O_NONBLOCK);
        fd::install(
            fd::new_open(Rc::new(EtcFile { data }), status),
            flags & ::libc::O_CLOEXEC != 0,
            0,
        )
    };
    Some(r)
}

/// An open given `/etc` file.
struct EtcFile {
    data: &'static [u8],
}

impl File for EtcFile {
    fn read(&self, open: &Open, buf: &mut [u8]) -> Res<usize> {
        let n = super::proc::bytes_at(self.data, buf, open.offset.get());
        open.offset.set(open.offset.get() + n as u64);
        Ok(n)
    }

    fn write(&self, _open: &Open, _buf: &[u8]) -> Res<usize> {
        Err(::libc::EBADF)
    }

    fn pread(&self, buf: &mut [u8], offset: u64) -> Res<usize> {
        Ok(super::proc::bytes_at(self.data, buf, offset))
    }

    fn seek(&self, open: &Open, offset: i64, whence: c_int) -> Res<u64> {
        super::proc::seek_in(self.data.len(), open, offset, whence)
    }

    fn stat(&self) -> Res<::libc::stat64> {
        Ok(stat_of(self.data))
    }

    fn poll(&self) -> Events {
        ::libc::POLLIN | ::libc::POLLOUT
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::path::{normalise, normalise_flat};
    use super::*;

    fn normal(p: &str) -> Normal {
        normalise("/", p.as_bytes()).unwrap()
    }

    #[test]
    fn only_the_given_files_are_here() {
        let st = stat(&normal("/etc/hosts")).unwrap().unwrap();
        assert_eq!((st.st_mode, st.st_size), (::libc::S_IFREG | 0o444, 19));
        assert_eq!(stat(&normal("/etc/../etc/./empty")).unwrap().unwrap().st_size, 0);
        assert_eq!(stat(&normal("/etc/hosts/")), Some(Err(::libc::ENOTDIR)));
        assert_eq!(stat(&normal("/etc/passwd")), None);
        assert_eq!(stat(&normal("/etc")), None);
        assert_eq!(stat(&normal("/hosts")), None);
        assert_eq!(stat(&normal("/x/etc/hosts")), None);
        let e = |p: &str| exists_flat(&normalise_flat("/", p.as_bytes()).unwrap());
        assert!(e("/etc/hosts") && e("/etc//hosts") && e("/tmp/../etc/empty"));
        assert!(!e("/etc/passwd") && !e("/etc") && !e("/etc/hosts/x"));
    }

    #[test]
    fn they_are_read_only() {
        let n = normal("/etc/hosts");
        assert_eq!(open(&n, ::libc::O_WRONLY), Some(Err(::libc::EROFS)));
        assert_eq!(open(&n, ::libc::O_RDWR), Some(Err(::libc::EROFS)));
        assert_eq!(open(&n, ::libc::O_RDONLY | ::libc::O_TRUNC), Some(Err(::libc::EROFS)));
        let excl = ::libc::O_CREAT | ::libc::O_EXCL | ::libc::O_WRONLY;
        assert_eq!(open(&n, excl), Some(Err(::libc::EEXIST)));
        assert_eq!(open(&n, ::libc::O_DIRECTORY), Some(Err(::libc::ENOTDIR)));
        assert_eq!(open(&normal("/etc/passwd"), ::libc::O_RDONLY), None);
    }

    #[test]
    fn reads_walk_the_bytes() {
        let f = EtcFile { data: b"10.1.2.3 db\n" };
        let mut buf = [0u8; 8];
        assert_eq!(f.pread(&mut buf, 0), Ok(8));
        assert_eq!(&buf, b"10.1.2.3");
        assert_eq!(f.pread(&mut buf, 8), Ok(4));
        assert_eq!(f.pread(&mut buf, u64::MAX), Ok(0));
    }
}
