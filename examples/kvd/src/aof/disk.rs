//! Disks the log runs on: the trait it needs, the guest's block device,
//! and a disk in memory for host tests.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

/// What the log needs from a disk: whole-sector reads and writes, and a
/// barrier that makes every earlier write durable (`fdatasync`).
pub trait Disk {
    /// Sector size in bytes, a power of two.
    fn sector_size(&self) -> u32;
    /// Capacity in bytes, a whole number of sectors.
    fn capacity(&self) -> u64;
    /// Reads whole sectors starting at `sector` into `buf`.
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError>;
    /// Writes whole sectors starting at `sector` from `buf`.
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), DiskError>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), DiskError>;
    /// Starts a flush of everything written so far and returns a ticket
    /// for [`Disk::flush_done`] without waiting (the guest's disk: its
    /// flush thread, `libos::block`). By default the flush is made here.
    fn flush_start(&self) -> Result<u64, DiskError> {
        self.flush().map(|()| 0)
    }
    /// Whether the flush `ticket` is done, and how it went; `None` while
    /// it runs.
    fn flush_done(&self, _ticket: u64) -> Option<Result<(), DiskError>> {
        Some(Ok(()))
    }
    /// Waits for the flush `ticket`.
    fn flush_wait(&self, ticket: u64) -> Result<(), DiskError> {
        self.flush_done(ticket).unwrap_or(Ok(()))
    }
}

/// Why a disk request failed (the shape of `libos::block::BlockError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    /// The request reaches past the end of the disk.
    OutOfRange,
    /// The buffer is not a whole number of sectors.
    Misaligned,
    /// The disk is attached read-only.
    ReadOnly,
    /// The host moved fewer bytes than asked.
    ShortTransfer,
    /// The host refused the call with this errno.
    Io(i32),
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange => f.write_str("request reaches past the end of the disk"),
            Self::Misaligned => f.write_str("buffer is not a whole number of sectors"),
            Self::ReadOnly => f.write_str("disk is read-only"),
            Self::ShortTransfer => f.write_str("short transfer: the disk file changed size"),
            Self::Io(e) => write!(f, "I/O error: host error {e}"),
        }
    }
}

impl core::error::Error for DiskError {}

#[cfg(not(test))]
impl From<libos::block::BlockError> for DiskError {
    fn from(e: libos::block::BlockError) -> Self {
        use libos::block::BlockError as B;
        match e {
            B::OutOfRange => Self::OutOfRange,
            B::Misaligned => Self::Misaligned,
            B::ReadOnly => Self::ReadOnly,
            B::ShortTransfer => Self::ShortTransfer,
            B::Io(errno) => Self::Io(errno.0),
            // What the thread flushed is unknown: as a failed flush.
            B::FlushChannel => Self::Io(5),
        }
    }
}

// Not in unit tests: libos cannot be linked into a host test binary.
#[cfg(not(test))]
impl Disk for libos::block::BlockDevice {
    fn sector_size(&self) -> u32 {
        libos::block::BlockDevice::sector_size(self)
    }
    fn capacity(&self) -> u64 {
        libos::block::BlockDevice::capacity(self)
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        Ok(libos::block::BlockDevice::read(self, sector, buf)?)
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        Ok(libos::block::BlockDevice::write(self, sector, buf)?)
    }
    fn flush(&self) -> Result<(), DiskError> {
        Ok(libos::block::BlockDevice::flush(self)?)
    }
    fn flush_start(&self) -> Result<u64, DiskError> {
        Ok(libos::block::BlockDevice::flush_start(self)?.0)
    }
    fn flush_done(&self, ticket: u64) -> Option<Result<(), DiskError>> {
        match self.flush_poll(libos::block::FlushTicket(ticket)) {
            core::task::Poll::Ready(r) => Some(r.map_err(DiskError::from)),
            core::task::Poll::Pending => None,
        }
    }
    fn flush_wait(&self, ticket: u64) -> Result<(), DiskError> {
        Ok(libos::block::BlockDevice::flush_wait(self, libos::block::FlushTicket(ticket))?)
    }
}

/// The disk `Aof` means without a type argument: the guest's block device,
/// or [`MemDisk`] in unit tests.
#[cfg(not(test))]
pub type DefaultDisk = libos::block::BlockDevice;
/// The disk `Aof` means without a type argument: the guest's block device,
/// or [`MemDisk`] in unit tests.
#[cfg(test)]
pub type DefaultDisk = MemDisk;

/// A disk in memory, for host tests of code that persists through [`Aof`].
/// Every write is durable at once.
#[derive(Debug, Clone)]
pub struct MemDisk {
    sector_size: u32,
    data: RefCell<Vec<u8>>,
}

impl MemDisk {
    /// An all-zero disk of `capacity` bytes (rounded down to whole sectors).
    pub fn new(capacity: u64, sector_size: u32) -> Self {
        let len = (capacity - capacity % u64::from(sector_size)) as usize;
        Self { sector_size, data: RefCell::new(vec![0; len]) }
    }

    /// A disk holding `bytes`, which must be a whole number of sectors.
    pub fn from_bytes(bytes: Vec<u8>, sector_size: u32) -> Self {
        assert!(bytes.len().is_multiple_of(sector_size as usize));
        Self { sector_size, data: RefCell::new(bytes) }
    }

    /// A copy of the disk's contents.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.data.borrow().clone()
    }

    fn range(&self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, DiskError> {
        let ss = self.sector_size as usize;
        if !len.is_multiple_of(ss) {
            return Err(DiskError::Misaligned);
        }
        let start = usize::try_from(sector).ok().and_then(|s| s.checked_mul(ss));
        let end = start.and_then(|s| s.checked_add(len));
        match (start, end) {
            (Some(s), Some(e)) if e <= self.data.borrow().len() => Ok(s..e),
            _ => Err(DiskError::OutOfRange),
        }
    }
}

impl Disk for MemDisk {
    fn sector_size(&self) -> u32 {
        self.sector_size
    }
    fn capacity(&self) -> u64 {
        self.data.borrow().len() as u64
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let r = self.range(sector, buf.len())?;
        buf.copy_from_slice(&self.data.borrow()[r]);
        Ok(())
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        let r = self.range(sector, buf.len())?;
        self.data.borrow_mut()[r].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> Result<(), DiskError> {
        Ok(())
    }
}
