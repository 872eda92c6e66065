//! Paths and files, over libos's FAT file system: `open`, `stat`,
//! `mkdir`, directory streams, the working directory here; and, one file
//! per family:
//!
//! * [`path`]: normalising paths, and which disk a path is on;
//! * [`mounts`]: the disks, mounted at first use, and the working
//!   directory;
//! * [`node`]: open files and directories as descriptor objects;
//! * [`dir`]: directory streams (`opendir`, `readdir64`);
//! * [`remove`]: `unlink`, `unlinkat`, `rmdir`;
//! * [`rename`]: `rename`, `renameat`, `renameat2`;
//! * [`truncate`]: `truncate`, `ftruncate` (`ftruncate64`, `fsync` and
//!   `fdatasync` are in the descriptor layer, `fd`);
//! * [`times`]: `utimensat`, `futimens`;
//! * [`sendfile`]: `sendfile64`, a copy from a file to any descriptor;
//! * [`statfs`]: `statvfs`, `fstatvfs`, `statfs`, `fstatfs`;
//! * [`statx`]: `statx`, `stat` with FAT's creation time as the birth time;
//! * [`proc`]: `/proc`, synthesized from the guest's own figures;
//! * [`etc`]: the `/etc` files the host gave (`tender --etc`);
//! * [`refused`]: what FAT cannot do: links, permissions beyond the
//!   read-only attribute, owners, special files.
//!
//! What a program sees is described in `docs/std.md`, "Files".

pub mod dir;
pub mod etc;
pub mod lock;
pub mod map;
pub mod mounts;
pub mod node;
pub mod path;
pub mod proc;
pub mod refused;
pub mod remove;
pub mod rename;
pub mod sendfile;
pub mod statfs;
pub mod statx;
pub mod times;
pub mod truncate;

use alloc::rc::Rc;

use libos::fs::{FsError, Metadata};

use super::fd::{self, Res, ret_int};
use super::{c_char, c_int, c_str, fail, fail_size, size_t, ssize_t};
use mounts::Place;
use node::{Directory, FatFile, Node, errno, stat_of};
use path::Normal;

/// Where relative paths start: the working directory or a directory
/// descriptor (`openat`, `fstatat`).
fn base(dirfd: c_int) -> Res<alloc::string::String> {
    if dirfd == ::libc::AT_FDCWD {
        return Ok(mounts::cwd());
    }
    let open = fd::get(dirfd)?;
    let dir = open.file.as_any().downcast_ref::<Directory>().ok_or(::libc::ENOTDIR)?;
    Ok(dir.place().full)
}

