//! Socket options: what `setsockopt` stores and `getsockopt` reports, with
//! Linux's sizes and checks. The socket applies the ones that change a live
//! connection (see [`Opts::set`]'s result); those that depend on the
//! socket's state (`SO_ERROR`, `SO_TYPE`, `SO_ACCEPTCONN`) are answered by
//! the socket itself.

use core::time::Duration;

use super::super::c_int;
use super::super::fd::Res;

/// Smallest and largest buffer a socket gets, bytes.
pub const MIN_BUF: usize = 2048;
/// See [`MIN_BUF`].
pub const MAX_BUF: usize = 4 << 20;
/// The default receive buffer, bytes (`SO_RCVBUF` reports twice this, as
/// Linux reports its bookkeeping overhead: 131072, Linux's default for TCP
/// too).
pub const DEFAULT_BUF: usize = 64 * 1024;
/// The receive buffer of a TCP connection whose program did not set
/// `SO_RCVBUF`, while few connections have one this large (see
/// [`AUTO_RCVBUF_CONNECTIONS`]). Linux starts a connection's receive
/// buffer at 128 KiB and grows it with what the reader takes, up to 6 MiB
/// (`tcp_rmem`; a program that sets `SO_RCVBUF` turns that off); a ring
/// cannot grow, so a connection gets the larger window from its start. A
/// bulk receiver then wakes and acknowledges less often: std-echo's
/// 64 MiB stream took 6,100 tap `read`s of 11 KB, 1,280 `ppoll`s and
/// 1,230 ACK-only frames per stream with 64 KiB, 3,650 of 18 KB, 320 and
/// 250 with 1 MiB, and half the tender's CPU (docs/performance.md,
/// "Receive window"). `SO_RCVBUF` still reports the default's size, as
/// Linux reports its starting size before it grows.
pub const AUTO_RCVBUF: usize = 1 << 20;
/// How many connections of one listener (per interface) get
/// [`AUTO_RCVBUF`] at once; the next ones get [`DEFAULT_BUF`], as Linux
/// stops growing buffers under memory pressure (`tcp_mem`). Outgoing
/// connections (`connect`) get [`DEFAULT_BUF`].
pub const AUTO_RCVBUF_CONNECTIONS: usize = 4;
/// The default send buffer, bytes (`SO_SNDBUF` reports twice this).
/// Linux starts a TCP send buffer at 16 KiB and grows it with the
/// connection's window up to 4 MiB (`tcp_wmem`); smoltcp's ring cannot
/// grow, so it starts larger than the receive buffer: with 64 KiB, a
/// 1 MiB response went out in 16 rounds of the application's readiness
/// loop (write until `EAGAIN`, `epoll_wait`, write again), which cost the
/// guest twice the CPU per byte of 256 KiB (docs/performance.md,
/// "Existing Rust programs"). It costs 192 KiB more heap per connection.
pub const DEFAULT_SNDBUF: usize = 256 * 1024;

/// The options of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opts {
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub keepalive: bool,
    pub broadcast: bool,
    pub nodelay: bool,
    pub quickack: bool,
    /// `SO_RCVTIMEO`: how long a blocking receive waits (`None`: forever).
    pub rcvtimeo: Option<Duration>,
    /// `SO_SNDTIMEO`: how long a blocking send or connect waits.
    pub sndtimeo: Option<Duration>,
    /// Receive buffer, bytes (half what `SO_RCVBUF` reports).
    pub rcvbuf: usize,
    /// The program set `SO_RCVBUF`: its connections get `rcvbuf`, never
    /// [`AUTO_RCVBUF`].
    pub rcvbuf_set: bool,
    /// Send buffer, bytes.
    pub sndbuf: usize,
    /// `SO_LINGER`: `Some(seconds)` when on.
    pub linger: Option<u32>,
    pub ttl: u8,
    pub tos: u8,
    /// `TCP_KEEPIDLE`, `TCP_KEEPINTVL` (seconds), `TCP_KEEPCNT`.
    pub keepidle: u32,
    pub keepintvl: u32,
    pub keepcnt: u32,
    /// `TCP_USER_TIMEOUT`, milliseconds (0: the stack's default).
    pub user_timeout: u32,
    /// An `AF_INET6` socket (dual-stack: see `addr`); fixed at `socket`.
    pub six: bool,
    /// `IPV6_V6ONLY` (an `AF_INET6` socket's): IPv6 peers only.
    pub v6only: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            reuseaddr: false,
            reuseport: false,
            keepalive: false,
            broadcast: false,
            nodelay: false,
            quickack: true,
            rcvtimeo: None,
            sndtimeo: None,
            rcvbuf: DEFAULT_BUF,
            rcvbuf_set: false,
            sndbuf: DEFAULT_SNDBUF,
            linger: None,
            ttl: 64,
            tos: 0,
            keepidle: 7200,
            keepintvl: 75,
            keepcnt: 9,
            user_timeout: 0,
            six: false,
            v6only: false,
        }
    }
}

