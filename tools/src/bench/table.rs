//! `nabla bench table`: every row of issue 17's table, each a ratio to a
//! peer measured in the same run, with the spread over runs.
//!
//! It runs the benchmarks themselves (this executable, `bench startup`,
//! `tcp`, `http`, `kvd` with `--json`; `hap compare` once per HAP run), a
//! run at a time, and reads their JSON: so each figure is what that
//! benchmark reports, and a benchmark that changes its method changes the
//! row. For each row: the runs, the median, the worst and best ratio, the
//! goal, and whether the worst run meets it (the goal holds in every run,
//! or it is missed).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::Result;
use crate::stats::percentile;

/// Options of `nabla bench table`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs of each benchmark (each run measures the guest and its peer).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,

    /// Runs of `nabla hap compare --pairs httpd,kvd` (lab runs take
    /// minutes; 0: no HAP rows).
    #[arg(long, value_name = "N", default_value_t = 1)]
    hap_runs: u32,

    /// Shorter runs: startup 100 runs, tcp 256 MiB, wrk 5 s, 50,000
    /// redis-benchmark requests.
    #[arg(long)]
    quick: bool,

    /// Where `nabla hap` writes its output.
    #[arg(long, value_name = "DIR", default_value = "target/hap-table")]
    hap_out: PathBuf,

    /// Only these rows (comma-separated): startup, tcp, http, kvd, hap.
    #[arg(long, value_delimiter = ',', default_value = "startup,tcp,http,kvd,hap")]
    only: Vec<String>,
}

/// A row: what is measured, its ratios over the runs, and the goal.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub values: Vec<f64>,
    pub goal: Goal,
}

/// A goal on a figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    fn text(self) -> String {
        match self {
            Goal::AtMost(g) => format!("≤ {}", trim(g)),
            Goal::AtLeast(g) => format!("≥ {}", trim(g)),
        }
    }

    /// The worst of `values` for this goal.
    fn worst(self, values: &[f64]) -> f64 {
        let it = values.iter().copied();
        match self {
            Goal::AtMost(_) => it.fold(f64::NEG_INFINITY, f64::max),
            Goal::AtLeast(_) => it.fold(f64::INFINITY, f64::min),
        }
    }

    fn met(self, v: f64) -> bool {
        match self {
            Goal::AtMost(g) => v <= g,
            Goal::AtLeast(g) => v >= g,
        }
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The lines of the table.
pub fn render(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "  {:<58} {:>4} {:>8} {:>17} {:>8}  {}\n",
        "metric (ratio to the peer in the same run)",
        "runs",
        "median",
        "spread (min–max)",
        "goal",
        "worst run"
    ));
    for r in rows {
        let mut v: Vec<f64> = r.values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            s.push_str(&format!(
                "  {:<58} {:>4} {:>8} {:>17} {:>8}  not measured\n",
                r.metric,
                0,
                "-",
                "-",
                r.goal.text()
            ));
            continue;
        }
        let fmt = |x: f64| if x >= 20.0 { format!("{x:.0}") } else { format!("{x:.2}") };
        let worst = r.goal.worst(&v);
        s.push_str(&format!(
            "  {:<58} {:>4} {:>8} {:>17} {:>8}  {}\n",
            r.metric,
            v.len(),
            fmt(percentile(&v, 50.0)),
            format!("{}–{}", fmt(v[0]), fmt(v[v.len() - 1])),
            r.goal.text(),
            if r.goal.met(worst) { "met" } else { "missed" }
        ));
    }
    s
}

/// Runs `nabla ARGS` (this executable) and parses its JSON.
fn nabla_json(args: &[String]) -> Result<Value> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find nabla: {e}"))?;
    eprintln!("nabla: bench table: nabla {}", args.join(" "));
    let out = Command::new(&exe)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    accept(out.status.success(), &text)
        .map_err(|e| format!("nabla {} failed ({}): {e}\n{text}", args.join(" "), out.status))
}

