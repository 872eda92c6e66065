//! The command table: every command kvd knows, sorted by name, with what
//! `COMMAND` reports about it (arity, flags, key positions, ACL
//! categories, and for `COMMAND DOCS` a summary, group and version).
//!
//! Arity is Redis's: `n` exactly n arguments (the name included), `-n` at
//! least n.

use super::{Done, Engine, hashes, keys, lists, server, sets, strings};

/// A handler: executes argv, appends the reply.
pub(crate) type Handler = fn(&mut Engine, &[&[u8]], &mut crate::reply::Out) -> Done;

/// One command.
#[derive(Debug)]
pub struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Arity (see the module docs).
    pub arity: i32,
    /// Flags as `COMMAND` lists them (`write`, `readonly`, `denyoom`, `fast`...).
    pub flags: &'static [&'static str],
    /// First key argument, last (negative: from the end), step; 0 0 0 if none.
    pub keys: (i32, i32, i32),
    /// ACL categories (`@read`, `@string`...).
    pub acl: &'static [&'static str],
    /// `COMMAND DOCS`: the group (`string`, `list`...).
    pub group: &'static str,
    /// `COMMAND DOCS`: the Redis version that introduced it.
    pub since: &'static str,
    /// `COMMAND DOCS`: one line.
    pub summary: &'static str,
    pub(crate) run: Handler,
}

impl Spec {
    /// Whether `flag` is among the flags.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

/// Whether `argc` arguments satisfy `arity`.
pub fn arity_ok(arity: i32, argc: usize) -> bool {
    if arity >= 0 { argc == arity as usize } else { argc >= arity.unsigned_abs() as usize }
}

/// The command called `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    if name.len() > 32 {
        return None;
    }
    let mut lower = [0u8; 32];
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let lower = &lower[..name.len()];
    COMMANDS.binary_search_by(|s| s.name.as_bytes().cmp(lower)).ok().map(|i| &COMMANDS[i])
}

/// Every command.
pub fn all() -> &'static [Spec] {
    COMMANDS
}

const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const WR: &[&str] = &["write", "fast"];
const WS: &[&str] = &["write"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const F: &[&str] = &["fast"];
const ADMIN: &[&str] = &["loading", "stale"];

macro_rules! spec {
    ($name:literal, $arity:literal, $flags:expr, $keys:expr, $acl:expr, $group:literal, $since:literal, $run:path, $summary:literal) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            acl: $acl,
            group: $group,
            since: $since,
            summary: $summary,
            run: $run,
        }
    };
}

const K1: (i32, i32, i32) = (1, 1, 1);
const KALL: (i32, i32, i32) = (1, -1, 1);
const K2: (i32, i32, i32) = (1, -1, 2);
const K0: (i32, i32, i32) = (0, 0, 0);

