//! std guests (libos-std) at run time: panics, the console, the
//! environment, exit statuses, random numbers, error messages, and what a
//! guest cannot do (processes, signals, name resolution), each a clean
//! error; and the filter, which is the one a libos guest with the same
//! devices gets; and crates from crates.io, unmodified. The guests are tests/std's (`std-*`), built by
//! `nabla_build_all` (scripts/deps.sh) into target/release and, with
//! `panic = "abort"`, target/abort.

mod support;

#[path = "../std/src/churn.rs"]
mod churn;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use support::{Outcome, SIGSYS, TempDir, fat_tool, profile_dir, run, workspace_bin};

/// A std guest of tests/std built with the `abort` profile.
fn abort_bin(name: &str) -> PathBuf {
    let path = profile_dir().parent().unwrap().join("abort").join(name);
    assert!(
        path.exists(),
        "{} does not exist: build tests/std with `--profile abort` (nabla_build_all does)",
        path.display()
    );
    path
}

/// Runs std guest `name` (target/release) with tender options `opts`
/// and guest arguments `args`.
fn guest(name: &str, opts: &[&str], args: &[&str]) -> Outcome {
    let bin = workspace_bin(name);
    let mut all: Vec<&std::ffi::OsStr> = opts.iter().map(|o| o.as_ref()).collect();
    all.push(bin.as_os_str());
    all.extend(args.iter().map(std::ffi::OsStr::new));
    run(&all)
}

/// The lines of `out` that start with `prefix`.
fn line<'a>(out: &'a Outcome, prefix: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}: {out:#?}"))
}

#[test]
fn catch_unwind_catches_and_runs_the_destructors() {
    let out = guest("std-panic", &[], &["catch"]);
    out.assert_ok();
    assert!(
        out.stdout.ends_with(
            "drop innermost\ndrop frame\ndrop frame\ndrop frame\ncaught: deep panic at level 0\n"
        ),
        "{out:#?}"
    );
}

#[test]
fn an_uncaught_panic_prints_stds_message_and_exits_101() {
    let out = guest("std-panic", &[], &["uncaught"]);
    assert_eq!(out.code(), Some(101), "{out:#?}");
    assert!(
        out.stdout.starts_with(
            "\nthread 'main' (1) panicked at src/bin/std-panic.rs:25:9:\ndeep panic at level 0\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
        ),
        "{out:#?}"
    );
    // The unwinding runs main's destructors too, as on Linux.
    assert!(out.stdout.ends_with("drop frame\ndrop main\n"), "{out:#?}");
}

#[test]
fn with_panic_abort_a_panic_prints_and_exits_255() {
    for mode in ["uncaught", "catch"] {
        let bin = abort_bin("std-panic");
        let out = run(&[bin.as_os_str(), mode.as_ref()]);
        assert_eq!(out.code(), Some(255), "{out:#?}");
        assert!(
            out.stdout.contains("panicked at src/bin/std-panic.rs:25:9:\ndeep panic at level 0\n")
        );
        assert!(out.stdout.ends_with("libos-std: abort()\n"), "{out:#?}");
        assert!(!out.stdout.contains("drop"), "nothing unwinds: {out:#?}");
    }
}

#[test]
fn abort_and_a_panic_while_unwinding_exit_255() {
    let out = guest("std-panic", &[], &["abort"]);
    assert_eq!(out.code(), Some(255), "{out:#?}");
    assert_eq!(out.stdout, "aborting\nlibos-std: abort()\n");

    let out = guest("std-panic", &[], &["double"]);
    assert_eq!(out.code(), Some(255), "{out:#?}");
    assert!(out.stdout.contains("first panic\n"), "{out:#?}");
    assert!(out.stdout.contains("second panic, in a destructor\n"), "{out:#?}");
    assert!(out.stdout.ends_with("libos-std: abort()\n"), "{out:#?}");
}

