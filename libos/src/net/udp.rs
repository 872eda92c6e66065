//! UDP sockets, bound on every interface.

use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::{IpAddr, SocketAddr};
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata};

use super::{Ipv4Addr, NetError, STACK, SocketAddrV4};

/// Datagrams queued per direction.
const QUEUE: usize = 64;
/// Payload bytes queued per direction.
const BYTES: usize = 64 * 1024;

/// A UDP socket bound to a port on every interface.
#[derive(Debug)]
pub struct UdpSocket {
    port: u16,
    /// (interface index, socket) pairs.
    handles: Vec<(usize, SocketHandle)>,
}

impl UdpSocket {
    /// Binds `port` on every interface.
    pub fn bind(port: u16) -> Result<Self, NetError> {
        if port == 0 {
            return Err(NetError::InvalidAddress);
        }
        let mut stack = STACK.lock();
        if stack.ifaces.is_empty() {
            return Err(NetError::NoInterface);
        }
        let mut handles = Vec::new();
        for (idx, i) in stack.ifaces.iter_mut().enumerate() {
            let in_use = i.sockets.iter().any(|(_, s)| match s {
                smoltcp::socket::Socket::Udp(u) => u.endpoint().port == port,
                _ => false,
            });
            if in_use {
                for (idx, h) in handles {
                    stack_remove(&mut stack, idx, h);
                }
                return Err(NetError::AddrInUse);
            }
            let rx = PacketBuffer::new(vec![PacketMetadata::EMPTY; QUEUE], vec![0u8; BYTES]);
            let tx = PacketBuffer::new(vec![PacketMetadata::EMPTY; QUEUE], vec![0u8; BYTES]);
            let mut s = udp::Socket::new(rx, tx);
            s.bind(port).map_err(|_| NetError::InvalidAddress)?;
            handles.push((idx, i.sockets.add(s)));
        }
        Ok(Self { port, handles })
    }

    /// The port.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Waits for a datagram; returns its length (truncated to `buf`) and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddrV4), NetError> {
        poll_fn(|cx| {
            let mut stack = STACK.lock();
            for &(idx, h) in &self.handles {
                let s = stack.ifaces[idx].sockets.get_mut::<udp::Socket>(h);
                match s.recv() {
                    Ok((data, meta)) => {
                        let n = data.len().min(buf.len());
                        buf[..n].copy_from_slice(&data[..n]);
                        let from = match SocketAddr::from((
                            IpAddr::from(meta.endpoint.addr),
                            meta.endpoint.port,
                        )) {
                            SocketAddr::V4(a) => a,
                            SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                        };
                        return Poll::Ready(Ok((n, from)));
                    }
                    Err(_) => s.register_recv_waker(cx.waker()),
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Sends `buf` to `addr`, from the interface that routes to it.
    pub async fn send_to(&self, buf: &[u8], addr: SocketAddrV4) -> Result<usize, NetError> {
        if buf.len() > BYTES {
            return Err(NetError::TooLarge);
        }
        poll_fn(|cx| {
            let mut stack = STACK.lock();
            let Some(idx) = super::route(&stack, *addr.ip()) else {
                return Poll::Ready(Err(NetError::NoRoute));
            };
            let Some(&(_, h)) = self.handles.iter().find(|(i, _)| *i == idx) else {
                return Poll::Ready(Err(NetError::NoRoute));
            };
            let s = stack.ifaces[idx].sockets.get_mut::<udp::Socket>(h);
            match s.send_slice(buf, addr) {
                Ok(()) => Poll::Ready(Ok(buf.len())),
                Err(udp::SendError::BufferFull) => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Err(_) => Poll::Ready(Err(NetError::InvalidAddress)),
            }
        })
        .await
    }
}

fn stack_remove(stack: &mut super::Stack, idx: usize, h: SocketHandle) {
    stack.ifaces[idx].sockets.remove(h);
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let mut stack = STACK.lock();
        for &(idx, h) in &self.handles {
            stack_remove(&mut stack, idx, h);
        }
    }
}
