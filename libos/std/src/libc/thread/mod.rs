//! Threads: cooperative green threads with glibc's `pthread_*` calls,
//! thread-local storage, the thread control block, keys, and the futex.
//!
//! Every guest thread runs on the one host thread (M:1) and switches only
//! where it would block on Linux: a futex wait (std's `Mutex`, `RwLock`,
//! `Condvar`, `Once`, channels, `park`), a sleep, `pthread_join`,
//! `sched_yield`, `poll` and `pause`; and at a futex wake that made
//! another thread ready, which runs first, as Linux's wake-up preemption
//! has it on one CPU. The parts:
//!
//! * [`sched`]: the thread table and run queue, plain data (host-tested);
//! * [`futex`]: the futex's wait queues and the operations std uses;
//! * [`switch`]: the context switch, thread stacks (from the heap, with a
//!   canary zone for want of a guard page), start, exit, idling, and the
//!   deadlock report;
//! * this file: TLS and the TCB, and the C functions.
//!
//! A thread that computes forever without blocking starves the others:
//! nothing preempts it (there are no timer signals behind the filter).
//! `available_parallelism()` is 1 (`sched_getaffinity` returns one CPU).
//! Shared state here is in [`Lock`]s, whose borrows are never held across
//! a switch.
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
    /// The thread's number (`gettid`, a mutex's owner), set when the
    /// thread is made ([`set_id`]).
    tid: Cell<u32>,
    /// The thread's values of the `pthread_key_create` keys. In the TCB,
    /// as glibc keeps its first ones there, so that `pthread_getspecific`
    /// and `pthread_setspecific` never allocate nor touch the scheduler's
    /// state: a `#[global_allocator]` (mimalloc) calls them from inside
    /// allocations that this library makes while holding that state.
    keys: [Cell<*mut c_void>; KEYS_MAX],
}

#[cfg(not(test))]
mod tls {
    use super::*;
    use core::alloc::{GlobalAlloc, Layout};
    // TLS areas come from libos's heap directly, never through the
    // program's global allocator: a `#[global_allocator]` such as
    // mimalloc keeps its own state in TLS, which must exist first.
    use libos::rt_private::Allocator as Heap;

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
        let base = unsafe { Heap.alloc_zeroed(layout) };
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
                tid: Cell::new(0),
                keys: [const { Cell::new(core::ptr::null_mut()) }; KEYS_MAX],
            });
        }
        Some(tp)
    }

    /// Frees a thread's TLS area made by [`new_area`].
    ///
    /// # Safety
    ///
    /// `tp` comes from [`new_area`], is no thread's thread pointer, and is
    /// not used again.
    pub unsafe fn free_area(tp: *mut Tcb) {
        let (_, _, _, align) = template();
        let below = block_size();
        let tcb_align = core::mem::align_of::<Tcb>().max(align);
        let offset = below.next_multiple_of(tcb_align);
        let size = offset + core::mem::size_of::<Tcb>();
        let layout = Layout::from_size_align(size, tcb_align).expect("as in new_area");
        // SAFETY: new_area allocated this layout at tp - offset.
        unsafe { Heap.dealloc((tp as usize - offset) as *mut u8, layout) };
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
pub use tls::{block_size, free_area, new_area, set_thread_pointer};

/// Numbers the thread whose TCB is `tcb` (`gettid`'s answer on it).
///
/// # Safety
///
/// `tcb` comes from [`new_area`] and is live.
#[cfg(not(test))]
pub unsafe fn set_id(tcb: usize, id: u32) {
    // SAFETY: the caller guarantees a live TCB.
    unsafe { (*(tcb as *const Tcb)).tid.set(id) };
}

/// Host unit tests: thread records carry the numbers.
///
/// # Safety
///
/// None needed.
#[cfg(test)]
pub unsafe fn set_id(_tcb: usize, _id: u32) {}

/// The calling thread's number, from its TCB: no borrow of the
/// scheduler, so that a mutex taken inside an allocation (a global
/// allocator's lock) works while this library holds the scheduler.
#[cfg(not(test))]
pub fn current_id() -> u32 {
    // SAFETY: the current TCB lives as long as its thread.
    unsafe { (*tls::current()).tid.get() }
}

/// The calling thread's number (host unit tests: its record's).
#[cfg(test)]
pub fn current_id() -> u32 {
    switch::with(|s| s.me().id)
}

/// The calling thread's values of the keys.
#[cfg(not(test))]
fn key_values() -> &'static [Cell<*mut c_void>; KEYS_MAX] {
    // SAFETY: the current TCB lives as long as its thread, and only that
    // thread reaches it through %fs.
    unsafe { &(*tls::current()).keys }
}

