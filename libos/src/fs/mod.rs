//! A FAT12/16/32 file system on a block device, with a std-shaped API.
//!
//! libos's own implementation (docs/storage.md), in layers:
//!
//! * `bpb`: where the volume is (bare, or the MBR's first partition) and
//!   its geometry, every boot-sector field checked.
//! * `cache`: the volume's bytes: a write-back block cache whose flush
//!   writes in a fixed order of classes (data, FAT mirrors, FAT,
//!   directories, FSInfo), and direct transfers of up to 1 MiB for bulk
//!   file data.
//! * `fat`: FAT entries, chains, allocation, the free count and FSInfo.
//! * `name`, `dir`: names (VFAT long names, 8.3 aliases, case rules) and
//!   directory slots.
//! * `vol`: the mounted volume and its open files (shared between handles).
//! * `ops`: path operations (create, mkdir, remove, rename) in the write
//!   order that keeps a disk consistent if the guest dies at any point.
//!
//! Images made by the standard tools work: `mkfs.fat` (with `--mbr=y` or
//! without), `mcopy`, or the project's `nabla disk create`. Long names are
//! read and written; lookups ignore case and names keep theirs. Paths are
//! absolute (`/css/site.css`). Every call is synchronous. A corrupt or
//! non-FAT disk gives an [`FsError`], never a panic, and nothing is ever
//! written outside the volume.

mod bpb;
mod cache;
mod dir;
mod fat;
mod file;
mod index;
mod name;
mod ops;
mod time;
mod vol;

#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use crate::block::{BlockDevice, BlockError};
pub use file::File;
use ops::{components, split};
use vol::Vol;

/// Why a file-system call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    /// No such file or directory.
    NotFound,
    /// A path component is a file, not a directory.
    NotADirectory,
    /// The path names a directory where a file is needed.
    IsADirectory,
    /// The file or directory exists already.
    AlreadyExists,
    /// A name FAT cannot hold at all (empty, `..`, a reserved character,
    /// longer than 255 UTF-16 units), or a directory moved into itself.
    InvalidName,
    /// The disk holds no FAT volume that can be read.
    NotFat,
    /// The file system's structures are inconsistent.
    Corrupt,
    /// No space left on the volume (or in a full fixed root directory).
    NoSpace,
    /// The directory is not empty.
    NotEmpty,
    /// The root directory cannot be removed or renamed.
    Busy,
    /// The disk is read-only, or the file was opened for reading only.
    ReadOnly,
    /// FAT cannot hold a file this large (4 GiB - 1).
    TooLarge,
    /// The guest's heap cannot hold the file.
    OutOfMemory,
    /// Not supported by this implementation (a negative seek).
    Unsupported,
    /// The block device failed.
    Device(BlockError),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("no such file or directory"),
            Self::NotADirectory => f.write_str("not a directory"),
            Self::IsADirectory => f.write_str("is a directory"),
            Self::AlreadyExists => f.write_str("already exists"),
            Self::InvalidName => f.write_str("invalid name"),
            Self::NotFat => f.write_str("no FAT volume on the disk"),
            Self::Corrupt => f.write_str("the file system is corrupt"),
            Self::NoSpace => f.write_str("no space left on the volume"),
            Self::NotEmpty => f.write_str("directory not empty"),
            Self::Busy => f.write_str("busy"),
            Self::ReadOnly => f.write_str("read-only"),
            Self::TooLarge => f.write_str("file too large for FAT"),
            Self::OutOfMemory => f.write_str("not enough memory to hold the file"),
            Self::Unsupported => f.write_str("unsupported operation"),
            Self::Device(e) => write!(f, "disk: {e}"),
        }
    }
}

impl core::error::Error for FsError {}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// A directory.
    pub is_dir: bool,
    /// Size in bytes (0 for directories).
    pub len: u64,
    /// Last modification, seconds since the epoch (FAT: 2 s resolution).
    pub modified: u64,
    /// The read-only attribute is set.
    pub read_only: bool,
    /// A number unique to the entry on this volume while it exists (its
    /// short slot's position; 1 for the root directory), for `st_ino`.
    pub id: u64,
}

