//! File locks: `fcntl`'s record locks (`F_GETLK`, `F_SETLK`, `F_SETLKW`;
//! glibc's `fcntl64` names are the same numbers on x86_64), open file
//! description locks (`F_OFD_GETLK`, `F_OFD_SETLK`, `F_OFD_SETLKW`),
//! `flock` and `lockf`, with Linux's semantics for a process alone with
//! its files.
//!
//! A guest is one process, and the tender holds its disks against every
//! other writer (docs/storage.md), so only the guest's own locks exist.
//! Who conflicts with whom is then Linux's rule:
//!
//! * **POSIX record locks belong to the process**, and a process's own
//!   record locks never conflict: a new one replaces, splits or merges
//!   what the process held on the range. So `F_SETLK` never finds one of
//!   them in the way, and `F_GETLK` reports none. They are still recorded:
//!   an OFD lock conflicts with them. Closing *any* descriptor of a file
//!   releases the process's record locks on it (POSIX's rule, Linux's).
//! * **OFD locks belong to an open file description** (`open`, not
//!   `dup`): two descriptions of one file conflict, in one process too,
//!   and an OFD lock conflicts with the process's record locks. They go
//!   when the description's last descriptor closes. `l_pid` must be 0.
//! * **`flock` locks belong to a description too**, whole-file, and do not
//!   interact with record or OFD locks (as on Linux). A lock converts in
//!   place (Linux drops the old one first; either is allowed).
//!
//! A request in the way of another owner's lock fails with `EAGAIN`
//! (`F_SETLK`, `F_OFD_SETLK`; `EWOULDBLOCK` for `flock(LOCK_NB)`), or
//! waits (`F_SETLKW`, `F_OFD_SETLKW`, blocking `flock`): the thread parks
//! until a lock is released, as on Linux; when every thread waits so,
//! nothing can release it and the guest reports the deadlock (docs/std.md,
//! "Threads"). `F_GETLK` describes the lock in the way (`l_pid` 1, the
//! guest, for a record lock; -1 for an OFD lock), or sets `l_type` to
//! `F_UNLCK`.
//!
//! The request is checked as Linux checks it, in its order: the pointer
//! (`EFAULT`); `l_whence` and the range (`EINVAL` for a start before the
//! file's beginning, `EOVERFLOW` past the largest offset) and the type
//! (`EINVAL`; `F_UNLCK` is no query), the type first for a query; the
//! access mode (`EBADF`: a read lock needs a descriptor open for reading,
//! a write lock one open for writing); `l_pid` for the OFD commands
//! (`EINVAL` unless 0).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use super::super::{c_int, fail};
use crate::libc::fd::{self, Open, Res};
use crate::libc::start::Lock;

/// Who holds a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The process's record locks (`F_SETLK`).
    Process,
    /// The record locks of the description with this number (`F_OFD_SETLK`).
    Ofd(usize),
    /// The `flock` of the description with this number.
    Flock(usize),
}

impl Owner {
    /// `flock` locks and record locks never meet.
    fn family(self) -> bool {
        matches!(self, Owner::Flock(_))
    }
}

/// A lock held on bytes `[start, end]` of the file `file` (device,
/// inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub file: (u64, u64),
    pub owner: Owner,
    pub start: u64,
    pub end: u64,
    pub write: bool,
}

/// The locks held.
#[derive(Debug, Default)]
pub struct Table {
    held: Vec<Held>,
}

impl Table {
    pub const fn new() -> Self {
        Self { held: Vec::new() }
    }

    /// Another owner's lock that a lock of `owner` on `[start, end]`
    /// (`write` or read) would conflict with.
    pub fn conflict(&self, want: Held) -> Option<Held> {
        self.held
            .iter()
            .find(|h| {
                h.file == want.file
                    && h.owner != want.owner
                    && h.owner.family() == want.owner.family()
                    && h.start <= want.end
                    && want.start <= h.end
                    && (h.write || want.write)
                    // The process's record locks never conflict with each
                    // other (there is one process).
                    && !(h.owner == Owner::Process && want.owner == Owner::Process)
            })
            .copied()
    }

