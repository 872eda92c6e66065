//! Processes and mounts a test leaves behind: found by the test's
//! temporary directory in their command line or mount point, and removed.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::text;

/// Whether `pid` is running (neither a zombie nor gone).
pub fn alive(pid: i64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap_or('X');
            state != 'Z' && state != 'X'
        })
        .unwrap_or(false)
}

/// The processes (not zombies) whose command line mentions `needle`,
/// other than this one.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid as u32 == std::process::id() {
            continue;
        }
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if !cmd.is_empty() && text(&cmd).contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// Kills every process whose command line mentions `needle` (the temp dir
/// of a test): shims, daemons and tenders left by a failed test.
pub fn kill_mentioning(needle: &str) {
    for pid in pids_mentioning(needle) {
        // SAFETY: a signal to a process of this test.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The mount points under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// Unmounts everything under `dir` (rootfs overlays, pod namespaces,
/// podman's shm), deepest first.
pub fn unmount_under(dir: &Path) {
    let mut points = mounts_under(dir);
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", &p]).status();
    }
}
