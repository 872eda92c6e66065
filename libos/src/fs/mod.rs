//! A FAT16/FAT32 file system on a block device, with a std-shaped API.
//!
//! Built on embedded-sdmmc. Images made by the standard tools work:
//! `mkfs.fat --mbr=y` (the volume is found through the partition table in
//! its first sector) and `mcopy`, or the project's `nabla disk create`.
//! Long file names are readable (paths match the long name, or the 8.3
//! name, case-insensitively); new files and directories get 8.3 names, and
//! 8.3 names are listed as stored, in upper case.
//!
//! Two limits of embedded-sdmmc 0.10 shape the API: a deleted file's first
//! cluster stays allocated, so there is no delete; and a file truncated
//! (by [`FileSystem::create`] on an existing file) and then left empty
//! keeps one cluster, which `fsck.fat` reports (and repairs) as a length
//! mismatch. Rewriting a file with new, non-empty contents is clean.
//!
//! Paths are absolute (`/css/site.css`). Every call is synchronous and
//! leaves nothing open: a [`File`] is the only handle, and it closes when
//! dropped. A corrupt or non-FAT disk gives an [`FsError`], never a panic.

mod disk;
mod volume;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::ControlFlow;

use embedded_sdmmc::{
    ClusterId, LfnBuffer, Mode, RawDirectory, RawFile, RawVolume, ShortFileName, TimeSource,
    Timestamp, VolumeIdx, VolumeManager,
};

use crate::block::{BlockDevice, BlockError};
use crate::time::{SystemTime, UNIX_EPOCH};
use disk::Disk;

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
    /// The name cannot be stored (not 8.3 for a new entry, or invalid).
    InvalidName,
    /// The disk holds no FAT16/FAT32 volume that can be read.
    NotFat,
    /// The file system's structures are inconsistent.
    Corrupt,
    /// No space left on the volume.
    NoSpace,
    /// The directory is not empty.
    NotEmpty,
    /// The file is open already (only one handle per file).
    Busy,
    /// The disk is read-only.
    ReadOnly,
    /// FAT cannot hold a file this large (4 GiB - 1).
    TooLarge,
    /// The guest's heap cannot hold the file.
    OutOfMemory,
    /// Not supported by this implementation.
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
            Self::InvalidName => f.write_str("invalid name (new entries need 8.3 names)"),
            Self::NotFat => f.write_str("no FAT16/FAT32 volume on the disk"),
            Self::Corrupt => f.write_str("the file system is corrupt"),
            Self::NoSpace => f.write_str("no space left on the volume"),
            Self::NotEmpty => f.write_str("directory not empty"),
            Self::Busy => f.write_str("file is already open"),
            Self::ReadOnly => f.write_str("read-only"),
            Self::TooLarge => f.write_str("file too large for FAT"),
            Self::OutOfMemory => f.write_str("not enough memory to hold the file"),
            Self::Unsupported => f.write_str("unsupported operation"),
            Self::Device(e) => write!(f, "disk: {e}"),
        }
    }
}

impl core::error::Error for FsError {}

type Error = embedded_sdmmc::Error<BlockError>;

impl From<Error> for FsError {
    fn from(e: Error) -> Self {
        use embedded_sdmmc::Error as E;
        match e {
            E::DeviceError(BlockError::ReadOnly) => Self::ReadOnly,
            E::DeviceError(d) => Self::Device(d),
            E::NotFound => Self::NotFound,
            E::FilenameError(_) => Self::InvalidName,
            E::NoSuchVolume | E::Unsupported => Self::Unsupported,
            E::FormatError(_) | E::BadCluster | E::BadBlockSize(_) | E::InvalidOffset => {
                Self::Corrupt
            }
            E::FileAlreadyOpen | E::DirAlreadyOpen | E::TooManyOpenFiles | E::TooManyOpenDirs => {
                Self::Busy
            }
            E::OpenedDirAsFile => Self::IsADirectory,
            E::OpenedFileAsDir => Self::NotADirectory,
            E::DeleteNonEmptyDir => Self::NotEmpty,
            E::FileAlreadyExists | E::DirAlreadyExists => Self::AlreadyExists,
            E::DiskFull | E::NotEnoughSpace => Self::NoSpace,
            E::ReadOnly => Self::ReadOnly,
            E::EndOfFile => Self::Corrupt,
            _ => Self::Unsupported,
        }
    }
}

