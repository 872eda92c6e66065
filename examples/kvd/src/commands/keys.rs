//! Keys: DEL, EXISTS, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL,
//! PERSIST, TYPE, KEYS, SCAN, DBSIZE, FLUSHDB, FLUSHALL.

use alloc::vec;

use super::strings::invalid_expire;
use super::{Done, Engine, eq_ic, int_arg, int_bytes, syntax_error};
use crate::glob;
use crate::reply::{self, Out};

pub(crate) fn del(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let mut n = 0;
    for key in &argv[1..] {
        // An expired key is removed by expiry (logged as such), not counted.
        if e.keys.contains(key) {
            e.keys.remove(key);
            n += 1;
        }
    }
    reply::int(out, n);
    if n > 0 { Done::Write } else { Done::Read }
}

pub(crate) fn exists(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let n = argv[1..].iter().filter(|k| e.keys.contains(k)).count();
    reply::int(out, n as i64);
    Done::Read
}

/// Seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: `relative` adds the time now.
fn expire_generic(
    e: &mut Engine,
    argv: &[&[u8]],
    out: &mut Out,
    unit: Unit,
    relative: bool,
    name: &str,
) -> Done {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &argv[3..] {
        if eq_ic(opt, "nx") {
            nx = true;
        } else if eq_ic(opt, "xx") {
            xx = true;
        } else if eq_ic(opt, "gt") {
            gt = true;
        } else if eq_ic(opt, "lt") {
            lt = true;
        } else {
            let mut msg = b"ERR Unsupported option ".to_vec();
            msg.extend_from_slice(opt);
            reply::error(out, &msg);
            return Done::Read;
        }
    }
    if nx && (xx || gt || lt) {
        reply::error(out, b"ERR NX and XX, GT or LT options at the same time are not compatible");
        return Done::Read;
    }
    if gt && lt {
        reply::error(out, b"ERR GT and LT options at the same time are not compatible");
        return Done::Read;
    }
    let Some(mut when) = int_arg(argv[2], out) else { return Done::Read };
    if unit == Unit::Seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return invalid_expire(out, name);
        }
        when *= 1000;
    }
    if relative {
        let Some(w) = when.checked_add(e.now() as i64) else {
            return invalid_expire(out, name);
        };
        when = w;
    }
    let key = argv[1];
    let Some(entry) = e.keys.get(key) else {
        reply::int(out, 0);
        return Done::Read;
    };
    let current = entry.expire_at.map(|t| t as i64);
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refused {
        reply::int(out, 0);
        return Done::Read;
    }
    reply::int(out, 1);
    if when <= e.now() as i64 && !e.keys.loading {
        e.keys.remove(key);
        e.log(vec![b"DEL".to_vec(), key.to_vec()]);
    } else {
        e.keys.set_expiry(key, Some(when.max(0) as u64));
        e.log(vec![b"PEXPIREAT".to_vec(), key.to_vec(), int_bytes(when)]);
    }
    Done::Read
}

pub(crate) fn expire(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    expire_generic(e, argv, out, Unit::Seconds, true, "expire")
}

pub(crate) fn pexpire(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    expire_generic(e, argv, out, Unit::Millis, true, "pexpire")
}

pub(crate) fn expireat(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    expire_generic(e, argv, out, Unit::Seconds, false, "expireat")
}

pub(crate) fn pexpireat(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    expire_generic(e, argv, out, Unit::Millis, false, "pexpireat")
}

fn ttl_generic(e: &mut Engine, argv: &[&[u8]], out: &mut Out, unit: Unit) -> Done {
    let now = e.now();
    match e.keys.get(argv[1]) {
        None => reply::int(out, -2),
        Some(en) => match en.expire_at {
            None => reply::int(out, -1),
            Some(t) => {
                let ms = t.saturating_sub(now) as i64;
                reply::int(out, if unit == Unit::Millis { ms } else { (ms + 500) / 1000 });
            }
        },
    }
    Done::Read
}

pub(crate) fn ttl(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    ttl_generic(e, argv, out, Unit::Seconds)
}

pub(crate) fn pttl(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    ttl_generic(e, argv, out, Unit::Millis)
}

pub(crate) fn persist(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let had = e.keys.get(argv[1]).is_some_and(|en| en.expire_at.is_some());
    if had {
        e.keys.set_expiry(argv[1], None);
    }
    reply::int(out, i64::from(had));
    if had { Done::Write } else { Done::Read }
}

pub(crate) fn type_(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let name = e.keys.get(argv[1]).map_or("none", |en| en.value.type_name());
    reply::simple(out, name);
    Done::Read
}

pub(crate) fn keys(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let pattern = argv[1];
    let all = pattern == b"*";
    // The elements go to a buffer bounded as the client's is, then after
    // the array's header: nothing proportional to the keyspace is
    // allocated beyond what the client may hold.
    let mut items = Out::with_limit(out.limit());
    let mut n = 0;
    for (k, _) in e.keys.iter() {
        if all || glob::matches(pattern, k) {
            reply::bulk(&mut items, k);
            n += 1;
            if items.overflowed() {
                break;
            }
        }
    }
    reply::array(out, n);
    out.append(&items);
    Done::Read
}

/// A cursor as Redis's `strtoul` reads it: digits with an optional sign
/// (`-1` wraps around), nothing else.
fn parse_cursor(s: &[u8]) -> Option<u64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

pub(crate) fn scan(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let Some(cursor) = parse_cursor(argv[1]) else {
        reply::error(out, b"ERR invalid cursor");
        return Done::Read;
    };
    let (mut count, mut pattern, mut type_name): (i64, Option<&[u8]>, Option<&[u8]>) =
        (10, None, None);
    let mut i = 2;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        if eq_ic(argv[i], "count") && more {
            let Some(n) = int_arg(argv[i + 1], out) else { return Done::Read };
            if n < 1 {
                return syntax_error(out);
            }
            count = n;
        } else if eq_ic(argv[i], "match") && more {
            pattern = Some(argv[i + 1]).filter(|p| *p != b"*");
        } else if eq_ic(argv[i], "type") && more {
            type_name = Some(argv[i + 1]);
        } else {
            return syntax_error(out);
        }
        i += 2;
    }
    // As in KEYS: the elements in a buffer bounded as the client's.
    let mut items = Out::with_limit(out.limit());
    let mut n = 0;
    let next = e.keys.scan(cursor, count.min(1 << 20) as usize, |k, en| {
        let type_ok = type_name.is_none_or(|t| eq_ic(t, en.value.type_name()));
        if type_ok && pattern.is_none_or(|p| glob::matches(p, k)) {
            reply::bulk(&mut items, k);
            n += 1;
        }
    });
    reply::array(out, 2);
    reply::bulk(out, alloc::format!("{next}").as_bytes());
    reply::array(out, n);
    out.append(&items);
    Done::Read
}

pub(crate) fn dbsize(e: &mut Engine, _argv: &[&[u8]], out: &mut Out) -> Done {
    reply::int(out, e.keys.len() as i64);
    Done::Read
}

fn flush(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    match argv.len() {
        1 => {}
        2 if eq_ic(argv[1], "sync") || eq_ic(argv[1], "async") => {}
        _ => return syntax_error(out),
    }
    e.keys.clear();
    reply::ok(out);
    Done::Write
}

pub(crate) fn flushdb(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    flush(e, argv, out)
}

pub(crate) fn flushall(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    flush(e, argv, out)
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_as_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"007"), Some(7));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"x"), None);
        assert_eq!(parse_cursor(b" 1"), None);
        assert_eq!(parse_cursor(b""), None);
    }
}
