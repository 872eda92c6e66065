//! Mapping the guest: its segments straight from the file, the heap, the
//! guard, the stack and the boot region, each at the address the layout
//! gives, with exact permissions.
//!
//! Segments are mapped `MAP_PRIVATE` from the image file, so that text and
//! read-only data are shared through the page cache by every instance of
//! the same binary; only pages a guest writes become private. Every mapping
//! uses `MAP_FIXED_NOREPLACE` and checks the address it got: a plain
//! `MAP_FIXED` could silently replace something of the tender's own.
//!
//! # Safety
//!
//! All mappings are fixed at guest addresses, below the tender's own image,
//! libraries and stack, and `MAP_FIXED_NOREPLACE` fails rather than replace
//! anything already there; nothing in the tender holds references into the
//! guest window. [`FileView`] maps the image read-only for validation and
//! unmaps it on drop; its slice lives no longer than the view. If the image
//! file is truncated while the tender reads it, the read faults (SIGBUS), as
//! for any mapped file.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use abi::PAGE_SIZE;

use crate::image::{Image, Perms, Segment};
use crate::layout::Layout;

/// A mapping failed.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// mmap, mprotect or a read-only view failed.
    #[error("cannot map {what} at {start:#x}..{end:#x}: {source}")]
    Map {
        /// What was being mapped.
        what: String,
        /// Start address.
        start: u64,
        /// End address (exclusive).
        end: u64,
        /// The host's error.
        source: io::Error,
    },
    /// The kernel put the mapping elsewhere (a kernel without
    /// `MAP_FIXED_NOREPLACE` treats it as a hint).
    #[error("cannot map {what} at {start:#x}: the kernel placed it at {got:#x}")]
    Moved {
        /// What was being mapped.
        what: String,
        /// Requested address.
        start: u64,
        /// Address returned.
        got: u64,
    },
    /// Reading the image failed.
    #[error("cannot read the image: {0}")]
    View(#[source] io::Error),
    /// The image is a directory, a device or a pipe.
    #[error("not a regular file")]
    NotAFile,
}

fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

fn page_up(x: u64) -> u64 {
    // Image::parse and Layout bound every address far below u64::MAX.
    x.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

fn prot(p: Perms) -> i32 {
    let mut prot = libc::PROT_NONE;
    if p.read {
        prot |= libc::PROT_READ;
    }
    if p.write {
        prot |= libc::PROT_WRITE;
    }
    if p.exec {
        prot |= libc::PROT_EXEC;
    }
    prot
}

/// Maps `[start, end)` at exactly `start`: from `file` at `offset`, or
/// anonymous memory when `file` is `None`.
fn map_fixed(
    what: &str,
    start: u64,
    end: u64,
    prot: i32,
    extra_flags: i32,
    file: Option<(&File, u64)>,
) -> Result<(), MapError> {
    let (fd, offset, kind) = match file {
        Some((f, off)) => (f.as_raw_fd(), off, libc::MAP_PRIVATE),
        None => (-1, 0, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS),
    };
    let fail = |source| MapError::Map { what: what.to_string(), start, end, source };
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| fail(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: a fixed mapping in the guest window; MAP_FIXED_NOREPLACE makes
    // the kernel refuse (EEXIST) rather than replace an existing mapping,
    // so no memory the tender uses can be affected.
    let got = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            (end - start) as usize,
            prot,
            kind | libc::MAP_FIXED_NOREPLACE | extra_flags,
            fd,
            offset,
        )
    };
    if got == libc::MAP_FAILED {
        return Err(fail(io::Error::last_os_error()));
    }
    if got as u64 != start {
        // SAFETY: `got` is the mapping just made, owned by nobody else.
        unsafe { libc::munmap(got, (end - start) as usize) };
        return Err(MapError::Moved { what: what.to_string(), start, got: got as u64 });
    }
    Ok(())
}

fn protect(what: &str, start: u64, end: u64, prot: i32) -> Result<(), MapError> {
    // SAFETY: [start, end) is a guest mapping this module just made; changing
    // its protection affects nothing the tender references.
    let ret = unsafe { libc::mprotect(start as *mut libc::c_void, (end - start) as usize, prot) };
    if ret != 0 {
        let source = io::Error::last_os_error();
        return Err(MapError::Map { what: what.to_string(), start, end, source });
    }
    Ok(())
}

