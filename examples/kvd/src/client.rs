//! One connection's state and the rules that bound what it may cost:
//! the parser (its input), the pending replies (its output), its session
//! (`AUTH`), and its share of the memory budget for clients.
//!
//! The guest's connection task (`src/main.rs`) does the I/O: it reads into
//! the parser, runs [`Client::execute_batch`], writes [`Client::out`] and
//! reports what was sent with [`Client::sent`]. It reads nothing more from
//! a client until that client's replies are written (back-pressure: a
//! client that does not read stops being read), so a client's output grows
//! only while a batch runs. A batch stops before its next command once
//! [`BATCH_OUT`] bytes of replies are pending ([`Client::paused`]); the
//! task sends them and runs the rest before reading again. So a pipeline
//! of any depth (`GET` of a 16 KiB value 64 times, or 2000 times) is
//! served a slice at a time, and what one client holds is at most
//! `BATCH_OUT` plus one reply: what the limits below bound is one reply
//! (`GET` of a large value, `LRANGE` of a long list, `KEYS`).
//!
//! The limits, checked as Redis checks them:
//!
//! * **hard output limit** (`client-output-buffer-limit normal <hard>`):
//!   the reply buffer never grows past it; the reply that would is not
//!   built and the client is closed at once, its pending replies dropped
//!   (Redis: `freeClientAsync`);
//! * **soft output limit** (`<soft> <seconds>`): a client whose pending
//!   output stays at `soft` bytes or more for more than the time is closed
//!   ([`Client::over_soft_limit`], which the server calls on each write and
//!   at [`Client::soft_deadline`]);
//! * **memory for all clients** (`maxmemory-clients`): input and output
//!   buffers of all clients together; a buffer may not grow past what the
//!   others leave (a client that would is closed: its reply is not built,
//!   or its input is refused). Each client keeps a running count of its own
//!   bytes in [`Stats::client_memory`](crate::commands::Stats), so nothing
//!   is scanned;
//! * **the heap**: no buffer grows into the last sixteenth of the heap,
//!   which stays for what cannot fail (the dataset's own growth, sockets);
//!   and every buffer is allocated with `try_reserve`, so a refusal closes
//!   one client, never aborts the guest;
//! * **input** (`client-query-buffer-limit`): the parser's buffer and
//!   argument table, within the same budget; before `AUTH`, Redis's tighter
//!   parser limits (10 arguments, 16 KiB each).
//!
//! Client buffers are heap, so they count in the memory that `maxmemory`
//! compares against (`used_memory`, as in Redis): while clients hold large
//! buffers, commands that may grow the dataset get `-OOM`.

use alloc::vec::Vec;

#[cfg(test)]
use crate::auth::Password;
use crate::commands::{Engine, Session, Stats};
use crate::reply::{self, Out};
use crate::resp::{Parser, ProtocolError};

/// What a client may always hold in each of its buffers, whatever the
/// budget: part of a connection's fixed cost, like its socket buffers.
pub const FLOOR: usize = 16 * 1024;
/// An output buffer larger than this is given back once sent.
pub const OUT_KEEP: usize = 64 * 1024;
/// A batch runs no further command once this many bytes of replies are
/// pending: they are sent first (so that a deep pipeline of large replies
/// costs a slice of memory, not the whole pipeline's replies at once).
pub const BATCH_OUT: usize = OUT_KEEP;
/// Fraction of the heap (1/n) client buffers never grow into.
pub const HEAP_RESERVE: u64 = 16;

/// Appends what a command changed to the log (see
/// [`Client::execute_batch`]); returns whether it appended anything.
pub type LogFn<'a> = dyn FnMut(&mut Engine, Option<&[&[u8]]>) -> bool + 'a;

/// Why a client is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// After its replies are sent (`QUIT`, a protocol error).
    AfterReplies,
    /// At once, its replies dropped: its output passed a limit.
    OutputLimit,
    /// At once: its input passed the limit (no reply, as Redis).
    QueryLimit,
}

