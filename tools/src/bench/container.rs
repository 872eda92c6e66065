//! `nabla bench container`: container start latency, `ctr run --rm` of
//! hello with nabla-runc against the same with runc.
//!
//! Both containers come from images imported into a containerd of the
//! benchmark's own, and go through the same path: `ctr run --rm` makes the
//! container from the image (snapshot, default spec), containerd's runc
//! shim (`io.containerd.runc.v2`) calls the runtime given with
//! `--runc-binary` (`create`, `start`, `delete`), the process prints
//! "Hello, world!" and exits, ctr removes container and snapshot.
//!
//! | key | image | runtime |
//! | --- | --- | --- |
//! | nabla | `nabla pack hello` (the guest at `/hello.nabla`) | nabla-runc, which runs the tender |
//! | runc | umoci-built: the static native hello (`tools/bench/hello.c`, `gcc -O2 -static`) at `/hello` | runc |
//!
//! The two run interleaved round-robin (the first of each round
//! alternates); each sample is the monotonic time from just before spawning
//! `ctr run --rm` to just after it exits, with its output on `/dev/null`.
//! The first `--warmup` rounds are discarded.
//!
//! containerd runs with its root, state and socket (config version 2, the
//! CRI plugin disabled) under a temporary directory, in a containerd
//! namespace `nabla-bench-<pid>` (so the containers' cgroups are
//! `/nabla-bench-<pid>/<id>`); both runtimes keep their state there too
//! (`--runc-root`). At the end, on an error, a panic or SIGINT/SIGTERM/SIGHUP,
//! containerd is killed by pid, then every process whose command line
//! names the directory (the shims), mounts under it are detached, the
//! cgroups left by a container are removed and the directory goes.
//!
//! # Safety
//!
//! The unsafe blocks call `kill` and `waitpid` with integers only, on
//! processes of this benchmark (its containerd, and shims whose command
//! line names its own temporary directory).

#![allow(unsafe_code)]

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{
    Result, TempDir, compile_native, die_with_parent, display_command, locate, run_tool,
    start_error,
};
use crate::netns;
use crate::stats::Summary;

/// The nabla image's reference.
const NABLA_IMAGE: &str = "example.com/nabla-bench/hello:1";
/// The native image's reference (umoci tags it `1`; the import adds the name).
const NATIVE_NAME: &str = "example.com/nabla-bench/native-hello";
const NATIVE_IMAGE: &str = "example.com/nabla-bench/native-hello:1";

/// Options of `nabla bench container`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measured rounds; each runs both containers once.
    #[arg(long, value_name = "N", default_value_t = 150,
          value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,

    /// Rounds run first and discarded.
    #[arg(long, value_name = "N", default_value_t = 5)]
    warmup: u32,

    /// Our runtime [default: `nabla-runc` next to this executable].
    #[arg(long, value_name = "PATH")]
    nabla_runc: Option<PathBuf>,

    /// The runtime of the native peer.
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/runc")]
    runc: PathBuf,

    /// The guest packed into the nabla image [default: `hello` next to
    /// this executable].
    #[arg(long, value_name = "PATH")]
    guest: Option<PathBuf>,

    /// Prints the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured container.
#[derive(Debug)]
struct Variant {
    key: &'static str,
    label: &'static str,
    image: &'static str,
    runtime: PathBuf,
}

/// A containerd of the benchmark's own, everything under a temp dir.
struct Containerd {
    dir: TempDir,
    daemon: Child,
    namespace: String,
    /// The key of the abort cleanup in [`netns::on_abort`].
    abort_key: u32,
}

