//! RESP2 replies, appended to an output buffer.
//!
//! Every command writes its reply with these functions into the
//! connection's output buffer, [`Out`], so that the replies to a pipelined
//! batch go out in one write.
//!
//! [`Out`] is bounded and fallible: it never grows past its limit (the
//! client's hard output limit, or what the memory budget for clients has
//! left), and gets its memory with `try_reserve`. A reply that does not fit
//! is not built: the buffer is marked [`Out::overflowed`], later appends are
//! ignored, and the server closes that client (Redis's
//! `client-output-buffer-limit`), so that no reply, however large
//! (`MGET` of many big values, `LRANGE` of a long list), can take the
//! guest's heap.

use alloc::vec::Vec;
use core::ops::Deref;

/// A connection's pending replies: bytes, at most [`Out::limit`] of them.
#[derive(Debug)]
pub struct Out {
    /// `buf[start..]` is pending; `buf[..start]` was sent.
    buf: Vec<u8>,
    start: usize,
    /// Most bytes `buf` may hold (and allocate); `usize::MAX` when unbounded.
    limit: usize,
    /// A reply did not fit: what follows is dropped.
    overflowed: bool,
}

impl Out {
    /// An unbounded buffer (tests, replay).
    pub fn new() -> Self {
        Self::with_limit(usize::MAX)
    }

    /// A buffer that may hold at most `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self { buf: Vec::new(), start: 0, limit, overflowed: false }
    }

    /// Changes the limit; bytes already held stay, the next append that
    /// would go past it overflows.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether an append did not fit (the limit, or no memory): the
    /// content is incomplete and the client must be closed.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Bytes allocated (what the buffer costs, counted against the
    /// budget for clients).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Empties the buffer and clears the overflow; keeps the allocation
    /// unless it is larger than `keep`.
    pub fn clear(&mut self, keep: usize) {
        self.buf.clear();
        self.start = 0;
        if self.buf.capacity() > keep {
            self.buf = Vec::new();
        }
        self.overflowed = false;
    }

    /// Removes the first `n` pending bytes (sent). Memory is given back
    /// as the rest shrinks: the sent bytes are dropped once they are as
    /// many as those left (so that each byte is moved at most once on
    /// average), and the allocation shrinks to fit what is left.
    pub fn consume(&mut self, n: usize, keep: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            let overflowed = self.overflowed;
            self.clear(keep);
            self.overflowed = overflowed;
        } else if self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.start = 0;
            if self.buf.capacity() > keep {
                self.buf.shrink_to(self.buf.len().max(keep));
            }
        }
    }

    /// Room for `n` more bytes, within the limit, or the overflow.
    fn room(&mut self, n: usize) -> bool {
        if self.overflowed {
            return false;
        }
        // Replies are appended only when everything before was sent
        // (`start` is 0); otherwise the limit counts the sent bytes too.
        let need = match self.buf.len().checked_add(n) {
            Some(need) if need <= self.limit => need,
            _ => {
                self.overflowed = true;
                return false;
            }
        };
        if need > self.buf.capacity() {
            // Double (amortised linear copying), within the limit.
            let want = need.max(self.buf.capacity().saturating_mul(2)).max(64).min(self.limit);
            if self.buf.try_reserve_exact(want - self.buf.len()).is_err()
                && self.buf.try_reserve_exact(n).is_err()
            {
                self.overflowed = true;
                return false;
            }
        }
        true
    }

    /// Appends `data`, if it fits.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if self.room(data.len()) {
            self.buf.extend_from_slice(data);
        }
    }

    /// Appends what `other` holds, or overflows if `other` did.
    pub fn append(&mut self, other: &Out) {
        if other.overflowed {
            self.overflowed = true;
        } else {
            self.extend_from_slice(other);
        }
    }

    /// Appends a byte, if it fits.
    pub fn push(&mut self, b: u8) {
        if self.room(1) {
            self.buf.push(b);
        }
    }

    /// The pending bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The pending bytes, as a vector (tests).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }
}

