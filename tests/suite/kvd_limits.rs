//! kvd against clients that try to exhaust it, each test in a network
//! namespace of its own with a fresh disk (as `kvd.rs`):
//!
//! * a client that pipelines `GET` of a 4 MiB value 2000 times and never
//!   reads (ten of them at once) holds one reply (kvd pauses its batch
//!   until the replies are sent) or is disconnected when the clients'
//!   budget has no room for it, and kvd serves another client during and
//!   after;
//! * a client that stays over the soft output limit for its time is
//!   disconnected;
//! * clients sending huge values at once are refused (query buffer limit,
//!   budget for client memory), and kvd goes on;
//! * connections beyond `KVD_MAXCLIENTS` are refused with Redis's error,
//!   and kvd goes on;
//! * with `KVD_REQUIREPASS` (from `tender --env-file`), `AUTH` and the
//!   replies before it are Redis 7's, byte for byte, checked against a
//!   `redis-server --requirepass` run now in a namespace of its own.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::netns::{Netns, require_root};
use support::{KillOnDrop, TempDir, tender, workspace_bin};

const GUEST: &str = "10.0.0.2";
const PASSWORD: &str = "s3cret with spaces=and equals";

fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

/// kvd under the tender in `ns`, `--mem 256`, with a fresh disk in `dir`
/// and the variables of `env` in an `--env-file`; returns once it is ready.
fn kvd(ns: &Netns, dir: &TempDir, env: &[&str]) -> KillOnDrop {
    let disk = dir.path().join("kvd.img");
    std::fs::File::create(&disk).and_then(|f| f.set_len(64 << 20)).expect("the disk file");
    let env_file = dir.path().join("kvd.env");
    let mut vars = String::from("NET_SERVICE0_IPV4=10.0.0.2/24\n");
    for v in env {
        vars.push_str(v);
        vars.push('\n');
    }
    std::fs::write(&env_file, vars).expect("the env file");
    let mut child = ns
        .command(tender())
        .args(["--mem", "256", "--net", "service0=tap0", "--env-file"])
        .arg(&env_file)
        .arg("--block")
        .arg(format!("storage={}", disk.display()))
        .arg(workspace_bin("kvd"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the tender");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if line.starts_with("kvd: ready") {
                let _ = tx.send(());
            }
        }
    });
    let child = KillOnDrop(child);
    rx.recv_timeout(Duration::from_secs(20)).expect("kvd did not start in time");
    child
}

/// Asserts that kvd still runs (a crash is exit 255 with the panic on
/// the console).
fn alive(kvd: &mut KillOnDrop) {
    assert_eq!(kvd.0.try_wait().expect("wait"), None, "kvd exited");
}

fn connect() -> TcpStream {
    let s = TcpStream::connect((GUEST, 6379)).expect("connect to kvd");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Reads one reply: a line, and for a bulk string its data.
fn read_reply(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    if line[0] == b'$' {
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2]).unwrap().parse().unwrap();
        if n >= 0 {
            let mut data = vec![0u8; n as usize + 2];
            s.read_exact(&mut data)?;
            line.extend_from_slice(&data);
        }
    }
    Ok(line)
}

/// Sends `args` and returns the reply.
fn call(s: &mut TcpStream, args: &[&[u8]]) -> Vec<u8> {
    s.write_all(&multibulk(args)).expect("send");
    read_reply(s).unwrap_or_else(|e| panic!("reply to {:?}: {e}", String::from_utf8_lossy(args[0])))
}

/// A field of `INFO`.
fn info_field(s: &mut TcpStream, field: &str) -> Option<u64> {
    let info = call(s, &[b"INFO", b"all"]);
    let info = String::from_utf8_lossy(&info).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_owned))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads until the peer closes (EOF or reset); returns the bytes read.
/// Panics if it has not closed within 20 s.
fn until_closed(s: &mut TcpStream) -> usize {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}

