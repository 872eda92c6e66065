//! Kubernetes through containerd's CRI, as the kubelet drives it: a
//! containerd of the test's own (CRI plugin on, runtime handler `nabla` =
//! the runc v2 shim with `BinaryName` = nabla-runc), a CNI bridge network
//! (bridge + host-local IPAM + loopback, Debian's containernetworking-plugins
//! in /usr/lib/cni), a sandbox image the project packs itself and imports
//! (never pulled), and a CRI client (crate `k8s-cri`, gRPC over tonic) that
//! calls the RPCs in the kubelet's order, each under a deadline.
//!
//! containerd and its bridge live in a network namespace the test makes
//! (containerd is started in it with `nsenter --net`, so the mount
//! namespace stays the host's); the pods' namespaces are containerd's own,
//! mounted under its state directory; everything else (containerd's root
//! and state, the runtime's root, the CNI configuration and its IP
//! allocations, the pods' logs) lives under a temporary directory. At the
//! end each test checks that nothing is left: no shim or tender, no pod
//! namespace, no veth, no allocated address, no cgroup, no runtime state.
//! A failing test cleans up in `Drop`: containerd by pid, then the
//! processes whose command line names the temporary directory (the shims,
//! the tenders), mounts under it, the cgroups under its cgroup parent and
//! the namespace.
//!
//! Runs as root (CI does): containers need it.

// The suites' helpers (netns, workspace_bin, the containerd and nabla-runc
// drivers, ...), shared with nabla-tests.
#[path = "../suite/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use serde_json::Value;
use support::containerd::{Containerd, pack};
use support::netns::{Netns, require_root};
use support::procs::{alive, mounts_under, pids_mentioning};
use support::runtime::runc;
use support::{text, workspace_bin};
use tonic::transport::Channel;

/// Every RPC's deadline: a call that takes longer is a hang, and fails the test.
const DEADLINE: Duration = Duration::from_secs(60);

const HTTPD: &str = "example.com/demo/httpd:1";
const HELLO: &str = "example.com/demo/hello:1";
const BASICS_IMAGE: &str = "example.com/test/basics:1";
const PAUSE: &str = "example.com/nabla/pause:1";
/// The native peer: Debian's static busybox (`httpd`, and `sleep` as the
/// runc pods' pause).
const NATIVE: &str = "example.com/native/busybox:1";

/// The cgroup v1 hierarchies (or the v2 unified one) this host mounts, as
/// directories under which a cgroup path is found.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    ["memory", "cpu", "cpuacct", "pids", "cpuset", "freezer", "blkio", "devices", "systemd"]
        .iter()
        .map(|c| base.join(c))
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes the cgroup directory `rel` (relative to each hierarchy) and the
/// ones below it, deepest first: what the kubelet does with a pod's
/// cgroup. Returns the ones that could not be removed.
fn remove_cgroups(rel: &str) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for root in cgroup_roots() {
        let top = root.join(rel.trim_start_matches('/'));
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            if fs::remove_dir(&d).is_err() && d.exists() {
                left.push(d);
            }
        }
    }
    left
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_dirs(&e.path(), out);
        }
    }
}

/// The cgroups below `rel` in any hierarchy.
fn cgroups_below(rel: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in cgroup_roots() {
        let top = root.join(rel.trim_start_matches('/'));
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        found.extend(dirs.into_iter().filter(|d| d != &top));
    }
    found
}

/// A node: a network namespace holding containerd, its CNI bridge and the
/// test's own end of the network; containerd with the CRI plugin and the
/// `nabla` handler; the images imported into its `k8s.io` namespace.
struct Node {
    ns: Netns,
    /// The pods' cgroup parent, relative to each hierarchy's root.
    cgroup_parent: String,
    /// The pod subnet's first three octets.
    net: String,
    /// containerd, stopped (by pid) before the rest is cleaned up; its
    /// temporary directory, which holds everything else, last to go.
    containerd: Containerd,
}

impl Node {
    /// `net`: the first three octets of the pod subnet (a /24 private to
    /// the namespace, distinct per test).
    fn start(tag: &str, net: &str) -> Node {
        Node::start_with(tag, net, false)
    }

    /// With `native`, also a `runc` handler (Debian's runc) and a native
    /// static image, `NATIVE` (busybox), which is then the sandbox image of
    /// both handlers (nabla-runc never runs a sandbox image's binary).
    fn start_with(tag: &str, net: &str, native: bool) -> Node {
        require_root();
        let containerd = Containerd::new(&format!("cri-{tag}"));
        let ns = Netns::new(&format!("cri{tag}"));
        let d = containerd.dir().to_path_buf();
        let cgroup_parent = format!("/nabla-test-cri-{tag}-{}", std::process::id());
        let mut node = Node { ns, cgroup_parent, net: net.to_string(), containerd };
        // A leftover of a killed run of this test (same pid unlikely, but
        // the test must be idempotent).
        remove_cgroups(&node.cgroup_parent);

        fs::create_dir_all(d.join("cni")).unwrap();
        fs::create_dir_all(d.join("ipam")).unwrap();
        fs::create_dir_all(d.join("pods")).unwrap();
        let cni = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "nabla-test",
            "plugins": [{
                "type": "bridge",
                "bridge": "crib0",
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": format!("{net}.0/24"), "gateway": format!("{net}.1") }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": d.join("ipam").display().to_string(),
                },
            }],
        });
        fs::write(d.join("cni/10-nabla-test.conflist"), cni.to_string()).unwrap();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # The CRI gives sandboxes oom_score_adj -998; lowering it needs
  # CAP_SYS_RESOURCE, which root lacks on these machines (runc would fail
  # the same way): keep every value at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "nabla"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nabla]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nabla.options]
        BinaryName = "{runc}"
        Root = "{d}/nabla-runc"
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{d}/runc"
        SystemdCgroup = false
