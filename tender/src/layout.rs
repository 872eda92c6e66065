//! Where everything goes in guest memory, for a given `--mem`.
//!
//! ```text
//!   0 .. 64 KiB            never mapped (null dereferences fault)
//!   64 KiB .. 1 MiB        boot region: boot info, argv, env, device table (read-only)
//!   1 MiB .. image end     the ELF segments, mapped from the file
//!   image end .. heap end  heap, anonymous, MAP_NORESERVE
//!   heap end .. stack      guard, PROT_NONE
//!   stack .. mem           stack; the guest starts with rsp = mem
//! ```
//!
//! Pure arithmetic, so that it can be checked without mapping anything.

use abi::{BOOT_REGION_END, BOOT_REGION_START, GUARD_SIZE, PAGE_SIZE, STACK_SIZE};

/// Smallest heap the tender will start a guest with.
pub const MIN_HEAP: u64 = 1024 * 1024;

/// Guest memory layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Total guest memory: the top of the stack.
    pub mem_size: u64,
    /// Boot region.
    pub boot_start: u64,
    /// End of the boot region (exclusive).
    pub boot_end: u64,
    /// Start of the heap: the image's end, page aligned.
    pub heap_start: u64,
    /// End of the heap and start of the guard.
    pub heap_end: u64,
    /// End of the guard and bottom of the stack.
    pub stack_bottom: u64,
    /// Top of the stack.
    pub stack_top: u64,
}

/// Why a layout is impossible.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// `--mem` outside the accepted range.
    #[error("--mem {mib}: guest memory must be between {min} and {max} MiB")]
    MemRange { mib: u64, min: u64, max: u64 },
    /// The image leaves no room for the minimum heap.
    #[error(
        "the image ends at {image_end:#x}, leaving no room for a 1 MiB heap, the guard and the \
         stack in {mem_mib} MiB of guest memory; give it more with --mem"
    )]
    TooSmall { image_end: u64, mem_mib: u64 },
}

impl Layout {
    /// Highest address an image may reach with `mem_size` bytes of guest
    /// memory: the rest is the minimum heap, the guard and the stack.
    pub fn image_limit(mem_size: u64) -> u64 {
        mem_size.saturating_sub(STACK_SIZE + GUARD_SIZE + MIN_HEAP)
    }

    /// Guest memory size in bytes for `--mem MIB`, checked.
    pub fn mem_bytes(mib: u64) -> Result<u64, LayoutError> {
        if !(abi::MIN_MEM_MIB..=abi::MAX_MEM_MIB).contains(&mib) {
            return Err(LayoutError::MemRange {
                mib,
                min: abi::MIN_MEM_MIB,
                max: abi::MAX_MEM_MIB,
            });
        }
        Ok(mib << 20)
    }

    /// The layout for an image ending at `image_end` (page aligned) in
    /// `mem_size` bytes of guest memory.
    pub fn new(image_end: u64, mem_size: u64) -> Result<Self, LayoutError> {
        debug_assert_eq!(image_end % PAGE_SIZE, 0);
        if image_end > Self::image_limit(mem_size) {
            return Err(LayoutError::TooSmall { image_end, mem_mib: mem_size >> 20 });
        }
        let stack_bottom = mem_size - STACK_SIZE;
        Ok(Self {
            mem_size,
            boot_start: BOOT_REGION_START,
            boot_end: BOOT_REGION_END,
            heap_start: image_end,
            heap_end: stack_bottom - GUARD_SIZE,
            stack_bottom,
            stack_top: mem_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout() {
        let mem = Layout::mem_bytes(64).unwrap();
        let l = Layout::new(0x106000, mem).unwrap();
        assert_eq!(l.stack_top, 64 << 20);
        assert_eq!(l.stack_bottom, (64 << 20) - STACK_SIZE);
        assert_eq!(l.heap_end, l.stack_bottom - GUARD_SIZE);
        assert_eq!(l.heap_start, 0x106000);
        assert!(l.heap_end - l.heap_start >= MIN_HEAP);
        assert!(l.boot_end <= l.heap_start);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert!(matches!(Layout::mem_bytes(1), Err(LayoutError::MemRange { .. })));
        assert!(matches!(Layout::mem_bytes(1 << 20), Err(LayoutError::MemRange { .. })));
        let mem = Layout::mem_bytes(4).unwrap();
        let limit = Layout::image_limit(mem);
        assert!(Layout::new(limit, mem).is_ok());
        assert!(matches!(Layout::new(limit + PAGE_SIZE, mem), Err(LayoutError::TooSmall { .. })));
    }
}
