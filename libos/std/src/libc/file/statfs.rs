//! File-system totals: `statvfs`, `fstatvfs`, `statfs`, `fstatfs` (and
//! their `64` names, one layout on x86_64), over libos's FAT
//! (`FileSystem::stats`).
//!
//! A block is a cluster (`f_bsize` = `f_frsize` = the cluster size, as
//! Linux's vfat reports); `f_blocks` the data clusters, `f_bfree` =
//! `f_bavail` the free ones (FAT has no reserve for root). FAT has no
//! inode table: `f_files` and `f_ffree` are 0, as on Linux's vfat.
//! `f_namemax` is 255 (long names), `f_type` `MSDOS_SUPER_MAGIC`,
//! `f_fsid` the disk's number, `ST_RDONLY` on a read-only disk. The root
//! of a program without a disk is an empty read-only file system.

use libos::fs::FsStats;

use super::node::{Directory, FatFile, errno};
use super::{mounts, normal_at, stat_path};
use crate::libc::fd::{self, Res};
use crate::libc::{c_char, c_int, fail};

/// `MSDOS_SUPER_MAGIC`: what Linux's `statfs` reports for FAT.
pub const MSDOS_SUPER_MAGIC: i64 = 0x4d44;

/// `ST_VALID`: Linux sets it in `statfs`'s `f_flags`.
const ST_VALID: u64 = 0x20;

/// Longest name, in characters (VFAT long names).
const NAME_MAX: u64 = 255;

/// What a disk reports.
struct Totals {
    stats: FsStats,
    read_only: bool,
    fsid: u64,
}

/// The totals of disk `disk`.
fn totals(disk: Option<usize>) -> Res<Totals> {
    let empty = FsStats { cluster_size: 4096, total_clusters: 0, free_clusters: 0 };
    let Some(d) = disk else {
        return Ok(Totals { stats: empty, read_only: true, fsid: mounts::dev(None) });
    };
    let fs = mounts::fs(d)?;
    Ok(Totals {
        stats: fs.stats().map_err(errno)?,
        read_only: fs.read_only(),
        fsid: mounts::dev(disk),
    })
}

fn statvfs_of(t: &Totals) -> ::libc::statvfs64 {
    // SAFETY: statvfs64 is plain data; all zeroes is a valid value.
    let mut s: ::libc::statvfs64 = unsafe { core::mem::zeroed() };
    s.f_bsize = t.stats.cluster_size;
    s.f_frsize = t.stats.cluster_size;
    s.f_blocks = t.stats.total_clusters;
    s.f_bfree = t.stats.free_clusters;
    s.f_bavail = t.stats.free_clusters;
    s.f_fsid = t.fsid;
    s.f_flag = if t.read_only { ::libc::ST_RDONLY } else { 0 };
    s.f_namemax = NAME_MAX;
    s
}

fn statfs_of(t: &Totals) -> ::libc::statfs64 {
    // SAFETY: statfs64 is plain data; all zeroes is a valid value.
    let mut s: ::libc::statfs64 = unsafe { core::mem::zeroed() };
    s.f_type = MSDOS_SUPER_MAGIC;
    s.f_bsize = t.stats.cluster_size as i64;
    s.f_frsize = t.stats.cluster_size as i64;
    s.f_blocks = t.stats.total_clusters;
    s.f_bfree = t.stats.free_clusters;
    s.f_bavail = t.stats.free_clusters;
    s.f_namelen = NAME_MAX as i64;
    s.f_flags = (if t.read_only { ::libc::ST_RDONLY } else { 0 } | ST_VALID) as i64;
    // SAFETY: fsid_t is two ints; its fields are private in the libc
    // crate, so it is written as its bytes.
    unsafe {
        core::ptr::addr_of_mut!(s.f_fsid).cast::<[u32; 2]>().write([t.fsid as u32, 0]);
    }
    s
}

/// The totals of the disk a path is on.
///
/// # Safety
///
/// `path` is null or a NUL-terminated string.
unsafe fn path_totals(path: *const c_char) -> Res<Totals> {
    // SAFETY: the caller's contract.
    let n = unsafe { normal_at(::libc::AT_FDCWD, path) }?;
    stat_path(&n)?;
    totals(mounts::place(&n).disk)
}

