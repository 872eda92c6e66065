//! Operations on paths: walking, creating entries and directories,
//! removing, renaming, each in the write order of docs/storage.md.

use alloc::vec::Vec;

use super::FsError;
use super::cache::Class;
use super::dir::{self, ATTR_DIR, DirLoc, Entry, Place, Runs};
use super::index::{self, DirIndex};
use super::name;
use super::time;
use super::vol::Vol;

/// Path components, `.` and empty ones left out.
pub(crate) fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Splits `path` into its parent's components and its last name.
pub(crate) fn split(path: &str) -> Result<(Vec<&str>, &str), FsError> {
    let mut parts: Vec<&str> = components(path).collect();
    let name = parts.pop().ok_or(FsError::InvalidName)?;
    if parts.contains(&"..") || name == ".." {
        return Err(FsError::InvalidName);
    }
    Ok((parts, name))
}

impl Vol {
    /// The directory at the end of `parts`, and the first clusters of the
    /// directories on the way (the root's as 0).
    pub(crate) fn walk(&mut self, parts: &[&str]) -> Result<(DirLoc, Vec<u32>), FsError> {
        let mut dir = self.root();
        let mut seen = alloc::vec![0];
        for part in parts {
            if *part == ".." {
                return Err(FsError::InvalidName);
            }
            let e = self.lookup(dir, part)?.ok_or(FsError::NotFound)?;
            if !e.is_dir() {
                return Err(FsError::NotADirectory);
            }
            let first = e.first(self.fat32());
            if first == 0 {
                return Err(FsError::Corrupt);
            }
            dir = self.dir_at(first)?;
            seen.push(first);
        }
        Ok((dir, seen))
    }

    /// The entry at `path`, with its directory.
    pub(crate) fn find(&mut self, path: &str) -> Result<(DirLoc, Vec<u32>, Entry), FsError> {
        let (parents, name) = split(path)?;
        let (dir, seen) = self.walk(&parents)?;
        let e = self.lookup(dir, name)?.ok_or(FsError::NotFound)?;
        Ok((dir, seen, e))
    }

    /// What a `..` entry in a subdirectory of `dir` holds.
    fn parent_ref(&self, dir: DirLoc) -> u32 {
        match dir {
            DirLoc::Root => 0,
            DirLoc::Chain(c) if self.fat32() && c == self.g.root_cluster => 0,
            DirLoc::Chain(c) => c,
        }
    }

    /// The short name and case bits for `stored` in a directory whose short
    /// names are `shorts` (`own` left out: the entry being renamed).
    fn short_for(
        stored: &str,
        shorts: &[[u8; 11]],
        own: Option<[u8; 11]>,
    ) -> Result<([u8; 11], u8), FsError> {
        if let Some(x) = name::exact_short(stored) {
            return Ok(x);
        }
        let s = name::alias(stored, |s| shorts.iter().any(|t| t == s && Some(*t) != own))?;
        Ok((s, 0))
    }

    fn slots_needed(stored: &str) -> usize {
        if name::exact_short(stored).is_some() {
            1
        } else {
            stored.encode_utf16().count().div_ceil(13) + 1
        }
    }

    /// Creates the entry `name` in `dir` with attributes `attr` and first
    /// cluster `first`. `AlreadyExists` if the name (or an alias equal to
    /// it) is there.
    pub(crate) fn create_entry(
        &mut self,
        dir: DirLoc,
        name: &str,
        attr: u8,
        first: u32,
    ) -> Result<Entry, FsError> {
        if self.store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        let stored = name::check(name)?;
        let n = Self::slots_needed(stored);
        match self.ix_lookup(dir, stored)? {
            Some(Some(_)) => return Err(FsError::AlreadyExists),
            Some(None) => {
                if let Some(ix) = self.ix.take(dir) {
                    // Put back only if the create succeeds: after an error
                    // the index may not match the disk.
                    let (e, ix) = self.create_indexed(dir, ix, stored, n, attr, first)?;
                    self.ix.put(dir, ix);
                    return Ok(e);
                }
            }
            None => {}
        }
        let survey = self.scan(dir, n, |v| v.is(stored))?;
        if survey.found.is_some() {
            return Err(FsError::AlreadyExists);
        }
        let (short, case) = Self::short_for(stored, &survey.shorts, None)?;
        let place = self.free_slots(dir, &survey)?;
        let mut raw = dir::new_raw(&short, case, attr, time::now());
        dir::set_first(&mut raw, first, self.fat32());
        let lfn = if n > 1 { name::lfn_slots(stored, &short) } else { Vec::new() };
        self.write_entry(&place.skip, &place.slots, &lfn, &raw)?;
        Ok(Entry { name: stored.into(), raw, slots: place.slots })
    }

