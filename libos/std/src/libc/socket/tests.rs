//! Host tests of the socket calls: no interface exists on the host (the
//! stack is empty), so these cover creation, options, addresses and the
//! errno paths; tests/suite/std_net.rs drives real connections.

use super::*;

fn errno() -> c_int {
    super::super::errno()
}

fn sin(ip: [u8; 4], port: u16) -> ::libc::sockaddr_in {
    addr::to_sockaddr(SocketAddrV4::new(ip.into(), port))
}

fn sin6(ip: &str, port: u16) -> ::libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain data; all zeroes is valid.
    let mut a: ::libc::sockaddr_in6 = unsafe { core::mem::zeroed() };
    a.sin6_family = ::libc::AF_INET6 as _;
    a.sin6_port = port.to_be();
    a.sin6_addr.s6_addr = ip.parse::<core::net::Ipv6Addr>().unwrap().octets();
    a
}

/// `bind` (`connect` if not `bind`) of `fd` to `a`: the result and errno.
fn bind_or_connect<A>(fd: c_int, a: &A, bind_it: bool) -> (c_int, c_int) {
    let (p, len) = ((&raw const *a).cast(), core::mem::size_of::<A>() as ::libc::socklen_t);
    // SAFETY: a is a whole sockaddr of len bytes.
    let r = unsafe { if bind_it { bind(fd, p, len) } else { connect(fd, p, len) } };
    (r, if r < 0 { errno() } else { 0 })
}

fn set_int(fd: c_int, level: c_int, name: c_int, v: c_int) -> c_int {
    // SAFETY: v is a readable int.
    unsafe { setsockopt(fd, level, name, (&raw const v).cast(), 4) }
}

fn get_int(fd: c_int, level: c_int, name: c_int) -> c_int {
    let mut v: c_int = -7;
    let mut len: ::libc::socklen_t = 4;
    // SAFETY: v is a writable int, len its size.
    let r = unsafe { getsockopt(fd, level, name, (&raw mut v).cast(), &mut len) };
    assert_eq!(r, 0, "getsockopt({level}, {name}): errno {}", errno());
    assert_eq!(len, 4);
    v
}

#[test]
fn creation_takes_linuxs_flags_and_refuses_other_families() {
    let _table = super::super::FD_TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(socket(::libc::AF_UNIX, ::libc::SOCK_STREAM, 0), -1);
    assert_eq!(errno(), ::libc::EAFNOSUPPORT);
    assert_eq!(socket(::libc::AF_INET, ::libc::SOCK_RAW, 0), -1);
    assert_eq!(errno(), ::libc::ESOCKTNOSUPPORT);
    assert_eq!(socket(::libc::AF_INET, ::libc::SOCK_STREAM, ::libc::IPPROTO_UDP), -1);
    assert_eq!(errno(), ::libc::EPROTONOSUPPORT);
    let fd = socket(
        ::libc::AF_INET,
        ::libc::SOCK_STREAM | ::libc::SOCK_NONBLOCK | ::libc::SOCK_CLOEXEC,
        0,
    );
    assert!(fd >= 3);
    assert_eq!(fd::fcntl(fd, ::libc::F_GETFL, 0), ::libc::O_RDWR | ::libc::O_NONBLOCK);
    assert_eq!(fd::fcntl(fd, ::libc::F_GETFD, 0), ::libc::FD_CLOEXEC);
    assert_eq!(get_int(fd, ::libc::SOL_SOCKET, ::libc::SO_TYPE), ::libc::SOCK_STREAM);
    assert_eq!(get_int(fd, ::libc::SOL_SOCKET, ::libc::SO_ERROR), 0);
    assert_eq!(get_int(fd, ::libc::SOL_SOCKET, ::libc::SO_ACCEPTCONN), 0);
    // SAFETY: stat64 is plain data; all zeroes is valid.
    let mut st: ::libc::stat64 = unsafe { core::mem::zeroed() };
    // SAFETY: st is writable.
    assert_eq!(unsafe { fd::fstat64(fd, &mut st) }, 0);
    assert_eq!(st.st_mode & ::libc::S_IFMT, ::libc::S_IFSOCK);
    assert_eq!(fd::close(fd), 0);
    let u = socket(::libc::AF_INET, ::libc::SOCK_DGRAM, 0);
    assert_eq!(get_int(u, ::libc::SOL_SOCKET, ::libc::SO_TYPE), ::libc::SOCK_DGRAM);
    assert_eq!(fd::close(u), 0);
}