/// The times FAT keeps for an entry, in seconds since the epoch (0 where
/// the entry has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// Created (2 s resolution plus FAT's 10 ms field).
    pub created: u64,
    /// Last access: a date only (midnight).
    pub accessed: u64,
    /// Last modification (2 s resolution).
    pub modified: u64,
}

/// Totals, as `statvfs` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Bytes per cluster (the allocation unit).
    pub cluster_size: u64,
    /// Data clusters on the volume.
    pub total_clusters: u64,
    /// Free ones.
    pub free_clusters: u64,
}

/// An entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The long name if the entry has one, else the 8.3 name.
    pub name: String,
    /// The entry's metadata.
    pub metadata: Metadata,
}

/// Where to seek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekFrom {
    /// From the start.
    Start(u64),
    /// From the end (usually negative).
    End(i64),
    /// From the current position.
    Current(i64),
}

/// A mounted FAT volume.
pub struct FileSystem {
    vol: RefCell<Vol>,
}

impl fmt::Debug for FileSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSystem").finish_non_exhaustive()
    }
}

/// Mounts the FAT volume on `dev`: the first partition of its MBR (as
/// `mkfs.fat --mbr=y` writes it) or, failing that, a volume that starts at
/// the first sector. The block cache holds 256 KiB.
pub fn mount(dev: BlockDevice) -> Result<FileSystem, FsError> {
    mount_with_cache(dev, cache::DEFAULT_BYTES)
}

/// [`mount`] with a block cache of `cache_bytes` (at least 8 pages of
/// 4 KiB, or of the sector size if larger).
pub fn mount_with_cache(dev: BlockDevice, cache_bytes: usize) -> Result<FileSystem, FsError> {
    Ok(FileSystem { vol: RefCell::new(Vol::mount(dev, cache_bytes)?) })
}

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    ReadWrite,
    Truncate,
    CreateNew,
    Append,
}

impl FileSystem {
    fn root_meta() -> Metadata {
        Metadata { is_dir: true, len: 0, modified: 0, read_only: false, id: 1 }
    }

    fn meta_of(v: &Vol, e: &dir::Entry) -> Metadata {
        let mut m = Metadata {
            is_dir: e.is_dir(),
            len: if e.is_dir() { 0 } else { u64::from(e.size()) },
            modified: time::from_fat(
                u16::from_le_bytes([e.raw[24], e.raw[25]]),
                u16::from_le_bytes([e.raw[22], e.raw[23]]),
            ),
            read_only: e.attr() & dir::ATTR_READ_ONLY != 0,
            id: e.off() / 32 + 2,
        };
        // An open file's length is its node's (shared by every handle).
        if let Some(n) = v.node_at(e.off()).and_then(|id| v.node_ref(id)) {
            m.len = n.len;
        }
        m
    }

    /// Metadata of the file open as node `id`, from its entry.
    fn node_meta(&self, id: usize) -> Result<Metadata, FsError> {
        let mut v = self.vol.borrow_mut();
        let off = v.node_ref(id).and_then(|n| n.entry).ok_or(FsError::NotFound)?;
        let raw = v.read_raw(off)?;
        let e = dir::Entry { name: String::new(), raw, slots: alloc::vec![off] };
        Ok(Self::meta_of(&v, &e))
    }

    /// Metadata of `path` (`/` is the root directory).
    pub fn metadata(&self, path: &str) -> Result<Metadata, FsError> {
        if components(path).next().is_none() {
            return Ok(Self::root_meta());
        }
        let mut v = self.vol.borrow_mut();
        let (_, _, e) = v.find(path)?;
        Ok(Self::meta_of(&v, &e))
    }

