//! `nabla hap`: the Horizontal Attack Profile, measured as the number of
//! distinct host-kernel functions a workload executes (as IBM's
//! nabla-measurements did), with the ftrace function tracer.
//!
//! A workload is a command, optionally a readiness check (a TCP address
//! that accepts) and a load (a shell command run once it is ready). Its
//! processes and their descendants are traced from the exec on
//! ([`agent`]); what ran is split ([`trace`]) into start-up (until ready:
//! the check passed and, for a nabla guest, the tender's seccomp filter is
//! installed) and steady state (while the load runs), with interrupt and
//! softirq context counted apart and left out of the headline, and the
//! system calls named from their entry points whatever the prefix.
//!
//! Two modes, picked by the command: *direct* on a host whose kernel
//! allows the function tracer, and *lab* ([`lab`]) where it does not (a
//! locked-down host): a throwaway QEMU VM (TCG) with a stock Debian
//! kernel. The kernel's version is printed with every figure: compare only
//! within one kernel.
//!
//! `nabla hap compare` measures the nabla guests side by side with their
//! native peers under the same load in one run (hello against a static
//! native hello, httpd against nginx under a curl loop, kvd against
//! redis-server under a redis-cli loop) and writes a table (text, JSON),
//! a chart (SVG, PNG) and the function lists, one a line, for diffing.
//! `nabla hap run` measures one workload of the user's.

mod agent;
mod attrib;
pub(crate) mod chart;
mod lab;
mod trace;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::bench::{NativePeer, Result, TempDir, compile_native, locate};
use crate::netns::Netns;
use trace::Phase;

/// The `nabla hap` subcommands.
#[derive(Debug, Subcommand)]
pub enum Hap {
    /// Measures the nabla guests against their native peers (hello against
    /// a static native hello, httpd against nginx under a curl loop, kvd
    /// against redis-server under a redis-cli loop).
    Compare(CompareArgs),
    /// Measures one workload: COMMAND, optionally a readiness check and a
    /// load.
    Run(RunArgs),
    /// Runs a plan inside the lab VM or a direct run (internal).
    #[command(hide = true)]
    Agent { plan: PathBuf, out: PathBuf },
}

/// Where to trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Direct if the host allows the function tracer, else lab.
    Auto,
    /// On this host's kernel.
    Direct,
    /// In a QEMU VM (TCG) with a stock Debian kernel.
    Lab,
}

/// Options shared by the subcommands.
#[derive(Debug, ClapArgs)]
pub struct Common {
    /// Where to trace.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    mode: Mode,
    /// Directory for the table, chart, lists and logs.
    #[arg(long, default_value = "target/hap")]
    out: PathBuf,
    /// Lab mode: the Debian kernel version (default: what
    /// linux-image-amd64 depends on now), e.g. 6.1.0-56-amd64.
    #[arg(long)]
    kernel_version: Option<String>,
    /// Limit for the whole lab run (boot to power-off), seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// Limit for one workload (exec to the end of its load), seconds.
    #[arg(long, default_value_t = 600)]
    workload_timeout: u64,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write each workload's raw trace (first 200,000 lines) to
    /// OUT/<workload>/trace.txt.
    #[arg(long)]
    raw_trace: bool,
}

/// `nabla hap compare`.
#[derive(Debug, ClapArgs)]
pub struct CompareArgs {
    /// The pairs, comma-separated: hello, httpd, kvd.
    #[arg(long, value_delimiter = ',', default_value = "hello,httpd,kvd")]
    pairs: Vec<Pair>,
    /// Requests in the load (curl runs, redis-cli SET+GET runs).
    #[arg(long, default_value_t = 20)]
    requests: u32,
    /// The tender (default: next to this `nabla`).
    #[arg(long)]
    tender: Option<PathBuf>,
    /// The directory holding the guests hello, httpd and kvd (default: the
    /// one holding this `nabla`).
    #[arg(long)]
    guests: Option<PathBuf>,
    /// How the guests' tap reaches the clients' veth: `tc` (a mirred
    /// redirect each way, as nabla-runc connects a container's tap to its
    /// interface) or `bridge` (a Linux bridge joining the two).
    #[arg(long, value_enum, default_value_t = Network::Tc)]
    network: Network,
    #[command(flatten)]
    common: Common,
}

/// How `nabla hap compare` joins the guests' tap to the clients (see
/// [`network_setup`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Network {
    /// tc `mirred` redirects between the tap and the veth.
    Tc,
    /// A bridge with the tap and the veth as its ports.
    Bridge,
}

/// `nabla hap run`.
#[derive(Debug, ClapArgs)]
pub struct RunArgs {
    /// A name for the workload in the reports.
    #[arg(long, default_value = "workload")]
    name: String,
    /// Readiness check: start-up ends when ADDR:PORT accepts a connection.
    #[arg(long, value_name = "ADDR:PORT")]
    ready: Option<SocketAddr>,
    /// The load: a shell command run once the workload is ready; the steady
    /// state lasts while it runs. Needs --ready.
    #[arg(long, value_name = "SHELL", requires = "ready")]
    load: Option<String>,
    /// The workload installs a seccomp filter (the tender does): start-up
    /// lasts until it is in place.
    #[arg(long)]
    filter: bool,
    /// Lab mode: a program (with its shared libraries) to put in the VM at
    /// the same path, e.g. what the load runs (repeatable).
    #[arg(long, value_name = "PATH")]
    program: Vec<PathBuf>,
    /// Lab mode: a data file to put in the VM at the same path (repeatable).
    #[arg(long, value_name = "PATH")]
    file: Vec<PathBuf>,
    /// Shell commands run once before (e.g. creating a tap), untraced.
    #[arg(long, value_name = "SHELL")]
    setup: Vec<String>,
    #[command(flatten)]
    common: Common,
    /// The command (absolute paths are safest: in the lab VM, busybox
    /// applets come first).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Pair {
    Hello,
    Httpd,
    Kvd,
}

