//! The container process: forked at `create`, set up (namespace, console,
//! limits, user), then blocked opening the exec fifo until `start` opens its
//! other end; then it execs the tender, so the pid `create` reported is the
//! tender's.
//!
//! Detached (`create`, `run -d`), the process is a grandchild in a session
//! of its own: the runtime's child forks it and exits, so the container process
//! is reparented to the caller's subreaper (containerd's shim, conmon), which
//! reaps it and reads the guest's exit status. It keeps only stdin, stdout
//! and stderr (the container's stdio, as the caller passed them to the
//! runtime, or the console's pty) and the `--preserve-fds`.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::bundle::Rlimit;

/// How to start the container process.
#[derive(Debug)]
pub struct Spawn {
    /// The tender's argv (argv[0] is its path).
    pub argv: Vec<String>,
    pub fifo: PathBuf,
    /// Unshare a new, empty network namespace first.
    pub new_netns: bool,
    pub console_socket: Option<PathBuf>,
    /// Double fork into a new session, for a subreaper to adopt.
    pub detach: bool,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub rlimits: Vec<Rlimit>,
    pub preserve_fds: u32,
    /// Instead of exec'ing the tender, wait for a signal (a pod sandbox).
    pub pause: bool,
}

fn cstring(s: impl AsRef<[u8]>) -> Result<CString, Error> {
    CString::new(s.as_ref()).map_err(|_| Error("an argument holds a NUL byte".into()))
}

/// Forks the container process and waits until it is set up and blocked on
/// the exec fifo. Returns its pid.
pub fn spawn(s: &Spawn) -> Result<i32, Error> {
    let argv: Vec<CString> = s.argv.iter().map(cstring).collect::<Result<_, _>>()?;
    let fifo = cstring(s.fifo.as_os_str().as_bytes())?;
    let mut fds = [0 as RawFd; 2];
    // SAFETY: a valid array of two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error(format!("pipe: {}", std::io::Error::last_os_error())));
    }
    let (r, w) = (fds[0], fds[1]);
    // SAFETY: the runtime is single-threaded, so the child may allocate.
    let first = unsafe { libc::fork() };
    if first < 0 {
        return Err(Error(format!("fork: {}", std::io::Error::last_os_error())));
    }
    if first == 0 {
        // SAFETY: our own pipe's read end.
        unsafe { libc::close(r) };
        if s.detach {
            // SAFETY: a plain call in the forked child.
            let second = unsafe { libc::fork() };
            if second < 0 {
                report(w, &format!("Efork: {}", std::io::Error::last_os_error()));
                exit(1);
            }
            if second > 0 {
                report(w, &format!("P{second}"));
                exit(0);
            }
        } else {
            report(w, &format!("P{}", std::process::id()));
        }
        child(s, &argv, &fifo, s.console_socket.as_deref(), w);
    }
    // SAFETY: our own pipe's write end, no longer needed here.
    unsafe { libc::close(w) };
    // SAFETY: r is the pipe's read end, owned from here on.
    let mut reader = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(r) });
    let mut text = String::new();
    let _ = reader.read_to_string(&mut text);
    if s.detach {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(first, &mut status, 0) };
    }
    let mut pid = None;
    let mut ready = false;
    for line in text.lines() {
        match line.split_at(line.len().min(1)) {
            ("P", p) => pid = p.parse::<i32>().ok(),
            ("O", _) => ready = true,
            ("E", msg) => {
                if let Some(p) = pid {
                    reap(p, !s.detach);
                }
                let hint = if msg.starts_with("setrlimit") && msg.contains("(os error 1)") {
                    // As runc does, a limit that cannot be set refuses the
                    // create; say why it could not be.
                    ": raising a hard limit above the caller's needs CAP_SYS_RESOURCE (podman: default_ulimits = [] in containers.conf, or --ulimit within the host's limits)"
                } else {
                    ""
                };
                return Err(Error(format!("container process: {msg}{hint}")));
            }
            _ => {}
        }
    }
    match (pid, ready) {
        (Some(p), true) => Ok(p),
        (p, _) => {
            if let Some(p) = p {
                reap(p, !s.detach);
            }
            Err(Error("container process exited while being set up".into()))
        }
    }
}

fn reap(pid: i32, ours: bool) {
    // SAFETY: signalling and reaping a process we made.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        if ours {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

fn report(w: RawFd, msg: &str) {
    let line = format!("{msg}\n");
    // SAFETY: writing a buffer we own to our pipe.
    unsafe { libc::write(w, line.as_ptr().cast(), line.len()) };
}

fn exit(code: i32) -> ! {
    // SAFETY: leaving a forked child without running the parent's atexit.
    unsafe { libc::_exit(code) }
}

/// Reports `Emsg` and exits if `r` is an error.
fn check<T>(w: RawFd, what: &str, r: Result<T, std::io::Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            report(w, &format!("E{what}: {e}"));
            exit(1)
        }
    }
}

