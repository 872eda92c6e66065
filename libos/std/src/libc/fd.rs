//! The file-descriptor table, and the calls that work on any descriptor.
//!
//! A descriptor names an open file description ([`Open`]): a shared
//! object (`Rc`) that `dup` copies a reference to, holding its own status
//! flags (`O_NONBLOCK`, `O_APPEND`) and offset, as on Linux. What it is —
//! the console, a file or a directory of the FAT disk, and (next) a
//! socket, a pipe, an eventfd or an epoll instance — is a [`File`]
//! implementation; each call on a descriptor goes to its object, which
//! answers with a result or an `errno`. The descriptor's own flag
//! (`FD_CLOEXEC`) lives in the table.
//!
//! Descriptors 0, 1 and 2 are the console: standard input is at end of
//! file (a guest has no input stream), standard output and error both go
//! to the tender's console. The lowest free number is used, below
//! [`MAX_FDS`] or a lower soft `RLIMIT_NOFILE` (`EMFILE` past it), as
//! Linux does.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;

use super::start::Lock;
use super::{c_int, c_void, fail, fail_size, size_t, ssize_t};

/// How many descriptors a guest may have open (Linux's default soft
/// `RLIMIT_NOFILE`).
pub const MAX_FDS: usize = 1024;

/// A result of a call on an object: a value, or an error number.
pub type Res<T> = Result<T, c_int>;

/// Readiness, as `poll`'s `POLLIN`/`POLLOUT`/`POLLHUP`/`POLLERR` bits.
pub type Events = i16;

/// What an open file description refers to. Every method has Linux's
/// answer for an object that does not support the call.
pub trait File {
    /// Reads at the description's offset (or from the stream).
    fn read(&self, _open: &Open, _buf: &mut [u8]) -> Res<usize> {
        Err(::libc::EINVAL)
    }
    /// Writes at the description's offset (or to the stream).
    fn write(&self, _open: &Open, _buf: &[u8]) -> Res<usize> {
        Err(::libc::EINVAL)
    }
    /// Writes `bufs` one after the other (`writev`). By default, buffers
    /// of at most [`GATHER`] bytes in all are copied together and written
    /// with one [`write`](File::write), so that a stream sees one write
    /// as Linux's `writev` makes it; larger vectors are written a buffer
    /// at a time, stopping at a short write. Sockets gather without the
    /// copy or the limit.
    fn write_vectored(&self, open: &Open, bufs: &[&[u8]]) -> Res<usize> {
        write_gathered(bufs, |b| self.write(open, b))
    }
    /// Reads at `offset`, leaving the description's offset alone.
    fn pread(&self, _buf: &mut [u8], _offset: u64) -> Res<usize> {
        Err(::libc::ESPIPE)
    }
    /// Writes at `offset`, leaving the description's offset alone.
    fn pwrite(&self, _buf: &[u8], _offset: u64) -> Res<usize> {
        Err(::libc::ESPIPE)
    }
    /// The new offset for `lseek(offset, whence)`.
    fn seek(&self, _open: &Open, _offset: i64, _whence: c_int) -> Res<u64> {
        Err(::libc::ESPIPE)
    }
    /// `fstat`.
    fn stat(&self) -> Res<::libc::stat64>;
    /// Makes written data durable (`fsync`, `fdatasync`).
    fn sync(&self) -> Res<()> {
        Err(::libc::EINVAL)
    }
    /// `ftruncate`.
    fn truncate(&self, _len: u64) -> Res<()> {
        Err(::libc::EINVAL)
    }
    /// Which of `POLLIN`, `POLLOUT`, ... hold now.
    fn poll(&self) -> Events;
    /// Adds an `epoll` registration to the watchers of the object's
    /// changes (see [`super::watch`]): every change that may set a bit of
    /// [`File::poll`] or renew one (data in, room freed, an end closed, a
    /// new state) must notify it. Objects whose readiness never changes
    /// keep the default, which watches nothing.
    fn watch(&self, _sub: &Rc<super::watch::Sub>) {}
    /// Whether it is a terminal (`isatty`).
    fn is_tty(&self) -> bool {
        false
    }
    /// Called when the last descriptor of the description closes; errors
    /// are reported by `close`.
    fn close(&self) -> Res<()> {
        Ok(())
    }
    /// The object as `Any`, for the calls of one kind of object (a
    /// directory stream's entries, a socket's address).
    fn as_any(&self) -> &dyn core::any::Any;
}

/// An open file description: the object, its status flags and offset.
pub struct Open {
    /// The object.
    pub file: Rc<dyn File>,
    /// `O_NONBLOCK`, `O_APPEND` and the access mode, as `F_GETFL` shows.
    pub flags: Cell<c_int>,
    /// The offset of `read`, `write` and `lseek`.
    pub offset: Cell<u64>,
    /// Whether the object has been closed (by `close`, which reports the
    /// error; otherwise, when the last reference goes, errors are lost).
    closed: Cell<bool>,
    /// A number of its own, for what it owns: its OFD and `flock` locks
    /// (file/lock.rs). Not its address: `close` moves it out of its `Rc`.
    id: usize,
}

impl Open {
    /// Its number, unique among the descriptions made.
    pub fn id(&self) -> usize {
        self.id
    }
}

