//! Existing Rust programs as nabla guests (examples/std), each driven by
//! its real clients, each test in a network namespace of its own with the
//! tap inside it (see `support::netns`):
//!
//! * std-echo (std::net, a thread per connection): 100 concurrent clients
//!   get their own bytes back; clients that vanish mid-request (reset,
//!   closed with the echo unread, silent) cost nothing to the others;
//! * std-http (axum over hyper 1.x and tokio): curl gets each file of the
//!   disk byte for byte, a JSON document that parses, 404s; wrk for a few
//!   seconds without an error; garbage frames on the tap while it serves;
//! * mini-redis-server (mini-redis 0.4.1 from crates.io): redis-cli's SET,
//!   GET, PUBLISH and SUBSCRIBE, `redis-benchmark -t set,get`, and its
//!   own graceful shutdown on Ctrl-C (SIGINT), exit 0.
//!
//! The guests are built by `nabla_build_all` (scripts/deps.sh) into
//! target/release, next to the tender.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::frames::{GUEST_MAC, Link, garbage, ifindex, noise};
use support::netns::{Netns, require_root};
use support::{KillOnDrop, Outcome, TempDir, site_image, wait, workspace_bin};

/// The guest's address, and the echo port.
const GUEST: &str = "10.0.0.2";
const ECHO_PORT: u16 = 7;

/// A namespace with tap0 (host side 10.0.0.1/24).
fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

/// Starts the std guest `bin` of examples/std at 10.0.0.2 (MAC
/// [`GUEST_MAC`]) with tender options `options` (`--mem` among them) and program arguments
/// `args`; returns once it printed `NAME: listening`.
fn start(ns: &Netns, bin: &str, options: &[&str], args: &[&str]) -> KillOnDrop {
    let path = workspace_bin(bin).display().to_string();
    let mac = format!(
        "service0={}",
        GUEST_MAC.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    );
    let mut all = vec!["--net", "service0=tap0", "--net-mac", &mac];
    all.extend_from_slice(&["--env", "NET_SERVICE0_IPV4=10.0.0.2/24"]);
    all.extend_from_slice(options);
    all.push(&path);
    all.extend_from_slice(args);
    ns.start_tender(&all, &format!("{bin}: listening")).0
}

/// Asserts that the guest still runs.
fn assert_alive(guest: &mut KillOnDrop, when: &str) {
    assert!(guest.0.try_wait().unwrap().is_none(), "the guest exited {when}");
}

/// Runs `sh -c script` in `ns` with a limit of `secs`.
fn sh(ns: &Netns, script: &str, secs: u64) -> Outcome {
    let child = ns
        .command("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    wait(child, Duration::from_secs(secs), script)
}

// std-echo

fn echo_addr() -> std::net::SocketAddr {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), ECHO_PORT).into()
}

/// Client `i` of std-echo (from the namespace): sends `len` bytes of its
/// own noise from one thread, half-closes, and reads them all back.
fn echo_round_trip(i: u64, len: usize) -> Result<(), String> {
    let data = noise(i, len);
    let mut s = TcpStream::connect_timeout(&echo_addr(), Duration::from_secs(10))
        .map_err(|e| format!("client {i}: connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent)?;
        w.shutdown(Shutdown::Write)
    });
    let mut back = Vec::with_capacity(data.len());
    s.read_to_end(&mut back).map_err(|e| format!("client {i}: read: {e}"))?;
    writer.join().unwrap().map_err(|e| format!("client {i}: write: {e}"))?;
    if back != data {
        return Err(format!("client {i}: got {} bytes back, not its own {}", back.len(), len));
    }
    Ok(())
}

#[test]
fn std_echo_serves_100_concurrent_clients() {
    let ns = namespace("sa-echo");
    let port = ECHO_PORT.to_string();
    let mut guest = start(&ns, "std-echo", &["--mem", "256"], &[&port]);
    let results = ns.enter(|| {
        let clients: Vec<_> = (0..100u64)
            .map(|i| std::thread::spawn(move || echo_round_trip(i + 1, 256 << 10)))
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>()
    });
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_alive(&mut guest, "after 100 clients");
}

