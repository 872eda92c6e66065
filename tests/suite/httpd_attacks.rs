//! Clients that try to crash httpd or take it from the others (issue 11):
//! a huge request body, idle connections beyond the limit, a thousand
//! keep-alive clients, pipelined requests
//! whose responses are never read, a head or a body trickled a byte at a
//! time, and connections beyond the limit. Each test runs httpd at
//! `--mem 64` in a network namespace of its own (see `support::netns`),
//! and asserts that the guest survives the attack and that a plain `curl`
//! is served during it and after. The timeouts are shortened through the
//! environment (`HTTPD_HEADER_TIMEOUT` and the like) so that a test takes
//! seconds; nothing asserts how long anything took.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use support::netns::{Netns, require_root};
use support::{KillOnDrop, workspace_bin};

const GUEST: &str = "10.0.0.2:80";

/// A namespace with tap0 (host side 10.0.0.1/24).
fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

/// httpd at 10.0.0.2 with 64 MiB and `env` (`NAME=value`).
fn httpd(ns: &Netns, env: &[&str]) -> KillOnDrop {
    httpd_and_limit(ns, env).0
}

/// httpd as [`httpd`] does, and the connections it serves at once (from
/// its `httpd: up to N connections` line).
fn httpd_and_limit(ns: &Netns, env: &[&str]) -> (KillOnDrop, usize) {
    let httpd = workspace_bin("httpd").display().to_string();
    let disk = format!("storage={}", support::site_image().display());
    let mut args = vec!["--mem", "64", "--net", "service0=tap0", "--block-ro", &disk];
    args.extend_from_slice(&["--env", "NET_SERVICE0_IPV4=10.0.0.2/24"]);
    for e in env {
        args.extend_from_slice(&["--env", e]);
    }
    args.push(&httpd);
    let (guest, lines) = ns.start_tender(&args, "httpd: serving");
    let limit = lines
        .iter()
        .find_map(|l| l.split("httpd: up to ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `httpd: up to N connections` line in {lines:?}"));
    (guest, limit)
}

/// Asserts that the guest still runs.
fn assert_alive(guest: &mut KillOnDrop, when: &str) {
    let status = guest.0.try_wait().expect("try_wait");
    assert_eq!(status, None, "httpd exited {when}");
}

/// `curl http://10.0.0.2/` from the calling thread's namespace: its status
/// code and whether the body is the site's index.
fn curl() -> (String, bool) {
    let out = Command::new("curl")
        .args(["--silent", "--max-time", "10", "--write-out", "\n%{http_code}"])
        .arg("http://10.0.0.2/")
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.contains("<html") || body.contains("<!DOCTYPE"))
}

/// Asserts that a plain curl gets the index page, `when`.
fn assert_served(when: &str) {
    let (code, index) = curl();
    assert_eq!(code, "200", "curl {when}");
    assert!(index, "curl {when}: not the index page");
}

/// Raises this process's open-file limit to its hard limit, which must
/// allow `need`: a test here holds more than a thousand sockets, past the
/// usual soft limit of 1,024.
fn raise_open_files(need: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill and setrlimit
    // to read.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(lim.rlim_cur >= need, "an open-file limit of {} is under {need}", lim.rlim_cur);
}

fn guest_addr() -> SocketAddr {
    GUEST.parse().unwrap()
}

fn connect() -> TcpStream {
    let s = TcpStream::connect_timeout(&guest_addr(), Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response: its status line, and its body by `Content-Length`.
fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            other => panic!("response cut short after {got:?}: {other:?}"),
        }
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("response body");
    (head.lines().next().unwrap_or("").to_string(), body)
}

/// Whether the server has closed or reset `s`: a read gives end of stream
/// or an error other than a timeout, or a write fails.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Waits (20 s at most: then the test fails) until `done` holds, checking
/// every `every`.
fn eventually(what: &str, every: Duration, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < give_up, "{what}: not after 20 s");
        std::thread::sleep(every);
    }
}