/// `RUST_BACKTRACE=full` prints the frames' addresses (the guest cannot
/// read its own file to name them); `addr2line -e APP` names them, as the
/// docs say.
#[test]
fn backtraces_print_addresses_that_addr2line_resolves() {
    let out = guest("std-panic", &["--env", "RUST_BACKTRACE=full"], &["uncaught"]);
    assert_eq!(out.code(), Some(101), "{out:#?}");
    let addrs: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.trim_start().split_once(": ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.trim_start().strip_prefix("0x"))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(addrs.len() >= 5, "frames expected: {out:#?}");
    let resolved = std::process::Command::new("addr2line")
        .args(["-f", "-C", "-e"])
        .arg(workspace_bin("std-panic"))
        .args(addrs.iter().map(|a| format!("0x{a}")))
        .output()
        .expect("addr2line (binutils)");
    let text = String::from_utf8_lossy(&resolved.stdout);
    assert!(text.contains("std_panic::deep"), "{text}");
    assert!(text.contains("src/bin/std-panic.rs"), "{text}");
}

/// `RUST_BACKTRACE=1` names the frames, as on Linux: std's symbolizer
/// reads `/proc/self/exe`, the image file the tender maps for the guest,
/// and maps it (in place, read-only) to read its symbols and line tables.
#[test]
fn rust_backtrace_names_the_panicking_functions() {
    let out = guest("std-panic", &["--env", "RUST_BACKTRACE=1"], &["uncaught"]);
    assert_eq!(out.code(), Some(101), "{out:#?}");
    let text = &out.stdout;
    assert!(text.contains("stack backtrace:\n"), "{out:#?}");
    // The frames between the panic machinery and main, by name (as the
    // release profile's line tables name them), with their files and
    // lines, relative to the working directory `/`.
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().split_once(": ").map(|(_, name)| name))
        .collect();
    assert_eq!(names.iter().filter(|n| **n == "deep").count(), 3, "{out:#?}");
    assert!(names.contains(&"main") && names.contains(&"core::panicking::panic_fmt"), "{out:#?}");
    assert!(text.contains("/tests/std/src/bin/std-panic.rs:25:9\n"), "{out:#?}");
    assert!(text.contains("/tests/std/src/bin/std-panic.rs:27:5\n"), "{out:#?}");
    // Then the unwinding runs the destructors, as before.
    assert!(text.ends_with("drop frame\ndrop main\n"), "{out:#?}");
}

#[test]
fn stdin_is_at_end_of_file_and_stdout_is_flushed_at_exit() {
    let out = guest("std-surface", &[], &["console"]);
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "stdin: ok 0\nstdin-line: ok 0\nto stderr\nunterminated line, flushed at exit"
    );
    assert_eq!(out.stderr, "", "the guest's stderr goes to the console");

    // Even with data on the tender's stdin: the guest has no input stream.
    let mut child = std::process::Command::new(support::tender())
        .arg(workspace_bin("std-surface"))
        .arg("console")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tender runs");
    let mut stdin = child.stdin.take().unwrap();
    // The tender may have closed its standard input before this write
    // (a broken pipe): the guest does not read it either way.
    match std::io::Write::write_all(&mut stdin, b"typed by the user\n") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing stdin: {e}"),
        _ => {}
    }
    let out = support::wait(child, std::time::Duration::from_secs(30), "std-surface console");
    drop(stdin);
    out.assert_ok();
    assert!(out.stdout.starts_with("stdin: ok 0\nstdin-line: ok 0\n"), "{out:#?}");
}

#[test]
fn the_environment_is_read_set_and_removed() {
    let out = guest("std-surface", &["--env", "FOO=bar", "--env", "NABLA_REMOVE=x"], &["env"]);
    out.assert_ok();
    assert!(out.stdout.contains("var FOO=bar\n"), "{out:#?}");
    assert!(out.stdout.contains("var NABLA_SET=yes\n"), "{out:#?}");
    assert!(!out.stdout.contains("var NABLA_REMOVE"), "{out:#?}");
    assert!(out.stdout.contains("NABLA_SET=Ok(\"yes\")\nNABLA_REMOVE=Err(NotPresent)\n"));
}

