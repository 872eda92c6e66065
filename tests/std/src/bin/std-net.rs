//! std::net as a conformance program, for tests/suite/std_net.rs: the
//! guest is 10.0.0.2/24 (no gateway), the suite's host side 10.0.0.1.
//!
//! * `client`: std's clients against the suite's servers on 10.0.0.1
//!   (7001 echo, 7002 silent then "late", 7003 reset, 7004 counts until
//!   EOF, 7005 "bye" then EOF; UDP 7001 echo, 7002 answered from 7012),
//!   each check a line of output that the suite asserts.
//! * `serve`: a threaded echo server on TCP 7 (a thread per connection),
//!   "bye" then EOF on TCP 8, and UDP echo on 7, for the suite's clients.

libos_std::app!(devices: ["service0": Net]);

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const HOST: &str = "10.0.0.1";

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("client") => client(),
        Some("serve") => serve(),
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
