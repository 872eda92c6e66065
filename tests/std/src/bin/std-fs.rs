//! std::fs on the FAT disk `storage`: each argument names an area to
//! exercise (`open`, `rw`, `meta`, `dir`, `sync`, `paths`, `refused`,
//! `remove`, `rename`, `times`, `longnames`, `statvfs`, `ro`, `corrupt`,
//! and `exit HOW`, which writes and ends the program by `exit`, `_exit`,
//! `abort` or, with `signal`, waits for a signal's default action), and
//! the guest prints one line per check: `ok WHAT` or `err WHAT: KIND
//! (MESSAGE)`, what the suite (tests/suite/std_fs.rs) asserts. `bench
//! PATH` reads PATH with `std::fs::read` and prints how long it took. The
//! exit status is 0 unless something panicked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

libos_std::app!(devices: ["storage": Block]);

/// Prints `ok WHAT` or the error's kind.
fn check<T>(what: &str, r: io::Result<T>) -> Option<T> {
    match r {
        Ok(v) => {
            println!("ok {what}");
            Some(v)
        }
        Err(e) => {
            println!("err {what}: {:?} ({e})", e.kind());
            None
        }
    }
}

/// Prints `ok WHAT` if `r` failed with `kind`, else what happened.
fn expect_err<T: std::fmt::Debug>(what: &str, r: io::Result<T>, kind: ErrorKind) {
    match r {
        Err(e) if e.kind() == kind => println!("ok {what}: {kind:?}"),
        Err(e) => println!("WRONG {what}: {:?} ({e}), expected {kind:?}", e.kind()),
        Ok(v) => println!("WRONG {what}: succeeded ({v:?}), expected {kind:?}"),
    }
}

/// Prints `ok WHAT` if `r` failed with the error number `errno`.
fn expect_os<T: std::fmt::Debug>(what: &str, r: io::Result<T>, errno: i32) {
    match r {
        Err(e) if e.raw_os_error() == Some(errno) => println!("ok {what}: errno {errno}"),
        other => println!("WRONG {what}: {other:?}, expected errno {errno}"),
    }
}

/// `EBADF`.
const EBADF: i32 = 9;

fn open() {
    // create, then create_new on what exists, truncate, append.
    check("write new", fs::write("/OUT.TXT", b"first version"));
    expect_err(
        "create_new existing",
        OpenOptions::new().write(true).create_new(true).open("/OUT.TXT"),
        ErrorKind::AlreadyExists,
    );
    if let Some(mut f) =
        check("create_new", OpenOptions::new().write(true).create_new(true).open("/NEW.TXT"))
    {
        check("write to new", f.write_all(b"brand new"));
    }
    check("truncate", fs::write("/OUT.TXT", b"second"));
    if let Some(mut f) = check("append", OpenOptions::new().append(true).open("/OUT.TXT")) {
        check("append write", f.write_all(b"+appended"));
    }
    println!("OUT.TXT={}", fs::read_to_string("/out.txt").unwrap_or_default());
    // An existing long name can be rewritten (only new names must be 8.3).
    check("rewrite long name", fs::write("/docs/A long file name.txt", b"rewritten, long"));
    expect_err("open missing", File::open("/nope.txt"), ErrorKind::NotFound);
    expect_err("open in missing dir", File::open("/nodir/x.txt"), ErrorKind::NotFound);
    expect_err("file as dir", File::open("/hello.txt/x"), ErrorKind::NotADirectory);
    expect_err("trailing slash", File::open("/hello.txt/"), ErrorKind::NotADirectory);
    expect_err(
        "write a dir",
        OpenOptions::new().write(true).open("/docs"),
        ErrorKind::IsADirectory,
    );
    expect_err(
        "create without write",
        OpenOptions::new().create(true).truncate(false).open("/X.TXT"),
        ErrorKind::InvalidInput,
    );
    check("long new name", fs::write("/a long new name.text", b"long"));
    if let Some(mut f) = check("open read-only", File::open("/hello.txt")) {
        expect_os("write read-only fd", f.write(b"x"), EBADF);
    }
    if let Some(mut f) = check("open write-only", OpenOptions::new().write(true).open("/OUT.TXT")) {
        let mut b = [0u8; 4];
        expect_os("read write-only fd", f.read(&mut b), EBADF);
    }
    // A directory opens for reading (O_DIRECTORY is how std's read_dir opens).
    check("open dir", File::open("/docs").and_then(|f| f.metadata()).map(|m| m.is_dir()));
    let fd_flags = File::open("/hello.txt").map(|f| {
        use std::os::fd::AsRawFd;
        f.as_raw_fd()
    });
    check("fd number", fd_flags.map(|fd| println!("fd={fd}")));
}

