//! The guest's symbols for a debugger, through GDB's JIT interface.
//!
//! `gdb --args tender APP ...` knows the tender's symbols, not the guest's:
//! the guest is mapped by the tender, not by the kernel or a dynamic
//! loader that gdb follows. The JIT interface is how a process tells a
//! debugger about code it loads itself (LLVM's JITs, V8, the JVM do): the
//! process defines a descriptor, `__jit_debug_descriptor`, and a function,
//! `__jit_debug_register_code`, on which the debugger sets a breakpoint as
//! soon as it sees the symbol. To announce code, the process links an entry
//! naming an object file in its own memory into the descriptor and calls
//! the function; the debugger, stopped there, reads the object file out of
//! the process and loads its symbols. A guest is an `ET_EXEC` at fixed
//! addresses, so its file is that object file as it is: gdb takes its
//! sections' addresses as they are, and finds its symbols, line tables and
//! call-frame information (`.eh_frame`, kept by the linker script for this).
//!
//! **Only under a debugger.** The breakpoint is an `int3` byte (`0xcc`) that
//! the debugger writes over the first byte of `__jit_debug_register_code`
//! while the process runs. The tender reads that byte ([`watched`]): no
//! system call, nothing else at all without a debugger. With one, it
//! maps the whole image (the snapshot the guest runs from holds no symbols
//! or debug information: see `snapshot`) read-only, checks that it still
//! holds the bytes of the snapshot (else the symbols could be those of
//! another build), and registers it just before the jump ([`Symbols::register`]).
//! The mapping stays for the life of the process, since gdb reads the file
//! out of the process's memory when it needs it; it is a clean file
//! mapping, shared with the page cache, no private memory. A tracer that
//! plants no breakpoint there (strace, or a gdb attached once the guest
//! runs) gets nothing: `docs/debugging.md` says what to do then.
//!
//! The descriptor and the entry live in the tender's data and bss, which
//! `launch` releases before the jump: the descriptor then reads as empty
//! again. gdb reads it when it stops at the function, and again only when
//! it starts or attaches to a process, so a debugger that has loaded the
//! symbols keeps them, and no memory is kept for them.
//!
//! # Safety
//!
//! The descriptor and the entry are written by this module only, on the
//! tender's one thread, before the call that hands them to the debugger;
//! nothing else of the tender reads them. The mappings this module makes
//! are read-only file mappings at addresses the kernel chooses (never
//! fixed), so they cannot replace anything; the snapshot's is unmapped
//! after the comparison and the image's is never unmapped.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr;

/// `jit_actions_t`: what the debugger is asked to do at the call.
const JIT_NOACTION: u32 = 0;
const JIT_REGISTER_FN: u32 = 1;

/// The x86-64 breakpoint instruction, `int3`.
const INT3: u8 = 0xcc;

/// `struct jit_code_entry`: one object file announced to the debugger.
#[repr(C)]
#[derive(Debug)]
struct JitCodeEntry {
    next_entry: *mut JitCodeEntry,
    prev_entry: *mut JitCodeEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// `struct jit_descriptor`: the list the debugger reads. Version 1 is the
/// only one there is.
#[repr(C)]
#[derive(Debug)]
struct JitDescriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *mut JitCodeEntry,
    first_entry: *mut JitCodeEntry,
}

/// The descriptor the debugger looks up by name. `#[used]`: the compiler
/// sees it written and never read, and would drop it otherwise.
#[used]
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static mut __jit_debug_descriptor: JitDescriptor = JitDescriptor {
    version: 1,
    action_flag: JIT_NOACTION,
    relevant_entry: ptr::null_mut(),
    first_entry: ptr::null_mut(),
};

/// The one entry the tender ever registers: the guest's image.
static mut GUEST_ENTRY: JitCodeEntry = JitCodeEntry {
    next_entry: ptr::null_mut(),
    prev_entry: ptr::null_mut(),
    symfile_addr: ptr::null(),
    symfile_size: 0,
};

/// The function the debugger stops in to read the descriptor. Its body is
/// an empty block of assembly, which the compiler must assume reads memory:
/// so the call is kept, the descriptor is written before it, and the
/// function is never merged with another.
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn __jit_debug_register_code() {
    // SAFETY: an empty block of assembly does nothing.
    unsafe { std::arch::asm!("", options(nostack, preserves_flags)) };
}

/// Whether a debugger has planted its JIT breakpoint, as gdb does as soon
/// as it has read the tender's symbols (before the tender runs, when gdb
/// starts it). Costs one read of the tender's own text.
pub fn watched() -> bool {
    let code = __jit_debug_register_code as extern "C" fn() as *const u8;
    // SAFETY: `code` is the first byte of a function of the tender's, in
    // its text segment, mapped readable for the life of the process. A
    // volatile read: the byte may change under the compiler's feet (the
    // debugger writes it).
    unsafe { code.read_volatile() == INT3 }
}

/// Under a debugger, the image mapped for it (see [`Symbols::map`]); else
/// `None`, at the cost of one byte read. A failure is only a warning on
/// stderr: the guest runs, without symbols.
pub fn symbols_for_debugger(image: &File, snapshot: &File, path: &str) -> Option<Symbols> {
    if !watched() {
        return None;
    }
    Symbols::map(image, snapshot)
        .inspect_err(|e| {
            eprintln!("tender: warning: {path}: the debugger gets no symbols for the guest: {e}")
        })
        .ok()
}

