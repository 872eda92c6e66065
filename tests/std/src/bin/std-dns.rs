//! Name resolution as a std program sees it, for tests/suite/std_dns.rs:
//! the guest is 10.0.0.2/24, the suite's DNS server and listeners are at
//! 10.0.0.1, and the suite gives /etc/hosts, /etc/resolv.conf and
//! /etc/hostname with `tender --etc`. Each argument is a step, whose
//! result is a line of output the suite asserts:
//!
//! * `NAME`: `resolve NAME: ADDR, ...` (std's `to_socket_addrs` of
//!   `NAME:80`), or `resolve NAME: error: <io::Error>`;
//! * `connect:NAME:PORT`: `TcpStream::connect("NAME:PORT")`, then the
//!   first line the server sends: `connect NAME:PORT: LINE`;
//! * `cat:PATH`: `cat PATH: <contents, escaped>` or the error;
//! * `write:PATH`: `write PATH: <the error>` (or `ok`);
//! * `ticking:NAME`: resolves NAME while another thread ticks every 20 ms:
//!   `ticking NAME: <result>; ticks N` (other threads run meanwhile);
//! * `name:ADDR`, `name-req:ADDR`, `name-short:ADDR`: `getnameinfo` of
//!   ADDR port 80 (no flags, `NI_NAMEREQD`, `NI_NOFQDN`): `name ADDR: HOST
//!   SERV`, or `name ADDR: error <gai_strerror>`.

libos_std::app!(devices: ["service0": Net]);

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

fn resolve(name: &str) -> String {
    match format!("{name}:80").to_socket_addrs() {
        Ok(addrs) => {
            let v: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            v.join(", ")
        }
        Err(e) => format!("error: {e}"),
    }
}

/// `getnameinfo` of `addr` port 80 with `flags`, as a line.
fn name_of(addr: &str, flags: libc::c_int) -> String {
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else { return format!("bad address {addr}") };
    let (mut host, mut serv) = ([0u8; 256], [0u8; 32]);
    // SAFETY: plain data, zeroes valid; each sockaddr is whole for its
    // length; host and serv are writable for theirs.
    let r = unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let len = match ip {
            std::net::IpAddr::V4(v4) => {
                let sin = &mut *(&raw mut ss).cast::<libc::sockaddr_in>();
                sin.sin_family = libc::AF_INET as _;
                sin.sin_port = 80u16.to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
                std::mem::size_of::<libc::sockaddr_in>()
            }
            std::net::IpAddr::V6(v6) => {
                let sin6 = &mut *(&raw mut ss).cast::<libc::sockaddr_in6>();
                sin6.sin6_family = libc::AF_INET6 as _;
                sin6.sin6_port = 80u16.to_be();
                sin6.sin6_addr.s6_addr = v6.octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        libc::getnameinfo(
            (&raw const ss).cast(),
            len as _,
            host.as_mut_ptr().cast(),
            host.len() as _,
            serv.as_mut_ptr().cast(),
            serv.len() as _,
            flags,
        )
    };
    let text = |b: &[u8]| {
        String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(0)]).into_owned()
    };
    if r == 0 {
        format!("{} {}", text(&host), text(&serv))
    } else {
        // SAFETY: gai_strerror returns a static NUL-terminated string.
        let msg = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(r)) };
        format!("error {}", msg.to_string_lossy())
    }
}

fn main() {
    for step in std::env::args().skip(1) {
        let named =
            [("name:", 0), ("name-req:", libc::NI_NAMEREQD), ("name-short:", libc::NI_NOFQDN)]
                .into_iter()
                .find_map(|(p, f)| step.strip_prefix(p).map(|a| (a, f)));
        if let Some((addr, flags)) = named {
            println!("name {addr}: {}", name_of(addr, flags));
        } else if let Some(target) = step.strip_prefix("connect:") {
            let line = match TcpStream::connect(target) {
                Ok(s) => {
                    let mut line = String::new();
                    match BufReader::new(s).read_line(&mut line) {
                        Ok(_) => line.trim_end().to_string(),
                        Err(e) => format!("read error: {e}"),
                    }
                }
                Err(e) => format!("error: {e}"),
            };
            println!("connect {target}: {line}");
        } else if let Some(path) = step.strip_prefix("cat:") {
            match std::fs::read(path) {
                Ok(b) => println!("cat {path}: {}", String::from_utf8_lossy(&b).escape_debug()),
                Err(e) => println!("cat {path}: error: {e}"),
            }
        } else if let Some(path) = step.strip_prefix("write:") {
            match std::fs::OpenOptions::new().append(true).open(path) {
                Ok(_) => println!("write {path}: ok"),
                Err(e) => println!("write {path}: error: {e}"),
            }
        } else if let Some(name) = step.strip_prefix("ticking:") {
            let ticks = Arc::new(AtomicU32::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let ticker = {
                let (ticks, stop) = (ticks.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                        ticks.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            let r = resolve(name);
            stop.store(true, Ordering::Relaxed);
            ticker.join().unwrap();
            println!("ticking {name}: {r}; ticks {}", ticks.load(Ordering::Relaxed));
        } else {
            println!("resolve {step}: {}", resolve(&step));
        }
    }
}
