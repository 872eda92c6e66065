//! Sockets: TCP and UDP over IPv4, on libos's smoltcp stack, in the
//! file-descriptor table ([`Socket`] is a [`File`]), with Linux's calls,
//! flags, options and errors (docs/std.md, "Sockets", says what maps to
//! what and what the stack cannot do).
//!
//! * [`addr`]: `sockaddr_in` and `sockaddr_in6` conversion.
//! * [`opts`]: `setsockopt`/`getsockopt` values.
//! * [`tcp`], [`udp`]: each protocol's states and calls.
//!
//! A blocking call tries, and while the answer is "not yet" parks the
//! thread until the network has had a turn ([`wait_loop`]); a nonblocking
//! one (`O_NONBLOCK`, `MSG_DONTWAIT`) fails with `EAGAIN` instead. The
//! socket's state lives in `RefCell`s borrowed only between switches.
//!
//! IPv6 sockets are dual-stack, as Linux's by default: they reach IPv4
//! peers through IPv4-mapped addresses ([`addr`]); the guest has no IPv6
//! address or route of its own. Unix-domain sockets are `EAFNOSUPPORT`
//! but for socket pairs ([`super::unix`]): each call here lets a socket
//! of a pair answer for itself first.

pub mod addr;
pub mod opts;
pub mod tcp;
pub mod udp;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;
use core::net::SocketAddrV4;
use core::task::Poll;
use core::time::Duration;

use libos::net::NetError;

use super::fd::{self, Events, File, Open, Res};
use super::watch::NetWatch;
use super::{c_int, c_void, fail, fail_size, size_t, ssize_t};
use opts::{Kind, Opts, Value};

/// The errno for a stack error, as Linux reports the same condition.
pub fn errno(e: NetError) -> c_int {
    match e {
        NetError::ConnectionReset => ::libc::ECONNRESET,
        NetError::ConnectionRefused => ::libc::ECONNREFUSED,
        NetError::NotConnected => ::libc::ENOTCONN,
        NetError::AddrInUse => ::libc::EADDRINUSE,
        NetError::InvalidAddress => ::libc::EINVAL,
        NetError::NoRoute | NetError::NoInterface => ::libc::ENETUNREACH,
        NetError::TooLarge => ::libc::EMSGSIZE,
        NetError::OutOfMemory => ::libc::ENOBUFS,
        NetError::AddrNotAvailable => ::libc::EADDRNOTAVAIL,
        NetError::TimedOut => ::libc::ETIMEDOUT,
        NetError::HostUnreachable => ::libc::EHOSTUNREACH,
    }
}

/// Tries `attempt` until it is ready: at once `EAGAIN` if `nonblock`,
/// otherwise parking the thread until the network has had a turn, for at
/// most `timeout` (then `EAGAIN`, as Linux's `SO_RCVTIMEO`/`SO_SNDTIMEO`).
pub fn wait_loop<T>(
    nonblock: bool,
    timeout: Option<Duration>,
    mut attempt: impl FnMut() -> Poll<Res<T>>,
) -> Res<T> {
    let deadline = timeout.map(|t| libos::time::Instant::now() + t);
    loop {
        if let Poll::Ready(r) = attempt() {
            return r;
        }
        if nonblock || deadline.is_some_and(|d| libos::time::Instant::now() >= d) {
            return Err(::libc::EAGAIN);
        }
        super::thread::wait_for_events(deadline);
    }
}

/// The protocol part of a socket.
#[derive(Debug)]
enum Proto {
    Tcp(tcp::Tcp),
    Udp(udp::Udp),
}

/// A socket: an `AF_INET` or `AF_INET6` stream (TCP) or datagram (UDP)
/// socket.
#[derive(Debug)]
pub struct Socket {
    proto: Proto,
    opts: Cell<Opts>,
    /// The pending error (`SO_ERROR`, `POLLERR`): a failed connection
    /// attempt's.
    error: Cell<Option<c_int>>,
    /// `shutdown(SHUT_RD)`: reads return end of stream.
    shut_rd: Cell<bool>,
    /// `shutdown(SHUT_WR)`: writes fail with `EPIPE`.
    shut_wr: Cell<bool>,
    /// Its `epoll` registrations, and the waker the stack wakes them by.
    watch: NetWatch,
}

impl Socket {
    fn new(proto: Proto) -> Self {
        Self {
            proto,
            opts: Cell::new(Opts::default()),
            error: Cell::new(None),
            shut_rd: Cell::new(false),
            shut_wr: Cell::new(false),
            watch: NetWatch::default(),
        }
    }

