//! `nabla bench startup`: exec-to-exit wall time.
//!
//! Five commands run interleaved round-robin (the first of each round
//! rotates), so that noise — frequency changes, other load, page-cache
//! state — hits all of them alike:
//!
//! | key | command | adds, over the row above |
//! | --- | --- | --- |
//! | native | native static hello | — |
//! | version | `tender --version` | process start, clap (which `tender hello`, a plain command line, skips) |
//! | inspect | `tender --inspect hello` | opening and validating the image |
//! | seccomp | `tender --print-seccomp hello` | building the filter (libseccomp), PFC export |
//! | tender | `tender hello` | mapping, sealing and running the guest (approx.) |
//! | std | `tender std-hello` (with `--std-guest`) | a std guest instead: libos-std's start-up, std's runtime |
//! | baseline | `BASELINE hello` (with `--baseline-tender`) | another tender, e.g. before a change, in the same rounds |
//!
//! Each sample is the monotonic time from just before `spawn` to just after
//! `wait` returns, with stdin, stdout and stderr on `/dev/null`. The first
//! `--warmup` rounds are discarded.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;

use super::{Result, compile_native, display_command, locate};
use crate::stats::Summary;

/// The goal for `tender hello / native hello`, as a ratio of medians
/// (issue 17: start no slower than a static C program).
const GOAL: f64 = 1.0;

/// Options of `nabla bench startup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measured rounds; each runs every command once.
    #[arg(long, value_name = "N", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,

    /// Rounds run first and discarded.
    #[arg(long, value_name = "N", default_value_t = 10)]
    warmup: u32,

    /// The tender [default: `tender` next to this executable].
    #[arg(long, value_name = "PATH")]
    tender: Option<PathBuf>,

    /// The guest [default: `hello` next to this executable].
    #[arg(long, value_name = "PATH")]
    guest: Option<PathBuf>,

    /// Also runs this std guest (tests/std's `std-hello`), and reports it
    /// against the native hello and the libos hello.
    #[arg(long, value_name = "PATH")]
    std_guest: Option<PathBuf>,

    /// Also runs the guest under this other tender (say, one built before
    /// a change), in the same rounds, and reports `tender hello / BASELINE
    /// hello`.
    #[arg(long, value_name = "PATH")]
    baseline_tender: Option<PathBuf>,

    /// Passes this option to the tender before the guest, in every row
    /// that runs the guest (repeatable), e.g. `--attach=--net
    /// --attach=service0=tap0 --attach=--block --attach=storage=disk.img` with
    /// `--guest target/release/guest-devices`: start-up with devices
    /// attached, whose filter was built by libseccomp at every start before
    /// issue 17.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    attach: Vec<String>,

    /// Prints the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured command.
#[derive(Debug)]
struct Variant {
    key: &'static str,
    label: &'static str,
    cmd: Command,
}

/// Runs `cmd` once with its output captured; it must exit with status 0.
fn check(v: &mut Variant) -> Result<()> {
    let out = v
        .cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", display_command(&v.cmd)))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}):\n{}",
            display_command(&v.cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(())
}

/// One sample in µs: spawn, wait, exit status 0.
fn time_once(v: &mut Variant) -> Result<f64> {
    let start = Instant::now();
    let mut child =
        v.cmd.spawn().map_err(|e| format!("cannot run {}: {e}", display_command(&v.cmd)))?;
    let status = child.wait().map_err(|e| format!("wait for {}: {e}", v.label))?;
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(format!("{} failed during the benchmark ({status})", display_command(&v.cmd)));
    }
    Ok(elapsed.as_secs_f64() * 1e6)
}

