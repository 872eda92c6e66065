//! Block devices: a disk file on the host for each block device the image
//! declares.
//!
//! * `--block NAME=PATH` attaches the regular file `PATH` read-write,
//!   `--block-ro NAME=PATH` read-only. The file must exist; its size is the
//!   disk's capacity and must be a whole number of sectors, at least one.
//!   It is opened `O_CLOEXEC` (and `O_NONBLOCK` until it is known to be a
//!   regular file, so that a FIFO given by mistake cannot hang the tender).
//!   The tender neither creates nor truncates it.
//! * A disk has one writer or any number of readers: the tender takes an
//!   exclusive `flock` on a read-write disk and a shared one on a read-only
//!   disk, without waiting, and refuses a disk that another process holds
//!   otherwise (another tender, or a tool that locks the same way). The lock
//!   goes with the disk's fd, so it lasts exactly as long as the guest.
//! * `--block-sector-size NAME=BYTES` sets the sector size, a power of two
//!   from `abi::MIN_SECTOR_SIZE` (512, the default) to
//!   `abi::MAX_SECTOR_SIZE`.
//!
//! The guest reads with `pread64` and writes with `pwrite64` on the disk's
//! fd, and makes writes durable with `fdatasync`. The rules pin each call
//! to that fd and bound it so that no call reaches past the capacity
//! ([`rules`]): the file cannot grow, nor be read beyond its end. As a
//! second line of defence the tender sets `RLIMIT_FSIZE` to the largest
//! writable disk's capacity just before sealing ([`limit_file_size`]).
//! `docs/seccomp.md` explains both.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use abi::{DeviceInfo, DeviceKind};

use super::disk;
use super::{Device, DeviceFd};

/// The option that attaches a disk read-write.
pub const BLOCK_OPTION: &str = "--block";
/// The option that attaches a disk read-only.
pub const BLOCK_RO_OPTION: &str = "--block-ro";
/// The option that sets a disk's sector size.
pub const SECTOR_SIZE_OPTION: &str = "--block-sector-size";

/// The sector size of a disk without `--block-sector-size`.
pub const DEFAULT_SECTOR_SIZE: u32 = abi::MIN_SECTOR_SIZE;

/// The block options as given on the command line (flattened into the
/// tender's own): the module declares its options, as Solo5's do.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct BlockArgs {
    /// Attaches the disk file PATH, read-write, to the block device NAME
    /// the image declares (repeatable). Its size is the capacity: a whole
    /// number of sectors.
    #[arg(long = "block", value_name = "NAME=PATH")]
    pub block: Vec<String>,

    /// Attaches the disk file PATH read-only to the block device NAME: the
    /// guest cannot write it (repeatable).
    #[arg(long = "block-ro", value_name = "NAME=PATH")]
    pub block_ro: Vec<String>,

    /// The sector size of block device NAME: a power of two from 512 to
    /// 65536 [default: 512].
    #[arg(long = "block-sector-size", value_name = "NAME=BYTES")]
    pub sector_size: Vec<String>,
}

/// One `--block` or `--block-ro`, with its sector size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    /// The device name.
    pub name: String,
    /// The disk file, as given.
    pub path: PathBuf,
    /// Attached with `--block-ro`.
    pub read_only: bool,
    /// Bytes per sector.
    pub sector_size: u32,
}

impl BlockSpec {
    /// The option as given, for messages: `--block storage=disk.img`.
    pub fn option(&self) -> String {
        let option = if self.read_only { BLOCK_RO_OPTION } else { BLOCK_OPTION };
        format!("{option} {}={}", self.name, self.path.display())
    }
}

/// The block devices of one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockOptions {
    /// The `--block` options, then the `--block-ro` ones.
    pub specs: Vec<BlockSpec>,
}

