//! The scheduling policy of the process (`--sched`), set before anything
//! else runs: the flush threads the tender starts later inherit it, and
//! the guest cannot change it (no `sched_*` call is in any filter).
//!
//! `batch` is Linux's `SCHED_BATCH`: a task that, when it wakes, does not
//! preempt the task running on its CPU; it runs when that one sleeps or its
//! slice ends. An event-driven server whose clients share its CPU then takes
//! their requests in batches: with the default policy each frame a client
//! sends wakes the tender and preempts the client, and the guest serves one
//! request per wake-up (a `ppoll` sleep, an empty tap `read`, and for kvd a
//! log write each), while under `batch` the client finishes its round first
//! (docs/performance.md, "kvd `SET` at `-P 1`: who preempts whom"). The
//! price is latency when the CPU is contended: a woken guest waits for the
//! running task's slice, so `normal` (the kernel's default, `SCHED_OTHER`)
//! stays the default.
//!
//! # Safety
//!
//! One raw `sched_setscheduler` system call with a pointer to a live
//! `sched_param` (musl's wrapper is a stub that returns `ENOSYS`, so the
//! call is made directly).

#![allow(unsafe_code)]

/// The policy of `--sched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// The kernel's default (`SCHED_OTHER`): left as the tender was started.
    Normal,
    /// `SCHED_BATCH`: does not preempt the running task when it wakes.
    Batch,
}

/// `--sched`'s failure.
#[derive(Debug, thiserror::Error)]
#[error("--sched batch: sched_setscheduler(SCHED_BATCH): {0}")]
pub struct SchedError(std::io::Error);

/// Gives the calling thread, and every thread it creates from now on,
/// `policy`. `Normal` changes nothing: the policy the tender was started
/// with (by `chrt`, say) stays.
pub fn apply(policy: Policy) -> Result<(), SchedError> {
    match policy {
        Policy::Normal => Ok(()),
        Policy::Batch => set(libc::SCHED_BATCH),
    }
}

/// `sched_setscheduler(0, policy, {0})` for the calling thread.
fn set(policy: libc::c_int) -> Result<(), SchedError> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: param is a valid sched_param that outlives the call; the
    // call reads it and changes only this thread's scheduling attributes.
    let r = unsafe {
        libc::syscall(libc::SYS_sched_setscheduler, 0, policy, &param as *const libc::sched_param)
    };
    if r != 0 {
        return Err(SchedError(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's policy.
    fn current() -> libc::c_int {
        // SAFETY: takes no pointer; 0 is the calling thread.
        unsafe { libc::syscall(libc::SYS_sched_getscheduler, 0) as libc::c_int }
    }

    #[test]
    fn batch_applies_to_the_thread_and_those_it_creates() {
        // A thread of its own: the policy is per thread, and the test
        // harness's other threads keep theirs.
        let own = current();
        std::thread::spawn(|| {
            let before = current();
            apply(Policy::Normal).unwrap();
            assert_eq!(current(), before, "normal leaves the policy as it was");
            apply(Policy::Batch).unwrap();
            assert_eq!(current(), libc::SCHED_BATCH);
            let child = std::thread::spawn(current).join().unwrap();
            assert_eq!(child, libc::SCHED_BATCH, "a thread created after inherits it");
        })
        .join()
        .unwrap();
        assert_eq!(current(), own, "the test's own thread is untouched");
    }
}
