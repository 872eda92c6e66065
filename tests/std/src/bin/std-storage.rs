//! A std guest that declares a block device, so that the suite can check
//! that its filter is a libos guest's with the same device: nothing more
//! is allowed because the guest is a std program.

libos_std::app!(devices: ["storage": Block]);

fn main() {
    println!("std guest with storage");
}
