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

use std::path::{Path, PathBuf};

/// The guest linker script (`ld-scripts/guest.ld`).
pub const LINKER_SCRIPT: &str = include_str!("../../../ld-scripts/guest.ld");

/// The linker script of std guests (`ld-scripts/std-guest.ld`).
pub const STD_LINKER_SCRIPT: &str = include_str!("../../../ld-scripts/std-guest.ld");

/// The C and system libraries rustc asks for when it links std on
/// `x86_64-unknown-linux-gnu`. A std guest gets each as an empty archive:
/// libos/std provides the C library, and nothing of the host's may be
/// linked in.
pub const STAND_IN_LIBRARIES: &[&str] = &["c", "m", "pthread", "dl", "gcc_s", "util", "rt"];

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

/// Emits the `cargo:` lines that link this package's binaries as std
/// guests: ordinary Rust programs with `fn main()` and std, which depend on
/// `libos-std` and declare themselves with `libos_std::app!()`.
///
/// On top of [`link_guest`]'s arguments: the std linker script (TLS,
/// constructors, unwind tables), empty stand-ins for the host's C libraries
/// ([`STAND_IN_LIBRARIES`]) searched before the system's, and libgcc's
/// unwinder (`-lgcc_eh`), which works over libos/std's `_dl_find_object`.
///
/// # Panics
///
/// When not run from a build script (no `OUT_DIR`) or when `OUT_DIR` is not
/// writable.
pub fn link_std_guest() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR: call from build.rs"));
    for line in std_guest_cargo_lines(&out) {
        println!("{line}");
    }
}

/// What [`link_std_guest`] does in `out`: writes the std linker script and
/// the stand-in archives there and returns the `cargo:` lines to print.
///
/// # Panics
///
/// When `out` is not writable.
pub fn std_guest_cargo_lines(out: &Path) -> Vec<String> {
    let script = out.join("nabla-std-guest.ld");
    std::fs::write(&script, STD_LINKER_SCRIPT)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", script.display()));
    let stand_ins = out.join("stand-in-libs");
    std::fs::create_dir_all(&stand_ins)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", stand_ins.display()));
    for lib in STAND_IN_LIBRARIES {
        write_empty_archive(&stand_ins.join(format!("lib{lib}.a")));
    }
    std_link_args(&script.display().to_string(), &stand_ins.display().to_string())
        .into_iter()
        .map(|arg| format!("cargo:rustc-link-arg-bins={arg}"))
        .chain(["cargo:rerun-if-changed=build.rs".to_string()])
        .collect()
}

/// Writes an archive with no members: the 8 bytes of the `ar` magic.
fn write_empty_archive(path: &std::path::Path) {
    std::fs::write(path, b"!<arch>\n")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// The linker arguments for a std guest, given the std linker script's
/// path and the directory of the stand-in libraries.
pub fn std_link_args(script: &str, stand_ins: &str) -> Vec<String> {
    let mut args = link_args(script);
    // GNU ld searches every -L directory, in order, for every -l, wherever
    // they appear: the stand-ins come before the system's directories.
    args.push(format!("-L{stand_ins}"));
    args.push("-Wl,--eh-frame-hdr".to_string());
    args.push("-lgcc_eh".to_string());
    args
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
    fn std_guests_search_the_stand_ins_and_require_the_app_macro() {
        let args = std_link_args("/s.ld", "/libs");
        assert!(args.contains(&"-Wl,-T,/s.ld".to_string()));
        assert!(args.contains(&"-L/libs".to_string()));
        assert!(STD_LINKER_SCRIPT.contains("ASSERT(DEFINED(__libos_std_app)"));
        assert!(STD_LINKER_SCRIPT.contains("PT_TLS"));
        assert!(STD_LINKER_SCRIPT.contains("__init_array_start"));
    }

    #[test]
    fn link_std_guest_writes_the_script_and_empty_stand_ins_it_names() {
        let out = std::env::temp_dir().join(format!("libos-build-test-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let lines = std_guest_cargo_lines(&out);
        let script = out.join("nabla-std-guest.ld");
        assert_eq!(std::fs::read_to_string(&script).unwrap(), STD_LINKER_SCRIPT);
        for lib in STAND_IN_LIBRARIES {
            let archive = out.join("stand-in-libs").join(format!("lib{lib}.a"));
            assert_eq!(std::fs::read(&archive).unwrap(), b"!<arch>\n", "{}", archive.display());
        }
        let arg = |a: String| format!("cargo:rustc-link-arg-bins={a}");
        let pos =
            |l: &str| lines.iter().position(|x| x == l).unwrap_or_else(|| panic!("{l}: {lines:?}"));
        pos(&arg(format!("-Wl,-T,{}", script.display())));
        let stand_ins = pos(&arg(format!("-L{}", out.join("stand-in-libs").display())));
        // The unwinder comes from the system's libgcc_eh, found after the
        // stand-ins are searched.
        assert!(stand_ins < pos(&arg("-lgcc_eh".into())));
        pos(&arg("-Wl,--eh-frame-hdr".into()));
        pos(&arg("-nostartfiles".into()));
        assert_eq!(lines.last().unwrap(), "cargo:rerun-if-changed=build.rs");
        // Every line is for the package's binaries only: a target-wide flag
        // would also hit build scripts and the tender.
        assert!(lines.iter().all(|l| l.starts_with("cargo:rustc-link-arg-bins=")
            || l.starts_with("cargo:rerun-if-changed=")));
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn the_std_script_keeps_what_unwinding_and_std_need() {
        for needle in [
            "PT_GNU_EH_FRAME",
            "KEEP(*(.eh_frame))",
            "__eh_frame_hdr_start",
            ".gcc_except_table",
            "PT_TLS",
            "KEEP(*(.init_array))",
            "KEEP(*(.fini_array))",
            "KEEP(*(.note.nabla.manifest))",
            "0x100000",
            "add the line libos_std::app!(); to its main.rs",
        ] {
            assert!(STD_LINKER_SCRIPT.contains(needle), "{needle}");
        }
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
