//! The futex, emulated for cooperative threads: what std's `Mutex`,
//! `RwLock`, `Condvar`, `Once`, channels and `park` call through
//! `syscall(SYS_futex, ...)`.
//!
//! std 1.95 uses two operations, always with `FUTEX_PRIVATE_FLAG`:
//! `FUTEX_WAIT_BITSET` with a full bitset and an absolute
//! `CLOCK_MONOTONIC` timeout (or none), and `FUTEX_WAKE` with a count of 1
//! or `i32::MAX`. This file also takes `FUTEX_WAIT` (a relative timeout),
//! `FUTEX_WAKE_BITSET` and `FUTEX_CLOCK_REALTIME`, as Linux does; the
//! requeue and priority-inheritance operations are `ENOSYS`.
//!
//! Waiters queue per address in arrival order, and a wake takes them from
//! the front, as Linux's (fair) futex hash does. Since threads switch only
//! when they block or wake another, "check the word, then sleep" is atomic
//! here without any lock: no other thread runs in between. A wake that
//! made threads ready lets them run before the waker continues (the
//! wake-up preemption of [`super::switch::preempt`]).

use alloc::collections::VecDeque;
use core::time::Duration;

use super::super::c_int;

/// One blocked `FUTEX_WAIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiter {
    addr: usize,
    slot: usize,
    bitset: u32,
}

/// The threads blocked in `FUTEX_WAIT`, oldest first.
#[derive(Debug)]
pub struct Waiters {
    queue: VecDeque<Waiter>,
}

impl Waiters {
    /// No waiters.
    pub const fn new() -> Self {
        Self { queue: VecDeque::new() }
    }

    /// Makes room for `threads` waiters, so that a wait never fails for
    /// want of memory (each thread waits on one futex at most); false
    /// without memory.
    pub fn reserve(&mut self, threads: usize) -> bool {
        self.queue.try_reserve(threads.saturating_sub(self.queue.len())).is_ok()
    }

    /// Queues the thread in `slot` on `addr`; false without memory.
    pub fn push(&mut self, addr: usize, slot: usize, bitset: u32) -> bool {
        if self.queue.try_reserve(1).is_err() {
            return false;
        }
        self.queue.push_back(Waiter { addr, slot, bitset });
        true
    }

    /// Takes up to `n` waiters on `addr` whose bitset meets `bitset`, the
    /// oldest first, passing each one's slot to `woken`; returns how many.
    pub fn wake(
        &mut self,
        addr: usize,
        n: usize,
        bitset: u32,
        mut woken: impl FnMut(usize),
    ) -> usize {
        let mut count = 0;
        let mut i = 0;
        while count < n && i < self.queue.len() {
            let w = self.queue[i];
            if w.addr == addr && w.bitset & bitset != 0 {
                self.queue.remove(i);
                woken(w.slot);
                count += 1;
            } else {
                i += 1;
            }
        }
        count
    }

    /// Takes the thread in `slot` off the queue (its wait timed out);
    /// returns whether it was still there (false: a wake took it first).
    pub fn cancel(&mut self, slot: usize) -> bool {
        match self.queue.iter().position(|w| w.slot == slot) {
            Some(i) => {
                self.queue.remove(i);
                true
            }
            None => false,
        }
    }
}

impl Default for Waiters {
    fn default() -> Self {
        Self::new()
    }
}

/// When a wait ends, as the call gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Never.
    Never,
    /// After this long (`FUTEX_WAIT`).
    After(Duration),
    /// At this time of the monotonic clock (`FUTEX_WAIT_BITSET`).
    Monotonic(Duration),
    /// At this time of the realtime clock (with `FUTEX_CLOCK_REALTIME`).
    Realtime(Duration),
}

/// A decoded futex call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Sleep if the word still holds `expected`.
    Wait { expected: u32, timeout: Timeout, bitset: u32 },
    /// Wake up to `n` waiters.
    Wake { n: usize, bitset: u32 },
}

