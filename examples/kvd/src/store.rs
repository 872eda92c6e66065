//! The keyspace: keys to strings, lists, hashes and sets, with expiry.
//!
//! Keys live in a hash table (hashbrown), where commands look them up, and
//! in an index ordered by a 64-bit hash of the key (seeded per instance),
//! which gives `SCAN` its cursor: the cursor is the hash at which to
//! resume, so a key present for the whole of a scan is returned (exactly
//! once), however the keyspace grows or shrinks meanwhile, and the cursor
//! is a plain integer as clients expect. Only creating or removing a key
//! touches the index.
//!
//! Expiry times are absolute milliseconds since the Unix epoch; the store
//! has no clock: the caller sets [`Keyspace::now`] before each command.
//! Expired keys are removed when touched (lazy expiry) and by
//! [`Keyspace::expire_some`] (active expiry, from a timer), which walks an
//! index ordered by deadline. Every removal by expiry is recorded in
//! [`Keyspace::take_expired`] so that the caller can log it as a `DEL`:
//! the log then replays the exact history. While [`Keyspace::loading`]
//! (replaying the log) nothing expires.

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use indexmap::{IndexMap, IndexSet};

use crate::bytes::{Key, Str};

/// A hash's fields, in insertion order (as Redis's small hashes).
pub type HashValue = IndexMap<Vec<u8>, Vec<u8>, FixedState>;
/// A set's members, in insertion order.
pub type SetValue = IndexSet<Vec<u8>, FixedState>;

/// Up to this many fields, a hash deletes preserving order (Redis keeps
/// small hashes as a listpack in insertion order; larger ones in a hash
/// table whose order is arbitrary anyway).
pub const SMALL_HASH: usize = 128;

/// A value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string (binary-safe).
    Str(Str),
    /// A list.
    List(VecDeque<Vec<u8>>),
    /// A hash (boxed, as sets: the variants stay small, and so the slots
    /// of the keyspace's table).
    Hash(Box<HashValue>),
    /// A set.
    Set(Box<SetValue>),
}

impl Value {
    /// The name `TYPE` gives.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Str(_) => "string",
            Self::List(_) => "list",
            Self::Hash(_) => "hash",
            Self::Set(_) => "set",
        }
    }

    /// Whether a container is empty (Redis deletes empty containers).
    pub fn is_empty_container(&self) -> bool {
        match self {
            Self::Str(_) => false,
            Self::List(l) => l.is_empty(),
            Self::Hash(h) => h.is_empty(),
            Self::Set(s) => s.is_empty(),
        }
    }
}

/// A key's value and its expiry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute expiry time, ms since the Unix epoch.
    pub expire_at: Option<u64>,
}

/// The keyspace of the one database.
#[derive(Debug)]
pub struct Keyspace {
    /// Every key: the lookups of commands go here.
    map: HashMap<Key, Entry, FixedState>,
    /// Every key by (hash, key): `SCAN`'s order. Touched only when a key is
    /// created or removed.
    order: BTreeSet<(u64, Key)>,
    /// (deadline, key) of every key with an expiry.
    expires: BTreeSet<(u64, Key)>,
    /// Hashes keys for `order`.
    hasher: FixedState,
    /// The time of the command being executed, ms since the Unix epoch.
    pub now: u64,
    /// Replaying the log: nothing expires.
    pub loading: bool,
    /// Keys removed by expiry since the last [`Keyspace::take_expired`].
    expired: Vec<Vec<u8>>,
    /// Keys removed by expiry, in total.
    pub expired_total: u64,
}

impl Keyspace {
    /// An empty keyspace hashing with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            map: HashMap::with_hasher(FixedState::with_seed(seed.rotate_left(17))),
            order: BTreeSet::new(),
            expires: BTreeSet::new(),
            hasher: FixedState::with_seed(seed),
            now: 0,
            loading: false,
            expired: Vec::new(),
            expired_total: 0,
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Number of keys (including expired keys not yet removed).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of keys with an expiry.
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    fn is_expired(&self, e: &Entry) -> bool {
        !self.loading && e.expire_at.is_some_and(|t| t <= self.now)
    }

    /// The live entry of `key`, removing it first if it has expired.
    pub fn get(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let expired = self.is_expired(self.map.get(key)?);
        if expired {
            self.remove_expired(key);
            return None;
        }
        self.map.get_mut(key)
    }

    /// The live value of `key`.
    pub fn value(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.get(key).map(|e| &mut e.value)
    }

    /// Whether `key` exists (and has not expired).
    pub fn contains(&mut self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    fn remove_expired(&mut self, key: &[u8]) {
        if self.remove(key).is_some() {
            self.expired.push(key.to_vec());
            self.expired_total += 1;
        }
    }

    /// Keys removed by expiry since the last call, oldest first.
    pub fn take_expired(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.expired)
    }

