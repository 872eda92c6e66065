//! Ending the guest: [`exit`], how `main`'s return value becomes the
//! exit status ([`Termination`]), and being asked to stop
//! ([`terminated`], [`terminate_requested`]).
//!
//! Statuses follow `docs/design.md`: what `main` returns or passes to `exit`
//! (0-254), 255 after a panic, 143 (130) when `SIGTERM` (`SIGINT`) arrives
//! and the application did not ask for it.

use core::fmt::Debug;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use spin::Mutex;

pub use crate::signal::Signal;
use crate::signal::{self, Disposition};

/// What [`at_exit`] registered; taken when it runs.
static AT_EXIT: Mutex<Option<fn()>> = Mutex::new(None);

/// Registers `f` to run when the guest ends, however it ends: [`exit`]
/// (before the connections linger), [`exit_now`] (an abort, a panic), and
/// `SIGTERM`'s or `SIGINT`'s default action. It is the place for what
/// Linux keeps in the kernel past a process's end, such as the data a
/// program wrote to its files (libos-std's file layer registers it).
/// One function: a later call replaces it. It runs at most once (if it
/// ends the guest itself, it does not run again), and it may run in the
/// middle of whatever the guest was doing when it panicked: it must skip
/// state that is in use rather than wait for it or assume it is whole.
pub fn at_exit(f: fn()) {
    *AT_EXIT.lock() = Some(f);
}

/// Runs what [`at_exit`] registered, once. The lock is released before the
/// call, so that an exit from inside it finds nothing left to run.
fn run_at_exit() {
    let f = AT_EXIT.try_lock().and_then(|mut h| h.take());
    if let Some(f) = f {
        f();
    }
}

/// Opts in to termination events: from now on `SIGTERM` and `SIGINT` are
/// delivered to the application instead of ending the guest with status
/// 143 or 130 (see [`crate::signal`]).
pub fn handle_termination() {
    for s in Signal::ALL {
        signal::set_disposition(s, Disposition::Deliver);
    }
}

/// Whether the guest was asked to stop: the first `SIGTERM` or `SIGINT`
/// received, if any. Opts in ([`handle_termination`]) and asks the host,
/// without waiting, whether one is pending: a loop that computes without
/// waiting can call it now and then.
pub fn terminate_requested() -> Option<Signal> {
    handle_termination();
    signal::check();
    signal::received()
}

/// A future that completes when the guest is asked to stop (`SIGTERM` or
/// `SIGINT`), with the signal. Its first poll opts in
/// ([`handle_termination`]): from then on those signals no longer end the
/// guest, and the application decides when to exit. An executor's
/// `select` with the work it does is the usual shape:
///
/// ```ignore
/// let stop = libos::process::terminated();
/// // ... accept connections until `stop` completes, then finish and exit.
/// ```
///
/// Completes at once if a signal was already delivered.
pub fn terminated() -> Terminated {
    Terminated { _private: () }
}

/// The future of [`terminated`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Terminated {
    _private: (),
}

impl Future for Terminated {
    type Output = Signal;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Signal> {
        handle_termination();
        if let Some(s) = signal::received() {
            return Poll::Ready(s);
        }
        signal::register(cx.waker());
        match signal::received() {
            Some(s) => Poll::Ready(s),
            None => Poll::Pending,
        }
    }
}

/// The guest's memory, as the tender laid it out (see `docs/abi.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// Total guest memory in bytes (`--mem`).
    pub size: u64,
    /// The heap the allocator manages.
    pub heap: core::ops::Range<u64>,
    /// The stack; the guard lies just below `stack.start`.
    pub stack: core::ops::Range<u64>,
}

/// The guest's memory layout (all zero on the host, in unit tests).
pub fn memory() -> Memory {
    match crate::rt::boot::info() {
        Some(i) => Memory {
            size: i.mem_size,
            heap: i.heap_start..i.heap_end,
            stack: i.stack_bottom..i.stack_top,
        },
        None => Memory { size: 0, heap: 0..0, stack: 0..0 },
    }
}

