//! `nabla bench kvd`: kvd under the tender against redis-server, with
//! redis-benchmark.
//!
//! The paths are those of `nabla bench http` (see [`super::net`]):
//! redis-benchmark runs in a client namespace and reaches kvd over a tap,
//! redis-server over a veth into a namespace of its own, with the same MTU.
//!
//! Persistence is matched: both log every write, with the same
//! `appendfsync` policy (`everysec` by default, as both default to), to a
//! file in the same temporary directory: redis-server with
//! `--appendonly yes --appendfsync P --save ''` (its AOF, no RDB
//! snapshots), kvd with `KVD_APPENDFSYNC=P` on a zeroed 1 GiB disk file.
//! redis-server is one process with its default single I/O thread; kvd is
//! single-threaded.
//!
//! Both servers get the same scheduling policy (`--sched`, default
//! `normal`, as a user starts them; `batch`: `SCHED_BATCH`, kvd through
//! `tender --sched batch`, redis-server set before its `exec`);
//! redis-benchmark keeps the default and neither side is pinned. The
//! kernel puts the client and the server it wakes on one CPU, and under
//! the default policy a woken kvd preempts the client at each request
//! (docs/performance.md, "kvd `SET` at `-P 1`: who preempts whom").
//!
//! Each round runs `redis-benchmark -t set,get -c C -n N -r R -d D` once
//! per server without pipelining and once with `-P 16`, alternating which
//! server goes first, after a warm-up run per server; the figures are
//! medians over the rounds. Before measuring, a key is written and read back
//! on both servers.

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use super::net::{self, Daemon, GUEST_IP, MachineCpu, NATIVE_IP, Topology};
use super::{Result, TempDir, display_command, locate};
use crate::stats::percentile;

/// The port both servers listen on.
const PORT: u16 = 6379;

/// The commands measured, as redis-benchmark names them.
const TESTS: [&str; 2] = ["SET", "GET"];

/// Options of `nabla bench kvd`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Requests per redis-benchmark test (-n).
    #[arg(long, value_name = "N", default_value_t = 200_000,
          value_parser = clap::value_parser!(u32).range(1000..))]
    requests: u32,

    /// Parallel connections (-c).
    #[arg(long, value_name = "C", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    clients: u32,

    /// Commands per pipeline in the pipelined runs (-P).
    #[arg(long, value_name = "P", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(2..=10000))]
    pipeline: u32,

    /// Random keys out of this many (-r; 0: one key).
    #[arg(long, value_name = "R", default_value_t = 100_000)]
    keyspace: u32,

    /// Value size in bytes (-d).
    #[arg(long, value_name = "BYTES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    data_size: u32,

    /// The appendfsync policy of both servers: always, everysec or no.
    #[arg(long, value_name = "POLICY", default_value = "everysec",
          value_parser = ["always", "everysec", "no"])]
    appendfsync: String,

    /// Measured rounds.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,

    /// Skip the warm-up run per server.
    #[arg(long)]
    no_warmup: bool,

    /// MTU of both links (the tap and the veth).
    #[arg(long, value_name = "BYTES", default_value_t = 1500,
          value_parser = clap::value_parser!(u32).range(576..=65521))]
    mtu: u32,

    /// The scheduling policy of both servers: `batch` (SCHED_BATCH: kvd
    /// with `tender --sched batch`, redis-server as `chrt -b 0` would) or
    /// `normal` (as started). Both share their CPU with redis-benchmark
    /// (the kernel places a client and the server it wakes together), and
    /// under `normal` a woken kvd preempts the client at each request.
    #[arg(long, value_name = "POLICY", default_value = "normal",
          value_parser = ["batch", "normal"])]
    sched: String,

    /// Guest memory for kvd, MiB (tender --mem).
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    mem: u32,

    /// The tender [default: `tender` next to this executable].
    #[arg(long, value_name = "PATH")]
    tender: Option<PathBuf>,

    /// The guest [default: `kvd` next to this executable].
    #[arg(long, value_name = "PATH")]
    guest: Option<PathBuf>,

    /// redis-server [default: in $PATH, /usr/sbin or /sbin].
    #[arg(long, value_name = "PATH")]
    redis_server: Option<PathBuf>,

    /// redis-benchmark [default: in $PATH].
    #[arg(long, value_name = "PATH")]
    redis_benchmark: Option<PathBuf>,

    /// Prints the results as JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// How cost grows: instead of the rounds, one redis-benchmark run per
    /// value size, pipelining depth and server (alternating which goes
    /// first), a table and a chart (`--chart-dir`/kvd-sweep.svg and .png).
    #[arg(long)]
    sweep: bool,

    /// --sweep: the pipelining depths (-P).
    #[arg(long, value_name = "P,...", value_delimiter = ',', default_value = "1,4,16,64",
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    sweep_pipelines: Vec<u32>,

    /// --sweep: the value sizes (-d; 16, 1k, 16k: binary units, at most 1m).
    #[arg(long, value_name = "SIZE,...", value_delimiter = ',', default_value = "16,1k,16k",
          value_parser = super::sweep::parse_size)]
    sweep_sizes: Vec<u64>,

    /// --sweep: requests per redis-benchmark run (one point of a curve).
    #[arg(long, value_name = "N", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(100..))]
    point_requests: u32,

    /// --sweep: where to write the chart.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    chart_dir: PathBuf,
}