    /// Sets `key` to `value` with expiry `expire_at`, replacing any value.
    pub fn insert(&mut self, key: &[u8], value: Value, expire_at: Option<u64>) {
        let new = Entry { value, expire_at };
        if let Some((k, e)) = self.map.get_key_value_mut(key) {
            let old = core::mem::replace(e, new).expire_at;
            if old != expire_at {
                let k = k.clone();
                if let Some(t) = old {
                    self.expires.remove(&(t, k.clone()));
                }
                if let Some(t) = expire_at {
                    self.expires.insert((t, k));
                }
            }
            return;
        }
        let k = Key::new(key);
        self.order.insert((self.hash(key), k.clone()));
        if let Some(t) = expire_at {
            self.expires.insert((t, k.clone()));
        }
        self.map.insert(k, new);
    }

    /// Replaces the value of `key` with the string `value` if `key` exists
    /// and has no expiry, in one lookup (a plain `SET` of a key that is
    /// there, the usual case: its indexes and deadline stay as they are);
    /// false, with nothing changed, otherwise.
    pub fn overwrite_persistent(&mut self, key: &[u8], value: &[u8]) -> bool {
        match self.map.get_mut(key) {
            Some(e) if e.expire_at.is_none() => {
                e.value = Value::Str(Str::new(value));
                true
            }
            _ => false,
        }
    }

