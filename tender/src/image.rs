//! Validation of a guest image, before any of it is mapped.
//!
//! The tender maps each `PT_LOAD` segment straight from the file
//! (`MAP_PRIVATE | MAP_FIXED_NOREPLACE`) at the address the image asks for,
//! so everything it later trusts about the layout is established here, on
//! the bytes alone. [`Image::parse`] is pure: it maps nothing and never
//! panics, whatever the file holds; every address and size read from the file
//! goes through checked arithmetic.
//!
//! What is checked, and why:
//!
//! * **A static x86_64 `ET_EXEC`.** Guests are linked at [`abi::GUEST_BASE`]
//!   and run where they were linked: there is no loader to relocate a
//!   position-independent image, and no dynamic linker (`PT_DYNAMIC`). A
//!   guest sets up its own thread-local storage: a `PT_TLS` (std guests
//!   have one) is accepted when there is one at most, its template lies in
//!   the file-backed part of a `PT_LOAD`, and its sizes and alignment are
//!   sane (at most [`MAX_TLS_SIZE`] bytes, aligned to at most a page); the
//!   tender maps nothing for it. A `PT_INTERP` is
//!   expected and ignored: guests name a path that does not exist, so that
//!   Linux refuses to run them directly.
//! * **The program header table** lies inside the file, with 64-bit entries.
//!   The header and the table are decoded with goblin, but only after their
//!   sizes have been checked here, so goblin never sees a table it would
//!   have to allocate for beyond the file's own size.
//! * **Page congruence.** `mmap` maps whole pages at page-aligned file
//!   offsets, so a segment can be mapped from the file only if its address
//!   is page-aligned and its offset has the same remainder modulo the page
//!   size (`p_offset % 4096 == p_vaddr % 4096`).
//! * **W^X.** No segment is both writable and executable.
//! * **Bounds.** File data lies inside the file; memory, rounded out to
//!   whole pages, lies inside the guest window `[GUEST_BASE, limit)`, so
//!   that nothing is mapped over the boot region below it or the heap, guard
//!   and stack above. An empty `PT_LOAD` maps nothing and is refused as
//!   malformed.
//! * **No shared pages.** Permissions are per page: two segments that share a
//!   page would force one of them to take the other's permissions (or the
//!   second mapping to fail), so page-rounded ranges must be disjoint.
//! * **The entry point** lies in the file-backed part of an executable
//!   segment.
//! * **Notes.** The image must carry exactly one nabla ABI note for this
//!   target and [`abi::ABI_VERSION`], and exactly one manifest note whose
//!   manifest passes [`abi::Manifest::validate`]: a guest built against
//!   another contract is refused before it can misread the boot info, and
//!   the devices it declares are known before any is attached. Notes are
//!   read from the file through the `PT_NOTE` headers, padded to 4 bytes (8
//!   in a `PT_NOTE` aligned to 8; the nabla notes read the same either way);
//!   notes of other owners, such as the GNU build ID, are skipped.
//!
//! Other program header types (`PT_GNU_STACK`, `PT_GNU_PROPERTY`, ...) are
//! ignored: the tender decides the stack's permissions itself.

use std::fmt;

use abi::{AbiNote, GUEST_BASE, Manifest, ManifestError, PAGE_SIZE};
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{
    EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64, ET_DYN, ET_EXEC,
    header64::SIZEOF_EHDR,
};
use goblin::elf::program_header::{
    PF_R, PF_W, PF_X, PT_DYNAMIC, PT_LOAD, PT_NOTE, PT_TLS, ProgramHeader,
};
use goblin::elf::{Elf, Header};

/// Size of one 64-bit program header (`Elf64_Phdr`).
const PHDR_SIZE: u16 = 56;

/// `e_phnum` value meaning "the real count is in section header 0".
const PN_XNUM: u16 = 0xffff;

/// Size of a note header: `namesz`, `descsz`, `n_type`.
const NOTE_HEADER_SIZE: usize = 12;

const ABI_DESC_SIZE: usize = core::mem::size_of::<AbiNote>();
const MANIFEST_DESC_SIZE: usize = core::mem::size_of::<Manifest>();

/// Access permissions of a segment, from its `p_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    /// `PF_R`.
    pub read: bool,
    /// `PF_W`.
    pub write: bool,
    /// `PF_X`.
    pub exec: bool,
}

impl Perms {
    /// The permissions in `p_flags`; other bits are ignored.
    pub fn from_flags(p_flags: u32) -> Self {
        Self { read: p_flags & PF_R != 0, write: p_flags & PF_W != 0, exec: p_flags & PF_X != 0 }
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |set: bool, c: char| if set { c } else { '-' };
        write!(f, "{}{}{}", flag(self.read, 'r'), flag(self.write, 'w'), flag(self.exec, 'x'))
    }
}

/// A validated `PT_LOAD` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the segment's program header, as `readelf -l` numbers them.
    pub index: usize,
    /// Guest address of the first byte; page-aligned.
    pub vaddr: u64,
    /// Size in memory; not zero, at least `filesz`.
    pub memsz: u64,
    /// Bytes backed by the file; the rest, up to `memsz`, is zero.
    pub filesz: u64,
    /// File offset of the first byte; congruent to `vaddr` modulo the page size.
    pub offset: u64,
    /// Access permissions; never both write and execute.
    pub perms: Perms,
}

impl Segment {
    /// End (exclusive) of the pages the segment occupies.
    ///
    /// Validation has checked that this does not overflow; saturating keeps
    /// the helper total, and a saturated end only makes overlap checks stricter.
    fn page_end(&self) -> u64 {
        page_up(self.vaddr.saturating_add(self.memsz)).unwrap_or(u64::MAX)
    }
}

/// A guest image that passed every check in this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Entry point, inside the file-backed part of an executable segment.
    pub entry: u64,
    /// The `PT_LOAD` segments, sorted by `vaddr`, in disjoint pages.
    pub segments: Vec<Segment>,
    /// The ABI note, for this target and version.
    pub abi: AbiNote,
    /// The manifest, validated.
    pub manifest: Manifest,
    /// End (exclusive) of the highest segment, rounded up to [`PAGE_SIZE`]:
    /// the first free page above the image.
    pub end: u64,
}

/// Which sum overflowed, for [`ImageError::Overflow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// `e_phoff + e_phnum * 56`.
    ProgramHeaders,
    /// `p_offset + p_filesz` of program header `index`.
    FileRange { index: usize },
    /// `p_vaddr + p_memsz` of program header `index`, rounded up to a page.
    MemoryRange { index: usize },
}

impl fmt::Display for Extent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ProgramHeaders => f.write_str("program header table (e_phoff + e_phnum * 56)"),
            Self::FileRange { index } => {
                write!(f, "segment {index} file range (p_offset + p_filesz)")
            }
            Self::MemoryRange { index } => {
                write!(f, "segment {index} memory range (p_vaddr + p_memsz, page-rounded)")
            }
        }
    }
}

/// What is wrong with the program header table, for [`ImageError::BadProgramHeaders`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramHeaderFault {
    /// `e_phentsize` is not the size of an `Elf64_Phdr`.
    EntrySize { phentsize: u16 },
    /// `e_phnum` is `PN_XNUM`: the count lives in section header 0.
    ExtendedNumbering,
    /// The table does not fit in the file.
    PastEnd { offset: u64, end: u64, file_len: u64 },
}

impl fmt::Display for ProgramHeaderFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::EntrySize { phentsize } => {
                write!(f, "e_phentsize is {phentsize}, expected {PHDR_SIZE}")
            }
            Self::ExtendedNumbering => {
                f.write_str("e_phnum is PN_XNUM (0xffff); extended numbering is not supported")
            }
            Self::PastEnd { offset, end, file_len } => write!(
                f,
                "table [{offset:#x}, {end:#x}) extends past the end of the file \
                 ({file_len:#x} bytes)"
            ),
        }
    }
}