/// Normalises the C string `path`, relative to `dirfd`.
///
/// # Safety
///
/// `path` is null or a NUL-terminated string.
unsafe fn normal_at(dirfd: c_int, path: *const c_char) -> Res<Normal> {
    if path.is_null() {
        return Err(::libc::EFAULT);
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let bytes = unsafe { c_str(path) };
    // An absolute path needs no base (and ignores a bad dirfd, as Linux).
    let cwd =
        if bytes.first() == Some(&b'/') { alloc::string::String::new() } else { base(dirfd)? };
    path::normalise(&cwd, bytes)
}

/// What a path names, when that is decided without allocating: the
/// calls that a global allocator makes while it initialises (`readlink`
/// of `/etc/malloc.conf`, `open` of `/proc/sys/vm/overcommit_memory`)
/// must not re-enter it.
#[derive(Debug, PartialEq, Eq)]
enum Quick {
    /// Nothing is there (`ENOENT`): the path is on no disk (the program
    /// has none, or the allocator is initialising and the disks are not
    /// mounted yet).
    Missing,
    /// `/proc/self/exe` (or `/proc/1/exe`), the image file.
    Exe,
    /// Not decided here: the allocating path layer decides.
    Slow,
}

/// Decides what it can about `path` (relative to `dirfd`) without
/// allocating; see [`Quick`].
///
/// # Safety
///
/// `path` is null or a NUL-terminated string.
unsafe fn quick(dirfd: c_int, path: *const c_char) -> Res<Quick> {
    if path.is_null() {
        return Err(::libc::EFAULT);
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let bytes = unsafe { c_str(path) };
    if bytes.first() != Some(&b'/') && dirfd != ::libc::AT_FDCWD {
        return Ok(Quick::Slow);
    }
    let flat = match mounts::peek_cwd(|cwd| path::normalise_flat(cwd, bytes)) {
        Ok(f) => f,
        // The working directory and a relative path may together be
        // longer than the path layer's limit, not Linux's.
        Err(::libc::ENAMETOOLONG) => return Ok(Quick::Slow),
        Err(e) => return Err(e),
    };
    let exe = matches!(flat.text(), b"/proc/self/exe" | b"/proc/1/exe") && !flat.dir;
    Ok(match flat.first() {
        None => Quick::Slow,
        Some(b"proc") if exe && !proc::image().is_empty() => Quick::Exe,
        Some(b"proc") if proc::exists_flat(&flat) == Some(false) => Quick::Missing,
        Some(b"proc") => Quick::Slow,
        Some(b"etc") if etc::exists_flat(&flat) => Quick::Slow,
        Some(_) if libos::block::count() == 0 || super::start::allocator_starting() => {
            Quick::Missing
        }
        Some(_) => Quick::Slow,
    })
}

/// What a path names, for the calls that change a directory (`unlink`,
/// `rmdir`, `rename`, `truncate`, `utimensat`), resolved as Linux walks
/// it: the parent must exist and be a directory (`ENOENT`, `ENOTDIR`)
/// before anything about the last component is decided.
#[derive(Debug)]
struct Target {
    /// The normalised path.
    n: Normal,
    /// What its last component was before normalising.
    last: path::Last,
    /// Where it is.
    place: Place,
    /// The disk its parent directory is on (for a mount point such as
    /// `/data`, the root disk): two paths are on one file system when
    /// these agree (`EXDEV` otherwise).
    parent_disk: Option<usize>,
    /// What is there, if anything.
    found: Option<Metadata>,
    /// The path is a disk mounted under the root (`/data`).
    mount_point: bool,
    /// The disk is read-only (or there is none).
    read_only: bool,
}

impl Target {
    /// The path ended in `/`: it must name a directory.
    fn slash(&self) -> bool {
        self.n.dir && self.last == path::Last::Name
    }

    /// Whether it names a directory.
    fn is_dir(&self) -> Option<bool> {
        self.found.as_ref().map(|m| m.is_dir)
    }

    /// Its disk's file system (`EROFS` where there is no disk).
    fn fs(&self) -> Res<&'static libos::fs::FileSystem> {
        mounts::fs(self.place.disk.ok_or(::libc::EROFS)?)
    }
}

/// Resolves `path` (relative to `dirfd`) into a [`Target`].
///
/// # Safety
///
/// `path` is null or a NUL-terminated string.
unsafe fn target_at(dirfd: c_int, path: *const c_char) -> Res<Target> {
    // SAFETY: the caller's contract (normal_at checks for null).
    let n = unsafe { normal_at(dirfd, path) }?;
    // SAFETY: not null (normal_at checked), NUL-terminated.
    let last = path::last_of(unsafe { c_str(path) });
    let parent = match path::parent(&n) {
        Some(p) => {
            if stat_path(&p)?.st_mode & ::libc::S_IFMT != ::libc::S_IFDIR {
                return Err(::libc::ENOTDIR);
            }
            Some(p)
        }
        None => None,
    };
    let place = mounts::place(&n);
    let parent_disk = parent.map_or(place.disk, |p| mounts::place(&p).disk);
    let found = match lookup(&place) {
        Ok(m) => Some(m),
        Err(::libc::ENOENT) => None,
        Err(e) => return Err(e),
    };
    let mount_point = !place.is_root && place.inner == "/";
    let read_only = match place.disk {
        Some(d) => mounts::fs(d)?.read_only(),
        None => true,
    };
    Ok(Target { n, last, place, parent_disk, found, mount_point, read_only })
}

/// The metadata of what `n` names (the disk's entry, or an open node's
/// newer length and time), as `stat`.
fn stat_path(n: &Normal) -> Res<::libc::stat64> {
    if let Some(r) = proc::stat(n).or_else(|| etc::stat(n)) {
        return r;
    }
    let place = mounts::place(n);
    let m = lookup(&place)?;
    if n.dir && !m.is_dir {
        return Err(::libc::ENOTDIR);
    }
    if let Some(d) = place.disk
        && let Some(node) = mounts::node(d, m.id)
    {
        return Ok(node.stat());
    }
    Ok(stat_of(place.disk, &m))
}

/// The metadata of what lies at `place`.
fn lookup(place: &Place) -> Res<Metadata> {
    match place.disk {
        None if place.is_root => {
            Ok(Metadata { is_dir: true, len: 0, modified: 0, read_only: false, id: 1 })
        }
        None => Err(::libc::ENOENT),
        Some(d) => mounts::fs(d)?.metadata(&place.inner).map_err(errno),
    }
}

/// What `open` does, decided by [`plan`].
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Open the directory (for reading).
    Dir,
    /// Open the existing file, truncating it first if asked.
    File { read: bool, write: bool, truncate: bool },
    /// Create the file, which does not exist.
    Create { read: bool, write: bool },
}

