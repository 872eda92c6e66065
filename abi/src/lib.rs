//! The contract between a nabla guest and the tender.
//!
//! Both sides depend on this crate and neither redefines its types. It is
//! `#![no_std]` and has no dependencies, so that a reader can check the whole
//! boundary in one file.
//!
//! Three things cross the boundary:
//!
//! * **ELF notes** that the guest carries in its image and the tender reads
//!   before it maps anything: the [`AbiNote`] (which target and which version
//!   of this contract the guest was built for) and the [`Manifest`] (the
//!   devices the application declared).
//! * **The memory layout** ([`GUEST_BASE`], [`BOOT_REGION_START`], the guard
//!   and the stack): where the tender puts what.
//! * **The boot info** ([`BootInfo`]), written by the tender into the boot
//!   region and handed to the guest's entry point in `rdi`.
//!
//! Bump [`ABI_VERSION`] before any change to this file ships: the tender
//! refuses guests built for another version.

#![no_std]
#![deny(unsafe_code)]

/// Version of this contract. Bump it on any change to a type or constant here.
pub const ABI_VERSION: u32 = 8;

/// Page size the layout is expressed in.
pub const PAGE_SIZE: u64 = 4096;

/// Address at which guest images are linked (`ld-scripts/guest.ld`). Every
/// `PT_LOAD` segment lies at or above it.
pub const GUEST_BASE: u64 = 0x10_0000;

/// Lowest address the tender ever maps for the guest: the 64 KiB below stay
/// unmapped so that null-pointer dereferences (with small offsets) fault.
pub const BOOT_REGION_START: u64 = 0x1_0000;

/// End (exclusive) of the boot region. The boot info, the argument and
/// environment strings and their tables live in `[BOOT_REGION_START, BOOT_REGION_END)`,
/// read-only to the guest.
pub const BOOT_REGION_END: u64 = GUEST_BASE;

/// Size of the `PROT_NONE` region between the heap and the stack.
pub const GUARD_SIZE: u64 = 64 * 1024;

/// Size of the guest's stack, at the top of guest memory.
pub const STACK_SIZE: u64 = 1024 * 1024;

/// Default guest memory (`--mem`), in MiB.
pub const DEFAULT_MEM_MIB: u64 = 64;

/// Smallest guest memory the tender accepts, in MiB: the image, at least
/// one MiB of heap, the guard and the stack must fit.
pub const MIN_MEM_MIB: u64 = 4;

/// Largest guest memory the tender accepts, in MiB (64 GiB). The guest
/// window must stay far below where the kernel puts the tender's PIE image,
/// its libraries and its stack.
pub const MAX_MEM_MIB: u64 = 64 * 1024;

/// Owner name of the nabla ELF notes, NUL included. Its 12 bytes keep the
/// descriptor 8-byte aligned whether a reader pads notes to 4 or to 8.
pub const NOTE_NAME: [u8; 12] = *b"nabla-guest\0";

/// Note type of the [`AbiNote`].
pub const NT_NABLA_ABI: u32 = 1;

/// Note type of the [`Manifest`].
pub const NT_NABLA_MANIFEST: u32 = 2;

/// ELF section names, kept by the linker script (`KEEP`) and covered by the
/// image's `PT_NOTE`.
pub const ABI_NOTE_SECTION: &str = ".note.nabla.abi";
/// See [`ABI_NOTE_SECTION`].
pub const MANIFEST_NOTE_SECTION: &str = ".note.nabla.manifest";

/// The only target so far: an x86_64 guest running as a Linux process under
/// the tender.
pub const TARGET_X86_64_PROCESS: u32 = 1;

/// Most devices one guest can declare.
pub const MAX_DEVICES: usize = 63;

/// Longest device name, in bytes (the name buffer also holds a NUL).
pub const DEVICE_NAME_MAX: usize = 15;

/// An ELF note as laid out in the image: header, owner name, descriptor.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ElfNote<D> {
    /// Length of `name`, NUL included.
    pub namesz: u32,
    /// Length of `desc`.
    pub descsz: u32,
    /// Note type.
    pub n_type: u32,
    /// Owner name, [`NOTE_NAME`].
    pub name: [u8; 12],
    /// The descriptor.
    pub desc: D,
}

