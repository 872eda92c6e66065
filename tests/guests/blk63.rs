//! A guest with 63 block devices, `d0` to `d62`: as many devices as a
//! manifest holds. On disk `dI` it fills the first and the last sector
//! with the byte `I + 1` and reads both back; then it prints `63 disks:
//! ok`.
//!
//! The `app!` line is generated: `d0` to `d62`, all `Block`.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;

use libos::println;

libos::app!(
    main,
    devices: [
        "d0": Block, "d1": Block, "d2": Block, "d3": Block, "d4": Block, "d5": Block,
        "d6": Block, "d7": Block, "d8": Block, "d9": Block, "d10": Block, "d11": Block,
        "d12": Block, "d13": Block, "d14": Block, "d15": Block, "d16": Block, "d17": Block,
        "d18": Block, "d19": Block, "d20": Block, "d21": Block, "d22": Block, "d23": Block,
        "d24": Block, "d25": Block, "d26": Block, "d27": Block, "d28": Block, "d29": Block,
        "d30": Block, "d31": Block, "d32": Block, "d33": Block, "d34": Block, "d35": Block,
        "d36": Block, "d37": Block, "d38": Block, "d39": Block, "d40": Block, "d41": Block,
        "d42": Block, "d43": Block, "d44": Block, "d45": Block, "d46": Block, "d47": Block,
        "d48": Block, "d49": Block, "d50": Block, "d51": Block, "d52": Block, "d53": Block,
        "d54": Block, "d55": Block, "d56": Block, "d57": Block, "d58": Block, "d59": Block,
        "d60": Block, "d61": Block, "d62": Block,
    ]
);

fn main() -> i32 {
    let disks = libos::block::devices();
    if disks.len() != 63 {
        println!("expected 63 disks, got {}", disks.len());
        return 1;
    }
    for (i, disk) in disks.iter().enumerate() {
        if disk.name() != alloc::format!("d{i}") {
            println!("disk {i} is called {}", disk.name());
            return 1;
        }
        let ss = disk.sector_size() as usize;
        let last = disk.sectors() - 1;
        let data = vec![i as u8 + 1; ss];
        let mut back = vec![0u8; ss];
        for sector in [0, last] {
            if let Err(e) = disk.write(sector, &data) {
                println!("d{i}: write of sector {sector}: {e}");
                return 1;
            }
            if let Err(e) = disk.read(sector, &mut back) {
                println!("d{i}: read of sector {sector}: {e}");
                return 1;
            }
            if back != data {
                println!("d{i}: sector {sector} reads back different bytes");
                return 1;
            }
        }
    }
    println!("63 disks: ok");
    0
}