"#,
            d = d.display(),
            pause = if native { NATIVE } else { PAUSE },
            runc = runc().display(),
            socket = node.containerd.socket().display(),
        );
        node.containerd.launch(&config, Some(node.ns.name()), Duration::from_secs(60));

        // The images, packed here and imported (never pulled): the sandbox
        // ("pause") image is a nabla image too; nabla-runc never runs its
        // binary (a sandbox is its own waiting process), but the CRI needs
        // an image for it.
        let site = d.join("site");
        fs::create_dir_all(&site).unwrap();
        fs::write(site.join("index.html"), "<h1>a pod</h1>\n").unwrap();
        let images = d.join("images");
        fs::create_dir_all(&images).unwrap();
        let pause_dir = images.join("pause");
        fs::create_dir_all(&pause_dir).unwrap();
        for tar in [
            pack(&pause_dir, &workspace_bin("hello"), PAUSE, None),
            pack(&images, &workspace_bin("hello"), HELLO, None),
            pack(&images, &workspace_bin("guest-basics"), BASICS_IMAGE, None),
            pack(&images, &workspace_bin("httpd"), HTTPD, Some(&site)),
        ] {
            node.ctr_ok(&["-n", "k8s.io", "images", "import", tar.to_str().unwrap()]);
        }
        if native {
            let tar = busybox_image(&images, &site);
            node.ctr_ok(&["-n", "k8s.io", "images", "import", tar.to_str().unwrap()]);
        }
        node
    }

    fn socket(&self) -> PathBuf {
        self.containerd.socket()
    }

    fn daemon_log(&self) -> String {
        self.containerd.daemon_log()
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        self.containerd.ctr_ok(args)
    }

    fn runtime_root(&self) -> PathBuf {
        self.containerd.dir().join("nabla-runc")
    }

    /// `curl URL` from the node's namespace until it answers 200, within
    /// `wait`; the body.
    fn curl(&self, url: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let out = self.ns.run("curl", &["-s", "-f", "-m", "2", url]);
            if out.status.success() {
                return out.stdout;
            }
            assert!(Instant::now() < deadline, "curl {url}: {out:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A CRI client on containerd's socket.
    fn cri(&self) -> Cri {
        Cri::connect(&self.socket())
    }

    /// A pod sandbox config as the kubelet makes one.
    fn pod_config(&self, name: &str) -> cri::PodSandboxConfig {
        let logs = self.containerd.dir().join("pods").join(name);
        fs::create_dir_all(&logs).unwrap();
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: logs.display().to_string(),
            labels: HashMap::from([("app".into(), name.into())]),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("{}/pod-{name}", self.cgroup_parent),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Checks that nothing of the pods is left: no shim or tender, no
    /// runtime state, no pod namespace or mount, no veth, no allocated
    /// address, no container cgroup. Then removes the pods' cgroups as
    /// the kubelet would, and checks they could be removed.
    fn assert_nothing_left(&self) {
        let d = self.containerd.dir();
        // containerd itself is still running: only it may mention the dir.
        let daemon = self.containerd.pid();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<i32> = pids_mentioning(&d.display().to_string())
                .into_iter()
                .filter(|p| Some(*p) != daemon)
                .collect();
            if left.is_empty() {
                break;
            }
            let cmds: Vec<String> = left
                .iter()
                .map(|p| text(&fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default()))
                .collect();
            assert!(Instant::now() < deadline, "processes left behind: {cmds:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let state: Vec<_> = fs::read_dir(self.runtime_root().join("k8s.io"))
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(state.is_empty(), "runtime state left behind: {state:?}");
        let netns: Vec<_> = fs::read_dir(d.join("state/io.containerd.grpc.v1.cri/netns"))
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(netns.is_empty(), "pod network namespaces left behind: {netns:?}");
        let mounts: Vec<String> = mounts_under(d)
            .into_iter()
            .filter(|m| !m.contains("io.containerd.snapshotter"))
            .collect();
        assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
        let links = self.ns.ip(&["-o", "link", "show"]);
        assert!(!links.contains("veth"), "veth left behind: {links}");
        let ipam = d.join("ipam/nabla-test");
        let taken: Vec<String> = fs::read_dir(&ipam)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&self.net))
                    .collect()
            })
            .unwrap_or_default();
        assert!(taken.is_empty(), "IP allocations left behind in {}: {taken:?}", ipam.display());
        // The containers' cgroups (PARENT/pod-NAME/ID) are the runtime's to
        // remove; the pods' own (PARENT/pod-NAME) the kubelet's.
        let leaves: Vec<PathBuf> = cgroups_below(&self.cgroup_parent)
            .into_iter()
            .filter(|p| {
                p.strip_prefix("/sys/fs/cgroup").map(|r| r.components().count()).unwrap_or(0)
                    > self.cgroup_parent.matches('/').count() + 2
            })
            .collect();
        assert!(leaves.is_empty(), "container cgroups left behind: {leaves:?}");
        let stuck = remove_cgroups(&self.cgroup_parent);
        assert!(stuck.is_empty(), "cgroups that could not be removed: {stuck:?}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // containerd by pid, then what names its directory, then the
        // mounts under it.
        self.containerd.stop();
        remove_cgroups(&self.cgroup_parent);
        // The runtime keeps disks of a root on tmpfs under /var/lib: a
        // failed test's are removed here (their names end in the id).
        let _ = &self.ns;
    }
}

