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
//! (`abi::DEVICE_FLAG_FLUSH_EVENTFDS`): [`BlockDevice::flush_start`] asks
//! it for an `fdatasync` (adds 1 to its request eventfd) and returns at
//! once with a [`FlushTicket`]; [`BlockDevice::flush_poll`] tells whether
//! that flush is done (one non-blocking `read` of the completion eventfd),
//! [`BlockDevice::flush_wait`] waits for it in `ppoll`. A flush covers
//! every write that returned before it was started, not the later ones.
//! Without the eventfds (an older tender) `flush_start` flushes on the
//! spot.
//!
//! The tickets of a disk fail **stickily**: once a flush of the disk has
//! failed, that ticket and every later one answer with its error, as the
//! thread reports them (the abi flag's documentation): after a failed
//! `fdatasync` Linux may have dropped the pages it could not write, so no
//! later flush makes the writes before it durable, and a ticket answered
//! `Ok` promises exactly that. If the completion eventfd ever says
//! something the thread cannot have said (more answers than requests, a
//! failure count that does not fit), every flush in flight fails with
//! `EIO`, the failure is sticky too, and later flushes are made on the
//! spot. [`BlockDevice::flush`] is not ticketed and reports each
//! `fdatasync` as Linux does.

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
    /// A ticket of another disk, or one never started.
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
            Self::FlushChannel => f.write_str("no such flush on this disk"),
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
    /// The flush request eventfd (`abi::DEVICE_FLAG_FLUSH_EVENTFDS`; the
    /// completion eventfd is the next fd), or -1.
    flush_request: i32,
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
    /// The first ticket that failed, and why: it and every later one failed
    /// (sticky).
    failed_from: Option<(u64, Errno)>,
    /// The completion eventfd said something impossible: flushes are made
    /// on the spot from then on.
    broken: bool,
}

static FLUSHES: Mutex<Vec<Flushes>> = Mutex::new(Vec::new());

fn with_flushes<R>(disk: i32, f: impl FnOnce(&mut Flushes) -> R) -> R {
    let mut all = FLUSHES.lock();
    let i = match all.iter().position(|x| x.disk == disk) {
        Some(i) => i,
        None => {
            all.push(Flushes { disk, started: 0, answered: 0, failed_from: None, broken: false });
            all.len() - 1
        }
    };
    f(&mut all[i])
}

/// A read of the completion counter: `answered` requests, the last
/// `failed` of them failed, `errno` the first failure's if among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answers {
    answered: u64,
    failed: u64,
    errno: i32,
}

impl Answers {
    fn decode(v: u64) -> Self {
        Self {
            answered: v & 0xffff_ffff,
            failed: (v >> abi::FLUSH_FAILED_SHIFT) & 0xffff,
            errno: (v >> abi::FLUSH_ERRNO_SHIFT) as i32,
        }
    }
}

impl Flushes {
    /// A flush made on the spot (no thread), with its result.
    fn on_the_spot(&mut self, result: Result<(), Errno>) -> FlushTicket {
        self.started += 1;
        self.answered += 1;
        if let Err(e) = result {
            self.failed_from.get_or_insert((self.answered, e));
        }
        FlushTicket(self.started)
    }

    /// Takes a value read from the completion eventfd; false if the thread
    /// cannot have written it (nothing is taken then).
    fn take(&mut self, v: u64) -> bool {
        let a = Answers::decode(v);
        let in_flight = self.started - self.answered;
        let fits = a.answered > 0 && a.answered <= in_flight && a.failed <= a.answered;
        let consistent = match self.failed_from {
            // Failed before: every answer fails, and the errno came once.
            Some(_) => a.failed == a.answered && a.errno == 0,
            // A first failure comes with its errno, and only then.
            None => (a.failed > 0) == (a.errno > 0),
        };
        if !fits || !consistent {
            return false;
        }
        if a.failed > 0 && self.failed_from.is_none() {
            let first = self.answered + (a.answered - a.failed) + 1;
            self.failed_from = Some((first, Errno(a.errno)));
        }
        self.answered += a.answered;
        true
    }

    /// The thread's state is unknown: every flush in flight fails (and
    /// every later one, stickily); flushes are made on the spot from now.
    fn give_up(&mut self) {
        if self.answered < self.started {
            self.failed_from.get_or_insert((self.answered + 1, Errno::EIO));
        }
        self.answered = self.started;
        self.broken = true;
    }