/// A workload of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub name: String,
    pub argv: Vec<String>,
    pub ready: Option<SocketAddr>,
    pub load: Option<String>,
    pub filter: bool,
    /// The nabla guest of a pair (for the chart and the goals).
    pub guest: bool,
}

impl Workload {
    /// The name as a file name: `hello (tender)` → `hello-tender`.
    pub fn slug(&self) -> String {
        slug(&self.name)
    }
}

fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    s.trim_matches('-').to_string()
}

/// What the agent runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub tracefs: PathBuf,
    pub buffer_kb: u64,
    pub timeout_s: u64,
    pub log_dir: PathBuf,
    pub setup: Vec<String>,
    /// Shell commands run at the end, whatever happened (failures ignored).
    pub teardown: Vec<String>,
    /// The network namespace (a file) the readiness checks connect from.
    pub check_netns: Option<PathBuf>,
    pub workloads: Vec<Workload>,
    /// Also return the raw trace (debugging).
    pub raw: bool,
}

impl Plan {
    fn to_json(&self) -> String {
        let ws: Vec<Value> = self
            .workloads
            .iter()
            .map(|w| {
                json!({
                    "name": w.name, "argv": w.argv, "filter": w.filter, "guest": w.guest,
                    "ready": w.ready.map(|a| a.to_string()), "load": w.load,
                })
            })
            .collect();
        json!({
            "tracefs": self.tracefs, "buffer_kb": self.buffer_kb, "timeout_s": self.timeout_s,
            "log_dir": self.log_dir, "setup": self.setup, "teardown": self.teardown, "workloads": ws,
            "check_netns": self.check_netns, "raw": self.raw,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("plan: {e}"))?;
        let s = |v: &Value, k: &str| -> Result<String> {
            v[k].as_str().map(str::to_string).ok_or_else(|| format!("plan: no string `{k}`"))
        };
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let mut workloads = Vec::new();
        for w in v["workloads"].as_array().ok_or("plan: no `workloads`")? {
            let ready = match w["ready"].as_str() {
                Some(a) => Some(a.parse().map_err(|e| format!("plan: ready {a}: {e}"))?),
                None => None,
            };
            let argv = strings(&w["argv"]);
            if argv.is_empty() {
                return Err("plan: a workload without a command".into());
            }
            workloads.push(Workload {
                name: s(w, "name")?,
                argv,
                ready,
                load: w["load"].as_str().map(str::to_string),
                filter: w["filter"].as_bool().unwrap_or(false),
                guest: w["guest"].as_bool().unwrap_or(false),
            });
        }
        Ok(Self {
            tracefs: s(&v, "tracefs")?.into(),
            buffer_kb: v["buffer_kb"].as_u64().unwrap_or(16384),
            timeout_s: v["timeout_s"].as_u64().unwrap_or(600),
            log_dir: s(&v, "log_dir")?.into(),
            setup: strings(&v["setup"]),
            teardown: strings(&v["teardown"]),
            check_netns: v["check_netns"].as_str().map(PathBuf::from),
            workloads,
            raw: v["raw"].as_bool().unwrap_or(false),
        })
    }
}

/// Kills the process group `pid` (the agent's workloads run in their own).
#[allow(unsafe_code)]
pub(crate) fn kill_group(pid: i32) {
    if pid > 1 {
        // SAFETY: kill takes integers only; the group is one this process
        // created for a workload it started.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// Runs a `nabla hap` subcommand.
pub fn run(cmd: Hap) -> Result<()> {
    match cmd {
        Hap::Agent { plan, out } => agent::run(&plan, &out),
        Hap::Compare(args) => compare(&args),
        Hap::Run(args) => run_one(&args),
    }
}

/// The network, as a deployment would have it: the clients (curl,
/// redis-cli) run in a namespace of their own. The guests' tap `tap0`
/// reaches them through the veth `veth0`/`veth1` (10.0.0.1 at the clients'
/// end), joined to the tap either as nabla-runc joins a container's tap to
/// the container's interface, by a tc `mirred` redirect on each one's
/// ingress ([`Network::Tc`]), or by a bridge `br0` ([`Network::Bridge`]);
/// the guests take 10.0.0.2. The native servers have a veth of their own,
/// as a container has (`veth2` at 10.0.1.3, the clients' end `veth3` at
/// 10.0.1.1): what a container's bridge does with their frames happens
/// beyond that veth, in softirq. So neither side's packets are handled by
/// the host's TCP on the server's behalf: the client's TCP runs in its
/// namespace (in softirq, reached through the veth), the server's own in
/// its system calls (nginx, redis-server) or in libos (the guests).
const CLIENT_IP: &str = "10.0.0.1";
const GUEST_IP: &str = "10.0.0.2";
const NATIVE_CLIENT_IP: &str = "10.0.1.1";
const NATIVE_IP: &str = "10.0.1.3";
/// The clients' namespace.
const CLIENT_NS: &str = "nabla-hap-client";

/// What a comparison puts in the VM besides the programs.
struct Staged {
    plan: Plan,
    programs: Vec<PathBuf>,
    /// Files generated on the host: (host path, path inside).
    files: Vec<(PathBuf, PathBuf)>,
    _native: Option<NativePeer>,
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    fs::write(path, data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Finds `name` on PATH (or in the sbin directories), absolute, resolved.
fn program(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        // Not canonicalised: some programs are links that look at argv[0]
        // (redis-server is redis-check-rdb).
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!("{name} not found (Debian: apt-get install {package})"))
}

/// The shell commands that make the network (see [`CLIENT_IP`]), with
/// `ip` and `tc` at those paths. IPv6 is off so that nothing but the load
/// crosses it.
fn network_setup(ip: &str, tc: &str, network: Network) -> String {
    let ns = CLIENT_NS;
    let mut cmds = vec![
        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6".to_string(),
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6".to_string(),
        format!("{ip} link set lo up"),
        format!("{ip} netns add {ns}"),
        format!("{ip} -n {ns} link set lo up"),
        format!("{ip} tuntap add dev tap0 mode tap"),
        format!("{ip} link add veth0 type veth peer name veth1 netns {ns}"),
        format!("{ip} -n {ns} addr add {CLIENT_IP}/24 dev veth1"),
        format!("{ip} -n {ns} link set veth1 up"),
    ];
    match network {
        Network::Tc => {
            // The filter nabla-runc installs (runtime/src/net.rs): every
            // frame in at one device goes out of the other.
            for (from, to) in [("tap0", "veth0"), ("veth0", "tap0")] {
                cmds.push(format!("{tc} qdisc add dev {from} ingress"));
                cmds.push(format!(
                    "{tc} filter add dev {from} parent ffff: protocol all u32 match u8 0 0 \
                     action mirred egress redirect dev {to}"
                ));
            }
        }
        Network::Bridge => {
            cmds.push(format!("{ip} link add br0 type bridge"));
            cmds.push(format!("{ip} link set br0 up"));
            cmds.push(format!("{ip} link set tap0 master br0"));
            cmds.push(format!("{ip} link set veth0 master br0"));
        }
    }
    cmds.extend([
        format!("{ip} link set tap0 up"),
        format!("{ip} link set veth0 up"),
        format!("{ip} link add veth2 type veth peer name veth3 netns {ns}"),
        format!("{ip} addr add {NATIVE_IP}/24 dev veth2"),
        format!("{ip} link set veth2 up"),
        format!("{ip} -n {ns} addr add {NATIVE_CLIENT_IP}/24 dev veth3"),
        format!("{ip} -n {ns} link set veth3 up"),
    ]);
    cmds.join(" && ")
}

/// `script` run by `sh` in the clients' namespace (busybox's and
/// util-linux's `nsenter` both take `--net=FILE`).
fn in_client_ns(script: &str) -> String {
    format!("nsenter --net=/run/netns/{CLIENT_NS} /bin/sh -c '{script}'")
}

/// nginx's configuration: one process, static files from `dir/site`.
fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "# Written by `nabla hap`.\nworker_processes 1;\ndaemon off;\nmaster_process off;\n\
         pid {d}/nginx.pid;\nerror_log stderr warn;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  default_type text/html;\n\
         client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
         server {{ listen {NATIVE_IP}:80; root {d}/site; }}\n}}\n"
    )
}