#[test]
fn a_huge_body_gets_413_and_is_never_buffered() {
    let ns = namespace("attack-body");
    let mut guest = httpd(&ns, &[]);
    ns.enter(|| {
        // 32 MiB of a body announced as 1 GB: the old httpd buffered it
        // whole and died ("memory allocation of 67108864 bytes failed").
        let mut s = connect();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n").unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let block = vec![b'x'; 64 * 1024];
            for _ in 0..512 {
                if w.write_all(&block).is_err() {
                    break;
                }
            }
        });
        assert_served("while the body is sent");
        let (status, _) = read_response(&mut s);
        assert!(status.starts_with("HTTP/1.1 413 "), "{status}");
        writer.join().unwrap();
        drop(s);

        // A body under the limit is discarded, and the next request on the
        // connection served.
        let mut s = connect();
        let mut req = b"GET /robots.txt HTTP/1.1\r\nContent-Length: 70000\r\n\r\n".to_vec();
        req.extend(std::iter::repeat_n(b'y', 70_000));
        req.extend_from_slice(b"GET /robots.txt HTTP/1.1\r\n\r\n");
        s.write_all(&req).unwrap();
        let first = read_response(&mut s);
        let second = read_response(&mut s);
        assert!(first.0.starts_with("HTTP/1.1 200 ") && second.0.starts_with("HTTP/1.1 200 "));
        assert_eq!(first.1, second.1);
    });
    assert_alive(&mut guest, "after a huge body");
    ns.enter(|| assert_served("after a huge body"));
}

#[test]
fn idle_connections_beyond_the_limit_neither_exhaust_memory_nor_lock_out_others() {
    let ns = namespace("attack-idle");
    let (mut guest, limit) = httpd_and_limit(&ns, &[]);
    // At --mem 64, as many as wrk -c1000 opens (the sweep's largest point).
    println!("httpd serves {limit} connections at --mem 64");
    assert!(limit >= 1000, "httpd serves {limit} connections at --mem 64");
    let flood = limit + 200;
    raise_open_files(flood as u64 + 100);
    ns.enter(move || {
        // A request under way before the flood: it is served after it.
        // (A request, and the start of the next, read by the server once
        // the first response is here.)
        let mut busy = connect();
        busy.write_all(b"GET / HTTP/1.1\r\n\r\nGET /robots.txt HTTP/1.1\r\nHost: x\r\n").unwrap();
        read_response(&mut busy);
        // The old httpd died at about 430 ("allocation of 65536 bytes
        // failed"); now the connections beyond the limit take the places
        // of the idle ones.
        let mut idle = Vec::new();
        let mut failures = 0;
        while idle.len() < flood && failures < 3 {
            match TcpStream::connect_timeout(&guest_addr(), Duration::from_secs(2)) {
                Ok(s) => idle.push(s),
                Err(_) => failures += 1,
            }
        }
        assert_served(&format!("with {} idle connections opened", idle.len()));
        busy.write_all(b"\r\n").unwrap();
        let (status, body) = read_response(&mut busy);
        assert!(status.starts_with("HTTP/1.1 200 "), "the request under way: {status}");
        assert!(!body.is_empty());
        // The oldest idle connections were closed to make room.
        assert!(closed_by_server(&mut idle[0]), "the first idle connection is still open");
        drop(idle);
    });
    assert_alive(&mut guest, "after idle connections beyond the limit");
    ns.enter(|| assert_served("after idle connections beyond the limit"));
}

/// `n` connections to the guest started at once (their SYNs leave one
/// after another, without waiting for the answers), in that order, each
/// established within 5 s (and possibly reset since).
fn connect_burst(n: usize) -> Vec<TcpStream> {
    use std::os::fd::FromRawFd;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 80u16.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([10, 0, 0, 2]) },
        sin_zero: [0; 8],
    };
    let fds: Vec<i32> = (0..n)
        .map(|_| {
            // SAFETY: plain socket calls on a descriptor this function owns;
            // `addr` is a valid sockaddr_in of the length given.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
                assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
                let r = libc::connect(
                    fd,
                    (&raw const addr).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                let e = std::io::Error::last_os_error();
                assert!(r == 0 || e.raw_os_error() == Some(libc::EINPROGRESS), "connect: {e}");
                fd
            }
        })
        .collect();
    fds.into_iter()
        .map(|fd| {
            // SAFETY: `fd` is the connecting socket made above, owned from
            // here by the TcpStream.
            let s = unsafe { TcpStream::from_raw_fd(fd) };
            let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, 5000) };
            assert_eq!(ready, 1, "a connection of the burst not established within 5 s");
            // A reset is an established connection the server has already
            // evicted (the burst's own later connections can come first);
            // the caller sees it closed. A refusal or a timeout fails.
            let error = s.take_error().unwrap();
            assert!(
                error.as_ref().is_none_or(|e| e.kind() == ErrorKind::ConnectionReset),
                "a connection of the burst: {error:?}"
            );
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect()
}