fn rw() {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open("/RW.BIN")
        .unwrap();
    check("write", f.write_all(b"0123456789"));
    check("seek start", f.seek(SeekFrom::Start(2)).map(|p| println!("pos={p}")));
    let mut b = [0u8; 3];
    check("read", f.read_exact(&mut b));
    println!("read={}", String::from_utf8_lossy(&b));
    check("seek cur", f.seek(SeekFrom::Current(-1)).map(|p| println!("pos={p}")));
    check("seek end", f.seek(SeekFrom::End(-2)).map(|p| println!("pos={p}")));
    let mut rest = String::new();
    check("read to end", f.read_to_string(&mut rest));
    println!("rest={rest}");
    expect_err("seek before start", f.seek(SeekFrom::Current(-100)), ErrorKind::InvalidInput);
    check("overwrite", f.seek(SeekFrom::Start(4)).and_then(|_| f.write_all(b"ab")));
    check("pwrite", f.write_at(b"XY", 8));
    let mut b = [0u8; 4];
    check(
        "pread",
        f.read_at(&mut b, 3).map(|n| println!("pread={}", String::from_utf8_lossy(&b[..n]))),
    );
    check("pread past end", f.read_at(&mut b, 100).map(|n| println!("pread past end={n}")));
    // Writing past the end fills the gap with zeros.
    check("seek past end", f.seek(SeekFrom::End(3)).and_then(|_| f.write_all(b"Z")));
    println!("len={}", f.metadata().map(|m| m.len()).unwrap_or(0));
    // Two descriptions of one file keep their own offsets.
    let mut a = File::open("/RW.BIN").unwrap();
    let mut c = File::open("/rw.bin").unwrap();
    let (mut x, mut y) = ([0u8; 2], [0u8; 4]);
    check("two handles", a.read_exact(&mut x).and_then(|_| c.read_exact(&mut y)));
    println!("a={} c={}", String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
    // One file open by its long and its 8.3 name at once.
    let long = File::open("/docs/A long file name.txt");
    let short = fs::read_to_string("/DOCS/ALONGF~1.TXT");
    check("long and 8.3 names at once", long.and(short).map(|s| println!("alias={}", s.trim())));
    drop(f);
    let all = fs::read("/RW.BIN").unwrap();
    println!("all={:?}", String::from_utf8_lossy(&all));
    // A bigger file, written in pieces and read back whole.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    if let Some(mut f) = check("create big", File::create("/BIG.BIN")) {
        for chunk in data.chunks(7000) {
            f.write_all(chunk).unwrap();
        }
    }
    check("read big", fs::read("/BIG.BIN").map(|b| println!("big same={}", b == data)));
    let mut copy = Vec::new();
    let mut f = File::open("/BIG.BIN").unwrap();
    check(
        "read big by 4096",
        f.read_to_end(&mut copy).map(|_| println!("by pieces same={}", copy == data)),
    );
    check("copy", fs::copy("/hello.txt", "/COPY.TXT").map(|n| println!("copied={n}")));
}

