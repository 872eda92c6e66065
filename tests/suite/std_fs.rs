//! std::fs in std guests (libos-std over libos's FAT): the guest
//! `std-fs` exercises one area per test on an image made with mkfs.fat
//! and mcopy, prints `ok ...` per check (`WRONG ...` or `err ...` when a
//! check fails), and what it wrote is read back with mtools and checked
//! with `fsck.fat`. The std guests are built by `nabla_build_all`
//! (scripts/deps.sh) into target/release, as the README's test command
//! does.

mod support;

use std::path::{Path, PathBuf};

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
        "ok long new name: InvalidInput",
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
        "ok created (no birth time): Unsupported",
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
        "ls / = A:d:0 DOCS:d:0 HELLO.TXT:f:12 NEWDIR:d:0 RO.TXT:f:10\n",
        "ls /docs = A long file name.txt:f:16 SUB:d:0\n",
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

#[test]
fn files_still_open_at_exit_keep_what_was_written() {
    let dir = TempDir::new("std-fs-exit");
    let img = image(&dir, "exit");
    let s = area(&img, "exit");
    assert!(s.contains("exiting"), "{s}");
    let exit = mtype(&img, "/EXIT.TXT");
    assert!(exit == "e".repeat(5000), "EXIT.TXT holds {} bytes, not 5000 'e'", exit.len());
    assert_eq!(mtype(&img, "/hello.txt"), "hello, disk\nmore\n");
    fsck(&img);
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
fn what_fat_cannot_do_yet_is_an_unsupported_error_not_an_abort() {
    let dir = TempDir::new("std-fs-refused");
    let img = image(&dir, "refused");
    let s = area(&img, "refused");
    for line in [
        "ok remove_file: Unsupported",
        "ok remove_file missing: NotFound",
        "ok remove_dir: Unsupported",
        "ok remove_dir_all: Unsupported",
        "ok rename: Unsupported",
        "ok hard_link: Unsupported",
        "ok symlink: Unsupported",
        "ok set_permissions unchanged",
        "ok set_permissions readonly: Unsupported",
        "ok set_modified: Unsupported",
        "still there=hello, disk",
    ] {
        assert!(s.contains(line), "{line}: {s}");
    }
    assert_eq!(mtype(&img, "/hello.txt"), "hello, disk\n");
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
        "ls / = DOCS HELLO.TXT RO.TXT data\n",
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
