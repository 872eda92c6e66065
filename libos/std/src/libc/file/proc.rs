//! `/proc`, synthesized: the few files that programs and crates read to
//! learn about their own process and machine (the sysinfo crate,
//! `num_cpus`, memory-aware caches), with the guest's own figures. Nothing
//! comes from the host: the machine a guest sees is its memory (`--mem`),
//! its heap and its one CPU.
//!
//! * `/proc/meminfo`: `MemTotal` is the guest's memory (`--mem`),
//!   `MemFree` and `MemAvailable` the heap's free bytes; no swap, no page
//!   cache (their lines are 0).
//! * `/proc/self/stat`, `/proc/self/statm`, `/proc/self/status` (and
//!   `/proc/1/...`: the guest is process 1): the program's name, state
//!   `R`, its threads, its size (the guest's memory) and resident set (the
//!   heap in use), its CPU time (the time since start, as `getrusage`
//!   counts it), in Linux's formats.
//! * `/proc/cpuinfo`: processor 0 only (`available_parallelism()` is 1),
//!   no model, flags or frequency of the host's CPU.
//! * `/proc/uptime`, `/proc/stat`: the time since the guest started, and
//!   the one CPU's line with the same figures as `/proc/self/stat`.
//!
//! Files are read-only (opening one for writing is `EACCES`, as for
//! Linux's mode 0444 files) and made when opened, as a snapshot. `/proc`
//! lists them, `1` (the one process) and `self` (a directory here, as
//! there are no links); `/proc/1` and `/proc/self` list the process's
//! files. Nothing else exists (`ENOENT`): no `maps`, `cmdline`, `task`.

use alloc::borrow::Cow;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::path::Normal;
use crate::libc::c_int;
use crate::libc::fd::{self, Events, File, Open, Res};

/// Clock ticks per second in `/proc` (`sysconf(_SC_CLK_TCK)`).
const TICKS: u64 = 100;

/// What the files show, gathered when one is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The guest's memory (`--mem`), in bytes.
    pub mem_total: u64,
    /// The heap's free bytes.
    pub mem_free: u64,
    /// The heap's bytes in use.
    pub rss: u64,
    /// Milliseconds since the guest started.
    pub uptime_ms: u64,
    /// The number of threads.
    pub threads: usize,
    /// The program's name (the main thread's, at most 15 bytes).
    pub name: String,
}

impl Snapshot {
    /// The figures now.
    pub fn now() -> Self {
        let heap = libos::heap_stats();
        let mem_total = libos::rt_private::boot_info().map_or(heap.size as u64, |i| i.mem_size);
        let name = libos::env::args()
            .next()
            .map(|a| a.rsplit('/').next().unwrap_or(a).chars().take(15).collect())
            .unwrap_or_default();
        Self {
            mem_total,
            mem_free: heap.size.saturating_sub(heap.in_use) as u64,
            rss: heap.in_use as u64,
            uptime_ms: libos::time::since_boot().as_millis() as u64,
            threads: crate::libc::thread::switch::with(|s| s.threads().count()),
            name,
        }
    }
}

