//! The agent: runs the workloads of a plan one after the other under the
//! function tracer and writes what each ran, as JSON lines.
//!
//! It runs as `nabla hap agent PLAN OUT`, inside the lab VM (started by its
//! `/init`, results to the second serial port) or, in direct mode, on the
//! host inside a network namespace of its own. The tracer is selected once;
//! per workload:
//!
//! 1. the trace is cleared and tracing is off;
//! 2. a launcher, `sh -c 'echo $$ > set_ftrace_pid; echo $$ >
//!    set_event_pid; echo 1 > tracing_on; exec "$@"'`, puts its own pid in
//!    the filters (`options/function-fork` and `event-fork` add its
//!    descendants) and execs the workload: the exec is the first thing
//!    traced;
//! 3. the readiness check (a TCP connect) runs until it passes, then the
//!    `hap:ready` marker goes into the trace and the load runs (`sh -c`);
//! 4. when the load is over, or the workload exited, the `hap:end` marker,
//!    tracing off, the rest of the pipe is read, the workload is killed.
//!
//! The agent, the check and the load are never in the pid filter: only the
//! workload and its descendants are traced. The check connects from the
//! plan's client namespace when it has one, as the load does, so that its
//! connection's packets are handled where the load's are.
//!
//! # Safety
//!
//! One unsafe block: `setns` on a descriptor the check's own thread owns;
//! it moves only that thread.

#![allow(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::trace::{Analyzer, END, Phase, READY};
use super::{Plan, Workload};
use crate::bench::Result;

/// Runs `plan` and writes the results to `out`, one JSON object a line:
/// `{"kernel": ..}`, one per workload, then `{"done": true}`; an error is
/// `{"error": ..}` (and the status 1).
pub fn run(plan: &Path, out: &Path) -> Result<()> {
    let mut sink = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let result = run_plan(plan, &mut sink);
    if let Ok(text) = fs::read_to_string(plan)
        && let Ok(plan) = Plan::from_json(&text)
    {
        for cmd in &plan.teardown {
            let _ = Command::new("/bin/sh").arg("-c").arg(cmd).stdin(Stdio::null()).status();
        }
    }
    if let Err(e) = &result {
        emit(&mut sink, &json!({ "error": e }))?;
    }
    result
}

fn emit(sink: &mut File, v: &Value) -> Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    sink.write_all(line.as_bytes()).and_then(|()| sink.flush()).map_err(|e| format!("results: {e}"))
}

fn run_plan(plan: &Path, sink: &mut File) -> Result<()> {
    let text = fs::read_to_string(plan).map_err(|e| format!("{}: {e}", plan.display()))?;
    let plan = Plan::from_json(&text)?;
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    emit(sink, &json!({ "kernel": kernel }))?;
    for cmd in &plan.setup {
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("setup `{cmd}`: {e}"))?;
        if !status.success() {
            return Err(format!("setup `{cmd}`: {status}"));
        }
    }
    let t = Tracefs(plan.tracefs.clone());
    t.setup(plan.buffer_kb)?;
    for w in &plan.workloads {
        let started = Instant::now();
        let mut raw = Vec::new();
        let result = trace_one(&t, &plan, w, &mut raw);
        if plan.raw {
            emit(sink, &json!({ "raw": w.name, "lines": raw }))?;
        }
        let (mut a, status) = match result {
            Ok(r) => r,
            // The others are still worth measuring.
            Err(e) => {
                emit(sink, &json!({ "failed": w.name, "error": e }))?;
                continue;
            }
        };
        a.finish();
        emit(
            sink,
            &json!({
                "workload": w.name,
                "ready": a.ready,
                "filter_installed": a.filter_installed(),
                "lost": a.lost,
                "status": status,
                "seconds": started.elapsed().as_secs_f64(),
                "startup": phase_json(&a.startup),
                "steady": phase_json(&a.steady),
            }),
        )?;
    }
    emit(sink, &json!({ "done": true }))
}

fn phase_json(p: &Phase) -> Value {
    json!({
        "task": p.task,
        "irq": p.irq,
        "softirq": p.softirq,
        "syscalls": p.syscalls,
        "first_path": p.first_path,
        "attribution": { "paths": p.attribution.paths, "instances": p.attribution.instances },
        "calls": p.calls,
    })
}

/// The tracefs mount.
struct Tracefs(PathBuf);

impl Tracefs {
    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.0.join(file);
        fs::write(&path, value).map_err(|e| format!("writing `{value}` to {}: {e}", path.display()))
    }

    /// Options, the seccomp event, the tracer: once per boot.
    fn setup(&self, buffer_kb: u64) -> Result<()> {
        self.write("tracing_on", "0")?;
        self.write("buffer_size_kb", &buffer_kb.to_string())?;
        for (option, value) in [
            ("function-fork", "1"),
            ("event-fork", "1"),
            ("print-parent", "0"),
            ("irq-info", "1"),
            ("latency-format", "0"),
        ] {
            self.write(&format!("options/{option}"), value)?;
        }
        self.write("events/syscalls/sys_exit_seccomp/enable", "1")?;
        // Until the first launcher replaces it, the filter holds the agent:
        // with an empty filter the tracer would call back on every function
        // of every task (tracing is off, but slowly).
        self.write("set_ftrace_pid", &std::process::id().to_string())?;
        self.write("current_tracer", "function")
    }
}

/// At most this many lines of raw trace per workload (`--raw-trace`).
const RAW_LINES: usize = 200_000;

