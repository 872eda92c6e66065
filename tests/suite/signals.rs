//! SIGTERM and SIGINT: the tender hands them to the guest as events
//! (a signalfd each, polled in the guest's `ppoll`s, no new system call).
//! A guest that did not ask ends as Linux's default action ends a process
//! (status 143, 130); one that asked gets the signal (`libos::process::
//! terminated`, std's `sigaction`, `tokio::signal`); one whose caller
//! ignores the signal never sees it. httpd finishes the request under way
//! and exits 0; kvd flushes its log and exits 0, and its data is there at
//! the next start.
//!
//! Each guest is started with both signals at their default disposition,
//! as a shell or a container runtime starts a process, whatever this test
//! process inherited. The httpd and kvd tests run as root in a network
//! namespace of their own with a tap (10.0.0.1 on the host side, the guest
//! at 10.0.0.2).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use support::guest::Guest;
use support::netns::{Netns, require_root};
use support::{TempDir, tender, workspace_bin};

const BASICS: &str = env!("CARGO_BIN_EXE_guest-basics");
const SIGTERM: i32 = libc::SIGTERM;
const SIGINT: i32 = libc::SIGINT;

/// Starts `args`, waits for `ready`, sends `sig`, and returns how it ended.
fn signalled(args: &[&str], ready: &str, sig: i32) -> (ExitStatus, Vec<String>) {
    let mut g = Guest::tender(args);
    g.expect(ready);
    g.signal(sig);
    g.finish()
}

#[test]
fn a_guest_that_did_not_ask_ends_as_linux_ends_a_process() {
    for (sig, status) in [(SIGTERM, 143), (SIGINT, 130)] {
        let (s, lines) = signalled(&[BASICS, "sleep", "30"], "sleeping", sig);
        assert_eq!(s.code(), Some(status), "signal {sig}: {s:?} {lines:#?}");
    }
}

#[test]
fn a_guest_that_asked_gets_the_signal_as_an_event() {
    let (s, lines) = signalled(&[BASICS, "terminated"], "waiting", SIGTERM);
    assert_eq!(s.code(), Some(0), "{lines:#?}");
    assert_eq!(lines.last().unwrap(), "got SIGTERM, exiting");
    let (s, lines) = signalled(&[BASICS, "terminated"], "waiting", SIGINT);
    assert_eq!(s.code(), Some(0), "{lines:#?}");
    assert_eq!(lines.last().unwrap(), "got SIGINT, exiting");
    // A guest that never waits sees it when it asks.
    let (s, lines) = signalled(&[BASICS, "spin-until-asked"], "spinning", SIGTERM);
    assert_eq!(s.code(), Some(0), "{lines:#?}");
    assert_eq!(lines.last().unwrap(), "got SIGTERM while spinning, exiting");
}

#[test]
fn a_signal_the_caller_ignores_stays_ignored() {
    let mut c = Command::new(tender());
    c.args([BASICS, "sleep", "1"]);
    let mut g = Guest::start(c, libc::SIG_IGN);
    g.expect("sleeping");
    // The guest sleeps 1 s: the signal comes while it runs (a process gone
    // before `kill` would prove nothing; the kill of a zombie succeeds).
    assert!(g.running(), "the guest ended before its sleep did");
    g.signal(SIGINT);
    // Not "still running some time later" (under load the 1 s sleep may be
    // over by then): a SIGINT at its default disposition ends the guest
    // with status 130 (`a_guest_that_did_not_ask_ends_as_linux_ends_a_process`), an
    // ignored one lets it end its sleep and exit 0.
    let (s, lines) = g.finish();
    assert_eq!(s.code(), Some(0), "an ignored SIGINT ended the guest: {s:?}: {lines:#?}");
}

