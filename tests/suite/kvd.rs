//! kvd with real clients (Debian `redis-tools`), each test in a network
//! namespace of its own with the tap inside it (see `support::netns`) and a
//! fresh zeroed disk in a temporary directory:
//!
//! * a `redis-cli` script covering every command gets exactly the replies
//!   in `kvd/commands.out` (recorded from redis-server 7.0), and the same as
//!   a real `redis-server` run now in a namespace of its own;
//! * `redis-benchmark` completes every test of the issue without an error;
//! * malformed RESP, unknown commands, wrong arity, wrong types and a 1 GiB
//!   bulk length each get Redis's error reply, and another client is served
//!   all along;
//! * pipelined commands are all answered, in order;
//! * what was acknowledged survives `kill -9` of the tender.
//!
//! No kvd or redis-server outlives a test: both run in the test's
//! namespaces, which are removed with every process in them on drop.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::netns::{Netns, require_root};
use support::{KillOnDrop, Outcome, TempDir, tender, wait, workspace_bin};

const GUEST: &str = "10.0.0.2";
const SCRIPT: &str = "suite/kvd/commands.redis";
const EXPECTED: &str = include_str!("kvd/commands.out");

/// A namespace with tap0 (host side 10.0.0.1/24).
fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

/// A zeroed 64 MiB disk file in `dir`.
fn disk(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("kvd.img");
    let f = std::fs::File::create(&path).expect("create the disk file");
    f.set_len(64 << 20).expect("size the disk file");
    path
}

/// kvd under the tender in `ns` with `disk`; returns once it is ready.
fn kvd(ns: &Netns, disk: &Path, extra_env: &[&str]) -> KillOnDrop {
    kvd_with(ns, disk, extra_env, &[])
}

/// [`kvd`] with more tender options.
fn kvd_with(ns: &Netns, disk: &Path, extra_env: &[&str], options: &[&str]) -> KillOnDrop {
    let mut cmd = ns.command(tender());
    cmd.args(options);
    cmd.args(["--mem", "256", "--net", "service0=tap0"]);
    cmd.args(["--env", "NET_SERVICE0_IPV4=10.0.0.2/24"]);
    for kv in extra_env {
        cmd.args(["--env", kv]);
    }
    cmd.arg("--block").arg(format!("storage={}", disk.display()));
    cmd.arg(workspace_bin("kvd"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the tender");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let ready = line.starts_with("kvd: ready");
            lines.push(line);
            if ready {
                let _ = tx.send(lines.clone());
            }
        }
        let _ = tx.send(lines);
    });
    let child = KillOnDrop(child);
    let lines = rx.recv_timeout(Duration::from_secs(20)).expect("kvd did not start in time");
    assert!(lines.last().is_some_and(|l| l.starts_with("kvd: ready")), "kvd output: {lines:#?}");
    child
}

