//! `timerfd`: a timer as a descriptor (`timerfd_create`,
//! `timerfd_settime`, `timerfd_gettime`), which event loops put in their
//! `epoll` set for timeouts finer than `epoll_wait`'s milliseconds (the
//! `polling` crate under async-io and smol does).
//!
//! As on Linux: a read of 8 bytes returns the number of expiries since
//! the last read (or since the timer was set) and resets it, waiting (or
//! `EAGAIN`) while there were none; shorter buffers are `EINVAL`; a
//! periodic timer counts every interval that passed, however late it is
//! read. Readable while the count is not 0. Setting the timer resets the
//! count. `CLOCK_REALTIME` timers follow the real-time clock, the others
//! (`MONOTONIC`, `BOOTTIME` and the `_ALARM` forms, which read the same
//! clocks: a guest does not suspend) the monotonic one. The guest cannot
//! set the clock, so `TFD_TIMER_CANCEL_ON_SET` is accepted and never
//! cancels.
//!
//! Expiries are counted when someone looks (a read, `poll`, an `epoll`
//! collection) and when the guest wakes: every wait for events
//! ([`super::thread::wait_for_events`]) ends by the earliest armed
//! timer's expiry ([`next_deadline`]), then [`expire_due`] tells the
//! watchers of the timers that expired, so that an `epoll` set holding
//! one wakes as on Linux, edge-triggered registrations included.

use alloc::rc::{Rc, Weak};
use alloc::vec::Vec;
use core::cell::Cell;
use core::time::Duration;

use libos::hypercall::{Clock, clock_gettime as host_clock};
use libos::time::Instant;

use super::fd::{self, Events, File, Open, Res};
use super::pipe::{self, anon_stat};
use super::start::Lock;
use super::time::{duration, timespec};
use super::watch::{Sub, Watchers};
use super::{c_int, fail};

/// A timer.
#[derive(Debug)]
pub struct TimerFd {
    clock: Clock,
    /// The next expiry on the timer's clock and the interval (zero: once);
    /// None while disarmed.
    next: Cell<Option<(Duration, Duration)>>,
    /// Expiries not read yet.
    ticks: Cell<u64>,
    /// Whether it is on [`ARMED`].
    listed: Cell<bool>,
    /// Its `epoll` registrations.
    watchers: Watchers,
}

/// The timers that may be armed, looked at by [`next_deadline`] and
/// [`expire_due`]; closed and disarmed ones leave at the next look.
static ARMED: Lock<Vec<Weak<TimerFd>>> = Lock::new(Vec::new());

