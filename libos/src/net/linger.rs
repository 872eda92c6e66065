//! What the guest's connections do when it exits: they finish, as Linux
//! finishes a process's sockets after it is gone.
//!
//! On Linux, the end of a process closes its descriptors, and a closed TCP
//! socket that still holds data becomes an orphan the kernel keeps sending
//! from, with its FIN after the data. In nabla the guest is the process:
//! what its sockets hold dies with it unless it is sent before the last
//! hypercall. So [`finish`], which [`crate::process::exit`] calls:
//!
//! * closes every TCP connection (a FIN after what is queued), resets the
//!   connections no one accepted yet and stops listening (a new connection
//!   request is refused), as the end of a process does on Linux;
//! * runs network turns, and nothing else (no task, no thread: the
//!   program has ended), until every connection's data is acknowledged and
//!   its FIN too (`FIN-WAIT-2`, `TIME-WAIT` or closed), and every UDP
//!   socket's queue has left;
//! * bounded: once no connection made progress (bytes acknowledged, a
//!   connection finished) for [`STALL`], or [`BOUND`] after it began, or
//!   when `SIGTERM` or `SIGINT` arrives meanwhile, it resets what is left
//!   (RST) and returns, so that a peer that never reads, or announces a
//!   zero window, or reads one byte now and then, cannot keep an exiting
//!   guest alive; it holds no memory it did not hold already.
//!
//! The loopback's connections are left alone: both ends are the guest's.

use core::time::Duration;

use smoltcp::iface::SocketSet;
use smoltcp::socket::{Socket, tcp as stcp};

use super::{Iface, STACK};
use crate::signal::Signal;
use crate::time::Instant;

/// How long the connections of an exiting guest may go without progress
/// (no byte acknowledged, no connection finished) before they are reset:
/// room for a retransmission after smoltcp's first timeout (1 s) to be
/// answered; a path that loses the next one too (2 s later) is given up
/// on.
pub const STALL: Duration = Duration::from_secs(3);

/// The longest an exiting guest sends what its connections hold, however
/// slowly they progress (Linux keeps an orphan for minutes; a guest that
/// has exited should not hold its host resources that long).
pub const BOUND: Duration = Duration::from_secs(10);

/// How [`finish`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every connection sent what it held and its FIN (or there was none).
    Done,
    /// The network was in use (an exit from inside a network turn, which
    /// a panic can be): nothing was sent.
    Busy,
    /// What was left was reset: `connections` still held `unsent` bytes
    /// (not yet acknowledged) when the linger was cut, for `why`.
    Reset { connections: usize, unsent: usize, why: Cut },
}

/// Why [`finish`] reset what was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// No progress for [`STALL`].
    Stalled,
    /// [`BOUND`] passed.
    Bound,
    /// The signal arrived during the linger.
    Signal(Signal),
}

/// Closes every connection and sends what they hold, within the bounds
/// (see the module's documentation).
pub fn finish() -> Finish {
    let start = Instant::now();
    {
        let Some(mut stack) = STACK.try_lock() else { return Finish::Busy };
        for i in stack.ifaces.iter_mut().filter(|i| !i.is_loopback()) {
            close_all(i);
        }
    }
    // Nothing to send: no turn at all (a turn would also start what the
    // guest never used, such as a DHCP request).
    let mut last = left();
    if last.connections == 0 {
        return Finish::Done;
    }
    crate::signal::begin_exit();
    let mut last_progress = start;
    loop {
        let now = Instant::now();
        let changed = super::poll(now);
        let left = left();
        if left.connections == 0 {
            return Finish::Done;
        }
        if left.progressed_since(&last) {
            last_progress = now;
        }
        last = left;
        let why = if let Some(s) = crate::signal::seen_while_exiting() {
            Some(Cut::Signal(s))
        } else if now.duration_since(last_progress) >= STALL {
            Some(Cut::Stalled)
        } else if now.duration_since(start) >= BOUND {
            Some(Cut::Bound)
        } else {
            None
        };
        if let Some(why) = why {
            reset_all();
            // One turn to send the resets.
            super::poll(Instant::now());
            return Finish::Reset { connections: left.connections, unsent: left.unsent, why };
        }
        if changed {
            // What just happened may have more to send, or the tap more to
            // read: go round again before waiting (as the executor does).
            super::check_taps();
            continue;
        }
        let deadline = [Some(last_progress + STALL), Some(start + BOUND), super::poll_at(now)]
            .into_iter()
            .flatten()
            .min();
        super::wait(deadline);
    }
}

