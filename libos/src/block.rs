//! Block devices: the disks the application declared and the tender
//! attached (`tender --block NAME=PATH`), read and written in whole sectors.
//!
//! Each disk is a host file the guest reaches through `pread64` and
//! `pwrite64` on its fd, and `fdatasync` for [`BlockDevice::flush`]. The
//! tender's filter allows only whole-sector transfers that stay inside the
//! disk, in the size tiers of `abi::block_tiers`; this module checks every
//! request first (an out-of-range or misaligned request is an error, never
//! a kill) and splits it into chunks the filter allows, up to
//! `abi::MAX_BLOCK_TRANSFER` bytes per call. I/O is synchronous: the guest
//! waits for the host's page cache, which is what a disk file offers.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::hypercall::{self, Errno};

/// Why a block request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// The request reaches past the end of the disk.
    OutOfRange,
    /// The buffer is not a whole number of sectors.
    Misaligned,
    /// The disk is attached read-only.
    ReadOnly,
    /// The host returned fewer bytes than asked (the file shrank under the guest).
    ShortTransfer,
    /// The host refused the call.
    Io(Errno),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange => f.write_str("request reaches past the end of the disk"),
            Self::Misaligned => f.write_str("buffer is not a whole number of sectors"),
            Self::ReadOnly => f.write_str("disk is read-only"),
            Self::ShortTransfer => f.write_str("short transfer: the disk file changed size"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl core::error::Error for BlockError {}

/// An attached disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    name: String,
    fd: i32,
    capacity: u64,
    sector_size: u32,
    read_only: bool,
}

/// Every block device the tender attached, in manifest order.
pub fn devices() -> Vec<BlockDevice> {
    crate::rt::boot::devices()
        .iter()
        .filter(|d| abi::DeviceKind::from_raw(d.kind) == Some(abi::DeviceKind::Block))
        .map(|d| BlockDevice {
            name: abi::DeviceEntry { name: d.name, kind: d.kind, reserved: 0 }
                .name()
                .unwrap_or("block")
                .to_string(),
            fd: d.fd,
            capacity: d.capacity,
            sector_size: d.sector_size,
            read_only: d.flags & abi::DEVICE_FLAG_READ_ONLY != 0,
        })
        .collect()
}

/// How many block devices the tender attached, without allocating (what a
/// C library asks while a global allocator initialises).
pub fn count() -> usize {
    crate::rt::boot::devices()
        .iter()
        .filter(|d| abi::DeviceKind::from_raw(d.kind) == Some(abi::DeviceKind::Block))
        .count()
}

/// The block device called `name` (as declared with `app!`), if attached.
pub fn device(name: &str) -> Option<BlockDevice> {
    devices().into_iter().find(|d| d.name == name)
}

impl BlockDevice {
    /// A device on an open host file (`fd`), for the host unit tests of the
    /// layers above.
    #[cfg(test)]
    pub(crate) fn from_fd(fd: i32, capacity: u64, sector_size: u32, read_only: bool) -> Self {
        Self { name: "test".into(), fd, capacity, sector_size, read_only }
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Capacity in bytes (a whole number of sectors).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Sector size in bytes: 512 by default, a power of two.
    pub fn sector_size(&self) -> u32 {
        self.sector_size
    }

    /// Number of sectors.
    pub fn sectors(&self) -> u64 {
        self.capacity / u64::from(self.sector_size)
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Checks a request of `len` bytes at sector `sector`; returns its byte offset.
    fn check(&self, sector: u64, len: usize) -> Result<u64, BlockError> {
        let ss = u64::from(self.sector_size);
        if ss == 0 || !(len as u64).is_multiple_of(ss) {
            return Err(BlockError::Misaligned);
        }
        let offset = sector.checked_mul(ss).ok_or(BlockError::OutOfRange)?;
        let end = offset.checked_add(len as u64).ok_or(BlockError::OutOfRange)?;
        if end > self.capacity {
            return Err(BlockError::OutOfRange);
        }
        Ok(offset)
    }

    /// Splits `[offset, offset + len)` into chunks the filter allows and runs
    /// `op(chunk offset, range in the buffer)` on each.
    fn chunked(
        &self,
        mut offset: u64,
        len: usize,
        mut op: impl FnMut(u64, core::ops::Range<usize>) -> Result<usize, Errno>,
    ) -> Result<(), BlockError> {
        let ss = u64::from(self.sector_size);
        let mut done = 0usize;
        while done < len {
            let limit = abi::block_chunk_limit(offset, self.capacity, ss);
            let chunk = ((len - done) as u64).min(limit) as usize;
            if chunk == 0 {
                return Err(BlockError::OutOfRange);
            }
            match op(offset, done..done + chunk) {
                Ok(n) if n == chunk => {}
                Ok(_) => return Err(BlockError::ShortTransfer),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(BlockError::Io(e)),
            }
            done += chunk;
            offset += chunk as u64;
        }
        Ok(())
    }

    /// Reads whole sectors starting at `sector` into `buf`.
    pub fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let offset = self.check(sector, buf.len())?;
        self.chunked(offset, buf.len(), |off, r| hypercall::pread64(self.fd, &mut buf[r], off))
    }

    /// Writes whole sectors starting at `sector` from `buf`.
    pub fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let offset = self.check(sector, buf.len())?;
        self.chunked(offset, buf.len(), |off, r| hypercall::pwrite64(self.fd, &buf[r], off))
    }

    /// Makes everything written so far durable (`fdatasync`).
    pub fn flush(&self) -> Result<(), BlockError> {
        if self.read_only {
            return Ok(());
        }
        hypercall::fdatasync(self.fd).map_err(BlockError::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(capacity: u64, sector_size: u32) -> BlockDevice {
        BlockDevice { name: "d".into(), fd: -1, capacity, sector_size, read_only: false }
    }

    #[test]
    fn requests_are_checked_before_any_call() {
        let d = disk(1 << 20, 512);
        assert_eq!(d.check(0, 512), Ok(0));
        assert_eq!(d.check(2047, 512), Ok(2047 * 512));
        assert_eq!(d.check(2048, 512), Err(BlockError::OutOfRange));
        assert_eq!(d.check(2047, 1024), Err(BlockError::OutOfRange));
        assert_eq!(d.check(0, 100), Err(BlockError::Misaligned));
        assert_eq!(d.check(u64::MAX, 512), Err(BlockError::OutOfRange));
        let ro = BlockDevice { read_only: true, ..d };
        assert_eq!(ro.write(0, &[0; 512]), Err(BlockError::ReadOnly));
    }

    #[test]
    fn chunks_follow_the_filter_tiers() {
        let d = disk(4 * 1024 * 1024 + 3 * 512, 512);
        let mut calls = Vec::new();
        d.chunked(0, d.capacity() as usize, |off, r| {
            calls.push((off, r.len()));
            Ok(r.len())
        })
        .unwrap();
        assert_eq!(
            calls[..4],
            [(0, 1 << 20), (1 << 20, 1 << 20), (2 << 20, 1 << 20), (3 << 20, 1 << 20)]
        );
        assert_eq!(calls[4..], [(4 << 20, 512), ((4 << 20) + 512, 512), ((4 << 20) + 1024, 512)]);
        for (off, len) in calls {
            assert!(off + len as u64 <= d.capacity());
        }
    }
}
