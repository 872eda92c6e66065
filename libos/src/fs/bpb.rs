//! The volume's geometry: where the FAT volume lies on the disk (a bare
//! "superfloppy" volume, or the first partition of an MBR) and what its boot
//! parameter block says, every field checked.
//!
//! Everything later code derives from the geometry (a cluster's offset, a
//! FAT entry's offset, the root directory's) lies inside the volume, and the
//! volume inside the partition and the disk: [`Geometry::check_range`] is the
//! one check every transfer passes, so a corrupt chain or entry can make a
//! read fail, never a transfer outside the volume.

use super::FsError;

/// Partition types of FAT volumes: FAT12, FAT16 (<32 MiB, ≥32 MiB, LBA),
/// FAT32 (CHS, LBA).
const FAT_PARTITION_TYPES: [u8; 6] = [0x01, 0x04, 0x06, 0x0e, 0x0b, 0x0c];
/// Fewer data clusters make FAT12 (the count alone decides, as Microsoft's
/// specification and Linux say).
const MAX_FAT12_CLUSTERS: u32 = 4084;
/// Fewer make FAT16; from 65525 on, FAT32.
const MAX_FAT16_CLUSTERS: u32 = 65524;
/// The most FAT32 can number (0x0FFFFFF6 and up are reserved values).
const MAX_FAT32_CLUSTERS: u32 = 0x0fff_fff5 - 2;

/// The FAT variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Fat12,
    Fat16,
    Fat32,
}

/// Where everything is, in bytes from the start of the volume.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub kind: Kind,
    /// The volume's first byte on the device.
    pub vol_off: u64,
    /// The volume's length in bytes (usable: a whole number of device
    /// sectors).
    pub vol_len: u64,
    /// Bytes per cluster.
    pub cluster_bytes: u32,
    /// The first FAT's offset, and each FAT's length.
    pub fat_off: u64,
    pub fat_len: u64,
    /// Number of FATs (1 or 2).
    pub fats: u32,
    /// FAT12/16: the fixed root directory's offset and number of entries.
    pub root_off: u64,
    pub root_entries: u32,
    /// FAT32: the root directory's first cluster.
    pub root_cluster: u32,
    /// The first data cluster's (cluster 2's) offset.
    pub data_off: u64,
    /// Data clusters: valid numbers are 2 up to `clusters + 1`.
    pub clusters: u32,
    /// FAT32: the FSInfo sector's offset, if it has valid signatures.
    pub fsinfo_off: Option<u64>,
    /// FSInfo's free count and next free hint as found at mount.
    pub fsinfo_free: u32,
    pub fsinfo_next: u32,
}

