//! Data written before a guest ends reaches the peer, as on Linux (issue
//! 13; `libos::net::linger`, docs/networking.md "When the guest exits"):
//! a guest, std (tests/std's `std-net flood`) and `no_std`
//! (`guest-exitflush`), writes 4 MiB to a client of this suite that reads
//! slowly through a small receive buffer, then exits with the connection
//! open, or closes it and exits later: the client reads every byte, then
//! a clean end of stream. A client that never reads: the guest still
//! exits, within the bound, with its own status and a notice of the
//! reset; `SIGTERM` during that wait ends it at once.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::netns::{Netns, require_root};
use support::{std_guest, tender, workspace_bin};

const BYTES: usize = 4 << 20;

/// The guests under test: std and `no_std`.
#[derive(Debug, Clone, Copy)]
enum Guest {
    Std,
    NoStd,
}

impl Guest {
    /// The tender's arguments: 10.0.0.2/24 on tap0, the guest writing
    /// `bytes` and ending by `how` (`exit`, `close`, `fill`).
    fn args(self, how: &str, bytes: usize) -> Vec<String> {
        let mut a: Vec<String> = [
            "--net",
            "service0=tap0",
            "--net-mac",
            "service0=02:00:00:00:00:02",
            "--env",
            "NET_SERVICE0_IPV4=10.0.0.2/24",
            "--mem",
            "128",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match self {
            Guest::Std => a.extend([std_guest("std-net"), "flood".into()]),
            Guest::NoStd => a.push(workspace_bin("guest-exitflush").display().to_string()),
        }
        a.extend([how.to_string(), bytes.to_string()]);
        a
    }

    /// The line the guest prints once it wrote `n` bytes.
    fn wrote(self, n: usize) -> String {
        match self {
            Guest::Std => format!("flood: wrote {n}"),
            Guest::NoStd => format!("exitflush: wrote {n}"),
        }
    }
}

/// A namespace with tap0 (host side 10.0.0.1/24) and a listener on
/// 10.0.0.1:7010 whose connections have a small receive buffer (32 KiB,
/// Linux doubles it), so that the guest's data waits in its own send
/// buffer, beyond the window, when it exits.
fn setup(tag: &str) -> (Netns, TcpListener) {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    let listener = ns.enter(|| {
        let l = TcpListener::bind(("10.0.0.1", 7010)).unwrap();
        let size: libc::c_int = 32 * 1024;
        support::setsockopt(l.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &size);
        l
    });
    (ns, listener)
}

/// Accepts one connection and reads it to the end, 16 KiB at a time with
/// `pause` after each read, checking the pattern `i % 251`: the bytes
/// read if the stream ended cleanly, or what went wrong.
fn slow_reader(listener: &TcpListener, pause: Duration) -> Result<usize, String> {
    let (mut s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut n = 0usize;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => {
                if let Some(j) = (0..k).find(|&j| buf[j] != ((n + j) % 251) as u8) {
                    return Err(format!("byte {} is {}", n + j, buf[j]));
                }
                n += k;
                std::thread::sleep(pause);
            }
            Err(e) => return Err(format!("after {n} bytes: {e}")),
        }
    }
}

fn everything_arrives(guest: Guest, how: &str, status: i32) {
    let (ns, listener) = setup(&format!("xf-{}", &how[..2]));
    let reader = std::thread::spawn(move || slow_reader(&listener, Duration::from_millis(5)));
    let out = ns.tender(&guest.args(how, BYTES));
    let read = reader.join().unwrap();
    assert_eq!(out.code(), Some(status), "{out:#?}");
    assert!(out.stdout.contains(&guest.wrote(BYTES)), "{out:#?}");
    assert_eq!(read, Ok(BYTES), "{out:#?}");
    assert!(!out.stdout.contains("exit: reset"), "{out:#?}");
}

#[test]
fn std_exit_sends_everything_then_fin() {
    everything_arrives(Guest::Std, "exit", 3);
}

#[test]
fn std_close_then_exit_sends_everything_then_fin() {
    everything_arrives(Guest::Std, "close", 0);
}

#[test]
fn no_std_exit_sends_everything_then_fin() {
    everything_arrives(Guest::NoStd, "exit", 3);
}

