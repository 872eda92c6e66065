//! The file allocation table: 12-, 16- and 28-bit entries, chains,
//! allocation and freeing, the free count and FSInfo.
//!
//! Every entry read is checked: a chain that reaches a free, reserved, bad
//! or out-of-range entry, or runs longer than the volume has clusters (a
//! loop), is [`FsError::Corrupt`]. Every entry written goes to each FAT copy,
//! the first FAT as [`Class::Fat`] and the others as [`Class::FatMirror`],
//! so a flush writes the mirrors before the first FAT (docs/storage.md).

use alloc::vec;

use super::FsError;
use super::bpb::Kind;
use super::cache::Class;
use super::vol::Vol;

/// A FAT entry's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// The chain goes on at this cluster.
    Next(u32),
    /// The chain ends here.
    End,
}

impl Vol {
    /// Offset in a FAT of cluster `n`'s entry.
    fn entry_at(&self, n: u32) -> u64 {
        let n = u64::from(n);
        match self.g.kind {
            Kind::Fat12 => n * 3 / 2,
            Kind::Fat16 => n * 2,
            Kind::Fat32 => n * 4,
        }
    }

    /// The cache pages that hold the first and the last byte of cluster
    /// `n`'s entry in FAT copy `copy` (0: the first FAT): one page but for
    /// a FAT12 entry that straddles a page boundary.
    fn entry_pages(&self, n: u32, copy: u32) -> (u64, u64) {
        let at = self.g.fat_off + u64::from(copy) * self.g.fat_len + self.entry_at(n);
        let width = if self.g.kind == Kind::Fat32 { 4 } else { 2 };
        (at / self.cache.page, (at + width - 1) / self.cache.page)
    }

    /// [`Vol::entry_pages`] in the first FAT, whose pages a flush writes in
    /// ascending order.
    pub(crate) fn fat_pages(&self, n: u32) -> (u64, u64) {
        self.entry_pages(n, 0)
    }

    /// Whether cluster `n`'s entry straddles two cache pages in any FAT
    /// copy (a FAT12 entry at a 4 KiB boundary): two writes, which a crash
    /// can tear apart, so this code never allocates that cluster (one or
    /// two lost on FAT12 volumes of more than about 2,400 clusters) nor
    /// counts it free.
    pub(crate) fn torn(&self, n: u32) -> bool {
        // FAT16 and FAT32 entries are aligned to their width: never.
        self.g.kind == Kind::Fat12
            && (0..self.g.fats).any(|copy| {
                let (a, b) = self.entry_pages(n, copy);
                a != b
            })
    }

    /// The raw value of cluster `n`'s entry in the first FAT.
    pub(crate) fn fat_get(&mut self, n: u32) -> Result<u32, FsError> {
        if n >= self.g.clusters.saturating_add(2) {
            return Err(FsError::Corrupt);
        }
        let off = self.g.fat_off + self.entry_at(n);
        Ok(match self.g.kind {
            Kind::Fat12 => {
                let mut b = [0u8; 2];
                self.cache.read(&self.store, off, &mut b)?;
                let v = u32::from(u16::from_le_bytes(b));
                if n % 2 == 1 { v >> 4 } else { v & 0xfff }
            }
            Kind::Fat16 => {
                let mut b = [0u8; 2];
                self.cache.read(&self.store, off, &mut b)?;
                u32::from(u16::from_le_bytes(b))
            }
            Kind::Fat32 => {
                let mut b = [0u8; 4];
                self.cache.read(&self.store, off, &mut b)?;
                u32::from_le_bytes(b) & 0x0fff_ffff
            }
        })
    }

    /// Sets cluster `n`'s entry to `v` in every FAT.
    pub(crate) fn fat_set(&mut self, n: u32, v: u32) -> Result<(), FsError> {
        if !self.g.valid_cluster(n) {
            return Err(FsError::Corrupt);
        }
        let at = self.entry_at(n);
        for copy in 0..self.g.fats {
            let class = if copy == 0 { Class::Fat } else { Class::FatMirror };
            let off = self.g.fat_off + u64::from(copy) * self.g.fat_len + at;
            match self.g.kind {
                Kind::Fat12 => {
                    let mut b = [0u8; 2];
                    self.cache.read(&self.store, off, &mut b)?;
                    let old = u16::from_le_bytes(b);
                    let v = (v & 0xfff) as u16;
                    let new =
                        if n % 2 == 1 { (old & 0x000f) | (v << 4) } else { (old & 0xf000) | v };
                    self.cache.write(&self.store, off, &new.to_le_bytes(), class)?;
                }
                Kind::Fat16 => {
                    self.cache.write(&self.store, off, &(v as u16).to_le_bytes(), class)?;
                }
                Kind::Fat32 => {
                    let mut b = [0u8; 4];
                    self.cache.read(&self.store, off, &mut b)?;
                    let new = (u32::from_le_bytes(b) & 0xf000_0000) | (v & 0x0fff_ffff);
                    self.cache.write(&self.store, off, &new.to_le_bytes(), class)?;
                }
            }
        }
        Ok(())
    }

    /// Where the chain goes after cluster `c`.
    pub(crate) fn next(&mut self, c: u32) -> Result<Link, FsError> {
        if !self.g.valid_cluster(c) {
            return Err(FsError::Corrupt);
        }
        let v = self.fat_get(c)?;
        if self.g.is_eoc(v) {
            Ok(Link::End)
        } else if self.g.valid_cluster(v) {
            Ok(Link::Next(v))
        } else {
            // Free, reserved or bad inside a chain.
            Err(FsError::Corrupt)
        }
    }

