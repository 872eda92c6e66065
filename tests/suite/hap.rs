//! `nabla hap` in lab mode: a QEMU VM (TCG) with a stock Debian kernel
//! traces `tender hello` and a static native hello with the function
//! tracer, and the per-phase numbers must make sense:
//!
//! * both workloads ran something: counts above a sane minimum, and the
//!   system calls each is known to make are in its lists;
//! * the guest's steady state (after the tender's seccomp filter is in
//!   place) reached only what its allowed calls lead to: `write`,
//!   `clock_gettime`, `ppoll`, `exit_group`, and no file opening, mapping or
//!   process creation;
//! * its steady state is smaller than the native hello's whole lifetime.
//!
//! The kernel is downloaded once (`apt-get download`) into the user's
//! cache; the run takes about a minute on two cores.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{TempDir, wait, workspace_bin};

/// The lines of `dir/name`, as a set.
fn list(dir: &Path, name: &str) -> BTreeSet<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn hello_guest_steady_state_stays_on_its_allowed_calls() {
    let out = TempDir::new("hap");
    let child = Command::new(workspace_bin("nabla"))
        .args(["hap", "compare", "--pairs", "hello", "--mode", "lab", "--timeout", "900"])
        .arg("--out")
        .arg(out.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nabla hap");
    let run = wait(child, Duration::from_secs(1200), "nabla hap compare --pairs hello");
    assert_eq!(run.code(), Some(0), "nabla hap failed: {run:#?}");
    assert!(run.stderr.contains("lab mode"), "the mode is printed: {run:#?}");
    assert!(
        run.stdout.contains("kernel 6.") || run.stdout.contains("kernel 7."),
        "the kernel version is printed: {run:#?}"
    );

    let guest = out.path().join("hello-tender");
    let native = out.path().join("hello-native");
    let startup = list(&guest, "startup.txt");
    let steady = list(&guest, "steady.txt");
    let steady_calls = list(&guest, "syscalls-steady.txt");
    let startup_calls = list(&guest, "syscalls-startup.txt");
    let native_whole = list(&native, "whole.txt");
    let native_calls = list(&native, "syscalls-startup.txt");
    let report = format!(
        "guest start-up {} steady {} {steady_calls:?}; native whole {} {native_calls:?}",
        startup.len(),
        steady.len(),
        native_whole.len()
    );

    // Not vacuous: the tracer saw both processes do real work.
    assert!(startup.len() >= 200, "{report}");
    assert!(steady.len() >= 30, "{report}");
    assert!(native_whole.len() >= 200, "{report}");
    for call in ["write", "exit_group"] {
        assert!(steady_calls.contains(call), "guest steady lacks {call}: {report}");
        assert!(native_calls.contains(call), "native lacks {call}: {report}");
    }
    // The tender itself maps, opens and installs the filter before.
    for call in ["execve", "mmap", "seccomp"] {
        assert!(startup_calls.contains(call), "guest start-up lacks {call}: {report}");
    }
    for f in ["__x64_sys_write", "ksys_write", "__x64_sys_exit_group", "do_group_exit"] {
        assert!(steady.contains(f), "guest steady lacks {f}: {report}");
    }

    // After the filter: only the allowed calls' paths.
    let allowed: BTreeSet<&str> = ["write", "clock_gettime", "ppoll", "exit_group"].into();
    for call in &steady_calls {
        assert!(allowed.contains(call.as_str()), "guest steady made {call}: {report}");
    }
    for f in [
        "do_sys_open",
        "do_sys_openat2",
        "__x64_sys_openat",
        "__x64_sys_mmap",
        "do_mmap",
        "__x64_sys_execve",
        "kernel_clone",
        "__x64_sys_seccomp",
    ] {
        assert!(!steady.contains(f), "guest steady reached {f}: {report}");
    }
    assert!(steady.len() < native_whole.len(), "{report}");
    // The lists are the whole: steady and start-up make up the lifetime.
    let whole = list(&guest, "whole.txt");
    assert_eq!(whole, startup.union(&steady).cloned().collect(), "{report}");
    eprintln!("{report}");
}
