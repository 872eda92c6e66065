//! An unmodified tokio (and mio under it) in a std guest: the
//! current-thread runtime, or the multi-thread one with its workers and
//! blocking pool as green threads (argument `current` or `multi`), run
//! through timers, channels, in-memory, socket-pair, pipe and loopback
//! TCP I/O, signals that never come, and `block_on` returning;
//! tests/suite/std_poll.rs asserts the output exactly. No network device
//! is needed.

libos_std::app!();

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until, timeout};

fn main() {
    let flavor = std::env::args().nth(1).unwrap_or_default();
    let rt = match flavor.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(3)
            .max_blocking_threads(4)
            .enable_all()
            .build(),
        other => panic!("unknown flavor {other:?}"),
    }
    .expect("the runtime builds");
    let answer = rt.block_on(scenario());
    println!("block_on returned {answer}");
    rt.shutdown_timeout(Duration::from_secs(1));
    println!("runtime shut down");
}

async fn scenario() -> u32 {
    timers().await;
    channels().await;
    io().await;
    tasks().await;
    signals().await;
    42
}

async fn timers() {
    let t0 = Instant::now();
    sleep(Duration::from_millis(20)).await;
    println!("slept >= 20 ms: {}", t0.elapsed() >= Duration::from_millis(20));
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..4 {
        tick.tick().await;
    }
    // The first tick is at once: 3 periods.
    println!("interval: 4 ticks in >= 30 ms: {}", t0.elapsed() >= Duration::from_millis(30));
    let never = std::future::pending::<()>();
    let r = timeout(Duration::from_millis(15), never).await;
    println!("timeout on a pending future: elapsed {}", r.is_err());
    let r = timeout(Duration::from_secs(5), async { 7 }).await;
    println!("timeout on a ready future: {r:?}");
    // Timers of several tasks fire in deadline order.
    // Deadlines from one instant: `sleep(ms)` counts from each task's first
    // poll, and a guest descheduled by the host for 20 ms between two of
    // those polls would make 30 the earliest.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    for ms in [30u64, 10, 20] {
        let tx = tx.clone();
        tokio::spawn(async move {
            sleep_until(start + Duration::from_millis(ms)).await;
            tx.send(ms).unwrap();
        });
    }
    drop(tx);
    let mut order = Vec::new();
    while let Some(ms) = rx.recv().await {
        order.push(ms);
    }
    println!("sleepers woke in order {order:?}");
}

async fn channels() {
    // mpsc from many tasks to one.
    let (tx, mut rx) = mpsc::channel::<u32>(8);
    for t in 0..4 {
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0..25 {
                tx.send(t * 100 + i).await.unwrap();
            }
        });
    }
    drop(tx);
    let (mut n, mut sum) = (0, 0);
    while let Some(v) = rx.recv().await {
        n += 1;
        sum += v;
    }
    println!("mpsc: {n} messages, sum {sum}");
    // oneshot from a blocking thread, and spawn_blocking's own result.
    let (tx, rx) = oneshot::channel();
    let h = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(10));
        tx.send("from the blocking pool").unwrap();
        (1..=10u64).product::<u64>()
    });
    println!("oneshot: {:?}", rx.await.unwrap());
    println!("spawn_blocking returned {}", h.await.unwrap());
    // A std channel from a plain thread, woken into async by a Notify.
    let notify = std::sync::Arc::new(Notify::new());
    let n2 = notify.clone();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        n2.notify_one();
    });
    notify.notified().await;
    th.join().unwrap();
    println!("notified from a std thread");
    let (wtx, mut wrx) = tokio::sync::watch::channel(0);
    tokio::spawn(async move {
        for v in 1..=3 {
            sleep(Duration::from_millis(5)).await;
            wtx.send(v).unwrap();
        }
    });
    while wrx.changed().await.is_ok() {}
    println!("watch: last value {}", *wrx.borrow());
}

