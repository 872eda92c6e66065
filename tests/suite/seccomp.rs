//! The filter: the four calls a device-less guest needs are allowed with
//! their pinned arguments (`ppoll` on at most the tender's signalfds), and
//! every other system call, every x32 call, and
//! the allowed calls with other arguments kill the guest with SIGSYS; a
//! filter the kernel refuses is reported, and no guest runs unfiltered.

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{SIGSYS, run};

const SYSCALL: &str = env!("CARGO_BIN_EXE_guest-syscall");

const WRITE: u64 = 1;
const CLOCK_GETTIME: u64 = 228;
const EXIT_GROUP: u64 = 231;
const PPOLL: u64 = 271;
const ALLOWED: [u64; 4] = [WRITE, CLOCK_GETTIME, EXIT_GROUP, PPOLL];

/// Bit that selects the x32 ABI on x86_64.
const X32: u64 = 0x4000_0000;

/// Every number up to and including the x32-only range (512..=547), which
/// covers every x86_64 system call Linux defines (the highest, as of 6.18,
/// is 470), the unused gaps, and anything a newer kernel may add below 512.
const HIGHEST: u64 = 547;

fn call(args: &[&str]) -> support::Outcome {
    let mut argv = vec![SYSCALL];
    argv.extend_from_slice(args);
    run(&argv)
}

fn assert_killed(args: &[&str]) {
    let out = call(args);
    assert_eq!(out.signal(), Some(SIGSYS), "{args:?} must be killed by SIGSYS: {out:#?}");
}

#[test]
fn allowed_calls_with_their_arguments_survive() {
    let out = call(&["1", "1", "msg", "3"]);
    out.assert_ok();
    assert_eq!(out.stdout, "ok\nreturned 3\n");
    for clock in ["0", "1"] {
        let out = call(&["228", clock, "buf"]);
        out.assert_ok();
        assert_eq!(out.stdout, "returned 0\n", "clock {clock}");
    }
    // ppoll(NULL, 0, &{0, 0}, NULL, 8): returns at once.
    let out = call(&["271", "0", "0", "buf", "0", "8"]);
    out.assert_ok();
    assert_eq!(out.stdout, "returned 0\n");
    // ppoll on as many fds as the tender gave signalfds: allowed.
    let nfds = support::signal_fds().to_string();
    let out = call(&["271", "buf", &nfds, "buf", "0", "8"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let out = call(&["231", "7"]);
    assert_eq!(out.code(), Some(7), "{out:#?}");
}

#[test]
fn allowed_calls_with_other_arguments_are_killed() {
    assert_killed(&["1", "2", "msg", "3"]); // write to stderr
    assert_killed(&["1", "0", "msg", "3"]); // write to stdin
    assert_killed(&["1", "0x100000001", "msg", "3"]); // fd 1 in the low half only
    assert_killed(&["228", "5", "buf"]); // CLOCK_BOOTTIME... 5 is CLOCK_REALTIME_COARSE
    assert_killed(&["228", "2", "buf"]); // CLOCK_PROCESS_CPUTIME_ID
    // nfds past the signalfds (SIGTERM, SIGINT) without a tap
    let nfds = (support::signal_fds() + 1).to_string();
    assert_killed(&["271", "buf", &nfds, "buf", "0", "8"]);
    assert_killed(&["271", "0", "0", "buf", "buf", "8"]); // a signal mask
}

#[test]
fn the_32_bit_entry_is_killed_even_for_allowed_calls() {
    // i386 write(1, "ok\n", 3) and exit(0), 4 and 1 there: allowed calls'
    // arguments, through `int 0x80`; the filter's architecture check kills
    // them before any rule is looked at.
    assert_killed(&["int80", "4", "1", "msg", "3"]);
    assert_killed(&["int80", "1", "0"]);
    assert_killed(&["int80", "252", "0"]); // exit_group
}

#[test]
fn every_other_system_call_is_killed() {
    let mut numbers: Vec<u64> = (0..=HIGHEST).filter(|n| !ALLOWED.contains(n)).collect();
    // The x32 ABI: the same numbers with bit 30 set, the allowed ones included.
    numbers.extend((0..=HIGHEST).map(|n| n | X32));
    numbers.extend([1000, 0x3fff_ffff, X32 | 0x3fff_ffff, 0xffff_ffff, u64::MAX]);

    let next = AtomicUsize::new(0);
    let survivors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&nr) = numbers.get(i) else { break };
                    let nr_arg = format!("{nr:#x}");
                    let out = call(&[&nr_arg, "0", "0", "0", "0", "0", "0"]);
                    if out.signal() != Some(SIGSYS) {
                        survivors.lock().unwrap().push((nr, out.status, out.stdout));
                    }
                }
            });
        }
    });
    // A number that survives our filter is a failure unless the kernel's own
    // strict mode cannot stop it either: then the call never reaches seccomp
    // (some virtualised hosts intercept a few numbers below the kernel).
    let (bypass, failures): (Vec<_>, Vec<_>) =
        survivors.into_inner().unwrap().into_iter().partition(|(nr, _, _)| bypasses_seccomp(*nr));
    for (nr, status, _) in &bypass {
        eprintln!(
            "note: system call {nr:#x} bypasses seccomp on this host (strict mode does not stop \
             it either; the guest got {status:?}): it is intercepted below the kernel"
        );
    }
    assert!(
        failures.is_empty(),
        "{} system calls were not killed by SIGSYS: {failures:#?}",
        failures.len()
    );
}