    /// Registers the socket's waker with the stack again, if anything
    /// watches it (the stack wakes a waker once): with the listener, the
    /// connection or the datagram socket it holds now.
    fn rewatch(&self) {
        let Some(w) = self.watch.waker() else { return };
        match &self.proto {
            Proto::Tcp(t) => match &*t.state.borrow() {
                tcp::State::Listening(l) => l.watch(&w),
                tcp::State::Connecting(c) | tcp::State::Connected(c) => c.watch(&w),
                tcp::State::Fresh { .. } | tcp::State::Closed => {}
            },
            Proto::Udp(u) => {
                if let Some(s) = &*u.sock.borrow() {
                    s.watch(&w);
                }
            }
        }
    }

    /// After a call that changed the socket's state outside the stack
    /// (`bind`, `listen`, `connect`, `shutdown`): watches what it holds
    /// now, and tells its registrations.
    fn changed(&self) {
        if self.watch.waker().is_some() {
            self.rewatch();
            self.watch.notify();
        }
    }

    /// The waker to hand the stack where it takes one: the socket's, if
    /// anything watches it, else none.
    fn stack_waker(&self) -> core::task::Waker {
        self.watch.waker().unwrap_or_else(|| core::task::Waker::noop().clone())
    }

    fn new_tcp(state: tcp::State) -> Self {
        Self::new(Proto::Tcp(tcp::Tcp::new(state)))
    }

    /// An `AF_INET6` socket's: its addresses are reported as
    /// `sockaddr_in6`.
    fn six(&self) -> bool {
        self.opts.get().six
    }

    /// Its own address (port 0 until bound).
    fn local_addr(&self) -> SocketAddrV4 {
        match self.proto {
            Proto::Tcp(_) => self.tcp_local_addr(),
            Proto::Udp(_) => self.udp_local_addr(),
        }
    }

