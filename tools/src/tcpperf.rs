//! The tcpperf protocol (see `examples/tcpperf`) over std's TCP: the
//! client, and a native server that speaks it the same way as the guest.
//!
//! | client sends | server |
//! |---|---|
//! | `S`, then N as 8 bytes little-endian | sends N bytes, then closes |
//! | `R`, then bytes, then closes its side | reads to end of stream, writes the count as 8 bytes little-endian, closes |
//! | `C` | the guest only: its counters (see `examples/tcpperf`); the native server closes |
//!
//! The client reads the kernel's `TCP_INFO` of its socket at the end of
//! each transfer ([`TcpInfo`]): the peer's window and window scale, the
//! retransmissions, how long the window held the sender back.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes per `read`/`write` call, on both sides.
const CHUNK: usize = 256 * 1024;

/// A command, as its first byte.
const SEND: u8 = b'S';
/// The other command.
const RECEIVE: u8 = b'R';
/// The guest's counters.
const COUNTERS: u8 = b'C';

/// How many numbers the guest answers `C` with.
pub const GUEST_COUNTERS: usize = 14;

/// What the kernel's `TCP_INFO` says about the client's end of a
/// connection (`struct tcp_info` in `linux/tcp.h`; fields a kernel does
/// not have are 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// The window scale the peer announced (`tcpi_snd_wscale`).
    pub peer_wscale: u8,
    /// The window scale the client announced (`tcpi_rcv_wscale`).
    pub own_wscale: u8,
    /// Segments the client retransmitted (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Smoothed round-trip time, µs (`tcpi_rtt`).
    pub rtt_us: u32,
    /// Smallest round-trip time seen, µs (`tcpi_min_rtt`).
    pub min_rtt_us: u32,
    /// The client's congestion window, segments (`tcpi_snd_cwnd`).
    pub snd_cwnd: u32,
    /// Time the client was sending, µs (`tcpi_busy_time`).
    pub busy_us: u64,
    /// Of which the peer's receive window held it back, µs
    /// (`tcpi_rwnd_limited`).
    pub rwnd_limited_us: u64,
    /// Of which its own send buffer did, µs (`tcpi_sndbuf_limited`).
    pub sndbuf_limited_us: u64,
    /// Segments that came out of order (`tcpi_rcv_ooopack`).
    pub rcv_ooopack: u32,
    /// The peer's last advertised window, bytes (`tcpi_snd_wnd`).
    pub snd_wnd: u32,
    /// The client's current receive window, bytes (`tcpi_rcv_wnd`).
    pub rcv_wnd: u32,
}

impl TcpInfo {
    /// Parses the first `len` bytes of a `struct tcp_info` as the kernel
    /// filled them in.
    pub fn parse(raw: &[u8]) -> Self {
        let u32_at = |off: usize| {
            raw.get(off..off + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()))
        };
        let u64_at = |off: usize| {
            raw.get(off..off + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
        };
        let scales = raw.get(6).copied().unwrap_or(0);
        TcpInfo {
            peer_wscale: scales & 0xf,
            own_wscale: scales >> 4,
            rtt_us: u32_at(68),
            snd_cwnd: u32_at(80),
            total_retrans: u32_at(100),
            min_rtt_us: u32_at(148),
            busy_us: u64_at(168),
            rwnd_limited_us: u64_at(176),
            sndbuf_limited_us: u64_at(184),
            rcv_ooopack: u32_at(224),
            snd_wnd: u32_at(228),
            rcv_wnd: u32_at(232),
        }
    }

    /// `TCP_INFO` of `stream`.
    #[allow(unsafe_code)]
    pub fn of(stream: &TcpStream) -> io::Result<Self> {
        let mut raw = [0u8; 256];
        let mut len = raw.len() as libc::socklen_t;
        // SAFETY: raw is valid for writes of len bytes, and len is a valid
        // socklen_t the kernel updates to the bytes it wrote.
        let r = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                raw.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self::parse(&raw[..(len as usize).min(raw.len())]))
    }
}