/// The totals of the disk a descriptor's file is on; what is on no disk
/// (the console, pipes, sockets) reports the empty read-only root's, as
/// Linux reports its pseudo file systems'.
fn fd_totals(fd: c_int) -> Res<Totals> {
    let open = fd::get(fd)?;
    let any = open.file.as_any();
    if let Some(f) = any.downcast_ref::<FatFile>() {
        return totals(Some(f.node.disk()));
    }
    if let Some(d) = any.downcast_ref::<Directory>() {
        return totals(d.place().disk);
    }
    totals(None)
}

/// Writes `r` to `out`, or fails.
///
/// # Safety
///
/// `out` is writable.
unsafe fn put<T>(r: Res<T>, out: *mut T) -> c_int {
    match r {
        Ok(v) => {
            // SAFETY: the caller guarantees out is writable.
            unsafe { out.write(v) };
            0
        }
        Err(e) => fail(e),
    }
}

/// `statvfs64(path, buf)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string, `buf` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn statvfs64(path: *const c_char, buf: *mut ::libc::statvfs64) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { put(path_totals(path).map(|t| statvfs_of(&t)), buf) }
}

/// `statvfs(path, buf)`: as `statvfs64` (one layout on x86_64).
///
/// # Safety
///
/// `path` is a NUL-terminated string, `buf` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn statvfs(path: *const c_char, buf: *mut ::libc::statvfs) -> c_int {
    // SAFETY: the same contract; the layouts are the same.
    unsafe { statvfs64(path, buf.cast()) }
}

/// `fstatvfs64(fd, buf)`.
///
/// # Safety
///
/// `buf` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fstatvfs64(fd: c_int, buf: *mut ::libc::statvfs64) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { put(fd_totals(fd).map(|t| statvfs_of(&t)), buf) }
}

/// `fstatvfs(fd, buf)`.
///
/// # Safety
///
/// `buf` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fstatvfs(fd: c_int, buf: *mut ::libc::statvfs) -> c_int {
    // SAFETY: the same contract; the layouts are the same.
    unsafe { fstatvfs64(fd, buf.cast()) }
}

/// `statfs64(path, buf)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string, `buf` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn statfs64(path: *const c_char, buf: *mut ::libc::statfs64) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { put(path_totals(path).map(|t| statfs_of(&t)), buf) }
}

/// `statfs(path, buf)`.
///
/// # Safety
///
/// `path` is a NUL-terminated string, `buf` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn statfs(path: *const c_char, buf: *mut ::libc::statfs) -> c_int {
    // SAFETY: the same contract; the layouts are the same.
    unsafe { statfs64(path, buf.cast()) }
}

/// `fstatfs64(fd, buf)`.
///
/// # Safety
///
/// `buf` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fstatfs64(fd: c_int, buf: *mut ::libc::statfs64) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { put(fd_totals(fd).map(|t| statfs_of(&t)), buf) }
}

/// `fstatfs(fd, buf)`.
///
/// # Safety
///
/// `buf` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fstatfs(fd: c_int, buf: *mut ::libc::statfs) -> c_int {
    // SAFETY: the same contract; the layouts are the same.
    unsafe { fstatfs64(fd, buf.cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_reported_in_clusters_as_linux_vfat_does() {
        let t = Totals {
            stats: FsStats { cluster_size: 2048, total_clusters: 16_000, free_clusters: 1234 },
            read_only: true,
            fsid: 3,
        };
        let v = statvfs_of(&t);
        assert_eq!((v.f_bsize, v.f_frsize, v.f_blocks), (2048, 2048, 16_000));
        assert_eq!((v.f_bfree, v.f_bavail, v.f_files, v.f_ffree), (1234, 1234, 0, 0));
        assert_eq!((v.f_fsid, v.f_flag, v.f_namemax), (3, ::libc::ST_RDONLY, 255));
        let s = statfs_of(&t);
        assert_eq!((s.f_type, s.f_bsize, s.f_blocks, s.f_bavail), (0x4d44, 2048, 16_000, 1234));
        assert_eq!(s.f_flags as u64, ::libc::ST_RDONLY | ST_VALID);
        assert_eq!(s.f_namelen, 255);
        let rw = statvfs_of(&Totals { read_only: false, ..t });
        assert_eq!(rw.f_flag, 0);
    }

    #[test]
    fn the_layouts_of_the_64_names_are_the_plain_ones() {
        assert_eq!(size_of::<::libc::statvfs>(), size_of::<::libc::statvfs64>());
        assert_eq!(size_of::<::libc::statfs>(), size_of::<::libc::statfs64>());
    }
}