/// What is wrong with the manifest note, for [`ImageError::BadManifest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFault {
    /// The descriptor is not the size of an [`abi::Manifest`].
    Size { descsz: u32 },
    /// [`abi::Manifest::validate`] refused it.
    Invalid(ManifestError),
}

impl fmt::Display for ManifestFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Size { descsz } => {
                write!(f, "descriptor is {descsz} bytes, expected {MANIFEST_DESC_SIZE}")
            }
            Self::Invalid(error) => write!(f, "{error}"),
        }
    }
}

/// Why an image was refused. Messages name the check and the values
/// involved; the caller prefixes the file's path.
///
/// `index` fields are program header indices, which messages call segment
/// numbers (as `readelf -l` does); fields named after an ELF field hold its
/// value, and `end` fields the exclusive end of the range they describe.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than an ELF header, or no ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// `EI_CLASS` is not `ELFCLASS64`.
    #[error("not a 64-bit ELF file (EI_CLASS {class}, expected {ELFCLASS64} for ELFCLASS64)")]
    Not64Bit { class: u8 },
    /// `EI_DATA` is not `ELFDATA2LSB`.
    #[error(
        "not a little-endian ELF file (EI_DATA {data}, expected {ELFDATA2LSB} for ELFDATA2LSB)"
    )]
    NotLittleEndian { data: u8 },
    /// `e_machine` is not `EM_X86_64`.
    #[error("wrong machine {}, expected x86_64", MachineName(*.machine))]
    WrongMachine { machine: u16 },
    /// `e_type` is `ET_DYN`.
    #[error(
        "position-independent executable or shared object (ET_DYN); \
         nabla guests are static ET_EXEC images linked at {GUEST_BASE:#x}"
    )]
    PositionIndependent,
    /// `e_type` is neither `ET_EXEC` nor `ET_DYN`.
    #[error("not an executable: e_type {}, expected ET_EXEC ({ET_EXEC})", TypeName(*.e_type))]
    NotExecutable { e_type: u16 },
    /// The program header table is malformed.
    #[error("bad program header table: {reason}")]
    BadProgramHeaders { reason: ProgramHeaderFault },
    /// An offset plus a size read from the file does not fit in 64 bits.
    #[error("{what} overflows: {base:#x} + {len:#x}")]
    Overflow { what: Extent, base: u64, len: u64 },
    /// A `PT_LOAD` has more file data than memory.
    #[error("segment {index}: p_filesz {filesz:#x} exceeds p_memsz {memsz:#x}")]
    FileszExceedsMemsz { index: usize, filesz: u64, memsz: u64 },
    /// A `PT_LOAD`'s `p_align` is not a power of two of at least a page.
    #[error(
        "segment {index}: p_align {align:#x} is not a power of two of at least \
         the page size ({PAGE_SIZE:#x})"
    )]
    Misaligned { index: usize, align: u64 },
    /// A `PT_LOAD`'s `p_vaddr` is not page-aligned.
    #[error("segment {index}: p_vaddr {vaddr:#x} is not aligned to the page size ({PAGE_SIZE:#x})")]
    MisalignedAddress { index: usize, vaddr: u64 },
    /// A `PT_LOAD`'s offset and address differ modulo the page size.
    #[error(
        "segment {index}: p_offset {offset:#x} and p_vaddr {vaddr:#x} differ modulo the \
         page size ({PAGE_SIZE:#x}), so the segment cannot be mapped from the file"
    )]
    Incongruent { index: usize, offset: u64, vaddr: u64 },
    /// A `PT_LOAD` is both writable and executable.
    #[error("segment {index} is both writable and executable (W^X)")]
    WriteExecute { index: usize },
    /// A segment's file data runs past the end of the file.
    #[error(
        "segment {index}: file data ends at {end:#x}, past the end of the file \
         ({file_len:#x} bytes)"
    )]
    DataPastEnd { index: usize, end: u64, file_len: u64 },
    /// A `PT_LOAD`'s pages are not all inside `[GUEST_BASE, limit)`.
    #[error(
        "segment {index} occupies [{start:#x}, {end:#x}), outside guest memory \
         [{GUEST_BASE:#x}, {limit:#x})"
    )]
    OutsideGuest { index: usize, start: u64, end: u64, limit: u64 },
    /// A `PT_LOAD` has `p_memsz` zero.
    #[error("segment {index} is an empty PT_LOAD (p_memsz 0)")]
    EmptySegment { index: usize },
    /// No `PT_LOAD` at all.
    #[error("no PT_LOAD segments")]
    NoLoadSegments,
    /// Two `PT_LOAD`s occupy a common page.
    #[error(
        "segments {first} and {second} share a page; permissions are per page, so \
         loadable segments must not share one"
    )]
    Overlap { first: usize, second: usize },
    /// A `PT_TLS` header that is not a sane template inside the image.
    #[error("segment {index} is a PT_TLS that {reason}")]
    ThreadLocalStorage { index: usize, reason: &'static str },
    /// A `PT_DYNAMIC` header.
    #[error("segment {index} is PT_DYNAMIC; nabla guests are statically linked")]
    Dynamic { index: usize },
    /// `e_entry` is not in the file-backed part of an executable `PT_LOAD`.
    #[error("entry point {entry:#x} is not in the file-backed part of an executable segment")]
    EntryOutsideText { entry: u64 },
    /// A note in a `PT_NOTE` segment is truncated or malformed.
    #[error("malformed note in segment {index} at offset {offset:#x}: {reason}")]
    BadNotes { index: usize, offset: u64, reason: &'static str },
    /// No nabla ABI note.
    #[error("no nabla ABI note (owner nabla-guest, type {}); not a nabla guest", abi::NT_NABLA_ABI)]
    NoAbiNote,
    /// The ABI note's descriptor has the wrong size.
    #[error("nabla ABI note descriptor is {descsz} bytes, expected {ABI_DESC_SIZE}")]
    BadAbiNote { descsz: u32 },
    /// The ABI note is for another target.
    #[error(
        "guest built for nabla target {target}, expected {} (x86_64 process)",
        abi::TARGET_X86_64_PROCESS
    )]
    WrongTarget { target: u32 },
    /// The ABI note is for another version of the contract.
    #[error("guest built for nabla ABI version {found}, this tender implements version {expected}")]
    AbiVersion { found: u32, expected: u32 },
    /// Two nabla notes of the same type.
    #[error("more than one nabla {} note (type {n_type})", note_kind(*.n_type))]
    DuplicateNote { n_type: u32 },
    /// No manifest note.
    #[error("no nabla manifest note (owner nabla-guest, type {})", abi::NT_NABLA_MANIFEST)]
    NoManifest,
    /// The manifest note is malformed or invalid.
    #[error("bad nabla manifest note: {reason}")]
    BadManifest { reason: ManifestFault },
}

impl Image {
    /// Validates `bytes` as a nabla guest image.
    ///
    /// `limit`: highest address (exclusive) any segment may reach; the caller
    /// derives it from `--mem`. It should be page-aligned: segments are
    /// checked page-rounded against it, since whole pages get mapped.
    pub fn parse(bytes: &[u8], limit: u64) -> Result<Image, ImageError> {
        let header = parse_header(bytes)?;
        let phdrs = parse_program_headers(bytes, &header)?;
        let segments = check_loads(&phdrs, len_u64(bytes), limit)?;
        check_header_types(&phdrs, &segments)?;
        check_entry(header.e_entry, &segments)?;
        let (abi, manifest) = read_notes(bytes, &phdrs)?;
        let end = segments.iter().map(Segment::page_end).max().unwrap_or(GUEST_BASE);
        Ok(Image { entry: header.e_entry, segments, abi, manifest, end })
    }
}

