//! The guest's disk, made from the container's rootfs at `create`.
//!
//! What goes on it, for an image whose binary is `/NAME.nabla` (or any
//! `/NAME`):
//!
//! 1. the tree under `/NAME.files`, if the rootfs has one (what `nabla pack
//!    --files` makes), as a FAT disk; a `/NAME.files` that is a symbolic
//!    link is refused;
//! 2. otherwise every other non-empty regular file of the rootfs, as a FAT
//!    disk;
//! 3. otherwise (nothing but the binary) a raw, zeroed disk, sparse, of
//!    `org.nabla.disk.size-mib` MiB (an annotation; default 64), which a
//!    guest like kvd formats itself.
//!
//! The image is untrusted: FAT disks are made by `nabla disk create` (next
//! to the runtime) with `--skip-special`, which never follows a symbolic
//! link nor opens anything but directories and regular files, leaving the
//! rest out with a warning that goes to the runtime's log. It runs as the
//! container's process user (so it reads only what that user may), in a
//! process group of its own that is killed if it outlives the disk timeout.
//!
//! Each container's disk lives in a directory of its own, made exclusively
//! (a second runtime with the same root and id is refused, never shares
//! it), mode 0700, owned by the process user: `ROOT/ID/disk/` or, when
//! the root is on tmpfs as `/run` is (disk images can be large),
//! `/var/lib/nabla-runc/disks/HASH-ID/`, where HASH is a hash of the
//! canonical root, so two roots with the same id get two disks. The image
//! in it, `disk.img`, is created exclusively, mode 0600. Its size is capped
//! by the runtime's `--disk-max-mib`. Both are removed at `delete`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bundle::Plan;
use crate::log::Log;
use crate::{Error, sibling};

/// Where disks go when the runtime's root is on tmpfs.
const DISK_DIR: &str = "/var/lib/nabla-runc/disks";
const SIZE_ANNOTATION: &str = "org.nabla.disk.size-mib";
const DEFAULT_RAW_MIB: u64 = 64;

/// The runtime's settings for the disks it makes.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The largest disk, in MiB.
    pub max_mib: u64,
    /// How long `nabla disk create` may take.
    pub timeout: Duration,
}

/// A disk made for a container.
#[derive(Debug, Clone)]
pub struct Made {
    /// The disk image.
    pub image: PathBuf,
    /// Its directory, the container's own.
    pub dir: PathBuf,
}

/// The name of the directory under `DISK_DIR` for container `id` of the
/// runtime whose root is `root` (canonical): a 64-bit FNV-1a hash of the
/// root, then the id. A collision makes `create` fail (the directory is
/// made exclusively), never share a disk.
pub fn keyed_name(root: &Path, id: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in root.as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}-{id}")
}

/// Makes the disk for the container `id` (state in `container_dir`, under
/// the runtime's `root`).
pub fn make(
    plan: &Plan,
    root: &Path,
    container_dir: &Path,
    id: &str,
    settings: Settings,
    log: &Log,
) -> Result<Made, Error> {
    let dir = if on_tmpfs(container_dir) {
        let base = PathBuf::from(DISK_DIR);
        // Traversable (the process user opens its disk), not listable.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&base)
            .map_err(|e| Error(format!("{}: {e}", base.display())))?;
        let root = root.canonicalize().map_err(|e| Error(format!("{}: {e}", root.display())))?;
        base.join(keyed_name(&root, id))
    } else {
        container_dir.join("disk")
    };
    fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error(format!(
                "disk directory {} exists already: another container with this id and root has it (not shared)",
                dir.display()
            ))
        } else {
            Error(format!("{}: {e}", dir.display()))
        }
    })?;
    let made = Made { image: dir.join("disk.img"), dir };
    match fill(plan, &made.image, settings, log) {
        Ok(()) => Ok(made),
        Err(e) => {
            let _ = fs::remove_dir_all(&made.dir);
            Err(e)
        }
    }
}

fn fill(plan: &Plan, img: &Path, settings: Settings, log: &Log) -> Result<(), Error> {
    let dir = img.parent().unwrap_or(Path::new("/"));
    crate::chown(dir, plan.uid, plan.gid)?;
    let stem =
        plan.binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = stem.strip_suffix(".nabla").unwrap_or(&stem);
    let files = plan.rootfs.join(format!("{stem}.files"));
    match fs::symlink_metadata(&files) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Error(format!(
                "rootfs /{stem}.files is a symbolic link: the guest's files must be a directory in the image (links are not followed)"
            )));
        }
        Ok(m) if m.is_dir() => return fat(plan, img, &files, &[], settings, log),
        _ => {}
    }
    let binary = plan.binary.strip_prefix(&plan.rootfs).unwrap_or(&plan.binary);
    let extra = ["--skip-empty".as_ref(), "--exclude".as_ref(), binary.as_os_str()];
    fat(plan, img, &plan.rootfs, &extra, settings, log)?;
    if img.exists() { Ok(()) } else { raw(img, plan, settings) }
}