/// Which kind of socket the option is set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stream,
    Datagram,
}

/// What a `setsockopt` changed that a live connection must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    Nothing,
    Nodelay,
    KeepAlive,
    Ttl,
    UserTimeout,
    AckDelay,
}

/// A value `getsockopt` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Int(c_int),
    Time(Option<Duration>),
    Linger(Option<u32>),
}

impl Value {
    /// The bytes of the value, as the C structure (`int`, `timeval`,
    /// `linger`), in a buffer and its length.
    pub fn bytes(self) -> ([u8; 16], usize) {
        let mut out = [0u8; 16];
        let n = match self {
            Self::Int(v) => {
                out[..4].copy_from_slice(&v.to_ne_bytes());
                4
            }
            Self::Time(t) => {
                let t = t.unwrap_or_default();
                let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
                out[..8].copy_from_slice(&secs.to_ne_bytes());
                out[8..].copy_from_slice(&i64::from(t.subsec_micros()).to_ne_bytes());
                16
            }
            Self::Linger(l) => {
                out[..4].copy_from_slice(&c_int::from(l.is_some()).to_ne_bytes());
                let secs = c_int::try_from(l.unwrap_or(0)).unwrap_or(c_int::MAX);
                out[4..8].copy_from_slice(&secs.to_ne_bytes());
                8
            }
        };
        (out, n)
    }
}

/// An `int` option value: `EINVAL` if shorter than an `int` (Linux reads
/// the first 4 bytes of anything longer).
fn int(v: &[u8]) -> Res<c_int> {
    let b: [u8; 4] = v.get(..4).and_then(|b| b.try_into().ok()).ok_or(::libc::EINVAL)?;
    Ok(c_int::from_ne_bytes(b))
}

/// A `struct timeval` option value: `EINVAL` if short, `EDOM` for
/// microseconds out of range, as Linux; zero means no timeout, and a
/// negative time makes waits return at once (as Linux, which warns).
fn timeval(v: &[u8]) -> Res<Option<Duration>> {
    if v.len() < 16 {
        return Err(::libc::EINVAL);
    }
    let secs = i64::from_ne_bytes(v[..8].try_into().map_err(|_| ::libc::EINVAL)?);
    let usecs = i64::from_ne_bytes(v[8..16].try_into().map_err(|_| ::libc::EINVAL)?);
    if !(0..1_000_000).contains(&usecs) {
        return Err(::libc::EDOM);
    }
    if secs < 0 {
        return Ok(Some(Duration::ZERO));
    }
    if secs == 0 && usecs == 0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_secs(secs as u64) + Duration::from_micros(usecs as u64)))
}

/// A buffer size as `SO_RCVBUF`/`SO_SNDBUF` take it.
fn buf_size(v: c_int) -> usize {
    usize::try_from(v).unwrap_or(0).clamp(MIN_BUF, MAX_BUF)
}

