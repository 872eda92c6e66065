//! The policy as data, and libseccomp's filter for it.
//!
//! Shared by the tender (`seccomp.rs`) and its build script, which has
//! libseccomp generate the programs of the policies every device-less guest
//! gets and compiles them into the tender (see `seccomp::embedded`): this
//! file uses only std and the libseccomp crate.

use std::borrow::Cow;
use std::fmt;

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// `CLOCK_REALTIME`.
const CLOCK_REALTIME: u64 = 0;
/// `CLOCK_MONOTONIC`.
const CLOCK_MONOTONIC: u64 = 1;
/// The console: fd 1 in the tender's process is the guest's stdout.
pub const CONSOLE_FD: u64 = 1;
/// The most fds a guest without devices may wait on: its two signalfds
/// (`signals`). The programs of `Policy::base(0..=EMBEDDED_POLLABLE_MAX)`
/// are generated at build time.
// The tender uses it in tests only; the build script, to generate.
#[allow(dead_code)]
pub const EMBEDDED_POLLABLE_MAX: u64 = 2;

/// A comparison of one system call argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// The whole 64-bit argument equals the value.
    Eq(u64),
    /// The argument is at most the value (unsigned).
    Le(u64),
    /// The argument with `mask` applied equals `value`: `arg & mask ==
    /// value`. With `mask = n - 1` for a power of two `n` and `value = 0`,
    /// the argument is a multiple of `n`.
    MaskedEq {
        /// Bits of the argument that are compared.
        mask: u64,
        /// What they must be.
        value: u64,
    },
}

/// One allowed form of a system call: all argument comparisons must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// System call name, as libseccomp knows it.
    pub syscall: &'static str,
    /// `(argument index, comparison)` pairs.
    pub args: Vec<(u32, Cmp)>,
    /// Why the guest needs it, for `docs/seccomp.md` and `--print-seccomp`.
    /// Device rules name their device and fd, e.g. `net transmit on tap fd
    /// 4 (service0)`.
    pub why: Cow<'static, str>,
}

impl Rule {
    /// A rule for `syscall` with comparisons `args`.
    pub fn new(
        syscall: &'static str,
        args: &[(u32, Cmp)],
        why: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self { syscall, args: args.to_vec(), why: why.into() }
    }

    /// A rule for `syscall` whose first argument, a file descriptor, must
    /// be exactly `fd`: how device modules pin their calls.
    pub fn on_fd(syscall: &'static str, fd: i32, why: impl Into<Cow<'static, str>>) -> Self {
        // A descriptor is never negative; the comparison is on the whole
        // 64-bit register, as the guest's hypercall passes it zero-extended.
        Self::new(syscall, &[(0, Cmp::Eq(fd as u32 as u64))], why)
    }
}

/// Everything the guest may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The allowed forms; a call matching none kills the process.
    pub rules: Vec<Rule>,
}

/// libseccomp refused an operation.
#[derive(Debug)]
pub struct Refused {
    /// What was being done, e.g. `rule write(arg0 == 1)`.
    pub what: String,
    /// libseccomp's error.
    pub source: libseccomp::error::SeccompError,
}

impl Policy {
    /// The rules every guest gets, whatever its devices: the console, the
    /// two clocks, waiting, and exiting. `pollable_fds` is how many fds
    /// the guest may wait on: the attached taps and the signalfds
    /// (`signals`; two unless the tender's caller ignores SIGTERM or SIGINT).
    pub fn base(pollable_fds: u64) -> Self {
        let rules = vec![
            Rule::new("write", &[(0, Cmp::Eq(CONSOLE_FD))], "console output (print!, log)"),
            Rule::new(
                "clock_gettime",
                &[(0, Cmp::Eq(CLOCK_MONOTONIC))],
                "monotonic time (Instant, sleep, timers)",
            ),
            Rule::new("clock_gettime", &[(0, Cmp::Eq(CLOCK_REALTIME))], "wall-clock time"),
            Rule::new(
                "ppoll",
                &[(1, Cmp::Le(pollable_fds)), (3, Cmp::Eq(0))],
                "idle until a deadline, a device or a signalfd is ready; no signal mask",
            ),
            Rule::new("exit_group", &[], "exit"),
        ];
        Self { rules }
    }

    /// Adds device rules.
    pub fn extend(&mut self, rules: impl IntoIterator<Item = Rule>) {
        self.rules.extend(rules);
    }

    /// Whether `self` and `other` make the same filter: the same rules in
    /// the same order, whatever their reasons.
    pub fn same_filter(&self, other: &Policy) -> bool {
        self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| a.syscall == b.syscall && a.args == b.args)
    }

    /// The rules with their reasons, one `# ` comment line each: the header
    /// `--print-seccomp` prints above libseccomp's text.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut names: Vec<_> = self.rules.iter().map(|r| r.syscall).collect();
        names.sort_unstable();
        names.dedup();
        let mut s = format!(
            "# nabla policy: {} rules, {} distinct system calls ({}); anything else kills\n",
            self.rules.len(),
            names.len(),
            names.join(", ")
        );
        let width = self.rules.iter().map(|r| r.to_string().len()).max().unwrap_or(0);
        for rule in &self.rules {
            let _ = writeln!(s, "#   allow {:<width$}  {}", rule.to_string(), rule.why);
        }
        s
    }

    /// A libseccomp context holding the policy: default action
    /// `KILL_PROCESS`, a call from another architecture killed as well.
    pub fn context(&self) -> Result<ScmpFilterContext, Refused> {
        let err = |what: String| move |source| Refused { what, source };
        let mut ctx = ScmpFilterContext::new(ScmpAction::KillProcess)
            .map_err(err("creating the filter".into()))?;
        ctx.set_act_badarch(ScmpAction::KillProcess)
            .map_err(err("setting the bad-architecture action".into()))?;
        for rule in &self.rules {
            let what = format!("rule {rule}");
            let syscall = ScmpSyscall::from_name(rule.syscall).map_err(err(what.clone()))?;
            let cmps: Vec<ScmpArgCompare> = rule
                .args
                .iter()
                .map(|&(arg, cmp)| match cmp {
                    Cmp::Eq(v) => ScmpArgCompare::new(arg, ScmpCompareOp::Equal, v),
                    Cmp::Le(v) => ScmpArgCompare::new(arg, ScmpCompareOp::LessOrEqual, v),
                    Cmp::MaskedEq { mask, value } => {
                        ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(mask), value)
                    }
                })
                .collect();
            ctx.add_rule_conditional_exact(ScmpAction::Allow, syscall, &cmps).map_err(err(what))?;
        }
        Ok(ctx)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.syscall)?;
        for (i, (arg, cmp)) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match cmp {
                Cmp::Eq(v) => write!(f, "arg{arg} == {v}")?,
                Cmp::Le(v) => write!(f, "arg{arg} <= {v}")?,
                Cmp::MaskedEq { mask, value } => write!(f, "arg{arg} & {mask:#x} == {value}")?,
            }
        }
        f.write_str(")")
    }
}
