//! Pipes (`pipe`, `pipe2`), and the in-process byte channel that pipes
//! and socket pairs ([`super::unix`]) share.
//!
//! A [`Channel`] is one direction: a bounded queue of bytes (or of
//! messages, for datagram and sequenced-packet socket pairs) with the
//! state of its two ends. Every green thread runs on the one host thread,
//! so a channel is plain data behind `Rc`; a blocked reader or writer
//! parks in [`super::thread::wait_for_events`] and looks again after any
//! other thread made progress, and each change to a channel (data in,
//! room freed, an end closed) tells the event waiters so
//! ([`super::thread::events_changed`]): a thread in `poll` or
//! `epoll_wait` sees a write by another thread without waiting for a
//! device event.
//!
//! Pipes behave as Linux's: 64 KiB of capacity; a write of at most
//! [`PIPE_BUF`] bytes is atomic (all or, without room, nothing or a
//! wait); a larger blocking write goes on until all is written; reading
//! with no writer left is end of file; writing with no reader left is
//! `EPIPE` (no `SIGPIPE`: a guest gets no signals, and Rust ignores it
//! anyway). The read end polls `POLLIN` with data and `POLLHUP` when the
//! writers are gone; the write end `POLLOUT` with room for `PIPE_BUF`
//! bytes and `POLLERR` when the readers are gone.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};

use libos::time::Instant;

use super::fd::{self, Events, File, Open, Res};
use super::watch::{Sub, Watchers};
use super::{c_int, fail};

/// The capacity of a pipe (Linux's default, 16 pages).
pub const PIPE_CAPACITY: usize = 65536;

/// Writes of at most this many bytes to a pipe are atomic.
pub const PIPE_BUF: usize = 4096;

/// The state of one end of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Open.
    Open,
    /// Shut down (`shutdown`) but its descriptor still open.
    Shut,
    /// Closed: its last descriptor went.
    Closed,
}

/// One direction of a pipe or a socket pair.
#[derive(Debug)]
pub struct Channel {
    data: RefCell<VecDeque<u8>>,
    /// The lengths of the queued messages, in order, for a channel of
    /// messages (their bytes are in `data`).
    msgs: RefCell<VecDeque<usize>>,
    packets: bool,
    capacity: usize,
    reader: Cell<End>,
    writer: Cell<End>,
    /// The `epoll` registrations of the reading end (told when data comes
    /// in or the writer's end changes) and of the writing end (told when
    /// data goes out or the reader's end changes).
    readers: Watchers,
    writers: Watchers,
}

/// What a read from a channel got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Got {
    /// The bytes copied into the buffer.
    pub copied: usize,
    /// The length of the message (for a channel of messages, which may
    /// exceed `copied`: the rest is discarded); `copied` otherwise.
    pub len: usize,
}

impl Channel {
    /// A channel holding up to `capacity` bytes; of messages if `packets`.
    pub fn new(capacity: usize, packets: bool) -> Rc<Self> {
        Rc::new(Self {
            data: RefCell::new(VecDeque::new()),
            msgs: RefCell::new(VecDeque::new()),
            packets,
            capacity,
            reader: Cell::new(End::Open),
            writer: Cell::new(End::Open),
            readers: Watchers::default(),
            writers: Watchers::default(),
        })
    }

    /// The bytes queued.
    pub fn len(&self) -> usize {
        self.data.borrow().len()
    }

    /// Whether nothing is queued (no byte, no message, not even an empty
    /// one).
    pub fn is_empty(&self) -> bool {
        if self.packets { self.msgs.borrow().is_empty() } else { self.data.borrow().is_empty() }
    }

