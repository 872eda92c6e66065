//! The host side of a tap: the few system calls that open, query and check
//! a tap and its interface. `net` decides what to do with the answers.
//!
//! Every function here is a thin wrapper around one host call (or a
//! request and its answer), taking and returning plain values: interface
//! names are checked by `net` (1 to 15 bytes, no NUL) before they get here.
//!
//! # Safety
//!
//! The unsafe blocks pass the kernel pointers to local, initialised
//! structures (`ifreq`, byte buffers) that outlive the call, with the
//! sizes the requests expect; no pointer is kept after a call returns.
//! Descriptors the tender opens are wrapped in [`OwnedFd`] at once. A
//! descriptor the caller handed over (`fd:N`) is only queried
//! (`TUNGETIFF`, `F_GETFD`, `F_GETFL`/`F_SETFL`) and, once it is known to
//! be a tap, told the offloads the guest takes (`TUNSETOFFLOAD`) and, with
//! virtio-net headers, their length (`TUNSETVNETHDRSZ`): on a descriptor
//! that is not open or not a tap those calls fail harmlessly.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `IFF_TAP`: an Ethernet (layer 2) device.
pub const IFF_TAP: i32 = libc::IFF_TAP;
/// `IFF_TUN`: an IP (layer 3) device.
pub const IFF_TUN: i32 = libc::IFF_TUN;
/// `IFF_NO_PI`: frames without the 4-byte packet-information header.
/// (`TUNGETIFF` cannot tell: it reports `IFF_NOFILTER`, the same bit.)
pub const IFF_NO_PI: i32 = libc::IFF_NO_PI;

/// An `ifreq` for interface `name`, with the union zeroed.
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data (arrays, integers, a union of those and a
    // pointer); all zeroes is a valid value of each.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes().iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

/// The name in an `ifreq` the kernel filled, up to its NUL.
fn ifreq_name(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req.ifr_name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Opens `/dev/net/tun` read-write, non-blocking (the guest polls with
/// `ppoll` and reads until `EAGAIN`) and close-on-exec.
pub fn open_tun() -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path and integer flags.
    let fd = unsafe {
        libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `IFF_VNET_HDR`: frames carry a virtio-net header.
pub const IFF_VNET_HDR: i32 = libc::IFF_VNET_HDR;

/// `TUNSETIFF` with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR` for interface
/// `name` on a fresh `/dev/net/tun` fd. Returns the name of the interface
/// the kernel attached.
pub fn set_iff(tun: &OwnedFd, name: &str) -> io::Result<String> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_flags = (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which req is.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ifreq_name(&req))
}

/// `TUNGETIFF` on `fd`: the attached interface's name and its tun flags.
/// Fails (`ENOTTY`, `EBADFD`, `EINVAL`) on anything but an attached tun or
/// tap fd.
pub fn get_iff(fd: RawFd) -> io::Result<(String, i32)> {
    let mut req = ifreq("");
    // SAFETY: TUNGETIFF writes one ifreq, which req is; on any other kind
    // of fd the ioctl fails without touching it.
    if unsafe { libc::ioctl(fd, libc::TUNGETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TUNGETIFF set the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok((ifreq_name(&req), i32::from(flags as u16)))
}

/// `TUNSETVNETHDRSZ`: the virtio-net header in front of each frame on the
/// tap at `fd` is `len` bytes long. The length belongs to the interface (a
/// persistent tap keeps what its last user set, 12 after QEMU), so the
/// tender sets it on every tap it uses with headers.
pub fn set_vnet_hdr_len(fd: RawFd, len: usize) -> io::Result<()> {
    let len = len as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int, which len is.
    if unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ, &len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `TUNSETOFFLOAD`: with `on`, the host may hand the tap at `fd` TCP over
/// IPv4 bursts larger than the MTU (`TUN_F_TSO4`) and packets whose
/// checksum is left to finish (`TUN_F_CSUM`), each described by its
/// virtio-net header; without, only whole, checksummed frames. The setting
/// belongs to the interface and outlives whoever set it, so the tender sets
/// it on every tap, either way.
pub fn set_offload(fd: RawFd, on: bool) -> io::Result<()> {
    let features = if on { libc::TUN_F_CSUM | libc::TUN_F_TSO4 } else { 0 };
    let features = libc::c_ulong::from(features);
    // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is
    // passed.
    if unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, features) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` is an open descriptor of this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on an integer touches no memory.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

/// Sets `O_NONBLOCK` on `fd` (shared with whoever else holds the same open
/// file description).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL on an integer touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: F_SETFL with integer flags touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Fills `buf` from the kernel's random number generator.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: rest is valid for writes of rest.len() bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// A socket to ask the kernel about interfaces (`SIOCGIF*`), in the
/// tender's network namespace. Closed when dropped, before the jump.
#[derive(Debug)]
pub struct Interfaces(OwnedFd);

impl Interfaces {
    /// An `AF_INET`/`SOCK_DGRAM` socket, close-on-exec.
    pub fn new() -> io::Result<Self> {
        // SAFETY: integer arguments only.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Runs the `SIOCGIF*` request `request` for `name` and returns the
    /// filled `ifreq`.
    fn query(&self, name: &str, request: libc::c_ulong) -> io::Result<libc::ifreq> {
        let mut req = ifreq(name);
        // SAFETY: each SIOCGIF* request used here reads the name from and
        // writes one member of the ifreq, which req is.
        if unsafe { libc::ioctl(self.0.as_raw_fd(), request, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(req)
    }

    /// The interface's index, or `None` if there is no interface `name`.
    pub fn index(&self, name: &str) -> io::Result<Option<u32>> {
        match self.query(name, libc::SIOCGIFINDEX) {
            // SAFETY: SIOCGIFINDEX set the ifindex member.
            Ok(req) => Ok(Some(unsafe { req.ifr_ifru.ifru_ifindex } as u32)),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The interface's flags (`IFF_UP`, ...).
    pub fn flags(&self, name: &str) -> io::Result<i32> {
        let req = self.query(name, libc::SIOCGIFFLAGS)?;
        // SAFETY: SIOCGIFFLAGS set the flags member.
        Ok(i32::from(unsafe { req.ifr_ifru.ifru_flags } as u16))
    }

    /// The interface's MTU.
    pub fn mtu(&self, name: &str) -> io::Result<u32> {
        let req = self.query(name, libc::SIOCGIFMTU)?;
        // SAFETY: SIOCGIFMTU set the mtu member.
        Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
    }
}

/// Sends one rtnetlink `request` to the kernel and returns its answer (the
/// first datagram), from a fresh `NETLINK_ROUTE` socket in the tender's
/// network namespace.
pub fn rtnetlink(request: &[u8]) -> io::Result<Vec<u8>> {
    // SAFETY: integer arguments only.
    let fd = unsafe {
        libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // Unbound and unconnected: the datagram goes to the kernel (port 0).
    // SAFETY: request is valid for reads of request.len() bytes.
    let sent = unsafe { libc::send(sock.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut answer = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: answer is valid for writes of answer.len() bytes.
        let n =
            unsafe { libc::recv(sock.as_raw_fd(), answer.as_mut_ptr().cast(), answer.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        answer.truncate(n as usize);
        return Ok(answer);
    }
}
