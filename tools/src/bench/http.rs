//! `nabla bench http`: httpd under the tender against nginx, with wrk.
//!
//! Both servers serve the same two files, `/bench/1k.bin` and
//! `/bench/1m.bin` (1024 and 1048576 bytes of `b'a' + (i % 26)`), which
//! this benchmark writes into a temporary directory: nginx serves that
//! directory, httpd a FAT disk made of it (or, for an httpd without a
//! disk, its compiled-in copies). Before measuring, both files are fetched
//! from both servers and compared byte for byte with what they must be.
//!
//! The paths (see [`super::net`]): wrk runs in a client namespace and
//! reaches the guest over a tap, nginx over a veth into a namespace of its
//! own, with the same MTU. nginx runs as one process (`master_process off`,
//! `worker_processes 1`), the guest is single-threaded: one core each, at
//! most. nginx's configuration is the usual one for static files, tuned
//! the way nginx is tuned for them: `sendfile on` and `tcp_nopush on`
//! (zero-copy from the page cache, headers and body in full segments),
//! `open_file_cache` (no open/fstat/close per request: httpd's files are in
//! its memory), `access_log off`, and keep-alive without a request limit
//! (as httpd: nginx's default closes a connection after 1000 requests).
//!
//! Each round runs wrk once per (file, server), alternating which server
//! goes first, after a warm-up run per server; the figures are medians over
//! the rounds. The servers' CPU use (user + system time of the process,
//! from `/proc/PID/stat`, over wrk's run) shows whether a server was
//! saturated: for the tender, that includes the kernel's work on the
//! frames its guest writes into the tap.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::net::{self, Daemon, GUEST_IP, MachineCpu, NATIVE_IP, Topology};
use super::{Result, TempDir, display_command, locate, run_tool};
use crate::stats::percentile;
use crate::wrk;

/// The files, as URL path and size.
const FILES: [(&str, usize); 2] = [("/bench/1k.bin", 1024), ("/bench/1m.bin", 1024 * 1024)];

/// The port both servers listen on.
const PORT: u16 = 80;

/// Options of `nabla bench http`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds per wrk run.
    #[arg(long, value_name = "S", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=600))]
    duration: u32,

    /// Open connections (wrk -c).
    #[arg(long, value_name = "C", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    connections: u32,

    /// wrk threads (wrk -t); at most the connections.
    #[arg(long, value_name = "T", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,

    /// Measured rounds; each runs wrk once per file and server.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,

    /// Seconds of the warm-up run per server (0: none).
    #[arg(long, value_name = "S", default_value_t = 2)]
    warmup: u32,

    /// How many times a round is measured again when the host froze a vCPU
    /// (steal time, `/proc/stat`) for 50 ms or more during either server's
    /// run: both servers' runs of that round are repeated, so that a pause
    /// of the machine that wrk's latency correction turns into a p99 of
    /// tens of ms does not decide the ratio. The last attempt is kept.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    freeze_retries: u32,

    /// Only this file: `1k` or `1m` [default: both].
    #[arg(long, value_name = "FILE", value_parser = ["1k", "1m"])]
    file: Option<String>,

    /// MTU of both links (the tap and the veth).
    #[arg(long, value_name = "BYTES", default_value_t = 1500,
          value_parser = clap::value_parser!(u32).range(576..=65521))]
    mtu: u32,

    /// An environment variable for httpd, e.g. HTTPD_STATUS_PATH=/status
    /// (repeatable).
    #[arg(long = "guest-env", value_name = "KEY=VALUE")]
    guest_env: Vec<String>,

    /// The tender [default: `tender` next to this executable].
    #[arg(long, value_name = "PATH")]
    tender: Option<PathBuf>,

    /// The guest [default: `httpd` next to this executable].
    #[arg(long, value_name = "PATH")]
    guest: Option<PathBuf>,

    /// nginx [default: `nginx` in $PATH, /usr/sbin or /sbin].
    #[arg(long, value_name = "PATH")]
    nginx: Option<PathBuf>,

    /// wrk [default: `wrk` in $PATH].
    #[arg(long, value_name = "PATH")]
    wrk: Option<PathBuf>,

    /// A new connection per request: wrk sends `Connection: close`, and
    /// both servers close each connection after its response (what a
    /// connection's set-up and tear-down cost, as health checks and
    /// clients without keep-alive make them).
    #[arg(long)]
    close: bool,

    /// Prints the results as JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// How cost grows: instead of the rounds, one wrk run per file size,
    /// connection count and server (alternating which goes first), a
    /// table and a chart (`--chart-dir`/http-sweep.svg and .png).
    #[arg(long)]
    sweep: bool,

    /// --sweep: the connection counts (wrk -c).
    #[arg(long, value_name = "C,...", value_delimiter = ',', default_value = "1,8,64,512",
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    sweep_connections: Vec<u32>,

    /// --sweep: the file sizes (16, 1k, 64k, 1m: binary units).
    #[arg(long, value_name = "SIZE,...", value_delimiter = ',', default_value = "1k,64k,1m",
          value_parser = super::sweep::parse_size)]
    sweep_sizes: Vec<u64>,

    /// --sweep: seconds of each wrk run (one point of a curve).
    #[arg(long, value_name = "S", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=600))]
    point_duration: u32,

    /// --sweep: where to write the chart.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    chart_dir: PathBuf,
}