/// Decodes `futex(addr, op, val, timeout, addr2, val3)`; the error number
/// is Linux's for a call it would refuse.
pub fn decode(
    op: c_int,
    val: u32,
    timeout: Option<&::libc::timespec>,
    val3: u32,
) -> Result<Op, c_int> {
    let realtime = op & ::libc::FUTEX_CLOCK_REALTIME != 0;
    let cmd = op & !(::libc::FUTEX_PRIVATE_FLAG | ::libc::FUTEX_CLOCK_REALTIME);
    let time = |absolute: bool| -> Result<Timeout, c_int> {
        let Some(ts) = timeout else { return Ok(Timeout::Never) };
        let d = super::super::time::duration(ts).ok_or(::libc::EINVAL)?;
        Ok(match (absolute, realtime) {
            (false, _) => Timeout::After(d),
            (true, false) => Timeout::Monotonic(d),
            (true, true) => Timeout::Realtime(d),
        })
    };
    match cmd {
        ::libc::FUTEX_WAIT => Ok(Op::Wait { expected: val, timeout: time(false)?, bitset: !0 }),
        ::libc::FUTEX_WAIT_BITSET if val3 != 0 => {
            Ok(Op::Wait { expected: val, timeout: time(true)?, bitset: val3 })
        }
        ::libc::FUTEX_WAKE if !realtime => Ok(Op::Wake { n: val as i32 as usize, bitset: !0 }),
        ::libc::FUTEX_WAKE_BITSET if val3 != 0 && !realtime => {
            Ok(Op::Wake { n: val as i32 as usize, bitset: val3 })
        }
        ::libc::FUTEX_WAIT_BITSET | ::libc::FUTEX_WAKE_BITSET | ::libc::FUTEX_WAKE => {
            Err(::libc::EINVAL)
        }
        _ => Err(::libc::ENOSYS),
    }
}

/// The guest's futex: blocks and wakes cooperative threads (compiled on
/// the host too, where nothing calls it).
pub mod guest {
    use libos::hypercall::{Clock, clock_gettime};
    use libos::time::Instant;

    use super::super::super::start::Lock;
    use super::super::sched::Wait;
    use super::*;

    /// The threads blocked in a futex wait.
    static WAITERS: Lock<Waiters> = Lock::new(Waiters::new());

    /// Makes room for `threads` waiters (called before a thread is added).
    pub fn reserve(threads: usize) -> bool {
        WAITERS.with(|w| w.reserve(threads))
    }

