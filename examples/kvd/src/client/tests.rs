//! A client's limits on the host: the output limits (hard, soft over
//! time), the memory budget shared by all clients, the query buffer, and
//! `AUTH` with the parser's limits before it.

use alloc::string::String;
use alloc::vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::commands::{Config, OutputLimit};
use crate::resp::MAX_INLINE;

const T0: u64 = 1_000_000_000_000;

fn engine(config: Config) -> Engine {
    Engine::new(config, T0, 7)
}

/// Feeds `data` to the client as reads would, running a batch after each
/// read and after each paused one (as `serve` does); returns the replies and how the client was closed, if it was.
fn feed(c: &mut Client, e: &mut Engine, mut data: &[u8]) -> (Vec<u8>, Option<Close>) {
    let mut replies = Vec::new();
    while !data.is_empty() || c.paused() {
        if !c.paused() {
            let room = match c.read_buffer(e) {
                Ok(room) => room,
                Err(close) => return (replies, Some(close)),
            };
            let n = room.len().min(data.len()).min(16 * 1024);
            room[..n].copy_from_slice(&data[..n]);
            c.received(n, e);
            data = &data[n..];
        }
        let (close, _) = c.execute_batch(e, &mut |_, _| false);
        replies.extend_from_slice(&c.out);
        let len = c.out.len();
        c.sent(len, e, T0);
        if close.is_some() {
            return (replies, close);
        }
    }
    (replies, None)
}

fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut v = alloc::format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(alloc::format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_pipeline_whose_replies_pass_the_hard_limit_is_served_a_slice_at_a_time() {
    // The attack, scaled down: SET k <256 KiB>, then 2000 GET k
    // pipelined (500 MiB of replies), against a 1 MiB hard limit. Redis
    // would build the replies until the limit and close the client; kvd
    // pauses each batch at BATCH_OUT and answers every GET, never holding
    // more than one reply past it.
    let config = Config {
        output_limit: OutputLimit { hard: 1 << 20, soft: 0, soft_ms: 0 },
        ..Config::default()
    };
    let mut e = engine(config);
    let mut c = Client::new(&mut e);
    let value = vec![b'v'; 256 * 1024];
    let (replies, close) = feed(&mut c, &mut e, &multibulk(&[b"SET", b"k", &value]));
    assert_eq!((text(&replies).as_str(), close), ("+OK\r\n", None));
    let mut gets = Vec::new();
    for _ in 0..2000 {
        gets.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
    let room = c.read_buffer(&mut e).unwrap();
    let n = room.len().min(gets.len());
    room[..n].copy_from_slice(&gets[..n]);
    c.received(n, &mut e);
    let (mut batches, mut answered) = (0, 0);
    loop {
        let (close, _) = c.execute_batch(&mut e, &mut |_, _| false);
        assert_eq!(close, None);
        assert!(c.out.capacity() <= BATCH_OUT + value.len() + 64, "{}", c.out.capacity());
        assert!(e.stats.client_memory <= (1 << 20) + 64 * 1024, "{}", e.stats.client_memory);
        answered += c.out.len() / (value.len() + 11);
        let len = c.out.len();
        c.sent(len, &mut e, T0);
        batches += 1;
        if !c.paused() {
            break;
        }
    }
    // Every GET received was answered, one a batch (each reply is over
    // BATCH_OUT), and nothing more was read meanwhile.
    let one = gets.len() / 2000;
    assert_eq!(answered, n / one);
    // (and one more, empty, when the read ended inside a command).
    assert!((n / one..=n / one + 1).contains(&batches), "{batches}");
    assert_eq!(e.stats.client_output_buffer_limit_disconnections, 0);
    // The rest of the pipeline, as reads deliver it.
    let (replies, close) = feed(&mut c, &mut e, &gets[n..]);
    assert_eq!(close, None);
    assert_eq!(replies.len(), (2000 - n / one) * (value.len() + 11));
    c.release(&mut e.stats);
    assert_eq!(e.stats.client_memory, 0);
}

#[test]
fn small_replies_run_in_one_batch_until_batch_out() {
    let mut e = engine(Config::default());
    let mut c = Client::new(&mut e);
    let cmds = b"*1\r\n$4\r\nPING\r\n".repeat(1000);
    let room = c.read_buffer(&mut e).unwrap();
    room[..cmds.len()].copy_from_slice(&cmds);
    c.received(cmds.len(), &mut e);
    let (close, _) = c.execute_batch(&mut e, &mut |_, _| false);
    // 1000 × 7 bytes: under BATCH_OUT, all in one batch.
    assert_eq!((close, c.out.len(), c.paused()), (None, 7000, false));
}

#[test]
fn one_reply_larger_than_the_limit_is_never_built() {
    let config = Config {
        output_limit: OutputLimit { hard: 64 * 1024, soft: 0, soft_ms: 0 },
        ..Config::default()
    };
    let mut e = engine(config);
    let mut c = Client::new(&mut e);
    let mut cmds = Vec::new();
    for i in 0..100u32 {
        cmds.extend_from_slice(&multibulk(&[b"RPUSH", b"l", &[b'x'; 1000], &i.to_le_bytes()]));
    }
    cmds.extend_from_slice(b"LRANGE l 0 -1\r\n");
    let (replies, close) = feed(&mut c, &mut e, &cmds);
    assert_eq!(close, Some(Close::OutputLimit));
    // The RPUSHes were answered (in earlier batches); the LRANGE was not.
    assert!(text(&replies).ends_with(":100\r\n") || !text(&replies).contains("*200"));
    assert!(c.out.capacity() <= 64 * 1024);
    // KEYS and SCAN are bounded the same way.
    for cmd in [&b"KEYS *\r\n"[..], b"SCAN 0 COUNT 100000\r\n"] {
        let mut e = engine(Config {
            output_limit: OutputLimit { hard: 1024, soft: 0, soft_ms: 0 },
            ..Config::default()
        });
        let mut out = Out::new();
        for i in 0..1000 {
            e.execute(&[b"SET", alloc::format!("key:{i}").as_bytes(), b"v"], &mut out);
        }
        let mut c = Client::new(&mut e);
        let (_, close) = feed(&mut c, &mut e, cmd);
        assert_eq!(close, Some(Close::OutputLimit), "{}", text(cmd));
    }
}

#[test]
fn the_soft_limit_closes_a_client_that_stays_over_it_for_its_time() {
    let config = Config {
        output_limit: OutputLimit { hard: 0, soft: 10_000, soft_ms: 1000 },
        ..Config::default()
    };
    let mut e = engine(config);
    let mut c = Client::new(&mut e);
    feed(&mut c, &mut e, &multibulk(&[b"SET", b"k", &[b'v'; 6000]]));
    // Two GETs: 12 KB pending, over the soft limit.
    let gets = b"GET k\r\nGET k\r\n";
    let room = c.read_buffer(&mut e).unwrap();
    room[..gets.len()].copy_from_slice(gets);
    c.received(gets.len(), &mut e);
    assert_eq!(c.execute_batch(&mut e, &mut |_, _| false).0, None);
    assert_eq!(c.soft_deadline(&e), None);
    // The first check starts the clock; within the time nothing happens.
    assert!(!c.over_soft_limit(&mut e, T0));
    assert_eq!(c.soft_deadline(&e), Some(T0 + 1001));
    assert!(!c.sent(100, &mut e, T0 + 500));
    assert!(!c.sent(0, &mut e, T0 + 1000));
    // Still over it after the time: closed.
    assert!(c.sent(0, &mut e, T0 + 1001));
    assert_eq!(e.stats.client_output_buffer_limit_disconnections, 1);

    // A client that gets under the limit in time stops the clock.
    let mut c = Client::new(&mut e);
    let room = c.read_buffer(&mut e).unwrap();
    room[..gets.len()].copy_from_slice(gets);
    c.received(gets.len(), &mut e);
    c.execute_batch(&mut e, &mut |_, _| false);
    assert!(!c.over_soft_limit(&mut e, T0));
    assert!(!c.sent(3000, &mut e, T0 + 900));
    assert_eq!(c.soft_deadline(&e), None);
    assert!(!c.sent(0, &mut e, T0 + 5000));
    // No soft limit (0): never.
    let mut e = engine(Config::default());
    let mut c = Client::new(&mut e);
    c.out.extend_from_slice(&[0; 100_000]);
    assert!(!c.over_soft_limit(&mut e, T0));
    assert!(!c.over_soft_limit(&mut e, T0 + (1 << 40)));
}

#[test]
fn all_clients_share_one_budget_counted_client_by_client() {
    let budget = 512 * 1024;
    let config = Config { maxmemory_clients: budget, ..Config::default() };
    let mut e = engine(config);
    let mut out = Out::new();
    e.execute(&[b"SET", b"big", &[b'v'; 300 * 1024]], &mut out);
    // A holds a reply of the big value, unsent (it does not read).
    let mut a = Client::new(&mut e);
    let gets = b"GET big\r\n";
    let room = a.read_buffer(&mut e).unwrap();
    room[..gets.len()].copy_from_slice(gets);
    a.received(gets.len(), &mut e);
    assert_eq!(a.execute_batch(&mut e, &mut |_, _| false).0, None);
    assert!(a.out.len() > 300 * 1024);
    assert_eq!(e.stats.client_memory, a.memory() as u64);
    // B may not have what A holds: its GET does not fit and closes it.
    let mut b = Client::new(&mut e);
    assert_eq!(e.stats.client_memory, (a.memory() + b.memory()) as u64);
    let (_, close) = feed(&mut b, &mut e, b"PING\r\nGET big\r\n");
    assert_eq!(close, Some(Close::OutputLimit));
    b.release(&mut e.stats);
    // Once A's replies are sent, there is room again.
    let len = a.out.len();
    a.sent(len, &mut e, T0);
    let mut b = Client::new(&mut e);
    let (replies, close) = feed(&mut b, &mut e, b"GET big\r\n");
    assert_eq!((close, replies.len()), (None, 300 * 1024 + 11));
    b.release(&mut e.stats);
    a.release(&mut e.stats);
    assert_eq!(e.stats.client_memory, 0);
}

static HEAP_IN_USE: AtomicU64 = AtomicU64::new(0);

fn probe() -> (u64, u64) {
    (HEAP_IN_USE.load(Ordering::Relaxed), 64 << 20)
}

#[test]
fn no_buffer_grows_into_the_heaps_reserve() {
    // The heap in use reaches its reserve: a client keeps its floor and no
    // more. (The probe's figure is fixed here; in the guest it includes
    // the client's own buffers, which the allowance adds back.)
    let mut e = engine(Config::default());
    let mut out = Out::new();
    e.execute(&[b"SET", b"k", &vec![b'v'; 3 << 20]], &mut out);
    e.set_memory_probe(probe);
    HEAP_IN_USE.store((64 << 20) - (64 << 20) / HEAP_RESERVE, Ordering::Relaxed);
    let mut c = Client::new(&mut e);
    let (_, close) = feed(&mut c, &mut e, &multibulk(&[b"SET", b"k2", &vec![b'v'; 3 << 20]]));
    assert_eq!(close, Some(Close::QueryLimit));
    assert_eq!(e.stats.client_query_buffer_limit_disconnections, 1);
    assert!(c.parser.memory() <= FLOOR + 4096);
    let mut c = Client::new(&mut e);
    let (_, close) = feed(&mut c, &mut e, b"GET k\r\n");
    assert_eq!(close, Some(Close::OutputLimit));
    let mut c = Client::new(&mut e);
    assert_eq!(
        feed(&mut c, &mut e, b"PING\r\nGET nosuchkey\r\n"),
        (b"+PONG\r\n$-1\r\n".to_vec(), None)
    );
    // With room, the same GET is answered.
    HEAP_IN_USE.store(0, Ordering::Relaxed);
    let mut c = Client::new(&mut e);
    assert_eq!(feed(&mut c, &mut e, b"GET k\r\n").0.len(), (3 << 20) + 12);
}

#[test]
fn the_query_buffer_limit_closes_the_client_without_a_reply() {
    let mut e = engine(Config { query_buffer_limit: 100_000, ..Config::default() });
    let mut c = Client::new(&mut e);
    let (replies, close) = feed(&mut c, &mut e, &multibulk(&[b"SET", b"k", &[b'v'; 200_000]]));
    assert_eq!((replies.len(), close), (0, Some(Close::QueryLimit)));
    // Many small arguments: the argument table counts too.
    let mut c = Client::new(&mut e);
    let mut many = b"*100000\r\n".to_vec();
    for _ in 0..100_000 {
        many.extend_from_slice(b"$1\r\nx\r\n");
    }
    let (_, close) = feed(&mut c, &mut e, &many);
    assert_eq!(close, Some(Close::QueryLimit));
    assert!(c.parser.memory() <= 100_000 + MAX_INLINE);
}

#[test]
fn auth_as_redis_7_with_a_password() {
    let config = Config { requirepass: Password::new(b"s3cret"), ..Config::default() };
    let mut e = engine(config);
    let mut c = Client::new(&mut e);
    let (replies, close) = feed(
        &mut c,
        &mut e,
        b"PING\r\nFOO\r\nGET\r\nAUTH\r\nAUTH a b c\r\nAUTH wrong\r\nAUTH default wrong\r\n\
          AUTH nobody s3cret\r\nGET k\r\nAUTH s3cret\r\nPING\r\nAUTH wrong\r\nPING\r\n",
    );
    assert_eq!(close, None);
    assert_eq!(
        text(&replies),
        "-NOAUTH Authentication required.\r\n\
         -ERR unknown command 'FOO', with args beginning with: \r\n\
         -ERR wrong number of arguments for 'get' command\r\n\
         -ERR wrong number of arguments for 'auth' command\r\n\
         -ERR syntax error\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         -NOAUTH Authentication required.\r\n\
         +OK\r\n+PONG\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n+PONG\r\n"
    );
    let mut c = Client::new(&mut e);
    let (replies, _) = feed(&mut c, &mut e, b"AUTH default s3cret\r\nGET k\r\nQUIT\r\n");
    assert_eq!(text(&replies), "+OK\r\n$-1\r\n+OK\r\n");
}

#[test]
fn before_auth_the_parser_has_redis_limits_for_strangers() {
    let config = Config { requirepass: Password::new(b"s3cret"), ..Config::default() };
    let mut e = engine(config);
    for (input, reply) in [
        (&b"*11\r\n"[..], "-ERR Protocol error: unauthenticated multibulk length\r\n"),
        (b"*2\r\n$16385\r\n", "-ERR Protocol error: unauthenticated bulk length\r\n"),
    ] {
        let mut c = Client::new(&mut e);
        let (replies, close) = feed(&mut c, &mut e, input);
        assert_eq!((text(&replies).as_str(), close), (reply, Some(Close::AfterReplies)));
    }
    for input in [&b"*10\r\n"[..], b"*2\r\n$16384\r\n"] {
        let mut c = Client::new(&mut e);
        assert_eq!(feed(&mut c, &mut e, input), (Vec::new(), None));
    }
    // AUTH in the same read lifts them for what follows.
    let mut c = Client::new(&mut e);
    let mut input = b"AUTH s3cret\r\n".to_vec();
    input.extend_from_slice(&multibulk(&[b"SET", b"k", &[b'v'; 20_000]]));
    let (replies, close) = feed(&mut c, &mut e, &input);
    assert_eq!((text(&replies).as_str(), close), ("+OK\r\n+OK\r\n", None));
    // Without a password, no such limits; AUTH is Redis's error.
    let mut e = engine(Config::default());
    let mut c = Client::new(&mut e);
    let mut input =
        multibulk(&[b"MSET", b"a", b"1", b"b", b"2", b"c", b"3", b"d", b"4", b"e", b"5"]);
    input.extend_from_slice(b"AUTH x\r\nAUTH default x\r\nAUTH other x\r\n");
    let (replies, _) = feed(&mut c, &mut e, &input);
    assert_eq!(
        text(&replies),
        "+OK\r\n-ERR AUTH <password> called without any password configured for the default \
         user. Are you sure your configuration is correct?\r\n+OK\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
}
