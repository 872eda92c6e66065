//! The network set-up that `nabla bench http` and `nabla bench tcp` share:
//! two servers, each in its own place, reached from one client namespace
//! over one link each.
//!
//! ```text
//!  client namespace                    guest (its own TCP/IP stack: smoltcp)
//!  ┌──────────────────────┐   tap     ┌─────────────────────────────┐
//!  │ wrk / the tcp client │ nbtap0 ───│ tender + guest   10.0.0.2   │
//!  │ nbtap0  10.0.0.1/24  │           └─────────────────────────────┘
//!  │ nbveth0 10.0.1.1/24  │   veth    native namespace (Linux's stack)
//!  │                      │ ──────────┌─────────────────────────────┐
//!  └──────────────────────┘  nbveth1  │ nginx / native tcpperf      │
//!                                     │ 10.0.1.2                    │
//!                                     └─────────────────────────────┘
//! ```
//!
//! A tap needs a userspace reader, so the guest's link is the tap itself,
//! whose host side sits in the client namespace; the tender process runs
//! there because it looks its tap up in its own namespace (it opens no
//! socket: the guest's stack is in the guest). The native server's link is
//! a veth, the kernel's own point-to-point pair, to a namespace of its own.
//! Both links get the same MTU. The tap path crosses userspace by design
//! (every frame is a `read` or `write` of the tender's guest); the veth path
//! stays in the kernel.

use std::ffi::OsString;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Result, display_command};
use crate::netns::Netns;

/// The tap, in the client namespace.
pub const TAP: &str = "nbtap0";
/// The host side of the tap.
const TAP_HOST: &str = "10.0.0.1/24";
/// The guest's address, and its configuration.
pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const GUEST_CIDR: &str = "10.0.0.2/24";
/// The veth pair: client side and native side.
const VETH: (&str, &str) = ("nbveth0", "nbveth1");
const VETH_CLIENT: &str = "10.0.1.1/24";
const VETH_NATIVE: &str = "10.0.1.2/24";
/// The native server's address.
pub const NATIVE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);

/// How long a server may take to accept connections: kvd's first start on
/// a fresh disk reads the whole disk to prove it blank (1 GiB: seconds on
/// a loaded machine), and start-up is not what these benchmarks measure.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The client and native namespaces with their links.
#[derive(Debug)]
pub struct Topology {
    /// The client side: the tap and one end of the veth.
    pub client: Netns,
    /// The native server's namespace: the other end of the veth.
    pub native: Netns,
    /// Of both links.
    pub mtu: u32,
}

impl Topology {
    /// Creates both namespaces and links, tagged `tag` (`http`, `tcp`).
    pub fn new(tag: &str, mtu: u32) -> Result<Self> {
        let client = Netns::new(&format!("{tag}-client"))?;
        let native = Netns::new(&format!("{tag}-native"))?;
        client.add_tap(TAP, TAP_HOST, mtu)?;
        client.add_veth(VETH.0, VETH_CLIENT, &native, VETH.1, VETH_NATIVE, mtu)?;
        Ok(Self { client, native, mtu })
    }

    /// `tender --net service0=nbtap0 --env NET_SERVICE0_IPV4=10.0.0.2/24
    /// [--env KEY=VALUE]... [OPTIONS]... GUEST`, to run in the client
    /// namespace.
    pub fn tender(
        &self,
        tender: &Path,
        guest: &Path,
        env: &[String],
        options: &[OsString],
    ) -> Result<Command> {
        let mut cmd = self.client.command(tender)?;
        cmd.args(["--net", &format!("service0={TAP}")]);
        cmd.args(["--env", &format!("NET_SERVICE0_IPV4={GUEST_CIDR}")]);
        for kv in env {
            cmd.args(["--env", kv]);
        }
        cmd.args(options).arg(guest);
        Ok(cmd)
    }

