//! Networking: one smoltcp `Interface` per declared net device, over the tap
//! the tender attached, and sockets with std-shaped async APIs on top.
//!
//! * [`tap`]: the tap as a smoltcp `phy::Device` (read/write hypercalls),
//!   with [`gateway`]'s frame filters when the default gateway is outside
//!   the interface's prefix (pod networks) or has a fixed MAC.
//! * this module: the interfaces, their configuration (static or DHCPv4,
//!   from the environment: see [`config`] and [`dhcp`]), and the three hooks the
//!   executor calls every turn: [`poll`] (process what arrived, send what
//!   is queued), [`poll_at`] (the stack's next deadline) and [`wait`] (one
//!   `ppoll` on all taps until a frame arrives or the deadline passes).
//! * [`TcpListener`], [`TcpStream`], [`UdpSocket`]: the sockets.
//!
//! ARP and ICMP echo replies come from the stack itself: a guest that runs
//! the executor answers ping without any code of its own.
//!
//! The interfaces live in one global, locked only for short, non-blocking
//! sections; socket wakers only queue tasks, so waking under the lock is
//! safe.

pub mod config;
mod dhcp;
pub mod gateway;
pub(crate) mod linger;
mod park;
pub mod tap;
mod tcp;
mod udp;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
pub use core::net::{Ipv4Addr, SocketAddrV4};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp as stcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Cidr};
use spin::Mutex;

pub use config::{ConfigError, Ipv4Config};
pub use tap::TapStats;
pub use tcp::{
    CONNECT_TIMEOUT, LeanBuffers, NEIGHBOUR_TIMEOUT, TcpListener, TcpOptions, TcpStatus, TcpStream,
};
pub use udp::{UdpOptions, UdpSocket};

use crate::hypercall::{self, POLLIN, PollFd};
use crate::time::Instant;

/// Errors of the socket operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The peer reset the connection, or it was aborted.
    ConnectionReset,
    /// The peer refused the connection (or it timed out before being established).
    ConnectionRefused,
    /// The socket is not connected, or was shut down for this direction.
    NotConnected,
    /// The port is already bound.
    AddrInUse,
    /// The address or port is not usable (port 0, unspecified address).
    InvalidAddress,
    /// No interface has a route to the destination.
    NoRoute,
    /// The guest declares no net device, or none is named so.
    NoInterface,
    /// The datagram is larger than the socket's buffer.
    TooLarge,
    /// The heap has no room for the socket's buffers.
    OutOfMemory,
    /// No interface has the local address asked for.
    AddrNotAvailable,
    /// The peer did not answer in time (a connection attempt).
    TimedOut,
    /// The next hop towards the peer never answered ARP (a connection
    /// attempt; Linux's `EHOSTUNREACH`).
    HostUnreachable,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ConnectionReset => "connection reset",
            Self::ConnectionRefused => "connection refused",
            Self::NotConnected => "not connected",
            Self::AddrInUse => "address in use",
            Self::InvalidAddress => "invalid address",
            Self::NoRoute => "no route to host",
            Self::NoInterface => "no such network interface",
            Self::TooLarge => "datagram too large",
            Self::OutOfMemory => "out of memory for the socket's buffers",
            Self::AddrNotAvailable => "address not available",
            Self::TimedOut => "timed out",
            Self::HostUnreachable => "host unreachable",
        })
    }
}

impl core::error::Error for NetError {}

/// One interface: the tap, smoltcp's interface and its sockets.
pub(crate) struct Iface {
    pub(crate) name: String,
    pub(crate) mac: [u8; 6],
    pub(crate) mtu: u32,
    pub(crate) tap: tap::Tap,
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    dhcp: Option<dhcp::Dhcp>,
    /// The default gateway, if any.
    pub(crate) gateway: Option<Ipv4Addr>,
    /// Sockets whose stream was dropped: closing gracefully, removed once
    /// closed (or aborted after [`ORPHAN_LINGER`]).
    pub(crate) orphans: Vec<(SocketHandle, Instant)>,
    /// The TCP listeners' sockets on this interface.
    pub(crate) listeners: Vec<tcp::Listener>,
    /// The streams' sockets, active (in `sockets`) or parked (see [`park`]).
    pub(crate) streams: park::Streams,
}

/// How long a dropped, still-closing connection may linger.
const ORPHAN_LINGER: Duration = Duration::from_secs(60);

pub(crate) struct Stack {
    pub(crate) ifaces: Vec<Iface>,
}

pub(crate) static STACK: Mutex<Stack> = Mutex::new(Stack { ifaces: Vec::new() });

pub(crate) fn smol_now(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.as_duration().as_micros() as i64)
}

fn from_smol(t: smoltcp::time::Instant) -> Instant {
    Instant::from_duration(Duration::from_micros(t.total_micros().max(0) as u64))
}

/// Builds an interface for each net device in the boot info, configured from
/// the environment.
#[cfg_attr(test, allow(dead_code))]
pub(crate) fn init() -> Result<(), ConfigError> {
    let now = Instant::now();
    let wall =
        crate::time::SystemTime::now().duration_since(crate::time::UNIX_EPOCH).unwrap_or_default();
    let mut stack = STACK.lock();
    for dev in crate::rt::boot::devices() {
        if abi::DeviceKind::from_raw(dev.kind) != Some(abi::DeviceKind::Net) {
            continue;
        }
        let name = abi::DeviceEntry { name: dev.name, kind: dev.kind, reserved: 0 }
            .name()
            .unwrap_or("net")
            .to_string();
        let cfg = config::ipv4_config(&name, crate::env::var)?;
        let mut tap = tap::Tap::new(dev.fd, dev.mtu, dev.flags & abi::DEVICE_FLAG_VNET_HDR != 0);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(dev.mac)));
        // Not cryptographic, only different per boot: TCP's initial sequence
        // numbers and ephemeral ports come from it.
        let mac = u64::from_le_bytes([
            dev.mac[0], dev.mac[1], dev.mac[2], dev.mac[3], dev.mac[4], dev.mac[5], 0, 0,
        ]);
        config.random_seed =
            (now.as_duration().as_nanos() as u64) ^ (wall.as_nanos() as u64).rotate_left(17) ^ mac;
        let iface = Interface::new(config, &mut tap, smol_now(now));
        let mut sockets = SocketSet::new(Vec::new());
        let dhcp = match cfg {
            Ipv4Config::Static { .. } => None,
            Ipv4Config::Dhcp => Some(dhcp::Dhcp::new(&mut sockets)),
        };
        let mut i = Iface {
            name,
            mac: dev.mac,
            mtu: dev.mtu,
            tap,
            iface,
            sockets,
            dhcp,
            gateway: None,
            orphans: Vec::new(),
            listeners: Vec::new(),
            streams: park::Streams::new(),
        };
        if let Ipv4Config::Static { address, prefix, gateway, gateway_mac } = cfg {
            i.configure(Ipv4Cidr::new(address, prefix), gateway, gateway_mac, Source::Static);
        }
        stack.ifaces.push(i);
    }
    let lo = loopback(now);
    stack.ifaces.push(lo);
    sync_loopback(&mut stack);
    Ok(())
}

/// The loopback interface's MTU (IP, without the Ethernet header).
const LOOPBACK_MTU: u32 = 16384;

/// The loopback interface, `lo`: 127.0.0.1/8 (and the other interfaces'
/// addresses, see [`sync_loopback`]) on a device that hands every frame
/// it sends back to itself, in memory, at the next poll. Always there,
/// last in the stack, as on Linux; not listed by [`interfaces`].
#[cfg_attr(test, allow(dead_code))]
fn loopback(now: Instant) -> Iface {
    let mut tap = tap::Tap::loopback(LOOPBACK_MTU);
    let mac = [2, 0, 0, 0, 0, 0];
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = now.as_duration().as_nanos() as u64;
    let mut iface = Interface::new(config, &mut tap, smol_now(now));
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
    });
    Iface {
        name: "lo".to_string(),
        mac,
        mtu: LOOPBACK_MTU,
        tap,
        iface,
        sockets: SocketSet::new(Vec::new()),
        dhcp: None,
        gateway: None,
        orphans: Vec::new(),
        listeners: Vec::new(),
        streams: park::Streams::new(),
    }
}

/// Gives the loopback interface the other interfaces' addresses too (as
/// /32s, after 127.0.0.1/8), so that the guest reaches its own address in
/// memory, as Linux routes it through `lo`. At most three (smoltcp's four
/// addresses per interface); called after every change of address.
fn sync_loopback(stack: &mut Stack) {
    let own: Vec<IpCidr> = stack
        .ifaces
        .iter()
        .filter(|i| !i.is_loopback())
        .filter_map(|i| i.ipv4())
        .map(|c| IpCidr::Ipv4(Ipv4Cidr::new(c.address(), 32)))
        .take(3)
        .collect();
    let Some(lo) = stack.ifaces.iter_mut().find(|i| i.is_loopback()) else { return };
    if lo.iface.ip_addrs().get(1..).is_some_and(|a| a == own.as_slice()) {
        return;
    }
    lo.iface.update_ip_addrs(|a| {
        a.truncate(1);
        for c in own {
            let _ = a.push(c);
        }
    });
}

/// Most frames one turn of the stack takes in from a tap before it sends
/// and returns (see [`INGRESS_BYTES`]).
const INGRESS_FRAMES: u64 = 64;

/// Most bytes one turn takes in from a tap before it sends what smoltcp
/// has to send (ACKs, window updates, data the ACKs let out) and returns,
/// so that the tasks can take the data and the stack is polled again at
/// once. Without a bound, a peer that sends as fast as the guest reads
/// kept the guest reading until the tap was empty: one ACK per megabyte or
/// more, a window that did not open again until the batch was over, and
/// segments beyond it dropped (`nabla bench tcp`, client → guest; see
/// docs/performance.md, "Bulk TCP every run").
const INGRESS_BYTES: u64 = 128 * 1024;

/// The delayed-ACK timeout a socket gets while smoltcp takes a segment
/// that carries more than one full-sized segment's data (see
/// [`tap::Tap::quick_ack`]): the acknowledgement is due at the next network
/// turn, which comes as soon as the tasks have run, rather than after the
/// socket's own delay (10 ms by default). Linux sends it in the same turn;
/// one turn later, a reply the application wrote meanwhile carries it, as
/// a request's reply does with the ordinary delayed ACK, instead of an
/// extra frame before the reply (docs/networking.md, "Delayed
/// acknowledgements").
const QUICK_ACK: smoltcp::time::Duration = smoltcp::time::Duration::from_micros(1);

