//! The policy as data, and libseccomp's filter for it.
//!
//! Shared by the tender (`seccomp.rs`) and its build script, which has
//! libseccomp generate the programs of the usual policies (the base rules,
//! taps' and disks' rules, made here) and compiles them into the tender as
//! templates ([`Template`], [`Policy::bpf_from_template`], `seccomp::templated`):
//! this file uses only std, `abi` and the libseccomp crate.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// `CLOCK_REALTIME`.
const CLOCK_REALTIME: u64 = 0;
/// `CLOCK_MONOTONIC`.
const CLOCK_MONOTONIC: u64 = 1;
/// The console: fd 1 in the tender's process is the guest's stdout.
pub const CONSOLE_FD: u64 = 1;
/// The most signalfds a guest waits on (`signals`): SIGTERM's and SIGINT's.
// The tender uses it in tests only; the build script, to generate.
#[allow(dead_code)]
pub const MAX_SIGNAL_FDS: u64 = 2;

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

/// The seccomp rules for a tap on `fd` attached as device `name`.
pub fn tap_rules(name: &str, fd: i32) -> Vec<Rule> {
    vec![
        Rule::on_fd("read", fd, format!("net receive on tap fd {fd} ({name})")),
        Rule::on_fd("write", fd, format!("net transmit on tap fd {fd} ({name})")),
    ]
}

/// The transfer sizes the filter allows on a disk, from `abi::block_tiers`:
/// without duplicates (at large sector sizes the middle tier is the
/// largest) and without those larger than the disk, for which no offset
/// would do.
pub fn disk_tiers(sector_size: u32, capacity: u64) -> Vec<u64> {
    let mut tiers: Vec<u64> =
        abi::block_tiers(u64::from(sector_size)).into_iter().filter(|&t| t <= capacity).collect();
    tiers.dedup();
    tiers
}

