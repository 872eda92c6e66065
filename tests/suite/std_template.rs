//! The std application template (`templates/std-app`) builds with plain
//! `cargo build --release` outside the workspace and runs under the tender,
//! as the README's "Writing a std application" says; and a std program
//! without `libos_std::app!()` fails to link with a message naming the
//! line to add.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{TempDir, run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap()
}

/// Copies the template to `dir/mystdapp`, its dependencies pointing at
/// this checkout, with `main_rs` as its main.rs if given.
fn copy_template(dir: &Path, main_rs: Option<&str>) -> PathBuf {
    let repo = repo();
    let app = dir.join("mystdapp");
    std::fs::create_dir_all(app.join("src")).unwrap();
    for file in ["build.rs", "src/main.rs"] {
        std::fs::copy(repo.join("templates/std-app").join(file), app.join(file)).unwrap();
    }
    if let Some(text) = main_rs {
        std::fs::write(app.join("src/main.rs"), text).unwrap();
    }
    let manifest = std::fs::read_to_string(repo.join("templates/std-app/Cargo.toml"))
        .unwrap()
        .replace("../../libos", &repo.join("libos").display().to_string());
    std::fs::write(app.join("Cargo.toml"), manifest).unwrap();
    app
}

/// `cargo build --release` in `app`, with a target dir shared by this
/// suite's builds (the two builds compile the same dependencies), one
/// build at a time.
fn cargo_build(app: &Path) -> Output {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Both builds are the same package at the root of a workspace, which
    // cargo fingerprints alike in a shared target dir: make this one's
    // sources (and build script) newer than the other's outputs, or they
    // would pass as fresh.
    for file in ["src/main.rs", "build.rs"] {
        let f = std::fs::File::options().write(true).open(app.join(file)).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
    }
    let target = support::profile_dir().join("std-template-target");
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet"])
        .current_dir(app)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs")
}

#[test]
fn the_std_template_builds_outside_the_workspace_and_runs() {
    let dir = TempDir::new("std-template");
    let app = copy_template(dir.path(), None);
    let out = cargo_build(&app);
    assert!(out.status.success(), "cargo build of the std template failed: {out:?}");

    let binary = support::profile_dir().join("std-template-target/release/mystdapp");
    let out = run(&[binary.as_os_str(), "pear".as_ref(), "apple".as_ref(), "pear".as_ref()]);
    out.assert_ok();
    assert!(out.stdout.starts_with("mystdapp: 3 words, sorted: applex1 pearx2\n"), "{out:#?}");

    let out = run(&[binary.as_os_str()]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert_eq!(out.stdout, "Error: \"give me some words\"\n");
}

#[test]
fn a_std_program_without_the_app_macro_fails_to_link_and_says_why() {
    let dir = TempDir::new("std-no-app");
    // libos-std linked (it is used), the macro missing.
    let app = copy_template(
        dir.path(),
        Some("use libos_std as _;\n\nfn main() {\n    println!(\"no app!\");\n}\n"),
    );
    let out = cargo_build(&app);
    assert!(!out.status.success(), "the link must fail: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "libos_std::app!() is missing from the program: add the line libos_std::app!(); to \
             its main.rs"
        ),
        "{stderr}"
    );
}

#[test]
fn a_std_program_linked_with_a_shared_library_fails_to_link_and_says_why() {
    // As a -sys crate that finds the host's libfoo.so does: the program
    // calls a C function only the host's shared C library has, and the
    // library is among the link's inputs.
    let dir = TempDir::new("std-shared");
    let app = copy_template(
        dir.path(),
        Some(
            "libos_std::app!();\n\nunsafe extern \"C\" {\n    fn fopen(p: *const u8, m: *const u8) -> *mut u8;\n}\n\n\
             fn main() {\n    // SAFETY: two NUL-terminated literals.\n    \
             println!(\"{:?}\", unsafe { fopen(c\"/x\".as_ptr().cast(), c\"r\".as_ptr().cast()) });\n}\n",
        ),
    );
    let libc = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    assert!(libc.exists(), "the host's C library is at {}", libc.display());
    std::fs::write(
        app.join("build.rs"),
        format!(
            "fn main() {{\n    libos_build::link_std_guest();\n    \
             println!(\"cargo:rustc-link-arg={}\");\n}}\n",
            libc.display()
        ),
    )
    .unwrap();
    let out = cargo_build(&app);
    assert!(!out.status.success(), "the link must fail: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a shared library was linked"), "{stderr}");
}