/// Bytes callers queued in sockets' send buffers since the last network
/// turn and left for the next one ([`defer_egress`]).
static EGRESS_PENDING: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// How many deferred bytes ([`defer_egress`]) make the next turn due at
/// once: past it, a writer that goes on writing (or computing) without
/// blocking would hold back segments the peer could already take, while a
/// burst of small writes (a server's pipelined replies) stays well below.
///
/// 48 KiB: most of what one offloaded frame carries (smoltcp puts up to
/// 64 KiB less the headers of a connection's data in one frame,
/// docs/networking.md, "Offloads"), so that a writer of small buffers
/// (std-echo's 16 KiB, `io::copy`'s 8 KiB) streams in large frames, one
/// per batch, where a 64 KiB batch would leave as one full frame and a
/// sliver. With 16 KiB, every 16 KiB written was a turn, a tap `write`
/// and, on the host, a trip through its receive path with a wakeup of the
/// reader: std-echo's 1 GiB stream cost the tender 70,000 `write`s of
/// 15 KB and 1.0-1.2 s of CPU, against 31,000 of 33 KB and 0.70-0.74 s
/// with 48 KiB, in the same runs (docs/performance.md, "Egress in large
/// frames").
pub const EGRESS_BATCH: usize = 48 * 1024;

/// Records that `bytes` were queued in a socket's send buffer (a `write`)
/// and are to leave at the next network turn, which the caller promises
/// to give soon: libos-std's threads give it when the writing thread next
/// blocks, yields or parks, or the guest idles (docs/std.md, "When a write
/// leaves"). Returns whether that turn is due now: [`EGRESS_BATCH`] bytes
/// or more wait. Any turn ([`poll`]) sends them; [`egress_pending`] tells
/// whether one is owed.
pub fn defer_egress(bytes: usize) -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    let before = EGRESS_PENDING.fetch_add(bytes.max(1), Relaxed);
    batch_due(before, bytes)
}

/// Whether `bytes` more, after `before` deferred ones, make the turn due.
fn batch_due(before: usize, bytes: usize) -> bool {
    before.saturating_add(bytes) >= EGRESS_BATCH
}

/// Whether data was queued ([`defer_egress`]) since the last network turn.
pub fn egress_pending() -> bool {
    EGRESS_PENDING.load(core::sync::atomic::Ordering::Relaxed) > 0
}

/// Processes what arrived and sends what is queued, on every interface.
/// Returns whether any socket changed state.
pub(crate) fn poll(now: Instant) -> bool {
    poll_turn(now, false)
}

/// [`poll`], for the executor's turn; `idle_turn`: no task ran in it
/// before this poll, so nothing was queued to send since the last one.
/// Then, if the frames read wake tasks, which run at once in the next
/// turn and whose poll sends what they answer, this poll leaves the pass
/// over the sockets to that one: a server's batch of requests costs one
/// egress pass, not two (see [`Iface::poll_frames`]).
pub(crate) fn poll_turn(now: Instant, idle_turn: bool) -> bool {
    let mut stack = STACK.lock();
    // This turn's egress sends whatever was queued until now.
    EGRESS_PENDING.store(0, core::sync::atomic::Ordering::Relaxed);
    let ts = smol_now(now);
    let mut changed = false;
    for i in &mut stack.ifaces {
        i.tap.drained = false;
        i.iface.poll_maintenance(ts);
        i.streams.unpark_due(ts, &mut i.sockets, &mut i.tap.parked);
        changed |= i.poll_frames(ts, idle_turn && !i.is_loopback());
        // The loopback's answers to what it just took: until it is quiet
        // (bounded, so that two sockets that keep talking cannot hold the
        // guest here).
        for _ in 0..64 {
            if !i.tap.has_looped() {
                break;
            }
            changed |= i.poll_frames(ts, false);
        }
        // The device answered an ARP request for a gateway with a fixed MAC
        // itself: let smoltcp learn it and send what waited for it now.
        if i.tap.has_injected() {
            changed |= i.poll_frames(ts, false);
        }
        i.handle_dhcp(now);
        i.sweep_orphans(now, false);
        i.streams.sweep(ts, &mut i.iface, &mut i.sockets, &mut i.tap.parked);
    }
    sync_loopback(&mut stack);
    changed
}

/// The earliest time any interface needs polling again.
pub(crate) fn poll_at(now: Instant) -> Option<Instant> {
    let mut stack = STACK.lock();
    if stack.ifaces.iter().any(|i| i.tap.has_looped()) {
        return Some(now);
    }
    let ts = smol_now(now);
    let dhcp = stack.ifaces.iter().filter_map(|i| i.dhcp.as_ref()?.deadline()).min();
    // The active sockets', and the parked ones' deadlines (keep-alive,
    // timeout), when they are brought back.
    let smol = stack
        .ifaces
        .iter_mut()
        .flat_map(|i| [i.iface.poll_at(ts, &i.sockets), i.streams.deadline()])
        .flatten()
        .min();
    smol.map(from_smol).into_iter().chain(dhcp).min()
}

/// Passes of smoltcp's egress over the sockets ([`Iface::poll_frames`])
/// made by this thread: the unit tests count them (per thread: the tests
/// run side by side, each on its own).
#[cfg(test)]
mod egress_passes {
    use core::cell::Cell;

    std::thread_local! {
        static PASSES: Cell<u64> = const { Cell::new(0) };
    }

    pub(crate) fn count() {
        PASSES.with(|p| p.set(p.get() + 1));
    }

    pub(crate) fn made() -> u64 {
        PASSES.with(Cell::get)
    }
}

