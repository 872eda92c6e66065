//! The boot info: what the tender tells the guest at start.
//!
//! # Safety
//!
//! The tender writes the boot info, the argument and environment tables and
//! their strings into the boot region (`abi::BOOT_REGION_START` to
//! `abi::BOOT_REGION_END`), makes it read-only and never unmaps it: it lives
//! as long as the process. This module turns those addresses into `'static`
//! references only after checking that each object lies wholly inside the
//! boot region and is suitably aligned, so that a tender bug cannot make the
//! guest read outside it. It hands the clocks the address of the vDSO's
//! `clock_gettime` that the tender found (`hypercall::use_vdso_clock`),
//! unless that lies inside guest memory, where no vDSO can be.

#![allow(unsafe_code)]

use abi::{BOOT_REGION_END, BOOT_REGION_START, BootInfo, BootStr};
use core::sync::atomic::{AtomicPtr, Ordering};

static BOOT: AtomicPtr<BootInfo> = AtomicPtr::new(core::ptr::null_mut());

/// Checks that `count` objects of type `T` at `addr` lie inside the boot region.
fn in_region<T>(addr: u64, count: u64) -> bool {
    let Some(size) = count.checked_mul(core::mem::size_of::<T>() as u64) else {
        return false;
    };
    let Some(end) = addr.checked_add(size) else {
        return false;
    };
    addr >= BOOT_REGION_START
        && end <= BOOT_REGION_END
        && addr.is_multiple_of(core::mem::align_of::<T>() as u64)
}

/// Records the boot info at `addr` if it is valid: inside the boot region,
/// the right magic and the ABI version this libos was built for.
#[cfg(not(test))]
pub(crate) fn init(addr: usize) -> Option<&'static BootInfo> {
    if !in_region::<BootInfo>(addr as u64, 1) {
        return None;
    }
    let ptr = addr as *mut BootInfo;
    // SAFETY: the whole BootInfo lies in the boot region, which is mapped
    // read-only for the life of the process, and the pointer is aligned.
    let info: &'static BootInfo = unsafe { &*ptr };
    if info.magic != abi::BOOT_MAGIC || info.abi_version != abi::ABI_VERSION {
        return None;
    }
    BOOT.store(ptr, Ordering::Release);
    // The vDSO lies far above guest memory, among the tender's mappings; an
    // address inside the guest's memory is no vDSO, and is never called.
    if info.vdso_clock_gettime >= info.mem_size {
        // SAFETY: the tender found this address in its own vDSO, which the
        // kernel mapped in this process and nothing unmaps (docs/abi.md,
        // "Clocks"); it gives 0 when it found none.
        unsafe { crate::hypercall::use_vdso_clock(info.vdso_clock_gettime) };
    }
    Some(info)
}

/// The guest's image file, which the tender mapped read-only far above
/// guest memory (`BootInfo::image_file`); empty if there is none, or if
/// the range given is not above guest memory (then it is not that
/// mapping, and is never read).
pub(crate) fn image_file() -> &'static [u8] {
    let Some(i) = info() else { return &[] };
    let above = i.image_file >= i.mem_size
        && i.image_file.checked_add(i.image_file_len).is_some_and(|end| end <= 1 << 47);
    if i.image_file == 0 || i.image_file_len == 0 || !above {
        return &[];
    }
    // SAFETY: the tender maps the file whole and read-only at this address
    // before the jump and never unmaps it (docs/abi.md, "The image
    // file"); it lies outside guest memory (checked).
    unsafe { core::slice::from_raw_parts(i.image_file as *const u8, i.image_file_len as usize) }
}

/// The boot info, once the runtime has checked it (never in host tests).
pub(crate) fn info() -> Option<&'static BootInfo> {
    let ptr = BOOT.load(Ordering::Acquire);
    // SAFETY: BOOT is null or was set by `init` to a checked, 'static BootInfo.
    unsafe { ptr.as_ref() }
}

/// The table of `count` strings at `addr`; empty if it is not in the region.
pub(crate) fn strs(addr: u64, count: u64) -> &'static [BootStr] {
    if count == 0 || !in_region::<BootStr>(addr, count) {
        return &[];
    }
    // SAFETY: the table lies in the boot region (checked), which is 'static
    // and read-only, and addr is aligned for BootStr.
    unsafe { core::slice::from_raw_parts(addr as *const BootStr, count as usize) }
}

/// The device table of the boot info; empty if it is not in the region.
#[cfg_attr(test, allow(dead_code))]
pub(crate) fn devices() -> &'static [abi::DeviceInfo] {
    let Some(i) = info() else { return &[] };
    if i.device_count == 0 || !in_region::<abi::DeviceInfo>(i.devices, i.device_count) {
        return &[];
    }
    // SAFETY: the table lies in the boot region (checked), which is 'static
    // and read-only, and its address is aligned for DeviceInfo.
    unsafe {
        core::slice::from_raw_parts(i.devices as *const abi::DeviceInfo, i.device_count as usize)
    }
}

/// The files the host gave for the guest's `/etc` (`BootInfo::etc_files`):
/// name and bytes of each entry that lies in the region and has a valid
/// name (`abi::check_etc_name`); at most `abi::MAX_ETC_FILES`.
pub(crate) fn etc_files() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    let table: &'static [abi::BootFile] = match info() {
        Some(i)
            if i.etc_count > 0
                && i.etc_count <= abi::MAX_ETC_FILES as u64
                && in_region::<abi::BootFile>(i.etc_files, i.etc_count) =>
        {
            // SAFETY: the table lies in the boot region (checked), which is
            // 'static and read-only, and its address is aligned for BootFile.
            unsafe {
                core::slice::from_raw_parts(
                    i.etc_files as *const abi::BootFile,
                    i.etc_count as usize,
                )
            }
        }
        _ => &[],
    };
    table.iter().filter_map(|f| {
        let name = str(&f.name).filter(|n| abi::check_etc_name(n.as_bytes()))?;
        let data = bytes(&f.data).filter(|d| d.len() as u64 <= abi::ETC_FILE_MAX)?;
        Some((name, data))
    })
}

/// The bytes a table entry describes, if they lie in the region.
fn bytes(s: &BootStr) -> Option<&'static [u8]> {
    if s.len == 0 {
        return Some(&[]);
    }
    if !in_region::<u8>(s.ptr, s.len) {
        return None;
    }
    // SAFETY: the bytes lie in the boot region (checked), which is 'static
    // and read-only.
    Some(unsafe { core::slice::from_raw_parts(s.ptr as *const u8, s.len as usize) })
}

/// The string a table entry describes, if it lies in the region and is UTF-8.
pub(crate) fn str(s: &BootStr) -> Option<&'static str> {
    if !in_region::<u8>(s.ptr, s.len) {
        return None;
    }
    // SAFETY: the bytes lie in the boot region (checked), which is 'static
    // and read-only.
    let bytes = unsafe { core::slice::from_raw_parts(s.ptr as *const u8, s.len as usize) };
    core::str::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_checks() {
        assert!(in_region::<BootInfo>(BOOT_REGION_START, 1));
        assert!(!in_region::<BootInfo>(BOOT_REGION_START - 8, 1));
        assert!(!in_region::<BootInfo>(BOOT_REGION_START + 4, 1));
        assert!(!in_region::<u8>(BOOT_REGION_END - 1, 2));
        assert!(!in_region::<BootStr>(BOOT_REGION_START, u64::MAX));
        assert!(!in_region::<u8>(u64::MAX, 2));
        assert!(strs(0, 3).is_empty());
        assert_eq!(str(&BootStr { ptr: 8, len: 1 }), None);
    }
}
