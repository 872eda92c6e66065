//! HTTP/1.1 for httpd: request parsing (with httparse), the decisions a
//! static file server makes, and response heads. No I/O: the server feeds
//! bytes in and writes out what comes back, so all of it is tested on the
//! host.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod conn;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::mem::MaybeUninit;
use libos::calendar::{civil_from_days, days_from_civil};

/// Most bytes a request head (request line and headers) may take.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 64;

/// Response statuses httpd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200.
    Ok,
    /// 206: a byte range of the file.
    PartialContent,
    /// 304.
    NotModified,
    /// 400.
    BadRequest,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 413: the request head, or its body, is too large.
    TooLarge,
    /// 416: the byte range lies outside the file.
    RangeNotSatisfiable,
    /// 500: the disk failed.
    InternalError,
    /// 501: a request body in a form httpd does not read.
    NotImplemented,
    /// 503: no memory for the response just now.
    ServiceUnavailable,
    /// 505.
    VersionNotSupported,
}

impl Status {
    /// Code and reason phrase.
    pub const fn line(self) -> (u16, &'static str) {
        match self {
            Self::Ok => (200, "OK"),
            Self::PartialContent => (206, "Partial Content"),
            Self::NotModified => (304, "Not Modified"),
            Self::BadRequest => (400, "Bad Request"),
            Self::NotFound => (404, "Not Found"),
            Self::MethodNotAllowed => (405, "Method Not Allowed"),
            Self::TooLarge => (413, "Content Too Large"),
            Self::RangeNotSatisfiable => (416, "Range Not Satisfiable"),
            Self::InternalError => (500, "Internal Server Error"),
            Self::NotImplemented => (501, "Not Implemented"),
            Self::ServiceUnavailable => (503, "Service Unavailable"),
            Self::VersionNotSupported => (505, "HTTP Version Not Supported"),
        }
    }
}

/// The methods httpd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: as GET, without the body.
    Head,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// GET or HEAD; other methods are answered with 405 by [`parse`].
    pub method: Method,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Bytes of request body that follow the head (to skip).
    pub body_len: usize,
    /// `If-Modified-Since`, as seconds since the epoch.
    pub if_modified_since: Option<u64>,
    /// The `Range` header, unparsed (see [`byte_range`]).
    pub range: Option<String>,
}

/// What the bytes received so far hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request head of `len` bytes.
    Request { request: Request, len: usize },
    /// Not a whole head yet: read more.
    Partial,
    /// A request to refuse with this status; the connection is closed after.
    Error(Status),
}

/// Parses the request head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    // Left uninitialised: httparse writes the headers it finds (filling
    // 64 empty ones first cost 2 KiB of stores per request).
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Parsed::Error(Status::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Error(Status::TooLarge),
        Err(httparse::Error::Version) => return Parsed::Error(Status::VersionNotSupported),
        Err(_) => return Parsed::Error(Status::BadRequest),
    };
    if len > MAX_HEAD {
        return Parsed::Error(Status::TooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Error(Status::BadRequest);
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => return Parsed::Error(Status::MethodNotAllowed),
    };
    let Some(path) = decode_path(target) else { return Parsed::Error(Status::BadRequest) };

    let mut keep_alive = minor == 1;
    let mut body_len = 0;
    let mut if_modified_since = None;
    let mut range = None;
    for h in req.headers.iter() {
        let value = core::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                Ok(n) => body_len = n,
                Err(_) => return Parsed::Error(Status::BadRequest),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Error(Status::NotImplemented);
        } else if h.name.eq_ignore_ascii_case("if-modified-since") {
            if_modified_since = parse_http_date(value);
        } else if h.name.eq_ignore_ascii_case("range") {
            range = Some(String::from(value));
        }
    }
    Parsed::Request {
        request: Request { method, path, keep_alive, body_len, if_modified_since, range },
        len,
    }
}

/// Decodes a request target to a path: origin form only, the query dropped,
/// `%XX` decoded, no `..` segment, no NUL.
pub fn decode_path(target: &str) -> Option<String> {
    let raw = target.split(['?', '#']).next()?;
    if !raw.starts_with('/') {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = core::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let path = String::from_utf8(out).ok()?;
    if path.contains('\0') || path.split('/').any(|seg| seg == "..") {
        return None;
    }
    Some(path)
}

/// How to answer a `Range` header for a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Ignore it and send the whole file (200): not a single byte range httpd serves.
    Full,
    /// Send bytes `start..=end` (206).
    Partial { start: u64, end: u64 },
    /// No byte of the range is in the file (416).
    Unsatisfiable,
}

