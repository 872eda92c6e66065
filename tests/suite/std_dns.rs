//! Name resolution in a std guest: `tender --etc` hands it /etc/hosts,
//! /etc/resolv.conf and /etc/hostname, and getaddrinfo looks names up in
//! the hosts file, then asks the DNS server this suite runs in the test's
//! network namespace (10.0.0.1:53, a UdpSocket answering A, CNAME,
//! NXDOMAIN, no data and SERVFAIL, silent for one name, garbage for
//! another). tests/std's `std-dns` guest (10.0.0.2) prints what std
//! reports for each name (io::Error texts as on Linux), connects by name
//! to a listener here, and shows that other threads run while a lookup
//! waits. Also: the tender's refusals of bad `--etc` options, and that
//! `--etc` changes no rule of the filter.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::netns::{Netns, require_root};
use support::{TempDir, run, std_guest};

/// The names of the questions the server saw, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// The question of `q`: its name (lower case, dotted) and the offset just
/// after the question.
fn question(q: &[u8]) -> Option<(String, usize)> {
    let mut off = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(off)? as usize;
        if len == 0 {
            return Some((labels.join(".").to_ascii_lowercase(), off + 5));
        }
        labels.push(String::from_utf8_lossy(q.get(off + 1..off + 1 + len)?).into_owned());
        off += 1 + len;
    }
}

/// A reply to `q` with `rcode` and `answers` (owner as a pointer to the
/// question, then TYPE and RDATA).
fn reply(q: &[u8], end: usize, rcode: u8, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut p = q[..end].to_vec();
    p[2] = 0x81;
    p[3] = 0x80 | rcode;
    p[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    p[8..12].fill(0);
    for (ty, rdata) in answers {
        p.extend_from_slice(&[0xc0, 12]);
        p.extend_from_slice(&ty.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
        p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        p.extend_from_slice(rdata);
    }
    p
}

/// `n` A records, 10.0.1.1 and up.
fn many(n: u8) -> Vec<(u16, Vec<u8>)> {
    (1..=n).map(|i| (1u16, vec![10, 0, 1, i])).collect()
}

fn wire(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for l in name.split('.') {
        w.push(l.len() as u8);
        w.extend_from_slice(l.as_bytes());
    }
    w.push(0);
    w
}

/// The DNS server at 10.0.0.1:53 in `ns`:
///
/// * `db.svc.test`: A 10.0.0.1; `alias.test`: CNAME `db.svc.test` with
///   its A; `web.svc.test`: A 10.0.0.7 and 10.0.0.8;
/// * `nodata.test`: no answer, no error; `fail.test`: SERVFAIL;
/// * `silent.test`: nothing; `garbage.test`: random bytes, then a reply
///   with the wrong id, then one with another question (all to drop);
/// * `many.svc.test`: 40 A records (10.0.1.1 to 10.0.1.40): over UDP the
///   first 20 with TC set, whole over TCP (10.0.0.1:53 too, one query per
///   connection; seen as `tcp NAME`);
/// * PTR questions: `7.0.0.10.in-addr.arpa` is `web.svc.test`,
///   `8.0.0.10.in-addr.arpa` SERVFAIL (any other type for these:
///   NXDOMAIN);
/// * anything else: NXDOMAIN.
fn dns_server(ns: &Netns) -> Seen {
    let (sock, tcp) = ns.enter(|| {
        (UdpSocket::bind("10.0.0.1:53").unwrap(), TcpListener::bind("10.0.0.1:53").unwrap())
    });
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut c in tcp.incoming().flatten() {
            let mut len = [0u8; 2];
            let mut q = Vec::new();
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            q.resize(usize::from(u16::from_be_bytes(len)), 0);
            let Ok(()) = c.read_exact(&mut q) else { continue };
            let Some((name, end)) = question(&q) else { continue };
            log.lock().unwrap().push(format!("tcp {name}"));
            let p = match name.as_str() {
                "many.svc.test" => reply(&q, end, 0, &many(40)),
                _ => reply(&q, end, 3, &[]),
            };
            let _ = c.write_all(&(p.len() as u16).to_be_bytes());
            let _ = c.write_all(&p);
        }
    });
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            let Some((name, end)) = question(q) else { continue };
            log.lock().unwrap().push(name.clone());
            let a = |ip: [u8; 4]| (1u16, ip.to_vec());
            let ptr = q.get(end - 4..end - 2) == Some(&[0, 12]);
            let out: Vec<Vec<u8>> = match name.as_str() {
                "7.0.0.10.in-addr.arpa" if ptr => {
                    vec![reply(q, end, 0, &[(12, wire("web.svc.test"))])]
                }
                "8.0.0.10.in-addr.arpa" if ptr => vec![reply(q, end, 2, &[])],
                "db.svc.test" => vec![reply(q, end, 0, &[a([10, 0, 0, 1])])],
                "web.svc.test" => vec![reply(q, end, 0, &[a([10, 0, 0, 7]), a([10, 0, 0, 8])])],
                "alias.test" => {
                    // CNAME, then the target's A record with its own name.
                    let mut p = reply(q, end, 0, &[(5, wire("db.svc.test"))]);
                    p[7] = 2;
                    p.extend_from_slice(&wire("db.svc.test"));
                    p.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1]);
                    vec![p]
                }
                "nodata.test" => vec![reply(q, end, 0, &[])],
                "many.svc.test" => {
                    let mut p = reply(q, end, 0, &many(20));
                    p[2] |= 0x02;
                    vec![p]
                }
                "fail.test" => vec![reply(q, end, 2, &[])],
                "silent.test" => vec![],
                "garbage.test" => {
                    let mut junk = Vec::new();
                    for _ in 0..200 {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        junk.push(seed as u8);
                    }
                    let mut wrong_id = reply(q, end, 0, &[a([6, 6, 6, 6])]);
                    wrong_id[0] ^= 0xff;
                    let mut other = reply(q, end, 0, &[a([6, 6, 6, 6])]);
                    other[13] ^= 0x20 ^ b'x';
                    vec![junk, wrong_id, other]
                }
                _ => vec![reply(q, end, 3, &[])],
            };
            for p in out {
                let _ = sock.send_to(&p, from);
            }
        }
    });
    seen
}