#[test]
fn the_signalfds_add_no_system_call_to_the_filter() {
    let print = |sigint| {
        let mut c = Command::new(tender());
        c.args(["--print-seccomp", BASICS]);
        let (s, lines) = Guest::start(c, sigint).finish();
        assert_eq!(s.code(), Some(0), "{lines:#?}");
        lines.join("\n")
    };
    let text = print(libc::SIG_DFL);
    assert!(
        text.starts_with(
            "# nabla policy: 5 rules, 4 distinct system calls (clock_gettime, exit_group, ppoll, \
             write)"
        ),
        "{text}"
    );
    assert!(text.contains("allow ppoll(arg1 <= 2, arg3 == 0)"), "{text}");
    assert!(!text.contains("read("), "{text}");
    // With SIGINT ignored there is one fd to poll.
    assert!(print(libc::SIG_IGN).contains("allow ppoll(arg1 <= 1, arg3 == 0)"));
}

#[test]
fn a_std_guest_runs_its_handlers_and_honours_sig_dfl_and_sig_ign() {
    let guest = workspace_bin("std-signal").display().to_string();
    for (sig, n) in [(SIGTERM, 15), (SIGINT, 2)] {
        let (s, lines) = signalled(&[&guest, "handler"], "ready", sig);
        assert_eq!(s.code(), Some(0), "{lines:#?}");
        assert_eq!(lines.last().unwrap(), &format!("handled {n}"));
    }
    let (s, lines) = signalled(&[&guest, "default"], "ready", SIGTERM);
    assert_eq!(s.code(), Some(143), "{lines:#?}");
    let (s, lines) = signalled(&[&guest, "ignore"], "ready", SIGTERM);
    assert_eq!(s.code(), Some(0), "{lines:#?}");
    assert_eq!(lines.last().unwrap(), "still here");
}

#[test]
fn tokio_signal_and_ctrl_c_wake_a_tokio_program() {
    let guest = workspace_bin("std-signal").display().to_string();
    for (mode, sig, saw) in [
        ("tokio", SIGTERM, "SIGTERM"),
        ("tokio", SIGINT, "ctrl_c"),
        ("tokio-multi", SIGTERM, "SIGTERM"),
    ] {
        let (s, lines) = signalled(&[&guest, mode], "ready", sig);
        assert_eq!(s.code(), Some(0), "{mode} {sig}: {lines:#?}");
        assert_eq!(lines.last().unwrap(), &format!("tokio saw {saw}"));
    }
}

/// A namespace with tap0 (host side 10.0.0.1/24).
fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

const NET: [&str; 6] = [
    "--net",
    "service0=tap0",
    "--net-mac",
    "service0=02:00:00:00:00:02",
    "--env",
    "NET_SERVICE0_IPV4=10.0.0.2/24",
];

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let addr: SocketAddr = addr.parse().unwrap();
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

#[allow(unsafe_code)]
fn kill(pid: i32, sig: i32) {
    // SAFETY: a signal to the test's own child.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn httpd_finishes_the_request_under_way_and_exits_0() {
    let ns = namespace("sighttpd");
    let httpd = workspace_bin("httpd").display().to_string();
    let disk = format!("storage={}", support::site_image().display());
    let mut args: Vec<&str> = NET.to_vec();
    args.extend(["--block-ro", &disk, &httpd]);
    let mut guest = Guest::tender_in(&ns, &args);
    guest.expect("httpd: serving");
    let (mut idle, mut slow) = ns.enter(move || {
        // A kept-alive connection, idle when the signal comes.
        let mut idle = connect("10.0.0.2:80").unwrap();
        idle.write_all(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let n = idle.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        // A request under way: half its head sent.
        let mut slow = connect("10.0.0.2:80").unwrap();
        slow.write_all(b"GET /index.html HTTP/1.1\r\nHost: t\r\n").unwrap();
        (idle, slow)
    });
    // The half head is under way once the guest has it: acknowledged (not
    // after some time, which a loaded machine can exceed).
    wait_acknowledged(&slow);
    guest.signal(SIGTERM);
    // New connections are refused once the guest says so (the listener
    // went before the line), not some time after the signal.
    guest.expect("SIGTERM: no new connections; finishing 2");
    let refused = ns.enter(|| connect("10.0.0.2:80").map(|_| ()).map_err(|e| e.kind()));
    // The idle connection was closed: end of stream.
    let mut buf = [0u8; 4096];
    let idle_end = idle.read(&mut buf).map_err(|e| e.kind());
    slow.write_all(b"\r\n").unwrap();
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (status, lines) = guest.finish();
    assert_eq!(status.code(), Some(0), "{status:?}: {lines:#?}");
    assert_eq!(refused, Err(std::io::ErrorKind::ConnectionRefused), "{lines:#?}");
    assert_eq!(idle_end, Ok(0), "the idle connection must be closed");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{answer}");
    let body = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/httpd/site/index.html"),
    )
    .unwrap();
    assert!(answer.as_bytes().ends_with(&body), "the whole file: {answer}");
    assert_eq!(lines.last().unwrap(), "httpd: stopped");
}

