//! RESP2 requests: an incremental parser over a connection's input buffer.
//!
//! A client sends either *multibulk* commands (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`,
//! what client libraries send) or *inline* commands (`GET k\r\n`, what a
//! person types into telnet, with Redis's quoting rules). The [`Parser`]
//! owns the connection's input buffer: the server reads into
//! [`Parser::spare`], then takes every complete command with
//! [`Parser::next_command`] (pipelining), which returns `Ok(None)` when the
//! rest is incomplete.
//!
//! The rules and limits are Redis 7's (`processMultibulkBuffer`,
//! `processInlineBuffer`, `sdssplitargs`, `string2ll`):
//!
//! * a bulk string is at most [`MAX_BULK`] (512 MiB, `proto-max-bulk-len`);
//!   a larger, negative or malformed length is `invalid bulk length`. The
//!   declared size is never allocated up front: the buffer grows as the
//!   bytes arrive, up to the connection's limit ([`Parser::new`]), past
//!   which the connection is closed (Redis's `client-query-buffer-limit`);
//! * a multibulk count is at most `i32::MAX`; a count ≤ 0 is an empty
//!   command (ignored, no reply);
//! * a length line or an inline command longer than 64 KiB without its end
//!   is an error (`too big ...`);
//! * numbers are strict: no sign `+`, no leading zeros, no spaces;
//! * after a protocol error Redis replies with the error and closes the
//!   connection once the replies before it are sent: so does kvd
//!   ([`ProtocolError::message`] is the reply's text).
//!
//! One deliberate difference: Redis stops reading an inline command at a
//! NUL byte (it uses C string functions), so an inline command with a NUL
//! in it hangs the connection; here a NUL is an ordinary byte.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

/// Largest bulk string a client may send (Redis's `proto-max-bulk-len`).
pub const MAX_BULK: usize = 512 * 1024 * 1024;
/// Longest inline command, or length line, without its line end
/// (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;
/// Largest multibulk count (Redis: `INT_MAX`).
pub const MAX_MULTIBULK: i64 = i32::MAX as i64;
/// Largest multibulk count of a client that has not authenticated while a
/// password is required (Redis 7.0.15's limit).
pub const UNAUTHENTICATED_MULTIBULK: i64 = 10;
/// Largest bulk string of a client that has not authenticated.
pub const UNAUTHENTICATED_BULK: usize = 16 * 1024;

/// Buffer growth step, and the smallest room offered to a read.
const READ_CHUNK: usize = 16 * 1024;

/// A malformed request. Each is answered with `-ERR <message>` and the
/// connection is closed, except [`ProtocolError::QueryBufferLimit`], which
/// closes it without a reply (as Redis does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*` with a malformed or too large count.
    InvalidMultibulkLength,
    /// `$` with a malformed, negative or too large length.
    InvalidBulkLength,
    /// An element of a multibulk that does not start with `$`.
    ExpectedDollar(u8),
    /// An inline command longer than [`MAX_INLINE`] without a line end.
    TooBigInline,
    /// A multibulk count line longer than [`MAX_INLINE`].
    TooBigMultibulkCount,
    /// A bulk length line longer than [`MAX_INLINE`].
    TooBigBulkCount,
    /// An inline command with an unterminated quote, or a closing quote
    /// followed by something other than a space.
    UnbalancedQuotes,
    /// The pending input exceeds the connection's limit (or memory for it
    /// could not be had).
    QueryBufferLimit,
    /// A multibulk count above [`UNAUTHENTICATED_MULTIBULK`] before `AUTH`.
    UnauthenticatedMultibulkLength,
    /// A bulk length above [`UNAUTHENTICATED_BULK`] before `AUTH`.
    UnauthenticatedBulkLength,
}

