//! std::net in a std guest (libos-std's sockets over libos's stack), each
//! test in a network namespace of its own with the tap inside it (see
//! `support::netns`): tests/std's `std-net` guest at 10.0.0.2 as a client
//! of servers this suite runs at 10.0.0.1 (its output asserted line by
//! line: addresses, peek, timeouts, nonblocking calls, half-closes,
//! resets, refused and silent peers, bind errors, UDP, connections to
//! itself through the loopback and its own address), and as a threaded
//! echo server for this suite's clients: 100 at once, clients vanishing
//! mid-request, garbage frames on the tap while it serves. Also: connecting
//! to an on-link address nobody answers ARP for (EHOSTUNREACH, as Linux),
//! `sendmsg`/`writev` gathering their buffers on the wire, and small
//! writes leaving together when the writer blocks (and at exit).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use support::frames::{Link, Segment, ifindex, noise};
use support::netns::{Netns, require_root};
use support::{KillOnDrop, std_guest};

/// A namespace with tap0 (host side 10.0.0.1/24).
fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

/// The tender's arguments for std-net in `mode`: 10.0.0.2/24 without a
/// gateway, a fixed MAC, room for a hundred threads.
fn guest_args(mode: &str) -> Vec<String> {
    [
        "--net",
        "service0=tap0",
        "--net-mac",
        "service0=02:00:00:00:00:02",
        "--env",
        "NET_SERVICE0_IPV4=10.0.0.2/24",
        "--env",
        "RUST_MIN_STACK=65536",
        "--mem",
        "256",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([std_guest("std-net"), mode.to_string()])
    .collect()
}

/// std-net serving (TCP 7 echo, TCP 8 "bye", UDP 7 echo).
fn serve(ns: &Netns) -> KillOnDrop {
    ns.start_tender(&guest_args("serve"), "std-net: listening on 0.0.0.0:7").0
}

const GUEST: &str = "10.0.0.2";

/// Sends `len` bytes to the guest's echo server and checks what comes back.
fn echo_round_trip(seed: u64, len: usize) -> Result<(), String> {
    support::echo_round_trip(format!("{GUEST}:7").parse().unwrap(), seed, len)
}

/// Serves each connection of `l` with `f` on a thread of its own.
fn serve_each(l: TcpListener, f: fn(TcpStream)) {
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || f(s));
        }
    });
}

/// The suite's servers at 10.0.0.1 for std-net's client mode (see the
/// guest's documentation).
///
/// Returns what 7006's connections read, in order: the bytes, then how
/// the stream ended.
fn host_servers(ns: &Netns) -> std::sync::mpsc::Receiver<String> {
    let (tcp, udp) = ns.enter(|| {
        let tcp: Vec<TcpListener> =
            (7001..=7006).map(|p| TcpListener::bind(("10.0.0.1", p)).unwrap()).collect();
        let udp: Vec<UdpSocket> =
            [7001, 7002, 7012].iter().map(|&p| UdpSocket::bind(("10.0.0.1", p)).unwrap()).collect();
        (tcp, udp)
    });
    let mut tcp = tcp.into_iter();
    serve_each(tcp.next().unwrap(), |mut s| {
        let mut r = s.try_clone().unwrap();
        let _ = std::io::copy(&mut r, &mut s);
    });
    serve_each(tcp.next().unwrap(), |mut s| {
        std::thread::sleep(Duration::from_millis(300));
        let _ = s.write_all(b"late");
        let _ = std::io::copy(&mut s, &mut std::io::sink());
    });
    serve_each(tcp.next().unwrap(), support::reset);
    serve_each(tcp.next().unwrap(), |mut s| {
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let _ = s.write_all(format!("got {}", all.len()).as_bytes());
    });
    serve_each(tcp.next().unwrap(), |mut s| {
        let _ = s.write_all(b"bye");
        let _ = s.shutdown(Shutdown::Write);
        let _ = std::io::copy(&mut s, &mut std::io::sink());
    });
    let closes = tcp.next().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut s in closes.incoming().flatten() {
            let mut got = Vec::new();
            let end = match s.read_to_end(&mut got) {
                Ok(_) => "end of stream".to_string(),
                Err(e) => format!("{:?}", e.kind()),
            };
            let _ = tx.send(format!("{} then {end}", String::from_utf8_lossy(&got)));
        }
    });
    let mut udp = udp.into_iter();
    let (echo, other, answer) = (udp.next().unwrap(), udp.next().unwrap(), udp.next().unwrap());
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut b) {
            let _ = echo.send_to(&b[..n], from);
        }
    });
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        while let Ok((n, from)) = other.recv_from(&mut b) {
            let _ = answer.send_to(&b[..n], from);
        }
    });
    rx
}

