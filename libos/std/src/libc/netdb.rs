//! Name resolution: `getaddrinfo` and its companions. Numeric addresses
//! (IPv4 dotted quads, IPv6 in any of its textual forms) are taken as
//! they are; names are looked up in `/etc/hosts`, then `localhost`
//! (127.0.0.1 and ::1, as a stock `/etc/hosts` says, when the file does
//! not name it), then DNS as `/etc/resolv.conf` says ([`super::resolv`]).
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
    let r = resolv::resolve(text, &conf, &mut resolv::Udp);
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
