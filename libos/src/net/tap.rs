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
//! So is a SYN for a connection that already has a socket (half-open, or
//! established): a client that sent its SYN again because the SYN+ACK was
//! late or lost. smoltcp hands a segment to the first socket that accepts
//! it, and a listening socket in an earlier slot than the connection's
//! would take the SYN for a new connection, whose SYN+ACK would then get
//! the client's ACK of the first one and answer it with a reset. The
//! connection's own socket sends its SYN+ACK again by itself. The stack
//! lists those connections only when a SYN comes: the device holds the SYN
//! back until it has (see [`Tap::held`]).
//!
//! A tap whose gateway is off-link or has a fixed MAC also runs each frame
//! through [`Gateway`]'s filters, and may hand smoltcp a frame of its own
//! making (an ARP reply from a gateway with a fixed MAC) before the next one
//! it reads.
//!
//! # Offloads
//!
//! On a tap with virtio-net headers ([`abi::DEVICE_FLAG_VNET_HDR`]) every
//! frame travels behind a [`VNET_HDR_LEN`]-byte header, and the guest
//! offloads TCP to the host the way a VM's virtio NIC does:
//!
//! * *Segmentation*: smoltcp (its `segmentation-offload` feature) may put
//!   up to 64 KiB of a connection's data in one frame, with the MSS it would
//!   have cut it at; the header asks the host to cut it there (`gso_type`
//!   TCPv4, `gso_size`). A bulk transfer costs one `write` per 64 KiB
//!   rather than per 1,500 bytes, and the host's stack handles one packet
//!   instead of 45. Segments stay within both ends' MSS and the tap's MTU.
//! * *Checksum*: smoltcp leaves every outgoing TCP checksum to the device;
//!   the device puts the pseudo-header sum in it and the header asks the
//!   host to finish it (`NEEDS_CSUM`), which a host delivering locally
//!   never has to.
//!
//! The other way, the tender lets the host hand the guest TCP bursts of up
//! to 64 KiB whole, as its own stack made them, with the checksum left
//! unfinished (`NEEDS_CSUM`): smoltcp takes a segment larger than the MTU
//! as it is, and the device, not smoltcp, checks TCP checksums, skipping
//! those the host vouches for (`NEEDS_CSUM`: made by the host's own stack;
//! `DATA_VALID`: already checked), as Linux does on a virtio NIC. A frame
//! of another protocol with an unfinished checksum gets it finished here.
//! Any other offload in a header (UDP, IPv6) drops the frame.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::num::NonZeroUsize;
use core::ops::Range;

use abi::VNET_HDR_LEN;
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium, PacketMeta};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet,
    TcpPacket, TcpSeqNumber, checksum,
};

use super::gateway::{self, ARP_FRAME, Gateway};
use super::park::{self, ParkedKeys, Wake};
use crate::hypercall::{self, Errno};

/// Ethernet header: the tap's MTU does not count it, smoltcp's does.
const ETHERNET_HEADER: usize = 14;

/// Largest frame handed to the host for segmentation: an IPv4 packet's
/// total length is 16 bits.
const OFFLOAD_FRAME: usize = ETHERNET_HEADER + u16::MAX as usize;

/// virtio-net header `flags`: the checksum at `csum_start + csum_offset`
/// holds the pseudo-header sum; the rest is to be added.
const VNET_NEEDS_CSUM: u8 = 1;
/// virtio-net header `flags`: the host has checked the checksums.
const VNET_DATA_VALID: u8 = 2;
/// virtio-net header `gso_type` bit: the segments carry ECN's CWR.
const VNET_GSO_ECN: u8 = 0x80;
/// virtio-net header `gso_type`: not to be segmented.
const VNET_GSO_NONE: u8 = 0;
/// virtio-net header `gso_type`: a TCP over IPv4 segment to cut at
/// `gso_size` bytes of payload.
const VNET_GSO_TCPV4: u8 = 1;
/// Offset of the checksum in a TCP header.
const TCP_CHECKSUM_OFFSET: u16 = 16;

/// Counters, for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes of the frames received (with their virtio-net headers).
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Frames the host refused (queue full or error), or that the guest
    /// could not send or take (too large, a bad virtio-net header): dropped.
    pub tx_dropped: u64,
    /// Frames sent for the host to cut into TCP segments (counted in
    /// `tx_frames` too).
    pub tx_offloaded: u64,
    /// Frames received and dropped by the device: a bad TCP checksum, a
    /// virtio-net header asking for what the guest does not do.
    pub rx_dropped: u64,
}

/// A tap device.
#[derive(Debug)]
pub struct Tap {
    fd: i32,
    mtu: usize,
    /// Frames carry virtio-net headers, and TCP is offloaded.
    vnet_hdr: bool,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// The sizes of `rx` and `tx`. The loopback device allocates them at
    /// its first frame ([`Tap::buffers`]): every guest has one, most never
    /// use it, and 32 KiB of zeroed buffers are eight pages that a start
    /// would fault in, at several µs each on a virtual machine
    /// (docs/performance.md).
    sizes: (usize, usize),
    /// Set when `ppoll` reports the fd readable; cleared on `EAGAIN`.
    pub(crate) readable: bool,
    /// Read until `EAGAIN` since the interface's last poll began (see
    /// [`crate::net::taps_drained`]).
    pub(crate) drained: bool,
    pub(crate) stats: TapStats,
    /// Set when the gateway is off-link or its MAC fixed.
    pub(crate) gateway: Option<Gateway>,
    /// A frame to hand smoltcp before reading the next one.
    injected: Option<[u8; ARP_FRAME]>,
    /// The connections whose receive window the guest last advertised as
    /// zero (see [`ZeroWindow`]); at most [`ZERO_WINDOWS`].
    zero_windows: Vec<ZeroWindow>,
    /// The acknowledgement of a segment smoltcp refuses for the zero
    /// window, to hand it after the segment (see [`ZeroWindow`]), and its
    /// length.
    window_ack: Option<([u8; ACK_FRAME], usize)>,
    /// When smoltcp last got an ARP reply for a fixed gateway MAC.
    refreshed: Option<Instant>,
    /// Listened ports and how many more connection requests each can take;
    /// set by the stack.
    pub(crate) syn_gate: Vec<(u16, usize)>,
    /// Set when a connection request took the last one a port could take:
    /// the stack refreshes the gate before the next frame.
    pub(crate) syn_gate_closed: bool,
    /// The connections to listened ports that have a socket, as
    /// `(local port, remote address)`; valid while `connections_listed`.
    pub(crate) connections: Vec<(u16, SocketAddrV4)>,
    /// Whether `connections` is up to date: the stack clears it before each
    /// batch of frames, and lists them again when a SYN is held for it.
    pub(crate) connections_listed: bool,
    /// A SYN, in the receive buffer, waiting for `connections` to be listed
    /// before it is let through or dropped.
    held: Option<Range<usize>>,
    /// The parked connections (see [`super::park`]): a frame that may be
    /// for one is held until the stack has brought it back, as said in
    /// `wake`.
    pub(crate) parked: ParkedKeys,
    /// What the stack must bring back before the held frame goes on.
    pub(crate) wake: Option<Wake>,
    /// The connection, as `(local, remote)`, whose held segment carries
    /// more than one full-sized segment's data: the stack makes its socket
    /// acknowledge it at once, sets `quick_ack_armed`, and polls again (see
    /// [`quick_ack`]).
    pub(crate) quick_ack: Option<(SocketAddrV4, SocketAddrV4)>,
    /// Set by the stack once it has seen to `quick_ack`: the held segment
    /// then goes to smoltcp.
    pub(crate) quick_ack_armed: bool,
    /// The loopback device's frames: sent ones come back as received ones
    /// (`None` for a tap).
    looped: Option<VecDeque<Vec<u8>>>,
    /// Neighbours smoltcp asked for by ARP and has not heard an ARP
    /// packet from since, with when it first asked (see
    /// [`unanswered_since`](Self::unanswered_since)).
    unanswered: Vec<(Ipv4Addr, Instant)>,
    /// The time smoltcp gave with the last token it asked for.
    now: Instant,
    /// Set when a frame sent may have more of its socket's behind it (see
    /// [`may_follow`]): cleared by the stack before each pass of smoltcp's
    /// egress over the sockets, read after it.
    pub(crate) tx_more: bool,
    /// UDP datagrams the host or a peer answered with an ICMP port
    /// unreachable, as (local port, destination), latest last: a
    /// connected UDP socket reports them as `ECONNREFUSED` (see
    /// [`Tap::take_port_unreachable`]). smoltcp tells no socket.
    port_unreachable: Vec<(u16, SocketAddrV4)>,
    /// Rewrites each frame the loopback device takes back: tests play a
    /// peer that is not smoltcp with it.
    #[cfg(test)]
    pub(crate) loop_hook: Option<fn(&mut [u8])>,
}

