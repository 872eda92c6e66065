//! The resolver behind `getaddrinfo` and `getnameinfo`: names (and
//! addresses) are looked up in `/etc/hosts`, then asked of the DNS servers
//! `/etc/resolv.conf` names, as glibc's `files dns` order does (docs/std.md,
//! "Name resolution").
//!
//! * `/etc/resolv.conf`: up to 3 `nameserver` lines (IPv4; IPv6 servers
//!   are skipped, the guest has no IPv6 address), `search` (or `domain`:
//!   the last of the two wins, as glibc), `options ndots:N timeout:N
//!   attempts:N` (defaults 1, 5 s, 2; capped at glibc's 15, 30 s, 5).
//!   Without the file (or without a server in it) no DNS is asked.
//! * The names tried, as glibc's `res_search`: a name ending in `.` only
//!   as it is; one with at least `ndots` dots as it is first, then with
//!   each search domain; one with fewer, with each search domain first and
//!   as it is last.
//! * Each name: an A query (RD set) from a fresh UDP socket on a random
//!   port with a random id, to each server in turn, `attempts` rounds,
//!   waiting `timeout` for each. Only a datagram from the server asked
//!   that parses as the reply to that id and question is taken; anything
//!   else is dropped and the wait goes on. `NXDOMAIN` and an answer
//!   without an address end the name (the next is tried); `SERVFAIL`,
//!   `REFUSED` and any other error send the query to the next server. A
//!   truncated answer (TC: an A answer for one name fits in 512 bytes
//!   unless it holds some 28 addresses, as a Kubernetes headless service
//!   with many pods may) is asked again of the same server over TCP, as
//!   glibc does, with a `timeout` of its own; a TCP answer that fails or
//!   is itself truncated counts as that server's failure.
//! * An address's name ([`reverse`], for `getnameinfo`): a PTR query for
//!   `D.C.B.A.in-addr.arpa` (or the `ip6.arpa` name) as it is (no search
//!   domains), asked and answered as above, CNAMEs followed (RFC 2317's
//!   classless delegation).
//!
//! The reply parser ([`parse_reply`]) takes hostile bytes: every length
//! and compression pointer is checked against the packet, a name is at
//! most 255 bytes and follows at most [`MAX_JUMPS`] pointers, a CNAME
//! chain at most [`MAX_CNAMES`] links, and what it keeps is bounded by the
//! packet's size. The `dns` fuzz target (fuzz/) compiles this file as it
//! is, without the guest's transport (`cfg(fuzzing)`).

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;

/// Most servers taken from `resolv.conf` (glibc's `MAXNS`).
pub const MAXNS: usize = 3;
/// Most search domains (glibc's `MAXDNSRCH`).
pub const MAXDNSRCH: usize = 6;
/// Most compression pointers one name may follow.
pub const MAX_JUMPS: usize = 32;
/// Most CNAME links followed from the question's name.
pub const MAX_CNAMES: usize = 16;
/// Largest reply read over UDP (a reply to a query without EDNS is at
/// most 512 bytes; anything longer is cut here). Over TCP a reply is at
/// most what its 16-bit length says, 65,535 bytes.
pub const MAX_REPLY: usize = 4096;

/// What `resolv.conf` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    /// The servers, at most [`MAXNS`].
    pub servers: Vec<Ipv4Addr>,
    /// The search domains, at most [`MAXDNSRCH`], without their final dot.
    pub search: Vec<String>,
    /// `options ndots:`.
    pub ndots: usize,
    /// `options timeout:`, per server and attempt.
    pub timeout: Duration,
    /// `options attempts:`.
    pub attempts: usize,
}

