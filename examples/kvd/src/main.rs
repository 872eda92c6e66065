//! kvd: a Redis-protocol (RESP2) key-value server as a unikernel.
//!
//! ```text
//! truncate -s 64M kvd.img
//! tender --mem 512 --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 \
//!        --block storage=kvd.img target/release/kvd
//! redis-cli -h 10.0.0.2 set hello world
//! ```
//!
//! Listens on port 6379 (or `$PORT`). Every connection is a task; each
//! turn it parses every complete command it has received (pipelining),
//! executes them against the one engine and sends the replies in one write.
//! Commands that change the dataset are appended to the log on the
//! `storage` disk (`kv::aof`), which is replayed at start: a batch's replies
//! go out once the log holds every write executed before them, the
//! client's own and others' (written, and with `appendfsync always`
//! flushed). The clients whose commands arrived in the same turn share one
//! record and one flush (group commit). A timer task expires keys, flushes
//! the log once a second (`everysec`) and compacts it when it has grown.
//!
//! Environment: `PORT`, `KVD_APPENDFSYNC` (`always`, `everysec` (default),
//! `no`), `KVD_MAXMEMORY` (bytes, or with a `k`/`m`/`g` suffix; default
//! three quarters of the heap), `KVD_MAXCLIENTS` (default 10000).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::time::Duration;

use kv::aof::{Aof, AofError, Fsync};
use kv::commands::{Config, Engine};
use kv::{Parser, reply};
use libos::net::{NetError, TcpListener, TcpOptions, TcpStream};
use libos::time::{Instant, SystemTime, UNIX_EPOCH};
use libos::{block, env, log, println, task};

libos::app!(async main, devices: ["service0": Net, "storage": Block]);

/// Timer period: active expiry and the log's once-a-second flush (Redis's `hz 10`).
const CRON_PERIOD: Duration = Duration::from_millis(100);
/// Keys removed per round of active expiry; rounds repeat within one
/// cron tick while they find that many, for at most `EXPIRE_TIME`.
const EXPIRE_BUDGET: usize = 256;
const EXPIRE_TIME: Duration = Duration::from_millis(5);

/// Why kvd cannot start.
#[derive(Debug)]
enum StartError {
    /// An environment variable is malformed.
    Env(&'static str, &'static str),
    /// The disk is missing (the tender attaches every declared device, so
    /// only a mismatched image could get here).
    NoDisk,
    /// The log cannot be opened.
    Aof(AofError),
    /// The listener cannot be set up.
    Net(NetError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(var, what) => write!(f, "{var}: {what}"),
            Self::NoDisk => f.write_str("no block device `storage` attached"),
            Self::Aof(e) => write!(f, "storage: {e}"),
            Self::Net(e) => write!(f, "listen: {e}"),
        }
    }
}

