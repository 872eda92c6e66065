//! std's threads in a std guest (libos-std's cooperative scheduler): spawn,
//! join, scope, names, `thread_local!` destructors, the synchronisation
//! primitives, sleeping, panics, deadlocks, exits, stack overflow and the
//! thread limit, each area a run of tests/std's `std-threads` guest whose
//! output is asserted exactly; and the filter, the same as std-hello's.

mod support;

use support::{Outcome, run, std_guest};

fn threads(area: &str) -> Outcome {
    run(&[std_guest("std-threads").as_str(), area])
}

#[test]
fn threads_spawn_join_scope_and_have_names() {
    let out = threads("spawn");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "available_parallelism 1\n\
         main is Some(\"main\"), os name std-threads\n\
         worker: Some(\"worker-with-a-long-name\"), os name worker-with-a-l\n\
         joined 42\n\
         unnamed thread's name None\n\
         ids distinct true\n\
         scope a! b! c!\n\
         sum 20280\n\
         detached ran\n\
         yield order t0 m0 t1 m1 t2 m2\n\
         errno per thread: 9 (EBADF) there, 29 (ESPIPE) here\n"
    );
}

#[test]
fn thread_locals_are_per_thread_and_destroyed_at_each_threads_exit() {
    let out = threads("tls");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "drop noisy on Some(\"tls1\") after 1 uses\n\
         key destructor got 10 on Some(\"tls1\")\n\
         tls1: count 1, list 1\n\
         drop noisy on Some(\"tls2\") after 2 uses\n\
         key destructor got 20 on Some(\"tls2\")\n\
         tls2: count 2, list 2\n\
         drop noisy on Some(\"tls3\") after 3 uses\n\
         key destructor got 30 on Some(\"tls3\")\n\
         tls3: count 3, list 3\n\
         main: count 100\n"
    );
}

#[test]
fn mutex_rwlock_condvar_barrier_channels_once_and_park_work_across_threads() {
    let out = threads("sync");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "mutex 800\n\
         try_lock while held true\n\
         rwlock readers 0 0 while a writer waits\n\
         rwlock [\"written\"]\n\
         condvar timed out true after >= 30 ms true\n\
         condvar notified true timed out false\n\
         barrier leaders 3\n\
         mpsc 1000 messages, sum 1624500\n\
         sync_channel 15\n\
         recv_timeout Err(Timeout)\n\
         once ran 1 time(s), oncelock Some(8) [8, 8, 8, 8]\n\
         park unparked\n\
         park_timeout >= 20 ms true\n\
         park with a token returns at once true\n"
    );
}

#[test]
fn sleeping_threads_wake_in_deadline_order_overlap_and_are_not_preempted() {
    let out = threads("sleep");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "at 25 ms: [10, 20]\n\
         order [10, 20, 200, 250, 300], none early true\n\
         overlapped true\n\
         sleep to a deadline true\n\
         a busy thread delays a sleeper true\n"
    );
}

#[test]
fn a_panicking_thread_joins_as_err_and_poisons_its_locks() {
    let out = threads("panic");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "join: err true payload Some(\"thread panicked on purpose\")\n\
         poisoned true\n\
         scoped join err Some(true)\n"
    );
}

#[test]
fn a_deadlock_is_reported_and_ends_the_guest_with_255() {
    let out = threads("deadlock");
    assert_eq!(out.code(), Some(255), "{out:#?}");
    assert_eq!(
        out.stdout,
        "waiting for a message nobody sends\n\
         libos-std: deadlock: every thread waits forever and nothing can wake any: \
         thread 1 'std-threads' waits on a futex (a lock, condition variable, channel or park); \
         thread 2 'stuck' waits on a futex (a lock, condition variable, channel or park)\n"
    );
}

#[test]
fn process_exit_from_a_thread_ends_the_guest_with_its_status() {
    let out = threads("exit");
    assert_eq!(out.code(), Some(7), "{out:#?}");
    assert_eq!(out.stdout, "thread exits the process\n");
}