#[rustfmt::skip]
static COMMANDS: &[Spec] = &[
    spec!("append", 3, W, K1, &["@write", "@string", "@fast"], "string", "2.0.0", strings::append, "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    spec!("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], K0, &["@fast", "@connection"], "connection", "1.0.0", server::auth, "Authenticates the connection."),
    spec!("command", -1, &["loading", "stale"], K0, &["@slow", "@connection"], "server", "2.8.13", server::command, "Returns detailed information about all commands."),
    spec!("config", -2, ADMIN, K0, &["@admin", "@slow", "@dangerous"], "server", "2.0.0", server::config, "A container for server configuration commands."),
    spec!("dbsize", 1, RF, K0, &["@keyspace", "@read", "@fast"], "server", "1.0.0", keys::dbsize, "Returns the number of keys in the database."),
    spec!("decr", 2, WF, K1, &["@write", "@string", "@fast"], "string", "1.0.0", strings::decr, "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec!("decrby", 3, WF, K1, &["@write", "@string", "@fast"], "string", "1.0.0", strings::decrby, "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    spec!("del", -2, WS, KALL, &["@keyspace", "@write", "@slow"], "generic", "1.0.0", keys::del, "Deletes one or more keys."),
    spec!("echo", 2, F, K0, &["@fast", "@connection"], "connection", "1.0.0", server::echo, "Returns the given string."),
    spec!("exists", -2, RF, KALL, &["@keyspace", "@read", "@fast"], "generic", "1.0.0", keys::exists, "Determines whether one or more keys exist."),
    spec!("expire", -3, WR, K1, &["@keyspace", "@write", "@fast"], "generic", "1.0.0", keys::expire, "Sets the expiration time of a key in seconds."),
    spec!("expireat", -3, WR, K1, &["@keyspace", "@write", "@fast"], "generic", "1.2.0", keys::expireat, "Sets the expiration time of a key to a Unix timestamp."),
    spec!("flushall", -1, WS, K0, &["@keyspace", "@write", "@slow", "@dangerous"], "server", "1.0.0", keys::flushall, "Removes all keys from all databases."),
    spec!("flushdb", -1, WS, K0, &["@keyspace", "@write", "@slow", "@dangerous"], "server", "1.0.0", keys::flushdb, "Remove all keys from the current database."),
    spec!("get", 2, RF, K1, &["@read", "@string", "@fast"], "string", "1.0.0", strings::get, "Returns the string value of a key."),
    spec!("getset", 3, WF, K1, &["@write", "@string", "@fast"], "string", "1.0.0", strings::getset, "Returns the previous string value of a key after setting it to a new value."),
    spec!("hdel", -3, WR, K1, &["@write", "@hash", "@fast"], "hash", "2.0.0", hashes::hdel, "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."),
    spec!("hexists", 3, RF, K1, &["@read", "@hash", "@fast"], "hash", "2.0.0", hashes::hexists, "Determines whether a field exists in a hash."),
    spec!("hget", 3, RF, K1, &["@read", "@hash", "@fast"], "hash", "2.0.0", hashes::hget, "Returns the value of a field in a hash."),
    spec!("hgetall", 2, R, K1, &["@read", "@hash", "@slow"], "hash", "2.0.0", hashes::hgetall, "Returns all fields and values in a hash."),
    spec!("hincrby", 4, WF, K1, &["@write", "@hash", "@fast"], "hash", "2.0.0", hashes::hincrby, "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."),
    spec!("hkeys", 2, R, K1, &["@read", "@hash", "@slow"], "hash", "2.0.0", hashes::hkeys, "Returns all fields in a hash."),
    spec!("hlen", 2, RF, K1, &["@read", "@hash", "@fast"], "hash", "2.0.0", hashes::hlen, "Returns the number of fields in a hash."),
    spec!("hmget", -3, RF, K1, &["@read", "@hash", "@fast"], "hash", "2.0.0", hashes::hmget, "Returns the values of all fields in a hash."),
    spec!("hmset", -4, WF, K1, &["@write", "@hash", "@fast"], "hash", "2.0.0", hashes::hmset, "Sets the values of multiple fields."),
    spec!("hset", -4, WF, K1, &["@write", "@hash", "@fast"], "hash", "2.0.0", hashes::hset, "Creates or modifies the value of a field in a hash."),
    spec!("hvals", 2, R, K1, &["@read", "@hash", "@slow"], "hash", "2.0.0", hashes::hvals, "Returns all values in a hash."),
    spec!("incr", 2, WF, K1, &["@write", "@string", "@fast"], "string", "1.0.0", strings::incr, "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec!("incrby", 3, WF, K1, &["@write", "@string", "@fast"], "string", "1.0.0", strings::incrby, "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    spec!("info", -1, &["loading", "stale"], K0, &["@slow", "@dangerous"], "server", "1.0.0", server::info, "Returns information and statistics about the server."),
    spec!("keys", 2, R, K0, &["@keyspace", "@read", "@slow", "@dangerous"], "generic", "1.0.0", keys::keys, "Returns all key names that match a pattern."),
    spec!("lindex", 3, R, K1, &["@read", "@list", "@slow"], "list", "1.0.0", lists::lindex, "Returns an element from a list by its index."),
    spec!("llen", 2, RF, K1, &["@read", "@list", "@fast"], "list", "1.0.0", lists::llen, "Returns the length of a list."),
    spec!("lpop", -2, WR, K1, &["@write", "@list", "@fast"], "list", "1.0.0", lists::lpop, "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    spec!("lpush", -3, WF, K1, &["@write", "@list", "@fast"], "list", "1.0.0", lists::lpush, "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    spec!("lrange", 4, R, K1, &["@read", "@list", "@slow"], "list", "1.0.0", lists::lrange, "Returns a range of elements from a list."),
    spec!("mget", -2, RF, KALL, &["@read", "@string", "@fast"], "string", "1.0.0", strings::mget, "Atomically returns the string values of one or more keys."),
    spec!("mset", -3, W, K2, &["@write", "@string", "@slow"], "string", "1.0.1", strings::mset, "Atomically creates or modifies the string values of one or more keys."),
    spec!("persist", 2, WR, K1, &["@keyspace", "@write", "@fast"], "generic", "2.2.0", keys::persist, "Removes the expiration time of a key."),
    spec!("pexpire", -3, WR, K1, &["@keyspace", "@write", "@fast"], "generic", "2.6.0", keys::pexpire, "Sets the expiration time of a key in milliseconds."),
    spec!("pexpireat", -3, WR, K1, &["@keyspace", "@write", "@fast"], "generic", "2.6.0", keys::pexpireat, "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    spec!("ping", -1, F, K0, &["@fast", "@connection"], "connection", "1.0.0", server::ping, "Returns the server's liveliness response."),
    spec!("pttl", 2, RF, K1, &["@keyspace", "@read", "@fast"], "generic", "2.6.0", keys::pttl, "Returns the expiration time in milliseconds of a key."),
    spec!("quit", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], K0, &["@fast", "@connection"], "connection", "1.0.0", server::quit, "Closes the connection."),
    spec!("rpop", -2, WR, K1, &["@write", "@list", "@fast"], "list", "1.0.0", lists::rpop, "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    spec!("rpush", -3, WF, K1, &["@write", "@list", "@fast"], "list", "1.0.0", lists::rpush, "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    spec!("sadd", -3, WF, K1, &["@write", "@set", "@fast"], "set", "1.0.0", sets::sadd, "Adds one or more members to a set. Creates the key if it doesn't exist."),
    spec!("scan", -2, R, K0, &["@keyspace", "@read", "@slow"], "generic", "2.8.0", keys::scan, "Iterates over the key names in the database."),
    spec!("scard", 2, RF, K1, &["@read", "@set", "@fast"], "set", "1.0.0", sets::scard, "Returns the number of members in a set."),
    spec!("select", 2, &["loading", "stale", "fast"], K0, &["@fast", "@connection"], "connection", "1.0.0", server::select, "Changes the selected database."),
    spec!("set", -3, W, K1, &["@write", "@string", "@slow"], "string", "1.0.0", strings::set, "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    spec!("sismember", 3, RF, K1, &["@read", "@set", "@fast"], "set", "1.0.0", sets::sismember, "Determines whether a member belongs to a set."),
    spec!("smembers", 2, R, K1, &["@read", "@set", "@slow"], "set", "1.0.0", sets::smembers, "Returns all members of a set."),
    spec!("spop", -2, WR, K1, &["@write", "@set", "@fast"], "set", "1.0.0", sets::spop, "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    spec!("srem", -3, WR, K1, &["@write", "@set", "@fast"], "set", "1.0.0", sets::srem, "Removes one or more members from a set. Deletes the set if the last member was removed."),
    spec!("strlen", 2, RF, K1, &["@read", "@string", "@fast"], "string", "2.2.0", strings::strlen, "Returns the length of a string value."),
    spec!("ttl", 2, RF, K1, &["@keyspace", "@read", "@fast"], "generic", "1.0.0", keys::ttl, "Returns the expiration time in seconds of a key."),
    spec!("type", 2, RF, K1, &["@keyspace", "@read", "@fast"], "generic", "1.0.0", keys::type_, "Determines the type of value stored at a key."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_lower_case() {
        for w in COMMANDS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        for s in COMMANDS {
            assert_eq!(s.name, s.name.to_ascii_lowercase());
            assert!(s.arity != 0);
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"GET").unwrap().name, "get");
        assert_eq!(lookup(b"gEt").unwrap().name, "get");
        assert!(lookup(b"nosuch").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
        assert!(lookup(b"").is_none());
    }

    #[test]
    fn arity() {
        assert!(arity_ok(2, 2));
        assert!(!arity_ok(2, 3));
        assert!(arity_ok(-2, 5));
        assert!(!arity_ok(-3, 2));
    }
}
