//! Files of a FAT disk mapped into memory: `mmap` of a file descriptor
//! (`MAP_SHARED` and `MAP_PRIVATE`), `msync`, and what `munmap`,
//! `mremap`, `madvise`, `fsync` and the program's end do to such a
//! mapping. The memory is anonymous (libos-std's mmap.rs, from the heap);
//! this module keeps it coherent with the file, as Linux's page cache
//! does.
//!
//! There is no MMU to share a page between the mapping and the file, so:
//!
//! * A mapping is filled from the file when it is made (bytes past the end
//!   of the file read as zeros; Linux would fault on the pages wholly past
//!   it).
//! * **Shared** (`MAP_SHARED`): the mapping's memory is the file's bytes
//!   for its range. Every `write` and `pwrite` of the file is copied into
//!   the mappings that cover it, and every `read` and `pread` takes the
//!   mapped bytes from the mappings, so that the file read through a
//!   descriptor is what the mapping holds, at once, as on Linux. A
//!   `ftruncate` zeroes the mapped bytes past the new end (Linux's
//!   truncation drops those pages: they read zeros when the file grows
//!   again). The mapping's bytes reach the file (up to its end: a mapping
//!   never extends a file, as Linux's) on `msync`, `munmap`, `fsync` or
//!   `fdatasync` of the file, and when the program ends (`exit`, `_exit`,
//!   `abort`, a signal's default action), as Linux's dirty pages outlive
//!   the process; a guest killed by the host (`SIGKILL`, a fault) loses
//!   them, as it loses every write its disk's cache held
//!   (docs/storage.md).
//! * **Private** (`MAP_PRIVATE`): a copy of the file at the time of the
//!   `mmap`; nothing goes back. Linux's private pages follow the file's
//!   later writes until the program first writes each page; here they do
//!   not (the copy is taken once). `madvise(MADV_DONTNEED)` reads the
//!   range from the file again, as Linux's next touch does.
//!
//! A mapping keeps its file open (a descriptor may be closed right after
//! the `mmap`, as SQLite does not but others do). Two mappings of one
//! range of a file are two copies: each follows the file's writes, but
//! not the other's stores until they are written back (`msync`): SQLite
//! maps each region of its shared-memory file once per process.

use alloc::rc::Rc;
use alloc::vec::Vec;

use super::node::{FatFile, Node};
use crate::libc::fd::{Open, Res};
use crate::libc::start::Lock;
use crate::libc::{c_int, c_void, fail, size_t};

const PAGE: usize = 4096;

/// A file's range mapped at `addr`.
struct Mapping {
    node: Rc<Node>,
    addr: usize,
    len: usize,
    /// The file offset of `addr`.
    off: u64,
    shared: bool,
    /// Mapped with `PROT_WRITE`: stores may have changed it.
    writable: bool,
}

impl Mapping {
    fn end(&self) -> usize {
        self.addr + self.len
    }
}

static MAPS: Lock<Vec<Mapping>> = Lock::new(Vec::new());

/// The mapping's memory.
///
/// # Safety
///
/// The mapping is registered (its pages are mapped and belong to it), and
/// no other reference to them is live while the slice is.
unsafe fn memory<'a>(addr: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: as the caller guarantees.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) }
}

/// `mmap` of a descriptor `open` whose object is a FAT file, with
/// Linux's checks: the sharing type (`EINVAL` without exactly one of
/// `MAP_SHARED`, `MAP_SHARED_VALIDATE`, `MAP_PRIVATE`), the offset
/// (`EINVAL` unless page-aligned), the access mode (`EACCES`: every
/// mapping needs a descriptor open for reading, a shared writable one a
/// descriptor open for writing too); `MAP_FIXED` is `EINVAL` (memory cannot
/// be placed at a chosen address here). `None` when the object is not a
/// FAT file.
pub fn map(
    open: &Open,
    len: usize,
    prot: c_int,
    flags: c_int,
    off: i64,
) -> Option<Res<*mut c_void>> {
    let file = open.file.as_any().downcast_ref::<FatFile>()?;
    Some(map_file(file, len, prot, flags, off))
}

