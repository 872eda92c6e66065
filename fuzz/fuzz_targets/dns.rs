//! The std guests' resolver (libos-std's `libc/resolv.rs`, compiled here
//! as it is, without the guest's UDP transport): the DNS reply parser on
//! any datagram, as the reply to the question of each of a few names, and
//! the `resolv.conf` and `/etc/hosts` parsers on the same bytes.
//!
//! Asserts what the resolver relies on: a reply taken as addresses has at
//! least one, no more than the datagram could hold, and a canonical name
//! of bounded length; the configuration respects glibc's limits.
//!
//! Input: a datagram; its own first two bytes are taken as the query's
//! id, so that the header check passes and the parser goes deeper.

#![no_main]

extern crate alloc;

#[allow(dead_code)]
#[path = "../../libos/std/src/libc/resolv.rs"]
mod resolv;

use libfuzzer_sys::fuzz_target;
use resolv::{Conf, Reply, hosts_lookup, parse_reply};

const NAMES: [&str; 4] = ["db", "db.svc.cluster.local", "a.b", "x."];

fuzz_target!(|data: &[u8]| {
    let id =
        u16::from_be_bytes([data.first().copied().unwrap_or(0), data.get(1).copied().unwrap_or(0)]);
    for name in NAMES {
        if let Some(Reply::Addresses(canon, addrs)) = parse_reply(data, id, name) {
            assert!(!addrs.is_empty());
            assert!(
                addrs.len() <= data.len() / 11,
                "{} addresses in {} bytes",
                addrs.len(),
                data.len()
            );
            // At most 255 wire bytes, each written as at most 4 (\DDD).
            assert!(canon.len() <= 4 * 255);
        }
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
});
