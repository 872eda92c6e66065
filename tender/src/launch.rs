//! The last steps: seal the process and jump to the guest.
//!
//! After [`launch`] returns nothing; the process *is* the guest. In order:
//!
//! 1. reset the SIGSEGV and SIGBUS handlers to their defaults (std's
//!    stack-overflow handler, when installed, calls `rt_sigaction`, which the
//!    filter would turn a guest fault into SIGSYS), drop the alternate signal
//!    stack, and ignore SIGPIPE (a guest whose console reader went away gets
//!    `EPIPE`, and a server keeps serving);
//! 2. copy the BPF program to the bottom of the guest's top stack page, and
//!    work out the tender's own memory that is dead once the guest runs:
//!    its writable segments, its heap and its stack;
//! 3. `prctl(PR_SET_NO_NEW_PRIVS)`, required to install a filter unprivileged,
//!    and unregister the restartable-sequences area glibc registered for the
//!    main thread (the kernel would go on writing the current CPU into it,
//!    in the tender's released memory, whenever the guest is scheduled);
//! 4. in one block of assembly: release the dead memory
//!    (`madvise(MADV_DONTNEED)`; the stack once it has moved to the guest's),
//!    `seccomp(SECCOMP_SET_MODE_FILTER)`, clear every register but the
//!    guest's stack pointer and boot info address (no tender address leaks
//!    into the guest), and jump to the entry point. Should the kernel refuse
//!    the filter there, the block prints `tender: seccomp(...) failed (os
//!    error N)` and exits 1, since the tender's memory is gone by then.
//!
//! Nothing of the tender runs between 4 and the guest: no allocation, no
//! drop, no library call. Releasing the dead memory makes an idle instance
//! cost only the guest's own pages (see `docs/performance.md`).
//!
//! # Safety
//!
//! `launch` is only called with a mapped guest: the entry point lies in an
//! executable segment (checked by `image`), the stack and boot region are
//! mapped (by `memory`). The assembly touches no memory but what its safety
//! comment lists. After the jump no code of the tender runs again.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// Sealing failed: the guest was not started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Resetting a signal handler failed.
    #[error("cannot reset the handler of signal {signal}: {source}")]
    Signal {
        /// The signal number.
        signal: i32,
        /// The host's error.
        source: io::Error,
    },
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("prctl(PR_SET_NO_NEW_PRIVS) failed: {0}")]
    NoNewPrivs(#[source] io::Error),
    /// Closing the fds the guest must not have failed.
    #[error("cannot close the fds the guest must not inherit: {0}")]
    CloseFds(#[source] io::Error),
    /// The program is longer than BPF allows.
    #[error("the seccomp program has {0} instructions, more than BPF allows")]
    ProgramTooLong(usize),
}

/// Where the guest starts.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// The ELF entry point.
    pub entry: u64,
    /// Initial stack pointer.
    pub stack_top: u64,
    /// Address of the boot info, passed in `rdi`.
    pub boot_info: u64,
}

fn reset_signals() -> Result<(), LaunchError> {
    let dispositions = [
        (libc::SIGSEGV, libc::SIG_DFL),
        (libc::SIGBUS, libc::SIG_DFL),
        (libc::SIGPIPE, libc::SIG_IGN),
    ];
    for (signal, handler) in dispositions {
        // SAFETY: installing SIG_DFL or SIG_IGN with an empty mask; no
        // handler code runs.
        let ret = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(signal, &sa, std::ptr::null_mut())
        };
        if ret != 0 {
            return Err(LaunchError::Signal { signal, source: io::Error::last_os_error() });
        }
    }
    let ss = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
    // SAFETY: disabling the alternate signal stack; ss is a valid stack_t.
    // A failure only leaves std's stack registered, which is harmless with
    // the handlers reset, so its result is ignored.
    unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
    Ok(())
}