/// What every connection shares: the engine and the log.
struct Server {
    engine: RefCell<Engine>,
    aof: RefCell<Aof>,
    fsync: Fsync,
    /// Commands appended to the log, and the count at the last commit.
    appended: Cell<u64>,
    committed: Cell<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn memory() -> (u64, u64) {
    let h = libos::heap_stats();
    (h.in_use as u64, h.size as u64)
}

/// `123`, `64k`, `512m`, `2g` (powers of 1024).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' => (&s[..s.len() - 1], 1 << 20),
        b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (&s[..], 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn config() -> Result<(Config, Fsync), StartError> {
    let port = match env::var("PORT").map(str::parse::<u16>) {
        None => 6379,
        Some(Ok(p)) if p != 0 => p,
        Some(_) => return Err(StartError::Env("PORT", "must be a port number, 1-65535")),
    };
    let fsync = match env::var("KVD_APPENDFSYNC") {
        None => Fsync::EverySec,
        Some(s) => s
            .parse()
            .map_err(|_| StartError::Env("KVD_APPENDFSYNC", "must be always, everysec or no"))?,
    };
    let heap = memory().1;
    let maxmemory = match env::var("KVD_MAXMEMORY") {
        None => heap / 4 * 3,
        Some(s) => parse_size(s)
            .ok_or(StartError::Env("KVD_MAXMEMORY", "must be a size in bytes, e.g. 100m"))?,
    };
    let maxclients = match env::var("KVD_MAXCLIENTS").map(str::parse::<u64>) {
        None => 10_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => return Err(StartError::Env("KVD_MAXCLIENTS", "must be a positive number")),
    };
    let config = Config {
        port,
        appendonly: true,
        appendfsync: fsync.as_str(),
        maxmemory,
        maxclients,
        // A quarter of the heap for one client's pending input, 1 MiB at
        // least, Redis's 1 GiB at most.
        query_buffer_limit: (heap / 4).clamp(1 << 20, 1 << 30),
    };
    Ok((config, fsync))
}

async fn main() -> Result<(), StartError> {
    let (config, fsync) = config()?;
    let port = config.port;
    let seed = Instant::now().as_duration().as_nanos() as u64 ^ now_ms().rotate_left(32);
    let mut engine = Engine::new(config, now_ms(), seed);
    engine.set_memory_probe(memory);

    let disk = block::device("storage").ok_or(StartError::NoDisk)?;
    let started = Instant::now();
    engine.begin_loading();
    let mut failed = 0u64;
    let (aof, report) = Aof::open_with(disk, fsync, &mut |cmd| {
        let argv: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
        if let Err(e) = engine.replay(&argv) {
            failed += 1;
            log::warn!("replay: {}: {}", show(&argv), alloc::string::String::from_utf8_lossy(&e));
        }
    })
    .map_err(|e| {
        // The message itself: `main`'s error is printed with `Debug`.
        println!("kvd: storage: {e}");
        StartError::Aof(e)
    })?;
    engine.end_loading();
    println!("kvd: {report}");
    if failed > 0 {
        println!("kvd: {failed} logged commands failed on replay (see the log at warn level)");
    }
    let keys = engine.keys.len();
    let loaded_in = started.elapsed();

    let opts = TcpOptions {
        backlog: 128,
        rx_buffer: 16 * 1024,
        tx_buffer: 32 * 1024,
        nodelay: true,
        ..TcpOptions::default()
    };
    let listener = TcpListener::bind_with(port, opts).map_err(StartError::Net)?;
    let server = Rc::new(Server {
        engine: RefCell::new(engine),
        aof: RefCell::new(aof),
        fsync,
        appended: Cell::new(0),
        committed: Cell::new(0),
    });
    task::spawn(cron(server.clone()));
    libos::net::wait_configured().await;
    for i in libos::net::interfaces() {
        if let Some((addr, prefix)) = i.ipv4 {
            println!(
                "kvd: ready on {addr}:{port} ({}/{prefix}): {keys} keys loaded in {} ms, \
                 appendfsync {fsync}",
                i.name,
                loaded_in.as_millis()
            );
        }
    }
    loop {
        let (stream, peer) = listener.accept().await.map_err(StartError::Net)?;
        let server = server.clone();
        task::spawn(async move {
            if let Err(e) = serve(&server, stream).await {
                log::debug!("{peer}: {e}");
            }
            server.engine.borrow_mut().stats.connected_clients -= 1;
        });
    }
}

/// A command for a log message: its arguments, lossily, at most 200 bytes.
fn show(argv: &[&[u8]]) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    for a in argv {
        if s.len() > 200 {
            s.push_str(" ...");
            break;
        }
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&alloc::string::String::from_utf8_lossy(&a[..a.len().min(64)]));
    }
    s
}

/// Appends what the last command asks to log. Returns whether anything was.
fn log_effect(engine: &mut Engine, aof: &mut Aof, argv: Option<&[&[u8]]>) -> bool {
    let mut any = false;
    let mut result = Ok(());
    for entry in engine.take_log() {
        let args: Vec<&[u8]> = entry.iter().map(Vec::as_slice).collect();
        result = result.and(aof.append(&args));
        any = true;
    }
    if let Some(argv) = argv {
        result = result.and(aof.append(argv));
        any = true;
    }
    if let Err(e) = result {
        log::error!("log: append: {e}");
        engine.write_error = Some(format!("{e}"));
        engine.stats.aof_last_write_ok = false;
    }
    any
}

/// Commits the log, compacting it first if it is full; records the outcome
/// in the engine (a failure makes write commands fail with `-MISCONF`).
fn commit(server: &Server) -> Result<(), AofError> {
    let mut aof = server.aof.borrow_mut();
    let mut engine = server.engine.borrow_mut();
    let target = server.appended.get();
    let mut result = aof.commit();
    if result == Err(AofError::Full) {
        result = compact(&mut engine, &mut aof).and_then(|()| aof.commit());
    }
    match &result {
        Ok(()) => {
            server.committed.set(target);
            if engine.write_error.is_some() {
                log::warn!("log: writable again");
            }
            engine.write_error = None;
            engine.stats.aof_last_write_ok = true;
        }
        Err(e) => {
            if engine.write_error.is_none() {
                log::error!("log: commit: {e}");
            }
            engine.write_error = Some(format!("{e}"));
            engine.stats.aof_last_write_ok = false;
        }
    }
    result
}