    /// [`Vol::create_entry`] of a name known absent, with `dir`'s index:
    /// the short alias and the free slots come from it, not from a scan.
    fn create_indexed(
        &mut self,
        dir: DirLoc,
        mut ix: DirIndex,
        stored: &str,
        n: usize,
        attr: u8,
        first: u32,
    ) -> Result<(Entry, DirIndex), FsError> {
        let (short, case) = match name::exact_short(stored) {
            Some(x) => x,
            // A short name is taken if an entry's names hash as it does (a
            // collision only skips an alias).
            None => {
                (name::alias(stored, |s| ix.may_have(index::key(&name::short_display(s, 0))))?, 0)
            }
        };
        let place = self.ix_place(dir, &mut ix, n)?;
        let mut raw = dir::new_raw(&short, case, attr, time::now());
        dir::set_first(&mut raw, first, self.fat32());
        let lfn = if n > 1 { name::lfn_slots(stored, &short) } else { Vec::new() };
        self.write_entry(&place.skip, &place.slots, &lfn, &raw)?;
        let slot = |off: &u64| self.ix_slot_of(dir, &ix, *off).ok_or(FsError::Corrupt);
        let start = slot(place.slots.first().ok_or(FsError::Corrupt)?)?;
        let skipped = place.skip.iter().map(slot).collect::<Result<Vec<_>, _>>()?;
        ix.holes.extend(skipped);
        let slots = place.slots;
        let count = n as u32;
        ix.add(start, count, [index::key(stored), index::key(&name::short_display(&short, case))]);
        ix.check_budget();
        Ok((Entry { name: stored.into(), raw, slots }, ix))
    }

    /// Where a new entry of `n` slots goes in the indexed directory `dir`:
    /// [`dir::Runs`] offered its deleted slots, then its free tail, growing
    /// a chain by zeroed clusters (noted in `ix`) when the tail ends.
    fn ix_place(&mut self, dir: DirLoc, ix: &mut DirIndex, n: usize) -> Result<Place, FsError> {
        let mut runs = Runs::new(n, self.one_page(dir, n));
        let mut prev: Option<u32> = None;
        for &h in &ix.holes {
            if runs.done() {
                break;
            }
            if prev.is_some_and(|p| p + 1 != h) {
                runs.used();
            }
            runs.free(self.ix_slot_off(dir, ix, h).ok_or(FsError::Corrupt)?, false);
            prev = Some(h);
        }
        if prev.is_some_and(|p| p + 1 != ix.end) {
            runs.used();
        }
        let mut grown = false;
        let mut i = ix.end;
        loop {
            if let Some(place) = runs.place(false) {
                return Ok(place);
            }
            if i >= 65536 {
                return runs.place(true).ok_or(FsError::NoSpace);
            }
            match self.ix_slot_off(dir, ix, i) {
                Some(off) => {
                    runs.free(off, true);
                    i += 1;
                }
                None => {
                    if let Some(place) = runs.place(grown || dir == DirLoc::Root) {
                        return Ok(place);
                    }
                    let (DirLoc::Chain(_), Some(&last)) = (dir, ix.clusters.last()) else {
                        return Err(FsError::NoSpace);
                    };
                    let c = self.grow_dir(last)?;
                    ix.clusters.push(c);
                    ix.cap += self.g.cluster_bytes / 32;
                    grown = true;
                }
            }
        }
    }

    /// Updates `dir`'s index (if any) for the removal of `e`.
    fn ix_forget(&mut self, dir: DirLoc, e: &Entry) {
        let Some(mut ix) = self.ix.take(dir) else { return };
        let mut slots = Vec::with_capacity(e.slots.len());
        for &off in &e.slots {
            match self.ix_slot_of(dir, &ix, off) {
                Some(i) => slots.push(i),
                None => return,
            }
        }
        let short = index::key(&name::short_display(&e.short(), e.raw[12]));
        ix.remove(&slots, [index::key(&e.name), short]);
        self.ix.put(dir, ix);
    }