    /// The IPv4 address `g` names for `call` on this socket, with Linux's
    /// answers for what the socket's family does not take:
    ///
    /// * an `AF_INET` socket takes `AF_INET` (`EAFNOSUPPORT` otherwise);
    /// * an `AF_INET6` one takes `AF_INET6`, and `AF_INET` too for UDP's
    ///   `connect` and `sendto`. IPv4-mapped addresses reach the IPv4
    ///   stack, and so does `::` for `bind` (IPv4's any address). Every
    ///   other IPv6 address has no interface (`bind`: `EADDRNOTAVAIL`)
    ///   and no route (`ENETUNREACH`), `::` as a peer (IPv6's loopback)
    ///   included. With `IPV6_V6ONLY` IPv4 is out of its reach (`bind` of
    ///   a mapped address `EINVAL`, the others `ENETUNREACH`, a UDP
    ///   `connect` to `AF_INET` `EAFNOSUPPORT`), and so `bind` of `::`
    ///   finds no address either (`EADDRNOTAVAIL`, where Linux binds).
    fn target(&self, g: addr::Given, call: Call) -> Res<SocketAddrV4> {
        use addr::Given;
        let o = self.opts.get();
        let udp = matches!(self.proto, Proto::Udp(_));
        let no_address =
            if call == Call::Bind { ::libc::EADDRNOTAVAIL } else { ::libc::ENETUNREACH };
        match g {
            Given::V4(a) if !o.six => Ok(a),
            Given::V4(a) if udp && call != Call::Bind => match (o.v6only, call) {
                (false, _) => Ok(a),
                (true, Call::Connect) => Err(::libc::EAFNOSUPPORT),
                (true, _) => Err(::libc::ENETUNREACH),
            },
            Given::Mapped(a) if o.six => match (o.v6only, call) {
                (false, _) => Ok(a),
                (true, Call::Bind) => Err(::libc::EINVAL),
                (true, _) => Err(::libc::ENETUNREACH),
            },
            Given::Any6(port) if o.six && call == Call::Bind && !o.v6only => {
                Ok(SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, port))
            }
            Given::Any6(_) | Given::V6 if o.six => Err(no_address),
            _ => Err(::libc::EAFNOSUPPORT),
        }
    }

    fn kind(&self) -> Kind {
        match self.proto {
            Proto::Tcp(_) => Kind::Stream,
            Proto::Udp(_) => Kind::Datagram,
        }
    }

    fn recv(
        &self,
        buf: &mut [u8],
        flags: c_int,
        nonblock: bool,
    ) -> Res<(usize, usize, Option<SocketAddrV4>)> {
        let peek = flags & ::libc::MSG_PEEK != 0;
        match self.proto {
            Proto::Tcp(_) if flags & ::libc::MSG_TRUNC != 0 => {
                let n = self.tcp_discard_flags(buf.len(), flags, nonblock)?;
                Ok((n, n, None))
            }
            Proto::Tcp(_) => {
                if flags & ::libc::MSG_WAITALL != 0 && !peek && !nonblock {
                    let mut got = 0;
                    while got < buf.len() {
                        match self.tcp_recv(&mut buf[got..], false, false) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(e) if got == 0 => return Err(e),
                            Err(_) => break,
                        }
                    }
                    return Ok((got, got, None));
                }
                let n = self.tcp_recv(buf, peek, nonblock)?;
                Ok((n, n, None))
            }
            Proto::Udp(_) => {
                let (n, len, from) = self.udp_recv(buf, peek, nonblock)?;
                Ok((n, len, Some(from)))
            }
        }
    }

    /// `recv` into a null buffer of `len` (> 0) bytes: Linux discards with
    /// `MSG_TRUNC` on a stream (see [`Socket::tcp_discard`]), and fails with
    /// `EFAULT` otherwise, where it would write to the buffer.
    fn recv_null(&self, len: usize, flags: c_int, nonblock: bool) -> Res<usize> {
        match self.proto {
            Proto::Tcp(_) if flags & ::libc::MSG_TRUNC != 0 => {
                self.tcp_discard_flags(len, flags, nonblock)
            }
            _ => Err(::libc::EFAULT),
        }
    }

    /// [`Socket::tcp_discard`] of `len` bytes with `recv`'s flags:
    /// `MSG_WAITALL` (blocking, not peeking) discards until `len` or the
    /// end of stream.
    fn tcp_discard_flags(&self, len: usize, flags: c_int, nonblock: bool) -> Res<usize> {
        let peek = flags & ::libc::MSG_PEEK != 0;
        if flags & ::libc::MSG_WAITALL == 0 || peek || nonblock {
            return self.tcp_discard(len, peek, nonblock);
        }
        let mut got = 0;
        while got < len {
            match self.tcp_discard(len - got, false, false) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if got == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(got)
    }

    fn send(&self, buf: &[u8], to: Option<SocketAddrV4>, nonblock: bool) -> Res<usize> {
        self.send_vectored(&[buf], to, nonblock)
    }

    /// Sends `bufs` as one send: on TCP one write of the stream (queued
    /// together, without a copy), on UDP one datagram.
    fn send_vectored(
        &self,
        bufs: &[&[u8]],
        to: Option<SocketAddrV4>,
        nonblock: bool,
    ) -> Res<usize> {
        match self.proto {
            // A TCP socket ignores a destination once connected (Linux
            // answers EISCONN only for one not connected).
            Proto::Tcp(_) => self.tcp_send(bufs, nonblock),
            Proto::Udp(_) => match bufs {
                [one] => self.udp_send(one, to, nonblock),
                _ => {
                    let total = bufs.iter().map(|b| b.len()).sum();
                    let mut data = Vec::new();
                    data.try_reserve_exact(total).map_err(|_| ::libc::ENOBUFS)?;
                    for b in bufs {
                        data.extend_from_slice(b);
                    }
                    self.udp_send(&data, to, nonblock)
                }
            },
        }
    }
}

impl File for Socket {
    fn read(&self, open: &Open, buf: &mut [u8]) -> Res<usize> {
        self.recv(buf, 0, nonblocking(open, 0)).map(|(n, _, _)| n)
    }

    fn write(&self, open: &Open, buf: &[u8]) -> Res<usize> {
        self.send(buf, None, nonblocking(open, 0))
    }

    fn write_vectored(&self, open: &Open, bufs: &[&[u8]]) -> Res<usize> {
        self.send_vectored(bufs, None, nonblocking(open, 0))
    }

    fn stat(&self) -> Res<::libc::stat64> {
        // SAFETY: stat64 is plain data; all zeroes is a valid value.
        let mut st: ::libc::stat64 = unsafe { core::mem::zeroed() };
        st.st_mode = ::libc::S_IFSOCK | 0o777;
        st.st_blksize = 4096;
        st.st_nlink = 1;
        Ok(st)
    }

    fn poll(&self) -> Events {
        match self.proto {
            Proto::Tcp(_) => self.tcp_poll(),
            Proto::Udp(_) => self.udp_poll(),
        }
    }

    fn watch(&self, sub: &alloc::rc::Rc<super::watch::Sub>) {
        self.watch.add(sub);
        self.rewatch();
    }

