//! The scheduler's bookkeeping: the thread table, the run queue, who waits
//! for what and until when, and the choice of what runs next. No context
//! switch happens here ([`super::switch`] does them): this part is plain
//! data, tested on the host.
//!
//! Threads are cooperative and all run on the one host thread (M:1). A
//! thread runs until it blocks (a futex wait, a sleep, a join, a poll,
//! `sched_yield`) or until its futex wake makes another thread ready
//! (which then runs first: [`Sched::wake_ahead`]); then [`Sched::next`]
//! picks the first ready thread, in FIFO order. When none is ready, expired deadlines make their threads
//! ready; failing that, the guest idles (in libos's one `ppoll`) until the
//! earliest deadline or a device event. Threads that wait for events
//! (`poll` on descriptors, `pause`) are woken after each idle turn, and
//! once after other threads made progress, so that they re-check their
//! descriptors; when every live thread waits forever and nothing can wake
//! any of them, that is a deadlock.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use libos::time::Instant;

use super::super::c_void;

/// A destructor registered for the thread's exit, and its argument.
pub type Dtor = (unsafe extern "C" fn(*mut c_void), *mut c_void);

/// A thread's start routine, as `pthread_create` receives it.
pub type Start = extern "C" fn(*mut c_void) -> *mut c_void;

/// What a blocked thread waits for (for the deadlock report, and because
/// event waiters are woken by idle turns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A futex wake (std's mutexes, condition variables, parking, ...).
    Futex,
    /// A deadline only.
    Sleep,
    /// Another thread's exit.
    Join,
    /// A device or descriptor event (`poll`, `epoll_wait`, a blocking read
    /// or write of a pipe, eventfd or socket pair, `pause`).
    Events,
}

impl Wait {
    /// What the deadlock report says.
    pub fn describe(self) -> &'static str {
        match self {
            Wait::Futex => "waits on a futex (a lock, condition variable, channel or park)",
            Wait::Sleep => "sleeps",
            Wait::Join => "joins a thread",
            Wait::Events => "waits for a descriptor or a signal (poll, epoll, a pipe, pause)",
        }
    }
}

/// A thread's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// On the run queue.
    Ready,
    /// The one running thread.
    Running,
    /// Blocked until woken or until the deadline (forever if None).
    Blocked(Wait, Option<Instant>),
    /// Finished: its record waits for a join (or, detached, to be freed).
    Exited,
}

/// A thread's own stack: a heap allocation (the main thread's is the
/// tender's, and has none).
#[derive(Debug, Clone, Copy)]
pub struct Stack {
    /// The lowest address (the canary zone starts here).
    pub bottom: usize,
    /// Its size in bytes.
    pub size: usize,
}

/// One thread.
#[derive(Debug)]
pub struct Thread {
    /// Its number (`gettid`): the main thread's is 1.
    pub id: u32,
    /// Its thread control block (`%fs`), also its `pthread_t`.
    pub tcb: usize,
    /// Its saved stack pointer, while it does not run.
    pub rsp: usize,
    /// Its stack, if this library allocated it.
    pub stack: Option<Stack>,
    /// Its state.
    pub state: State,
    /// Detached: nobody joins it; its record is freed when it exits.
    pub detached: bool,
    /// The thread waiting in `pthread_join` for it.
    pub joiner: Option<usize>,
    /// Its name (`pthread_setname_np`), NUL-padded, at most 15 bytes.
    pub name: [u8; 16],
    /// Its `__cxa_thread_atexit_impl` destructors, run last first.
    pub dtors: Vec<Dtor>,
    /// Its start routine and argument, until it starts.
    pub start: Option<(Start, *mut c_void)>,
    /// What its start routine returned (or `pthread_exit` was given).
    pub retval: *mut c_void,
}

impl Thread {
    /// A thread record in state `Ready`, with no stack.
    pub fn new(id: u32, tcb: usize, name: [u8; 16]) -> Self {
        Self {
            id,
            tcb,
            rsp: 0,
            stack: None,
            state: State::Ready,
            detached: false,
            joiner: None,
            name,
            dtors: Vec::new(),
            start: None,
            retval: core::ptr::null_mut(),
        }
    }