/// The two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Kvd,
    Redis,
}

impl Server {
    const BOTH: [Server; 2] = [Server::Kvd, Server::Redis];

    fn key(self) -> &'static str {
        match self {
            Server::Kvd => "kvd",
            Server::Redis => "redis",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Server::Kvd => "tender kvd (tap)",
            Server::Redis => "redis-server (veth)",
        }
    }

    fn addr(self) -> SocketAddrV4 {
        match self {
            Server::Kvd => SocketAddrV4::new(GUEST_IP, PORT),
            Server::Redis => SocketAddrV4::new(NATIVE_IP, PORT),
        }
    }
}

/// One line of `redis-benchmark --csv`: the test and its figures.
#[derive(Debug, Clone, PartialEq)]
struct Result1 {
    test: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Parses `redis-benchmark --csv` output (7.x):
/// `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
/// "p95_latency_ms","p99_latency_ms","max_latency_ms"`, a header line then
/// one line per test.
fn parse_csv(out: &str) -> std::result::Result<Vec<Result1>, String> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("no output")?;
    let names: Vec<String> = header.split(',').map(|f| f.trim_matches('"').to_string()).collect();
    let col = |name: &str| {
        names.iter().position(|n| n == name).ok_or_else(|| format!("no column {name} in {header}"))
    };
    let (rps, p50, p99) = (col("rps")?, col("p50_latency_ms")?, col("p99_latency_ms")?);
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(|f| f.trim_matches('"')).collect();
            let num = |i: usize| {
                f.get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| format!("malformed line {l:?}"))
            };
            Ok(Result1 {
                test: f[0].to_string(),
                rps: num(rps)?,
                p50_ms: num(p50)?,
                p99_ms: num(p99)?,
            })
        })
        .collect()
}

/// One redis-benchmark run against one server and its CPU use.
#[derive(Debug, Clone)]
struct Run {
    results: Vec<Result1>,
    server_cpu: f64,
    machine_cpu: f64,
}

/// Runs redis-benchmark against `server` from the client namespace.
fn run_benchmark(
    topo: &Topology,
    program: &Path,
    args: &Args,
    server: Server,
    pipeline: u32,
    requests: u32,
) -> Result<Vec<Result1>> {
    run_benchmark_d(topo, program, args, server, pipeline, requests, u64::from(args.data_size))
}