/// Makes sure fds 0, 1 and 2 are open, opening `/dev/null` in place of any
/// that is not, as std's runtime start-up would. Otherwise the first file
/// the tender opens could become fd 1, which the filter lets the guest write
/// to as its console.
pub fn ensure_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: fds is a valid array of three pollfds; a zero timeout.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        // poll itself failed (EINTR, ENOMEM): check each fd the slow way.
        for p in &mut fds {
            // SAFETY: F_GETFD on an integer fd touches no memory.
            if unsafe { libc::fcntl(p.fd, libc::F_GETFD) } < 0 {
                p.revents = libc::POLLNVAL;
            }
        }
    }
    for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // SAFETY: a NUL-terminated path; open returns the lowest free fd,
        // which is p.fd since the lower ones are open by now.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if fd != p.fd {
            // Without a console fd the tender cannot even report this.
            std::process::abort();
        }
    }
}

/// Closes every fd but 0, 1, 2 and `keep` (the devices'): the guest gets
/// no other file of the tender's (the image, its snapshot, the cache
/// directory) or of its caller's (a pipe the caller waits on for EOF, a
/// socket, a file), and no fd it could probe with `ppoll`.
pub fn close_other_fds(keep: &[RawFd]) -> Result<(), LaunchError> {
    let mut keep: Vec<u32> = keep.iter().filter_map(|&fd| u32::try_from(fd).ok()).collect();
    keep.sort_unstable();
    let mut from = 3u32;
    for fd in keep.into_iter().chain([u32::MAX]) {
        if fd > from {
            close_range(from, fd - 1)?;
        }
        from = from.max(fd.saturating_add(1));
    }
    Ok(())
}

/// Closes the fds `first..=last`.
fn close_range(first: u32, last: u32) -> Result<(), LaunchError> {
    // SAFETY: close_range with integer arguments; the fds it closes are
    // owned by nothing the tender still uses (see close_other_fds).
    if unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) {
        return Err(LaunchError::CloseFds(err));
    }
    // Before Linux 5.9: the open fds, from /proc, one at a time.
    let open: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .map_err(LaunchError::CloseFds)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| (first..=last).contains(fd)) {
        // SAFETY: closing an integer fd, as above.
        unsafe { libc::close(fd as RawFd) };
    }
    Ok(())
}

const PAGE: u64 = 4096;

/// How far below its stack pointer at launch the tender's stack is
/// released: deeper than any call of the tender ever went (below the stack
/// mapping lies the kernel's stack guard gap, where nothing is mapped).
const STACK_BELOW: u64 = 256 * 1024;

/// The most ranges [`dead_ranges`] returns.
const MAX_RANGES: usize = 8;

/// What the assembly of [`launch`] reads. `repr(C)`: it uses the field
/// offsets.
#[repr(C)]
struct Plan {
    /// `[start, length]` of each range to release.
    ranges: [[u64; 2]; MAX_RANGES],
    /// How many of `ranges` are used.
    count: u64,
    /// The `sock_fprog` (see [`place_program`]).
    fprog: u64,
    stack_top: u64,
    boot_info: u64,
    entry: u64,
    /// The message if the kernel refuses the filter (in read-only data).
    message: u64,
    message_len: u64,
}

/// The start of the line printed if the kernel refuses the filter; the
/// assembly adds the error number and `)\n`, as std prints an `io::Error`.
const SECCOMP_REFUSED: &[u8] = b"tender: seccomp(SECCOMP_SET_MODE_FILTER) failed (os error ";

/// The guest's random seed: 32 bytes from the kernel's random number
/// generator (`getrandom`, one system call), new at every start. Only if
/// the kernel has none yet (early boot: `EAGAIN`), SHA-256 of the 16 random
/// bytes the kernel gives every process (`AT_RANDOM`), under a label of its
/// own so that the guest does not learn the bytes themselves (glibc's stack
/// canary and pointer guard in the tender come from them).
///
/// Not SHA-256 every time: the sha2 crate asks the CPU whether it has the
/// SHA extensions with three `CPUID` instructions, and on a virtual machine
/// each one traps to the hypervisor (10-20 µs each here, see
/// `docs/performance.md`), far more than the system call.
pub fn guest_seed() -> [u64; 4] {
    let mut bytes = [0u8; 32];
    // SAFETY: the kernel writes at most `bytes.len()` bytes into `bytes`.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), libc::GRND_NONBLOCK) };
    if n != bytes.len() as isize {
        bytes = seed_from_at_random();
    }
    let mut seed = [0u64; 4];
    for (word, chunk) in seed.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    seed
}