/// `n` intervals of `every` after `at`, saturating.
fn after(at: Duration, every: Duration, n: u128) -> Duration {
    let nanos = at.as_nanos().saturating_add(every.as_nanos().saturating_mul(n));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl TimerFd {
    fn now(&self) -> Duration {
        host_clock(self.clock)
    }

    /// Counts the expiries up to `now`; tells the watchers and returns
    /// true if there were any.
    fn settle_at(&self, now: Duration) -> bool {
        let Some((at, every)) = self.next.get() else { return false };
        if now < at {
            return false;
        }
        let n = if every.is_zero() {
            self.next.set(None);
            1
        } else {
            let n = (now - at).as_nanos() / every.as_nanos() + 1;
            self.next.set(Some((after(at, every, n), every)));
            n
        };
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.ticks.set(self.ticks.get().saturating_add(n));
        self.watchers.notify(::libc::POLLIN | ::libc::POLLRDNORM);
        true
    }

    fn settle(&self) -> bool {
        self.next.get().is_some() && self.settle_at(self.now())
    }

    /// The time left to the next expiry and the interval, as
    /// `timerfd_gettime` reports them (zeros while disarmed).
    fn remaining(&self) -> (Duration, Duration) {
        self.settle();
        match self.next.get() {
            Some((at, every)) => {
                (at.saturating_sub(self.now()).max(Duration::from_nanos(1)), every)
            }
            None => (Duration::ZERO, Duration::ZERO),
        }
    }

    /// The next expiry on the monotonic clock, if armed.
    fn deadline(&self) -> Option<Instant> {
        let (at, _) = self.next.get()?;
        let now = Instant::now();
        Some(match self.clock {
            Clock::Monotonic => now + at.saturating_sub(host_clock(Clock::Monotonic)),
            Clock::Realtime => now + at.saturating_sub(host_clock(Clock::Realtime)),
        })
    }
}

impl File for TimerFd {
    fn read(&self, open: &Open, buf: &mut [u8]) -> Res<usize> {
        if buf.len() < 8 {
            return Err(::libc::EINVAL);
        }
        let v = pipe::wait_while_again(pipe::nonblocking(open), None, || {
            self.settle();
            match self.ticks.replace(0) {
                0 => Err(::libc::EAGAIN),
                n => Ok(n),
            }
        })?;
        buf[..8].copy_from_slice(&v.to_ne_bytes());
        Ok(8)
    }

    fn write(&self, _open: &Open, _buf: &[u8]) -> Res<usize> {
        Err(::libc::EINVAL)
    }

    fn stat(&self) -> Res<::libc::stat64> {
        Ok(anon_stat(0o600))
    }

    fn poll(&self) -> Events {
        self.settle();
        if self.ticks.get() > 0 { ::libc::POLLIN | ::libc::POLLRDNORM } else { 0 }
    }

    fn watch(&self, sub: &Rc<Sub>) {
        self.watchers.add(sub);
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// The armed timers still open (pruning the others).
fn armed() -> Vec<Rc<TimerFd>> {
    ARMED.with(|list| {
        let mut live = Vec::new();
        list.retain(|w| match w.upgrade() {
            Some(t) if t.next.get().is_some() => {
                live.push(t);
                true
            }
            Some(t) => {
                t.listed.set(false);
                false
            }
            None => false,
        });
        live
    })
}

/// The earliest expiry of an armed timer, on the monotonic clock: a wait
/// for events ends there.
pub fn next_deadline() -> Option<Instant> {
    if ARMED.with(|list| list.is_empty()) {
        return None;
    }
    armed().iter().filter_map(|t| t.deadline()).min()
}

/// Counts the expiries of the timers that are due and tells their
/// watchers (and the threads waiting for events) that they are readable.
pub fn expire_due() {
    if ARMED.with(|list| list.is_empty()) {
        return;
    }
    let mut fired = false;
    for t in armed() {
        fired |= t.settle();
    }
    if fired {
        super::thread::events_changed();
    }
}

/// The timer behind descriptor `fd`: `EBADF` if none, `EINVAL` if it is
/// not a timer.
fn timer(fd: c_int) -> Res<Rc<Open>> {
    let open = fd::get(fd)?;
    if open.file.as_any().downcast_ref::<TimerFd>().is_none() {
        return Err(::libc::EINVAL);
    }
    Ok(open)
}

fn itimerspec((value, interval): (Duration, Duration)) -> ::libc::itimerspec {
    ::libc::itimerspec { it_interval: timespec(interval), it_value: timespec(value) }
}

/// A new timer's descriptor.
pub fn new_timerfd(clockid: c_int, flags: c_int) -> Res<c_int> {
    use ::libc::*;
    let clock = match clockid {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM => Clock::Realtime,
        CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => Clock::Monotonic,
        _ => return Err(EINVAL),
    };
    if flags & !(TFD_CLOEXEC | TFD_NONBLOCK) != 0 {
        return Err(EINVAL);
    }
    let file = Rc::new(TimerFd {
        clock,
        next: Cell::new(None),
        ticks: Cell::new(0),
        listed: Cell::new(false),
        watchers: Watchers::default(),
    });
    fd::install(fd::new_open(file, O_RDWR | flags & TFD_NONBLOCK), flags & TFD_CLOEXEC != 0, 0)
}

/// Sets timer `fd` to `new` (absolute on its clock with
/// `TFD_TIMER_ABSTIME`); returns what was left of the old setting.
pub fn set(fd: c_int, flags: c_int, new: &::libc::itimerspec) -> Res<::libc::itimerspec> {
    use ::libc::*;
    let open = timer(fd)?;
    let Some(t) = open.file.as_any().downcast_ref::<TimerFd>() else { return Err(EINVAL) };
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(EINVAL);
    }
    let (Some(value), Some(interval)) = (duration(&new.it_value), duration(&new.it_interval))
    else {
        return Err(EINVAL);
    };
    let old = itimerspec(t.remaining());
    t.ticks.set(0);
    if value.is_zero() {
        t.next.set(None);
        return Ok(old);
    }
    let at = if flags & TFD_TIMER_ABSTIME != 0 { value } else { t.now().saturating_add(value) };
    t.next.set(Some((at, interval)));
    if !t.listed.replace(true) {
        let weak = downcast_weak(Rc::downgrade(&open.file));
        ARMED.with(|list| list.push(weak));
    }
    // An expiry already due (an absolute time in the past) counts at once,
    // as on Linux; and the threads already waiting for events look again,
    // to wait no longer than the new expiry.
    t.settle();
    super::thread::events_changed();
    Ok(old)
}

/// The weak reference to a `dyn File` known to be a [`TimerFd`], as one
/// to the timer.
fn downcast_weak(w: Weak<dyn File>) -> Weak<TimerFd> {
    let raw = w.into_raw();
    // SAFETY: the only caller passes a Weak of an Rc whose value is a
    // TimerFd (checked by `downcast_ref`); into_raw/from_raw keep the
    // allocation, and casting the fat pointer to the concrete type keeps
    // its data address.
    unsafe { Weak::from_raw(raw.cast::<TimerFd>()) }
}

/// What is left of timer `fd`'s setting.
pub fn get(fd: c_int) -> Res<::libc::itimerspec> {
    let open = timer(fd)?;
    let Some(t) = open.file.as_any().downcast_ref::<TimerFd>() else { return Err(::libc::EINVAL) };
    Ok(itimerspec(t.remaining()))
}

/// `timerfd_create(clockid, flags)`: `TFD_CLOEXEC`, `TFD_NONBLOCK`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn timerfd_create(clockid: c_int, flags: c_int) -> c_int {
    fd::ret_int(new_timerfd(clockid, flags))
}

/// `timerfd_settime(fd, flags, new, old)`.
///
/// # Safety
///
/// `new` is readable; `old` is NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn timerfd_settime(
    fd: c_int,
    flags: c_int,
    new: *const ::libc::itimerspec,
    old: *mut ::libc::itimerspec,
) -> c_int {
    if new.is_null() {
        return fail(::libc::EFAULT);
    }
    // SAFETY: the caller guarantees new is readable.
    let new = unsafe { new.read() };
    match set(fd, flags, &new) {
        Ok(was) => {
            if !old.is_null() {
                // SAFETY: the caller guarantees old is NULL or writable.
                unsafe { old.write(was) };
            }
            0
        }
        Err(e) => fail(e),
    }
}

