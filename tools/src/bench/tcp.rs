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
//! direction and server. A round's ratio is the tender's rate over the
//! native one's in that round, the two measured back to back, so that the
//! machine's own swings (other work on its two cores) hit both; the report
//! gives every round's ratio and their min/median/max, and the benchmark
//! fails (exit status 1, after the report) when a round of either
//! direction is below `--goal` (0.9× by default): the goal is Linux's rate
//! in every run, not on average.
//!
//! Per transfer it records what explains a slow one: the tender's CPU
//! (user + system time from `/proc/PID/stat`, which includes the kernel's
//! work on the frames its guest writes into the tap); the guest's own
//! counts of `read`/`write`/`ppoll` calls and bytes per call, and of frames
//! dropped (tcpperf's `C` command, asked before and after); the client
//! socket's `TCP_INFO` (the peer's window and window scale, the time the
//! window held the client back, the round-trip time); and the client
//! namespace's TCP counters (retransmissions, duplicates, out-of-order
//! data, zero windows), for the guest's transfers and Linux's alike.
//!
//! Socket buffers: the guest's are 4 MiB each way (tcpperf's default;
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

    /// The goal: the tender's rate / Linux's in every round, each
    /// direction; a round below it fails the benchmark (exit status 1),
    /// after the report. 0 never fails.
    #[arg(long, value_name = "RATIO", default_value_t = 0.9)]
    goal: f64,

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

    fn transfer(self, addr: SocketAddrV4, bytes: u64) -> Result<tcpperf::Transfer> {
        let addr = SocketAddr::V4(addr);
        let r = match self {
            Direction::Download => tcpperf::download(addr, bytes, IO_TIMEOUT),
            Direction::Upload => tcpperf::upload(addr, bytes, IO_TIMEOUT),
        };
        r.map_err(|e| format!("{} of {bytes} bytes with {addr}: {e}", self.label()))
    }
}

/// Counters of the client namespace's TCP (`/proc/net/snmp` and
/// `/proc/net/netstat` as a thread inside it sees them) that tell of loss,
/// duplicates and stalled windows, as (group, name, label).
const WATCHED: [(&str, &str, &str); 8] = [
    // The client's retransmissions (client → server).
    ("Tcp", "RetransSegs", "retrans"),
    // Data that came again: the server retransmitted what had arrived.
    ("TcpExt", "DelayedACKLost", "dup"),
    // Data that came out of order: the server's segments were lost.
    ("TcpExt", "TCPOFOQueue", "ooo"),
    // The client's receive buffer filled: it advertised a zero window.
    ("TcpExt", "TCPToZeroWindowAdv", "zwin-adv"),
    // The server's window stayed closed: the client probed it.
    ("TcpExt", "TCPWinProbe", "zwin-probe"),
    // Retransmission timeouts, and tail-loss probes.
    ("TcpExt", "TCPTimeouts", "rto"),
    ("TcpExt", "TCPLossProbes", "tlp"),
    // Frames the client dropped for want of receive memory.
    ("TcpExt", "TCPRcvQDrop", "rcvq-drop"),
];

/// The [`WATCHED`] counters of the calling thread's network namespace.
fn netstat() -> Result<[u64; WATCHED.len()]> {
    let mut text = String::new();
    for file in ["/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"] {
        text += &std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    }
    Ok(parse_netstat(&text))
}

/// The [`WATCHED`] counters in `/proc/net/snmp`-style text: pairs of
/// lines `Group: names...` and `Group: values...`; missing ones are 0.
fn parse_netstat(text: &str) -> [u64; WATCHED.len()] {
    let mut out = [0u64; WATCHED.len()];
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.windows(2) {
        let (Some((g1, names)), Some((g2, values))) =
            (pair[0].split_once(':'), pair[1].split_once(':'))
        else {
            continue;
        };
        if g1 != g2 || names.split_whitespace().next().is_some_and(|n| n.parse::<i64>().is_ok()) {
            continue;
        }
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            for (k, (group, watched, _)) in WATCHED.iter().enumerate() {
                if g1 == *group && name == *watched {
                    out[k] = value.parse().unwrap_or(0);
                }
            }
        }
    }
    out
}

