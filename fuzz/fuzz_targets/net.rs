//! Frames from the wire into the guest: libos's tap device, smoltcp's
//! `Interface` (Ethernet, ARP, IPv4, ICMP, UDP, TCP) and libos's sockets,
//! with applications on top: a TCP server on port 80 that reads requests
//! and answers them through httpd's `http` library, and a UDP echo on port 7.
//!
//! libos boots as in a guest, from a boot region the tender's encoder
//! fills (`nabla_fuzz`), with one net device whose tap is one end of a `SOCK_SEQPACKET`
//! socketpair (frame boundaries kept, as on a tap), read and written by the
//! same hypercalls as in a guest; the target writes the frames to the other
//! end and reads what the guest sends. The clock is the target's.
//!
//! Input: a mode byte, then records of `[flags, len_lo, len_hi, frame...]`.
//! The mode (modulo 4) picks the network configuration, from the
//! environment as in a guest: `10.0.0.2/24` with gateway `10.0.0.1` on the
//! link, a pod network's `10.0.0.2/32` with the off-link gateway
//! `169.254.1.1` (without or with a fixed gateway MAC), where libos's tap
//! filters frames for the gateway, or none, so that the interface
//! configures itself by DHCPv4; its top bit gives the tap virtio-net headers
//! (`DEVICE_FLAG_VNET_HDR`), so that each record's frame begins with the
//! header the host would put there and the guest offloads TCP. The low 7
//! bits of `flags` advance the clock by that many times 16 ms; the top bit
//! fixes up a TCP frame's sequence and acknowledgement numbers to follow
//! the guest's last segment, and a DHCP reply's transaction id to follow
//! the guest's last request, so that the fuzzer gets past the handshakes.
//! (Checksums are not checked under `cfg(fuzzing)`: smoltcp skips them.)

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use libos::net::{TcpListener, TcpStream, UdpSocket};
use libos::time::Instant;

const GUEST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const MTU: u32 = 1500;
const FRAME_MAX: usize = MTU as usize + 14;
/// Largest write of a guest with virtio-net headers: a 64 KiB TCP burst.
const OFFLOAD_WRITE_MAX: usize = abi::VNET_HDR_LEN + 14 + 65535;

/// Polls `f` once; the sockets register the (no-op) waker and the next
/// turn polls again, as the executor would after a wake-up.
fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// A connection to the HTTP server: its stream and the bytes read so far.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// A response not yet queued in full.
    out: Vec<u8>,
}

struct Apps {
    listener: TcpListener,
    udp: UdpSocket,
    conns: Vec<Conn>,
}

impl Apps {
    /// One turn of each application, as the executor would run them.
    fn turn(&mut self) {
        if let Some(Ok((stream, _peer))) = poll_once(self.listener.accept()) {
            if self.conns.len() < 8 {
                self.conns.push(Conn { stream, buf: Vec::new(), out: Vec::new() });
            }
        }
        let mut buf = [0u8; 2048];
        if let Some(Ok((n, from))) = poll_once(self.udp.recv_from(&mut buf)) {
            let _ = poll_once(self.udp.send_to(&buf[..n], from));
        }
        self.conns.retain_mut(|c| c.turn());
    }
}

impl Conn {
    /// Returns false once the connection is done.
    fn turn(&mut self) -> bool {
        if !self.out.is_empty() {
            match poll_once(self.stream.write(&self.out)) {
                Some(Ok(n)) => {
                    self.out.drain(..n);
                }
                Some(Err(_)) => return false,
                None => return true,
            }
        }
        let mut buf = [0u8; 1024];
        match poll_once(self.stream.read(&mut buf)) {
            None => return true,
            Some(Ok(0)) | Some(Err(_)) => return false,
            Some(Ok(n)) => self.buf.extend_from_slice(&buf[..n]),
        }
        match http::parse(&self.buf) {
            http::Parsed::Partial => true,
            http::Parsed::Error(_) => {
                self.out.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                self.stream.shutdown();
                true
            }
            http::Parsed::Request { request, len } => {
                self.buf.drain(..len.min(self.buf.len()));
                let head = http::Head {
                    status: http::Status::Ok,
                    content_type: http::content_type(&request.path),
                    content_length: request.path.len(),
                    keep_alive: request.keep_alive,
                    date: 0,
                    last_modified: None,
                    content_range: None,
                };
                head.write(&mut self.out);
                self.out.extend_from_slice(request.path.as_bytes());
                if !request.keep_alive {
                    self.stream.shutdown();
                }
                true
            }
        }
    }
}

/// What the guest last sent: on TCP, the next sequence number it expects
/// from the peer (its ack) and the one after its own last segment; on
/// DHCP, its transaction id.
#[derive(Default)]
struct Track {
    guest_ack: u32,
    guest_next: u32,
    dhcp_xid: u32,
}

/// Offset of the transport header in an Ethernet frame, if it is IPv4 with
/// protocol `proto` and at least `len` bytes of that header.
fn transport_at(frame: &[u8], proto: u8, len: usize) -> Option<usize> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != proto {
        return None;
    }
    let at = 14 + usize::from(frame[14] & 0x0f) * 4;
    (frame.len() >= at + len).then_some(at)
}

/// Offset of the BOOTP message in a UDP frame from port `src` to `dst`.
fn bootp_at(frame: &[u8], src: u16, dst: u16) -> Option<usize> {
    let at = transport_at(frame, 17, 8 + 8)?;
    let port = |o: usize| u16::from_be_bytes([frame[at + o], frame[at + o + 1]]);
    (port(0) == src && port(2) == dst).then_some(at + 8)
}

