//! nabla-runc as runc 1.1 where the shims talk to it: every subcommand in
//! every container state (the table in docs/oci.md, one cell per case),
//! and the container's cgroup: made at the config's `cgroupsPath` with its
//! `linux.resources`, the tender (and so the guest) in it before the guest
//! starts, `oom_score_adj` set, stats that rise while the guest works, a
//! guest that fills its memory under a tight limit not OOM-killed,
//! `update`, `pause`/`resume` through the freezer keeping a TCP
//! connection, cgroup v2 (in a mount namespace of its own with a cgroup2
//! mount: this host is hybrid), and nothing left after `delete`.
//!
//! Cgroups are made under the test's own (relative `cgroupsPath`s, which
//! runc reads from its own cgroup), except the systemd form, which is
//! absolute: that one is tested on the unified hierarchy, whose root the
//! test is in. Runs as root (CI does).

mod support;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::netns::Netns;
use support::runtime::{Runtime, bundle};
use support::{text, workspace_bin};

const BASICS: &str = env!("CARGO_BIN_EXE_guest-basics");
const MIB: u64 = 1 << 20;

/// The test's own cgroup in a v1 controller's hierarchy.
fn own_v1(controller: &str) -> PathBuf {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            c.split(',').any(|x| x == controller).then(|| p.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup in {text}"));
    Path::new("/sys/fs/cgroup").join(controller).join(path.trim_start_matches('/'))
}

/// `pid`'s cgroup in `controller`'s hierarchy ("" for the unified one).
fn cgroup_of(pid: i32, controller: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            let hit = if controller.is_empty() {
                c.is_empty()
            } else {
                c.split(',').any(|x| x == controller)
            };
            hit.then(|| p.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} line in {text}"))
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

/// A parent cgroup directory (per controller) the test removes at the end.
struct Parents(Vec<PathBuf>);

impl Drop for Parents {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_dir(p);
        }
    }
}

const V1: &[&str] = &["memory", "cpu", "cpuacct", "cpuset", "pids", "freezer"];

/// A relative cgroupsPath unique to this test, and its parent directories
/// in each v1 controller (removed on drop).
fn v1_path(tag: &str) -> (String, Parents) {
    let parent = format!("nabla-test-{tag}-{}", std::process::id());
    let dirs = V1.iter().map(|c| own_v1(c).join(&parent)).collect();
    (format!("{parent}/c"), Parents(dirs))
}

// ---------------------------------------------------------------------------
// The state table.

