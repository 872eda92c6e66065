//! Socket pairs (`socketpair(AF_UNIX, ...)`): two connected sockets in
//! the process, each direction a [`Channel`] as pipes have.
//!
//! std's `UnixStream::pair`/`UnixDatagram::pair`, mio's `UnixStream::pair`
//! and tokio's signal driver (its self-pipe) make them. All three types
//! are supported: `SOCK_STREAM` (a byte stream; a closed or shut-down peer
//! is end of file, a write to it `EPIPE`), `SOCK_DGRAM` (messages; a
//! closed peer is `ECONNREFUSED` to a writer, and a reader keeps waiting,
//! as on Linux) and `SOCK_SEQPACKET` (messages with a stream's end of
//! file), with `SOCK_NONBLOCK` and `SOCK_CLOEXEC`. Each direction holds
//! 208 KiB (Linux's default send buffer). Readiness follows Linux's
//! `unix_poll`: `POLLIN` with data or once the receiving side is shut
//! (with `POLLRDHUP`), `POLLHUP` when both sides are, `POLLOUT` while at
//! most a quarter of the buffer is in flight or the peer is gone.
//!
//! The socket calls on them (`recv*`, `send*`, `shutdown`, `getsockopt`,
//! `getsockname`, `getpeername`) are here as functions that
//! [`super::socket`]'s exports call for a descriptor that is one of these.
//! There is no file-system name space: `bind`/`connect` on `AF_UNIX` stay
//! with `socket`, which refuses them.

use alloc::rc::Rc;
use core::cell::Cell;
use core::time::Duration;

use super::fd::{self, Events, File, Open, Res};
use super::pipe::{self, Channel, End};
use super::{c_int, c_void, fail, size_t, ssize_t};

/// The bytes each direction holds (Linux's default `SO_SNDBUF`).
pub const SOCKET_CAPACITY: usize = 212_992;

