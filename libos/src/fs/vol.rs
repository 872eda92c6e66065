//! The mounted volume and its open files.
//!
//! An open file is a [`Node`], shared by every handle on the same directory
//! entry (as Linux shares an inode): one length, one chain. Clusters a
//! write adds form a chain of their own in the FAT ("pending") until the
//! node is committed ([`Vol::commit`]: on flush, sync, close, and before
//! any change that needs the chain whole); committing links them after the
//! file's last cluster (or makes them its first) and rewrites the entry.
//! Until then a crash leaves them as lost clusters, and the entry on the
//! disk still matches its chain. A file removed while open keeps its
//! clusters until its last handle closes.

use alloc::vec::Vec;

use super::FsError;
use super::bpb::{self, Geometry};
use super::cache::{Cache, Class, Store};
use super::dir::{self, DirLoc, Entry};
use super::fat::Link;
use super::index::Indexes;
use super::time;
use crate::block::BlockDevice;

/// Largest direct transfer (what `libos::block` moves in one call).
const MAX_RUN: u64 = 1 << 20;

/// An open file.
#[derive(Debug)]
pub(crate) struct Node {
    refs: u32,
    /// The short slot of its entry; `None` once removed.
    pub entry: Option<u64>,
    /// First cluster of the chain the entry names (0: none).
    first: u32,
    /// Last cluster of that chain, once known.
    tail: Option<u32>,
    /// Clusters added since the last commit: a chain of their own.
    pend_head: u32,
    pend_tail: u32,
    pend_count: u32,
    /// The highest-numbered of them.
    pend_max: u32,
    /// Length in bytes (the entry learns it on commit).
    pub len: u64,
    /// The entry needs rewriting.
    dirty: bool,
    /// Modification time to write.
    mtime: Option<u64>,
    /// Last cluster looked up: (index in the file, cluster, in the pending
    /// chain).
    cursor: Option<(u64, u32, bool)>,
    /// The cluster (and whether in the pending chain) at every
    /// [`MARK_EVERY`]-th index of the file, as far as lookups have walked:
    /// a lookup before the cursor starts from the mark below it instead
    /// of the chain's head (random reads of a large file, as a database
    /// makes, walked the chain from its start each time). Indexes never
    /// move, so only a shorter file drops marks.
    marks: Vec<(u32, bool)>,
}

/// Every how many clusters [`Node::marks`] has one: at most 8 bytes per
/// 64 clusters of a file (16 KiB for a 4 GiB file of 4 KiB clusters).
const MARK_EVERY: u64 = 64;

/// The mounted volume.
#[derive(Debug)]
pub(crate) struct Vol {
    pub g: Geometry,
    pub store: Store,
    pub cache: Cache,
    /// Free clusters, once counted.
    pub free: Option<u32>,
    /// Where the next allocation starts looking.
    pub next_free: u32,
    /// FSInfo on the disk says "unknown" (changes since the last sync).
    pub info_stale: bool,
    pub nodes: Vec<Option<Node>>,
    /// Directory name indexes.
    pub ix: Indexes,
}

impl Vol {
    pub(crate) fn mount(dev: BlockDevice, cache_bytes: usize) -> Result<Self, FsError> {
        let ss = u64::from(dev.sector_size());
        let capacity = dev.capacity();
        let g = bpb::locate(capacity, dev.sector_size(), &mut |off, buf| {
            dev.read(off / ss, buf).map_err(super::cache::dev_err)
        })?;
        let store = Store { dev, base: g.vol_off, len: g.vol_len, ss };
        let next_free = if g.valid_cluster(g.fsinfo_next) { g.fsinfo_next } else { 2 };
        Ok(Self {
            cache: Cache::new(ss, cache_bytes),
            store,
            free: None,
            next_free,
            info_stale: false,
            nodes: Vec::new(),
            ix: Indexes::default(),
            g,
        })
    }

    pub(crate) fn fat32(&self) -> bool {
        self.g.kind == bpb::Kind::Fat32
    }

