//! Open files and directories of a FAT disk, as [`File`] objects of the
//! descriptor table.
//!
//! A [`Node`] is one file open in libos's FAT, shared by every description
//! open on the file (so that they share its length and time); a
//! [`FatFile`] is one such description's view of it (its access mode; the
//! offset lives in the description). Reads and writes move the shared
//! handle to the description's offset first, so descriptions do not
//! disturb each other. Writing past the end fills the gap with zeros (FAT
//! has no holes).
//! A [`Directory`] is an open directory: what `opendir`, `fstat` and
//! `openat` need.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use libos::fs::{FileSystem, FsError, Metadata, SeekFrom};

use super::mounts;
use crate::libc::c_int;
use crate::libc::fd::{Events, File, Open, Res};

/// The `errno` for a file-system error.
pub fn errno(e: FsError) -> c_int {
    match e {
        FsError::NotFound => ::libc::ENOENT,
        FsError::NotADirectory => ::libc::ENOTDIR,
        FsError::IsADirectory => ::libc::EISDIR,
        FsError::AlreadyExists => ::libc::EEXIST,
        FsError::InvalidName => ::libc::EINVAL,
        FsError::NoSpace => ::libc::ENOSPC,
        FsError::NotEmpty => ::libc::ENOTEMPTY,
        FsError::Busy => ::libc::EBUSY,
        FsError::ReadOnly | FsError::Device(libos::block::BlockError::ReadOnly) => ::libc::EROFS,
        FsError::TooLarge => ::libc::EFBIG,
        FsError::OutOfMemory => ::libc::ENOMEM,
        FsError::Unsupported => ::libc::EOPNOTSUPP,
        FsError::NotFat | FsError::Corrupt | FsError::Device(_) => ::libc::EIO,
    }
}

