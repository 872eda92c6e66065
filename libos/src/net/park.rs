//! Idle connections out of smoltcp's way.
//!
//! smoltcp's `Interface::poll_egress` visits every socket of its set on
//! every network turn, and its TCP ingress finds a segment's socket by
//! walking the set: a server holding hundreds of idle keep-alive
//! connections paid for each of them on every turn (docs/performance.md,
//! "Where the time goes with 900 idle connections"). So an interface keeps
//! the connections that have nothing to do *parked*: out of the
//! `SocketSet` smoltcp polls, in [`Streams`], until something concerns
//! them again (docs/networking.md, "Idle connections").
//!
//! * A [`TcpStream`](super::TcpStream) names its socket by a stable
//!   [`Id`], not by smoltcp's handle: the socket is either in the active set
//!   (with a handle that changes each time it returns) or parked here.
//! * Every [`SWEEP`], the stack parks the streams that the application left
//!   alone for a whole sweep and that smoltcp has nothing for: established,
//!   nothing unsent or unacknowledged, and no ACK, window update or
//!   retransmission owed now (smoltcp's own `poll_at` for that socket alone
//!   says so: no deadline, or a later one, remembered).
//! * A parked socket goes back to the active set before smoltcp could need
//!   it: when the application touches it in a way that may make a segment
//!   (read, write, close, options), when a frame for its 4-tuple arrives
//!   (the tap peeks at each frame with [`classify`] and holds it until the
//!   socket is back), when a frame arrives that cannot be told cheaply
//!   (every parked socket goes back), and when its deadline (keep-alive,
//!   timeout) comes.
//!
//! smoltcp then sees the same sockets in the same states whenever it looks
//! at them, so what goes on the wire does not change.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::Socket;
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;

/// A stream's stable name on its interface.
pub(crate) type Id = u32;

/// How often the stack looks for streams to park; a stream must have been
/// left alone by the application for a whole sweep to be parked, so one
/// busy even a few times a second never moves.
pub(crate) const SWEEP: Duration = Duration::from_millis(250);

/// A TCP connection's 4-tuple, from the guest's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
}

/// What a received frame is, for the parked sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Not IPv4 TCP (ARP, UDP, ICMP, IPv6, ...): it cannot reach a parked
    /// socket, which are all IPv4 TCP.
    Other,
    /// A whole, unfragmented IPv4 TCP segment for this 4-tuple.
    Tcp(Key),
    /// IPv4 whose TCP 4-tuple cannot be read cheaply and surely: a
    /// fragment, a truncated or malformed header. It might reach any
    /// socket.
    Unsure,
}

const ETHERNET_HEADER: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const PROTOCOL_TCP: u8 = 6;
const TCP_HEADER: usize = 20;

/// Classifies an Ethernet frame (hostile bytes: every read is bounds
/// checked, nothing is trusted).
pub(crate) fn classify(frame: &[u8]) -> Class {
    let Some(ethertype) = frame.get(12..ETHERNET_HEADER) else { return Class::Other };
    if ethertype != ETHERTYPE_IPV4 {
        return Class::Other;
    }
    let ip = &frame[ETHERNET_HEADER..];
    let Some(&[version_ihl, ..]) = ip.get(..20) else { return Class::Unsure };
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if version_ihl >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() {
        return Class::Unsure;
    }
    if ip[9] != PROTOCOL_TCP {
        return Class::Other;
    }
    // More fragments, or a fragment offset.
    if ip[6] & 0x20 != 0 || u16::from_be_bytes([ip[6] & 0x1f, ip[7]]) != 0 {
        return Class::Unsure;
    }
    let Some(tcp) = ip.get(ihl..total).filter(|t| t.len() >= TCP_HEADER) else {
        return Class::Unsure;
    };
    let addr = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    Class::Tcp(Key {
        local: SocketAddrV4::new(addr(&ip[16..20]), port(&tcp[2..4])),
        remote: SocketAddrV4::new(addr(&ip[12..16]), port(&tcp[0..2])),
    })
}

/// What the stack must bring back before smoltcp sees the frame the tap
/// holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    One(Id),
    All,
}

