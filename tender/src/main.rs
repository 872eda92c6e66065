//! tender: maps a nabla guest into its own process behind a seccomp filter
//! and jumps to it.
//!
//! ```text
//! tender [OPTIONS] APP [ARGS]...
//! ```
//!
//! The steps, one module each: parse the arguments (here), validate the
//! image (`image`), lay out guest memory (`layout`), attach the declared
//! devices (`devices`), build the boot info (`boot`) and the filter
//! (`seccomp`), map everything (`memory`), seal and jump (`launch`, which
//! also finds the clock in the kernel's vDSO for the guest, with `vdso`).
//! `image`, `layout` and `boot` are pure and live in the library (`lib.rs`).
//! Any failure before the jump prints `tender: <what is wrong>` on stderr
//! and exits with status 1.

#![deny(unsafe_code)]
// The C `main` below replaces std's runtime start-up: see `c_main`.
#![cfg_attr(not(test), no_main)]
// Unit tests cover the modules; the command-line path, unused by them, is
// covered by the integration suites in tests/.
#![cfg_attr(test, allow(dead_code))]

// The policy, the memory layout and the jump are written for x86_64 Linux.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("the tender runs on x86_64 Linux only");

mod debugger;
mod devices;
mod flusher;
mod launch;
mod memory;
mod sched;
mod seccomp;
mod signals;
mod snapshot;
// Linked against musl: the entry point and initialisers (see start.rs),
// and a heap that launch can release whole (see heap.rs).
#[cfg(tender_musl)]
mod heap;
#[cfg(tender_musl)]
mod start;

#[cfg(tender_musl)]
#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

// The pure steps live in the library (src/lib.rs), which the fuzz targets
// also link; here they keep their `crate::` paths.
use tender::{boot, image, layout};

use std::fs::File;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::image::Image;
use crate::layout::Layout;

/// Runs a nabla unikernel as this process, behind a seccomp filter.
///
/// Everything after APP is passed to the guest as its arguments.
#[derive(Debug, PartialEq, Eq, Parser)]
#[command(name = "tender", version, about, long_about = None)]
struct Cli {
    /// Guest memory in MiB: image, heap, guard and stack.
    #[arg(long, value_name = "MiB", default_value_t = abi::DEFAULT_MEM_MIB)]
    mem: u64,

    /// Sets an environment variable in the guest (repeatable; it overrides
    /// the same variable from an --env-file).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Reads environment variables for the guest from FILE (repeatable):
    /// one KEY=VALUE a line, taken as it is; empty lines and lines that
    /// begin with # are skipped (or, if FILE holds a NUL byte, entries ended
    /// by NUL as in /proc/PID/environ). Keeps values off the command line,
    /// which every user of the host can read.
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,

    /// Gives the guest the file at PATH, read now, as the read-only file
    /// /etc/NAME (repeatable; NAME a plain file name such as hosts,
    /// resolv.conf or hostname; at most 8 files of at most 64 KiB each).
    /// Other paths under /etc are the guest's disks', as without.
    #[arg(long = "etc", value_name = "NAME=PATH")]
    etc: Vec<String>,

    /// Level of the guest's log messages on the console.
    #[arg(long, value_enum, default_value_t = LogLevel::Warn)]
    log_level: LogLevel,

    /// Silences libos's own messages (same as --log-level off).
    #[arg(short, long, conflicts_with = "log_level")]
    quiet: bool,

    /// Attaches the existing, up tap IFACE to the net device NAME the image
    /// declares, or the tap the caller left open on fd N (repeatable).
    #[arg(long = "net", value_name = "NAME=IFACE|NAME=fd:N")]
    net: Vec<String>,

    /// The MAC address of net device NAME. Default: derived from the
    /// host's machine id, the network namespace, the tap's name and NAME
    /// (locally administered), so that a guest restarted on the same tap
    /// keeps its MAC and its DHCP lease.
    #[arg(long = "net-mac", value_name = "NAME=MAC")]
    net_mac: Vec<String>,

    #[command(flatten)]
    block: devices::BlockArgs,

    /// The directory of the images' snapshots, the immutable copies guests
    /// run from [default: $NABLA_IMAGE_CACHE, else /run/nabla/images for
    /// root, $XDG_RUNTIME_DIR/nabla-images or /tmp/nabla-images-UID for
    /// others]. Owned by this user, writable by nobody else.
    #[arg(long, value_name = "DIR")]
    image_cache: Option<PathBuf>,

