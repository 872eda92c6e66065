//! Termination signals: `SIGTERM` and `SIGINT` as events.
//!
//! The tender blocks both signals before the jump and hands the guest a
//! `signalfd` for each (`abi::BootInfo::signal_fds`): a signal sent to the
//! process waits on its fd instead of ending it. Every `ppoll` libos makes
//! (the executor's idle wait, the std scheduler's, a check without
//! waiting, [`crate::time::sleep`]) includes the fds of the signals not yet
//! seen. When one polls readable, the signal's [`Disposition`] decides:
//!
//! * [`Disposition::Default`], until the application says otherwise: the
//!   guest exits with status 128 + the signal's number (143 for `SIGTERM`,
//!   130 for `SIGINT`), what a shell or a container runtime reports for a
//!   process that Linux's default action ended, through
//!   [`crate::process::exit`]: its connections send what they hold first;
//! * [`Disposition::Ignore`]: nothing happens;
//! * [`Disposition::Deliver`]: the signal is recorded, [`received`] and
//!   [`crate::process::terminated`] report it, and the tasks waiting for
//!   it are woken. [`crate::process::terminated`] and
//!   [`crate::process::terminate_requested`] opt in to this for both
//!   signals; libos-std does it for a signal that has a handler.
//!
//! Nothing reads the fds (the filter has no `read` rule for them, so that
//! a guest without network gets no new system call): a pending signal
//! stays pending, its fd stays readable, so it is acted on once and then
//! left out of the `ppoll`s. A second `SIGTERM` merges into the first one,
//! as two standard signals do while blocked on Linux; it is not seen.
//!
//! Once the guest exits ([`begin_exit`], from `crate::net::linger`), no
//! disposition applies: a signal seen then is only recorded
//! ([`seen_while_exiting`]), and ends the exit's wait for the connections.
//!
//! The check happens when the guest waits or checks (its `ppoll`s). A
//! guest that computes without ever waiting or calling
//! [`crate::process::terminate_requested`] does not see the signal; a
//! container runtime then ends it with `SIGKILL` after its grace period,
//! as it does any process that does not stop.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use core::task::Waker;

use alloc::vec::Vec;
use spin::Mutex;

use crate::hypercall::{self, POLLIN, PollFd};

/// A signal the guest can receive as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `SIGTERM` (15): stop, please (`kill`, container runtimes, Kubernetes).
    Term,
    /// `SIGINT` (2): Ctrl-C at a terminal.
    Int,
}

impl Signal {
    /// Both, in the order of `abi::EVENT_SIGNALS`.
    pub const ALL: [Signal; 2] = [Signal::Term, Signal::Int];

    /// Its Linux number.
    pub const fn number(self) -> i32 {
        match self {
            Signal::Term => 15,
            Signal::Int => 2,
        }
    }

    /// The signal with Linux number `n`, if it is one of these.
    pub const fn from_number(n: i32) -> Option<Self> {
        match n {
            15 => Some(Signal::Term),
            2 => Some(Signal::Int),
            _ => None,
        }
    }

    /// Its name, `SIGTERM` or `SIGINT`.
    pub const fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
        }
    }

    /// The exit status of a process Linux's default action ended with it,
    /// as a shell reports it: 128 + its number.
    pub const fn default_status(self) -> i32 {
        128 + self.number()
    }

    const fn index(self) -> usize {
        match self {
            Signal::Term => 0,
            Signal::Int => 1,
        }
    }

    const fn bit(self) -> u8 {
        1 << self.index()
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the guest does when a signal arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Disposition {
    /// Exit with status 128 + the signal's number, as Linux's default
    /// action ends a process (the shell's 143 for `SIGTERM`).
    Default = 0,
    /// Nothing happens (the signal is dropped, as Linux drops an ignored one).
    Ignore = 1,
    /// Recorded and handed to the application ([`received`], wakers).
    Deliver = 2,
}

impl Disposition {
    const fn from_raw(raw: u8) -> Self {
        match raw {
            1 => Self::Ignore,
            2 => Self::Deliver,
            _ => Self::Default,
        }
    }
}

static DISPOSITIONS: [AtomicU8; 2] = [AtomicU8::new(0), AtomicU8::new(0)];
/// Signals whose pending state has been acted on: their fds are no longer
/// polled.
static SEEN: AtomicU8 = AtomicU8::new(0);
/// Delivered signals.
static RECEIVED: AtomicU8 = AtomicU8::new(0);
/// Delivered signals not yet taken by [`take`].
static UNTAKEN: AtomicU8 = AtomicU8::new(0);
/// The first delivered signal's number (0: none yet).
static FIRST: AtomicU8 = AtomicU8::new(0);
/// Whether any waker was registered since the last delivery.
static HAS_WAKERS: AtomicBool = AtomicBool::new(false);
/// Set when the guest has begun to exit ([`begin_exit`]).
static EXITING: AtomicBool = AtomicBool::new(false);
/// The signals seen since the guest began to exit.
static WHILE_EXITING: AtomicU8 = AtomicU8::new(0);
static WAKERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());

