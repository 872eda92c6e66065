//! What std can ask of the C library beyond printing, and how a guest
//! answers: each area (the first argument) prints one line per operation,
//! `name: ok ...` or `name: err <kind>: <message>`, which the suite
//! (tests/suite/std_runtime.rs) compares with what Linux gives or refuses.
//! Nothing here may abort or make a system call outside the filter.

libos_std::app!();

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

fn report<T: std::fmt::Debug>(name: &str, r: io::Result<T>) {
    match r {
        Ok(v) => println!("{name}: ok {v:?}"),
        Err(e) => println!("{name}: err {:?}: {e}", e.kind()),
    }
}

fn process() {
    report("spawn", Command::new("/bin/true").spawn().map(|c| c.id()));
    report("output", Command::new("ls").arg("-l").output().map(|o| o.status));
    report("status", Command::new("sh").args(["-c", "exit 3"]).status());
    let mut cmd = Command::new("/bin/cat");
    cmd.arg("x")
        .env("A", "1")
        .env_remove("B")
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .uid(0)
        .gid(0)
        .process_group(0)
        .arg0("cat");
    // SAFETY: the closure calls nothing (it never runs: nothing spawns).
    unsafe {
        cmd.pre_exec(|| Ok(()));
    }
    report("spawn-with-options", cmd.spawn().map(|c| c.id()));
    let err = Command::new("/bin/true").exec();
    println!("exec: err {:?}: {err}", err.kind());
    report("exit-status-from-raw", Ok(std::process::ExitStatus::from_raw(3 << 8).code()));
    // SAFETY: fork, kill and raise only return an error here.
    unsafe {
        let pid = libc::fork();
        println!("fork: {pid} {}", io::Error::last_os_error());
        let r = libc::kill(1, libc::SIGTERM);
        println!("kill: {r} {}", io::Error::last_os_error());
        let r = libc::raise(libc::SIGUSR1);
        println!("raise: {r} {}", io::Error::last_os_error());
        let mut status = 0;
        let r = libc::waitpid(-1, &mut status, 0);
        println!("waitpid: {r} {}", io::Error::last_os_error());
    }
    println!("id: {}", std::process::id());
}

extern "C" fn on_signal(_: libc::c_int) {}

fn signals() {
    // SAFETY: a handler that does nothing; old and new actions are live.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_signal as *const () as usize;
        let r = libc::sigaction(libc::SIGUSR1, &act, std::ptr::null_mut());
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut old);
        println!("sigaction: {r} {}", old.sa_sigaction == act.sa_sigaction);
        let r = libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        println!("signal: {}", r != libc::SIG_ERR);
    }
}

fn net() {
    for name in
        ["127.0.0.1:80", "[::1]:443", "localhost:8080", "example.com:80", "no-such-host.invalid:1"]
    {
        report(&format!("resolve {name}"), name.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
    }
    report(
        "resolve (host, port)",
        ("localhost", 7).to_socket_addrs().map(|a| a.collect::<Vec<_>>()),
    );
}

/// Sockets without a net device, socket pairs and pipes.
fn sockets() {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::unix::net::{UnixListener, UnixStream};
    report("tcp-bind", TcpListener::bind("0.0.0.0:8080").map(|_| ()));
    report("tcp-connect", TcpStream::connect("127.0.0.1:8080").map(|_| ()));
    report("udp-bind", UdpSocket::bind("0.0.0.0:0").map(|_| ()));
    report("unix-pair", UnixStream::pair().map(|_| ()));
    report("unix-bind", UnixListener::bind("/sock").map(|_| ()));
    report("pipe", io::pipe().map(|_| ()));
}

fn misc() {
    report("current_dir", std::env::current_dir());
    report("current_exe", std::env::current_exe());
    #[allow(deprecated)]
    let home = std::env::home_dir();
    println!("home_dir: {home:?}");
    println!("temp_dir: {:?}", std::env::temp_dir());
    report("available_parallelism", std::thread::available_parallelism());
    // SAFETY: sysconf reads nothing of the caller's.
    unsafe {
        println!(
            "sysconf: pagesize {} nprocs {} openmax {} clk_tck {}",
            libc::sysconf(libc::_SC_PAGESIZE),
            libc::sysconf(libc::_SC_NPROCESSORS_ONLN),
            libc::sysconf(libc::_SC_OPEN_MAX),
            libc::sysconf(libc::_SC_CLK_TCK),
        );
    }
    let mut host = [0u8; 64];
    // SAFETY: host is writable for its length.
    let r = unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) };
    let end = host.iter().position(|&b| b == 0).unwrap_or(0);
    println!("gethostname: {r} {}", String::from_utf8_lossy(&host[..end]));
}

fn console() {
    let mut input = Vec::new();
    report("stdin", io::stdin().read_to_end(&mut input));
    let mut line = String::new();
    report("stdin-line", io::stdin().read_line(&mut line));
    eprintln!("to stderr");
    print!("unterminated line, flushed at exit");
    let _ = io::stderr().flush();
}

fn env() {
    // SAFETY: one thread.
    unsafe {
        std::env::set_var("NABLA_SET", "yes");
        std::env::remove_var("NABLA_REMOVE");
    }
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (k, v) in vars {
        println!("var {k}={v}");
    }
    println!("NABLA_SET={:?}", std::env::var("NABLA_SET"));
    println!("NABLA_REMOVE={:?}", std::env::var("NABLA_REMOVE"));
    println!("args: {:?}", std::env::args().collect::<Vec<_>>());
}

