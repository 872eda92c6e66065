//! UDP sockets over libos's [`UdpSocket`]: bound on `bind` (or on the
//! first send or `connect`, to an ephemeral port, as Linux autobinds), and
//! a peer that `connect` sets: the default destination, and the only
//! source whose datagrams are received.

use core::cell::{Cell, RefCell};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::Poll;

use libos::net::{NetError, UdpOptions, UdpSocket};

use super::super::c_int;
use super::super::fd::{Events, Res};
use super::{Socket, errno, wait_loop};

/// Datagrams queued per direction.
const QUEUE: usize = 64;

/// The UDP part of a socket.
#[derive(Debug, Default)]
pub struct Udp {
    pub sock: RefCell<Option<UdpSocket>>,
    pub peer: Cell<Option<SocketAddrV4>>,
}

impl Socket {
    fn udp(&self) -> &Udp {
        match &self.proto {
            super::Proto::Udp(u) => u,
            super::Proto::Tcp(_) => unreachable!("a UDP call on a TCP socket"),
        }
    }

    pub(super) fn udp_bind(&self, addr: SocketAddrV4) -> Res<()> {
        let u = self.udp();
        let mut sock = u.sock.borrow_mut();
        if sock.is_some() {
            return Err(::libc::EINVAL);
        }
        let o = self.opts.get();
        let opts = UdpOptions { queue: QUEUE, rx_buffer: o.rcvbuf, tx_buffer: o.sndbuf };
        let s = UdpSocket::bind_addr(addr, opts).map_err(|e| match e {
            NetError::NoInterface | NetError::AddrNotAvailable => ::libc::EADDRNOTAVAIL,
            e => errno(e),
        })?;
        if o.ttl != 64 {
            s.set_hop_limit(Some(o.ttl));
        }
        if let Some(w) = self.watch.waker() {
            s.watch(&w);
        }
        *sock = Some(s);
        Ok(())
    }

    /// Binds to an ephemeral port on every interface unless bound.
    fn autobind(&self) -> Res<()> {
        if self.udp().sock.borrow().is_some() {
            return Ok(());
        }
        self.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
    }

    pub(super) fn udp_connect(&self, to: Option<SocketAddrV4>) -> Res<()> {
        let u = self.udp();
        let Some(to) = to else {
            u.peer.set(None);
            return Ok(());
        };
        if libos::net::source_address(*to.ip()).is_none() {
            return Err(::libc::ENETUNREACH);
        }
        self.autobind()?;
        u.peer.set(Some(to));
        // An earlier socket's error is not this one's.
        let _ = self.udp_refused(true);
        Ok(())
    }

    /// Whether the connected peer answered a datagram with an ICMP port
    /// unreachable: Linux's pending `ECONNREFUSED`, reported once by the
    /// next receive or send (`take`) and as `POLLERR` until then. Only a
    /// connected socket hears of it, as on Linux without `IP_RECVERR`.
    fn udp_refused(&self, take: bool) -> bool {
        let u = self.udp();
        let Some(peer) = u.peer.get() else { return false };
        let sock = u.sock.borrow();
        sock.as_ref().is_some_and(|s| s.port_unreachable(peer, take))
    }

    pub(super) fn udp_send(
        &self,
        buf: &[u8],
        to: Option<SocketAddrV4>,
        nonblock: bool,
    ) -> Res<usize> {
        let u = self.udp();
        if self.shut_wr.get() {
            return Err(::libc::EPIPE);
        }
        let to = to.or(u.peer.get()).ok_or(::libc::EDESTADDRREQ)?;
        if self.udp_refused(true) {
            return Err(::libc::ECONNREFUSED);
        }
        if to.ip().is_broadcast() && !self.opts.get().broadcast {
            return Err(::libc::EACCES);
        }
        self.autobind()?;
        let n = wait_loop(nonblock, self.opts.get().sndtimeo, || {
            let sock = u.sock.borrow();
            let Some(s) = sock.as_ref() else { return Poll::Ready(Err(::libc::EINVAL)) };
            s.try_send_to(buf, to).map(|r| r.map_err(errno))
        })?;
        super::super::thread::send_soon(n);
        Ok(n)
    }

    /// Receives a datagram: (bytes copied, its full length, sender). A
    /// connected socket drops datagrams from other sources.
    pub(super) fn udp_recv(
        &self,
        buf: &mut [u8],
        peek: bool,
        nonblock: bool,
    ) -> Res<(usize, usize, SocketAddrV4)> {
        let u = self.udp();
        wait_loop(nonblock, self.opts.get().rcvtimeo, || {
            if self.shut_rd.get() {
                return Poll::Ready(Ok((0, 0, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))));
            }
            if self.udp_refused(true) {
                return Poll::Ready(Err(::libc::ECONNREFUSED));
            }
            let sock = u.sock.borrow();
            // Unbound: nothing can arrive (Linux waits too).
            let Some(s) = sock.as_ref() else { return Poll::Pending };
            loop {
                match s.try_recv_from(buf, peek) {
                    Poll::Ready((_, _, from)) if u.peer.get().is_some_and(|p| p != from) => {
                        if peek {
                            let _ = s.try_recv_from(&mut [], false);
                        }
                    }
                    Poll::Ready(r) => return Poll::Ready(Ok(r)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
    }

    pub(super) fn udp_shutdown(&self, how: c_int) -> Res<()> {
        if self.udp().peer.get().is_none() {
            return Err(::libc::ENOTCONN);
        }
        if how == ::libc::SHUT_RD || how == ::libc::SHUT_RDWR {
            self.shut_rd.set(true);
        }
        if how == ::libc::SHUT_WR || how == ::libc::SHUT_RDWR {
            self.shut_wr.set(true);
        }
        Ok(())
    }

    pub(super) fn udp_poll(&self) -> Events {
        self.rewatch();
        let sock = self.udp().sock.borrow();
        let mut ev = 0;
        match sock.as_ref() {
            Some(s) => {
                if s.readable() {
                    ev |= ::libc::POLLIN;
                }
                if s.writable() {
                    ev |= ::libc::POLLOUT;
                }
            }
            None => ev |= ::libc::POLLOUT,
        }
        if self.shut_rd.get() {
            ev |= ::libc::POLLIN | ::libc::POLLRDHUP;
        }
        if self.shut_rd.get() && self.shut_wr.get() {
            ev |= ::libc::POLLHUP;
        }
        if self.udp_refused(false) {
            ev |= ::libc::POLLERR;
        }
        ev
    }

    pub(super) fn udp_local_addr(&self) -> SocketAddrV4 {
        let u = self.udp();
        let Some(local) = u.sock.borrow().as_ref().map(UdpSocket::local_addr) else {
            return SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        };
        match u.peer.get() {
            // Connected: the address it sends from, as Linux shows.
            Some(p) if local.ip().is_unspecified() => {
                let ip = libos::net::source_address(*p.ip()).unwrap_or(Ipv4Addr::UNSPECIFIED);
                SocketAddrV4::new(ip, local.port())
            }
            _ => local,
        }
    }

    pub(super) fn udp_peer_addr(&self) -> Res<SocketAddrV4> {
        self.udp().peer.get().ok_or(::libc::ENOTCONN)
    }

    pub(super) fn udp_apply(&self, what: super::opts::Apply) {
        if what == super::opts::Apply::Ttl
            && let Some(s) = self.udp().sock.borrow().as_ref()
        {
            let ttl = self.opts.get().ttl;
            s.set_hop_limit((ttl != 64).then_some(ttl));
        }
    }
}
