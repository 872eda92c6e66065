//! echo: a TCP echo server (RFC 862) that serves many clients at once.
//!
//! ```text
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 target/release/echo
//! ```
//!
//! Listens on port 7, or on `$PORT`, for TCP and for UDP (each datagram is
//! sent back to its sender). `$BACKLOG` (default 64) is how many connections
//! may wait to be accepted; further connection requests wait for a free slot
//! (the client retries its SYN) and are not refused. Each TCP connection is
//! a task of its own; a client that misbehaves or vanishes only ends its own
//! task.

#![no_std]
#![no_main]

use libos::net::{NetError, TcpListener, TcpOptions, TcpStream, UdpSocket};
use libos::{env, log, println, task};

libos::app!(async main, devices: ["service0": Net]);

async fn main() -> Result<(), NetError> {
    let port = match env::var("PORT").map(str::parse::<u16>) {
        None => 7,
        Some(Ok(p)) if p != 0 => p,
        Some(_) => {
            println!("echo: PORT must be a port number, 1-65535");
            return Err(NetError::InvalidAddress);
        }
    };
    let backlog = match env::var("BACKLOG").map(str::parse::<usize>) {
        None => 64,
        Some(Ok(n)) if (1..=1024).contains(&n) => n,
        Some(_) => {
            println!("echo: BACKLOG must be a number of connections, 1-1024");
            return Err(NetError::InvalidAddress);
        }
    };
    let opts = TcpOptions { backlog, nodelay: true, ..TcpOptions::default() };
    let listener = TcpListener::bind_with(port, opts)?;
    let udp = UdpSocket::bind(port)?;
    task::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            match udp.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    if let Err(e) = udp.send_to(&buf[..n], from).await {
                        log::debug!("udp {from}: {e}");
                    }
                }
                Err(e) => log::warn!("udp: {e}"),
            }
        }
    });
    libos::net::wait_configured().await;
    for i in libos::net::interfaces() {
        if let Some((addr, prefix)) = i.ipv4 {
            println!("echo: listening on {addr}:{port} ({}/{prefix})", i.name);
        }
    }
    loop {
        let (stream, peer) = listener.accept().await?;
        log::debug!("connection from {peer}");
        task::spawn(async move {
            if let Err(e) = serve(stream).await {
                log::debug!("{peer}: {e}");
            }
        });
    }
}

async fn serve(mut stream: TcpStream) -> Result<(), NetError> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            stream.shutdown();
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}