    /// Its name, without the padding.
    pub fn name(&self) -> &[u8] {
        let n = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        &self.name[..n]
    }
}

/// What runs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// This thread (perhaps the one that asked).
    Run(usize),
    /// Nobody is ready: idle until this deadline (or an event; forever if
    /// None, which only event waiters can end), then ask again.
    Idle(Option<Instant>),
    /// Every live thread waits forever for something no thread and no
    /// deadline can bring.
    Deadlock,
    /// Every thread has exited.
    AllExited,
}

/// The thread table and run queue.
#[derive(Debug)]
pub struct Sched {
    /// Threads by index (their slot); freed slots are reused.
    threads: Vec<Option<Box<Thread>>>,
    /// Ready threads, first to run first.
    ready: VecDeque<usize>,
    /// The running thread's slot.
    current: usize,
    /// How many blocked threads have a deadline (the clock is read only
    /// when some do).
    timed: usize,
    /// A thread other than an event waiter became ready since event
    /// waiters last looked: they look again before the guest idles.
    progress: bool,
    /// The number the next thread gets.
    next_id: u32,
}

impl Sched {
    /// A table holding `main` as the running thread.
    pub fn new(mut main: Thread) -> Self {
        main.state = State::Running;
        Self {
            threads: alloc::vec![Some(Box::new(main))],
            ready: VecDeque::new(),
            current: 0,
            timed: 0,
            progress: false,
            next_id: 2,
        }
    }

    /// The running thread's slot.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The thread in `slot`.
    pub fn get(&self, slot: usize) -> Option<&Thread> {
        self.threads.get(slot)?.as_deref()
    }

    /// The thread in `slot`, mutably.
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Thread> {
        self.threads.get_mut(slot)?.as_deref_mut()
    }

    /// The running thread.
    pub fn me(&mut self) -> &mut Thread {
        self.threads[self.current].as_deref_mut().expect("the running thread has a record")
    }

    /// The slot of the thread whose TCB (`pthread_t`) is `tcb`.
    pub fn find(&self, tcb: usize) -> Option<usize> {
        self.threads.iter().position(|t| t.as_ref().is_some_and(|t| t.tcb == tcb))
    }

    /// Every thread, with its slot.
    pub fn threads(&self) -> impl Iterator<Item = (usize, &Thread)> {
        self.threads.iter().enumerate().filter_map(|(i, t)| Some((i, t.as_deref()?)))
    }