impl<D> ElfNote<D> {
    /// A nabla note of type `n_type` around `desc`.
    pub const fn new(n_type: u32, desc: D) -> Self {
        assert!(core::mem::size_of::<D>().is_multiple_of(8), "descriptor must be 8-byte padded");
        Self {
            namesz: NOTE_NAME.len() as u32,
            descsz: core::mem::size_of::<D>() as u32,
            n_type,
            name: NOTE_NAME,
            desc,
        }
    }
}

/// Descriptor of the ABI note: which contract the guest was built for.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiNote {
    /// [`ABI_VERSION`] at build time.
    pub abi_version: u32,
    /// [`TARGET_X86_64_PROCESS`].
    pub target: u32,
}

impl AbiNote {
    /// The note a guest built against this crate carries.
    pub const CURRENT: Self = Self { abi_version: ABI_VERSION, target: TARGET_X86_64_PROCESS };
}

/// Kind of a declared device, as stored in a [`DeviceEntry`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A network interface (a tap device on the host).
    Net = 1,
    /// A block device (a disk image file on the host).
    Block = 2,
}

impl DeviceKind {
    /// The kind with raw value `raw`, if there is one.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Net),
            2 => Some(Self::Block),
            _ => None,
        }
    }

    /// Lower-case name, as the tender prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Net => "net",
            Self::Block => "block",
        }
    }
}

/// One declared device: a name, NUL-padded, and a kind.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceEntry {
    /// `[a-z][a-z0-9_]*`, 1 to [`DEVICE_NAME_MAX`] bytes, NUL-padded.
    pub name: [u8; DEVICE_NAME_MAX + 1],
    /// A [`DeviceKind`] as `u32`.
    pub kind: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

impl DeviceEntry {
    /// An unused slot.
    pub const EMPTY: Self = Self { name: [0; DEVICE_NAME_MAX + 1], kind: 0, reserved: 0 };

    /// The name up to its NUL, if it is a valid device name.
    pub fn name(&self) -> Result<&str, NameError> {
        let len = self.name.iter().position(|&b| b == 0).ok_or(NameError::NotTerminated)?;
        if self.name[len..].iter().any(|&b| b != 0) {
            return Err(NameError::NotTerminated);
        }
        check_name(&self.name[..len])?;
        // check_name admits ASCII only.
        core::str::from_utf8(&self.name[..len]).map_err(|_| NameError::BadCharacter)
    }
}

/// Why a device name is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`DEVICE_NAME_MAX`].
    TooLong,
    /// The name has a byte outside `[a-z0-9_]` or does not start with a letter.
    BadCharacter,
    /// The name buffer has no NUL, or bytes after it.
    NotTerminated,
}

impl NameError {
    /// What is wrong, for messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty device name",
            Self::TooLong => "device name longer than 15 bytes",
            Self::BadCharacter => "device name must match [a-z][a-z0-9_]*",
            Self::NotTerminated => "device name is not NUL-terminated and NUL-padded",
        }
    }
}

impl core::fmt::Display for NameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a device name: `[a-z][a-z0-9_]*`, at most [`DEVICE_NAME_MAX`] bytes.
pub const fn check_name(name: &[u8]) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > DEVICE_NAME_MAX {
        return Err(NameError::TooLong);
    }
    if !name[0].is_ascii_lowercase() {
        return Err(NameError::BadCharacter);
    }
    let mut i = 1;
    while i < name.len() {
        let b = name[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(NameError::BadCharacter);
        }
        i += 1;
    }
    Ok(())
}

/// Descriptor of the manifest note: the devices the application declared.
///
/// Fixed size, so that the tender can check `descsz` exactly; the first
/// `count` entries are used and the rest are [`DeviceEntry::EMPTY`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// [`ABI_VERSION`] at build time.
    pub version: u32,
    /// Number of used entries, at most [`MAX_DEVICES`].
    pub count: u32,
    /// The entries.
    pub devices: [DeviceEntry; MAX_DEVICES],
}