    fn close(&self) -> Res<()> {
        // Its registrations look once more, and find it gone.
        self.watch.notify();
        if let Proto::Tcp(_) = self.proto {
            self.tcp_close();
        } else if let Proto::Udp(u) = &self.proto {
            drop(u.sock.borrow_mut().take());
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// The calls that take an address, for [`Socket::target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Bind,
    Connect,
    SendTo,
}

/// Whether a call on `open` with `flags` must not wait.
fn nonblocking(open: &Open, flags: c_int) -> bool {
    open.flags.get() & ::libc::O_NONBLOCK != 0 || flags & ::libc::MSG_DONTWAIT != 0
}

/// Runs `f` on the socket behind `fd`: `EBADF` for a closed descriptor,
/// `ENOTSOCK` for one that is not a socket.
fn with_socket<R>(fd: c_int, f: impl FnOnce(&Open, &Socket) -> Res<R>) -> Res<R> {
    let open = fd::get(fd)?;
    let s = open.file.as_any().downcast_ref::<Socket>().ok_or(::libc::ENOTSOCK)?;
    f(&open, s)
}

/// Flags `recv`/`send` accept (the others are `EOPNOTSUPP`).
const RECV_FLAGS: c_int = ::libc::MSG_PEEK
    | ::libc::MSG_DONTWAIT
    | ::libc::MSG_WAITALL
    | ::libc::MSG_TRUNC
    | ::libc::MSG_CMSG_CLOEXEC;
const SEND_FLAGS: c_int =
    ::libc::MSG_DONTWAIT | ::libc::MSG_NOSIGNAL | ::libc::MSG_MORE | ::libc::MSG_EOR;

/// `socket(domain, type, protocol)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    fd::ret_int(new_socket(domain, ty, protocol))
}

fn new_socket(domain: c_int, ty: c_int, protocol: c_int) -> Res<c_int> {
    if domain != ::libc::AF_INET && domain != ::libc::AF_INET6 {
        return Err(::libc::EAFNOSUPPORT);
    }
    let flags = ::libc::SOCK_NONBLOCK | ::libc::SOCK_CLOEXEC;
    let sock = match (ty & !flags, protocol) {
        (::libc::SOCK_STREAM, 0 | ::libc::IPPROTO_TCP) => {
            Socket::new_tcp(tcp::State::Fresh { bound: None })
        }
        (::libc::SOCK_DGRAM, 0 | ::libc::IPPROTO_UDP) => {
            Socket::new(Proto::Udp(udp::Udp::default()))
        }
        (::libc::SOCK_STREAM | ::libc::SOCK_DGRAM, _) => return Err(::libc::EPROTONOSUPPORT),
        _ => return Err(::libc::ESOCKTNOSUPPORT),
    };
    sock.opts.set(Opts { six: domain == ::libc::AF_INET6, ..Opts::default() });
    let status =
        ::libc::O_RDWR | if ty & ::libc::SOCK_NONBLOCK != 0 { ::libc::O_NONBLOCK } else { 0 };
    fd::install(fd::new_open(Rc::new(sock), status), ty & ::libc::SOCK_CLOEXEC != 0, 0)
}

/// `bind(fd, addr, len)`.
///
/// # Safety
///
/// `addr` is null or readable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn bind(
    fd: c_int,
    addr: *const ::libc::sockaddr,
    len: ::libc::socklen_t,
) -> c_int {
    // A socket of a pair answers for itself.
    if let Some(r) = super::unix::bind(fd, addr, len) {
        return r;
    }
    fd::ret_int(with_socket(fd, |_, s| {
        // SAFETY: the caller guarantees addr is readable for len bytes.
        let a = s.target(unsafe { addr::read(addr, len, s.six()) }?, Call::Bind)?;
        match s.proto {
            Proto::Tcp(_) => s.tcp_bind(a),
            Proto::Udp(_) => s.udp_bind(a),
        }
        .map(|()| 0)
        .inspect(|_| s.changed())
    }))
}

/// `connect(fd, addr, len)`.
///
/// # Safety
///
/// `addr` is null or readable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn connect(
    fd: c_int,
    addr: *const ::libc::sockaddr,
    len: ::libc::socklen_t,
) -> c_int {
    // A socket of a pair answers for itself.
    if let Some(r) = super::unix::connect(fd, addr, len) {
        return r;
    }
    fd::ret_int(with_socket(fd, |open, s| {
        // SAFETY: the caller guarantees addr is readable for len bytes.
        let g = unsafe { addr::read(addr, len, s.six()) }?;
        let r = match (&s.proto, g) {
            (Proto::Udp(_), addr::Given::Unspec) => s.udp_connect(None),
            (Proto::Tcp(_), g) => {
                s.target(g, Call::Connect).and_then(|a| s.tcp_connect(a, nonblocking(open, 0)))
            }
            (Proto::Udp(_), g) => s.target(g, Call::Connect).and_then(|a| s.udp_connect(Some(a))),
        };
        s.changed();
        r.map(|()| 0)
    }))
}