    /// The number a new thread gets.
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(2);
        id
    }

    /// Adds a new thread, ready to run after those already ready; returns
    /// its slot, or None without memory.
    pub fn add(&mut self, mut t: Thread) -> Option<usize> {
        t.state = State::Ready;
        // Room for every thread on the run queue, so that waking one
        // never allocates.
        self.ready.try_reserve((self.threads.len() + 1).saturating_sub(self.ready.len())).ok()?;
        let slot = match self.threads.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.threads.try_reserve(1).ok()?;
                self.threads.push(None);
                self.threads.len() - 1
            }
        };
        self.threads[slot] = Some(Box::new(t));
        self.ready.push_back(slot);
        self.progress = true;
        Some(slot)
    }

    /// Takes the record of the thread in `slot` out of the table (an
    /// exited thread, once joined or, detached, once off its stack).
    pub fn remove(&mut self, slot: usize) -> Option<Box<Thread>> {
        debug_assert_ne!(slot, self.current);
        self.threads.get_mut(slot)?.take()
    }

    /// Records that the running thread changed something threads waiting
    /// for events may be waiting for (a socket's state, when its call gave
    /// the network a turn; a write to a pipe, an eventfd, a socket pair):
    /// they look again before the guest idles.
    pub fn note_progress(&mut self) {
        self.progress = true;
    }

    /// Blocks the running thread (the caller then asks [`Sched::next`]).
    pub fn block(&mut self, why: Wait, deadline: Option<Instant>) {
        if deadline.is_some() {
            self.timed += 1;
        }
        self.me().state = State::Blocked(why, deadline);
    }

    /// Puts the running thread at the back of the run queue.
    pub fn yield_now(&mut self) {
        self.ready.push_back(self.current);
        self.me().state = State::Ready;
    }

    /// Marks the running thread exited; returns the thread to wake (its
    /// joiner), if any.
    pub fn exit(&mut self, retval: *mut c_void) -> Option<usize> {
        let me = self.me();
        me.state = State::Exited;
        me.retval = retval;
        let joiner = me.joiner.take();
        if let Some(j) = joiner {
            self.wake(j);
        }
        joiner
    }

    /// Makes a blocked thread ready (a futex wake, a join, a deadline);
    /// returns whether it was blocked.
    pub fn wake(&mut self, slot: usize) -> bool {
        let events =
            matches!(self.get(slot).map(|t| t.state), Some(State::Blocked(Wait::Events, _)));
        let woke = self.make_ready(slot);
        if woke && !events {
            self.progress = true;
        }
        woke
    }

    /// Makes a blocked thread ready to run next, behind the `ahead`
    /// threads a wake already put at the front of the run queue (a futex
    /// wake: the waker then yields, see [`super::switch`]); returns
    /// whether it was blocked. Never allocates.
    pub fn wake_ahead(&mut self, slot: usize, ahead: usize) -> bool {
        if !self.wake(slot) {
            return false;
        }
        let last = self.ready.pop_back();
        debug_assert_eq!(last, Some(slot), "make_ready queues at the back");
        // One element out, one in: within the reserved capacity.
        self.ready.insert(ahead.min(self.ready.len()), slot);
        true
    }

    /// Moves a ready thread to the front of the run queue (a new thread,
    /// which then runs first: [`super::switch::spawn`]); returns whether
    /// it was on the queue. Never allocates.
    pub fn run_first(&mut self, slot: usize) -> bool {
        let Some(i) = self.ready.iter().position(|&s| s == slot) else { return false };
        self.ready.remove(i);
        self.ready.push_front(slot);
        true
    }

    fn make_ready(&mut self, slot: usize) -> bool {
        let Some(t) = self.threads.get_mut(slot).and_then(Option::as_deref_mut) else {
            return false;
        };
        let State::Blocked(_, deadline) = t.state else { return false };
        if deadline.is_some() {
            self.timed -= 1;
        }
        t.state = State::Ready;
        // The queue holds each thread at most once, and has room for all:
        // it never grows past the table's size.
        self.ready.push_back(slot);
        true
    }

    /// Whether some blocked thread has a deadline ([`Sched::next`] then
    /// needs the time).
    pub fn has_deadlines(&self) -> bool {
        self.timed > 0
    }

    /// Wakes every thread that waits for events (after an idle turn).
    pub fn wake_event_waiters(&mut self) {
        for slot in 0..self.threads.len() {
            if matches!(self.get(slot).map(|t| t.state), Some(State::Blocked(Wait::Events, _))) {
                self.make_ready(slot);
            }
        }
    }

    /// Chooses what runs next, given the time (read only if
    /// [`Sched::has_deadlines`]; `None` otherwise). A thread chosen to
    /// run becomes the running thread: the caller switches to it.
    pub fn next(&mut self, now: Option<Instant>) -> Next {
        if let Some(now) = now.filter(|_| self.timed > 0) {
            // Earliest deadline first, so that threads whose deadlines all
            // passed during one idle turn run in the order of their
            // deadlines.
            loop {
                let expired = self
                    .threads()
                    .filter_map(|(slot, t)| match t.state {
                        State::Blocked(_, Some(d)) if d <= now => Some((d, slot)),
                        _ => None,
                    })
                    .min();
                let Some((_, slot)) = expired else { break };
                self.wake(slot);
            }
        }
        if self.ready.is_empty() && self.progress {
            self.progress = false;
            self.wake_event_waiters();
        }
        if let Some(slot) = self.ready.pop_front() {
            self.run(slot);
            return Next::Run(slot);
        }
        let mut live = false;
        let mut events = false;
        let mut deadline: Option<Instant> = None;
        for (_, t) in self.threads() {
            match t.state {
                State::Exited => {}
                State::Blocked(why, d) => {
                    live = true;
                    events |= why == Wait::Events;
                    if let Some(d) = d {
                        deadline = Some(deadline.map_or(d, |e| e.min(d)));
                    }
                }
                State::Ready | State::Running => live = true,
            }
        }
        match (live, deadline, events) {
            (false, _, _) => Next::AllExited,
            (true, Some(d), _) => Next::Idle(Some(d)),
            (true, None, true) => Next::Idle(None),
            (true, None, false) => Next::Deadlock,
        }
    }

    /// Makes `slot` the running thread.
    fn run(&mut self, slot: usize) {
        self.current = slot;
        self.me().state = State::Running;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn at(ms: u64) -> Instant {
        Instant::from_duration(Duration::from_millis(ms))
    }

    fn sched_with(n: usize) -> Sched {
        let mut s = Sched::new(Thread::new(1, 100, *b"main\0\0\0\0\0\0\0\0\0\0\0\0"));
        for i in 1..n {
            let id = s.next_id();
            assert_eq!(s.add(Thread::new(id, 100 + i, [0; 16])), Some(i));
        }
        s
    }

    #[test]
    fn ready_threads_run_in_fifo_order_and_yield_goes_last() {
        let mut s = sched_with(3);
        assert_eq!(s.get(2).unwrap().id, 3);
        s.yield_now();
        assert_eq!(s.next(None), Next::Run(1));
        assert_eq!(s.current(), 1);
        s.block(Wait::Futex, None);
        assert_eq!(s.next(None), Next::Run(2));
        s.yield_now();
        assert_eq!(s.next(None), Next::Run(0));
        assert_eq!(s.get(0).unwrap().state, State::Running);
        assert_eq!(s.get(2).unwrap().state, State::Ready);
        assert!(s.wake(1));
        assert!(!s.wake(1), "a ready thread is not woken twice");
        s.block(Wait::Sleep, Some(at(5)));
        assert_eq!(s.next(Some(at(0))), Next::Run(2));
        s.yield_now();
        assert_eq!(s.next(None), Next::Run(1));
    }

    #[test]
    fn a_futex_wake_runs_the_woken_next_and_the_waker_after_the_others() {
        let mut s = sched_with(5);
        // 1 and 2 wait on a futex, 3 is ready.
        s.yield_now();
        assert_eq!(s.next(None), Next::Run(1));
        s.block(Wait::Futex, None);
        assert_eq!(s.next(None), Next::Run(2));
        s.block(Wait::Futex, None);
        assert_eq!(s.next(None), Next::Run(3));
        s.yield_now();
        assert_eq!(s.next(None), Next::Run(4));
        s.yield_now();
        assert_eq!(s.next(None), Next::Run(0));
        // Ready: 3, 4. Thread 0 wakes 2 then 1, and yields.
        assert!(s.wake_ahead(2, 0));
        assert!(s.wake_ahead(1, 1));
        assert!(!s.wake_ahead(1, 2), "a ready thread is not woken twice");
        s.yield_now();
        let order: Vec<_> = (0..5)
            .map(|_| {
                let Next::Run(slot) = s.next(None) else { panic!("all are ready") };
                s.yield_now();
                slot
            })
            .collect();
        assert_eq!(order, [2, 1, 3, 4, 0]);
        // A new thread goes first too.
        assert_eq!(s.next(None), Next::Run(2));
        let id = s.next_id();
        let new = s.add(Thread::new(id, 900, [0; 16])).unwrap();
        assert!(s.run_first(new));
        assert!(!s.run_first(s.current()), "the running thread is not queued");
        s.yield_now();
        assert_eq!(s.next(None), Next::Run(new));
    }

    #[test]
    fn deadlines_expire_and_the_earliest_is_idled_for() {
        let mut s = sched_with(2);
        s.block(Wait::Sleep, Some(at(30)));
        assert_eq!(s.next(Some(at(0))), Next::Run(1));
        s.block(Wait::Futex, Some(at(20)));
        assert!(s.has_deadlines());
        assert_eq!(s.next(Some(at(10))), Next::Idle(Some(at(20))));
        assert_eq!(s.next(Some(at(25))), Next::Run(1));
        s.block(Wait::Futex, None);
        assert_eq!(s.next(Some(at(31))), Next::Run(0));
        assert!(!s.has_deadlines());
    }

    #[test]
    fn threads_whose_deadlines_passed_together_run_earliest_first() {
        let mut s = sched_with(4);
        s.block(Wait::Sleep, Some(at(30)));
        assert_eq!(s.next(Some(at(0))), Next::Run(1));
        s.block(Wait::Sleep, Some(at(10)));
        assert_eq!(s.next(Some(at(0))), Next::Run(2));
        s.block(Wait::Futex, Some(at(20)));
        assert_eq!(s.next(Some(at(0))), Next::Run(3));
        s.block(Wait::Sleep, None);
        assert_eq!(s.next(Some(at(50))), Next::Run(1));
        s.block(Wait::Futex, None);
        assert_eq!(s.next(None), Next::Run(2));
        s.block(Wait::Futex, None);
        assert_eq!(s.next(None), Next::Run(0));
    }

    #[test]
    fn waiting_forever_with_nothing_to_wake_is_a_deadlock() {
        let mut s = sched_with(2);
        s.block(Wait::Join, None);
        assert_eq!(s.next(None), Next::Run(1));
        s.block(Wait::Futex, None);
        assert_eq!(s.next(None), Next::Deadlock);
        // An event waiter can be woken by a device: idle forever.
        s.get_mut(1).unwrap().state = State::Blocked(Wait::Events, None);
        assert_eq!(s.next(None), Next::Idle(None));
        s.wake_event_waiters();
        assert_eq!(s.next(None), Next::Run(1));
    }

    #[test]
    fn event_waiters_look_again_after_progress_before_idling() {
        let mut s = sched_with(3);
        s.block(Wait::Events, None);
        assert_eq!(s.next(None), Next::Run(1));
        // Thread 1 makes progress (wakes 2), which runs and blocks.
        s.block(Wait::Futex, None);
        assert_eq!(s.next(None), Next::Run(2));
        s.block(Wait::Futex, None);
        // Progress happened since 0 last looked: it looks again.
        assert_eq!(s.next(None), Next::Run(0));
        s.block(Wait::Events, None);
        // No progress since: idle.
        assert_eq!(s.next(None), Next::Idle(None));
    }

    #[test]
    fn an_in_process_write_makes_event_waiters_look_again() {
        let mut s = sched_with(2);
        s.block(Wait::Events, None);
        assert_eq!(s.next(None), Next::Run(1));
        // Thread 1 writes to a pipe (events_changed), then blocks.
        s.note_progress();
        s.block(Wait::Futex, None);
        assert_eq!(s.next(None), Next::Run(0), "the waiter looks again before any idling");
        s.block(Wait::Events, None);
        assert_eq!(s.next(None), Next::Idle(None), "once");
    }

    #[test]
    fn exit_wakes_the_joiner_and_the_last_exit_ends_all() {
        let mut s = sched_with(2);
        s.get_mut(1).unwrap().joiner = Some(0);
        s.block(Wait::Join, None);
        assert_eq!(s.next(None), Next::Run(1));
        let r = 7usize as *mut c_void;
        assert_eq!(s.exit(r), Some(0));
        assert_eq!(s.next(None), Next::Run(0));
        let t = s.remove(1).unwrap();
        assert_eq!((t.state, t.retval), (State::Exited, r));
        // The slot is reused.
        let id = s.next_id();
        assert_eq!(s.add(Thread::new(id, 500, [0; 16])), Some(1));
        assert_eq!(s.find(500), Some(1));
        s.exit(core::ptr::null_mut());
        assert_eq!(s.next(None), Next::Run(1));
        s.exit(core::ptr::null_mut());
        assert_eq!(s.next(None), Next::AllExited);
    }
}