/// The files, by their path under `/proc` (`self/` for the process's).
fn render(file: &str, s: &Snapshot) -> Option<String> {
    let kb = |b: u64| b / 1024;
    let pages = |b: u64| b.div_ceil(4096);
    let ticks = s.uptime_ms * TICKS / 1000;
    let mut o = String::new();
    match file {
        "meminfo" => {
            for (k, v) in [
                ("MemTotal", kb(s.mem_total)),
                ("MemFree", kb(s.mem_free)),
                ("MemAvailable", kb(s.mem_free)),
                ("Buffers", 0),
                ("Cached", 0),
                ("SwapCached", 0),
                ("Shmem", 0),
                ("SReclaimable", 0),
                ("SwapTotal", 0),
                ("SwapFree", 0),
            ] {
                let _ = writeln!(o, "{:<16}{v:>8} kB", format!("{k}:"));
            }
        }
        "self/stat" => {
            // pid (comm) state ppid pgrp session tty_nr tpgid flags
            // minflt cminflt majflt cmajflt utime stime cutime cstime
            // priority nice num_threads itrealvalue starttime vsize rss
            // rsslim, then 27 fields that are 0 here (52 in all).
            let _ = write!(
                o,
                "1 ({}) R 0 1 1 0 -1 4194560 0 0 0 0 {ticks} 0 0 0 20 0 {} 0 0 {} {} {}",
                s.name,
                s.threads,
                s.mem_total,
                pages(s.rss),
                s.mem_total,
            );
            for _ in 0..27 {
                o.push_str(" 0");
            }
            o.push('\n');
        }
        "self/statm" => {
            let _ = writeln!(o, "{} {} 0 0 0 {} 0", pages(s.mem_total), pages(s.rss), pages(s.rss));
        }
        "self/status" => {
            let _ = write!(
                o,
                "Name:\t{}\nState:\tR (running)\nTgid:\t1\nPid:\t1\nPPid:\t0\n\
                 Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
                 VmPeak:\t{:>8} kB\nVmSize:\t{:>8} kB\nVmHWM:\t{:>8} kB\nVmRSS:\t{:>8} kB\n\
                 Threads:\t{}\nCpus_allowed_list:\t0\n",
                s.name,
                kb(s.mem_total),
                kb(s.mem_total),
                kb(s.rss),
                kb(s.rss),
                s.threads,
            );
        }
        "cpuinfo" => o.push_str("processor\t: 0\ncpu cores\t: 1\n\n"),
        "uptime" => {
            let (sec, cs) = (s.uptime_ms / 1000, s.uptime_ms % 1000 / 10);
            let _ = writeln!(o, "{sec}.{cs:02} 0.00");
        }
        "stat" => {
            let _ = write!(
                o,
                "cpu  {ticks} 0 0 0 0 0 0 0 0 0\ncpu0 {ticks} 0 0 0 0 0 0 0 0 0\n\
                 processes 1\nprocs_running 1\nprocs_blocked 0\n"
            );
        }
        _ => return None,
    }
    Some(o)
}

/// The entry of `/proc/self/exe`: the guest's image file, as the tender
/// mapped it (`BootInfo::image_file`). On Linux a link to the program's
/// file; here the file itself (there are no links), and `readlink` of it
/// gives its own name, the one path in the guest that opens the image
/// (see `docs/std.md`, "/proc").
const EXE: &str = "self/exe";

/// The guest's image file: empty if the tender gave none (and in host
/// unit tests).
pub fn image() -> &'static [u8] {
    #[cfg(not(test))]
    return libos::rt_private::image_file();
    #[cfg(test)]
    return TEST_IMAGE;
}

#[cfg(test)]
static TEST_IMAGE: &[u8] = b"\x7fELF, for the tests";

/// Whether `f` is `/proc/self/exe` open: its bytes, which `mmap` hands out
/// in place (read-only).
pub fn image_of(f: &dyn File) -> Option<&'static [u8]> {
    f.as_any().downcast_ref::<ProcFile>().filter(|p| p.exe).map(|_| image())
}

/// What a path under `/proc` names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// `/proc` (true) or a process's directory (false).
    Dir(bool),
    File(&'static str),
}

/// The entry at the path `n` if it is under `/proc`: `None` for a path
/// elsewhere, `Some(Err(ENOENT))` for nothing there.
fn entry(n: &Normal) -> Option<Res<Entry>> {
    let parts: Vec<&str> = n.parts.iter().map(String::as_str).collect();
    entry_of(&parts, n.dir)
}

/// Whether something is at the path `f` under `/proc` (`None` for a path
/// elsewhere; `true` also for a file named as a directory, `ENOTDIR`),
/// decided without allocating: what a global allocator may
/// ask while it initialises.
pub fn exists_flat(f: &super::path::Flat) -> Option<bool> {
    let text = core::str::from_utf8(f.text()).ok()?;
    let mut parts = [""; 4];
    let mut count = 0;
    for c in text.split('/').filter(|c| !c.is_empty()) {
        if count == parts.len() {
            // Deeper than anything here.
            return (parts[0] == "proc").then_some(false);
        }
        parts[count] = c;
        count += 1;
    }
    entry_of(&parts[..count], f.dir).map(|r| !matches!(r, Err(::libc::ENOENT)))
}

