//! `eventfd`: a 64-bit counter as a descriptor, mio's and tokio's way to
//! wake a thread waiting in `epoll_wait`.
//!
//! As on Linux: a write of 8 bytes adds its value (`u64::MAX` is
//! `EINVAL`), waiting (or `EAGAIN`) while the sum would pass
//! `u64::MAX - 1`; a read of 8 bytes returns the counter and resets it
//! (with `EFD_SEMAPHORE`, returns 1 and decrements it), waiting (or
//! `EAGAIN`) while it is 0; buffers shorter than 8 bytes are `EINVAL`.
//! Readable while the counter is not 0, writable while a 1 can be added.
//! Every write and read changes the object's activity, so that an
//! edge-triggered `epoll` registration reports each write, even to a
//! counter that was already readable (mio's waker writes 1 each time and
//! never reads), and tells the threads waiting for events to look again.

use core::cell::Cell;

use super::fd::{self, Events, File, Open, Res};
use super::pipe::{self, anon_stat};
use super::watch::{Sub, Watchers};
use super::{c_int, c_uint, fail};

/// The largest value the counter holds.
const MAX: u64 = u64::MAX - 1;

/// An eventfd's counter.
#[derive(Debug)]
pub struct EventFd {
    count: Cell<u64>,
    semaphore: bool,
    /// Its `epoll` registrations.
    watchers: Watchers,
}

impl EventFd {
    /// A write (`mask` `POLLIN`) or a read (`POLLOUT`) changed the
    /// counter: tells the registrations that asked for those bits, as
    /// Linux's wake-up keys do, and the waiting threads.
    fn touch(&self, mask: Events) {
        self.watchers.notify(mask);
        super::thread::events_changed();
    }
}

impl File for EventFd {
    fn read(&self, open: &Open, buf: &mut [u8]) -> Res<usize> {
        if buf.len() < 8 {
            return Err(::libc::EINVAL);
        }
        let v = pipe::wait_while_again(pipe::nonblocking(open), None, || {
            let c = self.count.get();
            if c == 0 {
                return Err(::libc::EAGAIN);
            }
            let v = if self.semaphore { 1 } else { c };
            self.count.set(c - v);
            self.touch(::libc::POLLOUT | ::libc::POLLWRNORM);
            Ok(v)
        })?;
        buf[..8].copy_from_slice(&v.to_ne_bytes());
        Ok(8)
    }

    fn write(&self, open: &Open, buf: &[u8]) -> Res<usize> {
        let Some(bytes) = buf.get(..8) else { return Err(::libc::EINVAL) };
        let v = u64::from_ne_bytes(bytes.try_into().map_err(|_| ::libc::EINVAL)?);
        if v == u64::MAX {
            return Err(::libc::EINVAL);
        }
        pipe::wait_while_again(pipe::nonblocking(open), None, || {
            let c = self.count.get();
            if v > MAX - c {
                return Err(::libc::EAGAIN);
            }
            self.count.set(c + v);
            self.touch(::libc::POLLIN | ::libc::POLLRDNORM);
            Ok(8)
        })
    }

    fn stat(&self) -> Res<::libc::stat64> {
        Ok(anon_stat(0o600))
    }

    fn poll(&self) -> Events {
        let c = self.count.get();
        let mut ev = 0;
        if c > 0 {
            ev |= ::libc::POLLIN;
        }
        if c < MAX {
            ev |= ::libc::POLLOUT;
        }
        ev
    }

