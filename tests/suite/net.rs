//! The network stack end to end, with real clients, each test in a network
//! namespace of its own with the tap inside it (see `support::netns`):
//! ping, two interfaces and jumbo frames, DHCP from dnsmasq, httpd with curl,
//! echo with 100 concurrent clients, garbage frames, and an idle guest that
//! makes no system calls.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::frames::{Link, Segment, arp_request, garbage, ifindex, noise};
use support::netns::{Netns, read_until, require_root};
use support::{KillOnDrop, TempDir, workspace_bin};

const NETINFO: &str = env!("CARGO_BIN_EXE_guest-netinfo");

const GUEST: &str = "10.0.0.2";

/// A namespace with tap0 (host side 10.0.0.1/24).
fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

fn httpd(ns: &Netns, extra: &[&str]) -> KillOnDrop {
    let httpd = workspace_bin("httpd").display().to_string();
    let disk = format!("storage={}", support::site_image().display());
    let mut args = vec!["--net", "service0=tap0", "--net-mac", "service0=02:00:00:00:00:02"];
    args.extend_from_slice(&["--block-ro", &disk]);
    args.extend_from_slice(extra);
    args.push(&httpd);
    ns.start_tender(&args, "httpd: serving").0
}

fn static_ip() -> Vec<&'static str> {
    vec!["--env", "NET_SERVICE0_IPV4=10.0.0.2/24", "--env", "NET_SERVICE0_GATEWAY=10.0.0.1"]
}

/// Starts echo at 10.0.0.2 with tender options `extra`.
fn echo(ns: &Netns, extra: &[&str]) -> KillOnDrop {
    let echo = workspace_bin("echo").display().to_string();
    let mut args = vec!["--net", "service0=tap0"];
    args.extend(static_ip());
    args.extend_from_slice(extra);
    args.push(&echo);
    ns.start_tender(&args, "echo: listening").0
}

fn curl(ns: &Netns, args: &[&str]) -> support::Outcome {
    let mut all = vec!["--silent", "--show-error", "--max-time", "10"];
    all.extend_from_slice(args);
    ns.run("curl", &all)
}