/// Calls of [`check_taps`] and [`wait`], the two ways the executor learns
/// which taps have frames: the unit tests count them.
#[cfg(test)]
pub(crate) static TAP_CHECKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Asks the host which taps have frames waiting, without waiting (a
/// `ppoll` with a zero timeout), so that the next [`poll`] reads them.
/// The pending termination signals are checked in the same call
/// ([`crate::signal`]).
pub(crate) fn check_taps() {
    #[cfg(test)]
    TAP_CHECKS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let mut fds = tap_fds();
    let taps = fds.len();
    add_signal_fds(&mut fds);
    if fds.is_empty() || hypercall::ppoll(&mut fds, Some(Duration::ZERO)).unwrap_or(0) == 0 {
        return;
    }
    mark_readable(&fds[..taps]);
    crate::signal::seen(&fds[taps..]);
}

/// Whether the last [`poll`] left nothing a [`check_taps`] could find but
/// what arrived since: it read every tap until `EAGAIN`, or left it marked
/// readable (the next poll reads on). False without taps.
pub(crate) fn taps_drained() -> bool {
    let stack = STACK.lock();
    let mut taps = stack.ifaces.iter().filter(|i| !i.is_loopback()).peekable();
    taps.peek().is_some() && taps.all(|i| i.tap.drained || i.tap.readable)
}

/// Appends the fds of the termination signals still watched.
fn add_signal_fds(fds: &mut Vec<PollFd>) {
    let (sig, n) = crate::signal::poll_fds();
    fds.extend_from_slice(&sig[..n]);
}

/// The taps' fds, for `ppoll` (the loopback has none), in the order of
/// the interfaces.
fn tap_fds() -> Vec<PollFd> {
    STACK
        .lock()
        .ifaces
        .iter()
        .filter(|i| !i.is_loopback())
        .map(|i| PollFd { fd: i.tap.fd(), events: POLLIN, revents: 0 })
        .collect()
}

/// Marks the taps `ppoll` reported in `fds` (from [`tap_fds`]) readable.
fn mark_readable(fds: &[PollFd]) {
    let mut stack = STACK.lock();
    let taps = stack.ifaces.iter_mut().filter(|i| !i.is_loopback());
    for (i, p) in taps.zip(fds) {
        if p.revents != 0 {
            // POLLIN, or an error the next read will see.
            i.tap.readable = true;
        }
    }
}

/// Waits until a tap is readable or `deadline` passes (forever if `None`;
/// at once if it has passed): first, if the last sleeps ended soon after
/// they began, by asking the taps without waiting for a short while (the
/// poll window, [`poll_window`]), then in one `ppoll`.
/// A termination signal that arrives meanwhile also ends the wait, and is
/// acted on ([`crate::signal`]).
pub(crate) fn wait(deadline: Option<Instant>) {
    #[cfg(test)]
    TAP_CHECKS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let mut fds = tap_fds();
    let taps = fds.len();
    add_signal_fds(&mut fds);
    let window = Duration::from_nanos(POLL_WINDOW_NS.load(Ordering::Relaxed));
    let read = hypercall::counters().read_bytes;
    let bulk = read.wrapping_sub(READ_AT_WAIT.swap(read, Ordering::Relaxed)) >= POLL_BULK;
    let mut ppoll = |fds: &mut [PollFd], t| hypercall::ppoll(fds, t).unwrap_or(0);
    let (ready, window) =
        wait_on(&mut fds, taps, deadline, window, bulk, &mut ppoll, &mut Instant::now);
    POLL_WINDOW_NS.store(window.as_nanos() as u64, Ordering::Relaxed);
    if ready {
        mark_readable(&fds[..taps]);
        crate::signal::seen(&fds[taps..]);
    }
}

/// [`wait`]'s work on `fds`, the first `taps` of them taps, with `poll`
/// for `ppoll`, `clock` for [`Instant::now`] and the poll window `window`;
/// `bulk`: the taps gave at least [`POLL_BULK`] bytes since the last wait.
/// Returns whether an fd is ready, and the next poll window.
///
/// Polling before sleeping is KVM's halt polling for a vCPU: a sleep in
/// `ppoll` costs the tender a context switch and its CPU an exit from idle,
/// and whoever makes the tap readable (the host's stack sending to the
/// guest, in the peer's system call) a wake-up, an inter-processor
/// interrupt from the peer's CPU; a bulk stream into a guest put the
/// tender to sleep ~7,000 times per GiB, each wake-up paid by the client
/// (docs/performance.md, "Halt polling"). A window only opens while bulk
/// data comes in (`bulk`), after a sleep that a frame ended within
/// [`POLL_WINDOW_MAX`], and one longer wait closes it, so an idle guest, a
/// request/response server (whose CPU the polls would take from clients on
/// the same CPU, and add to its CPU per request), or one whose frames come
/// further apart sleeps at once as before. A poll round longer than
/// [`POLL_PREEMPTED`] (the tender was descheduled: another thread wants
/// its CPU) closes the window too, and the wait sleeps at once: polling
/// on would take the CPU from that thread, and a frame found after the
/// gap says nothing of how soon the next comes (a bulk stream into a
/// guest whose tender shared its CPU polled 83-99 % of a core,
/// docs/performance.md).
fn wait_on(
    fds: &mut [PollFd],
    taps: usize,
    deadline: Option<Instant>,
    window: Duration,
    bulk: bool,
    poll: &mut dyn FnMut(&mut [PollFd], Option<Duration>) -> usize,
    clock: &mut dyn FnMut() -> Instant,
) -> (bool, Duration) {
    let start = clock();
    let timeout = deadline.map(|d| d - start);
    if timeout == Some(Duration::ZERO) {
        return (false, window);
    }
    let mut preempted = false;
    if !window.is_zero() && taps > 0 {
        let until = start + timeout.map_or(window, |t| t.min(window));
        let mut last = start;
        loop {
            let found = poll(fds, Some(Duration::ZERO)) > 0;
            let now = clock();
            if now - last > POLL_PREEMPTED {
                // Descheduled (or the vCPU frozen) since the last poll:
                // the CPU is wanted elsewhere, and polling on would take
                // it from whoever wants it. Close the window, and sleep
                // at once if nothing was found.
                if found {
                    return (true, Duration::ZERO);
                }
                preempted = true;
                break;
            }
            if found {
                return (true, window);
            }
            if now >= until {
                break;
            }
            last = now;
            core::hint::spin_loop();
        }
    }
    let timeout = deadline.map(|d| d - clock());
    if timeout == Some(Duration::ZERO) {
        return (false, if preempted { Duration::ZERO } else { window });
    }
    let ready = poll(fds, timeout) > 0;
    if taps == 0 {
        return (ready, window);
    }
    if preempted {
        return (ready, Duration::ZERO);
    }
    let frame = ready && bulk && fds[..taps].iter().any(|p| p.revents != 0);
    (ready, poll_window(window, frame, clock() - start))
}

/// How long [`wait`] asks the taps without waiting before it sleeps, in
/// nanoseconds: 0 until a sleep ends with a frame soon after it began.
static POLL_WINDOW_NS: AtomicU64 = AtomicU64::new(0);

/// The bytes read from the taps (and the disks' flush channels) when
/// [`wait`] last began.
static READ_AT_WAIT: AtomicU64 = AtomicU64::new(0);

/// Bytes read since the last wait that make a short sleep open or widen
/// the poll window: half an offloaded segment, far more than any request
/// of a request/response protocol in one turn.
const POLL_BULK: u64 = 32 * 1024;

/// The first poll window, after a sleep a frame ended within
/// [`POLL_WINDOW_MAX`].
const POLL_WINDOW_START: Duration = Duration::from_micros(10);

/// The longest poll window, and the longest wait (window and sleep) a frame
/// may end for the window to grow; a longer wait closes it. 50 µs: the
/// guest spends at most that in a poll that finds nothing, against a sleep
/// and wake-up that cost the guest and its peer some 10-20 µs together; 200
/// µs (KVM's default) gave the stream no fewer wake-ups that mattered for
/// more of the tender's CPU (docs/performance.md).
const POLL_WINDOW_MAX: Duration = Duration::from_micros(50);

/// The longest a poll round (a `ppoll` that does not wait, and the clock)
/// may take before [`wait_on`] takes it that the tender was descheduled
/// and closes the window. A round costs about a microsecond; 20 µs is
/// longer than any but a round the tender did not run through (another
/// thread on its CPU, an interrupt's long softirq, a vCPU the host froze).
const POLL_PREEMPTED: Duration = Duration::from_micros(20);

/// The poll window after a wait of `slept` (poll and sleep) that began
/// with `window`; `frame`: a tap became readable, and bulk data came
/// before the wait. A frame within the
/// longest window doubles it (up to the longest; from nothing to
/// [`POLL_WINDOW_START`]); a longer wait closes it; a deadline, a signal,
/// or a frame after a turn without bulk data that ended a short wait
/// leaves it.
fn poll_window(window: Duration, frame: bool, slept: Duration) -> Duration {
    if slept > POLL_WINDOW_MAX {
        Duration::ZERO
    } else if frame {
        (window * 2).clamp(POLL_WINDOW_START, POLL_WINDOW_MAX)
    } else {
        window
    }
}

impl Iface {
    /// Gives the interface its address and default gateway, from the
    /// static configuration or a DHCP lease, with the tap's
    /// gateway filters when the gateway is off-link or its MAC fixed (see
    /// [`gateway`]).
    fn configure(
        &mut self,
        cidr: Ipv4Cidr,
        gateway: Option<Ipv4Addr>,
        gateway_mac: Option<[u8; 6]>,
        source: Source,
    ) {
        let (address, prefix) = (cidr.address(), cidr.prefix_len());
        // A lease is network input: smoltcp panics on an interface address
        // that is not unicast, so neither the address nor an off-link
        // gateway (which becomes the second address) may be one.
        if !config::unicast(address) {
            log::warn!("net {}: refused {cidr} {source}: not a unicast address", self.name);
            return;
        }
        let gateway = match gateway {
            Some(gw) if !config::unicast(gw) || gw == address => {
                log::warn!("net {}: ignored gateway {gw} {source}: not usable", self.name);
                None
            }
            gateway => gateway,
        };
        self.tap.gateway = gateway
            .and_then(|gw| gateway::Gateway::new(address, prefix, self.mac, gw, gateway_mac));
        // An off-link gateway is also the interface's second address, so
        // that smoltcp takes it as on-link (see `gateway`); its own address
        // stays first.
        let gateway_cidr = self.tap.gateway.filter(|g| g.off_link()).map(|g| g.gateway_cidr());
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            let _ = addrs.push(IpCidr::Ipv4(cidr));
            if let Some(cidr) = gateway_cidr {
                let _ = addrs.push(IpCidr::Ipv4(cidr));
            }
        });
        self.gateway = gateway;
        match gateway {
            Some(gw) => {
                let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
            }
            None => {
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
        let gw = match gateway {
            Some(gw) => format!("gateway {gw}"),
            None => "no gateway".to_string(),
        };
        let msg = format!(
            "net {}: {cidr} {source}, {gw}{}, mtu {}",
            self.name,
            match (gateway_cidr.is_some(), gateway_mac.is_some()) {
                (false, false) => "",
                (true, false) => " (off-link)",
                (false, true) => " (fixed MAC)",
                (true, true) => " (off-link, fixed MAC)",
            },
            self.mtu
        );
        match source {
            // The user chose it: nothing they do not know.
            Source::Static => log::info!("{msg}"),
            // The address the guest is reachable at: shown by default.
            Source::Dhcp => crate::console::notice(module_path!(), format_args!("{msg}")),
        }
    }

    /// Lets smoltcp process every frame that is ready, then send what is
    /// queued, as `Interface::poll` does, but refreshes the listeners'
    /// backlogs before a frame whenever a connection request took the last
    /// listening socket of one. Returns whether any socket changed state.
    ///
    /// A connection request waits in the tap until the connections that have
    /// a socket are listed (see [`tap`]'s documentation): once per batch,
    /// and only if one comes.
    fn poll_frames(&mut self, ts: smoltcp::time::Instant, may_defer: bool) -> bool {
        use smoltcp::iface::{PollIngressSingleResult as In, PollResult as Out};
        let mut changed = false;
        for l in &mut self.listeners {
            l.recheck_lean(&mut self.sockets, &self.tap.parked, ts, None);
        }
        self.refresh_listeners();
        self.tap.connections_listed = false;
        let (frames0, bytes0) = (self.tap.stats.rx_frames, self.tap.stats.rx_bytes);
        // The sockets given a short delay for a large segment, with their
        // own delay to give back (see `arm_quick_ack`).
        let mut quick: Vec<(SocketHandle, smoltcp::time::Duration)> = Vec::new();
        loop {
            if self.tap.syn_gate_closed {
                // A connection request took the last listening socket: the
                // connections that closed in this batch give theirs first.
                self.sweep_orphans(from_smol(ts), true);
                self.refresh_listeners();
            }
            match self.iface.poll_ingress_single(ts, &mut self.tap, &mut self.sockets) {
                In::None if self.tap.quick_ack.is_some() => self.arm_quick_ack(&mut quick),
                In::None if self.tap.holds_syn() => match self.tap.wake.take() {
                    Some(park::Wake::One(id)) => {
                        self.streams.unpark(id, &mut self.sockets, &mut self.tap.parked);
                    }
                    Some(park::Wake::All) => {
                        self.streams.unpark_all(&mut self.sockets, &mut self.tap.parked);
                    }
                    None => {
                        // A connection request: a listener whose burst of
                        // connections has ended gives it large buffers
                        // again now, not at its next periodic check, from
                        // the count of its connections the listing took.
                        let held = self.list_connections();
                        for (l, held) in self.listeners.iter_mut().zip(held) {
                            l.recheck_lean(&mut self.sockets, &self.tap.parked, ts, Some(held));
                        }
                    }
                },
                In::None => break,
                In::PacketProcessed => {}
                In::SocketStateChanged => changed = true,
            }
            // The budget is spent and the tap may hold more: send (the
            // ACKs and window updates for what came) and let the tasks
            // take the data before reading on; the caller polls again at
            // once.
            if self.tap.stats.rx_frames - frames0 >= INGRESS_FRAMES
                || self.tap.stats.rx_bytes - bytes0 >= INGRESS_BYTES
            {
                changed = true;
                break;
            }
        }
        let quick_armed = !quick.is_empty();
        // Their timers are set (to expire at the next turn, or at once if
        // more came): the delay given back counts from the next segment.
        for (h, delay) in quick {
            // Looked up, not `get_mut`: no panic should a socket have gone.
            if let Some((_, smoltcp::socket::Socket::Tcp(s))) =
                self.sockets.iter_mut().find(|(k, _)| *k == h)
            {
                s.set_ack_delay(Some(delay));
            }
        }
        // Frames read on an idle turn that woke tasks: nothing was queued
        // to send before them, and what they need at once (an ACK, a
        // SYN+ACK) goes with what the tasks answer, in the next turn's
        // poll, which follows at once (the tasks are ready). Not when a
        // large segment asked for its ACK now (`quick`).
        if may_defer
            && !quick_armed
            && self.tap.stats.rx_frames != frames0
            && crate::task::tasks_ready()
        {
            return true;
        }
        // Each pass sends at most one frame per socket; another pass only
        // if a socket may have more behind the one it sent (a request's
        // reply does not: at `-P 1` that is a pass over every socket less
        // per batch of replies).
        loop {
            self.tap.tx_more = false;
            #[cfg(test)]
            egress_passes::count();
            if self.iface.poll_egress(ts, &mut self.tap, &mut self.sockets) == Out::None {
                break;
            }
            changed = true;
            if !self.tap.tx_more {
                break;
            }
        }
        changed
    }

    /// Gives the socket of the connection whose large segment the tap holds
    /// ([`tap::Tap::quick_ack`]) a delayed-ACK timeout of [`QUICK_ACK`]
    /// while smoltcp takes the segment, and notes in `quick` the delay to
    /// give back after the turn's frames. A socket without delayed ACKs, or
    /// none for the connection (smoltcp answers with a reset), is left as
    /// it is. The held segment then goes to smoltcp.
    fn arm_quick_ack(&mut self, quick: &mut Vec<(SocketHandle, smoltcp::time::Duration)>) {
        let Some((local, remote)) = self.tap.quick_ack.take() else { return };
        self.tap.quick_ack_armed = true;
        let (local, remote) = (IpEndpoint::from(local), IpEndpoint::from(remote));
        for (h, socket) in self.sockets.iter_mut() {
            let smoltcp::socket::Socket::Tcp(s) = socket else { continue };
            if s.local_endpoint() != Some(local) || s.remote_endpoint() != Some(remote) {
                continue;
            }
            if let Some(delay) = s.ack_delay().filter(|&d| d > QUICK_ACK)
                && !quick.iter().any(|&(q, _)| q == h)
            {
                s.set_ack_delay(Some(QUICK_ACK));
                quick.push((h, delay));
            }
            return;
        }
    }

    /// Refreshes the listeners' backlogs and tells the tap how many
    /// connection requests each can take.
    fn refresh_listeners(&mut self) {
        let Self { tap, sockets, listeners, .. } = self;
        tap.syn_gate.clear();
        for l in listeners.iter_mut() {
            tap.syn_gate.push((l.port, l.refresh(sockets, &tap.parked)));
        }
        tap.syn_gate_closed = false;
    }

    /// Lists, for the tap, the connections to listened ports that have a
    /// socket: those past `Listen` and not yet closed. Returns, for each
    /// listener in order, how many sockets its connections hold
    /// (`Listener::held`, counted in the same walk).
    fn list_connections(&mut self) -> Vec<usize> {
        let Self { tap, sockets, listeners, .. } = self;
        tap.connections.clear();
        let mut held = alloc::vec![0; listeners.len()];
        let mut count = |port: u16| {
            if let Some(k) = listeners.iter().position(|l| l.port == port) {
                held[k] += 1;
            }
        };
        for (_, socket) in sockets.iter() {
            let smoltcp::socket::Socket::Tcp(s) = socket else { continue };
            let Some(local) = s.local_endpoint() else { continue };
            count(local.port);
            if matches!(
                s.state(),
                stcp::State::Listen | stcp::State::Closed | stcp::State::TimeWait
            ) {
                continue;
            }
            let Some(remote) = s.remote_endpoint() else { continue };
            if let IpAddress::Ipv4(addr) = remote.addr
                && tap.syn_gate.iter().any(|&(port, _)| port == local.port)
            {
                tap.connections.push((local.port, SocketAddrV4::new(addr, remote.port)));
            }
        }
        // The parked ones are established.
        for k in tap.parked.keys() {
            count(k.local.port());
            if tap.syn_gate.iter().any(|&(port, _)| port == k.local.port()) {
                tap.connections.push((k.local.port(), k.remote));
            }
        }
        tap.connections_listed = true;
        held
    }

    /// Frees the closed sockets of dropped streams (a listener keeps some
    /// of its connections' to listen again: `Listener::keep_spare`), aborts
    /// those that lingered too long, and frees spares left unused.
    ///
    /// `between_frames`: the sweep a connection request makes in the middle
    /// of a batch (see `poll_frames`), before the batch's replies go. It
    /// leaves an aborted socket whose reset is still to send (closed, its
    /// peer still known) to the sweep after the batch, as `TcpStream`'s
    /// drop does: freed before, the peer would never hear of it and would
    /// hold its end open (httpd's evicted connections did). The sweep after
    /// the batch frees it whether the reset went or could not (no route).
    pub(crate) fn sweep_orphans(&mut self, now: Instant, between_frames: bool) {
        let Self { sockets, listeners, orphans, .. } = self;
        orphans.retain(|&(h, since)| {
            let s = sockets.get_mut::<stcp::Socket>(h);
            match s.state() {
                stcp::State::Closed if between_frames && s.remote_endpoint().is_some() => true,
                stcp::State::Closed | stcp::State::TimeWait => {
                    free_socket(sockets, listeners, h, now);
                    false
                }
                _ if now.duration_since(since) > ORPHAN_LINGER => {
                    s.abort();
                    true
                }
                _ => true,
            }
        });
        for l in listeners {
            l.expire_spares(now);
        }
    }

    /// Whether this is the loopback interface.
    pub(crate) fn is_loopback(&self) -> bool {
        self.tap.is_loopback()
    }

    /// Whether the interface has `addr`: one of its addresses, or for the
    /// loopback any of 127.0.0.0/8.
    pub(crate) fn holds(&self, addr: Ipv4Addr) -> bool {
        (self.is_loopback() && addr.is_loopback())
            || self.iface.ip_addrs().iter().any(|c| c.address() == IpAddress::Ipv4(addr))
    }

    /// The interface's IPv4 address and prefix, once configured.
    pub(crate) fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.iface.ip_addrs().iter().find_map(|c| match c {
            IpCidr::Ipv4(c) => Some(*c),
            IpCidr::Ipv6(_) => None,
        })
    }
}

