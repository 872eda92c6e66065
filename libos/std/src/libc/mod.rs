//! The C library std links against: functions with glibc's names, types
//! and error conventions, over libos. One file per family:
//!
//! * [`dl`]: `dlsym`, which finds nothing in a static image;
//! * [`start`]: the entry from libos's runtime into C's world (arguments,
//!   environment, constructors, `main`), `exit` and its handlers;
//! * [`math`]: the C math library, over the `libm` crate;
//! * [`memory`]: `malloc` and friends over libos's heap;
//! * [`mmap`]: anonymous mappings (`mmap`, partial `munmap`, `madvise`);
//! * [`string`]: the string functions std and the unwinder call;
//! * [`env`]: `getenv`/`setenv`, `sysconf`, `getauxval`, identities;
//! * [`time`]: clocks and sleeping;
//! * [`fd`]: the file-descriptor table and the calls on any descriptor
//!   (`read`, `write`, `close`, `fcntl`, `poll`, ...);
//! * [`file`]: paths and files, over libos's FAT file system;
//! * [`thread`]: threads (cooperative, many on the one host thread),
//!   thread-local storage, mutexes, keys, the futex;
//! * [`signal`], [`process`], [`spawn`]: what a guest cannot do, refused
//!   as Linux refuses what it does not support;
//! * [`netdb`]: name resolution (numeric addresses and `localhost`);
//! * [`socket`]: sockets, failing cleanly until they land;
//! * [`pipe`], [`unix`], [`eventfd`], [`timerfd`], [`epoll`]: in-process
//!   I/O objects (pipes, socket pairs, event counters, timers) and
//!   readiness (`epoll`; `poll` is in [`fd`]);
//! * [`stdio`]: C's buffered streams (`FILE *`: `fopen`, `fgets`, ...);
//! * [`printf`]: the `printf` family, its variadic entry points in
//!   assembly over `va_list` forms in Rust;
//! * [`scanf`]: `sscanf` and `vsscanf`;
//! * [`misc`]: the host name;
//! * [`unwind`]: what the unwinder asks the dynamic linker, answered for
//!   the one static image;
//! * [`random`]: `getrandom` and `getentropy`.
//!
//! # Conventions
//!
//! Every function is exported under its C name only in a guest build
//! (`#[cfg_attr(not(test), unsafe(no_mangle))]`); on the host, in unit
//! tests, it is an ordinary Rust function that does not replace the host's
//! C library. Errors are reported as glibc does: a return value of -1 (or
//! NULL) and the thread's `errno` ([`set_errno`]), or, for the `pthread`
//! functions, the error number itself.
//!
//! # Safety
//!
//! Each function's own `# Safety` section states what the caller (std, or
//! C code) must guarantee: the C contract of the function of that name.

#![allow(unsafe_code)]

pub mod dl;
pub mod env;
pub mod epoll;
pub mod eventfd;
pub mod fd;
pub mod file;
pub mod math;
pub mod memory;
pub mod misc;
pub mod mmap;
pub mod netdb;
pub mod numbers;
pub mod pipe;
pub mod printf;
pub mod process;
pub mod random;
pub mod resolv;
pub mod rlimit;
pub mod scanf;
pub mod signal;
pub mod socket;
pub mod sort;
pub mod spawn;
pub mod start;
pub mod stdio;
pub mod string;
pub mod thread;
pub mod time;
pub mod timerfd;
pub mod tm;
pub mod unix;
pub mod unwind;
pub mod watch;

pub use ::libc::{c_char, c_int, c_long, c_uint, c_ulong, c_void, size_t, ssize_t};

/// Sets the calling thread's `errno`.
pub fn set_errno(e: c_int) {
    thread::errno_cell().set(e);
}

/// The calling thread's `errno`.
pub fn errno() -> c_int {
    thread::errno_cell().get()
}

/// `__errno_location()`: where the calling thread's `errno` lives.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn __errno_location() -> *mut c_int {
    thread::errno_cell().as_ptr()
}

/// Sets `errno` to `e` and returns -1: the usual failure of a C call.
pub fn fail(e: c_int) -> c_int {
    set_errno(e);
    -1
}

/// [`fail`] for calls that return `ssize_t`.
pub fn fail_size(e: c_int) -> ssize_t {
    set_errno(e);
    -1
}

/// The bytes of the NUL-terminated string at `s`, without the NUL.
///
/// # Safety
///
/// `s` is non-null and points to a NUL-terminated string that lives, and
/// does not change, for `'a`.
pub unsafe fn c_str<'a>(s: *const c_char) -> &'a [u8] {
    // SAFETY: the caller guarantees a NUL-terminated string at s.
    unsafe { core::ffi::CStr::from_ptr(s) }.to_bytes()
}

/// Host unit tests that use the descriptor table hold this: the table is
/// one global (a guest has one host thread; the test harness has several).
#[cfg(test)]
pub static FD_TABLE_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());
