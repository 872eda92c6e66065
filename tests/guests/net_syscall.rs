//! `guest-syscall` with a net device: it declares `service0` (net), so the
//! tender must attach a tap, and makes one raw system call given on its
//! command line, to test the filter with a tap attached:
//!
//! ```text
//! guest-net-syscall NR [ARG]...
//! guest-net-syscall info
//! ```
//!
//! `info` prints each interface as libos sees it (from the boot info's
//! device table): `service0 mtu 1500 mac 02:... offload` (`offload` when
//! TCP is offloaded to the host). Otherwise NR and the
//! arguments are as for `guest-syscall` (`buf`, `msg`, decimal or `0x`
//! hex), and the guest prints `returned N`.

#![no_std]
#![no_main]

extern crate alloc;

libos::app!(main, devices: ["service0": Net]);

include!("syscall_body.rs");

fn main() -> i32 {
    if env::args().nth(1) == Some("info") {
        for i in libos::net::interfaces() {
            let m = i.mac;
            println!(
                "{} mtu {} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}{}",
                i.name,
                i.mtu,
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                if i.offload { " offload" } else { "" }
            );
        }
        return 0;
    }
    syscall_main()
}