/// SHA-256 of `AT_RANDOM` under a label: the seed when `getrandom` has none.
fn seed_from_at_random() -> [u8; 32] {
    use sha2::{Digest, Sha256};
    // SAFETY: getauxval only reads the auxiliary vector.
    let at_random = unsafe { libc::getauxval(libc::AT_RANDOM) };
    let mut hasher = Sha256::new();
    hasher.update(b"nabla guest seed\0");
    if at_random != 0 {
        // SAFETY: the kernel put 16 bytes at AT_RANDOM, on the initial
        // stack, which stays mapped while the tender runs.
        hasher.update(unsafe { std::slice::from_raw_parts(at_random as *const u8, 16) });
    }
    hasher.finalize().into()
}

/// The kernel's `AT_HWCAP2`: whether user code may use `WRFSBASE`
/// (`abi::hwcap2::FSGSBASE`), which std guests need to switch threads.
pub fn hwcap2() -> u64 {
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_HWCAP2) }
}

/// The kernel's vDSO in this process: its address (`AT_SYSINFO_EHDR`) and
/// the bytes of its loaded segments, or None if the kernel mapped none.
fn vdso_image() -> Option<(u64, &'static [u8])> {
    // SAFETY: getauxval only reads the auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
    if base == 0 {
        return None;
    }
    // SAFETY: the kernel maps the vDSO's image, at least a page, at `base`
    // for the life of the process (nothing in the tender unmaps it).
    let head = unsafe { std::slice::from_raw_parts(base as *const u8, tender::vdso::HEAD) };
    let len = tender::vdso::image_len(head)?;
    // SAFETY: the kernel maps the whole image, whose loaded segments end
    // `len` bytes after its start.
    Some((base, unsafe { std::slice::from_raw_parts(base as *const u8, len) }))
}

/// The address of the vDSO's `__vdso_clock_gettime`, which the guest calls
/// to read the clock without a system call (`abi::BootInfo::
/// vdso_clock_gettime`), or 0 if there is no vDSO or no such function.
/// No system call.
pub fn vdso_clock_gettime() -> u64 {
    use tender::vdso::{CLOCK_GETTIME, LINUX_2_6, find};
    vdso_image()
        .and_then(|(base, image)| Some(base + find(image, CLOCK_GETTIME, LINUX_2_6)?))
        .unwrap_or(0)
}

/// Room below the vDSO's text for the kernel's data pages that its code
/// reads (`[vvar]`, `[vvar_vclock]`: 6 pages on Linux 6.18, 4 before).
const VVAR_ROOM: u64 = 16 * PAGE;

/// Empties every range of `ranges` that reaches into the vDSO (`vdso`:
/// address and length of its text) or the data pages below it: the guest
/// reads the clock through them, so the tender never releases them. By
/// construction no range does (they are the tender's own segments, heap
/// and stack, which the kernel puts elsewhere); this keeps it so.
fn spare_vdso(ranges: &mut [[u64; 2]], vdso: Option<(u64, u64)>) {
    let Some((base, len)) = vdso else { return };
    let (start, end) = (base.saturating_sub(VVAR_ROOM), base.saturating_add(len));
    for r in ranges.iter_mut() {
        if r[0] < end && r[0].saturating_add(r[1]) > start {
            r[1] = 0;
        }
    }
}

fn page_down(a: u64) -> u64 {
    a & !(PAGE - 1)
}

fn page_up(a: u64) -> u64 {
    a.div_ceil(PAGE) * PAGE
}

