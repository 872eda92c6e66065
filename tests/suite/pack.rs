//! `nabla pack`: the OCI image of a nabla binary is reproducible, and the
//! standard tools accept it: `umoci unpack` (which checks every digest,
//! size, diff_id and the gzip), `skopeo inspect`, and `oci-image-tool
//! validate` on the layout directory (Debian 12's oci-image-tool, 1.0.0-rc1,
//! cannot walk an archive, even one made by GNU tar, so it sees only the
//! directory). A binary the tender refuses is refused with its message.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{TempDir, run_program, workspace_bin};

const REF: &str = "example.com/demo/httpd:1";

/// Runs a host tool, asserting success; its stdout.
fn tool(program: &str, package: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (Debian package {package}): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn site() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/httpd/site")
}

/// Packs httpd with the site into `dir/NAME.tar` and `dir/NAME/`.
fn pack(dir: &TempDir, name: &str) -> (PathBuf, PathBuf) {
    let tar = dir.path().join(format!("{name}.tar"));
    let layout = dir.path().join(name);
    let httpd = workspace_bin("httpd");
    let site = site();
    let args = [
        "pack",
        httpd.to_str().unwrap(),
        "--files",
        site.to_str().unwrap(),
        "--arg",
        "--verbose",
        "--env",
        "PORT=8080",
        "--port",
        "8080/tcp",
        "-t",
        REF,
        "-o",
        tar.to_str().unwrap(),
        "--layout",
        layout.to_str().unwrap(),
    ];
    run_program(&workspace_bin("nabla"), &args).assert_ok();
    (tar, layout)
}

#[test]
fn packing_twice_gives_the_same_bytes() {
    let dir = TempDir::new("pack-twice");
    let (tar1, layout1) = pack(&dir, "one");
    let (tar2, layout2) = pack(&dir, "two");
    assert!(std::fs::read(&tar1).unwrap() == std::fs::read(&tar2).unwrap(), "archives differ");
    let index1 = std::fs::read_to_string(layout1.join("index.json")).unwrap();
    let index2 = std::fs::read_to_string(layout2.join("index.json")).unwrap();
    assert_eq!(index1, index2);
    assert!(index1.contains(&format!(r#""org.opencontainers.image.ref.name":"{REF}""#)));
}

#[test]
fn umoci_unpacks_the_binary_and_the_files() {
    let dir = TempDir::new("pack-umoci");
    let (_, layout) = pack(&dir, "img");
    let bundle = dir.path().join("bundle");
    let image = format!("{}:{REF}", layout.display());
    tool("umoci", "umoci", &["unpack", "--rootless", "--image", &image, bundle.to_str().unwrap()]);
    let rootfs = bundle.join("rootfs");
    let packed = std::fs::read(rootfs.join("httpd.nabla")).unwrap();
    assert!(packed == std::fs::read(workspace_bin("httpd")).unwrap(), "the binary differs");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(rootfs.join("httpd.nabla")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let index = std::fs::read(site().join("index.html")).unwrap();
    assert_eq!(std::fs::read(rootfs.join("httpd.files/index.html")).unwrap(), index);
}

#[test]
fn skopeo_shows_the_entrypoint_and_the_labels() {
    let dir = TempDir::new("pack-skopeo");
    let (tar, layout) = pack(&dir, "img");
    let archive = format!("oci-archive:{}", tar.display());
    let inspect = tool("skopeo", "skopeo", &["inspect", &archive]);
    assert!(inspect.contains(r#""org.nabla.image": "1""#), "{inspect}");
    assert!(inspect.contains(r#""org.nabla.abi-version": "#), "{inspect}");
    assert!(inspect.contains(r#""Architecture": "amd64""#), "{inspect}");
    let config = tool("skopeo", "skopeo", &["inspect", "--config", &archive]);
    let compact: String = config.split_whitespace().collect();
    assert!(compact.contains(r#""Entrypoint":["/httpd.nabla"]"#), "{config}");
    assert!(compact.contains(r#""Cmd":["--verbose"]"#), "{config}");
    assert!(compact.contains(r#""Env":["PORT=8080"]"#), "{config}");
    assert!(compact.contains(r#""ExposedPorts":{"8080/tcp":{}}"#), "{config}");
    let oci = format!("oci:{}:{REF}", layout.display());
    let by_ref = tool("skopeo", "skopeo", &["inspect", "--config", &oci]);
    assert_eq!(by_ref, config);
}

#[test]
fn oci_image_tool_validates_the_layout() {
    let dir = TempDir::new("pack-oit");
    let (_, layout) = pack(&dir, "img");
    let name = format!("name={REF}");
    tool(
        "oci-image-tool",
        "oci-image-tool",
        &["validate", "--type", "image", "--ref", &name, layout.to_str().unwrap()],
    );
}

#[test]
fn a_binary_the_tender_refuses_is_refused() {
    let dir = TempDir::new("pack-refuse");
    let out = dir.path().join("true.tar");
    let refused = run_program(
        &workspace_bin("nabla"),
        &["pack", "/bin/true", "-t", "true:1", "-o", out.to_str().unwrap()],
    );
    let tender = run_program(&workspace_bin("tender"), &["--inspect", "/bin/true"]);
    assert_eq!(tender.code(), Some(1));
    let message = tender.stderr.strip_prefix("tender: ").unwrap();
    assert_eq!(refused.code(), Some(1), "{refused:#?}");
    assert_eq!(refused.stderr, format!("nabla: {message}"));
    assert!(!out.exists());
}

#[test]
fn hello_packs_without_files() {
    let dir = TempDir::new("pack-hello");
    let layout = dir.path().join("hello");
    let hello = workspace_bin("hello");
    run_program(
        &workspace_bin("nabla"),
        &[
            "pack",
            hello.to_str().unwrap(),
            "-t",
            "hello:latest",
            "--layout",
            layout.to_str().unwrap(),
        ],
    )
    .assert_ok();
    let bundle = dir.path().join("bundle");
    let image = format!("{}:hello:latest", layout.display());
    tool("umoci", "umoci", &["unpack", "--rootless", "--image", &image, bundle.to_str().unwrap()]);
    let entries: Vec<_> = std::fs::read_dir(bundle.join("rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, ["hello.nabla"]);
}
