//! Attribution: which system call and device path reaches each kernel
//! function of a phase.
//!
//! The function tracer gives entries only, in order, one vCPU. The trace of
//! one task is cut into *instances*: an instance starts at a system call's
//! entry (the syscall-entry work such as the seccomp filter's evaluation
//! belongs to the call it precedes, see [`is_entry_work`]) or at a user page
//! fault, and runs until the next one starts. When an instance ends it is
//! named from what ran in it ([`label`]):
//!
//! * the call, normalised (`write`, `ppoll`, `clock_gettime`), then
//! * the device its file is, from the functions that serve it: `tap`
//!   (`tun_*`), `console` (tty), `pipe`, `block` (the page cache or a block
//!   device: the guest's disk file), `signalfd`, `eventfd`; and
//! * the stage a frame went through after the tap, for the functions after
//!   it: `bridge` (`br_handle_frame`), `tc redirect` (`tcf_mirred_act`),
//!   `veth` (`veth_xmit`), as `write tap → bridge`.
//!
//! A function is credited to every label it ran under, so the table can say
//! both how many functions a path reaches and how many only it reaches (what
//! removing that path would save). Limits: a page fault taken inside a call
//! (a `copy_to_user` into an untouched page) ends that call's instance, and
//! the rest of the call is credited to the fault; the exit-to-user work of
//! an instance (`syscall_exit_to_user_mode`, a reschedule) is its own.

use std::collections::{BTreeMap, BTreeSet};

/// The label of the code before the first system call or fault.
pub const ENTRY: &str = "entry";
/// The label of user page faults.
pub const FAULT: &str = "page fault";

/// Work the kernel does on every system call's entry before the call's own
/// `__x64_sys_*` function: it belongs to the call that follows.
pub fn is_entry_work(function: &str) -> bool {
    let base = function.split('.').next().unwrap_or(function);
    matches!(
        base,
        "do_syscall_64"
            | "syscall_enter_from_user_mode"
            | "syscall_trace_enter"
            | "__secure_computing"
            | "__seccomp_filter"
            | "populate_seccomp_data"
            | "seccomp_run_filters"
            | "x64_sys_call"
    )
}

/// The first traceable functions of a user page fault (`exc_page_fault`
/// and `do_user_addr_fault` are not traceable on recent kernels).
pub fn is_fault_entry(function: &str) -> bool {
    let base = function.split('.').next().unwrap_or(function);
    matches!(
        base,
        "exc_page_fault" | "do_user_addr_fault" | "lock_mm_and_find_vma" | "handle_mm_fault"
    )
}

/// The device a function serves, if it tells.
pub fn device_of(function: &str) -> Option<&'static str> {
    let base = function.split('.').next().unwrap_or(function);
    if base.starts_with("tun_") {
        return Some("tap");
    }
    if base.starts_with("tty_") || base.starts_with("n_tty_") || base == "file_tty_write" {
        return Some("console");
    }
    if base == "pipe_write" || base == "pipe_read" {
        return Some("pipe");
    }
    if base.starts_with("signalfd_") {
        return Some("signalfd");
    }
    if base.starts_with("eventfd_") {
        return Some("eventfd");
    }
    if base.starts_with("blkdev_")
        || base.starts_with("ext4_")
        || base.starts_with("xfs_")
        || base.starts_with("shmem_file_")
        || base.starts_with("shmem_write_")
        || matches!(
            base,
            "generic_perform_write"
                | "filemap_read"
                | "generic_file_read_iter"
                | "noop_fsync"
                | "vfs_fsync_range"
                | "file_write_and_wait_range"
        )
    {
        return Some("block");
    }
    None
}

/// The stage of a frame's way on the host that `function` starts.
pub fn stage_of(function: &str) -> Option<&'static str> {
    let base = function.split('.').next().unwrap_or(function);
    match base {
        "br_handle_frame" => Some("bridge"),
        "tcf_mirred_act" | "tcf_mirred_to_dev" => Some("tc redirect"),
        "veth_xmit" => Some("veth"),
        _ => None,
    }
}

/// The instance being read.
#[derive(Debug)]
struct Instance {
    /// The call (`write`), [`FAULT`], [`ENTRY`], or none yet (entry work).
    what: Option<String>,
    device: Option<&'static str>,
    /// Functions: (name, steady, stage index into `stages` or none).
    functions: Vec<(String, bool, Option<usize>)>,
    stages: Vec<&'static str>,
    /// Whether any function of it ran in the steady state.
    steady: bool,
}

impl Instance {
    fn new(what: Option<String>) -> Self {
        Self { what, device: None, functions: Vec::new(), stages: Vec::new(), steady: false }
    }