/// A CRI client: the runtime and image services on one channel, calls
/// made on a current-thread runtime, each under `DEADLINE`.
struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    fn connect(socket: &Path) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let path = socket.to_path_buf();
        let channel = rt
            .block_on(async {
                tokio::time::timeout(
                    DEADLINE,
                    tonic::transport::Endpoint::from_static("http://localhost")
                        .connect_with_connector(tower::service_fn(
                            move |_: tonic::transport::Uri| {
                                let path = path.clone();
                                async move {
                                    let s = tokio::net::UnixStream::connect(path).await?;
                                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                                }
                            },
                        )),
                )
                .await
            })
            .expect("connecting to containerd's CRI: timed out")
            .expect("connecting to containerd's CRI");
        Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        }
    }

    /// Runs one RPC under the deadline; a call that does not answer in
    /// time fails the test (a hang is a bug).
    fn call<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        match self.rt.block_on(async { tokio::time::timeout(DEADLINE, f).await }) {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => panic!("CRI {what} did not answer within {DEADLINE:?}"),
        }
    }

    fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    fn run_pod(&self, config: &cri::PodSandboxConfig) -> String {
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: "nabla".into(),
        };
        self.call("RunPodSandbox", self.rs().run_pod_sandbox(req))
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"))
            .pod_sandbox_id
    }

    fn pod_status(&self, id: &str) -> cri::PodSandboxStatusResponse {
        let req = cri::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true };
        self.call("PodSandboxStatus", self.rs().pod_sandbox_status(req))
            .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"))
    }

    fn stop_pod(&self, id: &str) {
        let req = cri::StopPodSandboxRequest { pod_sandbox_id: id.into() };
        self.call("StopPodSandbox", self.rs().stop_pod_sandbox(req))
            .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
    }

    fn remove_pod(&self, id: &str) {
        let req = cri::RemovePodSandboxRequest { pod_sandbox_id: id.into() };
        self.call("RemovePodSandbox", self.rs().remove_pod_sandbox(req))
            .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
    }

    fn list_pods(&self) -> Vec<cri::PodSandbox> {
        let req = cri::ListPodSandboxRequest { filter: None };
        self.call("ListPodSandbox", self.rs().list_pod_sandbox(req))
            .unwrap_or_else(|e| panic!("ListPodSandbox: {e}"))
            .items
    }

    /// CreateContainer with `config` (PullImage is never called: the
    /// image is checked with ImageStatus, as the kubelet does first).
    fn create(
        &self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        config: cri::ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let image = config.image.clone().unwrap_or_default();
        let status = self
            .call(
                "ImageStatus",
                self.images.clone().image_status(cri::ImageStatusRequest {
                    image: Some(image.clone()),
                    verbose: false,
                }),
            )
            .unwrap_or_else(|e| panic!("ImageStatus: {e}"));
        assert!(status.image.is_some(), "image {} not present", image.image);
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        self.call("CreateContainer", self.rs().create_container(req)).map(|r| r.container_id)
    }

    fn start(&self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::StartContainerRequest { container_id: id.into() };
        self.call("StartContainer", self.rs().start_container(req)).map(|_| ())
    }

    fn status(&self, id: &str) -> (cri::ContainerStatus, HashMap<String, String>) {
        let req = cri::ContainerStatusRequest { container_id: id.into(), verbose: true };
        let r = self
            .call("ContainerStatus", self.rs().container_status(req))
            .unwrap_or_else(|e| panic!("ContainerStatus: {e}"));
        (r.status.expect("a status"), r.info)
    }

    /// Polls ContainerStatus until the container has exited, within `wait`.
    fn wait_exited(&self, id: &str, wait: Duration) -> cri::ContainerStatus {
        let deadline = Instant::now() + wait;
        loop {
            let (s, _) = self.status(id);
            if s.state == cri::ContainerState::ContainerExited as i32 {
                return s;
            }
            assert!(Instant::now() < deadline, "container {id} did not exit: {s:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&self, id: &str, timeout: i64) -> Result<(), tonic::Status> {
        let req = cri::StopContainerRequest { container_id: id.into(), timeout };
        self.call("StopContainer", self.rs().stop_container(req)).map(|_| ())
    }

    fn remove(&self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::RemoveContainerRequest { container_id: id.into() };
        self.call("RemoveContainer", self.rs().remove_container(req)).map(|_| ())
    }

    fn list(&self, pod: &str) -> Vec<cri::Container> {
        let req = cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter { pod_sandbox_id: pod.into(), ..Default::default() }),
        };
        self.call("ListContainers", self.rs().list_containers(req))
            .unwrap_or_else(|e| panic!("ListContainers: {e}"))
            .containers
    }

    fn stats(&self, id: &str) -> cri::ContainerStats {
        let req = cri::ContainerStatsRequest { container_id: id.into() };
        self.call("ContainerStats", self.rs().container_stats(req))
            .unwrap_or_else(|e| panic!("ContainerStats: {e}"))
            .stats
            .expect("stats")
    }
}

