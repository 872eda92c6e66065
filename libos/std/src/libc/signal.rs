//! Signals. Faults kill the guest with the kernel's default action (the
//! tender resets the handlers), and a guest cannot signal itself or
//! others (`kill`, `raise`: `ENOSYS`). Two signals can come from outside:
//! `SIGTERM` and `SIGINT`, which the tender hands to the guest as events
//! (libos's `signal` module: a signalfd each, polled in the guest's
//! `ppoll`s).
//!
//! For those two, `sigaction` and `signal` act as on Linux: `SIG_DFL`
//! ends the guest with status 128 + the signal's number (143, 130) when
//! the signal arrives, `SIG_IGN` drops it, and a handler runs. It runs on
//! a green thread of its own (named `signal`, made at the first handler),
//! not in an asynchronous signal context: between two points where
//! threads switch, as any thread's code runs, so it may take locks and
//! allocate (a handler written for Linux, which may not, works too). That
//! is how signal-hook's handlers, and through them
//! `tokio::signal::ctrl_c()` and `tokio::signal::unix::signal`, get their
//! signals: the handler writes to its socket pair and the runtime wakes.
//! A signal is seen once: a second `SIGTERM` merges into the first (see
//! libos's `signal` module), and a handler with `SA_RESETHAND` is reset to
//! `SIG_DFL` after it ran.
//!
//! Every other signal's handler is recorded (`sigaction` reads back what
//! was set, `SIG_DFL` at first) and never runs; masks are recorded
//! likewise, and so is the alternate stack (`sigaltstack`), which starts
//! out as a region of the image.

use super::start::Lock;
use super::{c_int, fail};

const NSIG: usize = 65;

static ACTIONS: Lock<[Option<::libc::sigaction>; NSIG]> = Lock::new([None; NSIG]);

fn valid(sig: c_int) -> Option<usize> {
    usize::try_from(sig).ok().filter(|&s| (1..NSIG).contains(&s))
}

/// `__libc_current_sigrtmin()`: the first real-time signal left to
/// programs (glibc keeps 32 and 33 for itself); the libc crate's
/// `SIGRTMIN()` calls it.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn __libc_current_sigrtmin() -> c_int {
    34
}

/// `__libc_current_sigrtmax()`: the last real-time signal (tokio sizes
/// its signal table with the libc crate's `SIGRTMAX()`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn __libc_current_sigrtmax() -> c_int {
    NSIG as c_int - 1
}

/// `sigaction(sig, act, old)`. For `SIGTERM` and `SIGINT` it also tells
/// libos what to do when one arrives (see the module's documentation).
///
/// # Safety
///
/// `act` is NULL or readable, `old` NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const ::libc::sigaction,
    old: *mut ::libc::sigaction,
) -> c_int {
    let Some(s) = valid(sig) else { return fail(::libc::EINVAL) };
    if !act.is_null() && (sig == ::libc::SIGKILL || sig == ::libc::SIGSTOP) {
        return fail(::libc::EINVAL);
    }
    ACTIONS.with(|a| {
        if !old.is_null() {
            // SAFETY: sigaction is plain data; zeroes are SIG_DFL.
            let current = a[s].unwrap_or(unsafe { core::mem::zeroed() });
            // SAFETY: the caller guarantees old is writable.
            unsafe { old.write(current) };
        }
        if !act.is_null() {
            // SAFETY: the caller guarantees act is readable.
            let new = unsafe { act.read() };
            a[s] = Some(new);
            if let Some(event) = libos::signal::Signal::from_number(sig) {
                libos::signal::set_disposition(event, disposition(new.sa_sigaction));
            }
        }
    });
    if !act.is_null()
        && libos::signal::Signal::from_number(sig).is_some()
        && handles(
            // SAFETY: the caller guarantees act is readable.
            unsafe { act.read() }.sa_sigaction,
        )
    {
        start_handler_thread();
    }
    0
}

/// Whether `handler` is a function (not `SIG_DFL`, `SIG_IGN`).
fn handles(handler: ::libc::sighandler_t) -> bool {
    handler != ::libc::SIG_DFL && handler != ::libc::SIG_IGN
}

