//! nabla-runc: an OCI runtime that runs nabla images under the tender.
//!
//! Its command line follows runc's, so that containerd's runc shim
//! (`BinaryName`, or `ctr run --runc-binary`), podman (`--runtime`) and,
//! through them, Kubernetes (a `RuntimeClass`) drive it:
//!
//! ```text
//! nabla-runc [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND
//!   create --bundle DIR [--pid-file FILE] [--console-socket SOCK] ID
//!   start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID
//!   pause ID | resume ID | update [--resources FILE|-] [FLAGS] ID
//!   events --stats ID | run [--bundle DIR] [--detach] ... ID | ps ID | list | features
//! ```
//!
//! `create` turns the bundle into a tender invocation (see `bundle`, `net`,
//! `disk`) and leaves the container process waiting on an exec fifo
//! (`process`); `start` releases it and it execs the tender, which runs the
//! guest. The tender and `nabla` (for the disk) are found next to this
//! binary. See docs/oci.md.

#![deny(unsafe_op_in_unsafe_fn)]

mod bundle;
mod cgroup;
mod container;
mod disk;
mod log;
mod net;
mod process;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, Parser, Subcommand};
use oci_spec::runtime::State;

use crate::bundle::NetNs;
use crate::container::{Dir, Record, Status};
use crate::log::Log;

/// What went wrong, said to the caller.
#[derive(Debug)]
pub struct Error(pub String);

/// The OCI runtime spec versions this runtime reads.
const OCI_VERSION_MIN: &str = "1.0.0";
const OCI_VERSION: &str = "1.2.0";

/// An OCI runtime for nabla images: runs them under the tender.
#[derive(Debug, Parser)]
#[command(name = "nabla-runc", version, about, long_about = None)]
struct Cli {
    /// Directory for the containers' state.
    #[arg(long, global = true, default_value = "/run/nabla-runc")]
    root: PathBuf,
    /// Appends log records to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the log records.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: log::Format,
    /// Logs debug records too.
    #[arg(long, global = true)]
    debug: bool,
    /// linux.cgroupsPath is systemd's `slice:prefix:name` (docs/oci.md).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// runc's: accepted for compatibility, unused.
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    /// runc's: accepted for compatibility, unused.
    #[arg(long, global = true, hide = true)]
    rootless: Option<String>,
    /// The largest disk create makes for a container, in MiB (the
    /// org.nabla.disk.size-mib annotation and disks made from the rootfs).
    #[arg(long, global = true, env = "NABLA_RUNC_DISK_MAX_MIB", default_value_t = 4096, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    disk_max_mib: u64,
    /// How long making a container's disk from its rootfs may take, in
    /// seconds, before create stops it and fails.
    #[arg(long, global = true, env = "NABLA_RUNC_DISK_TIMEOUT", default_value_t = 120, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    disk_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The container's id.
    id: String,
    /// The bundle directory (config.json and the rootfs).
    #[arg(long, short, default_value = ".")]
    bundle: PathBuf,
    /// Writes the container process's pid to this file.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// A Unix socket to send the console's pty master to (process.terminal).
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Passes this many fds after stdio (3, 4, ...) to the container process.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// runc's: accepted, nothing to do (no pivot_root here).
    #[arg(long, hide = true)]
    no_pivot: bool,
    /// runc's: accepted, nothing to do (no session keyring here).
    #[arg(long, hide = true)]
    no_new_keyring: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates a container: its process waits for `start`.
    Create(CreateArgs),
    /// Starts a created container: the tender runs the guest.
    Start { id: String },
    /// Prints the container's state (OCI runtime spec JSON).
    State { id: String },
    /// Sends a signal (default SIGTERM) to the container's process.
    Kill {
        id: String,
        /// A number or a name, with or without SIG.
        signal: Option<String>,
        /// All the container's processes (there is one).
        #[arg(long, short)]
        all: bool,
    },
    /// Deletes a stopped container and what create made for it.
    Delete {
        id: String,
        /// Kills it first if it still runs; an unknown id is not an error.
        #[arg(long, short)]
        force: bool,
    },
    /// Creates and starts a container; without --detach, waits for it,
    /// deletes it and exits with its status.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(long, short)]
        detach: bool,
    },
    /// Lists the container's processes.
    Ps {
        id: String,
        #[arg(long, short, default_value = "table")]
        format: String,
    },
    /// Lists the containers.
    List {
        #[arg(long, short)]
        quiet: bool,
    },
    /// Prints what this runtime supports (OCI runtime features JSON).
    Features,
    /// Refused: a nabla guest is one process.
    #[command(disable_help_flag = true)]
    Exec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Freezes the container's cgroup.
    Pause { id: String },
    /// Thaws a paused container's cgroup.
    Resume { id: String },
    /// Changes the container's cgroup limits.
    Update(Box<UpdateArgs>),
    /// Prints the container's cgroup usage (runc's stats event, JSON).
    Events {
        id: String,
        /// One stats record, then exit (the only form supported).
        #[arg(long)]
        stats: bool,
        /// runc's: the interval between stats records.
        #[arg(long, default_value = "5s")]
        interval: String,
    },
}

