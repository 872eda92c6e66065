//! The snapshot: the immutable copy of the image that the guest is mapped
//! from.
//!
//! Segments are mapped `MAP_PRIVATE` from a file, and a private mapping's
//! pages that the guest has not written follow later writes to that file:
//! were the guest mapped from the image itself, whoever can write the image
//! could change the code of every running instance (an in-place write), or
//! crash them (a truncation: SIGBUS). A native executable is protected by
//! the kernel (`ETXTBSY`); a mapped guest is not. So the tender maps the
//! guest from a copy of the image that nothing writes after it is made,
//! and that every instance of the same bytes shares through the page
//! cache, as they shared the image's pages before:
//!
//! * **The cache** is a directory owned by the tender's user and writable
//!   by nobody else (`--image-cache`; by default `/run/nabla/images` for
//!   root, else `$XDG_RUNTIME_DIR/nabla-images` if that directory is the
//!   user's, else
//!   `/tmp/nabla-images-UID`). The tender refuses one owned by another user
//!   or writable by group or others.
//! * **Content files**, `sha256-HEX`, hold the part of an image that its
//!   program headers refer to ([`image::file_extent`]: headers, segments and
//!   notes, not the debug information), named by its SHA-256. One is
//!   written once, through an unnamed `O_TMPFILE`, made read-only (0444)
//!   and only then linked under its name; no tender opens one for writing
//!   again. Two images with the same loaded bytes share one file, also
//!   across container root file systems.
//! * **Inode keys**, `inode-DEV-INO-SIZE-MTIME-CTIME`, are hard links to the
//!   content file of the image with that identity, so that a start finds
//!   its snapshot with one `openat`, without reading or hashing the image.
//!   The key holds the change time, which every write to the image moves to
//!   the current time and which no user but root can set: a key names the
//!   bytes the image had. A key is made only for an image whose change time
//!   lies [`SETTLED`] in the past when it is read, so that a write in the
//!   same clock tick as the copy cannot go unseen.
//! * An image that changes while it is copied is read again (up to
//!   [`ATTEMPTS`] times); it is never used half old, half new.
//! * Old entries go when a new one is made: the other keys of the same
//!   inode, every key once there are more than [`MAX_KEYS`], and content
//!   files no key links to. Removing a file a guest runs from does not
//!   change its mapping, so this is always safe, as is `rm -r` of the
//!   cache.
//!
//! Should the cache be unusable (a read-only or full file system, a
//! directory of another user), the tender says so and runs the guest from a
//! sealed memfd (`F_SEAL_WRITE`, `_SHRINK`, `_GROW`): as immutable, but
//! shared with no other instance.
//!
//! What it does not protect against: root, and the tender's own user, who
//! can change the cache's files (and can attach a debugger to the guest
//! anyway). See docs/design.md.
//!
//! # Safety
//!
//! The unsafe calls are `openat`, `linkat`, `fchmod`, `memfd_create` and
//! `fcntl` on fds this module owns, with NUL-terminated names it builds;
//! none of them touches memory but those names.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::image::{self, ImageError};

/// How long ago the image's last change must be for a key to be made.
pub const SETTLED: Duration = Duration::from_secs(2);
/// How many times an image that keeps changing is read.
pub const ATTEMPTS: usize = 3;
/// Keys kept before all are dropped (each names one image file).
pub const MAX_KEYS: usize = 256;
/// Bytes read from the image to find its extent.
const HEAD: usize = 64 * 1024;
/// Bytes copied at a time.
const CHUNK: usize = 256 * 1024;

/// The snapshot could not be made: the guest is not started.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading the image failed.
    #[error("cannot read the image: {0}")]
    Read(#[source] io::Error),
    /// The image is a directory, a device or a pipe.
    #[error("not a regular file")]
    NotAFile,
    /// The headers are not those of a guest image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The program headers refer to more of the file than the guest's
    /// memory could hold.
    #[error(
        "its program headers refer to {extent} bytes of the file, more than --mem ({mem} bytes)"
    )]
    TooLarge {
        /// Bytes referred to.
        extent: u64,
        /// The guest's memory.
        mem: u64,
    },
    /// The image changed while it was copied, every time.
    #[error("the file changed while it was read, {ATTEMPTS} times: is it being written?")]
    Changing,
    /// Neither the cache nor a memfd could hold the copy.
    #[error("cannot make a private copy of the image: {0}")]
    Memfd(#[source] io::Error),
}

