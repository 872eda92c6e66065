//! The executor: single-threaded async tasks, timers, and idling in one
//! `ppoll`.
//!
//! [`block_on`] runs a future to completion, together with every task
//! [`spawn`]ed meanwhile. Each turn of its loop polls the tasks that were
//! woken, lets the network stack process what arrived and send what is
//! queued, and fires due timers. When nothing is ready it computes the next
//! deadline (its own timers and the network stack's `poll_at`) and waits in a
//! single `ppoll` on the tap fds: an idle guest makes no system calls until a
//! frame arrives or a deadline passes.
//!
//! The executor is fair and bounded. A turn polls each task that was ready
//! when the turn began once, in the order they were woken (round-robin: a
//! task woken again, by itself or another, waits for the next turn, at the
//! back of the queue), and a task is on the queue at most once however
//! often it is woken. Between two turns the network is polled, and when
//! tasks are still ready, so that the executor will not wait in `ppoll`,
//! the taps are asked for frames without waiting ([`crate::net`] reads a
//! tap only after `ppoll` said it is readable), unless that poll had just
//! read every tap until it was empty: a task that is always ready delays
//! the others and the network by one poll of itself per turn, never more.
//! Within a poll a task bounds its own work with a [`Budget`]; a task that
//! is to run after all the others of a turn, in the same turn, waits in
//! [`end_of_turn`].
//!
//! Guests have exactly one thread, so tasks need not be `Send`; wakers are
//! (as `core::task::Waker` requires) and only push a task id onto the ready
//! queue.
//!
//! # Safety
//!
//! The task table holds futures that are not `Send` inside a global lock,
//! which needs `Send`. That is sound because a guest never has a second
//! thread: nothing can move a future to another thread or observe the table
//! concurrently. On the host, in unit tests, every test that runs the
//! executor holds [`tests::EXCLUSIVE`].

#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use alloc::sync::Arc;
use alloc::task::Wake;
use core::cmp::Reverse;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use spin::Mutex;

use crate::time::Instant;

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A future held in a global table; see the module's safety section.
struct Local(BoxFuture);

// SAFETY: guests are single-threaded (see the module docs): the future is
// only ever touched by the one thread there is.
unsafe impl Send for Local {}

/// The id reserved for the future `block_on` runs.
const MAIN: u64 = 0;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static TASKS: Mutex<BTreeMap<u64, Task>> = Mutex::new(BTreeMap::new());
static READY: Mutex<VecDeque<u64>> = Mutex::new(VecDeque::new());
static TIMERS: Mutex<BinaryHeap<Reverse<Timer>>> = Mutex::new(BinaryHeap::new());
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Turns of the executor so far (see [`Budget`]).
static TURN: AtomicU64 = AtomicU64::new(0);
/// No task is being polled (see [`CURRENT`]).
const NO_TASK: u64 = u64::MAX;
/// The spawned task [`run_ready_tasks`] or [`run_late_tasks`] is polling.
static CURRENT: AtomicU64 = AtomicU64::new(NO_TASK);
/// Tasks waiting in [`end_of_turn`]: polled again in the same turn, once
/// every task of the turn was.
static LATE: Mutex<alloc::vec::Vec<u64>> = Mutex::new(alloc::vec::Vec::new());
/// Turns in a row that skipped the tap check because the network poll had
/// just read every tap to its end (see [`block_on`]).
const SKIPPED_CHECKS_MAX: u32 = 8;

/// A spawned task: its future (taken out while it runs) and its waker,
/// made once.
struct Task {
    future: Option<Local>,
    waker: Arc<TaskWaker>,
}

/// Wakes a task: puts its id on the ready queue, unless it is there
/// already.
struct TaskWaker {
    id: u64,
    /// On the ready queue (cleared when the task is taken off it to run).
    queued: AtomicBool,
}

impl TaskWaker {
    fn new(id: u64, queued: bool) -> Arc<Self> {
        Arc::new(Self { id, queued: AtomicBool::new(queued) })
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::Relaxed) {
            READY.lock().push_back(self.id);
        }
    }
}

