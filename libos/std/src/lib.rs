//! libos-std: ordinary Rust programs, with `fn main()` and std, as nabla
//! guests, on stable Rust and the host target.
//!
//! std on `x86_64-unknown-linux-gnu` is a prebuilt library that calls the C
//! library (glibc) for everything the kernel does: memory, files, threads,
//! time. A std guest links against this crate instead: [`libc`] holds
//! functions with glibc's names and ABI, written over libos's allocator,
//! console, clocks, executor and file system, so that std runs unchanged
//! behind the tender's filter and makes no new system call. Nothing of the
//! host's C library is linked (`libos_build::link_std_guest()` replaces it
//! with empty archives).
//!
//! An application is an ordinary binary crate whose `build.rs` calls
//! `libos_build::link_std_guest()` and whose `main.rs` holds one line more
//! than on Linux:
//!
//! ```ignore
//! libos_std::app!(devices: ["storage": Block]);
//!
//! fn main() {
//!     println!("Hello from std");
//! }
//! ```
//!
//! The whole `extern "C"` surface lives in [`libc`], one file per family;
//! on the host (`cargo test`) its functions are compiled as ordinary Rust
//! functions without their C names, so that they can be unit-tested beside
//! the host's own C library.

#![no_std]

#[cfg(test)]
extern crate std;

extern crate alloc;

pub mod libc;

#[doc(hidden)]
pub mod __private {
    pub use libos;
}

/// Declares a std program as a nabla guest: its ELF notes (the ABI and the
/// manifest of the devices it needs, as `libos::app!`) and the symbol the
/// link requires. `main` stays std's ordinary `fn main()`.
///
/// ```ignore
/// libos_std::app!();
/// libos_std::app!(devices: ["service0": Net, "storage": Block]);
/// ```
#[macro_export]
macro_rules! app {
    ($(devices: [$($name:literal : $kind:ident),* $(,)?])? $(,)?) => {
        $crate::__private::libos::notes!($(devices: [$($name : $kind),*])?);

        // The std linker script asserts that this is defined: a program
        // without the macro fails to link with a message that says so.
        #[used]
        #[unsafe(no_mangle)]
        static __libos_std_app: u8 = 0;
    };
}
