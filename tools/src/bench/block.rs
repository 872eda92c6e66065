//! `nabla bench block`: sequential block throughput of a guest through
//! libos against `dd` with the same block size on the same file.
//!
//! The disk is one file of `--size-mib` MiB in `--dir` (default: the
//! system's temporary directory). Per round, interleaved so that drift hits
//! all alike:
//!
//! | key | command | timed by |
//! | --- | --- | --- |
//! | guest | `tender --block storage=FILE guest-blk bench KIB`: writes the whole disk in KIB-KiB requests, then reads it | the guest (`Instant` around each pass) |
//! | dd-write | `dd if=/dev/zero of=FILE bs=KIBk count=N conv=notrunc` | dd (its own report) |
//! | dd-read | `dd if=FILE of=/dev/null bs=KIBk` | dd |
//! | dd-zero | `dd if=/dev/zero of=/dev/null bs=KIBk count=N` | dd |
//!
//! Both sides run **warm**: the file stays in the page cache (a warm-up
//! round of each fills it and allocates every block), and before each
//! measured command the bench flushes the file (`fsync`), so each write
//! pass starts with no dirty pages and measures copying into the page
//! cache, not the disk. Cold reads would need `echo 3 >
//! /proc/sys/vm/drop_caches` (root) and measure the host's storage more
//! than either program. Neither side flushes inside its timing. Both time
//! only their copy loop (no process start-up); the guest's write pass moves
//! bytes from its memory, dd's reads `/dev/zero` into its buffer first:
//! `dd-zero` measures that part alone, for reference (not in the ratio).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::{Result, display_command, locate};
use crate::stats::Summary;

/// Options of `nabla bench block`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size of the disk, in MiB: each pass writes or reads all of it.
    #[arg(long, value_name = "MIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    size_mib: u64,

    /// Size of each request (the guest's `write`/`read`, dd's `bs`), in
    /// KiB: a multiple of 1 KiB that divides the disk.
    #[arg(long, value_name = "KIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    block_kib: u64,

    /// Measured rounds; each runs the guest and both dd commands once.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,

    /// Directory for the disk file [default: the system's temporary
    /// directory]. Its file system is what both sides write to.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// The tender [default: `tender` next to this executable].
    #[arg(long, value_name = "PATH")]
    tender: Option<PathBuf>,

    /// The guest [default: `guest-blk` next to this executable].
    #[arg(long, value_name = "PATH")]
    guest: Option<PathBuf>,

    /// Prints the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `cmd` to completion; it must succeed. Returns stdout and stderr.
fn output(cmd: &mut Command) -> Result<(String, String)> {
    let out = cmd
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", display_command(cmd)))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}):\n{}",
            display_command(cmd),
            out.status,
            stderr.trim_end()
        ));
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), stderr))
}

/// The seconds in dd's report: `N bytes (...) copied, 0.123 s, 8.7 GB/s`.
fn dd_seconds(stderr: &str) -> Option<f64> {
    let line = stderr.lines().find(|l| l.contains(" copied, "))?;
    let rest = line.split(" copied, ").nth(1)?;
    rest.split(" s").next()?.trim().parse().ok()
}

/// The `write BYTES NANOS` and `read BYTES NANOS` lines of `guest-blk bench`,
/// as seconds.
fn guest_seconds(stdout: &str, bytes: u64) -> Option<(f64, f64)> {
    let field = |key: &str| {
        let line = stdout.lines().find(|l| l.starts_with(key))?;
        let mut words = line.split_whitespace().skip(1);
        let b: u64 = words.next()?.parse().ok()?;
        let ns: u64 = words.next()?.parse().ok()?;
        (b == bytes && ns > 0).then_some(ns as f64 / 1e9)
    };
    Some((field("write ")?, field("read ")?))
}

/// The disk file, removed on drop.
#[derive(Debug)]
struct DiskFile(PathBuf);

