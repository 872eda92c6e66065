//! A container's record under `--root`: `ROOT/ID/state.json`, the exec fifo
//! the waiting process blocks on until `start`, the container's status, and
//! its lock.
//!
//! The lock is `flock` on `ROOT/ID/lock`. `create` makes the directory
//! under a temporary name with the lock file in it, takes the lock, and
//! only then renames the directory to `ROOT/ID` (failing if that exists):
//! the directory never appears unlocked, and `create` holds the lock until
//! it is done. `start`, `kill` and `delete` take it before they look at the
//! state, so a `delete --force` during a `create` of the same id waits for
//! it instead of removing the directory under it. The lock file goes with
//! the directory; a waiter that gets the lock of a removed directory sees
//! that the file at `ROOT/ID/lock` is no longer its own and looks again.

use std::collections::HashMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::net::Wiring;

/// What `create` recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    pub pid: i32,
    /// The process's start time (clock ticks after boot, `/proc/PID/stat`
    /// field 22): tells our process from a later one with a reused pid.
    pub start_time: u64,
    /// RFC 3339.
    pub created: String,
    pub annotations: HashMap<String, String>,
    /// The network namespace joined, if any, and what was wired in it.
    pub netns: Option<PathBuf>,
    pub wirings: Vec<Wiring>,
    /// The disk made from the rootfs, removed at delete.
    pub disk: Option<PathBuf>,
    /// The disk's own directory, removed at delete.
    #[serde(default)]
    pub disk_dir: Option<PathBuf>,
    /// The container's cgroup, removed at delete.
    #[serde(default)]
    pub cgroup: Option<crate::cgroup::Cgroup>,
    /// The guest's arena, MiB (`--mem`), if the config set a memory limit.
    #[serde(default)]
    pub mem_mib: Option<u64>,
}

/// A container's status, runc's (the OCI states and `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    /// The OCI state for the spec's JSON (which has no `paused`; `state`
    /// says "paused" over it, as runc does).
    pub fn oci(self) -> oci_spec::runtime::ContainerState {
        use oci_spec::runtime::ContainerState as S;
        match self {
            Status::Created => S::Created,
            Status::Running | Status::Paused => S::Running,
            Status::Stopped => S::Stopped,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// A container's lock, held until dropped; `None` inside for a container
/// made by an earlier nabla-runc, which had no lock file.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] Option<fs::File>);

/// How long `start`, `kill` and `delete` wait for a container's lock
/// (held by a `create` making a disk, at most the disk timeout, or by
/// another command).
pub const LOCK_WAIT: Duration = Duration::from_secs(300);

fn flock(f: &fs::File, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A container's directory under the runtime's root.
#[derive(Debug, Clone)]
pub struct Dir {
    pub path: PathBuf,
}

impl Dir {
    pub fn new(root: &Path, id: &str) -> Result<Dir, Error> {
        if id.is_empty()
            || id == "."
            || id == ".."
            || id.len() > 1024
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._-+:@".contains(c))
        {
            return Err(Error(format!(
                "invalid container id {id:?}: use letters, digits and ._-+:@"
            )));
        }
        Ok(Dir { path: root.join(id) })
    }

    pub fn lock_file(&self) -> PathBuf {
        self.path.join("lock")
    }

    /// Makes the container's directory, locked (see the module's doc):
    /// fails if it exists.
    pub fn create_locked(&self, id: &str) -> Result<Lock, Error> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let root = self.path.parent().unwrap_or(Path::new("/"));
        // `~` is not allowed in ids: no container is ever called this.
        let tmp = root.join(format!(
            "~create-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let err = |p: &Path, e: std::io::Error| Error(format!("{}: {e}", p.display()));
        fs::create_dir(&tmp).map_err(|e| err(&tmp, e))?;
        let made = (|| {
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(tmp.join("lock"))
                .map_err(|e| err(&tmp.join("lock"), e))?;
            flock(&f, libc::LOCK_EX).map_err(|e| err(&tmp.join("lock"), e))?;
            rename_noreplace(&tmp, &self.path).map_err(|e| {
                if e.raw_os_error() == Some(libc::EEXIST) {
                    Error(format!("container {id} already exists"))
                } else {
                    err(&self.path, e)
                }
            })?;
            Ok(Lock(Some(f)))
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        made
    }

    /// Takes the container's lock, waiting at most `wait`. `Ok(None)`: the
    /// container's directory does not exist (or went while waiting).
    pub fn lock(&self, id: &str, wait: Duration) -> Result<Option<Lock>, Error> {
        let path = self.lock_file();
        let deadline = Instant::now() + wait;
        loop {
            let f = match fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Made by an earlier nabla-runc, without a lock file.
                    return Ok(self.exists().then_some(Lock(None)));
                }
                Err(e) => return Err(Error(format!("{}: {e}", path.display()))),
            };
            loop {
                match flock(&f, libc::LOCK_EX | libc::LOCK_NB) {
                    Ok(()) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                        if Instant::now() > deadline {
                            return Err(Error(format!(
                                "container {id} is busy: another nabla-runc has held {} for {} s",
                                path.display(),
                                wait.as_secs()
                            )));
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => return Err(Error(format!("{}: flock: {e}", path.display()))),
                }
            }
            let ours = f.metadata().map_err(|e| Error(format!("{}: {e}", path.display())))?;
            match fs::symlink_metadata(&path) {
                Ok(m) if (m.dev(), m.ino()) == (ours.dev(), ours.ino()) => {
                    return Ok(Some(Lock(Some(f))));
                }
                // Removed (and perhaps made again) while we waited.
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error(format!("{}: {e}", path.display()))),
            }
        }
    }

    pub fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join("exec.fifo")
    }

    pub fn exists(&self) -> bool {
        self.state_file().exists()
    }

    pub fn load(&self, id: &str) -> Result<Record, Error> {
        let text = fs::read(self.state_file()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error(format!("container {id} does not exist"))
            } else {
                Error(format!("{}: {e}", self.state_file().display()))
            }
        })?;
        serde_json::from_slice(&text)
            .map_err(|e| Error(format!("{}: {e}", self.state_file().display())))
    }

    /// Writes the record atomically (a temporary file renamed over it).
    pub fn save(&self, r: &Record) -> Result<(), Error> {
        let tmp = self.path.join("state.json.tmp");
        let text = serde_json::to_vec(r).map_err(|e| Error(e.to_string()))?;
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, self.state_file()))
            .map_err(|e| Error(format!("{}: {e}", self.state_file().display())))
    }

    /// The container's status: stopped once its process is gone (or a
    /// zombie), paused while its cgroup is frozen, created while the
    /// process waits on the exec fifo, running after.
    pub fn status(&self, r: &Record) -> Status {
        if !alive(r.pid, r.start_time) {
            Status::Stopped
        } else if r.cgroup.as_ref().is_some_and(|c| c.frozen()) {
            Status::Paused
        } else if self.fifo().exists() {
            Status::Created
        } else {
            Status::Running
        }
    }
}