/// A container config as the kubelet makes one: image, log path (relative
/// to the pod's log directory), memory limit.
fn container(
    name: &str,
    attempt: u32,
    image: &str,
    args: &[&str],
    mem: i64,
) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: name.into(), attempt }),
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        args: args.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/{attempt}.log"),
        labels: HashMap::from([("container".into(), name.into())]),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: mem,
                cpu_shares: 512,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                oom_score_adj: 900,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The lines of a CRI log file: `TIMESTAMP STREAM P|F TEXT`, checked for
/// form; the texts of stdout and stderr, in order.
fn cri_log(path: &Path) -> Vec<(String, String)> {
    let body = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = Vec::new();
    for line in body.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(ts), Some(stream), Some(tag), rest) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("not a CRI log line: {line:?}");
        };
        // RFC 3339 with nanoseconds: 2006-01-02T15:04:05.999999999Z07:00.
        assert!(
            ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.as_bytes()[10] == b'T',
            "timestamp {ts:?} in {line:?}"
        );
        assert!(stream == "stdout" || stream == "stderr", "stream {stream:?} in {line:?}");
        assert!(tag == "F" || tag == "P", "tag {tag:?} in {line:?}");
        lines.push((stream.to_string(), rest.unwrap_or("").to_string()));
    }
    lines
}

/// The pod's IP, from PodSandboxStatus.
fn pod_ip(status: &cri::PodSandboxStatusResponse) -> String {
    status
        .status
        .as_ref()
        .and_then(|s| s.network.as_ref())
        .map(|n| n.ip.clone())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| panic!("no pod IP: {status:?}"))
}

/// The pid of a running container, from ContainerStatus' verbose info.
fn container_pid(info: &HashMap<String, String>) -> i64 {
    let v: Value = serde_json::from_str(info.get("info").expect("verbose info")).unwrap();
    v["pid"].as_i64().unwrap_or_else(|| panic!("no pid in {v}"))
}

/// One websocket request to the CRI's streaming server (it listens on
/// 127.0.0.1 in containerd's namespace: call this there) (what `kubectl
/// exec`/`attach`/`port-forward` reach through the kubelet): the handshake,
/// then every frame until the server closes or `wait` passes. Returns the
/// HTTP status line and the data frames' payloads (the first byte of each
/// is the channel: 1 stdout, 2 stderr, 3 the error channel).
fn stream(url: &str, protocol: &str, wait: Duration) -> (String, Vec<Vec<u8>>) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("stream URL {url}"));
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
    .unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut closed = false;
    while Instant::now() < deadline && !closed {
        match s.read(&mut chunk) {
            Ok(0) => closed = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => closed = true,
        }
        // A close frame (opcode 8) ends it as well.
        if let Some(end) = find(&buf, b"\r\n\r\n")
            && frames(&buf[end + 4..]).iter().any(|(op, _)| *op == 8)
        {
            closed = true;
        }
    }
    if !closed {
        return (format!("no end within {wait:?}: {}", text(&buf)), Vec::new());
    }
    let end = find(&buf, b"\r\n\r\n").unwrap_or(buf.len());
    let head = text(&buf[..end]);
    let status = head.lines().next().unwrap_or("").to_string();
    let body = if end < buf.len() { &buf[end + 4..] } else { &[][..] };
    let data = if status.contains(" 101 ") {
        frames(body).into_iter().filter(|(op, _)| *op == 1 || *op == 2).map(|(_, p)| p).collect()
    } else {
        vec![body.to_vec()]
    };
    (status, data)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The complete (unmasked, server-sent) websocket frames in `b`.
fn frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        let op = b[0] & 0x0f;
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize, 10),
            n if n < 126 => (n as usize, 2),
            _ => break,
        };
        if b.len() < at + len {
            break;
        }
        out.push((op, b[at..at + len].to_vec()));
        b = &b[at + len..];
    }
    out
}

