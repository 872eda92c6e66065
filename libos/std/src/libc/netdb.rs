//! Name resolution: `getaddrinfo` and its companions, and `getnameinfo`.
//! Numeric addresses (IPv4 dotted quads, IPv6 in any of its textual
//! forms) are taken as they are; names are looked up in `/etc/hosts`, then
//! `localhost` (127.0.0.1 and ::1, as a stock `/etc/hosts` says, when the
//! file does not name it), then DNS as `/etc/resolv.conf` says
//! ([`super::resolv`]).
//! The failures are glibc's: `EAI_NONAME` for a name nobody knows (std's
//! "failed to lookup address information: Name or service not known"),
//! `EAI_NODATA` for a name without an address, `EAI_AGAIN` when no server
//! answered ("Temporary failure in name resolution").
//!
//! DNS is asked for A records only (the guest has no IPv6 address): an
//! `AF_INET6` lookup of a name DNS knows gives its addresses as
//! IPv4-mapped ones with `AI_V4MAPPED`, else `EAI_ADDRFAMILY`; `/etc/hosts`
//! gives IPv6 addresses as written. Services are port numbers only (there
//! is no `/etc/services`).
//!
//! `getnameinfo` names an address as glibc's does with `files dns`: the
//! first name `/etc/hosts` gives it, else the name DNS's PTR record gives
//! (`in-addr.arpa`, or `ip6.arpa` asked over IPv4), else the numeric form
//! unless `NI_NAMEREQD`; a service is its port number.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{c_char, c_int};

/// glibc's `EAI_ADDRFAMILY` (a GNU extension the `libc` crate lacks).
const EAI_ADDRFAMILY: c_int = -9;

/// One result: the `addrinfo` std reads, followed by the storage its
/// pointers point into. `ai` comes first so that a pointer to the entry is
/// a pointer to its `addrinfo`, which is what `freeaddrinfo` gets back.
#[repr(C)]
struct Entry {
    ai: ::libc::addrinfo,
    addr: ::libc::sockaddr_in6,
    canonname: Option<Box<[u8]>>,
}

/// The addresses `node` names and its canonical name, or the `EAI_*` error.
fn addresses(node: Option<&[u8]>, flags: c_int) -> Result<(Vec<IpAddr>, Option<String>), c_int> {
    let canon = |c: &[u8]| core::str::from_utf8(c).ok().map(String::from);
    match addresses_of(node, flags)? {
        Found::Numeric(ips) => Ok((ips, node.and_then(canon))),
        Found::Named(ips, name) => Ok((ips, Some(name))),
    }
}

/// What [`addresses_of`] found.
enum Found {
    /// Numeric, or no node: the node is its own canonical name.
    Numeric(Vec<IpAddr>),
    /// Looked up: the addresses and the canonical name.
    Named(Vec<IpAddr>, String),
}

fn addresses_of(node: Option<&[u8]>, flags: c_int) -> Result<Found, c_int> {
    addresses_numeric(node, flags).map(Found::Numeric).or_else(|e| match (e, node) {
        (::libc::EAI_NONAME, Some(n)) if flags & ::libc::AI_NUMERICHOST == 0 => named(n),
        _ => Err(e),
    })
}

/// A name, through `/etc/hosts`, `localhost` and DNS.
fn named(node: &[u8]) -> Result<Found, c_int> {
    use super::resolv;
    let text = core::str::from_utf8(node).map_err(|_| ::libc::EAI_NONAME)?;
    if let Some(hosts) = resolv::etc_file(c"/etc/hosts")
        && let Some((canon, ips)) = resolv::hosts_lookup(&hosts, text)
    {
        return Ok(Found::Named(ips, canon));
    }
    if text.eq_ignore_ascii_case("localhost") || text.eq_ignore_ascii_case("localhost.") {
        // glibc's order for these two with a stock /etc/hosts (RFC 6724).
        let ips = [IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::LOCALHOST)].into();
        return Ok(Found::Named(ips, "localhost".into()));
    }
    let Some(conf) = resolv::etc_file(c"/etc/resolv.conf") else {
        return Err(::libc::EAI_NONAME);
    };
    let conf = resolv::Conf::parse(&conf);
    #[cfg(not(test))]
    let r = resolv::resolve(text, &conf, &mut resolv::Sockets);
    #[cfg(test)]
    let r: Result<(String, Vec<Ipv4Addr>), resolv::Failure> = {
        let _ = conf;
        Err(resolv::Failure::NoName)
    };
    match r {
        Ok((canon, ips)) => Ok(Found::Named(ips.into_iter().map(IpAddr::V4).collect(), canon)),
        Err(resolv::Failure::NoName) => Err(::libc::EAI_NONAME),
        Err(resolv::Failure::NoData) => Err(::libc::EAI_NODATA),
        Err(resolv::Failure::Again) => Err(::libc::EAI_AGAIN),
    }
}

