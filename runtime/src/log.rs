//! The runtime's log: `--log FILE` in runc's formats (`--log-format text`
//! or `json`, one record per line); errors also go to stderr, as runc's do.
//!
//! containerd's shim and podman's conmon read errors from the log file
//! (`{"level":"error","msg":...,"time":...}` lines) when a command fails.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The record formats of `--log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `time="..." level=error msg="..."`.
    Text,
    /// `{"level":"error","msg":"...","time":"..."}`.
    Json,
}

/// Severity of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Warning,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// Where records go.
#[derive(Debug, Clone)]
pub struct Log {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

impl Log {
    pub fn new(file: Option<PathBuf>, format: Format, debug: bool) -> Log {
        Log { file, format, debug }
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.record(Level::Debug, msg);
        }
    }

    /// A warning goes to the log, or to stderr without one: with a log, the
    /// runtime's stderr is often the container's, as it is for runc.
    pub fn warn(&self, msg: &str) {
        if self.file.is_none() {
            eprintln!("nabla-runc: warning: {msg}");
        }
        self.record(Level::Warning, msg);
    }

    /// An error goes to the log and to stderr.
    pub fn error(&self, msg: &str) {
        eprintln!("nabla-runc: {msg}");
        self.record(Level::Error, msg);
    }

    fn record(&self, level: Level, msg: &str) {
        let Some(path) = &self.file else { return };
        let time = rfc3339(SystemTime::now());
        let line = match self.format {
            Format::Json => {
                let mut line = serde_json::json!({
                    "level": level.name(),
                    "msg": msg,
                    "time": time,
                })
                .to_string();
                line.push('\n');
                line
            }
            Format::Text => format!(
                "time=\"{time}\" level={} msg={}\n",
                level.name(),
                serde_json::Value::from(msg)
            ),
        };
        // A log that cannot be written must not turn a success into a
        // failure: the message still went to stderr where it matters.
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// `t` as an RFC 3339 UTC timestamp with nanoseconds, as the OCI state and
/// runc's logs write times.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_795_910_400, 5);
        assert_eq!(rfc3339(t), "2026-11-29T00:00:00.000000005Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000000Z");
    }
}