/// Frames dropped on the client namespace's links so far (the tap's and
/// the veth's `rx` and `tx` `dropped`, summed): a tap's `tx` drops are
/// frames for the guest that found its queue full.
fn link_drops(topo: &Topology) -> Result<u64> {
    let out = topo.client.ip(&["-s", "-j", "link", "show"])?;
    parse_link_drops(&out).ok_or_else(|| format!("ip -s -j link show: unexpected output {out:?}"))
}

/// The sum of `stats64.{rx,tx}.dropped` over the links of `ip -s -j link
/// show`'s output.
fn parse_link_drops(json_text: &str) -> Option<u64> {
    let links: serde_json::Value = serde_json::from_str(json_text).ok()?;
    let mut sum = 0;
    for link in links.as_array()? {
        for way in ["rx", "tx"] {
            sum += link["stats64"][way]["dropped"].as_u64().unwrap_or(0);
        }
    }
    Some(sum)
}

/// Nanoseconds a thread has spent waiting on a run queue (runnable, not
/// running), from its `schedstat` file (`/proc/PID/schedstat`,
/// `/proc/thread-self/schedstat`): the second field.
fn run_delay_ns(path: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{path}: unexpected contents {text:?}"))
}

/// The guest's counters over a transfer (see `examples/tcpperf`, `C`).
#[derive(Debug, Clone, Copy)]
struct GuestRun {
    /// Tender CPU time / wall time, in cores.
    tender_cpu: f64,
    /// Time the tender waited for a CPU (runnable, not running) / wall
    /// time.
    tender_wait: f64,
    /// The counters after less before, then the guest's settings as they
    /// are (buffers, delayed ACK).
    counters: [u64; tcpperf::GUEST_COUNTERS],
}

impl GuestRun {
    fn new(tender_cpu: f64, tender_wait: f64, before: &[u64; 14], after: &[u64; 14]) -> Self {
        let mut counters = *after;
        for (c, b) in counters.iter_mut().zip(before).take(11) {
            *c = c.wrapping_sub(*b);
        }
        Self { tender_cpu, tender_wait, counters }
    }

    const READS: usize = 0;
    const READ_BYTES: usize = 1;
    const WRITES: usize = 2;
    const WRITE_BYTES: usize = 3;
    const PPOLLS: usize = 4;
    const PPOLL_EMPTY: usize = 5;
    const TX_DROPPED: usize = 8;
    const RX_DROPPED: usize = 10;
    const RX_BUFFER: usize = 11;
    const TX_BUFFER: usize = 12;
    const ACK_DELAY_US: usize = 13;

    fn per_call(&self, bytes: usize, calls: usize) -> f64 {
        self.counters[bytes] as f64 / self.counters[calls].max(1) as f64
    }

    fn json(&self) -> serde_json::Value {
        let c = &self.counters;
        json!({
            "tender_cpu_cores": round2(self.tender_cpu),
            "tender_run_queue_wait": round2(self.tender_wait),
            "reads": c[Self::READS],
            "read_bytes": c[Self::READ_BYTES],
            "writes": c[Self::WRITES],
            "write_bytes": c[Self::WRITE_BYTES],
            "ppolls": c[Self::PPOLLS],
            "ppolls_empty": c[Self::PPOLL_EMPTY],
            "frames_received": c[6],
            "frames_sent": c[7],
            "frames_dropped_on_send": c[Self::TX_DROPPED],
            "frames_offloaded": c[9],
            "frames_dropped_on_receipt": c[Self::RX_DROPPED],
            "rx_buffer": c[Self::RX_BUFFER],
            "tx_buffer": c[Self::TX_BUFFER],
            "ack_delay_us": c[Self::ACK_DELAY_US],
        })
    }
}