impl DiskFile {
    /// Creates `nabla-bench-block-PID.img` of `bytes` (sparse) in `dir`.
    fn create(dir: &Path, bytes: u64) -> Result<Self> {
        let path = dir.join(format!("nabla-bench-block-{}.img", std::process::id()));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let file = Self(path);
        OpenOptions::new()
            .write(true)
            .open(&file.0)
            .and_then(|f| f.set_len(bytes))
            .map_err(|e| format!("cannot make {} {bytes} bytes long: {e}", file.0.display()))?;
        Ok(file)
    }
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Flushes `path`'s dirty pages, so that a write pass starts clean.
fn flush(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot flush {}: {e}", path.display()))
}

/// MB/s (10^6 bytes per second) for `bytes` in `secs`.
fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Runs the benchmark and prints the report.
pub fn run(args: &Args) -> Result<()> {
    let bytes = args.size_mib << 20;
    let block = args.block_kib << 10;
    if !bytes.is_multiple_of(block) {
        return Err(format!(
            "--block-kib {}: a request size must divide the disk ({} MiB)",
            args.block_kib, args.size_mib
        ));
    }
    let count = bytes / block;
    let tender = locate(args.tender.as_deref(), "tender", "--tender")?;
    let guest = locate(args.guest.as_deref(), "guest-blk", "--guest")?;
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let disk = DiskFile::create(&dir, bytes)?;
    let file = disk.0.clone();

    // The request buffer, with room for the rest of the guest.
    let mem_mib = ((2 * block) >> 20) + 64;
    let mut guest_cmd = Command::new(&tender);
    guest_cmd
        .arg("--mem")
        .arg(mem_mib.to_string())
        .arg("--block")
        .arg(format!("storage={}", file.display()))
        .arg(&guest)
        .args(["bench", &args.block_kib.to_string()]);
    let bs = format!("bs={}k", args.block_kib);
    let mut dd_write = Command::new("dd");
    dd_write.args([
        "if=/dev/zero".to_string(),
        format!("of={}", file.display()),
        bs.clone(),
        format!("count={count}"),
        "conv=notrunc".to_string(),
    ]);
    let mut dd_read = Command::new("dd");
    dd_read.args([format!("if={}", file.display()), "of=/dev/null".to_string(), bs.clone()]);
    let mut dd_zero = Command::new("dd");
    dd_zero.args([
        "if=/dev/zero".to_string(),
        "of=/dev/null".to_string(),
        bs,
        format!("count={count}"),
    ]);

    // MB/s: guest write, guest read, dd write, dd read, dd /dev/zero only.
    let mut samples: [Vec<f64>; 5] = Default::default();
    for round in 0..=args.rounds {
        let warm_up = round == 0;
        flush(&file)?;
        let (out, _) = output(&mut guest_cmd)?;
        let (w, r) = guest_seconds(&out, bytes)
            .ok_or_else(|| format!("{}: unexpected output:\n{out}", display_command(&guest_cmd)))?;
        flush(&file)?;
        let (_, err) = output(&mut dd_write)?;
        let dw = dd_seconds(&err)
            .ok_or_else(|| format!("{}: no timing in:\n{err}", display_command(&dd_write)))?;
        let (_, err) = output(&mut dd_read)?;
        let dr = dd_seconds(&err)
            .ok_or_else(|| format!("{}: no timing in:\n{err}", display_command(&dd_read)))?;
        let (_, err) = output(&mut dd_zero)?;
        let dz = dd_seconds(&err)
            .ok_or_else(|| format!("{}: no timing in:\n{err}", display_command(&dd_zero)))?;
        if !warm_up {
            for (s, secs) in samples.iter_mut().zip([w, r, dw, dr, dz]) {
                s.push(mbps(bytes, secs));
            }
        }
    }
    let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    if size != bytes {
        return Err(format!("{} changed size: {size} bytes, not {bytes}", file.display()));
    }
    let [gw, gr, dw, dr, dz] = samples.map(|s| Summary::of(&s));
    let write_ratio = gw.median / dw.median;
    let read_ratio = gr.median / dr.median;

    if args.json {
        let s = |x: &Summary| json!({"median": round1(x.median), "p10": round1(x.p10), "p90": round1(x.p90)});
        let report = json!({
            "benchmark": "block",
            "size_mib": args.size_mib,
            "block_kib": args.block_kib,
            "rounds": args.rounds,
            "cache": "warm",
            "file": file,
            "tender": tender,
            "guest": guest,
            "mb_per_s": {
                "guest_write": s(&gw), "guest_read": s(&gr),
                "dd_write": s(&dw), "dd_read": s(&dr), "dd_zero_only": s(&dz),
            },
            "ratio": {
                "write": round3(write_ratio),
                "read": round3(read_ratio),
                "of": "median(guest MB/s) / median(dd MB/s)",
            },
        });
        println!("{report:#}");
        return Ok(());
    }

    println!(
        "block: sequential {} MiB in {} KiB requests, warm page cache, MB/s (10^6 B/s)",
        args.size_mib, args.block_kib
    );
    println!("  {} rounds, interleaved, after a warm-up round", args.rounds);
    println!("  file:   {}", file.display());
    println!("  guest:  {}", display_command(&guest_cmd));
    println!("  dd:     {}", display_command(&dd_write));
    println!("          {}", display_command(&dd_read));
    println!("          {}  (reference)", display_command(&dd_zero));
    println!();
    println!("  {:<18} {:>9} {:>9} {:>9}", "", "median", "p10", "p90");
    let rows = [
        ("guest write", gw),
        ("dd write", dw),
        ("guest read", gr),
        ("dd read", dr),
        ("dd /dev/zero only", dz),
    ];
    for (label, s) in rows {
        println!("  {label:<18} {:>9.0} {:>9.0} {:>9.0}", s.median, s.p10, s.p90);
    }
    println!();
    println!("  guest / dd: write {write_ratio:.2}×, read {read_ratio:.2}×");
    Ok(())
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
    fn dd_reports_parse() {
        let err = "1024+0 records in\n1024+0 records out\n1073741824 bytes (1.1 GB, 1.0 GiB) \
                   copied, 0.412345 s, 2.6 GB/s\n";
        assert_eq!(dd_seconds(err), Some(0.412345));
        assert_eq!(dd_seconds("1 bytes copied, 2 s, 3 B/s"), Some(2.0));
        assert_eq!(dd_seconds("nothing"), None);
    }

    #[test]
    fn guest_reports_parse() {
        let out = "write 1048576 500000000\nread 1048576 250000000\n";
        assert_eq!(guest_seconds(out, 1 << 20), Some((0.5, 0.25)));
        assert_eq!(guest_seconds(out, 1 << 21), None);
        assert_eq!(guest_seconds("write 1 1\n", 1), None);
    }
}