#[test]
fn std_echo_outlives_clients_that_vanish_mid_request() {
    let ns = namespace("sa-vanish");
    let port = ECHO_PORT.to_string();
    let mut guest = start(&ns, "std-echo", &["--mem", "256"], &[&port]);
    let results = ns.enter(|| {
        let connect = || TcpStream::connect_timeout(&echo_addr(), Duration::from_secs(10));
        // Clients that go away in the middle of their request, while
        // others are being served.
        let vanishing: Vec<_> = (0..30u64)
            .map(|i| {
                std::thread::spawn(move || -> Result<(), String> {
                    let mut s = connect().map_err(|e| format!("vanishing {i}: connect: {e}"))?;
                    // Some of the request, never the end of it.
                    s.write_all(&noise(i + 1000, 200 << 10))
                        .map_err(|e| format!("vanishing {i}: write: {e}"))?;
                    match i % 3 {
                        // Reset while the echo is on its way back.
                        0 => support::reset(s),
                        // Closed with the echo unread: Linux resets too.
                        1 => drop(s),
                        // Gone silent, then closed much later.
                        _ => {
                            std::thread::sleep(Duration::from_millis(500));
                            support::reset(s)
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let served: Vec<_> = (0..20u64)
            .map(|i| std::thread::spawn(move || echo_round_trip(i + 1, 128 << 10)))
            .collect();
        let mut results: Vec<_> = vanishing.into_iter().map(|c| c.join().unwrap()).collect();
        results.extend(served.into_iter().map(|c| c.join().unwrap()));
        // And service goes on afterwards.
        results.push(echo_round_trip(99, 64 << 10));
        results
    });
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_alive(&mut guest, "after clients vanished");
}

/// The window the guest advertises to the client's connection from local
/// port `port`, as the client's `ss` reports it (`snd_wnd`); called in the
/// client's namespace (`Netns::enter`).
fn guest_window(port: u16) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-tniH", "state", "established", &format!("( sport = :{port} )")])
        .output()
        .expect("ss runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "ss: {}", String::from_utf8_lossy(&out.stderr));
    stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("snd_wnd:"))
        .unwrap_or_else(|| panic!("no snd_wnd in {stdout:?}"))
        .parse()
        .unwrap()
}

#[test]
fn std_echo_gives_a_connection_after_a_burst_its_large_window() {
    // A listener's first 4 connections get a 1 MiB receive buffer, the
    // next ones 64 KiB (docs/std.md); once a burst has ended, the next
    // client gets 1 MiB again, even within a few milliseconds of its end
    // (the bench's stream right after its 16 round-trip connections got
    // 64 KiB: docs/performance.md, "The stream's 64 KiB window").
    let ns = namespace("sa-burst");
    let port = ECHO_PORT.to_string();
    let mut guest = start(&ns, "std-echo", &["--mem", "256"], &[&port]);
    let window = ns.enter(|| {
        let connect = || TcpStream::connect_timeout(&echo_addr(), Duration::from_secs(10)).unwrap();
        let echo = |s: &mut TcpStream| {
            s.write_all(b"ping").unwrap();
            let mut back = [0u8; 4];
            s.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"ping");
        };
        // 16 at once: the last ones are made lean.
        let mut burst: Vec<TcpStream> = (0..16).map(|_| connect()).collect();
        for s in &mut burst {
            echo(s);
        }
        let lean = guest_window(burst[15].local_addr().unwrap().port());
        assert!(lean <= 64 << 10, "the 16th connection's window: {lean}");
        // All closed, and the guest's side of each too.
        for mut s in burst {
            s.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
        }
        let mut next = connect();
        echo(&mut next);
        guest_window(next.local_addr().unwrap().port())
    });
    assert!(window > 512 << 10, "the window after the burst: {window} bytes, not 1 MiB");
    assert_alive(&mut guest, "after the burst");
}

// std-http

/// std-http at 10.0.0.2:80, serving the test site read-only, with the
/// tender's default memory (64 MiB): `tokio::fs` runs on tokio's blocking
/// pool, which stays at a thread or two since a notified or new pool
/// thread runs before the worker queues the next read (it used to grow to
/// a thread and a 2 MiB stack per concurrent read, and needed `--mem
/// 1024`: docs/std.md).
fn std_http(ns: &Netns) -> KillOnDrop {
    let disk = format!("storage={}", site_image().display());
    start(ns, "std-http", &["--block-ro", &disk], &[])
}

fn curl(ns: &Netns, args: &[&str]) -> Outcome {
    let mut all = vec!["--silent", "--show-error", "--max-time", "10"];
    all.extend_from_slice(args);
    ns.run("curl", &all)
}

/// The bytes of `rel` in the test site, as `site_image` makes it.
fn site_file(rel: &str) -> Vec<u8> {
    if let Some(name) = rel.strip_prefix("bench/") {
        let len = match name {
            "1k.bin" => 1024,
            "60k.bin" => 60_000,
            "1m.bin" => 1 << 20,
            "5m.bin" => 5 << 20,
            _ => panic!("no bench file {name}"),
        };
        return (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    }
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/httpd/site");
    std::fs::read(site.join(rel)).unwrap()
}

#[test]
fn std_http_serves_files_json_and_404s_to_curl() {
    let ns = namespace("sa-http");
    let mut guest = std_http(&ns);
    let dir = TempDir::new("sa-http");
    for rel in ["robots.txt", "index.html", "bench/1k.bin", "bench/60k.bin", "bench/1m.bin"] {
        let out_path = dir.path().join("body");
        let out_str = out_path.display().to_string();
        let url = format!("http://{GUEST}/{rel}");
        let out = curl(&ns, &["--fail", "-o", &out_str, &url]);
        assert_eq!(out.code(), Some(0), "GET /{rel}: {out:#?}");
        let got = std::fs::read(&out_path).unwrap();
        assert!(got == site_file(rel), "GET /{rel}: {} bytes, not the file's", got.len());
    }
    // `/` is index.html.
    let out = curl(&ns, &["--fail", &format!("http://{GUEST}/")]);
    assert_eq!(out.stdout.as_bytes(), site_file("index.html"), "{out:#?}");
    // JSON, counting its own requests.
    for n in 1..=3u64 {
        let out = curl(&ns, &["--fail", "-i", &format!("http://{GUEST}/json")]);
        assert_eq!(out.code(), Some(0), "{out:#?}");
        let (head, body) = out.stdout.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).expect("the body parses as JSON");
        assert_eq!(v["server"], "std-http", "{v}");
        assert_eq!(v["requests"], n, "{v}");
        assert_eq!(v["root"], "/", "{v}");
    }
    // 404 for what is not there, a directory, a way out of the root; 405
    // for another method.
    for (args, code) in [
        (vec!["http://10.0.0.2/nothing-here.txt"], "404"),
        (vec!["http://10.0.0.2/bench/"], "404"),
        (vec!["--path-as-is", "http://10.0.0.2/bench/../../x"], "404"),
        (vec!["-X", "POST", "http://10.0.0.2/json"], "405"),
    ] {
        let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(&args);
        let out = curl(&ns, &all);
        assert_eq!(out.stdout, code, "{args:?}: {out:#?}");
    }
    assert_alive(&mut guest, "after curl");
}

#[test]
fn std_http_under_wrk_answers_every_request() {
    let ns = namespace("sa-wrk");
    let mut guest = std_http(&ns);
    for (file, conns) in [("bench/1k.bin", "32"), ("bench/1m.bin", "8")] {
        let url = format!("http://{GUEST}/{file}");
        let out = ns.run("wrk", &["-t", "1", "-c", conns, "-d", "3s", "--timeout", "5s", &url]);
        assert_eq!(out.code(), Some(0), "wrk {file}: {out:#?}");
        // wrk prints these lines only when there were any.
        assert!(!out.stdout.contains("Socket errors"), "wrk {file}: {}", out.stdout);
        assert!(!out.stdout.contains("Non-2xx"), "wrk {file}: {}", out.stdout);
        let requests: u64 = out
            .stdout
            .lines()
            .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.parse().unwrap()))
            .unwrap_or_else(|| panic!("no request count from wrk: {}", out.stdout));
        assert!(requests > 10, "wrk {file}: only {requests} requests: {}", out.stdout);
    }
    assert_alive(&mut guest, "after wrk");
}

#[test]
fn std_http_serves_through_garbage_frames() {
    let ns = namespace("sa-garbage");
    let mut guest = std_http(&ns);
    let robots = String::from_utf8(site_file("robots.txt")).unwrap();
    let url = format!("http://{GUEST}/robots.txt");
    assert_eq!(curl(&ns, &[&url]).stdout, robots, "before the garbage");
    let ifindex = ifindex(&ns, "tap0");
    // Clients keep asking while the garbage arrives.
    let loop_ns = ns.name().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let clients = std::thread::spawn(move || {
        let mut answered = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &loop_ns, "curl", "-s", "--max-time", "5"])
                .arg("http://10.0.0.2/bench/1k.bin")
                .output()
                .unwrap();
            answered += u32::from(out.stdout.len() == 1024);
        }
        answered
    });
    let sent = ns.enter(move || {
        let link = Link::new(ifindex);
        garbage(80).iter().filter(|f| link.send(f)).count()
    });
    assert!(sent > 5000, "only {sent} frames sent");
    // The SYN flood fills the backlog with half-open connections until they
    // time out: service must be back within 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = curl(&ns, &[&url]);
        if out.stdout == robots {
            break;
        }
        assert!(Instant::now() < deadline, "not serving 10 s after the garbage: {out:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = clients.join().unwrap();
    assert!(answered > 0, "no request answered while the garbage came");
    let json = curl(&ns, &[&format!("http://{GUEST}/json")]);
    serde_json::from_str::<serde_json::Value>(&json.stdout).expect("JSON after the garbage");
    assert_alive(&mut guest, "after the garbage");
}

