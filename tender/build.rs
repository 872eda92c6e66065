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
//! Against musl's static library when it is installed, glibc's otherwise
//! (with a warning): musl's start-up executes none of the ~40 `CPUID`
//! instructions of glibc's, which trap to the hypervisor on a VM
//! (`docs/startup.md`: the start files, the shims in `musl/shims.c`, what
//! `src/start.rs` and `src/heap.rs` do for std built for glibc).
//!
//! It also has libseccomp generate the seccomp programs of the usual device
//! combinations, which the tender compiles in and patches with the run's
//! fds and sizes instead of running libseccomp at every start
//! (`src/seccomp.rs`, `templated`).

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

/// A device of a combination the build script generates programs for.
#[derive(Clone, Copy)]
enum Dev {
    Tap,
    Disk { sector_size: u32, read_only: bool, capacity: u64 },
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The combinations generated, with the values of their template: the
/// device-less guest, one device, and two of the usual kinds (a tap and a
/// disk, two taps, two disks). A disk's values compare differently with
/// each other whether it is larger than 4 GiB or not, and with another
/// disk's whether it is larger or smaller: one template each.
fn combinations() -> Vec<Vec<Dev>> {
    let disk = |sector_size, read_only, capacity| Dev::Disk { sector_size, read_only, capacity };
    let small = 64 * MIB;
    let large = 64 * GIB + 64 * MIB;
    let mut one = vec![Dev::Tap];
    for sector_size in [512, 4096] {
        for read_only in [false, true] {
            for capacity in [small, large] {
                one.push(disk(sector_size, read_only, capacity));
            }
        }
    }
    let mut all = vec![vec![]];
    all.extend(one.iter().map(|&d| vec![d]));
    all.push(vec![Dev::Tap, Dev::Tap]);
    for &d in &one[1..] {
        all.push(vec![Dev::Tap, d]);
        all.push(vec![d, Dev::Tap]);
    }
    let sizes = [
        (small, small),
        (small, 2 * small),
        (2 * small, small),
        (small, large),
        (large, small),
        (large, large + 64 * GIB),
        (large + 64 * GIB, large),
    ];
    for a_ro in [false, true] {
        for b_ro in [false, true] {
            for (a, b) in sizes {
                all.push(vec![disk(512, a_ro, a), disk(512, b_ro, b)]);
            }
        }
    }
    all
}

/// The policy of `devices` attached in that order (fds from 3, as the
/// tender opens them) with both signalfds.
fn policy_of(devices: &[Dev]) -> policy::Policy {
    let taps = devices.iter().filter(|d| matches!(d, Dev::Tap)).count() as u64;
    let writable =
        devices.iter().filter(|d| matches!(d, Dev::Disk { read_only: false, .. })).count();
    let mut p = policy::Policy::base(taps + policy::MAX_SIGNAL_FDS + writable as u64);
    for (i, d) in devices.iter().enumerate() {
        let fd = 3 + i as i32;
        p.extend(match *d {
            Dev::Tap => policy::tap_rules("t", fd),
            Dev::Disk { sector_size, read_only, capacity } => {
                policy::disk_rules("d", fd, capacity, sector_size, read_only)
            }
        });
    }
    // The writable disks' flush eventfds, opened after the devices and
    // the signalfds (each a pair: the request eventfd, then the
    // completion eventfd).
    let first = 3 + devices.len() as i32 + policy::MAX_SIGNAL_FDS as i32;
    for k in 0..writable {
        let request = first + 2 * k as i32;
        p.extend(policy::flush_channel_rules("d", request, request + 1));
    }
    p
}

/// Writes `seccomp_templates.bin` into `out`: libseccomp's exported
/// program of the policy of each of [`combinations`], with the policy
/// (`policy::encode_templates`).
fn generate_seccomp_templates(out: &Path) {
    println!("cargo:rerun-if-changed=src/seccomp/policy.rs");
    let policies: Vec<policy::Policy> = combinations().iter().map(|d| policy_of(d)).collect();
    let mut programs = Vec::new();
    for (i, policy) in policies.iter().enumerate() {
        let ctx =
            policy.context().unwrap_or_else(|r| panic!("libseccomp: {}: {}", r.what, r.source));
        let path = out.join(format!("seccomp-{i}.bpf"));
        let file = std::fs::File::create(&path).expect("create the BPF export file");
        ctx.export_bpf(&file).unwrap_or_else(|e| panic!("libseccomp: export: {e}"));
        drop(file);
        let bytes = std::fs::read(&path).expect("read the exported BPF");
        std::fs::remove_file(&path).expect("remove the BPF export file");
        assert!(
            !bytes.is_empty() && bytes.len().is_multiple_of(8),
            "libseccomp exported {} bytes",
            bytes.len()
        );
        programs.push(bytes);
    }
    let templates: Vec<policy::Template<'_>> = policies
        .iter()
        .zip(&programs)
        .map(|(p, program)| policy::Template {
            rules: p.rules.iter().map(|r| (r.syscall, r.args.clone())).collect(),
            program,
        })
        .collect();
    let blob = policy::encode_templates(&templates);
    // It reads back as written, and each policy's own values patch its
    // program into itself.
    let read: Vec<_> = policy::templates(&blob, None).map(|t| t.expect("readable")).collect();
    assert_eq!(read, templates);
    for ((policy, template), program) in policies.iter().zip(&read).zip(&programs) {
        assert_eq!(policy.bpf_from_template(template).as_ref(), Some(program));
    }
    std::fs::write(out.join("seccomp_templates.bin"), blob).expect("write seccomp_templates.bin");
}

/// Where Debian's musl-dev (and musl's own `make install`) put musl's
/// static library and start files for x86-64.
const MUSL_DIRS: &[&str] =
    &["/usr/lib/x86_64-linux-musl", "/usr/lib/musl/lib", "/usr/local/musl/lib"];

/// The files of musl the tender links: the library, and the start files of
/// a static PIE (`rcrt1.o` relocates the program, `crti.o`/`crtn.o` frame
/// `_init`).
const MUSL_FILES: &[&str] = &["libc.a", "rcrt1.o", "crti.o", "crtn.o"];

/// What libgcc_eh.a calls through weak references (see [`link_musl`]).
const UNWINDER_NEEDS: &[&str] =
    &["pthread_once", "pthread_mutex_lock", "pthread_mutex_unlock", "__pthread_key_create"];

/// musl's directory, if every one of [`MUSL_FILES`] is there, and that of
/// its headers (Debian's, or beside the library as musl installs them).
fn musl_dir() -> Option<(PathBuf, PathBuf)> {
    let lib = MUSL_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|dir| MUSL_FILES.iter().all(|f| dir.join(f).exists()))?;
    let include = [PathBuf::from("/usr/include/x86_64-linux-musl"), lib.join("../include")]
        .into_iter()
        .find(|dir| dir.join("link.h").exists())?;
    Some((lib, include))
}

