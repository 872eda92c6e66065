//! `epoll`: mio's selector, and so tokio's I/O driver.
//!
//! An epoll instance holds registrations, each naming an open file
//! description (held weakly, as Linux's epoll does: a registration goes
//! when its description's last descriptor closes, whatever descriptor
//! number it was added under) with the events asked for and the user's
//! 64-bit data, and a ready list, as Linux's: the registrations whose
//! object told of a change ([`super::watch`]: data in, room freed, an end
//! closed, a new state) since they were last looked at. `epoll_wait` gives
//! the network a turn ([`super::thread::poll_devices_now`]), takes the
//! sockets the stack woke ([`watch::drain`]), and looks only at the
//! registrations on the list ([`File::poll`]), so that idle connections
//! cost nothing; it parks the thread until something may have changed (a
//! device event, a write to a pipe, eventfd or socket pair by another
//! thread, a deadline) when nothing is ready.
//!
//! A registration is put on the list when added or modified (what holds
//! then is reported), and when told. Looked at, one that reports nothing
//! leaves the list. One that reports: level-triggered, it goes back at the
//! end of the list (looked at again by the next call, which drops it if
//! it no longer holds, as Linux does); edge-triggered (`EPOLLET`, what mio
//! asks for every source), it waits to be told again, so a socket that
//! stays writable does not make `epoll_wait` return at once forever, and
//! more data arriving while some is unread is reported again (tokio reads
//! until `WouldBlock` anyway); `EPOLLONESHOT` disables it after one report
//! until `EPOLL_CTL_MOD`, which re-arms it (the current state is reported
//! once more, as Linux does). A change concerning only bits a
//! registration did not ask for does not queue it (a read of an eventfd
//! does not wake a registration for `EPOLLIN`), as Linux's wake-up keys.
//! What does not fit in `maxevents` stays on the list for the next call,
//! in order, so that none starves. `EPOLLEXCLUSIVE` and `EPOLLWAKEUP` are
//! accepted and change nothing (there is one waiter per instance in
//! practice, and no suspend).
//!
//! Errors follow Linux's order: `EFAULT`, `EBADF` (either descriptor),
//! `EPERM` (a regular file or directory, which Linux cannot poll),
//! `EINVAL` (not an epoll instance, itself, `EPOLLEXCLUSIVE` misused, an
//! unknown operation), `ELOOP` (an instance that would contain itself, or
//! nesting deeper than Linux's 5 levels), `EEXIST`, `ENOENT`. An epoll
//! descriptor is itself pollable: readable while a registration on its
//! ready list would report; it tells the instances it is registered in
//! whenever its list is told of a change.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::{Rc, Weak};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use super::fd::{self, Events, File, Open, Res};
use super::watch::{self, Queue, Sub, Watchers};
use super::{c_int, fail};

/// How deep epoll instances may nest (Linux's `EP_MAX_NESTS` plus one).
const MAX_NESTING: usize = 5;

/// The events a registration may ask for (the others are flags).
const EVENT_BITS: u32 = (::libc::EPOLLIN
    | ::libc::EPOLLPRI
    | ::libc::EPOLLOUT
    | ::libc::EPOLLRDNORM
    | ::libc::EPOLLRDBAND
    | ::libc::EPOLLWRNORM
    | ::libc::EPOLLWRBAND
    | ::libc::EPOLLMSG
    | ::libc::EPOLLRDHUP) as u32;

/// What `EPOLLEXCLUSIVE` may come with.
const EXCLUSIVE_OK: u32 = (::libc::EPOLLIN
    | ::libc::EPOLLOUT
    | ::libc::EPOLLERR
    | ::libc::EPOLLHUP
    | ::libc::EPOLLWAKEUP
    | ::libc::EPOLLET
    | ::libc::EPOLLEXCLUSIVE) as u32;

/// The bits a registration asking for `events` reports: those asked for,
/// and always `EPOLLERR` and `EPOLLHUP`.
fn interest(events: u32) -> Events {
    (events & EVENT_BITS | (::libc::EPOLLERR | ::libc::EPOLLHUP) as u32) as Events
}

/// One registration.
#[derive(Debug)]
struct Reg {
    /// The descriptor number it was added under and its description's
    /// address: its key in [`Core::by_fd`].
    fd: c_int,
    at: usize,
    open: Weak<Open>,
    /// The events and flags asked for.
    events: u32,
    data: u64,
    /// False after an `EPOLLONESHOT` report, until `EPOLL_CTL_MOD`.
    armed: bool,
    /// Its link to the object's watchers and to the ready list.
    sub: Rc<Sub>,
}

impl Reg {
    fn edge(&self) -> bool {
        self.events & ::libc::EPOLLET as u32 != 0
    }

    /// What it would report now (0: nothing); None if its description is
    /// gone.
    fn look(&self) -> Option<Events> {
        let open = self.open.upgrade()?;
        if !self.armed {
            return Some(0);
        }
        Some(normalized(open.file.poll()) & interest(self.events))
    }
}

