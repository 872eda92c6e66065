//! TCP: a listener with a backlog, and streams.
//!
//! A smoltcp TCP socket handles one connection, and a listening socket
//! becomes that connection. [`TcpListener`] therefore keeps, on every
//! interface, a backlog of sockets for its port: connections not accepted
//! yet, up to `TcpOptions::backlog`, and a socket listening for the next
//! one while there is room. [`accept`](TcpListener::accept) hands out an
//! established one. A connection request that finds the backlog full waits
//! (see [`super::tap`]) rather than being refused.
//!
//! Dropping a [`TcpStream`] closes it gracefully (FIN after the queued data);
//! the socket lingers until the connection is closed, then the stack frees
//! it. [`TcpStream::abort`] resets the connection instead.
//!
//! Memory: each socket holds its receive and send buffers, allocated when
//! the socket is made. They are allocated fallibly: a listener that cannot
//! get them makes no listening socket, and connection requests wait as they
//! do when the backlog is full, rather than the guest aborting; a connect
//! fails with [`NetError::OutOfMemory`]. `TcpOptions::max_connections`
//! bounds how many sockets one listener's connections hold at once,
//! including those still closing after their stream was dropped, so that a
//! server's socket memory has a bound that clients cannot move.

use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::AnySocket;
use smoltcp::socket::tcp::{self, RecvError, State};

use super::park::{self, ParkedKeys};
use super::{Iface, Ipv4Addr, NetError, STACK, SocketAddrV4, Stack};
use crate::time::Instant;

/// Socket options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    /// Connections a listener holds before they are accepted (half-open
    /// or established), per interface; connection requests beyond it wait
    /// (their SYNs are dropped, and the client sends them again).
    pub backlog: usize,
    /// Receive buffer per connection, bytes (the advertised window).
    pub rx_buffer: usize,
    /// Send buffer per connection, bytes.
    pub tx_buffer: usize,
    /// Disables Nagle's algorithm (`TCP_NODELAY`).
    pub nodelay: bool,
    /// Delayed-ACK timeout; `None` acknowledges every segment at once.
    pub ack_delay: Option<Duration>,
    /// Most sockets a listener's connections hold at once, per interface:
    /// those not accepted yet (the backlog), those accepted, and those
    /// still closing after their stream was dropped. At the limit, no
    /// socket listens and connection requests wait (their SYNs are dropped,
    /// as when the backlog is full) until a connection's socket is freed.
    /// Each costs `rx_buffer + tx_buffer` bytes of heap; the default
    /// (`usize::MAX`) sets no limit beyond the backlog.
    pub max_connections: usize,
    /// Smaller buffers for a listener's connections past a number of them,
    /// so that a server keeps large windows for its first connections and
    /// serves many more in the same memory (Linux shrinks its sockets'
    /// buffers under memory pressure, `tcp_mem`, to the same end). `None`:
    /// every socket gets `rx_buffer` and `tx_buffer`.
    pub lean: Option<LeanBuffers>,
}

/// The buffers of a listener's sockets made while its connections already
/// hold `after` sockets or more (counted as for
/// [`TcpOptions::max_connections`]): the bound on a listener's socket
/// memory is then `after` large sockets plus the rest at these sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeanBuffers {
    pub after: usize,
    pub rx_buffer: usize,
    pub tx_buffer: usize,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            backlog: 16,
            rx_buffer: 64 * 1024,
            tx_buffer: 64 * 1024,
            nodelay: false,
            ack_delay: Some(Duration::from_millis(10)),
            max_connections: usize::MAX,
            lean: None,
        }
    }
}

/// How long a half-open connection (SYN received, no ACK) may hold a
/// backlog slot: a SYN flood from spoofed addresses frees the backlog again
/// after this.
const SYN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a connection attempt may wait for the peer's answer (Linux's
/// default: six SYN retransmissions, about 127 s), after which it fails with
/// [`NetError::TimedOut`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(127);

/// How long a connection attempt waits for the next hop to answer ARP
/// before it fails with [`NetError::HostUnreachable`]: Linux's three
/// probes a second apart (`ucast_solicit` + `mcast_solicit`,
/// `retrans_time`).
pub const NEIGHBOUR_TIMEOUT: Duration = Duration::from_secs(3);

/// IPv4 and TCP headers without options: an interface's MSS is its MTU
/// less these.
pub(crate) const TCP_IP_HEADERS: usize = 40;

/// A socket listening on `port` (at `addr` only, if given), part of a
/// listener's backlog.
fn listening_socket(
    opts: &TcpOptions,
    addr: Option<Ipv4Addr>,
    port: u16,
) -> Result<tcp::Socket<'static>, NetError> {
    listen_on(new_socket(opts)?, addr, port)
}

/// `s` (new, or a spare made new again by [`renew`]) listening on `port`.
fn listen_on(
    mut s: tcp::Socket<'static>,
    addr: Option<Ipv4Addr>,
    port: u16,
) -> Result<tcp::Socket<'static>, NetError> {
    s.set_timeout(Some(to_smol_duration(SYN_TIMEOUT)));
    s.listen(listen_endpoint(addr, port)).map_err(|_| NetError::InvalidAddress)?;
    Ok(s)
}

fn listen_endpoint(addr: Option<Ipv4Addr>, port: u16) -> smoltcp::wire::IpListenEndpoint {
    smoltcp::wire::IpListenEndpoint { addr: addr.map(smoltcp::wire::IpAddress::Ipv4), port }
}

/// A socket with `opts`' buffers, allocated fallibly: a client cannot make
/// the guest abort by opening connections until the heap runs out.
fn new_socket(opts: &TcpOptions) -> Result<tcp::Socket<'static>, NetError> {
    let rx = tcp::SocketBuffer::new(zeroed(opts.rx_buffer)?);
    let tx = tcp::SocketBuffer::new(zeroed(opts.tx_buffer)?);
    let mut s = tcp::Socket::new(rx, tx);
    renew(&mut s, opts);
    Ok(s)
}

/// Gives `s` the settings of a socket [`new_socket`] makes with `opts`:
/// everything a stream or a listener may set on its socket. A spare
/// socket's connection state is reset by `listen` (smoltcp's `reset`).
fn renew(s: &mut tcp::Socket<'static>, opts: &TcpOptions) {
    s.set_nagle_enabled(!opts.nodelay);
    s.set_ack_delay(opts.ack_delay.map(to_smol_duration));
    s.set_timeout(None);
    s.set_keep_alive(None);
    s.set_hop_limit(None);
}

/// `len` zero bytes, or [`NetError::OutOfMemory`] if the heap has no room.
fn zeroed(len: usize) -> Result<Vec<u8>, NetError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| NetError::OutOfMemory)?;
    v.resize(len, 0);
    Ok(v)
}

fn to_smol_duration(d: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(d.as_micros() as u64)
}

fn v4(ep: smoltcp::wire::IpEndpoint) -> SocketAddrV4 {
    match SocketAddr::from((IpAddr::from(ep.addr), ep.port)) {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, ep.port),
    }
}

/// A listener's sockets on one interface: those listening, and those
/// holding a connection that is not accepted yet (half-open or
/// established), at most `opts.backlog` of the latter.
///
/// Sockets are made as connection requests come: one listens while there
/// is room, and the stack calls [`refresh`](Self::refresh) again as soon as
/// a request has taken it, before it hands smoltcp the next frame.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) port: u16,
    /// The local address it listens at; `None`: the interface's every one.
    addr: Option<Ipv4Addr>,
    opts: TcpOptions,
    sockets: Vec<SocketHandle>,
    /// The task waiting in `accept`, to wake from sockets made later too.
    waker: Option<Waker>,
    /// When a lean listening socket was last checked (see
    /// [`recheck_lean`](Self::recheck_lean)).
    lean_checked: Option<smoltcp::time::Instant>,
    /// Closed sockets of this listener's connections, kept to listen again
    /// (see [`keep_spare`](Self::keep_spare)), and when one was last kept.
    spares: Vec<tcp::Socket<'static>>,
    spares_used: Instant,
    /// How many sockets it made with new buffers.
    pub(crate) made: usize,
}

/// How many closed sockets a listener keeps to listen again, per
/// interface: a new connection then costs no allocation and no zeroing of
/// its buffers (320 KiB to 1.25 MiB for libos-std's sockets, which was
/// most of the guest's CPU per connection; docs/performance.md, "A new
/// connection per request").
pub(crate) const SPARES: usize = 8;