/// The calling thread's values of the keys (host unit tests: a
/// thread-local of the test's own).
#[cfg(test)]
fn key_values() -> &'static [Cell<*mut c_void>; KEYS_MAX] {
    extern crate std;
    type Values = [Cell<*mut c_void>; KEYS_MAX];
    std::thread_local!(static KEY_VALUES: &'static Values = std::boxed::Box::leak(
        std::boxed::Box::new([const { Cell::new(core::ptr::null_mut()) }; KEYS_MAX])
    ));
    KEY_VALUES.with(|k| *k)
}

/// Host unit tests have no TLS template: no thread areas.
#[cfg(test)]
pub fn new_area(_canary: usize) -> Option<*mut Tcb> {
    None
}

/// Host unit tests: nothing to free.
///
/// # Safety
///
/// None needed.
#[cfg(test)]
pub unsafe fn free_area(_tp: *mut Tcb) {}

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
// Threads: the C functions over the scheduler.

pub mod futex;
pub mod rwlock;
pub mod sched;
pub mod sem;
pub mod switch;
pub mod sync;

use super::start::Lock;
use super::{c_char, c_void, size_t};
use sched::Wait;

/// The main thread's stack, as the tender laid it out.
static MAIN_STACK: Lock<(u64, u64)> = Lock::new((0, 0));

/// The default stack size of a new thread (std asks for 2 MiB anyway).
const DEFAULT_STACK: usize = 2 << 20;

/// Records the main thread: its stack (for `pthread_getattr_np`), its
/// TCB, and its name, the program's (as Linux names a process's main
/// thread after its executable; new threads inherit their creator's).
pub fn init_main(bottom: u64, top: u64) {
    MAIN_STACK.with(|s| *s = (bottom, top));
    let mut name = [0u8; 16];
    if let Some(arg0) = libos::env::args().next() {
        let base = arg0.rsplit('/').next().unwrap_or(arg0).as_bytes();
        let n = base.len().min(15);
        name[..n].copy_from_slice(&base[..n]);
    }
    switch::init(pthread_self() as usize, name, super::random::canary());
}

/// Runs the calling thread's TLS destructors (at its exit), last
/// registered first; a destructor may register others.
pub fn run_tls_destructors() {
    while let Some((f, arg)) = switch::with(|s| s.me().dtors.pop()) {
        // SAFETY: registered by __cxa_thread_atexit_impl, whose caller
        // promised f may be called with arg at the thread's exit.
        unsafe { f(arg) };
    }
}

/// Runs the calling thread's key destructors (at its exit): each key with
/// a destructor and a non-null value has the value cleared and the
/// destructor called with it, for up to `PTHREAD_DESTRUCTOR_ITERATIONS`
/// rounds while destructors set values again (POSIX's rule).
pub fn run_key_destructors() {
    for _ in 0..4 {
        let mut ran = false;
        for i in 0..KEYS_MAX {
            let Some(Some(dtor)) = KEYS.with(|k| k[i]) else { continue };
            let v = key_values()[i].replace(core::ptr::null_mut());
            if !v.is_null() {
                ran = true;
                // SAFETY: pthread_key_create's caller promised dtor may be
                // called with the key's values at a thread's exit.
                unsafe { dtor(v) };
            }
        }
        if !ran {
            break;
        }
    }
}

/// Parks the calling thread until `deadline` (other threads run).
pub fn sleep_until(deadline: libos::time::Instant) {
    while libos::time::Instant::now() < deadline {
        switch::block(Wait::Sleep, Some(deadline));
    }
}

/// Gives the network a turn without waiting (`libos::task::poll_devices`),
/// from a call that queued something to send (a write, a connect, a close):
/// it leaves now, not when the thread next blocks. If a socket changed
/// (frames came back through the loopback, or had arrived), the threads
/// waiting for events look again before the guest idles: the idle turn
/// will not see that change again.
pub fn poll_devices() {
    if libos::task::poll_devices() {
        switch::with(sched::Sched::note_progress);
    }
}