/// Why a manifest cannot be built or is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestError {
    /// `version` is not [`ABI_VERSION`].
    Version(u32),
    /// More than [`MAX_DEVICES`] entries.
    TooMany(u32),
    /// Entry `index` has a bad name.
    Name { index: usize, error: NameError },
    /// Entry `index` has an unknown kind.
    Kind { index: usize, kind: u32 },
    /// Entry `index` has a non-zero reserved field.
    Reserved { index: usize },
    /// Entry `index` repeats the name of an earlier entry.
    Duplicate { index: usize },
    /// Entry `index`, beyond `count`, is not empty.
    Trailing { index: usize },
}

impl core::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Version(v) => write!(f, "manifest version {v}, expected {ABI_VERSION}"),
            Self::TooMany(n) => write!(f, "{n} devices declared, at most {MAX_DEVICES} allowed"),
            Self::Name { index, error } => write!(f, "device {index}: {error}"),
            Self::Kind { index, kind } => write!(f, "device {index}: unknown device kind {kind}"),
            Self::Reserved { index } => write!(f, "device {index}: reserved field is not zero"),
            Self::Duplicate { index } => {
                write!(f, "device {index}: name declared twice")
            }
            Self::Trailing { index } => {
                write!(f, "device slot {index} is beyond the device count but not empty")
            }
        }
    }
}

/// One device as an application declares it in source.
#[derive(Debug, Clone, Copy)]
pub struct DeviceDecl {
    /// Device name.
    pub name: &'static str,
    /// Device kind.
    pub kind: DeviceKind,
}

impl Manifest {
    /// Builds a manifest at compile time; any error is a compile error when
    /// called in a `const` (as libos's `app!` macro does).
    pub const fn build(decls: &[DeviceDecl]) -> Self {
        assert!(decls.len() <= MAX_DEVICES, "at most 63 devices can be declared");
        let mut devices = [DeviceEntry::EMPTY; MAX_DEVICES];
        let mut i = 0;
        while i < decls.len() {
            let name = decls[i].name.as_bytes();
            match check_name(name) {
                Ok(()) => {}
                Err(NameError::Empty) => panic!("device name is empty"),
                Err(NameError::TooLong) => panic!("device name longer than 15 bytes"),
                Err(_) => panic!("device name must match [a-z][a-z0-9_]*"),
            }
            let mut j = 0;
            while j < i {
                if bytes_eq(decls[j].name.as_bytes(), name) {
                    panic!("device name declared twice");
                }
                j += 1;
            }
            let mut k = 0;
            while k < name.len() {
                devices[i].name[k] = name[k];
                k += 1;
            }
            devices[i].kind = decls[i].kind as u32;
            i += 1;
        }
        Self { version: ABI_VERSION, count: decls.len() as u32, devices }
    }

    /// Checks a manifest read from an untrusted image.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.version != ABI_VERSION {
            return Err(ManifestError::Version(self.version));
        }
        let count = self.count as usize;
        if count > MAX_DEVICES {
            return Err(ManifestError::TooMany(self.count));
        }
        for (index, entry) in self.devices.iter().enumerate() {
            if index >= count {
                if *entry != DeviceEntry::EMPTY {
                    return Err(ManifestError::Trailing { index });
                }
                continue;
            }
            let name = entry.name().map_err(|error| ManifestError::Name { index, error })?;
            if DeviceKind::from_raw(entry.kind).is_none() {
                return Err(ManifestError::Kind { index, kind: entry.kind });
            }
            if entry.reserved != 0 {
                return Err(ManifestError::Reserved { index });
            }
            if self.devices[..index].iter().any(|e| e.name().ok() == Some(name)) {
                return Err(ManifestError::Duplicate { index });
            }
        }
        Ok(())
    }

    /// The used entries.
    pub fn entries(&self) -> &[DeviceEntry] {
        &self.devices[..(self.count as usize).min(MAX_DEVICES)]
    }

    /// Parses a manifest from the bytes of a note descriptor (any alignment).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != core::mem::size_of::<Self>() {
            return None;
        }
        let u32_at = |off: usize| {
            u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
        };
        let mut m = Self {
            version: u32_at(0),
            count: u32_at(4),
            devices: [DeviceEntry::EMPTY; MAX_DEVICES],
        };
        let entry_size = core::mem::size_of::<DeviceEntry>();
        for (i, d) in m.devices.iter_mut().enumerate() {
            let off = 8 + i * entry_size;
            d.name.copy_from_slice(&bytes[off..off + DEVICE_NAME_MAX + 1]);
            d.kind = u32_at(off + 16);
            d.reserved = u32_at(off + 20);
        }
        Some(m)
    }
}