/// A block option is malformed, or a disk cannot be attached.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// Not `NAME=VALUE` with a valid device name.
    #[error(transparent)]
    Option(#[from] super::OptionError),
    /// Two options attach one device.
    #[error("device `{name}` is attached twice: {first} and {second}")]
    Duplicate {
        /// The device.
        name: String,
        /// The first option.
        first: String,
        /// The second option.
        second: String,
    },
    /// The sector size is not a power of two in range, or not a number.
    #[error(
        "{SECTOR_SIZE_OPTION} {name}={value}: the sector size must be a power of two from {} to \
         {} bytes",
        abi::MIN_SECTOR_SIZE,
        abi::MAX_SECTOR_SIZE
    )]
    BadSectorSize {
        /// The device.
        name: String,
        /// The value as given.
        value: String,
    },
    /// Two `--block-sector-size` for one device.
    #[error("{SECTOR_SIZE_OPTION} is given twice for device `{name}`")]
    DuplicateSectorSize {
        /// The device.
        name: String,
    },
    /// `--block-sector-size` for a device with no `--block`.
    #[error("{SECTOR_SIZE_OPTION} {name}={value}: device `{name}` has no {BLOCK_OPTION}")]
    SectorSizeWithoutBlock {
        /// The device.
        name: String,
        /// The value as given.
        value: String,
    },
    /// The file cannot be opened (or examined).
    #[error("{option}: cannot open {path}{mode}: {source}{hint}")]
    Open {
        /// The option as given.
        option: String,
        /// The file.
        path: String,
        /// ` read-write` or ``.
        mode: &'static str,
        /// The host's error.
        source: std::io::Error,
        /// What to do about it, if we know.
        hint: &'static str,
    },
    /// The path is a directory.
    #[error("{option}: {path} is a directory, not a disk file")]
    Directory {
        /// The option as given.
        option: String,
        /// The path.
        path: String,
    },
    /// The path is a FIFO, a socket, a device node.
    #[error("{option}: {path} is not a regular file ({what})")]
    NotRegular {
        /// The option as given.
        option: String,
        /// The path.
        path: String,
        /// What it is.
        what: &'static str,
    },
    /// Smaller than one sector (empty included).
    #[error("{option}: file is smaller than one sector: {size} bytes, sector size {sector_size}")]
    TooSmall {
        /// The option as given.
        option: String,
        /// The file's size.
        size: u64,
        /// The sector size.
        sector_size: u32,
    },
    /// Not a whole number of sectors.
    #[error(
        "{option}: size {size} is not a multiple of the sector size {sector_size}: make it \
         {lower} or {upper} bytes (truncate -s), or use another {SECTOR_SIZE_OPTION}"
    )]
    NotMultiple {
        /// The option as given.
        option: String,
        /// The file's size.
        size: u64,
        /// The sector size.
        sector_size: u32,
        /// The size rounded down to a whole number of sectors.
        lower: u64,
        /// The size rounded up.
        upper: u64,
    },
    /// Another process holds a lock on the file that excludes ours.
    #[error(
        "{option}: {path} is in use by another process ({held}): a disk has one writer or \
         any number of readers"
    )]
    Locked {
        /// The option as given.
        option: String,
        /// The file.
        path: String,
        /// What the other process may be doing.
        held: &'static str,
    },
    /// Two devices on one file (by device and inode: links included).
    #[error("{option}: device `{name}` is given the same file as device `{first}`")]
    SharedFile {
        /// The later device's option.
        option: String,
        /// The later device.
        name: String,
        /// The earlier device.
        first: String,
    },
    /// The process may not write files as large as the disk.
    #[error(
        "{option}: the disk's capacity of {capacity} bytes is above this process's file size \
         limit of {limit} bytes (ulimit -f): raise the limit or attach the disk with \
         {BLOCK_RO_OPTION}"
    )]
    FileSizeLimit {
        /// The option as given.
        option: String,
        /// The disk's capacity.
        capacity: u64,
        /// The hard `RLIMIT_FSIZE`.
        limit: u64,
    },
    /// A host call failed unexpectedly.
    #[error("{what}: {source}")]
    Host {
        /// What was being done, naming the option or the limit.
        what: String,
        /// The host's error.
        source: std::io::Error,
    },
}