#[test]
fn main_returning_ends_the_guest_while_threads_remain() {
    let out = threads("main-returns");
    out.assert_ok();
    assert_eq!(out.stdout, "main returns while two threads remain\n");
}

#[test]
fn the_guest_ends_with_0_when_its_last_thread_exits_after_main_called_pthread_exit() {
    let out = threads("main-exits");
    out.assert_ok();
    assert_eq!(out.stdout, "main calls pthread_exit\nthe last thread exits\n");
}

#[test]
fn a_thread_stack_overflow_is_caught_by_its_canary_zone() {
    let out = threads("overflow");
    assert_eq!(out.code(), Some(255), "{out:#?}");
    assert_eq!(
        out.stdout,
        "stack of 60 KiB\n\
         libos-std: thread 'deep' (thread 2) overflowed its stack of 64 KiB\n"
    );
}

#[test]
fn thread_count_is_bounded_by_guest_memory_and_failing_spawns_are_errors() {
    // 64 MiB of guest memory hold a few dozen of std's 2 MiB stacks: the
    // next spawn fails cleanly.
    let out = threads("many");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "spawn failed: Resource temporarily unavailable (os error 11)\n\
         joined all, more than 20: true\n"
    );
    // Smaller stacks (std's RUST_MIN_STACK) make room for hundreds.
    let g = std_guest("std-threads");
    let out = run(&["--env", "RUST_MIN_STACK=65536", "--env", "THREADS=300", &g, "many"]);
    out.assert_ok();
    assert_eq!(out.stdout, "spawned 300\njoined all, more than 20: true\n");
}

#[test]
fn a_burst_of_spawn_blocking_reuses_tokios_pool_thread_within_the_default_memory() {
    // 1,000 `spawn_blocking` calls queued at once by tokio's one worker
    // (what tokio::fs does per call): a notified or new pool thread runs
    // before the worker queues the next, so one pool thread serves them
    // all, as on Linux. It used to be a thread (and a 2 MiB stack) per
    // call until the default 64 MiB ran out (28 pool threads; 507 with
    // `--mem 1024`).
    let out = run(&[&std_guest("std-blocking-burst")]);
    out.assert_ok();
    let value = |name: &str| -> u64 {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} line: {out:#?}"))
    };
    assert!(out.stdout.starts_with("burst 1000: sum right\nworkers 1\n"), "{out:#?}");
    assert!(value("threads_started") <= 3, "the pool grew: {out:#?}");
    assert!(value("threads_peak") <= 3, "{out:#?}");
    assert!(value("heap_peak_kib") < 16 << 10, "{out:#?}");
}

#[test]
fn threads_need_no_system_call_beyond_std_hellos() {
    let policy = |guest: &str| {
        let out = run(&["--print-seccomp", &std_guest(guest)]);
        out.assert_ok();
        out.stdout
    };
    let threads = policy("std-threads");
    assert!(threads.contains("distinct system calls"), "{threads}");
    assert_eq!(threads, policy("std-hello"));
}

#[test]
fn a_backtrace_of_a_panicking_thread_stops_at_its_first_frame() {
    // The unwinder walks a green thread's stack down to
    // libos_std_thread_start, whose CFI ends the stack.
    let g = std_guest("std-threads");
    let out = run(&["--env", "RUST_BACKTRACE=full", &g, "backtrace"]);
    out.assert_ok();
    assert!(out.stdout.contains("thread 'traced' (2) panicked at"), "{out:#?}");
    assert!(out.stdout.contains("traced panic\nstack backtrace:\n"), "{out:#?}");
    assert!(out.stdout.ends_with("survived, join err true\n"), "{out:#?}");
}

#[test]
fn poll_waits_let_other_threads_run_and_pause_without_a_device_is_a_deadlock() {
    let out = threads("poll");
    assert_eq!(out.code(), Some(255), "{out:#?}");
    assert_eq!(
        out.stdout,
        "poll (0, true), main ran meanwhile true\n\
         libos-std: deadlock: every thread waits forever and nothing can wake any: \
         thread 1 'std-threads' joins a thread; \
         thread 3 'pauser' waits for a descriptor or a signal (poll, epoll, a pipe, pause)\n"
    );
}