#[test]
fn ping_flood_gets_every_reply_intact() {
    let ns = namespace("ping");
    let _guest = httpd(&ns, &static_ip());
    // -p: a fixed payload pattern; ping checks every reply against it and
    // reports "wrong data byte" otherwise.
    let out = ns.run("ping", &["-f", "-c", "10000", "-p", "a55ac33c0ff0", "-W", "2", GUEST]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(out.stdout.contains("10000 packets transmitted, 10000 received"), "{}", out.stdout);
    assert!(!out.stdout.contains("wrong data"), "{}", out.stdout);
}

/// Frames the guest has written to `tap` (the host counts them as received).
fn frames_from_guest(ns: &Netns, tap: &str) -> u64 {
    let out = ns.run("cat", &[format!("/sys/class/net/{tap}/statistics/rx_packets")]);
    out.stdout.trim().parse().unwrap_or_else(|_| panic!("rx_packets of {tap}: {out:#?}"))
}

/// One of httpd's `/bench/` test files of `len` bytes, as a client gets it.
fn assert_bench_file(out: &support::Outcome, len: usize) {
    assert_eq!(out.stdout.len(), len, "{}", out.stderr);
    assert!(out.stdout.bytes().enumerate().all(|(i, b)| b == b'a' + (i % 26) as u8));
}

#[test]
fn bulk_transfers_are_offloaded_and_cut_at_the_clients_mss() {
    let ns = namespace("gso");
    // A client behind a router: the namespace forwards between tap0 and a
    // veth with a smaller MTU into the client's namespace, so the client's
    // MSS is 1360 and the router drops any segment cut for 1460.
    let client = Netns::new("gso-client");
    ns.ip(&["link", "add", "r0", "mtu", "1400", "type", "veth", "peer", "name", "c0"]);
    ns.ip(&["link", "set", "c0", "netns", client.name()]);
    ns.ip(&["addr", "add", "10.0.5.1/24", "dev", "r0"]);
    ns.ip(&["link", "set", "r0", "up"]);
    client.ip(&["link", "set", "c0", "mtu", "1400"]);
    client.ip(&["addr", "add", "10.0.5.2/24", "dev", "c0"]);
    client.ip(&["link", "set", "c0", "up"]);
    client.ip(&["route", "add", "10.0.0.0/24", "via", "10.0.5.1"]);
    let out = ns.run("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let _guest = httpd(&ns, &static_ip());
    let url = "http://10.0.0.2/bench/1m.bin";

    // On the tap's own link: 1 MiB is 719 segments of 1460 bytes, but the
    // guest hands the host bursts of up to 64 KiB.
    let before = frames_from_guest(&ns, "tap0");
    assert_bench_file(&curl(&ns, &["--output", "-", url]), 1 << 20);
    let frames = frames_from_guest(&ns, "tap0") - before;
    assert!(frames < 719 / 4, "{frames} frames for 1 MiB: TCP segmentation was not offloaded");

    // Through the router: every byte, in segments the 1400-byte link takes;
    // from httpd's cache, and from the disk (too large for the cache).
    let before = frames_from_guest(&ns, "tap0");
    assert_bench_file(&curl(&client, &["--output", "-", url]), 1 << 20);
    let frames = frames_from_guest(&ns, "tap0") - before;
    assert!(frames < 771 / 4, "{frames} frames for 1 MiB: TCP segmentation was not offloaded");
    let big = "http://10.0.0.2/bench/5m.bin";
    assert_bench_file(&curl(&client, &["--output", "-", big]), 5 << 20);
    let part = curl(&client, &["--output", "-", "--range", "5000000-5099999", big]);
    assert_eq!(part.stdout.len(), 100_000, "{part:#?}");
    let expected = (5_000_000..5_100_000).map(|i| b'a' + (i % 26) as u8);
    assert!(part.stdout.bytes().eq(expected), "a range from the disk");
}

#[test]
fn two_interfaces_each_answer_and_jumbo_mtu_reaches_the_guest() {
    let ns = namespace("two");
    ns.add_tap("tap1", Some("10.0.1.1/24"), Some(9000));
    let (_guest, lines) = ns.start_tender(
        &[
            "--net",
            "service0=tap0",
            "--net",
            "service1=tap1",
            "--env",
            "NET_SERVICE0_IPV4=10.0.0.2/24",
            "--env",
            "NET_SERVICE1_IPV4=10.0.1.2/24",
            NETINFO,
        ],
        "ready",
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("iface service0 mtu 1500 ") && l.ends_with("ipv4 10.0.0.2/24")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("iface service1 mtu 9000 ") && l.ends_with("ipv4 10.0.1.2/24")),
        "{lines:#?}"
    );
    for addr in [GUEST, "10.0.1.2"] {
        let out = ns.run("ping", &["-c", "3", "-i", "0.2", "-W", "2", addr]);
        assert!(out.stdout.contains("3 received"), "{addr}: {out:#?}");
    }
    // A jumbo frame, not fragmented, through the MTU 9000 interface.
    let out =
        ns.run("ping", &["-c", "2", "-i", "0.2", "-s", "8000", "-M", "do", "-W", "2", "10.0.1.2"]);
    assert!(out.stdout.contains("2 received"), "{out:#?}");
}

#[test]
fn dhcp_from_dnsmasq_configures_the_guest() {
    let ns = namespace("dhcp");
    let dir = TempDir::new("dnsmasq");
    let leases = dir.path().join("leases");
    let _dnsmasq = ns.dnsmasq(
        "tap0",
        &leases,
        &[
            "--dhcp-range=10.0.0.100,10.0.0.150,255.255.255.0,1h",
            "--dhcp-option=option:router,10.0.0.1",
        ],
    );
    let (_guest, lines) = ns.start_tender(
        &[
            "--net",
            "service0=tap0",
            "--block-ro",
            &format!("storage={}", support::site_image().display()),
            workspace_bin("httpd").to_str().unwrap(),
        ],
        "httpd: serving",
    );
    let line = lines.last().unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let ip: Ipv4Addr = addr.parse().unwrap();
    assert!((100..=150).contains(&ip.octets()[3]) && ip.octets()[..3] == [10, 0, 0], "{ip}");
    assert!(std::fs::read_to_string(&leases).unwrap().contains(addr), "dnsmasq leased {addr}");
    // The first packet to a new neighbour can be lost while ARP resolves
    // (smoltcp drops the packet that triggers resolution): warm up first.
    let _ = ns.run("ping", &["-c", "1", "-W", "2", addr]);
    let out = ns.run("ping", &["-c", "3", "-i", "0.2", "-W", "2", addr]);
    assert!(out.stdout.contains("3 received"), "{out:#?}");
    let out = curl(&ns, &[&format!("http://{addr}/robots.txt")]);
    assert_eq!(out.stdout, "User-agent: *\nDisallow:\n", "{out:#?}");
}

/// The MAC in a guest's `waiting for a DHCP lease (MAC ...)` line.
fn waiting_mac(lines: &[String]) -> String {
    let line = lines
        .iter()
        .find(|l| l.contains("NOTE") && l.contains("net service0: waiting for a DHCP lease (MAC "))
        .unwrap_or_else(|| panic!("no waiting line at the default log level: {lines:#?}"));
    let mac = line.split("(MAC ").nth(1).and_then(|s| s.strip_suffix(')')).unwrap();
    mac.to_string()
}

#[test]
fn a_restarted_guest_keeps_its_mac_and_the_only_dhcp_address() {
    // dnsmasq has one address to give: a guest that came back with another
    // MAC would find it taken by the lease of the one before, and get none.
    let ns = namespace("dhcp1");
    let dir = TempDir::new("dnsmasq");
    let leases = dir.path().join("leases");
    let range = "--dhcp-range=10.0.0.100,10.0.0.100,255.255.255.0,1h";
    let _dnsmasq = ns.dnsmasq("tap0", &leases, &[range, "--dhcp-option=option:router,10.0.0.1"]);
    let echo = workspace_bin("echo").display().to_string();
    let mut macs = Vec::new();
    for run in ["first", "restarted"] {
        // No --net-mac, the default log level: what a user sees.
        let (guest, lines) = ns.start_tender(&["--net", "service0=tap0", &echo], "echo: listening");
        let mac = waiting_mac(&lines);
        assert!(
            lines.iter().any(|l| l.contains("NOTE")
                && l.ends_with("net service0: 10.0.0.100/24 by DHCP, gateway 10.0.0.1, mtu 1500")),
            "{run}: the address at the default log level: {lines:#?}"
        );
        assert!(!lines.iter().any(|l| l.contains("lost")), "{run}: {lines:#?}");
        assert_eq!(lines.last().unwrap(), "echo: listening on 10.0.0.100:7 (service0/24)");
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 0x03, 0x02, "{mac}: locally administered unicast");
        assert!(std::fs::read_to_string(&leases).unwrap().contains(&mac), "dnsmasq leased {mac}");
        macs.push(mac);
        // Killed: no DHCP release, dnsmasq keeps the lease for that MAC.
        drop(guest);
    }
    assert_eq!(macs[0], macs[1], "the default MAC is the same on the same tap");

    // Another MAC finds the range taken: the guest says that it still has
    // no lease rather than nothing at all.
    let (_guest, lines) = ns.start_tender(
        &["--net", "service0=tap0", "--net-mac", "service0=02:00:00:00:00:99", &echo],
        "still no DHCP lease",
    );
    assert_eq!(waiting_mac(&lines), "02:00:00:00:00:99");
    let last = lines.last().unwrap();
    assert!(last.contains("WARN") && last.contains("net service0: still no DHCP lease after "));
    assert!(!lines.iter().any(|l| l.contains("lost") || l.contains("listening")), "{lines:#?}");
}

