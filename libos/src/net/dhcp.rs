//! DHCPv4 for an interface without a static address: smoltcp's client, and
//! what the user is told about it.
//!
//! A guest that waits for a lease is not reachable, and a user who sees
//! nothing cannot tell a slow server from none at all, so the console says
//! what happens, at the default log level:
//!
//! * when the network first runs (the executor's first turn), a notice
//!   (see [`crate::console::notice`]):
//!   `net service0: waiting for a DHCP lease (MAC 02:..)`, the MAC being
//!   what a DHCP server keys its leases by (a guest that never runs the
//!   executor never asks for a lease, and says nothing);
//! * when the lease comes, a notice with the address:
//!   `net service0: 10.0.0.5/24 by DHCP, gateway 10.0.0.1, mtu 1500`;
//! * while none comes, a warning after [`FIRST_REMINDER`], then every
//!   [`REMINDER_EVERY`]: `net service0: still no DHCP lease after 70 s`;
//! * a warning when a lease the interface held is lost (expired, or refused
//!   on renewal), and the reminders start again from then.
//!
//! smoltcp's client reports "deconfigured" once at start, before it has
//! ever had a lease: that is not a lost lease, and says nothing. The
//! decisions are in [`Report`], which does not touch the network and is
//! tested on the host.

use core::time::Duration;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::wire::Ipv4Cidr;

use super::{Iface, Source};
use crate::time::Instant;

/// How long an interface waits for its first lease before a warning.
pub(crate) const FIRST_REMINDER: Duration = Duration::from_secs(10);
/// How often the warning comes again while there is still no lease.
pub(crate) const REMINDER_EVERY: Duration = Duration::from_secs(60);

/// What the user is told about an interface's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Say {
    /// Nothing new.
    Nothing,
    /// The client starts: waiting for a lease.
    Waiting,
    /// A lease was granted (or changed): configure the interface.
    Leased,
    /// Still no lease, waiting for this long.
    StillWaiting(Duration),
    /// The lease on this address was lost: deconfigure the interface.
    Lost(Ipv4Cidr),
}

/// What an interface's DHCP client has had, and when to remind the user
/// that it is still waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    /// Whether the client has started (the first turn of the executor).
    started: bool,
    /// The address leased, while there is a lease.
    lease: Option<Ipv4Cidr>,
    /// Since when the interface has been without a lease (boot, or the
    /// loss of one).
    waiting_since: Instant,
    /// When to say it is still waiting, while it is.
    next_reminder: Option<Instant>,
}

impl Report {
    /// A client that has not started.
    pub(crate) const fn new() -> Self {
        Self {
            started: false,
            lease: None,
            waiting_since: Instant::from_duration(Duration::ZERO),
            next_reminder: None,
        }
    }

    /// Starts waiting for a lease at `now`, the first time only: says
    /// [`Say::Waiting`] then, [`Say::Nothing`] after.
    pub(crate) fn start(&mut self, now: Instant) -> Say {
        if self.started {
            return Say::Nothing;
        }
        self.wait_from(now);
        self.started = true;
        Say::Waiting
    }

    fn wait_from(&mut self, now: Instant) {
        self.lease = None;
        self.waiting_since = now;
        self.next_reminder = Some(now + FIRST_REMINDER);
    }

    /// The client's event at `now`: `Some` a lease (new or changed), `None`
    /// deconfigured.
    pub(crate) fn event(&mut self, lease: Option<Ipv4Cidr>, now: Instant) -> Say {
        match (lease, self.lease) {
            (Some(cidr), _) => {
                self.lease = Some(cidr);
                self.next_reminder = None;
                Say::Leased
            }
            // smoltcp's first poll, or a restart of a discovery that never
            // got anywhere: there was nothing to lose.
            (None, None) => Say::Nothing,
            (None, Some(old)) => {
                self.wait_from(now);
                Say::Lost(old)
            }
        }
    }

    /// Whether it is time, at `now`, to say that there is still no lease.
    pub(crate) fn tick(&mut self, now: Instant) -> Say {
        match self.next_reminder {
            Some(at) if now >= at => {
                self.next_reminder = Some(now + REMINDER_EVERY);
                Say::StillWaiting(now.duration_since(self.waiting_since))
            }
            _ => Say::Nothing,
        }
    }

    /// When [`tick`](Self::tick) has something to say next, if ever.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.next_reminder
    }
}

/// An interface's DHCP client: smoltcp's socket and its [`Report`].
#[derive(Debug)]
pub(crate) struct Dhcp {
    handle: SocketHandle,
    report: Report,
}

impl Dhcp {
    /// Adds a DHCP client to `sockets`.
    pub(crate) fn new(sockets: &mut SocketSet<'static>) -> Self {
        Self { handle: sockets.add(dhcpv4::Socket::new()), report: Report::new() }
    }