/// One socket of a pair.
#[derive(Debug)]
pub struct UnixSocket {
    /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_SEQPACKET`.
    kind: c_int,
    rx: Rc<Channel>,
    tx: Rc<Channel>,
    shut_rd: Cell<bool>,
    shut_wr: Cell<bool>,
    /// `SO_RCVTIMEO` and `SO_SNDTIMEO` (None: wait forever).
    rcv_timeout: Cell<Option<Duration>>,
    snd_timeout: Cell<Option<Duration>>,
}

impl UnixSocket {
    /// Whether the peer's ends matter for end of file (not datagrams).
    fn connected(&self) -> bool {
        self.kind != ::libc::SOCK_DGRAM
    }

    /// Whether receiving is shut down: by `shutdown(SHUT_RD)`, or, for
    /// connection-oriented sockets, by the peer's `SHUT_WR` or close.
    fn rcv_shut(&self) -> bool {
        self.shut_rd.get() || self.connected() && self.rx.writer() != End::Open
    }

    /// Whether sending is shut down, likewise.
    fn send_shut(&self) -> bool {
        self.shut_wr.get() || self.connected() && self.tx.reader() != End::Open
    }

    /// `recv(buf, flags)`: `MSG_DONTWAIT`, `MSG_PEEK`, `MSG_TRUNC` (the
    /// message's real length), `MSG_WAITALL` (a stream fills the buffer).
    pub fn recv(&self, open: &Open, buf: &mut [u8], flags: c_int) -> Res<usize> {
        let known = ::libc::MSG_DONTWAIT
            | ::libc::MSG_PEEK
            | ::libc::MSG_TRUNC
            | ::libc::MSG_WAITALL
            | ::libc::MSG_NOSIGNAL
            | ::libc::MSG_CMSG_CLOEXEC;
        if flags & !known != 0 {
            return Err(::libc::EOPNOTSUPP);
        }
        let nonblock = pipe::nonblocking(open) || flags & ::libc::MSG_DONTWAIT != 0;
        let peek = flags & ::libc::MSG_PEEK != 0;
        let waitall = flags & ::libc::MSG_WAITALL != 0 && !peek && self.kind == ::libc::SOCK_STREAM;
        if buf.is_empty() && self.kind == ::libc::SOCK_STREAM {
            return Ok(0);
        }
        let deadline = deadline(self.rcv_timeout.get());
        let mut done = 0;
        loop {
            match self.rx.try_read(&mut buf[done..], peek) {
                Ok(g) => {
                    if self.kind != ::libc::SOCK_STREAM {
                        let trunc = flags & ::libc::MSG_TRUNC != 0;
                        return Ok(if trunc { g.len } else { g.copied });
                    }
                    done += g.copied;
                    if !waitall || done == buf.len() {
                        return Ok(done);
                    }
                }
                Err(::libc::EAGAIN) => {
                    if self.rcv_shut() || done > 0 && nonblock {
                        return Ok(done);
                    }
                    if nonblock || expired(deadline) {
                        return if done > 0 { Ok(done) } else { Err(::libc::EAGAIN) };
                    }
                    super::thread::wait_for_events(deadline);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `send(buf, flags)`: `MSG_DONTWAIT`, `MSG_NOSIGNAL` (signals are
    /// never sent anyway).
    pub fn send(&self, open: &Open, buf: &[u8], flags: c_int) -> Res<usize> {
        let known = ::libc::MSG_DONTWAIT | ::libc::MSG_NOSIGNAL | ::libc::MSG_EOR;
        if flags & !known != 0 {
            return Err(::libc::EOPNOTSUPP);
        }
        let nonblock = pipe::nonblocking(open) || flags & ::libc::MSG_DONTWAIT != 0;
        let gone = || {
            if self.shut_wr.get() {
                Some(::libc::EPIPE)
            } else {
                match self.tx.reader() {
                    End::Open => None,
                    End::Closed if !self.connected() => Some(::libc::ECONNREFUSED),
                    _ => Some(::libc::EPIPE),
                }
            }
        };
        let deadline = deadline(self.snd_timeout.get());
        if self.kind == ::libc::SOCK_STREAM {
            return pipe::write_stream(&self.tx, buf, nonblock, false, deadline, gone);
        }
        pipe::wait_while_again(nonblock, deadline, || match gone() {
            Some(e) => Err(e),
            None => self.tx.try_write(buf, true),
        })
    }

    /// `shutdown(how)`.
    pub fn shutdown(&self, how: c_int) -> Res<()> {
        let (rd, wr) = match how {
            ::libc::SHUT_RD => (true, false),
            ::libc::SHUT_WR => (false, true),
            ::libc::SHUT_RDWR => (true, true),
            _ => return Err(::libc::EINVAL),
        };
        if rd {
            self.shut_rd.set(true);
            if self.connected() {
                self.rx.set_reader(End::Shut);
            }
        }
        if wr {
            self.shut_wr.set(true);
            if self.connected() {
                self.tx.set_writer(End::Shut);
            }
        }
        self.rx.notify_ends();
        self.tx.notify_ends();
        super::thread::events_changed();
        Ok(())
    }

    /// `getsockopt(SOL_SOCKET, name)` as an `int`.
    pub fn sockopt(&self, level: c_int, name: c_int) -> Res<c_int> {
        if level != ::libc::SOL_SOCKET {
            return Err(::libc::EOPNOTSUPP);
        }
        Ok(match name {
            ::libc::SO_TYPE => self.kind,
            ::libc::SO_DOMAIN => ::libc::AF_UNIX,
            ::libc::SO_PROTOCOL | ::libc::SO_ERROR | ::libc::SO_ACCEPTCONN => 0,
            ::libc::SO_SNDBUF => self.tx.capacity() as c_int,
            ::libc::SO_RCVBUF => self.rx.capacity() as c_int,
            _ => return Err(::libc::ENOPROTOOPT),
        })
    }
}

/// The deadline of a socket timeout from now.
fn deadline(t: Option<Duration>) -> Option<libos::time::Instant> {
    t.map(|t| libos::time::Instant::now() + t)
}

/// Whether `deadline` has passed.
fn expired(deadline: Option<libos::time::Instant>) -> bool {
    deadline.is_some_and(|d| libos::time::Instant::now() >= d)
}

impl File for UnixSocket {
    fn read(&self, open: &Open, buf: &mut [u8]) -> Res<usize> {
        self.recv(open, buf, 0)
    }

    fn write(&self, open: &Open, buf: &[u8]) -> Res<usize> {
        self.send(open, buf, 0)
    }

    fn stat(&self) -> Res<::libc::stat64> {
        Ok(pipe::anon_stat(::libc::S_IFSOCK | 0o777))
    }

    fn poll(&self) -> Events {
        let mut ev = 0;
        if !self.rx.is_empty() {
            ev |= ::libc::POLLIN;
        }
        let (rcv, snd) = (self.rcv_shut(), self.send_shut());
        if rcv {
            ev |= ::libc::POLLIN | ::libc::POLLRDHUP;
        }
        if rcv && snd {
            ev |= ::libc::POLLHUP;
        }
        if self.tx.len() * 4 <= self.tx.capacity() || self.tx.reader() != End::Open {
            ev |= ::libc::POLLOUT;
        }
        ev
    }

    fn watch(&self, sub: &alloc::rc::Rc<super::watch::Sub>) {
        self.rx.watch_reader(sub);
        self.tx.watch_writer(sub);
    }

    fn close(&self) -> Res<()> {
        self.rx.set_reader(End::Closed);
        self.tx.set_writer(End::Closed);
        Ok(())
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// A new socket pair of `kind` (`SOCK_STREAM`, `SOCK_DGRAM`,
/// `SOCK_SEQPACKET`, with `SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
pub fn new_pair(domain: c_int, ty: c_int, protocol: c_int) -> Res<[c_int; 2]> {
    let flags = ty & (::libc::SOCK_NONBLOCK | ::libc::SOCK_CLOEXEC);
    let kind = ty & !flags;
    if domain != ::libc::AF_UNIX {
        return Err(if domain == ::libc::AF_INET || domain == ::libc::AF_INET6 {
            ::libc::EOPNOTSUPP
        } else {
            ::libc::EAFNOSUPPORT
        });
    }
    if !matches!(kind, ::libc::SOCK_STREAM | ::libc::SOCK_DGRAM | ::libc::SOCK_SEQPACKET) {
        return Err(::libc::ESOCKTNOSUPPORT);
    }
    if protocol != 0 {
        return Err(::libc::EPROTONOSUPPORT);
    }
    let packets = kind != ::libc::SOCK_STREAM;
    let (ab, ba) = (Channel::new(SOCKET_CAPACITY, packets), Channel::new(SOCKET_CAPACITY, packets));
    let end = |rx: &Rc<Channel>, tx: &Rc<Channel>| -> Rc<dyn File> {
        Rc::new(UnixSocket {
            kind,
            rx: rx.clone(),
            tx: tx.clone(),
            shut_rd: Cell::new(false),
            shut_wr: Cell::new(false),
            rcv_timeout: Cell::new(None),
            snd_timeout: Cell::new(None),
        })
    };
    let status =
        ::libc::O_RDWR | if flags & ::libc::SOCK_NONBLOCK != 0 { ::libc::O_NONBLOCK } else { 0 };
    pipe::install_pair(
        end(&ba, &ab),
        end(&ab, &ba),
        [status, status],
        flags & ::libc::SOCK_CLOEXEC != 0,
    )
}

/// `socketpair(domain, type, protocol, fds)`.
///
/// # Safety
///
/// `fds` is writable for two `int`s.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    ty: c_int,
    protocol: c_int,
    fds: *mut c_int,
) -> c_int {
    if fds.is_null() {
        return fail(::libc::EFAULT);
    }
    match new_pair(domain, ty, protocol) {
        Ok(pair) => {
            // SAFETY: the caller guarantees two writable ints at fds.
            unsafe { fds.cast::<[c_int; 2]>().write_unaligned(pair) };
            0
        }
        Err(e) => fail(e),
    }
}

