//! The `http` target's connections mode: up to 16 TCP clients, made of
//! frames by the target, against a server on libos's `TcpListener` whose
//! connections follow httpd's `http::conn` (a deadline for each head, body
//! and write, bodies discarded, responses held up to `OUT_MAX` and no read
//! while they wait), with the listener's `max_connections`.
//!
//! libos boots as in the `net` target (one net device whose tap is one end
//! of a socketpair, 10.0.0.2/24, the clock the target's). The clients are
//! 10.0.0.1, ports 40000-40015; the target answers the guest's ARP
//! requests, completes a client's handshake when the guest's SYN+ACK comes,
//! and keeps each client's sequence numbers, so that every record acts on
//! a live connection.
//!
//! Input: records `[op, ...]`; the low 4 bits of `op` pick the client, the
//! high 4 the action: connect (0-1); send `n` bytes (2-6, `[n, bytes...]`);
//! acknowledge what the guest sent (7), or that and all that comes after
//! (8: a client that reads), or nothing new (9-10), with a window of
//! `[lo, hi]` bytes (0: a client that reads nothing; small: a slow reader);
//! close (11, FIN); reset (12); let `[n]` × 50 ms pass (13-15).
//!
//! Asserted, at every turn: a connection buffers at most `MAX_BUFFERED`
//! bytes of requests and `OUT_MAX` (plus one head) of responses, and the
//! server holds at most `MAX_CONNECTIONS`. At the end, with the clients
//! silent and the clock moved past every deadline, no connection is left:
//! none can be held open by a client that stops reading or sending.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::conn::{Conn, Limits, MAX_BUFFERED, Next, OUT_MAX, READ_CHUNK, WRITE_MAX};
use http::{Head, Status};
use libos::net::{TcpListener, TcpOptions, TcpStream};
use libos::time::Instant;

const GUEST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const GUEST_IP: [u8; 4] = [10, 0, 0, 2];
const CLIENT_IP: [u8; 4] = [10, 0, 0, 1];
const CLIENTS: usize = 16;
const MAX_CONNECTIONS: usize = 6;
/// Small socket buffers, so that a client that reads nothing fills them.
const SOCKET_BUFFER: usize = 8 * 1024;
/// Room for one response head on top of `OUT_MAX`.
const HEAD_MAX: usize = 1024;

fn limits() -> Limits {
    Limits {
        max_body: 20_000,
        header_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        keepalive_timeout: Duration::from_secs(3),
        send_timeout: Duration::from_secs(2),
        shutdown_timeout: Duration::from_secs(2),
    }
}

fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// One of the server's connections.
struct Served {
    stream: TcpStream,
    conn: Conn,
    out: Vec<u8>,
    /// Bytes of a response body too large for `out`, to write after it.
    direct: usize,
    /// The write under way, as httpd does them: bytes left of a piece of
    /// at most `WRITE_MAX`, which must all go within the send timeout from
    /// when the piece began.
    piece: Option<(usize, Duration)>,
    /// Close once `out` and `direct` are written.
    closing: bool,
    /// Requests answered.
    answered: usize,
}

enum Turn {
    Keep,
    Close,
    Reset,
}

impl Served {
    fn check(&self) {
        assert!(self.conn.buffered() <= MAX_BUFFERED, "{} buffered", self.conn.buffered());
        assert!(self.conn.capacity() <= MAX_BUFFERED, "capacity {}", self.conn.capacity());
        assert!(self.out.len() <= OUT_MAX + HEAD_MAX, "{} bytes of responses held", self.out.len());
    }