/// The addresses a numeric `node` (or none) gives; `EAI_NONAME` for a name.
fn addresses_numeric(node: Option<&[u8]>, flags: c_int) -> Result<Vec<IpAddr>, c_int> {
    let Some(node) = node else {
        // No node: the wildcard address to bind to, or the loopback one.
        let passive = flags & ::libc::AI_PASSIVE != 0;
        return Ok(if passive {
            [IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)].into()
        } else {
            [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)].into()
        });
    };
    let text = core::str::from_utf8(node).map_err(|_| ::libc::EAI_NONAME)?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok([ip].into());
    }
    Err(::libc::EAI_NONAME)
}

/// The port a service names: a decimal number only.
fn port(service: Option<&[u8]>) -> Result<u16, c_int> {
    let Some(service) = service else { return Ok(0) };
    core::str::from_utf8(service)
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(::libc::EAI_SERVICE)
}

/// The socket types (and their protocols) a result is given for.
fn socktypes(socktype: c_int, protocol: c_int) -> Result<Vec<(c_int, c_int)>, c_int> {
    let all = [
        (::libc::SOCK_STREAM, ::libc::IPPROTO_TCP),
        (::libc::SOCK_DGRAM, ::libc::IPPROTO_UDP),
        (::libc::SOCK_RAW, 0),
    ];
    if socktype == 0 {
        return Ok(all.into_iter().filter(|&(_, p)| protocol == 0 || p == protocol).collect());
    }
    match all.iter().find(|&&(t, _)| t == socktype) {
        Some(&(t, p)) => Ok([(t, if protocol == 0 { p } else { protocol })].into()),
        None => Err(::libc::EAI_SOCKTYPE),
    }
}

/// One `addrinfo` for `ip`, `port` and the socket type, linked to `next`.
fn entry(
    ip: IpAddr,
    port: u16,
    (socktype, protocol): (c_int, c_int),
    canon: Option<&[u8]>,
) -> Box<Entry> {
    let mut e: Box<Entry> = Box::new(Entry {
        // SAFETY: addrinfo is plain C data; zeroes are valid (NULL pointers).
        ai: unsafe { core::mem::zeroed() },
        // SAFETY: sockaddr_in6 is plain C data; zeroes are valid.
        addr: unsafe { core::mem::zeroed() },
        canonname: canon.map(|c| {
            let mut v = Vec::with_capacity(c.len() + 1);
            v.extend_from_slice(c);
            v.push(0);
            v.into_boxed_slice()
        }),
    });
    e.ai.ai_socktype = socktype;
    e.ai.ai_protocol = protocol;
    match ip {
        IpAddr::V4(v4) => {
            let sin = (&raw mut e.addr).cast::<::libc::sockaddr_in>();
            // SAFETY: a sockaddr_in fits in (and is less aligned than) the
            // sockaddr_in6 it overlays.
            unsafe {
                (*sin).sin_family = ::libc::AF_INET as ::libc::sa_family_t;
                (*sin).sin_port = port.to_be();
                (*sin).sin_addr.s_addr = u32::from(v4).to_be();
            }
            e.ai.ai_family = ::libc::AF_INET;
            e.ai.ai_addrlen = size_of::<::libc::sockaddr_in>() as ::libc::socklen_t;
        }
        IpAddr::V6(v6) => {
            e.addr.sin6_family = ::libc::AF_INET6 as ::libc::sa_family_t;
            e.addr.sin6_port = port.to_be();
            e.addr.sin6_addr.s6_addr = v6.octets();
            e.ai.ai_family = ::libc::AF_INET6;
            e.ai.ai_addrlen = size_of::<::libc::sockaddr_in6>() as ::libc::socklen_t;
        }
    }
    e.ai.ai_addr = (&raw mut e.addr).cast();
    if let Some(c) = &mut e.canonname {
        e.ai.ai_canonname = c.as_mut_ptr().cast();
    }
    e
}