/// runc's `update` flags; `--resources` is a LinuxResources JSON file (`-`:
/// stdin), which containerd's shim passes. Memory values take runc's units
/// (`512m`, `1g`).
#[derive(Debug, Args)]
struct UpdateArgs {
    id: String,
    #[arg(long, short)]
    resources: Option<PathBuf>,
    #[arg(long)]
    blkio_weight: Option<u16>,
    #[arg(long)]
    cpu_period: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_share: Option<u64>,
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    #[arg(long)]
    cpuset_mems: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pids_limit: Option<i64>,
    #[arg(long, allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    #[arg(long)]
    l3_cache_schema: Option<String>,
    #[arg(long)]
    mem_bw_schema: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = Log::new(cli.log.clone(), cli.log_format, cli.debug);
    match dispatch(&cli, &log) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&e.0);
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: &Cli, log: &Log) -> Result<u8, Error> {
    let root = &cli.root;
    let disks = disk::Settings {
        max_mib: cli.disk_max_mib,
        timeout: Duration::from_secs(cli.disk_timeout),
    };
    let cg = CgroupOpts { systemd: cli.systemd_cgroup };
    match &cli.command {
        Command::Create(a) => create(root, a, true, disks, cg, log).map(|_| 0),
        Command::Start { id } => start(root, id).map(|_| 0),
        Command::State { id } => state(root, id).map(|_| 0),
        Command::Kill { id, signal, all } => kill(root, id, signal.as_deref(), *all).map(|_| 0),
        Command::Delete { id, force } => delete(root, id, *force, log).map(|_| 0),
        Command::Run { create: a, detach } => run(root, a, *detach, disks, cg, log),
        Command::Ps { id, format } => ps(root, id, format).map(|_| 0),
        Command::List { quiet } => list(root, *quiet).map(|_| 0),
        Command::Features => features().map(|_| 0),
        Command::Exec { .. } => Err(Error(
            "exec is not supported: a nabla container is one guest in one process, with nothing to exec into".into(),
        )),
        Command::Pause { id } => pause(root, id, true).map(|_| 0),
        Command::Resume { id } => pause(root, id, false).map(|_| 0),
        Command::Update(a) => update(root, a, log).map(|_| 0),
        Command::Events { id, stats, interval: _ } => events(root, id, *stats).map(|_| 0),
    }
}

/// `name` in the directory of this executable (the tender, `nabla`).
pub fn sibling(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|e| Error(format!("current_exe: {e}")))?;
    let p = exe.with_file_name(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error(format!(
            "{} not found: nabla-runc runs the {name} installed next to it",
            p.display()
        )))
    }
}

/// How `linux.cgroupsPath` is read.
#[derive(Debug, Clone, Copy)]
struct CgroupOpts {
    systemd: bool,
}

