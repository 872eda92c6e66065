//! kvd's protocol and engine (the `kv` library): the incremental RESP2
//! parser fed in arbitrary pieces, as a connection reads them, and every
//! command it yields executed by the engine, as `examples/kvd/src/main.rs`
//! does. What the engine logs for persistence is replayed into a second
//! engine, as kvd does at start from its append-only file: replay must
//! accept everything the engine logged.
//!
//! The input's first byte sets the size of the pieces; the clock advances
//! one millisecond per command.

#![no_main]

use kv::commands::{Config, Engine};
use kv::{Parser, reply};
use libfuzzer_sys::fuzz_target;

const START_MS: u64 = 1_700_000_000_000;
/// A small query buffer limit, so that the limit is reached too.
const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, data)) = data.split_first() else { return };
    let piece = usize::from(piece).max(1);
    let config = Config { query_buffer_limit: LIMIT as u64, ..Config::default() };
    let mut engine = Engine::new(config.clone(), START_MS, 1);
    let mut log: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut parser = Parser::new(LIMIT);
    let mut out = Vec::new();
    let mut now = START_MS;
    'conn: for chunk in data.chunks(piece) {
        if parser.feed(chunk).is_err() {
            break;
        }
        loop {
            let cmd = match parser.next_command() {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(e) => {
                    if let Some(msg) = e.message() {
                        reply::error(&mut out, &msg);
                    }
                    break 'conn;
                }
            };
            let argv: Vec<&[u8]> = cmd.args().collect();
            now += 1;
            engine.set_time(now);
            let effect = engine.execute(&argv, &mut out);
            log.extend(engine.take_log());
            if effect.log_argv {
                log.push(argv.iter().map(|a| a.to_vec()).collect());
            }
            if effect.close {
                break 'conn;
            }
            // Replies are sent after each batch; keep memory bounded.
            out.clear();
        }
    }

    let mut replica = Engine::new(config, now, 1);
    replica.begin_loading();
    for argv in &log {
        let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        if let Err(e) = replica.replay(&argv) {
            panic!("replay of {:?} failed: {:?}", show(&argv), String::from_utf8_lossy(&e));
        }
    }
    replica.end_loading();
});

fn show(argv: &[&[u8]]) -> Vec<String> {
    argv.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}
