//! Readiness and in-process I/O under libos-std: pipes, eventfd, socket
//! pairs, `poll` and `epoll`, used through std and raw libc by several
//! green threads; one area per argument (tests/suite/std_poll.rs runs
//! each and asserts its output exactly).

libos_std::app!();

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::thread;
use std::time::{Duration, Instant};

/// The calling thread's errno.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

fn main() {
    let area = std::env::args().nth(1).unwrap_or_default();
    match area.as_str() {
        "pipe" => pipes(),
        "eventfd" => eventfds(),
        "socketpair" => socket_pairs(),
        "poll" => polls(),
        "epoll" => epolls(),
        "epoll-errors" => epoll_errors(),
        "deadlock" => deadlock(),
        other => panic!("unknown area {other:?}"),
    }
}

/// std's pipes: a writer thread and a reader, blocking on a full and an
/// empty pipe; end of file; a broken pipe.
fn pipes() {
    let (mut r, mut w) = std::io::pipe().unwrap();
    // SAFETY: F_GETFD on an open descriptor.
    let cloexec = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_GETFD) } & libc::FD_CLOEXEC != 0;
    println!("pipe made, cloexec {cloexec}");
    // 1 MiB through a 64 KiB pipe: the writer blocks on a full pipe, the
    // reader on an empty one, many times.
    let total = 1 << 20;
    let writer = thread::spawn(move || {
        let block: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut sent = 0;
        while sent < total {
            let n = block.len().min(total - sent);
            w.write_all(&block[..n]).unwrap();
            sent += n;
        }
        sent
        // w drops here: end of file for the reader.
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    let sent = writer.join().unwrap();
    let pattern_ok =
        got.chunks(10_000).all(|c| c.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    println!("sent {sent}, received {}, pattern ok {pattern_ok}", got.len());
    // Small writes from several threads stay whole (PIPE_BUF atomicity).
    let (mut r, w) = std::io::pipe().unwrap();
    let writers: Vec<_> = (0..4u8)
        .map(|t| {
            let mut w = w.try_clone().unwrap();
            thread::spawn(move || {
                for _ in 0..50 {
                    w.write_all(&[b'a' + t; 100]).unwrap();
                    thread::yield_now();
                }
            })
        })
        .collect();
    drop(w);
    for t in writers {
        t.join().unwrap();
    }
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    let whole = all.chunks(100).all(|c| c.iter().all(|&b| b == c[0]));
    println!("interleaved records {}, each whole {whole}", all.len() / 100);
    // No reader: EPIPE, which std reports as BrokenPipe.
    let (r, mut w) = std::io::pipe().unwrap();
    drop(r);
    println!("write without reader: {:?}", w.write(b"x").unwrap_err().kind());
    // pipe2 with O_NONBLOCK: an empty pipe is EAGAIN.
    let mut fds = [0; 2];
    // SAFETY: fds holds two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) }, 0);
    let mut b = [0u8; 4];
    // SAFETY: b is writable.
    let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 4) };
    println!("nonblocking empty read {n} errno {}", errno());
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

/// eventfd: a counter one thread waits on and another adds to.
fn eventfds() {
    // SAFETY: plain call.
    let e = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(e >= 0);
    let waiter = thread::spawn(move || {
        let mut v = 0u64;
        // SAFETY: v is writable; this blocks until the main thread writes.
        assert_eq!(unsafe { libc::eventfd_read(e, &mut v) }, 0);
        v
    });
    thread::sleep(Duration::from_millis(20));
    // SAFETY: plain calls.
    unsafe {
        assert_eq!(libc::eventfd_write(e, 5), 0);
        assert_eq!(libc::eventfd_write(e, 2), 0);
    }
    println!("the waiter read {}", waiter.join().unwrap());
    // SAFETY: plain calls.
    let s = unsafe { libc::eventfd(3, libc::EFD_SEMAPHORE | libc::EFD_NONBLOCK) };
    let mut reads = Vec::new();
    loop {
        let mut v = 0u64;
        // SAFETY: v is writable.
        if unsafe { libc::eventfd_read(s, &mut v) } != 0 {
            reads.push(format!("errno {}", errno()));
            break;
        }
        reads.push(v.to_string());
    }
    println!("semaphore reads {}", reads.join(" "));
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(e);
        libc::close(s);
    }
}