/// The guest's symbols could not be given to the debugger.
#[derive(Debug, thiserror::Error)]
pub enum SymbolsError {
    /// The image or the snapshot could not be mapped.
    #[error("cannot map the {what}: {source}")]
    Map {
        /// "image" or "snapshot".
        what: &'static str,
        /// The host's error.
        source: io::Error,
    },
    /// The image no longer holds the bytes of the snapshot.
    #[error("the image has changed since the guest's snapshot was taken")]
    Changed,
}

/// The guest's image, mapped for the debugger, not yet registered.
#[derive(Debug)]
pub struct Symbols {
    map: Mapping,
}

impl Symbols {
    /// Maps `image` whole, read-only, for the debugger; fails if its start
    /// is not `snapshot`, the bytes the guest runs from.
    pub fn map(image: &File, snapshot: &File) -> Result<Symbols, SymbolsError> {
        let map =
            Mapping::new(image).map_err(|source| SymbolsError::Map { what: "image", source })?;
        let snap = Mapping::new(snapshot)
            .map_err(|source| SymbolsError::Map { what: "snapshot", source })?;
        if !map.bytes().starts_with(snap.bytes()) {
            return Err(SymbolsError::Changed);
        }
        Ok(Symbols { map })
    }

    /// Hands the image to the debugger, which loads its symbols before
    /// this returns. Call it once the guest is mapped, so that breakpoints
    /// the debugger then inserts in the guest's code land in it. The
    /// mapping is never released.
    pub fn register(self) {
        let map = std::mem::ManuallyDrop::new(self.map);
        let entry = &raw mut GUEST_ENTRY;
        let descriptor = &raw mut __jit_debug_descriptor;
        // SAFETY: see the module's safety section: the tender's one thread
        // is the only writer, and nothing reads these but the debugger,
        // stopped in the call. `register` consumes the only `Symbols` there
        // is in a run, so the entry is linked once; the mapping it names
        // is kept for the life of the process.
        unsafe {
            (*entry).symfile_addr = map.addr;
            (*entry).symfile_size = map.len as u64;
            (*entry).prev_entry = ptr::null_mut();
            (*entry).next_entry = (*descriptor).first_entry;
            (*descriptor).first_entry = entry;
            (*descriptor).relevant_entry = entry;
            (*descriptor).action_flag = JIT_REGISTER_FN;
            __jit_debug_register_code();
            (*descriptor).action_flag = JIT_NOACTION;
        }
    }
}

/// A whole file mapped read-only at an address the kernel chooses.
#[derive(Debug)]
struct Mapping {
    addr: *const u8,
    len: usize,
}

impl Mapping {
    fn new(file: &File) -> io::Result<Mapping> {
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
        if len == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // SAFETY: a new read-only private mapping of an open file, at an
        // address the kernel picks: it replaces nothing.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { addr: addr as *const u8, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes at `addr` are mapped readable until `self`
        // is dropped, which the borrow outlives not. A file truncated
        // meanwhile makes the read fault (SIGBUS), as for any mapped file
        // (see `memory`).
        unsafe { std::slice::from_raw_parts(self.addr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped; no slice of it outlives
        // `self`.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    /// An unnamed temporary file holding `bytes`.
    fn file_with(bytes: &[u8]) -> File {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .open(std::env::temp_dir())
            .unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn the_layout_is_gdbs() {
        // gdb reads the descriptor and the entry as these C structs.
        assert_eq!(std::mem::size_of::<JitDescriptor>(), 24);
        assert_eq!(std::mem::offset_of!(JitDescriptor, relevant_entry), 8);
        assert_eq!(std::mem::offset_of!(JitDescriptor, first_entry), 16);
        assert_eq!(std::mem::size_of::<JitCodeEntry>(), 32);
        assert_eq!(std::mem::offset_of!(JitCodeEntry, symfile_addr), 16);
        assert_eq!(std::mem::offset_of!(JitCodeEntry, symfile_size), 24);
    }

    #[test]
    fn no_debugger_no_breakpoint() {
        // The unit tests do not run under a debugger.
        assert!(!watched());
    }

    #[test]
    fn the_image_must_begin_with_the_snapshot() {
        let whole = b"\x7fELF headers, segments, then the debug information";
        let image = file_with(whole);
        let snapshot = file_with(b"\x7fELF headers, segments");
        let symbols = Symbols::map(&image, &snapshot).unwrap();
        assert_eq!(symbols.map.bytes(), whole);
        let other = file_with(b"\x7fELF headers, other segments");
        assert!(matches!(Symbols::map(&image, &other), Err(SymbolsError::Changed)));
        let longer = file_with(b"\x7fELF headers, segments, then the debug information, and more");
        assert!(matches!(Symbols::map(&image, &longer), Err(SymbolsError::Changed)));
        let empty = file_with(b"");
        assert!(matches!(
            Symbols::map(&empty, &snapshot),
            Err(SymbolsError::Map { what: "image", .. })
        ));
    }
}