/// File timestamps from the wall clock, as UTC (FAT keeps local time and
/// no zone: the guest's local time is UTC).
#[derive(Debug, Clone, Copy)]
struct Clock;

impl TimeSource for Clock {
    fn get_timestamp(&self) -> Timestamp {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        Timestamp {
            year_since_1970: (y - 1970).clamp(0, 255) as u8,
            zero_indexed_month: (m - 1) as u8,
            zero_indexed_day: (d - 1) as u8,
            hours: (rem / 3600) as u8,
            minutes: (rem / 60 % 60) as u8,
            seconds: (rem % 60) as u8,
        }
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01
/// (Howard Hinnant's algorithm, proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Seconds since the epoch of a FAT timestamp taken as UTC.
fn unix_secs(t: &Timestamp) -> u64 {
    let y = 1970 + i64::from(t.year_since_1970);
    let m = i64::from(t.zero_indexed_month) + 1;
    let d = i64::from(t.zero_indexed_day) + 1;
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let doy = (153 * mm + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400
        + i64::from(t.hours) * 3600
        + i64::from(t.minutes) * 60
        + i64::from(t.seconds);
    secs.max(0) as u64
}

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
    /// directory entry's position; 1 for the root directory), for
    /// `st_ino`.
    pub id: u64,
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

const MAX_DIRS: usize = 8;
const MAX_FILES: usize = 16;

type Manager = VolumeManager<Disk, Clock, MAX_DIRS, MAX_FILES, 1>;

/// A mounted FAT volume.
pub struct FileSystem {
    mgr: Manager,
    volume: RawVolume,
    geometry: volume::Geometry,
}

impl fmt::Debug for FileSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSystem").finish_non_exhaustive()
    }
}

/// Mounts the FAT volume on `dev` (the first partition of its MBR, as
/// `mkfs.fat --mbr=y` writes it).
pub fn mount(dev: BlockDevice) -> Result<FileSystem, FsError> {
    let disk = Disk::new(dev);
    let geometry = volume::check(&disk)?;
    let mgr = Manager::new_with_limits(disk, Clock, 1000);
    let volume = mgr.open_raw_volume(VolumeIdx(0)).map_err(|e| match FsError::from(e) {
        FsError::Device(d) => FsError::Device(d),
        _ => FsError::NotFat,
    })?;
    Ok(FileSystem { mgr, volume, geometry })
}

/// A directory handle that closes itself.
struct Dir<'a> {
    fs: &'a FileSystem,
    raw: RawDirectory,
}

impl Drop for Dir<'_> {
    fn drop(&mut self) {
        let _ = self.fs.mgr.close_dir(self.raw);
    }
}

fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Splits `path` into its parent's components and its last name.
fn split(path: &str) -> Result<(Vec<&str>, &str), FsError> {
    let mut parts: Vec<&str> = components(path).collect();
    let name = parts.pop().ok_or(FsError::InvalidName)?;
    if parts.contains(&"..") || name == ".." {
        return Err(FsError::InvalidName);
    }
    Ok((parts, name))
}