/// One transfer.
#[derive(Debug, Clone, Copy)]
struct Sample {
    gbits: f64,
    /// Busy CPUs of the whole machine, in cores.
    machine_cpu: f64,
    /// Time the client thread waited for a CPU / wall time.
    client_wait: f64,
    /// The client's `TCP_INFO` at the end.
    info: tcpperf::TcpInfo,
    /// The [`WATCHED`] counters of the client namespace over the transfer.
    netstat: [u64; WATCHED.len()],
    /// Frames dropped on the client namespace's links over the transfer.
    link_drops: u64,
    /// The guest's figures (guest samples only).
    guest: Option<GuestRun>,
}

impl Sample {
    fn json(&self) -> serde_json::Value {
        let i = &self.info;
        let mut v = json!({
            "gbit_per_sec": round2(self.gbits),
            "machine_cpu_cores": round2(self.machine_cpu),
            "client_run_queue_wait": round2(self.client_wait),
            "client_tcp_info": {
                "peer_window_scale": i.peer_wscale,
                "client_window_scale": i.own_wscale,
                "peer_window_bytes": i.snd_wnd,
                "client_window_bytes": i.rcv_wnd,
                "client_retransmissions": i.total_retrans,
                "rtt_us": i.rtt_us,
                "min_rtt_us": i.min_rtt_us,
                "client_cwnd_segments": i.snd_cwnd,
                "busy_us": i.busy_us,
                "peer_window_limited_us": i.rwnd_limited_us,
                "client_sndbuf_limited_us": i.sndbuf_limited_us,
                "out_of_order_segments": i.rcv_ooopack,
            },
            "client_link_drops": self.link_drops,
            "client_netstat": WATCHED.iter().zip(self.netstat)
                .map(|((g, n, _), v)| (format!("{g}.{n}"), json!(v)))
                .collect::<serde_json::Map<_, _>>(),
        });
        if let Some(g) = &self.guest {
            v["guest"] = g.json();
        }
        v
    }

    /// The diagnostics, as one line of the table.
    fn row(&self) -> String {
        let i = &self.info;
        let guest = match &self.guest {
            Some(g) => {
                let c = &g.counters;
                format!(
                    "{:>4.0}% {:>4.0}% {:>7} {:>6.0} {:>6} {:>6.0} {:>6} {:>5} {:>4}",
                    g.tender_cpu * 100.0,
                    g.tender_wait * 100.0,
                    c[GuestRun::READS],
                    g.per_call(GuestRun::READ_BYTES, GuestRun::READS),
                    c[GuestRun::WRITES],
                    g.per_call(GuestRun::WRITE_BYTES, GuestRun::WRITES),
                    c[GuestRun::PPOLLS],
                    c[GuestRun::PPOLL_EMPTY],
                    c[GuestRun::TX_DROPPED] + c[GuestRun::RX_DROPPED],
                )
            }
            None => format!(
                "{:>5} {:>7} {:>6} {:>6} {:>6} {:>6} {:>5} {:>4}",
                "", "", "", "", "", "", "", ""
            ),
        };
        let rwnd =
            if i.busy_us > 0 { i.rwnd_limited_us as f64 / i.busy_us as f64 * 100.0 } else { 0.0 };
        let events: Vec<String> = WATCHED
            .iter()
            .map(|(_, _, label)| *label)
            .zip(self.netstat)
            .chain([("link-drop", self.link_drops)])
            .filter(|(_, v)| *v > 0)
            .map(|(label, v)| format!("{label} {v}"))
            .collect();
        format!(
            "{:>7.2} {:>4.0}% {:>4.0}% {guest} | {:>2}/{:<2} {:>7} {:>4.0}% {:>5} {}",
            self.gbits,
            self.machine_cpu * 100.0,
            self.client_wait * 100.0,
            i.peer_wscale,
            i.own_wscale,
            i.snd_wnd,
            rwnd,
            i.rtt_us,
            if events.is_empty() { "-".to_string() } else { events.join(", ") },
        )
    }
}