#[test]
fn unmodified_crates_from_crates_io_run() {
    // serde's derive (a proc-macro built for the host), serde_json, regex;
    // rand, time, nix and ctrlc (tests/std/src/bin/std-crates.rs).
    let out = guest("std-crates", &[], &[]);
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "parsed GET /index.html host=example\nround trip equal: true\n\
         dates: 04/12/2026 15/01/2027\nbad JSON: true\n\
         rand: 4 distinct draws\ntime: local offset is UTC: Ok(true)\n\
         nix: Linux x86_64\nnix: open files 1024/1024\n\
         nix: 2 pipes under a limit of 8, then EMFILE: Too many open files\n\
         nix: raising the hard limit: Err(EPERM)\nctrlc: Ok(())\n",
        "{out:#?}"
    );
}

#[test]
fn crates_with_c_inside_run() {
    // ring, rustls on ring, SQLite and zstd (tests/std/src/bin/std-cdeps.rs).
    let out = guest("std-cdeps", &[], &[]);
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "ring: sha256(hello) starts 2cf24dba\nring: signature verifies: true\n\
         rustls: \"TLSv1_3\", server got \"ping over TLS\"\n\
         sqlite: 3.46.0 1000 rows, sum 499500, max v999, extension refused: true\n\
         zstd: 65536 bytes, compressed below a tenth: true, back the same: true\n",
        "{out:#?}"
    );
}

#[test]
fn c_code_prints_streams_and_locks_as_under_glibc() {
    // tests/std/c/clib.c inside the guest (with zlib from libz-sys) on a
    // FAT disk, and the same C file built natively against glibc, run in a
    // directory: the same lines, in the same order (stderr unbuffered
    // first, stdout as flushed, the last line written by exit).
    let dir = TempDir::new("std-clib");
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    support::fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "CLIB", img.to_str().unwrap()]);
    let disk = format!("storage={}", img.display());
    let out = guest("std-clib", &["--block", &disk], &[]);
    out.assert_ok();

    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("std/c/clib.c");
    let native = dir.path().join("clib-native");
    let cc = Command::new("cc")
        .args(["-O2", "-pthread", "-DNATIVE_MAIN", "-o"])
        .arg(&native)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(cc.success(), "cc {}: {cc}", src.display());
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let glibc = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$1\" 2>&1")
        .arg(&native)
        .arg(&work)
        .output()
        .expect("native clib");
    assert!(glibc.status.success(), "{glibc:?}");
    let glibc = String::from_utf8_lossy(&glibc.stdout);

    let zlib = line(&out, "rust: zlib ");
    assert_eq!(
        zlib,
        "rust: zlib ok: 200 lines, compressed to less than 2000 of 5600+ bytes, \
         last \"record 199: payload 24.88\"; corrupt: -1 -3 \"/bad.gz: invalid block type\"; \
         missing: true",
        "{out:#?}"
    );
    let ours: String = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("rust: zlib"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(ours, glibc, "guest (left) and glibc (right) differ");
    assert!(ours.ends_with("c: 0 failures\nrust: done\nc: buffered until exit\n"), "{ours}");
}

#[test]
fn exit_statuses_come_out_as_native() {
    let every = (0..=255).map(|n| (n, n));
    for (asked, seen) in every.chain([(256, 0), (257, 1), (-1, 255)]) {
        let out = guest("std-surface", &[], &["exit", &asked.to_string()]);
        assert_eq!(out.code(), Some(seen), "exit({asked}): {out:#?}");
        assert_eq!(out.stdout, format!("exiting with {asked}"), "flushed by exit");
    }
}

#[test]
fn hash_maps_iterate_in_a_new_order_at_every_start() {
    let orders: HashSet<String> = (0..3)
        .map(|_| {
            let out = guest("std-surface", &[], &["random"]);
            out.assert_ok();
            line(&out, "order: ").to_string()
        })
        .collect();
    // 32 keys: the same order twice by chance is vanishingly unlikely.
    assert_eq!(orders.len(), 3, "{orders:?}");
}