/// `listen(fd, backlog)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    // A socket of a pair answers for itself.
    if let Some(r) = super::unix::listen(fd, backlog) {
        return r;
    }
    fd::ret_int(with_socket(fd, |_, s| match s.proto {
        Proto::Tcp(_) => s.tcp_listen(backlog).map(|()| 0).inspect(|_| s.changed()),
        Proto::Udp(_) => Err(::libc::EOPNOTSUPP),
    }))
}

/// `accept4(fd, addr, len, flags)`: `SOCK_NONBLOCK` and `SOCK_CLOEXEC`.
///
/// # Safety
///
/// `addr` is null, or `len` points to its size and it is writable for it.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut ::libc::sockaddr,
    len: *mut ::libc::socklen_t,
    flags: c_int,
) -> c_int {
    // A socket of a pair answers for itself.
    if let Some(r) = super::unix::accept4(fd, addr, len, flags) {
        return r;
    }
    let known = ::libc::SOCK_NONBLOCK | ::libc::SOCK_CLOEXEC;
    if flags & !known != 0 {
        return fail(::libc::EINVAL);
    }
    fd::ret_int(with_socket(fd, |open, s| {
        let Proto::Tcp(_) = s.proto else { return Err(::libc::EOPNOTSUPP) };
        let (new, peer) = s.tcp_accept(nonblocking(open, 0))?;
        // Of the listener's family.
        let o = s.opts.get();
        new.opts.set(Opts { six: o.six, v6only: o.v6only, ..new.opts.get() });
        let status = ::libc::O_RDWR
            | if flags & ::libc::SOCK_NONBLOCK != 0 { ::libc::O_NONBLOCK } else { 0 };
        let nfd =
            fd::install(fd::new_open(Rc::new(new), status), flags & ::libc::SOCK_CLOEXEC != 0, 0)?;
        // SAFETY: the caller's contract for addr and len.
        unsafe { addr::write(peer, o.six, addr, len) };
        Ok(nfd)
    }))
}

/// `accept(fd, addr, len)`.
///
/// # Safety
///
/// As [`accept4`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn accept(
    fd: c_int,
    addr: *mut ::libc::sockaddr,
    len: *mut ::libc::socklen_t,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { accept4(fd, addr, len, 0) }
}

/// `getsockname(fd, addr, len)`.
///
/// # Safety
///
/// `addr` is null, or `len` points to its size and it is writable for it.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getsockname(
    fd: c_int,
    addr: *mut ::libc::sockaddr,
    len: *mut ::libc::socklen_t,
) -> c_int {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::getsockname(fd, addr, len) } {
        return r;
    }
    fd::ret_int(with_socket(fd, |_, s| {
        // SAFETY: the caller's contract for addr and len.
        unsafe { addr::write(s.local_addr(), s.six(), addr, len) };
        Ok(0)
    }))
}

/// `getpeername(fd, addr, len)`: `ENOTCONN` unless connected.
///
/// # Safety
///
/// `addr` is null, or `len` points to its size and it is writable for it.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getpeername(
    fd: c_int,
    addr: *mut ::libc::sockaddr,
    len: *mut ::libc::socklen_t,
) -> c_int {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::getpeername(fd, addr, len) } {
        return r;
    }
    fd::ret_int(with_socket(fd, |_, s| {
        let a = match s.proto {
            Proto::Tcp(_) => s.tcp_peer_addr(),
            Proto::Udp(_) => s.udp_peer_addr(),
        }?;
        // SAFETY: the caller's contract for addr and len.
        unsafe { addr::write(a, s.six(), addr, len) };
        Ok(0)
    }))
}

/// `setsockopt(fd, level, name, value, len)`: see [`opts`].
///
/// # Safety
///
/// `value` is readable for `len` bytes (or `len` is 0).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: ::libc::socklen_t,
) -> c_int {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::setsockopt(fd, level, name, value, len) } {
        return r;
    }
    fd::ret_int(with_socket(fd, |_, s| {
        if value.is_null() && len > 0 {
            return Err(::libc::EFAULT);
        }
        let v: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees len readable bytes.
            unsafe { core::slice::from_raw_parts(value.cast(), len as usize) }
        };
        let mut o = s.opts.get();
        // Linux fixes a socket's reach once it is bound.
        if (level, name) == (::libc::IPPROTO_IPV6, ::libc::IPV6_V6ONLY)
            && o.six
            && s.local_addr().port() != 0
        {
            return Err(::libc::EINVAL);
        }
        let what = o.set(s.kind(), level, name, v)?;
        s.opts.set(o);
        match s.proto {
            Proto::Tcp(_) => s.tcp_apply(what),
            Proto::Udp(_) => s.udp_apply(what),
        }
        Ok(0)
    }))
}

