//! httpd: an HTTP/1.1 static file server as a unikernel.
//!
//! ```text
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 target/release/httpd
//! curl http://10.0.0.2/
//! ```
//!
//! Serves the files under `examples/httpd/site/`, compiled in, plus
//! `/bench/1k.bin` and `/bench/1m.bin`, on port 80 or `$PORT`. GET and HEAD,
//! keep-alive and pipelining; 400, 404, 405, 413 as HTTP says. Every
//! connection is a task of its own, and a connection idle for
//! `IDLE_TIMEOUT` is closed, so no client can stop the others.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::time::Duration;

use http::{Head, Method, Parsed, Status};
use libos::net::{NetError, TcpListener, TcpOptions, TcpStream};
use libos::time::{SystemTime, UNIX_EPOCH};
use libos::{env, log, println, task};

mod site {
    include!(concat!(env!("OUT_DIR"), "/site.rs"));
}

libos::app!(async main, devices: ["service0": Net]);

/// A connection with no complete request for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

async fn main() -> Result<(), NetError> {
    let port = match env::var("PORT").map(str::parse::<u16>) {
        None => 80,
        Some(Ok(p)) if p != 0 => p,
        Some(_) => {
            println!("httpd: PORT must be a port number, 1-65535");
            return Err(NetError::InvalidAddress);
        }
    };
    let opts = TcpOptions { backlog: 64, nodelay: true, ..TcpOptions::default() };
    let listener = TcpListener::bind_with(port, opts)?;
    libos::net::wait_configured().await;
    for i in libos::net::interfaces() {
        if let Some((addr, prefix)) = i.ipv4 {
            println!(
                "httpd: serving {} files on http://{addr}:{port}/ ({}/{prefix})",
                site::FILES.len(),
                i.name
            );
        }
    }
    loop {
        let (stream, peer) = listener.accept().await?;
        task::spawn(async move {
            if let Err(e) = serve(stream).await {
                log::debug!("{peer}: {e}");
            }
        });
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn find(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = if path.ends_with('/') { alloc::format!("{path}index.html") } else { path.into() };
    site::FILES.iter().find(|(p, _)| *p == path).map(|&(p, b)| (p, b))
}

/// Serves one connection until it closes, errs, or idles out.
async fn serve(mut stream: TcpStream) -> Result<(), NetError> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Answer every complete request already received (pipelining),
        // batching small responses into one write.
        let close = loop {
            match http::parse(&buf) {
                Parsed::Partial => break false,
                Parsed::Error(status) => {
                    respond_error(&mut out, status);
                    break true;
                }
                Parsed::Request { request, len } => {
                    let body_end = len.saturating_add(request.body_len);
                    if body_end > buf.len() {
                        // Wait for the (ignored) body to arrive in full.
                        break false;
                    }
                    buf.drain(..body_end);
                    respond(&mut stream, &mut out, &request).await?;
                    if !request.keep_alive {
                        break true;
                    }
                }
            }
        };
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if close {
            stream.shutdown();
            return Ok(());
        }
        let n = match task::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => {
                stream.shutdown();
                return Ok(());
            }
        };
        if n == 0 {
            stream.shutdown();
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Appends the response to `request` to `out`, or, for a large body,
/// writes what is pending and then the body straight from the file.
async fn respond(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    request: &http::Request,
) -> Result<(), NetError> {
    let Some((path, body)) = find(&request.path) else {
        let not_found = b"404 Not Found\n";
        head(Status::NotFound, not_found.len(), request.keep_alive).write(out);
        if request.method == Method::Get {
            out.extend_from_slice(not_found);
        }
        log::info!("GET {} 404", request.path);
        return Ok(());
    };
    Head {
        content_type: http::content_type(path),
        ..head(Status::Ok, body.len(), request.keep_alive)
    }
    .write(out);
    let method = if request.method == Method::Head { "HEAD" } else { "GET" };
    log::info!("{method} {} 200 {}", request.path, body.len());
    if request.method == Method::Head {
        return Ok(());
    }
    if body.len() <= 16 * 1024 {
        out.extend_from_slice(body);
    } else {
        stream.write_all(out).await?;
        out.clear();
        stream.write_all(body).await?;
    }
    Ok(())
}

fn head(status: Status, len: usize, keep_alive: bool) -> Head<'static> {
    Head {
        status,
        content_type: "text/plain; charset=utf-8",
        content_length: len,
        keep_alive,
        date: now(),
        last_modified: None,
    }
}

fn respond_error(out: &mut Vec<u8>, status: Status) {
    let (code, reason) = status.line();
    let body = alloc::format!("{code} {reason}\n");
    head(status, body.len(), false).write(out);
    out.extend_from_slice(body.as_bytes());
}
