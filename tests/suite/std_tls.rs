//! TLS in std guests (examples/std), unmodified crates from crates.io with
//! rustls on ring, each test in a network namespace of its own:
//!
//! * std-https (axum, hyper, tokio-rustls): curl with the test's CA gets
//!   files byte for byte and JSON over TLS 1.2 and 1.3, with an ECDSA and
//!   an RSA certificate, and fails without the CA; wrk over HTTPS, with
//!   kept-alive connections and with a handshake per request, without an
//!   error; clients that send garbage instead of a ClientHello, or vanish
//!   mid-handshake, or go silent in it, cost only their own connections
//!   (the silent ones are closed after the server's 10 s handshake limit)
//!   while others are served;
//! * std-https-get (ureq over rustls, and hyper's client over
//!   hyper-rustls): fetches files from `openssl s_server -WWW` over TLS 1.2
//!   and 1.3 with the test's CA (RSA), bodies checked by their SHA-256,
//!   and refuses a server whose certificate the CA did not sign.
//!
//! The certificates are made by `openssl` for each test process; the guests
//! read theirs from their FAT disk.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::frames::noise;
use support::netns::{Netns, require_root};
use support::{KillOnDrop, Outcome, TempDir, fat_tool, profile_dir, workspace_bin};

/// The server guest's address, and its port.
const GUEST: &str = "10.0.0.2";
const PORT: u16 = 443;

/// A namespace with tap0 (host side 10.0.0.1/24).
fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

/// Runs `openssl` with the words of `args` in `dir`, panicking if it fails.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The bytes of the site's 1 MiB file.
fn big_file() -> Vec<u8> {
    noise(13, 1 << 20)
}

const HELLO: &str = "hello over TLS\n";
const INDEX: &str = "<!doctype html><title>std-https</title><p>Served over TLS.\n";

/// The test's files, made once per test process in the target directory:
/// a CA (`ca.pem`), server certificates it signed for 10.0.0.1 and
/// 10.0.0.2 (`ec.pem`/`ec.key`: ECDSA P-256; `rsa.pem`/`rsa.key`: RSA
/// 2048), one that another CA signed (`rogue.pem`/`rogue.key`), the site
/// (`site/`: `index.html`, `hello.txt`, `bench/1m.bin`), and `disk.img`,
/// a FAT disk of all but the other CA's.
fn pki() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = profile_dir().join(format!("std-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("site/bench")).unwrap();
        const EC: &str = "ec -pkeyopt ec_paramgen_curve:prime256v1";
        const RSA: &str = "rsa -pkeyopt rsa_keygen_bits:2048";
        for ca in ["ca", "rogueca"] {
            openssl(
                &dir,
                &format!(
                    "req -x509 -newkey {EC} -nodes -days 30 -subj /CN=nabla-test-{ca} \
                     -keyout {ca}.key -out {ca}.pem"
                ),
            );
        }
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=IP:10.0.0.1,IP:10.0.0.2\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        for (name, key, ca) in [("ec", EC, "ca"), ("rsa", RSA, "ca"), ("rogue", EC, "rogueca")] {
            openssl(
                &dir,
                &format!(
                    "req -newkey {key} -nodes -subj /CN=10.0.0.2 -keyout {name}.key \
                     -out {name}.csr"
                ),
            );
            openssl(
                &dir,
                &format!(
                    "x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial \
                     -days 30 -extfile ext -out {name}.pem"
                ),
            );
        }
        std::fs::write(dir.join("site/index.html"), INDEX).unwrap();
        std::fs::write(dir.join("site/hello.txt"), HELLO).unwrap();
        std::fs::write(dir.join("site/bench/1m.bin"), big_file()).unwrap();
        let img = dir.join("disk.img");
        std::fs::File::create(&img).unwrap().set_len(16 << 20).unwrap();
        let img = img.to_str().unwrap();
        fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "TLS", img]);
        let site = dir.join("site");
        let files = ["ca.pem", "ec.pem", "ec.key", "rsa.pem", "rsa.key"].map(|f| dir.join(f));
        let pages = ["index.html", "hello.txt", "bench"].map(|f| site.join(f));
        for f in files.iter().chain(&pages) {
            fat_tool("mcopy", &["-s", "-i", img, f.to_str().unwrap(), "::/"]);
        }
        dir
    })
    .clone()
}

