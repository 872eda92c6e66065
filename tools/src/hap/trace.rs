//! Reading the function tracer's output: which kernel functions a workload
//! ran, in which context, in which phase.
//!
//! The input is `trace_pipe` of the `function` tracer with the default
//! latency columns (`options/irq-info`) and without parents
//! (`options/print-parent` off), with the `syscalls:sys_exit_seccomp`
//! event and the markers the agent writes to `trace_marker`:
//!
//! ```text
//!   hello-87   [000] d.h1.  14.2877: irq_enter_rcu          <- a function, hard-irq context
//!   hello-87   [000] .....  14.2878: sys_seccomp -> 0x0      <- the event
//!   nabla-60   [000] .....  14.2879: tracing_mark_write: hap:ready
//! ```
//!
//! The third flag column is `h` (hard irq), `s` (softirq), `H` (hard irq
//! inside a softirq), `z`/`Z` (NMI) or `.` (task context). Only task
//! context counts in the headline: an interrupt handled while the workload
//! happened to be on the CPU is the kernel's business, not something the
//! workload reached. Interrupt and softirq functions are counted apart.
//!
//! Phases: *start-up* runs from the exec to the ready point, *steady* from
//! there to the `hap:end` marker. The ready point is the later of the
//! `hap:ready` marker (the readiness check passed; a workload without a
//! check has it at once) and, for a workload that installs a seccomp
//! filter, the return of the `seccomp` call in which `seccomp_attach_filter`
//! ran. A workload with neither has no steady phase: all it ran is
//! start-up (its whole lifetime).

use std::collections::{BTreeMap, BTreeSet};

use super::attrib::{Attribution, Attributor, is_fault_entry};

/// The interrupt context of a line, from its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Task,
    HardIrq,
    SoftIrq,
}

/// One line of `trace_pipe`, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A function entry.
    Function { context: Context, name: &'a str },
    /// A `trace_marker` write.
    Marker(&'a str),
    /// The return of a `seccomp` system call, and whether it returned 0.
    SeccompExit { ok: bool },
    /// `CPU:N [LOST M EVENTS]`.
    Lost(u64),
    /// Anything else (other events, headers).
    Other,
}

/// Parses one line.
pub fn parse(line: &str) -> Line<'_> {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("CPU:")
        && let Some(i) = rest.find("[LOST ")
    {
        let n = rest[i + 6..].split_whitespace().next().and_then(|n| n.parse().ok());
        return Line::Lost(n.unwrap_or(1));
    }
    if line.starts_with('#') {
        return Line::Other;
    }
    // TASK-PID [CPU] FLAGS TIMESTAMP: REST. The task name may hold spaces,
    // so anchor on the CPU column.
    let Some(open) = line.find("] ") else { return Line::Other };
    if !line[..open].contains('[') {
        return Line::Other;
    }
    let after = line[open + 2..].trim_start();
    let Some((flags, after)) = after.split_once(' ') else { return Line::Other };
    let Some((_, rest)) = after.split_once(": ") else { return Line::Other };
    let rest = rest.trim();
    if let Some(text) = rest.strip_prefix("tracing_mark_write: ") {
        return Line::Marker(text.trim());
    }
    if let Some(ret) = rest.strip_prefix("sys_seccomp -> ") {
        return Line::SeccompExit { ok: ret.trim() == "0x0" };
    }
    if rest.is_empty() || rest.contains(' ') {
        return Line::Other;
    }
    let context = match flags.as_bytes().get(2) {
        Some(b'h' | b'H' | b'z' | b'Z') => Context::HardIrq,
        Some(b's') => Context::SoftIrq,
        _ => Context::Task,
    };
    Line::Function { context, name: rest }
}

/// The system call whose entry point `function` is, normalised:
/// `__x64_sys_write`, `__do_sys_write`, `__se_sys_write`, `__ia32_sys_write`,
/// `__x64_compat_sys_write`, `__ia32_compat_sys_write`, `__x32_compat_sys_write`
/// and the old `sys_write`/`SyS_write` all give `write`.
pub fn syscall_name(function: &str) -> Option<&str> {
    // Compiler suffixes (`.isra.0`, `.constprop.0`, `.cold`) are not part
    // of the name.
    let base = function.split('.').next().unwrap_or(function);
    const PREFIXES: [&str; 10] = [
        "__x64_sys_",
        "__ia32_sys_",
        "__x32_compat_sys_",
        "__ia32_compat_sys_",
        "__x64_compat_sys_",
        "__do_compat_sys_",
        "__se_compat_sys_",
        "__do_sys_",
        "__se_sys_",
        "compat_sys_",
    ];
    let name = PREFIXES
        .iter()
        .find_map(|p| base.strip_prefix(p))
        .or_else(|| base.strip_prefix("sys_"))
        .or_else(|| base.strip_prefix("SyS_"))?;
    // `sys_ni_syscall` is the stub for a number with no call.
    (!name.is_empty() && name != "ni_syscall").then_some(name)
}

