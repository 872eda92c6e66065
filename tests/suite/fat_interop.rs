//! libos's FAT and the standard tools, both ways: every operation a std
//! guest does through std::fs (tests/std/src/bin/std-fat-ops.rs) is read
//! back with mtools and checked with `fsck.fat -n`, and what mtools writes
//! (`mcopy`, `mmd`, `mren`, `mdel`, `mrd`) is read and then changed by the
//! guest, and read back again. Long names included: mixed case, Unicode,
//! names that need `~N` aliases, and 8.3 names that differ only in case
//! (one file on FAT). On FAT12, FAT16 and FAT32, with 512-byte and 4 KiB
//! sectors (`mkfs.fat -S 4096`, the disk attached with the same sector
//! size).

mod support;

use std::path::PathBuf;

use support::{Outcome, TempDir, fat_tool, run, std_guest};

use support::pattern::pattern;

/// A disk made by mkfs.fat: FAT `bits`, `sector` bytes a sector, `mib`.
struct Disk {
    img: PathBuf,
    sector: u32,
}

impl Disk {
    fn new(dir: &TempDir, bits: u32, sector: u32, mib: u64) -> Self {
        let img = dir.path().join(format!("fat{bits}-{sector}.img"));
        std::fs::File::create(&img).unwrap().set_len(mib << 20).unwrap();
        let (b, s) = (bits.to_string(), sector.to_string());
        fat_tool(
            "mkfs.fat",
            &["-F", &b, "-S", &s, "--mbr=y", "-n", "INTEROP", img.to_str().unwrap()],
        );
        Self { img, sector }
    }

    fn s(&self) -> &str {
        self.img.to_str().unwrap()
    }

    /// Runs std-fat-ops with `ops` on the disk.
    fn guest(&self, ops: &[&str]) -> Outcome {
        let mut args = vec![
            "--block".to_string(),
            format!("storage={}", self.s()),
            "--block-sector-size".to_string(),
            format!("storage={}", self.sector),
            std_guest("std-fat-ops"),
        ];
        args.extend(ops.iter().map(|s| s.to_string()));
        run(&args)
    }

    /// Runs `ops`; every one must succeed.
    fn guest_ok(&self, ops: &[&str]) -> String {
        let out = self.guest(ops);
        assert_eq!(out.code(), Some(0), "{out:#?}");
        assert!(
            !out.stdout.lines().any(|l| l.starts_with("err ")),
            "{}: an operation failed:\n{}",
            self.s(),
            out.stdout
        );
        out.stdout
    }

    /// Every path on the disk, as `mdir -/ -b` lists them (directories end
    /// in `/`), sorted.
    fn tree(&self) -> Vec<String> {
        let out = fat_tool("mdir", &["-/", "-b", "-i", self.s(), "::/"]);
        let mut paths: Vec<String> = out
            .lines()
            .map(|l| l.trim_start_matches("::").to_string())
            .filter(|l| !l.ends_with("/./") && !l.ends_with("/../") && !l.is_empty())
            .collect();
        paths.sort();
        paths
    }

    fn mtype(&self, path: &str) -> String {
        fat_tool("mtype", &["-i", self.s(), &format!("::{path}")])
    }

    fn get(&self, path: &str, dir: &TempDir) -> Vec<u8> {
        let out = dir.path().join("got");
        let _ = std::fs::remove_file(&out);
        fat_tool("mcopy", &["-n", "-i", self.s(), &format!("::{path}"), out.to_str().unwrap()]);
        std::fs::read(&out).unwrap()
    }

    /// `fsck.fat -n`: no error of any kind (lost clusters included).
    fn fsck(&self) {
        let out = fat_tool("fsck.fat", &["-n", self.s()]);
        assert!(
            !out.contains("Reclaim") && !out.contains("lost") && !out.contains("Free cluster"),
            "{}: {out}",
            self.s()
        );
    }
}

/// What the guest does in [`libos_writes_and_mtools_reads_it_back`].
#[rustfmt::skip]
const GUEST_OPS: &[&str] = &[
    "mkdirs", "/Docs/Sub Dir",
    "write", "/Docs/Sub Dir/Mixed Case File.TXT", "mixed",
    "write", "/readme.txt", "lower",
    // The same 8.3 name in other case: the same file, its name kept.
    "write", "/README.TXT", "upper",
    "write", "/Notes.md", "notes",
    "write", "/unicode ñandú 日本語.txt", "unicode",
    "write", "/verylongname1.txt", "1",
    "write", "/verylongname2.txt", "2",
    "write", "/verylongname3.txt", "3",
    "write", "/UPPER LONG NAME.TXT", "upper long",
    "fill", "/Docs/big.bin", "300000", "42",
    "fill", "/gone.bin", "100000", "1",
    "rm", "/gone.bin",
    "mkdir", "/Empty",
    "rmdir", "/Empty",
    "write", "/old name.txt", "renamed",
    "mv", "/old name.txt", "/Docs/New Name.txt",
    "mv", "/Docs/Sub Dir", "/Moved Dir",
    "write", "/replaced.txt", "old",
    "write", "/replacement.txt", "new",
    "mv", "/replacement.txt", "/replaced.txt",
    "touch", "/Notes.md", "1600000000",
    "fill", "/shrink.bin", "100000", "5",
    "setlen", "/shrink.bin", "3000",
    "fill", "/grow.bin", "10", "6",
    "setlen", "/grow.bin", "9000",
    "mkdirs", "/Tree/a/b/c",
    "write", "/Tree/a/b/c/leaf.txt", "leaf",
    "rmall", "/Tree",
];