impl core::fmt::Debug for Open {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Open").field("flags", &self.flags).field("offset", &self.offset).finish()
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        // Its OFD and flock locks go with it.
        super::file::lock::gone(self);
        if !self.closed.get() {
            let _ = self.file.close();
        }
    }
}

#[derive(Clone)]
struct Slot {
    open: Rc<Open>,
    cloexec: bool,
}

static TABLE: Lock<Vec<Option<Slot>>> = Lock::new(Vec::new());

/// The console: standard input at end of file, output to the tender's
/// console.
struct Console {
    input: bool,
}

impl File for Console {
    fn read(&self, _open: &Open, _buf: &mut [u8]) -> Res<usize> {
        if self.input { Ok(0) } else { Err(::libc::EBADF) }
    }

    fn write(&self, _open: &Open, buf: &[u8]) -> Res<usize> {
        if self.input {
            return Err(::libc::EBADF);
        }
        libos::console::write_all(buf);
        Ok(buf.len())
    }

    fn stat(&self) -> Res<::libc::stat64> {
        // SAFETY: stat64 is plain data; all zeroes is a valid value.
        let mut st: ::libc::stat64 = unsafe { core::mem::zeroed() };
        st.st_mode = ::libc::S_IFCHR | 0o620;
        st.st_blksize = 4096;
        st.st_nlink = 1;
        Ok(st)
    }

    fn sync(&self) -> Res<()> {
        Ok(())
    }

    fn poll(&self) -> Events {
        // Standard input is readable (end of file), the outputs writable.
        if self.input { ::libc::POLLIN } else { ::libc::POLLOUT }
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

fn with_table<R>(f: impl FnOnce(&mut Vec<Option<Slot>>) -> R) -> R {
    TABLE.with(|t| {
        if t.is_empty() {
            for (fd, input) in [(0, true), (1, false), (2, false)] {
                let flags = if fd == 0 { ::libc::O_RDONLY } else { ::libc::O_WRONLY };
                t.push(Some(Slot {
                    open: new_open(Rc::new(Console { input }), flags),
                    cloexec: false,
                }));
            }
        }
        f(t)
    })
}

/// A new open file description for `file`, with status flags `flags`.
pub fn new_open(file: Rc<dyn File>, flags: c_int) -> Rc<Open> {
    static NEXT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(1);
    let id = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    Rc::new(Open {
        file,
        flags: Cell::new(flags),
        offset: Cell::new(0),
        closed: Cell::new(false),
        id,
    })
}

/// Installs `open` at the lowest free descriptor at or above `min`.
pub fn install(open: Rc<Open>, cloexec: bool, min: usize) -> Res<c_int> {
    with_table(|t| {
        let free =
            (min..super::rlimit::open_max()).find(|&fd| t.get(fd).is_none_or(Option::is_none));
        let Some(fd) = free else { return Err(::libc::EMFILE) };
        if fd >= t.len() {
            t.try_reserve(fd + 1 - t.len()).map_err(|_| ::libc::ENOMEM)?;
            t.resize(fd + 1, None);
        }
        t[fd] = Some(Slot { open, cloexec });
        Ok(fd as c_int)
    })
}

/// The open file description behind `fd` (`EBADF` if none).
pub fn get(fd: c_int) -> Res<Rc<Open>> {
    let i = usize::try_from(fd).map_err(|_| ::libc::EBADF)?;
    with_table(|t| t.get(i).and_then(|s| s.as_ref()).map(|s| s.open.clone()).ok_or(::libc::EBADF))
}

/// Turns a result into C's convention: the value, or -1 and `errno`.
pub fn ret(r: Res<usize>) -> ssize_t {
    match r {
        Ok(n) => n as ssize_t,
        Err(e) => fail_size(e),
    }
}

/// [`ret`] for calls that return an `int`.
pub fn ret_int(r: Res<c_int>) -> c_int {
    r.unwrap_or_else(fail)
}

/// The bytes at `buf`, or an empty slice for a zero length.
///
/// # Safety
///
/// `buf` is readable for `len` bytes when `len` is not zero.
unsafe fn bytes<'a>(buf: *const c_void, len: size_t) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees len readable bytes.
    unsafe { core::slice::from_raw_parts(buf.cast(), len) }
}

/// The writable bytes at `buf`, or an empty slice for a zero length.
///
/// # Safety
///
/// `buf` is writable for `len` bytes when `len` is not zero.
unsafe fn bytes_mut<'a>(buf: *mut c_void, len: size_t) -> &'a mut [u8] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: the caller guarantees len writable bytes.
    unsafe { core::slice::from_raw_parts_mut(buf.cast(), len) }
}

/// `read(fd, buf, len)`.
///
/// # Safety
///
/// `buf` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    // SAFETY: the caller guarantees buf is writable for len bytes.
    let buf = unsafe { bytes_mut(buf, len) };
    ret(get(fd).and_then(|o| o.file.read(&o, buf)))
}

/// `write(fd, buf, len)`.
///
/// # Safety
///
/// `buf` is readable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    // SAFETY: the caller guarantees buf is readable for len bytes.
    let buf = unsafe { bytes(buf, len) };
    ret(get(fd).and_then(|o| o.file.write(&o, buf)))
}