/// Starts std-https at 10.0.0.2:443 in `ns` with the certificate `kind`
/// (`ec` or `rsa`), the site on its disk, the tender's default memory.
fn std_https(ns: &Netns, kind: &str) -> KillOnDrop {
    let path = workspace_bin("std-https").display().to_string();
    let disk = format!("storage={}", pki().join("disk.img").display());
    let (cert, key) = (format!("/{kind}.pem"), format!("/{kind}.key"));
    let port = PORT.to_string();
    let args = [
        "--net",
        "service0=tap0",
        "--env",
        "NET_SERVICE0_IPV4=10.0.0.2/24",
        "--block-ro",
        &disk,
        &path,
        &port,
        &cert,
        &key,
    ];
    ns.start_tender(&args, "std-https: listening").0
}

/// Asserts that the guest still runs.
fn assert_alive(guest: &mut KillOnDrop, when: &str) {
    assert!(guest.0.try_wait().unwrap().is_none(), "the guest exited {when}");
}

fn curl(ns: &Netns, args: &[&str]) -> Outcome {
    let mut all = vec!["--silent", "--show-error", "--max-time", "10"];
    all.extend_from_slice(args);
    ns.run("curl", &all)
}

/// curl with the test's CA.
fn curl_ca(ns: &Netns, args: &[&str]) -> Outcome {
    let ca = pki().join("ca.pem").display().to_string();
    let mut all = vec!["--cacert", &ca];
    all.extend_from_slice(args);
    curl(ns, &all)
}

/// std-https's `/json`, parsed.
fn status(ns: &Netns) -> serde_json::Value {
    let out = curl_ca(ns, &["--fail", &format!("https://{GUEST}/json")]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:#?}"))
}

#[test]
fn std_https_serves_curl_over_tls12_and_tls13_with_ec_and_rsa_keys() {
    let ns = namespace("tls-curl");
    let dir = TempDir::new("tls-curl");
    let body = dir.path().join("body").display().to_string();
    for kind in ["ec", "rsa"] {
        let mut guest = std_https(&ns, kind);
        // The guest's count of JSON requests.
        let mut json_requests = 0u64;
        for (version, flags) in [
            ("TLSv1.2", ["--tlsv1.2", "--tls-max", "1.2"]),
            ("TLSv1.3", ["--tlsv1.3", "--tls-max", "1.3"]),
        ] {
            let what = format!("{kind} {version}");
            for (rel, want) in [
                ("hello.txt", HELLO.as_bytes().to_vec()),
                ("", INDEX.as_bytes().to_vec()),
                ("bench/1m.bin", big_file()),
            ] {
                let url = format!("https://{GUEST}/{rel}");
                let mut args = vec!["-v", "--fail", "-o", &body];
                args.extend_from_slice(&flags);
                args.push(&url);
                let out = curl_ca(&ns, &args);
                assert_eq!(out.code(), Some(0), "{what} GET /{rel}: {out:#?}");
                assert!(
                    out.stderr.contains(&format!("SSL connection using {version}")),
                    "{what} GET /{rel}: not {version}: {}",
                    out.stderr
                );
                assert!(std::fs::read(&body).unwrap() == want, "{what} GET /{rel}: not the file");
            }
            let mut args = vec!["--fail", "-i"];
            args.extend_from_slice(&flags);
            let url = format!("https://{GUEST}/json");
            args.push(&url);
            let out = curl_ca(&ns, &args);
            assert_eq!(out.code(), Some(0), "{what}: {out:#?}");
            let (head, json) = out.stdout.split_once("\r\n\r\n").expect("a head and a body");
            assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
            let v: serde_json::Value = serde_json::from_str(json).expect("JSON");
            json_requests += 1;
            assert_eq!(v["server"], "std-https", "{v}");
            assert_eq!(v["requests"], json_requests, "{v}");
            assert_eq!(v["failed_handshakes"], 0, "{what}: {v}");
            // 404 for what is not there, a way out of the root.
            for (extra, code) in [
                ("https://10.0.0.2/nothing-here.txt", "404"),
                ("https://10.0.0.2/bench/../../x", "404"),
            ] {
                let mut args = vec!["--path-as-is", "-o", "/dev/null", "-w", "%{http_code}"];
                args.extend_from_slice(&flags);
                args.push(extra);
                assert_eq!(curl_ca(&ns, &args).stdout, code, "{what} {extra}");
            }
        }
        // Without the CA, curl refuses the certificate (60: peer
        // certificate cannot be authenticated), and the guest counts a
        // failed handshake.
        let out = curl(&ns, &[&format!("https://{GUEST}/hello.txt")]);
        assert_eq!(out.code(), Some(60), "{kind} without the CA: {out:#?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while status(&ns)["failed_handshakes"] != 1 {
            assert!(Instant::now() < deadline, "{kind}: the refused handshake is not counted");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_alive(&mut guest, "after curl");
    }
}

/// Runs wrk over HTTPS for 3 s with `extra` arguments; asserts no error
/// and more than `min` requests.
fn wrk(ns: &Netns, extra: &[&str], min: u64) {
    let url = format!("https://{GUEST}/hello.txt");
    let mut args = vec!["-t", "1", "-c", "16", "-d", "3s", "--timeout", "5s"];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = ns.run("wrk", &args);
    assert_eq!(out.code(), Some(0), "wrk {extra:?}: {out:#?}");
    // wrk prints these lines only when there were any.
    assert!(!out.stdout.contains("Socket errors"), "wrk {extra:?}: {}", out.stdout);
    assert!(!out.stdout.contains("Non-2xx"), "wrk {extra:?}: {}", out.stdout);
    let requests: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.parse().unwrap()))
        .unwrap_or_else(|| panic!("no request count from wrk: {}", out.stdout));
    assert!(requests > min, "wrk {extra:?}: only {requests} requests: {}", out.stdout);
}

