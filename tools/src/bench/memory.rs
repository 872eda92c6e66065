//! `nabla bench memory`: the proportional set size of idle instances.
//!
//! For each peer — `tender guest-basics sleep 120` and a native static
//! `tools/bench/sleep.c` — it starts one instance alone, then N together,
//! waits until each has printed its first line (so it is up and idle), and
//! sums `Pss:` of `/proc/PID/smaps_rollup`. PSS divides every shared page
//! among the processes that map it, so the sum over N instances is what
//! they cost together, and `(sum_N − sum_1) / (N − 1)` what one more costs.
//!
//! Every child is killed when its [`Fleet`] drops: on success, on error and
//! on an unwinding panic. The release profile aborts on panic, and then no
//! destructor runs; for that (and for `nabla` being killed) each child also
//! gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the thread that
//! started it.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use std::{fs, thread};

use serde_json::json;

use super::{Result, compile_native, die_with_parent, display_command, locate};
use crate::smaps;

/// How long an instance may take to print its first line.
const UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the tender maps the guest's first (text) segment.
const GUEST_TEXT: u64 = 0x0010_0000;

/// Fields shown for the guest's text mapping.
/// Shared_Dirty too: right after a build the file's pages can still be dirty
/// in the page cache (not yet written back), and count as dirty while shared.
const TEXT_FIELDS: [&str; 6] =
    ["Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty"];

/// Options of `nabla bench memory`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Instances started together (at least 2).
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(2..))]
    instances: u32,

    /// The tender [default: `tender` next to this executable].
    #[arg(long, value_name = "PATH")]
    tender: Option<PathBuf>,

    /// The guest; run as `GUEST sleep 120` [default: `guest-basics` next to
    /// this executable].
    #[arg(long, value_name = "PATH")]
    guest: Option<PathBuf>,

    /// Also measures this std guest (tests/std's `std-sleep`), run as
    /// `GUEST sleep 120`, against the native peer and the libos guest.
    #[arg(long, value_name = "PATH")]
    std_guest: Option<PathBuf>,

    /// Prints the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Running children, killed and reaped on drop.
#[derive(Debug, Default)]
struct Fleet {
    children: Vec<Instance>,
}

#[derive(Debug)]
struct Instance {
    child: Child,
    // Kept open so that a late write of the child does not hit EPIPE.
    _stdout: Option<BufReader<ChildStdout>>,
    stderr: Option<ChildStderr>,
}

impl Fleet {
    /// Starts `cmd` and waits for its first line on stdout; returns its pid.
    fn start(&mut self, cmd: &mut Command) -> Result<u32> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        die_with_parent(cmd);
        let mut child =
            cmd.spawn().map_err(|e| format!("cannot run {}: {e}", display_command(cmd)))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take();
        self.children.push(Instance { child, _stdout: None, stderr });

        // A thread reads, so that a silent child times out instead of
        // hanging the benchmark; once killed, its read sees EOF and it ends.
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let got = reader.read_line(&mut line).map(|n| (n, line));
            let _ = tx.send((got, reader));
        });
        let why = match rx.recv_timeout(UP_TIMEOUT) {
            Ok((Ok((n, _)), reader)) if n > 0 => {
                self.children.last_mut().expect("just pushed")._stdout = Some(reader);
                return Ok(pid);
            }
            Ok((Ok(_), _)) => "exited before it printed anything".to_string(),
            Ok((Err(e), _)) => format!("cannot read its output: {e}"),
            Err(_) => format!("printed nothing within {} s", UP_TIMEOUT.as_secs()),
        };
        let mut inst = self.children.pop().expect("just pushed");
        let _ = inst.child.kill();
        let status = inst.child.wait().map(|s| s.to_string()).unwrap_or_default();
        let mut err = String::new();
        if let Some(mut s) = inst.stderr.take() {
            let _ = s.read_to_string(&mut err);
        }
        Err(format!("{} {why} ({status}):\n{}", display_command(cmd), err.trim_end()))
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|i| i.child.id()).collect()
    }

    /// Kills and reaps every child.
    fn stop(&mut self) {
        for mut inst in self.children.drain(..) {
            let _ = inst.child.kill();
            let _ = inst.child.wait();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `Pss:` of a process in kB.
fn pss_kb(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = fs::read_to_string(&path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ESRCH) || e.kind() == io::ErrorKind::NotFound {
            format!(
                "instance {pid} exited after it came up: the guest must stay up (`GUEST sleep 120`)"
            )
        } else {
            format!("cannot read {path}: {e}")
        }
    })?;
    smaps::rollup_field(&text, "Pss").ok_or_else(|| format!("{path}: no Pss line"))
}

