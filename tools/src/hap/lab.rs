//! The lab: a throwaway VM under QEMU (TCG) with a stock Debian kernel, for
//! hosts that refuse the function tracer.
//!
//! * The kernel: `linux-image-<version>-amd64-unsigned` (the version that
//!   `linux-image-amd64` depends on), fetched with `apt-get download` into
//!   the cache (`$XDG_CACHE_HOME/nabla/hap`, else `~/.cache/nabla/hap`),
//!   unpacked with `dpkg -x`. Its config has the function tracer and no
//!   forced lockdown. The uncompressed `vmlinux` is cut out of the bzImage
//!   (the payload after the xz, zstd or gzip magic) and booted through its
//!   PVH note, which skips the decompression TCG is slow at.
//! * The initramfs (cpio, newc): busybox-static, an `/init` that mounts
//!   what is needed, loads the modules (llc, stp, bridge, veth, tun,
//!   sch_ingress, cls_u32, act_mirred; in dependency order, as Debian ships
//!   no `modules.dep`), says which clocksource the kernel chose (the vDSO
//!   reads only the TSC's), and starts the agent (`nabla hap agent`), the workloads' programs with their
//!   shared libraries (from `ldd`) at their host paths, and the plan's
//!   files under `/hap`.
//! * QEMU: one vCPU (so the trace is in order), no network device,
//!   `-accel tcg` (KVM here is a nested PVM under which a stock kernel
//!   hangs); the console goes to `console.log` and the results to a second
//!   serial port. It is killed on every way out (drop, panic, signal: it
//!   dies with the thread that started it).

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::{Result, die_with_parent, run_tool, start_error};

/// A kernel ready to boot.
#[derive(Debug)]
pub struct Kernel {
    /// `6.1.0-56-amd64`.
    pub version: String,
    /// The Debian package version it came from.
    pub package: String,
    pub vmlinux: PathBuf,
    /// The modules the lab needs, in load order (see [`MODULES`]).
    pub modules: Vec<PathBuf>,
}

/// The modules the lab loads, in dependency order (Debian ships no
/// `modules.dep`), under `lib/modules/<version>/kernel/`: the bridge and
/// veth for the client's namespace, tun for the guests' taps, the ingress
/// qdisc, the u32 classifier and the mirred action for the tc redirect.
const MODULES: [&str; 8] = [
    "net/llc/llc.ko",
    "net/802/stp.ko",
    "net/bridge/bridge.ko",
    "drivers/net/veth.ko",
    "drivers/net/tun.ko",
    "net/sched/sch_ingress.ko",
    "net/sched/cls_u32.ko",
    "net/sched/act_mirred.ko",
];

fn module_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Runs a program for its output; a missing program names its package.
fn output(cmd: &mut Command, package: &str) -> Result<String> {
    run_tool(cmd, package).map(|out| String::from_utf8_lossy(&out).into_owned())
}

/// The cache directory.
pub fn cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("nabla/hap");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache/nabla/hap"),
        None => PathBuf::from("target/hap-cache"),
    }
}

/// The kernel version `linux-image-amd64` depends on now.
fn current_version() -> Result<String> {
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]), "apt")?;
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .filter_map(|p| p.strip_prefix("linux-image-"))
        .find(|v| v.ends_with("-amd64") && v.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| {
            "cannot find the current Debian kernel: `apt-cache depends linux-image-amd64` names \
             no linux-image-<version>-amd64 (run apt-get update, or pass --kernel-version)"
                .to_string()
        })
}

