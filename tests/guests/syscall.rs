//! A guest that makes one raw system call, given on its command line:
//!
//! ```text
//! guest-syscall NR [ARG]...
//! ```
//!
//! NR and the arguments are decimal or `0x` hex; an argument `buf` is the
//! address of a zeroed, writable 4 KiB buffer and `msg` the address of the
//! bytes `ok\n`. If the call returns, the guest prints `returned N` and
//! exits 0: the seccomp tests expect SIGSYS for everything the filter does
//! not allow.

#![no_std]
#![no_main]

extern crate alloc;

libos::app!(main);

include!("syscall_body.rs");

fn main() -> i32 {
    syscall_main()
}
