//! Two disks under std::fs: `storage` is `/` (though declared second) and
//! `data` is mounted at `/data`. Prints what it reads and lists, and
//! writes `/data/OUT.TXT` and `/ROOT.TXT` for the suite to read back.

use std::fs;
use std::os::unix::fs::MetadataExt;

libos_std::app!(devices: ["data": Block, "storage": Block]);

fn main() {
    let mut root: Vec<String> =
        fs::read_dir("/").unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    root.sort();
    println!("ls / = {}", root.join(" "));
    println!("root hello={}", fs::read_to_string("/hello.txt").unwrap().trim());
    println!("data in={}", fs::read_to_string("/data/IN.TXT").unwrap().trim());
    println!("data is_dir={}", fs::metadata("/data").unwrap().is_dir());
    let (a, b) = (fs::metadata("/hello.txt").unwrap(), fs::metadata("/data/IN.TXT").unwrap());
    println!("distinct devices={}", a.dev() != b.dev());
    fs::write("/data/OUT.TXT", b"to the data disk").unwrap();
    fs::write("/ROOT.TXT", b"to the root disk").unwrap();
    println!("canon={}", fs::canonicalize("/data/../data/./IN.TXT").unwrap().display());
    println!("mkdir mount point: {:?}", fs::create_dir("/data").map_err(|e| e.kind()));
    fs::create_dir_all("/data/X/Y").unwrap();
    println!("done");
}