impl ProtocolError {
    /// The error reply's text without the leading `-`, as Redis words it;
    /// `None` for an error that closes the connection without a reply.
    pub fn message(&self) -> Option<Vec<u8>> {
        let text: &[u8] = match self {
            Self::InvalidMultibulkLength => b"ERR Protocol error: invalid multibulk length",
            Self::InvalidBulkLength => b"ERR Protocol error: invalid bulk length",
            Self::ExpectedDollar(c) => {
                let mut m = b"ERR Protocol error: expected '$', got '".to_vec();
                m.push(*c);
                m.push(b'\'');
                return Some(m);
            }
            Self::TooBigInline => b"ERR Protocol error: too big inline request",
            Self::TooBigMultibulkCount => b"ERR Protocol error: too big mbulk count string",
            Self::TooBigBulkCount => b"ERR Protocol error: too big bulk count string",
            Self::UnbalancedQuotes => b"ERR Protocol error: unbalanced quotes in request",
            Self::UnauthenticatedMultibulkLength => {
                b"ERR Protocol error: unauthenticated multibulk length"
            }
            Self::UnauthenticatedBulkLength => b"ERR Protocol error: unauthenticated bulk length",
            Self::QueryBufferLimit => return None,
        };
        Some(text.to_vec())
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => f.write_str(&alloc::string::String::from_utf8_lossy(&m)),
            None => f.write_str("query buffer limit reached"),
        }
    }
}

impl core::error::Error for ProtocolError {}

/// A parsed command: its arguments, borrowed from the parser.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    buf: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Command<'a> {
    /// Number of arguments (at least 1).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Never true: empty commands are skipped.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The arguments, the command name first.
    pub fn args(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        self.ranges.iter().map(move |r| &buf[r.clone()])
    }
}

/// A multibulk whose elements are still arriving.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Elements still to come.
    remaining: usize,
    /// Length of the next element, once its `$` line was read.
    bulk: Option<usize>,
}

/// The incremental parser and the input buffer of one connection.
#[derive(Debug)]
pub struct Parser {
    /// Input; `buf[..filled]` holds bytes received.
    buf: Vec<u8>,
    filled: usize,
    /// Start of the first byte not yet consumed.
    pos: usize,
    /// Start of the command being parsed (== `pos` between commands).
    start: usize,
    pending: Option<Pending>,
    /// Argument ranges: into `buf` for a multibulk, into `inline` for an
    /// inline command.
    ranges: Vec<Range<usize>>,
    inline: Vec<u8>,
    /// Most bytes the parser may hold: the pending command (with those
    /// received behind it) and its argument table.
    limit: usize,
    /// Redis's tighter limits for a client that has not authenticated.
    unauthenticated: bool,
}

