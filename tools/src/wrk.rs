//! Parsing the report of `wrk --latency`.
//!
//! ```text
//! Running 10s test @ http://10.0.0.2/bench/1k.bin
//!   1 threads and 16 connections
//!   Thread Stats   Avg      Stdev     Max   +/- Stdev
//!     Latency   322.30us  675.37us   9.08ms   94.76%
//!     Req/Sec    73.52k    16.40k   98.67k    50.00%
//!   Latency Distribution
//!      50%  177.00us
//!      75%  237.00us
//!      90%  378.00us
//!      99%    3.80ms
//!   219456 requests in 3.00s, 248.43MB read
//!   Socket errors: connect 0, read 0, write 0, timeout 12
//!   Non-2xx or 3xx responses: 5
//! Requests/sec:  73037.55
//! Transfer/sec:     82.68MB
//! ```
//!
//! Times are printed with a unit (`us`, `ms`, `s`, `m`, `h`), sizes with a
//! binary prefix (`KB` is 1024 bytes). The `Socket errors` and `Non-2xx`
//! lines appear only when there are some.

/// A wrk script (`wrk -s`) that prints, after the run, the latency at the
/// percentiles `--latency` leaves out, one `nabla-latency PERCENT US` line
/// each, read by [`parse`] into [`Report::latency_us`].
pub const PERCENTILES_SCRIPT: &str = "\
-- Written by nabla: the latency percentiles wrk --latency does not print.
done = function(summary, latency, requests)
  for _, p in ipairs({50, 90, 99, 99.9, 99.99}) do
    io.write(string.format(\"nabla-latency %g %d\\n\", p, latency:percentile(p)))
  end
end
";

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `Requests/sec:`.
    pub requests_per_sec: f64,
    /// `Transfer/sec:`, bytes per second.
    pub bytes_per_sec: f64,
    /// Completed requests (`N requests in ...`).
    pub requests: u64,
    /// Latency percentiles from `Latency Distribution`, and from the
    /// `nabla-latency` lines of [`PERCENTILES_SCRIPT`] for the others, µs:
    /// (percent, µs).
    pub latency_us: Vec<(f64, f64)>,
    /// Connect, read, write errors and timeouts (`Socket errors:`).
    pub socket_errors: SocketErrors,
    /// `Non-2xx or 3xx responses:`.
    pub non_2xx: u64,
}

/// wrk's `Socket errors:` line; all zero when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketErrors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
}