#[test]
fn no_std_close_then_return_sends_everything_then_fin() {
    everything_arrives(Guest::NoStd, "close", 0);
}

/// A client that accepts and never reads, until `done` says so.
/// A connection idle long enough to be parked out of smoltcp's socket set
/// (docs/networking.md, "Idle connections") is finished at exit like any
/// other: its data, then a FIN, and the busy one's too.
#[test]
fn std_exit_finishes_a_parked_idle_connection() {
    let (ns, listener) = setup("xf-pk");
    let reader = std::thread::spawn(move || {
        let idle = slow_reader(&listener, Duration::ZERO);
        let busy = listener.accept().map(|(mut s, _)| {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).map(|_| got)
        });
        (idle, busy)
    });
    let out = ns.tender(&Guest::Std.args("parked", 4096));
    let (idle, busy) = reader.join().unwrap();
    assert_eq!(out.code(), Some(3), "{out:#?}");
    assert_eq!(idle, Ok(4096), "{out:#?}");
    assert_eq!(busy.unwrap().unwrap(), vec![b'b'; 30], "{out:#?}");
    assert!(!out.stdout.contains("exit: reset"), "{out:#?}");
}

fn never_reader(listener: TcpListener) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let _ = rx.recv_timeout(Duration::from_secs(30));
        drop(s);
    });
    (tx, t)
}

fn never_read_bounded(guest: Guest) {
    let (ns, listener) = setup("xf-nr");
    let (done, reader) = never_reader(listener);
    let start = Instant::now();
    let out = ns.tender(&guest.args("fill", BYTES));
    let took = start.elapsed();
    done.send(()).unwrap();
    reader.join().unwrap();
    assert_eq!(out.code(), Some(3), "{out:#?}");
    assert!(out.stdout.contains("wrote"), "{out:#?}");
    // The linger's bound: no progress for 3 s (libos::net::linger::STALL).
    assert!(
        out.stdout.contains("exit: reset 1 connection(s)")
            && out.stdout.contains("no progress for 3 s"),
        "{out:#?}"
    );
    // Which bound cut the linger is the notice's to say (no timing
    // assertion beyond the wait it must have made: this machine may be
    // slow).
    eprintln!("{guest:?}: the tender ran {took:?} (the linger cut after 3 s without progress)");
    assert!(took >= Duration::from_secs(3), "did not wait for the peer: {took:?}");
}

#[test]
fn std_exit_with_a_peer_that_never_reads_ends_within_the_bound() {
    never_read_bounded(Guest::Std);
}

#[test]
fn no_std_exit_with_a_peer_that_never_reads_ends_within_the_bound() {
    never_read_bounded(Guest::NoStd);
}

#[allow(unsafe_code)]
fn sigterm_ends_the_linger(guest: Guest) {
    let (ns, listener) = setup("xf-sig");
    let (done, reader) = never_reader(listener);
    let child = ns
        .command(tender())
        .args(guest.args("fill", BYTES))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = support::KillOnDrop(child);
    let child = &mut guard.0;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).expect("the guest's line");
    assert!(line.contains("wrote"), "{line}");
    // Well into the linger, before its bound.
    std::thread::sleep(Duration::from_millis(700));
    let signalled = Instant::now();
    // SAFETY: kill of our own child (ip netns exec execs the tender).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(signalled.elapsed() < Duration::from_secs(10), "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = signalled.elapsed();
    // The console (stdout) after the line above, to its end.
    let rest: Vec<String> = rx.iter().collect();
    let rest = rest.join("\n");
    done.send(()).unwrap();
    reader.join().unwrap();
    assert_eq!(status.code(), Some(3), "{rest}");
    assert!(rest.contains("exit: reset 1 connection(s)"), "{rest}");
    assert!(rest.contains("SIGTERM during the exit"), "{rest}");
    // The notice says the signal, not a bound, cut the linger.
    eprintln!("{guest:?}: ended {took:?} after SIGTERM");
}

#[test]
fn std_sigterm_during_the_exit_ends_it_at_once() {
    sigterm_ends_the_linger(Guest::Std);
}

#[test]
fn no_std_sigterm_during_the_exit_ends_it_at_once() {
    sigterm_ends_the_linger(Guest::NoStd);
}
