//! Directories: their 32-byte slots, read as entries with their long names,
//! and the slot writes that create, rename and delete entries.
//!
//! A directory is the fixed root region of FAT12/16 or a cluster chain. A
//! walk stops at the end marker, at 65536 slots (the most FAT allows, 2 MiB)
//! or at a bad link (`Corrupt`), so a directory chain with a loop ends.
//! Long-name slots count only when their sequence numbers run down to 1
//! and their checksum matches the short entry that follows; anything else
//! is ignored (the short name is used), as Linux and fsck.fat do.

use alloc::string::String;
use alloc::vec::Vec;

use super::FsError;
use super::cache::Class;
use super::fat::Link;
use super::index::{self, DirIndex};
use super::name::{self, LFN_OFFSETS};
use super::time;
use super::vol::Vol;

pub(crate) const ATTR_READ_ONLY: u8 = 0x01;
pub(crate) const ATTR_VOLUME: u8 = 0x08;
pub(crate) const ATTR_DIR: u8 = 0x10;
pub(crate) const ATTR_ARCHIVE: u8 = 0x20;
pub(crate) const ATTR_LFN: u8 = 0x0f;

/// Most slots a directory may have.
const MAX_SLOTS: u32 = 65536;

/// A directory: the fixed root of FAT12/16, or a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirLoc {
    Root,
    Chain(u32),
}

/// An entry: its short slot, its name and where its slots are.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The long name if valid, else the short name as listed.
    pub name: String,
    pub raw: [u8; 32],
    /// Offsets of its slots: the long-name ones, then the short one.
    pub slots: Vec<u64>,
}

impl Entry {
    /// The short slot's offset.
    pub fn off(&self) -> u64 {
        *self.slots.last().unwrap_or(&0)
    }
    pub fn attr(&self) -> u8 {
        self.raw[11]
    }
    pub fn is_dir(&self) -> bool {
        self.attr() & ATTR_DIR != 0
    }
    pub fn short(&self) -> [u8; 11] {
        let mut s = [0u8; 11];
        s.copy_from_slice(&self.raw[..11]);
        s
    }
    pub fn first(&self, fat32: bool) -> u32 {
        first_of(&self.raw, fat32)
    }
    pub fn size(&self) -> u32 {
        u32::from_le_bytes([self.raw[28], self.raw[29], self.raw[30], self.raw[31]])
    }
}

pub(crate) fn first_of(raw: &[u8; 32], fat32: bool) -> u32 {
    let lo = u32::from(u16::from_le_bytes([raw[26], raw[27]]));
    let hi = if fat32 { u32::from(u16::from_le_bytes([raw[20], raw[21]])) } else { 0 };
    hi << 16 | lo
}

pub(crate) fn set_first(raw: &mut [u8; 32], c: u32, fat32: bool) {
    raw[26..28].copy_from_slice(&(c as u16).to_le_bytes());
    let hi = if fat32 { (c >> 16) as u16 } else { 0 };
    raw[20..22].copy_from_slice(&hi.to_le_bytes());
}

pub(crate) fn set_size(raw: &mut [u8; 32], size: u32) {
    raw[28..32].copy_from_slice(&size.to_le_bytes());
}

/// A short slot for a new entry, created (and modified, accessed) at `now`.
pub(crate) fn new_raw(short: &[u8; 11], case: u8, attr: u8, now: u64) -> [u8; 32] {
    let mut raw = [0u8; 32];
    raw[..11].copy_from_slice(short);
    raw[11] = attr;
    raw[12] = case;
    let (date, t, tenths) = time::to_fat(now);
    raw[13] = tenths;
    raw[14..16].copy_from_slice(&t.to_le_bytes());
    raw[16..18].copy_from_slice(&date.to_le_bytes());
    raw[18..20].copy_from_slice(&date.to_le_bytes());
    raw[22..24].copy_from_slice(&t.to_le_bytes());
    raw[24..26].copy_from_slice(&date.to_le_bytes());
    raw
}

/// Sets the modification time (and the access date) to `secs`.
pub(crate) fn set_mtime(raw: &mut [u8; 32], secs: u64) {
    let (date, t, _) = time::to_fat(secs);
    raw[18..20].copy_from_slice(&date.to_le_bytes());
    raw[22..24].copy_from_slice(&t.to_le_bytes());
    raw[24..26].copy_from_slice(&date.to_le_bytes());
}

