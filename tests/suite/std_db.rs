//! Embedded databases as unmodified programs (examples/std): SQLite
//! through rusqlite (its C source bundled) and redb (pure Rust), each run
//! as a guest on a FAT disk and as its native build (the same source
//! without the `nabla` feature) in a directory of the host; their outputs
//! must be the same line for line:
//!
//! * `check`: tables, thousands of rows in transactions, a rollback,
//!   queries, close, reopen, verify (SQLite in rollback-journal and WAL
//!   mode, VACUUM; redb's compaction); the disk then passes `fsck.fat`;
//! * `crash` then `recover`: the program commits rows, starts a
//!   transaction that reaches the disk and is killed with SIGKILL (the
//!   tender, or the native process); the next run finds what it left
//!   (SQLite's hot journal, or its WAL and shared memory) and gets back
//!   exactly the committed rows.
//!
//! The guests are built by `nabla_build_all`; the native peers are built
//! here once per run (`cargo build --no-default-features` into
//! target/native, as `nabla_build_std_native` does).

mod support;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{KillOnDrop, Outcome, TempDir, fat_tool, profile_dir, tender, workspace_bin};

/// The native build of examples/std's `name`, built once per run.
fn native(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let target = profile_dir().parent().expect("target/<profile>").join("native");
    BUILD.call_once(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/std/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--no-default-features",
                "-p",
                "std-sqlite",
                "-p",
                "std-redb",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("cannot run cargo to build the native peers");
        assert!(status.success(), "building examples/std natively failed: {status}");
    });
    target.join("release").join(name)
}

/// A fresh 64 MiB FAT16 disk in `dir`.
fn disk(dir: &TempDir) -> String {
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    let img = img.display().to_string();
    fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "DB", &img]);
    img
}

/// `program args`, with a limit of 5 minutes (a loaded machine).
fn run(program: &Path, args: &[OsString]) -> Outcome {
    support::run_program_within(program, args, Duration::from_secs(300))
}

/// The guest `bin` of examples/std on disk `img` with `args`.
fn guest(img: &str, bin: &str, args: &[&str]) -> Outcome {
    let mut all: Vec<OsString> = vec!["--block".into(), format!("storage={img}").into()];
    all.push(workspace_bin(bin).into());
    all.extend(args.iter().map(OsString::from));
    run(&tender(), &all)
}

/// The native peer of `bin` with `args` (the first its directory).
fn host(bin: &str, args: &[&str]) -> Outcome {
    let all: Vec<OsString> = args.iter().map(OsString::from).collect();
    run(&native(bin), &all)
}

/// Runs `program args` until it prints `in transaction`, then kills it
/// with SIGKILL; its lines up to there.
fn killed_mid_transaction(program: &Path, args: &[OsString]) -> String {
    let mut child = KillOnDrop(
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display())),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(line) => {
                out += &line;
                out.push('\n');
                if line == "in transaction" {
                    break;
                }
            }
            Err(e) => {
                panic!("{} {args:?}: no `in transaction` ({e}); printed:\n{out}", program.display())
            }
        }
    }
    // SIGKILL, as the kernel's OOM killer or `kill -9` would.
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status:?}");
    out
}

/// Asserts a run's success and returns its output.
fn ok(o: Outcome) -> String {
    assert_eq!(o.code(), Some(0), "{o:#?}");
    o.stdout
}

/// Asserts that `fsck.fat -n` finds the disk clean.
fn fsck_clean(img: &str) {
    let out = Command::new("fsck.fat").args(["-n", img]).output().expect("fsck.fat");
    assert!(
        out.status.success(),
        "fsck.fat: {}{}",
        support::text(&out.stdout),
        support::text(&out.stderr)
    );
}

