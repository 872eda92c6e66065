//! Network namespaces for the network suites.
//!
//! Every network test runs as root inside a namespace it creates and
//! removes ([`Netns`]), with its taps inside it, and uses addresses only
//! inside that namespace (10.0.0.0/24 and the like): no test sends
//! anything to an address outside this machine. [`Netns`] removes the
//! namespace, with its links and every process still in it, when dropped,
//! also when the test panics; namespaces left by a test process that was
//! killed are removed by the next [`Netns::new`].
//!
//! ```ignore
//! let ns = Netns::new("attach");
//! ns.add_tap("tap0", Some("10.0.0.1/24"), None);
//! ns.tender(&["--net", "service0=tap0", GUEST]).assert_ok();
//! ```

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use super::{KillOnDrop, Outcome, tender, wait};

/// Prefix of every namespace the suites create.
const PREFIX: &str = "nabla-";

/// How long a command in a namespace may run.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// Panics with a clear message unless this process runs as root: network
/// tests create namespaces and taps, which needs root (CI runs as root).
pub fn require_root() {
    assert!(
        is_root(),
        "this network test needs root: it creates a network namespace and taps inside it \
         (run the suite as root, as CI and scripts/test.sh on a fresh machine do)"
    );
}

/// Runs `ip ARGS`, panicking with its stderr if it fails.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip ARGS`, ignoring failure: for cleaning up.
fn ip_quiet(args: &[&str]) -> Option<String> {
    let out =
        Command::new("ip").args(args).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Kills every process in namespace `name` and deletes it.
fn destroy(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = ip_quiet(&["netns", "pids", name])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            kill(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = ip_quiet(&["netns", "del", name]);
}

#[allow(unsafe_code)]
fn kill(pid: i32) {
    // SAFETY: kill takes integers only. The pids come from `ip netns pids`
    // for a namespace this process created, so they are the tests' own.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Removes the namespaces of test processes that no longer run (killed
/// before their `Drop` could run), once per test process.
fn remove_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let list = ip_quiet(&["netns", "list"]).unwrap_or_default();
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix(PREFIX) else { continue };
            // nabla-<tag>-<pid>-<n>
            let mut parts = rest.rsplitn(3, '-');
            let (Some(_n), Some(pid), Some(_tag)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else { continue };
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                destroy(name);
            }
        }
    });
}

