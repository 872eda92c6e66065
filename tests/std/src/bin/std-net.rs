//! std::net as a conformance program, for tests/suite/std_net.rs: the
//! guest is 10.0.0.2/24 (no gateway), the suite's host side 10.0.0.1.
//!
//! * `client`: std's clients against the suite's servers on 10.0.0.1
//!   (7001 echo, 7002 silent then "late", 7003 reset, 7004 counts until
//!   EOF, 7005 "bye" then EOF, 7006 reads until EOF or an error and tells
//!   the suite; UDP 7001 echo, 7002 answered from 7012),
//!   each check a line of output that the suite asserts.
//! * `serve`: a threaded echo server on TCP 7 (a thread per connection),
//!   "bye" then EOF on TCP 8, and UDP echo on 7, for the suite's clients;
//!   on `[::]:9` (IPv6, dual-stack) TCP and UDP servers that answer with
//!   the addresses they see.
//! * `unreachable`: connections to 10.0.0.98, which nobody answers ARP
//!   for: blocking, then nonblocking with `poll` and `SO_ERROR`; and a
//!   connected UDP socket to a port of 10.0.0.1 nothing listens on.
//! * `flood exit|close|fill|parked BYTES`: writes BYTES of the pattern
//!   `i % 251` to 10.0.0.1:7010 and ends (tests/suite/exit_flush.rs):
//!   `exit(3)` with the socket open; `close` drops it, sleeps 100 ms and
//!   returns from `main`; `fill` writes nonblocking only what the buffer
//!   takes, then `exit(3)`; `parked` leaves the socket idle for 1.5 s
//!   while a second connection to the same port gets a byte every 50 ms,
//!   then `exit(3)`.
//! * `gather`: `sendmsg` and `writev` of several buffers to the suite's
//!   10.0.0.1:7007, which reads the segments on the wire.
//! * `stream`: three 16 KiB writes in a row to 10.0.0.1:7009, which reads
//!   the segments on the wire.

libos_std::app!(devices: ["service0": Net]);

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const HOST: &str = "10.0.0.1";

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("client") => client(),
        Some("serve") => serve(),
        Some("send") => send_bench(),
        Some("unreachable") => unreachable(),
        Some("gather") => gather(),
        Some("burst") => burst(),
        Some("stream") => stream(),
        Some("flood") => flood(),
        Some("loopback") => {
            loopback();
            println!("done");
        }
        _ => {
            eprintln!("usage: std-net client|serve");
            std::process::exit(2);
        }
    }
}

fn kind<T: std::fmt::Debug>(r: std::io::Result<T>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// The errno of a call that fails (std has no kind for some).
fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
    }
}

/// A deterministic pseudo-random byte stream.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e3779b97f4a7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn host(port: u16) -> SocketAddr {
    format!("{HOST}:{port}").parse().unwrap()
}

fn client() {
    tcp_client();
    tcp_errors();
    listeners();
    udp();
    loopback();
    own_address();
    println!("done");
}

/// Connections of the guest to itself, in memory: 127.0.0.1 and its own
/// address, as tokio's and mio's tests make them.
fn loopback() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = l.local_addr().unwrap();
    let mut c = TcpStream::connect(at).unwrap();
    let (mut s, peer) = l.accept().unwrap();
    println!(
        "loopback: listener {} ephemeral {}, peer is the client {}",
        at.ip(),
        at.port() >= 49152,
        peer == c.local_addr().unwrap()
    );
    // A mebibyte each way at once, a thread per side.
    let data = noise(1 << 20);
    let sent = data.clone();
    let server = std::thread::spawn(move || {
        let mut got = vec![0u8; 1 << 20];
        s.read_exact(&mut got).unwrap();
        s.write_all(&got).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        got == sent
    });
    c.write_all(&data).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    println!(
        "loopback: server got it intact {}, echoed intact {}",
        server.join().unwrap(),
        back == data
    );
    println!("loopback refused: {}", kind(TcpStream::connect("127.0.0.1:1")));
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"to myself", u.local_addr().unwrap()).unwrap();
    let mut b = [0u8; 16];
    let (n, from) = u.recv_from(&mut b).unwrap();
    println!(
        "udp loopback: {} from itself {}",
        String::from_utf8_lossy(&b[..n]),
        from == u.local_addr().unwrap()
    );
}

