//! More unmodified crates from crates.io (issue 13), on the guest's FAT
//! disk and clock: image (a PNG encoded and decoded in memory, then saved
//! to the disk and opened again), fs_extra (a directory tree copied on
//! the disk), dirs (the user's directories, from `HOME` and the XDG
//! variables) and chrono (local time through `TZ`). The first argument is
//! the directory to work in (`/` in the guest); the suite compares the
//! lines with what Linux gives.

use std::path::Path;

use chrono::{Local, TimeZone};

libos_std::app!(devices: ["storage": Block]);

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| "/".into());
    let root = Path::new(&root);

    // image: 64x48 RGB, to PNG in memory and back, then through the disk.
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, (x ^ y) as u8])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let back = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
    println!(
        "image memory: png {} round trip {}",
        png.starts_with(b"\x89PNG"),
        back.to_rgb8() == img
    );
    let file = root.join("picture.png");
    img.save(&file).unwrap();
    let opened = image::open(&file).unwrap();
    println!(
        "image disk: {}x{} round trip {} size matches {}",
        opened.width(),
        opened.height(),
        opened.to_rgb8() == img,
        std::fs::metadata(&file).unwrap().len() > 8
    );

    // fs_extra: a tree copied into another directory.
    let src = root.join("tree");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::create_dir_all(src.join("c")).unwrap();
    std::fs::write(src.join("top.txt"), "top").unwrap();
    std::fs::write(src.join("a/b/deep.txt"), "deep".repeat(1000)).unwrap();
    std::fs::write(src.join("c/other.txt"), "other").unwrap();
    let dst = root.join("copy");
    std::fs::create_dir_all(&dst).unwrap();
    let copied = fs_extra::dir::copy(&src, &dst, &fs_extra::dir::CopyOptions::new()).unwrap();
    println!("fs_extra copied bytes: {copied}");
    let size = fs_extra::dir::get_size(dst.join("tree")).unwrap();
    let deep = std::fs::read_to_string(dst.join("tree/a/b/deep.txt")).unwrap();
    println!("fs_extra copy size: {size} deep intact {}", deep == "deep".repeat(1000));
    let mut names: Vec<String> = walk(&dst.join("tree"));
    names.sort();
    println!("fs_extra tree: {}", names.join(" "));
    fs_extra::dir::remove(&dst).unwrap();
    println!("fs_extra removed: {}", !dst.exists());

    // dirs: from the environment, as on Linux.
    println!("dirs home: {:?}", dirs::home_dir());
    println!("dirs config: {:?}", dirs::config_dir());
    println!("dirs cache: {:?}", dirs::cache_dir());
    println!("dirs data: {:?}", dirs::data_dir());

    // chrono: a fixed instant in the local time zone TZ says.
    let t = Local.timestamp_opt(1_700_000_000, 0).unwrap();
    println!("chrono local: {}", t.format("%Y-%m-%d %H:%M:%S %z"));
    let summer = Local.timestamp_opt(1_690_000_000, 0).unwrap();
    println!("chrono summer: {}", summer.format("%Y-%m-%d %H:%M:%S %z"));
    let now = Local::now();
    println!("chrono now after 2020: {}", now.timestamp() > 1_577_836_800);
}

/// The paths under `dir`, relative, directories with a trailing `/`.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else {
                out.push(rel);
            }
        }
    }
    out
}
