//! The libos runtime under the tender: output, arguments, environment,
//! logging, globals, the FPU, time, exit statuses, page sharing, and the
//! tender's command line.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{KillOnDrop, TempDir, run, tender, workspace_bin};

const BASICS: &str = env!("CARGO_BIN_EXE_guest-basics");
const DEVICES: &str = env!("CARGO_BIN_EXE_guest-devices");
const BLK: &str = env!("CARGO_BIN_EXE_guest-blk");

fn hello() -> String {
    workspace_bin("hello").display().to_string()
}

#[test]
fn hello_prints_greeting_and_each_argument() {
    let out = run(&[hello().as_str(), "one", "two words", "--not-an-option"]);
    out.assert_ok();
    assert_eq!(out.stdout, "Hello, world!\none\ntwo words\n--not-an-option\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn hello_reads_its_environment() {
    let out = run(&["--env", "NAME=nabla", "--env", "OTHER=x=y", hello().as_str()]);
    out.assert_ok();
    assert_eq!(out.stdout, "Hello, world!\nHello, nabla!\n");
}

#[test]
fn hello_reads_its_environment_from_a_file_off_the_command_line() {
    let dir = TempDir::new("envfile");
    let file = dir.path().join("env");
    std::fs::write(&file, "# who to greet\nNAME=the file = fine\n\nOTHER=x\n").unwrap();
    let f = file.to_str().unwrap();
    let h = hello();
    let out = run(&["--env-file", f, &h]);
    out.assert_ok();
    assert_eq!(out.stdout, "Hello, world!\nHello, the file = fine!\n");
    // --env overrides the file, whichever comes first.
    let out = run(&["--env", "NAME=cli", "--env-file", f, &h]);
    assert_eq!(out.stdout, "Hello, world!\nHello, cli!\n");
    std::fs::write(&file, "NAME=x\nexport NAME\n").unwrap();
    run(&["--env-file", f, &h]).assert_refused(&format!(
        "--env-file {f}: line 2: expected KEY=VALUE with a non-empty KEY"
    ));
    run(&["--env-file", "/nonexistent/env", &h])
        .assert_refused("--env-file /nonexistent/env: No such file or directory");
    std::fs::write(&file, [b'A', b'=', 0xff, b'\n']).unwrap();
    run(&["--env-file", f, &h]).assert_refused("valid UTF-8");
    std::fs::write(&file, format!("BIG={}\n", "b".repeat(1 << 20))).unwrap();
    run(&["--env-file", f, &h]).assert_refused("larger than the guest's boot region");
}

#[test]
fn hello_runs_unprivileged() {
    // Copy the binaries somewhere an unprivileged user can read them.
    let dir = TempDir::new("unpriv");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = dir.path().join("tender");
    let h = dir.path().join("hello");
    std::fs::copy(tender(), &t).unwrap();
    std::fs::copy(hello(), &h).unwrap();
    // SAFETY-free check of who we are: geteuid via /proc.
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(&t);
        c
    } else {
        Command::new(&t)
    };
    let child = cmd
        .arg(&h)
        .arg("as-nobody")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) runs the tender as nobody");
    let out = support::wait(child, Duration::from_secs(30), "unprivileged hello");
    out.assert_ok();
    assert_eq!(out.stdout, "Hello, world!\nas-nobody\n");
}