/// Splits `NAME=VALUE`, checks `NAME`, and refuses an empty `VALUE`.
fn split<'a>(
    option: &'static str,
    value: &'a str,
    expected: &'static str,
) -> Result<(&'a str, &'a str), BlockError> {
    let (name, rest) = super::split_option(option, value, expected)?;
    if rest.is_empty() {
        let value = value.to_string();
        return Err(super::OptionError::Syntax { option, value, expected }.into());
    }
    Ok((name, rest))
}

/// Parses a sector size: a power of two in the ABI's range.
fn parse_sector_size(value: &str) -> Option<u32> {
    let n: u32 = value.parse().ok()?;
    (n.is_power_of_two() && (abi::MIN_SECTOR_SIZE..=abi::MAX_SECTOR_SIZE).contains(&n)).then_some(n)
}

impl BlockOptions {
    /// Parses the block options. Whether each device is declared is
    /// checked later, against the image.
    pub fn parse(args: &BlockArgs) -> Result<Self, BlockError> {
        let mut specs: Vec<BlockSpec> = Vec::new();
        let given =
            args.block.iter().map(|v| (v, false)).chain(args.block_ro.iter().map(|v| (v, true)));
        for (value, read_only) in given {
            let option = if read_only { BLOCK_RO_OPTION } else { BLOCK_OPTION };
            let (name, path) = split(option, value, "NAME=PATH")?;
            let spec = BlockSpec {
                name: name.to_string(),
                path: PathBuf::from(path),
                read_only,
                sector_size: DEFAULT_SECTOR_SIZE,
            };
            if let Some(other) = specs.iter().find(|s| s.name == name) {
                return Err(BlockError::Duplicate {
                    name: name.to_string(),
                    first: other.option(),
                    second: spec.option(),
                });
            }
            specs.push(spec);
        }
        let mut sized: Vec<&str> = Vec::new();
        for value in &args.sector_size {
            let (name, size) = split(SECTOR_SIZE_OPTION, value, "NAME=BYTES")?;
            let Some(spec) = specs.iter_mut().find(|s| s.name == name) else {
                return Err(BlockError::SectorSizeWithoutBlock {
                    name: name.to_string(),
                    value: size.to_string(),
                });
            };
            if sized.contains(&name) {
                return Err(BlockError::DuplicateSectorSize { name: name.to_string() });
            }
            sized.push(name);
            spec.sector_size = parse_sector_size(size).ok_or_else(|| {
                BlockError::BadSectorSize { name: name.to_string(), value: size.to_string() }
            })?;
        }
        Ok(Self { specs })
    }

    /// The option for device `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&BlockSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
}

/// The transfer sizes the filter allows on a disk, from `abi::block_tiers`:
/// without duplicates (at large sector sizes the middle tier is the
/// largest) and without those larger than the disk, for which no offset
/// would do. (In `seccomp::policy`, which the build script shares.)
#[cfg(test)]
use crate::seccomp::disk_tiers as tiers;

/// The seccomp rules for a disk on `fd` attached as device `name`: see
/// `seccomp::disk_rules` (shared with the build script, which generates
/// the programs of the usual device combinations).
pub use crate::seccomp::disk_rules as rules;

/// The boot-info entry for a disk.
pub fn info(name: &str, fd: RawFd, capacity: u64, sector_size: u32, read_only: bool) -> DeviceInfo {
    let mut info = DeviceInfo {
        name: [0; abi::DEVICE_NAME_MAX + 1],
        kind: DeviceKind::Block as u32,
        fd,
        mtu: 0,
        sector_size,
        capacity,
        mac: [0; 6],
        flags: if read_only { abi::DEVICE_FLAG_READ_ONLY } else { 0 },
    };
    let bytes = name.as_bytes();
    let len = bytes.len().min(abi::DEVICE_NAME_MAX);
    info.name[..len].copy_from_slice(&bytes[..len]);
    info
}