/// The two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Httpd,
    Nginx,
}

impl Server {
    const BOTH: [Server; 2] = [Server::Httpd, Server::Nginx];

    fn key(self) -> &'static str {
        match self {
            Server::Httpd => "httpd",
            Server::Nginx => "nginx",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Server::Httpd => "tender httpd (tap)",
            Server::Nginx => "nginx, 1 worker (veth)",
        }
    }

    fn addr(self) -> SocketAddrV4 {
        match self {
            Server::Httpd => SocketAddrV4::new(GUEST_IP, PORT),
            Server::Nginx => SocketAddrV4::new(NATIVE_IP, PORT),
        }
    }
}

/// The body of a benchmark file of `len` bytes, as httpd's build.rs makes it.
fn file_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// nginx's configuration: one process, static files from `dir/site`,
/// everything else (pid, logs, temporary files) under `dir`.
fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "\
# Written by `nabla bench http`.
worker_processes 1;
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=64;
    keepalive_timeout 65;
    keepalive_requests 1000000000;
    server_tokens off;
    default_type application/octet-stream;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen {NATIVE_IP}:{PORT};
        root {d}/site;
    }}
}}
"
    )
}

/// The devices an image declares, as `(name, kind)`, from the output of
/// `tender --inspect`: a `devices:` line, then one indented `NAME KIND`
/// line per device.
fn declared_devices(inspect: &str) -> Vec<(String, String)> {
    let mut lines = inspect.lines().skip_while(|l| !l.starts_with("devices:"));
    let Some(first) = lines.next() else { return Vec::new() };
    // A device may follow on the same line.
    let rest = first["devices:".len()..].trim();
    let first = (!rest.is_empty()).then_some(rest);
    first
        .into_iter()
        .chain(lines.take_while(|l| l.starts_with(char::is_whitespace)).map(str::trim))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

/// If the guest declares a block device `storage` (an httpd that serves a
/// FAT disk rather than files compiled in), makes a FAT16 disk image of
/// `dir/site` (`mkfs.fat --mbr=y`, `mcopy`, as `nabla disk create` and the
/// file-system tests do) and returns the tender's options that attach it;
/// nothing otherwise. Either way httpd serves the very files nginx serves.
fn site_disk(tender: &Path, guest: &Path, dir: &Path) -> Result<Vec<OsString>> {
    let mut inspect = Command::new(tender);
    inspect.arg("--inspect").arg(guest);
    let out = run_tool(&mut inspect, "the tender")?;
    let devices = declared_devices(&String::from_utf8_lossy(&out));
    if !devices.iter().any(|(name, kind)| name == "storage" && kind == "block") {
        return Ok(Vec::new());
    }
    let image = dir.join("site.img");
    let file = std::fs::File::create(&image)
        .map_err(|e| format!("cannot create {}: {e}", image.display()))?;
    // Room for 1 MiB and change; FAT16 needs at least about 16 MiB.
    file.set_len(32 << 20).map_err(|e| format!("{}: {e}", image.display()))?;
    drop(file);
    let mut mkfs = Command::new("mkfs.fat");
    mkfs.args(["-F", "16", "--mbr=y", "--invariant", "-n", "SITE"]).arg(&image);
    run_tool(&mut mkfs, "dosfstools")?;
    let mut mcopy = Command::new("mcopy");
    mcopy.env("MTOOLS_SKIP_CHECK", "1").args(["-s", "-m", "-Q", "-i"]).arg(&image);
    mcopy.arg(dir.join("site").join("bench")).arg("::/");
    run_tool(&mut mcopy, "mtools")?;
    let mut attach = OsString::from("storage=");
    attach.push(&image);
    Ok(vec!["--block".into(), attach])
}

/// `GET path` with `Connection: close`: the status line and the body.
fn fetch(addr: SocketAddrV4, path: &str) -> Result<(String, Vec<u8>)> {
    let what = format!("GET http://{addr}{path}");
    let err = |e: std::io::Error| format!("{what}: {e}");
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(err)?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(err)?;
    let mut response = Vec::new();
    s.read_to_end(&mut response).map_err(err)?;
    split_response(&response).ok_or_else(|| format!("{what}: malformed response"))
}

/// The status line and the body of an HTTP/1.1 response read to its end.
fn split_response(response: &[u8]) -> Option<(String, Vec<u8>)> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..end]).ok()?;
    let status = head.lines().next()?.to_string();
    Some((status, response[end + 4..].to_vec()))
}