/// The kernel `version` (default: Debian's current one), from the cache or
/// downloaded into it.
pub fn kernel(version: Option<&str>) -> Result<Kernel> {
    let cache = cache_dir();
    let version = match version {
        Some(v) => v.to_string(),
        None => match current_version() {
            Ok(v) => v,
            // Offline or without apt: the newest kernel already cached will do.
            Err(e) => newest_cached(&cache).ok_or(e)?,
        },
    };
    let dir = cache.join(&version);
    let vmlinux = dir.join("vmlinux");
    let modules: Vec<PathBuf> = MODULES.iter().map(|m| dir.join(module_name(m))).collect();
    let package_file = dir.join("package");
    if vmlinux.is_file() && modules.iter().all(|m| m.is_file()) && package_file.is_file() {
        let package = fs::read_to_string(&package_file).unwrap_or_default().trim().to_string();
        return Ok(Kernel { version, package, vmlinux, modules });
    }
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = format!("linux-image-{version}-unsigned");
    eprintln!("nabla: hap: downloading {name} into {}", dir.display());
    output(Command::new("apt-get").arg("download").arg(&name).current_dir(&dir), "apt")?;
    let deb = fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {name} left no .deb in {}", dir.display()))?;
    let package = deb
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('_').nth(1))
        .unwrap_or("?")
        .to_string();
    let tree = dir.join("unpacked");
    let _ = fs::remove_dir_all(&tree);
    output(Command::new("dpkg").arg("-x").arg(&deb).arg(&tree), "dpkg")?;
    let boot = tree.join("boot");
    let config = fs::read_to_string(boot.join(format!("config-{version}")))
        .map_err(|e| format!("{name}: no config-{version}: {e}"))?;
    for needed in ["CONFIG_FUNCTION_TRACER=y", "CONFIG_FTRACE_SYSCALLS=y", "CONFIG_PVH=y"] {
        if !config.lines().any(|l| l == needed) {
            return Err(format!("{name}: the kernel's config lacks {needed}"));
        }
    }
    let bz = fs::read(boot.join(format!("vmlinuz-{version}")))
        .map_err(|e| format!("{name}: no vmlinuz-{version}: {e}"))?;
    let elf = extract_vmlinux(&bz)?;
    let tmp = dir.join("vmlinux.tmp");
    fs::write(&tmp, elf).map_err(|e| format!("{}: {e}", tmp.display()))?;
    for (m, dest) in MODULES.iter().zip(&modules) {
        let src = tree.join(format!("lib/modules/{version}/kernel/{m}"));
        fs::copy(&src, dest).map_err(|e| format!("{name}: {}: {e}", src.display()))?;
    }
    fs::rename(&tmp, &vmlinux).map_err(|e| format!("{}: {e}", vmlinux.display()))?;
    fs::write(&package_file, &package).map_err(|e| format!("{}: {e}", package_file.display()))?;
    let _ = fs::remove_dir_all(&tree);
    let _ = fs::remove_file(&deb);
    Ok(Kernel { version, package, vmlinux, modules })
}

/// The newest version in the cache with a complete kernel, if any.
fn newest_cached(cache: &Path) -> Option<String> {
    let mut versions: Vec<(std::time::SystemTime, String)> = fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("vmlinux").is_file() && e.path().join("package").is_file())
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((modified, e.file_name().to_str()?.to_string()))
        })
        .collect();
    versions.sort();
    let (_, version) = versions.pop()?;
    eprintln!("nabla: hap: apt-cache cannot tell the current kernel; using the cached {version}");
    Some(version)
}

/// The ELF inside a bzImage: the first compressed stream (xz, zstd or
/// gzip) that decompresses to an ELF, as the kernel's `extract-vmlinux`
/// script finds it.
fn extract_vmlinux(bz: &[u8]) -> Result<Vec<u8>> {
    const MAGICS: [(&[u8], &str, &[&str]); 3] = [
        (b"\xfd7zXZ\x00", "xz", &["-dc", "--single-stream"]),
        (b"\x28\xb5\x2f\xfd", "zstd", &["-dc"]),
        (b"\x1f\x8b\x08", "gzip", &["-dc"]),
    ];
    for (magic, tool, args) in MAGICS {
        let mut from = 0;
        while let Some(i) = bz[from..].windows(magic.len()).position(|w| w == magic) {
            let at = from + i;
            from = at + 1;
            let mut child = match Command::new(tool)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => c,
                Err(_) => break,
            };
            let mut stdin = child.stdin.take().expect("piped stdin");
            let data = bz[at..].to_vec();
            let writer = std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
            let out = child.wait_with_output().map_err(|e| format!("{tool}: {e}"))?;
            let _ = writer.join();
            // Trailing data makes some tools complain: the ELF is what counts.
            if out.stdout.starts_with(b"\x7fELF") {
                return Ok(out.stdout);
            }
        }
    }
    Err("cannot find the kernel inside the bzImage (no xz, zstd or gzip stream that \
         decompresses to an ELF; are xz-utils and zstd installed?)"
        .into())
}

