//! Threads in motion: the one scheduler ([`Sched`]) of the guest, the
//! context switch, thread stacks, start and exit.
//!
//! # The switch
//!
//! `libos_std_switch(save, rsp, fs)` (assembly, below) pushes the
//! callee-saved registers of the System V ABI (`rbx`, `rbp`, `r12`-`r15`,
//! the MXCSR control bits and the x87 control word) on the running
//! thread's stack, stores its stack pointer in `*save`, loads `rsp`, sets
//! `%fs` to the next thread's TCB with `wrfsbase` (its TLS and `errno`),
//! and pops that thread's registers: about twenty instructions, no
//! system call. A new thread's stack starts with such a frame whose
//! return address is `libos_std_thread_start`, which calls
//! [`thread_entry`]; that frame's CFI marks the end of the stack for the
//! unwinder.
//!
//! # Stacks
//!
//! A thread's stack comes from the heap (untouched pages of the heap cost
//! no memory: it is mapped `MAP_NORESERVE`). No guard page can protect it
//! (`mprotect` is not among the hypercalls): instead the lowest
//! [`CANARY_BYTES`] hold a pattern whose top is checked each time the
//! thread switches out, and all of it when the thread exits; a thread found past its stack, or with
//! the pattern overwritten, ends the guest with a message naming it and
//! status 255. That catches most overflows, not all: a frame larger than
//! the zone can skip it, and memory below the stack is already damaged
//! when the check runs. The main thread keeps the tender's stack and its
//! guard page.
//!
//! # Safety
//!
//! The switch relies on: each thread's saved `rsp` pointing at a frame
//! that `libos_std_switch` pushed (or that [`spawn`] laid out the same
//! way), on a stack that lives until the thread's record is freed, which
//! happens only once the thread has switched away for the last time; and
//! on no [`Lock`] borrow being held across a switch (every use of [`with`]
//! returns before the switch).

use alloc::alloc::{Layout, alloc, dealloc};

use libos::time::Instant;

use super::super::start::Lock;
use super::super::{c_int, c_void};
use super::sched::{Next, Sched, Stack, Start, State, Thread, Wait};

/// The guest's threads.
static SCHED: Lock<Option<Sched>> = Lock::new(None);

/// An exited, detached thread whose record and stack the next thread to
/// run frees (its own code cannot free the stack it runs on).
static ZOMBIE: Lock<Option<usize>> = Lock::new(None);

/// The pattern in the canary zones (a random value, set at start).
static CANARY: Lock<usize> = Lock::new(0x5a5a_5a5a_5a5a_5a5a);

/// The size of the zone at the bottom of each thread stack that must
/// stay untouched.
pub const CANARY_BYTES: usize = 4096;

/// The smallest stack this library makes (`PTHREAD_STACK_MIN` on top of
/// the canary zone).
pub const MIN_STACK: usize = 16384 + CANARY_BYTES;

/// Runs `f` on the scheduler, which holds the main thread from the start
/// (see [`init`]). Never switch inside `f`.
pub fn with<R>(f: impl FnOnce(&mut Sched) -> R) -> R {
    SCHED.with(|s| f(s.get_or_insert_with(|| Sched::new(Thread::new(1, 0, [0; 16])))))
}

/// Records the main thread: its TCB and name, and the canary pattern.
pub fn init(tcb: usize, name: [u8; 16], canary: usize) {
    SCHED.with(|s| {
        let mut main = Thread::new(1, tcb, name);
        main.state = State::Running;
        *s = Some(Sched::new(main));
    });
    CANARY.with(|c| *c = canary | 1);
}

/// The running thread's slot.
pub fn current_slot() -> usize {
    with(|s| s.current())
}

/// Makes a blocked thread ready; returns whether it was blocked.
pub fn wake(slot: usize) -> bool {
    with(|s| s.wake(slot))
}

/// Makes a thread blocked in a futex wait ready to run next, behind the
/// `ahead` threads this wake already put first ([`Sched::wake_ahead`]);
/// returns whether it was blocked. The waker then calls [`preempt`].
pub fn wake_ahead(slot: usize, ahead: usize) -> bool {
    with(|s| s.wake_ahead(slot, ahead))
}