impl Opts {
    /// `setsockopt(level, name, value)`: stores the option, or fails as
    /// Linux does (`ENOPROTOOPT` for an unknown or unsupported one,
    /// `EINVAL` for a short or bad value); says what a live connection must
    /// be told.
    pub fn set(&mut self, kind: Kind, level: c_int, name: c_int, v: &[u8]) -> Res<Apply> {
        let tcp = kind == Kind::Stream;
        match (level, name) {
            (::libc::SOL_SOCKET, ::libc::SO_REUSEADDR) => self.reuseaddr = int(v)? != 0,
            (::libc::SOL_SOCKET, ::libc::SO_REUSEPORT) => self.reuseport = int(v)? != 0,
            (::libc::SOL_SOCKET, ::libc::SO_BROADCAST) => self.broadcast = int(v)? != 0,
            (::libc::SOL_SOCKET, ::libc::SO_KEEPALIVE) => {
                self.keepalive = int(v)? != 0;
                return Ok(if tcp { Apply::KeepAlive } else { Apply::Nothing });
            }
            (::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO) => self.rcvtimeo = timeval(v)?,
            (::libc::SOL_SOCKET, ::libc::SO_SNDTIMEO) => self.sndtimeo = timeval(v)?,
            (::libc::SOL_SOCKET, ::libc::SO_RCVBUF) => {
                self.rcvbuf = buf_size(int(v)?);
                self.rcvbuf_set = true;
            }
            (::libc::SOL_SOCKET, ::libc::SO_SNDBUF) => self.sndbuf = buf_size(int(v)?),
            (::libc::SOL_SOCKET, ::libc::SO_LINGER) => {
                if v.len() < 8 {
                    return Err(::libc::EINVAL);
                }
                let on = int(&v[..4])? != 0;
                let secs = int(&v[4..8])?;
                self.linger = on.then_some(u32::try_from(secs).unwrap_or(0));
            }
            (::libc::IPPROTO_IP, ::libc::IP_TTL) => {
                let t = int(v)?;
                self.ttl = match t {
                    -1 => 64,
                    1..=255 => t as u8,
                    _ => return Err(::libc::EINVAL),
                };
                return Ok(Apply::Ttl);
            }
            (::libc::IPPROTO_IP, ::libc::IP_TOS) => self.tos = int(v)? as u8,
            (::libc::IPPROTO_IPV6, ::libc::IPV6_V6ONLY) if self.six => {
                self.v6only = int(v)? != 0;
            }
            (::libc::IPPROTO_TCP, _) if !tcp => return Err(::libc::ENOPROTOOPT),
            (::libc::IPPROTO_TCP, ::libc::TCP_NODELAY) => {
                self.nodelay = int(v)? != 0;
                return Ok(Apply::Nodelay);
            }
            (::libc::IPPROTO_TCP, ::libc::TCP_QUICKACK) => {
                self.quickack = int(v)? != 0;
                return Ok(Apply::AckDelay);
            }
            (::libc::IPPROTO_TCP, opt @ (::libc::TCP_KEEPIDLE | ::libc::TCP_KEEPINTVL)) => {
                let s = int(v)?;
                if !(1..=32767).contains(&s) {
                    return Err(::libc::EINVAL);
                }
                if opt == ::libc::TCP_KEEPIDLE {
                    self.keepidle = s as u32;
                } else {
                    self.keepintvl = s as u32;
                }
                return Ok(Apply::KeepAlive);
            }
            (::libc::IPPROTO_TCP, ::libc::TCP_KEEPCNT) => {
                let n = int(v)?;
                if !(1..=127).contains(&n) {
                    return Err(::libc::EINVAL);
                }
                self.keepcnt = n as u32;
            }
            (::libc::IPPROTO_TCP, ::libc::TCP_USER_TIMEOUT) => {
                self.user_timeout = u32::try_from(int(v)?).map_err(|_| ::libc::EINVAL)?;
                return Ok(Apply::UserTimeout);
            }
            _ => return Err(::libc::ENOPROTOOPT),
        }
        Ok(Apply::Nothing)
    }

