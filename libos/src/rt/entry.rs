//! The guest's entry point.
//!
//! # Safety
//!
//! `_start` is only ever reached by the tender's jump, with `rdi` holding the
//! boot info's address and `rsp` at the top of the guest stack. It clears the
//! frame pointer, aligns `rsp` to 16 bytes (the System V ABI's requirement at
//! a call; SSE code faults otherwise) and calls into Rust, which never returns.
//! `__libos_main` is a safe Rust function that the `app!` macro (or
//! libos-std) defines; `__entry!` places `_start` in the application.

#![allow(unsafe_code)]

/// Defines `_start`, in the application's crate: [`app!`](crate::app)
/// invokes it for a `no_std` guest; libos-std invokes `__entry!(@start f)`
/// with its own `f`, which calls [`start_std`], for a std guest. Defining
/// it here, in the library, would put a second `_start` into every host
/// binary that links libos (the unit tests of crates built on it).
#[macro_export]
#[doc(hidden)]
macro_rules! __entry {
    () => {
        $crate::__entry!(@start $crate::rt_private::start_from_asm);
    };
    // `_start` calling `$start`: libos's own for a `no_std` guest,
    // libos-std's entry function (which calls `start_std`) for a std one.
    (@start $start:path) => {
        ::core::arch::global_asm!(
            ".section .text.nabla.entry, \"ax\", @progbits",
            ".globl _start",
            ".type _start, @function",
            "_start:",
            // The outermost frame: no return address, so a debugger's
            // backtrace ends here instead of reading past the stack's top.
            "    .cfi_startproc",
            "    .cfi_undefined rip",
            "    xor ebp, ebp",
            "    and rsp, -16",
            "    call {start}",
            "    ud2",
            "    .cfi_endproc",
            ".size _start, . - _start",
            ".text",
            start = sym $start,
        );
    };
}

unsafe extern "Rust" {
    // Defined by `libos::app!` in the application: runs `main` and turns
    // its return value into an exit status.
    safe fn __libos_main() -> i32;
}

/// Runs the application's `main`.
pub(super) fn app_main() -> i32 {
    __libos_main()
}

/// What `_start` calls, with the boot info's address.
pub extern "C" fn start_from_asm(boot: usize) -> ! {
    super::start(boot, super::Logger::Console, || {})
}

/// What a std guest's `_start` calls (through libos-std's entry, which
/// passes `early`): the same, but libos does not take the `log` facade's
/// one logger, which belongs to the program (as on Linux, where no C
/// library installs one): `env_logger`, `tracing-subscriber` and the like
/// install theirs, and get libos's records too. `early` runs once the
/// heap is up and before anything else: the C library's set-up of the
/// main thread (its TLS, which the program's global allocator may use).
pub fn start_std(boot: usize, early: fn()) -> ! {
    super::start(boot, super::Logger::Program, early)
}
