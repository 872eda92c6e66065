//! The volume's geometry, checked before embedded-sdmmc sees it.
//!
//! embedded-sdmmc 0.10 trusts the partition table and the boot parameter
//! block: a zero cluster size divides by zero (a panic, which kills the
//! guest), and a volume larger than its partition or disk, or sizes whose
//! sum overflows, give block numbers that wrap. So [`check`] reads the
//! master boot record and the first sector of partition 1 itself and
//! refuses, as not FAT, a disk whose volume does not fit in its partition
//! and the partition in the disk, or whose sizes are not those of a FAT16
//! or FAT32 file system (found by the `fat` fuzz target). Every later block
//! number embedded-sdmmc derives from these fields then lies on the disk;
//! what it derives from corrupt directory entries and FAT chains is bounded
//! by [`super::disk::Disk`], which refuses any block past the end.

use embedded_sdmmc::{Block, BlockDevice, BlockIdx};

use super::FsError;
use super::disk::Disk;

/// Partition types embedded-sdmmc mounts.
const FAT_PARTITION_TYPES: [u8; 5] = [0x04, 0x06, 0x0b, 0x0c, 0x0e];
/// Fewer clusters make FAT12, which embedded-sdmmc does not support.
const MIN_FAT16_CLUSTERS: u64 = 4085;
/// From this many clusters on, the volume is FAT32.
const MIN_FAT32_CLUSTERS: u64 = 65525;

fn u16_at(b: &Block, at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &Block, at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

fn read(disk: &Disk, idx: u64) -> Result<Block, FsError> {
    let mut block = [Block::new()];
    let idx = u32::try_from(idx).map_err(|_| FsError::NotFat)?;
    disk.read(&mut block, BlockIdx(idx)).map_err(FsError::Device)?;
    let [block] = block;
    Ok(block)
}

/// Where the first FAT is and what it holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    /// Byte offset of the first FAT on the disk.
    pub fat_start: u64,
    /// FAT32 (4-byte entries), else FAT16 (2-byte entries).
    pub fat32: bool,
    /// Data clusters: valid cluster numbers are 2 up to `clusters + 2`.
    pub clusters: u64,
}

impl Geometry {
    /// The first FAT's entry for cluster `n`.
    pub(super) fn entry(&self, disk: &Disk, n: u64) -> Result<u64, FsError> {
        let width = if self.fat32 { 4 } else { 2 };
        let at = self.fat_start + n * width;
        let b = read(disk, at / Block::LEN as u64)?;
        let off = (at % Block::LEN as u64) as usize;
        Ok(if self.fat32 { u32_at(&b, off) & 0x0fff_ffff } else { u16_at(&b, off) })
    }

    /// Whether a FAT entry ends a chain (end of file, or a bad cluster).
    pub(super) fn is_end(&self, v: u64) -> bool {
        v >= if self.fat32 { 0x0fff_fff7 } else { 0xfff7 }
    }
}

/// Checks partition 1 of the MBR and its boot parameter block; returns
/// where the FAT is.
pub(super) fn check(disk: &Disk) -> Result<Geometry, FsError> {
    let disk_blocks = disk.device().capacity() / Block::LEN as u64;
    let mbr = read(disk, 0)?;
    let part = 446;
    if u16_at(&mbr, 510) != 0xaa55
        || mbr[part] & 0x7f != 0
        || !FAT_PARTITION_TYPES.contains(&mbr[part + 4])
    {
        return Err(FsError::NotFat);
    }
    let (lba_start, num_blocks) = (u32_at(&mbr, part + 8), u32_at(&mbr, part + 12));
    if num_blocks == 0 || lba_start + num_blocks > disk_blocks {
        return Err(FsError::NotFat);
    }

    let bpb = read(disk, lba_start)?;
    let bytes_per_block = u16_at(&bpb, 11);
    let blocks_per_cluster = u64::from(bpb[13]);
    let reserved = u16_at(&bpb, 14);
    let num_fats = u64::from(bpb[16]);
    let root_entries = u16_at(&bpb, 17);
    let total = match u16_at(&bpb, 19) {
        0 => u32_at(&bpb, 32),
        n => n,
    };
    let fat_size = match u16_at(&bpb, 22) {
        0 => u32_at(&bpb, 36),
        n => n,
    };
    if u16_at(&bpb, 510) != 0xaa55
        || bytes_per_block != Block::LEN as u64
        || !blocks_per_cluster.is_power_of_two()
        || reserved == 0
        || !(1..=2).contains(&num_fats)
        || fat_size == 0
        || total > num_blocks
    {
        return Err(FsError::NotFat);
    }
    // All in u64: at most 2^16 + 2 * 2^32 + 2^11, no overflow.
    let root_blocks = (root_entries * 32).div_ceil(Block::LEN as u64);
    let non_data = reserved + num_fats * fat_size + root_blocks;
    let data_blocks = total.checked_sub(non_data).ok_or(FsError::NotFat)?;
    let clusters = data_blocks / blocks_per_cluster;
    // The FAT has an entry for every cluster and the two reserved ones.
    let fat_entries = |entry_bytes: u64| fat_size * Block::LEN as u64 / entry_bytes;
    if clusters < MIN_FAT16_CLUSTERS {
        return Err(FsError::NotFat);
    }
    if clusters < MIN_FAT32_CLUSTERS {
        if root_entries == 0 || fat_entries(2) < clusters + 2 {
            return Err(FsError::NotFat);
        }
    } else {
        let (fs_ver, root_cluster, fs_info) =
            (u16_at(&bpb, 42), u32_at(&bpb, 44), u16_at(&bpb, 48));
        if fs_ver != 0
            || fat_entries(4) < clusters + 2
            || !(2..clusters + 2).contains(&root_cluster)
            || fs_info == 0
            || fs_info >= reserved
        {
            return Err(FsError::NotFat);
        }
    }
    let geometry = Geometry {
        fat_start: (lba_start + reserved) * Block::LEN as u64,
        fat32: clusters >= MIN_FAT32_CLUSTERS,
        clusters,
    };
    // The two reserved entries are never free: embedded-sdmmc would
    // allocate cluster 0 (or 1) if they were.
    for n in 0..2 {
        if geometry.entry(disk, n)? == 0 {
            return Err(FsError::Corrupt);
        }
    }
    Ok(geometry)
}
