//! kvd's protocol and engine (the `kv` library), in two modes chosen by
//! the input's first byte (its top bit).
//!
//! **One stream** (top bit clear): the incremental RESP2 parser fed in
//! arbitrary pieces, as a connection reads them, and every command it
//! yields executed by the engine, as `examples/kvd/src/main.rs` does. What
//! the engine logs for persistence is replayed into a second engine, as kvd
//! does at start from its append-only file: replay must accept everything
//! the engine logged. The low bits set the size of the pieces; the clock
//! advances one millisecond per command.
//!
//! **Many connections** (top bit set): up to eight clients (`kv::client`,
//! the same code as the guest's connection tasks) share one engine with
//! small limits (output hard and soft limits, the budget for all clients'
//! buffers, the query buffer, and a password when bit 6 is set). Records
//! `[op, len, bytes...]` make one client send bytes, read some of its
//! replies (or none: slow and absent readers), let time pass, or
//! disconnect. As in kvd, a client's input is read only once its replies
//! are sent. After every step the target checks the limits: no client
//! holds more output than its hard limit, the running count of client
//! memory equals the sum over clients, a client over the soft limit for
//! longer than its time is closed at its next check.

#![no_main]

use kv::auth::Password;
use kv::client::{Client, Close, FLOOR};
use kv::commands::{Config, Engine, OutputLimit};
use kv::{Out, Parser, reply};
use libfuzzer_sys::fuzz_target;

const START_MS: u64 = 1_700_000_000_000;
/// A small query buffer limit, so that the limit is reached too.
const LIMIT: usize = 64 * 1024;
/// The many-connections mode's limits.
const HARD: u64 = 48 * 1024;
const SOFT: u64 = 8 * 1024;
const SOFT_MS: u64 = 100;
const BUDGET: u64 = 160 * 1024;
/// Bytes a client's socket holds for it (kvd reads them once its replies
/// are sent; what a client sends beyond is not accepted, as a full TCP
/// window would refuse it).
const SOCKET: usize = 32 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    if mode & 0x80 == 0 {
        one_stream(usize::from(mode).max(1), data);
    } else {
        many_connections(mode & 0x40 != 0, data);
    }
});

fn one_stream(piece: usize, data: &[u8]) {
    let config = Config { query_buffer_limit: LIMIT as u64, ..Config::default() };
    let mut engine = Engine::new(config.clone(), START_MS, 1);
    let mut log: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut parser = Parser::new(LIMIT);
    let mut out = Out::new();
    let mut now = START_MS;
    'conn: for chunk in data.chunks(piece) {
        if parser.feed(chunk).is_err() {
            break;
        }
        loop {
            let cmd = match parser.next_command() {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(e) => {
                    if let Some(msg) = e.message() {
                        reply::error(&mut out, &msg);
                    }
                    break 'conn;
                }
            };
            let argv: Vec<&[u8]> = cmd.args().collect();
            now += 1;
            engine.set_time(now);
            let effect = engine.execute(&argv, &mut out);
            log.extend(engine.take_log());
            if effect.log_argv {
                log.push(argv.iter().map(|a| a.to_vec()).collect());
            }
            if effect.close {
                break 'conn;
            }
            // Replies are sent after each batch; keep memory bounded.
            out.clear(4096);
        }
    }

    let mut replica = Engine::new(config, now, 1);
    replica.begin_loading();
    for argv in &log {
        let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        if let Err(e) = replica.replay(&argv) {
            panic!("replay of {:?} failed: {:?}", show(&argv), String::from_utf8_lossy(&e));
        }
    }
    replica.end_loading();
}

/// One connection of the many-connections mode.
struct Conn {
    client: Client,
    /// Bytes sent by the peer, not yet read by kvd.
    socket: Vec<u8>,
    /// Closed after its replies (`QUIT`, a protocol error).
    closing: bool,
}