/// Undoes a `create` that fails part-way: taps, disk, cgroup, state
/// directory.
struct Undo {
    dir: PathBuf,
    wirings: Vec<net::Wiring>,
    disk: Option<disk::Made>,
    cgroup: Option<cgroup::Cgroup>,
    done: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        net::unwire(&self.wirings);
        if let Some(d) = &self.disk {
            let _ = fs::remove_dir_all(&d.dir);
        }
        if let Some(c) = &self.cgroup {
            let _ = c.remove();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Makes the container's cgroup and writes its limits. Without a
/// `cgroupsPath`, a host where cgroups cannot be made (read-only, no
/// permission) gets a warning and a container without one.
fn make_cgroup(
    plan: &bundle::Plan,
    id: &str,
    opts: CgroupOpts,
    log: &Log,
) -> Result<Option<cgroup::Cgroup>, Error> {
    let explicit = plan.cgroups_path.as_deref().is_some_and(|p| !p.is_empty()) || opts.systemd;
    let (absolute, inner) = cgroup::inner_path(plan.cgroups_path.as_deref(), opts.systemd, id)?;
    if inner.as_os_str().is_empty() {
        return Err(Error(format!(
            "linux.cgroupsPath {:?} names the hierarchy's root or the runtime's own cgroup: a container needs a cgroup of its own",
            plan.cgroups_path.as_deref().unwrap_or("")
        )));
    }
    let located = cgroup::detect().map(|h| cgroup::Cgroup::locate(&h, absolute, &inner));
    let cg = match located {
        Ok(cg) => cg,
        Err(e) if !explicit => {
            log.warn(&format!("no cgroup for the container: {}", e.0));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if cg.exists() && explicit {
        // runc joins an existing cgroup; nabla-runc would remove it at
        // delete, so it must be the container's own.
        let pids = cg.pids();
        if !pids.is_empty() {
            return Err(Error(format!(
                "cgroup {} already holds processes {pids:?}: a container's cgroup is its own",
                inner.display()
            )));
        }
    }
    if let Err(e) = cg.make() {
        if !explicit {
            log.warn(&format!("no cgroup for the container: {}", e.0));
            return Ok(None);
        }
        return Err(e);
    }
    if let Some(r) = &plan.resources {
        match cg.apply(r) {
            Ok(notes) => {
                for n in notes {
                    log.warn(&n);
                }
            }
            Err(e) => {
                let _ = cg.remove();
                return Err(e);
            }
        }
    }
    Ok(Some(cg))
}

fn create(
    root: &Path,
    a: &CreateArgs,
    detach: bool,
    disks: disk::Settings,
    cg_opts: CgroupOpts,
    log: &Log,
) -> Result<(Dir, Record), Error> {
    let dir = Dir::new(root, &a.id)?;
    if dir.path.exists() {
        return Err(Error(format!("container {} already exists", a.id)));
    }
    let plan = bundle::plan(&a.bundle, log)?;
    if plan.terminal && a.console_socket.is_none() && detach {
        return Err(Error(
            "process.terminal is set but no --console-socket was given to send the console to"
                .into(),
        ));
    }
    fs::create_dir_all(root).map_err(|e| Error(format!("{}: {e}", root.display())))?;
    // Held until create is done: start, kill and delete wait for it.
    let _lock = dir.create_locked(&a.id)?;
    let mut undo =
        Undo { dir: dir.path.clone(), wirings: Vec::new(), disk: None, cgroup: None, done: false };
    undo.cgroup = make_cgroup(&plan, &a.id, cg_opts, log)?;

    let tender = sibling("tender")?;
    let mut argv = vec![tender.display().to_string()];
    if let Some(m) = plan.mem_mib {
        argv.extend(["--mem".into(), m.to_string()]);
    }
    if !plan.env.is_empty() {
        // In a file only the guest's user can read, not on the tender's
        // command line, which every user of the host can (`ps`).
        let file = dir.path.join("env");
        // NUL-terminated entries: values may hold line breaks.
        let entries: String = plan.env.iter().map(|kv| format!("{kv}\0")).collect();
        write_private(&file, &entries)?;
        chown(&file, plan.uid, plan.gid)?;
        argv.extend(["--env-file".into(), file.display().to_string()]);
    }

    for (name, source) in &plan.etc_files {
        // Read now, as root, and handed to the tender (which runs as the
        // container's user) in a private copy: the engine's file may be
        // in a directory that user cannot reach.
        let bytes = read_etc_file(source)?;
        let file = dir.path.join(format!("etc-{name}"));
        write_private_bytes(&file, &bytes)?;
        chown(&file, plan.uid, plan.gid)?;
        argv.extend(["--etc".into(), format!("{name}={}", file.display())]);
    }
    for v in &plan.volumes {
        let opt = if v.read_only { "--block-ro" } else { "--block" };
        argv.extend([opt.into(), format!("{}={}", v.device, v.source.display())]);
    }
    let blocks: Vec<_> = plan
        .devices_of("block")
        .filter(|d| !plan.volumes.iter().any(|v| v.device == d.name))
        .collect();
    if blocks.len() > 1 {
        return Err(Error(format!(
            "the image declares {} block devices without a volume ({}): nabla-runc makes one disk, from the rootfs; bind disk files at {} for the others",
            blocks.len(),
            blocks.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", "),
            blocks
                .iter()
                .map(|d| format!("{}{}", bundle::VOLUME_DIR, d.name))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(dev) = blocks.first() {
        let made = disk::make(&plan, root, &dir.path, &a.id, disks, log)?;
        let img = made.image.clone();
        undo.disk = Some(made);
        let opt = if plan.rootfs_readonly { "--block-ro" } else { "--block" };
        argv.extend([opt.into(), format!("{}={}", dev.name, img.display())]);
        log.debug(&format!("disk {} for {}", img.display(), dev.name));
    }

    let nets: Vec<&str> = plan.devices_of("net").map(|d| d.name.as_str()).collect();
    let netns_path = match &plan.netns {
        NetNs::Path(p) => {
            net::enter(p)?;
            Some(p.clone())
        }
        NetNs::Host | NetNs::New => None,
    };
    if !nets.is_empty() {
        match &plan.netns {
            NetNs::Host => {
                return Err(Error(format!(
                    "the image declares net device {}, but the container would share the host's network namespace: nabla-runc wires only a container's own (give it one, e.g. ctr run --with-ns network:PATH, podman --network ns:PATH)",
                    nets.join(", ")
                )));
            }
            NetNs::New => {
                return Err(Error(format!(
                    "the image declares net device {}, but the container gets a new, empty network namespace: give it one with an interface (a CNI network, or ctr run --with-ns network:PATH)",
                    nets.join(", ")
                )));
            }
            NetNs::Path(_) => {
                let guest = net::wire(&nets, plan.uid, plan.gid)?;
                undo.wirings = guest.iter().map(|g| g.wiring.clone()).collect();
                for g in &guest {
                    log.debug(&format!("{:?}", g));
                    argv.extend(g.tender_args());
                }
            }
        }
    }
    argv.push(plan.binary.display().to_string());
    argv.extend(plan.args.iter().cloned());
    if plan.sandbox {
        log.debug("a pod sandbox: the process waits for its end, no guest");
    } else {
        log.debug(&format!("tender: {argv:?}"));
    }

    make_fifo(&dir.fifo())?;
    // The process opens it after it has become the container's user.
    chown(&dir.fifo(), plan.uid, plan.gid)?;
    let pid = process::spawn(&process::Spawn {
        argv,
        fifo: dir.fifo(),
        new_netns: plan.netns == NetNs::New,
        console_socket: a.console_socket.clone(),
        detach,
        uid: plan.uid,
        gid: plan.gid,
        groups: plan.additional_gids.clone(),
        rlimits: plan.rlimits.clone(),
        preserve_fds: a.preserve_fds,
        pause: plan.sandbox,
    })?;
    // Into the cgroup, with its oom_score_adj, while it waits for start:
    // the tender it becomes, and so the guest, run there from their first
    // instruction.
    let joined = undo.cgroup.as_ref().map_or(Ok(()), |c| c.join(pid)).and_then(|()| {
        match plan.oom_score_adj {
            Some(v) => fs::write(format!("/proc/{pid}/oom_score_adj"), v.to_string()).map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    // As runc, which fails the same way.
                    ": lowering it needs CAP_SYS_RESOURCE, which this runtime lacks (containerd's CRI plugin clamps it with restrict_oom_score_adj = true)"
                } else {
                    ""
                };
                Error(format!("oom_score_adj {v}: {e}{hint}"))
            }),
            None => Ok(()),
        }
    });
    if let Err(e) = joined {
        // SAFETY: killing the process we just made.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_gone(pid, container::proc_stat(pid).map(|(_, t)| t).unwrap_or(0));
        return Err(e);
    }
    let start_time = container::proc_stat(pid).map(|(_, t)| t).unwrap_or(0);
    let record = Record {
        id: a.id.clone(),
        bundle: plan.bundle.clone(),
        pid,
        start_time,
        created: log::rfc3339(SystemTime::now()),
        annotations: plan.annotations.clone(),
        netns: netns_path,
        wirings: undo.wirings.clone(),
        disk: undo.disk.as_ref().map(|d| d.image.clone()),
        disk_dir: undo.disk.as_ref().map(|d| d.dir.clone()),
        cgroup: undo.cgroup.clone(),
        mem_mib: plan.mem_mib,
    };
    let saved = dir.save(&record).and_then(|()| match &a.pid_file {
        Some(p) => write_pid_file(p, pid),
        None => Ok(()),
    });
    if let Err(e) = saved {
        // SAFETY: killing the process we just made.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_gone(pid, start_time);
        return Err(e);
    }
    undo.done = true;
    Ok((dir, record))
}

/// Writes `text` to a new file at `p` that only its owner can read.
fn write_private(p: &Path, text: &str) -> Result<(), Error> {
    write_private_bytes(p, text.as_bytes())
}

fn write_private_bytes(p: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error(format!("{}: {e}", p.display())))
}

/// The most the tender takes of an `/etc` file (`abi::ETC_FILE_MAX`).
const ETC_FILE_MAX: u64 = 64 * 1024;

/// An engine's `/etc` file, read whole: refused if larger than the guest
/// takes (an engine's hosts, hostname or resolv.conf is a few hundred
/// bytes).
fn read_etc_file(p: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs::File::open(p)
        .and_then(|f| f.take(ETC_FILE_MAX + 1).read_to_end(&mut bytes))
        .map_err(|e| Error(format!("{}: {e}", p.display())))?;
    if bytes.len() as u64 > ETC_FILE_MAX {
        return Err(Error(format!(
            "{}: larger than the {ETC_FILE_MAX} bytes a guest's /etc file may hold",
            p.display()
        )));
    }
    Ok(bytes)
}

pub(crate) fn chown(p: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    if uid == 0 && gid == 0 {
        return Ok(());
    }
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .map_err(|e| Error(format!("{}: chown: {e}", p.display())))
}

fn make_fifo(p: &Path) -> Result<(), Error> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error(format!("{}: NUL in path", p.display())))?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(Error(format!("{}: mkfifo: {}", p.display(), std::io::Error::last_os_error())));
    }
    Ok(())
}