fn meta() {
    let m = check("metadata file", fs::metadata("/hello.txt")).unwrap();
    println!(
        "file is_file={} is_dir={} len={} readonly={} mode={:o}",
        m.is_file(),
        m.is_dir(),
        m.len(),
        m.permissions().readonly(),
        m.permissions().mode()
    );
    let t = m.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
    println!("mtime={t}");
    // FAT keeps a creation time in every entry: statx's birth time.
    println!("created hello known={}", m.created().is_ok());
    expect_err(
        "created root (no entry)",
        fs::metadata("/").and_then(|m| m.created()),
        ErrorKind::Unsupported,
    );
    let d = check("metadata dir", fs::metadata("/docs")).unwrap();
    println!("dir is_file={} is_dir={} mode={:o}", d.is_file(), d.is_dir(), d.permissions().mode());
    let r = check("metadata root", fs::metadata("/")).unwrap();
    println!("root is_dir={}", r.is_dir());
    let l = check("symlink_metadata", fs::symlink_metadata("/hello.txt")).unwrap();
    println!("symlink is_symlink={} len={}", l.file_type().is_symlink(), l.len());
    let ro = check("metadata read-only", fs::metadata("/RO.TXT")).unwrap();
    println!("ro readonly={} mode={:o}", ro.permissions().readonly(), ro.permissions().mode());
    expect_err(
        "write read-only file",
        OpenOptions::new().append(true).open("/RO.TXT"),
        ErrorKind::PermissionDenied,
    );
    expect_err("metadata missing", fs::metadata("/nope"), ErrorKind::NotFound);
    println!(
        "exists hello={} nope={}",
        Path::new("/hello.txt").exists(),
        Path::new("/nope").exists()
    );
    // A file being written: its metadata follows what was written.
    let mut f = File::create("/GROW.TXT").unwrap();
    f.write_all(&[b'g'; 1000]).unwrap();
    println!(
        "growing fstat={} stat={}",
        f.metadata().unwrap().len(),
        fs::metadata("/GROW.TXT").unwrap().len()
    );
    let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mt = f.metadata().unwrap().mtime() as u64;
    println!("fresh mtime within 5s={}", now.abs_diff(mt) <= 5);
    println!(
        "same file ino={}",
        f.metadata().unwrap().ino() == fs::metadata("/grow.txt").unwrap().ino()
    );
}

fn dir() {
    check("create_dir", fs::create_dir("/NEWDIR"));
    expect_err("create_dir again", fs::create_dir("/NEWDIR"), ErrorKind::AlreadyExists);
    check("create_dir_all", fs::create_dir_all("/A/B/C"));
    check("create_dir_all existing", fs::create_dir_all("/A/B"));
    check("file in new dir", fs::write("/A/B/C/F.TXT", b"deep"));
    expect_err("create_dir in missing", fs::create_dir("/NO/X"), ErrorKind::NotFound);
    for path in ["/", "/docs", "/A/B"] {
        let Some(rd) = check(&format!("read_dir {path}"), fs::read_dir(path)) else { continue };
        let mut names = Vec::new();
        for e in rd {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let len = e.metadata().map(|m| m.len()).unwrap_or(999);
            names.push(format!(
                "{}:{}:{len}",
                e.file_name().to_string_lossy(),
                if ft.is_dir() {
                    "d"
                } else if ft.is_file() {
                    "f"
                } else {
                    "?"
                }
            ));
        }
        names.sort();
        println!("ls {path} = {}", names.join(" "));
    }
    expect_err("read_dir of a file", fs::read_dir("/hello.txt"), ErrorKind::NotADirectory);
    expect_err("read_dir missing", fs::read_dir("/nope"), ErrorKind::NotFound);
    println!(
        "is_dir A/B={} is_file F={}",
        Path::new("/a/b").is_dir(),
        Path::new("/A/B/C/F.TXT").is_file()
    );
}

fn sync() {
    let mut f = File::create("/SYNC.TXT").unwrap();
    f.write_all(b"durable").unwrap();
    check("sync_all", f.sync_all());
    check("sync_data", f.sync_data());
    check("lock", f.lock());
    check("try_lock", f.try_lock().map_err(io::Error::from));
    check("unlock", f.unlock());
    check("set_len longer", f.set_len(10));
    println!("len={}", f.metadata().unwrap().len());
    check("set_len same", f.set_len(10));
    check("set_len shorter", f.set_len(3));
    println!("len={}", f.metadata().unwrap().len());
    check("write after shorter", f.seek(SeekFrom::End(0)).and_then(|_| f.write_all(b"-ok")));
    // Shorter than a cluster chain of several clusters.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let mut b = File::create("/SHRINK.BIN").unwrap();
    b.write_all(&big).unwrap();
    check("set_len shorter big", b.set_len(5000));
    drop(b);
    let back = fs::read("/SHRINK.BIN").unwrap();
    println!("shrunk len={} same={}", back.len(), back[..] == big[..5000]);
    check("flush", f.flush());
    let mut g = File::create("/EMPTY.TXT").unwrap();
    g.write_all(b"to be cut").unwrap();
    check("set_len zero", g.set_len(0));
    check("write after cut", g.write_all(b"!"));
    drop(g);
    println!("EMPTY.TXT={:?}", fs::read("/EMPTY.TXT").unwrap());
    let ro = File::open("/hello.txt").unwrap();
    expect_err("set_len read-only fd", ro.set_len(0), ErrorKind::InvalidInput);
    check("sync read-only fd", ro.sync_all());
}

