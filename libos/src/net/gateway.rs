//! A default gateway outside the interface's prefix, or with a fixed MAC,
//! made to work under smoltcp by the tap device, frame by frame.
//!
//! Pod networks give a pod a /32 and a default gateway that no host owns:
//! Calico's 169.254.1.1, which the host side of the pod's veth answers ARP
//! for by proxy ARP; AWS VPC CNI's 169.254.1.1 too, with a permanent
//! neighbour entry for it in the pod instead. smoltcp 0.14 only ARPs for
//! and learns from senders inside one of the interface's prefixes, and has
//! no API to fill its neighbour cache: with a /32 it never learns the
//! gateway's MAC, and nothing off-link is reachable. Without forking it:
//!
//! * the interface also gets the gateway as a /32, after its own address
//!   (`Iface::new`): smoltcp then takes the gateway as on-link, ARPs for it
//!   and accepts its replies. Its own address stays first, so it stays the
//!   source of everything not sent to the gateway's own address.
//! * on the way out ([`Gateway::tx`]): smoltcp's ARP requests for the
//!   gateway name the gateway itself as the sender (the prefix that holds
//!   the target is the gateway's /32); they get the guest's address instead,
//!   the sender a proxy ARP can answer. IP packets from the gateway's
//!   address (a connection to the gateway itself) are dropped: it is not
//!   the guest's.
//! * on the way in ([`Gateway::rx`]): ARP for the gateway's address is
//!   dropped (never answered: the guest is not the gateway), and so are IP
//!   packets to it; ARP requests for the guest's address from senders
//!   outside its prefix (the host resolving the guest with a client's
//!   address as the sender), which smoltcp ignores, are answered here.
//! * with a fixed gateway MAC (`NET_N_GATEWAY_MAC`, inside the prefix or
//!   not), ARP requests for the gateway never reach the wire: the device
//!   answers them with a reply it feeds back to smoltcp
//!   ([`Tx::Answer`]), and feeds one every [`REFRESH`] anyway
//!   ([`Gateway::gateway_reply`]) so that the entry never expires.
//!
//! A gateway inside the prefix without a fixed MAC needs none of this: the
//! device then has no `Gateway` and behaves exactly as before.

use core::net::Ipv4Addr;
use core::time::Duration;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, Ipv4Cidr,
    Ipv4Packet,
};

/// An ARP frame for IPv4 over Ethernet: 14 bytes of header, 28 of ARP.
pub const ARP_FRAME: usize = 42;

/// How often the device refreshes smoltcp's entry for a fixed gateway MAC
/// (smoltcp forgets an entry after 60 s).
pub const REFRESH: Duration = Duration::from_secs(20);

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rx {
    /// Hand it to smoltcp.
    Pass,
    /// Drop it.
    Drop,
    /// Drop it and send this ARP reply instead.
    Answer([u8; ARP_FRAME]),
}

/// What to do with a frame smoltcp sends (after [`Gateway::tx`] rewrote it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tx {
    /// Send it.
    Send,
    /// Drop it.
    Drop,
    /// Do not send it: feed this ARP reply to smoltcp as if received.
    Answer([u8; ARP_FRAME]),
}

/// The guest's side of a link whose gateway is outside its prefix or has a
/// fixed MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    /// The guest's address and prefix.
    cidr: Ipv4Cidr,
    /// The guest's MAC.
    mac: EthernetAddress,
    /// The gateway.
    gateway: Ipv4Addr,
    /// Its fixed MAC, if any.
    gateway_mac: Option<EthernetAddress>,
}

