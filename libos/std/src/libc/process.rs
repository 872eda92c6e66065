//! The process: identities, and what a guest cannot do with processes.
//!
//! A guest is one process that cannot create others: `fork`, `execve`,
//! `posix_spawn` fail with `ENOSYS`, which std reports as
//! `ErrorKind::Unsupported`, never an abort and never a system call. It
//! sees itself as process 1 of its own namespace (as a container's
//! init), run by root (uid 0), since it has no users.

use super::{c_int, fail};

/// `getpid()`: 1.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getpid() -> ::libc::pid_t {
    1
}

/// `getppid()`: 0 (no parent in the guest's world).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getppid() -> ::libc::pid_t {
    0
}

/// `getuid()`: 0.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getuid() -> ::libc::uid_t {
    0
}

/// `geteuid()`: 0.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn geteuid() -> ::libc::uid_t {
    0
}

/// `getgid()`: 0.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getgid() -> ::libc::gid_t {
    0
}

/// `getegid()`: 0.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getegid() -> ::libc::gid_t {
    0
}

/// `fork()`: `ENOSYS`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn fork() -> ::libc::pid_t {
    fail(::libc::ENOSYS)
}

/// `waitpid(pid, status, options)`: no children (`ECHILD`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn waitpid(
    _pid: ::libc::pid_t,
    _status: *mut c_int,
    _options: c_int,
) -> ::libc::pid_t {
    fail(::libc::ECHILD)
}
