//! A std guest that declares a net and a block device, as tests/guests'
//! `guest-devices` does, so that the suite can compare their filters.

libos_std::app!(devices: ["service0": Net, "storage": Block]);

fn main() {
    println!("std guest with a net and a block device");
}