#[test]
fn guests_cannot_run_without_the_tender() {
    // PT_INTERP names a path that does not exist: exec fails with ENOENT.
    let err = Command::new(hello()).output().expect_err("a guest must not run on Linux directly");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[test]
fn log_level_is_chosen_at_launch_and_quiet_silences_libos() {
    let default = run(&[BASICS, "log"]);
    default.assert_ok();
    assert!(default.stdout.contains("ERROR guest_basics] an error record"), "{default:#?}");
    assert!(default.stdout.contains("WARN  guest_basics] a warning record"), "{default:#?}");
    assert!(!default.stdout.contains("info record"), "{default:#?}");
    assert!(!default.stdout.contains("booted"), "no banner by default: {default:#?}");

    let info = run(&["--log-level", "info", BASICS, "log"]);
    info.assert_ok();
    assert!(info.stdout.contains("libos: "), "{info:#?}");
    assert!(info.stdout.contains("booted: 64 MiB guest memory"), "{info:#?}");
    assert!(info.stdout.contains("an info record") && !info.stdout.contains("debug record"));

    let trace = run(&["--log-level", "trace", BASICS, "log"]);
    assert!(trace.stdout.contains("a trace record"), "{trace:#?}");

    let quiet = run(&["--quiet", BASICS, "log"]);
    quiet.assert_ok();
    assert_eq!(quiet.stdout, "log done\n");
}

#[test]
fn one_console_write_larger_than_4k_arrives_whole() {
    for n in [4097usize, 100_000] {
        let out = run(&[BASICS, "bigwrite", &n.to_string()]);
        out.assert_ok();
        let expected: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        assert_eq!(out.stdout.len(), n + 1);
        assert!(out.stdout == format!("{expected}\n"), "{n} bytes did not arrive intact");
    }
}

#[test]
fn initialised_data_is_correct_and_writable() {
    let out = run(&[BASICS, "globals"]);
    out.assert_ok();
    assert_eq!(out.stdout, "globals ok\n");
}

#[test]
fn mem_functions_copy_move_fill_and_compare() {
    let out = run(&[BASICS, "mem"]);
    out.assert_ok();
    assert_eq!(out.stdout, "mem ok\n");
}

#[test]
fn sse_arithmetic_is_right() {
    let out = run(&[BASICS, "fpu"]);
    out.assert_ok();
    assert_eq!(out.stdout, "fpu ok\n");
}

fn field(stdout: &str, key: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key} missing in {stdout:?}"))
        .parse()
        .unwrap()
}

#[test]
fn clocks_advance_and_sleep_sleeps_a_second() {
    let t0 = Instant::now();
    let out = run(&[BASICS, "time"]);
    let wall = t0.elapsed();
    out.assert_ok();
    let slept = field(&out.stdout, "slept_ms");
    assert!((800..=1200).contains(&slept), "sleep(1 s) took {slept} ms");
    assert!(wall >= Duration::from_millis(800), "the process lasted only {wall:?}");
    // 2017-01-01T00:00:00Z
    assert!(field(&out.stdout, "wall_secs") > 1_483_228_800, "{}", out.stdout);
    assert!(field(&out.stdout, "since_boot_ms") >= 800);
}

#[test]
fn exit_status_is_mains_return_value() {
    for code in [0, 1, 7, 254] {
        let out = run(&[BASICS, "exit", &code.to_string()]);
        assert_eq!(out.code(), Some(code), "{out:#?}");
    }
}

/// The guest's text mapping of `pid` (r-xp at 0x100000): `(file, inode,
/// shared kB, private kB)`, shared counting clean and dirty pages (a
/// snapshot just written is dirty in the page cache until written back).
fn text_sharing(pid: u32) -> (String, u64, u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut lines = smaps.lines();
    while let Some(line) = lines.next() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(fields.len() == 6 && fields[0].starts_with("00100000-") && fields[1] == "r-xp") {
            continue;
        }
        let (mut shared, mut private) = (0, 0);
        for l in lines.by_ref() {
            let kb = || l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
            match l.split(':').next().unwrap() {
                "Shared_Clean" | "Shared_Dirty" => shared += kb(),
                "Private_Clean" | "Private_Dirty" => private += kb(),
                "VmFlags" => break,
                _ => {}
            }
        }
        return (fields[5].to_string(), fields[4].parse().unwrap(), shared, private);
    }
    panic!("no r-xp mapping at 0x100000 in /proc/{pid}/smaps:\n{smaps}");
}

#[test]
fn text_pages_are_shared_between_instances() {
    let a = sleeping_basics();
    let b = sleeping_basics();
    let (file_a, inode_a, ..) = text_sharing(a.0.id());
    let image_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(BASICS).unwrap());
    for child in [&a, &b] {
        let (file, inode, shared, private) = text_sharing(child.0.id());
        // Both map the same snapshot of the image (see `snapshot` in the
        // tender), not the image itself.
        assert_eq!((&file, inode), (&file_a, inode_a));
        assert_ne!(inode, image_inode, "text mapped from the image {file}, not a snapshot");
        assert!(shared > 0, "text must be shared, got {shared} kB");
        assert_eq!(private, 0, "text must have no private pages");
    }
}