/// The guest's text mapping (r-xp at [`GUEST_TEXT`]) of a tender process.
fn guest_text(pid: u32) -> Result<smaps::Mapping> {
    let path = format!("/proc/{pid}/smaps");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    smaps::parse_smaps(&text)
        .into_iter()
        .find(|m| m.start == GUEST_TEXT && m.perms == "r-xp")
        .ok_or_else(|| format!("{path}: no r-xp mapping at {GUEST_TEXT:#010x}"))
}

/// Results for one peer.
#[derive(Debug)]
struct PeerResult {
    label: String,
    /// PSS of one instance running alone, kB.
    alone: u64,
    /// PSS summed over N instances running together, kB.
    total: u64,
    /// `(total − alone) / (N − 1)`, kB.
    per_instance: f64,
}

/// Measures one instance alone, then `n` together. `inspect` runs on the
/// first pid while all `n` are up.
fn measure<T>(
    label: String,
    n: u32,
    mut command: impl FnMut() -> Command,
    inspect: impl FnOnce(u32) -> Result<T>,
) -> Result<(PeerResult, T)> {
    let mut fleet = Fleet::default();
    let pid = fleet.start(&mut command())?;
    let alone = pss_kb(pid)?;
    fleet.stop();

    for _ in 0..n {
        fleet.start(&mut command())?;
    }
    let total = fleet.pids().into_iter().map(pss_kb).sum::<Result<u64>>()?;
    let extra = inspect(fleet.pids()[0])?;
    fleet.stop();

    let per_instance = (total as f64 - alone as f64) / f64::from(n - 1);
    Ok((PeerResult { label, alone, total, per_instance }, extra))
}

