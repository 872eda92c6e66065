//! The console: the guest's standard output, and a `log` backend on it.
//!
//! `print!` and `println!` format into a buffer on the stack and hand it to
//! the host in as few `write` hypercalls as possible: a line usually becomes
//! one write, and a piece larger than the buffer goes out in one write of
//! its own, so output arrives whole and in order.
//!
//! The `log` level is chosen at launch (`tender --log-level`, `--quiet`) and
//! arrives in the boot info. Records look like
//! `[    0.000123 WARN  app::module] message`, the time being seconds since boot.
//!
//! Between warnings and information there is one more level, [`notice`]
//! (syslog's NOTICE: normal, but what the user needs to know, such as the
//! address a DHCP server gave an interface). `log` has no such level, so
//! notices are written here, with level `NOTE`, whenever warnings are shown:
//! at the default level (`warn`) and above, not with `--log-level error`,
//! `off` or `--quiet`.

use core::fmt::{self, Write};

use crate::hypercall::{self, CONSOLE_FD, Errno};

/// Writes all of `bytes` to the console, retrying short writes. Output that
/// the host refuses (a closed pipe, say) is dropped: a guest never stops
/// because nobody reads its console.
pub fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match hypercall::write(CONSOLE_FD, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n.min(bytes.len())..],
            Err(Errno::EINTR) => {}
            // A non-blocking console that is full: wait a little, the only
            // way to wait that the filter allows without a device fd.
            Err(Errno::EAGAIN) => crate::time::sleep(core::time::Duration::from_millis(1)),
            Err(_) => return,
        }
    }
}

const BUF: usize = 1024;

/// A `fmt::Write` that buffers on the stack and writes through to the
/// console when full, on [`flush`](Self::flush), and on drop.
#[derive(Debug)]
pub struct ConsoleWriter {
    buf: [u8; BUF],
    len: usize,
}

impl ConsoleWriter {
    /// An empty writer.
    pub const fn new() -> Self {
        Self { buf: [0; BUF], len: 0 }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        write_all(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Default for ConsoleWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        if self.len + bytes.len() > BUF {
            self.flush();
        }
        if bytes.len() > BUF {
            write_all(bytes);
        } else {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

impl Drop for ConsoleWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut w = ConsoleWriter::new();
    let _ = w.write_fmt(args);
}

/// Prints to the console, like std's `print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints to the console with a newline, like std's `println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The `log` level for a boot-info level number (see `abi::log_level`).
pub fn level_filter(raw: u32) -> log::LevelFilter {
    use abi::log_level as l;
    match raw {
        l::OFF => log::LevelFilter::Off,
        l::ERROR => log::LevelFilter::Error,
        l::WARN => log::LevelFilter::Warn,
        l::INFO => log::LevelFilter::Info,
        l::DEBUG => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut w = ConsoleWriter::new();
        let t = crate::time::since_boot();
        let _ = write_record(&mut w, t, record.level().as_str(), record.target(), *record.args());
    }

    fn flush(&self) {}
}

/// Writes one record, `[secs.micros LEVEL target] message` and a newline.
fn write_record(
    w: &mut impl Write,
    since_boot: core::time::Duration,
    level: &str,
    target: &str,
    args: fmt::Arguments<'_>,
) -> fmt::Result {
    let t = since_boot;
    writeln!(w, "[{:5}.{:06} {level:<5} {target}] {args}", t.as_secs(), t.subsec_micros())
}

/// Whether notices are shown when the log level is `level`: whenever
/// warnings are.
pub fn notices_shown(level: log::LevelFilter) -> bool {
    level >= log::LevelFilter::Warn
}

/// Writes a notice from `target` (a module path, as `log` records have),
/// level `NOTE`, if warnings are shown (see the module's documentation).
pub fn notice(target: &str, args: fmt::Arguments<'_>) {
    if notices_shown(log::max_level()) {
        let mut w = ConsoleWriter::new();
        let _ = write_record(&mut w, crate::time::since_boot(), "NOTE", target, args);
    }
}

/// Sets the `log` level from the boot info and, if `install`, installs
/// the console logger. Without it (a std guest), records go nowhere until
/// the program installs a logger of its own, which then sets its own
/// level; notices follow the level either way.
pub(crate) fn init_log(raw_level: u32, install: bool) {
    if install {
        // Only fails if a logger is already set, and then that one stays.
        let _ = log::set_logger(&LOGGER);
    }
    log::set_max_level(level_filter(raw_level));
    crate::time::mark_boot();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_in_order() {
        assert_eq!(level_filter(abi::log_level::OFF), log::LevelFilter::Off);
        assert_eq!(level_filter(abi::log_level::WARN), log::LevelFilter::Warn);
        assert_eq!(level_filter(abi::log_level::TRACE), log::LevelFilter::Trace);
        assert_eq!(level_filter(99), log::LevelFilter::Trace);
    }

    #[test]
    fn notices_show_from_the_default_level_up() {
        assert!(!notices_shown(log::LevelFilter::Off));
        assert!(!notices_shown(log::LevelFilter::Error));
        assert!(notices_shown(log::LevelFilter::Warn));
        assert!(notices_shown(log::LevelFilter::Info));
        assert!(notices_shown(log::LevelFilter::Trace));
    }

    #[test]
    fn records_have_time_level_and_target() {
        let mut s = String::new();
        let t = core::time::Duration::from_micros(2_000_042);
        write_record(&mut s, t, "NOTE", "libos::net", format_args!("net {}: up", "a")).unwrap();
        assert_eq!(s, "[    2.000042 NOTE  libos::net] net a: up\n");
        let mut s = String::new();
        write_record(&mut s, t, log::Level::Warn.as_str(), "app", format_args!("x")).unwrap();
        assert_eq!(s, "[    2.000042 WARN  app] x\n");
    }

    #[test]
    fn init_log_sets_the_level_and_records_filter_by_it() {
        init_log(abi::log_level::ERROR, true);
        assert_eq!(log::max_level(), log::LevelFilter::Error);
        let warn = log::Metadata::builder().level(log::Level::Warn).build();
        let error = log::Metadata::builder().level(log::Level::Error).build();
        assert!(!log::logger().enabled(&warn));
        assert!(log::logger().enabled(&error));
    }
}
