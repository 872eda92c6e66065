//! A guest that runs file-system commands on the FAT disk attached as
//! `storage`, one per argument group, and prints the results:
//!
//! ```text
//! guest-fs ls /dir   cat /path   write /path TEXT   append /path TEXT
//!          mkdir /path   stat /path   big /path MIB
//! ```
//!
//! An error is printed as `error: CMD PATH: WHAT` and the guest goes on;
//! the exit status is the number of errors (0 if none). A disk that cannot
//! be mounted prints `mount: WHAT` and exits 100.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use libos::fs::{self, FileSystem, FsError};
use libos::{env, println};

libos::app!(main, devices: ["storage": Block]);

fn main() -> i32 {
    let Some(disk) = libos::block::device("storage") else {
        println!("no storage");
        return 100;
    };
    let fs = match fs::mount(disk) {
        Ok(fs) => fs,
        Err(e) => {
            println!("mount: {e}");
            return 100;
        }
    };
    let args: Vec<&str> = env::args().skip(1).collect();
    let mut errors = 0;
    let mut i = 0;
    while i < args.len() {
        let (cmd, path) = (args[i], args.get(i + 1).copied().unwrap_or("/"));
        let takes_text = matches!(cmd, "write" | "append" | "big");
        let text = if takes_text { args.get(i + 2).copied().unwrap_or("") } else { "" };
        i += if takes_text { 3 } else { 2 };
        if let Err(e) = run(&fs, cmd, path, text) {
            println!("error: {cmd} {path}: {e}");
            errors += 1;
        }
    }
    if let Err(e) = fs.sync() {
        println!("error: sync: {e}");
        errors += 1;
    }
    errors
}

fn run(fs: &FileSystem, cmd: &str, path: &str, text: &str) -> Result<(), FsError> {
    match cmd {
        "ls" => {
            let mut entries = fs.read_dir(path)?;
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            for e in entries {
                let kind = if e.metadata.is_dir { "dir" } else { "file" };
                println!("{kind} {} {}", e.name, e.metadata.len);
            }
        }
        "cat" => {
            let bytes = fs.read(path)?;
            println!("{}", core::str::from_utf8(&bytes).unwrap_or("<binary>"));
        }
        "stat" => {
            let m = fs.metadata(path)?;
            println!("stat {path} dir={} len={} modified={}", m.is_dir, m.len, m.modified);
        }
        "write" => fs.write(path, text.as_bytes())?,
        "append" => {
            let mut f = fs.append(path)?;
            f.write_all(text.as_bytes())?;
            f.close()?;
        }
        "mkdir" => fs.create_dir(path)?,
        "big" => {
            // MIB mebibytes of a position pattern, then read back and checked.
            let mib: usize = text.parse().unwrap_or(1);
            let mut f = fs.create(path)?;
            let chunk: Vec<u8> = (0..65_536).map(|i| (i % 251) as u8).collect();
            for _ in 0..mib * 16 {
                f.write_all(&chunk)?;
            }
            f.close()?;
            let back = fs.read(path)?;
            let ok = back.len() == mib << 20
                && back.iter().enumerate().all(|(i, &b)| b == (i % 65_536 % 251) as u8);
            println!("big {path} {} bytes {}", back.len(), if ok { "ok" } else { "CORRUPT" });
        }
        _ => return Err(FsError::Unsupported),
    }
    Ok(())
}