fn libos_writes_and_mtools_reads_it_back(bits: u32, sector: u32, mib: u64) {
    let dir = TempDir::new(&format!("interop-w{bits}-{sector}"));
    let disk = Disk::new(&dir, bits, sector, mib);
    disk.guest_ok(GUEST_OPS);
    let what = format!("FAT{bits}, {sector} B sectors");
    assert_eq!(
        disk.tree(),
        [
            "/Docs/",
            "/Docs/New Name.txt",
            "/Docs/big.bin",
            "/Moved Dir/",
            "/Moved Dir/Mixed Case File.TXT",
            "/Notes.md",
            "/UPPER LONG NAME.TXT",
            "/grow.bin",
            "/readme.txt",
            "/replaced.txt",
            "/shrink.bin",
            "/unicode ñandú 日本語.txt",
            "/verylongname1.txt",
            "/verylongname2.txt",
            "/verylongname3.txt",
        ],
        "{what}"
    );
    assert_eq!(disk.mtype("/readme.txt"), "upper", "{what}");
    assert_eq!(disk.mtype("/Moved Dir/Mixed Case File.TXT"), "mixed", "{what}");
    assert_eq!(disk.mtype("/unicode ñandú 日本語.txt"), "unicode", "{what}");
    assert_eq!(disk.mtype("/Docs/New Name.txt"), "renamed", "{what}");
    assert_eq!(disk.mtype("/replaced.txt"), "new", "{what}");
    assert_eq!(disk.get("/Docs/big.bin", &dir), pattern(300_000, 42), "{what}");
    assert_eq!(disk.get("/shrink.bin", &dir), pattern(100_000, 5)[..3000], "{what}");
    let mut grown = pattern(10, 6);
    grown.resize(9000, 0);
    assert_eq!(disk.get("/grow.bin", &dir), grown, "{what}");
    // The aliases Linux's vfat gives (and mtools reads).
    let short = fat_tool("mdir", &["-i", disk.s(), "::/"]);
    // (mdir shows a lower-case 8.3 name, stored with VFAT's case bits and
    // no long name, in lower case.)
    for alias in ["VERYLO~1 TXT", "VERYLO~2 TXT", "VERYLO~3 TXT", "readme   txt", "NOTES    MD"] {
        assert!(short.contains(alias), "{what}: {alias}: {short}");
    }
    assert!(short.contains("2020-09-13  12:26"), "{what}: Notes.md's time: {short}");
    disk.fsck();
}

