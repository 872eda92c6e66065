//! A directory tree copied into a private staging directory without reading
//! anything outside it: what `nabla disk create` puts on a disk.
//!
//! The tree may be hostile: nabla-runc makes a container's disk from the
//! image's rootfs, as root when the image runs as root. So:
//!
//! * every component, the top one included, is opened relative to its
//!   parent's fd with `O_NOFOLLOW`: a symbolic link is never followed,
//!   wherever it points;
//! * an entry is looked at (`fstatat(AT_SYMLINK_NOFOLLOW)`) before it is
//!   opened, only directories and regular files are opened (with
//!   `O_NONBLOCK`, so that a FIFO swapped in meanwhile cannot block), and
//!   `fstat` then checks that the fd is the same inode, of the same type;
//! * symbolic links, FIFOs, sockets and device nodes are refused, naming
//!   them, or with `skip_special` left out with a warning;
//! * run as root, which reads past every permission, a regular file with
//!   more hard links than the tree holds (another name for it lies outside
//!   the tree) is refused, or left out with `skip_special`; as any other
//!   user the kernel's permission checks decide, as they would for the user
//!   reading the file by its outside name;
//! * the copies go to a directory this process made `0700`, so that `mcopy`
//!   (which follows links itself) reads only what was vetted.
//!
//! Names come from `readdir`, so none is `.` or `..` or holds a `/`.
//!
//! # Safety
//!
//! The unsafe blocks call `openat`, `fstatat`, `fstat`, `fdopendir`,
//! `readdir`, `closedir`, `readlinkat` and `geteuid` with NUL-terminated
//! names from `CString`s and out-pointers to locals; fds are `OwnedFd`s.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::{File, FileTimes};
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::bench::Result;

/// Deeper trees are refused (each level holds an fd while it is walked).
const MAX_DEPTH: usize = 64;
/// FAT cluster size the sizes are rounded to.
const CLUSTER: u64 = 4096;

/// What to do with what is not a plain file or directory.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    /// Leave out symbolic links, special files, files with links outside
    /// the tree and unreadable entries with a warning, instead of refusing.
    pub skip_special: bool,
    /// Leave out empty files, and directories that hold no file.
    pub skip_empty: bool,
    /// Paths relative to the top to leave out.
    pub exclude: Vec<PathBuf>,
    /// The copies may take at most this many bytes (in 4 KiB clusters).
    pub max_bytes: Option<u64>,
}

/// What was staged.
#[derive(Debug, Default)]
pub struct Staged {
    pub files: usize,
    /// Bytes the tree takes in 4 KiB clusters, directories included.
    pub bytes: u64,
    pub warnings: Vec<String>,
}

/// A regular file with more than one link: where its copies are.
#[derive(Debug)]
struct Linked {
    nlink: u64,
    size: u64,
    names: Vec<PathBuf>,
    copies: Vec<PathBuf>,
}

struct Walk<'a> {
    policy: &'a Policy,
    top: &'a Path,
    staged: Staged,
    links: HashMap<(u64, u64), Linked>,
}

/// Copies the directories and regular files under `from` to `to` (an
/// existing, private, empty directory), with their modification times.
pub fn stage(from: &Path, to: &Path, policy: &Policy) -> Result<Staged> {
    let name = CString::new(from.as_os_str().as_bytes())
        .map_err(|_| format!("{}: NUL in the path", from.display()))?;
    let top = open_at(None, &name, libc::O_DIRECTORY).map_err(|e| {
        // O_NOFOLLOW with O_DIRECTORY says ENOTDIR for a link: tell it apart.
        if std::fs::symlink_metadata(from).is_ok_and(|m| m.file_type().is_symlink()) {
            format!(
                "{}: a symbolic link: not followed (give the directory it points to)",
                from.display()
            )
        } else {
            format!("{}: not a directory ({e})", from.display())
        }
    })?;
    let mut w = Walk { policy, top: from, staged: Staged::default(), links: HashMap::new() };
    w.dir(&top, Path::new(""), to, 0)?;
    w.check_links()?;
    Ok(w.staged)
}