#[test]
fn std_net_clients_behave_as_on_linux() {
    let ns = namespace("stdnet-client");
    let closes = host_servers(&ns);
    let out = ns.tender(&guest_args("client"));
    out.assert_ok();
    // A graceful close ends the stream after the data; SO_LINGER 0 resets.
    let closes: Vec<String> = closes.try_iter().collect();
    assert_eq!(closes, ["graceful then end of stream", "abort then ConnectionReset"]);
    assert_eq!(
        out.stdout,
        "addresses: local 10.0.0.2 ephemeral true, peer 10.0.0.1:7001\n\
         echo: hello\n\
         peek: peek then read peekaboo\n\
         trunc: peeked 4, discarded 8, then read -me, ; recvmsg 9: vect ored!; with MSG_TRUNC 3: AAAA\n\
         options: nodelay true, ttl 7\n\
         read timeout: WouldBlock after the timeout true\n\
         nonblocking read: WouldBlock\n\
         mebibyte: wrote Some(1048576), echoed intact true\n\
         take_error: None\n\
         half-close: got 5, write after it BrokenPipe\n\
         peer half-close: \"bye\" then Ok(0)\n\
         shutdown read: Ok(0)\n\
         blocking read: late\n\
         connect_timeout: Ok(())\n\
         reset: ConnectionReset, then Ok(0), write BrokenPipe\n\
         refused: ConnectionRefused\n\
         silent: TimedOut after the timeout true\n\
         linger 0: 0\n\
         no route: NetworkUnreachable\n\
         refused with a timeout: ConnectionRefused\n\
         bind: 0.0.0.0:5555\n\
         bind again: AddrInUse\n\
         bind elsewhere: AddrNotAvailable\n\
         bind loopback: Ok(())\n\
         ephemeral: 10.0.0.2 true\n\
         nonblocking accept: WouldBlock\n\
         bind after close: Ok(())\n\
         udp bind: ephemeral true\n\
         udp peek: ping from 10.0.0.1:7001\n\
         udp echo: ping from 10.0.0.1:7001\n\
         udp truncated: a lo\n\
         udp connected: local 10.0.0.2, peer 10.0.0.1:7001\n\
         udp send/recv: again\n\
         udp other source: WouldBlock\n\
         udp nonblocking: WouldBlock\n\
         udp no peer: errno 89\n\
         udp too large: errno 90\n\
         loopback: listener 127.0.0.1 ephemeral true, peer is the client true\n\
         loopback: server got it intact true, echoed intact true\n\
         loopback refused: ConnectionRefused\n\
         udp loopback: to myself from itself true\n\
         own address: self from 10.0.0.2, local 10.0.0.2\n\
         done\n",
        "{out:#?}"
    );
}

