//! containerd as the suites run it: a daemon of the test's own, with its
//! root, state, socket and log under a temporary directory, stopped by pid
//! with everything it left (shims, tenders, mounts); and images packed
//! with `nabla pack` for it to import.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::netns::require_root;
use super::procs::{kill_mentioning, unmount_under};
use super::{TempDir, run_program, text, workspace_bin};

/// A containerd of this test. `new` makes its directory; `launch` starts
/// the daemon. Dropped (or `stop`ped), it stops the daemon by pid, kills
/// every process that names the directory and unmounts what is under it;
/// the directory goes last.
pub struct Containerd {
    daemon: Option<Child>,
    stopped: bool,
    dir: TempDir,
}

impl Containerd {
    /// Its directory (`TempDir` tagged `tag`), the daemon not yet started.
    pub fn new(tag: &str) -> Containerd {
        require_root();
        Containerd { daemon: None, stopped: false, dir: TempDir::new(tag) }
    }

    /// containerd without the CRI plugin: root, state and socket in its
    /// directory.
    pub fn start() -> Containerd {
        let mut c = Containerd::new("containerd");
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{1}\"\n",
            c.dir().display(),
            c.socket().display()
        );
        c.launch(&config, None, Duration::from_secs(30));
        c
    }

    /// Starts the daemon with `config` (written to `config.toml`, whose
    /// `[grpc] address` must be `socket()`), in network namespace `netns`
    /// if any (entered with `nsenter --net`: the mount namespace stays the
    /// host's); waits at most `wait` for it to answer `ctr version`.
    pub fn launch(&mut self, config: &str, netns: Option<&str>, wait: Duration) {
        assert!(self.daemon.is_none(), "containerd launched twice");
        let d = self.dir.path();
        fs::write(d.join("config.toml"), config).unwrap();
        let log = fs::File::create(d.join("containerd.log")).unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg("containerd");
                c
            }
            None => Command::new("containerd"),
        };
        let daemon = cmd
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (Debian package containerd; with a netns, nsenter of util-linux)");
        self.daemon = Some(daemon);
        let deadline = Instant::now() + wait;
        while !self.socket().exists() || !self.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come up: {}", self.daemon_log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(|c| c.id() as i32)
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` on its socket.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr (Debian package containerd)")
    }

    /// `ctr` that must succeed; its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            self.daemon_log()
        );
        text(&out.stdout)
    }

    /// Stops the daemon by pid, then kills what names the directory (the
    /// shims, the tenders) and, once they are gone, unmounts everything
    /// under it (rootfs overlays, pod namespaces). Once; `drop` does it too.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let d = self.dir.path().to_path_buf();
        kill_mentioning(&d.display().to_string());
        std::thread::sleep(Duration::from_millis(100));
        unmount_under(&d);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Packs `binary` as image `reference` into `dir/NAME.tar`, with `files`
/// (a directory) for its disk.
pub fn pack(dir: &Path, binary: &Path, reference: &str, files: Option<&Path>) -> PathBuf {
    let name = binary.file_name().unwrap().to_str().unwrap();
    let tar = dir.join(format!("{name}.tar"));
    let mut args =
        vec!["pack", binary.to_str().unwrap(), "-t", reference, "-o", tar.to_str().unwrap()];
    if let Some(f) = files {
        args.extend(["--files", f.to_str().unwrap()]);
    }
    run_program(&workspace_bin("nabla"), &args).assert_ok();
    tar
}