const INDEX: &str = "<!doctype html>\n<title>nabla hap</title>\n<p>Hello from the HAP \
                     measurement: the same page from httpd and nginx.</p>\n";

/// Builds the plan of `pairs`; files go under `stage` on the host and are
/// at `base` when the plan runs.
fn stage_compare(args: &CompareArgs, stage: &Path, base: &Path) -> Result<Staged> {
    let tender = locate(args.tender.as_deref(), "tender", "--tender")?;
    let guest = |name: &str| -> Result<PathBuf> {
        let given = args.guests.as_ref().map(|d| d.join(name));
        locate(given.as_deref(), name, "--guests")
    };
    let t = tender.display().to_string();
    let mut programs = vec![tender.clone()];
    let mut files = Vec::new();
    let mut workloads = Vec::new();
    let mut native = None;
    let mut setup = Vec::new();
    let mut teardown = Vec::new();
    let n = args.requests;
    let pairs: BTreeSet<Pair> = args.pairs.iter().copied().collect();
    if pairs.contains(&Pair::Httpd) || pairs.contains(&Pair::Kvd) {
        let ip = program("ip", "iproute2")?;
        let ip = ip.display();
        let tc = program("tc", "iproute2")?;
        let tc = tc.display();
        setup.push(network_setup(&ip.to_string(), &tc.to_string(), args.network));
        teardown.push(format!("{ip} netns del {CLIENT_NS}"));
        programs.push(ip.to_string().into());
        programs.push(tc.to_string().into());
    }
    let b = base.display();
    // An empty file, to make the directories nginx and redis write in.
    let keep = stage.join("keep");
    write(&keep, b"")?;
    if pairs.contains(&Pair::Hello) {
        let hello = guest("hello")?;
        let peer = compile_native("hello", include_str!("../bench/hello.c"))?;
        files.push((peer.path.clone(), base.join("hello-native")));
        native = Some(peer);
        workloads.push(Workload {
            name: "hello (tender)".into(),
            argv: vec![t.clone(), hello.display().to_string()],
            ready: None,
            load: None,
            filter: true,
            guest: true,
        });
        workloads.push(Workload {
            name: "hello (native)".into(),
            argv: vec![format!("{b}/hello-native")],
            ready: None,
            load: None,
            filter: false,
            guest: false,
        });
        programs.push(hello);
    }
    if pairs.contains(&Pair::Httpd) {
        let httpd = guest("httpd")?;
        let nginx = program("nginx", "nginx-light")?;
        let curl = program("curl", "curl")?;
        let site = stage.join("site");
        write(&site.join("index.html"), INDEX.as_bytes())?;
        let img = stage.join("site.img");
        crate::disk::create(
            &img,
            &crate::disk::CreateOptions {
                label: "HAP".into(),
                ..crate::disk::CreateOptions::from(&site)
            },
        )?;
        files.push((img, base.join("site.img")));
        files.push((site.join("index.html"), base.join("nginx/site/index.html")));
        let conf = stage.join("nginx.conf");
        write(&conf, nginx_conf(&base.join("nginx")).as_bytes())?;
        files.push((conf, base.join("nginx.conf")));
        files.push((keep.clone(), base.join("nginx/tmp/.keep")));
        let c = curl.display();
        let curl_loop = |host: &str| {
            in_client_ns(&format!(
                "i=0; while [ $i -lt {n} ]; do {c} -sf -o /dev/null http://{host}/ || exit 1; \
                 i=$((i+1)); done"
            ))
        };
        workloads.push(Workload {
            name: "httpd (tender)".into(),
            argv: vec![
                t.clone(),
                "--net".into(),
                "service0=tap0".into(),
                "--env".into(),
                format!("NET_SERVICE0_IPV4={GUEST_IP}/24"),
                "--block-ro".into(),
                format!("storage={b}/site.img"),
                httpd.display().to_string(),
            ],
            ready: Some(format!("{GUEST_IP}:80").parse().expect("address")),
            load: Some(curl_loop(GUEST_IP)),
            filter: true,
            guest: true,
        });
        workloads.push(Workload {
            name: "nginx".into(),
            argv: vec![
                nginx.display().to_string(),
                "-c".into(),
                format!("{b}/nginx.conf"),
                "-p".into(),
                format!("{b}/nginx"),
                "-e".into(),
                "stderr".into(),
            ],
            ready: Some(format!("{NATIVE_IP}:80").parse().expect("address")),
            load: Some(curl_loop(NATIVE_IP)),
            filter: false,
            guest: false,
        });
        programs.extend([httpd, nginx, curl]);
    }
    if pairs.contains(&Pair::Kvd) {
        let kvd = guest("kvd")?;
        let redis = program("redis-server", "redis-server")?;
        let cli = program("redis-cli", "redis-tools")?;
        let disk = stage.join("kvd.img");
        let f = fs::File::create(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
        f.set_len(2 << 20).map_err(|e| format!("{}: {e}", disk.display()))?;
        files.push((disk, base.join("kvd.img")));
        files.push((keep.clone(), base.join("redis/.keep")));
        let c = cli.display();
        let cli_loop = |host: &str| {
            in_client_ns(&format!(
                "i=0; while [ $i -lt {n} ]; do {c} -h {host} set hap$i value$i >/dev/null && \
                 {c} -h {host} get hap$i >/dev/null || exit 1; i=$((i+1)); done"
            ))
        };
        workloads.push(Workload {
            name: "kvd (tender)".into(),
            argv: vec![
                t.clone(),
                "--mem".into(),
                "256".into(),
                "--net".into(),
                "service0=tap0".into(),
                "--env".into(),
                format!("NET_SERVICE0_IPV4={GUEST_IP}/24"),
                "--block".into(),
                format!("storage={b}/kvd.img"),
                kvd.display().to_string(),
            ],
            ready: Some(format!("{GUEST_IP}:6379").parse().expect("address")),
            load: Some(cli_loop(GUEST_IP)),
            filter: true,
            guest: true,
        });
        workloads.push(Workload {
            name: "redis-server".into(),
            argv: [
                &redis.display().to_string(),
                "--bind",
                NATIVE_IP,
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--dir",
                &format!("{b}/redis"),
                "--daemonize",
                "no",
            ]
            .map(str::to_string)
            .to_vec(),
            ready: Some(format!("{NATIVE_IP}:6379").parse().expect("address")),
            load: Some(cli_loop(NATIVE_IP)),
            filter: false,
            guest: false,
        });
        programs.extend([kvd, redis, cli]);
    }
    let plan = Plan {
        tracefs: PathBuf::new(),
        buffer_kb: 0,
        timeout_s: args.common.workload_timeout,
        log_dir: PathBuf::new(),
        check_netns: (!setup.is_empty()).then(|| format!("/run/netns/{CLIENT_NS}").into()),
        setup,
        teardown,
        workloads,
        raw: args.common.raw_trace,
    };
    Ok(Staged { plan, programs, files, _native: native })
}

/// The tracefs mount of this host, and whether we mounted it.
fn host_tracefs() -> std::result::Result<(PathBuf, bool), String> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(p).join("current_tracer").exists() {
            return Ok((p.into(), false));
        }
    }
    let out = Command::new("mount")
        .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tracefs is not mounted and mounting it failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(("/sys/kernel/tracing".into(), true))
}