/// Written whole before it appears under its name, as runc does: the caller
/// may read it the moment `create` returns. The temporary file is new
/// (`O_EXCL`, so never an existing file or a symbolic link planted at its
/// name) and has a name of its own; the rename replaces whatever is at `p`
/// without following it.
fn write_pid_file(p: &Path, pid: i32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| Error(format!("pid file {}: {e}", p.display()));
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let nanos = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    for attempt in 0..100u32 {
        let tmp = p.with_file_name(format!(
            ".{name}.{}-{}-{attempt}.tmp",
            std::process::id(),
            nanos.subsec_nanos()
        ));
        let mut f = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(e)),
        };
        let written = f.write_all(pid.to_string().as_bytes()).and_then(|()| fs::rename(&tmp, p));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        return written.map_err(err);
    }
    Err(Error(format!("pid file {}: no free temporary name next to it", p.display())))
}

fn start(root: &Path, id: &str) -> Result<(), Error> {
    let dir = Dir::new(root, id)?;
    let _lock = dir.lock(id, container::LOCK_WAIT)?;
    let r = dir.load(id)?;
    // runc's wording.
    match dir.status(&r) {
        Status::Created => {}
        Status::Running => {
            return Err(Error("cannot start an already running container".into()));
        }
        Status::Stopped => {
            return Err(Error("cannot start a container that has stopped".into()));
        }
        s => return Err(Error(format!("cannot start a container in the {s} state"))),
    }
    process::release(&dir.fifo(), || container::alive(r.pid, r.start_time))?;
    let _ = fs::remove_file(dir.fifo());
    Ok(())
}

