//! Threads: thread-local storage, the thread control block, and (to come
//! in this file) cooperative threads with `pthread_*` and the futex.
//!
//! # Thread-local storage
//!
//! std uses the initial-exec/local-exec TLS model of x86_64 (variant II):
//! `%fs` points at the thread control block ([`Tcb`]), and the thread's
//! TLS block lies just below it, a copy of the image's template
//! (`.tdata`, then `.tbss` zeroed; `ld-scripts/std-guest.ld` exports its
//! bounds). The guest sets `%fs` itself with `wrfsbase`, which the kernel
//! enables for user code where the CPU has FSGSBASE (the tender passes
//! `AT_HWCAP2`): no system call, so thread switches cost none either.

use core::cell::Cell;

use super::c_int;

/// The thread control block, at `%fs:0`. Its first words follow the
/// x86_64 ABI's TCB header as compiled code expects it: a pointer to
/// itself at offset 0 (code reads `%fs:0` to find the thread pointer) and
/// the stack protector's canary at offset 0x28.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Tcb {
    self_ptr: *mut Tcb,
    dtv: usize,
    reserved: [usize; 3],
    stack_guard: usize,
    pointer_guard: usize,
    /// The thread's `errno`.
    errno: Cell<c_int>,
}

#[cfg(not(test))]
mod tls {
    use super::*;
    use alloc::alloc::{Layout, alloc_zeroed};

    unsafe extern "C" {
        static __tls_start: u8;
        static __tls_filesz: u8;
        static __tls_memsz: u8;
        static __tls_align: u8;
    }

    /// The image's TLS template: its start, file size, memory size and
    /// alignment (from the linker script's symbols: their addresses are
    /// the values).
    fn template() -> (*const u8, usize, usize, usize) {
        // Only the symbols' addresses are taken, never their contents.
        let start = &raw const __tls_start;
        let filesz = (&raw const __tls_filesz) as usize;
        let memsz = (&raw const __tls_memsz) as usize;
        let align = ((&raw const __tls_align) as usize).max(1);
        (start, filesz, memsz, align)
    }

    /// The size of a thread's TLS block below the TCB (what the linker
    /// subtracts from `%fs` for local-exec accesses).
    pub fn block_size() -> usize {
        let (_, _, memsz, align) = template();
        memsz.next_multiple_of(align.max(1))
    }

    /// A new thread's TLS area: the block, initialised from the template,
    /// and its TCB; returns the thread pointer, or None without memory.
    pub fn new_area(canary: usize) -> Option<*mut Tcb> {
        let (start, filesz, _, align) = template();
        let below = block_size();
        let tcb_align = core::mem::align_of::<Tcb>().max(align);
        let size = below.next_multiple_of(tcb_align) + core::mem::size_of::<Tcb>();
        let layout = Layout::from_size_align(size, tcb_align).ok()?;
        // SAFETY: layout has a non-zero size (the TCB).
        let base = unsafe { alloc_zeroed(layout) };
        if base.is_null() {
            return None;
        }
        let tp = (base as usize + below.next_multiple_of(tcb_align)) as *mut Tcb;
        let block = (tp as usize - below) as *mut u8;
        // SAFETY: the template's filesz bytes are in the image (the tender
        // checked the PT_TLS lies in a loaded segment); block..tp lies in
        // the allocation; the TCB is aligned and inside it.
        unsafe {
            core::ptr::copy_nonoverlapping(start, block, filesz);
            tp.write(Tcb {
                self_ptr: tp,
                dtv: 0,
                reserved: [0; 3],
                stack_guard: canary,
                pointer_guard: 0,
                errno: Cell::new(0),
            });
        }
        Some(tp)
    }

    /// Makes `tp` the calling thread's thread pointer.
    ///
    /// # Safety
    ///
    /// `tp` comes from [`new_area`] and lives as long as it is current.
    pub unsafe fn set_thread_pointer(tp: *mut Tcb) {
        // SAFETY: wrfsbase only changes %fs's base; the caller guarantees
        // tp is a live TCB, and the start-up checked that the kernel
        // enabled FSGSBASE for user code.
        unsafe { core::arch::asm!("wrfsbase {}", in(reg) tp, options(nostack, preserves_flags)) };
    }

