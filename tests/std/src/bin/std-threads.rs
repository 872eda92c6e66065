//! std's threads and synchronisation under libos-std's cooperative
//! scheduler: one area per argument (tests/suite/std_threads.rs runs each
//! and asserts its output exactly).

libos_std::app!();

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex, Once, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn pthread_self() -> usize;
    fn pthread_getname_np(thread: usize, buf: *mut u8, len: usize) -> i32;
    fn pthread_getattr_np(thread: usize, attr: *mut [u64; 7]) -> i32;
    fn pthread_attr_getstack(attr: *const [u64; 7], addr: *mut usize, size: *mut usize) -> i32;
    fn pthread_key_create(key: *mut u32, dtor: Option<unsafe extern "C" fn(*mut u8)>) -> i32;
    fn pthread_setspecific(key: u32, value: *const u8) -> i32;
    fn close(fd: i32) -> i32;
    fn poll(fds: *mut [i32; 2], n: u64, timeout: i32) -> i32;
    fn pause() -> i32;
    fn pthread_exit(retval: *mut u8) -> !;
    fn lseek64(fd: i32, offset: i64, whence: i32) -> i64;
}

/// The calling thread's errno.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

/// The calling thread's name as the C library keeps it.
fn os_name() -> String {
    let mut buf = [0u8; 16];
    // SAFETY: buf has 16 writable bytes; pthread_self is the caller.
    let r = unsafe { pthread_getname_np(pthread_self(), buf.as_mut_ptr(), buf.len()) };
    assert_eq!(r, 0);
    let n = buf.iter().position(|&b| b == 0).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn spawn() {
    println!("available_parallelism {}", thread::available_parallelism().unwrap());
    println!("main is {:?}, os name {}", thread::current().name(), os_name());
    let h = thread::Builder::new()
        .name("worker-with-a-long-name".into())
        .spawn(|| {
            println!("worker: {:?}, os name {}", thread::current().name(), os_name());
            6 * 7
        })
        .unwrap();
    println!("joined {}", h.join().unwrap());
    let unnamed = thread::spawn(|| thread::current().name().map(str::to_owned)).join().unwrap();
    println!("unnamed thread's name {unnamed:?}");
    let ids: Vec<_> = (0..3).map(|_| thread::spawn(|| thread::current().id())).collect();
    let ids: Vec<_> = ids.into_iter().map(|h| h.join().unwrap()).collect();
    println!(
        "ids distinct {}",
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != thread::current().id()
    );
    // Scoped threads borrow from the stack.
    let mut words = [String::from("a"), String::from("b"), String::from("c")];
    thread::scope(|s| {
        for w in words.iter_mut() {
            s.spawn(move || w.push('!'));
        }
    });
    println!("scope {}", words.join(" "));
    // Many threads, one after another and all at once: stacks are reused.
    let mut total = 0;
    for i in 0..200 {
        total += thread::spawn(move || i).join().unwrap();
    }
    let all: Vec<_> = (0..20).map(|i| thread::spawn(move || i * 2)).collect();
    total += all.into_iter().map(|h| h.join().unwrap()).sum::<i32>();
    println!("sum {total}");
    // A detached thread runs while main waits for it otherwise.
    let (tx, rx) = mpsc::channel();
    drop(thread::spawn(move || tx.send("detached ran").unwrap()));
    println!("{}", rx.recv().unwrap());
    // Interleaving: the new thread runs first (its creator goes on after
    // it), then each yield lets the other run.
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    let t = thread::spawn(move || {
        for i in 0..3 {
            l2.lock().unwrap().push(format!("t{i}"));
            thread::yield_now();
        }
    });
    for i in 0..3 {
        log.lock().unwrap().push(format!("m{i}"));
        thread::yield_now();
    }
    t.join().unwrap();
    println!("yield order {}", log.lock().unwrap().join(" "));
    // errno is the thread's own across switches.
    let t = thread::spawn(|| {
        // SAFETY: closing a descriptor that is not open only fails.
        unsafe { close(999) };
        thread::yield_now();
        errno()
    });
    thread::yield_now();
    // SAFETY: seeking the console only fails.
    unsafe { lseek64(1, 0, 0) };
    let theirs = t.join().unwrap();
    println!("errno per thread: {theirs} (EBADF) there, {} (ESPIPE) here", errno());
}

struct Noisy(&'static str, Cell<u32>);

impl Drop for Noisy {
    fn drop(&mut self) {
        println!("drop {} on {:?} after {} uses", self.0, thread::current().name(), self.1.get());
    }
}

thread_local! {
    static COUNT: Cell<u32> = const { Cell::new(0) };
    // Lazily initialised on purpose: the first use registers its destructor.
    #[allow(clippy::missing_const_for_thread_local)]
    static NOISY: Noisy = Noisy("noisy", Cell::new(0));
    static LIST: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// The destructor of a `pthread_key_create` key: runs at a thread's exit,
/// after its `thread_local!` destructors (glibc's order).
unsafe extern "C" fn key_dtor(value: *mut u8) {
    // SAFETY: the value is the Box<u32> set below.
    let v = unsafe { Box::from_raw(value.cast::<u32>()) };
    println!("key destructor got {v} on {:?}", thread::current().name());
}

fn tls() {
    COUNT.with(|c| c.set(100));
    let mut key = 0u32;
    // SAFETY: key is writable; key_dtor takes the values set below.
    assert_eq!(unsafe { pthread_key_create(&mut key, Some(key_dtor)) }, 0);
    let hs: Vec<_> = (1..=3)
        .map(|i| {
            thread::Builder::new()
                .name(format!("tls{i}"))
                .spawn(move || {
                    let value = Box::into_raw(Box::new(i * 10));
                    // SAFETY: the key exists; key_dtor frees the value.
                    assert_eq!(unsafe { pthread_setspecific(key, value.cast()) }, 0);
                    for _ in 0..i {
                        COUNT.with(|c| c.set(c.get() + 1));
                        NOISY.with(|n| n.1.set(n.1.get() + 1));
                        LIST.with(|l| l.borrow_mut().push(i));
                        thread::yield_now();
                    }
                    (COUNT.with(Cell::get), LIST.with(|l| l.borrow().len()))
                })
                .unwrap()
        })
        .collect();
    for h in hs {
        let name = h.thread().name().unwrap().to_owned();
        let (count, len) = h.join().unwrap();
        println!("{name}: count {count}, list {len}");
    }
    println!("main: count {}", COUNT.with(Cell::get));
}

fn sync() {
    // Mutex: a counter under contention, with switches inside the lock.
    let m = Arc::new(Mutex::new(0u32));
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let m = m.clone();
            thread::spawn(move || {
                for _ in 0..100 {
                    let mut g = m.lock().unwrap();
                    let v = *g;
                    thread::yield_now();
                    *g = v + 1;
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    println!("mutex {}", *m.lock().unwrap());
    println!("try_lock while held {}", {
        let g = m.lock().unwrap();
        let m2 = m.clone();
        let r = thread::spawn(move || m2.try_lock().is_err()).join().unwrap();
        drop(g);
        r
    });

    // RwLock: readers share, a writer excludes.
    let rw = Arc::new(RwLock::new(Vec::new()));
    let r1 = rw.read().unwrap();
    let r2 = rw.read().unwrap();
    let w = {
        let rw = rw.clone();
        thread::spawn(move || rw.write().unwrap().push("written"))
    };
    thread::yield_now();
    println!("rwlock readers {} {} while a writer waits", r1.len(), r2.len());
    drop((r1, r2));
    w.join().unwrap();
    println!("rwlock {:?}", *rw.read().unwrap());

    // Condvar: a timeout, then a notification.
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let (lock, cv) = &*pair;
    let start = Instant::now();
    let (g, r) = cv.wait_timeout(lock.lock().unwrap(), Duration::from_millis(30)).unwrap();
    println!(
        "condvar timed out {} after >= 30 ms {}",
        r.timed_out(),
        start.elapsed() >= Duration::from_millis(30)
    );
    drop(g);
    let p2 = pair.clone();
    let n = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        *p2.0.lock().unwrap() = true;
        p2.1.notify_one();
    });
    let mut g = lock.lock().unwrap();
    let mut timed_out = false;
    while !*g {
        let (g2, r) = cv.wait_timeout(g, Duration::from_secs(10)).unwrap();
        g = g2;
        timed_out |= r.timed_out();
    }
    println!("condvar notified {} timed out {timed_out}", *g);
    drop(g);
    n.join().unwrap();

    // Barrier: one leader per round.
    let b = Arc::new(Barrier::new(5));
    let leaders = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..5)
        .map(|_| {
            let (b, leaders) = (b.clone(), leaders.clone());
            thread::spawn(move || {
                for _ in 0..3 {
                    if b.wait().is_leader() {
                        leaders.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    println!("barrier leaders {}", leaders.load(Ordering::Relaxed));

    // mpsc: several producers; a rendezvous channel.
    let (tx, rx) = mpsc::channel();
    for p in 0..4u64 {
        let tx = tx.clone();
        thread::spawn(move || {
            for i in 0..250 {
                tx.send(p * 1000 + i).unwrap();
            }
        });
    }
    drop(tx);
    let (count, sum) = rx.iter().fold((0, 0u64), |(c, s), v| (c + 1, s + v));
    println!("mpsc {count} messages, sum {sum}");
    let (stx, srx) = mpsc::sync_channel::<u32>(0);
    let h = thread::spawn(move || (0..5).map(|_| srx.recv().unwrap()).sum::<u32>());
    for i in 1..=5 {
        stx.send(i).unwrap();
    }
    println!("sync_channel {}", h.join().unwrap());
    let (_keep, rx) = mpsc::channel::<u32>();
    println!("recv_timeout {:?}", rx.recv_timeout(Duration::from_millis(5)));

    // Once and OnceLock: one initialisation under contention.
    static ONCE: Once = Once::new();
    static CELL: OnceLock<String> = OnceLock::new();
    let inits = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let inits = inits.clone();
            thread::spawn(move || {
                ONCE.call_once(|| {
                    thread::sleep(Duration::from_millis(5));
                    inits.fetch_add(1, Ordering::Relaxed);
                });
                CELL.get_or_init(|| {
                    thread::yield_now();
                    format!("set by {i}")
                })
                .len()
            })
        })
        .collect();
    let lens: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    println!(
        "once ran {} time(s), oncelock {:?} {lens:?}",
        inits.load(Ordering::Relaxed),
        CELL.get().map(|s| s.len())
    );

    // park / unpark, and park_timeout.
    let flag = Arc::new(AtomicUsize::new(0));
    let f2 = flag.clone();
    let parked = thread::spawn(move || {
        while f2.load(Ordering::Acquire) == 0 {
            thread::park();
        }
        "unparked"
    });
    thread::sleep(Duration::from_millis(5));
    flag.store(1, Ordering::Release);
    parked.thread().unpark();
    println!("park {}", parked.join().unwrap());
    let start = Instant::now();
    thread::park_timeout(Duration::from_millis(20));
    println!("park_timeout >= 20 ms {}", start.elapsed() >= Duration::from_millis(20));
    thread::current().unpark();
    let start = Instant::now();
    thread::park();
    // (Without the token it would wait forever: a deadlock, status 255.)
    println!("park with a token returns at once {}", start.elapsed() < Duration::from_secs(1));
}

fn sleep() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let hs: Vec<_> = [200u64, 10, 300, 20, 250]
        .into_iter()
        .map(|ms| {
            let log = log.clone();
            thread::spawn(move || {
                // Until `start + ms`, not for `ms` from this thread's first
                // turn: a guest descheduled by the host between two of
                // those turns would otherwise move a deadline past main's
                // 25 ms (or past a longer sleep's), and the order checked
                // is the deadlines'.
                thread::sleep(
                    (start + Duration::from_millis(ms)).saturating_duration_since(Instant::now()),
                );
                log.lock().unwrap().push(ms);
                start.elapsed() >= Duration::from_millis(ms)
            })
        })
        .collect();
    thread::sleep((start + Duration::from_millis(25)).saturating_duration_since(Instant::now()));
    println!("at 25 ms: {:?}", *log.lock().unwrap());
    let late: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    println!("order {:?}, none early {}", *log.lock().unwrap(), late.iter().all(|&b| b));
    // The five sleeps overlapped: about 300 ms in all, not 780.
    println!("overlapped {}", start.elapsed() < Duration::from_millis(700));
    let deadline = Instant::now() + Duration::from_millis(15);
    let h = thread::spawn(move || {
        thread::sleep(deadline - Instant::now());
        Instant::now() >= deadline
    });
    println!("sleep to a deadline {}", h.join().unwrap());
    // The documented limit: no preemption. A thread that computes for
    // 50 ms without blocking holds up one whose 10 ms sleep ended.
    let sleeper = thread::spawn(|| {
        let start = Instant::now();
        thread::sleep(Duration::from_millis(10));
        start.elapsed()
    });
    thread::yield_now();
    let busy = Instant::now();
    while busy.elapsed() < Duration::from_millis(50) {
        std::hint::spin_loop();
    }
    println!(
        "a busy thread delays a sleeper {}",
        sleeper.join().unwrap() >= Duration::from_millis(50)
    );
}

fn panics() {
    std::panic::set_hook(Box::new(|_| {}));
    let h = thread::Builder::new().name("doomed".into()).spawn(|| {
        if thread::current().name() == Some("doomed") {
            panic!("thread panicked on purpose");
        }
        1
    });
    let r = h.unwrap().join();
    let msg = r.as_ref().err().and_then(|e| e.downcast_ref::<&str>()).copied();
    println!("join: err {} payload {msg:?}", r.is_err());
    // A panic while holding a lock poisons it.
    let m = Arc::new(Mutex::new(1));
    let m2 = m.clone();
    let _ = thread::spawn(move || {
        let _g = m2.lock().unwrap();
        panic!("poison");
    })
    .join();
    println!("poisoned {}", m.is_poisoned());
    let scoped = std::panic::catch_unwind(|| {
        thread::scope(|s| s.spawn(|| panic!("scoped")).join().is_err())
    });
    println!("scoped join err {:?}", scoped.ok());
}

fn deadlock() {
    let (tx, rx) = mpsc::channel::<u32>();
    let _h = thread::Builder::new()
        .name("stuck".into())
        .spawn(|| {
            let m = Mutex::new(());
            let _a = m.lock().unwrap();
            // Locking it again waits forever (std's Mutex is not reentrant).
            let _b = m.lock();
        })
        .unwrap();
    println!("waiting for a message nobody sends");
    let _ = rx.recv();
    drop(tx);
}

fn exit_from_thread() {
    let h = thread::spawn(|| {
        thread::sleep(Duration::from_millis(5));
        println!("thread exits the process");
        std::process::exit(7);
    });
    let _ = h.join();
    println!("never printed");
}

fn main_returns() {
    thread::spawn(|| {
        loop {
            thread::sleep(Duration::from_millis(1));
        }
    });
    thread::spawn(|| {
        let (_tx, rx) = mpsc::channel::<()>();
        let _ = rx.recv();
    });
    thread::sleep(Duration::from_millis(10));
    println!("main returns while two threads remain");
}

#[inline(never)]
fn recurse_until(floor: usize, depth: u32) -> u32 {
    let buf = std::hint::black_box([depth as u8; 512]);
    let here = &raw const buf as usize;
    if here < floor {
        return depth + u32::from(buf[7]);
    }
    std::hint::black_box(recurse_until(floor, depth + 1)) + u32::from(buf[3])
}

fn overflow() {
    let h = thread::Builder::new()
        .name("deep".into())
        .stack_size(64 * 1024)
        .spawn(|| {
            let mut attr = [0u64; 7];
            let (mut addr, mut size) = (0usize, 0usize);
            // SAFETY: attr and the out-pointers are writable.
            unsafe {
                assert_eq!(pthread_getattr_np(pthread_self(), &mut attr), 0);
                assert_eq!(pthread_attr_getstack(&attr, &mut addr, &mut size), 0);
            }
            println!("stack of {} KiB", size / 1024);
            // Into the canary zone below the reported stack, not past it.
            recurse_until(addr - 2048, 0)
        })
        .unwrap();
    let _ = h.join();
    println!("never printed");
}

/// Spawns up to `THREADS` threads that all wait, until a spawn fails;
/// then releases and joins them.
fn many() {
    let limit: usize = std::env::var("THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let gate = Arc::new(RwLock::new(()));
    let closed = gate.write().unwrap();
    let mut hs = Vec::new();
    let mut error = None;
    while hs.len() < limit {
        let gate = gate.clone();
        match thread::Builder::new().spawn(move || drop(gate.read().unwrap())) {
            Ok(h) => hs.push(h),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    match error {
        Some(e) => println!("spawn failed: {e}"),
        None => println!("spawned {limit}"),
    }
    drop(closed);
    let n = hs.len();
    hs.into_iter().for_each(|h| h.join().unwrap());
    println!("joined all, more than 20: {}", n > 20);
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    match what.as_str() {
        "spawn" => spawn(),
        "tls" => tls(),
        "sync" => sync(),
        "sleep" => sleep(),
        "panic" => panics(),
        "deadlock" => deadlock(),
        "exit" => exit_from_thread(),
        "main-returns" => main_returns(),
        "overflow" => overflow(),
        "many" => many(),
        "main-exits" => {
            // The main thread ends alone; the guest lives on until the last
            // thread has exited, then exits with 0.
            thread::spawn(|| {
                thread::sleep(Duration::from_millis(10));
                println!("the last thread exits");
            });
            println!("main calls pthread_exit");
            // SAFETY: nothing on main's stack is used by the other thread.
            unsafe { pthread_exit(std::ptr::null_mut()) }
        }
        "poll" => {
            // A thread waiting in poll with a timeout lets others run.
            let h = thread::spawn(|| {
                let start = Instant::now();
                // SAFETY: no descriptors: a 20 ms wait.
                let r = unsafe { poll(std::ptr::null_mut(), 0, 20) };
                (r, start.elapsed() >= Duration::from_millis(20))
            });
            let mut turns = 0;
            while !h.is_finished() {
                thread::sleep(Duration::from_millis(1));
                turns += 1;
            }
            println!("poll {:?}, main ran meanwhile {}", h.join().unwrap(), turns > 0);
            // Waiting in pause with no device to wake the guest: joining
            // that thread can never end.
            let p = thread::Builder::new()
                .name("pauser".into())
                // SAFETY: pause only waits.
                .spawn(|| unsafe { pause() })
                .unwrap();
            let _ = p.join();
        }
        "backtrace" => {
            // The default hook, with RUST_BACKTRACE set by the caller: the
            // unwinder walks the thread's stack down to its first frame.
            let r = thread::Builder::new().name("traced".into()).spawn(|| panic!("traced panic"));
            println!("survived, join err {}", r.unwrap().join().is_err());
        }
        _ => {
            eprintln!(
                "usage: std-threads spawn|tls|sync|sleep|panic|deadlock|exit|main-returns|overflow|many|main-exits|poll|backtrace"
            );
            std::process::exit(2);
        }
    }
}