/// `getaddrinfo(node, service, hints, res)`: see the module's
/// documentation. Results are in `*res`, freed with [`freeaddrinfo`].
///
/// # Safety
///
/// `node` and `service` are NULL or NUL-terminated strings, `hints` NULL
/// or readable, `res` writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const ::libc::addrinfo,
    res: *mut *mut ::libc::addrinfo,
) -> c_int {
    // SAFETY: the caller guarantees NULL or NUL-terminated strings.
    let node = (!node.is_null()).then(|| unsafe { super::c_str(node) });
    // SAFETY: as above.
    let service = (!service.is_null()).then(|| unsafe { super::c_str(service) });
    // SAFETY: the caller guarantees hints is NULL or readable.
    let (flags, family, socktype, protocol) = match unsafe { hints.as_ref() } {
        Some(h) => (h.ai_flags, h.ai_family, h.ai_socktype, h.ai_protocol),
        None => (::libc::AI_V4MAPPED | ::libc::AI_ADDRCONFIG, ::libc::AF_UNSPEC, 0, 0),
    };
    if node.is_none() && service.is_none() {
        return ::libc::EAI_NONAME;
    }
    if ![::libc::AF_UNSPEC, ::libc::AF_INET, ::libc::AF_INET6].contains(&family) {
        return ::libc::EAI_FAMILY;
    }
    let result = (|| {
        let types = socktypes(socktype, protocol)?;
        let port = port(service)?;
        let (mut found, canon) = addresses(node, flags)?;
        if family == ::libc::AF_INET6
            && flags & ::libc::AI_V4MAPPED != 0
            && !found.iter().any(IpAddr::is_ipv6)
        {
            // No IPv6 address: the IPv4 ones, mapped (glibc's AI_V4MAPPED).
            found = found
                .into_iter()
                .map(|ip| match ip {
                    IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
                    v6 => v6,
                })
                .collect();
        }
        let ips: Vec<IpAddr> = found
            .into_iter()
            .filter(|ip| match family {
                ::libc::AF_INET => ip.is_ipv4(),
                ::libc::AF_INET6 => ip.is_ipv6(),
                _ => true,
            })
            .collect();
        if ips.is_empty() {
            // The name exists, but not in the family asked for.
            return Err(EAI_ADDRFAMILY);
        }
        let canon = canon.filter(|_| flags & ::libc::AI_CANONNAME != 0);
        let canon = canon.as_deref().map(str::as_bytes);
        let mut head: *mut ::libc::addrinfo = core::ptr::null_mut();
        for (i, ip) in ips.iter().enumerate().rev() {
            for &t in types.iter().rev() {
                let first = i == 0 && t == types[0];
                let mut e = entry(*ip, port, t, if first { canon } else { None });
                e.ai.ai_next = head;
                head = Box::into_raw(e).cast();
            }
        }
        Ok(head)
    })();
    match result {
        Ok(head) => {
            // SAFETY: the caller guarantees res is writable.
            unsafe { res.write(head) };
            0
        }
        Err(e) => e,
    }
}

/// `freeaddrinfo(res)`: frees a list [`getaddrinfo`] returned.
///
/// # Safety
///
/// `res` is NULL or a list from [`getaddrinfo`], not yet freed.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn freeaddrinfo(mut res: *mut ::libc::addrinfo) {
    while !res.is_null() {
        // SAFETY: every element was made by Box::into_raw of an Entry
        // whose first field is the addrinfo; each is freed once.
        let e = unsafe { Box::from_raw(res.cast::<Entry>()) };
        res = e.ai.ai_next;
    }
}

/// The `getnameinfo` flags glibc takes (`NI_IDN` is 32, and means
/// nothing for names DNS gives in ASCII).
const NI_KNOWN: c_int = ::libc::NI_NUMERICHOST
    | ::libc::NI_NUMERICSERV
    | ::libc::NI_NOFQDN
    | ::libc::NI_NAMEREQD
    | ::libc::NI_DGRAM
    | 32;