    /// Sets what `owner` holds on `[start, end]` of `file` to `kind`
    /// (`Some(write)`, or `None` to unlock): the owner's locks there are
    /// cut away first, then the new one merged with its neighbours of the
    /// same type, as Linux merges record locks.
    pub fn set(
        &mut self,
        file: (u64, u64),
        owner: Owner,
        start: u64,
        end: u64,
        kind: Option<bool>,
    ) {
        let mut out = Vec::with_capacity(self.held.len() + 2);
        for h in self.held.drain(..) {
            if h.file != file || h.owner != owner || h.end < start || end < h.start {
                out.push(h);
                continue;
            }
            if h.start < start {
                out.push(Held { end: start - 1, ..h });
            }
            if end < h.end {
                out.push(Held { start: end + 1, ..h });
            }
        }
        if let Some(write) = kind {
            let mut new = Held { file, owner, start, end, write };
            out.retain(|h| {
                let same = h.file == file && h.owner == owner && h.write == write;
                let touches = h.end.checked_add(1) == Some(new.start)
                    || new.end.checked_add(1) == Some(h.start);
                if same && touches {
                    new.start = new.start.min(h.start);
                    new.end = new.end.max(h.end);
                    return false;
                }
                true
            });
            out.push(new);
        }
        self.held = out;
    }

    /// Drops the locks `gone` selects; whether any went.
    pub fn release(&mut self, gone: impl Fn(&Held) -> bool) -> bool {
        let before = self.held.len();
        self.held.retain(|h| !gone(h));
        self.held.len() != before
    }

    /// What `owner` holds, in order.
    #[cfg(test)]
    fn of(&self, owner: Owner) -> Vec<(u64, u64, bool)> {
        let mut v: Vec<_> = self
            .held
            .iter()
            .filter(|h| h.owner == owner)
            .map(|h| (h.start, h.end, h.write))
            .collect();
        v.sort_unstable();
        v
    }
}

static TABLE: Lock<Table> = Lock::new(Table::new());

/// Bumped whenever locks are released, for the threads waiting: the word
/// of their futex wait.
static RELEASED: AtomicU32 = AtomicU32::new(0);

/// Wakes the threads waiting for a lock: something was released.
fn released() {
    RELEASED.fetch_add(1, Ordering::Relaxed);
    let word = RELEASED.as_ptr().cast_const();
    // SAFETY: a wake only compares the address of a live u32.
    let _ = unsafe {
        crate::libc::thread::futex::guest::futex(
            word,
            ::libc::FUTEX_WAKE | ::libc::FUTEX_PRIVATE_FLAG,
            i32::MAX as u32,
            core::ptr::null(),
            0,
        )
    };
}

/// Waits until a lock is released after `seen` was read from
/// [`RELEASED`].
fn wait_for_release(seen: u32) {
    // SAFETY: RELEASED is a live, aligned u32; no timeout.
    let _ = unsafe {
        crate::libc::thread::futex::guest::futex(
            RELEASED.as_ptr().cast_const(),
            ::libc::FUTEX_WAIT | ::libc::FUTEX_PRIVATE_FLAG,
            seen,
            core::ptr::null(),
            0,
        )
    };
}

/// Takes (or changes, or drops: `kind` `None`) the lock `want` describes,
/// waiting while another owner's is in the way if `wait`, else `EAGAIN`.
fn acquire(want: Held, kind: Option<bool>, wait: bool) -> Res<()> {
    loop {
        let seen = RELEASED.load(Ordering::Relaxed);
        let done = TABLE.with(|t| {
            if kind.is_some() && t.conflict(want).is_some() {
                return false;
            }
            t.set(want.file, want.owner, want.start, want.end, kind);
            true
        });
        if done {
            // An unlock, or a write lock turned to read, may free others.
            released();
            return Ok(());
        }
        if !wait {
            return Err(::libc::EAGAIN);
        }
        wait_for_release(seen);
    }
}

/// The file a description is on, as locks name it (device, inode).
fn file_of(open: &Open) -> Res<(u64, u64)> {
    let st = open.file.stat()?;
    Ok((st.st_dev, st.st_ino))
}