/// `poll` bits with the "normal data" bits that Linux's objects report
/// beside `POLLIN` and `POLLOUT`.
pub fn normalized(ev: Events) -> Events {
    let mut ev = ev;
    if ev & ::libc::POLLIN != 0 {
        ev |= ::libc::POLLRDNORM;
    }
    if ev & ::libc::POLLOUT != 0 {
        ev |= ::libc::POLLWRNORM;
    }
    ev
}

/// An instance's registrations and ready list.
#[derive(Debug, Default)]
struct Core {
    regs: RefCell<BTreeMap<u64, Reg>>,
    /// The registrations by (descriptor, description's address).
    by_fd: RefCell<BTreeMap<(c_int, usize), u64>>,
    /// The keys of the registrations to look at, in the order they were
    /// told (each at most once; a key whose registration went is skipped).
    ready: RefCell<VecDeque<u64>>,
    /// The instances this one is registered in.
    watchers: Watchers,
    next_key: Cell<u64>,
    /// How many registrations there were after the last sweep of those
    /// whose description is gone.
    swept: Cell<usize>,
}

impl Queue for Core {
    fn enqueue(&self, key: u64) {
        self.ready.borrow_mut().push_back(key);
    }

    fn watchers(&self) -> &Watchers {
        &self.watchers
    }
}

/// An epoll instance.
#[derive(Debug, Default)]
pub struct Epoll {
    core: Rc<Core>,
}

impl Epoll {
    /// The live registrations' descriptions.
    fn opens(&self) -> Vec<Rc<Open>> {
        self.core.regs.borrow().values().filter_map(|r| r.open.upgrade()).collect()
    }

    /// Whether `target` is this instance or is reachable from it through
    /// registered epoll instances, or the nesting below it is too deep.
    fn loops(&self, target: &Epoll, depth: usize) -> bool {
        if core::ptr::eq(self, target) {
            return true;
        }
        if depth >= MAX_NESTING {
            return true;
        }
        self.opens().iter().any(|o| {
            o.file.as_any().downcast_ref::<Epoll>().is_some_and(|e| e.loops(target, depth + 1))
        })
    }

    /// How deep instances nest below this one.
    fn depth(&self) -> usize {
        let opens = self.opens();
        let nested = opens.iter().filter_map(|o| o.file.as_any().downcast_ref::<Epoll>());
        nested.map(Epoll::depth).max().map_or(0, |d| d + 1)
    }

    /// Drops the registrations whose description is gone, when there are
    /// twice as many as after the last sweep (so that descriptors closed
    /// without `EPOLL_CTL_DEL` and never told again cost amortized O(1)).
    fn sweep(&self) {
        let n = self.core.regs.borrow().len();
        if n < 2 * self.core.swept.get() + 16 {
            return;
        }
        let mut regs = self.core.regs.borrow_mut();
        let mut by_fd = self.core.by_fd.borrow_mut();
        regs.retain(|_, r| {
            let live = r.open.strong_count() > 0;
            if !live {
                by_fd.remove(&(r.fd, r.at));
            }
            live
        });
        self.core.swept.set(regs.len());
    }

    /// `epoll_ctl` on this instance (`epoll` is its own description).
    fn ctl(
        &self,
        epoll: &Rc<Open>,
        op: c_int,
        fd: c_int,
        target: Rc<Open>,
        ev: Option<::libc::epoll_event>,
    ) -> Res<()> {
        if let Ok(st) = target.file.stat() {
            let kind = st.st_mode & ::libc::S_IFMT;
            if kind == ::libc::S_IFREG || kind == ::libc::S_IFDIR {
                return Err(::libc::EPERM);
            }
        }
        if Rc::ptr_eq(epoll, &target) {
            return Err(::libc::EINVAL);
        }
        let events = ev.map_or(0, |e| e.events) & !(::libc::EPOLLWAKEUP as u32);
        let nested = target.file.as_any().downcast_ref::<Epoll>();
        let exclusive = events & ::libc::EPOLLEXCLUSIVE as u32 != 0;
        if exclusive
            && (op == ::libc::EPOLL_CTL_MOD
                || op == ::libc::EPOLL_CTL_ADD && (nested.is_some() || events & !EXCLUSIVE_OK != 0))
        {
            return Err(::libc::EINVAL);
        }
        if op == ::libc::EPOLL_CTL_ADD
            && let Some(inner) = nested
            && (inner.loops(self, 0) || inner.depth() + 1 >= MAX_NESTING)
        {
            return Err(::libc::ELOOP);
        }
        self.sweep();
        let at = Rc::as_ptr(&target) as usize;
        let found = self.core.by_fd.borrow().get(&(fd, at)).copied();
        // A registration of a description that is gone (its address may
        // be another's now) is no registration.
        let found = found.filter(|k| {
            let live = self.core.regs.borrow().get(k).is_some_and(|r| r.open.strong_count() > 0);
            if !live {
                self.core.regs.borrow_mut().remove(k);
                self.core.by_fd.borrow_mut().remove(&(fd, at));
            }
            live
        });
        let sub = match (op, found) {
            (::libc::EPOLL_CTL_ADD, Some(_)) => return Err(::libc::EEXIST),
            (::libc::EPOLL_CTL_ADD, None) => {
                let key = self.core.next_key.get();
                self.core.next_key.set(key + 1);
                let queue: Rc<dyn Queue> = self.core.clone();
                let sub = Sub::new(key, interest(events), Rc::downgrade(&queue));
                self.core.regs.borrow_mut().insert(
                    key,
                    Reg {
                        fd,
                        at,
                        open: Rc::downgrade(&target),
                        events,
                        data: ev.map_or(0, |e| e.u64),
                        armed: true,
                        sub: sub.clone(),
                    },
                );
                self.core.by_fd.borrow_mut().insert((fd, at), key);
                sub
            }
            (::libc::EPOLL_CTL_DEL | ::libc::EPOLL_CTL_MOD, None) => return Err(::libc::ENOENT),
            (::libc::EPOLL_CTL_DEL, Some(k)) => {
                self.core.regs.borrow_mut().remove(&k);
                self.core.by_fd.borrow_mut().remove(&(fd, at));
                return Ok(());
            }
            (::libc::EPOLL_CTL_MOD, Some(k)) => {
                let mut regs = self.core.regs.borrow_mut();
                let Some(r) = regs.get_mut(&k) else { return Err(::libc::ENOENT) };
                if r.events & ::libc::EPOLLEXCLUSIVE as u32 != 0 {
                    return Err(::libc::EINVAL);
                }
                r.events = events;
                r.data = ev.map_or(0, |e| e.u64);
                r.armed = true;
                r.sub.set_interest(interest(events));
                r.sub.clone()
            }
            _ => return Err(::libc::EINVAL),
        };
        // Watch the object, and look at it once: what holds now is
        // reported (once for an edge-triggered registration), as Linux's
        // ADD and MOD do.
        target.file.watch(&sub);
        sub.fire(0);
        Ok(())
    }