    /// The channel's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The room left, in bytes.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.len())
    }

    /// The reading end's state.
    pub fn reader(&self) -> End {
        self.reader.get()
    }

    /// The writing end's state.
    pub fn writer(&self) -> End {
        self.writer.get()
    }

    /// Sets the reading end's state (a shut end stays shut until closed).
    pub fn set_reader(&self, e: End) {
        if self.reader.get() != End::Closed && self.reader.get() != e {
            self.reader.set(e);
            self.touch_drained();
        }
    }

    /// Sets the writing end's state.
    pub fn set_writer(&self, e: End) {
        if self.writer.get() != End::Closed && self.writer.get() != e {
            self.writer.set(e);
            self.touch_written();
        }
    }

    /// Reads what is queued now into `buf` (one message for a channel of
    /// messages), leaving it queued if `peek`. `Ok` with zero bytes is end
    /// of file only if the caller finds the writer gone; with nothing
    /// queued, `EAGAIN`.
    pub fn try_read(&self, buf: &mut [u8], peek: bool) -> Res<Got> {
        let mut data = self.data.borrow_mut();
        let (len, copied) = if self.packets {
            let mut msgs = self.msgs.borrow_mut();
            let Some(&len) = msgs.front() else { return Err(::libc::EAGAIN) };
            let copied = len.min(buf.len());
            copy_out(&data, &mut buf[..copied]);
            if !peek {
                msgs.pop_front();
                data.drain(..len);
            }
            (len, copied)
        } else {
            if data.is_empty() {
                return Err(::libc::EAGAIN);
            }
            if buf.is_empty() {
                return Ok(Got { copied: 0, len: 0 });
            }
            let copied = data.len().min(buf.len());
            copy_out(&data, &mut buf[..copied]);
            if !peek {
                data.drain(..copied);
            }
            (copied, copied)
        };
        drop(data);
        if !peek {
            self.touch_drained();
        }
        Ok(Got { copied, len })
    }

    /// Queues what fits of `buf` now: all of it or nothing if `atomic`
    /// (and always for a channel of messages, where a message larger than
    /// the capacity is `EMSGSIZE`), else as much as there is room for;
    /// `EAGAIN` if nothing could be queued. The caller checks the reader.
    pub fn try_write(&self, buf: &[u8], atomic: bool) -> Res<usize> {
        if self.packets && buf.len() > self.capacity {
            return Err(::libc::EMSGSIZE);
        }
        let room = self.room();
        let n = if atomic || self.packets {
            if room >= buf.len() { buf.len() } else { 0 }
        } else {
            room.min(buf.len())
        };
        if n == 0 && !(self.packets && buf.is_empty()) {
            return Err(::libc::EAGAIN);
        }
        let mut data = self.data.borrow_mut();
        data.try_reserve(n).map_err(|_| ::libc::ENOBUFS)?;
        if self.packets {
            let mut msgs = self.msgs.borrow_mut();
            msgs.try_reserve(1).map_err(|_| ::libc::ENOBUFS)?;
            msgs.push_back(n);
        }
        data.extend(&buf[..n]);
        drop(data);
        self.touch_written();
        Ok(n)
    }

    /// Data came in or the writer's end changed: tells the reading end's
    /// registrations (and the waiting threads).
    pub fn touch_written(&self) {
        super::thread::events_changed();
        self.readers
            .notify(::libc::POLLIN | ::libc::POLLRDNORM | ::libc::POLLHUP | ::libc::POLLRDHUP);
    }

    /// Data went out or the reader's end changed: tells the writing end's
    /// registrations (and the waiting threads).
    pub fn touch_drained(&self) {
        super::thread::events_changed();
        self.writers
            .notify(::libc::POLLOUT | ::libc::POLLWRNORM | ::libc::POLLERR | ::libc::POLLHUP);
    }

    /// Tells both ends' registrations that something changed (a socket
    /// pair's shutdown, which its own poll bits show).
    pub fn notify_ends(&self) {
        self.readers.notify(0);
        self.writers.notify(0);
    }

    /// Adds an `epoll` registration of the reading end.
    pub fn watch_reader(&self, sub: &Rc<Sub>) {
        self.readers.add(sub);
    }

    /// Adds an `epoll` registration of the writing end.
    pub fn watch_writer(&self, sub: &Rc<Sub>) {
        self.writers.add(sub);
    }
}

/// Records a change in `counter`: edge-triggered `epoll` sees it, and the
/// threads waiting for events look again.
/// Copies the first `out.len()` bytes of `data` into `out`.
fn copy_out(data: &VecDeque<u8>, out: &mut [u8]) {
    let (a, b) = data.as_slices();
    let n = out.len();
    let from_a = n.min(a.len());
    out[..from_a].copy_from_slice(&a[..from_a]);
    out[from_a..].copy_from_slice(&b[..n - from_a]);
}