/// Whether this host lets us select the function tracer: Ok(tracefs) or
/// why not. A tracefs mounted only for the probe is unmounted on refusal.
fn probe_direct() -> std::result::Result<PathBuf, String> {
    let (tracefs, mounted) = host_tracefs()?;
    let result = probe_tracer(&tracefs);
    if result.is_err() && mounted {
        let _ = Command::new("umount").arg(&tracefs).stdin(Stdio::null()).status();
    }
    result.map(|()| tracefs)
}

fn probe_tracer(tracefs: &Path) -> std::result::Result<(), String> {
    let tracers = fs::read_to_string(tracefs.join("available_tracers")).unwrap_or_default();
    if !tracers.split_whitespace().any(|t| t == "function") {
        return Err(format!(
            "the kernel offers no function tracer (available_tracers: {})",
            tracers.trim()
        ));
    }
    let current = tracefs.join("current_tracer");
    let before = fs::read_to_string(&current).unwrap_or_else(|_| "nop".into());
    match fs::write(&current, "function") {
        Ok(()) => {
            let _ = fs::write(&current, before.trim());
            Ok(())
        }
        Err(e) => {
            let lockdown = fs::read_to_string("/sys/kernel/security/lockdown")
                .map(|l| format!(" (lockdown: {})", l.trim()))
                .unwrap_or_else(|_| " (kernel lockdown?)".into());
            Err(format!(
                "the host refuses the function tracer: {}: {e}{lockdown}",
                current.display()
            ))
        }
    }
}

/// Which mode to use, and why; prints it.
fn pick_mode(mode: Mode) -> Result<(Mode, Option<PathBuf>)> {
    match mode {
        Mode::Lab => {
            eprintln!("nabla: hap: lab mode (asked for): a QEMU VM (TCG), stock Debian kernel");
            Ok((Mode::Lab, None))
        }
        Mode::Direct => {
            let t = probe_direct()?;
            eprintln!("nabla: hap: direct mode: this host's kernel, {}", t.display());
            Ok((Mode::Direct, Some(t)))
        }
        Mode::Auto => match probe_direct() {
            Ok(t) => {
                eprintln!("nabla: hap: direct mode: this host's kernel allows the function tracer");
                Ok((Mode::Direct, Some(t)))
            }
            Err(why) => {
                eprintln!(
                    "nabla: hap: {why}; using lab mode: a QEMU VM (TCG), stock Debian kernel"
                );
                Ok((Mode::Lab, None))
            }
        },
    }
}

