//! The tcpperf protocol (see `examples/tcpperf`) over std's TCP: the
//! client, and a native server that speaks it the same way as the guest.
//!
//! | client sends | server |
//! |---|---|
//! | `S`, then N as 8 bytes little-endian | sends N bytes, then closes |
//! | `R`, then bytes, then closes its side | reads to end of stream, writes the count as 8 bytes little-endian, closes |

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes per `read`/`write` call, on both sides.
const CHUNK: usize = 256 * 1024;

/// A command, as its first byte.
const SEND: u8 = b'S';
/// The other command.
const RECEIVE: u8 = b'R';

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
/// Returns the time from sending the request to the end of stream.
pub fn download(addr: SocketAddr, n: u64, timeout: Duration) -> io::Result<Duration> {
    let mut stream = connect(addr, timeout)?;
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    stream.write_all(&send_request(n))?;
    let got = drain(&mut stream, &mut buf)?;
    let elapsed = start.elapsed();
    if got != n {
        return Err(mismatch("download", n, got));
    }
    Ok(elapsed)
}

/// `R`: sends `n` bytes, closes its side and reads the server's count.
/// Returns the time from sending the request to receiving the count.
pub fn upload(addr: SocketAddr, n: u64, timeout: Duration) -> io::Result<Duration> {
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
    Ok(elapsed)
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
                upload(addr, n, t).unwrap_or_else(|e| panic!("upload {n}: {e}"));
            }
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