impl Gateway {
    /// The link of a guest at `address/prefix` with MAC `mac` and default
    /// gateway `gateway`, whose MAC may be fixed; `None` if the gateway is
    /// inside the prefix and its MAC not fixed (nothing to do then).
    pub fn new(
        address: Ipv4Addr,
        prefix: u8,
        mac: [u8; 6],
        gateway: Ipv4Addr,
        gateway_mac: Option<[u8; 6]>,
    ) -> Option<Self> {
        let link = Self {
            cidr: Ipv4Cidr::new(address, prefix),
            mac: EthernetAddress(mac),
            gateway,
            gateway_mac: gateway_mac.map(EthernetAddress),
        };
        (link.off_link() || link.gateway_mac.is_some()).then_some(link)
    }

    /// Whether the gateway is outside the guest's prefix: the interface
    /// then also carries it as a /32 ([`Self::gateway_cidr`]).
    pub fn off_link(&self) -> bool {
        !self.cidr.contains_addr(&self.gateway)
    }

    /// The gateway as a /32, the second address of an interface whose
    /// gateway is off-link.
    pub fn gateway_cidr(&self) -> Ipv4Cidr {
        Ipv4Cidr::new(self.gateway, 32)
    }

    /// Whether the gateway's MAC is fixed.
    pub fn fixed_mac(&self) -> bool {
        self.gateway_mac.is_some()
    }

    /// The ARP reply from a gateway with a fixed MAC to the guest, which
    /// fills smoltcp's neighbour cache as a real one would.
    pub fn gateway_reply(&self) -> Option<[u8; ARP_FRAME]> {
        let gw_mac = self.gateway_mac?;
        Some(arp_reply(gw_mac, self.gateway, self.mac, self.cidr.address()))
    }

    /// Filters a frame read from the tap before smoltcp sees it.
    pub fn rx(&self, frame: &[u8]) -> Rx {
        if !self.off_link() {
            return Rx::Pass;
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return Rx::Pass };
        match eth.ethertype() {
            EthernetProtocol::Arp => {
                let Ok(arp) = ArpPacket::new_checked(eth.payload()) else { return Rx::Pass };
                let Ok(ArpRepr::EthernetIpv4 {
                    operation,
                    source_hardware_addr,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                }) = ArpRepr::parse(&arp)
                else {
                    return Rx::Pass;
                };
                if target_protocol_addr == self.gateway {
                    return Rx::Drop;
                }
                let for_us = eth.dst_addr().is_broadcast() || eth.dst_addr() == self.mac;
                if operation == ArpOperation::Request
                    && for_us
                    && target_protocol_addr == self.cidr.address()
                    && unicast(source_protocol_addr)
                    && source_hardware_addr.is_unicast()
                    && !self.cidr.contains_addr(&source_protocol_addr)
                    && source_protocol_addr != self.gateway
                {
                    // smoltcp ignores a sender outside its prefixes.
                    return Rx::Answer(arp_reply(
                        self.mac,
                        self.cidr.address(),
                        source_hardware_addr,
                        source_protocol_addr,
                    ));
                }
                Rx::Pass
            }
            EthernetProtocol::Ipv4 => match Ipv4Packet::new_checked(eth.payload()) {
                Ok(ip) if ip.dst_addr() == self.gateway => Rx::Drop,
                _ => Rx::Pass,
            },
            _ => Rx::Pass,
        }
    }

    /// Rewrites a frame smoltcp is about to send, or says not to send it.
    pub fn tx(&self, frame: &mut [u8]) -> Tx {
        let Ok(eth) = EthernetFrame::new_checked(&*frame) else { return Tx::Send };
        let ethertype = eth.ethertype();
        let payload = &mut frame[EthernetFrame::<&[u8]>::header_len()..];
        match ethertype {
            EthernetProtocol::Arp => {
                let Ok(mut arp) = ArpPacket::new_checked(payload) else { return Tx::Send };
                let Ok(ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                }) = ArpRepr::parse(&arp)
                else {
                    return Tx::Send;
                };
                if target_protocol_addr != self.gateway {
                    return Tx::Send;
                }
                if let Some(reply) = self.gateway_reply() {
                    return Tx::Answer(reply);
                }
                if source_protocol_addr == self.gateway {
                    arp.set_source_protocol_addr(&self.cidr.address().octets());
                }
                Tx::Send
            }
            EthernetProtocol::Ipv4 if self.off_link() => match Ipv4Packet::new_checked(&*payload) {
                Ok(ip) if ip.src_addr() == self.gateway => Tx::Drop,
                _ => Tx::Send,
            },
            _ => Tx::Send,
        }
    }
}

