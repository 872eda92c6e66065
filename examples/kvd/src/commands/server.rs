//! Connection and server commands: PING, ECHO, QUIT, SELECT, INFO, CONFIG,
//! COMMAND.
//!
//! `INFO` has the sections and fields clients read (`redis_version`,
//! `connected_clients`, `used_memory`, `aof_enabled`, `role`, `db0:keys=...`);
//! `CONFIG GET` answers for the settings `redis-benchmark` and others ask
//! about (`save`, `appendonly`...); `COMMAND` (plain, `COUNT`, `INFO`,
//! `DOCS`, `LIST`) describes the table, enough for `redis-cli` 7.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use super::table::{self, Spec};
use super::{Done, Engine, eq_ic, syntax_error, wrong_arity};
use crate::auth;
use crate::reply::Out;
use crate::{glob, reply};

/// The Redis version kvd answers as (the protocol and commands it follows).
pub const REDIS_VERSION: &str = "7.0.15";

pub(crate) fn ping(_e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    match argv.len() {
        1 => reply::simple(out, "PONG"),
        2 => reply::bulk(out, argv[1]),
        _ => wrong_arity(out, "ping"),
    }
    Done::Read
}

pub(crate) fn echo(_e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    reply::bulk(out, argv[1]);
    Done::Read
}

/// `AUTH [user] password`: the outcome goes to the session through
/// [`Engine::execute_in`].
pub(crate) fn auth(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    if argv.len() > 3 {
        return syntax_error(out);
    }
    let outcome = crate::auth::check(e.config.requirepass.as_ref(), &argv[1..]);
    match outcome {
        auth::Outcome::Ok => reply::ok(out),
        auth::Outcome::WrongPass => reply::error(out, auth::WRONGPASS),
        auth::Outcome::NoPassword => reply::error(out, auth::NO_PASSWORD),
    }
    e.auth_outcome = Some(outcome);
    Done::Read
}

pub(crate) fn quit(_e: &mut Engine, _argv: &[&[u8]], out: &mut Out) -> Done {
    reply::ok(out);
    Done::Quit
}

pub(crate) fn select(_e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    match crate::resp::parse_i64(argv[1]) {
        None => {
            super::not_integer(out);
        }
        Some(n) if i32::try_from(n).is_err() => reply::error(
            out,
            b"ERR value is out of range, value must between -2147483648 and 2147483647",
        ),
        Some(0) => reply::ok(out),
        Some(_) => reply::error(out, b"ERR DB index is out of range"),
    }
    Done::Read
}

/// `-ERR unknown subcommand 'x'. Try CONFIG HELP.`
fn unknown_subcommand(out: &mut Out, argv: &[&[u8]]) {
    let mut msg = b"ERR unknown subcommand '".to_vec();
    msg.extend_from_slice(&argv[1][..argv[1].len().min(128)]);
    msg.extend_from_slice(b"'. Try ");
    msg.extend(argv[0].to_ascii_uppercase());
    msg.extend_from_slice(b" HELP.");
    reply::error(out, &msg);
}

/// Checks a subcommand's arity; writes `'container|sub'` wrong-arity errors.
fn sub_arity(out: &mut Out, argv: &[&[u8]], container: &str, sub: &str, arity: i32) -> bool {
    if table::arity_ok(arity, argv.len()) {
        return true;
    }
    wrong_arity(out, &format!("{container}|{sub}"));
    false
}

fn help(out: &mut Out, lines: &[&str]) {
    reply::array(out, lines.len());
    for l in lines {
        reply::simple(out, l);
    }
}

/// The settings `CONFIG GET` knows, with their values.
fn config_values(e: &Engine) -> Vec<(&'static str, String)> {
    let c = &e.config;
    let yes_no = |b: bool| String::from(if b { "yes" } else { "no" });
    alloc::vec![
        ("save", String::new()),
        ("appendonly", yes_no(c.appendonly)),
        ("appendfsync", c.appendfsync.into()),
        ("port", format!("{}", c.port)),
        ("bind", "* -::*".into()),
        ("databases", "1".into()),
        ("maxmemory", format!("{}", c.maxmemory)),
        ("maxmemory-policy", "noeviction".into()),
        ("maxclients", format!("{}", c.maxclients)),
        ("timeout", "0".into()),
        ("tcp-keepalive", "0".into()),
        ("hz", "10".into()),
        ("proto-max-bulk-len", format!("{}", crate::resp::MAX_BULK)),
        ("client-query-buffer-limit", format!("{}", c.query_buffer_limit)),
        (
            "client-output-buffer-limit",
            format!(
                "normal {} {} {} slave 0 0 0 pubsub 0 0 0",
                c.output_limit.hard,
                c.output_limit.soft,
                c.output_limit.soft_ms / 1000
            ),
        ),
        ("maxmemory-clients", format!("{}", c.maxmemory_clients)),
        (
            "requirepass",
            String::from_utf8_lossy(c.requirepass.as_ref().map_or(&b""[..], |p| p.as_bytes()))
                .into_owned(),
        ),
        ("cluster-enabled", "no".into()),
        ("io-threads", "1".into()),
        ("lazyfree-lazy-expire", "no".into()),
        ("set-max-intset-entries", format!("{}", super::sets::INTSET_MAX)),
        ("hash-max-listpack-entries", format!("{}", crate::store::SMALL_HASH)),
    ]
}

