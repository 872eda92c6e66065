//! `sockaddr` conversion: `struct sockaddr_in` and `struct sockaddr_in6`
//! to and from [`SocketAddrV4`], with Linux's checks.
//!
//! The stack is IPv4 only, and an IPv6 socket is dual-stack, as Linux's
//! are by default (`net.ipv6.bindv6only` 0): it reaches IPv4 peers through
//! IPv4-mapped addresses (`::ffff:a.b.c.d`), and `::` is IPv4's any
//! address. So the sockets hold [`SocketAddrV4`]s, and the addresses are
//! translated here, at the calls' edge.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

use super::super::c_int;
use super::super::fd::Res;

/// Size of `struct sockaddr_in`.
pub const SIN_LEN: ::libc::socklen_t = core::mem::size_of::<::libc::sockaddr_in>() as _;

/// Size of `struct sockaddr_in6`.
pub const SIN6_LEN: ::libc::socklen_t = core::mem::size_of::<::libc::sockaddr_in6>() as _;

/// The shortest `sockaddr_in6` Linux takes (RFC 2133's, without the scope).
const SIN6_LEN_RFC2133: ::libc::socklen_t = 24;

/// An address a caller passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// `AF_INET`.
    V4(SocketAddrV4),
    /// `AF_INET6` with an IPv4-mapped address (`::ffff:a.b.c.d`).
    Mapped(SocketAddrV4),
    /// `AF_INET6` with `::`, IPv6's any address, and a port.
    Any6(u16),
    /// `AF_INET6` with any other IPv6 address: the guest has none and no
    /// route to one.
    V6,
    /// `AF_UNSPEC`: `connect` dissolves a datagram socket's association.
    Unspec,
}