fn paths() {
    println!("cwd={}", std::env::current_dir().unwrap().display());
    check(
        "canonicalize",
        fs::canonicalize("/docs/../docs/./sub//deep.txt")
            .map(|p| println!("canon={}", p.display())),
    );
    check(
        "canonicalize relative",
        fs::canonicalize("docs/sub").map(|p| println!("canon={}", p.display())),
    );
    expect_err("canonicalize missing", fs::canonicalize("/docs/nope"), ErrorKind::NotFound);
    check(
        "above the root",
        fs::read_to_string("/../../hello.txt").map(|s| println!("above={}", s.trim())),
    );
    check("relative", fs::read_to_string("hello.txt").map(|s| println!("relative={}", s.trim())));
    check(
        "case-insensitive",
        fs::read_to_string("/HELLO.TXT").map(|s| println!("upper={}", s.trim())),
    );
    check(
        "long name",
        fs::read_to_string("/docs/A long file name.txt").map(|s| println!("long={}", s.trim())),
    );
    check("set_current_dir", std::env::set_current_dir("/docs/sub"));
    println!("cwd={}", std::env::current_dir().unwrap().display());
    check("relative in cwd", fs::read_to_string("deep.txt").map(|s| println!("deep={}", s.trim())));
    check(
        "dot-dot in cwd",
        fs::read_to_string("../../hello.txt").map(|s| println!("up={}", s.trim())),
    );
    expect_err(
        "set_current_dir file",
        std::env::set_current_dir("/hello.txt"),
        ErrorKind::NotADirectory,
    );
    expect_err("set_current_dir missing", std::env::set_current_dir("/nope"), ErrorKind::NotFound);
    check("back to /", std::env::set_current_dir("/"));
    expect_err("read_link", fs::read_link("/hello.txt"), ErrorKind::InvalidInput);
    expect_err("empty path", fs::metadata(""), ErrorKind::NotFound);
}

fn refused() {
    expect_err("hard_link", fs::hard_link("/hello.txt", "/HL.TXT"), ErrorKind::Unsupported);
    expect_err(
        "symlink",
        std::os::unix::fs::symlink("/hello.txt", "/SL.TXT"),
        ErrorKind::Unsupported,
    );
    let mut p = fs::metadata("/hello.txt").unwrap().permissions();
    check("set_permissions unchanged", fs::set_permissions("/hello.txt", p.clone()));
    p.set_readonly(true);
    expect_err(
        "set_permissions readonly",
        fs::set_permissions("/hello.txt", p),
        ErrorKind::Unsupported,
    );
    println!("still there={}", fs::read_to_string("/hello.txt").unwrap().trim());
}

/// Prints the names in `dir`, sorted.
fn ls(dir: &str) {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut names: Vec<String> =
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            println!("ls {dir} = {}", names.join(" "));
        }
        Err(e) => println!("err ls {dir}: {:?}", e.kind()),
    }
}

