//! httpd: an HTTP/1.1 static file server as a unikernel, serving the FAT
//! disk attached as `storage`.
//!
//! ```text
//! nabla disk create site.img --from examples/httpd/site
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 \
//!        --block storage=site.img target/release/httpd
//! curl http://10.0.0.2/
//! ```
//!
//! Port 80, or `$PORT`. GET and HEAD, keep-alive and pipelining, an index
//! file (`index.html`) for directories, `Content-Type` by extension, single
//! byte ranges (206/416), `Last-Modified` and `If-Modified-Since` (304) from
//! the files' FAT times; 400, 404, 405, 413 as HTTP says. Small files are
//! cached in memory after their first request, and what a request path
//! names (file, length, time) after its first lookup, so that a request
//! for a known file reads no directory ([`site`]).
//!
//! # Limits
//!
//! No client can crash the server or take its memory, and no client can
//! stop it serving the others (within the connection limit):
//!
//! | what | default | setting |
//! |---|---|---|
//! | request body (discarded, never buffered); larger: 413, closed | 1 MiB | `HTTPD_MAX_BODY` (`1m`, `512k`, bytes) |
//! | time for a whole request head (not per read) | 20 s | `HTTPD_HEADER_TIMEOUT` (`20s`, `500ms`) |
//! | time for a whole request body | 60 s | `HTTPD_BODY_TIMEOUT` |
//! | idle time between requests on a kept-alive connection | 30 s | `HTTPD_KEEPALIVE_TIMEOUT` |
//! | time for each write of up to 64 KiB | 60 s | `HTTPD_SEND_TIMEOUT` |
//! | time for the requests under way after `SIGTERM`, then exit | 20 s | `HTTPD_SHUTDOWN_TIMEOUT` |
//! | connections | from the heap (see below) | `HTTPD_MAX_CONNECTIONS` (lower only) |
//! | request head, responses held per connection | 8 KiB, 16 KiB | fixed |
//!
//! **Status.** `HTTPD_STATUS_PATH=/some/path` (none by default) answers
//! that path with the heap's figures instead of a file, `name: value` a
//! line: `heap_size`, `heap_in_use` (bytes in live allocations),
//! `heap_allocations`, as nginx's `stub_status` answers its location. For
//! tests and monitoring (the suite checks with it that 10,000 connections
//! leave the heap as they found it); it tells a client how much memory the
//! server uses, so pick a path clients do not know, or leave it unset.
//!
//! nginx's defaults are 60 s for `client_header_timeout`,
//! `client_body_timeout` (between two reads) and `send_timeout` (between
//! two writes), 75 s for `keepalive_timeout`, and 1m for
//! `client_max_body_size`. httpd takes the same body size and send time,
//! but as a deadline for each write of 64 KiB rather than between writes,
//! and for the whole body rather than between reads, so that a client that
//! trickles bytes cannot hold a connection forever; and 20 s for a whole
//! head (Apache's `mod_reqtimeout` default), because a connection is a
//! scarcer thing in a 64 MiB guest than in nginx's worker.
//!
//! **Connections.** At start httpd divides the heap: a quarter (at most
//! 32 MiB) for the file cache, an eighth kept free (the reserve), and the
//! rest for connections. The first 64 connections' sockets get 64 KiB
//! buffers each way (large windows, for large files over few connections);
//! the sockets made while the listener already holds 64 get lean ones,
//! 4 KiB in (a request head comes a read at a time anyway, and bodies are
//! discarded) and 8 KiB out (libos's `TcpOptions::lean`, as Linux shrinks
//! socket buffers under `tcp_mem` pressure). A waiting connection costs its
//! socket, a read's worth of head (4 KiB; up to 12 KiB only while a longer
//! head or pipelined requests need it), its last small response and its
//! task: 28 KiB lean, so 1,073 at `--mem 64` (nginx's 512 default
//! `worker_connections` and the benchmark's 1,000 clients fit), at most
//! 4,096. It prints the number. What a request needs beyond that (a
//! response held of up to 16 KiB, a piece of a file from the disk, twice
//! the socket's send buffer) is allocated fallibly, and only while half of
//! the reserve stays free: a client cannot take the heap the stack and the
//! file system need, and a request that finds no room gets 503 (or its
//! connection is reset). When all connections are taken, a new one takes
//! the place of the one idle longest (no request under way, as nginx
//! reuses kept-alive connections); if none is idle, it waits, accepted but
//! not served, until one ends, and the ones after it wait in the
//! listener's backlog (64), then as SYNs the client sends again, as they
//! do in Linux's listen queue: nothing is reset for want of room. The
//! listener holds no more sockets than the connections plus the backlog,
//! closing ones included, and every buffer is allocated fallibly: a
//! failure resets that connection, or answers 503.
//! A client that does not read its responses is no longer read from
//! (`out` holds 16 KiB at most), and its connection is reset once a write
//! waits out the send time.
//!
//! **Stopping.** `SIGTERM` or `SIGINT` (`kill`, `docker stop`, a
//! Kubernetes pod's deletion, Ctrl-C) stops the server gracefully, as
//! nginx's `quit`: the listener closes (new connections are refused),
//! idle connections close, each request under way is answered (with
//! `Connection: close`) and its connection closed; then httpd exits 0. It
//! waits `HTTPD_SHUTDOWN_TIMEOUT` (20 s, under Kubernetes' default grace
//! period of 30 s) at most for them, then exits 0 anyway.