    /// The calling thread's TCB.
    pub fn current() -> *mut Tcb {
        let tp: *mut Tcb;
        // SAFETY: reads the TCB's self pointer at %fs:0, which start-up
        // set before any code that calls this runs.
        unsafe {
            core::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags))
        };
        tp
    }
}

#[cfg(not(test))]
pub use tls::{block_size, new_area, set_thread_pointer};

/// The calling thread's `errno`.
#[cfg(not(test))]
pub fn errno_cell() -> &'static Cell<c_int> {
    // SAFETY: the current TCB lives as long as its thread, and only that
    // thread reaches it through %fs.
    unsafe { &(*tls::current()).errno }
}

/// The calling thread's `errno` (host unit tests: a thread-local of the
/// test's own).
#[cfg(test)]
pub fn errno_cell() -> &'static Cell<c_int> {
    extern crate std;
    std::thread_local!(static ERRNO: &'static Cell<c_int> = std::boxed::Box::leak(std::boxed::Box::new(Cell::new(0))));
    ERRNO.with(|e| *e)
}

// ---------------------------------------------------------------------
// The main thread (threads of their own are still to come: until then,
// pthread_create fails with EAGAIN, as when a process may have no more).

use alloc::vec::Vec;

use super::start::Lock;
use super::{c_void, size_t};

/// The main thread's stack, as the tender laid it out.
static MAIN_STACK: Lock<(u64, u64)> = Lock::new((0, 0));

/// TLS destructors registered with `__cxa_thread_atexit_impl` by the
/// thread (the main thread only, for now), run at its exit, last first.
static TLS_DTORS: Lock<Vec<(unsafe extern "C" fn(*mut c_void), *mut c_void)>> =
    Lock::new(Vec::new());

/// Records the main thread's stack (for `pthread_getattr_np`).
pub fn init_main(bottom: u64, top: u64) {
    MAIN_STACK.with(|s| *s = (bottom, top));
}

/// Runs the calling thread's TLS destructors (at its exit).
pub fn run_tls_destructors() {
    // A destructor may register others: run until none is left.
    while let Some((f, arg)) = TLS_DTORS.with(|d| d.pop()) {
        // SAFETY: registered by __cxa_thread_atexit_impl, whose caller
        // promised f may be called with arg at the thread's exit.
        unsafe { f(arg) };
    }
}

/// Parks the calling thread until `deadline`.
pub fn sleep_until(deadline: libos::time::Instant) {
    while libos::time::Instant::now() < deadline {
        libos::task::idle(Some(deadline));
    }
}

/// Parks the calling thread until something may have changed (a device
/// event, another thread's progress) or `deadline` passes.
pub fn wait_for_events(deadline: Option<libos::time::Instant>) {
    libos::task::idle(deadline);
}

/// `__cxa_thread_atexit_impl(dtor, obj, dso)`: runs `dtor(obj)` when the
/// calling thread exits (std's `thread_local!` destructors).
///
/// # Safety
///
/// `dtor` may be called with `obj` at the thread's exit.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __cxa_thread_atexit_impl(
    dtor: unsafe extern "C" fn(*mut c_void),
    obj: *mut c_void,
    _dso: *mut c_void,
) -> c_int {
    TLS_DTORS.with(|d| {
        if d.try_reserve(1).is_err() {
            return -1;
        }
        d.push((dtor, obj));
        0
    })
}

/// `pthread_self()`: the calling thread's TCB address.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_self() -> ::libc::pthread_t {
    #[cfg(not(test))]
    return tls::current() as ::libc::pthread_t;
    #[cfg(test)]
    return 1;
}

/// `pthread_getattr_np(thread, attr)`: the thread's stack, which std asks
/// for to know where the main thread's guard is.
///
/// # Safety
///
/// `attr` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_getattr_np(
    _thread: ::libc::pthread_t,
    attr: *mut ::libc::pthread_attr_t,
) -> c_int {
    let (bottom, top) = MAIN_STACK.with(|s| *s);
    // SAFETY: the caller guarantees attr is writable; the attribute is
    // our own layout (Attr), which fits in pthread_attr_t.
    unsafe {
        attr.cast::<Attr>().write(Attr { stack: bottom as usize, size: (top - bottom) as usize })
    };
    0
}