    fn watch(&self, sub: &alloc::rc::Rc<Sub>) {
        self.watchers.add(sub);
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// A new eventfd's descriptor.
pub fn new_eventfd(initval: c_uint, flags: c_int) -> Res<c_int> {
    let known = ::libc::EFD_CLOEXEC | ::libc::EFD_NONBLOCK | ::libc::EFD_SEMAPHORE;
    if flags & !known != 0 {
        return Err(::libc::EINVAL);
    }
    let file = alloc::rc::Rc::new(EventFd {
        count: Cell::new(u64::from(initval)),
        semaphore: flags & ::libc::EFD_SEMAPHORE != 0,
        watchers: Watchers::default(),
    });
    let status = ::libc::O_RDWR | flags & ::libc::EFD_NONBLOCK;
    fd::install(fd::new_open(file, status), flags & ::libc::EFD_CLOEXEC != 0, 0)
}

/// `eventfd(initval, flags)`: `EFD_CLOEXEC`, `EFD_NONBLOCK`,
/// `EFD_SEMAPHORE`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn eventfd(initval: c_uint, flags: c_int) -> c_int {
    fd::ret_int(new_eventfd(initval, flags))
}

/// `eventfd_read(fd, value)`: reads the counter into `*value`; 0 or -1.
///
/// # Safety
///
/// `value` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn eventfd_read(fd: c_int, value: *mut u64) -> c_int {
    let mut b = [0u8; 8];
    match fd::get(fd).and_then(|o| o.file.read(&o, &mut b)) {
        Ok(8) => {
            // SAFETY: the caller guarantees value is writable.
            unsafe { value.write_unaligned(u64::from_ne_bytes(b)) };
            0
        }
        Ok(_) => fail(::libc::EIO),
        Err(e) => fail(e),
    }
}

/// `eventfd_write(fd, value)`: adds `value` to the counter; 0 or -1.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn eventfd_write(fd: c_int, value: u64) -> c_int {
    let b = value.to_ne_bytes();
    match fd::get(fd).and_then(|o| o.file.write(&o, &b)) {
        Ok(_) => 0,
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fd::close;
    use super::*;

    fn rd(fd: c_int) -> Result<u64, c_int> {
        let mut v = 0;
        // SAFETY: v is writable.
        match unsafe { eventfd_read(fd, &mut v) } {
            0 => Ok(v),
            _ => Err(super::super::errno()),
        }
    }

    #[test]
    fn the_counter_adds_and_resets() {
        let _g = fd::tests::serial();
        let e = eventfd(3, ::libc::EFD_NONBLOCK | ::libc::EFD_CLOEXEC);
        assert!(e >= 0);
        assert_eq!(fd::fcntl(e, ::libc::F_GETFD, 0), ::libc::FD_CLOEXEC);
        assert_eq!(fd::fcntl(e, ::libc::F_GETFL, 0), ::libc::O_RDWR | ::libc::O_NONBLOCK);
        let o = fd::get(e).unwrap();
        assert_eq!(o.file.poll(), ::libc::POLLIN | ::libc::POLLOUT);
        assert_eq!(eventfd_write(e, 1), 0);
        assert_eq!(rd(e), Ok(4));
        assert_eq!(o.file.poll(), ::libc::POLLOUT);
        assert_eq!(rd(e), Err(::libc::EAGAIN));
        // The limit: u64::MAX is refused; the sum stops at MAX.
        assert_eq!(eventfd_write(e, u64::MAX), -1);
        assert_eq!(super::super::errno(), ::libc::EINVAL);
        assert_eq!(eventfd_write(e, MAX), 0);
        assert_eq!(o.file.poll(), ::libc::POLLIN);
        assert_eq!(eventfd_write(e, 1), -1);
        assert_eq!(super::super::errno(), ::libc::EAGAIN);
        assert_eq!(rd(e), Ok(MAX));
        // Short buffers.
        let mut small = [0u8; 4];
        assert_eq!(o.file.read(&o, &mut small), Err(::libc::EINVAL));
        assert_eq!(o.file.write(&o, &small), Err(::libc::EINVAL));
        drop(o);
        assert_eq!(close(e), 0);
    }

    #[test]
    fn a_semaphore_counts_down_by_one() {
        let _g = fd::tests::serial();
        let e = eventfd(2, ::libc::EFD_NONBLOCK | ::libc::EFD_SEMAPHORE);
        assert_eq!(rd(e), Ok(1));
        assert_eq!(rd(e), Ok(1));
        assert_eq!(rd(e), Err(::libc::EAGAIN));
        assert_eq!(close(e), 0);
        assert_eq!(eventfd(0, 0x10), -1);
        assert_eq!(super::super::errno(), ::libc::EINVAL);
    }
}