/// How long a listener keeps its spare sockets after it last kept one:
/// the heap gets their buffers back soon after a burst of connections.
pub(crate) const SPARE_LINGER: Duration = Duration::from_secs(1);

/// How often a lean listening socket is checked against the listener's
/// connections, to be made large again once they are few.
const LEAN_RECHECK: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(50);

impl Listener {
    pub(crate) fn new(port: u16, addr: Option<Ipv4Addr>, opts: TcpOptions) -> Self {
        Self {
            port,
            addr,
            opts,
            sockets: Vec::new(),
            waker: None,
            lean_checked: None,
            spares: Vec::new(),
            spares_used: Instant::from_duration(Duration::ZERO),
            made: 0,
        }
    }

    /// Puts the sockets whose connection ended before it was accepted back
    /// to listening, adds a listening socket if none is left, the backlog
    /// has room, the listener's connections are under `max_connections` and
    /// the heap has room for the buffers, and returns how many connection
    /// requests the listener can take now (the listening sockets).
    /// `parked`: the interface's parked connections (out of `set`, counted
    /// all the same).
    pub(crate) fn refresh(&mut self, set: &mut SocketSet<'static>, parked: &ParkedKeys) -> usize {
        let mut listening = 0;
        let mut relisten = false;
        for &h in &self.sockets {
            let s = set.get_mut::<tcp::Socket>(h);
            match s.state() {
                State::Listen => listening += 1,
                State::Closed | State::TimeWait => {
                    s.abort();
                    let _ = s.listen(listen_endpoint(self.addr, self.port));
                    listening += 1;
                    relisten = true;
                }
                _ => {}
            }
        }
        if relisten {
            // Listening again, they go behind the connections waiting to
            // be accepted: the backlog stays in the order the requests
            // came (see `take_established`).
            self.sockets.sort_by_key(|&h| set.get_mut::<tcp::Socket>(h).state() == State::Listen);
        }
        let pending = self.sockets.len() - listening;
        if listening == 0
            && pending < self.opts.backlog
            && let Some((opts, held)) = self.next_socket_options(set, parked)
            && let Ok(mut s) = self.take_spare(&opts).map_or_else(
                || {
                    // The spares count in `max_connections` too: one goes
                    // before a socket is made where they would pass it.
                    if held + self.spares.len() >= self.opts.max_connections {
                        self.spares.remove(0);
                    }
                    self.made += 1;
                    listening_socket(&opts, self.addr, self.port)
                },
                |s| listen_on(s, self.addr, self.port),
            )
        {
            if let Some(w) = &self.waker {
                s.register_recv_waker(w);
            }
            self.sockets.push(set.add(s));
            listening = 1;
        }
        listening
    }

    /// A spare socket with `opts`' buffers, made new again, if there is one.
    fn take_spare(&mut self, opts: &TcpOptions) -> Option<tcp::Socket<'static>> {
        let k = self.spares.iter().position(|s| {
            s.recv_capacity() == opts.rx_buffer && s.send_capacity() == opts.tx_buffer
        })?;
        let mut s = self.spares.swap_remove(k);
        renew(&mut s, opts);
        Some(s)
    }

    /// Keeps `s`, the closed socket of one of this listener's connections
    /// (taken out of the set), to listen again, if the listener has fewer
    /// than [`SPARES`] and could make a socket of its size; otherwise it
    /// is freed. Its buffers keep the old connection's bytes, which
    /// smoltcp never reads before the new one writes over them.
    pub(crate) fn keep_spare(&mut self, mut s: tcp::Socket<'static>, now: Instant) {
        let (rx, tx) = (s.recv_capacity(), s.send_capacity());
        let fits = (rx, tx) == (self.opts.rx_buffer, self.opts.tx_buffer)
            || self.opts.lean.is_some_and(|l| (rx, tx) == (l.rx_buffer, l.tx_buffer));
        if fits {
            if self.spares.len() == SPARES {
                // The oldest goes: sockets of a size no longer asked for
                // (a listener's first, large ones) do not hold the places.
                self.spares.remove(0);
            }
            // Closed, so that nothing of the old connection is sent if
            // anything polls it; `listen` resets the rest.
            s.abort();
            self.spares.push(s);
            self.spares_used = now;
        }
    }

    /// Frees the spare sockets if none was kept for [`SPARE_LINGER`].
    pub(crate) fn expire_spares(&mut self, now: Instant) {
        if !self.spares.is_empty() && now.duration_since(self.spares_used) >= SPARE_LINGER {
            self.spares = Vec::new();
        }
    }

    /// How many spare sockets the listener holds.
    #[cfg(test)]
    pub(crate) fn spares(&self) -> usize {
        self.spares.len()
    }

    /// The options of the next listening socket (its buffers lean past
    /// `opts.lean.after`) and how many sockets the listener's connections
    /// hold, or `None` if they hold `max_connections` already, with no
    /// socket listening (as when `refresh` would add one). The count
    /// ([`held`](Self::held)) walks the set, once per connection request
    /// that took the last listening socket, and only when a limit is set
    /// (it is 0 otherwise).
    fn next_socket_options(
        &self,
        set: &SocketSet<'static>,
        parked: &ParkedKeys,
    ) -> Option<(TcpOptions, usize)> {
        let lean_after = self.opts.lean.map_or(usize::MAX, |l| l.after);
        if self.opts.max_connections == usize::MAX && lean_after == usize::MAX {
            return Some((self.opts, 0));
        }
        let held = self.held(set, parked);
        self.options_for(held).map(|opts| (opts, held))
    }

    /// How many sockets the listener's connections hold: every socket whose
    /// connection came to this listener has its port as its local port,
    /// until it is freed, whether in `set` or parked (`parked`, out of the
    /// set while idle). A listening socket has no local endpoint yet: it is
    /// not counted. `Iface::list_connections` counts the same in its walk.
    pub(crate) fn held(&self, set: &SocketSet<'static>, parked: &ParkedKeys) -> usize {
        let active = set
            .iter()
            .filter(|(_, s)| {
                tcp::Socket::downcast(s)
                    .and_then(tcp::Socket::local_endpoint)
                    .is_some_and(|e| e.port == self.port)
            })
            .count();
        active + parked.keys().filter(|k| k.local.port() == self.port).count()
    }

    /// The options of a socket made while the listener's connections hold
    /// `held` sockets, or `None` at `max_connections`.
    fn options_for(&self, held: usize) -> Option<TcpOptions> {
        if held >= self.opts.max_connections {
            return None;
        }
        let mut opts = self.opts;
        if let Some(lean) = self.opts.lean
            && held >= lean.after
        {
            opts.rx_buffer = lean.rx_buffer;
            opts.tx_buffer = lean.tx_buffer;
        }
        Some(opts)
    }

    /// Replaces a listening socket made with lean buffers by a large one if
    /// the listener's connections now hold fewer than `lean.after` sockets:
    /// a socket's buffers are fixed when it is made, and a client that
    /// comes after a burst of connections has ended should not get the
    /// burst's lean buffers for its connection's life. The large socket is
    /// a spare of that size if the listener keeps one (the lean one it
    /// replaces is freed). At most every [`LEAN_RECHECK`] (the check walks
    /// the sockets), and before the frames of a poll are taken, so a SYN
    /// after a quiet spell finds the large socket; with `listed`, whatever
    /// the time since the last check: the stack has a connection request in
    /// hand (once per batch of frames that holds one), and a client that
    /// connects within [`LEAN_RECHECK`] of a burst's end gets the large
    /// buffers too. `listed` is then the count of [`held`](Self::held)
    /// that the stack's walk for the tap took a moment before, so that the
    /// check walks the set no second time.
    pub(crate) fn recheck_lean(
        &mut self,
        set: &mut SocketSet<'static>,
        parked: &ParkedKeys,
        now: smoltcp::time::Instant,
        listed: Option<usize>,
    ) {
        if self.opts.lean.is_none()
            || (listed.is_none() && self.lean_checked.is_some_and(|t| now < t + LEAN_RECHECK))
        {
            return;
        }
        // Lean in either buffer: libos-std's lean connections differ from
        // its large ones in the receive buffer alone.
        let lean = |set: &mut SocketSet<'static>, h: SocketHandle| {
            let s = set.get_mut::<tcp::Socket>(h);
            s.state() == State::Listen
                && (s.send_capacity() != self.opts.tx_buffer
                    || s.recv_capacity() != self.opts.rx_buffer)
        };
        let Some(k) = (0..self.sockets.len()).find(|&k| lean(set, self.sockets[k])) else {
            self.lean_checked = None;
            return;
        };
        self.lean_checked = Some(now);
        let held = listed.unwrap_or_else(|| self.held(set, parked));
        let Some(opts) = self.options_for(held) else { return };
        if (opts.rx_buffer, opts.tx_buffer) != (self.opts.rx_buffer, self.opts.tx_buffer) {
            return; // still many
        }
        let made = self.take_spare(&opts).map_or_else(
            || {
                self.made += 1;
                listening_socket(&opts, self.addr, self.port)
            },
            |s| listen_on(s, self.addr, self.port),
        );
        if let Ok(mut s) = made {
            if let Some(w) = &self.waker {
                s.register_recv_waker(w);
            }
            set.remove(self.sockets[k]);
            self.sockets[k] = set.add(s);
        }
    }

    /// Ends the listener as the end of the process ends it on Linux: its
    /// connections not accepted yet are reset, its listening sockets
    /// closed. The sockets stay in `set` until the guest ends (an aborted
    /// one has its reset to send).
    pub(crate) fn reset_all(self, set: &mut SocketSet<'static>) {
        for h in self.sockets {
            set.get_mut::<tcp::Socket>(h).abort();
        }
    }

    /// Takes an established connection out of the backlog, if there is
    /// one; otherwise registers `waker` with the sockets waiting for one.
    ///
    /// The oldest first, as Linux's accept queue: `sockets` is in the order
    /// the connection requests came (a listening socket is added at the
    /// end, and one that listens again moves there), and taking one keeps
    /// the others' order. (A `swap_remove` here put the last socket first:
    /// httpd, which evicts the connection idle longest, then took the
    /// newest connections for the oldest and evicted them first.)
    pub(crate) fn take_established(
        &mut self,
        set: &mut SocketSet<'static>,
        waker: &Waker,
    ) -> Option<(SocketHandle, SocketAddrV4)> {
        for (k, &h) in self.sockets.iter().enumerate() {
            let s = set.get_mut::<tcp::Socket>(h);
            match s.state() {
                State::Listen | State::SynReceived | State::Closed | State::TimeWait => {
                    s.register_recv_waker(waker)
                }
                _ => {
                    // Established: the SYN timeout no longer applies.
                    s.set_timeout(None);
                    let peer =
                        s.remote_endpoint().map_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), v4);
                    self.sockets.remove(k);
                    return Some((h, peer));
                }
            }
        }
        self.waker = Some(waker.clone());
        None
    }

    /// How many connections are established and waiting to be accepted.
    fn established(&self, set: &mut SocketSet<'static>) -> usize {
        self.sockets
            .iter()
            .filter(|&&h| {
                !matches!(
                    set.get_mut::<tcp::Socket>(h).state(),
                    State::Listen | State::SynReceived | State::Closed | State::TimeWait
                )
            })
            .count()
    }
}