/// What libos does when the signal arrives, for a `sigaction` handler.
fn disposition(handler: ::libc::sighandler_t) -> libos::signal::Disposition {
    use libos::signal::Disposition;
    match handler {
        ::libc::SIG_DFL => Disposition::Default,
        ::libc::SIG_IGN => Disposition::Ignore,
        _ => Disposition::Deliver,
    }
}

/// Whether the handler thread runs.
static HANDLER_THREAD: Lock<bool> = Lock::new(false);

/// Makes the thread that runs handlers, once.
fn start_handler_thread() {
    if !HANDLER_THREAD.with(|started| core::mem::replace(started, true)) {
        spawn_handler_thread();
    }
}

/// No threads on the host, in unit tests.
#[cfg(test)]
fn spawn_handler_thread() {}

/// Spawns the handler thread (see the module's documentation).
#[cfg(not(test))]
fn spawn_handler_thread() {
    let mut thread: ::libc::pthread_t = 0;
    // SAFETY: thread is writable; no attributes; the routine takes no
    // argument.
    let made = unsafe {
        super::thread::pthread_create(
            &mut thread,
            core::ptr::null(),
            handler_thread,
            core::ptr::null_mut(),
        )
    };
    if made != 0 {
        HANDLER_THREAD.with(|started| *started = false);
        libos::log::warn!("libos-std: no memory for the signal handler thread");
        return;
    }
    super::thread::pthread_detach(thread);
    // SAFETY: a NUL-terminated name of 6 bytes.
    unsafe { super::thread::pthread_setname_np(thread, c"signal".as_ptr()) };
}

/// The handler thread: runs the handler of each signal libos delivers,
/// then waits for the next event.
#[cfg(not(test))]
extern "C" fn handler_thread(_: *mut super::c_void) -> *mut super::c_void {
    loop {
        while let Some(signal) = libos::signal::take() {
            run_handler(signal);
        }
        super::thread::wait_for_events(None);
    }
}

/// Runs what `sigaction` set for `signal` now (it may have changed since
/// libos delivered it).
#[cfg(not(test))]
fn run_handler(signal: libos::signal::Signal) {
    let sig = signal.number();
    let Some(s) = valid(sig) else { return };
    // SAFETY: sigaction is plain data; zeroes are SIG_DFL.
    let act = ACTIONS.with(|a| a[s]).unwrap_or(unsafe { core::mem::zeroed() });
    match act.sa_sigaction {
        // The default action ends the guest as `_exit` does, writes left
        // for the next network turn sent first (Linux sends what a killed
        // process had written).
        ::libc::SIG_DFL => super::start::_exit(signal.default_status()),
        ::libc::SIG_IGN => return,
        _ => {}
    }
    if act.sa_flags & ::libc::SA_RESETHAND != 0 {
        ACTIONS.with(|a| a[s] = None);
        libos::signal::set_disposition(signal, libos::signal::Disposition::Default);
    }
    // What a handler may read: the signal, sent by a user (SI_USER); no
    // interrupted context to look at (zeroes).
    // SAFETY: both are plain data; zeroes are valid values.
    let mut info: ::libc::siginfo_t = unsafe { core::mem::zeroed() };
    info.si_signo = sig;
    // SAFETY: as above.
    let mut context: ::libc::ucontext_t = unsafe { core::mem::zeroed() };
    let saved = super::errno();
    if act.sa_flags & ::libc::SA_SIGINFO != 0 {
        // SAFETY: the program installed this function as a three-argument
        // handler (SA_SIGINFO); info and context are valid for the call.
        let f: extern "C" fn(super::c_int, *mut ::libc::siginfo_t, *mut super::c_void) =
            unsafe { core::mem::transmute(act.sa_sigaction) };
        f(sig, &mut info, (&raw mut context).cast());
    } else {
        // SAFETY: the program installed this function as a one-argument
        // handler.
        let f: extern "C" fn(super::c_int) = unsafe { core::mem::transmute(act.sa_sigaction) };
        f(sig);
    }
    super::set_errno(saved);
}

