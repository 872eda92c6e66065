//! `nabla bench tcp`: bulk TCP throughput, one protocol, two stacks.
//!
//! The server is `tcpperf` (see `examples/tcpperf`) under the tender on
//! one side, and the same protocol served natively on the other: a thread
//! of this process inside the native namespace ([`crate::tcpperf`]), behind
//! a veth. The client is a thread of this process inside the client
//! namespace (see [`super::net`] for the paths). Both directions:
//!
//! * download (`S`, server → client): the client asks for N bytes and
//!   reads to end of stream; timed from the request to the end of stream.
//! * upload (`R`, client → server): the client sends N bytes and closes its
//!   side; timed from the first byte to the server's count, which the
//!   server sends once it has read everything.
//!
//! Each round transfers N bytes once per (direction, server), alternating
//! which server goes first, after a warm-up transfer of 1/16 of N per
//! direction and server; the figures are medians over the rounds. The
//! tender's CPU use over each transfer is reported too (user + system time
//! from `/proc/PID/stat`, which includes the kernel's work on the frames
//! its guest writes into the tap).
//!
//! Socket buffers: the guest's are 256 KiB each way (tcpperf's default;
//! `--guest-env TCPPERF_RX_KIB=...` and friends change them); the native
//! server's and the client's are Linux's defaults, autotuned.

use std::net::{SocketAddr, SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use super::net::{self, Daemon, GUEST_IP, MachineCpu, NATIVE_IP, Topology};
use super::{Result, TempDir, locate};
use crate::stats::percentile;
use crate::tcpperf;

/// The port of both servers.
const PORT: u16 = 5201;

/// No progress for this long fails a transfer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of `nabla bench tcp`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bytes per transfer, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    size: u64,

    /// Measured rounds; each transfers once per direction and server.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,

    /// MTU of both links (the tap and the veth).
    #[arg(long, value_name = "BYTES", default_value_t = 1500,
          value_parser = clap::value_parser!(u32).range(576..=65521))]
    mtu: u32,

    /// An environment variable for the guest, e.g. TCPPERF_RX_KIB=512
    /// (repeatable).
    #[arg(long = "guest-env", value_name = "KEY=VALUE")]
    guest_env: Vec<String>,

    /// The tender [default: `tender` next to this executable].
    #[arg(long, value_name = "PATH")]
    tender: Option<PathBuf>,

    /// The guest [default: `tcpperf` next to this executable].
    #[arg(long, value_name = "PATH")]
    guest: Option<PathBuf>,

    /// Prints the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The two directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Download,
    Upload,
}

impl Direction {
    const BOTH: [Direction; 2] = [Direction::Download, Direction::Upload];

    fn key(self) -> &'static str {
        match self {
            Direction::Download => "server_to_client",
            Direction::Upload => "client_to_server",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Direction::Download => "server → client (S)",
            Direction::Upload => "client → server (R)",
        }
    }

    fn transfer(self, addr: SocketAddrV4, bytes: u64) -> Result<Duration> {
        let addr = SocketAddr::V4(addr);
        let r = match self {
            Direction::Download => tcpperf::download(addr, bytes, IO_TIMEOUT),
            Direction::Upload => tcpperf::upload(addr, bytes, IO_TIMEOUT),
        };
        r.map_err(|e| format!("{} of {bytes} bytes with {addr}: {e}", self.label()))
    }
}