/// Whether calls on `open` must not wait.
pub fn nonblocking(open: &Open) -> bool {
    open.flags.get() & ::libc::O_NONBLOCK != 0
}

/// Runs `attempt` until it stops answering `EAGAIN`, parking the thread
/// between attempts, unless `nonblock` (then `EAGAIN` is the answer), or
/// until `deadline` (then `EAGAIN` too, as a socket timeout is).
pub fn wait_while_again<T>(
    nonblock: bool,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Res<T>,
) -> Res<T> {
    loop {
        match attempt() {
            Err(::libc::EAGAIN) if !nonblock && deadline.is_none_or(|d| Instant::now() < d) => {
                super::thread::wait_for_events(deadline)
            }
            r => return r,
        }
    }
}

/// Writes `buf` to a byte stream whose reader is open while
/// `reader_open()` holds, as a pipe or a stream socket does: a write of at
/// most [`PIPE_BUF`] bytes is atomic if `atomic_small`; a blocking write
/// goes on until all is written; a nonblocking one writes what fits
/// (`EAGAIN` if nothing does); no reader is `EPIPE` (or the bytes written
/// before the reader went).
pub fn write_stream(
    chan: &Channel,
    buf: &[u8],
    nonblock: bool,
    atomic_small: bool,
    deadline: Option<Instant>,
    mut reader_gone: impl FnMut() -> Option<c_int>,
) -> Res<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let atomic = atomic_small && buf.len() <= PIPE_BUF;
    let mut done = 0;
    loop {
        if let Some(e) = reader_gone() {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        match chan.try_write(&buf[done..], atomic) {
            Ok(n) => done += n,
            Err(::libc::EAGAIN) => {}
            Err(e) => return if done > 0 { Ok(done) } else { Err(e) },
        }
        if done == buf.len() {
            return Ok(done);
        }
        if nonblock || deadline.is_some_and(|d| Instant::now() >= d) {
            return if done > 0 { Ok(done) } else { Err(::libc::EAGAIN) };
        }
        super::thread::wait_for_events(deadline);
    }
}

/// One end of a pipe.
#[derive(Debug)]
pub struct PipeEnd {
    chan: Rc<Channel>,
    reads: bool,
}

