//! libos's FAT file system on a corrupt disk: mounting (MBR or bare volume),
//! walking every directory, reading every file whole and in pieces, and
//! writing (a new file, an append, a new directory), over libos's block
//! device and its read-ahead adapter for embedded-sdmmc.
//!
//! The disk is a 64 MiB memfd that starts with the input (zeros after it), attached as the tender attaches a
//! guest's disk: a device in the boot info with its fd, capacity and sector
//! size (the hypercalls are plain `pread64` and `pwrite64`, which work in
//! this process). The input's first byte
//! picks the sector size (512 to 4096) and whether the disk is read-only.

#![no_main]

use libfuzzer_sys::fuzz_target;
use libos::fs::{FileSystem, SeekFrom};

/// The disk: the input, then zeros (a sparse memfd, which costs only what
/// is read). Large enough for FAT32, which needs 65525 clusters.
const DISK_SIZE: u64 = 64 << 20;

/// Most entries walked, so that a directory cycle on a corrupt disk cannot
/// keep one input running for long (cycles are a fault of the disk, found
/// by `fsck`; libos walks only the paths it is given).
const WALK_LIMIT: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, image)) = data.split_first() else { return };
    let sector_size = 512u32 << (mode & 0x3);
    let read_only = mode & 0x4 != 0;
    // SAFETY: a fresh memfd, owned here and closed at the end.
    let fd = unsafe { libc::memfd_create(c"disk".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: fd is ours; image is valid for its length.
    unsafe {
        assert_eq!(libc::ftruncate(fd, DISK_SIZE as i64), 0);
        let n = libc::write(fd, image.as_ptr().cast(), image.len().min(DISK_SIZE as usize));
        assert!(n >= 0);
    }
    let capacity = DISK_SIZE;
    let mut disk = nabla_fuzz::device("storage", abi::DeviceKind::Block, fd);
    disk.sector_size = sector_size;
    disk.capacity = capacity;
    disk.flags = if read_only { abi::DEVICE_FLAG_READ_ONLY } else { 0 };
    nabla_fuzz::write_boot_region(&[], &[], &[disk], abi::log_level::OFF).unwrap();
    assert_eq!(libos::fuzzing::boot(abi::BOOT_REGION_START as usize), Ok(true));
    let dev = libos::block::device("storage").expect("the disk is attached");
    let mounted = libos::fs::mount(dev);
    if std::env::var_os("NABLA_FUZZ_DEBUG").is_some() {
        eprintln!("mount: {:?}", mounted.as_ref().map(|_| ()));
    }
    if let Ok(fs) = mounted {
        exercise(&fs);
    }
    // SAFETY: fd is ours, closed once.
    unsafe { libc::close(fd) };
});

fn exercise(fs: &FileSystem) {
    let mut dirs = vec![String::from("/")];
    let mut files = Vec::new();
    let mut walked = 0;
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs.read_dir(&dir) else { continue };
        for e in entries {
            walked += 1;
            if walked > WALK_LIMIT {
                break;
            }
            if e.name == "." || e.name == ".." || e.name.is_empty() {
                continue;
            }
            let path =
                if dir == "/" { format!("/{}", e.name) } else { format!("{dir}/{}", e.name) };
            let _ = fs.metadata(&path);
            if e.metadata.is_dir { dirs.push(path) } else { files.push(path) }
        }
    }
    for path in files.iter().take(16) {
        if let Ok(whole) = fs.read(path) {
            let mut buf = [0u8; 700];
            if let Ok(n) = fs.read_at(path, 3, &mut buf) {
                assert_eq!(&buf[..n], whole.get(3..3 + n).unwrap_or(&[]), "{path}");
            }
        }
        if let Ok(mut f) = fs.open(path) {
            let mut buf = [0u8; 100];
            let _ = f.seek(SeekFrom::End(0));
            let _ = f.seek(SeekFrom::Start(1));
            let _ = f.read(&mut buf);
        }
    }
    let _ = fs.write("/FUZZ.TXT", b"written by the fuzz target");
    let _ = fs.read("/FUZZ.TXT");
    if let Some(path) = files.first() {
        if let Ok(mut f) = fs.append(path) {
            let _ = f.write_all(&[0x55; 600]);
            let _ = f.close();
        }
    }
    // What libos-std's files do: open for writing at an offset, rewrite
    // (a truncating create of an existing file), create a new one.
    for path in files.iter().skip(1).take(3) {
        if let Ok(mut f) = fs.open_rw(path) {
            let _ = f.seek(SeekFrom::Start(f.len() / 2));
            let _ = f.write_all(&[0xaa; 300]);
            let _ = f.flush();
        }
        if let Ok(mut f) = fs.create(path) {
            let _ = f.write_all(b"rewritten");
            let _ = f.close();
        }
    }
    if let Ok(mut f) = fs.create_new("/NEW.BIN") {
        let _ = f.write_all(&[7; 5000]);
        let _ = f.close();
    }
    let _ = fs.create_dir("/NEWDIR");
    let _ = fs.write("/NEWDIR/A.TXT", b"a");
    let _ = fs.read_dir("/NEWDIR");
    let _ = fs.sync();
}
