//! The FAT file system in libos against the standard tools: images made
//! with `mkfs.fat --mbr=y` and `mcopy` are read by a guest (long names
//! included), what the guest writes is read back by `mtype` and passes
//! `fsck.fat`, and a corrupt disk gives an error, never a panic.

mod support;

use std::path::{Path, PathBuf};

use support::{TempDir, fat_tool, run};

const FS: &str = env!("CARGO_BIN_EXE_guest-fs");

/// A 32 MiB FAT16 image holding a small tree, made with the standard tools.
fn image(dir: &TempDir) -> PathBuf {
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("docs/sub")).unwrap();
    std::fs::write(tree.join("hello.txt"), "hello, disk\n").unwrap();
    std::fs::write(tree.join("docs/A long file name.txt"), "long names work\n").unwrap();
    std::fs::write(tree.join("docs/sub/deep.txt"), "deep\n").unwrap();
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    let img_s = img.to_str().unwrap();
    fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "TEST", img_s]);
    for entry in ["hello.txt", "docs"] {
        fat_tool("mcopy", &["-s", "-m", "-i", img_s, tree.join(entry).to_str().unwrap(), "::/"]);
    }
    img
}

fn guest(img: &Path, extra: &[&str], cmds: &[&str]) -> support::Outcome {
    let block = format!("storage={}", img.display());
    let mut args = vec!["--block", block.as_str()];
    args.extend_from_slice(extra);
    args.push(FS);
    args.extend_from_slice(cmds);
    run(&args)
}

#[test]
fn a_guest_reads_an_image_made_by_mkfs_fat_and_mcopy() {
    let dir = TempDir::new("fs");
    let img = image(&dir);
    let out = guest(
        &img,
        &[],
        &[
            "ls",
            "/",
            "ls",
            "/docs",
            "cat",
            "/docs/A long file name.txt",
            "cat",
            "/DOCS/SUB/DEEP.TXT",
            "stat",
            "/hello.txt",
            "cat",
            "/nope.txt",
        ],
    );
    assert_eq!(out.code(), Some(1), "one error expected (the missing file): {out:#?}");
    let s = &out.stdout;
    // Names are listed as Linux vfat lists them: 8.3 names in the case the
    // entry's case bits give (mcopy sets them for lower-case names), long
    // names as written.
    assert!(s.contains("dir docs 0\nfile hello.txt 12\n"), "{s}");
    assert!(s.contains("file A long file name.txt 16\ndir sub 0\n"), "{s}");
    assert!(s.contains("long names work\n"), "{s}");
    assert!(s.contains("deep\n"), "{s}");
    assert!(s.contains("stat /hello.txt dir=false len=12 modified="), "{s}");
    assert!(s.contains("error: cat /nope.txt: no such file or directory"), "{s}");
}

#[test]
fn what_a_guest_writes_is_read_back_by_mtools_and_passes_fsck() {
    for sector_size in ["512", "4096"] {
        let dir = TempDir::new("fs-write");
        let img = image(&dir);
        let ss = format!("storage={sector_size}");
        let out = guest(
            &img,
            &["--block-sector-size", &ss],
            &[
                "write",
                "/OUT.TXT",
                "hello-from-guest",
                "append",
                "/OUT.TXT",
                "+more",
                "mkdir",
                "/NEWDIR",
                "write",
                "/NEWDIR/X.TXT",
                "inner",
                "big",
                "/BIG.BIN",
                "3",
                "write",
                "/hello.txt",
                "new",
            ],
        );
        assert_eq!(out.code(), Some(0), "sector size {sector_size}: {out:#?}");
        assert!(out.stdout.contains("big /BIG.BIN 3145728 bytes ok"), "{out:#?}");
        let img_s = img.to_str().unwrap();
        assert_eq!(fat_tool("mtype", &["-i", img_s, "::/OUT.TXT"]), "hello-from-guest+more");
        assert_eq!(fat_tool("mtype", &["-i", img_s, "::/NEWDIR/X.TXT"]), "inner");
        assert_eq!(fat_tool("mtype", &["-i", img_s, "::/hello.txt"]), "new", "rewritten");
        let big = dir.path().join("big.bin");
        fat_tool("mcopy", &["-n", "-i", img_s, "::/BIG.BIN", big.to_str().unwrap()]);
        let bytes = std::fs::read(&big).unwrap();
        assert_eq!(bytes.len(), 3 << 20);
        assert!(bytes.iter().enumerate().all(|(i, &b)| b == (i % 65_536 % 251) as u8));
        fat_tool("fsck.fat", &["-n", img_s]);
    }
}