/// `getsockopt(fd, level, name, value, len)`: see [`opts`]; `SO_ERROR`
/// (the pending error, cleared), `SO_TYPE`, `SO_ACCEPTCONN` from the socket.
///
/// # Safety
///
/// `len` points to a `socklen_t`, and `value` is writable for that many
/// bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut ::libc::socklen_t,
) -> c_int {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::getsockopt(fd, level, name, value, len) } {
        return r;
    }
    fd::ret_int(with_socket(fd, |_, s| {
        if len.is_null() {
            return Err(::libc::EFAULT);
        }
        let v = match (level, name) {
            (::libc::SOL_SOCKET, ::libc::SO_ERROR) => Value::Int(match s.proto {
                Proto::Tcp(_) => s.tcp_take_error(),
                Proto::Udp(_) => s.error.take().unwrap_or(0),
            }),
            (::libc::SOL_SOCKET, ::libc::SO_TYPE) => Value::Int(match s.kind() {
                Kind::Stream => ::libc::SOCK_STREAM,
                Kind::Datagram => ::libc::SOCK_DGRAM,
            }),
            (::libc::SOL_SOCKET, ::libc::SO_ACCEPTCONN) => {
                Value::Int(c_int::from(matches!(s.proto, Proto::Tcp(_)) && s.tcp_is_listening()))
            }
            _ => s.opts.get().get(s.kind(), level, name)?,
        };
        let (bytes, n) = v.bytes();
        // SAFETY: the caller guarantees len is readable.
        let room = unsafe { len.read() };
        if (room as i32) < 0 {
            return Err(::libc::EINVAL);
        }
        let k = (room as usize).min(n);
        if k > 0 {
            if value.is_null() {
                return Err(::libc::EFAULT);
            }
            // SAFETY: value is writable for *len >= k bytes.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), value.cast::<u8>(), k) };
        }
        // SAFETY: len is writable (the caller's contract).
        unsafe { len.write(k as ::libc::socklen_t) };
        Ok(0)
    }))
}

/// `shutdown(fd, how)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    // A socket of a pair answers for itself.
    if let Some(r) = super::unix::shutdown(fd, how) {
        return r;
    }
    fd::ret_int(with_socket(fd, |_, s| {
        if !matches!(how, ::libc::SHUT_RD | ::libc::SHUT_WR | ::libc::SHUT_RDWR) {
            return Err(::libc::EINVAL);
        }
        match s.proto {
            Proto::Tcp(_) => s.tcp_shutdown(how),
            Proto::Udp(_) => s.udp_shutdown(how),
        }
        .map(|()| 0)
        .inspect(|_| s.changed())
    }))
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

/// The send calls' common part: to the address at `to` (`to_len` bytes)
/// if it is not null. A TCP socket does not read it (Linux's `tcp_sendmsg`
/// does not: a connected stream ignores it, an unconnected one fails as
/// `send` does).
///
/// # Safety
///
/// `to` is null or readable for `to_len` bytes.
unsafe fn send_common(
    fd: c_int,
    bufs: &[&[u8]],
    flags: c_int,
    to: *const ::libc::sockaddr,
    to_len: ::libc::socklen_t,
) -> Res<usize> {
    with_socket(fd, |open, s| {
        let to = if to.is_null() || matches!(s.proto, Proto::Tcp(_)) {
            None
        } else {
            // SAFETY: the caller's contract.
            Some(s.target(unsafe { addr::read(to, to_len, s.six()) }?, Call::SendTo)?)
        };
        if flags & !SEND_FLAGS != 0 {
            return Err(::libc::EOPNOTSUPP);
        }
        s.send_vectored(bufs, to, nonblocking(open, flags))
    })
}

/// A datagram's sender, and whether the socket reports addresses as
/// `sockaddr_in6`.
type Sender = (SocketAddrV4, bool);

/// The receive calls' common part: (bytes, the datagram's full length,
/// its sender).
fn recv_common(fd: c_int, buf: &mut [u8], flags: c_int) -> Res<(usize, usize, Option<Sender>)> {
    with_socket(fd, |open, s| {
        if flags & !RECV_FLAGS != 0 {
            return Err(::libc::EOPNOTSUPP);
        }
        let (n, full, from) = s.recv(buf, flags, nonblocking(open, flags))?;
        Ok((n, full, from.map(|a| (a, s.six()))))
    })
}