/// A real redis-server in a namespace of its own, on 127.0.0.1:6379 there,
/// with one database and no persistence, in its own directory.
fn redis_server(ns: &Netns, dir: &TempDir) -> KillOnDrop {
    let child = ns
        .command("redis-server")
        .args(["--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--databases", "1", "--daemonize", "no", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (Debian package redis-server) runs");
    let child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns.run("redis-cli", &["-h", "127.0.0.1", "ping"]).stdout.trim() != "PONG" {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
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

/// The commands script run by `redis-cli --no-raw` against `host`.
fn run_script(ns: &Netns, host: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT);
    let out = sh(ns, &format!("redis-cli -h {host} --no-raw < {}", script.display()), 60);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    out.stdout
}

/// Lines of `a` and `b` that differ, with the script's command for each.
fn differences(a: &str, b: &str) -> Vec<String> {
    let script = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT))
        .expect("the script");
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut diffs: Vec<String> = (0..a.len().max(b.len()))
        .filter(|&i| a.get(i) != b.get(i))
        .map(|i| format!("line {}: {:?} != {:?}", i + 1, a.get(i), b.get(i)))
        .take(10)
        .collect();
    if !diffs.is_empty() {
        diffs.push(format!("(script has {} commands)", script.lines().count()));
    }
    diffs
}

#[test]
fn every_command_replies_as_redis_server_does() {
    let ns = namespace("kvd-cli");
    let dir = TempDir::new("kvd-cli");
    let _kvd = kvd(&ns, &disk(&dir), &[]);
    let ours = run_script(&ns, GUEST);
    let diffs = differences(EXPECTED, &ours);
    assert!(diffs.is_empty(), "kvd against kvd/commands.out:\n{}", diffs.join("\n"));

    // And against a live redis-server, in a namespace of its own.
    let rns = Netns::new("kvd-redis");
    let rdir = TempDir::new("kvd-redis");
    let _redis = redis_server(&rns, &rdir);
    let theirs = run_script(&rns, "127.0.0.1");
    let diffs = differences(&theirs, &ours);
    assert!(diffs.is_empty(), "kvd against redis-server:\n{}", diffs.join("\n"));
}

/// The tests of the redis-benchmark line, as redis-benchmark names them.
const BENCHMARK_TESTS: &[&str] = &[
    "PING_INLINE",
    "PING_MBULK",
    "SET",
    "GET",
    "INCR",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "SADD",
    "HSET",
    "SPOP",
    "LPUSH (needed to benchmark LRANGE)",
    "LRANGE_100 (first 100 elements)",
    "LRANGE_300 (first 300 elements)",
    "LRANGE_500 (first 500 elements)",
    "LRANGE_600 (first 600 elements)",
    "MSET (10 keys)",
];

#[test]
fn redis_benchmark_completes_every_test_without_an_error() {
    let ns = namespace("kvd-bench");
    let dir = TempDir::new("kvd-bench");
    let _kvd = kvd(&ns, &disk(&dir), &[]);
    let out = sh(
        &ns,
        "redis-benchmark -h 10.0.0.2 \
         -t ping,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,lrange,mset -n 20000 -q",
        240,
    );
    assert_eq!(out.code(), Some(0), "{out:#?}");
    // -q prints progress lines ending in '\r' and one final line per test.
    let text = out.stdout.replace('\r', "\n");
    let finals: Vec<&str> = text.lines().filter(|l| l.contains(" requests per second")).collect();
    for test in BENCHMARK_TESTS {
        assert!(
            finals.iter().any(|l| l.trim_start().starts_with(&format!("{test}: "))),
            "no result for {test}:\n{}",
            finals.join("\n")
        );
    }
    assert_eq!(finals.len(), BENCHMARK_TESTS.len(), "{}", finals.join("\n"));
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(!all.to_lowercase().contains("error") && !all.contains("ERR"), "{all}");
}

fn connect() -> TcpStream {
    let s = TcpStream::connect((GUEST, 6379)).expect("connect to kvd");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `request` and reads until `expected` bytes arrived (or the peer
/// closed); returns what was read and whether the connection was closed.
fn exchange(s: &mut TcpStream, request: &[u8], expected: usize) -> (Vec<u8>, bool) {
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.len() < expected {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading a reply to {:?}: {e}", String::from_utf8_lossy(request)),
        }
    }
    (got, false)
}

/// Whether the peer closes `s` (read returns 0) within a few seconds.
fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0)) || matches!(s.read(&mut buf), Ok(0))
}