/// How much of the file an image's program headers can refer to: the end
/// of the furthest of the ELF header, the program header table and every
/// segment's file data. `bytes` is the start of the file, holding at least
/// the header and the table. The snapshot the guest runs from (see the
/// tender's `snapshot` module) is that prefix: section headers, symbols and
/// debug information, which nothing maps, stay out of it. An image whose
/// headers cannot be read returns the error [`Image::parse`] would.
pub fn file_extent(bytes: &[u8]) -> Result<u64, ImageError> {
    let header = parse_header(bytes)?;
    let phdrs = parse_program_headers(bytes, &header)?;
    let table_end = header.e_phoff + u64::from(header.e_phnum) * u64::from(PHDR_SIZE);
    let mut end = table_end.max(SIZEOF_EHDR as u64);
    for (index, ph) in phdrs.iter().enumerate() {
        let data_end = ph.p_offset.checked_add(ph.p_filesz).ok_or(ImageError::Overflow {
            what: Extent::FileRange { index },
            base: ph.p_offset,
            len: ph.p_filesz,
        })?;
        end = end.max(data_end);
    }
    Ok(end)
}

fn parse_header(bytes: &[u8]) -> Result<Header, ImageError> {
    let Some(ehdr) = bytes.first_chunk::<SIZEOF_EHDR>() else {
        return Err(ImageError::NotElf);
    };
    if !ehdr.starts_with(ELFMAG) {
        return Err(ImageError::NotElf);
    }
    if ehdr[EI_CLASS] != ELFCLASS64 {
        return Err(ImageError::Not64Bit { class: ehdr[EI_CLASS] });
    }
    if ehdr[EI_DATA] != ELFDATA2LSB {
        return Err(ImageError::NotLittleEndian { data: ehdr[EI_DATA] });
    }
    // The length, magic, class and byte order goblin dispatches on are
    // settled above, so it cannot fail here; map the error anyway.
    let header = Elf::parse_header(ehdr).map_err(|_| ImageError::NotElf)?;
    if header.e_machine != EM_X86_64 {
        return Err(ImageError::WrongMachine { machine: header.e_machine });
    }
    match header.e_type {
        ET_EXEC => Ok(header),
        ET_DYN => Err(ImageError::PositionIndependent),
        e_type => Err(ImageError::NotExecutable { e_type }),
    }
}

fn parse_program_headers(bytes: &[u8], header: &Header) -> Result<Vec<ProgramHeader>, ImageError> {
    let bad = |reason| ImageError::BadProgramHeaders { reason };
    if header.e_phentsize != PHDR_SIZE {
        return Err(bad(ProgramHeaderFault::EntrySize { phentsize: header.e_phentsize }));
    }
    if header.e_phnum == PN_XNUM {
        return Err(bad(ProgramHeaderFault::ExtendedNumbering));
    }
    // At most 0xfffe * 56 bytes: cannot overflow.
    let size = u64::from(header.e_phnum) * u64::from(PHDR_SIZE);
    let offset = header.e_phoff;
    let end = offset.checked_add(size).ok_or(ImageError::Overflow {
        what: Extent::ProgramHeaders,
        base: offset,
        len: size,
    })?;
    let past_end = || bad(ProgramHeaderFault::PastEnd { offset, end, file_len: len_u64(bytes) });
    // Goblin gets exactly the table, checked to be in the file, so the
    // count it allocates for is bounded by the file's size.
    let table = file_slice(bytes, offset, size).ok_or_else(past_end)?;
    let ctx = Ctx::new(Container::Big, Endian::Little);
    ProgramHeader::parse(table, 0, usize::from(header.e_phnum), ctx).map_err(|_| past_end())
}

/// Checks every `PT_LOAD` on its own, then against each other; returns them
/// sorted by address.
fn check_loads(
    phdrs: &[ProgramHeader],
    file_len: u64,
    limit: u64,
) -> Result<Vec<Segment>, ImageError> {
    let mut segments = Vec::new();
    for (index, ph) in phdrs.iter().enumerate() {
        if ph.p_type == PT_LOAD {
            segments.push(check_load(index, ph, file_len, limit)?);
        }
    }
    if segments.is_empty() {
        return Err(ImageError::NoLoadSegments);
    }
    segments.sort_by_key(|s| s.vaddr);
    for pair in segments.windows(2) {
        if let [low, high] = pair
            && low.page_end() > high.vaddr
        {
            let (first, second) = (low.index.min(high.index), low.index.max(high.index));
            return Err(ImageError::Overlap { first, second });
        }
    }
    Ok(segments)
}

fn check_load(
    index: usize,
    ph: &ProgramHeader,
    file_len: u64,
    limit: u64,
) -> Result<Segment, ImageError> {
    let (offset, vaddr, filesz, memsz, align) =
        (ph.p_offset, ph.p_vaddr, ph.p_filesz, ph.p_memsz, ph.p_align);
    if filesz > memsz {
        return Err(ImageError::FileszExceedsMemsz { index, filesz, memsz });
    }
    if !align.is_power_of_two() || align < PAGE_SIZE {
        return Err(ImageError::Misaligned { index, align });
    }
    if vaddr % PAGE_SIZE != 0 {
        return Err(ImageError::MisalignedAddress { index, vaddr });
    }
    if offset % PAGE_SIZE != vaddr % PAGE_SIZE {
        return Err(ImageError::Incongruent { index, offset, vaddr });
    }
    let perms = Perms::from_flags(ph.p_flags);
    if perms.write && perms.exec {
        return Err(ImageError::WriteExecute { index });
    }
    check_file_range(index, ph, file_len)?;
    let mem_overflow =
        ImageError::Overflow { what: Extent::MemoryRange { index }, base: vaddr, len: memsz };
    let end = vaddr.checked_add(memsz).and_then(page_up).ok_or(mem_overflow)?;
    if vaddr < GUEST_BASE || end > limit {
        return Err(ImageError::OutsideGuest { index, start: vaddr, end, limit });
    }
    if memsz == 0 {
        return Err(ImageError::EmptySegment { index });
    }
    Ok(Segment { index, vaddr, memsz, filesz, offset, perms })
}

/// Checks that the file data of program header `index` lies in the file.
fn check_file_range(index: usize, ph: &ProgramHeader, file_len: u64) -> Result<(), ImageError> {
    let end = ph.p_offset.checked_add(ph.p_filesz).ok_or(ImageError::Overflow {
        what: Extent::FileRange { index },
        base: ph.p_offset,
        len: ph.p_filesz,
    })?;
    if end > file_len {
        return Err(ImageError::DataPastEnd { index, end, file_len });
    }
    Ok(())
}

/// The largest thread-local storage block a guest may declare (`p_memsz`
/// of its `PT_TLS`): every thread of a std guest gets a copy.
pub const MAX_TLS_SIZE: u64 = 1 << 20;

/// Refuses the program header types that ask for a runtime nabla does not
/// have, and a `PT_TLS` that is not a sane template inside a segment.
fn check_header_types(phdrs: &[ProgramHeader], segments: &[Segment]) -> Result<(), ImageError> {
    let mut tls_seen = false;
    for (index, ph) in phdrs.iter().enumerate() {
        match ph.p_type {
            PT_TLS => {
                let bad = |reason| Err(ImageError::ThreadLocalStorage { index, reason });
                if std::mem::replace(&mut tls_seen, true) {
                    return bad("follows another: an image has one at most");
                }
                if ph.p_filesz > ph.p_memsz || ph.p_memsz > MAX_TLS_SIZE {
                    return bad("is larger than 1 MiB or has more file data than memory");
                }
                if ph.p_align > PAGE_SIZE || (ph.p_align > 1 && !ph.p_align.is_power_of_two()) {
                    return bad("has an alignment that is not a power of two up to a page");
                }
                // The template is read from the loaded image: it must lie in
                // the file-backed bytes of one segment.
                let inside = |s: &Segment| {
                    ph.p_vaddr.checked_sub(s.vaddr).is_some_and(|rel| {
                        rel.checked_add(ph.p_filesz).is_some_and(|end| end <= s.filesz)
                    })
                };
                if !segments.iter().any(inside) {
                    return bad("has its template outside the file-backed part of every PT_LOAD");
                }
            }
            PT_DYNAMIC => return Err(ImageError::Dynamic { index }),
            _ => {}
        }
    }
    Ok(())
}

