//! What the unwinder (libgcc's, linked by `link_std_guest`) asks the
//! dynamic linker: where the image is and where its unwind tables are.
//! A guest is one static image, so the answers come from the linker
//! script's symbols: `_dl_find_object` for the unwinder, and
//! `dl_iterate_phdr` (std's backtraces) over program headers made up from
//! the same symbols (the ELF header and its table are not mapped).

use super::{c_int, c_void, size_t};

#[cfg(not(test))]
unsafe extern "C" {
    static __executable_start: u8;
    static __etext: u8;
    static __image_end: u8;
    static __eh_frame_hdr_start: u8;
}

/// glibc's `struct dl_find_object`.
#[repr(C)]
#[derive(Debug)]
pub struct DlFindObject {
    flags: u64,
    map_start: *mut c_void,
    map_end: *mut c_void,
    link_map: *mut c_void,
    eh_frame: *mut c_void,
    reserved: [u64; 7],
}

/// The image's bounds and its `.eh_frame_hdr`.
#[cfg(not(test))]
fn image() -> (usize, usize, usize) {
    (
        (&raw const __executable_start) as usize,
        (&raw const __image_end) as usize,
        (&raw const __eh_frame_hdr_start) as usize,
    )
}

#[cfg(test)]
fn image() -> (usize, usize, usize) {
    (0x10_0000, 0x20_0000, 0x15_0000)
}

/// `_dl_find_object(pc, result)`: the image, if `pc` is in it.
///
/// # Safety
///
/// `result` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn _dl_find_object(pc: *mut c_void, result: *mut DlFindObject) -> c_int {
    let (start, end, eh) = image();
    if !(start..end).contains(&(pc as usize)) {
        return -1;
    }
    // SAFETY: the caller guarantees result is writable.
    unsafe {
        result.write(DlFindObject {
            flags: 0,
            map_start: start as *mut c_void,
            map_end: end as *mut c_void,
            link_map: core::ptr::null_mut(),
            eh_frame: eh as *mut c_void,
            reserved: [0; 7],
        })
    };
    0
}

/// `dl_iterate_phdr(callback, data)`: calls `callback` once, for the
/// image, with a `PT_LOAD` covering it and its `PT_GNU_EH_FRAME`.
///
/// # Safety
///
/// `callback` is a function of the C signature.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn dl_iterate_phdr(
    callback: Option<unsafe extern "C" fn(*mut ::libc::dl_phdr_info, size_t, *mut c_void) -> c_int>,
    data: *mut c_void,
) -> c_int {
    let Some(callback) = callback else { return 0 };
    let (start, end, eh) = image();
    let load = ::libc::Elf64_Phdr {
        p_type: ::libc::PT_LOAD,
        p_flags: ::libc::PF_R | ::libc::PF_X,
        p_offset: 0,
        p_vaddr: start as u64,
        p_paddr: start as u64,
        p_filesz: (end - start) as u64,
        p_memsz: (end - start) as u64,
        p_align: 4096,
    };
    let eh_frame = ::libc::Elf64_Phdr {
        p_type: ::libc::PT_GNU_EH_FRAME,
        p_flags: ::libc::PF_R,
        p_offset: 0,
        p_vaddr: eh as u64,
        p_paddr: eh as u64,
        p_filesz: 0,
        p_memsz: 0,
        p_align: 4,
    };
    let phdrs = [load, eh_frame];
    // SAFETY: dl_phdr_info is plain data; zeroes are valid for its
    // counters and TLS fields.
    let mut info: ::libc::dl_phdr_info = unsafe { core::mem::zeroed() };
    info.dlpi_addr = 0;
    info.dlpi_name = c"".as_ptr();
    info.dlpi_phdr = phdrs.as_ptr();
    info.dlpi_phnum = phdrs.len() as u16;
    info.dlpi_adds = 1;
    // SAFETY: info and phdrs live across the call, as the C contract asks.
    unsafe { callback(&mut info, size_of::<::libc::dl_phdr_info>(), data) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_found_by_address() {
        // SAFETY: dlfo is zero-initialisable plain data, writable.
        unsafe {
            let mut dlfo: DlFindObject = core::mem::zeroed();
            assert_eq!(_dl_find_object(0x10_0010 as *mut c_void, &mut dlfo), 0);
            assert_eq!(dlfo.eh_frame as usize, 0x15_0000);
            assert_eq!(_dl_find_object(0x30_0000 as *mut c_void, &mut dlfo), -1);
        }
    }
}
