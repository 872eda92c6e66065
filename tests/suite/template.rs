//! The out-of-workspace application template (`templates/app`) builds with
//! plain `cargo build --release` against this checkout and runs under the
//! tender, as the README tells a user to do it.

mod support;

use std::path::Path;
use std::process::Command;

use support::{TempDir, run};

#[test]
fn template_builds_outside_the_workspace_and_runs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap();
    let dir = TempDir::new("template");
    let app = dir.path().join("myapp");
    std::fs::create_dir_all(app.join("src")).unwrap();
    for file in ["build.rs", "src/main.rs"] {
        std::fs::copy(repo.join("templates/app").join(file), app.join(file)).unwrap();
    }
    // Point the path dependencies at this checkout, as a user would.
    let manifest = std::fs::read_to_string(repo.join("templates/app/Cargo.toml"))
        .unwrap()
        .replace("../../libos", &repo.join("libos").display().to_string());
    std::fs::write(app.join("Cargo.toml"), manifest).unwrap();

    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet"])
        .current_dir(&app)
        // Its own target dir: this is a separate project.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build of the template failed");

    let binary = app.join("target/release/myapp");
    let out = run(&[binary.as_os_str(), "pear".as_ref(), "apple".as_ref()]);
    out.assert_ok();
    assert!(out.stdout.starts_with("myapp: 2 words, sorted: apple pear\n"), "{out:#?}");

    let out = run(&[binary.as_os_str()]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert_eq!(out.stdout, "Error: \"give me some words\"\n");
}
