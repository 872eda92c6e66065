//! One connection's request side, without I/O: what httpd keeps of the
//! bytes a client sent, and until when it waits for more.
//!
//! [`Conn`] holds the unparsed start of the next request head (never more
//! than [`MAX_BUFFERED`] bytes), counts the bytes of a request body still to
//! come so that they are discarded as they arrive rather than kept, refuses
//! a body larger than [`Limits::max_body`] (413), and gives every wait a
//! deadline: a whole request head must arrive within
//! [`Limits::header_timeout`] (not each read: one byte now and then does
//! not keep a connection), its body within [`Limits::body_timeout`], and
//! the next request of a kept-alive connection within
//! [`Limits::keepalive_timeout`]. The server asks [`Conn::next`] what to do;
//! it reads only when told to, after it has written what it owes
//! ([`OUT_MAX`] bounds what it may hold), so a client that does not read
//! its responses is not read from either.
//!
//! Times are durations since any fixed point (httpd uses its boot).

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::{MAX_HEAD, Parsed, Request, Status, parse};

/// Most bytes the server reads from a connection at a time.
pub const READ_CHUNK: usize = 4096;
/// Most bytes a connection buffers of what its client sent: a request head
/// not complete yet, and one read after it.
pub const MAX_BUFFERED: usize = MAX_HEAD + READ_CHUNK;
/// Responses the server may collect for a connection before it writes
/// them: pipelined requests are answered in one write up to this size, and
/// none is parsed while more waits to be written. (A larger response body
/// goes to the socket straight from the file cache or the disk, in pieces
/// of at most [`WRITE_MAX`].)
pub const OUT_MAX: usize = 16 * 1024;
/// Most bytes the server hands the socket in one write, each under
/// [`Limits::send_timeout`].
pub const WRITE_MAX: usize = 64 * 1024;

/// The limits a connection works under; `HTTPD_*` environment variables
/// override the defaults (see [`Limits::from_env`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted (and discarded): a larger
    /// `Content-Length` gets 413 and the connection is closed.
    pub max_body: u64,
    /// Time for a whole request head: from a connection's start for its
    /// first request, from its first byte for the next ones.
    pub header_timeout: Duration,
    /// Time for a whole request body, from the end of its head.
    pub body_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub keepalive_timeout: Duration,
    /// Time for each write of at most [`WRITE_MAX`] bytes to be taken by
    /// the socket (whose buffer empties only as the client reads).
    pub send_timeout: Duration,
    /// After `SIGTERM` or `SIGINT`: how long the requests under way may
    /// take to finish before the server exits anyway.
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

/// An environment variable with a value httpd cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSetting {
    /// The variable.
    pub name: &'static str,
    /// What it takes.
    pub expected: &'static str,
}

impl fmt::Display for BadSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} must be {}", self.name, self.expected)
    }
}

impl core::error::Error for BadSetting {}

const SIZE: &str = "a size in bytes, with an optional k, m or g suffix (1m)";
const TIME: &str = "a time, in seconds or with an ms, s or m suffix (20s, 500ms), above 0";

impl Limits {
    /// The defaults, with what `var` gives for `HTTPD_MAX_BODY`,
    /// `HTTPD_HEADER_TIMEOUT`, `HTTPD_BODY_TIMEOUT`,
    /// `HTTPD_KEEPALIVE_TIMEOUT`, `HTTPD_SEND_TIMEOUT` and
    /// `HTTPD_SHUTDOWN_TIMEOUT` (nginx's forms:
    /// `1m`, `512k`; `20s`, `500ms`, `1m`; a bare number is bytes or
    /// seconds).
    pub fn from_env<'a>(var: impl Fn(&str) -> Option<&'a str>) -> Result<Self, BadSetting> {
        let mut l = Self::default();
        if let Some(v) = var("HTTPD_MAX_BODY") {
            l.max_body =
                parse_size(v).ok_or(BadSetting { name: "HTTPD_MAX_BODY", expected: SIZE })?;
        }
        for (name, field) in [
            ("HTTPD_HEADER_TIMEOUT", &mut l.header_timeout),
            ("HTTPD_BODY_TIMEOUT", &mut l.body_timeout),
            ("HTTPD_KEEPALIVE_TIMEOUT", &mut l.keepalive_timeout),
            ("HTTPD_SEND_TIMEOUT", &mut l.send_timeout),
            ("HTTPD_SHUTDOWN_TIMEOUT", &mut l.shutdown_timeout),
        ] {
            if let Some(v) = var(name) {
                *field = parse_time(v).ok_or(BadSetting { name, expected: TIME })?;
            }
        }
        Ok(l)
    }
}

