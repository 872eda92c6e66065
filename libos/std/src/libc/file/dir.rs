//! Directory streams: `opendir`, `fdopendir`, `readdir64`, `dirfd`,
//! `closedir`, `rewinddir`. A stream reads its directory's entries when it
//! is opened (or rewound) and hands them out one by one, `.` and `..`
//! first, each with its `d_type` (`DT_DIR` or `DT_REG`) and number.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::node::Directory;
use crate::libc::fd::{self, Res};
use crate::libc::{c_char, c_int, set_errno};

/// A `DIR`: the descriptor it owns, its entries and the current one.
pub struct Dir {
    fd: c_int,
    entries: Vec<(String, u8, u64)>,
    next: usize,
    dirent: ::libc::dirent64,
}

impl core::fmt::Debug for Dir {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dir").field("fd", &self.fd).field("next", &self.next).finish()
    }
}

fn entries_of(fd: c_int) -> Res<Vec<(String, u8, u64)>> {
    let open = fd::get(fd)?;
    if let Some(p) = open.file.as_any().downcast_ref::<super::proc::ProcDir>() {
        return Ok(p.entries());
    }
    let dir = open.file.as_any().downcast_ref::<Directory>().ok_or(::libc::ENOTDIR)?;
    dir.entries()
}

/// `fdopendir(fd)`: a stream over the directory open as `fd`, which the
/// stream then owns.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn fdopendir(fd: c_int) -> *mut Dir {
    match entries_of(fd) {
        Ok(entries) => Box::into_raw(Box::new(Dir {
            fd,
            entries,
            next: 0,
            // SAFETY: dirent64 is plain data; all zeroes is a valid value.
            dirent: unsafe { core::mem::zeroed() },
        })),
        Err(e) => {
            set_errno(e);
            core::ptr::null_mut()
        }
    }
}

/// `opendir(path)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn opendir(path: *const c_char) -> *mut Dir {
    let flags = ::libc::O_RDONLY | ::libc::O_DIRECTORY | ::libc::O_CLOEXEC;
    // SAFETY: the caller guarantees a NUL-terminated string.
    let fd = unsafe { super::open64(path, flags, 0) };
    if fd < 0 {
        return core::ptr::null_mut();
    }
    let d = fdopendir(fd);
    if d.is_null() {
        let e = crate::libc::errno();
        fd::close(fd);
        set_errno(e);
    }
    d
}

/// `readdir64(dir)`: the next entry, or null at the end (`errno`
/// unchanged).
///
/// # Safety
///
/// `dir` comes from `opendir` or `fdopendir` and is not closed.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn readdir64(dir: *mut Dir) -> *mut ::libc::dirent64 {
    // SAFETY: the caller guarantees a live stream, used by no one else now.
    let d = unsafe { &mut *dir };
    let Some((name, kind, ino)) = d.entries.get(d.next) else { return core::ptr::null_mut() };
    d.next += 1;
    let e = &mut d.dirent;
    e.d_ino = *ino;
    e.d_off = d.next as i64;
    e.d_reclen = core::mem::size_of::<::libc::dirent64>() as u16;
    e.d_type = *kind;
    // Names are at most 255 bytes (path::normalise refuses longer ones,
    // and FAT's long names are at most 255 characters): cut at a
    // character boundary if a long name's UTF-8 is longer.
    let mut len = name.len().min(e.d_name.len() - 1);
    while !name.is_char_boundary(len) {
        len -= 1;
    }
    for (to, from) in e.d_name.iter_mut().zip(name.as_bytes()[..len].iter()) {
        *to = *from as c_char;
    }
    e.d_name[len] = 0;
    &raw mut d.dirent
}

/// `dirfd(dir)`: the descriptor the stream owns.
///
/// # Safety
///
/// `dir` comes from `opendir` or `fdopendir` and is not closed.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn dirfd(dir: *mut Dir) -> c_int {
    // SAFETY: the caller guarantees a live stream.
    unsafe { (*dir).fd }
}

/// `rewinddir(dir)`: reads the entries again.
///
/// # Safety
///
/// `dir` comes from `opendir` or `fdopendir` and is not closed.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn rewinddir(dir: *mut Dir) {
    // SAFETY: the caller guarantees a live stream.
    let d = unsafe { &mut *dir };
    if let Ok(entries) = entries_of(d.fd) {
        d.entries = entries;
    }
    d.next = 0;
}

/// `closedir(dir)`: closes the stream and its descriptor.
///
/// # Safety
///
/// `dir` comes from `opendir` or `fdopendir` and is not closed; it is not
/// used afterwards.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn closedir(dir: *mut Dir) -> c_int {
    if dir.is_null() {
        return crate::libc::fail(::libc::EINVAL);
    }
    // SAFETY: the caller gives up a stream made by Box::into_raw.
    let d = unsafe { Box::from_raw(dir) };
    fd::close(d.fd)
}