/// One connection.
#[derive(Debug)]
pub struct Client {
    /// The input and its parser.
    pub parser: Parser,
    /// Replies not yet sent.
    pub out: Out,
    /// Whether it has authenticated.
    pub session: Session,
    /// Its query buffer limit (before the budget lowers it).
    query_limit: usize,
    /// The allocation of the argument vector, reused by every command.
    spare_argv: Vec<&'static [u8]>,
    /// Bytes counted for it in `Stats::client_memory`.
    accounted: usize,
    /// Since when (ms) its pending output has been at the soft limit or more.
    soft_since: Option<u64>,
    /// The last batch stopped at [`BATCH_OUT`] with input left.
    paused: bool,
}

/// A `Vec<&[u8]>` with no elements, of any lifetime, reusing `v`'s
/// allocation (so that each command does not allocate its argv).
fn recycle<'b>(mut v: Vec<&[u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter().map(|_| -> &'b [u8] { unreachable!() }).collect()
}

impl Client {
    /// A new connection's state, counted in `engine`'s stats.
    pub fn new(engine: &mut Engine) -> Self {
        let query_limit = usize::try_from(engine.config.query_buffer_limit).unwrap_or(usize::MAX);
        let mut c = Self {
            parser: Parser::new(query_limit),
            out: Out::new(),
            session: engine.new_session(),
            query_limit,
            spare_argv: Vec::new(),
            accounted: 0,
            soft_since: None,
            paused: false,
        };
        c.parser.set_authenticated(c.session.authenticated);
        c.account(&mut engine.stats);
        c
    }

    /// Bytes its buffers hold allocated.
    pub fn memory(&self) -> usize {
        self.parser.memory()
            + self.out.capacity()
            + self.spare_argv.capacity() * core::mem::size_of::<&[u8]>()
    }

    /// Brings its count in `stats.client_memory` up to date.
    fn account(&mut self, stats: &mut Stats) {
        let now = self.memory();
        stats.client_memory =
            (stats.client_memory + now as u64).saturating_sub(self.accounted as u64);
        self.accounted = now;
    }

    /// Removes its count from `stats` (the connection is gone).
    pub fn release(&mut self, stats: &mut Stats) {
        stats.client_memory = stats.client_memory.saturating_sub(self.accounted as u64);
        self.accounted = 0;
    }

    /// How far a buffer of this client now holding `mine` bytes may grow:
    /// what the budget for all clients and the heap's reserve leave.
    fn allowance(&self, engine: &Engine, mine: usize) -> usize {
        let others = engine.stats.client_memory.saturating_sub(self.accounted as u64);
        let budget = match engine.config.maxmemory_clients {
            0 => u64::MAX,
            max => max.saturating_sub(others),
        };
        let (in_use, heap) = engine.memory_usage();
        let heap_left = match heap {
            0 => u64::MAX, // no probe (tests)
            heap => (heap - heap / HEAP_RESERVE).saturating_sub(in_use),
        };
        // The budget counts this client's other buffers; the heap counts
        // every allocation, this buffer's own included.
        let other_mine = self.accounted.saturating_sub(mine) as u64;
        let by_budget = budget.saturating_sub(other_mine);
        let by_heap = heap_left.saturating_add(mine as u64);
        usize::try_from(by_budget.min(by_heap)).unwrap_or(usize::MAX).max(FLOOR)
    }

    /// Room to read into, within its limits; `Err` closes the client
    /// (without a reply, as Redis does for `client-query-buffer-limit`).
    pub fn read_buffer(&mut self, engine: &mut Engine) -> Result<&mut [u8], Close> {
        let limit = self.allowance(engine, self.parser.memory()).min(self.query_limit);
        self.parser.set_limit(limit);
        // `spare` may allocate: count it before the next client looks.
        let ok = self.parser.spare().is_ok();
        self.account(&mut engine.stats);
        if !ok {
            engine.stats.client_query_buffer_limit_disconnections += 1;
            return Err(Close::QueryLimit);
        }
        self.parser.spare().map_err(|_| Close::QueryLimit)
    }

    /// Records that `n` bytes were read into [`Client::read_buffer`].
    pub fn received(&mut self, n: usize, engine: &mut Engine) {
        self.parser.advance(n);
        engine.stats.net_input_bytes += n as u64;
    }