/// Wake-up preemption: after a futex wake made threads ready (at the
/// front of the run queue), the waker goes to the back of it, as for
/// `sched_yield`, and the woken threads run now, as a woken thread
/// preempts its waker on one CPU under Linux. Without it a woken thread
/// would run only when its waker blocks, which can be much later: tokio's
/// blocking pool counts a notified thread busy until that thread has run,
/// so a worker that queues a burst of `spawn_blocking` calls without
/// blocking spawned a thread (and a 2 MiB stack) for nearly every call.
/// Bounded and fair: the waker runs again after one turn of each ready
/// thread.
pub fn preempt() {
    with(Sched::yield_now);
    schedule();
}

/// Blocks the running thread for `why` until woken (by [`wake`]) or until
/// `deadline`; other threads run meanwhile.
pub fn block(why: Wait, deadline: Option<Instant>) {
    with(|s| s.block(why, deadline));
    schedule();
}

/// Lets the other ready threads run first (`sched_yield`). With none,
/// gives the network a turn, so that a thread that spins on
/// `sched_yield` waiting for a device still sees it.
pub fn yield_now() {
    if with(|s| s.threads().all(|(_, t)| t.state != State::Ready)) {
        poll_events();
    }
    with(Sched::yield_now);
    schedule();
}

/// Scheduling turns since the network last had one.
static TURNS: Lock<u32> = Lock::new(0);

/// How many turns may pass without the network being polled: threads
/// that keep waking each other never let the run queue empty, and the
/// network and the threads in `poll` must not starve behind them.
const TURNS_PER_POLL: u32 = 64;

/// Switches to the next thread to run (perhaps the caller again, at once),
/// idling while none can, and returns when the caller runs again.
fn schedule() {
    // What the running thread wrote leaves before anything else runs
    // (super::send_soon).
    super::flush_egress();
    let from = current_slot();
    if TURNS.with(|t| {
        *t += 1;
        *t >= TURNS_PER_POLL
    }) {
        poll_events();
    }
    loop {
        let now = with(|s| s.has_deadlines()).then(Instant::now);
        match with(|s| s.next(now)) {
            Next::Run(to) => {
                if to != from {
                    switch(from, to);
                }
                return;
            }
            Next::Idle(deadline) => {
                // Without a network and a deadline, only a signal with a
                // handler (libos::signal) can still wake a thread.
                if deadline.is_none()
                    && libos::net::interfaces().is_empty()
                    && !libos::signal::awaited()
                {
                    deadlock();
                }
                libos::task::idle(deadline);
                TURNS.with(|t| *t = 0);
                with(Sched::wake_event_waiters);
            }
            Next::Deadlock => deadlock(),
            Next::AllExited => super::super::start::exit(0),
        }
    }
}

/// Gives the network a turn without waiting (frames that arrived
/// meanwhile included) and, if anything changed, wakes the threads waiting
/// for events to look at their descriptors again. Only then: with as many
/// waiters as [`TURNS_PER_POLL`], waking them all every time would keep
/// the run queue from ever emptying, and the scheduler from ever idling.
fn poll_events() {
    let progress = libos::task::poll_devices_now();
    TURNS.with(|t| *t = 0);
    if progress {
        with(Sched::wake_event_waiters);
    }
}

unsafe extern "C" {
    /// See the module's documentation.
    fn libos_std_switch(save: *mut usize, rsp: usize, fs: usize);
    /// Where a new thread's first switch returns to.
    fn libos_std_thread_start();
}

core::arch::global_asm!(
    ".pushsection .text.libos_std_switch,\"ax\",@progbits",
    ".globl libos_std_switch",
    ".type libos_std_switch,@function",
    "libos_std_switch:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "stmxcsr dword ptr [rsp]",
    "fnstcw word ptr [rsp + 4]",
    "mov [rdi], rsp",
    "mov rsp, rsi",
    "wrfsbase rdx",
    "ldmxcsr dword ptr [rsp]",
    "fldcw word ptr [rsp + 4]",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".size libos_std_switch, . - libos_std_switch",
    ".globl libos_std_thread_start",
    ".type libos_std_thread_start,@function",
    "libos_std_thread_start:",
    ".cfi_startproc",
    ".cfi_undefined rip",
    "xor ebp, ebp",
    "call {entry}",
    "ud2",
    ".cfi_endproc",
    ".size libos_std_thread_start, . - libos_std_thread_start",
    ".popsection",
    entry = sym thread_entry,
);