/// Runs the benchmark and prints the report.
pub fn run(args: &Args) -> Result<()> {
    let tender = locate(args.tender.as_deref(), "tender", "--tender")?;
    let guest = locate(args.guest.as_deref(), "hello", "--guest")?;
    let native = compile_native("hello", include_str!("../../bench/hello.c"))?;

    let tender_cmd = |flag: Option<&str>, with_guest: bool| {
        let mut cmd = Command::new(&tender);
        cmd.args(flag);
        if with_guest {
            cmd.args(&args.attach).arg(&guest);
        }
        cmd
    };
    let mut variants = vec![
        Variant { key: "native", label: "native hello", cmd: Command::new(&native.path) },
        Variant { key: "tender", label: "tender hello", cmd: tender_cmd(None, true) },
        Variant {
            key: "version",
            label: "tender --version",
            cmd: tender_cmd(Some("--version"), false),
        },
        Variant {
            key: "inspect",
            label: "tender --inspect hello",
            cmd: tender_cmd(Some("--inspect"), true),
        },
        Variant {
            key: "seccomp",
            label: "tender --print-seccomp hello",
            cmd: tender_cmd(Some("--print-seccomp"), true),
        },
    ];
    if let Some(std_guest) = &args.std_guest {
        let mut cmd = Command::new(&tender);
        cmd.arg(std_guest);
        variants.push(Variant { key: "std", label: "tender std-hello", cmd });
    }
    if let Some(baseline) = &args.baseline_tender {
        let mut cmd = Command::new(baseline);
        cmd.args(&args.attach).arg(&guest);
        variants.push(Variant { key: "baseline", label: "baseline tender hello", cmd });
    }
    for v in &mut variants {
        check(v)?;
        v.cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    }

    let runs = args.runs as usize;
    let warmup = args.warmup as usize;
    let n = variants.len();
    let mut samples = vec![Vec::with_capacity(runs); n];
    for round in 0..warmup + runs {
        for k in 0..n {
            let i = (round + k) % n;
            let us = time_once(&mut variants[i])?;
            if round >= warmup {
                samples[i].push(us);
            }
        }
    }
    let summaries: Vec<Summary> = samples.iter().map(|s| Summary::of(s)).collect();
    let median = |key: &str| {
        let i = variants.iter().position(|v| v.key == key).expect("known variant");
        summaries[i].median
    };
    let std_ratios = args
        .std_guest
        .is_some()
        .then(|| (median("std") / median("native"), median("std") / median("tender")));

    let baseline_ratio =
        args.baseline_tender.is_some().then(|| median("tender") / median("baseline"));
    let ratio = median("tender") / median("native");
    let pass = ratio <= GOAL;
    let parts = [
        (
            "tender_process_start",
            "start-up of the tender process",
            "--version − native",
            median("version") - median("native"),
        ),
        (
            "validation",
            "opening + validating the image",
            "--inspect − --version",
            median("inspect") - median("version"),
        ),
        (
            "filter_generation",
            "building the filter + PFC export",
            "--print-seccomp − --inspect",
            median("seccomp") - median("inspect"),
        ),
        (
            "map_seal_guest_run",
            "map + seal + guest run (approx.)",
            "hello − --print-seccomp",
            median("tender") - median("seccomp"),
        ),
    ];

    if args.json {
        let report = json!({
            "benchmark": "startup",
            "runs": runs,
            "warmup": warmup,
            "tender": tender,
            "guest": guest,
            "attach": args.attach,
            "native": "tools/bench/hello.c (gcc -O2 -static)",
            "variants": variants.iter().zip(&summaries).map(|(v, s)| json!({
                "key": v.key,
                "command": v.label,
                "median_us": round1(s.median),
                "p10_us": round1(s.p10),
                "p90_us": round1(s.p90),
                "samples": s.n,
            })).collect::<Vec<_>>(),
            "headline": {
                "ratio": (ratio * 1000.0).round() / 1000.0,
                "of": "median(tender hello) / median(native hello)",
                "goal": GOAL,
                "pass": pass,
            },
            "std": std_ratios.map(|(native, libos)| json!({
                "ratio_to_native": (native * 1000.0).round() / 1000.0,
                "ratio_to_libos_hello": (libos * 1000.0).round() / 1000.0,
                "of": "median(tender std-hello) / median(native hello), / median(tender hello)",
            })),
            "baseline": baseline_ratio.map(|r| json!({
                "ratio": (r * 1000.0).round() / 1000.0,
                "of": "median(tender hello) / median(baseline tender hello)",
            })),
            "decomposition_us": parts.iter()
                .map(|&(key, _, _, d)| (key.to_string(), json!(round1(d))))
                .collect::<serde_json::Map<_, _>>(),
        });
        println!("{report:#}");
        return Ok(());
    }

    println!("startup: exec→exit wall time (spawn..wait, monotonic), µs");
    println!("  {runs} runs each, interleaved round-robin, after {warmup} warm-up rounds");
    println!("  tender: {}", tender.display());
    println!("  guest:  {}", guest.display());
    if !args.attach.is_empty() {
        println!("  tender options: {}", args.attach.join(" "));
    }
    println!("  native: tools/bench/hello.c, gcc -O2 -static");
    println!();
    println!("  {:<30} {:>9} {:>9} {:>9}", "command", "median", "p10", "p90");
    for (v, s) in variants.iter().zip(&summaries) {
        println!("  {:<30} {:>9.1} {:>9.1} {:>9.1}", v.label, s.median, s.p10, s.p90);
    }
    println!();
    println!(
        "  tender hello / native hello = {ratio:.2}× (goal ≤ {GOAL:.1}×): {}",
        if pass { "PASS" } else { "FAIL" }
    );
    if let Some((native, libos)) = std_ratios {
        println!("  tender std-hello / native hello = {native:.2}×, / tender hello = {libos:.2}×");
    }
    if let Some(r) = baseline_ratio {
        println!("  tender hello / baseline tender hello = {r:.2}×");
    }
    println!();
    println!("  decomposition (differences of medians), µs:");
    for (_, what, how, d) in parts {
        println!("    {what:<34} {d:>9.1}   ({how})");
    }
    Ok(())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