    /// The root directory.
    pub(crate) fn root(&self) -> DirLoc {
        if self.fat32() { DirLoc::Chain(self.g.root_cluster) } else { DirLoc::Root }
    }

    /// The directory whose first cluster is `first` (0 is the root, as in
    /// a `..` entry).
    pub(crate) fn dir_at(&self, first: u32) -> Result<DirLoc, FsError> {
        if first == 0 {
            Ok(self.root())
        } else if self.g.valid_cluster(first) {
            Ok(DirLoc::Chain(first))
        } else {
            Err(FsError::Corrupt)
        }
    }

    fn node(&mut self, id: usize) -> Result<&mut Node, FsError> {
        self.nodes.get_mut(id).and_then(Option::as_mut).ok_or(FsError::Corrupt)
    }

    pub(crate) fn node_ref(&self, id: usize) -> Option<&Node> {
        self.nodes.get(id).and_then(Option::as_ref)
    }

    /// The open node on the entry whose short slot is at `off`.
    pub(crate) fn node_at(&self, off: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.as_ref().is_some_and(|n| n.entry == Some(off)))
    }

    /// Opens (or shares) the node of file entry `e`.
    pub(crate) fn open_node(&mut self, e: &Entry) -> Result<usize, FsError> {
        if let Some(id) = self.node_at(e.off()) {
            self.node(id)?.refs += 1;
            return Ok(id);
        }
        let first = e.first(self.fat32());
        if (first == 0 && e.size() > 0) || (first != 0 && !self.g.valid_cluster(first)) {
            return Err(FsError::Corrupt);
        }
        // The whole chain is checked once: no loop, no bad link, and long
        // enough for the size (a longer one is read only as far as the size
        // goes, as Linux does).
        let tail =
            if first == 0 { None } else { Some(self.chain_last_n(first, u64::from(e.size()))?) };
        let node = Node {
            refs: 1,
            entry: Some(e.off()),
            first,
            tail,
            pend_head: 0,
            pend_tail: 0,
            pend_count: 0,
            pend_max: 0,
            len: u64::from(e.size()),
            dirty: false,
            mtime: None,
            cursor: None,
            marks: Vec::new(),
        };
        if let Some(slot) = self.nodes.iter_mut().find(|n| n.is_none()) {
            *slot = Some(node);
        } else {
            self.nodes.push(Some(node));
        }
        Ok(self
            .nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.entry == Some(e.off())))
            .unwrap_or(0))
    }

    /// Drops a handle on node `id`: the last one commits it, and frees the
    /// clusters of a file removed while open.
    pub(crate) fn release(&mut self, id: usize) -> Result<(), FsError> {
        let n = self.node(id)?;
        n.refs = n.refs.saturating_sub(1);
        if n.refs > 0 {
            return Ok(());
        }
        let r = if n.entry.is_some() {
            self.commit(id)
        } else {
            let (first, pend) = (n.first, (n.pend_count > 0).then_some(n.pend_head));
            let mut r = Ok(());
            for c in [Some(first).filter(|&c| c != 0), pend].into_iter().flatten() {
                if let Err(e) = self.free_chain(c) {
                    r = Err(e);
                }
            }
            r.and_then(|()| self.cache.flush(&self.store))
        };
        self.nodes[id] = None;
        r
    }

    /// The cluster holding cluster-index `idx` of node `id`'s data, if the
    /// file has that many.
    pub(crate) fn cluster_at(&mut self, id: usize, idx: u64) -> Result<Option<u32>, FsError> {
        let limit = u64::from(self.g.clusters);
        let n = self.node(id)?;
        if idx >= limit {
            return Ok(None);
        }
        // The nearest known point at or before idx: the cursor or a mark.
        let mark = (idx / MARK_EVERY).min(n.marks.len() as u64);
        let from_mark = mark.checked_sub(1).map(|m| {
            let (c, pend) = n.marks[m as usize];
            (m * MARK_EVERY, c, pend)
        });
        let (mut i, mut c, mut pend) = match (n.cursor, from_mark) {
            (Some(cur), Some(m)) if cur.0 <= idx => {
                if cur.0 >= m.0 {
                    cur
                } else {
                    m
                }
            }
            (Some(cur), None) if cur.0 <= idx => cur,
            (_, Some(m)) => m,
            _ if n.first != 0 => (0, n.first, false),
            _ if n.pend_count > 0 => (0, n.pend_head, true),
            _ => return Ok(None),
        };
        if i == 0 && n.marks.is_empty() {
            n.marks.push((c, pend));
        }
        while i < idx {
            match self.next(c)? {
                Link::Next(x) => c = x,
                Link::End => {
                    let n = self.node(id)?;
                    if !pend && n.pend_count > 0 {
                        n.tail = Some(c);
                        c = n.pend_head;
                        pend = true;
                    } else {
                        if !pend {
                            n.tail = Some(c);
                        }
                        n.cursor = Some((i, c, pend));
                        return Ok(None);
                    }
                }
            }
            i += 1;
            if i % MARK_EVERY == 0 {
                let n = self.node(id)?;
                if n.marks.len() as u64 == i / MARK_EVERY {
                    n.marks.push((c, pend));
                }
            }
        }
        self.node(id)?.cursor = Some((i, c, pend));
        Ok(Some(c))
    }

    /// Like [`Vol::cluster_at`], allocating clusters up to `idx` if needed.
    fn cluster_for_write(&mut self, id: usize, idx: u64) -> Result<u32, FsError> {
        loop {
            if let Some(c) = self.cluster_at(id, idx)? {
                return Ok(c);
            }
            if idx >= u64::from(self.g.clusters) {
                return Err(FsError::NoSpace);
            }
            let prev = {
                let n = self.node(id)?;
                (n.pend_count > 0).then_some(n.pend_tail)
            };
            let c = self.alloc(prev)?;
            let n = self.node(id)?;
            if n.pend_count == 0 {
                (n.pend_head, n.pend_max) = (c, c);
            } else {
                n.pend_max = n.pend_max.max(c);
            }
            n.pend_tail = c;
            n.pend_count += 1;
        }
    }

    /// The next cluster-contiguous stretch of node `id` from byte `pos`, at
    /// most `want` bytes: (its offset on the volume, its length).
    fn run(&mut self, id: usize, pos: u64, want: u64, write: bool) -> Result<(u64, u64), FsError> {
        let cs = u64::from(self.g.cluster_bytes);
        let idx = pos / cs;
        let get = |v: &mut Self, k: u64| -> Result<Option<u32>, FsError> {
            if write { v.cluster_for_write(id, k).map(Some) } else { v.cluster_at(id, k) }
        };
        let c = get(self, idx)?.ok_or(FsError::Corrupt)?;
        let mut len = cs - pos % cs;
        let (mut last, mut k) = (c, idx);
        while len < want && len < MAX_RUN {
            // Past the first cluster, a failure (no space) only ends the
            // stretch: the caller writes what it has, then meets it again.
            match get(self, k + 1).unwrap_or(None) {
                Some(x) if x == last + 1 => {
                    len += cs;
                    last = x;
                    k += 1;
                }
                _ => break,
            }
        }
        Ok((self.g.cluster_off(c)? + pos % cs, len.min(want)))
    }

    /// Reads from node `id` at `pos`; 0 at or past the end.
    pub(crate) fn read(&mut self, id: usize, pos: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        let len = self.node(id)?.len;
        if pos >= len {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(len - pos) as usize;
        let mut done = 0;
        while done < want {
            let (off, n) = self.run(id, pos + done as u64, (want - done) as u64, false)?;
            self.read_bytes(off, &mut buf[done..done + n as usize])?;
            done += n as usize;
        }
        Ok(done)
    }

    /// Writes `data` into node `id` at `pos`, zero-filling from the end of
    /// the file up to `pos`.
    pub(crate) fn write(&mut self, id: usize, pos: u64, data: &[u8]) -> Result<(), FsError> {
        let end = pos.checked_add(data.len() as u64).ok_or(FsError::TooLarge)?;
        if end > u64::from(u32::MAX) {
            return Err(FsError::TooLarge);
        }
        if self.store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        let len = self.node(id)?.len;
        if pos > len {
            self.fill(id, len, pos)?;
        }
        self.write_inner(id, pos, data)?;
        let n = self.node(id)?;
        n.len = n.len.max(end);
        n.dirty = true;
        n.mtime = Some(time::now());
        Ok(())
    }

    fn write_inner(&mut self, id: usize, pos: u64, data: &[u8]) -> Result<(), FsError> {
        let mut done = 0;
        while done < data.len() {
            let (off, n) = self.run(id, pos + done as u64, (data.len() - done) as u64, true)?;
            self.write_bytes(off, &data[done..done + n as usize])?;
            done += n as usize;
            // The length grows as the data lands, so that a failure (no
            // space) leaves what was written.
            let node = self.node(id)?;
            node.len = node.len.max(pos + done as u64);
        }
        Ok(())
    }

    /// Writes zeros into node `id` over `[from, to)`.
    fn fill(&mut self, id: usize, from: u64, to: u64) -> Result<(), FsError> {
        let zeros = alloc::vec![0u8; (to - from).min(MAX_RUN) as usize];
        let mut at = from;
        while at < to {
            let n = (to - at).min(zeros.len() as u64) as usize;
            self.write_inner(id, at, &zeros[..n])?;
            at += n as u64;
        }
        Ok(())
    }

    /// Changes node `id`'s length (zero-filled when longer).
    pub(crate) fn set_len(&mut self, id: usize, new: u64) -> Result<(), FsError> {
        if new > u64::from(u32::MAX) {
            return Err(FsError::TooLarge);
        }
        if self.store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        let len = self.node(id)?.len;
        if new >= len {
            if new > len {
                self.fill(id, len, new)?;
            }
            let n = self.node(id)?;
            n.dirty = true;
            n.mtime = Some(time::now());
            return Ok(());
        }
        // Shorter: the chain whole first, then the entry's new length, then
        // the cut, then the clusters past it (a crash before they are freed
        // leaves a chain longer than the length, which fsck.fat trims). The
        // cut is flushed on its own: the clusters past it may lie on FAT
        // pages before its own, which a flush writes first, and a crash
        // between would leave the chain running into free clusters.
        self.commit(id)?;
        let cs = u64::from(self.g.cluster_bytes);
        let keep = new.div_ceil(cs);
        let cut = if keep == 0 {
            None
        } else {
            Some(self.cluster_at(id, keep - 1)?.ok_or(FsError::Corrupt)?)
        };
        let n = self.node(id)?;
        let old_first = n.first;
        n.len = new;
        n.mtime = Some(time::now());
        n.dirty = true;
        n.cursor = None;
        n.marks.clear();
        n.tail = cut;
        if cut.is_none() {
            n.first = 0;
        }
        self.commit(id)?;
        match cut {
            None if old_first != 0 => self.free_chain(old_first)?,
            Some(c) => {
                if let Link::Next(rest) = self.next(c)? {
                    let eoc = self.g.eoc();
                    self.fat_set(c, eoc)?;
                    self.cache.flush(&self.store)?;
                    self.free_chain(rest)?;
                }
            }
            None => {}
        }
        self.cache.flush(&self.store)
    }

    /// Links node `id`'s pending clusters into its chain and writes its
    /// entry; everything reaches the disk in the flush order (data, FAT
    /// mirrors, FAT, directory). The pending clusters' marks are on the
    /// disk before the link that names them: flushed first when one lies
    /// on a later FAT page than the link (a flush writes pages in
    /// ascending order, and a crash between would leave the chain running
    /// into a free cluster).
    pub(crate) fn commit(&mut self, id: usize) -> Result<(), FsError> {
        let n = self.node(id)?;
        if n.pend_count > 0 && n.entry.is_some() {
            let (head, tail, first, max) = (n.pend_head, n.pend_tail, n.first, n.pend_max);
            if first == 0 {
                self.node(id)?.first = head;
            } else {
                let last = match self.node(id)?.tail {
                    Some(t) => t,
                    None => self.chain_last(first)?,
                };
                if self.fat_pages(max).1 > self.fat_pages(last).0 {
                    self.cache.flush(&self.store)?;
                }
                self.fat_set(last, head)?;
            }
            let n = self.node(id)?;
            n.tail = Some(tail);
            n.pend_count = 0;
            n.dirty = true;
            if let Some(cur) = n.cursor.as_mut() {
                cur.2 = false;
            }
            // The pending clusters are the chain's now.
            for m in &mut n.marks {
                m.1 = false;
            }
        }
        let n = self.node(id)?;
        if let (true, Some(off)) = (n.dirty, n.entry) {
            let (first, len, mtime) = (n.first, n.len, n.mtime);
            let mut raw = self.read_raw(off)?;
            dir::set_first(&mut raw, first, self.fat32());
            dir::set_size(&mut raw, len as u32);
            if let Some(t) = mtime {
                dir::set_mtime(&mut raw, t);
                raw[11] |= dir::ATTR_ARCHIVE;
            }
            self.write_raw(off, &raw)?;
            self.node(id)?.dirty = false;
        }
        self.cache.flush(&self.store)
    }

    /// Sets the modification time node `id` will write.
    pub(crate) fn set_node_mtime(&mut self, id: usize, secs: u64) -> Result<(), FsError> {
        let n = self.node(id)?;
        n.mtime = Some(secs);
        n.dirty = true;
        Ok(())
    }

    /// Points node `id` at a new entry (after a rename), or none (removed).
    pub(crate) fn move_node(&mut self, id: usize, to: Option<u64>) -> Result<(), FsError> {
        self.node(id)?.entry = to;
        Ok(())
    }

    /// Writes the cache back.
    pub(crate) fn flush(&mut self) -> Result<(), FsError> {
        self.cache.flush(&self.store)
    }

    /// Commits every open file, writes FSInfo, and flushes the device.
    pub(crate) fn sync_all(&mut self) -> Result<(), FsError> {
        for id in 0..self.nodes.len() {
            if self.nodes[id].as_ref().is_some_and(|n| n.entry.is_some()) {
                self.commit(id)?;
            }
        }
        self.sync_disk()
    }

    /// Writes FSInfo, then flushes the cache and the device.
    pub(crate) fn sync_disk(&mut self) -> Result<(), FsError> {
        if self.store.dev.read_only() {
            return Ok(());
        }
        self.write_info()?;
        self.cache.flush(&self.store)?;
        self.store.dev.flush().map_err(super::cache::dev_err)
    }

    /// Reads bytes at volume offset `off`: whole device sectors straight
    /// from the disk (with what the cache holds laid over them), the
    /// partial ones at the ends through the cache.
    pub(crate) fn read_bytes(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let ss = self.store.ss;
        let end = off + buf.len() as u64;
        let head = off.next_multiple_of(ss).min(end);
        let mid = (end / ss * ss).max(head);
        if mid - head < ss {
            return self.cache.read(&self.store, off, buf);
        }
        let (h, rest) = buf.split_at_mut((head - off) as usize);
        let (m, t) = rest.split_at_mut((mid - head) as usize);
        self.cache.read(&self.store, off, h)?;
        self.store.read(head, m)?;
        self.cache.read_direct(head, m);
        self.cache.read(&self.store, mid, t)
    }

    /// Writes file data at volume offset `off`, as [`Vol::read_bytes`]
    /// reads it.
    pub(crate) fn write_bytes(&mut self, off: u64, data: &[u8]) -> Result<(), FsError> {
        let ss = self.store.ss;
        let end = off + data.len() as u64;
        let head = off.next_multiple_of(ss).min(end);
        let mid = (end / ss * ss).max(head);
        if mid - head < ss {
            return self.cache.write(&self.store, off, data, Class::Data);
        }
        let (h, rest) = data.split_at((head - off) as usize);
        let (m, t) = rest.split_at((mid - head) as usize);
        self.cache.write(&self.store, off, h, Class::Data)?;
        self.store.write(head, m)?;
        self.cache.written_direct(head, m);
        self.cache.write(&self.store, mid, t, Class::Data)
    }
}
