//! The process: identities, and what a guest cannot do with processes.
//!
//! A guest is one process that cannot create others: `fork`, the `exec`
//! family and `posix_spawn` ([`super::spawn`]) fail with `ENOSYS`, which
//! std reports as `ErrorKind::Unsupported` ("Function not implemented"),
//! never an abort and never a system call; waiting finds no child
//! (`ECHILD`). It sees itself as process 1 of its own namespace (as a
//! container's init): a session and process-group leader, run by root
//! (uid 0), since it has no users. Changing identities to the ones it
//! already has succeeds (std's `Command::exec` may ask for that); any
//! other change is refused with `EPERM`, as for a process without the
//! capability.

use super::{c_char, c_int, fail};

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

/// `waitid(idtype, id, info, options)`: no children (`ECHILD`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn waitid(
    _idtype: ::libc::idtype_t,
    _id: ::libc::id_t,
    _info: *mut ::libc::siginfo_t,
    _options: c_int,
) -> c_int {
    fail(::libc::ECHILD)
}

/// `execve(path, argv, envp)`: a guest cannot run another program
/// (`ENOSYS`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn execve(
    _path: *const c_char,
    _argv: *const *const c_char,
    _envp: *const *const c_char,
) -> c_int {
    fail(::libc::ENOSYS)
}

/// `execv(path, argv)`: as [`execve`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn execv(_path: *const c_char, _argv: *const *const c_char) -> c_int {
    fail(::libc::ENOSYS)
}

/// `execvp(file, argv)`: as [`execve`] (std's `Command::exec`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn execvp(_file: *const c_char, _argv: *const *const c_char) -> c_int {
    fail(::libc::ENOSYS)
}

/// Succeeds when `id` is the identity the guest already has (0), else
/// `EPERM`.
fn same_id(id: u32) -> c_int {
    if id == 0 { 0 } else { fail(::libc::EPERM) }
}

/// `setuid(uid)`: 0 only.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn setuid(uid: ::libc::uid_t) -> c_int {
    same_id(uid)
}

/// `setgid(gid)`: 0 only.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn setgid(gid: ::libc::gid_t) -> c_int {
    same_id(gid)
}

/// `setgroups(n, groups)`: no groups, or group 0 only.
///
/// # Safety
///
/// `groups` points to `n` readable group ids (or `n` is 0).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn setgroups(n: ::libc::size_t, groups: *const ::libc::gid_t) -> c_int {
    if n == 0 {
        return 0;
    }
    // SAFETY: the caller guarantees n readable ids at groups.
    let groups = unsafe { core::slice::from_raw_parts(groups, n) };
    if groups.iter().all(|&g| g == 0) { 0 } else { fail(::libc::EPERM) }
}

/// `getpgid(pid)`: the guest is its own process group, 1.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getpgid(pid: ::libc::pid_t) -> ::libc::pid_t {
    if pid == 0 || pid == 1 { 1 } else { fail(::libc::ESRCH) }
}

/// `getpgrp()`: 1.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getpgrp() -> ::libc::pid_t {
    1
}

/// `getsid(pid)`: the guest leads its own session, 1.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getsid(pid: ::libc::pid_t) -> ::libc::pid_t {
    getpgid(pid)
}

/// `setpgid(pid, pgid)`: the guest already leads its group; making it
/// lead the group it leads succeeds, anything else is `EPERM` (a session
/// leader cannot change its group) or `ESRCH` (no such process).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn setpgid(pid: ::libc::pid_t, pgid: ::libc::pid_t) -> c_int {
    match (pid, pgid) {
        (0 | 1, 0 | 1) => 0,
        (0 | 1, _) => fail(::libc::EPERM),
        _ => fail(::libc::ESRCH),
    }
}

/// `setsid()`: `EPERM`, as for any process-group leader.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn setsid() -> ::libc::pid_t {
    fail(::libc::EPERM)
}

/// `getpwuid_r(uid, pwd, buf, len, result)`: a guest has no user
/// database, so no user is found: 0 with `*result` NULL, as glibc
/// answers for a uid that `/etc/passwd` lacks (std's `home_dir` then
/// falls back to `None` unless `HOME` is set).
///
/// # Safety
///
/// `result` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getpwuid_r(
    _uid: ::libc::uid_t,
    _pwd: *mut ::libc::passwd,
    _buf: *mut c_char,
    _len: ::libc::size_t,
    result: *mut *mut ::libc::passwd,
) -> c_int {
    // SAFETY: the caller guarantees result is writable.
    unsafe { result.write(core::ptr::null_mut()) };
    0
}

