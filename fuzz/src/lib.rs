//! What the fuzz targets share: the guest's boot region, mapped in the fuzz
//! process where the tender maps it, and filled by the tender's own encoder.

use std::sync::OnceLock;

use abi::{BOOT_REGION_END, BOOT_REGION_START, DeviceInfo};
use tender::boot::{BootParams, TooLarge, build};
use tender::layout::Layout;

/// Size of the boot region.
pub const REGION_LEN: usize = (BOOT_REGION_END - BOOT_REGION_START) as usize;

/// The boot region, mapped read-write at the guest's address in this
/// process (once; it stays mapped).
pub fn region() -> &'static mut [u8] {
    static MAPPED: OnceLock<usize> = OnceLock::new();
    let addr = *MAPPED.get_or_init(|| {
        // SAFETY: a fresh anonymous mapping at a fixed address, which
        // MAP_FIXED_NOREPLACE refuses if anything is mapped there.
        let p = unsafe {
            libc::mmap(
                BOOT_REGION_START as *mut libc::c_void,
                REGION_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        assert_eq!(p as u64, BOOT_REGION_START, "cannot map the boot region");
        p as usize
    });
    // SAFETY: the mapping is ours and never unmapped; the fuzzer runs one
    // input at a time on one thread, and the targets hold no reference
    // into the region across inputs.
    unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, REGION_LEN) }
}

/// Encodes `args`, `env` and `devices` with the tender's `boot::build` for
/// a 64 MiB guest, and writes them into the region; returns the encoded
/// length.
pub fn write_boot_region(
    args: &[String],
    env: &[String],
    devices: &[DeviceInfo],
    log_level: u32,
) -> Result<usize, TooLarge> {
    write_boot_region_etc(args, env, devices, &[], log_level)
}

/// [`write_boot_region`] with files for the guest's `/etc` (`--etc`).
pub fn write_boot_region_etc(
    args: &[String],
    env: &[String],
    devices: &[DeviceInfo],
    etc: &[(String, Vec<u8>)],
    log_level: u32,
) -> Result<usize, TooLarge> {
    let layout = Layout::new(0x11_0000, 64 << 20).expect("a small image fits in 64 MiB");
    let params = BootParams {
        args,
        env,
        devices,
        log_level,
        random: [0; 4],
        hwcap2: 0,
        signal_fds: [-1; 2],
        vdso_clock_gettime: 0,
        image_file: (0, 0),
        etc,
    };
    let bytes = build(&params, &layout)?;
    assert!(bytes.len() <= REGION_LEN);
    let region = region();
    region[..bytes.len()].copy_from_slice(&bytes);
    region[bytes.len()..].fill(0);
    Ok(bytes.len())
}

/// A device entry for the boot info.
pub fn device(name: &str, kind: abi::DeviceKind, fd: i32) -> DeviceInfo {
    let mut d = DeviceInfo {
        name: [0; 16],
        kind: kind as u32,
        fd,
        mtu: 1500,
        sector_size: 512,
        capacity: 0,
        mac: [0x02, 0, 0, 0, 0, 0x02],
        flags: 0,
    };
    let n = name.len().min(abi::DEVICE_NAME_MAX);
    d.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    d
}