impl AbiNote {
    /// Parses the descriptor of an ABI note (any alignment).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != core::mem::size_of::<Self>() {
            return None;
        }
        Some(Self {
            abi_version: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            target: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        })
    }
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `BootInfo::magic`: "NABLABOO" little-endian.
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"NABLABOO");

/// A string in the boot region: address and length in bytes, UTF-8
/// (the tender refuses arguments and environment that are not).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootStr {
    /// Guest address of the first byte.
    pub ptr: u64,
    /// Length in bytes, no terminator.
    pub len: u64,
}

/// An attached device, in the boot info. Index `i` describes manifest entry `i`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Same as the manifest entry's name.
    pub name: [u8; DEVICE_NAME_MAX + 1],
    /// A [`DeviceKind`] as `u32`.
    pub kind: u32,
    /// The host file descriptor the guest's hypercalls for this device use.
    pub fd: i32,
    /// Net: the MTU of the host interface. Block, with
    /// [`DEVICE_FLAG_FLUSH_EVENTFDS`]: the fd of the disk's flush request
    /// eventfd (as `u32`; its completion eventfd is the next fd);
    /// otherwise unused.
    pub mtu: u32,
    /// Block: sector size in bytes. Net: unused.
    pub sector_size: u32,
    /// Block: capacity in bytes. Net: unused.
    pub capacity: u64,
    /// Net: the MAC address the guest uses. Block: unused.
    pub mac: [u8; 6],
    /// `DEVICE_FLAG_*`.
    pub flags: u16,
}

/// `DeviceInfo::flags`: the device is attached read-only.
pub const DEVICE_FLAG_READ_ONLY: u16 = 1;

/// `DeviceInfo::flags`, bit 2: retired. It announced a flush channel on a
/// `SOCK_SEQPACKET` pair; no tender sets it since the channel became two
/// eventfds ([`DEVICE_FLAG_FLUSH_EVENTFDS`]), and a guest that knows only
/// it flushes on the spot, as one that ignores it.
pub const DEVICE_FLAG_RETIRED_FLUSH_SOCKET: u16 = 4;

/// `DeviceInfo::flags`, block: the disk has a flush thread in the tender
/// and two eventfds to reach it, the **request** eventfd in
/// `DeviceInfo::mtu` and the **completion** eventfd at the next fd
/// (`mtu + 1`).
///
/// * The guest asks for an `fdatasync` of the disk by writing 1 (a
///   little-endian `u64`) to the request eventfd (blocking, but it blocks
///   only if its counter would overflow, which [`FLUSH_IN_FLIGHT_MAX`]
///   rules out). The thread reads the counter (all the requests made since
///   its last read, `n`), calls `fdatasync` once for all of them, and adds
///   their answer to the completion eventfd (non-blocking, readable while
///   its counter is not zero; the guest may wait on it in `ppoll`).
/// * An answer to `n` requests adds `n` if every flush of the disk so far
///   has succeeded. Failure is **sticky**: from the first failed
///   `fdatasync` on, every answer adds `n + (n << FLUSH_FAILED_SHIFT)`, and
///   the first failed one also adds `errno << FLUSH_ERRNO_SHIFT` (once for
///   the life of the disk). A read of the completion counter (which resets
///   it) thus gives: answered requests in bits 0-31, failed ones in bits
///   32-47, and the first failure's errno in bits 48-63 if it is among
///   them. Answers come in request order and the failed ones are the last
///   of each read.
/// * Ordering: an `fdatasync` that begins after a `pwrite64` returned covers
///   it, whichever thread calls it; the thread reads a request only after
///   the guest wrote it, so a request made after some writes returned is
///   answered by a flush that covers them.
///
/// Why sticky: after a failed `fdatasync` Linux may have dropped the dirty
/// pages it could not write (and marked them clean), so a later flush that
/// succeeds does not make the earlier writes durable; a flush answered
/// "done" must mean that every write before it is on the disk.
///
/// The guest may `write` the request fd, `read` the completion fd and wait
/// on the completion fd in `ppoll`; `fdatasync` on the disk's fd stays
/// allowed for a flush on the spot. A guest that ignores the flag loses
/// nothing.
pub const DEVICE_FLAG_FLUSH_EVENTFDS: u16 = 8;