/// Interprets a `Range` header value (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
/// Several ranges, or other units, get the whole file, as HTTP allows.
pub fn byte_range(spec: &str, len: u64) -> RangeAnswer {
    let Some(set) = spec.trim().strip_prefix("bytes=") else { return RangeAnswer::Full };
    if set.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((a, b)) = set.trim().split_once('-') else { return RangeAnswer::Full };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // Suffix: the last n bytes.
        (true, false) => match parse(b) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(n) if len > 0 => {
                RangeAnswer::Partial { start: len.saturating_sub(n), end: len - 1 }
            }
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Full,
        },
        (false, _) => {
            let Some(start) = parse(a) else { return RangeAnswer::Full };
            let end = if b.is_empty() { Some(u64::MAX) } else { parse(b) };
            match end {
                None => RangeAnswer::Full,
                Some(end) if end < start => RangeAnswer::Full,
                Some(_) if start >= len => RangeAnswer::Unsatisfiable,
                Some(end) => RangeAnswer::Partial { start, end: end.min(len - 1) },
            }
        }
        (true, true) => RangeAnswer::Full,
    }
}

/// Media types by extension (compared without regard to case).
const MEDIA_TYPES: [(&str, &str); 18] = [
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("ico", "image/x-icon"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("woff2", "font/woff2"),
];

/// The media type for a path, by its extension (no allocation).
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    MEDIA_TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or("application/octet-stream", |&(_, t)| t)
}

/// A response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    /// The status.
    pub status: Status,
    /// `Content-Type`.
    pub content_type: &'a str,
    /// `Content-Length`.
    pub content_length: usize,
    /// Whether the connection stays open.
    pub keep_alive: bool,
    /// `Date`, seconds since the epoch.
    pub date: u64,
    /// `Last-Modified`, seconds since the epoch.
    pub last_modified: Option<u64>,
    /// `Content-Range`: (first byte, last byte, file length) for 206, or
    /// (0, 0, length) for 416 (`bytes */length`).
    pub content_range: Option<(u64, u64, u64)>,
}

