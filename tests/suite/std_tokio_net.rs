//! tokio's TCP and UDP in a std guest (mio on libos-std's edge-triggered
//! epoll, over libos-std's sockets), each test in a network namespace of
//! its own with the tap inside it (see `support::netns`): tests/std's
//! `std-tokio-net` guest at 10.0.0.2 as an echo server under the
//! current-thread and the multi-thread runtime for 100 concurrent clients
//! of this suite, idle without spinning afterwards, and with a task that
//! keeps the runtime from ever parking; and as a client of this suite's
//! servers at 10.0.0.1.

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use support::netns::{Netns, require_root};
use support::{KillOnDrop, std_guest};

/// A namespace with tap0 (host side 10.0.0.1/24).
fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

/// The tender's arguments for std-tokio-net: 10.0.0.2/24 without a
/// gateway, a fixed MAC.
fn guest_args(mode: &[&str]) -> Vec<String> {
    [
        "--net",
        "service0=tap0",
        "--net-mac",
        "service0=02:00:00:00:00:02",
        "--env",
        "NET_SERVICE0_IPV4=10.0.0.2/24",
        "--mem",
        "256",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([std_guest("std-tokio-net")])
    .chain(mode.iter().map(|s| s.to_string()))
    .collect()
}

const GUEST: &str = "10.0.0.2";

/// Sends `len` bytes to the guest's echo server and checks what comes back.
fn echo_round_trip(seed: u64, len: usize) -> Result<(), String> {
    support::echo_round_trip(format!("{GUEST}:7").parse().unwrap(), seed, len)
}

/// The CPU time (user + system, in clock ticks) process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Serves three rounds of 100 concurrent echo clients, "bye" and UDP
/// echo, then idles (but for `busy`).
fn serves(flavor: &str) {
    let ns = namespace(&format!("tokio-{flavor}"));
    let ready = format!("std-tokio-net: {flavor} listening on 0.0.0.0:7");
    let (guest, _): (KillOnDrop, _) = ns.start_tender(&guest_args(&["serve", flavor]), &ready);
    let failures = ns.enter(|| {
        // Three rounds: connections arrive while others wait to be
        // accepted, which an edge-triggered listener must report each time
        // (a missed edge leaves them unaccepted until reset).
        let mut failures = Vec::new();
        for round in 0..3u64 {
            let clients: Vec<_> = (0..100u64)
                .map(|i| {
                    std::thread::spawn(move || echo_round_trip(round * 100 + i + 1, 128 * 1024))
                })
                .collect();
            failures.extend(clients.into_iter().filter_map(|c| c.join().unwrap().err()));
        }
        // "bye" then end of file.
        let mut s = TcpStream::connect((GUEST, 8)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        if got != "bye" {
            failures.push(format!("port 8 said {got:?}"));
        }
        // UDP echo.
        let u = UdpSocket::bind("10.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        u.send_to(b"ping", (GUEST, 7)).unwrap();
        let mut buf = [0u8; 16];
        match u.recv_from(&mut buf) {
            Ok((4, _)) if &buf[..4] == b"ping" => {}
            other => failures.push(format!("udp echo: {other:?}")),
        }
        failures
    });
    assert!(failures.is_empty(), "{failures:#?}");
    if flavor == "busy" {
        // A task that never stops yielding keeps it busy by design.
        return;
    }
    // Idle, with every socket writable and registered edge-triggered: the
    // guest sleeps in its one ppoll instead of spinning. A second of wall
    // time; a spinning guest would use all of it.
    let pid = guest.0.id();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(used < 30, "the idle guest used {used} ticks of CPU in 1 s: it spins");
}

#[test]
fn a_current_thread_tokio_echo_server_serves_rounds_of_100_clients_and_idles() {
    serves("current");
}

#[test]
fn a_multi_thread_tokio_echo_server_serves_rounds_of_100_clients_and_idles() {
    serves("multi");
}

#[test]
fn a_tokio_runtime_that_never_parks_still_sees_new_input() {
    serves("busy");
}

#[test]
fn tokio_clients_reach_the_hosts_servers() {
    let ns = namespace("tokio-client");
    ns.enter(|| {
        let l = TcpListener::bind("10.0.0.1:7001").unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                    let _ = s.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        let u = UdpSocket::bind("10.0.0.1:7001").unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = u.recv_from(&mut buf) {
                let _ = u.send_to(&buf[..n], from);
            }
        });
    });
    for flavor in ["current", "multi"] {
        let out = ns.tender(&guest_args(&["client", flavor]));
        out.assert_ok();
        assert_eq!(
            out.stdout,
            "tcp echo: 300000 bytes back, equal true\n\
             udp echo: \"ping\"\n\
             udp silence: timed out true\n\
             refused: Err(ConnectionRefused)\n",
            "{flavor}"
        );
    }
}
