//! Links the tender as a static PIE.
//!
//! Why: start-up is part of what the tender is for, and exec→exit of a
//! dynamically linked tender is dominated by the dynamic loader mapping and
//! relocating libc, libgcc_s and libseccomp (about 2-3 times the whole run of
//! a static binary here). A static PIE starts like a static binary and still
//! loads far above the guest window, as the memory layout requires.
//!
//! How: rustc links std's system libraries as shared (`-Bdynamic -lc ...`)
//! unless `crt-static` is on, and stable cargo cannot turn that on for one
//! package without also applying it to proc-macros, which it breaks. So this
//! script puts, first on the library search path, a linker script for each of
//! those libraries under its shared name (`libc.so`, ...) that pulls in the
//! static archive instead, and asks for `-static-pie`. If an archive is
//! missing, the tender is linked dynamically as usual, with a warning: it
//! works the same, only starts slower.
//!
//! It also has libseccomp generate the seccomp programs of the guests without
//! devices, which the tender compiles in instead of building them at every
//! start (`src/seccomp.rs`, `embedded`).

use std::path::{Path, PathBuf};
use std::process::Command;

// The policy itself, as the tender has it.
#[allow(dead_code)]
#[path = "src/seccomp/policy.rs"]
mod policy;

/// The libraries rustc links for std and libseccomp-sys, and what replaces
/// each shared one.
const LIBS: &[(&str, &[&str])] = &[
    ("c", &["libc.a"]),
    ("m", &["libm.a"]),
    ("pthread", &["libpthread.a"]),
    ("dl", &["libdl.a"]),
    ("rt", &["librt.a"]),
    ("util", &["libutil.a"]),
    ("gcc_s", &["libgcc_eh.a", "libgcc.a"]),
    ("seccomp", &["libseccomp.a"]),
];

/// Where the C compiler finds `file`, if it does.
fn find(file: &str) -> Option<PathBuf> {
    let out = Command::new("cc").arg(format!("-print-file-name={file}")).output().ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // cc echoes the bare name when it cannot find the file.
    path.is_absolute().then_some(path).filter(|p| p.exists())
}

/// Writes `seccomp_embedded.rs` into `out`: the expression `&[(n, &[bytes])]`
/// with libseccomp's exported program of `Policy::base(n)` for each `n` in
/// `0..=EMBEDDED_POLLABLE_MAX`.
fn embed_seccomp_programs(out: &Path) {
    println!("cargo:rerun-if-changed=src/seccomp/policy.rs");
    let mut text = String::from("&[\n");
    for n in 0..=policy::EMBEDDED_POLLABLE_MAX {
        let ctx = policy::Policy::base(n)
            .context()
            .unwrap_or_else(|r| panic!("libseccomp: {}: {}", r.what, r.source));
        let path = out.join(format!("seccomp-base-{n}.bpf"));
        let file = std::fs::File::create(&path).expect("create the BPF export file");
        ctx.export_bpf(&file).unwrap_or_else(|e| panic!("libseccomp: export: {e}"));
        drop(file);
        let bytes = std::fs::read(&path).expect("read the exported BPF");
        assert!(
            !bytes.is_empty() && bytes.len().is_multiple_of(8),
            "libseccomp exported {} bytes",
            bytes.len()
        );
        text.push_str(&format!("    ({n}, &{bytes:?}),\n"));
    }
    text.push_str("]\n");
    std::fs::write(out.join("seccomp_embedded.rs"), text).expect("write seccomp_embedded.rs");
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    embed_seccomp_programs(&out);
    println!("cargo:rerun-if-env-changed=NABLA_TENDER_DYNAMIC");
    if std::env::var_os("NABLA_TENDER_DYNAMIC").is_some() {
        return;
    }
    // `cargo fuzz` links the tender's library into dynamically linked,
    // sanitized fuzz binaries: the static shims on the search path would
    // drag libc.a into them. The tender itself is never built so.
    if std::env::var_os("CARGO_CFG_FUZZING").is_some() {
        return;
    }
    let shims = out.join("static-shims");
    std::fs::create_dir_all(&shims).expect("create shim directory");
    for (lib, archives) in LIBS {
        let mut paths = Vec::new();
        for archive in *archives {
            match find(archive) {
                Some(p) => paths.push(format!("\"{}\"", p.display())),
                None => {
                    println!(
                        "cargo:warning=no {archive}: linking the tender dynamically (slower start)"
                    );
                    // Look again on every build until it is there (a path
                    // that does not exist is always out of date), so that
                    // installing it later is enough to get a static tender.
                    println!("cargo:rerun-if-changed={}", out.join("look-again").display());
                    return;
                }
            }
        }
        let script =
            format!("/* static {lib}, see tender/build.rs */\nINPUT({})\n", paths.join(" "));
        std::fs::write(shims.join(format!("lib{lib}.so")), script).expect("write shim");
    }
    println!("cargo:rustc-link-search=native={}", shims.display());
    // Every target that links: the binary, and the unit-test harnesses of
    // the binary and of the library (which see the shims too).
    println!("cargo:rustc-link-arg=-static-pie");
}