/// What a cell expects.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Exit 0, then the container's status is this ("gone": no container).
    Ok(&'static str),
    /// Exit 1 with this in the message, status unchanged.
    Err(&'static str),
}

const STATES: &[&str] = &["created", "running", "paused", "stopped", "gone"];

/// runc 1.1's behaviour, state by state (docs/oci.md has the same table).
/// `{id}` in a message is the container's id.
fn table() -> Vec<(&'static str, Vec<&'static str>, [Want; 5])> {
    use Want::*;
    const GONE: Want = Err("does not exist");
    vec![
        (
            "start",
            vec!["start"],
            [
                Ok("running"),
                Err("cannot start an already running container"),
                Err("cannot start a container in the paused state"),
                Err("cannot start a container that has stopped"),
                GONE,
            ],
        ),
        ("state", vec!["state"], [Ok("created"), Ok("running"), Ok("paused"), Ok("stopped"), GONE]),
        (
            "kill",
            vec!["kill"],
            [
                Ok("stopped"),
                Ok("stopped"),
                // Queued: a frozen process acts on it once thawed.
                Ok("paused"),
                Err("container not running"),
                GONE,
            ],
        ),
        (
            "kill KILL",
            vec!["kill", "KILL"],
            [
                Ok("stopped"),
                Ok("stopped"),
                // runc thaws a paused container for SIGKILL.
                Ok("stopped"),
                Err("container not running"),
                GONE,
            ],
        ),
        (
            "kill --all",
            vec!["kill", "--all", "KILL"],
            [Ok("stopped"), Ok("stopped"), Ok("stopped"), Ok("stopped"), GONE],
        ),
        (
            "delete",
            vec!["delete"],
            [
                Ok("gone"),
                Err("cannot delete container {id} that is not stopped: running"),
                Err("cannot delete container {id} that is not stopped: paused"),
                Ok("gone"),
                GONE,
            ],
        ),
        (
            "delete --force",
            vec!["delete", "--force"],
            [Ok("gone"), Ok("gone"), Ok("gone"), Ok("gone"), Ok("gone")],
        ),
        (
            "ps",
            vec!["ps", "--format", "json"],
            [Ok("created"), Ok("running"), Ok("paused"), Ok("stopped"), GONE],
        ),
        (
            "pause",
            vec!["pause"],
            [
                Ok("paused"),
                Ok("paused"),
                Err("container not running"),
                Err("container not running"),
                GONE,
            ],
        ),
        (
            "resume",
            vec!["resume"],
            [
                Err("container not paused"),
                Err("container not paused"),
                Ok("running"),
                Err("container not paused"),
                GONE,
            ],
        ),
        (
            "update",
            vec!["update", "--pids-limit", "9"],
            [Ok("created"), Ok("running"), Ok("paused"), Err("container not running"), GONE],
        ),
        (
            "events --stats",
            vec!["events", "--stats"],
            [
                Ok("created"),
                Ok("running"),
                Ok("paused"),
                Err("container with id {id} is not running"),
                GONE,
            ],
        ),
    ]
}

/// Puts a new container `id` in `state`.
fn make_in_state(rt: &Runtime, b: &str, id: &str, state: &str) {
    if state == "gone" {
        return;
    }
    rt.ok(&["create", "--bundle", b, id]);
    match state {
        "created" => {}
        "running" => {
            rt.ok(&["start", id]);
        }
        "paused" => {
            rt.ok(&["start", id]);
            rt.ok(&["pause", id]);
        }
        "stopped" => {
            rt.ok(&["start", id]);
            rt.ok(&["kill", id, "KILL"]);
            rt.wait_status(id, "stopped");
        }
        s => panic!("no state {s}"),
    }
    assert_eq!(rt.status(id), state);
}

#[test]
fn every_subcommand_in_every_state_as_runc() {
    let rt = Runtime::new();
    let b = bundle(rt.dir(), "b", Path::new(BASICS), &["sleep", "60"], |_| {});
    let b = b.to_str().unwrap();
    let mut n = 0;
    for (name, args, wants) in table() {
        for (state, want) in STATES.iter().zip(wants) {
            n += 1;
            let id = format!("t{n}");
            make_in_state(&rt, b, &id, state);
            let pid = (*state != "gone" && *state != "stopped").then(|| rt.pid(&id));
            let mut argv: Vec<&str> = args.clone();
            // The id goes after the flags, before a signal.
            let at = if args[0] == "kill" { args.len() - 1 } else { args.len() };
            let at = if args == ["kill"] { 1 } else { at };
            argv.insert(at, &id);
            let cell = format!("{name} in {state}: nabla-runc {argv:?}");
            match want {
                Want::Ok(then) => {
                    let out = rt.cmd(&argv);
                    assert!(out.status.success(), "{cell}: {}", text(&out.stderr));
                    let stdout = text(&out.stdout);
                    match name {
                        "state" => {
                            let s: Value = serde_json::from_str(&stdout).unwrap();
                            assert_eq!(s["status"], *state, "{cell}: {s}");
                            assert_eq!(s["id"], id.as_str(), "{cell}");
                            assert_eq!(s["pid"].as_i64().map(|p| p as i32), pid, "{cell}: {s}");
                        }
                        "ps" => {
                            let pids: Vec<i32> = serde_json::from_str(&stdout).unwrap();
                            assert_eq!(pids, pid.into_iter().collect::<Vec<_>>(), "{cell}");
                        }
                        "events --stats" => {
                            let e: Value = serde_json::from_str(&stdout).unwrap();
                            assert_eq!(e["type"], "stats", "{cell}: {e}");
                            assert_eq!(e["id"], id.as_str(), "{cell}: {e}");
                            if *state == "running" {
                                let mem = e["data"]["memory"]["usage"]["usage"].as_u64().unwrap();
                                assert!(mem > 0, "{cell}: {e}");
                            }
                        }
                        "update" => {
                            let dir = own_v1("pids").join(&id);
                            assert_eq!(read(&dir.join("pids.max")), "9", "{cell}");
                        }
                        _ => {}
                    }
                    if then == "gone" {
                        assert!(!rt.root().join(&id).exists(), "{cell}: state left");
                        for c in V1 {
                            assert!(!own_v1(c).join(&id).exists(), "{cell}: {c} cgroup left");
                        }
                        if let Some(p) = pid {
                            assert!(
                                !Path::new(&format!("/proc/{p}")).exists()
                                    || fs::read_to_string(format!("/proc/{p}/stat"))
                                        .unwrap()
                                        .contains(") Z"),
                                "{cell}: process left"
                            );
                        }
                    } else if then == "stopped" {
                        rt.wait_status(&id, "stopped");
                    } else {
                        assert_eq!(rt.status(&id), then, "{cell}");
                    }
                }
                Want::Err(msg) => {
                    let msg = msg.replace("{id}", &id);
                    rt.refused(&argv, &msg);
                    if *state != "gone" {
                        assert_eq!(rt.status(&id), *state, "{cell}: the state changed");
                    }
                }
            }
            // The cell is done: nothing of it stays.
            if rt.root().join(&id).exists() {
                rt.ok(&["delete", "--force", &id]);
            }
            assert!(!own_v1("memory").join(&id).exists(), "{cell}: cgroup left");
        }
    }
    // features is the same in every state: it names no container.
    let f: Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(f["linux"]["cgroup"]["v1"], true, "{f}");
    assert_eq!(f["linux"]["cgroup"]["v2"], true, "{f}");
}

// ---------------------------------------------------------------------------
// Cgroups on v1.

#[test]
fn the_guest_runs_in_its_cgroup_with_its_limits_and_delete_removes_it() {
    // Before the runtime: dropped after it, once its containers are gone.
    let (path, _parents) = v1_path("limits");
    let rt = Runtime::new();
    let b = bundle(rt.dir(), "b", Path::new(BASICS), &["sleep", "30"], |c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({
            "memory": {"limit": 40 * MIB, "reservation": 8 * MIB},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 16},
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
        });
        c["process"]["oomScoreAdj"] = json!(300);
    });
    rt.ok(&["create", "--bundle", b.to_str().unwrap(), "c1"]);
    let pid = rt.pid("c1");
    // In the cgroup before start: the tender it becomes starts there.
    for c in V1 {
        let own = cgroup_of(std::process::id() as i32, c);
        assert_eq!(cgroup_of(pid, c), format!("{}/{path}", own.trim_end_matches('/')), "{c}");
    }
    let dir = |c: &str| own_v1(c).join(&path);
    assert_eq!(read(&dir("memory").join("memory.limit_in_bytes")), (40 * MIB).to_string());
    assert_eq!(read(&dir("memory").join("memory.soft_limit_in_bytes")), (8 * MIB).to_string());
    assert_eq!(read(&dir("cpu").join("cpu.shares")), "512");
    assert_eq!(read(&dir("cpu").join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&dir("cpu").join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&dir("cpuset").join("cpuset.cpus")), "0");
    assert_eq!(read(&dir("pids").join("pids.max")), "16");
    assert_eq!(read(Path::new(&format!("/proc/{pid}/oom_score_adj"))), "300");

    rt.ok(&["start", "c1"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_link(format!("/proc/{pid}/exe")).ok() != Some(workspace_bin("tender")) {
        assert!(Instant::now() < deadline, "never became the tender");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(read(&dir("memory").join("cgroup.procs")), pid.to_string());
    assert_eq!(read(Path::new(&format!("/proc/{pid}/oom_score_adj"))), "300");
    let usage: u64 = read(&dir("memory").join("memory.usage_in_bytes")).parse().unwrap();
    assert!(usage > 0 && usage <= 40 * MIB, "{usage}");

    rt.ok(&["kill", "c1", "KILL"]);
    rt.wait_status("c1", "stopped");
    rt.ok(&["delete", "c1"]);
    for c in V1 {
        assert!(!dir(c).exists(), "{c} cgroup left: {}", dir(c).display());
    }
}

/// A pod sandbox (no guest, the waiting process holds the pod's place)
/// lives in the cgroup the CRI gives it, with the CRI's oom_score_adj; its
/// memory limit is only the cgroup's (no arena to size, so a small one is
/// fine).
#[test]
fn a_pod_sandbox_holds_its_cgroup() {
    // Before the runtime: dropped after it, once its containers are gone.
    let (path, _parents) = v1_path("sandbox");
    let rt = Runtime::new();
    let b = bundle(rt.dir(), "b", Path::new(BASICS), &["unused"], |c| {
        c["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"});
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"memory": {"limit": 6 * MIB}, "cpu": {"shares": 2}});
        c["process"]["oomScoreAdj"] = json!(500);
    });
    rt.ok(&["create", "--bundle", b.to_str().unwrap(), "pod"]);
    rt.ok(&["start", "pod"]);
    let pid = rt.pid("pod");
    let dir = |c: &str| own_v1(c).join(&path);
    for c in V1 {
        assert_eq!(read(&dir(c).join("cgroup.procs")), pid.to_string(), "{c}");
    }
    assert_eq!(read(&dir("memory").join("memory.limit_in_bytes")), (6 * MIB).to_string());
    assert_eq!(read(&dir("cpu").join("cpu.shares")), "2");
    assert_eq!(read(Path::new(&format!("/proc/{pid}/oom_score_adj"))), "500");
    rt.ok(&["kill", "pod", "TERM"]);
    rt.wait_status("pod", "stopped");
    rt.ok(&["delete", "pod"]);
    for c in V1 {
        assert!(!dir(c).exists(), "{c} cgroup left");
    }
    // The CRI's -998 for a sandbox: below the caller's own score it needs
    // CAP_SYS_RESOURCE; without it the create fails, as runc's does,
    // saying what would help.
    let b = bundle(rt.dir(), "low", Path::new(BASICS), &["unused"], |c| {
        c["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"});
        c["linux"]["cgroupsPath"] = json!(path);
        c["process"]["oomScoreAdj"] = json!(-998);
    });
    if has_cap_sys_resource() {
        rt.ok(&["create", "--bundle", b.to_str().unwrap(), "low"]);
        assert_eq!(read(Path::new(&format!("/proc/{}/oom_score_adj", rt.pid("low")))), "-998");
        rt.ok(&["delete", "--force", "low"]);
    } else {
        rt.refused(&["create", "--bundle", b.to_str().unwrap(), "low"], "restrict_oom_score_adj");
        assert!(!rt.root().join("low").exists());
    }
    for c in V1 {
        assert!(!dir(c).exists(), "{c} cgroup left");
    }
}