/// What the path names, as far as `open`'s checks go.
#[derive(Debug, Clone, Copy)]
struct Found {
    is_dir: bool,
    read_only: bool,
}

/// Decides what `open(flags)` does with what the path names (`found`),
/// whether the path ends in `/` (`must_be_dir`), and whether the disk is
/// read-only: Linux's checks, in its order.
fn plan(flags: c_int, found: Option<Found>, must_be_dir: bool, disk_ro: bool) -> Res<Plan> {
    let access = flags & ::libc::O_ACCMODE;
    if access == ::libc::O_ACCMODE {
        return Err(::libc::EINVAL);
    }
    let (read, write) = (access != ::libc::O_WRONLY, access != ::libc::O_RDONLY);
    let (creat, excl) = (flags & ::libc::O_CREAT != 0, flags & ::libc::O_EXCL != 0);
    let directory = flags & ::libc::O_DIRECTORY != 0;
    match found {
        Some(_) if creat && excl => Err(::libc::EEXIST),
        Some(f) if f.is_dir => {
            if write || creat {
                Err(::libc::EISDIR)
            } else {
                Ok(Plan::Dir)
            }
        }
        Some(_) if must_be_dir || directory => Err(::libc::ENOTDIR),
        Some(_) if write && disk_ro => Err(::libc::EROFS),
        Some(f) if write && f.read_only => Err(::libc::EACCES),
        Some(_) => Ok(Plan::File { read, write, truncate: write && flags & ::libc::O_TRUNC != 0 }),
        None if !creat => Err(::libc::ENOENT),
        None if must_be_dir => Err(::libc::EISDIR),
        None if directory => Err(::libc::EINVAL),
        None if disk_ro => Err(::libc::EROFS),
        None => Ok(Plan::Create { read, write }),
    }
}

