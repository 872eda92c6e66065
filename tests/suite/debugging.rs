//! Debugging guests with gdb (docs/debugging.md): the tender hands gdb the
//! guest's symbols (GDB's JIT interface), so that `gdb --args tender APP`
//! stops in the guest's `main`, steps through it, shows the guest's frames
//! at a panic and at a system call; and `scripts/nabla-gdb.py` loads them
//! into a gdb attached to a running guest and catches a forbidden call.
//!
//! Each test runs gdb in batch mode; all are skipped, with a message, when
//! gdb is not installed (scripts/deps.sh installs it).

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{KillOnDrop, tender, workspace_bin};

const BASICS: &str = env!("CARGO_BIN_EXE_guest-basics");
const FAULTS: &str = env!("CARGO_BIN_EXE_guest-faults");
const SYSCALL: &str = env!("CARGO_BIN_EXE_guest-syscall");

/// Whether gdb is installed; says so once when it is not.
fn have_gdb() -> bool {
    let ok = Command::new("gdb")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: gdb is not installed (scripts/deps.sh installs it)");
    }
    ok
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nabla-gdb.py")
}

/// Runs `gdb -batch -nx` with the nabla script, the commands `commands`
/// (one `-ex` each) and then `rest` (`--args ...` or `-p PID`); returns
/// everything it and the guest printed, stdout and stderr interleaved.
fn gdb(commands: &[&str], rest: &[&str]) -> String {
    let (mut reader, writer) = std::io::pipe().expect("pipe");
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "gdb", "-batch", "-nx", "-ex", "set pagination off"]).arg("-x").arg(script());
    for c in commands {
        cmd.args(["-ex", c]);
    }
    let mut child = cmd
        .args(rest)
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("dup"))
        .stderr(writer)
        .spawn()
        .expect("gdb");
    // The command's copies of the pipe are gone: EOF when gdb exits.
    drop(cmd);
    let mut out = String::new();
    reader.read_to_string(&mut out).expect("gdb's output");
    let status = child.wait().expect("gdb");
    assert_ne!(status.code(), Some(124), "gdb still ran after 60 s:\n{out}");
    out
}

/// `gdb --args tender ARGS...`, with the breakpoints that wait for the
/// guest's symbols left pending.
fn gdb_run(commands: &[&str], args: &[&str]) -> String {
    let tender = tender();
    let mut all = vec!["set breakpoint pending on"];
    all.extend_from_slice(commands);
    let mut rest = vec!["--args", tender.to_str().unwrap()];
    rest.extend_from_slice(args);
    gdb(&all, &rest)
}

/// The part of `out` from the first occurrence of `needle`, which must be
/// there.
fn from<'a>(out: &'a str, needle: &str) -> &'a str {
    let at = out.find(needle).unwrap_or_else(|| panic!("no {needle:?} in gdb's output:\n{out}"));
    &out[at..]
}

#[test]
fn a_breakpoint_in_main_stops_at_its_first_line_and_next_steps_on() {
    if !have_gdb() {
        return;
    }
    let hello = workspace_bin("hello");
    // `break main` also matches the tender's own C main, which stops
    // first: the docs say so, and `continue` goes on to the guest's.
    let out = gdb_run(
        &[
            "break main",
            "run",
            "continue",
            "bt",
            "next",
            "next",
            "next",
            "next",
            "info breakpoints",
        ],
        &[hello.to_str().unwrap(), "one"],
    );
    // The second stop is in the guest, with its main at the first line
    // of hello's source in the backtrace (optimised code: the stop itself
    // may be in a function inlined there, such as println!'s).
    let first = from(&out, "Breakpoint 1, ");
    let bt = from(first, "#0 ");
    let main_frame = bt.lines().find(|l| l.contains(" main () at ")).unwrap_or("");
    assert!(
        main_frame.ends_with("main () at examples/hello/src/main.rs:16"),
        "no frame of hello's main at line 16:\n{out}"
    );
    assert!(bt.contains("in _start ()"), "the backtrace reaches the guest's entry:\n{out}");
    assert!(!bt.contains("Backtrace stopped"), "the backtrace ends cleanly at _start:\n{out}");
    // Stepping runs the first line (its output shows) and reaches the next.
    let stepped = from(bt, "Hello, world!");
    assert!(stepped.contains("main () at examples/hello/src/main.rs:17"), "{out}");
    assert!(out.contains("in main at examples/hello/src/main.rs:16"), "{out}");
    assert!(out.contains("tender/src/main.rs"), "{out}");
}