impl SocketErrors {
    /// The sum of the four counters.
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

impl Report {
    /// The latency at `percent` (50, 75, 90 or 99), µs.
    pub fn latency(&self, percent: f64) -> Option<f64> {
        self.latency_us.iter().find(|(p, _)| *p == percent).map(|&(_, us)| us)
    }
}

/// A time as wrk prints it (`177.00us`, `3.80ms`, `1.02s`, `2.00m`,
/// `1.00h`), in µs.
pub fn parse_time_us(s: &str) -> Option<f64> {
    // Longest suffixes first: "ms" before "s".
    let units = [("us", 1.0), ("ms", 1e3), ("s", 1e6), ("m", 60e6), ("h", 3600e6)];
    let (num, scale) = units.iter().find_map(|&(u, k)| s.strip_suffix(u).map(|n| (n, k)))?;
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

/// A size as wrk prints it (`823.00B`, `82.68MB`, `0.91GB`), in bytes.
pub fn parse_bytes(s: &str) -> Option<f64> {
    let num = s.strip_suffix('B')?;
    let prefixes = [('K', 1u32), ('M', 2), ('G', 3), ('T', 4), ('P', 5)];
    let (num, scale) = match prefixes.iter().find_map(|&(p, e)| num.strip_suffix(p).map(|n| (n, e)))
    {
        Some((n, e)) => (n, 1024f64.powi(e as i32)),
        None => (num, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

/// The value after `prefix` on a line, trimmed.
fn after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.trim().strip_prefix(prefix).map(str::trim)
}

/// `connect 0, read 1, write 2, timeout 3`.
fn parse_socket_errors(s: &str) -> Option<SocketErrors> {
    let mut e = SocketErrors::default();
    for part in s.split(',') {
        let (name, n) = part.trim().split_once(' ')?;
        let n: u64 = n.trim().parse().ok()?;
        match name {
            "connect" => e.connect = n,
            "read" => e.read = n,
            "write" => e.write = n,
            "timeout" => e.timeout = n,
            _ => return None,
        }
    }
    Some(e)
}

/// Parses the output of `wrk --latency`. Fails, naming what is missing or
/// malformed, unless it has requests/s, transfer/s, the request count and
/// the latency distribution.
pub fn parse(text: &str) -> Result<Report, String> {
    let mut rps = None;
    let mut bps = None;
    let mut requests = None;
    let mut latency_us = Vec::new();
    let mut socket_errors = SocketErrors::default();
    let mut non_2xx = 0;
    let mut in_distribution = false;
    for line in text.lines() {
        let t = line.trim();
        if t == "Latency Distribution" {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            if let Some((p, v)) = t.split_once('%')
                && let Ok(p) = p.parse::<f64>()
            {
                let us = parse_time_us(v.trim())
                    .ok_or_else(|| format!("wrk: bad latency {:?}", v.trim()))?;
                latency_us.push((p, us));
                continue;
            }
            in_distribution = false;
        }
        if let Some(v) = after(t, "nabla-latency") {
            let (p, us) = v
                .split_once(' ')
                .and_then(|(p, us)| Some((p.parse::<f64>().ok()?, us.trim().parse::<f64>().ok()?)))
                .filter(|(p, us)| (0.0..=100.0).contains(p) && us.is_finite() && *us >= 0.0)
                .ok_or_else(|| format!("wrk: bad latency line {t:?}"))?;
            if !latency_us.iter().any(|(q, _)| *q == p) {
                latency_us.push((p, us));
            }
        } else if let Some(v) = after(t, "Requests/sec:") {
            rps = Some(v.parse::<f64>().map_err(|_| format!("wrk: bad Requests/sec {v:?}"))?);
        } else if let Some(v) = after(t, "Transfer/sec:") {
            bps = Some(parse_bytes(v).ok_or_else(|| format!("wrk: bad Transfer/sec {v:?}"))?);
        } else if let Some(v) = after(t, "Socket errors:") {
            socket_errors =
                parse_socket_errors(v).ok_or_else(|| format!("wrk: bad socket errors {v:?}"))?;
        } else if let Some(v) = after(t, "Non-2xx or 3xx responses:") {
            non_2xx = v.parse().map_err(|_| format!("wrk: bad non-2xx count {v:?}"))?;
        } else if let Some((n, _)) = t.split_once(" requests in ") {
            requests = Some(n.parse::<u64>().map_err(|_| format!("wrk: bad request count {n:?}"))?);
        }
    }
    let missing = |what: &str| format!("wrk printed no {what} (was --latency given?)");
    if latency_us.is_empty() {
        return Err(missing("latency distribution"));
    }
    Ok(Report {
        requests_per_sec: rps.ok_or_else(|| missing("Requests/sec"))?,
        bytes_per_sec: bps.ok_or_else(|| missing("Transfer/sec"))?,
        requests: requests.ok_or_else(|| missing("request count"))?,
        latency_us,
        socket_errors,
        non_2xx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "\
Running 3s test @ http://10.0.0.2/bench/1k.bin
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   322.30us  675.37us   9.08ms   94.76%
    Req/Sec    73.52k    16.40k   98.67k    50.00%
  Latency Distribution
     50%  177.00us
     75%  237.00us
     90%  378.00us
     99%    3.80ms
  219456 requests in 3.00s, 248.43MB read
Requests/sec:  73037.55
Transfer/sec:     82.68MB
";

    const ERRORS: &str = "\
Running 10s test @ http://10.0.1.2/bench/1m.bin
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02s   300.11ms   1.99s    70.00%
    Req/Sec    15.20      8.11    40.00     60.00%
  Latency Distribution
     50%    1.01s 
     75%    1.20s 
     90%    1.50s 
     99%    1.99s 
  298 requests in 10.01s, 298.60MB read
  Socket errors: connect 0, read 3, write 1, timeout 12
  Non-2xx or 3xx responses: 5
Requests/sec:     29.77
Transfer/sec:     29.83MB
";

    #[test]
    fn the_scripts_percentiles() {
        let text = format!(
            "{CLEAN}nabla-latency 50 170\nnabla-latency 90 380\nnabla-latency 99 3801\n\
             nabla-latency 99.9 7100\nnabla-latency 99.99 9010\n"
        );
        let r = parse(&text).unwrap();
        // wrk's own figures stay; the script adds what they lack.
        assert_eq!(r.latency(50.0), Some(177.0));
        assert_eq!(r.latency(99.0), Some(3800.0));
        assert_eq!(r.latency(99.9), Some(7100.0));
        assert_eq!(r.latency(99.99), Some(9010.0));
        for bad in [
            "nabla-latency 99.9",
            "nabla-latency x 12",
            "nabla-latency 101 5",
            "nabla-latency 99.9 -1",
        ] {
            assert!(parse(&format!("{CLEAN}{bad}\n")).is_err(), "{bad}");
        }
    }

    #[test]
    fn clean_run() {
        let r = parse(CLEAN).unwrap();
        assert_eq!(r.requests_per_sec, 73037.55);
        assert_eq!(r.requests, 219456);
        assert!((r.bytes_per_sec - 82.68 * 1024.0 * 1024.0).abs() < 1.0);
        assert_eq!(r.latency(50.0), Some(177.0));
        assert_eq!(r.latency(99.0), Some(3800.0));
        assert_eq!(r.latency_us.len(), 4);
        assert_eq!(r.socket_errors, SocketErrors::default());
        assert_eq!(r.non_2xx, 0);
    }

    #[test]
    fn errors_and_seconds() {
        let r = parse(ERRORS).unwrap();
        assert_eq!(r.requests_per_sec, 29.77);
        assert_eq!(r.latency(99.0), Some(1.99e6));
        assert_eq!(r.latency(50.0), Some(1.01e6));
        assert_eq!(r.socket_errors, SocketErrors { connect: 0, read: 3, write: 1, timeout: 12 });
        assert_eq!(r.socket_errors.total(), 16);
        assert_eq!(r.non_2xx, 5);
        assert_eq!(r.requests, 298);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_us("177.00us"), Some(177.0));
        assert_eq!(parse_time_us("3.80ms"), Some(3800.0));
        assert_eq!(parse_time_us("1.50s"), Some(1.5e6));
        assert_eq!(parse_time_us("2.00m"), Some(120e6));
        assert_eq!(parse_time_us("1.00h"), Some(3600e6));
        assert_eq!(parse_time_us("3.80"), None);
        assert_eq!(parse_time_us("-1.00ms"), None);
        assert_eq!(parse_time_us("ms"), None);
        assert_eq!(parse_time_us("nanms"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("823.00B"), Some(823.0));
        assert_eq!(parse_bytes("1.00KB"), Some(1024.0));
        assert_eq!(parse_bytes("2.00MB"), Some(2.0 * 1024.0 * 1024.0));
        assert_eq!(parse_bytes("0.50GB"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse_bytes("12"), None);
        assert_eq!(parse_bytes("xMB"), None);
    }

    #[test]
    fn incomplete_output_is_an_error() {
        let e = parse("Running 1s test @ http://x/\n").unwrap_err();
        assert!(e.contains("latency distribution"), "{e}");
        let no_rps: String = CLEAN
            .lines()
            .filter(|l| !l.starts_with("Requests/sec"))
            .map(|l| l.to_string() + "\n")
            .collect();
        assert!(parse(&no_rps).unwrap_err().contains("Requests/sec"));
        let bad = CLEAN.replace("3.80ms", "3.80xs");
        assert!(parse(&bad).unwrap_err().contains("bad latency"));
        let bad = CLEAN.replace("Socket", "").replace(
            "Requests/sec",
            "  Socket errors: connect x, read 0, write 0, timeout 0\nRequests/sec",
        );
        assert!(parse(&bad).unwrap_err().contains("socket errors"));
    }
}