fn u16_at(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Geometry {
    /// Whether `cluster` numbers a data cluster.
    pub fn valid_cluster(&self, cluster: u32) -> bool {
        (2..self.clusters.saturating_add(2)).contains(&cluster)
    }

    /// Offset of data cluster `cluster` (which must be valid).
    pub fn cluster_off(&self, cluster: u32) -> Result<u64, FsError> {
        if !self.valid_cluster(cluster) {
            return Err(FsError::Corrupt);
        }
        Ok(self.data_off + u64::from(cluster - 2) * u64::from(self.cluster_bytes))
    }

    /// Checks that `[off, off + len)` lies inside the volume.
    pub fn check_range(&self, off: u64, len: u64) -> Result<(), FsError> {
        match off.checked_add(len) {
            Some(end) if end <= self.vol_len => Ok(()),
            _ => Err(FsError::Corrupt),
        }
    }

    /// The value that ends a chain (written for a chain's last cluster).
    pub fn eoc(&self) -> u32 {
        match self.kind {
            Kind::Fat12 => 0xfff,
            Kind::Fat16 => 0xffff,
            Kind::Fat32 => 0x0fff_ffff,
        }
    }

    /// Whether a FAT entry's value ends a chain.
    pub fn is_eoc(&self, v: u32) -> bool {
        v >= match self.kind {
            Kind::Fat12 => 0xff8,
            Kind::Fat16 => 0xfff8,
            Kind::Fat32 => 0x0fff_fff8,
        }
    }
}

/// Reads bytes of the device at an offset.
pub(crate) type ReadFn<'a> = &'a mut dyn FnMut(u64, &mut [u8]) -> Result<(), FsError>;

/// Finds and checks the FAT volume on a device of `capacity` bytes and
/// sector size `sector`, reading its sectors with `read(offset, buf)`.
pub(crate) fn locate(capacity: u64, sector: u32, read: ReadFn<'_>) -> Result<Geometry, FsError> {
    let ss = u64::from(sector);
    if ss < 512 || !ss.is_power_of_two() || capacity < ss {
        return Err(FsError::NotFat);
    }
    let mut first = alloc::vec![0u8; sector as usize];
    read(0, &mut first)?;
    // The first partition of an MBR (the partition table's LBAs count
    // device sectors), if its entry is sound and holds a FAT volume; else
    // a volume at the start of the disk.
    let part = &first[446..462];
    if u16_at(&first, 510) == 0xaa55
        && part[0] & 0x7f == 0
        && FAT_PARTITION_TYPES.contains(&part[4])
    {
        let start = u64::from(u32_at(part, 8)) * ss;
        let len = u64::from(u32_at(part, 12)) * ss;
        if len > 0 && start.checked_add(len).is_some_and(|end| end <= capacity) {
            let mut boot = alloc::vec![0u8; sector as usize];
            read(start, &mut boot)?;
            if let Ok(g) = parse(&boot, start, len, ss, read) {
                return Ok(g);
            }
        }
    }
    parse(&first, 0, capacity, ss, read)
}

/// Checks the boot sector `boot` of a volume at `start` in a space of `room`
/// bytes on a device of `ss`-byte sectors.
fn parse(
    boot: &[u8],
    start: u64,
    room: u64,
    ss: u64,
    read: ReadFn<'_>,
) -> Result<Geometry, FsError> {
    let bps = u16_at(boot, 11);
    let spc = u32::from(boot[13]);
    let reserved = u64::from(u16_at(boot, 14));
    let fats = u32::from(boot[16]);
    let root_entries = u16_at(boot, 17);
    let total = match u16_at(boot, 19) {
        0 => u64::from(u32_at(boot, 32)),
        n => u64::from(n),
    };
    let fat_sectors = match u16_at(boot, 22) {
        0 => u64::from(u32_at(boot, 36)),
        n => u64::from(n),
    };
    if !matches!(boot[0], 0xeb | 0xe9)
        || !matches!(bps, 512 | 1024 | 2048 | 4096)
        || !spc.is_power_of_two()
        || spc > 128
        || reserved == 0
        || !(1..=2).contains(&fats)
        || fat_sectors == 0
        || total == 0
        || !start.is_multiple_of(ss)
    {
        return Err(FsError::NotFat);
    }
    let bps64 = u64::from(bps);
    let vol_len = total * bps64;
    if vol_len > room {
        return Err(FsError::NotFat);
    }
    // Only whole device sectors are reachable.
    let vol_len = vol_len / ss * ss;
    let root_bytes = u64::from(root_entries) * 32;
    let root_sectors = root_bytes.div_ceil(bps64);
    let fat_off = reserved * bps64;
    let fat_len = fat_sectors * bps64;
    let root_off = fat_off + u64::from(fats) * fat_len;
    let data_off = root_off + root_sectors * bps64;
    let data_sectors = total.checked_sub(data_off / bps64).ok_or(FsError::NotFat)?;
    let clusters = data_sectors / u64::from(spc);
    let clusters = u32::try_from(clusters).map_err(|_| FsError::NotFat)?;
    let kind = if clusters <= MAX_FAT12_CLUSTERS {
        Kind::Fat12
    } else if clusters <= MAX_FAT16_CLUSTERS {
        Kind::Fat16
    } else {
        Kind::Fat32
    };
    if clusters == 0 || clusters > MAX_FAT32_CLUSTERS {
        return Err(FsError::NotFat);
    }
    // The FAT holds an entry for every cluster and the two reserved ones.
    let entries = u64::from(clusters) + 2;
    let fat_need = match kind {
        Kind::Fat12 => (entries * 3).div_ceil(2),
        Kind::Fat16 => entries * 2,
        Kind::Fat32 => entries * 4,
    };
    if fat_need > fat_len {
        return Err(FsError::NotFat);
    }
    let cluster_bytes = spc * bps;
    let mut g = Geometry {
        kind,
        vol_off: start,
        vol_len,
        cluster_bytes,
        fat_off,
        fat_len,
        fats,
        root_off,
        root_entries,
        root_cluster: 0,
        data_off,
        clusters,
        fsinfo_off: None,
        fsinfo_free: u32::MAX,
        fsinfo_next: u32::MAX,
    };
    match kind {
        Kind::Fat12 | Kind::Fat16 => {
            if root_entries == 0 || u16_at(boot, 22) == 0 {
                return Err(FsError::NotFat);
            }
        }
        Kind::Fat32 => {
            let (version, root, info) = (u16_at(boot, 42), u32_at(boot, 44), u16_at(boot, 48));
            if root_entries != 0 || version != 0 || !g.valid_cluster(root) {
                return Err(FsError::NotFat);
            }
            g.root_cluster = root;
            // FSInfo: a hint, used only when its three signatures are
            // there; else never written.
            let info_off = u64::from(info) * bps64;
            if info != 0 && u64::from(info) < reserved && info_off.is_multiple_of(ss) {
                let mut s = alloc::vec![0u8; ss.max(bps64) as usize];
                if g.check_range(info_off, s.len() as u64).is_ok() {
                    read(start + info_off, &mut s)?;
                    if u32_at(&s, 0) == 0x4161_5252
                        && u32_at(&s, 484) == 0x6141_7272
                        && u32_at(&s, 508) == 0xaa55_0000
                    {
                        g.fsinfo_off = Some(info_off);
                        g.fsinfo_free = u32_at(&s, 488);
                        g.fsinfo_next = u32_at(&s, 492);
                    }
                }
            }
        }
    }
    // The metadata must fit in the usable volume.
    g.check_range(0, data_off)?;
    if g.data_off + u64::from(clusters) * u64::from(cluster_bytes) > vol_len {
        // The last device sector is partial (a 512-byte FAT on a 4 KiB
        // disk): leave out the clusters it would cut.
        let fit = (vol_len - g.data_off) / u64::from(cluster_bytes);
        g.clusters = u32::try_from(fit).map_err(|_| FsError::NotFat)?;
        if g.clusters == 0 {
            return Err(FsError::NotFat);
        }
    }
    Ok(g)
}