/// An entry as a scan meets it, before anything is allocated for it.
pub(crate) struct View<'a> {
    pub short: [u8; 11],
    pub case: u8,
    /// The long name's UTF-16 units, if it has a valid one.
    pub long: Option<&'a [u16]>,
}

impl View<'_> {
    /// Whether the entry is called `want` (long or short name, ignoring
    /// case).
    pub fn is(&self, want: &str) -> bool {
        if let Some(units) = self.long {
            let ascii = units.iter().all(|&u| u < 0x80);
            if ascii && want.is_ascii() {
                if units.len() == want.len()
                    && units
                        .iter()
                        .zip(want.bytes())
                        .all(|(&u, b)| (u as u8).eq_ignore_ascii_case(&b))
                {
                    return true;
                }
            } else {
                let text: String = char::decode_utf16(units.iter().copied())
                    .map(|r| r.unwrap_or('\u{fffd}'))
                    .collect();
                if name::same(&text, want) {
                    return true;
                }
            }
        }
        let mut buf = [0u8; 12];
        let n = name::short_bytes(&self.short, self.case, &mut buf);
        if buf[..n].is_ascii() {
            buf[..n].eq_ignore_ascii_case(want.as_bytes())
        } else {
            name::same(&name::short_display(&self.short, self.case), want)
        }
    }
}

/// A walk over a directory's slots.
struct Slots {
    dir: DirLoc,
    cluster: u32,
    /// Slot index in the directory.
    i: u32,
    /// The walk ends before this slot.
    stop: u32,
}

impl Slots {
    fn new(dir: DirLoc) -> Self {
        let cluster = match dir {
            DirLoc::Root => 0,
            DirLoc::Chain(c) => c,
        };
        Self { dir, cluster, i: 0, stop: MAX_SLOTS }
    }

    /// A walk of at most `n` slots from slot `i`, whose cluster (for a
    /// chain) is `clusters[i / per]`; `None` if `clusters` does not reach.
    fn at(dir: DirLoc, clusters: &[u32], per: u32, i: u32, n: u32) -> Option<Self> {
        let cluster = match dir {
            DirLoc::Root => 0,
            // The walk moves to the next cluster on entering one: it starts
            // in the one before when `i` is a cluster's first slot.
            DirLoc::Chain(_) if i > 0 && i.is_multiple_of(per) => {
                *clusters.get((i / per - 1) as usize)?
            }
            DirLoc::Chain(_) => *clusters.get((i / per) as usize)?,
        };
        Some(Self { dir, cluster, i, stop: i.saturating_add(n).min(MAX_SLOTS) })
    }

    /// The next slot's offset, `None` at the end of the directory's space.
    fn next(&mut self, vol: &mut Vol) -> Result<Option<u64>, FsError> {
        if self.i >= self.stop {
            return Ok(None);
        }
        let off = match self.dir {
            DirLoc::Root => {
                if self.i >= vol.g.root_entries {
                    return Ok(None);
                }
                vol.g.root_off + u64::from(self.i) * 32
            }
            DirLoc::Chain(_) => {
                let per = vol.g.cluster_bytes / 32;
                if self.i > 0 && self.i.is_multiple_of(per) {
                    match vol.next(self.cluster)? {
                        Link::Next(c) => self.cluster = c,
                        Link::End => return Ok(None),
                    }
                }
                vol.g.cluster_off(self.cluster)? + u64::from(self.i % per) * 32
            }
        };
        self.i += 1;
        Ok(Some(off))
    }
}

/// Where a new entry goes: its slots, and the free-tail slots passed over
/// before them (to be marked deleted first).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub slots: Vec<u64>,
    pub skip: Vec<u64>,
}

/// Chooses where a new entry of `n` slots goes, from a directory's free
/// slots offered in directory order (a used slot in between breaks a run).
///
/// With a page size (see [`Vol::one_page`]), the entry takes the first run
/// of `n` free slots that lies in one cache page, so that writing it and
/// later deleting it are each one write, which a kill cannot cut in two:
/// long-name slots split from their short entry by a crash are what
/// fsck.fat reports as a fragment outside a sequence. Slots of the free
/// tail passed over on the way stay before the entry, so they are marked
/// deleted (`skip`). Without a one-page run, the first run of any shape
/// does, when the caller allows it (a full fixed root; a directory just
/// grown whose clusters do not line up with pages).
#[derive(Debug, Default, Clone)]
pub(crate) struct Runs {
    n: usize,
    page: Option<u64>,
    run: Vec<u64>,
    skip: Vec<u64>,
    plain: Vec<u64>,
}

