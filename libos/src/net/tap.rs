//! The tap device as a smoltcp `phy::Device`: each token reads or writes one
//! Ethernet frame through the `read` and `write` hypercalls on the tap fd.
//!
//! The tender opened the tap non-blocking. The device reads only while the
//! last `ppoll` said the fd is readable, and until `EAGAIN`: smoltcp's
//! `poll` takes every frame that is ready before it returns, and an idle
//! interface costs no system call.
//!
//! A connection request (a TCP SYN) to a port whose listener has no free
//! listening socket is dropped here rather than handed to smoltcp, which
//! would refuse it with a reset: as with a full accept queue on Linux, the
//! client sends its SYN again a moment later, by when the application may
//! have accepted a connection and so freed a slot.
//!
//! A tap whose gateway is off-link or has a fixed MAC also runs each frame
//! through [`Gateway`]'s filters, and may hand smoltcp a frame of its own
//! making (an ARP reply from a gateway with a fixed MAC) before the next one
//! it reads.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};

use super::gateway::{self, ARP_FRAME, Gateway};
use crate::hypercall::{self, Errno};

/// Ethernet header: the tap's MTU does not count it, smoltcp's does.
const ETHERNET_HEADER: usize = 14;

/// Counters, for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Frames the host refused (queue full or error): dropped.
    pub tx_dropped: u64,
}

/// A tap device.
#[derive(Debug)]
pub struct Tap {
    fd: i32,
    mtu: usize,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Set when `ppoll` reports the fd readable; cleared on `EAGAIN`.
    pub(crate) readable: bool,
    pub(crate) stats: TapStats,
    /// Set when the gateway is off-link or its MAC fixed.
    pub(crate) gateway: Option<Gateway>,
    /// A frame to hand smoltcp before reading the next one.
    injected: Option<[u8; ARP_FRAME]>,
    /// When smoltcp last got an ARP reply for a fixed gateway MAC.
    refreshed: Option<Instant>,
    /// Listened ports and how many more connection requests each can take;
    /// set by the stack.
    pub(crate) syn_gate: Vec<(u16, usize)>,
    /// Set when a connection request took the last one a port could take:
    /// the stack refreshes the gate before the next frame.
    pub(crate) syn_gate_closed: bool,
}

impl Tap {
    /// The tap at `fd`, whose interface has `mtu` (IP MTU, without the
    /// Ethernet header).
    pub fn new(fd: i32, mtu: u32) -> Self {
        let frame = mtu as usize + ETHERNET_HEADER;
        Self {
            fd,
            mtu: mtu as usize,
            rx: vec![0; frame.max(ARP_FRAME)],
            tx: vec![0; frame],
            readable: true,
            stats: TapStats::default(),
            gateway: None,
            injected: None,
            refreshed: None,
            syn_gate: Vec::new(),
            syn_gate_closed: false,
        }
    }

    /// Whether a frame of the device's own making waits for smoltcp: the
    /// interface needs polling again at once.
    pub(crate) fn has_injected(&self) -> bool {
        self.injected.is_some()
    }

    /// The tap's fd.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    fn tx_token(&mut self) -> TxToken<'_> {
        TxToken {
            fd: self.fd,
            buf: &mut self.tx,
            stats: &mut self.stats,
            gateway: self.gateway.as_ref(),
            injected: &mut self.injected,
        }
    }

    /// Whether the first `len` bytes of the receive buffer are a connection
    /// request that no listening socket is left to take (see the module
    /// documentation); one that passes takes a socket.
    fn refuse_syn(&mut self, len: usize) -> bool {
        let Some(port) = syn_port(&self.rx[..len]) else { return false };
        match self.syn_gate.iter_mut().find(|(p, _)| *p == port) {
            Some((_, 0)) => true,
            Some((_, free)) => {
                *free -= 1;
                self.syn_gate_closed |= *free == 0;
                false
            }
            None => false,
        }
    }

    /// The first `len` bytes of the receive buffer as a received frame,
    /// with a token to answer it.
    fn tokens(&mut self, len: usize) -> (RxToken<'_>, TxToken<'_>) {
        let Tap { fd, rx, tx, stats, gateway, injected, .. } = self;
        let tx = TxToken { fd: *fd, buf: tx, stats, gateway: gateway.as_ref(), injected };
        (RxToken { frame: &rx[..len] }, tx)
    }
}