/// The seconds since the epoch now.
pub fn now() -> u64 {
    libos::time::SystemTime::now()
        .duration_since(libos::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `stat` of an entry of disk `disk`.
pub fn stat_of(disk: Option<usize>, m: &Metadata) -> ::libc::stat64 {
    // SAFETY: stat64 is plain data; all zeroes is a valid value.
    let mut st: ::libc::stat64 = unsafe { core::mem::zeroed() };
    st.st_dev = mounts::dev(disk);
    st.st_ino = m.id;
    st.st_nlink = 1;
    // FAT keeps only a read-only attribute: it clears the write bits.
    let (kind, perm) = if m.is_dir { (::libc::S_IFDIR, 0o755) } else { (::libc::S_IFREG, 0o644) };
    st.st_mode = kind | if m.read_only { perm & !0o222 } else { perm };
    st.st_size = m.len as i64;
    st.st_blksize = 4096;
    st.st_blocks = m.len.div_ceil(512) as i64;
    let t = m.modified as i64;
    (st.st_mtime, st.st_atime, st.st_ctime) = (t, t, t);
    st
}

/// A file open in libos's FAT, shared by every description open on it, so
/// that they see one length and one modification time.
pub struct Node {
    fs: &'static FileSystem,
    disk: usize,
    /// Its path on its disk (kept up to date by `rename`), for the calls
    /// that take a path (`futimens` is `set_modified`).
    path: RefCell<String>,
    file: RefCell<libos::fs::File<'static>>,
    /// Opened for writing (the disk and the file allow it).
    writable: bool,
    meta: Metadata,
    /// When it was last written (or had its time set) by this program:
    /// what `stat` reports until the entry on the disk learns it.
    modified: Cell<Option<u64>>,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node").field("disk", &self.disk).field("path", &self.path).finish()
    }
}

impl Node {
    /// The node open on the file at `path` of disk `disk` (metadata `meta`),
    /// opening it if no description has it open.
    pub fn open(
        fs: &'static FileSystem,
        disk: usize,
        path: &str,
        meta: Metadata,
    ) -> Res<alloc::rc::Rc<Self>> {
        if let Some(n) = mounts::node(disk, meta.id) {
            return Ok(n);
        }
        let writable = !fs.read_only() && !meta.read_only;
        let file = if writable { fs.open_rw(path) } else { fs.open(path) }.map_err(errno)?;
        Ok(Self::adopt(fs, disk, path, meta, file, writable))
    }

    /// A node for `file`, just opened.
    pub fn adopt(
        fs: &'static FileSystem,
        disk: usize,
        path: &str,
        meta: Metadata,
        file: libos::fs::File<'static>,
        writable: bool,
    ) -> alloc::rc::Rc<Self> {
        let node = alloc::rc::Rc::new(Self {
            fs,
            disk,
            path: RefCell::new(String::from(path)),
            file: RefCell::new(file),
            writable,
            meta,
            modified: Cell::new(None),
        });
        mounts::add_node(disk, node.meta.id, &node);
        node
    }

    fn with<R>(&self, f: impl FnOnce(&mut libos::fs::File<'static>) -> Res<R>) -> Res<R> {
        let mut file = self.file.try_borrow_mut().map_err(|_| ::libc::EIO)?;
        f(&mut file)
    }

    /// The length now.
    pub fn size(&self) -> u64 {
        self.with(|f| Ok(f.len())).unwrap_or(0)
    }

    /// The disk it is on.
    pub fn disk(&self) -> usize {
        self.disk
    }

    /// Its path on its disk now.
    pub fn path(&self) -> String {
        self.path.borrow().clone()
    }

    /// Follows a rename: its path is now `path`.
    pub fn moved(&self, path: String) {
        *self.path.borrow_mut() = path;
    }

    /// `stat`, with the length and time of what this program wrote.
    pub fn stat(&self) -> ::libc::stat64 {
        let mut m = self.meta.clone();
        m.len = self.size();
        if let Some(t) = self.modified.get() {
            m.modified = t;
        }
        stat_of(Some(self.disk), &m)
    }

    /// Reads at `offset`; 0 at or past the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Res<usize> {
        self.with(|f| {
            if offset >= f.len() || buf.is_empty() {
                return Ok(0);
            }
            f.seek(SeekFrom::Start(offset)).map_err(errno)?;
            let mut done = 0;
            while done < buf.len() {
                match f.read(&mut buf[done..]).map_err(errno)? {
                    0 => break,
                    n => done += n,
                }
            }
            Ok(done)
        })
        .inspect(|&done| super::map::overlay(self, &mut buf[..done], offset))
    }

    /// The error for a change to a node that is not writable.
    fn refused(&self, otherwise: c_int) -> c_int {
        if self.fs.read_only() { ::libc::EROFS } else { otherwise }
    }

    /// Writes all of `buf` at `offset`, zero-filling from the end up to it;
    /// the shared mappings of the file see it (file/map.rs).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Res<usize> {
        let old = self.size();
        let n = self.write_back(buf, offset)?;
        if offset > old {
            super::map::resized(self, old, offset);
        }
        super::map::mirror(self, buf, offset);
        Ok(n)
    }

    /// Writes all of `buf` at `offset`, zero-filling from the end up to it,
    /// leaving the mappings alone: a mapping's bytes written back.
    pub fn write_back(&self, buf: &[u8], offset: u64) -> Res<usize> {
        if !self.writable {
            return Err(self.refused(::libc::EBADF));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if offset.saturating_add(buf.len() as u64) > u64::from(u32::MAX) {
            return Err(::libc::EFBIG);
        }
        self.modified.set(Some(fat_time(now())));
        self.with(|f| {
            if offset > f.len() {
                f.set_len(offset).map_err(errno)?;
            }
            f.seek(SeekFrom::Start(offset)).map_err(errno)?;
            f.write_all(buf).map_err(errno)?;
            Ok(buf.len())
        })
    }

    /// Changes the length: longer (zero-filled) or shorter (the clusters
    /// past the new end are freed).
    pub fn truncate(&self, to: u64) -> Res<()> {
        if !self.writable {
            return Err(self.refused(::libc::EINVAL));
        }
        if to > u64::from(u32::MAX) {
            return Err(::libc::EFBIG);
        }
        if to == self.size() {
            return Ok(());
        }
        self.modified.set(Some(fat_time(now())));
        let old = self.size();
        self.with(|f| f.set_len(to).map_err(errno))?;
        super::map::resized(self, old, to);
        Ok(())
    }

    /// Sets the modification time to `secs` (`futimens`): what this
    /// program wrote is written back first, so that closing the file later
    /// cannot bring the time of that write back.
    pub fn set_modified(&self, secs: u64) -> Res<()> {
        if self.fs.read_only() {
            return Err(::libc::EROFS);
        }
        if self.writable {
            self.with(|f| f.flush().map_err(errno))?;
        }
        self.fs.set_modified(&self.path(), secs).map_err(errno)?;
        self.modified.set(Some(fat_time(secs)));
        Ok(())
    }

    /// Writes the data, the directory entry and the allocation table back
    /// and flushes the disk (`fsync`, `fdatasync`).
    pub fn sync(&self) -> Res<()> {
        // What its shared mappings hold goes to the file first, as Linux's
        // fsync writes a file's dirty mapped pages.
        super::map::sync(self)?;
        if !self.writable {
            // Nothing of this program's is pending on the file; the disk
            // may hold other writes, which the flush makes durable.
            return self.fs.sync().map_err(errno);
        }
        self.with(|f| f.sync().map_err(errno))
    }

    /// Writes the directory entry back.
    pub fn flush(&self) -> Res<()> {
        if !self.writable {
            return Ok(());
        }
        self.with(|f| f.flush().map_err(errno))
    }

    /// Whether a call on it is under way (its file or path is borrowed).
    pub fn in_use(&self) -> bool {
        self.file.try_borrow_mut().is_err() || self.path.try_borrow_mut().is_err()
    }
}

/// A time in seconds as FAT keeps it: 2 s resolution, rounded down.
pub fn fat_time(secs: u64) -> u64 {
    secs & !1
}

/// A description's view of a [`Node`]: its access mode.
#[derive(Debug)]
pub struct FatFile {
    /// The file.
    pub node: alloc::rc::Rc<Node>,
    /// Opened for reading.
    pub read: bool,
    /// Opened for writing.
    pub write: bool,
}

impl File for FatFile {
    fn read(&self, open: &Open, buf: &mut [u8]) -> Res<usize> {
        if !self.read {
            return Err(::libc::EBADF);
        }
        let n = self.node.read_at(buf, open.offset.get())?;
        open.offset.set(open.offset.get() + n as u64);
        Ok(n)
    }

    fn write(&self, open: &Open, buf: &[u8]) -> Res<usize> {
        if !self.write {
            return Err(::libc::EBADF);
        }
        let at = if open.flags.get() & ::libc::O_APPEND != 0 {
            self.node.size()
        } else {
            open.offset.get()
        };
        let n = self.node.write_at(buf, at)?;
        open.offset.set(at + n as u64);
        Ok(n)
    }

    fn pread(&self, buf: &mut [u8], offset: u64) -> Res<usize> {
        if !self.read {
            return Err(::libc::EBADF);
        }
        self.node.read_at(buf, offset)
    }

    fn pwrite(&self, buf: &[u8], offset: u64) -> Res<usize> {
        if !self.write {
            return Err(::libc::EBADF);
        }
        self.node.write_at(buf, offset)
    }

    fn seek(&self, open: &Open, offset: i64, whence: c_int) -> Res<u64> {
        seek_to(open.offset.get(), self.node.size(), offset, whence)
    }

    fn stat(&self) -> Res<::libc::stat64> {
        Ok(self.node.stat())
    }

    fn sync(&self) -> Res<()> {
        self.node.sync()
    }

    fn truncate(&self, len: u64) -> Res<()> {
        if !self.write {
            return Err(::libc::EINVAL);
        }
        self.node.truncate(len)
    }

    fn poll(&self) -> Events {
        ::libc::POLLIN | ::libc::POLLOUT
    }

    fn close(&self) -> Res<()> {
        if self.write { self.node.flush() } else { Ok(()) }
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// `lseek`'s new offset: from the start, the current offset `at` or the
/// end `len`; `SEEK_DATA` and `SEEK_HOLE` see one run of data (no holes).
pub fn seek_to(at: u64, len: u64, offset: i64, whence: c_int) -> Res<u64> {
    let base = match whence {
        ::libc::SEEK_SET => 0,
        ::libc::SEEK_CUR => at,
        ::libc::SEEK_END => len,
        ::libc::SEEK_DATA | ::libc::SEEK_HOLE => {
            let o = u64::try_from(offset).map_err(|_| ::libc::ENXIO)?;
            if o >= len {
                return Err(::libc::ENXIO);
            }
            return Ok(if whence == ::libc::SEEK_DATA { o } else { len });
        }
        _ => return Err(::libc::EINVAL),
    };
    let to = i128::from(base) + i128::from(offset);
    if to < 0 {
        return Err(::libc::EINVAL);
    }
    i64::try_from(to).map(|t| t as u64).map_err(|_| ::libc::EOVERFLOW)
}

/// An open directory: its place, for `fstat`, `openat` and `fdopendir`.
/// Like Linux's, it stays on its directory when the directory (or one
/// above it) is renamed: [`mounts::renamed`] moves its place.
#[derive(Debug)]
pub struct Directory {
    place: RefCell<mounts::Place>,
}

impl Directory {
    /// The directory at `place`, known to the table so that renames move it.
    pub fn open(place: mounts::Place) -> Rc<Self> {
        let d = Rc::new(Self { place: RefCell::new(place) });
        mounts::add_dir(&d);
        d
    }

    /// Where it is now.
    pub fn place(&self) -> mounts::Place {
        self.place.borrow().clone()
    }

    /// Follows a rename of `from` to `to` (places on its disk) if it lies
    /// at or under `from`.
    pub fn follow(&self, from: &mounts::Place, to: &mounts::Place) {
        let mut p = self.place.borrow_mut();
        if p.disk != from.disk {
            return;
        }
        if let Some(rest) = mounts::under(&p.inner, &from.inner) {
            let rest = String::from(rest);
            p.inner = format!("{}{rest}", to.inner);
            p.full = format!("{}{rest}", to.full);
        }
    }

    /// Its metadata.
    pub fn metadata(&self) -> Res<Metadata> {
        let place = self.place();
        match place.disk {
            None => Ok(Metadata { is_dir: true, len: 0, modified: 0, read_only: false, id: 1 }),
            Some(d) => mounts::fs(d)?.metadata(&place.inner).map_err(errno),
        }
    }

    /// Its entries (`.` and `..` first), with their `d_type` and number.
    pub fn entries(&self) -> Res<Vec<(String, u8, u64)>> {
        let place = self.place();
        let mut out: Vec<(String, u8, u64)> =
            [".", ".."].iter().map(|n| (String::from(*n), ::libc::DT_DIR, 1)).collect();
        if let Some(d) = place.disk {
            for e in mounts::fs(d)?.read_dir(&place.inner).map_err(errno)? {
                let t = if e.metadata.is_dir { ::libc::DT_DIR } else { ::libc::DT_REG };
                out.push((e.name, t, e.metadata.id));
            }
        }
        if place.is_root {
            for (i, name) in mounts::mount_points().into_iter().enumerate() {
                out.push((name, ::libc::DT_DIR, u64::MAX - i as u64));
            }
        }
        Ok(out)
    }
}

impl File for Directory {
    fn read(&self, _open: &Open, _buf: &mut [u8]) -> Res<usize> {
        Err(::libc::EISDIR)
    }

    fn seek(&self, _open: &Open, offset: i64, whence: c_int) -> Res<u64> {
        seek_to(0, 0, offset, whence).or(Ok(0))
    }

    fn stat(&self) -> Res<::libc::stat64> {
        Ok(stat_of(self.place.borrow().disk, &self.metadata()?))
    }

    fn sync(&self) -> Res<()> {
        let disk = self.place.borrow().disk;
        match disk {
            Some(d) => mounts::fs(d)?.sync().map_err(errno),
            None => Ok(()),
        }
    }

    fn poll(&self) -> Events {
        ::libc::POLLIN
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lseek_follows_linux() {
        assert_eq!(seek_to(5, 10, 3, ::libc::SEEK_SET), Ok(3));
        assert_eq!(seek_to(5, 10, 3, ::libc::SEEK_CUR), Ok(8));
        assert_eq!(seek_to(5, 10, -4, ::libc::SEEK_END), Ok(6));
        assert_eq!(seek_to(5, 10, 100, ::libc::SEEK_END), Ok(110), "past the end is allowed");
        assert_eq!(seek_to(5, 10, -6, ::libc::SEEK_CUR), Err(::libc::EINVAL));
        assert_eq!(seek_to(5, 10, i64::MAX, ::libc::SEEK_END), Err(::libc::EOVERFLOW));
        assert_eq!(seek_to(5, 10, 0, 42), Err(::libc::EINVAL));
        assert_eq!(seek_to(0, 10, 4, ::libc::SEEK_DATA), Ok(4));
        assert_eq!(seek_to(0, 10, 4, ::libc::SEEK_HOLE), Ok(10));
        assert_eq!(seek_to(0, 10, 10, ::libc::SEEK_DATA), Err(::libc::ENXIO));
    }

    #[test]
    fn errors_map_to_what_std_understands() {
        assert_eq!(errno(FsError::NotFound), ::libc::ENOENT);
        assert_eq!(errno(FsError::Corrupt), ::libc::EIO);
        assert_eq!(errno(FsError::Device(libos::block::BlockError::ReadOnly)), ::libc::EROFS);
        assert_eq!(errno(FsError::Unsupported), ::libc::EOPNOTSUPP);
    }
}