/// `1048576`, `1024k`, `1m`, `1g` (nginx's size syntax).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// `20`, `20s`, `500ms`, `2m`: more than zero, at most a day.
pub fn parse_time(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, millis) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1u64)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = s.strip_suffix('m') {
        (d, 60_000)
    } else {
        (s, 1000)
    };
    let ms = digits.parse::<u64>().ok()?.checked_mul(millis)?;
    (1..=86_400_000).contains(&ms).then(|| Duration::from_millis(ms))
}

/// The heap had no room for a connection's buffer: the server drops that
/// connection, and the guest goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

impl fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("out of memory for a connection's buffer")
    }
}

impl core::error::Error for OutOfMemory {}

/// What the server does next on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Answer this request (its body, if any, is discarded as it comes);
    /// then call [`Conn::answered`].
    Request(Request),
    /// Answer with this status and close the connection.
    Refuse(Status),
    /// Write what is pending, then read (at most [`READ_CHUNK`] bytes) and
    /// hand the bytes to [`Conn::received`]; close the connection if
    /// nothing came by `deadline`. `idle`: no request is under way (no byte
    /// of one received), so the connection may be closed to make room for
    /// another.
    Read { deadline: Duration, idle: bool },
    /// The request or the wait took too long: close the connection.
    TimedOut,
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request.
    Idle,
    /// Some of a request head has come.
    Head,
    /// A body is being discarded.
    Body,
}

/// One connection's received bytes and deadline (see the module docs).
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    /// The unparsed start of the next request(s).
    buf: Vec<u8>,
    /// Bytes of the current request's body not received yet.
    body_left: u64,
    phase: Phase,
    /// When the current wait ends.
    deadline: Duration,
    /// Requests parsed so far.
    requests: u64,
}

