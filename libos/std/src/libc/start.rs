//! From libos's runtime to C's `main`, and back out through `exit`.
//!
//! libos's `_start` validates the boot info, sets up the heap, calls
//! `early_init` here (the CPU check and the main thread's TLS), sets up
//! the log and the network, then calls `__libos_main`, which for a std
//! guest is [`libos_main`] here: it builds `argv` and `environ` as C
//! expects them, runs the image's constructors (std's, which capture `argc`/`argv` on glibc) and calls
//! the `main` that rustc generates for a std binary (`lang_start`). What
//! `main` returns goes to [`exit`], which runs the `atexit` handlers and
//! the main thread's TLS destructors before `exit_group`.

use alloc::vec::Vec;

#[cfg_attr(test, allow(unused_imports))]
use super::{c_char, c_int, c_void};

#[cfg(not(test))]
type Constructor = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char);

#[cfg(not(test))]
unsafe extern "C" {
    static __init_array_start: Constructor;
    static __init_array_end: Constructor;
    static __fini_array_start: unsafe extern "C" fn();
    static __fini_array_end: unsafe extern "C" fn();
    /// What rustc generates for a std binary: calls `lang_start`.
    fn main(argc: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
}

/// A NULL-terminated array of C strings, copied from libos's strings.
#[cfg(not(test))]
fn c_strings<'a>(strs: impl Iterator<Item = &'a str>) -> *mut *mut c_char {
    let mut table: Vec<*mut c_char> = Vec::new();
    for s in strs {
        let mut bytes = Vec::with_capacity(s.len() + 1);
        bytes.extend_from_slice(s.as_bytes());
        bytes.push(0);
        table.push(bytes.leak().as_mut_ptr().cast());
    }
    table.push(core::ptr::null_mut());
    table.leak().as_mut_ptr()
}

// The entry point, libos's `_start`, calling `std_start` below: libos's
// runtime comes up (the heap, then `early_init` here, then the log and the
// network) and calls `__libos_main`. The `log` facade's logger is the
// program's to install (env_logger, tracing-subscriber), not libos's
// console logger.
#[cfg(not(test))]
libos::__entry!(@start std_start);

/// What `_start` calls, with the boot info's address.
#[cfg(not(test))]
extern "C" fn std_start(boot: usize) -> ! {
    libos::rt_private::start_std(boot, early_init)
}

/// The main thread's set-up that must come before anything allocates
/// through the program's global allocator: a `#[global_allocator]` such as
/// mimalloc keeps its per-thread heap in TLS, and libos's own start-up
/// (the network) allocates through it. Checks the CPU, seeds the random
/// numbers (the canary), and gives the main thread its TLS (from libos's
/// heap directly, not through the global allocator). Ends the guest with
/// status 255 when it cannot.
#[cfg(not(test))]
fn early_init() {
    let Some(info) = libos::rt_private::boot_info() else {
        libos::process::exit(255);
    };
    if info.hwcap2 & libos::abi::hwcap2::FSGSBASE == 0 {
        libos::console::write_all(
            b"libos-std: this host does not let user code set %fs (FSGSBASE): \
              std guests need a CPU with FSGSBASE and Linux 5.9 or later\n",
        );
        libos::process::exit(255);
    }
    super::random::seed(info.random);
    let Some(tp) = super::thread::new_area(super::random::canary()) else {
        libos::console::write_all(b"libos-std: no memory for the main thread\n");
        libos::process::exit(255);
    };
    // SAFETY: tp is a fresh, leaked TCB: the main thread's for its life;
    // the main thread's number is 1.
    unsafe {
        super::thread::set_thread_pointer(tp);
        super::thread::set_id(tp as usize, 1);
    }
    // The program's global allocator initialises inside its first
    // allocation, made here, before anything else allocates: while it
    // does, the disks are not mounted yet (see [`allocator_starting`]).
    ALLOCATOR_STARTING.store(true, core::sync::atomic::Ordering::Relaxed);
    let layout = core::alloc::Layout::new::<u64>();
    // SAFETY: a non-zero size; the block is freed with its layout.
    unsafe {
        // black_box: the compiler may not leave out this allocation.
        let p = core::hint::black_box(alloc::alloc::alloc(layout));
        if !p.is_null() {
            alloc::alloc::dealloc(p, layout);
        }
    }
    ALLOCATOR_STARTING.store(false, core::sync::atomic::Ordering::Relaxed);
}

/// Set while the program's global allocator makes its first allocation,
/// in which it initialises (jemalloc reads `/etc/malloc.conf` as a link,
/// snmalloc and mimalloc files of `/proc`): nothing the C library does
/// for it then may allocate, or it would re-enter an allocator not yet
/// ready. The path calls answer what they can without allocating; the
/// disks are not mounted yet then, so paths on them are not found
/// (`docs/std.md`, "Global allocators").
static ALLOCATOR_STARTING: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Whether the program's global allocator is initialising (see
/// [`ALLOCATOR_STARTING`]).
pub fn allocator_starting() -> bool {
    ALLOCATOR_STARTING.load(core::sync::atomic::Ordering::Relaxed)
}

/// The guest's `main` as libos calls it: see the module's documentation.
#[cfg(not(test))]
#[unsafe(no_mangle)]
fn __libos_main() -> i32 {
    libos_main()
}