/// The destination port of an IPv4 TCP segment that opens a connection
/// (SYN without ACK or RST), if `frame` is one.
fn syn_port(frame: &[u8]) -> Option<u16> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp || ip.frag_offset() != 0 {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    (tcp.syn() && !tcp.ack() && !tcp.rst()).then(|| tcp.dst_port())
}

/// A received frame.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room for a frame to send.
#[derive(Debug)]
pub struct TxToken<'a> {
    fd: i32,
    buf: &'a mut [u8],
    stats: &'a mut TapStats,
    gateway: Option<&'a Gateway>,
    injected: &'a mut Option<[u8; ARP_FRAME]>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(self.buf.len());
        let frame = &mut self.buf[..len];
        let result = f(frame);
        if let Some(g) = self.gateway {
            match g.tx(frame) {
                gateway::Tx::Send => {}
                gateway::Tx::Drop => return result,
                gateway::Tx::Answer(reply) => {
                    *self.injected = Some(reply);
                    return result;
                }
            }
        }
        // A full tap queue or any other refusal drops the frame, as a wire
        // would: TCP retransmits, ARP and DHCP retry.
        match hypercall::write(self.fd, frame) {
            Ok(_) => self.stats.tx_frames += 1,
            Err(_) => self.stats.tx_dropped += 1,
        }
        result
    }
}

impl phy::Device for Tap {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if let Some(g) = &self.gateway
            && g.fixed_mac()
            && self.refreshed.is_none_or(|t| now - t >= gateway::REFRESH.into())
        {
            self.injected = g.gateway_reply();
            self.refreshed = Some(now);
        }
        if let Some(frame) = self.injected.take() {
            self.rx[..ARP_FRAME].copy_from_slice(&frame);
            return Some(self.tokens(ARP_FRAME));
        }
        if !self.readable {
            return None;
        }
        loop {
            match hypercall::read(self.fd, &mut self.rx) {
                Ok(0) => {
                    self.readable = false;
                    return None;
                }
                Ok(n) => {
                    self.stats.rx_frames += 1;
                    if let Some(g) = &self.gateway {
                        match g.rx(&self.rx[..n]) {
                            gateway::Rx::Pass => {}
                            gateway::Rx::Drop => continue,
                            gateway::Rx::Answer(reply) => {
                                match hypercall::write(self.fd, &reply) {
                                    Ok(_) => self.stats.tx_frames += 1,
                                    Err(_) => self.stats.tx_dropped += 1,
                                }
                                continue;
                            }
                        }
                    }
                    if self.refuse_syn(n) {
                        continue;
                    }
                    return Some(self.tokens(n));
                }
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    // EAGAIN: drained. Anything else: nothing to read either.
                    self.readable = false;
                    return None;
                }
            }
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(self.tx_token())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETHERNET_HEADER;
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::syn_port;

    /// An Ethernet frame with an IPv4 TCP segment to port 80 with `flags`.
    fn segment(flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        let tcp = &mut f[34..];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        f
    }

    #[test]
    fn only_a_bare_syn_is_a_connection_request() {
        assert_eq!(syn_port(&segment(0x02)), Some(80));
        assert_eq!(syn_port(&segment(0x12)), None, "SYN+ACK");
        assert_eq!(syn_port(&segment(0x10)), None, "ACK");
        assert_eq!(syn_port(&segment(0x06)), None, "SYN+RST");
        let mut udp = segment(0x02);
        udp[14 + 9] = 17;
        assert_eq!(syn_port(&udp), None, "UDP");
        let mut fragment = segment(0x02);
        fragment[14 + 7] = 1;
        assert_eq!(syn_port(&fragment), None, "a later fragment");
        assert_eq!(syn_port(&segment(0x02)[..40]), None, "truncated");
    }
}
