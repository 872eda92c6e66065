//! Settings that bound what clients may cost, with defaults derived from
//! the heap: the guest has no swap and no other memory, so Redis's
//! defaults for normal clients (no output limit, no limit on clients'
//! memory) would let one client abort it.
//!
//! How the heap `H` is shared by default, with `M` = `KVD_MAXMEMORY`
//! (¾ of `H` unless set):
//!
//! | what | bound | default |
//! |---|---|---|
//! | dataset | writes refused above `M` (counting client buffers too) | ¾ H |
//! | all clients' buffers (`maxmemory-clients`) | `(H − M) / 2`, at least 1 MiB | ⅛ H |
//! | one client's output, hard (`client-output-buffer-limit`) | half of that | 1/16 H |
//! | one client's output, soft, for 60 s | an eighth of it | 1/64 H |
//! | one client's input (`client-query-buffer-limit`) | half of it, at most 1 GiB | 1/16 H |
//! | connections (`maxclients`) | 112 KiB each (socket buffers, first input chunk) in 1/16 H, at most 10000 | |
//!
//! The rest (1/16 H) holds the listener's backlog, the log's buffers and
//! the allocator's slack, and client buffers never grow into the last
//! sixteenth of the heap whatever the settings (`crate::client`).

use crate::commands::OutputLimit;

/// Most connections by default, as Redis.
pub const MAXCLIENTS: u64 = 10_000;
/// What one connection costs before it sends anything: its socket buffers
/// (64 KiB in, 32 KiB out) and its first input chunk (16 KiB).
pub const CONNECTION_COST: u64 = 112 * 1024;
/// Seconds a client may stay over the soft output limit, by default.
pub const SOFT_SECONDS: u64 = 60;

/// The defaults for a heap of `heap` bytes and a `maxmemory` (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// All clients' buffers together.
    pub maxmemory_clients: u64,
    /// One client's output.
    pub output_limit: OutputLimit,
    /// One client's input.
    pub query_buffer_limit: u64,
    /// Connections at once.
    pub maxclients: u64,
}

impl Defaults {
    /// See the module docs.
    pub fn new(heap: u64, maxmemory: u64) -> Self {
        let headroom =
            if maxmemory == 0 || maxmemory >= heap { heap / 4 } else { heap - maxmemory };
        let clients = (headroom / 2).max(1 << 20);
        Self {
            maxmemory_clients: clients,
            output_limit: OutputLimit {
                hard: clients / 2,
                soft: clients / 8,
                soft_ms: SOFT_SECONDS * 1000,
            },
            query_buffer_limit: (clients / 2).min(1 << 30),
            maxclients: (heap / 16 / CONNECTION_COST).clamp(1, MAXCLIENTS),
        }
    }
}

/// A size: bytes, or with a suffix `k`/`kb`, `m`/`mb`, `g`/`gb` (powers
/// of 1024), any case.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').filter(|d| d.ends_with(['k', 'm', 'g'])).unwrap_or(&s);
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' => (&s[..s.len() - 1], 1 << 20),
        b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// `KVD_CLIENT_OUTPUT_BUFFER_LIMIT`: `<hard> <soft> <seconds>` as Redis's
/// `client-output-buffer-limit` takes them for a class, optionally
/// preceded by the class `normal` (the only one kvd has). Sizes as
/// [`parse_size`]; 0 disables a limit. The soft limit needs no more than
/// the hard one (a soft limit above it never applies).
pub fn parse_output_limit(s: &str) -> Option<OutputLimit> {
    let mut words = s.split_ascii_whitespace().peekable();
    if words.peek().is_some_and(|w| w.eq_ignore_ascii_case("normal")) {
        words.next();
    }
    let hard = parse_size(words.next()?)?;
    let soft = parse_size(words.next()?)?;
    let secs: u64 = words.next()?.parse().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some(OutputLimit { hard, soft, soft_ms: secs.checked_mul(1000)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("64KB"), Some(64 << 10));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size(" 2gb "), Some(2 << 30));
        for bad in ["", "k", "kb", "b", "1b", "-1", "+1", "1.5m", "1 m", "99999999999999999999g"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn output_limits() {
        let l = |hard, soft, soft_ms| Some(OutputLimit { hard, soft, soft_ms });
        assert_eq!(parse_output_limit("32mb 8mb 60"), l(32 << 20, 8 << 20, 60_000));
        assert_eq!(parse_output_limit("normal 1m 256k 1"), l(1 << 20, 256 << 10, 1000));
        assert_eq!(parse_output_limit("0 0 0"), l(0, 0, 0));
        for bad in ["", "1m", "1m 1m", "1m 1m x", "1m 1m 1 1", "pubsub 1m 1m 1", "1m 1m -1"] {
            assert_eq!(parse_output_limit(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_leave_room_in_the_heap() {
        for mib in [8u64, 64, 256, 512, 4096] {
            let heap = mib << 20;
            let maxmemory = heap / 4 * 3;
            let d = Defaults::new(heap, maxmemory);
            let connections = d.maxclients * CONNECTION_COST;
            // The dataset, every client's buffers and connections fit, with
            // a sixteenth left (for tiny heaps, the 1 MiB floor for clients
            // takes some of it).
            assert!(maxmemory + d.maxmemory_clients + connections <= heap - heap / 16 + (1 << 20));
            assert!(d.output_limit.hard <= d.maxmemory_clients / 2);
            assert!(d.output_limit.soft < d.output_limit.hard);
            assert!(d.query_buffer_limit <= d.maxmemory_clients / 2);
            assert!(d.maxclients >= 1);
        }
        assert_eq!(Defaults::new(256 << 20, 192 << 20).maxmemory_clients, 32 << 20);
        // A maxmemory at or above the heap (or none) leaves a quarter.
        assert_eq!(Defaults::new(256 << 20, 0).maxmemory_clients, 32 << 20);
        assert_eq!(Defaults::new(256 << 20, 1 << 40).maxmemory_clients, 32 << 20);
        assert_eq!(Defaults::new(1 << 40, 0).maxclients, MAXCLIENTS);
    }
}
