//! The container's cgroup, as runc's cgroupfs driver makes it: the path
//! from `linux.cgroupsPath` (or the systemd form `slice:prefix:name` with
//! `--systemd-cgroup`, mapped to the directory systemd would give that
//! scope), made in every controller's hierarchy on cgroup v1 or once on the
//! unified v2 hierarchy, `linux.resources` written to its files, the
//! container's process moved into it before the guest starts, frozen and
//! thawed for `pause`/`resume`, read for `events --stats`, removed at
//! `delete`. See docs/oci.md, "Cgroups".

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::Error;

/// `statfs` magic of a cgroup2 file system.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The v1 controllers a container's cgroup is made in (those mounted).
pub const V1_CONTROLLERS: &[&str] =
    &["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio", "devices", "hugetlb"];

/// Which hierarchy, and the container's cgroup in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cgroup {
    /// cgroup v1: the container's directory in each mounted controller's
    /// hierarchy, `(controller, directory)`.
    V1 { dirs: Vec<(String, PathBuf)> },
    /// The unified hierarchy: one directory.
    V2 { dir: PathBuf },
}

/// Where the cgroup file systems are mounted.
#[derive(Debug, Clone)]
pub enum Hierarchy {
    /// `(controller, mount point)` of each v1 controller found.
    V1(Vec<(String, PathBuf)>),
    /// The unified hierarchy's mount point.
    V2(PathBuf),
}

fn io(p: &Path, e: std::io::Error) -> Error {
    Error(format!("{}: {e}", p.display()))
}

/// The hierarchy of this host, from `/sys/fs/cgroup`: unified if it is a
/// cgroup2 mount, else the v1 controllers in `/proc/self/mountinfo`.
pub fn detect() -> Result<Hierarchy, Error> {
    detect_at(Path::new("/sys/fs/cgroup"), Path::new("/proc/self/mountinfo"))
}

fn detect_at(root: &Path, mountinfo: &Path) -> Result<Hierarchy, Error> {
    if is_cgroup2(root) {
        return Ok(Hierarchy::V2(root.to_path_buf()));
    }
    let text = fs::read_to_string(mountinfo).map_err(|e| io(mountinfo, e))?;
    let mut found = Vec::new();
    for line in text.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let mut r = right.split_whitespace();
        if r.next() != Some("cgroup") {
            continue;
        }
        let superopts = r.nth(1).unwrap_or("");
        let mount = left.split_whitespace().nth(4).unwrap_or("");
        for c in superopts.split(',') {
            if V1_CONTROLLERS.contains(&c) && !found.iter().any(|(n, _): &(String, PathBuf)| n == c)
            {
                found.push((c.to_string(), PathBuf::from(unescape(mount))));
            }
        }
    }
    if found.is_empty() {
        return Err(Error(
            "no cgroup hierarchy: /sys/fs/cgroup is not cgroup2 and no v1 controller is mounted"
                .into(),
        ));
    }
    Ok(Hierarchy::V1(found))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_cgroup2(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs is plain data; zeroed is a valid value to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs to fill.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    st.f_type as i64 == CGROUP2_SUPER_MAGIC
}

/// runc's CleanPath for the inner path: `..` never climbs above the start,
/// `.` and empty components go.
fn clean(p: &str) -> PathBuf {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => out.push(s.to_str().unwrap_or("")),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.iter().filter(|s| !s.is_empty()).collect()
}

