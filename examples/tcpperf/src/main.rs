//! tcpperf: a bulk TCP throughput server, iperf3-like but trivial.
//!
//! ```text
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 target/release/tcpperf
//! ```
//!
//! Listens on port 5201, or on `$PORT`. Each connection starts with a
//! one-byte command:
//!
//! | client sends | tcpperf |
//! |---|---|
//! | `S`, then N as 8 bytes little-endian | sends N bytes (a pattern), then closes |
//! | `R`, then any bytes, then closes its side | reads to end of stream, writes the count as 8 bytes little-endian, closes |
//! | `C` | writes its counters (below), then closes |
//!
//! `C` answers with [`COUNTERS`] numbers, 8 bytes little-endian each, in
//! this order: the guest's `read` calls (with those that found nothing),
//! bytes read, `write` calls, bytes written, `ppoll` calls, `ppoll`s that
//! found nothing ready (see `libos::hypercall::Counters`); then, summed
//! over the interfaces, frames received, sent, dropped on sending, sent for
//! the host to segment, dropped on receipt (`libos::net::TapStats`); then
//! its socket buffers (receive, send, bytes) and delayed-ACK timeout (µs, 0
//! for none). `nabla bench tcp` asks before and after each transfer.
//!
//! Anything else closes the connection. `nabla bench tcp` is the client,
//! and also runs the same protocol natively for comparison.
//!
//! Buffers are large by default (4 MiB each way, the advertised window
//! and what may be in flight: Linux's `tcp_wmem` maximum, which its
//! autotuning reaches in such a transfer) and Nagle is off. With 256 KiB,
//! a guest that waited a few milliseconds for a CPU on a busy machine
//! stalled its peer for want of window (see docs/performance.md, "Bulk TCP
//! every run"). For experiments:
//! `TCPPERF_RX_KIB`, `TCPPERF_TX_KIB` (buffer sizes) and
//! `TCPPERF_ACK_DELAY_MS` (delayed-ACK timeout; 0 acknowledges every
//! segment at once; default 10, libos's).
//!
//! `R` `read`s into a 64 KiB buffer, as the native peer of `nabla bench
//! tcp` does; with `TCPPERF_IN_PLACE=1` it counts the bytes where they lie
//! in the connection's receive buffer instead (`TcpStream::read_with`),
//! one copy per byte fewer (docs/performance.md, "Fewer copies").

#![no_std]
#![no_main]

use core::time::Duration;

use libos::net::{NetError, TcpListener, TcpOptions, TcpStream};
use libos::{env, log, println, task};

libos::app!(async main, devices: ["service0": Net]);

/// Bytes sent per `write`: a whole number of 26-byte periods, so that the
/// pattern runs on across writes.
const CHUNK: usize = 26 * 2520;

/// How many numbers `C` answers with.
const COUNTERS: usize = 14;

/// `b'a' + (i % 26)`, the pattern of httpd's `/bench/*.bin` files.
static PATTERN: [u8; CHUNK] = pattern();

const fn pattern() -> [u8; CHUNK] {
    let mut p = [0u8; CHUNK];
    let mut i = 0;
    while i < CHUNK {
        p[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    p
}

/// A numeric environment variable, or `default` if unset.
fn var(name: &str, default: u64) -> Result<u64, NetError> {
    match env::var(name).map(str::parse::<u64>) {
        None => Ok(default),
        Some(Ok(v)) => Ok(v),
        Some(Err(_)) => {
            println!("tcpperf: {name} must be a number");
            Err(NetError::InvalidAddress)
        }
    }
}

async fn main() -> Result<(), NetError> {
    let port = match env::var("PORT").map(str::parse::<u16>) {
        None => 5201,
        Some(Ok(p)) if p != 0 => p,
        Some(_) => {
            println!("tcpperf: PORT must be a port number, 1-65535");
            return Err(NetError::InvalidAddress);
        }
    };
    let ack_delay = match var("TCPPERF_ACK_DELAY_MS", 10)? {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    };
    let opts = TcpOptions {
        // Transfers come one at a time; every listening socket holds both
        // buffers, so keep few.
        backlog: 4,
        rx_buffer: var("TCPPERF_RX_KIB", 4096)? as usize * 1024,
        tx_buffer: var("TCPPERF_TX_KIB", 4096)? as usize * 1024,
        nodelay: true,
        ack_delay,
        ..TcpOptions::default()
    };
    let copy = var("TCPPERF_IN_PLACE", 0)? == 0;
    let listener = TcpListener::bind_with(port, opts)?;
    libos::net::wait_configured().await;
    for i in libos::net::interfaces() {
        if let Some((addr, prefix)) = i.ipv4 {
            println!(
                "tcpperf: listening on {addr}:{port} ({}/{prefix}, rx {} KiB, tx {} KiB)",
                i.name,
                opts.rx_buffer / 1024,
                opts.tx_buffer / 1024
            );
        }
    }
    loop {
        let (stream, peer) = listener.accept().await?;
        task::spawn(async move {
            match serve(stream, &opts, copy).await {
                Ok(()) => {}
                Err(e) => log::warn!("{peer}: {e}"),
            }
        });
    }
}

/// Fills `buf` completely; `NotConnected` if the stream ends first.
async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), NetError> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await? {
            0 => return Err(NetError::NotConnected),
            n => filled += n,
        }
    }
    Ok(())
}

/// The answer to `C`.
fn counters(opts: &TcpOptions) -> [u64; COUNTERS] {
    let c = libos::hypercall::counters();
    let mut taps = [0u64; 5];
    for i in libos::net::interfaces() {
        let s = i.stats;
        for (sum, v) in taps.iter_mut().zip([
            s.rx_frames,
            s.tx_frames,
            s.tx_dropped,
            s.tx_offloaded,
            s.rx_dropped,
        ]) {
            *sum += v;
        }
    }
    let ack_delay = opts.ack_delay.map_or(0, |d| d.as_micros() as u64);
    [
        c.reads,
        c.read_bytes,
        c.writes,
        c.write_bytes,
        c.ppolls,
        c.ppoll_empty,
        taps[0],
        taps[1],
        taps[2],
        taps[3],
        taps[4],
        opts.rx_buffer as u64,
        opts.tx_buffer as u64,
        ack_delay,
    ]
}

async fn serve(mut stream: TcpStream, opts: &TcpOptions, copy: bool) -> Result<(), NetError> {
    let mut command = [0u8; 1];
    read_exact(&mut stream, &mut command).await?;
    match command[0] {
        b'S' => {
            let mut len = [0u8; 8];
            read_exact(&mut stream, &mut len).await?;
            let mut left = u64::from_le_bytes(len);
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                stream.write_all(&PATTERN[..n]).await?;
                left -= n as u64;
            }
        }
        b'R' => {
            let mut count = 0u64;
            if copy {
                let mut buf = [0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf).await? {
                        0 => break,
                        n => count += n as u64,
                    }
                }
            } else {
                // Counted where they lie in the receive buffer.
                while let Some(n) = stream.read_with(|data| (data.len(), data.len())).await? {
                    count += n as u64;
                }
            }
            stream.write_all(&count.to_le_bytes()).await?;
        }
        b'C' => {
            let mut out = [0u8; COUNTERS * 8];
            for (slot, v) in out.chunks_exact_mut(8).zip(counters(opts)) {
                slot.copy_from_slice(&v.to_le_bytes());
            }
            stream.write_all(&out).await?;
        }
        other => log::warn!("unknown command {other:#04x}"),
    }
    // Dropping the stream closes it gracefully: FIN after the queued data.
    stream.shutdown();
    Ok(())
}
