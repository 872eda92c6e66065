//! Host tests over images made by `mkfs.fat`, read back by mtools and
//! checked by `fsck.fat -n` (dosfstools and mtools, as the README installs).

extern crate std;

use std::format;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicU32, Ordering};
use std::vec;
use std::vec::Vec;

use super::*;

/// A disk image in a temporary file, removed on drop.
struct Img {
    path: PathBuf,
    file: std::fs::File,
    sector: u32,
}

impl Drop for Img {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh image: `mkfs.fat -F fat -S sector` on `mib` MiB, with extra
/// arguments.
fn image(fat: u8, sector: u32, mib: u64, extra: &[&str]) -> Img {
    let path = std::env::temp_dir().join(format!(
        "libos-fs-{}-{}.img",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let file =
        std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
    file.set_len(mib << 20).unwrap();
    let fat_s = fat.to_string();
    let sector_s = sector.to_string();
    let mut args = vec!["-F", &fat_s, "-S", &sector_s, "--invariant"];
    args.extend_from_slice(extra);
    let p = path.to_str().unwrap().to_string();
    args.push(&p);
    let out =
        Command::new("mkfs.fat").args(&args).output().expect("mkfs.fat (dosfstools) is installed");
    assert!(out.status.success(), "mkfs.fat {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Img { path, file, sector }
}

impl Img {
    fn dev(&self) -> BlockDevice {
        let len = self.file.metadata().unwrap().len();
        BlockDevice::from_fd(self.file.as_raw_fd(), len, self.sector, false)
    }

    fn mount(&self) -> FileSystem {
        mount(self.dev()).unwrap()
    }

    /// `fsck.fat -n`: panics with its report unless the volume is clean.
    fn fsck(&self) {
        let out = Command::new("fsck.fat").arg("-n").arg(&self.path).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let noise = text
            .lines()
            .filter(|l| {
                !l.starts_with("fsck.fat ")
                    && !l.contains(" files, ")
                    && !l.is_empty()
                    // FSInfo's count left "unknown" by a write not synced.
                    && !l.starts_with("Free cluster summary uninitialized")
            })
            .collect::<Vec<_>>();
        assert!(
            out.status.success() && noise.is_empty(),
            "fsck.fat -n {}:\n{text}",
            self.path.display()
        );
    }

    fn mtools(&self, tool: &str, args: &[&str]) -> String {
        let out = Command::new(tool)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&self.path)
            .args(args)
            .output()
            .expect("mtools is installed");
        assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn mtype(&self, path: &str) -> Vec<u8> {
        let out = Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i", self.path.to_str().unwrap(), &format!("::{path}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "mtype {path}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }
}

/// The layouts every test runs on: FAT12, 16, 32 on 512 B and 4 KiB
/// sectors (FAT32 with small clusters so that it has enough of them).
fn layouts() -> Vec<(&'static str, Img)> {
    vec![
        ("fat12/512", image(12, 512, 4, &["--mbr=y"])),
        ("fat16/512", image(16, 512, 32, &["--mbr=y"])),
        ("fat32/512", image(32, 512, 40, &["-s", "1"])),
        ("fat12/4096", image(12, 4096, 8, &[])),
        ("fat16/4096", image(16, 4096, 300, &["--mbr=y"])),
        ("fat32/4096", image(32, 4096, 300, &["-s", "1"])),
    ]
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed).collect()
}

#[test]
fn files_and_directories_round_trip_through_mtools() {
    for (what, img) in layouts() {
        let big = pattern(300_000, 1);
        {
            let fs = img.mount();
            fs.write("/hello.txt", b"hello").unwrap();
            fs.create_dir("/Some Directory").unwrap();
            fs.create_dir("/Some Directory/nested").unwrap();
            fs.write("/Some Directory/nested/A Long File Name.data", &big).unwrap();
            let mut f = fs.append("/LOG.TXT").unwrap();
            f.write_all(b"one ").unwrap();
            f.close().unwrap();
            let mut f = fs.append("/log.txt").unwrap();
            f.write_all(b"two").unwrap();
            f.close().unwrap();
            assert_eq!(
                fs.read("/Some directory/NESTED/a long file name.DATA").unwrap(),
                big,
                "{what}"
            );
            let names: Vec<String> =
                fs.read_dir("/").unwrap().into_iter().map(|e| e.name).collect();
            assert_eq!(names, ["hello.txt", "Some Directory", "LOG.TXT"], "{what}");
        }
        img.fsck();
        assert_eq!(img.mtype("/hello.txt"), b"hello", "{what}");
        assert_eq!(img.mtype("/LOG.TXT"), b"one two", "{what}");
        assert_eq!(img.mtype("/Some Directory/nested/A Long File Name.data"), big, "{what}");
        let listing = img.mtools("mdir", &["-a", "::/Some Directory/nested"]);
        assert!(listing.contains("A Long File Name.data"), "{what}: {listing}");
        assert!(listing.contains("ALONGF~1 DAT"), "{what}: {listing}");
    }
}

#[test]
fn files_written_by_mtools_are_read() {
    for (what, img) in layouts() {
        let dir = std::env::temp_dir()
            .join(format!("libos-fs-src-{}-{what}", std::process::id()).replace('/', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let data = pattern(70_000, 7);
        std::fs::write(dir.join("Mixed Case Name.bin"), &data).unwrap();
        std::fs::write(dir.join("short.txt"), b"tiny").unwrap();
        img.mtools("mmd", &["::/Sub Dir"]);
        img.mtools("mcopy", &[dir.join("Mixed Case Name.bin").to_str().unwrap(), "::/Sub Dir/"]);
        img.mtools("mcopy", &[dir.join("short.txt").to_str().unwrap(), "::/"]);
        std::fs::remove_dir_all(&dir).unwrap();
        let fs = img.mount();
        assert_eq!(fs.read("/sub dir/mixed case name.BIN").unwrap(), data, "{what}");
        assert_eq!(fs.read("/SHORT.TXT").unwrap(), b"tiny", "{what}");
        let e = fs.read_dir("/Sub Dir").unwrap();
        assert_eq!(e[0].name, "Mixed Case Name.bin", "{what}");
        assert_eq!(e[0].metadata.len, 70_000, "{what}");
    }
}

#[test]
fn delete_rename_and_rmdir_leave_a_clean_volume() {
    for (what, img) in layouts() {
        {
            let fs = img.mount();
            let before = fs.stats().unwrap();
            fs.create_dir("/a").unwrap();
            fs.create_dir("/b").unwrap();
            fs.write("/a/first file.txt", &pattern(20_000, 2)).unwrap();
            fs.write("/a/second.txt", b"second").unwrap();
            // Within a directory, across directories, over a file.
            fs.rename("/a/first file.txt", "/a/renamed with a long name.txt").unwrap();
            fs.rename("/a/renamed with a long name.txt", "/b/moved.txt").unwrap();
            fs.rename("/a/second.txt", "/b/moved.txt").unwrap();
            assert_eq!(fs.read("/b/moved.txt").unwrap(), b"second", "{what}");
            assert_eq!(fs.metadata("/a/second.txt"), Err(FsError::NotFound));
            // A directory, with its contents; not into itself.
            fs.rename("/b", "/a/b2").unwrap();
            assert_eq!(fs.rename("/a", "/a/b2/inside"), Err(FsError::InvalidName));
            assert_eq!(fs.read("/a/b2/moved.txt").unwrap(), b"second", "{what}");
            assert_eq!(fs.remove_dir("/a"), Err(FsError::NotEmpty));
            assert_eq!(fs.remove_file("/a"), Err(FsError::IsADirectory));
            fs.remove_file("/a/b2/moved.txt").unwrap();
            fs.remove_dir("/a/b2").unwrap();
            fs.remove_dir("/a").unwrap();
            // Case-only rename keeps the file.
            fs.write("/case.txt", b"c").unwrap();
            fs.rename("/case.txt", "/Case.TXT").unwrap();
            assert_eq!(fs.read_dir("/").unwrap()[0].name, "Case.TXT");
            fs.remove_file("/case.txt").unwrap();
            fs.sync().unwrap();
            assert_eq!(fs.stats().unwrap(), before, "{what}: every cluster freed");
            assert!(fs.read_dir("/").unwrap().is_empty());
        }
        img.fsck();
    }
}

#[test]
fn moved_directories_point_back_at_their_new_parent() {
    let img = image(16, 512, 32, &[]);
    {
        let fs = img.mount();
        fs.create_dir("/x").unwrap();
        fs.create_dir("/y").unwrap();
        fs.create_dir("/x/inner").unwrap();
        fs.write("/x/inner/f", b"f").unwrap();
        fs.rename("/x/inner", "/y/inner").unwrap();
        fs.rename("/y", "/x/y").unwrap();
    }
    img.fsck();
    assert_eq!(img.mtype("/x/y/inner/f"), b"f");
}

#[test]
fn handles_share_a_file_and_removal_waits_for_the_last() {
    let img = image(32, 512, 40, &["-s", "1"]);
    {
        let fs = img.mount();
        let free = fs.stats().unwrap().free_clusters;
        let mut a = fs.create("/shared.bin").unwrap();
        let mut b = fs.open_rw("/shared.bin").unwrap();
        a.write_all(&pattern(5000, 3)).unwrap();
        assert_eq!(b.len(), 5000);
        let mut buf = vec![0; 5000];
        assert_eq!(b.read(&mut buf).unwrap(), 5000);
        assert_eq!(buf, pattern(5000, 3));
        b.seek(SeekFrom::Start(10_000)).unwrap();
        b.write_all(b"end").unwrap();
        assert_eq!(a.len(), 10_003);
        assert_eq!(fs.metadata("/shared.bin").unwrap().len, 10_003);
        let mut gap = [1u8; 10];
        assert_eq!(a.read_at(5000, &mut gap).unwrap(), 10);
        assert_eq!(gap, [0; 10]);
        fs.remove_file("/shared.bin").unwrap();
        assert_eq!(fs.metadata("/shared.bin"), Err(FsError::NotFound));
        a.write_all(b"still works").unwrap();
        let mut back = vec![0; 3];
        b.read_at(10_000, &mut back).unwrap();
        assert_eq!(back, b"end");
        a.close().unwrap();
        assert!(fs.stats().unwrap().free_clusters < free);
        drop(b);
        assert_eq!(fs.stats().unwrap().free_clusters, free);
    }
    img.fsck();
}

#[test]
fn set_len_truncate_and_sync() {
    for (what, img) in layouts() {
        {
            let fs = img.mount();
            let mut f = fs.create("/t.bin").unwrap();
            f.write_all(&pattern(100_000, 4)).unwrap();
            f.sync().unwrap();
            f.set_len(1000).unwrap();
            assert_eq!(f.len(), 1000);
            f.set_len(3000).unwrap();
            let mut buf = vec![0; 3000];
            f.read_at(0, &mut buf).unwrap();
            assert_eq!(buf[..1000], pattern(1000, 4)[..], "{what}");
            assert!(buf[1000..].iter().all(|&b| b == 0), "{what}");
            f.set_len(0).unwrap();
            f.write_all(b"x").unwrap();
            f.close().unwrap();
            // Truncating create of an existing file, left empty: no cluster.
            fs.write("/t.bin", b"").unwrap();
            assert_eq!(fs.metadata("/t.bin").unwrap().len, 0);
            fs.set_modified("/t.bin", 1_600_000_000).unwrap();
            assert_eq!(fs.metadata("/t.bin").unwrap().modified, 1_600_000_000);
        }
        img.fsck();
    }
}

#[test]
fn fsinfo_is_unknown_while_dirty_and_right_after_sync() {
    let img = image(32, 512, 40, &["-s", "1"]);
    let fs = img.mount();
    fs.write("/a", &pattern(10_000, 5)).unwrap();
    // Not synced: FSInfo says "unknown", which fsck.fat accepts.
    img.fsck();
    fs.sync().unwrap();
    img.fsck();
    let free = fs.stats().unwrap().free_clusters;
    drop(fs);
    let fs = img.mount();
    assert_eq!(fs.stats().unwrap().free_clusters, free);
}

#[test]
fn aliases_are_unique_and_lookups_ignore_case() {
    let img = image(16, 512, 32, &[]);
    {
        let fs = img.mount();
        for i in 0..8 {
            fs.write(&format!("/Long File Name Number {i}.text"), &[i as u8]).unwrap();
        }
        for i in 0..8 {
            assert_eq!(fs.read(&format!("/LONG FILE NAME NUMBER {i}.TEXT")).unwrap(), [i as u8]);
        }
        assert_eq!(
            fs.create_new("/long file name number 3.text").err(),
            Some(FsError::AlreadyExists)
        );
        assert_eq!(fs.read("/LONGFI~1.TEX").unwrap(), [0]);
        assert_eq!(fs.write("/bad:name", b""), Err(FsError::InvalidName));
        fs.write("/lower.txt", b"l").unwrap();
    }
    img.fsck();
    let listing = img.mtools("mdir", &["-a", "::/"]);
    for n in 1..=4 {
        assert!(listing.contains(&format!("LONGFI~{n} TEX")), "{listing}");
    }
    // Linux's shortname=mixed: an all-lower-case 8.3 name is stored short,
    // with the case bits; mtools shows it in lower case.
    assert!(listing.contains("lower    txt"), "{listing}");
}

#[test]
fn a_full_fixed_root_or_volume_is_no_space() {
    let img = image(12, 512, 1, &["-r", "16"]);
    let fs = img.mount();
    let mut n = 0;
    let err = loop {
        match fs.write(&format!("/F{n}"), b"x") {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!((err, n), (FsError::NoSpace, 16));
    fs.remove_file("/F0").unwrap();
    fs.create_dir("/d").unwrap();
    let mut f = fs.create("/d/big").unwrap();
    assert_eq!(write_until_error(&mut f), FsError::NoSpace);
    f.close().unwrap();
    drop(fs);
    img.fsck();
}

/// Appends 64 KiB at a time to `f` until a write fails: its error.
fn write_until_error(f: &mut File<'_>) -> FsError {
    loop {
        if let Err(e) = f.write_all(&[0xab; 65536]) {
            return e;
        }
    }
}

/// A FAT12 entry that straddles two cache pages (in either FAT copy) is
/// two writes, which a crash can tear apart: its cluster is never
/// allocated nor counted free, and a full volume's count says 0 when a
/// write finds no space.
#[test]
fn a_fat12_entry_across_two_pages_is_never_allocated() {
    let img = image(12, 512, 2, &["-s", "1"]);
    let fs = img.mount();
    let torn: Vec<u32> = {
        let v = fs.vol.borrow();
        (2..v.g.clusters + 2).filter(|&c| v.torn(c)).collect()
    };
    // One in the first FAT, one in the second (not 4 KiB apart).
    assert_eq!(torn.len(), 2, "{torn:?}");
    let before = fs.stats().unwrap();
    assert_eq!(before.free_clusters, before.total_clusters - 2);
    let mut f = fs.create("/big").unwrap();
    assert_eq!(write_until_error(&mut f), FsError::NoSpace);
    f.close().unwrap();
    assert_eq!(fs.stats().unwrap().free_clusters, 0);
    for &c in &torn {
        assert_eq!(fs.vol.borrow_mut().fat_get(c), Ok(0));
    }
    assert_eq!(fs.read("/big").unwrap().len() as u64, (before.total_clusters - 2) * 512);
    fs.remove_file("/big").unwrap();
    assert_eq!(fs.stats().unwrap().free_clusters, before.free_clusters);
    drop(fs);
    img.fsck();
}

/// A tiny deterministic generator for the corruption test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn corrupt_images_give_errors_not_panics() {
    let img = image(16, 512, 8, &["-s", "1", "--mbr=y"]);
    {
        let fs = img.mount();
        fs.create_dir("/dir").unwrap();
        for i in 0..20 {
            fs.write(&format!("/dir/file number {i}"), &pattern(700 * i, i as u8)).unwrap();
        }
    }
    let pristine = std::fs::read(&img.path).unwrap();
    let meta_end = 64 * 1024;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let mut bytes = pristine.clone();
        for _ in 0..(rng.next() % 40 + 1) {
            let at = (rng.next() % meta_end) as usize;
            bytes[at] = rng.next() as u8;
        }
        std::fs::write(&img.path, &bytes).unwrap();
        let Ok(fs) = mount(img.dev()) else { continue };
        let _ = fs.read_dir("/dir");
        for i in 0..20 {
            let p = format!("/dir/file number {i}");
            let _ = fs.read(&p);
            if i % 3 == 0 {
                let _ = fs.write(&p, b"new");
            }
            if i % 5 == 0 {
                let _ = fs.rename(&p, "/moved");
                let _ = fs.remove_file("/moved");
            }
        }
        let _ = fs.create_dir("/dir/sub");
        let _ = fs.remove_dir("/dir/sub");
        let _ = fs.stats();
        let _ = fs.sync();
    }
}

#[test]
fn loops_and_bad_links_are_corrupt() {
    let img = image(16, 512, 8, &["-s", "1"]);
    {
        let fs = img.mount();
        fs.write("/f", &pattern(5000, 9)).unwrap();
    }
    let fs = img.mount();
    let first = {
        let mut v = fs.vol.borrow_mut();
        let root = v.root();
        let e = v.lookup(root, "f").unwrap().unwrap();
        let first = e.first(false);
        // Its second cluster points back at the first.
        let second = match v.next(first).unwrap() {
            fat::Link::Next(c) => c,
            fat::Link::End => panic!("one cluster"),
        };
        v.fat_set(second, first).unwrap();
        v.flush().unwrap();
        first
    };
    assert_eq!(fs.read("/f"), Err(FsError::Corrupt));
    {
        let mut v = fs.vol.borrow_mut();
        v.fat_set(first, 0).unwrap();
        v.flush().unwrap();
    }
    assert_eq!(fs.read("/f"), Err(FsError::Corrupt));
    assert_eq!(fs.remove_file("/f"), Err(FsError::Corrupt));
}

#[test]
fn a_directory_of_many_files_grows_and_shrinks_cleanly() {
    let img = image(32, 512, 40, &["-s", "1"]);
    let n = 1500;
    {
        let fs = img.mount();
        fs.create_dir("/many").unwrap();
        for i in 0..n {
            fs.write(&format!("/many/a file with a long name {i}.txt"), format!("{i}").as_bytes())
                .unwrap();
        }
        assert_eq!(fs.read_dir("/many").unwrap().len(), n);
        for i in (0..n).step_by(7) {
            let p = format!("/MANY/A FILE WITH A LONG NAME {i}.TXT");
            assert_eq!(fs.read(&p).unwrap(), format!("{i}").as_bytes());
        }
        for i in (0..n).filter(|i| i % 2 == 0) {
            fs.remove_file(&format!("/many/a file with a long name {i}.txt")).unwrap();
        }
    }
    img.fsck();
    let listing = img.mtools("mdir", &["-a", "::/many"]);
    assert!(listing.contains("a file with a long name 1499.txt"), "{listing}");
    let fs = img.mount();
    for i in (1..n).step_by(2) {
        fs.remove_file(&format!("/many/a file with a long name {i}.txt")).unwrap();
    }
    fs.remove_dir("/many").unwrap();
    drop(fs);
    img.fsck();
}

/// What `fsck.fat -n` may say after a crash, by docs/storage.md's rules:
/// lost clusters, FATs that differ (the first one is used), FSInfo's count
/// unknown, and the one documented window of a growing file (its chain
/// longer than its size).
fn crash_verdict(img: &Img) -> Result<(), String> {
    let out = Command::new("fsck.fat").arg("-n").arg(&img.path).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        let ok = l.is_empty()
            || l.starts_with("fsck.fat ")
            || l.contains(" files, ")
            || l.starts_with("Free cluster summary uninitialized")
            || l.starts_with("FATs differ but appear to be intact")
            || l == "Using first FAT."
            || l.starts_with("Reclaimed ")
            || l.starts_with("Leaving filesystem unchanged");
        if l.starts_with("File size is ") && l.contains("cluster chain length is >") {
            // The documented window: the link written, the size not yet.
            i += 2;
            continue;
        }
        if l.starts_with('/')
            && i + 1 < lines.len()
            && lines[i + 1].trim().starts_with("File size is ")
        {
            i += 1;
            continue;
        }
        if !ok {
            return Err(text);
        }
        i += 1;
    }
    Ok(())
}

/// Every operation, as a crash test drives it (errors after the crash point
/// are expected and ignored).
/// Returns the writes made when `first.txt`'s sync returned and when the
/// rename that replaces it began.
fn crash_scenario(fs: &FileSystem) -> (u64, u64) {
    let _ = fs.create_dir("/dir");
    let _ = fs.write("/dir/first.txt", &pattern(3000, 1));
    let mut synced = u64::MAX;
    if let Ok(mut f) = fs.append("/dir/first.txt") {
        let _ = f.write_all(&pattern(5000, 2));
        if f.sync().is_ok() {
            synced = cache::crash::done();
        }
    }
    let _ = fs.write("/a long name for the second file.data", &pattern(1500, 3));
    let _ = fs.rename("/a long name for the second file.data", "/dir/moved with a long name.data");
    let renamed = cache::crash::done();
    let _ = fs.rename("/dir/first.txt", "/dir/moved with a long name.data");
    if let Ok(mut f) = fs.open_rw("/dir/moved with a long name.data") {
        let _ = f.set_len(700);
        let _ = f.close();
    }
    let _ = fs.create_dir("/dir/sub");
    let _ = fs.rename("/dir/sub", "/sub moved");
    let _ = fs.remove_dir("/sub moved");
    let _ = fs.write("/x", b"x");
    let _ = fs.remove_file("/x");
    let _ = fs.sync();
    (synced, renamed)
}

/// `first.txt` as the scenario syncs it.
fn first_synced() -> Vec<u8> {
    let mut v = pattern(3000, 1);
    v.extend_from_slice(&pattern(5000, 2));
    v
}

/// Runs `scenario` on `img` from `pristine` whole, then stopped after its
/// first N writes for every N: what `crash_verdict` refuses, and what
/// `check(N)` reports on the stopped disk, labelled with `what`. Also
/// returns the scenario's writes.
fn crash_reports(
    img: &Img,
    pristine: &[u8],
    what: &str,
    scenario: impl Fn(&FileSystem),
    check: impl Fn(u64) -> Option<String>,
) -> (Vec<String>, u64) {
    std::fs::write(&img.path, pristine).unwrap();
    cache::crash::arm(None);
    scenario(&img.mount());
    let total = cache::crash::done();
    img.fsck();
    let mut bad = Vec::new();
    for n in 0..total {
        std::fs::write(&img.path, pristine).unwrap();
        cache::crash::arm(Some(n));
        if let Ok(fs) = mount(img.dev()) {
            scenario(&fs);
        }
        cache::crash::arm(None);
        if let Err(report) = crash_verdict(img) {
            bad.push(format!("{what}, crash after write {n} of {total}:\n{report}"));
        }
        bad.extend(check(n).map(|m| format!("{what}, crash after write {n}: {m}")));
    }
    (bad, total)
}

#[test]
fn a_crash_after_any_write_leaves_only_what_the_rules_allow() {
    for (what, fat, mib, extra) in
        [("fat12", 12u8, 4u64, &["--mbr=y"][..]), ("fat32", 32, 40, &["-s", "1"][..])]
    {
        let img = image(fat, 512, mib, extra);
        let pristine = std::fs::read(&img.path).unwrap();
        cache::crash::arm(None);
        let (synced, renamed) = crash_scenario(&img.mount());
        let (bad, total) = crash_reports(
            &img,
            &pristine,
            what,
            |fs| {
                crash_scenario(fs);
            },
            // A file whose sync returned is intact (until it is renamed).
            |n| {
                let got = mount(img.dev()).and_then(|fs| fs.read("/dir/first.txt"));
                ((synced..renamed).contains(&n) && got.as_deref() != Ok(&first_synced()[..]))
                    .then(|| "first.txt lost its synced data".to_string())
            },
        );
        assert!(synced < renamed && renamed < total, "{what}: {synced} {renamed} {total}");
        assert!(total > 20, "{what}: {total} writes");
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}

/// Chains that cross the FAT's cache pages, which a flush writes one by
/// one in ascending order: a file whose last cluster is the last entry of
/// one page grows into the next (the link on the earlier page, the new
/// clusters' marks on the later one), and a cut on a later page than the
/// clusters it frees (the file's growth had wrapped to the start of the
/// volume). No crash may leave a chain that runs on into a free cluster
/// (fsck.fat: "Contains a free cluster").
#[test]
fn a_crash_inside_a_chain_that_crosses_fat_pages_leaves_no_free_cluster_in_it() {
    const CS: usize = 512;
    let img = image(16, 512, 16, &["-s", "1"]);
    // Cluster `b`'s FAT16 entry is the first of a cache page.
    let (fat_off, page) = {
        let fs = img.mount();
        let v = fs.vol.borrow();
        (v.g.fat_off, v.cache.page)
    };
    let b = ((fat_off / page + 1) * page - fat_off) as usize / 2;
    {
        // /t at `b`, after `b - 2` clusters freed: the next mount
        // allocates from cluster 2 again.
        let fs = img.mount();
        fs.write("/pad", &pattern((b - 2) * CS, 4)).unwrap();
        fs.write("/t", &pattern(3 * CS, 5)).unwrap();
        fs.remove_file("/pad").unwrap();
        fs.sync().unwrap();
    }
    img.fsck();
    let pristine = std::fs::read(&img.path).unwrap();
    let scenario = |fs: &FileSystem| {
        let Ok(mut f) = fs.append("/t") else { return };
        // Clusters 2 to b - 1, linked from /t's third (page after).
        let _ = f.write_all(&pattern((b - 2) * CS, 6));
        let _ = f.sync();
        // From b - 1, the last entry of its page, on into the next page.
        let _ = f.write_all(&pattern(5 * CS, 7));
        let _ = f.sync();
        // The cut at /t's third cluster; the rest goes on on the page
        // before.
        let _ = f.set_len(3 * CS as u64);
        let _ = f.close();
        let _ = fs.sync();
    };
    let (bad, total) = crash_reports(&img, &pristine, "fat16", scenario, |_| None);
    assert!(total > 10, "{total} writes");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    std::fs::write(&img.path, &pristine).unwrap();
    scenario(&img.mount());
    assert_eq!(img.mount().read("/t").unwrap(), pattern(3 * CS, 5));
}

/// Random creates, removes, renames, mkdirs and rmdirs in two directories
/// (the fixed root of FAT12/16 among them), with every lookup checked
/// against a model: the name indexes must answer as the disk does, found
/// and not found, and leave a volume whose listing (on a fresh mount, which
/// has no index) is the model's, with unique aliases (fsck.fat).
#[test]
fn name_indexes_agree_with_the_disk() {
    use std::collections::BTreeMap;
    for (what, img) in layouts() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ what.len() as u64);
        // Lower-cased path -> (stored path, content); None: a directory.
        let mut model: BTreeMap<String, (String, Option<u8>)> = BTreeMap::new();
        let dirs = ["", "/sub"];
        let names = |k: u64| match k % 4 {
            0 => format!("f{}.txt", k % 97),
            1 => format!("A Long Name {}.data", k % 89),
            2 => format!("longername{}.text", k % 83),
            _ => format!("D{}", k % 31),
        };
        {
            let fs = img.mount();
            fs.create_dir("/sub").unwrap();
            model.insert("/sub".into(), ("/sub".into(), None));
            for step in 0..1200u32 {
                let r = rng.next();
                let dir = dirs[(r >> 8) as usize % 2];
                let path = format!("{dir}/{}", names(r >> 16));
                let low = path.to_lowercase();
                match r % 8 {
                    0..=2 => {
                        let byte = step as u8;
                        match fs.create_new(&path) {
                            Ok(mut f) => {
                                assert!(!model.contains_key(&low), "{what}: {path} existed");
                                f.write_all(&[byte]).unwrap();
                                f.close().unwrap();
                                model.insert(low, (path, Some(byte)));
                            }
                            Err(FsError::AlreadyExists) => {
                                assert!(model.contains_key(&low), "{what}: {path} absent");
                            }
                            Err(FsError::IsADirectory) => assert!(model[&low].1.is_none()),
                            Err(FsError::NoSpace) => assert_eq!(dir, "", "{what}"),
                            Err(e) => panic!("{what}: create {path}: {e}"),
                        }
                    }
                    3 => match fs.remove_file(&path) {
                        Ok(()) => assert!(model.remove(&low).unwrap().1.is_some(), "{what}"),
                        Err(FsError::NotFound) => assert!(!model.contains_key(&low), "{what}"),
                        Err(FsError::IsADirectory) => assert!(model[&low].1.is_none()),
                        Err(e) => panic!("{what}: remove {path}: {e}"),
                    },
                    4 => {
                        let to = format!("{}/{}", dirs[(r >> 40) as usize % 2], names(r >> 44));
                        let tlow = to.to_lowercase();
                        match fs.rename(&path, &to) {
                            Ok(()) => {
                                let (_, v) = model.remove(&low).unwrap();
                                model.insert(tlow, (to, v));
                            }
                            Err(FsError::NotFound) => assert!(!model.contains_key(&low), "{what}"),
                            Err(
                                FsError::IsADirectory | FsError::NotADirectory | FsError::NotEmpty,
                            ) => {}
                            Err(FsError::NoSpace) => {}
                            Err(e) => panic!("{what}: rename {path} {to}: {e}"),
                        }
                    }
                    5 => match fs.create_dir(&path) {
                        Ok(()) => {
                            assert!(!model.contains_key(&low), "{what}: {path} existed");
                            model.insert(low, (path, None));
                        }
                        Err(FsError::AlreadyExists) => assert!(model.contains_key(&low)),
                        Err(FsError::NoSpace) => {}
                        Err(e) => panic!("{what}: mkdir {path}: {e}"),
                    },
                    6 => match fs.remove_dir(&path) {
                        Ok(()) => assert!(model.remove(&low).unwrap().1.is_none(), "{what}"),
                        Err(FsError::NotFound) => assert!(!model.contains_key(&low), "{what}"),
                        Err(FsError::NotADirectory) => assert!(model[&low].1.is_some()),
                        Err(e) => panic!("{what}: rmdir {path}: {e}"),
                    },
                    _ => {
                        // A lookup in another case.
                        let up = path.to_uppercase();
                        match (fs.read(&up), model.get(&low)) {
                            (Ok(data), Some((_, Some(b)))) => assert_eq!(data, [*b], "{what}"),
                            (Err(FsError::NotFound), None) => {}
                            (Err(FsError::IsADirectory), Some((_, None))) => {}
                            (r, m) => panic!("{what}: read {up}: {r:?}, model {m:?}"),
                        }
                    }
                }
            }
            for (low, (_, v)) in &model {
                match v {
                    Some(b) => assert_eq!(fs.read(low).unwrap(), [*b], "{what}: {low}"),
                    None => assert!(fs.metadata(low).unwrap().is_dir, "{what}: {low}"),
                }
            }
        }
        img.fsck();
        let fs = img.mount();
        let mut listed: Vec<String> = Vec::new();
        for dir in dirs {
            for e in fs.read_dir(if dir.is_empty() { "/" } else { dir }).unwrap() {
                listed.push(format!("{dir}/{}", e.name));
            }
        }
        listed.sort_by_key(|p| p.to_lowercase());
        let want: Vec<String> = model.values().map(|(p, _)| p.clone()).collect();
        assert_eq!(listed, want, "{what}");
        let straddling = straddling_entries(&fs, &dirs);
        assert!(straddling.is_empty(), "{what}: entries across pages: {straddling:?}");
    }
}

/// The entries of `dirs` whose slots lie in more than one cache page,
/// where a page could have held them (new entries never should: deleting
/// one is then one write, which a kill cannot cut in two).
fn straddling_entries(fs: &FileSystem, dirs: &[&str]) -> Vec<String> {
    let mut vol = fs.vol.borrow_mut();
    let mut bad = Vec::new();
    for dir in dirs {
        let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        let (loc, _) = vol.walk(&parts).unwrap();
        for e in vol.list(loc).unwrap() {
            if vol.one_page(loc, e.slots.len()).is_some() && !vol.same_page(&e.slots) {
                bad.push(format!("{dir}/{}: {:?}", e.name, e.slots));
            }
        }
    }
    bad
}

/// New entries lie in one page even where the free space does not line up
/// with pages: a directory's free tail starting just before a page
/// boundary is passed over (its slots marked deleted, so the entry after
/// them is still seen), in the fixed root, in a chain and when a chain
/// grows; and a scan without an index (a fresh mount) places entries as the
/// index does.
#[test]
fn new_entries_lie_in_one_page() {
    for (what, img) in layouts() {
        let names: Vec<String> = (0..300)
            .map(|i| format!("{}{i}.txt", "entry with a long name ".repeat(1 + i % 3)))
            .collect();
        let fs = img.mount();
        fs.create_dir("/d").unwrap();
        for (i, name) in names.iter().enumerate() {
            let dir = if i % 2 == 0 { "/d" } else { "" };
            match fs.write(&format!("{dir}/{name}"), name.as_bytes()) {
                Ok(()) => {}
                Err(FsError::NoSpace) if dir.is_empty() => {}
                Err(e) => panic!("{what}: {dir}/{name}: {e}"),
            }
            if i % 5 == 4 {
                // Free a run of slots, then remount now and then so that
                // the next creates come from a scan, not the index.
                let _ = fs.remove_file(&format!("{dir}/{}", names[i - 2]));
            }
        }
        drop(fs);
        let fs = img.mount();
        let mut renamed = Vec::new();
        for i in (200..280).step_by(2) {
            let to = format!("/d/renamed {i} with a longer name than before.txt");
            match fs.rename(&format!("/d/{}", names[i]), &to) {
                Ok(()) => renamed.push((to, &names[i])),
                Err(FsError::NotFound) => {}
                Err(e) => panic!("{what}: rename {}: {e}", names[i]),
            }
        }
        for (to, name) in &renamed {
            assert_eq!(fs.read(to).unwrap(), name.as_bytes(), "{what}: {to}");
        }
        assert!(renamed.len() > 20, "{what}: {} renamed", renamed.len());
        let straddling = straddling_entries(&fs, &["", "/d"]);
        assert!(straddling.is_empty(), "{what}: entries across pages: {straddling:?}");
        for (i, name) in names.iter().enumerate() {
            let dir = if i % 2 == 0 { "/d" } else { "" };
            match fs.read(&format!("{dir}/{name}")) {
                Ok(data) => assert_eq!(data, name.as_bytes(), "{what}"),
                Err(FsError::NotFound) => {}
                Err(e) => panic!("{what}: {dir}/{name}: {e}"),
            }
        }
        let listed = fs.read_dir("/d").unwrap().len();
        assert!(listed >= 100, "{what}: {listed} entries in /d");
        drop(fs);
        img.fsck();
    }
}

/// A handle's metadata is its path's (the same id, length, kind), and
/// `NotFound` once the file is removed.
#[test]
fn a_handle_knows_its_metadata() {
    let img = image(32, 512, 40, &["-s", "1"]);
    let fs = img.mount();
    fs.create_dir("/d").unwrap();
    let mut f = fs.create_new("/d/A file with a long name.txt").unwrap();
    f.write_all(&pattern(3000, 1)).unwrap();
    let by_path = fs.metadata("/D/a file with a long name.TXT").unwrap();
    assert_eq!(f.metadata().unwrap(), by_path);
    assert!(!by_path.is_dir && by_path.len == 3000);
    fs.remove_file("/d/A file with a long name.txt").unwrap();
    assert_eq!(f.metadata().err(), Some(FsError::NotFound));
    drop(f);
    drop(fs);
    img.fsck();
}

/// Reads at random offsets of large fragmented files (two files written in
/// turns, so that their chains interleave) find the right bytes through
/// the chain's marks: before the file's clusters are committed (the
/// pending chain), after, and after the file shrank and grew again.
#[test]
fn random_reads_of_a_fragmented_file_find_their_clusters() {
    for (what, img) in layouts() {
        {
            let fs = img.mount();
            let mut a = fs.create("/a.bin").unwrap();
            let mut b = fs.create("/b.bin").unwrap();
            let (len, step) = (600_000usize, 3_000usize);
            let (pa, pb) = (pattern(len, 1), pattern(len, 2));
            for at in (0..len).step_by(step) {
                a.write_all(&pa[at..at + step]).unwrap();
                b.write_all(&pb[at..at + step]).unwrap();
            }
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let mut check = |f: &mut crate::fs::File<'_>, p: &[u8], len: usize| {
                for _ in 0..300 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let at = (seed % len as u64) as usize;
                    let n = (len - at).min(700);
                    let mut buf = vec![0; n];
                    assert_eq!(f.read_at(at as u64, &mut buf).unwrap(), n, "{what}");
                    assert_eq!(buf, p[at..at + n], "{what} at {at}");
                }
            };
            check(&mut a, &pa, len);
            a.flush().unwrap();
            b.flush().unwrap();
            check(&mut a, &pa, len);
            check(&mut b, &pb, len);
            a.set_len(200_000).unwrap();
            a.set_len(len as u64).unwrap();
            let mut grown = pa[..200_000].to_vec();
            grown.resize(len, 0);
            check(&mut a, &grown, len);
            a.close().unwrap();
            b.close().unwrap();
        }
        img.fsck();
        assert_eq!(img.mtype("/b.bin"), pattern(600_000, 2), "{what}");
    }
}