impl Parser {
    /// A parser whose pending input may not exceed `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            filled: 0,
            pos: 0,
            start: 0,
            pending: None,
            ranges: Vec::new(),
            inline: Vec::new(),
            limit,
            unauthenticated: false,
        }
    }

    /// Changes the limit (the server lowers it while the memory budget
    /// for clients is short); takes effect at the next growth.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Applies Redis's limits for clients that have not authenticated
    /// (multibulk count 10, bulk length 16 KiB) to the commands parsed
    /// from now on, or lifts them.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.unauthenticated = !authenticated;
    }

    /// Bytes the parser holds allocated: the input buffer and the tables
    /// of the command being parsed.
    pub fn memory(&self) -> usize {
        self.buf.capacity()
            + self.ranges.capacity() * core::mem::size_of::<Range<usize>>()
            + self.inline.capacity()
    }

    /// Gives back argument tables grown for a command with many
    /// arguments (an inline line of 64 KiB can split into 32 Ki of them)
    /// once no command is in progress, so that an idle connection holds
    /// little.
    pub fn shrink_tables(&mut self) {
        if self.pending.is_none() {
            if self.ranges.capacity() > 1024 {
                self.ranges = Vec::new();
            }
            if self.inline.capacity() > 4096 {
                self.inline = Vec::new();
            }
        }
    }

    /// Bytes the limit leaves for the input buffer.
    fn input_budget(&self) -> usize {
        let tables =
            self.ranges.capacity() * core::mem::size_of::<Range<usize>>() + self.inline.capacity();
        self.limit.saturating_sub(tables)
    }

    /// Room in the argument table for one more, within the limit.
    fn reserve_range(&mut self) -> Result<(), ProtocolError> {
        if self.ranges.len() == self.ranges.capacity() {
            let grow = self.ranges.capacity().max(4);
            let bytes = grow * core::mem::size_of::<Range<usize>>();
            if self.memory() + bytes > self.limit || self.ranges.try_reserve_exact(grow).is_err() {
                return Err(ProtocolError::QueryBufferLimit);
            }
        }
        Ok(())
    }

    /// Room to read into: at least a few KiB, more when a long bulk string
    /// is known to be coming (growing with what arrives, never to the
    /// declared size at once). Fails when the pending input would exceed
    /// the limit, or memory cannot be had.
    pub fn spare(&mut self) -> Result<&mut [u8], ProtocolError> {
        self.compact();
        if self.buf.len() - self.filled < READ_CHUNK / 4 {
            let pending = self.filled - self.start;
            let budget = self.input_budget();
            if pending >= budget {
                return Err(ProtocolError::QueryBufferLimit);
            }
            // Double what is buffered (so that a long bulk costs amortised
            // linear copying), at least a chunk, at most up to the limit.
            let grow = pending.max(READ_CHUNK).min(budget - pending);
            let new_len = self.filled + grow.max(1);
            self.buf
                .try_reserve_exact(new_len - self.buf.len())
                .map_err(|_| ProtocolError::QueryBufferLimit)?;
            self.buf.resize(new_len, 0);
        }
        Ok(&mut self.buf[self.filled..])
    }

    /// Records that `n` bytes were read into [`Parser::spare`].
    pub fn advance(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Appends `data` (for tests and callers that already hold bytes).
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), ProtocolError> {
        while !data.is_empty() {
            let room = self.spare()?;
            let n = room.len().min(data.len());
            room[..n].copy_from_slice(&data[..n]);
            self.advance(n);
            data = &data[n..];
        }
        Ok(())
    }

    /// Bytes received and not yet parsed into a command.
    pub fn buffered(&self) -> usize {
        self.filled - self.start
    }

    /// Moves the unconsumed bytes to the front of the buffer.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        let shift = self.start;
        self.buf.copy_within(shift..self.filled, 0);
        self.filled -= shift;
        self.pos -= shift;
        self.start = 0;
        if self.pending.is_some() {
            for r in &mut self.ranges {
                *r = r.start - shift..r.end - shift;
            }
        }
        // Give back a buffer grown for a long command once it is done.
        if self.filled == 0 && self.buf.len() > 4 * READ_CHUNK {
            self.buf = Vec::new();
        }
    }

    /// The next complete command, `Ok(None)` if the buffer ends inside
    /// one (read more, then call again), or the protocol error to report.
    pub fn next_command(&mut self) -> Result<Option<Command<'_>>, ProtocolError> {
        loop {
            if self.pending.is_none() {
                self.start = self.pos;
                if self.pos == self.filled {
                    return Ok(None);
                }
                if self.buf[self.pos] == b'*' {
                    if !self.multibulk_header()? {
                        return Ok(None);
                    }
                    if self.pending.is_none() {
                        continue; // an empty multibulk
                    }
                } else {
                    match self.inline_command()? {
                        None => return Ok(None),
                        Some(false) => continue, // an empty line
                        Some(true) => {
                            return Ok(Some(Command { buf: &self.inline, ranges: &self.ranges }));
                        }
                    }
                }
            }
            if !self.multibulk_elements()? {
                return Ok(None);
            }
            self.pending = None;
            let buf = &self.buf[..self.filled];
            let cmd = Command { buf, ranges: &self.ranges };
            self.start = self.pos;
            return Ok(Some(cmd));
        }
    }

    /// The line from `pos` to its `\r`, and the position after `\r\n`;
    /// `None` if the line end has not arrived.
    fn line(&self, too_big: ProtocolError) -> Result<Option<(usize, usize)>, ProtocolError> {
        let data = &self.buf[self.pos..self.filled];
        match data.iter().position(|&b| b == b'\r') {
            // Redis does not check that '\n' follows '\r'; it needs both there.
            Some(cr) if cr + 2 <= data.len() => Ok(Some((self.pos + cr, self.pos + cr + 2))),
            Some(_) => Ok(None),
            None if data.len() > MAX_INLINE => Err(too_big),
            None => Ok(None),
        }
    }

    /// Parses `*<count>\r\n`; false if incomplete.
    fn multibulk_header(&mut self) -> Result<bool, ProtocolError> {
        let Some((cr, next)) = self.line(ProtocolError::TooBigMultibulkCount)? else {
            return Ok(false);
        };
        let count = match parse_i64(&self.buf[self.pos + 1..cr]) {
            Some(n) if n <= MAX_MULTIBULK => n,
            _ => return Err(ProtocolError::InvalidMultibulkLength),
        };
        if self.unauthenticated && count > UNAUTHENTICATED_MULTIBULK {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        self.pos = next;
        self.ranges.clear();
        if self.ranges.capacity() > 1024 {
            // Left by an inline command with many arguments.
            self.ranges = Vec::new();
        }
        if count > 0 {
            let count = count as usize;
            if self.ranges.capacity() < count.min(1024) {
                let more = count.min(1024) - self.ranges.len();
                if self.memory() + more * core::mem::size_of::<Range<usize>>() > self.limit
                    || self.ranges.try_reserve_exact(more).is_err()
                {
                    return Err(ProtocolError::QueryBufferLimit);
                }
            }
            self.pending = Some(Pending { remaining: count, bulk: None });
        } else {
            self.start = self.pos;
        }
        Ok(true)
    }

    /// Parses the elements of the pending multibulk; true once all arrived.
    fn multibulk_elements(&mut self) -> Result<bool, ProtocolError> {
        let Some(mut p) = self.pending else { return Ok(true) };
        while p.remaining > 0 {
            let len = match p.bulk {
                Some(len) => len,
                None => {
                    let Some((cr, next)) = self.line(ProtocolError::TooBigBulkCount)? else {
                        self.pending = Some(p);
                        return Ok(false);
                    };
                    if self.buf[self.pos] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(self.buf[self.pos]));
                    }
                    let len = match parse_i64(&self.buf[self.pos + 1..cr]) {
                        Some(n) if (0..=MAX_BULK as i64).contains(&n) => n as usize,
                        _ => return Err(ProtocolError::InvalidBulkLength),
                    };
                    if self.unauthenticated && len > UNAUTHENTICATED_BULK {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    self.pos = next;
                    p.bulk = Some(len);
                    len
                }
            };
            // The element and the two bytes that end it (not checked, as Redis).
            if self.filled - self.pos < len + 2 {
                self.pending = Some(p);
                return Ok(false);
            }
            self.reserve_range()?;
            self.ranges.push(self.pos..self.pos + len);
            self.pos += len + 2;
            p.bulk = None;
            p.remaining -= 1;
        }
        self.pending = Some(p);
        Ok(true)
    }

    /// Parses an inline command: `Some(true)` with arguments in `ranges`,
    /// `Some(false)` for an empty line, `None` if incomplete.
    fn inline_command(&mut self) -> Result<Option<bool>, ProtocolError> {
        let data = &self.buf[self.pos..self.filled];
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            if data.len() > MAX_INLINE {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        let mut line = &data[..nl];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        self.inline.clear();
        self.ranges.clear();
        split_args(line, &mut self.inline, &mut self.ranges)?;
        self.pos += nl + 1;
        self.start = self.pos;
        Ok(Some(!self.ranges.is_empty()))
    }
}