/// One transfer, as the client saw it.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// From the request to the end (see [`download`] and [`upload`]).
    pub elapsed: Duration,
    /// The client socket's `TCP_INFO` at the end.
    pub info: TcpInfo,
}

/// `b'a' + (i % 26)` for `i` in `0..len`: what the guest sends too.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The `S` request for `n` bytes.
pub fn send_request(n: u64) -> [u8; 9] {
    let mut req = [SEND; 9];
    req[1..].copy_from_slice(&n.to_le_bytes());
    req
}

/// Reads to end of stream; returns how many bytes came.
fn drain(stream: &mut impl Read, buf: &mut [u8]) -> io::Result<u64> {
    let mut count = 0u64;
    loop {
        match stream.read(buf) {
            Ok(0) => return Ok(count),
            Ok(n) => count += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `n` bytes of the pattern.
fn fill(stream: &mut impl Write, n: u64) -> io::Result<()> {
    // A whole number of periods, so the pattern runs on across writes.
    let data = pattern(CHUNK / 26 * 26);
    let mut left = n;
    while left > 0 {
        let k = left.min(data.len() as u64) as usize;
        stream.write_all(&data[..k])?;
        left -= k as u64;
    }
    Ok(())
}

/// Serves one connection as tcpperf does.
pub fn serve(mut stream: TcpStream) -> io::Result<()> {
    let mut command = [0u8; 1];
    stream.read_exact(&mut command)?;
    match command[0] {
        SEND => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n)?;
            fill(&mut stream, u64::from_le_bytes(n))?;
        }
        RECEIVE => {
            let count = drain(&mut stream, &mut vec![0u8; CHUNK])?;
            stream.write_all(&count.to_le_bytes())?;
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown command {other:#04x}"),
            ));
        }
    }
    stream.shutdown(Shutdown::Write)
}

/// Serves every connection to `listener`, each on a thread of its own,
/// until `stop` is set (checked every 10 ms).
pub fn serve_until(listener: &TcpListener, stop: &AtomicBool) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                stream.set_nodelay(true)?;
                // A connection that fails (a readiness probe that closes at
                // once) ends only its own thread.
                thread::spawn(move || serve(stream));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A connected client, with `timeout` on every read and write (so that a
/// stalled peer fails the transfer instead of hanging it).
fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

fn mismatch(what: &str, expected: u64, got: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}: expected {expected} bytes, got {got}"),
    )
}

/// `S`: asks the server for `n` bytes and reads them to end of stream.
/// Times from sending the request to the end of stream.
pub fn download(addr: SocketAddr, n: u64, timeout: Duration) -> io::Result<Transfer> {
    let mut stream = connect(addr, timeout)?;
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    stream.write_all(&send_request(n))?;
    let got = drain(&mut stream, &mut buf)?;
    let elapsed = start.elapsed();
    if got != n {
        return Err(mismatch("download", n, got));
    }
    Ok(Transfer { elapsed, info: TcpInfo::of(&stream)? })
}

/// `C`: the guest's counters.
pub fn guest_counters(addr: SocketAddr, timeout: Duration) -> io::Result<[u64; GUEST_COUNTERS]> {
    let mut stream = connect(addr, timeout)?;
    stream.write_all(&[COUNTERS])?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    if raw.len() != GUEST_COUNTERS * 8 {
        return Err(mismatch("counters", GUEST_COUNTERS as u64 * 8, raw.len() as u64));
    }
    let mut out = [0u64; GUEST_COUNTERS];
    for (v, b) in out.iter_mut().zip(raw.chunks_exact(8)) {
        *v = u64::from_le_bytes(b.try_into().unwrap());
    }
    Ok(out)
}