/// std's socket pairs: an echo thread, half close, nonblocking, timeouts,
/// datagrams.
fn socket_pairs() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let echo = thread::spawn(move || {
        let mut b = b;
        let mut buf = [0u8; 4096];
        let mut echoed = 0;
        loop {
            let n = b.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            b.write_all(&buf[..n]).unwrap();
            echoed += n;
        }
        b.write_all(b"bye").unwrap();
        echoed
    });
    let mut got = Vec::new();
    for i in 0..100u32 {
        let msg = format!("message {i}\n");
        a.write_all(msg.as_bytes()).unwrap();
        let mut buf = vec![0u8; msg.len()];
        a.read_exact(&mut buf).unwrap();
        got.push(buf == msg.as_bytes());
    }
    a.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = String::new();
    a.read_to_string(&mut rest).unwrap();
    println!(
        "echoed {} bytes, all equal {}, then {rest:?}",
        echo.join().unwrap(),
        got.iter().all(|&g| g)
    );
    println!("local addr unnamed {}", a.local_addr().unwrap().as_pathname().is_none());
    // Nonblocking: WouldBlock; then a timeout.
    let (c, d) = UnixStream::pair().unwrap();
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 8];
    println!("nonblocking read: {:?}", (&c).read(&mut buf).unwrap_err().kind());
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    let t0 = Instant::now();
    let e = (&c).read(&mut buf).unwrap_err().kind();
    println!("timed read: {e:?} after >= 30 ms {}", t0.elapsed() >= Duration::from_millis(30));
    (&d).write_all(b"peek").unwrap();
    // SAFETY: buf is writable (UnixStream::peek is unstable: raw recv).
    let n =
        unsafe { libc::recv(c.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK) };
    let m = (&c).read(&mut buf).unwrap();
    println!("peeked {n}, then read {m}: {:?}", std::str::from_utf8(&buf[..m]).unwrap());
    drop(d);
    println!(
        "after the peer closed: read {}, write {:?}",
        (&c).read(&mut buf).unwrap(),
        (&c).write(b"x").unwrap_err().kind()
    );
    // Datagrams keep their boundaries.
    let (x, y) = UnixDatagram::pair().unwrap();
    x.send(b"first").unwrap();
    x.send(b"second").unwrap();
    let mut buf = [0u8; 64];
    let n1 = y.recv(&mut buf).unwrap();
    let s1 = String::from_utf8_lossy(&buf[..n1]).into_owned();
    let n2 = y.recv(&mut buf).unwrap();
    println!("datagrams {s1:?} {:?}", String::from_utf8_lossy(&buf[..n2]));
}