/// `pread64(fd, buf, len, offset)`.
///
/// # Safety
///
/// `buf` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pread64(fd: c_int, buf: *mut c_void, len: size_t, offset: i64) -> ssize_t {
    let Ok(offset) = u64::try_from(offset) else { return fail_size(::libc::EINVAL) };
    // SAFETY: the caller guarantees buf is writable for len bytes.
    let buf = unsafe { bytes_mut(buf, len) };
    ret(get(fd).and_then(|o| o.file.pread(buf, offset)))
}

/// `pwrite64(fd, buf, len, offset)`.
///
/// # Safety
///
/// `buf` is readable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pwrite64(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    offset: i64,
) -> ssize_t {
    let Ok(offset) = u64::try_from(offset) else { return fail_size(::libc::EINVAL) };
    // SAFETY: the caller guarantees buf is readable for len bytes.
    let buf = unsafe { bytes(buf, len) };
    ret(get(fd).and_then(|o| o.file.pwrite(buf, offset)))
}

/// `readv(fd, iov, n)`: each buffer in turn, stopping at a short read.
///
/// # Safety
///
/// `iov` holds `n` entries, each writable for its length.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const ::libc::iovec, n: c_int) -> ssize_t {
    vectored(fd, iov, n, None, |o, base, len, _| {
        // SAFETY: the caller guarantees each buffer is writable.
        o.file.read(o, unsafe { bytes_mut(base, len) })
    })
}

/// Up to how many bytes [`File::write_vectored`]'s default gathers into
/// one `write`.
pub const GATHER: usize = 64 * 1024;

/// [`File::write_vectored`]'s default, over `write`: written one at a
/// time, a TCP socket would send the first buffer alone and Nagle's
/// algorithm could hold the second until the peer acknowledges the first,
/// which a Linux peer delays by up to 40 ms.
fn write_gathered(bufs: &[&[u8]], mut write: impl FnMut(&[u8]) -> Res<usize>) -> Res<usize> {
    let total = bufs.iter().try_fold(0usize, |t, b| t.checked_add(b.len()));
    if bufs.len() > 1
        && let Some(total) = total.filter(|&t| t <= GATHER)
    {
        let mut joined = Vec::new();
        if joined.try_reserve_exact(total).is_ok() {
            for b in bufs {
                joined.extend_from_slice(b);
            }
            return write(&joined);
        }
    }
    let mut done = 0usize;
    for b in bufs {
        match write(b) {
            Ok(k) => {
                done += k;
                if k < b.len() {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// The buffers of `n` `iovec`s, as slices.
///
/// # Safety
///
/// `iov` holds `n` entries, each readable for its length.
pub unsafe fn iovec_slices<'a>(iov: *const ::libc::iovec, n: usize) -> Res<Vec<&'a [u8]>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the caller guarantees iov holds n entries.
    let list = unsafe { core::slice::from_raw_parts(iov, n) };
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| ::libc::ENOMEM)?;
    // SAFETY: the caller guarantees each buffer is readable.
    v.extend(list.iter().map(|e| unsafe { bytes(e.iov_base, e.iov_len) }));
    Ok(v)
}

/// `writev(fd, iov, n)`: the buffers written as one write (see
/// [`File::write_vectored`]); an error only if nothing was written, as
/// Linux.
///
/// # Safety
///
/// `iov` holds `n` entries, each readable for its length.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const ::libc::iovec, n: c_int) -> ssize_t {
    let Ok(n) = usize::try_from(n) else { return fail_size(::libc::EINVAL) };
    if n > IOV_MAX {
        return fail_size(::libc::EINVAL);
    }
    let open = match get(fd) {
        Ok(o) => o,
        Err(e) => return fail_size(e),
    };
    // SAFETY: the caller's contract.
    let bufs = match unsafe { iovec_slices(iov, n) } {
        Ok(b) => b,
        Err(e) => return fail_size(e),
    };
    if bufs
        .iter()
        .try_fold(0usize, |t, b| t.checked_add(b.len()))
        .is_none_or(|t| t > isize::MAX as usize)
    {
        return fail_size(::libc::EINVAL);
    }
    ret(open.file.write_vectored(&open, &bufs))
}

/// Most buffers a vector call takes (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// The vector calls: `each(open, base, len, offset)` on each buffer in
/// turn, stopping at a short transfer; an error is reported only if
/// nothing was transferred, as Linux does. `offset` is the positional
/// calls' (`preadv`, `pwritev`), advanced by each transfer; `None` for
/// `readv` and `writev`, which use the description's own.
fn vectored(
    fd: c_int,
    iov: *const ::libc::iovec,
    n: c_int,
    offset: Option<i64>,
    mut each: impl FnMut(&Open, *mut c_void, usize, u64) -> Res<usize>,
) -> ssize_t {
    let Ok(n) = usize::try_from(n) else { return fail_size(::libc::EINVAL) };
    let Ok(mut at) = u64::try_from(offset.unwrap_or(0)) else {
        return fail_size(::libc::EINVAL);
    };
    let open = match get(fd) {
        Ok(o) => o,
        Err(e) => return fail_size(e),
    };
    if n == 0 {
        return 0;
    }
    // SAFETY: the callers' contract: iov holds n entries.
    let iov = unsafe { core::slice::from_raw_parts(iov, n) };
    let mut total = 0usize;
    for v in iov {
        match each(&open, v.iov_base, v.iov_len, at) {
            Ok(k) => {
                total += k;
                at += k as u64;
                if k < v.iov_len {
                    break;
                }
            }
            Err(e) if total == 0 => return fail_size(e),
            Err(_) => break,
        }
    }
    total as ssize_t
}

/// `preadv(fd, iov, n, offset)`.
///
/// # Safety
///
/// `iov` holds `n` entries, each writable for its length.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn preadv(
    fd: c_int,
    iov: *const ::libc::iovec,
    n: c_int,
    offset: i64,
) -> ssize_t {
    vectored(fd, iov, n, Some(offset), |o, base, len, at| {
        // SAFETY: the caller guarantees each buffer is writable.
        o.file.pread(unsafe { bytes_mut(base, len) }, at)
    })
}

/// `pwritev(fd, iov, n, offset)`.
///
/// # Safety
///
/// `iov` holds `n` entries, each readable for its length.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pwritev(
    fd: c_int,
    iov: *const ::libc::iovec,
    n: c_int,
    offset: i64,
) -> ssize_t {
    vectored(fd, iov, n, Some(offset), |o, base, len, at| {
        // SAFETY: the caller guarantees each buffer is readable.
        o.file.pwrite(unsafe { bytes(base, len) }, at)
    })
}

