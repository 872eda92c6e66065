//! From an OCI bundle (`config.json` and its rootfs) to what the tender
//! needs: the nabla binary, the guest's args and env, its memory, the
//! devices it declares, and what the container's namespaces and mounts mean
//! for it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Spec};

use crate::log::Log;
use crate::{Error, sibling};

/// The container's network namespace, from `linux.namespaces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetNs {
    /// No `network` entry: the caller's own (the host's) namespace.
    Host,
    /// A `network` entry without a path: a new, empty one.
    New,
    /// A `network` entry with a path: join that namespace.
    Path(PathBuf),
}

/// A device the image declares in its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub kind: String,
}

/// Where a mount attaches a host file as a block device the image declares.
pub const VOLUME_DIR: &str = "/dev/nabla/";

/// A host file that a bind mount at `/dev/nabla/NAME` attaches as block
/// device `NAME`, instead of a disk made from the rootfs: a disk that
/// outlives the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub device: String,
    pub source: PathBuf,
    pub read_only: bool,
}

/// One `setrlimit` for the container process.
#[derive(Debug, Clone)]
pub struct Rlimit {
    /// As the config names it, e.g. `RLIMIT_NOFILE`.
    pub name: String,
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
}

/// Everything `create` takes from the bundle.
#[derive(Debug)]
pub struct Plan {
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    /// The rootfs directory, absolute.
    pub rootfs: PathBuf,
    pub rootfs_readonly: bool,
    /// The nabla binary, a path on the host inside the rootfs.
    pub binary: PathBuf,
    /// The guest's arguments (`process.args[1..]`).
    pub args: Vec<String>,
    /// The guest's environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// `--mem`, from `linux.resources.memory.limit` less the tender's own
    /// memory (`arena_mib`); `None`: the tender's default.
    pub mem_mib: Option<u64>,
    /// `linux.cgroupsPath`, as given.
    pub cgroups_path: Option<String>,
    /// `linux.resources`, written to the container's cgroup.
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    pub devices: Vec<Device>,
    /// Block devices given a host file by a mount.
    pub volumes: Vec<Volume>,
    /// The engine's `/etc` files the guest gets (`tender --etc`): the name
    /// under `/etc` and the host file bound there.
    pub etc_files: Vec<(String, PathBuf)>,
    pub netns: NetNs,
    pub terminal: bool,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub rlimits: Vec<Rlimit>,
    pub annotations: HashMap<String, String>,
    /// A Kubernetes pod sandbox (the "pause" container the CRI starts
    /// first, with the runtime handler of the pod): no guest; the process
    /// only holds the pod's place until it is killed.
    pub sandbox: bool,
}

impl Plan {
    pub fn devices_of(&self, kind: &str) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(move |d| d.kind == kind)
    }
}

const MIB: i64 = 1 << 20;

/// What the tender itself takes of a memory cgroup besides the guest's
/// arena, measured (docs/oci.md, "Memory"): a fixed part (its own pages,
/// stacks, buffers, the seccomp filter, kernel structures) and the page
/// tables of the arena, 1/512 of it, rounded up.
pub const TENDER_OVERHEAD_MIB: u64 = 4;

/// The tender's smallest `--mem`.
const GUEST_MIN_MIB: u64 = 4;

/// The guest's arena (`--mem`, MiB) for a cgroup memory limit of
/// `limit` bytes: the limit less the tender's overhead, so that a guest
/// that fills its arena stays within the limit and is not OOM-killed.
pub fn arena_mib(limit: i64) -> Result<u64, Error> {
    let limit_mib = (limit / MIB) as u64;
    let arena = limit_mib.saturating_sub(TENDER_OVERHEAD_MIB);
    let arena = arena.saturating_sub(arena.div_ceil(512));
    if arena < GUEST_MIN_MIB {
        return Err(Error(format!(
            "linux.resources.memory.limit {limit} bytes leaves {arena} MiB for the guest, below the tender's minimum of {GUEST_MIN_MIB} MiB: the tender itself takes {TENDER_OVERHEAD_MIB} MiB and the page tables of the container's cgroup (docs/oci.md, \"Memory\")"
        )));
    }
    Ok(arena)
}

/// The smallest memory limit, MiB, under which a guest with an arena of
/// `arena` MiB stays within its cgroup: the inverse of `arena_mib`.
pub fn limit_for_arena(arena: u64) -> u64 {
    arena + arena.div_ceil(511) + TENDER_OVERHEAD_MIB
}

