//! A guest that declares devices, to test the manifest note and the
//! tender's refusal of devices it cannot attach.

#![no_std]
#![no_main]

libos::app!(main, devices: ["service0": Net, "storage": Block]);

fn main() {
    libos::println!("devices guest started");
}