#![no_std]
#![no_main]

extern crate alloc;

mod serve;
mod site;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;

use http::conn::{Limits, READ_CHUNK};
use libos::net::{LeanBuffers, NetError, TcpListener, TcpOptions};
use libos::task::Either;
use libos::{env, log, println, task};

use serve::Slot;
use site::{CACHE_TOTAL_MAX, Site};

libos::app!(async main, devices: ["service0": Net, "storage": Block]);

/// Connections accepted but not yet taken by the server, per interface.
const BACKLOG: usize = 64;
/// Each socket's receive and send buffers, for the first connections.
const SOCKET_BUFFER: usize = 64 * 1024;
/// What a connection costs httpd while it waits for its next request: a
/// read's worth of head, a small response held, the task with its small
/// allocations. What a request needs beyond that (a longer head, a larger
/// response held, a piece of a file) is allocated fallibly while it is
/// answered, and only while the heap keeps half its reserve (see
/// [`room_for`]).
const PER_IDLE: usize = READ_CHUNK + 4 * 1024 + 8 * 1024;
/// What one of the first connections costs: [`SOCKET_BUFFER`]s.
const PER_FAST: usize = 2 * SOCKET_BUFFER + PER_IDLE;
/// Connections with [`SOCKET_BUFFER`]s at most; the others get lean ones.
const FAST_MAX: usize = 64;
/// The lean sockets' receive buffer: a request head comes in pieces of a
/// read anyway, and bodies are discarded.
const LEAN_RX: usize = 4 * 1024;
/// The lean sockets' send buffer.
const LEAN_TX: usize = 8 * 1024;
/// What a connection with lean buffers costs.
const PER_LEAN: usize = LEAN_RX + LEAN_TX + PER_IDLE;
/// Most connections served at once, whatever the heap (nginx's
/// `worker_connections` in the benchmark's configuration).
const CONNECTIONS_MAX: usize = 4096;

/// How the heap is shared, from what is free at start (`free`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Budget {
    /// The file cache's bytes.
    cache: usize,
    /// Sockets with [`SOCKET_BUFFER`]s.
    fast: usize,
    /// Connections served at once.
    connections: usize,
    /// Heap kept free for everything else (the stack's state, file system,
    /// timers, per-request allocations); a connection is accepted only
    /// while half of it is left.
    reserve: usize,
}