/// The owner id of a description.
fn id(open: &Open) -> usize {
    open.id()
}

/// A descriptor of `open` is being closed: the process's record locks on
/// its file go (POSIX's rule: any descriptor of the file).
pub fn closing(open: &Open) {
    if TABLE.with(|t| !t.held.iter().any(|h| h.owner == Owner::Process)) {
        return;
    }
    let Ok(file) = file_of(open) else { return };
    if TABLE.with(|t| t.release(|h| h.owner == Owner::Process && h.file == file)) {
        released();
    }
}

/// The description `open` is gone (its last descriptor closed): its OFD
/// and `flock` locks go.
pub fn gone(open: &Open) {
    let me = id(open);
    if TABLE.with(|t| t.release(|h| h.owner == Owner::Ofd(me) || h.owner == Owner::Flock(me))) {
        released();
    }
}

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

/// Checks a request of type `l_type` (`F_GETLK` when `get`) on a
/// description with access mode `mode` (`O_RDONLY`, ...), its range
/// already computed: `Ok` with what to hold (`Some(write)`, `None` to
/// unlock), or the error Linux gives, in its order: a query checks the
/// type, then the range (`fcntl_getlk`); a lock the range, the type, then
/// the access mode (`fcntl_setlk`).
pub fn decide(get: bool, l_type: i16, mode: c_int, range: Res<(i64, i64)>) -> Res<Option<bool>> {
    let kind = match c_int::from(l_type) {
        ::libc::F_RDLCK => Ok(Some(false)),
        ::libc::F_WRLCK => Ok(Some(true)),
        ::libc::F_UNLCK if !get => Ok(None),
        _ => Err(::libc::EINVAL),
    };
    if get {
        let kind = kind?;
        range?;
        return Ok(kind);
    }
    range?;
    let kind = kind?;
    let mode = mode & ::libc::O_ACCMODE;
    if kind == Some(false) && mode == ::libc::O_WRONLY
        || kind == Some(true) && mode == ::libc::O_RDONLY
    {
        return Err(::libc::EBADF);
    }
    Ok(kind)
}

/// `fcntl(fd, cmd, lock)` for the lock commands, for the descriptor
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
    let ofd = matches!(cmd, ::libc::F_OFD_GETLK | ::libc::F_OFD_SETLK | ::libc::F_OFD_SETLKW);
    let get = matches!(cmd, ::libc::F_GETLK | ::libc::F_OFD_GETLK);
    let wait = matches!(cmd, ::libc::F_SETLKW | ::libc::F_OFD_SETLKW);
    let r = (|| {
        let r = base(open, l.l_whence).and_then(|b| range(b, l.l_start, l.l_len));
        let kind = decide(get, l.l_type, open.flags.get(), r)?;
        let (start, end) = r?;
        // An OFD lock has no process to name.
        if ofd && l.l_pid != 0 {
            return Err(::libc::EINVAL);
        }
        let owner = if ofd { Owner::Ofd(id(open)) } else { Owner::Process };
        let file = file_of(open)?;
        let want =
            Held { file, owner, start: start as u64, end: end as u64, write: kind == Some(true) };
        if !get {
            return acquire(want, kind, wait);
        }
        match TABLE.with(|t| t.conflict(want)) {
            None => l.l_type = ::libc::F_UNLCK as i16,
            Some(h) => {
                l.l_type = if h.write { ::libc::F_WRLCK } else { ::libc::F_RDLCK } as i16;
                l.l_whence = ::libc::SEEK_SET as i16;
                l.l_start = h.start as i64;
                l.l_len = if h.end == i64::MAX as u64 { 0 } else { (h.end - h.start + 1) as i64 };
                l.l_pid =
                    if h.owner == Owner::Process { crate::libc::process::getpid() } else { -1 };
            }
        }
        Ok(())
    })();
    fd::ret_int(r.map(|()| 0))
}