    /// Creates the directory `name` in `dir`: its cluster (with `.` and
    /// `..`) is written and allocated before the entry that names it.
    pub(crate) fn mkdir(&mut self, dir: DirLoc, name: &str) -> Result<(), FsError> {
        if self.store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        let stored = name::check(name)?;
        if self.lookup(dir, stored)?.is_some() {
            return Err(FsError::AlreadyExists);
        }
        let c = self.alloc(None)?;
        self.ix.drop_dir(DirLoc::Chain(c));
        let now = time::now();
        let mut data = alloc::vec![0u8; self.g.cluster_bytes as usize];
        let mut dot = dir::new_raw(b".          ", 0, ATTR_DIR, now);
        dir::set_first(&mut dot, c, self.fat32());
        let mut dotdot = dir::new_raw(b"..         ", 0, ATTR_DIR, now);
        dir::set_first(&mut dotdot, self.parent_ref(dir), self.fat32());
        data[..32].copy_from_slice(&dot);
        data[32..64].copy_from_slice(&dotdot);
        let off = self.g.cluster_off(c)?;
        self.cache.write(&self.store, off, &data, Class::Data)?;
        self.cache.flush(&self.store)?;
        if let Err(e) = self.create_entry(dir, stored, ATTR_DIR, c) {
            let _ = self.free_chain(c);
            let _ = self.cache.flush(&self.store);
            return Err(e);
        }
        Ok(())
    }

    /// Frees a chain unless an open file still uses it (then its last close
    /// frees it).
    fn drop_chain(&mut self, e: &Entry) -> Result<(), FsError> {
        if let Some(id) = self.node_at(e.off()) {
            return self.move_node(id, None);
        }
        let first = e.first(self.fat32());
        if first != 0 {
            self.free_chain(first)?;
        }
        Ok(())
    }

    /// Removes the file `e` of `dir`: its entry first, then its clusters.
    pub(crate) fn remove_file(&mut self, dir: DirLoc, e: &Entry) -> Result<(), FsError> {
        if e.is_dir() {
            return Err(FsError::IsADirectory);
        }
        if self.store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        if let Err(err) = self.delete_entry(&e.slots) {
            self.ix.drop_dir(dir);
            return Err(err);
        }
        self.ix_forget(dir, e);
        // The frees stay dirty until the next flush (an operation that
        // needs an order, a sync, the unmount): the entry is gone from the
        // disk, so a crash before leaves lost clusters only, and many
        // removals share the FAT's writes.
        self.drop_chain(e)
    }

    /// Removes the empty directory `e` of `dir`: its entry first, then its
    /// clusters.
    pub(crate) fn remove_dir(&mut self, dir: DirLoc, e: &Entry) -> Result<(), FsError> {
        if !e.is_dir() {
            return Err(FsError::NotADirectory);
        }
        if self.store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        let first = e.first(self.fat32());
        if first == 0 {
            return Err(FsError::Corrupt);
        }
        if !self.is_empty_dir(self.dir_at(first)?)? {
            return Err(FsError::NotEmpty);
        }
        if let Err(err) = self.delete_entry(&e.slots) {
            self.ix.drop_dir(dir);
            return Err(err);
        }
        self.ix_forget(dir, e);
        self.free_chain(first)?;
        self.cache.flush(&self.store)
    }

    /// Renames `from` to `to` (see docs/storage.md for the write order).
    /// The indexes of the directories it changes are dropped (rebuilt by
    /// their next lookup).
    pub(crate) fn rename(&mut self, from: &str, to: &str) -> Result<(), FsError> {
        if self.store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        let mut dirs = [None, None];
        let r = self.rename_inner(from, to, &mut dirs);
        for d in dirs.into_iter().flatten() {
            self.ix.drop_dir(d);
        }
        r
    }

