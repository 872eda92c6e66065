//! Finding a function in the kernel's vDSO: the small shared object the
//! kernel maps into every process (its address is `AT_SYSINFO_EHDR` in the
//! auxiliary vector), whose `__vdso_clock_gettime` reads the clocks without
//! entering the kernel.
//!
//! The guest runs in the tender's process, so the vDSO the kernel mapped
//! for the tender is the guest's too; the tender hands the guest the
//! function's address (`abi::BootInfo::vdso_clock_gettime`). This module is
//! the pure part: it looks a versioned symbol up in the bytes of the image,
//! through its dynamic section, as a dynamic linker would (the hash table
//! gives the number of symbols, the version table each one's version). The
//! caller (`launch::vdso_clock_gettime`) finds the bytes.
//!
//! The vDSO is the kernel's, not an input anyone else controls, but a
//! surprise there must cost the guest its fast clock, never the tender
//! its start: every offset is checked against the bytes given, and
//! anything unexpected is `None` (the guest then keeps the system call).

/// What the guest calls to read a clock.
pub const CLOCK_GETTIME: &str = "__vdso_clock_gettime";
/// The version x86_64 Linux exports it under.
pub const LINUX_2_6: &str = "LINUX_2.6";

/// Bytes of the vDSO's image the caller can always read: its first page,
/// which holds the ELF header and the program headers.
pub const HEAD: usize = 4096;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SYM_SIZE: usize = 24;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const DT_VERSYM: u64 = 0x6fff_fff0;
const DT_VERDEF: u64 = 0x6fff_fffc;
const STT_FUNC: u8 = 2;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const SHN_UNDEF: u16 = 0;
/// `VER_FLG_BASE`: the verdef entry that names the object itself.
const VER_FLG_BASE: u16 = 1;
/// Longest dynamic section read.
const MAX_DYN: usize = 256;
/// Most symbols looked at.
const MAX_SYMS: usize = 4096;

fn bytes(image: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    image.get(off..off.checked_add(len)?)
}

fn u16_at(image: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes(image, off, 2)?.try_into().ok()?))
}

fn u32_at(image: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes(image, off, 4)?.try_into().ok()?))
}

fn u64_at(image: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes(image, off, 8)?.try_into().ok()?))
}

fn usize_at(image: &[u8], off: usize) -> Option<usize> {
    usize::try_from(u64_at(image, off)?).ok()
}