impl Walk<'_> {
    fn shown(&self, rel: &Path) -> String {
        self.top.join(rel).display().to_string()
    }

    /// Refuses, or records a warning and goes on, as the policy says.
    fn special(&mut self, rel: &Path, what: &str) -> Result<()> {
        let msg = format!("{}: {what}", self.shown(rel));
        if self.policy.skip_special {
            self.staged.warnings.push(format!("{msg}: left out"));
            Ok(())
        } else {
            Err(format!("{msg}: refused (only directories and regular files go on a disk)"))
        }
    }

    fn add_bytes(&mut self, n: u64) -> Result<()> {
        self.staged.bytes += n.div_ceil(CLUSTER) * CLUSTER;
        match self.policy.max_bytes {
            Some(max) if self.staged.bytes > max => Err(format!(
                "{}: the files need more than the {} MiB allowed",
                self.top.display(),
                max >> 20
            )),
            _ => Ok(()),
        }
    }

    /// Stages the directory `dir` (at `rel` under the top) into `to`;
    /// returns how many files it holds.
    fn dir(&mut self, dir: &OwnedFd, rel: &Path, to: &Path, depth: usize) -> Result<usize> {
        if depth > MAX_DEPTH {
            return Err(format!("{}: deeper than {MAX_DEPTH} directories", self.shown(rel)));
        }
        let names = read_names(dir).map_err(|e| format!("{}: {e}", self.shown(rel)))?;
        let mut files = 0;
        for name in names {
            let os = OsStr::from_bytes(name.to_bytes());
            let rel = rel.join(os);
            if self.policy.exclude.iter().any(|x| x == &rel) {
                continue;
            }
            let st = stat_at(dir, &name).map_err(|e| format!("{}: {e}", self.shown(&rel)))?;
            let dst = to.join(os);
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => files += self.subdir(dir, &name, &st, &rel, &dst, depth)?,
                libc::S_IFREG => files += self.file(dir, &name, &st, &rel, &dst)?,
                libc::S_IFLNK => {
                    let target = read_link_at(dir, &name)
                        .map(|t| format!(" (to {})", t.display()))
                        .unwrap_or_default();
                    self.special(&rel, &format!("a symbolic link{target}, not followed"))?
                }
                libc::S_IFIFO => self.special(&rel, "a FIFO")?,
                libc::S_IFSOCK => self.special(&rel, "a socket")?,
                libc::S_IFCHR => self.special(&rel, "a character device")?,
                libc::S_IFBLK => self.special(&rel, "a block device")?,
                _ => self.special(&rel, "a file of an unknown type")?,
            }
        }
        Ok(files)
    }

    fn subdir(
        &mut self,
        parent: &OwnedFd,
        name: &CStr,
        st: &libc::stat,
        rel: &Path,
        dst: &Path,
        depth: usize,
    ) -> Result<usize> {
        let Some(fd) = self.open_vetted(parent, name, libc::O_DIRECTORY, st, rel, "a directory")?
        else {
            return Ok(0);
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dst)
            .map_err(|e| format!("staging {}: {e}", dst.display()))?;
        let n = self.dir(&fd, rel, dst, depth + 1)?;
        if n == 0 && self.policy.skip_empty {
            // Empty directories are the engines' mount points (/proc, /dev,
            // /sys, ...), not the image's files.
            std::fs::remove_dir(dst).map_err(|e| format!("staging {}: {e}", dst.display()))?;
            return Ok(0);
        }
        self.add_bytes(CLUSTER)?;
        set_times(dst, st)?;
        Ok(n)
    }

    fn file(
        &mut self,
        parent: &OwnedFd,
        name: &CStr,
        st: &libc::stat,
        rel: &Path,
        dst: &Path,
    ) -> Result<usize> {
        let size = st.st_size as u64;
        if size == 0 && self.policy.skip_empty {
            // Files the engines create empty as bind-mount targets
            // (/etc/hosts, /run/.containerenv...) are not the image's.
            return Ok(0);
        }
        let Some(fd) = self.open_vetted(parent, name, libc::O_NONBLOCK, st, rel, "a file")? else {
            return Ok(0);
        };
        self.add_bytes(size)?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
            .map_err(|e| format!("staging {}: {e}", dst.display()))?;
        // At most the size it had when vetted: a file growing meanwhile
        // cannot overrun the size limit.
        io::copy(&mut File::from(fd).take(size), &mut out)
            .map_err(|e| format!("{}: {e}", self.shown(rel)))?;
        out.set_times(times(st)).map_err(|e| format!("staging {}: {e}", dst.display()))?;
        if st.st_nlink > 1 {
            let l = self.links.entry((st.st_dev, st.st_ino)).or_insert(Linked {
                nlink: st.st_nlink,
                size,
                names: Vec::new(),
                copies: Vec::new(),
            });
            l.names.push(rel.to_path_buf());
            l.copies.push(dst.to_path_buf());
        }
        self.staged.files += 1;
        Ok(1)
    }

    /// Opens the entry `name` of `parent` (`what` it is: "a file", "a
    /// directory") and checks that it is the inode `st` described; `None`
    /// if it cannot be read and the policy leaves it out.
    fn open_vetted(
        &mut self,
        parent: &OwnedFd,
        name: &CStr,
        flags: libc::c_int,
        st: &libc::stat,
        rel: &Path,
        what: &str,
    ) -> Result<Option<OwnedFd>> {
        match open_at(Some(parent), name, flags) {
            Ok(fd) => {
                self.same(&fd, st, rel)?;
                Ok(Some(fd))
            }
            Err(e) if unreadable(&e) => {
                self.special(rel, &format!("{what} that cannot be read ({e})"))?;
                Ok(None)
            }
            Err(e) => Err(format!("{}: {e}", self.shown(rel))),
        }
    }

    /// Checks that `fd`, just opened, is the inode `st` described.
    fn same(&self, fd: &OwnedFd, st: &libc::stat, rel: &Path) -> Result<()> {
        let now = fstat(fd).map_err(|e| format!("{}: {e}", self.shown(rel)))?;
        if (now.st_dev, now.st_ino, now.st_mode & libc::S_IFMT)
            != (st.st_dev, st.st_ino, st.st_mode & libc::S_IFMT)
        {
            return Err(format!("{}: replaced while being read", self.shown(rel)));
        }
        Ok(())
    }

    /// Run as root: a file with links outside the tree is refused or its
    /// copies removed.
    fn check_links(&mut self) -> Result<()> {
        if !is_root() {
            return Ok(());
        }
        let mut outside: Vec<Linked> = std::mem::take(&mut self.links)
            .into_values()
            .filter(|l| (l.names.len() as u64) < l.nlink)
            .collect();
        outside.sort_by(|a, b| a.names.cmp(&b.names));
        for l in outside {
            let what = format!(
                "a file with {} hard links, {} of them in the tree: another name for it lies outside",
                l.nlink,
                l.names.len()
            );
            self.special(&l.names[0], &what)?;
            for c in &l.copies {
                std::fs::remove_file(c).map_err(|e| format!("staging {}: {e}", c.display()))?;
                self.staged.files -= 1;
                self.staged.bytes -= l.size.div_ceil(CLUSTER) * CLUSTER;
            }
        }
        Ok(())
    }
}

