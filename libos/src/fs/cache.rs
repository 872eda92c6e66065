//! The volume's bytes: direct transfers for bulk file data, and a block
//! cache with write-back for everything else (the FAT, directories, the
//! partial sectors at the ends of a file write).
//!
//! Every offset here is relative to the volume and checked against its
//! length before any transfer ([`Store`]), so nothing is ever read or
//! written outside the volume, whatever a corrupt disk says.
//!
//! The cache holds pages of [`Cache::page`] bytes (4 KiB, or the device's
//! sector if larger), aligned to the start of the volume. A dirty page
//! carries the class of what was written into it ([`Class`]): a flush writes
//! pages class by class (file data, then the FAT's mirror copies, then the
//! first FAT, then directories, then FSInfo), in ascending offset within a
//! class. That order is what docs/storage.md's crash-consistency rules rely
//! on; the file system calls [`Cache::flush`] at the points the rules name.
//! When the cache is full and its least recently used page is dirty, the
//! whole cache is flushed (in that order) before the page is dropped.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use super::FsError;
use crate::block::BlockDevice;

/// What a dirty page holds, in the order a flush writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    Data,
    FatMirror,
    Fat,
    Dir,
    Info,
}

/// The volume on its device.
#[derive(Debug)]
pub(crate) struct Store {
    pub dev: BlockDevice,
    /// The volume's first byte on the device.
    pub base: u64,
    /// Its usable length.
    pub len: u64,
    /// The device's sector size.
    pub ss: u64,
}

impl Store {
    fn check(&self, off: u64, len: usize) -> Result<u64, FsError> {
        let end = off.checked_add(len as u64).ok_or(FsError::Corrupt)?;
        if end > self.len || !off.is_multiple_of(self.ss) || !(len as u64).is_multiple_of(self.ss) {
            return Err(FsError::Corrupt);
        }
        Ok((self.base + off) / self.ss)
    }

    /// Reads whole device sectors at volume offset `off`.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let sector = self.check(off, buf.len())?;
        self.dev.read(sector, buf).map_err(dev_err)
    }

    /// Writes whole device sectors at volume offset `off`.
    pub fn write(&self, off: u64, buf: &[u8]) -> Result<(), FsError> {
        let sector = self.check(off, buf.len())?;
        #[cfg(test)]
        if crash::hit() {
            return Err(FsError::Device(crate::block::BlockError::ShortTransfer));
        }
        self.dev.write(sector, buf).map_err(dev_err)
    }
}

/// The host tests' crash: after a number of writes, every later write
/// fails (as if the guest had been killed there; what it wrote stays).
#[cfg(test)]
pub(crate) mod crash {
    use core::cell::Cell;

    std::thread_local! {
        static LEFT: Cell<Option<u64>> = const { Cell::new(None) };
        static DONE: Cell<u64> = const { Cell::new(0) };
    }

    /// Lets `n` more writes through (`None`: all), and counts from 0.
    pub(crate) fn arm(n: Option<u64>) {
        LEFT.with(|l| l.set(n));
        DONE.with(|d| d.set(0));
    }

    /// Writes made since [`arm`].
    pub(crate) fn done() -> u64 {
        DONE.with(Cell::get)
    }

    pub(super) fn hit() -> bool {
        LEFT.with(|l| match l.get() {
            Some(0) => true,
            Some(n) => {
                l.set(Some(n - 1));
                DONE.with(|d| d.set(d.get() + 1));
                false
            }
            None => {
                DONE.with(|d| d.set(d.get() + 1));
                false
            }
        })
    }
}

pub(crate) fn dev_err(e: crate::block::BlockError) -> FsError {
    match e {
        crate::block::BlockError::ReadOnly => FsError::ReadOnly,
        e => FsError::Device(e),
    }
}

#[derive(Debug)]
struct Page {
    data: Vec<u8>,
    dirty: Option<Class>,
    used: u64,
}

/// The block cache.
#[derive(Debug)]
pub(crate) struct Cache {
    pub page: u64,
    /// Most pages held.
    cap: usize,
    pages: BTreeMap<u64, Page>,
    clock: u64,
}

/// Pages held unless the guest asks otherwise (256 KiB of 4 KiB pages).
pub(crate) const DEFAULT_BYTES: usize = 256 * 1024;

impl Cache {
    pub fn new(ss: u64, bytes: usize) -> Self {
        let page = ss.max(4096);
        let cap = (bytes as u64 / page).max(8) as usize;
        Self { page, cap, pages: BTreeMap::new(), clock: 0 }
    }

    /// The bytes of the page at `idx`: the page's length is cut at the end
    /// of the volume.
    fn load(&mut self, store: &Store, idx: u64, whole: bool) -> Result<&mut Page, FsError> {
        if !self.pages.contains_key(&idx) {
            if self.pages.len() >= self.cap {
                self.evict(store)?;
            }
            let start = idx * self.page;
            let len = self.page.min(store.len.saturating_sub(start)) as usize;
            if len == 0 {
                return Err(FsError::Corrupt);
            }
            let mut data = vec![0u8; len];
            if !whole {
                store.read(start, &mut data)?;
            }
            self.pages.insert(idx, Page { data, dirty: None, used: 0 });
        }
        self.clock += 1;
        let clock = self.clock;
        let p = self.pages.get_mut(&idx).ok_or(FsError::Corrupt)?;
        p.used = clock;
        Ok(p)
    }