#[test]
fn a_pod_lives_as_the_kubelet_drives_it() {
    let node = Node::start("life", "10.87.1");
    let cri = node.cri();

    // What the kubelet asks first.
    let v = cri
        .call("Version", cri.rs().version(cri::VersionRequest { version: "v1".into() }))
        .unwrap();
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    assert_eq!(v.runtime_api_version, "v1", "{v:?}");
    let st = cri.call("Status", cri.rs().status(cri::StatusRequest { verbose: false })).unwrap();
    let conditions = st.status.expect("status").conditions;
    for want in ["RuntimeReady", "NetworkReady"] {
        let c = conditions
            .iter()
            .find(|c| c.r#type == want)
            .unwrap_or_else(|| panic!("{conditions:?}"));
        assert!(c.status, "{want}: {c:?}");
    }

    // The pod sandbox: nabla-runc's waiting process, in CNI's namespace.
    let pod_config = node.pod_config("web");
    let started = Instant::now();
    let pod = cri.run_pod(&pod_config);
    let status = cri.pod_status(&pod);
    let s = status.status.as_ref().unwrap();
    assert_eq!(s.state, cri::PodSandboxState::SandboxReady as i32, "{status:?}");
    assert_eq!(s.metadata.as_ref().unwrap().name, "web");
    let ip = pod_ip(&status);
    assert!(ip.starts_with(&node.net), "pod IP {ip} outside {}.0/24", node.net);
    let pods = cri.list_pods();
    assert!(
        pods.iter().any(|p| p.id == pod && p.state == cri::PodSandboxState::SandboxReady as i32),
        "{pods:?}"
    );

    // httpd in the pod, serving the files it was packed with at the pod IP.
    let httpd = cri
        .create(&pod, &pod_config, container("httpd", 0, HTTPD, &[], 64 << 20))
        .unwrap_or_else(|e| panic!("CreateContainer httpd: {e}\n{}", node.daemon_log()));
    cri.start(&httpd)
        .unwrap_or_else(|e| panic!("StartContainer httpd: {e}\n{}", node.daemon_log()));
    assert_eq!(node.curl(&format!("http://{ip}/"), Duration::from_secs(20)), "<h1>a pod</h1>\n");
    eprintln!("RunPodSandbox to the first HTTP 200 at the pod IP: {:?}", started.elapsed());
    let (s, info) = cri.status(&httpd);
    assert_eq!(s.state, cri::ContainerState::ContainerRunning as i32, "{s:?}");
    let pid = container_pid(&info);
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/exe")).ok(),
        Some(workspace_bin("tender")),
        "the container's process is the tender"
    );
    let listed = cri.list(&pod);
    assert!(
        listed
            .iter()
            .any(|c| c.id == httpd && c.state == cri::ContainerState::ContainerRunning as i32),
        "{listed:?}"
    );

    // No exec in a nabla guest: ExecSync and Exec are refused with an
    // error, promptly. (Attach is containerd's own: below.)
    let t = Instant::now();
    let r = cri.call(
        "ExecSync",
        cri.rs().exec_sync(cri::ExecSyncRequest {
            container_id: httpd.clone(),
            cmd: vec!["/bin/true".into()],
            timeout: 10,
        }),
    );
    let e = r.expect_err("ExecSync succeeded");
    assert!(e.message().contains("exec is not supported"), "ExecSync: {e}");
    assert!(t.elapsed() < Duration::from_secs(30), "ExecSync took {:?}", t.elapsed());
    let exec = cri.call(
        "Exec",
        cri.rs().exec(cri::ExecRequest {
            container_id: httpd.clone(),
            cmd: vec!["/bin/true".into()],
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    if let Ok(r) = exec {
        // containerd hands out a URL of its streaming server; the refusal
        // comes when the client connects: on the error channel, or as a
        // failed upgrade.
        let (status, data) =
            node.ns.enter(move || stream(&r.url, "v4.channel.k8s.io", Duration::from_secs(10)));
        let errors: Vec<String> =
            data.iter().filter(|d| d.first() == Some(&3)).map(|d| text(&d[1..])).collect();
        assert!(
            !status.contains(" 101 ")
                || errors
                    .iter()
                    .any(|e| e.contains("Failure") && e.contains("exec is not supported")),
            "exec was not refused: {status} {errors:?}\n{}",
            node.daemon_log()
        );
    }

    // A second networked container in the pod (a sidecar): refused, naming
    // the reason (the pod's interface belongs to the first guest).
    let side = cri
        .create(&pod, &pod_config, container("sidecar", 0, HTTPD, &[], 64 << 20))
        .unwrap_or_else(|e| panic!("CreateContainer sidecar: {e}"));
    let err = cri.start(&side).expect_err("a second networked guest in the pod started");
    assert!(err.message().contains("already wired to another nabla guest"), "{err}");
    cri.remove(&side).unwrap_or_else(|e| panic!("RemoveContainer sidecar: {e}"));
    // httpd still serves.
    assert_eq!(node.curl(&format!("http://{ip}/"), Duration::from_secs(5)), "<h1>a pod</h1>\n");

    // A container that ends by itself: its exit code, reason and log.
    let hello = cri.create(&pod, &pod_config, container("hello", 0, HELLO, &[], 16 << 20)).unwrap();
    cri.start(&hello).unwrap();
    let s = cri.wait_exited(&hello, Duration::from_secs(20));
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    let log = cri_log(&Path::new(&pod_config.log_directory).join("hello/0.log"));
    assert_eq!(log, [("stdout".to_string(), "Hello, world!".to_string())]);
    let three = cri
        .create(&pod, &pod_config, container("three", 0, BASICS_IMAGE, &["exit", "3"], 16 << 20))
        .unwrap();
    cri.start(&three).unwrap();
    let s = cri.wait_exited(&three, Duration::from_secs(20));
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"), "{s:?}");
    // Stopping an exited container is fine (the kubelet does it), and so is
    // removing it.
    cri.stop(&three, 10).unwrap_or_else(|e| panic!("StopContainer of an exited container: {e}"));
    for id in [&hello, &three] {
        cri.remove(id)
            .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}\n{}", node.daemon_log()));
    }

    // Attach is containerd's: it streams the container's output (the
    // runtime is not involved) until the guest exits, then ends.
    let url = cri
        .call(
            "Attach",
            cri.rs().attach(cri::AttachRequest {
                container_id: httpd.clone(),
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        )
        .unwrap_or_else(|e| panic!("Attach: {e}"))
        .url;
    let netns = fs::File::open(format!("/run/netns/{}", node.ns.name())).unwrap();
    let attached = std::thread::spawn(move || {
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let ret =
            unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&netns), libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
        stream(&url, "v4.channel.k8s.io", Duration::from_secs(40))
    });
    std::thread::sleep(Duration::from_millis(500));

    // Graceful stop: httpd gets SIGTERM, finishes and exits 0 well within
    // the grace period.
    let t = Instant::now();
    cri.stop(&httpd, 30)
        .unwrap_or_else(|e| panic!("StopContainer httpd: {e}\n{}", node.daemon_log()));
    let s = cri.wait_exited(&httpd, Duration::from_secs(5));
    assert!(t.elapsed() < Duration::from_secs(20), "StopContainer took {:?}", t.elapsed());
    assert!(!alive(pid), "tender {pid} still running");
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "graceful stop: {s:?}");
    let (status, _) = attached.join().expect("attach thread");
    assert!(status.contains(" 101 "), "attach did not end with the guest: {status}");
    let log = cri_log(&Path::new(&pod_config.log_directory).join("httpd/0.log"));
    assert!(log.iter().any(|(_, l)| l.contains("httpd: serving")), "{log:?}");

    // A restart in the same pod, as the kubelet does it: the next attempt
    // is created and started while the exited one is still there (kept for
    // `kubectl logs --previous`): the exited guest let go of the pod's
    // interface, and the new one serves at the same IP.
    let again = cri.create(&pod, &pod_config, container("httpd", 1, HTTPD, &[], 64 << 20)).unwrap();
    cri.start(&again)
        .unwrap_or_else(|e| panic!("StartContainer httpd attempt 1: {e}\n{}", node.daemon_log()));
    assert_eq!(node.curl(&format!("http://{ip}/"), Duration::from_secs(20)), "<h1>a pod</h1>\n");
    cri.remove(&httpd)
        .unwrap_or_else(|e| panic!("RemoveContainer httpd: {e}\n{}", node.daemon_log()));
    let listed = cri.list(&pod);
    assert_eq!(listed.len(), 1, "{listed:?}");

    // PortForward: containerd dials localhost:PORT inside the pod's
    // namespace, where the guest is not (docs/kubernetes.md says why and
    // what replaces it): the dial's error comes back on the port's error
    // channel, promptly.
    let url = cri
        .call(
            "PortForward",
            cri.rs().port_forward(cri::PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![80],
            }),
        )
        .unwrap_or_else(|e| panic!("PortForward: {e}"))
        .url;
    let (status, data) = node.ns.enter(move || {
        stream(&format!("{url}?port=80"), "v4.channel.k8s.io", Duration::from_secs(10))
    });
    let errors: Vec<String> =
        data.iter().filter(|d| d.first() == Some(&1)).map(|d| text(&d[1..])).collect();
    assert!(
        errors.iter().any(|e| e.contains("connection refused")),
        "port-forward: {status} {errors:?}\n{}",
        node.daemon_log()
    );

    // The pod goes, with the running container in it: StopPodSandbox stops
    // it, within seconds.
    let t = Instant::now();
    cri.stop_pod(&pod);
    assert!(t.elapsed() < Duration::from_secs(15), "StopPodSandbox took {:?}", t.elapsed());
    let s = cri.wait_exited(&again, Duration::from_secs(5));
    assert_eq!(s.state, cri::ContainerState::ContainerExited as i32);
    let status = cri.pod_status(&pod);
    assert_eq!(status.status.unwrap().state, cri::PodSandboxState::SandboxNotready as i32);
    cri.remove_pod(&pod);
    assert!(cri.list_pods().is_empty());
    node.assert_nothing_left();
}

#[test]
fn stats_and_resources_come_from_the_containers_cgroup() {
    let node = Node::start("stats", "10.87.2");
    let cri = node.cri();
    let pod_config = node.pod_config("load");
    let pod = cri.run_pod(&pod_config);
    let ip = pod_ip(&cri.pod_status(&pod));
    let limit: i64 = 48 << 20;
    let httpd = cri.create(&pod, &pod_config, container("httpd", 0, HTTPD, &[], limit)).unwrap();
    cri.start(&httpd).unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", node.daemon_log()));
    node.curl(&format!("http://{ip}/"), Duration::from_secs(20));
    let (_, info) = cri.status(&httpd);
    let pid = container_pid(&info);

    // The tender runs in the cgroup the CRI asked for.
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("{}/pod-load/{httpd}", node.cgroup_parent);
    assert!(cg.lines().any(|l| l.ends_with(&want)), "tender {pid} not in {want}:\n{cg}");

    let working_set = |s: &cri::ContainerStats| {
        s.memory.as_ref().and_then(|m| m.working_set_bytes.as_ref()).map(|v| v.value).unwrap_or(0)
    };
    let cpu = |s: &cri::ContainerStats| {
        s.cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref())
            .map(|v| v.value)
            .unwrap_or(0)
    };
    let before = cri.stats(&httpd);
    let ws = working_set(&before);
    assert!(ws > 0 && ws <= limit as u64, "working set {ws} not in (0, {limit}]: {before:?}");
    // Load: requests to the guest, so that its CPU time rises.
    let load_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < load_until {
        node.ns.run("curl", &["-s", "-o", "/dev/null", "-m", "2", &format!("http://{ip}/")]);
    }
    let after = cri.stats(&httpd);
    assert!(
        cpu(&after) > cpu(&before),
        "CPU usage did not rise: {} then {}",
        cpu(&before),
        cpu(&after)
    );
    let listed = cri
        .call(
            "ListContainerStats",
            cri.rs().list_container_stats(cri::ListContainerStatsRequest { filter: None }),
        )
        .unwrap();
    let mine = listed
        .stats
        .iter()
        .find(|s| s.attributes.as_ref().is_some_and(|a| a.id == httpd))
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert!(working_set(mine) > 0 && working_set(mine) <= limit as u64, "{mine:?}");
    let pod_stats = cri
        .call(
            "PodSandboxStats",
            cri.rs().pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: pod.clone() }),
        )
        .unwrap_or_else(|e| panic!("PodSandboxStats: {e}"))
        .stats
        .expect("pod stats");
    let linux = pod_stats.linux.expect("linux pod stats");
    let pod_ws = linux.memory.and_then(|m| m.working_set_bytes).map(|v| v.value).unwrap_or(0);
    assert!(pod_ws > 0, "pod working set 0");
    assert!(linux.cpu.and_then(|c| c.usage_core_nano_seconds).map(|v| v.value).unwrap_or(0) > 0);

    // UpdateContainerResources reaches the cgroup.
    let req = cri::UpdateContainerResourcesRequest {
        container_id: httpd.clone(),
        linux: Some(cri::LinuxContainerResources {
            cpu_shares: 256,
            cpu_period: 100_000,
            cpu_quota: 20_000,
            memory_limit_in_bytes: limit,
            ..Default::default()
        }),
        ..Default::default()
    };
    cri.call("UpdateContainerResources", cri.rs().update_container_resources(req))
        .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}\n{}", node.daemon_log()));
    let quota = cgroup_file(&want, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(quota.starts_with("20000"), "cpu quota after update: {quota}");

    // Pause and resume: not in the CRI; through containerd's task API
    // (`ctr task pause`), which calls the runtime's pause and resume.
    node.ctr_ok(&["-n", "k8s.io", "task", "pause", &httpd]);
    let frozen = cgroup_file(&want, "freezer", "freezer.state", "cgroup.freeze");
    assert!(frozen == "FROZEN" || frozen == "1", "after pause: {frozen}");
    let out = node.ns.run("curl", &["-s", "-m", "1", &format!("http://{ip}/")]);
    assert!(!out.status.success(), "a paused guest answered: {out:?}");
    node.ctr_ok(&["-n", "k8s.io", "task", "resume", &httpd]);
    assert_eq!(node.curl(&format!("http://{ip}/"), Duration::from_secs(10)), "<h1>a pod</h1>\n");

    cri.stop(&httpd, 10).unwrap();
    cri.remove(&httpd).unwrap();
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    node.assert_nothing_left();
}

