//! The engine: executes a command (its argv) against the keyspace and
//! appends the reply, as Redis 7 would answer it, to an output buffer.
//!
//! Dispatch goes through one table ([`table`]): name, arity, flags (which
//! `COMMAND` reports too) and handler. Unknown commands, wrong arity, wrong
//! types and bad arguments get Redis's exact error replies.
//!
//! **Persistence.** Each execution reports whether, and how, it changed the
//! dataset, as commands to append to a log that replays to the same
//! dataset: [`Effect::log_argv`] (log the command as received: `INCR`,
//! `LPUSH`, `DEL`...), preceded by whatever [`Engine::take_log`] returns:
//! commands rewritten to a deterministic form (`SET ... EX 10` becomes
//! `SET ... PXAT <absolute ms>`, `EXPIRE` becomes `PEXPIREAT`, `SPOP`
//! becomes `SREM` of the members it popped, `GETSET` becomes `SET`), and a
//! `DEL` for every key that expired meanwhile, so that replaying (with
//! [`Engine::begin_loading`], where nothing expires) repeats the history
//! exactly whatever the time of the replay.

mod hashes;
mod keys;
mod lists;
mod server;
mod sets;
mod strings;
pub mod table;

use alloc::vec;
use alloc::vec::Vec;

use crate::auth::{self, Password};
use crate::reply::{self, Out};
use crate::resp::parse_i64;
use crate::store::{Entry, Keyspace, Value};

/// Settings that `CONFIG GET` and `INFO` report, fixed at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The TCP port.
    pub port: u16,
    /// Whether commands are logged to the disk.
    pub appendonly: bool,
    /// `always`, `everysec` or `no`.
    pub appendfsync: &'static str,
    /// Write commands that may grow memory are refused (`-OOM`) above
    /// this many bytes of heap in use; 0: no limit.
    pub maxmemory: u64,
    /// Connections accepted at once.
    pub maxclients: u64,
    /// Most bytes of input a connection may hold pending.
    pub query_buffer_limit: u64,
    /// The `default` user's password; `None`: none, every connection is
    /// authenticated from the start.
    pub requirepass: Option<Password>,
    /// Redis's `client-output-buffer-limit` for normal clients.
    pub output_limit: OutputLimit,
    /// Most bytes all clients' buffers (input and output) may hold
    /// together, Redis's `maxmemory-clients`; 0: no limit.
    pub maxmemory_clients: u64,
}

/// Redis's `client-output-buffer-limit`: a client whose pending output
/// reaches `hard` bytes, or stays at `soft` bytes or more for more than
/// `soft_ms`, is disconnected. 0 disables a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputLimit {
    /// Bytes.
    pub hard: u64,
    /// Bytes.
    pub soft: u64,
    /// Milliseconds.
    pub soft_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 6379,
            appendonly: false,
            appendfsync: "everysec",
            maxmemory: 0,
            maxclients: 10000,
            query_buffer_limit: 1 << 30,
            requirepass: None,
            output_limit: OutputLimit::default(),
            maxmemory_clients: 0,
        }
    }
}

/// Counters for `INFO`; the server updates the connection and
/// persistence ones.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Clients connected now.
    pub connected_clients: u64,
    /// Connections accepted since start.
    pub total_connections_received: u64,
    /// Connections refused (over `maxclients`).
    pub rejected_connections: u64,
    /// Commands executed since start.
    pub total_commands_processed: u64,
    /// Successful key lookups.
    pub keyspace_hits: u64,
    /// Failed key lookups.
    pub keyspace_misses: u64,
    /// Bytes read from clients.
    pub net_input_bytes: u64,
    /// Bytes written to clients.
    pub net_output_bytes: u64,
    /// Bytes the clients' buffers hold, input and output (`INFO`'s
    /// `mem_clients_normal`); the server keeps it, client by client.
    pub client_memory: u64,
    /// Clients disconnected for their output (`client-output-buffer-limit`,
    /// `maxmemory-clients`, no memory for a reply).
    pub client_output_buffer_limit_disconnections: u64,
    /// Clients disconnected for their input buffer.
    pub client_query_buffer_limit_disconnections: u64,
    /// Changes to the dataset since the last compaction of the log.
    pub dirty: u64,
    /// Compactions of the log since start.
    pub aof_rewrites: u64,
    /// Whether the last write to the log succeeded.
    pub aof_last_write_ok: bool,
    /// Unix time (s) of the last compaction, or of the start.
    pub last_save_time: u64,
    /// Commands replayed from the log at start.
    pub aof_loaded_commands: u64,
}

