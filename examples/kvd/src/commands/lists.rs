//! Lists: LPUSH, RPUSH, LPOP, RPOP, LRANGE, LLEN, LINDEX.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{Done, Engine, int_arg, not_integer, wrong_arity, wrongtype};
use crate::reply::{self, Out};
use crate::resp::parse_i64;
use crate::store::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Head,
    Tail,
}

fn push(e: &mut Engine, argv: &[&[u8]], out: &mut Out, end: End) -> Done {
    let key = argv[1];
    let list = match e.keys.value(key) {
        Some(Value::List(l)) => l,
        Some(_) => return wrongtype(out),
        None => {
            e.keys.insert(key, Value::List(VecDeque::new()), None);
            match e.keys.value(key) {
                Some(Value::List(l)) => l,
                _ => unreachable!("just inserted"),
            }
        }
    };
    for v in &argv[2..] {
        match end {
            End::Head => list.push_front(v.to_vec()),
            End::Tail => list.push_back(v.to_vec()),
        }
    }
    reply::int(out, list.len() as i64);
    Done::Write
}

pub(crate) fn lpush(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    push(e, argv, out, End::Head)
}

pub(crate) fn rpush(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    push(e, argv, out, End::Tail)
}

/// A count that must be ≥ 0; otherwise (also when it is not a number, as
/// Redis words it) `value is out of range, must be positive`.
pub(crate) fn positive_arg(arg: &[u8], out: &mut Out) -> Option<u64> {
    match parse_i64(arg) {
        Some(n) if n >= 0 => Some(n as u64),
        _ => {
            reply::error(out, b"ERR value is out of range, must be positive");
            None
        }
    }
}

fn pop(e: &mut Engine, argv: &[&[u8]], out: &mut Out, end: End, name: &str) -> Done {
    if argv.len() > 3 {
        wrong_arity(out, name);
        return Done::Read;
    }
    let count = match argv.get(2) {
        Some(arg) => match positive_arg(arg, out) {
            Some(n) => Some(n),
            None => return Done::Read,
        },
        None => None,
    };
    let key = argv[1];
    let list = match e.keys.value(key) {
        Some(Value::List(l)) => l,
        Some(_) => return wrongtype(out),
        None if count.is_some() => {
            reply::nil_array(out);
            return Done::Read;
        }
        None => {
            reply::nil(out);
            return Done::Read;
        }
    };
    let take = |l: &mut VecDeque<Vec<u8>>| match end {
        End::Head => l.pop_front(),
        End::Tail => l.pop_back(),
    };
    match count {
        None => match take(list) {
            Some(v) => reply::bulk(out, &v),
            None => reply::nil(out),
        },
        Some(0) => {
            reply::array(out, 0);
            return Done::Read;
        }
        Some(n) => {
            let n = (n as usize).min(list.len());
            reply::array(out, n);
            for _ in 0..n {
                if let Some(v) = take(list) {
                    reply::bulk(out, &v);
                }
            }
        }
    }
    e.keys.remove_if_empty(key);
    Done::Write
}

pub(crate) fn lpop(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    pop(e, argv, out, End::Head, "lpop")
}

pub(crate) fn rpop(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    pop(e, argv, out, End::Tail, "rpop")
}

pub(crate) fn lrange(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let Some(start) = int_arg(argv[2], out) else { return Done::Read };
    let Some(end) = int_arg(argv[3], out) else { return Done::Read };
    let list = match e.lookup_read(argv[1]).map(|en| &en.value) {
        None => {
            reply::array(out, 0);
            return Done::Read;
        }
        Some(Value::List(l)) => l,
        Some(_) => return wrongtype(out),
    };
    let len = list.len() as i64;
    let mut start = if start < 0 { len.saturating_add(start) } else { start };
    let mut end = if end < 0 { len.saturating_add(end) } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        reply::array(out, 0);
        return Done::Read;
    }
    if end >= len {
        end = len - 1;
    }
    let (start, end) = (start as usize, end as usize);
    reply::array(out, end - start + 1);
    for v in list.range(start..=end) {
        reply::bulk(out, v);
    }
    Done::Read
}

pub(crate) fn llen(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    match e.keys.value(argv[1]) {
        None => reply::int(out, 0),
        Some(Value::List(l)) => reply::int(out, l.len() as i64),
        Some(_) => return wrongtype(out),
    }
    Done::Read
}

pub(crate) fn lindex(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let list = match e.lookup_read(argv[1]).map(|en| &en.value) {
        None => {
            reply::nil(out);
            return Done::Read;
        }
        Some(Value::List(l)) => l,
        Some(_) => return wrongtype(out),
    };
    let Some(index) = parse_i64(argv[2]) else { return not_integer(out) };
    let len = list.len() as i64;
    let index = if index < 0 { len.saturating_add(index) } else { index };
    match usize::try_from(index).ok().and_then(|i| list.get(i)) {
        Some(v) => reply::bulk(out, v),
        None => reply::nil(out),
    }
    Done::Read
}