fn random() {
    let map: HashMap<u32, ()> = (0..32).map(|i| (i, ())).collect();
    let order: Vec<String> = map.keys().map(|k| k.to_string()).collect();
    println!("order: {}", order.join(","));
    let mut bytes = [0u8; 16];
    // SAFETY: bytes is writable for its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    println!("getrandom: {n} {bytes:02x?}");
}

fn strerror() {
    for n in 1..=133 {
        println!("{n}: {}", io::Error::from_raw_os_error(n));
    }
}

#[allow(unsafe_code)]
fn syscall() {
    println!("making getppid directly");
    // SAFETY: getppid has no arguments and no effect; the filter kills the
    // guest before it runs.
    unsafe {
        std::arch::asm!("syscall", inlateout("rax") libc::SYS_getppid => _, out("rcx") _, out("r11") _);
    }
    println!("still alive");
}

/// The clocks as std and C programs read them: `Instant` and `SystemTime`
/// 100,000 times each on the main thread and 50,000 on another (a green
/// thread with a stack of its own), and `clock_gettime` of the other
/// clocks, `gettimeofday`, `time` once each. The monotonic clock must never
/// go back, and every clock must agree with the others.
fn clock() {
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
    fn reads(n: u32) -> Result<(), String> {
        let mut last = Instant::now();
        for i in 0..n {
            let now = Instant::now();
            if now < last {
                return Err(format!("monotonic clock went back: {last:?} then {now:?}"));
            }
            last = now;
            std::hint::black_box(SystemTime::now());
            if i % 1000 == 0 {
                // Let the other thread run too.
                std::thread::yield_now();
            }
        }
        Ok(())
    }
    let other = std::thread::spawn(|| reads(50_000));
    report("main thread", reads(100_000).map_err(io::Error::other));
    report("other thread", other.join().unwrap().map_err(io::Error::other));
    let ts = |id| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: ts is a writable timespec.
        assert_eq!(unsafe { libc::clock_gettime(id, &mut ts) }, 0, "clock {id}");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    };
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
    // SAFETY: tv is a writable timeval; the time zone may be NULL.
    assert_eq!(unsafe { libc::gettimeofday(&mut tv, std::ptr::null_mut()) }, 0);
    // SAFETY: time accepts NULL.
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    let close = |a: Duration, b: Duration| a.abs_diff(b) < Duration::from_secs(2);
    println!(
        "wall clocks agree: {}",
        close(wall, ts(libc::CLOCK_REALTIME))
            && close(wall, ts(libc::CLOCK_REALTIME_COARSE))
            && close(wall, Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
            && close(wall, Duration::from_secs(t as u64))
    );
    let mono = ts(libc::CLOCK_MONOTONIC);
    println!(
        "monotonic clocks agree: {}",
        [libc::CLOCK_MONOTONIC_COARSE, libc::CLOCK_MONOTONIC_RAW, libc::CLOCK_BOOTTIME]
            .into_iter()
            .all(|id| close(mono, ts(id)))
    );
    println!("wall_ns={}", wall.as_nanos());
}

fn main() {
    if std::env::args().count() > 99 {
        let _ = referenced_only();
    }
    let area = std::env::args().nth(1).unwrap_or_default();
    match area.as_str() {
        "process" => process(),
        "signals" => signals(),
        "net" => net(),
        "sockets" => sockets(),
        "misc" => misc(),
        "console" => console(),
        "env" => env(),
        "random" => random(),
        "strerror" => strerror(),
        "syscall" => syscall(),
        "clock" => clock(),
        "exit" => {
            let code: i32 = std::env::args().nth(2).and_then(|c| c.parse().ok()).unwrap_or(0);
            // No newline: process::exit flushes stdout's line buffer.
            print!("exiting with {code}");
            std::process::exit(code)
        }
        other => {
            eprintln!("unknown area {other:?}");
            std::process::exit(2)
        }
    }
}

/// Sockets: not exercised here (the network's suites will), only
/// referenced, so that the link needs every symbol they call. (Files and
/// threads have their own guests.)
#[allow(dead_code)]
fn referenced_only() -> io::Result<()> {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
    let l = TcpListener::bind("127.0.0.1:0")?;
    let (mut s, _) = l.accept()?;
    s.set_nodelay(true)?;
    s.set_read_timeout(None)?;
    s.set_ttl(3)?;
    s.peer_addr()?;
    s.local_addr()?;
    s.shutdown(std::net::Shutdown::Both)?;
    s.set_nonblocking(true)?;
    s.peek(&mut [0; 4])?;
    s.take_error()?;
    s.try_clone()?;
    s.write_all(b"x")?;
    let _ = TcpStream::connect_timeout(&"1.2.3.4:5".parse().unwrap(), std::time::Duration::ZERO)?;
    let u = UdpSocket::bind("0.0.0.0:0")?;
    u.send_to(b"x", "1.2.3.4:5")?;
    u.recv_from(&mut [0; 4])?;
    u.set_broadcast(true)?;
    u.join_multicast_v4(&"224.0.0.1".parse().unwrap(), &"0.0.0.0".parse().unwrap())?;
    u.connect("1.2.3.4:5")?;
    u.send(b"x")?;
    u.recv(&mut [0; 4])?;
    let _ = UnixStream::connect("/x")?;
    let _ = UnixStream::pair()?;
    let _ = UnixListener::bind("/y")?.accept()?;
    let _ = UnixDatagram::unbound()?;
    let _ = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let _ = std::io::IsTerminal::is_terminal(&std::io::stdout());
    Ok(())
}