/// Ends the guest with `code` (the host sees `code & 0xff`), once its
/// connections have sent what they hold, as Linux sends what a process
/// wrote after it ended: every TCP connection is closed (its FIN after the
/// data), and the guest runs network turns, and nothing else, until all
/// is acknowledged, for at most a few seconds (see `crate::net::linger`:
/// no progress for 3 s, 10 s in all, or `SIGTERM` or `SIGINT` meanwhile,
/// and what is left is reset). The status stays `code` either way (the
/// program had ended); a notice on the console tells what was reset.
/// What [`at_exit`] registered runs first.
pub fn exit(code: i32) -> ! {
    use crate::net::linger::{self, Cut, Finish};
    run_at_exit();
    if let Finish::Reset { connections, unsent, why } = linger::finish() {
        let why = match why {
            Cut::Stalled => alloc::format!("no progress for {} s", linger::STALL.as_secs()),
            Cut::Bound => alloc::format!("still sending after {} s", linger::BOUND.as_secs()),
            Cut::Signal(s) => alloc::format!("{s} during the exit"),
        };
        crate::console::notice(
            "libos::process",
            format_args!(
                "exit: reset {connections} connection(s) with {unsent} byte(s) unacknowledged: {why}"
            ),
        );
    }
    crate::hypercall::exit_group(code)
}

/// Ends the guest with `code` at once: what its connections hold is not
/// sent. For an abort or a panic, which may come from inside a network
/// turn (docs/std.md, "When a write leaves"). What [`at_exit`] registered
/// runs first (it skips what the failing code left in use).
pub fn exit_now(code: i32) -> ! {
    run_at_exit();
    crate::hypercall::exit_group(code)
}

/// What an application's `main` may return, as std's `Termination`.
pub trait Termination {
    /// The exit status this value stands for.
    fn report(self) -> i32;
}

impl Termination for () {
    fn report(self) -> i32 {
        0
    }
}

impl Termination for i32 {
    fn report(self) -> i32 {
        self
    }
}

impl Termination for u8 {
    fn report(self) -> i32 {
        i32::from(self)
    }
}

impl Termination for core::convert::Infallible {
    fn report(self) -> i32 {
        match self {}
    }
}

impl<T: Termination, E: Debug> Termination for Result<T, E> {
    fn report(self) -> i32 {
        match self {
            Ok(t) => t.report(),
            Err(e) => {
                crate::println!("Error: {e:?}");
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminated_completes_once_a_signal_is_delivered() {
        use alloc::sync::Arc;
        struct Nop;
        impl alloc::task::Wake for Nop {
            fn wake(self: Arc<Self>) {}
        }
        let _state = signal::test_state();
        let waker = core::task::Waker::from(Arc::new(Nop));
        let mut cx = Context::from_waker(&waker);
        let mut t = terminated();
        assert_eq!(Pin::new(&mut t).poll(&mut cx), Poll::Pending);
        assert_eq!(signal::disposition(Signal::Term), Disposition::Deliver);
        signal::deliver_for_test(Signal::Term);
        assert_eq!(Pin::new(&mut t).poll(&mut cx), Poll::Ready(Signal::Term));
        assert_eq!(terminate_requested(), Some(Signal::Term));
    }

    #[test]
    fn the_exit_function_runs_once_even_if_it_exits_itself() {
        use core::sync::atomic::{AtomicU32, Ordering};
        static RUNS: AtomicU32 = AtomicU32::new(0);
        fn ends_the_guest_again() {
            RUNS.fetch_add(1, Ordering::Relaxed);
            // As an exit from inside it would: nothing is left to run.
            run_at_exit();
        }
        run_at_exit();
        assert_eq!(RUNS.load(Ordering::Relaxed), 0);
        at_exit(ends_the_guest_again);
        run_at_exit();
        run_at_exit();
        assert_eq!(RUNS.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn statuses() {
        assert_eq!(().report(), 0);
        assert_eq!(7i32.report(), 7);
        assert_eq!(3u8.report(), 3);
        assert_eq!(Ok::<u8, ()>(5).report(), 5);
    }
}