/// Sets what the guest does when `signal` arrives; returns what it did
/// before. A signal already acted on is not seen again (see the module
/// documentation).
pub fn set_disposition(signal: Signal, disposition: Disposition) -> Disposition {
    Disposition::from_raw(DISPOSITIONS[signal.index()].swap(disposition as u8, Ordering::AcqRel))
}

/// What the guest does when `signal` arrives.
pub fn disposition(signal: Signal) -> Disposition {
    Disposition::from_raw(DISPOSITIONS[signal.index()].load(Ordering::Acquire))
}

/// Whether the tender hands `signal` to the guest at all: it does not when
/// its own caller ignored the signal (then the guest never sees it, as a
/// Linux process started with the signal ignored).
pub fn available(signal: Signal) -> bool {
    fd_of(signal).is_some()
}

/// The first signal delivered (with [`Disposition::Deliver`]), if any.
pub fn received() -> Option<Signal> {
    Signal::from_number(i32::from(FIRST.load(Ordering::Acquire)))
}

/// A delivered signal not yet taken, and takes it (each delivery once):
/// for a layer that runs handlers, such as libos-std's.
pub fn take() -> Option<Signal> {
    Signal::ALL.into_iter().find(|&s| UNTAKEN.fetch_and(!s.bit(), Ordering::AcqRel) & s.bit() != 0)
}

/// Whether a delivered signal waits for [`take`].
pub fn untaken() -> bool {
    UNTAKEN.load(Ordering::Acquire) != 0
}

/// Whether a signal may still be delivered: one with
/// [`Disposition::Deliver`] has an fd and has not arrived. A scheduler
/// whose threads all wait forever is then not deadlocked: a signal may
/// wake it.
pub fn awaited() -> bool {
    Signal::ALL.into_iter().any(|s| {
        disposition(s) == Disposition::Deliver
            && SEEN.load(Ordering::Acquire) & s.bit() == 0
            && available(s)
    })
}

/// Wakes `waker` when a signal is delivered (at once if one already was).
pub fn register(waker: &Waker) {
    if RECEIVED.load(Ordering::Acquire) != 0 {
        waker.wake_by_ref();
        return;
    }
    let mut wakers = WAKERS.lock();
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
    HAS_WAKERS.store(true, Ordering::Release);
}

fn fd_of(signal: Signal) -> Option<i32> {
    let info = crate::rt::boot::info()?;
    let fd = info.signal_fds[signal.index()];
    (fd >= 0).then_some(fd)
}

/// The fds of the signals still watched, for a `ppoll`: the first `n`
/// entries of the array.
pub(crate) fn poll_fds() -> ([PollFd; 2], usize) {
    let mut out = [PollFd { fd: -1, events: POLLIN, revents: 0 }; 2];
    let mut n = 0;
    let seen = SEEN.load(Ordering::Acquire);
    for s in Signal::ALL {
        if seen & s.bit() != 0 {
            continue;
        }
        if let Some(fd) = fd_of(s) {
            out[n].fd = fd;
            n += 1;
        }
    }
    (out, n)
}