    /// When the client has something to say next without a frame arriving.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.report.deadline()
    }
}

impl Iface {
    /// Takes the DHCP client's news, if any, into the interface's
    /// configuration, and tells the user (see the module's documentation).
    pub(super) fn handle_dhcp(&mut self, now: Instant) {
        let Some(dhcp) = &mut self.dhcp else { return };
        if dhcp.report.start(now) == Say::Waiting {
            let m = self.mac;
            crate::console::notice(
                module_path!(),
                format_args!(
                    "net {}: waiting for a DHCP lease (MAC \
                     {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x})",
                    self.name, m[0], m[1], m[2], m[3], m[4], m[5]
                ),
            );
        }
        let event = self.sockets.get_mut::<dhcpv4::Socket>(dhcp.handle).poll().map(|e| match e {
            dhcpv4::Event::Configured(cfg) => Some((cfg.address, cfg.router)),
            dhcpv4::Event::Deconfigured => None,
        });
        let say = match event {
            Some(lease) => dhcp.report.event(lease.map(|(cidr, _)| cidr), now),
            None => dhcp.report.tick(now),
        };
        match (say, event) {
            (Say::Leased, Some(Some((cidr, router)))) => {
                self.configure(cidr, router, None, Source::Dhcp);
            }
            (Say::Lost(cidr), _) => {
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                self.gateway = None;
                self.tap.gateway = None;
                log::warn!(
                    "net {}: lost its DHCP lease on {cidr}; waiting for a new one",
                    self.name
                );
            }
            (Say::StillWaiting(waited), _) => {
                log::warn!("net {}: still no DHCP lease after {} s", self.name, waited.as_secs());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn at(secs: u64) -> Instant {
        Instant::from_duration(Duration::from_secs(secs))
    }

    /// A report that started at `secs`.
    fn started(secs: u64) -> Report {
        let mut r = Report::new();
        assert_eq!(r.start(at(secs)), Say::Waiting);
        r
    }

    #[test]
    fn it_says_it_waits_once_when_it_starts() {
        let mut r = Report::new();
        assert_eq!(r.deadline(), None);
        assert_eq!(r.start(at(1)), Say::Waiting);
        assert_eq!(r.start(at(2)), Say::Nothing);
        assert_eq!(r.deadline(), Some(at(11)));
    }

    fn cidr(last: u8) -> Ipv4Cidr {
        Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, last), 24)
    }

    #[test]
    fn the_deconfigured_event_before_any_lease_says_nothing() {
        let mut r = started(1);
        assert_eq!(r.event(None, at(1)), Say::Nothing);
        assert_eq!(r.event(None, at(5)), Say::Nothing);
        // ... and does not put off the first reminder.
        assert_eq!(r.deadline(), Some(at(11)));
    }

    #[test]
    fn a_lease_is_taken_and_stops_the_reminders() {
        let mut r = started(0);
        assert_eq!(r.event(Some(cidr(5)), at(2)), Say::Leased);
        assert_eq!(r.deadline(), None);
        assert_eq!(r.tick(at(100)), Say::Nothing);
        // A changed lease is taken too.
        assert_eq!(r.event(Some(cidr(6)), at(200)), Say::Leased);
    }

    #[test]
    fn without_a_lease_it_says_so_after_10_s_then_every_60_s() {
        let mut r = started(3);
        assert_eq!(r.tick(at(3)), Say::Nothing);
        assert_eq!(r.tick(at(12)), Say::Nothing);
        assert_eq!(r.deadline(), Some(at(13)));
        assert_eq!(r.tick(at(13)), Say::StillWaiting(Duration::from_secs(10)));
        assert_eq!(r.tick(at(13)), Say::Nothing, "once per deadline");
        assert_eq!(r.deadline(), Some(at(73)));
        assert_eq!(r.tick(at(72)), Say::Nothing);
        assert_eq!(r.tick(at(73)), Say::StillWaiting(Duration::from_secs(70)));
        // A late turn of the executor says it once, and counts from then.
        assert_eq!(r.tick(at(500)), Say::StillWaiting(Duration::from_secs(497)));
        assert_eq!(r.deadline(), Some(at(560)));
    }

    #[test]
    fn a_lease_held_and_lost_is_said_and_the_wait_starts_again() {
        let mut r = started(0);
        assert_eq!(r.event(Some(cidr(5)), at(1)), Say::Leased);
        assert_eq!(r.event(None, at(3600)), Say::Lost(cidr(5)));
        assert_eq!(r.deadline(), Some(at(3610)));
        assert_eq!(r.tick(at(3610)), Say::StillWaiting(Duration::from_secs(10)));
        // Lost once: a second deconfigured event has nothing to lose.
        assert_eq!(r.event(None, at(3620)), Say::Nothing);
        assert_eq!(r.event(Some(cidr(5)), at(3630)), Say::Leased);
        assert_eq!(r.deadline(), None);
    }
}