/// Runs `f` on the socket of a pair behind `fd`; `None` if `fd` is not
/// open or is not one (the caller answers for other sockets).
pub fn with<R>(fd: c_int, f: impl FnOnce(&UnixSocket, &Open) -> R) -> Option<R> {
    let open = fd::get(fd).ok()?;
    let s = open.file.as_any().downcast_ref::<UnixSocket>()?;
    Some(f(s, &open))
}

/// Writes the unnamed `AF_UNIX` address (a family only) to `addr`, as
/// `getsockname` and `getpeername` answer for a socket pair.
///
/// # Safety
///
/// `addr` is writable for `*len` bytes and `len` readable and writable
/// (both may be null: `EFAULT`).
pub unsafe fn unnamed_address(addr: *mut ::libc::sockaddr, len: *mut ::libc::socklen_t) -> Res<()> {
    if len.is_null() {
        return Err(::libc::EFAULT);
    }
    // SAFETY: the caller guarantees len is readable.
    let room = unsafe { len.read() };
    if (room as c_int) < 0 {
        return Err(::libc::EINVAL);
    }
    let family = (::libc::AF_UNIX as ::libc::sa_family_t).to_ne_bytes();
    let n = (room as usize).min(family.len());
    if n > 0 {
        if addr.is_null() {
            return Err(::libc::EFAULT);
        }
        // SAFETY: the caller guarantees room writable bytes at addr; n is
        // at most room.
        unsafe { core::ptr::copy_nonoverlapping(family.as_ptr(), addr.cast::<u8>(), n) };
    }
    // SAFETY: the caller guarantees len is writable.
    unsafe { len.write(family.len() as ::libc::socklen_t) };
    Ok(())
}