/// The address and port of the `sockaddr` at `sa` (`len` bytes), with an
/// IPv6 address's scope id; `EAI_FAMILY` for another family or a short
/// length, as glibc.
///
/// # Safety
///
/// `sa` is null or readable for `len` bytes.
unsafe fn socket_address(
    sa: *const ::libc::sockaddr,
    len: ::libc::socklen_t,
) -> Result<(IpAddr, u16, u32), c_int> {
    if sa.is_null() || (len as usize) < core::mem::size_of::<::libc::sa_family_t>() {
        return Err(::libc::EAI_FAMILY);
    }
    // SAFETY: the family is readable (checked); unaligned reads, as a
    // caller's buffer need not be aligned.
    let family = c_int::from(unsafe { sa.cast::<::libc::sa_family_t>().read_unaligned() });
    let fits = |n: usize| len as usize >= n;
    match family {
        ::libc::AF_INET if fits(core::mem::size_of::<::libc::sockaddr_in>()) => {
            // SAFETY: len covers a sockaddr_in.
            let sin = unsafe { sa.cast::<::libc::sockaddr_in>().read_unaligned() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok((IpAddr::V4(ip), u16::from_be(sin.sin_port), 0))
        }
        ::libc::AF_INET6 if fits(core::mem::size_of::<::libc::sockaddr_in6>()) => {
            // SAFETY: len covers a sockaddr_in6.
            let sin6 = unsafe { sa.cast::<::libc::sockaddr_in6>().read_unaligned() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok((IpAddr::V6(ip), u16::from_be(sin6.sin6_port), sin6.sin6_scope_id))
        }
        _ => Err(::libc::EAI_FAMILY),
    }
}

/// The host name of `ip` from `/etc/hosts`, then DNS: `Ok(None)` when
/// neither has one, `Err(EAI_AGAIN)` when no DNS server answered.
fn host_name_of(ip: IpAddr) -> Result<Option<String>, c_int> {
    use super::resolv;
    if let Some(hosts) = resolv::etc_file(c"/etc/hosts")
        && let Some(name) = resolv::hosts_name_of(&hosts, ip)
    {
        return Ok(Some(name));
    }
    let Some(conf) = resolv::etc_file(c"/etc/resolv.conf") else { return Ok(None) };
    let conf = resolv::Conf::parse(&conf);
    #[cfg(not(test))]
    let r = resolv::reverse(ip, &conf, &mut resolv::Sockets);
    #[cfg(test)]
    let r: Result<String, resolv::Failure> = {
        let _ = conf;
        Err(resolv::Failure::NoName)
    };
    match r {
        Ok(name) => Ok(Some(name)),
        Err(resolv::Failure::Again) => Err(::libc::EAI_AGAIN),
        Err(_) => Ok(None),
    }
}

/// The local domain `NI_NOFQDN` strips: what follows the first dot of the
/// host name (`gethostname`), else the first search domain of
/// `/etc/resolv.conf`.
fn local_domain() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    let r = unsafe { super::misc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if r == 0 {
        let n = buf.iter().position(|&b| b == 0).unwrap_or(0);
        core::str::from_utf8(&buf[..n]).ok().map(String::from)
    } else {
        None
    };
    if let Some((_, domain)) = host.as_deref().and_then(|h| h.split_once('.')) {
        return Some(String::from(domain));
    }
    let conf = super::resolv::etc_file(c"/etc/resolv.conf")?;
    super::resolv::Conf::parse(&conf).search.into_iter().next()
}

/// `name` without the local `domain` (`NI_NOFQDN`): `db` of `db.svc.test`
/// in `svc.test`; any other name as it is.
fn without_domain<'a>(name: &'a str, domain: Option<&str>) -> &'a str {
    let bare = name.strip_suffix('.').unwrap_or(name);
    match (domain, bare.split_once('.')) {
        (Some(d), Some((host, rest))) if rest.eq_ignore_ascii_case(d.trim_end_matches('.')) => host,
        _ => name,
    }
}

/// The numeric form of `ip` (`inet_ntop`'s), an IPv6 address's non-zero
/// scope id after a `%` for a link-local one (as a number: there are no
/// IPv6 interfaces to name).
fn numeric_host(ip: IpAddr, scope: u32) -> String {
    match ip {
        IpAddr::V6(v6) if scope != 0 && (v6.segments()[0] & 0xffc0) == 0xfe80 => {
            alloc::format!("{v6}%{scope}")
        }
        ip => alloc::format!("{ip}"),
    }
}

/// Copies `text` and a NUL into `out` (`len` bytes): `EAI_OVERFLOW` when
/// they do not fit.
///
/// # Safety
///
/// `out` is writable for `len` bytes.
unsafe fn put_text(text: &str, out: *mut c_char, len: ::libc::socklen_t) -> Result<(), c_int> {
    if text.len() >= len as usize {
        return Err(::libc::EAI_OVERFLOW);
    }
    // SAFETY: text.len() + 1 <= len writable bytes at out.
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), out.cast::<u8>(), text.len());
        *out.add(text.len()) = 0;
    }
    Ok(())
}