/// Why the cache directory is not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// It cannot be made, opened or written.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Another user owns it.
    #[error("owned by uid {owner}, not by this user (uid {euid})")]
    Owner {
        /// Its owner.
        owner: u32,
        /// The tender's effective uid.
        euid: u32,
    },
    /// Others may write into it.
    #[error("writable by group or others (mode {mode:o})")]
    Mode {
        /// Its permission bits.
        mode: u32,
    },
}

/// The default cache directory for this user.
pub fn default_dir() -> PathBuf {
    // SAFETY: geteuid has no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return PathBuf::from("/run/nabla/images");
    }
    // A runtime directory inherited from another user (a runtime that
    // switched users for the tender) is not this user's.
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && std::fs::metadata(d).is_ok_and(|m| m.uid() == euid));
    match runtime_dir {
        Some(d) => d.join("nabla-images"),
        None => PathBuf::from(format!("/tmp/nabla-images-{euid}")),
    }
}

/// The identity of an image file: it changes with every write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(file: &File) -> Result<Self, SnapshotError> {
        let m = file.metadata().map_err(SnapshotError::Read)?;
        if !m.is_file() {
            return Err(SnapshotError::NotAFile);
        }
        Ok(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// The key's file name.
    fn key(&self) -> String {
        format!(
            "{}{:x}-{}.{}-{}.{}",
            self.inode_prefix(),
            self.size,
            self.mtime.0,
            self.mtime.1,
            self.ctime.0,
            self.ctime.1
        )
    }

    /// What every key of this inode begins with.
    fn inode_prefix(&self) -> String {
        format!("inode-{:x}-{:x}-", self.dev, self.ino)
    }

    /// Whether the last change lies `SETTLED` before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let (s, ns) = self.ctime;
        let ctime = Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32);
        ctime + SETTLED <= since_epoch
    }
}

/// An open cache directory.
#[derive(Debug)]
pub struct Cache {
    dir: OwnedFd,
}

