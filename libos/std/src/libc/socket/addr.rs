//! `sockaddr` conversion: `struct sockaddr_in` to and from
//! [`SocketAddrV4`], with Linux's checks.

use core::net::{Ipv4Addr, SocketAddrV4};

use super::super::c_int;
use super::super::fd::Res;

/// Size of `struct sockaddr_in`.
pub const SIN_LEN: ::libc::socklen_t = core::mem::size_of::<::libc::sockaddr_in>() as _;

/// An address a caller passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// `AF_INET`.
    V4(SocketAddrV4),
    /// `AF_UNSPEC`: `connect` dissolves a datagram socket's association.
    Unspec,
}

/// Reads the address at `addr` (`len` bytes): `EFAULT` for a null pointer,
/// `EINVAL` if too short for its family, `EAFNOSUPPORT` for a family other
/// than `AF_INET` and `AF_UNSPEC` (IPv6 included: there is no IPv6 stack).
///
/// # Safety
///
/// `addr` is null or readable for `len` bytes.
pub unsafe fn read(addr: *const ::libc::sockaddr, len: ::libc::socklen_t) -> Res<Given> {
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
        ::libc::AF_UNSPEC => Ok(Given::Unspec),
        _ => Err(::libc::EAFNOSUPPORT),
    }
}

/// [`read`], for calls that take only `AF_INET`.
///
/// # Safety
///
/// As [`read`].
pub unsafe fn read_v4(addr: *const ::libc::sockaddr, len: ::libc::socklen_t) -> Res<SocketAddrV4> {
    // SAFETY: the same contract.
    match unsafe { read(addr, len) }? {
        Given::V4(a) => Ok(a),
        Given::Unspec => Err(::libc::EAFNOSUPPORT),
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

/// Writes `a` to `out` as the `accept`/`getsockname`/`recvfrom` family do:
/// nothing if `out` is null; otherwise at most `*len` bytes of it
/// (truncated, as Linux does), and `*len` set to its full size.
///
/// # Safety
///
/// `out` is null, or `len` is a readable and writable `socklen_t` and `out`
/// is writable for `*len` bytes.
pub unsafe fn write(a: SocketAddrV4, out: *mut ::libc::sockaddr, len: *mut ::libc::socklen_t) {
    if out.is_null() || len.is_null() {
        return;
    }
    let sin = to_sockaddr(a);
    // SAFETY: the caller guarantees len is readable.
    let room = unsafe { len.read() } as usize;
    let n = room.min(SIN_LEN as usize);
    // SAFETY: out is writable for *len bytes, n <= *len; sin is n bytes
    // readable (n <= its size); the two do not overlap (sin is local).
    unsafe {
        core::ptr::copy_nonoverlapping((&raw const sin).cast::<u8>(), out.cast::<u8>(), n);
        len.write(SIN_LEN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(a: SocketAddrV4) -> ::libc::sockaddr_in {
        to_sockaddr(a)
    }

    #[test]
    fn sockaddr_in_round_trips_in_network_byte_order() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 8080);
        let sin = raw(a);
        assert_eq!(sin.sin_port, 8080u16.to_be());
        assert_eq!(sin.sin_addr.s_addr.to_ne_bytes(), [10, 0, 0, 2]);
        // SAFETY: sin is a whole sockaddr_in.
        let back = unsafe { read((&raw const sin).cast(), SIN_LEN) };
        assert_eq!(back, Ok(Given::V4(a)));
    }

    #[test]
    fn bad_addresses_get_linuxs_errors() {
        let sin = raw(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1));
        let p = (&raw const sin).cast::<::libc::sockaddr>();
        // SAFETY: p is readable for the lengths given (at most its size).
        unsafe {
            assert_eq!(read(core::ptr::null(), SIN_LEN), Err(::libc::EFAULT));
            assert_eq!(read(p, 1), Err(::libc::EINVAL));
            assert_eq!(read(p, SIN_LEN - 1), Err(::libc::EINVAL));
        }
        let mut six = sin;
        six.sin_family = ::libc::AF_INET6 as _;
        // SAFETY: six is a whole sockaddr_in.
        assert_eq!(unsafe { read((&raw const six).cast(), SIN_LEN) }, Err(::libc::EAFNOSUPPORT));
        six.sin_family = ::libc::AF_UNSPEC as _;
        let p6 = (&raw const six).cast();
        // SAFETY: as above.
        assert_eq!(unsafe { read(p6, SIN_LEN) }, Ok(Given::Unspec));
        // SAFETY: as above.
        assert_eq!(unsafe { read_v4(p6, SIN_LEN) }, Err(::libc::EAFNOSUPPORT));
    }

    #[test]
    fn writing_truncates_to_the_callers_room_and_reports_the_full_size() {
        let a = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 9), 443);
        let mut buf = [0xaau8; 32];
        let mut len: ::libc::socklen_t = 4;
        // SAFETY: buf is writable for 32 >= len bytes.
        unsafe { write(a, buf.as_mut_ptr().cast(), &mut len) };
        assert_eq!(len, SIN_LEN);
        assert_eq!(&buf[..4], &[::libc::AF_INET as u8, 0, 1, 187]);
        assert_eq!(buf[4], 0xaa, "nothing past the caller's room");
        let mut len = 32;
        // SAFETY: as above.
        unsafe { write(a, buf.as_mut_ptr().cast(), &mut len) };
        assert_eq!(len, SIN_LEN);
        assert_eq!(&buf[4..8], &[192, 168, 1, 9]);
        // A null address is left alone.
        // SAFETY: null out is allowed.
        unsafe { write(a, core::ptr::null_mut(), &mut len) };
    }
}