#[test]
fn the_connections_evicted_are_the_ones_idle_longest() {
    // Four connections served at most; four idle ones, opened in turn,
    // then a burst of eight: each of the burst takes the place of the one
    // idle longest, so the first eight are evicted in their order and the
    // last four stay. (The listener once accepted a backlog's connections
    // newest first: httpd then evicted the burst's last connections, new
    // and idle for less time, before its first ones.)
    let ns = namespace("attack-order");
    let mut guest = httpd(&ns, &["HTTPD_MAX_CONNECTIONS=4"]);
    ns.enter(|| {
        let mut conns: Vec<TcpStream> = (0..4)
            .map(|_| {
                let s = connect();
                std::thread::sleep(Duration::from_millis(50));
                s
            })
            .collect();
        conns.extend(connect_burst(8));
        let mut closed = vec![false; conns.len()];
        eventually("eight connections evicted", Duration::from_millis(50), || {
            for (i, s) in conns.iter_mut().enumerate() {
                closed[i] = closed[i] || closed_by_server(s);
            }
            closed.iter().filter(|&&c| c).count() >= 8
        });
        // Nothing else is evicted, and the four left are served.
        std::thread::sleep(Duration::from_millis(300));
        for (i, s) in conns.iter_mut().enumerate() {
            closed[i] = closed[i] || closed_by_server(s);
        }
        let evicted: Vec<usize> = (0..conns.len()).filter(|&i| closed[i]).collect();
        assert_eq!(evicted, (0..8).collect::<Vec<_>>(), "the connections evicted");
        for s in &mut conns[8..] {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET /robots.txt HTTP/1.1\r\n\r\n").unwrap();
            let (status, _) = read_response(s);
            assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
        }
    });
    assert_alive(&mut guest, "after evictions");
}

#[test]
fn a_connection_beyond_the_limit_waits_until_one_is_idle() {
    let ns = namespace("attack-full");
    let mut guest = httpd(&ns, &["HTTPD_MAX_CONNECTIONS=2"]);
    ns.enter(|| {
        // Two connections with a request under way: each sends a request
        // and the start of the next, and reads the first response, so the
        // server has read the start of the second.
        let mut busy: Vec<TcpStream> = (0..2).map(|_| connect()).collect();
        for s in &mut busy {
            s.write_all(b"GET /robots.txt HTTP/1.1\r\n\r\nGET /robots.txt HTTP/1.1\r\n").unwrap();
            let (status, _) = read_response(s);
            assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
        }
        // Both are under way: a third waits in the backlog (as with Linux's
        // listen queue), neither reset nor answered while they are.
        let mut third = connect();
        third.write_all(b"GET /robots.txt HTTP/1.1\r\n\r\n").unwrap();
        third.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut byte = [0u8; 1];
        match third.read(&mut byte) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("the third connection, beyond the limit: {other:?}"),
        }
        third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The two are served; idle then, one makes room for the third,
        // whose request is answered.
        for s in &mut busy {
            s.write_all(b"\r\n").unwrap();
            let (status, _) = read_response(s);
            assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
        }
        let (status, _) = read_response(&mut third);
        assert!(status.starts_with("HTTP/1.1 200 "), "the third: {status}");
        // Its keep-alive connection and a plain curl are served too.
        third.write_all(b"GET /robots.txt HTTP/1.1\r\n\r\n").unwrap();
        let (status, _) = read_response(&mut third);
        assert!(status.starts_with("HTTP/1.1 200 "), "the third again: {status}");
        assert_served("with idle connections at a limit of two");
    });
    assert_alive(&mut guest, "at the connection limit");
}

