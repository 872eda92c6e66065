//! `guest-syscall` with a block device: it declares `storage` (block), so
//! the tender must attach a disk, and makes one raw system call given on
//! its command line, to test the filter with a disk attached:
//!
//! ```text
//! guest-blk-syscall NR [ARG]...
//! ```
//!
//! NR and the arguments are as for `guest-syscall` (`buf` is a 4 KiB
//! buffer, `msg` the bytes `ok\n`, numbers decimal or `0x` hex), and the
//! guest prints `returned N`.

#![no_std]
#![no_main]

extern crate alloc;

libos::app!(main, devices: ["storage": Block]);

include!("syscall_body.rs");

fn main() -> i32 {
    syscall_main()
}