/// `open` after the path is normalised: [`plan`], then the file, created
/// or truncated as planned.
fn open_normal(n: &Normal, flags: c_int) -> Res<c_int> {
    if let Some(r) = proc::open(n, flags).or_else(|| etc::open(n, flags)) {
        return r;
    }
    let place = mounts::place(n);
    let found = match lookup(&place) {
        Ok(m) => Some(m),
        Err(::libc::ENOENT) => None,
        Err(e) => return Err(e),
    };
    let disk_ro = match place.disk {
        Some(d) => mounts::fs(d)?.read_only(),
        None => true,
    };
    let f = found.as_ref().map(|m| Found { is_dir: m.is_dir, read_only: m.read_only });
    let file: Rc<dyn fd::File> = match (plan(flags, f, n.dir, disk_ro)?, found) {
        (Plan::Dir, _) => Directory::open(place),
        (Plan::File { read, write, truncate }, Some(m)) => {
            let disk = place.disk.ok_or(::libc::ENOENT)?;
            let node = Node::open(mounts::fs(disk)?, disk, &place.inner, m)?;
            if truncate {
                node.truncate(0)?;
            }
            Rc::new(FatFile { node, read, write })
        }
        (Plan::Create { read, write }, _) => {
            let disk = place.disk.ok_or(::libc::EROFS)?;
            let fs = mounts::fs(disk)?;
            let file = fs.create_new(&place.inner).map_err(errno)?;
            // Its entry is on the disk already: the handle knows it (no
            // second lookup of the path).
            let m = file.metadata().map_err(errno)?;
            let node = Node::adopt(fs, disk, &place.inner, m, file, true);
            Rc::new(FatFile { node, read, write })
        }
        (Plan::File { .. }, None) => return Err(::libc::ENOENT),
    };
    let status = flags & (::libc::O_ACCMODE | ::libc::O_APPEND | ::libc::O_NONBLOCK);
    fd::install(fd::new_open(file, status), flags & ::libc::O_CLOEXEC != 0, 0)
}

/// `open64(path, flags, mode)`: `O_RDONLY`/`O_WRONLY`/`O_RDWR`, `O_CREAT`,
/// `O_EXCL`, `O_TRUNC`, `O_APPEND`, `O_DIRECTORY`, `O_CLOEXEC` (and
/// `O_NONBLOCK`, which files ignore); `O_NOFOLLOW`, `O_NOCTTY`,
/// `O_LARGEFILE` change nothing here. `mode` is not kept (FAT has only a
/// read-only attribute, and new files are writable).
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_int) -> c_int {
    // SAFETY: the same contract.
    unsafe { openat64(::libc::AT_FDCWD, path, flags, mode) }
}

/// `openat64(dirfd, path, flags, mode)`: as [`open64`], a relative path
/// starting at the directory open as `dirfd`.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    _mode: c_int,
) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    match unsafe { quick(dirfd, path) } {
        Err(e) => return fail(e),
        Ok(Quick::Missing) if flags & ::libc::O_CREAT == 0 => return fail(::libc::ENOENT),
        Ok(_) => {}
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    ret_int(unsafe { normal_at(dirfd, path) }.and_then(|n| open_normal(&n, flags)))
}

/// `creat(path, mode)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn creat(path: *const c_char, mode: c_int) -> c_int {
    let flags = ::libc::O_CREAT | ::libc::O_WRONLY | ::libc::O_TRUNC;
    // SAFETY: the same contract.
    unsafe { open64(path, flags, mode) }
}

/// Writes `r` to `st`, or fails.
///
/// # Safety
///
/// `st` is writable.
unsafe fn put_stat(r: Res<::libc::stat64>, st: *mut ::libc::stat64) -> c_int {
    match r {
        Ok(s) => {
            // SAFETY: the caller guarantees st is writable.
            unsafe { st.write(s) };
            0
        }
        Err(e) => fail(e),
    }
}

/// `stat64(path, st)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string, `st` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn stat64(path: *const c_char, st: *mut ::libc::stat64) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { fstatat64(::libc::AT_FDCWD, path, st, 0) }
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