impl Track {
    fn saw(&mut self, frame: &[u8]) {
        if let Some(at) = bootp_at(frame, 68, 67) {
            self.dhcp_xid = u32::from_be_bytes(frame[at + 4..at + 8].try_into().unwrap());
        }
        let Some(at) = transport_at(frame, 6, 20) else { return };
        let word = |o: usize| u32::from_be_bytes(frame[at + o..at + o + 4].try_into().unwrap());
        let flags = frame[at + 13];
        let ip_len = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        let hdr = usize::from(frame[at + 12] >> 4) * 4;
        let payload = (14 + ip_len).saturating_sub(at + hdr) as u32;
        let syn_fin = u32::from(flags & 0x02 != 0) + u32::from(flags & 0x01 != 0);
        self.guest_next = word(4).wrapping_add(payload).wrapping_add(syn_fin);
        if flags & 0x10 != 0 {
            self.guest_ack = word(8);
        }
    }

    /// Makes `frame` follow the guest's connection or DHCP exchange.
    fn fix(&self, frame: &mut [u8]) {
        if let Some(at) = bootp_at(frame, 67, 68) {
            frame[at + 4..at + 8].copy_from_slice(&self.dhcp_xid.to_be_bytes());
        }
        let Some(at) = transport_at(frame, 6, 20) else { return };
        frame[at + 4..at + 8].copy_from_slice(&self.guest_ack.to_be_bytes());
        frame[at + 8..at + 12].copy_from_slice(&self.guest_next.to_be_bytes());
    }
}

/// `NABLA_FUZZ_DEBUG=1`: print the frames the guest sends.
fn debug() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("NABLA_FUZZ_DEBUG").is_some())
}

/// Reads what the guest sent; `header`: the length of the virtio-net
/// header in front of each frame (0 without).
fn drain(fd: i32, track: &mut Track, header: usize) {
    let mut buf = vec![0u8; OFFLOAD_WRITE_MAX + 64];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        if debug() {
            eprintln!("guest sent {n} bytes: {:02x?}", &buf[..n as usize]);
        }
        if let Some(frame) = buf[..n as usize].get(header..) {
            track.saw(frame);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let mut sv = [0i32; 2];
    // SAFETY: sv has room for the two fds.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "socketpair");
    let (wire, tap) = (sv[0], sv[1]);
    let mut tap_dev = nabla_fuzz::device("service0", abi::DeviceKind::Net, tap);
    tap_dev.mtu = MTU;
    tap_dev.mac = GUEST_MAC;
    let header = if mode & 0x80 != 0 {
        tap_dev.flags = abi::DEVICE_FLAG_VNET_HDR;
        abi::VNET_HDR_LEN
    } else {
        0
    };
    let env = match mode % 4 {
        0 => vec!["NET_SERVICE0_IPV4=10.0.0.2/24", "NET_SERVICE0_GATEWAY=10.0.0.1"],
        1 => vec!["NET_SERVICE0_IPV4=10.0.0.2/32", "NET_SERVICE0_GATEWAY=169.254.1.1"],
        2 => vec![
            "NET_SERVICE0_IPV4=10.0.0.2/32",
            "NET_SERVICE0_GATEWAY=169.254.1.1",
            "NET_SERVICE0_GATEWAY_MAC=ee:ee:ee:ee:ee:ee",
        ],
        // No address: smoltcp's DHCPv4 client configures the interface.
        _ => vec![],
    };
    let env: Vec<String> = env.into_iter().map(String::from).collect();
    let args = ["net".to_string()];
    nabla_fuzz::write_boot_region(&args, &env, &[tap_dev], abi::log_level::OFF).unwrap();
    assert_eq!(libos::fuzzing::boot(abi::BOOT_REGION_START as usize), Ok(true));
    let mut now = Instant::now();
    {
        let mut apps = Apps {
            listener: TcpListener::bind(80).expect("bind 80"),
            udp: UdpSocket::bind(7).expect("bind 7"),
            conns: Vec::new(),
        };
        let mut track = Track::default();
        let mut rest = data;
        while let [flags, lo, hi, tail @ ..] = rest {
            let len = usize::from(u16::from_le_bytes([*lo, *hi])) % (header + FRAME_MAX + 1);
            let len = len.min(tail.len());
            let mut frame = tail[..len].to_vec();
            rest = &tail[len..];
            if flags & 0x80 != 0
                && let Some(frame) = frame.get_mut(header..)
            {
                track.fix(frame);
            }
            now = now + Duration::from_millis(16 * u64::from(flags & 0x7f));
            // SAFETY: frame is valid for its length.
            unsafe { libc::write(wire, frame.as_ptr().cast(), frame.len()) };
            libos::fuzzing::poll(now);
            apps.turn();
            libos::fuzzing::poll(now);
            drain(wire, &mut track, header);
        }
        // Let the timers run: retransmissions, timeouts, closes.
        for _ in 0..4 {
            match libos::fuzzing::poll_at(now) {
                Some(t) if t > now && t < now + Duration::from_secs(600) => now = t,
                Some(_) => {}
                None => break,
            }
            libos::fuzzing::poll(now);
            apps.turn();
            drain(wire, &mut track, header);
        }
        // Sockets go before their interface.
        drop(apps);
    }
    libos::fuzzing::remove_interfaces();
    // SAFETY: both fds are ours and closed once.
    unsafe {
        libc::close(wire);
        libc::close(tap);
    }
});