/// `preadv64`: the same as [`preadv`] (`off_t` is 64 bits).
///
/// # Safety
///
/// As [`preadv`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn preadv64(
    fd: c_int,
    iov: *const ::libc::iovec,
    n: c_int,
    offset: i64,
) -> ssize_t {
    // SAFETY: the same contract.
    unsafe { preadv(fd, iov, n, offset) }
}

/// `pwritev64`: the same as [`pwritev`].
///
/// # Safety
///
/// As [`pwritev`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pwritev64(
    fd: c_int,
    iov: *const ::libc::iovec,
    n: c_int,
    offset: i64,
) -> ssize_t {
    // SAFETY: the same contract.
    unsafe { pwritev(fd, iov, n, offset) }
}

/// `close(fd)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn close(fd: c_int) -> c_int {
    let Ok(i) = usize::try_from(fd) else { return fail(::libc::EBADF) };
    let slot = with_table(|t| t.get_mut(i).and_then(Option::take));
    let Some(slot) = slot else { return fail(::libc::EBADF) };
    // Closing any descriptor of a file drops the process's record locks.
    super::file::lock::closing(&slot.open);
    // The last reference closes the object, and its error is reported.
    match Rc::try_unwrap(slot.open) {
        Ok(open) => {
            let r = open.file.close();
            open.closed.set(true);
            ret_int(r.map(|()| 0))
        }
        Err(_) => 0,
    }
}

/// `lseek64(fd, offset, whence)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn lseek64(fd: c_int, offset: i64, whence: c_int) -> i64 {
    match get(fd).and_then(|o| {
        let to = o.file.seek(&o, offset, whence)?;
        o.offset.set(to);
        Ok(to)
    }) {
        Ok(to) => to as i64,
        Err(e) => i64::from(fail(e)),
    }
}

/// `fstat64(fd, st)`.
///
/// # Safety
///
/// `st` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fstat64(fd: c_int, st: *mut ::libc::stat64) -> c_int {
    match get(fd).and_then(|o| o.file.stat()) {
        Ok(s) => {
            // SAFETY: the caller guarantees st is writable.
            unsafe { st.write(s) };
            0
        }
        Err(e) => fail(e),
    }
}

/// `fstat(fd, st)`: the same as [`fstat64`] (on x86_64 `struct stat` and
/// `struct stat64` are one layout); what the libc crate's `fstat` calls
/// (tokio's pipes check they are FIFOs with it).
///
/// # Safety
///
/// `st` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fstat(fd: c_int, st: *mut ::libc::stat) -> c_int {
    // SAFETY: the same contract; the layouts are the same.
    unsafe { fstat64(fd, st.cast()) }
}

/// `fsync(fd)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn fsync(fd: c_int) -> c_int {
    ret_int(get(fd).and_then(|o| o.file.sync()).map(|()| 0))
}

/// `fdatasync(fd)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn fdatasync(fd: c_int) -> c_int {
    fsync(fd)
}

/// `ftruncate64(fd, len)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn ftruncate64(fd: c_int, len: i64) -> c_int {
    let Ok(len) = u64::try_from(len) else { return fail(::libc::EINVAL) };
    ret_int(get(fd).and_then(|o| o.file.truncate(len)).map(|()| 0))
}

/// `isatty(fd)`: 1 for a terminal, else 0 with `ENOTTY` (or `EBADF`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn isatty(fd: c_int) -> c_int {
    match get(fd) {
        Ok(o) if o.file.is_tty() => 1,
        Ok(_) => fail(::libc::ENOTTY) + 1,
        Err(e) => fail(e) + 1,
    }
}

/// `dup(fd)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn dup(fd: c_int) -> c_int {
    ret_int(get(fd).and_then(|o| install(o, false, 0)))
}