/// [`recv_common`] into a null buffer of `len` bytes (see
/// [`Socket::recv_null`]; `recvmsg` of a stream with `MSG_TRUNC` too,
/// whatever its buffers).
fn recv_null_common(fd: c_int, len: usize, flags: c_int) -> Res<usize> {
    with_socket(fd, |open, s| {
        if flags & !RECV_FLAGS != 0 {
            return Err(::libc::EOPNOTSUPP);
        }
        s.recv_null(len, flags, nonblocking(open, flags))
    })
}

/// `send(fd, buf, len, flags)`.
///
/// # Safety
///
/// `buf` is readable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::send(fd, buf, len, flags) } {
        return r;
    }
    // SAFETY: the caller's contract; no address.
    fd::ret(unsafe { send_common(fd, &[bytes(buf, len)], flags, core::ptr::null(), 0) })
}

/// `sendto(fd, buf, len, flags, addr, addrlen)`.
///
/// # Safety
///
/// `buf` is readable for `len` bytes, `addr` null or readable for
/// `addrlen`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const ::libc::sockaddr,
    addrlen: ::libc::socklen_t,
) -> ssize_t {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::sendto(fd, buf, len, flags, addr, addrlen) } {
        return r;
    }
    // SAFETY: the caller's contract.
    fd::ret(unsafe { send_common(fd, &[bytes(buf, len)], flags, addr, addrlen) })
}

/// `recv(fd, buf, len, flags)`.
///
/// # Safety
///
/// `buf` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::recv(fd, buf, len, flags) } {
        return r;
    }
    if buf.is_null() && len > 0 {
        return fd::ret(recv_null_common(fd, len, flags));
    }
    // SAFETY: the caller's contract.
    let buf = unsafe { bytes_mut(buf, len) };
    fd::ret(
        recv_common(fd, buf, flags)
            .map(|(n, full, _)| if flags & ::libc::MSG_TRUNC != 0 { full } else { n }),
    )
}

/// `recvfrom(fd, buf, len, flags, addr, addrlen)`.
///
/// # Safety
///
/// `buf` is writable for `len` bytes; `addr` null, or `addrlen` points to
/// its size and it is writable for it.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut ::libc::sockaddr,
    addrlen: *mut ::libc::socklen_t,
) -> ssize_t {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::recvfrom(fd, buf, len, flags, addr, addrlen) } {
        return r;
    }
    if buf.is_null() && len > 0 {
        return fd::ret(recv_null_common(fd, len, flags).inspect(|_| {
            // A stream socket leaves the address alone (Linux: length 0).
            if !addrlen.is_null() && !addr.is_null() {
                // SAFETY: the caller's contract.
                unsafe { addrlen.write(0) }
            }
        }));
    }
    // SAFETY: the caller's contract.
    let buf = unsafe { bytes_mut(buf, len) };
    fd::ret(recv_common(fd, buf, flags).map(|(n, full, from)| {
        match from {
            // SAFETY: the caller's contract for addr and addrlen.
            Some((a, six)) => unsafe { addr::write(a, six, addr, addrlen) },
            // A stream socket leaves the address alone (Linux: length 0).
            None if !addrlen.is_null() && !addr.is_null() => {
                // SAFETY: the caller's contract.
                unsafe { addrlen.write(0) }
            }
            None => {}
        }
        if flags & ::libc::MSG_TRUNC != 0 { full } else { n }
    }))
}

