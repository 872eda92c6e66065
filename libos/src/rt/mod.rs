//! The runtime: everything between the tender's jump and the application's
//! `main`, and what the link of a `no_std` binary needs.
//!
//! * `entry`: `_start`, in assembly, aligns the stack and calls [`start`].
//! * `boot`: the boot info the tender left in the boot region.
//! * `heap`: the allocator (talc) over the heap region.
//! * `panic`: what a `no_std` guest's panic handler does (message,
//!   location, exit 255) and the unwinding stubs the prebuilt `alloc`
//!   references; `app!` installs them.
//! * `mem`: `memcpy` and friends, which `compiler_builtins` does not export
//!   on this target.
//!
//! On the host (`cargo test`, and `cargo fuzz`, which sets `--cfg fuzzing`)
//! only the parts that do not define process-wide symbols are compiled, so
//! that libos's logic can be unit-tested and fuzzed with std.

pub(crate) mod boot;
#[cfg(not(any(test, fuzzing)))]
pub mod entry;
pub mod heap;
#[cfg(not(any(test, fuzzing)))]
mod mem;
#[cfg(not(any(test, fuzzing)))]
pub mod panic;

/// Who installs the `log` facade's logger.
#[cfg(not(any(test, fuzzing)))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logger {
    /// libos, its console logger (a `no_std` guest).
    Console,
    /// The program, if it wants one (a std guest): `log::set_logger` can
    /// succeed only once in a process.
    Program,
}

/// What `_start` calls: validate the boot info, set up the heap, run
/// `early` (a std guest's C library gives the main thread its TLS there,
/// before anything allocates through the program's global allocator,
/// which may keep its state in TLS: mimalloc does), set up the logger and
/// the network, run the application, exit with its status.
#[cfg(not(any(test, fuzzing)))]
fn start(boot: usize, logger: Logger, early: fn()) -> ! {
    let Some(info) = boot::init(boot) else {
        crate::console::write_all(
            b"libos: no valid boot info: a nabla guest must be started by a compatible tender\n",
        );
        crate::process::exit(255);
    };
    heap::init(info.heap_start, info.heap_end);
    early();
    crate::console::init_log(info.log_level, logger == Logger::Console);
    if let Err(e) = crate::net::init() {
        crate::println!("libos: bad network configuration: {e}");
        crate::process::exit(255);
    }
    log::info!(
        "libos: {} booted: {} MiB guest memory, heap {:#x}..{:#x}, stack {:#x}..{:#x}",
        crate::env::args().next().unwrap_or("guest"),
        info.mem_size >> 20,
        info.heap_start,
        info.heap_end,
        info.stack_bottom,
        info.stack_top,
    );
    crate::process::exit(entry::app_main())
}
