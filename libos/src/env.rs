//! Arguments and environment, as the tender passed them.
//!
//! `tender [OPTIONS] APP [ARGS]...` gives the guest `APP` as its first
//! argument followed by `ARGS`, and each `--env KEY=VALUE` as an environment
//! entry. Both live in the read-only boot region for the life of the guest,
//! so they are handed out as `&'static str`.

use abi::BootStr;

use crate::rt::boot;

fn table(addr: impl Fn(&abi::BootInfo) -> (u64, u64)) -> &'static [BootStr] {
    match boot::info() {
        Some(info) => {
            let (ptr, count) = addr(info);
            boot::strs(ptr, count)
        }
        None => &[],
    }
}

/// Iterator over boot strings.
#[derive(Debug, Clone)]
pub struct Strings {
    inner: core::slice::Iter<'static, BootStr>,
}

impl Iterator for Strings {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        // The tender only passes UTF-8; skip anything else rather than fail.
        self.inner.by_ref().find_map(boot::str)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.inner.len()))
    }
}

/// The guest's arguments, the first being the application's path.
pub fn args() -> Strings {
    Strings { inner: table(|i| (i.argv, i.argc)).iter() }
}

/// The environment entries, each `KEY=VALUE`, split.
pub fn vars() -> impl Iterator<Item = (&'static str, &'static str)> {
    Strings { inner: table(|i| (i.envp, i.envc)).iter() }.filter_map(split_entry)
}

/// The value of environment variable `key`, if set (the last one wins).
pub fn var(key: &str) -> Option<&'static str> {
    lookup(vars(), key)
}

/// The contents of the file the host gave as the guest's `/etc/NAME`
/// (`tender --etc NAME=PATH`), if it gave one.
pub fn etc_file(name: &str) -> Option<&'static [u8]> {
    boot::etc_files().find(|(n, _)| *n == name).map(|(_, d)| d)
}

/// The files the host gave for the guest's `/etc`: name and contents.
pub fn etc_files() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    boot::etc_files()
}

fn split_entry(entry: &'static str) -> Option<(&'static str, &'static str)> {
    entry.split_once('=')
}

fn lookup<'a>(vars: impl Iterator<Item = (&'a str, &'a str)>, key: &str) -> Option<&'a str> {
    vars.filter(|(k, _)| *k == key).last().map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_definition_wins() {
        let entries = ["A=1", "B=2=3", "A=4", "NOEQ"];
        let vars = entries.iter().filter_map(|e| e.split_once('='));
        assert_eq!(lookup(vars.clone(), "A"), Some("4"));
        assert_eq!(lookup(vars.clone(), "B"), Some("2=3"));
        assert_eq!(lookup(vars, "NOEQ"), None);
    }

    #[test]
    fn without_boot_info_everything_is_empty() {
        assert_eq!(args().count(), 0);
        assert_eq!(var("PATH"), None);
    }
}
