//! nabla-runc, the OCI runtime: alone on hand-made bundles (the lifecycle,
//! refusals that leave nothing behind, disk files bound as volumes,
//! networking in a namespace the test made), then driven as users drive it: by containerd's runc shim (`ctr run
//! --runc-binary`) and by podman (`--runtime`), with images from `nabla
//! pack`. All state (containerd's, podman's, the runtime's) lives under a
//! temporary directory; every daemon is stopped by pid.
//!
//! Runs as root (CI does): containers need it.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::containerd::{Containerd, pack};
use support::netns::{Netns, require_root};
use support::procs::{alive, kill_mentioning, unmount_under};
use support::runtime::{Running, Runtime, keyed_disk_dir, runc};
use support::{TempDir, run_program, text, workspace_bin};

const BASICS: &str = env!("CARGO_BIN_EXE_guest-basics");
const BLK: &str = env!("CARGO_BIN_EXE_guest-blk");

/// A bundle in `dir/bundle`: support's (`rootfs/NAME.nabla`, a copy of
/// `binary`), its config with a process as runc's spec makes one (no
/// terminal, an environment), a hostname and /proc and /dev mounts; then
/// `tweak`.
fn bundle(dir: &Path, binary: &str, args: &[&str], tweak: impl FnOnce(&mut Value)) -> PathBuf {
    support::runtime::bundle(dir, "bundle", Path::new(binary), args, |c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["env"] = json!(["PATH=/usr/bin:/bin", "GREETING=hello"]);
        c["hostname"] = json!("nabla");
        c["mounts"] = json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}
        ]);
        tweak(c);
    })
}

