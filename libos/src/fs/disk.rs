//! The adapter between a [`BlockDevice`] and embedded-sdmmc, which works in
//! 512-byte blocks: contiguous blocks become one multi-sector transfer, and a
//! disk with larger sectors is read whole-sector and written
//! read-modify-write.

use alloc::vec::Vec;
use core::cell::RefCell;

use embedded_sdmmc::{Block, BlockCount, BlockIdx};

use crate::block::{BlockDevice, BlockError};

/// A block device seen in 512-byte blocks.
#[derive(Debug)]
pub(crate) struct Disk {
    dev: BlockDevice,
    /// Scratch buffer for transfers, reused.
    scratch: RefCell<Vec<u8>>,
}

const LEN: u64 = Block::LEN as u64;

impl Disk {
    pub(crate) fn new(dev: BlockDevice) -> Self {
        Self { dev, scratch: RefCell::new(Vec::new()) }
    }

    pub(crate) fn device(&self) -> &BlockDevice {
        &self.dev
    }

    /// The byte range `[start, start + len)` widened to whole device sectors:
    /// (first sector, byte offset of `start` in it, sectors' byte length).
    fn span(&self, start: u64, len: u64) -> (u64, usize, usize) {
        let ss = u64::from(self.dev.sector_size());
        let first = start / ss;
        let end = (start + len).div_ceil(ss);
        (first, (start - first * ss) as usize, ((end - first) * ss) as usize)
    }
}

impl embedded_sdmmc::BlockDevice for Disk {
    type Error = BlockError;

    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), BlockError> {
        let start = u64::from(start.0) * LEN;
        let (sector, skip, bytes) = self.span(start, blocks.len() as u64 * LEN);
        let mut scratch = self.scratch.borrow_mut();
        scratch.resize(bytes, 0);
        self.dev.read(sector, &mut scratch)?;
        for (i, b) in blocks.iter_mut().enumerate() {
            let off = skip + i * Block::LEN;
            b.contents.copy_from_slice(&scratch[off..off + Block::LEN]);
        }
        Ok(())
    }

    fn write(&self, blocks: &[Block], start: BlockIdx) -> Result<(), BlockError> {
        let start = u64::from(start.0) * LEN;
        let len = blocks.len() as u64 * LEN;
        let (sector, skip, bytes) = self.span(start, len);
        let mut scratch = self.scratch.borrow_mut();
        scratch.resize(bytes, 0);
        if skip != 0 || bytes as u64 != len {
            // Part of a larger sector: keep the rest of it.
            self.dev.read(sector, &mut scratch)?;
        }
        for (i, b) in blocks.iter().enumerate() {
            let off = skip + i * Block::LEN;
            scratch[off..off + Block::LEN].copy_from_slice(&b.contents);
        }
        self.dev.write(sector, &scratch)
    }

    fn num_blocks(&self) -> Result<BlockCount, BlockError> {
        let n = self.dev.capacity() / LEN;
        Ok(BlockCount(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}