/// `getnameinfo(sa, salen, host, hostlen, serv, servlen, flags)`: see the
/// module's documentation; glibc's checks and errors (`EAI_BADFLAGS`,
/// `EAI_FAMILY`, `EAI_NONAME` with `NI_NAMEREQD` and no name,
/// `EAI_AGAIN` when DNS did not answer, `EAI_OVERFLOW` for a buffer too
/// small). A null (or empty) `host` or `serv` is not asked for.
///
/// # Safety
///
/// `sa` is readable for `salen` bytes; `host` is null or writable for
/// `hostlen` bytes, `serv` null or writable for `servlen`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getnameinfo(
    sa: *const ::libc::sockaddr,
    salen: ::libc::socklen_t,
    host: *mut c_char,
    hostlen: ::libc::socklen_t,
    serv: *mut c_char,
    servlen: ::libc::socklen_t,
    flags: c_int,
) -> c_int {
    if flags & !NI_KNOWN != 0 {
        return ::libc::EAI_BADFLAGS;
    }
    // SAFETY: the caller's contract for sa.
    let (ip, port, scope) = match unsafe { socket_address(sa, salen) } {
        Ok(a) => a,
        Err(e) => return e,
    };
    let want_host = !host.is_null() && hostlen > 0;
    let want_serv = !serv.is_null() && servlen > 0;
    if flags & ::libc::NI_NAMEREQD != 0 && !want_host && !want_serv {
        return ::libc::EAI_NONAME;
    }
    if want_host {
        let name = if flags & ::libc::NI_NUMERICHOST != 0 {
            None
        } else {
            match host_name_of(ip) {
                Ok(name) => name,
                Err(e) if flags & ::libc::NI_NAMEREQD != 0 => return e,
                Err(_) => None,
            }
        };
        let text = match name {
            Some(n) if flags & ::libc::NI_NOFQDN != 0 => {
                String::from(without_domain(&n, local_domain().as_deref()))
            }
            Some(n) => n,
            None if flags & ::libc::NI_NAMEREQD != 0 => return ::libc::EAI_NONAME,
            None => numeric_host(ip, scope),
        };
        // SAFETY: the caller's contract for host.
        if let Err(e) = unsafe { put_text(&text, host, hostlen) } {
            return e;
        }
    }
    if want_serv {
        // SAFETY: the caller's contract for serv.
        if let Err(e) = unsafe { put_text(&alloc::format!("{port}"), serv, servlen) } {
            return e;
        }
    }
    0
}

