// The body of the raw-system-call guests (`guest-syscall`,
// `guest-net-syscall`), included by each: they differ only in the devices
// they declare. Each defines `main` and calls `syscall_main`.
//
// NR and the arguments are decimal or `0x` hex; an argument `buf` is the
// address of a zeroed, writable 4 KiB buffer and `msg` the address of the
// bytes `ok\n`. If the call returns, the guest prints `returned N` and
// exits 0. `int80 NR [ARG]...` makes the call through the 32-bit entry
// (`int 0x80`, i386 numbers, arguments in ebx, ecx, edx, esi, edi, ebp).

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
    let int80 = env::args().nth(1) == Some("int80");
    let mut words = [0u64; 7];
    let mut n = 0;
    for arg in env::args().skip(if int80 { 2 } else { 1 }).take(7) {
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
    if int80 {
        let ret: i64;
        // SAFETY: as below; the 32-bit entry takes the low halves only.
        unsafe {
            core::arch::asm!(
                "push rbx",
                "push rbp",
                "mov rbx, {b}",
                "mov rbp, {bp}",
                "int 0x80",
                "pop rbp",
                "pop rbx",
                b = in(reg) words[1],
                bp = in(reg) words[6],
                inlateout("rax") words[0] => ret,
                in("rcx") words[2],
                in("rdx") words[3],
                in("rsi") words[4],
                in("rdi") words[5],
            );
        }
        println!("returned {ret}");
        return 0;
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