/// Bytes of a value on a flush eventfd ([`DEVICE_FLAG_FLUSH_EVENTFDS`]).
pub const FLUSH_MESSAGE_LEN: usize = 8;

/// [`DEVICE_FLAG_FLUSH_EVENTFDS`]: where an answer's failed count begins.
pub const FLUSH_FAILED_SHIFT: u32 = 32;

/// [`DEVICE_FLAG_FLUSH_EVENTFDS`]: where the first failure's errno begins.
pub const FLUSH_ERRNO_SHIFT: u32 = 48;

/// [`DEVICE_FLAG_FLUSH_EVENTFDS`]: the most requests a guest keeps
/// unanswered, so that a read of the completion counter never carries
/// more failures than its 16 bits hold.
pub const FLUSH_IN_FLIGHT_MAX: u64 = 1 << 15;

/// `DeviceInfo::flags`, net: every frame read from or written to the tap
/// begins with a [`VNET_HDR_LEN`]-byte virtio-net header (legacy layout,
/// little-endian: `flags: u8, gso_type: u8, hdr_len: u16, gso_size: u16,
/// csum_start: u16, csum_offset: u16`), and the tap takes and gives TCP
/// over IPv4 segments larger than the MTU (up to 64 KiB, to be cut at
/// `gso_size`) and packets whose checksum is left to finish (`flags` bit 0,
/// from `csum_start`, stored at `csum_start + csum_offset`).
pub const DEVICE_FLAG_VNET_HDR: u16 = 2;

/// Length of the virtio-net header in front of each frame on a tap with
/// [`DEVICE_FLAG_VNET_HDR`].
pub const VNET_HDR_LEN: usize = 10;

/// Largest block transfer, in bytes, one `pread64`/`pwrite64` may move. The
/// tender's filter refuses larger ones; libos splits requests to fit. A
/// power of two, and a multiple of every sector size the tender accepts.
pub const MAX_BLOCK_TRANSFER: u64 = 1024 * 1024;

/// The transfer sizes the filter distinguishes on a disk of `sector_size`
/// bytes per sector, smallest first: one sector, 64 sectors, and
/// [`MAX_BLOCK_TRANSFER`] (capped to it).
///
/// For each tier `T` the filter allows a transfer of at most `T` bytes (a
/// whole number of sectors) at a sector-aligned offset no greater than
/// `capacity - T`, so that no allowed call reaches past the capacity. libos
/// therefore splits every request into chunks that each fit the largest tier
/// that still ends inside the disk.
pub const fn block_tiers(sector_size: u64) -> [u64; 3] {
    let mid =
        if sector_size * 64 < MAX_BLOCK_TRANSFER { sector_size * 64 } else { MAX_BLOCK_TRANSFER };
    [sector_size, mid, MAX_BLOCK_TRANSFER]
}

/// The largest transfer allowed at byte `offset` (sector aligned, below
/// `capacity`) by [`block_tiers`]: a chunk of a request must not be larger.
pub const fn block_chunk_limit(offset: u64, capacity: u64, sector_size: u64) -> u64 {
    let tiers = block_tiers(sector_size);
    let mut best = 0;
    let mut i = 0;
    while i < tiers.len() {
        if offset <= capacity && tiers[i] <= capacity - offset {
            best = tiers[i];
        }
        i += 1;
    }
    best
}