fn remove() {
    check("remove_file", fs::remove_file("/hello.txt"));
    expect_err("remove_file again", fs::remove_file("/hello.txt"), ErrorKind::NotFound);
    expect_err("remove_file a dir", fs::remove_file("/docs"), ErrorKind::IsADirectory);
    expect_err("remove_file slash", fs::remove_file("/RO.TXT/"), ErrorKind::NotADirectory);
    expect_err("remove_file in missing", fs::remove_file("/nodir/x"), ErrorKind::NotFound);
    expect_err("remove_dir not empty", fs::remove_dir("/docs"), ErrorKind::DirectoryNotEmpty);
    expect_err("remove_dir a file", fs::remove_dir("/RO.TXT"), ErrorKind::NotADirectory);
    expect_err("remove_dir missing", fs::remove_dir("/nope"), ErrorKind::NotFound);
    expect_err("remove_dir root", fs::remove_dir("/"), ErrorKind::ResourceBusy);
    expect_err("remove_dir dot", fs::remove_dir("/docs/."), ErrorKind::InvalidInput);
    expect_err("remove_dir dotdot", fs::remove_dir("/docs/sub/.."), ErrorKind::DirectoryNotEmpty);
    // The read-only attribute does not protect a name (as on Linux's vfat).
    check("remove read-only file", fs::remove_file("/RO.TXT"));
    check("create_dir", fs::create_dir("/Empty dir"));
    check("remove_dir empty", fs::remove_dir("/empty DIR"));
    // A tree with long names, many entries, nested.
    check("create_dir_all", fs::create_dir_all("/Tree/Level one/Level two"));
    for i in 0..40 {
        let name = format!("/Tree/Level one/File number {i}.data");
        fs::write(&name, vec![b'x'; 100 * i]).unwrap();
    }
    fs::write("/Tree/Level one/Level two/deep.txt", b"deep").unwrap();
    check("remove_dir_all", fs::remove_dir_all("/tree"));
    println!("tree exists={}", Path::new("/Tree").exists());
    // Removed, then created again under the same name: a new, empty file.
    fs::write("/AGAIN.TXT", b"first life").unwrap();
    check("remove again", fs::remove_file("/again.txt"));
    fs::write("/again.txt", b"2nd").unwrap();
    println!("again={}", fs::read_to_string("/AGAIN.TXT").unwrap());
    // A file removed while open: the descriptor stays usable for what was
    // read; nothing crashes and the disk stays consistent (checked by the
    // suite with fsck.fat).
    fs::write("/OPEN.TXT", b"open while removed").unwrap();
    let mut f = File::open("/OPEN.TXT").unwrap();
    check("remove open file", fs::remove_file("/OPEN.TXT"));
    println!("open exists={}", Path::new("/OPEN.TXT").exists());
    let mut s = String::new();
    let r = f.read_to_string(&mut s);
    println!("read removed: {:?}", r.map(|_| s).map_err(|e| e.kind()));
    drop(f);
    ls("/");
    ls("/docs");
}

fn rename() {
    fs::write("/one.txt", b"one").unwrap();
    check("rename in dir", fs::rename("/one.txt", "/Two words.txt"));
    println!("moved={}", fs::read_to_string("/two words.txt").unwrap_or_default());
    expect_err("rename old name", fs::metadata("/one.txt"), ErrorKind::NotFound);
    check("rename across dirs", fs::rename("/Two words.txt", "/docs/sub/Three.txt"));
    println!("across={}", fs::read_to_string("/docs/sub/three.txt").unwrap_or_default());
    fs::write("/src.txt", b"new contents").unwrap();
    check("rename over a file", fs::rename("/src.txt", "/hello.txt"));
    println!("replaced={}", fs::read_to_string("/hello.txt").unwrap_or_default());
    expect_err("rename missing", fs::rename("/nope", "/x"), ErrorKind::NotFound);
    expect_err(
        "rename into missing dir",
        fs::rename("/hello.txt", "/nodir/x"),
        ErrorKind::NotFound,
    );
    expect_err("rename file over dir", fs::rename("/hello.txt", "/docs"), ErrorKind::IsADirectory);
    expect_err("rename dir over file", fs::rename("/docs", "/hello.txt"), ErrorKind::NotADirectory);
    expect_err(
        "rename dir into itself",
        fs::rename("/docs", "/docs/sub/x"),
        ErrorKind::InvalidInput,
    );
    expect_err(
        "rename dir over its parent",
        fs::rename("/docs/sub", "/docs"),
        ErrorKind::DirectoryNotEmpty,
    );
    fs::create_dir("/Full").unwrap();
    fs::write("/Full/x", b"x").unwrap();
    expect_err(
        "rename dir over full dir",
        fs::rename("/docs", "/Full"),
        ErrorKind::DirectoryNotEmpty,
    );
    fs::create_dir("/Hollow").unwrap();
    check("rename dir over empty dir", fs::rename("/docs", "/Hollow"));
    println!(
        "dir moved deep={} long={}",
        fs::read_to_string("/Hollow/sub/deep.txt").unwrap_or_default().trim(),
        fs::read_to_string("/hollow/A long file name.txt").unwrap_or_default().trim()
    );
    expect_err("rename root", fs::rename("/", "/x"), ErrorKind::ResourceBusy);
    expect_err("rename dot", fs::rename("/Hollow/.", "/x"), ErrorKind::ResourceBusy);
    // Another case of one name is the same file: nothing happens (Linux's
    // vfat), and the file is not lost.
    check("rename to other case", fs::rename("/hello.txt", "/HELLO.TXT"));
    println!("same file={}", fs::read_to_string("/hello.txt").unwrap_or_default());
    check("rename to itself", fs::rename("/hello.txt", "/hello.txt"));
    // A file renamed while open: its descriptor keeps writing to it.
    let mut f = File::create("/Open file.txt").unwrap();
    f.write_all(b"before ").unwrap();
    check("rename open file", fs::rename("/Open file.txt", "/Hollow/Moved open.txt"));
    f.write_all(b"after").unwrap();
    check("sync moved", f.sync_all());
    println!(
        "moved open len={} stat={}",
        f.metadata().unwrap().len(),
        fs::metadata("/Hollow/Moved open.txt").map(|m| m.len()).unwrap_or(0)
    );
    drop(f);
    println!("moved open={}", fs::read_to_string("/Hollow/moved open.txt").unwrap_or_default());
    ls("/");
    ls("/Hollow");
}