    fn base_label(&self) -> String {
        let what = self.what.as_deref().unwrap_or("syscall entry");
        match self.device {
            Some(d) => format!("{what} {d}"),
            None => what.to_string(),
        }
    }
}

/// What one phase's instances reached.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Attribution {
    /// Each function and the labels it ran under.
    pub paths: BTreeMap<String, BTreeSet<String>>,
    /// Each label and how many instances had it.
    pub instances: BTreeMap<String, u64>,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub label: String,
    /// Instances (calls, faults) seen.
    pub instances: u64,
    /// Distinct functions reached.
    pub functions: usize,
    /// Functions reached on no other label.
    pub only: usize,
}

impl Attribution {
    fn credit(&mut self, function: &str, label: &str) {
        self.paths.entry(function.to_string()).or_default().insert(label.to_string());
    }

    /// The table: one row a label, those reaching the most functions only
    /// they reach first.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
        for labels in self.paths.values() {
            for l in labels {
                let row = rows.entry(l).or_insert_with(|| Row {
                    label: l.clone(),
                    instances: self.instances.get(l).copied().unwrap_or(0),
                    functions: 0,
                    only: 0,
                });
                row.functions += 1;
                if labels.len() == 1 {
                    row.only += 1;
                }
            }
        }
        let mut v: Vec<Row> = rows.into_values().collect();
        v.sort_by(|a, b| {
            b.only.cmp(&a.only).then(b.functions.cmp(&a.functions)).then(a.label.cmp(&b.label))
        });
        v
    }

    /// The functions reached on more than one label.
    pub fn shared(&self) -> usize {
        self.paths.values().filter(|l| l.len() > 1).count()
    }

    /// One line a function: `name<TAB>label, label`.
    pub fn tsv(&self) -> String {
        let mut s = String::new();
        for (f, labels) in &self.paths {
            s.push_str(f);
            s.push('\t');
            s.push_str(&labels.iter().cloned().collect::<Vec<_>>().join(", "));
            s.push('\n');
        }
        s
    }
}

/// Cuts task-context functions into instances and credits them.
#[derive(Debug)]
pub struct Attributor {
    current: Instance,
    pub startup: Attribution,
    pub steady: Attribution,
}

impl Default for Attributor {
    fn default() -> Self {
        Self {
            current: Instance::new(Some(ENTRY.into())),
            startup: Attribution::default(),
            steady: Attribution::default(),
        }
    }
}

impl Attributor {
    /// Takes one task-context function, run in the steady state or not.
    /// `syscall` is the call whose entry point it is, if it is one.
    pub fn feed(&mut self, function: &str, syscall: Option<&str>, steady: bool) {
        if let Some(sys) = syscall {
            // Entry work already read belongs to this call.
            if self.current.what.is_some() {
                self.close(Some(sys.to_string()));
            } else {
                self.current.what = Some(sys.to_string());
            }
        } else if is_entry_work(function) {
            if self.current.what.is_some() {
                self.close(None);
            }
        } else if is_fault_entry(function) {
            let continues = self.current.what.as_deref() == Some(FAULT)
                && self.current.functions.last().is_some_and(|(f, _, _)| is_fault_entry(f));
            if !continues {
                self.close(Some(FAULT.to_string()));
            }
        }
        let c = &mut self.current;
        // A poll waits on several devices: its label is the call's alone.
        let polls = matches!(
            c.what.as_deref(),
            Some("ppoll" | "poll" | "select" | "pselect6" | "epoll_wait" | "epoll_pwait")
        );
        if c.device.is_none() && !polls {
            c.device = device_of(function);
        }
        if let Some(s) = stage_of(function) {
            c.stages.push(s);
        }
        let stage = c.stages.len().checked_sub(1);
        c.functions.push((function.to_string(), steady, stage));
        c.steady |= steady;
    }

    /// Ends the current instance and starts one of `what`.
    fn close(&mut self, what: Option<String>) {
        let done = std::mem::replace(&mut self.current, Instance::new(what));
        self.credit(done);
    }

    /// Ends the last instance (the end of the trace).
    pub fn finish(&mut self) {
        self.close(None);
    }