/// Reads the address at `addr` (`len` bytes) given to a socket of
/// `AF_INET6` if `six`, else of `AF_INET`: `EFAULT` for a null pointer,
/// `EINVAL` if too short for its family, `EAFNOSUPPORT` for a family other
/// than `AF_INET`, `AF_INET6` (on an IPv6 socket) and `AF_UNSPEC`. Which
/// family each call takes is the caller's to check (`Socket::target`).
///
/// # Safety
///
/// `addr` is null or readable for `len` bytes.
pub unsafe fn read(addr: *const ::libc::sockaddr, len: ::libc::socklen_t, six: bool) -> Res<Given> {
    if addr.is_null() {
        return Err(::libc::EFAULT);
    }
    if (len as usize) < core::mem::size_of::<::libc::sa_family_t>() {
        return Err(::libc::EINVAL);
    }
    // SAFETY: at least the family is readable (checked above); unaligned
    // reads, as a caller's buffer need not be aligned.
    let family = unsafe { addr.cast::<::libc::sa_family_t>().read_unaligned() };
    match c_int::from(family) {
        ::libc::AF_INET => {
            if len < SIN_LEN {
                return Err(::libc::EINVAL);
            }
            // SAFETY: len covers a sockaddr_in.
            let sin = unsafe { addr.cast::<::libc::sockaddr_in>().read_unaligned() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok(Given::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        // An IPv4 socket checks the length of its own family first.
        ::libc::AF_INET6 if !six => {
            Err(if len < SIN_LEN { ::libc::EINVAL } else { ::libc::EAFNOSUPPORT })
        }
        ::libc::AF_INET6 => {
            if len < SIN6_LEN_RFC2133 {
                return Err(::libc::EINVAL);
            }
            // SAFETY: len covers a sockaddr_in6 up to its address (the
            // scope id, not read, may be missing): copied field by field.
            let (port, ip) = unsafe {
                let p = addr.cast::<u8>();
                let port = p.add(2).cast::<u16>().read_unaligned();
                let ip = p.add(8).cast::<[u8; 16]>().read_unaligned();
                (u16::from_be(port), Ipv6Addr::from(ip))
            };
            Ok(if ip.is_unspecified() {
                Given::Any6(port)
            } else if let Some(v4) = ip.to_ipv4_mapped() {
                Given::Mapped(SocketAddrV4::new(v4, port))
            } else {
                Given::V6
            })
        }
        ::libc::AF_UNSPEC => Ok(Given::Unspec),
        _ => Err(::libc::EAFNOSUPPORT),
    }
}

/// The `sockaddr_in` for `a`.
pub fn to_sockaddr(a: SocketAddrV4) -> ::libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all zeroes is valid.
    let mut sin: ::libc::sockaddr_in = unsafe { core::mem::zeroed() };
    sin.sin_family = ::libc::AF_INET as ::libc::sa_family_t;
    sin.sin_port = a.port().to_be();
    sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    sin
}

/// The `sockaddr_in6` an IPv6 socket reports for `a`: IPv4's any address
/// as `::` (an unbound or wildcard-bound socket, as Linux reports it),
/// every other address IPv4-mapped.
pub fn to_sockaddr6(a: SocketAddrV4) -> ::libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain data; all zeroes is valid.
    let mut sin6: ::libc::sockaddr_in6 = unsafe { core::mem::zeroed() };
    sin6.sin6_family = ::libc::AF_INET6 as ::libc::sa_family_t;
    sin6.sin6_port = a.port().to_be();
    if !a.ip().is_unspecified() {
        sin6.sin6_addr.s6_addr = a.ip().to_ipv6_mapped().octets();
    }
    sin6
}

/// Writes `a` to `out` as the `accept`/`getsockname`/`recvfrom` family do,
/// as a `sockaddr_in6` if `six` (an IPv6 socket's), else a `sockaddr_in`:
/// nothing if `out` is null; otherwise at most `*len` bytes of it
/// (truncated, as Linux does), and `*len` set to its full size.
///
/// # Safety
///
/// `out` is null, or `len` is a readable and writable `socklen_t` and `out`
/// is writable for `*len` bytes.
pub unsafe fn write(
    a: SocketAddrV4,
    six: bool,
    out: *mut ::libc::sockaddr,
    len: *mut ::libc::socklen_t,
) {
    if out.is_null() || len.is_null() {
        return;
    }
    let (sin, sin6) = (to_sockaddr(a), to_sockaddr6(a));
    let (bytes, full) = if six {
        ((&raw const sin6).cast::<u8>(), SIN6_LEN)
    } else {
        ((&raw const sin).cast::<u8>(), SIN_LEN)
    };
    // SAFETY: the caller guarantees len is readable.
    let room = unsafe { len.read() } as usize;
    let n = room.min(full as usize);
    // SAFETY: out is writable for *len bytes, n <= *len; bytes is n bytes
    // readable (n <= its size); the two do not overlap (both are local).
    unsafe {
        core::ptr::copy_nonoverlapping(bytes, out.cast::<u8>(), n);
        len.write(full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(a: SocketAddrV4) -> ::libc::sockaddr_in {
        to_sockaddr(a)
    }

    /// A `sockaddr_in6` for `ip` and `port`.
    fn raw6(ip: Ipv6Addr, port: u16) -> ::libc::sockaddr_in6 {
        // SAFETY: sockaddr_in6 is plain data; all zeroes is valid.
        let mut sin6: ::libc::sockaddr_in6 = unsafe { core::mem::zeroed() };
        sin6.sin6_family = ::libc::AF_INET6 as _;
        sin6.sin6_port = port.to_be();
        sin6.sin6_addr.s6_addr = ip.octets();
        sin6
    }

    fn read6(sin6: &::libc::sockaddr_in6, len: ::libc::socklen_t) -> Res<Given> {
        // SAFETY: sin6 is a whole sockaddr_in6, len at most its size.
        unsafe { read((&raw const *sin6).cast(), len, true) }
    }

    #[test]
    fn sockaddr_in_round_trips_in_network_byte_order() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 8080);
        let sin = raw(a);
        assert_eq!(sin.sin_port, 8080u16.to_be());
        assert_eq!(sin.sin_addr.s_addr.to_ne_bytes(), [10, 0, 0, 2]);
        // SAFETY: sin is a whole sockaddr_in.
        let back = unsafe { read((&raw const sin).cast(), SIN_LEN, false) };
        assert_eq!(back, Ok(Given::V4(a)));
        // An IPv6 socket takes it too (for UDP's `sendto` and `connect`).
        // SAFETY: as above.
        let back = unsafe { read((&raw const sin).cast(), SIN_LEN, true) };
        assert_eq!(back, Ok(Given::V4(a)));
    }

    #[test]
    fn ipv6_addresses_are_told_apart_mapped_any_and_others() {
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 7);
        assert_eq!(read6(&raw6(mapped, 7), SIN6_LEN), Ok(Given::Mapped(a)));
        assert_eq!(read6(&raw6(Ipv6Addr::UNSPECIFIED, 80), SIN6_LEN), Ok(Given::Any6(80)));
        for other in ["::1", "2001:db8::1", "fe80::1", "::10.0.0.1"] {
            let ip: Ipv6Addr = other.parse().unwrap();
            assert_eq!(read6(&raw6(ip, 1), SIN6_LEN), Ok(Given::V6), "{other}");
        }
        // RFC 2133's length (no scope id) is enough; shorter is not.
        assert_eq!(read6(&raw6(mapped, 7), 24), Ok(Given::Mapped(a)));
        assert_eq!(read6(&raw6(mapped, 7), 23), Err(::libc::EINVAL));
    }

    #[test]
    fn bad_addresses_get_linuxs_errors() {
        let sin = raw(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1));
        let p = (&raw const sin).cast::<::libc::sockaddr>();
        // SAFETY: p is readable for the lengths given (at most its size).
        unsafe {
            assert_eq!(read(core::ptr::null(), SIN_LEN, false), Err(::libc::EFAULT));
            assert_eq!(read(p, 1, false), Err(::libc::EINVAL));
            assert_eq!(read(p, SIN_LEN - 1, false), Err(::libc::EINVAL));
        }
        let family = |f: c_int, six: bool| {
            let mut other = sin;
            other.sin_family = f as _;
            // SAFETY: other is a whole sockaddr_in.
            unsafe { read((&raw const other).cast(), SIN_LEN, six) }
        };
        assert_eq!(family(::libc::AF_UNIX, false), Err(::libc::EAFNOSUPPORT));
        // IPv6 on an IPv4 socket; a sockaddr_in's 16 bytes are too short
        // for AF_INET6 on an IPv6 one.
        assert_eq!(family(::libc::AF_INET6, false), Err(::libc::EAFNOSUPPORT));
        assert_eq!(family(::libc::AF_INET6, true), Err(::libc::EINVAL));
        assert_eq!(family(::libc::AF_UNSPEC, false), Ok(Given::Unspec));
    }

    #[test]
    fn writing_truncates_to_the_callers_room_and_reports_the_full_size() {
        let a = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 9), 443);
        let mut buf = [0xaau8; 32];
        let mut len: ::libc::socklen_t = 4;
        // SAFETY: buf is writable for 32 >= len bytes.
        unsafe { write(a, false, buf.as_mut_ptr().cast(), &mut len) };
        assert_eq!(len, SIN_LEN);
        assert_eq!(&buf[..4], &[::libc::AF_INET as u8, 0, 1, 187]);
        assert_eq!(buf[4], 0xaa, "nothing past the caller's room");
        let mut len = 32;
        // SAFETY: as above.
        unsafe { write(a, false, buf.as_mut_ptr().cast(), &mut len) };
        assert_eq!(len, SIN_LEN);
        assert_eq!(&buf[4..8], &[192, 168, 1, 9]);
        // A null address is left alone.
        // SAFETY: null out is allowed.
        unsafe { write(a, false, core::ptr::null_mut(), &mut len) };
    }

    #[test]
    fn an_ipv6_socket_reports_ipv4_mapped_addresses_and_any_as_colons() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 8080);
        let mut buf = [0xaau8; 40];
        let mut len: ::libc::socklen_t = 40;
        // SAFETY: buf is writable for 40 >= len bytes.
        unsafe { write(a, true, buf.as_mut_ptr().cast(), &mut len) };
        assert_eq!(len, SIN6_LEN);
        assert_eq!(&buf[..4], &[::libc::AF_INET6 as u8, 0, 0x1f, 0x90]);
        assert_eq!(&buf[8..24], &"::ffff:10.0.0.2".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(&buf[24..28], &[0; 4], "scope id 0");
        assert_eq!(buf[28], 0xaa, "nothing past the address");
        // SAFETY: buf's start is a whole sockaddr_in6 (len bytes).
        assert_eq!(unsafe { read(buf.as_ptr().cast(), len, true) }, Ok(Given::Mapped(a)));
        let any = to_sockaddr6(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9));
        assert_eq!(any.sin6_addr.s6_addr, [0; 16]);
        assert_eq!(u16::from_be(any.sin6_port), 9);
    }
}