fn oci_state(dir: &Dir, r: &Record) -> State {
    let status = dir.status(r);
    let mut s = State::default();
    s.set_version(OCI_VERSION.into());
    s.set_id(r.id.clone());
    s.set_status(status.oci());
    s.set_pid((status != Status::Stopped).then_some(r.pid));
    s.set_bundle(r.bundle.clone());
    s.set_annotations((!r.annotations.is_empty()).then(|| r.annotations.clone()));
    s
}

fn state(root: &Path, id: &str) -> Result<(), Error> {
    let dir = Dir::new(root, id)?;
    let r = dir.load(id)?;
    let mut v = serde_json::to_value(oci_state(&dir, &r)).map_err(|e| Error(e.to_string()))?;
    // runc's extra field, which podman reads.
    v["created"] = r.created.clone().into();
    // runc's status, which the spec's type lacks.
    v["status"] = dir.status(&r).to_string().into();
    println!("{}", serde_json::to_string_pretty(&v).map_err(|e| Error(e.to_string()))?);
    Ok(())
}

/// A signal by number or name (`9`, `KILL`, `SIGKILL`, `sigkill`).
fn parse_signal(s: &str) -> Result<i32, Error> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(Error(format!("invalid signal {s:?}")));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(Error(format!("invalid signal {s:?}"))),
    };
    Ok(n)
}

/// runc's `kill`: a stopped container is an error without `--all`, worded
/// as runc's (`container not running`, which containerd's shim tolerates),
/// and nothing to do with it (exit 0), as runc's `kill --all` does.
fn kill(root: &Path, id: &str, signal: Option<&str>, all: bool) -> Result<(), Error> {
    let sig = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let dir = Dir::new(root, id)?;
    let _lock = dir.lock(id, container::LOCK_WAIT)?;
    let r = dir.load(id)?;
    let status = dir.status(&r);
    if status == Status::Stopped {
        if all {
            return Ok(());
        }
        return Err(Error("container not running".into()));
    }
    if all && let Some(cg) = &r.cgroup {
        // Every process of the cgroup, as runc's kill --all: frozen while
        // signalled (no process escapes by forking), thawed after unless
        // the container was paused (a paused one thaws for SIGKILL).
        let was_frozen = status == Status::Paused;
        // Without a freezer (not mounted), signalled as they are.
        let froze = cg.freeze(true).is_ok();
        for p in cg.pids() {
            // SAFETY: a signal to a process of the container's cgroup.
            unsafe { libc::kill(p, sig) };
        }
        if froze && (!was_frozen || sig == libc::SIGKILL) {
            cg.freeze(false)?;
        }
        return Ok(());
    }
    // SAFETY: a signal to the container's process, checked alive just now.
    if unsafe { libc::kill(r.pid, sig) } != 0 {
        return Err(Error(format!("kill {}: {}", r.pid, std::io::Error::last_os_error())));
    }
    if status == Status::Paused
        && sig == libc::SIGKILL
        && let Some(cg) = &r.cgroup
    {
        // A frozen process does not die until thawed.
        cg.freeze(false)?;
    }
    Ok(())
}

