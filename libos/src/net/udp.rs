//! UDP sockets, bound on every interface (or on the one holding a given
//! address).
//!
//! The synchronous calls (`try_recv_from`, `try_send_to`, `readable`,
//! `writable`) are the one implementation; the async ones wait on them.

use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicU16, Ordering};
use core::task::{Poll, Waker};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata};
use smoltcp::wire::IpListenEndpoint;

use super::{Ipv4Addr, NetError, STACK, SocketAddrV4, Stack};
use crate::time::Instant;

/// Buffer sizes, chosen when the socket is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOptions {
    /// Datagrams queued per direction.
    pub queue: usize,
    /// Payload bytes queued for receiving.
    pub rx_buffer: usize,
    /// Payload bytes queued for sending.
    pub tx_buffer: usize,
}

impl Default for UdpOptions {
    fn default() -> Self {
        Self { queue: 64, rx_buffer: 64 * 1024, tx_buffer: 64 * 1024 }
    }
}

/// Bytes of IPv4 and UDP headers in front of a datagram's payload.
const HEADERS: usize = 28;

/// A UDP socket bound to a port on every interface (or one).
#[derive(Debug)]
pub struct UdpSocket {
    port: u16,
    addr: Option<Ipv4Addr>,
    /// (interface index, socket) pairs.
    handles: Vec<(usize, SocketHandle)>,
    tx_buffer: usize,
}

/// Next ephemeral port (49152..=65535), starting somewhere per boot.
static EPHEMERAL: AtomicU16 = AtomicU16::new(0);

fn port_in_use(stack: &Stack, port: u16) -> bool {
    stack.ifaces.iter().any(|i| {
        i.sockets.iter().any(|(_, s)| match s {
            smoltcp::socket::Socket::Udp(u) => u.endpoint().port == port,
            _ => false,
        })
    })
}

