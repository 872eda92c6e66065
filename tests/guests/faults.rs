//! A guest that misbehaves on purpose; its first argument picks how.
//!
//! Each mode must end in SIGSEGV (or status 255 for `panic` and `oom`); a
//! mode that returns prints why and exits with status 3.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::hint::black_box;
use core::ptr;

use libos::{env, println};

libos::app!(main);

/// `ret` instructions in a writable, non-executable data page.
static mut DATA_CODE: [u8; 16] = [0xc3; 16];

fn main() -> i32 {
    let mode = env::args().nth(1).unwrap_or("");
    println!("fault: {mode}");
    match mode {
        "null" => poke(8),
        "far" => poke(0x2000_0000_0000),
        "text" => poke(main as *const () as u64),
        "exec-data" => {
            let code = black_box(&raw const DATA_CODE) as *const ();
            // SAFETY: meant to fault: the bytes are `ret`, but the page is not executable.
            let f: extern "C" fn() = unsafe { core::mem::transmute(code) };
            f();
        }
        "stack" => {
            let bottom = libos::process::memory().stack.start;
            black_box(recurse(0, bottom));
        }
        "panic" => panic!("deliberate panic number {}", black_box(42)),
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(Vec::with_capacity(black_box(8 << 20)));
                black_box(&hoard);
            }
        }
        _ => {
            println!("unknown mode");
            return 2;
        }
    }
    println!("survived: the fault did not happen");
    3
}

/// Writes a byte at `addr`, which is meant to fault.
fn poke(addr: u64) {
    // SAFETY: not safe, on purpose: every caller passes an address that is
    // unmapped or read-only, and the test expects the SIGSEGV.
    unsafe { ptr::write_volatile(black_box(addr) as *mut u8, 0xcc) }
}

/// Recurses without end. Each frame checks that it is still above the
/// stack's bottom: with the guard page in place the first touch below it
/// faults, so reaching the check below the bottom means the guard failed.
fn recurse(depth: u64, bottom: u64) -> u64 {
    let frame = black_box([depth as u8; 256]);
    let here = &frame as *const _ as u64;
    if here < bottom {
        println!("stack frame at {here:#x} is below the stack bottom {bottom:#x}: no guard");
        libos::process::exit(3);
    }
    recurse(depth + 1, bottom).wrapping_add(u64::from(frame[(depth % 256) as usize]))
}
