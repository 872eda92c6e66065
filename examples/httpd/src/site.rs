//! The site: the files of the disk, and a cache of the small ones.
//!
//! Files up to [`CACHE_FILE_MAX`] are kept in memory after their first
//! request, up to the cache's budget (a quarter of the heap at start, at
//! most [`CACHE_TOTAL_MAX`]): the disk is the guest's while it runs. A file
//! read into the cache is allocated fallibly; one that does not fit is sent
//! from the disk in pieces instead, like a large file. What a request path
//! names is remembered too (within [`FOUND_MAX`]): walking the FAT
//! directories for every request was the largest part of httpd's own
//! time per 1 KiB request (see docs/performance.md, "httpd's margin").

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use libos::fs::{FileSystem, FsError};

/// Files up to this size are cached once read: read from the disk, a file
/// costs two more copies of its bytes in the guest and one in the host per
/// request.
pub(crate) const CACHE_FILE_MAX: u64 = 4 * 1024 * 1024;
/// Most bytes the cache may hold, whatever the heap.
pub(crate) const CACHE_TOTAL_MAX: usize = 32 * 1024 * 1024;

/// Most bytes [`Site::find`]'s memory may take, counted as the two paths
/// of each entry and [`FOUND_ENTRY`]: a client asking for many spellings of
/// one file (FAT names ignore case) cannot grow it further.
pub(crate) const FOUND_MAX: usize = 256 * 1024;
/// What an entry of [`Site::find`]'s memory costs besides its paths: the
/// map's share of a node, the `Rc` and the lengths and times.
const FOUND_ENTRY: usize = 128;

/// The file system and the cache.
pub(crate) struct Site {
    pub(crate) fs: FileSystem,
    cache: RefCell<BTreeMap<String, Rc<Vec<u8>>>>,
    cached: Cell<usize>,
    cache_max: usize,
    /// What [`Site::find`] found for a request path, so that a file asked
    /// for again costs no walk of the FAT directories (the disk is the
    /// guest's: nothing else changes it while httpd runs).
    found: RefCell<BTreeMap<String, Rc<Found>>>,
    /// What `found` takes, at most [`FOUND_MAX`].
    found_bytes: Cell<usize>,
    /// The path answered with the heap's figures instead of a file
    /// (`HTTPD_STATUS_PATH`; none by default).
    pub(crate) status: Option<String>,
}

/// A file to send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) path: String,
    pub(crate) len: u64,
    pub(crate) modified: u64,
}

impl Site {
    /// The site on `fs`, with a cache of at most `cache_max` bytes.
    pub(crate) fn new(fs: FileSystem, cache_max: usize) -> Self {
        Self {
            fs,
            cache: RefCell::new(BTreeMap::new()),
            cached: Cell::new(0),
            cache_max,
            found: RefCell::new(BTreeMap::new()),
            found_bytes: Cell::new(0),
            status: None,
        }
    }

    /// The file `path` names: itself, or a directory's index file; from
    /// what an earlier request found, or from the disk (remembered within
    /// [`FOUND_MAX`] and the heap's reserve; what is not found is not
    /// remembered: a 404 walks the directories each time, as before).
    pub(crate) fn find(&self, path: &str) -> Result<Rc<Found>, FsError> {
        if let Some(f) = self.found.borrow().get(path) {
            return Ok(f.clone());
        }
        let f = Rc::new(self.find_on_disk(path)?);
        let cost = path.len() + f.path.len() + FOUND_ENTRY;
        let total = self.found_bytes.get() + cost;
        if total <= FOUND_MAX && crate::room_for(cost) {
            self.found_bytes.set(total);
            self.found.borrow_mut().insert(path.into(), f.clone());
        }
        Ok(f)
    }

    /// [`Site::find`] on the disk.
    fn find_on_disk(&self, path: &str) -> Result<Found, FsError> {
        let meta = self.fs.metadata(path)?;
        if !meta.is_dir {
            return Ok(Found { path: path.into(), len: meta.len, modified: meta.modified });
        }
        let index = alloc::format!("{}/index.html", path.trim_end_matches('/'));
        let meta = self.fs.metadata(&index)?;
        if meta.is_dir {
            return Err(FsError::NotFound);
        }
        Ok(Found { path: index, len: meta.len, modified: meta.modified })
    }

    /// The whole contents of `f` from the cache, read into it first if it
    /// is small and fits; `None` for a file to send from the disk.
    pub(crate) fn cached(&self, f: &Found) -> Result<Option<Rc<Vec<u8>>>, FsError> {
        if let Some(b) = self.cache.borrow().get(&f.path) {
            return Ok(Some(b.clone()));
        }
        let len = f.len as usize;
        if f.len > CACHE_FILE_MAX || self.cached.get() + len > self.cache_max {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        if bytes.try_reserve_exact(len).is_err() {
            return Ok(None);
        }
        bytes.resize(len, 0);
        if self.fs.read_at(&f.path, 0, &mut bytes)? != len {
            return Err(FsError::Corrupt);
        }
        let bytes = Rc::new(bytes);
        self.cached.set(self.cached.get() + len);
        self.cache.borrow_mut().insert(f.path.clone(), bytes.clone());
        Ok(Some(bytes))
    }
}

/// Most bytes [`Site::warm`] reads at start.
pub(crate) const WARM_MAX: usize = 1024 * 1024;

impl Site {
    /// Reads the small files of the site's top directory into the cache,
    /// at most [`WARM_MAX`] bytes in all (and within the cache's budget),
    /// so that serving them in the steady state reads no disk: their first
    /// request costs no `pread64` (and the host's page-cache read path is
    /// not reached under load; see docs/hap.md). Returns the files and
    /// bytes read; a file that cannot be read is left for its request to
    /// report.
    pub(crate) fn warm(&self) -> (usize, usize) {
        let Ok(entries) = self.fs.read_dir("/") else { return (0, 0) };
        let (mut files, mut bytes) = (0, 0);
        for e in entries.iter().filter(|e| !e.metadata.is_dir) {
            let len = e.metadata.len;
            if len > CACHE_FILE_MAX || bytes + len as usize > WARM_MAX {
                continue;
            }
            let f =
                Found { path: alloc::format!("/{}", e.name), len, modified: e.metadata.modified };
            if let Ok(Some(_)) = self.cached(&f) {
                files += 1;
                bytes += len as usize;
            }
        }
        (files, bytes)
    }
}

/// Number of files in the tree under `dir`.
pub(crate) fn count_files(fs: &FileSystem, dir: &str) -> usize {
    let Ok(entries) = fs.read_dir(dir) else { return 0 };
    entries
        .iter()
        .map(|e| {
            if e.metadata.is_dir {
                count_files(fs, &alloc::format!("{}/{}", dir.trim_end_matches('/'), e.name))
            } else {
                1
            }
        })
        .sum()
}