fn check_entry(entry: u64, segments: &[Segment]) -> Result<(), ImageError> {
    // Only file-backed bytes can hold code: the rest of a segment is zeroes.
    let in_text =
        |s: &Segment| s.perms.exec && entry.checked_sub(s.vaddr).is_some_and(|rel| rel < s.filesz);
    if segments.iter().any(in_text) { Ok(()) } else { Err(ImageError::EntryOutsideText { entry }) }
}

/// One note inside a `PT_NOTE` segment.
struct Note<'a> {
    name: &'a [u8],
    descsz: u32,
    n_type: u32,
    desc: &'a [u8],
}

/// Parses the note at `at` in `data`; returns it and the offset of the next.
fn next_note(data: &[u8], at: usize, align: usize) -> Result<(Note<'_>, usize), &'static str> {
    let rest = data.get(at..).unwrap_or_default();
    let Some(&[n0, n1, n2, n3, d0, d1, d2, d3, t0, t1, t2, t3]) =
        rest.first_chunk::<NOTE_HEADER_SIZE>()
    else {
        return Err("truncated note header");
    };
    let namesz = u32::from_le_bytes([n0, n1, n2, n3]);
    let descsz = u32::from_le_bytes([d0, d1, d2, d3]);
    let n_type = u32::from_le_bytes([t0, t1, t2, t3]);
    let past_end = "owner name runs past the end of the segment";
    let name_end = usize::try_from(namesz)
        .ok()
        .and_then(|n| NOTE_HEADER_SIZE.checked_add(n))
        .ok_or(past_end)?;
    let name = rest.get(NOTE_HEADER_SIZE..name_end).ok_or(past_end)?;
    let past_end = "descriptor runs past the end of the segment";
    let desc_start = align_up(name_end, align).ok_or(past_end)?;
    let desc_end =
        usize::try_from(descsz).ok().and_then(|d| desc_start.checked_add(d)).ok_or(past_end)?;
    let desc = rest.get(desc_start..desc_end).ok_or(past_end)?;
    // Tolerate a last note whose trailing padding was left out of p_filesz.
    let next = align_up(desc_end, align).unwrap_or(usize::MAX).min(rest.len());
    Ok((Note { name, descsz, n_type, desc }, at.saturating_add(next)))
}

/// Finds the nabla notes in the `PT_NOTE` segments and checks them.
fn read_notes(bytes: &[u8], phdrs: &[ProgramHeader]) -> Result<(AbiNote, Manifest), ImageError> {
    let mut abi_note: Option<Note<'_>> = None;
    let mut manifest_note: Option<Note<'_>> = None;
    for (index, ph) in phdrs.iter().enumerate().filter(|(_, ph)| ph.p_type == PT_NOTE) {
        check_file_range(index, ph, len_u64(bytes))?;
        let data = file_slice(bytes, ph.p_offset, ph.p_filesz).unwrap_or_default();
        // 8-byte aligned note segments (such as .note.gnu.property) pad to 8;
        // everything else pads to 4, whatever p_align claims.
        let align = if ph.p_align == 8 { 8 } else { 4 };
        let mut at = 0;
        while at < data.len() {
            let (note, next) = next_note(data, at, align)
                .map_err(|reason| ImageError::BadNotes { index, offset: len_u64_of(at), reason })?;
            at = next;
            if note.name != abi::NOTE_NAME {
                continue;
            }
            let slot = match note.n_type {
                abi::NT_NABLA_ABI => &mut abi_note,
                abi::NT_NABLA_MANIFEST => &mut manifest_note,
                // A later contract may add notes; its version bump refuses it.
                _ => continue,
            };
            let n_type = note.n_type;
            if slot.replace(note).is_some() {
                return Err(ImageError::DuplicateNote { n_type });
            }
        }
    }

    let abi_note = abi_note.ok_or(ImageError::NoAbiNote)?;
    let abi = AbiNote::from_bytes(abi_note.desc)
        .ok_or(ImageError::BadAbiNote { descsz: abi_note.descsz })?;
    if abi.target != abi::TARGET_X86_64_PROCESS {
        return Err(ImageError::WrongTarget { target: abi.target });
    }
    if abi.abi_version != abi::ABI_VERSION {
        return Err(ImageError::AbiVersion { found: abi.abi_version, expected: abi::ABI_VERSION });
    }

    let manifest_note = manifest_note.ok_or(ImageError::NoManifest)?;
    let bad = |reason| ImageError::BadManifest { reason };
    let manifest = Manifest::from_bytes(manifest_note.desc)
        .ok_or(bad(ManifestFault::Size { descsz: manifest_note.descsz }))?;
    manifest.validate().map_err(|e| bad(ManifestFault::Invalid(e)))?;
    Ok((abi, manifest))
}

/// `len` bytes of the file at `offset`, if they are all in it.
fn file_slice(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(start..end)
}

fn len_u64(bytes: &[u8]) -> u64 {
    len_u64_of(bytes.len())
}

/// Widens a length or offset; lossless, since usize is at most 64 bits on
/// every target the tender builds for.
fn len_u64_of(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `x` rounded up to a page, unless that overflows.
fn page_up(x: u64) -> Option<u64> {
    Some(x.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
}

/// `x` rounded up to `align`, a power of two, unless that overflows.
fn align_up(x: usize, align: usize) -> Option<usize> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// `e_machine`, with its name when goblin knows it.
struct MachineName(u16);

impl fmt::Display for MachineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match goblin::elf::header::machine_to_str(self.0) {
            "EM_UNKNOWN" => write!(f, "{}", self.0),
            name => write!(f, "{} ({})", self.0, name.to_ascii_lowercase()),
        }
    }
}

/// `e_type`, with its name when it has one.
struct TypeName(u16);

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use goblin::elf::header::{ET_CORE, ET_NONE, ET_REL};
        let name = match self.0 {
            ET_NONE => "ET_NONE",
            ET_REL => "ET_REL",
            ET_EXEC => "ET_EXEC",
            ET_DYN => "ET_DYN",
            ET_CORE => "ET_CORE",
            _ => return write!(f, "{}", self.0),
        };
        write!(f, "{} ({name})", self.0)
    }
}