#[test]
fn a_thousand_keep_alive_clients_are_all_served() {
    // What `wrk -c1000` does: every connection open at once, each sending
    // its next request as soon as its response is in. Before, the
    // connections past about 130 (at --mem 64) were reset.
    raise_open_files(1100);
    let ns = namespace("attack-many");
    let mut guest = httpd(&ns, &[]);
    ns.enter(|| {
        let mut clients: Vec<TcpStream> = (0..1000).map(|_| connect()).collect();
        for round in 0..3 {
            for s in &mut clients {
                s.write_all(b"GET /bench/1k.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            }
            for (i, s) in clients.iter_mut().enumerate() {
                let (status, body) = read_response(s);
                assert!(status.starts_with("HTTP/1.1 200 "), "client {i}, round {round}: {status}");
                assert_eq!(body.len(), 1024, "client {i}, round {round}");
            }
        }
        assert_served("with 1000 keep-alive clients");
    });
    assert_alive(&mut guest, "after 1000 keep-alive clients");
}

#[test]
fn every_connection_holding_a_long_unfinished_head_neither_exhausts_memory_nor_stops_the_server() {
    // Slowloris at full width: as many connections as httpd serves, each
    // with nearly the longest head it accepts (8 KiB) and never the blank
    // line, so that each connection's head buffer is at its largest,
    // past what the connection budget counts for a waiting connection.
    let ns = namespace("attack-heads");
    let (mut guest, limit) = httpd_and_limit(&ns, &["HTTPD_HEADER_TIMEOUT=4s"]);
    raise_open_files(limit as u64 + 200);
    ns.enter(move || {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        while head.len() < 7 * 1024 {
            head.extend_from_slice(
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        let mut held = Vec::new();
        for _ in 0..limit {
            let Ok(mut s) = TcpStream::connect_timeout(&guest_addr(), Duration::from_secs(5))
            else {
                break;
            };
            // A connection that waits in the backlog takes the bytes into
            // its socket (4 KiB) and the rest stays with the client.
            s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(&head);
            held.push(s);
        }
        assert!(held.len() * 10 >= limit * 9, "{} of {limit} connections opened", held.len());
        // The heads time out (4 s) and their connections are reset, and a
        // new client is served (it waited while all were taken).
        assert_served(&format!("with {} unfinished 7 KiB heads", held.len()));
        eventually("the unfinished heads are cut off", Duration::from_millis(200), || {
            closed_by_server(&mut held[0])
        });
    });
    assert_alive(&mut guest, "after unfinished heads on every connection");
    ns.enter(|| assert_served("after unfinished heads on every connection"));
}

#[test]
fn clients_that_never_read_their_responses_are_cut_off() {
    let ns = namespace("attack-noread");
    let mut guest = httpd(&ns, &["HTTPD_SEND_TIMEOUT=2s"]);
    ns.enter(|| {
        // The old httpd collected every response in memory and died: 10
        // connections, each with 4 KiB of pipelined requests for a 60 KB
        // file (130 responses, 7.8 MB, each), never reading.
        let one = b"GET /bench/60k.bin HTTP/1.1\r\n\r\n";
        let requests: Vec<u8> =
            one.iter().cycle().take(one.len() * (4096 / one.len())).copied().collect();
        let mut attackers: Vec<TcpStream> = (0..10).map(|_| connect()).collect();
        for s in &mut attackers {
            s.write_all(&requests).unwrap();
        }
        assert_served("while 10 clients do not read");
        // Each is reset once a write has waited out the send timeout.
        for s in &mut attackers {
            eventually("the connection is reset", Duration::from_millis(200), || {
                s.write_all(b"GET / HTTP/1.1\r\n\r\n").is_err()
            });
        }
    });
    assert_alive(&mut guest, "after clients that do not read");
    ns.enter(|| assert_served("after clients that do not read"));
}

#[test]
fn a_head_or_body_trickled_a_byte_at_a_time_cannot_hold_a_connection() {
    let ns = namespace("attack-slow");
    let mut guest = httpd(
        &ns,
        &["HTTPD_HEADER_TIMEOUT=2s", "HTTPD_BODY_TIMEOUT=2s", "HTTPD_KEEPALIVE_TIMEOUT=60s"],
    );
    ns.enter(|| {
        // One byte every half second: each read is well within any
        // timeout, the head never completes. The old httpd's timeout was
        // per read: the connection stayed open for good.
        let mut head = connect();
        head.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        // And a body (the response comes before it; reading it is part of
        // `closed_by_server`).
        let mut body = connect();
        body.write_all(b"GET /robots.txt HTTP/1.1\r\nContent-Length: 100000\r\n\r\n").unwrap();
        assert_served("while two clients trickle");
        let mut open = [true, true];
        let start = Instant::now();
        for &b in b"X-Slow: 1\r\n".iter().cycle() {
            for (i, s) in [&mut head, &mut body].into_iter().enumerate() {
                if open[i] && (s.write_all(&[b]).is_err() || closed_by_server(s)) {
                    open[i] = false;
                }
            }
            if open == [false, false] {
                break;
            }
            std::thread::sleep(Duration::from_millis(400));
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "still open after 30 s of trickling: head {}, body {}",
                open[0],
                open[1]
            );
        }
        let _ = head.shutdown(Shutdown::Both);
    });
    assert_alive(&mut guest, "after slow clients");
    ns.enter(|| assert_served("after slow clients"));
}

/// The guest's heap in use, from its status page (`HTTPD_STATUS_PATH`,
/// `/.status` here), once the connections before have settled
/// ([`support::settled`]).
fn heap_in_use() -> u64 {
    support::settled(heap_in_use_now)
}

/// The guest's heap in use now, asked on a new connection.
fn heap_in_use_now() -> u64 {
    let mut s = connect();
    s.write_all(b"GET /.status HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut s);
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
    let body = String::from_utf8(body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("heap_in_use: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no heap_in_use in {body:?}"))
}

/// `n` connections, `threads` at a time: each asks for a file and closes (the
/// server first after `Connection: close`, or the client after a kept-alive
/// response), or sends half a request and vanishes (a reset, or a FIN).
fn churn(n: usize, threads: usize) {
    let (requests, vanished) = (std::sync::atomic::AtomicUsize::new(0), n / 2);
    support::churn(guest_addr(), n, threads, |i, mut s| match i % 4 {
        0 | 1 => {
            let close = if i % 4 == 0 { "Connection: close\r\n" } else { "" };
            // One write: in pieces, Nagle would hold the second until the
            // first is acknowledged.
            s.write_all(format!("GET /robots.txt HTTP/1.1\r\n{close}\r\n").as_bytes()).unwrap();
            let (status, body) = read_response(&mut s);
            assert!(status.starts_with("HTTP/1.1 200 ") && !body.is_empty(), "{i}: {status}");
            requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        2 => {
            s.write_all(b"GET /robots.txt HTTP/1.1\r\nHost: x\r\nX-Hal").unwrap();
            support::reset(s);
        }
        _ => {
            s.write_all(b"GET /robots.txt HTTP/1.1\r\nHost: x\r\nX-Hal").unwrap();
        }
    });
    assert_eq!(requests.into_inner(), n - vanished);
}

#[test]
fn ten_thousand_connections_leave_the_heap_as_they_found_it() {
    // 10,000 connections served and closed, and 10,000 that vanish in the
    // middle of a request, against httpd's heap in use before and after:
    // anything a connection left behind (a socket, a slot, a timer, a
    // task) would show as bytes per connection. 2,000 first, 32 at a
    // time (twice as many at once as then), bring the heap to its steady
    // state (the socket set's slots and the executor's queues grow to the
    // most connections at once, and stay; a step of about 16 KiB was seen
    // with as many at once as the measure's) before the measure starts.
    raise_open_files(4096);
    let ns = namespace("churn-httpd");
    let mut guest = httpd(&ns, &["HTTPD_STATUS_PATH=/.status"]);
    ns.enter(|| {
        churn(2000, 32);
        let before = heap_in_use();
        let start = Instant::now();
        churn(20_000, 16);
        println!("20,000 connections in {:?}", start.elapsed());
        let after = heap_in_use();
        println!("heap in use: {before} B before, {after} B after");
        // Equal in the runs here; 32 KiB leaves room for a queue that grows
        // once more (a step of 16 KiB was seen during the warm-up), and a
        // leak of the smallest block (16 B) per connection would be ten
        // times that.
        assert!(
            after <= before + 32 * 1024,
            "heap in use grew from {before} B to {after} B over 20,000 connections"
        );
    });
    assert_alive(&mut guest, "after 20,000 connections");
}