/// A connection to the guest's own address, through a listener on every
/// address.
fn own_address() {
    // The guest's own address, through a listener on every address.
    let any = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = any.local_addr().unwrap().port();
    let mut c = TcpStream::connect(("10.0.0.2", port)).unwrap();
    let (mut s, peer) = any.accept().unwrap();
    c.write_all(b"self").unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    println!(
        "own address: {} from {}, local {}",
        String::from_utf8_lossy(&b),
        peer.ip(),
        c.local_addr().unwrap().ip()
    );
}

fn tcp_client() {
    let mut s = TcpStream::connect(host(7001)).expect("connect to the echo server");
    let local = s.local_addr().unwrap();
    println!(
        "addresses: local {} ephemeral {}, peer {}",
        local.ip(),
        local.port() >= 49152,
        s.peer_addr().unwrap()
    );
    s.write_all(b"hello").unwrap();
    let mut b = [0u8; 5];
    s.read_exact(&mut b).unwrap();
    println!("echo: {}", String::from_utf8_lossy(&b));

    // Peek: the data stays for the next read.
    s.write_all(b"peekaboo").unwrap();
    let mut p = [0u8; 8];
    while s.peek(&mut p).unwrap() < 8 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut four = [0u8; 4];
    let n = s.peek(&mut four).unwrap();
    let mut all = [0u8; 8];
    s.read_exact(&mut all).unwrap();
    println!(
        "peek: {} then read {}",
        String::from_utf8_lossy(&four[..n]),
        String::from_utf8_lossy(&all)
    );

    // MSG_TRUNC on a stream discards, as on Linux (peeking: counts), and
    // the buffer may be null; recvmsg fills its buffers in turn.
    s.write_all(b"truncate-me, vectored!").unwrap();
    let mut p = [0u8; 22];
    while s.peek(&mut p).unwrap() < 22 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    let null = std::ptr::null_mut();
    // SAFETY: MSG_TRUNC on a stream writes nothing to the (null) buffer.
    let peeked = unsafe { libc::recv(fd, null, 4, libc::MSG_PEEK | libc::MSG_TRUNC) };
    // SAFETY: as above.
    let discarded = unsafe { libc::recv(fd, null, 8, libc::MSG_TRUNC) };
    let mut rest = [0u8; 5];
    s.read_exact(&mut rest).unwrap();
    let (mut a, mut b) = ([0u8; 4], [0u8; 8]);
    let mut iov = [
        libc::iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() },
        libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() },
    ];
    // SAFETY: msghdr is plain data; all zeroes is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: msg's buffers are writable for their lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    let iov_a = a;
    // recvmsg with MSG_TRUNC discards too, its buffers untouched.
    s.write_all(b"xyz").unwrap();
    while s.peek(&mut p[..3]).unwrap() < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    a = *b"AAAA";
    let mut one = [libc::iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() }];
    msg.msg_iov = one.as_mut_ptr();
    msg.msg_iovlen = 1;
    // SAFETY: as above.
    let t = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_TRUNC) };
    println!(
        "trunc: peeked {peeked}, discarded {discarded}, then read {}; recvmsg {n}: {} {}; \
         with MSG_TRUNC {t}: {}",
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(&iov_a),
        String::from_utf8_lossy(&b[..(n.max(4) as usize - 4).min(8)]),
        String::from_utf8_lossy(&a)
    );

    s.set_nodelay(true).unwrap();
    s.set_ttl(7).unwrap();
    println!("options: nodelay {:?}, ttl {:?}", s.nodelay().unwrap(), s.ttl().unwrap());

    // A read timeout: WouldBlock (EAGAIN) after it, as on Linux.
    s.set_read_timeout(Some(Duration::from_millis(150))).unwrap();
    let t = Instant::now();
    let r = s.read(&mut b);
    println!(
        "read timeout: {} after the timeout {}",
        kind(r),
        t.elapsed() >= Duration::from_millis(150)
    );
    s.set_read_timeout(None).unwrap();

    // Nonblocking: WouldBlock at once.
    s.set_nonblocking(true).unwrap();
    println!("nonblocking read: {}", kind(s.read(&mut b)));
    s.set_nonblocking(false).unwrap();

    // A mebibyte through the echo server, written by a second thread
    // while this one reads: flow control both ways, and threads blocked
    // on one socket.
    let data = noise(1 << 20);
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent).map(|()| sent.len()));
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).unwrap();
    println!("mebibyte: wrote {:?}, echoed intact {}", writer.join().unwrap().ok(), back == data);
    println!("take_error: {:?}", s.take_error().unwrap());

    // shutdown(Write): the server sees end of stream and answers.
    let mut c = TcpStream::connect(host(7004)).unwrap();
    c.write_all(b"12345").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    println!("half-close: {reply}, write after it {}", kind(c.write(b"x")));

    // The peer's half-close: its data, then end of stream.
    let mut c = TcpStream::connect(host(7005)).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    println!("peer half-close: {:?} then {}", String::from_utf8_lossy(&got), kind(c.read(&mut b)));

    // shutdown(Read): reads return end of stream at once.
    let c = TcpStream::connect(host(7001)).unwrap();
    c.shutdown(Shutdown::Read).unwrap();
    println!("shutdown read: {}", kind((&c).read(&mut b)));

    // A server that stays silent, then writes: a blocking read waits.
    let mut c = TcpStream::connect(host(7002)).unwrap();
    let mut late = [0u8; 4];
    c.read_exact(&mut late).unwrap();
    println!("blocking read: {}", String::from_utf8_lossy(&late));

    // connect_timeout to a live server.
    let c = TcpStream::connect_timeout(&host(7001), Duration::from_secs(5));
    println!("connect_timeout: {}", kind(c.map(|_| ())));
}