/// The cgroup's path inside each hierarchy: `(absolute?, inner path)`.
/// Absolute paths are from the hierarchy's root; relative ones from the
/// runtime's own cgroup, as runc's cgroupfs driver does. The systemd form
/// (`--systemd-cgroup`) is `slice:prefix:name`: the scope `prefix-name.scope`
/// in the slice, whose directory is the slice's expanded path.
pub fn inner_path(
    cgroups_path: Option<&str>,
    systemd: bool,
    id: &str,
) -> Result<(bool, PathBuf), Error> {
    if systemd {
        let spec = cgroups_path.unwrap_or("");
        let spec =
            if spec.is_empty() { format!("system.slice:runc:{id}") } else { spec.to_string() };
        let parts: Vec<&str> = spec.split(':').collect();
        if parts.len() != 3 {
            return Err(Error(format!(
                "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {spec:?}"
            )));
        }
        let (slice, prefix, name) = (parts[0], parts[1], parts[2]);
        let slice = if slice.is_empty() { "system.slice" } else { slice };
        let mut path = expand_slice(slice)?;
        if name.ends_with(".slice") {
            // A slice for a name: the container's cgroup is that slice.
            path.push(check_unit(name)?);
            return Ok((true, path));
        }
        if name.is_empty() {
            return Err(Error(format!("cgroupsPath {spec:?}: the name is empty")));
        }
        let unit = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        path.push(check_unit(&unit)?);
        return Ok((true, path));
    }
    match cgroups_path {
        Some(p) if !p.is_empty() => Ok((p.starts_with('/'), clean(p))),
        // runc's default: the container's id, under the runtime's cgroup.
        _ => Ok((false, clean(id))),
    }
}

fn check_unit(u: &str) -> Result<&str, Error> {
    if u.is_empty() || u.contains('/') || u == "." || u == ".." || u.contains('\0') {
        return Err(Error(format!("invalid systemd unit name {u:?}")));
    }
    Ok(u)
}

