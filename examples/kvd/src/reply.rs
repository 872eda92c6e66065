//! RESP2 replies, appended to an output buffer.
//!
//! Every command writes its reply with these functions into the
//! connection's output buffer, so that the replies to a pipelined batch go
//! out in one write.

use alloc::vec::Vec;

/// `+OK`.
pub fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// A status reply: `+text`. `text` must hold no CR or LF.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An error reply, `-text`, with `text` as Redis writes it (starting with
/// the error code: `ERR ...`, `WRONGTYPE ...`). CR and LF become spaces, as
/// Redis does, so that a message quoting a client's bytes cannot break the
/// protocol.
pub fn error(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'-');
    out.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// An integer reply, `:n`.
pub fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_int(out, n);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string reply.
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    push_int(out, data.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// An integer as a bulk string (`INCR`'s value in `MGET`, `CONFIG GET`).
pub fn bulk_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    bulk(out, format_int(&mut buf, n));
}

/// The null bulk string, `$-1` (a missing key).
pub fn nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// The null array, `*-1`.
pub fn nil_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

/// The header of an array of `n` elements; the elements follow.
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_int(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal form of `n`.
pub fn push_int(out: &mut Vec<u8>, n: i64) {
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

    fn with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
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
}
