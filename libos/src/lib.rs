//! libos: the library operating system a nabla guest links against.
//!
//! A nabla application is an ordinary `#![no_std]` Rust crate that depends
//! on this one. Linked with `libos-build`'s arguments it becomes a static
//! ELF that the `tender` maps into its own process and jumps to, behind a
//! seccomp filter that lets through a handful of system calls. Everything a
//! process usually asks the kernel for runs here, in the guest, instead.
//!
//! The crate reads bottom-up, one layer per module:
//!
//! * [`hypercall`]: the raw system calls the tender's filter allows, one
//!   function each. The only module with inline assembly apart from the
//!   runtime entry point and the mem functions.
//! * `rt` (private): the entry point, the boot info, the global allocator,
//!   the panic handler and the mem functions the link needs.
//! * [`process`], [`env`], [`time`], [`console`]: what std would offer on
//!   top: exit, arguments and environment, clocks and sleep, `print!` and a
//!   `log` backend.
//! * [`signal`]: `SIGTERM` and `SIGINT` as events (the tender's signalfds,
//!   polled with the taps); [`process::terminated`] on top.
//! * [`task`]: the async executor, which idles in one `ppoll` on the taps.
//! * [`net`]: smoltcp interfaces over the taps, TCP and UDP sockets.
//! * [`block`]: the attached disks, in whole sectors.
//! * [`fs`]: a FAT12/16/32 file system (VFAT long names) on a disk.
//!
//! An application declares itself, and the devices it needs, with [`app!`].

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod block;
pub mod calendar;
pub mod console;
pub mod env;
pub mod fs;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod hypercall;
pub mod net;
pub mod process;
mod rt;
pub mod signal;
pub mod task;
pub mod time;

pub use rt::heap::{HeapStats, heap_stats};

/// Re-exported for [`app!`]: the guest/tender contract.
pub use abi;

/// Re-exported so that applications log through the same `log` as libos.
pub use log;

/// Declares the application: its `main` function and the devices it needs.
///
/// ```ignore
/// #![no_std]
/// #![no_main]
///
/// libos::app!(main);
///
/// fn main() {
///     libos::println!("Hello, world!");
/// }
/// ```
///
/// With devices (each `"name": Kind`, where `Kind` is a
/// [`abi::DeviceKind`] variant); the tender attaches only what is declared:
///
/// ```ignore
/// libos::app!(main, devices: ["service0": Net, "storage": Block]);
/// ```
///
/// `main` may return `()`, an `i32` or `u8` exit status, or a `Result`
/// (an `Err` is printed and the guest exits with status 1). An `async fn
/// main` is declared with `libos::app!(async main, ...)` and runs under
/// [`task::block_on`], which also drives the network stack.
///
/// The macro places the guest's ELF notes (the ABI note and the manifest)
/// and its `PT_INTERP` in the binary itself, so the linker keeps them, and
/// defines the symbol the runtime calls after boot. Device names are checked
/// at compile time.
#[macro_export]
macro_rules! app {
    (async $main:path $(, devices: [$($name:literal : $kind:ident),* $(,)?])? $(,)?) => {
        $crate::app!(@guest $(devices: [$($name : $kind),*])?);

        #[unsafe(no_mangle)]
        fn __libos_main() -> i32 {
            $crate::process::Termination::report($crate::task::block_on($main()))
        }
    };
    ($main:path $(, devices: [$($name:literal : $kind:ident),* $(,)?])? $(,)?) => {
        $crate::app!(@guest $(devices: [$($name : $kind),*])?);

        #[unsafe(no_mangle)]
        fn __libos_main() -> i32 {
            // Called through a pointer the optimiser cannot see through,
            // so that `main` stays a function of its own, with its symbol
            // and frame: a debugger's `break main` lands in the
            // application's source, and backtraces show `main`.
            let main: fn() -> _ = $main;
            $crate::process::Termination::report(::core::hint::black_box(main)())
        }
    };
    (@guest $(devices: [$($name:literal : $kind:ident),*])?) => {
        $crate::notes!($(devices: [$($name : $kind),*])?);
        $crate::__entry!();

        #[global_allocator]
        static __LIBOS_ALLOCATOR: $crate::rt_private::Allocator = $crate::rt_private::Allocator;

        #[panic_handler]
        fn __libos_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::rt_private::panic(info)
        }

        /// Never called: the prebuilt `alloc` is built with unwinding.
        #[unsafe(no_mangle)]
        extern "C" fn rust_eh_personality() {
            $crate::rt_private::eh_personality()
        }

        /// Never called: the prebuilt `alloc` references it under LTO.
        #[unsafe(no_mangle)]
        extern "C" fn _Unwind_Resume() -> ! {
            $crate::rt_private::unwind_resume()
        }
    };
}

/// Places a guest's ELF notes (the ABI note and the manifest of the
/// devices it declares) and its `PT_INTERP` in the binary. [`app!`] does
/// this for a `no_std` guest; a std guest's declaration does it too.
#[macro_export]
#[doc(hidden)]
macro_rules! notes {
    ($(devices: [$($name:literal : $kind:ident),*])?) => {
        #[used]
        #[unsafe(link_section = ".note.nabla.abi")]
        static __NABLA_ABI_NOTE: $crate::abi::ElfNote<$crate::abi::AbiNote> =
            $crate::abi::ElfNote::new($crate::abi::NT_NABLA_ABI, $crate::abi::AbiNote::CURRENT);

        #[used]
        #[unsafe(link_section = ".note.nabla.manifest")]
        static __NABLA_MANIFEST_NOTE: $crate::abi::ElfNote<$crate::abi::Manifest> =
            $crate::abi::ElfNote::new(
                $crate::abi::NT_NABLA_MANIFEST,
                $crate::abi::Manifest::build(&[$($(
                    $crate::abi::DeviceDecl {
                        name: $name,
                        kind: $crate::abi::DeviceKind::$kind,
                    }
                ),*)?]),
            );

        #[used]
        #[unsafe(link_section = ".interp")]
        static __NABLA_INTERP: [u8; $crate::rt_private::INTERP.len()] = *$crate::rt_private::INTERP;
    };
}

#[doc(hidden)]
pub mod rt_private {
    pub use crate::rt::heap::Allocator;

    /// The boot info, once the runtime has checked it (`None` on the host).
    pub fn boot_info() -> Option<&'static crate::abi::BootInfo> {
        crate::rt::boot::info()
    }

    /// The guest's image file, read-only (`BootInfo::image_file`); empty
    /// if the tender gave none (and on the host).
    pub fn image_file() -> &'static [u8] {
        crate::rt::boot::image_file()
    }
    #[cfg(not(any(test, fuzzing)))]
    pub use crate::rt::entry::{start_from_asm, start_std};
    #[cfg(not(any(test, fuzzing)))]
    pub use crate::rt::panic::{eh_personality, panic, unwind_resume};

    /// The `PT_INTERP` of every guest: a path that does not exist, so that
    /// running a guest directly on Linux fails (`No such file or directory`)
    /// instead of executing it without the tender's filter.
    pub const INTERP: &[u8; 41] = b"/nonexistent/nabla-guest/run-with-tender\0";
}