fn tcp_errors() {
    let mut b = [0u8; 8];
    // A reset by the peer: ConnectionReset once, then end of stream, and
    // writes BrokenPipe.
    let mut c = TcpStream::connect(host(7003)).unwrap();
    let first = kind(c.read(&mut b));
    println!("reset: {first}, then {}, write {}", kind(c.read(&mut b)), kind(c.write(b"x")));
    println!("refused: {}", kind(TcpStream::connect(host(7009))));
    let silent: SocketAddr = "10.0.0.99:80".parse().unwrap();
    let t = Instant::now();
    let r = TcpStream::connect_timeout(&silent, Duration::from_millis(400));
    println!("silent: {} after the timeout {}", kind(r), t.elapsed() >= Duration::from_millis(400));
    // Closing: gracefully (the server reads the data, then end of
    // stream), and with SO_LINGER 0 (a reset).
    let mut c = TcpStream::connect(host(7006)).unwrap();
    c.write_all(b"graceful").unwrap();
    drop(c);
    let mut c = TcpStream::connect(host(7006)).unwrap();
    c.write_all(b"abort").unwrap();
    // Let the bytes go first: the reset must not overtake them.
    std::thread::sleep(Duration::from_millis(200));
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on the stream's socket with a sized linger.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&c),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            size_of::<libc::linger>() as u32,
        )
    };
    println!("linger 0: {r}");
    drop(c);
    let far: SocketAddr = "192.168.77.1:80".parse().unwrap();
    println!("no route: {}", kind(TcpStream::connect(far)));
    // A nonblocking connect refused: the error comes with POLLOUT.
    let r = TcpStream::connect_timeout(&host(7009), Duration::from_secs(5));
    println!("refused with a timeout: {}", kind(r));
}