#[test]
fn a_threaded_std_echo_server_serves_100_concurrent_clients() {
    let ns = namespace("stdnet-100");
    let _guest = serve(&ns);
    let failures = ns.enter(|| {
        let clients: Vec<_> = (0..100u64)
            .map(|i| std::thread::spawn(move || echo_round_trip(i + 1, 256 * 1024)))
            .collect();
        clients.into_iter().filter_map(|c| c.join().unwrap().err()).collect::<Vec<_>>()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn clients_vanishing_mid_request_do_not_disturb_the_others() {
    let ns = namespace("stdnet-vanish");
    let mut guest = serve(&ns);
    let failures = ns.enter(|| {
        let addr: SocketAddr = format!("{GUEST}:7").parse().unwrap();
        // Clients that send half a request and vanish: reset, or closed
        // without reading the echo.
        let vanishing: Vec<_> = (0..20)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(&noise(i, 100_000)).unwrap();
                    if i % 2 == 0 { support::reset(s) } else { drop(s) }
                })
            })
            .collect();
        let served: Vec<_> = (0..20u64)
            .map(|i| std::thread::spawn(move || echo_round_trip(1000 + i, 200_000)))
            .collect();
        for v in vanishing {
            v.join().unwrap();
        }
        let mut failures: Vec<String> =
            served.into_iter().filter_map(|c| c.join().unwrap().err()).collect();
        // And after them, still serving.
        failures.extend(echo_round_trip(7, 10_000).err());
        failures
    });
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(guest.0.try_wait().unwrap().is_none(), "the guest exited");
}