/// Rewrites the log from a snapshot of the dataset.
fn compact(engine: &mut Engine, aof: &mut Aof) -> Result<(), AofError> {
    let started = Instant::now();
    aof.compact(&mut engine.snapshot())?;
    engine.stats.aof_rewrites += 1;
    engine.stats.dirty = 0;
    engine.stats.last_save_time = now_ms() / 1000;
    log::info!(
        "log: compacted to {} KiB ({} keys) in {} ms",
        aof.log_bytes() / 1024,
        engine.keys.len(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Active expiry, the once-a-second flush, compaction.
async fn cron(server: Rc<Server>) {
    loop {
        task::sleep(CRON_PERIOD).await;
        let wrote = {
            let mut engine = server.engine.borrow_mut();
            let mut aof = server.aof.borrow_mut();
            engine.set_time(now_ms());
            let start = Instant::now();
            while engine.expire_cycle(EXPIRE_BUDGET) == EXPIRE_BUDGET
                && start.elapsed() < EXPIRE_TIME
            {}
            log_effect(&mut engine, &mut aof, None)
        };
        if wrote {
            server.appended.set(server.appended.get() + 1);
            let _ = commit(&server);
        }
        let mut engine = server.engine.borrow_mut();
        let mut aof = server.aof.borrow_mut();
        if let Err(e) = aof.tick() {
            log::error!("log: flush: {e}");
            engine.write_error = Some(format!("{e}"));
            engine.stats.aof_last_write_ok = false;
        }
        if aof.wants_compaction()
            && let Err(e) = compact(&mut engine, &mut aof)
        {
            log::error!("log: compaction: {e}");
        }
    }
}

/// A `Vec<&[u8]>` with no elements, of any lifetime, reusing `v`'s
/// allocation (so that each command does not allocate its argv).
fn recycle<'b>(mut v: Vec<&[u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter().map(|_| -> &'b [u8] { unreachable!() }).collect()
}

/// Serves one connection until it closes, errs, sends `QUIT`, or breaks
/// the protocol.
async fn serve(server: &Server, mut stream: TcpStream) -> Result<(), NetError> {
    let (limit, maxclients) = {
        let mut engine = server.engine.borrow_mut();
        let st = &mut engine.stats;
        st.total_connections_received += 1;
        st.connected_clients += 1;
        let c = &engine.config;
        (c.query_buffer_limit as usize, c.maxclients)
    };
    if server.engine.borrow().stats.connected_clients > maxclients {
        server.engine.borrow_mut().stats.rejected_connections += 1;
        stream.write_all(b"-ERR max number of clients reached\r\n").await?;
        stream.shutdown();
        return Ok(());
    }
    let mut parser = Parser::new(limit);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut spare_argv: Vec<&[u8]> = Vec::new();
    loop {
        let room = match parser.spare() {
            Ok(room) => room,
            Err(e) => {
                log::warn!("client closed: {e}");
                stream.abort();
                return Ok(());
            }
        };
        let n = stream.read(room).await?;
        if n == 0 {
            stream.shutdown();
            return Ok(());
        }
        parser.advance(n);

        // Execute every complete command received.
        let mut close = false;
        let mut wrote = false;
        {
            let mut engine = server.engine.borrow_mut();
            let mut aof = server.aof.borrow_mut();
            engine.stats.net_input_bytes += n as u64;
            engine.set_time(now_ms());
            loop {
                let cmd = match parser.next_command() {
                    Ok(Some(cmd)) => cmd,
                    Ok(None) => break,
                    Err(e) => {
                        if let Some(msg) = e.message() {
                            reply::error(&mut out, &msg);
                        }
                        close = true;
                        break;
                    }
                };
                let mut argv = recycle(core::mem::take(&mut spare_argv));
                argv.extend(cmd.args());
                let effect = engine.execute(&argv, &mut out);
                let logged = effect.log_argv.then_some(&argv[..]);
                if engine.has_log() || logged.is_some() {
                    wrote |= log_effect(&mut engine, &mut aof, logged);
                }
                spare_argv = recycle(argv);
                if effect.close {
                    close = true;
                    break;
                }
            }
        }
        if wrote {
            server.appended.set(server.appended.get() + 1);
        }
        // No reply leaves before the log holds every write executed before
        // it, this client's or another's (a read must not show what a crash
        // could still lose).
        let mine = server.appended.get();
        if server.committed.get() < mine {
            // Group commit: let the other clients whose commands arrived in
            // this turn run first; the first to come back commits for all.
            task::yield_now().await;
            if server.committed.get() < mine
                && commit(server).is_err()
                && server.fsync == Fsync::Always
            {
                // As Redis: with `always`, an acknowledged write must be on
                // the disk; when the log cannot be written, stop.
                println!("kvd: cannot write the log with appendfsync always: exiting");
                libos::process::exit(1);
            }
        }
        if !out.is_empty() {
            server.engine.borrow_mut().stats.net_output_bytes += out.len() as u64;
            stream.write_all(&out).await?;
            out.clear();
            if out.capacity() > 1 << 20 {
                out = Vec::with_capacity(4096);
            }
        }
        if close {
            stream.shutdown();
            return Ok(());
        }
    }
}