impl FileSystem {
    fn root(&self) -> Result<Dir<'_>, FsError> {
        Ok(Dir { fs: self, raw: self.mgr.open_root_dir(self.volume)? })
    }

    /// Finds `name` in `dir` by long or short name, case-insensitively.
    fn lookup(&self, dir: &Dir<'_>, name: &str) -> Result<embedded_sdmmc::DirEntry, FsError> {
        let mut storage = [0u8; 256];
        let mut lfn = LfnBuffer::new(&mut storage);
        let mut found = None;
        self.mgr.iterate_dir_lfn(dir.raw, &mut lfn, |entry, long| {
            if entry.attributes.is_volume() {
                return ControlFlow::Continue(());
            }
            let matches = long.is_some_and(|l| l.eq_ignore_ascii_case(name))
                || entry.name.to_string().eq_ignore_ascii_case(name);
            if matches {
                found = Some(entry.clone());
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        found.ok_or(FsError::NotFound)
    }

    /// Opens the directory at the end of `parts`.
    fn walk(&self, parts: &[&str]) -> Result<Dir<'_>, FsError> {
        let mut dir = self.root()?;
        for part in parts {
            if *part == ".." {
                return Err(FsError::InvalidName);
            }
            let entry = self.lookup(&dir, part)?;
            if !entry.attributes.is_directory() {
                return Err(FsError::NotADirectory);
            }
            let next = self.mgr.open_dir(dir.raw, entry.name)?;
            dir = Dir { fs: self, raw: next };
        }
        Ok(dir)
    }

    fn metadata_of(entry: &embedded_sdmmc::DirEntry) -> Metadata {
        Metadata {
            is_dir: entry.attributes.is_directory(),
            len: if entry.attributes.is_directory() { 0 } else { u64::from(entry.size) },
            modified: unix_secs(&entry.mtime),
            read_only: entry.attributes.is_read_only(),
            // 16 entries of 32 bytes in a 512-byte block; 0 and 1 are left
            // out (1 is the root).
            id: u64::from(entry.entry_block.0) * 16 + u64::from(entry.entry_offset / 32) + 2,
        }
    }

    /// Metadata of `path` (`/` is the root directory).
    pub fn metadata(&self, path: &str) -> Result<Metadata, FsError> {
        if components(path).next().is_none() {
            return Ok(Metadata { is_dir: true, len: 0, modified: 0, read_only: false, id: 1 });
        }
        let (parents, name) = split(path)?;
        let dir = self.walk(&parents)?;
        Ok(Self::metadata_of(&self.lookup(&dir, name)?))
    }

    /// Lists the directory at `path`, without `.` and `..`.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let parts: Vec<&str> = components(path).collect();
        let dir = self.walk(&parts)?;
        let mut storage = [0u8; 256];
        let mut lfn = LfnBuffer::new(&mut storage);
        let mut out = Vec::new();
        self.mgr.iterate_dir_lfn(dir.raw, &mut lfn, |entry, long| {
            let short = entry.name.to_string();
            if !entry.attributes.is_volume() && short != "." && short != ".." {
                let name = long.map_or(short, ToString::to_string);
                out.push(DirEntry { name, metadata: Self::metadata_of(entry) });
            }
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    fn open_mode(&self, path: &str, mode: Mode) -> Result<File<'_>, FsError> {
        let (parents, name) = split(path)?;
        let dir = self.walk(&parents)?;
        let raw = match self.lookup(&dir, name) {
            Ok(entry) if entry.attributes.is_directory() => return Err(FsError::IsADirectory),
            // Data but no cluster: a corrupt entry, on which embedded-sdmmc
            // asserts (a panic) when a failed write leaves it to flush.
            Ok(entry) if entry.size > 0 && entry.cluster < ClusterId::EMPTY + 2 => {
                return Err(FsError::Corrupt);
            }
            Ok(entry) => {
                if mode == Mode::ReadWriteCreateOrTruncate {
                    self.check_chain(&entry)?;
                }
                self.mgr.open_file_in_dir(dir.raw, entry.name, mode)?
            }
            Err(FsError::NotFound) if mode != Mode::ReadOnly => {
                let short =
                    ShortFileName::create_from_str(name).map_err(|_| FsError::InvalidName)?;
                self.mgr.open_file_in_dir(dir.raw, short, mode)?
            }
            Err(e) => return Err(e),
        };
        Ok(File { fs: self, raw })
    }

    /// Checks the cluster chain of the file at `entry` before
    /// embedded-sdmmc truncates it: it trusts every link, frees what a
    /// corrupt chain points to (the FAT's reserved entries included) and
    /// then allocates cluster 0, on which it panics.
    fn check_chain(&self, entry: &embedded_sdmmc::DirEntry) -> Result<(), FsError> {
        let g = &self.geometry;
        let disk_entry = self.mgr.device(|d| {
            let mut b = [embedded_sdmmc::Block::new()];
            embedded_sdmmc::BlockDevice::read(d, &mut b, entry.entry_block)
                .map_err(FsError::Device)?;
            let at = entry.entry_offset as usize % embedded_sdmmc::Block::LEN;
            let [b] = b;
            let le = |i: usize| u64::from(u16::from_le_bytes([b[at + i], b[at + i + 1]]));
            Ok::<_, FsError>(le(26) | if g.fat32 { le(20) << 16 } else { 0 })
        })?;
        let mut cluster = disk_entry;
        if cluster < 2 {
            return Ok(());
        }
        // At most one step per cluster: a longer chain has a cycle.
        for _ in 0..=g.clusters {
            if !(2..g.clusters + 2).contains(&cluster) {
                return Err(FsError::Corrupt);
            }
            let next = self.mgr.device(|d| g.entry(d, cluster))?;
            if g.is_end(next) {
                return Ok(());
            }
            cluster = next;
        }
        Err(FsError::Corrupt)
    }

    /// Opens `path` for reading.
    pub fn open(&self, path: &str) -> Result<File<'_>, FsError> {
        self.open_mode(path, Mode::ReadOnly)
    }

    /// Creates `path`, or truncates it, for writing (a new name must be 8.3).
    pub fn create(&self, path: &str) -> Result<File<'_>, FsError> {
        self.open_mode(path, Mode::ReadWriteCreateOrTruncate)
    }

    /// Opens the existing file `path` for reading and writing, at its start.
    pub fn open_rw(&self, path: &str) -> Result<File<'_>, FsError> {
        let mut f = self.open_mode(path, Mode::ReadWriteAppend)?;
        f.seek(SeekFrom::Start(0))?;
        Ok(f)
    }

    /// Creates the new file `path` for reading and writing (`AlreadyExists`
    /// if it exists; the name must be 8.3).
    pub fn create_new(&self, path: &str) -> Result<File<'_>, FsError> {
        let (parents, name) = split(path)?;
        let dir = self.walk(&parents)?;
        if self.lookup(&dir, name).is_ok() {
            return Err(FsError::AlreadyExists);
        }
        let short = ShortFileName::create_from_str(name).map_err(|_| FsError::InvalidName)?;
        Ok(File {
            fs: self,
            raw: self.mgr.open_file_in_dir(dir.raw, short, Mode::ReadWriteCreate)?,
        })
    }

    /// Whether the disk is attached read-only.
    pub fn read_only(&self) -> bool {
        self.mgr.device(|d| d.device().read_only())
    }

    /// Opens `path` for appending, creating it if needed.
    pub fn append(&self, path: &str) -> Result<File<'_>, FsError> {
        self.open_mode(path, Mode::ReadWriteCreateOrAppend)
    }

    /// The whole contents of `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let mut f = self.open(path)?;
        // A length read from a corrupt directory must not become an
        // allocation the heap cannot hold.
        let capacity = self.mgr.device(|d| d.device().capacity());
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
        let mut f = self.open(path)?;
        if offset >= f.len() {
            return Ok(0);
        }
        f.seek(SeekFrom::Start(offset))?;
        let mut done = 0;
        while done < buf.len() {
            let n = f.read(&mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    /// Replaces the contents of `path` with `data`, creating it if needed.
    pub fn write(&self, path: &str, data: &[u8]) -> Result<(), FsError> {
        let mut f = self.create(path)?;
        f.write_all(data)?;
        f.close()
    }

    /// Creates the directory `path` (its name must be 8.3).
    pub fn create_dir(&self, path: &str) -> Result<(), FsError> {
        let (parents, name) = split(path)?;
        let dir = self.walk(&parents)?;
        if self.lookup(&dir, name).is_ok() {
            return Err(FsError::AlreadyExists);
        }
        let short = ShortFileName::create_from_str(name).map_err(|_| FsError::InvalidName)?;
        Ok(self.mgr.make_dir_in_dir(dir.raw, short)?)
    }

    /// Writes back everything buffered and flushes the disk.
    pub fn sync(&self) -> Result<(), FsError> {
        self.mgr.device(|d| d.device().flush()).map_err(FsError::Device)
    }
}

impl Drop for FileSystem {
    fn drop(&mut self) {
        let _ = self.mgr.close_volume(self.volume);
    }
}

/// An open file. Closes (and writes back its directory entry) when dropped;
/// [`File::close`] does the same and reports errors.
pub struct File<'a> {
    fs: &'a FileSystem,
    raw: RawFile,
}

