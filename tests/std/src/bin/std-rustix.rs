//! rustix, the crate under tempfile, polling/async-io (smol) and many
//! more, unmodified. On Linux it makes system calls with inline assembly
//! by default; in a guest those would be killed, so libos-std turns on
//! rustix's `use-libc` feature (feature unification: every rustix 1.x and
//! 0.38 of the program calls the C library instead). Each line is one
//! fact the suite compares with the native build's.

use std::io::Write;

libos_std::app!(devices: ["storage": Block]);

fn main() {
    use rustix::fd::AsFd;
    // io: a write to stdout through rustix.
    std::io::stdout().flush().unwrap();
    let n = rustix::io::write(std::io::stdout().as_fd(), b"rustix write to stdout\n").unwrap();
    println!("rustix write returned {n}");
    // time: the monotonic clock moves.
    let a = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let b = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    println!(
        "clock_gettime monotonic moves forward: {}",
        (b.tv_sec, b.tv_nsec) >= (a.tv_sec, a.tv_nsec)
    );
    // fs: create, write, statx, rename, read back, remove.
    let dir = std::env::var("RUSTIX_DIR").unwrap_or_else(|_| "/tmp".into());
    std::fs::create_dir_all(&dir).unwrap();
    let path = format!("{dir}/rustix.txt");
    let fd = rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::CREATE
            | rustix::fs::OFlags::WRONLY
            | rustix::fs::OFlags::TRUNC
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&fd, b"through rustix").unwrap();
    rustix::fs::fsync(&fd).unwrap();
    let st = rustix::fs::fstat(&fd).unwrap();
    println!("fstat size: {}", st.st_size);
    let sx = rustix::fs::statx(
        rustix::fs::CWD,
        path.as_str(),
        rustix::fs::AtFlags::empty(),
        rustix::fs::StatxFlags::SIZE,
    );
    println!("statx size: {:?}", sx.map(|s| s.stx_size));
    drop(fd);
    let moved = format!("{dir}/rustix-moved.txt");
    rustix::fs::rename(path.as_str(), moved.as_str()).unwrap();
    println!("read back: {}", std::fs::read_to_string(&moved).unwrap());
    rustix::fs::unlink(moved.as_str()).unwrap();
    println!("removed: {}", std::fs::metadata(&moved).is_err());
    let missing =
        rustix::fs::open("/no/such/file", rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty());
    println!("open of a missing file: {:?}", missing.map(|_| ()).map_err(|e| e.kind()));
    // termios: stdin is not a terminal in the suite.
    println!("isatty(stdin): {}", rustix::termios::isatty(std::io::stdin()));
    // event: epoll over a pipe.
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let ep = rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC).unwrap();
    rustix::event::epoll::add(
        &ep,
        &r,
        rustix::event::epoll::EventData::new_u64(7),
        rustix::event::epoll::EventFlags::IN,
    )
    .unwrap();
    let mut events = Vec::with_capacity(4);
    let got = rustix::event::epoll::wait(
        &ep,
        rustix::buffer::spare_capacity(&mut events),
        Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 }),
    )
    .unwrap();
    println!("epoll before a write: {got}");
    rustix::io::write(&w, b"x").unwrap();
    events.clear();
    let got =
        rustix::event::epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), None).unwrap();
    println!("epoll after a write: {got} event(s), data {}", events[0].data.u64());
    // process: the pid and the uid as std sees them.
    println!(
        "getpid: {}",
        rustix::process::getpid().as_raw_nonzero()
            == std::num::NonZero::new(std::process::id() as i32).unwrap()
    );
    // rustix 0.38 too.
    let fd = rustix038::fs::open(
        "/no/such/file",
        rustix038::fs::OFlags::RDONLY,
        rustix038::fs::Mode::empty(),
    );
    println!("0.38 open of a missing file: {:?}", fd.map(|_| ()).map_err(|e| e.kind()));
    let n = rustix038::io::write(std::io::stdout(), b"rustix 0.38 write to stdout\n").unwrap();
    println!("0.38 write returned {n}");
    println!("0.38 isatty(stdin): {}", rustix038::termios::isatty(std::io::stdin()));
}