/// Asserts that `fsck.fat -n` finds at most what a guest killed leaves by
/// design (docs/storage.md): lost clusters (what the killed transaction
/// had allocated and not synced), a wrong free count, the dirty bit.
fn fsck_after_kill(img: &str) {
    let out = Command::new("fsck.fat").args(["-n", img]).output().expect("fsck.fat");
    let text = format!("{}{}", support::text(&out.stdout), support::text(&out.stderr));
    for l in text.lines() {
        let fine = l.is_empty()
            || l.starts_with("fsck.fat ")
            || l.contains(" files, ") && l.contains(" clusters")
            || l.starts_with("Leaving filesystem unchanged")
            || l.starts_with("Reclaimed ") && l.contains("unused cluster")
            || l.starts_with("Free cluster summary")
            || l.starts_with("Dirty bit is set")
            || l.contains("removing dirty bit")
            || l.starts_with("  Auto-correcting")
            || l.starts_with("  Auto-setting");
        assert!(fine, "fsck.fat: {l:?} in:\n{text}");
    }
}

#[test]
fn sqlite_on_the_fat_disk_agrees_with_its_native_build() {
    let dir = TempDir::new("std-db-sqlite");
    let img = disk(&dir);
    let on_fat = ok(guest(&img, "std-sqlite", &["/", "check"]));
    let root = dir.path().join("native");
    std::fs::create_dir(&root).unwrap();
    let on_linux = ok(host("std-sqlite", &[root.to_str().unwrap(), "check"]));
    assert_eq!(on_fat, on_linux);
    // What the run must show, beyond agreeing.
    for mode in ["delete", "wal"] {
        for line in [
            format!("{mode}: journal mode: {mode}\n"),
            format!("{mode}: after a rollback: 20000 rows"),
            format!("{mode}: integrity: ok\n"),
            format!("{mode}: queries after reopening: same\n"),
            // The journal, the WAL and the shared memory are gone.
            format!("{mode}: closed: check-{mode}.db\n"),
        ] {
            assert!(on_fat.contains(&line), "{line:?} missing:\n{on_fat}");
        }
    }
    assert!(on_fat.contains("wal: reopened: journal mode wal, 19793 rows"), "{on_fat}");
    fsck_clean(&img);
}

#[test]
fn sqlite_killed_mid_transaction_recovers_as_on_linux() {
    let dir = TempDir::new("std-db-sqlite-crash");
    let img = disk(&dir);
    let root = dir.path().join("native");
    std::fs::create_dir(&root).unwrap();
    for mode in ["delete", "wal"] {
        let args = |what: &str| -> Vec<OsString> {
            let mut v: Vec<OsString> = vec!["--block".into(), format!("storage={img}").into()];
            v.extend([workspace_bin("std-sqlite").into(), "/".into(), what.into(), mode.into()]);
            v
        };
        let mut on_fat = killed_mid_transaction(&tender(), &args("crash"));
        on_fat += &ok(run(&tender(), &args("recover")));
        let native_args =
            |what: &str| -> Vec<OsString> { vec![root.clone().into(), what.into(), mode.into()] };
        let mut on_linux = killed_mid_transaction(&native("std-sqlite"), &native_args("crash"));
        on_linux += &ok(run(&native("std-sqlite"), &native_args("recover")));
        assert_eq!(on_fat, on_linux, "{mode}");
        let left = if mode == "wal" {
            "wal: left: crash-wal.db crash-wal.db-wal crash-wal.db-shm\n"
        } else {
            "delete: left: crash-delete.db crash-delete.db-journal\n"
        };
        for line in [
            format!("{mode}: uncommitted pages on the disk: true\n"),
            left.to_string(),
            format!("{mode}: integrity: ok\n"),
            format!("{mode}: rows of the killed transaction: 0\n"),
            format!("{mode}: closed: crash-{mode}.db\n"),
        ] {
            assert!(on_fat.contains(&line), "{line:?} missing:\n{on_fat}");
        }
        let committed =
            on_fat.lines().find_map(|l| l.strip_prefix(&format!("{mode}: committed: ")));
        let recovered =
            on_fat.lines().find_map(|l| l.strip_prefix(&format!("{mode}: recovered: ")));
        assert_eq!(committed, recovered, "{on_fat}");
        assert!(committed.is_some(), "{on_fat}");
    }
    fsck_after_kill(&img);
}