fn unreadable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn times(st: &libc::stat) -> FileTimes {
    let at = |s: i64, ns: i64| {
        if s >= 0 {
            SystemTime::UNIX_EPOCH + Duration::new(s as u64, ns as u32)
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
        }
    };
    FileTimes::new()
        .set_accessed(at(st.st_atime, st.st_atime_nsec))
        .set_modified(at(st.st_mtime, st.st_mtime_nsec))
}

fn set_times(path: &Path, st: &libc::stat) -> Result<()> {
    File::open(path)
        .and_then(|f| f.set_times(times(st)))
        .map_err(|e| format!("staging {}: {e}", path.display()))
}

/// `openat(dir, name, flags | O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)`;
/// `dir` `None` is the current directory.
fn open_at(dir: Option<&OwnedFd>, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let dfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let flags = flags | libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: dfd is an open directory fd (borrowed for the call) or
    // AT_FDCWD; name is NUL-terminated.
    let fd = unsafe { libc::openat(dfd, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_at(dir: &OwnedFd, name: &CStr) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: an open directory fd, a NUL-terminated name, and room for
    // one stat.
    let r = unsafe {
        libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW)
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat succeeded, so it filled st.
    Ok(unsafe { st.assume_init() })
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: an open fd and room for one stat.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so it filled st.
    Ok(unsafe { st.assume_init() })
}

fn read_link_at(dir: &OwnedFd, name: &CStr) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: an open directory fd, a NUL-terminated name, and a buffer of
    // buf.len() bytes.
    let n = unsafe {
        libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsStr::from_bytes(&buf)))
}