    fn result(&self, t: FlushTicket) -> Result<(), BlockError> {
        match self.failed_from {
            Some((first, e)) if t.0 >= first => Err(BlockError::Io(e)),
            _ => Ok(()),
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
            flush_request: if d.flags & abi::DEVICE_FLAG_FLUSH_EVENTFDS != 0
                && d.mtu < i32::MAX as u32
            {
                d.mtu as i32
            } else {
                -1
            },
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
        Self { name: "test".into(), fd, capacity, sector_size, read_only, flush_request: -1 }
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

    /// The flush completion eventfd, if the disk has a flush thread:
    /// readable when answers are waiting, for callers that wait on it with
    /// other fds.
    pub fn flush_fd(&self) -> Option<i32> {
        (self.flush_request >= 0).then_some(self.flush_request + 1)
    }

    /// Starts a flush of everything written so far (every write that has
    /// returned) and returns without waiting; [`flush_poll`](Self::flush_poll)
    /// or [`flush_wait`](Self::flush_wait) tell when it is done. Without a
    /// flush thread the flush is made here, and its ticket is done. With
    /// `abi::FLUSH_IN_FLIGHT_MAX` flushes unanswered, it first waits for
    /// the oldest.
    pub fn flush_start(&self) -> Result<FlushTicket, BlockError> {
        if self.read_only {
            return Ok(with_flushes(self.fd, |f| f.on_the_spot(Ok(()))));
        }
        let (broken, oldest) = with_flushes(self.fd, |f| {
            (
                f.broken,
                (f.started - f.answered >= abi::FLUSH_IN_FLIGHT_MAX)
                    .then_some(FlushTicket(f.answered + 1)),
            )
        });
        if self.flush_request < 0 || broken {
            let r = hypercall::fdatasync(self.fd);
            return Ok(with_flushes(self.fd, |f| f.on_the_spot(r)));
        }
        if let Some(t) = oldest {
            // Its result stays with its ticket.
            let _ = self.flush_wait(t);
        }
        let request = 1u64.to_le_bytes();
        loop {
            match hypercall::write(self.flush_request, &request) {
                Ok(n) if n == request.len() => break,
                Ok(_) => return Err(BlockError::Io(Errno::EIO)),
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
    /// waiting on the completion eventfd (without blocking).
    pub fn flush_poll(&self, t: FlushTicket) -> Poll<Result<(), BlockError>> {
        with_flushes(self.fd, |f| {
            while f.answered < t.0 && f.answered < f.started {
                let mut answer = [0u8; abi::FLUSH_MESSAGE_LEN];
                match hypercall::read(self.flush_request + 1, &mut answer) {
                    Ok(n) if n == answer.len() => {
                        if !f.take(u64::from_le_bytes(answer)) {
                            f.give_up();
                        }
                    }
                    Err(Errno::EAGAIN) => return Poll::Pending,
                    Err(Errno::EINTR) => {}
                    // A short read, another error: the thread's state is
                    // unknown.
                    _ => f.give_up(),
                }
            }
            if f.answered < t.0 {
                // Not started on this disk (a ticket of another's).
                return Poll::Ready(Err(BlockError::FlushChannel));
            }
            Poll::Ready(f.result(t))
        })
    }

    /// Waits for the flush `t` (in `ppoll` on the completion eventfd and
    /// the termination signals' fds, whose signals are acted on meanwhile).
    pub fn flush_wait(&self, t: FlushTicket) -> Result<(), BlockError> {
        loop {
            if let Poll::Ready(r) = self.flush_poll(t) {
                return r;
            }
            let (sig, n) = crate::signal::poll_fds();
            let mut fds = [PollFd { fd: self.flush_request + 1, events: POLLIN, revents: 0 }; 3];
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
            flush_request: -1,
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

    /// A request eventfd and a completion eventfd on consecutive fds, as
    /// the tender makes them (other tests open fds meanwhile: the fds tried
    /// on the way stay open until the pair is found). Both non-blocking
    /// here, so that a test that goes wrong fails instead of hanging (the
    /// guest only writes the request eventfd).
    fn eventfd_pair() -> (i32, i32) {
        let mut tried = Vec::new();
        loop {
            let request = hypercall::test_eventfd(true);
            let done = hypercall::test_eventfd(true);
            if done == request + 1 {
                for fd in tried {
                    hypercall::test_close(fd);
                }
                return (request, done);
            }
            tried.extend([request, done]);
        }
    }

    /// The tender's thread's side: takes the requests waiting (their
    /// count) and adds `answer` to the completion counter.
    fn take_requests(request: i32) -> u64 {
        let mut v = [0u8; 8];
        assert_eq!(hypercall::read(request, &mut v), Ok(8));
        u64::from_le_bytes(v)
    }

    fn answer(done: i32, v: u64) {
        assert_eq!(hypercall::write(done, &v.to_le_bytes()), Ok(8));
    }

    const FAILED: u64 = 1 << abi::FLUSH_FAILED_SHIFT;

    fn errno(e: Errno) -> u64 {
        (e.0 as u64) << abi::FLUSH_ERRNO_SHIFT
    }

    /// A writable disk on a new temporary file with the eventfds. The
    /// file stays open for the life of the test process: the flushes are
    /// keyed by the disk's fd, which another test must not get again (a
    /// guest's disks are never closed).
    fn with_thread(tag: &str) -> (BlockDevice, i32, i32) {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("libos-flush-{tag}-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let (request, done) = eventfd_pair();
        let d = BlockDevice {
            flush_request: request,
            ..BlockDevice::from_fd(file.as_raw_fd(), 1 << 20, 512, false)
        };
        std::mem::forget(file);
        (d, request, done)
    }

    /// The flush eventfds, with the test as the tender's thread: requests
    /// are counted, answers go to their tickets in order (a failure to the
    /// ticket it answers, not to the one before), nothing is done before
    /// its answer, two values of one disk share the count, and failures
    /// are sticky.
    #[test]
    fn flush_tickets_follow_the_answers_in_order() {
        let (d, request, done) = with_thread("order");
        let other = d.clone();
        assert_eq!(d.flush_fd(), Some(done));
        let a = d.flush_start().unwrap();
        let b = other.flush_start().unwrap();
        assert!(a < b);
        // The thread finds both requests at once.
        assert_eq!(take_requests(request), 2);
        assert_eq!(d.flush_poll(a), Poll::Pending);
        assert_eq!(other.flush_poll(b), Poll::Pending);
        answer(done, 1);
        // b's reader takes a's answer and keeps it for a.
        assert_eq!(other.flush_poll(b), Poll::Pending);
        assert_eq!(d.flush_poll(a), Poll::Ready(Ok(())));
        answer(done, 1 + FAILED + errno(Errno::EIO));
        assert_eq!(d.flush_wait(b), Err(BlockError::Io(Errno::EIO)));
        assert_eq!(d.flush_poll(a), Poll::Ready(Ok(())));
        // Sticky: the next answer fails too, without the errno again.
        let c = d.flush_start().unwrap();
        assert_eq!(take_requests(request), 1);
        answer(done, 1 + FAILED);
        assert_eq!(d.flush_wait(c), Err(BlockError::Io(Errno::EIO)));
        assert_eq!(d.flush_poll(a), Poll::Ready(Ok(())));
        // A ticket never started on this disk.
        assert_eq!(d.flush_poll(FlushTicket(c.0 + 1)), Poll::Ready(Err(BlockError::FlushChannel)));
    }

    /// Two answers read as one: the successes come first, the failures
    /// (the last ones) get the errno that came with the first of them.
    #[test]
    fn answers_read_together_are_split_in_order() {
        let (d, request, done) = with_thread("together");
        let t: Vec<FlushTicket> = (0..3).map(|_| d.flush_start().unwrap()).collect();
        assert_eq!(take_requests(request), 3);
        answer(done, 2);
        answer(done, 1 + FAILED + errno(Errno(28)));
        assert_eq!(d.flush_wait(t[2]), Err(BlockError::Io(Errno(28))));
        assert_eq!(d.flush_poll(t[0]), Poll::Ready(Ok(())));
        assert_eq!(d.flush_poll(t[1]), Poll::Ready(Ok(())));
    }

    /// What the thread cannot have said fails what is in flight, not what
    /// is done; from then on flushes are made on the spot and fail (the
    /// failure is sticky).
    #[test]
    fn an_impossible_answer_fails_what_is_in_flight() {
        for (tag, bad) in [
            ("more", 3),
            ("noerrno", 1 + FAILED),
            ("nofailure", 1 + errno(Errno::EIO)),
            ("toomany", 1 + 2 * FAILED + errno(Errno::EIO)),
            ("zero", FAILED),
        ] {
            let (d, request, done) = with_thread(tag);
            let a = d.flush_start().unwrap();
            assert_eq!(take_requests(request), 1);
            answer(done, 1);
            assert_eq!(d.flush_wait(a), Ok(()), "{tag}");
            let b = d.flush_start().unwrap();
            let c = d.flush_start().unwrap();
            answer(done, bad);
            assert_eq!(d.flush_poll(c), Poll::Ready(Err(BlockError::Io(Errno::EIO))), "{tag}");
            assert_eq!(d.flush_poll(b), Poll::Ready(Err(BlockError::Io(Errno::EIO))), "{tag}");
            assert_eq!(d.flush_poll(a), Poll::Ready(Ok(())), "{tag}");
            // On the spot now: no request reaches the thread.
            let later = d.flush_start().unwrap();
            assert_eq!(d.flush_poll(later), Poll::Ready(Err(BlockError::Io(Errno::EIO))), "{tag}");
            assert_eq!(take_requests(request), 2, "{tag}");
        }
    }

    /// Without the eventfds (an older tender) the flush is made at once.
    #[test]
    fn without_a_thread_the_flush_is_made_at_once() {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("libos-flush-sync-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let sync = BlockDevice::from_fd(file.as_raw_fd(), 1 << 20, 512, false);
        std::mem::forget(file);
        assert_eq!(sync.flush_fd(), None);
        let t = sync.flush_start().unwrap();
        assert_eq!(sync.flush_poll(t), Poll::Ready(Ok(())));
        assert_eq!(sync.flush_wait(t), Ok(()));
    }
}