/// Writes `value` as an `int` option to `value`/`len`, as `getsockopt`
/// does (truncated to the room given).
///
/// # Safety
///
/// `out` is writable for `*len` bytes; `len` readable and writable.
pub unsafe fn int_option(v: c_int, out: *mut c_void, len: *mut ::libc::socklen_t) -> Res<()> {
    if len.is_null() || out.is_null() {
        return Err(::libc::EFAULT);
    }
    // SAFETY: the caller guarantees len is readable.
    let room = unsafe { len.read() } as usize;
    let bytes = v.to_ne_bytes();
    let n = room.min(bytes.len());
    // SAFETY: the caller guarantees room writable bytes at out.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), n) };
    // SAFETY: the caller guarantees len is writable.
    unsafe { len.write(n as ::libc::socklen_t) };
    Ok(())
}

// ---------------------------------------------------------------------
// The socket calls, for [`super::socket`]'s exports: each answers for a
// descriptor that is a socket of a pair (`Some`, the C return value, with
// `errno` set on failure) and `None` for any other descriptor.

/// Sets `errno` from `r` and returns the C value.
fn c_ret(r: Res<usize>) -> ssize_t {
    fd::ret(r)
}

/// `bind`: a socket of a pair has no name to take (no name space here).
pub fn bind(fd: c_int, _addr: *const ::libc::sockaddr, _len: ::libc::socklen_t) -> Option<c_int> {
    with(fd, |_, _| fail(::libc::EINVAL))
}

/// `connect`: a pair is connected already.
pub fn connect(
    fd: c_int,
    _addr: *const ::libc::sockaddr,
    _len: ::libc::socklen_t,
) -> Option<c_int> {
    with(fd, |_, _| fail(::libc::EISCONN))
}

/// `listen`: not on a connected socket.
pub fn listen(fd: c_int, _backlog: c_int) -> Option<c_int> {
    with(fd, |_, _| fail(::libc::EINVAL))
}

/// `accept4` (and so `accept`): not on a connected socket.
pub fn accept4(fd: c_int, _addr: Addr, _len: AddrLen, _flags: c_int) -> Option<c_int> {
    with(fd, |_, _| fail(::libc::EINVAL))
}

/// `getsockname`: the unnamed address.
///
/// # Safety
///
/// As `getsockname`'s: `addr` writable for `*len` bytes, `len` readable
/// and writable.
pub unsafe fn getsockname(fd: c_int, addr: Addr, len: AddrLen) -> Option<c_int> {
    // SAFETY: the caller's contract.
    with(fd, |_, _| fd::ret_int(unsafe { unnamed_address(addr, len) }.map(|()| 0)))
}

/// `getpeername`: the peer's unnamed address.
///
/// # Safety
///
/// As [`getsockname`].
pub unsafe fn getpeername(fd: c_int, addr: Addr, len: AddrLen) -> Option<c_int> {
    // SAFETY: the caller's contract.
    unsafe { getsockname(fd, addr, len) }
}

/// `getsockopt`: `SO_TYPE`, `SO_DOMAIN`, `SO_PROTOCOL`, `SO_ERROR`,
/// `SO_ACCEPTCONN`, `SO_SNDBUF`, `SO_RCVBUF`, `SO_RCVTIMEO`, `SO_SNDTIMEO`.
///
/// # Safety
///
/// `value` is writable for `*len` bytes; `len` readable and writable.
pub unsafe fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: AddrLen,
) -> Option<c_int> {
    with(fd, |s, _| {
        let r = match (level, name) {
            (::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO | ::libc::SO_SNDTIMEO) => {
                let t = if name == ::libc::SO_RCVTIMEO { &s.rcv_timeout } else { &s.snd_timeout };
                // SAFETY: the caller's contract.
                unsafe { timeval_option(t.get(), value, len) }
            }
            // SAFETY: the caller's contract.
            _ => s.sockopt(level, name).and_then(|v| unsafe { int_option(v, value, len) }),
        };
        fd::ret_int(r.map(|()| 0))
    })
}

/// `setsockopt`: the timeouts; the buffer sizes are accepted and keep
/// their fixed value (which `getsockopt` reports).
///
/// # Safety
///
/// `value` is readable for `len` bytes.
pub unsafe fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: ::libc::socklen_t,
) -> Option<c_int> {
    with(fd, |s, _| {
        let r = match (level, name) {
            (::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO | ::libc::SO_SNDTIMEO) => {
                if value.is_null() {
                    Err(::libc::EFAULT)
                } else if (len as usize) < core::mem::size_of::<::libc::timeval>() {
                    Err(::libc::EINVAL)
                } else {
                    // SAFETY: the caller guarantees len readable bytes.
                    let tv = unsafe { value.cast::<::libc::timeval>().read_unaligned() };
                    match (u64::try_from(tv.tv_sec), u64::try_from(tv.tv_usec)) {
                        (Ok(sec), Ok(us)) if us < 1_000_000 => {
                            let d = Duration::from_secs(sec) + Duration::from_micros(us);
                            let t = if name == ::libc::SO_RCVTIMEO {
                                &s.rcv_timeout
                            } else {
                                &s.snd_timeout
                            };
                            t.set((!d.is_zero()).then_some(d));
                            Ok(())
                        }
                        _ => Err(::libc::EDOM),
                    }
                }
            }
            (::libc::SOL_SOCKET, ::libc::SO_SNDBUF | ::libc::SO_RCVBUF) if (len as usize) >= 4 => {
                Ok(())
            }
            (::libc::SOL_SOCKET, _) => Err(::libc::ENOPROTOOPT),
            _ => Err(::libc::EOPNOTSUPP),
        };
        fd::ret_int(r.map(|()| 0))
    })
}

