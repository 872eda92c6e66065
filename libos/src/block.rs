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
//!
//! **Flushes.** [`BlockDevice::flush`] calls `fdatasync` and waits. A
//! writable disk also has a flush thread in the tender
//! (`abi::DEVICE_FLAG_FLUSH_CHANNEL`): [`BlockDevice::flush_start`] asks it
//! for an `fdatasync` and returns at once with a [`FlushTicket`];
//! [`BlockDevice::flush_poll`] tells whether that flush is done (one
//! non-blocking `read` of the channel), [`BlockDevice::flush_wait`] waits
//! for it in `ppoll`. A flush covers every write that returned before it
//! was started, not the later ones. Without a channel (an older tender)
//! `flush_start` flushes on the spot.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use core::task::Poll;

use spin::Mutex;

use crate::hypercall::{self, Errno, POLLIN, PollFd};

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
    /// The flush thread answered out of turn or not at all (its channel
    /// failed): what it flushed is unknown.
    FlushChannel,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange => f.write_str("request reaches past the end of the disk"),
            Self::Misaligned => f.write_str("buffer is not a whole number of sectors"),
            Self::ReadOnly => f.write_str("disk is read-only"),
            Self::ShortTransfer => f.write_str("short transfer: the disk file changed size"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::FlushChannel => f.write_str("the flush channel failed"),
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
    /// The flush channel's fd (`abi::DEVICE_FLAG_FLUSH_CHANNEL`), or -1.
    channel: i32,
}

/// A flush asked with [`BlockDevice::flush_start`]: the `n`th of its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlushTicket(pub u64);

/// The flushes of one disk, shared by every [`BlockDevice`] value of it
/// (the tender's thread answers requests in order, so the `n`th answer is
/// the `n`th request's, whoever reads it).
#[derive(Debug)]
struct Flushes {
    disk: i32,
    /// Requests made, and answers read.
    started: u64,
    answered: u64,
    /// Answers that were errors, by ticket: the recent ones (a ticket is
    /// looked up soon after it is answered).
    failed: Vec<(u64, Errno)>,
}

/// Failures kept per disk.
const FAILURES_KEPT: usize = 64;

static FLUSHES: Mutex<Vec<Flushes>> = Mutex::new(Vec::new());

fn with_flushes<R>(disk: i32, f: impl FnOnce(&mut Flushes) -> R) -> R {
    let mut all = FLUSHES.lock();
    let i = match all.iter().position(|x| x.disk == disk) {
        Some(i) => i,
        None => {
            all.push(Flushes { disk, started: 0, answered: 0, failed: Vec::new() });
            all.len() - 1
        }
    };
    f(&mut all[i])
}

impl Flushes {
    fn answer(&mut self, result: Result<(), Errno>) {
        self.answered += 1;
        if let Err(e) = result {
            if self.failed.len() == FAILURES_KEPT {
                self.failed.remove(0);
            }
            self.failed.push((self.answered, e));
        }
    }

    fn result(&self, t: FlushTicket) -> Result<(), BlockError> {
        match self.failed.iter().find(|(n, _)| *n == t.0) {
            Some(&(_, e)) => Err(BlockError::Io(e)),
            None => Ok(()),
        }
    }
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
            channel: if d.flags & abi::DEVICE_FLAG_FLUSH_CHANNEL != 0 { d.mtu as i32 } else { -1 },
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
        Self { name: "test".into(), fd, capacity, sector_size, read_only, channel: -1 }
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

    /// Makes everything written so far durable (`fdatasync`), waiting.
    pub fn flush(&self) -> Result<(), BlockError> {
        if self.read_only {
            return Ok(());
        }
        hypercall::fdatasync(self.fd).map_err(BlockError::Io)
    }

    /// The flush channel's fd, if the disk has one: readable when an answer
    /// is waiting, for callers that wait on it with other fds.
    pub fn flush_fd(&self) -> Option<i32> {
        (self.channel >= 0).then_some(self.channel)
    }

    /// Starts a flush of everything written so far (every write that has
    /// returned) and returns without waiting; [`flush_poll`](Self::flush_poll)
    /// or [`flush_wait`](Self::flush_wait) tell when it is done. Without a
    /// flush channel the flush is made here, and its ticket is done.
    pub fn flush_start(&self) -> Result<FlushTicket, BlockError> {
        if self.read_only {
            return with_flushes(self.fd, |f| {
                f.started += 1;
                f.answer(Ok(()));
                Ok(FlushTicket(f.started))
            });
        }
        if self.channel < 0 {
            let r = hypercall::fdatasync(self.fd);
            return with_flushes(self.fd, |f| {
                f.started += 1;
                f.answer(r);
                Ok(FlushTicket(f.started))
            });
        }
        let request = 1u64.to_le_bytes();
        loop {
            match hypercall::write(self.channel, &request) {
                Ok(n) if n == request.len() => break,
                Ok(_) => return Err(BlockError::FlushChannel),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(BlockError::Io(e)),
            }
        }
        Ok(with_flushes(self.fd, |f| {
            f.started += 1;
            FlushTicket(f.started)
        }))
    }

