//! The std guests' resolver (libos-std's `libc/resolv.rs`, compiled here
//! as it is, without the guest's UDP transport): the DNS reply parser on
//! any datagram, as the reply to the A question of each of a few names
//! and to a PTR question, and the `resolv.conf` and `/etc/hosts` parsers
//! on the same bytes.
//!
//! Asserts what the resolver relies on: a reply taken as addresses (host
//! names) has at least one, no more than the datagram could hold, and
//! names of bounded length; the configuration respects glibc's limits.
//!
//! Input: a datagram; its own first two bytes are taken as the query's
//! id, so that the header check passes and the parser goes deeper.

#![no_main]

extern crate alloc;

#[allow(dead_code)]
#[path = "../../libos/std/src/libc/resolv.rs"]
mod resolv;

use libfuzzer_sys::fuzz_target;
use resolv::{Conf, Question, Reply, hosts_lookup, hosts_name_of, parse_reply};

const NAMES: [&str; 4] = ["db", "db.svc.cluster.local", "a.b", "x."];

/// At most 255 wire bytes, each written as at most 4 (`\DDD`).
const NAME_TEXT_MAX: usize = 4 * 255;

fuzz_target!(|data: &[u8]| {
    let id =
        u16::from_be_bytes([data.first().copied().unwrap_or(0), data.get(1).copied().unwrap_or(0)]);
    for name in NAMES {
        if let Some(Reply::Addresses(canon, addrs)) = parse_reply(data, id, name, Question::A) {
            assert!(!addrs.is_empty());
            assert!(
                addrs.len() <= data.len() / 11,
                "{} addresses in {} bytes",
                addrs.len(),
                data.len()
            );
            assert!(canon.len() <= NAME_TEXT_MAX);
        }
    }
    if let Some(Reply::Names(names)) = parse_reply(data, id, "4.3.2.1.in-addr.arpa", Question::Ptr)
    {
        assert!(!names.is_empty() && names.len() <= data.len() / 11);
        assert!(names.iter().all(|n| n.len() <= NAME_TEXT_MAX));
    }
    let conf = Conf::parse(data);
    assert!(conf.servers.len() <= resolv::MAXNS && conf.search.len() <= resolv::MAXDNSRCH);
    assert!(conf.ndots <= 15 && (1..=5).contains(&conf.attempts));
    assert!((1..=30).contains(&conf.timeout.as_secs()));
    for name in NAMES {
        if let Some((_, addrs)) = hosts_lookup(data, name) {
            assert!(!addrs.is_empty());
        }
        let _ = resolv::candidates(name, &conf);
    }
    let _ = hosts_name_of(data, core::net::IpAddr::from([10, 0, 0, 1]));
});