/// `dup3(old, new, flags)`: `new` closed first if open; `O_CLOEXEC` only.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if old == new || flags & !::libc::O_CLOEXEC != 0 {
        return fail(::libc::EINVAL);
    }
    let open = match get(old) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let Some(i) = usize::try_from(new).ok().filter(|&i| i < super::rlimit::open_max()) else {
        return fail(::libc::EBADF);
    };
    let cloexec = flags & ::libc::O_CLOEXEC != 0;
    let r = with_table(|t| {
        if i >= t.len() {
            t.try_reserve(i + 1 - t.len()).map_err(|_| ::libc::ENOMEM)?;
            t.resize(i + 1, None);
        }
        Ok(t[i].replace(Slot { open, cloexec }))
    });
    match r {
        Ok(old_slot) => {
            // An implicit close: the record locks on its file go too.
            if let Some(s) = &old_slot {
                super::file::lock::closing(&s.open);
            }
            drop(old_slot);
            new
        }
        Err(e) => fail(e),
    }
}

/// `dup2(old, new)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if old == new {
        return match get(old) {
            Ok(_) => new,
            Err(e) => fail(e),
        };
    }
    dup3(old, new, 0)
}

/// `fcntl(fd, cmd, arg)`: descriptor flags, status flags (`O_NONBLOCK`
/// and `O_APPEND` change; the access mode does not), duplication, record
/// locks and open file description locks (`F_GETLK`, `F_SETLK`,
/// `F_SETLKW`, `F_OFD_*`: file/lock.rs).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    let Ok(i) = usize::try_from(fd) else { return fail(::libc::EBADF) };
    let Some(slot) = with_table(|t| t.get(i).cloned().flatten()) else {
        return fail(::libc::EBADF);
    };
    match cmd {
        ::libc::F_GETFD => i32::from(slot.cloexec),
        ::libc::F_SETFD => {
            with_table(|t| {
                if let Some(Some(s)) = t.get_mut(i) {
                    s.cloexec = arg as c_int & ::libc::FD_CLOEXEC != 0;
                }
            });
            0
        }
        ::libc::F_GETFL => slot.open.flags.get(),
        ::libc::F_SETFL => {
            let changeable = ::libc::O_NONBLOCK | ::libc::O_APPEND;
            let old = slot.open.flags.get();
            slot.open.flags.set(old & !changeable | arg as c_int & changeable);
            0
        }
        ::libc::F_DUPFD | ::libc::F_DUPFD_CLOEXEC => {
            if arg >= super::rlimit::open_max() {
                return fail(::libc::EINVAL);
            }
            ret_int(install(slot.open, cmd == ::libc::F_DUPFD_CLOEXEC, arg))
        }
        ::libc::F_GETLK
        | ::libc::F_SETLK
        | ::libc::F_SETLKW
        | ::libc::F_OFD_GETLK
        | ::libc::F_OFD_SETLK
        | ::libc::F_OFD_SETLKW => {
            // SAFETY: for these commands fcntl's contract is that `arg`
            // points to a `struct flock` (glibc's is `flock64` on x86_64);
            // a null one is EFAULT.
            unsafe { super::file::lock::fcntl_lock(&slot.open, cmd, arg as *mut ::libc::flock64) }
        }
        _ => fail(::libc::EINVAL),
    }
}

/// `ioctl(fd, request, arg)`: `FIONBIO`, `FIOCLEX`, `FIONCLEX`; terminal
/// requests get `ENOTTY`, as for any file that is not a terminal.
///
/// # Safety
///
/// For `FIONBIO`, `arg` points to a readable `int`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong_request, arg: *mut c_void) -> c_int {
    let open = match get(fd) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    match request {
        ::libc::FIONBIO => {
            // SAFETY: the caller guarantees arg points to an int.
            let on = unsafe { *arg.cast::<c_int>() } != 0;
            let f = open.flags.get() & !::libc::O_NONBLOCK;
            open.flags.set(if on { f | ::libc::O_NONBLOCK } else { f });
            0
        }
        ::libc::FIOCLEX => fcntl(fd, ::libc::F_SETFD, ::libc::FD_CLOEXEC as usize),
        ::libc::FIONCLEX => fcntl(fd, ::libc::F_SETFD, 0),
        _ => fail(::libc::ENOTTY),
    }
}

/// The type of `ioctl`'s request on glibc.
#[allow(non_camel_case_types)]
pub type c_ulong_request = ::libc::c_ulong;

/// `poll(fds, n, timeout)`: readiness of each descriptor (`POLLNVAL` for
/// one that is not open); waits, parking the thread, until one is ready
/// or `timeout` milliseconds pass (negative: forever). The network gets a
/// turn first, so that what arrived is seen even when something is
/// ready already.
///
/// # Safety
///
/// `fds` holds `n` entries.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn poll(
    fds: *mut ::libc::pollfd,
    n: ::libc::nfds_t,
    timeout: c_int,
) -> c_int {
    let deadline = u64::try_from(timeout)
        .ok()
        .map(|ms| libos::time::Instant::now() + core::time::Duration::from_millis(ms));
    // SAFETY: the same contract.
    unsafe { poll_until(fds, n, deadline) }
}

/// `ppoll(fds, n, timeout, sigmask)`: [`poll`] with a `timespec` timeout
/// (null: forever); the mask changes nothing, as no signal is delivered.
///
/// # Safety
///
/// `fds` holds `n` entries; `timeout` is null or readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn ppoll(
    fds: *mut ::libc::pollfd,
    n: ::libc::nfds_t,
    timeout: *const ::libc::timespec,
    _sigmask: *const ::libc::sigset_t,
) -> c_int {
    // SAFETY: the caller guarantees timeout is null or readable.
    match unsafe { super::epoll::timespec_deadline(timeout) } {
        // SAFETY: the same contract.
        Ok(deadline) => unsafe { poll_until(fds, n, deadline) },
        Err(e) => fail(e),
    }
}