// mini-redis

fn mini_redis(ns: &Netns) -> KillOnDrop {
    start(ns, "mini-redis-server", &["--mem", "256"], &[])
}

#[test]
#[allow(unsafe_code)]
fn mini_redis_answers_redis_cli_set_get_publish_subscribe() {
    let ns = namespace("sa-redis");
    let mut guest = mini_redis(&ns);
    let cli = |args: &[&str]| {
        let mut all = vec!["-h", GUEST];
        all.extend_from_slice(args);
        let out = ns.run("redis-cli", &all);
        assert_eq!(out.code(), Some(0), "redis-cli {args:?}: {out:#?}");
        out.stdout.trim_end().to_string()
    };
    assert_eq!(cli(&["set", "greeting", "hello nabla"]), "OK");
    assert_eq!(cli(&["get", "greeting"]), "hello nabla");
    assert_eq!(cli(&["get", "nothing"]), "");
    let big = "x".repeat(100_000);
    assert_eq!(cli(&["set", "big", &big]), "OK");
    assert_eq!(cli(&["get", "big"]), big);
    // A subscriber in the background gets what is published.
    let sub = ns
        .command("redis-cli")
        .args(["-h", GUEST, "subscribe", "news"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli subscribe");
    let mut sub = KillOnDrop(sub);
    let deadline = Instant::now() + Duration::from_secs(10);
    // PUBLISH answers how many subscribers got it: 1 once the subscriber is in.
    while cli(&["publish", "news", "first"]) != "1" {
        assert!(Instant::now() < deadline, "the subscriber never subscribed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(cli(&["publish", "news", "second"]), "1");
    assert_eq!(cli(&["publish", "elsewhere", "x"]), "0");
    std::thread::sleep(Duration::from_millis(300));
    let _ = sub.0.kill();
    let mut out = String::new();
    sub.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.windows(3).any(|w| w == ["message", "news", "first"])
            && lines.windows(3).any(|w| w == ["message", "news", "second"]),
        "the subscriber got: {out}"
    );
    assert!(!out.contains("elsewhere"), "{out}");
    assert_alive(&mut guest, "after redis-cli");
    // Ctrl-C: mini-redis's own graceful shutdown (`tokio::signal::ctrl_c()`
    // in its `main`) runs, and it exits 0. Unless this test process ignores
    // SIGINT (a shell's background job), which the guest then inherits.
    if support::signal_fds() == 2 {
        let pid = guest.0.id() as i32;
        // SAFETY: a signal to the test's own child, the tender.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = guest.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "mini-redis did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}

#[test]
fn mini_redis_completes_redis_benchmark_set_get() {
    let ns = namespace("sa-rbench");
    let mut guest = mini_redis(&ns);
    for pipeline in ["1", "16"] {
        let out = sh(
            &ns,
            &format!("redis-benchmark -h {GUEST} -t set,get -n 10000 -P {pipeline} -q"),
            120,
        );
        assert_eq!(out.code(), Some(0), "-P {pipeline}: {out:#?}");
        let text = out.stdout.replace('\r', "\n");
        for test in ["SET", "GET"] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{test}: "))
                        && l.contains(" requests per second")),
                "-P {pipeline}: no final line for {test}: {out:#?}"
            );
        }
        assert!(!out.stderr.contains("Error"), "-P {pipeline}: {out:#?}");
    }
    assert_alive(&mut guest, "after redis-benchmark");
}