/// The pipe, read without blocking, split into lines.
struct Pipe {
    file: File,
    partial: Vec<u8>,
}

impl Pipe {
    fn open(t: &Tracefs) -> Result<Self> {
        let path = t.0.join("trace_pipe");
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { file, partial: Vec::new() })
    }

    /// Feeds what is there; returns whether anything was.
    fn pump(&mut self, a: Option<&mut Analyzer>, raw: Option<&mut Vec<String>>) -> Result<bool> {
        let mut buf = vec![0u8; 1 << 16];
        let n = match self.file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return Ok(false);
            }
            Err(e) => return Err(format!("trace_pipe: {e}")),
        };
        self.partial.extend_from_slice(&buf[..n]);
        let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(n > 0);
        };
        let rest = self.partial.split_off(last + 1);
        if let Some(a) = a {
            let text = String::from_utf8_lossy(&self.partial);
            for line in text.lines() {
                a.feed(line);
            }
            if let Some(raw) = raw
                && raw.len() < RAW_LINES
            {
                raw.extend(text.lines().take(RAW_LINES - raw.len()).map(str::to_string));
            }
        }
        self.partial = rest;
        Ok(n > 0)
    }
}

/// Whether `addr` accepts a TCP connection, tried from the network
/// namespace `netns` (a file such as `/run/netns/NAME`) if given.
fn accepts(netns: Option<&Path>, addr: SocketAddr) -> Result<bool> {
    let try_connect = || TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok();
    let Some(netns) = netns else { return Ok(try_connect()) };
    let file = File::open(netns).map_err(|e| format!("{}: {e}", netns.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a descriptor owned by `file`, open for the
            // whole call; CLONE_NEWNET moves only this (scoped) thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "setns {}: {}",
                    netns.display(),
                    std::io::Error::last_os_error()
                ));
            }
            Ok(try_connect())
        })
        .join()
        .map_err(|_| "the readiness check's thread panicked".to_string())?
    })
}

/// The workload's process group, killed on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pid = self.0.id() as i32;
        super::kill_group(pid);
        let _ = self.0.wait();
    }
}

fn trace_one(
    t: &Tracefs,
    plan: &Plan,
    w: &Workload,
    raw: &mut Vec<String>,
) -> Result<(Analyzer, Value)> {
    t.write("tracing_on", "0")?;
    let mut pipe = Pipe::open(t)?;
    while pipe.pump(None, None)? {}
    t.write("trace", "")?;
    let mut a = Analyzer::new(w.ready.is_some(), w.filter);
    let log = plan.log_dir.join(format!("{}.log", w.slug()));
    let log_file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err_file = log_file.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
    let tr = t.0.display();
    let launcher = format!(
        "echo $$ > {tr}/set_ftrace_pid && echo $$ > {tr}/set_event_pid && \
         echo 1 > {tr}/tracing_on && exec \"$@\""
    );
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(launcher)
        .arg("hap")
        .args(&w.argv)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{}: cannot start {}: {e}", w.name, w.argv[0]))?;
    let mut group = Group(child);
    let deadline = Instant::now() + Duration::from_secs(plan.timeout_s);
    let fail = |what: String| {
        let tail = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("{}: {what}; its output:\n{}", w.name, tail.join("\n"))
    };
    let mut status = Value::Null;
    let mut ready_sent = w.ready.is_none();
    let mut load: Option<Child> = None;
    let mut load_done = w.load.is_none();
    let mut last_check = Instant::now() - Duration::from_secs(1);
    loop {
        let busy = pipe.pump(Some(&mut a), plan.raw.then_some(&mut *raw))?;
        if let Some(s) = group.0.try_wait().map_err(|e| format!("{}: {e}", w.name))? {
            status = json!(s.to_string());
            if w.ready.is_some() {
                return Err(fail(format!("exited before the load was over ({s})")));
            }
            break;
        }
        if Instant::now() > deadline {
            return Err(fail(format!("still running after {} s", plan.timeout_s)));
        }
        if !ready_sent && last_check.elapsed() >= Duration::from_millis(200) {
            last_check = Instant::now();
            let addr: SocketAddr = w.ready.expect("checked above");
            if accepts(plan.check_netns.as_deref(), addr)? {
                t.write("trace_marker", READY)?;
                ready_sent = true;
                if let Some(cmd) = &w.load {
                    let c = Command::new("/bin/sh")
                        .arg("-c")
                        .arg(cmd)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .map_err(|e| format!("{}: load `{cmd}`: {e}", w.name))?;
                    load = Some(c);
                }
            }
        }
        if let Some(c) = &mut load
            && let Some(s) = c.try_wait().map_err(|e| format!("{}: load: {e}", w.name))?
        {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            if !s.success() {
                return Err(fail(format!("the load failed ({s}): {}", err.trim())));
            }
            load_done = true;
            load = None;
        }
        if ready_sent && load_done && w.ready.is_some() {
            break;
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some(c) = &mut load {
        let _ = c.kill();
        let _ = c.wait();
    }
    t.write("trace_marker", END)?;
    t.write("tracing_on", "0")?;
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    while !a.ended() {
        if !pipe.pump(Some(&mut a), plan.raw.then_some(&mut *raw))? {
            if Instant::now() > drain_deadline {
                return Err(format!("{}: the end marker never came out of trace_pipe", w.name));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(group);
    if w.filter && !a.filter_installed() {
        return Err(fail("no seccomp filter was installed (no seccomp_attach_filter)".into()));
    }
    Ok((a, status))
}