/// systemd's slice path: `a-b-c.slice` is `a.slice/a-b.slice/a-b-c.slice`;
/// `-.slice` is the root.
fn expand_slice(slice: &str) -> Result<PathBuf, Error> {
    let bad = || Error(format!("invalid slice name {slice:?}"));
    let Some(base) = slice.strip_suffix(".slice") else { return Err(bad()) };
    if slice == "-.slice" {
        return Ok(PathBuf::new());
    }
    if base.is_empty()
        || base.contains('/')
        || base.starts_with('-')
        || base.ends_with('-')
        || base.contains("--")
    {
        return Err(bad());
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

/// The runtime's own cgroup in a hierarchy, from `/proc/self/cgroup`:
/// `controller` on v1, `None` for the unified one.
fn own_cgroup(controller: Option<&str>) -> PathBuf {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let hit = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        if hit {
            return clean(path);
        }
    }
    PathBuf::new()
}

impl Cgroup {
    /// The container's cgroup directories (not made yet).
    pub fn locate(h: &Hierarchy, absolute: bool, inner: &Path) -> Cgroup {
        match h {
            Hierarchy::V1(mounts) => Cgroup::V1 {
                dirs: mounts
                    .iter()
                    .map(|(c, m)| {
                        let base = if absolute { PathBuf::new() } else { own_cgroup(Some(c)) };
                        (c.clone(), m.join(base).join(inner))
                    })
                    .collect(),
            },
            Hierarchy::V2(m) => {
                let base = if absolute { PathBuf::new() } else { own_cgroup(None) };
                Cgroup::V2 { dir: m.join(base).join(inner) }
            }
        }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        match self {
            Cgroup::V1 { dirs } => {
                dirs.iter().find(|(c, _)| c == controller).map(|(_, d)| d.as_path())
            }
            Cgroup::V2 { dir } => Some(dir),
        }
    }

    /// Makes the directories (and their parents). On v1, a new cpuset
    /// cgroup gets its parent's cpus and mems (it starts empty, and no
    /// process could join it); on v2, the controllers the parents offer
    /// are enabled down to it.
    pub fn make(&self) -> Result<(), Error> {
        match self {
            Cgroup::V1 { dirs } => {
                for (c, d) in dirs {
                    if c == "cpuset" {
                        make_cpuset(d)?;
                    } else {
                        fs::create_dir_all(d).map_err(|e| io(d, e))?;
                    }
                }
            }
            Cgroup::V2 { dir } => {
                fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
                enable_controllers(dir);
            }
        }
        Ok(())
    }

    /// Whether the container's cgroup directories exist.
    pub fn exists(&self) -> bool {
        match self {
            Cgroup::V1 { dirs } => dirs.iter().any(|(_, d)| d.is_dir()),
            Cgroup::V2 { dir } => dir.is_dir(),
        }
    }

    /// Moves `pid` into the cgroup (every controller's, on v1).
    pub fn join(&self, pid: i32) -> Result<(), Error> {
        match self {
            Cgroup::V1 { dirs } => {
                for (_, d) in dirs {
                    write(d, "cgroup.procs", &pid.to_string())?;
                }
                Ok(())
            }
            Cgroup::V2 { dir } => write(dir, "cgroup.procs", &pid.to_string()),
        }
    }

    /// The processes in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let dir = match self {
            Cgroup::V1 { dirs } => match dirs
                .iter()
                .find(|(c, _)| c == "pids" || c == "memory" || c == "freezer")
                .or(dirs.first())
            {
                Some((_, d)) => d.clone(),
                None => return vec![],
            },
            Cgroup::V2 { dir } => dir.clone(),
        };
        let text = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Removes the cgroup's directories, waiting a moment for processes
    /// that are still leaving (a directory with processes cannot go).
    pub fn remove(&self) -> Result<(), Error> {
        let dirs: Vec<PathBuf> = match self {
            Cgroup::V1 { dirs } => dirs.iter().map(|(_, d)| d.clone()).collect(),
            Cgroup::V2 { dir } => vec![dir.clone()],
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        for d in dirs {
            loop {
                match fs::remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => return Err(io(&d, e)),
                }
            }
        }
        Ok(())
    }

    /// Whether the freezer holds the cgroup frozen.
    pub fn frozen(&self) -> bool {
        match self {
            Cgroup::V1 { .. } => self
                .dir("freezer")
                .and_then(|d| fs::read_to_string(d.join("freezer.state")).ok())
                .is_some_and(|s| s.trim() != "THAWED"),
            Cgroup::V2 { dir } => {
                fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
        }
    }

    /// Freezes (`true`) or thaws the cgroup and waits until the kernel
    /// says it is done.
    pub fn freeze(&self, on: bool) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(10);
        match self {
            Cgroup::V1 { .. } => {
                let d = self.dir("freezer").ok_or_else(|| {
                    Error("the freezer controller is not mounted: cannot pause or resume".into())
                })?;
                let want = if on { "FROZEN" } else { "THAWED" };
                loop {
                    write(d, "freezer.state", want)?;
                    let now = read(d, "freezer.state")?;
                    if now.trim() == want {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        return Err(Error(format!(
                            "{}: still {} after 10 s",
                            d.join("freezer.state").display(),
                            now.trim()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Cgroup::V2 { dir } => {
                write(dir, "cgroup.freeze", if on { "1" } else { "0" })?;
                let want = if on { "frozen 1" } else { "frozen 0" };
                loop {
                    let events = read(dir, "cgroup.events")?;
                    if events.lines().any(|l| l.trim() == want) {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        return Err(Error(format!(
                            "{}: not {want} after 10 s",
                            dir.join("cgroup.events").display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Writes `linux.resources` to the cgroup's files. Refuses what it
    /// cannot honour; device rules are vacuous (the guest opens no host
    /// device) and accepted.
    pub fn apply(&self, r: &LinuxResources) -> Result<Vec<String>, Error> {
        let mut notes = Vec::new();
        let writes = match self {
            Cgroup::V1 { .. } => v1_writes(r, &mut notes)?,
            Cgroup::V2 { .. } => v2_writes(r, &mut notes)?,
        };
        for w in writes {
            let dir = self.dir(w.controller).ok_or_else(|| {
                Error(format!(
                    "linux.resources needs the {} controller, which is not mounted",
                    w.controller
                ))
            })?;
            if w.optional && !dir.join(&w.file).exists() {
                notes.push(format!("{} is not available here: {} not written", w.file, w.value));
                continue;
            }
            write(dir, &w.file, &w.value)?;
        }
        Ok(notes)
    }

    /// What `events --stats` reports: cpu and memory usage, pids.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        match self {
            Cgroup::V1 { .. } => {
                if let Some(d) = self.dir("cpuacct") {
                    s.cpu_usage_ns = read_u64(d, "cpuacct.usage");
                }
                if let Some(d) = self.dir("memory") {
                    s.memory_usage = read_u64(d, "memory.usage_in_bytes");
                    s.memory_max_usage = read_u64(d, "memory.max_usage_in_bytes");
                    s.memory_limit = read_u64(d, "memory.limit_in_bytes");
                    s.memory_failcnt = read_u64(d, "memory.failcnt");
                }
                if let Some(d) = self.dir("pids") {
                    s.pids = read_u64(d, "pids.current");
                }
            }
            Cgroup::V2 { dir } => {
                let cpu = fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default();
                s.cpu_usage_ns = cpu
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|us| us * 1000);
                s.memory_usage = read_u64(dir, "memory.current");
                s.memory_max_usage = read_u64(dir, "memory.peak");
                s.memory_limit = read_u64(dir, "memory.max");
                s.pids = read_u64(dir, "pids.current");
            }
        }
        s
    }
}

/// Usage figures of a cgroup; `None` where the file is missing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub cpu_usage_ns: Option<u64>,
    pub memory_usage: Option<u64>,
    pub memory_max_usage: Option<u64>,
    pub memory_limit: Option<u64>,
    pub memory_failcnt: Option<u64>,
    pub pids: Option<u64>,
}

fn read_u64(d: &Path, f: &str) -> Option<u64> {
    let t = fs::read_to_string(d.join(f)).ok()?;
    let t = t.trim();
    if t == "max" { Some(u64::MAX) } else { t.parse().ok() }
}

fn read(d: &Path, f: &str) -> Result<String, Error> {
    let p = d.join(f);
    fs::read_to_string(&p).map_err(|e| io(&p, e))
}

fn write(d: &Path, f: &str, v: &str) -> Result<(), Error> {
    let p = d.join(f);
    fs::write(&p, v).map_err(|e| Error(format!("writing {v:?} to {}: {e}", p.display())))
}

/// Makes a v1 cpuset directory and its missing parents, each given its
/// parent's `cpuset.cpus` and `cpuset.mems` if empty.
fn make_cpuset(d: &Path) -> Result<(), Error> {
    if d.is_dir() {
        return Ok(());
    }
    if let Some(parent) = d.parent() {
        make_cpuset(parent)?;
        fs::create_dir(d)
            .or_else(
                |e| if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) },
            )
            .map_err(|e| io(d, e))?;
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if read(d, f).is_ok_and(|v| v.trim().is_empty()) {
                let v = read(parent, f)?;
                write(d, f, v.trim())?;
            }
        }
    }
    Ok(())
}

/// v2: enables in each ancestor's `cgroup.subtree_control` (but the
/// root's) the controllers it has, so that the container's cgroup gets their files. Best effort:
/// a controller that cannot be enabled (a parent with processes in it)
/// leaves its files missing, and writing a limit to one then fails naming it.
fn enable_controllers(dir: &Path) {
    // Below the hierarchy's root: the root's are the init system's to
    // enable.
    let ancestors: Vec<&Path> =
        dir.ancestors().skip(1).take_while(|a| a.parent().is_some_and(is_cgroup2)).collect();
    for a in ancestors.into_iter().rev() {
        let Ok(avail) = fs::read_to_string(a.join("cgroup.controllers")) else { continue };
        for c in avail.split_whitespace() {
            let _ = fs::write(a.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}

/// One value for one cgroup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
    /// Skipped (with a note) where the kernel does not have the file.
    pub optional: bool,
}

fn w(controller: &'static str, file: &str, value: impl ToString) -> Write {
    Write { controller, file: file.to_string(), value: value.to_string(), optional: false }
}

fn refuse_unsupported(r: &LinuxResources) -> Result<(), Error> {
    if r.network().as_ref().is_some_and(|n| {
        n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
    }) {
        return Err(Error(
            "linux.resources.network (net_cls, net_prio) is not supported: the guest's traffic leaves through the tender's tap".into(),
        ));
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(Error(
            "linux.resources.rdma is not supported: a guest has no RDMA device".into(),
        ));
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        return Err(Error(
            "linux.resources.hugepageLimits is not supported: the guest's memory is not backed by huge pages".into(),
        ));
    }
    Ok(())
}

/// The v1 file writes for `r`, in the order they must happen.
pub fn v1_writes(r: &LinuxResources, notes: &mut Vec<String>) -> Result<Vec<Write>, Error> {
    refuse_unsupported(r)?;
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error(
            "linux.resources.unified needs cgroup v2; this host has cgroup v1".into(),
        ));
    }
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        // runc leaves a file alone for a value of 0.
        let limit = m.limit().filter(|v| *v != 0);
        let swap = m.swap().filter(|v| *v != 0);
        // memory.memsw.limit_in_bytes (memory + swap) may never be below
        // memory.limit_in_bytes: with both, the kernel takes them in the
        // order runc writes them, memsw first when it grows. Unknown here
        // whether it grows, so: limit to "unlimited" memsw first, then the
        // limit, then the real memsw.
        if let Some(s) = swap {
            if limit.is_some() {
                out.push(Write {
                    optional: true,
                    ..w("memory", "memory.memsw.limit_in_bytes", -1)
                });
            }
            if let Some(l) = limit {
                out.push(w("memory", "memory.limit_in_bytes", l));
            }
            out.push(Write { optional: true, ..w("memory", "memory.memsw.limit_in_bytes", s) });
        } else if let Some(l) = limit {
            out.push(w("memory", "memory.limit_in_bytes", l));
        }
        if let Some(v) = m.reservation().filter(|v| *v != 0) {
            out.push(w("memory", "memory.soft_limit_in_bytes", v));
        }
        if let Some(v) = m.swappiness() {
            if v > 100 {
                return Err(Error(format!("linux.resources.memory.swappiness {v}: at most 100")));
            }
            out.push(Write { optional: true, ..w("memory", "memory.swappiness", v) });
        }
        if m.disable_oom_killer() == Some(true) {
            out.push(w("memory", "memory.oom_control", 1));
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            notes.push("linux.resources.memory.kernel and kernelTCP are deprecated and not applied (as runc does on current kernels)".into());
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(v) = c.shares().filter(|v| *v != 0) {
            out.push(w("cpu", "cpu.shares", v));
        }
        if let Some(v) = c.period().filter(|v| *v != 0) {
            out.push(w("cpu", "cpu.cfs_period_us", v));
        }
        if let Some(v) = c.quota().filter(|v| *v != 0) {
            out.push(w("cpu", "cpu.cfs_quota_us", if v < 0 { -1 } else { v }));
        }
        if let Some(v) = c.realtime_period() {
            out.push(w("cpu", "cpu.rt_period_us", v));
        }
        if let Some(v) = c.realtime_runtime() {
            out.push(w("cpu", "cpu.rt_runtime_us", v));
        }
        if let Some(v) = c.cpus().as_ref().filter(|v| !v.is_empty()) {
            out.push(w("cpuset", "cpuset.cpus", v));
        }
        if let Some(v) = c.mems().as_ref().filter(|v| !v.is_empty()) {
            out.push(w("cpuset", "cpuset.mems", v));
        }
        if c.idle().is_some_and(|i| i != 0) {
            out.push(w("cpu", "cpu.idle", c.idle().unwrap_or(0)));
        }
    }
    // 0: unchanged, as runc; negative: no limit.
    if let Some(l) = r.pids().as_ref().map(|p| p.limit()).filter(|l| *l != 0) {
        out.push(w("pids", "pids.max", if l < 0 { "max".to_string() } else { l.to_string() }));
    }
    if let Some(v) = r.block_io().as_ref().and_then(|b| b.weight()) {
        out.push(w("blkio", "blkio.weight", v));
    }
    Ok(out)
}

/// runc's conversion of cpu shares (2..262144) to cgroup v2's cpu.weight
/// (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// runc's conversion of blkio weight (10..1000) to io.weight (1..10000).
fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + ((w.clamp(10, 1000) as u64 - 10) * 9999) / 990
}

/// The v2 file writes for `r`.
pub fn v2_writes(r: &LinuxResources, notes: &mut Vec<String>) -> Result<Vec<Write>, Error> {
    refuse_unsupported(r)?;
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|v| *v != 0) {
            out.push(w(
                "memory",
                "memory.max",
                if l < 0 { "max".to_string() } else { l.to_string() },
            ));
        }
        if let Some(s) = m.swap() {
            // OCI's swap is memory + swap; v2's memory.swap.max is swap alone.
            let v = match (s, m.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l >= 0 => {
                    if s < l {
                        return Err(Error(format!(
                            "linux.resources.memory.swap {s} is below the memory limit {l}: it counts memory and swap together"
                        )));
                    }
                    (s - l).to_string()
                }
                (0, _) => "0".to_string(),
                _ => {
                    return Err(Error(
                        "linux.resources.memory.swap without a memory limit cannot be converted to cgroup v2's memory.swap.max".into(),
                    ));
                }
            };
            out.push(Write { optional: true, ..w("memory", "memory.swap.max", v) });
        }
        if let Some(v) = m.reservation() {
            out.push(w(
                "memory",
                "memory.low",
                if v < 0 { "max".to_string() } else { v.to_string() },
            ));
        }
        if m.swappiness().is_some() {
            notes.push(
                "linux.resources.memory.swappiness has no cgroup v2 file: not applied".into(),
            );
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(Error(
                "linux.resources.memory.disableOOMKiller cannot be honoured on cgroup v2".into(),
            ));
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            notes.push(
                "linux.resources.memory.kernel and kernelTCP are deprecated and not applied".into(),
            );
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            out.push(w("cpu", "cpu.weight", shares_to_weight(s)));
        }
        if c.quota().is_some_and(|v| v != 0) || c.period().is_some_and(|v| v != 0) {
            let quota = match c.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            let period = c.period().filter(|p| *p != 0).unwrap_or(100_000);
            out.push(w("cpu", "cpu.max", format!("{quota} {period}")));
        }
        if c.realtime_period().is_some() || c.realtime_runtime().is_some() {
            return Err(Error("linux.resources.cpu.realtimePeriod and realtimeRuntime are not supported on cgroup v2".into()));
        }
        if let Some(v) = c.cpus().as_ref().filter(|v| !v.is_empty()) {
            out.push(w("cpuset", "cpuset.cpus", v));
        }
        if let Some(v) = c.mems().as_ref().filter(|v| !v.is_empty()) {
            out.push(w("cpuset", "cpuset.mems", v));
        }
        if let Some(i) = c.idle() {
            out.push(w("cpu", "cpu.idle", i));
        }
    }
    // 0: unchanged, as runc; negative: no limit.
    if let Some(l) = r.pids().as_ref().map(|p| p.limit()).filter(|l| *l != 0) {
        out.push(w("pids", "pids.max", if l < 0 { "max".to_string() } else { l.to_string() }));
    }
    if let Some(v) = r.block_io().as_ref().and_then(|b| b.weight()) {
        out.push(w("io", "io.weight", blkio_to_io_weight(v)));
    }
    if let Some(u) = r.unified() {
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort();
        for (k, v) in keys {
            if k.contains('/') || k.starts_with('.') || k.starts_with("cgroup.") {
                return Err(Error(format!(
                    "linux.resources.unified: {k:?} is not a controller file"
                )));
            }
            out.push(w("unified", k, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids};

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nabla-runc-cg-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn cgroupfs_paths_are_cleaned_as_runc_does() {
        assert_eq!(
            inner_path(Some("/kubepods/pod1/c1"), false, "c1").unwrap(),
            (true, "kubepods/pod1/c1".into())
        );
        assert_eq!(inner_path(Some("/../../etc/x"), false, "c").unwrap(), (true, "etc/x".into()));
        assert_eq!(inner_path(Some("a/./b/../c"), false, "c").unwrap(), (false, "a/c".into()));
        assert_eq!(inner_path(Some("../../.."), false, "c").unwrap(), (false, PathBuf::new()));
        assert_eq!(inner_path(None, false, "web").unwrap(), (false, "web".into()));
        assert_eq!(inner_path(Some(""), false, "web").unwrap(), (false, "web".into()));
    }

    #[test]
    fn systemd_paths_map_to_the_scope_directory() {
        let p =
            |s: &str| inner_path(Some(s), true, "id").map(|(a, p)| (a, p.display().to_string()));
        assert_eq!(
            p("kubepods-burstable-pod12.slice:cri-containerd:abc").unwrap(),
            (true, "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-abc.scope".into())
        );
        assert_eq!(p("machine.slice:libpod:f00").unwrap().1, "machine.slice/libpod-f00.scope");
        assert_eq!(p(":runc:x").unwrap().1, "system.slice/runc-x.scope");
        assert_eq!(p("-.slice::x").unwrap().1, "x.scope");
        assert_eq!(p("user.slice::sub.slice").unwrap().1, "user.slice/sub.slice");
        assert_eq!(
            inner_path(None, true, "c9").unwrap().1,
            PathBuf::from("system.slice/runc-c9.scope")
        );
        for bad in [
            "/plain/path",
            "a:b",
            "a:b:c:d",
            "noslice:p:n",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "a.slice:p:",
            "a.slice:p:x/y",
            "a/b.slice:p:n",
        ] {
            let e = p(bad).unwrap_err();
            assert!(!e.0.is_empty(), "{bad}");
        }
    }

    #[test]
    fn mountinfo_gives_the_v1_controllers() {
        let d = tmp("mi");
        let mi = d.join("mountinfo");
        fs::write(
            &mi,
            "30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
             31 30 0:27 / /sys/fs/cgroup/cpu\\040x rw,relatime shared:1 - cgroup cgroup rw,cpu\n\
             32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             33 30 0:29 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio\n\
             34 30 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        )
        .unwrap();
        let Hierarchy::V1(found) = detect_at(&d, &mi).unwrap() else { panic!("not v1") };
        assert_eq!(
            found,
            vec![
                ("cpu".to_string(), PathBuf::from("/sys/fs/cgroup/cpu x")),
                ("memory".to_string(), PathBuf::from("/sys/fs/cgroup/memory"))
            ]
        );
        fs::write(&mi, "garbage\n - \n1 2 3\n").unwrap();
        assert!(detect_at(&d, &mi).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn v1_files_and_their_order() {
        let mut notes = vec![];
        let r = res(r#"{"memory":{"limit":67108864,"swap":134217728,"reservation":1048576},
            "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0","mems":"0"},
            "pids":{"limit":-1},"devices":[{"allow":false,"access":"rwm"}]}"#);
        let ws: Vec<(String, String)> =
            v1_writes(&r, &mut notes).unwrap().into_iter().map(|w| (w.file, w.value)).collect();
        let want = [
            ("memory.memsw.limit_in_bytes", "-1"),
            ("memory.limit_in_bytes", "67108864"),
            ("memory.memsw.limit_in_bytes", "134217728"),
            ("memory.soft_limit_in_bytes", "1048576"),
            ("cpu.shares", "512"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "50000"),
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
            ("pids.max", "max"),
        ];
        let want: Vec<(String, String)> =
            want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(ws, want);
        assert!(notes.is_empty(), "{notes:?}");
        assert!(v1_writes(&res(r#"{"unified":{"memory.high":"1"}}"#), &mut notes).is_err());
        assert!(v1_writes(&res(r#"{"network":{"classID":1}}"#), &mut notes).is_err());
        assert!(
            v1_writes(&res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#), &mut notes)
                .is_err()
        );
        assert!(v1_writes(&res(r#"{"memory":{"swappiness":101}}"#), &mut notes).is_err());
    }

    #[test]
    fn v2_conversions_are_runcs() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        let mut notes = vec![];
        let r = res(
            r#"{"memory":{"limit":100,"swap":300},"cpu":{"shares":1024,"quota":-1},"pids":{"limit":12},"unified":{"memory.high":"90"}}"#,
        );
        let ws: Vec<(String, String)> =
            v2_writes(&r, &mut notes).unwrap().into_iter().map(|w| (w.file, w.value)).collect();
        let want = [
            ("memory.max", "100"),
            ("memory.swap.max", "200"),
            ("cpu.weight", "39"),
            ("cpu.max", "max 100000"),
            ("pids.max", "12"),
            ("memory.high", "90"),
        ];
        let want: Vec<(String, String)> =
            want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(ws, want);
        let cpu = v2_writes(&res(r#"{"cpu":{"quota":20000,"period":50000}}"#), &mut notes).unwrap();
        assert_eq!(cpu[0].value, "20000 50000");
        for bad in [
            r#"{"memory":{"limit":300,"swap":100}}"#,
            r#"{"memory":{"swap":100}}"#,
            r#"{"memory":{"disableOOMKiller":true}}"#,
            r#"{"unified":{"../x":"1"}}"#,
            r#"{"unified":{"cgroup.procs":"1"}}"#,
            r#"{"cpu":{"realtimeRuntime":5}}"#,
        ] {
            assert!(v2_writes(&res(bad), &mut notes).is_err(), "{bad}");
        }
    }

    /// The v2 writes land in the files, in a directory standing in for a
    /// cgroup (the kernel's own files are tested by the suites).
    #[test]
    fn v2_apply_writes_the_files() {
        let d = tmp("v2");
        for f in ["memory.max", "cpu.weight", "cpu.max", "pids.max", "cgroup.freeze"] {
            fs::write(d.join(f), "").unwrap();
        }
        let cg = Cgroup::V2 { dir: d.clone() };
        let mut r = LinuxResources::default();
        let mut m = LinuxMemory::default();
        m.set_limit(Some(64 << 20));
        m.set_swap(Some(64 << 20));
        r.set_memory(Some(m));
        let mut c = LinuxCpu::default();
        c.set_shares(Some(2048));
        c.set_quota(Some(25_000));
        r.set_cpu(Some(c));
        let mut p = LinuxPids::default();
        p.set_limit(5);
        r.set_pids(Some(p));
        let notes = cg.apply(&r).unwrap();
        // No memory.swap.max here (no swap accounting): said, not failed.
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("memory.swap.max"), "{notes:?}");
        let rd = |f: &str| fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(rd("memory.max"), (64 << 20).to_string());
        assert_eq!(rd("cpu.weight"), "79");
        assert_eq!(rd("cpu.max"), "25000 100000");
        assert_eq!(rd("pids.max"), "5");
        assert!(!cg.frozen());
        fs::write(d.join("cgroup.freeze"), "1").unwrap();
        assert!(cg.frozen());
        fs::remove_dir_all(&d).unwrap();
    }
}