#[test]
fn httpd_get_and_head_are_exact() {
    let ns = namespace("curl");
    let _guest = httpd(&ns, &static_ip());
    let out = curl(&ns, &["--include", "http://10.0.0.2/robots.txt"]);
    let (head, body) = out.stdout.split_once("\r\n\r\n").expect("a head and a body");
    assert_eq!(body, "User-agent: *\nDisallow:\n");
    let lines: Vec<&str> = head.lines().collect();
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    assert!(lines.contains(&"Content-Type: text/plain; charset=utf-8"), "{head}");
    assert!(lines.contains(&"Content-Length: 24"), "{head}");
    assert!(lines.contains(&"Connection: keep-alive"), "{head}");
    assert!(lines.iter().any(|l| l.starts_with("Date: ") && l.ends_with(" GMT")), "{head}");

    let out = curl(&ns, &["--head", "http://10.0.0.2/css/site.css"]);
    assert!(out.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{out:#?}");
    assert!(out.stdout.contains("Content-Type: text/css; charset=utf-8\r\n"), "{out:#?}");
    assert!(
        out.stdout.contains(&format!("Content-Length: {}\r\n", site_file("css/site.css").len()))
    );
    assert!(out.stdout.ends_with("\r\n\r\n"), "HEAD has no body: {out:#?}");

    let out = curl(&ns, &["http://10.0.0.2/"]);
    assert_eq!(out.stdout.as_bytes(), site_file("index.html"));
    assert_bench_file(&curl(&ns, &["--output", "-", "http://10.0.0.2/bench/1m.bin"]), 1 << 20);
}

#[test]
fn httpd_serves_each_file_of_the_disk_byte_exact_with_ranges_and_conditionals() {
    let ns = namespace("disk");
    let _guest = httpd(&ns, &static_ip());
    for rel in ["index.html", "css/site.css", "robots.txt"] {
        let out = curl(&ns, &["--output", "-", &format!("http://10.0.0.2/{rel}")]);
        assert_eq!(out.stdout.as_bytes(), site_file(rel), "{rel}");
    }
    let out = curl(&ns, &["--output", "-", "http://10.0.0.2/bench/1k.bin"]);
    assert_eq!(out.stdout.len(), 1024);
    // A range of the large file, streamed from the disk, and of a cached one.
    let out = curl(&ns, &["--include", "--range", "1000-1009", "http://10.0.0.2/bench/1m.bin"]);
    assert!(out.stdout.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{out:#?}");
    assert!(out.stdout.contains("Content-Range: bytes 1000-1009/1048576\r\n"), "{out:#?}");
    assert!(out.stdout.ends_with("\r\n\r\nmnopqrstuv"), "{out:#?}");
    let out = curl(&ns, &["--range", "-5", "http://10.0.0.2/robots.txt"]);
    assert_eq!(out.stdout, "low:\n");
    let code = |args: &[&str]| {
        let mut a = vec!["--output", "/dev/null", "--write-out", "%{http_code}"];
        a.extend_from_slice(args);
        curl(&ns, &a).stdout
    };
    assert_eq!(code(&["--range", "5000-", "http://10.0.0.2/robots.txt"]), "416");
    assert_eq!(code(&["http://10.0.0.2/missing.html"]), "404");
    assert_eq!(code(&["http://10.0.0.2/css/"]), "404", "no index file in /css");
    // Last-Modified comes from the file's FAT time; asking with it gives 304.
    let head = curl(&ns, &["--head", "http://10.0.0.2/robots.txt"]).stdout;
    let modified = head
        .lines()
        .find_map(|l| l.strip_prefix("Last-Modified: "))
        .expect("a Last-Modified header")
        .trim()
        .to_string();
    assert_eq!(
        code(&[
            "--header",
            &format!("If-Modified-Since: {modified}"),
            "http://10.0.0.2/robots.txt"
        ]),
        "304"
    );
    assert_eq!(
        code(&[
            "--header",
            "If-Modified-Since: Thu, 01 Jan 1981 00:00:00 GMT",
            "http://10.0.0.2/robots.txt"
        ]),
        "200"
    );
}

fn site_file(rel: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/httpd/site").join(rel),
    )
    .unwrap()
}

#[test]
fn httpd_keeps_connections_alive_and_refuses_what_it_should() {
    let ns = namespace("keepalive");
    let _guest = httpd(&ns, &static_ip());
    // Three requests, one connection.
    let url = "http://10.0.0.2/robots.txt";
    let out = curl(
        &ns,
        &[
            "--output",
            "/dev/null",
            "--output",
            "/dev/null",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code} %{num_connects}\n",
            url,
            url,
            url,
        ],
    );
    assert_eq!(out.stdout, "200 1\n200 0\n200 0\n", "{out:#?}");
    let code = |args: &[&str]| {
        let mut a = vec!["--output", "/dev/null", "--write-out", "%{http_code}"];
        a.extend_from_slice(args);
        curl(&ns, &a).stdout
    };
    assert_eq!(code(&["http://10.0.0.2/no/such/file"]), "404");
    assert_eq!(code(&["--request", "POST", "--data", "x", "http://10.0.0.2/"]), "405");
    assert_eq!(code(&["--request", "DELETE", "http://10.0.0.2/"]), "405");

    // Raw requests, through bash's /dev/tcp.
    let raw = |request: &str| {
        let script =
            format!("exec 3<>/dev/tcp/10.0.0.2/80; printf '{request}' >&3; timeout 5 cat <&3");
        ns.run("bash", &["-c", &script]).stdout
    };
    assert!(raw("GARBAGE\\r\\n\\r\\n").starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(raw("GET / HTTP/1.1\\r\\nX: %s\\r\\n\\r\\n").starts_with("HTTP/1.1 200 OK\r\n"));
    let huge = format!("GET / HTTP/1.1\\r\\nX-Big: {}\\r\\n\\r\\n", "a".repeat(10_000));
    assert!(raw(&huge).starts_with("HTTP/1.1 413 "), "oversized headers get 413");
    // Two pipelined requests: two responses, in order, then close.
    let both = raw(
        "GET /robots.txt HTTP/1.1\\r\\n\\r\\nGET /nope HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n",
    );
    let first = both.find("HTTP/1.1 200 OK").expect("first response");
    let second = both.find("HTTP/1.1 404 Not Found").expect("second response");
    assert!(first < second, "{both}");
}

/// A deterministic pseudo-random byte stream.
#[test]
fn echo_serves_100_concurrent_clients_a_mebibyte_each() {
    let ns = namespace("echo");
    let _guest = echo(&ns, &["--mem", "128"]);
    let results = ns.enter(|| {
        let clients: Vec<_> =
            (0..100u64).map(|i| std::thread::spawn(move || echo_round_trip(i + 1))).collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>()
    });
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Client `i` of echo at 10.0.0.2:7 (from the namespace): sends 1 MiB of
/// its own noise, half-closes, and reads it all back.
fn echo_round_trip(i: u64) -> Result<(), String> {
    let data = noise(i, 1 << 20);
    let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7);
    let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(10))
        .map_err(|e| format!("client {i}: connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent)?;
        w.shutdown(std::net::Shutdown::Write)
    });
    let mut back = Vec::with_capacity(data.len());
    s.read_to_end(&mut back).map_err(|e| format!("client {i}: read: {e}"))?;
    writer.join().unwrap().map_err(|e| format!("client {i}: write: {e}"))?;
    if back != data {
        return Err(format!(
            "client {i}: got {} bytes back, not its own {}",
            back.len(),
            data.len()
        ));
    }
    Ok(())
}

#[test]
fn a_callers_tap_without_headers_gets_whole_frames_after_an_offloading_guest() {
    let ns = namespace("nohdr");
    // A guest attached by name leaves tap0 with the host's offloads on.
    drop(echo(&ns, &[]));
    // A caller's fd without virtio-net headers: the tender turns them off,
    // or the host would hand the guest 64 KiB bursts it cannot read.
    let flags = libc::IFF_TAP | libc::IFF_NO_PI;
    let mut c = ns.command_with_tap(support::tender(), "tap0", 7, flags);
    c.args(["--net", "service0=fd:7"]).args(static_ip()).arg(workspace_bin("echo"));
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = c.spawn().expect("start the tender");
    read_until(&mut child, "echo: listening", Duration::from_secs(20));
    let _guest = KillOnDrop(child);
    assert_eq!(ns.enter(|| echo_round_trip(1)), Ok(()));
}

#[test]
fn connects_beyond_the_backlog_wait_for_a_slot_and_are_not_refused() {
    // With room for 8 unaccepted connections, 24 clients connecting at the
    // same instant overflow the backlog within one batch of frames. Those
    // SYNs must be dropped (the client retries after 1 s, then 2 s more),
    // not answered with a reset.
    let ns = namespace("backlog");
    let _guest = echo(&ns, &["--env", "BACKLOG=8"]);
    let clients = 24;
    let results = ns.enter(move || {
        let start = std::sync::Arc::new(std::sync::Barrier::new(clients));
        let threads: Vec<_> = (0..clients)
            .map(|i| {
                let start = start.clone();
                std::thread::spawn(move || -> Result<(), String> {
                    let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7);
                    start.wait();
                    let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(30))
                        .map_err(|e| format!("client {i}: connect: {e}"))?;
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let hello = format!("client {i}\n");
                    let mut back = vec![0; hello.len()];
                    s.write_all(hello.as_bytes())
                        .and_then(|()| s.read_exact(&mut back))
                        .map_err(|e| format!("client {i}: {e}"))?;
                    if back != hello.as_bytes() {
                        return Err(format!("client {i}: got {back:?} back"));
                    }
                    Ok(())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    });
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn echo_answers_udp_datagrams() {
    let ns = namespace("udp");
    let _guest = echo(&ns, &[]);
    let replies = ns.enter(|| {
        let s = std::net::UdpSocket::bind("10.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = Vec::new();
        for i in 0..20u64 {
            let msg = noise(i + 100, 1 + (i as usize * 61) % 1400);
            // UDP is lossy (the first datagram may wait for ARP): retry.
            for _ in 0..5 {
                s.send_to(&msg, "10.0.0.2:7").unwrap();
                let mut buf = [0u8; 2048];
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    got.push((buf[..n] == msg[..], from.to_string()));
                    break;
                }
            }
        }
        got
    });
    assert_eq!(replies.len(), 20, "{replies:?}");
    assert!(replies.iter().all(|(same, from)| *same && from == "10.0.0.2:7"), "{replies:?}");
}

#[test]
fn a_guest_connects_out_as_a_client() {
    let ns = namespace("client");
    ns.add_tap("tap1", Some("10.0.1.1/24"), None);
    let server = ns.enter(|| std::net::TcpListener::bind("10.0.0.1:7070").unwrap());
    let peer = std::thread::spawn(move || {
        let (mut s, from) = server.accept().unwrap();
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap()).read_line(&mut line).unwrap();
        s.write_all(format!("you said {}", line).as_bytes()).unwrap();
        from
    });
    let (_guest, lines) = ns.start_tender(
        &[
            "--net",
            "service0=tap0",
            "--net",
            "service1=tap1",
            "--env",
            "NET_SERVICE0_IPV4=10.0.0.2/24",
            "--env",
            "NET_SERVICE1_IPV4=10.0.1.2/24",
            "--env",
            "CONNECT=10.0.0.1:7070",
            NETINFO,
        ],
        "ready",
    );
    assert!(lines.contains(&"reply you said hello from the guest".to_string()), "{lines:#?}");
    assert_eq!(peer.join().unwrap().ip().to_string(), "10.0.0.2");
}

#[test]
fn a_retransmitted_syn_opens_no_second_connection() {
    // A client whose SYN+ACK is late sends its SYN again. The guest must
    // not take it for a new connection request: a second half-open socket
    // for the same addresses and ports, earlier among smoltcp's sockets
    // than the first (in the slot a closed connection left), would answer
    // the client's ACK of the first SYN+ACK with a reset.
    let ns = namespace("synagain");
    let _guest = echo(&ns, &["--net-mac", "service0=02:00:00:00:00:02"]);
    // Connections open at once, then closed, leave free slots among the
    // sockets, before the one listening now.
    ns.enter(|| {
        let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7);
        let streams: Vec<TcpStream> = (0..4)
            .map(|_| TcpStream::connect_timeout(&addr.into(), Duration::from_secs(10)).unwrap())
            .collect();
        for mut s in &streams {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"x\n").unwrap();
            let mut back = [0; 2];
            s.read_exact(&mut back).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let ifindex = ifindex(&ns, "tap0");
    let (syn_acks, answer) = ns.enter(move || {
        let link = Link::new(ifindex);
        // A client the host knows nothing of (so that its stack answers
        // none of the guest's segments), at a MAC of its own.
        let client = [10, 0, 0, 77];
        let syn = Segment {
            src_mac: [2, 0, 0, 0, 0, 0x77],
            src: client,
            sport: 4242,
            dport: 7,
            flags: 0x02,
            seq: 1000,
            ..Segment::default()
        };
        assert!(link.send(&arp_request(syn.src_mac, client)));
        assert!(link.send(&syn.frame()));
        let first = link.segments_to(client, Duration::from_millis(500));
        assert!(link.send(&syn.frame()));
        let mut syn_acks = first;
        syn_acks.extend(link.segments_to(client, Duration::from_millis(500)));
        let Some(isn) = syn_acks.first().map(|s| s.seq) else { return (syn_acks, Vec::new()) };
        let data = Segment {
            flags: 0x18,
            seq: 1001,
            ack: isn.wrapping_add(1),
            payload: b"again\n",
            ..syn
        };
        assert!(link.send(&data.frame()));
        let answer = link.segments_to(client, Duration::from_secs(2));
        let rst = Segment { flags: 0x04, seq: 1007, ..syn };
        link.send(&rst.frame());
        (syn_acks, answer)
    });
    assert!(!syn_acks.is_empty(), "no SYN+ACK");
    assert!(
        syn_acks.iter().all(|s| s.flags & 0x3f == 0x12 && s.seq == syn_acks[0].seq),
        "the SYN sent again was answered as a new connection: {syn_acks:#?}"
    );
    assert!(answer.iter().all(|s| s.flags & 0x04 == 0), "reset: {answer:#?}");
    // Each segment once: unacknowledged, the guest sends it again.
    let mut echoed = Vec::new();
    for (k, s) in answer.iter().enumerate() {
        if !answer[..k].iter().any(|earlier| earlier.seq == s.seq) {
            echoed.extend_from_slice(&s.payload);
        }
    }
    assert_eq!(echoed, b"again\n", "{answer:#?}");
}

#[test]
fn garbage_frames_do_not_stop_the_guest() {
    let ns = namespace("garbage");
    let guest = httpd(&ns, &static_ip());
    let ok = |what: &str| {
        let out = curl(&ns, &["http://10.0.0.2/robots.txt"]);
        assert_eq!(out.stdout, "User-agent: *\nDisallow:\n", "after {what}: {out:#?}");
    };
    ok("start");
    let ifindex = ifindex(&ns, "tap0");
    let sent = ns.enter(move || {
        let link = Link::new(ifindex);
        garbage(80).iter().filter(|f| link.send(f)).count()
    });
    assert!(sent > 5000, "only {sent} frames sent");
    // A SYN flood from spoofed addresses fills the backlog with half-open
    // connections until they time out (3 s): service must be back by then.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = curl(&ns, &["http://10.0.0.2/robots.txt"]);
        if out.stdout == "User-agent: *\nDisallow:\n" {
            break;
        }
        assert!(Instant::now() < deadline, "not serving 10 s after the garbage: {out:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    ok("garbage, truncated and bad-checksum frames and a SYN flood");
    // The guest is the same process, still running.
    let mut guest = guest;
    assert!(guest.0.try_wait().unwrap().is_none(), "the guest exited");
}

/// `voluntary_ctxt_switches + nonvoluntary_ctxt_switches` of `pid`.
fn context_switches(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("ctxt_switches"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn an_idle_guest_makes_no_system_calls() {
    let ns = namespace("idle");
    // The host's IPv6 stack sends router solicitations and MLD reports on
    // the tap now and then: frames the guest must read. Keep the link quiet.
    ns.disable_ipv6();
    let guest = httpd(&ns, &static_ip());
    // One request, so that a connection came and went.
    assert_eq!(curl(&ns, &["http://10.0.0.2/robots.txt"]).code(), Some(0));
    std::thread::sleep(Duration::from_millis(500));
    let pid = guest.0.id();
    let before = context_switches(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let after = context_switches(pid);
    // Each system call that blocks, and each timer wake-up, is a context
    // switch: an idle guest sits in one ppoll.
    assert!(
        after - before <= 1,
        "{} context switches in {:?} while idle",
        after - before,
        t0.elapsed()
    );
}

/// Busy polling on (`NABLA_BUSY_POLL_US`): a client that asks again as
/// soon as it has each answer gets every answer, and once it stops the
/// guest spins at most once more, then sleeps in its one `ppoll`.
#[test]
fn a_busy_polling_guest_serves_a_burst_then_idles() {
    let ns = namespace("busy");
    ns.disable_ipv6();
    let mut opts = static_ip();
    opts.extend(["--env", "NABLA_BUSY_POLL_US=200"]);
    let guest = httpd(&ns, &opts);
    let answered = ns.enter(|| {
        let mut s = TcpStream::connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let mut answered = 0;
        for _ in 0..2000 {
            s.write_all(b"GET /robots.txt HTTP/1.1\r\nHost: guest\r\n\r\n").unwrap();
            // One answer per request: its head, then Content-Length bytes.
            let mut have = 0;
            let total = loop {
                let n = s.read(&mut buf[have..]).unwrap();
                assert!(n > 0, "closed after {answered} answers");
                have += n;
                let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = std::str::from_utf8(&buf[..end]).unwrap().to_ascii_lowercase();
                assert!(head.starts_with("http/1.1 200"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                break end + 4 + len;
            };
            while have < total {
                have += s.read(&mut buf[have..]).unwrap();
            }
            assert_eq!(have, total, "nothing beyond the answer asked for");
            answered += 1;
        }
        answered
    });
    assert_eq!(answered, 2000);
    std::thread::sleep(Duration::from_millis(500));
    let pid = guest.0.id();
    let ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = stat.rsplit_once(')').unwrap().1;
        let f: Vec<&str> = after.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let (switches, cpu) = (context_switches(pid), ticks(pid));
    std::thread::sleep(Duration::from_secs(1));
    let (switches, cpu) = (context_switches(pid) - switches, ticks(pid) - cpu);
    assert!(switches <= 1, "{switches} context switches in 1 s while idle");
    assert!(cpu <= 2, "{cpu} ticks of CPU in 1 s while idle: it spins");
}

/// Every line the guest prints, as it prints them.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (10 s at most) for a line that satisfies `want`, sending a UDP
/// datagram to echo every 50 ms meanwhile: the network turns in which the
/// guest looks for idle connections to park come with traffic.
fn wait_line(
    ns: &Netns,
    rx: &std::sync::mpsc::Receiver<String>,
    want: impl Fn(&str) -> bool,
) -> String {
    let udp = ns.enter(|| std::net::UdpSocket::bind("10.0.0.1:0").unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = udp.send_to(b"turn", "10.0.0.2:7");
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) if want(&line) => return line,
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("the guest's output ended: {e}"),
        }
        assert!(Instant::now() < deadline, "no such line from the guest in 10 s");
    }
}

/// Sends `msg` on `s` and reads it back.
fn echoes(s: &mut TcpStream, msg: &[u8]) -> Result<(), String> {
    s.write_all(msg).map_err(|e| format!("write: {e}"))?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).map_err(|e| format!("read: {e}"))?;
    if back == msg { Ok(()) } else { Err(format!("{back:?} back for {msg:?}")) }
}

/// The guest parks idle connections out of smoltcp's socket set
/// (docs/networking.md, "Idle connections"): 300 connections, left idle
/// until all are parked, still echo each its own message; a FIN and a
/// reset for parked ones reach their sockets (the echo task sees end of
/// stream and answers with its own FIN; it sees the reset as an error).
#[test]
fn parked_idle_connections_still_echo_and_see_fin_and_reset() {
    const N: usize = 300;
    let ns = namespace("idleset");
    let echo = workspace_bin("echo").display().to_string();
    let mut args = vec!["--net", "service0=tap0", "--mem", "256", "--log-level", "debug"];
    args.extend(static_ip());
    args.push(&echo);
    let mut child = ns
        .command(support::tender())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the tender");
    let rx = lines_of(&mut child);
    let _guest = KillOnDrop(child);
    let parked = |n: usize| move |l: &str| l.contains(&format!(", {n} parked"));
    wait_line(&ns, &rx, |l| l.contains("echo: listening"));
    let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7);
    let mut conns = ns.enter(move || {
        (0..N)
            .map(|i| {
                let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("connection {i}: {e}"));
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                echoes(&mut s, format!("hello {i}\n").as_bytes()).unwrap();
                s
            })
            .collect::<Vec<_>>()
    });
    wait_line(&ns, &rx, parked(N));
    // Each one, parked, echoes again.
    for (i, s) in conns.iter_mut().enumerate() {
        let msg = format!("again {i}: {}\n", "x".repeat(i));
        echoes(s, msg.as_bytes()).unwrap_or_else(|e| panic!("connection {i}: {e}"));
    }
    wait_line(&ns, &rx, parked(N));
    // 50 half-close (a FIN): echo closes its side too.
    for (i, s) in conns.iter_mut().enumerate().take(50) {
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert!(rest.is_empty(), "connection {i}: {rest:?}");
    }
    // 50 reset theirs (SO_LINGER 0, then close).
    for s in conns.drain(50..100) {
        support::reset(s);
    }
    let mut resets = 0;
    while resets < 50 {
        wait_line(&ns, &rx, |l| l.contains("connection reset"));
        resets += 1;
    }
    // The other 200, still parked, echo.
    for (i, s) in conns.iter_mut().enumerate().skip(50) {
        echoes(s, format!("last {i}\n").as_bytes())
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
    }
}

/// Bytes written on `s` and not yet acknowledged by the peer (`SIOCOUTQ`).
#[allow(unsafe_code)]
fn unacked(s: &TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int to the pointer, valid for the call.
    let ret = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(ret, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    n
}

/// Median time from each `write` of `len` bytes on `s` (one every 20 ms,
/// after the last was acknowledged) until the peer acknowledged all of it.
fn median_ack_time(s: &mut TcpStream, len: usize, writes: usize) -> Duration {
    let data = vec![b'x'; len];
    let mut times: Vec<Duration> = (0..writes)
        .map(|_| {
            s.write_all(&data).unwrap();
            let t = Instant::now();
            while unacked(s) > 0 {
                assert!(t.elapsed() < Duration::from_secs(5), "{len} bytes never acknowledged");
                std::thread::yield_now();
            }
            let took = t.elapsed();
            std::thread::sleep(Duration::from_millis(20));
            took
        })
        .collect();
    times.sort();
    times[writes / 2]
}

#[test]
fn a_lone_burst_beyond_one_segment_is_acknowledged_at_once_and_a_small_one_delayed() {
    // The host hands a 32 KiB write to the guest as one segment (offloads);
    // Linux acknowledges such a segment at once, and so must the guest,
    // which only reads (tcpperf's `R`): no reply carries the ACK. A segment
    // below one MSS keeps the delayed ACK (10 ms, libos's default), which
    // lets a request's reply carry it.
    let ns = namespace("quickack");
    let tcpperf = workspace_bin("tcpperf").display().to_string();
    let mut args = vec!["--net", "service0=tap0"];
    args.extend(static_ip());
    args.push(&tcpperf);
    let _guest = ns.start_tender(&args, "tcpperf: listening").0;
    let (large, small) = ns.enter(|| {
        let mut s = TcpStream::connect((GUEST, 5201)).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(b"R").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        (median_ack_time(&mut s, 32 * 1024, 15), median_ack_time(&mut s, 1000, 9))
    });
    // The delayed ACK is 10 ms: 5 ms leaves room for a busy machine.
    assert!(large < Duration::from_millis(5), "32 KiB acknowledged after {large:?} (median)");
    assert!(small >= Duration::from_millis(5), "1000 bytes acknowledged after {small:?} (median)");
}