#[test]
fn sysconf_and_parallelism_describe_one_cpu() {
    let out = guest("std-surface", &[], &["misc"]);
    out.assert_ok();
    assert_eq!(line(&out, "sysconf: "), "sysconf: pagesize 4096 nprocs 1 openmax 1024 clk_tck 100");
    assert_eq!(line(&out, "available_parallelism: "), "available_parallelism: ok 1");
    assert_eq!(line(&out, "current_dir: "), "current_dir: ok \"/\"");
    assert_eq!(line(&out, "home_dir: "), "home_dir: None");
    // The image file, under the one name that opens it (docs/std.md).
    assert_eq!(line(&out, "current_exe: "), "current_exe: ok \"/proc/self/exe\"");
    assert_eq!(line(&out, "gethostname: "), "gethostname: 0 localhost");
    let out = guest("std-surface", &["--env", "HOSTNAME=web-1"], &["misc"]);
    assert_eq!(line(&out, "gethostname: "), "gethostname: 0 web-1");
}

#[test]
fn error_messages_are_linuxs() {
    let out = guest("std-surface", &[], &["strerror"]);
    out.assert_ok();
    let expected: String =
        (1..=133).map(|n| format!("{n}: {}\n", std::io::Error::from_raw_os_error(n))).collect();
    assert_eq!(out.stdout, expected);
}

#[test]
fn processes_cannot_be_created_and_say_so() {
    let out = guest("std-surface", &[], &["process"]);
    out.assert_ok();
    let unsupported = ": err Unsupported: Function not implemented (os error 38)";
    for op in ["spawn", "status", "exec"] {
        assert_eq!(line(&out, &format!("{op}: ")), format!("{op}{unsupported}"));
    }
    // output() opens /dev/null for stdin first, and with options the
    // pipes are made, then /dev/null opened for stderr: an error either
    // way (NotFound while the guest has no /dev/null).
    assert!(line(&out, "output: ").starts_with("output: err "), "{out:#?}");
    let with_options = line(&out, "spawn-with-options: ");
    assert!(with_options.starts_with("spawn-with-options: err "), "{out:#?}");
    assert_eq!(line(&out, "fork: "), "fork: -1 Function not implemented (os error 38)");
    assert_eq!(line(&out, "kill: "), "kill: -1 Function not implemented (os error 38)");
    assert_eq!(line(&out, "raise: "), "raise: -1 Function not implemented (os error 38)");
    assert_eq!(line(&out, "waitpid: "), "waitpid: -1 No child processes (os error 10)");
    assert_eq!(line(&out, "id: "), "id: 1");
}

#[test]
fn signal_handlers_are_recorded() {
    let out = guest("std-surface", &[], &["signals"]);
    out.assert_ok();
    assert_eq!(out.stdout, "sigaction: 0 true\nsignal: true\n");
}

#[test]
fn numeric_addresses_and_localhost_resolve_other_names_do_not() {
    let out = guest("std-surface", &[], &["net"]);
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "resolve 127.0.0.1:80: ok [127.0.0.1:80]\n\
         resolve [::1]:443: ok [[::1]:443]\n\
         resolve localhost:8080: ok [[::1]:8080, 127.0.0.1:8080]\n\
         resolve example.com:80: err Uncategorized: failed to lookup address information: \
         Name or service not known\n\
         resolve no-such-host.invalid:1: err Uncategorized: failed to lookup address \
         information: Name or service not known\n\
         resolve (host, port): ok [[::1]:7, 127.0.0.1:7]\n"
    );
}

#[test]
fn sockets_work_on_the_loopback_and_pipes_and_socket_pairs_too() {
    let out = guest("std-surface", &[], &["sockets"]);
    out.assert_ok();
    for op in ["unix-pair", "pipe"] {
        assert_eq!(line(&out, &format!("{op}: ")), format!("{op}: ok ()"));
    }
    // socket(AF_UNIX): no name space for Unix-domain sockets, a family
    // the host does not support (socket pairs are another matter).
    assert_eq!(
        line(&out, "unix-bind: "),
        "unix-bind: err Uncategorized: Address family not supported by protocol (os error 97)"
    );
    // Sockets work without a net device too, on the loopback
    // (tests/suite/std_net.rs has the guests with one): nothing listens
    // on 127.0.0.1:8080 once the listener is dropped.
    for op in ["tcp-bind", "udp-bind"] {
        assert_eq!(line(&out, &format!("{op}: ")), format!("{op}: ok ()"));
    }
    assert_eq!(
        line(&out, "tcp-connect: "),
        "tcp-connect: err ConnectionRefused: Connection refused (os error 111)"
    );
}