#[test]
fn bad_requests_get_error_replies_and_others_are_still_served() {
    let ns = namespace("kvd-proto");
    let dir = TempDir::new("kvd-proto");
    let _kvd = kvd(&ns, &disk(&dir), &[]);
    ns.enter(|| {
        let mut other = connect();
        let ping = |other: &mut TcpStream| {
            assert_eq!(exchange(other, b"PING\r\n", 7).0, b"+PONG\r\n");
        };
        ping(&mut other);

        // Errors that leave the connection open.
        let mut c = connect();
        for (request, reply) in [
            (
                &b"*1\r\n$3\r\nFOO\r\n"[..],
                &b"-ERR unknown command 'FOO', with args beginning with: \r\n"[..],
            ),
            (b"GET\r\n", b"-ERR wrong number of arguments for 'get' command\r\n"),
            (
                b"*3\r\n$3\r\nget\r\n$1\r\na\r\n$1\r\nb\r\n",
                b"-ERR wrong number of arguments for 'get' command\r\n",
            ),
            (b"RPUSH l x\r\n", b":1\r\n"),
            (
                b"GET l\r\n",
                b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (
                b"INCR l\r\n",
                b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ),
            (b"SET k v EX nope\r\n", b"-ERR value is not an integer or out of range\r\n"),
        ] {
            let (got, closed) = exchange(&mut c, request, reply.len());
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(reply),
                "{:?}",
                String::from_utf8_lossy(request)
            );
            assert!(!closed);
        }
        ping(&mut c);

        // Protocol errors: the error reply, then the connection closes, as
        // Redis does. The declared 1 GiB is never allocated.
        for (request, reply) in [
            (&b"*1\r\n$1073741824\r\n"[..], &b"-ERR Protocol error: invalid bulk length\r\n"[..]),
            (b"*2\r\n$3\r\nGET\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
            (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
            (b"*1\r\n:1\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
            (b"SET \"a\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
            (
                b"PING\r\n*1\r\n$1073741824\r\nPING\r\n",
                b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
            ),
        ] {
            let mut c = connect();
            let (got, _) = exchange(&mut c, request, reply.len());
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(reply));
            assert!(closed_by_peer(&mut c), "{:?} closes", String::from_utf8_lossy(request));
            ping(&mut other);
        }

        // An inline line longer than 64 KiB without its end.
        let mut c = connect();
        let (got, _) = exchange(&mut c, &vec![b'x'; 70_000], 10);
        assert!(got.starts_with(b"-ERR Protocol error: too big inline request"));
        ping(&mut other);

        // Garbage of every byte value: whatever it parses to, kvd answers
        // and keeps serving.
        let garbage: Vec<u8> =
            (0..20_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut c = connect();
        let _ = c.write_all(&garbage);
        drop(c);
        ping(&mut other);
    });
}

/// The scheduling policy of thread `tid` of process `pid` (field 41 of
/// its `stat`, after the parenthesised command name).
fn policy(pid: u32, tid: &str) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').expect("comm in stat") + 2..];
    // Field 3 is the first after the name; policy is field 41.
    after.split(' ').nth(41 - 3).expect("policy field").parse().unwrap()
}

#[test]
fn under_sched_batch_every_thread_is_batch_and_clients_are_served() {
    let ns = namespace("kvd-batch");
    let dir = TempDir::new("kvd-batch");
    let kvd = kvd_with(&ns, &disk(&dir), &[], &["--sched", "batch"]);
    let pid = kvd.0.id();
    let tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // The serving thread and the disk's flush thread (started after the
    // policy was set: it inherits it).
    assert!(tids.len() >= 2, "threads: {tids:?}");
    for tid in &tids {
        assert_eq!(policy(pid, tid), libc::SCHED_BATCH as u32, "thread {tid}");
    }
    let out = sh(&ns, "redis-benchmark -h 10.0.0.2 -t set,get -c 50 -n 20000 -r 1000 -q", 120);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let text = out.stdout.replace('\r', "\n");
    let finals = text.lines().filter(|l| l.contains(" requests per second")).count();
    assert_eq!(finals, 2, "{text}");
    ns.enter(|| {
        let mut c = connect();
        let (got, _) = exchange(&mut c, b"GET nabla\r\nSET nabla batch\r\nGET nabla\r\n", 21);
        assert_eq!(got, b"$-1\r\n+OK\r\n$5\r\nbatch\r\n");
    });
}

#[test]
fn pipelined_commands_are_all_answered_in_order() {
    let ns = namespace("kvd-pipe");
    let dir = TempDir::new("kvd-pipe");
    let _kvd = kvd(&ns, &disk(&dir), &[]);
    ns.enter(|| {
        let mut c = connect();
        let mut request = Vec::new();
        let mut expected = Vec::new();
        for i in 1..=5000 {
            request.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n");
            expected.extend_from_slice(format!(":{i}\r\n").as_bytes());
            if i % 1000 == 0 {
                request.extend_from_slice(b"PING\r\n");
                expected.extend_from_slice(b"+PONG\r\n");
            }
        }
        let (got, closed) = exchange(&mut c, &request, expected.len());
        assert!(!closed);
        assert!(got == expected, "replies differ");
        // A value larger than a read, split across many segments.
        let value = "v".repeat(1 << 20);
        let set = format!(
            "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n{value}\r\nSTRLEN big\r\n",
            value.len()
        );
        assert_eq!(exchange(&mut c, set.as_bytes(), 13).0, b"+OK\r\n:1048576\r\n");
    });
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let ns = namespace("kvd-kill");
    let dir = TempDir::new("kvd-kill");
    let disk = disk(&dir);
    let script = "redis-cli -h 10.0.0.2 SET greeting hello >/dev/null && \
                  redis-cli -h 10.0.0.2 RPUSH list a b c >/dev/null && \
                  redis-cli -h 10.0.0.2 HSET hash f v >/dev/null && \
                  redis-cli -h 10.0.0.2 SET temp x EX 1000 >/dev/null && \
                  redis-cli -h 10.0.0.2 INCRBY counter 41 >/dev/null && \
                  redis-cli -h 10.0.0.2 INCR counter";
    for fsync in ["everysec", "always"] {
        let env = format!("KVD_APPENDFSYNC={fsync}");
        let mut guest = kvd(&ns, &disk, &[&env]);
        let out = sh(&ns, &format!("redis-cli -h 10.0.0.2 FLUSHALL && {script}"), 30);
        assert_eq!(out.stdout.lines().last(), Some("42"), "{out:#?}");
        guest.0.kill().expect("kill -9");
        let _ = guest.0.wait();
        drop(guest);

        let _guest = kvd(&ns, &disk, &[&env]);
        let out = sh(
            &ns,
            "redis-cli -h 10.0.0.2 GET greeting; redis-cli -h 10.0.0.2 LRANGE list 0 -1; \
             redis-cli -h 10.0.0.2 HGET hash f; redis-cli -h 10.0.0.2 GET counter; \
             redis-cli -h 10.0.0.2 TTL temp; redis-cli -h 10.0.0.2 DBSIZE",
            30,
        );
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[..6], ["hello", "a", "b", "c", "v", "42"], "{fsync}: {out:#?}");
        let ttl: u64 = lines[6].parse().unwrap_or_else(|_| panic!("{out:#?}"));
        assert!((990..=1000).contains(&ttl), "{ttl}");
        assert_eq!(lines[7], "5", "{fsync}: {out:#?}");
    }
}