/// Leaves the `bytes` a `write` or `send` just queued in a socket's send
/// buffer for the next network turn (`libos::net::defer_egress`), which
/// comes before this thread blocks, yields or parks ([`switch`] flushes
/// it), before the guest idles, in the next `poll`/`epoll_wait`, or at
/// exit: a burst of small writes then leaves in one turn, as few
/// segments, instead of one turn (a walk of every socket) per write. Once
/// `libos::net::EGRESS_BATCH` bytes wait, the turn is given now, as
/// [`poll_devices`]. See docs/std.md, "When a write leaves".
pub fn send_soon(bytes: usize) {
    if libos::net::defer_egress(bytes) {
        poll_devices();
    }
}

/// Gives the network the turn a [`send_soon`] owes it, if one is owed;
/// as [`poll_devices`] otherwise.
pub fn flush_egress() {
    if libos::task::flush_egress() {
        switch::with(sched::Sched::note_progress);
    }
}

/// [`poll_devices`] after asking the host which taps have frames
/// (`libos::task::poll_devices_now`): for `poll` and `epoll_wait`, which
/// must see new input even when the guest never idles.
pub fn poll_devices_now() {
    if libos::task::poll_devices_now() {
        switch::with(sched::Sched::note_progress);
    }
}

/// Parks the calling thread until something may have changed (a device
/// event, another thread's progress, a `timerfd`'s expiry) or `deadline`
/// passes.
pub fn wait_for_events(deadline: Option<libos::time::Instant>) {
    let deadline = match (deadline, super::timerfd::next_deadline()) {
        (Some(d), Some(t)) => Some(d.min(t)),
        (d, t) => d.or(t),
    };
    switch::block(Wait::Events, deadline);
    super::timerfd::expire_due();
}

/// Tells the threads waiting for events that an in-process object's
/// readiness changed (a pipe, an eventfd, a socket pair was written,
/// read or closed): they look again before the guest idles, instead of
/// sleeping until a device event.
pub fn events_changed() {
    switch::with(sched::Sched::note_progress);
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
    switch::with(|s| {
        let d = &mut s.me().dtors;
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

/// `pthread_equal(a, b)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_equal(a: ::libc::pthread_t, b: ::libc::pthread_t) -> c_int {
    c_int::from(a == b)
}

/// `pthread_create(thread, attr, start, arg)`: a new thread, with the
/// stack size of `attr` (2 MiB without one), that runs at once: the
/// caller goes on after the threads already ready. `EAGAIN` without
/// memory for its stack.
///
/// # Safety
///
/// `thread` is writable; `attr` is NULL or set by `pthread_attr_init`;
/// `start` may be called with `arg` on another thread.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_create(
    thread: *mut ::libc::pthread_t,
    attr: *const ::libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    let size = if attr.is_null() {
        DEFAULT_STACK
    } else {
        // SAFETY: the caller guarantees attr holds an Attr.
        unsafe { attr.cast::<Attr>().read().size }
    };
    match switch::spawn(start, arg, size) {
        Ok(tcb) => {
            // SAFETY: the caller guarantees thread is writable.
            unsafe { thread.write(tcb as ::libc::pthread_t) };
            // The new thread runs now (written first, as glibc does, for
            // a thread that reads it), and the caller after the others.
            switch::preempt();
            0
        }
        Err(e) => e,
    }
}

/// `pthread_join(thread, retval)`: waits for the thread to exit, stores
/// what it returned, and frees it. `ESRCH` for an unknown thread,
/// `EDEADLK` for oneself, `EINVAL` for a detached thread or one that
/// another thread joins already.
///
/// # Safety
///
/// `retval` is NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_join(
    thread: ::libc::pthread_t,
    retval: *mut *mut c_void,
) -> c_int {
    let Some(slot) = switch::with(|s| s.find(thread as usize)) else { return ::libc::ESRCH };
    let me = switch::current_slot();
    if slot == me {
        return ::libc::EDEADLK;
    }
    loop {
        let verdict = switch::with(|s| {
            let t = s.get_mut(slot).expect("found above; only its joiner frees it");
            if t.detached || t.joiner.is_some_and(|j| j != me) {
                Some(::libc::EINVAL)
            } else if t.state == sched::State::Exited {
                Some(0)
            } else {
                t.joiner = Some(me);
                None
            }
        });
        match verdict {
            Some(0) => break,
            Some(e) => return e,
            None => switch::block(Wait::Join, None),
        }
    }
    let t = switch::with(|s| s.remove(slot)).expect("an exited thread's record");
    if !retval.is_null() {
        // SAFETY: the caller guarantees retval is writable.
        unsafe { retval.write(t.retval) };
    }
    switch::free(*t);
    0
}