const RESOLV: &str = "# from the suite\nnameserver 10.0.0.1\nsearch svc.test test\n\
                      options ndots:1 timeout:1 attempts:2\n";
const HOSTS: &str = "127.0.0.1 localhost\n10.0.0.1 fromhosts fromhosts.local\n\
                     10.0.0.9 db.svc.test\n";

/// Runs std-dns with `steps` in a namespace with the DNS server, a
/// listener at 10.0.0.1:7100 that greets, and the suite's /etc files.
fn run_guest(steps: &[&str]) -> (Vec<String>, Vec<String>) {
    require_root();
    let ns = Netns::new("dns");
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    let seen = dns_server(&ns);
    let listener = ns.enter(|| TcpListener::bind("10.0.0.1:7100").unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = s.write_all(b"hello from 10.0.0.1\n");
        }
    });
    let dir = TempDir::new("dns");
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (resolv, hosts, hostname) =
        (file("resolv.conf", RESOLV), file("hosts", HOSTS), file("hostname", "pod-7\n"));
    let mut args: Vec<String> = [
        "--net",
        "service0=tap0",
        "--env",
        "NET_SERVICE0_IPV4=10.0.0.2/24",
        "--etc",
        &format!("resolv.conf={resolv}"),
        "--etc",
        &format!("hosts={hosts}"),
        "--etc",
        &format!("hostname={hostname}"),
        &std_guest("std-dns"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(steps.iter().map(|s| s.to_string()));
    let out = ns.tender(&args);
    out.assert_ok();
    let lines = out.stdout.lines().map(str::to_string).collect();
    let seen = seen.lock().unwrap().clone();
    (lines, seen)
}

const NONAME: &str = "error: failed to lookup address information: Name or service not known";
const AGAIN: &str =
    "error: failed to lookup address information: Temporary failure in name resolution";
const NODATA: &str =
    "error: failed to lookup address information: No address associated with hostname";

#[test]
fn names_resolve_through_hosts_and_dns() {
    let (lines, seen) = run_guest(&[
        "fromhosts",
        "FROMHOSTS.local.",
        "db.svc.test",
        "db",
        "alias.test",
        "web",
        "nothere.test",
        "nodata.test",
        "localhost",
        "10.1.2.3",
        "connect:db:7100",
        "connect:alias.test:7100",
        "connect:fromhosts:7100",
    ]);
    assert_eq!(
        lines,
        [
            "resolve fromhosts: 10.0.0.1",
            "resolve FROMHOSTS.local.: 10.0.0.1",
            // The hosts file first: DNS would say 10.0.0.1.
            "resolve db.svc.test: 10.0.0.9",
            // No dot: the search domains first (db.svc.test is then asked of DNS).
            "resolve db: 10.0.0.1",
            "resolve alias.test: 10.0.0.1",
            "resolve web: 10.0.0.7, 10.0.0.8",
            &format!("resolve nothere.test: {NONAME}"),
            &format!("resolve nodata.test: {NODATA}"),
            "resolve localhost: 127.0.0.1",
            "resolve 10.1.2.3: 10.1.2.3",
            "connect db:7100: hello from 10.0.0.1",
            "connect alias.test:7100: hello from 10.0.0.1",
            "connect fromhosts:7100: hello from 10.0.0.1",
        ]
    );
    // What was asked: never the names the hosts file has; "db" through
    // the search list; "nothere.test" (one dot: ndots 1) as it is first,
    // then with each search domain.
    let asked: Vec<&str> = seen.iter().map(String::as_str).collect();
    assert_eq!(
        asked,
        [
            "db.svc.test",
            "alias.test",
            "web.svc.test",
            "nothere.test",
            "nothere.test.svc.test",
            "nothere.test.test",
            "nodata.test",
            "nodata.test.svc.test",
            "nodata.test.test",
            "db.svc.test",
            "alias.test",
        ]
    );
}

/// An answer too long for UDP (TC) is asked again over TCP, as glibc does.
#[test]
fn truncated_answers_are_asked_again_over_tcp() {
    let (lines, seen) = run_guest(&["many"]);
    let all: Vec<String> = (1..=40).map(|i| format!("10.0.1.{i}")).collect();
    assert_eq!(lines, [format!("resolve many: {}", all.join(", "))]);
    assert_eq!(seen, ["many.svc.test", "tcp many.svc.test"]);
}

/// `getnameinfo`: `/etc/hosts` first, then DNS's PTR record; numeric
/// without a name unless one is required; `NI_NOFQDN` drops the local
/// domain (the first search domain: the host name has no dot).
#[test]
fn addresses_are_named_through_hosts_and_ptr_records() {
    let (lines, seen) = run_guest(&[
        "name:10.0.0.1",
        "name:10.0.0.7",
        "name-short:10.0.0.7",
        "name:::ffff:10.0.0.7",
        "name:10.0.0.99",
        "name-req:10.0.0.99",
        "name-req:10.0.0.8",
        "name:10.0.0.8",
    ]);
    assert_eq!(
        lines,
        [
            "name 10.0.0.1: fromhosts 80",
            "name 10.0.0.7: web.svc.test 80",
            // NI_NOFQDN.
            "name 10.0.0.7: web 80",
            "name ::ffff:10.0.0.7: web.svc.test 80",
            "name 10.0.0.99: 10.0.0.99 80",
            // NI_NAMEREQD.
            "name 10.0.0.99: error Name or service not known",
            "name 10.0.0.8: error Temporary failure in name resolution",
            "name 10.0.0.8: 10.0.0.8 80",
        ]
    );
    let asked: Vec<&str> = seen.iter().map(String::as_str).collect();
    // 10.0.0.1 is in the hosts file; a SERVFAIL is asked again (2 attempts).
    let arpa = |d: &str| format!("{d}.0.0.10.in-addr.arpa");
    let (seven, ninety_nine, eight) = (arpa("7"), arpa("99"), arpa("8"));
    let expected =
        [&seven, &seven, &seven, &ninety_nine, &ninety_nine, &eight, &eight, &eight, &eight];
    assert_eq!(asked, expected.map(String::as_str));
}

#[test]
fn silence_garbage_and_failures_are_temporary() {
    let start = Instant::now();
    // A first lookup warms the path (ARP; a tap can drop the first frames
    // right after it is attached): the steps after it lose no query.
    let (mut lines, mut seen) =
        run_guest(&["warm.test.", "ticking:silent.test.", "garbage.test.", "fail.test."]);
    let elapsed = start.elapsed();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines.remove(0), format!("resolve warm.test.: {NONAME}"));
    seen.retain(|n| n != "warm.test");
    // timeout:1 attempts:2, one server: two seconds of waiting, during
    // which the guest's other thread runs.
    let (r, ticks) = lines[0].rsplit_once("; ticks ").unwrap();
    assert_eq!(r, format!("ticking silent.test.: {AGAIN}"));
    let ticks: u32 = ticks.parse().unwrap();
    assert!(ticks >= 25, "another thread ran only {ticks} times in 2 s");
    // Garbage, a wrong id and another question are dropped: the wait ends
    // as silence does.
    assert_eq!(lines[1], format!("resolve garbage.test.: {AGAIN}"));
    assert_eq!(lines[2], format!("resolve fail.test.: {AGAIN}"));
    assert_eq!(
        seen,
        ["silent.test", "silent.test", "garbage.test", "garbage.test", "fail.test", "fail.test"]
    );
    assert!(elapsed >= Duration::from_secs(4), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
}

#[test]
fn etc_files_are_read_only_files() {
    let (lines, _) = run_guest(&[
        "cat:/etc/hostname",
        "cat:/etc/../etc/hosts",
        "cat:/etc/passwd",
        "write:/etc/hosts",
    ]);
    assert_eq!(
        lines,
        [
            "cat /etc/hostname: pod-7\\n",
            &format!("cat /etc/../etc/hosts: {}", HOSTS.escape_debug()),
            "cat /etc/passwd: error: No such file or directory (os error 2)",
            "write /etc/hosts: error: Read-only file system (os error 30)",
        ]
    );
}

#[test]
fn bad_etc_options_are_refused() {
    let dir = TempDir::new("dns-etc");
    let small = dir.path().join("small");
    std::fs::write(&small, "x\n").unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'#'; 64 * 1024 + 1]).unwrap();
    let guest = std_guest("std-dns");
    let s = small.display().to_string();
    let refused = |etc: &[String], needle: &str| {
        let mut args: Vec<String> = Vec::new();
        for e in etc {
            args.extend(["--etc".to_string(), e.clone()]);
        }
        args.push(guest.clone());
        run(&args).assert_refused(needle);
    };
    refused(std::slice::from_ref(&s), "expected NAME=PATH");
    refused(&[format!("../hosts={s}")], "plain file name");
    refused(&[format!("a/b={s}")], "plain file name");
    refused(&[format!("={s}")], "plain file name");
    refused(&[format!("hosts={s}"), format!("hosts={s}")], "/etc/hosts given twice");
    refused(&[format!("hosts={}", big.display())], "larger than 65536 bytes");
    refused(&["hosts=/nonexistent/hosts".into()], "No such file or directory");
    refused(&[format!("hosts={}", dir.path().display())], "not a regular file");
    let nine: Vec<String> = (0..9).map(|i| format!("f{i}={s}")).collect();
    refused(&nine, "more than 8 files");
}

#[test]
fn etc_files_change_no_rule_of_the_filter() {
    let dir = TempDir::new("dns-seccomp");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, HOSTS).unwrap();
    // A guest without devices: nothing to attach.
    let guest = std_guest("std-hello");
    let without = run(&["--print-seccomp", &guest]);
    let with = run(&["--print-seccomp", "--etc", &format!("hosts={}", hosts.display()), &guest]);
    without.assert_ok();
    with.assert_ok();
    assert_eq!(with.stdout, without.stdout);
}