/// Checks a disk's size against its sector size; returns the capacity.
fn check_size(option: &str, size: u64, sector_size: u32) -> Result<u64, BlockError> {
    let ss = u64::from(sector_size);
    if size < ss {
        return Err(BlockError::TooSmall { option: option.to_string(), size, sector_size });
    }
    if !size.is_multiple_of(ss) {
        let lower = size / ss * ss;
        return Err(BlockError::NotMultiple {
            option: option.to_string(),
            size,
            sector_size,
            lower,
            upper: lower + ss,
        });
    }
    Ok(size)
}

/// What a file that is not a regular one is, for messages.
fn file_kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Opens `spec.path` as the disk: a regular file, read-write unless
/// read-only. Returns the file and its size.
fn open(spec: &BlockSpec) -> Result<(File, std::fs::Metadata), BlockError> {
    let option = spec.option();
    let path = spec.path.display().to_string();
    let kind_error = |meta: &std::fs::Metadata| {
        if meta.is_dir() {
            Some(BlockError::Directory { option: option.clone(), path: path.clone() })
        } else if !meta.is_file() {
            let what = file_kind(meta.file_type());
            Some(BlockError::NotRegular { option: option.clone(), path: path.clone(), what })
        } else {
            None
        }
    };
    let open_error = |source: std::io::Error| {
        let hint = match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EROFS) | Some(libc::EPERM) if !spec.read_only => {
                ": attach it with --block-ro to read it only"
            }
            _ => "",
        };
        let mode = if spec.read_only { "" } else { " read-write" };
        BlockError::Open { option: option.clone(), path: path.clone(), mode, source, hint }
    };
    // A directory opened read-write would fail with a less helpful EISDIR.
    if let Ok(meta) = std::fs::metadata(&spec.path)
        && let Some(e) = kind_error(&meta)
    {
        return Err(e);
    }
    let file = OpenOptions::new()
        .read(true)
        .write(!spec.read_only)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&spec.path)
        .map_err(open_error)?;
    // Again on what was opened: the path may have changed meanwhile.
    let meta = file.metadata().map_err(open_error)?;
    if let Some(e) = kind_error(&meta) {
        return Err(e);
    }
    disk::set_blocking(file.as_raw_fd())
        .map_err(|source| BlockError::Host { what: format!("{option}: fcntl(F_SETFL)"), source })?;
    Ok((file, meta))
}

/// The files attached so far, to refuse one file for two devices.
#[derive(Debug, Default)]
pub struct AttachedFiles {
    /// `(st_dev, st_ino, device name)`.
    files: Vec<(u64, u64, String)>,
}

/// Attaches the disk `spec` names as block device `spec.name`.
pub fn attach(spec: &BlockSpec, attached: &mut AttachedFiles) -> Result<Device, BlockError> {
    let option = spec.option();
    let (file, meta) = open(spec)?;
    if let Some((_, _, first)) =
        attached.files.iter().find(|(dev, ino, _)| *dev == meta.dev() && *ino == meta.ino())
    {
        return Err(BlockError::SharedFile {
            option,
            name: spec.name.clone(),
            first: first.clone(),
        });
    }
    disk::lock(file.as_raw_fd(), spec.read_only).map_err(|e| match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => BlockError::Locked {
            option: option.clone(),
            path: spec.path.display().to_string(),
            held: if spec.read_only { "it is attached read-write" } else { "it is attached" },
        },
        _ => BlockError::Host { what: format!("{option}: flock"), source: e },
    })?;
    let capacity = check_size(&option, meta.len(), spec.sector_size)?;
    if !spec.read_only {
        let (_, limit) = disk::file_size_limits().map_err(|source| BlockError::Host {
            what: "getrlimit(RLIMIT_FSIZE)".to_string(),
            source,
        })?;
        if capacity > limit {
            return Err(BlockError::FileSizeLimit { option, capacity, limit });
        }
    }
    attached.files.push((meta.dev(), meta.ino(), spec.name.clone()));
    let fd = file.as_raw_fd();
    Ok(Device {
        info: info(&spec.name, fd, capacity, spec.sector_size, spec.read_only),
        rules: rules(&spec.name, fd, capacity, spec.sector_size, spec.read_only),
        pollable: 0,
        fd: DeviceFd::Owned(file.into()),
    })
}