pub(crate) fn config(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let sub = argv[1];
    if eq_ic(sub, "get") {
        if !sub_arity(out, argv, "config", "get", -3) {
            return Done::Read;
        }
        let values = config_values(e);
        let mut found: Vec<&(&str, String)> = Vec::new();
        for pattern in &argv[2..] {
            for v in &values {
                let hit = glob::matches(&pattern.to_ascii_lowercase(), v.0.as_bytes());
                if hit && !found.iter().any(|f| f.0 == v.0) {
                    found.push(v);
                }
            }
        }
        reply::array(out, found.len() * 2);
        for (name, value) in found {
            reply::bulk(out, name.as_bytes());
            reply::bulk(out, value.as_bytes());
        }
    } else if eq_ic(sub, "set") {
        if !sub_arity(out, argv, "config", "set", -4) {
            return Done::Read;
        }
        let name = argv[2].to_ascii_lowercase();
        let known = config_values(e).iter().any(|(n, _)| n.as_bytes() == name);
        let mut msg = Vec::new();
        if known || !argv.len().is_multiple_of(2) {
            msg.extend_from_slice(b"ERR CONFIG SET failed (possibly related to argument '");
            msg.extend_from_slice(argv[2]);
            msg.extend_from_slice(b"') - can't set immutable config");
        } else {
            msg.extend_from_slice(b"ERR Unknown option or number of arguments for CONFIG SET - '");
            msg.extend_from_slice(argv[2]);
            msg.push(b'\'');
        }
        reply::error(out, &msg);
    } else if eq_ic(sub, "resetstat") {
        if sub_arity(out, argv, "config", "resetstat", 2) {
            let keep = (e.stats.connected_clients, e.stats.aof_last_write_ok);
            let last_save = e.stats.last_save_time;
            e.stats = super::Stats {
                connected_clients: keep.0,
                aof_last_write_ok: keep.1,
                last_save_time: last_save,
                ..Default::default()
            };
            reply::ok(out);
        }
    } else if eq_ic(sub, "rewrite") {
        if sub_arity(out, argv, "config", "rewrite", 2) {
            reply::error(out, b"ERR The server is running without a config file");
        }
    } else if eq_ic(sub, "help") {
        help(
            out,
            &[
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    kvd's settings are fixed at start (environment variables).",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "HELP",
                "    Print this help.",
            ],
        );
    } else {
        unknown_subcommand(out, argv);
    }
    Done::Read
}

/// One command's `COMMAND INFO` entry (10 elements, as Redis 7).
fn command_info(out: &mut Out, s: &Spec) {
    reply::array(out, 10);
    reply::bulk(out, s.name.as_bytes());
    reply::int(out, i64::from(s.arity));
    reply::array(out, s.flags.len());
    for f in s.flags {
        reply::simple(out, f);
    }
    reply::int(out, i64::from(s.keys.0));
    reply::int(out, i64::from(s.keys.1));
    reply::int(out, i64::from(s.keys.2));
    reply::array(out, s.acl.len());
    for a in s.acl {
        reply::simple(out, a);
    }
    reply::array(out, 0); // tips
    reply::array(out, 0); // key specs
    reply::array(out, 0); // subcommands
}

/// One command's `COMMAND DOCS` entry: summary, since, group.
fn command_docs(out: &mut Out, s: &Spec) {
    reply::bulk(out, s.name.as_bytes());
    reply::array(out, 6);
    for (k, v) in [("summary", s.summary), ("since", s.since), ("group", s.group)] {
        reply::bulk(out, k.as_bytes());
        reply::bulk(out, v.as_bytes());
    }
}

pub(crate) fn command(_e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let all = table::all();
    if argv.len() == 1 {
        reply::array(out, all.len());
        for s in all {
            command_info(out, s);
        }
        return Done::Read;
    }
    let sub = argv[1];
    if eq_ic(sub, "count") {
        if sub_arity(out, argv, "command", "count", 2) {
            reply::int(out, all.len() as i64);
        }
    } else if eq_ic(sub, "info") {
        if argv.len() == 2 {
            reply::array(out, all.len());
            all.iter().for_each(|s| command_info(out, s));
        } else {
            reply::array(out, argv.len() - 2);
            for name in &argv[2..] {
                match table::lookup(name) {
                    Some(s) => command_info(out, s),
                    None => reply::nil_array(out),
                }
            }
        }
    } else if eq_ic(sub, "docs") {
        let specs: Vec<&Spec> = if argv.len() == 2 {
            all.iter().collect()
        } else {
            argv[2..].iter().filter_map(|n| table::lookup(n)).collect()
        };
        reply::array(out, specs.len() * 2);
        specs.into_iter().for_each(|s| command_docs(out, s));
    } else if eq_ic(sub, "list") {
        if argv.len() != 2 {
            reply::error(out, b"ERR syntax error");
        } else {
            reply::array(out, all.len());
            all.iter().for_each(|s| reply::bulk(out, s.name.as_bytes()));
        }
    } else if eq_ic(sub, "help") {
        help(
            out,
            &[
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all commands.",
                "COUNT",
                "    Return the total number of commands in this server.",
                "LIST",
                "    Return a list of all commands in this server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple commands.",
                "HELP",
                "    Print this help.",
            ],
        );
    } else {
        unknown_subcommand(out, argv);
    }
    Done::Read
}