    /// `getsockopt(level, name)` for the options stored here.
    pub fn get(&self, kind: Kind, level: c_int, name: c_int) -> Res<Value> {
        let b = |x: bool| Value::Int(c_int::from(x));
        let tcp = kind == Kind::Stream;
        Ok(match (level, name) {
            (::libc::SOL_SOCKET, ::libc::SO_REUSEADDR) => b(self.reuseaddr),
            (::libc::SOL_SOCKET, ::libc::SO_REUSEPORT) => b(self.reuseport),
            (::libc::SOL_SOCKET, ::libc::SO_BROADCAST) => b(self.broadcast),
            (::libc::SOL_SOCKET, ::libc::SO_KEEPALIVE) => b(self.keepalive),
            (::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO) => Value::Time(self.rcvtimeo),
            (::libc::SOL_SOCKET, ::libc::SO_SNDTIMEO) => Value::Time(self.sndtimeo),
            (::libc::SOL_SOCKET, ::libc::SO_RCVBUF) => Value::Int(2 * self.rcvbuf as c_int),
            (::libc::SOL_SOCKET, ::libc::SO_SNDBUF) => Value::Int(2 * self.sndbuf as c_int),
            (::libc::SOL_SOCKET, ::libc::SO_LINGER) => Value::Linger(self.linger),
            (::libc::SOL_SOCKET, ::libc::SO_DOMAIN) => {
                Value::Int(if self.six { ::libc::AF_INET6 } else { ::libc::AF_INET })
            }
            (::libc::SOL_SOCKET, ::libc::SO_PROTOCOL) => {
                Value::Int(if tcp { ::libc::IPPROTO_TCP } else { ::libc::IPPROTO_UDP })
            }
            (::libc::IPPROTO_IP, ::libc::IP_TTL) => Value::Int(c_int::from(self.ttl)),
            (::libc::IPPROTO_IP, ::libc::IP_TOS) => Value::Int(c_int::from(self.tos)),
            (::libc::IPPROTO_IPV6, ::libc::IPV6_V6ONLY) if self.six => b(self.v6only),
            (::libc::IPPROTO_TCP, _) if !tcp => return Err(::libc::ENOPROTOOPT),
            (::libc::IPPROTO_TCP, ::libc::TCP_NODELAY) => b(self.nodelay),
            (::libc::IPPROTO_TCP, ::libc::TCP_QUICKACK) => b(self.quickack),
            (::libc::IPPROTO_TCP, ::libc::TCP_KEEPIDLE) => Value::Int(self.keepidle as c_int),
            (::libc::IPPROTO_TCP, ::libc::TCP_KEEPINTVL) => Value::Int(self.keepintvl as c_int),
            (::libc::IPPROTO_TCP, ::libc::TCP_KEEPCNT) => Value::Int(self.keepcnt as c_int),
            (::libc::IPPROTO_TCP, ::libc::TCP_USER_TIMEOUT) => {
                Value::Int(self.user_timeout as c_int)
            }
            _ => return Err(::libc::ENOPROTOOPT),
        })
    }

    /// The keep-alive interval for the stack: the idle time before the
    /// first probe, when `SO_KEEPALIVE` is on.
    pub fn keep_alive(&self) -> Option<Duration> {
        self.keepalive.then(|| Duration::from_secs(u64::from(self.keepidle)))
    }

    /// How long the peer may stay silent while data is outstanding before
    /// the connection is aborted: `TCP_USER_TIMEOUT`, else with keep-alive
    /// on, the probes' time (`keepidle + keepintvl × keepcnt`).
    pub fn silence_timeout(&self) -> Option<Duration> {
        if self.user_timeout > 0 {
            return Some(Duration::from_millis(u64::from(self.user_timeout)));
        }
        self.keepalive
            .then(|| Duration::from_secs(u64::from(self.keepidle + self.keepintvl * self.keepcnt)))
    }

