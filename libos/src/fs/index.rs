//! A per-directory name index: which slot each name's entry starts at, and
//! which slots are free, so that a lookup or a create in a directory of n
//! entries costs O(log n) instead of a scan of the directory.
//!
//! An index is built by the first lookup in a directory (the same scan that
//! answers it), then kept up to date by every change this volume makes to
//! the directory (create, remove, mkdir); a rename or an error drops the
//! indexes it touches, and freeing a chain drops the index of a directory
//! that started there. Keys are 64-bit hashes of the case-folded long and
//! short names: a hit is checked against the disk (the entry is parsed from
//! its slots and its name compared, as a scan does), so a collision or a
//! stale index costs a scan, never a wrong answer; a miss is trusted (the
//! volume is the disk's only writer). Memory is bounded: at most
//! [`MAX_DIRS`] directories (least recently used dropped first) and
//! [`MAX_ITEMS`] keys and free slots in all, so a hostile disk cannot make
//! it grow without bound (a directory that does not fit is scanned).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::dir::DirLoc;

/// Most directories indexed at once.
pub(crate) const MAX_DIRS: usize = 8;
/// Most keys and free slots held by all indexes together (about 2 MiB).
pub(crate) const MAX_ITEMS: usize = 1 << 16;

/// The hash of `name` case-folded as [`super::name::same`] compares names
/// (FNV-1a over its characters in upper case).
pub(crate) fn key(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in name.chars().flat_map(char::to_uppercase) {
        for b in u32::from(c).to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// One directory's index. Slots are numbered from 0 in directory order.
#[derive(Debug, Default)]
pub(crate) struct DirIndex {
    /// A chain directory's clusters, in order (empty for a fixed root).
    pub clusters: Vec<u32>,
    /// (name hash, first slot of the entry), for the long and short names.
    pub keys: BTreeSet<(u64, u32)>,
    /// Deleted (0xe5) slots before `end`.
    pub holes: BTreeSet<u32>,
    /// The first slot of the free tail (the end marker), or `cap`.
    pub end: u32,
    /// Slots the directory's space holds.
    pub cap: u32,
    /// The build went past [`MAX_ITEMS`]: not to be kept.
    pub over: bool,
}

impl DirIndex {
    pub fn items(&self) -> usize {
        self.keys.len() + self.holes.len()
    }

    /// Notes an item; past the budget, the index gives up (and frees).
    pub fn check_budget(&mut self) {
        if self.items() > MAX_ITEMS {
            self.over = true;
            self.keys = BTreeSet::new();
            self.holes = BTreeSet::new();
        }
    }

    /// First slots of the entries whose names hash to `k`.
    pub fn candidates(&self, k: u64) -> Vec<u32> {
        self.keys.range((k, 0)..=(k, u32::MAX)).map(|&(_, i)| i).collect()
    }

    /// Whether a name hashing to `k` may be in the directory.
    pub fn may_have(&self, k: u64) -> bool {
        self.keys.range((k, 0)..=(k, u32::MAX)).next().is_some()
    }

    /// Slots `[start, start + n)` now hold an entry whose names hash to
    /// `keys`.
    pub fn add(&mut self, start: u32, n: u32, keys: [u64; 2]) {
        for i in start..start + n {
            self.holes.remove(&i);
        }
        self.end = self.end.max(start + n);
        for k in keys {
            self.keys.insert((k, start));
        }
    }

    /// The entry at slots `slots` (first one first) is gone.
    pub fn remove(&mut self, slots: &[u32], keys: [u64; 2]) {
        if let Some(&first) = slots.first() {
            for k in keys {
                self.keys.remove(&(k, first));
            }
        }
        for &i in slots {
            if i < self.end {
                self.holes.insert(i);
            }
        }
    }
}

/// The indexes of a volume: most recently used first.
#[derive(Debug, Default)]
pub(crate) struct Indexes {
    list: Vec<(DirLoc, DirIndex)>,
}

impl Indexes {
    /// Takes `dir`'s index out (to be put back with [`Indexes::put`]).
    pub fn take(&mut self, dir: DirLoc) -> Option<DirIndex> {
        let at = self.list.iter().position(|(d, _)| *d == dir)?;
        Some(self.list.remove(at).1)
    }

    /// Puts `dir`'s index in front, dropping the least recently used ones
    /// past the bounds (or this one, if it alone is past them).
    pub fn put(&mut self, dir: DirLoc, ix: DirIndex) {
        self.drop_dir(dir);
        if ix.over || ix.items() > MAX_ITEMS {
            return;
        }
        self.list.insert(0, (dir, ix));
        let mut total: usize = self.list.iter().map(|(_, x)| x.items()).sum();
        while self.list.len() > 1 && (self.list.len() > MAX_DIRS || total > MAX_ITEMS) {
            if let Some((_, x)) = self.list.pop() {
                total -= x.items();
            }
        }
    }

    /// Forgets `dir`'s index.
    pub fn drop_dir(&mut self, dir: DirLoc) {
        self.list.retain(|(d, _)| *d != dir);
    }

    /// Whether `dir` has an index.
    #[cfg(test)]
    pub fn has(&self, dir: DirLoc) -> bool {
        self.list.iter().any(|(d, _)| *d == dir)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_case_as_lookups_do() {
        assert_eq!(key("readme.txt"), key("README.TXT"));
        assert_eq!(key("straße"), key("STRASSE"));
        assert_ne!(key("a"), key("b"));
    }

    #[test]
    fn add_and_remove_keep_holes_and_end() {
        let mut ix = DirIndex { end: 10, cap: 16, ..Default::default() };
        ix.holes.extend([2, 8, 9]);
        ix.add(8, 3, [1, 2]);
        assert_eq!(ix.end, 11);
        assert_eq!(ix.holes.iter().copied().collect::<Vec<_>>(), [2]);
        assert!(ix.may_have(1) && ix.may_have(2));
        ix.remove(&[8, 9, 10], [1, 2]);
        assert!(!ix.may_have(1) && !ix.may_have(2));
        assert_eq!(ix.holes.iter().copied().collect::<Vec<_>>(), [2, 8, 9, 10]);
    }

    #[test]
    fn bounded_in_directories_and_items() {
        let mut all = Indexes::default();
        for c in 0..20 {
            all.put(DirLoc::Chain(c + 2), DirIndex::default());
        }
        assert_eq!(all.len(), MAX_DIRS);
        assert!(all.has(DirLoc::Chain(21)) && !all.has(DirLoc::Chain(2)));
        let mut big = DirIndex::default();
        for i in 0..=MAX_ITEMS as u32 {
            big.holes.insert(i);
        }
        big.check_budget();
        assert!(big.over && big.items() == 0);
        all.put(DirLoc::Root, big);
        assert!(!all.has(DirLoc::Root));
    }
}