/// The initial control words: MXCSR's default (all exceptions masked,
/// round to nearest) and the x87 control word's (`0x37f`).
const INITIAL_CONTROL: usize = 0x1f80 | (0x037f << 32);

/// Switches from the thread in `from` (the caller) to the one in `to`
/// (already made the running thread by [`Sched::next`]).
fn switch(from: usize, to: usize) {
    let (save, rsp, fs) = with(|s| {
        let f = s.get_mut(from).expect("the switching thread has a record");
        if f.state != State::Exited {
            check_stack(f, SWITCH_CHECK_BYTES);
        }
        let save = &raw mut f.rsp;
        let t = s.get(to).expect("the next thread has a record");
        (save, t.rsp, t.tcb)
    });
    // SAFETY: save points into the record of `from` (boxed: it does not
    // move while the table changes), which lives at least until `from`
    // has switched away; rsp is `to`'s saved frame and fs its TCB (see
    // the module's Safety section); no Lock borrow is held.
    unsafe { libos_std_switch(save, rsp, fs) };
    // `from` runs again.
    reap();
}

/// Frees a detached thread that exited and switched away.
fn reap() {
    if let Some(slot) = ZOMBIE.with(Option::take)
        && let Some(t) = with(|s| s.remove(slot))
    {
        free(*t);
    }
}

/// Frees an exited thread's stack and TLS area.
pub fn free(t: Thread) {
    if let Some(stack) = t.stack {
        // SAFETY: the stack was allocated by spawn with this layout, and
        // its thread will never run again.
        unsafe { dealloc(stack.bottom as *mut u8, stack_layout(stack.size)) };
    }
    // SAFETY: the TCB came from new_area and its thread has exited.
    unsafe { super::free_area(t.tcb as *mut super::Tcb) };
}

fn stack_layout(size: usize) -> Layout {
    Layout::from_size_align(size, 4096).expect("stack sizes are checked in spawn")
}

/// How much of the top of the canary zone a switch checks (the whole zone
/// is checked at the thread's exit): a stack grows down, so an overflow
/// reaches the top of the zone first, and checking 512 bytes costs a few
/// nanoseconds where 4 KiB would cost about a hundred on every switch.
const SWITCH_CHECK_BYTES: usize = 512;

/// Checks the running thread's stack: its stack pointer above the canary
/// zone, and the top `bytes` of the zone intact. Ends the guest if not.
fn check_stack(t: &Thread, bytes: usize) {
    let Some(stack) = t.stack else { return };
    let here = 0u8;
    let sp = &raw const here as usize;
    let pattern = CANARY.with(|c| *c);
    let words = stack.bottom as *const usize;
    let words_in_zone = CANARY_BYTES / size_of::<usize>();
    let intact = (words_in_zone - bytes / size_of::<usize>()..words_in_zone)
        // SAFETY: the zone lies in the stack's allocation, which lives.
        .all(|i| unsafe { words.add(i).read_volatile() } == pattern ^ i);
    if !intact || sp < stack.bottom + CANARY_BYTES || sp > stack.bottom + stack.size {
        let mut msg = alloc::string::String::from("libos-std: thread '");
        msg.push_str(&alloc::string::String::from_utf8_lossy(t.name()));
        msg.push_str(&alloc::format!(
            "' (thread {}) overflowed its stack of {} KiB\n",
            t.id,
            stack.size / 1024
        ));
        libos::console::write_all(msg.as_bytes());
        libos::process::exit_now(255);
    }
}