fn many_connections(password: bool, data: &[u8]) {
    let config = Config {
        query_buffer_limit: 32 * 1024,
        output_limit: OutputLimit { hard: HARD, soft: SOFT, soft_ms: SOFT_MS },
        maxmemory_clients: BUDGET,
        requirepass: if password { Password::new(b"pw") } else { None },
        ..Config::default()
    };
    let mut engine = Engine::new(config, START_MS, 1);
    let mut now = START_MS;
    let mut conns: Vec<Option<Conn>> = (0..8).map(|_| None).collect();
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let k = usize::from(op & 7);
        let len = usize::from(*len);
        match (op >> 3) & 3 {
            // The peer sends `len` bytes (connecting first if need be).
            0 => {
                let n = len.min(tail.len());
                let bytes = &tail[..n];
                rest = &tail[n..];
                let conn = conns[k].get_or_insert_with(|| Conn {
                    client: Client::new(&mut engine),
                    socket: Vec::new(),
                    closing: false,
                });
                let room = SOCKET - conn.socket.len();
                conn.socket.extend_from_slice(&bytes[..n.min(room)]);
            }
            // The peer reads `len * 256` bytes of its replies (0: none).
            1 => {
                rest = tail;
                if let Some(conn) = &mut conns[k] {
                    let n = (len * 256).min(conn.client.out.len());
                    if conn.client.sent(n, &mut engine, now) {
                        close(&mut conns[k], &mut engine);
                    }
                }
            }
            // Time passes: each connection waiting to send checks its soft
            // limit at its deadline, as kvd's write timeout does.
            2 => {
                rest = tail;
                now += len as u64 * 4;
                for slot in &mut conns {
                    let due = slot.as_ref().and_then(|c| c.client.soft_deadline(&engine));
                    if due.is_some_and(|d| d <= now)
                        && let Some(conn) = slot
                        && conn.client.over_soft_limit(&mut engine, now)
                    {
                        close(slot, &mut engine);
                    }
                }
            }
            // The peer disconnects.
            _ => {
                rest = tail;
                close(&mut conns[k], &mut engine);
            }
        }
        engine.set_time(now);
        // kvd's turn: each connection whose replies are all sent reads.
        for slot in &mut conns {
            if let Some(conn) = slot
                && turn(conn, &mut engine, now)
            {
                close(slot, &mut engine);
            }
        }
        check(&conns, &engine);
    }
    for slot in &mut conns {
        close(slot, &mut engine);
    }
    assert_eq!(engine.stats.client_memory, 0, "client memory counted after every close");
}

/// One connection's turn, as `serve` in kvd's main: if its replies are
/// sent, read what its socket holds (unless its last batch paused) and
/// execute it. Returns whether the
/// connection is to be closed.
fn turn(conn: &mut Conn, engine: &mut Engine, now: u64) -> bool {
    if !conn.client.out.is_empty() {
        return false;
    }
    if conn.closing {
        return true;
    }
    // A paused batch goes on with what was received, reading nothing.
    if !conn.client.paused() {
        if conn.socket.is_empty() {
            return false;
        }
        let room = match conn.client.read_buffer(engine) {
            Ok(room) => room,
            Err(_) => return true,
        };
        let n = room.len().min(conn.socket.len());
        room[..n].copy_from_slice(&conn.socket[..n]);
        conn.socket.drain(..n);
        conn.client.received(n, engine);
    }
    let (close, _) = conn.client.execute_batch(engine, &mut |e, _| {
        let _ = e.take_log();
        true
    });
    match close {
        Some(Close::OutputLimit) => {
            assert!(conn.client.out.is_empty(), "replies dropped when over the output limit");
            true
        }
        Some(Close::QueryLimit) => true,
        Some(Close::AfterReplies) => {
            conn.closing = true;
            conn.client.over_soft_limit(engine, now)
        }
        None => conn.client.over_soft_limit(engine, now),
    }
}

fn close(slot: &mut Option<Conn>, engine: &mut Engine) {
    if let Some(mut conn) = slot.take() {
        conn.client.release(&mut engine.stats);
    }
}

/// The limits hold.
fn check(conns: &[Option<Conn>], engine: &Engine) {
    let mut sum = 0u64;
    for conn in conns.iter().flatten() {
        let c = &conn.client;
        assert!(c.out.len() as u64 <= HARD, "output over the hard limit: {}", c.out.len());
        assert!(!c.out.overflowed(), "an overflowed buffer is never kept");
        // Within the hard limit or the floor (a buffer doubles at most to
        // its limit), and the input within its limit and the floor.
        assert!(c.out.capacity() as u64 <= HARD.max(FLOOR as u64));
        assert!(c.parser.memory() <= 32 * 1024 + FLOOR + 4096 + 1024 * 16);
        sum += c.memory() as u64;
    }
    assert_eq!(engine.stats.client_memory, sum, "the running count is the sum over clients");
}

fn show(argv: &[&[u8]]) -> Vec<String> {
    argv.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}