/// Waits (10 s at most) until the peer acknowledged everything written
/// on `s`: nothing left in its send queue (`SIOCOUTQ`).
#[allow(unsafe_code)]
fn wait_acknowledged(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int, into `queued`.
        let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        assert_eq!(r, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
        if queued == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{queued} bytes still unacknowledged after 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One RESP command and its reply (the first line, and a bulk's data).
fn redis(s: &mut TcpStream, argv: &[&str]) -> String {
    let mut cmd = format!("*{}\r\n", argv.len());
    for a in argv {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    if line.starts_with('$') && line.trim_end() != "$-1" {
        let mut data = String::new();
        r.read_line(&mut data).unwrap();
        line.push_str(&data);
    }
    line
}

#[test]
fn kvd_flushes_its_log_exits_0_and_has_the_data_at_the_next_start() {
    let ns = namespace("sigkvd");
    let dir = TempDir::new("sigkvd");
    let img = dir.path().join("kvd.img");
    std::fs::File::create(&img).unwrap().set_len(8 << 20).unwrap();
    let kvd = workspace_bin("kvd").display().to_string();
    let disk = format!("storage={}", img.display());
    let mut args: Vec<&str> = NET.to_vec();
    // `no`: kvd itself never flushes but on the way out.
    args.extend(["--env", "KVD_APPENDFSYNC=no", "--block", &disk, &kvd]);

    let mut guest = Guest::tender_in(&ns, &args);
    guest.expect("kvd: ready");
    let pid = guest.pid();
    ns.enter(move || {
        let mut s = connect("10.0.0.2:6379").unwrap();
        assert_eq!(redis(&mut s, &["SET", "greeting", "hello"]), "+OK\r\n");
        assert_eq!(redis(&mut s, &["RPUSH", "list", "a", "b", "c"]), ":3\r\n");
        kill(pid, SIGTERM);
    });
    let (status, lines) = guest.finish();
    assert_eq!(status.code(), Some(0), "{status:?}: {lines:#?}");
    assert!(lines.iter().any(|l| l == "kvd: SIGTERM: no new connections; flushing the log"));
    assert!(lines.last().unwrap().starts_with("kvd: log flushed ("), "{lines:#?}");

    // The next start replays it; SIGINT stops it the same way.
    let mut guest = Guest::tender_in(&ns, &args);
    guest.expect("kvd: ready");
    let pid = guest.pid();
    let (value, len) = ns.enter(move || {
        let mut s = connect("10.0.0.2:6379").unwrap();
        let v = redis(&mut s, &["GET", "greeting"]);
        let l = redis(&mut s, &["LLEN", "list"]);
        kill(pid, SIGINT);
        (v, l)
    });
    let (status, lines) = guest.finish();
    assert_eq!((value.as_str(), len.as_str()), ("$5\r\nhello\r\n", ":3\r\n"), "{lines:#?}");
    assert_eq!(status.code(), Some(0), "{status:?}: {lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("kvd: SIGINT: no new connections")), "{lines:#?}");
    assert!(status.signal().is_none());
}