/// The tender's own memory that is dead once the guest runs, private to
/// each instance: its writable segments (relocated read-only data, data,
/// bss; from its program headers), its heap (what malloc took with brk),
/// and its stack (from [`STACK_BELOW`] under the stack pointer up to the
/// page where the argument strings begin, which is kept for the command
/// line the kernel shows). Releasing it before the
/// jump is what keeps an idle instance small (see `docs/performance.md`).
/// The last range is the stack, which the assembly releases only once it
/// no longer runs on it. `sp` is an address on the current stack frame;
/// nothing under `guest_end`, the end of the guest's memory, is released.
fn dead_ranges(sp: u64, guest_end: u64) -> Vec<[u64; 2]> {
    let mut ranges = Vec::new();
    // SAFETY: getauxval only reads the auxiliary vector.
    let (phdr, phnum, execfn) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR),
            libc::getauxval(libc::AT_PHNUM),
            libc::getauxval(libc::AT_EXECFN),
        )
    };
    if phdr != 0 {
        // SAFETY: the kernel put `phnum` program headers of this executable
        // at `phdr`, mapped for the life of the process.
        let headers =
            unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum as usize) };
        // The load bias: where PT_PHDR landed less its address.
        let bias = headers
            .iter()
            .find(|h| h.p_type == libc::PT_PHDR)
            .map(|h| phdr.wrapping_sub(h.p_vaddr));
        let writable =
            |h: &&libc::Elf64_Phdr| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W != 0;
        for h in headers.iter().filter(writable).take(MAX_RANGES - 3) {
            let Some(bias) = bias else { break };
            let start = page_down(bias.wrapping_add(h.p_vaddr));
            let end = page_up(bias.wrapping_add(h.p_vaddr).wrapping_add(h.p_memsz));
            if end > start {
                ranges.push([start, end - start]);
            }
        }
    }
    ranges.extend(heap_range(guest_end));
    // The stack, always the last range: the strings at its top end with
    // the executable's name (AT_EXECFN), 8 bytes under the end of the stack
    // mapping. Without it, only the part under the stack pointer.
    let mut top = if execfn != 0 {
        // SAFETY: AT_EXECFN points to a NUL-terminated string on the stack.
        let len = unsafe { libc::strlen(execfn as *const libc::c_char) } as u64;
        page_up(execfn + len + 1)
    } else {
        page_down(sp)
    };
    // Those strings begin with the arguments, which the kernel shows as
    // the process's command line (`/proc/PID/cmdline`, `ps`, `pgrep -f`,
    // `podman top`): their page (or two) stays.
    // SAFETY: glibc sets program_invocation_name to argv[0] before main.
    let arg0 = unsafe { program_invocation_name } as u64;
    if (sp..top).contains(&arg0) {
        top = page_down(arg0);
    }
    let bottom = page_down(sp).saturating_sub(STACK_BELOW);
    ranges.push([bottom, top.max(bottom) - bottom]);
    ranges
}

/// malloc's heap, from brk: what glibc's malloc took with it.
#[cfg(not(tender_musl))]
fn heap_range(guest_end: u64) -> Option<[u64; 2]> {
    // glibc's static TLS block, on the page or two under malloc's part of
    // the heap, goes too when malloc's start is not page aligned.
    // SAFETY: sbrk(0) only reads the current break; mallinfo2 only reads
    // malloc's bookkeeping.
    let (brk, arena) = unsafe { (libc::sbrk(0) as u64, libc::mallinfo2().arena as u64) };
    // Never below the guest's memory, whatever malloc reports.
    if arena > 0 && brk >= arena && brk > guest_end {
        let start = page_down(brk - arena).max(guest_end);
        return Some([start, page_up(brk) - start]);
    }
    None
}

