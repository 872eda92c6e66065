//! libos's FAT file system on a corrupt disk: mounting (MBR or bare volume),
//! walking every directory, reading every file whole and in pieces, and
//! every operation that writes (create, write, append, set_len, two handles
//! on a file, rename within and across directories and over a file, delete,
//! delete while open, mkdir, rmdir, set_modified, sync), over libos's block
//! device. Afterwards, the bytes around the volume must be as they were:
//! nothing is written outside it.
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
        let (start, len) = fs.volume_bounds();
        let before = outside(fd, start, len);
        exercise(&fs);
        drop(fs);
        assert!(before == outside(fd, start, len), "a write outside the volume");
    }
    // SAFETY: fd is ours, closed once.
    unsafe { libc::close(fd) };
});

fn exercise(fs: &FileSystem) {
    let mut dirs = vec![String::from("/")];
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
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
            let _ = fs.times(&path);
            if e.metadata.is_dir {
                dirs.push(path.clone());
                subdirs.push(path);
            } else {
                files.push(path);
            }
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
    // What libos-std's files do: open for writing at an offset, two handles
    // on one file, set_len both ways, rewrite (a truncating create of an
    // existing file), create a new one.
    for path in files.iter().skip(1).take(3) {
        if let Ok(mut f) = fs.open_rw(path) {
            let _ = f.seek(SeekFrom::Start(f.len() / 2));
            let _ = f.write_all(&[0xaa; 300]);
            let _ = f.flush();
            if let Ok(g) = fs.open(path) {
                let mut buf = [0u8; 64];
                let _ = g.read_at(f.len().saturating_sub(10), &mut buf);
            }
            let _ = f.set_len(f.len() / 3);
            let _ = f.set_len(f.len() + 5000);
            let _ = f.write_at(70_000, b"far");
            let _ = f.sync();
        }
        if let Ok(mut f) = fs.create(path) {
            let _ = f.write_all(b"rewritten");
            let _ = f.close();
        }
    }
    if let Ok(mut f) = fs.create_new("/a new file with a long name.bin") {
        let _ = f.write_all(&[7; 5000]);
        let _ = f.close();
    }
    let _ = fs.create_dir("/New Directory");
    let _ = fs.write("/New Directory/a.txt", b"a");
    let _ = fs.read_dir("/New Directory");
    // Renames within and across directories, over a file, of directories;
    // removals; a file removed while open.
    for (i, path) in files.iter().enumerate().take(6) {
        match i % 3 {
            0 => {
                let _ = fs.rename(path, &format!("/renamed number {i}.data"));
            }
            1 => {
                let _ = fs.rename(path, "/New Directory/a.txt");
            }
            _ => {
                let open = fs.open(path);
                let _ = fs.remove_file(path);
                if let Ok(f) = open {
                    let mut buf = [0u8; 32];
                    let _ = f.read_at(0, &mut buf);
                }
            }
        }
    }
    for dir in subdirs.iter().take(4) {
        let _ = fs.rename(dir, "/New Directory/moved");
        let _ = fs.remove_dir("/New Directory/moved");
        let _ = fs.remove_dir(dir);
    }
    let _ = fs.rename("/New Directory", "/New Directory/inside");
    let _ = fs.remove_file("/New Directory/a.txt");
    let _ = fs.remove_dir("/New Directory");
    let _ = fs.set_modified("/FUZZ.TXT", 1_700_000_000);
    let _ = fs.stats();
    let _ = fs.sync();
}

/// The disk's bytes just before and just after the volume (up to 1 MiB on
/// each side).
fn outside(fd: i32, start: u64, len: u64) -> Vec<u8> {
    const SPAN: u64 = 1 << 20;
    let end = start.saturating_add(len).min(DISK_SIZE);
    let before = (start.saturating_sub(SPAN), start);
    let after = (end, end.saturating_add(SPAN).min(DISK_SIZE));
    let mut out = Vec::new();
    for (a, b) in [before, after] {
        let mut buf = vec![0u8; (b - a) as usize];
        // SAFETY: fd is the open memfd; buf is valid for its length.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), a as i64) };
        assert_eq!(n, buf.len() as isize);
        out.extend_from_slice(&buf);
    }
    out
}