/// One wrk run and the server's CPU use during it.
#[derive(Debug, Clone)]
struct Run {
    report: wrk::Report,
    /// Server CPU time / wall time, in cores.
    server_cpu: f64,
    /// Busy CPUs of the whole machine, in cores.
    machine_cpu: f64,
    /// wrk's CPU time (user + system) / wall time, in cores.
    client_cpu: f64,
    /// What the host took from the machine's vCPUs during the run.
    steal: net::Steal,
}

/// Runs wrk against `url` from the client namespace, at most `duration`
/// plus a margin; returns its output.
fn run_wrk(
    topo: &Topology,
    wrk_path: &Path,
    script: &Path,
    args: &Args,
    duration: u32,
    url: &str,
) -> Result<wrk::Report> {
    run_wrk_c(topo, wrk_path, script, args, args.connections, duration, url)
}

/// [`run_wrk`] with `connections` open connections.
fn run_wrk_c(
    topo: &Topology,
    wrk_path: &Path,
    script: &Path,
    args: &Args,
    connections: u32,
    duration: u32,
    url: &str,
) -> Result<wrk::Report> {
    let mut cmd = topo.client.command(wrk_path)?;
    cmd.args(["-t", &args.threads.min(connections).to_string()])
        .args(["-c", &connections.to_string()])
        .args(["-d", &format!("{duration}s")])
        .arg("--latency")
        .args(if args.close { &["-H", "Connection: close"][..] } else { &[] })
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = display_command(&cmd);
    let child = cmd.spawn().map_err(|e| format!("cannot run {shown}: {e}"))?;
    let out = wait_bounded(child, Duration::from_secs(u64::from(duration) + 30))
        .map_err(|e| format!("{shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    wrk::parse(&stdout).map_err(|e| format!("{shown}: {e}:\n{stdout}"))
}

/// Waits for `child` for at most `limit`, killing it then.
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Result<std::process::Output> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|e| e.to_string()),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {} s: killed", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Medians over the rounds for one (file, server).
#[derive(Debug, Clone, Copy)]
struct Cell {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    mib_per_sec: f64,
    server_cpu: f64,
    machine_cpu: f64,
    client_cpu: f64,
    /// CPU time per request (µs) of the server and of wrk.
    server_us: f64,
    client_us: f64,
    errors: u64,
    non_2xx: u64,
}

impl Cell {
    fn of(runs: &[Run]) -> Self {
        let median = |f: &dyn Fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            percentile(&v, 50.0)
        };
        Self {
            rps: median(&|r| r.report.requests_per_sec),
            p50_us: median(&|r| r.report.latency(50.0).unwrap_or(f64::NAN)),
            p99_us: median(&|r| r.report.latency(99.0).unwrap_or(f64::NAN)),
            p999_us: median(&|r| r.report.latency(99.9).unwrap_or(f64::NAN)),
            mib_per_sec: median(&|r| r.report.bytes_per_sec / (1024.0 * 1024.0)),
            server_cpu: median(&|r| r.server_cpu),
            machine_cpu: median(&|r| r.machine_cpu),
            client_cpu: median(&|r| r.client_cpu),
            server_us: median(&|r| r.server_cpu / r.report.requests_per_sec * 1e6),
            client_us: median(&|r| r.client_cpu / r.report.requests_per_sec * 1e6),
            errors: runs.iter().map(|r| r.report.socket_errors.total()).sum(),
            non_2xx: runs.iter().map(|r| r.report.non_2xx).sum(),
        }
    }
}