    /// Writes what is pending; false if some is still pending.
    fn write(&mut self, now: Duration) -> Result<bool, ()> {
        static ZEROS: [u8; 4096] = [b'z'; 4096];
        while !self.out.is_empty() || self.direct > 0 {
            let pending = if self.out.is_empty() {
                &ZEROS[..self.direct.min(ZEROS.len())]
            } else {
                &self.out[..]
            };
            let total = if self.out.is_empty() { self.direct } else { self.out.len() };
            let (left, since) = *self.piece.get_or_insert((total.min(WRITE_MAX), now));
            let pending = &pending[..pending.len().min(left)];
            match poll_once(self.stream.write(pending)) {
                Some(Ok(n)) => {
                    self.piece = (left > n).then_some((left - n, since));
                    if self.out.is_empty() {
                        self.direct -= n;
                    } else {
                        self.out.drain(..n);
                    }
                }
                Some(Err(_)) => return Err(()),
                None if now.saturating_sub(since) >= self.conn.limits().send_timeout => {
                    return Err(());
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    fn turn(&mut self, now: Duration) -> Turn {
        self.check();
        loop {
            match self.write(now) {
                Err(()) => return Turn::Reset,
                Ok(false) => return Turn::Keep,
                Ok(true) if self.closing => return Turn::Close,
                Ok(true) => {}
            }
            match self.conn.next(now) {
                Next::Request(r) => {
                    // A body whose size follows the path: up to 40 kB, more
                    // than `OUT_MAX` and the socket's buffer.
                    let body = r.path.len() * 997 % 40_000;
                    let head = Head {
                        status: Status::Ok,
                        content_type: http::content_type(&r.path),
                        content_length: body,
                        keep_alive: r.keep_alive,
                        date: 0,
                        last_modified: None,
                        content_range: None,
                    };
                    if head.try_write(&mut self.out).is_err() {
                        return Turn::Reset;
                    }
                    if self.out.len() + body <= OUT_MAX {
                        self.out.resize(self.out.len() + body, b'b');
                    } else {
                        self.direct = body;
                    }
                    self.closing = !r.keep_alive;
                    self.answered += 1;
                    self.conn.answered(now);
                }
                Next::Refuse(status) => {
                    let head = Head {
                        status,
                        content_type: "text/plain",
                        content_length: 0,
                        keep_alive: false,
                        date: 0,
                        last_modified: None,
                        content_range: None,
                    };
                    if head.try_write(&mut self.out).is_err() {
                        return Turn::Reset;
                    }
                    self.closing = true;
                }
                Next::TimedOut if self.conn.is_idle() => return Turn::Close,
                Next::TimedOut => return Turn::Reset,
                Next::Read { deadline, .. } => {
                    assert!(deadline > now, "a deadline that has passed is TimedOut");
                    let mut buf = [0u8; READ_CHUNK];
                    match poll_once(self.stream.read(&mut buf)) {
                        None => return Turn::Keep,
                        Some(Ok(0)) => return Turn::Close,
                        Some(Err(_)) => return Turn::Reset,
                        Some(Ok(n)) => {
                            if self.conn.received(&buf[..n], now).is_err() {
                                return Turn::Reset;
                            }
                        }
                    }
                }
            }
        }
    }
}

struct Server {
    listener: TcpListener,
    conns: Vec<Served>,
    /// Connections accepted, requests answered, connections closed and
    /// reset (printed with `NABLA_FUZZ_DEBUG=1`).
    stats: [usize; 4],
}

impl Server {
    fn turn(&mut self, now: Instant) {
        let now = now.as_duration();
        while let Some(Ok((stream, _))) = poll_once(self.listener.accept()) {
            self.stats[0] += 1;
            self.conns.push(Served {
                stream,
                conn: Conn::new(now, limits()),
                out: Vec::new(),
                direct: 0,
                piece: None,
                closing: false,
                answered: 0,
            });
        }
        assert!(self.conns.len() <= MAX_CONNECTIONS, "{} connections", self.conns.len());
        let mut i = 0;
        while i < self.conns.len() {
            let answered = self.conns[i].answered;
            let turn = self.conns[i].turn(now);
            self.stats[1] += self.conns[i].answered - answered;
            match turn {
                Turn::Keep => i += 1,
                Turn::Close => {
                    self.stats[2] += 1;
                    let c = self.conns.swap_remove(i);
                    c.stream.shutdown();
                }
                Turn::Reset => {
                    self.stats[3] += 1;
                    self.conns.swap_remove(i).stream.abort();
                }
            }
        }
    }
}

/// A client's connection, as the target keeps it.
#[derive(Clone, Copy, Default)]
struct Client {
    /// SYN sent, not yet closed.
    open: bool,
    established: bool,
    /// Our next sequence number.
    seq: u32,
    /// The guest's next sequence number (what acknowledges all it sent).
    guest_next: u32,
    /// What we last acknowledged.
    acked: u32,
    window: u16,
    /// Reads all that comes: acknowledges every segment of the guest's.
    reads: bool,
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        for pair in c.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// An Ethernet frame with a TCP segment from client `i`.
fn segment(i: usize, c: &Client, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&(40000 + i as u16).to_be_bytes());
    tcp.extend_from_slice(&80u16.to_be_bytes());
    tcp.extend_from_slice(&c.seq.to_be_bytes());
    tcp.extend_from_slice(&(if flags & ACK != 0 { c.acked } else { 0 }).to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, flags]);
    tcp.extend_from_slice(&c.window.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let len = (tcp.len() as u16).to_be_bytes();
    let sum = checksum(&[&CLIENT_IP, &GUEST_IP, &[0, 6], &len, &tcp]);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&CLIENT_IP);
    ip.extend_from_slice(&GUEST_IP);
    let sum = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut frame = Vec::with_capacity(14 + ip.len() + tcp.len());
    frame.extend_from_slice(&GUEST_MAC);
    frame.extend_from_slice(&CLIENT_MAC);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

/// The ARP reply for 10.0.0.1 to an ARP request frame, if it is one.
fn arp_reply(frame: &[u8]) -> Option<Vec<u8>> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[20..22] != [0, 1] {
        return None;
    }
    if frame[38..42] != CLIENT_IP {
        return None;
    }
    let mut r = Vec::with_capacity(42);
    r.extend_from_slice(&frame[6..12]);
    r.extend_from_slice(&CLIENT_MAC);
    r.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    r.extend_from_slice(&CLIENT_MAC);
    r.extend_from_slice(&CLIENT_IP);
    r.extend_from_slice(&frame[22..28]);
    r.extend_from_slice(&frame[28..32]);
    Some(r)
}

struct Wire {
    fd: i32,
    clients: [Client; CLIENTS],
}

impl Wire {
    fn send(&self, frame: &[u8]) {
        // SAFETY: frame is valid for its length.
        unsafe { libc::write(self.fd, frame.as_ptr().cast(), frame.len()) };
    }

    /// Reads what the guest sent: answers ARP, follows each client's
    /// connection, completes handshakes.
    fn drain(&mut self) {
        let mut buf = vec![0u8; 70_000];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            let frame = &buf[..n as usize];
            if let Some(reply) = arp_reply(frame) {
                self.send(&reply);
                continue;
            }
            if frame.len() < 54 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
                continue;
            }
            let at = 14 + usize::from(frame[14] & 0x0f) * 4;
            let Some(tcp) = frame.get(at..at + 20) else { continue };
            let port = u16::from_be_bytes([tcp[2], tcp[3]]);
            let Some(i) = port.checked_sub(40000).map(usize::from).filter(|&i| i < CLIENTS) else {
                continue;
            };
            let word = |o: usize| u32::from_be_bytes(tcp[o..o + 4].try_into().unwrap());
            let flags = tcp[13];
            let ip_len = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
            let hdr = usize::from(tcp[12] >> 4) * 4;
            let payload = (14 + ip_len).saturating_sub(at + hdr) as u32;
            let c = &mut self.clients[i];
            if flags & RST != 0 {
                c.open = false;
                c.established = false;
                continue;
            }
            let next = word(4)
                .wrapping_add(payload)
                .wrapping_add(u32::from(flags & SYN != 0) + u32::from(flags & FIN != 0));
            // Only forward: a retransmission does not move it back.
            if !c.established || next.wrapping_sub(c.guest_next) < 1 << 31 {
                c.guest_next = next;
            }
            if flags & SYN != 0 && flags & ACK != 0 && c.open && !c.established {
                c.established = true;
                c.acked = c.guest_next;
                let ack = segment(i, c, ACK, &[]);
                self.send(&ack);
            } else if c.established && c.reads && (payload > 0 || flags & FIN != 0) {
                c.acked = c.guest_next;
                let ack = segment(i, c, ACK, &[]);
                self.send(&ack);
            }
        }
    }
}

/// Runs the connections mode on `data` (see the module docs).
pub fn run(data: &[u8]) {
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
    let (fd, tap) = (sv[0], sv[1]);
    let mut dev = nabla_fuzz::device("service0", abi::DeviceKind::Net, tap);
    dev.mac = GUEST_MAC;
    let env = vec!["NET_SERVICE0_IPV4=10.0.0.2/24".to_string()];
    nabla_fuzz::write_boot_region(&["httpd".to_string()], &env, &[dev], abi::log_level::OFF)
        .unwrap();
    assert_eq!(libos::fuzzing::boot(abi::BOOT_REGION_START as usize), Ok(true));
    let mut now = Instant::now();
    {
        let opts = TcpOptions {
            backlog: 2,
            rx_buffer: SOCKET_BUFFER,
            tx_buffer: SOCKET_BUFFER,
            nodelay: true,
            max_connections: MAX_CONNECTIONS,
            ..TcpOptions::default()
        };
        let listener = TcpListener::bind_with(80, opts).expect("bind 80");
        let mut server = Server { listener, conns: Vec::new(), stats: [0; 4] };
        let mut wire = Wire { fd, clients: [Client::default(); CLIENTS] };
        let mut rest = data;
        while let [op, tail @ ..] = rest {
            rest = tail;
            let i = usize::from(op & 0x0f);
            // The action's arguments, taken whatever the client's state, so
            // that a record means the same wherever it is.
            let (arg, tail): (&[u8], &[u8]) = match op >> 4 {
                2..=6 => match rest {
                    [n, tail @ ..] => tail.split_at(usize::from(*n).min(tail.len())),
                    [] => break,
                },
                7..=10 => match rest {
                    [lo, hi, tail @ ..] => (&[*lo, *hi][..], tail),
                    _ => break,
                },
                13..=15 => match rest {
                    [n, tail @ ..] => (std::slice::from_ref(n), tail),
                    [] => break,
                },
                _ => (&[], rest),
            };
            rest = tail;
            let c = wire.clients[i];
            match op >> 4 {
                // Connect (again: a new connection from the same port).
                0 | 1 => {
                    let c = &mut wire.clients[i];
                    *c = Client {
                        open: true,
                        seq: (i as u32 + 1) << 24,
                        window: 65535,
                        ..Client::default()
                    };
                    let syn = segment(i, c, SYN, &[]);
                    c.seq = c.seq.wrapping_add(1);
                    wire.send(&syn);
                }
                // Send bytes.
                2..=6 if c.established => {
                    let frame = segment(i, &c, ACK, arg);
                    wire.clients[i].seq = c.seq.wrapping_add(arg.len() as u32);
                    wire.send(&frame);
                }
                // Acknowledge (all, or nothing new) with a window.
                7..=10 if c.established => {
                    let cl = &mut wire.clients[i];
                    cl.window = u16::from_le_bytes([arg[0], arg[1]]);
                    if op >> 4 <= 8 {
                        cl.acked = cl.guest_next;
                    }
                    cl.reads = op >> 4 == 8;
                    let frame = segment(i, cl, ACK, &[]);
                    wire.send(&frame);
                }
                11 if c.established => {
                    let frame = segment(i, &c, FIN | ACK, &[]);
                    wire.clients[i].seq = c.seq.wrapping_add(1);
                    wire.send(&frame);
                }
                12 if c.open => {
                    let frame = segment(i, &c, RST | ACK, &[]);
                    wire.clients[i] = Client::default();
                    wire.send(&frame);
                }
                13..=15 => now = now + Duration::from_millis(50 * u64::from(arg[0])),
                _ => {}
            }
            // Twice: an ARP exchange or a handshake completes within the record.
            for _ in 0..2 {
                libos::fuzzing::poll(now);
                server.turn(now);
                libos::fuzzing::poll(now);
                wire.drain();
            }
        }
        // The clients fall silent (they send nothing, and acknowledge
        // nothing more): every connection must end by a deadline.
        for c in &mut wire.clients {
            c.reads = false;
        }
        for _ in 0..40 {
            now = now + Duration::from_millis(500);
            libos::fuzzing::poll(now);
            server.turn(now);
            libos::fuzzing::poll(now);
            wire.drain();
        }
        if std::env::var_os("NABLA_FUZZ_DEBUG").is_some() {
            let [accepted, answered, closed, reset] = server.stats;
            eprintln!("{accepted} accepted, {answered} answered, {closed} closed, {reset} reset");
        }
        assert!(
            server.conns.is_empty(),
            "{} connections outlived every deadline: {:?}",
            server.conns.len(),
            server
                .conns
                .iter()
                .map(|c| (&c.conn, c.out.len(), c.direct, c.piece, c.closing, now))
                .collect::<Vec<_>>()
        );
        drop(server);
    }
    libos::fuzzing::remove_interfaces();
    // SAFETY: both fds are ours and closed once.
    unsafe {
        libc::close(fd);
        libc::close(tap);
    }
}