/// `R`: sends `n` bytes, closes its side and reads the server's count.
/// Times from sending the request to receiving the count.
pub fn upload(addr: SocketAddr, n: u64, timeout: Duration) -> io::Result<Transfer> {
    let mut stream = connect(addr, timeout)?;
    let start = Instant::now();
    stream.write_all(&[RECEIVE])?;
    fill(&mut stream, n)?;
    stream.shutdown(Shutdown::Write)?;
    let mut count = [0u8; 8];
    stream.read_exact(&mut count)?;
    let elapsed = start.elapsed();
    let count = u64::from_le_bytes(count);
    if count != n {
        return Err(mismatch("upload: the server counted", n, count));
    }
    Ok(Transfer { elapsed, info: TcpInfo::of(&stream)? })
}

/// Gbit/s for `bytes` in `elapsed`.
pub fn gbits(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encoding() {
        assert_eq!(send_request(1), [b'S', 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(send_request(1 << 30)[1..], (1u64 << 30).to_le_bytes());
        assert_eq!(&pattern(28), b"abcdefghijklmnopqrstuvwxyzab");
    }

    #[test]
    fn fill_continues_the_pattern_across_chunks() {
        let n = CHUNK as u64 * 2 + 7;
        let mut out = Vec::new();
        fill(&mut out, n).unwrap();
        assert_eq!(out, pattern(n as usize));
    }

    #[test]
    fn tcp_info_fields_at_their_offsets() {
        let mut raw = [0u8; 240];
        raw[6] = 0x97;
        raw[68..72].copy_from_slice(&123u32.to_le_bytes());
        raw[80..84].copy_from_slice(&10u32.to_le_bytes());
        raw[100..104].copy_from_slice(&7u32.to_le_bytes());
        raw[176..184].copy_from_slice(&5000u64.to_le_bytes());
        raw[228..232].copy_from_slice(&65536u32.to_le_bytes());
        let i = TcpInfo::parse(&raw);
        assert_eq!((i.peer_wscale, i.own_wscale), (7, 9));
        assert_eq!((i.rtt_us, i.snd_cwnd, i.total_retrans), (123, 10, 7));
        assert_eq!((i.rwnd_limited_us, i.snd_wnd), (5000, 65536));
        // An older kernel's shorter struct: the missing fields are 0.
        let old = TcpInfo::parse(&raw[..104]);
        assert_eq!((old.total_retrans, old.snd_wnd, old.rwnd_limited_us), (7, 0, 0));
    }

    #[test]
    fn gbits_of_a_gigabyte_per_second() {
        assert_eq!(gbits(1_000_000_000, Duration::from_secs(8)), 1.0);
    }

    /// Both commands against the native server, over loopback.
    #[test]
    fn client_and_server_agree() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let server = s.spawn(|| serve_until(&listener, &stop));
            let t = Duration::from_secs(10);
            for n in [0, 1, 9, 1 << 20, 3 * CHUNK as u64 + 5] {
                download(addr, n, t).unwrap_or_else(|e| panic!("download {n}: {e}"));
                let up = upload(addr, n, t).unwrap_or_else(|e| panic!("upload {n}: {e}"));
                // The field offsets are right: the client sent and was
                // acknowledged for something, over loopback's window.
                assert!(up.info.snd_wnd > 0 || up.info.rtt_us > 0, "{:?}", up.info);
                assert!(up.info.snd_cwnd >= 1, "{:?}", up.info);
                assert_eq!(up.info.peer_wscale, up.info.own_wscale, "{:?}", up.info);
            }
            // The native server does not answer C.
            assert!(guest_counters(addr, t).is_err());
            // An unknown command: the server closes without an answer.
            let mut c = connect(addr, t).unwrap();
            c.write_all(b"X").unwrap();
            let mut rest = Vec::new();
            assert_eq!(c.read_to_end(&mut rest).map(|_| rest.len()).unwrap_or(0), 0);
            stop.store(true, Ordering::Relaxed);
            server.join().unwrap().unwrap();
        });
    }
}