/// `gai_strerror(code)`: glibc's message for an `EAI_*` code.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn gai_strerror(code: c_int) -> *const c_char {
    let msg: &'static core::ffi::CStr = match code {
        ::libc::EAI_BADFLAGS => c"Bad value for ai_flags",
        ::libc::EAI_NONAME => c"Name or service not known",
        ::libc::EAI_AGAIN => c"Temporary failure in name resolution",
        ::libc::EAI_FAIL => c"Non-recoverable failure in name resolution",
        ::libc::EAI_NODATA => c"No address associated with hostname",
        ::libc::EAI_FAMILY => c"ai_family not supported",
        ::libc::EAI_SOCKTYPE => c"ai_socktype not supported",
        ::libc::EAI_SERVICE => c"Servname not supported for ai_socktype",
        EAI_ADDRFAMILY => c"Address family for hostname not supported",
        ::libc::EAI_MEMORY => c"Memory allocation failure",
        ::libc::EAI_SYSTEM => c"System error",
        ::libc::EAI_OVERFLOW => c"Argument buffer overflow",
        _ => c"Unknown error",
    };
    msg.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    /// What ours and glibc's `getnameinfo` give for `sa` with `flags`,
    /// host and service buffers of `hostlen` and `servlen` bytes.
    fn both_names<A>(sa: &A, flags: c_int, hostlen: usize, servlen: usize) -> [String; 2] {
        let len = core::mem::size_of::<A>() as ::libc::socklen_t;
        let p = (&raw const *sa).cast::<::libc::sockaddr>();
        let run = |f: unsafe extern "C" fn(
            *const ::libc::sockaddr,
            ::libc::socklen_t,
            *mut c_char,
            ::libc::socklen_t,
            *mut c_char,
            ::libc::socklen_t,
            c_int,
        ) -> c_int| {
            let (mut h, mut v) = ([0u8; 128], [0u8; 32]);
            // SAFETY: sa is readable for len bytes; h and v are writable
            // for the lengths given (at most their sizes).
            let r = unsafe {
                f(
                    p,
                    len,
                    h.as_mut_ptr().cast(),
                    hostlen as _,
                    v.as_mut_ptr().cast(),
                    servlen as _,
                    flags,
                )
            };
            let text = |b: &[u8]| {
                String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(0)])
                    .into_owned()
            };
            if r == 0 {
                std::format!("{} {}", text(&h), text(&v))
            } else {
                std::format!("error {r}")
            }
        };
        [run(getnameinfo), run(::libc::getnameinfo)]
    }

    fn sin(ip: [u8; 4], port: u16) -> ::libc::sockaddr_in {
        // SAFETY: plain data; all zeroes is valid.
        let mut a: ::libc::sockaddr_in = unsafe { core::mem::zeroed() };
        a.sin_family = ::libc::AF_INET as _;
        a.sin_port = port.to_be();
        a.sin_addr.s_addr = u32::from_ne_bytes(ip);
        a
    }

    fn sin6(ip: &str, port: u16, scope: u32) -> ::libc::sockaddr_in6 {
        // SAFETY: plain data; all zeroes is valid.
        let mut a: ::libc::sockaddr_in6 = unsafe { core::mem::zeroed() };
        a.sin6_family = ::libc::AF_INET6 as _;
        a.sin6_port = port.to_be();
        a.sin6_addr.s6_addr = ip.parse::<Ipv6Addr>().unwrap().octets();
        a.sin6_scope_id = scope;
        a
    }

    #[test]
    fn numeric_names_and_errors_are_glibcs() {
        const NUM: c_int = ::libc::NI_NUMERICHOST | ::libc::NI_NUMERICSERV;
        for (sa4, sa6) in [
            (sin([10, 0, 0, 2], 8080), sin6("::ffff:10.0.0.2", 443, 0)),
            (sin([0, 0, 0, 0], 0), sin6("2001:db8::1:0:0:1", 65535, 0)),
            (sin([255, 255, 255, 255], 1), sin6("fe80::1", 22, 0)),
        ] {
            for (flags, hostlen, servlen) in [
                (NUM, 128, 32),
                (NUM | ::libc::NI_DGRAM, 128, 32),
                (NUM, 4, 32),
                (NUM, 128, 2),
                (NUM, 0, 32),
                (NUM, 128, 0),
                (1 << 20, 128, 32),
            ] {
                let [ours, glibc] = both_names(&sa4, flags, hostlen, servlen);
                assert_eq!(ours, glibc, "{flags:#x} {hostlen} {servlen}");
                let [ours, glibc] = both_names(&sa6, flags, hostlen, servlen);
                assert_eq!(ours, glibc, "{flags:#x} {hostlen} {servlen}");
            }
        }
        // A scope is a number (glibc names the host's interface, which a
        // guest has none of for IPv6).
        let [ours, _] = both_names(&sin6("fe80::1", 22, 3), NUM, 128, 32);
        assert_eq!(ours, "fe80::1%3 22");
        // The wrong family, or a sockaddr too short for its own.
        let mut other = sin([1, 2, 3, 4], 5);
        other.sin_family = ::libc::AF_PACKET as _;
        let [ours, glibc] = both_names(&other, NUM, 128, 32);
        assert_eq!((ours.as_str(), glibc.as_str()), ("error -6", "error -6"));
        let mut short = [0u8; 16];
        short[0] = ::libc::AF_INET6 as u8;
        let [ours, glibc] = both_names(&short, NUM, 128, 32);
        assert_eq!(ours, glibc);
        assert_eq!(ours, std::format!("error {}", ::libc::EAI_FAMILY));
    }

    #[test]
    fn without_a_name_it_is_numeric_unless_one_is_required() {
        // The host tests have no /etc files: no address has a name.
        let [ours, _] = both_names(&sin([10, 0, 0, 9], 80), 0, 128, 32);
        assert_eq!(ours, "10.0.0.9 80");
        let [ours, _] = both_names(&sin([10, 0, 0, 9], 80), ::libc::NI_NAMEREQD, 128, 32);
        assert_eq!(ours, std::format!("error {}", ::libc::EAI_NONAME));
        let [ours, _] = both_names(&sin([10, 0, 0, 9], 80), ::libc::NI_NAMEREQD, 0, 0);
        assert_eq!(ours, std::format!("error {}", ::libc::EAI_NONAME), "nothing asked");
    }

    #[test]
    fn nofqdn_strips_only_the_local_domain() {
        assert_eq!(without_domain("db.svc.test", Some("svc.test")), "db");
        assert_eq!(without_domain("db.svc.test.", Some("SVC.test.")), "db");
        assert_eq!(without_domain("db.other.test", Some("svc.test")), "db.other.test");
        assert_eq!(without_domain("db", Some("svc.test")), "db");
        assert_eq!(without_domain("db.svc.test", None), "db.svc.test");
    }

    fn lookup(node: &core::ffi::CStr, socktype: c_int) -> Result<Vec<String>, c_int> {
        // SAFETY: hints is zeroed plain data; the list is freed once.
        unsafe {
            let mut hints: ::libc::addrinfo = core::mem::zeroed();
            hints.ai_socktype = socktype;
            let mut res = core::ptr::null_mut();
            let r = getaddrinfo(node.as_ptr(), c"80".as_ptr(), &hints, &mut res);
            if r != 0 {
                return Err(r);
            }
            let mut out = Vec::new();
            let mut p = res;
            while !p.is_null() {
                let ai = &*p;
                let text = match ai.ai_family {
                    ::libc::AF_INET => {
                        let sin = &*ai.ai_addr.cast::<::libc::sockaddr_in>();
                        std::format!(
                            "{}:{}/{}",
                            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                            u16::from_be(sin.sin_port),
                            ai.ai_socktype
                        )
                    }
                    _ => {
                        let sin6 = &*ai.ai_addr.cast::<::libc::sockaddr_in6>();
                        std::format!(
                            "[{}]:{}/{}",
                            Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                            u16::from_be(sin6.sin6_port),
                            ai.ai_socktype
                        )
                    }
                };
                out.push(text);
                p = ai.ai_next;
            }
            freeaddrinfo(res);
            Ok(out)
        }
    }

    #[test]
    fn numeric_addresses_and_localhost_resolve() {
        assert_eq!(lookup(c"10.0.0.1", ::libc::SOCK_STREAM).unwrap(), ["10.0.0.1:80/1"]);
        assert_eq!(lookup(c"fe80::1", ::libc::SOCK_STREAM).unwrap(), ["[fe80::1]:80/1"]);
        assert_eq!(
            lookup(c"localhost", ::libc::SOCK_STREAM).unwrap(),
            ["[::1]:80/1", "127.0.0.1:80/1"]
        );
        assert_eq!(
            lookup(c"127.0.0.1", 0).unwrap(),
            ["127.0.0.1:80/1", "127.0.0.1:80/2", "127.0.0.1:80/3"]
        );
    }

    #[test]
    fn ipv4_maps_into_ipv6_only_when_asked() {
        let ask = |flags: c_int| -> Result<Ipv6Addr, c_int> {
            // SAFETY: hints is zeroed plain data; the list is freed once.
            unsafe {
                let mut hints: ::libc::addrinfo = core::mem::zeroed();
                hints.ai_family = ::libc::AF_INET6;
                hints.ai_socktype = ::libc::SOCK_STREAM;
                hints.ai_flags = flags;
                let mut res = core::ptr::null_mut();
                let r = getaddrinfo(c"10.0.0.1".as_ptr(), c"80".as_ptr(), &hints, &mut res);
                if r != 0 {
                    return Err(r);
                }
                let sin6 = &*(*res).ai_addr.cast::<::libc::sockaddr_in6>();
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                freeaddrinfo(res);
                Ok(ip)
            }
        };
        assert_eq!(ask(::libc::AI_V4MAPPED), Ok(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()));
        assert_eq!(ask(0), Err(EAI_ADDRFAMILY));
    }

    #[test]
    fn other_names_are_not_known() {
        assert_eq!(lookup(c"example.com", ::libc::SOCK_STREAM), Err(::libc::EAI_NONAME));
        // SAFETY: gai_strerror returns a static C string.
        let msg = unsafe { core::ffi::CStr::from_ptr(gai_strerror(::libc::EAI_NONAME)) };
        assert_eq!(msg.to_str().unwrap(), "Name or service not known");
    }
}