async fn io() {
    // In-memory duplex, with a small buffer: both sides wait for each other.
    let (mut a, mut b) = tokio::io::duplex(64);
    let writer = tokio::spawn(async move {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        a.write_all(&data).await.unwrap();
        a.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    let ok = got.iter().enumerate().all(|(i, &v)| v == i as u8);
    println!("duplex: {} bytes, in order {ok}", got.len());
    // A Unix socket pair through tokio's reactor (mio, epoll, edge
    // triggered): an echo task.
    let (mut c, d) = tokio::net::UnixStream::pair().unwrap();
    let echo = tokio::spawn(async move {
        let (mut r, mut w) = d.into_split();
        tokio::io::copy(&mut r, &mut w).await.unwrap()
    });
    let mut total = 0;
    for i in 0..50 {
        let msg = format!("line {i:03}\n");
        c.write_all(msg.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, msg.as_bytes());
        total += buf.len();
    }
    // A large write that fills the pair's buffers both ways.
    let big = vec![b'x'; 1 << 20];
    let (mut cr, mut cw) = c.into_split();
    let reader = tokio::spawn(async move {
        let mut n = 0;
        let mut buf = vec![0u8; 65536];
        loop {
            let k = cr.read(&mut buf).await.unwrap();
            if k == 0 {
                break n;
            }
            n += k;
        }
    });
    cw.write_all(&big).await.unwrap();
    cw.shutdown().await.unwrap();
    let back = reader.await.unwrap();
    let copied = echo.await.unwrap();
    println!("unix pair: echoed {total} bytes in lines, then {back} bytes back, copy saw {copied}");
    // tokio's pipes: its own (mio's pipe2), and one std made (tokio checks
    // it is a FIFO and its access mode).
    let (mut tx, mut rx) = tokio::net::unix::pipe::pipe().unwrap();
    let w = tokio::spawn(async move {
        for _ in 0..100 {
            tx.write_all(&[7u8; 1000]).await.unwrap();
        }
    });
    let mut got = Vec::new();
    rx.read_to_end(&mut got).await.unwrap();
    w.await.unwrap();
    let (r, mut w) = std::io::pipe().unwrap();
    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(r.into()).unwrap();
    std::io::Write::write_all(&mut w, b"from std").unwrap();
    drop(w);
    let mut s = String::new();
    rx.read_to_string(&mut s).await.unwrap();
    println!("tokio pipe: {} bytes; from a std pipe: {s:?}", got.len());
    // TCP through the loopback (no device needed): an echo server task
    // and clients.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let clients: Vec<_> = (0..10u8)
        .map(|i| {
            tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let data = vec![i; 100_000];
                let (mut r, mut w) = s.split();
                let ((), back) = tokio::join!(
                    async {
                        w.write_all(&data).await.unwrap();
                        w.shutdown().await.unwrap();
                    },
                    async {
                        let mut back = Vec::new();
                        r.read_to_end(&mut back).await.unwrap();
                        back
                    }
                );
                back == data
            })
        })
        .collect();
    let mut ok = 0;
    for c in clients {
        ok += usize::from(c.await.unwrap());
    }
    println!("loopback tcp: {ok} of 10 clients echoed");
}

async fn tasks() {
    // Many tasks yielding and joining.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100u64 {
        set.spawn(async move {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            i
        });
    }
    let mut sum = 0;
    while let Some(r) = set.join_next().await {
        sum += r.unwrap();
    }
    println!("join set: sum {sum}");
    let m = std::sync::Arc::new(tokio::sync::Mutex::new(0));
    let hs: Vec<_> = (0..10)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    let mut g = m.lock().await;
                    *g += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for h in hs {
        h.await.unwrap();
    }
    println!("async mutex: {}", *m.lock().await);
    // A panicking task: the hook says on which thread (the main thread
    // for the current-thread runtime, a worker for the other).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let t = std::thread::current();
        println!("panic {:?} on thread {:?}", info.payload().downcast_ref::<&str>(), t.name());
    }));
    let h = tokio::spawn(async { panic!("a task panics") });
    println!("a panicking task: is_panic {}", h.await.unwrap_err().is_panic());
    std::panic::set_hook(default_hook);
}

async fn signals() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    println!("SIGTERM stream registered: {}", term.is_ok());
    tokio::select! {
        r = tokio::signal::ctrl_c() => println!("ctrl_c returned {r:?}: unexpected"),
        _ = sleep(Duration::from_millis(30)) => println!("ctrl_c registered and did not fire"),
    }
}
