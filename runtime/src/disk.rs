//! The guest's disk, made from the container's rootfs at `create`.
//!
//! What goes on it, for an image whose binary is `/NAME.nabla` (or any
//! `/NAME`):
//!
//! 1. the tree under `/NAME.files`, if the rootfs has one (what `nabla pack
//!    --files` makes), as a FAT disk;
//! 2. otherwise every other regular file of the rootfs, as a FAT disk;
//! 3. otherwise (nothing but the binary) a raw, zeroed disk, sparse, of
//!    `org.nabla.disk.size-mib` MiB (an annotation; default 64), which a
//!    guest like kvd formats itself.
//!
//! FAT disks are made by `nabla disk create` (next to the runtime). The
//! disk lives outside tmpfs (`/var/lib/nabla-runc/disks`) when the runtime's
//! root is on tmpfs, as `/run` is: disk images can be large. It is removed
//! at `delete`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bundle::Plan;
use crate::{Error, sibling};

/// Where disks go when the runtime's root is on tmpfs.
const DISK_DIR: &str = "/var/lib/nabla-runc/disks";
const SIZE_ANNOTATION: &str = "org.nabla.disk.size-mib";
const DEFAULT_RAW_MIB: u64 = 64;

/// Makes the disk for the container `id` and returns its path.
pub fn make(plan: &Plan, container_dir: &Path, id: &str) -> Result<PathBuf, Error> {
    let dir = if on_tmpfs(container_dir) {
        let d = PathBuf::from(DISK_DIR);
        fs::create_dir_all(&d).map_err(|e| Error(format!("{}: {e}", d.display())))?;
        d
    } else {
        container_dir.to_path_buf()
    };
    let img = dir.join(format!("{id}.img"));
    let stem =
        plan.binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = stem.strip_suffix(".nabla").unwrap_or(&stem);
    let files = plan.rootfs.join(format!("{stem}.files"));
    let result = if files.is_dir() {
        fat(&img, &files)
    } else {
        let staging = dir.join(format!("{id}.staging"));
        let copied = copy_tree(&plan.rootfs, &staging, &plan.binary);
        let r = match copied {
            Ok(0) => raw(&img, plan),
            Ok(_) => fat(&img, &staging),
            Err(e) => Err(e),
        };
        let _ = fs::remove_dir_all(&staging);
        r
    };
    match result {
        Ok(()) => Ok(img),
        Err(e) => {
            let _ = fs::remove_file(&img);
            Err(e)
        }
    }
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

fn fat(img: &Path, from: &Path) -> Result<(), Error> {
    let nabla = sibling("nabla")?;
    let out = Command::new(&nabla)
        .args(["disk", "create"])
        .arg(img)
        .arg("--from")
        .arg(from)
        .output()
        .map_err(|e| Error(format!("{}: {e}", nabla.display())))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg.trim();
        return Err(Error(format!(
            "making the guest's disk from the rootfs: {}",
            msg.strip_prefix("nabla: ").unwrap_or(msg)
        )));
    }
    Ok(())
}

fn raw(img: &Path, plan: &Plan) -> Result<(), Error> {
    let mib = match plan.annotations.get(SIZE_ANNOTATION) {
        None => DEFAULT_RAW_MIB,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=1 << 20).contains(&n) => n,
            _ => {
                return Err(Error(format!(
                    "annotation {SIZE_ANNOTATION}={v:?}: expected a size in MiB from 1 to 1048576"
                )));
            }
        },
    };
    let f = fs::File::create(img).map_err(|e| Error(format!("{}: {e}", img.display())))?;
    f.set_len(mib << 20).map_err(|e| Error(format!("{}: {e}", img.display())))
}

/// Copies the regular files and directories under `from` to `to`, leaving
/// out `skip`; returns how many files were copied. Symbolic links and
/// special files are left out (a FAT disk cannot hold them).
fn copy_tree(from: &Path, to: &Path, skip: &Path) -> Result<usize, Error> {
    let err = |p: &Path, e: std::io::Error| Error(format!("rootfs {}: {e}", p.display()));
    fs::create_dir_all(to).map_err(|e| err(to, e))?;
    let mut n = 0;
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(|e| err(from, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(from, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let src = e.path();
        if src == skip {
            continue;
        }
        let ty = e.file_type().map_err(|e| err(&src, e))?;
        let dst = to.join(e.file_name());
        if ty.is_dir() {
            let k = copy_tree(&src, &dst, skip)?;
            if k == 0 {
                // Empty directories are the engines' mount points (/proc,
                // /dev, /sys, ...): not the image's files.
                let _ = fs::remove_dir(&dst);
            }
            n += k;
        } else if ty.is_file() {
            // Files the engines create empty as bind-mount targets
            // (/etc/hosts, /run/.containerenv...) are not the image's either.
            if e.metadata().map(|m| m.len() == 0).unwrap_or(false) {
                continue;
            }
            fs::copy(&src, &dst).map_err(|e| err(&src, e))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_all_but_the_binary_and_mount_points() {
        let base = std::env::temp_dir().join(format!("nabla-runc-disk-{}", std::process::id()));
        let root = base.join("rootfs");
        fs::create_dir_all(root.join("proc")).unwrap();
        fs::create_dir_all(root.join("www/css")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/hosts"), b"").unwrap();
        fs::write(root.join("app.nabla"), b"elf").unwrap();
        fs::write(root.join("www/index.html"), b"hi").unwrap();
        fs::write(root.join("www/css/a.css"), b"x").unwrap();
        let out = base.join("out");
        assert_eq!(copy_tree(&root, &out, &root.join("app.nabla")).unwrap(), 2);
        assert!(out.join("www/css/a.css").is_file());
        assert!(!out.join("app.nabla").exists());
        assert!(!out.join("proc").exists());
        assert!(!out.join("etc").exists());
        let none = base.join("none");
        fs::remove_dir_all(root.join("www")).unwrap();
        assert_eq!(copy_tree(&root, &none, &root.join("app.nabla")).unwrap(), 0);
        fs::remove_dir_all(&base).unwrap();
    }
}