/// Writes a timeout as a `timeval` option.
///
/// # Safety
///
/// As [`int_option`].
unsafe fn timeval_option(t: Option<Duration>, out: *mut c_void, len: AddrLen) -> Res<()> {
    if len.is_null() || out.is_null() {
        return Err(::libc::EFAULT);
    }
    let t = t.unwrap_or_default();
    let tv = ::libc::timeval { tv_sec: t.as_secs() as _, tv_usec: t.subsec_micros() as _ };
    // SAFETY: the caller guarantees len is readable.
    let room = unsafe { len.read() } as usize;
    let n = room.min(core::mem::size_of::<::libc::timeval>());
    // SAFETY: tv is n readable bytes; the caller guarantees room at out.
    unsafe { core::ptr::copy_nonoverlapping((&raw const tv).cast::<u8>(), out.cast::<u8>(), n) };
    // SAFETY: the caller guarantees len is writable.
    unsafe { len.write(n as ::libc::socklen_t) };
    Ok(())
}

/// `shutdown`.
pub fn shutdown(fd: c_int, how: c_int) -> Option<c_int> {
    with(fd, |s, _| fd::ret_int(s.shutdown(how).map(|()| 0)))
}

/// The bytes at `buf`, or none for a zero length.
///
/// # Safety
///
/// `buf` is readable for `len` bytes when `len` is not zero.
unsafe fn bytes<'a>(buf: *const c_void, len: size_t) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(buf.cast(), len) }
}

/// The writable bytes at `buf`, or none for a zero length.
///
/// # Safety
///
/// `buf` is writable for `len` bytes when `len` is not zero.
unsafe fn bytes_mut<'a>(buf: *mut c_void, len: size_t) -> &'a mut [u8] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts_mut(buf.cast(), len) }
}

/// `send`.
///
/// # Safety
///
/// `buf` is readable for `len` bytes.
pub unsafe fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> Option<ssize_t> {
    // SAFETY: the caller's contract.
    with(fd, |s, o| c_ret(s.send(o, unsafe { bytes(buf, len) }, flags)))
}

/// `recv`.
///
/// # Safety
///
/// `buf` is writable for `len` bytes.
pub unsafe fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> Option<ssize_t> {
    // SAFETY: the caller's contract.
    with(fd, |s, o| c_ret(s.recv(o, unsafe { bytes_mut(buf, len) }, flags)))
}

/// `sendto`: a destination is `EISCONN` on a connected pair (no name
/// space for a datagram pair to send elsewhere: `ENOENT`).
///
/// # Safety
///
/// `buf` is readable for `len` bytes.
pub unsafe fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const ::libc::sockaddr,
    addrlen: ::libc::socklen_t,
) -> Option<ssize_t> {
    with(fd, |s, o| {
        if !addr.is_null() && addrlen > 0 {
            let e = if s.connected() { ::libc::EISCONN } else { ::libc::ENOENT };
            return c_ret(Err(e));
        }
        // SAFETY: the caller's contract.
        c_ret(s.send(o, unsafe { bytes(buf, len) }, flags))
    })
}

/// `recvfrom`: the sender has no name (`*addrlen` becomes 0).
///
/// # Safety
///
/// `buf` is writable for `len` bytes; `addrlen` null or writable.
pub unsafe fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    _addr: Addr,
    addrlen: AddrLen,
) -> Option<ssize_t> {
    with(fd, |s, o| {
        // SAFETY: the caller's contract.
        let r = s.recv(o, unsafe { bytes_mut(buf, len) }, flags);
        if r.is_ok() && !addrlen.is_null() {
            // SAFETY: the caller guarantees addrlen is writable.
            unsafe { addrlen.write(0) };
        }
        c_ret(r)
    })
}

