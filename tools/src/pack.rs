//! `nabla pack`: an OCI image of a nabla binary, for registries and, later,
//! an OCI runtime (still to come).
//!
//! ```text
//! nabla pack BINARY [--files DIR] [--arg ARG]... [--env KEY=VALUE]...
//!     [--port PORT[/PROTO]]... -t REF [-o IMAGE.tar] [--layout DIR]
//! ```
//!
//! The image is one gzip layer holding the binary at `/NAME.nabla` (mode
//! 0755) and, with `--files`, the tree under DIR at `/NAME.files/` (the
//! files themselves, not a disk image: a runtime makes the FAT disk it
//! attaches, with `nabla disk create`, and the layer stays diffable). The
//! config says `linux`/`amd64`, `Entrypoint` `["/NAME.nabla"]`, `Cmd` the
//! `--arg` values, `Env`, `ExposedPorts`, and the labels `org.nabla.image=1`,
//! `org.nabla.abi-version`, `org.nabla.binary` (and `org.nabla.files`); the
//! manifest carries the first two as annotations; `index.json` names the
//! manifest with `org.opencontainers.image.ref.name` = REF.
//!
//! The binary is checked first with `tender --inspect` (the tender next to
//! `nabla`), and a binary it refuses is refused with its message, without
//! its `tender: ` prefix: `nabla: <tender's message>`.
//!
//! **Reproducible.** The same inputs give the same bytes: tar entries sorted,
//! mtime 0 (or `$SOURCE_DATE_EPOCH`), uid/gid 0 and no user or group names,
//! modes 0755 (directories, executables) or 0644; gzip with no timestamp or
//! file name; JSON with sorted keys; no `created` in the config.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::{Compression, GzBuilder};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::bench::Result;

/// `nabla pack`: builds an OCI image of a nabla binary.
#[derive(Debug, clap::Args)]
pub struct Pack {
    /// The nabla binary (a static guest ELF the tender accepts).
    binary: PathBuf,
    /// A directory whose files go in the layer under /NAME.files/.
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
    /// An argument for the binary: the config's Cmd (repeatable).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// An environment variable (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A port the service listens on, e.g. 80/tcp (repeatable; default tcp).
    #[arg(long = "port", value_name = "PORT[/PROTO]")]
    ports: Vec<String>,
    /// The image reference, e.g. example.com/demo/httpd:1.
    #[arg(short = 't', long = "tag", value_name = "REF")]
    tag: String,
    /// Write the image layout as a tar archive (oci-archive).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write the image layout into this directory (created if missing; its
    /// oci-layout and index.json are replaced).
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
}

// Media types and annotation keys of the OCI image spec (v1.1).
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One regular file or directory of a tar archive.
struct Entry {
    /// The path inside the archive, without a leading or trailing `/`.
    path: String,
    /// `None` for a directory.
    data: Option<Vec<u8>>,
    mode: u32,
}

/// A blob of the layout: its bytes and their digest.
struct Blob {
    bytes: Vec<u8>,
    hex: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Self {
        let hex = sha256_hex(&bytes);
        Self { bytes, hex }
    }

    /// An OCI descriptor of the blob.
    fn descriptor(&self, media_type: &str) -> Value {
        json!({
            "mediaType": media_type,
            "digest": format!("sha256:{}", self.hex),
            "size": self.bytes.len(),
        })
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The modification time of every entry: `$SOURCE_DATE_EPOCH`, or 0.
fn mtime() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s.trim().parse().map_err(|_| format!("SOURCE_DATE_EPOCH={s}: not a number")),
        Err(_) => Ok(0),
    }
}

/// A tar archive of `entries`, sorted by path, with fixed metadata.
fn tar(mut entries: Vec<Entry>, mtime: u64) -> Result<Vec<u8>> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut builder = tar::Builder::new(Vec::new());
    for e in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mode(e.mode);
        let (path, data): (String, &[u8]) = match &e.data {
            Some(d) => {
                header.set_entry_type(tar::EntryType::Regular);
                (e.path.clone(), d)
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                (format!("{}/", e.path), &[])
            }
        };
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, &path, data)
            .map_err(|err| format!("tar {path}: {err}"))?;
    }
    builder.into_inner().map_err(|e| format!("tar: {e}"))
}