/// Waits (at most 20 s) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn clients_that_pipeline_large_replies_and_never_read_hold_one_reply_each() {
    let ns = namespace("kvd-obuf");
    let dir = TempDir::new("kvd-obuf");
    let mut kvd = kvd(&ns, &dir, &[]);
    let attackers = ns.enter(|| {
        let mut other = connect();
        let value = vec![b'v'; 4 << 20];
        assert_eq!(call(&mut other, &[b"SET", b"k", &value]), b"+OK\r\n");
        let gets = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".repeat(2000);
        // Ten clients at once, each asking for 8 GB of replies.
        let attackers: Vec<TcpStream> = (0..10)
            .map(|_| {
                let mut a = connect();
                a.write_all(&gets).expect("send the GETs");
                a
            })
            .collect();
        // Another client is served meanwhile ...
        for _ in 0..20 {
            assert_eq!(call(&mut other, &[b"PING"]), b"+PONG\r\n");
        }
        // ... each attacker holds at most one reply past the batch's
        // 64 KiB (kvd pauses a batch there until its replies are sent),
        // or was disconnected because the clients' budget (an eighth of
        // the heap: 32 MiB with --mem 256) had no room for it; all of
        // them together stay within that budget.
        let one = (4 << 20) + (256 << 10);
        eventually("every attacker holds a reply or is gone", || {
            let connected = info_field(&mut other, "connected_clients").unwrap() - 1;
            let closed =
                info_field(&mut other, "client_output_buffer_limit_disconnections").unwrap();
            let mem = info_field(&mut other, "mem_clients_normal").unwrap();
            assert!(mem <= connected * one + (1 << 20), "{mem} bytes for {connected} clients");
            assert!(mem <= (32 << 20) + (1 << 20), "{mem} bytes: over the budget");
            connected + closed == 10 && mem >= connected * (4 << 20)
        });
        attackers
    });
    alive(&mut kvd);
    ns.enter(move || {
        // ... and once they are gone, their memory is back, the value
        // intact and served.
        drop(attackers);
        let mut other = connect();
        eventually("the attackers' connections closed", || {
            info_field(&mut other, "connected_clients") == Some(1)
        });
        let mut reply = call(&mut other, &[b"GET", b"k"]);
        assert_eq!(reply.len(), (4 << 20) + 12);
        reply.truncate(11);
        assert_eq!(reply, b"$4194304\r\nv");
        assert!(info_field(&mut other, "mem_clients_normal").unwrap() < 1 << 20);
        // A client that reads is served the whole pipeline: 32 replies of
        // 4 MiB, twice the hard output limit (16 MiB), a slice at a time.
        let mut reader = connect();
        reader.write_all(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".repeat(32)).unwrap();
        for i in 0..32 {
            let reply = read_reply(&mut reader).unwrap_or_else(|e| panic!("reply {i}: {e}"));
            assert_eq!(reply.len(), (4 << 20) + 12, "reply {i}");
        }
        assert_eq!(call(&mut reader, &[b"PING"]), b"+PONG\r\n");
    });
    alive(&mut kvd);
}

#[test]
fn a_client_over_the_soft_output_limit_for_its_time_is_disconnected() {
    let ns = namespace("kvd-soft");
    let dir = TempDir::new("kvd-soft");
    let mut kvd = kvd(&ns, &dir, &["KVD_CLIENT_OUTPUT_BUFFER_LIMIT=0 1mb 1"]);
    ns.enter(|| {
        let mut other = connect();
        assert_eq!(
            call(&mut other, &[b"CONFIG", b"GET", b"client-output-buffer-limit"]),
            b"*2\r\n"
        );
        assert_eq!(read_reply(&mut other).unwrap(), b"$26\r\nclient-output-buffer-limit\r\n");
        assert_eq!(
            read_reply(&mut other).unwrap(),
            b"$43\r\nnormal 0 1048576 1 slave 0 0 0 pubsub 0 0 0\r\n"
        );
        assert_eq!(call(&mut other, &[b"SET", b"k", &vec![b'v'; 4 << 20]]), b"+OK\r\n");
        // One GET, never read: about 4 MiB stay pending, under no hard
        // limit but over the soft one.
        let mut slow = connect();
        slow.write_all(b"GET k\r\n").unwrap();
        eventually("the slow reader is disconnected", || {
            info_field(&mut other, "client_output_buffer_limit_disconnections") == Some(1)
        });
        assert!(until_closed(&mut slow) < 4 << 20);
        assert_eq!(call(&mut other, &[b"PING"]), b"+PONG\r\n");
        let _ = slow.shutdown(Shutdown::Both);
    });
    alive(&mut kvd);
}