/// `poll` on a pipe that another thread writes to, and a timeout.
fn polls() {
    let (r, mut w) = std::io::pipe().unwrap();
    let fd = r.as_raw_fd();
    let mut p = [libc::pollfd { fd, events: libc::POLLIN, revents: 0 }];
    let t0 = Instant::now();
    // SAFETY: p holds one entry.
    let n = unsafe { libc::poll(p.as_mut_ptr(), 1, 40) };
    println!("poll with nothing: {n} after >= 40 ms {}", t0.elapsed() >= Duration::from_millis(40));
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        w.write_all(b"ready").unwrap();
        w
    });
    // SAFETY: p holds one entry; this parks until the writer writes.
    let n = unsafe { libc::poll(p.as_mut_ptr(), 1, -1) };
    println!("poll woken by another thread: {n}, revents POLLIN {}", p[0].revents == libc::POLLIN);
    drop(writer.join().unwrap());
    let mut buf = [0u8; 8];
    let k = (&r).read(&mut buf).unwrap();
    // SAFETY: p holds one entry.
    let n = unsafe { libc::poll(p.as_mut_ptr(), 1, 0) };
    println!("read {k}, then writer gone: {n}, revents POLLHUP {}", p[0].revents == libc::POLLHUP);
    // ppoll with a timespec.
    let ts = libc::timespec { tv_sec: 0, tv_nsec: 5_000_000 };
    let mut q = [
        libc::pollfd { fd: 1, events: libc::POLLOUT, revents: 0 },
        libc::pollfd { fd: 500, events: libc::POLLIN, revents: 0 },
    ];
    // SAFETY: q holds two entries; ts is readable.
    let n = unsafe { libc::ppoll(q.as_mut_ptr(), 2, &ts, std::ptr::null()) };
    println!(
        "ppoll: {n}, stdout POLLOUT {}, closed POLLNVAL {}",
        q[0].revents == libc::POLLOUT,
        q[1].revents == libc::POLLNVAL
    );
    // select: a pipe another thread writes to, and the time left.
    let (r, mut w) = std::io::pipe().unwrap();
    let fd = r.as_raw_fd();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        w.write_all(b"s").unwrap();
    });
    // SAFETY: fd_set is plain data; fd is below FD_SETSIZE.
    let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::FD_SET(fd, &mut set) };
    let mut tv = libc::timeval { tv_sec: 5, tv_usec: 0 };
    let none = std::ptr::null_mut();
    // SAFETY: set and tv are valid and writable.
    let n = unsafe { libc::select(fd + 1, &mut set, none, none, &mut tv) };
    writer.join().unwrap();
    // SAFETY: reading the set.
    let isset = unsafe { libc::FD_ISSET(fd, &set) };
    println!("select woken by another thread: {n}, set {isset}, time left < 5 s {}", tv.tv_sec < 5);
}

fn ctl(ep: RawFd, op: i32, fd: RawFd, events: i32, data: u64) -> i32 {
    let mut ev = libc::epoll_event { events: events as u32, u64: data };
    // SAFETY: ev is a valid event.
    let r = unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) };
    if r == 0 { 0 } else { errno() }
}

fn wait(ep: RawFd, timeout: i32) -> Vec<(u64, u32)> {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
    // SAFETY: evs holds 8 entries.
    let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), 8, timeout) };
    assert!(n >= 0, "epoll_wait: errno {}", errno());
    evs[..n as usize].iter().map(|e| (e.u64, e.events)).collect()
}

/// Raw epoll, as mio uses it: edge-triggered sources woken by other
/// threads, an eventfd waker, timeouts, oneshot.
fn epolls() {
    // SAFETY: plain call.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let et = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
    assert_eq!(ctl(ep, libc::EPOLL_CTL_ADD, a.as_raw_fd(), et, 1), 0);
    // SAFETY: plain call.
    let waker = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert_eq!(ctl(ep, libc::EPOLL_CTL_ADD, waker, libc::EPOLLIN | libc::EPOLLET, 2), 0);
    println!("first wait: {:?}", wait(ep, 0));
    let t0 = Instant::now();
    let idle = wait(ep, 30);
    println!(
        "then nothing for 30 ms: {idle:?}, waited {}",
        t0.elapsed() >= Duration::from_millis(30)
    );
    // Another thread writes to the peer while this one waits forever.
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        (&b).write_all(b"data").unwrap();
        thread::sleep(Duration::from_millis(10));
        // SAFETY: plain calls (mio's waker: never read, each write wakes).
        unsafe {
            libc::eventfd_write(waker, 1);
        }
        thread::sleep(Duration::from_millis(10));
        // SAFETY: as above.
        unsafe {
            libc::eventfd_write(waker, 1);
        }
        thread::sleep(Duration::from_millis(10));
        drop(b);
    });
    let (i, o, rdhup, hup) = (
        libc::EPOLLIN as u32,
        libc::EPOLLOUT as u32,
        libc::EPOLLRDHUP as u32,
        libc::EPOLLHUP as u32,
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 16];
    while seen.len() < 4 {
        for (data, ev) in wait(ep, -1) {
            let what = match (data, ev) {
                (1, e) if e == i | o => {
                    let n = (&a).read(&mut buf).unwrap();
                    let again = (&a).read(&mut buf).unwrap_err().kind() == ErrorKind::WouldBlock;
                    format!("socket readable: read {n}, then WouldBlock {again}")
                }
                (2, e) if e == i => "waker".to_string(),
                (1, e) if e == i | o | rdhup | hup => "socket: peer closed".to_string(),
                other => format!("unexpected {other:?}"),
            };
            seen.push(what);
        }
    }
    writer.join().unwrap();
    for s in &seen {
        println!("{s}");
    }
    println!("nothing more: {:?}", wait(ep, 0));
    // Oneshot: once, until re-armed.
    // SAFETY: plain call.
    let e = unsafe { libc::eventfd(1, libc::EFD_NONBLOCK) };
    assert_eq!(ctl(ep, libc::EPOLL_CTL_ADD, e, libc::EPOLLIN | libc::EPOLLONESHOT, 3), 0);
    let first = wait(ep, 0);
    let second = wait(ep, 0);
    assert_eq!(ctl(ep, libc::EPOLL_CTL_MOD, e, libc::EPOLLIN | libc::EPOLLONESHOT, 4), 0);
    println!("oneshot: {first:?} {second:?} rearmed {:?}", wait(ep, 0));
    // Closing a registered descriptor removes its registration.
    drop(a);
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(e);
        libc::close(waker);
    }
    println!("after closing all: {:?}", wait(ep, 0));
    // SAFETY: as above.
    unsafe { libc::close(ep) };
}

