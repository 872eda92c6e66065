//! The engine, command family by command family, with exact replies; the
//! log each command produces, and that replaying it rebuilds the dataset.

use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::resp::split_args;

/// 2001-09-09T01:46:40Z, in ms.
const T0: u64 = 1_000_000_000_000;

fn engine() -> Engine {
    Engine::new(Config::default(), T0, 7)
}

fn argv_of(cmd: &str) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut ranges = Vec::new();
    split_args(cmd.as_bytes(), &mut buf, &mut ranges).expect("balanced quotes");
    ranges.into_iter().map(|r| buf[r].to_vec()).collect()
}

/// Runs an inline-style command; returns the raw RESP reply.
fn run(e: &mut Engine, cmd: &str) -> String {
    let argv = argv_of(cmd);
    let refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let mut out = Out::new();
    e.execute(&refs, &mut out);
    String::from_utf8(out.into_vec()).expect("utf-8 reply")
}

/// Runs a command and returns what it logs: the rewritten entries, then
/// its argv if it is logged as received.
fn logged(e: &mut Engine, cmd: &str) -> Vec<String> {
    let argv = argv_of(cmd);
    let refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let mut out = Out::new();
    let effect = e.execute(&refs, &mut out);
    let mut entries: Vec<Vec<Vec<u8>>> = e.take_log();
    if effect.log_argv {
        entries.push(argv);
    }
    entries
        .iter()
        .map(|a| {
            a.iter().map(|x| String::from_utf8_lossy(x).into_owned()).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

#[track_caller]
fn check(e: &mut Engine, cmd: &str, expected: &str) {
    assert_eq!(run(e, cmd), expected, "{cmd}");
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const NOT_INT: &str = "-ERR value is not an integer or out of range\r\n";
const SYNTAX: &str = "-ERR syntax error\r\n";

#[test]
fn errors_for_unknown_commands_and_arity() {
    let mut e = engine();
    check(&mut e, "foo", "-ERR unknown command 'foo', with args beginning with: \r\n");
    check(
        &mut e,
        "foo a \"b c\"",
        "-ERR unknown command 'foo', with args beginning with: 'a' 'b c' \r\n",
    );
    // CR LF in a quoted argument become spaces; long arguments are cut.
    check(
        &mut e,
        "x \"a\\r\\nb\"",
        "-ERR unknown command 'x', with args beginning with: 'a  b' \r\n",
    );
    let long = "a".repeat(300);
    let reply = run(&mut e, &alloc::format!("x {long} b"));
    assert!(reply.len() < 200, "{reply}");
    check(&mut e, "GET", "-ERR wrong number of arguments for 'get' command\r\n");
    check(&mut e, "get a b", "-ERR wrong number of arguments for 'get' command\r\n");
    check(&mut e, "PING a b", "-ERR wrong number of arguments for 'ping' command\r\n");
    check(&mut e, "CONFIG GET", "-ERR wrong number of arguments for 'config|get' command\r\n");
    check(&mut e, "CONFIG x", "-ERR unknown subcommand 'x'. Try CONFIG HELP.\r\n");
}

#[test]
fn strings() {
    let mut e = engine();
    check(&mut e, "GET k", "$-1\r\n");
    check(&mut e, "SET k v", "+OK\r\n");
    check(&mut e, "GET k", "$1\r\nv\r\n");
    check(&mut e, "SET k v2 NX", "$-1\r\n");
    check(&mut e, "SET k v2 XX", "+OK\r\n");
    check(&mut e, "SET n v XX", "$-1\r\n");
    check(&mut e, "SET k v3 GET", "$2\r\nv2\r\n");
    check(&mut e, "SET k v NX XX", SYNTAX);
    check(&mut e, "SET k v EX 1 PX 1", SYNTAX);
    check(&mut e, "SET k v EX", SYNTAX);
    check(&mut e, "SET k v EX 0", "-ERR invalid expire time in 'set' command\r\n");
    check(&mut e, "SET k v EX x", NOT_INT);
    check(&mut e, "GETSET k new", "$2\r\nv3\r\n");
    check(&mut e, "GETSET missing new", "$-1\r\n");
    check(&mut e, "APPEND k 123", ":6\r\n");
    check(&mut e, "STRLEN k", ":6\r\n");
    check(&mut e, "STRLEN nope", ":0\r\n");
    check(&mut e, "MSET a 1 b 2", "+OK\r\n");
    check(&mut e, "MSET a 1 b", "-ERR wrong number of arguments for 'mset' command\r\n");
    check(&mut e, "RPUSH l x", ":1\r\n");
    check(&mut e, "MGET a b l nope", "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n$-1\r\n");
    check(&mut e, "GET l", WRONGTYPE);
    check(&mut e, "SET l v GET", WRONGTYPE);
    check(&mut e, "APPEND l v", WRONGTYPE);
}

#[test]
fn counters() {
    let mut e = engine();
    check(&mut e, "INCR c", ":1\r\n");
    check(&mut e, "INCRBY c 10", ":11\r\n");
    check(&mut e, "DECR c", ":10\r\n");
    check(&mut e, "DECRBY c 20", ":-10\r\n");
    check(&mut e, "INCRBY c 1.5", NOT_INT);
    check(&mut e, "SET c 9223372036854775807", "+OK\r\n");
    check(&mut e, "INCR c", "-ERR increment or decrement would overflow\r\n");
    check(&mut e, "DECRBY c -9223372036854775808", "-ERR decrement would overflow\r\n");
    check(&mut e, "SET s \" 1\"", "+OK\r\n");
    check(&mut e, "INCR s", NOT_INT);
    check(&mut e, "SADD set a", ":1\r\n");
    check(&mut e, "INCR set", WRONGTYPE);
    // INCR keeps the expiry.
    check(&mut e, "SET t 1 EX 100", "+OK\r\n");
    check(&mut e, "INCR t", ":2\r\n");
    check(&mut e, "TTL t", ":100\r\n");
}

#[test]
fn expiry_follows_the_clock_passed_in() {
    let mut e = engine();
    check(&mut e, "SET k v PX 1500", "+OK\r\n");
    check(&mut e, "PTTL k", ":1500\r\n");
    check(&mut e, "TTL k", ":2\r\n");
    e.set_time(T0 + 1499);
    check(&mut e, "GET k", "$1\r\nv\r\n");
    e.set_time(T0 + 1500);
    check(&mut e, "GET k", "$-1\r\n");
    check(&mut e, "TTL k", ":-2\r\n");
    check(&mut e, "SET p v", "+OK\r\n");
    check(&mut e, "TTL p", ":-1\r\n");
    check(&mut e, "EXPIRE p 10", ":1\r\n");
    check(&mut e, "EXPIRE p 20 NX", ":0\r\n");
    check(&mut e, "EXPIRE p 5 GT", ":0\r\n");
    check(&mut e, "EXPIRE p 50 GT", ":1\r\n");
    check(&mut e, "EXPIRE p 60 LT", ":0\r\n");
    check(&mut e, "TTL p", ":50\r\n");
    check(&mut e, "PERSIST p", ":1\r\n");
    check(&mut e, "PERSIST p", ":0\r\n");
    check(&mut e, "EXPIRE p 5 GT", ":0\r\n");
    check(&mut e, "EXPIRE p 5 XX", ":0\r\n");
    check(
        &mut e,
        "EXPIRE p 10 NX XX",
        "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
    );
    check(
        &mut e,
        "EXPIRE p 10 GT LT",
        "-ERR GT and LT options at the same time are not compatible\r\n",
    );
    check(&mut e, "EXPIRE p 10 foo", "-ERR Unsupported option foo\r\n");
    check(
        &mut e,
        "EXPIRE p 9223372036854775807",
        "-ERR invalid expire time in 'expire' command\r\n",
    );
    check(&mut e, "PEXPIREAT p 1", ":1\r\n");
    check(&mut e, "EXISTS p", ":0\r\n");
    check(&mut e, "SET q v EXAT 2000000000", "+OK\r\n");
    check(&mut e, "TTL q", &alloc::format!(":{}\r\n", 2_000_000_000 - (T0 + 1500) / 1000));
    check(&mut e, "SET q v2 KEEPTTL", "+OK\r\n");
    check(&mut e, "PERSIST q", ":1\r\n");
    // Active expiry removes keys nobody touches.
    check(&mut e, "SET a v PX 10", "+OK\r\n");
    e.set_time(T0 + 2000);
    assert_eq!(e.expire_cycle(100), 1);
    check(&mut e, "DBSIZE", ":1\r\n");
}

#[test]
fn keys_type_scan() {
    let mut e = engine();
    check(&mut e, "MSET key:1 a key:2 b other c", "+OK\r\n");
    check(&mut e, "TYPE key:1", "+string\r\n");
    check(&mut e, "TYPE nope", "+none\r\n");
    check(&mut e, "KEYS other", "*1\r\n$5\r\nother\r\n");
    check(&mut e, "KEYS k?y:[2]", "*1\r\n$5\r\nkey:2\r\n");
    assert!(run(&mut e, "KEYS *").starts_with("*3\r\n"));
    check(&mut e, "EXISTS key:1 key:1 nope", ":2\r\n");
    check(&mut e, "DEL key:1 nope", ":1\r\n");
    check(&mut e, "DBSIZE", ":2\r\n");
    check(&mut e, "SCAN 0 MATCH other COUNT 100", "*2\r\n$1\r\n0\r\n*1\r\n$5\r\nother\r\n");
    check(&mut e, "SCAN 0 TYPE list COUNT 100", "*2\r\n$1\r\n0\r\n*0\r\n");
    check(&mut e, "SCAN x", "-ERR invalid cursor\r\n");
    check(&mut e, "SCAN 0 COUNT 0", SYNTAX);
    check(&mut e, "SCAN 0 MATCH", SYNTAX);
    // A full scan in steps of one visits every key once.
    for i in 0..50 {
        run(&mut e, &alloc::format!("SET s{i} v"));
    }
    let mut cursor = String::from("0");
    let mut seen = alloc::collections::BTreeSet::new();
    loop {
        let reply = run(&mut e, &alloc::format!("SCAN {cursor} COUNT 1"));
        let lines: Vec<&str> = reply.split("\r\n").collect();
        cursor = lines[2].into();
        for k in lines[4..].iter().skip(1).step_by(2) {
            assert!(seen.insert(String::from(*k)), "{k} twice");
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 52);
    check(&mut e, "FLUSHDB FOO", SYNTAX);
    check(&mut e, "FLUSHALL ASYNC", "+OK\r\n");
    check(&mut e, "DBSIZE", ":0\r\n");
}

#[test]
fn lists() {
    let mut e = engine();
    check(&mut e, "LPUSH l a b c", ":3\r\n");
    check(&mut e, "RPUSH l d", ":4\r\n");
    check(&mut e, "LRANGE l 0 -1", "*4\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nd\r\n");
    check(&mut e, "LRANGE l -2 100", "*2\r\n$1\r\na\r\n$1\r\nd\r\n");
    check(&mut e, "LRANGE l 3 1", "*0\r\n");
    check(&mut e, "LRANGE l x 1", NOT_INT);
    check(&mut e, "LLEN l", ":4\r\n");
    check(&mut e, "LINDEX l -1", "$1\r\nd\r\n");
    check(&mut e, "LINDEX l 9", "$-1\r\n");
    check(&mut e, "LINDEX nope x", "$-1\r\n");
    check(&mut e, "LINDEX l x", NOT_INT);
    check(&mut e, "LPOP l", "$1\r\nc\r\n");
    check(&mut e, "RPOP l 2", "*2\r\n$1\r\nd\r\n$1\r\na\r\n");
    check(&mut e, "LPOP l 0", "*0\r\n");
    check(&mut e, "LPOP l -1", "-ERR value is out of range, must be positive\r\n");
    check(&mut e, "LPOP l 1 2", "-ERR wrong number of arguments for 'lpop' command\r\n");
    check(&mut e, "RPOP l", "$1\r\nb\r\n");
    check(&mut e, "EXISTS l", ":0\r\n");
    check(&mut e, "RPOP l", "$-1\r\n");
    check(&mut e, "RPOP l 3", "*-1\r\n");
    check(&mut e, "SET s v", "+OK\r\n");
    for cmd in ["LPUSH s x", "RPUSH s x", "LPOP s", "LRANGE s 0 1", "LLEN s", "LINDEX s 0"] {
        check(&mut e, cmd, WRONGTYPE);
    }
}

#[test]
fn hashes() {
    let mut e = engine();
    check(&mut e, "HSET h f1 v1 f2 v2", ":2\r\n");
    check(&mut e, "HSET h f1 x f3 v3", ":1\r\n");
    check(&mut e, "HSET h f1", "-ERR wrong number of arguments for 'hset' command\r\n");
    check(&mut e, "HGET h f1", "$1\r\nx\r\n");
    check(&mut e, "HGET h nope", "$-1\r\n");
    check(
        &mut e,
        "HGETALL h",
        "*6\r\n$2\r\nf1\r\n$1\r\nx\r\n$2\r\nf2\r\n$2\r\nv2\r\n$2\r\nf3\r\n$2\r\nv3\r\n",
    );
    check(&mut e, "HLEN h", ":3\r\n");
    check(&mut e, "HEXISTS h f2", ":1\r\n");
    check(&mut e, "HDEL h f2 nope", ":1\r\n");
    // Order of the rest is kept, as in Redis's small hashes.
    check(&mut e, "HKEYS h", "*2\r\n$2\r\nf1\r\n$2\r\nf3\r\n");
    check(&mut e, "HVALS h", "*2\r\n$1\r\nx\r\n$2\r\nv3\r\n");
    check(&mut e, "HMGET h f1 no", "*2\r\n$1\r\nx\r\n$-1\r\n");
    check(&mut e, "HMSET h a 1", "+OK\r\n");
    check(&mut e, "HINCRBY h a 5", ":6\r\n");
    check(&mut e, "HINCRBY h f1 1", "-ERR hash value is not an integer\r\n");
    check(&mut e, "HINCRBY h a x", NOT_INT);
    check(&mut e, "HINCRBY new n -3", ":-3\r\n");
    check(&mut e, "HSET h m 9223372036854775807", ":1\r\n");
    check(&mut e, "HINCRBY h m 1", "-ERR increment or decrement would overflow\r\n");
    check(&mut e, "HDEL h f1 f3 a m", ":4\r\n");
    check(&mut e, "EXISTS h", ":0\r\n");
    check(&mut e, "HGETALL h", "*0\r\n");
    check(&mut e, "SET s v", "+OK\r\n");
    for cmd in ["HSET s f v", "HGET s f", "HGETALL s", "HDEL s f", "HLEN s", "HINCRBY s f 1"] {
        check(&mut e, cmd, WRONGTYPE);
    }
}

#[test]
fn sets() {
    let mut e = engine();
    check(&mut e, "SADD s 3 1 2", ":3\r\n");
    check(&mut e, "SADD s 2 10", ":1\r\n");
    // Integers list in numeric order, as Redis's intsets.
    check(&mut e, "SMEMBERS s", "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$2\r\n10\r\n");
    check(&mut e, "SCARD s", ":4\r\n");
    check(&mut e, "SISMEMBER s 1", ":1\r\n");
    check(&mut e, "SISMEMBER s 9", ":0\r\n");
    check(&mut e, "SREM s 1 9", ":1\r\n");
    check(&mut e, "SADD w b a", ":2\r\n");
    check(&mut e, "SMEMBERS w", "*2\r\n$1\r\nb\r\n$1\r\na\r\n");
    check(&mut e, "SPOP nope", "$-1\r\n");
    check(&mut e, "SPOP nope 2", "*0\r\n");
    check(&mut e, "SPOP s 0", "*0\r\n");
    check(&mut e, "SPOP s -1", "-ERR value is out of range, must be positive\r\n");
    check(&mut e, "SPOP s 1 2", SYNTAX);
    let popped = run(&mut e, "SPOP s 2");
    assert!(popped.starts_with("*2\r\n"), "{popped}");
    check(&mut e, "SCARD s", ":1\r\n");
    assert!(run(&mut e, "SPOP s").starts_with("$"));
    check(&mut e, "EXISTS s", ":0\r\n");
    check(&mut e, "SET k v", "+OK\r\n");
    for cmd in ["SADD k m", "SREM k m", "SMEMBERS k", "SISMEMBER k m", "SCARD k", "SPOP k"] {
        check(&mut e, cmd, WRONGTYPE);
    }
}

#[test]
fn server_commands() {
    let mut e = engine();
    check(&mut e, "PING", "+PONG\r\n");
    check(&mut e, "PING hi", "$2\r\nhi\r\n");
    check(&mut e, "ECHO \"a b\"", "$3\r\na b\r\n");
    check(&mut e, "SELECT 0", "+OK\r\n");
    check(&mut e, "SELECT 1", "-ERR DB index is out of range\r\n");
    check(&mut e, "SELECT x", NOT_INT);
    check(&mut e, "CONFIG GET save", "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    check(&mut e, "CONFIG GET appendonly", "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    check(&mut e, "CONFIG GET nosuch", "*0\r\n");
    assert!(run(&mut e, "CONFIG GET *").starts_with("*"));
    check(
        &mut e,
        "CONFIG SET nosuch 1",
        "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n",
    );
    let count = table::all().len();
    check(&mut e, "COMMAND COUNT", &alloc::format!(":{count}\r\n"));
    assert!(run(&mut e, "COMMAND").starts_with(&alloc::format!("*{count}\r\n*10\r\n")));
    check(&mut e, "COMMAND INFO nosuch", "*1\r\n*-1\r\n");
    assert!(run(&mut e, "COMMAND INFO get").starts_with(
        "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n"
    ));
    assert!(
        run(&mut e, "COMMAND DOCS get").starts_with("*2\r\n$3\r\nget\r\n*6\r\n$7\r\nsummary\r\n")
    );
    let mut out = Out::new();
    let effect = e.execute(&[b"QUIT"], &mut out);
    assert_eq!((out.as_slice(), effect.close), (&b"+OK\r\n"[..], true));
}

#[test]
fn info_has_the_sections_clients_read() {
    let mut e = engine();
    run(&mut e, "SET a b EX 100");
    let reply = run(&mut e, "INFO");
    for field in [
        "# Server\r\nredis_version:7.0.15\r\n",
        "redis_mode:standalone",
        "tcp_port:6379",
        "# Clients\r\nconnected_clients:0",
        "# Memory\r\nused_memory:",
        "# Persistence\r\nloading:0",
        "aof_enabled:0",
        "# Stats\r\ntotal_connections_received:0",
        "# Replication\r\nrole:master",
        "# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=0\r\n",
    ] {
        assert!(reply.contains(field), "{field} in {reply}");
    }
    let server = run(&mut e, "INFO server");
    assert!(server.contains("redis_version") && !server.contains("# Clients"));
    let two = run(&mut e, "INFO CLIENTS keyspace");
    assert!(two.contains("# Clients\r\n") && two.contains("\r\n\r\n# Keyspace\r\n"), "{two}");
    check(&mut e, "INFO nosuch", "$0\r\n\r\n");
}

#[test]
fn writes_are_refused_when_the_log_fails_or_memory_is_full() {
    let mut e = engine();
    e.write_error = Some("disk error".into());
    check(&mut e, "SET a b", "-MISCONF Errors writing to the AOF file: disk error\r\n");
    check(&mut e, "GET a", "$-1\r\n");
    e.write_error = None;
    e.config.maxmemory = 10;
    e.set_memory_probe(|| (100, 1000));
    check(&mut e, "SET a b", "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
    check(&mut e, "DEL a", ":0\r\n");
}

#[test]
fn what_each_write_logs() {
    let mut e = engine();
    assert_eq!(logged(&mut e, "GET a"), Vec::<String>::new());
    assert_eq!(logged(&mut e, "SET a 1"), ["SET a 1"]);
    assert_eq!(logged(&mut e, "SET a 2 NX"), Vec::<String>::new());
    assert_eq!(logged(&mut e, "SET a 2 XX GET"), ["SET a 2"]);
    let at = T0 + 10_000;
    assert_eq!(logged(&mut e, "SET b 1 EX 10"), [alloc::format!("SET b 1 PXAT {at}")]);
    assert_eq!(logged(&mut e, "SET b 2 KEEPTTL"), ["SET b 2 KEEPTTL"]);
    assert_eq!(logged(&mut e, "EXPIRE a 10"), [alloc::format!("PEXPIREAT a {at}")]);
    assert_eq!(logged(&mut e, "EXPIRE a -1"), ["DEL a"]);
    assert_eq!(logged(&mut e, "EXPIRE a 10"), Vec::<String>::new());
    assert_eq!(logged(&mut e, "GETSET c x"), ["SET c x"]);
    assert_eq!(logged(&mut e, "INCR n"), ["INCR n"]);
    assert_eq!(logged(&mut e, "INCR c"), Vec::<String>::new(), "an error changes nothing");
    assert_eq!(logged(&mut e, "DEL nope"), Vec::<String>::new());
    assert_eq!(logged(&mut e, "SADD s x"), ["SADD s x"]);
    assert_eq!(logged(&mut e, "SPOP s"), ["SREM s x"]);
    assert_eq!(logged(&mut e, "LPOP nope"), Vec::<String>::new());
    // An expiry noticed by a command is logged before it.
    e.set_time(T0 + 20_000);
    assert_eq!(logged(&mut e, "APPEND b x"), ["DEL b", "APPEND b x"]);
    assert!(e.stats.dirty > 0);
}

/// Runs `script`, logging as the server would, then replays the log into a
/// fresh engine later in time and compares the datasets.
#[test]
fn replaying_the_log_rebuilds_the_dataset() {
    let mut e = engine();
    let mut log: Vec<Vec<Vec<u8>>> = Vec::new();
    let script = [
        "SET a 1",
        "SET b 1 PX 5000",
        "INCR b",
        "RPUSH l x y z",
        "LPOP l",
        "HSET h f 1",
        "HINCRBY h f 5",
        "SADD s 1 2 3 4",
        "SPOP s 2",
        "EXPIRE a 100",
        "SET gone v PX 1000",
        "MSET m1 a m2 b",
        "DEL m1",
        "@advance 2000",
        "APPEND gone new",
        "@advance 4000",
        "GET b",
        "SET c v EX 1",
    ];
    for cmd in script {
        if let Some(ms) = cmd.strip_prefix("@advance ") {
            e.set_time(e.now() + ms.parse::<u64>().unwrap());
            continue;
        }
        let argv = argv_of(cmd);
        let refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let mut out = Out::new();
        let effect = e.execute(&refs, &mut out);
        log.extend(e.take_log());
        if effect.log_argv {
            log.push(argv);
        }
    }
    // Replayed an hour later: nothing expires while loading, so "c" (whose
    // deadline passed meanwhile) is still there until loading ends.
    let mut r = Engine::new(Config::default(), T0 + 3_600_000, 9);
    r.begin_loading();
    for entry in &log {
        let refs: Vec<&[u8]> = entry.iter().map(Vec::as_slice).collect();
        r.replay(&refs).unwrap();
    }
    r.end_loading();
    // Compare at the original time, where both agree on what is alive.
    r.set_time(e.now());
    let dump = |e: &mut Engine| {
        let mut keys: Vec<Vec<u8>> = e.keys.iter().map(|(k, _)| k.to_vec()).collect();
        keys.sort();
        keys.into_iter()
            .map(|k| {
                let key = String::from_utf8(k.clone()).unwrap();
                let t = run(e, &alloc::format!("TYPE {key}"));
                let v = match t.as_str() {
                    "+string\r\n" => run(e, &alloc::format!("GET {key}")),
                    "+list\r\n" => run(e, &alloc::format!("LRANGE {key} 0 -1")),
                    "+hash\r\n" => run(e, &alloc::format!("HGETALL {key}")),
                    _ => run(e, &alloc::format!("SMEMBERS {key}")),
                };
                let ttl = run(e, &alloc::format!("PTTL {key}"));
                (key, v, ttl)
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (dump(&mut e), dump(&mut r));
    assert_eq!(a, b);
    assert!(a.iter().any(|(k, v, _)| k == "gone" && v == "$3\r\nnew\r\n"), "{a:?}");
    assert!(a.iter().all(|(k, _, _)| k != "b"), "b expired before GET b");
}

#[test]
fn the_snapshot_rebuilds_the_dataset() {
    let mut e = engine();
    for cmd in ["SET a 1 EX 100", "RPUSH l x y", "HSET h f v g w", "SADD s m n", "PEXPIRE l 5000"] {
        run(&mut e, cmd);
    }
    for i in 0..200 {
        run(&mut e, &alloc::format!("RPUSH big {i}"));
    }
    let snapshot: Vec<Vec<Vec<u8>>> = e.snapshot().collect();
    assert!(snapshot.iter().filter(|c| c[0] == b"RPUSH" && c[1] == b"big").count() >= 3);
    let mut r = Engine::new(Config::default(), T0, 3);
    r.begin_loading();
    for c in &snapshot {
        let refs: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        r.replay(&refs).unwrap();
    }
    r.end_loading();
    for cmd in
        ["GET a", "PTTL a", "LRANGE l 0 -1", "PTTL l", "HGETALL h", "SMEMBERS s", "LRANGE big 0 -1"]
    {
        assert_eq!(run(&mut r, cmd), run(&mut e, cmd), "{cmd}");
    }
}