impl Default for Conf {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

impl Conf {
    /// Parses `resolv.conf` as glibc does: keywords at the start of a line,
    /// `#` and `;` begin comments, unknown lines are ignored.
    pub fn parse(text: &[u8]) -> Self {
        let mut c = Self::default();
        for line in text.split(|&b| b == b'\n') {
            if matches!(line.first(), Some(b'#' | b';')) {
                continue;
            }
            let line = core::str::from_utf8(line).unwrap_or("");
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse::<Ipv4Addr>().ok())
                        && c.servers.len() < MAXNS
                    {
                        c.servers.push(ip);
                    }
                }
                Some(kw @ ("search" | "domain")) => {
                    c.search.clear();
                    let take = if kw == "domain" { 1 } else { MAXDNSRCH };
                    for w in words.take_while(|w| !w.starts_with(['#', ';'])).take(take) {
                        let d = w.strip_suffix('.').unwrap_or(w);
                        if !d.is_empty() {
                            c.search.push(d.into());
                        }
                    }
                }
                Some("options") => {
                    for w in words {
                        let n = |p: &str| w.strip_prefix(p).and_then(|v| v.parse::<usize>().ok());
                        if let Some(v) = n("ndots:") {
                            c.ndots = v.min(15);
                        } else if let Some(v) = n("timeout:") {
                            c.timeout = Duration::from_secs(v.clamp(1, 30) as u64);
                        } else if let Some(v) = n("attempts:") {
                            c.attempts = v.clamp(1, 5);
                        }
                    }
                }
                _ => {}
            }
        }
        c
    }
}

/// Whether `a` and `b` are the same host name (ASCII case ignored, a
/// final dot ignored).
fn same_name(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

/// The addresses `/etc/hosts` (`text`) gives `name`, in the file's order,
/// and the canonical name (the first name of the first line that has it).
pub fn hosts_lookup(text: &[u8], name: &str) -> Option<(String, Vec<IpAddr>)> {
    let mut canon = None;
    let mut addrs = Vec::new();
    for (ip, names) in hosts_lines(text) {
        if names.iter().any(|n| same_name(n, name)) {
            canon.get_or_insert_with(|| String::from(names[0]));
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
    }
    canon.map(|c| (c, addrs))
}

/// The name `/etc/hosts` (`text`) gives `ip`: the first name of the
/// first line with that address.
pub fn hosts_name_of(text: &[u8], ip: IpAddr) -> Option<String> {
    hosts_lines(text).find_map(|(here, names)| {
        (here == ip).then(|| names.first().map(|n| String::from(*n))).flatten()
    })
}

/// The lines of `/etc/hosts` (`text`) that begin with an address: the
/// address and the names after it (comments left out).
fn hosts_lines(text: &[u8]) -> impl Iterator<Item = (IpAddr, Vec<&str>)> {
    text.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.split(|&b| b == b'#').next().unwrap_or(&[]);
        let mut words = core::str::from_utf8(line).ok()?.split_ascii_whitespace();
        let ip = words.next()?.parse::<IpAddr>().ok()?;
        Some((ip, words.collect()))
    })
}

/// Whether `name` can be asked of DNS: labels of 1 to 63 printable ASCII
/// bytes other than space, at most 253 bytes in all (a final dot aside).
pub fn valid_name(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| !l.is_empty() && l.len() <= 63)
        && n.bytes().all(|b| b.is_ascii_graphic())
}

/// The names asked for `name`, in order (see the module's documentation).
pub fn candidates(name: &str, conf: &Conf) -> Vec<String> {
    if let Some(abs) = name.strip_suffix('.') {
        return [String::from(abs)].into();
    }
    let dots = name.bytes().filter(|&b| b == b'.').count();
    let mut out = Vec::new();
    if dots >= conf.ndots {
        out.push(String::from(name));
    }
    for d in &conf.search {
        let full = alloc::format!("{name}.{d}");
        if valid_name(&full) {
            out.push(full);
        }
    }
    if dots < conf.ndots {
        out.push(String::from(name));
    }
    out
}

/// `name` (valid, see [`valid_name`]) in DNS wire form, lower case.
fn wire_name(name: &str) -> Vec<u8> {
    let n = name.strip_suffix('.').unwrap_or(name);
    let mut w = Vec::with_capacity(n.len() + 2);
    for label in n.split('.') {
        w.push(label.len() as u8);
        w.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    w.push(0);
    w
}

/// What is asked of a name: its addresses, or (for an `in-addr.arpa`
/// name) the host name it points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// Type A.
    A,
    /// Type PTR.
    Ptr,
}