fn has_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    // CAP_SYS_RESOURCE is capability 24.
    u64::from_str_radix(eff, 16).unwrap() & (1 << 24) != 0
}

#[test]
fn what_cannot_be_honoured_is_refused_and_leaves_nothing() {
    // Before the runtime: dropped after it, once its containers are gone.
    let (path, _parents) = v1_path("refuse");
    let rt = Runtime::new();
    for (tag, res, needle) in [
        ("net", json!({"network": {"classID": 7}}), "linux.resources.network"),
        ("huge", json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}), "hugepageLimits"),
        ("unified", json!({"unified": {"memory.high": "1"}}), "needs cgroup v2"),
        ("tiny", json!({"memory": {"limit": 7 * MIB}}), "leaves 2 MiB for the guest"),
    ] {
        let b = bundle(rt.dir(), tag, Path::new(BASICS), &["exit", "0"], |c| {
            c["linux"]["cgroupsPath"] = json!(path);
            c["linux"]["resources"] = res;
        });
        rt.refused(&["create", "--bundle", b.to_str().unwrap(), tag], needle);
        assert!(!rt.root().join(tag).exists());
        for c in V1 {
            assert!(!own_v1(c).join(&path).exists(), "{tag}: {c} cgroup left");
        }
    }
    // The root of the hierarchy, or the runtime's own cgroup: not the
    // container's to take (and remove at delete).
    for (tag, p) in [("root", "/"), ("own", "a/../.."), ("dots", "/../..")] {
        let b = bundle(rt.dir(), tag, Path::new(BASICS), &["exit", "0"], |c| {
            c["linux"]["cgroupsPath"] = json!(p);
        });
        rt.refused(&["create", "--bundle", b.to_str().unwrap(), tag], "names the hierarchy's root");
        assert!(!rt.root().join(tag).exists());
    }
    let b = bundle(rt.dir(), "oom", Path::new(BASICS), &["exit", "0"], |c| {
        c["process"]["oomScoreAdj"] = json!(1001);
    });
    rt.refused(&["create", "--bundle", b.to_str().unwrap(), "oom"], "oomScoreAdj 1001");
    let b = bundle(rt.dir(), "sd", Path::new(BASICS), &["exit", "0"], |c| {
        c["linux"]["cgroupsPath"] = json!("/not/systemd/form");
    });
    let mut sd = Runtime::new();
    sd.systemd = true;
    sd.refused(&["create", "--bundle", b.to_str().unwrap(), "sd"], "slice:prefix:name");
}

