//! Hypercalls: the system calls the tender's seccomp filter lets a guest make.
//!
//! One function per call. Each doc starts with the host call it makes and the
//! filter rule that allows it (see `docs/seccomp.md`); anything else a guest
//! tries is killed by the filter. Errors come back as [`Errno`], never as a
//! panic: the layers above decide what an error means.
//!
//! # Safety
//!
//! This module is one of the three places with `unsafe` in libos. The raw
//! `syscall` wrappers are private; each public function passes only pointers
//! derived from Rust references that are valid for the lengths given, so the
//! kernel never reads or writes outside memory the caller lent it. The one
//! call that is not a system call, the host vDSO's `clock_gettime`
//! ([`clock_gettime`]), is made only at the address the tender found in
//! its own vDSO, with a clock the filter allows and a `timespec` on the
//! caller's stack.

#![allow(unsafe_code)]

use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

const SYS_READ: usize = 0;
const SYS_WRITE: usize = 1;
const SYS_PREAD64: usize = 17;
const SYS_PWRITE64: usize = 18;
const SYS_FDATASYNC: usize = 75;
const SYS_CLOCK_GETTIME: usize = 228;
const SYS_EXIT_GROUP: usize = 231;
const SYS_PPOLL: usize = 271;

/// The console: the guest's standard output.
pub const CONSOLE_FD: i32 = 1;

/// A Linux error number returned by a hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// Interrupted: try again.
    pub const EINTR: Self = Self(4);
    /// Would block: try again later.
    pub const EAGAIN: Self = Self(11);
    /// I/O error.
    pub const EIO: Self = Self(5);
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host error {}", self.0)
    }
}

impl core::error::Error for Errno {}

/// How many `read`, `write` and `ppoll` calls the guest has made, and the
/// bytes the reads and writes moved, since it started: the figures
/// `strace -c` would give, without a tracer slowing the guest down.
/// Benchmarks read them before and after a transfer (see
/// `examples/tcpperf`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// `read` calls, including those that found nothing (`EAGAIN`).
    pub reads: u64,
    /// Bytes the `read` calls returned.
    pub read_bytes: u64,
    /// `write` calls (taps and the console), including refused ones.
    pub writes: u64,
    /// Bytes the `write` calls took.
    pub write_bytes: u64,
    /// `ppoll` calls, waiting or not.
    pub ppolls: u64,
    /// `ppoll` calls that returned with no fd ready (a timeout, or a
    /// check with a zero timeout that found nothing).
    pub ppoll_empty: u64,
}

impl Counters {
    /// The counts from `earlier` to `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            reads: self.reads.wrapping_sub(earlier.reads),
            read_bytes: self.read_bytes.wrapping_sub(earlier.read_bytes),
            writes: self.writes.wrapping_sub(earlier.writes),
            write_bytes: self.write_bytes.wrapping_sub(earlier.write_bytes),
            ppolls: self.ppolls.wrapping_sub(earlier.ppolls),
            ppoll_empty: self.ppoll_empty.wrapping_sub(earlier.ppoll_empty),
        }
    }
}

static READS: AtomicU64 = AtomicU64::new(0);
static READ_BYTES: AtomicU64 = AtomicU64::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);
static WRITE_BYTES: AtomicU64 = AtomicU64::new(0);
static PPOLLS: AtomicU64 = AtomicU64::new(0);
static PPOLL_EMPTY: AtomicU64 = AtomicU64::new(0);

/// The counts so far.
pub fn counters() -> Counters {
    Counters {
        reads: READS.load(Ordering::Relaxed),
        read_bytes: READ_BYTES.load(Ordering::Relaxed),
        writes: WRITES.load(Ordering::Relaxed),
        write_bytes: WRITE_BYTES.load(Ordering::Relaxed),
        ppolls: PPOLLS.load(Ordering::Relaxed),
        ppoll_empty: PPOLL_EMPTY.load(Ordering::Relaxed),
    }
}

/// Counts one call in `calls`, and what it moved in `bytes`.
fn count(
    calls: &AtomicU64,
    bytes: &AtomicU64,
    result: Result<usize, Errno>,
) -> Result<usize, Errno> {
    calls.fetch_add(1, Ordering::Relaxed);
    if let Ok(n) = result {
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    result
}

fn check(ret: isize) -> Result<usize, Errno> {
    if ret < 0 { Err(Errno(-ret as i32)) } else { Ok(ret as usize) }
}

/// A raw system call with up to five arguments.
///
/// # Safety
///
/// The arguments must be valid for system call `nr`: every pointer among
/// them must point to memory valid for what the kernel reads or writes.
unsafe fn syscall5(nr: usize, a0: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the arguments are valid for `nr`. The
    // `syscall` instruction clobbers rcx and r11 and nothing else visible to
    // Rust; it does not touch the stack.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            in("r10") a3,
            in("r8") a4,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `write(fd, buf, len)`. Allowed for fd 1 (the console), the attached
/// tap fds (network transmit) and the disks' flush request eventfds (a
/// flush request). Returns the number of bytes written.
pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    let r =
        check(unsafe { syscall5(SYS_WRITE, fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0) });
    count(&WRITES, &WRITE_BYTES, r)
}

/// `read(fd, buf, len)`. Allowed for the attached tap fds (network
/// receive) and the disks' flush completion eventfds (flushes' answers).
/// Returns the number of bytes read; both are non-blocking, so an empty
/// queue (a zero counter) is [`Errno::EAGAIN`].
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let r = check(unsafe {
        syscall5(SYS_READ, fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0)
    });
    count(&READS, &READ_BYTES, r)
}

