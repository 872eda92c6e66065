//! The last steps: seal the process and jump to the guest.
//!
//! After [`launch`] returns nothing; the process *is* the guest. In order:
//!
//! 1. reset the SIGSEGV and SIGBUS handlers to their defaults (std's
//!    stack-overflow handler, when installed, calls `rt_sigaction`, which the
//!    filter would turn a guest fault into SIGSYS), drop the alternate signal
//!    stack, and ignore SIGPIPE (a guest whose console reader went away gets
//!    `EPIPE`, and a server keeps serving);
//! 2. `prctl(PR_SET_NO_NEW_PRIVS)`, required to install a filter unprivileged;
//! 3. `seccomp(SECCOMP_SET_MODE_FILTER)` with the exported program;
//! 4. in one block of assembly: load the guest's stack pointer and boot info
//!    address, clear every other register (no tender address leaks into
//!    the guest), and jump to the entry point.
//!
//! Nothing runs between 3 and 4: no allocation, no drop, no library call.
//!
//! # Safety
//!
//! `launch` is only called with a mapped guest: the entry point lies in an
//! executable segment (checked by `image`), the stack and boot region are
//! mapped (by `memory`). The BPF program is leaked so it stays valid for the
//! kernel to copy. After the jump no Rust code of the tender runs again.

#![allow(unsafe_code)]

use std::io;

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
    /// The kernel refused the filter.
    #[error("seccomp(SECCOMP_SET_MODE_FILTER) failed: {0}")]
    Seccomp(#[source] io::Error),
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

/// Seals the process with `program` and jumps to the guest.
pub fn launch(
    program: Vec<libc::sock_filter>,
    start: Start,
) -> Result<std::convert::Infallible, LaunchError> {
    let len =
        u16::try_from(program.len()).map_err(|_| LaunchError::ProgramTooLong(program.len()))?;
    reset_signals()?;
    let filter = program.leak();
    let fprog = Box::leak(Box::new(libc::sock_fprog { len, filter: filter.as_mut_ptr() }));
    let fprog: *const libc::sock_fprog = fprog;

    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(LaunchError::NoNewPrivs(io::Error::last_os_error()));
    }
    // SAFETY: fprog points to a leaked, valid sock_fprog whose filter array
    // has `len` instructions; the kernel copies it.
    let ret = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, fprog) };
    if ret != 0 {
        return Err(LaunchError::Seccomp(io::Error::last_os_error()));
    }
    // SAFETY: the guest is mapped (see the module's safety section); this
    // block never returns and no tender code runs after it.
    unsafe {
        std::arch::asm!(
            "mov rsp, {stack}",
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
            stack = in(reg) start.stack_top,
            in("rdi") start.boot_info,
            in("r15") start.entry,
            options(noreturn),
        )
    }
}
