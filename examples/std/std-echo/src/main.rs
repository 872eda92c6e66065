//! A TCP echo server on `std::net`, one thread per connection: what a
//! program written for Linux looks like, run as a nabla guest unchanged.
//!
//! ```text
//! std-echo [PORT]          (or the environment's PORT; 7 by default)
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 target/release/std-echo 7
//! ```
//!
//! Each connection gets a thread that reads and writes back until the
//! client closes its side, then closes. A client that vanishes (reset,
//! or silent) costs its thread only: the others are served meanwhile.
//! Threads get a 64 KiB stack, enough for this loop: a guest's threads
//! live on its heap (docs/std.md, "Threads"), and hundreds of clients fit
//! in a few MiB.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;

#[cfg(feature = "nabla")]
libos_std::app!(devices: ["service0": Net]);

/// The stack of a connection's thread.
const STACK: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let port = match std::env::args().nth(1).or_else(|| std::env::var("PORT").ok()) {
        Some(p) => p
            .parse::<u16>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("port {p:?}: {e}")))?,
        None => 7,
    };
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
    println!("std-echo: listening on {}", listener.local_addr()?);
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("std-echo: accept: {e}");
                continue;
            }
        };
        let spawned = thread::Builder::new().stack_size(STACK).spawn(move || {
            let peer = stream.peer_addr();
            if let Err(e) = echo(stream) {
                match peer {
                    Ok(p) => eprintln!("std-echo: {p}: {e}"),
                    Err(_) => eprintln!("std-echo: {e}"),
                }
            }
        });
        // Out of memory for another thread: this connection is closed (its
        // stream was moved into the closure that was dropped), the others go on.
        if let Err(e) = spawned {
            eprintln!("std-echo: no thread for a connection: {e}");
        }
    }
    Ok(())
}

/// Echoes what `stream` reads until the peer closes its side.
fn echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
    }
    stream.shutdown(std::net::Shutdown::Write)
}