    /// How the guest reads the clock: through the host's vDSO, without a
    /// system call (the vDSO itself falls back to `clock_gettime` when the
    /// host's clocksource cannot be read from user space), or always with
    /// the `clock_gettime` system call (for comparison). Both are allowed
    /// by the same filter.
    #[arg(long, value_enum, default_value_t = ClockSource::Vdso)]
    clock: ClockSource,

    /// The scheduling policy of the guest: `normal` leaves the one the
    /// tender was started with; `batch` is SCHED_BATCH, for a server whose
    /// clients may share its CPU: a frame that wakes the guest does not
    /// preempt the task running there, so requests are taken in batches,
    /// at the price of latency on a contended CPU (docs/performance.md).
    #[arg(long, value_enum, default_value_t = sched::Policy::Normal)]
    sched: sched::Policy,

    /// Prints the image's ABI version, manifest and segments, and exits.
    #[arg(long, conflicts_with = "print_seccomp")]
    inspect: bool,

    /// Prints the seccomp filter this invocation would install (its rules
    /// with their reasons, then libseccomp's PFC text), and exits without
    /// running the guest. Attaches the devices first: the rules name their
    /// fds.
    #[arg(long)]
    print_seccomp: bool,

    /// The nabla binary.
    #[arg(value_name = "APP")]
    app: PathBuf,

