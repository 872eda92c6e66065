//! TCP sockets: a state machine over libos's listener and stream, with
//! Linux's answers in each state.
//!
//! | state | how it comes | what it holds |
//! |---|---|---|
//! | fresh | `socket`, or `bind` | the bound address (its port reserved) |
//! | listening | `listen` | a libos [`TcpListener`] |
//! | connecting | `connect` | a libos [`TcpStream`], SYN sent |
//! | connected | established, or `accept` | the stream |
//! | closed | the attempt failed | nothing (`connect` may try again) |

use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::Poll;

use libos::net::{LeanBuffers, NetError, TcpListener, TcpOptions, TcpStream};

use super::super::c_int;
use super::super::fd::{Events, Res};
use super::super::start::Lock;
use super::opts::{AUTO_RCVBUF, AUTO_RCVBUF_CONNECTIONS};
use super::{Socket, errno, wait_loop};

/// The ports of sockets bound and not listening or connected yet (once per
/// socket): a `bind` without `SO_REUSEADDR` does not take one of them.
static RESERVED: Lock<alloc::vec::Vec<u16>> = Lock::new(alloc::vec::Vec::new());

/// Most connections a listener holds unaccepted, per interface (Linux's
/// `somaxconn` before 5.4); a larger or negative backlog gets this.
pub const SOMAXCONN: usize = 128;

/// A TCP socket's state.
#[derive(Debug)]
pub enum State {
    Fresh { bound: Option<SocketAddrV4> },
    Listening(TcpListener),
    Connecting(TcpStream),
    Connected(TcpStream),
    Closed,
}

/// The TCP part of a socket.
#[derive(Debug)]
pub struct Tcp {
    pub state: core::cell::RefCell<State>,
    /// Whether the connection's reset was reported (by a read, a write
    /// or `SO_ERROR`): afterwards reads see end of stream and writes
    /// `EPIPE`, as on Linux.
    pub reset_reported: core::cell::Cell<bool>,
}

impl Tcp {
    pub fn new(state: State) -> Self {
        Self {
            state: core::cell::RefCell::new(state),
            reset_reported: core::cell::Cell::new(false),
        }
    }
}

fn unreserve(port: u16) {
    RESERVED.with(|r| {
        if let Some(i) = r.iter().position(|&p| p == port) {
            r.swap_remove(i);
        }
    });
}

fn reserved(port: u16) -> bool {
    RESERVED.with(|r| r.contains(&port))
}

/// A free ephemeral port for a `bind` to port 0.
fn ephemeral() -> Res<u16> {
    static NEXT: Lock<u16> = Lock::new(0);
    for _ in 0..16384 {
        let p = NEXT.with(|n| {
            if *n == 0 {
                *n = libos::time::Instant::now().as_duration().subsec_nanos() as u16 | 1;
            }
            *n = n.wrapping_add(1);
            49152 + *n % 16384
        });
        if !libos::net::tcp_port_in_use(p) && !reserved(p) {
            return Ok(p);
        }
    }
    Err(::libc::EADDRINUSE)
}

/// Linux's errno for an address no interface has (or no network at all).
fn bind_errno(e: NetError) -> c_int {
    match e {
        NetError::NoInterface | NetError::AddrNotAvailable => ::libc::EADDRNOTAVAIL,
        e => errno(e),
    }
}

impl Socket {
    fn tcp(&self) -> &Tcp {
        match &self.proto {
            super::Proto::Tcp(t) => t,
            super::Proto::Udp(_) => unreachable!("a TCP call on a UDP socket"),
        }
    }

    /// The stack's options for a connection of this socket (`backlog`
    /// `None`) or for its listener: a listener's first connections get
    /// [`AUTO_RCVBUF`] unless the program set `SO_RCVBUF`.
    fn tcp_options(&self, backlog: Option<usize>) -> TcpOptions {
        let o = self.opts.get();
        let auto = backlog.is_some() && !o.rcvbuf_set && o.rcvbuf < AUTO_RCVBUF;
        TcpOptions {
            backlog: backlog.unwrap_or(1),
            rx_buffer: if auto { AUTO_RCVBUF } else { o.rcvbuf },
            tx_buffer: o.sndbuf,
            nodelay: o.nodelay,
            ack_delay: o.ack_delay(),
            max_connections: usize::MAX,
            lean: auto.then_some(LeanBuffers {
                after: AUTO_RCVBUF_CONNECTIONS,
                rx_buffer: o.rcvbuf,
                tx_buffer: o.sndbuf,
            }),
        }
    }

