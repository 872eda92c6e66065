//! Flush threads: a writable disk's `fdatasync` off the guest's thread.
//!
//! The guest is one host thread: while it waits in `fdatasync` (8 to 95 ms
//! on the development machines, `docs/performance.md`) it serves nothing.
//! So the tender gives each writable disk a thread that flushes it on
//! request, and a channel to ask it ([`abi::DEVICE_FLAG_FLUSH_CHANNEL`]): a
//! `SOCK_SEQPACKET` pair, the guest's end non-blocking (it writes a request,
//! waits for the answer in the `ppoll`s it makes anyway, and reads it), the
//! thread's end blocking. The thread loops: `read` a request, `fdatasync`
//! the disk, `write` the result. An `fdatasync` that begins after a
//! `pwrite64` returned covers it, whichever thread calls it, so a flush
//! asked after some writes covers them.
//!
//! **What the thread may do.** It shares the guest's address space, so the
//! guest can take it over (rewrite its code's data, its stack page). It is
//! started before the guest's filter is installed and installs a filter of
//! its own first ([`thread_program`]): `read` and `write` on its end of the
//! channel and `fdatasync` on its disk, nothing else (anything else kills
//! the process, as the guest's filter does). `fdatasync` on that disk is in
//! the guest's filter already; `read` and `write` on the thread's end reach
//! only the guest's end, which the guest reads and writes itself. So a
//! hijacked thread can do nothing outside the process that the guest
//! cannot. The thread is made with a raw `clone` and runs a loop of
//! assembly on a page of its own: no glibc thread (no rseq area, no TLS, no
//! stack of glibc's), no memory of the tender's that the launch releases.
//! The tender waits for the thread to report its filter installed before
//! it goes on, so the guest never runs beside an unfiltered thread.
//! `docs/seccomp.md` has the argument and the tests.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::seccomp::Rule;
use crate::seccomp::flush_channel_rules;

