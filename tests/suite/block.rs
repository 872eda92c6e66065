//! Block devices: `--block NAME=PATH`, `--block-ro`, `--block-sector-size`,
//! every refusal, the lock that keeps a disk to one writer, the filter with disks attached, and 63 disks at once.
//!
//! No privileges needed: each test makes its disk files (sparse where
//! large) in a temporary directory of its own. The disk's fd is read from
//! `--print-seccomp` for the same invocation (`block read on disk fd N
//! (storage)`): the tender opens the image and its snapshot, closes the
//! image, and then opens the disks, so the first disk is fd 3 when the
//! tender inherits only fds 0-2.

mod support;

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{KillOnDrop, SIGSYS, TempDir, run};

const BLK: &str = env!("CARGO_BIN_EXE_guest-blk");
const SYSCALL: &str = env!("CARGO_BIN_EXE_guest-blk-syscall");
const BLK63: &str = env!("CARGO_BIN_EXE_guest-blk63");
const DEVICES: &str = env!("CARGO_BIN_EXE_guest-devices");

const MIB: u64 = 1 << 20;
/// `abi::MAX_BLOCK_TRANSFER`.
const MAX_TRANSFER: u64 = MIB;

/// A disk file of `size` bytes, zero (sparse), in `dir`.
fn disk(dir: &TempDir, name: &str, size: u64) -> PathBuf {
    let path = dir.path().join(name);
    File::create(&path).unwrap().set_len(size).unwrap();
    path
}