/// `flock(fd, op)`: `LOCK_SH`, `LOCK_EX` (either with `LOCK_NB`: then
/// `EWOULDBLOCK` instead of waiting) and `LOCK_UN`, on the whole file, for
/// the description; `EINVAL` for another operation.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn flock(fd: c_int, op: c_int) -> c_int {
    let r = fd::get(fd).and_then(|open| {
        let kind = match op & !::libc::LOCK_NB {
            ::libc::LOCK_SH => Some(false),
            ::libc::LOCK_EX => Some(true),
            ::libc::LOCK_UN => None,
            _ => return Err(::libc::EINVAL),
        };
        let file = file_of(&open)?;
        let want = Held {
            file,
            owner: Owner::Flock(id(&open)),
            start: 0,
            end: u64::MAX,
            write: kind == Some(true),
        };
        acquire(want, kind, op & ::libc::LOCK_NB == 0)
    });
    fd::ret_int(r.map(|()| 0))
}

/// `lockf(fd, cmd, len)`: glibc's wrapper over `fcntl`'s record locks
/// on `len` bytes from the current offset (0: to the end, negative: the
/// bytes before): `F_LOCK` (waits), `F_TLOCK` (`EAGAIN`), write locks
/// both, so `EBADF` on a descriptor not open for writing; `F_ULOCK`;
/// `F_TEST` (0, or `EACCES` when another owner's lock is in the way).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn lockf(fd: c_int, cmd: c_int, len: i64) -> c_int {
    let open = match fd::get(fd) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let (fcmd, kind) = match cmd {
        ::libc::F_LOCK => (::libc::F_SETLKW, ::libc::F_WRLCK),
        ::libc::F_TLOCK => (::libc::F_SETLK, ::libc::F_WRLCK),
        ::libc::F_ULOCK => (::libc::F_SETLK, ::libc::F_UNLCK),
        ::libc::F_TEST => (::libc::F_GETLK, ::libc::F_RDLCK),
        _ => return fail(::libc::EINVAL),
    };
    // SAFETY: flock64 is plain data; all zeroes is a valid value.
    let mut l: ::libc::flock64 = unsafe { core::mem::zeroed() };
    l.l_type = kind as i16;
    l.l_whence = ::libc::SEEK_CUR as i16;
    l.l_len = len;
    // SAFETY: l is a live, writable flock64.
    let r = unsafe { fcntl_lock(&open, fcmd, &raw mut l) };
    if r != 0 || cmd != ::libc::F_TEST {
        return r;
    }
    // glibc: only another process's lock is in the way of F_TEST.
    if c_int::from(l.l_type) == ::libc::F_UNLCK || l.l_pid == crate::libc::process::getpid() {
        0
    } else {
        fail(::libc::EACCES)
    }
}