/// A cgroup file of the container, v1 (`controller/PATH/v1`) or v2 (`PATH/v2`).
fn cgroup_file(path: &str, controller: &str, v1: &str, v2: &str) -> String {
    let base = Path::new("/sys/fs/cgroup");
    let rel = path.trim_start_matches('/');
    let p = if base.join("cgroup.controllers").exists() {
        base.join(rel).join(v2)
    } else {
        base.join(controller).join(rel).join(v1)
    };
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

/// A native static image, `NATIVE`: Debian's busybox-static as
/// `/bin/busybox` (the entry point; `sleep` by default) and `site` under `/www`, made with umoci
/// and written as an OCI archive with skopeo; its path.
fn busybox_image(dir: &Path, site: &Path) -> PathBuf {
    let layout = dir.join("busybox-layout");
    let bundle = dir.join("busybox-bundle");
    let image = format!("{}:1", layout.display());
    let sh = |prog: &str, args: &[&str]| {
        let out = Command::new(prog).args(args).output().unwrap_or_else(|e| panic!("{prog}: {e}"));
        assert!(out.status.success(), "{prog} {args:?}: {}", text(&out.stderr));
    };
    sh("umoci", &["init", "--layout", layout.to_str().unwrap()]);
    sh("umoci", &["new", "--image", &image]);
    sh("umoci", &["unpack", "--image", &image, bundle.to_str().unwrap()]);
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("/bin/busybox (busybox-static)");
    fs::create_dir_all(rootfs.join("www")).unwrap();
    fs::copy(site.join("index.html"), rootfs.join("www/index.html")).unwrap();
    sh("umoci", &["repack", "--image", &image, bundle.to_str().unwrap()]);
    // As a sandbox (pause) image, it sleeps; a container gives its own args.
    sh(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.entrypoint",
            "/bin/busybox",
            "--config.cmd",
            "sleep",
            "--config.cmd",
            "2147483647",
        ],
    );
    let tar = dir.join("busybox.tar");
    sh(
        "skopeo",
        &["copy", &format!("oci:{image}"), &format!("oci-archive:{}:{NATIVE}", tar.display())],
    );
    tar
}