#[test]
fn half_close_addresses_and_udp_as_a_client_on_the_host_sees_them() {
    let ns = namespace("stdnet-bye");
    let _guest = serve(&ns);
    let (reply, local, eof, udp) = ns.enter(|| {
        let mut s = TcpStream::connect((GUEST, 8)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        // The guest's FIN came: end of stream, and the connection still
        // takes what this side writes until it closes.
        let eof = s.read(&mut [0u8; 4]).unwrap();
        s.write_all(b"after").unwrap();
        let local = s.local_addr().unwrap();
        let u = UdpSocket::bind("10.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut got = None;
        let mut b = [0u8; 64];
        for _ in 0..20 {
            u.send_to(b"datagram", (GUEST, 7)).unwrap();
            if let Ok((n, from)) = u.recv_from(&mut b) {
                got = Some((String::from_utf8_lossy(&b[..n]).into_owned(), from));
                break;
            }
        }
        (reply, local, eof, got)
    });
    assert_eq!(reply, format!("bye from {GUEST}:8 to {local}\n"));
    assert_eq!(eof, 0);
    let (data, from) = udp.expect("no UDP echo");
    assert_eq!((data.as_str(), from.to_string()), ("datagram", format!("{GUEST}:7")));
}

/// An IPv6 socket bound to `[::]` is dual-stack, as Linux's by default:
/// IPv4 clients reach it, and it sees their addresses IPv4-mapped.
#[test]
fn ipv6_sockets_on_any_serve_ipv4_clients_as_linuxs_dual_stack_does() {
    let ns = namespace("stdnet-dual");
    let _guest = serve(&ns);
    let (reply, local, udp, udp_local) = ns.enter(|| {
        let mut s = TcpStream::connect((GUEST, 9)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let u = UdpSocket::bind("10.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut got = None;
        let mut b = [0u8; 128];
        for _ in 0..20 {
            u.send_to(b"hello", (GUEST, 9)).unwrap();
            if let Ok((n, from)) = u.recv_from(&mut b) {
                got = Some((String::from_utf8_lossy(&b[..n]).into_owned(), from));
                break;
            }
        }
        (reply, s.local_addr().unwrap(), got, u.local_addr().unwrap())
    });
    let mapped = |a: std::net::SocketAddr| format!("[::ffff:{}]:{}", a.ip(), a.port());
    assert_eq!(reply, format!("dual from [::ffff:{GUEST}]:9 to {}\n", mapped(local)));
    let (data, from) = udp.expect("no UDP answer from [::]:9");
    assert_eq!(data, format!("dual [::]:9 from {}", mapped(udp_local)));
    assert_eq!(from.to_string(), format!("{GUEST}:9"));
}

#[test]
fn garbage_frames_on_the_tap_while_serving() {
    let ns = namespace("stdnet-garbage");
    let mut guest = serve(&ns);
    let ifindex = ifindex(&ns, "tap0");
    let (sent, failures) = ns.enter(move || {
        let clients = std::thread::spawn(|| {
            let mut failures = Vec::new();
            let until = Instant::now() + Duration::from_secs(3);
            let mut i = 0;
            while Instant::now() < until {
                i += 1;
                failures.extend(echo_round_trip(i, 20_000).err());
            }
            failures
        });
        let link = Link::new(ifindex);
        let segment = |src, sport, dport, flags, seq| {
            Segment { src, sport, dport, flags, seq, ..Segment::default() }.frame()
        };
        let good = segment([10, 0, 0, 1], 40000, 7, 0x02, 1);
        let mut sent = 0;
        for i in 0..3000u64 {
            let frame = match i % 4 {
                // Random bytes, all lengths.
                0 => noise(i + 11, 14 + (i as usize * 37) % 1500),
                // A good SYN cut short.
                1 => good[..(i as usize / 4) % good.len()].to_vec(),
                // A SYN flood from spoofed addresses on the link.
                2 => segment([10, 0, 0, 10 + (i % 200) as u8], 1024 + i as u16, 7, 0x02, i as u32),
                // Random flags on the served ports.
                _ => segment(
                    [10, 0, 0, 1],
                    50000 + (i % 100) as u16,
                    7 + (i % 2) as u16,
                    (i % 64) as u8,
                    i as u32,
                ),
            };
            if link.send(&frame) {
                sent += 1;
            }
        }
        (sent, clients.join().unwrap())
    });
    assert!(sent > 2000, "only {sent} frames sent");
    assert!(failures.is_empty(), "{failures:#?}");
    // The SYN flood's half-open connections time out (3 s): serving still.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ns.enter(|| echo_round_trip(99, 1000)) {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "not serving after the garbage: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(guest.0.try_wait().unwrap().is_none(), "the guest exited");
}

#[test]
fn unanswered_arp_is_ehostunreach_and_icmp_port_unreachable_econnrefused() {
    let ns = namespace("stdnet-unreach");
    let out = ns.tender(&guest_args("unreachable"));
    out.assert_ok();
    // Linux: three ARP probes a second apart, then EHOSTUNREACH (not
    // ETIMEDOUT after the SYN's 127 s), for a blocking connect and as a
    // nonblocking connect's SO_ERROR. And a connected UDP socket hears of
    // an ICMP port unreachable once, as ECONNREFUSED.
    assert_eq!(
        out.stdout,
        "blocking: HostUnreachable, within 2..30 s true\n\
         nonblocking: -1 errno EINPROGRESS true\n\
         poll: 1, POLLOUT true POLLERR true, within 2..30 s true, SO_ERROR EHOSTUNREACH true\n\
         udp refused: ConnectionRefused, then WouldBlock\n\
         done\n",
        "{out:#?}"
    );
}

/// Records on `link` the TCP segments the guest sends to 10.0.0.1:`port`
/// until the returned function is called, which gives their payloads in
/// order (empty ones left out).
fn capture_payloads(link: Link, port: u16) -> impl FnOnce() -> Vec<Vec<u8>> {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let capture = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while !stop.load(Relaxed) {
                got.extend(link.segments_to([10, 0, 0, 1], Duration::from_millis(100)));
            }
            got
        })
    };
    move || {
        stop.store(true, Relaxed);
        let got = capture.join().unwrap();
        got.into_iter()
            .filter(|s| s.dport == port && !s.payload.is_empty())
            .map(|s| s.payload)
            .collect()
    }
}

#[test]
fn sendmsg_and_writev_send_their_buffers_as_one_write() {
    let ns = namespace("stdnet-gather");
    let tap = ifindex(&ns, "tap0");
    let (listener, link) =
        ns.enter(move || (TcpListener::bind(("10.0.0.1", 7007)).unwrap(), Link::new(tap)));
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut small = [0u8; 12];
        s.read_exact(&mut small).unwrap();
        s.write_all(b"ok").unwrap();
        let mut big = vec![0u8; 4 + 100 * 1024];
        s.read_exact(&mut big).unwrap();
        s.write_all(b"ok").unwrap();
        (small, big)
    });
    let capture = capture_payloads(link, 7007);
    let out = ns.tender(&guest_args("gather"));
    let data = capture();
    out.assert_ok();
    assert_eq!(out.stdout, "sendmsg: 12\nwritev: 102404\ndone\n", "{out:#?}");
    let (small, big) = server.join().unwrap();
    assert_eq!(&small, b"header: body");
    assert!(big.starts_with(b"HEAD") && big[4..].iter().all(|&b| b == b'x'));
    // On the wire: the three buffers of sendmsg in one segment, and the
    // head of writev with the body's start, not each buffer alone.
    assert_eq!(data.first().map(Vec::as_slice), Some(&b"header: body"[..]), "{data:?}");
    let head = data.iter().find(|p| p.starts_with(b"HEAD")).expect("writev's segment");
    assert!(head.len() > 4, "writev's head went alone: {} bytes", head.len());
}