/// Not unspecified, broadcast or multicast.
fn unicast(a: Ipv4Addr) -> bool {
    !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast()
}

/// An ARP reply from `(sender_mac, sender)` to `(target_mac, target)`, in
/// an Ethernet frame between the same MACs.
fn arp_reply(
    sender_mac: EthernetAddress,
    sender: Ipv4Addr,
    target_mac: EthernetAddress,
    target: Ipv4Addr,
) -> [u8; ARP_FRAME] {
    let mut buf = [0u8; ARP_FRAME];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_dst_addr(target_mac);
    eth.set_src_addr(sender_mac);
    eth.set_ethertype(EthernetProtocol::Arp);
    ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: sender_mac,
        source_protocol_addr: sender,
        target_hardware_addr: target_mac,
        target_protocol_addr: target,
    }
    .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{IpProtocol, Ipv4Repr};

    const GUEST: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);
    const GW: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 9);
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const HOST_MAC: [u8; 6] = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];

    fn pod(gateway_mac: Option<[u8; 6]>) -> Gateway {
        Gateway::new(GUEST, 32, MAC, GW, gateway_mac).expect("off-link")
    }

    /// An ARP frame: (op, sender MAC and address, target MAC and address),
    /// sent to `eth_dst`.
    fn arp(
        operation: ArpOperation,
        sender: ([u8; 6], Ipv4Addr),
        target: ([u8; 6], Ipv4Addr),
        eth_dst: [u8; 6],
    ) -> Vec<u8> {
        let mut buf = vec![0u8; ARP_FRAME];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst_addr(EthernetAddress(eth_dst));
        eth.set_src_addr(EthernetAddress(sender.0));
        eth.set_ethertype(EthernetProtocol::Arp);
        ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: EthernetAddress(sender.0),
            source_protocol_addr: sender.1,
            target_hardware_addr: EthernetAddress(target.0),
            target_protocol_addr: target.1,
        }
        .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        buf
    }

    fn parse_arp(frame: &[u8]) -> (EthernetAddress, ArpRepr) {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        assert_eq!(eth.ethertype(), EthernetProtocol::Arp);
        (eth.dst_addr(), ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap())
    }

    /// An IPv4 frame carrying 8 bytes of UDP-ish payload.
    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len: 8,
            hop_limit: 64,
        };
        let mut buf = vec![0u8; 14 + repr.buffer_len() + 8];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst_addr(EthernetAddress(MAC));
        eth.set_src_addr(EthernetAddress(HOST_MAC));
        eth.set_ethertype(EthernetProtocol::Ipv4);
        repr.emit(
            &mut Ipv4Packet::new_unchecked(eth.payload_mut()),
            &ChecksumCapabilities::default(),
        );
        buf
    }

    const BROADCAST: [u8; 6] = [0xff; 6];
    const ZERO: [u8; 6] = [0; 6];

    #[test]
    fn only_an_off_link_gateway_or_a_fixed_mac_needs_the_shim() {
        let in_prefix = Ipv4Addr::new(10, 1, 2, 1);
        assert_eq!(Gateway::new(GUEST, 24, MAC, in_prefix, None), None);
        let fixed = Gateway::new(GUEST, 24, MAC, in_prefix, Some(HOST_MAC)).unwrap();
        assert!(!fixed.off_link() && fixed.fixed_mac());
        let pod = pod(None);
        assert!(pod.off_link() && !pod.fixed_mac());
        assert_eq!(pod.gateway_cidr(), Ipv4Cidr::new(GW, 32));
        assert_eq!(pod.gateway_reply(), None);
        // A /24 whose gateway is elsewhere is off-link too.
        assert!(Gateway::new(GUEST, 24, MAC, GW, None).unwrap().off_link());
    }

    #[test]
    fn arp_requests_for_the_gateway_get_the_guest_as_sender() {
        let pod = pod(None);
        // What smoltcp sends: the gateway's /32 holds the target, so it
        // names the gateway as the sender.
        let mut frame = arp(ArpOperation::Request, (MAC, GW), (ZERO, GW), BROADCAST);
        assert_eq!(pod.tx(&mut frame), Tx::Send);
        let want = arp(ArpOperation::Request, (MAC, GUEST), (ZERO, GW), BROADCAST);
        assert_eq!(frame, want);
        // Already right, or for someone else: untouched.
        let mut frame = want.clone();
        assert_eq!(pod.tx(&mut frame), Tx::Send);
        assert_eq!(frame, want);
        let other = arp(ArpOperation::Request, (MAC, GUEST), (ZERO, CLIENT), BROADCAST);
        let mut frame = other.clone();
        assert_eq!(pod.tx(&mut frame), Tx::Send);
        assert_eq!(frame, other);
        // Replies are never rewritten.
        let reply = arp(ArpOperation::Reply, (MAC, GUEST), (HOST_MAC, CLIENT), HOST_MAC);
        let mut frame = reply.clone();
        assert_eq!(pod.tx(&mut frame), Tx::Send);
        assert_eq!(frame, reply);
    }

    #[test]
    fn a_fixed_gateway_mac_is_answered_locally_and_never_asked_on_the_wire() {
        let pod = pod(Some(HOST_MAC));
        let mut frame = arp(ArpOperation::Request, (MAC, GW), (ZERO, GW), BROADCAST);
        let Tx::Answer(reply) = pod.tx(&mut frame) else { panic!("not answered") };
        assert_eq!(Some(reply), pod.gateway_reply());
        let (dst, repr) = parse_arp(&reply);
        assert_eq!(dst, EthernetAddress(MAC));
        assert_eq!(
            repr,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: EthernetAddress(HOST_MAC),
                source_protocol_addr: GW,
                target_hardware_addr: EthernetAddress(MAC),
                target_protocol_addr: GUEST,
            }
        );
        assert_eq!(&reply[6..12], &HOST_MAC);
        // The same with an on-link gateway.
        let gw = Ipv4Addr::new(10, 1, 2, 1);
        let fixed = Gateway::new(GUEST, 24, MAC, gw, Some(HOST_MAC)).unwrap();
        let mut frame = arp(ArpOperation::Request, (MAC, GUEST), (ZERO, gw), BROADCAST);
        assert!(matches!(fixed.tx(&mut frame), Tx::Answer(_)));
    }

    #[test]
    fn the_gateway_address_is_never_the_guests() {
        let pod = pod(None);
        for op in [ArpOperation::Request, ArpOperation::Reply] {
            let frame = arp(op, (HOST_MAC, CLIENT), (ZERO, GW), BROADCAST);
            assert_eq!(pod.rx(&frame), Rx::Drop, "{op:?}");
        }
        assert_eq!(pod.rx(&ipv4(CLIENT, GW)), Rx::Drop);
        assert_eq!(pod.rx(&ipv4(CLIENT, GUEST)), Rx::Pass);
        assert_eq!(pod.rx(&ipv4(GW, GUEST)), Rx::Pass);
        let mut out = ipv4(GW, CLIENT);
        assert_eq!(pod.tx(&mut out), Tx::Drop);
        let mut out = ipv4(GUEST, CLIENT);
        assert_eq!(pod.tx(&mut out), Tx::Send);
    }

    #[test]
    fn the_gateways_replies_reach_smoltcp() {
        let pod = pod(None);
        let frame = arp(ArpOperation::Reply, (HOST_MAC, GW), (MAC, GUEST), MAC);
        assert_eq!(pod.rx(&frame), Rx::Pass);
    }

    #[test]
    fn arp_requests_for_the_guest_from_outside_its_prefix_are_answered() {
        let pod = pod(None);
        for eth_dst in [BROADCAST, MAC] {
            let frame = arp(ArpOperation::Request, (HOST_MAC, CLIENT), (ZERO, GUEST), eth_dst);
            let Rx::Answer(reply) = pod.rx(&frame) else { panic!("not answered") };
            let (dst, repr) = parse_arp(&reply);
            assert_eq!(dst, EthernetAddress(HOST_MAC));
            assert_eq!(&reply[6..12], &MAC);
            assert_eq!(
                repr,
                ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: EthernetAddress(MAC),
                    source_protocol_addr: GUEST,
                    target_hardware_addr: EthernetAddress(HOST_MAC),
                    target_protocol_addr: CLIENT,
                }
            );
        }
        // Left to smoltcp: another MAC, a probe (sender 0.0.0.0), a sender
        // smoltcp accepts itself (in the prefix, or the gateway), a reply,
        // a request for someone else.
        let cases = [
            arp(ArpOperation::Request, (HOST_MAC, CLIENT), (ZERO, GUEST), HOST_MAC),
            arp(ArpOperation::Request, (HOST_MAC, Ipv4Addr::UNSPECIFIED), (ZERO, GUEST), BROADCAST),
            arp(ArpOperation::Request, (HOST_MAC, GW), (ZERO, GUEST), BROADCAST),
            arp(ArpOperation::Request, (BROADCAST, CLIENT), (ZERO, GUEST), BROADCAST),
            arp(ArpOperation::Reply, (HOST_MAC, CLIENT), (MAC, GUEST), MAC),
            arp(
                ArpOperation::Request,
                (HOST_MAC, CLIENT),
                (ZERO, Ipv4Addr::new(10, 1, 2, 4)),
                BROADCAST,
            ),
        ];
        for (i, frame) in cases.iter().enumerate() {
            assert_eq!(pod.rx(frame), Rx::Pass, "case {i}");
        }
        let wide = Gateway::new(GUEST, 24, MAC, GW, None).unwrap();
        let neighbour = Ipv4Addr::new(10, 1, 2, 9);
        let frame = arp(ArpOperation::Request, (HOST_MAC, neighbour), (ZERO, GUEST), BROADCAST);
        assert_eq!(wide.rx(&frame), Rx::Pass);
    }

    #[test]
    fn an_on_link_gateway_with_a_fixed_mac_filters_nothing_it_receives() {
        let gw = Ipv4Addr::new(10, 1, 2, 1);
        let fixed = Gateway::new(GUEST, 24, MAC, gw, Some(HOST_MAC)).unwrap();
        let frame = arp(ArpOperation::Request, (HOST_MAC, CLIENT), (ZERO, GUEST), BROADCAST);
        assert_eq!(fixed.rx(&frame), Rx::Pass);
        assert_eq!(fixed.rx(&ipv4(CLIENT, gw)), Rx::Pass);
        let mut out = ipv4(gw, CLIENT);
        assert_eq!(fixed.tx(&mut out), Tx::Send);
    }

    #[test]
    fn truncated_and_foreign_frames_pass_untouched() {
        let pod = pod(Some(HOST_MAC));
        let full = arp(ArpOperation::Request, (MAC, GW), (ZERO, GW), BROADCAST);
        for len in 0..full.len() {
            let mut frame = full[..len].to_vec();
            assert_eq!(pod.rx(&frame), Rx::Pass, "{len}");
            assert_eq!(pod.tx(&mut frame), Tx::Send, "{len}");
            assert_eq!(frame, full[..len]);
        }
        let mut ipv6 = ipv4(GW, GW);
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(pod.rx(&ipv6), Rx::Pass);
        assert_eq!(pod.tx(&mut ipv6.clone()), Tx::Send);
    }
}
