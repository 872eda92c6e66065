//! Parsing `/proc/PID/smaps` and `/proc/PID/smaps_rollup`.
//!
//! Both are a sequence of mappings: a header line
//! (`start-end perms offset dev inode [path]`, `[rollup]` for the rollup)
//! followed by `Name:   value kB` lines. Lines whose value is not in kB
//! (`VmFlags:`, `THPeligible:`) are skipped.

/// One mapping of `/proc/PID/smaps` with its kB-valued fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions, e.g. `r-xp`.
    pub perms: String,
    /// The mapped file or pseudo-name (`[heap]`), if any.
    pub path: Option<String>,
    /// `(name, kB)` in file order, e.g. `("Pss", 12)`.
    pub fields: Vec<(String, u64)>,
}

impl Mapping {
    /// The value of field `name` in kB, if present.
    pub fn field(&self, name: &str) -> Option<u64> {
        self.fields.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// Parses a header line `start-end perms offset dev inode [path]`.
fn parse_header(line: &str) -> Option<Mapping> {
    let mut parts = line.split_whitespace();
    let (start, end) = parts.next()?.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let perms = parts.next()?;
    if perms.len() != 4 {
        return None;
    }
    let _offset = parts.next()?;
    let _dev = parts.next()?;
    let _inode = parts.next()?;
    let path = parts.collect::<Vec<_>>().join(" ");
    Some(Mapping {
        start,
        end,
        perms: perms.to_string(),
        path: (!path.is_empty()).then_some(path),
        fields: Vec::new(),
    })
}

/// Parses a field line `Name:   123 kB`; `None` for any other line.
fn parse_field(line: &str) -> Option<(String, u64)> {
    let (name, rest) = line.split_once(':')?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let mut rest = rest.split_whitespace();
    let value = rest.next()?.parse().ok()?;
    (rest.next()? == "kB" && rest.next().is_none()).then(|| (name.to_string(), value))
}

/// Every mapping of an smaps (or smaps_rollup) text, in order.
pub fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut maps: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some((name, value)) = parse_field(line) {
            if let Some(m) = maps.last_mut() {
                m.fields.push((name, value));
            }
        } else if let Some(m) = parse_header(line) {
            maps.push(m);
        }
    }
    maps
}

/// The value in kB of field `name` (e.g. `Pss`) in a `smaps_rollup` text.
pub fn rollup_field(text: &str, name: &str) -> Option<u64> {
    text.lines().filter_map(parse_field).find(|(n, _)| n == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLLUP: &str = "\
00100000-7ffc5a1f1000 ---p 00000000 00:00 0                              [rollup]
Rss:                2304 kB
Pss:                 611 kB
Pss_Dirty:           180 kB
Pss_Anon:            180 kB
Pss_File:            431 kB
Pss_Shmem:             0 kB
Shared_Clean:       2112 kB
Shared_Dirty:          0 kB
Private_Clean:        12 kB
Private_Dirty:       180 kB
Referenced:         2304 kB
Anonymous:           180 kB
";

    const SMAPS: &str = "\
00100000-00104000 r-xp 00001000 fd:01 5243026                            /work/main/target/release/guest basics
Size:                 16 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                  16 kB
Pss:                   0 kB
Pss_Dirty:             0 kB
Shared_Clean:         16 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
THPeligible:    0
VmFlags: rd ex mr mw me
00104000-00105000 r--p 00005000 fd:01 5243026                            /work/main/target/release/guest basics
Size:                  4 kB
Rss:                   4 kB
Pss:                   1 kB
00106000-03ef0000 rw-p 00000000 00:00 0 
Size:              63400 kB
Rss:                   8 kB
Pss:                   8 kB
Private_Dirty:         8 kB
7ffc5a1d0000-7ffc5a1f1000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
";

    #[test]
    fn rollup_pss() {
        assert_eq!(rollup_field(ROLLUP, "Pss"), Some(611));
        assert_eq!(rollup_field(ROLLUP, "Rss"), Some(2304));
        assert_eq!(rollup_field(ROLLUP, "Pss_Anon"), Some(180));
        // "Pss" must not match "Pss_Dirty" and friends, nor a missing field.
        assert_eq!(rollup_field("Pss_Dirty: 5 kB\n", "Pss"), None);
        assert_eq!(rollup_field(ROLLUP, "Swap"), None);
        assert_eq!(rollup_field("", "Pss"), None);
    }

    #[test]
    fn rollup_parses_as_one_mapping() {
        let maps = parse_smaps(ROLLUP);
        assert_eq!(maps.len(), 1);
        assert_eq!(maps[0].path.as_deref(), Some("[rollup]"));
        assert_eq!(maps[0].field("Pss"), Some(611));
        assert_eq!(maps[0].fields.len(), 12);
    }

    #[test]
    fn smaps_mappings_and_fields() {
        let maps = parse_smaps(SMAPS);
        assert_eq!(maps.len(), 4);

        let text = &maps[0];
        assert_eq!((text.start, text.end), (0x0010_0000, 0x0010_4000));
        assert_eq!(text.perms, "r-xp");
        assert_eq!(text.path.as_deref(), Some("/work/main/target/release/guest basics"));
        assert_eq!(text.field("Rss"), Some(16));
        assert_eq!(text.field("Pss"), Some(0));
        assert_eq!(text.field("Shared_Clean"), Some(16));
        assert_eq!(text.field("Private_Dirty"), Some(0));
        // Values that are not in kB are skipped.
        assert_eq!(text.field("THPeligible"), None);
        assert_eq!(text.field("VmFlags"), None);

        assert_eq!(maps[2].path, None);
        assert_eq!(maps[2].field("Private_Dirty"), Some(8));
        assert_eq!(maps[3].start, 0x7ffc_5a1d_0000);
        assert_eq!(maps[3].path.as_deref(), Some("[stack]"));
    }

    #[test]
    fn field_lines() {
        assert_eq!(parse_field("Pss:   12 kB"), Some(("Pss".into(), 12)));
        assert_eq!(parse_field("THPeligible:    0"), None);
        assert_eq!(parse_field("VmFlags: rd ex mr"), None);
        assert_eq!(parse_field("Pss: 12 kB extra"), None);
        assert_eq!(parse_field("00100000-00104000 r-xp 00001000 fd:01 1 /a:b"), None);
    }

    #[test]
    fn garbage_is_ignored() {
        assert!(parse_smaps("hello\nPss: 1 kB\n").is_empty());
        assert!(parse_header("zz-00 r-xp 0 0 0").is_none());
        assert!(parse_header("00-10 r-x 0 0 0").is_none());
    }
}
