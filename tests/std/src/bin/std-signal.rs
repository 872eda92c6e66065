//! SIGTERM and SIGINT in a std guest, as programs written for Linux
//! handle them; the first argument picks how. Each mode prints `ready`
//! once the signal may come (tests/suite/signals.rs then sends it).
//!
//! * `handler`: `signal()` handlers for both, which record the signal;
//!   main sleeps until one did, prints `handled N` and exits 0.
//! * `default`: no handler; sleeps 30 s (the signal ends it: 143 or 130).
//! * `ignore`: `SIG_IGN` for both; sleeps 1 s, prints `still here`, exits 0.
//! * `tokio`: a current-thread tokio runtime awaits `ctrl_c()` or a
//!   `SIGTERM` stream (signal-hook's handler and socket pair under it),
//!   prints which came and exits 0.
//! * `tokio-multi`: the same on the multi-thread runtime.

libos_std::app!();

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

static HANDLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(sig: libc::c_int) {
    HANDLED.store(sig, Ordering::SeqCst);
}

fn install(handler: libc::sighandler_t) {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: installing a handler that only stores to an atomic, or
        // SIG_IGN.
        let old = unsafe { libc::signal(sig, handler) };
        assert_ne!(old, libc::SIG_ERR, "signal({sig})");
    }
}

async fn either_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM stream");
    let ctrl_c = tokio::signal::ctrl_c();
    println!("ready");
    tokio::select! {
        r = ctrl_c => { r.expect("ctrl_c"); "ctrl_c" }
        _ = term.recv() => "SIGTERM",
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "handler" => {
            install(record as *const () as libc::sighandler_t);
            println!("ready");
            while HANDLED.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            println!("handled {}", HANDLED.load(Ordering::SeqCst));
        }
        "default" => {
            println!("ready");
            std::thread::sleep(Duration::from_secs(30));
            println!("not stopped");
        }
        "ignore" => {
            install(libc::SIG_IGN);
            println!("ready");
            std::thread::sleep(Duration::from_secs(1));
            println!("still here");
        }
        "tokio" | "tokio-multi" => {
            let rt = if mode == "tokio" {
                tokio::runtime::Builder::new_current_thread().enable_all().build()
            } else {
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
            }
            .expect("the runtime builds");
            let which = rt.block_on(either_signal());
            println!("tokio saw {which}");
        }
        other => {
            println!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
