//! Shared helpers for the suites: where the binaries are, and running the
//! tender with a timeout so that a hung guest fails a test instead of
//! hanging the suite.

#![allow(dead_code)]

pub mod containerd;
pub mod frames;
pub mod guest;
pub mod netns;
#[path = "../../std/src/pattern.rs"]
pub mod pattern;
pub mod procs;
pub mod runtime;

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `SIGSEGV`.
pub const SIGSEGV: i32 = 11;
/// `SIGSYS`.
pub const SIGSYS: i32 = 31;

/// The directory cargo put this test in: `target/<profile>`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf()
}

/// A binary of another workspace package, in the same profile directory:
/// the workspace's, and the std guests of tests/std and examples/std
/// (workspaces of their own, built into the same target directory by
/// `nabla_build_all`). The README's test command builds them all first.
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} does not exist: build everything first (`. scripts/deps.sh; nabla_build_all`, as \
         scripts/test.sh does)",
        path.display()
    );
    path
}

/// Bytes (a process's output, a command line) as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The tender.
pub fn tender() -> PathBuf {
    workspace_bin("tender")
}

/// What a finished run left behind.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The exit code, if the process exited.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that killed the process, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Asserts a clean exit with status 0.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code(), Some(0), "expected status 0: {self:#?}");
        self
    }

    /// Asserts that the tender refused to start: status 1 and a message on
    /// stderr starting with `tender: ` and containing `needle`.
    pub fn assert_refused(&self, needle: &str) -> &Self {
        assert_eq!(self.code(), Some(1), "expected status 1: {self:#?}");
        assert!(
            self.stderr.starts_with("tender: "),
            "stderr must start with 'tender: ': {self:#?}"
        );
        assert!(self.stderr.contains(needle), "stderr must contain {needle:?}: {self:#?}");
        assert!(self.stdout.is_empty(), "a refused start prints nothing on stdout: {self:#?}");
        self
    }
}

/// Waits for `child` for at most `timeout`, killing it if it takes longer.
pub fn wait(mut child: Child, timeout: Duration, what: &str) -> Outcome {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {timeout:?}, killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Outcome {
        status,
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    }
}

/// Runs `program` with `args`, stdin closed, with a 30 s limit.
pub fn run_program<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Outcome {
    run_program_within(program, args, Duration::from_secs(30))
}

/// Runs `program` with `args`, stdin closed, killed after `limit`.
pub fn run_program_within<S: AsRef<OsStr>>(program: &Path, args: &[S], limit: Duration) -> Outcome {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let what =
        format!("{} {:?}", program.display(), args.iter().map(|a| a.as_ref()).collect::<Vec<_>>());
    wait(child, limit, &what)
}

/// Runs the tender with `args`.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Outcome {
    run_program(&tender(), args)
}

/// A child process that is killed when dropped, so that a failing test
/// leaves nothing running.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh directory under the system's temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "nabla-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The httpd site as a FAT image: `examples/httpd/site` plus
/// `/bench/1k.bin`, `/bench/60k.bin` (60,000 bytes), `/bench/1m.bin` and
/// `/bench/5m.bin` (bytes
/// `b'a' + i % 26`; the last too large for httpd's cache), made with
/// `mkfs.fat --mbr=y` and `mcopy` once per test process, in the target
/// directory. Attach it with `--block-ro` so that guests can share it.
pub fn site_image() -> PathBuf {
    static IMAGE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let work = TempDir::new("site");
            let tree = work.path().join("tree");
            let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/httpd/site");
            copy_tree(&site, &tree);
            std::fs::create_dir_all(tree.join("bench")).unwrap();
            for (name, size) in [
                ("1k.bin", 1024usize),
                ("60k.bin", 60_000),
                ("1m.bin", 1 << 20),
                ("5m.bin", 5 << 20),
            ] {
                let bytes: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
                std::fs::write(tree.join("bench").join(name), bytes).unwrap();
            }
            let tmp = work.path().join("site.img");
            std::fs::File::create(&tmp).unwrap().set_len(16 << 20).unwrap();
            let img = tmp.to_str().unwrap();
            fat_tool("mkfs.fat", &["-F", "16", "--mbr=y", "-n", "SITE", img]);
            let mut entries: Vec<PathBuf> =
                std::fs::read_dir(&tree).unwrap().map(|e| e.unwrap().path()).collect();
            entries.sort();
            for e in entries {
                fat_tool("mcopy", &["-s", "-m", "-i", img, e.to_str().unwrap(), "::/"]);
            }
            remove_stale_site_images();
            let dest = profile_dir().join(format!("test-site-{}.img", std::process::id()));
            std::fs::copy(&tmp, &dest).unwrap();
            dest
        })
        .clone()
}

