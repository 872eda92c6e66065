//! Termination signals as guest events: `SIGTERM` and `SIGINT` reach the
//! guest as fds it can wait on, without a system call of their own.
//!
//! Once the filter is in place the guest can neither install a handler
//! (`rt_sigaction`), nor return from one (`rt_sigreturn`), nor change its
//! mask. So the tender, before it seals the process, opens one `signalfd`
//! for each of `abi::EVENT_SIGNALS` and blocks those signals: a `SIGTERM`
//! sent to the process then waits, pending, and its fd polls readable.
//! The guest adds the fds to the `ppoll` it already makes (the filter's
//! bound on `nfds` grows by their number) and never reads them: no rule is
//! added but that bound, and no system call number. What the guest does
//! with a pending signal (exit as Linux's default action would, ignore it,
//! or hand it to the application) is libos's business: see
//! `docs/abi.md`, "Signals".
//!
//! A signal the tender's caller left ignored (`nohup`, a shell's
//! background job and `SIGINT`) stays ignored: it gets no fd and is not
//! blocked, because a blocked signal is never discarded by the kernel and
//! would then reach the guest. Under a debugger `SIGINT` is left alone
//! too, so that the debugger's Ctrl-C still interrupts the guest.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Opening a signalfd or blocking the signals failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// Reading a signal's disposition failed.
    #[error("cannot read the disposition of signal {signal}: {source}")]
    Disposition {
        /// The signal number.
        signal: i32,
        /// The host's error.
        source: io::Error,
    },
    /// `signalfd` failed.
    #[error("signalfd for signal {signal}: {source}")]
    Open {
        /// The signal number.
        signal: i32,
        /// The host's error.
        source: io::Error,
    },
    /// `sigprocmask(SIG_BLOCK)` failed.
    #[error("cannot block signals {signals:?}: {source}")]
    Block {
        /// The signal numbers.
        signals: Vec<i32>,
        /// The host's error.
        source: io::Error,
    },
}

/// The signalfds, in the order of `abi::EVENT_SIGNALS`.
#[derive(Debug)]
pub struct Signals {
    fds: Vec<(i32, Option<OwnedFd>)>,
}

/// A signal set holding `signals`.
fn set_of(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it and
    // sigaddset only sets bits of valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Whether the process ignores `signal` (`SIG_IGN`, inherited).
fn ignored(signal: i32) -> Result<bool, SignalError> {
    // SAFETY: reading the current action into a zeroed sigaction; no
    // handler is installed.
    let (ret, old) = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal, std::ptr::null(), &mut old), old)
    };
    if ret != 0 {
        return Err(SignalError::Disposition { signal, source: io::Error::last_os_error() });
    }
    Ok(old.sa_sigaction == libc::SIG_IGN)
}

impl Signals {
    /// Opens a non-blocking, close-on-exec signalfd for each signal of
    /// `abi::EVENT_SIGNALS` the process does not ignore. Blocks nothing
    /// yet: [`Signals::block`] does, just before the jump.
    ///
    /// `debugged`: a debugger watches the process (`debugger::watched`).
    /// Then `SIGINT` is left alone, neither blocked nor handed over: a
    /// debugger only sees a signal the process does not block, and its
    /// Ctrl-C, which interrupts the guest, is a `SIGINT`.
    pub fn open(debugged: bool) -> Result<Self, SignalError> {
        let mut fds = Vec::new();
        for signal in abi::EVENT_SIGNALS.map(|s| s as i32) {
            if ignored(signal)? || (debugged && signal == libc::SIGINT) {
                fds.push((signal, None));
                continue;
            }
            let set = set_of(&[signal]);
            // SAFETY: set is a valid sigset_t; -1 asks for a new fd.
            let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
            if fd < 0 {
                return Err(SignalError::Open { signal, source: io::Error::last_os_error() });
            }
            // SAFETY: fd is a new descriptor that nothing else owns.
            fds.push((signal, Some(unsafe { OwnedFd::from_raw_fd(fd) })));
        }
        Ok(Self { fds })
    }

    /// How many fds the guest may add to its `ppoll`.
    pub fn pollable(&self) -> u64 {
        self.fds.iter().filter(|(_, fd)| fd.is_some()).count() as u64
    }

    /// `BootInfo::signal_fds`: each fd, or -1.
    pub fn boot_fds(&self) -> [i32; 2] {
        let mut out = [-1; 2];
        for (slot, (_, fd)) in out.iter_mut().zip(&self.fds) {
            *slot = fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        }
        out
    }

    /// The fds the guest keeps.
    pub fn raw_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.fds.iter().filter_map(|(_, fd)| fd.as_ref().map(AsRawFd::as_raw_fd))
    }

    /// Blocks the signals that have an fd, so that from now on they wait
    /// on it instead of ending the process. The last step before sealing:
    /// until here, a `SIGTERM` ends the tender as it would any process.
    /// Keeps the fds open for the guest (they are forgotten, not closed).
    pub fn block(self) -> Result<(), SignalError> {
        let signals: Vec<i32> =
            self.fds.iter().filter(|(_, fd)| fd.is_some()).map(|&(s, _)| s).collect();
        let set = set_of(&signals);
        // SAFETY: set is a valid sigset_t; the old mask is not wanted.
        if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
            return Err(SignalError::Block { signals, source: io::Error::last_os_error() });
        }
        for (_, fd) in self.fds {
            if let Some(fd) = fd {
                // The guest owns it from now on.
                std::mem::forget(fd);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_waits_on_its_fd() {
        // In a child, so that blocking and raising touch no other test.
        // SAFETY: fork in a test process; the child only makes system
        // calls and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // Both at their default disposition, whatever this process
            // inherited: run as a shell's background job (`cmd &`), it
            // ignores SIGINT, and an ignored signal gets no fd.
            // SAFETY: setting dispositions in the child only.
            unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                libc::signal(libc::SIGINT, libc::SIG_DFL);
            }
            let code = (|| {
                let s = Signals::open(false).ok()?;
                if s.pollable() != 2 {
                    return Some(2);
                }
                let [term, int] = s.boot_fds();
                s.block().ok()?;
                // SAFETY: raising a blocked signal; it stays pending.
                unsafe { libc::raise(libc::SIGTERM) };
                let mut p = [
                    libc::pollfd { fd: term, events: libc::POLLIN, revents: 0 },
                    libc::pollfd { fd: int, events: libc::POLLIN, revents: 0 },
                ];
                // SAFETY: two valid pollfds, zero timeout.
                let n = unsafe { libc::poll(p.as_mut_ptr(), 2, 0) };
                Some(if n == 1 && p[0].revents == libc::POLLIN && p[1].revents == 0 {
                    0
                } else {
                    3
                })
            })()
            .unwrap_or(1);
            // SAFETY: ends the child without running the test harness's exit.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "child died: {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }

    #[test]
    fn an_ignored_signal_gets_no_fd() {
        // SAFETY: as above.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: ignoring SIGINT in the child.
            unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
            let code = match Signals::open(false) {
                Ok(s) if s.pollable() == 1 && s.boot_fds()[1] == -1 && s.boot_fds()[0] >= 0 => 0,
                _ => 1,
            };
            // SAFETY: as above.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{status:#x}");
    }
}
