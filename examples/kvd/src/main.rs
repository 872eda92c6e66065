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
//! `SIGTERM` or `SIGINT` stops it as Redis does: no new connections, the
//! log committed and flushed whatever the policy, exit 0.
//!
//! Each connection's buffers are bounded (`kv::client`): output by the
//! hard and soft limits, input by the query buffer limit, both by a budget
//! for all clients and a reserve of the heap; a client past them is closed,
//! never the guest. With a password, clients must `AUTH` first.
//!
//! Environment (docs/kvd.md): `PORT`, `KVD_APPENDFSYNC` (`always`,
//! `everysec` (default), `no`), `KVD_MAXMEMORY` (bytes, or with a
//! `k`/`m`/`g` suffix; default three quarters of the heap),
//! `KVD_REQUIREPASS`, `KVD_CLIENT_OUTPUT_BUFFER_LIMIT` (`hard soft
//! seconds`), `KVD_MAXMEMORY_CLIENTS`, `KVD_CLIENT_QUERY_BUFFER_LIMIT`,
//! `KVD_MAXCLIENTS` (defaults from the heap: `kv::limits`).

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
use kv::auth::Password;
use kv::client::{Client, Close};
use kv::commands::{Config, Engine};
use kv::limits::{Defaults, parse_output_limit, parse_size};
use libos::net::{NetError, TcpListener, TcpOptions, TcpStream};
use libos::task::Either;
use libos::time::{Instant, SystemTime, UNIX_EPOCH};
use libos::{block, env, log, println, task};

libos::app!(async main, devices: ["service0": Net, "storage": Block]);

/// Timer period: active expiry and the log's once-a-second flush (Redis's `hz 10`).
const CRON_PERIOD: Duration = Duration::from_millis(100);
/// Keys removed per round of active expiry; rounds repeat within one
/// cron tick while they find that many, for at most `EXPIRE_TIME`.
const EXPIRE_BUDGET: usize = 256;
const EXPIRE_TIME: Duration = Duration::from_millis(5);
/// How long a refused connection (over `maxclients`) may take to take its
/// error reply.
const REJECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    let size = |var: &'static str| -> Result<Option<u64>, StartError> {
        env::var(var)
            .map(|s| {
                parse_size(s).ok_or(StartError::Env(var, "must be a size in bytes, e.g. 100m"))
            })
            .transpose()
    };
    let heap = memory().1;
    let maxmemory = size("KVD_MAXMEMORY")?.unwrap_or(heap / 4 * 3);
    let defaults = Defaults::new(heap, maxmemory);
    let maxclients = match env::var("KVD_MAXCLIENTS").map(str::parse::<u64>) {
        None => defaults.maxclients,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => return Err(StartError::Env("KVD_MAXCLIENTS", "must be a positive number")),
    };
    let output_limit = match env::var("KVD_CLIENT_OUTPUT_BUFFER_LIMIT") {
        None => defaults.output_limit,
        Some(s) => parse_output_limit(s).ok_or(StartError::Env(
            "KVD_CLIENT_OUTPUT_BUFFER_LIMIT",
            "must be `<hard> <soft> <seconds>`, e.g. `32mb 8mb 60`",
        ))?,
    };
    let config = Config {
        port,
        appendonly: true,
        appendfsync: fsync.as_str(),
        maxmemory,
        maxclients,
        query_buffer_limit: size("KVD_CLIENT_QUERY_BUFFER_LIMIT")?
            .unwrap_or(defaults.query_buffer_limit),
        requirepass: env::var("KVD_REQUIREPASS").and_then(|p| Password::new(p.as_bytes())),
        output_limit,
        maxmemory_clients: size("KVD_MAXMEMORY_CLIENTS")?.unwrap_or(defaults.maxmemory_clients),
    };
    Ok((config, fsync))
}