/// Runs the benchmark and prints the report.
pub fn run(args: &Args) -> Result<()> {
    let tender = locate(args.tender.as_deref(), "tender", "--tender")?;
    let guest = locate(args.guest.as_deref(), "httpd", "--guest")?;
    let nginx = net::find_program(args.nginx.as_deref(), "nginx", "nginx-light")?;
    let wrk_path = net::find_program(args.wrk.as_deref(), "wrk", "wrk")?;
    for kv in &args.guest_env {
        if !kv.contains('=') {
            return Err(format!("--guest-env {kv}: expected KEY=VALUE"));
        }
    }

    let dir = TempDir::new()?;
    for sub in ["site/bench", "tmp"] {
        net::create_dir(&dir.path().join(sub))?;
    }
    let sweep_files: Vec<(String, usize)> = if args.sweep {
        args.sweep_sizes.iter().map(|&n| (format!("/bench/sweep-{n}.bin"), n as usize)).collect()
    } else {
        Vec::new()
    };
    let all_files: Vec<(String, usize)> =
        FILES.iter().map(|&(p, n)| (p.to_string(), n)).chain(sweep_files.iter().cloned()).collect();
    for (path, len) in &all_files {
        net::write_file(&dir.path().join("site").join(&path[1..]), &file_bytes(*len))?;
    }
    let script = dir.path().join("percentiles.lua");
    net::write_file(&script, wrk::PERCENTILES_SCRIPT.as_bytes())?;
    let files: Vec<(&str, usize)> = FILES
        .into_iter()
        .filter(|(_, len)| match args.file.as_deref() {
            Some("1k") => *len == 1024,
            Some("1m") => *len == 1024 * 1024,
            _ => true,
        })
        .collect();
    let conf = dir.path().join("nginx.conf");
    net::write_file(&conf, nginx_conf(dir.path()).as_bytes())?;

    let options = site_disk(&tender, &guest, dir.path())?;
    net::warn_if_busy()?;

    let topo = Topology::new("http", args.mtu)?;
    let mut env = vec![format!("PORT={PORT}")];
    env.extend(args.guest_env.iter().cloned());
    let mut httpd = Daemon::spawn(
        "tender httpd",
        topo.tender(&tender, &guest, &env, &options)?,
        dir.path().join("httpd.log"),
    )?;
    let mut cmd = topo.native.command(&nginx)?;
    cmd.arg("-c").arg(&conf).arg("-p").arg(dir.path()).args(["-e", "stderr"]);
    let mut nginx_d = Daemon::spawn("nginx", cmd, dir.path().join("nginx.log"))?;
    httpd.wait_ready(&topo.client, Server::Httpd.addr())?;
    nginx_d.wait_ready(&topo.client, Server::Nginx.addr())?;

    // Same bytes from both, or the comparison means nothing.
    for server in Server::BOTH {
        for (path, len) in all_files.iter().map(|(p, n)| (p.as_str(), *n)) {
            let (status, body) = topo.client.run(|| fetch(server.addr(), path))??;
            if !status.starts_with("HTTP/1.1 200") {
                return Err(format!("{} {path}: {status}", server.label()));
            }
            if body != file_bytes(len) {
                return Err(format!(
                    "{} {path}: {} bytes that differ from the expected {len}",
                    server.label(),
                    body.len()
                ));
            }
        }
    }

    let url = |server: Server, path: &str| format!("http://{}{path}", server.addr());
    if args.warmup > 0 {
        for server in Server::BOTH {
            run_wrk(&topo, &wrk_path, &script, args, args.warmup, &url(server, files[0].0))?;
        }
    }

    if args.sweep {
        let servers = [(&mut httpd, Server::Httpd), (&mut nginx_d, Server::Nginx)];
        return sweep(&topo, &wrk_path, &script, args, &sweep_files, servers);
    }

    // runs[file][server]
    let mut runs: Vec<[Vec<Run>; 2]> = files.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    // Rounds measured again after a vCPU freeze, per file.
    let mut remeasured = vec![0u32; files.len()];
    for round in 0..args.rounds as usize {
        for (f, (path, _)) in files.iter().enumerate() {
            let mut attempt = 0;
            loop {
                let mut pair: [Option<Run>; 2] = [None, None];
                for k in 0..2 {
                    let s = (round + f + k) % 2;
                    let server = Server::BOTH[s];
                    let daemon = if server == Server::Httpd { &mut httpd } else { &mut nginx_d };
                    let cpu0 = daemon.cpu_seconds()?;
                    let machine0 = MachineCpu::now()?;
                    let client0 = net::children_cpu_seconds()?;
                    let watch = net::StealWatch::start();
                    let t0 = Instant::now();
                    let report = run_wrk(
                        &topo,
                        &wrk_path,
                        &script,
                        args,
                        args.duration,
                        &url(server, path),
                    )?;
                    let wall = t0.elapsed().as_secs_f64();
                    let steal = watch.finish();
                    let server_cpu = (daemon.cpu_seconds()? - cpu0) / wall;
                    let machine_cpu = MachineCpu::now()?.cores_since(&machine0);
                    let client_cpu = (net::children_cpu_seconds()? - client0) / wall;
                    daemon.check()?;
                    pair[s] = Some(Run { report, server_cpu, machine_cpu, client_cpu, steal });
                }
                let [Some(h), Some(n)] = pair else { unreachable!("both servers ran") };
                let frozen = h.steal.freezes + n.steal.freezes > 0;
                if frozen && attempt < args.freeze_retries {
                    attempt += 1;
                    remeasured[f] += 1;
                    eprintln!(
                        "nabla: bench http: round {} of {path}: the host froze a vCPU for \
                         {:.0} ms (httpd's run) / {:.0} ms (nginx's): measured again",
                        round + 1,
                        h.steal.longest_ms,
                        n.steal.longest_ms
                    );
                    continue;
                }
                runs[f][0].push(h);
                runs[f][1].push(n);
                break;
            }
        }
    }
    let cells: Vec<[Cell; 2]> = runs.iter().map(|r| [Cell::of(&r[0]), Cell::of(&r[1])]).collect();
    let spreads: Vec<Spread> = runs.iter().map(|r| Spread::of(&r[0], &r[1])).collect();

    let wrk_line = format!(
        "wrk -t {} -c {} -d {}s --latency{}",
        args.threads.min(args.connections),
        args.connections,
        args.duration,
        if args.close { " -H \"Connection: close\"" } else { "" }
    );
    if args.json {
        let cell = |c: &Cell| {
            json!({
                "requests_per_sec": round1(c.rps),
                "latency_p50_us": round1(c.p50_us),
                "latency_p99_us": round1(c.p99_us),
                "latency_p99_9_us": round1(c.p999_us),
                "transfer_mib_per_sec": round1(c.mib_per_sec),
                "server_cpu_cores": (c.server_cpu * 100.0).round() / 100.0,
                "machine_cpu_cores": (c.machine_cpu * 100.0).round() / 100.0,
                "client_cpu_cores": (c.client_cpu * 100.0).round() / 100.0,
                "server_cpu_us_per_request": round1(c.server_us),
                "client_cpu_us_per_request": round1(c.client_us),
                "socket_errors": c.errors,
                "non_2xx": c.non_2xx,
            })
        };
        let report = json!({
            "benchmark": "http",
            "wrk": wrk_line,
            "rounds": args.rounds,
            "links": topo.describe(),
            "httpd": httpd.command(),
            "nginx": nginx_d.command(),
            "nginx_conf": nginx_conf(Path::new("DIR")),
            "freeze_retries": args.freeze_retries,
            "files": files.iter().zip(&cells).zip(&spreads).zip(runs.iter().zip(&remeasured))
                .map(|((((path, len), c), sp), (r, remeasured))| json!({
                "path": path,
                "bytes": len,
                Server::Httpd.key(): cell(&c[0]),
                Server::Nginx.key(): cell(&c[1]),
                "ratio_requests_per_sec": ratio(c[0].rps, c[1].rps),
                "ratio_p99": ratio(c[0].p99_us, c[1].p99_us),
                "ratio_p99_9": ratio(c[0].p999_us, c[1].p999_us),
                "ratio_cpu_per_request":
                    ratio(c[1].server_us + c[1].client_us, c[0].server_us + c[0].client_us),
                "rounds": {
                    "ratio_requests_per_sec": sp.rps.iter().map(|&(a, b)| ratio(a, b)).collect::<Vec<_>>(),
                    "ratio_p50": sp.p50.iter().map(|&(a, b)| ratio(a, b)).collect::<Vec<_>>(),
                    "ratio_p99": sp.p99.iter().map(|&(a, b)| ratio(a, b)).collect::<Vec<_>>(),
                    "ratio_p99_9": sp.p999.iter().map(|&(a, b)| ratio(a, b)).collect::<Vec<_>>(),
                    "vcpu_freezes": r[0].iter().zip(&r[1])
                        .map(|(h, n)| [h.steal.freezes, n.steal.freezes]).collect::<Vec<_>>(),
                    "steal_ms": r[0].iter().zip(&r[1])
                        .map(|(h, n)| [round1(h.steal.total_ms), round1(n.steal.total_ms)])
                        .collect::<Vec<_>>(),
                },
                "rounds_remeasured_after_a_freeze": remeasured,
            })).collect::<Vec<_>>(),
        });
        println!("{report:#}");
        return Ok(());
    }

    println!("http: httpd under the tender against nginx, {wrk_line}");
    println!(
        "  {} rounds (servers alternate), medians; warm-up {} s per server",
        args.rounds, args.warmup
    );
    println!("  links:  {}", topo.describe());
    println!("  httpd:  {}", httpd.command());
    println!("  nginx:  {} (1 process, sendfile on)", nginx_d.command());
    println!();
    println!(
        "  {:<15} {:<24} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8} {:>10} {:>10} {:>7}",
        "file",
        "server",
        "req/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "MiB/s",
        "server",
        "wrk",
        "machine",
        "server µs/r",
        "wrk µs/r",
        "errors"
    );
    for ((path, _), c) in files.iter().zip(&cells) {
        for (server, x) in Server::BOTH.iter().zip(c) {
            println!(
                "  {:<15} {:<24} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6.0}% {:>6.0}% {:>7.0}% \
                 {:>11.1} {:>10.1} {:>7}",
                path,
                server.label(),
                x.rps,
                x.p50_us,
                x.p99_us,
                x.p999_us,
                x.mib_per_sec,
                x.server_cpu * 100.0,
                x.client_cpu * 100.0,
                x.machine_cpu * 100.0,
                x.server_us,
                x.client_us,
                x.errors + x.non_2xx
            );
        }
    }
    println!();
    println!(
        "  httpd/nginx: requests/s (higher is better), latency (lower is better); medians, \
         and in brackets the lowest and highest of the {} rounds' own ratios",
        args.rounds
    );
    for (((path, _), c), sp) in files.iter().zip(&cells).zip(&spreads) {
        println!(
            "    {:<15} requests/s {:.2}× [{}]   p50 {:.2}× [{}]   p99 {:.2}× [{}]   p99.9 {:.2}× [{}]",
            path,
            c[0].rps / c[1].rps,
            Spread::range(&sp.rps),
            c[0].p50_us / c[1].p50_us,
            Spread::range(&sp.p50),
            c[0].p99_us / c[1].p99_us,
            Spread::range(&sp.p99),
            c[0].p999_us / c[1].p999_us,
            Spread::range(&sp.p999),
        );
        println!(
            "    {:<15} CPU per request, server + wrk: nginx's / httpd's {:.2}× ({:.1} / {:.1} µs): \
             the requests/s ratio when both pairs get the same CPU",
            path,
            (c[1].server_us + c[1].client_us) / (c[0].server_us + c[0].client_us),
            c[1].server_us + c[1].client_us,
            c[0].server_us + c[0].client_us,
        );
    }
    println!(
        "  each round, httpd | nginx: req/s, CPU % of one core of the server, wrk and the \
         machine, and the vCPU time the host stole (ms; `!` if it froze a vCPU)"
    );
    for (((path, _), r), remeasured) in files.iter().zip(&runs).zip(&remeasured) {
        for (i, (h, n)) in r[0].iter().zip(&r[1]).enumerate() {
            let cpu = |x: &Run| {
                format!(
                    "{:>7.0} {:>4.0}% {:>4.0}% {:>4.0}% {:>5.0}{}",
                    x.report.requests_per_sec,
                    x.server_cpu * 100.0,
                    x.client_cpu * 100.0,
                    x.machine_cpu * 100.0,
                    x.steal.total_ms,
                    if x.steal.freezes > 0 { "!" } else { " " }
                )
            };
            println!(
                "    {:<15} {}: {} | {}   {:.2}×",
                path,
                i + 1,
                cpu(h),
                cpu(n),
                h.report.requests_per_sec / n.report.requests_per_sec
            );
        }
        if *remeasured > 0 {
            println!(
                "    {:<15} {remeasured} round(s) measured again after the host froze a vCPU \
                 (at most {} per round)",
                path, args.freeze_retries
            );
        }
    }
    println!(
        "  CPU, % of one core over wrk's run: server = the server process's user + system \
         time; wrk = wrk's; machine = all {} CPUs' busy time; µs/r = CPU time per request \
         (medians of the rounds')",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}

/// Per round, (httpd, nginx) for one file: the spread of the ratios.
#[derive(Debug, Clone, Default)]
struct Spread {
    rps: Vec<(f64, f64)>,
    p50: Vec<(f64, f64)>,
    p99: Vec<(f64, f64)>,
    p999: Vec<(f64, f64)>,
}

impl Spread {
    /// Pairs the two servers' runs of each round.
    fn of(httpd: &[Run], nginx: &[Run]) -> Self {
        let mut s = Self::default();
        for (h, n) in httpd.iter().zip(nginx) {
            let lat = |r: &Run, p| r.report.latency(p).unwrap_or(f64::NAN);
            s.rps.push((h.report.requests_per_sec, n.report.requests_per_sec));
            s.p50.push((lat(h, 50.0), lat(n, 50.0)));
            s.p99.push((lat(h, 99.0), lat(n, 99.0)));
            s.p999.push((lat(h, 99.9), lat(n, 99.9)));
        }
        s
    }

    /// `lo–hi×` of the ratios.
    fn range(pairs: &[(f64, f64)]) -> String {
        let r: Vec<f64> = pairs.iter().map(|&(a, b)| a / b).collect();
        let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.2}–{hi:.2}×")
    }
}

