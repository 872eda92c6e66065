//! nabla-runc driven as the shims drive it, for the suites that test the
//! runtime (oci, cgroups) and the CRI suite: a runtime with its own root
//! and JSON log under a temporary directory, every command bounded in
//! time, containers a failed test left deleted on drop; and hand-made
//! bundles.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::netns::require_root;
use super::{TempDir, profile_dir, text};

/// `limit` of a bundle's memory resources: 48 MiB.
pub const BUNDLE_MEMORY: u64 = 48 * 1024 * 1024;

/// nabla-runc, built into the same profile directory as the test.
pub fn runc() -> PathBuf {
    let p = profile_dir().join("nabla-runc");
    assert!(
        p.exists(),
        "{} does not exist: build it with `cargo build --release --manifest-path runtime/Cargo.toml --target-dir target` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The runtime with its own root and JSON log under a temp dir; optionally
/// with its root on a tmpfs (`on_tmpfs`), or run inside a mount namespace
/// whose `/sys/fs/cgroup` is a cgroup2 mount (`v2`), or with
/// `--systemd-cgroup` (`systemd`).
pub struct Runtime {
    /// A tmpfs at the root, unmounted before `dir` is removed.
    tmpfs: Option<Tmpfs>,
    dir: TempDir,
    /// Run in a mount namespace of its own where `/sys/fs/cgroup` is the
    /// unified hierarchy: nabla-runc sees a v2 host.
    pub v2: bool,
    /// `--systemd-cgroup` before the subcommand.
    pub systemd: bool,
}

impl Runtime {
    pub fn new() -> Self {
        require_root();
        Runtime { tmpfs: None, dir: TempDir::new("runc"), v2: false, systemd: false }
    }

    /// With its root on a tmpfs, as /run is.
    pub fn on_tmpfs() -> Self {
        let mut rt = Runtime::new();
        rt.tmpfs = Some(Tmpfs::mount(&rt.root()));
        rt
    }

    /// Seeing a cgroup v2 host (see `v2`).
    pub fn v2() -> Self {
        let mut rt = Runtime::new();
        rt.v2 = true;
        rt
    }

    /// The temporary directory the root and the log are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("log.json")
    }

    /// Runs the runtime. Its stdout and stderr are files, not pipes: as
    /// with runc, they become the container's stdio, which the container
    /// process keeps after the runtime has exited.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_with(&[], None, args)
    }

    /// `cmd` with more environment variables.
    pub fn cmd_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.cmd_with(env, None, args)
    }

    /// `cmd` with `stdin` (if any) written to its standard input.
    pub fn cmd_in(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.cmd_with(&[], stdin, args)
    }

    /// `cmd` with more environment variables and a standard input, bounded
    /// in time: a runtime that hangs (on a FIFO in an image, say) fails the
    /// test instead.
    pub fn cmd_with(&self, env: &[(&str, &str)], stdin: Option<&str>, args: &[&str]) -> Output {
        let child = self.spawn_with(env, stdin, args);
        self.finish(child, args)
    }

    /// Starts the runtime with `args` in a process group of its own.
    pub fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_with(&[], None, args)
    }

    pub fn spawn_env(&self, env: &[(&str, &str)], args: &[&str]) -> Running {
        self.spawn_with(env, None, args)
    }

    pub fn spawn_with(&self, env: &[(&str, &str)], stdin: Option<&str>, args: &[&str]) -> Running {
        use std::os::unix::process::CommandExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let out = self.dir.path().join(format!("out-{n}"));
        let err = self.dir.path().join(format!("err-{n}"));
        let runc = runc();
        let mut c = if self.v2 {
            // A mount namespace of its own, where /sys/fs/cgroup is the
            // unified hierarchy: nabla-runc sees a v2 host.
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg("mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"")
                .arg(&runc);
            c
        } else {
            Command::new(&runc)
        };
        c.arg("--root").arg(self.root()).arg("--log").arg(self.log());
        c.args(["--log-format", "json"]);
        if self.systemd {
            c.arg("--systemd-cgroup");
        }
        let child = c
            .args(args)
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .process_group(0)
            .spawn()
            .expect("run nabla-runc");
        let mut r = Running { child: Some(child), out, err };
        if let Some(s) = stdin {
            let mut pipe = r.child.as_mut().unwrap().stdin.take().unwrap();
            pipe.write_all(s.as_bytes()).unwrap();
        }
        r
    }

    /// Waits for `r` at most 60 s; then kills its process group and fails.
    pub fn finish(&self, mut r: Running, args: &[&str]) -> Output {
        let deadline = Instant::now() + Duration::from_secs(60);
        let child = r.child.as_mut().unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "nabla-runc {args:?}: still running after 60 s");
            std::thread::sleep(Duration::from_millis(5));
        };
        r.child = None;
        Output { status, stdout: fs::read(&r.out).unwrap(), stderr: fs::read(&r.err).unwrap() }
    }

    /// The disk the last `--debug` create made (its `disk PATH for DEV`
    /// record).
    pub fn last_disk(&self) -> PathBuf {
        let log = fs::read_to_string(self.log()).unwrap();
        let msg = log
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|r| r["msg"].as_str().map(String::from))
            .find(|m| m.starts_with("disk ") && m.contains(" for "))
            .unwrap_or_else(|| panic!("no disk record in {log}"));
        PathBuf::from(msg["disk ".len()..msg.rfind(" for ").unwrap()].to_string())
    }

    /// The warnings in the log.
    pub fn warnings(&self) -> String {
        let log = fs::read_to_string(self.log()).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["level"] == "warning")
            .filter_map(|r| r["msg"].as_str().map(String::from))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "nabla-runc {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs a command that must fail with `needle` in its message: exit 1,
    /// `nabla-runc: ...` on stderr, and the log's last record an error
    /// with the message and a time.
    pub fn refused(&self, args: &[&str], needle: &str) {
        self.refused_in(args, None, needle)
    }

    /// `refused` with `stdin` written to the runtime's standard input.
    pub fn refused_in(&self, args: &[&str], stdin: Option<&str>, needle: &str) {
        let out = self.cmd_in(args, stdin);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "nabla-runc {args:?}: {err}");
        assert!(
            err.starts_with("nabla-runc: ") && err.contains(needle),
            "nabla-runc {args:?}: expected {needle:?} in {err:?}"
        );
        let log = fs::read_to_string(self.log()).expect("the runtime's log");
        let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last["level"], "error", "{log}");
        assert!(last["msg"].as_str().unwrap().contains(needle), "{log}");
        assert!(last["time"].as_str().is_some(), "{log}");
    }

    /// `state ID`, parsed.
    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    /// The state's `status`.
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// The state's `pid`.
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"].as_i64().unwrap() as i32
    }

    /// Waits at most 10 s for `id`'s status to become `want`; the state.
    pub fn wait_status(&self, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.state(id);
            if s["status"] == want {
                return s;
            }
            assert!(Instant::now() < deadline, "{id} never became {want}: {s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Nothing of container `id` is left: no state, no disk.
    pub fn assert_gone(&self, id: &str) {
        assert!(!self.root().join(id).exists(), "state of {id} left behind");
        let disks = Path::new("/var/lib/nabla-runc/disks");
        assert!(!disks.join(format!("{id}.img")).exists(), "disk of {id} left behind");
        // A root on tmpfs keeps its disks in HASH-ID there: HASH is the
        // 64-bit FNV-1a of the canonical root (runtime/src/disk.rs).
        if self.tmpfs.is_some() {
            let keyed = keyed_disk_dir(&self.root(), id);
            assert!(!keyed.exists(), "disk of {id} left behind: {}", keyed.display());
        }
    }
}

impl Drop for Runtime {
    /// Containers a failed test left: killed and deleted (their cgroups
    /// with them).
    fn drop(&mut self) {
        if !self.root().exists() {
            return;
        }
        let out = self.cmd(&["list", "-q"]);
        for id in text(&out.stdout).lines() {
            let _ = self.cmd(&["delete", "--force", id]);
        }
    }
}

/// Where a runtime whose root is on tmpfs keeps the disk of `id`:
/// `/var/lib/nabla-runc/disks/HASH-ID`, HASH the 64-bit FNV-1a of the
/// canonical root (runtime/src/disk.rs).
pub fn keyed_disk_dir(root: &Path, id: &str) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in root.canonicalize().unwrap().as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Path::new("/var/lib/nabla-runc/disks").join(format!("{h:016x}-{id}"))
}