#[test]
fn a_forbidden_system_call_kills_a_std_guest() {
    let out = guest("std-surface", &[], &["syscall"]);
    assert_eq!(out.signal(), Some(SIGSYS), "{out:#?}");
    assert_eq!(out.stdout, "making getppid directly\n");
}

/// The filter `tender --print-seccomp` shows for `app` with `opts`.
fn filter(app: &std::path::Path, opts: &[&std::ffi::OsStr]) -> String {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--print-seccomp".as_ref()];
    args.extend_from_slice(opts);
    args.push(app.as_os_str());
    let out = run(&args);
    out.assert_ok();
    out.stdout
}

/// A 1 MiB disk file in `dir` and the `--block storage=PATH` value for it.
fn disk(dir: &TempDir) -> std::ffi::OsString {
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk).unwrap().set_len(1 << 20).unwrap();
    let mut block = std::ffi::OsString::from("storage=");
    block.push(&disk);
    block
}

#[test]
fn a_std_guest_gets_the_filter_of_a_libos_guest_with_the_same_devices() {
    assert_eq!(filter(&workspace_bin("std-hello"), &[]), filter(&workspace_bin("hello"), &[]));

    let dir = TempDir::new("std-filter");
    let block = disk(&dir);
    let opts = ["--block".as_ref(), block.as_os_str()];
    let libos = filter(&workspace_bin("guest-blk"), &opts);
    assert!(libos.contains("pread64"), "{libos}");
    assert_eq!(filter(&workspace_bin("std-storage"), &opts), libos);
}

/// With a tap too (root: a namespace of the test's own with a tap in it).
#[test]
fn a_std_guest_with_a_tap_and_a_disk_gets_the_libos_guests_filter_too() {
    let ns = support::netns::Netns::new("stdflt");
    ns.add_tap("tap0", None, None);
    let dir = TempDir::new("std-filter-net");
    let block = disk(&dir);
    let filter_in_ns = |app: PathBuf| {
        let out = support::wait(
            ns.command(support::tender())
                .arg("--print-seccomp")
                .args(["--net", "service0=tap0", "--block"])
                .arg(&block)
                .arg(app)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("ip netns exec tender"),
            std::time::Duration::from_secs(30),
            "tender --print-seccomp",
        );
        out.assert_ok();
        out.stdout
    };
    let libos = filter_in_ns(workspace_bin("guest-devices"));
    assert!(libos.contains("read(") && libos.contains("pwrite64("), "{libos}");
    assert_eq!(filter_in_ns(workspace_bin("std-devices")), libos);
}

#[test]
fn mimalloc_as_the_global_allocator_agrees_with_the_native_workout() {
    // mimalloc (tests/std/src/bin/std-mimalloc.rs) keeps its heaps in TLS,
    // initialises with mutexes and a key from inside libos's start-up,
    // aligns its mappings by unmapping heads and tails and gives pages
    // back with madvise: the workout's checksums match the same code run
    // here under the host's malloc, at the default 64 MiB.
    let out = guest("std-mimalloc", &[], &["20000"]);
    out.assert_ok();
    let native: String = churn::report(20_000).into_iter().map(|l| l + "\n").collect();
    assert_eq!(out.stdout, native, "{out:#?}");
    assert!(native.contains("dirty zeroed bytes: 0\n"), "{native}");
}

#[test]
fn jemalloc_as_the_global_allocator_agrees_with_the_native_workout() {
    // jemalloc (tests/std/src/bin/std-jemalloc.rs) initialises inside
    // libos-std's first allocation: readlink("/etc/malloc.conf") and the
    // /proc and /sys files it opens with syscall(SYS_open) are answered
    // without allocating; it reserves memory, commits it with
    // mmap(MAP_FIXED) over its own mappings and purges with madvise. The
    // workout's checksums match the same code run here, at the default
    // 64 MiB; the disk, not mounted while it initialises, works after.
    let native: String = churn::report(20_000).into_iter().map(|l| l + "\n").collect();
    let dir = TempDir::new("std-jemalloc");
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "TMP", img.to_str().unwrap()]);
    let block = format!("storage={}", img.display());
    let out = guest("std-jemalloc", &["--block", &block], &["20000"]);
    out.assert_ok();
    assert_eq!(out.stdout, native + "disk: after the allocator\n", "{out:#?}");
}