fn times() {
    let when = UNIX_EPOCH + Duration::from_secs(1_600_000_001);
    let f = OpenOptions::new().write(true).open("/hello.txt").unwrap();
    check("set_modified", f.set_modified(when));
    let t = |p: &str| {
        fs::metadata(p)
            .and_then(|m| m.modified())
            .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
    };
    // FAT keeps even seconds.
    println!("fstat mtime={}", f.metadata().unwrap().mtime());
    drop(f);
    println!("mtime={:?}", t("/hello.txt"));
    // Written, then given a time, then closed: the time stays.
    let mut g = File::create("/TIMED.TXT").unwrap();
    g.write_all(b"data").unwrap();
    let times =
        std::fs::FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    check("set_times", g.set_times(times));
    drop(g);
    println!("timed mtime={:?}", t("/TIMED.TXT"));
    // A directory's time.
    let d = File::open("/docs").unwrap();
    check("set_modified dir", d.set_modified(UNIX_EPOCH + Duration::from_secs(1_500_000_000)));
    drop(d);
    println!("dir mtime={:?}", t("/docs"));
    // Writing sets the time to now.
    fs::write("/NOW.TXT", b"now").unwrap();
    let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    println!("written now={}", t("/NOW.TXT").map(|m| now.abs_diff(m) <= 4).unwrap_or(false));
    // Created now, and the creation time stays when the modification time
    // is set: by path and through a descriptor alike.
    let born = |p: &str| {
        fs::metadata(p)
            .and_then(|m| m.created())
            .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
    };
    println!("created now={}", born("/NOW.TXT").map(|c| now.abs_diff(c) <= 4).unwrap_or(false));
    println!(
        "timed created now={}",
        born("/TIMED.TXT").map(|c| now.abs_diff(c) <= 4).unwrap_or(false)
    );
    let by_fd = File::open("/TIMED.TXT")
        .and_then(|f| f.metadata())
        .and_then(|m| m.created())
        .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
    println!("created by fd same={}", by_fd.is_ok() && by_fd.ok() == born("/TIMED.TXT").ok());
    let dir = File::open("/docs").and_then(|d| d.metadata()).and_then(|m| m.created());
    println!("created dir by fd known={}", dir.is_ok());
}

fn longnames() {
    let names = [
        "A long file name with spaces.text",
        "MixedCase.Txt",
        "unicode é ß 日本.txt",
        "lower.txt",
        "Program Files",
        "name.with.many.dots.tar.gz",
        "verylongname1.txt",
        "verylongname2.txt",
        "verylongname3.txt",
    ];
    fs::create_dir("/L").unwrap();
    for (i, n) in names.iter().enumerate() {
        check(&format!("create {n}"), fs::write(format!("/L/{n}"), format!("#{i}")));
    }
    ls("/L");
    for (i, n) in names.iter().enumerate() {
        let upper = n.to_ascii_uppercase();
        let back = fs::read_to_string(format!("/L/{upper}")).unwrap_or_default();
        println!("{upper} -> {}", if back == format!("#{i}") { "same" } else { "WRONG" });
    }
    // An existing name in another case is the same file, and keeps its case.
    check("write other case", fs::write("/L/MIXEDCASE.TXT", "replaced"));
    ls("/L");
    println!("mixed={}", fs::read_to_string("/L/MixedCase.Txt").unwrap_or_default());
    expect_err(
        "create_new other case",
        OpenOptions::new().write(true).create_new(true).open("/L/LOWER.TXT"),
        ErrorKind::AlreadyExists,
    );
    // 255 characters fit, 256 do not.
    let longest = "n".repeat(251) + ".txt";
    check("255 characters", fs::write(format!("/L/{longest}"), "max"));
    let too_long = "n".repeat(252) + ".txt";
    expect_err(
        "256 characters",
        fs::write(format!("/L/{too_long}"), "x"),
        ErrorKind::InvalidFilename,
    );
    for bad in ["a:b", "a*b", "a?b", "a<b", "a|b", "a\\b"] {
        expect_err(
            &format!("bad name {bad}"),
            fs::write(format!("/L/{bad}"), "x"),
            ErrorKind::InvalidInput,
        );
    }
    check("create_dir_all long", fs::create_dir_all("/L/Première année/Sous dossier"));
    check("deep long file", fs::write("/L/Première année/Sous dossier/Résumé final.txt", "fin"));
    println!(
        "deep={}",
        fs::read_to_string("/l/PREMIèRE ANNéE/sous DOSSIER/résumé FINAL.TXT").unwrap_or_default()
    );
}