/// `recvmsg` of a stream socket into `iov`, without `MSG_PEEK` or
/// `MSG_TRUNC`: each buffer in turn, as `readv`. The first read waits as
/// `flags` say; the next ones take what has already arrived (all of each
/// buffer with `MSG_WAITALL`), stopping at a short read or an error after
/// some bytes.
///
/// # Safety
///
/// Each buffer of `iov` is writable for its length.
unsafe fn recv_stream_vectored(fd: c_int, iov: &[::libc::iovec], flags: c_int) -> Res<usize> {
    let mut done = 0;
    for v in iov.iter().filter(|v| v.iov_len > 0) {
        let more = if done == 0 || flags & ::libc::MSG_WAITALL != 0 {
            flags
        } else {
            flags | ::libc::MSG_DONTWAIT
        };
        // A null buffer of a non-zero length: Linux's EFAULT.
        if v.iov_base.is_null() {
            return if done == 0 { Err(::libc::EFAULT) } else { Ok(done) };
        }
        // SAFETY: the caller's contract.
        let buf = unsafe { bytes_mut(v.iov_base, v.iov_len) };
        match recv_common(fd, buf, more) {
            Ok((n, _, _)) => {
                done += n;
                if n < v.iov_len {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// The buffers of a `msghdr`'s `iovec`s.
///
/// # Safety
///
/// `msg.msg_iov` holds `msg.msg_iovlen` entries (or is unused for 0).
unsafe fn iovecs(msg: &::libc::msghdr) -> &[::libc::iovec] {
    if msg.msg_iovlen == 0 || msg.msg_iov.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(msg.msg_iov, msg.msg_iovlen) }
}

/// `sendmsg(fd, msg, flags)`: the buffers gathered into one send (on TCP
/// one write of the stream, queued together as `writev`'s; on UDP one
/// datagram); control messages are not supported (`EOPNOTSUPP`).
///
/// # Safety
///
/// `msg` is a valid `msghdr` whose buffers and name are readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const ::libc::msghdr, flags: c_int) -> ssize_t {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::sendmsg(fd, msg, flags) } {
        return r;
    }
    // SAFETY: the caller guarantees a valid msghdr.
    let msg = unsafe { &*msg };
    if msg.msg_controllen != 0 {
        return fail_size(::libc::EOPNOTSUPP);
    }
    // SAFETY: the caller's contract for the iovecs.
    let iov = unsafe { iovecs(msg) };
    // SAFETY: iov's entries are the caller's, readable for their lengths.
    let bufs = match unsafe { fd::iovec_slices(iov.as_ptr(), iov.len()) } {
        Ok(b) => b,
        Err(e) => return fail_size(e),
    };
    // SAFETY: the caller's contract for the name.
    fd::ret(unsafe { send_common(fd, &bufs, flags, msg.msg_name.cast(), msg.msg_namelen) })
}

/// `recvmsg(fd, msg, flags)`: into the buffers in turn; the sender into
/// the name; `MSG_TRUNC` in `msg_flags` for a datagram cut short; no
/// control messages (`msg_controllen` set to 0).
///
/// # Safety
///
/// `msg` is a valid `msghdr` whose buffers and name are writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut ::libc::msghdr, flags: c_int) -> ssize_t {
    // A socket of a pair answers for itself.
    // SAFETY: the caller's contract is the same.
    if let Some(r) = unsafe { super::unix::recvmsg(fd, msg, flags) } {
        return r;
    }
    // SAFETY: the caller guarantees a valid msghdr.
    let msg = unsafe { &mut *msg };
    // SAFETY: the caller's contract for the iovecs.
    let iov = unsafe { iovecs(msg) };
    let total: usize = iov.iter().map(|v| v.iov_len).sum();
    let stream = with_socket(fd, |_, s| Ok(matches!(s.proto, Proto::Tcp(_)))).unwrap_or(false);
    if stream && (flags & ::libc::MSG_PEEK == 0 || flags & ::libc::MSG_TRUNC != 0) {
        let r = if flags & ::libc::MSG_TRUNC != 0 {
            // Discarded (or with MSG_PEEK counted), the buffers untouched.
            recv_null_common(fd, total, flags)
        } else {
            // A stream's bytes go straight into the buffers, each in turn
            // as `readv`'s, without a buffer of their own (a peek of
            // several buffers takes the way below).
            // SAFETY: the caller's contract for the iovecs.
            unsafe { recv_stream_vectored(fd, iov, flags) }
        };
        msg.msg_namelen = 0;
        msg.msg_controllen = 0;
        msg.msg_flags = 0;
        return fd::ret(r);
    }
    let mut data = Vec::new();
    if data.try_reserve_exact(total).is_err() {
        return fail_size(::libc::ENOBUFS);
    }
    data.resize(total, 0);
    let (n, full, from) = match recv_common(fd, &mut data, flags) {
        Ok(r) => r,
        Err(e) => return fail_size(e),
    };
    let mut at = 0;
    for v in iov {
        let k = v.iov_len.min(n - at);
        // SAFETY: each buffer is writable for its length (k <= it).
        unsafe { bytes_mut(v.iov_base, k) }.copy_from_slice(&data[at..at + k]);
        at += k;
    }
    match from {
        Some((a, six)) if !msg.msg_name.is_null() => {
            // SAFETY: the caller's contract for the name.
            unsafe { addr::write(a, six, msg.msg_name.cast(), &mut msg.msg_namelen) }
        }
        _ => msg.msg_namelen = 0,
    }
    msg.msg_controllen = 0;
    msg.msg_flags = if full > n { ::libc::MSG_TRUNC } else { 0 };
    (if flags & ::libc::MSG_TRUNC != 0 { full } else { n }) as ssize_t
}

#[cfg(test)]
mod tests;