    /// Tells `stream` the options a connection takes after it is made.
    pub(super) fn apply_to_stream(&self, stream: &TcpStream) {
        let o = self.opts.get();
        stream.set_nodelay(o.nodelay);
        stream.set_keep_alive(o.keep_alive());
        stream.set_hop_limit((o.ttl != 64).then_some(o.ttl));
        stream.set_ack_delay(o.ack_delay());
        if let Some(t) = o.silence_timeout() {
            stream.set_timeout(Some(t));
        }
    }

    pub(super) fn tcp_bind(&self, addr: SocketAddrV4) -> Res<()> {
        let t = self.tcp();
        let mut state = t.state.borrow_mut();
        let State::Fresh { bound: None } = *state else { return Err(::libc::EINVAL) };
        libos::net::is_local_address(*addr.ip()).map_err(bind_errno)?;
        let port = match addr.port() {
            0 => ephemeral()?,
            p if libos::net::tcp_port_listened(p) => return Err(::libc::EADDRINUSE),
            p if !self.opts.get().reuseaddr && (libos::net::tcp_port_in_use(p) || reserved(p)) => {
                return Err(::libc::EADDRINUSE);
            }
            p => p,
        };
        RESERVED.with(|r| r.try_reserve(1).map(|()| r.push(port))).map_err(|_| ::libc::ENOMEM)?;
        *state = State::Fresh { bound: Some(SocketAddrV4::new(*addr.ip(), port)) };
        Ok(())
    }

    pub(super) fn tcp_listen(&self, backlog: c_int) -> Res<()> {
        let t = self.tcp();
        let mut state = t.state.borrow_mut();
        let bound = match *state {
            State::Fresh { bound } => bound,
            State::Listening(_) => return Ok(()),
            _ => return Err(::libc::EINVAL),
        };
        let backlog = usize::try_from(backlog).map_or(SOMAXCONN, |b| b.clamp(1, SOMAXCONN));
        let addr = bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        if let Some(b) = bound {
            unreserve(b.port());
        }
        match TcpListener::bind_addr(addr, self.tcp_options(Some(backlog))) {
            Ok(l) => {
                *state = State::Listening(l);
                Ok(())
            }
            Err(e) => {
                if let Some(b) = bound {
                    RESERVED.with(|r| r.push(b.port()));
                }
                Err(bind_errno(e))
            }
        }
    }

    /// Accepts a connection: the new socket (inheriting this one's
    /// options) and the peer's address.
    pub(super) fn tcp_accept(&self, nonblock: bool) -> Res<(Socket, SocketAddrV4)> {
        let t = self.tcp();
        let waker = self.stack_waker();
        let (stream, peer) =
            wait_loop(nonblock, self.opts.get().rcvtimeo, || match &*t.state.borrow() {
                // With the socket's waker, if watched: the listener wakes
                // it for the connections that come later.
                State::Listening(l) => l.poll_accept(&waker).map(|r| r.map_err(errno)),
                _ => Poll::Ready(Err(::libc::EINVAL)),
            })?;
        let s = Socket::new_tcp(State::Connected(stream));
        s.opts.set(self.opts.get());
        if let State::Connected(stream) = &*s.tcp().state.borrow() {
            s.apply_to_stream(stream);
        }
        Ok((s, peer))
    }

    /// Moves a connection attempt on to connected or closed, once the
    /// stack knows; a failure becomes the pending error (`SO_ERROR`).
    pub(super) fn settle(&self) {
        let t = self.tcp();
        let mut state = t.state.borrow_mut();
        let State::Connecting(stream) = &*state else { return };
        match stream.poll_connect(&self.stack_waker()) {
            Poll::Pending => {}
            Poll::Ready(Ok(())) => {
                let State::Connecting(stream) = core::mem::replace(&mut *state, State::Closed)
                else {
                    unreachable!()
                };
                // The attempt's limit no longer applies; the socket's does.
                stream.set_timeout(self.opts.get().silence_timeout());
                *state = State::Connected(stream);
            }
            Poll::Ready(Err(e)) => {
                *state = State::Closed;
                self.error.set(Some(errno(e)));
            }
        }
    }