#[cfg(not(test))]
fn libos_main() -> i32 {
    let Some(info) = libos::rt_private::boot_info() else {
        return 255;
    };
    super::thread::init_main(info.stack_bottom, info.stack_top);
    let args: Vec<&str> = libos::env::args().collect();
    let argc = args.len() as c_int;
    let argv = c_strings(args.into_iter()).cast_const().cast::<*const c_char>();
    let envp = super::env::init_environ(libos::env::vars());
    // SAFETY: the linker script places the constructors' pointers between
    // the two symbols, all valid functions of the image; they are called
    // as glibc calls them, with argc, argv and envp.
    unsafe {
        let mut f = &raw const __init_array_start;
        while f < &raw const __init_array_end {
            (*f)(argc, argv, envp);
            f = f.add(1);
        }
    }
    // SAFETY: main is rustc's entry for this binary; argv and envp are
    // NULL-terminated arrays of NUL-terminated strings that live forever.
    let status = unsafe { main(argc, argv, envp) };
    exit(status)
}

/// Handlers registered with `atexit`/`__cxa_atexit`, run in reverse order.
static AT_EXIT: spin_lock::Lock<Vec<(unsafe extern "C" fn(*mut c_void), *mut c_void)>> =
    spin_lock::Lock::new(Vec::new());

mod spin_lock {
    /// A lock for state that cooperative threads share: they switch only
    /// at blocking calls, so holding it across no such call is enough. In
    /// host unit tests, which run on several host threads at once, the
    /// same state is behind a real mutex.
    #[derive(Debug)]
    pub struct Lock<T>(Inner<T>);

    #[cfg(not(test))]
    type Inner<T> = core::cell::RefCell<T>;
    #[cfg(test)]
    type Inner<T> = std::sync::Mutex<T>;

    // SAFETY: the guest has one host thread; guest threads switch only
    // at blocking calls, never while a borrow is held. (In host tests the
    // mutex serialises every access; the tests that share objects with
    // `Rc`s inside do not hand them between threads.)
    unsafe impl<T> Sync for Lock<T> {}

    impl<T> Lock<T> {
        pub const fn new(v: T) -> Self {
            Self(Inner::new(v))
        }

        #[cfg(not(test))]
        pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            f(&mut self.0.borrow_mut())
        }

        #[cfg(test)]
        pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            f(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
        }

        /// [`Lock::with`] unless the state is in use (the program ended
        /// inside a call that holds it): then `None`.
        #[cfg(not(test))]
        pub fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
            self.0.try_borrow_mut().ok().map(|mut g| f(&mut g))
        }

        #[cfg(test)]
        pub fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
            match self.0.try_lock() {
                Ok(mut g) => Some(f(&mut g)),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(f(&mut p.into_inner())),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }
}

pub use spin_lock::Lock;

/// `__cxa_atexit(func, arg, dso)`: runs `func(arg)` at `exit`.
///
/// # Safety
///
/// `func` is a function that may be called with `arg` at exit.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __cxa_atexit(
    func: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
    _dso: *mut c_void,
) -> c_int {
    AT_EXIT.with(|h| {
        if h.try_reserve(1).is_err() {
            return -1;
        }
        h.push((func, arg));
        0
    })
}

/// `atexit(func)`.
///
/// # Safety
///
/// `func` is a function that may be called at exit.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn atexit(func: unsafe extern "C" fn()) -> c_int {
    // SAFETY: a function of no arguments may be called with one in the
    // System V ABI (the argument register is ignored).
    unsafe {
        __cxa_atexit(
            core::mem::transmute::<unsafe extern "C" fn(), unsafe extern "C" fn(*mut c_void)>(func),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    }
}

/// `exit(status)`: the calling thread's TLS destructors, the `atexit`
/// handlers in reverse order, the image's destructors, then `exit_group`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn exit(status: c_int) -> ! {
    super::thread::run_tls_destructors();
    while let Some((f, arg)) = AT_EXIT.with(|h| h.pop()) {
        // SAFETY: registered with __cxa_atexit, whose caller promised it
        // may be called with arg at exit.
        unsafe { f(arg) };
    }
    #[cfg(not(test))]
    // SAFETY: the linker script places the destructors' pointers between
    // the two symbols; run last to first, as glibc does.
    unsafe {
        let mut f = &raw const __fini_array_end;
        while f > &raw const __fini_array_start {
            f = f.sub(1);
            (*f)();
        }
    }
    // Last, as glibc's _IO_cleanup: what C streams still buffer.
    super::stdio::flush_at_exit();
    _exit(status)
}

/// `_exit(status)`: ends the guest, no other thread running again, once
/// its connections have sent what they hold (libos's `process::exit`,
/// bounded: docs/networking.md, "When the guest exits"), as Linux sends
/// what was written before a process ended.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn _exit(status: c_int) -> ! {
    libos::task::flush_egress();
    libos::process::exit(status)
}

/// `abort()`: ends the guest with status 255 at once, its connections'
/// data not sent (it may run inside a failing network turn), as a panic
/// in a `no_std` guest does (docs/design.md: a guest that panics or aborts exits 255; it
/// cannot raise `SIGABRT` on itself behind the filter).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn abort() -> ! {
    libos::console::write_all(b"libos-std: abort()\n");
    libos::process::exit_now(255)
}
