//! Sets: SADD, SREM, SMEMBERS, SISMEMBER, SCARD, SPOP.
//!
//! Members keep insertion order. `SMEMBERS` of a set of at most
//! [`INTSET_MAX`] integers lists them in numeric order, as Redis does for
//! such sets (an intset); other sets come in insertion order, where Redis's
//! hash-table order is arbitrary.

use alloc::vec;
use alloc::vec::Vec;

use super::lists::positive_arg;
use super::{Done, Engine, syntax_error, wrongtype};
use crate::reply::{self, Out};
use crate::resp::parse_i64;
use crate::store::{SetValue, Value};

/// Redis's `set-max-intset-entries`.
pub const INTSET_MAX: usize = 512;

pub(crate) fn sadd(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let key = argv[1];
    if e.keys.value(key).is_none() {
        let seed = e.random();
        let s = SetValue::with_hasher(foldhash::fast::FixedState::with_seed(seed));
        e.keys.insert(key, Value::Set(alloc::boxed::Box::new(s)), None);
    }
    let set = match e.keys.value(key) {
        Some(Value::Set(s)) => s,
        _ => return wrongtype(out),
    };
    let added = argv[2..].iter().filter(|m| set.insert(m.to_vec())).count();
    reply::int(out, added as i64);
    if added > 0 { Done::Write } else { Done::Read }
}

pub(crate) fn srem(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let set = match e.keys.value(argv[1]) {
        None => {
            reply::int(out, 0);
            return Done::Read;
        }
        Some(Value::Set(s)) => s,
        Some(_) => return wrongtype(out),
    };
    let removed = argv[2..].iter().filter(|m| set.swap_remove(**m)).count();
    e.keys.remove_if_empty(argv[1]);
    reply::int(out, removed as i64);
    if removed > 0 { Done::Write } else { Done::Read }
}

/// The set at `key` for reading: `Ok(None)` if missing, `Err` (with the
/// error written) for another type.
fn set_for_read<'e>(
    e: &'e mut Engine,
    key: &[u8],
    out: &mut Out,
) -> Result<Option<&'e SetValue>, ()> {
    match e.lookup_read(key).map(|en| &en.value) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => {
            wrongtype(out);
            Err(())
        }
    }
}

pub(crate) fn smembers(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let Ok(set) = set_for_read(e, argv[1], out) else { return Done::Read };
    let Some(set) = set else {
        reply::array(out, 0);
        return Done::Read;
    };
    reply::array(out, set.len());
    if set.len() <= INTSET_MAX {
        let ints: Option<Vec<(i64, &Vec<u8>)>> =
            set.iter().map(|m| parse_i64(m).map(|n| (n, m))).collect();
        if let Some(mut ints) = ints {
            ints.sort_unstable_by_key(|(n, _)| *n);
            for (_, m) in ints {
                reply::bulk(out, m);
            }
            return Done::Read;
        }
    }
    for m in set {
        reply::bulk(out, m);
    }
    Done::Read
}

pub(crate) fn sismember(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if let Ok(set) = set_for_read(e, argv[1], out) {
        reply::int(out, i64::from(set.is_some_and(|s| s.contains(argv[2]))));
    }
    Done::Read
}

pub(crate) fn scard(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if let Ok(set) = set_for_read(e, argv[1], out) {
        reply::int(out, set.map_or(0, |s| s.len() as i64));
    }
    Done::Read
}

/// SPOP key [count]; logged as the `SREM` of what it popped.
pub(crate) fn spop(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if argv.len() > 3 {
        return syntax_error(out);
    }
    let count = match argv.get(2) {
        None => None,
        Some(arg) => match positive_arg(arg, out) {
            Some(n) => Some(n),
            None => return Done::Read,
        },
    };
    let key = argv[1];
    let len = match e.keys.value(key) {
        None => {
            match count {
                None => reply::nil(out),
                Some(_) => reply::array(out, 0),
            }
            return Done::Read;
        }
        Some(Value::Set(s)) => s.len(),
        Some(_) => return wrongtype(out),
    };
    let n = count.map_or(1, |c| (c as usize).min(len));
    let picks: Vec<usize> = (0..n).map(|i| (e.random() % (len - i) as u64) as usize).collect();
    let Some(Value::Set(set)) = e.keys.value(key) else { unreachable!("checked above") };
    let mut popped = Vec::with_capacity(n);
    for i in picks {
        if let Some(m) = set.swap_remove_index(i) {
            popped.push(m);
        }
    }
    match count {
        None => reply::bulk(out, &popped[0]),
        Some(_) => {
            reply::array(out, popped.len());
            for m in &popped {
                reply::bulk(out, m);
            }
        }
    }
    e.keys.remove_if_empty(key);
    if !popped.is_empty() {
        let mut entry = vec![b"SREM".to_vec(), key.to_vec()];
        entry.extend(popped);
        e.log(entry);
    }
    Done::Read
}