/// The entries of a message's `iovec` array.
///
/// # Safety
///
/// `msg` is readable, with `msg_iovlen` readable entries at `msg_iov`.
unsafe fn iovecs<'a>(msg: *const ::libc::msghdr) -> Res<&'a [::libc::iovec]> {
    if msg.is_null() {
        return Err(::libc::EFAULT);
    }
    // SAFETY: the caller's contract.
    let m = unsafe { &*msg };
    if m.msg_iovlen > 1024 {
        return Err(::libc::EMSGSIZE);
    }
    if m.msg_iovlen == 0 {
        return Ok(&[]);
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(m.msg_iov, m.msg_iovlen) })
}

/// `sendmsg`: the buffers gathered into one write (one message for
/// packets); no ancillary data (`SCM_RIGHTS` is refused with `EINVAL`).
///
/// # Safety
///
/// `msg` is a valid `msghdr` whose buffers are readable.
pub unsafe fn sendmsg(fd: c_int, msg: *const ::libc::msghdr, flags: c_int) -> Option<ssize_t> {
    with(fd, |s, o| {
        let r = (|| {
            // SAFETY: the caller's contract.
            let iov = unsafe { iovecs(msg) }?;
            // SAFETY: iovecs checked msg is not null.
            let m = unsafe { &*msg };
            if m.msg_controllen > 0 {
                return Err(::libc::EINVAL);
            }
            if !m.msg_name.is_null() && m.msg_namelen > 0 {
                return Err(if s.connected() { ::libc::EISCONN } else { ::libc::ENOENT });
            }
            let total: usize = iov.iter().map(|v| v.iov_len).sum();
            let mut all = alloc::vec::Vec::new();
            all.try_reserve(total).map_err(|_| ::libc::ENOBUFS)?;
            for v in iov {
                // SAFETY: the caller guarantees each buffer is readable.
                all.extend_from_slice(unsafe { bytes(v.iov_base, v.iov_len) });
            }
            s.send(o, &all, flags)
        })();
        c_ret(r)
    })
}

/// `recvmsg`: one read scattered into the buffers; no name, no
/// ancillary data; `MSG_TRUNC` in `msg_flags` when a message did not fit.
///
/// # Safety
///
/// `msg` is a valid, writable `msghdr` whose buffers are writable.
pub unsafe fn recvmsg(fd: c_int, msg: *mut ::libc::msghdr, flags: c_int) -> Option<ssize_t> {
    with(fd, |s, o| {
        let r = (|| {
            // SAFETY: the caller's contract.
            let iov = unsafe { iovecs(msg) }?;
            let total: usize = iov.iter().map(|v| v.iov_len).sum();
            let mut all = alloc::vec::Vec::new();
            all.try_reserve(total).map_err(|_| ::libc::ENOBUFS)?;
            all.resize(total, 0);
            let n = s.recv(o, &mut all, flags | ::libc::MSG_TRUNC)?;
            let copied = n.min(total);
            let mut at = 0;
            for v in iov {
                if at == copied {
                    break;
                }
                let k = v.iov_len.min(copied - at);
                // SAFETY: the caller guarantees each buffer is writable.
                unsafe { bytes_mut(v.iov_base, k) }.copy_from_slice(&all[at..at + k]);
                at += k;
            }
            // SAFETY: iovecs checked msg is not null; the caller
            // guarantees it is writable.
            let m = unsafe { &mut *msg };
            m.msg_namelen = 0;
            m.msg_controllen = 0;
            m.msg_flags = if n > total { ::libc::MSG_TRUNC } else { 0 };
            Ok(if flags & ::libc::MSG_TRUNC != 0 { n } else { copied })
        })();
        c_ret(r)
    })
}

type Addr = *mut ::libc::sockaddr;
type AddrLen = *mut ::libc::socklen_t;

#[cfg(test)]
mod tests {
    use super::super::fd::close;
    use super::*;

    fn sock(fd: c_int) -> Rc<Open> {
        fd::get(fd).unwrap()
    }

    fn recv(fd: c_int, n: usize, flags: c_int) -> Res<alloc::vec::Vec<u8>> {
        let mut b = alloc::vec![0u8; n];
        let k = with(fd, |s, o| s.recv(o, &mut b, flags)).unwrap()?;
        b.truncate(k);
        Ok(b)
    }

    fn send(fd: c_int, b: &[u8]) -> Res<usize> {
        with(fd, |s, o| s.send(o, b, 0)).unwrap()
    }