/// Most unanswered neighbours the device remembers; the oldest is
/// forgotten for a new one.
const UNANSWERED: usize = 16;

/// Most frames the loopback device queues; more are dropped, as a wire
/// would (the stack drains the queue at every poll).
const LOOPED_FRAMES: usize = 1024;

/// What becomes of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Pass,
    Drop,
    /// Held until the stack has listed the connections.
    Hold,
}

impl Tap {
    /// The tap at `fd`, whose interface has `mtu` (IP MTU, without the
    /// Ethernet header); `vnet_hdr`: its frames carry virtio-net headers.
    pub fn new(fd: i32, mtu: u32, vnet_hdr: bool) -> Self {
        let frame = mtu as usize + ETHERNET_HEADER;
        let header = if vnet_hdr { VNET_HDR_LEN } else { 0 };
        let largest = if vnet_hdr { frame.max(OFFLOAD_FRAME) } else { frame };
        let sizes = (header + largest.max(ARP_FRAME), header + largest);
        let mut tap = Self::unallocated(fd, mtu, vnet_hdr, sizes);
        tap.buffers();
        tap
    }

    /// The tap without its buffers.
    fn unallocated(fd: i32, mtu: u32, vnet_hdr: bool, sizes: (usize, usize)) -> Self {
        Self {
            fd,
            mtu: mtu as usize,
            vnet_hdr,
            rx: Vec::new(),
            tx: Vec::new(),
            sizes,
            readable: true,
            drained: false,
            stats: TapStats::default(),
            gateway: None,
            injected: None,
            zero_windows: Vec::new(),
            window_ack: None,
            refreshed: None,
            syn_gate: Vec::new(),
            syn_gate_closed: false,
            connections: Vec::new(),
            connections_listed: false,
            held: None,
            parked: ParkedKeys::new(),
            wake: None,
            quick_ack: None,
            quick_ack_armed: false,
            looped: None,
            unanswered: Vec::new(),
            now: Instant::ZERO,
            tx_more: false,
            port_unreachable: Vec::new(),
            #[cfg(test)]
            loop_hook: None,
        }
    }

    /// The loopback device: no tap, frames of `mtu` sent to itself.
    pub fn loopback(mtu: u32) -> Self {
        let frame = mtu as usize + ETHERNET_HEADER;
        let mut t = Self::unallocated(-1, mtu, false, (frame.max(ARP_FRAME), frame));
        t.looped = Some(VecDeque::new());
        t.readable = false;
        t
    }

    /// Whether this is the loopback device.
    pub fn is_loopback(&self) -> bool {
        self.looped.is_some()
    }

    /// Whether the loopback device has frames to take back.
    pub(crate) fn has_looped(&self) -> bool {
        self.looped.as_ref().is_some_and(|q| !q.is_empty())
    }

    /// Whether a frame waits for the stack: a SYN for it to list the
    /// connections, or a frame for parked connections for it to bring
    /// them back (`wake`).
    pub(crate) fn holds_syn(&self) -> bool {
        self.held.is_some()
    }

    /// Whether a frame of the device's own making waits for smoltcp: the
    /// interface needs polling again at once.
    pub(crate) fn has_injected(&self) -> bool {
        self.injected.is_some() || self.window_ack.is_some()
    }

    /// The tap's fd.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Whether the tap's frames carry virtio-net headers (and TCP is
    /// offloaded to the host).
    pub fn offloads(&self) -> bool {
        self.vnet_hdr
    }

    /// Since when smoltcp has been asking for `addr` by ARP without an
    /// ARP packet from it, if it has: a neighbour that does not answer
    /// (a connection attempt to it fails after a while, as on Linux).
    pub(crate) fn unanswered_since(&self, addr: Ipv4Addr) -> Option<Instant> {
        self.unanswered.iter().find(|(a, _)| *a == addr).map(|&(_, t)| t)
    }

    /// Whether a datagram from local `port` to `peer` was answered with
    /// an ICMP port unreachable; `take`: forgets it (it is reported once).
    pub(crate) fn port_unreachable(&mut self, port: u16, peer: SocketAddrV4, take: bool) -> bool {
        let Some(k) = self.port_unreachable.iter().position(|&e| e == (port, peer)) else {
            return false;
        };
        if take {
            self.port_unreachable.remove(k);
        }
        true
    }

    /// The receive buffer, and a token to send a frame.
    /// Allocates the buffers if they are not yet.
    fn buffers(&mut self) {
        if self.rx.is_empty() {
            self.rx = vec![0; self.sizes.0];
            self.tx = vec![0; self.sizes.1];
        }
    }

    fn split(&mut self) -> (&[u8], TxToken<'_>) {
        self.buffers();
        let Tap {
            fd,
            vnet_hdr,
            rx,
            tx,
            stats,
            gateway,
            injected,
            looped,
            unanswered,
            zero_windows,
            now,
            tx_more,
            ..
        } = self;
        let token = TxToken {
            looped: looped.as_mut(),
            fd: *fd,
            vnet_hdr: *vnet_hdr,
            buf: tx,
            stats,
            gateway: gateway.as_ref(),
            injected,
            mss: None,
            unanswered,
            zero_windows,
            now: *now,
            more: tx_more,
        };
        (rx, token)
    }

    /// Whether `frame` of the receive buffer goes to smoltcp. A connection
    /// request to a listened port does not if no listening socket is left to
    /// take it, or if its connection has a socket already (see the module
    /// documentation); it waits while the connections are not listed. One
    /// that passes takes a listening socket, and its connection is listed;
    /// one that waits is kept in [`Tap::held`]. So is, first, a frame that
    /// may be for a parked connection ([`park::wake_for`]).
    fn admit(&mut self, frame: Range<usize>) -> Admit {
        if let Some(wake) = park::wake_for(&self.parked, &self.rx[frame.clone()]) {
            self.wake = Some(wake);
            self.held = Some(frame);
            return Admit::Hold;
        }
        let Some((port, peer)) = connection_request(&self.rx[frame.clone()]) else {
            return Admit::Pass;
        };
        let Some((_, free)) = self.syn_gate.iter_mut().find(|(p, _)| *p == port) else {
            return Admit::Pass;
        };
        if *free == 0 || self.connections_listed && self.connections.contains(&(port, peer)) {
            return Admit::Drop;
        }
        if !self.connections_listed {
            self.held = Some(frame);
            return Admit::Hold;
        }
        *free -= 1;
        self.syn_gate_closed |= *free == 0;
        self.connections.push((port, peer));
        Admit::Pass
    }

