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
//! It first does what glibc's start-up does and musl's static start-up
//! does not: makes the relocated read-only data (`PT_GNU_RELRO`: the GOT,
//! `.data.rel.ro`, `.init_array`) read-only, so that a memory-safety bug
//! in the parsing of a hostile image cannot overwrite the pointers there.
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

/// Makes the program's `PT_GNU_RELRO` range read-only, as glibc's
/// start-up does once it has relocated a static PIE (from the range's page
/// to the page its end lies in, both rounded down). If the kernel refuses,
/// the process ends as glibc ends it then: a message and status 127.
fn protect_relro() {
    // SAFETY: getauxval only reads the auxiliary vector.
    let (phdr, phnum) =
        unsafe { (libc::getauxval(libc::AT_PHDR), libc::getauxval(libc::AT_PHNUM)) };
    if phdr == 0 {
        return;
    }
    // SAFETY: the kernel put `phnum` program headers of this executable at
    // `phdr`, mapped for the life of the process.
    let headers =
        unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum as usize) };
    let Some(bias) =
        headers.iter().find(|h| h.p_type == libc::PT_PHDR).map(|h| phdr.wrapping_sub(h.p_vaddr))
    else {
        return;
    };
    const PAGE: u64 = 4096;
    for h in headers.iter().filter(|h| h.p_type == libc::PT_GNU_RELRO) {
        let start = bias.wrapping_add(h.p_vaddr) & !(PAGE - 1);
        let end = bias.wrapping_add(h.p_vaddr).wrapping_add(h.p_memsz) & !(PAGE - 1);
        if end <= start {
            continue;
        }
        // SAFETY: the range lies in this program's own segments, which
        // nothing writes once relocated.
        let ret = unsafe {
            libc::mprotect(start as *mut libc::c_void, (end - start) as usize, libc::PROT_READ)
        };
        if ret != 0 {
            const MESSAGE: &[u8] =
                b"tender: cannot apply additional memory protection after relocation\n";
            // SAFETY: writing a constant to fd 2 and exiting.
            unsafe {
                libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
                libc::_exit(127);
            }
        }
    }
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
    protect_relro();
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

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    /// The permissions of the mapping that holds `address`, from
    /// /proc/self/maps.
    fn permissions_at(address: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let range = fields.next().expect("range");
            let (from, to) = range.split_once('-').expect("from-to");
            let from = usize::from_str_radix(from, 16).expect("hex");
            let to = usize::from_str_radix(to, 16).expect("hex");
            if (from..to).contains(&address) {
                return fields.next().expect("permissions").to_string();
            }
        }
        panic!("{address:#x} is in no mapping");
    }

    #[test]
    fn relocated_read_only_data_is_read_only() {
        // .init_array lies at the start of PT_GNU_RELRO (with the GOT and
        // .data.rel.ro), whose end is rounded down to a page: at least its
        // first page is protected.
        let init_array = (&raw const super::__init_array_start) as usize;
        assert!(permissions_at(init_array).starts_with("r--"), "{}", permissions_at(init_array));
    }

    /// GCC's unwinder under musl: `_dl_find_object` (shims.c) finds the
    /// unwind tables, and the pthread functions it calls are linked
    /// (build.rs's `-u`; without them this test jumped to address 0).
    #[test]
    fn a_panic_unwinds_and_a_backtrace_has_frames() {
        let caught = std::panic::catch_unwind(|| panic!("unwinding under musl"));
        assert!(caught.is_err());
        let trace = std::backtrace::Backtrace::force_capture();
        assert_eq!(trace.status(), std::backtrace::BacktraceStatus::Captured);
        // Symbolised from the debug information: this test's own frame.
        let text = trace.to_string();
        assert!(text.contains("a_panic_unwinds_and_a_backtrace_has_frames"), "{text}");
    }

    #[test]
    fn std_has_the_arguments_and_environment() {
        let cmdline = std::fs::read("/proc/self/cmdline").expect("read /proc/self/cmdline");
        let from_kernel: Vec<&[u8]> =
            cmdline.strip_suffix(b"\0").unwrap_or(&cmdline).split(|&b| b == 0).collect();
        let from_std: Vec<std::ffi::OsString> = std::env::args_os().collect();
        assert_eq!(from_std.len(), from_kernel.len());
        for (a, b) in from_std.iter().zip(&from_kernel) {
            assert_eq!(a.as_bytes(), *b);
        }
        // The environment: std reads it through `environ`, which musl
        // sets; the first variable the kernel has, as std sees it.
        let environ = std::fs::read("/proc/self/environ").expect("read /proc/self/environ");
        if let Some(first) = environ.split(|&b| b == 0).find(|v| v.contains(&b'=')) {
            let at = first.iter().position(|&b| b == b'=').expect("=");
            let name = std::ffi::OsStr::from_bytes(&first[..at]);
            let value = std::env::var_os(name).expect("in std's environment");
            assert_eq!(value.as_bytes(), &first[at + 1..]);
        }
    }
}