/// Linked against musl: the heap Rust allocates from (`heap.rs`), and what
/// musl's malloc took with brk since the start (its bookkeeping, for C
/// code's allocations: libseccomp's, when it runs; the blocks themselves it
/// maps with mmap, and those stay).
#[cfg(tender_musl)]
fn heap_range(guest_end: u64) -> impl Iterator<Item = [u64; 2]> {
    let start = crate::start::initial_break();
    // SAFETY: sbrk(0) only reads the current break.
    let brk = unsafe { libc::sbrk(0) } as u64;
    // Never below the guest's memory, whatever the break says.
    let malloc = (start > guest_end && brk > start).then(|| {
        let start = page_down(start);
        [start, page_up(brk) - start]
    });
    let rust = crate::HEAP.used().filter(|&(start, _)| start > guest_end).map(|(s, l)| [s, l]);
    malloc.into_iter().chain(rust)
}

/// Copies `program` and its `sock_fprog` to the bottom of the guest's top
/// stack page(s), which the guest overwrites as its stack grows (the kernel
/// copies the filter when it installs it): so the tender needs no memory of
/// its own for it once its heap is released. Returns the `sock_fprog`'s
/// address.
fn place_program(program: &[libc::sock_filter], len: u16, stack_top: u64) -> u64 {
    let header = std::mem::size_of::<libc::sock_fprog>().next_multiple_of(8) as u64;
    let size = header + std::mem::size_of_val(program) as u64;
    // At most 16 + 8 * 65535 bytes, well inside the guest's stack.
    let base = (stack_top - size) & !15;
    // SAFETY: [base, stack_top) lies in the guest's stack, mapped read-write
    // by `memory` and not used by the tender: room for the sock_fprog and
    // the program after `header`.
    unsafe {
        let filter = (base + header) as *mut libc::sock_filter;
        std::ptr::copy_nonoverlapping(program.as_ptr(), filter, program.len());
        (base as *mut libc::sock_fprog).write(libc::sock_fprog { len, filter });
    }
    base
}

// What the C library says about the process: argv[0] (glibc and musl),
// and, in glibc, the offset from the thread pointer of the
// restartable-sequences area it registered for the thread (2.35 and later)
// and that area's size (0: not registered).
unsafe extern "C" {
    /// argv[0], as the C library found it.
    static program_invocation_name: *const libc::c_char;
}
#[cfg(not(tender_musl))]
unsafe extern "C" {
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

/// The signature glibc registers its rseq area with on x86-64.
#[cfg(not(tender_musl))]
const RSEQ_SIG: u32 = 0x5305_3053;

/// Unregisters the main thread's rseq area. Once registered, the kernel
/// writes the current CPU into the area every time the thread resumes after
/// being preempted or migrated: in the tender's released memory (the area
/// lies in its thread control block), bringing its pages back for good, and
/// through code of the kernel the guest would otherwise never reach. The
/// guest has no use for it. Best effort: a failure (an rseq area not
/// glibc's, a length this glibc does not say) costs a page, nothing else.
#[cfg(not(tender_musl))]
fn unregister_rseq() {
    // SAFETY: reading two integers glibc initialises before main.
    let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
    if size == 0 {
        return;
    }
    let tp: u64;
    // SAFETY: on x86-64 the first word of the thread control block, at
    // %fs:0, holds the thread pointer itself.
    unsafe { std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly)) };
    let area = tp.wrapping_add_signed(offset as i64);
    // The kernel wants the length the area was registered with: 32 (the
    // original struct rseq) for glibc up to 2.39, `size` or more later.
    for len in [size.max(32), size] {
        // SAFETY: rseq with RSEQ_FLAG_UNREGISTER only compares its
        // arguments with the registration; it reads and writes no memory.
        let ret = unsafe { libc::syscall(libc::SYS_rseq, area, len, 1, RSEQ_SIG) };
        if ret == 0 {
            return;
        }
    }
}

/// musl registers no rseq area (1.2.3 makes no `rseq` call): nothing to
/// undo.
#[cfg(tender_musl)]
fn unregister_rseq() {}