    /// A one-line description of the links, for reports.
    pub fn describe(&self) -> String {
        format!(
            "{TAP} {TAP_HOST} ↔ guest {GUEST_IP}; {} {VETH_CLIENT} ↔ {} {NATIVE_IP}; MTU {} \
             (namespaces {}, {})",
            VETH.0,
            VETH.1,
            self.mtu,
            self.client.name(),
            self.native.name()
        )
    }
}

/// A server process, killed and reaped on drop; its stdout and stderr go
/// to a log file.
#[derive(Debug)]
pub struct Daemon {
    label: String,
    command: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` with stdin from /dev/null and output to `log`.
    pub fn spawn(label: &str, mut cmd: Command, log: PathBuf) -> Result<Self> {
        let file =
            File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let command = display_command(&cmd);
        let child = cmd.spawn().map_err(|e| format!("cannot run {command}: {e}"))?;
        Ok(Self { label: label.into(), command, child, log })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for reports.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Fails, with the end of its log, if the process has exited.
    pub fn check(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}): {}\n{}",
                self.label,
                self.command,
                log_tail(&self.log)
            )),
            Err(e) => Err(format!("wait for {}: {e}", self.label)),
        }
    }

    /// Waits until `addr` accepts a TCP connection from `client`.
    pub fn wait_ready(&mut self, client: &Netns, addr: SocketAddrV4) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        client.run(|| {
            loop {
                self.check()?;
                let addr = SocketAddr::V4(addr);
                match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                    Ok(_) => return Ok(()),
                    Err(e) if Instant::now() > deadline => {
                        return Err(format!(
                            "{} does not accept connections on {addr} after {} s ({e}): {}\n{}",
                            self.label,
                            READY_TIMEOUT.as_secs(),
                            self.command,
                            log_tail(&self.log)
                        ));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?
    }

    /// CPU time (user + system) the process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// utime + stime, in clock ticks, from a `/proc/PID/stat` line.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces:
    // count from the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// cutime + cstime (fields 16 and 17) of a `/proc/PID/stat` line: the
/// ticks of the children waited for.
pub fn parse_stat_children_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(13);
    let cutime: u64 = fields.next()?.parse().ok()?;
    let cstime: u64 = fields.next()?.parse().ok()?;
    Some(cutime + cstime)
}

/// CPU seconds (user + system) of this process's children that were waited
/// for: its change over a client's run (wrk, redis-benchmark) is the
/// client's CPU time, since daemons are waited for only when they end.
pub fn children_cpu_seconds() -> Result<f64> {
    let path = "/proc/self/stat";
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let ticks = parse_stat_children_ticks(&text).ok_or_else(|| format!("{path}: cannot parse"))?;
    Ok(ticks as f64 / clock_ticks())
}

/// CPU seconds used by process `pid`, all threads.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let ticks = parse_stat_ticks(&text).ok_or_else(|| format!("{path}: cannot parse"))?;
    Ok(ticks as f64 / clock_ticks())
}

/// Busy and total clock ticks of all CPUs, from the `cpu` line of
/// `/proc/stat` (`cpu user nice system idle iowait irq softirq steal ...`):
/// idle and iowait are not busy.
pub fn parse_machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let v: Vec<u64> =
        line.split_whitespace().skip(1).map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if v.len() < 8 {
        return None;
    }
    // guest and guest_nice (9th, 10th) are already counted in user and nice.
    let total: u64 = v[..8].iter().sum();
    Some((total - v[3] - v[4], total))
}

/// A reading of the machine's CPU use, to compare with a later one.
#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    /// Reads `/proc/stat`.
    pub fn now() -> Result<Self> {
        let text =
            fs::read_to_string("/proc/stat").map_err(|e| format!("cannot read /proc/stat: {e}"))?;
        let (busy, total) = parse_machine_ticks(&text).ok_or("/proc/stat: cannot parse")?;
        Ok(Self { busy, total })
    }

    /// Busy CPUs since `earlier`, in cores (0 to the number of CPUs).
    pub fn cores_since(&self, earlier: &Self) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64 * cpus
    }
}

/// A single jump of a CPU's steal time at least this long is a freeze:
/// the host took that vCPU away for the whole of it.
pub const FREEZE_MS: f64 = 50.0;

/// The time the host took this machine's vCPUs away (steal time) while
/// something ran. A guest kernel accounts steal at its next tick on the
/// vCPU, so a freeze shows as one jump of the CPU's counter: on the VMs
/// these benchmarks run on, the host freezes a vCPU for 100 ms at a time
/// (one jump of 10 ticks; a `SCHED_FIFO` thread sleeping 1 ms on that CPU
/// oversleeps by as much). Whatever ran there (the server, the tender, wrk)
/// stops for that long, and wrk's correction for coordinated omission
/// turns one such pause of 100 ms into a p99 of tens of ms
/// (docs/performance.md, "httpd's p99 outliers").
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Steal {
    /// All CPUs' steal time, ms.
    pub total_ms: f64,
    /// Jumps of one CPU's steal of at least [`FREEZE_MS`] between two samples.
    pub freezes: u32,
    /// The longest such jump, ms.
    pub longest_ms: f64,
}

impl Steal {
    /// Adds what changed between two samples of the CPUs' steal ticks
    /// (`tick_ms` each).
    pub fn add_sample(&mut self, before: &[u64], now: &[u64], tick_ms: f64) {
        for (b, n) in before.iter().zip(now) {
            let ms = n.saturating_sub(*b) as f64 * tick_ms;
            self.total_ms += ms;
            if ms >= FREEZE_MS {
                self.freezes += 1;
                self.longest_ms = self.longest_ms.max(ms);
            }
        }
    }
}

/// Each CPU's steal ticks, from the `cpuN` lines of `/proc/stat` (the 8th
/// number); `None` if a line is malformed or there is none.
pub fn parse_steal_ticks(stat: &str) -> Option<Vec<u64>> {
    let v: Vec<u64> = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| l.split_whitespace().nth(8)?.parse().ok())
        .collect::<Option<_>>()?;
    (!v.is_empty()).then_some(v)
}

/// Samples the CPUs' steal time every 5 ms on a thread of its own until
/// [`StealWatch::finish`].
pub struct StealWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Steal>,
}

impl StealWatch {
    /// Starts sampling (nothing is counted where `/proc/stat` cannot be read).
    pub fn start() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let tick_ms = 1000.0 / clock_ticks();
        let read = || fs::read_to_string("/proc/stat").ok().and_then(|t| parse_steal_ticks(&t));
        let thread = std::thread::spawn(move || {
            let mut steal = Steal::default();
            let Some(mut before) = read() else { return steal };
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                if let Some(now) = read() {
                    steal.add_sample(&before, &now, tick_ms);
                    before = now;
                }
            }
            steal
        });
        Self { stop, thread }
    }

    /// Stops sampling; what was stolen since [`StealWatch::start`].
    pub fn finish(self) -> Steal {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Warns on stderr if the machine is already busy (other load than this
/// benchmark's): the figures of a shared machine are noise.
pub fn warn_if_busy() -> Result<()> {
    let before = MachineCpu::now()?;
    std::thread::sleep(Duration::from_secs(1));
    let busy = MachineCpu::now()?.cores_since(&before);
    if busy > 0.25 {
        eprintln!(
            "nabla: warning: the machine is busy before the benchmark starts ({:.0}% of one \
             core): other load skews the figures",
            busy * 100.0
        );
    }
    Ok(())
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/PID/stat` times.
#[allow(unsafe_code)]
fn clock_ticks() -> f64 {
    // SAFETY: sysconf takes an integer and touches no memory.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Starts the program of `cmd` under `SCHED_BATCH` (`chrt -b 0`): woken,
/// it does not preempt the task running on its CPU. For the servers a
/// benchmark compares, each given the same policy (see `nabla bench kvd`).
#[allow(unsafe_code)]
pub fn sched_batch(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook makes one system call (async-signal-safe) with a
    // pointer to a sched_param on its own stack, alive for the call.
    unsafe {
        cmd.pre_exec(|| {
            let param = libc::sched_param { sched_priority: 0 };
            let p = &param as *const libc::sched_param;
            if libc::syscall(libc::SYS_sched_setscheduler, 0, libc::SCHED_BATCH, p) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `path`, or `name` looked up in `$PATH` and then in `/usr/sbin` and
/// `/sbin` (Debian puts nginx there, outside a normal user's `$PATH`).
pub fn find_program(given: Option<&Path>, name: &str, install: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{}: no such file", p.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not found (Debian: apt-get install {install})"))
}

/// Creates `path` and its parents.
pub fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Writes `contents` to `path`.
pub fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks() {
        let stat = "4242 (tender) S 1 4242 4242 0 -1 4194560 300 0 0 0 150 75 0 0 20 0 1 0 \
                    123 1000 10 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(225));
        // A name with spaces and parentheses.
        let odd = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 6 7";
        assert_eq!(parse_stat_ticks(odd), Some(7));
        assert_eq!(parse_stat_ticks("7 (x) R 1"), None);
        assert_eq!(parse_stat_ticks("no parenthesis"), None);
    }

    #[test]
    fn stat_children_ticks() {
        let stat = "4242 (nabla) S 1 4242 4242 0 -1 4194560 300 0 0 0 150 75 31 11 20 0 1 0 \
                    123 1000 10 18446744073709551615";
        assert_eq!(parse_stat_children_ticks(stat), Some(42));
        let odd = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 5 6 20 0 1 0 5 6 7";
        assert_eq!(parse_stat_children_ticks(odd), Some(11));
        assert_eq!(parse_stat_children_ticks("7 (x) R 1 7 7 0 -1 0 0 0 0 0 3 4"), None);
    }

    #[test]
    fn steal_ticks_per_cpu() {
        let stat = "cpu  10 0 5 100 1 0 2 30 0 0\ncpu0 5 0 2 50 1 0 1 20 0 0\n\
                    cpu1 5 0 3 50 0 0 1 10 0 0\nintr 1 2 3\n";
        assert_eq!(parse_steal_ticks(stat), Some(vec![20, 10]));
        assert_eq!(parse_steal_ticks("cpu  1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(parse_steal_ticks("cpu  1 2 3 4 5 6 7 8\ncpu0 1 2 3\n"), None);
    }

    #[test]
    fn a_freeze_is_one_jump_of_one_cpu() {
        let mut s = Steal::default();
        // 10 ms ticks: CPU 0 loses 100 ms at once, CPU 1 a tick.
        s.add_sample(&[20, 10], &[30, 11], 10.0);
        assert_eq!(s, Steal { total_ms: 110.0, freezes: 1, longest_ms: 100.0 });
        // Steal that trickles in, a tick per sample, is no freeze.
        for t in 0..10 {
            s.add_sample(&[30 + t, 11], &[31 + t, 11], 10.0);
        }
        assert_eq!(s, Steal { total_ms: 210.0, freezes: 1, longest_ms: 100.0 });
        // A counter going backwards (a CPU taken offline) counts nothing.
        s.add_sample(&[40, 11], &[0, 11], 10.0);
        assert_eq!(s.total_ms, 210.0);
    }

    #[test]
    fn machine_ticks() {
        let stat = "cpu  100 5 50 800 20 3 7 15 0 0\ncpu0 50 2 25 400 10 1 3 7 0 0\nintr 1\n";
        assert_eq!(parse_machine_ticks(stat), Some((180, 1000)));
        assert_eq!(parse_machine_ticks("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(parse_machine_ticks("cpu 1 2 3\n"), None);
        let a = MachineCpu { busy: 100, total: 1000 };
        let b = MachineCpu { busy: 600, total: 2000 };
        let cpus = std::thread::available_parallelism().unwrap().get() as f64;
        assert!((b.cores_since(&a) - 0.5 * cpus).abs() < 1e-9);
        assert_eq!(a.cores_since(&a), 0.0);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }
}