/// The parked connections' 4-tuples, which the tap looks up for each
/// frame. A `BTreeMap`: its cost per look-up is bounded whatever
/// 4-tuples a peer chooses (a hash map without a keyed hasher is not).
pub(crate) type ParkedKeys = BTreeMap<Key, Id>;

/// Decides what becomes of a received frame while sockets are parked:
/// `Some` if it must wait for them to be brought back.
pub(crate) fn wake_for(parked: &ParkedKeys, frame: &[u8]) -> Option<Wake> {
    if parked.is_empty() {
        return None;
    }
    match classify(frame) {
        Class::Other => None,
        Class::Tcp(key) => parked.get(&key).map(|&id| Wake::One(id)),
        Class::Unsure => Some(Wake::All),
    }
}

enum Slot {
    Free,
    Active {
        handle: SocketHandle,
        /// The application used the stream since the last sweep.
        touched: bool,
    },
    Parked {
        socket: Box<tcp::Socket<'static>>,
        key: Key,
        /// When smoltcp wants it polled (keep-alive, timeout), if ever.
        deadline: Option<Instant>,
    },
}

/// An interface's streams: where each one's socket is.
pub(crate) struct Streams {
    slots: Vec<Slot>,
    free: Vec<Id>,
    /// The parked sockets' deadlines, earliest first.
    deadlines: BTreeSet<(Instant, Id)>,
    /// A set of one socket, to ask smoltcp when that socket wants polling.
    probe: SocketSet<'static>,
    next_sweep: Option<Instant>,
    /// Sockets parked and brought back, for tests and statistics.
    pub(crate) parks: u64,
    pub(crate) unparks: u64,
}