    /// `frame` of the receive buffer, admitted, as a received frame with a
    /// token to answer it; or, the first time, held for the stack to arm
    /// an immediate acknowledgement if it is a large segment (see
    /// [`quick_ack`]).
    fn pass(&mut self, frame: Range<usize>) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if !core::mem::take(&mut self.quick_ack_armed)
            && let Some(conn) = quick_ack(&self.rx[frame.clone()], self.mtu)
        {
            self.quick_ack = Some(conn);
            self.held = Some(frame);
            return None;
        }
        Some(self.tokens(frame))
    }

    /// `frame` of the receive buffer as a received frame, with a token to
    /// answer it.
    fn tokens(&mut self, frame: Range<usize>) -> (RxToken<'_>, TxToken<'_>) {
        self.window_ack = window_ack(&self.rx[frame.clone()], &self.zero_windows);
        if let Some(from) = arp(&self.rx[frame.clone()]).map(|(_, sender, _)| sender) {
            self.unanswered.retain(|&(a, _)| a != from);
        }
        if let Some(e) = udp_port_unreachable(&self.rx[frame.clone()])
            && !self.port_unreachable.contains(&e)
        {
            if self.port_unreachable.len() >= UNANSWERED {
                self.port_unreachable.remove(0);
            }
            self.port_unreachable.push(e);
        }
        let (rx, tx) = self.split();
        (RxToken { frame: &rx[frame] }, tx)
    }

    /// Where the frame is in the first `len` bytes read into the receive
    /// buffer: after the virtio-net header, if the tap has them, checked as
    /// the header says (see the module documentation). `None` for a frame
    /// to drop, and so is one from no address ([`unspecified_source`]).
    fn received(&mut self, len: usize) -> Option<Range<usize>> {
        let accepted = if self.vnet_hdr {
            self.rx[..len]
                .split_at_mut_checked(VNET_HDR_LEN)
                .and_then(|(header, frame)| VnetHeader::parse(header).accept(frame))
                .map(|()| VNET_HDR_LEN..len)
        } else {
            Some(0..len)
        }
        .filter(|frame| !unspecified_source(&self.rx[frame.clone()]));
        if accepted.is_none() {
            self.stats.rx_dropped += 1;
        }
        accepted
    }

    /// Writes `frame`, which the device made itself, to the tap.
    fn send(&mut self, frame: &[u8]) {
        let mut buf = [0u8; VNET_HDR_LEN + ARP_FRAME];
        let header = if self.vnet_hdr { VNET_HDR_LEN } else { 0 };
        let Some(out) = buf.get_mut(..header + frame.len()) else {
            self.stats.tx_dropped += 1;
            return;
        };
        out[header..].copy_from_slice(frame);
        match hypercall::write(self.fd, out) {
            Ok(_) => self.stats.tx_frames += 1,
            Err(_) => self.stats.tx_dropped += 1,
        }
    }
}

/// A virtio-net header (legacy layout, little-endian; see
/// [`abi::DEVICE_FLAG_VNET_HDR`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct VnetHeader {
    flags: u8,
    gso_type: u8,
    hdr_len: u16,
    gso_size: u16,
    csum_start: u16,
    csum_offset: u16,
}