    /// Whether the last batch stopped with its replies at [`BATCH_OUT`]
    /// bytes while input was left: once they are sent, the next batch runs
    /// before anything more is read.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Executes the complete commands received, appending the replies to
    /// [`Client::out`] (which must be empty: everything before was sent),
    /// until [`BATCH_OUT`] bytes of replies are pending ([`Client::paused`]).
    /// `log` is called for each command that changed the dataset, with its
    /// argv if it is logged as received (see [`Engine`]), and returns
    /// whether it appended anything; the result's second field is whether
    /// any call did.
    pub fn execute_batch(
        &mut self,
        engine: &mut Engine,
        log: &mut LogFn<'_>,
    ) -> (Option<Close>, bool) {
        let hard = match engine.config.output_limit.hard {
            0 => usize::MAX,
            h => usize::try_from(h).unwrap_or(usize::MAX),
        };
        let limit = self.allowance(engine, self.out.capacity()).min(hard);
        self.out.set_limit(limit);
        let mut spare = core::mem::take(&mut self.spare_argv);
        let mut close = None;
        let mut wrote = false;
        self.paused = false;
        loop {
            if self.out.len() >= BATCH_OUT {
                self.paused = self.parser.buffered() > 0;
                break;
            }
            let cmd = match self.parser.next_command() {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(ProtocolError::QueryBufferLimit) => {
                    engine.stats.client_query_buffer_limit_disconnections += 1;
                    close = Some(Close::QueryLimit);
                    break;
                }
                Err(e) => {
                    if let Some(msg) = e.message() {
                        reply::error(&mut self.out, &msg);
                    }
                    close = Some(Close::AfterReplies);
                    break;
                }
            };
            let mut argv = recycle(spare);
            if argv.try_reserve(cmd.len()).is_err() {
                spare = recycle(argv);
                close = Some(Close::QueryLimit);
                break;
            }
            argv.extend(cmd.args());
            let effect = engine.execute_in(&mut self.session, &argv, &mut self.out);
            let logged = effect.log_argv.then_some(&argv[..]);
            if engine.has_log() || logged.is_some() {
                wrote |= log(engine, logged);
            }
            spare = recycle(argv);
            // `AUTH` lifts the parser's limits for the commands after it.
            self.parser.set_authenticated(self.session.authenticated);
            if self.out.overflowed() {
                close = Some(Close::OutputLimit);
                break;
            }
            if effect.close {
                close = Some(Close::AfterReplies);
                break;
            }
        }
        self.spare_argv = recycle(spare);
        if self.spare_argv.capacity() > 1024 {
            self.spare_argv = Vec::new();
        }
        self.parser.shrink_tables();
        if self.out.overflowed() {
            // Whatever closed the batch, a reply that did not fit closes
            // the client now, its replies dropped.
            close = Some(Close::OutputLimit);
        }
        if close == Some(Close::OutputLimit) {
            engine.stats.client_output_buffer_limit_disconnections += 1;
            self.out.clear(0);
        }
        self.account(&mut engine.stats);
        (close, wrote)
    }

    /// Records that the first `n` pending bytes were sent; returns whether
    /// the client must now be closed for its soft output limit.
    pub fn sent(&mut self, n: usize, engine: &mut Engine, now_ms: u64) -> bool {
        self.out.consume(n, OUT_KEEP);
        engine.stats.net_output_bytes += n as u64;
        self.account(&mut engine.stats);
        self.over_soft_limit(engine, now_ms)
    }

    /// Redis's soft limit: whether the pending output has been at the soft
    /// limit or more for longer than its time (the first check at or over
    /// it starts the clock; one under it stops it). Counts the
    /// disconnection when it says so.
    pub fn over_soft_limit(&mut self, engine: &mut Engine, now_ms: u64) -> bool {
        let l = engine.config.output_limit;
        if l.soft == 0 || (self.out.len() as u64) < l.soft {
            self.soft_since = None;
            return false;
        }
        match self.soft_since {
            None => {
                self.soft_since = Some(now_ms);
                false
            }
            Some(t) if now_ms.saturating_sub(t) > l.soft_ms => {
                engine.stats.client_output_buffer_limit_disconnections += 1;
                true
            }
            Some(_) => false,
        }
    }

    /// When (ms) [`Client::over_soft_limit`] will say so if nothing is sent
    /// meanwhile; `None` while the output is under the soft limit.
    pub fn soft_deadline(&self, engine: &Engine) -> Option<u64> {
        self.soft_since.map(|t| t + engine.config.output_limit.soft_ms + 1)
    }
}

#[cfg(test)]
mod tests;