/// epoll_ctl's and epoll_wait's errors, as Linux reports them.
fn epoll_errors() {
    // SAFETY: plain calls.
    let ep = unsafe { libc::epoll_create1(0) };
    // SAFETY: plain call.
    let e = unsafe { libc::eventfd(0, 0) };
    println!("bad fd: {}", ctl(ep, libc::EPOLL_CTL_ADD, 900, libc::EPOLLIN, 0) == libc::EBADF);
    println!("bad epfd: {}", ctl(900, libc::EPOLL_CTL_ADD, e, libc::EPOLLIN, 0) == libc::EBADF);
    println!("not an epoll: {}", ctl(e, libc::EPOLL_CTL_ADD, 1, libc::EPOLLIN, 0) == libc::EINVAL);
    println!("itself: {}", ctl(ep, libc::EPOLL_CTL_ADD, ep, libc::EPOLLIN, 0) == libc::EINVAL);
    println!("mod missing: {}", ctl(ep, libc::EPOLL_CTL_MOD, e, libc::EPOLLIN, 0) == libc::ENOENT);
    println!("add: {}", ctl(ep, libc::EPOLL_CTL_ADD, e, libc::EPOLLIN, 0) == 0);
    println!("add again: {}", ctl(ep, libc::EPOLL_CTL_ADD, e, libc::EPOLLIN, 0) == libc::EEXIST);
    // SAFETY: plain call.
    let ep2 = unsafe { libc::epoll_create1(0) };
    println!("nest: {}", ctl(ep2, libc::EPOLL_CTL_ADD, ep, libc::EPOLLIN, 0) == 0);
    println!("cycle: {}", ctl(ep, libc::EPOLL_CTL_ADD, ep2, libc::EPOLLIN, 0) == libc::ELOOP);
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 1];
    // SAFETY: evs holds one entry.
    let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), 0, 0) };
    println!("maxevents 0: {n} {}", errno() == libc::EINVAL);
    // SAFETY: plain call.
    let n = unsafe { libc::epoll_create(0) };
    println!("epoll_create(0): {n} {}", errno() == libc::EINVAL);
}

/// A read of a pipe that only this thread could write, with no network
/// device: nothing can ever wake it, and the guest says so.
fn deadlock() {
    let (mut r, _w) = std::io::pipe().unwrap();
    println!("reading a pipe nobody else can write");
    let mut b = [0u8; 1];
    let n = r.read(&mut b);
    println!("unreachable: {n:?}");
}