/// Where an interface's address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The environment (`NET_N_IPV4`).
    Static,
    /// A DHCP lease.
    Dhcp,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Static => "static",
            Self::Dhcp => "by DHCP",
        })
    }
}

/// Index of the interface to reach `dst` from: the one whose subnet holds
/// it, else the first with a default gateway.
/// 127.0.0.0/8 and the guest's own addresses go through the loopback, as
/// on Linux; 0.0.0.0 is no destination.
pub(crate) fn route(stack: &Stack, dst: Ipv4Addr) -> Option<usize> {
    if dst.is_unspecified() {
        return None;
    }
    let lo = stack.ifaces.iter().position(Iface::is_loopback);
    if dst.is_loopback() || stack.ifaces.iter().any(|i| !i.is_loopback() && i.holds(dst)) {
        return lo;
    }
    let taps = |i: &&Iface| !i.is_loopback();
    let on_link = stack
        .ifaces
        .iter()
        .position(|i| taps(&i) && i.ipv4().is_some_and(|c| c.contains_addr(&dst)));
    on_link.or_else(|| {
        stack.ifaces.iter().position(|i| taps(&i) && i.ipv4().is_some() && i.gateway.is_some())
    })
}

/// The interfaces a socket bound to `addr` lives on: every one for the
/// unspecified address, else the one holding it.
pub(crate) fn ifaces_holding(stack: &Stack, addr: Ipv4Addr) -> Result<Vec<usize>, NetError> {
    if stack.ifaces.is_empty() {
        return Err(NetError::NoInterface);
    }
    if addr.is_unspecified() {
        return Ok((0..stack.ifaces.len()).collect());
    }
    // The interface with the address, and the loopback, which has it too.
    let idx: Vec<usize> =
        (0..stack.ifaces.len()).filter(|&k| stack.ifaces[k].holds(addr)).collect();
    if idx.is_empty() { Err(NetError::AddrNotAvailable) } else { Ok(idx) }
}

/// Whether a socket may bind to `addr`: the unspecified address (if the
/// guest has an interface), or an interface's address.
pub fn is_local_address(addr: Ipv4Addr) -> Result<(), NetError> {
    ifaces_holding(&STACK.lock(), addr).map(drop)
}

/// The local address the guest sends to `dst` from (the routing
/// interface's), if it has a route.
pub fn source_address(dst: Ipv4Addr) -> Option<Ipv4Addr> {
    let stack = STACK.lock();
    let idx = route(&stack, dst)?;
    if stack.ifaces[idx].is_loopback() {
        // To itself: from that address (127.0.0.1 for 127.0.0.0/8).
        return Some(if dst.is_loopback() { Ipv4Addr::LOCALHOST } else { dst });
    }
    stack.ifaces[idx].ipv4().map(|c| c.address())
}

/// Whether a TCP listener or connection uses local `port`.
pub fn tcp_port_in_use(port: u16) -> bool {
    !tcp::port_free(&STACK.lock(), port)
}

/// Whether a TCP listener has local `port`.
pub fn tcp_port_listened(port: u16) -> bool {
    tcp::port_listened(&STACK.lock(), port)
}

/// What the guest knows about one of its interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// The device name from the manifest (`service0`).
    pub name: String,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// The host interface's MTU.
    pub mtu: u32,
    /// TCP segmentation and checksums are offloaded to the host (the tap's
    /// frames carry virtio-net headers).
    pub offload: bool,
    /// Address and prefix length, once configured.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// Frame counters.
    pub stats: TapStats,
}

/// The guest's network interfaces (its net devices: not the loopback).
pub fn interfaces() -> Vec<InterfaceInfo> {
    STACK
        .lock()
        .ifaces
        .iter()
        .filter(|i| !i.is_loopback())
        .map(|i| InterfaceInfo {
            name: i.name.clone(),
            mac: i.mac,
            mtu: i.mtu,
            offload: i.tap.offloads(),
            ipv4: i.ipv4().map(|c| (c.address(), c.prefix_len())),
            stats: i.tap.stats,
        })
        .collect()
}