impl Question {
    fn qtype(self) -> u16 {
        match self {
            Question::A => 1,
            Question::Ptr => 12,
        }
    }
}

/// A query for `name` (valid) with `id`, recursion desired.
pub fn query(id: u16, name: &str, question: Question) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&wire_name(name));
    q.extend_from_slice(&question.qtype().to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// What a server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The name's addresses, and its canonical name (the end of the CNAME
    /// chain), as text.
    Addresses(String, Vec<Ipv4Addr>),
    /// The host names an `in-addr.arpa` name points to (PTR), as text.
    Names(Vec<String>),
    /// The name exists and has no address.
    NoData,
    /// The name does not exist (`NXDOMAIN`).
    NxDomain,
    /// The server failed (`SERVFAIL`, `REFUSED`, ...): the next server is
    /// asked.
    ServerFailed,
    /// The server cut the answer (TC): it is asked again over TCP.
    Truncated,
}

fn u16_at(p: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(off)?, *p.get(off + 1)?]))
}

/// Reads the (possibly compressed) name at `off` of `p` into `out` (wire
/// form, lower case); returns the offset just after the name where it
/// began. `None` if it is malformed: a length or pointer outside the
/// packet, more than 255 bytes, more than [`MAX_JUMPS`] pointers, a
/// reserved label type.
fn read_name(p: &[u8], mut off: usize, out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = usize::from(*p.get(off)?);
        match len & 0xc0 {
            0x00 if len == 0 => {
                out.push(0);
                return (out.len() <= 255).then_some(after.unwrap_or(off + 1));
            }
            0x00 => {
                let label = p.get(off + 1..off + 1 + len)?;
                if out.len() + 1 + len + 1 > 255 {
                    return None;
                }
                out.push(len as u8);
                out.extend(label.iter().map(|b| b.to_ascii_lowercase()));
                off += 1 + len;
            }
            0xc0 => {
                let target = ((len & 0x3f) << 8) | usize::from(*p.get(off + 1)?);
                after.get_or_insert(off + 2);
                jumps += 1;
                if jumps > MAX_JUMPS || target >= p.len() {
                    return None;
                }
                off = target;
            }
            _ => return None,
        }
    }
}

/// A wire-form name as text; bytes that are not printable ASCII (or are a
/// `.` or `\` inside a label) as `\DDD`, as glibc's `dn_expand` writes them.
fn name_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while let Some(&len) = wire.get(i) {
        if len == 0 {
            break;
        }
        if !s.is_empty() {
            s.push('.');
        }
        for &b in wire.get(i + 1..i + 1 + usize::from(len)).unwrap_or(&[]) {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&alloc::format!("\\{b:03}"));
            }
        }
        i += 1 + usize::from(len);
    }
    s
}

/// A record of the answer section that matters here.
enum Record {
    A(Ipv4Addr),
    Ptr(Vec<u8>),
    Cname(Vec<u8>),
}

/// The name in the data of the record at `start..end` of `p`: it lies
/// inside the data (its pointers may lead anywhere in the packet).
fn rdata_name(p: &[u8], start: usize, end: usize) -> Option<Vec<u8>> {
    let mut target = Vec::new();
    (read_name(p, start, &mut target)? <= end).then_some(target)
}