/// Listens for TCP connections on a port, on every interface (or on the
/// one holding a given address).
#[derive(Debug)]
pub struct TcpListener {
    port: u16,
    addr: Option<Ipv4Addr>,
}

impl TcpListener {
    /// Listens on `port` on every interface, with default options.
    pub fn bind(port: u16) -> Result<Self, NetError> {
        Self::bind_with(port, TcpOptions::default())
    }

    /// Listens on `port` on every interface.
    pub fn bind_with(port: u16, opts: TcpOptions) -> Result<Self, NetError> {
        if port == 0 {
            return Err(NetError::InvalidAddress);
        }
        Self::bind_addr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port), opts)
    }

    /// Listens at `addr`: on every interface if its address is unspecified
    /// (0.0.0.0), else only on the interface that holds it
    /// ([`NetError::AddrNotAvailable`] if none does); on an ephemeral port
    /// (49152..=65535, not in use) if its port is 0. One listener per port:
    /// another on the same port is [`NetError::AddrInUse`], whatever its
    /// address.
    pub fn bind_addr(addr: SocketAddrV4, opts: TcpOptions) -> Result<Self, NetError> {
        if opts.backlog == 0 {
            return Err(NetError::InvalidAddress);
        }
        let mut stack = STACK.lock();
        let ifaces = super::ifaces_holding(&stack, *addr.ip())?;
        let port = match addr.port() {
            0 => free_port(&stack)?,
            p if port_listened(&stack, p) => return Err(NetError::AddrInUse),
            p => p,
        };
        let at = (!addr.ip().is_unspecified()).then_some(*addr.ip());
        for idx in ifaces {
            let i = &mut stack.ifaces[idx];
            let mut l = Listener::new(port, at, opts);
            l.refresh(&mut i.sockets, &i.tap.parked);
            i.listeners.push(l);
        }
        Ok(Self { port, addr: at })
    }

    /// The port.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// The address and port it listens at (0.0.0.0: every address).
    pub fn local_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr.unwrap_or(Ipv4Addr::UNSPECIFIED), self.port)
    }

    /// Waits for a connection; returns it and the peer's address.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddrV4), NetError> {
        poll_fn(|cx| self.poll_accept(cx.waker())).await
    }

    /// An established connection and the peer's address, if one is
    /// waiting; otherwise `Pending`, and `waker` is woken when one may be.
    pub fn poll_accept(&self, waker: &Waker) -> Poll<Result<(TcpStream, SocketAddrV4), NetError>> {
        let mut stack = STACK.lock();
        for (idx, iface) in stack.ifaces.iter_mut().enumerate() {
            let Some(l) = iface.listeners.iter_mut().find(|l| l.port == self.port) else {
                continue;
            };
            if let Some((handle, peer)) = l.take_established(&mut iface.sockets, waker) {
                let nagle = Nagle::new(l.opts.nodelay, iface.mtu);
                let stream = TcpStream {
                    iface: idx,
                    id: iface.streams.add(handle),
                    connect_started: None,
                    nagle,
                    unreachable: AtomicBool::new(false),
                };
                return Poll::Ready(Ok((stream, peer)));
            }
        }
        Poll::Pending
    }

    /// [`poll_accept`](Self::poll_accept) without a waker: for callers that
    /// poll the stack themselves (libos/std's `accept`).
    pub fn try_accept(&self) -> Poll<Result<(TcpStream, SocketAddrV4), NetError>> {
        self.poll_accept(Waker::noop())
    }

    /// Has `waker` woken when a connection may have become acceptable,
    /// without taking one: for a readiness watcher (libos/std's `epoll`).
    /// It is woken once; watch again after looking.
    pub fn watch(&self, waker: &Waker) {
        let mut stack = STACK.lock();
        for iface in stack.ifaces.iter_mut() {
            let Iface { listeners, sockets, .. } = iface;
            for l in listeners.iter_mut().filter(|l| l.port == self.port) {
                for &h in &l.sockets {
                    sockets.get_mut::<tcp::Socket>(h).register_recv_waker(waker);
                }
                l.waker = Some(waker.clone());
            }
        }
    }

    /// Whether a connection is waiting to be accepted (`POLLIN`).
    pub fn is_acceptable(&self) -> bool {
        self.acceptable() > 0
    }

    /// How many connections are waiting to be accepted, on every interface.
    pub fn acceptable(&self) -> usize {
        let mut stack = STACK.lock();
        stack
            .ifaces
            .iter_mut()
            .map(|i| {
                let Iface { listeners, sockets, .. } = i;
                listeners
                    .iter()
                    .filter(|l| l.port == self.port)
                    .map(|l| l.established(sockets))
                    .sum::<usize>()
            })
            .sum()
    }
}

/// Whether a listener has `port`.
pub(crate) fn port_listened(stack: &Stack, port: u16) -> bool {
    stack.ifaces.iter().any(|i| i.listeners.iter().any(|l| l.port == port))
}

/// Whether `port` is free for a new listener or connection: no listener
/// has it and no TCP socket uses it as its local port.
pub(crate) fn port_free(stack: &Stack, port: u16) -> bool {
    !port_listened(stack, port)
        && !stack.ifaces.iter().any(|i| {
            i.sockets.iter().any(|(_, s)| {
                tcp::Socket::downcast(s)
                    .and_then(tcp::Socket::local_endpoint)
                    .is_some_and(|e| e.port == port)
            }) || i.tap.parked.keys().any(|k| k.local.port() == port)
        })
}

