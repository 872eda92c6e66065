//! Crates from crates.io that look at the machine and walk the file
//! system, unmodified: sysinfo (the guest's memory and process from the
//! synthesized `/proc`), num_cpus and `available_parallelism` (one CPU),
//! tempfile (a named temporary file and directory under `TMPDIR`),
//! walkdir (a tree listed in order), flate2 (gzip through a file), and
//! `std::process::Command`, which fails as documented. Each line is
//! one fact the suite checks (against the native figures where they are
//! the same everywhere).

use std::io::{Read, Write};

libos_std::app!(devices: ["storage": Block]);

fn main() {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    println!("sysinfo total MiB: {}", sys.total_memory() >> 20);
    let (free, total) = (sys.available_memory(), sys.total_memory());
    println!("sysinfo available below total: {}", free > 0 && free < total);
    println!("sysinfo swap: {}", sys.total_swap());
    let me = sysinfo::get_current_pid().expect("the current pid");
    sys.refresh_processes_specifics(
        sysinfo::ProcessesToUpdate::Some(&[me]),
        true,
        sysinfo::ProcessRefreshKind::new().with_memory(),
    );
    match sys.process(me) {
        Some(p) => println!("sysinfo process {me}: {:?} rss>0 {}", p.name(), p.memory() > 0),
        None => println!("sysinfo process {me}: not found"),
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    println!("meminfo first line: {}", meminfo.lines().next().unwrap_or(""));
    println!(
        "/proc/self/stat fields: {}",
        std::fs::read_to_string("/proc/self/stat").map_or(0, |s| s.split(' ').count())
    );
    println!(
        "write /proc/meminfo: {:?}",
        std::fs::write("/proc/meminfo", "x").map_err(|e| e.kind())
    );
    println!("num_cpus: {} {}", num_cpus::get(), num_cpus::get_physical());
    println!("available_parallelism: {:?}", std::thread::available_parallelism().map(|n| n.get()));
    files();
    let spawn = std::process::Command::new("/bin/true").status();
    println!("Command::status: {:?}", spawn.map_err(|e| e.kind()));
}

fn files() {
    // SAFETY: no other thread reads the environment now.
    unsafe { std::env::set_var("TMPDIR", "/tmp") };
    std::fs::create_dir_all("/tmp").expect("/tmp");
    let mut t = tempfile::NamedTempFile::new().expect("a temporary file");
    t.write_all(b"temporary").unwrap();
    let path = t.path().to_path_buf();
    println!("tempfile under /tmp: {}", path.starts_with("/tmp"));
    let mut back = String::new();
    std::fs::File::open(&path).unwrap().read_to_string(&mut back).unwrap();
    println!("tempfile reads back: {back}");
    drop(t);
    println!("tempfile removed: {}", !path.exists());
    let dir = tempfile::tempdir().expect("a temporary directory");
    for p in ["a/b/c", "a/d", "e"] {
        std::fs::create_dir_all(dir.path().join(p)).unwrap();
        std::fs::write(dir.path().join(p).join("f.txt"), p).unwrap();
    }
    let names: Vec<String> = walkdir::WalkDir::new(dir.path())
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.expect("an entry");
            let rel = e.path().strip_prefix(dir.path()).unwrap().display().to_string();
            format!("{}{}", rel, if e.file_type().is_dir() { "/" } else { "" })
        })
        .collect();
    println!("walkdir: {}", names.join(" "));
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect();
    let gz = dir.path().join("data.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()).read_to_end(&mut out).unwrap();
    println!(
        "flate2: {} bytes compressed, round trip {}",
        std::fs::metadata(&gz).unwrap().len(),
        out == data
    );
    let path = dir.path().to_path_buf();
    dir.close().expect("removing the directory");
    println!("tempdir removed: {}", !path.exists());
}