fn cstring(name: &str) -> CString {
    // The names are made here from hex digits and numbers: no NUL.
    CString::new(name).unwrap_or_default()
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

impl Cache {
    /// Opens the cache directory at `path`, making it (0700) if it does
    /// not exist, and checks that only this user can write into it.
    pub fn open(path: &Path) -> Result<Self, CacheError> {
        let dir = match Self::open_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
                Self::open_dir(path)?
            }
            r => r?,
        };
        let meta = File::from(dir.try_clone()?).metadata()?;
        // SAFETY: geteuid has no arguments and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if meta.uid() != euid {
            return Err(CacheError::Owner { owner: meta.uid(), euid });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(CacheError::Mode { mode: meta.mode() & 0o7777 });
        }
        Ok(Self { dir })
    }

    fn open_dir(path: &Path) -> io::Result<OwnedFd> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a NUL-terminated path; the fd returned is owned here.
        let fd = check(unsafe { libc::open(c.as_ptr(), flags) })?;
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Opens the entry `name` if it is one of this cache's: a regular file
    /// of this user that nobody may write, of `len` bytes if given.
    fn open_entry(&self, name: &str, len: Option<u64>) -> Option<File> {
        let c = cstring(name);
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: dir is an open directory, c a NUL-terminated name; the fd
        // returned is owned here.
        let fd = unsafe { libc::openat(self.dir.as_raw_fd(), c.as_ptr(), flags) };
        if fd < 0 {
            return None;
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        let m = file.metadata().ok()?;
        // SAFETY: geteuid has no arguments and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let sound = m.is_file()
            && m.uid() == euid
            && m.mode() & 0o222 == 0
            && len.is_none_or(|l| m.size() == l);
        if sound {
            Some(file)
        } else {
            // Not made by a tender: leave it out of every later lookup.
            self.remove(name);
            None
        }
    }

    fn remove(&self, name: &str) {
        let c = cstring(name);
        // SAFETY: dir is an open directory, c a NUL-terminated name.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) };
    }

    /// Hard-links the entry `from` as `to`; false if that failed.
    fn link(&self, from: &str, to: &str) -> bool {
        let (f, t) = (cstring(from), cstring(to));
        let d = self.dir.as_raw_fd();
        // SAFETY: dir is an open directory; both names NUL-terminated.
        unsafe { libc::linkat(d, f.as_ptr(), d, t.as_ptr(), 0) == 0 }
    }

    /// Gives the unnamed file `tmp` the name `name`; false if that failed
    /// (`EEXIST`: another tender was first).
    fn name_tmpfile(&self, tmp: &File, name: &str) -> bool {
        // linkat with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; through
        // /proc, the owner of an O_TMPFILE may link it.
        let proc = cstring(&format!("/proc/self/fd/{}", tmp.as_raw_fd()));
        let t = cstring(name);
        // SAFETY: both names NUL-terminated; dir is an open directory.
        unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc.as_ptr(),
                self.dir.as_raw_fd(),
                t.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            ) == 0
        }
    }

    /// A new unnamed file in the cache, readable and writable by its owner.
    fn tmpfile(&self) -> io::Result<File> {
        let flags = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
        // SAFETY: dir is an open directory, "." NUL-terminated; the fd
        // returned is owned here.
        let fd = check(unsafe { libc::openat(self.dir.as_raw_fd(), c".".as_ptr(), flags, 0o600) })?;
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// The names in the cache.
    fn names(&self) -> Vec<String> {
        let Ok(dir) = self.dir.try_clone() else { return Vec::new() };
        let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
        let Ok(entries) = std::fs::read_dir(path) else { return Vec::new() };
        entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect()
    }

    /// After a new key `key` for content `content`: drops the other keys of
    /// the same inode (`prefix`), every other key once there are too many,
    /// and content that no key links to any more.
    fn collect(&self, prefix: &str, key: Option<&str>, content: &str) {
        let names = self.names();
        let keys: Vec<&String> = names.iter().filter(|n| n.starts_with("inode-")).collect();
        let too_many = keys.len() > MAX_KEYS;
        for k in keys {
            if Some(k.as_str()) != key && (too_many || k.starts_with(prefix)) {
                self.remove(k);
            }
        }
        for n in names.iter().filter(|n| n.starts_with("sha256-") && *n != content) {
            let c = cstring(n);
            // SAFETY: a zeroed stat filled by fstatat; dir open, c NUL-terminated.
            let links = unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                let ret = libc::fstatat(
                    self.dir.as_raw_fd(),
                    c.as_ptr(),
                    &mut st,
                    libc::AT_SYMLINK_NOFOLLOW,
                );
                if ret == 0 { st.st_nlink } else { 0 }
            };
            if links == 1 {
                self.remove(n);
            }
        }
    }
}