impl Conn {
    /// A connection accepted at `now`; it holds no buffer until its client
    /// sends something.
    pub fn new(now: Duration, limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            body_left: 0,
            phase: Phase::Idle,
            deadline: now.saturating_add(limits.header_timeout),
            requests: 0,
        }
    }

    /// The limits it works under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes buffered (at most [`MAX_BUFFERED`]).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The buffer's capacity (what it costs of the heap).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether no request is under way (see [`Next::Read`]).
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle && self.buf.is_empty()
    }

    /// What to do at `now`.
    pub fn next(&mut self, now: Duration) -> Next {
        if self.body_left == 0 && !self.buf.is_empty() {
            match parse(&self.buf) {
                Parsed::Partial => {}
                Parsed::Error(status) => return Next::Refuse(status),
                Parsed::Request { request, len } => {
                    if request.body_len as u64 > self.limits.max_body {
                        return Next::Refuse(Status::TooLarge);
                    }
                    self.requests += 1;
                    self.buf.drain(..len);
                    self.body_left = request.body_len as u64;
                    self.discard_buffered_body();
                    if self.body_left > 0 {
                        self.phase = Phase::Body;
                        self.deadline = now.saturating_add(self.limits.body_timeout);
                    }
                    return Next::Request(request);
                }
            }
        }
        if now >= self.deadline {
            return Next::TimedOut;
        }
        Next::Read { deadline: self.deadline, idle: self.is_idle() }
    }

    /// The server has answered the request [`next`](Self::next) gave it, at
    /// `now`: the next request's wait begins (unless a body is still
    /// coming, whose deadline stands).
    pub fn answered(&mut self, now: Duration) {
        match (self.phase, self.buf.is_empty()) {
            (Phase::Body, _) => {}
            (_, true) => self.idle(now),
            // Pipelined bytes of the next request came meanwhile.
            (_, false) => {
                self.phase = Phase::Head;
                self.deadline = now.saturating_add(self.limits.header_timeout);
            }
        }
    }

    /// Takes `data`, read at `now` (at most [`READ_CHUNK`] bytes, read when
    /// [`next`](Self::next) said so): body bytes are dropped, the rest is
    /// kept for the parser.
    pub fn received(&mut self, data: &[u8], now: Duration) -> Result<(), OutOfMemory> {
        let skip = data.len().min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
        self.body_left -= skip as u64;
        let data = &data[skip..];
        if self.phase == Phase::Body && self.body_left == 0 {
            self.idle(now);
        }
        if data.is_empty() {
            return Ok(());
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            // A connection's first request has had its time since the
            // connection began; later ones get theirs from their first byte.
            if self.requests > 0 {
                self.deadline = now.saturating_add(self.limits.header_timeout);
            }
        }
        debug_assert!(self.buf.len() + data.len() <= MAX_BUFFERED, "read when told to");
        let want = self.buf.len() + data.len();
        if want > self.buf.capacity() {
            // A read's worth first (a request head is most often shorter),
            // then, for a longer head or pipelined requests, the most it
            // will hold: it grows twice at most, and never past that.
            let cap = if want <= READ_CHUNK { READ_CHUNK } else { MAX_BUFFERED };
            self.buf.try_reserve_exact(cap - self.buf.len()).map_err(|_| OutOfMemory)?;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn idle(&mut self, now: Duration) {
        self.phase = Phase::Idle;
        self.deadline = now.saturating_add(self.limits.keepalive_timeout);
    }

    /// Drops the body bytes that came with the head.
    fn discard_buffered_body(&mut self) {
        let n = self.buf.len().min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
        if n > 0 {
            self.buf.drain(..n);
            self.body_left -= n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;

    const S: Duration = Duration::from_secs(1);

    fn limits() -> Limits {
        Limits {
            max_body: 100,
            header_timeout: 10 * S,
            body_timeout: 20 * S,
            keepalive_timeout: 30 * S,
            send_timeout: 40 * S,
            shutdown_timeout: 50 * S,
        }
    }

    fn request(c: &mut Conn, now: Duration) -> Request {
        match c.next(now) {
            Next::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_parse_as_nginx_writes_them() {
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size("99999999999g"), None);
        assert_eq!(parse_time("20"), Some(20 * S));
        assert_eq!(parse_time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time("2m"), Some(120 * S));
        assert_eq!(parse_time("0"), None);
        assert_eq!(parse_time("-1s"), None);
        let env = |name: &str| match name {
            "HTTPD_MAX_BODY" => Some("2k"),
            "HTTPD_HEADER_TIMEOUT" => Some("2"),
            _ => None,
        };
        let l = Limits::from_env(env).unwrap();
        assert_eq!((l.max_body, l.header_timeout), (2048, 2 * S));
        assert_eq!(l.send_timeout, Limits::default().send_timeout);
        let bad = Limits::from_env(|n| (n == "HTTPD_SEND_TIMEOUT").then_some("soon"));
        assert_eq!(bad.unwrap_err().name, "HTTPD_SEND_TIMEOUT");
    }

    #[test]
    fn a_head_must_arrive_whole_within_the_header_timeout() {
        let mut c = Conn::new(Duration::ZERO, limits());
        // One byte every 9 s: each read is within the timeout, the head is not.
        for t in [0, 9] {
            assert!(matches!(c.next(t * S), Next::Read { deadline, .. } if deadline == 10 * S));
            c.received(b"G", t * S).unwrap();
        }
        assert_eq!(c.next(10 * S), Next::TimedOut);
    }

    #[test]
    fn later_requests_get_the_header_timeout_from_their_first_byte() {
        let mut c = Conn::new(Duration::ZERO, limits());
        c.received(b"GET / HTTP/1.1\r\n\r\n", S).unwrap();
        request(&mut c, S);
        c.answered(2 * S);
        assert_eq!(c.next(3 * S), Next::Read { deadline: 32 * S, idle: true });
        c.received(b"GET", 25 * S).unwrap();
        assert_eq!(c.next(25 * S), Next::Read { deadline: 35 * S, idle: false });
        assert_eq!(c.next(35 * S), Next::TimedOut);
    }

    #[test]
    fn bodies_are_discarded_and_the_next_request_served() {
        let mut c = Conn::new(Duration::ZERO, limits());
        c.received(b"GET /a HTTP/1.1\r\nContent-Length: 50\r\n\r\n0123456789", S).unwrap();
        assert_eq!(request(&mut c, S).path, "/a");
        assert_eq!(c.buffered(), 0, "body bytes are not kept");
        c.answered(S);
        assert_eq!(c.next(S), Next::Read { deadline: 21 * S, idle: false });
        c.received(&[b'x'; 30], 2 * S).unwrap();
        c.received(b"0123456789GET /b HTTP/1.1\r\n\r\n", 3 * S).unwrap();
        let r = request(&mut c, 3 * S);
        assert_eq!((r.path.as_str(), r.method), ("/b", Method::Get));
        assert_eq!(c.buffered(), 0);
    }

    #[test]
    fn a_body_over_the_limit_is_refused() {
        let mut c = Conn::new(Duration::ZERO, limits());
        c.received(b"GET / HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n", S).unwrap();
        assert_eq!(c.next(S), Next::Refuse(Status::TooLarge));
        let mut c = Conn::new(Duration::ZERO, limits());
        c.received(b"GET / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", S).unwrap();
        assert_eq!(c.next(S), Next::Refuse(Status::TooLarge));
    }

    #[test]
    fn a_slow_body_times_out() {
        let mut c = Conn::new(Duration::ZERO, limits());
        c.received(b"GET / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", S).unwrap();
        request(&mut c, S);
        c.answered(S);
        for t in 2..21 {
            c.received(b"x", t * S).unwrap();
        }
        assert_eq!(c.next(21 * S), Next::TimedOut);
    }

    #[test]
    fn pipelined_requests_are_taken_one_at_a_time_and_the_buffer_stays_bounded() {
        let mut c = Conn::new(Duration::ZERO, limits());
        let one = b"GET /x HTTP/1.1\r\n\r\n";
        let mut sent = 0;
        let mut answered = 0;
        while answered < 1000 {
            match c.next(S) {
                Next::Request(_) => {
                    answered += 1;
                    c.answered(S);
                }
                Next::Read { .. } => {
                    let chunk: Vec<u8> = one
                        .iter()
                        .cycle()
                        .skip(sent % one.len())
                        .take(READ_CHUNK)
                        .copied()
                        .collect();
                    c.received(&chunk, S).unwrap();
                    sent += chunk.len();
                }
                other => panic!("{other:?}"),
            }
            assert!(c.buffered() <= MAX_BUFFERED && c.capacity() <= MAX_BUFFERED);
        }
        assert!(sent < 1001 * one.len() + READ_CHUNK, "read only when the requests were taken");
    }

    #[test]
    fn short_heads_hold_a_read_and_long_ones_the_most() {
        let mut c = Conn::new(Duration::ZERO, limits());
        c.received(b"GET / HTTP/1.1\r\n", S).unwrap();
        assert_eq!(c.capacity(), READ_CHUNK, "a read's worth for a short head");
        let filler = [b'a'; READ_CHUNK];
        c.received(&filler, S).unwrap();
        assert_eq!(c.capacity(), MAX_BUFFERED, "then the most it may hold, at once");
    }

    #[test]
    fn an_idle_connection_says_so() {
        let mut c = Conn::new(Duration::ZERO, limits());
        assert!(c.is_idle());
        assert_eq!(c.capacity(), 0, "no buffer before the first byte");
        assert_eq!(c.next(Duration::ZERO), Next::Read { deadline: 10 * S, idle: true });
        c.received(b"G", S).unwrap();
        assert!(!c.is_idle());
    }
}