fn map_file(file: &FatFile, len: usize, prot: c_int, flags: c_int, off: i64) -> Res<*mut c_void> {
    let shared = match flags & 0x3 {
        ::libc::MAP_SHARED | ::libc::MAP_SHARED_VALIDATE => true,
        ::libc::MAP_PRIVATE => false,
        _ => return Err(::libc::EINVAL),
    };
    if flags & ::libc::MAP_FIXED != 0 || off < 0 || !(off as usize).is_multiple_of(PAGE) {
        return Err(::libc::EINVAL);
    }
    if !file.read || shared && prot & ::libc::PROT_WRITE != 0 && !file.write {
        return Err(::libc::EACCES);
    }
    let len = len.checked_next_multiple_of(PAGE).ok_or(::libc::ENOMEM)?;
    (off as u64).checked_add(len as u64).ok_or(::libc::EOVERFLOW)?;
    let addr = crate::libc::mmap::map_pages(len).ok_or(::libc::ENOMEM)?;
    // SAFETY: the pages were just mapped for this mapping; nothing else
    // refers to them yet.
    let mem = unsafe { memory(addr as usize, len) };
    // What other mappings hold of the range is in the read (overlay).
    let r = file.node.read_at(mem, off as u64);
    if let Err(e) = r {
        // SAFETY: the pages were mapped above and are given back unused.
        unsafe { crate::libc::mmap::munmap(addr, len) };
        return Err(e);
    }
    let writable = prot & ::libc::PROT_WRITE != 0;
    let m = Mapping {
        node: file.node.clone(),
        addr: addr as usize,
        len,
        off: off as u64,
        shared,
        writable,
    };
    MAPS.with(|t| t.push(m));
    Ok(addr)
}

/// The shared mappings of `node` that overlap the file's bytes
/// `[from, from + n)`: (address, length, file offset) of each.
fn shared_of(node: &Node, from: u64, n: usize) -> Vec<(usize, usize, u64)> {
    MAPS.with(|t| {
        if t.is_empty() {
            return Vec::new();
        }
        t.iter()
            .filter(|m| {
                m.shared
                    && core::ptr::eq(&*m.node, node)
                    && overlap_of(m.len, m.off, from, n).is_some()
            })
            .map(|m| (m.addr, m.len, m.off))
            .collect()
    })
}

/// The part of the file's bytes `[from, from + n)` that a mapping of
/// `len` bytes from file offset `off` holds, as (offset into the mapping,
/// offset into the range, length).
fn overlap_of(len: usize, off: u64, from: u64, n: usize) -> Option<(usize, usize, usize)> {
    let a = from.max(off);
    let b = from.saturating_add(n as u64).min(off + len as u64);
    (a < b).then(|| ((a - off) as usize, (a - from) as usize, (b - a) as usize))
}

/// After a read of `buf` from offset `from` of `node`: the bytes shared
/// mappings hold are the file's (stores into a mapping are not written
/// back yet).
pub fn overlay(node: &Node, buf: &mut [u8], from: u64) {
    for (addr, len, off) in shared_of(node, from, buf.len()) {
        if let Some((in_map, in_buf, n)) = overlap_of(len, off, from, buf.len()) {
            // SAFETY: a registered mapping's pages are mapped; `buf` is the
            // caller's, never a mapping's own memory (write-back writes
            // around this module's hooks).
            let mem = unsafe { memory(addr + in_map, n) };
            buf[in_buf..in_buf + n].copy_from_slice(mem);
        }
    }
}