#[test]
fn std_https_under_wrk_answers_every_request() {
    let ns = namespace("tls-wrk");
    let mut guest = std_https(&ns, "ec");
    // Kept-alive connections, then a new connection (and handshake) per
    // request.
    wrk(&ns, &[], 300);
    wrk(&ns, &["-H", "Connection: close"], 30);
    assert_alive(&mut guest, "after wrk");
    let v = status(&ns);
    assert!(v["handshakes"].as_u64().unwrap() > 30, "{v}");
}

/// A ClientHello as `openssl s_client` sends it (TLS 1.2 and 1.3 offered),
/// caught by a listener of the test.
fn client_hello() -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let client = Command::new("openssl")
        .args(["s_client", "-connect", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let _client = KillOnDrop(client);
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 5];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 22, "not a handshake record: {head:?}");
    let mut hello = head.to_vec();
    hello.resize(5 + usize::from(u16::from_be_bytes([head[3], head[4]])), 0);
    s.read_exact(&mut hello[5..]).unwrap();
    assert_eq!(hello[5], 1, "not a ClientHello");
    hello
}

fn guest_addr() -> std::net::SocketAddr {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), PORT).into()
}

/// Waits until the server closes `s` (a read gives the end or a reset),
/// at most `secs`; an error if it does not.
fn closed_by_server(mut s: TcpStream, secs: u64, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            // The server's flight, or an alert.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("{what}: {e}")),
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: still open after {secs} s"));
        }
    }
}