/// The seccomp rules for a disk on `fd` attached as device `name`.
///
/// For each call (`pread64`, and `pwrite64` unless read-only) and each
/// tier `T` of [`disk_tiers`], with `S` the sector size:
///
/// * if `T == S`: the count is 0 or `S` (`count & !S == 0`);
/// * otherwise: the count is a whole number of sectors below `T`
///   (`count & (!(T - 1) | (S - 1)) == 0`, as `T` and `S` are powers of
///   two), or exactly `T` (`count == T`);
///
/// and in each rule the offset is at most `capacity - T`. So every allowed
/// call has `offset + count <= capacity`. libseccomp allows one comparison
/// per argument in a rule, which is why the count's alignment and bound
/// are one masked comparison, and why the offset's alignment is not
/// checked (a misaligned offset still ends inside the disk). A writable
/// disk also gets `fdatasync` on its fd.
pub fn disk_rules(
    name: &str,
    fd: i32,
    capacity: u64,
    sector_size: u32,
    read_only: bool,
) -> Vec<Rule> {
    let ss = u64::from(sector_size);
    let fd_arg = (0, Cmp::Eq(fd as u32 as u64));
    let calls: &[(&'static str, &str)] = if read_only {
        &[("pread64", "read")]
    } else {
        &[("pread64", "read"), ("pwrite64", "write")]
    };
    let mut rules = Vec::new();
    for &(call, verb) in calls {
        let what = format!("block {verb} on disk fd {fd} ({name})");
        for t in disk_tiers(sector_size, capacity) {
            let offset = (3, Cmp::Le(capacity - t));
            let end = format!("ending inside {capacity} bytes");
            if t == ss {
                rules.push(Rule::new(
                    call,
                    &[fd_arg, (2, Cmp::MaskedEq { mask: !ss, value: 0 }), offset],
                    format!("{what}: 0 or 1 sector of {ss} bytes, {end}"),
                ));
            } else {
                rules.push(Rule::new(
                    call,
                    &[fd_arg, (2, Cmp::MaskedEq { mask: !(t - 1) | (ss - 1), value: 0 }), offset],
                    format!("{what}: whole sectors of {ss} bytes, fewer than {t} bytes, {end}"),
                ));
                rules.push(Rule::new(
                    call,
                    &[fd_arg, (2, Cmp::Eq(t)), offset],
                    format!("{what}: {t} bytes, {end}"),
                ));
            }
        }
    }
    if !read_only {
        rules.push(Rule::on_fd(
            "fdatasync",
            fd,
            format!("block flush on disk fd {fd} ({name}): durable writes"),
        ));
    }
    rules
}

/// The seccomp rules for the flush eventfds of a writable disk
/// (`abi::DEVICE_FLAG_FLUSH_EVENTFDS`), attached as device `name`: the
/// guest writes requests to `request` and reads answers from `done` (and
/// neither the other way round). Waiting on `done` raises the `ppoll`
/// bound by one, which the caller counts.
pub fn flush_channel_rules(name: &str, request: i32, done: i32) -> Vec<Rule> {
    vec![
        Rule::on_fd(
            "read",
            done,
            format!("block flush done, on flush completion fd {done} ({name})"),
        ),
        Rule::on_fd(
            "write",
            request,
            format!("block flush request, on flush request fd {request} ({name})"),
        ),
    ]
}

/// A program libseccomp generated when the tender was built, for a policy
/// of the same shape as `rules`: the same calls, arguments and kinds of
/// comparison in the same order, the same masks, but other values
/// (another fd, another disk size, another `ppoll` bound). See
/// [`Policy::bpf_from_template`].
#[derive(Debug, PartialEq, Eq)]
pub struct Template<'a> {
    /// The policy it was generated for, rule by rule: the call and its
    /// comparisons.
    pub rules: Vec<(&'a str, Vec<(u32, Cmp)>)>,
    /// libseccomp's export of that policy.
    pub program: &'a [u8],
}

/// The templates as one block of bytes, which the tender includes as it
/// is: a table of pointers would be relocated at every start of the
/// static PIE, a write to each of its pages (8 more page faults for 50
/// templates, measured).
///
/// Layout, little-endian: the count (`u32`); for each template, its
/// number of rules (`u32`) and the offset of its body (`u32`); the bodies.
/// A body: for each rule, the length of the call's name (`u8`), the name,
/// the number of comparisons (`u8`) and each as argument (`u8`), kind
/// (`u8`: 0 `Eq`, 1 `Le`, 2 `MaskedEq`), value (`u64`) and mask (`u64`);
/// then the program's length (`u32`) and the program.
// The build script's; the tender only reads.
#[allow(dead_code)]
pub fn encode_templates(templates: &[Template<'_>]) -> Vec<u8> {
    let mut index = (templates.len() as u32).to_le_bytes().to_vec();
    let mut bodies = Vec::new();
    let head = 4 + 8 * templates.len();
    for t in templates {
        index.extend((t.rules.len() as u32).to_le_bytes());
        index.extend(((head + bodies.len()) as u32).to_le_bytes());
        for (name, args) in &t.rules {
            bodies.push(name.len() as u8);
            bodies.extend(name.as_bytes());
            bodies.push(args.len() as u8);
            for &(arg, cmp) in args {
                let (kind, value, mask) = match cmp {
                    Cmp::Eq(v) => (0, v, 0),
                    Cmp::Le(v) => (1, v, 0),
                    Cmp::MaskedEq { mask, value } => (2, value, mask),
                };
                bodies.extend([arg as u8, kind]);
                bodies.extend(value.to_le_bytes());
                bodies.extend(mask.to_le_bytes());
            }
        }
        bodies.extend((t.program.len() as u32).to_le_bytes());
        bodies.extend(t.program);
    }
    index.extend(bodies);
    index
}

/// Reads `encode_templates`' bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// The templates of `blob` (`encode_templates`) with `rules` rules, or all
/// of them (`None`), in order; `None` in place of a template it cannot
/// read.
pub fn templates(blob: &[u8], rules: Option<usize>) -> impl Iterator<Item = Option<Template<'_>>> {
    let mut index = Reader(blob);
    let count = index.u32().unwrap_or(0);
    (0..count).filter_map(move |_| {
        let (Some(n), Some(at)) = (index.u32(), index.u32()) else { return Some(None) };
        if rules.is_some_and(|r| r != n as usize) {
            return None;
        }
        Some(decode_template(blob.get(at as usize..)?, n))
    })
}

fn decode_template(body: &[u8], n: u32) -> Option<Template<'_>> {
    let mut r = Reader(body);
    let mut rules = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = r.u8()?;
        let name = std::str::from_utf8(r.take(usize::from(len))?).ok()?;
        let nargs = r.u8()?;
        let mut args = Vec::with_capacity(usize::from(nargs));
        for _ in 0..nargs {
            let (arg, kind, value, mask) = (r.u8()?, r.u8()?, r.u64()?, r.u64()?);
            args.push((
                u32::from(arg),
                match kind {
                    0 => Cmp::Eq(value),
                    1 => Cmp::Le(value),
                    2 => Cmp::MaskedEq { mask, value },
                    _ => return None,
                },
            ));
        }
        rules.push((name, args));
    }
    let len = r.u32()?;
    Some(Template { rules, program: r.take(len as usize)? })
}