impl VnetHeader {
    /// Reads the first [`VNET_HDR_LEN`] bytes of `b`, which has at least
    /// that many.
    fn parse(b: &[u8]) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    /// Writes the header into the first [`VNET_HDR_LEN`] bytes of `b`.
    fn write(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// Whether a received `frame` with this header is one to hand smoltcp,
    /// once its checksum is finished where that is the device's job.
    fn accept(&self, frame: &mut [u8]) -> Option<()> {
        let tcp = tcp_segment(frame);
        match self.gso_type & !VNET_GSO_ECN {
            VNET_GSO_NONE => {}
            VNET_GSO_TCPV4 if tcp.is_some() => {}
            _ => return None,
        }
        let (start, offset) = (usize::from(self.csum_start), usize::from(self.csum_offset));
        if self.flags & VNET_NEEDS_CSUM != 0 {
            // The host's own TCP segment: nothing to check or finish.
            let own_tcp = tcp.as_ref().is_some_and(|t| {
                start == ETHERNET_HEADER + t.ip_header && offset == usize::from(TCP_CHECKSUM_OFFSET)
            });
            if !own_tcp {
                finish_checksum(frame, start, offset)?;
            }
        } else if self.flags & VNET_DATA_VALID == 0 && tcp.is_some() && !tcp_checksum_ok(frame) {
            return None;
        }
        Some(())
    }

    /// The header for an outgoing `frame`: for a TCP over IPv4 segment,
    /// its checksum left to the host (the pseudo-header sum written into
    /// it here) and, if smoltcp asked for segmentation at `mss` bytes and
    /// the payload is larger, segmentation. Anything else goes as it is.
    fn offload(frame: &mut [u8], mss: Option<usize>) -> Self {
        let Some(tcp) = tcp_segment(frame) else { return Self::default() };
        let (ip_header, tcp_header, payload) = (tcp.ip_header, tcp.tcp_header, tcp.payload);
        let ip = Ipv4Packet::new_unchecked(&frame[ETHERNET_HEADER..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let tcp_len = (tcp_header + payload) as u32;
        let start = ETHERNET_HEADER + ip_header;
        let mut segment = TcpPacket::new_unchecked(&mut frame[start..]);
        segment.set_checksum(checksum::pseudo_header_v4(&src, &dst, IpProtocol::Tcp, tcp_len));
        let mut hdr = Self {
            flags: VNET_NEEDS_CSUM,
            csum_start: start as u16,
            csum_offset: TCP_CHECKSUM_OFFSET,
            ..Self::default()
        };
        if let Some(mss) = mss.filter(|&m| m > 0 && payload > m) {
            hdr.gso_type = VNET_GSO_TCPV4;
            hdr.gso_size = mss as u16;
            hdr.hdr_len = (start + tcp_header) as u16;
        }
        hdr
    }
}

/// A connection whose receive window the guest last advertised as zero:
/// its addresses and the acknowledgement number of that advertisement
/// (smoltcp's next expected sequence number).
///
/// smoltcp takes nothing from a segment it finds outside its receive
/// window, not even its acknowledgement and window: with its window at
/// zero, every segment that carries data, and every zero-window probe,
/// only gets an ACK back. Linux takes the acknowledgement and window of a
/// segment at or just before its next expected byte and drops only the
/// data (RFC 9293 asks that valid ACKs be taken with a zero window). With
/// smoltcp's rule two ends that both stop reading for a moment while each
/// has the other's window closed never tell each other that the window
/// opened again: the guest's receive buffer is full because its
/// application waits to write, which waits for the peer's window, whose
/// updates come on segments the guest refuses (std-echo's 64 MiB stream
/// stopped for good that way with a 1 MiB receive buffer). So the device
/// notes the zero windows the guest sends, and after a segment of such a
/// connection that smoltcp is going to refuse hands it the same segment's
/// acknowledgement as a segment of its own: no data, at the sequence
/// number smoltcp expects, so that smoltcp takes its acknowledgement and
/// window. smoltcp still answers the refused segment with its ACK, as
/// before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ZeroWindow {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    ack: u32,
}

/// Most zero windows a tap remembers; the oldest is forgotten for a new
/// one (that connection then waits for its peer's retransmissions, as
/// before the device noted them).
const ZERO_WINDOWS: usize = 64;

/// Largest acknowledgement the device hands smoltcp for a zero window: an
/// Ethernet header and the longest IPv4 and TCP headers, no data.
const ACK_FRAME: usize = ETHERNET_HEADER + 60 + 60;

/// How far before or after the expected sequence number a refused
/// segment may start for its acknowledgement to be taken: a peer's probe
/// is one byte before it, and its data a window's worth after at most.
/// Anything further is not this connection's (or is blind spoofing).
const ZERO_WINDOW_SLACK: i32 = 1 << 16;

/// Notes the window of a TCP segment the guest sends in `frame`: a zero
/// window is remembered, any other forgets the connection's.
fn note_window(zero_windows: &mut Vec<ZeroWindow>, frame: &[u8]) {
    let Some(t) = tcp_segment(frame) else { return };
    let ip = Ipv4Packet::new_unchecked(&frame[ETHERNET_HEADER..]);
    let tcp = TcpPacket::new_unchecked(&frame[ETHERNET_HEADER + t.ip_header..]);
    let zero = tcp.ack() && !tcp.syn() && !tcp.rst() && tcp.window_len() == 0;
    if !zero && zero_windows.is_empty() {
        return;
    }
    let local = SocketAddrV4::new(ip.src_addr(), tcp.src_port());
    let remote = SocketAddrV4::new(ip.dst_addr(), tcp.dst_port());
    let at = zero_windows.iter().position(|z| z.local == local && z.remote == remote);
    let ack = tcp.ack_number().0 as u32;
    match (at, zero) {
        (Some(k), true) => zero_windows[k].ack = ack,
        (Some(k), false) => {
            zero_windows.swap_remove(k);
        }
        (None, true) => {
            if zero_windows.len() >= ZERO_WINDOWS {
                zero_windows.remove(0);
            }
            zero_windows.push(ZeroWindow { local, remote, ack });
        }
        (None, false) => {}
    }
}

/// For a received TCP segment in `frame` of a connection in
/// `zero_windows` that smoltcp will refuse (it carries data, or does not
/// start at the expected sequence number), the same segment
/// without data or FIN, at the expected sequence number, with its
/// checksums (see [`ZeroWindow`]), and its length. `None` for any other
/// frame, and for segments without ACK or with SYN or RST.
fn window_ack(frame: &[u8], zero_windows: &[ZeroWindow]) -> Option<([u8; ACK_FRAME], usize)> {
    if zero_windows.is_empty() {
        return None;
    }
    let t = tcp_segment(frame)?;
    let (local, remote, seq) = acking_segment(frame, &t)?;
    let z = zero_windows.iter().find(|z| z.local == local && z.remote == remote)?;
    let off = seq.wrapping_sub(z.ack) as i32;
    // A segment without data at the expected number (an ACK, a FIN) is
    // one smoltcp takes as it is.
    if t.payload == 0 && off == 0 || !(-ZERO_WINDOW_SLACK..=ZERO_WINDOW_SLACK).contains(&off) {
        return None;
    }
    let len = ETHERNET_HEADER + t.ip_header + t.tcp_header;
    let mut out = [0u8; ACK_FRAME];
    out.get_mut(..len)?.copy_from_slice(&frame[..len]);
    let mut ip = Ipv4Packet::new_unchecked(&mut out[ETHERNET_HEADER..len]);
    ip.set_total_len((t.ip_header + t.tcp_header) as u16);
    ip.fill_checksum();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let mut tcp = TcpPacket::new_unchecked(&mut out[ETHERNET_HEADER + t.ip_header..len]);
    tcp.set_seq_number(TcpSeqNumber(z.ack as i32));
    tcp.set_fin(false);
    tcp.set_psh(false);
    tcp.fill_checksum(&src.into(), &dst.into());
    Some((out, len))
}

/// The connection, as `(local, remote)`, and the sequence number of the
/// received TCP segment `t` of `frame` if it carries an ACK and neither SYN
/// nor RST (the segments [`window_ack`] and [`quick_ack`] look at).
fn acking_segment(frame: &[u8], t: &TcpLengths) -> Option<(SocketAddrV4, SocketAddrV4, u32)> {
    let ip = Ipv4Packet::new_unchecked(&frame[ETHERNET_HEADER..]);
    let tcp = TcpPacket::new_unchecked(&frame[ETHERNET_HEADER + t.ip_header..]);
    if !tcp.ack() || tcp.syn() || tcp.rst() {
        return None;
    }
    let local = SocketAddrV4::new(ip.dst_addr(), tcp.dst_port());
    let remote = SocketAddrV4::new(ip.src_addr(), tcp.src_port());
    Some((local, remote, tcp.seq_number().0 as u32))
}

/// The connection, as `(local, remote)`, of a received TCP segment in
/// `frame` that carries more data than one full-sized segment of an
/// interface of `mtu` (IPv4 and TCP headers without options taken off):
/// only a burst the host handed whole (see the module documentation,
/// "Offloads") is that large. `None` for any other frame, and for segments
/// without ACK or with SYN or RST.
///
/// Linux acknowledges at once when more than one full-sized segment is
/// unacknowledged (RFC 9293's "at least every second full-sized segment"
/// leaves it free to go further); so does smoltcp, but only from the
/// second segment after its last acknowledgement: the first starts the
/// delayed-ACK timer whatever its length. A lone burst of up to 64 KiB,
/// ~45 of the sender's segments, then waited up to the delay (10 ms by
/// default) for its ACK, and a sender with nothing more in its window
/// waited with it: a client's 32 KiB `write` was acknowledged after
/// 10 ms, where Linux's receiver takes 30 µs (docs/performance.md,
/// "Ingress"). The stack gives such a segment's socket a delay that ends
/// at the next network turn while smoltcp takes it (`net::QUICK_ACK`).
fn quick_ack(frame: &[u8], mtu: usize) -> Option<(SocketAddrV4, SocketAddrV4)> {
    let t = tcp_segment(frame)?;
    if t.payload <= mtu.saturating_sub(40) {
        return None;
    }
    acking_segment(frame, &t).map(|(local, remote, _)| (local, remote))
}

/// Header and payload lengths of a TCP over IPv4 segment.
struct TcpLengths {
    ip_header: usize,
    tcp_header: usize,
    payload: usize,
}

/// The lengths of `frame`'s parts if it is a whole (unfragmented) TCP over
/// IPv4 segment whose lengths agree with the frame's.
fn tcp_segment(frame: &[u8]) -> Option<TcpLengths> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    let ip_header = usize::from(ip.header_len());
    let tcp_len = usize::from(ip.total_len()).checked_sub(ip_header)?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let tcp_header = usize::from(tcp.header_len());
    let payload = tcp_len.checked_sub(tcp_header)?;
    Some(TcpLengths { ip_header, tcp_header, payload })
}

/// Below this much data a TCP segment is short: the smallest MSS a peer
/// that sends no MSS option gets (RFC 9293's default, 536 bytes).
const SHORT_SEGMENT: usize = 536;

/// Whether the socket that sent `frame` may have another frame to send
/// right behind it. smoltcp's egress sends at most one frame per socket in
/// each pass over the sockets, so the stack passes again while one did.
/// A TCP segment with less than [`SHORT_SEGMENT`] bytes of data (an ACK, a
/// request's reply, a SYN, a FIN) is all its socket could send: less than
/// a full segment goes only when the send buffer, the peer's window or the
/// congestion window has no more. Two exceptions, rare, where the rest
/// goes at the stack's next turn (which follows at once, as after any
/// frame sent: the poll reports a change): the end of the send buffer's
/// ring, and a peer whose MSS is below 536. Any other frame (a full or
/// larger TCP segment, ARP, UDP, ICMP) may have more behind it.
fn may_follow(frame: &[u8]) -> bool {
    tcp_segment(frame).is_none_or(|t| t.payload >= SHORT_SEGMENT)
}

/// Whether the TCP over IPv4 segment in `frame` has a valid checksum.
fn tcp_checksum_ok(frame: &[u8]) -> bool {
    let eth = EthernetFrame::new_unchecked(frame);
    let ip = Ipv4Packet::new_unchecked(eth.payload());
    let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
    TcpPacket::new_unchecked(ip.payload()).verify_checksum(&src, &dst)
}

/// Completes the checksum the host left to the guest: the 16 bits at
/// `start + offset` of `frame` hold a partial sum, to which the rest of the
/// frame from `start` is to be added. `None` if the header points outside
/// the frame.
fn finish_checksum(frame: &mut [u8], start: usize, offset: usize) -> Option<()> {
    let at = start.checked_add(offset)?;
    if at.checked_add(2)? > frame.len() || frame.len() - start < 2 {
        return None;
    }
    let sum = !checksum::data(&frame[start..]);
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    Some(())
}

/// The destination port and the source of an IPv4 TCP segment that opens a
/// connection (SYN without ACK or RST), if `frame` is one.
fn connection_request(frame: &[u8]) -> Option<(u16, SocketAddrV4)> {
    let lengths = tcp_segment(frame)?;
    let ip = Ipv4Packet::new_unchecked(&frame[ETHERNET_HEADER..]);
    let tcp = TcpPacket::new_unchecked(&frame[ETHERNET_HEADER + lengths.ip_header..]);
    (tcp.syn() && !tcp.ack() && !tcp.rst())
        .then(|| (tcp.dst_port(), SocketAddrV4::new(ip.src_addr(), tcp.src_port())))
}

/// Whether `frame` holds an IPv4 packet from 0.0.0.0. Only a host asking
/// for an address sends one (a DHCP client; the guest serves none), and
/// nothing may answer it: smoltcp would, and panics when it sends to an
/// unspecified address. Its DHCP client takes a server's address from
/// the source of its offer, then renews the lease by sending there (found
/// by the `net` fuzz target: an offer from 0.0.0.0, then an ACK, ended the
/// guest at the first renewal).
fn unspecified_source(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return false };
    eth.ethertype() == EthernetProtocol::Ipv4
        && Ipv4Packet::new_checked(eth.payload()).is_ok_and(|ip| ip.src_addr().is_unspecified())
}