fn note_kind(n_type: u32) -> &'static str {
    match n_type {
        abi::NT_NABLA_ABI => "ABI",
        abi::NT_NABLA_MANIFEST => "manifest",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::{DeviceDecl, DeviceKind, ElfNote, NT_NABLA_ABI, NT_NABLA_MANIFEST};

    const LIMIT: u64 = 64 << 20;
    const FLAGS_RX: u32 = PF_R | PF_X;
    const FLAGS_RW: u32 = PF_R | PF_W;

    // Offsets of Elf64_Ehdr and Elf64_Phdr fields.
    const E_TYPE: usize = 16;
    const E_MACHINE: usize = 18;
    const E_ENTRY: usize = 24;
    const E_PHOFF: usize = 32;
    const E_PHENTSIZE: usize = 54;
    const E_PHNUM: usize = 56;
    const P_TYPE: usize = 0;
    const P_FLAGS: usize = 4;
    const P_OFFSET: usize = 8;
    const P_VADDR: usize = 16;
    const P_FILESZ: usize = 32;
    const P_MEMSZ: usize = 40;
    const P_ALIGN: usize = 48;

    // The layout of the test image: program headers 0 to 3.
    const TEXT: usize = 0;
    const RODATA: usize = 1;
    const DATA: usize = 2;
    const NOTE: usize = 3;
    const TEXT_OFF: usize = 0x1000;
    const RODATA_OFF: usize = 0x2000;
    const DATA_OFF: usize = 0x3000;
    const TEXT_LEN: u64 = 0x10;
    const DATA_FILESZ: u64 = 0x10;
    const DATA_MEMSZ: u64 = 0x2000;
    // Where the ABI note's descriptor and the manifest note sit in the valid image.
    const ABI_DESC: usize = RODATA_OFF + 24;
    const MANIFEST_NOTE: usize = RODATA_OFF + 32;
    const MANIFEST_DESC: usize = MANIFEST_NOTE + 24;

    fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
        bytes[at..at + value.len()].copy_from_slice(value);
    }

    fn put16(bytes: &mut [u8], at: usize, v: u16) {
        put(bytes, at, &v.to_le_bytes());
    }

    fn put32(bytes: &mut [u8], at: usize, v: u32) {
        put(bytes, at, &v.to_le_bytes());
    }

    fn put64(bytes: &mut [u8], at: usize, v: u64) {
        put(bytes, at, &v.to_le_bytes());
    }

    fn ph_at(index: usize, field: usize) -> usize {
        SIZEOF_EHDR + index * usize::from(PHDR_SIZE) + field
    }

    fn set_ph32(bytes: &mut [u8], index: usize, field: usize, v: u32) {
        put32(bytes, ph_at(index, field), v);
    }

    fn set_ph64(bytes: &mut [u8], index: usize, field: usize, v: u64) {
        put64(bytes, ph_at(index, field), v);
    }

    /// A note with 4-byte padding, as the linker lays out `.note.*` sections.
    fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(name.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(desc.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&n_type.to_le_bytes());
        out.extend_from_slice(name);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(desc);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    /// Serialises an `abi::ElfNote` field by field, as the guest image holds it.
    fn elf_note<D>(n: &ElfNote<D>, desc: impl Fn(&D) -> Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&n.namesz.to_le_bytes());
        out.extend_from_slice(&n.descsz.to_le_bytes());
        out.extend_from_slice(&n.n_type.to_le_bytes());
        out.extend_from_slice(&n.name);
        out.extend_from_slice(&desc(&n.desc));
        assert_eq!(out.len(), 24 + n.descsz as usize);
        out
    }

    fn abi_desc(a: &AbiNote) -> Vec<u8> {
        [a.abi_version.to_le_bytes(), a.target.to_le_bytes()].concat()
    }

    fn manifest_desc(m: &Manifest) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&m.version.to_le_bytes());
        out.extend_from_slice(&m.count.to_le_bytes());
        for d in &m.devices {
            out.extend_from_slice(&d.name);
            out.extend_from_slice(&d.kind.to_le_bytes());
            out.extend_from_slice(&d.reserved.to_le_bytes());
        }
        out
    }

    fn abi_note() -> Vec<u8> {
        elf_note(&ElfNote::new(NT_NABLA_ABI, AbiNote::CURRENT), abi_desc)
    }

    fn manifest_note(m: Manifest) -> Vec<u8> {
        elf_note(&ElfNote::new(NT_NABLA_MANIFEST, m), manifest_desc)
    }

    fn default_notes() -> Vec<Vec<u8>> {
        vec![abi_note(), manifest_note(Manifest::build(&[]))]
    }

    /// A minimal valid guest: r-x text, r-- rodata holding the PT_NOTE,
    /// rw- data with a bss tail, then the PT_NOTE's own header (index 3).
    fn build_with(notes: &[Vec<u8>]) -> Vec<u8> {
        let notes = notes.concat();
        assert!(notes.len() < DATA_OFF - RODATA_OFF);
        let notes_len = u64::try_from(notes.len()).unwrap();
        let mut b = vec![0u8; DATA_OFF + usize::try_from(DATA_FILESZ).unwrap()];
        put(&mut b, 0, ELFMAG);
        b[EI_CLASS] = ELFCLASS64;
        b[EI_DATA] = ELFDATA2LSB;
        b[6] = 1; // EI_VERSION
        put16(&mut b, E_TYPE, ET_EXEC);
        put16(&mut b, E_MACHINE, EM_X86_64);
        put32(&mut b, 20, 1); // e_version
        put64(&mut b, E_ENTRY, GUEST_BASE);
        put64(&mut b, E_PHOFF, SIZEOF_EHDR as u64);
        put16(&mut b, 52, SIZEOF_EHDR as u16); // e_ehsize
        put16(&mut b, E_PHENTSIZE, PHDR_SIZE);
        put16(&mut b, E_PHNUM, 4);
        let phdrs: [(u32, u32, usize, u64, u64, u64, u64); 4] = [
            (PT_LOAD, FLAGS_RX, TEXT_OFF, GUEST_BASE, TEXT_LEN, TEXT_LEN, 0x1000),
            (PT_LOAD, PF_R, RODATA_OFF, GUEST_BASE + 0x1000, notes_len, notes_len, 0x1000),
            (PT_LOAD, FLAGS_RW, DATA_OFF, GUEST_BASE + 0x2000, DATA_FILESZ, DATA_MEMSZ, 0x1000),
            (PT_NOTE, PF_R, RODATA_OFF, GUEST_BASE + 0x1000, notes_len, notes_len, 4),
        ];
        for (i, (p_type, flags, offset, vaddr, filesz, memsz, align)) in
            phdrs.into_iter().enumerate()
        {
            set_ph32(&mut b, i, P_TYPE, p_type);
            set_ph32(&mut b, i, P_FLAGS, flags);
            set_ph64(&mut b, i, P_OFFSET, offset as u64);
            set_ph64(&mut b, i, P_VADDR, vaddr);
            set_ph64(&mut b, i, 24, vaddr); // p_paddr
            set_ph64(&mut b, i, P_FILESZ, filesz);
            set_ph64(&mut b, i, P_MEMSZ, memsz);
            set_ph64(&mut b, i, P_ALIGN, align);
        }
        // jmp . ; then filler.
        put(&mut b, TEXT_OFF, &[0xeb, 0xfe]);
        put(&mut b, RODATA_OFF, &notes);
        put(&mut b, DATA_OFF, &[0x5a; 0x10]);
        b
    }

    fn valid() -> Vec<u8> {
        build_with(&default_notes())
    }

    fn parse(bytes: &[u8]) -> Result<Image, ImageError> {
        Image::parse(bytes, LIMIT)
    }

    /// The error from `valid()` after `mutate`.
    fn refuse(mutate: impl FnOnce(&mut Vec<u8>)) -> ImageError {
        let mut b = valid();
        mutate(&mut b);
        parse(&b).expect_err("mutated image was accepted")
    }

    #[test]
    fn valid_image_parses() {
        let b = valid();
        let image = parse(&b).unwrap();
        assert_invariants(&image, &b);
        assert_eq!(image.entry, GUEST_BASE);
        assert_eq!(image.end, GUEST_BASE + 0x4000);
        assert_eq!(image.abi, AbiNote::CURRENT);
        assert_eq!(image.manifest, Manifest::build(&[]));
        let perms = |read, write, exec| Perms { read, write, exec };
        let notes_len = u64::try_from(default_notes().concat().len()).unwrap();
        assert_eq!(
            image.segments,
            vec![
                Segment {
                    index: TEXT,
                    vaddr: GUEST_BASE,
                    memsz: TEXT_LEN,
                    filesz: TEXT_LEN,
                    offset: TEXT_OFF as u64,
                    perms: perms(true, false, true),
                },
                Segment {
                    index: RODATA,
                    vaddr: GUEST_BASE + 0x1000,
                    memsz: notes_len,
                    filesz: notes_len,
                    offset: RODATA_OFF as u64,
                    perms: perms(true, false, false),
                },
                Segment {
                    index: DATA,
                    vaddr: GUEST_BASE + 0x2000,
                    memsz: DATA_MEMSZ,
                    filesz: DATA_FILESZ,
                    offset: DATA_OFF as u64,
                    perms: perms(true, true, false),
                },
            ]
        );
        assert_eq!(image.segments[0].perms.to_string(), "r-x");
        assert_eq!(image.segments[1].perms.to_string(), "r--");
        assert_eq!(image.segments[2].perms.to_string(), "rw-");
    }

    #[test]
    fn the_extent_ends_with_the_furthest_file_data_and_the_prefix_parses() {
        let mut b = valid();
        let extent = file_extent(&b).unwrap();
        assert_eq!(extent, DATA_OFF as u64 + DATA_FILESZ);
        // What lies past the extent (symbols, debug information) is not
        // needed: the prefix is the same image.
        b.extend_from_slice(&[0xee; 4096]);
        assert_eq!(file_extent(&b).unwrap(), extent);
        let prefix = &b[..extent as usize];
        assert_eq!(parse(prefix).unwrap().segments, parse(&b).unwrap().segments);
        assert!(matches!(file_extent(b"\x7fELF"), Err(ImageError::NotElf)));
    }

    #[test]
    fn segments_are_sorted_by_address() {
        let mut b = valid();
        // Swap the text and data program headers.
        let (text, data) = (ph_at(TEXT, 0), ph_at(DATA, 0));
        let saved: Vec<u8> = b[text..text + 56].to_vec();
        b.copy_within(data..data + 56, text);
        put(&mut b, data, &saved);
        let image = parse(&b).unwrap();
        let order: Vec<usize> = image.segments.iter().map(|s| s.index).collect();
        assert_eq!(order, [DATA, RODATA, TEXT]);
    }

    #[test]
    fn declared_devices_are_returned() {
        let m = Manifest::build(&[
            DeviceDecl { name: "service0", kind: DeviceKind::Net },
            DeviceDecl { name: "storage", kind: DeviceKind::Block },
        ]);
        let image = parse(&build_with(&[abi_note(), manifest_note(m)])).unwrap();
        assert_eq!(image.manifest, m);
        assert_eq!(image.manifest.entries()[1].name(), Ok("storage"));
    }

    #[test]
    fn foreign_notes_are_skipped() {
        let build_id = note(b"GNU\0", 3, &[0xab; 20]);
        let odd = note(b"nabla-guest\0", 99, &[1, 2, 3]);
        let other_owner = note(b"nabla-guesT\0", NT_NABLA_ABI, &[0; 3]);
        let notes = [build_id, abi_note(), odd, other_owner, manifest_note(Manifest::build(&[]))];
        assert!(parse(&build_with(&notes)).is_ok());
    }

    #[test]
    fn eight_byte_aligned_notes() {
        let notes = [note(b"GNU\0", 5, &[0; 12]), vec![0; 4], abi_note()];
        let notes = [notes.concat(), manifest_note(Manifest::build(&[]))];
        let mut b = build_with(&notes);
        set_ph64(&mut b, NOTE, P_ALIGN, 8);
        assert!(parse(&b).is_ok());
        // With 4-byte padding the same bytes do not line up.
        set_ph64(&mut b, NOTE, P_ALIGN, 4);
        assert!(matches!(parse(&b), Err(ImageError::BadNotes { index: NOTE, .. })));
    }

    #[test]
    fn other_program_headers_are_ignored() {
        let mut b = valid();
        set_ph32(&mut b, NOTE, P_TYPE, goblin::elf::program_header::PT_GNU_STACK);
        // Without its PT_NOTE the image has no notes, but gets that far.
        assert_eq!(parse(&b), Err(ImageError::NoAbiNote));
    }

    #[test]
    fn not_elf() {
        assert_eq!(parse(&[]), Err(ImageError::NotElf));
        assert_eq!(parse(&valid()[..SIZEOF_EHDR - 1]), Err(ImageError::NotElf));
        assert_eq!(refuse(|b| b[0] = 0x7e), ImageError::NotElf);
        assert_eq!(refuse(|b| b[3] = b'f'), ImageError::NotElf);
        assert_eq!(ImageError::NotElf.to_string(), "not an ELF file");
    }

    #[test]
    fn not_64_bit() {
        assert_eq!(refuse(|b| b[EI_CLASS] = 1), ImageError::Not64Bit { class: 1 });
    }

    #[test]
    fn not_little_endian() {
        assert_eq!(refuse(|b| b[EI_DATA] = 2), ImageError::NotLittleEndian { data: 2 });
    }

    #[test]
    fn wrong_machine() {
        let e = refuse(|b| put16(b, E_MACHINE, 183));
        assert_eq!(e, ImageError::WrongMachine { machine: 183 });
        assert_eq!(e.to_string(), "wrong machine 183 (aarch64), expected x86_64");
        let e = refuse(|b| put16(b, E_MACHINE, 0x7777));
        assert_eq!(e.to_string(), "wrong machine 30583, expected x86_64");
    }

    #[test]
    fn position_independent() {
        let e = refuse(|b| put16(b, E_TYPE, ET_DYN));
        assert_eq!(e, ImageError::PositionIndependent);
        assert_eq!(
            e.to_string(),
            "position-independent executable or shared object (ET_DYN); \
             nabla guests are static ET_EXEC images linked at 0x100000"
        );
    }

    #[test]
    fn not_executable() {
        let e = refuse(|b| put16(b, E_TYPE, 1));
        assert_eq!(e, ImageError::NotExecutable { e_type: 1 });
        assert_eq!(e.to_string(), "not an executable: e_type 1 (ET_REL), expected ET_EXEC (2)");
        let e = refuse(|b| put16(b, E_TYPE, 0xfe01));
        assert_eq!(e, ImageError::NotExecutable { e_type: 0xfe01 });
    }

    #[test]
    fn bad_program_headers() {
        let bad = |reason| ImageError::BadProgramHeaders { reason };
        assert_eq!(
            refuse(|b| put16(b, E_PHENTSIZE, 32)),
            bad(ProgramHeaderFault::EntrySize { phentsize: 32 })
        );
        assert_eq!(
            refuse(|b| put16(b, E_PHNUM, 0xffff)),
            bad(ProgramHeaderFault::ExtendedNumbering)
        );
        let file_len = len_u64(&valid());
        assert_eq!(
            refuse(|b| put16(b, E_PHNUM, 0xfffe)),
            bad(ProgramHeaderFault::PastEnd { offset: 64, end: 64 + 0xfffe * 56, file_len })
        );
        assert_eq!(
            refuse(|b| put64(b, E_PHOFF, file_len - 100)),
            bad(ProgramHeaderFault::PastEnd {
                offset: file_len - 100,
                end: file_len - 100 + 4 * 56,
                file_len,
            })
        );
    }

    #[test]
    fn overflow() {
        assert_eq!(
            refuse(|b| put64(b, E_PHOFF, u64::MAX - 8)),
            ImageError::Overflow { what: Extent::ProgramHeaders, base: u64::MAX - 8, len: 4 * 56 }
        );
        // Page-aligned, so that the offset passes the congruence check.
        let far: u64 = !0xfff;
        assert_eq!(
            refuse(|b| {
                set_ph64(b, DATA, P_OFFSET, far);
                set_ph64(b, DATA, P_FILESZ, 0x1000);
            }),
            ImageError::Overflow {
                what: Extent::FileRange { index: DATA },
                base: far,
                len: 0x1000
            }
        );
        assert_eq!(
            refuse(|b| set_ph64(b, DATA, P_VADDR, far)),
            ImageError::Overflow {
                what: Extent::MemoryRange { index: DATA },
                base: far,
                len: DATA_MEMSZ
            }
        );
        // vaddr + memsz fits, but its page rounding does not.
        assert_eq!(
            refuse(|b| {
                set_ph64(b, DATA, P_VADDR, far);
                set_ph64(b, DATA, P_MEMSZ, 0xff0);
            }),
            ImageError::Overflow {
                what: Extent::MemoryRange { index: DATA },
                base: far,
                len: 0xff0
            }
        );
        assert_eq!(
            refuse(|b| set_ph64(b, NOTE, P_OFFSET, u64::MAX - 2)),
            ImageError::Overflow {
                what: Extent::FileRange { index: NOTE },
                base: u64::MAX - 2,
                len: ph_field(&valid(), NOTE, P_FILESZ),
            }
        );
    }

    fn ph_field(b: &[u8], index: usize, field: usize) -> u64 {
        let at = ph_at(index, field);
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn filesz_exceeds_memsz() {
        assert_eq!(
            refuse(|b| set_ph64(b, DATA, P_FILESZ, DATA_MEMSZ + 1)),
            ImageError::FileszExceedsMemsz {
                index: DATA,
                filesz: DATA_MEMSZ + 1,
                memsz: DATA_MEMSZ
            }
        );
    }

    #[test]
    fn misaligned() {
        for align in [0, 1, 0x800, 0x3000, u64::MAX] {
            assert_eq!(
                refuse(|b| set_ph64(b, TEXT, P_ALIGN, align)),
                ImageError::Misaligned { index: TEXT, align }
            );
        }
        // Larger powers of two are fine.
        let mut b = valid();
        set_ph64(&mut b, TEXT, P_ALIGN, 0x20_0000);
        assert!(parse(&b).is_ok());
    }

    #[test]
    fn misaligned_address() {
        let e = refuse(|b| {
            set_ph64(b, DATA, P_VADDR, GUEST_BASE + 0x2008);
            set_ph64(b, DATA, P_OFFSET, DATA_OFF as u64 + 8);
        });
        assert_eq!(e, ImageError::MisalignedAddress { index: DATA, vaddr: GUEST_BASE + 0x2008 });
    }

    #[test]
    fn incongruent() {
        assert_eq!(
            refuse(|b| set_ph64(b, TEXT, P_OFFSET, 0x1800)),
            ImageError::Incongruent { index: TEXT, offset: 0x1800, vaddr: GUEST_BASE }
        );
    }

    #[test]
    fn write_execute() {
        let e = refuse(|b| set_ph32(b, RODATA, P_FLAGS, PF_R | PF_W | PF_X));
        assert_eq!(e, ImageError::WriteExecute { index: RODATA });
        assert_eq!(e.to_string(), "segment 1 is both writable and executable (W^X)");
        assert_eq!(
            refuse(|b| set_ph32(b, TEXT, P_FLAGS, PF_W | PF_X)),
            ImageError::WriteExecute { index: TEXT }
        );
    }

    #[test]
    fn data_past_end() {
        let file_len = len_u64(&valid());
        assert_eq!(
            refuse(|b| set_ph64(b, DATA, P_FILESZ, DATA_FILESZ + 1)),
            ImageError::DataPastEnd { index: DATA, end: file_len + 1, file_len }
        );
        // The PT_NOTE is read from the file too.
        assert_eq!(
            refuse(|b| set_ph64(b, NOTE, P_FILESZ, 0x1011)),
            ImageError::DataPastEnd { index: NOTE, end: file_len + 1, file_len }
        );
    }

    #[test]
    fn outside_guest() {
        assert_eq!(
            refuse(|b| set_ph64(b, TEXT, P_VADDR, GUEST_BASE - 0x1000)),
            ImageError::OutsideGuest {
                index: TEXT,
                start: GUEST_BASE - 0x1000,
                end: GUEST_BASE,
                limit: LIMIT
            }
        );
        assert_eq!(
            refuse(|b| set_ph64(b, DATA, P_MEMSZ, LIMIT)),
            ImageError::OutsideGuest {
                index: DATA,
                start: GUEST_BASE + 0x2000,
                end: GUEST_BASE + 0x2000 + LIMIT,
                limit: LIMIT
            }
        );
        // The image ends at GUEST_BASE + 0x4000: a limit there fits exactly,
        // a page less does not, nor does a limit inside the last page.
        let b = valid();
        assert!(Image::parse(&b, GUEST_BASE + 0x4000).is_ok());
        for limit in [GUEST_BASE + 0x3000, GUEST_BASE + 0x3fff] {
            let e = Image::parse(&b, limit).unwrap_err();
            let start = GUEST_BASE + 0x2000;
            let end = GUEST_BASE + 0x4000;
            assert_eq!(e, ImageError::OutsideGuest { index: DATA, start, end, limit });
        }
        let e = Image::parse(&b, GUEST_BASE + 0x3000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "segment 2 occupies [0x102000, 0x104000), outside guest memory [0x100000, 0x103000)"
        );
    }

    #[test]
    fn empty_segment() {
        assert_eq!(
            refuse(|b| {
                set_ph64(b, DATA, P_FILESZ, 0);
                set_ph64(b, DATA, P_MEMSZ, 0);
            }),
            ImageError::EmptySegment { index: DATA }
        );
    }

    #[test]
    fn no_load_segments() {
        let e = refuse(|b| {
            for i in [TEXT, RODATA, DATA] {
                set_ph32(b, i, P_TYPE, 0);
            }
        });
        assert_eq!(e, ImageError::NoLoadSegments);
        assert_eq!(refuse(|b| put16(b, E_PHNUM, 0)), ImageError::NoLoadSegments);
    }

    #[test]
    fn overlap() {
        // Same start.
        assert_eq!(
            refuse(|b| set_ph64(b, RODATA, P_VADDR, GUEST_BASE)),
            ImageError::Overlap { first: TEXT, second: RODATA }
        );
        // Text spills one byte into rodata's page: disjoint bytes, shared page.
        assert_eq!(
            refuse(|b| set_ph64(b, TEXT, P_MEMSZ, 0x1001)),
            ImageError::Overlap { first: TEXT, second: RODATA }
        );
        // Data placed below text but reaching into it; reported by index.
        assert_eq!(
            refuse(|b| {
                set_ph64(b, DATA, P_VADDR, GUEST_BASE);
                set_ph64(b, TEXT, P_VADDR, GUEST_BASE + 0x1000);
                set_ph64(b, TEXT, P_OFFSET, 0x2000);
                set_ph64(b, RODATA, P_VADDR, GUEST_BASE + 0x5000);
                put64(b, E_ENTRY, GUEST_BASE + 0x1000);
            }),
            ImageError::Overlap { first: TEXT, second: DATA }
        );
    }

    #[test]
    fn thread_local_storage() {
        let segments = Image::parse(&valid(), LIMIT).unwrap().segments;
        let data = *segments.iter().find(|s| s.perms.write).unwrap();
        let tls = |vaddr, filesz, memsz, align| ProgramHeader {
            p_type: PT_TLS,
            p_vaddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: align,
            ..Default::default()
        };
        let check = |phdrs: &[ProgramHeader]| match check_header_types(phdrs, &segments) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        // A template in the data segment's file bytes, with a bss tail.
        assert_eq!(check(&[tls(data.vaddr, data.filesz, 0x100, 16)]), "ok");
        assert_eq!(check(&[tls(data.vaddr + 8, 0, 0x40, 0)]), "ok");
        let refused = [
            (tls(data.vaddr, data.filesz + 1, 0x100, 16), "outside the file-backed part"),
            (tls(u64::MAX - 4, 8, 8, 8), "outside the file-backed part"),
            (tls(data.vaddr, 8, 4, 8), "more file data than memory"),
            (tls(data.vaddr, 8, MAX_TLS_SIZE + 1, 8), "larger than 1 MiB"),
            (tls(data.vaddr, 8, 8, 24), "alignment"),
            (tls(data.vaddr, 8, 8, 2 * PAGE_SIZE), "alignment"),
        ];
        for (ph, why) in refused {
            let msg = check(std::slice::from_ref(&ph));
            assert!(msg.starts_with("segment 0 is a PT_TLS that") && msg.contains(why), "{msg}");
        }
        let two = check(&[tls(data.vaddr, 0, 8, 8), tls(data.vaddr, 0, 8, 8)]);
        assert_eq!(two, "segment 1 is a PT_TLS that follows another: an image has one at most");
    }

    #[test]
    fn dynamic() {
        assert_eq!(
            refuse(|b| set_ph32(b, NOTE, P_TYPE, PT_DYNAMIC)),
            ImageError::Dynamic { index: NOTE }
        );
    }

    #[test]
    fn entry_outside_text() {
        // In rodata (not executable), past text's file data, below and above everything.
        for entry in [GUEST_BASE + 0x1000, GUEST_BASE + TEXT_LEN, 0, GUEST_BASE - 1, u64::MAX] {
            assert_eq!(
                refuse(|b| put64(b, E_ENTRY, entry)),
                ImageError::EntryOutsideText { entry }
            );
        }
        // The last byte of text is fine.
        let mut b = valid();
        put64(&mut b, E_ENTRY, GUEST_BASE + TEXT_LEN - 1);
        assert!(parse(&b).is_ok());
    }

    #[test]
    fn bad_notes() {
        let notes_len = ph_field(&valid(), NOTE, P_FILESZ);
        let bad = |offset, reason| ImageError::BadNotes { index: NOTE, offset, reason };
        assert_eq!(
            refuse(|b| set_ph64(b, NOTE, P_FILESZ, notes_len - 4)),
            bad(32, "descriptor runs past the end of the segment")
        );
        assert_eq!(
            refuse(|b| set_ph64(b, NOTE, P_FILESZ, 46)),
            bad(32, "owner name runs past the end of the segment")
        );
        assert_eq!(refuse(|b| set_ph64(b, NOTE, P_FILESZ, 36)), bad(32, "truncated note header"));
        assert_eq!(
            refuse(|b| put32(b, RODATA_OFF, u32::MAX)),
            bad(0, "owner name runs past the end of the segment")
        );
        assert_eq!(
            refuse(|b| put32(b, MANIFEST_NOTE + 4, u32::MAX)),
            bad(32, "descriptor runs past the end of the segment")
        );
    }

    #[test]
    fn no_abi_note() {
        let manifest = manifest_note(Manifest::build(&[]));
        assert_eq!(parse(&build_with(&[manifest])), Err(ImageError::NoAbiNote));
        // A note of another owner does not count.
        assert_eq!(refuse(|b| b[RODATA_OFF + 12] = b'N'), ImageError::NoAbiNote);
        // Nor does an empty PT_NOTE.
        assert_eq!(refuse(|b| set_ph64(b, NOTE, P_FILESZ, 0)), ImageError::NoAbiNote);
    }

    #[test]
    fn bad_abi_note() {
        let short = note(&abi::NOTE_NAME, NT_NABLA_ABI, &[1, 0, 0, 0]);
        let notes = [short, manifest_note(Manifest::build(&[]))];
        assert_eq!(parse(&build_with(&notes)), Err(ImageError::BadAbiNote { descsz: 4 }));
    }

    #[test]
    fn wrong_target() {
        assert_eq!(refuse(|b| put32(b, ABI_DESC + 4, 2)), ImageError::WrongTarget { target: 2 });
    }

    #[test]
    fn abi_version() {
        let found = abi::ABI_VERSION + 1;
        let e = refuse(|b| put32(b, ABI_DESC, found));
        assert_eq!(e, ImageError::AbiVersion { found, expected: abi::ABI_VERSION });
    }

    #[test]
    fn duplicate_note() {
        let manifest = || manifest_note(Manifest::build(&[]));
        let notes = [abi_note(), manifest(), abi_note()];
        assert_eq!(
            parse(&build_with(&notes)),
            Err(ImageError::DuplicateNote { n_type: NT_NABLA_ABI })
        );
        let notes = [abi_note(), manifest(), manifest()];
        let e = parse(&build_with(&notes)).unwrap_err();
        assert_eq!(e, ImageError::DuplicateNote { n_type: NT_NABLA_MANIFEST });
        assert_eq!(e.to_string(), "more than one nabla manifest note (type 2)");
    }

    #[test]
    fn no_manifest() {
        assert_eq!(parse(&build_with(&[abi_note()])), Err(ImageError::NoManifest));
    }

    #[test]
    fn bad_manifest() {
        let short = note(&abi::NOTE_NAME, NT_NABLA_MANIFEST, &[0; 8]);
        assert_eq!(
            parse(&build_with(&[abi_note(), short])),
            Err(ImageError::BadManifest { reason: ManifestFault::Size { descsz: 8 } })
        );
        let bad = abi::ABI_VERSION + 1;
        let e = refuse(|b| put32(b, MANIFEST_DESC, bad));
        let reason = ManifestFault::Invalid(ManifestError::Version(bad));
        assert_eq!(e, ImageError::BadManifest { reason });
        assert_eq!(
            e.to_string(),
            format!(
                "bad nabla manifest note: manifest version {bad}, expected {}",
                abi::ABI_VERSION
            )
        );
        // Device 0's kind, with count 1.
        let e = refuse(|b| {
            put32(b, MANIFEST_DESC + 4, 1);
            put(b, MANIFEST_DESC + 8, b"net0");
            put32(b, MANIFEST_DESC + 8 + 16, 9);
        });
        let reason = ManifestFault::Invalid(ManifestError::Kind { index: 0, kind: 9 });
        assert_eq!(e, ImageError::BadManifest { reason });
    }

    #[test]
    fn truncation_never_panics() {
        let b = valid();
        for len in 0..b.len() {
            assert!(parse(&b[..len]).is_err(), "accepted truncation to {len} bytes");
        }
        assert!(parse(&b).is_ok());
    }

    /// What the mapping code relies on, for any image that parses.
    fn assert_invariants(image: &Image, file: &[u8]) {
        let mut prev_end = GUEST_BASE;
        for s in &image.segments {
            assert!(s.vaddr >= prev_end && s.vaddr % PAGE_SIZE == 0, "{image:?}");
            assert_eq!(s.offset % PAGE_SIZE, 0);
            assert!(s.memsz > 0 && s.filesz <= s.memsz);
            assert!(s.offset + s.filesz <= len_u64(file));
            assert!(!(s.perms.write && s.perms.exec));
            prev_end = page_up(s.vaddr + s.memsz).unwrap();
        }
        assert!(image.end == prev_end && image.end <= LIMIT);
        assert!(
            image
                .segments
                .iter()
                .any(|s| s.perms.exec && (s.vaddr..s.vaddr + s.filesz).contains(&image.entry))
        );
        assert_eq!(image.manifest.validate(), Ok(()));
    }

    #[test]
    fn random_corruption_never_panics() {
        let original = valid();
        let headers_end = ph_at(4, 0);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..5000 {
            let mut b = original.clone();
            for _ in 0..1 + next() % 4 {
                let r = next();
                // Mostly in the headers, where the decisions are; sometimes anywhere.
                let span = if r % 4 == 0 { b.len() } else { headers_end };
                let at = usize::try_from(next() % len_u64_of(span)).unwrap();
                match r % 3 {
                    0 => b[at] ^= 1 << ((r >> 8) % 8),
                    1 => b[at] = (r >> 16) as u8,
                    // A whole 8-byte field set to a random or extreme value.
                    _ => {
                        let v = [next(), u64::MAX, 0, 1 << 63, 0xfff][(r >> 8) as usize % 5];
                        let at = at.min(b.len() - 8);
                        put64(&mut b, at, v);
                    }
                }
            }
            if let Ok(image) = parse(&b) {
                accepted += 1;
                assert_invariants(&image, &b);
            }
        }
        // Most corruptions of the headers are caught; a few (padding, p_paddr) are harmless.
        assert!(accepted < 5000);
    }

    #[test]
    fn messages_name_the_values() {
        let e = ImageError::Incongruent { index: 0, offset: 0x1800, vaddr: 0x100000 };
        assert_eq!(
            e.to_string(),
            "segment 0: p_offset 0x1800 and p_vaddr 0x100000 differ modulo the page size \
             (0x1000), so the segment cannot be mapped from the file"
        );
        let e = ImageError::BadProgramHeaders {
            reason: ProgramHeaderFault::PastEnd { offset: 0x40, end: 0x1000, file_len: 0x800 },
        };
        assert_eq!(
            e.to_string(),
            "bad program header table: table [0x40, 0x1000) extends past the end of the file \
             (0x800 bytes)"
        );
        let e = ImageError::Overflow { what: Extent::FileRange { index: 2 }, base: 1, len: 2 };
        assert_eq!(
            e.to_string(),
            "segment 2 file range (p_offset + p_filesz) overflows: 0x1 + 0x2"
        );
    }
}
