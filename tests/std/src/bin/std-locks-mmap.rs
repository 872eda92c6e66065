//! File locks and files mapped into memory, call by call, as databases use
//! them (SQLite: record locks and a shared mapping of its `-shm` file;
//! redb: OFD locks): each call's result printed, on the disk `storage`
//! under the tender, and natively on Linux in a host directory (the same
//! source compiled with `rustc --cfg native`): tests/suite/std_db.rs
//! compares the two outputs line by line.
//!
//! `std-locks-mmap [DIR]` (`/` by default): works on `DIR/locks.bin` and
//! `DIR/mapped.bin`. Each line is `NAME=RESULT`, or `NAME=errnoN`.

use std::ffi::{CString, c_int, c_void};

#[cfg(not(native))]
libos_std::app!(devices: ["storage": Block]);

/// x86_64 Linux's `struct flock` (glibc's `flock64`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Flock {
    l_type: i16,
    l_whence: i16,
    l_start: i64,
    l_len: i64,
    l_pid: i32,
}

const O_RDONLY: c_int = 0;
const O_WRONLY: c_int = 1;
const O_RDWR: c_int = 2;
const O_CREAT: c_int = 0o100;
const O_TRUNC: c_int = 0o1000;
const O_DIRECTORY: c_int = 0o200000;
const F_GETLK: c_int = 5;
const F_SETLK: c_int = 6;
const F_OFD_GETLK: c_int = 36;
const F_OFD_SETLK: c_int = 37;
const F_RDLCK: i16 = 0;
const F_WRLCK: i16 = 1;
const F_UNLCK: i16 = 2;
const LOCK_SH: c_int = 1;
const LOCK_EX: c_int = 2;
const LOCK_NB: c_int = 4;
const LOCK_UN: c_int = 8;
const F_TLOCK: c_int = 2;
const F_TEST: c_int = 3;
const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_SHARED: c_int = 1;
const MAP_PRIVATE: c_int = 2;
const MS_ASYNC: c_int = 1;
const MS_SYNC: c_int = 4;
const MADV_DONTNEED: c_int = 4;

unsafe extern "C" {
    fn open(path: *const std::ffi::c_char, flags: c_int, ...) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn dup(fd: c_int) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    fn flock(fd: c_int, op: c_int) -> c_int;
    fn lockf(fd: c_int, cmd: c_int, len: i64) -> c_int;
    fn pread(fd: c_int, buf: *mut c_void, n: usize, offset: i64) -> isize;
    fn pwrite(fd: c_int, buf: *const c_void, n: usize, offset: i64) -> isize;
    fn ftruncate(fd: c_int, len: i64) -> c_int;
    fn fsync(fd: c_int) -> c_int;
    fn mmap(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        off: i64,
    ) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn msync(addr: *mut c_void, len: usize, flags: c_int) -> c_int;
    fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
    fn getpid() -> c_int;
}

