//! std::fs operations named on the command line, one per argument group,
//! on the disk `storage`: what the interop suite (tests/suite/
//! fat_interop.rs) asks libos to do and then reads back with mtools, what
//! the conformance tests run both here and natively on Linux (the same
//! source, compiled with `rustc --cfg native`, in a host directory named
//! by `root DIR`), and what scripts/bench-fs.sh times.
//!
//! Each operation prints one line: `ok OP ARGS` (with what it found) or
//! `err OP ARGS: KIND errno N`. Operations (paths are under the root, `/`
//! by default):
//!
//! * `root DIR`; `write P TEXT`; `append P TEXT`; `cat P`;
//! * `fill P N SEED` (N bytes of a pattern), `same P N SEED` (compares);
//! * `mkdir P`, `mkdirs P`, `rm P`, `rmdir P`, `rmall P`, `mv A B`,
//!   `mvnr A B` (`renameat2` with `RENAME_NOREPLACE`), `mvx A B`
//!   (`RENAME_EXCHANGE`);
//! * `dirmv D A B F`: opens the directory D and makes it the working
//!   one, renames A to B (D or a directory above it), then reads F through
//!   the descriptor (`openat`) and by its relative path, and prints both
//!   and the working directory (under the root): all follow the rename,
//!   as on Linux;
//! * `cnames P`: the file P through glibc's other names of the calls std
//!   makes (`open`, `openat`, `lseek`, `pread`, `pwrite`, `stat`,
//!   `lstat`, `fstatat`, `creat64`, `fcntl64`, `readdir`, `sendfile`,
//!   from the libc crate), each result printed;
//! * `ls P` (sorted `NAME:KIND:LEN`), `stat P` (kind, length, mtime),
//!   `touch P SECS` (`File::set_modified`), `touchp P SECS`
//!   (`utimensat` on the path), `setlen P N`, `trunc P N` (`truncate`),
//!   `sync P`,
//!   `df P` (`statvfs`);
//! * `many DIR N SIZE`, `readmany DIR N SIZE`, `rmmany DIR N` (N files of
//!   SIZE bytes), `seqwrite P MIB`, `seqread P`: each also prints
//!   `time OP NS`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

#[cfg(not(native))]
libos_std::app!(devices: ["storage": Block]);

/// `struct statvfs` on x86_64 Linux (glibc's layout).
#[repr(C)]
#[derive(Default)]
struct StatVfs {
    f_bsize: u64,
    f_frsize: u64,
    f_blocks: u64,
    f_bfree: u64,
    f_bavail: u64,
    f_files: u64,
    f_ffree: u64,
    f_favail: u64,
    f_fsid: u64,
    f_flag: u64,
    f_namemax: u64,
    spare: [i32; 6],
}

unsafe extern "C" {
    fn statvfs(path: *const std::ffi::c_char, buf: *mut StatVfs) -> i32;
    fn truncate(path: *const std::ffi::c_char, len: i64) -> i32;
    fn utimensat(
        dirfd: i32,
        path: *const std::ffi::c_char,
        times: *const [i64; 4],
        flags: i32,
    ) -> i32;
    fn renameat2(
        olddirfd: i32,
        old: *const std::ffi::c_char,
        newdirfd: i32,
        new: *const std::ffi::c_char,
        flags: u32,
    ) -> i32;
}

const AT_FDCWD: i32 = -100;