/// The bits of descriptor `fd` in an `fd_set` (64 per word).
fn fd_bit(set: *const ::libc::fd_set, fd: usize) -> bool {
    // SAFETY: the callers pass fd_sets of FD_SETSIZE bits, and fd is below
    // it; an fd_set is an array of 64-bit words on x86_64.
    unsafe { set.cast::<u64>().add(fd / 64).read() & (1 << (fd % 64)) != 0 }
}

/// `select(n, readfds, writefds, exceptfds, timeout)`: [`poll`] over
/// bitmaps, as Linux's (a descriptor in a set that is not open is
/// `EBADF`; readable also at a hangup or error, writable also at an error;
/// the exceptional set is `POLLPRI`); the time left is written back to
/// `timeout`, as Linux does. Nothing std, mio or tokio runs calls it; C
/// code may.
///
/// # Safety
///
/// Each set is null or an `fd_set`, readable and writable; `timeout` is
/// null or a readable and writable `timeval`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn select(
    n: c_int,
    readfds: *mut ::libc::fd_set,
    writefds: *mut ::libc::fd_set,
    exceptfds: *mut ::libc::fd_set,
    timeout: *mut ::libc::timeval,
) -> c_int {
    let deadline = if timeout.is_null() {
        None
    } else {
        // SAFETY: the caller guarantees timeout is readable.
        let tv = unsafe { timeout.read() };
        let (Ok(s), Ok(us)) = (u64::try_from(tv.tv_sec), u32::try_from(tv.tv_usec)) else {
            return fail(::libc::EINVAL);
        };
        if us >= 1_000_000 {
            return fail(::libc::EINVAL);
        }
        let d = core::time::Duration::new(s, us * 1000);
        Some(libos::time::Instant::now() + d)
    };
    // SAFETY: the same contract.
    let r = unsafe { select_until(n, [readfds, writefds, exceptfds], deadline) };
    if let (Some(d), false) = (deadline, timeout.is_null()) {
        let left = d.duration_since(libos::time::Instant::now());
        let tv =
            ::libc::timeval { tv_sec: left.as_secs() as _, tv_usec: left.subsec_micros() as _ };
        // SAFETY: the caller guarantees timeout is writable.
        unsafe { timeout.write(tv) };
    }
    r
}

/// `pselect(n, readfds, writefds, exceptfds, timeout, sigmask)`:
/// [`select`] with a `timespec` that is left alone; the mask changes
/// nothing.
///
/// # Safety
///
/// As [`select`]; `timeout` is null or a readable `timespec`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pselect(
    n: c_int,
    readfds: *mut ::libc::fd_set,
    writefds: *mut ::libc::fd_set,
    exceptfds: *mut ::libc::fd_set,
    timeout: *const ::libc::timespec,
    _sigmask: *const ::libc::sigset_t,
) -> c_int {
    // SAFETY: the caller guarantees timeout is null or readable.
    match unsafe { super::epoll::timespec_deadline(timeout) } {
        // SAFETY: the same contract.
        Ok(d) => unsafe { select_until(n, [readfds, writefds, exceptfds], d) },
        Err(e) => fail(e),
    }
}

/// [`select`] until `deadline` (None: forever).
///
/// # Safety
///
/// Each set is null or a readable and writable `fd_set`.
unsafe fn select_until(
    n: c_int,
    sets: [*mut ::libc::fd_set; 3],
    deadline: Option<libos::time::Instant>,
) -> c_int {
    let Ok(n) = usize::try_from(n) else { return fail(::libc::EINVAL) };
    let n = n.min(::libc::FD_SETSIZE);
    let wanted: [Events; 3] = [
        ::libc::POLLIN | ::libc::POLLRDNORM | ::libc::POLLHUP | ::libc::POLLERR,
        ::libc::POLLOUT | ::libc::POLLWRNORM | ::libc::POLLERR,
        ::libc::POLLPRI,
    ];
    // What was asked: (fd, which sets); a closed descriptor is EBADF.
    let mut asked = Vec::new();
    for fd in 0..n {
        let mut which = [false; 3];
        for (k, set) in sets.iter().enumerate() {
            which[k] = !set.is_null() && fd_bit(*set, fd);
        }
        if which.iter().any(|&w| w) {
            if get(fd as c_int).is_err() {
                return fail(::libc::EBADF);
            }
            if asked.try_reserve(1).is_err() {
                return fail(::libc::ENOMEM);
            }
            asked.push((fd, which));
        }
    }
    super::thread::poll_devices_now();
    loop {
        let mut ready = Vec::new();
        for &(fd, which) in &asked {
            let now = get(fd as c_int)
                .map_or(::libc::POLLNVAL, |o| super::epoll::normalized(o.file.poll()));
            for k in 0..3 {
                if which[k] && now & wanted[k] != 0 {
                    ready.push((fd, k));
                }
            }
        }
        if !ready.is_empty() || deadline.is_some_and(|d| libos::time::Instant::now() >= d) {
            for set in sets.iter().filter(|s| !s.is_null()) {
                // SAFETY: the caller's contract: a writable fd_set.
                unsafe { set.write_bytes(0, 1) };
            }
            for &(fd, k) in &ready {
                // SAFETY: as above; fd is below FD_SETSIZE.
                unsafe { *sets[k].cast::<u64>().add(fd / 64) |= 1 << (fd % 64) };
            }
            return ready.len() as c_int;
        }
        super::thread::wait_for_events(deadline);
    }
}

