//! Network namespaces for the network benchmarks, and the guarantee that
//! none outlives the benchmark.
//!
//! Everything a network benchmark does happens inside namespaces it
//! creates (`nabla-bench-<tag>-<pid>-<n>`), on links (taps, veths) inside
//! them, with addresses only inside them: nothing is sent to an address
//! outside this machine, and nothing on the host's own network changes.
//!
//! Cleaning up (kill every process still in the namespace, then
//! `ip netns del`) happens
//!
//! * when a [`Netns`] drops (success, error);
//! * on a panic, from a panic hook: the workspace's profiles abort on
//!   panic, so no destructor would run;
//! * on SIGINT, SIGTERM or SIGHUP, from a thread that waits for them (they
//!   are blocked in every other thread), which then exits with 128 + the
//!   signal;
//! * for namespaces of a `nabla` that was killed outright (SIGKILL), at the
//!   next [`Netns::new`], which removes those whose pid no longer runs.
//!
//! Other benchmarks register cleanups of their own for the panic hook and
//! the signal thread with [`on_abort`] (`nabla bench container`: its
//! containerd, shims and state directory).
//!
//! Children started with [`Netns::command`] also get
//! `PR_SET_PDEATHSIG(SIGKILL)` (see [`crate::bench::die_with_parent`]): they
//! die with the thread that spawned them, so spawn them from the main thread.
//!
//! A thread enters a namespace with [`Netns::enter`] (`setns`, which moves
//! only the calling thread): sockets it creates afterwards live there. Use
//! a thread of its own for that ([`Netns::run`]).
//!
//! # Safety
//!
//! The unsafe blocks call `setns`, `kill`, `pthread_sigmask` and `sigwait`
//! with descriptors this module owns and local, initialised structures
//! that outlive each call. The `pre_exec` hook runs between fork and exec,
//! where it makes only a system call: no allocation, no lock.

#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use crate::bench::{Result, die_with_parent, start_error};

/// Prefix of every namespace the benchmarks create.
const PREFIX: &str = "nabla-bench-";

/// Namespaces alive now, for the panic hook and the signal thread.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Cleanups registered with [`on_abort`], by key.
type Cleanup = Box<dyn Fn() + Send>;
static OTHERS: Mutex<Vec<(u32, Cleanup)>> = Mutex::new(Vec::new());

/// Held by the signal thread from the signal to the process's exit.
static CLEANING: Mutex<()> = Mutex::new(());

/// The signal that is ending the process, once the signal thread holds
/// [`CLEANING`]; 0 before.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// A network namespace, deleted with every process in it on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// `/run/netns/NAME`, for `setns`.
    file: File,
}

/// Runs `ip ARGS`; its stdout, or an error with its stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(start_error("ip", "iproute2"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Netns {
    /// Creates `nabla-bench-<tag>-<pid>-<n>` with its loopback up and IPv6
    /// off (so that the kernel sends nothing on a link unless asked to).
    pub fn new(tag: &str) -> Result<Self> {
        if !is_root() {
            return Err("the network benchmarks need root: they create network namespaces, \
                 taps and veths (all inside namespaces of their own)"
                .into());
        }
        install_cleanup();
        remove_stale();
        static N: AtomicU32 = AtomicU32::new(0);
        let name =
            format!("{PREFIX}{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        // Registered before it exists: a signal between the two deletes
        // nothing, or something that is ours.
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(name.clone());
        if let Err(e) = ip(&["netns", "add", &name]) {
            unregister(&name);
            return Err(e);
        }
        let path = format!("/run/netns/{name}");
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                destroy(&name);
                unregister(&name);
                return Err(format!("cannot open {path}: {e}"));
            }
        };
        let ns = Self { name, file };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.run(|| {
            // Absent without IPv6 in the kernel: then there is nothing to turn off.
            for scope in ["all", "default"] {
                let _ =
                    std::fs::write(format!("/proc/sys/net/ipv6/conf/{scope}/disable_ipv6"), "1");
            }
        })?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Creates tap `name` with `mtu`, the host address `cidr`, up.
    pub fn add_tap(&self, name: &str, cidr: &str, mtu: u32) -> Result<()> {
        self.ip(&["tuntap", "add", "dev", name, "mode", "tap"])?;
        self.ip(&["link", "set", name, "mtu", &mtu.to_string()])?;
        self.ip(&["addr", "add", cidr, "dev", name])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Creates a veth pair: `name` here with `cidr`, `peer_name` in `peer`
    /// with `peer_cidr`, both with `mtu` and up.
    pub fn add_veth(
        &self,
        name: &str,
        cidr: &str,
        peer: &Netns,
        peer_name: &str,
        peer_cidr: &str,
        mtu: u32,
    ) -> Result<()> {
        let mtu = mtu.to_string();
        self.ip(&[
            "link", "add", name, "mtu", &mtu, "type", "veth", "peer", "name", peer_name, "mtu",
            &mtu, "netns", &peer.name,
        ])?;
        self.ip(&["addr", "add", cidr, "dev", name])?;
        peer.ip(&["addr", "add", peer_cidr, "dev", peer_name])?;
        self.ip(&["link", "set", name, "up"])?;
        peer.ip(&["link", "set", peer_name, "up"])?;
        Ok(())
    }

    /// Moves the calling thread into the namespace.
    pub fn enter(&self) -> Result<()> {
        // SAFETY: setns on a descriptor this struct owns; it changes only
        // the calling thread's network namespace.
        if unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns into {}: {}", self.name, io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Runs `f` on a thread of its own inside the namespace, and returns
    /// what it returns.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        thread::scope(|s| {
            s.spawn(|| {
                self.enter()?;
                Ok(f())
            })
            .join()
            .map_err(|_| format!("a thread in {} panicked", self.name))?
        })
    }

    /// A command that runs `program` inside the namespace (it enters with
    /// `setns` between fork and exec) and dies with the spawning thread.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Result<Command> {
        let mut cmd = Command::new(program);
        die_with_parent(&mut cmd);
        let ns = self.file.try_clone().map_err(|e| format!("{}: {e}", self.name))?;
        // SAFETY: only setns in the hook (async-signal-safe); ns is owned by
        // the closure and open until exec (it is close-on-exec).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        destroy(&self.name);
        unregister(&self.name);
    }
}