/// `AUDIT_ARCH_X86_64`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `SECCOMP_RET_ALLOW`.
const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_KILL_PROCESS`.
const RET_KILL_PROCESS: u32 = 0x8000_0000;
/// `BPF_LD | BPF_W | BPF_ABS`.
const LD_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const JEQ: u16 = 0x15;
/// `BPF_RET | BPF_K`.
const RET: u16 = 0x06;
/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LO: u32 = 16;
const ARG0_HI: u32 = 20;

/// How long the tender waits for a new thread to report its filter.
const READY_TIMEOUT_MS: i32 = 5000;

/// The flush thread's filter: `read` and `write` on `channel` (the
/// thread's end), `fdatasync` on `disk`, each fd compared as a whole 64-bit
/// register; another architecture, and everything else, kills the process.
pub fn thread_program(channel: RawFd, disk: RawFd) -> Vec<libc::sock_filter> {
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // Jump offsets count from the next instruction.
    const ALLOW: u8 = 14;
    const KILL: u8 = 15;
    let to = |from: u8, target: u8| target - from - 1;
    vec![
        /* 0 */ ins(LD_ABS, 0, 0, ARCH),
        /* 1 */ ins(JEQ, 0, to(1, KILL), AUDIT_ARCH_X86_64),
        /* 2 */ ins(LD_ABS, 0, 0, NR),
        /* 3 */ ins(JEQ, to(3, 6), 0, libc::SYS_read as u32),
        /* 4 */ ins(JEQ, to(4, 6), 0, libc::SYS_write as u32),
        /* 5 */ ins(JEQ, to(5, 10), to(5, KILL), libc::SYS_fdatasync as u32),
        /* 6 */ ins(LD_ABS, 0, 0, ARG0_LO),
        /* 7 */ ins(JEQ, 0, to(7, KILL), channel as u32),
        /* 8 */ ins(LD_ABS, 0, 0, ARG0_HI),
        /* 9 */ ins(JEQ, to(9, ALLOW), to(9, KILL), 0),
        /* 10 */ ins(LD_ABS, 0, 0, ARG0_LO),
        /* 11 */ ins(JEQ, 0, to(11, KILL), disk as u32),
        /* 12 */ ins(LD_ABS, 0, 0, ARG0_HI),
        /* 13 */ ins(JEQ, to(13, ALLOW), to(13, KILL), 0),
        /* 14 */ ins(RET, 0, 0, RET_ALLOW),
        /* 15 */ ins(RET, 0, 0, RET_KILL_PROCESS),
    ]
}

/// The flush thread's filter as `--print-seccomp` shows it.
pub fn describe_thread(name: &str, channel: RawFd, disk: RawFd) -> String {
    format!(
        "# flush thread of disk fd {disk} ({name}), its own filter: allow read(arg0 == \
         {channel}), write(arg0 == {channel}), fdatasync(arg0 == {disk}); anything else kills\n"
    )
}

/// A writable disk's flush channel, before its thread starts.
#[derive(Debug)]
pub struct Channel {
    name: String,
    disk: RawFd,
    guest: OwnedFd,
    thread: OwnedFd,
}

/// A flush thread could not be started.
#[derive(Debug, thiserror::Error)]
#[error("flush thread of disk `{name}`: {what}: {source}")]
pub struct FlushError {
    name: String,
    what: &'static str,
    source: io::Error,
}

impl Channel {
    /// Opens the channel of the disk `name` on fd `disk`.
    #[allow(unsafe_code)]
    pub fn open(name: &str, disk: RawFd) -> Result<Self, FlushError> {
        let mut fds = [-1; 2];
        // SAFETY: socketpair writes two ints into `fds`.
        let ret = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if ret != 0 {
            return Err(FlushError {
                name: name.to_string(),
                what: "socketpair",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: both fds are new and owned by nothing else.
        let (guest, thread) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Self { name: name.to_string(), disk, guest, thread })
    }

    /// The guest's end, for the boot info and the filter.
    pub fn guest_fd(&self) -> RawFd {
        self.guest.as_raw_fd()
    }

    /// Both ends: the fds to keep open.
    pub fn raw_fds(&self) -> [RawFd; 2] {
        [self.guest.as_raw_fd(), self.thread.as_raw_fd()]
    }

    /// The guest's rules for its end.
    pub fn rules(&self) -> Vec<Rule> {
        flush_channel_rules(&self.name, self.guest_fd())
    }

    /// The thread's filter, described.
    pub fn describe_thread(&self) -> String {
        describe_thread(&self.name, self.thread.as_raw_fd(), self.disk)
    }

    /// Starts the thread, waits until it reports its filter installed, and
    /// makes the guest's end non-blocking. Call it after the signals are
    /// blocked (the thread inherits the mask: a SIGTERM must not end the
    /// process through it) and as late as possible before the launch. Both
    /// fds stay open for the life of the process.
    #[allow(unsafe_code)]
    pub fn spawn(self) -> Result<(), FlushError> {
        let err = |what: &'static str| {
            let name = self.name.clone();
            move |source| FlushError { name, what, source }
        };
        let program = thread_program(self.thread.as_raw_fd(), self.disk);
        // One page for the thread: the sock_fprog at 0, the message buffer
        // at 32, the program at 64, the stack pointer at the end (the loop
        // pushes nothing).
        const PAGE: usize = 4096;
        // SAFETY: an anonymous private mapping, no pointer passed.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(err("mmap")(io::Error::last_os_error()));
        }
        let base = page.cast::<u8>();
        // SAFETY: the page is ours, PAGE bytes, and the program's 16
        // instructions (128 bytes) fit between 64 and its end.
        let (fprog, buf) = unsafe {
            let filter = base.add(64).cast::<libc::sock_filter>();
            std::ptr::copy_nonoverlapping(program.as_ptr(), filter, program.len());
            let fprog = base.cast::<libc::sock_fprog>();
            fprog.write(libc::sock_fprog { len: program.len() as u16, filter });
            (fprog, base.add(32))
        };
        let stack_top = base as u64 + PAGE as u64;
        let flags = libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM;
        let ret: i64;
        // SAFETY: clone with a fresh stack; the child runs only the
        // assembly below, touching no memory but the page (its buffer and
        // program) and never returning into Rust. The parent gets the
        // child's id or -errno in rax; the kernel preserves every other
        // register but rcx and r11 across `syscall`.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                // The child: its own filter first.
                "mov eax, {sys_prctl}",
                "mov edi, {no_new_privs}",
                "mov esi, 1",
                "xor edx, edx",
                "xor r10d, r10d",
                "xor r8d, r8d",
                "syscall",
                "test rax, rax",
                "jnz 5f",
                "mov eax, {sys_seccomp}",
                "mov edi, 1", // SECCOMP_SET_MODE_FILTER
                "xor esi, esi",
                "mov rdx, r14",
                "syscall",
                "test rax, rax",
                "jnz 5f",
                // Filtered: report ready (0), then serve.
                "mov qword ptr [r15], rax",
                "3:",
                "mov eax, {sys_write}",
                "mov rdi, r12",
                "mov rsi, r15",
                "mov edx, 8",
                "syscall",
                "4:",
                "mov eax, {sys_read}",
                "mov rdi, r12",
                "mov rsi, r15",
                "mov edx, 8",
                "syscall",
                "test rax, rax",
                "jle 4b",
                "mov eax, {sys_fdatasync}",
                "mov rdi, r13",
                "syscall",
                "mov qword ptr [r15], rax",
                "jmp 3b",
                // No filter: report the error and end the thread (no
                // filter yet, so `exit` is allowed).
                "5:",
                "mov qword ptr [r15], rax",
                "mov eax, {sys_write}",
                "mov rdi, r12",
                "mov rsi, r15",
                "mov edx, 8",
                "syscall",
                "mov eax, {sys_exit}",
                "xor edi, edi",
                "syscall",
                "ud2",
                "2:",
                sys_prctl = const libc::SYS_prctl,
                no_new_privs = const libc::PR_SET_NO_NEW_PRIVS,
                sys_seccomp = const libc::SYS_seccomp,
                sys_write = const libc::SYS_write,
                sys_read = const libc::SYS_read,
                sys_fdatasync = const libc::SYS_fdatasync,
                sys_exit = const libc::SYS_exit,
                inlateout("rax") libc::SYS_clone => ret,
                in("rdi") flags as u64,
                in("rsi") stack_top,
                in("rdx") 0u64,
                in("r10") 0u64,
                in("r8") 0u64,
                in("r12") self.thread.as_raw_fd() as u64,
                in("r13") self.disk as u64,
                in("r14") fprog as u64,
                in("r15") buf as u64,
                out("rcx") _,
                out("r11") _,
                options(nostack),
            );
        }
        if ret < 0 {
            return Err(err("clone")(io::Error::from_raw_os_error(-ret as i32)));
        }
        let guest = self.guest.as_raw_fd();
        let mut pfd = libc::pollfd { fd: guest, events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, READY_TIMEOUT_MS) };
        if ready != 1 {
            return Err(err("waiting for its filter")(if ready < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::from(io::ErrorKind::TimedOut)
            }));
        }
        let mut word = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `word`.
        let n = unsafe { libc::read(guest, word.as_mut_ptr().cast(), word.len()) };
        if n != 8 {
            return Err(err("reading its report")(if n < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::from(io::ErrorKind::UnexpectedEof)
            }));
        }
        let status = i64::from_le_bytes(word);
        if status != 0 {
            return Err(err("installing its filter")(io::Error::from_raw_os_error(-status as i32)));
        }
        // SAFETY: fcntl on our own fd, integer arguments.
        let nonblocking = unsafe {
            let fl = libc::fcntl(guest, libc::F_GETFL);
            fl >= 0 && libc::fcntl(guest, libc::F_SETFL, fl | libc::O_NONBLOCK) == 0
        };
        if !nonblocking {
            return Err(err("fcntl(O_NONBLOCK)")(io::Error::last_os_error()));
        }
        // Both ends live as long as the process: the guest's and the
        // thread's.
        let _ = self.guest.into_raw_fd();
        let _ = self.thread.into_raw_fd();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installs `thread_program(channel, disk)` in a forked child, makes
    /// the raw call `nr(a0, buf, 0, ...)` there, then writes a byte to
    /// `channel` (allowed) and exits (killed). Returns whether the child
    /// died of SIGSYS and whether its byte arrived (the call survived).
    /// `channel` must be the write end of a non-blocking pipe whose read
    /// end is `reader`.
    #[allow(unsafe_code)]
    fn in_filtered_child(
        channel: RawFd,
        reader: RawFd,
        disk: RawFd,
        nr: i64,
        a0: u64,
    ) -> (bool, bool) {
        let program = thread_program(channel, disk);
        let fprog =
            libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
        // SAFETY: the child makes only raw system calls and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: as above; the buffer is a local.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::syscall(libc::SYS_seccomp, 1, 0, &fprog) != 0
                {
                    libc::_exit(100);
                }
                let mut buf = [0u8; 8];
                libc::syscall(nr, a0, buf.as_mut_ptr(), 0usize, 0usize, 0usize, 0usize);
                libc::syscall(libc::SYS_write, channel, buf.as_ptr(), 1usize);
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let mut got = [0u8; 8];
        // SAFETY: reads into `got`.
        let n = unsafe { libc::read(reader, got.as_mut_ptr().cast(), 8) };
        (libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS, n > 0)
    }

    #[test]
    fn the_program_is_what_it_says() {
        let p = thread_program(9, 3);
        assert_eq!(p.len(), 16);
        for (i, ins) in p.iter().enumerate() {
            if ins.code == JEQ {
                assert!(i + 1 + (ins.jt as usize) < p.len() && i + 1 + (ins.jf as usize) < p.len());
            }
        }
        assert_eq!((p[14].code, p[14].k), (RET, RET_ALLOW));
        assert_eq!((p[15].code, p[15].k), (RET, RET_KILL_PROCESS));
    }

    /// Every call but the three is killed, and so is every x32 number;
    /// so are the three on other fds and with a high half. (A survivor
    /// would die at its `_exit` too: [`allowed_calls_pass`] shows that the
    /// allowed calls do pass, by what they do.)
    #[test]
    #[allow(unsafe_code)]
    fn every_other_call_kills() {
        let mut pipe = [0; 2];
        // SAFETY: pipe2 writes two ints.
        assert_eq!(unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
        let [reader, channel] = pipe;
        let path = std::env::temp_dir().join(format!("flusher-kill-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let disk = file.as_raw_fd();
        let killed = |nr: i64, a0: u64| {
            let (sigsys, survived) = in_filtered_child(channel, reader, disk, nr, a0);
            sigsys && !survived
        };
        // The harness itself: a call the filter allows survives.
        assert_eq!(
            in_filtered_child(channel, reader, disk, libc::SYS_fdatasync, disk as u64),
            (true, true)
        );
        for nr in 0..548i64 {
            if [libc::SYS_read, libc::SYS_write, libc::SYS_fdatasync].contains(&nr) {
                continue;
            }
            // 335 and 336 never reach seccomp on the development VMs
            // (docs/seccomp.md, "A host quirk"): whatever they do, the
            // child's next call is the proof write, allowed.
            if nr == 335 || nr == 336 {
                continue;
            }
            assert!(killed(nr, channel as u64), "call {nr}");
            assert!(killed(nr | 0x4000_0000, channel as u64), "x32 call {nr}");
        }
        let (c, d) = (channel as u64, disk as u64);
        for (nr, fd) in [
            (libc::SYS_read, d),
            (libc::SYS_read, 0),
            (libc::SYS_read, 1),
            (libc::SYS_read, reader as u64),
            (libc::SYS_read, c + 1),
            (libc::SYS_read, (1 << 32) | c),
            (libc::SYS_write, 1),
            (libc::SYS_write, 2),
            (libc::SYS_write, d),
            (libc::SYS_write, reader as u64),
            (libc::SYS_write, (1 << 32) | c),
            (libc::SYS_fdatasync, c),
            (libc::SYS_fdatasync, 1),
            (libc::SYS_fdatasync, d + 1),
            (libc::SYS_fdatasync, (1 << 32) | d),
            (libc::SYS_read | 0x4000_0000, c),
            (libc::SYS_write | 0x4000_0000, c),
            (libc::SYS_fdatasync | 0x4000_0000, d),
        ] {
            assert!(killed(nr, fd), "{nr}({fd})");
        }
        drop(file);
        let _ = std::fs::remove_file(path);
        // SAFETY: our fds.
        unsafe {
            libc::close(reader);
            libc::close(channel);
        }
    }

    /// The three allowed calls on their fds pass the filter, seen by what
    /// they did: the child makes the call (then `getpid`, which kills it),
    /// and the parent finds the byte it read gone from the pipe, or the
    /// byte it wrote there (`fdatasync` is followed by such a write).
    #[test]
    #[allow(unsafe_code)]
    fn allowed_calls_pass() {
        let path = std::env::temp_dir().join(format!("flusher-test-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let disk = file.as_raw_fd();
        for nr in [libc::SYS_read, libc::SYS_write, libc::SYS_fdatasync] {
            let mut pipe = [0; 2];
            // SAFETY: pipe2 writes two ints.
            assert_eq!(unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
            let channel = if nr == libc::SYS_read { pipe[0] } else { pipe[1] };
            let program = thread_program(channel, disk);
            let fprog =
                libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
            let byte = [7u8; 1];
            if nr == libc::SYS_read {
                // SAFETY: writes one byte from `byte`.
                assert_eq!(unsafe { libc::write(pipe[1], byte.as_ptr().cast(), 1) }, 1);
            }
            // SAFETY: the child makes only raw system calls.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: as above; buffers are locals.
                unsafe {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                        || libc::syscall(libc::SYS_seccomp, 1, 0, &fprog) != 0
                    {
                        libc::_exit(100);
                    }
                    let mut buf = [0u8; 8];
                    if nr == libc::SYS_read {
                        libc::syscall(nr, channel, buf.as_mut_ptr(), 8usize);
                    } else {
                        if nr == libc::SYS_fdatasync {
                            libc::syscall(nr, disk);
                        }
                        libc::syscall(libc::SYS_write, channel, byte.as_ptr(), 1usize);
                    }
                    libc::syscall(libc::SYS_getpid);
                    libc::_exit(0);
                }
            }
            let mut status = 0;
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS, "{nr}");
            let mut got = [0u8; 8];
            // SAFETY: reads into `got`.
            let n = unsafe { libc::read(pipe[0], got.as_mut_ptr().cast(), 8) };
            // SAFETY: our fds.
            unsafe {
                libc::close(pipe[0]);
                libc::close(pipe[1]);
            }
            if nr == libc::SYS_read {
                assert_eq!(n, -1, "read was killed: its byte is still there");
            } else {
                assert_eq!(n, 1, "call {nr} was killed");
            }
        }
        drop(file);
        let _ = std::fs::remove_file(path);
    }
}
