//! Start-up under musl: gives the initialisers what glibc gives them.
//!
//! Built only when `tender/build.rs` links the tender against musl's static
//! C library (`cfg(tender_musl)`; see `docs/startup.md`). Rust's standard
//! library is built for glibc (the `x86_64-unknown-linux-gnu` target), and
//! on that target it learns the program's arguments from an `.init_array`
//! function that glibc calls as `f(argc, argv, envp)` (std's
//! `ARGV_INIT_ARRAY`); musl calls `.init_array` functions without
//! arguments, so std would keep whatever the registers held and
//! `std::env::args` would read through it.
//!
//! So the tender's entry point is [`tender_start`] (`-e tender_start`, set
//! by the build script): it records the initial stack pointer, where the
//! kernel put `argc`, then `argv`, a null, `envp` (System V x86-64 ABI,
//! 3.4.1), and jumps to musl's `_start` with nothing else changed. And this
//! module defines `__libc_start_init`, which musl's `__libc_start_main`
//! calls, before `main`, to run the initialisers: musl's own is a weak
//! definition, there to be replaced (by its dynamic linker, normally), and
//! this strong one replaces it in the static link. It does what musl's does
//! (`_init`, then each `.init_array` entry in order), passing `argc`,
//! `argv` and `envp` as glibc does.
//!
//! # Safety
//!
//! `__libc_start_init` runs once, single-threaded, before `main`, with the
//! initial stack intact (nothing has written to it but the kernel): the
//! words it reads there are the kernel's. The `.init_array` entries are the
//! linker's array of `extern "C"` functions of the program, which accept
//! and may ignore the three arguments (as every one does under glibc).

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The stack pointer at the ELF entry point: the address of `argc`.
static INITIAL_SP: AtomicUsize = AtomicUsize::new(0);

// The entry point. Stores %rsp into INITIAL_SP (a RIP-relative store: the
// static PIE is not relocated yet, which a PC-relative address does not
// need) and jumps to musl's `_start` (rcrt1.o), which expects the stack as
// the kernel left it: untouched, and %rdx untouched (the kernel's exit
// function, 0 for a static program).
std::arch::global_asm!(
    ".globl tender_start",
    ".type tender_start, @function",
    "tender_start:",
    "mov qword ptr [rip + {sp}], rsp",
    "jmp _start",
    ".size tender_start, . - tender_start",
    sp = sym INITIAL_SP,
);

/// The program break before anything ran: where malloc's heap begins.
static INITIAL_BREAK: AtomicUsize = AtomicUsize::new(0);

/// The program break at start, before musl's malloc took any of it (0 if
/// unknown): the heap is what lies between it and the current break.
pub fn initial_break() -> u64 {
    INITIAL_BREAK.load(Ordering::Relaxed) as u64
}

/// An `.init_array` entry as glibc calls it.
type Initialiser = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char);

unsafe extern "C" {
    /// musl's `crti.o`/`crtn.o` `.init` function (or its empty default).
    fn _init();
    /// The linker's bounds of `.init_array`.
    static __init_array_start: [Initialiser; 0];
    static __init_array_end: [Initialiser; 0];
}

/// The arguments for the initialisers, from the initial stack: `argc`,
/// `argv` (after it) and `envp` (after argv's null). Entered some other
/// way than through `tender_start` (which would be a build error), no
/// arguments and the current environment.
///
/// # Safety
///
/// Before `main`, with the initial stack as the kernel wrote it.
unsafe fn initial_arguments() -> (c_int, *const *const c_char, *const *const c_char) {
    static NO_ARGUMENTS: [usize; 1] = [0];
    let sp = INITIAL_SP.load(Ordering::Relaxed) as *const usize;
    if sp.is_null() {
        unsafe extern "C" {
            static environ: *const *const c_char;
        }
        // SAFETY: musl set environ before calling the initialisers.
        return (0, NO_ARGUMENTS.as_ptr().cast(), unsafe { environ });
    }
    // SAFETY: per the ABI, argc at sp, argv[0..argc] and a null after it,
    // then envp: all on the initial stack, which nothing has changed.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1).cast::<*const c_char>();
        (argc as c_int, argv, argv.add(argc + 1))
    }
}

/// Runs the program's initialisers with `argc`, `argv` and `envp`, in place
/// of musl's own `__libc_start_init` (which calls them without arguments).
///
/// # Safety
///
/// Only musl's `__libc_start_main` calls it, once, before `main` (see the
/// module's safety section).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_start_init() {
    // SAFETY: sbrk(0) only reads the break; nothing has allocated yet.
    let brk = unsafe { libc::sbrk(0) } as usize;
    if brk != usize::MAX {
        INITIAL_BREAK.store(brk, Ordering::Relaxed);
    }
    // SAFETY: called before main, see above.
    let (argc, argv, envp) = unsafe { initial_arguments() };
    // SAFETY: musl's own start-up calls _init here, then the array, which
    // the linker bounds with these two symbols; each entry is a function
    // of the program (see the module's safety section).
    unsafe {
        _init();
        let mut entry = (&raw const __init_array_start).cast::<Initialiser>();
        let end = (&raw const __init_array_end).cast::<Initialiser>();
        while entry < end {
            (*entry)(argc, argv, envp);
            entry = entry.add(1);
        }
    }
}