impl Budget {
    fn new(free: usize) -> Self {
        let cache = CACHE_TOTAL_MAX.min(free / 4);
        let reserve = free / 8;
        let rest = free.saturating_sub(cache + reserve);
        // At most half of it for fast sockets, the rest lean; the listener
        // holds the backlog's sockets too.
        let fast = FAST_MAX.min(rest / 2 / PER_FAST);
        let lean = (rest - fast * PER_FAST) / PER_LEAN;
        let connections = (fast + lean).saturating_sub(BACKLOG).clamp(1, CONNECTIONS_MAX);
        Self { cache, fast, connections, reserve }
    }
}

/// Heap kept free for the stack and the file system: what httpd allocates
/// for a request beyond a connection's steady cost must leave half of it.
static RESERVE: AtomicUsize = AtomicUsize::new(0);

/// Whether `len` more bytes of httpd's leave the reserve's half free.
pub(crate) fn room_for(len: usize) -> bool {
    let heap = libos::heap_stats();
    let free = heap.size.saturating_sub(heap.in_use);
    free >= len + RESERVE.load(Ordering::Relaxed) / 2
}

/// The connections being served, for the accept loop.
struct Connections {
    slots: RefCell<Vec<Rc<Slot>>>,
    max: usize,
    /// Whether the last connection found them all taken (logged once).
    full: Cell<bool>,
    /// The accept loop, waiting for room.
    waiting: RefCell<Option<Waker>>,
}

impl Connections {
    /// Whether a new connection may be served: there is room, or an idle
    /// connection to close for it; and the heap has its share.
    fn admit(&self) -> bool {
        let slots = self.slots.borrow();
        let live = slots.iter().filter(|s| !s.evict.get()).count();
        let room = live < self.max || {
            let idle = slots
                .iter()
                .filter(|s| !s.evict.get())
                .filter_map(|s| s.idle_since.get().map(|t| (t, s)))
                .min_by_key(|(t, _)| *t);
            match idle {
                Some((_, s)) => {
                    s.evict();
                    true
                }
                None => false,
            }
        };
        let admit = room && room_for(PER_LEAN);
        if admit == self.full.get() {
            self.full.set(!admit);
            if admit {
                log::info!("connections: room again");
            } else {
                log::warn!(
                    "connections: {live} of {} served: new ones wait in the backlog",
                    self.max
                );
            }
        }
        admit
    }

    /// Waits until a new connection may be served: a connection ends, or,
    /// if the heap was short, 10 ms pass.
    async fn room(&self) {
        while !self.admit() {
            let mut woken = false;
            let wait = poll_fn(|cx| {
                if woken {
                    return Poll::Ready(());
                }
                woken = true;
                *self.waiting.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            });
            let _ = task::timeout(Duration::from_millis(10), wait).await;
        }
    }

    fn remove(&self, slot: &Rc<Slot>) {
        self.slots.borrow_mut().retain(|s| !Rc::ptr_eq(s, slot));
        if let Some(w) = self.waiting.borrow_mut().take() {
            w.wake();
        }
    }
}