/// A benchmark's JSON report: what it printed when it succeeded, or when
/// it failed only because its goal was missed (`"goal_met": false`, as
/// `nabla bench tcp` exits 1 on a missed round): that is a row to show,
/// not an error.
fn accept(success: bool, text: &str) -> Result<Value> {
    let report: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if success || report["goal_met"] == Value::Bool(false) {
        Ok(report)
    } else {
        Err("it reported no missed goal".into())
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The startup row's figure: median(tender hello) / median(native hello).
pub fn startup_ratio(v: &Value) -> Option<f64> {
    v["headline"]["ratio"].as_f64()
}

/// TCP ratios per round of one direction (`server_to_client`,
/// `client_to_server`): `nabla bench tcp --json` gives each round's
/// tender / native ratio as `directions[].runs[].ratio`.
pub fn tcp_ratios(v: &Value, direction: &str) -> Vec<f64> {
    v["directions"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["direction"].as_str() == Some(direction)))
        .and_then(|d| d["runs"].as_array())
        .map(|runs| runs.iter().filter_map(|r| r["ratio"].as_f64()).collect())
        .unwrap_or_default()
}

/// httpd's ratios for the 1 KiB file: (p99, requests/s).
pub fn http_ratios(v: &Value) -> Option<(f64, f64)> {
    let f = v["files"].as_array()?.iter().find(|f| f["bytes"].as_u64() == Some(1024))?;
    Some((f["ratio_p99"].as_f64()?, f["ratio_requests_per_sec"].as_f64()?))
}

/// The 1 KiB rounds of `nabla bench http --json`: (measured again after a
/// vCPU freeze, kept with a freeze in either server's run).
pub fn http_freezes(v: &Value) -> (u64, u64) {
    let Some(f) =
        v["files"].as_array().and_then(|a| a.iter().find(|f| f["bytes"].as_u64() == Some(1024)))
    else {
        return (0, 0);
    };
    let again = f["rounds_remeasured_after_a_freeze"].as_u64().unwrap_or(0);
    let kept = f["rounds"]["vcpu_freezes"].as_array().map_or(0, |r| {
        r.iter()
            .filter(|p| p.as_array().is_some_and(|p| p.iter().any(|n| n.as_u64() > Some(0))))
            .count() as u64
    });
    (again, kept)
}

/// nginx's CPU per 1 KiB request (server + wrk) over httpd's, from
/// `nabla bench http --json`: the requests/s ratio when both get the same
/// CPU, which other load on the machine does not move.
pub fn http_cost_ratio(v: &Value) -> Option<f64> {
    let f = v["files"].as_array()?.iter().find(|f| f["bytes"].as_u64() == Some(1024))?;
    f["ratio_cpu_per_request"].as_f64().filter(|r| r.is_finite())
}

/// kvd / redis-server operations/s of `test` at `pipeline`.
pub fn kvd_ratio(v: &Value, test: &str, pipeline: u64) -> Option<f64> {
    v["results"]
        .as_array()?
        .iter()
        .find(|r| r["test"].as_str() == Some(test) && r["pipeline"].as_u64() == Some(pipeline))?
        ["kvd_over_redis_rps"]
        .as_f64()
}

/// A guest's steady-state kernel functions from `nabla hap compare --json`.
pub fn hap_steady(v: &Value, pair: &str) -> Option<(f64, f64)> {
    let p = v["pairs"].as_array()?.iter().find(|p| p["pair"].as_str() == Some(pair))?;
    Some((p["guest_steady"].as_f64()?, p["peer_count"].as_f64()?))
}

/// Runs the benchmarks and prints the table.
pub fn run(args: &Args) -> Result<()> {
    let want = |k: &str| args.only.iter().any(|o| o == k);
    let n = args.runs as usize;
    let root = nix_root();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if want("startup") {
        let mut r = Vec::new();
        let runs = if args.quick { "100" } else { "400" };
        for _ in 0..n {
            let v = nabla_json(&strings(&["bench", "startup", "--json", "--runs", runs]))?;
            r.extend(startup_ratio(&v));
        }
        rows.push(Row {
            metric: "start-up: tender hello / static C hello".into(),
            values: r,
            goal: Goal::AtMost(1.0),
        });
    }
    if !root && (want("tcp") || want("http") || want("kvd") || want("hap")) {
        notes.push("tcp, http, kvd and hap need root (network namespaces, taps): not run".into());
    }
    if root && want("tcp") {
        let size = if args.quick { "256" } else { "1024" };
        let rounds = n.max(1).to_string();
        let v =
            nabla_json(&strings(&["bench", "tcp", "--json", "--rounds", &rounds, "--size", size]))?;
        for (dir, name) in [
            ("server_to_client", "bulk TCP, guest → client / Linux over veth"),
            ("client_to_server", "bulk TCP, client → guest / Linux"),
        ] {
            rows.push(Row {
                metric: name.into(),
                values: tcp_ratios(&v, dir),
                goal: Goal::AtLeast(0.9),
            });
        }
    }
    if root && want("http") {
        let (mut p99, mut rps, mut cost) = (Vec::new(), Vec::new(), Vec::new());
        let (mut again, mut kept) = (0, 0);
        let d = if args.quick { "5" } else { "10" };
        for _ in 0..n {
            // Two rounds of the 1 KiB file, the servers in one order then
            // the other (`bench http` alternates which goes first), in the
            // time one round of both files took: a run's ratio no longer
            // depends on which server ran first. The 1 MiB file is not in
            // the table.
            let v = nabla_json(&strings(&[
                "bench",
                "http",
                "--json",
                "--file",
                "1k",
                "--rounds",
                "2",
                "--connections",
                "32",
                "--duration",
                d,
            ]))?;
            if let Some((p, r)) = http_ratios(&v) {
                p99.push(p);
                rps.push(r);
            }
            cost.extend(http_cost_ratio(&v));
            let (a, k) = http_freezes(&v);
            again += a;
            kept += k;
        }
        if again + kept > 0 {
            notes.push(format!(
                "httpd 1 KiB: {again} round(s) measured again after the host froze a vCPU \
                 (steal), {kept} kept with a freeze (nabla bench http --freeze-retries)"
            ));
        }
        rows.push(Row {
            metric: "httpd 1 KiB, wrk -c32, p99 / nginx p99".into(),
            values: p99,
            goal: Goal::AtMost(1.0),
        });
        rows.push(Row {
            metric: "httpd 1 KiB, wrk -c32, requests/s / nginx".into(),
            values: rps,
            goal: Goal::AtLeast(1.5),
        });
        // The same goal at equal CPU: what the requests/s ratio tends to
        // when both servers and their wrk get the same share of the machine.
        rows.push(Row {
            metric: "httpd 1 KiB, CPU/request (server + wrk), nginx / httpd".into(),
            values: cost,
            goal: Goal::AtLeast(1.5),
        });
    }
    if root && want("kvd") {
        let (mut p1, mut p16) = (Vec::new(), Vec::new());
        let requests = if args.quick { "50000" } else { "200000" };
        for _ in 0..n {
            let v = nabla_json(&strings(&[
                "bench",
                "kvd",
                "--json",
                "--rounds",
                "1",
                "--pipeline",
                "16",
                "--clients",
                "50",
                "--requests",
                requests,
            ]))?;
            p1.extend(kvd_ratio(&v, "SET", 1));
            p16.extend(kvd_ratio(&v, "SET", 16));
        }
        rows.push(Row {
            metric: "kvd SET, redis-benchmark -P 1, 50 clients / redis-server".into(),
            values: p1,
            goal: Goal::AtLeast(1.3),
        });
        rows.push(Row {
            metric: "kvd SET, redis-benchmark -P 16, 50 clients / redis-server".into(),
            values: p16,
            goal: Goal::AtLeast(1.3),
        });
    }
    if root && want("hap") && args.hap_runs > 0 {
        let (mut httpd, mut kvd) = (Vec::new(), Vec::new());
        let mut peers = Vec::new();
        for i in 0..args.hap_runs {
            let out = args.hap_out.join(format!("run{i}"));
            let v = nabla_json(&[
                "hap".into(),
                "compare".into(),
                "--pairs".into(),
                "httpd,kvd".into(),
                "--json".into(),
                "--out".into(),
                out.display().to_string(),
            ])?;
            if let Some((g, p)) = hap_steady(&v, "httpd") {
                httpd.push(g);
                peers.push(format!("nginx {p}"));
            }
            if let Some((g, p)) = hap_steady(&v, "kvd") {
                kvd.push(g);
                peers.push(format!("redis-server {p}"));
            }
            if let Some(k) = v["kernel"].as_str() {
                notes.push(format!("HAP run {i}: kernel {k}, {}", out.display()));
            }
        }
        notes.push(format!("HAP peers (steady functions, same runs): {}", peers.join(", ")));
        rows.push(Row {
            metric: "HAP steady kernel functions, httpd (count, not a ratio)".into(),
            values: httpd,
            goal: Goal::AtMost(120.0),
        });
        rows.push(Row {
            metric: "HAP steady kernel functions, kvd (count, not a ratio)".into(),
            values: kvd,
            goal: Goal::AtMost(120.0),
        });
    }
    println!(
        "issue 17: every figure a ratio to its peer measured in the same run, over {n} run(s)"
    );
    print!("{}", render(&rows));
    for note in notes {
        println!("  {note}");
    }
    Ok(())
}

#[allow(unsafe_code)]
fn nix_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_goal_is_a_row_and_a_crash_is_an_error() {
        assert!(accept(true, r#"{"rounds": 3}"#).is_ok());
        assert!(accept(false, r#"{"goal_met": false, "rounds": 3}"#).is_ok());
        assert!(accept(false, r#"{"goal_met": true}"#).is_err());
        assert!(accept(false, r#"{"rounds": 3}"#).is_err());
        assert!(accept(false, "thread main panicked").is_err());
        assert!(accept(true, "").is_err());
    }
    use serde_json::json;

    #[test]
    fn reads_each_benchmarks_json() {
        let s = json!({"headline": {"ratio": 1.56}});
        assert_eq!(startup_ratio(&s), Some(1.56));
        // The shape of `nabla bench tcp --json` (tcp.rs): per-round ratios.
        let t = json!({"directions": [
            {"direction": "server_to_client", "ratio": {"min": 0.5, "median": 1.0, "max": 1.5},
             "runs": [{"ratio": 0.5, "tender": {}, "native": {}}, {"ratio": 1.5}]},
            {"direction": "client_to_server", "ratio": {"min": 0.7, "median": 0.7, "max": 0.7},
             "runs": [{"ratio": 0.7}]},
        ]});
        assert_eq!(tcp_ratios(&t, "server_to_client"), [0.5, 1.5]);
        assert_eq!(tcp_ratios(&t, "client_to_server"), [0.7]);
        assert!(tcp_ratios(&t, "sideways").is_empty());
        let h = json!({"files": [
            {"bytes": 1048576, "ratio_p99": 9.0, "ratio_requests_per_sec": 9.0},
            {"bytes": 1024, "ratio_p99": 2.7, "ratio_requests_per_sec": 1.2},
        ]});
        assert_eq!(http_ratios(&h), Some((2.7, 1.2)));
        assert_eq!(http_ratios(&json!({})), None);
        assert_eq!(http_cost_ratio(&h), None);
        let c = json!({"files": [{"bytes": 1024, "ratio_cpu_per_request": 1.9}]});
        assert_eq!(http_cost_ratio(&c), Some(1.9));
        assert_eq!(http_freezes(&h), (0, 0));
        let f = json!({"files": [
            {"bytes": 1048576, "rounds_remeasured_after_a_freeze": 5},
            {"bytes": 1024, "rounds_remeasured_after_a_freeze": 2,
             "rounds": {"vcpu_freezes": [[0, 0], [1, 0], [0, 3]]}},
        ]});
        assert_eq!(http_freezes(&f), (2, 2));
        let k = json!({"results": [
            {"test": "SET", "pipeline": 1, "kvd_over_redis_rps": 1.4},
            {"test": "GET", "pipeline": 16, "kvd_over_redis_rps": 0.9},
            {"test": "SET", "pipeline": 16, "kvd_over_redis_rps": 1.01},
        ]});
        assert_eq!(kvd_ratio(&k, "SET", 1), Some(1.4));
        assert_eq!(kvd_ratio(&k, "SET", 16), Some(1.01));
        assert_eq!(kvd_ratio(&k, "SET", 4), None);
        let hap = json!({"pairs": [{"pair": "httpd", "guest_steady": 192, "peer_count": 599}]});
        assert_eq!(hap_steady(&hap, "httpd"), Some((192.0, 599.0)));
        assert_eq!(hap_steady(&hap, "kvd"), None);
    }

    #[test]
    fn the_worst_run_decides() {
        let rows = [
            Row { metric: "a".into(), values: vec![0.95, 0.85, 1.2], goal: Goal::AtLeast(0.9) },
            Row { metric: "b".into(), values: vec![0.9, 0.8], goal: Goal::AtMost(1.0) },
            Row { metric: "c".into(), values: vec![], goal: Goal::AtMost(120.0) },
            Row { metric: "d".into(), values: vec![192.0, 201.0], goal: Goal::AtMost(120.0) },
        ];
        let t = render(&rows);
        let line = |m: &str| t.lines().find(|l| l.trim_start().starts_with(m)).unwrap().to_string();
        assert!(line("a ").ends_with("missed"), "{t}");
        assert!(line("a ").contains("0.85–1.20"), "{t}");
        assert!(line("a ").contains(" 0.95 "), "{t}");
        assert!(line("b ").ends_with("met"), "{t}");
        assert!(line("c ").ends_with("not measured"), "{t}");
        assert!(line("d ").contains("192–201") && line("d ").contains("≤ 120"), "{t}");
    }
}