/// `pthread_detach(thread)`: nobody will join it; it is freed when it
/// exits (at once if it has).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_detach(thread: ::libc::pthread_t) -> c_int {
    let exited = switch::with(|s| {
        let slot = s.find(thread as usize)?;
        let t = s.get_mut(slot)?;
        if t.detached {
            return Some(Err(::libc::EINVAL));
        }
        t.detached = true;
        Some(Ok((t.state == sched::State::Exited).then(|| s.remove(slot)).flatten()))
    });
    match exited {
        None => ::libc::ESRCH,
        Some(Err(e)) => e,
        Some(Ok(gone)) => {
            if let Some(t) = gone {
                switch::free(*t);
            }
            0
        }
    }
}

/// `pthread_exit(retval)`: ends the calling thread, after its TLS and key
/// destructors (no unwinding: std never calls it).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_exit(retval: *mut c_void) -> ! {
    switch::exit(retval)
}

/// `pthread_setname_np(thread, name)`: at most 15 bytes (`ERANGE`
/// otherwise), as Linux's thread names.
///
/// # Safety
///
/// `name` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_setname_np(
    thread: ::libc::pthread_t,
    name: *const c_char,
) -> c_int {
    // SAFETY: the caller guarantees a NUL-terminated string.
    let bytes = unsafe { super::c_str(name) };
    if bytes.len() > 15 {
        return ::libc::ERANGE;
    }
    let mut padded = [0u8; 16];
    padded[..bytes.len()].copy_from_slice(bytes);
    switch::with(|s| match s.find(thread as usize).and_then(|i| s.get_mut(i)) {
        Some(t) => {
            t.name = padded;
            0
        }
        None => ::libc::ESRCH,
    })
}

/// `pthread_getname_np(thread, buf, len)`: `ERANGE` if the name and its
/// NUL do not fit.
///
/// # Safety
///
/// `buf` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_getname_np(
    thread: ::libc::pthread_t,
    buf: *mut c_char,
    len: size_t,
) -> c_int {
    let Some(name) = switch::with(|s| Some(s.get(s.find(thread as usize)?)?.name)) else {
        return ::libc::ESRCH;
    };
    let n = name.iter().position(|&b| b == 0).unwrap_or(15);
    if len < n + 1 {
        return ::libc::ERANGE;
    }
    // SAFETY: the caller guarantees len >= n + 1 writable bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(name.as_ptr(), buf.cast::<u8>(), n);
        buf.add(n).write(0);
    }
    0
}

/// `pthread_getattr_np(thread, attr)`: the thread's stack (std asks for
/// it to know where a thread's guard is).
///
/// # Safety
///
/// `attr` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_getattr_np(
    thread: ::libc::pthread_t,
    attr: *mut ::libc::pthread_attr_t,
) -> c_int {
    let own = switch::with(|s| Some(s.get(s.find(thread as usize)?)?.stack));
    let (stack, size) = match own {
        // Past the canary zone: that is where the usable stack starts.
        Some(Some(st)) => (st.bottom + switch::CANARY_BYTES, st.size - switch::CANARY_BYTES),
        _ => {
            let (bottom, top) = MAIN_STACK.with(|s| *s);
            (bottom as usize, (top - bottom) as usize)
        }
    };
    // SAFETY: the caller guarantees attr is writable; the attribute is
    // our own layout (Attr), which fits in pthread_attr_t.
    unsafe { attr.cast::<Attr>().write(Attr { stack, size }) };
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
    unsafe { attr.cast::<Attr>().write(Attr { stack: 0, size: DEFAULT_STACK }) };
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

/// `pthread_attr_setstacksize(attr, size)`: at least `PTHREAD_STACK_MIN`
/// (16 KiB).
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

/// `pthread_attr_getguardsize(attr, size)`: one page. The main thread's
/// guard is the tender's page below its stack; a thread this library
/// makes has instead the canary zone below the stack that
/// `pthread_getattr_np` reports (no page can be protected behind the
/// filter; see [`switch`]). std refuses to start a thread whose guard
/// size is 0.
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
    unsafe { size.write(switch::CANARY_BYTES) };
    0
}