/// Reads and checks the bundle. Every refusal names what is wrong.
pub fn plan(bundle: &Path, log: &Log) -> Result<Plan, Error> {
    let bundle =
        bundle.canonicalize().map_err(|e| Error(format!("bundle {}: {e}", bundle.display())))?;
    let config = bundle.join("config.json");
    if !config.is_file() {
        return Err(Error(format!("{}: no such file", config.display())));
    }
    let spec = Spec::load(&config).map_err(|e| Error(format!("{}: {e}", config.display())))?;

    let root =
        spec.root().as_ref().ok_or_else(|| Error(format!("{}: no root", config.display())))?;
    let rootfs =
        if root.path().is_absolute() { root.path().clone() } else { bundle.join(root.path()) };
    let rootfs =
        rootfs.canonicalize().map_err(|e| Error(format!("rootfs {}: {e}", rootfs.display())))?;
    std::fs::read_dir(&rootfs).map_err(|e| Error(format!("rootfs {}: {e}", rootfs.display())))?;

    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error(format!("{}: no process", config.display())))?;
    let mut args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(Error(format!(
            "{}: process.args is empty: its first element must name the nabla binary",
            config.display()
        )));
    }
    let entry = args.remove(0);
    let annotations = spec.annotations().clone().unwrap_or_default();
    let sandbox = is_sandbox(&annotations);
    let binary = if sandbox { PathBuf::new() } else { resolve_in_rootfs(&rootfs, &entry)? };

    let mut env = Vec::new();
    for kv in process.env().iter().flatten() {
        if kv.split_once('=').is_some_and(|(k, _)| !k.is_empty()) {
            env.push(kv.clone());
        } else {
            log.warn(&format!("process.env entry {kv:?} is not KEY=VALUE: left out"));
        }
    }

    let mem_mib = match spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
    {
        None => None,
        Some(l) if l <= 0 => None, // -1: unlimited; 0: unset, as runc reads it
        // A sandbox runs no guest: the limit is only the cgroup's.
        Some(_) if sandbox => None,
        Some(l) if l < MIB => {
            return Err(Error(format!(
                "linux.resources.memory.limit {l} bytes is below 1 MiB: too small for any guest"
            )));
        }
        Some(l) => Some(arena_mib(l)?),
    };
    let linux = spec.linux().as_ref();
    let cgroups_path =
        linux.and_then(|l| l.cgroups_path().as_ref()).map(|p| p.display().to_string());
    let resources = linux.and_then(|l| l.resources().clone());
    let oom_score_adj = process.oom_score_adj();
    if let Some(v) = oom_score_adj
        && !(-1000..=1000).contains(&v)
    {
        return Err(Error(format!("process.oomScoreAdj {v}: must be within -1000..=1000")));
    }

    let devices = if sandbox { Vec::new() } else { inspect(&binary, &entry, mem_mib)? };

    let netns = match spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) {
        None => NetNs::Host,
        Some(nss) => match nss.iter().find(|n| n.typ() == LinuxNamespaceType::Network) {
            None => NetNs::Host,
            Some(n) => match n.path() {
                None => NetNs::New,
                Some(p) => NetNs::Path(p.clone()),
            },
        },
    };

    let mut volumes: Vec<Volume> = Vec::new();
    let mut etc_files: Vec<(String, PathBuf)> = Vec::new();
    if !sandbox {
        for m in spec.mounts().iter().flatten() {
            if let Some(f) = etc_mount(m, &bundle, log) {
                // A later mount at the same place hides an earlier one.
                etc_files.retain(|(n, _)| *n != f.0);
                etc_files.push(f);
                continue;
            }
            if let Some(v) = check_mount(m, &bundle, &devices, log)? {
                if volumes.iter().any(|o| o.device == v.device) {
                    return Err(Error(format!(
                        "two mounts at {VOLUME_DIR}{}: one file per device",
                        v.device
                    )));
                }
                volumes.push(v);
            }
        }
    }

    let mut rlimits = Vec::new();
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| format!("{:?}", r.typ()));
        rlimits.push(Rlimit {
            name,
            resource: rlimit_resource(r.typ()),
            soft: r.soft(),
            hard: r.hard(),
        });
    }

    let user = process.user();
    Ok(Plan {
        rootfs_readonly: root.readonly().unwrap_or(false),
        bundle,
        rootfs,
        binary,
        args,
        env,
        mem_mib,
        devices,
        volumes,
        etc_files,
        netns,
        terminal: process.terminal().unwrap_or(false),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        rlimits,
        annotations,
        sandbox,
        cgroups_path,
        resources,
        oom_score_adj,
    })
}

/// Whether the annotations mark a pod's sandbox.
pub fn is_sandbox(annotations: &HashMap<String, String>) -> bool {
    SANDBOX_ANNOTATIONS.iter().any(|k| annotations.get(*k).is_some_and(|v| v == "sandbox"))
}

/// How containerd's and CRI-O's CRI plugins mark a pod's sandbox.
const SANDBOX_ANNOTATIONS: &[&str] =
    &["io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"];