impl Default for Out {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for Out {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// `+OK`.
pub fn ok(out: &mut Out) {
    out.extend_from_slice(b"+OK\r\n");
}

/// A status reply: `+text`. `text` must hold no CR or LF.
pub fn simple(out: &mut Out, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An error reply, `-text`, with `text` as Redis writes it (starting with
/// the error code: `ERR ...`, `WRONGTYPE ...`). CR and LF become spaces, as
/// Redis does, so that a message quoting a client's bytes cannot break the
/// protocol.
pub fn error(out: &mut Out, text: &[u8]) {
    if !out.room(text.len() + 3) {
        return;
    }
    out.buf.push(b'-');
    out.buf.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.buf.extend_from_slice(b"\r\n");
}

/// An integer reply, `:n`.
pub fn int(out: &mut Out, n: i64) {
    out.push(b':');
    push_int(out, n);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string reply.
pub fn bulk(out: &mut Out, data: &[u8]) {
    // All or nothing: no half of a large value is copied before the limit.
    let mut buf = [0u8; 20];
    let digits = format_int(&mut buf, data.len() as i64);
    if !out.room(1 + digits.len() + 2 + data.len() + 2) {
        return;
    }
    out.push(b'$');
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// An integer as a bulk string (`INCR`'s value in `MGET`, `CONFIG GET`).
pub fn bulk_int(out: &mut Out, n: i64) {
    let mut buf = [0u8; 20];
    bulk(out, format_int(&mut buf, n));
}

/// The null bulk string, `$-1` (a missing key).
pub fn nil(out: &mut Out) {
    out.extend_from_slice(b"$-1\r\n");
}

/// The null array, `*-1`.
pub fn nil_array(out: &mut Out) {
    out.extend_from_slice(b"*-1\r\n");
}

/// The header of an array of `n` elements; the elements follow.
pub fn array(out: &mut Out, n: usize) {
    out.push(b'*');
    push_int(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal form of `n`.
pub fn push_int(out: &mut Out, n: i64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(format_int(&mut buf, n));
}

/// Formats `n` in decimal into `buf`; returns the digits.
pub fn format_int(buf: &mut [u8; 20], n: i64) -> &[u8] {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Out)) -> Vec<u8> {
        let mut out = Out::new();
        f(&mut out);
        out.into_vec()
    }

    #[test]
    fn encodings() {
        assert_eq!(with(ok), b"+OK\r\n");
        assert_eq!(with(|o| simple(o, "PONG")), b"+PONG\r\n");
        assert_eq!(with(|o| error(o, b"ERR a\r\nb")), b"-ERR a  b\r\n");
        assert_eq!(with(|o| int(o, -42)), b":-42\r\n");
        assert_eq!(with(|o| int(o, i64::MIN)), b":-9223372036854775808\r\n");
        assert_eq!(with(|o| int(o, 0)), b":0\r\n");
        assert_eq!(with(|o| bulk(o, b"")), b"$0\r\n\r\n");
        assert_eq!(with(|o| bulk(o, b"a\r\nb")), b"$4\r\na\r\nb\r\n");
        assert_eq!(with(|o| bulk_int(o, 9223372036854775807)), b"$19\r\n9223372036854775807\r\n");
        assert_eq!(with(nil), b"$-1\r\n");
        assert_eq!(with(nil_array), b"*-1\r\n");
        assert_eq!(with(|o| array(o, 3)), b"*3\r\n");
    }

    #[test]
    fn a_bounded_buffer_refuses_what_does_not_fit_and_stays_bounded() {
        let mut out = Out::with_limit(100);
        bulk(&mut out, &[b'x'; 80]);
        assert!(!out.overflowed());
        assert_eq!(out.len(), 87);
        // A reply that does not fit is not built at all, nor anything after.
        bulk(&mut out, &[b'y'; 20]);
        assert!(out.overflowed());
        ok(&mut out);
        int(&mut out, 7);
        error(&mut out, b"ERR x");
        assert_eq!(out.len(), 87);
        assert!(out.capacity() <= 100);
        // Exactly at the limit fits.
        let mut out = Out::with_limit(5);
        ok(&mut out);
        assert!(!out.overflowed());
        nil(&mut out);
        assert!(out.overflowed());
        // A limit beyond any heap fails as an overflow, not an abort.
        let mut out = Out::new();
        out.extend_from_slice(b"ab");
        assert!(!out.room(usize::MAX - 1));
        assert!(out.overflowed());
    }

    #[test]
    fn consuming_gives_memory_back_and_keeps_the_order() {
        let mut out = Out::new();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        out.extend_from_slice(&data);
        let mut sent = Vec::new();
        while !out.is_empty() {
            let n = out.len().min(32 * 1024);
            sent.extend_from_slice(&out[..n]);
            out.consume(n, 4096);
            assert!(out.capacity() <= 2 * out.len() + 2 * 32 * 1024 || out.capacity() <= 4096);
        }
        assert_eq!(sent, data);
        assert!(out.capacity() <= 4096);
    }
}