/// `signal(sig, handler)`: as `sigaction`; returns the previous handler.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn signal(sig: c_int, handler: ::libc::sighandler_t) -> ::libc::sighandler_t {
    // SAFETY: sigaction is plain data; zeroes are a valid value.
    let mut act: ::libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = handler;
    // SAFETY: as above.
    let mut old: ::libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: both point to live sigactions.
    if unsafe { sigaction(sig, &act, &mut old) } != 0 {
        return ::libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// The alternate signal stack a guest starts with: a region of the image
/// (bss, so it costs no memory until written, and nothing ever writes it:
/// no handler runs). Reporting one means std's runtime, which gives every
/// thread an alternate stack for its stack-overflow handler unless one is
/// already set, does not allocate and map one per thread (12 kB each,
/// touched by the zeroing, for a handler that can never run).
struct AltStack(core::cell::UnsafeCell<[u8; ::libc::MINSIGSTKSZ]>);

// SAFETY: nothing reads or writes the bytes; only their address is used.
unsafe impl Sync for AltStack {}

static DEFAULT_ALT_STACK: AltStack =
    AltStack(core::cell::UnsafeCell::new([0; ::libc::MINSIGSTKSZ]));

/// Linux's `SS_AUTODISARM` (the `libc` crate lacks it).
const SS_AUTODISARM: c_int = 1 << 31;

/// The alternate stack as last set, if it was.
static ALT_STACK: Lock<Option<::libc::stack_t>> = Lock::new(None);

/// The stack [`sigaltstack`] reports when none was set.
fn default_alt_stack() -> ::libc::stack_t {
    ::libc::stack_t {
        ss_sp: DEFAULT_ALT_STACK.0.get().cast(),
        ss_flags: 0,
        ss_size: ::libc::MINSIGSTKSZ,
    }
}

/// `sigaltstack(ss, old)`: records the alternate stack and reads it back
/// (one for the guest, as no handler ever runs on it); until one is set it
/// is a region of the image (see `DEFAULT_ALT_STACK` for why). Checks as
/// Linux does: unknown flags are `EINVAL`, a stack under `MINSIGSTKSZ`
/// `ENOMEM`.
///
/// # Safety
///
/// `ss` is NULL or readable, `old` NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sigaltstack(
    ss: *const ::libc::stack_t,
    old: *mut ::libc::stack_t,
) -> c_int {
    // SAFETY: the caller guarantees ss is NULL or readable.
    let new = unsafe { ss.as_ref() }.copied();
    if let Some(n) = new {
        if n.ss_flags & !(::libc::SS_DISABLE | SS_AUTODISARM) != 0 {
            return fail(::libc::EINVAL);
        }
        if n.ss_flags & ::libc::SS_DISABLE == 0 && n.ss_size < ::libc::MINSIGSTKSZ {
            return fail(::libc::ENOMEM);
        }
    }
    ALT_STACK.with(|alt| {
        if !old.is_null() {
            let current = alt.unwrap_or_else(default_alt_stack);
            // SAFETY: the caller guarantees old is writable.
            unsafe { old.write(current) };
        }
        if let Some(n) = new {
            *alt = Some(n);
        }
    });
    0
}

/// `sigemptyset(set)`.
///
/// # Safety
///
/// `set` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sigemptyset(set: *mut ::libc::sigset_t) -> c_int {
    // SAFETY: the caller guarantees set is writable; zeroes are empty.
    unsafe { set.write(core::mem::zeroed()) };
    0
}

/// `sigfillset(set)`: every signal.
///
/// # Safety
///
/// `set` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sigfillset(set: *mut ::libc::sigset_t) -> c_int {
    // SAFETY: the caller guarantees set is writable; sigset_t is plain
    // bits, all ones is every signal.
    unsafe { set.cast::<u8>().write_bytes(0xff, size_of::<::libc::sigset_t>()) };
    0
}

/// `sigaddset(set, sig)`.
///
/// # Safety
///
/// `set` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sigaddset(set: *mut ::libc::sigset_t, sig: c_int) -> c_int {
    let Some(s) = valid(sig) else { return fail(::libc::EINVAL) };
    // SAFETY: sigset_t is an array of words; bit s-1 is the signal.
    unsafe {
        let words = set.cast::<u64>();
        *words.add((s - 1) / 64) |= 1 << ((s - 1) % 64);
    }
    0
}