    fn rename_inner(
        &mut self,
        from: &str,
        to: &str,
        dirs: &mut [Option<DirLoc>; 2],
    ) -> Result<(), FsError> {
        let (fdir, _, src) = self.find(from)?;
        dirs[0] = Some(fdir);
        let (tparts, tname) = split(to)?;
        let stored = name::check(tname)?;
        let (tdir, seen) = self.walk(&tparts)?;
        dirs[1] = Some(tdir);
        let fat32 = self.fat32();
        let sfirst = src.first(fat32);
        if src.is_dir() && seen.contains(&sfirst) {
            // Into itself or a subdirectory of itself (EINVAL).
            return Err(FsError::InvalidName);
        }
        let dst = self.lookup(tdir, stored)?;
        let moved_dir = src.is_dir() && fdir != tdir;
        let new_off = match dst {
            Some(d) if d.off() != src.off() => {
                match (src.is_dir(), d.is_dir()) {
                    (false, true) => return Err(FsError::IsADirectory),
                    (true, false) => return Err(FsError::NotADirectory),
                    (true, true) => {
                        let dfirst = d.first(fat32);
                        if dfirst == 0 || !self.is_empty_dir(self.dir_at(dfirst)?)? {
                            return Err(FsError::NotEmpty);
                        }
                    }
                    (false, false) => {}
                }
                // The source's name goes first (a crash then loses it, its
                // clusters lost), then the target's entry takes its chain,
                // then the target's old chain is freed.
                self.delete_entry(&src.slots)?;
                if moved_dir {
                    self.set_dotdot(sfirst, tdir)?;
                }
                let mut raw = d.raw;
                raw[11] = src.raw[11];
                raw[13..32].copy_from_slice(&src.raw[13..32]);
                self.write_raw(d.off(), &raw)?;
                self.cache.flush(&self.store)?;
                if d.is_dir() {
                    self.free_chain(d.first(fat32))?;
                } else {
                    self.drop_chain(&d)?;
                }
                d.off()
            }
            Some(d) if d.name == stored => return Ok(()),
            _ => {
                let n = Self::slots_needed(stored);
                let same_dir = fdir == tdir;
                let own = same_dir.then(|| src.short());
                if same_dir && n <= src.slots.len() {
                    // In place: the last n of its slots take the new name,
                    // the others are freed, in one flush.
                    let survey = self.scan(tdir, 1, |_| false)?;
                    let (short, case) = Self::short_for(stored, &survey.shorts, own)?;
                    let keep = src.slots.len() - n;
                    for off in &src.slots[..keep] {
                        self.cache.write(&self.store, *off, &[0xe5], Class::Dir)?;
                    }
                    let mut raw = src.raw;
                    raw[..11].copy_from_slice(&short);
                    raw[12] = case;
                    let lfn = if n > 1 { name::lfn_slots(stored, &short) } else { Vec::new() };
                    self.write_entry(&[], &src.slots[keep..], &lfn, &raw)?;
                    src.off()
                } else {
                    let survey = self.scan(tdir, n, |_| false)?;
                    let (short, case) = Self::short_for(stored, &survey.shorts, own)?;
                    let place = self.free_slots(tdir, &survey)?;
                    self.delete_entry(&src.slots)?;
                    if moved_dir {
                        self.set_dotdot(sfirst, tdir)?;
                    }
                    let mut raw = src.raw;
                    raw[..11].copy_from_slice(&short);
                    raw[12] = case;
                    let lfn = if n > 1 { name::lfn_slots(stored, &short) } else { Vec::new() };
                    self.write_entry(&place.skip, &place.slots, &lfn, &raw)?;
                    *place.slots.last().ok_or(FsError::Corrupt)?
                }
            }
        };
        if let Some(id) = self.node_at(src.off()) {
            self.move_node(id, Some(new_off))?;
        }
        self.cache.flush(&self.store)
    }

    /// Points the `..` of the directory at `first` at `parent`. Done while
    /// the directory has no entry (between deleting its old one and writing
    /// its new one), so that no crash leaves it reachable with a wrong `..`.
    fn set_dotdot(&mut self, first: u32, parent: DirLoc) -> Result<(), FsError> {
        let off = self.g.cluster_off(first)? + 32;
        let mut raw = self.read_raw(off)?;
        if &raw[..11] == b"..         " {
            dir::set_first(&mut raw, self.parent_ref(parent), self.fat32());
            self.write_raw(off, &raw)?;
            self.cache.flush(&self.store)?;
        }
        Ok(())
    }
}