    pub(super) fn tcp_connect(&self, addr: SocketAddrV4, nonblock: bool) -> Res<()> {
        let t = self.tcp();
        self.settle();
        {
            let mut state = t.state.borrow_mut();
            let bound = match &*state {
                State::Connected(_) | State::Listening(_) => return Err(::libc::EISCONN),
                State::Connecting(_) if nonblock => return Err(::libc::EALREADY),
                State::Connecting(_) => None,
                State::Fresh { bound } => Some(*bound),
                State::Closed => Some(None),
            };
            if let Some(bound) = bound {
                if let Some(b) = bound {
                    unreserve(b.port());
                }
                let stream =
                    TcpStream::connect_start(addr, bound, self.tcp_options(None)).map_err(|e| {
                        match e {
                            NetError::InvalidAddress => ::libc::ECONNREFUSED,
                            e => errno(e),
                        }
                    });
                let stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        if let Some(b) = bound {
                            RESERVED.with(|r| r.push(b.port()));
                        }
                        return Err(e);
                    }
                };
                self.apply_to_stream(&stream);
                stream.set_timeout(Some(libos::net::CONNECT_TIMEOUT));
                *state = State::Connecting(stream);
                self.error.set(None);
                t.reset_reported.set(false);
            }
        }
        // The SYN leaves now, not when this thread next blocks.
        super::super::thread::poll_devices();
        if nonblock {
            self.settle();
            return match &*t.state.borrow() {
                State::Connected(_) => Ok(()),
                State::Closed => Err(self.error.take().unwrap_or(::libc::ECONNREFUSED)),
                _ => Err(::libc::EINPROGRESS),
            };
        }
        let r = wait_loop(false, self.opts.get().sndtimeo, || {
            self.settle();
            match &*t.state.borrow() {
                State::Connected(_) => Poll::Ready(Ok(())),
                State::Connecting(_) => Poll::Pending,
                _ => Poll::Ready(Err(self.error.take().unwrap_or(::libc::ECONNREFUSED))),
            }
        });
        // A send timeout interrupts a blocking connect: Linux says so.
        r.map_err(|e| if e == ::libc::EAGAIN { ::libc::EINPROGRESS } else { e })
    }

    /// The pending error as a read or write reports it: a reset once,
    /// then end of stream (reads) or `EPIPE` (writes).
    fn take_reset(&self) -> bool {
        let t = self.tcp();
        self.error.take();
        !t.reset_reported.replace(true)
    }

    /// The connected stream in `state`, or what a read or write gets
    /// instead: pending while connecting; once closed, the pending error
    /// (`SO_ERROR`) or else `otherwise`; `otherwise` in any other state.
    fn stream_of<'s, T>(
        &self,
        state: &'s State,
        otherwise: c_int,
    ) -> Result<&'s TcpStream, Poll<Res<T>>> {
        match state {
            State::Connected(s) => Ok(s),
            State::Connecting(_) => Err(Poll::Pending),
            State::Closed => Err(Poll::Ready(Err(self.error.take().unwrap_or(otherwise)))),
            _ => Err(Poll::Ready(Err(otherwise))),
        }
    }

    pub(super) fn tcp_recv(&self, buf: &mut [u8], peek: bool, nonblock: bool) -> Res<usize> {
        let t = self.tcp();
        wait_loop(nonblock, self.opts.get().rcvtimeo, || {
            if self.shut_rd.get() {
                return Poll::Ready(Ok(0));
            }
            self.settle();
            let state = t.state.borrow();
            let stream = match self.stream_of(&state, ::libc::ENOTCONN) {
                Ok(s) => s,
                Err(p) => return p,
            };
            match stream.try_read(buf, peek) {
                Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
                Poll::Ready(Err(NetError::ConnectionReset)) => {
                    Poll::Ready(if self.take_reset() { Err(::libc::ECONNRESET) } else { Ok(0) })
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(errno(e))),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// `recv` with `MSG_TRUNC`, as Linux does it on a stream: up to `len`
    /// bytes are discarded where they lie in the receive buffer (with
    /// `peek`, counted and left), never copied; the caller's buffer is not
    /// touched. Blocking, timeouts, end of stream and resets as
    /// [`tcp_recv`](Self::tcp_recv).
    pub(super) fn tcp_discard(&self, len: usize, peek: bool, nonblock: bool) -> Res<usize> {
        let t = self.tcp();
        wait_loop(nonblock, self.opts.get().rcvtimeo, || {
            if self.shut_rd.get() || len == 0 {
                return Poll::Ready(Ok(0));
            }
            self.settle();
            let state = t.state.borrow();
            let stream = match self.stream_of(&state, ::libc::ENOTCONN) {
                Ok(s) => s,
                Err(p) => return p,
            };
            let take = |want: usize| {
                move |data: &[u8]| {
                    let n = data.len().min(want);
                    (if peek { 0 } else { n }, n)
                }
            };
            match stream.try_read_with(take(len)) {
                Poll::Ready(Ok(Some(mut n))) => {
                    if peek {
                        // All that has arrived counts, past the ring's wrap too.
                        n = len.min(stream.status().recv_queue);
                    } else {
                        // The rest, after the ring's wrap.
                        while n < len {
                            match stream.try_read_with(take(len - n)) {
                                Poll::Ready(Ok(Some(k))) if k > 0 => n += k,
                                _ => break,
                            }
                        }
                    }
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Ok(None)) => Poll::Ready(Ok(0)),
                Poll::Ready(Err(NetError::ConnectionReset)) => {
                    Poll::Ready(if self.take_reset() { Err(::libc::ECONNRESET) } else { Ok(0) })
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(errno(e))),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Sends `bufs` one after the other, as one write of the stream (see
    /// libos's `TcpStream::poll_write_vectored`): blocking, all of it (or
    /// what was queued when the send timeout passed); nonblocking, what
    /// fits.
    pub(super) fn tcp_send(&self, bufs: &[&[u8]], nonblock: bool) -> Res<usize> {
        let t = self.tcp();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut done = 0;
        // What is left to send: the buffers from `first`, the first of
        // them from `skip`.
        let (mut first, mut skip) = (0, 0);
        let mut rest: alloc::vec::Vec<&[u8]> = alloc::vec::Vec::new();
        let r = wait_loop(nonblock, self.opts.get().sndtimeo, || {
            if self.shut_wr.get() {
                return Poll::Ready(Err(::libc::EPIPE));
            }
            self.settle();
            let state = t.state.borrow();
            let stream = match self.stream_of(&state, ::libc::EPIPE) {
                Ok(s) => s,
                Err(p) => return p,
            };
            rest.clear();
            rest.extend(bufs[first..].iter().enumerate().map(|(k, b)| match k {
                0 => &b[skip..],
                _ => *b,
            }));
            match stream.try_write_vectored(&rest) {
                Poll::Ready(Ok(sent)) => {
                    done += sent;
                    let mut n = sent + skip;
                    while first < bufs.len() && n >= bufs[first].len() && n > 0 {
                        n -= bufs[first].len();
                        first += 1;
                    }
                    skip = n;
                    // Sent at the next network turn, at the latest when
                    // this thread blocks, yields or parks: the replies a
                    // server writes one by one leave together.
                    super::super::thread::send_soon(sent);
                    if done == total || nonblock { Poll::Ready(Ok(done)) } else { Poll::Pending }
                }
                Poll::Ready(Err(NetError::ConnectionReset)) => {
                    Poll::Ready(Err(if self.take_reset() {
                        ::libc::ECONNRESET
                    } else {
                        ::libc::EPIPE
                    }))
                }
                Poll::Ready(Err(_)) => Poll::Ready(Err(::libc::EPIPE)),
                Poll::Pending => Poll::Pending,
            }
        });
        match r {
            Err(e) if done > 0 && (e == ::libc::EAGAIN || e == ::libc::EPIPE) => Ok(done),
            r => r,
        }
    }

    pub(super) fn tcp_shutdown(&self, how: c_int) -> Res<()> {
        self.settle();
        let state = self.tcp().state.borrow();
        let State::Connected(stream) = &*state else { return Err(::libc::ENOTCONN) };
        if how == ::libc::SHUT_RD || how == ::libc::SHUT_RDWR {
            self.shut_rd.set(true);
        }
        if how == ::libc::SHUT_WR || how == ::libc::SHUT_RDWR {
            self.shut_wr.set(true);
            stream.shutdown();
            drop(state);
            super::super::thread::poll_devices();
        }
        Ok(())
    }

    pub(super) fn tcp_close(&self) {
        let old = self.tcp().state.replace(State::Closed);
        match old {
            State::Fresh { bound: Some(b) } => unreserve(b.port()),
            State::Connected(s) | State::Connecting(s) => {
                // SO_LINGER with 0 s, or unread data: reset, as Linux does.
                let unread = s.status().recv_queue > 0;
                if self.opts.get().linger == Some(0) || unread {
                    s.abort();
                } else {
                    drop(s);
                }
                super::super::thread::poll_devices();
            }
            _ => {}
        }
    }

    pub(super) fn tcp_poll(&self) -> Events {
        use ::libc::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP};
        let t = self.tcp();
        self.settle();
        self.rewatch();
        let state = t.state.borrow();
        let shut = if self.shut_rd.get() { POLLIN | POLLRDHUP } else { 0 };
        let err = if self.error.get().is_some() { POLLERR } else { 0 };
        match &*state {
            State::Fresh { .. } => POLLOUT | POLLHUP | shut,
            State::Listening(l) => {
                if l.is_acceptable() {
                    POLLIN
                } else {
                    0
                }
            }
            State::Connecting(_) => 0,
            State::Closed => POLLIN | POLLOUT | POLLHUP | POLLRDHUP | err,
            State::Connected(s) => {
                let st = s.status();
                if st.error.is_some() {
                    // Reset: reported once (POLLERR), as SO_ERROR.
                    let pending = !t.reset_reported.get();
                    return POLLIN
                        | POLLOUT
                        | POLLHUP
                        | POLLRDHUP
                        | if pending { POLLERR } else { 0 };
                }
                let mut ev = shut | err;
                if st.recv_queue > 0 || st.peer_closed {
                    ev |= POLLIN;
                }
                if st.peer_closed {
                    ev |= POLLRDHUP;
                }
                if self.shut_wr.get() || st.send_room > 0 {
                    ev |= POLLOUT;
                }
                if st.closed || st.peer_closed && self.shut_wr.get() {
                    ev |= POLLHUP;
                }
                ev
            }
        }
    }

    /// `SO_ERROR`: the pending error, cleared.
    pub(super) fn tcp_take_error(&self) -> c_int {
        self.settle();
        if let Some(e) = self.error.take() {
            return e;
        }
        if let State::Connected(s) = &*self.tcp().state.borrow()
            && s.status().error.is_some()
            && !self.tcp().reset_reported.replace(true)
        {
            return ::libc::ECONNRESET;
        }
        0
    }

    pub(super) fn tcp_local_addr(&self) -> SocketAddrV4 {
        let unspec = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        match &*self.tcp().state.borrow() {
            State::Fresh { bound } => bound.unwrap_or(unspec),
            State::Listening(l) => l.local_addr(),
            State::Connecting(s) | State::Connected(s) => s.local_addr().unwrap_or(unspec),
            State::Closed => unspec,
        }
    }

    pub(super) fn tcp_peer_addr(&self) -> Res<SocketAddrV4> {
        self.settle();
        match &*self.tcp().state.borrow() {
            State::Connected(s) => s.peer_addr().ok_or(::libc::ENOTCONN),
            _ => Err(::libc::ENOTCONN),
        }
    }

    pub(super) fn tcp_is_listening(&self) -> bool {
        matches!(&*self.tcp().state.borrow(), State::Listening(_))
    }

    /// Tells a live connection an option that changed.
    pub(super) fn tcp_apply(&self, what: super::opts::Apply) {
        use super::opts::Apply;
        let state = self.tcp().state.borrow();
        let (State::Connected(s) | State::Connecting(s)) = &*state else { return };
        let o = self.opts.get();
        match what {
            Apply::Nothing => {}
            Apply::Nodelay => s.set_nodelay(o.nodelay),
            Apply::KeepAlive | Apply::UserTimeout => {
                s.set_keep_alive(o.keep_alive());
                if matches!(&*state, State::Connected(_)) {
                    s.set_timeout(o.silence_timeout());
                }
            }
            Apply::Ttl => s.set_hop_limit((o.ttl != 64).then_some(o.ttl)),
            Apply::AckDelay => s.set_ack_delay(o.ack_delay()),
        }
    }
}