/// A network namespace of this test, deleted (with everything in it) when
/// dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `nabla-<tag>-<pid>-<n>`, unique among the tests running in
    /// parallel, with its loopback up. Panics unless root.
    pub fn new(tag: &str) -> Self {
        require_root();
        remove_stale();
        static N: AtomicU32 = AtomicU32::new(0);
        let name =
            format!("{PREFIX}{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        // One `ip netns add` at a time: on a fresh machine /run/netns is
        // not yet a mount point, iproute2 makes it one on first use, and
        // two at once may both do so and stack two mounts there.
        static ADD: Mutex<()> = Mutex::new(());
        {
            let _one = ADD.lock().unwrap_or_else(|e| e.into_inner());
            ip(&["netns", "add", &name]);
        }
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NS ARGS`, panicking if it fails; returns its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Creates tap `name` (`ip tuntap add ... mode tap`), sets its MTU and a
    /// host address (`10.0.0.1/24`) if given, and brings it up.
    pub fn add_tap(&self, name: &str, host_cidr: Option<&str>, mtu: Option<u32>) {
        self.ip(&["tuntap", "add", "dev", name, "mode", "tap"]);
        if let Some(mtu) = mtu {
            self.ip(&["link", "set", name, "mtu", &mtu.to_string()]);
        }
        if let Some(cidr) = host_cidr {
            self.ip(&["addr", "add", cidr, "dev", name]);
        }
        self.ip(&["link", "set", name, "up"]);
    }

    /// Turns IPv6 off in the namespace (all interfaces, and those created
    /// later), so that the kernel queues no neighbour discovery on a tap
    /// and a tap stays silent unless a test sends something. Does nothing
    /// on a kernel without IPv6.
    pub fn disable_ipv6(&self) {
        if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
            return;
        }
        for scope in ["all", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{scope}/disable_ipv6");
            let out = self.run("sh", &["-c", &format!("echo 1 > {path}")]);
            assert_eq!(out.code(), Some(0), "disabling IPv6 in {}: {out:#?}", self.name);
        }
    }

    /// A command that runs `program` in the namespace (`ip netns exec NS
    /// program`; `ip` execs it, so its exit status is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// A command that runs `program` in the namespace with tap `tap`
    /// already attached on fd `fd`, as a container runtime would pass it:
    /// the child enters the namespace, opens `/dev/net/tun`, attaches `tap`
    /// with `TUNSETIFF` and `flags` (e.g. `IFF_TAP | IFF_NO_PI`) and moves
    /// the fd to `fd`, before it execs `program` directly (not through
    /// `ip netns exec`: `/sys` stays the host's).
    #[allow(unsafe_code)]
    pub fn command_with_tap(
        &self,
        program: impl AsRef<OsStr>,
        tap: &str,
        fd: RawFd,
        flags: i32,
    ) -> Command {
        assert!(tap.len() < libc::IFNAMSIZ && fd > 2);
        let netns = std::fs::File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("/run/netns/{}: {e}", self.name));
        let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
        for (d, s) in name.iter_mut().zip(tap.bytes()) {
            *d = s as libc::c_char;
        }
        let mut c = Command::new(program);
        let child_setup = move || -> std::io::Result<()> {
            let check = |ret: libc::c_int| {
                if ret < 0 { Err(std::io::Error::last_os_error()) } else { Ok(ret) }
            };
            // SAFETY: in the forked child, before exec: only system calls
            // (setns, open, ioctl, dup2, close), no allocation or lock. The
            // ifreq is a local, zeroed, then filled with a NUL-terminated
            // name; netns is a valid fd owned by the closure.
            unsafe {
                check(libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET))?;
                let tun = check(libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR))?;
                let mut req: libc::ifreq = std::mem::zeroed();
                req.ifr_name = name;
                req.ifr_ifru.ifru_flags = flags as libc::c_short;
                check(libc::ioctl(tun, libc::TUNSETIFF, &mut req))?;
                if tun != fd {
                    check(libc::dup2(tun, fd))?;
                    libc::close(tun);
                }
            }
            Ok(())
        };
        // SAFETY: child_setup is async-signal-safe (see above).
        unsafe { c.pre_exec(child_setup) };
        c
    }

    /// Starts `tender ARGS` in the namespace and waits (20 s at most) until
    /// it prints a line containing `ready`; returns the child and the lines
    /// printed until then.
    pub fn start_tender<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        ready: &str,
    ) -> (KillOnDrop, Vec<String>) {
        let mut child = self
            .command(tender())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the tender");
        let lines = read_until(&mut child, ready, Duration::from_secs(20));
        (KillOnDrop(child), lines)
    }

    /// Starts dnsmasq as a DHCP server (no DNS) on `iface`, with the leases
    /// in `leases` and `options` (`--dhcp-range=...`, `--dhcp-option=...`);
    /// killed when dropped.
    pub fn dnsmasq(&self, iface: &str, leases: &std::path::Path, options: &[&str]) -> KillOnDrop {
        let child = self
            .command("dnsmasq")
            .args(["--no-daemon", "--conf-file=/dev/null", "--bind-interfaces", "--port=0"])
            .arg(format!("--interface={iface}"))
            .arg("--user=root")
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian package dnsmasq-base) runs");
        KillOnDrop(child)
    }

    /// Runs `program ARGS` in the namespace, stdin from /dev/null, with a
    /// 30 s limit (then it is killed and the test fails).
    pub fn run<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> Outcome {
        let program = program.as_ref().to_owned();
        let mut c = self.command(&program);
        c.args(args);
        spawn(c, &format!("{} in {}", program.display(), self.name))
    }

    /// Runs `f` on a thread that has entered the namespace, so that the
    /// sockets it opens live there (`setns` affects only that thread).
    #[allow(unsafe_code)]
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = std::fs::File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("/run/netns/{}: {e}", self.name));
        std::thread::spawn(move || {
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in the namespace panicked")
    }

    /// Runs the tender with `args` in the namespace.
    pub fn tender<S: AsRef<OsStr>>(&self, args: &[S]) -> Outcome {
        self.run(tender(), args)
    }
}

/// Spawns `c` with stdin from /dev/null and waits for it, at most 30 s.
pub fn spawn(mut c: Command, what: &str) -> Outcome {
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait(child, TIMEOUT, what)
}

impl Drop for Netns {
    fn drop(&mut self) {
        destroy(&self.name);
    }
}

/// Reads `child`'s stdout until a line contains `needle` (panicking after
/// `timeout`); returns the lines read. The rest of the output is drained on
/// a thread, so the child never blocks on a full pipe.
pub fn read_until(child: &mut Child, needle: &str, timeout: Duration) -> Vec<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let wanted = needle.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.contains(&wanted);
            lines.push(line);
            if done {
                let _ = tx.send(lines.clone());
            }
        }
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(timeout).expect("the guest did not get ready in time");
    assert!(lines.last().is_some_and(|l| l.contains(needle)), "guest output: {lines:#?}");
    lines
}