/// Waits until every interface has an IPv4 address (at once for static
/// configurations; after the DHCP exchange otherwise).
pub async fn wait_configured() {
    loop {
        if STACK.lock().ifaces.iter().all(|i| i.ipv4().is_some()) {
            return;
        }
        crate::task::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes the closed TCP socket `h` out of `sockets`: the listener it
/// listened for keeps it to listen again (`Listener::keep_spare`), or it is
/// freed.
pub(crate) fn free_socket(
    sockets: &mut SocketSet<'static>,
    listeners: &mut [tcp::Listener],
    h: SocketHandle,
    now: Instant,
) {
    // An accepted connection's socket still names the endpoint it listened
    // at (a closed one has no local endpoint left).
    let port = sockets.get::<stcp::Socket>(h).listen_endpoint().port;
    if let smoltcp::socket::Socket::Tcp(s) = sockets.remove(h)
        && let Some(l) = listeners.iter_mut().find(|l| port != 0 && l.port == port)
    {
        l.keep_spare(s, now);
    }
}

#[cfg(test)]
mod tests {
    use smoltcp::phy::{Device, TxToken};

    use super::*;

    /// Queues `n` frames of `len` zero bytes on the loopback (an
    /// EtherType nobody handles: smoltcp drops each).
    fn queue(lo: &mut Iface, n: usize, len: usize) {
        for _ in 0..n {
            let tx = lo.tap.transmit(smol_now(Instant::now())).expect("room");
            tx.consume(len, |b| b.fill(0));
        }
    }

    /// The poll window opens after a sleep a frame ended soon, doubles
    /// up to its longest while frames keep coming soon, and closes after
    /// one long wait; a deadline leaves it.
    #[test]
    fn the_poll_window_follows_how_soon_frames_end_the_sleeps() {
        let us = Duration::from_micros;
        assert_eq!(poll_window(Duration::ZERO, true, us(3)), POLL_WINDOW_START);
        assert_eq!(poll_window(us(10), true, us(30)), us(20));
        assert_eq!(poll_window(us(40), true, us(45)), POLL_WINDOW_MAX);
        assert_eq!(poll_window(POLL_WINDOW_MAX, true, us(20)), POLL_WINDOW_MAX);
        assert_eq!(poll_window(us(20), false, us(20)), us(20), "a deadline");
        assert_eq!(poll_window(us(40), true, POLL_WINDOW_MAX + us(1)), Duration::ZERO);
        assert_eq!(poll_window(us(40), false, Duration::from_millis(5)), Duration::ZERO);
        assert_eq!(poll_window(Duration::ZERO, true, Duration::from_millis(1)), Duration::ZERO);
    }

    /// With the window closed a wait is one `ppoll` that sleeps; open, the
    /// taps are asked without waiting, and a frame found so ends the wait
    /// with no sleep; none found, the wait sleeps once the window passed.
    #[test]
    fn a_wait_polls_within_its_window_and_sleeps_after() {
        let mut fds = [PollFd { fd: 3, events: POLLIN, revents: 0 }];
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        let mut calls: Vec<Option<Duration>> = Vec::new();
        let mut sleeps_then_frame = |fds: &mut [PollFd], t: Option<Duration>| {
            calls.push(t);
            fds[0].revents = POLLIN;
            1
        };
        let (ready, window) = wait_on(
            &mut fds,
            1,
            deadline,
            Duration::ZERO,
            true,
            &mut sleeps_then_frame,
            &mut Instant::now,
        );
        assert!(ready);
        assert_eq!(calls.len(), 1, "one ppoll");
        assert!(calls[0].is_some_and(|t| t > Duration::from_secs(4)), "{calls:?}");
        assert!(window <= POLL_WINDOW_START, "{window:?}: opened, unless the test was descheduled");

        // Open: the third poll finds a frame, and nothing sleeps.
        let mut calls: Vec<Option<Duration>> = Vec::new();
        let mut third = |fds: &mut [PollFd], t: Option<Duration>| {
            calls.push(t);
            fds[0].revents = if calls.len() == 3 { POLLIN } else { 0 };
            usize::from(calls.len() == 3)
        };
        let window = Duration::from_secs(1);
        let mut clock = ticks(Duration::from_micros(1));
        assert_eq!(
            wait_on(&mut fds, 1, deadline, window, true, &mut third, &mut clock),
            (true, window)
        );
        assert_eq!(calls, [Some(Duration::ZERO); 3]);

        // Open, nothing comes: polls for the window, then sleeps until the
        // deadline, which closes it. (A clock of 1 µs a reading: the real
        // one, on a loaded machine, can show this thread descheduled between
        // two polls, which closes the window early, as it should.)
        let mut calls: Vec<Option<Duration>> = Vec::new();
        let mut nothing = |_: &mut [PollFd], t: Option<Duration>| {
            calls.push(t);
            0
        };
        let near = Some(Instant::now() + Duration::from_millis(20));
        let mut clock = ticks(Duration::from_micros(1));
        let (ready, window) = wait_on(&mut fds, 1, near, us_(200), true, &mut nothing, &mut clock);
        assert!(!ready);
        assert!(
            calls.len() >= 200
                && calls[..calls.len() - 1].iter().all(|&t| t == Some(Duration::ZERO)),
            "polled through the window: {} calls",
            calls.len()
        );
        assert!(
            calls
                .last()
                .unwrap()
                .is_some_and(|t| t > Duration::ZERO && t < Duration::from_millis(20))
        );
        assert_eq!(window, Duration::ZERO, "a wait longer than the longest window");

        // A frame that ends a short sleep after a turn without bulk data
        // leaves the window closed: a request/response server never polls.
        let mut calls = 0;
        let mut quick = |fds: &mut [PollFd], _: Option<Duration>| {
            calls += 1;
            fds[0].revents = POLLIN;
            1
        };
        let r =
            wait_on(&mut fds, 1, deadline, Duration::ZERO, false, &mut quick, &mut Instant::now);
        assert_eq!((r, calls), ((true, Duration::ZERO), 1));

        // Without taps (signals alone) nothing is polled before the sleep.
        let mut calls: Vec<Option<Duration>> = Vec::new();
        let mut count = |_: &mut [PollFd], t: Option<Duration>| {
            calls.push(t);
            0
        };
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(
            wait_on(&mut [], 0, soon, us_(200), true, &mut count, &mut Instant::now),
            (false, us_(200))
        );
        assert_eq!(calls.len(), 1);
        assert_ne!(calls[0], Some(Duration::ZERO));
    }

    fn us_(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// A clock for [`wait_on`] that starts now and moves `step` per reading.
    fn ticks(step: Duration) -> impl FnMut() -> Instant {
        let mut t = Instant::now();
        move || {
            t = t + step;
            t
        }
    }

    /// A poll round that shows the tender was descheduled (a gap between
    /// two polls far above what a poll costs) closes an open window: the
    /// wait sleeps at once if the round found nothing, returns if it found
    /// a frame, and the next wait does not poll. Rounds of the usual cost
    /// keep it open.
    #[test]
    fn a_descheduled_poll_round_closes_the_window() {
        let mut fds = [PollFd { fd: 3, events: POLLIN, revents: 0 }];
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        let window = POLL_WINDOW_MAX;

        // The clock: 1 µs a reading, but the reading after the second poll
        // comes `gap` later (the tender ran no further for that long).
        let clock_with_gap = |gap: Duration| {
            let mut t = Instant::now();
            let mut readings = 0;
            move || {
                readings += 1;
                t = t + us_(1) + if readings == 3 { gap } else { Duration::ZERO };
                t
            }
        };

        // Nothing found in the round after the gap: one more call, the
        // sleep, which a frame ends; the window closed all the same.
        let mut calls: Vec<Option<Duration>> = Vec::new();
        let mut sleep_ends_with_frame = |fds: &mut [PollFd], t: Option<Duration>| {
            calls.push(t);
            let frame = t != Some(Duration::ZERO);
            fds[0].revents = if frame { POLLIN } else { 0 };
            usize::from(frame)
        };
        let mut clock = clock_with_gap(POLL_PREEMPTED + us_(1));
        let r =
            wait_on(&mut fds, 1, deadline, window, true, &mut sleep_ends_with_frame, &mut clock);
        assert_eq!(r, (true, Duration::ZERO));
        assert_eq!(calls.len(), 3, "two polls, then the sleep: {calls:?}");
        assert!(calls[2].is_some_and(|t| t > Duration::from_secs(4)), "{calls:?}");

        // The round after the gap found a frame: returned at once, closed.
        let mut calls = 0;
        let mut second_finds = |fds: &mut [PollFd], _: Option<Duration>| {
            calls += 1;
            fds[0].revents = if calls == 2 { POLLIN } else { 0 };
            usize::from(calls == 2)
        };
        let mut clock = clock_with_gap(Duration::from_millis(3));
        let r = wait_on(&mut fds, 1, deadline, window, true, &mut second_finds, &mut clock);
        assert_eq!((r, calls), ((true, Duration::ZERO), 2));

        // A gap below the bound is a round like any other: the window stays.
        let mut calls = 0;
        let mut second_finds = |fds: &mut [PollFd], _: Option<Duration>| {
            calls += 1;
            fds[0].revents = if calls == 2 { POLLIN } else { 0 };
            usize::from(calls == 2)
        };
        let mut clock = clock_with_gap(POLL_PREEMPTED - us_(2));
        let r = wait_on(&mut fds, 1, deadline, window, true, &mut second_finds, &mut clock);
        assert_eq!((r, calls), ((true, window), 2));

        // Closed, the next wait sleeps in its first call.
        let mut calls: Vec<Option<Duration>> = Vec::new();
        let mut record = |fds: &mut [PollFd], t: Option<Duration>| {
            calls.push(t);
            fds[0].revents = POLLIN;
            1
        };
        let mut clock = ticks(us_(1));
        wait_on(&mut fds, 1, deadline, Duration::ZERO, true, &mut record, &mut clock);
        assert_eq!(calls.len(), 1);
        assert_ne!(calls[0], Some(Duration::ZERO));
    }

    /// A batch of deferred writes is due once it would fill most of an
    /// offloaded frame, and still fits one.
    #[test]
    fn deferred_writes_are_due_at_most_of_an_offloaded_frame() {
        // The largest TCP payload of an offloaded frame: its IP packet
        // (at most 64 KiB - 1) less the IP and TCP headers.
        let frame_payload = u16::MAX as usize - tcp::TCP_IP_HEADERS;
        assert!(EGRESS_BATCH <= frame_payload, "a batch fits one frame");
        // 16 KiB writes: the third makes the turn due, not the first two.
        let write = 16 * 1024;
        assert!(!batch_due(0, write));
        assert!(!batch_due(write, write));
        assert!(batch_due(2 * write, write));
        // 8 KiB writes (`io::copy`'s buffer): the sixth.
        assert!(!batch_due(4 * 8192, 8192));
        assert!(batch_due(5 * 8192, 8192));
        // A single large write is due at once; pipelined small replies
        // (100 of 64 bytes) stay far below.
        assert!(batch_due(0, 256 * 1024));
        assert!(!batch_due(99 * 64, 64));
        assert!(batch_due(usize::MAX, 1), "no overflow");
    }

    #[test]
    fn a_turn_takes_in_at_most_its_budget() {
        let mut lo = loopback(Instant::now());
        let ts = smol_now(Instant::now());
        // Frames: 64 a turn, and a turn that stops early says so.
        queue(&mut lo, 150, 60);
        assert!(lo.poll_frames(ts, false), "more to read: the caller turns again");
        assert_eq!(lo.tap.stats.rx_frames, 64);
        assert!(lo.poll_frames(ts, false));
        assert_eq!(lo.tap.stats.rx_frames, 128);
        lo.poll_frames(ts, false);
        assert_eq!(lo.tap.stats.rx_frames, 150, "the rest");
        assert!(!lo.tap.has_looped());
        // Bytes: 128 KiB a turn, the frame that reaches it included.
        let frame = LOOPBACK_MTU as usize + 14;
        queue(&mut lo, 10, frame);
        assert!(lo.poll_frames(ts, false));
        let per_turn = INGRESS_BYTES.div_ceil(frame as u64);
        assert_eq!(lo.tap.stats.rx_frames, 150 + per_turn);
        lo.poll_frames(ts, false);
        assert_eq!(lo.tap.stats.rx_frames, 160);
    }

    /// 10,008 short connections to a listener, one and 8 at once in turn:
    /// its closed connections' sockets listen again (no new buffers), the
    /// spares stay bounded, the set holds no more sockets than the
    /// connections open at once, and once the spares are freed after
    /// `SPARE_LINGER` the set holds the listening socket alone.
    #[test]
    fn a_listeners_closed_sockets_listen_again() {
        use smoltcp::socket::tcp::{Socket, SocketBuffer, State};
        let t0 = Instant::now();
        let mut lo = loopback(t0);
        let opts =
            TcpOptions { rx_buffer: 4096, tx_buffer: 2048, ack_delay: None, ..Default::default() };
        lo.listeners.push(tcp::Listener::new(80, None, opts));
        let mut port = 40000;
        let mut most = 0;
        let mut connections = 0;
        for round in 0..2224 {
            let at_once = if round % 2 == 0 { 1 } else { 8 };
            let mut clients = Vec::new();
            for _ in 0..at_once {
                let mut c =
                    Socket::new(SocketBuffer::new(vec![0; 1024]), SocketBuffer::new(vec![0; 1024]));
                c.set_ack_delay(None);
                c.connect(lo.iface.context(), (IpAddress::v4(127, 0, 0, 1), 80), port).unwrap();
                port += 1;
                clients.push(lo.sockets.add(c));
            }
            for _ in 0..16 {
                lo.poll_frames(smol_now(t0), false);
            }
            let mut accepted = Vec::new();
            while let Some((h, _)) =
                lo.listeners[0].take_established(&mut lo.sockets, core::task::Waker::noop())
            {
                let s = lo.sockets.get_mut::<Socket>(h);
                assert_eq!((s.recv_capacity(), s.send_capacity()), (4096, 2048));
                s.send_slice(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
                // The server closes first, as a server of `Connection: close` does.
                s.close();
                lo.orphans.push((h, t0));
                accepted.push(h);
            }
            assert_eq!(accepted.len(), at_once, "round {round}");
            connections += at_once;
            for _ in 0..16 {
                lo.poll_frames(smol_now(t0), false);
            }
            for &c in &clients {
                let s = lo.sockets.get_mut::<Socket>(c);
                assert!(s.can_recv(), "round {round}: the response came");
                s.close();
            }
            for _ in 0..16 {
                lo.poll_frames(smol_now(t0), false);
            }
            most = most.max(lo.sockets.iter().count());
            lo.sweep_orphans(t0, false);
            for c in clients {
                let s = lo.sockets.get_mut::<Socket>(c);
                assert!(matches!(s.state(), State::Closed | State::TimeWait), "{}", s.state());
                lo.sockets.remove(c);
            }
            assert!(lo.orphans.is_empty(), "round {round}: every server socket closed");
            assert!(lo.listeners[0].spares() <= tcp::SPARES);
        }
        assert!(lo.listeners[0].spares() > 0, "closed sockets are kept");
        assert_eq!(connections, 10_008);
        let made = lo.listeners[0].made;
        assert!(made <= 2 * tcp::SPARES, "{made} sockets made for {connections} connections");
        // 8 connections' two ends and a listening socket at most.
        assert!(most <= 17, "{most} sockets");
        lo.sweep_orphans(t0 + tcp::SPARE_LINGER, false);
        assert_eq!(lo.listeners[0].spares(), 0, "freed after SPARE_LINGER");
        // Nothing leaked: the listening socket is all the set holds.
        assert_eq!(lo.sockets.iter().count(), 1);
    }

    /// A client of the loopback connecting to port 80 from `port`.
    fn client_to_80(lo: &mut Iface, port: u16) -> SocketHandle {
        use smoltcp::socket::tcp::{Socket, SocketBuffer};
        let mut c = Socket::new(SocketBuffer::new(vec![0; 1024]), SocketBuffer::new(vec![0; 1024]));
        c.set_ack_delay(None);
        c.connect(lo.iface.context(), (IpAddress::v4(127, 0, 0, 1), 80), port).unwrap();
        lo.sockets.add(c)
    }

    /// The sockets the listener on port 80 holds, wherever they are:
    /// listening, connections in the set or parked, and spares.
    fn sockets_of_80(lo: &Iface) -> usize {
        let active = lo
            .sockets
            .iter()
            .filter(
                |(_, s)| matches!(s, smoltcp::socket::Socket::Tcp(s) if s.listen_endpoint().port == 80),
            )
            .count();
        let parked = lo.tap.parked.keys().filter(|k| k.local.port() == 80).count();
        active + parked + lo.listeners[0].spares()
    }

    /// Turns (as [`turn`], with the orphans' sweep of [`poll`]) every
    /// 50 ms for `d`, checking the listener's bound at each.
    fn turns_within(lo: &mut Iface, t: &mut Instant, d: Duration, max: usize) {
        let end = *t + d;
        while *t < end {
            *t = *t + Duration::from_millis(50);
            turn(lo, *t);
            lo.sweep_orphans(*t, false);
            let held = sockets_of_80(lo);
            assert!(held <= max, "the listener holds {held} sockets, over {max}");
        }
    }

    /// Ends the server's side of stream `id` as dropping its `TcpStream`
    /// does after `close`, and the client's.
    fn close_both(lo: &mut Iface, id: park::Id, client: SocketHandle, t: Instant) {
        let h = lo.streams.remove(id, &mut lo.sockets, &mut lo.tap.parked);
        lo.sockets.get_mut::<stcp::Socket>(h).close();
        lo.orphans.push((h, t));
        lo.sockets.get_mut::<stcp::Socket>(client).close();
    }

    /// `max_connections` bounds every socket a listener's connections hold,
    /// wherever they are: in smoltcp's set, parked while idle (out of the
    /// set), or kept as spares once closed. httpd's connection limit rests
    /// on it (a connection beyond it waits as a SYN, and httpd evicts its
    /// idle connection longest idle); its idle connections are parked.
    #[test]
    fn a_listeners_limit_counts_its_parked_connections_and_its_spares() {
        const MAX: usize = 4;
        let mut t = Instant::now();
        let mut lo = loopback(t);
        let opts = TcpOptions {
            rx_buffer: 4096,
            tx_buffer: 2048,
            ack_delay: None,
            max_connections: MAX,
            ..Default::default()
        };
        lo.listeners.push(tcp::Listener::new(80, None, opts));
        let clients: Vec<SocketHandle> =
            (0..MAX as u16).map(|k| client_to_80(&mut lo, 40000 + k)).collect();
        turns_within(&mut lo, &mut t, Duration::from_millis(200), MAX);
        let mut served = Vec::new();
        while let Some((h, _)) =
            lo.listeners[0].take_established(&mut lo.sockets, core::task::Waker::noop())
        {
            served.push(lo.streams.add(h));
        }
        assert_eq!(served.len(), MAX);
        // Idle: the server's ends leave the set.
        turns_within(&mut lo, &mut t, SWEEPS, MAX);
        assert_eq!(lo.tap.parked.keys().filter(|k| k.local.port() == 80).count(), MAX);
        // One more: no socket for it while the four are open, parked or not.
        let late = client_to_80(&mut lo, 41000);
        turns_within(&mut lo, &mut t, Duration::from_secs(2), MAX);
        assert_eq!(lo.sockets.get::<stcp::Socket>(late).state(), stcp::State::SynSent);
        assert!(
            lo.listeners[0].take_established(&mut lo.sockets, core::task::Waker::noop()).is_none()
        );
        // One closes: its socket, a spare, takes the late one's SYN (sent
        // again), and no socket is made.
        close_both(&mut lo, served.remove(0), clients[0], t);
        turns_within(&mut lo, &mut t, Duration::from_secs(4), MAX);
        assert_eq!(lo.sockets.get::<stcp::Socket>(late).state(), stcp::State::Established);
        let (h, _) = lo.listeners[0]
            .take_established(&mut lo.sockets, core::task::Waker::noop())
            .expect("the late connection");
        served.push(lo.streams.add(h));
        assert_eq!(lo.listeners[0].made, MAX, "the late connection has the closed one's socket");
        // All close: spares and a listening socket, four in all.
        for (id, c) in served.into_iter().zip([clients[1], clients[2], clients[3], late]) {
            close_both(&mut lo, id, c, t);
        }
        turns_within(&mut lo, &mut t, Duration::from_millis(500), MAX);
        assert_eq!(sockets_of_80(&lo), MAX);
        assert_eq!(lo.listeners[0].spares(), MAX - 1);
        // Unused for `SPARE_LINGER`, the spares go.
        turns_within(&mut lo, &mut t, tcp::SPARE_LINGER + Duration::from_millis(500), MAX);
        assert_eq!(sockets_of_80(&lo), 1, "the listening socket alone");
    }

    /// A connection the server aborts and drops (httpd's eviction of an
    /// idle one) is freed only once its reset is sent, even by the sweep a
    /// connection request makes between the frames of a batch: the peer
    /// hears of it, and its socket listens again.
    #[test]
    fn an_aborted_connections_reset_goes_before_its_socket_is_freed() {
        let mut t = Instant::now();
        let mut lo = loopback(t);
        let opts =
            TcpOptions { rx_buffer: 4096, tx_buffer: 2048, ack_delay: None, ..Default::default() };
        lo.listeners.push(tcp::Listener::new(80, None, opts));
        let idle = client_to_80(&mut lo, 40000);
        turns_within(&mut lo, &mut t, Duration::from_millis(200), usize::MAX);
        let (h, _) = lo.listeners[0]
            .take_established(&mut lo.sockets, core::task::Waker::noop())
            .expect("accepted");
        // Evicted: aborted and dropped, while a new connection's SYN comes
        // in the same batch of frames (it takes the listening socket, and
        // the stack sweeps before it makes the next).
        lo.sockets.get_mut::<stcp::Socket>(h).abort();
        lo.orphans.push((h, t));
        let next = client_to_80(&mut lo, 40001);
        lo.sweep_orphans(t, true);
        assert_eq!(lo.orphans.len(), 1, "kept: its reset is not sent yet");
        turns_within(&mut lo, &mut t, Duration::from_millis(200), usize::MAX);
        assert_eq!(lo.sockets.get::<stcp::Socket>(idle).state(), stcp::State::Closed, "reset");
        assert_eq!(lo.sockets.get::<stcp::Socket>(next).state(), stcp::State::Established);
        assert!(lo.orphans.is_empty(), "freed once the reset went");
        // Its socket was kept, and listens for the connection after.
        assert_eq!((lo.listeners[0].spares(), lo.listeners[0].made), (0, 2));
    }

    /// A listener whose spares are of a size it no longer makes (its first,
    /// large sockets, once it makes lean ones) frees one before it makes a
    /// socket past `max_connections`.
    #[test]
    fn a_spare_of_another_size_makes_room_under_the_limit() {
        const MAX: usize = 2;
        let mut t = Instant::now();
        let mut lo = loopback(t);
        let opts = TcpOptions {
            rx_buffer: 4096,
            tx_buffer: 2048,
            ack_delay: None,
            max_connections: MAX,
            lean: Some(LeanBuffers { after: 1, rx_buffer: 1024, tx_buffer: 512 }),
            ..Default::default()
        };
        lo.listeners.push(tcp::Listener::new(80, None, opts));
        let mut served = Vec::new();
        for port in [40000, 40001] {
            let c = client_to_80(&mut lo, port);
            turns_within(&mut lo, &mut t, Duration::from_millis(200), MAX);
            let (h, _) = lo.listeners[0]
                .take_established(&mut lo.sockets, core::task::Waker::noop())
                .expect("accepted");
            served.push((lo.streams.add(h), c));
        }
        let caps = |lo: &mut Iface, id| {
            let s = lo.streams.peek(id, &mut lo.sockets);
            (s.recv_capacity(), s.send_capacity())
        };
        assert_eq!(caps(&mut lo, served[0].0), (4096, 2048), "the first: large");
        assert_eq!(caps(&mut lo, served[1].0), (1024, 512), "the second: lean");
        // The large one closes: a spare, while the listener, one
        // connection held past `after`, makes a lean socket.
        let (id, c) = served.remove(0);
        close_both(&mut lo, id, c, t);
        turns_within(&mut lo, &mut t, Duration::from_millis(500), MAX);
        assert_eq!(lo.listeners[0].spares(), 0, "the large spare went for the lean socket");
        let c = client_to_80(&mut lo, 40002);
        turns_within(&mut lo, &mut t, Duration::from_millis(200), MAX);
        let (h, _) = lo.listeners[0]
            .take_established(&mut lo.sockets, core::task::Waker::noop())
            .expect("accepted");
        assert_eq!(lo.sockets.get::<stcp::Socket>(h).send_capacity(), 512);
        assert_eq!(lo.sockets.get::<stcp::Socket>(c).state(), stcp::State::Established);
    }

    /// Two connected sockets on the loopback, each with `buf` bytes to
    /// receive and to send, acknowledging every segment at once.
    fn pair(lo: &mut Iface, buf: usize) -> (SocketHandle, SocketHandle) {
        use smoltcp::socket::tcp::{Socket, SocketBuffer};
        let socket = || {
            let mut s =
                Socket::new(SocketBuffer::new(vec![0; buf]), SocketBuffer::new(vec![0; buf]));
            s.set_ack_delay(None);
            s.set_nagle_enabled(false);
            s
        };
        let mut server = socket();
        server.listen(7).unwrap();
        let server = lo.sockets.add(server);
        let mut client = socket();
        client.connect(lo.iface.context(), (IpAddress::v4(127, 0, 0, 1), 7), 49500).unwrap();
        let client = lo.sockets.add(client);
        let t0 = Instant::now();
        for _ in 0..16 {
            lo.poll_frames(smol_now(t0), false);
        }
        let s = lo.sockets.get::<smoltcp::socket::tcp::Socket>(server);
        assert_eq!(s.state(), smoltcp::socket::tcp::State::Established);
        (server, client)
    }

    /// Egress passes of one `poll_frames`, and the server's bytes once
    /// a second one took what the first sent.
    fn passes_to_send(
        lo: &mut Iface,
        client: SocketHandle,
        server: SocketHandle,
        n: usize,
    ) -> (u64, usize) {
        use smoltcp::socket::tcp::Socket;
        let ts = smol_now(Instant::now());
        let data = vec![7u8; n];
        assert_eq!(lo.sockets.get_mut::<Socket>(client).send_slice(&data), Ok(n));
        let before = egress_passes::made();
        lo.poll_frames(ts, false);
        let passes = egress_passes::made() - before;
        lo.poll_frames(ts, false);
        let got = lo.sockets.get_mut::<Socket>(server).recv(|b| (b.len(), b.len())).unwrap();
        (passes, got)
    }

    /// A socket that sent a short segment has sent all it could: one pass
    /// over the sockets. One that sent a full one may have more: passes
    /// until none, and everything leaves in the one poll.
    #[test]
    fn a_short_reply_takes_one_egress_pass_and_a_stream_all_it_needs() {
        let _x = crate::task::tests::EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let mut lo = loopback(Instant::now());
        let (server, client) = pair(&mut lo, 64 * 1024);
        assert_eq!(passes_to_send(&mut lo, client, server, 5), (1, 5), "+OK\\r\\n");
        let mtu = lo.tap.capabilities().max_transmission_unit - 14;
        let n = 3 * mtu + 10;
        let (passes, got) = passes_to_send(&mut lo, client, server, n);
        assert_eq!(got, n, "all of it in one poll");
        assert!(passes >= 4, "{passes} passes for {n} bytes at an MTU of {mtu}");
    }

    /// Frames read on an idle turn that woke tasks leave the egress pass
    /// to the tasks' turn; with no task woken, or on a turn that ran tasks,
    /// the poll sends at once.
    #[test]
    fn frames_that_wake_tasks_leave_the_egress_to_their_turn() {
        use smoltcp::socket::tcp::Socket;
        let _x = crate::task::tests::EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let mut lo = loopback(Instant::now());
        let (server, client) = pair(&mut lo, 4096);
        let ts = smol_now(Instant::now());
        let exchange = |lo: &mut Iface, may_defer: bool| {
            lo.sockets.get_mut::<Socket>(client).send_slice(b"PING").unwrap();
            lo.poll_frames(ts, false);
            let before = egress_passes::made();
            // The server takes the request; its ACK (no delay) is due now.
            lo.poll_frames(ts, may_defer);
            let passes = egress_passes::made() - before;
            let mut buf = [0u8; 8];
            assert_eq!(lo.sockets.get_mut::<Socket>(server).recv_slice(&mut buf), Ok(4));
            passes
        };
        assert_eq!(exchange(&mut lo, true), 1, "no task woken");
        let task = crate::task::spawn(async {});
        assert!(crate::task::tasks_ready());
        assert_eq!(exchange(&mut lo, false), 1, "a turn that ran tasks");
        assert_eq!(exchange(&mut lo, true), 0, "left to the tasks' turn");
        // Which sends the ACK.
        let before = egress_passes::made();
        lo.poll_frames(ts, false);
        assert_eq!(egress_passes::made() - before, 1);
        crate::task::block_on(task);
        assert!(!crate::task::tasks_ready());
    }

    /// Adds 11 to the sequence number of a TCP segment from port 49500
    /// (checksums are not checked on the loopback).
    fn seq_past(f: &mut [u8]) {
        if f.len() >= 54 && f[12..14] == [8, 0] && f[23] == 6 {
            let tcp = 14 + usize::from(f[14] & 0x0f) * 4;
            if u16::from_be_bytes([f[tcp], f[tcp + 1]]) == 49500 {
                let seq = u32::from_be_bytes(f[tcp + 4..tcp + 8].try_into().unwrap());
                f[tcp + 4..tcp + 8].copy_from_slice(&seq.wrapping_add(11).to_be_bytes());
            }
        }
    }

    /// Both ends write without reading until both windows are closed, then
    /// one reads everything and keeps writing: the other must learn that
    /// its peer's window opened, though the segments that tell it are ones
    /// it refuses (see `tap::ZeroWindow`). The reader plays Linux after
    /// smoltcp shrank its window (its floor-rounded scaled window moves its
    /// right edge back by up to 2^scale - 1 bytes): its next sequence
    /// number is a few bytes past what the writer expects, so its ACKs and
    /// window updates are refused as out of window, and so are its
    /// probes. smoltcp alone takes nothing from them, and the two wait for
    /// each other for good.
    #[test]
    fn closed_windows_both_ways_open_again() {
        use smoltcp::socket::tcp::Socket;
        let mut lo = loopback(Instant::now());
        let (a, b) = pair(&mut lo, 4096);
        let t0 = Instant::now();
        let mut t = t0;
        let chunk = [7u8; 1024];
        // Fill both ways; time passes, so that each end probes the other's
        // closed window (smoltcp's probes carry a byte of data).
        for _ in 0..400 {
            for h in [a, b] {
                let _ = lo.sockets.get_mut::<Socket>(h).send_slice(&chunk);
            }
            lo.poll_frames(smol_now(t), false);
            t = t + Duration::from_millis(50);
        }
        for h in [a, b] {
            let s = lo.sockets.get::<Socket>(h);
            assert_eq!(s.recv_queue(), 4096, "{h}: receive buffer full");
            assert_eq!(s.send_queue(), 4096, "{h}: send buffer full");
        }
        // `b` takes everything, and both go on writing; from now on `b`'s
        // segments start 11 bytes past where `a` expects.
        lo.tap.loop_hook = Some(seq_past);
        let mut got = 0usize;
        let mut sink = [0u8; 4096];
        for _ in 0..400 {
            let _ = lo.sockets.get_mut::<Socket>(a).send_slice(&chunk);
            let s = lo.sockets.get_mut::<Socket>(b);
            got += s.recv_slice(&mut sink).unwrap_or(0);
            let _ = s.send_slice(&chunk);
            lo.poll_frames(smol_now(t), false);
            t = t + Duration::from_millis(50);
        }
        // What `b` held, and then what `a` goes on writing (without the
        // device's help: what `b` held and `a`'s probes, a byte each).
        assert!(got > 4 * 4096, "`a` sends on once `b` reads: {got} bytes");
    }

    /// One network turn of `lo` at `t`, as [`poll`] gives it: parked
    /// deadlines, frames in and out until the loopback is quiet, a sweep.
    fn turn(lo: &mut Iface, t: Instant) {
        let ts = smol_now(t);
        lo.streams.unpark_due(ts, &mut lo.sockets, &mut lo.tap.parked);
        lo.poll_frames(ts, false);
        for _ in 0..64 {
            if !lo.tap.has_looped() {
                break;
            }
            lo.poll_frames(ts, false);
        }
        lo.streams.sweep(ts, &mut lo.iface, &mut lo.sockets, &mut lo.tap.parked);
    }

    /// Turns every 50 ms for `d` from `*t` on.
    fn turns(lo: &mut Iface, t: &mut Instant, d: Duration) {
        let end = *t + d;
        while *t < end {
            *t = *t + Duration::from_millis(50);
            turn(lo, *t);
        }
    }

    /// A connected pair on the loopback, both ends named as streams.
    fn streams(lo: &mut Iface) -> (park::Id, park::Id) {
        let (server, client) = pair(lo, 4096);
        (lo.streams.add(server), lo.streams.add(client))
    }

    fn tcp(lo: &mut Iface, id: park::Id) -> &mut stcp::Socket<'static> {
        let h = lo.streams.handle(id, &mut lo.sockets, &mut lo.tap.parked);
        lo.sockets.get_mut::<stcp::Socket>(h)
    }

    const SWEEPS: Duration = Duration::from_millis(2 * park::SWEEP.total_millis());

    #[test]
    fn idle_streams_park_and_a_segment_brings_its_own_back() {
        let mut lo = loopback(Instant::now());
        let (server, client) = streams(&mut lo);
        let mut t = Instant::now();
        let before = lo.sockets.iter().count();
        turns(&mut lo, &mut t, SWEEPS);
        assert!(lo.streams.is_parked(server) && lo.streams.is_parked(client));
        assert_eq!(lo.sockets.iter().count(), before - 2, "out of smoltcp's set");
        assert_eq!(lo.tap.parked.len(), 2);
        // Peeking (state, wakers) leaves a socket parked.
        assert_eq!(lo.streams.peek(server, &mut lo.sockets).state(), stcp::State::Established);
        assert!(lo.streams.is_parked(server));
        // A write brings the writer back; its segment brings the reader
        // back before smoltcp sees it, and the reader's ACK reaches the
        // writer.
        assert_eq!(tcp(&mut lo, client).send_slice(b"hello"), Ok(5));
        assert!(!lo.streams.is_parked(client) && lo.streams.is_parked(server));
        turn(&mut lo, t);
        assert!(!lo.streams.is_parked(server), "the segment brought it back");
        let mut buf = [0u8; 8];
        assert_eq!(tcp(&mut lo, server).recv_slice(&mut buf), Ok(5));
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(tcp(&mut lo, client).send_queue(), 0, "acknowledged");
        // Idle again: parked again, and the answer goes the other way.
        turns(&mut lo, &mut t, SWEEPS);
        assert_eq!(lo.streams.parked(), 2);
        assert_eq!(tcp(&mut lo, server).send_slice(b"world"), Ok(5));
        turn(&mut lo, t);
        assert_eq!(tcp(&mut lo, client).recv_slice(&mut buf), Ok(5));
        assert_eq!(lo.streams.unparks, 4);
    }

    #[test]
    fn a_stream_the_application_uses_every_sweep_never_parks() {
        let mut lo = loopback(Instant::now());
        let (server, client) = streams(&mut lo);
        let mut t = Instant::now();
        let mut buf = [0u8; 8];
        for _ in 0..20 {
            // One exchange per sweep: the application reads and writes.
            assert_eq!(tcp(&mut lo, client).send_slice(b"ping"), Ok(4));
            turns(&mut lo, &mut t, SWEEPS / 2);
            assert_eq!(tcp(&mut lo, server).recv_slice(&mut buf), Ok(4));
            let _ = tcp(&mut lo, client);
        }
        assert_eq!(lo.streams.parks, 0, "busy streams never move");
        // Unacknowledged data keeps a socket active too: the client's
        // segments are lost (the loopback drops them), so its send buffer
        // keeps them.
        lo.tap.loop_hook = Some(|f| f.fill(0));
        assert_eq!(tcp(&mut lo, client).send_slice(b"lost"), Ok(4));
        turns(&mut lo, &mut t, 2 * SWEEPS);
        assert!(!lo.streams.is_parked(client), "data in flight");
        assert!(lo.streams.is_parked(server), "nothing to do");
    }

    #[test]
    fn a_parked_streams_keep_alive_still_fires() {
        let mut lo = loopback(Instant::now());
        let (server, client) = streams(&mut lo);
        tcp(&mut lo, server).set_keep_alive(Some(smoltcp::time::Duration::from_secs(2)));
        let mut t = Instant::now();
        turns(&mut lo, &mut t, SWEEPS);
        assert_eq!(lo.streams.parked(), 2);
        let first = lo.streams.deadline().expect("the keep-alive's deadline");
        assert!(first > smol_now(t));
        assert!(poll_at_of(&mut lo, t).is_some_and(|d| d <= from_smol(first)));
        // Past it: the keep-alive goes (the client's ACK answers it), and
        // both park again, the server with the next keep-alive's deadline.
        turns(&mut lo, &mut t, Duration::from_secs(3));
        assert!(lo.streams.unparks >= 2, "brought back for the keep-alive and its answer");
        assert_eq!(lo.streams.parked(), 2);
        assert!(lo.streams.deadline().expect("the next one") > first);
        assert_eq!(lo.streams.peek(server, &mut lo.sockets).state(), stcp::State::Established);
        assert_eq!(lo.streams.peek(client, &mut lo.sockets).state(), stcp::State::Established);
    }

    /// The earliest time `lo` needs polling, as [`poll_at`] counts it.
    fn poll_at_of(lo: &mut Iface, t: Instant) -> Option<Instant> {
        let ts = smol_now(t);
        [lo.iface.poll_at(ts, &lo.sockets), lo.streams.deadline()]
            .into_iter()
            .flatten()
            .min()
            .map(from_smol)
    }

    #[test]
    fn a_parked_streams_timeout_still_aborts_it() {
        let mut lo = loopback(Instant::now());
        let (server, client) = streams(&mut lo);
        tcp(&mut lo, server).set_timeout(Some(smoltcp::time::Duration::from_secs(2)));
        let mut t = Instant::now();
        turns(&mut lo, &mut t, SWEEPS);
        assert_eq!(lo.streams.parked(), 2);
        turns(&mut lo, &mut t, Duration::from_secs(3));
        // smoltcp aborted it (a reset), which closed the client too.
        assert_eq!(lo.streams.peek(server, &mut lo.sockets).state(), stcp::State::Closed);
        assert_eq!(lo.streams.peek(client, &mut lo.sockets).state(), stcp::State::Closed);
    }

    #[test]
    fn a_reset_or_a_fin_for_a_parked_stream_reaches_it() {
        let mut lo = loopback(Instant::now());
        let (server, client) = streams(&mut lo);
        let mut t = Instant::now();
        turns(&mut lo, &mut t, SWEEPS);
        tcp(&mut lo, client).close();
        turn(&mut lo, t);
        assert_eq!(lo.streams.peek(server, &mut lo.sockets).state(), stcp::State::CloseWait);
        let mut lo = loopback(Instant::now());
        let (server, client) = streams(&mut lo);
        let mut t = Instant::now();
        turns(&mut lo, &mut t, SWEEPS);
        assert!(lo.streams.is_parked(server));
        tcp(&mut lo, client).abort();
        turn(&mut lo, t);
        assert_eq!(lo.streams.peek(server, &mut lo.sockets).state(), stcp::State::Closed);
    }

    #[test]
    fn a_frame_that_cannot_be_told_brings_every_parked_stream_back() {
        let mut lo = loopback(Instant::now());
        let (a, b) = streams(&mut lo);
        let mut t = Instant::now();
        turns(&mut lo, &mut t, SWEEPS);
        assert_eq!(lo.streams.parked(), 2);
        // An IPv4 TCP fragment.
        let tx = lo.tap.transmit(smol_now(t)).expect("room");
        tx.consume(60, |f| {
            f.fill(0);
            f[12..14].copy_from_slice(&[8, 0]);
            f[14] = 0x45;
            f[16..18].copy_from_slice(&46u16.to_be_bytes());
            f[20] = 0x20;
            f[23] = 6;
        });
        turn(&mut lo, t);
        assert!(!lo.streams.is_parked(a) && !lo.streams.is_parked(b));
        assert!(lo.tap.parked.is_empty());
        // A frame for nobody parked (ARP-like garbage) leaves them be.
        turns(&mut lo, &mut t, SWEEPS);
        queue(&mut lo, 1, 60);
        turn(&mut lo, t);
        assert_eq!(lo.streams.parked(), 2);
    }
}