#[test]
fn redb_on_the_fat_disk_agrees_with_its_native_build() {
    let dir = TempDir::new("std-db-redb");
    let img = disk(&dir);
    let on_fat = ok(guest(&img, "std-redb", &["/", "check"]));
    let root = dir.path().join("native");
    std::fs::create_dir(&root).unwrap();
    let on_linux = ok(host("std-redb", &[root.to_str().unwrap(), "check"]));
    assert_eq!(on_fat, on_linux);
    for line in [
        "redb: after an abort: 20000 rows",
        "redb: integrity: true\n",
        "redb: queries after reopening: same\n",
    ] {
        assert!(on_fat.contains(line), "{line:?} missing:\n{on_fat}");
    }
    fsck_clean(&img);
}

#[test]
fn redb_killed_mid_transaction_recovers_as_on_linux() {
    let dir = TempDir::new("std-db-redb-crash");
    let img = disk(&dir);
    let root = dir.path().join("native");
    std::fs::create_dir(&root).unwrap();
    let args = |what: &str| -> Vec<OsString> {
        vec![
            "--block".into(),
            format!("storage={img}").into(),
            workspace_bin("std-redb").into(),
            "/".into(),
            what.into(),
        ]
    };
    let mut on_fat = killed_mid_transaction(&tender(), &args("crash"));
    on_fat += &ok(run(&tender(), &args("recover")));
    let native_args = |what: &str| -> Vec<OsString> { vec![root.clone().into(), what.into()] };
    let mut on_linux = killed_mid_transaction(&native("std-redb"), &native_args("crash"));
    on_linux += &ok(run(&native("std-redb"), &native_args("recover")));
    assert_eq!(on_fat, on_linux);
    for line in ["redb: integrity: true\n", "redb: rows of the killed transaction: 0\n"] {
        assert!(on_fat.contains(line), "{line:?} missing:\n{on_fat}");
    }
    let committed = on_fat.lines().find_map(|l| l.strip_prefix("redb: committed: "));
    let recovered = on_fat.lines().find_map(|l| l.strip_prefix("redb: recovered: "));
    assert_eq!(committed, recovered, "{on_fat}");
    assert!(committed.is_some(), "{on_fat}");
    fsck_after_kill(&img);
}

/// tests/std's std-locks-mmap compiled for Linux (`rustc --cfg native`),
/// once per run, into the target directory.
fn native_locks() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("std/src/bin/std-locks-mmap.rs");
        // Built under a name of this process, then renamed into place.
        let out = profile_dir().join("std-locks-mmap-native");
        let tmp = profile_dir().join(format!("std-locks-mmap-native.{}", std::process::id()));
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let status = Command::new(rustc)
            .args(["--edition", "2024", "-O", "--cfg", "native", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("rustc");
        assert!(status.success(), "compiling std-locks-mmap natively failed");
        std::fs::rename(&tmp, &out).unwrap();
        out
    })
    .clone()
}

/// What databases ask of the C library, call by call: record, OFD and
/// `flock` locks between descriptors of one process, and files mapped
/// shared and private (coherent with `read` and `write`, written back on
/// `msync`, `munmap`, `fsync`), with every error Linux gives: the same
/// results on the FAT disk as on Linux.
#[test]
fn locks_and_mapped_files_behave_as_on_linux() {
    let dir = TempDir::new("std-db-locks");
    let img = disk(&dir);
    let guest_bin = support::std_guest("std-locks-mmap");
    let on_fat =
        ok(run(&tender(), &["--block".into(), format!("storage={img}").into(), guest_bin.into()]));
    let root = dir.path().join("native");
    std::fs::create_dir(&root).unwrap();
    let on_linux = ok(run(&native_locks(), &[root.into()]));
    let (f, l): (Vec<&str>, Vec<&str>) = (on_fat.lines().collect(), on_linux.lines().collect());
    for (i, (f, l)) in f.iter().zip(&l).enumerate() {
        assert_eq!(f, l, "line {i}: FAT (left) and Linux (right) differ");
    }
    assert_eq!(f.len(), l.len(), "{on_fat}");
    // The calls did conflict and fail where Linux's do.
    assert!(on_linux.contains("ofd-rd-b=errno11\n"), "{on_linux}");
    assert!(on_linux.contains("flock-ex-c=errno11\n"), "{on_linux}");
    assert!(on_linux.contains("after-munmap=Ok(\"!?\")\n"), "{on_linux}");
    assert!(on_linux.lines().filter(|l| l.contains("=errno")).count() >= 20, "{on_linux}");
    fsck_clean(&img);
}