/// One workload's results.
#[derive(Debug)]
struct Measured {
    name: String,
    guest: bool,
    ready: bool,
    lost: u64,
    startup: Phase,
    steady: Phase,
    seconds: f64,
}

impl Measured {
    fn whole(&self) -> Phase {
        self.startup.union(&self.steady)
    }

    fn slug(&self) -> String {
        slug(&self.name)
    }
}

/// All results and where they came from.
#[derive(Debug)]
struct Report {
    mode: Mode,
    kernel: String,
    measured: Vec<Measured>,
    /// Workloads that could not be measured, and why.
    failures: Vec<String>,
}

fn phase_from(v: &Value) -> Phase {
    let set = |k: &str| -> BTreeSet<String> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let first_path: BTreeMap<String, String> = v["first_path"]
        .as_object()
        .map(|o| o.iter().map(|(k, p)| (k.clone(), p.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    let at = &v["attribution"];
    let attribution = attrib::Attribution {
        paths: at["paths"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(f, ls)| {
                        let ls = ls
                            .as_array()
                            .map(|a| {
                                a.iter().filter_map(|l| l.as_str().map(str::to_string)).collect()
                            })
                            .unwrap_or_default();
                        (f.clone(), ls)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        instances: at["instances"]
            .as_object()
            .map(|o| o.iter().map(|(l, n)| (l.clone(), n.as_u64().unwrap_or(0))).collect())
            .unwrap_or_default(),
    };
    Phase {
        attribution,
        task: set("task"),
        irq: set("irq"),
        softirq: set("softirq"),
        syscalls: set("syscalls"),
        first_path,
        calls: v["calls"].as_u64().unwrap_or(0),
    }
}

/// Parses the agent's JSON lines.
fn parse_results(text: &str, plan: &Plan, mode: Mode, out: &Path) -> Result<Report> {
    let mut kernel = None;
    let mut measured = Vec::new();
    let mut done = false;
    let mut failures = Vec::new();
    for line in text.lines().map(|l| l.trim_matches(|c: char| c == '\r' || c.is_whitespace())) {
        if !line.starts_with('{') {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if let Some(name) = v["raw"].as_str() {
            let raw: String = v["lines"]
                .as_array()
                .map(|a| a.iter().filter_map(|l| l.as_str()).map(|l| format!("{l}\n")).collect())
                .unwrap_or_default();
            write(&out.join(slug(name)).join("trace.txt"), raw.as_bytes())?;
        }
        if let Some(e) = v["error"].as_str() {
            match v["failed"].as_str() {
                Some(_) => failures.push(e.to_string()),
                None => return Err(format!("the agent failed: {e}")),
            }
        }
        if let Some(k) = v["kernel"].as_str() {
            kernel = Some(k.to_string());
        }
        if v["done"].as_bool() == Some(true) {
            done = true;
        }
        if let Some(name) = v["workload"].as_str() {
            let guest = plan.workloads.iter().any(|w| w.name == name && w.guest);
            measured.push(Measured {
                name: name.to_string(),
                guest,
                ready: v["ready"].as_bool().unwrap_or(false),
                lost: v["lost"].as_u64().unwrap_or(0),
                startup: phase_from(&v["startup"]),
                steady: phase_from(&v["steady"]),
                seconds: v["seconds"].as_f64().unwrap_or(0.0),
            });
        }
    }
    if !done {
        return Err(format!(
            "the agent did not finish ({} of {} workloads reported)",
            measured.len(),
            plan.workloads.len()
        ));
    }
    Ok(Report { mode, kernel: kernel.unwrap_or_else(|| "unknown".into()), measured, failures })
}

/// Runs `plan` in the chosen mode; `stage` holds the generated files,
/// `base` is where the plan expects them.
fn execute(
    common: &Common,
    mode: Mode,
    tracefs: Option<PathBuf>,
    mut plan: Plan,
    programs: &[PathBuf],
    files: &[(PathBuf, PathBuf)],
    out: &Path,
) -> Result<Report> {
    let agent = std::env::current_exe().map_err(|e| format!("cannot find nabla itself: {e}"))?;
    let plan_file = out.join("plan.json");
    let results = out.join("results.jsonl");
    match mode {
        Mode::Direct => {
            plan.tracefs = tracefs.expect("probed");
            plan.buffer_kb = 65536;
            plan.log_dir = out.join("logs");
            fs::create_dir_all(&plan.log_dir).map_err(|e| format!("{e}"))?;
            for (from, to) in files {
                if from != to {
                    if let Some(p) = to.parent() {
                        fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
                    }
                    fs::copy(from, to).map_err(|e| format!("{}: {e}", from.display()))?;
                }
            }
            write(&plan_file, plan.to_json().as_bytes())?;
            // Its own network namespace: the taps and servers stay there.
            let ns = Netns::new("hap")?;
            let status = ns
                .command(&agent)?
                .args(["hap", "agent"])
                .arg(&plan_file)
                .arg(&results)
                .status()
                .map_err(|e| format!("cannot run the agent: {e}"))?;
            let _ = fs::write(plan.tracefs.join("tracing_on"), "0");
            let _ = fs::write(plan.tracefs.join("current_tracer"), "nop");
            let _ = fs::write(plan.tracefs.join("set_ftrace_pid"), "");
            let _ = fs::write(plan.tracefs.join("set_event_pid"), "");
            drop(ns);
            let text = fs::read_to_string(&results).unwrap_or_default();
            let report = parse_results(&text, &plan, mode, out);
            if report.is_ok() && !status.success() {
                return Err(format!("the agent failed: {status}"));
            }
            report
        }
        Mode::Lab | Mode::Auto => {
            let kernel = lab::kernel(common.kernel_version.as_deref())?;
            eprintln!(
                "nabla: hap: kernel {} (Debian {}), {}",
                kernel.version,
                kernel.package,
                kernel.vmlinux.display()
            );
            plan.tracefs = "/sys/kernel/tracing".into();
            plan.buffer_kb = 32768;
            plan.log_dir = "/tmp".into();
            let tmp = TempDir::new()?;
            let root = tmp.path().join("root");
            let mut initramfs = lab::Initramfs::new(&root)?;
            initramfs.base(&kernel, &agent)?;
            for p in programs {
                initramfs.program(p)?;
            }
            for (from, to) in files {
                initramfs.copy(from, to)?;
            }
            initramfs.file(Path::new("/hap/plan.json"), plan.to_json().as_bytes(), 0o644)?;
            write(&plan_file, plan.to_json().as_bytes())?;
            let initrd = tmp.path().join("initrd.cpio");
            initramfs.pack(&initrd)?;
            let console = out.join("console.log");
            eprintln!(
                "nabla: hap: booting the lab VM ({} workload(s); console: {})",
                plan.workloads.len(),
                console.display()
            );
            let text = lab::boot(
                &kernel,
                &initrd,
                &console,
                &results,
                1024,
                Duration::from_secs(common.timeout),
            )?;
            let mut report = parse_results(&text, &plan, Mode::Lab, out)
                .map_err(|e| format!("{e}; the VM's console is in {}", console.display()))?;
            report.kernel = format!("{} (Debian {})", report.kernel, kernel.package);
            Ok(report)
        }
    }
}

fn compare(args: &CompareArgs) -> Result<()> {
    if args.pairs.is_empty() {
        return Err("--pairs: name at least one of hello, httpd, kvd".into());
    }
    if args.requests == 0 {
        return Err("--requests: at least 1".into());
    }
    let out = prepare_out(&args.common.out)?;
    let (mode, tracefs) = pick_mode(args.common.mode)?;
    let stage = TempDir::new()?;
    // Where the files are when the plan runs: /hap in the VM; in direct
    // mode, a directory of the output.
    let base = if mode == Mode::Direct { out.join("files") } else { PathBuf::from("/hap") };
    let staged = stage_compare(args, stage.path(), &base)?;
    let report = execute(
        &args.common,
        mode,
        tracefs,
        staged.plan.clone(),
        &staged.programs,
        &staged.files,
        &out,
    )?;
    finish(&args.common, &report, &out)
}

fn run_one(args: &RunArgs) -> Result<()> {
    let out = prepare_out(&args.common.out)?;
    let mut programs = Vec::new();
    let first = Path::new(&args.command[0]);
    if first.is_absolute() {
        programs.push(first.to_path_buf());
    } else {
        let p = program(&args.command[0], "the package that has it")?;
        programs.push(p);
    }
    for p in &args.program {
        programs.push(fs::canonicalize(p).map_err(|e| format!("--program {}: {e}", p.display()))?);
    }
    let mut files = Vec::new();
    for f in &args.file {
        let abs = fs::canonicalize(f).map_err(|e| format!("--file {}: {e}", f.display()))?;
        files.push((abs.clone(), abs));
    }
    let mut argv = args.command.clone();
    argv[0] = programs[0].display().to_string();
    let plan = Plan {
        tracefs: PathBuf::new(),
        buffer_kb: 0,
        timeout_s: args.common.workload_timeout,
        log_dir: PathBuf::new(),
        setup: args.setup.clone(),
        teardown: Vec::new(),
        check_netns: None,
        workloads: vec![Workload {
            name: args.name.clone(),
            argv,
            ready: args.ready,
            load: args.load.clone(),
            filter: args.filter,
            guest: args.filter,
        }],
        raw: args.common.raw_trace,
    };
    let (mode, tracefs) = pick_mode(args.common.mode)?;
    let report = execute(&args.common, mode, tracefs, plan, &programs, &files, &out)?;
    finish(&args.common, &report, &out)
}

fn prepare_out(out: &Path) -> Result<PathBuf> {
    fs::create_dir_all(out).map_err(|e| format!("--out {}: {e}", out.display()))?;
    Ok(fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf()))
}

/// The guest and its native peer, for the ratios: (guest, peer, pair name).
fn pairs(report: &Report) -> Vec<(&Measured, &Measured, &'static str)> {
    let find = |n: &str| report.measured.iter().find(|m| m.name == n);
    [
        ("hello (tender)", "hello (native)", "hello"),
        ("httpd (tender)", "nginx", "httpd"),
        ("kvd (tender)", "redis-server", "kvd"),
    ]
    .into_iter()
    .filter_map(|(g, n, p)| Some((find(g)?, find(n)?, p)))
    .collect()
}

/// The peer's count to compare a guest's steady state with: its steady
/// state, or its whole lifetime if it has none (a native hello).
fn peer_count(peer: &Measured) -> (usize, &'static str) {
    if peer.ready { (peer.steady.task.len(), "steady") } else { (peer.whole().task.len(), "whole") }
}

fn table(report: &Report) -> String {
    let mut s = String::new();
    let mode = match report.mode {
        Mode::Direct => "direct (this host's kernel)",
        _ => "lab (QEMU TCG VM)",
    };
    let _ = writeln!(
        s,
        "HAP: distinct host-kernel functions executed (task context), kernel {}, {mode}",
        report.kernel
    );
    let _ = writeln!(
        s,
        "{:<16} {:>9} {:>7} {:>9} {:>7} {:>13} {:>6} {:>8} {:>10}",
        "workload",
        "start-up",
        "steady",
        "steady+si",
        "whole",
        "syscalls s/w",
        "irq",
        "softirq",
        "calls"
    );
    for m in &report.measured {
        let w = m.whole();
        let (steady, with_softirq) = if m.ready {
            let si: BTreeSet<&String> = m.steady.task.iter().chain(&m.steady.softirq).collect();
            (m.steady.task.len().to_string(), si.len().to_string())
        } else {
            ("-".to_string(), "-".to_string())
        };
        let _ = writeln!(
            s,
            "{:<16} {:>9} {:>7} {:>9} {:>7} {:>13} {:>6} {:>8} {:>10}{}",
            m.name,
            m.startup.task.len(),
            steady,
            with_softirq,
            w.task.len(),
            format!("{}/{}", m.steady.syscalls.len(), w.syscalls.len()),
            w.irq.len(),
            w.softirq.len(),
            w.calls,
            if m.lost > 0 { format!("  LOST {} events", m.lost) } else { String::new() }
        );
    }
    for (g, n, pair) in pairs(report) {
        let (peer, what) = peer_count(n);
        let gs = g.steady.task.len();
        let ratio = gs as f64 / peer.max(1) as f64;
        let mut goal = format!("goal ≤ 0.25: {}", if ratio <= 0.25 { "met" } else { "missed" });
        if pair != "hello" {
            let _ = write!(goal, "; ≤ 120 functions: {}", if gs <= 120 { "met" } else { "missed" });
        }
        let _ = writeln!(
            s,
            "{pair}: guest steady {gs} / {} {what} {peer} = {ratio:.2} ({goal})",
            n.name
        );
    }
    for m in report.measured.iter().filter(|m| m.guest && m.ready) {
        let sys: Vec<&str> = m.steady.syscalls.iter().map(String::as_str).collect();
        let _ = writeln!(s, "{} steady system calls: {}", m.name, sys.join(" "));
        s.push_str(&attribution_table(&m.name, &m.steady.attribution, usize::MAX));
    }
    s
}

/// The steady state's functions by the call and device path that reached
/// them: `only` is what removing that path would save.
fn attribution_table(name: &str, a: &attrib::Attribution, limit: usize) -> String {
    let mut s = String::new();
    let rows = a.rows();
    if rows.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "{name} steady, by call and device path ({} functions, {} on more than one path):",
        a.paths.len(),
        a.shared()
    );
    let _ = writeln!(s, "  {:<40} {:>9} {:>9} {:>6}", "path", "instances", "functions", "only");
    for r in rows.iter().take(limit) {
        // A stage's instances are its call's.
        let n = if r.label.contains('→') { "-".to_string() } else { r.instances.to_string() };
        let _ = writeln!(s, "  {:<40} {:>9} {:>9} {:>6}", r.label, n, r.functions, r.only);
    }
    if rows.len() > limit {
        let _ = writeln!(s, "  ({} more paths)", rows.len() - limit);
    }
    s
}

fn report_json(report: &Report) -> Value {
    let ws: Vec<Value> = report
        .measured
        .iter()
        .map(|m| {
            let w = m.whole();
            let counts = |p: &Phase| {
                let si: BTreeSet<&String> = p.task.iter().chain(&p.softirq).collect();
                json!({
                    "functions": p.task.len(), "irq": p.irq.len(), "softirq": p.softirq.len(),
                    "functions_and_softirq": si.len(),
                    "syscalls": p.syscalls, "calls": p.calls,
                })
            };
            json!({
                "name": m.name, "slug": m.slug(), "guest": m.guest, "ready": m.ready,
                "lost_events": m.lost, "seconds": m.seconds,
                "startup": counts(&m.startup), "steady": counts(&m.steady), "whole": counts(&w),
                "steady_by_path": m.steady.by_path(),
                "steady_attribution": m.steady.attribution.rows().iter().map(|r| json!({
                    "path": r.label, "instances": r.instances,
                    "functions": r.functions, "only": r.only,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let ps: Vec<Value> = pairs(report)
        .into_iter()
        .map(|(g, n, pair)| {
            let (peer, what) = peer_count(n);
            json!({
                "pair": pair, "guest": g.name, "peer": n.name,
                "guest_steady": g.steady.task.len(), "peer_count": peer, "peer_phase": what,
                "ratio": g.steady.task.len() as f64 / peer.max(1) as f64,
            })
        })
        .collect();
    json!({
        "kernel": report.kernel,
        "mode": if report.mode == Mode::Direct { "direct" } else { "lab" },
        "workloads": ws,
        "pairs": ps,
    })
}

fn lines<'a>(set: impl IntoIterator<Item = &'a String>) -> String {
    set.into_iter().map(|f| format!("{f}\n")).collect()
}

/// Writes the table, JSON, chart and lists, and prints the table or JSON.
fn finish(common: &Common, report: &Report, out: &Path) -> Result<()> {
    for m in &report.measured {
        let d = out.join(m.slug());
        let w = m.whole();
        write(&d.join("startup.txt"), lines(&m.startup.task).as_bytes())?;
        write(&d.join("steady.txt"), lines(&m.steady.task).as_bytes())?;
        write(&d.join("whole.txt"), lines(&w.task).as_bytes())?;
        write(&d.join("irq.txt"), lines(&w.irq).as_bytes())?;
        write(&d.join("softirq.txt"), lines(&w.softirq).as_bytes())?;
        write(&d.join("syscalls-startup.txt"), lines(&m.startup.syscalls).as_bytes())?;
        write(&d.join("syscalls-steady.txt"), lines(&m.steady.syscalls).as_bytes())?;
        let paths: String =
            m.steady.first_path.iter().map(|(f, p)| format!("{f}\t{p}\n")).collect();
        write(&d.join("steady-paths.tsv"), paths.as_bytes())?;
        write(&d.join("steady-attribution.tsv"), m.steady.attribution.tsv().as_bytes())?;
        let t = attribution_table(&m.name, &m.steady.attribution, usize::MAX);
        write(&d.join("steady-attribution.txt"), t.as_bytes())?;
    }
    let text = table(report);
    let json = report_json(report);
    write(&out.join("hap.txt"), text.as_bytes())?;
    write(&out.join("hap.json"), format!("{json:#}\n").as_bytes())?;
    let bars: Vec<chart::Bar> = report
        .measured
        .iter()
        .map(|m| chart::Bar {
            label: m.name.clone(),
            steady: m.steady.task.len(),
            whole: m.whole().task.len(),
            guest: m.guest,
        })
        .collect();
    let kernel = report.kernel.split_whitespace().next().unwrap_or("");
    let svg = out.join("hap.svg");
    write(
        &svg,
        chart::svg(&format!("Horizontal Attack Profile, Linux {kernel}"), &bars).as_bytes(),
    )?;
    let mut png = chart::png(&svg, &out.join("hap.png"));
    let splits: Vec<chart::Split> = report
        .measured
        .iter()
        .filter(|m| m.guest && m.ready && !m.steady.task.is_empty())
        .map(|m| {
            let a = &m.steady.attribution;
            chart::Split {
                label: m.name.clone(),
                only: a.rows().into_iter().map(|r| (r.label, r.only)).collect(),
                shared: a.shared(),
            }
        })
        .collect();
    if !splits.is_empty() {
        let svg = out.join("hap-paths.svg");
        let title = format!("Guests' steady state by call and device path, Linux {kernel}");
        write(&svg, chart::paths_svg(&title, &splits).as_bytes())?;
        png = png.and(chart::png(&svg, &out.join("hap-paths.png")));
    }
    if common.json {
        println!("{json:#}");
    } else {
        print!("{text}");
        println!(
            "lists (one function a line, for diff): {}/<workload>/{{startup,steady,whole,irq,softirq}}.txt",
            out.display()
        );
    }
    if let Err(e) = png {
        eprintln!("nabla: hap: no PNG chart: {e}");
    }
    if !report.failures.is_empty() {
        return Err(format!(
            "{} workload(s) could not be measured:\n{}",
            report.failures.len(),
            report.failures.join("\n")
        ));
    }
    for m in &report.measured {
        if m.lost > 0 {
            return Err(format!(
                "{}: the trace lost {} events: the counts are incomplete",
                m.name, m.lost
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("hello (tender)"), "hello-tender");
        assert_eq!(slug("redis-server"), "redis-server");
        assert_eq!(slug("  x  "), "x");
    }

    #[test]
    fn plan_round_trips() {
        let plan = Plan {
            tracefs: "/sys/kernel/tracing".into(),
            buffer_kb: 4096,
            timeout_s: 60,
            log_dir: "/tmp".into(),
            setup: vec!["true".into()],
            teardown: vec!["false".into()],
            check_netns: Some("/run/netns/x".into()),
            raw: false,
            workloads: vec![Workload {
                name: "kvd (tender)".into(),
                argv: vec!["/t".into(), "".into()],
                ready: Some("10.0.0.2:6379".parse().unwrap()),
                load: Some("echo".into()),
                filter: true,
                guest: true,
            }],
        };
        assert_eq!(Plan::from_json(&plan.to_json()).unwrap(), plan);
    }

    #[test]
    fn network_keeps_clients_apart() {
        for network in [Network::Tc, Network::Bridge] {
            let setup = network_setup("/sbin/ip", "/sbin/tc", network);
            assert!(setup.contains("/sbin/ip -n nabla-hap-client addr add 10.0.0.1/24 dev veth1"));
            assert!(setup.contains("/sbin/ip addr add 10.0.1.3/24 dev veth2"));
            assert!(setup.contains("/sbin/ip -n nabla-hap-client addr add 10.0.1.1/24 dev veth3"));
            // The tap joins the veth before either is up.
            let joined = setup
                .find(if network == Network::Tc { "dev veth0 ingress" } else { "veth0 master" })
                .unwrap();
            assert!(joined < setup.find("link set tap0 up").unwrap(), "{setup}");
        }
        let tc = network_setup("/sbin/ip", "/sbin/tc", Network::Tc);
        assert!(!tc.contains("br0"), "{tc}");
        assert!(tc.contains(
            "/sbin/tc filter add dev tap0 parent ffff: protocol all u32 match u8 0 0 action \
             mirred egress redirect dev veth0"
        ));
        assert!(tc.contains("redirect dev tap0"));
        let bridge = network_setup("/sbin/ip", "/sbin/tc", Network::Bridge);
        assert!(bridge.contains("/sbin/ip link set tap0 master br0"));
        assert!(!bridge.contains("/sbin/tc"), "{bridge}");
        let load = in_client_ns("echo hi");
        assert_eq!(load, "nsenter --net=/run/netns/nabla-hap-client /bin/sh -c 'echo hi'");
    }

    #[test]
    fn results_name_failures_and_need_the_end() {
        let plan = Plan {
            tracefs: "/t".into(),
            buffer_kb: 1,
            timeout_s: 1,
            log_dir: "/tmp".into(),
            setup: vec![],
            teardown: vec![],
            check_netns: None,
            workloads: vec![],
            raw: false,
        };
        let out = Path::new("/nonexistent");
        let ok = "{\"kernel\":\"6.1.0-56-amd64\"}\r\n{\"workload\":\"w\",\"ready\":true,\
                  \"startup\":{\"task\":[\"a\",\"b\"]},\"steady\":{\"task\":[\"b\",\"c\"]}}\n\
                  {\"done\":true}\n";
        let r = parse_results(ok, &plan, Mode::Lab, out).unwrap();
        assert_eq!(r.kernel, "6.1.0-56-amd64");
        assert_eq!(r.measured[0].whole().task.len(), 3);
        let unfinished = "{\"kernel\":\"x\"}\n";
        assert!(parse_results(unfinished, &plan, Mode::Lab, out).is_err());
        let failed = "{\"failed\":\"w\",\"error\":\"w: boom\"}\n{\"done\":true}\n";
        assert_eq!(parse_results(failed, &plan, Mode::Lab, out).unwrap().failures, ["w: boom"]);
    }

    #[test]
    fn nginx_conf_stays_in_its_directory() {
        let conf = nginx_conf(Path::new("/hap/nginx"));
        assert!(conf.contains("master_process off;"));
        assert!(conf.contains("listen 10.0.1.3:80;"));
        assert!(conf.contains("root /hap/nginx/site;"));
    }
}