/// An ephemeral port no listener or connection uses.
fn free_port(stack: &Stack) -> Result<u16, NetError> {
    (0..16384).map(|_| ephemeral_port()).find(|&p| port_free(stack, p)).ok_or(NetError::AddrInUse)
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let mut stack = STACK.lock();
        for i in &mut stack.ifaces {
            if let Some(pos) = i.listeners.iter().position(|l| l.port == self.port) {
                for h in i.listeners.swap_remove(pos).sockets {
                    i.sockets.remove(h);
                }
            }
        }
    }
}

/// A TCP connection.
#[derive(Debug)]
pub struct TcpStream {
    iface: usize,
    /// Its socket's name on the interface: active or parked (see
    /// [`super::park`]).
    id: park::Id,
    /// When this side started connecting (`None` for an accepted
    /// connection): a connection attempt that ends without being
    /// established before [`CONNECT_TIMEOUT`] was refused, after it timed
    /// out.
    connect_started: Option<Instant>,
    nagle: Nagle,
    /// The attempt failed because the next hop never answered ARP.
    unreachable: AtomicBool,
}

/// Nagle's algorithm as Linux applies it: Minshall's variant, where a
/// segment smaller than the MSS waits only while an earlier small one is
/// unacknowledged.
///
/// smoltcp's own rule is the original one: no small segment while any
/// data is in flight. The tail of every large write then waited for the
/// acknowledgement of the full segments before it, and when the last
/// thing in flight was a lone segment, a Linux peer delays that by up to
/// 40 ms (seen as 44 ms per 1 MiB HTTP response). So the stream decides
/// at the end of each write, when the write's tail is queued, whether
/// smoltcp's Nagle holds it: only if the tail of an earlier write that
/// ended in a partial segment is still unacknowledged. A run of small
/// writes is still coalesced while the first is in flight; the tail of a
/// large one leaves at once. Linux tracks small *segments* (`snd_sml`);
/// the stream tracks the writes whose end made one, which is the same
/// thing for a writer that is not window-limited.
#[derive(Debug)]
struct Nagle {
    /// `TCP_NODELAY`: smoltcp's Nagle is off and stays so.
    off: AtomicBool,
    /// Bytes queued on the connection so far.
    queued: AtomicU64,
    /// Where (in `queued`'s count) the last write that ended in a partial
    /// segment ended; 0 for none.
    small_end: AtomicU64,
    /// The interface's MSS: a write whose length is not a multiple of it
    /// ends in a partial segment.
    mss: usize,
}

impl Nagle {
    fn new(nodelay: bool, mtu: u32) -> Self {
        Self {
            off: AtomicBool::new(nodelay),
            queued: AtomicU64::new(0),
            small_end: AtomicU64::new(0),
            mss: (mtu as usize).saturating_sub(TCP_IP_HEADERS).max(1),
        }
    }

    /// Before the last part of a write (`len` bytes) is queued on `s`:
    /// whether smoltcp may hold its partial segment (see [`Nagle`]).
    fn end_of_write(&self, s: &mut tcp::Socket<'_>) {
        if self.off.load(Ordering::Relaxed) {
            return;
        }
        let acked = self.queued.load(Ordering::Relaxed).saturating_sub(s.send_queue() as u64);
        s.set_nagle_enabled(acked < self.small_end.load(Ordering::Relaxed));
    }

    /// After `n` bytes were queued; `end`: they end the write.
    fn queued(&self, n: usize, end: bool) {
        let total = self.queued.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if end && !n.is_multiple_of(self.mss) {
            self.small_end.store(total, Ordering::Relaxed);
        }
    }
}

/// Next ephemeral port (49152..=65535), starting somewhere per boot.
static EPHEMERAL: AtomicU16 = AtomicU16::new(0);

fn ephemeral_port() -> u16 {
    if EPHEMERAL.load(Ordering::Relaxed) == 0 {
        let seed = Instant::now().as_duration().subsec_nanos() as u16;
        let _ = EPHEMERAL.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    49152 + EPHEMERAL.fetch_add(1, Ordering::Relaxed) % 16384
}

/// A connection's state, as readiness calls (`poll`) need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpStatus {
    /// Bytes received and not read yet.
    pub recv_queue: usize,
    /// Bytes written and not acknowledged by the peer yet.
    pub send_queue: usize,
    /// Room in the send buffer (0 once this side cannot send).
    pub send_room: usize,
    /// Still connecting (SYN sent or received, not established).
    pub connecting: bool,
    /// The peer has closed its side (FIN): after `recv_queue` bytes,
    /// reads return end of stream.
    pub peer_closed: bool,
    /// This side can still send (established, or the peer closed first).
    pub may_send: bool,
    /// The connection is over: closed or in TIME-WAIT, with nothing left
    /// to read.
    pub closed: bool,
    /// Why it ended without a graceful close, if it did: reset by the
    /// peer, refused, or timed out.
    pub error: Option<NetError>,
}

impl TcpStream {
    /// Runs `f` on the socket, brought back to the active set first if it
    /// was parked: for whatever may give smoltcp something to send (reads
    /// open the window; writes, closes and options change what it sends).
    fn with<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> R {
        let mut stack = STACK.lock();
        let i = &mut stack.ifaces[self.iface];
        let h = i.streams.handle(self.id, &mut i.sockets, &mut i.tap.parked);
        f(i.sockets.get_mut::<tcp::Socket>(h))
    }

    /// Runs `f` on the socket where it is, parked or not: for what cannot
    /// give smoltcp anything to send (state, addresses, wakers).
    fn peek<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> R {
        let mut stack = STACK.lock();
        let i = &mut stack.ifaces[self.iface];
        f(i.streams.peek(self.id, &mut i.sockets))
    }

    /// Has `waker` woken when the connection may have changed: data in,
    /// room freed, a new state. For a readiness watcher (libos/std's
    /// `epoll`); it is woken once, and replaces the waker of a pending
    /// read or write: watch again after looking.
    pub fn watch(&self, waker: &Waker) {
        self.peek(|s| {
            s.register_recv_waker(waker);
            s.register_send_waker(waker);
        });
    }

    /// Connects to `addr`, with default options.
    pub async fn connect(addr: SocketAddrV4) -> Result<Self, NetError> {
        Self::connect_with(addr, TcpOptions::default()).await
    }

    /// Connects to `addr`.
    pub async fn connect_with(addr: SocketAddrV4, opts: TcpOptions) -> Result<Self, NetError> {
        let stream = Self::connect_start(addr, None, opts)?;
        poll_fn(|cx| stream.poll_connect(cx.waker())).await?;
        Ok(stream)
    }