#[test]
fn clients_streaming_huge_values_at_once_cannot_exhaust_the_heap() {
    let ns = namespace("kvd-qbuf");
    let dir = TempDir::new("kvd-qbuf");
    let mut kvd = kvd(&ns, &dir, &[]);
    ns.enter(|| {
        let mut other = connect();
        // Six clients each send a whole SET of a 56 MiB value at once:
        // more than the heap in all, and a copy of each value to make.
        let senders: Vec<_> = (0..6)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut s = connect();
                    let head = format!("*3\r\n$3\r\nSET\r\n$2\r\nx{i}\r\n${}\r\n", 56 << 20);
                    let chunk = vec![b'x'; 1 << 20];
                    if s.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    for _ in 0..56 {
                        if s.write_all(&chunk).is_err() {
                            return; // refused: reset by kvd
                        }
                    }
                    let _ = s.write_all(b"\r\n");
                    let _ = read_reply(&mut s);
                })
            })
            .collect();
        for t in senders {
            t.join().unwrap();
        }
        assert_eq!(call(&mut other, &[b"PING"]), b"+PONG\r\n");
        assert_eq!(call(&mut other, &[b"SET", b"small", b"v"]), b"+OK\r\n");
        assert!(info_field(&mut other, "client_query_buffer_limit_disconnections").unwrap() >= 1);
        assert!(info_field(&mut other, "mem_clients_normal").unwrap() < 1 << 20);
    });
    alive(&mut kvd);
}

/// Hundreds of connections at once, beyond the heap-derived
/// `KVD_MAXCLIENTS` (244 with `--mem 256`): those past it get Redis's
/// error and are closed; kvd stays up and serves again once they leave.
#[test]
fn connections_beyond_maxclients_are_refused_and_kvd_keeps_serving() {
    let ns = namespace("kvd-maxcl");
    let dir = TempDir::new("kvd-maxcl");
    let mut kvd = kvd(&ns, &dir, &[]);
    ns.enter(|| {
        let mut first = connect();
        let max = info_field(&mut first, "maxclients").expect("INFO maxclients");
        assert!((100..400).contains(&max), "maxclients {max} with --mem 256");
        let mut served = vec![first];
        let mut refused = 0;
        for _ in 0..max + 60 {
            let mut s = connect();
            s.write_all(b"PING\r\n").expect("send PING");
            match read_reply(&mut s).expect("a reply").as_slice() {
                b"+PONG\r\n" => served.push(s),
                b"-ERR max number of clients reached\r\n" => {
                    until_closed(&mut s);
                    refused += 1;
                }
                other => panic!("unexpected reply {:?}", String::from_utf8_lossy(other)),
            }
        }
        assert_eq!(served.len() as u64, max, "connections served at once");
        assert_eq!(refused, 61);
        let mut one = served.pop().unwrap();
        assert_eq!(info_field(&mut one, "rejected_connections"), Some(61));
        drop(served);
        // The slots come back as the idle clients leave.
        eventually("a new client is served after the others left", || {
            let mut s = connect();
            s.write_all(b"PING\r\n").unwrap();
            read_reply(&mut s).map(|r| r == b"+PONG\r\n").unwrap_or(false)
        });
        assert_eq!(call(&mut one, &[b"PING"]), b"+PONG\r\n");
    });
    alive(&mut kvd);
}