impl Runs {
    pub(crate) fn new(n: usize, page: Option<u64>) -> Self {
        Self { n, page, ..Self::default() }
    }

    /// The free slot at `off`; `tail`: at or after the end marker.
    pub(crate) fn free(&mut self, off: u64, tail: bool) {
        if self.plain.len() < self.n {
            self.plain.push(off);
        }
        if self.done() {
            return;
        }
        if let (Some(p), Some(&first)) = (self.page, self.run.first())
            && first / p != off / p
        {
            if tail {
                self.skip.append(&mut self.run);
            } else {
                self.run.clear();
            }
        }
        self.run.push(off);
    }

    /// A used slot: a run not yet long enough starts again after it.
    pub(crate) fn used(&mut self) {
        if self.plain.len() < self.n {
            self.plain.clear();
        }
        if !self.done() {
            self.run.clear();
        }
    }

    /// Whether the run asked for is found.
    pub(crate) fn done(&self) -> bool {
        self.run.len() >= self.n
    }

    /// The place found: the run asked for, or (`any_shape`) the first run
    /// of `n` slots; `None` if there is none yet.
    pub(crate) fn place(&self, any_shape: bool) -> Option<Place> {
        if self.done() {
            let skip = if self.page.is_some() { self.skip.clone() } else { Vec::new() };
            Some(Place { slots: self.run.clone(), skip })
        } else if any_shape && self.plain.len() >= self.n {
            Some(Place { slots: self.plain.clone(), skip: Vec::new() })
        } else {
            None
        }
    }
}

/// What a survey of a directory found.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// The entry named as asked, if any.
    pub found: Option<Entry>,
    /// Every short name in the directory.
    pub shorts: Vec<[u8; 11]>,
    /// The free slots met, as candidates for a new entry.
    pub runs: Runs,
    /// The last cluster of the directory (chains).
    pub last: u32,
    /// Every entry, for a listing.
    pub all: Vec<Entry>,
}

impl Vol {
    /// Reads the 32-byte slot at `off`.
    pub(crate) fn read_raw(&mut self, off: u64) -> Result<[u8; 32], FsError> {
        let mut b = [0u8; 32];
        self.cache.read(&self.store, off, &mut b)?;
        Ok(b)
    }