/// Waits (at most 10 s) until `pid` has gone.
fn wait_gone(pid: i32, start_time: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while container::alive(pid, start_time) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// `pause` (`freeze`) and `resume`, through the cgroup freezer, in runc's
/// terms: only a created or running container pauses, only a paused one
/// resumes.
fn pause(root: &Path, id: &str, freeze: bool) -> Result<(), Error> {
    let dir = Dir::new(root, id)?;
    let _lock = dir.lock(id, container::LOCK_WAIT)?;
    let r = dir.load(id)?;
    let status = dir.status(&r);
    if freeze && !matches!(status, Status::Running | Status::Created) {
        return Err(Error("container not running".into()));
    }
    if !freeze && status != Status::Paused {
        return Err(Error("container not paused".into()));
    }
    let cg = r.cgroup.as_ref().ok_or_else(|| {
        Error(format!(
            "container {id} has no cgroup (it was created without one): nothing to freeze"
        ))
    })?;
    cg.freeze(freeze)
}

fn delete(root: &Path, id: &str, force: bool, log: &Log) -> Result<(), Error> {
    let dir = Dir::new(root, id)?;
    let _lock = dir.lock(id, container::LOCK_WAIT)?;
    let r = match dir.load(id) {
        Ok(r) => r,
        // containerd's shim deletes twice; an unknown id is gone already.
        Err(_) if force && !dir.exists() => {
            let _ = fs::remove_dir_all(&dir.path);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // runc's: a stopped container is deleted, a created one killed and
    // deleted, a running or paused one only with --force.
    match dir.status(&r) {
        s @ (Status::Running | Status::Paused) if !force => {
            return Err(Error(format!("cannot delete container {id} that is not stopped: {s}")));
        }
        Status::Stopped => {}
        _ => {
            // SAFETY: the container's process, alive as just checked.
            unsafe { libc::kill(r.pid, libc::SIGKILL) };
            if let Some(cg) = &r.cgroup {
                for p in cg.pids() {
                    // SAFETY: a process of the container's cgroup.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
                // A frozen process dies only once thawed.
                let _ = cg.freeze(false);
            }
            if !wait_gone(r.pid, r.start_time) {
                return Err(Error(format!(
                    "container {id}: process {} survived SIGKILL for 10 s",
                    r.pid
                )));
            }
        }
    }
    cleanup(&dir, &r, log);
    Ok(())
}

/// Takes down the network wiring, the disk and the state directory.
fn cleanup(dir: &Dir, r: &Record, log: &Log) {
    if let Some(ns) = &r.netns
        && !r.wirings.is_empty()
    {
        match net::enter(ns) {
            Ok(()) => net::unwire(&r.wirings),
            // The engine may have removed the namespace first: with it
            // went the taps.
            Err(e) => log.debug(&format!("not unwiring: {}", e.0)),
        }
    }
    if let Some(d) = &r.disk {
        let _ = fs::remove_file(d);
    }
    if let Some(d) = &r.disk_dir {
        let _ = fs::remove_dir_all(d);
    }
    if let Some(cg) = &r.cgroup
        && let Err(e) = cg.remove()
    {
        log.warn(&format!("the container's cgroup stays: {}", e.0));
    }
    let _ = fs::remove_dir_all(&dir.path);
}

/// The process that `run` waits for, for the signal handler to forward to.
static RUN_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = RUN_PID.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

fn run(
    root: &Path,
    a: &CreateArgs,
    detach: bool,
    disks: disk::Settings,
    cg: CgroupOpts,
    log: &Log,
) -> Result<u8, Error> {
    let (dir, r) = create(root, a, detach, disks, cg, log)?;
    if let Err(e) = start(root, &a.id) {
        let _ = delete(root, &a.id, true, log);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    RUN_PID.store(r.pid, std::sync::atomic::Ordering::Relaxed);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing a handler that only calls kill.
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let w = unsafe { libc::waitpid(r.pid, &mut status, 0) };
        if w == r.pid {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(Error(format!("waitpid: {}", std::io::Error::last_os_error())));
        }
    }
    // Unless a delete --force got there first.
    if let Ok(Some(_lock)) = dir.lock(&a.id, container::LOCK_WAIT)
        && dir.exists()
    {
        cleanup(&dir, &r, log);
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else {
        128u8.wrapping_add(libc::WTERMSIG(status) as u8)
    })
}

/// A byte count as runc's flags take it: a number with an optional unit
/// (`k`, `m`, `g`, `t`, `p`, powers of 1024, with or without `b`/`ib`);
/// `-1` is unlimited.
fn parse_bytes(s: &str) -> Result<i64, Error> {
    let bad = || {
        Error(format!("invalid size {s:?}: a number of bytes with an optional unit (k, m, g, t)"))
    };
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let digits = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as i64)
}

/// The resources `update` asks for: `--resources` (a LinuxResources JSON
/// file, `-` for stdin), then the flags on top, as runc reads them.
fn update_resources(a: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources, Error> {
    use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
    let mut r: LinuxResources = match &a.resources {
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                    .map_err(|e| Error(format!("--resources -: {e}")))?;
                v
            } else {
                fs::read(p).map_err(|e| Error(format!("--resources {}: {e}", p.display())))?
            };
            serde_json::from_slice(&text)
                .map_err(|e| Error(format!("--resources: not a LinuxResources JSON object: {e}")))?
        }
        None => LinuxResources::default(),
    };
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        return Err(Error(
            "--l3-cache-schema and --mem-bw-schema (Intel RDT) are not supported".into(),
        ));
    }
    let mut mem = r.memory().unwrap_or_default();
    if let Some(v) = &a.memory {
        mem.set_limit(Some(parse_bytes(v)?));
    }
    if let Some(v) = &a.memory_swap {
        mem.set_swap(Some(parse_bytes(v)?));
    }
    if let Some(v) = &a.memory_reservation {
        mem.set_reservation(Some(parse_bytes(v)?));
    }
    if let Some(v) = &a.kernel_memory {
        mem.set_kernel(Some(parse_bytes(v)?));
    }
    if let Some(v) = &a.kernel_memory_tcp {
        mem.set_kernel_tcp(Some(parse_bytes(v)?));
    }
    if mem != LinuxMemory::default() {
        r.set_memory(Some(mem));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    if let Some(v) = a.cpu_share {
        cpu.set_shares(Some(v));
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
    }
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
    }
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }
    if let Some(v) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
    if let Some(v) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(v));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// The guest's arena, MiB, when the config set no limit: the tender's