/// The host path of `entry` inside `rootfs`: an absolute path, no `..`,
/// a regular file once symbolic links are followed, and still inside the
/// rootfs.
fn resolve_in_rootfs(rootfs: &Path, entry: &str) -> Result<PathBuf, Error> {
    let p = Path::new(entry);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(Error(format!(
            "process.args[0] {entry:?}: the nabla binary must be named by an absolute path in the rootfs, without \"..\""
        )));
    }
    let host = rootfs.join(p.strip_prefix("/").unwrap_or(p));
    let real = host.canonicalize().map_err(|e| {
        Error(format!("process.args[0] {entry}: {e} (in rootfs {})", rootfs.display()))
    })?;
    if !real.starts_with(rootfs) {
        return Err(Error(format!("process.args[0] {entry}: resolves outside the rootfs")));
    }
    if !real.is_file() {
        return Err(Error(format!("process.args[0] {entry}: not a regular file")));
    }
    Ok(real)
}

/// Validates `binary` with the tender's own checks (`tender --inspect`, with
/// the memory it will get) and returns the devices its manifest declares.
fn inspect(binary: &Path, entry: &str, mem_mib: Option<u64>) -> Result<Vec<Device>, Error> {
    let tender = sibling("tender")?;
    let mut cmd = Command::new(&tender);
    cmd.arg("--inspect");
    if let Some(m) = mem_mib {
        cmd.arg("--mem").arg(m.to_string());
    }
    let out = cmd.arg(binary).output().map_err(|e| Error(format!("{}: {e}", tender.display())))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg.trim();
        let msg = msg.strip_prefix("tender: ").unwrap_or(msg);
        // The tender names the host path; the user knows the image's.
        let msg = msg.replace(&binary.display().to_string(), entry);
        return Err(Error(format!(
            "process.args[0] {entry} is not a nabla binary the tender accepts: {msg}"
        )));
    }
    Ok(parse_devices(&String::from_utf8_lossy(&out.stdout)))
}

/// The `devices:` section of `tender --inspect`: indented `NAME KIND` lines.
fn parse_devices(inspect: &str) -> Vec<Device> {
    let mut devices = Vec::new();
    let mut inside = false;
    for line in inspect.lines() {
        if line.starts_with("devices:") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if !line.starts_with(' ') {
            break;
        }
        let mut words = line.split_whitespace();
        if let (Some(name), Some(kind)) = (words.next(), words.next()) {
            devices.push(Device { name: name.into(), kind: kind.into() });
        }
    }
    devices
}

/// Mounts the container engines add for every Linux container, which mean
/// nothing to a guest that has no kernel file systems: ignored.
const KERNEL_FS: &[&str] =
    &["proc", "sysfs", "devpts", "mqueue", "tmpfs", "cgroup", "cgroup2", "shm"];

/// Files the engines bind into every container (name resolution, hostname,
/// Kubernetes' termination log and service-account token): a guest cannot
/// read them, which is worth a warning but not a refusal.
const ENGINE_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/run/.containerenv",
    "/dev/termination-log",
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/dev/shm",
];