/// Removes the site images of test processes that no longer run: each
/// process makes its own (16 MiB) and, a static, it is never dropped, so
/// without this every run of a suite left one more in the target
/// directory.
fn remove_stale_site_images() {
    let Ok(entries) = std::fs::read_dir(profile_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("test-site-"))
            .and_then(|n| n.strip_suffix(".img"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Runs a dosfstools or mtools `program` (times in UTC, mtools' geometry
/// check off) and returns its output; panics, showing the output, if it
/// fails.
pub fn fat_tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("{program} (dosfstools/mtools): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A std guest of tests/std, built (once per run of this suite) into the
/// same target directory as the tender.
pub fn std_guest(name: &str) -> String {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let profile = profile_dir();
    BUILD.call_once(|| {
        let target = profile.parent().expect("target/<profile>");
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("std/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--manifest-path"]).arg(&manifest).arg("--target-dir").arg(target);
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("release") => cmd.arg("--release"),
            Some("debug") | None => &mut cmd,
            Some(p) => cmd.args(["--profile", p]),
        };
        let status = cmd.status().expect("cannot run cargo to build tests/std");
        assert!(status.success(), "building tests/std failed: {status}");
    });
    let path = profile.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path.display().to_string()
}

/// Sends `len` bytes of [`frames::noise`] from `seed` to the echo server at
/// `addr` (from one thread while reading on another) and checks that the
/// same bytes come back.
pub fn echo_round_trip(addr: std::net::SocketAddr, seed: u64, len: usize) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("client {seed}: connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let data = frames::noise(seed, len);
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent));
    let mut back = vec![0u8; len];
    s.read_exact(&mut back).map_err(|e| format!("client {seed}: read: {e}"))?;
    writer.join().unwrap().map_err(|e| format!("client {seed}: write: {e}"))?;
    if back != data {
        return Err(format!("client {seed}: echoed bytes differ"));
    }
    Ok(())
}

/// How many signalfds the tender gives a guest started from this process
/// (its children inherit its signal dispositions): one for each of
/// `SIGTERM` and `SIGINT` that this process does not ignore. A test run
/// as a shell's background job ignores `SIGINT`.
#[allow(unsafe_code)]
pub fn signal_fds() -> u64 {
    [libc::SIGTERM, libc::SIGINT]
        .into_iter()
        .filter(|&sig| {
            // SAFETY: reading the current action into a zeroed sigaction.
            let old = unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                old
            };
            old.sa_sigaction != libc::SIG_IGN
        })
        .count() as u64
}

/// Sets socket option `name` at `level` of `fd` to `value`, asserting it
/// took.
#[allow(unsafe_code)]
pub fn setsockopt<T>(fd: std::os::fd::RawFd, level: libc::c_int, name: libc::c_int, value: &T) {
    // SAFETY: value is a live T, and its size is what is given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt({level}, {name}): {}", std::io::Error::last_os_error());
}

/// Closes `s` with a reset (`SO_LINGER` 0), as a client that vanishes:
/// the peer's next read or write fails with `ECONNRESET`.
pub fn reset(s: std::net::TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    setsockopt(std::os::fd::AsRawFd::as_raw_fd(&s), libc::SOL_SOCKET, libc::SO_LINGER, &linger);
    drop(s);
}

/// Makes `n` connections to `addr`, `threads` at a time, handing each to
/// `each` with its number (0..n), which talks and closes it; panics if one
/// cannot connect within 5 s. For tests that a server comes out of many
/// connections as it went in.
pub fn churn(
    addr: std::net::SocketAddr,
    n: usize,
    threads: usize,
    each: impl Fn(usize, std::net::TcpStream) + Sync,
) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            let each = &each;
            scope.spawn(move || {
                for i in (t..n).step_by(threads) {
                    let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                        .unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"));
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    each(i, s);
                }
            });
        }
    });
}

/// A server's memory figure once the connections before have settled:
/// `read` (a new connection each time) every 1.5 s until two readings in a
/// row agree, 30 s at most; the last one. Spare sockets are freed a
/// second after the last was kept (so each reading's own connection is
/// gone by the next), and connections that were closing (a lingering
/// close, a half request whose client went) end on the guest's timers:
/// one fixed wait, however long, is too short on a loaded machine, where
/// the guest may be descheduled for longer than it.
pub fn settled(mut read: impl FnMut() -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    std::thread::sleep(Duration::from_millis(1500));
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = read();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}