/// Whether system call `nr` escapes even `SECCOMP_MODE_STRICT`, which allows
/// only read, write, exit and sigreturn: checked in a forked child.
#[allow(unsafe_code)]
fn bypasses_seccomp(nr: u64) -> bool {
    // SAFETY: the child only calls async-signal-safe functions (prctl,
    // syscall, _exit) before exiting; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT);
            libc::syscall(nr as libc::c_long, 0, 0, 0, 0, 0, 0);
            libc::syscall(libc::SYS_exit, 0);
            libc::_exit(0);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        // Strict mode kills with SIGKILL; anything else means the call
        // never met the filter.
        !(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL)
    }
}

#[test]
fn a_filter_the_kernel_refuses_is_reported_and_the_guest_never_runs() {
    // The kernel refuses a filter once the filters of a process add up to
    // too many instructions (ENOMEM; 32768, counting a few more per
    // filter). The tender's child installs allow-all filters until not even
    // a one-instruction filter fits, so the tender's own seccomp() fails:
    // by then the tender has released its memory, and the assembly that
    // jumps must say so itself and exit 1.
    const BPF_RET_K: u16 = 0x06;
    // Every instruction returns ALLOW: any prefix is a valid program.
    let allow =
        vec![libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW }; 4096];
    let mut cmd = std::process::Command::new(support::tender());
    cmd.args([support::workspace_bin("hello")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: the closure makes only prctl and seccomp calls, on memory
    // prepared before the fork.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut len = allow.len();
            loop {
                let fprog = libc::sock_fprog { len: len as u16, filter: allow.as_ptr().cast_mut() };
                let fprog: *const libc::sock_fprog = &fprog;
                if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, fprog) == 0 {
                    continue;
                }
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ENOMEM) {
                    return Err(e);
                }
                if len == 1 {
                    return Ok(());
                }
                len /= 2;
            }
        });
    }
    let child = cmd.spawn().expect("start the tender under the allow-all filters");
    let out = support::wait(child, std::time::Duration::from_secs(30), "tender hello");
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert_eq!(
        out.stderr,
        format!("tender: seccomp(SECCOMP_SET_MODE_FILTER) failed (os error {})\n", libc::ENOMEM),
        "{out:#?}"
    );
    assert_eq!(out.stdout, "", "the guest must not have run: {out:#?}");
}