/// What an execution asks of the server besides sending the reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effect {
    /// The command changed the dataset: log it as received (after what
    /// [`Engine::take_log`] returns).
    pub log_argv: bool,
    /// Close the connection once the reply is sent (`QUIT`).
    pub close: bool,
}

/// What a handler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    /// Changed nothing (or only through [`Engine::log`]).
    Read,
    /// Changed the dataset; log the argv as received.
    Write,
    /// `QUIT`.
    Quit,
}

/// One connection's state as commands see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// Whether it may run commands other than `AUTH` (always, without
    /// `requirepass`).
    pub authenticated: bool,
}

/// Returns memory in use and the heap's size, in bytes.
pub type MemoryProbe = fn() -> (u64, u64);

/// The command engine: the keyspace, its settings and counters.
#[derive(Debug)]
pub struct Engine {
    /// The keyspace.
    pub keys: Keyspace,
    /// Settings.
    pub config: Config,
    /// Counters.
    pub stats: Stats,
    /// Why the log cannot be written, if it cannot: write commands are
    /// refused with `-MISCONF` meanwhile, as Redis does.
    pub write_error: Option<alloc::string::String>,
    /// Entries to log, in order (see the module docs).
    log: Vec<Vec<Vec<u8>>>,
    rng: u64,
    started_ms: u64,
    memory: MemoryProbe,
    /// What the last `AUTH` decided, for [`Engine::execute_in`].
    pub(crate) auth_outcome: Option<auth::Outcome>,
}

fn no_memory_probe() -> (u64, u64) {
    (0, 0)
}

impl Engine {
    /// An empty engine started at `now_ms` (ms since the Unix epoch), with
    /// `seed` for hashing and `SPOP`'s choices.
    pub fn new(config: Config, now_ms: u64, seed: u64) -> Self {
        let mut keys = Keyspace::new(seed);
        keys.now = now_ms;
        Self {
            keys,
            config,
            stats: Stats {
                aof_last_write_ok: true,
                last_save_time: now_ms / 1000,
                ..Stats::default()
            },
            write_error: None,
            log: Vec::new(),
            rng: seed | 1,
            started_ms: now_ms,
            memory: no_memory_probe,
            auth_outcome: None,
        }
    }

    /// Sets how `INFO` and `maxmemory` learn the memory in use.
    pub fn set_memory_probe(&mut self, probe: MemoryProbe) {
        self.memory = probe;
    }

    /// Memory in use and the heap's size, from the probe (0, 0 without).
    pub fn memory_usage(&self) -> (u64, u64) {
        (self.memory)()
    }

    /// Sets the time of the commands to come (ms since the Unix epoch).
    pub fn set_time(&mut self, now_ms: u64) {
        self.keys.now = now_ms;
    }

    /// The time of the command being executed.
    pub fn now(&self) -> u64 {
        self.keys.now
    }

    /// A new connection's session: authenticated unless a password is set.
    pub fn new_session(&self) -> Session {
        Session { authenticated: self.config.requirepass.is_none() }
    }

    /// Executes `argv` (at least the name) for an authenticated client
    /// (tests, replay) and appends the reply to `out`.
    pub fn execute(&mut self, argv: &[&[u8]], out: &mut Out) -> Effect {
        self.execute_in(&mut Session { authenticated: true }, argv, out)
    }