/// Copies `[0, extent)` of `image` to `out`, returning its SHA-256; fails
/// with `UnexpectedEof` if the image is shorter than that by now.
fn copy_prefix(image: &File, extent: u64, out: &mut File) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < extent {
        let want = (extent - at).min(CHUNK as u64) as usize;
        let n = image.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // The bytes hashed are the bytes written: read once, used twice.
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    Ok(hasher.finalize().into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How much of `image` the snapshot holds: see [`image::file_extent`].
fn extent(image: &File, size: u64, mem: u64) -> Result<u64, SnapshotError> {
    let mut head = vec![0u8; HEAD.min(size as usize)];
    let n = image.read_at(&mut head, 0).map_err(SnapshotError::Read)?;
    head.truncate(n);
    let extent = match image::file_extent(&head) {
        Ok(e) => e,
        // A program header table beyond the first 64 KiB: a strange image,
        // which the full check of the snapshot judges. Copy what the guest
        // could hold.
        Err(ImageError::BadProgramHeaders { .. }) => size.min(mem),
        Err(e) => return Err(e.into()),
    };
    if extent > mem {
        return Err(SnapshotError::TooLarge { extent, mem });
    }
    Ok(extent.min(size))
}

/// The snapshot to map the guest from.
#[derive(Debug)]
pub struct Snapshot {
    /// Read-only (a cache entry) or sealed (a memfd).
    pub file: File,
    /// Why the snapshot is not in the cache, if it is not: the tender says
    /// so, since that instance then shares no page with others.
    pub uncached: Option<String>,
}

/// Makes (or finds) the snapshot of `image`. `mem` (the guest's memory)
/// bounds how much is copied. Without a usable cache (`cache` says why),
/// the snapshot is a sealed memfd.
pub fn take(
    image: &File,
    cache: Result<&Cache, &CacheError>,
    mem: u64,
) -> Result<Snapshot, SnapshotError> {
    let mut id = Identity::of(image)?;
    let mut uncached = cache.err().map(ToString::to_string);
    if let Ok(c) = cache
        && let Some(file) = c.open_entry(&id.key(), None)
    {
        return Ok(Snapshot { file, uncached });
    }
    for _ in 0..ATTEMPTS {
        let started = SystemTime::now();
        let extent = extent(image, id.size, mem)?;
        let copied = match cache {
            Ok(c) => c.tmpfile().and_then(|mut tmp| {
                let digest = copy_prefix(image, extent, &mut tmp)?;
                Ok((c, tmp, digest))
            }),
            Err(_) => Err(io::ErrorKind::Unsupported.into()),
        };
        let result = match copied {
            Ok((c, tmp, digest)) => Ok((Some(c), tmp, digest)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(e),
            Err(e) => {
                // No room or no O_TMPFILE in the cache: a memfd instead.
                if e.kind() != io::ErrorKind::Unsupported || cache.is_ok() {
                    uncached = Some(format!("cannot write a copy of the image: {e}"));
                }
                let mut m = memfd().map_err(SnapshotError::Memfd)?;
                copy_prefix(image, extent, &mut m).map(|digest| (None, m, digest))
            }
        };
        let (cache, file, digest) = match result {
            Ok(r) => r,
            // The image shrank under us: read it again.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                id = Identity::of(image)?;
                continue;
            }
            Err(e) => return Err(SnapshotError::Read(e)),
        };
        let now = Identity::of(image)?;
        if now != id {
            id = now;
            continue;
        }
        let file = match cache {
            None => seal(file).map_err(SnapshotError::Memfd)?,
            Some(c) => publish(c, file, &id, extent, &digest, started),
        };
        return Ok(Snapshot { file, uncached });
    }
    Err(SnapshotError::Changing)
}

/// Makes `tmp` read-only and names it in the cache, with a key for `id` if
/// the image had settled; returns the snapshot to map.
fn publish(
    cache: &Cache,
    tmp: File,
    id: &Identity,
    extent: u64,
    digest: &[u8; 32],
    started: SystemTime,
) -> File {
    let content = format!("sha256-{}", hex(digest));
    // SAFETY: fchmod on an fd owned here.
    unsafe { libc::fchmod(tmp.as_raw_fd(), 0o444) };
    let file = match cache.open_entry(&content, Some(extent)) {
        Some(existing) => existing,
        None if cache.name_tmpfile(&tmp, &content) => tmp,
        // Another tender named the same content first.
        None => cache.open_entry(&content, Some(extent)).unwrap_or(tmp),
    };
    let key = id.key();
    let keyed = id.settled(started) && cache.link(&content, &key);
    cache.collect(&id.inode_prefix(), keyed.then_some(key.as_str()), &content);
    file
}

fn memfd() -> io::Result<File> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: a NUL-terminated name; the fd returned is owned here.
    let fd = check(unsafe { libc::memfd_create(c"nabla-image".as_ptr(), flags) })?;
    // SAFETY: fd was just made and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Seals `m` against every change of its contents or size.
fn seal(m: File) -> io::Result<File> {
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on an fd owned here, with an integer argument.
    check(unsafe { libc::fcntl(m.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A scratch directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("tender-snapshot-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A file that is not an image: its extent is the whole file, up to mem.
    fn write(path: &Path, bytes: &[u8]) -> File {
        std::fs::write(path, bytes).unwrap();
        File::open(path).unwrap()
    }

    fn contents(f: &File) -> Vec<u8> {
        let mut v = vec![0; f.metadata().unwrap().len() as usize];
        f.read_exact_at(&mut v, 0).unwrap();
        v
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn non_images_are_refused_before_anything_is_copied() {
        let s = Scratch::new("refuse");
        let cache = Cache::open(&s.0.join("cache")).unwrap();
        let img = write(&s.0.join("img"), b"not an elf file at all");
        let err = take(&img, Ok(&cache), 1 << 20).unwrap_err();
        assert!(matches!(err, SnapshotError::Image(ImageError::NotElf)), "{err}");
        assert!(entries(&s.0.join("cache")).is_empty());
    }

    /// The smallest file `file_extent` accepts: an ELF header whose program
    /// header table (one PT_NOTE over `[0x1000, 0x1000 + n)`) follows it.
    fn fake_image(body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 0x1000];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little endian
        b[6] = 1; // version
        b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        b[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        b[ph + 8..ph + 16].copy_from_slice(&0x1000u64.to_le_bytes()); // p_offset
        b[ph + 32..ph + 40].copy_from_slice(&(body.len() as u64).to_le_bytes()); // p_filesz
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn the_snapshot_is_the_prefix_headers_refer_to_and_is_read_only() {
        let s = Scratch::new("prefix");
        let cache = Cache::open(&s.0.join("cache")).unwrap();
        let mut bytes = fake_image(b"loaded bytes");
        let loaded = bytes.len();
        bytes.extend_from_slice(b"debug information nothing maps");
        let img = write(&s.0.join("img"), &bytes);
        let snap = take(&img, Ok(&cache), 1 << 20).unwrap().file;
        assert_eq!(contents(&snap), &bytes[..loaded]);
        assert_eq!(snap.metadata().unwrap().permissions().mode() & 0o777, 0o444);
        // A fresh image gets no key (its change time has not settled).
        let names = entries(&s.0.join("cache"));
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("sha256-"));
    }

    #[test]
    fn rewriting_the_image_changes_no_snapshot() {
        let s = Scratch::new("rewrite");
        let cache = Cache::open(&s.0.join("cache")).unwrap();
        let path = s.0.join("img");
        let old = fake_image(b"old code");
        let img = write(&path, &old);
        let snap = take(&img, Ok(&cache), 1 << 20).unwrap().file;
        // In place, as `cp` over it would, then truncated.
        std::fs::write(&path, fake_image(b"new code")).unwrap();
        assert_eq!(contents(&snap), old);
        let again = take(&File::open(&path).unwrap(), Ok(&cache), 1 << 20).unwrap().file;
        assert_eq!(contents(&again), fake_image(b"new code"));
        std::fs::File::create(&path).unwrap();
        assert_eq!(contents(&snap), old);
    }

    #[test]
    fn a_settled_image_is_found_by_its_key_and_same_bytes_share_one_file() {
        let s = Scratch::new("key");
        let dir = s.0.join("cache");
        let cache = Cache::open(&dir).unwrap();
        let bytes = fake_image(b"code");
        let (a, b) = (s.0.join("a"), s.0.join("b"));
        std::fs::write(&a, &bytes).unwrap();
        std::fs::write(&b, &bytes).unwrap();
        // Backdating mtime does not settle the change time (the kernel
        // sets it): key decisions are made on a clock we move instead.
        let ia = Identity::of(&File::open(&a).unwrap()).unwrap();
        assert!(!ia.settled(SystemTime::now()));
        assert!(ia.settled(SystemTime::now() + SETTLED + Duration::from_secs(1)));
        let snap_a = take(&File::open(&a).unwrap(), Ok(&cache), 1 << 20).unwrap().file;
        let snap_b = take(&File::open(&b).unwrap(), Ok(&cache), 1 << 20).unwrap().file;
        let (ma, mb) = (snap_a.metadata().unwrap(), snap_b.metadata().unwrap());
        assert_eq!((ma.dev(), ma.ino()), (mb.dev(), mb.ino()), "one content file");
        // Link a key by hand, as publish does once settled: a lookup then
        // finds it without reading the image.
        let content = entries(&dir).into_iter().find(|n| n.starts_with("sha256-")).unwrap();
        assert!(cache.link(&content, &ia.key()));
        let found = cache.open_entry(&ia.key(), None).unwrap();
        assert_eq!(found.metadata().unwrap().ino(), ma.ino());
    }

    #[test]
    fn entries_not_made_by_a_tender_are_ignored_and_removed() {
        let s = Scratch::new("foreign");
        let dir = s.0.join("cache");
        let cache = Cache::open(&dir).unwrap();
        let img = File::open({
            let p = s.0.join("img");
            std::fs::write(&p, fake_image(b"code")).unwrap();
            p
        })
        .unwrap();
        let key = Identity::of(&img).unwrap().key();
        // A writable file under the image's key (planted, or chmodded).
        std::fs::write(dir.join(&key), b"planted").unwrap();
        let snap = take(&img, Ok(&cache), 1 << 20).unwrap().file;
        assert_eq!(contents(&snap), fake_image(b"code"));
        assert!(!dir.join(&key).exists());
    }

    #[test]
    fn stale_keys_of_the_inode_and_unreferenced_content_are_collected() {
        let s = Scratch::new("collect");
        let dir = s.0.join("cache");
        let cache = Cache::open(&dir).unwrap();
        for (name, mode) in [("sha256-old", 0o444), ("sha256-kept", 0o444)] {
            std::fs::write(dir.join(name), b"x").unwrap();
            std::fs::set_permissions(dir.join(name), PermissionsExt::from_mode(mode)).unwrap();
        }
        assert!(cache.link("sha256-old", "inode-1-2-5-0.0-0.0"));
        assert!(cache.link("sha256-kept", "inode-9-9-5-0.0-0.0"));
        std::fs::write(dir.join("sha256-new"), b"y").unwrap();
        assert!(cache.link("sha256-new", "inode-1-2-6-1.0-1.0"));
        cache.collect("inode-1-2-", Some("inode-1-2-6-1.0-1.0"), "sha256-new");
        assert_eq!(
            entries(&dir),
            ["inode-1-2-6-1.0-1.0", "inode-9-9-5-0.0-0.0", "sha256-kept", "sha256-new"]
        );
    }

    #[test]
    fn a_cache_directory_others_can_write_is_refused() {
        let s = Scratch::new("mode");
        let dir = s.0.join("cache");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o777)).unwrap();
        assert!(matches!(Cache::open(&dir), Err(CacheError::Mode { mode: 0o777 })));
        let link = s.0.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(Cache::open(&link), Err(CacheError::Io(_))), "a symlink is not followed");
    }

    #[test]
    fn without_a_cache_the_snapshot_is_a_sealed_memfd() {
        let s = Scratch::new("memfd");
        let bytes = fake_image(b"code");
        let img = write(&s.0.join("img"), &bytes);
        let why = CacheError::Mode { mode: 0o777 };
        let snap = take(&img, Err(&why), 1 << 20).unwrap().file;
        assert_eq!(contents(&snap), bytes);
        assert!(snap.write_at(b"x", 0).is_err(), "sealed against writes");
        assert!(snap.set_len(1).is_err(), "sealed against shrinking");
    }

    #[test]
    fn headers_that_refer_past_mem_are_refused() {
        let s = Scratch::new("large");
        let cache = Cache::open(&s.0.join("cache")).unwrap();
        let img = write(&s.0.join("img"), &fake_image(&[0; 8192]));
        let err = take(&img, Ok(&cache), 8192).unwrap_err();
        assert!(matches!(err, SnapshotError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn default_directories() {
        let d = default_dir();
        // SAFETY: geteuid has no arguments and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(d, Path::new("/run/nabla/images"));
        } else {
            assert!(d.ends_with("nabla-images") || d.to_string_lossy().contains("nabla-images-"));
        }
    }
}