/// What [`limit_file_size`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSizeLimit {
    /// No writable disk: nothing to bound.
    None,
    /// `RLIMIT_FSIZE` is now this many bytes.
    Set(u64),
    /// Not lowered: the console (fd 1) is a regular file, which the limit
    /// would cut off once the guest's output reached it. The soft limit is
    /// raised to the hard one if it was below the largest capacity.
    ConsoleIsAFile(u64),
}

/// The largest capacity among the writable disks in `infos`: the file
/// size limit the guest needs.
pub fn needed_file_size(infos: &[DeviceInfo]) -> Option<u64> {
    infos
        .iter()
        .filter(|i| i.kind == DeviceKind::Block as u32)
        .filter(|i| i.flags & abi::DEVICE_FLAG_READ_ONLY == 0)
        .map(|i| i.capacity)
        .max()
}

/// Sets `RLIMIT_FSIZE` (soft and hard) to the largest writable disk's
/// capacity, unless the console is a regular file (then it only makes sure
/// the soft limit lets the guest write the end of every disk). Call it last
/// before sealing: the tender writes no file afterwards (the BPF export
/// into a memfd, which the limit would cover too, is done by then).
pub fn limit_file_size(infos: &[DeviceInfo]) -> Result<FileSizeLimit, BlockError> {
    let Some(bytes) = needed_file_size(infos) else {
        return Ok(FileSizeLimit::None);
    };
    let host = |what: &str| {
        let what = what.to_string();
        move |source| BlockError::Host { what, source }
    };
    if disk::is_regular_file(1).map_err(host("fstat of the console (fd 1)"))? {
        let (soft, hard) = disk::file_size_limits().map_err(host("getrlimit(RLIMIT_FSIZE)"))?;
        if soft < bytes {
            // `attach` checked that the hard limit is at least `bytes`.
            disk::set_file_size_limits(hard, hard).map_err(host("setrlimit(RLIMIT_FSIZE)"))?;
        }
        return Ok(FileSizeLimit::ConsoleIsAFile(bytes));
    }
    disk::set_file_size_limits(bytes, bytes).map_err(host("setrlimit(RLIMIT_FSIZE)"))?;
    Ok(FileSizeLimit::Set(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::Policy;
    use std::path::Path;

    fn spec(name: &str, path: &Path, read_only: bool, sector_size: u32) -> BlockSpec {
        BlockSpec { name: name.into(), path: path.to_path_buf(), read_only, sector_size }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn parse(block: &[&str], ro: &[&str], sizes: &[&str]) -> Result<BlockOptions, BlockError> {
        BlockOptions::parse(&BlockArgs {
            block: strings(block),
            block_ro: strings(ro),
            sector_size: strings(sizes),
        })
    }

    fn err(block: &[&str], ro: &[&str], sizes: &[&str]) -> String {
        parse(block, ro, sizes).unwrap_err().to_string()
    }

    /// A file of `size` bytes (sparse) in a fresh temporary directory.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str, size: u64) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "tender-block-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            File::create(&path).unwrap().set_len(size).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn options_parse_with_sector_sizes() {
        let o =
            parse(&["storage=/d/a.img", "b=x=y"], &["c=/d/c.img"], &["c=4096", "b=65536"]).unwrap();
        assert_eq!(
            o.specs,
            [
                spec("storage", Path::new("/d/a.img"), false, 512),
                spec("b", Path::new("x=y"), false, 65536),
                spec("c", Path::new("/d/c.img"), true, 4096),
            ]
        );
        assert_eq!(o.get("c").unwrap().option(), "--block-ro c=/d/c.img");
        assert_eq!(o.get("storage").unwrap().option(), "--block storage=/d/a.img");
        assert!(o.get("service0").is_none());
    }

    #[test]
    fn malformed_options_name_the_option() {
        assert_eq!(err(&["storage"], &[], &[]), "--block \"storage\": expected NAME=PATH");
        assert_eq!(err(&["storage="], &[], &[]), "--block \"storage=\": expected NAME=PATH");
        assert_eq!(err(&[], &["x"], &[]), "--block-ro \"x\": expected NAME=PATH");
        assert_eq!(
            err(&["Disk=a"], &[], &[]),
            "--block \"Disk=a\": `Disk` is not a device name: device name must match \
             [a-z][a-z0-9_]*"
        );
        assert_eq!(err(&["a=x"], &[], &["a"]), "--block-sector-size \"a\": expected NAME=BYTES");
    }

    #[test]
    fn bad_sector_sizes_are_refused() {
        for bad in ["0", "256", "1000", "131072", "4k", "-512", "", "4097"] {
            let e = parse(&["a=x"], &[], &[&format!("a={bad}")]);
            if bad.is_empty() {
                assert!(
                    matches!(e, Err(BlockError::Option(super::super::OptionError::Syntax { .. }))),
                    "{bad:?}"
                );
                continue;
            }
            assert_eq!(
                e.unwrap_err().to_string(),
                format!(
                    "--block-sector-size a={bad}: the sector size must be a power of two from \
                     512 to 65536 bytes"
                )
            );
        }
        for good in [512, 1024, 4096, 65536] {
            let o = parse(&["a=x"], &[], &[&format!("a={good}")]).unwrap();
            assert_eq!(o.specs[0].sector_size, good);
        }
    }

    #[test]
    fn duplicates_and_orphans_are_refused() {
        assert_eq!(
            err(&["a=x", "a=y"], &[], &[]),
            "device `a` is attached twice: --block a=x and --block a=y"
        );
        assert_eq!(
            err(&["a=x"], &["a=y"], &[]),
            "device `a` is attached twice: --block a=x and --block-ro a=y"
        );
        assert_eq!(
            err(&["a=x"], &[], &["b=4096"]),
            "--block-sector-size b=4096: device `b` has no --block"
        );
        assert_eq!(
            err(&["a=x"], &[], &["a=4096", "a=512"]),
            "--block-sector-size is given twice for device `a`"
        );
    }

    #[test]
    fn tiers_drop_duplicates_and_those_larger_than_the_disk() {
        let mib = 1 << 20;
        assert_eq!(tiers(512, 10 * mib), [512, 32768, mib]);
        assert_eq!(tiers(512, mib), [512, 32768, mib]);
        assert_eq!(tiers(512, mib - 512), [512, 32768]);
        assert_eq!(tiers(512, 512), [512]);
        assert_eq!(tiers(4096, 10 * mib), [4096, 262144, mib]);
        assert_eq!(tiers(16384, 10 * mib), [16384, mib]);
        assert_eq!(tiers(65536, 10 * mib), [65536, mib]);
        assert_eq!(tiers(65536, 65536), [65536]);
    }

    #[test]
    fn rules_bound_every_transfer_inside_the_disk() {
        let cap = 10 << 20;
        let r = rules("storage", 4, cap, 512, false);
        let text: Vec<String> = r.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            text,
            [
                "pread64(arg0 == 4, arg2 & 0xfffffffffffffdff == 0, arg3 <= 10485248)",
                "pread64(arg0 == 4, arg2 & 0xffffffffffff81ff == 0, arg3 <= 10452992)",
                "pread64(arg0 == 4, arg2 == 32768, arg3 <= 10452992)",
                "pread64(arg0 == 4, arg2 & 0xfffffffffff001ff == 0, arg3 <= 9437184)",
                "pread64(arg0 == 4, arg2 == 1048576, arg3 <= 9437184)",
                "pwrite64(arg0 == 4, arg2 & 0xfffffffffffffdff == 0, arg3 <= 10485248)",
                "pwrite64(arg0 == 4, arg2 & 0xffffffffffff81ff == 0, arg3 <= 10452992)",
                "pwrite64(arg0 == 4, arg2 == 32768, arg3 <= 10452992)",
                "pwrite64(arg0 == 4, arg2 & 0xfffffffffff001ff == 0, arg3 <= 9437184)",
                "pwrite64(arg0 == 4, arg2 == 1048576, arg3 <= 9437184)",
                "fdatasync(arg0 == 4)",
            ]
        );
        assert_eq!(
            r[0].why,
            "block read on disk fd 4 (storage): 0 or 1 sector of 512 bytes, ending inside \
             10485760 bytes"
        );
        assert_eq!(r[10].why, "block flush on disk fd 4 (storage): durable writes");
        // Read-only: reads only, no flush.
        let ro = rules("storage", 4, cap, 512, true);
        assert_eq!(ro.len(), 5);
        assert!(ro.iter().all(|r| r.syscall == "pread64"));
    }

    /// Whether a `pread64(fd, _, count, offset)` matches one of `rules`,
    /// evaluated as the filter would.
    use crate::seccomp::{Cmp, Rule};

    fn allows(rules: &[Rule], fd: u64, count: u64, offset: u64) -> bool {
        rules.iter().filter(|r| r.syscall == "pread64").any(|r| {
            r.args.iter().all(|&(arg, cmp)| {
                let v = match arg {
                    0 => fd,
                    2 => count,
                    3 => offset,
                    _ => unreachable!(),
                };
                match cmp {
                    Cmp::Eq(x) => v == x,
                    Cmp::Le(x) => v <= x,
                    Cmp::MaskedEq { mask, value } => v & mask == value,
                }
            })
        })
    }

    #[test]
    fn allowed_calls_end_inside_the_disk_and_libos_chunks_are_allowed() {
        for (ss, cap) in [
            (512u32, 3 * (1u64 << 20) + 3 * 512),
            (512, 100 * 512),
            (512, 512),
            (4096, (1 << 20) + 4096),
            (65536, 5 * 65536),
            (512, (5u64 << 30) + 512),
        ] {
            let r = rules("d", 4, cap, ss, false);
            let s = u64::from(ss);
            let mut counts: Vec<u64> =
                (0..=2 * abi::MAX_BLOCK_TRANSFER / s).map(|n| n * s).collect();
            counts.extend([1, s - 1, s + 1, u64::MAX, 1 << 32, (1 << 32) + s]);
            let offsets = [0, s, cap / 2 / s * s, cap - s, cap, cap + s, 1, u64::MAX, 1 << 32];
            for &count in &counts {
                for &offset in &offsets {
                    if allows(&r, 4, count, offset) {
                        assert!(count.is_multiple_of(s), "{ss} {cap}: count {count}");
                        assert!(count <= abi::MAX_BLOCK_TRANSFER, "{ss} {cap}: count {count}");
                        assert!(
                            offset.checked_add(count).is_some_and(|end| end <= cap),
                            "{ss} {cap}: {count} at {offset}"
                        );
                    }
                    assert!(!allows(&r, 5, count, offset));
                }
            }
            // Every chunk libos makes, for every request ending at the
            // capacity or a sector short of it.
            for start in [0, s, cap.saturating_sub(abi::MAX_BLOCK_TRANSFER + 3 * s) / s * s] {
                for end in [cap, cap - s] {
                    let mut off = start;
                    while off < end {
                        let limit = abi::block_chunk_limit(off, cap, s);
                        let chunk = (end - off).min(limit);
                        assert!(chunk > 0);
                        assert!(allows(&r, 4, chunk, off), "{ss} {cap}: chunk {chunk} at {off}");
                        off += chunk;
                    }
                }
            }
        }
    }

    #[test]
    fn sixty_three_disks_fit_in_one_program() {
        // The worst case: every disk writable, above 4 GiB (both halves of
        // the offset bound differ from disk to disk), at 512-byte sectors
        // (three tiers).
        // And each with its flush eventfds (opened after the disks and the
        // signalfds: fds from 4 + 63 + 2, two per disk).
        let mut p = Policy::base(2 + abi::MAX_DEVICES as u64);
        for i in 0..abi::MAX_DEVICES as u64 {
            let cap = (5 << 30) + (i << 32) + 512 * (i + 1);
            p.extend(rules(&format!("d{i}"), 4 + i as i32, cap, 512, false));
        }
        for i in 0..abi::MAX_DEVICES as i32 {
            let request = 69 + 2 * i;
            p.extend(crate::seccomp::flush_channel_rules(&format!("d{i}"), request, request + 1));
        }
        assert_eq!(p.rules.len(), 5 + 63 * 13);
        let prog = p.bpf().unwrap();
        assert!(prog.len() <= 4096, "BPF_MAXINSNS: {}", prog.len());
        eprintln!("63 writable disks: {} rules, {} BPF instructions", p.rules.len(), prog.len());
    }

    #[test]
    fn info_carries_fd_capacity_sector_size_and_read_only() {
        let i = info("storage", 6, 1 << 20, 4096, true);
        assert_eq!(&i.name[..8], b"storage\0");
        assert_eq!((i.kind, i.fd, i.capacity, i.sector_size), (2, 6, 1 << 20, 4096));
        assert_eq!((i.flags, i.mtu, i.mac), (abi::DEVICE_FLAG_READ_ONLY, 0, [0; 6]));
        assert_eq!(info("storage", 6, 1 << 20, 512, false).flags, 0);
    }

    #[test]
    fn sizes_are_checked_against_the_sector_size() {
        let o = "--block storage=d.img";
        assert_eq!(check_size(o, 1 << 20, 512).unwrap(), 1 << 20);
        assert_eq!(check_size(o, 512, 512).unwrap(), 512);
        assert_eq!(
            check_size(o, 0, 512).unwrap_err().to_string(),
            "--block storage=d.img: file is smaller than one sector: 0 bytes, sector size 512"
        );
        assert_eq!(
            check_size(o, 100, 512).unwrap_err().to_string(),
            "--block storage=d.img: file is smaller than one sector: 100 bytes, sector size 512"
        );
        assert_eq!(
            check_size(o, 1000, 512).unwrap_err().to_string(),
            "--block storage=d.img: size 1000 is not a multiple of the sector size 512: make it \
             512 or 1024 bytes (truncate -s), or use another --block-sector-size"
        );
        assert!(matches!(check_size(o, 4096 + 512, 4096), Err(BlockError::NotMultiple { .. })));
    }

    #[test]
    fn attach_opens_regular_files_only() {
        let mut seen = AttachedFiles::default();
        let f = TempFile::new("ok", 1 << 20);
        let d = attach(&spec("a", &f.0, false, 512), &mut seen).unwrap();
        assert_eq!((d.info.capacity, d.info.sector_size, d.info.flags), (1 << 20, 512, 0));
        assert_eq!(d.info.fd, d.fd.as_raw_fd());
        assert_eq!(d.rules.len(), 11);
        // The same file again, even read-only and by another name.
        let e = attach(&spec("b", &f.0, true, 512), &mut seen).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "--block-ro b={}: device `b` is given the same file as device `a`",
                f.0.display()
            )
        );
        drop(d);

        let dir = std::env::temp_dir();
        let e = attach(&spec("a", &dir, false, 512), &mut AttachedFiles::default()).unwrap_err();
        assert!(e.to_string().ends_with("is a directory, not a disk file"), "{e}");
        let e =
            attach(&spec("a", Path::new("/dev/null"), true, 512), &mut AttachedFiles::default())
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--block-ro a=/dev/null: /dev/null is not a regular file (a character device)"
        );
        let missing = dir.join("tender-block-test-does-not-exist");
        let e =
            attach(&spec("a", &missing, false, 512), &mut AttachedFiles::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "--block a={0}: cannot open {0} read-write: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }

    #[test]
    fn the_file_size_limit_covers_writable_disks_only() {
        let w = info("a", 4, 1 << 20, 512, false);
        let big_ro = info("b", 5, 1 << 30, 512, true);
        let small = info("c", 6, 4096, 512, false);
        assert_eq!(needed_file_size(&[w, big_ro, small]), Some(1 << 20));
        assert_eq!(needed_file_size(&[big_ro]), None);
        assert_eq!(needed_file_size(&[]), None);
        assert_eq!(limit_file_size(&[big_ro]).unwrap(), FileSizeLimit::None);
    }
}
