//! Hashes: HSET, HMSET, HGET, HMGET, HDEL, HGETALL, HKEYS, HVALS, HLEN,
//! HEXISTS, HINCRBY.
//!
//! Fields keep insertion order, and up to [`SMALL_HASH`] fields a deletion
//! keeps the order of the rest: what Redis's small hashes (listpacks) do,
//! so `HGETALL` lists fields in the same order as Redis for them.

use super::{Done, Engine, int_arg, wrong_arity, wrongtype};
use crate::reply::{self, Out};
use crate::resp::parse_i64;
use crate::store::{HashValue, SMALL_HASH, Value};

/// The hash at `key`, created if missing; `None` (with the error written)
/// for another type.
fn hash_for_write<'e>(e: &'e mut Engine, key: &[u8], out: &mut Out) -> Option<&'e mut HashValue> {
    if e.keys.value(key).is_none() {
        let seed = e.random();
        let h = HashValue::with_hasher(foldhash::fast::FixedState::with_seed(seed));
        e.keys.insert(key, Value::Hash(alloc::boxed::Box::new(h)), None);
    }
    match e.keys.value(key) {
        Some(Value::Hash(h)) => Some(h),
        _ => {
            wrongtype(out);
            None
        }
    }
}

fn set_fields(e: &mut Engine, argv: &[&[u8]], out: &mut Out, name: &str) -> Option<i64> {
    if argv.len() % 2 == 1 {
        wrong_arity(out, name);
        return None;
    }
    let h = hash_for_write(e, argv[1], out)?;
    let mut created = 0;
    for pair in argv[2..].chunks_exact(2) {
        if h.insert(pair[0].to_vec(), pair[1].to_vec()).is_none() {
            created += 1;
        }
    }
    Some(created)
}

pub(crate) fn hset(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    match set_fields(e, argv, out, "hset") {
        Some(n) => {
            reply::int(out, n);
            Done::Write
        }
        None => Done::Read,
    }
}

pub(crate) fn hmset(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    match set_fields(e, argv, out, "hmset") {
        Some(_) => {
            reply::ok(out);
            Done::Write
        }
        None => Done::Read,
    }
}

/// The hash at `key` for reading: `Ok(None)` if missing, `Err` (with the
/// error written) for another type.
fn hash_for_read<'e>(
    e: &'e mut Engine,
    key: &[u8],
    out: &mut Out,
) -> Result<Option<&'e HashValue>, ()> {
    match e.lookup_read(key).map(|en| &en.value) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => {
            wrongtype(out);
            Err(())
        }
    }
}

pub(crate) fn hget(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if let Ok(h) = hash_for_read(e, argv[1], out) {
        match h.and_then(|h| h.get(argv[2])) {
            Some(v) => reply::bulk(out, v),
            None => reply::nil(out),
        }
    }
    Done::Read
}

pub(crate) fn hmget(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if let Ok(h) = hash_for_read(e, argv[1], out) {
        reply::array(out, argv.len() - 2);
        for f in &argv[2..] {
            match h.and_then(|h| h.get(*f)) {
                Some(v) => reply::bulk(out, v),
                None => reply::nil(out),
            }
        }
    }
    Done::Read
}

pub(crate) fn hdel(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let h = match e.keys.value(argv[1]) {
        None => {
            reply::int(out, 0);
            return Done::Read;
        }
        Some(Value::Hash(h)) => h,
        Some(_) => return wrongtype(out),
    };
    let mut n = 0;
    for f in &argv[2..] {
        let removed = if h.len() <= SMALL_HASH {
            h.shift_remove(*f).is_some()
        } else {
            h.swap_remove(*f).is_some()
        };
        n += i64::from(removed);
    }
    e.keys.remove_if_empty(argv[1]);
    reply::int(out, n);
    if n > 0 { Done::Write } else { Done::Read }
}

/// What of each field HGETALL, HKEYS and HVALS list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Both,
    Keys,
    Values,
}

fn list(e: &mut Engine, argv: &[&[u8]], out: &mut Out, part: Part) -> Done {
    if let Ok(h) = hash_for_read(e, argv[1], out) {
        let Some(h) = h else {
            reply::array(out, 0);
            return Done::Read;
        };
        reply::array(out, if part == Part::Both { h.len() * 2 } else { h.len() });
        for (f, v) in h {
            if part != Part::Values {
                reply::bulk(out, f);
            }
            if part != Part::Keys {
                reply::bulk(out, v);
            }
        }
    }
    Done::Read
}

pub(crate) fn hgetall(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    list(e, argv, out, Part::Both)
}

pub(crate) fn hkeys(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    list(e, argv, out, Part::Keys)
}

pub(crate) fn hvals(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    list(e, argv, out, Part::Values)
}

pub(crate) fn hlen(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if let Ok(h) = hash_for_read(e, argv[1], out) {
        reply::int(out, h.map_or(0, |h| h.len() as i64));
    }
    Done::Read
}

pub(crate) fn hexists(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if let Ok(h) = hash_for_read(e, argv[1], out) {
        reply::int(out, i64::from(h.is_some_and(|h| h.contains_key(argv[2]))));
    }
    Done::Read
}

pub(crate) fn hincrby(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let Some(by) = int_arg(argv[3], out) else { return Done::Read };
    let Some(h) = hash_for_write(e, argv[1], out) else { return Done::Read };
    let old = match h.get(argv[2]) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => {
                reply::error(out, b"ERR hash value is not an integer");
                e.keys.remove_if_empty(argv[1]);
                return Done::Read;
            }
        },
    };
    let Some(new) = old.checked_add(by) else {
        reply::error(out, b"ERR increment or decrement would overflow");
        e.keys.remove_if_empty(argv[1]);
        return Done::Read;
    };
    let mut buf = [0u8; 20];
    h.insert(argv[2].to_vec(), reply::format_int(&mut buf, new).to_vec());
    reply::int(out, new);
    Done::Write
}
