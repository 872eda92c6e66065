//! A guest under the tender whose console the test reads line by line as
//! it runs: to wait for a line, signal the tender, and see how it ended.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::netns::Netns;
use super::{KillOnDrop, tender};

/// A guest under the tender, its console read line by line.
pub struct Guest {
    child: KillOnDrop,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Guest {
    /// Starts `command` (the tender, or `ip netns exec NS tender`) with
    /// SIGTERM at its default disposition and SIGINT at `sigint`'s.
    #[allow(unsafe_code)]
    pub fn start(mut command: Command, sigint: libc::sighandler_t) -> Self {
        // SAFETY: in the forked child before exec: signal() only.
        unsafe {
            command.pre_exec(move || {
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                libc::signal(libc::SIGINT, sigint);
                Ok(())
            });
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the tender");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child: KillOnDrop(child), lines, seen: Vec::new() }
    }

    /// The tender with `args`, here.
    pub fn tender<S: AsRef<OsStr>>(args: &[S]) -> Self {
        let mut c = Command::new(tender());
        c.args(args);
        Self::start(c, libc::SIG_DFL)
    }

    /// The tender with `args`, in `ns`.
    pub fn tender_in<S: AsRef<OsStr>>(ns: &Netns, args: &[S]) -> Self {
        let mut c = ns.command(tender());
        c.args(args);
        Self::start(c, libc::SIG_DFL)
    }

    pub fn pid(&self) -> i32 {
        self.child.0.id() as i32
    }

    /// Waits (20 s at most) for a line containing `needle`.
    pub fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.last().is_some_and(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {needle:?}; the guest said {:#?}", self.seen),
            }
        }
    }

    #[allow(unsafe_code)]
    pub fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child (the tender; `ip` execs it).
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.0.try_wait().expect("try_wait").is_none()
    }

    /// Waits (20 s at most) for it to end; its status and every line it
    /// printed.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.0.try_wait().expect("try_wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "still running: {:#?}", self.seen);
            std::thread::sleep(Duration::from_millis(5));
        };
        self.seen.extend(self.lines.iter());
        (status, std::mem::take(&mut self.seen))
    }
}