fn cstr(p: &std::path::Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

#[path = "../pattern.rs"]
mod pattern;
use pattern::pattern;

struct Ops {
    root: PathBuf,
}

impl Ops {
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Runs one operation; returns what to print after `ok`.
    fn run(&mut self, op: &str, a: &[String]) -> io::Result<String> {
        let arg = |i: usize| a.get(i).map(String::as_str).unwrap_or("");
        let num = |i: usize| arg(i).parse::<u64>().unwrap_or(0);
        match op {
            "root" => {
                self.root = PathBuf::from(arg(0));
                Ok(String::new())
            }
            "write" => fs::write(self.p(arg(0)), arg(1)).map(|()| String::new()),
            "append" => OpenOptions::new()
                .append(true)
                .create(true)
                .open(self.p(arg(0)))
                .and_then(|mut f| f.write_all(arg(1).as_bytes()))
                .map(|()| String::new()),
            "cat" => fs::read(self.p(arg(0))).map(|b| format!("= {}", String::from_utf8_lossy(&b))),
            "fill" => {
                let data = pattern(num(1) as usize, num(2));
                let mut f = File::create(self.p(arg(0)))?;
                for c in data.chunks(64 << 10) {
                    f.write_all(c)?;
                }
                Ok(String::new())
            }
            "same" => {
                let back = fs::read(self.p(arg(0)))?;
                Ok(format!("= {}", back == pattern(num(1) as usize, num(2))))
            }
            "mkdir" => fs::create_dir(self.p(arg(0))).map(|()| String::new()),
            "mkdirs" => fs::create_dir_all(self.p(arg(0))).map(|()| String::new()),
            "rm" => fs::remove_file(self.p(arg(0))).map(|()| String::new()),
            "rmdir" => fs::remove_dir(self.p(arg(0))).map(|()| String::new()),
            "rmall" => fs::remove_dir_all(self.p(arg(0))).map(|()| String::new()),
            "mv" => fs::rename(self.p(arg(0)), self.p(arg(1))).map(|()| String::new()),
            "dirmv" => {
                let dir = File::open(self.p(arg(0)))?;
                std::env::set_current_dir(self.p(arg(0)))?;
                let r = self.dirmv(&dir, arg(1), arg(2), arg(3));
                std::env::set_current_dir(&self.root)?;
                r
            }
            "cnames" => Ok(cnames(&self.p(arg(0)))),
            "mvnr" | "mvx" => {
                let (from, to) = (cstr(&self.p(arg(0))), cstr(&self.p(arg(1))));
                let flags = if op == "mvnr" { 1 } else { 2 };
                // SAFETY: two NUL-terminated strings that outlive the call.
                let r = unsafe { renameat2(AT_FDCWD, from.as_ptr(), AT_FDCWD, to.as_ptr(), flags) };
                if r == 0 { Ok(String::new()) } else { Err(io::Error::last_os_error()) }
            }
            "ls" => {
                let mut names = Vec::new();
                for e in fs::read_dir(self.p(arg(0)))? {
                    let e = e?;
                    let m = e.metadata()?;
                    let kind = if m.is_dir() { "d" } else { "f" };
                    let len = if m.is_dir() { 0 } else { m.len() };
                    names.push(format!("{}:{kind}:{len}", e.file_name().to_string_lossy()));
                }
                names.sort();
                Ok(format!("= {}", names.join(" ")))
            }
            "stat" => {
                let m = fs::metadata(self.p(arg(0)))?;
                let t = m.modified()?.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let kind = if m.is_dir() { "d" } else { "f" };
                let len = if m.is_dir() { 0 } else { m.len() };
                Ok(format!("= {kind} len={len} mtime={t}"))
            }
            "touch" => {
                let f = File::open(self.p(arg(0)))?;
                f.set_modified(UNIX_EPOCH + Duration::from_secs(num(1)))?;
                Ok(String::new())
            }
            "trunc" => {
                let path = cstr(&self.p(arg(0)));
                // SAFETY: a NUL-terminated path.
                let r = unsafe { truncate(path.as_ptr(), arg(1).parse().unwrap_or(-1)) };
                if r == 0 { Ok(String::new()) } else { Err(io::Error::last_os_error()) }
            }
            "touchp" => {
                let path = cstr(&self.p(arg(0)));
                // Two timespecs: the access time left alone (UTIME_OMIT),
                // the modification time given.
                let times = [0i64, (1 << 30) - 2, num(1) as i64, 0];
                // SAFETY: a NUL-terminated path and two timespecs.
                let r = unsafe { utimensat(AT_FDCWD, path.as_ptr(), &times, 0) };
                if r == 0 { Ok(String::new()) } else { Err(io::Error::last_os_error()) }
            }
            "setlen" => OpenOptions::new()
                .write(true)
                .open(self.p(arg(0)))
                .and_then(|f| f.set_len(num(1)))
                .map(|()| String::new()),
            "sync" => File::open(self.p(arg(0))).and_then(|f| f.sync_all()).map(|()| String::new()),
            "df" => {
                let mut s = StatVfs::default();
                let path = cstr(&self.p(arg(0)));
                // SAFETY: a NUL-terminated path and a writable statvfs.
                if unsafe { statvfs(path.as_ptr(), &mut s) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(format!(
                    "= bsize={} frsize={} blocks={} bfree={} bavail={} namemax={} ro={}",
                    s.f_bsize,
                    s.f_frsize,
                    s.f_blocks,
                    s.f_bfree,
                    s.f_bavail,
                    s.f_namemax,
                    s.f_flag & 1
                ))
            }
            "many" => self.timed(op, || {
                let data = pattern(num(2) as usize, 7);
                for i in 0..num(1) {
                    fs::write(self.p(&format!("{}/f{i:05}.txt", arg(0))), &data)?;
                }
                Ok(())
            }),
            "readmany" => self.timed(op, || {
                let data = pattern(num(2) as usize, 7);
                for i in 0..num(1) {
                    if fs::read(self.p(&format!("{}/f{i:05}.txt", arg(0))))? != data {
                        return Err(io::Error::other(format!("f{i:05}.txt differs")));
                    }
                }
                Ok(())
            }),
            "rmmany" => self.timed(op, || {
                for i in 0..num(1) {
                    fs::remove_file(self.p(&format!("{}/f{i:05}.txt", arg(0))))?;
                }
                Ok(())
            }),
            "seqwrite" => self.timed(op, || {
                let chunk = pattern(1 << 20, 11);
                let mut f = File::create(self.p(arg(0)))?;
                for _ in 0..num(1) {
                    f.write_all(&chunk)?;
                }
                f.sync_all()
            }),
            "seqread" => self.timed(op, || {
                let chunk = pattern(1 << 20, 11);
                let mut f = File::open(self.p(arg(0)))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let mut got = 0;
                    while got < buf.len() {
                        match f.read(&mut buf[got..])? {
                            0 => break,
                            n => got += n,
                        }
                    }
                    if got == 0 {
                        return Ok(());
                    }
                    if buf[..got] != chunk[..got] {
                        return Err(io::Error::other("seqread: other bytes"));
                    }
                }
            }),
            _ => Err(io::Error::other(format!("unknown operation {op}"))),
        }
    }

    /// `dirmv`'s rename and reads, with `dir` open and the working one.
    fn dirmv(&self, dir: &File, from: &str, to: &str, file: &str) -> io::Result<String> {
        use std::os::fd::{AsRawFd, FromRawFd};
        fs::rename(self.p(from), self.p(to))?;
        let name = std::ffi::CString::new(file).unwrap();
        // SAFETY: a NUL-terminated string that outlives the call.
        let fd = unsafe { other_names::openat(dir.as_raw_fd(), name.as_ptr(), 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut through_fd = String::new();
        // SAFETY: fd was just opened and is owned by nothing else.
        unsafe { File::from_raw_fd(fd) }.read_to_string(&mut through_fd)?;
        let relative = fs::read_to_string(file)?;
        let cwd = std::env::current_dir()?;
        let cwd = cwd.strip_prefix(&self.root).map_err(io::Error::other)?;
        Ok(format!("= {through_fd} {relative} /{}", cwd.display()))
    }

    fn timed(&self, op: &str, f: impl FnOnce() -> io::Result<()>) -> io::Result<String> {
        let t = Instant::now();
        f()?;
        println!("time {op} {}", t.elapsed().as_nanos());
        Ok(String::new())
    }
}

/// glibc's other names of calls std makes (libos/std defines the one std
/// calls; the guest's linker script provides the other). Declared here,
/// not taken from the libc crate: the native build has no crates.
mod other_names {
    use std::ffi::{c_char, c_int, c_void};
    unsafe extern "C" {
        pub fn open(path: *const c_char, flags: c_int, ...) -> c_int;
        pub fn openat(dirfd: c_int, path: *const c_char, flags: c_int, ...) -> c_int;
        pub fn creat64(path: *const c_char, mode: u32) -> c_int;
        pub fn fcntl64(fd: c_int, cmd: c_int, ...) -> c_int;
        pub fn lseek(fd: c_int, offset: i64, whence: c_int) -> i64;
        pub fn pread(fd: c_int, buf: *mut c_void, n: usize, offset: i64) -> isize;
        pub fn pwrite(fd: c_int, buf: *const c_void, n: usize, offset: i64) -> isize;
        pub fn stat(path: *const c_char, st: *mut [u64; 18]) -> c_int;
        pub fn lstat(path: *const c_char, st: *mut [u64; 18]) -> c_int;
        pub fn fstatat(dirfd: c_int, path: *const c_char, st: *mut [u64; 18], f: c_int) -> c_int;
        pub fn opendir(path: *const c_char) -> *mut c_void;
        pub fn readdir(dir: *mut c_void) -> *const c_void;
        pub fn closedir(dir: *mut c_void) -> c_int;
        pub fn sendfile(out: c_int, from: c_int, offset: *mut i64, n: usize) -> isize;
        pub fn close(fd: c_int) -> c_int;
        pub fn pipe(fds: *mut [c_int; 2]) -> c_int;
        pub fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize;
        pub fn unlink(path: *const c_char) -> c_int;
    }
}

/// `cnames`: what each of glibc's other names returns for `path` (a file
/// of at least 2 bytes) and its directory: `name=result`, errno on failure.
fn cnames(path: &std::path::Path) -> String {
    use other_names::*;
    use std::ffi::c_int;
    // struct stat on x86_64: 144 bytes, st_size at byte 48.
    const SIZE: usize = 6;
    let p = cstr(path);
    let dir = cstr(path.parent().unwrap());
    let file = cstr(std::path::Path::new(path.file_name().unwrap()));
    let mut out = Vec::new();
    let mut show = |name: &str, r: i64| {
        let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        out.push(if r < 0 { format!("{name}=errno{e}") } else { format!("{name}={r}") });
    };
    // SAFETY: every pointer is a NUL-terminated string or a buffer of the
    // size given, alive across the call; fds are this function's own.
    unsafe {
        let fd = open(p.as_ptr(), 2); // O_RDWR
        show("open", i64::from(fd.min(0)));
        show("lseek", lseek(fd, 0, 2)); // SEEK_END
        let mut b = [0u8; 1];
        show("pread", pread(fd, b.as_mut_ptr().cast(), 1, 1) as i64);
        show("pwrite", pwrite(fd, b.as_ptr().cast(), 1, 0) as i64);
        show("fcntl64", i64::from(fcntl64(fd, 3) & 3)); // F_GETFL, O_ACCMODE
        close(fd);
        let mut st = [0u64; 18];
        let size = |r: c_int, st: &[u64; 18]| if r < 0 { i64::from(r) } else { st[SIZE] as i64 };
        show("stat", size(stat(p.as_ptr(), &mut st), &st));
        show("lstat", size(lstat(p.as_ptr(), &mut st), &st));
        let d = openat(AT_FDCWD, dir.as_ptr(), 0o200000); // O_RDONLY | O_DIRECTORY
        show("openat", i64::from(d.min(0)));
        let r = fstatat(d, file.as_ptr(), &mut st, 0);
        show("fstatat", size(r, &st));
        close(d);
        let stream = opendir(dir.as_ptr());
        let mut n = 0;
        while !readdir(stream).is_null() {
            n += 1;
        }
        closedir(stream);
        show("readdir", n);
        let c = cstr(&path.with_extension("new"));
        let fd = creat64(c.as_ptr(), 0o644);
        show("creat64", i64::from(fd.min(0)));
        close(fd);
        unlink(c.as_ptr());
        show("sendfile", sendfile(-1, -1, std::ptr::null_mut(), 1) as i64);
        let mut ends = [0; 2];
        pipe(&mut ends);
        let fd = open(p.as_ptr(), 0);
        let mut at = 1;
        show("sendfile", sendfile(ends[1], fd, &mut at, 3) as i64);
        show("offset", at);
        show("sendfile", sendfile(ends[1], fd, std::ptr::null_mut(), 2) as i64);
        show("lseek", lseek(fd, 0, 1)); // SEEK_CUR
        show("sendfile", sendfile(fd, ends[0], std::ptr::null_mut(), 2) as i64);
        let mut got = [0u8; 8];
        let n = read(ends[0], got.as_mut_ptr().cast(), got.len());
        out.push(format!("piped={:?}", String::from_utf8_lossy(&got[..n.max(0) as usize])));
        for fd in [fd, ends[0], ends[1]] {
            close(fd);
        }
    }
    format!("= {}", out.join(" "))
}

/// How many arguments each operation takes.
fn arity(op: &str) -> usize {
    match op {
        "root" | "cnames" | "cat" | "mkdir" | "mkdirs" | "rm" | "rmdir" | "rmall" | "ls"
        | "stat" | "sync" | "df" | "seqread" => 1,
        "write" | "append" | "mv" | "mvnr" | "mvx" | "touch" | "touchp" | "setlen" | "trunc"
        | "rmmany" | "seqwrite" => 2,
        "fill" | "same" | "many" | "readmany" => 3,
        "dirmv" => 4,
        _ => 0,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut ops = Ops { root: PathBuf::from("/") };
    let mut i = 0;
    while i < args.len() {
        let op = args[i].clone();
        let n = arity(&op).min(args.len() - i - 1);
        let a = &args[i + 1..i + 1 + n];
        let shown = if a.is_empty() { op.clone() } else { format!("{op} {}", a.join(" ")) };
        match ops.run(&op, a) {
            Ok(s) if s.is_empty() => println!("ok {shown}"),
            Ok(s) => println!("ok {shown} {s}"),
            Err(e) => {
                println!("err {shown}: {:?} errno {}", e.kind(), e.raw_os_error().unwrap_or(0))
            }
        }
        i += 1 + n;
    }
}