#[test]
fn calls_on_other_descriptors_are_enotsock_or_ebadf() {
    let _table = super::super::FD_TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(listen(1, 1), -1);
    assert_eq!(errno(), ::libc::ENOTSOCK);
    assert_eq!(listen(900, 1), -1);
    assert_eq!(errno(), ::libc::EBADF);
    assert_eq!(shutdown(2, ::libc::SHUT_RD), -1);
    assert_eq!(errno(), ::libc::ENOTSOCK);
}

#[test]
fn options_are_stored_reported_and_checked() {
    let _table = super::super::FD_TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let fd = socket(::libc::AF_INET, ::libc::SOCK_STREAM, 0);
    assert_eq!(set_int(fd, ::libc::SOL_SOCKET, ::libc::SO_REUSEADDR, 1), 0);
    assert_eq!(get_int(fd, ::libc::SOL_SOCKET, ::libc::SO_REUSEADDR), 1);
    assert_eq!(set_int(fd, ::libc::IPPROTO_TCP, ::libc::TCP_NODELAY, 1), 0);
    assert_eq!(get_int(fd, ::libc::IPPROTO_TCP, ::libc::TCP_NODELAY), 1);
    assert_eq!(set_int(fd, ::libc::SOL_SOCKET, ::libc::SO_RCVBUF, 32768), 0);
    assert_eq!(get_int(fd, ::libc::SOL_SOCKET, ::libc::SO_RCVBUF), 65536);
    assert_eq!(set_int(fd, ::libc::IPPROTO_IP, ::libc::IP_TTL, 9), 0);
    assert_eq!(get_int(fd, ::libc::IPPROTO_IP, ::libc::IP_TTL), 9);
    assert_eq!(set_int(fd, ::libc::IPPROTO_IP, ::libc::IP_MULTICAST_TTL, 1), -1);
    assert_eq!(errno(), ::libc::ENOPROTOOPT);
    // A short value; a null length.
    let one: c_int = 1;
    let p = (&raw const one).cast();
    // SAFETY: 2 readable bytes of one.
    let r = unsafe { setsockopt(fd, ::libc::SOL_SOCKET, ::libc::SO_KEEPALIVE, p, 2) };
    assert_eq!(r, -1);
    assert_eq!(errno(), ::libc::EINVAL);
    // SAFETY: a null length is checked before use.
    let r = unsafe {
        getsockopt(
            fd,
            ::libc::SOL_SOCKET,
            ::libc::SO_TYPE,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
    assert_eq!((r, errno()), (-1, ::libc::EFAULT));
    // A timeval, read back.
    let tv = ::libc::timeval { tv_sec: 2, tv_usec: 250_000 };
    // SAFETY: tv is a readable timeval.
    let r = unsafe {
        setsockopt(fd, ::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO, (&raw const tv).cast(), 16)
    };
    assert_eq!(r, 0);
    let mut back = ::libc::timeval { tv_sec: 0, tv_usec: 0 };
    let mut len: ::libc::socklen_t = 16;
    // SAFETY: back is a writable timeval.
    unsafe {
        getsockopt(fd, ::libc::SOL_SOCKET, ::libc::SO_RCVTIMEO, (&raw mut back).cast(), &mut len)
    };
    assert_eq!((back.tv_sec, back.tv_usec, len), (2, 250_000, 16));
    // UDP: no TCP options.
    let u = socket(::libc::AF_INET, ::libc::SOCK_DGRAM, 0);
    assert_eq!(set_int(u, ::libc::IPPROTO_TCP, ::libc::TCP_NODELAY, 1), -1);
    assert_eq!(errno(), ::libc::ENOPROTOOPT);
    assert_eq!(listen(u, 1), -1);
    assert_eq!(errno(), ::libc::EOPNOTSUPP);
    fd::close(fd);
    fd::close(u);
}

#[test]
fn without_an_interface_binding_and_connecting_fail_as_on_linux() {
    let _table = super::super::FD_TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let fd = socket(::libc::AF_INET, ::libc::SOCK_STREAM | ::libc::SOCK_NONBLOCK, 0);
    let a = sin([0, 0, 0, 0], 8080);
    // SAFETY: a is a whole sockaddr_in.
    let r = unsafe { bind(fd, (&raw const a).cast(), addr::SIN_LEN) };
    assert_eq!((r, errno()), (-1, ::libc::EADDRNOTAVAIL));
    // A short address; IPv6.
    // SAFETY: as above, shorter.
    let r = unsafe { bind(fd, (&raw const a).cast(), 8) };
    assert_eq!((r, errno()), (-1, ::libc::EINVAL));
    let mut six = a;
    six.sin_family = ::libc::AF_INET6 as _;
    // SAFETY: six is a whole sockaddr_in.
    let r = unsafe { connect(fd, (&raw const six).cast(), addr::SIN_LEN) };
    assert_eq!((r, errno()), (-1, ::libc::EAFNOSUPPORT));
    let to = sin([10, 0, 0, 1], 80);
    // SAFETY: to is a whole sockaddr_in.
    let r = unsafe { connect(fd, (&raw const to).cast(), addr::SIN_LEN) };
    assert_eq!((r, errno()), (-1, ::libc::ENETUNREACH));
    // Unconnected: no peer, reads ENOTCONN, writes EPIPE, shutdown ENOTCONN.
    let mut peer = sin([1, 1, 1, 1], 1);
    let mut len = addr::SIN_LEN;
    // SAFETY: peer is writable for len bytes.
    let r = unsafe { getpeername(fd, (&raw mut peer).cast(), &mut len) };
    assert_eq!((r, errno()), (-1, ::libc::ENOTCONN));
    let mut b = [0u8; 4];
    // SAFETY: b is writable for 4 bytes.
    let r = unsafe { recv(fd, b.as_mut_ptr().cast(), 4, 0) };
    assert_eq!((r, errno()), (-1, ::libc::ENOTCONN));
    // SAFETY: b is readable for 4 bytes.
    let r = unsafe { send(fd, b.as_ptr().cast(), 4, ::libc::MSG_NOSIGNAL) };
    assert_eq!((r, errno()), (-1, ::libc::EPIPE));
    // SAFETY: as above.
    let r = unsafe { send(fd, b.as_ptr().cast(), 4, ::libc::MSG_OOB) };
    assert_eq!((r, errno()), (-1, ::libc::EOPNOTSUPP));
    assert_eq!((shutdown(fd, ::libc::SHUT_WR), errno()), (-1, ::libc::ENOTCONN));
    assert_eq!((shutdown(fd, 7), errno()), (-1, ::libc::EINVAL));
    // The local address of an unbound socket: 0.0.0.0:0.
    let mut me = sin([1, 1, 1, 1], 1);
    let mut len = addr::SIN_LEN;
    // SAFETY: me is writable for len bytes.
    assert_eq!(unsafe { getsockname(fd, (&raw mut me).cast(), &mut len) }, 0);
    assert_eq!((me.sin_addr.s_addr, me.sin_port), (0, 0));
    // A fresh socket polls as Linux's: writable, hung up.
    let o = fd::get(fd).unwrap();
    assert_eq!(o.file.poll(), ::libc::POLLOUT | ::libc::POLLHUP);
    fd::close(fd);
}

#[test]
fn udp_without_an_interface() {
    let _table = super::super::FD_TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let u = socket(::libc::AF_INET, ::libc::SOCK_DGRAM | ::libc::SOCK_NONBLOCK, 0);
    let mut b = [0u8; 4];
    // Unbound, nonblocking: nothing to receive.
    // SAFETY: b is writable.
    let r = unsafe { recv(u, b.as_mut_ptr().cast(), 4, 0) };
    assert_eq!((r, errno()), (-1, ::libc::EAGAIN));
    // No destination; then no route.
    // SAFETY: b is readable.
    let r = unsafe { send(u, b.as_ptr().cast(), 4, 0) };
    assert_eq!((r, errno()), (-1, ::libc::EDESTADDRREQ));
    let to = sin([10, 0, 0, 1], 53);
    // SAFETY: to is a whole sockaddr_in.
    let r = unsafe { connect(u, (&raw const to).cast(), addr::SIN_LEN) };
    assert_eq!((r, errno()), (-1, ::libc::ENETUNREACH));
    let bcast = sin([255, 255, 255, 255], 53);
    // SAFETY: b and bcast are readable.
    let r = unsafe { sendto(u, b.as_ptr().cast(), 4, 0, (&raw const bcast).cast(), addr::SIN_LEN) };
    assert_eq!((r, errno()), (-1, ::libc::EACCES), "broadcast needs SO_BROADCAST");
    assert_eq!(fd::get(u).unwrap().file.poll(), ::libc::POLLOUT);
    fd::close(u);
}

#[test]
fn ipv6_sockets_are_dual_stack_with_linuxs_answers_for_what_they_cannot_reach() {
    let _table = super::super::FD_TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let t = socket(::libc::AF_INET6, ::libc::SOCK_STREAM | ::libc::SOCK_CLOEXEC, 0);
    assert!(t >= 3, "errno {}", errno());
    assert_eq!(get_int(t, ::libc::SOL_SOCKET, ::libc::SO_DOMAIN), ::libc::AF_INET6);
    assert_eq!(get_int(t, ::libc::IPPROTO_IPV6, ::libc::IPV6_V6ONLY), 0);
    // Unbound: `::`, port 0, as a sockaddr_in6.
    let mut out = sin6("::1", 1);
    let mut len: ::libc::socklen_t = 64;
    // SAFETY: out is writable for its size; len says more, but a
    // sockaddr_in6 is all that is written.
    assert_eq!(unsafe { getsockname(t, (&raw mut out).cast(), &mut len) }, 0);
    assert_eq!((len, out.sin6_family, out.sin6_port), (addr::SIN6_LEN, ::libc::AF_INET6 as _, 0));
    assert_eq!(out.sin6_addr.s6_addr, [0; 16]);
    // TCP takes AF_INET6 only; IPv6 addresses other than mapped ones have
    // no interface and no route; a mapped one goes to the IPv4 stack
    // (which has no interface on the host either).
    assert_eq!(bind_or_connect(t, &sin([0, 0, 0, 0], 80), true), (-1, ::libc::EAFNOSUPPORT));
    assert_eq!(bind_or_connect(t, &sin6("2001:db8::1", 80), true), (-1, ::libc::EADDRNOTAVAIL));
    assert_eq!(bind_or_connect(t, &sin6("::ffff:10.0.0.2", 80), true), (-1, ::libc::EADDRNOTAVAIL));
    assert_eq!(bind_or_connect(t, &sin6("::1", 80), false), (-1, ::libc::ENETUNREACH));
    assert_eq!(bind_or_connect(t, &sin([10, 0, 0, 1], 80), false), (-1, ::libc::EAFNOSUPPORT));
    assert_eq!(bind_or_connect(t, &sin6("::ffff:10.0.0.1", 80), false), (-1, ::libc::ENETUNREACH));
    // TCP's sendto does not read the address: unconnected, EPIPE as send.
    let b = [1u8; 4];
    let to = sin([10, 0, 0, 1], 80);
    // SAFETY: b is readable for 4 bytes, to is a whole sockaddr_in.
    let r = unsafe { sendto(t, b.as_ptr().cast(), 4, 0, (&raw const to).cast(), addr::SIN_LEN) };
    assert_eq!((r, errno()), (-1, ::libc::EPIPE));
    // IPV6_V6ONLY: IPv4 out of reach, and no IPv6 address to bind.
    assert_eq!(set_int(t, ::libc::IPPROTO_IPV6, ::libc::IPV6_V6ONLY, 1), 0);
    assert_eq!(get_int(t, ::libc::IPPROTO_IPV6, ::libc::IPV6_V6ONLY), 1);
    assert_eq!(bind_or_connect(t, &sin6("::ffff:10.0.0.2", 80), true), (-1, ::libc::EINVAL));
    assert_eq!(bind_or_connect(t, &sin6("::", 80), true), (-1, ::libc::EADDRNOTAVAIL));
    assert_eq!(bind_or_connect(t, &sin6("::ffff:10.0.0.1", 80), false), (-1, ::libc::ENETUNREACH));
    assert_eq!(fd::close(t), 0);
    // UDP takes AF_INET too, but not with IPV6_V6ONLY.
    let u = socket(::libc::AF_INET6, ::libc::SOCK_DGRAM, 0);
    assert!(u >= 3);
    assert_eq!(bind_or_connect(u, &sin([10, 0, 0, 1], 53), false), (-1, ::libc::ENETUNREACH));
    assert_eq!(set_int(u, ::libc::IPPROTO_IPV6, ::libc::IPV6_V6ONLY, 1), 0);
    assert_eq!(bind_or_connect(u, &sin([10, 0, 0, 1], 53), false), (-1, ::libc::EAFNOSUPPORT));
    assert_eq!(fd::close(u), 0);
    // An IPv4 socket has no IPv6 options and takes no IPv6 address.
    let v4 = socket(::libc::AF_INET, ::libc::SOCK_STREAM, 0);
    assert_eq!(set_int(v4, ::libc::IPPROTO_IPV6, ::libc::IPV6_V6ONLY, 1), -1);
    assert_eq!(errno(), ::libc::ENOPROTOOPT);
    assert_eq!(bind_or_connect(v4, &sin6("::ffff:10.0.0.2", 80), true), (-1, ::libc::EAFNOSUPPORT));
    assert_eq!(fd::close(v4), 0);
}