fn listeners() {
    let l = TcpListener::bind("0.0.0.0:5555").unwrap();
    println!("bind: {}", l.local_addr().unwrap());
    println!("bind again: {}", kind(TcpListener::bind("0.0.0.0:5555")));
    println!("bind elsewhere: {}", kind(TcpListener::bind("10.0.0.77:0")));
    println!("bind loopback: {}", kind(TcpListener::bind("127.0.0.1:0").map(|_| ())));
    let e = TcpListener::bind("10.0.0.2:0").unwrap();
    let a = e.local_addr().unwrap();
    println!("ephemeral: {} {}", a.ip(), a.port() >= 49152);
    l.set_nonblocking(true).unwrap();
    println!("nonblocking accept: {}", kind(l.accept()));
    drop(l);
    println!("bind after close: {}", kind(TcpListener::bind("0.0.0.0:5555").map(|_| ())));
}

fn udp() {
    let u = UdpSocket::bind("0.0.0.0:0").unwrap();
    println!("udp bind: ephemeral {}", u.local_addr().unwrap().port() >= 49152);
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    u.send_to(b"ping", host(7001)).unwrap();
    let mut b = [0u8; 16];
    let (n, from) = u.peek_from(&mut b).unwrap();
    println!("udp peek: {} from {from}", String::from_utf8_lossy(&b[..n]));
    let (n, from) = u.recv_from(&mut b).unwrap();
    println!("udp echo: {} from {from}", String::from_utf8_lossy(&b[..n]));
    // Truncated to the buffer, as Linux.
    u.send_to(b"a longer datagram", host(7001)).unwrap();
    let mut small = [0u8; 4];
    let (n, _) = u.recv_from(&mut small).unwrap();
    println!("udp truncated: {}", String::from_utf8_lossy(&small[..n]));
    u.connect(host(7001)).unwrap();
    println!(
        "udp connected: local {}, peer {}",
        u.local_addr().unwrap().ip(),
        u.peer_addr().unwrap()
    );
    u.send(b"again").unwrap();
    let n = u.recv(&mut b).unwrap();
    println!("udp send/recv: {}", String::from_utf8_lossy(&b[..n]));
    // Connected to 7002, whose answer comes from 7012: not for us.
    u.connect(host(7002)).unwrap();
    u.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    u.send(b"filtered").unwrap();
    println!("udp other source: {}", kind(u.recv(&mut b)));
    u.set_nonblocking(true).unwrap();
    println!("udp nonblocking: {}", kind(u.recv(&mut b)));
    let fresh = UdpSocket::bind("0.0.0.0:0").unwrap();
    println!("udp no peer: {}", errno(fresh.send(b"x")));
    println!("udp too large: {}", errno(fresh.send_to(&[0u8; 2000], host(7001))));
}

