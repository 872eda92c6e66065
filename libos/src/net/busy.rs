//! Busy polling: when frames have been coming back quickly, the guest
//! asks its taps for a while before it sleeps in `ppoll`.
//!
//! A request–response server under load waits, after each batch of
//! answers, for its clients' next requests, most often for a few
//! microseconds. Sleeping for them costs more than the wait: the host
//! switches the tender out, the vCPU halts if nothing else runs, and the
//! client's next `write` to the tap has to wake the tender again (an IPI
//! to a halted vCPU, on a VM a trip through the hypervisor); the client's
//! own wake-up by the answer gets more expensive too, since its vCPU has
//! halted meanwhile. With [`Policy::spin`] the guest spins instead,
//! asking the taps without waiting (`ppoll` with a zero timeout, a call its
//! filter already allows) until a frame comes or the window ends, then
//! sleeps as before. Linux's `net.core.busy_poll` and the `haltpoll`
//! cpuidle driver do the same thing for the same reason.
//!
//! Spinning burns CPU, so it is adaptive and bounded ([`Policy`]): the
//! guest spins only after a wait that a spin would have saved (a frame
//! came within the window), for the window at most; a spin that finds
//! nothing, or that the host switched out (the CPU has other work), stops
//! the spinning until waits are short again, and each miss in
//! a row doubles the number of short waits needed before the next spin (a
//! client that can only run once the guest sleeps, on the same CPU, would
//! otherwise make every other wait spin in vain). An idle guest spins
//! at most once, after its last frame, and then sleeps in one `ppoll` as
//! before. `NABLA_BUSY_POLL_US` sets the window in microseconds (50 is a
//! little more than a client's turn on the other vCPU of the benchmark
//! machine); it is off by default ([`DEFAULT_WINDOW`]).

use core::time::Duration;

/// The default window: none, busy polling is opt-in. On a loaded machine
/// it measured neither better nor worse (docs/performance.md, "httpd's
/// requests/s: counts per request and busy polling"); on a quiet one it
/// saves the halts of the guest's vCPU but keeps it busy, which the host's
/// CPU quota may answer with 100 ms freezes: to be measured there
/// (`nabla bench http --guest-env NABLA_BUSY_POLL_US=50`) before it is on
/// by default.
pub(crate) const DEFAULT_WINDOW: Duration = Duration::ZERO;

/// A call of the spin that took this long means the guest was switched
/// out meanwhile: the CPU is wanted by others, and the spin ends as a miss
/// ([`Policy::miss`]) so that the guest sleeps, not spins, while the
/// machine is busy.
pub(crate) const PREEMPTED: Duration = Duration::from_micros(20);

/// Most misses in a row counted: after that many, 2^6 = 64 short waits are
/// needed before the next spin.
const MISSES_MAX: u32 = 6;

/// When to spin, from how the last waits went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Longest spin; zero: never spin.
    window: Duration,
    /// The last wait was short: a frame came within `window` of its start.
    armed: bool,
    /// Spins in a row that found nothing.
    misses: u32,
    /// Short waits still needed before the next spin, after a miss.
    cooldown: u32,
}

/// How a wait ended, for [`Policy::waited`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// A frame (or a signal) came this long after the wait began.
    Frame(Duration),
    /// The deadline passed first, or the wait was interrupted.
    Timeout,
}

impl Policy {
    /// A policy that spins for `window` at most (zero: never).
    pub(crate) const fn new(window: Duration) -> Self {
        Self { window, armed: false, misses: 0, cooldown: 0 }
    }

    /// Whether it ever spins (a window above zero).
    pub(crate) fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// How long the next wait may spin before it sleeps: zero unless the
    /// last wait was short and no miss is being paid for.
    pub(crate) fn spin(&self) -> Duration {
        if self.armed && self.cooldown == 0 { self.window } else { Duration::ZERO }
    }

    /// The spin found a frame: the next wait may spin again.
    pub(crate) fn hit(&mut self) {
        self.misses = 0;
    }

    /// The spin ran out its window without a frame: no spin until waits
    /// are short again, twice as many of them as after the last miss.
    pub(crate) fn miss(&mut self) {
        self.armed = false;
        self.misses = (self.misses + 1).min(MISSES_MAX);
        self.cooldown = 1 << self.misses;
    }