/// An ARP packet in `frame`: its operation, sender and target addresses.
fn arp(frame: &[u8]) -> Option<(ArpOperation, Ipv4Addr, Ipv4Addr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let packet = ArpPacket::new_checked(eth.payload()).ok()?;
    match ArpRepr::parse(&packet).ok()? {
        ArpRepr::EthernetIpv4 { operation, source_protocol_addr, target_protocol_addr, .. } => {
            Some((operation, source_protocol_addr, target_protocol_addr))
        }
        _ => None,
    }
}

/// An ICMP port unreachable (type 3, code 3) about a UDP datagram in
/// `frame`: the datagram's source port and destination, from the IPv4
/// and UDP headers the message quotes.
fn udp_port_unreachable(frame: &[u8]) -> Option<(u16, SocketAddrV4)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Icmp || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    let icmp = ip.payload();
    if icmp.get(..2)? != [3, 3] {
        return None;
    }
    let quoted = icmp.get(8..)?;
    let ihl = usize::from(quoted.first()? & 0x0f) * 4;
    if quoted.first()? >> 4 != 4 || ihl < 20 || *quoted.get(9)? != 17 {
        return None;
    }
    let dst: [u8; 4] = quoted.get(16..20)?.try_into().ok()?;
    let udp = quoted.get(ihl..ihl + 4)?;
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    Some((sport, SocketAddrV4::new(dst.into(), dport)))
}

/// Notes that smoltcp asks for `addr` by ARP at `now` (see
/// [`Tap::unanswered_since`]).
fn asked(unanswered: &mut Vec<(Ipv4Addr, Instant)>, addr: Ipv4Addr, now: Instant) {
    if unanswered.iter().any(|&(a, _)| a == addr) {
        return;
    }
    if unanswered.len() >= UNANSWERED {
        unanswered.remove(0);
    }
    unanswered.push((addr, now));
}

/// A received frame.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room for a frame to send.
#[derive(Debug)]
pub struct TxToken<'a> {
    /// The loopback device's queue, where a sent frame goes instead.
    looped: Option<&'a mut VecDeque<Vec<u8>>>,
    fd: i32,
    vnet_hdr: bool,
    buf: &'a mut [u8],
    stats: &'a mut TapStats,
    gateway: Option<&'a Gateway>,
    injected: &'a mut Option<[u8; ARP_FRAME]>,
    /// The MSS smoltcp wants the frame cut at, if any.
    mss: Option<usize>,
    /// The tap's unanswered neighbours, for an ARP request.
    unanswered: &'a mut Vec<(Ipv4Addr, Instant)>,
    /// The tap's zero windows, for a TCP segment.
    zero_windows: &'a mut Vec<ZeroWindow>,
    now: Instant,
    /// The tap's [`Tap::tx_more`].
    more: &'a mut bool,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let header = if self.vnet_hdr { VNET_HDR_LEN } else { 0 };
        let len = len.min(self.buf.len() - header);
        let (head, rest) = self.buf.split_at_mut(header);
        let frame = &mut rest[..len];
        let result = f(frame);
        if let Some((ArpOperation::Request, _, target)) = arp(frame) {
            asked(self.unanswered, target, self.now);
        }
        note_window(self.zero_windows, frame);
        *self.more |= may_follow(frame);
        if let Some(q) = self.looped {
            if q.len() < LOOPED_FRAMES {
                q.push_back(frame.to_vec());
                self.stats.tx_frames += 1;
            } else {
                self.stats.tx_dropped += 1;
            }
            return result;
        }
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
        if self.vnet_hdr {
            let hdr = VnetHeader::offload(frame, self.mss);
            hdr.write(head);
            if hdr.gso_type != VNET_GSO_NONE {
                self.stats.tx_offloaded += 1;
            }
        }
        // A full tap queue or any other refusal drops the frame, as a wire
        // would: TCP retransmits, ARP and DHCP retry.
        match hypercall::write(self.fd, &self.buf[..header + len]) {
            Ok(_) => self.stats.tx_frames += 1,
            Err(_) => self.stats.tx_dropped += 1,
        }
        result
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.mss = meta.segmentation_offload_size.map(|m| usize::from(m.get()));
    }
}