/// The proportional set size of a process, in bytes (0 if it is gone).
fn pss(pid: i64) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn parent(pid: i64) -> i64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
    after.split(' ').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// scripts/bench-cri.sh: for each handler, `NABLA_BENCH_PODS` pods (5 by
/// default), one at a time: the time from RunPodSandbox to the first HTTP
/// 200 at the pod IP, then, after a second idle, the pod's memory as the
/// kubelet sees it (PodSandboxStats' working set: the pod's cgroup) and
/// as the host pays for it (the PSS of the pod's shim, sandbox process and
/// server). nabla: httpd as a nabla guest; runc: busybox httpd, a static
/// native server, with busybox `sleep` as its pause. Medians, and their
/// ratios nabla/runc.
#[test]
#[ignore = "a benchmark: scripts/bench-cri.sh runs it"]
fn bench_pod_start_and_memory_against_runc() {
    let node = Node::start_with("bench", "10.87.9", true);
    let cri = node.cri();
    let pods: usize =
        std::env::var("NABLA_BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let mut results = Vec::new();
    for handler in ["nabla", "runc"] {
        let (mut start, mut ws, mut total) = (Vec::new(), Vec::new(), Vec::new());
        let (mut shims, mut sandboxes, mut servers) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..pods {
            let pod_config = node.pod_config(&format!("{handler}{i}"));
            let t = Instant::now();
            let req = cri::RunPodSandboxRequest {
                config: Some(pod_config.clone()),
                runtime_handler: handler.into(),
            };
            let pod = cri
                .call("RunPodSandbox", cri.rs().run_pod_sandbox(req))
                .unwrap_or_else(|e| panic!("RunPodSandbox {handler}: {e}\n{}", node.daemon_log()))
                .pod_sandbox_id;
            let status = cri.pod_status(&pod);
            let ip = pod_ip(&status);
            let config = if handler == "nabla" {
                container("httpd", 0, HTTPD, &[], 64 << 20)
            } else {
                container("httpd", 0, NATIVE, &["httpd", "-f", "-p", "80", "-h", "/www"], 64 << 20)
            };
            let id = cri.create(&pod, &pod_config, config).unwrap();
            cri.start(&id).unwrap_or_else(|e| panic!("{handler}: {e}\n{}", node.daemon_log()));
            let url = format!("http://{ip}/");
            // The first 200, polled every 10 ms.
            loop {
                let out = node.ns.run("curl", &["-s", "-f", "-o", "/dev/null", "-m", "1", &url]);
                if out.status.success() {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(30), "{handler}: no 200 at {url}");
                std::thread::sleep(Duration::from_millis(10));
            }
            start.push(t.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_secs(1));
            let stats = cri
                .call(
                    "PodSandboxStats",
                    cri.rs().pod_sandbox_stats(cri::PodSandboxStatsRequest {
                        pod_sandbox_id: pod.clone(),
                    }),
                )
                .unwrap_or_else(|e| panic!("PodSandboxStats: {e}"));
            let w = stats
                .stats
                .and_then(|s| s.linux)
                .and_then(|l| l.memory)
                .and_then(|m| m.working_set_bytes)
                .map(|v| v.value)
                .unwrap_or(0);
            ws.push(w as f64 / 1024.0);
            let sandbox_pid = status
                .info
                .get("info")
                .and_then(|i| serde_json::from_str::<Value>(i).ok())
                .and_then(|v| v["pid"].as_i64())
                .expect("sandbox pid");
            let (_, info) = cri.status(&id);
            let server = container_pid(&info);
            let shim = parent(sandbox_pid);
            let kib = |pid| pss(pid) as f64 / 1024.0;
            let (a, b, c) = (kib(shim), kib(sandbox_pid), kib(server));
            total.push(a + b + c);
            shims.push(a);
            sandboxes.push(b);
            servers.push(c);
            cri.stop_pod(&pod);
            cri.remove_pod(&pod);
        }
        results.push((
            median(start),
            median(ws),
            median(total),
            median(shims),
            median(sandboxes),
            median(servers),
        ));
    }
    let (n, r) = (results[0], results[1]);
    println!("pods per handler: {pods} (medians; one at a time)");
    println!("{:<44} {:>12} {:>12} {:>8}", "", "nabla-runc", "runc", "ratio");
    for (what, a, b) in [
        ("RunPodSandbox to first HTTP 200 (ms)", n.0, r.0),
        ("idle pod, cgroup working set (KiB)", n.1, r.1),
        ("idle pod, PSS shim+sandbox+server (KiB)", n.2, r.2),
        ("  of which the shim (KiB)", n.3, r.3),
        ("  of which the sandbox process (KiB)", n.4, r.4),
        ("  of which the server (KiB)", n.5, r.5),
    ] {
        println!("{what:<44} {a:>12.1} {b:>12.1} {:>8.2}", if b > 0.0 { a / b } else { 0.0 });
    }
    node.assert_nothing_left();
}