/// Parses `p` as the reply to the query (`question`) with `id` for
/// `name`. `None` when it is not that (another id, not a reply, another
/// question) or is malformed: such a datagram is dropped. See the
/// module's documentation for what the parser guarantees.
pub fn parse_reply(p: &[u8], id: u16, name: &str, question: Question) -> Option<Reply> {
    if p.len() < 12 || u16_at(p, 0)? != id {
        return None;
    }
    let (flags, qd, an) = (u16_at(p, 2)?, u16_at(p, 4)?, u16_at(p, 6)?);
    let (qr, opcode, tc, rcode) = (flags >> 15, (flags >> 11) & 0xf, flags & 0x0200, flags & 0xf);
    if qr != 1 || opcode != 0 || qd != 1 {
        return None;
    }
    let mut owner = Vec::new();
    let mut off = read_name(p, 12, &mut owner)?;
    if owner != wire_name(name) || u16_at(p, off)? != question.qtype() || u16_at(p, off + 2)? != 1 {
        return None;
    }
    off += 4;
    if tc != 0 {
        return Some(Reply::Truncated);
    }
    match rcode {
        0 => {}
        3 => return Some(Reply::NxDomain),
        _ => return Some(Reply::ServerFailed),
    }
    // Each record takes at least 11 bytes of the packet: what is kept is
    // bounded by its length, whatever `an` claims.
    let mut records: Vec<(Vec<u8>, Record)> = Vec::new();
    for _ in 0..an {
        off = read_name(p, off, &mut owner)?;
        let (ty, class, rdlen) = (u16_at(p, off)?, u16_at(p, off + 2)?, u16_at(p, off + 8)?);
        let start = off + 10;
        let end = start + usize::from(rdlen);
        let rdata = p.get(start..end)?;
        if class == 1 && ty == 1 && rdata.len() == 4 && question == Question::A {
            let ip = Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]);
            records.push((owner.clone(), Record::A(ip)));
        } else if class == 1 && ty == 12 && question == Question::Ptr {
            records.push((owner.clone(), Record::Ptr(rdata_name(p, start, end)?)));
        } else if class == 1 && ty == 5 {
            records.push((owner.clone(), Record::Cname(rdata_name(p, start, end)?)));
        }
        off = end;
    }
    let mut current = wire_name(name);
    for _ in 0..=MAX_CNAMES {
        let addrs: Vec<Ipv4Addr> = records
            .iter()
            .filter_map(|(o, r)| match r {
                Record::A(ip) if *o == current => Some(*ip),
                _ => None,
            })
            .collect();
        if !addrs.is_empty() {
            return Some(Reply::Addresses(name_text(&current), addrs));
        }
        let names: Vec<String> = records
            .iter()
            .filter_map(|(o, r)| match r {
                Record::Ptr(n) if *o == current => Some(name_text(n)),
                _ => None,
            })
            .collect();
        if !names.is_empty() {
            return Some(Reply::Names(names));
        }
        let next = records.iter().find_map(|(o, r)| match r {
            Record::Cname(t) if *o == current => Some(t.clone()),
            _ => None,
        });
        match next {
            Some(t) => current = t,
            None => break,
        }
    }
    Some(Reply::NoData)
}

/// How a query reaches a server: sends `query` to `server` (port 53) and
/// waits up to `timeout` for a datagram from it that `accept` takes.
pub trait Transport {
    /// The reply `accept` took, `None` on timeout (or if nothing could be
    /// sent).
    fn exchange(
        &mut self,
        server: Ipv4Addr,
        query: &[u8],
        timeout: Duration,
        accept: &mut dyn FnMut(&[u8]) -> Option<Reply>,
    ) -> Option<Reply>;

    /// [`Transport::exchange`] over TCP (a connection to `server` port 53,
    /// the query and the reply each after its 16-bit length): `accept`
    /// sees the one reply, `None` if it does not come whole in `timeout`.
    fn exchange_tcp(
        &mut self,
        server: Ipv4Addr,
        query: &[u8],
        timeout: Duration,
        accept: &mut dyn FnMut(&[u8]) -> Option<Reply>,
    ) -> Option<Reply>;

    /// A random query id.
    fn id(&mut self) -> u16;
}

/// Why DNS gave no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No name tried exists (`EAI_NONAME`).
    NoName,
    /// A name exists without an address (`EAI_NODATA`).
    NoData,
    /// No server answered, or every server failed (`EAI_AGAIN`).
    Again,
}