/// The value libseccomp compares an argument with: for a masked
/// comparison, the value under the mask.
fn datum(cmp: Cmp) -> u64 {
    match cmp {
        Cmp::Eq(v) | Cmp::Le(v) => v,
        Cmp::MaskedEq { mask, value } => value & mask,
    }
}

/// Whether `a` (of a policy) can take the place of `b` (of a template):
/// the same kind of comparison, and a masked one exactly the same.
fn fits(a: Cmp, b: Cmp) -> bool {
    match (a, b) {
        (Cmp::Eq(_), Cmp::Eq(_)) | (Cmp::Le(_), Cmp::Le(_)) => true,
        (Cmp::MaskedEq { .. }, Cmp::MaskedEq { .. }) => a == b,
        _ => false,
    }
}

/// How two values compared on the same argument stand to each other, as
/// libseccomp looks at them: in the same call's tree (`same_call`), the
/// order of their high halves, of their low halves and of the whole
/// values; across calls, whether their halves are equal.
fn relation(same_call: bool, x: u64, y: u64) -> [Ordering; 3] {
    let (hi, lo) = ((x >> 32).cmp(&(y >> 32)), (x as u32).cmp(&(y as u32)));
    if same_call {
        [hi, lo, x.cmp(&y)]
    } else {
        let eq = |o: Ordering| if o.is_eq() { Ordering::Equal } else { Ordering::Less };
        [eq(hi), eq(lo), Ordering::Equal]
    }
}

/// Offset of the system call's arguments in `struct seccomp_data`.
const ARGS_OFFSET: u32 = 16;

/// Classic BPF opcodes the programs use.
mod op {
    pub const CLASS: u16 = 0x07;
    pub const LD_W_ABS: u16 = 0x20;
    pub const ALU_AND_K: u16 = 0x54;
    pub const JMP: u16 = 0x05;
    pub const JA: u16 = 0x05;
    pub const JMP_OP: u16 = 0xf0;
    pub const JMP_X: u16 = 0x08;
    pub const RET: u16 = 0x06;
}