/// Starts `guest-basics sleep 2` from a copy of the image at `image`,
/// does `rewrite` to that file once the guest runs, and checks that the
/// guest finishes as if nothing happened.
fn survives_rewrite(tag: &str, rewrite: impl FnOnce(&std::path::Path)) {
    let dir = TempDir::new(tag);
    let image = dir.path().join("guest");
    std::fs::copy(BASICS, &image).unwrap();
    let mut child = Command::new(tender())
        .arg(&image)
        .args(["sleep", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "sleeping 2 s\n");
    // Nothing more comes before the guest ends: no buffered byte is lost.
    child.stdout = Some(out.into_inner());
    rewrite(&image);
    let outcome = support::wait(child, Duration::from_secs(20), tag);
    assert_eq!(outcome.code(), Some(0), "{tag}: {outcome:#?}");
    assert_eq!(outcome.stderr, "", "{tag}");
}

#[test]
fn a_running_guest_keeps_its_code_when_the_image_is_rewritten() {
    // In place, over everything after the ELF header: int3 everywhere.
    survives_rewrite("rewrite-int3", |image| {
        use std::io::{Seek, SeekFrom, Write};
        let len = std::fs::metadata(image).unwrap().len();
        let mut f = std::fs::OpenOptions::new().write(true).open(image).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(&vec![0xcc; (len - 4096) as usize]).unwrap();
        f.sync_all().unwrap();
    });
    // Another program copied over it (cp truncates and writes in place).
    survives_rewrite("rewrite-cp", |image| {
        let status = Command::new("cp").arg(hello()).arg(image).status().unwrap();
        assert!(status.success());
    });
    // Truncated to nothing.
    survives_rewrite("rewrite-truncate", |image| {
        std::fs::OpenOptions::new().write(true).truncate(true).open(image).unwrap();
    });
}

#[test]
fn the_guest_inherits_no_fd_but_its_console_and_devices() {
    let dir = TempDir::new("fds");
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    // A pipe whose write end the tender inherits, as a caller that waits
    // for EOF would leave it.
    let mut fds = [0; 2];
    // SAFETY: a valid array of two fds; no O_CLOEXEC, so the child inherits both.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let guest = holding_disk("--block", &disk);
    // SAFETY: closing the fds this test opened, which nothing else uses.
    unsafe { libc::close(fds[1]) };
    let pid = guest.0.id();
    let mut open: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    open.sort();
    let targets: Vec<String> = open
        .iter()
        .map(|fd| std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap().display().to_string())
        .collect();
    // 0-2, the disk, the signalfds (SIGTERM, SIGINT: see signals.rs) and
    // the disk's flush eventfds (request, completion).
    let signal_fds = support::signal_fds() as usize;
    assert_eq!(open.len(), 6 + signal_fds, "fds {open:?} -> {targets:?}");
    assert!(targets.contains(&disk.display().to_string()), "{targets:?}");
    let signalfds = targets.iter().filter(|t| t.as_str() == "anon_inode:[signalfd]").count();
    assert_eq!(signalfds, signal_fds, "{targets:?}");
    let eventfds = targets.iter().filter(|t| t.as_str() == "anon_inode:[eventfd]").count();
    assert_eq!(eventfds, 2, "{targets:?}");
    // The pipe's reader sees EOF while the guest still runs.
    let mut byte = [0u8; 1];
    // SAFETY: reading one byte into a local buffer from the pipe's read end.
    let n = unsafe { libc::read(fds[0], byte.as_mut_ptr().cast(), 1) };
    assert_eq!(n, 0, "the pipe's write end is still open somewhere");
    // SAFETY: as above.
    unsafe { libc::close(fds[0]) };
}

/// A guest sleeping under the tender, once it has printed its first line.
fn sleeping_basics() -> KillOnDrop {
    let mut child = Command::new(tender())
        .args([BASICS, "sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "sleeping 30 s\n");
    KillOnDrop(child)
}

/// Field `n` (1-based, as proc(5) numbers them) of `/proc/PID/stat`.
fn stat_field(pid: u32, n: usize) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name, field 2, is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(n - 3).unwrap().parse().unwrap()
}

#[test]
fn the_tender_keeps_no_memory_of_its_own_once_the_guest_runs() {
    // The guest's memory lies under 64 MiB (the default --mem); the
    // tender's heap, stack, data and relocated read-only data must hold no
    // private page any more, but for the page(s) of the stack from where
    // the command line begins (arg_start, field 48) to the stack's end.
    let guest = sleeping_basics();
    let pid = guest.0.id();
    let arg_page = stat_field(pid, 48) & !4095;
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut mapping = "";
    let mut guest_anon = 0;
    for line in smaps.lines() {
        if line.split_whitespace().next().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
            mapping = line;
            continue;
        }
        let Some(kb) = line.strip_prefix("Anonymous:") else { continue };
        let kb: u64 = kb.trim().trim_end_matches(" kB").parse().unwrap();
        let range = mapping.split_whitespace().next().unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let kept = if (start..end).contains(&arg_page) { (end - arg_page) / 1024 } else { 0 };
        if start < 64 << 20 {
            guest_anon += kb;
        } else {
            assert!(kb <= kept, "the tender's mapping {mapping} holds {kb} kB of private memory");
        }
    }
    assert!(guest_anon > 0, "the guest's own pages were not found:\n{smaps}");
}

#[test]
fn ps_shows_the_command_line_of_a_running_guest() {
    let guest = sleeping_basics();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", guest.0.id())).unwrap();
    let expected: Vec<u8> = [tender().to_str().unwrap(), BASICS, "sleep", "30"]
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"])
        .flatten()
        .copied()
        .collect();
    assert_eq!(String::from_utf8_lossy(&cmdline), String::from_utf8_lossy(&expected));
}

#[test]
fn the_guest_runs_with_no_rseq_area_registered() {
    // glibc registers one for the tender's thread; left registered, the
    // kernel writes into the tender's released memory whenever the guest
    // is preempted. PTRACE_GET_RSEQ_CONFIGURATION says what is registered.
    const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;
    let guest = sleeping_basics();
    let pid = guest.0.id() as libc::pid_t;
    // struct ptrace_rseq_configuration: pointer, size, signature, flags, pad.
    let mut config = [0u64; 4];
    // SAFETY: ptrace on the child, with a buffer of the size it is told;
    // waitpid with a status out-parameter.
    let (read, pointer) = unsafe {
        assert_eq!(libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0), 0, "PTRACE_SEIZE");
        assert_eq!(libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0), 0, "PTRACE_INTERRUPT");
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, libc::__WALL), pid);
        let read = libc::ptrace(
            PTRACE_GET_RSEQ_CONFIGURATION,
            pid,
            std::mem::size_of_val(&config),
            config.as_mut_ptr(),
        );
        libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
        (read, config[0])
    };
    // The kernel copies as much of the struct as it has (24 bytes on 6.x).
    assert!(read >= 8, "PTRACE_GET_RSEQ_CONFIGURATION returned {read}");
    assert_eq!(pointer, 0, "an rseq area is registered at {pointer:#x}");
}