/// A program header's type, offset, address and size in the file.
#[derive(Debug, Clone, Copy)]
struct Phdr {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// The program headers, if the ELF header is that of a little-endian
/// x86_64 shared object whose headers lie in `head`.
fn phdrs(head: &[u8]) -> Option<Vec<Phdr>> {
    let ident = bytes(head, 0, 16)?;
    // ELF, 64-bit, little-endian, version 1.
    if ident[..7] != [0x7f, b'E', b'L', b'F', 2, 1, 1] {
        return None;
    }
    // ET_DYN, EM_X86_64, and program headers of the size we read.
    if u16_at(head, 16)? != 3
        || u16_at(head, 18)? != 62
        || usize::from(u16_at(head, 54)?) != PHDR_SIZE
    {
        return None;
    }
    let phoff = usize_at(head, 32)?;
    let phnum = usize::from(u16_at(head, 56)?);
    if phoff < EHDR_SIZE {
        return None;
    }
    (0..phnum)
        .map(|i| {
            let at = phoff.checked_add(i.checked_mul(PHDR_SIZE)?)?;
            bytes(head, at, PHDR_SIZE)?;
            Some(Phdr {
                kind: u32_at(head, at)?,
                offset: u64_at(head, at + 8)?,
                vaddr: u64_at(head, at + 16)?,
                filesz: u64_at(head, at + 32)?,
            })
        })
        .collect()
}

/// How many bytes of the image its loaded segments cover from its start
/// (the kernel maps them all), if `head` (its first bytes) begins with
/// the headers of an x86_64 shared object: what the caller may then read.
pub fn image_len(head: &[u8]) -> Option<usize> {
    let headers = phdrs(head)?;
    let mut len = 0u64;
    for h in headers.iter().filter(|h| h.kind == PT_LOAD) {
        len = len.max(h.offset.checked_add(h.filesz)?);
    }
    let len = usize::try_from(len).ok()?;
    (len >= EHDR_SIZE).then_some(len)
}

/// Turns link-time addresses into offsets in the image, through the
/// `PT_LOAD` that covers them.
struct Loads(Vec<Phdr>);

impl Loads {
    fn offset(&self, vaddr: u64) -> Option<usize> {
        let h = self.0.iter().find(|h| vaddr >= h.vaddr && vaddr - h.vaddr < h.filesz)?;
        usize::try_from(h.offset.checked_add(vaddr - h.vaddr)?).ok()
    }
}

/// The NUL-terminated string at `off` in the string table `strtab`.
fn cstr(strtab: &[u8], off: usize) -> Option<&[u8]> {
    let tail = strtab.get(off..)?;
    Some(&tail[..tail.iter().position(|&b| b == 0)?])
}

/// Number of symbols from a GNU hash table at `off`: one more than the
/// highest symbol index any of its chains reaches.
fn gnu_hash_count(image: &[u8], off: usize) -> Option<usize> {
    let nbuckets = usize::try_from(u32_at(image, off)?).ok()?;
    let symoffset = usize::try_from(u32_at(image, off + 4)?).ok()?;
    let bloom_size = usize::try_from(u32_at(image, off + 8)?).ok()?;
    let buckets = off.checked_add(16)?.checked_add(bloom_size.checked_mul(8)?)?;
    let chains = buckets.checked_add(nbuckets.checked_mul(4)?)?;
    let mut last = 0usize;
    for b in 0..nbuckets {
        last = last.max(usize::try_from(u32_at(image, buckets + 4 * b)?).ok()?);
    }
    if last < symoffset {
        return Some(symoffset);
    }
    // Walk the last chain to its end (its low bit set).
    for _ in 0..MAX_SYMS {
        let hash = u32_at(image, chains.checked_add((last - symoffset).checked_mul(4)?)?)?;
        last += 1;
        if hash & 1 != 0 {
            return Some(last);
        }
    }
    None
}

/// The offset from the image's start of the function `name` with version
/// `version`, or `None` if the image does not export exactly that (an
/// unversioned image is taken at its word). `image` holds at least
/// [`image_len`] bytes of the image.
pub fn find(image: &[u8], name: &str, version: &str) -> Option<u64> {
    let headers = phdrs(image)?;
    let dynamic = headers.iter().find(|h| h.kind == PT_DYNAMIC)?;
    let loads = Loads(headers.iter().filter(|h| h.kind == PT_LOAD).copied().collect());
    let dyn_off = usize::try_from(dynamic.offset).ok()?;

    let (mut symtab, mut strtab, mut strsz, mut hash, mut gnu_hash) =
        (None, None, None, None, None);
    let (mut versym, mut verdef, mut syment) = (None, None, SYM_SIZE as u64);
    for i in 0..MAX_DYN.min(usize::try_from(dynamic.filesz).ok()? / 16) {
        let at = dyn_off.checked_add(16 * i)?;
        let (tag, value) = (u64_at(image, at)?, u64_at(image, at + 8)?);
        match tag {
            DT_NULL => break,
            DT_SYMTAB => symtab = loads.offset(value),
            DT_STRTAB => strtab = loads.offset(value),
            DT_STRSZ => strsz = usize::try_from(value).ok(),
            DT_HASH => hash = loads.offset(value),
            DT_GNU_HASH => gnu_hash = loads.offset(value),
            DT_VERSYM => versym = loads.offset(value),
            DT_VERDEF => verdef = loads.offset(value),
            DT_SYMENT => syment = value,
            _ => {}
        }
    }
    if syment != SYM_SIZE as u64 {
        return None;
    }
    let strtab = bytes(image, strtab?, strsz?)?;
    let symtab = symtab?;
    // DT_HASH's second word is the number of symbols; else count them
    // through the GNU hash table.
    let count = match (hash, gnu_hash) {
        (Some(h), _) => usize::try_from(u32_at(image, h + 4)?).ok()?,
        (None, Some(g)) => gnu_hash_count(image, g)?,
        (None, None) => return None,
    }
    .min(MAX_SYMS);

    for index in 1..count {
        let at = symtab.checked_add(index.checked_mul(SYM_SIZE)?)?;
        let sym = bytes(image, at, SYM_SIZE)?;
        let (info, shndx) = (sym[4], u16::from_le_bytes([sym[6], sym[7]]));
        if info & 0xf != STT_FUNC
            || !matches!(info >> 4, STB_GLOBAL | STB_WEAK)
            || shndx == SHN_UNDEF
        {
            continue;
        }
        let name_off = usize::try_from(u32::from_le_bytes(sym[..4].try_into().ok()?)).ok()?;
        if cstr(strtab, name_off)? != name.as_bytes() {
            continue;
        }
        if let (Some(versym), Some(verdef)) = (versym, verdef) {
            let ver = u16_at(image, versym.checked_add(index.checked_mul(2)?)?)? & 0x7fff;
            if !has_version(image, verdef, strtab, ver, version)? {
                continue;
            }
        }
        let value = u64::from_le_bytes(sym[8..16].try_into().ok()?);
        return loads.offset(value).map(|off| off as u64);
    }
    None
}

/// Whether version index `ver` of the version definitions at `verdef`
/// is named `version`.
fn has_version(
    image: &[u8],
    verdef: usize,
    strtab: &[u8],
    ver: u16,
    version: &str,
) -> Option<bool> {
    let mut at = verdef;
    for _ in 0..MAX_SYMS {
        // Elf64_Verdef: vd_version, vd_flags, vd_ndx, vd_cnt (u16 each),
        // vd_hash, vd_aux, vd_next (u32 each).
        let (flags, ndx) = (u16_at(image, at + 2)?, u16_at(image, at + 4)?);
        if ndx & 0x7fff == ver && flags & VER_FLG_BASE == 0 {
            let aux = at.checked_add(usize::try_from(u32_at(image, at + 12)?).ok()?)?;
            // Elf64_Verdaux: vda_name, vda_next.
            let name = usize::try_from(u32_at(image, aux)?).ok()?;
            return Some(cstr(strtab, name)? == version.as_bytes());
        }
        let next = usize::try_from(u32_at(image, at + 16)?).ok()?;
        if next == 0 {
            return Some(false);
        }
        at = at.checked_add(next)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's vDSO, copied, as the tender reads its own.
    #[allow(unsafe_code)]
    fn own_vdso() -> Option<Vec<u8>> {
        // SAFETY: getauxval only reads the auxiliary vector.
        let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
        if base == 0 {
            return None;
        }
        // SAFETY: the kernel maps at least the vDSO's first page at `base`.
        let head = unsafe { std::slice::from_raw_parts(base as *const u8, HEAD) };
        let len = image_len(head)?;
        // SAFETY: the loaded segments, `len` bytes from `base`, are mapped.
        Some(unsafe { std::slice::from_raw_parts(base as *const u8, len) }.to_vec())
    }

    #[test]
    fn finds_clock_gettime_in_this_processs_vdso() {
        let Some(image) = own_vdso() else {
            eprintln!("note: no vDSO in this process: nothing to look up");
            return;
        };
        let off = find(&image, CLOCK_GETTIME, LINUX_2_6).expect("__vdso_clock_gettime");
        assert!((EHDR_SIZE as u64..image.len() as u64).contains(&off));
        // The same function under its other name and the other functions
        // the x86_64 vDSO exports, at other offsets.
        let alias = find(&image, "clock_gettime", LINUX_2_6);
        assert!(alias.is_none() || alias == Some(off));
        let tod = find(&image, "__vdso_gettimeofday", LINUX_2_6).expect("gettimeofday");
        assert_ne!(tod, off);
        // Another version, a missing name: nothing.
        assert_eq!(find(&image, CLOCK_GETTIME, "LINUX_9.9"), None);
        assert_eq!(find(&image, "__vdso_nothing", LINUX_2_6), None);
    }

    #[test]
    #[allow(unsafe_code)]
    fn the_function_found_reads_the_clock() {
        // SAFETY: getauxval only reads the auxiliary vector.
        let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
        let Some(image) = own_vdso() else { return };
        let off = find(&image, CLOCK_GETTIME, LINUX_2_6).unwrap();
        type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> i32;
        // SAFETY: the symbol is the vDSO's clock_gettime, with that C
        // signature, mapped for the life of the process.
        let f: ClockGettime = unsafe { std::mem::transmute((base + off) as usize) };
        let read = |clock: libc::clockid_t| {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: ts is a writable timespec.
            assert_eq!(unsafe { f(clock, &mut ts) }, 0);
            std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        };
        let syscall = |clock: libc::clockid_t| {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: ts is a writable timespec.
            assert_eq!(unsafe { libc::syscall(libc::SYS_clock_gettime, clock, &mut ts) }, 0);
            std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        };
        for clock in [libc::CLOCK_MONOTONIC, libc::CLOCK_REALTIME] {
            let before = syscall(clock);
            let now = read(clock);
            let after = syscall(clock);
            if clock == libc::CLOCK_MONOTONIC {
                assert!(before <= now && now <= after, "{before:?} {now:?} {after:?}");
            } else {
                // The wall clock may be stepped between the reads.
                assert!(now.abs_diff(before) < std::time::Duration::from_secs(5));
            }
        }
    }

    #[test]
    fn damaged_images_give_none_never_a_panic() {
        let Some(image) = own_vdso() else { return };
        assert_eq!(image_len(&image[..63]), None);
        for len in [0, 16, 64, 200, image.len() / 2, image.len() - 1] {
            let _ = find(&image[..len], CLOCK_GETTIME, LINUX_2_6);
        }
        // Every byte of the headers and the dynamic tables, flipped in
        // turn, and some random damage all over.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..image.len().min(HEAD) {
            for flip in [0xff, 0x80, 0x01] {
                let mut bad = image.clone();
                bad[i] ^= flip;
                let _ = image_len(&bad);
                let _ = find(&bad, CLOCK_GETTIME, LINUX_2_6);
            }
        }
        for _ in 0..2000 {
            let mut bad = image.clone();
            for _ in 0..8 {
                let at = next() as usize % bad.len();
                bad[at] = next() as u8;
            }
            let _ = find(&bad, CLOCK_GETTIME, LINUX_2_6);
        }
        // Not an ELF, or not x86_64.
        let mut bad = image.clone();
        bad[1] = b'X';
        assert_eq!(find(&bad, CLOCK_GETTIME, LINUX_2_6), None);
        let mut bad = image.clone();
        bad[18] = 3; // EM_386
        assert_eq!(image_len(&bad), None);
    }
}