async fn main() -> Result<(), StartError> {
    let (config, fsync) = config()?;
    let port = config.port;
    // 256 random bits the tender hands over at every start (its
    // `getrandom`): the keyspace's hash seed, unpredictable to clients, and
    // the nonce that makes a new log's generation unlike any earlier log's
    // on the same disk. The clock is mixed in should they be missing.
    let clock = Instant::now().as_duration().as_nanos() as u64 ^ now_ms().rotate_left(32);
    let random = libos::rt_private::boot_info().map_or([0; 4], |b| b.random);
    let (seed, nonce) = (random[0] ^ clock, random[1] ^ clock.rotate_left(17));
    let mut engine = Engine::new(config, now_ms(), seed);
    engine.set_memory_probe(memory);

    let disk = block::device("storage").ok_or(StartError::NoDisk)?;
    let started = Instant::now();
    engine.begin_loading();
    let mut failed = 0u64;
    let (aof, report) = Aof::open_with(disk, fsync, nonce, &mut |cmd| {
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

    // A 64 KiB window: with 16 KiB, a `SET` of a 16 KiB value did not fit
    // in one window, and pipelines of them crawled (`SET -d 16384 -P 64`,
    // 50 clients: 1.9-3.2k ops/s and a 300-450 ms p50; 4.7-6.9k and
    // 19-46 ms with 64 KiB; 3.8k with 32 KiB). Counted in
    // `limits::CONNECTION_COST`.
    let opts = TcpOptions {
        backlog: 128,
        rx_buffer: 64 * 1024,
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
    // Opt in to SIGTERM and SIGINT before serving: from here they stop
    // the server (`shut_down`) instead of ending the guest.
    let stop = libos::process::terminated();
    let accept = {
        let server = server.clone();
        async move {
            loop {
                let (stream, peer) = listener.accept().await.map_err(StartError::Net)?;
                let server = server.clone();
                task::spawn(async move {
                    let mut client = {
                        let mut engine = server.engine.borrow_mut();
                        engine.stats.total_connections_received += 1;
                        engine.stats.connected_clients += 1;
                        Client::new(&mut engine)
                    };
                    if let Err(e) = serve(&server, &mut client, stream).await {
                        log::debug!("{peer}: {e}");
                    }
                    let mut engine = server.engine.borrow_mut();
                    client.release(&mut engine.stats);
                    engine.stats.connected_clients -= 1;
                });
            }
        }
    };
    match task::select(accept, stop).await {
        Either::Left(result) => result,
        Either::Right(signal) => shut_down(&server, signal),
    }
}

/// Stops as Redis does on `SIGTERM`: no new connections (the listener
/// went with the accept loop), every command executed so far committed to
/// the log and flushed whatever the fsync policy, then exit 0. Commands
/// run whole within one turn of the executor, so none is half done. A
/// failed flush is reported and the status is 1, as Redis refuses to exit
/// cleanly when it cannot write its AOF.
fn shut_down(server: &Server, signal: libos::process::Signal) -> Result<(), StartError> {
    println!("kvd: {signal}: no new connections; flushing the log");
    // What is queued, compacting first if the log is full; then the flush.
    let _ = commit(server);
    let mut aof = server.aof.borrow_mut();
    match aof.sync() {
        Ok(()) => {
            println!("kvd: log flushed ({} KiB), exiting", aof.log_bytes() / 1024);
            Ok(())
        }
        Err(e) => {
            println!("kvd: log: flush on shutdown: {e}");
            Err(StartError::Aof(e))
        }
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

/// Serves one connection until it closes, errs, sends `QUIT`, breaks the
/// protocol, or passes a limit (see `kv::client`).
async fn serve(
    server: &Server,
    client: &mut Client,
    mut stream: TcpStream,
) -> Result<(), NetError> {
    let maxclients = server.engine.borrow().config.maxclients;
    if server.engine.borrow().stats.connected_clients > maxclients {
        server.engine.borrow_mut().stats.rejected_connections += 1;
        // A client that never acknowledges cannot hold the socket.
        stream.set_timeout(Some(REJECT_TIMEOUT));
        stream.write_all(b"-ERR max number of clients reached\r\n").await?;
        stream.shutdown();
        return Ok(());
    }
    loop {
        // A batch that stopped for its replies' size goes on with what was
        // received before anything more is read.
        let n = if client.paused() {
            0
        } else {
            let room = match client.read_buffer(&mut server.engine.borrow_mut()) {
                Ok(room) => room,
                Err(_) => {
                    log::warn!("client closed for its query buffer (client-query-buffer-limit)");
                    stream.abort();
                    return Ok(());
                }
            };
            let n = stream.read(room).await?;
            if n == 0 {
                stream.shutdown();
                return Ok(());
            }
            n
        };

        // Execute the complete commands received (up to `BATCH_OUT` of replies).
        let (close, wrote) = {
            let mut engine = server.engine.borrow_mut();
            let mut aof = server.aof.borrow_mut();
            client.received(n, &mut engine);
            engine.set_time(now_ms());
            client.execute_batch(&mut engine, &mut |e, argv| log_effect(e, &mut aof, argv))
        };
        if wrote {
            server.appended.set(server.appended.get() + 1);
        }
        match close {
            Some(Close::OutputLimit) => {
                log::warn!("client closed for its output (client-output-buffer-limit)");
                stream.abort();
                return Ok(());
            }
            Some(Close::QueryLimit) => {
                log::warn!("client closed for its query buffer (client-query-buffer-limit)");
                stream.abort();
                return Ok(());
            }
            _ => {}
        }
        // No reply leaves before the log holds every write executed before
        // it, this client's or another's (a read must not show what a crash
        // could still lose).
        let mine = server.appended.get();
        if server.committed.get() < mine {
            // Group commit: let the other clients whose commands arrived in
            // this turn run first; the first to come back commits for all,
            // still in this turn, and the replies leave with its frames
            // (a `yield_now` here cost a turn: a network poll and a `ppoll`
            // per batch, docs/performance.md).
            task::end_of_turn().await;
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
        if !send(server, client, &mut stream).await? {
            log::warn!("client closed for its output (client-output-buffer-limit, soft)");
            stream.abort();
            return Ok(());
        }
        if close.is_some() {
            stream.shutdown();
            return Ok(());
        }
    }
}

/// Writes the client's replies; false if it stayed over the soft output
/// limit too long, and must be closed.
async fn send(
    server: &Server,
    client: &mut Client,
    stream: &mut TcpStream,
) -> Result<bool, NetError> {
    if client.over_soft_limit(&mut server.engine.borrow_mut(), now_ms()) {
        return Ok(false);
    }
    while !client.out.is_empty() {
        let deadline = client.soft_deadline(&server.engine.borrow());
        let n = match deadline {
            // The common case: no timer.
            None => stream.write(&client.out).await?,
            Some(at) => {
                let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                match task::timeout(wait, stream.write(&client.out)).await {
                    Ok(n) => n?,
                    Err(_) => 0,
                }
            }
        };
        if client.sent(n, &mut server.engine.borrow_mut(), now_ms()) {
            return Ok(false);
        }
    }
    Ok(true)
}
