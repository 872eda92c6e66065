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

/// Checks partition 1 of the MBR and its boot parameter block.
pub(super) fn check(disk: &Disk) -> Result<(), FsError> {
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
    Ok(())
}