/// Whether `function` runs only when a seccomp filter is being installed
/// (`seccomp(SECCOMP_SET_MODE_FILTER)` or `prctl(PR_SET_SECCOMP)`).
/// libseccomp's probes enter some of them too, but fail: the phase ends at
/// the first such call that returns 0.
fn is_filter_install(function: &str) -> bool {
    let base = function.split('.').next().unwrap_or(function);
    matches!(
        base,
        "seccomp_set_mode_filter"
            | "seccomp_attach_filter"
            | "seccomp_prepare_user_filter"
            | "seccomp_prepare_filter"
            | "bpf_prog_create_from_user"
    )
}

/// What ran in one phase.
#[derive(Debug, Default, Clone)]
pub struct Phase {
    /// Functions in task context: the headline.
    pub task: BTreeSet<String>,
    /// Functions in hard-irq (or NMI) context.
    pub irq: BTreeSet<String>,
    /// Functions in softirq context.
    pub softirq: BTreeSet<String>,
    /// System calls made, normalised.
    pub syscalls: BTreeSet<String>,
    /// For each task-context function, the path it was first seen on: the
    /// system call being served (`write`), `page fault`, or `entry` before
    /// the first call.
    pub first_path: BTreeMap<String, String>,
    /// Function entries recorded (all contexts).
    pub calls: u64,
    /// Each task-context function and every call and device path that
    /// reached it ([`super::attrib`]); filled when the trace ends.
    pub attribution: Attribution,
}