/// What the connections still hold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Left {
    /// Sockets not finished.
    connections: usize,
    /// Their bytes not yet acknowledged (TCP) or sent (UDP).
    unsent: usize,
}

impl Left {
    /// Whether this is progress since `before`: fewer bytes unsent or
    /// fewer sockets left.
    fn progressed_since(&self, before: &Left) -> bool {
        self.connections < before.connections || self.unsent < before.unsent
    }
}

/// Closes every socket of `i`: see the module's documentation.
fn close_all(i: &mut Iface) {
    // Idle connections parked out of smoltcp's set (`park`) are closed
    // like the others: back in the set first.
    i.streams.unpark_all(&mut i.sockets, &mut i.tap.parked);
    for l in core::mem::take(&mut i.listeners) {
        l.reset_all(&mut i.sockets);
    }
    for (_, s) in i.sockets.iter_mut() {
        if let Socket::Tcp(s) = s {
            s.close();
        }
    }
}

/// Whether socket `s` still has something to send before the guest may
/// end: data not acknowledged, a FIN not acknowledged, a reset not sent.
fn unfinished(s: &stcp::Socket<'_>) -> bool {
    use stcp::State::*;
    match s.state() {
        // Aborted, its RST still to go (smoltcp forgets the peer once sent).
        Closed => s.remote_endpoint().is_some(),
        Listen | TimeWait | FinWait2 => false,
        SynSent | SynReceived | Established | CloseWait | FinWait1 | Closing | LastAck => true,
    }
}

/// What the non-loopback interfaces' sockets still hold.
fn left() -> Left {
    let stack = STACK.lock();
    let mut left = Left::default();
    for i in stack.ifaces.iter().filter(|i| !i.is_loopback()) {
        add_left(&i.sockets, &mut left);
    }
    left
}

fn add_left(set: &SocketSet<'static>, left: &mut Left) {
    for (_, s) in set.iter() {
        match s {
            Socket::Tcp(s) if unfinished(s) => {
                left.connections += 1;
                left.unsent += s.send_queue();
            }
            Socket::Udp(s) if s.send_queue() > 0 => {
                left.connections += 1;
                left.unsent += s.send_queue();
            }
            _ => {}
        }
    }
}

