//! httpd's request handling (the `http` library): the request head parser,
//! the path decoding, `Range` and `If-Modified-Since`, and the response head
//! written for what was asked, as `examples/httpd/src/main.rs` does for each
//! request on a connection (several requests may share one buffer).
//!
//! An input that starts with `0xff` runs the connections mode instead
//! (`connections.rs`): many TCP clients, as frames, against a server built
//! on httpd's `http::conn` and libos's sockets, with slow or absent reads.

#![no_main]

#[path = "http/connections.rs"]
mod connections;

use http::{Head, Method, Parsed, RangeAnswer, Status};
use libfuzzer_sys::fuzz_target;

/// File lengths to answer `Range` for: empty, small, large.
const LENGTHS: [u64; 4] = [0, 1, 1000, u64::MAX];

fuzz_target!(|data: &[u8]| {
    if let [0xff, rest @ ..] = data {
        connections::run(rest);
        return;
    }
    let mut buf = data;
    loop {
        match http::parse(buf) {
            Parsed::Partial => break,
            Parsed::Error(status) => {
                respond(status, "text/plain; charset=utf-8", 0, None, None);
                break;
            }
            Parsed::Request { request, len } => {
                assert!(len > 0 && len <= buf.len());
                assert!(request.path.starts_with('/'), "{:?}", request.path);
                assert!(!request.path.contains('\0'));
                assert!(!request.path.split('/').any(|s| s == ".."), "{:?}", request.path);
                let content_type = http::content_type(&request.path);
                let mut status = Status::Ok;
                let mut content_range = None;
                for file_len in LENGTHS {
                    if let Some(spec) = &request.range {
                        match http::byte_range(spec, file_len) {
                            RangeAnswer::Full => {}
                            RangeAnswer::Partial { start, end } => {
                                assert!(start <= end && end < file_len, "{spec:?} {file_len}");
                                status = Status::PartialContent;
                                content_range = Some((start, end, file_len));
                            }
                            RangeAnswer::Unsatisfiable => {
                                status = Status::RangeNotSatisfiable;
                                content_range = Some((0, 0, file_len));
                            }
                        }
                    }
                }
                if let Some(t) = request.if_modified_since {
                    let mut s = String::new();
                    http::write_http_date(&mut s, t);
                    assert_eq!(http::parse_http_date(&s), Some(t), "{s}");
                }
                let body = if request.method == Method::Head { 0 } else { 42 };
                respond(status, content_type, body, request.if_modified_since, content_range);
                // The body, if any, is skipped; the next request follows.
                let Some(rest) = len.checked_add(request.body_len).and_then(|n| buf.get(n..))
                else {
                    break;
                };
                buf = rest;
            }
        }
    }
    // The pieces on their own.
    if let Ok(s) = core::str::from_utf8(data) {
        let _ = http::decode_path(s);
        let _ = http::parse_http_date(s);
        let _ = http::byte_range(s, 4096);
    }
});

fn respond(
    status: Status,
    content_type: &str,
    content_length: usize,
    last_modified: Option<u64>,
    content_range: Option<(u64, u64, u64)>,
) {
    let head = Head {
        status,
        content_type,
        content_length,
        keep_alive: true,
        date: 1_700_000_000,
        last_modified,
        content_range,
    };
    let mut out = Vec::new();
    head.write(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 ") && out.ends_with(b"\r\n\r\n"));
}