/// mtools writes; the guest reads, changes; mtools reads again.
fn mtools_writes_and_libos_reads_and_changes_it(bits: u32, sector: u32, mib: u64) {
    let dir = TempDir::new(&format!("interop-r{bits}-{sector}"));
    let disk = Disk::new(&dir, bits, sector, mib);
    let host = dir.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let put = |name: &str, bytes: &[u8], to: &str| {
        let f = host.join(name);
        std::fs::write(&f, bytes).unwrap();
        fat_tool("mcopy", &["-i", disk.s(), f.to_str().unwrap(), &format!("::{to}")]);
    };
    fat_tool("mmd", &["-i", disk.s(), "::/Dir From Host"]);
    fat_tool("mmd", &["-i", disk.s(), "::/Dir From Host/Empty Host Dir"]);
    put("a", b"host", "/Host Long Name.txt");
    put("b", b"mixed", "/MiXeD.TxT");
    put("c", b"lower", "/lower.txt");
    put("d", "ünï".as_bytes(), "/Ünïcödé.txt");
    put("e", &pattern(200_000, 9), "/Dir From Host/big.bin");
    put("f", b"doomed", "/doomed.txt");
    fat_tool("mren", &["-i", disk.s(), "::/Host Long Name.txt", "::/Renamed By Host.txt"]);
    fat_tool("mdel", &["-i", disk.s(), "::/doomed.txt"]);
    fat_tool("mmd", &["-i", disk.s(), "::/gone"]);
    fat_tool("mrd", &["-i", disk.s(), "::/gone"]);
    let what = format!("FAT{bits}, {sector} B sectors");

    #[rustfmt::skip]
    let s = disk.guest_ok(&[
        "ls", "/",
        "ls", "/Dir From Host",
        "cat", "/renamed by host.txt",
        "cat", "/MIXED.TXT",
        "cat", "/ünïcödé.txt",
        "same", "/Dir From Host/big.bin", "200000", "9",
        "append", "/Renamed By Host.txt", " + guest",
        "mv", "/lower.txt", "/Dir From Host/lower moved.txt",
        "rm", "/mixed.txt",
        "rmdir", "/Dir From Host/Empty Host Dir",
        "fill", "/Dir From Host/big.bin", "150000", "10",
    ]);
    for line in [
        "ok ls / = Dir From Host:d:0 MiXeD.TxT:f:5 Renamed By Host.txt:f:4 lower.txt:f:5 \
         Ünïcödé.txt:f:5\n",
        "ok ls /Dir From Host = Empty Host Dir:d:0 big.bin:f:200000\n",
        "ok cat /renamed by host.txt = host\n",
        "ok cat /MIXED.TXT = mixed\n",
        "ok cat /ünïcödé.txt = ünï\n",
        "ok same /Dir From Host/big.bin 200000 9 = true\n",
    ] {
        assert!(s.contains(line), "{what}: {line}: {s}");
    }
    let out = disk.guest(&["stat", "/doomed.txt", "ls", "/gone"]);
    assert!(out.stdout.contains("err stat /doomed.txt: NotFound errno 2"), "{what}: {out:#?}");
    assert!(out.stdout.contains("err ls /gone: NotFound errno 2"), "{what}: {out:#?}");

    assert_eq!(
        disk.tree(),
        [
            "/Dir From Host/",
            "/Dir From Host/big.bin",
            "/Dir From Host/lower moved.txt",
            "/Renamed By Host.txt",
            "/Ünïcödé.txt",
        ],
        "{what}"
    );
    assert_eq!(disk.mtype("/Renamed By Host.txt"), "host + guest", "{what}");
    assert_eq!(disk.mtype("/Dir From Host/lower moved.txt"), "lower", "{what}");
    assert_eq!(disk.get("/Dir From Host/big.bin", &dir), pattern(150_000, 10), "{what}");
    disk.fsck();
}

/// One test per disk of the matrix and direction, so that a failure
/// names its FAT and sector size.
macro_rules! both_ways {
    ($($write:ident, $read:ident: $bits:expr, $sector:expr, $mib:expr;)*) => {$(
        #[test]
        fn $write() {
            libos_writes_and_mtools_reads_it_back($bits, $sector, $mib);
        }

        #[test]
        fn $read() {
            mtools_writes_and_libos_reads_and_changes_it($bits, $sector, $mib);
        }
    )*};
}

both_ways! {
    fat12_512_libos_writes, fat12_512_mtools_writes: 12, 512, 4;
    fat16_512_libos_writes, fat16_512_mtools_writes: 16, 512, 32;
    fat32_512_libos_writes, fat32_512_mtools_writes: 32, 512, 64;
    fat12_4k_libos_writes, fat12_4k_mtools_writes: 12, 4096, 8;
    fat16_4k_libos_writes, fat16_4k_mtools_writes: 16, 4096, 64;
    fat32_4k_libos_writes, fat32_4k_mtools_writes: 32, 4096, 300;
}

#[test]
fn a_full_disk_is_no_space_and_stays_consistent() {
    let dir = TempDir::new("interop-full");
    let disk = Disk::new(&dir, 12, 512, 2);
    let out = disk.guest(&["fill", "/huge.bin", "4000000", "3", "rm", "/huge.bin", "df", "/"]);
    assert!(out.stdout.contains("err fill /huge.bin 4000000 3: StorageFull errno 28"), "{out:#?}");
    assert!(out.stdout.contains("ok rm /huge.bin\n"), "{out:#?}");
    disk.fsck();
    // Everything is free again, and the guest's statvfs counts what
    // fsck.fat counts.
    let fsck = fat_tool("fsck.fat", &["-n", disk.s()]);
    let total = fsck.rsplit('/').next().unwrap().split_whitespace().next().unwrap().to_string();
    assert!(out.stdout.contains(&format!("blocks={total} bfree={total} ")), "{fsck} {out:#?}");
}

#[test]
fn a_path_is_never_a_way_out_of_the_disk() {
    // Hostile names through std: dot-dot, NUL-free control characters,
    // names FAT cannot hold; nothing escapes, nothing panics, fsck clean.
    let dir = TempDir::new("interop-names");
    let disk = Disk::new(&dir, 16, 512, 32);
    let out = disk.guest(&[
        "write",
        "/../../etc/x.txt",
        "x",
        "write",
        "/a\u{1}b",
        "ctl",
        "write",
        "/trailing. ",
        "dots",
        "write",
        "/CON",
        "dos device names are plain names on FAT",
        "ls",
        "/",
    ]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(out.stdout.contains("err write /../../etc/x.txt x: NotFound"), "{out:#?}");
    disk.fsck();
}
