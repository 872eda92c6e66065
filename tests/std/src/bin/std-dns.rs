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
//!   `ticking NAME: <result>; ticks N` (other threads run meanwhile).

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

fn main() {
    for step in std::env::args().skip(1) {
        if let Some(target) = step.strip_prefix("connect:") {
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