/// Seals the process with `program` and jumps to the guest.
pub fn launch(
    program: Vec<libc::sock_filter>,
    start: Start,
) -> Result<std::convert::Infallible, LaunchError> {
    let len =
        u16::try_from(program.len()).map_err(|_| LaunchError::ProgramTooLong(program.len()))?;
    reset_signals()?;
    let fprog = place_program(&program, len, start.stack_top);
    drop(program);
    let mut plan = Plan {
        ranges: [[0; 2]; MAX_RANGES],
        count: 0,
        fprog,
        stack_top: start.stack_top,
        boot_info: start.boot_info,
        entry: start.entry,
        message: SECCOMP_REFUSED.as_ptr() as u64,
        message_len: SECCOMP_REFUSED.len() as u64,
    };
    let mut dead = dead_ranges(&raw const plan as u64, start.stack_top);
    spare_vdso(&mut dead, vdso_image().map(|(base, image)| (base, page_up(image.len() as u64))));
    plan.count = dead.len() as u64;
    plan.ranges[..dead.len()].copy_from_slice(&dead);
    drop(dead);

    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(LaunchError::NoNewPrivs(io::Error::last_os_error()));
    }
    unregister_rseq();
    // SAFETY: the guest is mapped (see the module's safety section). The
    // block calls no code and touches no memory but `plan`, which lies on
    // the tender's stack: it reads all of `plan` into registers, releases
    // every range but the last, moves to the guest's stack, and only then
    // releases the last range, the tender's stack. After that it reads
    // only the sock_fprog (on the guest's stack) and the message (read-only
    // data). It never returns: it jumps to the guest, or, if the kernel
    // refuses the filter, writes its line in the 64 bytes under the guest's
    // stack top (mapped, and holding only the program by then) and exits
    // with status 1.
    unsafe {
        std::arch::asm!(
            // Release every range but the last (the stack):
            // madvise(start, length, MADV_DONTNEED).
            "xor r13d, r13d",
            "mov r14, [r12 + {count}]",
            "dec r14",
            "2:",
            "cmp r13, r14",
            "jge 3f",
            "mov rax, r13",
            "shl rax, 4",
            "mov rdi, [r12 + rax + {ranges}]",
            "mov rsi, [r12 + rax + {ranges} + 8]",
            "mov edx, {dontneed}",
            "mov eax, {sys_madvise}",
            "syscall",
            "inc r13",
            "jmp 2b",
            // Everything else of the plan into registers that system calls
            // keep: the last range (r13, r14), the filter (rbx), the guest's
            // boot info (r15), entry (rbp), the message (r8, r9).
            "3:",
            "mov rax, r14",
            "shl rax, 4",
            "mov r13, [r12 + rax + {ranges}]",
            "mov r14, [r12 + rax + {ranges} + 8]",
            "mov rbx, [r12 + {fprog}]",
            "mov r15, [r12 + {boot_info}]",
            "mov rbp, [r12 + {entry}]",
            "mov r8, [r12 + {message}]",
            "mov r9, [r12 + {message_len}]",
            "mov rsp, [r12 + {stack_top}]",
            // Off the tender's stack: release it.
            "mov rdi, r13",
            "mov rsi, r14",
            "mov edx, {dontneed}",
            "mov eax, {sys_madvise}",
            "syscall",
            // Seal.
            "mov edi, {set_mode_filter}",
            "xor esi, esi",
            "mov rdx, rbx",
            "mov eax, {sys_seccomp}",
            "syscall",
            "test rax, rax",
            "jnz 4f",
            // Jump, leaking no tender address in a register.
            "mov rdi, r15",
            "mov r15, rbp",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor esi, esi",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "jmp r15",
            // Refused: say so, with the error number, and exit 1 (nothing
            // else of the tender is usable any more). The line is put
            // together under the guest's stack top, where the filter
            // program no longer needed lies: the message, the number in
            // decimal (written backwards), ")\n".
            "4:",
            "neg rax",
            "lea r12, [rsp - 2]",
            "mov word ptr [r12], 0x0a29",
            "mov ecx, 10",
            "5:",
            "xor edx, edx",
            "div rcx",
            "add dl, 0x30",
            "dec r12",
            "mov [r12], dl",
            "test rax, rax",
            "jnz 5b",
            "sub r12, r9",
            "mov rdi, r12",
            "mov rsi, r8",
            "mov rcx, r9",
            "rep movsb",
            "mov edi, 2",
            "mov rsi, r12",
            "mov rdx, rsp",
            "sub rdx, r12",
            "mov eax, {sys_write}",
            "syscall",
            "mov edi, 1",
            "mov eax, {sys_exit_group}",
            "syscall",
            "ud2",
            in("r12") &raw const plan,
            count = const std::mem::offset_of!(Plan, count),
            ranges = const std::mem::offset_of!(Plan, ranges),
            fprog = const std::mem::offset_of!(Plan, fprog),
            stack_top = const std::mem::offset_of!(Plan, stack_top),
            boot_info = const std::mem::offset_of!(Plan, boot_info),
            entry = const std::mem::offset_of!(Plan, entry),
            message = const std::mem::offset_of!(Plan, message),
            message_len = const std::mem::offset_of!(Plan, message_len),
            dontneed = const libc::MADV_DONTNEED,
            sys_madvise = const libc::SYS_madvise,
            sys_seccomp = const libc::SYS_seccomp,
            sys_write = const libc::SYS_write,
            sys_exit_group = const libc::SYS_exit_group,
            set_mode_filter = const libc::SECCOMP_SET_MODE_FILTER,
            options(noreturn),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_that_reach_the_vdso_are_emptied() {
        let base = 0x7f00_0001_0000;
        let mut ranges = [
            [0x1000, 0x1000],                // far below
            [base - VVAR_ROOM - PAGE, PAGE], // just below the data pages
            [base - PAGE, PAGE],             // the data pages
            [base + PAGE, 0x10_0000],        // the text
            [base - 0x10_0000, 0x20_0000],   // all of it
            [base + 2 * PAGE, PAGE],         // just above
        ];
        spare_vdso(&mut ranges, Some((base, 2 * PAGE)));
        let lengths: Vec<u64> = ranges.iter().map(|r| r[1]).collect();
        assert_eq!(lengths, [0x1000, PAGE, 0, 0, 0, PAGE]);
        let mut untouched = [[base, PAGE]];
        spare_vdso(&mut untouched, None);
        assert_eq!(untouched, [[base, PAGE]]);
    }

    #[test]
    fn the_tenders_dead_memory_is_not_the_vdso() {
        let Some((base, image)) = vdso_image() else { return };
        // A test runs on a thread of its own: stand for the main thread's
        // stack pointer with an address just under the kernel's random
        // bytes, near the top of the main thread's stack.
        // SAFETY: getauxval only reads the auxiliary vector.
        let at_random = unsafe { libc::getauxval(libc::AT_RANDOM) };
        assert_ne!(at_random, 0);
        let mut ranges = dead_ranges(at_random - 512, 0);
        let before = ranges.clone();
        spare_vdso(&mut ranges, Some((base, page_up(image.len() as u64))));
        assert_eq!(ranges, before, "a range of the tender's own memory reaches the vDSO");
    }

    #[test]
    fn the_clock_function_is_found_in_the_tenders_vdso() {
        if vdso_image().is_none() {
            return;
        }
        let f = vdso_clock_gettime();
        let (base, image) = vdso_image().unwrap();
        assert!(f > base && f < base + image.len() as u64, "{f:#x} outside the vDSO at {base:#x}");
    }

    #[test]
    fn every_seed_is_new() {
        let (a, b) = (guest_seed(), guest_seed());
        assert_ne!(a, b);
        assert_ne!(a, [0; 4]);
    }

    #[test]
    fn the_fallback_seed_hides_at_random() {
        let seed = seed_from_at_random();
        // The same process, the same AT_RANDOM: the same seed.
        assert_eq!(seed, seed_from_at_random());
        // SAFETY: getauxval only reads the auxiliary vector; the kernel put
        // 16 bytes at AT_RANDOM, mapped for the life of the process.
        let at_random = unsafe {
            std::slice::from_raw_parts(libc::getauxval(libc::AT_RANDOM) as *const u8, 16)
        };
        assert!(!seed.windows(16).any(|w| w == at_random));
    }
}
