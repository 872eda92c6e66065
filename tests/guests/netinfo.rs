//! A guest with two network devices: prints what it knows about each
//! interface once configured, then idles (the stack answers ARP and ping).
//!
//! With `CONNECT=ADDR:PORT` it first connects there as a client, sends a
//! line, and prints the line it gets back.

#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;

use libos::{env, net, println, task};

libos::app!(async main, devices: ["service0": Net, "service1": Net]);

async fn main() {
    net::wait_configured().await;
    for i in net::interfaces() {
        let (addr, prefix) = i.ipv4.unwrap_or((net::Ipv4Addr::UNSPECIFIED, 0));
        let m = i.mac;
        println!(
            "iface {} mtu {} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} ipv4 {addr}/{prefix}",
            i.name, i.mtu, m[0], m[1], m[2], m[3], m[4], m[5]
        );
    }
    if let Some(target) = env::var("CONNECT") {
        match client(target).await {
            Ok(reply) => println!("reply {reply}"),
            Err(e) => println!("client error {e}"),
        }
    }
    println!("ready");
    loop {
        task::sleep(Duration::from_secs(3600)).await;
    }
}

async fn client(target: &str) -> Result<alloc::string::String, net::NetError> {
    let addr: net::SocketAddrV4 = target.parse().map_err(|_| net::NetError::InvalidAddress)?;
    let mut stream = net::TcpStream::connect(addr).await?;
    stream.write_all(b"hello from the guest\n").await?;
    let mut reply = alloc::vec::Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(alloc::string::String::from_utf8_lossy(&reply).trim_end().into())
}