/// Links the tender against musl's static library instead of glibc's, if
/// musl is installed (`docs/startup.md` says why: glibc's start-up executes
/// some 40 `CPUID` instructions, musl's none). Returns the archives each of
/// [`LIBS`] stands for, or None to link glibc's.
fn link_musl(out: &Path) -> Option<Vec<Vec<PathBuf>>> {
    println!("cargo:rerun-if-env-changed=NABLA_TENDER_GLIBC");
    if std::env::var_os("NABLA_TENDER_GLIBC").is_some() {
        return None;
    }
    let Some((musl, include)) = musl_dir() else {
        println!(
            "cargo:warning=no musl (Debian: musl-dev): linking the tender against glibc (slower \
             start, see docs/startup.md)"
        );
        println!("cargo:rerun-if-changed={}", out.join("look-again").display());
        return None;
    };
    for f in MUSL_FILES {
        println!("cargo:rerun-if-changed={}", musl.join(f).display());
    }
    // The start files: gcc takes those of `-static-pie` (rcrt1.o, crti.o,
    // crtn.o) from a `-B` directory before its own (glibc's); gcc's
    // crtbeginS.o and crtendS.o, which belong to the compiler, stay.
    let crt = out.join("musl-crt");
    std::fs::create_dir_all(&crt).expect("create the start-file directory");
    for f in &MUSL_FILES[1..] {
        let link = crt.join(f);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(musl.join(f), &link).expect("link a start file");
    }
    // What the code compiled for glibc (libseccomp.a, libgcc_eh.a, std)
    // needs that musl lacks, compiled against musl's headers.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("musl/shims.c");
    println!("cargo:rerun-if-changed={}", source.display());
    let gcc_include = find("include")?;
    let shims_o = out.join("musl-shims.o");
    let status = Command::new("cc")
        .args(["-c", "-O2", "-fPIE", "-std=c11", "-Wall", "-Wextra", "-Werror", "-nostdinc"])
        .arg("-isystem")
        .arg(&include)
        .arg("-isystem")
        .arg(&gcc_include)
        .arg("-o")
        .arg(&shims_o)
        .arg(&source)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed on {}", source.display());
    let mut archives = Vec::new();
    for (lib, glibc) in LIBS {
        archives.push(match *lib {
            // musl has everything in libc.a (its libm.a, libpthread.a ...
            // are empty, for the -l flags of other systems).
            // The shims first, and with libc: every target links it.
            "c" => vec![shims_o.clone(), musl.join("libc.a")],
            "m" | "pthread" | "dl" | "rt" | "util" => vec![musl.join("libc.a")],
            _ => glibc.iter().map(|a| find(a)).collect::<Option<_>>()?,
        });
    }
    println!("cargo:rustc-link-arg=-B{}", crt.display());
    // GCC's unwinder (panics, backtraces), built for glibc 2.34 or later
    // where threads are always "active", calls these through weak
    // references without checking them, and a weak reference does not
    // pull a member out of an archive: nothing else in the tender does, so
    // they would be null and the first backtrace would jump to address 0.
    // `-u` makes the linker take musl's.
    for symbol in UNWINDER_NEEDS {
        println!("cargo:rustc-link-arg=-Wl,-u,{symbol}");
    }
    // The entry point that hands the initialisers their arguments
    // (src/start.rs).
    println!("cargo:rustc-link-arg=-Wl,-e,tender_start");
    println!("cargo:rustc-cfg=tender_musl");
    Some(archives)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(tender_musl)");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    generate_seccomp_templates(&out);
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
    let archives = match link_musl(&out) {
        Some(archives) => archives,
        None => {
            let mut all = Vec::new();
            for (_, archives) in LIBS {
                let mut paths = Vec::new();
                for archive in *archives {
                    match find(archive) {
                        Some(p) => paths.push(p),
                        None => {
                            println!(
                                "cargo:warning=no {archive}: linking the tender dynamically \
                                 (slower start)"
                            );
                            // Look again on every build until it is there (a
                            // path that does not exist is always out of
                            // date), so that installing it later is enough
                            // to get a static tender.
                            println!("cargo:rerun-if-changed={}", out.join("look-again").display());
                            return;
                        }
                    }
                }
                all.push(paths);
            }
            all
        }
    };
    for ((lib, _), paths) in LIBS.iter().zip(&archives) {
        let paths: Vec<String> = paths.iter().map(|p| format!("\"{}\"", p.display())).collect();
        let script =
            format!("/* static {lib}, see tender/build.rs */\nINPUT({})\n", paths.join(" "));
        std::fs::write(shims.join(format!("lib{lib}.so")), script).expect("write shim");
    }
    println!("cargo:rustc-link-search=native={}", shims.display());
    // Every target that links: the binary, and the unit-test harnesses of
    // the binary and of the library (which see the shims too).
    println!("cargo:rustc-link-arg=-static-pie");
    // The start-up code, which every start runs, laid out together at the
    // front of the text rather than wherever its objects fall: a fault
    // maps a 64 KiB window of code, and these functions were spread over
    // several (hot-start-symbols.txt; from a profile of `tender hello`; a
    // name the library lacks is ignored, so another libc only loses the
    // ordering).
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("hot-start-symbols.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rustc-link-arg=-Wl,--symbol-ordering-file={}", order.display());
    println!("cargo:rustc-link-arg=-Wl,--no-warn-symbol-ordering");
}