#[test]
fn std_https_outlives_garbage_and_clients_that_vanish_mid_handshake() {
    let ns = namespace("tls-hostile");
    let mut guest = std_https(&ns, "ec");
    let hello = client_hello();
    let before = status(&ns);
    // Honest clients keep asking meanwhile.
    let loop_ns = ns.name().to_string();
    let ca = pki().join("ca.pem").display().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let honest = std::thread::spawn(move || {
        let (mut answered, mut failed) = (0u32, Vec::new());
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let out = Command::new("ip")
                .args(["netns", "exec", &loop_ns, "curl", "-sS", "--max-time", "5", "--cacert"])
                .args([&ca, "https://10.0.0.2/hello.txt"])
                .output()
                .unwrap();
            if out.stdout == HELLO.as_bytes() {
                answered += 1;
            } else {
                failed.push(String::from_utf8_lossy(&out.stderr).into_owned());
            }
        }
        (answered, failed)
    });
    const GARBAGE: u64 = 20;
    const PLAIN: u64 = 5;
    const PARTIAL: u64 = 10;
    const VANISHING: u64 = 21;
    let started = Instant::now();
    let results = ns.enter(move || {
        let connect = || TcpStream::connect_timeout(&guest_addr(), Duration::from_secs(10));
        let mut clients: Vec<std::thread::JoinHandle<Result<(), String>>> = Vec::new();
        // Random bytes instead of a ClientHello, of sizes up to 64 KiB.
        for i in 0..GARBAGE {
            clients.push(std::thread::spawn(move || {
                let mut s = connect().map_err(|e| format!("garbage {i}: {e}"))?;
                let len = [1usize, 5, 100, 4096, 65536][i as usize % 5];
                let _ = s.write_all(&noise(i + 100, len));
                closed_by_server(s, 20, &format!("garbage {i}"))
            }));
        }
        // Plain HTTP to the TLS port.
        for i in 0..PLAIN {
            clients.push(std::thread::spawn(move || {
                let mut s = connect().map_err(|e| format!("plain {i}: {e}"))?;
                let _ = s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n");
                closed_by_server(s, 20, &format!("plain {i}"))
            }));
        }
        // Half a ClientHello, then silence: the server gives up after its
        // handshake limit.
        for i in 0..PARTIAL {
            let half = hello[..hello.len() / 2].to_vec();
            clients.push(std::thread::spawn(move || {
                let mut s = connect().map_err(|e| format!("partial {i}: {e}"))?;
                s.write_all(&half).map_err(|e| format!("partial {i}: {e}"))?;
                closed_by_server(s, 20, &format!("partial {i}"))
            }));
        }
        // A whole ClientHello; once the server's first flight arrives,
        // a reset, a close, or silence.
        for i in 0..VANISHING {
            let hello = hello.clone();
            clients.push(std::thread::spawn(move || {
                let mut s = connect().map_err(|e| format!("vanishing {i}: {e}"))?;
                s.write_all(&hello).map_err(|e| format!("vanishing {i}: {e}"))?;
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut first = [0u8; 1];
                s.read_exact(&mut first).map_err(|e| format!("vanishing {i}: ServerHello: {e}"))?;
                if first[0] != 22 {
                    return Err(format!("vanishing {i}: record type {} first", first[0]));
                }
                match i % 3 {
                    0 => support::reset(s),
                    1 => drop(s),
                    _ => closed_by_server(s, 20, &format!("vanishing {i}"))?,
                }
                Ok(())
            }));
        }
        clients.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>()
    });
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    // The silent ones were closed by the handshake limit, not earlier.
    assert!(started.elapsed() >= Duration::from_secs(9), "{:?}", started.elapsed());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, failed) = honest.join().unwrap();
    assert!(answered > 0, "no honest request answered while the others came");
    assert!(failed.is_empty(), "honest clients failed: {failed:#?}");
    // Every hostile connection counted as a failed handshake, none as
    // complete.
    let want =
        before["failed_handshakes"].as_u64().unwrap() + GARBAGE + PLAIN + PARTIAL + VANISHING;
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut v, mut asked) = (status(&ns), 1);
    while v["failed_handshakes"].as_u64() != Some(want) {
        assert!(Instant::now() < deadline, "failed handshakes {v}, not {want}");
        std::thread::sleep(Duration::from_millis(100));
        (v, asked) = (status(&ns), asked + 1);
    }
    let handshakes = v["handshakes"].as_u64().unwrap();
    assert_eq!(
        handshakes,
        before["handshakes"].as_u64().unwrap() + u64::from(answered) + asked,
        "{v}: {answered} honest requests and {asked} for the status"
    );
    assert_alive(&mut guest, "after the hostile clients");
}

