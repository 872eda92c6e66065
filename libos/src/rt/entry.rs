//! The guest's entry point.
//!
//! # Safety
//!
//! `_start` is only ever reached by the tender's jump, with `rdi` holding the
//! boot info's address and `rsp` at the top of the guest stack. It clears the
//! frame pointer, aligns `rsp` to 16 bytes (the System V ABI's requirement at
//! a call; SSE code faults otherwise) and calls into Rust, which never returns.
//! `__libos_main` is a safe Rust function that the `app!` macro defines.

#![allow(unsafe_code)]

core::arch::global_asm!(
    ".section .text.nabla.entry, \"ax\", @progbits",
    ".globl _start",
    ".type _start, @function",
    "_start:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {start}",
    "    ud2",
    ".size _start, . - _start",
    ".text",
    start = sym start_from_asm,
);

unsafe extern "Rust" {
    // Defined by `libos::app!` in the application: runs `main` and turns
    // its return value into an exit status.
    safe fn __libos_main() -> i32;
}

/// Runs the application's `main`.
pub(super) fn app_main() -> i32 {
    __libos_main()
}

extern "C" fn start_from_asm(boot: usize) -> ! {
    super::start(boot)
}
