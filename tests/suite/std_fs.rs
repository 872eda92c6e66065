//! std::fs in std guests (libos-std over libos's FAT): the guest
//! `std-fs` exercises one area per test on an image made with mkfs.fat
//! and mcopy, prints `ok ...` per check (`WRONG ...` or `err ...` when a
//! check fails), and what it wrote is read back with mtools and checked
//! with `fsck.fat`. The std guests are built by `nabla_build_all`
//! (scripts/deps.sh) into target/release, as the README's test command
//! does.

mod support;

use std::path::{Path, PathBuf};

use support::guest::Guest;
use support::{Outcome, TempDir, fat_tool, run, workspace_bin};

/// 2001-02-03 04:05:06 UTC, the modification time of `hello.txt`.
const HELLO_MTIME: u64 = 981_173_106;

/// A 32 MiB FAT16 image: `hello.txt` (dated [`HELLO_MTIME`]), a
/// read-only `RO.TXT`, and `docs/` with a long name and `sub/deep.txt`.
fn image(dir: &TempDir, label: &str) -> PathBuf {
    let tree = dir.path().join(format!("tree-{label}"));
    std::fs::create_dir_all(tree.join("docs/sub")).unwrap();
    std::fs::write(tree.join("hello.txt"), "hello, disk\n").unwrap();
    std::fs::write(tree.join("RO.TXT"), "read only\n").unwrap();
    std::fs::write(tree.join("docs/A long file name.txt"), "long names work\n").unwrap();
    std::fs::write(tree.join("docs/sub/deep.txt"), "deep\n").unwrap();
    let hello = std::fs::File::options().write(true).open(tree.join("hello.txt")).unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(HELLO_MTIME);
    hello.set_modified(when).unwrap();
    let img = dir.path().join(format!("{label}.img"));
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    let img_s = img.to_str().unwrap();
    fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "TEST", img_s]);
    for entry in ["hello.txt", "RO.TXT", "docs"] {
        fat_tool("mcopy", &["-s", "-m", "-i", img_s, tree.join(entry).to_str().unwrap(), "::/"]);
    }
    fat_tool("mattrib", &["-i", img_s, "+r", "::/RO.TXT"]);
    img
}

/// Runs `guest` with `disks` (`--block` options and their values) and the
/// areas as arguments.
fn guest(name: &str, disks: &[String], areas: &[&str]) -> Outcome {
    let bin = workspace_bin(name);
    let mut args: Vec<String> = disks.to_vec();
    args.push(bin.to_str().unwrap().to_string());
    args.extend(areas.iter().map(|s| s.to_string()));
    run(&args)
}

fn disk(img: &Path) -> Vec<String> {
    vec!["--block".into(), format!("storage={}", img.display())]
}

