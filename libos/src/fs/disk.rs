//! The adapter between a [`BlockDevice`] and embedded-sdmmc, which works in
//! 512-byte blocks: contiguous blocks become one multi-sector transfer, and a
//! disk with larger sectors is read whole-sector and written
//! read-modify-write.
//!
//! embedded-sdmmc asks for one block at a time, so reads go through a few
//! read-ahead windows: a miss reads `READ_AHEAD` bytes from the requested
//! block on into the least recently used window, and the next blocks of a
//! file, its FAT and its directory come from memory. Writes go to the disk
//! and update the windows (write-through).

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
    /// The read-ahead windows: first byte's offset, bytes, last use.
    windows: RefCell<[Window; WINDOWS]>,
    /// Use counter, for least-recently-used replacement.
    clock: core::cell::Cell<u64>,
}

/// Bytes of the disk held in memory.
#[derive(Debug, Default)]
struct Window {
    base: u64,
    bytes: Vec<u8>,
    used: u64,
}

/// Number of windows: a file's data, its FAT and its directory at once.
const WINDOWS: usize = 4;

const LEN: u64 = Block::LEN as u64;

/// Bytes read on a miss.
const READ_AHEAD: u64 = 64 * 1024;

impl Disk {
    pub(crate) fn new(dev: BlockDevice) -> Self {
        Self {
            dev,
            scratch: RefCell::new(Vec::new()),
            windows: RefCell::new(Default::default()),
            clock: core::cell::Cell::new(0),
        }
    }

    /// Fills `out` with the bytes at `start` from a window that holds them all.
    fn copy_from_window(&self, start: u64, out: &mut [Block]) -> bool {
        let len = out.len() as u64 * LEN;
        let mut windows = self.windows.borrow_mut();
        let Some(w) = windows
            .iter_mut()
            .find(|w| start >= w.base && start + len <= w.base + w.bytes.len() as u64)
        else {
            return false;
        };
        self.clock.set(self.clock.get() + 1);
        w.used = self.clock.get();
        let off = (start - w.base) as usize;
        for (i, b) in out.iter_mut().enumerate() {
            b.contents.copy_from_slice(&w.bytes[off + i * Block::LEN..off + (i + 1) * Block::LEN]);
        }
        true
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
        if self.copy_from_window(start, blocks) {
            return Ok(());
        }
        // Read ahead from here, up to the end of the disk.
        let want = (blocks.len() as u64 * LEN).max(READ_AHEAD);
        let want =
            want.min(self.dev.capacity().saturating_sub(start)).max(blocks.len() as u64 * LEN);
        let (sector, _, bytes) = self.span(start, want);
        {
            let mut windows = self.windows.borrow_mut();
            let w = windows.iter_mut().min_by_key(|w| w.used).expect("WINDOWS > 0");
            w.bytes.resize(bytes, 0);
            if let Err(e) = self.dev.read(sector, &mut w.bytes) {
                w.bytes.clear();
                return Err(e);
            }
            w.base = sector * u64::from(self.dev.sector_size());
        }
        if self.copy_from_window(start, blocks) { Ok(()) } else { Err(BlockError::OutOfRange) }
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
        self.dev.write(sector, &scratch)?;
        // Keep the windows in step with the disk.
        for w in self.windows.borrow_mut().iter_mut() {
            for (i, b) in blocks.iter().enumerate() {
                let at = start + i as u64 * LEN;
                if at >= w.base && at + LEN <= w.base + w.bytes.len() as u64 {
                    let off = (at - w.base) as usize;
                    w.bytes[off..off + Block::LEN].copy_from_slice(&b.contents);
                }
            }
        }
        Ok(())
    }

    fn num_blocks(&self) -> Result<BlockCount, BlockError> {
        let n = self.dev.capacity() / LEN;
        Ok(BlockCount(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}