/// default.
const TENDER_DEFAULT_MEM_MIB: u64 = 64;

/// `update`: writes the new limits to the container's cgroup. The guest's
/// arena was fixed when it started: a memory limit below what it and the
/// tender need is refused (the guest would be OOM-killed when it used its
/// memory), and a larger one is applied with a warning that the guest
/// gets no more memory until it is started again.
fn update(root: &Path, a: &UpdateArgs, log: &Log) -> Result<(), Error> {
    let res = update_resources(a)?;
    let dir = Dir::new(root, &a.id)?;
    let _lock = dir.lock(&a.id, container::LOCK_WAIT)?;
    let r = dir.load(&a.id)?;
    if dir.status(&r) == Status::Stopped {
        return Err(Error("container not running".into()));
    }
    let cg = r.cgroup.as_ref().ok_or_else(|| {
        Error(format!(
            "container {} has no cgroup (it was created without one): nothing to update",
            a.id
        ))
    })?;
    let sandbox = bundle::is_sandbox(&r.annotations);
    if let Some(l) = res.memory().as_ref().and_then(|m| m.limit()).filter(|l| *l > 0)
        && !sandbox
    {
        let arena = r.mem_mib.unwrap_or(TENDER_DEFAULT_MEM_MIB);
        let needed = bundle::limit_for_arena(arena);
        if (l as u64) < needed << 20 {
            return Err(Error(format!(
                "memory limit {l} bytes is below the {needed} MiB the running guest needs: its memory ({arena} MiB) was fixed when it started, and the tender takes the rest; start it again with the new limit"
            )));
        }
        let arena_then = bundle::arena_mib(l).unwrap_or(0);
        if arena_then != arena {
            log.warn(&format!(
                "memory limit {l} bytes applied to the cgroup; the guest keeps its {arena} MiB until it is started again (it would get {arena_then} MiB)"
            ));
        }
    }
    for n in cg.apply(&res)? {
        log.warn(&n);
    }
    Ok(())
}