#[test]
fn bt_at_a_panic_shows_the_guests_frames() {
    if !have_gdb() {
        return;
    }
    let out = gdb_run(&["break rust_begin_unwind", "run", "bt"], &[FAULTS, "panic"]);
    let bt = from(&out, "#0 ");
    assert!(bt.contains("core::panicking::panic_fmt"), "{out}");
    assert!(bt.contains("main () at tests/guests/faults.rs:"), "the panicking line:\n{out}");
    assert!(bt.contains("in _start ()"), "{out}");
    assert!(!out.contains("guest panicked"), "gdb stopped before the message:\n{out}");
}

#[test]
fn catch_syscall_write_stops_at_the_guests_console_write() {
    if !have_gdb() {
        return;
    }
    let hello = workspace_bin("hello");
    let hello = hello.to_str().unwrap();
    // Before the jump the tender makes system calls of its own, writes
    // among them: catch from the guest's main on, or only in guest code.
    for commands in [
        &["break hello/src/main.rs:main", "run", "catch syscall write", "continue"][..],
        &["catch syscall write", "condition 1 $_nabla_in_guest()", "run"][..],
    ] {
        let mut commands = commands.to_vec();
        commands.extend(["bt", "info registers rdi rdx", "continue"]);
        let out = gdb_run(&commands, &[hello]);
        let caught = from(&out, "(call to syscall write)");
        assert!(caught.lines().next().unwrap().contains("libos/src/hypercall.rs"), "{out}");
        let bt = from(caught, "#0 ");
        assert!(bt.contains("main () at examples/hello/src/main.rs:16"), "{out}");
        // write(1, "Hello, world!\n", 14), which has not happened yet.
        let regs = from(bt, "rdi ");
        assert!(regs.lines().next().unwrap().ends_with(" 1"), "fd 1:\n{out}");
        assert!(regs.lines().nth(1).unwrap().ends_with(" 14"), "14 bytes:\n{out}");
        assert!(from(regs, "Hello, world!").contains("(returned from syscall write)"), "{out}");
    }
}

#[test]
fn a_forbidden_call_is_caught_before_the_filter_kills_the_guest() {
    if !have_gdb() {
        return;
    }
    // getpid (39): the filter kills the guest with SIGSYS.
    let out =
        gdb_run(&["nabla-catch-forbidden", "run", "bt", "continue", "continue"], &[SYSCALL, "39"]);
    let caught = from(&out, "(call to syscall getpid)");
    assert!(caught.lines().next().unwrap().contains("in syscall_main () at"), "{out}");
    assert!(from(caught, "#0 ").contains("main () at tests/guests/syscall.rs:"), "{out}");
    assert!(caught.contains("Program terminated with signal SIGSYS"), "{out}");
    // Nothing of the tender's before the jump was caught.
    assert_eq!(out.matches("(call to syscall").count(), 1, "{out}");
}

#[test]
fn nabla_symbols_loads_a_running_guests_symbols_into_an_attached_gdb() {
    if !have_gdb() {
        return;
    }
    let mut guest = KillOnDrop(
        Command::new(tender())
            .args([BASICS, "sleep", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tender"),
    );
    // "sleeping 2 s\n": the guest runs.
    let mut line = [0u8; 13];
    guest.0.stdout.as_mut().unwrap().read_exact(&mut line).expect("the guest's output");
    let pid = guest.0.id().to_string();
    let out = gdb(&["nabla-symbols", "bt", "nabla-symbols"], &["-p", &pid]);
    if out.contains("ptrace: Operation not permitted") {
        eprintln!("skipped: this user may not attach to its own processes (yama ptrace_scope)");
        return;
    }
    assert!(out.contains("add symbol table from file"), "{out}");
    assert!(out.contains(&format!("\"{BASICS}\"")), "the image on the command line:\n{out}");
    let bt = from(&out, "#0 ");
    assert!(bt.contains("main () at tests/guests/basics.rs:"), "{out}");
    assert!(bt.contains("nabla: the guest's symbols are already loaded"), "{out}");
    // Detached, the guest sleeps on and exits normally.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = guest.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the guest still runs 10 s after gdb detached");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_std_guest_stops_in_its_main() {
    if !have_gdb() {
        return;
    }
    // Built from its own workspace (tests/std) by scripts/test.sh.
    let std_hello = workspace_bin("std-hello");
    let out =
        gdb_run(&["break std-hello.rs:main", "run", "bt", "next"], &[std_hello.to_str().unwrap()]);
    let bt = from(&out, "#0 ");
    assert!(bt.starts_with("#0  main () at src/bin/std-hello.rs:7"), "{out}");
    assert!(bt.contains("std::rt::lang_start"), "{out}");
    // `next` runs line 7 (its output shows) and stops at line 8.
    let stepped = from(bt, "Hello from std!");
    assert!(stepped.lines().any(|l| l.starts_with("8\t")), "{out}");
}