fn os(r: libc::c_int) -> Result<libc::c_int, std::io::Error> {
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// The container process after the fork(s): never returns.
fn child(s: &Spawn, argv: &[CString], fifo: &CString, socket: Option<&Path>, w: RawFd) -> ! {
    // SAFETY: resetting this process's own signal state.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    if s.detach || s.console_socket.is_some() {
        // Its own session: out of the caller's job control, and a session
        // leader can take a controlling terminal.
        // SAFETY: a plain call; fails only if already a leader.
        unsafe { libc::setsid() };
    }
    if s.new_netns {
        // SAFETY: a plain syscall on this process.
        check(w, "unshare(CLONE_NEWNET)", os(unsafe { libc::unshare(libc::CLONE_NEWNET) }));
    }
    if let Some(sock) = socket {
        check(w, "console", console(sock));
    }
    for r in &s.rlimits {
        let lim = libc::rlimit { rlim_cur: r.soft, rlim_max: r.hard };
        let what = format!("setrlimit {} (soft {}, hard {})", r.name, r.soft, r.hard);
        // SAFETY: a valid rlimit.
        check(w, &what, os(unsafe { libc::setrlimit(r.resource, &lim) }));
    }
    if s.uid != 0 || s.gid != 0 || !s.groups.is_empty() {
        let groups: Vec<libc::gid_t> = s.groups.clone();
        // SAFETY: a valid list of groups; then plain id changes.
        unsafe {
            check(w, "setgroups", os(libc::setgroups(groups.len(), groups.as_ptr())));
            check(w, "setgid", os(libc::setgid(s.gid)));
            check(w, "setuid", os(libc::setuid(s.uid)));
        }
    }
    report(w, "O");
    // SAFETY: the report pipe, done with (closed explicitly: it may sit
    // among the preserved fds, and create waits for its end).
    unsafe { libc::close(w) };
    // SAFETY: closing every fd but stdio and the preserved ones (the report
    // pipe among them); the fifo is opened after.
    unsafe { libc::syscall(libc::SYS_close_range, 3 + s.preserve_fds, u32::MAX, 0) };
    // Blocks until `start` opens the fifo for reading.
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(fifo.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        fail("exec fifo", std::io::Error::last_os_error(), 1);
    }
    // SAFETY: one byte from a static buffer to our fifo.
    unsafe {
        libc::write(fd, b"0".as_ptr().cast(), 1);
        libc::close(fd);
    }
    if s.pause {
        pause()
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let path = c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let envp = [path.as_ptr(), std::ptr::null()];
    // SAFETY: NULL-terminated arrays of NUL-terminated strings.
    unsafe { libc::execve(ptrs[0], ptrs.as_ptr(), envp.as_ptr()) };
    fail("exec tender", std::io::Error::last_os_error(), 127)
}

extern "C" fn leave(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

/// A pod sandbox's life, like Kubernetes' pause: sleep until SIGTERM or
/// SIGINT (exit 0) or SIGKILL.
fn pause() -> ! {
    // SAFETY: handlers that only call _exit; pause just waits.
    unsafe {
        libc::signal(libc::SIGTERM, leave as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, leave as *const () as libc::sighandler_t);
        loop {
            libc::pause();
        }
    }
}

/// After the report pipe is closed, errors go to the container's stderr.
fn fail(what: &str, e: std::io::Error, code: i32) -> ! {
    let msg = format!("nabla-runc: {what}: {e}\n");
    // SAFETY: writing a buffer we own to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    exit(code)
}

/// Makes a pty, sends its master to the console socket (as runc does, with
/// SCM_RIGHTS), and makes its slave this process's controlling terminal and
/// stdio.
fn console(socket: &Path) -> Result<(), std::io::Error> {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: out-pointers to two ints; no name, termios or size.
    os(unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    })?;
    let stream = std::os::unix::net::UnixStream::connect(socket)?;
    send_fd(&stream, master)?;
    // SAFETY: fds we own.
    unsafe {
        libc::close(master);
        os(libc::ioctl(slave, libc::TIOCSCTTY, 0))?;
        for fd in 0..3 {
            os(libc::dup2(slave, fd))?;
        }
        if slave > 2 {
            libc::close(slave);
        }
    }
    Ok(())
}

fn send_fd(stream: &std::os::unix::net::UnixStream, fd: RawFd) -> Result<(), std::io::Error> {
    use std::os::fd::AsRawFd;
    let name = b"/dev/ptmx";
    let mut iov = libc::iovec { iov_base: name.as_ptr() as *mut _, iov_len: name.len() };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut buf = vec![0u8; space];
    // SAFETY: msghdr is plain data; zeroed is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg_control points at `space` bytes, room for one fd.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        os(libc::sendmsg(stream.as_raw_fd(), &msg, 0) as libc::c_int)?;
    }
    Ok(())
}

/// `start`: opens the exec fifo for reading, which lets the container
/// process (blocked opening its other end) go on to exec the tender, and
/// reads its byte. Gives up if the process dies first.
pub fn release(fifo: &Path, alive: impl Fn() -> bool) -> Result<(), Error> {
    let path = cstring(fifo.as_os_str().as_bytes())?;
    // Non-blocking: the open succeeds at once, with or without a writer.
    // SAFETY: a NUL-terminated path.
    let fd =
        unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error(format!("{}: {}", fifo.display(), std::io::Error::last_os_error())));
    }
    // SAFETY: fd is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    use std::os::fd::AsRawFd;
    loop {
        let mut byte = 0u8;
        // SAFETY: reading one byte into a local.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            return Ok(());
        }
        if !alive() {
            return Err(Error("the container process exited before it was started".into()));
        }
        // Until the writer's open completes the fifo reads as EOF (and
        // polls as hung up): wait a moment and try again.
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