/// The entries for the tree under `dir`, at `prefix/...`. Only regular
/// files and directories: anything else is refused, naming it.
fn tree(dir: &Path, prefix: &str, out: &mut Vec<Entry>) -> Result<()> {
    out.push(Entry { path: prefix.to_string(), data: None, mode: 0o755 });
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| format!("{}: not UTF-8", path.display()))?;
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let inner = format!("{prefix}/{name}");
        if meta.is_dir() {
            tree(&path, &inner, out)?;
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.push(Entry { path: inner, data: Some(data), mode });
        } else {
            return Err(format!(
                "{}: only regular files and directories can be packed (a symbolic link or \
                 special file)",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Gzip with no file name and mtime 0, so that the bytes depend only on the
/// input.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut gz = GzBuilder::new().mtime(0).write(Vec::new(), Compression::default());
    gz.write_all(bytes).and_then(|()| gz.finish()).map_err(|e| format!("gzip: {e}"))
}

/// `value` as compact JSON with its object keys sorted at every level
/// (serde_json keeps insertion order when a dependency turns on its
/// `preserve_order` feature).
fn canonical(value: Value) -> Result<Vec<u8>> {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let sorted: BTreeMap<String, Value> =
                    map.into_iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
            v => v,
        }
    }
    serde_json::to_vec(&sort(value)).map_err(|e| format!("json: {e}"))
}

/// Runs `tender --inspect` on the binary: the image's ABI version, or the
/// tender's reason for refusing it.
fn inspect(binary: &Path) -> Result<u32> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find nabla's path: {e}"))?;
    let tender = exe.with_file_name("tender");
    let out = Command::new(&tender)
        .arg("--inspect")
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run {} (build the workspace): {e}", tender.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let msg = stderr.trim();
        return Err(msg.strip_prefix("tender: ").unwrap_or(msg).to_string());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("abi:")?.trim().strip_prefix("version ")?.split(' ').next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{} --inspect: no ABI version in its output", tender.display()))
}

/// `80`, `80/tcp`, `53/udp`, `9/sctp`: the ExposedPorts key, protocol
/// spelled out.
fn port(spec: &str) -> Result<String> {
    let (num, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let ok = num.parse::<u16>().is_ok_and(|n| n != 0) && matches!(proto, "tcp" | "udp" | "sctp");
    if !ok {
        return Err(format!("--port {spec}: expected PORT[/tcp|udp|sctp], PORT from 1 to 65535"));
    }
    Ok(format!("{num}/{proto}"))
}

/// The image's blobs and JSON files, in memory.
struct Image {
    layout: Vec<u8>,
    index: Vec<u8>,
    blobs: Vec<Blob>,
}

fn build(p: &Pack) -> Result<Image> {
    let abi_version = inspect(&p.binary).map_err(|e| e.to_string())?;
    let name = p
        .binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: the file name is not UTF-8", p.binary.display()))?;
    if p.tag.is_empty() {
        return Err("-t: the image reference is empty".into());
    }
    for e in &p.env {
        if !matches!(e.split_once('='), Some((k, _)) if !k.is_empty()) {
            return Err(format!("--env {e}: expected KEY=VALUE"));
        }
    }
    let ports = p.ports.iter().map(|s| port(s)).collect::<Result<Vec<_>>>()?;
    let mtime = mtime()?;

    let binary = std::fs::read(&p.binary).map_err(|e| format!("{}: {e}", p.binary.display()))?;
    let entrypoint = format!("/{name}.nabla");
    let mut entries =
        vec![Entry { path: format!("{name}.nabla"), data: Some(binary), mode: 0o755 }];
    let mut labels = BTreeMap::from([
        ("org.nabla.image".to_string(), "1".to_string()),
        ("org.nabla.abi-version".to_string(), abi_version.to_string()),
        ("org.nabla.binary".to_string(), entrypoint.clone()),
    ]);
    if let Some(dir) = &p.files {
        if !dir.is_dir() {
            return Err(format!("--files {}: not a directory", dir.display()));
        }
        tree(dir, &format!("{name}.files"), &mut entries)?;
        labels.insert("org.nabla.files".into(), format!("/{name}.files"));
    }
    let layer_tar = tar(entries, mtime)?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer_tar));
    let layer = Blob::new(gzip(&layer_tar)?);

    let mut config = json!({
        "Entrypoint": [entrypoint],
        "Cmd": p.args,
        "Labels": labels,
    });
    if !p.env.is_empty() {
        config["Env"] = json!(p.env);
    }
    if !ports.is_empty() {
        let map: BTreeMap<&str, Value> = ports.iter().map(|p| (p.as_str(), json!({}))).collect();
        config["ExposedPorts"] = json!(map);
    }
    let config = Blob::new(canonical(json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    }))?);

    let manifest = Blob::new(canonical(json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config.descriptor(MEDIA_CONFIG),
        "layers": [layer.descriptor(MEDIA_LAYER)],
        "annotations": {
            "org.nabla.image": "1",
            "org.nabla.abi-version": abi_version.to_string(),
        },
    }))?);
    let mut descriptor = manifest.descriptor(MEDIA_MANIFEST);
    descriptor["platform"] = json!({ "architecture": "amd64", "os": "linux" });
    descriptor["annotations"] = json!({ REF_NAME: p.tag });
    let index = canonical(json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [descriptor],
    }))?;
    let layout = canonical(json!({ "imageLayoutVersion": "1.0.0" }))?;
    Ok(Image { layout, index, blobs: vec![layer, config, manifest] })
}

