//! std::fs in a program that declares no disk: `/` is an empty,
//! read-only directory.

use std::fs;

libos_std::app!();

fn main() {
    println!("root is_dir={}", fs::metadata("/").map(|m| m.is_dir()).unwrap_or(false));
    println!("ls / = {:?}", fs::read_dir("/").map(|d| d.count()).map_err(|e| e.kind()));
    println!("read: {:?}", fs::read("/x.txt").map_err(|e| e.kind()));
    println!("write: {:?}", fs::write("/X.TXT", b"x").map_err(|e| e.kind()));
    println!("mkdir: {:?}", fs::create_dir("/D").map_err(|e| e.kind()));
    println!("cwd={}", std::env::current_dir().unwrap().display());
}
