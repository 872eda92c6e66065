//! Ethernet frames of a test's own making, sent to a guest on its tap from
//! inside the test's namespace through a packet socket ([`Link`]): TCP
//! segments ([`Segment`]), ARP requests, and the garbage of [`garbage`]
//! that a guest must survive while it serves; and the TCP segments the
//! guest sends back ([`Sent`]).

use std::time::{Duration, Instant};

use super::netns::Netns;

/// Bytes of a xorshift generator seeded with `seed`: the same for the same
/// seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Internet checksum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The guest's MAC in the tests that send it frames of their own making.
pub const GUEST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// A TCP segment to the guest (10.0.0.2 at [`GUEST_MAC`]), as a frame.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub src_mac: [u8; 6],
    pub src: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub payload: &'a [u8],
    pub good_sum: bool,
}

impl Default for Segment<'_> {
    fn default() -> Self {
        Self {
            src_mac: [2, 0, 0, 0, 0, 1],
            src: [10, 0, 0, 1],
            sport: 40000,
            dport: 80,
            flags: 0x02,
            seq: 1,
            ack: 0,
            payload: b"",
            good_sum: true,
        }
    }
}

impl Segment<'_> {
    pub fn frame(&self) -> Vec<u8> {
        let dst = [10, 0, 0, 2];
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&self.sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&self.dport.to_be_bytes());
        tcp[4..8].copy_from_slice(&self.seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&self.ack.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = self.flags;
        tcp[14..16].copy_from_slice(&8192u16.to_be_bytes());
        tcp.extend_from_slice(self.payload);
        let tcp_len = tcp.len() as u16;
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&self.src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&tcp_len.to_be_bytes());
        pseudo.extend_from_slice(&tcp);
        let sum = checksum(&pseudo) ^ if self.good_sum { 0 } else { 0x5a5a };
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0];
        ip[2..4].copy_from_slice(&(20 + tcp_len).to_be_bytes());
        ip.extend_from_slice(&self.src);
        ip.extend_from_slice(&dst);
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = Vec::new();
        frame.extend_from_slice(&GUEST_MAC);
        frame.extend_from_slice(&self.src_mac);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);
        frame
    }
}

/// A TCP segment the guest sent, as the tests read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub payload: Vec<u8>,
}

impl Sent {
    /// The IPv4 TCP segment in `frame`, if it carries one.
    pub fn parse(frame: &[u8]) -> Option<Self> {
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
            return None;
        }
        let ihl = usize::from(frame[14] & 0xf) * 4;
        let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        let ip = frame.get(14..14 + total)?;
        let tcp = ip.get(ihl..)?;
        let offset = usize::from(tcp.get(12)? >> 4) * 4;
        let word = |at: usize| u32::from_be_bytes(tcp[at..at + 4].try_into().unwrap());
        Some(Self {
            dst: ip[16..20].try_into().unwrap(),
            sport: u16::from_be_bytes([tcp[0], tcp[1]]),
            dport: u16::from_be_bytes([tcp[2], tcp[3]]),
            flags: tcp[13],
            seq: word(4),
            ack: word(8),
            payload: tcp.get(offset..)?.to_vec(),
        })
    }
}

/// A raw packet socket on one interface of the namespace it is made in:
/// frames of the test's own making to the guest, and every frame on the
/// link back.
pub struct Link(i32);

impl Link {
    pub fn new(ifindex: i32) -> Self {
        // SAFETY: socket, bind and setsockopt with valid, sized arguments.
        #[allow(unsafe_code)]
        unsafe {
            let protocol = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol));
            assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = protocol;
            addr.sll_ifindex = ifindex;
            addr.sll_halen = 6;
            let len = size_of::<libc::sockaddr_ll>() as u32;
            assert_eq!(libc::bind(fd, (&raw const addr).cast(), len), 0, "bind");
            let timeout = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            let tv_len = size_of::<libc::timeval>() as u32;
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                tv_len,
            );
            Self(fd)
        }
    }

    /// Sends `frame`; whether it went.
    pub fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: the socket is bound: send on it with a valid buffer.
        #[allow(unsafe_code)]
        let n = unsafe { libc::send(self.0, frame.as_ptr().cast(), frame.len(), 0) };
        n > 0
    }

    /// The TCP segments the guest sends to `dst` within `wait`.
    pub fn segments_to(&self, dst: [u8; 4], wait: Duration) -> Vec<Sent> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while Instant::now() < deadline {
            // SAFETY: recv into a buffer of its length.
            #[allow(unsafe_code)]
            let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                continue;
            }
            let frame = &buf[..n as usize];
            if frame[6..12] == GUEST_MAC
                && let Some(s) = Sent::parse(frame).filter(|s| s.dst == dst)
            {
                got.push(s);
            }
        }
        got
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // SAFETY: closing the fd this owns.
        #[allow(unsafe_code)]
        unsafe {
            libc::close(self.0);
        }
    }
}

/// An ARP request from `mac`/`ip` for the guest's address: the guest
/// learns `ip`'s MAC from it.
pub fn arp_request(mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 2]);
    f
}

pub fn ifindex(ns: &Netns, iface: &str) -> i32 {
    ns.run("cat", &[&format!("/sys/class/net/{iface}/ifindex")]).stdout.trim().parse().unwrap()
}

/// The garbage frames a serving guest (10.0.0.2 at [`GUEST_MAC`]) must
/// survive, about 6,000: random bytes of every length, a segment to port
/// `dport` cut short at every length, IPv4 headers with a wrong length or
/// checksum, segments with bad checksums, a SYN flood from spoofed
/// addresses on the link (which fills the backlog with half-open
/// connections until they time out), and every combination of TCP flags.
pub fn garbage(dport: u16) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    // Random bytes, all lengths.
    for i in 0..2000u64 {
        frames.push(noise(i + 7, 14 + (i as usize * 37) % 1500));
    }
    // Addressed to the guest, then cut short at every length.
    let good = Segment { dport, ..Default::default() }.frame();
    for len in 0..good.len() {
        frames.push(good[..len].to_vec());
    }
    // IPv4 with a wrong header length, a wrong total length, bad checksums.
    for (off, v) in [(14usize, 0x4fu8), (14, 0x41), (16, 0xff), (17, 0xff), (24, 0x00)] {
        let mut f = good.clone();
        f[off] = v;
        frames.push(f);
    }
    for i in 0..200u16 {
        let bad = Segment {
            sport: 30000 + i,
            dport,
            seq: u32::from(i),
            good_sum: false,
            ..Default::default()
        };
        frames.push(bad.frame());
    }
    // A SYN flood from spoofed addresses on the link.
    for i in 0..3000u32 {
        let spoofed = Segment {
            src: [10, 0, 0, 10 + (i % 200) as u8],
            sport: 1024 + (i % 60000) as u16,
            dport,
            seq: i.wrapping_mul(7919),
            ..Default::default()
        };
        frames.push(spoofed.frame());
    }
    // And random flags on a real port.
    for i in 0..500u32 {
        let flags = Segment {
            sport: 50000 + (i % 100) as u16,
            dport,
            flags: (i % 64) as u8,
            seq: i,
            ..Default::default()
        };
        frames.push(flags.frame());
    }
    frames
}