    fn evict(&mut self, store: &Store) -> Result<(), FsError> {
        let Some((&idx, p)) = self.pages.iter().min_by_key(|(_, p)| p.used) else {
            return Ok(());
        };
        if p.dirty.is_some() {
            self.flush(store)?;
        }
        self.pages.remove(&idx);
        Ok(())
    }

    /// Reads `buf.len()` bytes at `off` (inside the volume).
    pub fn read(&mut self, store: &Store, mut off: u64, mut buf: &mut [u8]) -> Result<(), FsError> {
        let end = off.checked_add(buf.len() as u64).ok_or(FsError::Corrupt)?;
        if end > store.len {
            return Err(FsError::Corrupt);
        }
        while !buf.is_empty() {
            let idx = off / self.page;
            let at = (off % self.page) as usize;
            let p = self.load(store, idx, false)?;
            let n = buf.len().min(p.data.len().saturating_sub(at));
            if n == 0 {
                return Err(FsError::Corrupt);
            }
            buf[..n].copy_from_slice(&p.data[at..at + n]);
            buf = &mut buf[n..];
            off += n as u64;
        }
        Ok(())
    }

    /// Writes `data` at `off` into the cache, dirty as `class`.
    pub fn write(
        &mut self,
        store: &Store,
        mut off: u64,
        mut data: &[u8],
        class: Class,
    ) -> Result<(), FsError> {
        let end = off.checked_add(data.len() as u64).ok_or(FsError::Corrupt)?;
        if end > store.len {
            return Err(FsError::Corrupt);
        }
        if store.dev.read_only() {
            return Err(FsError::ReadOnly);
        }
        let page = self.page;
        while !data.is_empty() {
            let idx = off / page;
            let at = (off % page) as usize;
            let whole = at == 0 && data.len() as u64 >= page.min(store.len - idx * page);
            let p = self.load(store, idx, whole)?;
            let n = data.len().min(p.data.len().saturating_sub(at));
            if n == 0 {
                return Err(FsError::Corrupt);
            }
            p.data[at..at + n].copy_from_slice(&data[..n]);
            p.dirty = Some(p.dirty.map_or(class, |c| c.max(class)));
            data = &data[n..];
            off += n as u64;
        }
        Ok(())
    }

    /// Writes every dirty page back, class by class.
    pub fn flush(&mut self, store: &Store) -> Result<(), FsError> {
        self.flush_where(store, |_| true)
    }

    /// Writes back only the dirty pages of class `class` (a page holding
    /// two classes counts as the higher one), leaving the others dirty.
    pub fn flush_only(&mut self, store: &Store, class: Class) -> Result<(), FsError> {
        self.flush_where(store, |c| c == class)
    }

    fn flush_where(&mut self, store: &Store, keep: impl Fn(Class) -> bool) -> Result<(), FsError> {
        let mut order: Vec<(Class, u64)> =
            self.pages.iter().filter_map(|(&i, p)| p.dirty.map(|c| (c, i))).collect();
        order.retain(|&(c, _)| keep(c));
        order.sort_unstable();
        for (_, idx) in order {
            let page = self.page;
            if let Some(p) = self.pages.get_mut(&idx) {
                store.write(idx * page, &p.data)?;
                p.dirty = None;
            }
        }
        Ok(())
    }

    /// Brings cached pages in step with `data`, just written at `off`
    /// straight to the disk (their other bytes stay as they are, dirty or
    /// not).
    pub fn written_direct(&mut self, off: u64, data: &[u8]) {
        self.overlap(off, data.len(), |p, page_at, buf_at, n| {
            p.data[page_at..page_at + n].copy_from_slice(&data[buf_at..buf_at + n]);
        });
    }

    /// Overlays on `buf`, just read at `off` straight from the disk, what
    /// the cache holds there (it may be newer than the disk).
    pub fn read_direct(&mut self, off: u64, buf: &mut [u8]) {
        self.overlap(off, buf.len(), |p, page_at, buf_at, n| {
            buf[buf_at..buf_at + n].copy_from_slice(&p.data[page_at..page_at + n]);
        });
    }

    fn overlap(&mut self, off: u64, len: usize, mut f: impl FnMut(&mut Page, usize, usize, usize)) {
        if len == 0 {
            return;
        }
        let end = off + len as u64;
        let first = off / self.page;
        let last = (end - 1) / self.page;
        let page = self.page;
        for (&idx, p) in self.pages.range_mut(first..=last) {
            let pstart = idx * page;
            let pend = pstart + p.data.len() as u64;
            let s = off.max(pstart);
            let e = end.min(pend);
            if s < e {
                f(p, (s - pstart) as usize, (s - off) as usize, (e - s) as usize);
            }
        }
    }
}