/// The entry at the path of components `parts` (`dir`: it ended in `/`).
fn entry_of(parts: &[&str], dir: bool) -> Option<Res<Entry>> {
    let (first, rest) = parts.split_first()?;
    if *first != "proc" {
        return None;
    }
    let found = match rest {
        [] => Some(Entry::Dir(true)),
        ["self" | "1"] => Some(Entry::Dir(false)),
        [f @ ("meminfo" | "cpuinfo" | "uptime" | "stat")] => Some(Entry::File(match *f {
            "meminfo" => "meminfo",
            "cpuinfo" => "cpuinfo",
            "uptime" => "uptime",
            _ => "stat",
        })),
        ["self" | "1", "exe"] if !image().is_empty() => Some(Entry::File(EXE)),
        ["self" | "1", f @ ("stat" | "statm" | "status")] => Some(Entry::File(match *f {
            "stat" => "self/stat",
            "statm" => "self/statm",
            _ => "self/status",
        })),
        _ => None,
    };
    Some(match found {
        Some(Entry::File(_)) if dir => Err(::libc::ENOTDIR),
        Some(e) => Ok(e),
        None => Err(::libc::ENOENT),
    })
}

fn stat_of(e: &Entry) -> ::libc::stat64 {
    // SAFETY: stat64 is plain data; all zeroes is a valid value.
    let mut st: ::libc::stat64 = unsafe { core::mem::zeroed() };
    st.st_dev = 0x16;
    st.st_blksize = 1024;
    match e {
        Entry::Dir(_) => {
            st.st_mode = ::libc::S_IFDIR | 0o555;
            st.st_nlink = 2;
        }
        Entry::File(EXE) => {
            // What stat of the link reaches on Linux: the program's file.
            st.st_mode = ::libc::S_IFREG | 0o555;
            st.st_nlink = 1;
            st.st_size = image().len() as i64;
            st.st_blocks = image().len().div_ceil(512) as i64;
        }
        Entry::File(_) => {
            // Linux reports 0 bytes for /proc files: read to the end.
            st.st_mode = ::libc::S_IFREG | 0o444;
            st.st_nlink = 1;
        }
    }
    st
}

/// `stat` of a path under `/proc`; `None` for a path elsewhere.
pub fn stat(n: &Normal) -> Option<Res<::libc::stat64>> {
    entry(n).map(|r| r.map(|e| stat_of(&e)))
}

/// `open` of a path under `/proc`; `None` for a path elsewhere.
pub fn open(n: &Normal, flags: c_int) -> Option<Res<c_int>> {
    let e = match entry(n)? {
        Ok(e) => e,
        Err(::libc::ENOENT) if flags & ::libc::O_CREAT != 0 => return Some(Err(::libc::EACCES)),
        Err(e) => return Some(Err(e)),
    };
    let write = flags & ::libc::O_ACCMODE != ::libc::O_RDONLY;
    let file: Rc<dyn File> = match e {
        Entry::File(_) if write || flags & ::libc::O_TRUNC != 0 => {
            return Some(Err(::libc::EACCES));
        }
        Entry::File(_) if flags & ::libc::O_DIRECTORY != 0 => return Some(Err(::libc::ENOTDIR)),
        Entry::File(EXE) => Rc::new(ProcFile { text: Cow::Borrowed(image()), exe: true }),
        Entry::File(name) => {
            let text = render(name, &Snapshot::now()).expect("every file entry renders");
            Rc::new(ProcFile { text: Cow::Owned(text.into_bytes()), exe: false })
        }
        Entry::Dir(_) if write || flags & ::libc::O_CREAT != 0 => {
            return Some(Err(::libc::EISDIR));
        }
        Entry::Dir(top) => Rc::new(ProcDir { top }),
    };
    let status = flags & (::libc::O_ACCMODE | ::libc::O_NONBLOCK);
    Some(fd::install(fd::new_open(file, status), flags & ::libc::O_CLOEXEC != 0, 0))
}

/// An open `/proc` directory: `/proc` itself (`top`) or the process's.
#[derive(Debug)]
pub struct ProcDir {
    top: bool,
}

impl ProcDir {
    /// Its entries, as `readdir` returns them: name, type, inode.
    pub fn entries(&self) -> Vec<(String, u8, u64)> {
        let (dirs, files): (&[&str], &[&str]) = if self.top {
            (&[".", "..", "1", "self"], &["cpuinfo", "meminfo", "stat", "uptime"])
        } else if image().is_empty() {
            (&[".", ".."], &["stat", "statm", "status"])
        } else {
            // `exe` is the image file itself here, not a link.
            (&[".", ".."], &["exe", "stat", "statm", "status"])
        };
        let dirs = dirs.iter().map(|n| (*n, ::libc::DT_DIR));
        let files = files.iter().map(|n| (*n, ::libc::DT_REG));
        dirs.chain(files)
            .enumerate()
            .map(|(i, (n, t))| (String::from(n), t, 1 + i as u64))
            .collect()
    }
}