/// Maps one `PT_LOAD`: its file pages from the image, the zeroed tail of
/// its last file page, and anonymous pages for the rest of its `memsz`.
fn map_segment(file: &File, seg: &Segment) -> Result<(), MapError> {
    let what = format!("segment {} ({})", seg.index, seg.perms);
    let start = page_down(seg.vaddr);
    let file_end = seg.vaddr + seg.filesz;
    let mem_end = page_up(seg.vaddr + seg.memsz);
    let final_prot = prot(seg.perms);
    let mut anon_start = start;
    if seg.filesz > 0 {
        let map_end = page_up(file_end);
        // The bytes after filesz in the last file page belong to the bss and
        // must read as zero; that needs the page writable for a moment.
        let zero_tail = seg.memsz > seg.filesz && file_end < map_end;
        let map_prot = if zero_tail { final_prot | libc::PROT_WRITE } else { final_prot };
        map_fixed(&what, start, map_end, map_prot, 0, Some((file, page_down(seg.offset))))?;
        if zero_tail {
            // SAFETY: [file_end, map_end) lies in the writable private mapping
            // just made above; nothing else refers to it yet.
            unsafe {
                std::ptr::write_bytes(file_end as *mut u8, 0, (map_end - file_end) as usize);
            }
            if map_prot != final_prot {
                protect(&what, start, map_end, final_prot)?;
            }
        }
        anon_start = map_end;
    }
    if mem_end > anon_start {
        map_fixed(&format!("{what} bss"), anon_start, mem_end, final_prot, 0, None)?;
    }
    Ok(())
}

/// Maps the whole guest: segments, heap, guard, stack and the boot region
/// holding `boot` (made read-only once written). Nothing is unmapped on
/// error: the tender exits at once and the kernel reclaims it all.
pub fn map_guest(file: &File, image: &Image, layout: &Layout, boot: &[u8]) -> Result<(), MapError> {
    for seg in &image.segments {
        map_segment(file, seg)?;
    }
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    map_fixed("heap", layout.heap_start, layout.heap_end, rw, libc::MAP_NORESERVE, None)?;
    let guard_flags = libc::MAP_NORESERVE;
    map_fixed("guard", layout.heap_end, layout.stack_bottom, libc::PROT_NONE, guard_flags, None)?;
    map_fixed("stack", layout.stack_bottom, layout.stack_top, rw, libc::MAP_NORESERVE, None)?;

    let boot_end = page_up(layout.boot_start + boot.len() as u64);
    map_fixed("boot region", layout.boot_start, boot_end, rw, 0, None)?;
    // SAFETY: the boot region was just mapped read-write with at least
    // boot.len() bytes; `boot` is tender memory elsewhere, so no overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(boot.as_ptr(), layout.boot_start as *mut u8, boot.len());
    }
    protect("boot region", layout.boot_start, boot_end, libc::PROT_READ)
}

/// The image file mapped read-only, for validation without copying it.
#[derive(Debug)]
pub struct FileView {
    ptr: Option<NonNull<u8>>,
    len: usize,
}

impl FileView {
    /// Maps all of `file` read-only.
    pub fn new(file: &File) -> Result<Self, MapError> {
        let meta = file.metadata().map_err(MapError::View)?;
        if !meta.is_file() {
            return Err(MapError::NotAFile);
        }
        let len = meta.len();
        let len =
            usize::try_from(len).map_err(|_| MapError::View(io::ErrorKind::FileTooLarge.into()))?;
        if len == 0 {
            return Ok(Self { ptr: None, len: 0 });
        }
        // SAFETY: a new read-only private mapping at an address the kernel
        // chooses; it aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(MapError::View(io::Error::last_os_error()));
        }
        Ok(Self { ptr: NonNull::new(ptr.cast()), len })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self.ptr {
            // SAFETY: ptr maps len readable bytes until self is dropped.
            Some(p) => unsafe { std::slice::from_raw_parts(p.as_ptr(), self.len) },
            None => &[],
        }
    }
}

impl Drop for FileView {
    fn drop(&mut self) {
        if let Some(p) = self.ptr {
            // SAFETY: p/len is the mapping made in new(); no slice of it
            // outlives self.
            unsafe { libc::munmap(p.as_ptr().cast(), self.len) };
        }
    }
}