/// What this library keeps in a `pthread_attr_t`.
#[repr(C)]
struct Attr {
    stack: usize,
    size: usize,
}

const _: () = assert!(size_of::<Attr>() <= size_of::<::libc::pthread_attr_t>());

/// `pthread_attr_init(attr)`: the default stack size (2 MiB, as std's
/// default for spawned threads).
///
/// # Safety
///
/// `attr` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_attr_init(attr: *mut ::libc::pthread_attr_t) -> c_int {
    // SAFETY: the caller guarantees attr is writable; Attr fits in it.
    unsafe { attr.cast::<Attr>().write(Attr { stack: 0, size: 2 << 20 }) };
    0
}

/// `pthread_attr_destroy(attr)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_attr_destroy(_attr: *mut ::libc::pthread_attr_t) -> c_int {
    0
}

/// `pthread_attr_getstack(attr, addr, size)`.
///
/// # Safety
///
/// `attr` was set by this library; `addr` and `size` are writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_attr_getstack(
    attr: *const ::libc::pthread_attr_t,
    addr: *mut *mut c_void,
    size: *mut size_t,
) -> c_int {
    // SAFETY: the caller guarantees the pointers; attr holds an Attr.
    unsafe {
        let a = attr.cast::<Attr>().read();
        addr.write(a.stack as *mut c_void);
        size.write(a.size);
    }
    0
}

/// `pthread_attr_getstacksize(attr, size)`.
///
/// # Safety
///
/// `attr` was set by this library; `size` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_attr_getstacksize(
    attr: *const ::libc::pthread_attr_t,
    size: *mut size_t,
) -> c_int {
    // SAFETY: the caller guarantees the pointers; attr holds an Attr.
    unsafe { size.write(attr.cast::<Attr>().read().size) };
    0
}

/// `pthread_attr_setstacksize(attr, size)`.
///
/// # Safety
///
/// `attr` was set by this library.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_attr_setstacksize(
    attr: *mut ::libc::pthread_attr_t,
    size: size_t,
) -> c_int {
    if size < 16384 {
        return ::libc::EINVAL;
    }
    // SAFETY: the caller guarantees attr holds an Attr.
    unsafe { (*attr.cast::<Attr>()).size = size };
    0
}

/// `pthread_create`: not yet (`EAGAIN`, as when no thread can be made).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_create(
    _thread: *mut ::libc::pthread_t,
    _attr: *const ::libc::pthread_attr_t,
    _start: extern "C" fn(*mut c_void) -> *mut c_void,
    _arg: *mut c_void,
) -> c_int {
    ::libc::EAGAIN
}

/// `syscall(number, ...)`: what std calls directly. `futex` (std's
/// mutexes, condition variables, `park`), `gettid`; anything else is
/// `ENOSYS`, which std handles (e.g. `statx` falls back to `stat64`).
/// Declared with six integer arguments: on x86_64 a variadic call passes
/// them in the same registers.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn syscall(
    number: ::libc::c_long,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    _a5: usize,
    _a6: usize,
) -> ::libc::c_long {
    match number {
        ::libc::SYS_gettid => 1,
        ::libc::SYS_futex => {
            futex(a1 as *const u32, a2 as c_int, a3 as u32, a4 as *const ::libc::timespec)
        }
        _ => ::libc::c_long::from(super::fail(::libc::ENOSYS)),
    }
}