    fn credit(&mut self, i: Instance) {
        if i.functions.is_empty() {
            return;
        }
        let base = i.base_label();
        let label = |stage: Option<usize>| match stage {
            None => base.clone(),
            Some(s) => {
                let mut l = base.clone();
                for st in &i.stages[..=s] {
                    l.push_str(" → ");
                    l.push_str(st);
                }
                l
            }
        };
        let mut counted = (false, false);
        for (f, steady, stage) in &i.functions {
            let l = label(*stage);
            let a = if *steady { &mut self.steady } else { &mut self.startup };
            a.credit(f, &l);
            let seen = if *steady { &mut counted.1 } else { &mut counted.0 };
            if !*seen {
                *seen = true;
                *a.instances.entry(base.clone()).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(a: &mut Attributor, fs: &[&str], steady: bool) {
        for f in fs {
            a.feed(f, crate::hap::trace::syscall_name(f), steady);
        }
    }

    #[test]
    fn credits_calls_devices_and_stages() {
        let mut a = Attributor::default();
        feed(&mut a, &["startup_fn"], false);
        feed(
            &mut a,
            &[
                "syscall_enter_from_user_mode",
                "__secure_computing",
                "__x64_sys_write",
                "ksys_write",
                "tun_chr_write_iter",
                "tun_get_user",
                "netif_receive_skb",
                "br_handle_frame",
                "br_forward",
                "veth_xmit",
                "enqueue_to_backlog",
                "syscall_exit_to_user_mode",
            ],
            true,
        );
        feed(
            &mut a,
            &[
                "__secure_computing",
                "__x64_sys_write",
                "ksys_write",
                "file_tty_write",
                "syscall_exit_to_user_mode",
            ],
            true,
        );
        feed(
            &mut a,
            &["__secure_computing", "__x64_sys_ppoll", "do_sys_poll", "tun_chr_poll"],
            true,
        );
        feed(&mut a, &["handle_mm_fault", "do_anonymous_page", "clear_page_erms"], true);
        feed(&mut a, &["__x64_sys_pwrite64", "vfs_write", "shmem_file_write_iter"], true);
        a.finish();
        let s = &a.steady;
        let labels = |f: &str| s.paths[f].iter().cloned().collect::<Vec<_>>();
        assert_eq!(labels("__secure_computing"), ["ppoll", "write console", "write tap"]);
        assert_eq!(labels("ksys_write"), ["write console", "write tap"]);
        assert_eq!(labels("tun_get_user"), ["write tap"]);
        assert_eq!(labels("br_forward"), ["write tap → bridge"]);
        assert_eq!(labels("enqueue_to_backlog"), ["write tap → bridge → veth"]);
        assert_eq!(
            labels("syscall_exit_to_user_mode"),
            ["write console", "write tap → bridge → veth"]
        );
        assert_eq!(labels("clear_page_erms"), ["page fault"]);
        assert_eq!(labels("vfs_write"), ["pwrite64 block"]);
        assert_eq!(a.startup.paths["startup_fn"].iter().next().unwrap(), "entry");
        assert!(!s.paths.contains_key("startup_fn"));
        assert_eq!(s.instances["write tap"], 1);
        assert_eq!(s.instances["write console"], 1);
        let rows = s.rows();
        let fault = rows.iter().find(|r| r.label == "page fault").unwrap();
        assert_eq!((fault.functions, fault.only, fault.instances), (3, 3, 1));
        let tap = rows.iter().find(|r| r.label == "write tap").unwrap();
        assert_eq!((tap.functions, tap.only), (7, 4));
        assert!(rows.windows(2).all(|w| w[0].only >= w[1].only));
        assert_eq!(s.shared(), 4);
        assert!(s.tsv().contains("ksys_write\twrite console, write tap\n"));
    }

    #[test]
    fn fault_in_a_row_is_one_instance_and_entry_work_waits() {
        let mut a = Attributor::default();
        feed(&mut a, &["handle_mm_fault", "handle_mm_fault", "x"], true);
        feed(&mut a, &["handle_mm_fault", "y"], true);
        // Entry work then a fault: the work is credited as such.
        feed(&mut a, &["__secure_computing", "handle_mm_fault"], true);
        a.finish();
        assert_eq!(a.steady.instances["page fault"], 3);
        assert_eq!(
            a.steady.paths["__secure_computing"].iter().collect::<Vec<_>>(),
            ["syscall entry"]
        );
        assert_eq!(a.steady.paths["x"].iter().collect::<Vec<_>>(), ["page fault"]);
    }

    #[test]
    fn names_devices() {
        assert_eq!(device_of("tun_do_read"), Some("tap"));
        assert_eq!(device_of("n_tty_write"), Some("console"));
        assert_eq!(device_of("noop_fsync"), Some("block"));
        assert_eq!(device_of("shmem_write_begin"), Some("block"));
        assert_eq!(device_of("signalfd_poll"), Some("signalfd"));
        assert_eq!(device_of("vfs_write"), None);
        assert_eq!(stage_of("tcf_mirred_act"), Some("tc redirect"));
        assert_eq!(stage_of("br_handle_frame.part.0"), Some("bridge"));
    }
}