/// `pread64(fd, buf, len, offset)`. Allowed for an attached disk's fd, with
/// `len` a whole number of sectors and `offset + len` inside the disk, in
/// the transfer tiers of `abi::block_tiers`. Returns the bytes read.
pub fn pread64(fd: i32, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    check(unsafe {
        syscall5(SYS_PREAD64, fd as usize, buf.as_mut_ptr() as usize, buf.len(), offset as usize, 0)
    })
}

/// `pwrite64(fd, buf, len, offset)`. Allowed like [`pread64`], for disks not
/// attached read-only. Returns the bytes written.
pub fn pwrite64(fd: i32, buf: &[u8], offset: u64) -> Result<usize, Errno> {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    check(unsafe {
        syscall5(SYS_PWRITE64, fd as usize, buf.as_ptr() as usize, buf.len(), offset as usize, 0)
    })
}

/// `fdatasync(fd)`. Allowed for a writable disk's fd: makes what was written
/// durable on the host's storage.
pub fn fdatasync(fd: i32) -> Result<(), Errno> {
    // SAFETY: fdatasync takes no pointers.
    check(unsafe { syscall5(SYS_FDATASYNC, fd as usize, 0, 0, 0, 0) }).map(|_| ())
}

/// Clocks a guest may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Clock {
    /// `CLOCK_REALTIME`: wall-clock time since the Unix epoch.
    Realtime = 0,
    /// `CLOCK_MONOTONIC`: time since an arbitrary point, never goes back.
    Monotonic = 1,
}

/// The host vDSO's `clock_gettime`, when the tender handed one over
/// (`abi::BootInfo::vdso_clock_gettime`); 0: none, the system call is used.
static VDSO_CLOCK_GETTIME: AtomicUsize = AtomicUsize::new(0);

/// The C signature of the vDSO's `__vdso_clock_gettime`.
type VdsoClockGettime = unsafe extern "C" fn(i32, *mut [i64; 2]) -> i32;

/// Reads the clocks through the vDSO function at `addr` from now on (the
/// runtime calls this at start with the boot info's address); 0 keeps the
/// system call.
///
/// # Safety
///
/// `addr` is 0 or the address of the host vDSO's `__vdso_clock_gettime`,
/// mapped for the life of the process: the tender found it in its own
/// vDSO, which the kernel mapped and the tender never unmaps.
#[cfg_attr(any(test, fuzzing), allow(dead_code))]
pub(crate) unsafe fn use_vdso_clock(addr: u64) {
    VDSO_CLOCK_GETTIME.store(usize::try_from(addr).unwrap_or(0), Ordering::Relaxed);
}

/// Whether the clocks are read through the host's vDSO ([`clock_gettime`]).
pub fn vdso_clock() -> bool {
    VDSO_CLOCK_GETTIME.load(Ordering::Relaxed) != 0
}

/// Reads `clock`: through the host vDSO's `clock_gettime` when the tender
/// found one ([`vdso_clock`]), which makes no system call (it reads the
/// kernel's time data and the CPU's time-stamp counter from user space,
/// and makes the `clock_gettime` system call below itself only if the
/// host's clocksource cannot be read there); else with
/// [`clock_gettime_syscall`]. Returns the time as a [`Duration`] since the
/// clock's origin.
pub fn clock_gettime(clock: Clock) -> Duration {
    let f = VDSO_CLOCK_GETTIME.load(Ordering::Relaxed);
    if f == 0 {
        return clock_gettime_syscall(clock);
    }
    let mut ts = [0i64; 2];
    // SAFETY: `use_vdso_clock`'s contract: f is the vDSO's clock_gettime,
    // with this C signature, mapped for the life of the process. ts is a
    // valid, writable `struct timespec`. The clock is one of the two the
    // filter allows the system call for, the only call the vDSO falls back
    // to. The call runs on the caller's stack like any C function (the
    // guest's stacks, the main one and every green thread's, are ordinary
    // memory, 16-byte aligned at calls); it reads no thread-local storage
    // (%fs is the guest's own) and takes no signal.
    let ret = unsafe {
        let f: VdsoClockGettime = core::mem::transmute::<usize, VdsoClockGettime>(f);
        f(clock as i32, &mut ts)
    };
    timespec(ret as isize, ts)
}