impl File for ProcDir {
    fn read(&self, _open: &Open, _buf: &mut [u8]) -> Res<usize> {
        Err(::libc::EISDIR)
    }

    fn seek(&self, _open: &Open, _offset: i64, _whence: c_int) -> Res<u64> {
        Ok(0)
    }

    fn stat(&self) -> Res<::libc::stat64> {
        Ok(stat_of(&Entry::Dir(self.top)))
    }

    fn poll(&self) -> Events {
        ::libc::POLLIN | ::libc::POLLOUT
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// An open `/proc` file: its text, made at `open`, or the image file.
struct ProcFile {
    text: Cow<'static, [u8]>,
    exe: bool,
}

/// Copies the bytes of `data` from `offset` into `buf`; how many (0 at
/// or past the end). For the read-only files held in memory (`/proc`,
/// the given `/etc` files).
pub(super) fn bytes_at(data: &[u8], buf: &mut [u8], offset: u64) -> usize {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

/// The offset `lseek(offset, whence)` gives in a file of `len` bytes
/// held in memory.
pub(super) fn seek_in(len: usize, open: &Open, offset: i64, whence: c_int) -> Res<u64> {
    let base = match whence {
        ::libc::SEEK_SET => 0,
        ::libc::SEEK_CUR => open.offset.get() as i64,
        ::libc::SEEK_END => len as i64,
        _ => return Err(::libc::EINVAL),
    };
    let to = base.checked_add(offset).filter(|&o| o >= 0).ok_or(::libc::EINVAL)?;
    Ok(to as u64)
}

impl File for ProcFile {
    fn read(&self, open: &Open, buf: &mut [u8]) -> Res<usize> {
        let n = bytes_at(&self.text, buf, open.offset.get());
        open.offset.set(open.offset.get() + n as u64);
        Ok(n)
    }

    fn write(&self, _open: &Open, _buf: &[u8]) -> Res<usize> {
        Err(::libc::EBADF)
    }

    fn pread(&self, buf: &mut [u8], offset: u64) -> Res<usize> {
        Ok(bytes_at(&self.text, buf, offset))
    }

    fn seek(&self, open: &Open, offset: i64, whence: c_int) -> Res<u64> {
        seek_in(self.text.len(), open, offset, whence)
    }

    fn stat(&self) -> Res<::libc::stat64> {
        Ok(stat_of(&Entry::File(if self.exe { EXE } else { "" })))
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
    use super::super::path::normalise_flat;

    #[test]
    fn what_exists_under_proc_is_told_without_allocating() {
        let e = |p: &str| exists_flat(&normalise_flat("/", p.as_bytes()).unwrap());
        assert_eq!(e("/proc/sys/vm/overcommit_memory"), Some(false));
        assert_eq!(e("/proc/self/stat"), Some(true));
        assert_eq!(e("/proc/1/status"), Some(true));
        assert_eq!(e("/proc/meminfo/"), Some(true));
        assert_eq!(e("/proc"), Some(true));
        assert_eq!(e("/proc/a/b/c/d/e"), Some(false));
        assert_eq!(e("/proc/nothing"), Some(false));
        assert_eq!(e("/sys/kernel/mm/transparent_hugepage/enabled"), None);
        assert_eq!(e("/etc/malloc.conf"), None);
        // The same answers as the allocating lookup.
        for p in ["/proc/self/stat", "/proc/x", "/proc/self/statm/", "/proc/cpuinfo", "/proc/"] {
            let n = super::super::path::normalise("/", p.as_bytes()).unwrap();
            assert_eq!(e(p), stat(&n).map(|r| !matches!(r, Err(::libc::ENOENT))), "{p}");
        }
    }

    use super::*;

    fn normal(p: &str) -> Normal {
        super::super::path::normalise("/", p.as_bytes()).unwrap()
    }

    fn snap() -> Snapshot {
        Snapshot {
            mem_total: 64 << 20,
            mem_free: 40 << 20,
            rss: 3 << 20,
            uptime_ms: 12_345,
            threads: 3,
            name: "app".into(),
        }
    }

    #[test]
    fn meminfo_shows_the_guests_memory_in_linuxs_format() {
        let m = render("meminfo", &snap()).unwrap();
        assert!(m.starts_with("MemTotal:          65536 kB\nMemFree:           40960 kB\n"), "{m}");
        assert!(
            m.contains("\nMemAvailable:      40960 kB\n")
                && m.contains("\nSwapTotal:             0 kB\n")
        );
    }

    #[test]
    fn the_process_files_parse_as_linuxs() {
        let s = snap();
        let stat = render("self/stat", &s).unwrap();
        let f: Vec<&str> = stat.trim_end().split(' ').collect();
        assert_eq!(f.len(), 52, "{stat}");
        assert_eq!((f[0], f[1], f[2]), ("1", "(app)", "R"));
        assert_eq!(f[13], "1234", "utime in ticks");
        assert_eq!(f[19], "3", "threads");
        assert_eq!(f[22], "67108864", "vsize");
        assert_eq!(f[23], "768", "rss in pages");
        assert_eq!(render("self/statm", &s).unwrap(), "16384 768 0 0 0 768 0\n");
        let status = render("self/status", &s).unwrap();
        assert!(
            status.contains("Name:\tapp\n") && status.contains("VmRSS:\t    3072 kB\n"),
            "{status}"
        );
        assert!(status.contains("Threads:\t3\n"));
        assert_eq!(render("uptime", &s).unwrap(), "12.34 0.00\n");
        assert!(render("stat", &s).unwrap().starts_with("cpu  1234 0 0 0"));
        assert_eq!(render("cpuinfo", &s).unwrap().matches("processor").count(), 1);
        assert_eq!(render("self/maps", &s), None);
    }

    #[test]
    fn paths_under_proc_resolve_and_others_do_not() {
        assert_eq!(entry(&normal("/etc/passwd")), None);
        assert_eq!(entry(&normal("/procfs/meminfo")), None);
        assert_eq!(entry(&normal("/proc")), Some(Ok(Entry::Dir(true))));
        assert_eq!(entry(&normal("/proc/self/")), Some(Ok(Entry::Dir(false))));
        assert_eq!(entry(&normal("/proc/self/../meminfo")), Some(Ok(Entry::File("meminfo"))));
        assert_eq!(entry(&normal("/proc/1/status")), Some(Ok(Entry::File("self/status"))));
        assert_eq!(entry(&normal("/proc/2/status")), Some(Err(::libc::ENOENT)));
        assert_eq!(entry(&normal("/proc/meminfo/")), Some(Err(::libc::ENOTDIR)));
        assert_eq!(entry(&normal("/proc/self/maps")), Some(Err(::libc::ENOENT)));
        let st = stat(&normal("/proc/cpuinfo")).unwrap().unwrap();
        assert_eq!((st.st_mode, st.st_size), (::libc::S_IFREG | 0o444, 0));
        assert_eq!(open(&normal("/proc/meminfo"), ::libc::O_WRONLY), Some(Err(::libc::EACCES)));
        assert_eq!(
            open(&normal("/proc/new"), ::libc::O_CREAT | ::libc::O_RDWR),
            Some(Err(::libc::EACCES))
        );
        assert_eq!(open(&normal("/proc"), ::libc::O_RDWR), Some(Err(::libc::EISDIR)));
        let names: Vec<String> = ProcDir { top: true }.entries().into_iter().map(|e| e.0).collect();
        assert_eq!(names, [".", "..", "1", "self", "cpuinfo", "meminfo", "stat", "uptime"]);
        for n in &names[2..] {
            let e = entry(&normal(&format!("/proc/{n}"))).unwrap();
            assert!(e.is_ok(), "{n} is listed and exists");
        }
        let names: Vec<String> =
            ProcDir { top: false }.entries().into_iter().map(|e| e.0).collect();
        assert_eq!(names, [".", "..", "exe", "stat", "statm", "status"]);
        for n in &names[2..] {
            assert!(entry(&normal(&format!("/proc/self/{n}"))).unwrap().is_ok(), "{n}");
        }
    }

    #[test]
    fn reads_and_seeks_walk_the_snapshot() {
        let f = ProcFile { text: Cow::Owned(b"hello\n".to_vec()), exe: false };
        let mut buf = [0u8; 4];
        assert_eq!(f.pread(&mut buf, 0), Ok(4));
        assert_eq!(&buf, b"hell");
        assert_eq!(f.pread(&mut buf, 4), Ok(2));
        assert_eq!(f.pread(&mut buf, 100), Ok(0));
    }
}