/// `fstatat64(dirfd, path, st, flags)`: `AT_EMPTY_PATH` with an empty
/// path is `fstat64(dirfd)`; `AT_SYMLINK_NOFOLLOW` changes nothing (there
/// are no links).
///
/// # Safety
///
/// `path` is a NUL-terminated string, `st` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fstatat64(
    dirfd: c_int,
    path: *const c_char,
    st: *mut ::libc::stat64,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string (checked for null).
    if flags & ::libc::AT_EMPTY_PATH != 0 && !path.is_null() && unsafe { *path } == 0 {
        if dirfd == ::libc::AT_FDCWD {
            let cwd = path::normalise("/", mounts::cwd().as_bytes());
            // SAFETY: the caller guarantees st is writable.
            return unsafe { put_stat(cwd.and_then(|n| stat_path(&n)), st) };
        }
        // SAFETY: the caller guarantees st is writable.
        return unsafe { fd::fstat64(dirfd, st) };
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    match unsafe { quick(dirfd, path) } {
        Err(e) => return fail(e),
        Ok(Quick::Missing) => return fail(::libc::ENOENT),
        Ok(Quick::Exe | Quick::Slow) => {}
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let r = unsafe { normal_at(dirfd, path) }.and_then(|n| stat_path(&n));
    // SAFETY: the caller guarantees st is writable.
    unsafe { put_stat(r, st) }
}

/// `access(path, mode)`: whether the file exists and, for `W_OK`, is
/// writable (not read-only, on a writable disk). Nothing is executable
/// but directories.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    match unsafe { quick(::libc::AT_FDCWD, path) } {
        Err(e) => return fail(e),
        Ok(Quick::Missing) => return fail(::libc::ENOENT),
        Ok(Quick::Exe | Quick::Slow) => {}
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let r = unsafe { normal_at(::libc::AT_FDCWD, path) }.and_then(|n| {
        let st = stat_path(&n)?;
        let place = mounts::place(&n);
        let ro_disk = match place.disk {
            Some(d) => mounts::fs(d)?.read_only(),
            None => true,
        };
        if mode & ::libc::W_OK != 0 && (st.st_mode & 0o200 == 0 || ro_disk) {
            return Err(if ro_disk { ::libc::EROFS } else { ::libc::EACCES });
        }
        if mode & ::libc::X_OK != 0 && st.st_mode & ::libc::S_IFMT != ::libc::S_IFDIR {
            return Err(::libc::EACCES);
        }
        Ok(0)
    });
    ret_int(r)
}

/// `mkdir(path, mode)`: a new directory (its name 8.3); `mode` is not
/// kept.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn mkdir(path: *const c_char, _mode: ::libc::mode_t) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    let r = unsafe { normal_at(::libc::AT_FDCWD, path) }.and_then(|n| {
        let place = mounts::place(&n);
        if place.inner == "/" {
            // The root, or a disk's mount point.
            return Err(::libc::EEXIST);
        }
        let disk = place.disk.ok_or(::libc::EROFS)?;
        let fs = mounts::fs(disk)?;
        match fs.metadata(&place.inner) {
            Ok(_) => return Err(::libc::EEXIST),
            Err(FsError::NotFound) => {}
            Err(e) => return Err(errno(e)),
        }
        if fs.read_only() {
            return Err(::libc::EROFS);
        }
        fs.create_dir(&place.inner).map_err(errno)?;
        Ok(0)
    });
    ret_int(r)
}

/// `chdir(path)`: the working directory, which relative paths start from.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn chdir(path: *const c_char) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    let r = unsafe { normal_at(::libc::AT_FDCWD, path) }.and_then(|n| {
        let st = stat_path(&n)?;
        if st.st_mode & ::libc::S_IFMT != ::libc::S_IFDIR {
            return Err(::libc::ENOTDIR);
        }
        mounts::set_cwd(n.text());
        Ok(0)
    });
    ret_int(r)
}

/// `fchdir(fd)`: the directory open as `fd` becomes the working one.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn fchdir(fd: c_int) -> c_int {
    ret_int(base(fd).map(|b| {
        mounts::set_cwd(b);
        0
    }))
}

