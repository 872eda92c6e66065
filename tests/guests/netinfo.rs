//! A guest with two network devices: prints what it knows about each
//! interface once configured, then idles (the stack answers ARP and ping).

#![no_std]
#![no_main]

use core::time::Duration;

use libos::{net, println, task};

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
    println!("ready");
    loop {
        task::sleep(Duration::from_secs(3600)).await;
    }
}
