//! `nabla disk`: FAT disk images for guests, made and read with the
//! standard tools (dosfstools' `mkfs.fat` and `fsck.fat`, `mtools`).
//!
//! ```text
//! nabla disk create IMG --from DIR [--size MIB] [--label NAME] [--max-size MIB]
//!                   [--skip-special] [--skip-empty] [--exclude PATH]... [--private]
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
//!
//! `create` reads the tree without following any symbolic link and copies
//! only directories and regular files (see `walk`): the tree may be an
//! untrusted image's, as when nabla-runc makes a container's disk. The
//! image is written under a temporary name next to `IMG` and renamed over
//! it when complete, so an existing `IMG`, or a link there, is replaced and
//! never written through.

mod walk;

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench::Result;

/// `nabla disk` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Disk {
    /// Makes a FAT image holding the directories and regular files under a
    /// directory (symbolic links are never followed; special files and
    /// links are refused unless --skip-special).
    Create {
        /// The image file to write (replaced if it exists).
        image: PathBuf,
        #[command(flatten)]
        options: CreateOptions,
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

/// How `nabla disk create` makes an image.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateOptions {
    /// The directory whose contents become the image's root (itself not a
    /// symbolic link).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Image size in MiB [default: room for the files, at least 16].
    #[arg(long, value_name = "MIB")]
    pub size: Option<u64>,
    /// Volume label.
    #[arg(long, default_value = "NABLA")]
    pub label: String,
    /// Refuses to make an image larger than this many MiB.
    #[arg(long, value_name = "MIB")]
    pub max_size: Option<u64>,
    /// Leaves out symbolic links, FIFOs, sockets, device nodes, unreadable
    /// entries and (as root) files with hard links outside DIR, each with a
    /// warning on stderr, instead of refusing them.
    #[arg(long)]
    pub skip_special: bool,
    /// Leaves out empty files and directories without files; when nothing
    /// is left, writes no image and says so on stdout.
    #[arg(long)]
    pub skip_empty: bool,
    /// Leaves out this path, relative to DIR (repeatable).
    #[arg(long, value_name = "PATH")]
    pub exclude: Vec<PathBuf>,
    /// Makes the image readable by its owner only (mode 0600).
    #[arg(long)]
    pub private: bool,
}

impl CreateOptions {
    /// Default options for the tree under `from`.
    pub fn from(from: &Path) -> CreateOptions {
        CreateOptions {
            from: from.to_path_buf(),
            size: None,
            label: "NABLA".into(),
            max_size: None,
            skip_special: false,
            skip_empty: false,
            exclude: Vec::new(),
            private: false,
        }
    }
}

/// Runs `program args`, returning its stdout, or an error naming the tool
/// and the package that provides it.
fn tool<S: AsRef<OsStr>>(program: &str, package: &str, args: &[S]) -> Result<Vec<u8>> {
    let out = Command::new(program)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .map_err(|e| format!("cannot run {program} (Debian package {package}): {e}"))?;
    if !out.status.success() {
        let args: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

fn image_arg(image: &Path) -> Result<&str> {
    image.to_str().ok_or_else(|| format!("{}: the path is not UTF-8", image.display()))
}

/// A file or directory next to the image, with a name of its own, removed
/// when dropped unless kept.
#[derive(Debug)]
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// A new directory (mode 0700) or file (mode `file`) named after
    /// `image`, created exclusively (never an existing file or link).
    fn new(image: &Path, what: &str, file: Option<u32>) -> Result<Scratch> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = match image.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name =
            image.file_name().ok_or_else(|| format!("{}: not a file name", image.display()))?;
        let mut last = None;
        for _ in 0..100 {
            let mut n = OsString::from(".");
            n.push(name);
            n.push(format!(".{what}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
            let path = dir.join(n);
            let made = match file {
                None => std::fs::DirBuilder::new().mode(0o700).create(&path),
                Some(mode) => std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)
                    .map(drop),
            };
            match made {
                Ok(()) => return Ok(Scratch { path, keep: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Err(format!("{}: no free temporary name: {last:?}", dir.display()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes `image` from the tree under `o.from`.
pub fn create(image: &Path, o: &CreateOptions) -> Result<()> {
    image_arg(image)?;
    let staging = Scratch::new(image, "staging", None)?;
    let policy = walk::Policy {
        skip_special: o.skip_special,
        skip_empty: o.skip_empty,
        exclude: o.exclude.clone(),
        max_bytes: o.max_size.map(|m| m << 20),
    };
    let staged = walk::stage(&o.from, &staging.path, &policy)?;
    for w in &staged.warnings {
        eprintln!("nabla: warning: {w}");
    }
    if o.skip_empty && staged.files == 0 {
        println!("{}: no files: no image written", o.from.display());
        return Ok(());
    }
    let needed = staged.bytes;
    let mib = match o.size {
        Some(m) => m,
        None => (needed + needed / 4).div_ceil(1 << 20) + 4,
    }
    .max(16);
    if mib << 20 < needed {
        return Err(format!("--size {mib}: the files need {} MiB", needed.div_ceil(1 << 20)));
    }
    if let Some(max) = o.max_size
        && mib > max
    {
        return Err(format!(
            "{}: the image would be {mib} MiB, more than the {max} MiB allowed",
            o.from.display()
        ));
    }
    let mut tmp = Scratch::new(image, "tmp", Some(if o.private { 0o600 } else { 0o644 }))?;
    let img = image_arg(&tmp.path)?.to_string();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tmp.path)
        .and_then(|f| f.set_len(mib << 20))
        .map_err(|e| format!("{img}: {e}"))?;
    let fat = if mib <= 256 { "16" } else { "32" };
    tool("mkfs.fat", "dosfstools", &["-F", fat, "--mbr=y", "--invariant", "-n", &o.label, &img])?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&staging.path)
        .map_err(|e| format!("{}: {e}", staging.path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| format!("{}: {e}", staging.path.display()))?;
    entries.sort();
    if !entries.is_empty() {
        let mut args: Vec<OsString> =
            ["-s", "-p", "-m", "-Q", "-i", img.as_str()].iter().map(OsString::from).collect();
        args.extend(entries.into_iter().map(PathBuf::into_os_string));
        args.push("::/".into());
        tool("mcopy", "mtools", &args)?;
    }
    check(&tmp.path)?;
    std::fs::rename(&tmp.path, image).map_err(|e| format!("{}: {e}", image.display()))?;
    tmp.keep = true;
    Ok(())
}

/// Checks `image` with `fsck.fat -n`.
pub fn check(image: &Path) -> Result<()> {
    tool("fsck.fat", "dosfstools", &["-n", image_arg(image)?]).map(drop)
}

/// Runs a `nabla disk` subcommand.
pub fn run(cmd: Disk) -> Result<()> {
    match cmd {
        Disk::Create { image, options } => create(&image, &options),
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
