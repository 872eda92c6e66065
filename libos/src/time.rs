//! Time: a monotonic [`Instant`], wall-clock [`SystemTime`], and [`sleep`].
//!
//! Both clocks (`CLOCK_MONOTONIC`, `CLOCK_REALTIME`) are read with
//! [`hypercall::clock_gettime`]: through the host's vDSO, without a system
//! call, when the tender found one (the vDSO falls back to the
//! `clock_gettime` system call by itself when the host's clocksource cannot
//! be read from user space), else with the system call. `sleep` is a
//! `ppoll` with a timeout and no file descriptor but the termination
//! signals' ([`crate::signal`]).

use core::ops::{Add, Sub};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use crate::hypercall::{self, Clock};

/// A point on the monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// Now.
    pub fn now() -> Self {
        Self(hypercall::clock_gettime(Clock::Monotonic))
    }

    /// Time since `earlier`, zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// Time since `self`.
    pub fn elapsed(&self) -> Duration {
        Self::now().duration_since(*self)
    }

    /// `self + d`, if representable.
    pub fn checked_add(&self, d: Duration) -> Option<Instant> {
        self.0.checked_add(d).map(Self)
    }

    /// `self - d`, if representable.
    pub fn checked_sub(&self, d: Duration) -> Option<Instant> {
        self.0.checked_sub(d).map(Self)
    }

    /// The instant as time since the monotonic clock's origin.
    pub const fn as_duration(&self) -> Duration {
        self.0
    }

    /// The instant `d` after the monotonic clock's origin.
    pub const fn from_duration(d: Duration) -> Self {
        Self(d)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates instead of panicking: a deadline too far away is "never".
    fn add(self, d: Duration) -> Instant {
        Self(self.0.saturating_add(d))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        self.duration_since(earlier)
    }
}

/// A point on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemTime(Duration);

/// 1970-01-01T00:00:00Z.
pub const UNIX_EPOCH: SystemTime = SystemTime(Duration::ZERO);

impl SystemTime {
    /// The Unix epoch.
    pub const UNIX_EPOCH: SystemTime = UNIX_EPOCH;

    /// Now.
    pub fn now() -> Self {
        Self(hypercall::clock_gettime(Clock::Realtime))
    }

    /// Time since `earlier`, or how much earlier `self` is.
    pub fn duration_since(&self, earlier: SystemTime) -> Result<Duration, Duration> {
        self.0.checked_sub(earlier.0).ok_or_else(|| earlier.0 - self.0)
    }

    /// The time `d` after the epoch.
    pub const fn from_unix(d: Duration) -> Self {
        Self(d)
    }
}

/// Sleeps for at least `d`: `ppoll` on no fd but the termination signals'
/// ([`crate::signal`]), resumed after interruptions.
pub fn sleep(d: Duration) {
    let deadline = Instant::now() + d;
    sleep_until(deadline);
}

/// Sleeps until `deadline` has passed. A termination signal that arrives
/// meanwhile is acted on ([`crate::signal`]: by default the guest exits)
/// and the sleep goes on.
pub fn sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let (mut fds, n) = crate::signal::poll_fds();
        // EINTR and early wake-ups simply go round again.
        if hypercall::ppoll(&mut fds[..n], Some(deadline - now)).unwrap_or(0) > 0 {
            crate::signal::seen(&fds[..n]);
        }
    }
}

/// Monotonic nanoseconds at boot (0 until the runtime marks it).
static BOOT_NANOS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn mark_boot() {
    let now = Instant::now().0.as_nanos();
    BOOT_NANOS.store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Time since the guest booted.
pub fn since_boot() -> Duration {
    let boot = Duration::from_nanos(BOOT_NANOS.load(Ordering::Relaxed));
    Instant::now().0.saturating_sub(boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let a = Instant::from_duration(Duration::from_secs(5));
        let b = a + Duration::from_secs(2);
        assert_eq!(b - a, Duration::from_secs(2));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!((a + Duration::MAX).as_duration(), Duration::MAX);
    }

    #[test]
    fn wall_clock_differences() {
        let a = SystemTime::from_unix(Duration::from_secs(10));
        let b = SystemTime::from_unix(Duration::from_secs(4));
        assert_eq!(a.duration_since(b), Ok(Duration::from_secs(6)));
        assert_eq!(b.duration_since(a), Err(Duration::from_secs(6)));
    }

    #[test]
    fn host_clocks_work_through_the_hypercalls() {
        let t0 = Instant::now();
        sleep(Duration::from_millis(20));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(wall > Duration::from_secs(1_483_228_800)); // 2017-01-01
    }
}