fn free_port(stack: &Stack) -> Result<u16, NetError> {
    if EPHEMERAL.load(Ordering::Relaxed) == 0 {
        let seed = Instant::now().as_duration().subsec_nanos() as u16;
        let _ = EPHEMERAL.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    (0..16384)
        .map(|_| 49152 + EPHEMERAL.fetch_add(1, Ordering::Relaxed) % 16384)
        .find(|&p| !port_in_use(stack, p))
        .ok_or(NetError::AddrInUse)
}

/// `len` zero bytes, or [`NetError::OutOfMemory`].
fn zeroed<T: Clone>(len: usize, v: T) -> Result<Vec<T>, NetError> {
    let mut b = Vec::new();
    b.try_reserve_exact(len).map_err(|_| NetError::OutOfMemory)?;
    b.resize(len, v);
    Ok(b)
}

fn v4(ep: smoltcp::wire::IpEndpoint) -> SocketAddrV4 {
    match SocketAddr::from((IpAddr::from(ep.addr), ep.port)) {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    }
}

impl UdpSocket {
    /// Binds `port` on every interface.
    pub fn bind(port: u16) -> Result<Self, NetError> {
        if port == 0 {
            return Err(NetError::InvalidAddress);
        }
        Self::bind_addr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port), UdpOptions::default())
    }

    /// Binds `addr`: on every interface if its address is unspecified, else
    /// on the one holding it ([`NetError::AddrNotAvailable`] if none does);
    /// port 0 picks a free ephemeral port.
    pub fn bind_addr(addr: SocketAddrV4, opts: UdpOptions) -> Result<Self, NetError> {
        let mut stack = STACK.lock();
        let ifaces = super::ifaces_holding(&stack, *addr.ip())?;
        let port = match addr.port() {
            0 => free_port(&stack)?,
            p if port_in_use(&stack, p) => return Err(NetError::AddrInUse),
            p => p,
        };
        let at = (!addr.ip().is_unspecified()).then_some(*addr.ip());
        // Every socket made before any is added: a failure leaves nothing.
        let mut made = Vec::new();
        for idx in ifaces {
            let rx = PacketBuffer::new(
                zeroed(opts.queue, PacketMetadata::EMPTY)?,
                zeroed(opts.rx_buffer, 0u8)?,
            );
            let tx = PacketBuffer::new(
                zeroed(opts.queue, PacketMetadata::EMPTY)?,
                zeroed(opts.tx_buffer, 0u8)?,
            );
            let mut s = udp::Socket::new(rx, tx);
            let ep = IpListenEndpoint { addr: at.map(Into::into), port };
            s.bind(ep).map_err(|_| NetError::InvalidAddress)?;
            made.push((idx, s));
        }
        let handles =
            made.into_iter().map(|(idx, s)| (idx, stack.ifaces[idx].sockets.add(s))).collect();
        let sock = Self { port, addr: at, handles, tx_buffer: opts.tx_buffer };
        Ok(sock)
    }

    /// The port.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// The address and port it is bound to (0.0.0.0: every address).
    pub fn local_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr.unwrap_or(Ipv4Addr::UNSPECIFIED), self.port)
    }

    /// Waits for a datagram; returns its length (truncated to `buf`) and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddrV4), NetError> {
        poll_fn(|cx| self.poll_recv_from(buf, false, Some(cx.waker())).map(|(n, _, a)| Ok((n, a))))
            .await
    }

    /// Takes (or with `peek`, copies) the next datagram that has arrived:
    /// `Ready((copied, its length, sender))`, the copy truncated to `buf`;
    /// `Pending` if none has (then `waker`, if given, is woken when one may
    /// have).
    pub fn poll_recv_from(
        &self,
        buf: &mut [u8],
        peek: bool,
        waker: Option<&Waker>,
    ) -> Poll<(usize, usize, SocketAddrV4)> {
        let mut stack = STACK.lock();
        for &(idx, h) in &self.handles {
            let s = stack.ifaces[idx].sockets.get_mut::<udp::Socket>(h);
            let got = if peek {
                s.peek().map(|(data, meta)| (copy(buf, data), data.len(), v4(meta.endpoint)))
            } else {
                s.recv().map(|(data, meta)| (copy(buf, data), data.len(), v4(meta.endpoint)))
            };
            match got {
                Ok(r) => return Poll::Ready(r),
                Err(_) => {
                    if let Some(w) = waker {
                        s.register_recv_waker(w);
                    }
                }
            }
        }
        Poll::Pending
    }

    /// Has `waker` woken when a datagram may have come in or room freed,
    /// on any of the socket's interfaces: for a readiness watcher
    /// (libos/std's `epoll`). It is woken once: watch again after looking.
    pub fn watch(&self, waker: &Waker) {
        let mut stack = STACK.lock();
        for &(idx, h) in &self.handles {
            let s = stack.ifaces[idx].sockets.get_mut::<udp::Socket>(h);
            s.register_recv_waker(waker);
            s.register_send_waker(waker);
        }
    }

    /// [`poll_recv_from`](Self::poll_recv_from) without a waker.
    pub fn try_recv_from(&self, buf: &mut [u8], peek: bool) -> Poll<(usize, usize, SocketAddrV4)> {
        self.poll_recv_from(buf, peek, None)
    }

    /// Sends `buf` to `addr`, from the interface that routes to it.
    pub async fn send_to(&self, buf: &[u8], addr: SocketAddrV4) -> Result<usize, NetError> {
        poll_fn(|cx| self.poll_send_to(buf, addr, Some(cx.waker()))).await
    }

    /// Queues `buf` for `addr` on the interface that routes to it:
    /// `Pending` if its send queue is full (then `waker`, if given, is woken
    /// when it may have room). A datagram larger than the send buffer, or
    /// than the interface's MTU (the stack does not fragment), is
    /// [`NetError::TooLarge`].
    pub fn poll_send_to(
        &self,
        buf: &[u8],
        addr: SocketAddrV4,
        waker: Option<&Waker>,
    ) -> Poll<Result<usize, NetError>> {
        if buf.len() > self.tx_buffer || addr.port() == 0 {
            return Poll::Ready(Err(if addr.port() == 0 {
                NetError::InvalidAddress
            } else {
                NetError::TooLarge
            }));
        }
        let mut stack = STACK.lock();
        let Some(idx) = super::route(&stack, *addr.ip()) else {
            return Poll::Ready(Err(NetError::NoRoute));
        };
        if buf.len() + HEADERS > stack.ifaces[idx].mtu as usize {
            return Poll::Ready(Err(NetError::TooLarge));
        }
        let Some(&(_, h)) = self.handles.iter().find(|(i, _)| *i == idx) else {
            return Poll::Ready(Err(NetError::NoRoute));
        };
        let s = stack.ifaces[idx].sockets.get_mut::<udp::Socket>(h);
        match s.send_slice(buf, addr) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(udp::SendError::BufferFull) => {
                if let Some(w) = waker {
                    s.register_send_waker(w);
                }
                Poll::Pending
            }
            Err(_) => Poll::Ready(Err(NetError::NoRoute)),
        }
    }

    /// [`poll_send_to`](Self::poll_send_to) without a waker.
    pub fn try_send_to(&self, buf: &[u8], addr: SocketAddrV4) -> Poll<Result<usize, NetError>> {
        self.poll_send_to(buf, addr, None)
    }

    /// Whether a datagram has arrived (`POLLIN`).
    pub fn readable(&self) -> bool {
        let mut stack = STACK.lock();
        self.handles
            .iter()
            .any(|&(idx, h)| stack.ifaces[idx].sockets.get_mut::<udp::Socket>(h).can_recv())
    }

    /// Whether every interface's send queue has room (`POLLOUT`).
    pub fn writable(&self) -> bool {
        let mut stack = STACK.lock();
        self.handles
            .iter()
            .all(|&(idx, h)| stack.ifaces[idx].sockets.get_mut::<udp::Socket>(h).can_send())
    }

    /// Bytes queued: (received, to send), over every interface.
    pub fn queues(&self) -> (usize, usize) {
        let mut stack = STACK.lock();
        self.handles.iter().fold((0, 0), |(r, t), &(idx, h)| {
            let s = stack.ifaces[idx].sockets.get_mut::<udp::Socket>(h);
            (r + s.recv_queue(), t + s.send_queue())
        })
    }

    /// Whether a datagram this socket sent to `peer` was answered with an
    /// ICMP port unreachable (Linux's `ECONNREFUSED` on a connected
    /// socket); `take`: reports it once.
    pub fn port_unreachable(&self, peer: SocketAddrV4, take: bool) -> bool {
        let mut stack = STACK.lock();
        let port = self.local_port();
        stack.ifaces.iter_mut().any(|i| i.tap.port_unreachable(port, peer, take))
    }

    /// Sets the IP time-to-live of its datagrams (`None`: the default, 64).
    pub fn set_hop_limit(&self, ttl: Option<u8>) {
        let mut stack = STACK.lock();
        for &(idx, h) in &self.handles {
            stack.ifaces[idx].sockets.get_mut::<udp::Socket>(h).set_hop_limit(ttl);
        }
    }
}

/// Copies what fits of `data` into `buf`.
fn copy(buf: &mut [u8], data: &[u8]) -> usize {
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    n
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let mut stack = STACK.lock();
        for &(idx, h) in &self.handles {
            stack.ifaces[idx].sockets.remove(h);
        }
    }
}