/// Runs the benchmark and prints the report.
pub fn run(args: &Args) -> Result<()> {
    let tender = locate(args.tender.as_deref(), "tender", "--tender")?;
    let guest = locate(args.guest.as_deref(), "guest-basics", "--guest")?;
    let native = compile_native("sleep", include_str!("../../bench/sleep.c"))?;
    let n = args.instances;

    let guest_name = file_name(&guest);
    let (t, text) = measure(
        format!("tender {guest_name} sleep 120"),
        n,
        || {
            let mut cmd = Command::new(&tender);
            cmd.arg(&guest).args(["sleep", "120"]);
            cmd
        },
        guest_text,
    )?;
    let (c, ()) =
        measure("native sleep (static C)".into(), n, || Command::new(&native.path), |_| Ok(()))?;
    let std_peer = match &args.std_guest {
        Some(std_guest) => Some(
            measure(
                format!("tender {} sleep 120", file_name(std_guest)),
                n,
                || {
                    let mut cmd = Command::new(&tender);
                    cmd.arg(std_guest).args(["sleep", "120"]);
                    cmd
                },
                |_| Ok(()),
            )?
            .0,
        ),
        None => None,
    };

    let ratio_each = t.per_instance / c.per_instance;
    let ratio_total = t.total as f64 / c.total as f64;
    let text_fields: Vec<(&str, u64)> =
        TEXT_FIELDS.iter().map(|&f| (f, text.field(f).unwrap_or(0))).collect();
    let shared = text.field("Shared_Clean").unwrap_or(0) + text.field("Shared_Dirty").unwrap_or(0);
    let rss = text.field("Rss").unwrap_or(0);

    if args.json {
        let peer = |r: &PeerResult| {
            json!({
                "command": r.label,
                "pss_alone_kb": r.alone,
                "pss_total_kb": r.total,
                "pss_per_instance_kb": (r.per_instance * 10.0).round() / 10.0,
            })
        };
        let report = json!({
            "benchmark": "memory",
            "instances": n,
            "tender": tender,
            "guest": guest,
            "native": "tools/bench/sleep.c (gcc -O2 -static)",
            "tender_guest": peer(&t),
            "native_peer": peer(&c),
            "ratio_per_instance": (ratio_each * 1000.0).round() / 1000.0,
            "ratio_total": (ratio_total * 1000.0).round() / 1000.0,
            "std_guest": std_peer.as_ref().map(|s| json!({
                "peer": peer(s),
                "ratio_per_instance_to_native": (s.per_instance / c.per_instance * 1000.0).round() / 1000.0,
                "ratio_per_instance_to_libos": (s.per_instance / t.per_instance * 1000.0).round() / 1000.0,
                "ratio_alone_to_native": (s.alone as f64 / c.alone as f64 * 1000.0).round() / 1000.0,
            })),
            "guest_text_shared": rss > 0 && shared == rss,
            "guest_text_mapping": {
                "start": format!("{:#010x}", text.start),
                "end": format!("{:#010x}", text.end),
                "perms": text.perms,
                "path": text.path,
                "kb": text_fields.iter()
                    .map(|&(f, v)| (f.to_string(), json!(v)))
                    .collect::<serde_json::Map<_, _>>(),
            },
        });
        println!("{report:#}");
        return Ok(());
    }

    println!("memory: PSS of idle instances (sum of Pss in /proc/PID/smaps_rollup), kB");
    println!("  tender: {}", tender.display());
    println!("  guest:  {}", guest.display());
    println!("  native: tools/bench/sleep.c, gcc -O2 -static");
    println!();
    println!(
        "  {:<36} {:>10} {:>12} {:>14}",
        "",
        "1 alone",
        format!("{n} together"),
        "per instance"
    );
    for r in [Some(&t), std_peer.as_ref(), Some(&c)].into_iter().flatten() {
        println!("  {:<36} {:>10} {:>12} {:>14.1}", r.label, r.alone, r.total, r.per_instance);
    }
    println!();
    println!(
        "  ratio tender/native: per instance {ratio_each:.2}×, total of {n} {ratio_total:.2}×"
    );
    if let Some(s) = &std_peer {
        println!(
            "  std guest: per instance {:.2}× native, {:.2}× the libos guest; alone {:.2}× native",
            s.per_instance / c.per_instance,
            s.per_instance / t.per_instance,
            s.alone as f64 / c.alone as f64,
        );
    }
    println!();
    println!(
        "  guest text {:#010x}-{:#010x} {} of one of {n} tender instances, kB:",
        text.start, text.end, text.perms
    );
    println!(
        "    {}",
        text_fields.iter().map(|(f, v)| format!("{f} {v}")).collect::<Vec<_>>().join(", ")
    );
    let verdict = if rss > 0 && shared == rss {
        "shared: every resident page of the guest's text is mapped by other instances too"
    } else if shared > 0 {
        "partly shared: some resident pages of the guest's text are private to this instance"
    } else {
        "NOT shared: every resident page of the guest's text is private to this instance"
    };
    println!("    {verdict}");
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_kills_its_children_on_drop() {
        let mut fleet = Fleet::default();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo up; exec sleep 60"]);
        let pid = fleet.start(&mut cmd).expect("sh starts");
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        assert!(pss_kb(pid).expect("rollup readable") > 0);
        drop(fleet);
        // Killed and reaped: the pid is gone.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn fleet_reports_a_child_that_dies_silently() {
        let mut fleet = Fleet::default();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        let err = fleet.start(&mut cmd).unwrap_err();
        assert!(err.contains("exited before it printed anything"), "{err}");
        assert!(err.contains("oops"), "{err}");
        assert!(fleet.pids().is_empty());
    }
}