/// `program` with the argument values of `pairs` replaced: each
/// `(argument, template value, policy value)`. A conditional jump's
/// constant is replaced when the accumulator holds a half of that argument
/// and the constant is the same half of the template's value.
///
/// The accumulator is followed through the program (classic BPF jumps
/// only forward): `None` when an instruction is not one libseccomp emits
/// for these policies, when a comparison is reached by paths that loaded
/// different words, or when a constant compared with an argument is none
/// of the template's values for it.
pub(crate) fn patch(program: &[u8], pairs: &[(u32, u64, u64)]) -> Option<Vec<u8>> {
    const UNREACHED: u32 = u32::MAX;
    const NOTHING: u32 = u32::MAX - 1;
    const MIXED: u32 = u32::MAX - 2;
    if program.is_empty() || !program.len().is_multiple_of(8) {
        return None;
    }
    let mut out = program.to_vec();
    let n = out.len() / 8;
    let mut acc = vec![UNREACHED; n];
    acc[0] = NOTHING;
    let reach = |acc: &mut Vec<u32>, at: usize, state: u32| -> Option<()> {
        let slot = acc.get_mut(at)?;
        if *slot == UNREACHED {
            *slot = state;
        } else if *slot != state {
            *slot = MIXED;
        }
        Some(())
    };
    for i in 0..n {
        let ins = &mut out[i * 8..i * 8 + 8];
        let code = u16::from_ne_bytes([ins[0], ins[1]]);
        let (jt, jf) = (usize::from(ins[2]), usize::from(ins[3]));
        let k = u32::from_ne_bytes([ins[4], ins[5], ins[6], ins[7]]);
        let state = acc[i];
        if state == UNREACHED {
            continue;
        }
        match code & op::CLASS {
            0 if code == op::LD_W_ABS => reach(&mut acc, i + 1, k)?,
            4 if code == op::ALU_AND_K && state != MIXED => reach(&mut acc, i + 1, state)?,
            op::RET => {}
            op::JMP if code & op::JMP_OP == 0 && code == op::JA => {
                reach(&mut acc, i + 1 + k as usize, state)?
            }
            op::JMP if code & op::JMP_X == 0 && code & op::JMP_OP <= 0x40 => {
                if state == NOTHING || state == MIXED {
                    return None;
                }
                if state >= ARGS_OFFSET {
                    let arg = (state - ARGS_OFFSET) / 8;
                    let high = (state - ARGS_OFFSET) % 8 == 4;
                    let half = |v: u64| if high { (v >> 32) as u32 } else { v as u32 };
                    let &(_, _, now) =
                        pairs.iter().find(|&&(a, was, _)| a == arg && half(was) == k)?;
                    ins[4..8].copy_from_slice(&half(now).to_ne_bytes());
                }
                reach(&mut acc, i + 1 + jt, state)?;
                reach(&mut acc, i + 1 + jf, state)?;
            }
            _ => return None,
        }
    }
    Some(out)
}

impl Policy {
    /// libseccomp's program for this policy, made from `template`'s
    /// without libseccomp, if the template is for a policy of the same
    /// shape and libseccomp would make the same program for both but for
    /// the values.
    ///
    /// libseccomp's output depends on the values only through how they
    /// compare with each other on the same argument: `db.c` orders and
    /// merges the comparisons of an argument within a call's tree by value
    /// (each half, and the whole value for the high half's node), and
    /// `gen_bpf.c` shares identical blocks anywhere in the program, which
    /// compare the same half of the same argument (a block's accumulator
    /// state is part of its identity). So the template applies when, for
    /// every two comparisons of the same argument, the policy's values
    /// stand as the template's do: in order within a call, in equality
    /// across calls. The program is then the template's with each
    /// value replaced ([`patch`]). `templates_are_libseccomp_s` (tests)
    /// proves it for every device combination the build script generates
    /// and a spread of fds, bounds and disk sizes.
    pub fn bpf_from_template(&self, template: &Template) -> Option<Vec<u8>> {
        if self.rules.len() != template.rules.len() {
            return None;
        }
        let mut pairs = Vec::new();
        let mut calls = Vec::new();
        for (rule, (syscall, args)) in self.rules.iter().zip(&template.rules) {
            if rule.syscall != *syscall || rule.args.len() != args.len() {
                return None;
            }
            for (&(arg, cmp), &(was_arg, was)) in rule.args.iter().zip(args) {
                if arg != was_arg || !fits(cmp, was) {
                    return None;
                }
                calls.push(*syscall);
                pairs.push((arg, datum(was), datum(cmp)));
            }
        }
        for (i, &(a, was_a, now_a)) in pairs.iter().enumerate() {
            for (j, &(b, was_b, now_b)) in pairs.iter().enumerate().skip(i + 1) {
                let same = calls[i] == calls[j];
                if a == b && relation(same, was_a, was_b) != relation(same, now_a, now_b) {
                    return None;
                }
            }
        }
        patch(template.program, &pairs)
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
