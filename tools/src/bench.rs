//! `nabla bench`: the tender against native static peers.
//!
//! Shared here: finding the tender and the guests (by default next to the
//! running `nabla`, i.e. in the same `target/<profile>/`), and compiling a
//! native peer from the C sources under `tools/bench/` into a temporary
//! directory that is removed on drop.

mod block;
mod container;
mod http;
mod kvd;
mod memory;
mod net;
mod startup;
mod sweep;
mod table;
mod tcp;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{fs, io};

use clap::Subcommand;

/// Errors are messages for the user; `main` prints them after `nabla: `.
pub type Result<T, E = String> = std::result::Result<T, E>;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Exec-to-exit wall time of `tender hello` against a native static
    /// hello, with a decomposition of the tender's start-up.
    Startup(startup::Args),
    /// Proportional set size (PSS) of idle guest instances against native
    /// static peers, and the sharing of the guest's text.
    Memory(memory::Args),
    /// Requests/s and p99 latency of httpd under the tender against nginx
    /// (one worker), with wrk, for a 1 KiB and a 1 MiB file. Needs root:
    /// runs in network namespaces of its own.
    Http(http::Args),
    /// Bulk TCP throughput both ways of tcpperf under the tender against
    /// the same protocol between two Linux processes over a veth. Needs
    /// root: runs in network namespaces of its own.
    Tcp(tcp::Args),
    /// Sequential write and read throughput of a guest's disk through libos
    /// against dd with the same block size on the same file (warm cache).
    Block(block::Args),
    /// Operations/s of kvd under the tender against redis-server (same
    /// appendfsync), with redis-benchmark SET and GET, 50 clients, with and
    /// without pipelining. Needs root: runs in network namespaces of its own.
    Kvd(kvd::Args),
    /// Container start: `ctr run --rm` of hello with nabla-runc (image from
    /// `nabla pack`) against runc (a static native hello), in a containerd
    /// of its own. Needs root.
    Container(container::Args),
    /// Every row of issue 17's table (start-up, bulk TCP both ways, httpd
    /// p99 and requests/s against nginx, kvd SET -P 1 and -P 16 against
    /// redis-server, HAP steady functions), each a ratio to its peer
    /// measured in the same run, with the spread over runs. Root for all
    /// but start-up.
    Table(table::Args),
}

/// Runs one benchmark.
pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Startup(args) => startup::run(&args),
        Bench::Memory(args) => memory::run(&args),
        Bench::Http(args) => http::run(&args),
        Bench::Tcp(args) => tcp::run(&args),
        Bench::Block(args) => block::run(&args),
        Bench::Kvd(args) => kvd::run(&args),
        Bench::Container(args) => container::run(&args),
        Bench::Table(args) => table::run(&args),
    }
}

/// `given`, or the file `name` in the directory of the running executable;
/// either must exist.
pub(crate) fn locate(given: Option<&Path>, name: &str, option: &str) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find the running executable: {e}"))?;
            exe.parent().unwrap_or(Path::new("/")).join(name)
        }
    };
    if !path.is_file() {
        let hint = if given.is_some() {
            String::new()
        } else {
            format!(" (build the workspace with `cargo build --release`, or pass {option} PATH)")
        };
        return Err(format!("{}: no such file{hint}", path.display()));
    }
    // Absolute, so the commands printed in reports can be copied and rerun.
    Ok(fs::canonicalize(&path).unwrap_or(path))
}

/// A directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Result<Self> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        for n in 0..100u32 {
            let dir = base.join(format!("nabla-bench-{pid}-{n}"));
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
            }
        }
        Err(format!("cannot create a directory for the native peers in {}", base.display()))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A native peer compiled with `gcc -O2 -static`, and the directory that
/// holds it (removed when this is dropped).
#[derive(Debug)]
pub(crate) struct NativePeer {
    pub(crate) path: PathBuf,
    _dir: TempDir,
}

/// Compiles the C program `source` (the text of `tools/bench/<name>.c`,
/// embedded at build time) into a static executable `<tmp>/<name>`.
pub(crate) fn compile_native(name: &str, source: &str) -> Result<NativePeer> {
    let dir = TempDir::new()?;
    let src = dir.path().join(format!("{name}.c"));
    fs::write(&src, source).map_err(|e| format!("cannot write {}: {e}", src.display()))?;
    let out = dir.path().join(name);
    let result =
        Command::new("gcc").arg("-O2").arg("-static").arg("-o").arg(&out).arg(&src).output();
    let output = match result {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "gcc not found: the native peer tools/bench/{name}.c is compiled with \
                 `gcc -O2 -static`; install gcc and a static libc (Debian: apt-get install gcc libc6-dev)"
            ));
        }
        Err(e) => return Err(format!("cannot run gcc: {e}")),
    };
    if !output.status.success() {
        return Err(format!(
            "gcc -O2 -static tools/bench/{name}.c failed ({}); is a static libc installed \
             (Debian: libc6-dev)?\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    Ok(NativePeer { path: out, _dir: dir })
}

/// The error of starting `program` (`what` names it in the message): a
/// missing program names the Debian package that has it.
pub(crate) fn start_error<'a>(
    what: &'a str,
    package: &'a str,
) -> impl FnOnce(io::Error) -> String + 'a {
    move |e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("{what} not found (Debian: apt-get install {package})")
        } else {
            format!("cannot run {what}: {e}")
        }
    }
}

/// Runs `cmd` to completion, stdin from /dev/null; its stdout, or an error
/// with its stderr that names the Debian package `package` if the program
/// is missing.
pub(crate) fn run_tool(cmd: &mut Command, package: &str) -> Result<Vec<u8>> {
    let shown = display_command(cmd);
    let out =
        cmd.stdin(std::process::Stdio::null()).output().map_err(start_error(&shown, package))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(out.stdout)
}

/// A command line for display: program and arguments separated by spaces.
pub(crate) fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes the child of `cmd` receive SIGKILL when the thread that spawns it
/// exits, so no instance outlives an aborted or killed `nabla`.
#[allow(unsafe_code)]
pub(crate) fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed. It calls prctl and getppid,
    // builds io::Errors from raw OS codes (no allocation) and touches no
    // lock or shared state.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then no signal comes.
            if std::os::unix::process::parent_id() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}
