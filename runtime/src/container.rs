//! A container's record under `--root`: `ROOT/ID/state.json`, the exec fifo
//! the waiting process blocks on until `start`, and the container's status.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::ContainerState;
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
    /// zombie), created while the process waits on the exec fifo, running
    /// after.
    pub fn status(&self, r: &Record) -> ContainerState {
        if !alive(r.pid, r.start_time) {
            ContainerState::Stopped
        } else if self.fifo().exists() {
            ContainerState::Created
        } else {
            ContainerState::Running
        }
    }
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
    fn own_process_is_alive() {
        let pid = std::process::id() as i32;
        let (state, start) = proc_stat(pid).unwrap();
        assert_ne!(state, 'Z');
        assert!(alive(pid, start));
        assert!(!alive(pid, start + 1));
    }
}