/// `syscall(number, ...)`: what std and crates call directly. `futex`
/// (std's mutexes, condition variables, `park`), `gettid` (the thread's
/// number, 1 for the main thread), and the calls crates make this way
/// rather than through their C functions, answered by those functions:
/// `getrandom` (the getrandom crate 0.2, and ring through it),
/// `clock_gettime`, `getpid`, `sched_yield`, `statx`, `fcntl`, `flock`, and the file calls
/// `open`, `openat`, `read`, `close`, `readlink` (jemalloc's). Anything
/// else is `ENOSYS`, which std handles (it falls back to the older call).
/// Declared with six integer arguments: on x86_64 a variadic call passes
/// them in the same registers.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn syscall(
    number: ::libc::c_long,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> ::libc::c_long {
    match number {
        ::libc::SYS_gettid => ::libc::c_long::from(current_id()),
        ::libc::SYS_futex => {
            // SAFETY: the C contract of futex(2), which std keeps: a1 is a
            // live u32 and a4 NULL or a timespec for the waits.
            let r = unsafe {
                futex::guest::futex(
                    a1 as *const u32,
                    a2 as c_int,
                    a3 as u32,
                    a4 as *const ::libc::timespec,
                    a6 as u32,
                )
            };
            match r {
                Ok(n) => n as ::libc::c_long,
                Err(e) => ::libc::c_long::from(super::fail(e)),
            }
        }
        // SAFETY: the C contract of getrandom(2): a1 writable for a2 bytes.
        ::libc::SYS_getrandom => unsafe {
            super::random::getrandom(a1 as *mut c_void, a2, a3 as ::libc::c_uint) as ::libc::c_long
        },
        // SAFETY: the C contract of clock_gettime(2): a2 writable.
        ::libc::SYS_clock_gettime => ::libc::c_long::from(unsafe {
            super::time::clock_gettime(a1 as ::libc::clockid_t, a2 as *mut ::libc::timespec)
        }),
        // SAFETY: the C contract of statx(2): a2 a string or null, a5
        // writable or null.
        ::libc::SYS_statx => ::libc::c_long::from(unsafe {
            super::file::statx::statx(
                a1 as c_int,
                a2 as *const ::libc::c_char,
                a3 as c_int,
                a4 as ::libc::c_uint,
                a5 as *mut ::libc::statx,
            )
        }),
        ::libc::SYS_getpid => ::libc::c_long::from(super::process::getpid()),
        // redb takes its OFD locks this way (glibc's fcntl translates
        // through off_t, which it avoids).
        ::libc::SYS_fcntl => ::libc::c_long::from(super::fd::fcntl(a1 as c_int, a2 as c_int, a3)),
        ::libc::SYS_flock => {
            ::libc::c_long::from(super::file::lock::flock(a1 as c_int, a2 as c_int))
        }
        // The file calls jemalloc makes this way while it initialises
        // (`/proc/sys/vm/overcommit_memory`,
        // `/sys/kernel/mm/transparent_hugepage/enabled`).
        // SAFETY: the C contract of open(2): a1 a NUL-terminated path.
        ::libc::SYS_open => ::libc::c_long::from(unsafe {
            super::file::open64(a1 as *const c_char, a2 as c_int, a3 as c_int)
        }),
        // SAFETY: the C contract of openat(2): a2 a NUL-terminated path.
        ::libc::SYS_openat => ::libc::c_long::from(unsafe {
            super::file::openat64(a1 as c_int, a2 as *const c_char, a3 as c_int, a4 as c_int)
        }),
        // SAFETY: the C contract of read(2): a2 writable for a3 bytes.
        ::libc::SYS_read => unsafe { super::fd::read(a1 as c_int, a2 as *mut c_void, a3) as _ },
        ::libc::SYS_close => ::libc::c_long::from(super::fd::close(a1 as c_int)),
        // SAFETY: the C contract of readlink(2): a1 a NUL-terminated path,
        // a2 writable for a3 bytes.
        ::libc::SYS_readlink => unsafe {
            super::file::readlink(a1 as *const c_char, a2 as *mut c_char, a3) as _
        },
        ::libc::SYS_sched_yield => ::libc::c_long::from(sched_yield()),
        _ => ::libc::c_long::from(super::fail(::libc::ENOSYS)),
    }
}

/// `sched_yield()`: the other ready threads run first.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn sched_yield() -> c_int {
    switch::yield_now();
    0
}

/// `sched_getaffinity(pid, size, set)`: CPU 0 only: every guest thread
/// runs on the one host thread, so `available_parallelism()` is 1.
///
/// # Safety
///
/// `set` is writable for `size` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sched_getaffinity(
    _pid: ::libc::pid_t,
    size: size_t,
    set: *mut ::libc::cpu_set_t,
) -> c_int {
    if size == 0 || set.is_null() {
        return super::fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees size writable bytes at set.
    unsafe {
        core::ptr::write_bytes(set.cast::<u8>(), 0, size);
        set.cast::<u8>().write(1);
    }
    0
}

/// `sched_getcpu()`: 0, the one CPU.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn sched_getcpu() -> c_int {
    0
}