/// Smallest and largest sector sizes (`--block-sector-size`), powers of two.
pub const MIN_SECTOR_SIZE: u32 = 512;
/// See [`MIN_SECTOR_SIZE`].
pub const MAX_SECTOR_SIZE: u32 = 64 * 1024;

/// Log levels, as `BootInfo::log_level`.
pub mod log_level {
    /// Nothing is logged (`--quiet`).
    pub const OFF: u32 = 0;
    /// Errors only.
    pub const ERROR: u32 = 1;
    /// Warnings and errors (the default).
    pub const WARN: u32 = 2;
    /// Informational messages, such as the boot banner.
    pub const INFO: u32 = 3;
    /// Debugging.
    pub const DEBUG: u32 = 4;
    /// Everything.
    pub const TRACE: u32 = 5;
}

/// What the tender hands the guest. It sits at [`BOOT_REGION_START`], is
/// read-only to the guest, and its address arrives in `rdi` at the entry point.
///
/// All addresses are guest addresses (the guest is identity mapped).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInfo {
    /// [`BOOT_MAGIC`].
    pub magic: u64,
    /// [`ABI_VERSION`] of the tender.
    pub abi_version: u32,
    /// One of [`log_level`].
    pub log_level: u32,
    /// Size of guest memory in bytes: the top of the stack.
    pub mem_size: u64,
    /// First byte of the heap (page aligned, just after the image).
    pub heap_start: u64,
    /// End of the heap (exclusive): the guard region starts here.
    pub heap_end: u64,
    /// Lowest address of the stack (the guard ends here).
    pub stack_bottom: u64,
    /// Initial stack pointer (exclusive top of the stack).
    pub stack_top: u64,
    /// Number of arguments (the first is the application's path).
    pub argc: u64,
    /// Address of `argc` [`BootStr`]s.
    pub argv: u64,
    /// Number of environment entries.
    pub envc: u64,
    /// Address of `envc` [`BootStr`]s, each `KEY=VALUE`.
    pub envp: u64,
    /// Number of devices, equal to the manifest's count.
    pub device_count: u64,
    /// Address of `device_count` [`DeviceInfo`]s, in manifest order.
    pub devices: u64,
    /// 256 bits from the host's random source, different at every start:
    /// the seed of the guest's random numbers (`getrandom`, hash map keys).
    pub random: [u64; 4],
    /// The host kernel's `AT_HWCAP2`: which CPU features the kernel lets
    /// user code use ([`hwcap2`]).
    pub hwcap2: u64,
    /// One `signalfd` for each of [`EVENT_SIGNALS`], in that order, or -1
    /// for a signal the tender does not hand over (one its caller left
    /// ignored). The tender blocks these signals before the jump, so that
    /// one sent to the process waits on its fd instead of ending the
    /// process. The guest may only `ppoll` them (they count in the bound
    /// of `ppoll`'s `nfds`): `POLLIN` means the signal is pending. Nothing
    /// reads them (no `read` rule), so a pending signal stays pending and
    /// further ones of the same kind merge into it; see `docs/abi.md`,
    /// "Signals".
    pub signal_fds: [i32; 2],
    /// The address of the host vDSO's `__vdso_clock_gettime` in the
    /// process (`int (*)(clockid_t, struct timespec *)`, the C calling
    /// convention), or 0 when the tender found no vDSO or no such symbol.
    /// The guest calls it with [`VDSO_CLOCKS`] only, on a normal stack:
    /// it reads the clock without a system call, and falls back by itself
    /// to the `clock_gettime` system call (allowed for those clocks) when
    /// the host's clocksource cannot be read from user space. See
    /// `docs/abi.md`, "Clocks".
    pub vdso_clock_gettime: u64,
    /// The address of the guest's image file, mapped whole and read-only
    /// by the tender far above guest memory (as the vDSO), or 0 for none:
    /// what a guest reads as `/proc/self/exe` (std's backtraces name their
    /// frames from its symbols). See `docs/abi.md`, "The image file".
    pub image_file: u64,
    /// The length of that mapping: the file's size.
    pub image_file_len: u64,
    /// Number of files the host gives for the guest's `/etc` (`--etc`),
    /// at most [`MAX_ETC_FILES`].
    pub etc_count: u64,
    /// Address of `etc_count` [`BootFile`]s, in the boot region.
    pub etc_files: u64,
}