    /// A wait that slept (after a spin that missed, or none) ended so.
    pub(crate) fn waited(&mut self, ended: Ended) {
        match ended {
            Ended::Frame(after) if after <= self.window => {
                self.cooldown = self.cooldown.saturating_sub(1);
                self.armed = true;
            }
            _ => self.armed = false,
        }
    }
}

/// The window `NABLA_BUSY_POLL_US` asks for (microseconds, at most a
/// second), or the default.
pub(crate) fn window_from(value: Option<&str>) -> Duration {
    match value.map(str::trim).map(str::parse::<u64>) {
        Some(Ok(us)) if us <= 1_000_000 => Duration::from_micros(us),
        Some(_) => {
            log::warn!("NABLA_BUSY_POLL_US: not a number of microseconds up to 1000000: ignored");
            DEFAULT_WINDOW
        }
        None => DEFAULT_WINDOW,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn a_guest_spins_only_after_a_short_wait() {
        let mut p = Policy::new(50 * US);
        assert_eq!(p.spin(), Duration::ZERO, "no spin before anything came");
        p.waited(Ended::Frame(80 * US));
        assert_eq!(p.spin(), Duration::ZERO, "a wait longer than the window");
        p.waited(Ended::Frame(30 * US));
        assert_eq!(p.spin(), 50 * US);
        p.hit();
        assert_eq!(p.spin(), 50 * US, "a spin that found a frame spins again");
        p.waited(Ended::Timeout);
        assert_eq!(p.spin(), Duration::ZERO, "a deadline ends the spinning");
    }

    #[test]
    fn an_idle_guest_spins_once_then_sleeps() {
        let mut p = Policy::new(50 * US);
        p.waited(Ended::Frame(10 * US));
        // The load stops: the spin misses and the guest sleeps for long.
        assert!(!p.spin().is_zero());
        p.miss();
        p.waited(Ended::Frame(Duration::from_secs(2)));
        for _ in 0..10 {
            assert_eq!(p.spin(), Duration::ZERO);
            p.waited(Ended::Timeout);
        }
    }

    #[test]
    fn misses_in_a_row_need_more_and_more_short_waits() {
        let mut p = Policy::new(50 * US);
        p.waited(Ended::Frame(US));
        let mut spins = 0;
        // A client that only sends once the guest sleeps: every spin
        // misses, every sleep is short.
        for _ in 0..1000 {
            if p.spin().is_zero() {
                p.waited(Ended::Frame(5 * US));
            } else {
                spins += 1;
                p.miss();
                p.waited(Ended::Frame(55 * US));
            }
        }
        // 2 + 4 + ... + 64 short waits, then one spin per 65 waits.
        assert!(spins <= 6 + 1000 / 65 + 1, "{spins} spins in vain out of 1000 waits");
        // One hit forgives the misses.
        p.waited(Ended::Frame(US));
        while p.spin().is_zero() {
            p.waited(Ended::Frame(US));
        }
        p.hit();
        p.waited(Ended::Frame(US));
        p.miss();
        p.waited(Ended::Frame(US));
        p.waited(Ended::Frame(US));
        assert!(!p.spin().is_zero(), "two short waits after a first miss");
    }

    #[test]
    fn a_zero_window_never_spins() {
        let mut p = Policy::new(Duration::ZERO);
        assert!(!p.enabled());
        p.waited(Ended::Frame(Duration::ZERO));
        p.hit();
        assert_eq!(p.spin(), Duration::ZERO);
    }

    #[test]
    fn the_window_comes_from_the_environment() {
        assert_eq!(window_from(None), DEFAULT_WINDOW);
        assert_eq!(window_from(Some("50")), 50 * US);
        assert_eq!(window_from(Some("0")), Duration::ZERO);
        assert_eq!(window_from(Some(" 120 ")), 120 * US);
        assert_eq!(window_from(Some("fast")), DEFAULT_WINDOW);
        assert_eq!(window_from(Some("2000000")), DEFAULT_WINDOW);
    }
}
