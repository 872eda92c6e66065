//! smol, an async runtime other than tokio, unmodified: its reactor
//! (async-io on polling, which reaches epoll and an eventfd through
//! rustix), its executor, timers and its blocking pool. An echo server and
//! eight clients over the guest's loopback, each client sending 64 KiB in
//! uneven pieces while it reads the echo back; a timer; a refused
//! connection; a job on the blocking pool. Each line is one fact the suite
//! checks.

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

libos_std::app!();

const CLIENTS: usize = 8;
const BYTES: usize = 64 << 10;

fn main() {
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ex.spawn(async move {
            let mut served = 0;
            while served < CLIENTS {
                let (stream, _) = listener.accept().await.unwrap();
                smol::spawn(async move {
                    let (mut r, mut w) = (stream.clone(), stream);
                    smol::io::copy(&mut r, &mut w).await.unwrap();
                })
                .detach();
                served += 1;
            }
            served
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                ex.spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let data: Vec<u8> = (0..BYTES).map(|b| (b * 7 + i) as u8).collect();
                    let (mut r, mut w) = (stream.clone(), stream);
                    let sent = data.clone();
                    let writer = smol::spawn(async move {
                        for piece in sent.chunks(1000 + 97 * i) {
                            w.write_all(piece).await.unwrap();
                        }
                        w.close().await.unwrap();
                    });
                    let mut back = Vec::new();
                    r.read_to_end(&mut back).await.unwrap();
                    writer.await;
                    back == data
                })
            })
            .collect();
        let mut equal = 0;
        for c in clients {
            equal += usize::from(c.await);
        }
        println!("echo: {} of {CLIENTS} clients got their {BYTES} bytes back", equal);
        println!("server accepted: {}", server.await);
        let start = Instant::now();
        smol::Timer::after(Duration::from_millis(50)).await;
        println!(
            "timer of 50 ms took at least 50 ms: {}",
            start.elapsed() >= Duration::from_millis(50)
        );
        let refused = TcpStream::connect(("127.0.0.1", 1)).await;
        println!("closed port: {:?}", refused.map(|_| ()).map_err(|e| e.kind()));
        let sum = smol::unblock(|| (1..=1000u64).sum::<u64>()).await;
        println!("blocking pool: {sum}");
    }));
}