/// Redis's `string2ll`: an optional `-`, then digits without leading zeros
/// (`0` alone is zero), within `i64`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !neg => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 { None } else { Some((v as i64).wrapping_neg()) }
    } else {
        i64::try_from(v).ok()
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Redis's `sdssplitargs`: splits an inline command into arguments, with
/// `"..."` (escapes `\n \r \t \b \a \xHH \<c>`) and `'...'` (escape `\'`)
/// quoting. A closing quote must be followed by a space or the end.
/// Arguments are appended to `out`, their ranges to `ranges`.
pub fn split_args(
    line: &[u8],
    out: &mut Vec<u8>,
    ranges: &mut Vec<Range<usize>>,
) -> Result<(), ProtocolError> {
    let at = |i: usize| line.get(i).copied();
    let mut i = 0;
    loop {
        while at(i).is_some_and(is_space) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(());
        }
        let start = out.len();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let Some(c) = at(i) else {
                if in_dq || in_sq {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                break;
            };
            if in_dq {
                if c == b'\\'
                    && at(i + 1) == Some(b'x')
                    && let (Some(h), Some(l)) = (at(i + 2).and_then(hex), at(i + 3).and_then(hex))
                {
                    out.push(h * 16 + l);
                    i += 3;
                } else if c == b'\\' && at(i + 1).is_some() {
                    i += 1;
                    out.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(i + 1).is_some_and(|n| !is_space(n)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                }
            } else if in_sq {
                if c == b'\\' && at(i + 1) == Some(b'\'') {
                    i += 1;
                    out.push(b'\'');
                } else if c == b'\'' {
                    if at(i + 1).is_some_and(|n| !is_space(n)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => out.push(c),
                }
            }
            i += 1;
        }
        ranges.push(start..out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    type Cmds = Vec<Vec<Vec<u8>>>;

    /// Feeds `input` and collects every command until incomplete or error.
    fn parse_all(p: &mut Parser, input: &[u8]) -> (Cmds, Result<(), ProtocolError>) {
        p.feed(input).unwrap();
        let mut cmds = Vec::new();
        loop {
            match p.next_command() {
                Ok(Some(c)) => cmds.push(c.args().map(<[u8]>::to_vec).collect()),
                Ok(None) => return (cmds, Ok(())),
                Err(e) => return (cmds, Err(e)),
            }
        }
    }

    fn one(input: &[u8]) -> Result<Cmds, ProtocolError> {
        let mut p = Parser::new(1 << 30);
        let (cmds, r) = parse_all(&mut p, input);
        r.map(|()| cmds)
    }

    fn argv(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_pipelining() {
        let cmds = one(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds, vec![argv(&["GET", "k"]), argv(&["PING"])]);
        // Binary-safe: CR LF inside a bulk.
        let cmds = one(b"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n").unwrap();
        assert_eq!(cmds[0][1], b"a\r\nb");
        // Empty bulk strings, empty and negative multibulks (ignored).
        let cmds = one(b"*0\r\n*-1\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n").unwrap();
        assert_eq!(cmds, vec![vec![b"ECHO".to_vec(), Vec::new()]]);
    }

    #[test]
    fn every_split_point_gives_the_same_commands() {
        let input: &[u8] =
            b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nv\r\nlu\r\nPING\r\n\r\nECHO \"a b\"\n*1\r\n$4\r\nPING\r\n";
        let whole = one(input).unwrap();
        assert_eq!(whole.len(), 4);
        for split in 0..=input.len() {
            let mut p = Parser::new(1 << 20);
            let (mut cmds, r) = parse_all(&mut p, &input[..split]);
            r.unwrap();
            let (more, r) = parse_all(&mut p, &input[split..]);
            r.unwrap();
            cmds.extend(more);
            assert_eq!(cmds, whole, "split at {split}");
        }
        // Byte by byte.
        let mut p = Parser::new(1 << 20);
        let mut cmds = Vec::new();
        for &b in input {
            let (more, r) = parse_all(&mut p, &[b]);
            r.unwrap();
            cmds.extend(more);
        }
        assert_eq!(cmds, whole);
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn bulk_length_limits() {
        assert_eq!(one(b"*1\r\n$1073741824\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(one(b"*1\r\n$536870913\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(one(b"*1\r\n$-1\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(one(b"*1\r\n$abc\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(one(b"*1\r\n$+4\r\nPING\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(one(b"*1\r\n$ 4\r\nPING\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(one(b"*1\r\n$04\r\nPING\r\n"), Err(ProtocolError::InvalidBulkLength));
        // 512 MiB is allowed: the parser waits for it without allocating it.
        let mut p = Parser::new(1 << 30);
        let (cmds, r) = parse_all(&mut p, b"*1\r\n$536870912\r\nabc");
        assert!(cmds.is_empty() && r.is_ok());
        assert!(p.buf.len() < 1 << 20, "{}", p.buf.len());
        let msg = ProtocolError::InvalidBulkLength.message().unwrap();
        assert_eq!(msg, b"ERR Protocol error: invalid bulk length");
    }

    #[test]
    fn multibulk_length_limits() {
        assert_eq!(one(b"*abc\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(one(b"*3000000000\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(one(b"*+1\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(one(b"*01\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(one(b"*\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        // A huge count is accepted and waits, without reserving it.
        let mut p = Parser::new(1 << 20);
        let (cmds, r) = parse_all(&mut p, b"*2147483647\r\n$4\r\nPING\r\n");
        assert!(cmds.is_empty() && r.is_ok());
        assert!(p.ranges.capacity() <= 1024);
        assert_eq!(one(b"*1\r\n:1\r\n"), Err(ProtocolError::ExpectedDollar(b':')));
        let msg = ProtocolError::ExpectedDollar(b':').message().unwrap();
        assert_eq!(msg, b"ERR Protocol error: expected '$', got ':'");
    }

    #[test]
    fn commands_before_an_error_are_returned() {
        let mut p = Parser::new(1 << 20);
        let (cmds, r) = parse_all(&mut p, b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n");
        assert_eq!(cmds.len(), 2);
        assert_eq!(r, Err(ProtocolError::InvalidMultibulkLength));
    }

    #[test]
    fn long_lines_without_an_end() {
        let long = vec![b'x'; MAX_INLINE + 1];
        assert_eq!(one(&long), Err(ProtocolError::TooBigInline));
        assert_eq!(one(&long[..MAX_INLINE]), Ok(vec![]));
        let mut mb = b"*".to_vec();
        mb.extend(vec![b'1'; MAX_INLINE + 1]);
        assert_eq!(one(&mb), Err(ProtocolError::TooBigMultibulkCount));
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(vec![b'1'; MAX_INLINE + 1]);
        assert_eq!(one(&bulk), Err(ProtocolError::TooBigBulkCount));
    }

    #[test]
    fn the_query_buffer_limit_closes_the_connection() {
        let mut p = Parser::new(64 * 1024);
        let mut input = b"*1\r\n$100000\r\n".to_vec();
        input.extend(vec![b'a'; 70_000]);
        assert_eq!(p.feed(&input), Err(ProtocolError::QueryBufferLimit));
        assert_eq!(ProtocolError::QueryBufferLimit.message(), None);
        // Many small commands are fine: consumed ones do not count.
        let mut p = Parser::new(64 * 1024);
        for _ in 0..10_000 {
            let (cmds, r) = parse_all(&mut p, b"*1\r\n$4\r\nPING\r\n");
            assert_eq!((cmds.len(), r), (1, Ok(())));
        }
    }

    #[test]
    fn a_big_bulk_in_small_reads() {
        let mut p = Parser::new(8 << 20);
        let value = vec![b'v'; 3 << 20];
        p.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3145728\r\n").unwrap();
        for chunk in value.chunks(1500) {
            assert!(p.next_command().unwrap().is_none());
            p.feed(chunk).unwrap();
        }
        p.feed(b"\r\n").unwrap();
        let cmd = p.next_command().unwrap().unwrap();
        let args: Vec<&[u8]> = cmd.args().collect();
        assert_eq!(args[2].len(), 3 << 20);
    }

    #[test]
    fn inline_commands_as_redis_splits_them() {
        assert_eq!(one(b"  PING  \r\n").unwrap(), vec![argv(&["PING"])]);
        assert_eq!(one(b"PING\n").unwrap(), vec![argv(&["PING"])]);
        assert_eq!(one(b"\r\n\r\n").unwrap(), Cmds::new());
        assert_eq!(one(b"foo bar\r\n").unwrap(), vec![argv(&["foo", "bar"])]);
        assert_eq!(one(b"ECHO \"a\\x41\\n\"\r\n").unwrap(), vec![argv(&["ECHO", "aA\n"])]);
        assert_eq!(one(b"ECHO 'a\\'b'\r\n").unwrap(), vec![argv(&["ECHO", "a'b"])]);
        assert_eq!(one(b"ECHO a\"b c\"\r\n").unwrap(), vec![argv(&["ECHO", "ab c"])]);
        assert_eq!(one(b"ECHO \"\"\r\n").unwrap(), vec![argv(&["ECHO", ""])]);
        assert_eq!(one(b"ECHO \"a\"b\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(one(b"\"unbalanced\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(one(b"'x\r\n"), Err(ProtocolError::UnbalancedQuotes));
        // Not RESP types: inline commands, as Redis reads them.
        assert_eq!(one(b"$3\r\nfoo\r\n").unwrap(), vec![argv(&["$3"]), argv(&["foo"])]);
        assert_eq!(one(b"+PING\r\n").unwrap(), vec![argv(&["+PING"])]);
    }

    #[test]
    fn garbage_never_panics() {
        // A fixed pseudo-random stream, fed in odd-sized pieces.
        let mut x: u32 = 12345;
        let mut p = Parser::new(1 << 20);
        for round in 0..2000 {
            let mut chunk = Vec::new();
            for _ in 0..(round % 37) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let b = match x % 8 {
                    0 => b'*',
                    1 => b'$',
                    2 => b'\r',
                    3 => b'\n',
                    4 => b'"',
                    5 => b'0' + (x >> 8) as u8 % 10,
                    _ => (x >> 16) as u8,
                };
                chunk.push(b);
            }
            let (_, r) = parse_all(&mut p, &chunk);
            if r.is_err() {
                p = Parser::new(1 << 20);
            }
        }
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in
            [&b""[..], b"-", b"-0", b"01", b"+1", b" 1", b"1 ", b"9223372036854775808", b"1a"]
        {
            assert_eq!(parse_i64(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }
}
