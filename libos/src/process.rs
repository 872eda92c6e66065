//! Ending the guest: [`exit`], and how `main`'s return value becomes the
//! exit status ([`Termination`]).
//!
//! Statuses follow `docs/design.md`: what `main` returns or passes to `exit`
//! (0-254), 255 after a panic.

use core::fmt::Debug;

/// The guest's memory, as the tender laid it out (see `docs/abi.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// Total guest memory in bytes (`--mem`).
    pub size: u64,
    /// The heap the allocator manages.
    pub heap: core::ops::Range<u64>,
    /// The stack; the guard lies just below `stack.start`.
    pub stack: core::ops::Range<u64>,
}

/// The guest's memory layout (all zero on the host, in unit tests).
pub fn memory() -> Memory {
    match crate::rt::boot::info() {
        Some(i) => Memory {
            size: i.mem_size,
            heap: i.heap_start..i.heap_end,
            stack: i.stack_bottom..i.stack_top,
        },
        None => Memory { size: 0, heap: 0..0, stack: 0..0 },
    }
}

/// Ends the guest with `code` (the host sees `code & 0xff`).
pub fn exit(code: i32) -> ! {
    crate::hypercall::exit_group(code)
}

/// What an application's `main` may return, as std's `Termination`.
pub trait Termination {
    /// The exit status this value stands for.
    fn report(self) -> i32;
}

impl Termination for () {
    fn report(self) -> i32 {
        0
    }
}

impl Termination for i32 {
    fn report(self) -> i32 {
        self
    }
}

impl Termination for u8 {
    fn report(self) -> i32 {
        i32::from(self)
    }
}

impl Termination for core::convert::Infallible {
    fn report(self) -> i32 {
        match self {}
    }
}

impl<T: Termination, E: Debug> Termination for Result<T, E> {
    fn report(self) -> i32 {
        match self {
            Ok(t) => t.report(),
            Err(e) => {
                crate::println!("Error: {e:?}");
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(().report(), 0);
        assert_eq!(7i32.report(), 7);
        assert_eq!(3u8.report(), 3);
        assert_eq!(Ok::<u8, ()>(5).report(), 5);
    }
}