impl Phase {
    /// The number of task-context functions first seen on each path,
    /// largest first.
    pub fn by_path(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for path in self.first_path.values() {
            *counts.entry(path).or_default() += 1;
        }
        let mut v: Vec<(String, usize)> =
            counts.into_iter().map(|(p, n)| (p.to_string(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// The union of two phases (the whole lifetime).
    pub fn union(&self, other: &Phase) -> Phase {
        let mut u = self.clone();
        u.task.extend(other.task.iter().cloned());
        u.irq.extend(other.irq.iter().cloned());
        u.softirq.extend(other.softirq.iter().cloned());
        u.syscalls.extend(other.syscalls.iter().cloned());
        for (f, p) in &other.first_path {
            u.first_path.entry(f.clone()).or_insert_with(|| p.clone());
        }
        u.calls += other.calls;
        for (f, labels) in &other.attribution.paths {
            u.attribution.paths.entry(f.clone()).or_default().extend(labels.iter().cloned());
        }
        for (l, n) in &other.attribution.instances {
            *u.attribution.instances.entry(l.clone()).or_default() += n;
        }
        u
    }
}

/// Folds the lines of one workload's trace into its two phases.
#[derive(Debug)]
pub struct Analyzer {
    checked: bool,
    wants_filter: bool,
    ready_marker: bool,
    filter_attached: bool,
    filter_done: bool,
    ended: bool,
    path: String,
    attributor: Option<Attributor>,
    /// Start-up, then steady.
    pub startup: Phase,
    pub steady: Phase,
    /// Events the ring buffer dropped (the result is then incomplete).
    pub lost: u64,
    /// Whether the ready point was reached.
    pub ready: bool,
}

/// The marker the agent writes when the readiness check passes.
pub const READY: &str = "hap:ready";
/// The marker the agent writes when the load is over (or the workload exited).
pub const END: &str = "hap:end";

impl Analyzer {
    /// `checked`: whether the workload has a readiness check (else the
    /// ready marker is implied). `wants_filter`: whether it installs a
    /// seccomp filter, which the ready point then waits for.
    pub fn new(checked: bool, wants_filter: bool) -> Self {
        Self {
            checked,
            wants_filter,
            ready_marker: false,
            filter_attached: false,
            filter_done: false,
            ended: false,
            path: "entry".into(),
            attributor: Some(Attributor::default()),
            startup: Phase::default(),
            steady: Phase::default(),
            lost: 0,
            ready: false,
        }
    }

    /// Whether the `hap:end` marker was seen.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Ends the trace: credits the last call and fills both phases'
    /// attribution. Idempotent; the `hap:end` marker calls it.
    pub fn finish(&mut self) {
        if let Some(mut at) = self.attributor.take() {
            at.finish();
            self.startup.attribution = at.startup;
            self.steady.attribution = at.steady;
        }
    }

    /// Whether the workload installed its seccomp filter.
    pub fn filter_installed(&self) -> bool {
        self.filter_done
    }

    fn update_ready(&mut self) {
        let checked = !self.checked || self.ready_marker;
        let filter = !self.wants_filter || self.filter_done;
        // A workload with neither a check nor a filter never gets ready.
        self.ready = (self.checked || self.wants_filter) && checked && filter;
    }

    /// Takes one line.
    pub fn feed(&mut self, line: &str) {
        if self.ended {
            return;
        }
        match parse(line) {
            Line::Marker(m) if m == READY => {
                self.ready_marker = true;
                self.update_ready();
            }
            Line::Marker(m) if m == END => {
                self.ended = true;
                self.finish();
            }
            Line::Marker(_) | Line::Other => {}
            Line::Lost(n) => self.lost += n,
            Line::SeccompExit { ok } => {
                if ok && self.filter_attached && !self.filter_done {
                    self.filter_done = true;
                    self.update_ready();
                }
                self.filter_attached = false;
            }
            Line::Function { context, name } => {
                let phase = if self.ready { &mut self.steady } else { &mut self.startup };
                phase.calls += 1;
                match context {
                    Context::HardIrq => {
                        phase.irq.insert(name.to_string());
                    }
                    Context::SoftIrq => {
                        phase.softirq.insert(name.to_string());
                    }
                    Context::Task => {
                        let sys = syscall_name(name);
                        if let Some(at) = &mut self.attributor {
                            at.feed(name, sys, self.ready);
                        }
                        if let Some(sys) = sys {
                            phase.syscalls.insert(sys.to_string());
                            self.path = sys.to_string();
                        } else if is_fault_entry(name) {
                            self.path = "page fault".into();
                        }
                        if !phase.task.contains(name) {
                            phase.task.insert(name.to_string());
                            phase.first_path.insert(name.to_string(), self.path.clone());
                        }
                        if is_filter_install(name) {
                            self.filter_attached = true;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        assert_eq!(
            parse("            true-87      [000] .....    14.287737: __x64_sys_dup2"),
            Line::Function { context: Context::Task, name: "__x64_sys_dup2" }
        );
        assert_eq!(
            parse("  my task-87  [000] d.h1.  14.2: irq_enter_rcu\n"),
            Line::Function { context: Context::HardIrq, name: "irq_enter_rcu" }
        );
        assert_eq!(
            parse("  nginx-87  [000] ..s1.  14.2: net_rx_action"),
            Line::Function { context: Context::SoftIrq, name: "net_rx_action" }
        );
        assert_eq!(
            parse("  nginx-87  [000] d.H1.  14.2: handle_irq"),
            Line::Function { context: Context::HardIrq, name: "handle_irq" }
        );
        assert_eq!(
            parse("  nabla-60  [000] .....  14.2879: tracing_mark_write: hap:ready"),
            Line::Marker("hap:ready")
        );
        assert_eq!(
            parse("  tender-9  [000] .....  14.2878: sys_seccomp -> 0x0"),
            Line::SeccompExit { ok: true }
        );
        assert_eq!(
            parse("  tender-9  [000] .....  14.2878: sys_seccomp -> 0xfffffffffffffff2"),
            Line::SeccompExit { ok: false }
        );
        assert_eq!(parse("CPU:0 [LOST 1234 EVENTS]"), Line::Lost(1234));
        assert_eq!(parse("# tracer: function"), Line::Other);
        assert_eq!(parse(""), Line::Other);
        assert_eq!(parse("  x-1  [000] .....  1.0: sched_switch: prev_comm=x"), Line::Other);
    }

    #[test]
    fn names_syscalls() {
        for f in [
            "__x64_sys_write",
            "__do_sys_write",
            "__se_sys_write",
            "__ia32_sys_write",
            "__x64_compat_sys_write",
            "__ia32_compat_sys_write",
            "sys_write",
            "SyS_write",
            "__x64_sys_write.cold",
        ] {
            assert_eq!(syscall_name(f), Some("write"), "{f}");
        }
        assert_eq!(syscall_name("__x64_sys_exit_group"), Some("exit_group"));
        assert_eq!(syscall_name("x64_sys_call"), None);
        assert_eq!(syscall_name("ksys_write"), None);
        assert_eq!(syscall_name("sys_ni_syscall"), None);
        assert_eq!(syscall_name("do_sys_openat2"), None);
        assert_eq!(syscall_name("syscall_exit_to_user_mode"), None);
    }

    fn line(flags: &str, f: &str) -> String {
        format!("  w-1  [000] {flags}  1.0: {f}")
    }

    #[test]
    fn filter_ends_startup() {
        let mut a = Analyzer::new(false, true);
        // libseccomp's probes return from seccomp() too: not the end.
        a.feed(&line(".....", "__x64_sys_seccomp"));
        a.feed("  w-1  [000] .....  1.0: sys_seccomp -> 0x0");
        a.feed(&line(".....", "__x64_sys_mmap"));
        a.feed(&line(".....", "seccomp_set_mode_filter"));
        a.feed("  w-1  [000] .....  1.0: sys_seccomp -> 0xfffffffffffffff2");
        assert!(!a.ready);
        a.feed(&line(".....", "__x64_sys_seccomp"));
        a.feed(&line(".....", "seccomp_attach_filter"));
        a.feed(&line(".....", "mutex_unlock"));
        a.feed("  w-1  [000] .....  1.0: sys_seccomp -> 0x0");
        assert!(a.ready);
        a.feed(&line(".....", "__x64_sys_write"));
        a.feed(&line("d.h1.", "irq_enter_rcu"));
        a.feed(&line("..s1.", "net_rx_action"));
        a.feed(&line(".....", "lock_mm_and_find_vma"));
        a.feed(&line(".....", "handle_mm_fault"));
        a.feed("  n-2  [000] .....  1.0: tracing_mark_write: hap:end");
        a.feed(&line(".....", "__x64_sys_openat"));
        assert!(a.startup.task.contains("mutex_unlock"));
        assert!(a.startup.syscalls.contains("mmap"));
        assert_eq!(a.steady.syscalls.iter().collect::<Vec<_>>(), ["write"]);
        assert_eq!(a.steady.task.len(), 3);
        assert!(a.steady.irq.contains("irq_enter_rcu"));
        assert!(a.steady.softirq.contains("net_rx_action"));
        assert_eq!(a.steady.first_path["handle_mm_fault"], "page fault");
        // The end marker credited the last instance.
        let fault: Vec<&String> = a.steady.attribution.paths["handle_mm_fault"].iter().collect();
        assert_eq!(fault, ["page fault"]);
        assert_eq!(a.steady.attribution.instances["write"], 1);
        assert!(a.startup.attribution.paths["mutex_unlock"].contains("seccomp"));
        assert!(!a.steady.task.contains("__x64_sys_openat"));
    }

    #[test]
    fn checked_workload_waits_for_both() {
        let mut a = Analyzer::new(true, true);
        a.feed(&line(".....", "seccomp_attach_filter"));
        a.feed("  w-1  [000] .....  1.0: sys_seccomp -> 0x0");
        assert!(!a.ready);
        a.feed(&line(".....", "__x64_sys_ppoll"));
        a.feed("  n-2  [000] .....  1.0: tracing_mark_write: hap:ready");
        assert!(a.ready);
        a.feed(&line(".....", "__x64_sys_read"));
        assert!(a.startup.syscalls.contains("ppoll"));
        assert!(a.steady.syscalls.contains("read"));
    }

    #[test]
    fn unchecked_unfiltered_workload_is_all_startup() {
        let mut a = Analyzer::new(false, false);
        a.feed(&line(".....", "__x64_sys_execve"));
        a.feed(&line(".....", "__x64_sys_exit_group"));
        assert!(!a.ready);
        assert!(a.steady.task.is_empty());
        assert_eq!(a.startup.syscalls.len(), 2);
        let mut b = Analyzer::new(true, false);
        b.feed("  n-2  [000] .....  1.0: tracing_mark_write: hap:ready");
        assert!(b.ready);
        b.feed("CPU:0 [LOST 3 EVENTS]");
        assert_eq!(b.lost, 3);
    }
}