#[test]
fn a_closed_stdout_becomes_dev_null_not_a_file_the_tender_opened() {
    // With fd 1 closed, the image file would otherwise be opened as fd 1
    // and become the guest's console.
    let child = Command::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" >&-"])
        .arg(tender())
        .args([BASICS, "sleep", "30"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let fd1 = format!("/proc/{}/fd/1", child.0.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    // Wait until the guest runs: its text is mapped at 0x100000.
    loop {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.0.id())).unwrap();
        if maps.contains("00100000-") {
            break;
        }
        assert!(Instant::now() < deadline, "the guest never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_link(fd1).unwrap(), std::path::Path::new("/dev/null"));
}

#[test]
fn inspect_prints_abi_segments_and_manifest() {
    let out = run(&["--inspect", &hello()]);
    out.assert_ok();
    let s = &out.stdout;
    assert!(s.contains("abi:         version 8 (this tender: 8)"), "{s}");
    assert!(s.contains("entry:       0x100000"), "{s}");
    assert!(s.contains("r-x file 0x1000+"), "{s}");
    assert!(s.contains(" rw- "), "{s}");
    assert!(s.contains("devices:     none"), "{s}");
    assert!(!s.contains("Hello"), "inspect must not run the guest");

    let out = run(&["--inspect", DEVICES]);
    out.assert_ok();
    assert!(out.stdout.contains("service0         net"), "{}", out.stdout);
    assert!(out.stdout.contains("storage          block"), "{}", out.stdout);
}

#[test]
fn print_seccomp_shows_the_filter_without_running() {
    let out = run(&["--print-seccomp", &hello(), "arg"]);
    out.assert_ok();
    let s = &out.stdout;
    assert!(s.contains("# filter for arch x86_64"), "{s}");
    for nr in [1, 228, 231, 271] {
        assert!(s.contains(&format!("if ($syscall == {nr})")), "syscall {nr} missing:\n{s}");
    }
    assert!(s.contains("action KILL_PROCESS;"), "{s}");
    assert!(!s.contains("Hello"), "--print-seccomp must not run the guest");
}

#[test]
fn declared_devices_that_are_not_attached_are_refused() {
    run(&[DEVICES])
        .assert_refused("device `service0` (net) is declared by the image but not attached");
}

#[test]
fn bad_command_lines_are_refused_with_status_1() {
    let h = hello();
    run(&["--mem", "0", &h]).assert_refused("--mem 0: guest memory must be between 4 and");
    run(&["--mem", "lots", &h]).assert_refused("--mem");
    run(&["--env", "NOEQUALS", &h]).assert_refused("--env \"NOEQUALS\": expected KEY=VALUE");
    run(&["--env", "=x", &h]).assert_refused("expected KEY=VALUE");
    run(&["--bogus", &h]).assert_refused("--bogus");
    run(&["--log-level", "loud", &h]).assert_refused("loud");
    run::<&str>(&[]).assert_refused("<APP>");
    run(&["/nonexistent/app"]).assert_refused("/nonexistent/app: No such file or directory");
    run(&["/tmp"]).assert_refused("tender: /tmp: not a regular file");
    run(&["/dev/null"]).assert_refused("tender: /dev/null: not a regular file");
    run(&["--mem", "4", "--print-seccomp", "--inspect", &h]).assert_refused("cannot be used with");
    // More than the 960 KiB boot region holds (each argument under Linux's
    // 128 KiB limit for one string).
    let big = "a".repeat(127 * 1024);
    let mut args = vec![h.as_str()];
    args.extend(std::iter::repeat_n(big.as_str(), 8));
    run(&args).assert_refused("more than the 983040 bytes of the guest's boot region");
}

#[test]
fn help_and_version() {
    let help = run(&["--help"]);
    help.assert_ok();
    for opt in
        ["--mem", "--env", "--env-file", "--log-level", "--quiet", "--inspect", "--print-seccomp"]
    {
        assert!(help.stdout.contains(opt), "--help must list {opt}");
    }
    let version = run(&["--version"]);
    version.assert_ok();
    assert!(version.stdout.starts_with("tender "), "{version:#?}");
}

#[test]
fn memory_option_sets_guest_memory() {
    let out = run(&["--mem", "16", "--log-level", "info", BASICS, "exit", "0"]);
    out.assert_ok();
    assert!(out.stdout.contains("booted: 16 MiB guest memory"), "{}", out.stdout);
    // The image plus heap, guard and stack must fit.
    run(&["--mem", "4", BASICS, "exit", "0"]).assert_ok();
}

/// The `Seccomp`, `Seccomp_filters` and `NoNewPrivs` lines of each thread
/// of `pid`.
fn threads_seccomp(pid: u32) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        out.push((field("Seccomp:"), field("Seccomp_filters:"), field("NoNewPrivs:")));
    }
    out
}