impl File for PipeEnd {
    fn read(&self, open: &Open, buf: &mut [u8]) -> Res<usize> {
        if !self.reads {
            return Err(::libc::EBADF);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        wait_while_again(nonblocking(open), None, || match self.chan.try_read(buf, false) {
            Ok(g) => Ok(g.copied),
            Err(::libc::EAGAIN) if self.chan.writer() != End::Open => Ok(0),
            Err(e) => Err(e),
        })
    }

    fn write(&self, open: &Open, buf: &[u8]) -> Res<usize> {
        if self.reads {
            return Err(::libc::EBADF);
        }
        write_stream(&self.chan, buf, nonblocking(open), true, None, || {
            (self.chan.reader() != End::Open).then_some(::libc::EPIPE)
        })
    }

    fn stat(&self) -> Res<::libc::stat64> {
        Ok(anon_stat(::libc::S_IFIFO | 0o600))
    }

    fn poll(&self) -> Events {
        let c = &self.chan;
        let mut ev = 0;
        if self.reads {
            if !c.is_empty() {
                ev |= ::libc::POLLIN;
            }
            if c.writer() != End::Open {
                ev |= ::libc::POLLHUP;
            }
        } else {
            if c.room() >= PIPE_BUF {
                ev |= ::libc::POLLOUT;
            }
            if c.reader() != End::Open {
                ev |= ::libc::POLLERR;
            }
        }
        ev
    }

    fn watch(&self, sub: &Rc<Sub>) {
        if self.reads { self.chan.watch_reader(sub) } else { self.chan.watch_writer(sub) }
    }

    fn close(&self) -> Res<()> {
        if self.reads {
            self.chan.set_reader(End::Closed);
        } else {
            self.chan.set_writer(End::Closed);
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// A `stat` of an object that is no file on a disk.
pub fn anon_stat(mode: ::libc::mode_t) -> ::libc::stat64 {
    // SAFETY: stat64 is plain data; all zeroes is a valid value.
    let mut st: ::libc::stat64 = unsafe { core::mem::zeroed() };
    st.st_mode = mode;
    st.st_nlink = 1;
    st.st_blksize = 4096;
    st
}

/// Installs two objects as a pair of descriptors (both or neither), with
/// status flags `flags0`, `flags1`.
pub fn install_pair(
    a: Rc<dyn File>,
    b: Rc<dyn File>,
    flags: [c_int; 2],
    cloexec: bool,
) -> Res<[c_int; 2]> {
    let fa = fd::install(fd::new_open(a, flags[0]), cloexec, 0)?;
    match fd::install(fd::new_open(b, flags[1]), cloexec, 0) {
        Ok(fb) => Ok([fa, fb]),
        Err(e) => {
            fd::close(fa);
            Err(e)
        }
    }
}

/// A new pipe: its read and write descriptors.
pub fn new_pipe(flags: c_int) -> Res<[c_int; 2]> {
    if flags & !(::libc::O_CLOEXEC | ::libc::O_NONBLOCK | ::libc::O_DIRECT) != 0 {
        return Err(::libc::EINVAL);
    }
    let chan = Channel::new(PIPE_CAPACITY, flags & ::libc::O_DIRECT != 0);
    let nonblock = flags & ::libc::O_NONBLOCK;
    install_pair(
        Rc::new(PipeEnd { chan: chan.clone(), reads: true }),
        Rc::new(PipeEnd { chan, reads: false }),
        [::libc::O_RDONLY | nonblock, ::libc::O_WRONLY | nonblock],
        flags & ::libc::O_CLOEXEC != 0,
    )
}

/// `pipe2(fds, flags)`: `O_CLOEXEC`, `O_NONBLOCK` and `O_DIRECT` (packet
/// mode: each write is one message) on both ends.
///
/// # Safety
///
/// `fds` is writable for two `int`s.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    if fds.is_null() {
        return fail(::libc::EFAULT);
    }
    match new_pipe(flags) {
        Ok(pair) => {
            // SAFETY: the caller guarantees two writable ints at fds.
            unsafe { fds.cast::<[c_int; 2]>().write_unaligned(pair) };
            0
        }
        Err(e) => fail(e),
    }
}

/// `pipe(fds)`.
///
/// # Safety
///
/// `fds` is writable for two `int`s.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pipe(fds: *mut c_int) -> c_int {
    // SAFETY: the same contract.
    unsafe { pipe2(fds, 0) }
}

#[cfg(test)]
mod tests {
    use super::super::fd::{close, fcntl, read, write};
    use super::*;

    fn rd(fd: c_int, n: usize) -> (isize, alloc::vec::Vec<u8>) {
        let mut b = alloc::vec![0u8; n];
        // SAFETY: b is writable for n bytes.
        let r = unsafe { read(fd, b.as_mut_ptr().cast(), n) };
        b.truncate(r.max(0) as usize);
        (r, b)
    }

    fn wr(fd: c_int, b: &[u8]) -> isize {
        // SAFETY: b is readable.
        unsafe { write(fd, b.as_ptr().cast(), b.len()) }
    }