    #[test]
    fn a_stream_pair_carries_bytes_both_ways_and_ends() {
        let _g = fd::tests::serial();
        let ty = ::libc::SOCK_STREAM | ::libc::SOCK_NONBLOCK | ::libc::SOCK_CLOEXEC;
        let [a, b] = new_pair(::libc::AF_UNIX, ty, 0).unwrap();
        assert_eq!(fd::fcntl(a, ::libc::F_GETFL, 0), ::libc::O_RDWR | ::libc::O_NONBLOCK);
        assert_eq!(fd::fcntl(b, ::libc::F_GETFD, 0), ::libc::FD_CLOEXEC);
        assert_eq!(sock(a).file.poll(), ::libc::POLLOUT);
        assert_eq!(recv(a, 4, 0), Err(::libc::EAGAIN));
        assert_eq!(send(a, b"ping"), Ok(4));
        assert_eq!(send(b, b"pong!"), Ok(5));
        assert_eq!(sock(b).file.poll(), ::libc::POLLIN | ::libc::POLLOUT);
        assert_eq!(recv(b, 2, ::libc::MSG_PEEK).unwrap(), b"pi");
        assert_eq!(recv(b, 10, 0).unwrap(), b"ping");
        assert_eq!(recv(a, 10, ::libc::MSG_TRUNC).unwrap(), b"pong!");
        // Half close: the peer reads end of file, sees RDHUP, can still
        // write back.
        with(a, |s, _| s.shutdown(::libc::SHUT_WR)).unwrap().unwrap();
        assert_eq!(send(a, b"x"), Err(::libc::EPIPE));
        let pb = sock(b).file.poll();
        assert_eq!(pb, ::libc::POLLIN | ::libc::POLLRDHUP | ::libc::POLLOUT);
        assert_eq!(recv(b, 10, 0).unwrap(), b"");
        assert_eq!(send(b, b"bye"), Ok(3));
        assert_eq!(recv(a, 10, 0).unwrap(), b"bye");
        // Close: the peer gets HUP and EPIPE.
        assert_eq!(close(a), 0);
        let pb = sock(b).file.poll();
        assert_eq!(pb, ::libc::POLLIN | ::libc::POLLRDHUP | ::libc::POLLHUP | ::libc::POLLOUT);
        assert_eq!(send(b, b"x"), Err(::libc::EPIPE));
        assert_eq!(close(b), 0);
    }

    #[test]
    fn datagram_pairs_keep_boundaries() {
        let _g = fd::tests::serial();
        let [a, b] =
            new_pair(::libc::AF_UNIX, ::libc::SOCK_DGRAM | ::libc::SOCK_NONBLOCK, 0).unwrap();
        assert_eq!(send(a, b"one"), Ok(3));
        assert_eq!(send(a, b""), Ok(0));
        assert_eq!(send(a, b"three"), Ok(5));
        assert_eq!(recv(b, 10, 0).unwrap(), b"one");
        assert_eq!(
            sock(b).file.poll() & ::libc::POLLIN,
            ::libc::POLLIN,
            "an empty datagram is data"
        );
        assert_eq!(recv(b, 10, 0).unwrap(), b"");
        let mut buf = [0u8; 2];
        let n = with(b, |s, o| s.recv(o, &mut buf, ::libc::MSG_TRUNC)).unwrap();
        assert_eq!((n, &buf), (Ok(5), b"th"));
        assert_eq!(recv(b, 10, 0), Err(::libc::EAGAIN));
        let huge = alloc::vec![0u8; SOCKET_CAPACITY + 1];
        assert_eq!(send(a, &huge), Err(::libc::EMSGSIZE));
        assert_eq!(close(b), 0);
        assert_eq!(send(a, b"x"), Err(::libc::ECONNREFUSED));
        assert_eq!(recv(a, 10, 0), Err(::libc::EAGAIN), "a datagram socket has no end of file");
        assert_eq!(close(a), 0);
    }

    #[test]
    fn pairs_check_their_arguments() {
        let _g = fd::tests::serial();
        assert_eq!(new_pair(::libc::AF_INET, ::libc::SOCK_STREAM, 0), Err(::libc::EOPNOTSUPP));
        assert_eq!(new_pair(99, ::libc::SOCK_STREAM, 0), Err(::libc::EAFNOSUPPORT));
        assert_eq!(new_pair(::libc::AF_UNIX, ::libc::SOCK_RAW, 0), Err(::libc::ESOCKTNOSUPPORT));
        assert_eq!(new_pair(::libc::AF_UNIX, ::libc::SOCK_STREAM, 6), Err(::libc::EPROTONOSUPPORT));
        let [a, b] = new_pair(::libc::AF_UNIX, ::libc::SOCK_SEQPACKET, 0).unwrap();
        assert_eq!(
            with(a, |s, _| s.sockopt(::libc::SOL_SOCKET, ::libc::SO_TYPE)),
            Some(Ok(::libc::SOCK_SEQPACKET))
        );
        assert_eq!(with(a, |s, _| s.shutdown(7)), Some(Err(::libc::EINVAL)));
        assert!(with(1, |_, _| ()).is_none(), "the console is no socket pair");
        let mut sa: ::libc::sockaddr = unsafe_zeroed();
        let mut len = core::mem::size_of::<::libc::sockaddr>() as ::libc::socklen_t;
        // SAFETY: sa and len are writable.
        unsafe { unnamed_address(&mut sa, &mut len) }.unwrap();
        assert_eq!((sa.sa_family, len), (::libc::AF_UNIX as ::libc::sa_family_t, 2));
        // A closed seqpacket peer is end of file.
        assert_eq!(close(b), 0);
        assert_eq!(recv(a, 4, ::libc::MSG_DONTWAIT).unwrap(), b"");
        assert_eq!(close(a), 0);
    }