/// `timerfd_gettime(fd, cur)`.
///
/// # Safety
///
/// `cur` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn timerfd_gettime(fd: c_int, cur: *mut ::libc::itimerspec) -> c_int {
    if cur.is_null() {
        return fail(::libc::EFAULT);
    }
    match get(fd) {
        Ok(v) => {
            // SAFETY: the caller guarantees cur is writable.
            unsafe { cur.write(v) };
            0
        }
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fd::close;
    use super::*;

    fn spec(value_ns: u64, interval_ns: u64) -> ::libc::itimerspec {
        itimerspec((Duration::from_nanos(value_ns), Duration::from_nanos(interval_ns)))
    }

    fn rd(fd: c_int) -> Result<u64, c_int> {
        let o = fd::get(fd).unwrap();
        let mut b = [0u8; 8];
        o.file.read(&o, &mut b).map(|_| u64::from_ne_bytes(b))
    }

    fn wait_past(d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_one_shot_timer_expires_once_and_reads_reset_the_count() {
        let _g = fd::tests::serial();
        let t = timerfd_create(::libc::CLOCK_MONOTONIC, ::libc::TFD_NONBLOCK | ::libc::TFD_CLOEXEC);
        assert!(t >= 0);
        assert_eq!(fd::fcntl(t, ::libc::F_GETFD, 0), ::libc::FD_CLOEXEC);
        assert_eq!(rd(t), Err(::libc::EAGAIN));
        let o = fd::get(t).unwrap();
        assert_eq!(o.file.poll(), 0);
        set(t, 0, &spec(20_000_000, 0)).unwrap();
        let (left, every) = (get(t).unwrap().it_value, get(t).unwrap().it_interval);
        assert!(left.tv_sec == 0 && left.tv_nsec > 0 && left.tv_nsec <= 20_000_000, "{left:?}");
        assert_eq!((every.tv_sec, every.tv_nsec), (0, 0));
        assert!(next_deadline().is_some());
        assert_eq!(rd(t), Err(::libc::EAGAIN));
        wait_past(Duration::from_millis(25));
        assert_eq!(o.file.poll(), ::libc::POLLIN | ::libc::POLLRDNORM);
        assert_eq!(rd(t), Ok(1));
        assert_eq!(rd(t), Err(::libc::EAGAIN));
        // Disarmed after it fired: gettime says zero, nothing is due.
        let v = get(t).unwrap();
        assert_eq!((v.it_value.tv_sec, v.it_value.tv_nsec), (0, 0));
        drop(o);
        assert_eq!(close(t), 0);
        assert_eq!(next_deadline(), None);
    }

    #[test]
    fn a_periodic_timer_counts_every_interval_that_passed() {
        let _g = fd::tests::serial();
        let t = timerfd_create(::libc::CLOCK_MONOTONIC, ::libc::TFD_NONBLOCK);
        set(t, 0, &spec(5_000_000, 5_000_000)).unwrap();
        wait_past(Duration::from_millis(32));
        let n = rd(t).unwrap();
        assert!((5..=7).contains(&n), "{n} expiries in 32 ms of a 5 ms timer");
        // Still armed, with its interval; setting it again resets the
        // count and returns the old setting.
        let old = set(t, 0, &spec(0, 0)).unwrap();
        assert_eq!((old.it_interval.tv_sec, old.it_interval.tv_nsec), (0, 5_000_000));
        assert_eq!(rd(t), Err(::libc::EAGAIN));
        assert_eq!(close(t), 0);
    }

    #[test]
    fn an_absolute_time_in_the_past_is_due_at_once() {
        let _g = fd::tests::serial();
        let t = timerfd_create(::libc::CLOCK_REALTIME, ::libc::TFD_NONBLOCK);
        set(t, ::libc::TFD_TIMER_ABSTIME, &spec(1, 0)).unwrap();
        assert_eq!(rd(t), Ok(1));
        assert_eq!(close(t), 0);
    }

    #[test]
    fn bad_arguments_are_refused_as_linux_refuses_them() {
        let _g = fd::tests::serial();
        assert_eq!(new_timerfd(::libc::CLOCK_PROCESS_CPUTIME_ID, 0), Err(::libc::EINVAL));
        assert_eq!(new_timerfd(::libc::CLOCK_MONOTONIC, 0x4000_0000), Err(::libc::EINVAL));
        let t = new_timerfd(::libc::CLOCK_MONOTONIC, 0).unwrap();
        let mut bad = spec(1, 0);
        bad.it_value.tv_nsec = 1_000_000_000;
        assert_eq!(set(t, 0, &bad).err(), Some(::libc::EINVAL));
        bad.it_value.tv_nsec = -1;
        assert_eq!(set(t, 0, &bad).err(), Some(::libc::EINVAL));
        assert_eq!(set(t, 0x100, &spec(1, 0)).err(), Some(::libc::EINVAL));
        // Short reads; writes; a descriptor that is not a timer.
        let o = fd::get(t).unwrap();
        let mut small = [0u8; 4];
        assert_eq!(o.file.read(&o, &mut small), Err(::libc::EINVAL));
        assert_eq!(o.file.write(&o, &[0; 8]), Err(::libc::EINVAL));
        drop(o);
        let e = super::super::eventfd::new_eventfd(0, 0).unwrap();
        assert_eq!(get(e).err(), Some(::libc::EINVAL));
        assert_eq!(get(9999).err(), Some(::libc::EBADF));
        assert_eq!(close(e), 0);
        assert_eq!(close(t), 0);
    }

    #[test]
    fn an_expiry_tells_the_epoll_registrations() {
        let _g = fd::tests::serial();
        let t = new_timerfd(::libc::CLOCK_MONOTONIC, ::libc::TFD_NONBLOCK).unwrap();
        let ep = super::super::epoll::epoll_create1(0);
        let mut ev =
            ::libc::epoll_event { events: (::libc::EPOLLIN | ::libc::EPOLLET) as u32, u64: 42 };
        // SAFETY: ev is readable.
        let added =
            unsafe { super::super::epoll::epoll_ctl(ep, ::libc::EPOLL_CTL_ADD, t, &mut ev) };
        assert_eq!(added, 0);
        let mut out = [::libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: out is writable for 4 events.
        assert_eq!(unsafe { super::super::epoll::epoll_wait(ep, out.as_mut_ptr(), 4, 0) }, 0);
        set(t, 0, &spec(10_000_000, 0)).unwrap();
        wait_past(Duration::from_millis(12));
        expire_due();
        // SAFETY: as above.
        assert_eq!(unsafe { super::super::epoll::epoll_wait(ep, out.as_mut_ptr(), 4, 0) }, 1);
        assert_eq!({ out[0].u64 }, 42);
        // Edge-triggered: not again until it expires again.
        // SAFETY: as above.
        assert_eq!(unsafe { super::super::epoll::epoll_wait(ep, out.as_mut_ptr(), 4, 0) }, 0);
        assert_eq!(close(ep), 0);
        assert_eq!(close(t), 0);
    }
}