/// Copies `s` and a NUL to `buf` (of `size` bytes), or to a new `malloc`
/// block when `buf` is null (and `size` is 0 or large enough): glibc's
/// extension, which `realpath` and `getcwd` share.
///
/// # Safety
///
/// `buf` is null or writable for `size` bytes.
unsafe fn put_str(s: &str, buf: *mut c_char, size: size_t) -> *mut c_char {
    let need = s.len() + 1;
    let out = if buf.is_null() {
        if size != 0 && size < need {
            super::set_errno(::libc::ERANGE);
            return core::ptr::null_mut();
        }
        let p = super::memory::malloc(need).cast::<c_char>();
        if p.is_null() {
            super::set_errno(::libc::ENOMEM);
            return p;
        }
        p
    } else {
        if size < need {
            super::set_errno(::libc::ERANGE);
            return core::ptr::null_mut();
        }
        buf
    };
    // SAFETY: out is writable for need bytes (allocated, or checked).
    unsafe {
        core::ptr::copy_nonoverlapping(s.as_ptr().cast::<c_char>(), out, s.len());
        *out.add(s.len()) = 0;
    }
    out
}

/// `getcwd(buf, size)`: the working directory (`/` at start).
///
/// # Safety
///
/// `buf` is null or writable for `size` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getcwd(buf: *mut c_char, size: size_t) -> *mut c_char {
    if !buf.is_null() && size == 0 {
        super::set_errno(::libc::EINVAL);
        return core::ptr::null_mut();
    }
    // SAFETY: the caller's contract.
    unsafe { put_str(&mounts::cwd(), buf, size) }
}

/// `readlink(path, buf, size)`: there are no symbolic links (`EINVAL` for
/// what exists, `ENOENT` for nothing) but `/proc/self/exe`, whose target
/// is its own name (what `std::env::current_exe` gives). A global allocator calls it while it
/// initialises (jemalloc, for `/etc/malloc.conf`): what [`quick`] decides
/// is answered without allocating.
///
/// # Safety
///
/// `path` is a NUL-terminated string; `buf` writable for `size` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn readlink(path: *const c_char, buf: *mut c_char, size: size_t) -> ssize_t {
    // SAFETY: the caller guarantees a NUL-terminated string.
    match unsafe { quick(::libc::AT_FDCWD, path) } {
        Err(e) => return fail_size(e),
        Ok(Quick::Missing) => return fail_size(::libc::ENOENT),
        Ok(Quick::Exe) => {
            // The one path that opens the image (on Linux, the program's
            // file's path): at most size bytes, no NUL, as readlink does.
            let name = b"/proc/self/exe";
            if buf.is_null() || size == 0 {
                return fail_size(::libc::EINVAL);
            }
            let n = name.len().min(size);
            // SAFETY: the caller guarantees buf writable for size bytes.
            unsafe { core::ptr::copy_nonoverlapping(name.as_ptr(), buf.cast::<u8>(), n) };
            return n as ssize_t;
        }
        Ok(Quick::Slow) => {}
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    match unsafe { normal_at(::libc::AT_FDCWD, path) }.and_then(|n| stat_path(&n)) {
        Ok(_) => fail_size(::libc::EINVAL),
        Err(e) => fail_size(e),
    }
}

/// `realpath(path, resolved)`: the normalised absolute path of what
/// exists at `path` (there are no links to resolve); in `resolved`
/// (`PATH_MAX` bytes) or, if it is null, a new `malloc` block.
///
/// # Safety
///
/// `path` is a NUL-terminated string; `resolved` is null or writable for
/// `PATH_MAX` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
    // SAFETY: the caller guarantees a NUL-terminated string.
    let r = unsafe { normal_at(::libc::AT_FDCWD, path) }.and_then(|n| {
        stat_path(&n)?;
        Ok(n.text())
    });
    match r {
        // SAFETY: resolved is null or writable for PATH_MAX bytes.
        Ok(s) => unsafe {
            put_str(&s, resolved, if resolved.is_null() { 0 } else { path::PATH_MAX })
        },
        Err(e) => {
            super::set_errno(e);
            core::ptr::null_mut()
        }
    }
}

