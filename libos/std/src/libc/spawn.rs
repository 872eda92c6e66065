//! `posix_spawn` and its attribute and file-action objects. A guest
//! cannot start another program, so the spawn itself returns `ENOSYS`
//! (std's `Command::spawn`, `output` and `status` then report
//! `ErrorKind::Unsupported`); the objects std prepares before it are
//! accepted and ignored, so that the refusal comes from the spawn, with
//! one clear error, whatever options the `Command` had.

use super::{c_char, c_int};

type Actions = ::libc::posix_spawn_file_actions_t;
type Attr = ::libc::posix_spawnattr_t;

/// `posix_spawn(pid, path, actions, attr, argv, envp)`: `ENOSYS` (the
/// error number is returned, as `posix_spawn` does, not set in `errno`).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn posix_spawn(
    _pid: *mut ::libc::pid_t,
    _path: *const c_char,
    _actions: *const Actions,
    _attr: *const Attr,
    _argv: *const *mut c_char,
    _envp: *const *mut c_char,
) -> c_int {
    ::libc::ENOSYS
}

/// `posix_spawnp(pid, file, actions, attr, argv, envp)`: as
/// [`posix_spawn`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn posix_spawnp(
    pid: *mut ::libc::pid_t,
    file: *const c_char,
    actions: *const Actions,
    attr: *const Attr,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    posix_spawn(pid, file, actions, attr, argv, envp)
}

/// Defines functions that accept a spawn object and its arguments and
/// succeed (returning 0): nothing is ever spawned with them.
macro_rules! accepted {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        $(#[$doc])*
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub extern "C" fn $name($($arg: $ty),*) -> c_int {
            let _ = ($($arg,)*);
            0
        }
    )*};
}

accepted! {
    /// `posix_spawn_file_actions_init(actions)`.
    fn posix_spawn_file_actions_init(actions: *mut Actions);
    /// `posix_spawn_file_actions_destroy(actions)`.
    fn posix_spawn_file_actions_destroy(actions: *mut Actions);
    /// `posix_spawn_file_actions_adddup2(actions, fd, newfd)`.
    fn posix_spawn_file_actions_adddup2(actions: *mut Actions, fd: c_int, newfd: c_int);
    /// `posix_spawn_file_actions_addclose(actions, fd)`.
    fn posix_spawn_file_actions_addclose(actions: *mut Actions, fd: c_int);
    /// `posix_spawn_file_actions_addopen(actions, fd, path, flags, mode)`.
    fn posix_spawn_file_actions_addopen(
        actions: *mut Actions,
        fd: c_int,
        path: *const c_char,
        flags: c_int,
        mode: ::libc::mode_t
    );
    /// `posix_spawnattr_init(attr)`.
    fn posix_spawnattr_init(attr: *mut Attr);
    /// `posix_spawnattr_destroy(attr)`.
    fn posix_spawnattr_destroy(attr: *mut Attr);
    /// `posix_spawnattr_setflags(attr, flags)`.
    fn posix_spawnattr_setflags(attr: *mut Attr, flags: ::libc::c_short);
    /// `posix_spawnattr_setpgroup(attr, pgroup)`.
    fn posix_spawnattr_setpgroup(attr: *mut Attr, pgroup: ::libc::pid_t);
    /// `posix_spawnattr_setsigdefault(attr, set)`.
    fn posix_spawnattr_setsigdefault(attr: *mut Attr, set: *const ::libc::sigset_t);
    /// `posix_spawnattr_setsigmask(attr, set)`.
    fn posix_spawnattr_setsigmask(attr: *mut Attr, set: *const ::libc::sigset_t);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_spawned() {
        let mut pid = 0;
        let r = posix_spawnp(
            &mut pid,
            c"true".as_ptr(),
            core::ptr::null(),
            core::ptr::null(),
            core::ptr::null(),
            core::ptr::null(),
        );
        assert_eq!(r, ::libc::ENOSYS);
        assert_eq!(pid, 0);
        assert_eq!(posix_spawnattr_init(core::ptr::null_mut()), 0);
    }
}