/// After a write of `buf` at offset `from` of `node`: the shared mappings
/// that cover it see it.
pub fn mirror(node: &Node, buf: &[u8], from: u64) {
    for (addr, len, off) in shared_of(node, from, buf.len()) {
        if let Some((in_map, in_buf, n)) = overlap_of(len, off, from, buf.len()) {
            // SAFETY: as in `overlay`; `buf` is not the mapping's memory.
            let mem = unsafe { memory(addr + in_map, n) };
            mem.copy_from_slice(&buf[in_buf..in_buf + n]);
        }
    }
}

/// After the length of `node` changed from `old` to `new` (a truncation,
/// or a write past the end): the mapped bytes between them read as zeros.
pub fn resized(node: &Node, old: u64, new: u64) {
    let (from, to) = (old.min(new), old.max(new));
    let n = usize::try_from(to - from).unwrap_or(usize::MAX);
    for (addr, len, off) in shared_of(node, from, n) {
        if let Some((in_map, _, n)) = overlap_of(len, off, from, n) {
            // SAFETY: a registered mapping's pages are mapped.
            unsafe { memory(addr + in_map, n) }.fill(0);
        }
    }
}

/// Writes the bytes of the shared mappings (those of `node` if given)
/// that lie in `[start, end)` of memory back to their files, up to each
/// file's end.
fn write_back(node: Option<&Node>, start: usize, end: usize) -> Res<()> {
    let todo: Vec<(Rc<Node>, usize, usize, u64)> = MAPS.with(|t| {
        t.iter()
            .filter(|m| m.shared && m.writable)
            .filter(|m| node.is_none_or(|n| core::ptr::eq(&*m.node, n)))
            .filter(|m| m.addr < end && start < m.end())
            .map(|m| {
                let a = m.addr.max(start);
                let b = m.end().min(end);
                (m.node.clone(), a, b - a, m.off + (a - m.addr) as u64)
            })
            .collect()
    });
    let mut result = Ok(());
    for (node, addr, len, off) in todo {
        let size = node.size();
        if off >= size {
            continue;
        }
        let n = len.min((size - off) as usize);
        // SAFETY: the mapping is registered; its memory is only read.
        let mem = unsafe { memory(addr, n) };
        if let Err(e) = node.write_back(mem, off) {
            result = Err(e);
        }
    }
    result
}

/// Before `fsync` of `node`: its shared mappings' bytes go to the file.
pub fn sync(node: &Node) -> Res<()> {
    write_back(Some(node), 0, usize::MAX)
}

/// At exit, before the files are flushed: every shared mapping's bytes.
pub fn sync_all() {
    let _ = write_back(None, 0, usize::MAX);
}

/// Whether the mappings' table is held (a call on it is under way).
pub fn in_use() -> bool {
    MAPS.try_with(|_| ()).is_none()
}

/// Runs `f` with the mappings' table held, as a call on it does.
#[cfg(test)]
pub fn holding(f: impl FnOnce()) {
    MAPS.with(|_| f());
}

/// Before `munmap(start, end - start)`: the shared mappings' bytes in the
/// range go to their files, and the mappings give up those pages (a
/// mapping cut in the middle becomes two).
pub fn unmapping(start: usize, end: usize) {
    if MAPS.with(|t| t.is_empty()) {
        return;
    }
    let _ = write_back(None, start, end);
    MAPS.with(|t| {
        let mut kept = Vec::with_capacity(t.len());
        for m in t.drain(..) {
            if m.end() <= start || end <= m.addr {
                kept.push(m);
                continue;
            }
            if m.addr < start {
                kept.push(Mapping { node: m.node.clone(), len: start - m.addr, ..m });
            }
            if end < m.end() {
                let off = m.off + (end - m.addr) as u64;
                kept.push(Mapping {
                    node: m.node.clone(),
                    addr: end,
                    len: m.end() - end,
                    off,
                    ..m
                });
            }
        }
        *t = kept;
    });
}