/// A target on disk 0 for the path `raw`, with what is there
/// (`Some(is_dir)`, entry number 7), for the unit tests of the families.
#[cfg(test)]
fn test_target(raw: &str, found: Option<bool>, read_only: bool) -> Target {
    let n = path::normalise("/", raw.as_bytes()).unwrap();
    Target {
        last: path::last_of(raw.as_bytes()),
        place: Place {
            disk: Some(0),
            inner: n.text(),
            full: n.text(),
            is_root: n.parts.is_empty(),
        },
        parent_disk: Some(0),
        found: found.map(|is_dir| Metadata {
            is_dir,
            len: 0,
            modified: 0,
            read_only: false,
            id: 7,
        }),
        mount_point: false,
        read_only,
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: Option<Found> = Some(Found { is_dir: false, read_only: false });
    const RO_FILE: Option<Found> = Some(Found { is_dir: false, read_only: true });
    const DIR: Option<Found> = Some(Found { is_dir: true, read_only: false });

    #[test]
    fn proc_self_exe_reads_as_its_own_name_and_opens_the_image() {
        let mut buf = [0u8; 64];
        for path in [c"/proc/self/exe", c"/proc/1/exe", c"/proc/./self/../self/exe"] {
            // SAFETY: a C string; buf is writable for its length.
            let n = unsafe { readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            assert_eq!(&buf[..n as usize], b"/proc/self/exe");
        }
        // Truncated to the buffer, without a NUL, as Linux's.
        // SAFETY: as above, 4 bytes.
        let n = unsafe { readlink(c"/proc/self/exe".as_ptr(), buf.as_mut_ptr().cast(), 4) };
        assert_eq!((n, &buf[..4]), (4, &b"/pro"[..]));
        // Other paths: no links (EINVAL for what exists), nothing there.
        // SAFETY: as above.
        unsafe {
            assert_eq!(readlink(c"/proc/self/stat".as_ptr(), buf.as_mut_ptr().cast(), 64), -1);
            assert_eq!(super::super::errno(), ::libc::EINVAL);
            assert_eq!(readlink(c"/etc/malloc.conf".as_ptr(), buf.as_mut_ptr().cast(), 64), -1);
            assert_eq!(super::super::errno(), ::libc::ENOENT);
            assert_eq!(readlink(c"/proc/self/exe/".as_ptr(), buf.as_mut_ptr().cast(), 64), -1);
            assert_eq!(super::super::errno(), ::libc::ENOTDIR);
        }
        // stat gives the image's size; open and read give its bytes.
        // SAFETY: stat64 is plain data; st is writable.
        let mut st: ::libc::stat64 = unsafe { core::mem::zeroed() };
        // SAFETY: a C string, st writable.
        assert_eq!(unsafe { stat64(c"/proc/self/exe".as_ptr(), &mut st) }, 0);
        assert_eq!(st.st_size as usize, proc::image().len());
        assert_eq!(st.st_mode, ::libc::S_IFREG | 0o555);
        // SAFETY: a C string.
        let fd = unsafe { open64(c"/proc/self/exe".as_ptr(), ::libc::O_RDONLY, 0) };
        assert!(fd >= 0);
        let mut all = [0u8; 64];
        // SAFETY: all is writable for its length.
        let n = unsafe { fd::read(fd, all.as_mut_ptr().cast(), all.len()) };
        assert_eq!(&all[..n as usize], proc::image());
        // In place, read-only.
        let p = crate::libc::mmap::mmap64(
            core::ptr::null_mut(),
            4096,
            ::libc::PROT_READ,
            ::libc::MAP_PRIVATE,
            fd,
            0,
        );
        assert_eq!(p.cast_const().cast::<u8>(), proc::image().as_ptr());
        let rw = ::libc::PROT_READ | ::libc::PROT_WRITE;
        let w =
            crate::libc::mmap::mmap64(core::ptr::null_mut(), 4096, rw, ::libc::MAP_PRIVATE, fd, 0);
        assert_eq!(w, ::libc::MAP_FAILED);
        // SAFETY: a C string, a writable O_WRONLY open refused.
        assert_eq!(unsafe { open64(c"/proc/self/exe".as_ptr(), ::libc::O_WRONLY, 0) }, -1);
        assert_eq!(fd::close(fd), 0);
    }

    #[test]
    fn open_flags_are_checked_in_linux_order() {
        use ::libc::{
            O_ACCMODE, O_APPEND, O_CREAT, O_DIRECTORY, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY,
        };
        let p = |flags, found, slash, ro| plan(flags, found, slash, ro);
        assert_eq!(p(O_ACCMODE, FILE, false, false), Err(::libc::EINVAL));
        assert_eq!(
            p(O_RDONLY, FILE, false, false),
            Ok(Plan::File { read: true, write: false, truncate: false })
        );
        // O_TRUNC without write access leaves the file alone.
        assert_eq!(
            p(O_RDONLY | O_TRUNC, FILE, false, false),
            Ok(Plan::File { read: true, write: false, truncate: false })
        );
        assert_eq!(
            p(O_WRONLY | O_CREAT | O_TRUNC, FILE, false, false),
            Ok(Plan::File { read: false, write: true, truncate: true })
        );
        assert_eq!(
            p(O_RDWR | O_APPEND, FILE, false, false),
            Ok(Plan::File { read: true, write: true, truncate: false })
        );
        assert_eq!(p(O_WRONLY | O_CREAT | O_EXCL, FILE, false, false), Err(::libc::EEXIST));
        assert_eq!(p(O_WRONLY | O_CREAT | O_EXCL, DIR, false, false), Err(::libc::EEXIST));
        assert_eq!(
            p(O_WRONLY | O_CREAT | O_EXCL, None, false, false),
            Ok(Plan::Create { read: false, write: true })
        );
        assert_eq!(p(O_RDONLY, None, false, false), Err(::libc::ENOENT));
        assert_eq!(p(O_WRONLY | O_CREAT, None, true, false), Err(::libc::EISDIR));
        assert_eq!(p(O_RDONLY | O_CREAT | O_DIRECTORY, None, false, false), Err(::libc::EINVAL));
        // Directories: read only; files are not directories.
        assert_eq!(p(O_RDONLY | O_DIRECTORY, DIR, false, false), Ok(Plan::Dir));
        assert_eq!(p(O_RDWR, DIR, false, false), Err(::libc::EISDIR));
        assert_eq!(p(O_RDONLY | O_CREAT, DIR, false, false), Err(::libc::EISDIR));
        assert_eq!(p(O_RDONLY | O_DIRECTORY, FILE, false, false), Err(::libc::ENOTDIR));
        assert_eq!(p(O_RDONLY, FILE, true, false), Err(::libc::ENOTDIR));
        // A read-only disk, then the read-only attribute.
        assert_eq!(p(O_WRONLY, FILE, false, true), Err(::libc::EROFS));
        assert_eq!(p(O_WRONLY | O_CREAT, None, false, true), Err(::libc::EROFS));
        assert_eq!(p(O_WRONLY, RO_FILE, false, true), Err(::libc::EROFS));
        assert_eq!(p(O_WRONLY, RO_FILE, false, false), Err(::libc::EACCES));
        assert_eq!(
            p(O_RDONLY, RO_FILE, false, true),
            Ok(Plan::File { read: true, write: false, truncate: false })
        );
    }
}