    /// Executes `argv` for a connection in `session` and appends the reply
    /// to `out`. As Redis 7 checks them: an unknown command, then the
    /// arity, then authentication (`-NOAUTH` for all but `AUTH`).
    pub fn execute_in(&mut self, session: &mut Session, argv: &[&[u8]], out: &mut Out) -> Effect {
        self.stats.total_commands_processed += 1;
        let Some(&name) = argv.first() else { return Effect::default() };
        let Some(spec) = table::lookup(name) else {
            unknown_command(argv, out);
            return Effect::default();
        };
        if !table::arity_ok(spec.arity, argv.len()) {
            wrong_arity(out, spec.name);
            return Effect::default();
        }
        if !session.authenticated && !spec.has_flag("no_auth") {
            reply::error(out, auth::NOAUTH);
            return Effect::default();
        }
        if let Some(why) = self.write_error.as_ref().filter(|_| spec.has_flag("write")) {
            let mut msg = b"MISCONF Errors writing to the AOF file: ".to_vec();
            msg.extend_from_slice(why.as_bytes());
            reply::error(out, &msg);
            return Effect::default();
        }
        if spec.has_flag("denyoom") && self.over_maxmemory() {
            reply::error(out, b"OOM command not allowed when used memory > 'maxmemory'.");
            return Effect::default();
        }
        let done = (spec.run)(self, argv, out);
        // A failed AUTH leaves the session as it was (Redis 6 and later).
        if self.auth_outcome.take() == Some(auth::Outcome::Ok) {
            session.authenticated = true;
        }
        self.flush_expired();
        if done == Done::Write {
            self.stats.dirty += 1;
        }
        Effect { log_argv: done == Done::Write, close: done == Done::Quit }
    }

    /// Entries to log before the argv of the last command (if
    /// [`Effect::log_argv`]), oldest first; clears them.
    pub fn take_log(&mut self) -> Vec<Vec<Vec<u8>>> {
        core::mem::take(&mut self.log)
    }

    /// Whether [`Engine::take_log`] has anything.
    pub fn has_log(&self) -> bool {
        !self.log.is_empty()
    }

    /// Records a rewritten command to log (after the expiries before it).
    pub(crate) fn log(&mut self, entry: Vec<Vec<u8>>) {
        self.flush_expired();
        self.stats.dirty += 1;
        self.log.push(entry);
    }

    fn flush_expired(&mut self) {
        if self.keys.loading {
            let _ = self.keys.take_expired();
            return;
        }
        for key in self.keys.take_expired() {
            self.log.push(vec![b"DEL".to_vec(), key]);
        }
    }

    /// Replaying the log: nothing expires, nothing is logged.
    pub fn begin_loading(&mut self) {
        self.keys.loading = true;
    }

    /// Replaying is over: expiry resumes.
    pub fn end_loading(&mut self) {
        self.keys.loading = false;
        self.log.clear();
        self.stats.dirty = 0;
    }

    /// Executes a logged command while loading; its error reply, if any.
    pub fn replay(&mut self, argv: &[&[u8]]) -> Result<(), Vec<u8>> {
        let mut out = Out::new();
        self.execute(argv, &mut out);
        self.log.clear();
        self.stats.aof_loaded_commands += 1;
        match out.first() {
            Some(b'-') => Err(out[1..out.len().saturating_sub(2)].to_vec()),
            _ => Ok(()),
        }
    }

    /// Active expiry: removes up to `budget` expired keys (logged as `DEL`
    /// through [`Engine::take_log`]); returns how many.
    pub fn expire_cycle(&mut self, budget: usize) -> usize {
        let n = self.keys.expire_some(budget);
        self.flush_expired();
        n
    }

    /// The dataset as commands that rebuild it (for compacting the log):
    /// per key a `SET` (with `PXAT`) or `RPUSH`/`HSET`/`SADD` in batches, then
    /// a `PEXPIREAT` for a container with an expiry.
    pub fn snapshot(&self) -> impl Iterator<Item = Vec<Vec<u8>>> + '_ {
        self.keys.iter().flat_map(|(k, e)| snapshot_entry(k, e))
    }

    /// Heap in use above `maxmemory`.
    fn over_maxmemory(&self) -> bool {
        self.config.maxmemory != 0 && (self.memory)().0 > self.config.maxmemory
    }

    /// A pseudo-random number (xorshift64*), for `SPOP`.
    pub(crate) fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A live entry, counting the hit or miss.
    pub(crate) fn lookup_read(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let found = self.keys.get(key);
        if found.is_some() {
            self.stats.keyspace_hits += 1;
        } else {
            self.stats.keyspace_misses += 1;
        }
        found
    }
}