/// Most files the host can give for the guest's `/etc`.
pub const MAX_ETC_FILES: usize = 8;

/// Largest such file, in bytes.
pub const ETC_FILE_MAX: u64 = 64 * 1024;

/// Longest name of such a file, in bytes.
pub const ETC_NAME_MAX: usize = 64;

/// A file the host gives for the guest's `/etc` (`BootInfo::etc_files`):
/// its name under `/etc` (see [`check_etc_name`]) and its bytes (any
/// bytes, not necessarily UTF-8, at most [`ETC_FILE_MAX`]), both in the
/// boot region.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootFile {
    /// The file's name, a plain name (no `/`).
    pub name: BootStr,
    /// The file's contents.
    pub data: BootStr,
}

/// Whether `name` may name a file under the guest's `/etc`: 1 to
/// [`ETC_NAME_MAX`] bytes of `[A-Za-z0-9._-]`, not beginning with `.`
/// (so neither `.` nor `..`, nor a hidden file).
pub fn check_etc_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= ETC_NAME_MAX
        && name[0] != b'.'
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The clock ids a guest may pass to `BootInfo::vdso_clock_gettime`:
/// `CLOCK_REALTIME` and `CLOCK_MONOTONIC`, the two the filter allows the
/// `clock_gettime` system call for, which is what the vDSO falls back to.
pub const VDSO_CLOCKS: [u32; 2] = [0, 1];

/// The signals the tender hands to the guest as events, by number, in the
/// order of `BootInfo::signal_fds`: `SIGTERM` (what `kill`, container
/// runtimes and Kubernetes send to stop a process) and `SIGINT` (Ctrl-C).
pub const EVENT_SIGNALS: [u32; 2] = [15, 2];

/// Bits of `BootInfo::hwcap2` (Linux's `AT_HWCAP2` on x86_64).
pub mod hwcap2 {
    /// `RDFSBASE`/`WRFSBASE` are enabled for user code: the guest can set
    /// its thread pointer (`%fs`) without a system call.
    pub const FSGSBASE: u64 = 1 << 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout_is_stable() {
        assert_eq!(size_of::<DeviceEntry>(), 24);
        assert_eq!(size_of::<Manifest>(), 8 + 63 * 24);
        assert_eq!(size_of::<Manifest>() % 8, 0);
        assert_eq!(offset_of!(ElfNote<AbiNote>, desc), 24);
        assert_eq!(size_of::<ElfNote<AbiNote>>(), 32);
        assert_eq!(size_of::<BootInfo>(), 192);
        assert_eq!(offset_of!(BootInfo, etc_count), 176);
        assert_eq!(offset_of!(BootInfo, etc_files), 184);
        assert_eq!(size_of::<BootFile>(), 32);
        assert_eq!(offset_of!(BootInfo, vdso_clock_gettime), 152);
        assert_eq!(offset_of!(BootInfo, image_file), 160);
        assert_eq!(offset_of!(BootInfo, image_file_len), 168);
        assert_eq!(size_of::<DeviceInfo>(), 48);
    }