/// [`poll`] until `deadline` (None: forever).
///
/// # Safety
///
/// `fds` holds `n` entries.
unsafe fn poll_until(
    fds: *mut ::libc::pollfd,
    n: ::libc::nfds_t,
    deadline: Option<libos::time::Instant>,
) -> c_int {
    let Ok(n) = usize::try_from(n) else { return fail(::libc::EINVAL) };
    if n > MAX_FDS {
        return fail(::libc::EINVAL);
    }
    if n > 0 && fds.is_null() {
        return fail(::libc::EFAULT);
    }
    // SAFETY: the caller guarantees n entries (none when n is 0).
    let fds = if n == 0 { &mut [][..] } else { unsafe { core::slice::from_raw_parts_mut(fds, n) } };
    super::thread::poll_devices_now();
    loop {
        let mut ready = 0;
        for p in fds.iter_mut() {
            p.revents = if p.fd < 0 {
                0
            } else {
                match get(p.fd) {
                    Ok(o) => {
                        let always = ::libc::POLLHUP | ::libc::POLLERR;
                        super::epoll::normalized(o.file.poll()) & (p.events | always)
                    }
                    Err(_) => ::libc::POLLNVAL,
                }
            };
            if p.revents != 0 {
                ready += 1;
            }
        }
        if ready > 0 || deadline.is_some_and(|d| libos::time::Instant::now() >= d) {
            return ready;
        }
        super::thread::wait_for_events(deadline);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Holds [`super::super::FD_TABLE_TESTS`]: the host tests that use the
    /// descriptor table take turns.
    pub fn serial() -> std::sync::MutexGuard<'static, ()> {
        super::super::FD_TABLE_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A stream that records each `write` it gets.
    struct Recorder(core::cell::RefCell<Vec<Vec<u8>>>);

    impl File for Recorder {
        fn write(&self, _open: &Open, buf: &[u8]) -> Res<usize> {
            self.0.borrow_mut().push(buf.to_vec());
            Ok(buf.len())
        }
        fn stat(&self) -> Res<::libc::stat64> {
            Err(::libc::EINVAL)
        }
        fn poll(&self) -> Events {
            0
        }
        fn as_any(&self) -> &dyn core::any::Any {
            self
        }
    }

    #[test]
    fn writev_gathers_small_vectors_into_one_write() {
        let _table = serial();
        let rec = Rc::new(Recorder(core::cell::RefCell::new(Vec::new())));
        let fd = install(new_open(rec.clone(), ::libc::O_WRONLY), false, 0).unwrap();
        let iov = |parts: &[&[u8]]| -> Vec<::libc::iovec> {
            parts
                .iter()
                .map(|p| ::libc::iovec { iov_base: p.as_ptr().cast_mut().cast(), iov_len: p.len() })
                .collect()
        };
        // A response's head and body: one write, as Linux sends one segment.
        let small = iov(&[b"HTTP/1.1 200 OK\r\n\r\n", b"{}", b""]);
        // SAFETY: the entries point at live slices of their lengths.
        assert_eq!(unsafe { writev(fd, small.as_ptr(), 3) }, 21);
        assert_eq!(*rec.0.borrow(), [b"HTTP/1.1 200 OK\r\n\r\n{}".to_vec()]);
        // Beyond GATHER bytes: one write per buffer.
        rec.0.borrow_mut().clear();
        let big = alloc::vec![7u8; GATHER];
        let large = iov(&[b"head", &big]);
        // SAFETY: as above.
        assert_eq!(unsafe { writev(fd, large.as_ptr(), 2) }, (GATHER + 4) as isize);
        assert_eq!(rec.0.borrow().len(), 2);
        // A closed descriptor: EBADF, as for one buffer.
        assert_eq!(close(fd), 0);
        // SAFETY: as above.
        assert_eq!(unsafe { writev(fd, small.as_ptr(), 3) }, -1);
        assert_eq!(super::super::errno(), ::libc::EBADF);
    }

    #[test]
    fn descriptors_follow_linux_rules() {
        let _table = super::super::FD_TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        // The console is there from the start.
        assert_eq!(fcntl(1, ::libc::F_GETFL, 0), ::libc::O_WRONLY);
        let mut b = [0u8; 4];
        // SAFETY: b is writable for 4 bytes.
        assert_eq!(unsafe { read(0, b.as_mut_ptr().cast(), 4) }, 0);
        // The lowest free number, shared descriptions, CLOEXEC per fd.
        let a = dup(1);
        assert_eq!(a, 3);
        assert_eq!(fcntl(a, ::libc::F_DUPFD_CLOEXEC, 10), 10);
        assert_eq!(fcntl(10, ::libc::F_GETFD, 0), ::libc::FD_CLOEXEC);
        assert_eq!(fcntl(a, ::libc::F_SETFL, ::libc::O_NONBLOCK as usize), 0);
        assert_eq!(fcntl(10, ::libc::F_GETFL, 0), ::libc::O_WRONLY | ::libc::O_NONBLOCK);
        assert_eq!(close(a), 0);
        assert_eq!(close(a), -1);
        assert_eq!(super::super::errno(), ::libc::EBADF);
        assert_eq!(dup2(10, 5), 5);
        assert_eq!(close(10), 0);
        assert_eq!(close(5), 0);
        assert_eq!(isatty(1), 0);
        assert_eq!(lseek64(1, 0, ::libc::SEEK_CUR), -1);
        assert_eq!(super::super::errno(), ::libc::ESPIPE);
        let mut p = [
            ::libc::pollfd { fd: 0, events: ::libc::POLLIN, revents: 0 },
            ::libc::pollfd { fd: 77, events: ::libc::POLLIN, revents: 0 },
        ];
        // SAFETY: p holds two entries.
        assert_eq!(unsafe { poll(p.as_mut_ptr(), 2, 0) }, 2);
        assert_eq!(p[1].revents, ::libc::POLLNVAL);
    }

    #[test]
    fn select_reports_bitmaps_as_linux() {
        let _g = serial();
        let [r, w] = super::super::pipe::new_pipe(::libc::O_NONBLOCK).unwrap();
        // SAFETY: fd_set is plain data.
        let empty: ::libc::fd_set = unsafe { core::mem::zeroed() };
        let (mut rs, mut ws) = (empty, empty);
        // SAFETY: the sets are valid; r and w are below FD_SETSIZE.
        unsafe {
            ::libc::FD_SET(r, &mut rs);
            ::libc::FD_SET(w, &mut ws);
        }
        let mut tv = ::libc::timeval { tv_sec: 0, tv_usec: 0 };
        let nfds = r.max(w) + 1;
        // SAFETY: valid sets and timeval.
        let n = unsafe { select(nfds, &mut rs, &mut ws, core::ptr::null_mut(), &mut tv) };
        // SAFETY: reading the sets.
        let (rr, ww) = unsafe { (::libc::FD_ISSET(r, &rs), ::libc::FD_ISSET(w, &ws)) };
        assert_eq!((n, rr, ww), (1, false, true));
        assert_eq!(close(w), 0);
        let mut rs = empty;
        // SAFETY: as above.
        unsafe { ::libc::FD_SET(r, &mut rs) };
        // SAFETY: as above.
        let n =
            unsafe { select(nfds, &mut rs, core::ptr::null_mut(), core::ptr::null_mut(), &mut tv) };
        // SAFETY: reading the set.
        assert_eq!((n, unsafe { ::libc::FD_ISSET(r, &rs) }), (1, true), "a hangup is readable");
        // A closed descriptor in a set is EBADF.
        let mut bad = empty;
        // SAFETY: as above.
        unsafe { ::libc::FD_SET(w, &mut bad) };
        // SAFETY: as above.
        let n = unsafe {
            select(nfds, &mut bad, core::ptr::null_mut(), core::ptr::null_mut(), &mut tv)
        };
        assert_eq!((n, super::super::errno()), (-1, ::libc::EBADF));
        let mut neg = ::libc::timeval { tv_sec: -1, tv_usec: 0 };
        // SAFETY: no sets; neg is valid.
        let n = unsafe {
            select(0, core::ptr::null_mut(), core::ptr::null_mut(), core::ptr::null_mut(), &mut neg)
        };
        assert_eq!((n, super::super::errno()), (-1, ::libc::EINVAL));
        assert_eq!(close(r), 0);
    }

    #[test]
    fn poll_reports_hangups_unasked_and_normal_data_bits() {
        let _g = serial();
        let [r, w] = super::super::pipe::new_pipe(::libc::O_NONBLOCK).unwrap();
        let mut p = [
            ::libc::pollfd { fd: r, events: ::libc::POLLIN | ::libc::POLLRDNORM, revents: 0 },
            ::libc::pollfd { fd: w, events: ::libc::POLLOUT, revents: 0 },
            ::libc::pollfd { fd: -1, events: ::libc::POLLIN, revents: 7 },
        ];
        // SAFETY: p holds three entries.
        assert_eq!(unsafe { poll(p.as_mut_ptr(), 3, 0) }, 1);
        assert_eq!((p[0].revents, p[1].revents, p[2].revents), (0, ::libc::POLLOUT, 0));
        // SAFETY: one readable byte.
        assert_eq!(unsafe { write(w, b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(close(w), 0);
        // SAFETY: p holds at least the one entry asked about.
        assert_eq!(unsafe { poll(p.as_mut_ptr(), 1, 0) }, 1);
        let rd = ::libc::POLLIN | ::libc::POLLRDNORM;
        assert_eq!(p[0].revents, rd | ::libc::POLLHUP, "POLLHUP unasked");
        let ts = ::libc::timespec { tv_sec: 0, tv_nsec: 2_000_000_000 };
        // SAFETY: p holds one entry; ts is readable.
        assert_eq!(unsafe { ppoll(p.as_mut_ptr(), 1, &ts, core::ptr::null()) }, -1);
        assert_eq!(super::super::errno(), ::libc::EINVAL);
        assert_eq!(close(r), 0);
    }
}