fn statvfs() {
    let df = || {
        // SAFETY: an all-zero statvfs is valid; the path is NUL-terminated.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::statvfs(c"/".as_ptr(), &mut s) };
        (r, s.f_bsize, s.f_blocks, s.f_bfree, s.f_bavail, s.f_namemax)
    };
    let (r, bsize, blocks, free0, avail, namemax) = df();
    println!(
        "statvfs r={r} bsize={bsize} blocks={blocks} avail=free:{} namemax={namemax}",
        avail == free0
    );
    fs::write("/MEG.BIN", vec![1u8; 1 << 20]).unwrap();
    let free1 = df().3;
    println!("used by 1 MiB={}", free0 - free1 == (1u64 << 20).div_ceil(bsize));
    fs::remove_file("/MEG.BIN").unwrap();
    println!("freed again={}", df().3 == free0);
    let f = File::open("/hello.txt").unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: as above, on an open descriptor.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatfs(f.as_raw_fd(), &mut s) };
    println!("fstatfs r={r} type={:x} blocks={}", s.f_type, s.f_blocks == blocks);
}

fn ro() {
    check(
        "read on ro disk",
        fs::read_to_string("/hello.txt").map(|s| println!("ro read={}", s.trim())),
    );
    expect_err("write on ro disk", fs::write("/NEW.TXT", b"x"), ErrorKind::ReadOnlyFilesystem);
    expect_err(
        "overwrite on ro disk",
        fs::write("/hello.txt", b"x"),
        ErrorKind::ReadOnlyFilesystem,
    );
    expect_err(
        "append on ro disk",
        OpenOptions::new().append(true).open("/hello.txt"),
        ErrorKind::ReadOnlyFilesystem,
    );
    expect_err("mkdir on ro disk", fs::create_dir("/D"), ErrorKind::ReadOnlyFilesystem);
    expect_err("remove on ro disk", fs::remove_file("/hello.txt"), ErrorKind::ReadOnlyFilesystem);
    expect_err(
        "remove missing on ro disk",
        fs::remove_file("/nope"),
        ErrorKind::ReadOnlyFilesystem,
    );
    expect_err(
        "rename on ro disk",
        fs::rename("/hello.txt", "/x.txt"),
        ErrorKind::ReadOnlyFilesystem,
    );
    expect_err("rmdir on ro disk", fs::remove_dir("/docs/sub"), ErrorKind::ReadOnlyFilesystem);
    expect_err(
        "set_modified on ro disk",
        File::open("/hello.txt").and_then(|f| f.set_modified(std::time::SystemTime::now())),
        ErrorKind::ReadOnlyFilesystem,
    );
    let m = fs::metadata("/hello.txt").unwrap();
    println!("ro metadata len={}", m.len());
}