/// The futex with one thread: a wait whose value matches sleeps until
/// its timeout (nobody else can wake it); a wake wakes nobody.
fn futex(
    word: *const u32,
    op: c_int,
    val: u32,
    timeout: *const ::libc::timespec,
) -> ::libc::c_long {
    let cmd = op & !(::libc::FUTEX_PRIVATE_FLAG | ::libc::FUTEX_CLOCK_REALTIME);
    match cmd {
        ::libc::FUTEX_WAIT | ::libc::FUTEX_WAIT_BITSET => {
            // SAFETY: std passes the address of a live atomic u32.
            let current = unsafe { core::ptr::read_volatile(word) };
            if current != val {
                return ::libc::c_long::from(super::fail(::libc::EAGAIN));
            }
            if timeout.is_null() {
                // Nobody can ever wake this thread: a deadlock.
                libos::console::write_all(b"libos-std: deadlock: the only thread waits forever\n");
                super::start::abort();
            }
            // SAFETY: a non-null timeout points to a timespec.
            let Some(d) = super::time::duration(unsafe { &*timeout }) else {
                return ::libc::c_long::from(super::fail(::libc::EINVAL));
            };
            let deadline = if cmd == ::libc::FUTEX_WAIT_BITSET {
                // Absolute, on the monotonic clock.
                let now = libos::hypercall::clock_gettime(libos::hypercall::Clock::Monotonic);
                libos::time::Instant::now() + d.saturating_sub(now)
            } else {
                libos::time::Instant::now() + d
            };
            sleep_until(deadline);
            ::libc::c_long::from(super::fail(::libc::ETIMEDOUT))
        }
        ::libc::FUTEX_WAKE | ::libc::FUTEX_WAKE_BITSET => 0,
        _ => ::libc::c_long::from(super::fail(::libc::ENOSYS)),
    }
}

/// `sched_yield()`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn sched_yield() -> c_int {
    0
}

/// Keys of `pthread_key_create`: their destructors (or none), and whether
/// the key is in use. Values live per thread ([`KEY_VALUES`]).
static KEYS: Lock<Vec<Option<Option<unsafe extern "C" fn(*mut c_void)>>>> = Lock::new(Vec::new());

/// The calling thread's key values (the main thread's, for now).
static KEY_VALUES: Lock<Vec<*mut c_void>> = Lock::new(Vec::new());

/// How many keys a program may create (glibc's `PTHREAD_KEYS_MAX`).
const KEYS_MAX: usize = 1024;

/// `pthread_key_create(key, dtor)`.
///
/// # Safety
///
/// `key` is writable; `dtor`, if any, may be called with a value at a
/// thread's exit.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_key_create(
    key: *mut ::libc::pthread_key_t,
    dtor: Option<unsafe extern "C" fn(*mut c_void)>,
) -> c_int {
    KEYS.with(|keys| {
        let i = match keys.iter().position(Option::is_none) {
            Some(i) => i,
            None if keys.len() < KEYS_MAX && keys.try_reserve(1).is_ok() => {
                keys.push(None);
                keys.len() - 1
            }
            None => return ::libc::EAGAIN,
        };
        keys[i] = Some(dtor);
        // SAFETY: the caller guarantees key is writable.
        unsafe { key.write(i as ::libc::pthread_key_t) };
        0
    })
}

/// `pthread_key_delete(key)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_key_delete(key: ::libc::pthread_key_t) -> c_int {
    let i = key as usize;
    let ok = KEYS.with(|keys| match keys.get_mut(i) {
        Some(k @ Some(_)) => {
            *k = None;
            true
        }
        _ => false,
    });
    if !ok {
        return ::libc::EINVAL;
    }
    KEY_VALUES.with(|v| {
        if let Some(slot) = v.get_mut(i) {
            *slot = core::ptr::null_mut();
        }
    });
    0
}

/// `pthread_setspecific(key, value)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_setspecific(key: ::libc::pthread_key_t, value: *const c_void) -> c_int {
    let i = key as usize;
    if !KEYS.with(|keys| matches!(keys.get(i), Some(Some(_)))) {
        return ::libc::EINVAL;
    }
    KEY_VALUES.with(|v| {
        if i >= v.len() {
            if v.try_reserve(i + 1 - v.len()).is_err() {
                return ::libc::ENOMEM;
            }
            v.resize(i + 1, core::ptr::null_mut());
        }
        v[i] = value.cast_mut();
        0
    })
}

/// `pthread_getspecific(key)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_getspecific(key: ::libc::pthread_key_t) -> *mut c_void {
    KEY_VALUES.with(|v| v.get(key as usize).copied().unwrap_or(core::ptr::null_mut()))
}

/// `pthread_attr_getguardsize(attr, size)`: no guard pages on the stacks
/// this library makes (none can be protected behind the filter); the main
/// thread's guard is the tender's, below its stack.
///
/// # Safety
///
/// `size` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_attr_getguardsize(
    _attr: *const ::libc::pthread_attr_t,
    size: *mut size_t,
) -> c_int {
    // SAFETY: the caller guarantees size is writable.
    unsafe { size.write(0) };
    0
}