/// A runtime command in the background; its process group is killed if
/// it is dropped unfinished.
pub struct Running {
    /// The runtime's process, until `Runtime::finish` has reaped it.
    pub child: Option<Child>,
    /// The files its stdout and stderr go to.
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            // SAFETY: a signal to the process group of a child of this test.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

/// A tmpfs mounted at `path` (as /run is), unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(path: &Path) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs: {}", text(&out.stderr));
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A bundle for guest `binary` with `args` in `dir/NAME`: `rootfs/FILE.nabla`
/// (a copy of `binary`, FILE its file name) and a config.json, the least a
/// guest needs (root, pid, mount and network namespaces, a memory limit of
/// `BUNDLE_MEMORY`), that `tweak` may change.
pub fn bundle(
    dir: &Path,
    name: &str,
    binary: &Path,
    args: &[&str],
    tweak: impl FnOnce(&mut Value),
) -> PathBuf {
    let b = dir.join(name);
    let rootfs = b.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    let file = binary.file_name().unwrap().to_str().unwrap().to_string();
    fs::copy(binary, rootfs.join(format!("{file}.nabla"))).unwrap();
    let mut argv = vec![format!("/{file}.nabla")];
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": argv, "env": [], "cwd": "/"},
        "root": {"path": "rootfs", "readonly": true},
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}],
            "resources": {"memory": {"limit": BUNDLE_MEMORY}}
        }
    });
    tweak(&mut config);
    fs::write(b.join("config.json"), config.to_string()).unwrap();
    b
}