/// One point of a sweep: a wrk run's figures and the server's CPU.
#[derive(Debug, Clone, Copy)]
struct Point {
    rps: f64,
    p99_us: f64,
    mib_per_sec: f64,
    server_cpu: f64,
    errors: u64,
}

/// `nabla bench http --sweep`: wrk at each file size and connection count
/// against both servers, a table (or JSON) and a chart.
fn sweep(
    topo: &Topology,
    wrk_path: &Path,
    script: &Path,
    args: &Args,
    files: &[(String, usize)],
    mut servers: [(&mut Daemon, Server); 2],
) -> Result<()> {
    let url = |server: Server, path: &str| format!("http://{}{path}", server.addr());
    // points[file][connections][server]
    let mut points = vec![vec![[None::<Point>; 2]; args.sweep_connections.len()]; files.len()];
    let mut turn = 0;
    for (f, (path, _)) in files.iter().enumerate() {
        for (c, &conns) in args.sweep_connections.iter().enumerate() {
            for k in 0..2 {
                let s = (turn + k) % 2;
                let (daemon, server) = &mut servers[s];
                let cpu0 = daemon.cpu_seconds()?;
                let t0 = Instant::now();
                let report = run_wrk_c(
                    topo,
                    wrk_path,
                    script,
                    args,
                    conns,
                    args.point_duration,
                    &url(*server, path),
                )?;
                let wall = t0.elapsed().as_secs_f64();
                let server_cpu = (daemon.cpu_seconds()? - cpu0) / wall;
                daemon.check()?;
                points[f][c][s] = Some(Point {
                    rps: report.requests_per_sec,
                    p99_us: report.latency(99.0).unwrap_or(f64::NAN),
                    mib_per_sec: report.bytes_per_sec / (1024.0 * 1024.0),
                    server_cpu,
                    errors: report.socket_errors.total() + report.non_2xx,
                });
            }
            turn += 1;
        }
    }
    let get = |f: usize, c: usize, s: usize| points[f][c][s].expect("every point measured");
    let size = |f: usize| super::sweep::size_text(files[f].1 as u64);
    let xs: Vec<String> = args.sweep_connections.iter().map(u32::to_string).collect();
    let series = |metric: &dyn Fn(&Point) -> f64| {
        let mut v = Vec::new();
        for (s, server) in Server::BOTH.iter().enumerate() {
            for f in 0..files.len() {
                v.push(super::sweep::Series {
                    name: format!("{} {}", server.key(), size(f)),
                    guest: *server == Server::Httpd,
                    style: f,
                    ys: (0..xs.len()).map(|c| metric(&get(f, c, s))).collect(),
                });
            }
        }
        v
    };
    let panel = |title: &str, y: &str, metric: &dyn Fn(&Point) -> f64| super::sweep::Panel {
        title: title.into(),
        x_label: "connections (wrk -c)".into(),
        xs: xs.clone(),
        y_label: y.into(),
        series: series(metric),
    };
    let panels = [
        panel("requests/s", "requests/s", &|p| p.rps),
        panel("p99 latency", "p99 latency, ms", &|p| p.p99_us / 1000.0),
        panel("server CPU", "server CPU, % of a core", &|p| p.server_cpu * 100.0),
    ];
    let subtitle = format!(
        "wrk -t {} -d {}s per point, one run; httpd under the tender (tap) vs nginx, 1 worker (veth)",
        args.threads, args.point_duration
    );
    let svg = super::sweep::svg("nabla bench http --sweep", &subtitle, &panels);
    let wrote = super::sweep::write_chart(&args.chart_dir, "http-sweep", &svg)?;
    if args.json {
        let rows: Vec<serde_json::Value> = (0..files.len())
            .flat_map(|f| {
                args.sweep_connections.iter().enumerate().map(move |(c, &conns)| (f, c, conns))
            })
            .map(|(f, c, conns)| {
                let (h, n) = (get(f, c, 0), get(f, c, 1));
                json!({
                    "bytes": files[f].1, "connections": conns,
                    "httpd": {"requests_per_sec": round1(h.rps), "latency_p99_us": round1(h.p99_us),
                              "transfer_mib_per_sec": round1(h.mib_per_sec),
                              "server_cpu_cores": (h.server_cpu * 100.0).round() / 100.0, "errors": h.errors},
                    "nginx": {"requests_per_sec": round1(n.rps), "latency_p99_us": round1(n.p99_us),
                              "transfer_mib_per_sec": round1(n.mib_per_sec),
                              "server_cpu_cores": (n.server_cpu * 100.0).round() / 100.0, "errors": n.errors},
                    "ratio_requests_per_sec": ratio(h.rps, n.rps),
                    "ratio_p99": ratio(h.p99_us, n.p99_us),
                })
            })
            .collect();
        println!(
            "{:#}",
            json!({ "benchmark": "http sweep", "subtitle": subtitle, "points": rows, "charts": wrote })
        );
        return Ok(());
    }
    println!("http sweep: httpd under the tender against nginx; {subtitle}");
    println!(
        "  {:>8} {:>6} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7} {:>6} {:>6} {:>10}",
        "file",
        "conns",
        "httpd r/s",
        "nginx r/s",
        "ratio",
        "httpd p99",
        "nginx p99",
        "ratio",
        "cpu h",
        "cpu n",
        "errors h/n"
    );
    for f in 0..files.len() {
        for (c, conns) in args.sweep_connections.iter().enumerate() {
            let (h, n) = (get(f, c, 0), get(f, c, 1));
            println!(
                "  {:>8} {:>6} {:>10.0} {:>10.0} {:>6.2}× {:>8.0}µs {:>8.0}µs {:>6.2}× {:>5.0}% {:>5.0}% {:>10}",
                size(f),
                conns,
                h.rps,
                n.rps,
                h.rps / n.rps,
                h.p99_us,
                n.p99_us,
                h.p99_us / n.p99_us,
                h.server_cpu * 100.0,
                n.server_cpu * 100.0,
                format!("{}/{}", h.errors, n.errors)
            );
        }
    }
    println!("  ratio: httpd / nginx (requests/s: higher is better; p99: lower is better)");
    println!("  chart: {}", wrote.join(", "));
    Ok(())
}