#[test]
fn a_corrupt_or_foreign_disk_gives_an_error_not_a_panic() {
    let dir = TempDir::new("fs-corrupt");
    // All zeros: no FAT at all.
    let zeros = dir.path().join("zeros.img");
    std::fs::File::create(&zeros).unwrap().set_len(8 << 20).unwrap();
    let out = guest(&zeros, &[], &["ls", "/"]);
    assert_eq!(out.code(), Some(100), "{out:#?}");
    assert!(out.stdout.contains("mount: no FAT volume on the disk"), "{out:#?}");

    // A real image with garbage over its FATs, directories and data: every
    // operation ends in an error or a result, never a panic (255) or a kill.
    let img = image(&dir);
    let bytes = std::fs::read(&img).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let mut damaged = bytes.clone();
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Keep the partition table and boot sector, hit the rest of the
            // first megabyte (FATs, root directory, first clusters).
            let at = 512 + (x as usize % ((1 << 20) - 512));
            damaged[at] = (x >> 32) as u8;
        }
        std::fs::write(&img, &damaged).unwrap();
        let out = guest(
            &img,
            &[],
            &[
                "ls",
                "/",
                "ls",
                "/docs",
                "cat",
                "/hello.txt",
                "cat",
                "/docs/sub/deep.txt",
                "write",
                "/NEW.TXT",
                "x",
            ],
        );
        assert!(
            out.signal().is_none() && out.code() != Some(255) && !out.stdout.contains("panicked"),
            "round {round}: {out:#?}"
        );
    }
}

#[test]
fn nabla_disk_makes_images_the_guest_reads_and_reads_back_what_it_writes() {
    let dir = TempDir::new("fs-tool");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a dir")).unwrap();
    std::fs::write(tree.join("a dir/Some long name.html"), "<p>long</p>\n").unwrap();
    std::fs::write(tree.join("top.txt"), "top\n").unwrap();
    let img = dir.path().join("tool.img");
    let nabla = support::workspace_bin("nabla");
    let tool = |args: &[&str]| support::run_program(&nabla, args);
    tool(&["disk", "create", img.to_str().unwrap(), "--from", tree.to_str().unwrap()]).assert_ok();
    let out = guest(
        &img,
        &[],
        &[
            "cat",
            "/a dir/Some long name.html",
            "cat",
            "/top.txt",
            "write",
            "/NEW.TXT",
            "made by the guest",
        ],
    );
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(out.stdout.contains("<p>long</p>\n") && out.stdout.contains("top\n"), "{out:#?}");
    let back = tool(&["disk", "get", img.to_str().unwrap(), "/NEW.TXT"]);
    back.assert_ok();
    assert_eq!(back.stdout, "made by the guest");
    tool(&["disk", "check", img.to_str().unwrap()]).assert_ok();
    let listing = tool(&["disk", "ls", img.to_str().unwrap(), "/"]);
    assert!(listing.stdout.contains("Some long name.html"), "{listing:#?}");
    let bad = tool(&["disk", "create", img.to_str().unwrap(), "--from", "/nonexistent"]);
    assert_eq!(bad.code(), Some(1));
    assert!(bad.stderr.starts_with("nabla: /nonexistent: not a directory"), "{bad:#?}");
}