    /// Whether the flush `t` is done, and how it went: reads the answers
    /// waiting on the channel (without blocking).
    pub fn flush_poll(&self, t: FlushTicket) -> Poll<Result<(), BlockError>> {
        with_flushes(self.fd, |f| {
            while f.answered < t.0 && f.answered < f.started {
                let mut answer = [0u8; abi::FLUSH_MESSAGE_LEN];
                match hypercall::read(self.channel, &mut answer) {
                    Ok(n) if n == answer.len() => {
                        let r = i64::from_le_bytes(answer);
                        f.answer(if r == 0 { Ok(()) } else { Err(Errno((-r) as i32)) });
                    }
                    Err(Errno::EAGAIN) => return Poll::Pending,
                    Err(Errno::EINTR) => {}
                    // A short answer, the end of the channel, another
                    // error: the thread's state is unknown; every flush
                    // in flight is failed.
                    _ => {
                        while f.answered < f.started {
                            f.answer(Err(Errno::EIO));
                        }
                    }
                }
            }
            if f.answered < t.0 {
                // Not started on this disk (a ticket of another's).
                return Poll::Ready(Err(BlockError::FlushChannel));
            }
            Poll::Ready(f.result(t))
        })
    }

    /// Waits for the flush `t` (in `ppoll` on the channel and the
    /// termination signals' fds, whose signals are acted on meanwhile).
    pub fn flush_wait(&self, t: FlushTicket) -> Result<(), BlockError> {
        loop {
            if let Poll::Ready(r) = self.flush_poll(t) {
                return r;
            }
            let (sig, n) = crate::signal::poll_fds();
            let mut fds = [PollFd { fd: self.channel, events: POLLIN, revents: 0 }; 3];
            fds[1..1 + n].copy_from_slice(&sig[..n]);
            if hypercall::ppoll(&mut fds[..1 + n], None).unwrap_or(0) > 0 {
                crate::signal::seen(&fds[1..1 + n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(capacity: u64, sector_size: u32) -> BlockDevice {
        BlockDevice {
            name: "d".into(),
            fd: -1,
            capacity,
            sector_size,
            read_only: false,
            channel: -1,
        }
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

    /// The flush channel, with the test as the tender's thread: requests
    /// are counted, answers go to their tickets in order (an error to the
    /// ticket it answers, not to the next), nothing is done before its
    /// answer, and two values of one disk share the count.
    #[test]
    fn flush_tickets_follow_the_answers_in_order() {
        use std::os::fd::AsRawFd;
        use std::os::unix::net::UnixDatagram;
        let (guest, thread) = UnixDatagram::pair().unwrap();
        guest.set_nonblocking(true).unwrap();
        let file = std::fs::File::create(
            std::env::temp_dir().join(format!("libos-flush-{}", std::process::id())),
        )
        .unwrap();
        let d = BlockDevice {
            channel: guest.as_raw_fd(),
            ..BlockDevice::from_fd(file.as_raw_fd(), 1 << 20, 512, false)
        };
        let other = d.clone();
        assert_eq!(d.flush_fd(), Some(guest.as_raw_fd()));
        let a = d.flush_start().unwrap();
        let b = other.flush_start().unwrap();
        assert!(a < b);
        let mut req = [0u8; 8];
        assert_eq!(thread.recv(&mut req).unwrap(), 8);
        assert_eq!(thread.recv(&mut req).unwrap(), 8);
        assert_eq!(d.flush_poll(a), Poll::Pending);
        assert_eq!(other.flush_poll(b), Poll::Pending);
        thread.send(&0i64.to_le_bytes()).unwrap();
        // b's reader takes a's answer and keeps it for a.
        assert_eq!(other.flush_poll(b), Poll::Pending);
        assert_eq!(d.flush_poll(a), Poll::Ready(Ok(())));
        thread.send(&(-5i64).to_le_bytes()).unwrap();
        assert_eq!(d.flush_wait(b), Err(BlockError::Io(Errno::EIO)));
        assert_eq!(d.flush_poll(a), Poll::Ready(Ok(())));
        // A garbled answer fails what is in flight, not what is done.
        let c = d.flush_start().unwrap();
        assert_eq!(thread.recv(&mut req).unwrap(), 8);
        thread.send(&[1, 2, 3]).unwrap();
        assert_eq!(d.flush_poll(c), Poll::Ready(Err(BlockError::Io(Errno::EIO))));
        assert_eq!(d.flush_poll(a), Poll::Ready(Ok(())));
        // Without a channel the flush is made at once.
        let sync = BlockDevice::from_fd(file.as_raw_fd(), 1 << 20, 512, false);
        let t = sync.flush_start().unwrap();
        assert_eq!(sync.flush_poll(t), Poll::Ready(Ok(())));
        drop(file);
        let _ = std::fs::remove_file(
            std::env::temp_dir().join(format!("libos-flush-{}", std::process::id())),
        );
    }
}
