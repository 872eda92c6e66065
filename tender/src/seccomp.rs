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
//! The policies of guests without devices (the same rules but for how many
//! signalfds the guest may wait on) do not need libseccomp at run time: the
//! build script has it generate their programs, compiled into the tender
//! ([`embedded`]); a test proves each equals what libseccomp makes at run
//! time. A policy with devices names their fds and disk sizes, and is
//! generated at every start.
//!
//! The table, and which code path needs each call, is in `docs/seccomp.md`.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::ScmpFilterContext;

mod policy;

#[cfg(test)]
use policy::EMBEDDED_POLLABLE_MAX;
pub use policy::{Cmp, Policy, Rule};

/// Most instructions a classic BPF program may have (`BPF_MAXINSNS`): the
/// kernel refuses a longer seccomp filter.
pub const BPF_MAXINSNS: usize = 4096;

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

impl From<policy::Refused> for SeccompError {
    fn from(r: policy::Refused) -> Self {
        Self::Libseccomp { what: r.what, source: r.source }
    }
}

impl Policy {
    /// The distinct system calls the policy allows.
    #[cfg(test)]
    pub fn syscalls(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.rules.iter().map(|r| r.syscall).collect();
        names.sort_unstable();
        names.dedup();
        names
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

    /// The BPF program for the policy, ready to install: compiled in for
    /// a policy without devices ([`embedded`]), else libseccomp's.
    pub fn bpf(&self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let bytes = match embedded(self) {
            Some(program) => Cow::Borrowed(program),
            None => Cow::Owned(self.libseccomp_bpf()?),
        };
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

    /// The program libseccomp makes for the policy now, as the bytes it
    /// exports.
    pub fn libseccomp_bpf(&self) -> Result<Vec<u8>, SeccompError> {
        let mut bytes = Vec::new();
        let ctx = self.context()?;
        export(&ctx, |ctx, fd| ctx.export_bpf(fd))?
            .read_to_end(&mut bytes)
            .map_err(SeccompError::Export)?;
        // Release libseccomp's memory now, long before the filter is loaded.
        drop(ctx);
        Ok(bytes)
    }
}

/// The programs of `Policy::base(n)`, for `n` in `0..=EMBEDDED_POLLABLE_MAX`,
/// as libseccomp exported them when the tender was built (`build.rs`):
/// `(n, bytes)`.
static EMBEDDED: &[(u64, &[u8])] = include!(concat!(env!("OUT_DIR"), "/seccomp_embedded.rs"));

/// The compiled-in program of `policy`, if it is the policy of a guest
/// without devices.
///
/// Why: libseccomp, at every start, probes the kernel with eight
/// `seccomp()` calls, builds its rule database on the heap and exports the
/// program through a memfd (another eight system calls and a page of
/// shared memory). The program depends only on the policy and libseccomp's
/// version, both fixed when the tender is built; nothing is read from
/// outside the binary, so nothing can tamper with it. `bpf_is_libseccomp_s`
/// (tests) proves each equals what libseccomp makes.
pub fn embedded(policy: &Policy) -> Option<&'static [u8]> {
    EMBEDDED.iter().find(|(n, _)| policy.same_filter(&Policy::base(*n))).map(|&(_, bytes)| bytes)
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

#[cfg(test)]
mod tests {
    use super::*;
    use libseccomp::ScmpSyscall;

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

    #[test]
    fn bpf_is_libseccomp_s_for_every_embedded_policy() {
        // Every device-less policy a run can make: 0, 1 or 2 signalfds.
        let ns: Vec<u64> = EMBEDDED.iter().map(|&(n, _)| n).collect();
        assert_eq!(ns, (0..=EMBEDDED_POLLABLE_MAX).collect::<Vec<_>>());
        for n in 0..=EMBEDDED_POLLABLE_MAX {
            let policy = Policy::base(n);
            let now = policy.libseccomp_bpf().unwrap();
            assert_eq!(embedded(&policy), Some(now.as_slice()), "base({n})");
            let installed: Vec<u8> = policy
                .bpf()
                .unwrap()
                .iter()
                .flat_map(|f| {
                    let mut b = f.code.to_ne_bytes().to_vec();
                    b.extend([f.jt, f.jf]);
                    b.extend(f.k.to_ne_bytes());
                    b
                })
                .collect();
            assert_eq!(installed, now, "base({n})");
        }
        // The programs differ where the policies do (ppoll's bound).
        assert_ne!(embedded(&Policy::base(0)), embedded(&Policy::base(1)));
    }

    #[test]
    fn other_policies_are_built_by_libseccomp() {
        assert_eq!(embedded(&Policy::base(EMBEDDED_POLLABLE_MAX + 1)), None);
        let mut tap = Policy::base(1);
        tap.extend(tap_rules(4));
        assert_eq!(embedded(&tap), None);
        let mut reordered = Policy::base(2);
        reordered.rules.swap(1, 2);
        assert_eq!(embedded(&reordered), None);
        let mut changed = Policy::base(2);
        changed.rules[0].args[0].1 = Cmp::Eq(2);
        assert_eq!(embedded(&changed), None);
        // Reasons are not part of the program.
        let mut reworded = Policy::base(2);
        reworded.rules[0].why = "another reason".into();
        assert!(embedded(&reworded).is_some());
        // And the program libseccomp makes for them is what bpf() returns.
        assert_eq!(tap.bpf().unwrap().len() * 8, tap.libseccomp_bpf().unwrap().len());
    }

    fn syscall_nr(name: &str) -> i32 {
        ScmpSyscall::from_name(name).unwrap().as_raw_syscall()
    }
}