/// `sched_setaffinity(pid, size, set)`: a set holding CPU 0 succeeds
/// (every thread runs there already); one without it is `EINVAL`, as
/// Linux answers for a set of no CPU the caller may use.
///
/// # Safety
///
/// `set` is readable for `size` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sched_setaffinity(
    _pid: ::libc::pid_t,
    size: size_t,
    set: *const ::libc::cpu_set_t,
) -> c_int {
    // SAFETY: the caller guarantees size readable bytes at set.
    if size == 0 || set.is_null() || unsafe { set.cast::<u8>().read() } & 1 == 0 {
        return super::fail(::libc::EINVAL);
    }
    0
}

/// `__sched_cpucount(size, set)` (`CPU_COUNT`): the CPUs in the set.
///
/// # Safety
///
/// `set` is readable for `size` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __sched_cpucount(size: size_t, set: *const ::libc::cpu_set_t) -> c_int {
    // SAFETY: the caller guarantees size readable bytes at set.
    let bytes = unsafe { core::slice::from_raw_parts(set.cast::<u8>(), size) };
    bytes.iter().map(|b| b.count_ones() as c_int).sum()
}

/// `pthread_atfork(prepare, parent, child)`: accepted; the handlers never
/// run, since nothing forks (`fork` is `ENOSYS`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_atfork(
    _prepare: Option<unsafe extern "C" fn()>,
    _parent: Option<unsafe extern "C" fn()>,
    _child: Option<unsafe extern "C" fn()>,
) -> c_int {
    0
}

/// Keys of `pthread_key_create`: their destructors (or none), and whether
/// the key is in use. A fixed table (nothing allocates: mimalloc creates
/// its key while it initialises). Values live per thread, in the TCB.
#[allow(clippy::type_complexity)]
static KEYS: Lock<[Option<Option<unsafe extern "C" fn(*mut c_void)>>; KEYS_MAX]> =
    Lock::new([None; KEYS_MAX]);

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
        let Some(i) = keys.iter().position(Option::is_none) else {
            return ::libc::EAGAIN;
        };
        keys[i] = Some(dtor);
        // SAFETY: the caller guarantees key is writable.
        unsafe { key.write(i as ::libc::pthread_key_t) };
        0
    })
}

/// `pthread_key_delete(key)`: every thread's value goes (a key made later
/// in the same slot starts NULL everywhere); no destructor runs.
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
    #[cfg(not(test))]
    switch::with(|s| {
        for (_, t) in s.threads().filter(|(_, t)| t.tcb != 0) {
            // SAFETY: a thread's record holds its live TCB while it exists.
            unsafe { (*(t.tcb as *const Tcb)).keys[i].set(core::ptr::null_mut()) };
        }
    });
    #[cfg(test)]
    key_values()[i].set(core::ptr::null_mut());
    0
}

/// `pthread_setspecific(key, value)`: the calling thread's value.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_setspecific(key: ::libc::pthread_key_t, value: *const c_void) -> c_int {
    let i = key as usize;
    if !KEYS.with(|keys| matches!(keys.get(i), Some(Some(_)))) {
        return ::libc::EINVAL;
    }
    key_values()[i].set(value.cast_mut());
    0
}

/// `pthread_getspecific(key)`: the calling thread's value.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pthread_getspecific(key: ::libc::pthread_key_t) -> *mut c_void {
    key_values().get(key as usize).map_or(core::ptr::null_mut(), Cell::get)
}

#[cfg(test)]
mod affinity_tests {
    use super::*;

    #[test]
    fn the_one_cpu_is_counted_and_only_it_may_be_chosen() {
        // SAFETY: cpu_set_t is plain bits; the sets are live locals.
        unsafe {
            let mut set: ::libc::cpu_set_t = core::mem::zeroed();
            let size = size_of::<::libc::cpu_set_t>();
            assert_eq!(sched_getaffinity(0, size, &mut set), 0);
            assert_eq!(__sched_cpucount(size, &set), 1);
            assert_eq!(sched_setaffinity(0, size, &set), 0);
            let none: ::libc::cpu_set_t = core::mem::zeroed();
            assert_eq!(sched_setaffinity(0, size, &none), -1);
            assert_eq!(sched_getcpu(), 0);
        }
    }
}