#[test]
fn a_streaming_writer_of_16_kib_buffers_sends_48_kib_frames() {
    let ns = namespace("stdnet-stream");
    let tap = ifindex(&ns, "tap0");
    let (listener, link) =
        ns.enter(move || (TcpListener::bind(("10.0.0.1", 7009)).unwrap(), Link::new(tap)));
    let len = 3 * 16 * 1024;
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = vec![0u8; len];
        s.read_exact(&mut got).unwrap();
        s.write_all(b"ok").unwrap();
        got
    });
    let capture = capture_payloads(link, 7009);
    let out = ns.tender(&guest_args("stream"));
    let got = server.join().unwrap();
    let data = capture();
    out.assert_ok();
    assert_eq!(out.stdout, "stream: sent\n", "{out:#?}");
    assert_eq!(got, data.concat(), "what the host read is what was on the wire");
    // On the wire: the three writes in one offloaded frame, sent once
    // 48 KiB waited (libos::net::EGRESS_BATCH, within the host's first
    // window of 64 KiB), not a frame per 16 KiB write.
    let sizes: Vec<usize> = data.iter().map(Vec::len).collect();
    assert_eq!(sizes, [len], "payload sizes on the wire");
}

#[test]
fn small_writes_leave_together_when_the_writer_blocks_and_before_exit() {
    let ns = namespace("stdnet-burst");
    let tap = ifindex(&ns, "tap0");
    let (listener, link) =
        ns.enter(move || (TcpListener::bind(("10.0.0.1", 7008)).unwrap(), Link::new(tap)));
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut burst = [0u8; 80];
        s.read_exact(&mut burst).unwrap();
        s.write_all(b"ok").unwrap();
        // The guest exits right after this write, without closing: the
        // bytes come, then the exit's FIN (tests/suite/exit_flush.rs).
        let mut bye = [0u8; 3];
        let last = s.read_exact(&mut bye).map(|()| bye);
        (burst, last.map_err(|e| e.kind()))
    });
    let capture = capture_payloads(link, 7008);
    let out = ns.tender(&guest_args("burst"));
    let (burst, last) = server.join().unwrap();
    let data = capture();
    out.assert_ok();
    assert_eq!(out.stdout, "burst: sent\n", "{out:#?}");
    let want: Vec<u8> = (0..16u8).flat_map(|k| [b'a' + k, b'+', b'O', b'K', b'\n']).collect();
    assert_eq!(&burst[..], &want[..]);
    assert_eq!(last, Ok(*b"bye"), "the write before exit did not leave");
    // On the wire: the sixteen writes (Nagle off) in one segment, sent
    // when the writer blocked in its read, not one segment per write.
    assert_eq!(data.first().map(Vec::as_slice), Some(&want[..]), "{data:?}");
}