/// A guest that takes its whole heap under a tight memory limit: the arena
/// is the limit less the tender's share, so the guest runs out of heap
/// (and says so) before the cgroup runs out of memory: exit 0, not 137.
#[test]
fn a_guest_that_fills_its_memory_under_a_tight_limit_is_not_oom_killed() {
    // Before the runtime: dropped after it, once its containers are gone.
    let (path, _parents) = v1_path("fill");
    let rt = Runtime::new();
    for limit_mib in [16u64, 24, 64] {
        let id = format!("fill{limit_mib}");
        let b = bundle(rt.dir(), &id, Path::new(BASICS), &["fill"], |c| {
            c["linux"]["cgroupsPath"] = json!(format!("{path}{limit_mib}"));
            c["linux"]["resources"] =
                json!({"memory": {"limit": limit_mib * MIB, "swap": limit_mib * MIB}});
        });
        let out = rt.cmd(&["run", "--bundle", b.to_str().unwrap(), &id]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "limit {limit_mib} MiB: {stdout}{}",
            text(&out.stderr)
        );
        let kib: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("filled ")?.strip_suffix(" KiB")?.parse().ok())
            .unwrap_or_else(|| panic!("no fill report: {stdout}"));
        // The heap it got: most of the arena (the limit less 4 MiB and the
        // page tables, less the image and the stack).
        let arena = limit_mib - 4 - (limit_mib - 4).div_ceil(512);
        assert!(
            kib * 1024 > (arena - 4) * MIB && kib * 1024 < arena * MIB,
            "{limit_mib} MiB: filled {kib} KiB"
        );
        assert!(!own_v1("memory").join(format!("{path}{limit_mib}")).exists());
    }
}