/// [`run_benchmark`] with values of `data_size` bytes.
fn run_benchmark_d(
    topo: &Topology,
    program: &Path,
    args: &Args,
    server: Server,
    pipeline: u32,
    requests: u32,
    data_size: u64,
) -> Result<Vec<Result1>> {
    let mut cmd = topo.client.command(program)?;
    cmd.args(["-h", &server.addr().ip().to_string(), "-p", &PORT.to_string()])
        .args(["-t", "set,get", "-c", &args.clients.to_string(), "-n", &requests.to_string()])
        .args(["-d", &data_size.to_string(), "-P", &pipeline.to_string(), "--csv"]);
    if args.keyspace > 0 {
        cmd.args(["-r", &args.keyspace.to_string()]);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let shown = display_command(&cmd);
    let child = cmd.spawn().map_err(|e| format!("cannot run {shown}: {e}"))?;
    let out = wait_bounded(child, Duration::from_secs(600)).map_err(|e| format!("{shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stdout.contains("ERR") || stderr.to_lowercase().contains("error") {
        return Err(format!("{shown} failed ({}):\n{stdout}{stderr}", out.status));
    }
    let results = parse_csv(&stdout).map_err(|e| format!("{shown}: {e}:\n{stdout}"))?;
    for t in TESTS {
        if !results.iter().any(|r| r.test == t) {
            return Err(format!("{shown}: no {t} result:\n{stdout}"));
        }
    }
    Ok(results)
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

/// Sends RESP `request` to `addr` and reads `reply_len` bytes back.
fn exchange(addr: SocketAddrV4, request: &[u8], reply_len: usize) -> Result<Vec<u8>> {
    let err = |e: std::io::Error| format!("{addr}: {e}");
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(err)?;
    s.write_all(request).map_err(err)?;
    let mut reply = vec![0u8; reply_len];
    s.read_exact(&mut reply).map_err(err)?;
    Ok(reply)
}

/// Medians over the rounds for one (test, pipelining, server).
#[derive(Debug, Clone, Copy)]
struct Cell {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu: f64,
    machine_cpu: f64,
}

impl Cell {
    fn of(runs: &[Run], test: &str) -> Self {
        let median = |f: &dyn Fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            percentile(&v, 50.0)
        };
        let get = |r: &Run| r.results.iter().find(|x| x.test == test).cloned();
        Self {
            rps: median(&|r| get(r).map_or(f64::NAN, |x| x.rps)),
            p50_ms: median(&|r| get(r).map_or(f64::NAN, |x| x.p50_ms)),
            p99_ms: median(&|r| get(r).map_or(f64::NAN, |x| x.p99_ms)),
            server_cpu: median(&|r| r.server_cpu),
            machine_cpu: median(&|r| r.machine_cpu),
        }
    }
}

/// redis-server's command line: AOF with `appendfsync`, no RDB, everything
/// in `dir`.
fn redis_command(
    topo: &Topology,
    program: &Path,
    dir: &Path,
    fsync: &str,
    sched: &str,
) -> Result<std::process::Command> {
    let mut cmd = topo.native.command(program)?;
    if sched == "batch" {
        net::sched_batch(&mut cmd);
    }
    cmd.args(["--port", &PORT.to_string(), "--bind", &NATIVE_IP.to_string()])
        .args(["--protected-mode", "no", "--daemonize", "no", "--save", ""])
        .args(["--appendonly", "yes", "--appendfsync", fsync, "--databases", "1"])
        .arg("--dir")
        .arg(dir);
    Ok(cmd)
}

/// Runs the benchmark and prints the report.
pub fn run(args: &Args) -> Result<()> {
    let tender = locate(args.tender.as_deref(), "tender", "--tender")?;
    let guest = locate(args.guest.as_deref(), "kvd", "--guest")?;
    let redis = net::find_program(args.redis_server.as_deref(), "redis-server", "redis-server")?;
    let bench =
        net::find_program(args.redis_benchmark.as_deref(), "redis-benchmark", "redis-tools")?;

    let dir = TempDir::new()?;
    let redis_dir = dir.path().join("redis");
    net::create_dir(&redis_dir)?;
    let disk = dir.path().join("kvd.img");
    let file = std::fs::File::create(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    file.set_len(1 << 30).map_err(|e| format!("{}: {e}", disk.display()))?;
    net::warn_if_busy()?;

    let topo = Topology::new("kvd", args.mtu)?;
    let mut options = vec!["--sched".into(), args.sched.clone().into()];
    options.extend(["--mem".into(), args.mem.to_string().into(), "--block".into()]);
    let mut attach = std::ffi::OsString::from("storage=");
    attach.push(&disk);
    options.push(attach);
    let env = [format!("KVD_APPENDFSYNC={}", args.appendfsync)];
    let mut kvd = Daemon::spawn(
        "tender kvd",
        topo.tender(&tender, &guest, &env, &options)?,
        dir.path().join("kvd.log"),
    )?;
    let mut redis_d = Daemon::spawn(
        "redis-server",
        redis_command(&topo, &redis, &redis_dir, &args.appendfsync, &args.sched)?,
        dir.path().join("redis.log"),
    )?;
    kvd.wait_ready(&topo.client, Server::Kvd.addr())?;
    redis_d.wait_ready(&topo.client, Server::Redis.addr())?;

    // Both answer, with the same bytes.
    for server in Server::BOTH {
        let set =
            b"*3\r\n$3\r\nSET\r\n$5\r\nnabla\r\n$5\r\nbench\r\n*2\r\n$3\r\nGET\r\n$5\r\nnabla\r\n";
        let reply = topo.client.run(|| exchange(server.addr(), set, 16))??;
        if reply != b"+OK\r\n$5\r\nbench\r\n" {
            return Err(format!(
                "{}: SET/GET answered {:?}",
                server.label(),
                String::from_utf8_lossy(&reply)
            ));
        }
    }

    if args.sweep {
        if let Some(&big) = args.sweep_sizes.iter().find(|&&d| d > 1 << 20) {
            return Err(format!("--sweep-sizes: {big} bytes is more than redis-benchmark's 1 MiB"));
        }
        let servers = [(&mut kvd, Server::Kvd), (&mut redis_d, Server::Redis)];
        return sweep(&topo, &bench, args, servers);
    }

    let pipelines = [1, args.pipeline];
    if !args.no_warmup {
        for server in Server::BOTH {
            run_benchmark(&topo, &bench, args, server, args.pipeline, args.requests / 4)?;
        }
    }
    // runs[pipelining][server]
    let mut runs: Vec<[Vec<Run>; 2]> = pipelines.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 0..args.rounds as usize {
        for (p, &pipeline) in pipelines.iter().enumerate() {
            for k in 0..2 {
                let s = (round + p + k) % 2;
                let server = Server::BOTH[s];
                let daemon = if server == Server::Kvd { &mut kvd } else { &mut redis_d };
                let cpu0 = daemon.cpu_seconds()?;
                let machine0 = MachineCpu::now()?;
                let t0 = Instant::now();
                let results = run_benchmark(&topo, &bench, args, server, pipeline, args.requests)?;
                let wall = t0.elapsed().as_secs_f64();
                let server_cpu = (daemon.cpu_seconds()? - cpu0) / wall;
                let machine_cpu = MachineCpu::now()?.cores_since(&machine0);
                daemon.check()?;
                runs[p][s].push(Run { results, server_cpu, machine_cpu });
            }
        }
    }

    // cells[pipelining][test][server]
    let cells: Vec<Vec<[Cell; 2]>> = runs
        .iter()
        .map(|r| TESTS.iter().map(|t| [Cell::of(&r[0], t), Cell::of(&r[1], t)]).collect())
        .collect();
    let command = |pipeline: u32| {
        let mut c = format!(
            "redis-benchmark -t set,get -c {} -n {} -d {} -P {pipeline} --csv",
            args.clients, args.requests, args.data_size
        );
        if args.keyspace > 0 {
            c.push_str(&format!(" -r {}", args.keyspace));
        }
        c
    };
    if args.json {
        let cell = |c: &Cell| {
            json!({
                "requests_per_sec": round1(c.rps),
                "latency_p50_ms": round3(c.p50_ms),
                "latency_p99_ms": round3(c.p99_ms),
                "server_cpu_cores": round3(c.server_cpu),
                "machine_cpu_cores": round3(c.machine_cpu),
            })
        };
        let mut results = Vec::new();
        for (p, &pipeline) in pipelines.iter().enumerate() {
            for (t, test) in TESTS.iter().enumerate() {
                let c = &cells[p][t];
                results.push(json!({
                    "test": test,
                    "pipeline": pipeline,
                    Server::Kvd.key(): cell(&c[0]),
                    Server::Redis.key(): cell(&c[1]),
                    "kvd_over_redis_rps": ratio(c[0].rps, c[1].rps),
                }));
            }
        }
        let out = json!({
            "benchmark": "kvd",
            "appendfsync": args.appendfsync,
            "sched": args.sched,
            "rounds": args.rounds,
            "commands": pipelines.iter().map(|&p| command(p)).collect::<Vec<_>>(),
            "mtu": topo.mtu,
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!(
        "kvd (tender, tap) against redis-server (veth), appendonly with appendfsync {} on both, \
         medians of {} rounds",
        args.appendfsync, args.rounds
    );
    println!("  client: {} (and -P 1)", command(args.pipeline));
    println!("  links:  {}", topo.describe());
    println!("  kvd:    {}", kvd.command());
    println!("  redis:  {}", redis_d.command());
    println!("  sched:  {} for both servers (--sched)", args.sched);
    println!();
    println!(
        "  {:<5} {:>8} {:<22} {:>11} {:>9} {:>9} {:>7} {:>8}",
        "test", "pipeline", "server", "ops/s", "p50 ms", "p99 ms", "server", "machine"
    );
    for (p, &pipeline) in pipelines.iter().enumerate() {
        for (t, test) in TESTS.iter().enumerate() {
            for (server, c) in Server::BOTH.iter().zip(&cells[p][t]) {
                println!(
                    "  {:<5} {:>8} {:<22} {:>11.0} {:>9.3} {:>9.3} {:>6.0}% {:>7.0}%",
                    test,
                    pipeline,
                    server.label(),
                    c.rps,
                    c.p50_ms,
                    c.p99_ms,
                    c.server_cpu * 100.0,
                    c.machine_cpu * 100.0
                );
            }
        }
    }
    println!();
    println!("  kvd/redis-server: ops/s (higher is better; the goal is at least 1.0×)");
    for (p, &pipeline) in pipelines.iter().enumerate() {
        for (t, test) in TESTS.iter().enumerate() {
            let c = &cells[p][t];
            println!("    {test:<4} -P {pipeline:<3} {:.2}×", c[0].rps / c[1].rps);
        }
    }
    println!(
        "  CPU, % of one core over the run: server = the server process's user + system time; \
         machine = all {} CPUs' busy time",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}

/// `nabla bench kvd --sweep`: redis-benchmark at each value size and
/// pipelining depth against both servers, a table (or JSON) and a chart.
fn sweep(
    topo: &Topology,
    bench: &Path,
    args: &Args,
    mut servers: [(&mut Daemon, Server); 2],
) -> Result<()> {
    let sizes = &args.sweep_sizes;
    let depths = &args.sweep_pipelines;
    // points[size][depth][server]: (results, server CPU in cores)
    let mut points = vec![vec![[None::<(Vec<Result1>, f64)>, None]; depths.len()]; sizes.len()];
    let mut turn = 0;
    let mut failed = Vec::new();
    for (d, &size) in sizes.iter().enumerate() {
        for (p, &depth) in depths.iter().enumerate() {
            for k in 0..2 {
                let s = (turn + k) % 2;
                let (daemon, server) = &mut servers[s];
                let cpu0 = daemon.cpu_seconds()?;
                let t0 = Instant::now();
                // A point the server refuses (kvd resets a connection whose
                // pipeline outgrows its buffers) is a gap in the curve, not
                // the end of the sweep; a server that died is.
                let results =
                    run_benchmark_d(topo, bench, args, *server, depth, args.point_requests, size);
                let cpu = (daemon.cpu_seconds()? - cpu0) / t0.elapsed().as_secs_f64();
                daemon.check()?;
                let results = results.unwrap_or_else(|e| {
                    let first = e.lines().last().unwrap_or("").to_string();
                    failed.push(format!(
                        "{} {} -P {depth}: {first}",
                        server.key(),
                        super::sweep::size_text(size)
                    ));
                    Vec::new()
                });
                points[d][p][s] = Some((results, cpu));
            }
            turn += 1;
        }
    }
    let get = |d: usize, p: usize, s: usize, test: &str| -> (f64, f64, f64) {
        let (results, cpu) = points[d][p][s].as_ref().expect("every point measured");
        let r = results.iter().find(|r| r.test == test);
        (r.map_or(f64::NAN, |r| r.rps), r.map_or(f64::NAN, |r| r.p99_ms), *cpu)
    };
    let size = |d: usize| super::sweep::size_text(sizes[d]);
    let xs: Vec<String> = depths.iter().map(u32::to_string).collect();
    let panel = |title: &str, y: &str, metric: &dyn Fn(usize, usize, usize) -> f64| {
        let mut series = Vec::new();
        for (s, server) in Server::BOTH.iter().enumerate() {
            for d in 0..sizes.len() {
                series.push(super::sweep::Series {
                    name: format!("{} {}", if s == 0 { "kvd" } else { "redis-server" }, size(d)),
                    guest: *server == Server::Kvd,
                    style: d,
                    ys: (0..depths.len()).map(|p| metric(d, p, s)).collect(),
                });
            }
        }
        super::sweep::Panel {
            title: title.into(),
            x_label: "pipelining (redis-benchmark -P)".into(),
            xs: xs.clone(),
            y_label: y.into(),
            series,
        }
    };
    let panels = [
        panel("SET operations/s", "operations/s", &|d, p, s| get(d, p, s, "SET").0),
        panel("GET operations/s", "operations/s", &|d, p, s| get(d, p, s, "GET").0),
        panel("SET p99 latency", "p99 latency, ms", &|d, p, s| get(d, p, s, "SET").1),
    ];
    let subtitle = format!(
        "redis-benchmark -t set,get -c {} -n {} per point, one run; appendfsync {} on both; kvd under the tender (tap) vs redis-server (veth)",
        args.clients, args.point_requests, args.appendfsync
    );
    let svg = super::sweep::svg("nabla bench kvd --sweep", &subtitle, &panels);
    let wrote = super::sweep::write_chart(&args.chart_dir, "kvd-sweep", &svg)?;
    let mut rows = Vec::new();
    for d in 0..sizes.len() {
        for (p, &depth) in depths.iter().enumerate() {
            for test in TESTS {
                let (k, r) = (get(d, p, 0, test), get(d, p, 1, test));
                rows.push((d, depth, test, k, r));
            }
        }
    }
    if args.json {
        let points: Vec<serde_json::Value> = rows
            .iter()
            .map(|&(d, depth, test, k, r)| {
                json!({
                    "test": test, "value_bytes": sizes[d], "pipeline": depth,
                    "kvd": {"requests_per_sec": round1(k.0), "latency_p99_ms": round3(k.1),
                            "server_cpu_cores": round3(k.2)},
                    "redis": {"requests_per_sec": round1(r.0), "latency_p99_ms": round3(r.1),
                              "server_cpu_cores": round3(r.2)},
                    "kvd_over_redis_rps": ratio(k.0, r.0),
                })
            })
            .collect();
        let out = json!({ "benchmark": "kvd sweep", "subtitle": subtitle, "points": points,
                          "failed": failed, "charts": wrote });
        println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("kvd sweep: {subtitle}");
    println!(
        "  {:<4} {:>7} {:>4} {:>11} {:>11} {:>7} {:>9} {:>9} {:>6} {:>6}",
        "test",
        "value",
        "-P",
        "kvd ops/s",
        "redis ops/s",
        "ratio",
        "kvd p99",
        "redis p99",
        "cpu k",
        "cpu r"
    );
    for (d, depth, test, k, r) in rows {
        println!(
            "  {:<4} {:>7} {:>4} {:>11.0} {:>11.0} {:>6.2}× {:>7.3}ms {:>7.3}ms {:>5.0}% {:>5.0}%",
            test,
            size(d),
            depth,
            k.0,
            r.0,
            k.0 / r.0,
            k.1,
            r.1,
            k.2 * 100.0,
            r.2 * 100.0
        );
    }
    println!("  ratio: kvd / redis-server operations/s (higher is better)");
    for f in &failed {
        println!("  failed (a gap in the curve): {f}");
    }
    println!("  chart: {}", wrote.join(", "));
    Ok(())
}

fn ratio(a: f64, b: f64) -> f64 {
    (a / b * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_of_redis_benchmark_7() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"SET\",\"98039.22\",\"0.290\",\"0.080\",\"0.279\",\"0.399\",\"0.559\",\"1.639\"\n\
                   \"GET\",\"100000.00\",\"0.280\",\"0.072\",\"0.271\",\"0.383\",\"0.503\",\"0.991\"\n";
        let r = parse_csv(out).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            Result1 { test: "SET".into(), rps: 98039.22, p50_ms: 0.279, p99_ms: 0.559 }
        );
        assert_eq!(r[1].test, "GET");
        assert!(parse_csv("").is_err());
        assert!(parse_csv("\"test\",\"x\"\n").is_err());
    }
}