fn proc_exe(pid: i64) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Waits until `pid`, started, runs the tender.
fn wait_for_tender(pid: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_exe(pid) != Some(workspace_bin("tender")) {
        assert!(Instant::now() < deadline, "pid {pid} never became the tender");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn lifecycle_create_start_kill_delete() {
    let rt = Runtime::new();
    let b = bundle(rt.dir(), BASICS, &["sleep", "30"], |_| {});
    let pid_file = rt.dir().join("pid");
    let bs = b.to_str().unwrap();
    rt.ok(&["create", "--bundle", bs, "--pid-file", pid_file.to_str().unwrap(), "c1"]);

    let pid: i64 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let s = rt.state("c1");
    assert_eq!(s["status"], "created", "{s}");
    assert_eq!(s["id"], "c1");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["bundle"], bs);
    assert!(s["ociVersion"].as_str().is_some(), "{s}");
    // Waiting for start: the runtime's process, not yet the tender.
    assert!(alive(pid));
    assert_ne!(proc_exe(pid), Some(workspace_bin("tender")));
    rt.refused(&["create", "--bundle", bs, "c1"], "container c1 already exists");

    rt.ok(&["start", "c1"]);
    let s = rt.state("c1");
    assert_eq!(s["status"], "running", "{s}");
    // The same pid now runs the tender.
    wait_for_tender(pid);
    rt.refused(&["start", "c1"], "cannot start an already running container");
    rt.refused(&["delete", "c1"], "cannot delete container c1 that is not stopped: running");
    // The container's environment is not on the tender's command line,
    // which every user can read, but in a file only the guest's user can.
    let cmdline = text(&fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ");
    assert!(cmdline.contains(" --env-file "), "{cmdline}");
    assert!(!cmdline.contains("GREETING"), "{cmdline}");
    let env_file = cmdline.split(" --env-file ").nth(1).unwrap().split(' ').next().unwrap();
    let meta = fs::metadata(env_file).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);

    rt.ok(&["kill", "c1", "SIGTERM"]);
    let s = rt.wait_status("c1", "stopped");
    assert!(s.get("pid").is_none(), "{s}");
    // runc's wording, which containerd's shim tolerates; --all is not an
    // error at all on a stopped container.
    rt.refused(&["kill", "c1", "KILL"], "container not running");
    rt.ok(&["kill", "--all", "c1", "KILL"]);
    rt.ok(&["delete", "c1"]);
    rt.assert_gone("c1");
    rt.refused(&["state", "c1"], "container c1 does not exist");
}

#[test]
fn kill_by_number_and_all_and_force_delete() {
    let rt = Runtime::new();
    let b = bundle(rt.dir(), BASICS, &["sleep", "30"], |_| {});
    let bs = b.to_str().unwrap();
    for (id, kill) in
        [("k9", vec!["kill", "k9", "9"]), ("kall", vec!["kill", "--all", "kall", "KILL"])]
    {
        rt.ok(&["create", "--bundle", bs, id]);
        rt.ok(&["start", id]);
        rt.ok(&kill);
        rt.wait_status(id, "stopped");
        rt.ok(&["delete", id]);
        rt.assert_gone(id);
    }
    // A created container (waiting for start) and a running one go with
    // --force; so does an unknown id, twice (containerd's shim does that).
    rt.ok(&["create", "--bundle", bs, "f1"]);
    let pid = rt.state("f1")["pid"].as_i64().unwrap();
    rt.ok(&["delete", "--force", "f1"]);
    assert!(!alive(pid));
    rt.assert_gone("f1");
    rt.ok(&["create", "--bundle", bs, "f2"]);
    rt.ok(&["start", "f2"]);
    let pid = rt.state("f2")["pid"].as_i64().unwrap();
    rt.ok(&["delete", "--force", "f2"]);
    assert!(!alive(pid));
    rt.assert_gone("f2");
    rt.ok(&["delete", "--force", "never-was"]);
    rt.ok(&["delete", "--force", "never-was"]);
    rt.refused(&["delete", "never-was"], "container never-was does not exist");
    rt.refused(&["kill", "c", "SIGNOPE"], "invalid signal");
}

#[test]
fn run_returns_the_guest_status_and_output() {
    let rt = Runtime::new();
    let b = bundle(rt.dir(), BASICS, &["exit", "7"], |_| {});
    let out = rt.cmd(&["run", "--bundle", b.to_str().unwrap(), "r1"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    rt.assert_gone("r1");

    let hello = workspace_bin("hello");
    // An engine's /etc/hosts goes to the guest (`tender --etc`, from a
    // private copy in the container's state directory): no warning.
    // The environment reaches the guest whole, line breaks included.
    let b = bundle(&rt.dir().join("h"), hello.to_str().unwrap(), &["one", "two"], |c| {
        c["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind", "ro"]}),
        );
        c["process"]["env"].as_array_mut().unwrap().push(json!("NAME=line one\nline = two"));
    });
    let out = rt.cmd(&["run", "--bundle", b.to_str().unwrap(), "r2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello, world!\none\ntwo\nHello, line one\nline = two!\n");
    assert_eq!(text(&out.stderr), "");
    // No record at all: the log file may not exist.
    let log = fs::read_to_string(rt.log()).unwrap_or_default();
    assert!(
        !log.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .any(|r| r["level"] == "warning" && r["msg"].as_str().unwrap().contains("/etc/hosts")),
        "{log}"
    );
    rt.assert_gone("r2");
}

#[test]
fn a_container_runs_as_its_process_user() {
    let rt = Runtime::new();
    let as_nobody = |c: &mut Value| c["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    // The guest's files, its environment file and the exec fifo must all
    // be open to that user.
    let hello = workspace_bin("hello");
    let b = bundle(&rt.dir().join("h"), hello.to_str().unwrap(), &[], |c| {
        as_nobody(c);
        c["process"]["env"].as_array_mut().unwrap().push(json!("NAME=nobody"));
    });
    let out = rt.cmd(&["run", "--bundle", b.to_str().unwrap(), "u1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello, world!\nHello, nobody!\n");
    rt.assert_gone("u1");

    let b = bundle(rt.dir(), BASICS, &["sleep", "30"], as_nobody);
    let pid_file = rt.dir().join("pid");
    rt.ok(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "u2",
    ]);
    rt.ok(&["start", "u2"]);
    let pid: i64 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    wait_for_tender(pid);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| status.lines().find(|l| l.starts_with(key)).unwrap().to_string();
    assert_eq!(ids("Uid:").split_whitespace().skip(1).collect::<Vec<_>>(), ["65534"; 4]);
    assert_eq!(ids("Gid:").split_whitespace().skip(1).collect::<Vec<_>>(), ["65534"; 4]);
    rt.ok(&["kill", "u2", "KILL"]);
    rt.wait_status("u2", "stopped");
    rt.ok(&["delete", "u2"]);
    rt.assert_gone("u2");
}

#[test]
fn bad_bundles_are_refused_and_leave_nothing() {
    let rt = Runtime::new();
    type Tweak = fn(&mut Value, &Path);
    let cases: &[(&str, Tweak, &str)] = &[
        ("noargs", |c, _| c["process"]["args"] = json!([]), "process.args is empty"),
        ("relative", |c, _| c["process"]["args"] = json!(["guest-basics.nabla"]), "absolute path"),
        (
            "missing",
            |c, _| c["process"]["args"] = json!(["/nope.nabla"]),
            "process.args[0] /nope.nabla: No such file",
        ),
        (
            "native",
            |c, rootfs| {
                fs::copy("/bin/true", rootfs.join("true")).unwrap();
                c["process"]["args"] = json!(["/true"]);
            },
            "process.args[0] /true is not a nabla binary the tender accepts: /true: position-independent executable",
        ),
        (
            "escape",
            |c, rootfs| {
                std::os::unix::fs::symlink("/bin/true", rootfs.join("link")).unwrap();
                c["process"]["args"] = json!(["/link"]);
            },
            "resolves outside the rootfs",
        ),
        ("norootfs", |c, _| c["root"]["path"] = json!("missing-rootfs"), "rootfs"),
        (
            "unreadable",
            |c, _| c["root"]["path"] = json!("/proc/self/fd/999999"),
            "rootfs /proc/self/fd/999999",
        ),
        (
            "bind",
            |c, _| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"]}))
            },
            "mount /data (bind /srv) cannot be honoured",
        ),
        ("tinymem", |c, _| c["linux"]["resources"]["memory"]["limit"] = json!(4096), "below 1 MiB"),
        ("terminal", |c, _| c["process"]["terminal"] = json!(true), "no --console-socket"),
    ];
    for (id, tweak, needle) in cases {
        let dir = rt.dir().join(id);
        let b = bundle(&dir, BASICS, &["exit", "0"], |_| {});
        let mut config: Value =
            serde_json::from_str(&fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
        tweak(&mut config, &b.join("rootfs"));
        fs::write(b.join("config.json"), config.to_string()).unwrap();
        rt.refused(&["create", "--bundle", b.to_str().unwrap(), id], needle);
        rt.assert_gone(id);
    }

    // Not JSON at all; no config.json.
    let b = bundle(&rt.dir().join("garbage"), BASICS, &[], |_| {});
    fs::write(b.join("config.json"), "{ not json").unwrap();
    rt.refused(&["create", "--bundle", b.to_str().unwrap(), "garbage"], "config.json");
    fs::remove_file(b.join("config.json")).unwrap();
    rt.refused(
        &["create", "--bundle", b.to_str().unwrap(), "garbage"],
        "config.json: no such file",
    );
    rt.assert_gone("garbage");

    // A guest with a net device cannot run in a new, empty namespace, nor
    // in the host's.
    let httpd = workspace_bin("httpd");
    let b = bundle(&rt.dir().join("nonet"), httpd.to_str().unwrap(), &[], |_| {});
    rt.refused(
        &["create", "--bundle", b.to_str().unwrap(), "nonet"],
        "new, empty network namespace",
    );
    rt.assert_gone("nonet");
    let b = bundle(&rt.dir().join("hostnet"), httpd.to_str().unwrap(), &[], |c| {
        c["linux"]["namespaces"] = json!([{"type": "pid"}]);
    });
    rt.refused(&["create", "--bundle", b.to_str().unwrap(), "hostnet"], "host's network namespace");
    rt.assert_gone("hostnet");

    rt.refused(&["create", "--bundle", "/", "a/b"], "invalid container id");
    rt.refused(&["exec", "x", "ls"], "exec is not supported");
    rt.refused(&["pause", "x"], "container x does not exist");
    rt.refused(&["resume", "x"], "container x does not exist");
}

#[test]
fn a_disk_file_bound_at_dev_nabla_is_the_guests_disk_and_outlives_the_container() {
    let rt = Runtime::new();
    let img = rt.dir().join("volume.img");
    fs::File::create(&img).unwrap().set_len(1 << 20).unwrap();
    let volume = |source: &Path, options: &[&str]| json!({"destination": "/dev/nabla/storage", "type": "bind", "source": source, "options": options});
    let with = |v: Value| move |c: &mut Value| c["mounts"].as_array_mut().unwrap().push(v);

    // Read-write: guest-blk writes its pattern to every 10th sector.
    let b = bundle(&rt.dir().join("rw"), BLK, &["check"], with(volume(&img, &["rbind", "rw"])));
    let out = rt.cmd(&["run", "--bundle", b.to_str().unwrap(), "v1"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("check: 2048 sectors of 512 bytes"),
        "{}",
        text(&out.stdout)
    );
    rt.assert_gone("v1");
    let bytes = fs::read(&img).expect("the disk file outlives the container");
    assert_eq!(bytes.len(), 1 << 20);
    assert_eq!(&bytes[10 * 512..10 * 512 + 8], &10u64.to_le_bytes(), "sector 10 in the file");

    // Read-only (`ro`, as podman's -v SRC:DST:ro gives it): reads work,
    // writes are refused. The source relative to the bundle (DIR/ro/bundle).
    let relative = Path::new("../../volume.img");
    let b = bundle(&rt.dir().join("ro"), BLK, &["ro"], with(volume(relative, &["rbind", "ro"])));
    let out = rt.cmd(&["run", "--bundle", b.to_str().unwrap(), "v2"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout), "ro: read-only true, reads ok, write refused: ok\n");
    rt.assert_gone("v2");
    assert_eq!(fs::read(&img).unwrap(), bytes, "a read-only volume is left as it was");

    // Refused at create, naming the mount.
    let dir = rt.dir().to_path_buf();
    let cases: [(&str, Value, &str); 4] = [
        (
            "undeclared",
            json!({"destination": "/dev/nabla/other", "type": "bind", "source": img, "options": ["rbind"]}),
            "mount /dev/nabla/other: the image declares no block device `other` (its disks: /dev/nabla/storage)",
        ),
        ("notafile", volume(&dir, &["rbind"]), "is not a regular file"),
        ("missing", volume(&dir.join("nope.img"), &["rbind"]), "nope.img: No such file"),
        (
            "notbind",
            json!({"destination": "/dev/nabla/storage", "type": "tmpfs", "source": "tmpfs"}),
            "a disk must be a bind mount of a file on the host, not tmpfs",
        ),
    ];
    for (id, mount, needle) in cases {
        let b = bundle(&dir.join(id), BLK, &["info"], with(mount));
        rt.refused(&["create", "--bundle", b.to_str().unwrap(), id], needle);
        rt.assert_gone(id);
    }
}

#[test]
fn a_pod_sandbox_holds_its_place_until_killed() {
    // The CRI starts a pod's "pause" container with the pod's runtime
    // handler: a native binary, which nabla-runc does not run; it keeps
    // the place with a process of its own instead.
    let rt = Runtime::new();
    let b = bundle(rt.dir(), BASICS, &[], |c| {
        c["process"]["args"] = json!(["/pause"]);
        c["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"});
    });
    rt.ok(&["create", "--bundle", b.to_str().unwrap(), "pod"]);
    rt.ok(&["start", "pod"]);
    std::thread::sleep(Duration::from_millis(200));
    let s = rt.state("pod");
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(s["annotations"]["io.kubernetes.cri.container-type"], "sandbox");
    rt.ok(&["kill", "pod", "TERM"]);
    rt.wait_status("pod", "stopped");
    rt.ok(&["delete", "pod"]);
    rt.assert_gone("pod");
}

#[test]
fn features_and_version() {
    let rt = Runtime::new();
    let f: Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert!(f["ociVersionMax"].as_str().unwrap().starts_with("1."), "{f}");
    assert_eq!(f["linux"]["namespaces"], json!(["network"]), "{f}");
    assert!(rt.ok(&["--version"]).contains("nabla-runc"));
}

/// Two namespaces joined by a veth: the container's (`eth0`, `ADDR/24`,
/// default route via `.1`) and a client's (`.1`).
struct Link {
    container: Netns,
    client: Netns,
}

impl Link {
    fn new(tag: &str, net: &str) -> Link {
        let container = Netns::new(&format!("{tag}c"));
        let client = Netns::new(&format!("{tag}h"));
        container.disable_ipv6();
        client.disable_ipv6();
        support::netns::ip(&[
            "link",
            "add",
            "eth0",
            "netns",
            container.name(),
            "type",
            "veth",
            "peer",
            "name",
            "veth0",
            "netns",
            client.name(),
        ]);
        container.ip(&["addr", "add", &format!("{net}.2/24"), "dev", "eth0"]);
        container.ip(&["link", "set", "eth0", "up"]);
        container.ip(&["route", "add", "default", "via", &format!("{net}.1")]);
        client.ip(&["addr", "add", &format!("{net}.1/24"), "dev", "veth0"]);
        client.ip(&["link", "set", "veth0", "up"]);
        Link { container, client }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.container.name())
    }

    fn mac(&self) -> String {
        let j: Value =
            serde_json::from_str(&self.container.ip(&["-j", "link", "show", "eth0"])).unwrap();
        j[0]["address"].as_str().unwrap().to_string()
    }

    /// `curl URL` from the client until it answers (the guest configures
    /// itself and the first frames after attach can be lost).
    fn curl(&self, url: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.client.run("curl", &["-s", "-f", "-m", "2", url]);
            if out.status.success() {
                return out.stdout;
            }
            assert!(Instant::now() < deadline, "curl {url}: {out:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// No tap and no tc redirect left in the container's namespace.
    fn assert_unwired(&self) {
        let links = self.container.ip(&["link", "show"]);
        assert!(!links.contains(": nabla"), "tap left behind: {links}");
        let q = self.container.run("tc", &["qdisc", "show", "dev", "eth0"]);
        assert!(!q.stdout.contains("ingress"), "tc ingress left behind: {}", q.stdout);
    }
}

fn site_bundle(dir: &Path, netns: &str) -> PathBuf {
    let httpd = workspace_bin("httpd");
    let b = bundle(dir, httpd.to_str().unwrap(), &[], |c| {
        c["linux"]["namespaces"] = json!([{"type": "network", "path": netns}, {"type": "pid"}]);
    });
    let files = b.join("rootfs/httpd.files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("index.html"), "<h1>from the rootfs</h1>\n").unwrap();
    b
}

#[test]
fn network_namespace_is_wired_to_the_guest() {
    let rt = Runtime::new();
    let link = Link::new("ocinet", "10.77.0");
    let b = site_bundle(rt.dir(), &link.path());
    rt.ok(&["create", "--bundle", b.to_str().unwrap(), "web"]);
    rt.ok(&["start", "web"]);
    let pid = rt.state("web")["pid"].as_i64().unwrap();
    assert_eq!(link.curl("http://10.77.0.2/"), "<h1>from the rootfs</h1>\n");
    // The guest answers with the interface's own MAC: to the network,
    // nothing changed.
    let neigh = link.client.ip(&["neigh", "show", "10.77.0.2"]);
    assert!(neigh.contains(&link.mac()), "{neigh} vs {}", link.mac());
    let ping = link.client.run("ping", &["-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"]);
    assert!(ping.status.success(), "{ping:#?}");

    rt.ok(&["kill", "web"]);
    rt.wait_status("web", "stopped");
    rt.ok(&["delete", "web"]);
    assert!(!alive(pid));
    rt.assert_gone("web");
    link.assert_unwired();
}

/// A node and a pod as Kubernetes CNIs wire them (see net_pod.rs): the
/// pod's `eth0` has a /32 and a default route via 169.254.1.1, which no
/// host owns; the node routes the pod's /32 to its end of the veth and
/// holds the client's address on its loopback, so every reply crosses the
/// gateway. Calico answers ARP for the gateway by proxy ARP; AWS VPC CNI
/// puts a permanent neighbour entry for it in the pod instead.
fn pod_network(tag: &str, calico: bool) -> Link {
    let pod = Netns::new(&format!("{tag}p"));
    let node = Netns::new(&format!("{tag}n"));
    pod.disable_ipv6();
    node.disable_ipv6();
    support::netns::ip(&[
        "link",
        "add",
        "eth0",
        "netns",
        pod.name(),
        "type",
        "veth",
        "peer",
        "name",
        "cali0",
        "netns",
        node.name(),
    ]);
    pod.ip(&["addr", "add", "10.100.0.5/32", "dev", "eth0"]);
    pod.ip(&["link", "set", "eth0", "up"]);
    pod.ip(&["route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"]);
    pod.ip(&["route", "add", "default", "via", "169.254.1.1", "dev", "eth0"]);
    node.ip(&["link", "set", "cali0", "up"]);
    node.ip(&["route", "add", "10.100.0.5/32", "dev", "cali0"]);
    node.ip(&["addr", "add", "10.200.0.1/32", "dev", "lo"]);
    node.ip(&["link", "add", "uplink0", "type", "bridge"]);
    node.ip(&["link", "set", "uplink0", "up"]);
    node.ip(&["route", "add", "169.254.0.0/16", "dev", "uplink0"]);
    let sysctl = |key: &str| {
        let out = node.run("sh", &["-c", &format!("echo 1 > /proc/sys/{key}")]);
        assert!(out.status.success(), "{key}: {out:#?}");
    };
    sysctl("net/ipv4/ip_forward");
    if calico {
        sysctl("net/ipv4/conf/cali0/proxy_arp");
        let out = node.run("sh", &["-c", "echo 0 > /proc/sys/net/ipv4/neigh/cali0/proxy_delay"]);
        assert!(out.status.success(), "{out:#?}");
    } else {
        let j: Value = serde_json::from_str(&node.ip(&["-j", "link", "show", "cali0"])).unwrap();
        let mac = j[0]["address"].as_str().unwrap().to_string();
        pod.ip(&["neigh", "add", "169.254.1.1", "lladdr", &mac, "dev", "eth0", "nud", "permanent"]);
    }
    Link { container: pod, client: node }
}

#[test]
fn pod_networks_with_a_link_local_gateway() {
    let rt = Runtime::new();
    for (id, calico) in [("calico", true), ("aws", false)] {
        let link = pod_network(&format!("oci{id}"), calico);
        let b = site_bundle(&rt.dir().join(id), &link.path());
        rt.ok(&["--debug", "create", "--bundle", b.to_str().unwrap(), id]);
        let log = fs::read_to_string(rt.log()).unwrap();
        assert!(log.contains("NET_SERVICE0_IPV4=10.100.0.5/32"), "{log}");
        assert!(log.contains("NET_SERVICE0_GATEWAY=169.254.1.1"), "{log}");
        assert_eq!(log.contains("NET_SERVICE0_GATEWAY_MAC="), !calico, "{log}");
        rt.ok(&["start", id]);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = link.client.run(
                "curl",
                &["-s", "-f", "-m", "2", "--interface", "10.200.0.1", "http://10.100.0.5/"],
            );
            if out.status.success() {
                assert_eq!(out.stdout, "<h1>from the rootfs</h1>\n");
                break;
            }
            assert!(Instant::now() < deadline, "{id}: curl through the gateway: {out:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        rt.ok(&["delete", "--force", id]);
        rt.assert_gone(id);
        link.assert_unwired();
    }
}

// ---------------------------------------------------------------- engines

/// What the oci suite runs with its containerd: nabla-runc through the
/// runc shim, its root in containerd's directory.
impl Containerd {
    fn runc_root(&self) -> PathBuf {
        self.dir().join("runc")
    }

    /// `ctr run --rm` with our runtime; its output.
    fn run(&self, image: &str, id: &str, args: &[&str]) -> Output {
        self.run_with(&[], image, id, args)
    }

    /// `ctr run --rm` with `options` before the image.
    fn run_with(&self, options: &[&str], image: &str, id: &str, args: &[&str]) -> Output {
        let runc = runc();
        let root = self.runc_root();
        let mut a = vec![
            "run",
            "--rm",
            "--runc-binary",
            runc.to_str().unwrap(),
            "--runc-root",
            root.to_str().unwrap(),
        ];
        a.extend(options);
        a.extend([image, id]);
        a.extend(args);
        self.ctr(&a)
    }
}

#[test]
fn containerd_runs_packed_images() {
    let c = Containerd::start();
    let d = c.dir();
    let hello = pack(d, &workspace_bin("hello"), "example.com/demo/hello:1", None);
    let basics = pack(d, Path::new(BASICS), "example.com/test/basics:1", None);
    let blk = pack(d, Path::new(BLK), "example.com/test/blk:1", None);
    let site = d.join("site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("index.html"), "<h1>packed</h1>\n").unwrap();
    let httpd = pack(d, &workspace_bin("httpd"), "example.com/demo/httpd:1", Some(&site));
    for tar in [&hello, &basics, &blk, &httpd] {
        c.ctr_ok(&["images", "import", tar.to_str().unwrap()]);
    }
    let images = c.ctr_ok(&["images", "ls", "-q"]);
    assert!(images.contains("example.com/demo/httpd:1"), "{images}");

    let out = c.run("example.com/demo/hello:1", "hello", &[]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), c.daemon_log());
    assert_eq!(text(&out.stdout), "Hello, world!\n");
    let out = c.run("example.com/test/basics:1", "basics", &["/guest-basics.nabla", "exit", "3"]);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", text(&out.stderr), c.daemon_log());

    // A disk file as a volume, as docs/oci.md shows it: `--mount` of the
    // file at /dev/nabla/NAME; the guest's writes stay in the file.
    let img = d.join("volume.img");
    fs::File::create(&img).unwrap().set_len(1 << 20).unwrap();
    let mount = format!("type=bind,src={},dst=/dev/nabla/storage,options=rbind:rw", img.display());
    let out = c.run_with(
        &["--mount", &mount],
        "example.com/test/blk:1",
        "blk",
        &["/guest-blk.nabla", "check"],
    );
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), c.daemon_log());
    assert!(text(&out.stdout).starts_with("check: 2048 sectors of 512 bytes"), "{out:?}");
    assert_eq!(&fs::read(&img).unwrap()[10 * 512..10 * 512 + 8], &10u64.to_le_bytes());

    // httpd in a namespace the test made, serving the files it was packed with.
    let link = Link::new("ctrnet", "10.78.0");
    let runc = runc();
    let root = c.runc_root();
    let ns = format!("network:{}", link.path());
    c.ctr_ok(&[
        "run",
        "-d",
        "--runc-binary",
        runc.to_str().unwrap(),
        "--runc-root",
        root.to_str().unwrap(),
        "--with-ns",
        &ns,
        "example.com/demo/httpd:1",
        "web",
    ]);
    assert_eq!(link.curl("http://10.78.0.2/"), "<h1>packed</h1>\n");
    let tasks = c.ctr_ok(&["task", "ls"]);
    let pid: i64 = tasks
        .lines()
        .find(|l| l.starts_with("web "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{tasks}"));
    assert_eq!(proc_exe(pid), Some(workspace_bin("tender")));
    // Through containerd's shim: the tender runs in the cgroup containerd
    // asked for (/default/web), whose files the shim reads for `task
    // metrics`; pause and resume go through its freezer.
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.lines().any(|l| l.contains(":memory:") && l.ends_with("/default/web")), "{cg}");
    let metrics = c.ctr_ok(&["task", "metrics", "web"]);
    let usage: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("memory.usage_in_bytes"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(usage > 0 && usage <= 64 << 20, "{metrics}");
    c.ctr_ok(&["task", "pause", "web"]);
    assert!(
        c.ctr_ok(&["task", "ls"]).lines().any(|l| l.starts_with("web ") && l.contains("PAUSED"))
    );
    let frozen = link.client.run("curl", &["-s", "-f", "-m", "1", "http://10.78.0.2/"]);
    assert!(!frozen.status.success(), "a paused guest answered: {frozen:#?}");
    c.ctr_ok(&["task", "resume", "web"]);
    assert!(
        c.ctr_ok(&["task", "ls"]).lines().any(|l| l.starts_with("web ") && l.contains("RUNNING"))
    );
    assert_eq!(link.curl("http://10.78.0.2/"), "<h1>packed</h1>\n");
    c.ctr_ok(&["task", "kill", "web"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.ctr_ok(&["task", "ls"]).contains("STOPPED") {
        assert!(Instant::now() < deadline, "web did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.ctr_ok(&["task", "delete", "web"]);
    c.ctr_ok(&["container", "delete", "web"]);
    assert!(!alive(pid), "tender {pid} left running");
    link.assert_unwired();
    for ctl in ["memory", "cpu", "pids", "freezer"] {
        let dir = Path::new("/sys/fs/cgroup").join(ctl).join("default/web");
        assert!(!dir.exists(), "cgroup left behind: {}", dir.display());
    }
    let left: Vec<_> = fs::read_dir(root.join("default"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runtime state left behind: {left:?}");
}

/// podman as docs/oci.md configures it: its own storage and run root
/// under a temp dir, cgroupfs, file events, no network.
struct Podman {
    dir: TempDir,
}

impl Podman {
    fn new() -> Podman {
        require_root();
        let dir = TempDir::new("podman");
        let d = dir.path();
        fs::write(
            d.join("containers.conf"),
            "[containers]\nnetns = \"none\"\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n"
                .to_string()
                + &format!("events_logfile_path = \"{}/events.log\"\n", d.display()),
        )
        .unwrap();
        fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                d.display()
            ),
        )
        .unwrap();
        Podman { dir }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new("podman")
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .arg("--root")
            .arg(d.join("graph"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman (Debian package podman)")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "--all", "--force"]);
        kill_mentioning(&self.dir.path().display().to_string());
        unmount_under(self.dir.path());
    }
}

#[test]
fn podman_runs_packed_images() {
    let p = Podman::new();
    let d = p.dir.path();
    let hello = pack(d, &workspace_bin("hello"), "example.com/demo/hello:1", None);
    let basics = pack(d, Path::new(BASICS), "example.com/test/basics:1", None);
    for tar in [&hello, &basics] {
        let out = p.cmd(&["load", "-i", tar.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let runc = runc();
    let r = runc.to_str().unwrap();
    let out = p.cmd(&["run", "--rm", "--runtime", r, "example.com/demo/hello:1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello, world!\n");
    let out = p.cmd(&["run", "--rm", "--runtime", r, "example.com/test/basics:1", "exit", "5"]);
    // podman appends its command to the image's entry point (ctr replaces both).
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    // With a terminal: the console goes through the socket podman gives.
    let out = p.cmd(&["run", "--rm", "-t", "--runtime", r, "example.com/demo/hello:1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello, world!\r\n");
    // A disk file as a volume: `-v FILE:/dev/nabla/NAME` (here kept by the
    // host after the container is gone).
    let blk = pack(d, Path::new(BLK), "example.com/test/blk:1", None);
    let out = p.cmd(&["load", "-i", blk.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let img = d.join("volume.img");
    fs::File::create(&img).unwrap().set_len(1 << 20).unwrap();
    let volume = format!("{}:/dev/nabla/storage", img.display());
    let out =
        p.cmd(&["run", "--rm", "--runtime", r, "-v", &volume, "example.com/test/blk:1", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("check: 2048 sectors of 512 bytes"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(&fs::read(&img).unwrap()[10 * 512..10 * 512 + 8], &10u64.to_le_bytes());
    let left = p.cmd(&["ps", "-a", "-q"]);
    assert_eq!(text(&left.stdout), "", "containers left behind");
}

// ------------------------------------------------------ hostile images

/// What a hostile image must never get onto its disk.
const SECRET: &str = "HOST-SECRET-0f1e2d3c";
/// What a hostile image's legitimate file holds.
const LEGIT: &str = "LEGIT-CONTENT-9a8b";

fn mknod(p: &Path, mode: u32, dev: u64) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert_eq!(r, 0, "mknod {}: {}", p.display(), std::io::Error::last_os_error());
}

#[test]
fn a_hostile_rootfs_gets_nothing_from_outside_it_onto_the_disk() {
    let rt = Runtime::new();
    let outside = rt.dir().join("outside");
    fs::create_dir_all(outside.join("etc")).unwrap();
    fs::write(outside.join("secret"), SECRET).unwrap();
    fs::write(outside.join("etc/shadow"), SECRET).unwrap();
    type Setup = fn(&Path, &Path, &mut Value);
    // (id, what the rootfs holds, None: a disk without the outside data and
    // a warning holding the text; Some: refused with the text)
    let cases: &[(&str, Setup, &str, bool)] = &[
        (
            "symfile",
            |files, out, _| {
                std::os::unix::fs::symlink(out.join("secret"), files.join("leak.txt")).unwrap()
            },
            "/guest-blk.files/leak.txt: a symbolic link (to ",
            false,
        ),
        (
            "symdir",
            |files, out, _| std::os::unix::fs::symlink(out.join("etc"), files.join("etc")).unwrap(),
            "/guest-blk.files/etc: a symbolic link",
            false,
        ),
        (
            "symfiles",
            |files, out, _| {
                fs::remove_dir_all(files).unwrap();
                std::os::unix::fs::symlink(out, files).unwrap();
            },
            "rootfs /guest-blk.files is a symbolic link",
            true,
        ),
        (
            "fifo",
            |files, _, _| {
                let c = std::ffi::CString::new(
                    files.join("pipe").into_os_string().into_encoded_bytes(),
                )
                .unwrap();
                // SAFETY: a NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            },
            "/guest-blk.files/pipe: a FIFO: left out",
            false,
        ),
        (
            "device",
            // /dev/zero's numbers: followed, it would never end.
            |files, _, _| mknod(&files.join("zero"), libc::S_IFCHR | 0o644, libc::makedev(1, 5)),
            "/guest-blk.files/zero: a character device: left out",
            false,
        ),
        (
            "hardlink",
            |files, out, _| fs::hard_link(out.join("secret"), files.join("hl")).unwrap(),
            "/guest-blk.files/hl: a file with 2 hard links, 1 of them in the tree",
            false,
        ),
        (
            "dotdot",
            |_, _, c| c["process"]["args"] = json!(["/../guest-blk.nabla", "info"]),
            "without \"..\"",
            true,
        ),
        (
            // No NAME.files: the rest of the rootfs makes the disk.
            "rootfs",
            |files, out, _| {
                fs::remove_dir_all(files).unwrap();
                let rootfs = files.parent().unwrap();
                fs::write(rootfs.join("data.txt"), LEGIT).unwrap();
                std::os::unix::fs::symlink(out.join("etc"), rootfs.join("etc")).unwrap();
                std::os::unix::fs::symlink(out.join("secret"), rootfs.join("leak")).unwrap();
                mknod(&rootfs.join("zero"), libc::S_IFCHR | 0o644, libc::makedev(1, 5));
            },
            "/leak: a symbolic link",
            false,
        ),
    ];
    for (id, setup, needle, refused) in cases {
        let b = bundle(&rt.dir().join(id), BLK, &["info"], |_| {});
        let files = b.join("rootfs/guest-blk.files");
        fs::create_dir_all(&files).unwrap();
        fs::write(files.join("legit.txt"), LEGIT).unwrap();
        // `..` inside a name is just a name.
        fs::write(files.join("..notparent"), LEGIT).unwrap();
        let mut config: Value =
            serde_json::from_str(&fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
        setup(&files, &outside, &mut config);
        fs::write(b.join("config.json"), config.to_string()).unwrap();
        let args = ["--debug", "create", "--bundle", b.to_str().unwrap(), id];
        if *refused {
            rt.refused(&args, needle);
            rt.assert_gone(id);
            continue;
        }
        let out = rt.cmd(&args);
        assert!(out.status.success(), "{id}: {}", text(&out.stderr));
        let disk = rt.last_disk();
        let bytes = fs::read(&disk).unwrap();
        let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has(LEGIT), "{id}: the image's own file is not on the disk");
        assert!(!has(SECRET), "{id}: data from outside the rootfs is on the disk");
        let warnings = rt.warnings();
        assert!(warnings.contains(&format!("the guest's disk: {needle}")), "{id}: {warnings}");
        rt.ok(&["delete", "--force", id]);
        rt.assert_gone(id);
    }
}

/// The pid of the `nabla disk create` that a runtime under `dir` runs.
fn disk_helper(dir: &Path) -> Option<i32> {
    let needle = dir.display().to_string();
    fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
        let cmd = text(&fs::read(format!("/proc/{pid}/cmdline")).ok()?);
        (cmd.contains("disk\0create\0") && cmd.contains(&needle)).then_some(pid)
    })
}

/// A process stopped with SIGSTOP, continued (and killed if `kill`) when
/// dropped.
struct Stopped {
    pid: i32,
    kill: bool,
}

impl Stopped {
    fn new(pid: i32) -> Stopped {
        // SAFETY: a signal to a process of this test.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        Stopped { pid, kill: true }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: signals to a process of this test.
        unsafe {
            if self.kill {
                libc::kill(self.pid, libc::SIGKILL);
            }
            libc::kill(self.pid, libc::SIGCONT);
        }
    }
}

/// Starts a create of `id` whose disk takes a while (many files) and
/// stops its `nabla disk create` once it runs.
fn create_held(rt: &Runtime, id: &str, extra: &[&str]) -> (Running, Stopped) {
    let b = bundle(&rt.dir().join(id), BLK, &["info"], |_| {});
    let files = b.join("rootfs/guest-blk.files");
    for d in 0..10 {
        fs::create_dir_all(files.join(format!("d{d}"))).unwrap();
        for f in 0..100 {
            fs::write(files.join(format!("d{d}/f{f}.txt")), format!("{d} {f}\n")).unwrap();
        }
    }
    let mut args = extra.to_vec();
    args.extend(["create", "--bundle", b.to_str().unwrap(), id]);
    let create = rt.spawn(&args);
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Some(p) = disk_helper(rt.dir()) {
            break p;
        }
        assert!(Instant::now() < deadline, "{id}: never saw nabla disk create run");
        std::thread::sleep(Duration::from_millis(1));
    };
    (create, Stopped::new(pid))
}

#[test]
fn a_slow_disk_is_stopped_at_the_disk_timeout() {
    let rt = Runtime::new();
    let (create, helper) = create_held(&rt, "slow", &["--disk-timeout", "1"]);
    let t = Instant::now();
    let out = rt.finish(create, &["create", "slow"]);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the rootfs took more than 1 s: stopped"),
        "{}",
        text(&out.stderr)
    );
    // Killed with its group: gone (a zombie at most until reaped).
    assert!(!alive(helper.pid as i64), "the helper survived");
    rt.assert_gone("slow");
}

#[test]
fn delete_and_start_wait_for_a_create_of_the_same_id() {
    let rt = Runtime::new();
    for (id, cmd) in [("held-del", ["delete", "--force"]), ("held-start", ["start", ""])] {
        let (create, mut helper) = create_held(&rt, id, &[]);
        let mut args = vec![cmd[0]];
        if !cmd[1].is_empty() {
            args.push(cmd[1]);
        }
        args.push(id);
        let other = rt.spawn(&args);
        std::thread::sleep(Duration::from_millis(500));
        let mut other = other;
        assert!(
            other.child.as_mut().unwrap().try_wait().unwrap().is_none(),
            "{args:?} did not wait for the create of {id}: {}",
            text(&fs::read(&other.err).unwrap())
        );
        assert!(rt.root().join(id).exists(), "{id}: the directory went under create");
        helper.kill = false;
        drop(helper);
        let out = rt.finish(create, &["create", id]);
        assert!(out.status.success(), "create {id}: {}", text(&out.stderr));
        let out = rt.finish(other, &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        if cmd[0] == "start" {
            // guest-blk info ran and exits.
            rt.wait_status(id, "stopped");
            rt.ok(&["delete", id]);
        }
        rt.assert_gone(id);
    }
}

#[test]
fn the_pid_file_is_not_written_through_a_planted_link() {
    let rt = Runtime::new();
    let b = bundle(rt.dir(), BASICS, &["sleep", "30"], |_| {});
    let dir = rt.dir().join("pids");
    fs::create_dir_all(&dir).unwrap();
    let victim = rt.dir().join("victim");
    fs::write(&victim, "precious").unwrap();
    // The temporary name the runtime used to write through, and the pid
    // file's own name, both links to the victim.
    std::os::unix::fs::symlink(&victim, dir.join(".pid.tmp")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("pid")).unwrap();
    let pid_file = dir.join("pid");
    rt.ok(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "p1",
    ]);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    let meta = fs::symlink_metadata(&pid_file).unwrap();
    assert!(meta.is_file(), "the pid file is a {:?}", meta.file_type());
    let pid: i64 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(rt.state("p1")["pid"], pid);
    // No temporary file is left next to it.
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".pid.tmp", "pid"]);
    rt.ok(&["delete", "--force", "p1"]);
    rt.assert_gone("p1");
}

fn mode_and_owner(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(p).unwrap();
    (m.mode() & 0o7777, m.uid())
}

#[test]
fn disks_are_private_keyed_by_root_and_id_and_capped() {
    // Two runtimes, each with its root on a tmpfs: their disks go to
    // /var/lib/nabla-runc/disks, where the same id must not collide.
    let a = Runtime::on_tmpfs();
    let b = Runtime::on_tmpfs();
    let id = format!("keyed{}", std::process::id());
    let raw = bundle(&a.dir().join("raw"), BLK, &["info"], |_| {});
    let rs = raw.to_str().unwrap();
    a.ok(&["--debug", "create", "--bundle", rs, &id]);
    let disk_a = a.last_disk();
    b.ok(&["--debug", "create", "--bundle", rs, &id]);
    let disk_b = b.last_disk();
    assert_ne!(disk_a, disk_b);
    for (rt, d) in [(&a, &disk_a), (&b, &disk_b)] {
        assert_eq!(d, &keyed_disk_dir(&rt.root(), &id).join("disk.img"));
    }
    for d in [&disk_a, &disk_b] {
        assert!(d.starts_with("/var/lib/nabla-runc/disks"), "{}", d.display());
        assert_eq!(mode_and_owner(d), (0o600, 0), "{}", d.display());
        assert_eq!(mode_and_owner(d.parent().unwrap()), (0o700, 0), "{}", d.display());
        assert_eq!(fs::metadata(d).unwrap().len(), 64 << 20);
    }
    a.ok(&["delete", "--force", &id]);
    a.assert_gone(&id);
    assert!(disk_b.exists(), "deleting a's container removed b's disk");
    b.ok(&["delete", "--force", &id]);
    b.assert_gone(&id);

    // Made as the process user, who owns it and alone reads it; the files
    // only root may read stay off it.
    let nobody = bundle(&a.dir().join("nobody"), BLK, &["info"], |c| {
        c["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    });
    let files = nobody.join("rootfs/guest-blk.files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("public.txt"), LEGIT).unwrap();
    fs::write(files.join("private.txt"), SECRET).unwrap();
    fs::set_permissions(
        files.join("private.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let nid = format!("nobody{}", std::process::id());
    a.ok(&["--debug", "create", "--bundle", nobody.to_str().unwrap(), &nid]);
    let disk = a.last_disk();
    assert_eq!(mode_and_owner(&disk), (0o600, 65534));
    assert_eq!(mode_and_owner(disk.parent().unwrap()), (0o700, 65534));
    let bytes = fs::read(&disk).unwrap();
    let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has(LEGIT) && !has(SECRET));
    assert!(a.warnings().contains("private.txt: a file that cannot be read"), "{}", a.warnings());
    a.ok(&["delete", "--force", &nid]);
    a.assert_gone(&nid);

    // The size: the annotation within --disk-max-mib (default 4096), set
    // by flag or environment; a disk from files too.
    let sized = |dir: &str, mib: &str| {
        bundle(&a.dir().join(dir), BLK, &["info"], |c| {
            c["annotations"] = json!({"org.nabla.disk.size-mib": mib});
        })
    };
    let huge = sized("huge", "1048576");
    a.refused(
        &["create", "--bundle", huge.to_str().unwrap(), "huge"],
        "expected a size in MiB from 1 to 4096",
    );
    let s16 = sized("s16", "16");
    a.refused(
        &["--disk-max-mib", "8", "create", "--bundle", s16.to_str().unwrap(), "s16"],
        "from 1 to 8 (the runtime's --disk-max-mib)",
    );
    let out = a.cmd_env(
        &[("NABLA_RUNC_DISK_MAX_MIB", "8")],
        &["create", "--bundle", s16.to_str().unwrap(), "s16"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("from 1 to 8"), "{}", text(&out.stderr));
    let s8 = sized("s8", "8");
    a.ok(&["--debug", "--disk-max-mib", "8", "create", "--bundle", s8.to_str().unwrap(), "s8"]);
    assert_eq!(fs::metadata(a.last_disk()).unwrap().len(), 8 << 20);
    a.ok(&["delete", "--force", "s8"]);
    let big = bundle(&a.dir().join("big"), BLK, &["info"], |_| {});
    let files = big.join("rootfs/guest-blk.files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("big.bin"), vec![1u8; 20 << 20]).unwrap();
    a.refused(
        &["--disk-max-mib", "16", "create", "--bundle", big.to_str().unwrap(), "big"],
        "the files need more than the 16 MiB allowed",
    );
    for id in ["huge", "s16", "s8", "big"] {
        a.assert_gone(id);
    }
}

#[test]
fn nabla_disk_create_refuses_what_it_cannot_copy_safely_on_its_own() {
    let dir = TempDir::new("disk-hostile");
    let d = dir.path();
    fs::write(d.join("secret"), SECRET).unwrap();
    let tree = d.join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("sub/legit.txt"), LEGIT).unwrap();
    let c =
        std::ffi::CString::new(tree.join("pipe").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink(d.join("secret"), tree.join("sub/leak")).unwrap();
    // The image's name is a link to a file of the user's: replaced, not
    // written through.
    let victim = d.join("victim");
    fs::write(&victim, "precious").unwrap();
    let img = d.join("disk.img");
    std::os::unix::fs::symlink(&victim, &img).unwrap();
    let nabla = workspace_bin("nabla");
    let create = |extra: &[&str]| {
        let mut args =
            vec!["disk", "create", img.to_str().unwrap(), "--from", tree.to_str().unwrap()];
        args.extend(extra);
        run_program(&nabla, &args)
    };
    // Refused (run_program gives it 30 s: a FIFO it opened would hang it).
    let out = create(&[]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(
        out.stderr.starts_with("nabla: ") && out.stderr.contains("tree/pipe: a FIFO: refused"),
        "{out:#?}"
    );
    fs::remove_file(tree.join("pipe")).unwrap();
    let out = create(&[]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("tree/sub/leak: a symbolic link (to "), "{out:#?}");
    assert!(fs::symlink_metadata(&img).unwrap().file_type().is_symlink(), "a refusal leaves IMG");
    let link = d.join("link");
    std::os::unix::fs::symlink(&tree, &link).unwrap();
    let out = run_program(
        &nabla,
        &["disk", "create", img.to_str().unwrap(), "--from", link.to_str().unwrap()],
    );
    assert!(out.stderr.contains("link: a symbolic link: not followed"), "{out:#?}");
    // Left out with a warning.
    let out = create(&["--skip-special"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(
        out.stderr.contains("nabla: warning: ") && out.stderr.contains("sub/leak: a symbolic link"),
        "{out:#?}"
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    let bytes = fs::read(&img).unwrap();
    let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has(LEGIT) && !has(SECRET));
    // Nothing but the image is left next to it.
    let mut names: Vec<_> =
        fs::read_dir(d).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["disk.img", "link", "secret", "tree", "victim"]);
}

/// `Max open files` soft and hard of `pid`.
fn nofile(pid: &str) -> (String, String) {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_string();
    let v: Vec<_> = line.split_whitespace().collect();
    (v[3].to_string(), v[4].to_string())
}

#[test]
fn rlimits_are_set_or_refused_naming_them() {
    let rt = Runtime::new();
    // Within the caller's limits: set on the container process.
    let b = bundle(&rt.dir().join("within"), BASICS, &["sleep", "30"], |c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}]);
    });
    rt.ok(&["create", "--bundle", b.to_str().unwrap(), "rl1"]);
    let pid = rt.state("rl1")["pid"].as_i64().unwrap();
    assert_eq!(nofile(&pid.to_string()), ("256".into(), "512".into()));
    rt.ok(&["delete", "--force", "rl1"]);
    rt.assert_gone("rl1");
    // Above the caller's hard limit, as podman's default nofile of 1048576
    // (even with --ulimit host) is here: only with CAP_SYS_RESOURCE.
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    let caps = u64::from_str_radix(cap_eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    let hard: u64 = nofile("self").1.parse().unwrap();
    const CAP_SYS_RESOURCE: u32 = 24;
    if caps & (1 << CAP_SYS_RESOURCE) != 0 || hard >= 1 << 20 {
        eprintln!("not checking the refusal: this process may raise its hard limit");
        return;
    }
    let above = hard + 1;
    let b = bundle(&rt.dir().join("above"), BASICS, &["exit", "0"], |c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": above, "hard": above}]);
    });
    rt.refused(
        &["create", "--bundle", b.to_str().unwrap(), "rl2"],
        &format!("setrlimit RLIMIT_NOFILE (soft {above}, hard {above}): Operation not permitted (os error 1): raising a hard limit above the caller's needs CAP_SYS_RESOURCE"),
    );
    rt.assert_gone("rl2");
}