impl phy::Device for Tap {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        self.now = now;
        if let Some(g) = &self.gateway
            && g.fixed_mac()
            && self.refreshed.is_none_or(|t| now - t >= gateway::REFRESH.into())
        {
            self.injected = g.gateway_reply();
            self.refreshed = Some(now);
        }
        if let Some(frame) = self.injected.take() {
            self.rx[..ARP_FRAME].copy_from_slice(&frame);
            return Some(self.tokens(0..ARP_FRAME));
        }
        if let Some((frame, len)) = self.window_ack.take() {
            self.rx[..len].copy_from_slice(&frame[..len]);
            return Some(self.tokens(0..len));
        }
        if let Some(frame) = self.held.take() {
            match self.admit(frame.clone()) {
                Admit::Pass => return self.pass(frame),
                Admit::Drop => {}
                Admit::Hold => return None,
            }
        }
        if self.looped.is_some() {
            loop {
                #[allow(unused_mut)]
                let mut f = self.looped.as_mut().and_then(VecDeque::pop_front)?;
                #[cfg(test)]
                if let Some(hook) = self.loop_hook {
                    hook(&mut f);
                }
                self.buffers();
                let n = f.len().min(self.rx.len());
                self.rx[..n].copy_from_slice(&f[..n]);
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += n as u64;
                match self.admit(0..n) {
                    Admit::Pass => return Some(self.tokens(0..n)),
                    Admit::Drop => continue,
                    Admit::Hold => return None,
                }
            }
        }
        if !self.readable {
            return None;
        }
        loop {
            match hypercall::read(self.fd, &mut self.rx) {
                Ok(0) => {
                    self.readable = false;
                    self.drained = true;
                    return None;
                }
                Ok(n) => {
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += n as u64;
                    let Some(frame) = self.received(n) else { continue };
                    if let Some(g) = &self.gateway {
                        match g.rx(&self.rx[frame.clone()]) {
                            gateway::Rx::Pass => {}
                            gateway::Rx::Drop => continue,
                            gateway::Rx::Answer(reply) => {
                                self.send(&reply);
                                continue;
                            }
                        }
                    }
                    match self.admit(frame.clone()) {
                        Admit::Pass => return self.pass(frame),
                        Admit::Drop => continue,
                        Admit::Hold => return None,
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    // EAGAIN: drained. Anything else: nothing to read either.
                    self.readable = false;
                    self.drained = true;
                    return None;
                }
            }
        }
    }

