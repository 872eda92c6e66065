//! Clocks without system calls: the guest reads the clock through the
//! host's vDSO, whose `clock_gettime` the tender finds and hands over in
//! the boot info (docs/abi.md, "Clocks"). The clock stays monotonic and
//! agrees with the host's and with the system call's; reading it 100,000
//! times makes (almost) no `clock_gettime` system call, in a libos guest
//! and in a std guest; `--clock syscall` brings the system call back; and
//! the filter is the same either way.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Outcome, TempDir, run, tender, workspace_bin};

const BASICS: &str = env!("CARGO_BIN_EXE_guest-basics");

/// How many reads the guests make.
const READS: u64 = 100_000;

fn field(out: &Outcome, key: &str) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key} missing in {out:#?}"))
        .to_string()
}

/// Whether this process has a vDSO (every x86_64 Linux maps one, unless
/// booted with `vdso=0`).
#[allow(unsafe_code)]
fn host_has_vdso() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) != 0 }
}

/// The host's current clocksource.
fn clocksource() -> String {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

#[test]
fn the_clock_is_monotonic_and_agrees_with_the_hosts() {
    let reads = READS.to_string();
    for (opts, source) in [
        (&[][..], if host_has_vdso() { "vdso" } else { "syscall" }),
        (&["--clock", "syscall"][..], "syscall"),
    ] {
        let before = unix_now();
        let mut argv = opts.to_vec();
        argv.extend([BASICS, "clock", &reads]);
        let out = run(&argv);
        let after = unix_now();
        out.assert_ok();
        assert_eq!(field(&out, "source"), source, "{opts:?}");
        assert_eq!(field(&out, "reads"), reads);
        // Sanity bounds only: the guest's wall clock lies between the host's
        // before and after the run, give or take a second.
        let wall = Duration::from_nanos(field(&out, "wall_ns").parse().unwrap());
        let bound = Duration::from_secs(1);
        assert!(
            before <= wall + bound && wall <= after + bound,
            "guest wall clock {wall:?} outside [{before:?}, {after:?}] ({opts:?})"
        );
        let elapsed: u64 = field(&out, "elapsed_ns").parse().unwrap();
        assert!(elapsed > 0, "{READS} reads of the monotonic clock saw no time pass");
        assert!(Duration::from_nanos(elapsed) <= after - before + bound);
    }
}

/// The `clock_gettime` system calls a run of `argv` under the tender made,
/// counted by `strace -f -c`, and the run's outcome.
fn clock_syscalls(argv: &[&str]) -> (u64, Outcome) {
    let dir = TempDir::new("clock-strace");
    let summary = dir.path().join("summary");
    let out = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=clock_gettime", "-o"])
        .arg(&summary)
        .arg(tender())
        .args(argv)
        .output()
        .expect("strace (scripts/deps.sh installs it)");
    let out = Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (count(&summary), out)
}

/// The calls column of `clock_gettime`'s row in an `strace -c` summary
/// (`% time, seconds, usecs/call, calls, [errors,] syscall`); 0 without one.
fn count(summary: &Path) -> u64 {
    let text = std::fs::read_to_string(summary).unwrap();
    text.lines()
        .find(|l| l.split_whitespace().last() == Some("clock_gettime"))
        .map_or(0, |l| l.split_whitespace().nth(3).unwrap().parse().unwrap())
}

#[test]
fn reading_the_clock_100000_times_makes_almost_no_system_call() {
    if !host_has_vdso() {
        eprintln!("note: this host maps no vDSO: the guests read the clock by system call");
        return;
    }
    let reads = READS.to_string();
    let (calls, out) = clock_syscalls(&[BASICS, "clock", &reads]);
    out.assert_ok();
    let deliberate: u64 = field(&out, "syscalls").parse().unwrap();
    let source = clocksource();
    if source != "tsc" && calls >= READS {
        // The vDSO cannot read this clocksource from user space and falls
        // back to the system call by itself: slower, and still correct.
        eprintln!("note: clocksource {source}: the vDSO fell back to the system call");
        return;
    }
    assert!(
        calls <= deliberate + 10,
        "{READS} reads of the clock made {calls} clock_gettime system calls ({deliberate} on \
         purpose), clocksource {source}"
    );

    // The count is real: with the system call, every read is one.
    let (calls, out) = clock_syscalls(&["--clock", "syscall", BASICS, "clock", &reads]);
    out.assert_ok();
    assert!(calls >= READS + deliberate, "only {calls} system calls counted with --clock syscall");

    // A std guest: Instant and SystemTime, on two threads, and the C
    // library's clocks.
    let surface = workspace_bin("std-surface").display().to_string();
    let (calls, out) = clock_syscalls(&[&surface, "clock"]);
    out.assert_ok();
    for line in [
        "main thread: ok ()",
        "other thread: ok ()",
        "wall clocks agree: true",
        "monotonic clocks agree: true",
    ] {
        assert!(out.stdout.lines().any(|l| l == line), "{line:?} missing: {out:#?}");
    }
    assert!(calls <= 10, "a std guest's 300,000 clock reads made {calls} system calls");
}

#[test]
fn the_filter_is_the_same_with_either_clock() {
    let print = |opts: &[&str], guest: &str| {
        let mut argv = opts.to_vec();
        argv.extend(["--print-seccomp", guest]);
        let out = run(&argv);
        out.assert_ok();
        out.stdout
    };
    let std_hello = workspace_bin("std-hello").display().to_string();
    for guest in [BASICS, &std_hello] {
        let vdso = print(&[], guest);
        assert_eq!(vdso, print(&["--clock", "syscall"], guest));
        // The vDSO falls back to clock_gettime of the clock it was asked
        // for: the two clocks the guest reads, and no other, are allowed.
        assert!(
            vdso.starts_with(
                "# nabla policy: 5 rules, 4 distinct system calls (clock_gettime, exit_group, \
                 ppoll, write)"
            ),
            "{vdso}"
        );
        let clocks: Vec<&str> =
            vdso.lines().filter(|l| l.starts_with("#   allow clock_gettime(")).collect();
        assert_eq!(clocks.len(), 2, "{vdso}");
        assert!(clocks[0].contains("clock_gettime(arg0 == 1)"), "{vdso}");
        assert!(clocks[1].contains("clock_gettime(arg0 == 0)"), "{vdso}");
    }
}

#[test]
fn clock_takes_only_its_two_values() {
    run(&["--clock", "tsc", BASICS, "clock", "1"]).assert_refused("--clock");
}