    /// Fills `out` with what is ready now; returns how many. Looks at the
    /// registrations on the ready list only, in the order they were told,
    /// each once: a level-triggered one that reports goes back at the end
    /// (to be looked at again next time, as Linux does), an
    /// edge-triggered one waits to be told again, a one-shot one is
    /// disarmed; one that reports nothing leaves the list. What does not
    /// fit in `out` stays on it.
    pub fn collect(&self, out: &mut [::libc::epoll_event]) -> usize {
        watch::drain();
        let core = &*self.core;
        let mut regs = core.regs.borrow_mut();
        let turn = core.ready.borrow().len();
        let mut k = 0;
        for _ in 0..turn {
            if k == out.len() {
                break;
            }
            let Some(key) = core.ready.borrow_mut().pop_front() else { break };
            let Some(r) = regs.get_mut(&key) else { continue };
            r.sub.dequeued();
            let Some(now) = r.look() else {
                core.by_fd.borrow_mut().remove(&(r.fd, r.at));
                regs.remove(&key);
                continue;
            };
            if now == 0 {
                continue;
            }
            out[k] = ::libc::epoll_event { events: now as u16 as u32, u64: r.data };
            k += 1;
            if r.events & ::libc::EPOLLONESHOT as u32 != 0 {
                r.armed = false;
            } else if !r.edge() && !r.sub.is_queued() {
                r.sub.requeue();
                core.ready.borrow_mut().push_back(key);
            }
        }
        k
    }

    /// Waits until something is ready or `deadline` passes (never if
    /// None); fills `out` and returns how many.
    pub fn wait(
        &self,
        out: &mut [::libc::epoll_event],
        deadline: Option<libos::time::Instant>,
    ) -> usize {
        super::thread::poll_devices_now();
        loop {
            let k = self.collect(out);
            if k > 0 || deadline.is_some_and(|d| libos::time::Instant::now() >= d) {
                return k;
            }
            super::thread::wait_for_events(deadline);
        }
    }
}

impl File for Epoll {
    fn stat(&self) -> Res<::libc::stat64> {
        Ok(super::pipe::anon_stat(0o600))
    }

    /// Readable while a registration on the ready list would report
    /// (nothing is taken off it).
    fn poll(&self) -> Events {
        watch::drain();
        let regs = self.core.regs.borrow();
        let n = self.core.ready.borrow().len();
        let ready = (0..n).any(|i| {
            let key = self.core.ready.borrow().get(i).copied();
            key.and_then(|k| regs.get(&k)).and_then(Reg::look).is_some_and(|now| now != 0)
        });
        if ready { ::libc::POLLIN } else { 0 }
    }

    fn watch(&self, sub: &Rc<Sub>) {
        self.core.watchers.add(sub);
    }

    fn close(&self) -> Res<()> {
        self.core.regs.borrow_mut().clear();
        self.core.by_fd.borrow_mut().clear();
        self.core.ready.borrow_mut().clear();
        Ok(())
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// A new epoll instance's descriptor.
pub fn new_epoll(flags: c_int) -> Res<c_int> {
    if flags & !::libc::EPOLL_CLOEXEC != 0 {
        return Err(::libc::EINVAL);
    }
    let file = Rc::new(Epoll::default());
    fd::install(fd::new_open(file, ::libc::O_RDWR), flags & ::libc::EPOLL_CLOEXEC != 0, 0)
}

/// `epoll_create1(flags)`: `EPOLL_CLOEXEC`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn epoll_create1(flags: c_int) -> c_int {
    fd::ret_int(new_epoll(flags))
}

/// `epoll_create(size)`: `size` must be positive, and is otherwise
/// ignored.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn epoll_create(size: c_int) -> c_int {
    if size <= 0 {
        return fail(::libc::EINVAL);
    }
    epoll_create1(0)
}