    fn transmit(&mut self, now: Instant) -> Option<TxToken<'_>> {
        self.now = now;
        Some(self.split().1)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETHERNET_HEADER;
        if self.looped.is_some() {
            // Frames never leave memory: nothing to check.
            caps.checksum = smoltcp::phy::ChecksumCapabilities::ignored();
        }
        if self.vnet_hdr {
            // Both ways the device's job (see the module documentation).
            caps.checksum.tcp = Checksum::None;
            caps.segmentation.tcpv4 = NonZeroUsize::new(OFFLOAD_FRAME);
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;

    /// An Ethernet frame with an IPv4 TCP segment from 10.0.0.1 to
    /// 10.0.0.2 port 80 with `flags`.
    fn segment(flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let tcp = &mut f[34..];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        f
    }

    /// `segment(0x18)` (PSH+ACK) with `payload` bytes of data, addresses
    /// 10.0.0.2 → 10.0.0.1, and its TCP checksum filled in.
    fn data_segment(payload: usize) -> Vec<u8> {
        let mut f = segment(0x18);
        f.resize(f.len() + payload, 0);
        for (i, b) in f[54..].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let total = (40 + payload) as u16;
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.set_total_len(total);
        ip.set_src_addr([10, 0, 0, 2].into());
        ip.set_dst_addr([10, 0, 0, 1].into());
        ip.fill_checksum();
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1));
        TcpPacket::new_unchecked(&mut f[34..]).fill_checksum(&src.into(), &dst.into());
        f
    }

    fn tcp_checksum(f: &[u8]) -> u16 {
        TcpPacket::new_unchecked(&f[34..]).checksum()
    }

    /// `data_segment(payload)` with its sequence number `seq`, flags
    /// `flags` and window `window`, checksums filled in.
    fn seg(payload: usize, seq: u32, flags: u8, window: u16) -> Vec<u8> {
        let mut f = data_segment(payload);
        let mut tcp = TcpPacket::new_unchecked(&mut f[34..]);
        tcp.set_seq_number(TcpSeqNumber(seq as i32));
        tcp.set_ack_number(TcpSeqNumber(5000));
        tcp.set_window_len(window);
        f[34 + 13] = flags;
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1));
        TcpPacket::new_unchecked(&mut f[34..]).fill_checksum(&src.into(), &dst.into());
        f
    }

    #[test]
    fn only_a_segment_beyond_one_full_sized_one_asks_for_an_immediate_ack() {
        // 10.0.0.2:40000 -> 10.0.0.1:80, so the guest's side is 10.0.0.1:80.
        let conn = (
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000),
        );
        assert_eq!(quick_ack(&seg(1460, 1, 0x10, 100), 1500), None, "one full-sized segment");
        assert_eq!(quick_ack(&seg(1461, 1, 0x10, 100), 1500), Some(conn));
        assert_eq!(quick_ack(&seg(65000, 1, 0x18, 100), 1500), Some(conn), "a host's burst");
        assert_eq!(quick_ack(&seg(65000, 1, 0x18, 100), 9000), Some(conn), "jumbo MTU");
        assert_eq!(quick_ack(&seg(8000, 1, 0x18, 100), 9000), None, "within a jumbo MTU");
        assert_eq!(quick_ack(&seg(4000, 1, 0x08, 100), 1500), None, "no ACK");
        assert_eq!(quick_ack(&seg(4000, 1, 0x12, 100), 1500), None, "SYN");
        assert_eq!(quick_ack(&seg(4000, 1, 0x14, 100), 1500), None, "RST");
        let mut truncated = seg(4000, 1, 0x10, 100);
        truncated.truncate(2000);
        assert_eq!(quick_ack(&truncated, 1500), None, "lengths that disagree");
        let mut udp = seg(4000, 1, 0x10, 100);
        udp[14 + 9] = 17;
        assert_eq!(quick_ack(&udp, 1500), None, "not TCP");
    }

    #[test]
    fn a_refused_segment_of_a_zero_window_gives_its_ack_at_the_expected_number() {
        let mut zw = Vec::new();
        // The guest (10.0.0.1:80) sends a zero window, acknowledging 1000.
        let mut out = seg(0, 7, 0x10, 0);
        out[26..30].copy_from_slice(&[10, 0, 0, 1]);
        out[30..34].copy_from_slice(&[10, 0, 0, 2]);
        out[34..38].copy_from_slice(&[0, 80, 0x9c, 0x40]);
        TcpPacket::new_unchecked(&mut out[34..]).set_ack_number(TcpSeqNumber(1000));
        note_window(&mut zw, &out);
        assert_eq!(zw.len(), 1);
        assert_eq!(zw[0].ack, 1000);
        // The peer's data at 1011 (past the guest's number, as after a
        // shrunk window), with FIN: an ACK at 1000, no data, no FIN.
        let refused = seg(300, 1011, 0x19, 77);
        let (ack, len) = window_ack(&refused, &zw).expect("an ACK for the refused segment");
        let ack = &ack[..len];
        assert_eq!(len, 54);
        let ip = Ipv4Packet::new_checked(&ack[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len(), 40);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(tcp.seq_number(), TcpSeqNumber(1000));
        assert_eq!(tcp.ack_number(), TcpSeqNumber(5000));
        assert_eq!(tcp.window_len(), 77);
        assert!(tcp.ack() && !tcp.fin() && !tcp.psh());
        assert!(tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
        // A probe one byte before: the same.
        assert!(window_ack(&seg(0, 999, 0x10, 77), &zw).is_some());
        // An ACK where smoltcp expects it, a SYN, a RST, a segment without
        // ACK, one far away, another connection's: left to smoltcp.
        assert!(window_ack(&seg(0, 1000, 0x10, 77), &zw).is_none());
        assert!(window_ack(&seg(10, 1000, 0x12, 77), &zw).is_none());
        assert!(window_ack(&seg(10, 1000, 0x14, 77), &zw).is_none());
        assert!(window_ack(&seg(10, 1000, 0x08, 77), &zw).is_none());
        assert!(window_ack(&seg(10, 1000 + (1 << 17), 0x10, 77), &zw).is_none());
        let mut other = seg(10, 1000, 0x10, 77);
        other[35] ^= 1;
        assert!(window_ack(&other, &zw).is_none());
        // The guest opens its window: forgotten.
        TcpPacket::new_unchecked(&mut out[34..]).set_window_len(10);
        note_window(&mut zw, &out);
        assert!(zw.is_empty());
        assert!(window_ack(&refused, &zw).is_none());
        // At most ZERO_WINDOWS connections, the oldest forgotten.
        TcpPacket::new_unchecked(&mut out[34..]).set_window_len(0);
        for port in 0..ZERO_WINDOWS as u16 + 5 {
            TcpPacket::new_unchecked(&mut out[34..]).set_dst_port(port);
            note_window(&mut zw, &out);
        }
        assert_eq!(zw.len(), ZERO_WINDOWS);
        assert_eq!(zw[0].remote.port(), 5);
    }

    /// An IPv4 packet from 0.0.0.0 is dropped as it is read (smoltcp would
    /// answer it, and panics sending to an unspecified address); one from
    /// an address, an ARP request and a runt frame are not this rule's.
    #[test]
    fn packets_from_no_address_are_dropped_as_they_are_read() {
        use smoltcp::phy::Device;
        use std::os::fd::AsRawFd;
        let mut nowhere = segment(0x02);
        nowhere[26..30].fill(0);
        assert!(unspecified_source(&nowhere));
        assert!(!unspecified_source(&segment(0x02)));
        assert!(!unspecified_source(&nowhere[..20]), "too short for an IPv4 header");
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut tap = Tap::new(ours.as_raw_fd(), 1500, false);
        let ts = crate::net::smol_now(crate::time::Instant::now());
        theirs.send(&nowhere).unwrap();
        theirs.send(&segment(0x10)).unwrap();
        assert!(tap.receive(ts).is_some(), "the second frame comes");
        assert_eq!((tap.stats.rx_frames, tap.stats.rx_dropped), (2, 1));
    }

    /// A tap read until `EAGAIN` says so (the executor then skips its tap
    /// check: `net::taps_drained`); one read up to a frame does not.
    #[test]
    fn reading_a_tap_until_eagain_marks_it_drained() {
        use smoltcp::phy::Device;
        use std::os::fd::AsRawFd;
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut tap = Tap::new(ours.as_raw_fd(), 1500, false);
        let ts = crate::net::smol_now(crate::time::Instant::now());
        for _ in 0..3 {
            theirs.send(&segment(0x10)).unwrap();
        }
        assert!(tap.readable && !tap.drained, "a new tap is read at once");
        assert!(tap.receive(ts).is_some());
        assert!(!tap.drained, "frames left");
        assert!(tap.receive(ts).is_some() && tap.receive(ts).is_some());
        assert!(!tap.drained);
        assert!(tap.receive(ts).is_none());
        assert!(tap.drained && !tap.readable, "EAGAIN");
        // Not read again until `ppoll` says so.
        theirs.send(&segment(0x10)).unwrap();
        assert!(tap.receive(ts).is_none());
        assert_eq!(tap.stats.rx_frames, 3);
    }

    /// Only a short TCP segment says its socket has sent all it could (the
    /// stack then makes no further egress pass for it).
    #[test]
    fn only_a_short_tcp_segment_has_nothing_behind_it() {
        assert!(!may_follow(&segment(0x10)), "an ACK");
        assert!(!may_follow(&segment(0x12)), "a SYN+ACK");
        assert!(!may_follow(&data_segment(5)), "a reply: +OK");
        assert!(!may_follow(&data_segment(SHORT_SEGMENT - 1)));
        assert!(may_follow(&data_segment(SHORT_SEGMENT)));
        assert!(may_follow(&data_segment(1460)), "a full segment");
        assert!(may_follow(&data_segment(5000)), "for the host to cut");
        let mut udp = data_segment(5);
        udp[14 + 9] = 17;
        assert!(may_follow(&udp), "not TCP");
        assert!(may_follow(&[0u8; ARP_FRAME]), "not IPv4");
        // A segment whose lengths do not add up is not taken for short.
        let mut bad = data_segment(5);
        bad[16..18].copy_from_slice(&10u16.to_be_bytes());
        assert!(may_follow(&bad));
    }

    #[test]
    fn a_tcp_segment_leaves_its_checksum_to_the_host() {
        let mut f = data_segment(100);
        let full = tcp_checksum(&f);
        let hdr = VnetHeader::offload(&mut f, None);
        let expected = VnetHeader {
            flags: VNET_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..VnetHeader::default()
        };
        assert_eq!(hdr, expected);
        // What the host does: finish the sum from csum_start.
        let partial = tcp_checksum(&f);
        assert_ne!(partial, full);
        finish_checksum(&mut f, 34, 16).unwrap();
        assert_eq!(tcp_checksum(&f), full);
        // Asked for segmentation, but no larger than one segment: none.
        let mut f = data_segment(100);
        assert_eq!(VnetHeader::offload(&mut f, Some(100)).gso_type, VNET_GSO_NONE);
    }

    #[test]
    fn a_burst_larger_than_the_mss_is_cut_by_the_host() {
        let mut f = data_segment(5000);
        let hdr = VnetHeader::offload(&mut f, Some(1360));
        assert_eq!((hdr.gso_type, hdr.gso_size, hdr.hdr_len), (VNET_GSO_TCPV4, 1360, 54));
        assert_eq!((hdr.flags, hdr.csum_start, hdr.csum_offset), (VNET_NEEDS_CSUM, 34, 16));
        let mut b = [0u8; VNET_HDR_LEN];
        hdr.write(&mut b);
        assert_eq!(VnetHeader::parse(&b), hdr);
        assert_eq!(b, [1, 1, 54, 0, 0x50, 5, 34, 0, 16, 0]);
    }

    #[test]
    fn other_frames_go_as_they_are() {
        let mut udp = data_segment(100);
        udp[14 + 9] = 17;
        let before = udp.clone();
        assert_eq!(VnetHeader::offload(&mut udp, Some(10)), VnetHeader::default());
        assert_eq!(udp, before);
        // A TCP segment whose IP length disagrees with its header.
        let mut short = data_segment(100);
        Ipv4Packet::new_unchecked(&mut short[14..]).set_total_len(30);
        assert_eq!(VnetHeader::offload(&mut short, Some(10)), VnetHeader::default());
        let mut arp = vec![0u8; ARP_FRAME];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(VnetHeader::offload(&mut arp, None), VnetHeader::default());
    }

    #[test]
    fn the_loopback_hands_back_what_it_sends() {
        use phy::{Device, RxToken as _, TxToken as _};
        let mut lo = Tap::loopback(1500);
        assert!(lo.is_loopback() && !lo.has_looped());
        assert!(lo.receive(Instant::ZERO).is_none());
        // No buffers until the first frame, then the sizes a tap has.
        assert!(lo.rx.is_empty() && lo.tx.is_empty());
        let frame = data_segment(100);
        let tx = lo.transmit(Instant::ZERO).unwrap();
        tx.consume(frame.len(), |buf| buf.copy_from_slice(&frame));
        let tap = Tap::new(-1, 1500, false);
        assert_eq!((lo.rx.len(), lo.tx.len()), (tap.rx.len(), tap.tx.len()));
        assert!(lo.has_looped());
        let (rx, _) = lo.receive(Instant::ZERO).expect("the frame comes back");
        assert_eq!(rx.consume(|f| f.to_vec()), frame);
        let tx = lo.transmit(Instant::ZERO).unwrap();
        tx.consume(frame.len(), |buf| buf.copy_from_slice(&frame));
        assert!(lo.has_looped());
        let (rx, _) = lo.receive(Instant::ZERO).expect("the frame comes back");
        assert_eq!(rx.consume(|f| f.to_vec()), frame);
        assert!(!lo.has_looped() && lo.receive(Instant::ZERO).is_none());
        // A full queue drops, as a wire would.
        for _ in 0..LOOPED_FRAMES + 5 {
            lo.transmit(Instant::ZERO).unwrap().consume(10, |b| b.fill(0));
        }
        assert_eq!(lo.looped.as_ref().map(VecDeque::len), Some(LOOPED_FRAMES));
        assert_eq!(lo.stats.tx_dropped, 5);
    }

    #[test]
    fn received_headers_are_checked() {
        let mut tap = Tap::new(-1, 1500, true);
        let mut put = |hdr: VnetHeader, frame: &[u8]| {
            hdr.write(&mut tap.rx[..VNET_HDR_LEN]);
            tap.rx[VNET_HDR_LEN..VNET_HDR_LEN + frame.len()].copy_from_slice(frame);
            let got = tap.received(VNET_HDR_LEN + frame.len());
            assert!(got.as_ref().is_none_or(|r| *r == (VNET_HDR_LEN..VNET_HDR_LEN + frame.len())));
            got.map(|r| tap.rx[r].to_vec())
        };
        let plain = VnetHeader::default();
        let frame = data_segment(10);
        assert_eq!(put(plain, &frame), Some(frame.clone()));
        // A bad TCP checksum: dropped, unless the host checked it.
        let mut bad = frame.clone();
        bad[60] ^= 1;
        assert_eq!(put(plain, &bad), None);
        let valid = VnetHeader { flags: VNET_DATA_VALID, ..plain };
        assert_eq!(put(valid, &bad), Some(bad.clone()));
        // The host's own TCP segment, checksum unfinished: taken as it is.
        let mut partial = frame.clone();
        let needs = VnetHeader::offload(&mut partial, None);
        assert_eq!(put(needs, &partial), Some(partial.clone()));
        // A burst to take whole, with or without ECN.
        let burst = data_segment(5000);
        let gso = VnetHeader { gso_type: VNET_GSO_TCPV4, gso_size: 1448, ..plain };
        assert_eq!(put(gso, &burst), Some(burst.clone()));
        let ecn = VnetHeader { gso_type: VNET_GSO_TCPV4 | VNET_GSO_ECN, ..gso };
        assert_eq!(put(ecn, &burst), Some(burst.clone()));
        // UDP: an unfinished checksum is finished; segmentation is refused.
        let mut udp = data_segment(10);
        udp[14 + 9] = 17;
        let mut finished = udp.clone();
        finished[40..42].copy_from_slice(&[0, 0]);
        let udp_needs =
            VnetHeader { flags: VNET_NEEDS_CSUM, csum_start: 34, csum_offset: 6, ..plain };
        let got = put(udp_needs, &finished).unwrap();
        let sum = !checksum::data(&got[34..]);
        assert_eq!(sum, 0, "a finished checksum sums to all ones");
        assert_eq!(put(gso, &udp), None);
        assert_eq!(put(VnetHeader { gso_type: 3, ..plain }, &udp), None);
        // A checksum to finish outside the frame: dropped.
        let outside = VnetHeader { csum_start: 60, csum_offset: 16, ..udp_needs };
        assert_eq!(put(outside, &udp), None);
        // Shorter than a header: dropped.
        assert_eq!(tap.received(VNET_HDR_LEN - 1), None);
        assert_eq!(tap.stats.rx_dropped, 5);
        // Without headers the frame is all that was read.
        let mut plain = Tap::new(-1, 1500, false);
        assert_eq!(plain.received(60), Some(0..60));
    }

    /// The port and peer of `segment`'s connection.
    const REQUEST: (u16, SocketAddrV4) = (80, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000));

    #[test]
    fn only_a_bare_syn_is_a_connection_request() {
        let syn_port = |f: &[u8]| connection_request(f).map(|(port, _)| port);
        assert_eq!(connection_request(&segment(0x02)), Some(REQUEST));
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

    #[test]
    fn a_syn_waits_for_the_connections_and_passes_once() {
        let mut tap = Tap::new(-1, 1500, false);
        let syn = segment(0x02);
        tap.rx[..syn.len()].copy_from_slice(&syn);
        let frame = 0..syn.len();
        // Not listened: smoltcp answers it (with a reset).
        assert_eq!(tap.admit(frame.clone()), Admit::Pass);
        tap.syn_gate = vec![(80, 2)];
        assert_eq!(tap.admit(frame.clone()), Admit::Hold, "connections not listed");
        tap.connections_listed = true;
        assert_eq!(tap.admit(frame.clone()), Admit::Pass);
        assert_eq!(tap.connections, [REQUEST]);
        assert_eq!(tap.admit(frame.clone()), Admit::Drop, "the same SYN again");
        assert_eq!(tap.syn_gate, [(80, 1)], "the second took no listening socket");
        // Another client's SYN takes the last one; then the gate is shut.
        tap.connections.clear();
        assert_eq!(tap.admit(frame.clone()), Admit::Pass);
        assert!(tap.syn_gate_closed);
        tap.connections.clear();
        assert_eq!(tap.admit(frame), Admit::Drop, "no listening socket left");
    }

    /// An Ethernet frame with an ICMP port unreachable from 10.0.0.1
    /// quoting a UDP datagram 10.0.0.2:`sport` -> 10.0.0.1:`dport`.
    fn port_unreachable(sport: u16, dport: u16) -> Vec<u8> {
        let mut quoted = vec![0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1];
        quoted.extend_from_slice(&sport.to_be_bytes());
        quoted.extend_from_slice(&dport.to_be_bytes());
        quoted.extend_from_slice(&[0, 16, 0, 0]);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let total = (20 + icmp.len()) as u8;
        let mut ip = vec![0x45, 0, 0, total, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let sum = !checksum::data(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&icmp);
        frame
    }

    #[test]
    fn port_unreachables_name_the_datagram_and_hostile_ones_nothing() {
        let frame = port_unreachable(40000, 7999);
        let peer = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 7999);
        assert_eq!(udp_port_unreachable(&frame), Some((40000, peer)));
        // Every truncation, and other codes or quoted protocols: nothing.
        for n in 0..frame.len() {
            assert_eq!(udp_port_unreachable(&frame[..n]), None, "cut at {n}");
        }
        let mut host = frame.clone();
        host[14 + 20 + 1] = 1;
        assert_eq!(udp_port_unreachable(&host), None);
        let mut tcp = frame.clone();
        tcp[14 + 20 + 8 + 9] = 6;
        assert_eq!(udp_port_unreachable(&tcp), None);
        let mut bad_ihl = frame.clone();
        bad_ihl[14 + 20 + 8] = 0x4f;
        assert_eq!(udp_port_unreachable(&bad_ihl), None);
        // Reported once when taken, and only for its port and peer.
        let mut tap = Tap::new(-1, 1500, false);
        let n = frame.len();
        tap.rx[..n].copy_from_slice(&frame);
        let _ = tap.tokens(0..n);
        assert!(!tap.port_unreachable(40001, peer, true));
        assert!(tap.port_unreachable(40000, peer, false));
        assert!(tap.port_unreachable(40000, peer, true));
        assert!(!tap.port_unreachable(40000, peer, true));
    }
}
