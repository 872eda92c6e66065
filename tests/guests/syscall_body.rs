// The body of the raw-system-call guests (`guest-syscall`,
// `guest-net-syscall`), included by each: they differ only in the devices
// they declare. Each defines `main` and calls `syscall_main`.
//
// NR and the arguments are decimal or `0x` hex; an argument `buf` is the
// address of a zeroed, writable 4 KiB buffer and `msg` the address of the
// bytes `ok\n`. If the call returns, the guest prints `returned N` and
// exits 0.

use alloc::vec;
use libos::{env, println};

fn parse(s: &str, buf: u64, msg: u64) -> Option<u64> {
    match s {
        "buf" => Some(buf),
        "msg" => Some(msg),
        _ => match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        },
    }
}

/// Makes the system call the arguments describe.
fn syscall_main() -> i32 {
    let mut buf = vec![0u8; 4096];
    let buf_addr = buf.as_mut_ptr() as u64;
    let msg = b"ok\n";
    let msg_addr = msg.as_ptr() as u64;
    let mut words = [0u64; 7];
    let mut n = 0;
    for arg in env::args().skip(1).take(7) {
        let Some(v) = parse(arg, buf_addr, msg_addr) else {
            println!("bad argument {arg:?}");
            return 2;
        };
        words[n] = v;
        n += 1;
    }
    if n == 0 {
        println!("usage: guest-syscall NR [ARG]...");
        return 2;
    }
    let ret: i64;
    // SAFETY: deliberately arbitrary: the tests pass either harmless
    // arguments or calls the filter kills before the kernel runs them.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") words[0] => ret,
            in("rdi") words[1],
            in("rsi") words[2],
            in("rdx") words[3],
            in("r10") words[4],
            in("r8") words[5],
            in("r9") words[6],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    core::hint::black_box(&mut buf);
    println!("returned {ret}");
    0
}
