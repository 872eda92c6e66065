//! What a `no_std` guest's panic handler does, and the unwinding symbols
//! its link needs. `app!` defines the handler and the symbols in the
//! application (a std guest has std's handler and a real unwinder instead).
//!
//! A `no_std` guest cannot unwind: it builds with `panic = "abort"`. A
//! panic prints `guest panicked at FILE:LINE:COL:` and the message on the
//! console and exits with status 255. If the panic is an allocation failure
//! (the standard library's message `memory allocation of N bytes failed`),
//! it adds how large the heap is and how to give the guest more.
//!
//! # Safety
//!
//! The two stubs exist only to satisfy references from the prebuilt `alloc`
//! library, which is compiled with unwinding; with `panic = "abort"` nothing
//! ever calls them.

#![allow(unsafe_code)]

use core::fmt::{self, Write};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::console::ConsoleWriter;

/// Set by the first panic: a panic while printing a panic exits at once.
static PANICKING: AtomicBool = AtomicBool::new(false);

const OOM_PREFIX: &str = "memory allocation of ";

/// The panic handler of a `no_std` guest (`app!` installs it).
pub fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        crate::process::exit_now(255);
    }
    let mut out = ConsoleWriter::new();
    match info.location() {
        Some(l) => {
            let _ = writeln!(out, "guest panicked at {}:{}:{}:", l.file(), l.line(), l.column());
        }
        None => {
            let _ = out.write_str("guest panicked:\n");
        }
    }
    let _ = writeln!(out, "{}", info.message());
    let mut probe = PrefixProbe { prefix: OOM_PREFIX, matched: 0, ok: true };
    let _ = write!(probe, "{}", info.message());
    if probe.ok && probe.matched == OOM_PREFIX.len() {
        let heap = super::heap::heap_stats();
        let _ = writeln!(
            out,
            "libos: out of memory: the heap ({} KiB, {} KiB in use) is exhausted; \
             give the guest more memory with the tender's --mem option",
            heap.size / 1024,
            heap.in_use / 1024,
        );
    }
    out.flush();
    crate::process::exit_now(255)
}

/// Checks whether formatted output starts with `prefix`, without a buffer.
struct PrefixProbe {
    prefix: &'static str,
    matched: usize,
    ok: bool,
}

impl Write for PrefixProbe {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let want = &self.prefix.as_bytes()[self.matched..];
        let n = want.len().min(s.len());
        if want[..n] != s.as_bytes()[..n] {
            self.ok = false;
        }
        self.matched += n;
        // Stop formatting once the answer is known.
        if !self.ok || self.matched == self.prefix.len() { Err(fmt::Error) } else { Ok(()) }
    }
}

/// Never called: what `app!` defines as `rust_eh_personality`, which the
/// prebuilt `alloc` (built with unwinding) references.
pub extern "C" fn eh_personality() {}

/// Never called: what `app!` defines as `_Unwind_Resume`, which the
/// prebuilt `alloc` references under LTO.
pub extern "C" fn unwind_resume() -> ! {
    crate::process::exit_now(255)
}
