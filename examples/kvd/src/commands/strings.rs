//! Strings: GET, SET (EX PX EXAT PXAT NX XX KEEPTTL GET), GETSET, INCR,
//! DECR, INCRBY, DECRBY, APPEND, STRLEN, MGET, MSET.

use alloc::vec;

use super::{Done, Engine, eq_ic, int_arg, int_bytes, syntax_error, wrong_arity, wrongtype};
use crate::bytes::Str;
use crate::reply::{self, Out};
use crate::resp::{MAX_BULK, parse_i64};
use crate::store::Value;

pub(crate) fn get(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    match e.lookup_read(argv[1]).map(|en| &en.value) {
        None => reply::nil(out),
        Some(Value::Str(v)) => reply::bulk(out, v),
        Some(_) => return wrongtype(out),
    }
    Done::Read
}

/// When a `SET` expires its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// No option: the key loses any expiry.
    None,
    /// `KEEPTTL`.
    Keep,
    /// At this absolute time (ms).
    At(u64),
}

pub(crate) fn set(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    #[derive(PartialEq)]
    enum Unit {
        Ex,
        Px,
        ExAt,
        PxAt,
    }
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expire: Option<(Unit, &[u8])> = None;
    let mut j = 3;
    while j < argv.len() {
        let opt = argv[j];
        let next = argv.get(j + 1).copied();
        if eq_ic(opt, "nx") && !xx {
            nx = true;
        } else if eq_ic(opt, "xx") && !nx {
            xx = true;
        } else if eq_ic(opt, "get") {
            get = true;
        } else if eq_ic(opt, "keepttl") && expire.is_none() {
            keepttl = true;
        } else if let Some(unit) =
            [("ex", Unit::Ex), ("px", Unit::Px), ("exat", Unit::ExAt), ("pxat", Unit::PxAt)]
                .into_iter()
                .find(|(n, _)| eq_ic(opt, n))
                .map(|(_, u)| u)
            && !keepttl
            && expire.as_ref().is_none_or(|(u, _)| *u == unit)
            && let Some(next) = next
        {
            expire = Some((unit, next));
            j += 1;
        } else {
            return syntax_error(out);
        }
        j += 1;
    }
    let expiry = match expire {
        None if keepttl => Expiry::Keep,
        None => Expiry::None,
        Some((unit, arg)) => {
            let Some(mut ms) = int_arg(arg, out) else { return Done::Read };
            let seconds = matches!(unit, Unit::Ex | Unit::ExAt);
            if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
                return invalid_expire(out, "set");
            }
            if seconds {
                ms *= 1000;
            }
            if matches!(unit, Unit::Ex | Unit::Px) {
                ms = ms.wrapping_add(e.now() as i64);
            }
            if ms <= 0 {
                return invalid_expire(out, "set");
            }
            Expiry::At(ms as u64)
        }
    };
    if !set_generic(e, argv[1], argv[2], expiry, nx, xx, get, out) {
        return Done::Read;
    }
    if argv.len() == 3 {
        return Done::Write;
    }
    // Logged in a deterministic form: the outcome of NX, XX and GET is
    // known, and a relative expiry becomes absolute.
    let mut entry = vec![b"SET".to_vec(), argv[1].to_vec(), argv[2].to_vec()];
    match expiry {
        Expiry::None => {}
        Expiry::Keep => entry.push(b"KEEPTTL".to_vec()),
        Expiry::At(t) => {
            entry.push(b"PXAT".to_vec());
            entry.push(int_bytes(t as i64));
        }
    }
    e.log(entry);
    Done::Read
}

/// Sets `key` unless NX or XX says otherwise; true if it did. With `get`,
/// replies with the old value (or the type error) instead of `+OK`.
#[allow(clippy::too_many_arguments)]
fn set_generic(
    e: &mut Engine,
    key: &[u8],
    value: &[u8],
    expiry: Expiry,
    nx: bool,
    xx: bool,
    get: bool,
    out: &mut Out,
) -> bool {
    // `SET key value` of a key that exists without an expiry: one lookup.
    let plain = !get && !nx && !xx && matches!(expiry, Expiry::None);
    if plain && e.keys.overwrite_persistent(key, value) {
        reply::ok(out);
        return true;
    }
    let old = e.keys.get(key);
    let found = old.is_some();
    let old_expiry = old.as_ref().and_then(|o| o.expire_at);
    if get {
        match old.map(|o| &o.value) {
            None => reply::nil(out),
            Some(Value::Str(v)) => reply::bulk(out, v),
            Some(_) => {
                wrongtype(out);
                return false;
            }
        }
    }
    if (nx && found) || (xx && !found) {
        if !get {
            reply::nil(out);
        }
        return false;
    }
    let expire_at = match expiry {
        Expiry::None => None,
        Expiry::Keep => old_expiry,
        Expiry::At(t) => Some(t),
    };
    e.keys.insert(key, Value::Str(Str::new(value)), expire_at);
    if !get {
        reply::ok(out);
    }
    true
}