/// One name asked of the servers in turn, `attempts` rounds.
fn ask(name: &str, question: Question, conf: &Conf, t: &mut dyn Transport) -> Option<Reply> {
    let mut failed = false;
    for _ in 0..conf.attempts {
        for &server in &conf.servers {
            let id = t.id();
            let q = query(id, name, question);
            let mut accept = |p: &[u8]| parse_reply(p, id, name, question);
            let mut r = t.exchange(server, &q, conf.timeout, &mut accept);
            if r == Some(Reply::Truncated) {
                r = match t.exchange_tcp(server, &q, conf.timeout, &mut accept) {
                    Some(Reply::Truncated) | None => Some(Reply::ServerFailed),
                    whole => whole,
                };
            }
            match r {
                Some(Reply::ServerFailed | Reply::Truncated) => failed = true,
                Some(r) => return Some(r),
                None => {}
            }
        }
    }
    failed.then_some(Reply::ServerFailed)
}

/// The addresses and canonical name DNS gives `name`, as glibc's
/// `res_search` goes through the candidates: on to the next after
/// `NXDOMAIN`, no data or a server failure; done at the first answer or
/// when no server answers at all.
pub fn resolve(
    name: &str,
    conf: &Conf,
    t: &mut dyn Transport,
) -> Result<(String, Vec<Ipv4Addr>), Failure> {
    if conf.servers.is_empty() || !valid_name(name) {
        return Err(Failure::NoName);
    }
    let (mut nodata, mut servfail) = (false, false);
    for c in candidates(name, conf) {
        match ask(&c, Question::A, conf, t) {
            Some(Reply::Addresses(canon, addrs)) => return Ok((canon, addrs)),
            Some(Reply::NoData | Reply::Names(_)) => nodata = true,
            Some(Reply::NxDomain) => {}
            Some(Reply::ServerFailed | Reply::Truncated) => servfail = true,
            None => return Err(Failure::Again),
        }
    }
    Err(if nodata {
        Failure::NoData
    } else if servfail {
        Failure::Again
    } else {
        Failure::NoName
    })
}

/// The name an address's PTR record is under: `D.C.B.A.in-addr.arpa`
/// for IPv4 (an IPv4-mapped IPv6 address too, as glibc), the address's
/// 32 nibbles in reverse under `ip6.arpa` for IPv6.
pub fn arpa_name(ip: IpAddr) -> String {
    use core::fmt::Write;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let mut name = String::new();
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let _ = write!(name, "{d}.{c}.{b}.{a}.in-addr.arpa");
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(name, "{:x}.{:x}.", byte & 0xf, byte >> 4);
            }
            name.push_str("ip6.arpa");
        }
    }
    name
}

/// The host name DNS gives `ip` (its PTR record's first name), asked
/// under [`arpa_name`] as it is (no search domains).
pub fn reverse(ip: IpAddr, conf: &Conf, t: &mut dyn Transport) -> Result<String, Failure> {
    if conf.servers.is_empty() {
        return Err(Failure::NoName);
    }
    let name = arpa_name(ip);
    match ask(&name, Question::Ptr, conf, t) {
        Some(Reply::Names(mut names)) => Ok(names.swap_remove(0)),
        Some(Reply::NoData | Reply::Addresses(..)) => Err(Failure::NoData),
        Some(Reply::NxDomain) => Err(Failure::NoName),
        Some(Reply::ServerFailed | Reply::Truncated) | None => Err(Failure::Again),
    }
}