/// Resets every connection not finished, and drops what UDP sockets hold.
fn reset_all() {
    let mut stack = STACK.lock();
    for i in stack.ifaces.iter_mut().filter(|i| !i.is_loopback()) {
        for (_, s) in i.sockets.iter_mut() {
            match s {
                Socket::Tcp(s) if unfinished(s) && s.state() != stcp::State::Closed => s.abort(),
                Socket::Udp(s) => s.close(),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use smoltcp::iface::{Config, Interface, SocketHandle};
    use smoltcp::phy::{Loopback, Medium};
    use smoltcp::time::Instant as SmolInstant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

    /// A loopback interface at 127.0.0.1 with a peer listening on port 80
    /// (1 KiB receive buffer) and a guest's connection to it (4 KiB send
    /// buffer), established.
    struct Pair {
        iface: Interface,
        dev: Loopback,
        set: SocketSet<'static>,
        peer: SocketHandle,
        guest: SocketHandle,
        ms: i64,
    }

    impl Pair {
        fn new() -> Self {
            let mut dev = Loopback::new(Medium::Ethernet);
            let config =
                Config::new(HardwareAddress::Ethernet(EthernetAddress([2, 0, 0, 0, 0, 1])));
            let mut iface = Interface::new(config, &mut dev, SmolInstant::ZERO);
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
            });
            let socket = |rx: usize, tx: usize| {
                stcp::Socket::new(
                    stcp::SocketBuffer::new(vec![0; rx]),
                    stcp::SocketBuffer::new(vec![0; tx]),
                )
            };
            let mut set = SocketSet::new(alloc::vec::Vec::new());
            let mut p = socket(1024, 1024);
            p.listen(80).unwrap();
            let peer = set.add(p);
            let mut g = socket(1024, 4096);
            g.connect(iface.context(), (IpAddress::v4(127, 0, 0, 1), 80), 40000).unwrap();
            let guest = set.add(g);
            let mut pair = Pair { iface, dev, set, peer, guest, ms: 0 };
            pair.run();
            assert_eq!(pair.guest().state(), stcp::State::Established);
            pair
        }

        fn run(&mut self) {
            for _ in 0..50 {
                self.ms += 1;
                self.iface.poll(SmolInstant::from_millis(self.ms), &mut self.dev, &mut self.set);
            }
        }

        fn guest(&mut self) -> &mut stcp::Socket<'static> {
            self.set.get_mut::<stcp::Socket>(self.guest)
        }

        fn peer(&mut self) -> &mut stcp::Socket<'static> {
            self.set.get_mut::<stcp::Socket>(self.peer)
        }
    }

    #[test]
    fn a_closed_connection_is_unfinished_until_its_data_and_fin_are_acknowledged() {
        let mut p = Pair::new();
        assert_eq!(p.guest().send_slice(&[7; 3000]), Ok(3000));
        p.guest().close();
        p.run();
        // The peer's 1 KiB window is full and it does not read: the rest
        // waits in the guest's send buffer, unacknowledged.
        assert!(unfinished(p.guest()));
        assert!(p.guest().send_queue() >= 3000 - 1024, "{}", p.guest().send_queue());
        let mut got = 0;
        for _ in 0..20 {
            got += p.peer().recv(|d| (d.len(), d.len())).unwrap_or(0);
            p.run();
        }
        assert_eq!(got, 3000);
        assert_eq!(p.guest().state(), stcp::State::FinWait2);
        assert_eq!(p.guest().send_queue(), 0);
        assert!(!unfinished(p.guest()), "data and FIN acknowledged");
        // The peer read the FIN: a clean end of stream.
        assert_eq!(p.peer().state(), stcp::State::CloseWait);
    }

    #[test]
    fn an_aborted_connection_is_unfinished_until_its_reset_is_sent() {
        let mut p = Pair::new();
        assert_eq!(p.guest().send_slice(&[7; 3000]), Ok(3000));
        p.run();
        p.guest().abort();
        assert!(unfinished(p.guest()), "the reset is still to send");
        p.run();
        assert!(!unfinished(p.guest()));
        assert_eq!(p.peer().state(), stcp::State::Closed, "the peer got the reset");
    }

    #[test]
    fn listening_and_finished_sockets_are_not_waited_for() {
        let mut p = Pair::new();
        let mut l = stcp::Socket::new(
            stcp::SocketBuffer::new(vec![0; 64]),
            stcp::SocketBuffer::new(vec![0; 64]),
        );
        l.listen(81).unwrap();
        assert!(!unfinished(&l));
        l.close();
        assert!(!unfinished(&l), "closed, no peer: nothing to send");
        assert!(unfinished(p.guest()), "established");
    }

    #[test]
    fn progress_is_fewer_bytes_or_fewer_sockets() {
        let before = Left { connections: 2, unsent: 1000 };
        assert!(Left { connections: 2, unsent: 999 }.progressed_since(&before));
        assert!(Left { connections: 1, unsent: 1000 }.progressed_since(&before));
        assert!(!Left { connections: 2, unsent: 1000 }.progressed_since(&before));
        // A new socket with more to send is not progress.
        assert!(!Left { connections: 3, unsent: 1500 }.progressed_since(&before));
    }
}