/// Runs `std-fs AREA` on `img`: exit 0, no check failed.
fn area(img: &Path, area: &str) -> String {
    let out = guest("std-fs", &disk(img), &[area]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    for line in out.stdout.lines() {
        assert!(
            !line.starts_with("WRONG") && !line.starts_with("err "),
            "{area}: {line}\n{}",
            out.stdout
        );
    }
    out.stdout
}

fn mtype(img: &Path, path: &str) -> String {
    fat_tool("mtype", &["-i", img.to_str().unwrap(), &format!("::{path}")])
}

fn fsck(img: &Path) {
    fat_tool("fsck.fat", &["-n", img.to_str().unwrap()]);
}

#[test]
fn files_are_created_truncated_and_appended_with_linux_errors() {
    let dir = TempDir::new("std-fs-open");
    let img = image(&dir, "open");
    let s = area(&img, "open");
    assert!(s.contains("OUT.TXT=second+appended\n"), "{s}");
    for line in [
        "ok create_new existing: AlreadyExists",
        "ok open missing: NotFound",
        "ok file as dir: NotADirectory",
        "ok trailing slash: NotADirectory",
        "ok write a dir: IsADirectory",
        "ok create without write: InvalidInput",
        "ok long new name",
        "ok write read-only fd: errno 9",
        "ok read write-only fd: errno 9",
        "ok open dir",
        "fd=3",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    assert_eq!(mtype(&img, "/OUT.TXT"), "second+appended");
    assert_eq!(mtype(&img, "/NEW.TXT"), "brand new");
    assert_eq!(mtype(&img, "/docs/A long file name.txt"), "rewritten, long");
    assert_eq!(mtype(&img, "/a long new name.text"), "long");
    fsck(&img);
}

#[test]
fn reads_writes_seeks_and_positional_io_follow_linux() {
    let dir = TempDir::new("std-fs-rw");
    let img = image(&dir, "rw");
    let s = area(&img, "rw");
    for line in [
        "read=234",
        "pos=4\nok seek cur",
        "pos=8\nok seek end",
        "rest=89",
        "ok seek before start: InvalidInput",
        "pread=3ab6",
        "pread past end=0",
        "len=14",
        "a=01 c=0123",
        "alias=long names work",
        "big same=true",
        "by pieces same=true",
        "copied=12",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    // Written past the end: zeros in the gap, as Linux.
    let rw = dir.path().join("rw.bin");
    fat_tool("mcopy", &["-n", "-i", img.to_str().unwrap(), "::/RW.BIN", rw.to_str().unwrap()]);
    assert_eq!(std::fs::read(&rw).unwrap(), b"0123ab67XY\0\0\0Z");
    let big = dir.path().join("big.bin");
    fat_tool("mcopy", &["-n", "-i", img.to_str().unwrap(), "::/BIG.BIN", big.to_str().unwrap()]);
    let bytes = std::fs::read(&big).unwrap();
    assert_eq!(bytes.len(), 300_000);
    assert!(bytes.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    assert_eq!(mtype(&img, "/COPY.TXT"), "hello, disk\n");
    fsck(&img);
}

#[test]
fn metadata_reports_kind_size_time_and_the_read_only_attribute() {
    let dir = TempDir::new("std-fs-meta");
    let img = image(&dir, "meta");
    let s = area(&img, "meta");
    for line in [
        "file is_file=true is_dir=false len=12 readonly=false mode=100644",
        &format!("mtime={HELLO_MTIME}"),
        "created hello known=true",
        "ok created root (no entry): Unsupported",
        "dir is_file=false is_dir=true mode=40755",
        "root is_dir=true",
        "symlink is_symlink=false len=12",
        "ro readonly=true mode=100444",
        "ok write read-only file: PermissionDenied",
        "ok metadata missing: NotFound",
        "exists hello=true nope=false",
        "growing fstat=1000 stat=1000",
        "fresh mtime within 5s=true",
        "same file ino=true",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    fsck(&img);
}

#[test]
fn directories_are_listed_created_and_created_recursively() {
    let dir = TempDir::new("std-fs-dir");
    let img = image(&dir, "dir");
    let s = area(&img, "dir");
    for line in [
        "ok create_dir again: AlreadyExists",
        "ok create_dir in missing: NotFound",
        // Names as mcopy stored them (lower-case 8.3 names, as Linux's vfat
        // shows them) and as the guest created them.
        "ls / = A:d:0 NEWDIR:d:0 RO.TXT:f:10 docs:d:0 hello.txt:f:12\n",
        "ls /docs = A long file name.txt:f:16 sub:d:0\n",
        "ls /A/B = C:d:0\n",
        "ok read_dir of a file: NotADirectory",
        "ok read_dir missing: NotFound",
        "is_dir A/B=true is_file F=true",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    assert_eq!(mtype(&img, "/A/B/C/F.TXT"), "deep");
    let listing = fat_tool("mdir", &["-b", "-i", img.to_str().unwrap(), "::/"]);
    assert!(listing.contains("::/NEWDIR/") && listing.contains("::/A/"), "{listing}");
    fsck(&img);
}

#[test]
fn sync_and_set_len_reach_the_disk() {
    let dir = TempDir::new("std-fs-sync");
    let img = image(&dir, "sync");
    let s = area(&img, "sync");
    for line in [
        "ok sync_all",
        "ok sync_data",
        "ok lock\nok try_lock\nok unlock",
        "len=10",
        "ok set_len shorter\nlen=3\n",
        "ok set_len shorter big",
        "shrunk len=5000 same=true",
        "ok set_len zero",
        "ok set_len read-only fd: InvalidInput",
        // set_len(0) leaves the offset at 9: the next write fills with zeros.
        "EMPTY.TXT=[0, 0, 0, 0, 0, 0, 0, 0, 0, 33]",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    assert_eq!(mtype(&img, "/SYNC.TXT"), "dur-ok");
    fsck(&img);
}

/// Checks what `std-fs exit HOW` wrote on `img`: an open file's 5,000
/// bytes, an append, a shared mapping's stores, and the C stream's line
/// if `stdio` (only `exit` writes a stream's buffer); the disk is clean.
fn kept_at_the_end(img: &Path, how: &str, stdio: bool) {
    let exit = mtype(img, "/EXIT.TXT");
    assert!(exit == "e".repeat(5000), "{how}: EXIT.TXT holds {} bytes, not 5000 'e'", exit.len());
    assert_eq!(mtype(img, "/hello.txt"), "hello, disk\nmore\n", "{how}");
    assert!(
        mtype(img, "/MAP.TXT") == "m".repeat(4096),
        "{how}: MAP.TXT lacks the mapping's stores"
    );
    assert_eq!(mtype(img, "/STDIO.TXT"), if stdio { "buffered\n" } else { "" }, "{how}");
    fsck(img);
}

/// However a program ends, what it wrote is on the disk, as Linux's page
/// cache keeps a process's writes: `exit`, `_exit` and `abort` (a
/// `panic = "abort"` program's panic) here, a signal's default action in
/// `what_was_written_is_kept_when_sigterm_ends_the_program`.
#[test]
fn what_was_written_is_kept_however_the_program_ends() {
    for (how, status) in [("exit", 0), ("_exit", 0), ("abort", 255)] {
        let dir = TempDir::new("std-fs-end");
        let img = image(&dir, "end");
        let out = guest("std-fs", &disk(&img), &["exit", how]);
        assert_eq!(out.code(), Some(status), "{how}: {out:#?}");
        assert!(out.stdout.contains(&format!("exiting by {how}")), "{how}: {out:#?}");
        kept_at_the_end(&img, how, how == "exit");
    }
}

/// `SIGTERM` (what `ctr task kill` and Kubernetes send) ends a program
/// that did not ask for it with status 143; what it wrote is on the disk.
#[test]
fn what_was_written_is_kept_when_sigterm_ends_the_program() {
    let dir = TempDir::new("std-fs-sigterm");
    let img = image(&dir, "sigterm");
    let mut args = disk(&img);
    args.push(workspace_bin("std-fs").display().to_string());
    args.extend(["exit".to_string(), "signal".to_string()]);
    let mut g = Guest::tender(&args);
    g.expect("exiting by signal");
    g.signal(libc::SIGTERM);
    let (status, lines) = g.finish();
    assert_eq!(status.code(), Some(143), "{lines:#?}");
    kept_at_the_end(&img, "SIGTERM", false);
}

#[test]
fn paths_are_normalised_within_the_root_with_a_working_directory() {
    let dir = TempDir::new("std-fs-paths");
    let img = image(&dir, "paths");
    let s = area(&img, "paths");
    for line in [
        "cwd=/\n",
        "canon=/docs/sub/deep.txt",
        "canon=/docs/sub\n",
        "ok canonicalize missing: NotFound",
        "above=hello, disk",
        "relative=hello, disk",
        "upper=hello, disk",
        "long=long names work",
        "cwd=/docs/sub\n",
        "deep=deep",
        "up=hello, disk",
        "ok set_current_dir file: NotADirectory",
        "ok read_link: InvalidInput",
        "ok empty path: NotFound",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
}

#[test]
fn links_and_permissions_fat_cannot_hold_are_unsupported_errors_not_aborts() {
    let dir = TempDir::new("std-fs-refused");
    let img = image(&dir, "refused");
    let s = area(&img, "refused");
    for line in [
        "ok hard_link: Unsupported",
        "ok symlink: Unsupported",
        "ok set_permissions unchanged",
        "ok set_permissions readonly: Unsupported",
        "still there=hello, disk",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    assert_eq!(mtype(&img, "/hello.txt"), "hello, disk\n");
    fsck(&img);
}

/// The names in `dir` of `img`, as mtools lists them (long names where
/// there are), sorted.
fn mls(img: &Path, dir: &str) -> Vec<String> {
    let out = fat_tool("mdir", &["-b", "-i", img.to_str().unwrap(), &format!("::{dir}")]);
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim_end_matches('/').rsplit('/').next().map(String::from))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect();
    names.sort();
    names
}

#[test]
fn files_and_trees_are_removed_as_on_linux_and_their_clusters_freed() {
    let dir = TempDir::new("std-fs-remove");
    let img = image(&dir, "remove");
    let s = area(&img, "remove");
    for line in [
        "ok remove_file\n",
        "ok remove_file again: NotFound",
        "ok remove_file a dir: IsADirectory",
        "ok remove_file slash: NotADirectory",
        "ok remove_file in missing: NotFound",
        "ok remove_dir not empty: DirectoryNotEmpty",
        "ok remove_dir a file: NotADirectory",
        "ok remove_dir missing: NotFound",
        "ok remove_dir root: ResourceBusy",
        "ok remove_dir dot: InvalidInput",
        "ok remove_dir dotdot: DirectoryNotEmpty",
        "ok remove read-only file",
        "ok remove_dir empty",
        "ok remove_dir_all",
        "tree exists=false",
        "again=2nd",
        "ok remove open file",
        "open exists=false",
        // As on Linux: the descriptor still reads the removed file.
        "read removed: Ok(\"open while removed\")",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    assert_eq!(mls(&img, "/"), ["again.txt", "docs"]);
    // fsck.fat finds no lost clusters: every removed chain was freed.
    fsck(&img);
}

#[test]
fn renames_move_replace_and_fail_as_on_linux() {
    let dir = TempDir::new("std-fs-rename");
    let img = image(&dir, "rename");
    let s = area(&img, "rename");
    for line in [
        "ok rename in dir",
        "moved=one",
        "ok rename old name: NotFound",
        "ok rename across dirs",
        "across=one",
        "ok rename over a file",
        "replaced=new contents",
        "ok rename missing: NotFound",
        "ok rename into missing dir: NotFound",
        "ok rename file over dir: IsADirectory",
        "ok rename dir over file: NotADirectory",
        "ok rename dir into itself: InvalidInput",
        "ok rename dir over its parent: DirectoryNotEmpty",
        "ok rename dir over full dir: DirectoryNotEmpty",
        "ok rename dir over empty dir",
        "dir moved deep=deep long=long names work",
        "ok rename root: ResourceBusy",
        "ok rename dot: ResourceBusy",
        "ok rename to other case",
        "same file=new contents",
        "ok rename to itself",
        "ok rename open file",
        "ok sync moved",
        "moved open len=12 stat=12",
        "moved open=before after",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    assert_eq!(mtype(&img, "/Hollow/sub/Three.txt"), "one");
    assert_eq!(mtype(&img, "/Hollow/Moved open.txt"), "before after");
    assert_eq!(mtype(&img, "/hello.txt"), "new contents");
    let root = mls(&img, "/");
    assert!(
        root.contains(&"Hollow".to_string())
            && !root.iter().any(|n| n.eq_ignore_ascii_case("docs")),
        "{root:?}"
    );
    fsck(&img);
}

#[test]
fn modification_times_are_set_kept_and_rounded_as_fat_keeps_them() {
    let dir = TempDir::new("std-fs-times");
    let img = image(&dir, "times");
    let s = area(&img, "times");
    for line in [
        "ok set_modified\n",
        // 1_600_000_001 is kept as 1_600_000_000: FAT's 2 s.
        "fstat mtime=1600000000",
        "mtime=Ok(1600000000)",
        "ok set_times",
        "timed mtime=Ok(1000000000)",
        "ok set_modified dir",
        "dir mtime=Ok(1500000000)",
        "written now=true",
        "created now=true",
        "timed created now=true",
        "created by fd same=true",
        "created dir by fd known=true",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    // mtools reads the same time (UTC: the guest's local time).
    let listing = fat_tool("mdir", &["-i", img.to_str().unwrap(), "::/hello.txt"]);
    assert!(listing.contains("2020-09-13") && listing.contains("12:26"), "{listing}");
    fsck(&img);
}

#[test]
fn long_names_are_created_listed_and_found_in_any_case() {
    let dir = TempDir::new("std-fs-long");
    let img = image(&dir, "long");
    let s = area(&img, "longnames");
    assert!(
        s.contains(
            "ls /L = A long file name with spaces.text MixedCase.Txt Program Files lower.txt \
             name.with.many.dots.tar.gz unicode é ß 日本.txt verylongname1.txt \
             verylongname2.txt verylongname3.txt\n"
        ),
        "{s}"
    );
    assert_eq!(s.matches(" -> same").count(), 9, "{s}");
    for line in [
        "mixed=replaced",
        "ok create_new other case: AlreadyExists",
        "ok 255 characters",
        "ok 256 characters: InvalidFilename",
        "ok bad name a:b: InvalidInput",
        "ok bad name a*b: InvalidInput",
        "ok bad name a\\b: InvalidInput",
        "ok deep long file",
        "deep=fin",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    // mtools sees the same names, and the 8.3 aliases Linux would make.
    let names = mls(&img, "/L");
    for n in ["MixedCase.Txt", "unicode é ß 日本.txt", "verylongname3.txt", "Program Files"] {
        assert!(names.contains(&n.to_string()), "{n}: {names:?}");
    }
    let short = fat_tool("mdir", &["-i", img.to_str().unwrap(), "::/L"]);
    for alias in ["VERYLO~1 TXT", "VERYLO~2 TXT", "VERYLO~3 TXT", "PROGRA~1"] {
        assert!(short.contains(alias), "{alias}: {short}");
    }
    assert_eq!(mtype(&img, "/L/Première année/Sous dossier/Résumé final.txt"), "fin");
    fsck(&img);
}

#[test]
fn statvfs_reports_clusters_that_writes_use_and_removes_free() {
    let dir = TempDir::new("std-fs-statvfs");
    let img = image(&dir, "statvfs");
    let s = area(&img, "statvfs");
    // 32 MiB FAT16 by mkfs.fat: 2 KiB clusters.
    for line in [
        "statvfs r=0 bsize=2048 blocks=",
        "avail=free:true namemax=255",
        "used by 1 MiB=true",
        "freed again=true",
        "fstatfs r=0 type=4d44 blocks=true",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    // The totals are mkfs.fat's.
    let info = fat_tool("minfo", &["-i", img.to_str().unwrap(), "::"]);
    assert!(info.contains(" -c 4 "), "{info}");
    fsck(&img);
}

#[test]
fn a_read_only_disk_is_read_and_writes_get_erofs() {
    let dir = TempDir::new("std-fs-ro");
    let img = image(&dir, "ro");
    let before = std::fs::read(&img).unwrap();
    let out =
        guest("std-fs", &["--block-ro".into(), format!("storage={}", img.display())], &["ro"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let s = &out.stdout;
    for line in [
        "ro read=hello, disk",
        "ok write on ro disk: ReadOnlyFilesystem",
        "ok overwrite on ro disk: ReadOnlyFilesystem",
        "ok append on ro disk: ReadOnlyFilesystem",
        "ok mkdir on ro disk: ReadOnlyFilesystem",
        "ok remove on ro disk: ReadOnlyFilesystem",
        "ok remove missing on ro disk: ReadOnlyFilesystem",
        "ok rename on ro disk: ReadOnlyFilesystem",
        "ok rmdir on ro disk: ReadOnlyFilesystem",
        "ok set_modified on ro disk: ReadOnlyFilesystem",
        "ro metadata len=12",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    assert!(std::fs::read(&img).unwrap() == before, "the read-only image changed");
}

#[test]
fn a_second_disk_is_mounted_at_its_name() {
    let dir = TempDir::new("std-fs-disks");
    let root = image(&dir, "root");
    let data = dir.path().join("data.img");
    std::fs::File::create(&data).unwrap().set_len(32 << 20).unwrap();
    let data_s = data.to_str().unwrap();
    fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "DATA", data_s]);
    let inp = dir.path().join("in.txt");
    std::fs::write(&inp, "data file\n").unwrap();
    fat_tool("mcopy", &["-i", data_s, inp.to_str().unwrap(), "::/IN.TXT"]);
    let disks = [
        "--block".to_string(),
        format!("storage={}", root.display()),
        "--block".to_string(),
        format!("data={data_s}"),
    ];
    let out = guest("std-fs-disks", &disks, &[]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let s = &out.stdout;
    for line in [
        // The mount point is listed in the root disk's root.
        "ls / = RO.TXT data docs hello.txt\n",
        "root hello=hello, disk",
        "data in=data file",
        "data is_dir=true",
        "distinct devices=true",
        "canon=/data/IN.TXT",
        "mkdir mount point: Err(AlreadyExists)",
        "done",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    assert_eq!(mtype(&data, "/OUT.TXT"), "to the data disk");
    assert_eq!(mtype(&root, "/ROOT.TXT"), "to the root disk");
    let listing = fat_tool("mdir", &["-b", "-i", data_s, "::/X"]);
    assert!(listing.contains("::/X/Y/"), "{listing}");
    fsck(&root);
    fsck(&data);
}

#[test]
fn without_a_disk_the_root_is_empty_and_read_only() {
    let out = guest("std-fs-none", &[], &[]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_eq!(
        out.stdout,
        "root is_dir=true\nls / = Ok(0)\nread: Err(NotFound)\n\
         write: Err(ReadOnlyFilesystem)\nmkdir: Err(ReadOnlyFilesystem)\ncwd=/\n"
    );
}

#[test]
fn a_disk_without_fat_or_with_a_corrupt_one_gives_io_errors_never_a_crash() {
    let dir = TempDir::new("std-fs-corrupt");
    let zeros = dir.path().join("zeros.img");
    std::fs::File::create(&zeros).unwrap().set_len(8 << 20).unwrap();
    let out = guest("std-fs", &disk(&zeros), &["corrupt"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    // The mount failure is reported once; every call then fails with EIO.
    assert_eq!(
        out.stdout.matches("libos-std: cannot mount disk storage at /").count(),
        1,
        "{out:#?}"
    );
    assert!(
        out.stdout.contains("read_dir: Err(Uncategorized)\nread: Err(Uncategorized)"),
        "{out:#?}"
    );

    let img = image(&dir, "corrupt");
    let bytes = std::fs::read(&img).unwrap();
    // Where the FATs and the root directory are (FAT16: after the reserved
    // sectors, then the root directory's entries).
    let le =
        |at: usize, n: usize| bytes[at..at + n].iter().rev().fold(0, |v, &b| v << 8 | b as usize);
    let part = le(446 + 8, 4) * 512;
    let fats = part + le(part + 14, 2) * 512;
    let root = fats + le(part + 16, 1) * le(part + 22, 2) * 512;
    let root_len = le(part + 17, 2) * 32;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..40 {
        let mut damaged = bytes.clone();
        for _ in 0..200 {
            // Half the rounds hit the root directory (its first entries
            // most), the others the FATs and the first clusters too.
            let r = next();
            let at = if round % 2 == 0 {
                root + (r as usize % if r & 1 == 0 { 256 } else { root_len })
            } else {
                fats + (r as usize % ((1 << 20) - fats))
            };
            damaged[at] = (r >> 32) as u8;
        }
        std::fs::write(&img, &damaged).unwrap();
        let out = guest("std-fs", &disk(&img), &["corrupt"]);
        assert!(
            out.code() == Some(0) && out.stdout.contains("corrupt done"),
            "round {round}: {out:#?}"
        );
    }
}

/// tests/std's std-fat-ops compiled for Linux (`rustc --cfg native`), once
/// per run, into the target directory.
fn native_ops() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("std/src/bin/std-fat-ops.rs");
        // Built under a name of this process, then renamed into place: two
        // test processes never run a half-written binary.
        let out = support::profile_dir().join("std-fat-ops-native");
        let tmp = support::profile_dir().join(format!("std-fat-ops-native.{}", std::process::id()));
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let status = std::process::Command::new(rustc)
            .args(["--edition", "2024", "-O", "--cfg", "native", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("rustc");
        assert!(status.success(), "compiling std-fat-ops natively failed");
        std::fs::rename(&tmp, &out).unwrap();
        out
    })
    .clone()
}

/// The same program, the same operations: on a FAT disk under the tender,
/// and natively on Linux in a host directory. Every line (results, error
/// kinds and numbers) must be the same; the operations are those where a
/// FAT and a Linux file system agree (no case folding, times in even
/// seconds).
#[test]
fn the_same_program_gets_the_same_results_as_on_linux() {
    #[rustfmt::skip]
    let ops: &[&str] = &[
        "mkdirs", "/a/b/c",
        "write", "/a/f.txt", "hello",
        "append", "/a/f.txt", " world",
        "cat", "/a/f.txt",
        "touch", "/a/f.txt", "1600000000",
        "stat", "/a/f.txt",
        "rm", "/a",
        "rm", "/nope",
        "rm", "/a/f.txt/",
        "rm", "/a/nope/x",
        "rmdir", "/a",
        "rmdir", "/a/f.txt",
        "rmdir", "/a/.",
        "rmdir", "/a/b/..",
        "rmdir", "/nope",
        "mkdir", "/a",
        "mkdir", "/nope/x",
        "mv", "/a/f.txt", "/a/b/g.txt",
        "cat", "/a/b/g.txt",
        "cat", "/a/f.txt",
        "mv", "/a", "/a/b/c/d",
        "mv", "/a/b", "/a",
        "mv", "/nope", "/x",
        "mv", "/a/b/g.txt", "/nope/x",
        "mv", "/a/b/g.txt", "/a/b",
        "mv", "/a/b", "/a/b/g.txt",
        "mv", "/a/b/g.txt", "/a/b/g.txt",
        "mvnr", "/a/b/g.txt", "/a/b/g.txt",
        "mvnr", "/a/b/g.txt", "/a/new.txt",
        "write", "/a/other.txt", "other",
        "mv", "/a/other.txt", "/a/new.txt",
        "cat", "/a/new.txt",
        "mkdir", "/e",
        "mkdir", "/full",
        "write", "/full/x", "x",
        "mv", "/a/b", "/full",
        "mv", "/a/b", "/e",
        "ls", "/e",
        "mkdirs", "/m/n",
        "write", "/m/n/f.txt", "in n",
        "dirmv", "/m/n", "/m/n", "/m/o", "f.txt",
        "dirmv", "/m/o", "/m", "/p", "f.txt",
        "cat", "/p/o/f.txt",
        "rmall", "/p",
        "cnames", "/a/new.txt",
        "setlen", "/a/new.txt", "3",
        "cat", "/a/new.txt",
        "setlen", "/a/new.txt", "6",
        "cat", "/a/new.txt",
        "setlen", "/a", "6",
        "trunc", "/a/new.txt", "2",
        "cat", "/a/new.txt",
        "trunc", "/a", "2",
        "trunc", "/nope", "2",
        "trunc", "/a/new.txt/", "2",
        "trunc", "/a/new.txt", "-1",
        "touchp", "/a/new.txt", "1500000000",
        "stat", "/a/new.txt",
        "touchp", "/nope", "1500000000",
        "touchp", "/a/new.txt/", "1500000000",
        "fill", "/a/big.bin", "100000", "3",
        "same", "/a/big.bin", "100000", "3",
        "setlen", "/a/big.bin", "5000",
        "touch", "/a/big.bin", "1700000000",
        "stat", "/a/big.bin",
        "write", "/Ünïcödé 日本 long name.txt", "u",
        "write", "/spaces and.dots.in.name", "s",
        "ls", "/",
        "ls", "/a",
        "rmall", "/a",
        "rmall", "/nope",
        "stat", "/a",
        "ls", "/",
    ];
    let dir = TempDir::new("std-fs-native");
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", img.to_str().unwrap()]);
    let on_fat = guest("std-fat-ops", &disk(&img), ops);
    assert_eq!(on_fat.code(), Some(0), "{on_fat:#?}");
    let root = dir.path().join("native");
    std::fs::create_dir(&root).unwrap();
    let mut args = vec!["root", root.to_str().unwrap()];
    args.extend_from_slice(ops);
    let native = support::run_program(&native_ops(), &args);
    assert_eq!(native.code(), Some(0), "{native:#?}");
    let on_linux: Vec<&str> = native.stdout.lines().skip(1).collect();
    let on_fat: Vec<&str> = on_fat.stdout.lines().collect();
    for (i, (f, l)) in on_fat.iter().zip(&on_linux).enumerate() {
        assert_eq!(f, l, "operation {i}: FAT (left) and Linux (right) differ");
    }
    assert_eq!(on_fat.len(), on_linux.len());
    // And the operations did fail where Linux fails.
    assert!(on_linux.iter().filter(|l| l.starts_with("err ")).count() >= 20, "{on_linux:#?}");
    fsck(&img);
}