    /// The last cluster of the chain at `first`.
    pub(crate) fn chain_last(&mut self, first: u32) -> Result<u32, FsError> {
        let mut c = first;
        for _ in 0..self.g.clusters {
            match self.next(c)? {
                Link::End => return Ok(c),
                Link::Next(x) => c = x,
            }
        }
        Err(FsError::Corrupt)
    }

    /// The last cluster of the chain at `first`, which must hold `bytes`.
    pub(crate) fn chain_last_n(&mut self, first: u32, bytes: u64) -> Result<u32, FsError> {
        let need = bytes.div_ceil(u64::from(self.g.cluster_bytes));
        let mut c = first;
        for n in 1..=u64::from(self.g.clusters) {
            match self.next(c)? {
                Link::End if n >= need => return Ok(c),
                Link::End => return Err(FsError::Corrupt),
                Link::Next(x) => c = x,
            }
        }
        Err(FsError::Corrupt)
    }

    /// Allocates a free cluster, marks it as the end of a chain and links
    /// it after `prev` if given. Returns it.
    pub(crate) fn alloc(&mut self, prev: Option<u32>) -> Result<u32, FsError> {
        self.begin_change()?;
        let n = self.g.clusters;
        let start = if self.g.valid_cluster(self.next_free) { self.next_free - 2 } else { 0 };
        let mut found = None;
        for i in 0..n {
            let c = (start + i) % n + 2;
            if self.fat_get(c)? == 0 && !self.torn(c) {
                found = Some(c);
                break;
            }
        }
        let c = found.ok_or(FsError::NoSpace)?;
        let eoc = self.g.eoc();
        self.fat_set(c, eoc)?;
        if let Some(p) = prev {
            self.fat_set(p, c)?;
        }
        self.next_free = if c + 1 < n + 2 { c + 1 } else { 2 };
        if let Some(f) = self.free.as_mut() {
            *f = f.saturating_sub(1);
        }
        Ok(c)
    }

    /// Frees the chain at `first`. Stops (with `Corrupt`) at a bad link;
    /// what it freed stays free. A loop ends at the first cluster freed
    /// already.
    pub(crate) fn free_chain(&mut self, first: u32) -> Result<(), FsError> {
        // A directory that started here is gone: so is its index.
        self.ix.drop_dir(super::dir::DirLoc::Chain(first));
        self.begin_change()?;
        let mut c = first;
        for _ in 0..self.g.clusters {
            let link = self.next(c)?;
            self.fat_set(c, 0)?;
            let counted = !self.torn(c);
            if let Some(f) = self.free.as_mut().filter(|_| counted) {
                *f = f.saturating_add(1);
            }
            match link {
                Link::End => return Ok(()),
                Link::Next(x) => c = x,
            }
        }
        Err(FsError::Corrupt)
    }

    /// Free clusters, counted once (in bulk reads of the first FAT, up to
    /// 1 MiB each), then kept up to date.
    pub(crate) fn free_clusters(&mut self) -> Result<u32, FsError> {
        if let Some(f) = self.free {
            return Ok(f);
        }
        let ss = self.store.ss;
        let last = self.g.clusters + 2;
        let per_batch: u32 = 256 * 1024;
        let mut free = 0u32;
        let mut buf = vec![];
        let mut a = 2u32;
        while a < last {
            let b = last.min(a.saturating_add(per_batch));
            let from = self.g.fat_off + self.entry_at(a);
            let to = self.g.fat_off + self.entry_at(b - 1) + 4;
            let start = from / ss * ss;
            let end = (to.div_ceil(ss) * ss).min(self.store.len);
            buf.resize((end - start) as usize, 0);
            self.store.read(start, &mut buf)?;
            self.cache.read_direct(start, &mut buf);
            for c in a..b {
                let at = (self.g.fat_off + self.entry_at(c) - start) as usize;
                let byte = |i: usize| u32::from(buf.get(at + i).copied().unwrap_or(0xff));
                let v = match self.g.kind {
                    Kind::Fat12 => {
                        let v = byte(0) | byte(1) << 8;
                        if c % 2 == 1 { v >> 4 } else { v & 0xfff }
                    }
                    Kind::Fat16 => byte(0) | byte(1) << 8,
                    Kind::Fat32 => {
                        (byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24) & 0x0fff_ffff
                    }
                };
                if v == 0 && !self.torn(c) {
                    free += 1;
                }
            }
            a = b;
        }
        self.free = Some(free);
        Ok(free)
    }

    /// Before the first change to the FAT since mount or the last sync:
    /// FSInfo's free count is set to "unknown" on the disk, so that a crash
    /// leaves no stale count (fsck.fat reports an unknown count, and no
    /// error; a wrong one is an error).
    pub(crate) fn begin_change(&mut self) -> Result<(), FsError> {
        if self.info_stale {
            return Ok(());
        }
        if let Some(off) = self.g.fsinfo_off {
            self.cache.write(&self.store, off + 488, &u32::MAX.to_le_bytes(), Class::Info)?;
            self.cache.flush(&self.store)?;
        }
        self.info_stale = true;
        Ok(())
    }

    /// Writes the true free count and next-free hint into FSInfo (after
    /// everything else is on the disk).
    pub(crate) fn write_info(&mut self) -> Result<(), FsError> {
        if !self.info_stale {
            return Ok(());
        }
        if let Some(off) = self.g.fsinfo_off {
            let free = self.free_clusters()?;
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&free.to_le_bytes());
            b[4..].copy_from_slice(&self.next_free.to_le_bytes());
            self.cache.flush(&self.store)?;
            self.cache.write(&self.store, off + 488, &b, Class::Info)?;
        }
        self.cache.flush(&self.store)?;
        self.info_stale = false;
        Ok(())
    }
}