/// The shared libraries `program` needs, from `ldd`, absolute paths.
fn libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(program).stdin(Stdio::null()).output();
    let Ok(out) = out else { return Err("ldd not found (Debian: libc-bin)".into()) };
    // Static executables make ldd fail: they need nothing.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// An initramfs under construction: a staging tree, then cpio.
#[derive(Debug)]
pub struct Initramfs {
    root: PathBuf,
    copied: BTreeSet<PathBuf>,
}

impl Initramfs {
    pub fn new(root: &Path) -> Result<Self> {
        for d in ["bin", "dev", "proc", "sys", "tmp", "etc", "hap", "lib/modules", "run"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(Self { root: root.to_path_buf(), copied: BTreeSet::new() })
    }

    /// Where the absolute path `inside` lands in the staging tree.
    pub fn staged(&self, inside: &Path) -> PathBuf {
        self.root.join(inside.strip_prefix("/").unwrap_or(inside))
    }

    /// Copies the host file `from` to `to` inside (following links).
    pub fn copy(&mut self, from: &Path, to: &Path) -> Result<()> {
        let dest = self.staged(to);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        fs::copy(from, &dest).map_err(|e| format!("{}: {e}", from.display()))?;
        self.copied.insert(to.to_path_buf());
        Ok(())
    }

    /// Copies the host program `path` to the same path inside, with its
    /// shared libraries.
    pub fn program(&mut self, path: &Path) -> Result<()> {
        if self.copied.contains(path) {
            return Ok(());
        }
        self.copy(path, path)?;
        for lib in libraries(path)? {
            if !self.copied.contains(&lib) {
                self.copy(&lib, &lib)?;
            }
        }
        Ok(())
    }

    /// Writes `contents` to `to` inside, with `mode`.
    pub fn file(&mut self, to: &Path, contents: &[u8], mode: u32) -> Result<()> {
        let dest = self.staged(to);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        fs::write(&dest, contents).map_err(|e| format!("{}: {e}", dest.display()))?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", dest.display()))
    }

    /// The busybox, the module, the init script.
    pub fn base(&mut self, kernel: &Kernel, agent: &Path) -> Result<()> {
        let busybox = Path::new("/bin/busybox");
        if !busybox.is_file() {
            return Err("/bin/busybox not found (Debian: apt-get install busybox-static)".into());
        }
        self.copy(busybox, busybox)?;
        std::os::unix::fs::symlink("busybox", self.staged(Path::new("/bin/sh")))
            .map_err(|e| format!("initramfs: /bin/sh: {e}"))?;
        let mut insmod = String::new();
        for m in &kernel.modules {
            let name = m.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let inside = PathBuf::from("/lib/modules").join(&name);
            self.copy(m, &inside)?;
            insmod.push_str(&format!("insmod {}\n", inside.display()));
        }
        self.program(agent)?;
        self.file(
            Path::new("/etc/passwd"),
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            0o644,
        )?;
        self.file(Path::new("/etc/group"), b"root:x:0:\nnogroup:x:65534:\n", 0o644)?;
        let init = format!(
            "#!/bin/sh\n\
             # Written by `nabla hap`: the lab VM's init.\n\
             /bin/busybox --install -s /bin\n\
             export PATH=/bin:/usr/bin:/sbin:/usr/sbin\n\
             mount -t proc proc /proc\n\
             mount -t sysfs sys /sys\n\
             mount -t devtmpfs dev /dev\n\
             mount -t tracefs tracefs /sys/kernel/tracing\n\
             mkdir -p /tmp\n\
             mkdir -p /run/netns\n\
             echo \"nabla-hap-clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)\"\n\
             {insmod}\
             {} hap agent /hap/plan.json /dev/ttyS1\n\
             echo \"nabla-hap-agent-exit $?\"\n\
             poweroff -f\n",
            agent.display()
        );
        self.file(Path::new("/init"), init.as_bytes(), 0o755)
    }

    /// Packs the tree as a newc cpio archive at `out`.
    pub fn pack(&self, out: &Path) -> Result<()> {
        let mut list = Vec::new();
        collect(&self.root, Path::new("."), &mut list)?;
        list.sort();
        let file = fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let mut child = Command::new("cpio")
            .args(["-o", "-H", "newc", "--quiet"])
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(file)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run cpio (Debian: apt-get install cpio): {e}"))?;
        let names: String = list.iter().map(|p| format!("{}\n", p.display())).collect();
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(names.as_bytes())
            .map_err(|e| format!("cpio: {e}"))?;
        let out = child.wait_with_output().map_err(|e| format!("cpio: {e}"))?;
        if !out.status.success() {
            return Err(format!("cpio: {}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }
}

fn collect(root: &Path, rel: &Path, list: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let rel = rel.join(entry.file_name());
        list.push(rel.clone());
        let ty = entry.file_type().map_err(|e| format!("{}: {e}", rel.display()))?;
        if ty.is_dir() {
            collect(root, &rel, list)?;
        }
    }
    Ok(())
}

/// QEMU, killed on drop.
struct Vm(Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots `kernel` with `initrd` and waits for it to power off (at most
/// `timeout`); returns the results port's text. The console goes to
/// `console`.
pub fn boot(
    kernel: &Kernel,
    initrd: &Path,
    console: &Path,
    results: &Path,
    memory_mib: u32,
    timeout: Duration,
) -> Result<String> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", &memory_mib.to_string()])
        .args(["-display", "none", "-monitor", "none", "-no-reboot", "-nic", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()))
        .arg("-kernel")
        .arg(&kernel.vmlinux)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let child = cmd.spawn().map_err(start_error("qemu-system-x86_64", "qemu-system-x86"))?;
    let mut vm = Vm(child);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = vm.0.try_wait().map_err(|e| format!("qemu: {e}"))? {
            break s;
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "the lab VM did not finish in {} s (killed); its console is in {}",
                timeout.as_secs(),
                console.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = vm.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    if !status.success() {
        return Err(format!("qemu-system-x86_64: {status}: {}", err.trim()));
    }
    fs::read_to_string(results).map_err(|e| format!("{}: {e}", results.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_elf_after_the_stub() {
        let mut elf = b"\x7fELF".to_vec();
        elf.extend((0..5000u32).map(|i| (i % 251) as u8));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&elf).unwrap();
        let gz = gz.finish().unwrap();
        // A setup stub (with a false gzip magic in it), the stream, trailing data.
        let mut bz = b"MZ stub \x1f\x8b\x08 not a stream ".to_vec();
        bz.extend_from_slice(&gz);
        bz.extend_from_slice(b"trailer");
        if Command::new("gzip").arg("--version").stdout(Stdio::null()).status().is_ok() {
            assert_eq!(extract_vmlinux(&bz).unwrap(), elf);
        }
        assert!(extract_vmlinux(b"no kernel here").is_err());
    }

    #[test]
    fn modules_in_dependency_order() {
        let names: Vec<&str> = MODULES.iter().map(|m| module_name(m)).collect();
        assert_eq!(
            names,
            [
                "llc.ko",
                "stp.ko",
                "bridge.ko",
                "veth.ko",
                "tun.ko",
                "sch_ingress.ko",
                "cls_u32.ko",
                "act_mirred.ko"
            ]
        );
    }
}
