//! The seccomp policy: which system calls the guest may make, with which
//! arguments, and the BPF program that enforces it.
//!
//! The policy is data ([`Rule`]s, each with the reason it exists) so that
//! `--print-seccomp` shows exactly what would be installed and tests can
//! inspect it. libseccomp turns it into BPF: default action `KILL_PROCESS`,
//! a call from another architecture killed as well, and every rule pinned to
//! its arguments. The program is exported through a memfd (Debian's
//! libseccomp 2.5 has no in-memory export) and the libseccomp context is
//! released before `launch` installs the program itself, so that nothing
//! (a `free` calling `brk`) runs between installation and the jump.
//!
//! The table, and which code path needs each call, is in `docs/seccomp.md`.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// `CLOCK_REALTIME`.
const CLOCK_REALTIME: u64 = 0;
/// `CLOCK_MONOTONIC`.
const CLOCK_MONOTONIC: u64 = 1;
/// The console: fd 1 in the tender's process is the guest's stdout.
pub const CONSOLE_FD: u64 = 1;
/// Most instructions a classic BPF program may have (`BPF_MAXINSNS`): the
/// kernel refuses a longer seccomp filter.
pub const BPF_MAXINSNS: usize = 4096;

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

/// Building or exporting the filter failed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// libseccomp refused an operation.
    #[error("seccomp: {what}: {source}")]
    Libseccomp {
        /// What was being done, e.g. `rule write(fd == 1)`.
        what: String,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
    /// Exporting through the memfd failed.
    #[error("seccomp: exporting the filter: {0}")]
    Export(#[source] std::io::Error),
    /// The exported program is not a whole number of instructions.
    #[error("seccomp: exported BPF program has {0} bytes, not a multiple of 8")]
    BadProgram(usize),
    /// The program is longer than the kernel accepts.
    #[error(
        "seccomp: the filter for these devices has {0} BPF instructions, more than the kernel's \
         limit of {BPF_MAXINSNS}: attach fewer devices"
    )]
    TooLong(usize),
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

    /// The distinct system calls the policy allows.
    #[cfg(test)]
    pub fn syscalls(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.rules.iter().map(|r| r.syscall).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// A libseccomp context holding the policy.
    fn context(&self) -> Result<ScmpFilterContext, SeccompError> {
        let err = |what: String| move |source| SeccompError::Libseccomp { what, source };
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

    /// libseccomp's pseudo-filter-code text for the policy: what
    /// `--print-seccomp` shows.
    pub fn pfc(&self) -> Result<String, SeccompError> {
        let mut out = String::new();
        export(&self.context()?, |ctx, fd| ctx.export_pfc(fd))?
            .read_to_string(&mut out)
            .map_err(SeccompError::Export)?;
        Ok(out)
    }

    /// The BPF program for the policy, ready to install.
    pub fn bpf(&self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let mut bytes = Vec::new();
        let ctx = self.context()?;
        export(&ctx, |ctx, fd| ctx.export_bpf(fd))?
            .read_to_end(&mut bytes)
            .map_err(SeccompError::Export)?;
        // Release libseccomp's memory now, long before the filter is loaded.
        drop(ctx);
        if bytes.len() % 8 != 0 {
            return Err(SeccompError::BadProgram(bytes.len()));
        }
        if bytes.len() / 8 > BPF_MAXINSNS {
            return Err(SeccompError::TooLong(bytes.len() / 8));
        }
        Ok(bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect())
    }
}

/// Runs an export into a fresh memfd and returns it, rewound.
fn export(
    ctx: &ScmpFilterContext,
    f: impl FnOnce(&ScmpFilterContext, &File) -> Result<(), libseccomp::error::SeccompError>,
) -> Result<File, SeccompError> {
    let file = memfd().map_err(SeccompError::Export)?;
    f(ctx, &file).map_err(|source| SeccompError::Libseccomp { what: "export".into(), source })?;
    let mut file = file;
    file.rewind().map_err(SeccompError::Export)?;
    Ok(file)
}

#[allow(unsafe_code)]
fn memfd() -> std::io::Result<File> {
    // SAFETY: the name is a valid NUL-terminated string; memfd_create takes
    // no other pointers.
    let fd = unsafe { libc::memfd_create(c"tender-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_policy_is_four_calls() {
        let p = Policy::base(0);
        assert_eq!(p.syscalls(), ["clock_gettime", "exit_group", "ppoll", "write"]);
        assert_eq!(p.rules[0].to_string(), "write(arg0 == 1)");
        assert_eq!(p.rules[3].to_string(), "ppoll(arg1 <= 0, arg3 == 0)");
    }

    #[test]
    fn pfc_names_every_rule_and_kills_by_default() {
        let pfc = Policy::base(0).pfc().unwrap();
        for name in ["write", "clock_gettime", "ppoll", "exit_group"] {
            assert!(pfc.contains(&format!("if ($syscall == {})", syscall_nr(name))), "{pfc}");
        }
        assert!(pfc.contains("action KILL_PROCESS"), "{pfc}");
        assert!(!pfc.contains("ALLOW;\n# default action"), "{pfc}");
    }

    /// What a tap on `fd` adds: the same rules `devices::net` makes.
    fn tap_rules(fd: i32) -> [Rule; 2] {
        [
            Rule::on_fd("read", fd, format!("net receive on tap fd {fd} (service0)")),
            Rule::on_fd("write", fd, format!("net transmit on tap fd {fd} (service0)")),
        ]
    }

    #[test]
    fn one_tap_makes_seven_rules_over_five_calls() {
        let mut p = Policy::base(1);
        p.extend(tap_rules(4));
        assert_eq!(p.rules.len(), 7);
        assert_eq!(p.syscalls(), ["clock_gettime", "exit_group", "ppoll", "read", "write"]);
        assert_eq!(p.rules[3].to_string(), "ppoll(arg1 <= 1, arg3 == 0)");
        let text = p.describe();
        assert!(text.starts_with("# nabla policy: 7 rules, 5 distinct system calls"), "{text}");
        let line = |rule: &str| text.lines().find(|l| l.contains(rule)).unwrap_or_default();
        assert!(line("allow read(arg0 == 4) ").ends_with(" net receive on tap fd 4 (service0)"));
        assert!(line("allow write(arg0 == 4) ").ends_with(" net transmit on tap fd 4 (service0)"));
        let pfc = p.pfc().unwrap();
        assert!(pfc.contains(&format!("if ($syscall == {})", syscall_nr("read"))), "{pfc}");
    }

    #[test]
    fn sixty_three_taps_fit_in_one_program() {
        let mut p = Policy::base(abi::MAX_DEVICES as u64);
        for fd in 0..abi::MAX_DEVICES as i32 {
            p.extend(tap_rules(3 + fd));
        }
        let prog = p.bpf().unwrap();
        assert!(prog.len() < BPF_MAXINSNS, "BPF_MAXINSNS: {}", prog.len());
    }

    #[test]
    fn masked_comparisons_show_and_compile() {
        let r = Rule::new(
            "pread64",
            &[(0, Cmp::Eq(4)), (2, Cmp::MaskedEq { mask: !511, value: 0 }), (3, Cmp::Le(1024))],
            "test",
        );
        assert_eq!(
            r.to_string(),
            "pread64(arg0 == 4, arg2 & 0xfffffffffffffe00 == 0, arg3 <= 1024)"
        );
        let mut p = Policy::base(0);
        p.extend([r]);
        let pfc = p.pfc().unwrap();
        assert!(pfc.contains("if ($a2.hi32 & 0xffffffff == 0)"), "{pfc}");
        assert!(pfc.contains("if ($a2.lo32 & 0xfffffe00 == 0)"), "{pfc}");
    }

    #[test]
    fn libseccomp_refuses_two_comparisons_of_one_argument() {
        // Why the block rules fold a count's bound and alignment into one
        // masked comparison (`devices::block::rules`).
        let mut p = Policy::base(0);
        p.extend([Rule::new(
            "pread64",
            &[(2, Cmp::Le(4096)), (2, Cmp::MaskedEq { mask: 511, value: 0 })],
            "x",
        )]);
        assert!(matches!(p.bpf(), Err(SeccompError::Libseccomp { .. })));
    }

    #[test]
    fn bpf_exports_whole_instructions() {
        let prog = Policy::base(0).bpf().unwrap();
        assert!(prog.len() > 10);
        // The first instruction loads the architecture (seccomp_data.arch at offset 4).
        assert_eq!(prog[0].k, 4);
    }

    fn syscall_nr(name: &str) -> i32 {
        ScmpSyscall::from_name(name).unwrap().as_raw_syscall()
    }
}