/// A timer: wake `waker` at `deadline`. Ordered by deadline, then by
/// registration order.
struct Timer {
    deadline: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

static TIMER_SEQ: AtomicU64 = AtomicU64::new(0);

/// Timers whose `Sleep` was dropped before they fired. They are skipped
/// when they reach the top of the heap, so that a cancelled timeout never
/// wakes an idle guest.
static CANCELLED: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// The latest time timers were fired for, in nanoseconds of the monotonic
/// clock: every registered timer whose deadline is not past it is still
/// waiting. Lets a [`Sleep`] know whether it fired without reading the
/// clock (a system call) each time it is polled or dropped.
static FIRED_UNTIL: AtomicU64 = AtomicU64::new(0);

/// Whether timers were fired for `deadline` already.
fn fired(deadline: Instant) -> bool {
    deadline.as_duration().as_nanos() <= u128::from(FIRED_UNTIL.load(Ordering::Relaxed))
}

fn add_timer(deadline: Instant, waker: Waker) -> u64 {
    let seq = TIMER_SEQ.fetch_add(1, Ordering::Relaxed);
    TIMERS.lock().push(Reverse(Timer { deadline, seq, waker }));
    seq
}

/// Wakes every timer due at `now`; returns the next live deadline, if any.
fn fire_timers(now: Instant) -> Option<Instant> {
    FIRED_UNTIL.fetch_max(now.as_duration().as_nanos() as u64, Ordering::Relaxed);
    let mut due = alloc::vec::Vec::new();
    let next = {
        let mut timers = TIMERS.lock();
        let mut cancelled = CANCELLED.lock();
        while let Some(Reverse(t)) = timers.peek() {
            if cancelled.remove(&t.seq) {
                timers.pop();
                continue;
            }
            if t.deadline > now {
                break;
            }
            due.push(timers.pop().map(|Reverse(t)| t.waker));
        }
        timers.peek().map(|Reverse(t)| t.deadline)
    };
    // Wake outside the lock: a waker may register a new timer.
    for w in due.into_iter().flatten() {
        w.wake();
    }
    next
}

/// Whether a task was woken and waits for the next turn.
pub(crate) fn tasks_ready() -> bool {
    !READY.lock().is_empty()
}

/// Runs `future` to completion on this thread, and with it every spawned
/// task, idling in `ppoll` when nothing is ready.
///
/// # Panics
///
/// If called from inside a task (executors do not nest).
pub fn block_on<F: Future>(future: F) -> F::Output {
    assert!(!RUNNING.swap(true, Ordering::Acquire), "block_on cannot be nested");
    let mut future = core::pin::pin!(future);
    let main = TaskWaker::new(MAIN, false);
    let main_waker = Waker::from(main.clone());
    let mut main_cx = Context::from_waker(&main_waker);
    let mut main_ready = true;
    let mut skipped_checks = 0;
    let output = loop {
        TURN.fetch_add(1, Ordering::Relaxed);
        // No task to run this turn (it follows a wait, or a turn that only
        // polled): nothing was queued to send since the last poll.
        let idle_turn = !main_ready && READY.lock().is_empty();
        if main_ready {
            main_ready = false;
            main.queued.store(false, Ordering::Relaxed);
            if let Poll::Ready(out) = future.as_mut().poll(&mut main_cx) {
                break out;
            }
        }
        run_ready_tasks(&mut main_ready);
        run_late_tasks();
        let now = Instant::now();
        let progress = crate::net::poll_turn(now, idle_turn);
        let next_timer = fire_timers(now);
        if main_ready || !READY.lock().is_empty() || !LATE.lock().is_empty() {
            // Work is left for the next turn, so there is no `ppoll` to
            // learn of frames that arrived meanwhile: ask the taps now,
            // without waiting, or tasks that stay ready would starve the
            // network (a tap is read only once `ppoll` said it is
            // readable). Unless the poll just read every tap until it was
            // empty (the usual turn of a server: the frames it read woke
            // the tasks): the answer would be "nothing" but for what came
            // in the last microseconds. Not more than a few turns in a row,
            // since the same `ppoll` watches the termination signals.
            if skipped_checks < SKIPPED_CHECKS_MAX && crate::net::taps_drained() {
                skipped_checks += 1;
            } else {
                skipped_checks = 0;
                crate::net::check_taps();
            }
            continue;
        }
        skipped_checks = 0;
        if progress {
            continue;
        }
        let deadline = match (next_timer, crate::net::poll_at(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Whatever wakes us (a frame, a deadline) is dealt with next turn.
        crate::net::wait(deadline);
    };
    RUNNING.store(false, Ordering::Release);
    output
}

/// One idle turn for a scheduler built beside the executor (libos/std's
/// threads, when none of them can run): polls the network, fires due
/// timers, and if neither did anything, waits in the one `ppoll` on the
/// taps until a frame arrives or `deadline` (or the network's own next
/// deadline) passes. Returns at once if `deadline` has passed.
pub fn idle(deadline: Option<Instant>) {
    let now = Instant::now();
    let (progress, next_timer) = poll_devices_at(now);
    // A delivered signal's handler is to run first (libos-std's).
    if progress || !READY.lock().is_empty() || crate::signal::untaken() {
        return;
    }
    let next = [deadline, next_timer, crate::net::poll_at(now)].into_iter().flatten().min();
    crate::net::wait(next);
}

/// Polls the network and fires due timers, without waiting: for a
/// scheduler built beside the executor that is about to answer whether a
/// descriptor is ready (libos/std's `poll` with a zero timeout, a
/// nonblocking `recv`), so that what has arrived is seen and what was
/// queued is sent. Returns whether a socket changed state or a timer fired
/// a task.
pub fn poll_devices() -> bool {
    let (progress, _) = poll_devices_at(Instant::now());
    progress || !READY.lock().is_empty()
}

/// [`poll_devices`] if data was queued to send and left for the next
/// network turn ([`crate::net::defer_egress`]), otherwise nothing: for a
/// scheduler beside the executor, before it switches threads or idles.
/// Returns whether a socket changed state or a timer fired a task.
pub fn flush_egress() -> bool {
    crate::net::egress_pending() && poll_devices()
}

/// [`poll_devices`], after asking the host which taps have frames (one
/// `ppoll` that does not wait): for a scheduler beside the executor that
/// gives the network a turn while its threads keep it from idling, so that
/// frames that arrived meanwhile are seen. Returns whether a socket changed
/// state or a timer fired a task.
///
/// The termination signals are checked in the same `ppoll`; one delivered
/// and not yet taken ([`crate::signal::take`]) counts as a change too.
pub fn poll_devices_now() -> bool {
    crate::net::check_taps();
    poll_devices() || crate::signal::untaken()
}

/// [`poll_devices`] at `now`; also returns the next timer's deadline.
fn poll_devices_at(now: Instant) -> (bool, Option<Instant>) {
    let progress = crate::net::poll(now);
    (progress, fire_timers(now))
}

/// Polls every task that is on the ready queue as the turn begins, once
/// each, in the order they were woken. A task woken while the turn runs
/// (by itself, by another task) is polled in the next turn, after the
/// network: none can hold the others or the network back for more than
/// one poll of itself.
fn run_ready_tasks(main_ready: &mut bool) {
    let turn = READY.lock().len();
    for _ in 0..turn {
        let Some(id) = READY.lock().pop_front() else { break };
        if id == MAIN {
            *main_ready = true;
            continue;
        }
        poll_task(id, true);
    }
}

/// Polls the tasks that wait in [`end_of_turn`], once each, in the order
/// they began to wait: after every task of the turn ran, before the
/// network is polled. One that waits again is polled at the end of the
/// next turn.
fn run_late_tasks() {
    let late = core::mem::take(&mut *LATE.lock());
    for id in late {
        poll_task(id, false);
    }
}

/// Polls task `id`, if it still exists and is not running; `dequeued`:
/// just taken off the ready queue (a wake from now on queues it again).
fn poll_task(id: u64, dequeued: bool) {
    // Take the future out, so that the task may spawn while it runs.
    let Some((slot, waker)) = TASKS.lock().get_mut(&id).map(|t| (t.future.take(), t.waker.clone()))
    else {
        return;
    };
    if dequeued {
        // Off the queue: a wake from now on queues it for the next turn.
        waker.queued.store(false, Ordering::Relaxed);
    }
    let Some(Local(mut fut)) = slot else { return }; // already running
    let waker = Waker::from(waker);
    let mut cx = Context::from_waker(&waker);
    CURRENT.store(id, Ordering::Relaxed);
    let ready = fut.as_mut().poll(&mut cx).is_ready();
    CURRENT.store(NO_TASK, Ordering::Relaxed);
    if ready {
        TASKS.lock().remove(&id);
    } else if let Some(task) = TASKS.lock().get_mut(&id) {
        task.future = Some(Local(fut));
    }
}

/// A bound on the work a task does in one poll, in units it chooses (a
/// read, a request): [`Budget::spend`] yields to the other tasks and the
/// network once the task has spent `per_turn` units in the executor's
/// current turn. A task that finds data ready on every read would otherwise
/// keep the executor for as long as its client keeps sending.
#[derive(Debug, Clone)]
pub struct Budget {
    per_turn: u32,
    left: u32,
    turn: u64,
}

impl Budget {
    /// `per_turn` units per turn (at least one).
    pub fn new(per_turn: u32) -> Self {
        let per_turn = per_turn.max(1);
        Self { per_turn, left: per_turn, turn: TURN.load(Ordering::Relaxed) }
    }

    /// Spends one unit: returns at once while the budget of this turn
    /// lasts, otherwise lets the others run first (one [`yield_now`]).
    pub async fn spend(&mut self) {
        let turn = TURN.load(Ordering::Relaxed);
        if turn != self.turn {
            self.turn = turn;
            self.left = self.per_turn;
        }
        if self.left == 0 {
            yield_now().await;
            self.turn = TURN.load(Ordering::Relaxed);
            self.left = self.per_turn;
        }
        self.left -= 1;
    }
}

/// The result of a spawned task, as a future.
#[derive(Debug)]
pub struct JoinHandle<T> {
    state: Arc<Mutex<JoinState<T>>>,
}

#[derive(Debug)]
struct JoinState<T> {
    output: Option<T>,
    waker: Option<Waker>,
}

/// Starts `future` as a task of its own. It runs while a [`block_on`] runs
/// (usually the application's whole life); awaiting the handle gives its
/// output, dropping the handle lets it run on.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = Arc::new(Mutex::new(JoinState { output: None, waker: None }));
    let inner = state.clone();
    let task = async move {
        let out = future.await;
        let waker = {
            let mut s = inner.lock();
            s.output = Some(out);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let waker = TaskWaker::new(id, true);
    TASKS.lock().insert(id, Task { future: Some(Local(Box::pin(task))), waker });
    READY.lock().push_back(id);
    JoinHandle { state }
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.state.lock().output.is_some()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.state.lock();
        match s.output.take() {
            Some(out) => Poll::Ready(out),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Number of tasks alive (spawned and not finished).
pub fn task_count() -> usize {
    TASKS.lock().len()
}

/// A future that completes at a deadline.
///
/// Its timer wakes the task that first polled it while it was registered;
/// [`Sleep::reset`] moves the deadline, later without touching the timer
/// heap (the way a connection's idle timeout moves with every request).
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
    /// The timer registered for it, once polled: its sequence number and
    /// the deadline it fires at, which a [`Sleep::reset`] to a later
    /// deadline leaves earlier than `deadline`.
    timer: Option<(u64, Instant)>,
}

impl Future for Sleep {
    type Output = ();

    /// Ready once the executor fired timers for the deadline: a deadline
    /// that has passed when the sleep is first polled completes on the
    /// executor's next turn.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if fired(self.deadline) {
            // Its timer, if it had one, is gone from the heap.
            self.timer = None;
            return Poll::Ready(());
        }
        match self.timer {
            // Registered, and not fired yet: it wakes the task in time.
            Some((_, at)) if !fired(at) => {}
            // None yet, or one that fired before the deadline (it was
            // reset to a later one): register one for the deadline.
            _ => {
                let deadline = self.deadline;
                self.timer = Some((add_timer(deadline, cx.waker().clone()), deadline));
            }
        }
        Poll::Pending
    }
}

impl Sleep {
    /// Completes at `deadline` instead. A timer already registered for an
    /// earlier time is kept: when it fires, the task is woken, and the next
    /// poll registers one for `deadline` (so moving a deadline later, as
    /// an idle timeout does with every request, costs nothing until the
    /// old one comes); one for a later time is cancelled.
    pub fn reset(&mut self, deadline: Instant) {
        if let Some((seq, at)) = self.timer
            && at > deadline
        {
            if !fired(at) {
                cancel_timer(seq);
            }
            self.timer = None;
        }
        self.deadline = deadline;
    }

    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((seq, at)) = self.timer
            && !fired(at)
        {
            cancel_timer(seq);
        }
    }
}

/// Cancels the registered timer `seq`, which has not fired: it is skipped
/// when it reaches the top of the heap.
fn cancel_timer(seq: u64) {
    let mut cancelled = CANCELLED.lock();
    cancelled.insert(seq);
    // A server that wraps every read in a timeout cancels timers far
    // faster than they expire: once most of the heap is cancelled,
    // rebuild it, so that memory follows the live timers only.
    if cancelled.len() > 64 {
        let mut timers = TIMERS.lock();
        if cancelled.len() * 2 > timers.len() {
            timers.retain(|Reverse(t)| !cancelled.contains(&t.seq));
            cancelled.clear();
        }
    }
}

/// Completes after `d`.
pub fn sleep(d: Duration) -> Sleep {
    sleep_until(Instant::now() + d)
}

/// Completes at `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, timer: None }
}

/// Lets other ready tasks and the network run before continuing.
pub async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Lets every other task of this turn of the executor run, and continues
/// in the same turn, before the network is polled: what a task does next
/// sees what all of them did, and goes out with the turn's frames. For
/// work done once for the tasks of a turn, such as a log written for all
/// the commands they executed (group commit) before any of them replies:
/// [`yield_now`] would do as well, but a turn later, after a network poll
/// and a tap check of their own.
///
/// Outside a spawned task (the future [`block_on`] runs, or no executor)
/// it is [`yield_now`].
pub async fn end_of_turn() {
    let mut waiting = false;
    core::future::poll_fn(|cx| {
        if waiting {
            return Poll::Ready(());
        }
        waiting = true;
        match CURRENT.load(Ordering::Relaxed) {
            NO_TASK => cx.waker().wake_by_ref(),
            id => LATE.lock().push(id),
        }
        Poll::Pending
    })
    .await
}

/// One of two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first future finished first.
    Left(A),
    /// The second future finished first.
    Right(B),
}