async fn main() -> Result<(), NetError> {
    let port = match env::var("PORT").map(str::parse::<u16>) {
        None => 80,
        Some(Ok(p)) if p != 0 => p,
        Some(_) => {
            println!("httpd: PORT must be a port number, 1-65535");
            return Err(NetError::InvalidAddress);
        }
    };
    let limits = match Limits::from_env(env::var) {
        Ok(l) => l,
        Err(e) => {
            println!("httpd: {e}");
            libos::process::exit(1);
        }
    };
    // The tender refuses to start without the declared disk.
    let Some(disk) = libos::block::device("storage") else {
        println!("httpd: no disk attached as storage");
        libos::process::exit(1);
    };
    let fs = match libos::fs::mount(disk) {
        Ok(fs) => fs,
        Err(e) => {
            println!("httpd: storage: {e}");
            libos::process::exit(1);
        }
    };
    let files = site::count_files(&fs, "/");
    let heap = libos::heap_stats();
    let budget = Budget::new(heap.size.saturating_sub(heap.in_use));
    let max = match env::var("HTTPD_MAX_CONNECTIONS").map(str::parse::<usize>) {
        None => budget.connections,
        Some(Ok(n)) if n > 0 => n.min(budget.connections),
        Some(_) => {
            println!("httpd: HTTPD_MAX_CONNECTIONS must be a number above 0");
            libos::process::exit(1);
        }
    };
    RESERVE.store(budget.reserve, Ordering::Relaxed);
    let mut site = Site::new(fs, budget.cache);
    site.status = match env::var("HTTPD_STATUS_PATH") {
        None => None,
        Some(p) if p.starts_with('/') => Some(p.into()),
        Some(_) => {
            println!("httpd: HTTPD_STATUS_PATH must be a path starting with /");
            libos::process::exit(1);
        }
    };
    let site = Rc::new(site);
    site.warm();
    let opts = TcpOptions {
        backlog: BACKLOG,
        rx_buffer: SOCKET_BUFFER,
        tx_buffer: SOCKET_BUFFER,
        nodelay: true,
        max_connections: max + BACKLOG,
        lean: Some(LeanBuffers { after: budget.fast, rx_buffer: LEAN_RX, tx_buffer: LEAN_TX }),
        ..TcpOptions::default()
    };
    let listener = TcpListener::bind_with(port, opts)?;
    let conns = Rc::new(Connections {
        slots: RefCell::new(Vec::new()),
        max,
        full: Cell::new(false),
        waiting: RefCell::new(None),
    });
    libos::net::wait_configured().await;
    println!(
        "httpd: up to {max} connections ({} with {} KiB socket buffers), {} KiB of file cache ({} \
         KiB of heap); body {} B, head {:?}, body {:?}, keep-alive {:?}, write {:?}",
        budget.fast.min(max),
        SOCKET_BUFFER / 1024,
        budget.cache / 1024,
        heap.size / 1024,
        limits.max_body,
        limits.header_timeout,
        limits.body_timeout,
        limits.keepalive_timeout,
        limits.send_timeout
    );
    for i in libos::net::interfaces() {
        if let Some((addr, prefix)) = i.ipv4 {
            println!("httpd: serving {files} files on http://{addr}:{port}/ ({}/{prefix})", i.name);
        }
    }
    // Opt in to SIGTERM and SIGINT before serving: from here they stop
    // the server gracefully instead of ending the guest.
    let stop = libos::process::terminated();
    let accept = {
        let conns = conns.clone();
        async move {
            loop {
                let (stream, _) = listener.accept().await?;
                // While there is no room, this connection waits here, its
                // request in its socket, and the next ones in the
                // listener's backlog, then as SYNs the client sends again.
                conns.room().await;
                let slot = Rc::new(Slot::default());
                conns.slots.borrow_mut().push(slot.clone());
                let site = site.clone();
                let conns = conns.clone();
                task::spawn(async move {
                    serve::serve(&site, stream, limits, &slot).await;
                    conns.remove(&slot);
                });
            }
        }
    };
    let signal = match task::select(accept, stop).await {
        Either::Left(result) => return result,
        Either::Right(signal) => signal,
    };
    // The listener went with the accept loop: new connections are refused.
    shut_down(&conns, signal, limits.shutdown_timeout).await;
    Ok(())
}

/// Stops gracefully: every connection finishes the request under way
/// (answered with `Connection: close`) and closes, idle ones at once;
/// waits for them for `limit` at most.
async fn shut_down(conns: &Connections, signal: libos::process::Signal, limit: Duration) {
    let under_way = conns.slots.borrow().len();
    println!("httpd: {signal}: no new connections; finishing {under_way} under way");
    for slot in conns.slots.borrow().iter() {
        slot.drain();
    }
    let drained = task::timeout(limit, async {
        while !conns.slots.borrow().is_empty() {
            task::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    match drained {
        Ok(()) => println!("httpd: stopped"),
        Err(_) => println!(
            "httpd: stopped with {} connections unfinished after {limit:?}",
            conns.slots.borrow().len()
        ),
    }
}