impl Head<'_> {
    /// Appends the head, blank line included, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(self.max_len());
        self.append(out);
    }

    /// Appends the head to `out`, or leaves `out` as it was if the heap has
    /// no room for it.
    pub fn try_write(&self, out: &mut Vec<u8>) -> Result<(), conn::OutOfMemory> {
        out.try_reserve(self.max_len()).map_err(|_| conn::OutOfMemory)?;
        self.append(out);
        Ok(())
    }

    /// Most bytes [`Head::append`] writes: [`HEAD_FIXED_MAX`] and the media
    /// type. Reserved first, so that the head is appended without growing
    /// `out` again.
    fn max_len(&self) -> usize {
        HEAD_FIXED_MAX + self.content_type.len()
    }

    /// Appends the head, piece by piece and without `core::fmt` (a
    /// response's head was a tenth of httpd's own time per 1 KiB request
    /// when it went through `write!` into a zeroed buffer).
    fn append(&self, out: &mut Vec<u8>) {
        let (code, reason) = self.status.line();
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(code));
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\nServer: nabla-httpd\r\nDate: ");
        push_http_date(out, self.date);
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(self.content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_decimal(out, self.content_length as u64);
        out.extend_from_slice(b"\r\n");
        if let Some(t) = self.last_modified {
            out.extend_from_slice(b"Last-Modified: ");
            push_http_date(out, t);
            out.extend_from_slice(b"\r\n");
        }
        if self.status == Status::MethodNotAllowed {
            out.extend_from_slice(b"Allow: GET, HEAD\r\n");
        }
        if matches!(self.status, Status::Ok | Status::PartialContent) {
            out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
        }
        match (self.status, self.content_range) {
            (Status::RangeNotSatisfiable, Some((_, _, len))) => {
                out.extend_from_slice(b"Content-Range: bytes */");
                push_decimal(out, len);
                out.extend_from_slice(b"\r\n");
            }
            (_, Some((first, last, len))) => {
                out.extend_from_slice(b"Content-Range: bytes ");
                push_decimal(out, first);
                out.push(b'-');
                push_decimal(out, last);
                out.push(b'/');
                push_decimal(out, len);
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
        out.extend_from_slice(if self.keep_alive {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
    }
}

/// Most bytes of a head besides its media type: the longest status line,
/// the fixed lines, two dates of the longest year `civil_from_days` gives
/// for `u64` seconds, and 20-digit numbers (a test checks the bound).
const HEAD_FIXED_MAX: usize = 448;

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends an IMF-fixdate, as [`write_http_date`]: by hand for the years
/// 1000-9999 (29 bytes), through it for the others.
fn push_http_date(out: &mut Vec<u8>, secs: u64) {
    let days = (secs / 86_400) as i64;
    let rem = (secs % 86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    if !(1000..=9999).contains(&y) {
        write_http_date(&mut VecText(out), secs);
        return;
    }
    let two = |n: u32| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    let y = y as u32;
    let mut s = [0u8; 29];
    s[..3].copy_from_slice(DAYS[(days % 7) as usize].as_bytes());
    s[3..5].copy_from_slice(b", ");
    s[5..7].copy_from_slice(&two(d));
    s[7] = b' ';
    s[8..11].copy_from_slice(MONTHS[(m - 1) as usize].as_bytes());
    s[11] = b' ';
    s[12..14].copy_from_slice(&two(y / 100));
    s[14..16].copy_from_slice(&two(y % 100));
    s[16] = b' ';
    s[17..19].copy_from_slice(&two(rem / 3600));
    s[19] = b':';
    s[20..22].copy_from_slice(&two(rem / 60 % 60));
    s[22] = b':';
    s[23..25].copy_from_slice(&two(rem % 60));
    s[25..].copy_from_slice(b" GMT");
    out.extend_from_slice(&s);
}

/// `core::fmt::Write` into a byte vector.
struct VecText<'a>(&'a mut Vec<u8>);

impl Write for VecText<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Appends an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn write_http_date(out: &mut impl Write, secs: u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

/// Parses an IMF-fixdate; other (obsolete) formats give `None`, and so do
/// years outside 1970-9999 (the format's four digits; a larger year would
/// overflow the arithmetic: found by the `http` fuzz target).
pub fn parse_http_date(s: &str) -> Option<u64> {
    let mut it = s.split_ascii_whitespace();
    let _weekday = it.next()?;
    let day: u32 = it.next()?.parse().ok()?;
    let month_name = it.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT"
        || !(1..=31).contains(&day)
        || h > 23
        || mi > 59
        || se > 60
        || !(1970..=9999).contains(&year)
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> (Request, usize) {
        match parse(raw.as_bytes()) {
            Parsed::Request { request, len } => (request, len),
            other => panic!("{raw:?} gave {other:?}"),
        }
    }

    #[test]
    fn get_and_head() {
        let (r, len) = request("GET /a%20b.html?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/a b.html");
        assert!(r.keep_alive);
        assert_eq!(len, 41);
        let (r, _) = request("HEAD / HTTP/1.0\r\n\r\n");
        assert_eq!(r.method, Method::Head);
        assert!(!r.keep_alive);
    }

    #[test]
    fn connection_header_decides_keep_alive() {
        assert!(!request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").0.keep_alive);
        assert!(request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").0.keep_alive);
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let two = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
        let (r, len) = request(two);
        assert_eq!(r.path, "/1");
        assert_eq!(request(&two[len..]).0.path, "/2");
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost"), Parsed::Partial);
        assert_eq!(parse(b"GARBAGE\r\n\r\n"), Parsed::Error(Status::BadRequest));
        assert_eq!(parse(b"GET\r\n\r\n"), Parsed::Error(Status::BadRequest));
        assert_eq!(parse(b"POST / HTTP/1.1\r\n\r\n"), Parsed::Error(Status::MethodNotAllowed));
        assert_eq!(
            parse(b"GET /../etc/passwd HTTP/1.1\r\n\r\n"),
            Parsed::Error(Status::BadRequest)
        );
        assert_eq!(parse(b"GET /%zz HTTP/1.1\r\n\r\n"), Parsed::Error(Status::BadRequest));
        assert_eq!(parse(b"GET http://x/ HTTP/1.1\r\n\r\n"), Parsed::Error(Status::BadRequest));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parsed::Error(Status::NotImplemented)
        );
        let big = alloc::format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(big.as_bytes()), Parsed::Error(Status::TooLarge));
        let partial_big = alloc::format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(parse(partial_big.as_bytes()), Parsed::Error(Status::TooLarge));
        let many: String = (0..MAX_HEADERS + 1).map(|i| alloc::format!("H{i}: v\r\n")).collect();
        assert_eq!(
            parse(alloc::format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Parsed::Error(Status::TooLarge)
        );
    }

    #[test]
    fn body_length_is_reported() {
        let (r, _) = request("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(r.body_len, 5);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Parsed::Error(Status::BadRequest)
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/x.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("/bench/1k.bin"), "application/octet-stream");
        assert_eq!(content_type("/noext"), "application/octet-stream");
        assert_eq!(content_type("/a.HtM"), "text/html; charset=utf-8");
        assert_eq!(content_type("/a.woff2"), "font/woff2");
        assert_eq!(content_type("/a.woff"), "application/octet-stream");
        assert_eq!(content_type("/dir.css/file"), "application/octet-stream");
        assert_eq!(content_type("/x."), "application/octet-stream");
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(byte_range("bytes=0-99", 1000), Partial { start: 0, end: 99 });
        assert_eq!(byte_range("bytes=900-", 1000), Partial { start: 900, end: 999 });
        assert_eq!(byte_range("bytes=-100", 1000), Partial { start: 900, end: 999 });
        assert_eq!(byte_range("bytes=-5000", 1000), Partial { start: 0, end: 999 });
        assert_eq!(byte_range("bytes=990-5000", 1000), Partial { start: 990, end: 999 });
        assert_eq!(byte_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=5-1", 1000), Full);
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), Full);
        assert_eq!(byte_range("items=0-1", 1000), Full);
        assert_eq!(byte_range("bytes=x-1", 1000), Full);
        assert_eq!(byte_range("bytes=0-0", 0), Unsatisfiable);
    }

    #[test]
    fn dates_round_trip() {
        let mut s = String::new();
        write_http_date(&mut s, 784_111_777);
        assert_eq!(s, "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date(&s), Some(784_111_777));
        for t in [0u64, 951_782_400, 1_700_000_000, 4_102_444_800] {
            let mut s = String::new();
            write_http_date(&mut s, t);
            assert_eq!(parse_http_date(&s), Some(t), "{s}");
        }
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        // Years that would overflow the day count or the seconds (fuzzing).
        for year in ["99999999999999", "999999999999999999", "9223372036854775807", "10000"] {
            assert_eq!(parse_http_date(&format!("Sun, 06 Nov {year} 08:49:37 GMT")), None);
        }
        assert_eq!(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"), Some(253_402_300_799));
    }

    #[test]
    fn heads() {
        let mut out = Vec::new();
        Head {
            status: Status::MethodNotAllowed,
            content_type: "text/plain; charset=utf-8",
            content_length: 3,
            keep_alive: false,
            date: 0,
            last_modified: None,
            content_range: None,
        }
        .write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.contains("Allow: GET, HEAD\r\n"));
        assert!(text.ends_with("Connection: close\r\n\r\n"));
        assert!(text.contains("Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"));
    }

    /// The head as `core::fmt` wrote it before the hand-written
    /// formatting: the reference the new one must equal.
    fn head_by_fmt(h: &Head) -> String {
        let mut s = String::new();
        let (code, reason) = h.status.line();
        s += &format!("HTTP/1.1 {code} {reason}\r\nServer: nabla-httpd\r\nDate: ");
        write_http_date(&mut s, h.date);
        s += &format!(
            "\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            h.content_type, h.content_length
        );
        if let Some(t) = h.last_modified {
            s += "Last-Modified: ";
            write_http_date(&mut s, t);
            s += "\r\n";
        }
        if h.status == Status::MethodNotAllowed {
            s += "Allow: GET, HEAD\r\n";
        }
        if matches!(h.status, Status::Ok | Status::PartialContent) {
            s += "Accept-Ranges: bytes\r\n";
        }
        match (h.status, h.content_range) {
            (Status::RangeNotSatisfiable, Some((_, _, len))) => {
                s += &format!("Content-Range: bytes */{len}\r\n");
            }
            (_, Some((a, b, len))) => s += &format!("Content-Range: bytes {a}-{b}/{len}\r\n"),
            _ => {}
        }
        s += if h.keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        };
        s
    }

    #[test]
    fn heads_equal_the_fmt_reference_and_fit_their_reservation() {
        let statuses = [
            Status::Ok,
            Status::PartialContent,
            Status::NotModified,
            Status::MethodNotAllowed,
            Status::RangeNotSatisfiable,
            Status::VersionNotSupported,
        ];
        let dates = [
            0,
            784_111_777,
            1_796_434_424,
            253_402_300_799,
            253_402_300_800,
            u64::MAX / 2,
            u64::MAX,
        ];
        let ranges = [None, Some((0, 0, 0)), Some((u64::MAX, u64::MAX, u64::MAX))];
        let types = ["application/octet-stream", "", "x/y; a=\"b\""];
        for status in statuses {
            for &date in &dates {
                for modified in [None, Some(date), Some(u64::MAX)] {
                    for range in ranges {
                        for (i, content_type) in types.into_iter().enumerate() {
                            let h = Head {
                                status,
                                content_type,
                                content_length: [0, 1024, usize::MAX][i],
                                keep_alive: i % 2 == 0,
                                date,
                                last_modified: modified,
                                content_range: range,
                            };
                            let mut out = b"before".to_vec();
                            h.try_write(&mut out).unwrap();
                            assert_eq!(&out[..6], b"before");
                            assert_eq!(String::from_utf8_lossy(&out[6..]), head_by_fmt(&h));
                            assert!(out.len() - 6 <= h.max_len(), "{}", out.len());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 100, 1024, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 12345;
        for len in 0..400 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    b"GET /HTP1.\r\n: %a"[(x % 16) as usize]
                })
                .collect();
            let _ = parse(&buf);
        }
    }
}
