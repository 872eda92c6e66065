//! Build-script helper: links the calling package's binaries as nabla guests.
//!
//! An application's `build.rs` is one line:
//!
//! ```text
//! fn main() {
//!     libos_build::link_guest();
//! }
//! ```
//!
//! A build script can add link arguments only for its own package, and a
//! target-wide `rustflags` would also hit host code (build scripts,
//! proc-macros, the tender), so every guest package calls this. It writes the
//! guest linker script (`ld-scripts/guest.ld`, embedded here so that the helper
//! works from a git or registry checkout too) into `OUT_DIR` and passes:
//!
//! * `-nostartfiles -nostdlib`: libos provides `_start` and everything else;
//! * `-static -no-pie`: rustc asks for `-pie`, a later `-no-pie` wins and the
//!   result is `ET_EXEC` at the fixed base (the code itself stays
//!   position-independent, which is harmless at a fixed address);
//! * the linker script, page-sized segments, `--gc-sections`, no build id.

#![deny(unsafe_code)]

use std::path::PathBuf;

/// The guest linker script (`ld-scripts/guest.ld`).
pub const LINKER_SCRIPT: &str = include_str!("../../../ld-scripts/guest.ld");

/// Emits the `cargo:` lines that link this package's binaries as guests.
///
/// # Panics
///
/// When not run from a build script (no `OUT_DIR`) or `OUT_DIR` is not writable.
pub fn link_guest() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR: call from build.rs"));
    let script = out.join("nabla-guest.ld");
    std::fs::write(&script, LINKER_SCRIPT)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", script.display()));
    for arg in link_args(&script.display().to_string()) {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// The linker arguments for a guest, given the linker script's path.
pub fn link_args(script: &str) -> Vec<String> {
    [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
        "-Wl,-z,max-page-size=4096",
        "-Wl,-z,noexecstack",
        "-Wl,--orphan-handling=warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("-Wl,-T,{script}")])
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_places_image_at_guest_base() {
        assert!(LINKER_SCRIPT.contains("0x100000"));
        assert!(LINKER_SCRIPT.contains("KEEP(*(.note.nabla.abi))"));
        assert!(LINKER_SCRIPT.contains("KEEP(*(.note.nabla.manifest))"));
    }

    #[test]
    fn no_pie_comes_after_static() {
        let args = link_args("/x.ld");
        let s = args.iter().position(|a| a == "-static").unwrap();
        let n = args.iter().position(|a| a == "-no-pie").unwrap();
        assert!(s < n);
        assert_eq!(args.last().unwrap(), "-Wl,-T,/x.ld");
    }
}