fn size_of(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// `--block storage=PATH` as one argument pair.
fn storage(path: &Path) -> String {
    format!("storage={}", path.display())
}

/// The pattern `guest-blk` writes to sector `sector`.
fn pattern(sector: u64, ss: usize) -> Vec<u8> {
    let mut buf: Vec<u8> = (0..ss).map(|j| ((sector * 7 + j as u64) % 251) as u8).collect();
    buf[..8].copy_from_slice(&sector.to_le_bytes());
    buf
}

/// Runs `guest-blk check` on a disk of `size` bytes at sector size `ss` and
/// checks the file from the host afterwards.
fn check_disk(size: u64, ss: u64) {
    let dir = TempDir::new("blk-check");
    let path = disk(&dir, "disk.img", size);
    let arg = storage(&path);
    let sector_size = format!("storage={ss}");
    let out = run(&["--block", &arg, "--block-sector-size", &sector_size, BLK, "check"]);
    out.assert_ok();
    let n = size / ss;
    let written = n.div_ceil(10) + u64::from(!(n - 1).is_multiple_of(10));
    assert_eq!(
        out.stdout,
        format!(
            "check: {n} sectors of {ss} bytes, {written} written and read back, 7 bad requests \
             refused: ok\n"
        )
    );
    assert_eq!(size_of(&path), size, "the disk must not change size");
    let bytes = fs::read(&path).unwrap();
    let ss = ss as usize;
    for s in (0..n).step_by(10).chain([n - 1]) {
        let at = s as usize * ss;
        assert_eq!(&bytes[at..at + ss], pattern(s, ss), "sector {s} in the file");
    }
    // The sector after a written one is untouched.
    if n > 2 {
        assert!(bytes[ss..2 * ss].iter().all(|&b| b == 0));
    }
}

#[test]
fn every_tenth_sector_and_the_last_are_written_and_read_back() {
    check_disk(10 * MIB, 512);
}

#[test]
fn the_same_at_sector_size_4096() {
    check_disk(10 * MIB, 4096);
}

#[test]
fn disks_that_are_not_a_whole_number_of_mebibytes_work() {
    // 1001 sectors: below one maximum transfer, and an odd count.
    check_disk(1001 * 512, 512);
    check_disk(3 * MIB + 5 * 4096, 4096);
    // A single sector.
    check_disk(512, 512);
    check_disk(65536, 65536);
}

#[test]
fn multi_sector_transfers_reach_exactly_the_end() {
    for (size, ss) in [(7 * MIB + 5 * 512, 512), (7 * MIB + 3 * 4096, 4096)] {
        let dir = TempDir::new("blk-multi");
        let path = disk(&dir, "disk.img", size);
        let sector_size = format!("storage={ss}");
        let out = run(&[
            "--mem",
            "64",
            "--block",
            &storage(&path),
            "--block-sector-size",
            &sector_size,
            BLK,
            "multi",
        ]);
        out.assert_ok();
        let count = 3 * MIB / ss + 3;
        assert_eq!(
            out.stdout,
            format!("multi: 7 transfers of {count} sectors of {ss} bytes: ok\n")
        );
        assert_eq!(size_of(&path), size);
    }
}

#[test]
fn the_guest_sees_capacity_sector_size_and_mode() {
    let dir = TempDir::new("blk-info");
    let path = disk(&dir, "disk.img", 4 * MIB);
    let out = run(&["--block", &storage(&path), BLK, "info"]);
    out.assert_ok();
    assert_eq!(out.stdout, "storage: 8192 sectors of 512 bytes, read-write\n");
    let out =
        run(&["--block-ro", &storage(&path), "--block-sector-size", "storage=4096", BLK, "info"]);
    out.assert_ok();
    assert_eq!(out.stdout, "storage: 1024 sectors of 4096 bytes, read-only\n");
}

#[test]
fn a_read_only_disk_is_read_and_never_written() {
    let dir = TempDir::new("blk-ro");
    let path = disk(&dir, "disk.img", MIB);
    fs::write(&path, vec![0xa5; MIB as usize]).unwrap();
    let out = run(&["--block-ro", &storage(&path), BLK, "ro"]);
    out.assert_ok();
    assert_eq!(out.stdout, "ro: read-only true, reads ok, write refused: ok\n");
    assert!(fs::read(&path).unwrap().iter().all(|&b| b == 0xa5));
    // A file the tender may only read can still be attached read-only.
    let mut perms = fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    fs::set_permissions(&path, perms).unwrap();
    run(&["--block-ro", &storage(&path), BLK, "ro"]).assert_ok();
}

#[test]
fn bad_disks_are_refused_with_the_reason() {
    let dir = TempDir::new("blk-refuse");
    let missing = dir.path().join("missing.img");
    let p = missing.display();
    run(&["--block", &storage(&missing), BLK]).assert_refused(&format!(
        "tender: --block storage={p}: cannot open {p} read-write: No such file or directory"
    ));
    run(&["--block-ro", &storage(&missing), BLK]).assert_refused(&format!(
        "tender: --block-ro storage={p}: cannot open {p}: No such file or directory"
    ));
    let d = dir.path().display();
    run(&["--block", &storage(dir.path()), BLK]).assert_refused(&format!(
        "tender: --block storage={d}: {d} is a directory, not a disk file\n"
    ));
    run(&["--block", "storage=/dev/null", BLK]).assert_refused(
        "tender: --block storage=/dev/null: /dev/null is not a regular file (a character device)\n",
    );
    for (size, ss, message) in [
        (0, 512, "file is smaller than one sector: 0 bytes, sector size 512\n"),
        (100, 512, "file is smaller than one sector: 100 bytes, sector size 512\n"),
        (2048, 4096, "file is smaller than one sector: 2048 bytes, sector size 4096\n"),
        (
            1000,
            512,
            "size 1000 is not a multiple of the sector size 512: make it 512 or 1024 bytes \
             (truncate -s), or use another --block-sector-size\n",
        ),
        (
            MIB + 512,
            4096,
            "size 1049088 is not a multiple of the sector size 4096: make it 1048576 or 1052672 \
             bytes (truncate -s), or use another --block-sector-size\n",
        ),
    ] {
        let path = disk(&dir, &format!("{size}.img"), size);
        let arg = storage(&path);
        let sector_size = format!("storage={ss}");
        run(&["--block", &arg, "--block-sector-size", &sector_size, BLK])
            .assert_refused(&format!("tender: --block {arg}: {message}"));
        assert_eq!(size_of(&path), size, "a refused disk is left as it was");
    }
}

#[test]
fn a_disk_has_one_writer_or_any_number_of_readers() {
    let dir = TempDir::new("blk-lock");
    let path = disk(&dir, "disk.img", MIB);
    let arg = storage(&path);
    let hold = |option: &str| {
        let mut c = Command::new(support::tender())
            .args([option, &arg, BLK, "hold"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        support::netns::read_until(&mut c, "holding storage", Duration::from_secs(20));
        KillOnDrop(c)
    };
    let in_use = |option: &str, held: &str| {
        format!(
            "tender: {option} {arg}: {} is in use by another process ({held}): a disk has one \
             writer or any number of readers\n",
            path.display()
        )
    };
    // A writer excludes another writer and any reader.
    let writer = hold("--block");
    run(&["--block", &arg, BLK, "info"]).assert_refused(&in_use("--block", "it is attached"));
    run(&["--block-ro", &arg, BLK, "info"])
        .assert_refused(&in_use("--block-ro", "it is attached read-write"));
    drop(writer);
    // Readers share, and exclude a writer.
    let reader = hold("--block-ro");
    run(&["--block-ro", &arg, BLK, "ro"]).assert_ok();
    run(&["--block", &arg, BLK, "info"]).assert_refused(&in_use("--block", "it is attached"));
    drop(reader);
    // Once the holder is gone (killed, so the lock went with its fd), the
    // disk is free again, and the refused starts wrote nothing.
    run(&["--block", &arg, BLK, "check"]).assert_ok();
}

#[test]
fn bad_sector_sizes_and_options_are_refused() {
    let dir = TempDir::new("blk-options");
    let path = disk(&dir, "disk.img", MIB);
    let arg = storage(&path);
    for bad in ["1000", "256", "131072", "0", "4k", "-512"] {
        run(&["--block", &arg, "--block-sector-size", &format!("storage={bad}"), BLK])
            .assert_refused(&format!(
                "tender: --block-sector-size storage={bad}: the sector size must be a power of \
                 two from 512 to 65536 bytes\n"
            ));
    }
    run(&["--block", &arg, "--block-sector-size", "disk=4096", BLK])
        .assert_refused("tender: --block-sector-size disk=4096: device `disk` has no --block\n");
    run(&["--block", &arg, "--block-sector-size", "storage", BLK])
        .assert_refused("tender: --block-sector-size \"storage\": expected NAME=BYTES\n");
    run(&["--block", "storage", BLK])
        .assert_refused("tender: --block \"storage\": expected NAME=PATH\n");
    let other = disk(&dir, "other.img", MIB);
    run(&["--block", &arg, "--block", &storage(&other), BLK]).assert_refused(&format!(
        "tender: device `storage` is attached twice: --block {arg} and --block {}\n",
        storage(&other)
    ));
    run(&["--block", &arg, "--block-ro", &arg, BLK]).assert_refused(&format!(
        "tender: device `storage` is attached twice: --block {arg} and --block-ro {arg}\n"
    ));
}

#[test]
fn options_for_the_wrong_devices_are_refused() {
    let dir = TempDir::new("blk-names");
    let path = disk(&dir, "disk.img", MIB);
    let p = path.display();
    run(&[BLK]).assert_refused(
        "tender: device `storage` (block) is declared by the image but not attached: use --block \
         storage=PATH\n",
    );
    run(&["--block", &storage(&path), "--block", &format!("disk={p}"), BLK]).assert_refused(
        &format!(
            "tender: --block disk={p}: device `disk` is not declared by the image (it declares: \
             storage (block))\n"
        ),
    );
    let hello = support::workspace_bin("hello");
    run(&["--block", &storage(&path), hello.to_str().unwrap()]).assert_refused(&format!(
        "tender: --block storage={p}: device `storage` is not declared by the image (it declares \
         no devices)\n"
    ));
    run(&["--block", &format!("service0={p}"), DEVICES]).assert_refused(&format!(
        "tender: --block service0={p}: device `service0` is a net device, not a block device\n"
    ));
    // One file for two devices, even by another path.
    let link = dir.path().join("link.img");
    fs::hard_link(&path, &link).unwrap();
    let mut args = vec!["--block".to_string(), format!("d0={p}")];
    args.extend(["--block".to_string(), format!("d1={}", link.display())]);
    args.push(BLK63.to_string());
    run(&args).assert_refused(&format!(
        "tender: --block d1={}: device `d1` is given the same file as device `d0`\n",
        link.display()
    ));
}

/// Sets this child's `RLIMIT_FSIZE` to `soft` and `hard` before exec.
#[allow(unsafe_code)]
fn with_file_size_limit(cmd: &mut Command, soft: u64, hard: u64) {
    // SAFETY: in the forked child, before exec: one system call with a
    // local rlimit, no allocation or lock.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn a_disk_above_the_file_size_limit_is_refused_read_write() {
    let dir = TempDir::new("blk-fsize");
    let path = disk(&dir, "disk.img", 2 * MIB);
    let run_limited = |option: &str| {
        let mut c = Command::new(support::tender());
        c.args([option, &storage(&path), BLK, "info"]);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        with_file_size_limit(&mut c, MIB, MIB);
        support::wait(c.spawn().unwrap(), Duration::from_secs(30), "tender with ulimit -f")
    };
    run_limited("--block").assert_refused(&format!(
        "tender: --block {}: the disk's capacity of 2097152 bytes is above this process's file \
         size limit of 1048576 bytes (ulimit -f): raise the limit or attach the disk with \
         --block-ro\n",
        storage(&path)
    ));
    let out = run_limited("--block-ro");
    out.assert_ok();
    assert_eq!(out.stdout, "storage: 4096 sectors of 512 bytes, read-only\n");
}

/// The disk fd of device `name` in `--print-seccomp` output.
fn disk_fd(print_seccomp: &str, name: &str) -> u64 {
    let marker = "block read on disk fd ";
    let line = print_seccomp
        .lines()
        .find(|l| l.contains(marker) && l.contains(&format!("({name})")))
        .unwrap_or_else(|| panic!("no disk rule for {name} in:\n{print_seccomp}"));
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    rest.split_whitespace().next().unwrap().parse().expect("fd number")
}

#[test]
fn print_seccomp_shows_the_rules_for_the_disk_fd() {
    let dir = TempDir::new("blk-pfc");
    let path = disk(&dir, "disk.img", 10 * MIB);
    let out = run(&["--block", &storage(&path), "--print-seccomp", SYSCALL]);
    out.assert_ok();
    let s = &out.stdout;
    assert_eq!(disk_fd(s, "storage"), 3, "fd 3 is the disk:\n{s}");
    assert!(
        s.starts_with(
            "# nabla policy: 18 rules, 8 distinct system calls (clock_gettime, exit_group, \
             fdatasync, ppoll, pread64, pwrite64, read, write)"
        ),
        "{s}"
    );
    for rule in [
        "allow pread64(arg0 == 3, arg2 & 0xfffffffffffffdff == 0, arg3 <= 10485248)",
        "allow pread64(arg0 == 3, arg2 & 0xffffffffffff81ff == 0, arg3 <= 10452992)",
        "allow pread64(arg0 == 3, arg2 == 32768, arg3 <= 10452992)",
        "allow pread64(arg0 == 3, arg2 & 0xfffffffffff001ff == 0, arg3 <= 9437184)",
        "allow pread64(arg0 == 3, arg2 == 1048576, arg3 <= 9437184)",
        "allow pwrite64(arg0 == 3, arg2 == 1048576, arg3 <= 9437184)",
        "allow fdatasync(arg0 == 3)",
        "block write on disk fd 3 (storage): 1048576 bytes, ending inside 10485760 bytes",
        "block flush on disk fd 3 (storage): durable writes",
        "block flush request, on flush request fd",
        "block flush done, on flush completion fd",
        "# flush thread of disk fd 3 (storage), its own filter: allow read(arg0 == ",
        "# and RLIMIT_FSIZE 10485760 bytes (the largest writable disk)",
        // libseccomp's own text.
        "if ($a2.lo32 & 0xfff001ff == 0)",
        "if ($a3.lo32 > 9437184)",
    ] {
        assert!(s.contains(rule), "{rule:?} missing:\n{s}");
    }
    assert!(!s.contains("returned"), "--print-seccomp must not run the guest");

    // Read-only: reads only, no flush, no file size limit.
    let out = run(&["--block-ro", &storage(&path), "--print-seccomp", SYSCALL]);
    out.assert_ok();
    let s = &out.stdout;
    assert!(
        s.starts_with(
            "# nabla policy: 10 rules, 5 distinct system calls (clock_gettime, exit_group, ppoll, \
             pread64, write)"
        ),
        "{s}"
    );
    assert!(
        !s.contains("pwrite64")
            && !s.contains("fdatasync")
            && !s.contains("RLIMIT")
            && !s.contains("flush"),
        "{s}"
    );
}

/// The flush eventfds in `--print-seccomp` output: the request one and
/// the completion one, each as the guest's filter and the thread's name it.
fn flush_fds(print_seccomp: &str) -> (u64, u64) {
    let after = |marker: &str| -> u64 {
        let line = print_seccomp
            .lines()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no {marker:?} in:\n{print_seccomp}"));
        let rest = &line[line.find(marker).unwrap() + marker.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().expect("fd number")
    };
    let (request, done) = (after("on flush request fd "), after("on flush completion fd "));
    assert_eq!(request, after("its own filter: allow read(arg0 == "));
    assert_eq!(done, after("), write(arg0 == "));
    (request, done)
}

#[test]
fn the_guest_reaches_its_flush_eventfds_only_their_way() {
    // The guest may write a request to the request eventfd and read the
    // completion eventfd; reading the one, writing the other, and any
    // other call on them kill it.
    let dir = TempDir::new("blk-channel");
    let path = disk(&dir, "disk.img", MIB);
    let pfc = run(&["--block", &storage(&path), "--print-seccomp", SYSCALL]).stdout;
    let (request, done) = flush_fds(&pfc);
    assert_eq!(done, request + 1);
    let (q, c) = (request.to_string(), done.to_string());
    // A read with nothing to read: EAGAIN (non-blocking), not a kill.
    let out = call(&[], &path, &["0", &c, "buf", "8"]);
    out.assert_ok();
    assert_eq!(out.stdout, "returned -11\n", "{out:#?}");
    let out = call(&[], &path, &["1", &q, "buf", "8"]);
    out.assert_ok();
    assert_eq!(out.stdout, "returned 8\n", "{out:#?}");
    for args in [
        ["0", &q, "buf", "8"].as_slice(),
        &["1", &c, "buf", "8"],
        &["75", &q],
        &["75", &c],
        &["17", &q, "buf", "8", "0"],
        &["18", &c, "buf", "8", "0"],
        &["20", &q, "buf", "1"],
    ] {
        let out = call(&[], &path, args);
        assert_eq!(out.signal(), Some(SIGSYS), "{args:?}: {out:#?}");
    }
}

#[test]
fn a_flush_through_the_channel_is_answered_by_the_thread() {
    // guest-blk `asyncflush`: writes, starts a flush, keeps working, waits
    // for the answer; the data is in the file.
    let dir = TempDir::new("blk-asyncflush");
    let path = disk(&dir, "disk.img", MIB);
    let out = run(&["--block", &storage(&path), BLK, "asyncflush"]);
    out.assert_ok();
    assert!(out.stdout.contains("asyncflush: 16 flushes answered, ok"), "{out:#?}");
    let bytes = fs::read(&path).unwrap();
    for i in 0..16u64 {
        assert_eq!(
            bytes[(i * 512) as usize..(i * 512 + 512) as usize],
            pattern(i, 512)[..],
            "sector {i}"
        );
    }
}

/// Runs `guest-blk-syscall` with the disk `path` attached (`extra`
/// options first) and the call `args`.
fn call(extra: &[&str], path: &Path, args: &[&str]) -> support::Outcome {
    let mut argv: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    if !extra.contains(&"--block-ro") {
        argv.push("--block".into());
    }
    argv.push(storage(path));
    argv.push(SYSCALL.into());
    argv.extend(args.iter().map(|s| s.to_string()));
    run(&argv)
}

#[test]
fn the_filter_bounds_transfers_inside_the_disk() {
    let dir = TempDir::new("blk-filter");
    let cap = 2 * MIB;
    let path = disk(&dir, "disk.img", cap);
    let fd =
        disk_fd(&run(&["--block", &storage(&path), "--print-seccomp", SYSCALL]).stdout, "storage");
    let f = fd.to_string();
    let n = |v: u64| v.to_string();

    let allowed: Vec<(Vec<String>, &str)> = vec![
        (vec![n(17), f.clone(), "buf".into(), n(512), n(0)], "512"),
        // 8 sectors in the middle tier: ending at least 32 KiB before the end.
        (vec![n(17), f.clone(), "buf".into(), n(4096), n(cap - 32768)], "4096"),
        (vec![n(18), f.clone(), "buf".into(), n(512), n(cap - 512)], "512"),
        (vec![n(18), f.clone(), "buf".into(), n(32768), n(cap - 32768)], "32768"),
        // One maximum transfer from the guest's heap, ending at the capacity.
        (vec![n(18), f.clone(), "buf".into(), n(MAX_TRANSFER), n(cap - MAX_TRANSFER)], "1048576"),
        (
            vec![n(18), f.clone(), "buf".into(), n(MAX_TRANSFER - 512), n(cap - MAX_TRANSFER)],
            "1048064",
        ),
        // A zero count does nothing.
        (vec![n(17), f.clone(), "buf".into(), n(0), n(0)], "0"),
        // The offset's alignment is not checked (it still ends inside).
        (vec![n(17), f.clone(), "buf".into(), n(512), n(1)], "512"),
        (vec![n(75), f.clone()], "0"),
    ];
    for (args, ret) in &allowed {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = call(&[], &path, &args);
        out.assert_ok();
        assert_eq!(out.stdout, format!("returned {ret}\n"), "{args:?}");
    }

    let killed: Vec<(Vec<String>, &str)> = vec![
        (vec![n(18), f.clone(), "buf".into(), n(512), n(cap)], "pwrite64 at the capacity"),
        (vec![n(18), f.clone(), "buf".into(), n(1024), n(cap - 512)], "pwrite64 across the end"),
        (vec![n(18), f.clone(), "buf".into(), n(4096), n(cap - 2048)], "4 KiB across the end"),
        // Inside the disk, but the tiers allow only single sectors in the
        // last 32 KiB (libos splits such a request).
        (vec![n(17), f.clone(), "buf".into(), n(4096), n(cap - 4096)], "8 sectors at the end"),
        (
            vec![n(18), f.clone(), "buf".into(), n(MAX_TRANSFER), n(cap - MAX_TRANSFER + 512)],
            "1 MiB across the end",
        ),
        (
            vec![n(18), f.clone(), "buf".into(), n(2 * MAX_TRANSFER), n(0)],
            "more than a maximum transfer",
        ),
        (
            vec![n(18), f.clone(), "buf".into(), n(MAX_TRANSFER + 512), n(0)],
            "a sector more than the maximum",
        ),
        (vec![n(18), f.clone(), "buf".into(), n(512), n(1 << 63)], "a huge offset"),
        (vec![n(18), f.clone(), "buf".into(), n(512), n(u64::MAX - 511)], "a negative offset"),
        (
            vec![n(18), f.clone(), "buf".into(), n(512), n((1 << 32) + 512)],
            "an offset with a high half",
        ),
        (vec![n(17), f.clone(), "buf".into(), n(512), n(cap)], "pread64 at the capacity"),
        (vec![n(17), f.clone(), "buf".into(), n(100), n(0)], "a misaligned length"),
        (vec![n(17), f.clone(), "buf".into(), n(513), n(0)], "a sector and a byte"),
        (vec![n(17), f.clone(), "buf".into(), n(4095), n(0)], "a byte short of 8 sectors"),
        (
            vec![n(17), f.clone(), "buf".into(), n((1 << 32) + 512), n(0)],
            "a count with a high half",
        ),
        (vec![n(17), n(fd + 1), "buf".into(), n(512), n(0)], "pread64 on the fd above"),
        (vec![n(17), n(fd - 1), "buf".into(), n(512), n(0)], "pread64 on the fd below"),
        (vec![n(17), n(0), "buf".into(), n(512), n(0)], "pread64 on stdin"),
        (vec![n(18), n(1), "msg".into(), n(512), n(0)], "pwrite64 on the console"),
        (vec![n(18), n(fd + 1), "buf".into(), n(512), n(0)], "pwrite64 on the fd above"),
        (
            vec![n(18), format!("{:#x}", (1u64 << 32) | fd), "buf".into(), n(512), n(0)],
            "the fd with a high half",
        ),
        (vec![n(75), n(1)], "fdatasync on the console"),
        (vec![n(75), n(fd + 1)], "fdatasync on the fd above"),
        (vec![n(74), f.clone()], "fsync"),
        (vec![n(0), f.clone(), "buf".into(), n(512)], "read"),
        (vec![n(1), f.clone(), "buf".into(), n(512)], "write"),
        (vec![n(8), f.clone(), n(0), n(2)], "lseek"),
        (vec![n(77), f.clone(), n(4 * MIB)], "ftruncate"),
        (vec![n(285), f.clone(), n(0), n(0), n(4 * MIB)], "fallocate"),
        (vec![n(295), f.clone(), "buf".into(), n(1), n(0)], "preadv"),
        (vec![n(296), f.clone(), "buf".into(), n(1), n(0)], "pwritev"),
        (vec![n(328), f.clone(), "buf".into(), n(1), n(0), n(0)], "pwritev2"),
    ];
    for (args, what) in &killed {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = call(&[], &path, &args);
        assert_eq!(out.signal(), Some(SIGSYS), "{what} ({args:?}) must be killed: {out:#?}");
        assert_eq!(size_of(&path), cap, "{what}: the disk must not grow");
    }
}

#[test]
fn a_read_only_disk_allows_no_write_and_no_flush() {
    let dir = TempDir::new("blk-ro-filter");
    let path = disk(&dir, "disk.img", MIB);
    let out = call(&["--block-ro"], &path, &["17", "3", "buf", "512", "0"]);
    out.assert_ok();
    assert_eq!(out.stdout, "returned 512\n");
    for args in [["18", "3", "buf", "512", "0"].as_slice(), &["75", "3"]] {
        let out = call(&["--block-ro"], &path, args);
        assert_eq!(out.signal(), Some(SIGSYS), "{args:?}: {out:#?}");
    }
}

#[test]
fn offsets_above_4_gib_are_compared_on_all_64_bits() {
    // 5 GiB and a sector, sparse: the bound has a high half of 1 and a low
    // half below most offsets under 4 GiB.
    let dir = TempDir::new("blk-big");
    let cap = (5 << 30) + 512;
    let path = disk(&dir, "disk.img", cap);
    let ok = |offset: u64| {
        let out = call(&[], &path, &["18", "3", "buf", "512", &offset.to_string()]);
        out.assert_ok();
        assert_eq!(out.stdout, "returned 512\n", "at {offset:#x}");
    };
    ok(0xffff_fe00);
    ok((4 << 30) + 512);
    ok(cap - 512);
    // At the capacity (same high half, low half just above the bound's),
    // beyond it, and with a higher high half but a low half below the bound's.
    for offset in [cap, cap + 512, 6 << 30, (2 << 32) + 512] {
        let out = call(&[], &path, &["18", "3", "buf", "512", &offset.to_string()]);
        assert_eq!(out.signal(), Some(SIGSYS), "at {offset:#x}: {out:#?}");
    }
    assert_eq!(size_of(&path), cap);
}

/// The `Max file size` soft limit of process `pid`, once it shows `want`
/// or after 5 s.
fn file_size_limit_of(pid: u32, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
        let line =
            limits.lines().find(|l| l.starts_with("Max file size")).unwrap_or("").to_string();
        let soft = line.split_whitespace().nth(3).unwrap_or("").to_string();
        if soft == want || Instant::now() > deadline {
            return soft;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_file_size_limit_is_the_largest_writable_disk_unless_the_console_is_a_file() {
    let dir = TempDir::new("blk-rlimit");
    let path = disk(&dir, "disk.img", 3 * MIB);
    // The hard limit this test inherited, which the tender may not raise.
    let limits = fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max file size")).unwrap();
    let hard_text = line.split_whitespace().nth(4).unwrap().to_string();
    let hard = hard_text.parse().unwrap_or(libc::RLIM_INFINITY);
    // ppoll(NULL, 0, NULL, NULL, 8): waits forever, a live guest to look at.
    let spawn = |stdout: Stdio, soft: u64| {
        let mut c = Command::new(support::tender());
        c.args(["--block", &storage(&path), SYSCALL, "271", "0", "0", "0", "0", "8"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null());
        with_file_size_limit(&mut c, soft, hard);
        KillOnDrop(c.spawn().unwrap())
    };
    for soft in [hard, MIB] {
        let guest = spawn(Stdio::piped(), soft);
        assert_eq!(file_size_limit_of(guest.0.id(), "3145728"), "3145728", "from {soft}");
    }
    // The console a file: the limit is left as inherited, unless the soft
    // one is below the disk (then it is raised to the hard one).
    for soft in [hard, MIB] {
        let log = File::create(dir.path().join("console.log")).unwrap();
        let guest = spawn(Stdio::from(log), soft);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(file_size_limit_of(guest.0.id(), &hard_text), hard_text, "from {soft}");
    }
}

#[test]
fn sixty_three_disks_are_attached_at_once() {
    let dir = TempDir::new("blk-63");
    // Each a little above 1 MiB, sparse: three tiers, eleven rules each
    // and two for its flush channel, the largest filter 63 devices can
    // make; and 63 flush threads.
    let paths: Vec<PathBuf> =
        (0..63u64).map(|i| disk(&dir, &format!("d{i}.img"), MIB + 512 * (i + 1))).collect();
    let mut args: Vec<String> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        args.push("--block".into());
        args.push(format!("d{i}={}", p.display()));
    }
    let mut pfc = args.clone();
    pfc.extend(["--print-seccomp".to_string(), BLK63.to_string()]);
    let out = run(&pfc);
    out.assert_ok();
    assert!(
        out.stdout.starts_with("# nabla policy: 824 rules, 8 distinct system calls"),
        "{}",
        out.stdout
    );
    // One fd each (4 to 66, unless the tender inherited more than 0-2).
    let mut fds: Vec<u64> = (0..63).map(|i| disk_fd(&out.stdout, &format!("d{i}"))).collect();
    fds.dedup();
    assert_eq!(fds.len(), 63, "{fds:?}");

    args.push(BLK63.into());
    let out = run(&args);
    out.assert_ok();
    assert_eq!(out.stdout, "63 disks: ok\n");
    for (i, p) in paths.iter().enumerate() {
        let bytes = fs::read(p).unwrap();
        assert_eq!(bytes.len() as u64, MIB + 512 * (i as u64 + 1));
        let want = vec![i as u8 + 1; 512];
        assert_eq!(&bytes[..512], want, "d{i} first sector");
        assert_eq!(&bytes[bytes.len() - 512..], want, "d{i} last sector");
        assert!(bytes[512..bytes.len() - 512].iter().all(|&b| b == 0), "d{i} middle");
    }
}