    /// Arguments for the guest.
    #[arg(value_name = "ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClockSource {
    /// The vDSO's `clock_gettime` when the kernel mapped one, else the
    /// system call.
    Vdso,
    /// The `clock_gettime` system call.
    Syscall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Cli {
    /// The command line `tender APP [ARGS]...`, without options, parsed as
    /// clap parses it, without clap: building clap's command and matching
    /// against it costs a start about 15 µs and a dozen pages of heap
    /// (docs/performance.md). `None` for anything else, which clap parses:
    /// an option or `--` anywhere (clap drops a `--` after APP), an empty
    /// APP, or an argument that is not UTF-8.
    fn plain(argv: &[std::ffi::OsString]) -> Option<Cli> {
        let (app, rest) = argv.get(1..)?.split_first()?;
        if app.is_empty() || app.as_encoded_bytes().starts_with(b"-") {
            return None;
        }
        let args = rest
            .iter()
            .map(|a| a.to_str().filter(|a| *a != "--").map(str::to_owned))
            .collect::<Option<Vec<String>>>()?;
        Some(Cli {
            mem: abi::DEFAULT_MEM_MIB,
            env: Vec::new(),
            env_file: Vec::new(),
            etc: Vec::new(),
            log_level: LogLevel::Warn,
            quiet: false,
            net: Vec::new(),
            net_mac: Vec::new(),
            block: devices::BlockArgs::default(),
            image_cache: None,
            clock: ClockSource::Vdso,
            sched: sched::Policy::Normal,
            inspect: false,
            print_seccomp: false,
            app: PathBuf::from(app),
            args,
        })
    }
}

impl LogLevel {
    fn abi(self) -> u32 {
        use abi::log_level as l;
        match self {
            Self::Off => l::OFF,
            Self::Error => l::ERROR,
            Self::Warn => l::WARN,
            Self::Info => l::INFO,
            Self::Debug => l::DEBUG,
            Self::Trace => l::TRACE,
        }
    }
}

/// Everything that stops the tender before the jump.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Image { path: String, source: image::ImageError },
    #[error("{path}: {source}")]
    Read { path: String, source: memory::MapError },
    #[error("{path}: {source}")]
    Snapshot { path: String, source: snapshot::SnapshotError },
    #[error("--env {0:?}: expected KEY=VALUE with a non-empty KEY")]
    BadEnv(String),
    #[error("--env-file {path}: {source}")]
    EnvFile { path: String, source: std::io::Error },
    #[error("--env-file {path}: {source}")]
    EnvFileLine { path: String, source: boot::BadEnvLine },
    #[error("--env-file {0}: larger than the guest's boot region ({ENV_FILE_MAX} bytes)")]
    EnvFileTooLarge(String),
    #[error("--etc {0:?}: {1}")]
    Etc(String, String),
    #[error("the application path {0:?} is not valid UTF-8")]
    PathNotUtf8(PathBuf),
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error(transparent)]
    Boot(#[from] boot::TooLarge),
    #[error(transparent)]
    Device(#[from] devices::DeviceError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error(transparent)]
    Map(#[from] memory::MapError),
    #[error(transparent)]
    Launch(#[from] launch::LaunchError),
    #[error(transparent)]
    Signals(#[from] signals::SignalError),
    #[error(transparent)]
    Flush(#[from] flusher::FlushError),
    #[error(transparent)]
    Sched(#[from] sched::SchedError),
}

/// The C `main`, called by libc's start-up code.
///
/// The tender skips std's runtime start-up (`fn main`): it installs a
/// SIGSEGV/SIGBUS handler on an alternate signal stack, reads
/// `/proc/self/maps` to find the main thread's stack and changes SIGPIPE,
/// a dozen system calls at every launch that `launch` would then undo. std
/// itself works as usual (glibc, or start.rs under musl, hands it the
/// arguments). What std's start-up did that matters is done here: fds 0-2
/// are made valid, so that no file the tender opens can become the guest's
/// console, and stdout is flushed.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    launch::ensure_standard_fds();
    let status = tender_main();
    let _ = std::io::Write::flush(&mut std::io::stdout());
    status
}

fn tender_main() -> i32 {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = match Cli::plain(&argv) {
        Some(cli) => Ok(cli),
        None => Cli::try_parse_from(&argv),
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            let text = e.render().to_string();
            eprint!("tender: {}", text.strip_prefix("error: ").unwrap_or(&text));
            return 1;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tender: {e}");
            1
        }
    }
}

/// The most an environment file may hold: what the boot region could.
const ENV_FILE_MAX: u64 = abi::BOOT_REGION_END - abi::BOOT_REGION_START;

/// The variables of the environment file at `path` (see [`Cli::env_file`]).
fn read_env_file(path: &std::path::Path) -> Result<Vec<String>, Error> {
    use std::io::Read;
    let name = path.display().to_string();
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(ENV_FILE_MAX + 1).read_to_string(&mut text))
        .map_err(|source| Error::EnvFile { path: name.clone(), source })?;
    if text.len() as u64 > ENV_FILE_MAX {
        return Err(Error::EnvFileTooLarge(name));
    }
    boot::parse_env_file(&text).map_err(|source| Error::EnvFileLine { path: name, source })
}

/// The files of `--etc NAME=PATH` options, read whole: name and bytes.
fn read_etc_files(options: &[String]) -> Result<Vec<(String, Vec<u8>)>, Error> {
    use std::io::Read;
    let bad = |o: &String, why: String| Error::Etc(o.clone(), why);
    if options.len() > abi::MAX_ETC_FILES {
        let why = format!("more than {} files for /etc", abi::MAX_ETC_FILES);
        return Err(bad(&options[abi::MAX_ETC_FILES], why));
    }
    let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(options.len());
    for o in options {
        let Some((name, path)) = o.split_once('=') else {
            return Err(bad(o, "expected NAME=PATH".into()));
        };
        if !abi::check_etc_name(name.as_bytes()) {
            let why = format!(
                "NAME must be a plain file name of at most {} bytes of [A-Za-z0-9._-], not \
                 beginning with '.'",
                abi::ETC_NAME_MAX
            );
            return Err(bad(o, why));
        }
        if files.iter().any(|(n, _)| n == name) {
            return Err(bad(o, format!("/etc/{name} given twice")));
        }
        let mut data = Vec::new();
        let file = File::open(path).map_err(|e| bad(o, format!("{path}: {e}")))?;
        if !file.metadata().map_err(|e| bad(o, format!("{path}: {e}")))?.is_file() {
            return Err(bad(o, format!("{path}: not a regular file")));
        }
        file.take(abi::ETC_FILE_MAX + 1)
            .read_to_end(&mut data)
            .map_err(|e| bad(o, format!("{path}: {e}")))?;
        if data.len() as u64 > abi::ETC_FILE_MAX {
            return Err(bad(o, format!("{path}: larger than {} bytes", abi::ETC_FILE_MAX)));
        }
        files.push((name.to_string(), data));
    }
    Ok(files)
}

fn run(cli: Cli) -> Result<(), Error> {
    let path = cli.app.display().to_string();
    let app = cli.app.to_str().ok_or_else(|| Error::PathNotUtf8(cli.app.clone()))?.to_string();
    if let Some(bad) = cli.env.iter().find(|e| !boot::is_env_entry(e)) {
        return Err(Error::BadEnv(bad.clone()));
    }
    let mem = Layout::mem_bytes(cli.mem)?;
    // Before any thread is created: the flush threads inherit it.
    sched::apply(cli.sched)?;
    let device_options = devices::Options::parse(&cli.net, &cli.net_mac, &cli.block)?;
    // Before the tender opens anything: a missing fd:N must not be
    // mistaken for a file of the tender's own.
    device_options.check_fds_open()?;
    // The files' variables first: the last definition of a variable wins.
    let mut env = Vec::new();
    for file in &cli.env_file {
        env.extend(read_env_file(file)?);
    }
    env.extend(cli.env);
    // Read now, long before the filter: the guest gets bytes, no file.
    let etc = read_etc_files(&cli.etc)?;

    let file = open_image(&cli.app).map_err(|source| Error::Open { path: path.clone(), source })?;
    // The whole image, read-only, for the guest: its `/proc/self/exe`
    // (`BootInfo::image_file`), from which std's backtraces read symbols
    // and line tables that the snapshot below leaves out. The jump never
    // returns, so it is never unmapped. Unlike the snapshot it follows
    // later writes to the image (docs/abi.md, "The image file").
    let exe_view = memory::FileView::new(&file)
        .map_err(|source| Error::Read { path: path.clone(), source })?;
    // The guest runs from a snapshot of the image, which no later write to
    // the image changes (see `snapshot`); only inspecting reads the image
    // itself. --print-seccomp takes the same steps as a run, so that the
    // devices get the same fds and the rules it prints are the ones a run
    // installs.
    // Under a debugger, the whole image: its symbols (see `debugger`).
    let mut symbols = None;
    let file = if cli.inspect {
        file
    } else {
        let dir = cli
            .image_cache
            .or_else(|| std::env::var_os("NABLA_IMAGE_CACHE").map(PathBuf::from))
            .unwrap_or_else(snapshot::default_dir);
        let cache = snapshot::Cache::open(&dir);
        let snap = snapshot::take(&file, cache.as_ref(), mem)
            .map_err(|source| Error::Snapshot { path: path.clone(), source })?;
        symbols = debugger::symbols_for_debugger(&file, &snap.file, &path);
        drop(file);
        if let Some(why) = snap.uncached {
            eprintln!(
                "tender: warning: image cache {}: {why}; this instance runs from a private copy \
                 of {path} and shares no page of it with other instances",
                dir.display()
            );
        }
        snap.file
    };
    let view = memory::FileView::new(&file)
        .map_err(|source| Error::Read { path: path.clone(), source })?;
    let image = Image::parse(view.bytes(), Layout::image_limit(mem))
        .map_err(|source| Error::Image { path: path.clone(), source })?;
    drop(view);

    if cli.inspect {
        print!("{}", inspect(&path, &image, mem));
        return Ok(());
    }

    // The devices' fds stay open in `attached` until the jump.
    let mut attached = devices::attach(&image.manifest, &device_options)?;
    // After the devices, so that their fds are the same with or without.
    let signals = signals::Signals::open(debugger::watched())?;
    // After the signalfds, for the same reason: a flush thread's two
    // eventfds for each writable disk (see `flusher`), the first's fd in
    // the disk's boot info (the second is the next fd).
    let mut channels = Vec::new();
    for info in attached.infos.iter_mut() {
        if info.kind == abi::DeviceKind::Block as u32
            && info.flags & abi::DEVICE_FLAG_READ_ONLY == 0
        {
            let len = info.name.iter().position(|&b| b == 0).unwrap_or(info.name.len());
            let name = String::from_utf8_lossy(&info.name[..len]).into_owned();
            let channel = flusher::Channel::open(&name, info.fd)?;
            info.mtu = channel.request_fd() as u32;
            info.flags |= abi::DEVICE_FLAG_FLUSH_EVENTFDS;
            channels.push(channel);
        }
    }
    let mut policy =
        seccomp::Policy::base(attached.pollable + signals.pollable() + channels.len() as u64);
    policy.extend(attached.rules.iter().cloned());
    for channel in &channels {
        policy.extend(channel.rules());
    }
    if cli.print_seccomp {
        print!("{}", policy.describe());
        for channel in &channels {
            print!("{}", channel.describe_thread());
        }
        if let Some(bytes) = attached.file_size_limit() {
            println!(
                "# and RLIMIT_FSIZE {bytes} bytes (the largest writable disk), unless the console \
                 is a regular file"
            );
        }
        print!("{}", policy.pfc()?);
        return Ok(());
    }

    let layout = Layout::new(image.end, mem)?;
    let mut args = Vec::with_capacity(cli.args.len() + 1);
    args.push(app);
    args.extend(cli.args);
    let log_level = if cli.quiet { abi::log_level::OFF } else { cli.log_level.abi() };
    let boot_params = boot::BootParams {
        args: &args,
        env: &env,
        devices: &attached.infos,
        log_level,
        random: launch::guest_seed(),
        hwcap2: launch::hwcap2(),
        signal_fds: signals.boot_fds(),
        vdso_clock_gettime: match cli.clock {
            ClockSource::Vdso => launch::vdso_clock_gettime(),
            ClockSource::Syscall => 0,
        },
        image_file: (exe_view.bytes().as_ptr() as u64, exe_view.bytes().len() as u64),
        etc: &etc,
    };
    let boot_region = boot::build(&boot_params, &layout)?;
    let program = policy.bpf()?;

    memory::map_guest(&file, &image, &layout, &boot_region)?;
    drop(file);
    // The last file-related step: from here on the tender writes no file.
    attached.limit_file_size()?;
    // The guest keeps its console and its devices, nothing else.
    let mut keep: Vec<_> = attached.fds.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    keep.extend(signals.raw_fds());
    keep.extend(channels.iter().flat_map(flusher::Channel::raw_fds));
    launch::close_other_fds(&keep)?;
    if let Some(symbols) = symbols {
        symbols.register();
    }
    // From here a SIGTERM or SIGINT waits for the guest (see `signals`).
    signals.block()?;
    // The flush threads inherit the blocked signals; each has installed
    // its own filter when `spawn` returns.
    for channel in channels {
        channel.spawn()?;
    }
    let start = launch::Start {
        entry: image.entry,
        stack_top: layout.stack_top,
        boot_info: layout.boot_start,
    };
    match launch::launch(program, start)? {}
}

/// Opens the image read-only; `O_NONBLOCK` so that a FIFO given as the
/// image cannot block the tender (a regular file ignores the flag; anything
/// but a regular file is refused next).
fn open_image(path: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

/// What `--inspect` prints.
fn inspect(path: &str, image: &Image, mem: u64) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "image:       {path}");
    let _ = writeln!(
        s,
        "abi:         version {} (this tender: {}), target x86_64 process",
        image.abi.abi_version,
        abi::ABI_VERSION
    );
    let _ = writeln!(s, "entry:       {:#x}", image.entry);
    let _ = writeln!(s, "segments:");
    for seg in &image.segments {
        let _ = writeln!(
            s,
            "  {:#010x}-{:#010x} {} file {:#x}+{:#x} mem {:#x}",
            seg.vaddr,
            seg.vaddr + seg.memsz,
            seg.perms,
            seg.offset,
            seg.filesz,
            seg.memsz
        );
    }
    let entries = image.manifest.entries();
    let _ = writeln!(s, "devices:     {}", if entries.is_empty() { "none" } else { "" });
    for e in entries {
        let kind = abi::DeviceKind::from_raw(e.kind).map_or("?", abi::DeviceKind::as_str);
        let _ = writeln!(s, "  {:<16} {kind}", e.name().unwrap_or("?"));
    }
    if let Ok(l) = Layout::new(image.end, mem) {
        let _ = writeln!(s, "memory:      {} MiB", mem >> 20);
        let _ = writeln!(s, "  boot   {:#010x}-{:#010x}", l.boot_start, l.boot_end);
        let _ = writeln!(s, "  image  {:#010x}-{:#010x}", abi::GUEST_BASE, image.end);
        let _ = writeln!(s, "  heap   {:#010x}-{:#010x}", l.heap_start, l.heap_end);
        let _ = writeln!(s, "  guard  {:#010x}-{:#010x}", l.heap_end, l.stack_bottom);
        let _ = writeln!(s, "  stack  {:#010x}-{:#010x}", l.stack_bottom, l.stack_top);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn plain_command_lines_parse_as_clap_parses_them() {
        for args in [
            &["tender", "hello"][..],
            &["tender", "./hello", "a b", ""],
            &["tender", "hello", "a", "--mem", "5", "-x", "--inspect", "-"],
            &["tender", "/x/y", "--env", "A=B", "--", "c"][..2],
        ] {
            let argv = argv(args);
            let plain = Cli::plain(&argv).unwrap_or_else(|| panic!("{args:?}"));
            assert_eq!(plain, Cli::try_parse_from(&argv).unwrap(), "{args:?}");
        }
    }

    #[test]
    fn anything_else_goes_to_clap() {
        for args in [
            &["tender"][..],
            &["tender", ""],
            &["tender", "--mem", "5", "hello"],
            &["tender", "-q", "hello"],
            &["tender", "--", "hello"],
            &["tender", "-"],
            &["tender", "hello", "--", "a"],
            &["tender", "hello", "a", "--"],
            &["tender", "--version"],
        ] {
            assert_eq!(Cli::plain(&argv(args)), None, "{args:?}");
        }
        // A guest argument that is not UTF-8: clap refuses it.
        use std::os::unix::ffi::OsStringExt;
        let argv = vec!["tender".into(), "hello".into(), OsString::from_vec(vec![0xff])];
        assert_eq!(Cli::plain(&argv), None);
        assert!(Cli::try_parse_from(&argv).is_err());
    }
}
