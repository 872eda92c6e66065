//! Data written before the guest ends reaches the peer (issue 13), for
//! tests/suite/exit_flush.rs: connects to `10.0.0.1:7010`, writes
//! `BYTES` (argument 2) of the pattern `i % 251` on a connection with a
//! 1 MiB send buffer, prints `exitflush: wrote N`, then ends by argument 1:
//!
//! * `exit`: `libos::process::exit(3)` with the stream still open (the
//!   exit closes it);
//! * `close`: drops the stream (closed, its data still queued), sleeps
//!   100 ms, and returns from `main` (status 0);
//! * `fill`: writes without waiting, only what the send buffer takes (at
//!   most `BYTES`), then `exit(3)`: for a peer that never reads.

#![no_std]
#![no_main]

extern crate alloc;

use core::task::Poll;
use core::time::Duration;

use libos::net::{Ipv4Addr, SocketAddrV4, TcpOptions, TcpStream};
use libos::{env, println, process, task};

libos::app!(async main, devices: ["service0": Net]);

async fn main() -> i32 {
    let mut args = env::args().skip(1);
    let how = args.next().unwrap_or("exit");
    let Some(bytes) = args.next().and_then(|b| b.parse::<usize>().ok()) else {
        println!("usage: guest-exitflush exit|close|fill BYTES");
        return 2;
    };
    let opts = TcpOptions { tx_buffer: 1024 * 1024, nodelay: true, ..TcpOptions::default() };
    let peer = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 7010);
    let mut stream = match TcpStream::connect_with(peer, opts).await {
        Ok(s) => s,
        Err(e) => {
            println!("exitflush: connect: {e}");
            return 1;
        }
    };
    let chunk: alloc::vec::Vec<u8> = (0..251 * 64).map(|i| (i % 251) as u8).collect();
    let mut wrote = 0;
    while wrote < bytes {
        // Every chunk starts at a multiple of 251: the pattern runs on.
        let want = &chunk[..chunk.len().min(bytes - wrote)];
        let n = if how == "fill" {
            match stream.try_write(want) {
                Poll::Ready(Ok(n)) if n > 0 => n,
                _ => break,
            }
        } else {
            match stream.write(want).await {
                Ok(n) => n,
                Err(e) => {
                    println!("exitflush: write: {e}");
                    return 1;
                }
            }
        };
        wrote += n;
        if n < want.len() {
            // The pattern must stay aligned: only whole chunks, but the last.
            let rest = &want[n..];
            if how == "fill" {
                break;
            }
            if let Err(e) = stream.write_all(rest).await {
                println!("exitflush: write: {e}");
                return 1;
            }
            wrote += rest.len();
        }
    }
    println!("exitflush: wrote {wrote}");
    match how {
        "close" => {
            drop(stream);
            task::sleep(Duration::from_millis(100)).await;
            0
        }
        _ => process::exit(3),
    }
}
