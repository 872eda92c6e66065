//! Sockets, pipes and the other objects of inter-process and network
//! I/O, until they land (the network issue brings sockets over libos's
//! smoltcp stack, pipes, socket pairs, `eventfd` and `epoll`). Until then
//! every call fails cleanly, never with an abort or a system call:
//! creating one (`socket`, `socketpair`, `pipe2`, ...) is `ENOSYS`, which
//! std reports as `ErrorKind::Unsupported`; a call on a descriptor is
//! `EBADF` for a closed one and `ENOTSOCK` for the console or a file, as
//! Linux answers.

use super::{c_int, c_void, fail, fail_size, size_t, ssize_t};

/// `EBADF` or `ENOTSOCK`: the error for a socket call on `fd`.
fn not_a_socket(fd: c_int) -> c_int {
    match super::fd::get(fd) {
        Ok(_) => ::libc::ENOTSOCK,
        Err(e) => e,
    }
}

/// Defines functions that create an object and fail with `ENOSYS`.
macro_rules! unsupported {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        $(#[$doc])*
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub extern "C" fn $name($($arg: $ty),*) -> c_int {
            let _ = ($($arg,)*);
            fail(::libc::ENOSYS)
        }
    )*};
}

unsupported! {
    /// `socket(domain, type, protocol)`.
    fn socket(domain: c_int, ty: c_int, protocol: c_int);
}

/// Defines calls on a socket descriptor that return `c_int`.
macro_rules! on_socket {
    ($($(#[$doc:meta])* fn $name:ident($fd:ident: c_int $(, $arg:ident: $ty:ty)*);)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// The pointers are valid as the C call requires.
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub unsafe extern "C" fn $name($fd: c_int $(, $arg: $ty)*) -> c_int {
            // A socket of a pair answers for itself.
            // SAFETY: the caller's contract is the C call's.
            #[allow(unused_unsafe)]
            if let Some(r) = unsafe { super::unix::$name($fd $(, $arg)*) } {
                return r;
            }
            fail(not_a_socket($fd))
        }
    )*};
}

/// Defines calls on a socket descriptor that return `ssize_t`.
macro_rules! on_socket_size {
    ($($(#[$doc:meta])* fn $name:ident($fd:ident: c_int $(, $arg:ident: $ty:ty)*);)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// The pointers are valid as the C call requires.
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub unsafe extern "C" fn $name($fd: c_int $(, $arg: $ty)*) -> ssize_t {
            // A socket of a pair answers for itself.
            // SAFETY: the caller's contract is the C call's.
            if let Some(r) = unsafe { super::unix::$name($fd $(, $arg)*) } {
                return r;
            }
            fail_size(not_a_socket($fd))
        }
    )*};
}

type Addr = *mut ::libc::sockaddr;
type AddrLen = *mut ::libc::socklen_t;

on_socket! {
    /// `bind(fd, addr, len)`.
    fn bind(fd: c_int, addr: *const ::libc::sockaddr, len: ::libc::socklen_t);
    /// `connect(fd, addr, len)`.
    fn connect(fd: c_int, addr: *const ::libc::sockaddr, len: ::libc::socklen_t);
    /// `listen(fd, backlog)`.
    fn listen(fd: c_int, backlog: c_int);
    /// `accept(fd, addr, len)`.
    fn accept(fd: c_int, addr: Addr, len: AddrLen);
    /// `accept4(fd, addr, len, flags)`.
    fn accept4(fd: c_int, addr: Addr, len: AddrLen, flags: c_int);
    /// `getsockname(fd, addr, len)`.
    fn getsockname(fd: c_int, addr: Addr, len: AddrLen);
    /// `getpeername(fd, addr, len)`.
    fn getpeername(fd: c_int, addr: Addr, len: AddrLen);
    /// `getsockopt(fd, level, name, value, len)`.
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: AddrLen);
    /// `setsockopt(fd, level, name, value, len)`.
    fn setsockopt(
        fd: c_int,
        level: c_int,
        name: c_int,
        value: *const c_void,
        len: ::libc::socklen_t
    );
    /// `shutdown(fd, how)`.
    fn shutdown(fd: c_int, how: c_int);
}

on_socket_size! {
    /// `send(fd, buf, len, flags)`.
    fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int);
    /// `recv(fd, buf, len, flags)`.
    fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int);
    /// `sendto(fd, buf, len, flags, addr, addrlen)`.
    fn sendto(
        fd: c_int,
        buf: *const c_void,
        len: size_t,
        flags: c_int,
        addr: *const ::libc::sockaddr,
        addrlen: ::libc::socklen_t
    );
    /// `recvfrom(fd, buf, len, flags, addr, addrlen)`.
    fn recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: Addr, addrlen: AddrLen);
    /// `sendmsg(fd, msg, flags)`.
    fn sendmsg(fd: c_int, msg: *const ::libc::msghdr, flags: c_int);
    /// `recvmsg(fd, msg, flags)`.
    fn recvmsg(fd: c_int, msg: *mut ::libc::msghdr, flags: c_int);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_fail_cleanly() {
        let _g = super::super::fd::tests::serial();
        assert_eq!(socket(::libc::AF_INET, ::libc::SOCK_STREAM, 0), -1);
        assert_eq!(super::super::errno(), ::libc::ENOSYS);
        // SAFETY: listen takes no pointer.
        assert_eq!(unsafe { listen(900, 1) }, -1);
        assert_eq!(super::super::errno(), ::libc::EBADF);
    }
}