/// Writes `COUNT` chunks of `SIZE` bytes (environment) to 10.0.0.1:7100
/// with Nagle off, computing between writes as `WORK` iterations say, and
/// prints how long it took: what sending promptly costs.
fn send_bench() {
    let var = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (count, size, work) = (var("COUNT", 10000), var("SIZE", 100), var("WORK", 0));
    let mut s = TcpStream::connect(host(7100)).unwrap();
    s.set_nodelay(true).unwrap();
    let chunk = vec![7u8; size];
    let t = Instant::now();
    let mut x = 1u64;
    for _ in 0..count {
        s.write_all(&chunk).unwrap();
        for _ in 0..work {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut ack = [0u8; 1];
    let _ = s.read(&mut ack);
    println!("send: {count} x {size} B in {} us ({x})", t.elapsed().as_micros());
}

fn serve() {
    let echo = TcpListener::bind("0.0.0.0:7").unwrap();
    let bye = TcpListener::bind("0.0.0.0:8").unwrap();
    let udp = UdpSocket::bind("0.0.0.0:7").unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        loop {
            let (n, from) = udp.recv_from(&mut b).unwrap();
            udp.send_to(&b[..n], from).unwrap();
        }
    });
    std::thread::spawn(move || {
        for s in bye.incoming() {
            let Ok(mut s) = s else { continue };
            let msg =
                format!("bye from {} to {}\n", s.local_addr().unwrap(), s.peer_addr().unwrap());
            let _ = s.write_all(msg.as_bytes());
            let _ = s.shutdown(Shutdown::Write);
            let _ = std::io::copy(&mut s, &mut std::io::sink());
        }
    });
    // Dual-stack, as on Linux: IPv6 sockets on `[::]` serve IPv4 clients,
    // whose addresses they see IPv4-mapped.
    let dual = TcpListener::bind("[::]:9").unwrap();
    let dual_udp = UdpSocket::bind("[::]:9").unwrap();
    std::thread::spawn(move || {
        for s in dual.incoming() {
            let Ok(mut s) = s else { continue };
            let msg =
                format!("dual from {} to {}\n", s.local_addr().unwrap(), s.peer_addr().unwrap());
            let _ = s.write_all(msg.as_bytes());
        }
    });
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        loop {
            let (_, from) = dual_udp.recv_from(&mut b).unwrap();
            let local = dual_udp.local_addr().unwrap();
            dual_udp.send_to(format!("dual {local} from {from}").as_bytes(), from).unwrap();
        }
    });
    println!("std-net: listening on {}", echo.local_addr().unwrap());
    for s in echo.incoming() {
        let mut s = match s {
            Ok(s) => s,
            Err(e) => {
                println!("accept: {e}");
                continue;
            }
        };
        std::thread::spawn(move || {
            let mut b = vec![0u8; 16384];
            loop {
                match s.read(&mut b) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Err(e) = s.write_all(&b[..n]) {
                            println!("echo write: {:?}", e.kind());
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                        println!("echo: a client reset");
                        break;
                    }
                    Err(e) => {
                        println!("echo read: {:?}", e.kind());
                        break;
                    }
                }
            }
        });
    }
}

/// Connections to an on-link address nobody answers ARP for: Linux gives
/// up after three probes a second apart with EHOSTUNREACH.
fn unreachable() {
    let nobody: SocketAddr = "10.0.0.98:80".parse().unwrap();
    let t = Instant::now();
    let r = TcpStream::connect(nobody);
    let took = t.elapsed();
    println!("blocking: {}, within 2..30 s {}", kind(r), (2..30).contains(&took.as_secs()));
    // SAFETY: plain socket calls on a socket this function owns, with
    // sized, initialised arguments.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 80u16.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([10, 0, 0, 98]) },
            sin_zero: [0; 8],
        };
        let len = size_of::<libc::sockaddr_in>() as u32;
        let r = libc::connect(fd, (&raw const sin).cast(), len);
        let e = std::io::Error::last_os_error().raw_os_error();
        println!("nonblocking: {r} errno EINPROGRESS {}", e == Some(libc::EINPROGRESS));
        let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        let t = Instant::now();
        let n = libc::poll(&mut p, 1, 30_000);
        let took = t.elapsed();
        let mut err: libc::c_int = 0;
        let mut err_len = 4u32;
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&raw mut err).cast(), &mut err_len);
        println!(
            "poll: {n}, POLLOUT {} POLLERR {}, within 2..30 s {}, SO_ERROR EHOSTUNREACH {}",
            p.revents & libc::POLLOUT != 0,
            p.revents & libc::POLLERR != 0,
            (2..30).contains(&took.as_secs()),
            err == libc::EHOSTUNREACH
        );
        libc::close(fd);
    }
    // The host answers a datagram to a closed port with an ICMP port
    // unreachable: the connected socket's next receive is refused, once.
    let u = UdpSocket::bind("0.0.0.0:0").unwrap();
    u.connect(host(7999)).unwrap();
    u.send(b"anyone?").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 16];
    let first = kind(u.recv(&mut b));
    u.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    println!("udp refused: {first}, then {}", kind(u.recv(&mut b)));
    println!("done");
}

