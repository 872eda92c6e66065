//! Readiness and in-process I/O in a std guest: pipes (std::io::pipe,
//! pipe2), eventfd, socket pairs (std's UnixStream/UnixDatagram), `poll`,
//! `ppoll` and raw `epoll`, used across green threads; each area a run of
//! tests/std's `std-poll` guest whose output is asserted exactly. No
//! network: waits end by other threads' writes and by deadlines. Then
//! tokio, unmodified, on them: std-tokio under the current-thread and the
//! multi-thread runtime.

mod support;

use support::{Outcome, run, std_guest};

fn poll_area(area: &str) -> Outcome {
    run(&[std_guest("std-poll").as_str(), area])
}

#[test]
fn pipes_stream_block_and_break() {
    let out = poll_area("pipe");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "pipe made, cloexec true\n\
         sent 1048576, received 1048576, pattern ok true\n\
         interleaved records 200, each whole true\n\
         write without reader: BrokenPipe\n\
         nonblocking empty read -1 errno 11\n"
    );
}

#[test]
fn eventfd_counts_across_threads() {
    let out = poll_area("eventfd");
    out.assert_ok();
    assert_eq!(out.stdout, "the waiter read 7\nsemaphore reads 1 1 1 errno 11\n");
}

#[test]
fn socket_pairs_echo_half_close_time_out_and_keep_datagrams() {
    let out = poll_area("socketpair");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "echoed 1090 bytes, all equal true, then \"bye\"\n\
         local addr unnamed true\n\
         nonblocking read: WouldBlock\n\
         timed read: WouldBlock after >= 30 ms true\n\
         peeked 4, then read 4: \"peek\"\n\
         after the peer closed: read 0, write BrokenPipe\n\
         datagrams \"first\" \"second\"\n"
    );
}

#[test]
fn poll_wakes_on_another_threads_write_and_times_out() {
    let out = poll_area("poll");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "poll with nothing: 0 after >= 40 ms true\n\
         poll woken by another thread: 1, revents POLLIN true\n\
         read 5, then writer gone: 1, revents POLLHUP true\n\
         ppoll: 2, stdout POLLOUT true, closed POLLNVAL true\n\
         select woken by another thread: 1, set true, time left < 5 s true\n"
    );
}

#[test]
fn epoll_edges_wakers_timeouts_and_oneshot() {
    let out = poll_area("epoll");
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "first wait: [(1, 4)]\n\
         then nothing for 30 ms: [], waited true\n\
         socket readable: read 4, then WouldBlock true\n\
         waker\n\
         waker\n\
         socket: peer closed\n\
         nothing more: []\n\
         oneshot: [(3, 1)] [] rearmed [(4, 1)]\n\
         after closing all: []\n"
    );
}

#[test]
fn epoll_errors_are_linux_s() {
    let out = poll_area("epoll-errors");
    out.assert_ok();
    let expected = [
        "bad fd",
        "bad epfd",
        "not an epoll",
        "itself",
        "mod missing",
        "add",
        "add again",
        "nest",
        "cycle",
    ]
    .map(|s| format!("{s}: true\n"))
    .concat()
        + "maxevents 0: -1 true\nepoll_create(0): -1 true\n";
    assert_eq!(out.stdout, expected);
}

#[test]
fn a_read_nothing_can_ever_satisfy_is_a_reported_deadlock() {
    let out = poll_area("deadlock");
    assert_eq!(out.code(), Some(255), "{out:#?}");
    assert_eq!(
        out.stdout,
        "reading a pipe nobody else can write\n\
         libos-std: deadlock: every thread waits forever and nothing can wake any: \
         thread 1 'std-poll' waits for a descriptor or a signal (poll, epoll, a pipe, pause)\n"
    );
}

/// What std-tokio prints under either runtime, whose task panics on
/// `thread`.
fn tokio_output(thread: &str) -> String {
    format!(
        "slept >= 20 ms: true\n\
         interval: 4 ticks in >= 30 ms: true\n\
         timeout on a pending future: elapsed true\n\
         timeout on a ready future: Ok(7)\n\
         sleepers woke in order [10, 20, 30]\n\
         mpsc: 100 messages, sum 16200\n\
         oneshot: \"from the blocking pool\"\n\
         spawn_blocking returned 3628800\n\
         notified from a std thread\n\
         watch: last value 3\n\
         duplex: 10000 bytes, in order true\n\
         unix pair: echoed 450 bytes in lines, then 1048576 bytes back, copy saw 1049026\n\
         tokio pipe: 100000 bytes; from a std pipe: \"from std\"\n\
         loopback tcp: 10 of 10 clients echoed\n\
         join set: sum 4950\n\
         async mutex: 100\n\
         panic Some(\"a task panics\") on thread Some(\"{thread}\")\n\
         a panicking task: is_panic true\n\
         SIGTERM stream registered: true\n\
         ctrl_c registered and did not fire\n\
         block_on returned 42\n\
         runtime shut down\n"
    )
}

#[test]
fn tokio_current_thread_runs_timers_channels_io_and_signals() {
    let out = run(&[std_guest("std-tokio").as_str(), "current"]);
    out.assert_ok();
    assert_eq!(out.stdout, tokio_output("main"));
}

#[test]
fn tokio_multi_thread_runs_the_same_on_green_workers() {
    let out = run(&[std_guest("std-tokio").as_str(), "multi"]);
    out.assert_ok();
    assert_eq!(out.stdout, tokio_output("tokio-rt-worker"));
}