/// What Linux's `date` prints for the instant `t` in the time zone `tz`,
/// in chrono's format of tests/std/src/bin/std-crates-files.rs.
fn native_local_time(tz: &str, t: u64) -> String {
    let out = Command::new("date")
        .env("TZ", tz)
        .args(["-d", &format!("@{t}"), "+%Y-%m-%d %H:%M:%S %z"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim_end().to_string()
}

#[test]
fn image_fs_extra_dirs_and_chrono_run_on_the_disk_and_clock() {
    // tests/std/src/bin/std-crates-files.rs: a PNG through memory and the
    // FAT disk (image), a tree copied and removed (fs_extra), the user's
    // directories from HOME (dirs), local time from a POSIX TZ string and
    // from the time zone database on the guest's disk (chrono); each line
    // what the same calls give on Linux.
    let dir = TempDir::new("std-crates-files");
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    let i = img.to_str().unwrap();
    fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "TMP", i]);
    let zone = "/usr/share/zoneinfo/Europe/Paris";
    let has_tzdata = std::path::Path::new(zone).exists();
    if has_tzdata {
        for d in ["::/usr", "::/usr/share", "::/usr/share/zoneinfo", "::/usr/share/zoneinfo/Europe"]
        {
            fat_tool("mmd", &["-i", i, d]);
        }
        fat_tool("mcopy", &["-i", i, zone, &format!("::{zone}")]);
    }
    let block = format!("storage={}", img.display());
    let posix = "CET-1CEST,M3.5.0,M10.5.0/3";
    let tz = format!("TZ={posix}");
    let out = guest(
        "std-crates-files",
        &["--block", &block, "--env", "HOME=/home/user", "--env", &tz],
        &["/"],
    );
    out.assert_ok();
    let expected = [
        "image memory: png true round trip true".to_string(),
        "image disk: 64x48 round trip true size matches true".into(),
        "fs_extra copied bytes: 4008".into(),
        "fs_extra copy size: 4008 deep intact true".into(),
        "fs_extra tree: a/ a/b/ a/b/deep.txt c/ c/other.txt top.txt".into(),
        "fs_extra removed: true".into(),
        "dirs home: Some(\"/home/user\")".into(),
        "dirs config: Some(\"/home/user/.config\")".into(),
        "dirs cache: Some(\"/home/user/.cache\")".into(),
        "dirs data: Some(\"/home/user/.local/share\")".into(),
        format!("chrono local: {}", native_local_time(posix, 1_700_000_000)),
        format!("chrono summer: {}", native_local_time(posix, 1_690_000_000)),
        "chrono now after 2020: true".into(),
    ];
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, expected, "{out:#?}");
    assert_eq!(expected[10], "chrono local: 2023-11-14 23:13:20 +0100");
    // A zone by name: chrono reads the database on the guest's disk.
    if has_tzdata {
        let out =
            guest("std-crates-files", &["--block", &block, "--env", "TZ=Europe/Paris"], &["/"]);
        out.assert_ok();
        let local = format!("chrono local: {}", native_local_time("Europe/Paris", 1_700_000_000));
        assert!(out.stdout.contains(&format!("{local}\n")), "{out:#?}");
        assert!(out.stdout.contains("dirs home: None\n"), "no HOME, no user: {out:#?}");
    }
}

#[test]
fn an_http_client_from_crates_io_talks_to_a_server_thread_over_the_loopback() {
    // ureq (tests/std/src/bin/std-http-client.rs) against a server of the
    // same guest on 127.0.0.1: a GET, a JSON POST echoed, a 404, all on
    // the one connection ureq keeps alive, as on Linux; then a refused
    // connection once nobody listens.
    let out = guest("std-http-client", &[], &[]);
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "GET /hello: 200 OK \"hello from the server thread\"\n\
         POST /echo: 200 OK equal true\n\
         GET /missing: 404 Not Found \"no such page\"\n\
         GET /quit: 200 OK \"bye\"\n\
         server: 4 requests on 1 connection(s)\n\
         closed port: ConnectionRefused\n",
        "{out:#?}"
    );
}