/// `pthread_sigmask(how, set, old)`: masks change nothing here; the old
/// mask reads as empty.
///
/// # Safety
///
/// `old` is NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_sigmask(
    _how: c_int,
    _set: *const ::libc::sigset_t,
    old: *mut ::libc::sigset_t,
) -> c_int {
    if !old.is_null() {
        // SAFETY: the caller guarantees old is writable.
        unsafe { sigemptyset(old) };
    }
    0
}

/// `sigprocmask`: as `pthread_sigmask`.
///
/// # Safety
///
/// `old` is NULL or writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sigprocmask(
    how: c_int,
    set: *const ::libc::sigset_t,
    old: *mut ::libc::sigset_t,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { pthread_sigmask(how, set, old) }
}

/// `raise(sig)`: refused (`ENOSYS`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn raise(_sig: c_int) -> c_int {
    fail(::libc::ENOSYS)
}

/// `kill(pid, sig)`: refused (`ENOSYS`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn kill(_pid: ::libc::pid_t, _sig: c_int) -> c_int {
    fail(::libc::ENOSYS)
}

/// `pause()`: parks the thread for good (other threads go on). A
/// `SIGTERM` or `SIGINT` handler runs on a thread of its own and does not
/// end the wait; without a handler those signals end the guest.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn pause() -> c_int {
    loop {
        super::thread::wait_for_events(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigterm_and_sigint_dispositions_reach_libos() {
        use libos::signal::{Disposition, Signal, disposition};
        extern "C" fn handler(_: c_int) {}
        let h = handler as *const () as ::libc::sighandler_t;
        assert_eq!(signal(::libc::SIGTERM, h), ::libc::SIG_DFL);
        assert_eq!(disposition(Signal::Term), Disposition::Deliver);
        assert_eq!(signal(::libc::SIGTERM, ::libc::SIG_IGN), h);
        assert_eq!(disposition(Signal::Term), Disposition::Ignore);
        assert_eq!(signal(::libc::SIGINT, h), ::libc::SIG_DFL);
        assert_eq!(disposition(Signal::Int), Disposition::Deliver);
        assert_eq!(signal(::libc::SIGINT, ::libc::SIG_DFL), h);
        assert_eq!(disposition(Signal::Int), Disposition::Default);
        assert_eq!(signal(::libc::SIGTERM, ::libc::SIG_DFL), ::libc::SIG_IGN);
        assert_eq!(disposition(Signal::Term), Disposition::Default);
        // Other signals are only recorded.
        assert_eq!(signal(::libc::SIGHUP, h), ::libc::SIG_DFL);
        assert_eq!(signal(::libc::SIGHUP, ::libc::SIG_DFL), h);
    }

    #[test]
    fn an_alternate_stack_is_reported_then_recorded() {
        // SAFETY: stack_t values on the stack, readable and writable.
        unsafe {
            let mut old: ::libc::stack_t = core::mem::zeroed();
            assert_eq!(sigaltstack(core::ptr::null(), &mut old), 0);
            assert_eq!(old.ss_flags & ::libc::SS_DISABLE, 0, "std then maps none");
            assert!(old.ss_size >= ::libc::MINSIGSTKSZ);
            let small = ::libc::stack_t { ss_sp: core::ptr::null_mut(), ss_flags: 0, ss_size: 16 };
            assert_eq!(sigaltstack(&small, core::ptr::null_mut()), -1);
            assert_eq!(super::super::errno(), ::libc::ENOMEM);
            let off = ::libc::stack_t {
                ss_sp: core::ptr::null_mut(),
                ss_flags: ::libc::SS_DISABLE,
                ss_size: 0,
            };
            assert_eq!(sigaltstack(&off, core::ptr::null_mut()), 0);
            assert_eq!(sigaltstack(core::ptr::null(), &mut old), 0);
            assert_eq!(old.ss_flags, ::libc::SS_DISABLE);
        }
    }
}