/// The files of the layout, by path inside it.
fn files(image: &Image) -> Vec<(String, &[u8])> {
    let mut files = vec![
        ("oci-layout".to_string(), image.layout.as_slice()),
        ("index.json".to_string(), image.index.as_slice()),
    ];
    for b in &image.blobs {
        files.push((format!("blobs/sha256/{}", b.hex), b.bytes.as_slice()));
    }
    files
}

/// Runs `nabla pack`.
pub fn run(p: Pack) -> Result<()> {
    if p.output.is_none() && p.layout.is_none() {
        return Err("nothing to write: give -o FILE.tar and/or --layout DIR".into());
    }
    let image = build(&p)?;
    if let Some(dir) = &p.layout {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
        for (path, bytes) in files(&image) {
            let path = dir.join(path);
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if let Some(out) = &p.output {
        let mut entries = vec![
            Entry { path: "blobs".into(), data: None, mode: 0o755 },
            Entry { path: "blobs/sha256".into(), data: None, mode: 0o755 },
        ];
        for (path, bytes) in files(&image) {
            entries.push(Entry { path, data: Some(bytes.to_vec()), mode: 0o644 });
        }
        let archive = tar(entries, mtime()?)?;
        std::fs::write(out, archive).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_get_a_protocol() {
        assert_eq!(port("80").unwrap(), "80/tcp");
        assert_eq!(port("53/udp").unwrap(), "53/udp");
        assert!(port("0").is_err());
        assert!(port("80/icmp").unwrap_err().contains("--port 80/icmp"));
        assert!(port("http").is_err());
    }

    #[test]
    fn tar_is_sorted_and_fixed() {
        let entries = || {
            vec![
                Entry { path: "b".into(), data: Some(b"bb".to_vec()), mode: 0o644 },
                Entry { path: "a".into(), data: None, mode: 0o755 },
                Entry { path: "a/x".into(), data: Some(b"x".to_vec()), mode: 0o755 },
            ]
        };
        let bytes = tar(entries(), 0).unwrap();
        let mut rev = entries();
        rev.reverse();
        assert_eq!(bytes, tar(rev, 0).unwrap());
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                assert_eq!((h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()), (0, 0, 0));
                assert_eq!(h.username().unwrap(), Some(""));
                e.path().unwrap().display().to_string()
            })
            .collect();
        assert_eq!(names, ["a/", "a/x", "b"]);
    }

    #[test]
    fn gzip_has_no_timestamp() {
        let gz = gzip(b"hello").unwrap();
        assert_eq!(gz, gzip(b"hello").unwrap());
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "MTIME");
        assert_eq!(gz[3] & 0x08, 0, "no FNAME");
    }

    #[test]
    fn json_keys_are_sorted() {
        let value = serde_json::from_str(r#"{"b":{"z":1,"y":2},"a":[{"d":0,"c":0}]}"#).unwrap();
        let json = canonical(value).unwrap();
        assert_eq!(json, br#"{"a":[{"c":0,"d":0}],"b":{"y":2,"z":1}}"#);
    }
}