/// Min, median and max.
fn spread(v: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    (v[0], percentile(&v, 50.0), v[v.len() - 1])
}

/// Runs the benchmark and prints the report; fails if a run's ratio is
/// below the goal.
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

    let rounds = args.rounds as usize;
    let ratio = |d: usize, r: usize| samples[d][0][r].gbits / samples[d][1][r].gbits;
    let ratios = |d: usize| spread((0..rounds).map(|r| ratio(d, r)));
    let gbits = |d: usize, srv: usize| spread(samples[d][srv].iter().map(|x| x.gbits));
    // The worst run of each direction, and whether it meets the goal.
    let worst: Vec<(usize, f64)> = (0..2)
        .map(|d| (0..rounds).map(|r| (r, ratio(d, r))).min_by(|a, b| a.1.total_cmp(&b.1)).unwrap())
        .collect();
    let failed: Vec<String> = Direction::BOTH
        .iter()
        .zip(&worst)
        .filter(|(_, (_, w))| *w < args.goal)
        .map(|(dir, (r, w))| format!("{} round {}: {w:.2}×", dir.label(), r + 1))
        .collect();

    if args.json {
        let report = json!({
            "benchmark": "tcp",
            "bytes_per_transfer": bytes,
            "rounds": args.rounds,
            "goal_ratio_every_run": args.goal,
            "goal_met": failed.is_empty(),
            "links": topo.describe(),
            "guest": guest_d.command(),
            "native": "tools/src/tcpperf.rs, a thread in the native namespace",
            "directions": Direction::BOTH.iter().enumerate().map(|(d, dir)| {
                let (lo, med, hi) = ratios(d);
                json!({
                    "direction": dir.key(),
                    "ratio": { "min": round3(lo), "median": round3(med), "max": round3(hi) },
                    "tender_gbit_per_sec_median": round2(gbits(d, 0).1),
                    "native_gbit_per_sec_median": round2(gbits(d, 1).1),
                    "runs": (0..rounds).map(|r| json!({
                        "ratio": round3(ratio(d, r)),
                        "tender": samples[d][0][r].json(),
                        "native": samples[d][1][r].json(),
                    })).collect::<Vec<_>>(),
                })
            }).collect::<Vec<_>>(),
        });
        println!("{report:#}");
    } else {
        print_report(args, &topo, &guest_d, &samples);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "tcp: the goal, ≥ {:.2}× of Linux in every run, is not met: {}",
            args.goal,
            failed.join("; ")
        ))
    }
}