    /// Starts connecting to `addr` from `local` (its address must be the
    /// routing interface's, or unspecified; port 0 picks an ephemeral
    /// one), without waiting: the SYN leaves the next time the stack is
    /// polled. [`poll_connect`](Self::poll_connect) tells when it is done.
    pub fn connect_start(
        addr: SocketAddrV4,
        local: Option<SocketAddrV4>,
        opts: TcpOptions,
    ) -> Result<Self, NetError> {
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(NetError::InvalidAddress);
        }
        let mut stack = STACK.lock();
        if stack.ifaces.is_empty() {
            return Err(NetError::NoRoute);
        }
        let idx = super::route(&stack, *addr.ip()).ok_or(NetError::NoRoute)?;
        let local = local.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        if !local.ip().is_unspecified() && !stack.ifaces[idx].holds(*local.ip()) {
            return Err(NetError::AddrNotAvailable);
        }
        let port = match local.port() {
            0 => free_port(&stack)?,
            p => p,
        };
        let iface = &mut stack.ifaces[idx];
        let mut s = new_socket(&opts)?;
        s.set_timeout(Some(to_smol_duration(CONNECT_TIMEOUT)));
        let local = smoltcp::wire::IpListenEndpoint {
            addr: (!local.ip().is_unspecified()).then(|| (*local.ip()).into()),
            port,
        };
        s.connect(iface.iface.context(), addr, local).map_err(|e| match e {
            tcp::ConnectError::Unaddressable => NetError::NoRoute,
            tcp::ConnectError::InvalidState => NetError::InvalidAddress,
        })?;
        let handle = iface.sockets.add(s);
        let nagle = Nagle::new(opts.nodelay, iface.mtu);
        Ok(TcpStream {
            iface: idx,
            id: iface.streams.add(handle),
            connect_started: Some(Instant::now()),
            nagle,
            unreachable: AtomicBool::new(false),
        })
    }

    /// Whether the connection attempt is over: `Ready(Ok)` once
    /// established, `Ready(Err)` if refused, timed out, or the next hop
    /// never answered ARP ([`NetError::HostUnreachable`] after
    /// [`NEIGHBOUR_TIMEOUT`], as Linux); otherwise `Pending`, and `waker`
    /// is woken when it may be over.
    pub fn poll_connect(&self, waker: &Waker) -> Poll<Result<(), NetError>> {
        let mut stack = STACK.lock();
        let iface = &mut stack.ifaces[self.iface];
        let unreachable = self.next_hop_silent(iface);
        let h = iface.streams.handle(self.id, &mut iface.sockets, &mut iface.tap.parked);
        let s = iface.sockets.get_mut::<tcp::Socket>(h);
        match s.state() {
            State::SynSent if unreachable => {
                s.abort();
                self.unreachable.store(true, Ordering::Relaxed);
                Poll::Ready(Err(NetError::HostUnreachable))
            }
            State::SynSent | State::SynReceived => {
                s.register_send_waker(waker);
                Poll::Pending
            }
            State::Closed | State::TimeWait => Poll::Ready(Err(self.connect_failure())),
            _ => {
                // Established: the connection timeout no longer applies.
                s.set_timeout(None);
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Whether the next hop towards the peer (the peer on its link, else
    /// the gateway) was asked for by ARP and has not answered for
    /// [`NEIGHBOUR_TIMEOUT`] of this attempt.
    fn next_hop_silent(&self, iface: &mut Iface) -> bool {
        let Some(started) = self.connect_started else { return false };
        let s = iface.streams.peek(self.id, &mut iface.sockets);
        let Some(peer) = s.remote_endpoint().map(v4) else { return false };
        let on_link = iface.ipv4().is_some_and(|c| c.contains_addr(peer.ip()));
        let hop = if on_link { *peer.ip() } else { iface.gateway.unwrap_or(*peer.ip()) };
        let Some(since) = iface.tap.unanswered_since(hop) else { return false };
        let since = super::from_smol(since).max(started);
        Instant::now().duration_since(since) >= NEIGHBOUR_TIMEOUT
    }

    /// Why a connection attempt failed: the next hop unreachable, refused
    /// (a reset answered the SYN, or no route), or timed out.
    fn connect_failure(&self) -> NetError {
        if self.unreachable.load(Ordering::Relaxed) {
            return NetError::HostUnreachable;
        }
        match self.connect_started {
            Some(t) if Instant::now().duration_since(t) >= CONNECT_TIMEOUT => NetError::TimedOut,
            _ => NetError::ConnectionRefused,
        }
    }

    /// Reads into `buf`; `Ok(0)` at end of stream (the peer closed its side).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| self.poll_read(buf, false, Some(cx.waker()))).await
    }

    /// Reads (or with `peek`, copies without consuming) what has arrived
    /// into `buf`: `Ready(Ok(0))` at end of stream, `Pending` if nothing
    /// has arrived yet (then `waker`, if given, is woken when something
    /// may have).
    pub fn poll_read(
        &self,
        buf: &mut [u8],
        peek: bool,
        waker: Option<&Waker>,
    ) -> Poll<Result<usize, NetError>> {
        self.with(|s| {
            let r = if peek && s.can_recv() { s.peek_slice(buf) } else { s.recv_slice(buf) };
            match r {
                Ok(0) if buf.is_empty() => Poll::Ready(Ok(0)),
                Ok(0) => {
                    if let Some(w) = waker {
                        s.register_recv_waker(w);
                    }
                    Poll::Pending
                }
                Ok(n) => Poll::Ready(Ok(n)),
                Err(RecvError::Finished) => Poll::Ready(Ok(0)),
                Err(RecvError::InvalidState) => Poll::Ready(Err(self.closed_error(s))),
            }
        })
    }

    /// [`poll_read`](Self::poll_read) without a waker.
    pub fn try_read(&self, buf: &mut [u8], peek: bool) -> Poll<Result<usize, NetError>> {
        self.poll_read(buf, peek, None)
    }

    /// Reads in place, without copying: `f` gets what has arrived, as it
    /// lies in the connection's receive buffer (the part up to the
    /// buffer's wrap: the rest comes with the next call), and returns how
    /// many of those bytes it consumed (at most their number; more counts
    /// as all of them) and a value of its own. [`read`](Self::read) copies
    /// the same bytes into the caller's buffer; a reader that parses,
    /// counts or forwards them where they are saves that copy.
    ///
    /// `f` is called only with bytes to consume (never an empty slice):
    /// `Ready(Ok(Some(r)))` with its value, `Ready(Ok(None))` at end of
    /// stream, `Ready(Err)` as `read`, `Pending` if nothing has arrived yet
    /// (then `waker`, if given, is woken when something may have). Consumed
    /// bytes free room in the receive buffer, and the window reopens, as a
    /// `read` of as many would.
    pub fn poll_read_with<R>(
        &self,
        f: impl FnOnce(&[u8]) -> (usize, R),
        waker: Option<&Waker>,
    ) -> Poll<Result<Option<R>, NetError>> {
        self.with(|s| read_in_place(s, f, waker))
    }

    /// [`poll_read_with`](Self::poll_read_with) without a waker.
    pub fn try_read_with<R>(
        &self,
        f: impl FnOnce(&[u8]) -> (usize, R),
    ) -> Poll<Result<Option<R>, NetError>> {
        self.poll_read_with(f, None)
    }

    /// [`poll_read_with`](Self::poll_read_with), waiting until something
    /// has arrived or the stream ends (`Ok(None)`).
    pub async fn read_with<R>(
        &mut self,
        mut f: impl FnMut(&[u8]) -> (usize, R),
    ) -> Result<Option<R>, NetError> {
        poll_fn(|cx| self.poll_read_with(&mut f, Some(cx.waker()))).await
    }

    /// Writes some of `buf`; returns how much was queued.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| self.poll_write(buf, Some(cx.waker()))).await
    }

    /// Queues as much of `buf` as the send buffer has room for:
    /// `Pending` if it has none (then `waker`, if given, is woken when it
    /// may have). Each call is one write for Nagle's algorithm (see
    /// [`Nagle`]): the part that completes it decides whether its partial
    /// segment may wait.
    pub fn poll_write(&self, buf: &[u8], waker: Option<&Waker>) -> Poll<Result<usize, NetError>> {
        self.poll_write_vectored(&[buf], waker)
    }

    /// [`poll_write`](Self::poll_write) of the buffers one after the
    /// other, as one write: what fits is queued together, and goes out
    /// in as few segments as it fills (`writev`, `sendmsg`).
    pub fn poll_write_vectored(
        &self,
        bufs: &[&[u8]],
        waker: Option<&Waker>,
    ) -> Poll<Result<usize, NetError>> {
        let total = bufs.iter().fold(0usize, |t, b| t.saturating_add(b.len()));
        self.with(|s| {
            if !s.may_send() {
                return Poll::Ready(Err(self.closed_error(s)));
            }
            if total == 0 {
                return Poll::Ready(Ok(0));
            }
            let room = s.send_capacity() - s.send_queue();
            if room == 0 {
                if let Some(w) = waker {
                    s.register_send_waker(w);
                }
                return Poll::Pending;
            }
            let take = total.min(room);
            let end = take == total;
            if end {
                self.nagle.end_of_write(s);
            }
            let mut left = take;
            for b in bufs {
                if left == 0 {
                    break;
                }
                let part = &b[..b.len().min(left)];
                // The room was checked: all of it is queued.
                let n = s.send_slice(part).unwrap_or(0);
                left -= n;
                if n < part.len() {
                    break;
                }
            }
            let queued = take - left;
            self.nagle.queued(queued, end && left == 0);
            Poll::Ready(Ok(queued))
        })
    }

    /// [`poll_write`](Self::poll_write) without a waker.
    pub fn try_write(&self, buf: &[u8]) -> Poll<Result<usize, NetError>> {
        self.poll_write(buf, None)
    }

    /// [`poll_write_vectored`](Self::poll_write_vectored) without a waker.
    pub fn try_write_vectored(&self, bufs: &[&[u8]]) -> Poll<Result<usize, NetError>> {
        self.poll_write_vectored(bufs, None)
    }

    /// The connection's state, for readiness.
    pub fn status(&self) -> TcpStatus {
        // An empty read of an empty buffer changes nothing: a parked
        // socket stays so.
        self.peek(|s| {
            let state = s.state();
            let connecting = matches!(state, State::SynSent | State::SynReceived);
            let over = matches!(state, State::Closed | State::TimeWait);
            // The peer's FIN, told from a reset: with nothing queued, a
            // read says which (smoltcp keeps whether a FIN came to itself).
            let empty_read = if s.can_recv() { None } else { Some(s.recv_slice(&mut [])) };
            let peer_closed = match empty_read {
                Some(Err(RecvError::Finished)) => true,
                Some(_) => matches!(state, State::CloseWait | State::LastAck | State::Closing),
                None => {
                    matches!(
                        state,
                        State::CloseWait | State::LastAck | State::Closing | State::TimeWait
                    )
                }
            };
            let error = match empty_read {
                Some(Err(RecvError::InvalidState)) if over => Some(self.closed_error(s)),
                _ => None,
            };
            TcpStatus {
                recv_queue: s.recv_queue(),
                send_queue: s.send_queue(),
                send_room: if s.may_send() { s.send_capacity() - s.send_queue() } else { 0 },
                connecting,
                peer_closed,
                may_send: s.may_send(),
                closed: over && !s.can_recv(),
                error,
            }
        })
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), NetError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits until everything written has been acknowledged by the peer.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        poll_fn(|cx| {
            self.with(|s| {
                if s.send_queue() == 0 {
                    Poll::Ready(Ok(()))
                } else if !s.may_send()
                    && !matches!(s.state(), State::FinWait1 | State::Closing | State::LastAck)
                {
                    Poll::Ready(Err(self.closed_error(s)))
                } else {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
    }

    /// Closes the sending side: the peer reads end of stream once the queued
    /// data is through. Reading goes on until the peer closes too.
    pub fn shutdown(&self) {
        self.with(|s| s.close());
    }

    /// Resets the connection (RST) and drops the stream.
    pub fn abort(self) {
        self.with(|s| s.abort());
        // Drop sees the aborted socket and frees it after the RST is sent.
    }

    /// Enables or disables Nagle's algorithm (`true` disables it); when
    /// enabled, it is Linux's (see [`Nagle`]), decided at each write.
    pub fn set_nodelay(&self, nodelay: bool) {
        self.nagle.off.store(nodelay, Ordering::Relaxed);
        // Off, or on with nothing held until the next write says so.
        self.with(|s| s.set_nagle_enabled(false));
    }

    /// The size of the connection's send buffer, bytes: what a write can
    /// hand the stack at once (with [`LeanBuffers`], it differs between a
    /// listener's connections).
    pub fn send_capacity(&self) -> usize {
        self.peek(|s| s.send_capacity())
    }

    /// Sets the delayed-ACK timeout; `None` acknowledges at once.
    pub fn set_ack_delay(&self, delay: Option<Duration>) {
        self.with(|s| s.set_ack_delay(delay.map(to_smol_duration)));
    }

    /// Aborts the connection if the peer stays silent this long while data
    /// is outstanding; `None` waits forever.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.with(|s| s.set_timeout(timeout.map(to_smol_duration)));
    }

    /// Sends keep-alive probes after this much idle time.
    pub fn set_keep_alive(&self, interval: Option<Duration>) {
        self.with(|s| s.set_keep_alive(interval.map(to_smol_duration)));
    }

    /// Sets the IP time-to-live of its segments (`None`: the default, 64).
    pub fn set_hop_limit(&self, ttl: Option<u8>) {
        self.with(|s| s.set_hop_limit(ttl));
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddrV4> {
        self.peek(|s| s.remote_endpoint().map(v4))
    }

    /// The local address.
    pub fn local_addr(&self) -> Option<SocketAddrV4> {
        self.peek(|s| s.local_endpoint().map(v4))
    }

    /// The error for a socket that can no longer receive or send (see
    /// [`closed_error`]).
    fn closed_error(&self, s: &tcp::Socket<'_>) -> NetError {
        closed_error(s)
    }
}

/// [`TcpStream::poll_read_with`] on the socket `s`.
fn read_in_place<R>(
    s: &mut tcp::Socket<'_>,
    f: impl FnOnce(&[u8]) -> (usize, R),
    waker: Option<&Waker>,
) -> Poll<Result<Option<R>, NetError>> {
    if s.can_recv() {
        let r = s.recv(|data| {
            let (n, r) = f(data);
            (n.min(data.len()), r)
        });
        // Bytes to read: the receive half is open (smoltcp lets a socket
        // holding data be read in any state), so this cannot fail.
        return Poll::Ready(r.map(Some).map_err(|_| closed_error(s)));
    }
    match s.recv_slice(&mut []) {
        Ok(_) => {
            if let Some(w) = waker {
                s.register_recv_waker(w);
            }
            Poll::Pending
        }
        Err(RecvError::Finished) => Poll::Ready(Ok(None)),
        Err(RecvError::InvalidState) => Poll::Ready(Err(closed_error(s))),
    }
}

/// The error for a socket that can no longer receive or send: reset once
/// the connection is over (closed without the peer's FIN, or aborted), not
/// connected otherwise.
fn closed_error(s: &tcp::Socket<'_>) -> NetError {
    match s.state() {
        State::Closed | State::TimeWait => NetError::ConnectionReset,
        _ => NetError::NotConnected,
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let mut stack = STACK.lock();
        let now = Instant::now();
        let iface = &mut stack.ifaces[self.iface];
        let handle = iface.streams.remove(self.id, &mut iface.sockets, &mut iface.tap.parked);
        let s = iface.sockets.get_mut::<tcp::Socket>(handle);
        // An aborted socket keeps its peer until the stack has sent the
        // reset: freed now, the peer would never hear of it.
        if s.state() == State::Closed && s.remote_endpoint().is_none() {
            super::free_socket(&mut iface.sockets, &mut iface.listeners, handle, now);
        } else {
            // Closing gracefully, or its reset still to send: the stack
            // frees it once closed (see `sweep_orphans`).
            s.close();
            iface.orphans.push((handle, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::iface::{Config, Interface};
    use smoltcp::phy::{Loopback, Medium};
    use smoltcp::time::Instant as SmolInstant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

    const PORT: u16 = 80;

    /// An interface on a loopback device at 127.0.0.1, and its sockets.
    fn loopback() -> (Interface, Loopback, SocketSet<'static>) {
        let mut dev = Loopback::new(Medium::Ethernet);
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress([0x02, 0, 0, 0, 0, 1])));
        let mut iface = Interface::new(config, &mut dev, SmolInstant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
        });
        (iface, dev, SocketSet::new(Vec::new()))
    }

    fn listener(max_connections: usize) -> Listener {
        let opts = TcpOptions {
            backlog: 8,
            rx_buffer: 1024,
            tx_buffer: 1024,
            max_connections,
            ..TcpOptions::default()
        };
        Listener {
            port: PORT,
            addr: None,
            opts,
            sockets: Vec::new(),
            waker: None,
            lean_checked: None,
            spares: Vec::new(),
            spares_used: Instant::from_duration(Duration::ZERO),
            made: 0,
        }
    }

    /// Runs the interface for a while, refreshing the listener's backlog
    /// before every poll as the stack does. (Without the tap's gate, which
    /// holds a SYN back while no socket listens, a second SYN in the same
    /// poll is refused: the tests connect one client at a time.)
    fn run(
        iface: &mut Interface,
        dev: &mut Loopback,
        set: &mut SocketSet<'static>,
        l: &mut Listener,
    ) {
        for ms in 0..50 {
            l.refresh(set, &ParkedKeys::new());
            iface.poll(SmolInstant::from_millis(ms), dev, set);
        }
    }

    /// A client socket connecting from `port`.
    fn client(iface: &mut Interface, set: &mut SocketSet<'static>, port: u16) -> SocketHandle {
        let opts = TcpOptions { rx_buffer: 1024, tx_buffer: 1024, ..TcpOptions::default() };
        let mut s = new_socket(&opts).unwrap();
        s.connect(iface.context(), (IpAddress::v4(127, 0, 0, 1), PORT), port).unwrap();
        set.add(s)
    }

    fn established(set: &mut SocketSet<'static>, h: SocketHandle) -> bool {
        set.get_mut::<tcp::Socket>(h).state() == State::Established
    }

    #[test]
    fn max_connections_bounds_the_sockets_a_listeners_connections_hold() {
        let (mut iface, mut dev, mut set) = loopback();
        let mut l = listener(2);
        let a = client(&mut iface, &mut set, 50001);
        run(&mut iface, &mut dev, &mut set, &mut l);
        let b = client(&mut iface, &mut set, 50002);
        run(&mut iface, &mut dev, &mut set, &mut l);
        assert!(established(&mut set, a) && established(&mut set, b));
        // Both connections hold the listener's two sockets: none listens,
        // and a third connection gets no socket.
        assert_eq!(l.refresh(&mut set, &ParkedKeys::new()), 0);
        let waker = Waker::noop();
        let (first, _) = l.take_established(&mut set, waker).expect("accepted");
        assert_eq!(
            l.refresh(&mut set, &ParkedKeys::new()),
            0,
            "an accepted connection still counts"
        );
        let c = client(&mut iface, &mut set, 50003);
        run(&mut iface, &mut dev, &mut set, &mut l);
        assert!(!established(&mut set, c));
        // Once the accepted connection's socket is freed, one listens again.
        set.get_mut::<tcp::Socket>(first).abort();
        set.remove(first);
        set.remove(c);
        assert_eq!(l.refresh(&mut set, &ParkedKeys::new()), 1);
        let d = client(&mut iface, &mut set, 50004);
        run(&mut iface, &mut dev, &mut set, &mut l);
        assert!(established(&mut set, d));
    }

    #[test]
    fn connections_are_accepted_in_the_order_they_came() {
        // Five connections wait in the backlog, the first one of them
        // closed before it was accepted: the other four are accepted
        // oldest first (the order httpd's eviction of the connection idle
        // longest relies on), and so is a fifth that took the socket the
        // closed one left.
        let (mut iface, mut dev, mut set) = loopback();
        let mut l = listener(usize::MAX);
        let ports = 50040..50045;
        let clients: Vec<SocketHandle> = ports
            .clone()
            .map(|port| {
                let c = client(&mut iface, &mut set, port);
                run(&mut iface, &mut dev, &mut set, &mut l);
                c
            })
            .collect();
        set.get_mut::<tcp::Socket>(clients[0]).abort();
        run(&mut iface, &mut dev, &mut set, &mut l);
        client(&mut iface, &mut set, 50045);
        run(&mut iface, &mut dev, &mut set, &mut l);
        let waker = Waker::noop();
        let mut order = Vec::new();
        while let Some((_, peer)) = l.take_established(&mut set, waker) {
            order.push(peer.port());
        }
        assert_eq!(order, [50041, 50042, 50043, 50044, 50045]);
    }

    /// The (receive, send) buffer capacities of `l`'s listening sockets,
    /// sorted.
    fn capacities(set: &mut SocketSet<'static>, l: &Listener) -> Vec<(usize, usize)> {
        let mut c: Vec<(usize, usize)> = l
            .sockets
            .iter()
            .map(|&h| {
                let s = set.get_mut::<tcp::Socket>(h);
                (s.recv_capacity(), s.send_capacity())
            })
            .collect();
        c.sort();
        c
    }

    #[test]
    fn past_lean_after_new_sockets_get_the_lean_buffers() {
        let (mut iface, mut dev, mut set) = loopback();
        let mut l = listener(8);
        l.opts.lean = Some(LeanBuffers { after: 2, rx_buffer: 512, tx_buffer: 256 });
        // Made while the listener holds no socket: large.
        assert_eq!(l.refresh(&mut set, &ParkedKeys::new()), 1);
        assert_eq!(capacities(&mut set, &l), [(1024, 1024)]);
        for port in 50020..50023 {
            client(&mut iface, &mut set, port);
            run(&mut iface, &mut dev, &mut set, &mut l);
        }
        // Three connections and one socket listening: the first two sockets
        // were made with fewer than two held, the next two with two or more.
        assert_eq!(capacities(&mut set, &l), [(512, 256), (512, 256), (1024, 1024), (1024, 1024)]);
        // The connections end and their sockets are freed: the lean socket
        // still listening is made large again at the next check, not
        // before `LEAN_RECHECK` has passed since the last.
        let waker = Waker::noop();
        while let Some((h, _)) = l.take_established(&mut set, waker) {
            set.get_mut::<tcp::Socket>(h).abort();
            set.remove(h);
        }
        let t0 = SmolInstant::from_secs(10);
        l.recheck_lean(&mut set, &ParkedKeys::new(), t0, None);
        assert_eq!(capacities(&mut set, &l), [(1024, 1024)]);
        // Many again: a lean socket listens, and a check finds them many.
        for port in 50023..50026 {
            client(&mut iface, &mut set, port);
            run(&mut iface, &mut dev, &mut set, &mut l);
        }
        let t1 = t0 + LEAN_RECHECK;
        l.recheck_lean(&mut set, &ParkedKeys::new(), t1, None);
        assert!(capacities(&mut set, &l).contains(&(512, 256)), "{:?}", capacities(&mut set, &l));
        while let Some((h, _)) = l.take_established(&mut set, waker) {
            set.get_mut::<tcp::Socket>(h).abort();
            set.remove(h);
        }
        l.recheck_lean(
            &mut set,
            &ParkedKeys::new(),
            t1 + smoltcp::time::Duration::from_millis(10),
            None,
        );
        assert_eq!(capacities(&mut set, &l), [(512, 256)], "checked 10 ms ago");
        l.recheck_lean(&mut set, &ParkedKeys::new(), t1 + LEAN_RECHECK, None);
        assert_eq!(capacities(&mut set, &l), [(1024, 1024)]);
        // Many again, then none: a connection request in hand is checked
        // for at once, however recent the last check.
        for port in 50026..50029 {
            client(&mut iface, &mut set, port);
            run(&mut iface, &mut dev, &mut set, &mut l);
        }
        let t2 = t1 + LEAN_RECHECK + LEAN_RECHECK;
        l.recheck_lean(&mut set, &ParkedKeys::new(), t2, None);
        assert!(capacities(&mut set, &l).contains(&(512, 256)), "{:?}", capacities(&mut set, &l));
        while let Some((h, _)) = l.take_established(&mut set, waker) {
            set.get_mut::<tcp::Socket>(h).abort();
            set.remove(h);
        }
        let soon = t2 + smoltcp::time::Duration::from_millis(1);
        l.recheck_lean(&mut set, &ParkedKeys::new(), soon, None);
        assert_eq!(capacities(&mut set, &l), [(512, 256)], "checked 1 ms ago");
        let held = l.held(&set, &ParkedKeys::new());
        l.recheck_lean(&mut set, &ParkedKeys::new(), soon, Some(held));
        assert_eq!(capacities(&mut set, &l), [(1024, 1024)], "a SYN in hand");
    }

    #[test]
    fn a_lean_listening_socket_is_replaced_by_a_large_spare() {
        // A burst past `lean.after`, then its connections end and the
        // listener keeps their sockets: the lean socket still listening is
        // replaced by one of the large spares, not by new buffers.
        let (mut iface, mut dev, mut set) = loopback();
        let mut l = listener(8);
        l.opts.lean = Some(LeanBuffers { after: 2, rx_buffer: 512, tx_buffer: 256 });
        for port in 50050..50053 {
            client(&mut iface, &mut set, port);
            run(&mut iface, &mut dev, &mut set, &mut l);
        }
        let now = Instant::from_duration(Duration::from_secs(10));
        while let Some((h, _)) = l.take_established(&mut set, Waker::noop()) {
            set.get_mut::<tcp::Socket>(h).abort();
            if let smoltcp::socket::Socket::Tcp(s) = set.remove(h) {
                l.keep_spare(s, now);
            }
        }
        assert_eq!((l.made, l.spares()), (4, 3), "two large and two lean made, three kept");
        let held = l.held(&set, &ParkedKeys::new());
        assert_eq!(held, 0);
        l.recheck_lean(&mut set, &ParkedKeys::new(), SmolInstant::from_secs(10), Some(held));
        assert_eq!(capacities(&mut set, &l), [(1024, 1024)]);
        assert_eq!((l.made, l.spares()), (4, 2), "a large spare listens; nothing new made");
        // It takes a connection as a new socket would.
        let c = client(&mut iface, &mut set, 50053);
        run(&mut iface, &mut dev, &mut set, &mut l);
        assert!(established(&mut set, c));
    }

    #[test]
    fn a_socket_lean_in_its_receive_buffer_alone_is_made_large_again() {
        // libos-std's listeners: the lean connections keep the send buffer
        // and get a smaller receive buffer only.
        let (mut iface, mut dev, mut set) = loopback();
        let mut l = listener(8);
        l.opts.lean = Some(LeanBuffers { after: 2, rx_buffer: 512, tx_buffer: 1024 });
        let listening = |set: &mut SocketSet<'static>, l: &Listener| {
            let mut c = Vec::new();
            for &h in &l.sockets {
                let s = set.get_mut::<tcp::Socket>(h);
                if s.state() == State::Listen {
                    c.push((s.recv_capacity(), s.send_capacity()));
                }
            }
            c
        };
        assert_eq!(l.refresh(&mut set, &ParkedKeys::new()), 1);
        for port in 50030..50033 {
            client(&mut iface, &mut set, port);
            run(&mut iface, &mut dev, &mut set, &mut l);
        }
        assert_eq!(listening(&mut set, &l), [(512, 1024)]);
        let waker = Waker::noop();
        while let Some((h, _)) = l.take_established(&mut set, waker) {
            set.get_mut::<tcp::Socket>(h).abort();
            set.remove(h);
        }
        // The burst has ended: the next connection request finds a large
        // socket, at the periodic check or with the request in hand.
        l.recheck_lean(&mut set, &ParkedKeys::new(), SmolInstant::from_secs(10), None);
        assert_eq!(listening(&mut set, &l), [(1024, 1024)]);
    }

    #[test]
    fn without_a_limit_the_backlog_alone_bounds_the_sockets() {
        let (mut iface, mut dev, mut set) = loopback();
        let mut l = listener(usize::MAX);
        let mut clients = Vec::new();
        for port in 50010..50013 {
            clients.push(client(&mut iface, &mut set, port));
            run(&mut iface, &mut dev, &mut set, &mut l);
        }
        assert!(clients.iter().all(|&h| established(&mut set, h)));
        assert_eq!(l.refresh(&mut set, &ParkedKeys::new()), 1);
    }

    #[test]
    fn nagle_holds_a_partial_segment_only_while_an_earlier_one_is_unacknowledged() {
        let (mut iface, mut dev, mut set) = loopback();
        let mut l = listener(usize::MAX);
        let c = client(&mut iface, &mut set, 50020);
        run(&mut iface, &mut dev, &mut set, &mut l);
        assert!(established(&mut set, c));
        // An MSS of 100 bytes, for the test's 1 KiB buffers.
        let nagle = Nagle::new(false, 140);
        let write = |set: &mut SocketSet<'static>, data: &[u8], end: bool| {
            let s = set.get_mut::<tcp::Socket>(c);
            if end {
                nagle.end_of_write(s);
            }
            assert_eq!(s.send_slice(data), Ok(data.len()));
            nagle.queued(data.len(), end);
            s.nagle_enabled()
        };
        // Nothing small in flight: a small write goes at once.
        assert!(!write(&mut set, b"hello", true));
        // Its partial segment unacknowledged: the next small one waits,
        // as Linux's Nagle (and the first was not held).
        assert!(write(&mut set, b"world", true));
        run(&mut iface, &mut dev, &mut set, &mut l);
        assert_eq!(set.get_mut::<tcp::Socket>(c).send_queue(), 0);
        // Both acknowledged: the tail of a large write goes at once, where
        // smoltcp's own rule would hold it behind its full segments.
        // (Its first part leaves the decision to its end.)
        write(&mut set, &[7; 300], false);
        assert!(!write(&mut set, &[7; 50], true));
        // That tail now unacknowledged: a small write after it waits.
        assert!(write(&mut set, b"!", true));
        // Whole segments leave no partial one behind.
        run(&mut iface, &mut dev, &mut set, &mut l);
        assert!(!write(&mut set, &[7; 200], true));
        assert!(!write(&mut set, b"?", true));
        // TCP_NODELAY: never held.
        nagle.off.store(true, Ordering::Relaxed);
        set.get_mut::<tcp::Socket>(c).set_nagle_enabled(false);
        assert!(!write(&mut set, b"?", true));
    }

    #[test]
    fn reads_in_place_consume_what_they_say_up_to_the_wrap_then_end_of_stream() {
        let (mut iface, mut dev, mut set) = loopback();
        let mut l = listener(usize::MAX);
        let c = client(&mut iface, &mut set, 50030);
        run(&mut iface, &mut dev, &mut set, &mut l);
        let (srv, _) = l.take_established(&mut set, Waker::noop()).expect("accepted");
        let data: Vec<u8> = (0..1400u32).map(|i| (i % 251) as u8).collect();
        let read = |set: &mut SocketSet<'static>, want: usize| {
            let s = set.get_mut::<tcp::Socket>(srv);
            read_in_place(s, |d| (want, d.to_vec()), None)
        };
        // Nothing yet: pending, and `f` is not called.
        let s = set.get_mut::<tcp::Socket>(srv);
        assert_eq!(read_in_place(s, |_| -> (usize, ()) { panic!("called") }, None), Poll::Pending);
        assert_eq!(set.get_mut::<tcp::Socket>(c).send_slice(&data[..700]), Ok(700));
        run(&mut iface, &mut dev, &mut set, &mut l);
        // Part of it consumed: the rest stays, in order.
        assert_eq!(read(&mut set, 100), Poll::Ready(Ok(Some(data[..700].to_vec()))));
        assert_eq!(read(&mut set, usize::MAX), Poll::Ready(Ok(Some(data[100..700].to_vec()))));
        // 700 more in the 1 KiB ring: up to its wrap (324 bytes), then the rest.
        assert_eq!(set.get_mut::<tcp::Socket>(c).send_slice(&data[700..]), Ok(700));
        run(&mut iface, &mut dev, &mut set, &mut l);
        assert_eq!(read(&mut set, 10), Poll::Ready(Ok(Some(data[700..1024].to_vec()))));
        let mut rest = [0u8; 1024];
        let s = set.get_mut::<tcp::Socket>(srv);
        assert_eq!(s.recv_slice(&mut rest), Ok(690), "a copying read goes on where it stopped");
        assert_eq!(&rest[..690], &data[710..]);
        // The peer closes: end of stream.
        set.get_mut::<tcp::Socket>(c).close();
        run(&mut iface, &mut dev, &mut set, &mut l);
        assert_eq!(read(&mut set, 1), Poll::Ready(Ok(None)));
    }

    #[test]
    fn a_read_in_place_of_a_reset_connection_is_an_error() {
        let (mut iface, mut dev, mut set) = loopback();
        let mut l = listener(usize::MAX);
        let c = client(&mut iface, &mut set, 50031);
        run(&mut iface, &mut dev, &mut set, &mut l);
        let (srv, _) = l.take_established(&mut set, Waker::noop()).expect("accepted");
        set.get_mut::<tcp::Socket>(c).abort();
        run(&mut iface, &mut dev, &mut set, &mut l);
        let s = set.get_mut::<tcp::Socket>(srv);
        assert_eq!(
            read_in_place(s, |d| (d.len(), ()), None),
            Poll::Ready(Err(NetError::ConnectionReset))
        );
    }

    #[test]
    fn buffers_the_heap_cannot_hold_are_an_error_not_an_abort() {
        // black_box: an allocation nothing uses may be elided by the
        // optimizer (release builds), which would make it "succeed".
        assert_eq!(core::hint::black_box(zeroed(1 << 62)).err(), Some(NetError::OutOfMemory));
        let opts = TcpOptions { rx_buffer: 1 << 62, ..TcpOptions::default() };
        assert_eq!(listening_socket(&opts, None, PORT).err(), Some(NetError::OutOfMemory));
        let mut l = Listener {
            port: PORT,
            addr: None,
            opts,
            sockets: Vec::new(),
            waker: None,
            lean_checked: None,
            spares: Vec::new(),
            spares_used: Instant::from_duration(Duration::ZERO),
            made: 0,
        };
        let mut set = SocketSet::new(Vec::new());
        assert_eq!(l.refresh(&mut set, &ParkedKeys::new()), 0, "no listening socket, no abort");
        assert_eq!(set.iter().count(), 0);
    }
}