fn on_tmpfs(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills a zeroed struct from a NUL-terminated path.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type == libc::TMPFS_MAGIC
    }
}

/// Runs `nabla disk create img --from from ...` as the process user, for at
/// most the disk timeout. Its warnings go to the log, with the rootfs's
/// host path taken off (the user knows the image's paths).
fn fat(
    plan: &Plan,
    img: &Path,
    from: &Path,
    extra: &[&std::ffi::OsStr],
    settings: Settings,
    log: &Log,
) -> Result<(), Error> {
    let nabla = sibling("nabla")?;
    let mut cmd = Command::new(&nabla);
    cmd.args(["disk", "create"])
        .arg(img)
        .arg("--from")
        .arg(from)
        .args(["--skip-special", "--private", "--max-size"])
        .arg(settings.max_mib.to_string())
        .args(extra)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("MTOOLS_SKIP_CHECK", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that a timeout kills mkfs.fat and mcopy too.
        .process_group(0);
    let (uid, gid, groups) = (plan.uid, plan.gid, plan.additional_gids.clone());
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (close_range, setgroups, setgid,
    // setuid) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // The caller's fds (an engine's --preserve-fds among them) are
            // not the helper's business.
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
            // As the container process does (process.rs).
            if (uid != 0 || gid != 0 || !groups.is_empty())
                && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error(format!("{}: {e}", nabla.display())))?;
    let pid = child.id() as i32;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let deadline = Instant::now() + settings.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => break None,
            Err(e) => return Err(Error(format!("{}: {e}", nabla.display()))),
        }
    };
    if status.is_none() {
        // SAFETY: signalling the process group of our own child, which
        // still exists (not yet reaped).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = child.wait();
    }
    // The pipes close once the whole group is gone.
    let _ = out.join();
    let msg = err.join().unwrap_or_default();
    let host = format!("{}", plan.rootfs.display());
    let shown = |line: &str| line.replace(&host, "");
    for line in msg.lines() {
        if let Some(w) = line.strip_prefix("nabla: warning: ") {
            log.warn(&format!("the guest's disk: {}", shown(w)));
        }
    }
    match status {
        None => Err(Error(format!(
            "making the guest's disk from the rootfs took more than {} s: stopped (raise --disk-timeout for a large image)",
            settings.timeout.as_secs()
        ))),
        Some(s) if s.success() => Ok(()),
        Some(s) => {
            let errors: Vec<String> = msg
                .lines()
                .filter(|l| !l.starts_with("nabla: warning: "))
                .map(|l| shown(l.strip_prefix("nabla: ").unwrap_or(l)))
                .collect();
            let text = if errors.is_empty() { s.to_string() } else { errors.join("; ") };
            Err(Error(format!("making the guest's disk from the rootfs: {text}")))
        }
    }
}

/// The raw disk's size in MiB: the annotation's, within 1..=max.
fn raw_mib(plan: &Plan, max: u64) -> Result<u64, Error> {
    match plan.annotations.get(SIZE_ANNOTATION) {
        None => Ok(DEFAULT_RAW_MIB.min(max)),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Error(format!(
                "annotation {SIZE_ANNOTATION}={v:?}: expected a size in MiB from 1 to {max} (the runtime's --disk-max-mib)"
            ))),
        },
    }
}

fn raw(img: &Path, plan: &Plan, settings: Settings) -> Result<(), Error> {
    let mib = raw_mib(plan, settings.max_mib)?;
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(img)
        .map_err(|e| Error(format!("{}: {e}", img.display())))?;
    if plan.uid != 0 || plan.gid != 0 {
        std::os::unix::fs::fchown(&f, Some(plan.uid), Some(plan.gid))
            .map_err(|e| Error(format!("{}: chown: {e}", img.display())))?;
    }
    f.set_len(mib << 20).map_err(|e| Error(format!("{}: {e}", img.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_dirs_are_keyed_by_root_and_id() {
        let a = keyed_name(Path::new("/run/containerd/runc/k8s.io"), "web");
        let b = keyed_name(Path::new("/run/containerd/runc/default"), "web");
        assert_ne!(a, b);
        assert!(a.ends_with("-web") && a.len() == 16 + 1 + 3, "{a}");
        assert_eq!(a, keyed_name(Path::new("/run/containerd/runc/k8s.io"), "web"));
        assert_ne!(a, keyed_name(Path::new("/run/containerd/runc/k8s.io"), "db"));
    }
}