/// The exchanges of the AUTH test, on a new connection each: commands and
/// the replies Redis 7 gives with `requirepass` (recorded from
/// redis-server 7.0.15, and compared with a live one in the test).
fn auth_exchanges() -> Vec<(Vec<&'static [u8]>, &'static str)> {
    let pw = PASSWORD.as_bytes();
    vec![
        (vec![b"PING"], "-NOAUTH Authentication required.\r\n"),
        (vec![b"GET", b"k"], "-NOAUTH Authentication required.\r\n"),
        (vec![b"FOO"], "-ERR unknown command 'FOO', with args beginning with: \r\n"),
        (vec![b"GET"], "-ERR wrong number of arguments for 'get' command\r\n"),
        (vec![b"AUTH"], "-ERR wrong number of arguments for 'auth' command\r\n"),
        (vec![b"AUTH", b"a", b"b", b"c"], "-ERR syntax error\r\n"),
        (
            vec![b"AUTH", b"wrong"],
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (
            vec![b"AUTH", b"default", b"wrong"],
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (
            vec![b"AUTH", b"nobody", pw],
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (vec![b"SET", b"k", b"v"], "-NOAUTH Authentication required.\r\n"),
        (vec![b"AUTH", pw], "+OK\r\n"),
        (vec![b"SET", b"k", b"v"], "+OK\r\n"),
        // A failed AUTH keeps the connection authenticated (Redis 6+).
        (
            vec![b"AUTH", b"wrong"],
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (vec![b"GET", b"k"], "$1\r\nv\r\n"),
        (vec![b"AUTH", b"default", pw], "+OK\r\n"),
        (vec![b"DEL", b"k"], ":1\r\n"),
    ]
}

/// Runs the exchanges against `addr`; returns every reply, and what an
/// unauthenticated client gets for a long multibulk and a long bulk.
fn auth_transcript(addr: (&'static str, u16)) -> Vec<String> {
    let connect = || {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    let mut replies = Vec::new();
    let mut s = connect();
    for (args, _) in auth_exchanges() {
        replies.push(String::from_utf8_lossy(&call(&mut s, &args)).into_owned());
    }
    for raw in [&b"*11\r\n"[..], b"*2\r\n$16385\r\n", b"QUIT\r\n"] {
        let mut s = connect();
        s.write_all(raw).unwrap();
        let reply = read_reply(&mut s).map(|r| String::from_utf8_lossy(&r).into_owned());
        let closed = until_closed(&mut s) == 0;
        replies.push(format!("{} closed={closed}", reply.unwrap_or_default()));
    }
    replies
}

#[test]
fn auth_is_required_accepted_and_refused_as_redis_does() {
    let expected: Vec<String> = auth_exchanges()
        .iter()
        .map(|(_, r)| r.to_string())
        .chain([
            "-ERR Protocol error: unauthenticated multibulk length\r\n closed=true".into(),
            "-ERR Protocol error: unauthenticated bulk length\r\n closed=true".into(),
            "+OK\r\n closed=true".into(),
        ])
        .collect();

    // A real redis-server with the same password, in a namespace of its own.
    let rns = Netns::new("kvd-auth-redis");
    let rdir = TempDir::new("kvd-auth-redis");
    let conf = rdir.path().join("redis.conf");
    std::fs::write(&conf, format!("requirepass \"{PASSWORD}\"\n")).unwrap();
    let _redis = KillOnDrop(
        rns.command("redis-server")
            .arg(&conf)
            .args(["--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(rdir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) runs"),
    );
    let redis = rns.enter(|| {
        eventually("redis-server listens", || TcpStream::connect(("127.0.0.1", 6379)).is_ok());
        auth_transcript(("127.0.0.1", 6379))
    });
    assert_eq!(redis, expected, "redis-server's replies changed");

    let ns = namespace("kvd-auth");
    let dir = TempDir::new("kvd-auth");
    let env = format!("KVD_REQUIREPASS={PASSWORD}");
    let mut kvd = kvd(&ns, &dir, &[&env]);
    let got = ns.enter(|| auth_transcript((GUEST, 6379)));
    assert_eq!(got, expected);
    alive(&mut kvd);

    // redis-cli with and without the password.
    let cli = |args: &[&str]| {
        let mut all = vec!["-h", GUEST];
        all.extend_from_slice(args);
        let out = ns.run("redis-cli", &all);
        format!("{}{}", out.stdout, out.stderr).trim().to_string()
    };
    assert_eq!(cli(&["ping"]), "NOAUTH Authentication required.");
    assert_eq!(cli(&["-a", PASSWORD, "--no-auth-warning", "ping"]), "PONG");
    assert_eq!(
        cli(&["--user", "default", "--pass", PASSWORD, "--no-auth-warning", "ping"]),
        "PONG"
    );
    let wrong = cli(&["-a", "wrong", "--no-auth-warning", "ping"]);
    assert!(
        wrong
            .contains("AUTH failed: WRONGPASS invalid username-password pair or user is disabled.")
            && wrong.contains("NOAUTH Authentication required."),
        "{wrong}"
    );
    alive(&mut kvd);
}

/// `n` connections to kvd, `threads` at a time: each sets a key and closes (kvd
/// first, after `QUIT`, or the client), or sends half a command and
/// vanishes (a reset, or a FIN).
fn churn(n: usize, threads: usize) {
    let addr = std::net::SocketAddr::from(([10, 0, 0, 2], 6379));
    support::churn(addr, n, threads, |i, mut s| {
        s.set_nodelay(true).unwrap();
        let value = (i % 16).to_string();
        match i % 4 {
            0 => {
                let mut req = multibulk(&[b"SET", b"churn", value.as_bytes()]);
                req.extend_from_slice(&multibulk(&[b"QUIT"]));
                s.write_all(&req).unwrap();
                assert_eq!(read_reply(&mut s).unwrap(), b"+OK\r\n", "{i}");
                assert_eq!(read_reply(&mut s).unwrap(), b"+OK\r\n", "{i}");
                assert_eq!(until_closed(&mut s), 0, "{i}: bytes after QUIT's reply");
            }
            1 => assert_eq!(call(&mut s, &[b"SET", b"churn", value.as_bytes()]), b"+OK\r\n"),
            2 => {
                s.write_all(b"*3\r\n$3\r\nSET\r\n$5\r\nchu").unwrap();
                support::reset(s);
            }
            _ => s.write_all(b"*3\r\n$3\r\nSET\r\n$5\r\nchu").unwrap(),
        }
    });
}

/// kvd's heap in use (`INFO`'s `used_memory`), asked on a new connection
/// once the connections before have settled ([`support::settled`]; the
/// log is flushed every second too).
fn used_memory() -> u64 {
    support::settled(|| {
        let mut s = connect();
        info_field(&mut s, "used_memory").expect("INFO used_memory")
    })
}

#[test]
fn ten_thousand_connections_leave_the_heap_as_they_found_it() {
    // As httpd's test (httpd_attacks): 10,000 connections that set a key
    // and close, 10,000 that vanish mid-command; the first 2,000 bring the
    // heap to its steady state.
    let ns = namespace("churn-kvd");
    let dir = TempDir::new("kvd-churn");
    let mut guest = kvd(&ns, &dir, &[]);
    ns.enter(|| {
        churn(2000, 32);
        let before = used_memory();
        let start = Instant::now();
        churn(20_000, 16);
        println!("20,000 connections in {:?}", start.elapsed());
        let after = used_memory();
        println!("used_memory: {before} B before, {after} B after");
        assert!(
            after <= before + 32 * 1024,
            "used_memory grew from {before} B to {after} B over 20,000 connections"
        );
    });
    alive(&mut guest);
}