    /// Removes `key`; returns its entry (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let (k, entry) = self.map.remove_entry(key)?;
        if let Some(t) = entry.expire_at {
            self.expires.remove(&(t, k.clone()));
        }
        self.order.remove(&(self.hash(key), k));
        Some(entry)
    }

    /// Removes `key` if it holds an empty container (after a pop or a
    /// removal), as Redis does.
    pub fn remove_if_empty(&mut self, key: &[u8]) {
        if self.get(key).is_some_and(|e| e.value.is_empty_container()) {
            self.remove(key);
        }
    }

    /// Sets or clears the expiry of an existing `key`; false if it is missing.
    pub fn set_expiry(&mut self, key: &[u8], expire_at: Option<u64>) -> bool {
        let Some((k, e)) = self.map.get_key_value_mut(key) else { return false };
        let old = core::mem::replace(&mut e.expire_at, expire_at);
        if old != expire_at {
            let k = k.clone();
            if let Some(t) = old {
                self.expires.remove(&(t, k.clone()));
            }
            if let Some(t) = expire_at {
                self.expires.insert((t, k));
            }
        }
        true
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.expires.clear();
    }

    /// Active expiry: removes up to `budget` keys whose deadline has
    /// passed; returns how many it removed.
    pub fn expire_some(&mut self, budget: usize) -> usize {
        if self.loading {
            return 0;
        }
        let mut n = 0;
        while n < budget {
            let key = match self.expires.first() {
                Some((t, k)) if *t <= self.now => k.clone(),
                _ => break,
            };
            self.remove_expired(&key);
            n += 1;
        }
        n
    }

    /// Every live key and entry, in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.order
            .iter()
            .filter_map(|(_, k)| self.map.get_key_value(&**k))
            .filter(|(_, e)| !self.is_expired(e))
            .map(|(k, e)| (&**k, e))
    }

    /// One step of `SCAN`: visits about `count` keys from the hash
    /// `cursor` on (never splitting keys of one hash), calling `f` for each
    /// live one; returns the cursor to continue from (0 when the scan is
    /// complete). Expired keys met are removed.
    pub fn scan(&mut self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &Entry)) -> u64 {
        let mut next = 0;
        let mut dead = Vec::new();
        let mut last = None;
        let start = Key::new(b"");
        for (visited, (h, k)) in self.order.range((cursor, start)..).enumerate() {
            if visited >= count.max(1) && last != Some(*h) {
                next = *h;
                break;
            }
            last = Some(*h);
            let Some(e) = self.map.get(&**k) else { continue };
            if self.is_expired(e) {
                dead.push(k.to_vec());
            } else {
                f(k, e);
            }
        }
        for k in dead {
            self.remove_expired(&k);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::format;

    fn s(v: &str) -> Value {
        Value::Str(Str::new(v.as_bytes()))
    }

    #[test]
    fn insert_get_remove() {
        let mut ks = Keyspace::new(1);
        ks.insert(b"a", s("1"), None);
        ks.insert(b"b", s("2"), Some(100));
        assert_eq!(ks.len(), 2);
        assert_eq!(ks.expires_len(), 1);
        assert!(matches!(ks.value(b"a"), Some(Value::Str(v)) if **v == *b"1"));
        ks.insert(b"b", s("3"), None);
        assert_eq!(ks.expires_len(), 0);
        assert!(ks.remove(b"a").is_some());
        assert!(ks.remove(b"a").is_none());
        assert_eq!(ks.len(), 1);
    }

    #[test]
    fn overwrite_persistent_only_touches_keys_without_expiry() {
        let mut ks = Keyspace::new(1);
        assert!(!ks.overwrite_persistent(b"a", b"1"), "a missing key is not created");
        assert_eq!(ks.len(), 0);
        ks.insert(b"a", Value::List(VecDeque::from([b"x".to_vec()])), None);
        ks.insert(b"b", s("2"), Some(100));
        let long = [7u8; 40];
        assert!(ks.overwrite_persistent(b"a", &long));
        assert!(matches!(ks.value(b"a"), Some(Value::Str(v)) if **v == long));
        assert!(!ks.overwrite_persistent(b"b", b"3"), "a key with an expiry is left");
        assert!(matches!(ks.value(b"b"), Some(Value::Str(v)) if **v == *b"2"));
        assert_eq!((ks.len(), ks.expires_len()), (2, 1));
        let mut seen = 0;
        ks.scan(0, 10, |_, _| seen += 1);
        assert_eq!(seen, 2, "the scan index is unchanged");
    }

    #[test]
    fn lazy_and_active_expiry_are_recorded() {
        let mut ks = Keyspace::new(1);
        ks.insert(b"a", s("1"), Some(1000));
        ks.insert(b"b", s("1"), Some(2000));
        ks.insert(b"c", s("1"), None);
        ks.now = 999;
        assert!(ks.contains(b"a"));
        ks.now = 1000;
        assert!(!ks.contains(b"a"));
        assert_eq!(ks.take_expired(), alloc::vec![b"a".to_vec()]);
        ks.now = 5000;
        ks.loading = true;
        assert_eq!(ks.expire_some(10), 0);
        assert!(ks.contains(b"b"), "nothing expires while loading");
        ks.loading = false;
        assert_eq!(ks.expire_some(10), 1);
        assert_eq!(ks.take_expired(), alloc::vec![b"b".to_vec()]);
        assert_eq!((ks.len(), ks.expires_len(), ks.expired_total), (1, 0, 2));
    }

    #[test]
    fn set_expiry_keeps_the_index_right() {
        let mut ks = Keyspace::new(1);
        ks.insert(b"a", s("1"), None);
        assert!(ks.set_expiry(b"a", Some(10)));
        assert!(ks.set_expiry(b"a", Some(20)));
        assert_eq!(ks.expires_len(), 1);
        assert!(ks.set_expiry(b"a", None));
        assert_eq!(ks.expires_len(), 0);
        assert!(!ks.set_expiry(b"zz", Some(1)));
    }

    #[test]
    fn keys_sharing_a_hash_are_scanned_together() {
        let mut ks = Keyspace::new(7);
        for k in [&b"x"[..], b"y", b"z"] {
            ks.insert(k, s("v"), None);
        }
        // Pretend "y" and "z" collide with "x": put them under x's hash.
        let h = ks.hash(b"x");
        for k in [&b"y"[..], b"z"] {
            let rc = ks.order.iter().find(|(_, r)| **r == *k).unwrap().clone();
            ks.order.remove(&rc);
            ks.order.insert((h, rc.1));
        }
        let mut seen = 0;
        let next = ks.scan(h, 1, |_, _| seen += 1);
        assert_eq!(seen, 3, "a hash's keys are never split across calls");
        assert_ne!(next, h);
    }

    #[test]
    fn scan_returns_every_key_present_throughout() {
        let mut ks = Keyspace::new(42);
        for i in 0..1000 {
            ks.insert(format!("k{i}").as_bytes(), s("v"), None);
        }
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = ks.scan(cursor, 10, |k, _| {
                seen.insert(k.to_vec());
            });
            // Churn during the scan: remove and add keys outside k0..k499.
            round += 1;
            ks.remove(format!("k{}", 999 - round).as_bytes());
            ks.insert(format!("new{round}").as_bytes(), s("v"), None);
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
    }

    #[test]
    fn scan_skips_and_removes_expired_keys() {
        let mut ks = Keyspace::new(3);
        ks.insert(b"a", s("1"), Some(10));
        ks.insert(b"b", s("1"), None);
        ks.now = 20;
        let mut seen = Vec::new();
        assert_eq!(ks.scan(0, 100, |k, _| seen.push(k.to_vec())), 0);
        assert_eq!(seen, alloc::vec![b"b".to_vec()]);
        assert_eq!(ks.len(), 1);
        assert_eq!(ks.iter().count(), 1);
    }
}