/// One transfer.
#[derive(Debug, Clone, Copy)]
struct Sample {
    gbits: f64,
    /// Tender CPU time / wall time, in cores (guest samples only).
    tender_cpu: Option<f64>,
    /// Busy CPUs of the whole machine, in cores.
    machine_cpu: f64,
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

/// Runs the benchmark and prints the report.
pub fn run(args: &Args) -> Result<()> {
    let tender = locate(args.tender.as_deref(), "tender", "--tender")?;
    let guest = locate(args.guest.as_deref(), "tcpperf", "--guest")?;
    let bytes = args.size * 1024 * 1024;
    for kv in &args.guest_env {
        if !kv.contains('=') {
            return Err(format!("--guest-env {kv}: expected KEY=VALUE"));
        }
    }

    let dir = TempDir::new()?;
    net::warn_if_busy()?;
    let topo = Topology::new("tcp", args.mtu)?;
    let mut env = vec![format!("PORT={PORT}")];
    env.extend(args.guest_env.iter().cloned());
    let mut guest_d = Daemon::spawn(
        "tender tcpperf",
        topo.tender(&tender, &guest, &env, &[])?,
        dir.path().join("tcpperf.log"),
    )?;

    let guest_addr = SocketAddrV4::new(GUEST_IP, PORT);
    let native_addr = SocketAddrV4::new(NATIVE_IP, PORT);
    let stop = AtomicBool::new(false);
    let samples = thread::scope(|s| -> Result<_> {
        // The native server: a thread in the native namespace.
        let (ready_tx, ready_rx) = mpsc::channel();
        let native = &topo.native;
        let stop = &stop;
        let server = s.spawn(move || -> Result<()> {
            let bound = native.enter().and_then(|()| {
                TcpListener::bind(native_addr).map_err(|e| format!("bind {native_addr}: {e}"))
            });
            let listener = match bound {
                Ok(l) => {
                    let _ = ready_tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            tcpperf::serve_until(&listener, stop).map_err(|e| format!("native tcpperf: {e}"))
        });
        let result = (|| {
            ready_rx.recv().map_err(|_| "the native server thread ended".to_string())??;
            guest_d.wait_ready(&topo.client, guest_addr)?;
            measure(args, &topo, &mut guest_d, [guest_addr, native_addr], bytes)
        })();
        stop.store(true, Ordering::Relaxed);
        let served = server.join().map_err(|_| "the native server thread panicked".to_string())?;
        let r = result?;
        served?;
        Ok(r)
    })?;

    let cell = |d: usize, srv: usize| median(samples[d][srv].iter().map(|x| x.gbits));
    let tender_cpu = |d: usize| median(samples[d][0].iter().filter_map(|x| x.tender_cpu));
    let machine = |d: usize, srv: usize| median(samples[d][srv].iter().map(|x| x.machine_cpu));

    if args.json {
        let report = json!({
            "benchmark": "tcp",
            "bytes_per_transfer": bytes,
            "rounds": args.rounds,
            "links": topo.describe(),
            "guest": guest_d.command(),
            "native": "tools/src/tcpperf.rs, a thread in the native namespace",
            "directions": Direction::BOTH.iter().enumerate().map(|(d, dir)| json!({
                "direction": dir.key(),
                "tender_gbit_per_sec": round2(cell(d, 0)),
                "native_gbit_per_sec": round2(cell(d, 1)),
                "ratio": (cell(d, 0) / cell(d, 1) * 1000.0).round() / 1000.0,
                "tender_cpu_cores": round2(tender_cpu(d)),
                "machine_cpu_cores": {
                    "tender": round2(machine(d, 0)),
                    "native": round2(machine(d, 1)),
                },
                "tender_samples_gbit_per_sec": samples[d][0].iter().map(|x| round2(x.gbits)).collect::<Vec<_>>(),
                "native_samples_gbit_per_sec": samples[d][1].iter().map(|x| round2(x.gbits)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{report:#}");
        return Ok(());
    }

    println!(
        "tcp: bulk throughput, {} MiB per transfer, {} rounds (servers alternate), medians",
        args.size, args.rounds
    );
    println!("  links:  {}", topo.describe());
    println!("  guest:  {}", guest_d.command());
    println!("  native: tools/src/tcpperf.rs, a thread in the native namespace");
    println!();
    println!(
        "  {:<22} {:>14} {:>14} {:>8} {:>11} {:>15}",
        "direction", "tender Gbit/s", "native Gbit/s", "ratio", "tender CPU", "machine CPU"
    );
    for (d, dir) in Direction::BOTH.iter().enumerate() {
        println!(
            "  {:<22} {:>14.2} {:>14.2} {:>7.2}× {:>10.0}% {:>6.0}% / {:>3.0}%",
            dir.label(),
            cell(d, 0),
            cell(d, 1),
            cell(d, 0) / cell(d, 1),
            tender_cpu(d) * 100.0,
            machine(d, 0) * 100.0,
            machine(d, 1) * 100.0
        );
    }
    println!(
        "  ratio: tender/native (higher is better). CPU, % of one core over the transfer: \
         tender = its user + system time; machine = all {} CPUs' busy time, tender run / \
         native run",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}

/// samples[direction][server]: directions as in [`Direction::BOTH`],
/// servers tender then native.
type Samples = Vec<[Vec<Sample>; 2]>;

/// The warm-up and the measured rounds.
fn measure(
    args: &Args,
    topo: &Topology,
    guest_d: &mut Daemon,
    addrs: [SocketAddrV4; 2],
    bytes: u64,
) -> Result<Samples> {
    let warm = (bytes / 16).max(1);
    for dir in Direction::BOTH {
        for addr in addrs {
            topo.client.run(|| dir.transfer(addr, warm))??;
        }
    }
    let mut samples: Vec<[Vec<Sample>; 2]> =
        Direction::BOTH.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 0..args.rounds as usize {
        for (d, dir) in Direction::BOTH.iter().enumerate() {
            for k in 0..2 {
                let srv = (round + d + k) % 2;
                let cpu0 = guest_d.cpu_seconds()?;
                let machine0 = MachineCpu::now()?;
                let t0 = Instant::now();
                let elapsed = topo.client.run(|| dir.transfer(addrs[srv], bytes))??;
                let wall = t0.elapsed().as_secs_f64();
                let cpu = (guest_d.cpu_seconds()? - cpu0) / wall;
                let machine_cpu = MachineCpu::now()?.cores_since(&machine0);
                guest_d.check()?;
                samples[d][srv].push(Sample {
                    gbits: tcpperf::gbits(bytes, elapsed),
                    tender_cpu: (srv == 0).then_some(cpu),
                    machine_cpu,
                });
            }
        }
    }
    Ok(samples)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