/// The files under `/etc` that the engines bind and the guest gets with
/// `tender --etc` (its resolver reads them): docs/oci.md, "Mounts".
pub const ETC_FILES: &[&str] = &["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// A bind mount of a regular file at one of [`ETC_FILES`]: its name under
/// `/etc` and the host file (relative to `bundle` if not absolute). Other
/// mounts, and one whose source is not a regular file, are `None` (and
/// [`check_mount`] decides about them).
fn etc_mount(m: &oci_spec::runtime::Mount, bundle: &Path, log: &Log) -> Option<(String, PathBuf)> {
    let dest = m.destination().display().to_string();
    if !ETC_FILES.contains(&dest.as_str()) {
        return None;
    }
    let options = m.options().clone().unwrap_or_default();
    let bind =
        m.typ().as_deref() == Some("bind") || options.iter().any(|o| o == "bind" || o == "rbind");
    let source = bundle.join(m.source().clone().unwrap_or_default());
    if !bind || !source.is_file() {
        return None;
    }
    log.debug(&format!("mount {dest}: {} given to the guest", source.display()));
    let name = dest.trim_start_matches("/etc/").to_string();
    Some((name, source))
}

/// What a mount means for the guest: a volume (a bind mount of a disk file
/// at `/dev/nabla/NAME`, its source absolute or relative to `bundle`), nothing (a kernel file system, or a file the
/// engines add, with a warning), or a refusal.
fn check_mount(
    m: &oci_spec::runtime::Mount,
    bundle: &Path,
    devices: &[Device],
    log: &Log,
) -> Result<Option<Volume>, Error> {
    let dest = m.destination().display().to_string();
    let typ = m.typ().as_deref().unwrap_or("");
    let options = m.options().clone().unwrap_or_default();
    let bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
    let source = m.source().clone().unwrap_or_default();
    if let Some(name) = dest.strip_prefix(VOLUME_DIR) {
        // A relative source of a bind mount is relative to the bundle.
        let source = bundle.join(&source);
        if !devices.iter().any(|d| d.name == name && d.kind == "block") {
            let declared: Vec<_> = devices
                .iter()
                .filter(|d| d.kind == "block")
                .map(|d| format!("{VOLUME_DIR}{}", d.name))
                .collect();
            let declared = if declared.is_empty() { "none".into() } else { declared.join(", ") };
            return Err(Error(format!(
                "mount {dest}: the image declares no block device `{name}` (its disks: {declared})"
            )));
        }
        if !bind {
            return Err(Error(format!(
                "mount {dest}: a disk must be a bind mount of a file on the host, not {typ}"
            )));
        }
        let meta = std::fs::metadata(&source)
            .map_err(|e| Error(format!("mount {dest}: {}: {e}", source.display())))?;
        if !meta.is_file() {
            return Err(Error(format!(
                "mount {dest}: {} is not a regular file: a disk is a file (e.g. truncate -s 64M disk.img)",
                source.display()
            )));
        }
        let source = source.canonicalize().unwrap_or(source);
        let read_only = options.iter().any(|o| o == "ro");
        log.debug(&format!("volume {} for block device {name}", source.display()));
        return Ok(Some(Volume { device: name.to_string(), source, read_only }));
    }
    if !bind && KERNEL_FS.contains(&typ) {
        log.debug(&format!(
            "mount {dest} ({typ}) ignored: a nabla guest has no kernel file systems"
        ));
        return Ok(None);
    }
    if ENGINE_FILES.contains(&dest.as_str()) {
        log.warn(&format!(
            "mount {dest} is not available to the guest: a nabla guest reads only its disks"
        ));
        return Ok(None);
    }
    Err(Error(format!(
        "mount {dest} ({} {}) cannot be honoured: a nabla guest reads only its disks, the one made from its image's files or files bound at {VOLUME_DIR}NAME",
        if typ.is_empty() { "bind" } else { typ },
        source.display()
    )))
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_etc_files_go_to_the_guest() {
        let dir = std::env::temp_dir().join(format!("nabla-runc-etc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts"), "10.0.0.2 db\n").unwrap();
        let log = Log::new(None, crate::log::Format::Text, false);
        let mount =
            |v: serde_json::Value| serde_json::from_value::<oci_spec::runtime::Mount>(v).unwrap();
        let m = mount(serde_json::json!({"destination": "/etc/hosts", "type": "bind",
            "source": "hosts", "options": ["rbind", "ro"]}));
        assert_eq!(etc_mount(&m, &dir, &log), Some(("hosts".into(), dir.join("hosts"))));
        let m = mount(serde_json::json!({"destination": "/etc/resolv.conf",
            "source": dir.join("hosts"), "options": ["bind"]}));
        assert_eq!(etc_mount(&m, &dir, &log).unwrap().0, "resolv.conf");
        // A directory, a missing file, another path, not a bind: not given.
        for v in [
            serde_json::json!({"destination": "/etc/hosts", "type": "bind", "source": "."}),
            serde_json::json!({"destination": "/etc/hosts", "type": "bind", "source": "nothere"}),
            serde_json::json!({"destination": "/etc/passwd", "type": "bind", "source": "hosts"}),
            serde_json::json!({"destination": "/etc/hostname", "type": "tmpfs", "source": "hosts"}),
        ] {
            assert_eq!(etc_mount(&mount(v.clone()), &dir, &log), None, "{v}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn devices_from_inspect() {
        let text = "image:       x\nentry:       0x100000\ndevices:     \n  service0         net\n  storage          block\nmemory:      64 MiB\n  boot   0x1-0x2\n";
        assert_eq!(
            parse_devices(text),
            vec![
                Device { name: "service0".into(), kind: "net".into() },
                Device { name: "storage".into(), kind: "block".into() }
            ]
        );
        assert!(parse_devices("devices:     \nmemory: 64 MiB\n").is_empty());
    }

    #[test]
    fn entry_must_stay_in_rootfs() {
        let dir = std::env::temp_dir().join(format!("nabla-runc-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/app"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("bin/out")).unwrap();
        let root = dir.canonicalize().unwrap();
        assert!(resolve_in_rootfs(&root, "/bin/app").is_ok());
        assert!(resolve_in_rootfs(&root, "bin/app").is_err());
        assert!(resolve_in_rootfs(&root, "/bin/../bin/app").is_err());
        let e = resolve_in_rootfs(&root, "/bin/out").unwrap_err();
        assert!(e.0.contains("outside the rootfs"), "{}", e.0);
        assert!(resolve_in_rootfs(&root, "/bin").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