impl Containerd {
    fn start() -> Result<Self> {
        let dir = TempDir::new()?;
        let d = dir.path().to_path_buf();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{0}/containerd.sock\"\n",
            d.display()
        );
        let config_path = d.join("config.toml");
        fs::write(&config_path, config)
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        let log_path = d.join("containerd.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| format!("{}: {e}", log_path.display()))?;
        let namespace = format!("nabla-bench-{}", std::process::id());
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&config_path).stdin(Stdio::null()).stdout(log).stderr(log2);
        // Its own process group: a ctrl-c is for this benchmark, which
        // then stops containerd itself, in order.
        cmd.process_group(0);
        die_with_parent(&mut cmd);
        let daemon = cmd.spawn().map_err(start_error("containerd", "containerd"))?;
        let pid = daemon.id() as i32;
        let ns = namespace.clone();
        let abort_key = netns::on_abort(move || {
            // SAFETY: integers only; pid is this benchmark's containerd,
            // which only this process reaps.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            clean_up(&d, &ns);
        });
        let c = Self { dir, daemon, namespace, abort_key };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = c.ctr().arg("version").output();
            if out.as_ref().is_ok_and(|o| o.status.success()) {
                return Ok(c);
            }
            if let Err(e) = out {
                return Err(start_error("ctr", "containerd")(e));
            }
            if Instant::now() > deadline {
                return Err(format!("containerd did not come up in 30 s:\n{}", c.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` talking to this containerd, in the benchmark's namespace.
    fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .arg("--namespace")
            .arg(&self.namespace)
            .stdin(Stdio::null());
        die_with_parent(&mut cmd);
        cmd
    }

    /// Runs `ctr ARGS`; its stdout, or an error with its stderr.
    fn ctr_ok(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.ctr();
        cmd.args(args);
        output_ok(&mut cmd)
    }

    /// `ctr run --rm --runc-binary RUNTIME --runc-root DIR/runc IMAGE ID`.
    fn run_cmd(&self, v: &Variant, id: &str) -> Command {
        let mut cmd = self.ctr();
        cmd.arg("run")
            .arg("--rm")
            .arg("--runc-binary")
            .arg(&v.runtime)
            .arg("--runc-root")
            .arg(self.dir.path().join("runc"))
            .arg(v.image)
            .arg(id);
        cmd
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        netns::forget(self.abort_key);
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        clean_up(self.dir.path(), &self.namespace);
        // The TempDir removes the directory.
    }
}

/// After containerd is gone: kills the shims (and whatever else names
/// `dir`), detaches mounts under `dir`, removes the containers' cgroups,
/// removes `dir`.
fn clean_up(dir: &Path, namespace: &str) {
    let needle = dir.display().to_string();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            if pid as u32 == std::process::id() {
                continue;
            }
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                // SAFETY: integers only; a process whose command line names
                // this benchmark's own temporary directory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    if let Ok(info) = fs::read_to_string("/proc/self/mountinfo") {
        let mut points: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| Path::new(p).starts_with(dir))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).stderr(Stdio::null()).status();
        }
    }
    // cgroup v2 (`/sys/fs/cgroup/NS`) or v1 (`/sys/fs/cgroup/CONTROLLER/NS`);
    // rmdir removes only empty ones, which is all a finished run leaves.
    let mut parents = vec![Path::new("/sys/fs/cgroup").join(namespace)];
    if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
        parents.extend(entries.flatten().map(|e| e.path().join(namespace)));
    }
    for parent in parents.iter().filter(|p| p.is_dir()) {
        if let Ok(entries) = fs::read_dir(parent) {
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = fs::remove_dir(e.path());
            }
        }
        let _ = fs::remove_dir(parent);
    }
    let _ = fs::remove_dir_all(dir);
}

/// Runs `cmd`; its stdout, or an error with its stderr.
fn output_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| format!("cannot run {}: {e}", display_command(cmd)))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}):\n{}{}",
            display_command(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `umoci ARGS`, with a hint when umoci is missing.
fn umoci(args: &[&std::ffi::OsStr]) -> Result<()> {
    run_tool(Command::new("umoci").args(args), "umoci").map(drop)
}

/// The native image as an OCI archive `dir/native.tar`: one layer with
/// `native` at `/hello`, entry point `/hello`, tagged `1` (umoci init, new,
/// insert, config), the layout then archived as is.
fn native_image(dir: &Path, native: &Path) -> Result<PathBuf> {
    let layout = dir.join("native-layout");
    let image = {
        let mut s = layout.clone().into_os_string();
        s.push(":1");
        s
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    umoci(&[os("init"), os("--layout"), layout.as_os_str()])?;
    umoci(&[os("new"), os("--image"), &image])?;
    umoci(&[os("insert"), os("--image"), &image, native.as_os_str(), os("/hello")])?;
    umoci(&[os("config"), os("--image"), &image, os("--config.entrypoint"), os("/hello")])?;
    let tar_path = dir.join("native.tar");
    let file = fs::File::create(&tar_path)
        .map_err(|e| format!("cannot create {}: {e}", tar_path.display()))?;
    let mut builder = tar::Builder::new(file);
    builder
        .append_dir_all(".", &layout)
        .and_then(|()| builder.finish())
        .map_err(|e| format!("cannot archive {}: {e}", layout.display()))?;
    Ok(tar_path)
}

/// One sample in µs: spawn, wait, exit status 0.
fn time_once(cmd: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", display_command(cmd)))?;
    let status = child.wait().map_err(|e| format!("wait for {}: {e}", display_command(cmd)))?;
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(format!("{} failed during the benchmark ({status})", display_command(cmd)));
    }
    Ok(elapsed.as_secs_f64() * 1e6)
}

/// Runs the benchmark and prints the report.
pub fn run(args: &Args) -> Result<()> {
    if !netns::is_root() {
        return Err("the container benchmark needs root: it runs containerd and containers".into());
    }
    let nabla_runc = locate(args.nabla_runc.as_deref(), "nabla-runc", "--nabla-runc")?;
    let guest = locate(args.guest.as_deref(), "hello", "--guest")?;
    let runc = locate(Some(&args.runc), "runc", "--runc")?;
    let nabla =
        std::env::current_exe().map_err(|e| format!("cannot find the running executable: {e}"))?;
    let native = compile_native("hello", include_str!("../../bench/hello.c"))?;
    // Its directory goes on drop, which an abort skips.
    let native_dir = native.path.parent().map(Path::to_path_buf);
    let native_key = netns::on_abort(move || {
        if let Some(d) = &native_dir {
            let _ = fs::remove_dir_all(d);
        }
    });

    let c = Containerd::start()?;
    let d = c.dir.path();
    // The nabla image, packed by this very `nabla`.
    let nabla_tar = d.join("hello.tar");
    output_ok(
        Command::new(&nabla)
            .arg("pack")
            .arg(&guest)
            .args(["-t", NABLA_IMAGE, "-o"])
            .arg(&nabla_tar)
            .stdin(Stdio::null()),
    )?;
    let native_tar = native_image(d, &native.path)?;
    c.ctr_ok(&["images", "import", &nabla_tar.to_string_lossy()])?;
    c.ctr_ok(&["images", "import", "--base-name", NATIVE_NAME, &native_tar.to_string_lossy()])?;

    let variants = [
        Variant {
            key: "nabla",
            label: "nabla-runc, nabla pack hello",
            image: NABLA_IMAGE,
            runtime: nabla_runc.clone(),
        },
        Variant {
            key: "runc",
            label: "runc, native static hello",
            image: NATIVE_IMAGE,
            runtime: runc.clone(),
        },
    ];
    for v in &variants {
        let mut cmd = c.run_cmd(v, &format!("{}-check", v.key));
        let out =
            output_ok(&mut cmd).map_err(|e| format!("{e}\ncontainerd's log:\n{}", c.log()))?;
        if out != "Hello, world!\n" {
            return Err(format!(
                "{} printed {out:?}, not \"Hello, world!\\n\"",
                display_command(&cmd)
            ));
        }
    }

    let runs = args.runs as usize;
    let warmup = args.warmup as usize;
    let n = variants.len();
    let mut samples = vec![Vec::with_capacity(runs); n];
    for round in 0..warmup + runs {
        for k in 0..n {
            let i = (round + k) % n;
            let mut cmd = c.run_cmd(&variants[i], &format!("{}-{round}", variants[i].key));
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            let us =
                time_once(&mut cmd).map_err(|e| format!("{e}\ncontainerd's log:\n{}", c.log()))?;
            if round >= warmup {
                samples[i].push(us);
            }
        }
    }
    drop(c);
    netns::forget(native_key);
    let summaries: Vec<Summary> = samples.iter().map(|s| Summary::of(s)).collect();
    let ratio = summaries[0].median / summaries[1].median;
    let ms = |us: f64| (us / 100.0).round() / 10.0;

    if args.json {
        let report = json!({
            "benchmark": "container",
            "runs": runs,
            "warmup": warmup,
            "command": "ctr run --rm --runc-binary RUNTIME --runc-root DIR IMAGE ID",
            "nabla_runc": nabla_runc,
            "runc": runc,
            "guest": guest,
            "native": "tools/bench/hello.c (gcc -O2 -static), image built with umoci",
            "variants": variants.iter().zip(&summaries).map(|(v, s)| json!({
                "key": v.key,
                "runtime": v.runtime,
                "image": v.image,
                "median_ms": ms(s.median),
                "p10_ms": ms(s.p10),
                "p90_ms": ms(s.p90),
                "samples": s.n,
            })).collect::<Vec<_>>(),
            "headline": {
                "ratio": (ratio * 1000.0).round() / 1000.0,
                "of": "median(ctr run --rm, nabla-runc) / median(ctr run --rm, runc)",
            },
        });
        println!("{report:#}");
        return Ok(());
    }

    println!("container: `ctr run --rm` of hello, spawn→exit wall time (monotonic), ms");
    println!("  {runs} runs each, interleaved round-robin, after {warmup} warm-up rounds");
    println!("  containerd: its own, under a temporary directory; images imported into it");
    println!("  nabla-runc: {}  image: nabla pack {}", nabla_runc.display(), guest.display());
    println!("  runc:       {}  image: umoci, tools/bench/hello.c gcc -O2 -static", runc.display());
    println!();
    println!("  {:<30} {:>9} {:>9} {:>9}", "runtime, image", "median", "p10", "p90");
    for (v, s) in variants.iter().zip(&summaries) {
        println!(
            "  {:<30} {:>9.1} {:>9.1} {:>9.1}",
            v.label,
            s.median / 1e3,
            s.p10 / 1e3,
            s.p90 / 1e3
        );
    }
    println!();
    println!("  nabla-runc / runc = {ratio:.2}× (ratio of medians)");
    Ok(())
}