    /// The created, accessed and modified times of `path`.
    pub fn times(&self, path: &str) -> Result<Times, FsError> {
        if components(path).next().is_none() {
            return Ok(Times { created: 0, accessed: 0, modified: 0 });
        }
        let (_, _, e) = self.vol.borrow_mut().find(path)?;
        let r = |i: usize| u16::from_le_bytes([e.raw[i], e.raw[i + 1]]);
        let created = time::from_fat(r(16), r(14));
        Ok(Times {
            created: if created == 0 { 0 } else { created + u64::from(e.raw[13] / 100) },
            accessed: time::from_fat(r(18), 0),
            modified: time::from_fat(r(24), r(22)),
        })
    }

    /// Lists the directory at `path`, without `.` and `..`.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let mut v = self.vol.borrow_mut();
        let parts: Vec<&str> = components(path).collect();
        let (dir, _) = v.walk(&parts)?;
        let entries = v.list(dir)?;
        Ok(entries
            .iter()
            .map(|e| DirEntry { name: e.name.clone(), metadata: Self::meta_of(&v, e) })
            .collect())
    }

    fn open_mode(&self, path: &str, mode: Mode) -> Result<File<'_>, FsError> {
        let mut v = self.vol.borrow_mut();
        if mode != Mode::Read && v.store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        let (parents, name) = split(path)?;
        let (dir, _) = v.walk(&parents)?;
        let e = match v.lookup(dir, name)? {
            Some(e) if e.is_dir() => return Err(FsError::IsADirectory),
            Some(_) if mode == Mode::CreateNew => return Err(FsError::AlreadyExists),
            Some(e) => e,
            None if matches!(mode, Mode::Read | Mode::ReadWrite) => return Err(FsError::NotFound),
            None => v.create_entry(dir, name, dir::ATTR_ARCHIVE, 0)?,
        };
        let id = v.open_node(&e)?;
        let mut pos = 0;
        if mode == Mode::Truncate
            && let Err(err) = v.set_len(id, 0)
        {
            let _ = v.release(id);
            return Err(err);
        }
        if mode == Mode::Append {
            pos = v.node_ref(id).map_or(0, |n| n.len);
        }
        drop(v);
        Ok(File::new(self, id, pos, mode != Mode::Read, mode == Mode::Append))
    }

    /// Opens `path` for reading.
    pub fn open(&self, path: &str) -> Result<File<'_>, FsError> {
        self.open_mode(path, Mode::Read)
    }

    /// Creates `path`, or truncates it, for writing.
    pub fn create(&self, path: &str) -> Result<File<'_>, FsError> {
        self.open_mode(path, Mode::Truncate)
    }

    /// Opens the existing file `path` for reading and writing, at its start.
    pub fn open_rw(&self, path: &str) -> Result<File<'_>, FsError> {
        self.open_mode(path, Mode::ReadWrite)
    }

    /// Creates the new file `path` for reading and writing (`AlreadyExists`
    /// if it exists).
    pub fn create_new(&self, path: &str) -> Result<File<'_>, FsError> {
        self.open_mode(path, Mode::CreateNew)
    }

    /// Whether the disk is attached read-only.
    pub fn read_only(&self) -> bool {
        self.vol.borrow().store.dev.read_only()
    }

    /// Opens `path` for appending (every write goes to the end), creating
    /// it if needed.
    pub fn append(&self, path: &str) -> Result<File<'_>, FsError> {
        self.open_mode(path, Mode::Append)
    }

    /// The whole contents of `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let mut f = self.open(path)?;
        // A length read from a corrupt directory must not become an
        // allocation the heap cannot hold.
        let capacity = self.vol.borrow().store.len;
        if f.len() > capacity {
            return Err(FsError::Corrupt);
        }
        let mut out = Vec::new();
        out.try_reserve_exact(f.len() as usize).map_err(|_| FsError::OutOfMemory)?;
        out.resize(f.len() as usize, 0);
        let mut done = 0;
        while done < out.len() {
            let n = f.read(&mut out[done..])?;
            if n == 0 {
                return Err(FsError::Corrupt);
            }
            done += n;
        }
        Ok(out)
    }

    /// Reads up to `buf.len()` bytes of `path` from `offset`; returns how
    /// many (0 at or past the end).
    pub fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        self.open(path)?.read_at(offset, buf)
    }

    /// Replaces the contents of `path` with `data`, creating it if needed.
    pub fn write(&self, path: &str, data: &[u8]) -> Result<(), FsError> {
        let mut f = self.create(path)?;
        f.write_all(data)?;
        f.close()
    }

    /// Creates the directory `path`.
    pub fn create_dir(&self, path: &str) -> Result<(), FsError> {
        let mut v = self.vol.borrow_mut();
        let (parents, name) = split(path)?;
        let (dir, _) = v.walk(&parents)?;
        v.mkdir(dir, name)
    }

    /// Removes the file `path` (a file still open keeps working until its
    /// last handle closes; its clusters are freed then).
    pub fn remove_file(&self, path: &str) -> Result<(), FsError> {
        let mut v = self.vol.borrow_mut();
        let (dir, _, e) = v.find(path)?;
        v.remove_file(dir, &e)
    }

    /// Removes the empty directory `path`.
    pub fn remove_dir(&self, path: &str) -> Result<(), FsError> {
        if components(path).next().is_none() {
            return Err(FsError::Busy);
        }
        let mut v = self.vol.borrow_mut();
        let (dir, _, e) = v.find(path)?;
        v.remove_dir(dir, &e)
    }

    /// Renames (moves) the file or directory `from` to `to`, replacing a
    /// file `to` (or an empty directory, when `from` is one).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FsError> {
        if components(from).next().is_none() || components(to).next().is_none() {
            return Err(FsError::Busy);
        }
        self.vol.borrow_mut().rename(from, to)
    }

    /// Sets the modification time of `path` (seconds since the epoch; FAT
    /// keeps it to 2 s, from 1980 to 2107).
    pub fn set_modified(&self, path: &str, secs: u64) -> Result<(), FsError> {
        if components(path).next().is_none() {
            return Ok(());
        }
        let mut v = self.vol.borrow_mut();
        if v.store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        let (_, _, e) = v.find(path)?;
        if let Some(id) = v.node_at(e.off()) {
            v.set_node_mtime(id, secs)?;
            return v.commit(id);
        }
        let mut raw = e.raw;
        dir::set_mtime(&mut raw, secs);
        v.write_raw(e.off(), &raw)?;
        v.flush()
    }

    /// Cluster size and counts (the free count is taken from the FAT once,
    /// then kept).
    pub fn stats(&self) -> Result<FsStats, FsError> {
        let mut v = self.vol.borrow_mut();
        Ok(FsStats {
            cluster_size: u64::from(v.g.cluster_bytes),
            total_clusters: u64::from(v.g.clusters),
            free_clusters: u64::from(v.free_clusters()?),
        })
    }

    /// Where the volume lies on the device: (first byte, length). For the
    /// fuzz target's check that nothing is written outside it.
    #[doc(hidden)]
    pub fn volume_bounds(&self) -> (u64, u64) {
        let v = self.vol.borrow();
        (v.store.base, v.store.len)
    }

    /// Writes back everything buffered (every open file's data and entry,
    /// the FAT, FSInfo) and flushes the disk.
    pub fn sync(&self) -> Result<(), FsError> {
        self.vol.borrow_mut().sync_all()
    }

    /// Whether an operation on the volume is under way: true only while
    /// one runs (a panic inside it, seen from the guest's exit).
    pub fn in_use(&self) -> bool {
        self.vol.try_borrow_mut().is_err()
    }
}

impl Drop for FileSystem {
    fn drop(&mut self) {
        let _ = self.vol.get_mut().sync_all();
    }
}
