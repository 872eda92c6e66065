//! `nabla disk`: FAT disk images for guests, made and read with the
//! standard tools (dosfstools' `mkfs.fat` and `fsck.fat`, `mtools`).
//!
//! ```text
//! nabla disk create IMG --from DIR [--size MIB] [--label NAME]
//! nabla disk get IMG PATH [DEST]
//! nabla disk ls IMG [PATH]
//! nabla disk check IMG
//! ```
//!
//! Images are FAT16 up to 256 MiB and FAT32 above, made with
//! `mkfs.fat --mbr=y --invariant` (the partition table libos looks for, and
//! no random volume id or time-based field: the same tree gives the same
//! image bytes when the files' times are the same). Files keep their
//! modification times (`mcopy -m`), which httpd serves as `Last-Modified`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench::Result;

/// `nabla disk` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Disk {
    /// Makes a FAT image holding the files under a directory.
    Create {
        /// The image file to write (replaced if it exists).
        image: PathBuf,
        /// The directory whose contents become the image's root.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Image size in MiB [default: room for the files, at least 16].
        #[arg(long, value_name = "MIB")]
        size: Option<u64>,
        /// Volume label.
        #[arg(long, default_value = "NABLA")]
        label: String,
    },
    /// Copies a file out of an image (to DEST, or to standard output).
    Get {
        /// The image.
        image: PathBuf,
        /// The file's path inside the image, e.g. /css/site.css.
        path: String,
        /// Where to write it [default: standard output].
        dest: Option<PathBuf>,
    },
    /// Lists a directory of an image.
    Ls {
        /// The image.
        image: PathBuf,
        /// The directory [default: /].
        #[arg(default_value = "/")]
        path: String,
    },
    /// Checks an image with `fsck.fat -n` (changes nothing).
    Check {
        /// The image.
        image: PathBuf,
    },
}

/// Runs `program args`, returning its stdout, or an error naming the tool
/// and the package that provides it.
fn tool(program: &str, package: &str, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new(program)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .map_err(|e| format!("cannot run {program} (Debian package {package}): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// Bytes the files under `dir` take, each rounded up to 4 KiB clusters.
fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let meta = entry.metadata().map_err(|e| format!("{}: {e}", entry.path().display()))?;
        total += if meta.is_dir() {
            tree_size(&entry.path())? + 4096
        } else {
            meta.len().div_ceil(4096) * 4096
        };
    }
    Ok(total)
}

fn image_arg(image: &Path) -> Result<&str> {
    image.to_str().ok_or_else(|| format!("{}: the path is not UTF-8", image.display()))
}

/// Makes `image` from the tree under `from`.
pub fn create(image: &Path, from: &Path, size_mib: Option<u64>, label: &str) -> Result<()> {
    if !from.is_dir() {
        return Err(format!("{}: not a directory", from.display()));
    }
    let needed = tree_size(from)?;
    let mib = match size_mib {
        Some(m) => m,
        None => (needed + needed / 4).div_ceil(1 << 20) + 4,
    }
    .max(16);
    if mib << 20 < needed {
        return Err(format!("--size {mib}: the files need {} MiB", needed.div_ceil(1 << 20)));
    }
    let img = image_arg(image)?;
    let file = std::fs::File::create(image).map_err(|e| format!("{img}: {e}"))?;
    file.set_len(mib << 20).map_err(|e| format!("{img}: {e}"))?;
    drop(file);
    let fat = if mib <= 256 { "16" } else { "32" };
    tool("mkfs.fat", "dosfstools", &["-F", fat, "--mbr=y", "--invariant", "-n", label, img])?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let src = entry.to_str().ok_or_else(|| format!("{}: not UTF-8", entry.display()))?;
        tool("mcopy", "mtools", &["-s", "-p", "-m", "-Q", "-i", img, src, "::/"])?;
    }
    check(image)
}

/// Checks `image` with `fsck.fat -n`.
pub fn check(image: &Path) -> Result<()> {
    tool("fsck.fat", "dosfstools", &["-n", image_arg(image)?]).map(drop)
}

/// Runs a `nabla disk` subcommand.
pub fn run(cmd: Disk) -> Result<()> {
    match cmd {
        Disk::Create { image, from, size, label } => create(&image, &from, size, &label),
        Disk::Get { image, path, dest } => {
            let img = image_arg(&image)?;
            let src = format!("::{path}");
            match dest {
                Some(d) => {
                    let d = d.to_str().ok_or("DEST is not UTF-8")?.to_string();
                    tool("mcopy", "mtools", &["-n", "-i", img, &src, &d]).map(drop)
                }
                None => {
                    let bytes = tool("mtype", "mtools", &["-i", img, &src])?;
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes).map_err(|e| format!("stdout: {e}"))
                }
            }
        }
        Disk::Ls { image, path } => {
            let out =
                tool("mdir", "mtools", &["-/", "-i", image_arg(&image)?, &format!("::{path}")])?;
            print!("{}", String::from_utf8_lossy(&out));
            Ok(())
        }
        Disk::Check { image } => check(&image),
    }
}