#[test]
fn a_writable_disk_gets_a_flush_thread_under_a_filter_of_its_own() {
    // Both threads filtered (mode 2), one filter each (the flush thread's
    // is not stacked on the guest's, nor the guest's on it), no new
    // privileges; a read-only disk and no disk: no thread.
    let dir = TempDir::new("flushthread");
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    for (option, threads) in [("--block", 2), ("--block-ro", 1)] {
        let guest = holding_disk(option, &disk);
        let seen = threads_seccomp(guest.0.id());
        assert_eq!(seen.len(), threads, "{option}: {seen:?}");
        for t in &seen {
            assert_eq!((t.0.as_str(), t.1.as_str(), t.2.as_str()), ("2", "1", "1"), "{option}");
        }
    }
    let guest = sleeping_basics();
    assert_eq!(threads_seccomp(guest.0.id()).len(), 1);
}

/// The block guest holding its disk `disk` (`option`: `--block` or
/// `--block-ro`), once it has said so.
fn holding_disk(option: &str, disk: &std::path::Path) -> KillOnDrop {
    let mut guest = KillOnDrop(
        Command::new(tender())
            .arg(option)
            .arg(format!("storage={}", disk.display()))
            .args([BLK, "hold"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(guest.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "holding storage\n");
    guest
}