/// Makes a thread that runs `start(arg)` on a stack of `stack_size` bytes
/// (rounded up to pages, at least [`MIN_STACK`]); returns its TCB (its
/// `pthread_t`), or `EAGAIN` without memory. It is first on the run
/// queue: the caller then calls [`preempt`], and the new thread runs at
/// once, as a new thread on Linux starts on another CPU while its creator
/// goes on. (Left for when the caller blocks, a pool's new thread could
/// not take its share of a burst of work queued meanwhile: each queued
/// item found no idle thread and started another.)
pub fn spawn(start: Start, arg: *mut c_void, stack_size: usize) -> Result<usize, c_int> {
    let size = stack_size.max(MIN_STACK).checked_next_multiple_of(4096).ok_or(::libc::EAGAIN)?;
    let layout = Layout::from_size_align(size, 4096).map_err(|_| ::libc::EAGAIN)?;
    // SAFETY: the layout's size is non-zero.
    let bottom = unsafe { alloc(layout) } as usize;
    if bottom == 0 {
        return Err(::libc::EAGAIN);
    }
    let pattern = CANARY.with(|c| *c);
    let words = bottom as *mut usize;
    for i in 0..CANARY_BYTES / size_of::<usize>() {
        // SAFETY: the zone lies in the fresh allocation.
        unsafe { words.add(i).write(pattern ^ i) };
    }
    let Some(tcb) = super::new_area(super::super::random::canary()) else {
        // SAFETY: allocated just above with this layout.
        unsafe { dealloc(bottom as *mut u8, layout) };
        return Err(::libc::EAGAIN);
    };
    // The first frame, as libos_std_switch pops it: control words, r15,
    // r14, r13, r12, rbx, rbp, then the return address. After the `ret`,
    // rsp is the (16-aligned) top, so the `call` in thread_start leaves
    // the entry's stack aligned as the ABI wants.
    let top = (bottom + size) & !15;
    let rsp = top - 8 * 8;
    let frame = [INITIAL_CONTROL, 0, 0, 0, 0, 0, 0, libos_std_thread_start as *const () as usize];
    // SAFETY: the frame lies at the top of the fresh stack.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut usize, frame.len()) };
    // Room for one more futex waiter, so that no wait fails for memory.
    let threads = with(|s| s.threads().count()) + 1;
    let added = if super::futex::guest::reserve(threads) {
        with(|s| {
            let id = s.next_id();
            // SAFETY: tcb is the fresh area made above.
            unsafe { super::set_id(tcb as usize, id) };
            let name = s.me().name;
            let mut t = Thread::new(id, tcb as usize, name);
            t.rsp = rsp;
            t.stack = Some(Stack { bottom, size });
            t.start = Some((start, arg));
            s.add(t)
        })
    } else {
        None
    };
    let Some(slot) = added else {
        // SAFETY: both were allocated above and nothing refers to them.
        unsafe {
            dealloc(bottom as *mut u8, layout);
            super::free_area(tcb);
        }
        return Err(::libc::EAGAIN);
    };
    with(|s| s.run_first(slot));
    Ok(tcb as usize)
}

/// Where each new thread starts, on its own stack, from
/// `libos_std_thread_start`.
extern "C" fn thread_entry() -> ! {
    reap();
    let (start, arg) = with(|s| s.me().start.take()).expect("a new thread has a start routine");
    let retval = start(arg);
    exit(retval)
}

/// Ends the running thread: its TLS destructors (`__cxa_thread_atexit_impl`
/// first, then the keys', as glibc orders them), then it becomes a zombie
/// for its joiner, or is freed if detached. The last thread to exit ends
/// the guest with status 0.
pub fn exit(retval: *mut c_void) -> ! {
    super::run_tls_destructors();
    super::run_key_destructors();
    let detached = with(|s| {
        check_stack(s.me(), CANARY_BYTES);
        s.exit(retval);
        s.me().detached.then_some(s.current())
    });
    if let Some(slot) = detached {
        ZOMBIE.with(|z| *z = Some(slot));
    }
    schedule();
    unreachable!("an exited thread ran again");
}

/// Reports a deadlock, naming each thread and what it waits for, and ends
/// the guest with status 255 (a hang would never end: nothing can wake
/// any thread).
fn deadlock() -> ! {
    let mut msg = alloc::string::String::from(
        "libos-std: deadlock: every thread waits forever and nothing can wake any:",
    );
    with(|s| {
        for (_, t) in s.threads() {
            if let State::Blocked(why, _) = t.state {
                msg.push_str(&alloc::format!(
                    " thread {} '{}' {};",
                    t.id,
                    alloc::string::String::from_utf8_lossy(t.name()),
                    why.describe()
                ));
            }
        }
    });
    msg.pop();
    msg.push('\n');
    libos::console::write_all(msg.as_bytes());
    libos::process::exit(255)
}