impl fmt::Debug for File<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").field("len", &self.len()).finish_non_exhaustive()
    }
}

impl File<'_> {
    /// Reads into `buf`; 0 at the end of the file.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, FsError> {
        if buf.is_empty() || self.fs.mgr.file_eof(self.raw)? {
            return Ok(0);
        }
        Ok(self.fs.mgr.read(self.raw, buf)?)
    }

    /// Writes all of `buf` at the current position.
    pub fn write_all(&mut self, buf: &[u8]) -> Result<(), FsError> {
        let end = self.position().saturating_add(buf.len() as u64);
        if end > u64::from(embedded_sdmmc::MAX_FILE_SIZE) {
            return Err(FsError::TooLarge);
        }
        Ok(self.fs.mgr.write(self.raw, buf)?)
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.fs.mgr.file_length(self.raw).map_or(0, u64::from)
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current position.
    pub fn position(&self) -> u64 {
        self.fs.mgr.file_offset(self.raw).map_or(0, u64::from)
    }

    /// Moves the position; returns the new one.
    pub fn seek(&mut self, to: SeekFrom) -> Result<u64, FsError> {
        let target = match to {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(d) => i128::from(self.len()) + i128::from(d),
            SeekFrom::Current(d) => i128::from(self.position()) + i128::from(d),
        };
        let target = u32::try_from(target).map_err(|_| FsError::Unsupported)?;
        if u64::from(target) > self.len() {
            return Err(FsError::Unsupported);
        }
        self.fs.mgr.file_seek_from_start(self.raw, target)?;
        Ok(u64::from(target))
    }

    /// Writes the file's data and directory entry back to the disk.
    pub fn flush(&mut self) -> Result<(), FsError> {
        Ok(self.fs.mgr.flush_file(self.raw)?)
    }

    /// Closes the file, reporting what closing found.
    pub fn close(self) -> Result<(), FsError> {
        let this = core::mem::ManuallyDrop::new(self);
        Ok(this.fs.mgr.close_file(this.raw)?)
    }
}

impl Drop for File<'_> {
    fn drop(&mut self) {
        let _ = self.fs.mgr.close_file(self.raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert_both_ways() {
        for secs in [0u64, 315_532_800, 951_782_400, 1_700_000_000, 2_000_000_000] {
            let (y, m, d) = civil_from_days((secs / 86_400) as i64);
            let rem = secs % 86_400;
            let t = Timestamp {
                year_since_1970: (y - 1970) as u8,
                zero_indexed_month: (m - 1) as u8,
                zero_indexed_day: (d - 1) as u8,
                hours: (rem / 3600) as u8,
                minutes: (rem / 60 % 60) as u8,
                seconds: (rem % 60) as u8,
            };
            assert_eq!(unix_secs(&t), secs);
        }
    }

    #[test]
    fn paths_split_into_parent_and_name() {
        assert_eq!(split("/a/b/c.txt"), Ok((vec!["a", "b"], "c.txt")));
        assert_eq!(split("c.txt"), Ok((vec![], "c.txt")));
        assert_eq!(split("/./a//b/"), Ok((vec!["a"], "b")));
        assert_eq!(split("/"), Err(FsError::InvalidName));
        assert_eq!(split("/a/../b"), Err(FsError::InvalidName));
    }
}