    /// Walks `dir`'s entries (`.`, `..` and volume labels left out) until
    /// `f` says stop. With `want_free`, also finds a run of that many free
    /// slots and lists every short name (for creating an entry).
    pub(crate) fn scan(
        &mut self,
        dir: DirLoc,
        want_free: usize,
        f: impl FnMut(&View<'_>) -> bool,
    ) -> Result<Survey, FsError> {
        self.scan_inner(dir, Slots::new(dir), want_free, false, None, f)
    }

    /// Every entry of `dir` (without `.`, `..` and volume labels).
    pub(crate) fn list(&mut self, dir: DirLoc) -> Result<Vec<Entry>, FsError> {
        Ok(self.scan_inner(dir, Slots::new(dir), 0, true, None, |_| true)?.all)
    }

    /// The scan behind the others: from `walk`'s slot, building `ix` (the
    /// whole directory is then walked) if given.
    fn scan_inner(
        &mut self,
        dir: DirLoc,
        mut walk: Slots,
        want_free: usize,
        all: bool,
        mut ix: Option<&mut DirIndex>,
        mut f: impl FnMut(&View<'_>) -> bool,
    ) -> Result<Survey, FsError> {
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_off = 0u64;
        let mut s = Survey::default();
        let building = ix.is_some();
        let per = self.g.cluster_bytes / 32;
        let mut lfn_start = 0u32;
        let mut lfn: Vec<u16> = Vec::new();
        let mut lfn_slots: Vec<u64> = Vec::new();
        let mut expect = 0u8; // next sequence number expected (0: none)
        let mut sum = 0u8;
        let mut runs = Runs::new(want_free, self.one_page(dir, want_free));
        let mut ended = false;
        while let Some(off) = walk.next(self)? {
            let slot = walk.i - 1;
            if let DirLoc::Chain(_) = dir {
                s.last = walk.cluster;
            }
            if let Some(ix) = ix.as_deref_mut() {
                if matches!(dir, DirLoc::Chain(_)) && slot.is_multiple_of(per) {
                    ix.clusters.push(walk.cluster);
                }
                ix.cap = walk.i;
            }
            let mut raw = [0u8; 32];
            if !ended {
                if off < chunk_off || off + 32 > chunk_off + chunk.len() as u64 {
                    // Read the directory a cluster (or, for a fixed root, up
                    // to 4 KiB) at a time.
                    let (start, len) = match dir {
                        DirLoc::Root => {
                            let rel = (off - self.g.root_off) / 4096 * 4096;
                            let end = u64::from(self.g.root_entries) * 32;
                            (self.g.root_off + rel, (end - rel).min(4096))
                        }
                        DirLoc::Chain(_) => {
                            let cs = u64::from(self.g.cluster_bytes);
                            (off - (off - self.g.data_off) % cs, cs)
                        }
                    };
                    chunk.resize(len as usize, 0);
                    self.cache.read(&self.store, start, &mut chunk)?;
                    chunk_off = start;
                }
                let at = (off - chunk_off) as usize;
                raw.copy_from_slice(&chunk[at..at + 32]);
                if raw[0] == 0 {
                    ended = true;
                    if let Some(ix) = ix.as_deref_mut() {
                        ix.end = slot;
                    }
                }
            }
            // From the end marker on, every slot is free: only a run still
            // being looked for, or an index being built, walks on.
            if ended {
                if want_free > 0 && !runs.done() {
                    runs.free(off, true);
                    continue;
                }
                if building {
                    continue;
                }
                break;
            }
            if raw[0] == 0xe5 {
                if let Some(ix) = ix.as_deref_mut()
                    && !ix.over
                {
                    ix.holes.insert(slot);
                    ix.check_budget();
                }
                expect = 0;
                if want_free > 0 {
                    runs.free(off, false);
                }
                continue;
            }
            runs.used();
            if raw[11] & 0x3f == ATTR_LFN {
                let ord = raw[0];
                let seq = ord & 0x1f;
                if ord & 0x40 != 0 && (1..=20).contains(&seq) {
                    lfn = alloc::vec![0xffff; usize::from(seq) * 13];
                    lfn_slots.clear();
                    lfn_start = slot;
                    sum = raw[13];
                    expect = seq;
                } else if expect == 0 || seq + 1 != expect || raw[13] != sum {
                    expect = 0;
                    continue;
                } else {
                    expect = seq;
                }
                let base = usize::from(seq - 1) * 13;
                for (j, &at) in LFN_OFFSETS.iter().enumerate() {
                    lfn[base + j] = u16::from_le_bytes([raw[at], raw[at + 1]]);
                }
                lfn_slots.push(off);
                continue;
            }
            let complete = expect == 1;
            expect = 0;
            if raw[11] & ATTR_VOLUME != 0 {
                continue;
            }
            let mut short = [0u8; 11];
            short.copy_from_slice(&raw[..11]);
            if want_free > 0 {
                s.shorts.push(short);
            }
            if &short == b".          " || &short == b"..         " {
                continue;
            }
            let long = if complete && name::checksum(&short) == sum {
                let end = lfn.iter().position(|&u| u == 0).unwrap_or(lfn.len());
                (end > 0).then_some(&lfn[..end])
            } else {
                None
            };
            let view = View { short, case: raw[12], long };
            if let Some(ix) = ix.as_deref_mut()
                && !ix.over
            {
                let first = if long.is_some() { lfn_start } else { slot };
                let short_key = index::key(&name::short_display(&short, raw[12]));
                ix.keys.insert((short_key, first));
                if let Some(units) = long {
                    let text: String = char::decode_utf16(units.iter().copied())
                        .map(|r| r.unwrap_or('\u{fffd}'))
                        .collect();
                    ix.keys.insert((index::key(&text), first));
                }
                ix.check_budget();
            }
            if !f(&view) {
                continue;
            }
            let long: Option<String> = long.map(|units| {
                char::decode_utf16(units.iter().copied()).map(|r| r.unwrap_or('\u{fffd}')).collect()
            });
            let mut slots =
                if long.is_some() { core::mem::take(&mut lfn_slots) } else { Vec::new() };
            slots.push(off);
            let e = Entry {
                name: long.unwrap_or_else(|| name::short_display(&short, raw[12])),
                raw,
                slots,
            };
            if all {
                s.all.push(e);
                continue;
            }
            s.found = Some(e);
            if want_free == 0 && !building {
                return Ok(s);
            }
        }
        // A run shorter than asked is the directory's tail (a used slot
        // would have cleared it): growing the directory continues it.
        s.runs = runs;
        if let Some(ix) = ix
            && !ended
        {
            ix.end = ix.cap;
        }
        Ok(s)
    }

    /// Finds `name` in `dir` (long or short name, ignoring case), through
    /// the directory's index (built by the first lookup).
    pub(crate) fn lookup(&mut self, dir: DirLoc, want: &str) -> Result<Option<Entry>, FsError> {
        if let Some(found) = self.ix_lookup(dir, want)? {
            return Ok(found);
        }
        Ok(self.scan(dir, 0, |v| v.is(want))?.found)
    }

    /// A lookup through `dir`'s index, building it if there is none: `None`
    /// if the directory could not be indexed (too large) or its index
    /// proved stale (then dropped): the caller scans.
    pub(crate) fn ix_lookup(
        &mut self,
        dir: DirLoc,
        want: &str,
    ) -> Result<Option<Option<Entry>>, FsError> {
        let Some(ix) = self.ix.take(dir) else {
            let mut ix = DirIndex::default();
            let s =
                self.scan_inner(dir, Slots::new(dir), 0, false, Some(&mut ix), |v| v.is(want))?;
            self.ix.put(dir, ix);
            return Ok(Some(s.found));
        };
        let per = self.g.cluster_bytes / 32;
        let mut found = None;
        for first in ix.candidates(index::key(want)) {
            // The entry starting at `first`: at most 20 long-name slots
            // and its short one.
            let Some(walk) = Slots::at(dir, &ix.clusters, per, first, 21) else {
                return Ok(None);
            };
            let mut seen = 0;
            let s = self.scan_inner(dir, walk, 0, false, None, |v| {
                seen += 1;
                seen == 1 && v.is(want)
            })?;
            if seen == 0 {
                // No entry where the index says one starts.
                return Ok(None);
            }
            if s.found.is_some() {
                found = s.found;
                break;
            }
        }
        self.ix.put(dir, ix);
        Ok(Some(found))
    }

    /// The offset of slot `i` of the indexed directory `dir`, if its space
    /// reaches it.
    pub(crate) fn ix_slot_off(&self, dir: DirLoc, ix: &DirIndex, i: u32) -> Option<u64> {
        match dir {
            DirLoc::Root => (i < self.g.root_entries).then(|| self.g.root_off + u64::from(i) * 32),
            DirLoc::Chain(_) => {
                let per = self.g.cluster_bytes / 32;
                let c = *ix.clusters.get((i / per) as usize)?;
                Some(self.g.cluster_off(c).ok()? + u64::from(i % per) * 32)
            }
        }
    }

    /// The slot number of offset `off` in the indexed directory `dir`.
    pub(crate) fn ix_slot_of(&self, dir: DirLoc, ix: &DirIndex, off: u64) -> Option<u32> {
        match dir {
            DirLoc::Root => {
                let rel = off.checked_sub(self.g.root_off)? / 32;
                u32::try_from(rel).ok()
            }
            DirLoc::Chain(_) => {
                let cs = u64::from(self.g.cluster_bytes);
                let rel = off.checked_sub(self.g.data_off)?;
                let c = u32::try_from(rel / cs + 2).ok()?;
                let at = ix.clusters.iter().position(|&x| x == c)? as u32;
                Some(at * (self.g.cluster_bytes / 32) + ((rel % cs) / 32) as u32)
            }
        }
    }

    /// Adds a zeroed cluster after `last`, the last of a directory's chain.
    pub(crate) fn grow_dir(&mut self, last: u32) -> Result<u32, FsError> {
        // The new cluster is zeroed (as file data) before the FAT links
        // it: a flush writes data before the FAT.
        let c = self.alloc(None)?;
        let off = self.g.cluster_off(c)?;
        let zeros = alloc::vec![0u8; self.g.cluster_bytes as usize];
        self.cache.write(&self.store, off, &zeros, Class::Data)?;
        self.cache.flush(&self.store)?;
        self.fat_set(last, c)?;
        self.cache.flush(&self.store)?;
        Ok(c)
    }

    /// Whether `dir` holds no entry but `.` and `..`.
    pub(crate) fn is_empty_dir(&mut self, dir: DirLoc) -> Result<bool, FsError> {
        Ok(self.scan(dir, 0, |_| true)?.found.is_none())
    }

    /// Where a new entry goes in `dir` (`survey` from a scan that looked for
    /// free slots for it), growing a chain directory by zeroed clusters if
    /// needed.
    pub(crate) fn free_slots(&mut self, dir: DirLoc, survey: &Survey) -> Result<Place, FsError> {
        let mut runs = survey.runs.clone();
        let mut last = survey.last;
        let per = u64::from(self.g.cluster_bytes / 32);
        let mut grown = false;
        loop {
            if let Some(place) = runs.place(grown || dir == DirLoc::Root) {
                return Ok(place);
            }
            if dir == DirLoc::Root {
                return Err(FsError::NoSpace);
            }
            last = self.grow_dir(last)?;
            grown = true;
            let off = self.g.cluster_off(last)?;
            for k in 0..per {
                runs.free(off + k * 32, true);
            }
        }
    }

    /// Whether a new entry of `n` slots in `dir` must lie in one cache page
    /// (so that it is written, and deleted, with one write): whenever a
    /// page (and, for a chain, a cluster) can hold it. The page size when
    /// it must.
    pub(crate) fn one_page(&self, dir: DirLoc, n: usize) -> Option<u64> {
        let need = n as u64 * 32;
        let page = self.cache.page;
        let fits = match dir {
            DirLoc::Root => need <= page,
            DirLoc::Chain(_) => need <= page.min(u64::from(self.g.cluster_bytes)),
        };
        (n > 0 && fits).then_some(page)
    }

    /// Writes a new entry's slots at `at`, after marking the free-tail slots
    /// `skip` before them deleted (on disk first: an end marker before the
    /// entry would hide it). The short slot goes first, then the long-name
    /// slots: in one write when they share a page, as [`Runs`] arranges
    /// for new entries; else flushed in that order (a crash in between
    /// leaves a file with its short name only, which fsck.fat accepts).
    pub(crate) fn write_entry(
        &mut self,
        skip: &[u64],
        at: &[u64],
        lfn: &[[u8; 32]],
        raw: &[u8; 32],
    ) -> Result<(), FsError> {
        let (short_off, lfn_offs) = at.split_last().ok_or(FsError::Corrupt)?;
        for off in skip {
            self.cache.write(&self.store, *off, &[0xe5], Class::Dir)?;
        }
        if let (Some(&s), Some(&a)) = (skip.last(), at.first())
            && !self.same_page(&[s, a])
        {
            self.cache.flush(&self.store)?;
        }
        self.cache.write(&self.store, *short_off, raw, Class::Dir)?;
        if !self.same_page(at) {
            self.cache.flush(&self.store)?;
        }
        for (off, s) in lfn_offs.iter().zip(lfn) {
            self.cache.write(&self.store, *off, s, Class::Dir)?;
        }
        self.cache.flush(&self.store)
    }

    /// Marks an entry's slots deleted: the long-name ones first, then the
    /// short one (a crash in between leaves the file under its short name).
    /// Only directory pages are written: what else is dirty between
    /// operations may reach the disk in any order (docs/storage.md), so it
    /// can wait, and the frees of the clusters of files removed before
    /// (FAT pages) go out together at a later flush.
    pub(crate) fn delete_entry(&mut self, slots: &[u64]) -> Result<(), FsError> {
        let (short_off, lfn_offs) = slots.split_last().ok_or(FsError::Corrupt)?;
        for off in lfn_offs {
            self.cache.write(&self.store, *off, &[0xe5], Class::Dir)?;
        }
        if !self.same_page(slots) {
            self.cache.flush_only(&self.store, Class::Dir)?;
        }
        self.cache.write(&self.store, *short_off, &[0xe5], Class::Dir)?;
        self.cache.flush_only(&self.store, Class::Dir)
    }

    /// Whether all these offsets lie in one cache page (one write).
    pub(crate) fn same_page(&self, offs: &[u64]) -> bool {
        let page = self.cache.page;
        offs.windows(2).all(|w| w[0] / page == w[1] / page)
    }

    /// Rewrites the short slot at `off`.
    pub(crate) fn write_raw(&mut self, off: u64, raw: &[u8; 32]) -> Result<(), FsError> {
        self.cache.write(&self.store, off, raw, Class::Dir)
    }
}