/// The names in the directory `dir`, but `.` and `..`, sorted.
fn read_names(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    // fdopendir owns the fd it is given: give it a duplicate.
    let raw = dir.try_clone()?.into_raw_fd();
    // SAFETY: raw is an open directory fd whose ownership passes to the
    // DIR stream (closedir closes it).
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so raw is still ours to close.
        unsafe { libc::close(raw) };
        return Err(e);
    }
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is this thread's; readdir reports errors only there.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: stream is an open DIR stream, used by this thread only.
        let ent = unsafe { libc::readdir(stream) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) { Ok(()) } else { Err(e) };
        }
        // SAFETY: readdir returned an entry whose d_name is NUL-terminated
        // and valid until the next readdir on this stream.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    };
    // SAFETY: the stream from fdopendir, closed once.
    unsafe { libc::closedir(stream) };
    result?;
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary directory removed when dropped.
    struct Tmp(PathBuf);

    impl Tmp {
        fn new(tag: &str) -> Tmp {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "nabla-walk-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mkfifo(p: &Path) {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// The tree `(path, content)` under `dir`, sorted.
    fn listing(dir: &Path) -> Vec<(String, String)> {
        fn walk(base: &Path, d: &Path, out: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                let m = std::fs::symlink_metadata(&p).unwrap();
                assert!(m.is_dir() || m.is_file(), "{rel} staged as {:?}", m.file_type());
                if m.is_dir() {
                    out.push((rel + "/", String::new()));
                    walk(base, &p, out);
                } else {
                    out.push((rel, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    /// A tree with every kind of entry that must not be read through.
    fn hostile(t: &Tmp) -> (PathBuf, PathBuf) {
        let outside = t.0.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "SECRET").unwrap();
        let tree = t.0.join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("ok.txt"), "ok").unwrap();
        std::fs::write(tree.join("..hidden"), "dots").unwrap();
        std::fs::write(tree.join("sub/inner.txt"), "inner").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), tree.join("leak")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("sub/dirleak")).unwrap();
        std::os::unix::fs::symlink("ok.txt", tree.join("inside-link")).unwrap();
        mkfifo(&tree.join("fifo"));
        std::os::unix::net::UnixListener::bind(tree.join("sock")).unwrap();
        (tree, outside)
    }

    #[test]
    fn refuses_each_special_entry_naming_it() {
        let t = Tmp::new("refuse");
        let (tree, _) = hostile(&t);
        let to = t.0.join("stage");
        std::fs::create_dir(&to).unwrap();
        let e = stage(&tree, &to, &Policy::default()).unwrap_err();
        // The first special entry in name order: the FIFO.
        assert!(e.contains("tree/fifo: a FIFO: refused"), "{e}");
        std::fs::remove_file(tree.join("fifo")).unwrap();
        std::fs::remove_dir_all(&to).unwrap();
        std::fs::create_dir(&to).unwrap();
        let e = stage(&tree, &to, &Policy::default()).unwrap_err();
        assert!(e.contains("tree/inside-link: a symbolic link (to ok.txt), not followed"), "{e}");
    }

    #[test]
    fn skips_links_and_special_files_and_reads_nothing_outside() {
        let t = Tmp::new("skip");
        let (tree, _) = hostile(&t);
        let to = t.0.join("stage");
        std::fs::create_dir(&to).unwrap();
        let policy = Policy { skip_special: true, ..Policy::default() };
        let s = stage(&tree, &to, &policy).unwrap();
        assert_eq!(
            listing(&to),
            [("..hidden", "dots"), ("ok.txt", "ok"), ("sub/", ""), ("sub/inner.txt", "inner"),]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(s.files, 3);
        let w = s.warnings.join("\n");
        for needle in [
            "tree/fifo: a FIFO: left out",
            "tree/sock: a socket: left out",
            "tree/leak: a symbolic link (to ",
            "tree/sub/dirleak: a symbolic link",
            "tree/inside-link: a symbolic link",
        ] {
            assert!(w.contains(needle), "{needle:?} not in {w}");
        }
    }

    #[test]
    fn a_symbolic_link_at_the_top_is_not_followed() {
        let t = Tmp::new("top");
        let real = t.0.join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("f"), "x").unwrap();
        std::os::unix::fs::symlink(&real, t.0.join("link")).unwrap();
        let to = t.0.join("stage");
        std::fs::create_dir(&to).unwrap();
        let policy = Policy { skip_special: true, ..Policy::default() };
        let e = stage(&t.0.join("link"), &to, &policy).unwrap_err();
        assert!(e.contains("link: a symbolic link: not followed"), "{e}");
        let e = stage(&t.0.join("none"), &to, &policy).unwrap_err();
        assert!(e.contains("none: not a directory (No such file"), "{e}");
        assert!(listing(&to).is_empty());
    }

    #[test]
    fn hard_links_out_of_the_tree_are_refused_as_root() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let t = Tmp::new("links");
        let tree = t.0.join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(t.0.join("secret"), "SECRET").unwrap();
        std::fs::hard_link(t.0.join("secret"), tree.join("leak")).unwrap();
        // Two names inside the tree for one file: fine.
        std::fs::write(tree.join("a"), "shared").unwrap();
        std::fs::hard_link(tree.join("a"), tree.join("b")).unwrap();
        let to = t.0.join("stage");
        std::fs::create_dir(&to).unwrap();
        let e = stage(&tree, &to, &Policy::default()).unwrap_err();
        assert!(e.contains("tree/leak: a file with 2 hard links, 1 of them in the tree"), "{e}");
        std::fs::remove_dir_all(&to).unwrap();
        std::fs::create_dir(&to).unwrap();
        let policy = Policy { skip_special: true, ..Policy::default() };
        let s = stage(&tree, &to, &policy).unwrap();
        assert_eq!(
            listing(&to),
            [("a", "shared"), ("b", "shared")].map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(s.files, 2);
        assert!(s.warnings.join("\n").contains("tree/leak: a file with 2 hard links"));
    }

    #[test]
    fn excludes_skips_empties_and_keeps_times() {
        let t = Tmp::new("empty");
        let tree = t.0.join("tree");
        for d in ["proc", "www/css", "etc"] {
            std::fs::create_dir_all(tree.join(d)).unwrap();
        }
        std::fs::write(tree.join("etc/hosts"), "").unwrap();
        std::fs::write(tree.join("app.nabla"), "elf").unwrap();
        std::fs::write(tree.join("www/index.html"), "hi").unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        File::open(tree.join("www/index.html"))
            .unwrap()
            .set_times(FileTimes::new().set_modified(old))
            .unwrap();
        let to = t.0.join("stage");
        std::fs::create_dir(&to).unwrap();
        let policy = Policy {
            skip_empty: true,
            exclude: vec![PathBuf::from("app.nabla")],
            ..Policy::default()
        };
        let s = stage(&tree, &to, &policy).unwrap();
        assert_eq!(
            listing(&to),
            [("www/", ""), ("www/index.html", "hi")].map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(s.files, 1);
        let m = std::fs::metadata(to.join("www/index.html")).unwrap();
        assert_eq!(m.modified().unwrap(), old);
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777, 0o600);
        // A size limit is a refusal, whatever the policy.
        std::fs::remove_dir_all(&to).unwrap();
        std::fs::create_dir(&to).unwrap();
        std::fs::write(tree.join("big"), vec![7u8; 3 << 20]).unwrap();
        let policy = Policy { skip_special: true, max_bytes: Some(2 << 20), ..Policy::default() };
        let e = stage(&tree, &to, &policy).unwrap_err();
        assert!(e.contains("need more than the 2 MiB allowed"), "{e}");
    }
}