/// Acts on the signals a `ppoll` reported in `fds` (entries from
/// [`poll_fds`]); others are skipped. May exit the guest.
pub(crate) fn seen(fds: &[PollFd]) {
    for p in fds.iter().filter(|p| p.revents != 0) {
        let Some(s) = Signal::ALL.into_iter().find(|&s| fd_of(s) == Some(p.fd)) else {
            continue;
        };
        if SEEN.fetch_or(s.bit(), Ordering::AcqRel) & s.bit() != 0 {
            continue;
        }
        if EXITING.load(Ordering::Acquire) {
            // The program has ended: no disposition applies any more; the
            // exit's linger ends at once (`crate::net::linger`).
            WHILE_EXITING.fetch_or(s.bit(), Ordering::AcqRel);
            continue;
        }
        match disposition(s) {
            Disposition::Default => crate::process::exit(s.default_status()),
            Disposition::Ignore => {}
            Disposition::Deliver => deliver(s),
        }
    }
}

/// Marks the guest as exiting: from now on a signal that arrives is only
/// recorded, for [`seen_while_exiting`] (see `crate::net::linger`).
pub(crate) fn begin_exit() {
    EXITING.store(true, Ordering::Release);
}

/// The first of the signals that arrived since [`begin_exit`], if any.
pub(crate) fn seen_while_exiting() -> Option<Signal> {
    let bits = WHILE_EXITING.load(Ordering::Acquire);
    Signal::ALL.into_iter().find(|s| bits & s.bit() != 0)
}

fn deliver(s: Signal) {
    let _ = FIRST.compare_exchange(0, s.number() as u8, Ordering::AcqRel, Ordering::Acquire);
    RECEIVED.fetch_or(s.bit(), Ordering::AcqRel);
    UNTAKEN.fetch_or(s.bit(), Ordering::AcqRel);
    if HAS_WAKERS.swap(false, Ordering::AcqRel) {
        // Wake outside the lock: a waker may register again.
        let wakers = core::mem::take(&mut *WAKERS.lock());
        for w in wakers {
            w.wake();
        }
    }
}

/// Asks the host, without waiting, whether a watched signal is pending,
/// and acts on it (see [`seen`]).
pub(crate) fn check() {
    let (mut fds, n) = poll_fds();
    if n == 0 {
        return;
    }
    if hypercall::ppoll(&mut fds[..n], Some(core::time::Duration::ZERO)).unwrap_or(0) > 0 {
        seen(&fds[..n]);
    }
}

/// Serialises the host tests that touch this module's global state, and
/// resets it.
#[cfg(test)]
pub(crate) fn test_state() -> spin::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock();
    EXITING.store(false, Ordering::Release);
    for a in [&SEEN, &RECEIVED, &UNTAKEN, &FIRST, &WHILE_EXITING] {
        a.store(0, Ordering::Release);
    }
    for d in &DISPOSITIONS {
        d.store(0, Ordering::Release);
    }
    WAKERS.lock().clear();
    guard
}

#[cfg(test)]
pub(crate) fn deliver_for_test(s: Signal) {
    SEEN.fetch_or(s.bit(), Ordering::AcqRel);
    deliver(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_statuses() {
        assert_eq!(Signal::Term.default_status(), 143);
        assert_eq!(Signal::Int.default_status(), 130);
        for (s, n) in Signal::ALL.iter().zip(abi::EVENT_SIGNALS) {
            assert_eq!(s.number() as u32, n, "the ABI's order");
            assert_eq!(Signal::from_number(s.number()), Some(*s));
        }
        assert_eq!(Signal::from_number(9), None);
        assert_eq!(Signal::Term.to_string(), "SIGTERM");
    }

    #[test]
    fn delivery_records_the_first_and_wakes_once() {
        use alloc::sync::Arc;
        use core::sync::atomic::AtomicUsize;
        struct Count(AtomicUsize);
        impl alloc::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _state = test_state();
        // On the host there is no boot info: no fd, nothing awaited.
        assert!(!available(Signal::Term));
        assert!(!awaited());
        assert_eq!(poll_fds().1, 0);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        register(&waker);
        register(&waker);
        deliver_for_test(Signal::Int);
        deliver_for_test(Signal::Term);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(received(), Some(Signal::Int));
        assert_eq!(take(), Some(Signal::Term));
        assert_eq!(take(), Some(Signal::Int));
        assert_eq!(take(), None);
        // Registering after a delivery wakes at once.
        register(&waker);
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
    }
}
