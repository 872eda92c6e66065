//! tokio's TCP and UDP over libos-std's sockets, for
//! tests/suite/std_tokio_net.rs: the guest is 10.0.0.2/24 (no gateway),
//! the suite's host side 10.0.0.1. mio registers every socket
//! edge-triggered (`EPOLLET`): a missed edge hangs a connection, a
//! spurious one that never stops spins.
//!
//! * `serve current|multi|busy`: an echo server on TCP 7 (a task per
//!   connection, `tokio::io::copy`), "bye" then EOF on TCP 8, and UDP echo
//!   on 7, under the current-thread or the multi-thread runtime; `busy` is
//!   current-thread with a task that never stops yielding, so that the
//!   runtime never parks: it must see new connections and data through
//!   its zero-timeout `epoll_wait`s alone.
//! * `client`: tokio clients against the suite's echo server on
//!   10.0.0.1:7001 and its UDP echo on 7001, with timeouts.
//! * `cost`: what a zero-timeout `poll` and `epoll_wait` cost with the
//!   network device up (each gives the network a turn first), against a
//!   call that does not (a nonblocking `read` of an empty eventfd); for
//!   docs/std.md, by hand.

libos_std::app!(devices: ["service0": Net]);

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flavor = args.get(1).map(String::as_str).unwrap_or("current");
    let rt = match flavor {
        "current" | "busy" => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        _ => tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build(),
    }
    .expect("the runtime builds");
    match args.first().map(String::as_str) {
        Some("cost") => cost(),
        Some("serve") => rt.block_on(serve(flavor)),
        Some("client") => rt.block_on(client()),
        _ => {
            eprintln!("usage: std-tokio-net serve|client current|multi, or cost");
            std::process::exit(2);
        }
    }
}

async fn serve(flavor: &str) {
    let echo = TcpListener::bind("0.0.0.0:7").await.unwrap();
    let bye = TcpListener::bind("0.0.0.0:8").await.unwrap();
    let udp = UdpSocket::bind("0.0.0.0:7").await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, from) = udp.recv_from(&mut buf).await.unwrap();
            udp.send_to(&buf[..n], from).await.unwrap();
        }
    });
    tokio::spawn(async move {
        loop {
            let (mut s, _) = bye.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = s.write_all(b"bye").await;
                let _ = s.shutdown().await;
            });
        }
    });
    if flavor == "busy" {
        tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
    }
    println!("std-tokio-net: {flavor} listening on {}", echo.local_addr().unwrap());
    loop {
        let (s, _) = echo.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        tokio::spawn(async move {
            let (mut r, mut w) = s.into_split();
            // A client that vanishes ends its copy with an error: said, and
            // the server goes on.
            if let Err(e) = tokio::io::copy(&mut r, &mut w).await {
                eprintln!("std-tokio-net: copy: {e}");
            }
        });
    }
}

async fn client() {
    let mut s = TcpStream::connect("10.0.0.1:7001").await.unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let (mut r, mut w) = s.split();
    let sent = data.clone();
    let ((), back) = tokio::join!(
        async move {
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
        },
        async move {
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            back
        }
    );
    println!("tcp echo: {} bytes back, equal {}", back.len(), back == data);
    let u = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    u.connect("10.0.0.1:7001").await.unwrap();
    u.send(b"ping").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), u.recv(&mut buf)).await.unwrap().unwrap();
    println!("udp echo: {:?}", String::from_utf8_lossy(&buf[..n]));
    let r = tokio::time::timeout(Duration::from_millis(50), u.recv(&mut buf)).await;
    println!("udp silence: timed out {}", r.is_err());
    let refused = TcpStream::connect("10.0.0.1:7009").await.map(|_| ()).map_err(|e| e.kind());
    println!("refused: {refused:?}");
}

/// Nanoseconds per call of `f`, over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> u128 {
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        f();
    }
    t0.elapsed().as_nanos() / u128::from(n)
}

#[allow(unsafe_code)]
fn cost() {
    // SAFETY: plain calls on descriptors this function owns.
    unsafe {
        let e = libc::eventfd(0, libc::EFD_NONBLOCK);
        let ep = libc::epoll_create1(0);
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
        assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, e, &mut ev), 0);
        let n = 100_000;
        let mut v = 0u64;
        let read = per_call(n, || {
            libc::eventfd_read(e, &mut v);
        });
        let mut p = [libc::pollfd { fd: e, events: libc::POLLIN, revents: 0 }];
        let poll = per_call(n, || {
            libc::poll(p.as_mut_ptr(), 1, 0);
        });
        let mut out = [libc::epoll_event { events: 0, u64: 0 }; 8];
        let wait = per_call(n, || {
            libc::epoll_wait(ep, out.as_mut_ptr(), 8, 0);
        });
        println!("ns per call: read {read}, poll {poll}, epoll_wait {wait}");
        // epoll_wait asks every registration: its cost with 100 sockets.
        let socks: Vec<std::net::UdpSocket> =
            (0..100).map(|_| std::net::UdpSocket::bind("0.0.0.0:0").unwrap()).collect();
        for (i, u) in socks.iter().enumerate() {
            use std::os::fd::AsRawFd;
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET) as u32,
                u64: i as u64,
            };
            assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, u.as_raw_fd(), &mut ev), 0);
        }
        libc::epoll_wait(ep, out.as_mut_ptr(), 8, 0);
        let wait100 = per_call(10_000, || {
            libc::epoll_wait(ep, out.as_mut_ptr(), 8, 0);
        });
        println!("ns per epoll_wait with 100 idle UDP sockets registered: {wait100}");
    }
}