    #[test]
    fn manifest_round_trip() {
        let m = Manifest::build(&[
            DeviceDecl { name: "service0", kind: DeviceKind::Net },
            DeviceDecl { name: "storage", kind: DeviceKind::Block },
        ]);
        assert_eq!(m.validate(), Ok(()));
        let note = ElfNote::new(NT_NABLA_MANIFEST, m);
        // SAFETY-free view of the bytes: copy field by field as the image would hold them.
        let mut bytes = [0u8; size_of::<Manifest>()];
        bytes[0..4].copy_from_slice(&note.desc.version.to_le_bytes());
        bytes[4..8].copy_from_slice(&note.desc.count.to_le_bytes());
        for (i, d) in note.desc.devices.iter().enumerate() {
            let off = 8 + i * 24;
            bytes[off..off + 16].copy_from_slice(&d.name);
            bytes[off + 16..off + 20].copy_from_slice(&d.kind.to_le_bytes());
        }
        let back = Manifest::from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.entries()[1].name(), Ok("storage"));
    }

    #[test]
    fn manifest_validation_catches_each_fault() {
        let good = Manifest::build(&[DeviceDecl { name: "service0", kind: DeviceKind::Net }]);
        let mut m = good;
        m.version = ABI_VERSION + 1;
        assert_eq!(m.validate(), Err(ManifestError::Version(ABI_VERSION + 1)));
        let mut m = good;
        m.count = 64;
        assert_eq!(m.validate(), Err(ManifestError::TooMany(64)));
        let mut m = good;
        m.devices[0].kind = 9;
        assert_eq!(m.validate(), Err(ManifestError::Kind { index: 0, kind: 9 }));
        let mut m = good;
        m.devices[0].name[0] = b'A';
        assert!(matches!(m.validate(), Err(ManifestError::Name { index: 0, .. })));
        let mut m = good;
        m.devices[0].name[15] = b'x';
        assert!(matches!(
            m.validate(),
            Err(ManifestError::Name { index: 0, error: NameError::NotTerminated })
        ));
        let mut m = good;
        m.devices[3].kind = 1;
        assert_eq!(m.validate(), Err(ManifestError::Trailing { index: 3 }));
        let mut m = good;
        m.count = 2;
        m.devices[1] = m.devices[0];
        assert_eq!(m.validate(), Err(ManifestError::Duplicate { index: 1 }));
        let mut m = good;
        m.devices[0].reserved = 1;
        assert_eq!(m.validate(), Err(ManifestError::Reserved { index: 0 }));
    }

    #[test]
    fn block_chunks_never_reach_past_the_capacity() {
        let ss = 512;
        let cap = 100 * 1024 * 1024 + 3 * ss;
        assert_eq!(block_tiers(512), [512, 32 * 1024, MAX_BLOCK_TRANSFER]);
        assert_eq!(block_tiers(65536), [65536, MAX_BLOCK_TRANSFER, MAX_BLOCK_TRANSFER]);
        assert_eq!(block_chunk_limit(0, cap, ss), MAX_BLOCK_TRANSFER);
        assert_eq!(block_chunk_limit(cap - 3 * ss, cap, ss), ss);
        assert_eq!(block_chunk_limit(cap - 64 * ss, cap, ss), 64 * ss);
        assert_eq!(block_chunk_limit(cap, cap, ss), 0);
        let mut off = cap - 5000 * ss;
        while off < cap {
            let c = block_chunk_limit(off, cap, ss);
            assert!(c >= ss && off + c <= cap);
            off += c;
        }
    }

    #[test]
    fn etc_names() {
        for good in ["hosts", "resolv.conf", "hostname", "nsswitch.conf", "a-b_c"] {
            assert!(check_etc_name(good.as_bytes()), "{good}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "/hosts", "a b", "a\0b", "é"] {
            assert!(!check_etc_name(bad.as_bytes()), "{bad}");
        }
        assert!(!check_etc_name(&[b'a'; ETC_NAME_MAX + 1]));
        assert!(check_etc_name(&[b'a'; ETC_NAME_MAX]));
    }

    #[test]
    fn names() {
        assert_eq!(check_name(b"service0"), Ok(()));
        assert_eq!(check_name(b""), Err(NameError::Empty));
        assert_eq!(check_name(b"0abc"), Err(NameError::BadCharacter));
        assert_eq!(check_name(b"a-b"), Err(NameError::BadCharacter));
        assert_eq!(check_name(b"abcdefghijklmnop"), Err(NameError::TooLong));
    }
}