impl Streams {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            deadlines: BTreeSet::new(),
            probe: SocketSet::new(Vec::new()),
            next_sweep: None,
            parks: 0,
            unparks: 0,
        }
    }

    /// Names the socket at `handle` (in the active set) as a stream.
    pub(crate) fn add(&mut self, handle: SocketHandle) -> Id {
        let slot = Slot::Active { handle, touched: true };
        if let Some(id) = self.free.pop() {
            self.slots[id as usize] = slot;
            return id;
        }
        self.slots.push(slot);
        (self.slots.len() - 1) as Id
    }

    /// Whether the stream is parked.
    #[cfg(test)]
    pub(crate) fn is_parked(&self, id: Id) -> bool {
        matches!(self.slots[id as usize], Slot::Parked { .. })
    }

    /// How many streams are parked.
    #[cfg(test)]
    pub(crate) fn parked(&self) -> usize {
        self.slots.iter().filter(|s| matches!(s, Slot::Parked { .. })).count()
    }

    /// The stream's socket in the active set (brought back first if
    /// parked), for an action that may give smoltcp something to send;
    /// the stream counts as used.
    pub(crate) fn handle(
        &mut self,
        id: Id,
        sockets: &mut SocketSet<'static>,
        parked: &mut ParkedKeys,
    ) -> SocketHandle {
        self.unpark(id, sockets, parked);
        match &mut self.slots[id as usize] {
            Slot::Active { handle, touched } => {
                *touched = true;
                *handle
            }
            _ => unreachable!("stream {id} is not active"),
        }
    }

    /// The stream's socket where it is, for what cannot give smoltcp
    /// anything to send (its state, addresses, a waker).
    pub(crate) fn peek<'s>(
        &'s mut self,
        id: Id,
        sockets: &'s mut SocketSet<'static>,
    ) -> &'s mut tcp::Socket<'static> {
        match &mut self.slots[id as usize] {
            Slot::Active { handle, .. } => sockets.get_mut::<tcp::Socket>(*handle),
            Slot::Parked { socket, .. } => socket,
            Slot::Free => unreachable!("stream {id} was removed"),
        }
    }

    /// Forgets the stream; its socket stays in the active set, at the
    /// handle returned.
    pub(crate) fn remove(
        &mut self,
        id: Id,
        sockets: &mut SocketSet<'static>,
        parked: &mut ParkedKeys,
    ) -> SocketHandle {
        let h = self.handle(id, sockets, parked);
        self.slots[id as usize] = Slot::Free;
        self.free.push(id);
        h
    }

    /// Brings a parked stream's socket back to the active set.
    pub(crate) fn unpark(
        &mut self,
        id: Id,
        sockets: &mut SocketSet<'static>,
        parked: &mut ParkedKeys,
    ) {
        let slot = &mut self.slots[id as usize];
        if !matches!(slot, Slot::Parked { .. }) {
            return;
        }
        let Slot::Parked { socket, key, deadline } = core::mem::replace(slot, Slot::Free) else {
            return;
        };
        parked.remove(&key);
        if let Some(t) = deadline {
            self.deadlines.remove(&(t, id));
        }
        // Used just now (the application, a frame, a deadline): not parked
        // again before a whole sweep has passed without the application.
        *slot = Slot::Active { handle: sockets.add(*socket), touched: true };
        self.unparks += 1;
    }

    /// Brings every parked socket back.
    pub(crate) fn unpark_all(&mut self, sockets: &mut SocketSet<'static>, parked: &mut ParkedKeys) {
        let ids: Vec<Id> = parked.values().copied().collect();
        log::debug!("a frame that could be for any: {} parked connections back", ids.len());
        for id in ids {
            self.unpark(id, sockets, parked);
        }
    }

    /// Brings back the parked sockets whose deadline has come.
    pub(crate) fn unpark_due(
        &mut self,
        now: Instant,
        sockets: &mut SocketSet<'static>,
        parked: &mut ParkedKeys,
    ) {
        while let Some(&(t, id)) = self.deadlines.first()
            && t <= now
        {
            self.deadlines.pop_first();
            self.unpark(id, sockets, parked);
        }
    }

    /// The earliest parked deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(t, _)| t)
    }

    /// Parks the streams left alone since the last sweep that smoltcp has
    /// nothing for, if a sweep is due.
    pub(crate) fn sweep(
        &mut self,
        now: Instant,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        parked: &mut ParkedKeys,
    ) {
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.next_sweep = Some(now + SWEEP);
        let parks = self.parks;
        for id in 0..self.slots.len() as Id {
            let Slot::Active { handle, touched } = &mut self.slots[id as usize] else { continue };
            if core::mem::take(touched) {
                continue;
            }
            let handle = *handle;
            let Some(key) = quiet(sockets.get::<tcp::Socket>(handle)) else { continue };
            let socket = sockets.remove(handle);
            let at = self.poll_at(iface, now, socket);
            match at {
                Ok(deadline) => {
                    let Some(Socket::Tcp(socket)) = self.probe_take() else { unreachable!() };
                    if let Some(t) = deadline {
                        self.deadlines.insert((t, id));
                    }
                    parked.insert(key, id);
                    self.slots[id as usize] =
                        Slot::Parked { socket: Box::new(socket), key, deadline };
                    self.parks += 1;
                }
                Err(()) => {
                    let socket = self.probe_take().expect("probed socket");
                    let handle = sockets.add(socket);
                    self.slots[id as usize] = Slot::Active { handle, touched: false };
                }
            }
        }
        if self.parks > parks {
            log::debug!("parked {} idle connections, {} parked", self.parks - parks, parked.len());
        }
    }

    /// Puts `socket` alone in the probe set and asks smoltcp when it wants
    /// it polled: `Ok(None)` never (until a frame comes), `Ok(Some(t))` at
    /// `t`, later than `now`; `Err` now. The socket stays in the probe.
    fn poll_at(
        &mut self,
        iface: &mut Interface,
        now: Instant,
        socket: Socket<'static>,
    ) -> Result<Option<Instant>, ()> {
        self.probe.add(socket);
        match iface.poll_at(now, &self.probe) {
            None => Ok(None),
            Some(t) if t > now => Ok(Some(t)),
            Some(_) => Err(()),
        }
    }

    fn probe_take(&mut self) -> Option<Socket<'static>> {
        let h = self.probe.iter().next().map(|(h, _)| h)?;
        Some(self.probe.remove(h))
    }
}