fn ratio(a: f64, b: f64) -> f64 {
    (a / b * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_match_httpds_pattern() {
        let b = file_bytes(30);
        assert_eq!(&b[..], b"abcdefghijklmnopqrstuvwxyzabcd");
        assert_eq!(file_bytes(1024).len(), 1024);
    }

    #[test]
    fn responses_split_at_the_blank_line() {
        let (status, body) =
            split_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"abc");
        let (_, body) = split_response(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap();
        assert!(body.is_empty());
        assert!(split_response(b"HTTP/1.1 200 OK\r\n").is_none());
    }

    #[test]
    fn devices_from_inspect() {
        let inspect = "\
image:       target/release/httpd
entry:       0x100000
devices:     
  service0         net
  storage          block
memory:      64 MiB
  boot   0x00010000-0x00100000
";
        assert_eq!(
            declared_devices(inspect),
            [("service0".into(), "net".into()), ("storage".into(), "block".into())]
        );
        let one = "devices:     service0 net\nmemory:      64 MiB\n";
        assert_eq!(declared_devices(one), [("service0".into(), "net".into())]);
        assert!(declared_devices("devices:\nmemory: 64 MiB\n").is_empty());
        assert!(declared_devices("image: x\n").is_empty());
    }

    #[test]
    fn nginx_conf_keeps_everything_in_its_directory() {
        let conf = nginx_conf(Path::new("/tmp/x"));
        assert!(conf.contains("master_process off;"));
        assert!(conf.contains("worker_processes 1;"));
        assert!(conf.contains("listen 10.0.1.2:80;"));
        assert!(conf.contains("root /tmp/x/site;"));
        // Every absolute path is under the directory.
        for word in conf.split_whitespace().filter(|w| w.starts_with('/')) {
            assert!(word.starts_with("/tmp/x/"), "{word}");
        }
    }
}