/// After `mremap` moved the mapping at `old` (`old_len` bytes) to `new`
/// (`new_len`, larger), before the old pages are unmapped: a file's
/// mapping moves with it, and its growth is read from the file.
pub fn moved(old: usize, old_len: usize, new: usize, new_len: usize) {
    let found = MAPS.with(|t| {
        let m = t.iter_mut().find(|m| m.addr == old && m.len == old_len)?;
        m.addr = new;
        m.len = new_len;
        Some((m.node.clone(), m.off))
    });
    if let Some((node, off)) = found {
        // SAFETY: the new pages are mapped and registered to this mapping.
        let growth = unsafe { memory(new + old_len, new_len - old_len) };
        let _ = node.read_at(growth, off + old_len as u64);
    }
}

/// `madvise(MADV_DONTNEED)` over `[start, end)`: the parts of file
/// mappings in it, as (start, end): shared ones keep their bytes (Linux
/// reads the same bytes back from the page cache), private ones are read
/// from the file again. The caller zeroes only anonymous pages.
pub fn dontneed(start: usize, end: usize) -> Vec<(usize, usize)> {
    let parts: Vec<(Rc<Node>, usize, usize, u64, bool)> = MAPS.with(|t| {
        t.iter()
            .filter(|m| m.addr < end && start < m.end())
            .map(|m| {
                let a = m.addr.max(start);
                let b = m.end().min(end);
                (m.node.clone(), a, b, m.off + (a - m.addr) as u64, m.shared)
            })
            .collect()
    });
    parts
        .into_iter()
        .map(|(node, a, b, off, shared)| {
            if !shared {
                // SAFETY: a registered mapping's pages are mapped.
                let mem = unsafe { memory(a, b - a) };
                mem.fill(0);
                let _ = node.read_at(mem, off);
            }
            (a, b)
        })
        .collect()
}

/// `msync(addr, len, flags)`: the shared file mappings' bytes in the
/// range go to their files (`MS_SYNC` and `MS_ASYNC` alike: the write is
/// synchronous), anonymous pages need nothing. `EINVAL` for an unaligned
/// address, unknown flags or both `MS_SYNC` and `MS_ASYNC`; `ENOMEM` when
/// part of the range is not mapped, as Linux; the write's error.
///
/// # Safety
///
/// None beyond C's contract: the range's pages are only read.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn msync(addr: *mut c_void, len: size_t, flags: c_int) -> c_int {
    let start = addr as usize;
    let known = ::libc::MS_ASYNC | ::libc::MS_SYNC | ::libc::MS_INVALIDATE;
    if !start.is_multiple_of(PAGE)
        || flags & !known != 0
        || flags & ::libc::MS_SYNC != 0 && flags & ::libc::MS_ASYNC != 0
    {
        return fail(::libc::EINVAL);
    }
    let Some(end) = len.checked_next_multiple_of(PAGE).and_then(|l| start.checked_add(l)) else {
        return fail(::libc::ENOMEM);
    };
    if !crate::libc::mmap::is_mapped(start, end) {
        return fail(::libc::ENOMEM);
    }
    match write_back(None, start, end) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_holds_the_part_of_a_range_it_covers() {
        // A mapping of 8 KiB from file offset 4096.
        assert_eq!(overlap_of(8192, 4096, 0, 4096), None);
        assert_eq!(overlap_of(8192, 4096, 0, 4097), Some((0, 4096, 1)));
        assert_eq!(overlap_of(8192, 4096, 5000, 100), Some((904, 0, 100)));
        assert_eq!(overlap_of(8192, 4096, 12_000, 1000), Some((7904, 0, 288)));
        assert_eq!(overlap_of(8192, 4096, 12_288, 1000), None);
        assert_eq!(overlap_of(8192, 4096, 0, 1 << 20), Some((0, 4096, 8192)));
        assert_eq!(overlap_of(8192, 4096, u64::MAX - 5, usize::MAX), None);
    }
}