/// Elements per command when a container is written out.
const SNAPSHOT_BATCH: usize = 64;

fn snapshot_entry(key: &[u8], e: &Entry) -> Vec<Vec<Vec<u8>>> {
    let k = || key.to_vec();
    let mut cmds = Vec::new();
    let batched = |cmds: &mut Vec<Vec<Vec<u8>>>,
                   name: &[u8],
                   items: &mut dyn Iterator<Item = Vec<u8>>,
                   per: usize| {
        let mut cmd = vec![name.to_vec(), k()];
        for item in items {
            cmd.push(item);
            if cmd.len() >= 2 + SNAPSHOT_BATCH * per {
                cmds.push(core::mem::replace(&mut cmd, vec![name.to_vec(), k()]));
            }
        }
        if cmd.len() > 2 {
            cmds.push(cmd);
        }
    };
    match &e.value {
        Value::Str(v) => {
            let mut cmd = vec![b"SET".to_vec(), k(), v.to_vec()];
            if let Some(t) = e.expire_at {
                cmd.push(b"PXAT".to_vec());
                cmd.push(int_bytes(t as i64));
            }
            return vec![cmd];
        }
        Value::List(l) => batched(&mut cmds, b"RPUSH", &mut l.iter().cloned(), 1),
        Value::Hash(h) => {
            batched(&mut cmds, b"HSET", &mut h.iter().flat_map(|(f, v)| [f.clone(), v.clone()]), 2)
        }
        Value::Set(s) => batched(&mut cmds, b"SADD", &mut s.iter().cloned(), 1),
    }
    if let Some(t) = e.expire_at {
        cmds.push(vec![b"PEXPIREAT".to_vec(), k(), int_bytes(t as i64)]);
    }
    cmds
}

/// `n` in decimal.
pub(crate) fn int_bytes(n: i64) -> Vec<u8> {
    let mut buf = [0u8; 20];
    reply::format_int(&mut buf, n).to_vec()
}

/// `-ERR unknown command 'name', with args beginning with: 'a' 'b' `, as
/// Redis builds it (name and arguments cut at 128 bytes and at a NUL).
fn unknown_command(argv: &[&[u8]], out: &mut Out) {
    let cut = |s: &[u8], max: usize| -> Vec<u8> {
        let s = &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())];
        s[..s.len().min(max)].to_vec()
    };
    let mut args = Vec::new();
    for a in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        args.push(b'\'');
        args.extend(cut(a, 128 - args.len() + 1));
        args.extend_from_slice(b"' ");
    }
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend(cut(argv[0], 128));
    msg.extend_from_slice(b"', with args beginning with: ");
    msg.extend(args);
    reply::error(out, &msg);
}

/// `-ERR wrong number of arguments for 'name' command`.
pub(crate) fn wrong_arity(out: &mut Out, name: &str) {
    let mut msg = b"ERR wrong number of arguments for '".to_vec();
    msg.extend_from_slice(name.as_bytes());
    msg.extend_from_slice(b"' command");
    reply::error(out, &msg);
}

pub(crate) fn wrongtype(out: &mut Out) -> Done {
    reply::error(out, b"WRONGTYPE Operation against a key holding the wrong kind of value");
    Done::Read
}

pub(crate) fn syntax_error(out: &mut Out) -> Done {
    reply::error(out, b"ERR syntax error");
    Done::Read
}

pub(crate) fn not_integer(out: &mut Out) -> Done {
    reply::error(out, b"ERR value is not an integer or out of range");
    Done::Read
}

/// An integer argument, or the error reply written.
pub(crate) fn int_arg(arg: &[u8], out: &mut Out) -> Option<i64> {
    let v = parse_i64(arg);
    if v.is_none() {
        not_integer(out);
    }
    v
}

/// ASCII case-insensitive equality, for options (`EX`, `NX`...).
pub(crate) fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

#[cfg(test)]
pub(crate) mod tests;