/// The figures the shims read from the cgroup (containerd's runc shim reads
/// the files itself; `events --stats` reports the same): memory nonzero and
/// within the limit, CPU time rising while the guest works.
#[test]
fn stats_come_from_the_containers_cgroup_and_rise_while_the_guest_works() {
    // Before the runtime: dropped after it, once its containers are gone.
    let (path, _parents) = v1_path("stats");
    let rt = Runtime::new();
    let b = bundle(rt.dir(), "b", Path::new(BASICS), &["spin", "30"], |c| {
        c["linux"]["cgroupsPath"] = json!(path);
    });
    rt.ok(&["create", "--bundle", b.to_str().unwrap(), "s1"]);
    rt.ok(&["start", "s1"]);
    let stats = || -> (u64, u64, u64) {
        let e: Value = serde_json::from_str(&rt.ok(&["events", "--stats", "s1"])).unwrap();
        let d = &e["data"];
        (
            d["cpu"]["usage"]["total"].as_u64().unwrap(),
            d["memory"]["usage"]["usage"].as_u64().unwrap(),
            d["memory"]["usage"]["limit"].as_u64().unwrap(),
        )
    };
    std::thread::sleep(Duration::from_millis(300));
    let (cpu0, mem0, limit) = stats();
    assert_eq!(limit, 48 * MIB);
    assert!(mem0 > 0 && mem0 <= limit, "{mem0}");
    // A tenth of a second more CPU while it spins: within 20 s, however
    // loaded the machine (the container is neither frozen nor limited).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (cpu1, mem1) = loop {
        std::thread::sleep(Duration::from_millis(250));
        let (cpu1, mem1, _) = stats();
        if cpu1 > cpu0 + 100_000_000 {
            break (cpu1, mem1);
        }
        let state = fs::read_to_string(format!("/proc/{}/stat", rt.pid("s1"))).unwrap_or_default();
        assert!(Instant::now() < deadline, "cpu {cpu0} -> {cpu1}; the tender: {state}");
    };
    assert!(mem1 > 0 && mem1 <= limit, "{mem1}");
    // Memory: a guest that takes its heap, seen before and after.
    let fb = bundle(rt.dir(), "fb", Path::new(BASICS), &["fill", "30"], |c| {
        c["linux"]["cgroupsPath"] = json!(format!("{path}f"));
    });
    rt.ok(&["create", "--bundle", fb.to_str().unwrap(), "f1"]);
    let fstats = || -> u64 {
        let e: Value = serde_json::from_str(&rt.ok(&["events", "--stats", "f1"])).unwrap();
        e["data"]["memory"]["usage"]["usage"].as_u64().unwrap()
    };
    let before = fstats();
    rt.ok(&["start", "f1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let m = fstats();
        // Most of the 43 MiB arena, resident.
        if m > 30 * MIB {
            break m;
        }
        assert!(Instant::now() < deadline, "memory never rose: {before} -> {m}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(after <= 48 * MIB, "{after}");
    assert!(before < 8 * MIB, "before start: {before}");
    rt.ok(&["delete", "--force", "f1"]);
    // The same as the files the shim reads, by the container's pid.
    let pid = rt.pid("s1");
    let cpu_dir = own_v1("cpuacct").join(&path);
    assert_eq!(
        cgroup_of(pid, "cpuacct"),
        format!("{}/{path}", cgroup_of(std::process::id() as i32, "cpuacct").trim_end_matches('/'))
    );
    let direct: u64 = read(&cpu_dir.join("cpuacct.usage")).parse().unwrap();
    assert!(direct >= cpu1, "{direct} < {cpu1}");
    rt.ok(&["delete", "--force", "s1"]);
}

#[test]
fn update_applies_to_the_cgroup_and_refuses_to_starve_the_guest() {
    // Before the runtime: dropped after it, once its containers are gone.
    let (path, _parents) = v1_path("update");
    let rt = Runtime::new();
    let b = bundle(rt.dir(), "b", Path::new(BASICS), &["sleep", "30"], |c| {
        c["linux"]["cgroupsPath"] = json!(path);
    });
    rt.ok(&["create", "--bundle", b.to_str().unwrap(), "u1"]);
    rt.ok(&["start", "u1"]);
    let dir = |c: &str| own_v1(c).join(&path);
    // As containerd's shim does: LinuxResources JSON on stdin.
    let res = r#"{"cpu":{"shares":256,"quota":20000,"period":100000},"pids":{"limit":7}}"#;
    let out = rt.cmd_in(&["update", "--resources", "-", "u1"], Some(res));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(read(&dir("cpu").join("cpu.shares")), "256");
    assert_eq!(read(&dir("cpu").join("cpu.cfs_quota_us")), "20000");
    assert_eq!(read(&dir("pids").join("pids.max")), "7");
    // runc's flags, with its units.
    rt.ok(&["update", "--cpu-share", "128", "--pids-limit", "-1", "--memory", "96m", "u1"]);
    assert_eq!(read(&dir("cpu").join("cpu.shares")), "128");
    assert_eq!(read(&dir("pids").join("pids.max")), "max");
    assert_eq!(read(&dir("memory").join("memory.limit_in_bytes")), (96 * MIB).to_string());
    // The guest keeps its memory: said, not silently dropped.
    let w = rt.warnings();
    assert!(w.contains("keeps its 43 MiB until it is started again"), "{w}");
    // Below what the guest's arena and the tender need: refused, unchanged.
    rt.refused(&["update", "--memory", "16m", "u1"], "below the 48 MiB the running guest needs");
    assert_eq!(read(&dir("memory").join("memory.limit_in_bytes")), (96 * MIB).to_string());
    // podman's way: a file.
    let file = rt.dir().join("res.json");
    fs::write(&file, r#"{"pids":{"limit":11}}"#).unwrap();
    rt.ok(&["update", "--resources", file.to_str().unwrap(), "u1"]);
    assert_eq!(read(&dir("pids").join("pids.max")), "11");
    rt.refused(
        &["update", "--resources", "/nonexistent/res.json", "u1"],
        "--resources /nonexistent/res.json",
    );
    rt.refused_in(
        &["update", "--resources", "-", "u1"],
        Some("{not json"),
        "not a LinuxResources JSON",
    );
    rt.refused(&["update", "--memory", "lots", "u1"], "invalid size");
    rt.ok(&["update", "--memory-swap", "-1", "--cpu-quota", "-1", "u1"]);
    assert_eq!(read(&dir("cpu").join("cpu.cfs_quota_us")), "-1");
    rt.refused(&["update", "--l3-cache-schema", "L3:0=f", "u1"], "Intel RDT");
    rt.ok(&["delete", "--force", "u1"]);
    assert!(!dir("memory").exists());
}

/// Pause freezes the guest with its TCP connection open; resume thaws it,
/// and the same keep-alive connection is served again.
#[test]
fn a_paused_guest_keeps_its_connection_and_serves_it_after_resume() {
    // Before the runtime: dropped after it, once its containers are gone.
    let (path, _parents) = v1_path("pause");
    let rt = Runtime::new();
    let container = Netns::new("cgpc");
    let client = Netns::new("cgph");
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
    container.ip(&["addr", "add", "10.78.0.2/24", "dev", "eth0"]);
    container.ip(&["link", "set", "eth0", "up"]);
    client.ip(&["addr", "add", "10.78.0.1/24", "dev", "veth0"]);
    client.ip(&["link", "set", "veth0", "up"]);
    let httpd = workspace_bin("httpd");
    let ns_path = format!("/run/netns/{}", container.name());
    let b = bundle(rt.dir(), "b", &httpd, &[], |c| {
        c["linux"]["namespaces"] = json!([{"type": "network", "path": ns_path}]);
        c["linux"]["cgroupsPath"] = json!(path);
    });
    let files = b.join("rootfs/httpd.files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("index.html"), "paused and back\n").unwrap();
    rt.ok(&["create", "--bundle", b.to_str().unwrap(), "web"]);
    rt.ok(&["start", "web"]);

    let root = rt.root();
    let log = rt.log();
    let runc = support::profile_dir().join("nabla-runc");
    let rt_cmd = move |args: &[&str]| {
        let out = Command::new(&runc)
            .arg("--root")
            .arg(&root)
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json"])
            .args(args)
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    client.enter(move || {
        let request = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n";
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut conn = loop {
            match std::net::TcpStream::connect_timeout(
                &"10.78.0.2:80".parse().unwrap(),
                Duration::from_secs(1),
            ) {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "connect: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        let response = |conn: &mut std::net::TcpStream| -> std::io::Result<String> {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).contains("paused and back\n") {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            Ok(text(&got))
        };
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        conn.write_all(request).unwrap();
        let first = response(&mut conn).unwrap();
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");

        rt_cmd(&["pause", "web"]);
        let s: Value = serde_json::from_str(&rt_cmd(&["state", "web"])).unwrap();
        assert_eq!(s["status"], "paused");
        // Frozen: the request on the open connection gets no answer.
        conn.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        conn.write_all(request).unwrap();
        let mut buf = [0u8; 1];
        let e = conn.read(&mut buf).expect_err("a paused guest answered");
        assert!(
            matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "{e}"
        );

        rt_cmd(&["resume", "web"]);
        let s: Value = serde_json::from_str(&rt_cmd(&["state", "web"])).unwrap();
        assert_eq!(s["status"], "running");
        // The same connection: the request sent while frozen is answered,
        // and another after it.
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let second = response(&mut conn).unwrap();
        assert!(second.starts_with("HTTP/1.1 200"), "{second}");
        conn.write_all(request).unwrap();
        let third = response(&mut conn).unwrap();
        assert!(third.starts_with("HTTP/1.1 200"), "{third}");
    });
    rt.ok(&["kill", "web", "KILL"]);
    rt.wait_status("web", "stopped");
    rt.ok(&["delete", "web"]);
    assert!(!own_v1("freezer").join(&path).exists());
}

// ---------------------------------------------------------------------------
// cgroup v2.

/// The unified hierarchy, seen by a runtime whose `/sys/fs/cgroup` is a
/// cgroup2 mount (its own mount namespace): the process joins, the freezer
/// is `cgroup.freeze`, the systemd form maps to the scope's directory, and
/// delete removes it. This host binds every controller to v1, so the v2
/// resource files are tested by runtime/src/cgroup.rs's unit tests.
#[test]
fn cgroup_v2_join_freeze_systemd_path_and_delete() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let magic = {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(unified.as_os_str().as_bytes()).unwrap();
        // SAFETY: statfs is plain data, filled by the call.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a statfs to fill.
        let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
        (r == 0).then_some(st.f_type as i64)
    };
    let own = cgroup_of(std::process::id() as i32, "");
    if magic != Some(0x6367_7270) || own != "/" {
        // Not hybrid, or not at the root of the unified hierarchy: the
        // absolute systemd path would be outside the test's cgroup.
        eprintln!(
            "skipped: no unified hierarchy at /sys/fs/cgroup/unified with this test at its root"
        );
        return;
    }
    let tag = format!("nablav2{}", std::process::id());
    // Before the runtime: dropped after it, once its containers are gone.
    let _parents = Parents(vec![unified.join(format!("{tag}.slice")), unified.join(&tag)]);
    let mut rt = Runtime::v2();
    for (systemd, cgroups_path, dir) in [
        (false, format!("{tag}/c"), unified.join(&tag).join("c")),
        (
            true,
            format!("{tag}.slice:nabla:c2"),
            unified.join(format!("{tag}.slice/nabla-c2.scope")),
        ),
    ] {
        rt.systemd = systemd;
        let id = if systemd { "v2sd" } else { "v2" };
        let b = bundle(rt.dir(), id, Path::new(BASICS), &["sleep", "30"], |c| {
            c["linux"]["cgroupsPath"] = json!(cgroups_path);
            // The memory controller is v1's on this host: no memory.max.
            c["linux"]["resources"] = json!({});
        });
        rt.ok(&["create", "--bundle", b.to_str().unwrap(), id]);
        let pid = rt.pid(id);
        let rel = dir.strip_prefix(unified).unwrap();
        assert_eq!(cgroup_of(pid, ""), format!("/{}", rel.display()));
        rt.ok(&["start", id]);
        rt.ok(&["pause", id]);
        assert_eq!(read(&dir.join("cgroup.freeze")), "1");
        assert!(read(&dir.join("cgroup.events")).contains("frozen 1"));
        assert_eq!(rt.status(id), "paused");
        rt.ok(&["resume", id]);
        assert!(read(&dir.join("cgroup.events")).contains("frozen 0"));
        assert_eq!(rt.status(id), "running");
        let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", id])).unwrap();
        assert_eq!(pids, vec![pid]);
        rt.ok(&["kill", id, "KILL"]);
        rt.wait_status(id, "stopped");
        rt.ok(&["delete", id]);
        assert!(!dir.exists(), "{} left", dir.display());
    }
}