/// The table of every run, and the spread.
fn print_report(args: &Args, topo: &Topology, guest_d: &Daemon, samples: &Samples) {
    let rounds = args.rounds as usize;
    println!(
        "tcp: bulk throughput, {} MiB per transfer, {} rounds (tender and native interleaved, \
         alternating which goes first)",
        args.size, args.rounds
    );
    println!("  links:  {}", topo.describe());
    println!("  guest:  {}", guest_d.command());
    println!("  native: tools/src/tcpperf.rs, a thread in the native namespace");
    if let Some(g) = samples[0][0].first().and_then(|s| s.guest) {
        let c = &g.counters;
        println!(
            "  guest's sockets: rx {} KiB, tx {} KiB, delayed ACK {}",
            c[GuestRun::RX_BUFFER] / 1024,
            c[GuestRun::TX_BUFFER] / 1024,
            match c[GuestRun::ACK_DELAY_US] {
                0 => "off".to_string(),
                us => format!("{} ms", us as f64 / 1000.0),
            }
        );
    }
    for (d, dir) in Direction::BOTH.iter().enumerate() {
        println!();
        println!("  {}", dir.label());
        println!(
            "  {:<5} {:<6} {:>6} {:>7} {:>5} {:>5} {:>5} {:>5} {:>7} {:>6} {:>6} {:>6} {:>6} {:>5} {:>4} | {:>5} {:>7} {:>5} {:>5} events",
            "round",
            "server",
            "ratio",
            "Gbit/s",
            "mach",
            "cwait",
            "CPU",
            "wait",
            "reads",
            "B/rd",
            "writes",
            "B/wr",
            "ppolls",
            "empty",
            "drop",
            "wscl",
            "peerwnd",
            "rwnd",
            "rtt"
        );
        let [tender, native] = &samples[d];
        for (r, (t, n)) in tender.iter().zip(native).enumerate() {
            println!(
                "  {:<5} {:<6} {:>6} {}",
                r + 1,
                "tender",
                format!("{:.2}×", t.gbits / n.gbits),
                t.row()
            );
            println!("  {:<5} {:<6} {:>6} {}", "", "native", "", n.row());
        }
        let (lo, med, hi) =
            spread((0..rounds).map(|r| samples[d][0][r].gbits / samples[d][1][r].gbits));
        let (nlo, _, nhi) = spread(samples[d][1].iter().map(|x| x.gbits));
        let (tlo, _, thi) = spread(samples[d][0].iter().map(|x| x.gbits));
        println!(
            "  ratio min {lo:.2}× median {med:.2}× max {hi:.2}× (goal ≥ {:.2}× in every run: {}); \
             spread max/min: native {:.2}×, tender {:.2}×, ratio {:.2}×",
            args.goal,
            if lo >= args.goal { "met" } else { "NOT met" },
            nhi / nlo,
            thi / tlo,
            hi / lo
        );
    }
    println!();
    println!(
        "  ratio: tender/native in the same round (higher is better). mach: all {} CPUs' busy \
         time; cwait: time the client thread waited for a CPU; CPU: the tender's user + \
         system time; wait: time the tender waited for a CPU (% of one core, of the wall \
         time). The guest's counters over \
         the transfer: reads/writes (system calls, with bytes per call), ppolls (empty: \
         none ready), drop: frames dropped. After |, the client socket's TCP_INFO: window \
         scale peer/client, the peer's window (bytes), time the peer's window held the client \
         back (% of its busy time), rtt µs; events: the client namespace's TCP counters \
         (retrans: client retransmissions; dup: data received twice; ooo: out of order; \
         zwin-adv: client advertised a zero window; zwin-probe: client probed a closed window; \
         rto; tlp; rcvq-drop; link-drop: frames dropped on the client namespace's tap or \
         veth, e.g. for a guest whose tap queue was full).",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}

/// samples[direction][server][round]: directions as in
/// [`Direction::BOTH`], servers tender then native.
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
    let counters = || -> Result<[u64; tcpperf::GUEST_COUNTERS]> {
        topo.client
            .run(|| tcpperf::guest_counters(SocketAddr::V4(addrs[0]), IO_TIMEOUT))?
            .map_err(|e| format!("the guest's counters: {e}"))
    };
    let mut samples: Vec<[Vec<Sample>; 2]> =
        Direction::BOTH.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 0..args.rounds as usize {
        for (d, dir) in Direction::BOTH.iter().enumerate() {
            for k in 0..2 {
                let srv = (round + d + k) % 2;
                let before = if srv == 0 { Some(counters()?) } else { None };
                let drops0 = link_drops(topo)?;
                let schedstat = format!("/proc/{}/schedstat", guest_d.pid());
                let cpu0 = guest_d.cpu_seconds()?;
                let wait0 = run_delay_ns(&schedstat)?;
                let machine0 = MachineCpu::now()?;
                let t0 = Instant::now();
                let (transfer, netstat, client_wait_ns) = topo.client.run(|| -> Result<_> {
                    let n0 = netstat()?;
                    let w0 = run_delay_ns("/proc/thread-self/schedstat")?;
                    let t = dir.transfer(addrs[srv], bytes)?;
                    let w1 = run_delay_ns("/proc/thread-self/schedstat")?;
                    let n1 = netstat()?;
                    let mut delta = [0u64; WATCHED.len()];
                    for (v, (a, b)) in delta.iter_mut().zip(n1.iter().zip(n0)) {
                        *v = a.saturating_sub(b);
                    }
                    Ok((t, delta, w1.saturating_sub(w0)))
                })??;
                let wall = t0.elapsed().as_secs_f64();
                let cpu = (guest_d.cpu_seconds()? - cpu0) / wall;
                let wait = run_delay_ns(&schedstat)?.saturating_sub(wait0) as f64 / 1e9 / wall;
                let machine_cpu = MachineCpu::now()?.cores_since(&machine0);
                let link_drops = link_drops(topo)?.saturating_sub(drops0);
                guest_d.check()?;
                let guest = match before {
                    Some(b) => Some(GuestRun::new(cpu, wait, &b, &counters()?)),
                    None => None,
                };
                samples[d][srv].push(Sample {
                    gbits: tcpperf::gbits(bytes, transfer.elapsed),
                    machine_cpu,
                    client_wait: client_wait_ns as f64 / 1e9 / wall,
                    info: transfer.info,
                    netstat,
                    link_drops,
                    guest,
                });
            }
        }
    }
    Ok(samples)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstat_pairs_of_lines() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RetransSegs InSegs\nTcp: 1 17 900\n\
                    TcpExt: SyncookiesSent TCPOFOQueue DelayedACKLost TCPWinProbe\n\
                    TcpExt: 0 5 3 2\n";
        let n = parse_netstat(text);
        let get = |name: &str| n[WATCHED.iter().position(|w| w.1 == name).unwrap()];
        assert_eq!(get("RetransSegs"), 17);
        assert_eq!(get("TCPOFOQueue"), 5);
        assert_eq!(get("DelayedACKLost"), 3);
        assert_eq!(get("TCPWinProbe"), 2);
        assert_eq!(get("TCPTimeouts"), 0);
        // Garbage is no counter.
        assert_eq!(parse_netstat("Tcp: x\nnothing\n:\n"), [0; WATCHED.len()]);
    }

    #[test]
    fn guest_run_subtracts_counts_not_settings() {
        let before = [1, 100, 2, 200, 3, 1, 4, 5, 0, 1, 0, 262144, 262144, 10000];
        let after = [11, 1100, 12, 2200, 13, 2, 14, 15, 1, 6, 0, 262144, 262144, 10000];
        let g = GuestRun::new(0.5, 0.1, &before, &after);
        assert_eq!(g.counters[..11], [10, 1000, 10, 2000, 10, 1, 10, 10, 1, 5, 0]);
        assert_eq!(g.counters[11..], [262144, 262144, 10000]);
        assert_eq!(g.per_call(GuestRun::READ_BYTES, GuestRun::READS), 100.0);
    }

    #[test]
    fn link_drops_sum_both_ways_of_every_link() {
        let out = r#"[{"ifname":"lo","stats64":{"rx":{"dropped":1},"tx":{"dropped":0}}},
                      {"ifname":"nbtap0","stats64":{"rx":{"dropped":2},"tx":{"dropped":40}}},
                      {"ifname":"x"}]"#;
        assert_eq!(parse_link_drops(out), Some(43));
        assert_eq!(parse_link_drops("not json"), None);
        assert_eq!(parse_link_drops("{}"), None);
    }

    #[test]
    fn spread_is_min_median_max() {
        assert_eq!(spread([3.0, 1.0, 2.0].into_iter()), (1.0, 2.0, 3.0));
    }
}