/// `-ERR invalid expire time in '<command>' command`.
pub(crate) fn invalid_expire(out: &mut Out, command: &str) -> Done {
    let mut msg = b"ERR invalid expire time in '".to_vec();
    msg.extend_from_slice(command.as_bytes());
    msg.extend_from_slice(b"' command");
    reply::error(out, &msg);
    Done::Read
}

pub(crate) fn getset(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if set_generic(e, argv[1], argv[2], Expiry::None, false, false, true, out) {
        e.log(vec![b"SET".to_vec(), argv[1].to_vec(), argv[2].to_vec()]);
    }
    Done::Read
}

fn incr_by(e: &mut Engine, key: &[u8], by: i64, out: &mut Out) -> Done {
    let entry = e.keys.get(key);
    let (old, expire_at) = match entry {
        None => (0, None),
        Some(en) => match &en.value {
            Value::Str(v) => match parse_i64(v) {
                Some(n) => (n, en.expire_at),
                None => return super::not_integer(out),
            },
            _ => return wrongtype(out),
        },
    };
    let Some(new) = old.checked_add(by) else {
        reply::error(out, b"ERR increment or decrement would overflow");
        return Done::Read;
    };
    let mut buf = [0u8; 20];
    let digits = reply::format_int(&mut buf, new);
    match e.keys.get(key) {
        Some(en) => en.value = Value::Str(Str::new(digits)),
        None => e.keys.insert(key, Value::Str(Str::new(digits)), expire_at),
    }
    reply::int(out, new);
    Done::Write
}

pub(crate) fn incr(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    incr_by(e, argv[1], 1, out)
}

pub(crate) fn decr(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    incr_by(e, argv[1], -1, out)
}

pub(crate) fn incrby(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let Some(by) = int_arg(argv[2], out) else { return Done::Read };
    incr_by(e, argv[1], by, out)
}

pub(crate) fn decrby(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let Some(by) = int_arg(argv[2], out) else { return Done::Read };
    if by == i64::MIN {
        reply::error(out, b"ERR decrement would overflow");
        return Done::Read;
    }
    incr_by(e, argv[1], -by, out)
}

pub(crate) fn append(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let len = match e.keys.value(argv[1]) {
        None => {
            e.keys.insert(argv[1], Value::Str(Str::new(argv[2])), None);
            argv[2].len()
        }
        Some(Value::Str(v)) => {
            if v.len() + argv[2].len() > MAX_BULK {
                reply::error(out, b"ERR string exceeds maximum allowed size (proto-max-bulk-len)");
                return Done::Read;
            }
            v.extend_from_slice(argv[2]);
            v.len()
        }
        Some(_) => return wrongtype(out),
    };
    reply::int(out, len as i64);
    Done::Write
}

pub(crate) fn strlen(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    match e.keys.value(argv[1]) {
        None => reply::int(out, 0),
        Some(Value::Str(v)) => reply::int(out, v.len() as i64),
        Some(_) => return wrongtype(out),
    }
    Done::Read
}

pub(crate) fn mget(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    reply::array(out, argv.len() - 1);
    for key in &argv[1..] {
        match e.lookup_read(key).map(|en| &en.value) {
            Some(Value::Str(v)) => reply::bulk(out, v),
            _ => reply::nil(out),
        }
    }
    Done::Read
}

pub(crate) fn mset(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if argv.len().is_multiple_of(2) {
        wrong_arity(out, "mset");
        return Done::Read;
    }
    for pair in argv[1..].chunks_exact(2) {
        e.keys.insert(pair[0], Value::Str(Str::new(pair[1])), None);
    }
    reply::ok(out);
    Done::Write
}