/// `sendmsg` and `writev` of several buffers: each one write of the
/// stream, which the suite sees as one segment (the first buffers not
/// alone).
/// Sixteen small writes with Nagle off, then a read that blocks: they
/// leave together when the thread blocks (docs/std.md, "When a write
/// leaves"). Then a last write and `exit` at once, without a close: it
/// still leaves.
fn burst() {
    let mut c = TcpStream::connect(host(7008)).unwrap();
    c.set_nodelay(true).unwrap();
    for k in 0..16u8 {
        c.write_all(&[b'a' + k, b'+', b'O', b'K', b'\n']).unwrap();
    }
    let mut ok = [0u8; 2];
    c.read_exact(&mut ok).unwrap();
    c.write_all(b"bye").unwrap();
    println!("burst: sent");
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// Three 16 KiB writes without blocking in between (a streaming writer
/// of small buffers, as std-echo or `io::copy`), then a blocking read.
fn stream() {
    let mut c = TcpStream::connect(host(7009)).unwrap();
    c.set_nodelay(true).unwrap();
    let data = noise(3 * 16 * 1024);
    for chunk in data.chunks(16 * 1024) {
        c.write_all(chunk).unwrap();
    }
    let mut ok = [0u8; 2];
    c.read_exact(&mut ok).unwrap();
    println!("stream: sent");
}

fn flood() {
    let how = std::env::args().nth(2).unwrap_or_default();
    let bytes: usize = std::env::args().nth(3).and_then(|b| b.parse().ok()).expect("BYTES");
    let mut c = TcpStream::connect(host(7010)).unwrap();
    let chunk: Vec<u8> = (0..251 * 64).map(|i| (i % 251) as u8).collect();
    let mut wrote = 0;
    if how == "fill" {
        c.set_nonblocking(true).unwrap();
    }
    while wrote < bytes {
        let want = &chunk[..chunk.len().min(bytes - wrote)];
        match c.write(want) {
            // Only whole chunks but the last, so that the pattern runs on.
            Ok(n) if n == want.len() => wrote += n,
            Ok(n) if how != "fill" => {
                c.write_all(&want[n..]).unwrap();
                wrote += want.len();
            }
            Ok(n) => {
                wrote += n;
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    println!("flood: wrote {wrote}");
    std::io::stdout().flush().unwrap();
    if how == "close" {
        drop(c);
        std::thread::sleep(Duration::from_millis(100));
        return;
    }
    if how == "parked" {
        // `c` stays idle, long enough for libos to park it out of
        // smoltcp's socket set, while a second connection keeps the
        // network turning with a byte every 50 ms; then exit with both open.
        let mut busy = TcpStream::connect(host(7010)).unwrap();
        for _ in 0..30 {
            busy.write_all(b"b").unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::process::exit(3);
}

fn gather() {
    let mut c = TcpStream::connect(host(7007)).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&c);
    let parts: [&[u8]; 3] = [b"head", b"er: ", b"body"];
    let iov: Vec<libc::iovec> = parts
        .iter()
        .map(|p| libc::iovec { iov_base: p.as_ptr().cast_mut().cast(), iov_len: p.len() })
        .collect();
    // SAFETY: msghdr of three live buffers, no name, no control.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_ptr().cast_mut();
        msg.msg_iovlen = iov.len();
        libc::sendmsg(fd, &msg, 0)
    };
    println!("sendmsg: {n}");
    let mut ok = [0u8; 2];
    c.read_exact(&mut ok).unwrap();
    // A head and a body larger than any gathering copy.
    let body = vec![b'x'; 100 * 1024];
    let big: [&[u8]; 2] = [b"HEAD", &body];
    let iov: Vec<libc::iovec> = big
        .iter()
        .map(|p| libc::iovec { iov_base: p.as_ptr().cast_mut().cast(), iov_len: p.len() })
        .collect();
    // SAFETY: two live buffers.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    println!("writev: {n}");
    c.read_exact(&mut ok).unwrap();
    println!("done");
}