/// `clock_gettime(clock, &ts)`, the system call. Allowed for
/// `CLOCK_MONOTONIC` and `CLOCK_REALTIME` only. Returns the time as a
/// [`Duration`] since the clock's origin.
pub fn clock_gettime_syscall(clock: Clock) -> Duration {
    let mut ts = [0i64; 2];
    // SAFETY: ts is a valid, writable `struct timespec` (two i64s).
    let ret = unsafe {
        syscall5(SYS_CLOCK_GETTIME, clock as i32 as usize, ts.as_mut_ptr() as usize, 0, 0, 0)
    };
    timespec(ret, ts)
}

/// A `struct timespec` the host wrote, as a [`Duration`]. `clock_gettime`
/// cannot fail for these clocks and a valid pointer; if the host ever says
/// otherwise, time standing still is the safest reading.
fn timespec(ret: isize, ts: [i64; 2]) -> Duration {
    if ret < 0 {
        return Duration::ZERO;
    }
    Duration::new(ts[0].max(0) as u64, ts[1].clamp(0, 999_999_999) as u32)
}

/// A `struct pollfd`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollFd {
    /// The file descriptor.
    pub fd: i32,
    /// Requested events (`POLLIN`...).
    pub events: i16,
    /// Returned events.
    pub revents: i16,
}

/// `POLLIN`: data to read.
pub const POLLIN: i16 = 1;

/// `ppoll(fds, nfds, timeout, NULL, 8)`. Allowed with `nfds` at most the
/// number of attached taps plus the signalfds (`abi::BootInfo::signal_fds`,
/// see [`crate::signal`]) and a NULL signal mask. `None` waits forever. Returns the number of ready fds.
pub fn ppoll(fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize, Errno> {
    let ts;
    let ts_ptr = match timeout {
        Some(d) => {
            // A timeout too large for a timespec waits as long as it can.
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            ts = [secs, i64::from(d.subsec_nanos())];
            ts.as_ptr() as usize
        }
        None => 0,
    };
    // SAFETY: fds is valid for reads and writes of fds.len() pollfds, ts_ptr
    // is NULL or points to a timespec that outlives the call, and the signal
    // mask is NULL (the kernel then ignores the size argument).
    let r =
        check(unsafe { syscall5(SYS_PPOLL, fds.as_mut_ptr() as usize, fds.len(), ts_ptr, 0, 8) });
    PPOLLS.fetch_add(1, Ordering::Relaxed);
    if r == Ok(0) {
        PPOLL_EMPTY.fetch_add(1, Ordering::Relaxed);
    }
    r
}

/// `exit_group(code)`: ends the guest, and with it the process.
pub fn exit_group(code: i32) -> ! {
    // SAFETY: exit_group takes no pointers and does not return; the `ud2`
    // after it only runs if the host broke that promise, and then faults
    // rather than letting the guest run on.
    unsafe {
        asm!(
            "syscall",
            "ud2",
            in("rax") SYS_EXIT_GROUP,
            in("rdi") code as isize,
            options(noreturn, nostack),
        );
    }
}

/// `eventfd2(0, EFD_CLOEXEC | flags)` on the host, for the unit tests that
/// play the tender's side of an eventfd (the guest's filter has no
/// `eventfd2`).
#[cfg(test)]
pub(crate) fn test_eventfd(nonblocking: bool) -> i32 {
    const SYS_EVENTFD2: usize = 290;
    const EFD_CLOEXEC: usize = 0o2000000;
    const EFD_NONBLOCK: usize = 0o4000;
    let flags = EFD_CLOEXEC | if nonblocking { EFD_NONBLOCK } else { 0 };
    // SAFETY: eventfd2 takes integers.
    let fd = check(unsafe { syscall5(SYS_EVENTFD2, 0, flags, 0, 0, 0) }).expect("eventfd2");
    fd as i32
}

/// `close(fd)` on the host, for the unit tests.
#[cfg(test)]
pub(crate) fn test_close(fd: i32) {
    const SYS_CLOSE: usize = 3;
    // SAFETY: close takes an integer; the caller owns the fd.
    let _ = check(unsafe { syscall5(SYS_CLOSE, fd as usize, 0, 0, 0, 0) });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call counts, refused ones too; bytes only for what moved.
    /// (Other tests run beside this one in the same process: at least.)
    #[test]
    fn calls_are_counted() {
        let before = counters();
        let mut buf = [0u8; 8];
        assert_eq!(read(-1, &mut buf), Err(Errno(9)));
        assert_eq!(write(-1, &buf), Err(Errno(9)));
        assert_eq!(ppoll(&mut [], Some(Duration::ZERO)), Ok(0));
        let d = counters().since(&before);
        assert!(d.reads >= 1 && d.writes >= 1, "{d:?}");
        assert!(d.ppolls >= 1 && d.ppoll_empty >= 1, "{d:?}");
        let c = Counters { reads: 5, read_bytes: 7, ..Counters::default() };
        assert_eq!(c.since(&c), Counters::default());
    }
}
