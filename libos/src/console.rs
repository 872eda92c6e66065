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
        let t = crate::time::since_boot();
        let mut w = ConsoleWriter::new();
        let _ = writeln!(
            w,
            "[{:5}.{:06} {:<5} {}] {}",
            t.as_secs(),
            t.subsec_micros(),
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Installs the console logger with the level from the boot info.
pub(crate) fn init_log(raw_level: u32) {
    // Only fails if a logger is already set, and then that one stays.
    let _ = log::set_logger(&LOGGER);
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
    fn init_log_sets_the_level_and_records_filter_by_it() {
        init_log(abi::log_level::ERROR);
        assert_eq!(log::max_level(), log::LevelFilter::Error);
        let warn = log::Metadata::builder().level(log::Level::Warn).build();
        let error = log::Metadata::builder().level(log::Level::Error).build();
        assert!(!log::logger().enabled(&warn));
        assert!(log::logger().enabled(&error));
    }
}