/// The result of a call: its value, or `errnoN`.
fn res(r: i64) -> String {
    if r < 0 {
        format!("errno{}", std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        r.to_string()
    }
}

fn show(name: &str, r: i64) {
    println!("{name}={}", res(r));
}

fn lock(ty: i16, start: i64, len: i64) -> Flock {
    Flock { l_type: ty, l_whence: 0, l_start: start, l_len: len, l_pid: 0 }
}

/// `fcntl(fd, cmd, &l)`, showing the result and, for a query, what it
/// found (the pid as `self` or `-1`).
fn fl(name: &str, fd: c_int, cmd: c_int, mut l: Flock) {
    // SAFETY: l is a live struct flock.
    let r = unsafe { fcntl(fd, cmd, &raw mut l) };
    if r < 0 || (cmd != F_GETLK && cmd != F_OFD_GETLK) {
        return show(name, i64::from(r));
    }
    // SAFETY: getpid has no preconditions.
    let me = unsafe { getpid() };
    let pid = if l.l_pid == me { "self".to_string() } else { l.l_pid.to_string() };
    if l.l_type == F_UNLCK {
        println!("{name}=unlocked");
    } else {
        println!("{name}=type{} start{} len{} pid{pid}", l.l_type, l.l_start, l.l_len);
    }
}

fn path(dir: &str, name: &str) -> CString {
    CString::new(format!("{}/{name}", dir.trim_end_matches('/'))).unwrap()
}

fn locks(dir: &str) {
    let p = path(dir, "locks.bin");
    // SAFETY: every pointer is a NUL-terminated string or a live buffer;
    // the descriptors are this function's own.
    unsafe {
        let a = open(p.as_ptr(), O_RDWR | O_CREAT | O_TRUNC, 0o644);
        let b = open(p.as_ptr(), O_RDWR);
        let r = open(p.as_ptr(), O_RDONLY);
        let w = open(p.as_ptr(), O_WRONLY);
        show("open", i64::from(a.min(b).min(r).min(w).min(0)));
        pwrite(a, b"0123456789".as_ptr().cast(), 10, 0);
        // Record locks: the process's own never conflict.
        fl("setlk-wr-a", a, F_SETLK, lock(F_WRLCK, 0, 10));
        fl("setlk-wr-b", b, F_SETLK, lock(F_WRLCK, 0, 10));
        fl("getlk-b", b, F_GETLK, lock(F_WRLCK, 0, 0));
        fl("setlk-rd-r", r, F_SETLK, lock(F_RDLCK, 5, 100));
        fl("setlk-wr-r", r, F_SETLK, lock(F_WRLCK, 0, 1));
        fl("setlk-rd-w", w, F_SETLK, lock(F_RDLCK, 0, 1));
        fl("setlk-un-r", r, F_SETLK, lock(F_UNLCK, 0, 0));
        fl("setlk-type", a, F_SETLK, lock(7, 0, 1));
        fl("getlk-unlck", a, F_GETLK, lock(F_UNLCK, 0, 1));
        fl("setlk-whence", a, F_SETLK, Flock { l_whence: 9, ..lock(F_WRLCK, 0, 1) });
        fl("setlk-negative", a, F_SETLK, lock(F_WRLCK, -1, 1));
        fl("setlk-before", a, F_SETLK, lock(F_WRLCK, 5, -6));
        fl("setlk-end", a, F_SETLK, Flock { l_whence: 2, ..lock(F_WRLCK, -2, 2) });
        fl("setlk-overflow", a, F_SETLK, lock(F_WRLCK, i64::MAX, 2));
        show("setlk-null", i64::from(fcntl(a, F_SETLK, std::ptr::null_mut::<Flock>())));
        // OFD locks conflict with the process's record locks...
        fl("ofd-wr-a", a, F_OFD_SETLK, lock(F_WRLCK, 0, 10));
        fl("ofd-getlk-a", a, F_OFD_GETLK, lock(F_WRLCK, 0, 10));
        fl("setlk-un-a", a, F_SETLK, lock(F_UNLCK, 0, 0));
        // ... and with other descriptions' OFD locks, not their own.
        fl("ofd-wr-a", a, F_OFD_SETLK, lock(F_WRLCK, 0, 10));
        fl("ofd-wr-a-again", a, F_OFD_SETLK, lock(F_WRLCK, 2, 3));
        fl("ofd-rd-b", b, F_OFD_SETLK, lock(F_RDLCK, 5, 1));
        fl("ofd-rd-b-after", b, F_OFD_SETLK, lock(F_RDLCK, 10, 5));
        fl("ofd-getlk-b", b, F_OFD_GETLK, lock(F_RDLCK, 0, 0));
        fl("getlk-b", b, F_GETLK, lock(F_RDLCK, 9, 1));
        fl("setlk-rd-b", b, F_SETLK, lock(F_RDLCK, 3, 1));
        fl("ofd-pid", a, F_OFD_SETLK, Flock { l_pid: 5, ..lock(F_WRLCK, 0, 1) });
        // A descriptor dup'ed and closed leaves the description's locks.
        let d = dup(a);
        show("close-dup", i64::from(close(d)));
        fl("ofd-wr-b", b, F_OFD_SETLK, lock(F_WRLCK, 0, 1));
        // Closing the description's last descriptor drops them.
        show("close-a", i64::from(close(a)));
        fl("ofd-wr-b", b, F_OFD_SETLK, lock(F_WRLCK, 0, 1));
        fl("ofd-un-b", b, F_OFD_SETLK, lock(F_UNLCK, 0, 0));
        // Closing any descriptor of the file drops the record locks.
        fl("setlk-wr-b", b, F_SETLK, lock(F_WRLCK, 100, 10));
        fl("ofd-getlk-w", w, F_OFD_GETLK, lock(F_WRLCK, 100, 1));
        show("close-r", i64::from(close(r)));
        fl("ofd-getlk-w", w, F_OFD_GETLK, lock(F_WRLCK, 100, 1));
        // lockf.
        show("lockf-tlock", i64::from(lockf(b, F_TLOCK, 10)));
        show("lockf-test", i64::from(lockf(w, F_TEST, 0)));
        show("lockf-bad", i64::from(lockf(b, 99, 0)));
        fl("ofd-getlk-w", w, F_OFD_GETLK, lock(F_WRLCK, 0, 0));
        // flock: per description, apart from record locks.
        let c = open(p.as_ptr(), O_RDONLY);
        show("flock-sh-b", i64::from(flock(b, LOCK_SH | LOCK_NB)));
        show("flock-sh-c", i64::from(flock(c, LOCK_SH | LOCK_NB)));
        show("flock-ex-c", i64::from(flock(c, LOCK_EX | LOCK_NB)));
        show("flock-un-b", i64::from(flock(b, LOCK_UN)));
        show("flock-ex-c", i64::from(flock(c, LOCK_EX | LOCK_NB)));
        show("flock-ex-w", i64::from(flock(w, LOCK_EX | LOCK_NB)));
        show("flock-bad", i64::from(flock(c, 0)));
        fl("ofd-wr-w", w, F_OFD_SETLK, lock(F_WRLCK, 0, 0));
        show("close-c", i64::from(close(c)));
        show("flock-ex-w", i64::from(flock(w, LOCK_EX | LOCK_NB)));
        show("flock-bad-fd", i64::from(flock(-1, LOCK_SH)));
        for fd in [b, w] {
            close(fd);
        }
    }
}

fn byte(p: *const u8, at: usize) -> u8 {
    // SAFETY: callers read inside a live mapping.
    unsafe { *p.add(at) }
}

fn maps(dir: &str) {
    let p = path(dir, "mapped.bin");
    let text: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let failed = |m: *mut c_void| m as isize == -1;
    let shown = |name: &str, m: *mut c_void| show(name, if failed(m) { -1 } else { 0 });
    // SAFETY: every pointer is a NUL-terminated string, a live buffer, or
    // inside a mapping made here and checked; descriptors are our own.
    unsafe {
        let fd = open(p.as_ptr(), O_RDWR | O_CREAT | O_TRUNC, 0o644);
        show("write", pwrite(fd, text.as_ptr().cast(), text.len(), 0) as i64);
        let m = mmap(std::ptr::null_mut(), 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        shown("mmap-shared", m);
        if failed(m) {
            return;
        }
        let mb = m.cast::<u8>();
        println!(
            "mapped={}{}{} last={} past={}",
            byte(mb, 0),
            byte(mb, 1),
            byte(mb, 25),
            byte(mb, 4999),
            byte(mb, 5000)
        );
        // The file's writes show in the mapping at once...
        pwrite(fd, b"XYZ".as_ptr().cast(), 3, 100);
        println!(
            "after-pwrite={:?}",
            std::str::from_utf8(std::slice::from_raw_parts(mb.add(100), 3))
        );
        // ... and the mapping's stores in the file's reads.
        std::ptr::copy_nonoverlapping(b"map".as_ptr(), mb.add(200), 3);
        let mut got = [0u8; 3];
        let other = open(p.as_ptr(), O_RDONLY);
        pread(other, got.as_mut_ptr().cast(), 3, 200);
        println!("pread-of-store={:?}", std::str::from_utf8(&got));
        show("msync", i64::from(msync(m, 8192, MS_SYNC)));
        show("msync-async", i64::from(msync(m, 4096, MS_ASYNC)));
        show("msync-unaligned", i64::from(msync(m.cast::<u8>().add(1).cast(), 8, MS_SYNC)));
        show("msync-both", i64::from(msync(m, 4096, MS_SYNC | MS_ASYNC)));
        // A truncation drops the bytes past the end; growing reads zeros.
        show("ftruncate", i64::from(ftruncate(fd, 4096)));
        show("ftruncate", i64::from(ftruncate(fd, 6000)));
        println!("after-truncate={} {} {}", byte(mb, 4095), byte(mb, 4096), byte(mb, 4999));
        // MADV_DONTNEED keeps a shared mapping's bytes.
        show("madvise", i64::from(madvise(m, 8192, MADV_DONTNEED)));
        println!("after-dontneed={} {}", byte(mb, 0), byte(mb, 200));
        // A private mapping: its stores stay its own.
        let q = mmap(std::ptr::null_mut(), 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        shown("mmap-private", q);
        *q.cast::<u8>() = b'Q';
        pread(other, got.as_mut_ptr().cast(), 1, 0);
        println!("private-store={} file={}", byte(q.cast(), 0), got[0]);
        show("madvise-private", i64::from(madvise(q, 4096, MADV_DONTNEED)));
        println!("private-after-dontneed={}", byte(q.cast(), 0));
        show("munmap-private", i64::from(munmap(q, 4096)));
        // Stores reach the file at munmap, even with the descriptor closed.
        *mb.add(300) = b'!';
        show("close", i64::from(close(fd)));
        *mb.add(301) = b'?';
        show("munmap", i64::from(munmap(m, 8192)));
        pread(other, got.as_mut_ptr().cast(), 2, 300);
        println!("after-munmap={:?}", std::str::from_utf8(&got[..2]));
        // fsync writes a mapping's stores back too.
        let fd = open(p.as_ptr(), O_RDWR);
        let m = mmap(std::ptr::null_mut(), 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4096);
        shown("mmap-offset", m);
        *m.cast::<u8>().add(10) = b'#';
        show("fsync", i64::from(fsync(fd)));
        pread(other, got.as_mut_ptr().cast(), 1, 4106);
        println!("after-fsync={}", got[0]);
        munmap(m, 4096);
        // What may not be mapped.
        let ro = open(p.as_ptr(), O_RDONLY);
        let wo = open(p.as_ptr(), O_WRONLY);
        shown(
            "mmap-ro-shared-write",
            mmap(std::ptr::null_mut(), 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0),
        );
        let r = mmap(std::ptr::null_mut(), 4096, PROT_READ, MAP_SHARED, ro, 0);
        shown("mmap-ro-shared-read", r);
        munmap(r, 4096);
        let r = mmap(std::ptr::null_mut(), 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
        shown("mmap-ro-private-write", r);
        munmap(r, 4096);
        shown("mmap-wo", mmap(std::ptr::null_mut(), 4096, PROT_READ, MAP_SHARED, wo, 0));
        shown("mmap-unaligned", mmap(std::ptr::null_mut(), 4096, PROT_READ, MAP_SHARED, ro, 100));
        shown("mmap-no-type", mmap(std::ptr::null_mut(), 4096, PROT_READ, 0, ro, 0));
        shown("mmap-bad-fd", mmap(std::ptr::null_mut(), 4096, PROT_READ, MAP_SHARED, -1, 0));
        let d = CString::new(dir).unwrap();
        let dfd = open(d.as_ptr(), O_RDONLY | O_DIRECTORY);
        shown("mmap-dir", mmap(std::ptr::null_mut(), 4096, PROT_READ, MAP_SHARED, dfd, 0));
        for fd in [other, ro, wo, dfd] {
            close(fd);
        }
    }
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/".into());
    locks(&dir);
    maps(&dir);
}