fn exit(how: &str) {
    // What the program wrote is kept however it ends, as Linux's page
    // cache keeps it: a file still open, an append, a shared mapping's
    // stores. A C stream's buffer is the program's own memory: only
    // `exit` writes it.
    let mut f = File::create("/EXIT.TXT").unwrap();
    f.write_all(&[b'e'; 5000]).unwrap();
    std::mem::forget(f);
    let mut g = OpenOptions::new().append(true).open("/hello.txt").unwrap();
    g.write_all(b"more\n").unwrap();
    std::mem::forget(g);
    let m = OpenOptions::new().read(true).write(true).create_new(true).open("/MAP.TXT").unwrap();
    m.set_len(4096).unwrap();
    // SAFETY: a new shared mapping of an open file, written within its
    // 4096 bytes; the C stream is used as C's calls allow.
    unsafe {
        use std::os::fd::AsRawFd;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let p = libc::mmap(std::ptr::null_mut(), 4096, prot, libc::MAP_SHARED, m.as_raw_fd(), 0);
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::write_bytes(p.cast::<u8>(), b'm', 4096);
        let s = libc::fopen(c"/STDIO.TXT".as_ptr(), c"w".as_ptr());
        assert!(!s.is_null());
        libc::fputs(c"buffered\n".as_ptr(), s);
    }
    println!("exiting by {how}");
    match how {
        "exit" => std::process::exit(0),
        // SAFETY: ends the program; nothing runs after it.
        "_exit" => unsafe { libc::_exit(0) },
        "abort" => std::process::abort(),
        // Until the suite's SIGTERM ends it by the default action.
        "signal" => loop {
            std::thread::sleep(Duration::from_secs(60));
        },
        other => println!("unknown way to end: {other}"),
    }
}

fn corrupt() {
    // Whatever the disk holds, each call returns; the kinds vary.
    let r = fs::read_dir("/").map(|rd| rd.filter_map(Result::ok).count());
    println!("read_dir: {:?}", r.map_err(|e| e.kind()));
    println!("read: {:?}", fs::read("/hello.txt").map(|b| b.len()).map_err(|e| e.kind()));
    println!(
        "metadata: {:?}",
        fs::metadata("/docs/sub/deep.txt").map(|m| m.len()).map_err(|e| e.kind())
    );
    println!("write: {:?}", fs::write("/NEW.TXT", b"x").map_err(|e| e.kind()));
    println!("mkdir: {:?}", fs::create_dir("/NEWD").map_err(|e| e.kind()));
    // Every kind of call on what the damaged directories describe.
    if let Ok(rd) = fs::read_dir("/") {
        for e in rd.filter_map(Result::ok).take(20) {
            let p = e.path();
            println!("entry {p:?}");
            let r = OpenOptions::new().read(true).write(true).open(&p).and_then(|mut f| {
                let mut b = vec![0u8; 5000];
                let n = f.read(&mut b)?;
                f.seek(SeekFrom::Start(3))?;
                f.write_all(b"xyz")?;
                f.write_at(b"tail", 70_000)?;
                f.set_len(80_000)?;
                f.sync_all()?;
                Ok(n)
            });
            let d = fs::read_dir(&p).map(|d| d.filter_map(Result::ok).count());
            let t = File::create(&p).and_then(|mut f| f.write_all(b"again"));
            println!(
                "  {:?} {:?} {:?}",
                r.map_err(|e| e.kind()),
                d.map_err(|e| e.kind()),
                t.map_err(|e| e.kind())
            );
        }
    }
    println!("corrupt done");
}

fn bench(path: &str) {
    let t = Instant::now();
    let data = fs::read(path).unwrap();
    let ns = t.elapsed().as_nanos();
    let sum = data.iter().fold(0u64, |s, &b| s.wrapping_add(u64::from(b)));
    println!("bench read {} bytes in {ns} ns (sum {sum})", data.len());
    // Again into the same, already touched, buffer: the file system's
    // cost without the page faults of a fresh allocation.
    let mut buf = data;
    let t = Instant::now();
    File::open(path).unwrap().read_exact(&mut buf).unwrap();
    let ns = t.elapsed().as_nanos();
    let sum = buf.iter().fold(0u64, |s, &b| s.wrapping_add(u64::from(b)));
    println!("bench reread {} bytes in {ns} ns (sum {sum})", buf.len());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        println!("== {}", args[i]);
        match args[i].as_str() {
            "open" => open(),
            "rw" => rw(),
            "meta" => meta(),
            "dir" => dir(),
            "sync" => sync(),
            "paths" => paths(),
            "refused" => refused(),
            "remove" => remove(),
            "rename" => rename(),
            "times" => times(),
            "longnames" => longnames(),
            "statvfs" => statvfs(),
            "ro" => ro(),
            "corrupt" => corrupt(),
            "exit" => {
                i += 1;
                exit(&args[i]);
            }
            "bench" => {
                i += 1;
                bench(&args[i]);
            }
            other => println!("unknown area {other}"),
        }
        i += 1;
    }
}