    #[test]
    fn the_socket_calls_answer_for_a_pair() {
        let _g = fd::tests::serial();
        let ty = ::libc::SOCK_DGRAM | ::libc::SOCK_NONBLOCK;
        let [a, b] = new_pair(::libc::AF_UNIX, ty, 0).unwrap();
        // sendmsg gathers into one datagram; recvmsg scatters it and says
        // it was cut short.
        let (p1, p2) = (*b"hello ", *b"world");
        let iov = [
            ::libc::iovec { iov_base: p1.as_ptr() as *mut c_void, iov_len: p1.len() },
            ::libc::iovec { iov_base: p2.as_ptr() as *mut c_void, iov_len: p2.len() },
        ];
        // SAFETY: msghdr is plain data.
        let mut msg: ::libc::msghdr = unsafe { core::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut _;
        msg.msg_iovlen = 2;
        // SAFETY: msg and its buffers are valid.
        assert_eq!(unsafe { sendmsg(a, &msg, 0) }, Some(11));
        let (mut q1, mut q2) = ([0u8; 4], [0u8; 4]);
        let out = [
            ::libc::iovec { iov_base: q1.as_mut_ptr().cast(), iov_len: 4 },
            ::libc::iovec { iov_base: q2.as_mut_ptr().cast(), iov_len: 4 },
        ];
        msg.msg_iov = out.as_ptr() as *mut _;
        // SAFETY: msg and its buffers are valid and writable.
        assert_eq!(unsafe { recvmsg(b, &mut msg, 0) }, Some(8));
        assert_eq!((&q1, &q2, msg.msg_flags), (b"hell", b"o wo", ::libc::MSG_TRUNC));
        // sendto with a destination; recvfrom says the sender has no name.
        let sa = unsafe_zeroed();
        let n = 2 as ::libc::socklen_t;
        // SAFETY: the buffer and address are readable.
        let r = unsafe { sendto(a, b"x".as_ptr().cast(), 1, 0, &sa, n) };
        assert_eq!((r, super::super::errno()), (Some(-1), ::libc::ENOENT));
        // SAFETY: as above, without a destination.
        assert_eq!(unsafe { super::send(a, b"yz".as_ptr().cast(), 2, 0) }, Some(2));
        let mut buf = [0u8; 8];
        let mut alen: ::libc::socklen_t = 16;
        let mut from = unsafe_zeroed();
        // SAFETY: buf, from and alen are writable.
        let r = unsafe { recvfrom(b, buf.as_mut_ptr().cast(), 8, 0, &mut from, &mut alen) };
        assert_eq!((r, alen), (Some(2), 0));
        // Timeouts round-trip through the options; other names are not
        // ours to answer (None) for other descriptors.
        let tv = ::libc::timeval { tv_sec: 1, tv_usec: 500_000 };
        let tl = core::mem::size_of::<::libc::timeval>() as ::libc::socklen_t;
        // SAFETY: tv is readable for tl bytes.
        let r = unsafe {
            setsockopt(a, ::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO, (&raw const tv).cast(), tl)
        };
        assert_eq!(r, Some(0));
        let mut got = ::libc::timeval { tv_sec: 0, tv_usec: 0 };
        let mut gl = tl;
        // SAFETY: got is writable for gl bytes.
        let r = unsafe {
            getsockopt(a, ::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO, (&raw mut got).cast(), &mut gl)
        };
        assert_eq!((r, got.tv_sec, got.tv_usec), (Some(0), 1, 500_000));
        assert_eq!(listen(a, 1), Some(-1));
        assert_eq!(connect(a, &sa, n), Some(-1));
        assert_eq!(super::super::errno(), ::libc::EISCONN);
        assert_eq!(shutdown(1, ::libc::SHUT_RD), None, "the console is not ours");
        assert_eq!(close(a), 0);
        assert_eq!(close(b), 0);
    }

    fn unsafe_zeroed() -> ::libc::sockaddr {
        // SAFETY: sockaddr is plain data.
        unsafe { core::mem::zeroed() }
    }
}