/// The epoll instance behind `epfd`: `EBADF` if none is open, `EINVAL`
/// if it is another object.
fn instance(epfd: c_int) -> Res<Rc<Open>> {
    let open = fd::get(epfd)?;
    if open.file.as_any().downcast_ref::<Epoll>().is_none() {
        return Err(::libc::EINVAL);
    }
    Ok(open)
}

/// `epoll_ctl(epfd, op, fd, event)`.
///
/// # Safety
///
/// `event` is readable for `EPOLL_CTL_ADD` and `EPOLL_CTL_MOD` (null:
/// `EFAULT`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    event: *mut ::libc::epoll_event,
) -> c_int {
    let has_event = op != ::libc::EPOLL_CTL_DEL;
    let ev = if has_event && (op == ::libc::EPOLL_CTL_ADD || op == ::libc::EPOLL_CTL_MOD) {
        if event.is_null() {
            return fail(::libc::EFAULT);
        }
        // SAFETY: the caller guarantees event is readable; the struct is
        // packed on x86_64, hence the unaligned read.
        Some(unsafe { event.read_unaligned() })
    } else {
        None
    };
    let r = (|| {
        let ep = fd::get(epfd)?;
        let target = fd::get(fd)?;
        let Some(e) = ep.file.as_any().downcast_ref::<Epoll>() else {
            if let Ok(st) = target.file.stat() {
                let kind = st.st_mode & ::libc::S_IFMT;
                if kind == ::libc::S_IFREG || kind == ::libc::S_IFDIR {
                    return Err(::libc::EPERM);
                }
            }
            return Err(::libc::EINVAL);
        };
        e.ctl(&ep, op, fd, target, ev)
    })();
    fd::ret_int(r.map(|()| 0))
}

/// The deadline of a timeout in milliseconds (negative: none).
fn deadline_ms(timeout: c_int) -> Option<libos::time::Instant> {
    u64::try_from(timeout)
        .ok()
        .map(|ms| libos::time::Instant::now() + core::time::Duration::from_millis(ms))
}

/// The common part of the `epoll_wait` family.
///
/// # Safety
///
/// `events` is writable for `maxevents` entries.
unsafe fn wait_on(
    epfd: c_int,
    events: *mut ::libc::epoll_event,
    maxevents: c_int,
    deadline: Option<libos::time::Instant>,
) -> c_int {
    let max_entries = (c_int::MAX as usize) / core::mem::size_of::<::libc::epoll_event>();
    let Some(n) = usize::try_from(maxevents).ok().filter(|&n| n > 0 && n <= max_entries) else {
        return fail(::libc::EINVAL);
    };
    if events.is_null() {
        return fail(::libc::EFAULT);
    }
    let open = match instance(epfd) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let Some(ep) = open.file.as_any().downcast_ref::<Epoll>() else { return fail(::libc::EINVAL) };
    // SAFETY: the caller guarantees n writable entries; the struct is
    // packed (alignment 1) on x86_64.
    let out = unsafe { core::slice::from_raw_parts_mut(events, n) };
    ep.wait(out, deadline) as c_int
}

/// `epoll_wait(epfd, events, maxevents, timeout)`: waits up to `timeout`
/// milliseconds (negative: forever) for a registration to report.
///
/// # Safety
///
/// `events` is writable for `maxevents` entries.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut ::libc::epoll_event,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { wait_on(epfd, events, maxevents, deadline_ms(timeout)) }
}

/// `epoll_pwait(epfd, events, maxevents, timeout, sigmask)`: as
/// [`epoll_wait`]; the mask changes nothing, as no signal is delivered.
///
/// # Safety
///
/// `events` is writable for `maxevents` entries.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut ::libc::epoll_event,
    maxevents: c_int,
    timeout: c_int,
    _sigmask: *const ::libc::sigset_t,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { wait_on(epfd, events, maxevents, deadline_ms(timeout)) }
}