/// `events --stats`: one runc stats record of the container's cgroup.
fn events(root: &Path, id: &str, stats: bool) -> Result<(), Error> {
    if !stats {
        return Err(Error(
            "events without --stats is not supported: nabla-runc reports no OOM or other events; use --stats".into(),
        ));
    }
    let dir = Dir::new(root, id)?;
    let r = dir.load(id)?;
    if dir.status(&r) == Status::Stopped {
        // runc's wording for events.
        return Err(Error(format!("container with id {id} is not running")));
    }
    let cg = r.cgroup.as_ref().ok_or_else(|| {
        Error(format!("container {id} has no cgroup (it was created without one): no stats"))
    })?;
    let s = cg.stats();
    let v = serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": { "usage": { "total": s.cpu_usage_ns.unwrap_or(0) } },
            "memory": { "usage": {
                "usage": s.memory_usage.unwrap_or(0),
                "max": s.memory_max_usage.unwrap_or(0),
                "limit": s.memory_limit.unwrap_or(0),
                "failcnt": s.memory_failcnt.unwrap_or(0),
            } },
            "pids": { "current": s.pids.unwrap_or(0) },
        }
    });
    println!("{v}");
    Ok(())
}

fn ps(root: &Path, id: &str, format: &str) -> Result<(), Error> {
    let dir = Dir::new(root, id)?;
    let r = dir.load(id)?;
    let pids: Vec<i32> = match (&r.cgroup, dir.status(&r)) {
        (Some(cg), _) => cg.pids(),
        (None, Status::Stopped) => vec![],
        (None, _) => vec![r.pid],
    };
    match format {
        "json" => println!("{}", serde_json::to_string(&pids).unwrap_or_default()),
        "table" => {
            println!("PID");
            for p in pids {
                println!("{p}");
            }
        }
        f => return Err(Error(format!("invalid format {f:?}: table or json"))),
    }
    Ok(())
}

fn list(root: &Path, quiet: bool) -> Result<(), Error> {
    let mut ids: Vec<String> = match fs::read_dir(root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(Error(format!("{}: {e}", root.display()))),
    };
    ids.sort();
    if !quiet {
        println!("{:<24} {:<8} {:<8} {:<40} CREATED", "ID", "PID", "STATUS", "BUNDLE");
    }
    for id in ids {
        let Ok(dir) = Dir::new(root, &id) else { continue };
        let Ok(r) = dir.load(&id) else { continue };
        if quiet {
            println!("{id}");
        } else {
            let st = dir.status(&r);
            let pid = if st == Status::Stopped { 0 } else { r.pid };
            println!(
                "{:<24} {:<8} {:<8} {:<40} {}",
                id,
                pid,
                st.to_string(),
                r.bundle.display(),
                r.created
            );
        }
    }
    Ok(())
}

fn features() -> Result<(), Error> {
    use oci_spec::runtime::{Cgroup, Features, LinuxFeature, LinuxNamespaceType, Seccomp};
    let mut cgroup = Cgroup::default();
    cgroup.set_v1(Some(true));
    cgroup.set_v2(Some(true));
    // The systemd form of cgroupsPath is read, but the cgroup is made on
    // the file system, not through systemd (docs/oci.md).
    cgroup.set_systemd(Some(false));
    cgroup.set_systemd_user(Some(false));
    let mut seccomp = Seccomp::default();
    // The tender installs its own filter; the config's is not applied.
    seccomp.set_enabled(Some(false));
    let mut linux = LinuxFeature::default();
    linux.set_namespaces(Some(vec![LinuxNamespaceType::Network]));
    linux.set_capabilities(Some(vec![]));
    linux.set_cgroup(Some(cgroup));
    linux.set_seccomp(Some(seccomp));
    let mut f = Features::default();
    f.set_oci_version_min(OCI_VERSION_MIN.into());
    f.set_oci_version_max(OCI_VERSION.into());
    f.set_hooks(Some(vec![]));
    f.set_mount_options(Some(vec![]));
    f.set_linux(Some(linux));
    let mut ann = HashMap::new();
    ann.insert("org.nabla.runtime.version".to_string(), env!("CARGO_PKG_VERSION").to_string());
    ann.insert(
        "org.nabla.disk.size-mib".to_string(),
        "size of the raw disk for an image without files (default 64)".to_string(),
    );
    f.set_annotations(Some(ann));
    println!("{}", serde_json::to_string_pretty(&f).map_err(|e| Error(e.to_string()))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigusr1").unwrap(), libc::SIGUSR1);
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2kb").unwrap(), 2048);
        assert_eq!(parse_bytes("3MiB").unwrap(), 3 << 20);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        for bad in ["", "m", "1x", "-2", "1e400", "--1"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