    /// `syscall(SYS_futex, addr, op, val, timeout, addr2, val3)`: the
    /// return value, or the error number.
    ///
    /// # Safety
    ///
    /// `word` is a live, aligned `u32` (for a wait; a wake only compares
    /// addresses); for a wait, `timeout` is NULL or a readable timespec.
    pub unsafe fn futex(
        word: *const u32,
        op: c_int,
        val: u32,
        timeout: *const ::libc::timespec,
        val3: u32,
    ) -> Result<usize, c_int> {
        let wait = matches!(op & 0x7f, ::libc::FUTEX_WAIT | ::libc::FUTEX_WAIT_BITSET);
        // SAFETY: for the waits, a non-null timeout points to a timespec
        // (the caller's contract); the wakes do not read it.
        let ts = if timeout.is_null() || !wait { None } else { Some(unsafe { &*timeout }) };
        match decode(op, val, ts, val3)? {
            Op::Wait { expected, timeout, bitset } => {
                // SAFETY: the caller guarantees a live u32 at word.
                let current = unsafe { core::ptr::read_volatile(word) };
                if current != expected {
                    return Err(::libc::EAGAIN);
                }
                let deadline = match timeout {
                    Timeout::Never => None,
                    Timeout::After(d) => Some(Instant::now() + d),
                    Timeout::Monotonic(at) => Some(Instant::from_duration(at)),
                    Timeout::Realtime(at) => {
                        Some(Instant::now() + at.saturating_sub(clock_gettime(Clock::Realtime)))
                    }
                };
                let me = super::super::switch::current_slot();
                if !WAITERS.with(|w| w.push(word as usize, me, bitset)) {
                    return Err(::libc::ENOMEM);
                }
                super::super::switch::block(Wait::Futex, deadline);
                if WAITERS.with(|w| w.cancel(me)) { Err(::libc::ETIMEDOUT) } else { Ok(0) }
            }
            Op::Wake { n, bitset } => {
                // The woken run first, in the order they waited; then the
                // waker, after the threads that were ready already.
                let mut ahead = 0;
                let woken = WAITERS.with(|w| {
                    w.wake(word as usize, n, bitset, |slot| {
                        if super::super::switch::wake_ahead(slot, ahead) {
                            ahead += 1;
                        }
                    })
                });
                if ahead > 0 {
                    super::super::switch::preempt();
                }
                Ok(woken)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_take_the_oldest_waiters_of_the_address_and_bitset() {
        let mut w = Waiters::new();
        assert!(w.push(0x10, 1, !0));
        assert!(w.push(0x20, 2, !0));
        assert!(w.push(0x10, 3, 0b01));
        assert!(w.push(0x10, 4, 0b10));
        let mut woken = std::vec::Vec::new();
        assert_eq!(w.wake(0x10, 1, !0, |s| woken.push(s)), 1);
        assert_eq!(woken, [1]);
        assert_eq!(w.wake(0x10, 5, 0b10, |s| woken.push(s)), 1);
        assert_eq!(woken, [1, 4]);
        assert_eq!(w.wake(0x30, 5, !0, |s| woken.push(s)), 0);
        // A timed-out waiter leaves the queue; one already woken is gone.
        assert!(w.cancel(3));
        assert!(!w.cancel(1));
        assert_eq!(w.wake(0x10, usize::MAX, !0, |s| woken.push(s)), 0);
        assert_eq!(w.wake(0x20, i32::MAX as usize, !0, |s| woken.push(s)), 1);
        assert_eq!(woken, [1, 4, 2]);
    }

    #[test]
    fn std_calls_decode_as_linux_reads_them() {
        let p = ::libc::FUTEX_PRIVATE_FLAG;
        let ts = ::libc::timespec { tv_sec: 3, tv_nsec: 5 };
        assert_eq!(
            decode(::libc::FUTEX_WAIT_BITSET | p, 7, Some(&ts), !0),
            Ok(Op::Wait {
                expected: 7,
                timeout: Timeout::Monotonic(Duration::new(3, 5)),
                bitset: !0
            })
        );
        assert_eq!(
            decode(::libc::FUTEX_WAIT_BITSET | p | ::libc::FUTEX_CLOCK_REALTIME, 7, None, !0),
            Ok(Op::Wait { expected: 7, timeout: Timeout::Never, bitset: !0 })
        );
        assert_eq!(
            decode(::libc::FUTEX_WAIT, 1, Some(&ts), 0),
            Ok(Op::Wait { expected: 1, timeout: Timeout::After(Duration::new(3, 5)), bitset: !0 })
        );
        assert_eq!(decode(::libc::FUTEX_WAKE | p, 1, None, 0), Ok(Op::Wake { n: 1, bitset: !0 }));
        assert_eq!(
            decode(::libc::FUTEX_WAKE | p, i32::MAX as u32, None, 0),
            Ok(Op::Wake { n: i32::MAX as usize, bitset: !0 })
        );
        // A negative count wakes all.
        assert_eq!(
            decode(::libc::FUTEX_WAKE, u32::MAX, None, 0),
            Ok(Op::Wake { n: usize::MAX, bitset: !0 })
        );
        assert_eq!(decode(::libc::FUTEX_WAIT_BITSET, 0, None, 0), Err(::libc::EINVAL));
        let bad = ::libc::timespec { tv_sec: 0, tv_nsec: 2_000_000_000 };
        assert_eq!(decode(::libc::FUTEX_WAIT, 0, Some(&bad), 0), Err(::libc::EINVAL));
        assert_eq!(decode(::libc::FUTEX_CMP_REQUEUE | p, 0, None, 0), Err(::libc::ENOSYS));
        assert_eq!(decode(::libc::FUTEX_LOCK_PI | p, 0, None, 0), Err(::libc::ENOSYS));
    }
}