/// Runs both futures to completion, concurrently, within one task.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = core::pin::pin!(a);
    let mut b = core::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    core::future::poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    match (ra, rb) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("join completes only when both have"),
    }
}

/// Waits for the first of two futures; the other is dropped.
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = core::pin::pin!(a);
    let mut b = core::pin::pin!(b);
    core::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl core::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl core::error::Error for Elapsed {}

/// Runs `future` for at most `d`.
pub async fn timeout<F: Future>(d: Duration, future: F) -> Result<F::Output, Elapsed> {
    match select(future, sleep(d)).await {
        Either::Left(v) => Ok(v),
        Either::Right(()) => Err(Elapsed),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    /// The executor is global: tests that run it take turns.
    pub(crate) static EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn exclusive() -> std::sync::MutexGuard<'static, ()> {
        EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn block_on_returns_the_output() {
        let _g = exclusive();
        assert_eq!(block_on(async { 6 * 7 }), 42);
    }

    #[test]
    fn spawned_tasks_run_and_join() {
        let _g = exclusive();
        let log = Rc::new(RefCell::new(Vec::new()));
        let l2 = log.clone();
        let out = block_on(async move {
            let h = spawn(async move {
                l2.borrow_mut().push("task");
                sleep(Duration::from_millis(5)).await;
                l2.borrow_mut().push("task woke");
                7
            });
            log.borrow_mut().push("main");
            let v = h.await;
            log.borrow_mut().push("joined");
            (v, log.borrow().clone())
        });
        assert_eq!(out.0, 7);
        assert_eq!(out.1, ["main", "task", "task woke", "joined"]);
        assert_eq!(task_count(), 0);
    }

    #[test]
    fn timers_fire_in_deadline_order_and_not_early() {
        let _g = exclusive();
        let order = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now();
        block_on({
            let order = order.clone();
            async move {
                let mut handles = Vec::new();
                for ms in [30u64, 10, 20] {
                    let order = order.clone();
                    handles.push(spawn(async move {
                        // Deadlines from one instant: `sleep(ms)` counts
                        // from each task's first poll, and a test process
                        // descheduled for 20 ms between two of those polls
                        // (a loaded machine) would make 30 the earliest.
                        sleep_until(start + Duration::from_millis(ms)).await;
                        assert!(start.elapsed() >= Duration::from_millis(ms));
                        order.borrow_mut().push(ms);
                    }));
                }
                for h in handles {
                    h.await;
                }
            }
        });
        assert_eq!(*order.borrow(), [10, 20, 30]);
    }

    #[test]
    fn a_cancelled_timer_does_not_count_as_a_deadline() {
        let _g = exclusive();
        block_on(async {
            let long = sleep(Duration::from_secs(3600));
            let mut long = core::pin::pin!(long);
            // Register it, then drop it.
            assert!(select(long.as_mut(), async {}).await == Either::Right(()));
        });
        // Outside block_on: the dropped timer is skipped, nothing is pending.
        assert_eq!(fire_timers(Instant::now()), None);
    }

    #[test]
    fn a_sleep_is_done_once_its_timer_fired_and_only_then() {
        let _g = exclusive();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        // Its deadline has passed, but no timers were fired for it yet: it
        // registers its timer and waits for the executor's next turn.
        let deadline = Instant::now();
        let mut s = core::pin::pin!(sleep_until(deadline));
        assert_eq!(s.as_mut().poll(&mut cx), Poll::Pending);
        assert!(s.timer.is_some());
        assert_eq!(fire_timers(deadline), None, "its timer fired, none is left");
        assert_eq!(s.as_mut().poll(&mut cx), Poll::Ready(()));
        // A dropped sleep whose timer fired cancels nothing.
        let mut s = sleep_until(deadline);
        s.timer = Some((u64::MAX, deadline));
        drop(s);
        assert!(!CANCELLED.lock().contains(&u64::MAX));
        // One that has not, does.
        let later = Instant::now() + Duration::from_secs(3600);
        let mut s = Box::pin(sleep_until(later));
        assert_eq!(s.as_mut().poll(&mut cx), Poll::Pending);
        let (seq, _) = s.timer.unwrap();
        drop(s);
        assert!(CANCELLED.lock().contains(&seq));
        assert_eq!(fire_timers(Instant::now()), None, "the cancelled timer is skipped");
    }

    #[test]
    fn a_sleep_reset_later_keeps_its_timer_until_it_fires() {
        let _g = exclusive();
        let wakes = Arc::new(CountWaker(core::sync::atomic::AtomicU32::new(0)));
        let waker = Waker::from(wakes.clone());
        let count = || wakes.0.load(Ordering::Relaxed);
        let mut cx = Context::from_waker(&waker);
        // Timers are fired for times a little ahead of the clock, not far:
        // the executor then holds every deadline before them as passed, and
        // the test waits for the clock to pass them before it ends.
        let t0 = Instant::now() + Duration::from_millis(20);
        let mut s = sleep_until(t0);
        assert_eq!(Pin::new(&mut s).poll(&mut cx), Poll::Pending);
        let queued = TIMERS.lock().len();
        // Later deadlines, as an idle timeout after each request: no timer
        // is added, none cancelled.
        for i in 1..=100 {
            s.reset(t0 + Duration::from_millis(i));
            assert_eq!(Pin::new(&mut s).poll(&mut cx), Poll::Pending);
        }
        assert_eq!(TIMERS.lock().len(), queued);
        assert!(!CANCELLED.lock().contains(&s.timer.unwrap().0));
        // The old timer fires: the task is woken, but the sleep is not
        // done; its poll registers the new deadline's timer.
        fire_timers(t0);
        assert_eq!(count(), 1);
        assert_eq!(Pin::new(&mut s).poll(&mut cx), Poll::Pending);
        assert_eq!(s.timer.unwrap().1, t0 + Duration::from_millis(100));
        fire_timers(t0 + Duration::from_millis(99));
        assert_eq!(Pin::new(&mut s).poll(&mut cx), Poll::Pending);
        assert_eq!(count(), 1, "not woken before its deadline");
        fire_timers(t0 + Duration::from_millis(100));
        assert_eq!(count(), 2);
        assert_eq!(Pin::new(&mut s).poll(&mut cx), Poll::Ready(()));
        while Instant::now() <= t0 + Duration::from_millis(100) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // An earlier deadline cancels the timer, and the next poll registers
        // one for it.
        let earlier = Instant::now() + Duration::from_secs(3600);
        let t1 = earlier + Duration::from_secs(60);
        let mut s = sleep_until(t1);
        assert_eq!(Pin::new(&mut s).poll(&mut cx), Poll::Pending);
        let (seq, _) = s.timer.unwrap();
        s.reset(earlier);
        assert!(CANCELLED.lock().contains(&seq));
        assert_eq!(Pin::new(&mut s).poll(&mut cx), Poll::Pending);
        assert_eq!(s.timer.unwrap().1, earlier);
        let (seq, _) = s.timer.unwrap();
        drop(s);
        assert!(CANCELLED.lock().contains(&seq), "dropped before its timer fired");
    }

    /// Counts its wakes.
    struct CountWaker(core::sync::atomic::AtomicU32);

    impl Wake for CountWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn cancelled_timers_do_not_accumulate() {
        let _g = exclusive();
        block_on(async {
            for _ in 0..100_000 {
                // A timeout that never fires, as around every read of a
                // server: the timer is registered, then cancelled.
                let _ = timeout(Duration::from_secs(30), yield_now()).await;
            }
        });
        assert!(TIMERS.lock().len() < 1000, "{} timers queued", TIMERS.lock().len());
        assert!(CANCELLED.lock().len() < 1000);
    }

    /// A task that is always ready (it wakes itself, several times, on
    /// every poll) gets one poll per turn: the other tasks are polled as
    /// often, and the taps are asked for frames between any two of its
    /// polls.
    #[test]
    fn an_always_ready_task_starves_neither_tasks_nor_the_network() {
        use core::cell::Cell;
        let _g = exclusive();
        let stop = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u32));
        // Tap checks seen by the spinner at each of its polls.
        let checks = Rc::new(RefCell::new(Vec::new()));
        let (s2, n2, c2) = (stop.clone(), spins.clone(), checks.clone());
        let spinner = async move {
            core::future::poll_fn(|cx| {
                if s2.get() {
                    return Poll::Ready(());
                }
                n2.set(n2.get() + 1);
                c2.borrow_mut().push(crate::net::TAP_CHECKS.load(Ordering::Relaxed));
                for _ in 0..5 {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            })
            .await
        };
        let steps = Rc::new(Cell::new(0u32));
        let s3 = steps.clone();
        let stop3 = stop.clone();
        let spins3 = spins.clone();
        let worker = async move {
            let mut lag = 0u32;
            for _ in 0..200 {
                yield_now().await;
                s3.set(s3.get() + 1);
                lag = lag.max(spins3.get().abs_diff(s3.get()));
            }
            stop3.set(true);
            lag
        };
        let lag = block_on(async move {
            let spin = spawn(spinner);
            let lag = spawn(worker).await;
            spin.await;
            lag
        });
        assert_eq!(steps.get(), 200);
        // Round-robin: the worker is never more than a turn or two behind
        // the spinner, however often the spinner wakes itself.
        assert!(lag <= 2, "the worker fell {lag} polls behind the spinner");
        assert!((200..=203).contains(&spins.get()), "{} polls of the spinner", spins.get());
        let checks = checks.borrow();
        for pair in checks.windows(2) {
            assert!(pair[1] > pair[0], "two polls of the spinner without a tap check between");
        }
        assert_eq!(task_count(), 0);
    }

    /// Woken many times before it runs, a task is polled once.
    #[test]
    fn a_task_woken_twice_is_queued_once() {
        use core::cell::Cell;
        let _g = exclusive();
        let polls = Rc::new(Cell::new(0u32));
        let p2 = polls.clone();
        let parked: Rc<RefCell<Option<Waker>>> = Rc::new(RefCell::new(None));
        let park2 = parked.clone();
        block_on(async move {
            let h = spawn(async move {
                let mut first = true;
                core::future::poll_fn(|cx| {
                    p2.set(p2.get() + 1);
                    if first {
                        first = false;
                        *park2.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    } else {
                        Poll::Ready(())
                    }
                })
                .await
            });
            yield_now().await;
            let w = parked.borrow_mut().take().unwrap();
            for _ in 0..10 {
                w.wake_by_ref();
            }
            assert_eq!(READY.lock().len(), 1);
            h.await;
        });
        assert_eq!(polls.get(), 2);
    }

    /// `end_of_turn` resumes a task in the same turn, after every task of
    /// the turn ran (each sees what all did: a group commit), in the order
    /// they began to wait; a task woken meanwhile still waits for the next
    /// turn, and the main future's `end_of_turn` is a yield.
    #[test]
    fn end_of_turn_resumes_after_the_turns_tasks_in_the_same_turn() {
        let _g = exclusive();
        // (task, turn, entries seen) at each step.
        type Log = Rc<RefCell<Vec<(&'static str, u64, usize)>>>;
        let log: Log = Rc::new(RefCell::new(Vec::new()));
        let turn = || TURN.load(Ordering::Relaxed);
        let task = |name: &'static str, log: Log| async move {
            let n = log.borrow().len();
            log.borrow_mut().push((name, turn(), n));
            end_of_turn().await;
            let n = log.borrow().len();
            log.borrow_mut().push((name, turn(), n));
        };
        let l2 = log.clone();
        block_on(async move {
            let a = spawn(task("a", l2.clone()));
            let b = spawn(task("b", l2.clone()));
            let c = spawn(task("c", l2.clone()));
            let before = turn();
            end_of_turn().await;
            assert!(turn() > before, "main's end_of_turn is a yield");
            a.await;
            b.await;
            c.await;
        });
        let log = log.borrow();
        let names: Vec<&str> = log.iter().map(|e| e.0).collect();
        assert_eq!(names, ["a", "b", "c", "a", "b", "c"]);
        let first = log[0].1;
        assert!(log.iter().all(|e| e.1 == first), "all in one turn: {log:?}");
        // After the end of the turn each saw the three first steps.
        assert!(log[3..].iter().all(|e| e.2 >= 3), "{log:?}");
        assert!(LATE.lock().is_empty());
        assert_eq!(task_count(), 0);
    }

    /// A budget yields once its units for the turn are spent, and lets the
    /// other tasks run before it goes on.
    #[test]
    fn a_budget_yields_after_its_units() {
        use core::cell::Cell;
        let _g = exclusive();
        let other = Rc::new(Cell::new(0u32));
        let o2 = other.clone();
        let seen = block_on(async move {
            let h = spawn(async move {
                for _ in 0..3 {
                    o2.set(o2.get() + 1);
                    yield_now().await;
                }
            });
            let mut budget = Budget::new(4);
            let mut seen = Vec::new();
            for _ in 0..12 {
                budget.spend().await;
                seen.push(other.get());
            }
            h.await;
            seen
        });
        // Four units per turn; between the batches the other task ran.
        assert_eq!(seen, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn join_select_and_timeout() {
        let _g = exclusive();
        block_on(async {
            let (a, b) = join(async { 1 }, async {
                sleep(Duration::from_millis(2)).await;
                2
            })
            .await;
            assert_eq!((a, b), (1, 2));
            let first = select(sleep(Duration::from_millis(50)), async { "fast" }).await;
            assert_eq!(first, Either::Right("fast"));
            assert_eq!(
                timeout(Duration::from_millis(5), sleep(Duration::from_secs(5))).await,
                Err(Elapsed)
            );
            assert_eq!(timeout(Duration::from_secs(5), async { 3 }).await, Ok(3));
            yield_now().await;
        });
    }
}