fn unregister(name: &str) {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).retain(|n| n != name);
}

/// `ip ARGS`, ignoring failure: for cleaning up.
fn ip_quiet(args: &[&str]) -> Option<String> {
    let out =
        Command::new("ip").args(args).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Kills every process in namespace `name` (they are this benchmark's own)
/// and deletes it.
fn destroy(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = ip_quiet(&["netns", "pids", name])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|&p| p > 1 && p != std::process::id() as i32)
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            // SAFETY: kill takes integers only; the pids are of processes
            // inside a namespace this process created.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = ip_quiet(&["netns", "del", name]);
}

/// Runs `f` on a panic or on SIGINT, SIGTERM or SIGHUP, as namespaces are
/// removed then, until [`forget`] with the returned key. Call it from the
/// main thread before starting other threads (see [`install_cleanup`]).
pub fn on_abort(f: impl Fn() + Send + 'static) -> u32 {
    install_cleanup();
    static KEY: AtomicU32 = AtomicU32::new(0);
    let key = KEY.fetch_add(1, Ordering::Relaxed);
    OTHERS.lock().unwrap_or_else(|e| e.into_inner()).push((key, Box::new(f)));
    key
}

/// Drops the cleanup registered under `key`.
pub fn forget(key: u32) {
    OTHERS.lock().unwrap_or_else(|e| e.into_inner()).retain(|(k, _)| *k != key);
}

/// Destroys every namespace still registered, and runs the other cleanups
/// (panic hook, signal thread).
fn destroy_all() {
    if let Ok(mut others) = OTHERS.try_lock() {
        for (_, f) in std::mem::take(&mut *others) {
            f();
        }
    }
    // try_lock: the panic may have happened while the lock was held.
    let names = match LIVE.try_lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(_) => return,
    };
    for name in names {
        destroy(&name);
    }
}

/// Removes the namespaces of `nabla` processes that no longer run.
fn remove_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let list = ip_quiet(&["netns", "list"]).unwrap_or_default();
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if stale_pid(name)
                .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            {
                destroy(name);
            }
        }
    });
}

/// The pid in a name `nabla-bench-<tag>-<pid>-<n>`.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let _n: u32 = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    let _tag = parts.next()?;
    Some(pid)
}

/// If a signal is ending the process, waits for the signal thread to
/// finish removing the namespaces and exit; the caller's error (a child
/// killed under it) is only a consequence. Returns otherwise.
pub fn exit_if_signalled() {
    if SIGNALLED.load(Ordering::SeqCst) != 0 {
        // The signal thread holds the lock until it exits the process.
        let _wait = CLEANING.lock();
        loop {
            thread::park();
        }
    }
}

/// Installs the panic hook and the signal thread, once.
fn install_cleanup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            destroy_all();
            previous(info);
        }));

        // Block the signals here (the main thread, before any other thread
        // of the benchmark starts: threads inherit the mask) and take them
        // on one thread with sigwait. Children get an empty mask: std
        // resets it between fork and exec.
        // SAFETY: sigset_t is plain data; the calls only read and write the
        // local set and this thread's mask.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        thread::spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: set is a valid, initialised signal set; sig is a local.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                let _cleaning = CLEANING.lock().unwrap_or_else(|e| e.into_inner());
                SIGNALLED.store(sig, Ordering::SeqCst);
                eprintln!(
                    "nabla: signal {sig}: cleaning up the benchmark's namespaces and daemons"
                );
                destroy_all();
                std::process::exit(128 + sig);
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names() {
        assert_eq!(stale_pid("nabla-bench-http-1234-0"), Some(1234));
        assert_eq!(stale_pid("nabla-bench-tcp-client-99-12"), Some(99));
        assert_eq!(stale_pid("nabla-attach-1234-0"), None);
        assert_eq!(stale_pid("nabla-bench-1234"), None);
        assert_eq!(stale_pid("nabla-bench-x-y-0"), None);
        assert_eq!(stale_pid("other"), None);
    }
}