/// The contents of `/etc/NAME` as the file layer has it (the file the
/// host gave, or a disk's), at most 64 KiB; `None` if there is none.
#[cfg(not(any(test, fuzzing)))]
pub fn etc_file(name: &core::ffi::CStr) -> Option<Vec<u8>> {
    use super::fd;
    // SAFETY: a NUL-terminated path.
    let f = unsafe { super::file::open64(name.as_ptr(), ::libc::O_RDONLY | ::libc::O_CLOEXEC, 0) };
    if f < 0 {
        return None;
    }
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while data.len() < 64 * 1024 {
        // SAFETY: buf is writable for its length.
        let n = unsafe { fd::read(f, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        data.extend_from_slice(&buf[..n as usize]);
    }
    fd::close(f);
    Some(data)
}

/// The files are the test's own in host unit tests (and the fuzz target
/// reads none).
#[cfg(any(test, fuzzing))]
pub fn etc_file(_name: &core::ffi::CStr) -> Option<Vec<u8>> {
    None
}

/// The transport of a guest: libos-std's UDP (and, for a truncated
/// answer, TCP) sockets, blocking the calling thread only.
#[cfg(not(any(test, fuzzing)))]
#[derive(Debug)]
pub struct Sockets;

#[cfg(not(any(test, fuzzing)))]
impl Sockets {
    /// A UDP socket bound to a random port above 49151 (the kernel's
    /// autobind range is predictable), or to any port if those are taken.
    fn socket() -> Option<super::c_int> {
        use super::socket;
        let fd = socket::socket(::libc::AF_INET, ::libc::SOCK_DGRAM | ::libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        for _ in 0..8 {
            let mut r = [0u8; 2];
            super::random::fill(&mut r);
            let port = 49152 + u16::from_le_bytes(r) % 16384;
            let sin = sockaddr(Ipv4Addr::UNSPECIFIED, port);
            let len = size_of::<::libc::sockaddr_in>() as ::libc::socklen_t;
            // SAFETY: sin is a sockaddr_in of that length.
            if unsafe { socket::bind(fd, (&raw const sin).cast(), len) } == 0 {
                return Some(fd);
            }
        }
        // Unbound: the first send binds it to an ephemeral port.
        Some(fd)
    }

    /// Waits until `s` is ready for `events` (`POLLIN`, `POLLOUT`), at
    /// most until `deadline` (since boot); `None` if it is not by then.
    fn ready(s: super::c_int, events: i16, deadline: Duration) -> Option<()> {
        loop {
            let left = deadline.saturating_sub(libos::time::since_boot());
            if left.is_zero() {
                return None;
            }
            let mut pfd = ::libc::pollfd { fd: s, events, revents: 0 };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as super::c_int;
            // SAFETY: one pollfd.
            match unsafe { super::fd::poll(&mut pfd, 1, ms) } {
                r if r < 0 => return None,
                0 => {}
                _ => return Some(()),
            }
        }
    }

    /// One query over TCP on the nonblocking stream socket `s`: connects
    /// to `server` port 53, writes the query after its length, reads the
    /// reply after its, all by `deadline`.
    fn tcp_round(
        s: super::c_int,
        server: Ipv4Addr,
        query: &[u8],
        deadline: Duration,
    ) -> Option<Vec<u8>> {
        use super::{errno, fd, socket};
        let to = sockaddr(server, 53);
        let len = size_of::<::libc::sockaddr_in>() as ::libc::socklen_t;
        // SAFETY: `to` is a sockaddr_in of that length.
        if unsafe { socket::connect(s, (&raw const to).cast(), len) } < 0 {
            if errno() != ::libc::EINPROGRESS {
                return None;
            }
            Self::ready(s, ::libc::POLLOUT, deadline)?;
            let (mut err, mut elen) = (0 as super::c_int, 4 as ::libc::socklen_t);
            // SAFETY: err is a writable int, elen its size.
            let r = unsafe {
                socket::getsockopt(
                    s,
                    ::libc::SOL_SOCKET,
                    ::libc::SO_ERROR,
                    (&raw mut err).cast(),
                    &mut elen,
                )
            };
            if r < 0 || err != 0 {
                return None;
            }
        }
        let mut out = Vec::with_capacity(2 + query.len());
        out.extend_from_slice(&u16::try_from(query.len()).ok()?.to_be_bytes());
        out.extend_from_slice(query);
        let mut done = 0;
        while done < out.len() {
            // SAFETY: out[done..] is readable for its length.
            let n = unsafe { fd::write(s, out[done..].as_ptr().cast(), out.len() - done) };
            match n {
                n if n > 0 => done += n as usize,
                _ if errno() == ::libc::EAGAIN => Self::ready(s, ::libc::POLLOUT, deadline)?,
                _ => return None,
            }
        }
        let mut reply = Vec::new();
        // The length, then as many bytes (at most 65,535).
        let mut want = 2;
        let mut buf = alloc::vec![0u8; 4096];
        while reply.len() < want {
            let room = (want - reply.len()).min(buf.len());
            // SAFETY: buf is writable for room <= its length bytes.
            let n = unsafe { fd::read(s, buf.as_mut_ptr().cast(), room) };
            match n {
                0 => return None,
                n if n > 0 => reply.extend_from_slice(&buf[..n as usize]),
                _ if errno() == ::libc::EAGAIN => Self::ready(s, ::libc::POLLIN, deadline)?,
                _ => return None,
            }
            if want == 2 && reply.len() == 2 {
                want = 2 + usize::from(u16::from_be_bytes([reply[0], reply[1]]));
            }
        }
        reply.drain(..2);
        Some(reply)
    }
}

#[cfg(not(any(test, fuzzing)))]
fn sockaddr(ip: Ipv4Addr, port: u16) -> ::libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain C data; zeroes are valid.
    let mut sin: ::libc::sockaddr_in = unsafe { core::mem::zeroed() };
    sin.sin_family = ::libc::AF_INET as ::libc::sa_family_t;
    sin.sin_port = port.to_be();
    sin.sin_addr.s_addr = u32::from(ip).to_be();
    sin
}

#[cfg(not(any(test, fuzzing)))]
impl Transport for Sockets {
    fn exchange(
        &mut self,
        server: Ipv4Addr,
        query: &[u8],
        timeout: Duration,
        accept: &mut dyn FnMut(&[u8]) -> Option<Reply>,
    ) -> Option<Reply> {
        use super::{fd, socket};
        let s = Self::socket()?;
        let to = sockaddr(server, 53);
        let len = size_of::<::libc::sockaddr_in>() as ::libc::socklen_t;
        // SAFETY: query is readable for its length, `to` a sockaddr_in.
        let sent = unsafe {
            socket::sendto(s, query.as_ptr().cast(), query.len(), 0, (&raw const to).cast(), len)
        };
        let deadline = libos::time::since_boot() + timeout;
        let mut buf = alloc::vec![0u8; MAX_REPLY];
        let mut reply = None;
        while sent >= 0 && reply.is_none() {
            if Self::ready(s, ::libc::POLLIN, deadline).is_none() {
                break;
            }
            // SAFETY: sockaddr_in is plain C data; zeroes are valid.
            let mut from: ::libc::sockaddr_in = unsafe { core::mem::zeroed() };
            let mut flen = len;
            // SAFETY: buf is writable for its length, `from` for flen bytes.
            let n = unsafe {
                socket::recvfrom(
                    s,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    ::libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut flen,
                )
            };
            if n < 0 {
                continue;
            }
            let from_server = u32::from_be(from.sin_addr.s_addr) == u32::from(server)
                && u16::from_be(from.sin_port) == 53;
            if !from_server {
                continue;
            }
            reply = accept(&buf[..n as usize]);
        }
        fd::close(s);
        reply
    }

    fn exchange_tcp(
        &mut self,
        server: Ipv4Addr,
        query: &[u8],
        timeout: Duration,
        accept: &mut dyn FnMut(&[u8]) -> Option<Reply>,
    ) -> Option<Reply> {
        use super::{fd, socket};
        let deadline = libos::time::since_boot() + timeout;
        let ty = ::libc::SOCK_STREAM | ::libc::SOCK_CLOEXEC | ::libc::SOCK_NONBLOCK;
        let s = socket::socket(::libc::AF_INET, ty, 0);
        if s < 0 {
            return None;
        }
        let reply = Self::tcp_round(s, server, query, deadline).and_then(|r| accept(&r));
        fd::close(s);
        reply
    }

    fn id(&mut self) -> u16 {
        let mut r = [0u8; 2];
        super::random::fill(&mut r);
        u16::from_le_bytes(r)
    }
}

#[cfg(test)]
#[path = "resolv/tests.rs"]
mod tests;