/// `getpwnam_r(name, ...)`: as [`getpwuid_r`], nobody is found.
///
/// # Safety
///
/// `result` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getpwnam_r(
    _name: *const c_char,
    _pwd: *mut ::libc::passwd,
    _buf: *mut c_char,
    _len: ::libc::size_t,
    result: *mut *mut ::libc::passwd,
) -> c_int {
    // SAFETY: the caller guarantees result is writable.
    unsafe { result.write(core::ptr::null_mut()) };
    0
}

/// `getrusage(who, usage)`: the guest's own (`RUSAGE_SELF`, and
/// `RUSAGE_THREAD`, whose time is the guest's too: green threads share one
/// host thread); children have none (all zero). User time is the time
/// since the guest started, as `CLOCK_PROCESS_CPUTIME_ID` (the guest does
/// not know how much of it the host gave it), the largest resident set the
/// heap in use in KiB; the rest is zero.
///
/// # Safety
///
/// `usage` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getrusage(who: c_int, usage: *mut ::libc::rusage) -> c_int {
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut u: ::libc::rusage = unsafe { core::mem::zeroed() };
    match who {
        ::libc::RUSAGE_SELF | ::libc::RUSAGE_THREAD => {
            let t = libos::time::since_boot();
            u.ru_utime = ::libc::timeval {
                tv_sec: t.as_secs() as ::libc::time_t,
                tv_usec: ::libc::suseconds_t::from(t.subsec_micros()),
            };
            u.ru_maxrss = (libos::heap_stats().in_use / 1024) as ::libc::c_long;
        }
        ::libc::RUSAGE_CHILDREN => {}
        _ => return fail(::libc::EINVAL),
    }
    // SAFETY: the caller guarantees usage is writable.
    unsafe { usage.write(u) };
    0
}

/// `prctl(option, ...)`: `PR_SET_NAME` and `PR_GET_NAME` name the calling
/// thread (as `pthread_setname_np`); `PR_GET_DUMPABLE` is 0 (a guest never
/// dumps core); any other option is `EINVAL`, as for an option the kernel
/// does not know. Declared with five arguments: on x86_64 a variadic call
/// passes them in the same registers.
///
/// # Safety
///
/// For the name options, `a2` is a NUL-terminated string (`PR_SET_NAME`)
/// or writable for 16 bytes (`PR_GET_NAME`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn prctl(
    option: c_int,
    a2: usize,
    _a3: usize,
    _a4: usize,
    _a5: usize,
) -> c_int {
    let me = super::thread::pthread_self();
    let r = match option {
        // SAFETY: the caller guarantees a NUL-terminated name.
        ::libc::PR_SET_NAME => unsafe {
            super::thread::pthread_setname_np(me, a2 as *const c_char)
        },
        // SAFETY: the caller guarantees 16 writable bytes.
        ::libc::PR_GET_NAME => unsafe {
            super::thread::pthread_getname_np(me, a2 as *mut c_char, 16)
        },
        ::libc::PR_GET_DUMPABLE => return 0,
        _ => ::libc::EINVAL,
    };
    if r == 0 { 0 } else { fail(r) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_keeps_its_identities_and_has_no_children() {
        assert_eq!(setuid(0), 0);
        assert_eq!(setuid(1000), -1);
        assert_eq!(super::super::errno(), ::libc::EPERM);
        assert_eq!(setpgid(0, 0), 0);
        assert_eq!(setpgid(7, 0), -1);
        assert_eq!(super::super::errno(), ::libc::ESRCH);
        assert_eq!(setsid(), -1);
        assert_eq!(fork(), -1);
        assert_eq!(super::super::errno(), ::libc::ENOSYS);
        assert_eq!(waitid(::libc::P_ALL, 0, core::ptr::null_mut(), 0), -1);
        assert_eq!(super::super::errno(), ::libc::ECHILD);
        // SAFETY: no groups are read when n is 0; [0] is readable.
        unsafe {
            assert_eq!(setgroups(0, core::ptr::null()), 0);
            assert_eq!(setgroups(1, [0].as_ptr()), 0);
            assert_eq!(setgroups(1, [5].as_ptr()), -1);
        }
    }
}