// std-https-get

/// `openssl s_server -WWW` at 10.0.0.1:4433 in `ns`, serving the site with
/// the certificate `cert` and key `key` (files of [`pki`]) and `flags`.
fn s_server(ns: &Netns, cert: &str, key: &str, flags: &[&str]) -> KillOnDrop {
    let dir = pki();
    let child = ns
        .command("openssl")
        .args(["s_server", "-WWW", "-quiet", "-accept", "10.0.0.1:4433", "-cert"])
        .arg(dir.join(cert))
        .arg("-key")
        .arg(dir.join(key))
        .args(flags)
        .current_dir(dir.join("site"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let server = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr: std::net::SocketAddr = "10.0.0.1:4433".parse().unwrap();
    while ns.enter(move || TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()) {
        assert!(Instant::now() < deadline, "openssl s_server does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Runs std-https-get at 10.0.0.2 with the disk of [`pki`] and `args`.
fn std_https_get(ns: &Netns, args: &[&str]) -> Outcome {
    let path = workspace_bin("std-https-get").display().to_string();
    let disk = format!("storage={}", pki().join("disk.img").display());
    let mut all = vec![
        "--net",
        "service0=tap0",
        "--env",
        "NET_SERVICE0_IPV4=10.0.0.2/24",
        "--block-ro",
        &disk,
        &path,
    ];
    all.extend_from_slice(args);
    ns.tender(&all)
}

/// The SHA-256 of `bytes` in hex (sha256sum).
fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn std_https_get_fetches_from_openssl_over_tls12_and_tls13_with_ureq_and_hyper() {
    let ns = namespace("tls-get");
    for (flag, client) in [
        ("-tls1_2", None),
        ("-tls1_3", None),
        ("-tls1_2", Some("--hyper")),
        ("-tls1_3", Some("--hyper")),
    ] {
        let _server = s_server(&ns, "rsa.pem", "rsa.key", &[flag]);
        let mut args: Vec<&str> = client.into_iter().collect();
        args.extend_from_slice(&[
            "/ca.pem",
            "https://10.0.0.1:4433/hello.txt",
            "https://10.0.0.1:4433/bench/1m.bin",
            "https://10.0.0.1:4433/index.html",
        ]);
        let out = std_https_get(&ns, &args);
        let flag = format!("{flag} {client:?}");
        assert_eq!(out.code(), Some(0), "{flag}: {out:#?}");
        let want = [
            format!(
                "GET https://10.0.0.1:4433/hello.txt: 200 text/plain, {} bytes, sha256 {}",
                HELLO.len(),
                sha256(HELLO.as_bytes())
            ),
            format!(
                "GET https://10.0.0.1:4433/bench/1m.bin: 200 text/plain, {} bytes, sha256 {}",
                1 << 20,
                sha256(&big_file())
            ),
            format!(
                "GET https://10.0.0.1:4433/index.html: 200 text/html, {} bytes, sha256 {}",
                INDEX.len(),
                sha256(INDEX.as_bytes())
            ),
        ];
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines, want, "{flag}: {out:#?}");
    }
}

#[test]
fn std_https_get_refuses_a_certificate_of_no_trusted_ca() {
    let ns = namespace("tls-rogue");
    let _server = s_server(&ns, "rogue.pem", "rogue.key", &[]);
    for client in [None, Some("--hyper")] {
        let mut args: Vec<&str> = client.into_iter().collect();
        args.extend_from_slice(&["/ca.pem", "https://10.0.0.1:4433/hello.txt"]);
        let out = std_https_get(&ns, &args);
        assert_eq!(out.code(), Some(1), "{client:?}: {out:#?}");
        assert!(
            out.stdout.starts_with("GET https://10.0.0.1:4433/hello.txt: error: ")
                && out.stdout.contains("UnknownIssuer"),
            "{client:?}: {out:#?}"
        );
    }
}