/// `epoll_pwait2(epfd, events, maxevents, timeout, sigmask)`: a
/// `timespec` timeout (null: forever).
///
/// # Safety
///
/// `events` is writable for `maxevents` entries; `timeout` is null or
/// readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut ::libc::epoll_event,
    maxevents: c_int,
    timeout: *const ::libc::timespec,
    _sigmask: *const ::libc::sigset_t,
) -> c_int {
    // SAFETY: the caller guarantees timeout is null or readable.
    let deadline = match unsafe { timespec_deadline(timeout) } {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    // SAFETY: the same contract.
    unsafe { wait_on(epfd, events, maxevents, deadline) }
}

/// The deadline of a `timespec` timeout (null: none; invalid: `EINVAL`).
///
/// # Safety
///
/// `ts` is null or readable.
pub unsafe fn timespec_deadline(ts: *const ::libc::timespec) -> Res<Option<libos::time::Instant>> {
    if ts.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller guarantees ts is readable.
    let ts = unsafe { ts.read() };
    let (Ok(s), Ok(ns)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) else {
        return Err(::libc::EINVAL);
    };
    if ns >= 1_000_000_000 {
        return Err(::libc::EINVAL);
    }
    let d = core::time::Duration::new(s, ns);
    Ok(Some(libos::time::Instant::now() + d))
}

#[cfg(test)]
mod tests {
    use super::super::fd::close;
    use super::super::{eventfd, pipe, unix};
    use super::*;

    const IN: u32 = ::libc::EPOLLIN as u32;
    const OUT: u32 = ::libc::EPOLLOUT as u32;
    const ET: u32 = ::libc::EPOLLET as u32;

    fn ctl(ep: c_int, op: c_int, fd: c_int, events: u32, data: u64) -> Res<()> {
        let mut ev = ::libc::epoll_event { events, u64: data };
        // SAFETY: ev is a valid event.
        match unsafe { epoll_ctl(ep, op, fd, &mut ev) } {
            0 => Ok(()),
            _ => Err(super::super::errno()),
        }
    }

    /// What a zero-timeout wait reports: (data, events) pairs.
    fn ready(ep: c_int, max: usize) -> Vec<(u64, u32)> {
        let mut evs = alloc::vec![::libc::epoll_event { events: 0, u64: 0 }; max];
        // SAFETY: evs holds max entries.
        let n = unsafe { epoll_wait(ep, evs.as_mut_ptr(), max as c_int, 0) };
        assert!(n >= 0, "epoll_wait failed: {}", super::super::errno());
        evs[..n as usize].iter().map(|e| (e.u64, e.events)).collect()
    }

    fn wr(fd: c_int, b: &[u8]) {
        // SAFETY: b is readable.
        assert_eq!(unsafe { fd::write(fd, b.as_ptr().cast(), b.len()) }, b.len() as isize);
    }

    fn rd(fd: c_int, n: usize) -> isize {
        let mut b = alloc::vec![0u8; n];
        // SAFETY: b is writable.
        unsafe { fd::read(fd, b.as_mut_ptr().cast(), n) }
    }

    #[test]
    fn level_triggered_reports_while_ready() {
        let _g = fd::tests::serial();
        let ep = epoll_create1(::libc::EPOLL_CLOEXEC);
        assert_eq!(fd::fcntl(ep, ::libc::F_GETFD, 0), ::libc::FD_CLOEXEC);
        let [r, w] = pipe::new_pipe(::libc::O_NONBLOCK).unwrap();
        ctl(ep, ::libc::EPOLL_CTL_ADD, r, IN, 1).unwrap();
        ctl(ep, ::libc::EPOLL_CTL_ADD, w, OUT, 2).unwrap();
        assert_eq!(ready(ep, 8), [(2, OUT)]);
        assert_eq!(ready(ep, 8), [(2, OUT)], "level: again");
        wr(w, b"abc");
        let got = ready(ep, 8);
        assert_eq!(got.len(), 2);
        assert!(got.contains(&(1, IN)));
        assert_eq!(ready(ep, 8).len(), 2);
        // The epoll descriptor is readable while something is ready.
        assert_eq!(fd::get(ep).unwrap().file.poll(), ::libc::POLLIN);
        // MOD and DEL.
        ctl(ep, ::libc::EPOLL_CTL_DEL, w, 0, 0).unwrap();
        ctl(ep, ::libc::EPOLL_CTL_MOD, r, OUT, 9).unwrap();
        assert_eq!(ready(ep, 8), []);
        ctl(ep, ::libc::EPOLL_CTL_MOD, r, IN, 9).unwrap();
        assert_eq!(ready(ep, 8), [(9, IN)]);
        // A closed writer: HUP is always reported.
        assert_eq!(close(w), 0);
        assert_eq!(rd(r, 10), 3);
        assert_eq!(ready(ep, 8), [(9, ::libc::EPOLLHUP as u32)]);
        // Closing the registered descriptor removes the registration.
        assert_eq!(close(r), 0);
        assert_eq!(ready(ep, 8), []);
        assert_eq!(fd::get(ep).unwrap().file.poll(), 0);
        assert_eq!(close(ep), 0);
    }

    #[test]
    fn edge_triggered_reports_changes_only() {
        let _g = fd::tests::serial();
        let ep = epoll_create1(0);
        let [a, b] =
            unix::new_pair(::libc::AF_UNIX, ::libc::SOCK_STREAM | ::libc::SOCK_NONBLOCK, 0)
                .unwrap();
        let all = IN | OUT | ::libc::EPOLLRDHUP as u32 | ET;
        ctl(ep, ::libc::EPOLL_CTL_ADD, a, all, 7).unwrap();
        let w = OUT;
        // Writable once, then not again while nothing happens: no busy loop.
        assert_eq!(ready(ep, 8), [(7, w)]);
        assert_eq!(ready(ep, 8), []);
        // Data arrives: reported (with the writable bit, as Linux does).
        wr(b, b"one");
        let r = IN;
        assert_eq!(ready(ep, 8), [(7, r | w)]);
        assert_eq!(ready(ep, 8), []);
        // More data while still readable: a new edge.
        wr(b, b"two");
        assert_eq!(ready(ep, 8), [(7, r | w)]);
        // A partial read, then nothing new: no event (the reader's duty
        // is to read until EAGAIN).
        assert_eq!(rd(a, 2), 2);
        assert_eq!(ready(ep, 8), [], "our own read is no new edge for readers");
        // MOD re-arms: the current state is reported once.
        ctl(ep, ::libc::EPOLL_CTL_MOD, a, all, 8).unwrap();
        assert_eq!(ready(ep, 8), [(8, r | w)]);
        assert_eq!(ready(ep, 8), []);
        // The peer closes: RDHUP and HUP.
        assert_eq!(close(b), 0);
        let got = ready(ep, 8);
        let hup = (::libc::EPOLLRDHUP | ::libc::EPOLLHUP) as u32;
        assert_eq!(got, [(8, r | w | hup)]);
        assert_eq!(ready(ep, 8), []);
        assert_eq!(close(a), 0);
        assert_eq!(close(ep), 0);
    }

    #[test]
    fn an_eventfd_wakes_an_edge_triggered_waiter_on_every_write() {
        let _g = fd::tests::serial();
        let ep = epoll_create1(0);
        let e = eventfd::new_eventfd(0, ::libc::EFD_NONBLOCK).unwrap();
        ctl(ep, ::libc::EPOLL_CTL_ADD, e, IN | ET, 3).unwrap();
        assert_eq!(ready(ep, 8), []);
        assert_eq!(eventfd::eventfd_write(e, 1), 0);
        assert_eq!(ready(ep, 8), [(3, IN)]);
        assert_eq!(ready(ep, 8), []);
        // mio never reads its waker: each write is an edge nonetheless.
        assert_eq!(eventfd::eventfd_write(e, 1), 0);
        assert_eq!(ready(ep, 8).len(), 1);
        assert_eq!(close(e), 0);
        assert_eq!(close(ep), 0);
    }

    #[test]
    fn oneshot_reports_once_until_modified() {
        let _g = fd::tests::serial();
        let ep = epoll_create1(0);
        let e = eventfd::new_eventfd(1, ::libc::EFD_NONBLOCK).unwrap();
        ctl(ep, ::libc::EPOLL_CTL_ADD, e, IN | ::libc::EPOLLONESHOT as u32, 5).unwrap();
        assert_eq!(ready(ep, 8).len(), 1);
        assert_eq!(ready(ep, 8), []);
        assert_eq!(eventfd::eventfd_write(e, 1), 0);
        assert_eq!(ready(ep, 8), [], "disabled until MOD");
        ctl(ep, ::libc::EPOLL_CTL_MOD, e, IN | ::libc::EPOLLONESHOT as u32, 6).unwrap();
        assert_eq!(ready(ep, 8).len(), 1);
        assert_eq!(close(e), 0);
        assert_eq!(close(ep), 0);
    }

    #[test]
    fn maxevents_keeps_the_rest_for_the_next_call() {
        let _g = fd::tests::serial();
        let ep = epoll_create1(0);
        let fds: Vec<c_int> = (0..3).map(|_| eventfd::new_eventfd(1, 0).unwrap()).collect();
        for (i, &f) in fds.iter().enumerate() {
            ctl(ep, ::libc::EPOLL_CTL_ADD, f, IN | ET, i as u64).unwrap();
        }
        let mut seen: Vec<u64> = ready(ep, 2).iter().map(|e| e.0).collect();
        assert_eq!(seen.len(), 2);
        seen.extend(ready(ep, 2).iter().map(|e| e.0));
        seen.sort();
        assert_eq!(seen, [0, 1, 2], "the edge that did not fit is reported next");
        assert_eq!(ready(ep, 2), []);
        for f in fds {
            assert_eq!(close(f), 0);
        }
        assert_eq!(close(ep), 0);
    }

    #[test]
    fn ctl_errors_are_linux_s() {
        let _g = fd::tests::serial();
        let ep = epoll_create1(0);
        let e = eventfd::new_eventfd(0, 0).unwrap();
        assert_eq!(ctl(ep, ::libc::EPOLL_CTL_ADD, 999, IN, 0), Err(::libc::EBADF));
        assert_eq!(ctl(999, ::libc::EPOLL_CTL_ADD, e, IN, 0), Err(::libc::EBADF));
        assert_eq!(ctl(e, ::libc::EPOLL_CTL_ADD, 1, IN, 0), Err(::libc::EINVAL), "not an epoll");
        assert_eq!(ctl(ep, ::libc::EPOLL_CTL_ADD, ep, IN, 0), Err(::libc::EINVAL), "itself");
        assert_eq!(ctl(ep, ::libc::EPOLL_CTL_MOD, e, IN, 0), Err(::libc::ENOENT));
        assert_eq!(ctl(ep, ::libc::EPOLL_CTL_DEL, e, IN, 0), Err(::libc::ENOENT));
        ctl(ep, ::libc::EPOLL_CTL_ADD, e, IN, 0).unwrap();
        assert_eq!(ctl(ep, ::libc::EPOLL_CTL_ADD, e, IN, 0), Err(::libc::EEXIST));
        assert_eq!(ctl(ep, 99, e, IN, 0), Err(::libc::EINVAL));
        // A dup is another key: it may be added too.
        let d = fd::dup(e);
        ctl(ep, ::libc::EPOLL_CTL_ADD, d, IN, 1).unwrap();
        // EPOLLEXCLUSIVE: not with MOD, not with ONESHOT.
        let x = ::libc::EPOLLEXCLUSIVE as u32;
        assert_eq!(ctl(ep, ::libc::EPOLL_CTL_MOD, e, IN | x, 0), Err(::libc::EINVAL));
        let [r, w] = pipe::new_pipe(0).unwrap();
        assert_eq!(
            ctl(ep, ::libc::EPOLL_CTL_ADD, r, IN | x | ::libc::EPOLLONESHOT as u32, 0),
            Err(::libc::EINVAL)
        );
        ctl(ep, ::libc::EPOLL_CTL_ADD, r, IN | x, 0).unwrap();
        assert_eq!(ctl(ep, ::libc::EPOLL_CTL_MOD, r, IN, 0), Err(::libc::EINVAL));
        // Nesting: a cycle is ELOOP.
        let ep2 = epoll_create1(0);
        ctl(ep2, ::libc::EPOLL_CTL_ADD, ep, IN, 0).unwrap();
        assert_eq!(ctl(ep, ::libc::EPOLL_CTL_ADD, ep2, IN, 0), Err(::libc::ELOOP));
        // SAFETY: a null event is refused before use.
        assert_eq!(unsafe { epoll_ctl(ep, ::libc::EPOLL_CTL_ADD, w, core::ptr::null_mut()) }, -1);
        assert_eq!(super::super::errno(), ::libc::EFAULT);
        // epoll_wait's own checks.
        let mut evs = [::libc::epoll_event { events: 0, u64: 0 }; 1];
        // SAFETY: evs holds one entry.
        assert_eq!(unsafe { epoll_wait(ep, evs.as_mut_ptr(), 0, 0) }, -1);
        assert_eq!(super::super::errno(), ::libc::EINVAL);
        // SAFETY: as above.
        assert_eq!(unsafe { epoll_wait(e, evs.as_mut_ptr(), 1, 0) }, -1);
        assert_eq!(super::super::errno(), ::libc::EINVAL);
        // SAFETY: as above.
        assert_eq!(unsafe { epoll_wait(999, evs.as_mut_ptr(), 1, 0) }, -1);
        assert_eq!(super::super::errno(), ::libc::EBADF);
        assert_eq!(epoll_create(0), -1);
        assert_eq!(epoll_create1(1), -1);
        for f in [ep2, w, r, d, e, ep] {
            assert_eq!(close(f), 0);
        }
    }

    /// An object that counts how often it is looked at, and whose
    /// changes the test tells by hand.
    #[derive(Default)]
    struct Counted {
        polls: Cell<u32>,
        ready: Cell<Events>,
        watchers: Watchers,
    }

    impl File for Counted {
        fn stat(&self) -> Res<::libc::stat64> {
            Ok(super::super::pipe::anon_stat(::libc::S_IFSOCK | 0o777))
        }
        fn poll(&self) -> Events {
            self.polls.set(self.polls.get() + 1);
            self.ready.get()
        }
        fn watch(&self, sub: &Rc<Sub>) {
            self.watchers.add(sub);
        }
        fn as_any(&self) -> &dyn core::any::Any {
            self
        }
    }

    #[test]
    fn only_registrations_told_of_a_change_are_looked_at() {
        let _g = fd::tests::serial();
        let ep = epoll_create1(0);
        let objs: Vec<Rc<Counted>> = (0..100).map(|_| Rc::new(Counted::default())).collect();
        let fds: Vec<c_int> = objs
            .iter()
            .map(|o| fd::install(fd::new_open(o.clone(), ::libc::O_RDWR), false, 0).unwrap())
            .collect();
        for (i, &f) in fds.iter().enumerate() {
            ctl(ep, ::libc::EPOLL_CTL_ADD, f, IN, i as u64).unwrap();
        }
        let looked = || objs.iter().map(|o| o.polls.get()).sum::<u32>();
        // ADD looks once at each.
        assert_eq!(ready(ep, 8), []);
        assert_eq!(looked(), 100);
        assert_eq!(ready(ep, 8), []);
        assert_eq!(looked(), 100, "nothing told, nothing looked at");
        objs[42].ready.set(::libc::POLLIN);
        objs[42].watchers.notify(::libc::POLLIN);
        assert_eq!(ready(ep, 8), [(42, IN)]);
        assert_eq!(looked(), 101);
        // Level-triggered: looked at again while it reports.
        assert_eq!(ready(ep, 8), [(42, IN)]);
        assert_eq!(looked(), 102);
        objs[42].ready.set(0);
        assert_eq!(ready(ep, 8), []);
        assert_eq!(ready(ep, 8), []);
        assert_eq!(looked(), 103, "one look finds it not ready; then it is off the list");
        // A change of bits it did not ask for is not told to it.
        objs[7].ready.set(::libc::POLLOUT);
        objs[7].watchers.notify(::libc::POLLOUT);
        assert_eq!(ready(ep, 8), []);
        assert_eq!(looked(), 103);
        // Told twice before a look: looked at once.
        objs[7].ready.set(::libc::POLLIN);
        objs[7].watchers.notify(0);
        objs[7].watchers.notify(0);
        assert_eq!(ready(ep, 8), [(7, IN)]);
        assert_eq!(looked(), 104);
        objs[7].ready.set(0);
        // Level-triggered entries that do not fit take turns.
        for i in [1, 2, 3] {
            objs[i].ready.set(::libc::POLLIN);
            objs[i].watchers.notify(0);
        }
        let ids = |v: Vec<(u64, u32)>| v.iter().map(|e| e.0).collect::<Vec<_>>();
        assert_eq!(ids(ready(ep, 2)), [1, 2], "7 is looked at first, and is not ready");
        assert_eq!(ids(ready(ep, 2)), [3, 1]);
        assert_eq!(ids(ready(ep, 2)), [2, 3]);
        // Closed without EPOLL_CTL_DEL: gone once told.
        for i in [1, 2, 3] {
            objs[i].ready.set(0);
        }
        assert_eq!(ready(ep, 8), []);
        for f in fds {
            assert_eq!(close(f), 0);
        }
        assert_eq!(ep_regs(ep), 100, "closed descriptors wait for a sweep or a change");
        objs[0].watchers.notify(0);
        assert_eq!(ready(ep, 8), []);
        assert_eq!(ep_regs(ep), 99);
        assert_eq!(close(ep), 0);
    }

    /// How many registrations the instance behind `ep` holds.
    fn ep_regs(ep: c_int) -> usize {
        let open = fd::get(ep).unwrap();
        open.file.as_any().downcast_ref::<Epoll>().unwrap().core.regs.borrow().len()
    }

    /// A regular file, which Linux cannot poll.
    struct Regular;

    impl File for Regular {
        fn stat(&self) -> Res<::libc::stat64> {
            Ok(super::super::pipe::anon_stat(::libc::S_IFREG | 0o644))
        }
        fn poll(&self) -> Events {
            ::libc::POLLIN | ::libc::POLLOUT
        }
        fn as_any(&self) -> &dyn core::any::Any {
            self
        }
    }

    #[test]
    fn regular_files_are_eperm_and_instances_nest() {
        let _g = fd::tests::serial();
        let ep = epoll_create1(0);
        let f = fd::install(fd::new_open(Rc::new(Regular), ::libc::O_RDONLY), false, 0).unwrap();
        assert_eq!(ctl(ep, ::libc::EPOLL_CTL_ADD, f, IN, 0), Err(::libc::EPERM));
        assert_eq!(ctl(f, ::libc::EPOLL_CTL_ADD, f, IN, 0), Err(::libc::EPERM), "before EINVAL");
        // An instance inside another reports when one of its own would.
        let outer = epoll_create1(0);
        ctl(outer, ::libc::EPOLL_CTL_ADD, ep, IN | ET, 1).unwrap();
        let e = eventfd::new_eventfd(0, ::libc::EFD_NONBLOCK).unwrap();
        ctl(ep, ::libc::EPOLL_CTL_ADD, e, IN, 2).unwrap();
        assert_eq!(ready(outer, 4), []);
        assert_eq!(eventfd::eventfd_write(e, 1), 0);
        assert_eq!(ready(outer, 4), [(1, IN)]);
        assert_eq!(ready(ep, 4), [(2, IN)], "the outer wait consumed nothing of the inner");
        for x in [e, outer, f, ep] {
            assert_eq!(close(x), 0);
        }
    }

    #[test]
    fn a_timeout_passes_with_nothing_ready() {
        let _g = fd::tests::serial();
        let ep = epoll_create1(0);
        let e = eventfd::new_eventfd(0, 0).unwrap();
        ctl(ep, ::libc::EPOLL_CTL_ADD, e, IN, 0).unwrap();
        let ts = ::libc::timespec { tv_sec: 0, tv_nsec: 0 };
        let mut evs = [::libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: evs holds 4 entries, ts is readable.
        let n = unsafe { epoll_pwait2(ep, evs.as_mut_ptr(), 4, &ts, core::ptr::null()) };
        assert_eq!(n, 0);
        let bad = ::libc::timespec { tv_sec: 0, tv_nsec: 1_000_000_000 };
        // SAFETY: as above.
        assert_eq!(unsafe { epoll_pwait2(ep, evs.as_mut_ptr(), 4, &bad, core::ptr::null()) }, -1);
        assert_eq!(close(e), 0);
        assert_eq!(close(ep), 0);
    }
}