    #[test]
    fn a_pipe_streams_bytes_and_reports_its_ends() {
        let _g = fd::tests::serial();
        let mut fds = [0; 2];
        // SAFETY: fds holds two ints.
        assert_eq!(unsafe { pipe2(fds.as_mut_ptr(), ::libc::O_NONBLOCK | ::libc::O_CLOEXEC) }, 0);
        let [r, w] = fds;
        assert_eq!(fcntl(r, ::libc::F_GETFD, 0), ::libc::FD_CLOEXEC);
        assert_eq!(fcntl(r, ::libc::F_GETFL, 0), ::libc::O_RDONLY | ::libc::O_NONBLOCK);
        assert_eq!(fcntl(w, ::libc::F_GETFL, 0), ::libc::O_WRONLY | ::libc::O_NONBLOCK);
        let rp = fd::get(r).unwrap();
        let wp = fd::get(w).unwrap();
        assert_eq!(rp.file.poll(), 0);
        assert_eq!(wp.file.poll(), ::libc::POLLOUT);
        assert_eq!(rd(r, 4).0, -1);
        assert_eq!(super::super::errno(), ::libc::EAGAIN);
        // Wrong directions.
        assert_eq!(wr(r, b"x"), -1);
        assert_eq!(super::super::errno(), ::libc::EBADF);
        assert_eq!(wr(w, b"hello"), 5);
        assert_eq!(rp.file.poll(), ::libc::POLLIN);
        assert_eq!(rd(r, 3), (3, b"hel".to_vec()));
        assert_eq!(rd(r, 9), (2, b"lo".to_vec()));
        // Fill it: 64 KiB, then a small write is refused whole.
        let big = alloc::vec![7u8; PIPE_CAPACITY - 100];
        assert_eq!(wr(w, &big), big.len() as isize);
        assert_eq!(wp.file.poll(), 0, "less than PIPE_BUF of room is not writable");
        assert_eq!(wr(w, &[1u8; 200]), -1, "an atomic write does not split");
        assert_eq!(super::super::errno(), ::libc::EAGAIN);
        // A large nonblocking write takes what fits.
        assert_eq!(wr(w, &[1u8; 5000]), 100);
        assert_eq!(wr(w, &[1u8; 5000]), -1);
        assert_eq!(rd(r, PIPE_CAPACITY + 10).0, PIPE_CAPACITY as isize);
        // The writer goes: end of file and POLLHUP.
        assert_eq!(wr(w, b"last"), 4);
        drop(wp);
        assert_eq!(close(w), 0);
        assert_eq!(rp.file.poll(), ::libc::POLLIN | ::libc::POLLHUP);
        assert_eq!(rd(r, 10), (4, b"last".to_vec()));
        assert_eq!(rd(r, 10), (0, alloc::vec::Vec::new()));
        drop(rp);
        assert_eq!(close(r), 0);
    }

    #[test]
    fn writing_without_a_reader_is_epipe() {
        let _g = fd::tests::serial();
        let [r, w] = new_pipe(::libc::O_NONBLOCK).unwrap();
        assert_eq!(close(r), 0);
        assert_eq!(fd::get(w).unwrap().file.poll(), ::libc::POLLOUT | ::libc::POLLERR);
        assert_eq!(wr(w, b"x"), -1);
        assert_eq!(super::super::errno(), ::libc::EPIPE);
        assert_eq!(close(w), 0);
        assert_eq!(new_pipe(0x4000_0000), Err(::libc::EINVAL));
        // SAFETY: null is refused before any write.
        assert_eq!(unsafe { pipe(core::ptr::null_mut()) }, -1);
        assert_eq!(super::super::errno(), ::libc::EFAULT);
    }

    #[test]
    fn packet_mode_keeps_message_boundaries() {
        let _g = fd::tests::serial();
        let [r, w] = new_pipe(::libc::O_NONBLOCK | ::libc::O_DIRECT).unwrap();
        assert_eq!(wr(w, b"abc"), 3);
        assert_eq!(wr(w, b"defg"), 4);
        assert_eq!(rd(r, 10), (3, b"abc".to_vec()));
        assert_eq!(rd(r, 2), (2, b"de".to_vec()));
        assert_eq!(rd(r, 10).0, -1, "the rest of a message is discarded");
        assert_eq!(close(r), 0);
        assert_eq!(close(w), 0);
    }

    #[test]
    fn a_channel_wraps_around() {
        let c = Channel::new(8, false);
        assert_eq!(c.try_write(b"123456", false), Ok(6));
        let mut b = [0u8; 4];
        assert_eq!(c.try_read(&mut b, false), Ok(Got { copied: 4, len: 4 }));
        assert_eq!(c.try_write(b"789abc", false), Ok(6));
        assert_eq!(c.try_write(b"z", false), Err(::libc::EAGAIN));
        let mut b = [0u8; 8];
        assert_eq!(c.try_read(&mut b, true), Ok(Got { copied: 8, len: 8 }));
        assert_eq!(&b, b"56789abc");
        assert_eq!(c.len(), 8, "a peek leaves the bytes");
    }
}