/// glibc's `lockf64`, the same call.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn lockf64(fd: c_int, cmd: c_int, len: i64) -> c_int {
    lockf(fd, cmd, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: (u64, u64) = (1, 7);
    const MAX: u64 = i64::MAX as u64;

    fn held(owner: Owner, start: u64, end: u64, write: bool) -> Held {
        Held { file: F, owner, start, end, write }
    }

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
    fn requests_are_checked_as_on_linux_in_its_order() {
        let (rd, wr, un) = (::libc::F_RDLCK as i16, ::libc::F_WRLCK as i16, ::libc::F_UNLCK as i16);
        let ok = Ok((0, 9));
        assert_eq!(decide(false, rd, ::libc::O_RDWR, ok), Ok(Some(false)));
        assert_eq!(decide(false, wr, ::libc::O_WRONLY | ::libc::O_APPEND, ok), Ok(Some(true)));
        assert_eq!(decide(false, un, ::libc::O_RDONLY, ok), Ok(None));
        assert_eq!(decide(true, wr, ::libc::O_RDONLY, ok), Ok(Some(true)));
        // The access mode must allow the lock's type (not for a query).
        assert_eq!(decide(false, wr, ::libc::O_RDONLY, ok), Err(::libc::EBADF));
        assert_eq!(decide(false, rd, ::libc::O_WRONLY, ok), Err(::libc::EBADF));
        // A lock: the range, then the type, then the access mode.
        assert_eq!(
            decide(false, wr, ::libc::O_RDONLY, Err(::libc::EOVERFLOW)),
            Err(::libc::EOVERFLOW)
        );
        assert_eq!(
            decide(false, 7, ::libc::O_RDONLY, Err(::libc::EOVERFLOW)),
            Err(::libc::EOVERFLOW)
        );
        assert_eq!(decide(false, 7, ::libc::O_RDONLY, ok), Err(::libc::EINVAL));
        // A query: the type first; it does not take F_UNLCK.
        assert_eq!(decide(true, 7, ::libc::O_RDWR, Err(::libc::EOVERFLOW)), Err(::libc::EINVAL));
        assert_eq!(decide(true, un, ::libc::O_RDWR, ok), Err(::libc::EINVAL));
        assert_eq!(
            decide(true, rd, ::libc::O_RDWR, Err(::libc::EOVERFLOW)),
            Err(::libc::EOVERFLOW)
        );
    }

    #[test]
    fn the_process_never_conflicts_with_itself_and_its_locks_split_and_merge() {
        let mut t = Table::new();
        let p = Owner::Process;
        t.set(F, p, 0, 99, Some(true));
        // Its own write lock is no obstacle to anything of its own.
        assert_eq!(t.conflict(held(p, 0, MAX, true)), None);
        // A read lock in the middle splits the write lock.
        t.set(F, p, 40, 59, Some(false));
        assert_eq!(t.of(p), [(0, 39, true), (40, 59, false), (60, 99, true)]);
        // Unlocking part of it cuts; a write lock over the gap merges back.
        t.set(F, p, 50, 69, None);
        assert_eq!(t.of(p), [(0, 39, true), (40, 49, false), (70, 99, true)]);
        t.set(F, p, 40, 69, Some(true));
        assert_eq!(t.of(p), [(0, 99, true)]);
        // To the end of the file.
        t.set(F, p, 100, MAX, Some(true));
        assert_eq!(t.of(p), [(0, MAX, true)]);
        t.set(F, p, 0, MAX, None);
        assert_eq!(t.of(p), []);
    }

    #[test]
    fn descriptions_conflict_with_each_other_and_with_the_process() {
        let mut t = Table::new();
        let (a, b, p) = (Owner::Ofd(1), Owner::Ofd(2), Owner::Process);
        t.set(F, a, 10, 19, Some(false));
        // Readers share; a writer over any byte of it conflicts.
        assert_eq!(t.conflict(held(b, 0, 10, false)), None);
        assert_eq!(t.conflict(held(b, 19, 30, true)), Some(held(a, 10, 19, false)));
        assert_eq!(t.conflict(held(p, 15, 15, true)), Some(held(a, 10, 19, false)));
        assert_eq!(t.conflict(held(b, 20, 30, true)), None);
        // Its own description is no obstacle.
        assert_eq!(t.conflict(held(a, 0, MAX, true)), None);
        // The process's record lock stops another description's.
        t.set(F, p, 100, 100, Some(false));
        assert_eq!(t.conflict(held(b, 100, 200, true)), Some(held(p, 100, 100, false)));
        // Another file is another matter.
        assert_eq!(t.conflict(Held { file: (1, 8), ..held(b, 0, MAX, true) }), None);
        // flock and record locks never meet; two descriptions' flocks do.
        let (fa, fb) = (Owner::Flock(1), Owner::Flock(2));
        assert_eq!(t.conflict(held(fa, 0, u64::MAX, true)), None);
        t.set(F, fa, 0, u64::MAX, Some(false));
        assert_eq!(t.conflict(held(fb, 0, u64::MAX, false)), None);
        assert_eq!(t.conflict(held(fb, 0, u64::MAX, true)), Some(held(fa, 0, u64::MAX, false)));
        // A description gone takes its locks along, not the others'.
        assert!(t.release(|h| h.owner == a || h.owner == fa));
        assert_eq!(t.conflict(held(b, 10, 19, true)), None);
        assert_eq!(t.of(p), [(100, 100, false)]);
        assert!(!t.release(|h| h.owner == a));
    }
}