/// The socket's 4-tuple if it may be parked as far as its own state shows:
/// established, over IPv4, nothing in its send buffer (unsent or
/// unacknowledged). smoltcp's `poll_at` decides the rest.
fn quiet(s: &tcp::Socket<'_>) -> Option<Key> {
    if s.state() != State::Established || s.send_queue() != 0 {
        return None;
    }
    let v4 = |e: smoltcp::wire::IpEndpoint| match e.addr {
        IpAddress::Ipv4(a) => Some(SocketAddrV4::new(a, e.port)),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    Some(Key { local: v4(s.local_endpoint()?)?, remote: v4(s.remote_endpoint()?)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame with an IPv4 TCP segment from 10.0.0.2:40000 to
    /// 10.0.0.1:80.
    fn segment() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[8, 0]);
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 1]);
        let tcp = &mut ip[20..];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        f
    }

    fn key() -> Key {
        Key {
            local: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            remote: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000),
        }
    }

    #[test]
    fn a_whole_segment_names_its_connection() {
        assert_eq!(classify(&segment()), Class::Tcp(key()));
        // IP options move the TCP header; padding past the total length
        // (a short frame) is not part of the packet.
        let mut f = segment();
        f.splice(34..34, [1u8; 4]);
        f[14] = 0x46;
        f[16..18].copy_from_slice(&44u16.to_be_bytes());
        f.extend_from_slice(&[0xee; 6]);
        assert_eq!(classify(&f), Class::Tcp(key()));
    }

    #[test]
    fn other_protocols_pass() {
        let mut udp = segment();
        udp[23] = 17;
        assert_eq!(classify(&udp), Class::Other);
        let mut arp = segment();
        arp[12..14].copy_from_slice(&[8, 6]);
        assert_eq!(classify(&arp), Class::Other);
        let mut v6 = segment();
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(classify(&v6), Class::Other);
        assert_eq!(classify(&[]), Class::Other);
        assert_eq!(classify(&[0u8; 13]), Class::Other);
    }

    #[test]
    fn fragments_truncated_and_malformed_ipv4_are_unsure() {
        let f = segment();
        // Every truncation past the Ethernet header.
        for n in 14..f.len() {
            assert_eq!(classify(&f[..n]), Class::Unsure, "{n} bytes");
        }
        let with = |k: usize, v: u8| {
            let mut f = segment();
            f[k] = v;
            f
        };
        assert_eq!(classify(&with(14 + 6, 0x20)), Class::Unsure, "more fragments");
        assert_eq!(classify(&with(14 + 7, 1)), Class::Unsure, "an offset");
        assert_eq!(classify(&with(14 + 6, 0x40)), Class::Tcp(key()), "don't fragment");
        assert_eq!(classify(&with(14, 0x44)), Class::Unsure, "IHL below 5");
        assert_eq!(classify(&with(14, 0x65)), Class::Unsure, "version 6 in an IPv4 frame");
        assert_eq!(classify(&with(14, 0x4f)), Class::Unsure, "IHL past the packet");
        assert_eq!(classify(&with(14 + 3, 200)), Class::Unsure, "total length past the frame");
        assert_eq!(classify(&with(14 + 3, 30)), Class::Unsure, "TCP header cut short");
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap generator: every length up to 80, many byte patterns,
        // with the IPv4 EtherType and TCP protocol forced half the time.
        let mut x = 0x9e37_79b9_u32;
        for len in 0..80 {
            for round in 0..200 {
                let mut f: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                if round % 2 == 0 && len > 23 {
                    f[12..14].copy_from_slice(&[8, 0]);
                    f[23] = 6;
                }
                let _ = classify(&f);
            }
        }
    }

    #[test]
    fn only_parked_connections_and_unsure_frames_wake() {
        let mut parked = ParkedKeys::new();
        let mut f = segment();
        assert_eq!(wake_for(&parked, &f[..20]), None, "nothing parked: nothing to peek at");
        parked.insert(key(), 7);
        assert_eq!(wake_for(&parked, &f), Some(Wake::One(7)));
        assert_eq!(wake_for(&parked, &f[..40]), Some(Wake::All));
        f[34..36].copy_from_slice(&40001u16.to_be_bytes());
        assert_eq!(wake_for(&parked, &f), None, "another connection");
    }
}