    /// The delayed-ACK timeout (`TCP_QUICKACK` off: Linux's 40 ms).
    pub fn ack_delay(&self) -> Option<Duration> {
        if self.quickack {
            Some(Duration::from_millis(10))
        } else {
            Some(Duration::from_millis(40))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(o: &mut Opts, level: c_int, name: c_int, v: &[u8]) -> Res<Apply> {
        o.set(Kind::Stream, level, name, v)
    }

    fn tv(secs: i64, usecs: i64) -> [u8; 16] {
        let mut b = [0; 16];
        b[..8].copy_from_slice(&secs.to_ne_bytes());
        b[8..].copy_from_slice(&usecs.to_ne_bytes());
        b
    }

    #[test]
    fn options_round_trip_with_linuxs_sizes() {
        let mut o = Opts::default();
        let one = 1i32.to_ne_bytes();
        assert_eq!(set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_REUSEADDR, &one), Ok(Apply::Nothing));
        assert_eq!(
            o.get(Kind::Stream, ::libc::SOL_SOCKET, ::libc::SO_REUSEADDR),
            Ok(Value::Int(1))
        );
        assert_eq!(set(&mut o, ::libc::IPPROTO_TCP, ::libc::TCP_NODELAY, &one), Ok(Apply::Nodelay));
        // Buffers: reported doubled; clamped.
        assert_eq!(
            o.get(Kind::Stream, ::libc::SOL_SOCKET, ::libc::SO_RCVBUF),
            Ok(Value::Int(131072))
        );
        assert_eq!(
            o.get(Kind::Stream, ::libc::SOL_SOCKET, ::libc::SO_SNDBUF),
            Ok(Value::Int(2 * DEFAULT_SNDBUF as c_int))
        );
        set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_SNDBUF, &10_000i32.to_ne_bytes()).unwrap();
        assert_eq!(o.sndbuf, 10_000);
        assert_eq!(
            o.get(Kind::Stream, ::libc::SOL_SOCKET, ::libc::SO_SNDBUF),
            Ok(Value::Int(20_000))
        );
        // A receive buffer the program sets is the one its connections
        // get (no automatic larger one), as setting it turns Linux's
        // autotuning off.
        assert!(!o.rcvbuf_set);
        set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_RCVBUF, &1i32.to_ne_bytes()).unwrap();
        assert_eq!(o.rcvbuf, MIN_BUF);
        assert!(o.rcvbuf_set);
        // Timeouts: timeval; zero is none; bad microseconds EDOM.
        set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO, &tv(1, 500_000)).unwrap();
        assert_eq!(o.rcvtimeo, Some(Duration::from_millis(1500)));
        let (bytes, n) =
            o.get(Kind::Stream, ::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO).unwrap().bytes();
        assert_eq!((&bytes[..n], n), (&tv(1, 500_000)[..], 16));
        set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO, &tv(0, 0)).unwrap();
        assert_eq!(o.rcvtimeo, None);
        assert_eq!(
            set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_SNDTIMEO, &tv(0, 1_000_000)),
            Err(::libc::EDOM)
        );
        assert_eq!(
            set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_SNDTIMEO, &[0; 8]),
            Err(::libc::EINVAL)
        );
        // Linger.
        let mut l = [0u8; 8];
        l[..4].copy_from_slice(&1i32.to_ne_bytes());
        set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_LINGER, &l).unwrap();
        assert_eq!(o.linger, Some(0));
        assert_eq!(
            o.get(Kind::Stream, ::libc::SOL_SOCKET, ::libc::SO_LINGER).unwrap().bytes().1,
            8
        );
        // TTL: 1..=255, -1 the default.
        assert_eq!(
            set(&mut o, ::libc::IPPROTO_IP, ::libc::IP_TTL, &0i32.to_ne_bytes()),
            Err(::libc::EINVAL)
        );
        set(&mut o, ::libc::IPPROTO_IP, ::libc::IP_TTL, &7i32.to_ne_bytes()).unwrap();
        assert_eq!(o.ttl, 7);
        set(&mut o, ::libc::IPPROTO_IP, ::libc::IP_TTL, &(-1i32).to_ne_bytes()).unwrap();
        assert_eq!(o.ttl, 64);
    }

    #[test]
    fn unknown_short_or_misplaced_options_fail_as_on_linux() {
        let mut o = Opts::default();
        assert_eq!(
            set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_REUSEADDR, &[1, 0]),
            Err(::libc::EINVAL)
        );
        assert_eq!(
            set(&mut o, ::libc::IPPROTO_IP, ::libc::IP_ADD_MEMBERSHIP, &[0; 8]),
            Err(::libc::ENOPROTOOPT)
        );
        assert_eq!(
            o.set(Kind::Datagram, ::libc::IPPROTO_TCP, ::libc::TCP_NODELAY, &[1, 0, 0, 0]),
            Err(::libc::ENOPROTOOPT)
        );
        assert_eq!(o.get(Kind::Stream, 999, 1), Err(::libc::ENOPROTOOPT));
        assert_eq!(
            set(&mut o, ::libc::IPPROTO_TCP, ::libc::TCP_KEEPIDLE, &0i32.to_ne_bytes()),
            Err(::libc::EINVAL)
        );
    }

    #[test]
    fn keep_alive_and_user_timeout_become_the_stacks_timers() {
        let mut o = Opts::default();
        assert_eq!((o.keep_alive(), o.silence_timeout()), (None, None));
        set(&mut o, ::libc::SOL_SOCKET, ::libc::SO_KEEPALIVE, &1i32.to_ne_bytes()).unwrap();
        set(&mut o, ::libc::IPPROTO_TCP, ::libc::TCP_KEEPIDLE, &10i32.to_ne_bytes()).unwrap();
        assert_eq!(o.keep_alive(), Some(Duration::from_secs(10)));
        assert_eq!(o.silence_timeout(), Some(Duration::from_secs(10 + 75 * 9)));
        set(&mut o, ::libc::IPPROTO_TCP, ::libc::TCP_USER_TIMEOUT, &2500i32.to_ne_bytes()).unwrap();
        assert_eq!(o.silence_timeout(), Some(Duration::from_millis(2500)));
    }
}