#[test]
fn rustix_calls_the_c_library_instead_of_the_kernel() {
    // rustix 1.x and 0.38 make system calls with inline assembly on Linux
    // by default, which the filter would kill (SIGSYS); libos-std turns on
    // their `use-libc` feature, so the same unmodified crate reaches the
    // guest's C library: writes, clocks, files on the FAT disk, statx,
    // rename, errors, isatty, epoll over a pipe
    // (tests/std/src/bin/std-rustix.rs).
    let dir = TempDir::new("std-rustix");
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "TMP", img.to_str().unwrap()]);
    let block = format!("storage={}", img.display());
    let out = guest("std-rustix", &["--block", &block], &[]);
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "rustix write to stdout\n\
         rustix write returned 23\n\
         clock_gettime monotonic moves forward: true\n\
         fstat size: 14\n\
         statx size: Ok(14)\n\
         read back: through rustix\n\
         removed: true\n\
         open of a missing file: Err(NotFound)\n\
         isatty(stdin): false\n\
         epoll before a write: 0\n\
         epoll after a write: 1 event(s), data 7\n\
         getpid: true\n\
         0.38 open of a missing file: Err(NotFound)\n\
         rustix 0.38 write to stdout\n\
         0.38 write returned 28\n\
         0.38 isatty(stdin): false\n",
        "{out:#?}"
    );
}

#[test]
fn smol_echoes_over_the_loopback_with_its_timers_and_blocking_pool() {
    // smol, an async runtime other than tokio: async-io's reactor on
    // polling (epoll, an eventfd and a timerfd through rustix), eight
    // clients echoing 64 KiB each through one server, a 50 ms timer, a
    // refused connection, a job on the blocking pool
    // (tests/std/src/bin/std-smol.rs).
    let out = guest("std-smol", &[], &[]);
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "echo: 8 of 8 clients got their 65536 bytes back\n\
         server accepted: 8\n\
         timer of 50 ms took at least 50 ms: true\n\
         closed port: Err(ConnectionRefused)\n\
         blocking pool: 500500\n",
        "{out:#?}"
    );
}

#[test]
fn system_and_file_crates_see_the_guest_and_its_disk() {
    // sysinfo reads the synthesized /proc (meminfo, the process's stat,
    // status and statm, found by listing /proc); num_cpus and std count
    // one CPU; tempfile, walkdir and flate2 on a FAT disk; Command fails
    // as documented (tests/std/src/bin/std-system.rs).
    let dir = TempDir::new("std-system");
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "TMP", img.to_str().unwrap()]);
    let block = format!("storage={}", img.display());
    let out = guest("std-system", &["--mem", "96", "--block", &block], &[]);
    out.assert_ok();
    let expected = [
        "sysinfo total MiB: 96",
        "sysinfo available below total: true",
        "sysinfo swap: 0",
        "sysinfo process 1: \"std-system\" rss>0 true",
        "meminfo first line: MemTotal:          98304 kB",
        "/proc/self/stat fields: 52",
        "write /proc/meminfo: Err(PermissionDenied)",
        "num_cpus: 1 1",
        "available_parallelism: Ok(1)",
        "tempfile under /tmp: true",
        "tempfile reads back: temporary",
        "tempfile removed: true",
        "walkdir: / a/ a/b/ a/b/c/ a/b/c/f.txt a/d/ a/d/f.txt e/ e/f.txt",
    ];
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..expected.len()], expected, "{out:#?}");
    assert!(
        lines[expected.len()].starts_with("flate2: ")
            && lines[expected.len()].ends_with(" round trip true"),
        "{out:#?}"
    );
    assert_eq!(
        lines[expected.len() + 1..],
        ["tempdir removed: true", "Command::status: Err(Unsupported)"],
        "{out:#?}"
    );
    // Nothing of the host: its memory size is not what the guest sees.
    let host = std::fs::read_to_string("/proc/meminfo").unwrap();
    assert!(!host.starts_with("MemTotal:          98304 kB"));
}