/// `renameat2(from, to, RENAME_NOREPLACE)`: fails with EEXIST if `to` exists.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: two NUL-terminated paths, relative to the current directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `(state, start time)` of `pid` from `/proc/PID/stat`.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` is still the process that started at `start_time` and has
/// not exited.
pub fn alive(pid: i32, start_time: u64) -> bool {
    match proc_stat(pid) {
        Some((state, start)) => start == start_time && state != 'Z' && state != 'X',
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let root = Path::new("/tmp/r");
        assert!(Dir::new(root, "web-1_a.b").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "x\n"] {
            assert!(Dir::new(root, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_lock_excludes_and_follows_the_directory() {
        let root = std::env::temp_dir().join(format!("nabla-runc-lock-{}", std::process::id()));
        fs::create_dir_all(&root).unwrap();
        let dir = Dir::new(&root, "c").unwrap();
        assert!(dir.lock("c", Duration::ZERO).unwrap().is_none(), "no container, no lock");
        let held = dir.create_locked("c").unwrap();
        let e = dir.create_locked("c").unwrap_err();
        assert_eq!(e.0, "container c already exists");
        let e = dir.lock("c", Duration::from_millis(50)).unwrap_err();
        assert!(e.0.starts_with("container c is busy"), "{}", e.0);
        // A waiter whose directory is removed meanwhile finds nothing.
        let waiter = {
            let dir = dir.clone();
            std::thread::spawn(move || dir.lock("c", Duration::from_secs(10)).unwrap().is_none())
        };
        std::thread::sleep(Duration::from_millis(50));
        fs::remove_dir_all(&dir.path).unwrap();
        drop(held);
        assert!(waiter.join().unwrap());
        // No temporary directory is left behind.
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
        let _l = dir.create_locked("c").unwrap();
        drop(_l);
        assert!(dir.lock("c", Duration::ZERO).unwrap().is_some());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn own_process_is_alive() {
        let pid = std::process::id() as i32;
        let (state, start) = proc_stat(pid).unwrap();
        assert_ne!(state, 'Z');
        assert!(alive(pid, start));
        assert!(!alive(pid, start + 1));
    }
}