/// The sections `INFO` (and `INFO default`) lists, in order.
const SECTIONS: &[&str] =
    &["server", "clients", "memory", "persistence", "stats", "replication", "cluster", "keyspace"];

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", b / (1024.0 * 1024.0 * 1024.0))
    }
}

fn section(e: &Engine, name: &str, s: &mut String) {
    let st = &e.stats;
    let now = e.now();
    let uptime = now.saturating_sub(e.started_ms) / 1000;
    match name {
        "server" => {
            let _ = write!(
                s,
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nkvd_version:{}\r\nredis_mode:standalone\r\n\
                 os:nabla unikernel\r\narch_bits:64\r\nmultiplexing_api:ppoll\r\nprocess_id:1\r\n\
                 tcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\n\
                 uptime_in_days:{}\r\nhz:10\r\nexecutable:kvd\r\nconfig_file:\r\n",
                env!("CARGO_PKG_VERSION"),
                e.config.port,
                now * 1000,
                uptime / 86400
            );
        }
        "clients" => {
            let _ = write!(
                s,
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n\
                 tracking_clients:0\r\n",
                st.connected_clients, e.config.maxclients
            );
        }
        "memory" => {
            let (used, heap) = (e.memory)();
            let _ = write!(
                s,
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_peak:{used}\r\n\
                 total_system_memory:{heap}\r\ntotal_system_memory_human:{}\r\n\
                 maxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:noeviction\r\n\
                 mem_clients_normal:{}\r\nmem_allocator:talc\r\n",
                human(used),
                human(heap),
                e.config.maxmemory,
                human(e.config.maxmemory),
                st.client_memory
            );
        }
        "persistence" => {
            let _ = write!(
                s,
                "# Persistence\r\nloading:{}\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\n\
                 rdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\n\
                 aof_enabled:{}\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\n\
                 aof_rewrites:{}\r\naof_last_bgrewrite_status:ok\r\naof_last_write_status:{}\r\n\
                 aof_loaded_commands:{}\r\n",
                u8::from(e.keys.loading),
                st.dirty,
                st.last_save_time,
                u8::from(e.config.appendonly),
                st.aof_rewrites,
                if st.aof_last_write_ok { "ok" } else { "err" },
                st.aof_loaded_commands
            );
        }
        "stats" => {
            let _ = write!(
                s,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
                 total_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\n\
                 expired_keys:{}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n\
                 client_query_buffer_limit_disconnections:{}\r\n\
                 client_output_buffer_limit_disconnections:{}\r\n",
                st.total_connections_received,
                st.total_commands_processed,
                st.net_input_bytes,
                st.net_output_bytes,
                st.rejected_connections,
                e.keys.expired_total,
                st.keyspace_hits,
                st.keyspace_misses,
                st.client_query_buffer_limit_disconnections,
                st.client_output_buffer_limit_disconnections
            );
        }
        "replication" => {
            s.push_str(
                "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\n\
                 master_repl_offset:0\r\nrepl_backlog_active:0\r\n",
            );
        }
        "cluster" => s.push_str("# Cluster\r\ncluster_enabled:0\r\n"),
        "keyspace" => {
            s.push_str("# Keyspace\r\n");
            if !e.keys.is_empty() {
                let _ = write!(
                    s,
                    "db0:keys={},expires={},avg_ttl=0\r\n",
                    e.keys.len(),
                    e.keys.expires_len()
                );
            }
        }
        _ => {}
    }
}

pub(crate) fn info(e: &mut Engine, argv: &[&[u8]], out: &mut Out) -> Done {
    let mut wanted: Vec<&str> = Vec::new();
    if argv.len() == 1 {
        wanted.extend_from_slice(SECTIONS);
    }
    for arg in &argv[1..] {
        let arg = arg.to_ascii_lowercase();
        if arg == b"all" || arg == b"default" || arg == b"everything" {
            wanted.extend_from_slice(SECTIONS);
        } else if let Some(s) = SECTIONS.iter().find(|s| s.as_bytes() == arg) {
            wanted.push(s);
        }
    }
    let mut text = String::new();
    for name in SECTIONS.iter().filter(|s| wanted.contains(s)) {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        section(e, name, &mut text);
    }
    reply::bulk(out, text.as_bytes());
    Done::Read
}
